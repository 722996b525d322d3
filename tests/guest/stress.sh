#!/bin/sh
# The guest side of `make stress` (mode `stress`, debug kernel with KASAN/lockdep/DEBUG_VM):
# differential fuzzing, races, hot-unplug cycles, unbind/rmmod while open, kills mid-fault.
# Budgets come from the kernel command line (vpr.fuzz_secs= vpr.fuzz_calls= vpr.race_secs=
# vpr.cycles=). Host-side: scripts/stress.sh drives device_del/device_add when it sees the
# `STRESS-UNPLUG n` / `STRESS-REPLUG n` markers, and prints the totals from the `# stress:` lines.
. /bin/lib.sh
arg() { v=$(sed -n "s/.*vpr\.$1=\([0-9]*\).*/\1/p" /proc/cmdline); echo "${v:-$2}"; }
fuzz_secs=$(arg fuzz_secs 90) fuzz_calls=$(arg fuzz_calls 220000) race_secs=$(arg race_secs 40)
cycles=$(arg cycles 20)
# vpr.drivers=vfio_pci_rs or vfio-pci: this guest is one of two that scripts/stress.sh runs at
# once (one per host core); the fuzz outcome files go to the host through the 9p share `vpr`,
# where the two runs are compared. Section 3 runs in the vfio_pci_rs guest. Without it (one guest) both drivers run here, one after the other.
drivers=$(sed -n 's/.*vpr\.drivers=\([^ ]*\).*/\1/p' /proc/cmdline | tr , ' ')
drivers=${drivers:-vfio_pci_rs vfio-pci} keep=""
echo "KTAP version 1"
modprobe vfio_pci_rs && modprobe vfio-pci || not_ok stress.modprobe
if [ "$drivers" != "vfio_pci_rs vfio-pci" ]; then
	mkdir -p /mnt/share && mount -t 9p -o trans=virtio,version=9p2000.L vpr /mnt/share &&
		keep=/mnt/share || not_ok stress.share "no 9p share to hand the fuzz outcomes to the host"
fi
main=no; case " $drivers " in *" vfio_pci_rs "*) main=yes ;; esac

# --- Hot-unplug cycles of the extra e1000e (QEMU id hp0): REQ, probe, close, removal, re-add --
# They run in the background while the fuzz and the races use the other devices: a cycle is
# mostly waiting (pciehp's 5 s attention-button delay, QEMU's device_add), and the fuzz keeps the
# single TCG vCPU busy meanwhile. Section 3 (rmmod) waits for them to finish.
hotplug_cycles() {
	done_cycles=0
	# The slots appear only with a hotplug driver (pciehp or acpiphp: the stress kernel has both).
	# Without one (the test kernel), the same kernel path (pci_stop_and_remove_bus_device with the
	# device open) is driven through sysfs remove and rescan instead of the QEMU monitor.
	how=monitor
	ls /sys/bus/pci/slots 2>/dev/null | grep -q . || how=sysfs
	echo "# hotplug cycles through $how"
	for c in $(seq "$cycles"); do
		# Every fourth cycle under upstream vfio-pci, for comparison.
		drv=vfio_pci_rs; [ $((c % 4)) = 0 ] && drv=vfio-pci
		bdf=$(bdf_of 8086:10d3) || { not_ok "hotplug.$c.present"; break; }
		bind "$drv" "$bdf" || { not_ok "hotplug.$c.$drv.bind"; break; }
		# A re-added device can be bound a moment before its IOMMU group link appears.
		for i in $(seq 25); do [ -e "/sys/bus/pci/devices/$bdf/iommu_group" ] && break; usleep 200000; done
		vfio-test hp-hold "$bdf" 60 > /tmp/hp.log 2>&1 &
		h=$!
		for i in $(seq 50); do grep -q ready /tmp/hp.log && break; usleep 200000; done
		if [ $how = monitor ]; then echo "STRESS-UNPLUG $c"; else echo 1 > "/sys/bus/pci/devices/$bdf/remove" & fi
		wait $h; rc=$?
		line=$(grep 'req=' /tmp/hp.log)
		for i in $(seq 150); do [ -e "/sys/bus/pci/devices/$bdf" ] || break; usleep 200000; done
		if [ $rc = 0 ] && [ ! -e "/sys/bus/pci/devices/$bdf" ]; then
			ok "hotplug.$c.$drv.unplugged"; done_cycles=$((done_cycles + 1))
		else
			not_ok "hotplug.$c.$drv.unplugged" "rc $rc, $(cat /tmp/hp.log)"
			break  # the next cycles would only wait for the same timeouts
		fi
		echo "# hotplug $c $drv: $line"
		if [ $how = monitor ]; then echo "STRESS-REPLUG $c"; else wait; echo 1 > /sys/bus/pci/rescan; fi
		for i in $(seq 150); do bdf_of 8086:10d3 >/dev/null && break; usleep 200000; done
		bdf_of 8086:10d3 >/dev/null || { not_ok "hotplug.$c.readded"; break; }
	done
	echo "# stress: hot-unplug cycles $done_cycles ($how)"
}
# vpr.hotplug=0: the cycles run in the other guest (scripts/stress.sh gives them to the vfio-pci
# guest, whose fuzz is the shorter, so the two guests finish together).
hotplug=""
[ "$(arg hotplug 1)" = 1 ] && { hotplug_cycles & hotplug=$!; }

# --- 1. Differential fuzz, every test device, both drivers, same seeds ---------------------
sh /bin/stress-fuzz.sh "$fuzz_secs" "$fuzz_calls" 20261124 "$drivers" "$keep"

# --- 2. Races, per driver, on ivshmem (1 GiB BAR) and pci-testdev: `vfio-test races` shares one
# open device between forked workers (2 fuzzers, a 3-thread faulter, a COMMAND.MEM toggler that
# also resets) and SIGKILLs/respawns one every 20-300 ms (killed mid-fault, exit with live
# mappings), closing and reopening the device every 16 rounds; then mmap-race (readers vs MEM
# toggles and reset). A device opens once at a time.
race_iter=0
for id in 1af4:1110 1b36:0005; do
	bdf=$(bdf_of $id) name=$(name_of "$bdf")
	for drv in $drivers; do
		bind "$drv" "$bdf" || { not_ok "race.$drv.$name.bind"; continue; }
		r=$(vfio-test races "$bdf" "$race_secs" 2>&1 | tail -n 1)
		echo "# race $drv $name: $r"
		n=$(echo "$r" | sed -n 's/^races: \([0-9]*\) rounds.*/\1/p')
		[ -n "$n" ] && ok "race.$drv.$name.races" || not_ok "race.$drv.$name.races" "$r"
		race_iter=$((race_iter + ${n:-0}))
		# Under vfio-pci mmap-race takes ~10 minutes (its 10k toggles are slow there); `make test`
		# runs it under both drivers, here it runs under vfio_pci_rs only.
		if [ "$name" = ivshmem ] && [ "$drv" = vfio_pci_rs ]; then
			vfio-test mmap-race --mode cdev "$bdf" > /tmp/mmap-race.log 2>&1
			rc=$?
			[ $rc = 0 ] && ok "race.$drv.mmap_race" || not_ok "race.$drv.mmap_race" "$(grep '^not ok' /tmp/mmap-race.log | head -n 3)"
		fi
		release "$bdf"
	done
done
echo "# stress: race iterations $race_iter"

# --- 3. Unbind, rmmod while open (after the hot-unplug cycles, which use vfio_pci_rs) -------
wait $hotplug
if [ $main = no ]; then echo "# stress done"; exit 0; fi
bdf=$(bdf_of 1b36:0005)
for drv in vfio_pci_rs vfio-pci; do
	bind "$drv" "$bdf" || { not_ok "unbind_open.$drv.bind"; continue; }
	vfio-test hp-hold "$bdf" 30 > /tmp/hp.log 2>&1 &
	h=$!
	for i in $(seq 50); do grep -q ready /tmp/hp.log && break; usleep 200000; done
	unbind "$bdf"
	# On failure, also what the client looked for: the group link and the group nodes present.
	wait $h && ok "unbind_open.$drv.req_and_close" || not_ok "unbind_open.$drv.req_and_close" \
		"$(cat /tmp/hp.log); iommu_group $(readlink "/sys/bus/pci/devices/$bdf/iommu_group"); /dev/vfio: $(ls /dev/vfio | tr '\n' ' ')"
	sed 's/^/# /' /tmp/hp.log
	[ -z "$(driver_of "$bdf")" ] && ok "unbind_open.$drv.unbound" || not_ok "unbind_open.$drv.unbound"
	release "$bdf"
done
mod=vfio_pci_rs
bind vfio_pci_rs "$bdf"
vfio-test hold --mode group "$bdf" 4 >/dev/null 2>&1 &
h=$!
usleep 1500000
if rmmod $mod 2>/dev/null; then
	ok rmmod_open.waited_or_refused  # rmmod may wait for the user; both are correct
else
	ok rmmod_open.refused_while_open
	wait $h; check rmmod_open.after_close rmmod $mod
fi
wait $h 2>/dev/null
modprobe vfio_pci_rs

echo "# stress done"
