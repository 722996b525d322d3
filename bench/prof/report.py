#!/usr/bin/env python3
"""Names the instruction counts of bench/prof/insncount.c: per profiled row and driver, guest
instructions per operation and the functions they were spent in (kernel symbols from System.map
shifted by the run's KASLR offset, module symbols from the guest's /proc/kallsyms).
Usage: report.py CONSOLE_LOG COUNT_PREFIX SYSTEM_MAP"""
import os
import bisect
import collections
import re
import sys

log, prefix, sysmap = sys.argv[1:4]
runs, syms, text = [], [], None
for line in open(log, errors="replace"):
    if m := re.match(r"prof-run: (\S+) (\S+) (\S+) (\d+)", line):
        runs.append((m[1], m[2], m[3], int(m[4])))
    elif m := re.match(r"prof-sym: ([0-9a-f]+) \S (\S+)(?:\s+\[(\S+)\])?", line):
        if m[2] == "_text" and not m[3]:
            text = int(m[1], 16)
        else:
            syms.append((int(m[1], 16), f"{m[2]} [{m[3]}]"))
if text is None:
    sys.exit("prof: no _text in the console log")
kmap = [l.split() for l in open(sysmap)]
mtext = next(int(a, 16) for a, t, n in kmap if n == "_text")
syms += [(int(a, 16) - mtext + text, n) for a, t, n in kmap if t in "tT"]
syms.sort()
addrs = [a for a, _ in syms]


def name(va):
    if va < 0xFFFF800000000000:
        return "[user space]"
    i = bisect.bisect_right(addrs, va) - 1
    return syms[i][1] if i >= 0 else hex(va)


results = {}
for i, (drv, dev, row, n) in enumerate(runs):
    try:
        lines = open(f"{prefix}.{i}").read().split("\n")
    except OSError:
        continue
    head = lines[0].split()
    total, lookups, jcm = int(head[1]), int(head[2]), int(head[3])
    # With the TLB model (PROF_TLB=1): refills at 256, 1024 and 4096 entries.
    tlb = [int(x) / n for x in head[4:7]]
    per, blocks, looks = collections.Counter(), collections.Counter(), collections.Counter()
    fills, jcms = collections.Counter(), collections.Counter()
    for l in lines[1:]:
        if l:
            va, insns, execs, lk, fl, jm = l.split()
            fn = name(int(va, 16))
            per[fn] += int(insns)
            blocks[fn] += int(execs)
            looks[fn] += int(lk)
            fills[fn] += int(fl)
            jcms[fn] += int(jm)
    results[(dev, row, drv)] = (total / n, {k: v / n for k, v in per.items()},
                                sum(blocks.values()) / n, {k: v / n for k, v in blocks.items()},
                                lookups / n, {k: v / n for k, v in looks.items()},
                                tlb, {k: v / n for k, v in fills.items()},
                                jcm / n, {k: v / n for k, v in jcms.items()})

for dev, row in dict.fromkeys((d, r) for d, r, _ in results):
    ours = results.get((dev, row, "vfio_pci_rs"))
    up = results.get((dev, row, "vfio-pci"))
    if not ours or not up:
        continue
    print(f"\n## {dev} {row}: instructions per operation: vfio_pci_rs {ours[0]:.0f}, "
          f"vfio-pci {up[0]:.0f}, ratio {ours[0] / up[0]:.2f}; translation blocks executed "
          f"per operation: {ours[2]:.0f} / {up[2]:.0f}, ratio {ours[2] / up[2]:.2f}; unchained "
          f"block entries (jump-cache lookups): {ours[4]:.0f} / {up[4]:.0f}, "
          f"ratio {ours[4] / up[4]:.2f}; jump-cache misses (model): {ours[8]:.1f} / {up[8]:.1f}")
    if ours[6] and up[6]:
        print("software TLB refills per operation (256 / 1024 / 4096 entries): "
              + ", ".join(f"{o:.1f} / {u:.1f}" for o, u in zip(ours[6], up[6])))
    print("\n| function | vfio_pci_rs | vfio-pci | difference | blocks ours | blocks upstream "
          "| lookups ours | lookups upstream | jump-cache misses ours | jump-cache misses upstream "
          "| TLB refills ours | TLB refills upstream |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    keys = set(ours[1]) | set(up[1])
    diff = sorted(keys, key=lambda k: -abs(ours[1].get(k, 0) - up[1].get(k, 0))
                  - abs(ours[3].get(k, 0) - up[3].get(k, 0))
                  - 5 * abs(ours[5].get(k, 0) - up[5].get(k, 0))
                  - 20 * abs(ours[7].get(k, 0) - up[7].get(k, 0))
                  - 20 * abs(ours[9].get(k, 0) - up[9].get(k, 0)))
    for k in diff[:int(os.environ.get("PROF_TOP", "18"))]:
        o, u = ours[1].get(k, 0), up[1].get(k, 0)
        print(f"| {k} | {o:.0f} | {u:.0f} | {o - u:+.0f} | {ours[3].get(k, 0):.1f} | "
              f"{up[3].get(k, 0):.1f} | {ours[5].get(k, 0):.1f} | {up[5].get(k, 0):.1f} | "
              f"{ours[9].get(k, 0):.1f} | {up[9].get(k, 0):.1f} | "
              f"{ours[7].get(k, 0):.1f} | {up[7].get(k, 0):.1f} |")
