#!/usr/bin/env bash
# `make bench`: boots the guest in bench mode and prints, per device and row, the median time
# per operation under vfio_pci_rs and under upstream vfio-pci and their ratio (ours/upstream;
# below 1.00 means vfio_pci_rs is faster), as a table and a bar chart (also in OUT/bench.md).
set -euo pipefail
out=$(realpath "$1")
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
make -s kernel OUT="$out"
kdir=$(cat "$out/kdir")
make -s module KDIR="$kdir" OUT="$out" && make -s client
bash scripts/initramfs.sh "$kdir" "$out"
start=$(date +%s)
bash scripts/guest.sh bench "$kdir" "$out" >/dev/null
echo "bench: guest run took $(( $(date +%s) - start )) s"
python3 - "$out/console-bench.log" "$out/bench.md" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"bench-result: (\S+) (\S+) (\d+) bench: (\S+) (\S+) (\d+)", line.strip())
    if m:
        drv, dev, _, row, ns, _ = m.groups()
        rows.setdefault((dev, row), {}).setdefault(drv, []).append(float(ns))
if not rows:
    sys.exit("bench: no results in the console log")
out = ["| device | row | vfio_pci_rs ns/op | vfio-pci ns/op | ratio |", "|---|---|---:|---:|---:|"]
chart = []
worst = 0.0
for (dev, row), d in sorted(rows.items()):
    ours, up = d.get("vfio_pci_rs"), d.get("vfio-pci")
    if not ours or not up:
        continue
    mo, mu = statistics.median(ours), statistics.median(up)
    ratio = mo / mu if mu else float("nan")
    worst = max(worst, ratio)
    out.append(f"| {dev} | {row} | {mo:,.0f} | {mu:,.0f} | {ratio:.2f} |")
    bar = "#" * max(1, round(ratio * 20))
    chart.append(f"{dev:8} {row:26} {ratio:5.2f} {bar}")
text = "\n".join(out) + "\n\nratio ours/upstream (20 # = 1.00):\n\n```\n" + "\n".join(chart) + "\n```\n"
text += f"\nworst ratio: {worst:.2f}\n"
open(sys.argv[2], "w").write(text)
print(text)
PY
