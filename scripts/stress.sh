#!/usr/bin/env bash
# `make stress`: builds the debug kernel variant (kernel/stress.config: KASAN, lockdep,
# DEBUG_VM, PCI hotplug; cached like the test kernel), the module against it (in OUT/stress, so
# OUT/kdir of the test kernel is untouched), boots the guest in mode `stress` with a QEMU monitor
# socket, answers the guest's hot-unplug markers with device_del/device_add, then prints the
# figures: fuzz calls per driver, mismatches, race iterations, hot-unplug cycles, kernel reports.
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

mon="$out/monitor.sock" log="$out/console-stress.log"
rm -f "$mon" "$log"
args="no_timer_check vpr.fuzz_secs=${VPR_FUZZ_SECS:-540} vpr.fuzz_calls=${VPR_FUZZ_CALLS:-210000}"
args+=" vpr.race_secs=${VPR_RACE_SECS:-40} vpr.cycles=${VPR_CYCLES:-24}"
VPR_QEMU_MONITOR="$mon" VPR_KERNEL_ARGS="$args" VPR_GUEST_TIMEOUT=${VPR_GUEST_TIMEOUT:-3600} \
	bash scripts/guest.sh stress "$kdir" "$out" >/dev/null &
guest=$!

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
while [ ! -f "$log" ]; do sleep 1; done
tail -n +1 --pid=$guest -F "$log" 2>/dev/null | while IFS= read -r line; do
	case "$line" in
	"STRESS-UNPLUG "*) monitor "device_del hp0" ;;
	"STRESS-REPLUG "*) monitor "device_add e1000e,id=hp0,bus=rp7" ;;
	"guest: done"*|*"Kernel panic"*) break ;;
	esac
done &
follower=$!
wait $guest
kill $follower 2>/dev/null
stamp "guest finished"

tr -d '\r' < "$log" > "$out/console.txt"
c=$out/console.txt
grep -E '^not ok [0-9]+ ' -A2 "$c" | head -n 40
pass=$(grep -cE '^ok [0-9]+ ' "$c") fail=$(grep -cE '^not ok [0-9]+ ' "$c")
reports=$(grep -cE 'WARNING:|BUG:|Oops|general protection|KASAN|UBSAN|possible circular locking|possible recursive locking|inconsistent lock state|lock held when returning|INFO: task .* blocked|hung_task|Kernel panic|suspicious RCU' "$c")
grep -nE 'WARNING:|BUG:|Oops|general protection|KASAN|UBSAN|possible circular|possible recursive|inconsistent lock|INFO: task|Kernel panic' "$c" | head -n 20
grep -E '^# fuzz class ' "$c"
grep -E '^# mismatch$|^#  [AB]: ' "$c" | head -n 15
grep -E '^# fuzz: ' "$c"
echo "stress: $(sed -n 's/^# fuzz totals: //p' "$c")"
echo "stress: $(sed -n 's/^# stress: //p' "$c" | paste -sd, -)"
echo "stress: kernel reports $reports"
echo "stress: $pass passed, $fail failed; guest completed: $(grep -q '^# stress done' "$c" && echo yes || echo no)"
stamp "total"
[ "$fail" = 0 ] && [ "$reports" = 0 ] && grep -q '^# stress done' "$c"
