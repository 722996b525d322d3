#!/usr/bin/env bash
# `make stress`: builds the debug kernel variant (kernel/stress.config: KASAN, lockdep,
# DEBUG_VM, PCI hotplug; cached like the test kernel), the module against it (in OUT/stress, so
# OUT/kdir of the test kernel is untouched), boots the guest in mode `stress` with a QEMU monitor
# socket, answers the guest's hot-unplug markers with device_del/device_add, then prints the
# figures: fuzz calls per driver, mismatches, race iterations, hot-unplug cycles, kernel reports.
# The two drivers run in two guests at once (one per host core), compared on the host.
# Budgets: VPR_FUZZ_CALLS per device (5 devices: 1.05 million calls under vfio_pci_rs, the same
# calls again under vfio-pci) capped by VPR_FUZZ_SECS per device (KASAN: 600-1600 calls/s), VPR_RACE_SECS per device and
# driver (2 devices), VPR_CYCLES hot-unplug cycles (every fourth under vfio-pci).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-$top/out}")/stress
mkdir -p "$out" && cd "$top"
t0=$(date +%s)
stamp() { echo "stress: $* ($(( $(date +%s) - t0 )) s)"; }

# VPR_STRESS_KDIR: use another build tree (e.g. the test kernel's, to try the scripts quickly).
kdir=${VPR_STRESS_KDIR:-$(bash scripts/kernel.sh stress)} || { echo "stress: kernel build failed"; exit 1; }
stamp "kernel ready: $(basename "$kdir")"
make -s module KDIR="$kdir" OUT="$out" >"$out/module.log" 2>&1 || { cat "$out/module.log"; exit 1; }
make -s client && bash scripts/initramfs.sh "$kdir" "$out" || exit 1
# The module objects in the checkout were built for the stress tree: drop them so the next
# `make module` for the test kernel rebuilds from scratch.
make -s -C "$kdir" M="$top" clean >/dev/null 2>&1
stamp "module, client and initramfs ready"

# Two guests at once, one per host core (each is single-threaded TCG): the first runs
# everything under vfio_pci_rs (fuzz, races, the hot-unplug cycles, unbind/rmmod while open),
# the second the same fuzz seeds and races under vfio-pci. Both hand their fuzz outcome files to
# the host through a 9p share, and the host compares them call by call afterwards.
mon="$out/monitor.sock" log="$out/console-stress.log" share="$out/fuzz"
rm -rf "$mon" "$log" "$share" "$out/up" && mkdir -p "$share" "$out/up"
ln -s ../initramfs.cpio.gz "$out/up/initramfs.cpio.gz"
args="no_timer_check vpr.fuzz_secs=${VPR_FUZZ_SECS:-540} vpr.fuzz_calls=${VPR_FUZZ_CALLS:-210000}"
args+=" vpr.race_secs=${VPR_RACE_SECS:-40} vpr.cycles=${VPR_CYCLES:-24}"
export VPR_QEMU_EXTRA="-virtfs local,path=$share,mount_tag=vpr,security_model=none,id=vpr"
export VPR_GUEST_TIMEOUT=${VPR_GUEST_TIMEOUT:-3600}
# The hot-unplug cycles (every fourth under vfio-pci) run in the second guest, whose fuzz is the
# shorter, so that the two finish about together; the monitor socket is that guest's.
VPR_KERNEL_ARGS="$args vpr.drivers=vfio_pci_rs vpr.hotplug=0" \
	bash scripts/guest.sh stress "$kdir" "$out" >/dev/null &
guest=$!
VPR_QEMU_MONITOR="$mon" VPR_KERNEL_ARGS="$args vpr.drivers=vfio-pci vpr.hotplug=1" \
	bash scripts/guest.sh stress "$kdir" "$out/up" >/dev/null 2>"$out/up/guest.err" &
guest_up=$!
hplog=$out/up/console-stress.log

# One monitor command per connection (the socket accepts one client at a time).
monitor() {
	python3 - "$mon" "$1" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode())
time.sleep(0.5)
s.close()
PY
}
# Follow the console: the guest prints STRESS-UNPLUG n / STRESS-REPLUG n and waits for us.
while [ ! -f "$hplog" ]; do sleep 1; done
tail -n +1 --pid=$guest_up -F "$hplog" 2>/dev/null | while IFS= read -r line; do
	case "$line" in
	"STRESS-UNPLUG "*) monitor "device_del hp0" ;;
	"STRESS-REPLUG "*) monitor "device_add e1000e,id=hp0,bus=rp7" ;;
	"guest: done"*|*"Kernel panic"*) break ;;
	esac
done &
follower=$!
wait $guest
stamp "vfio_pci_rs guest finished"
wait $guest_up
kill $follower 2>/dev/null
stamp "vfio-pci guest finished"

# The differential comparison of the two guests' fuzz runs, device by device, in KTAP form
# (so the counts below include it): the same script as the guest's comparison.
sh tests/guest/fuzz-compare.sh "$share" "$top/tests/client/target/x86_64-unknown-linux-gnu/release/vfio-test" \
	>"$out/compare.txt"
# One record of the run: both consoles, then the comparison.
cat "$log" "$out/up/console-stress.log" "$out/compare.txt" | tr -d '\r' > "$out/console.txt"
c=$out/console.txt
grep -E '^not ok [0-9]+ ' -A2 "$c" | head -n 40
pass=$(grep -cE '^ok [0-9]+ ' "$c") fail=$(grep -cE '^not ok [0-9]+ ' "$c")
reports=$(grep -cEf "$top/scripts/kernel-reports.ere" "$c")
grep -nEf "$top/scripts/kernel-reports.ere" "$c" | head -n 20
grep -E '^# fuzz class ' "$c"
grep -E '^# mismatch$|^#  [AB]: ' "$c" | head -n 15
grep -E '^# fuzz: ' "$c"
echo "stress: $(sed -n 's/^# fuzz totals: //p' "$c")"
echo "stress: $(sed -n 's/^# stress: hot-unplug/hot-unplug/p' "$c"), race iterations" \
	"$(sed -n 's/^# stress: race iterations //p' "$c" | awk '{ s += $1 } END { print s + 0 }')"
echo "stress: kernel reports $reports"
echo "stress: $pass passed, $fail failed; guests completed: $(grep -c '^# stress done' "$c") of 2"
stamp "total"
[ "$fail" = 0 ] && [ "$reports" = 0 ] && [ "$(grep -c '^# stress done' "$c")" = 2 ]
