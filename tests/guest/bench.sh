#!/bin/sh
# `make bench`: the same hot-path timings under vfio_pci_rs and upstream vfio-pci in one boot,
# alternating drivers round by round so drift in the emulator hits both alike.
. /bin/lib.sh
modprobe vfio_pci_rs && modprobe vfio-pci || { echo "bench: modules failed to load"; exit 1; }
ROUNDS=${ROUNDS:-3}
for round in $(seq 1 "$ROUNDS"); do
	for drv in vfio_pci_rs vfio-pci; do
		for id in 1234:11e8 1af4:1110 1b36:0010; do
			bdf=$(bdf_of "$id")
			bind "$drv" "$bdf" || { echo "bench: cannot bind $bdf to $drv"; continue; }
			vfio-test bench "$bdf" 2>/dev/null | grep '^bench:' |
				sed "s/^/bench-result: $drv $(name_of "$bdf") $round /"
			release "$bdf"
		done
	done
done
cat /sys/kernel/debug/vfio_pci_rs/*/faults 2>/dev/null | sed 's/^/# /'
