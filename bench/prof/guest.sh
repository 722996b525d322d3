#!/bin/sh
# Guest side of bench/prof/run.sh: each row's operation N times between two profile markers,
# under vfio_pci_rs then upstream vfio-pci on the same device; then the symbols the host needs
# to name the counted addresses (modules' text symbols, the kernel's _text for KASLR).
. /bin/lib.sh
# PROF_LOAD: the modules in load order (their text addresses follow from it, and with them
# which blocks share a slot of QEMU's jump cache).
for m in ${PROF_LOAD:-vfio_pci_rs vfio-pci}; do modprobe "$m" || exit 1; done
# No address-space randomisation: each driver's run is its own process, and a mapping's place
# decides which page tables a munmap walks (thousands of instructions in the 1 GiB map rows).
echo 0 > /proc/sys/kernel/randomize_va_space
N=${PROF_N:-2000}
ROWS=${PROF_ROWS:-"1234:11e8:config_pread4 1234:11e8:config_pwrite2_command 1234:11e8:bar_pread4
1234:11e8:bar_pwrite4 1b36:0005:bar_pread4 1b36:0005:bar_pwrite4 1234:11e8:msi_loopback
1234:11e8:intx_loopback 1234:11e8:intx_edu_round_trip 1af4:1110:device_reset"}
for drv in vfio_pci_rs vfio-pci; do
	for spec in $ROWS; do
		id=${spec%:*} row=${spec##*:}
		bdf=$(bdf_of "$id")
		bind "$drv" "$bdf" || { echo "prof: cannot bind $bdf"; continue; }
		echo "prof-run: $drv $(name_of "$bdf") $row $N"
		# On CPU 0, as the bench runs it (the client pins INTx lines there too).
		taskset 1 vfio-test bench "$bdf" "$row" "$N" | grep -E '^(bench|not ok)'
		release "$bdf"
	done
done
grep -E ' _text$' /proc/kallsyms | sed 's/^/prof-sym: /'
grep -E '^[0-9a-f]+ [tT] .*\[(vfio_pci_rs|vfio_pci|vfio_pci_core|vfio)\]' /proc/kallsyms | sed 's/^/prof-sym: /'
