#!/bin/sh
# `make bench`: the same timings under vfio_pci_rs and upstream vfio-pci in one boot, alternating
# drivers round by round (ours, upstream, ours, ...) so drift in the emulator hits both alike.
. /bin/lib.sh
modprobe vfio_pci_rs && modprobe vfio-pci || { echo "bench: modules failed to load"; exit 1; }

ROUNDS=${ROUNDS:-9}
# Guest details for the head of the results (lockdep leaves /proc/lockdep behind).
echo "bench-info: guest_kernel $(uname -r) ($(uname -v))"
echo "bench-info: guest_cpus $(grep -c ^processor /proc/cpuinfo) x $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n1)"
echo "bench-info: guest_lockdep $([ -e /proc/lockdep ] && echo on || echo off)"
echo "bench-info: rounds $ROUNDS"
for id in 1234:11e8 1af4:1110 1b36:0005; do
	bdf=$(bdf_of "$id") && echo "bench-info: device $(name_of "$bdf") $bdf"
done
for round in $(seq 1 "$ROUNDS"); do
	for drv in vfio_pci_rs vfio-pci; do
		for id in 1234:11e8 1af4:1110 1b36:0005; do
			bdf=$(bdf_of "$id")
			bind "$drv" "$bdf" || { echo "bench: cannot bind $bdf to $drv"; continue; }
			vfio-test bench "$bdf" 2>&1 | grep -E '^(bench|not ok)' |
				sed "s/^/bench-result: $drv $(name_of "$bdf") $round /"
			release "$bdf"
		done
	done
	echo "bench: round $round done at $(cut -d' ' -f1 /proc/uptime) s"
done
