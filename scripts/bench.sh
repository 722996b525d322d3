#!/usr/bin/env bash
# `make bench`: one boot of the bench guest (the same kernel as the tests but with lock debugging
# off, kernel/bench.config, so lockdep does not dominate) with two twins of each bench device, one
# under vfio_pci_rs and one under upstream vfio-pci at the same time, sampled in interleaved
# batches by one process (tests/guest/bench.sh). Writes bench/results.md (also printed) and
# bench/results.png: per row the median time of each driver and the median of the pair ratios
# ours/upstream (below 1.00: vfio_pci_rs is faster). Under TCG absolute times mean little; the
# ratio is the figure. Builds go to OUT/bench, so the test build's OUT/kdir stays as it is.
#
# The guest's clock (BENCH_CLOCK): `virtual` (the default) runs QEMU with -icount shift=3,sleep=off,
# so guest time advances a fixed 8 ns per guest instruction (all vCPUs) and jumps over idle
# periods: a row's time is the instructions on its path plus its sleeps, the same from run to run
# (bench/profile.md, eighth round). `host` times TCG on the host's clock: emulator artifacts (its
# software TLB, jump cache, device exits) and host noise included, ratios of the sleep-bound rows
# moving +-0.01 between runs.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
clock=${BENCH_CLOCK:-virtual}
case $clock in
virtual) icount="-icount shift=3,sleep=off" clock_info="virtual: QEMU -icount shift=3,sleep=off (8 ns per guest instruction, idle skipped; BENCH_CLOCK=host for the host's clock)" ;;
host) icount="" clock_info="host: TCG timed on the host's clock (BENCH_CLOCK=virtual, the default, for instruction-exact time)" ;;
*) echo "bench: BENCH_CLOCK must be virtual or host, not '$clock'" >&2; exit 2 ;;
esac
out=$(realpath -m "$1")/bench
cd "$top"
t0=$(date +%s)
mkdir -p "$out"
bash scripts/kernel.sh bench > "$out/kdir"
kdir=$(cat "$out/kdir")
k=$(( $(date +%s) - t0 ))
# The module must match the bench kernel (Kbuild rebuilds it when the tree changes).
make -s module KDIR="$kdir" && make -s client
bash scripts/initramfs.sh "$kdir" "$out"
g0=$(date +%s)
VPR_QEMU_EXTRA="$icount ${VPR_QEMU_EXTRA:-}" VPR_GUEST_TIMEOUT=${VPR_GUEST_TIMEOUT:-900} \
	bash scripts/guest.sh bench "$kdir" "$out" >/dev/null
g=$(( $(date +%s) - g0 ))
echo "bench: guest run took $g s"
# Host details for the head of the results.
{
	echo "host_kernel $(uname -r)"
	echo "host_cpu $(nproc) x $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n1)"
	echo "qemu $(qemu-system-x86_64 --version | head -n1) (TCG, single-threaded, -smp 2, q35 + intel-iommu)"
	echo "clock $clock_info"
	echo "rustc $(rustc --version)"
	echo "driver $(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)"
	echo "bench_time guest run $g s; make bench up to the report $(( $(date +%s) - t0 )) s (of which set-up and bench kernel $k s)"
} > "$out/host.txt"
# Debian's python3 (where setup.sh installs matplotlib), whatever python3 is first in PATH.
/usr/bin/python3 scripts/bench_report.py "$out/console-bench.log" "$out/host.txt" bench/results.md bench/results.png
echo "bench: total $(( $(date +%s) - t0 )) s"
