#!/bin/sh
# `make run`: the project doing its job, on one screen. Lines starting with "run: " are that
# screen (the host shows only them); everything else, the clients' KTAP lines and the kernel's
# messages, stays in the console log the host names.
#   1. vfio_pci_rs loaded, every emulated test device bound to it through driver_override;
#   2. the drop-in build (module vfio_pci, driver vfio-pci) loaded by `modprobe vfio-pci`, the
#      two igb ports joined by a QEMU hub bound to it by DPDK's dpdk-devbind.py;
#   3. the devices and their drivers; the test client's info on each, through the group and the
#      iommufd cdev; its mmap test on ivshmem's 1 GiB BAR with the driver's fault counters;
#      DPDK's testpmd forwarding packets between the two igb ports.
. /bin/lib.sh
. /bin/dpdk.sh
say() { echo "run: $*"; }
RUN_SECONDS=10

modprobe vfio_pci_rs || say "modprobe vfio_pci_rs failed"
for bdf in $(test_bdfs); do bind vfio_pci_rs "$bdf" || say "could not bind $bdf to vfio_pci_rs"; done
hub_ports
dpdk_env
modprobe vfio-pci || say "modprobe vfio-pci (the drop-in) failed"
[ "$dpdk_ok" = 1 ] && chroot $host /usr/bin/dpdk-devbind.py --bind=vfio-pci "$p0" "$p1" >/dev/null 2>&1

# The module behind a driver: vfio_pci_rs, or the drop-in (vfio_pci from updates/) for vfio-pci.
module_of() {
	m=$(basename "$(readlink "/sys/bus/pci/drivers/$1/module" 2>/dev/null)")
	[ "$m" = vfio_pci ] && [ "$(cat /sys/module/vfio_pci/srcversion)" = "$(modinfo -F srcversion vfio_pci)" ] &&
		m="vfio_pci ($(modinfo -F filename vfio_pci | sed 's|^/lib/modules/[^/]*/||'))"
	echo "${m:--}"
}
say ""
say "vfio_pci_rs: a VFIO PCI driver in Rust, in a QEMU guest (q35, TCG, emulated Intel IOMMU)."
say "The drop-in build of the same sources is the module vfio_pci with PCI driver vfio-pci,"
say "the names DPDK and other tools look for (README: Drop-in for vfio-pci)."
say ""
say "Devices and their drivers:"
say "$(printf '  %-13s %-12s %-10s %-6s %-12s %s' BDF device id group driver module)"
for bdf in $(test_bdfs) $p0 $p1; do
	d=/sys/bus/pci/devices/$bdf
	name=$(name_of "$bdf"); { [ "$bdf" = "$p0" ] || [ "$bdf" = "$p1" ]; } && name="igb (hub)"
	drv=$(driver_of "$bdf")
	say "$(printf '  %-13s %-12s %-10s %-6s %-12s %s' "$bdf" "$name" \
		"$(cat $d/vendor | cut -c3-):$(cat $d/device | cut -c3-)" \
		"$(basename "$(readlink $d/iommu_group)")" "${drv:--}" "$(module_of "$drv")")"
done

# The test client's device/region/IRQ info through both user-space paths.
say ""
say "VFIO client vfio-test info (group = /dev/vfio/N + type1 container; cdev = iommufd):"
for bdf in $(test_bdfs); do
	line=""
	for mode in group cdev; do
		echo "# vfio-test info --mode $mode $bdf ($(name_of "$bdf"))"
		vfio-test info --mode "$mode" "$bdf" >/tmp/run.info 2>&1
		rc=$? n_ok=$(grep -cE '^ok ' /tmp/run.info) n_bad=$(grep -cE '^not ok ' /tmp/run.info)
		cat /tmp/run.info
		line="$line$(printf '%-6s %3d ok %d failed%s   ' "$mode" "$n_ok" "$n_bad" "$([ $rc = 0 ] || echo ", exit $rc")")"
	done
	say "$(printf '  %-12s %s' "$(name_of "$bdf")" "$line")"
done

# ivshmem's 1 GiB BAR mapped and touched by the client's mmap test: the driver's fault counters
# (debugfs) say how the PFNs were installed: pud = 1 GiB, pmd = 2 MiB, pte = 4 KiB entries.
iv=$(bdf_of 1af4:1110)
faults=/sys/kernel/debug/vfio_pci_rs/$iv/faults
before=$(tr '\n' ' ' <"$faults")
vfio-test mmap "$iv" >/tmp/run.mmap 2>&1
rc=$?
cat /tmp/run.mmap
after=$(tr '\n' ' ' <"$faults")
delta=$(echo "$before|$after" | awk -F'|' '{ n = split($1, a, " "); split($2, b, " ");
	for (i = 1; i < n; i += 2) printf "%s %d  ", a[i], b[i + 1] - a[i + 1] }')
say ""
say "ivshmem 1 GiB BAR: vfio-test mmap $(grep -cE '^ok ' /tmp/run.mmap) ok, $(grep -cE '^not ok ' /tmp/run.mmap) failed$([ $rc = 0 ] || echo ", exit $rc")"
say "  faults installed by the driver: $delta"
say "  (pud: a 1 GiB page table entry, pmd: 2 MiB, pte: 4 KiB; around: 4 KiB entries a fault added"
say "  for the rest of its 2 MiB block; zap: every mapping removed, on decode off or reset;"
say "  sigbus: accesses refused while decode was off; fallback: a huge fault retried smaller)"

# DPDK forwarding packets through the drop-in.
say ""
if [ "$dpdk_ok" = 1 ]; then
	testpmd_run dropin "$RUN_SECONDS"
	cat /tmp/dpdk/testpmd.dropin.log
	cat /tmp/dpdk/result.dropin
	say "DPDK dpdk-testpmd, io forwarding between the hub's igb ports under the drop-in (exit $rc):"
	awk -v s="$secs" '/^dropin: result/ {
		for (i = 4; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		printf "run:   port %s  RX %10d  TX %10d packets in %s s  (%d TX packets/s)  RX dropped %d  RX errors %d\n",
			v["port"], v["rx"], v["tx"], s, (s > 0 ? v["tx"] / s : 0), v["rx_dropped"], v["rx_errors"] }' \
		/tmp/dpdk/result.dropin
	say "  MSI-X interrupts of the two ports (link state, through VFIO eventfds): $irqs"
else
	say "DPDK: no dpdk-testpmd/dpdk-devbind.py on the host's root (scripts/setup.sh installs them)"
fi
