#!/usr/bin/env bash
# Instruction-count profile of the bench rows: boots the guest (kernel of OUT/kdir) with the
# QEMU plugin bench/prof/insncount.c, runs bench/prof/guest.sh, and prints per row and driver
# the guest instructions per operation and the functions they go to (bench/prof/report.py).
# Usage: [PROF_N=2000] [PROF_ROWS='VENDOR:DEVICE:ROW ...'] [PROF_TLB=1] [PROF_TAIL=1] [PROF_LOAD='vfio-pci vfio_pci_rs']
#        bench/prof/run.sh OUT
# (PROF_TLB=1: also model QEMU's software TLB and count its refills, see insncount.c;
#  PROF_TAIL=1: count only what runs after the last sleep, with PROF_N=1 one operation's tail)
# (OUT/kdir names the kernel; the module and client must be built for it).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
out=$(realpath "$1")
kdir=$(cat "$out/kdir")
mkdir -p "$out/prof" && rm -f "$out/prof"/count.*
gcc -O2 -shared -fPIC -fvisibility=hidden -o "$out/prof/insncount.so" "$top/bench/prof/insncount.c"
# The guest script with this run's settings (PROF_N operations per row, PROF_ROWS) in front.
{ echo "PROF_N=${PROF_N:-2000}"; [ -z "${PROF_ROWS:-}" ] || echo "PROF_ROWS=\"$PROF_ROWS\"";
	[ -z "${PROF_LOAD:-}" ] || echo "PROF_LOAD=\"$PROF_LOAD\"";
	cat "$top/bench/prof/guest.sh"; } > "$out/prof/dev.sh"
VPR_DEV_SCRIPT="$out/prof/dev.sh" bash "$top/scripts/initramfs.sh" "$kdir" "$out/prof"
# On the bench's virtual clock (scripts/bench.sh): timer ticks land after the same instructions
# under both drivers, not wherever the host's clock puts them.
VPR_QEMU_EXTRA="-icount shift=3,sleep=off -plugin $out/prof/insncount.so,out=$out/prof/count${PROF_TLB:+,tlb=1}${PROF_TAIL:+,tail=1}" \
	VPR_GUEST_TIMEOUT=${VPR_GUEST_TIMEOUT:-1800} bash "$top/scripts/guest.sh" dev "$kdir" "$out/prof" >/dev/null
/usr/bin/python3 "$top/bench/prof/report.py" "$out/prof/console-dev.log" "$out/prof/count" "$kdir/System.map"
