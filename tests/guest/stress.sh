#!/bin/sh
# The guest side of `make stress` (mode `stress`, debug kernel with KASAN/lockdep/DEBUG_VM):
# differential fuzzing, races, hot-unplug cycles, unbind/rmmod while open, kills mid-fault.
# Budgets come from the kernel command line (vpr.fuzz_secs= vpr.fuzz_calls= vpr.race_secs=
# vpr.cycles=). Host-side: scripts/stress.sh drives device_del/device_add when it sees the
# `STRESS-UNPLUG n` / `STRESS-REPLUG n` markers, and prints the totals from the `# stress:` lines.
. /bin/lib.sh
arg() { v=$(sed -n "s/.*vpr\.$1=\([0-9]*\).*/\1/p" /proc/cmdline); echo "${v:-$2}"; }
fuzz_secs=$(arg fuzz_secs 40) fuzz_calls=$(arg fuzz_calls 300000) race_secs=$(arg race_secs 60)
cycles=$(arg cycles 20)
echo "KTAP version 1"
modprobe vfio_pci_rs && modprobe vfio-pci || not_ok stress.modprobe

# --- 1. Differential fuzz, every test device, both drivers, same seeds ---------------------
sh /bin/stress-fuzz.sh "$fuzz_secs" "$fuzz_calls"

# --- 2. Races: on one device (ivshmem: 1 GiB BAR, huge faults), several processes through the
# cdev at once: fuzzers (mmap/munmap/mremap/fork/reset/SET_IRQS/config writes), a faulting loop
# SIGKILLed at random moments (killed mid-fault, exit with live mappings), and mmap-race (readers
# vs COMMAND.MEM toggles and reset), all bounded by race_secs.
race_iter=0
bdf=$(bdf_of 1af4:1110)
for drv in vfio_pci_rs vfio-pci; do
	bind "$drv" "$bdf" || { not_ok "race.$drv.bind"; continue; }
	end=$(( $(cut -d. -f1 /proc/uptime) + race_secs ))
	vfio-test mmap-race --mode cdev "$bdf" > /tmp/mmap-race.log 2>&1 &
	mr=$!
	n=0
	while [ "$(cut -d. -f1 /proc/uptime)" -lt "$end" ]; do
		n=$((n + 1))
		vfio-test fuzz --mode cdev --seed "$n" --secs 5 --calls 20000 --out /dev/null "$bdf" >/dev/null 2>&1 &
		f1=$!
		vfio-test fault-loop "$bdf" 10 >/dev/null 2>&1 &
		f2=$!
		# Kill the faulting process after 0.1-1.0 s (mid-fault), the fuzzer after ~1-2 s.
		usleep $(( (n * 7919 % 10 + 1) * 100000 )); kill -9 $f2
		usleep $(( (n * 104729 % 10 + 10) * 100000 )); kill -9 $f1
		wait $f1 $f2 2>/dev/null
	done
	wait $mr; rc=$?
	race_iter=$((race_iter + n))
	grep -E '^(not )?ok ' /tmp/mmap-race.log | sed "s/^\(\(not \)\{0,1\}ok [0-9]* \)/\1race.$drv./" | tail -n 3
	[ $rc = 0 ] && ok "race.$drv.mmap_race" || not_ok "race.$drv.mmap_race" "exit $rc"
	echo "# race $drv: $n kill rounds"
	release "$bdf"
done
echo "# stress: race iterations $race_iter"

# --- 3. Unbind, rmmod while open ----------------------------------------------------------
bdf=$(bdf_of 1b36:0005)
for drv in vfio_pci_rs vfio-pci; do
	bind "$drv" "$bdf" || { not_ok "unbind_open.$drv.bind"; continue; }
	vfio-test hp-hold "$bdf" 30 > /tmp/hp.log 2>&1 &
	h=$!
	for i in $(seq 50); do grep -q ready /tmp/hp.log && break; usleep 200000; done
	unbind "$bdf"
	wait $h && ok "unbind_open.$drv.req_and_close" || not_ok "unbind_open.$drv.req_and_close" "$(cat /tmp/hp.log)"
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

# --- 4. Hot-unplug cycles of the extra e1000e (QEMU id hp0): REQ, probe, close, removal, re-add --
done_cycles=0
for c in $(seq "$cycles"); do
	# Every fourth cycle under upstream vfio-pci, for comparison.
	drv=vfio_pci_rs; [ $((c % 4)) = 0 ] && drv=vfio-pci
	bdf=$(bdf_of 8086:10d3) || { not_ok "hotplug.$c.present"; break; }
	bind "$drv" "$bdf" || { not_ok "hotplug.$c.$drv.bind"; break; }
	vfio-test hp-hold "$bdf" 60 > /tmp/hp.log 2>&1 &
	h=$!
	for i in $(seq 50); do grep -q ready /tmp/hp.log && break; usleep 200000; done
	echo "STRESS-UNPLUG $c"
	wait $h; rc=$?
	line=$(grep 'req=' /tmp/hp.log)
	for i in $(seq 150); do [ -e "/sys/bus/pci/devices/$bdf" ] || break; usleep 200000; done
	if [ $rc = 0 ] && [ ! -e "/sys/bus/pci/devices/$bdf" ]; then
		ok "hotplug.$c.$drv.unplugged"; done_cycles=$((done_cycles + 1))
	else
		not_ok "hotplug.$c.$drv.unplugged" "rc $rc, $(cat /tmp/hp.log)"
	fi
	echo "# hotplug $c $drv: $line"
	echo "STRESS-REPLUG $c"
	for i in $(seq 150); do bdf_of 8086:10d3 >/dev/null && break; usleep 200000; done
	bdf_of 8086:10d3 >/dev/null || { not_ok "hotplug.$c.readded"; break; }
done
echo "# stress: hot-unplug cycles $done_cycles"
echo "# stress done"
