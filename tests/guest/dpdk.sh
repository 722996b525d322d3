#!/bin/sh
# DPDK as a real client (sourced after lib.sh by dropin.sh and run.sh): Debian's dpdk-testpmd
# and dpdk-devbind.py, run from the host's root shared read-only over 9p (scripts/guest.sh,
# mount tag hostroot) in a chroot that has this guest's /proc, /sys, /dev and hugetlbfs.

# The igb ports joined by the hub: the last two 8086:10c9 devices (the first is the test suite's
# own igb on rp4, which has no network backend; guest.sh puts the hub's ports after it).
hub_ports() {
	ports=$(for d in /sys/bus/pci/devices/*; do
		[ "$(cat "$d/vendor"):$(cat "$d/device")" = 0x8086:0x10c9 ] && basename "$d"
	done | tail -n 2)
	p0=$(echo "$ports" | sed -n 1p) p1=$(echo "$ports" | sed -n 2p)
}

# dpdk_env: mounts the host's root on /host with the guest's kernel file systems in it and
# reserves 2 MiB pages for testpmd (its mbuf pool and rings take a few tens of MiB); sets
# dpdk_ok=1 when testpmd and devbind are there.
host=/host
# The kernel starts /init without PATH; devbind runs python3 and lspci from the chroot's PATH.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
dpdk_env() {
	dpdk_ok=0
	mkdir -p $host /dev/shm /dev/hugepages
	mount -t 9p -o trans=virtio,version=9p2000.L,ro hostroot $host || return 0
	mount -t tmpfs shm /dev/shm
	mount -t proc proc $host/proc && mount -t sysfs sys $host/sys && mount --bind /dev $host/dev &&
		mount -t tmpfs tmp $host/tmp && mount -t tmpfs run $host/run &&
		mount -t hugetlbfs hugetlbfs $host/dev/hugepages || return 0
	echo 128 > /proc/sys/vm/nr_hugepages
	[ -x $host/usr/bin/dpdk-testpmd ] && [ -x $host/usr/bin/dpdk-devbind.py ] && dpdk_ok=1
	return 0
}

# Interrupts of the two ports' VFIO MSI-X vectors so far (/proc/interrupts: vfio-msix[n](BDF)).
msix_count() {
	grep -E "vfio-msix\[[0-9]+\]\(($p0|$p1)\)" /proc/interrupts |
		awk '{ for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i } END { print s + 0 }'
}

# testpmd_run LABEL SECONDS: binds both ports with `dpdk-devbind.py --bind=vfio-pci` (as a user
# does; the driver must be loaded), starts testpmd in its interactive mode with io forwarding,
# and once it prompts types `start tx_first` (a first burst on each port, then every packet
# received on one port is sent on the other: the hub brings it back), `stop` SECONDS later, and
# `quit`. Interactive, because on its command line --tx-first turns link-state interrupts off.
# Leaves the ports bound. Sets rc (testpmd's exit status), started (1 if it prompted), startup
# (its seconds to the prompt), secs (between start and stop), irqs (the two ports' MSI-X
# interrupts so far, read before `stop`: link-state changes, which the igb PMD takes through a
# VFIO eventfd), and
# writes /tmp/dpdk/result.LABEL, one line per port:
#   dropin: result LABEL port=N rx=.. tx=.. rx_dropped=.. tx_dropped=.. rx_errors=.. seconds=.. lsc_irqs=..
# from the per-port statistics `stop` prints; testpmd's output is in /tmp/dpdk/testpmd.LABEL.log.
testpmd_run() {
	label=$1 secs_wanted=$2 log=/tmp/dpdk/testpmd.$1.log
	mkdir -p /tmp/dpdk
	chroot $host /usr/bin/dpdk-devbind.py --bind=vfio-pci "$p0" "$p1" >/tmp/dpdk/devbind.$label.log 2>&1
	rm -f /tmp/dpdk/in && mkfifo /tmp/dpdk/in
	chroot $host /usr/bin/dpdk-testpmd -l 0-1 -n 1 --in-memory -a "$p0" -a "$p1" -- \
		-i --forward-mode=io --nb-cores=1 --total-num-mbufs=4096 \
		</tmp/dpdk/in >"$log" 2>&1 &
	pid=$!
	exec 3>/tmp/dpdk/in
	t0=$(cut -d' ' -f1 /proc/uptime) started=0
	# Starting takes a while under TCG: ~150 libraries over 9p, probing, link up.
	while [ -d /proc/$pid ] && [ "$(awk "BEGIN { print ($(cut -d' ' -f1 /proc/uptime) - $t0 < 240) }")" = 1 ]; do
		grep -q 'testpmd>' "$log" && { started=1; break; }
		sleep 1
	done
	startup=$(awk "BEGIN { printf \"%.0f\", $(cut -d' ' -f1 /proc/uptime) - $t0 }")
	f0=$(cut -d' ' -f1 /proc/uptime) irqs=0
	if [ "$started" = 1 ]; then
		echo "start tx_first" >&3
		sleep "$secs_wanted"
		# The vectors' lines exist while testpmd has them enabled (from port start to exit).
		irqs=$(msix_count)
		echo "stop" >&3
	fi
	f1=$(cut -d' ' -f1 /proc/uptime)
	echo "quit" >&3
	exec 3>&-
	n=0
	while [ -d /proc/$pid ] && [ "$(cut -d' ' -f3 /proc/$pid/stat)" != Z ] && [ $n -lt 120 ]; do
		sleep 1; n=$((n + 1))
	done
	[ "$(cut -d' ' -f3 /proc/$pid/stat 2>/dev/null)" = Z ] || { kill -INT $pid 2>/dev/null; sleep 5; }
	wait $pid
	rc=$?
	secs=$(awk "BEGIN { printf \"%.1f\", $f1 - $f0 }")
	# The per-port blocks of the final statistics (not the accumulated one).
	awk -v label="$label" -v secs="$secs" -v irqs="$irqs" '
		/Forward statistics for port/ { port = $(NF - 1); inport = 1; rxe[port] = 0; next }
		/Accumulated forward statistics/ { inport = 0 }
		inport && /RX-packets:/ { rx[port] = $2; rxd[port] = $4 }
		inport && /RX-error:/ { rxe[port] = $2 }
		inport && /RX-nombufs:/ { rxe[port] += $2 }
		inport && /TX-packets:/ { tx[port] = $2; txd[port] = $4 }
		END { for (p in rx) printf "dropin: result %s port=%s rx=%s tx=%s rx_dropped=%s tx_dropped=%s rx_errors=%s seconds=%s lsc_irqs=%s\n",
			label, p, rx[p], tx[p], rxd[p], txd[p], rxe[p], secs, irqs }' "$log" | sort >/tmp/dpdk/result.$label
}
