#!/bin/sh
# `make bench`: the same timings under vfio_pci_rs and upstream vfio-pci in one boot. The bench
# guest has two twins of each device model (scripts/guest.sh); per model, one twin is bound to
# vfio_pci_rs and the other to vfio-pci at the same time, and `vfio-test bench OURS UP` alternates
# small batches between the two open devices in one process, so host noise hits both alike. Which
# twin is ours swaps every round, so their placement (bus, IOMMU group, BAR address) cancels out.
. /bin/lib.sh
# Where the drivers' code lands decides which translated blocks share a slot of QEMU's jump
# cache, a TCG artifact that moved single rows by up to +-0.1 from one build to the next
# (bench/profile.md, fifth round). So every round reloads both drivers and places them anew:
# which driver loads first, and whether an unrelated module (sit, with its dependencies) sits
# in front of them in module space. Round r (from 0) has the first twin as vfio_pci_rs's when
# bit 0 of r is clear, vfio-pci loaded first when bit 1 is set, the spacer when bit 2 is set:
# 8 rounds take each combination once, and the ratios are medians over the placements.
load_drivers() { # ROUND FIRST SPACER
	rmmod vfio_pci vfio_pci_core vfio_pci_rs sit ip_tunnel tunnel4 2>/dev/null
	[ "$3" = 1 ] && { modprobe sit || echo "bench: spacer module failed to load"; }
	case $2 in
	vfio_pci_rs) modprobe vfio_pci_rs && modprobe vfio-pci ;;
	*) modprobe vfio-pci && modprobe vfio_pci_rs ;;
	esac || { echo "bench: modules failed to load"; exit 1; }
	echo "bench-info: round $1 loads $2 first, spacer $3; text at$(awk '$1 ~ /^vfio_pci(_rs|_core)?$/ { printf " %s %s", $1, $6 }' /proc/modules)"
}

ROUNDS=${ROUNDS:-8}
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
# The console during the rounds shows errors only (console loglevel 4, what a host booted
# `quiet` prints). Under TCG each console line costs about a millisecond of emulated UART, a
# fifth of a reset, and every reset logs two PCI core warnings ("resetting", "reset done")
# headed by the driver's name, three characters longer for vfio_pci_rs: with the console at
# loglevel 6 the reset rows measured that (bench/profile.md, sixth round). Nothing is lost: the
# kernel log of the rounds is printed after them, and bench_report.py fails the run on any
# kernel report in it.
dmesg -c >/dev/null
dmesg -n 4
echo "bench-info: console loglevel 4 during the rounds (errors only, as a host booted quiet); the kernel log follows them"
for round in $(seq 1 "$ROUNDS"); do
	first=vfio_pci_rs
	[ $(((round - 1) / 2 % 2)) -eq 1 ] && first=vfio-pci
	load_drivers "$round" $first $(((round - 1) / 4 % 2))
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
dmesg -n 6
# The kernel log of the rounds, less the reset notices (counted instead).
dmesg > /tmp/bench-dmesg
notice=': (resetting|reset done)$'
echo "bench-info: kernel log of the rounds: $(grep -cE "$notice" /tmp/bench-dmesg) PCI core reset notices, the other lines follow"
grep -vE "$notice" /tmp/bench-dmesg | sed 's/^/bench-dmesg: /'
