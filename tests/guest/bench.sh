#!/bin/sh
# `make bench`: the same timings under vfio_pci_rs and upstream vfio-pci in one boot. The bench
# guest has two twins of each device model (scripts/guest.sh); per model, one twin is bound to
# vfio_pci_rs and the other to vfio-pci at the same time, and `vfio-test bench OURS UP` alternates
# small batches between the two open devices in one process, so host noise hits both alike. Which
# twin is ours swaps every round, so their placement (bus, IOMMU group, BAR address) cancels out.
. /bin/lib.sh
modprobe vfio_pci_rs && modprobe vfio-pci || { echo "bench: modules failed to load"; exit 1; }

ROUNDS=${ROUNDS:-6}
IDS="1234:11e8 1af4:1110 1b36:0005"
# Every BDF of a vendor:device, in bus order.
bdfs_of() {
	for d in /sys/bus/pci/devices/*; do
		[ "$(cat "$d/vendor"):$(cat "$d/device")" = "0x${1%:*}:0x${1#*:}" ] && basename "$d"
	done
}
# Guest details for the head of the results (lockdep leaves /proc/lockdep behind).
echo "bench-info: guest_kernel $(uname -r) ($(uname -v))"
echo "bench-info: guest_cpus $(grep -c ^processor /proc/cpuinfo) x $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n1)"
echo "bench-info: guest_lockdep $([ -e /proc/lockdep ] && echo on || echo off)"
echo "bench-info: rounds $ROUNDS (which twin is vfio_pci_rs's swaps every round)"
for id in $IDS; do
	b=$(bdfs_of "$id" | tr '\n' ' ')
	echo "bench-info: device $(name_of "${b%% *}") twins ${b% }"
done
echo "bench-info: vfio-test pinned to CPU 0 (taskset), and so are the edu twins' INTx lines for the round trip"
for round in $(seq 1 "$ROUNDS"); do
	for id in $IDS; do
		set -- $(bdfs_of "$id")
		[ $# -eq 2 ] || { echo "bench: want two $id, found $#"; continue; }
		# Odd rounds: the first twin is ours; even rounds: the second.
		ours=$1 up=$2
		[ $((round % 2)) -eq 0 ] && ours=$2 up=$1
		if bind vfio_pci_rs "$ours" && bind vfio-pci "$up"; then
			taskset 1 vfio-test bench "$ours" "$up" 2>&1 | grep -E '^(bench|not ok)' |
				sed "s/^/bench-result: $round $(name_of "$ours") $ours /"
		else
			echo "bench: cannot bind $ours/$up"
		fi
		release "$ours"; release "$up"
	done
	echo "bench: round $round done at $(cut -d' ' -f1 /proc/uptime) s"
done
