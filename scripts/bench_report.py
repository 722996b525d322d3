#!/usr/bin/env python3
"""`make bench` report: reads the bench guest's console log and writes the markdown table and the
PNG chart. Usage: bench_report.py CONSOLE_LOG HOST_TXT RESULTS_MD RESULTS_PNG

Console lines (from tests/guest/bench.sh and `vfio-test bench`):
  bench-info: KEY VALUE...
  bench-result: DRIVER DEVICE ROUND bench: ROW NS_PER_OP COUNT
  bench-result: DRIVER DEVICE ROUND bench-faults: ROW minflt=N [pte=N pmd=N pud=N fallback=N]
  bench-result: DRIVER DEVICE ROUND bench-note: ROW TEXT
  bench-result: DRIVER DEVICE ROUND not ok ...
Per row: the median ns/op of each driver and the median of the per-round ratios ours/upstream
(round r of vfio_pci_rs against round r of vfio-pci, which ran right after it).
"""
import re
import statistics
import sys

OURS, UP = "vfio_pci_rs", "vfio-pci"

# What each row measures, for the table (rows not listed show their name only).
WHAT = {
    "open_close": "open + close of the device fd (cdev), resets included",
    "device_reset": "VFIO_DEVICE_RESET",
    "config_pread4": "config space 4-byte pread, every dword of the header",
    "config_pwrite2_command": "config space 2-byte pwrite of COMMAND",
    "bar_pread4_mem": "memory BAR 4-byte pread",
    "bar_pwrite4_mem": "memory BAR 4-byte pwrite",
    "bar_pread4_io": "I/O BAR 4-byte pread",
    "bar_pwrite4_io": "I/O BAR 4-byte pwrite",
    "msi_loopback": "MSI loopback trigger -> eventfd read",
    "intx_loopback": "INTx loopback trigger -> eventfd read",
    "intx_edu_round_trip": "edu raises INTx -> eventfd -> ack -> unmask",
    "map_touch_1024m_aligned": "mmap 1 GiB BAR (1 GiB-aligned) + read every 4K page + munmap",
    "map_touch_1024m_null_hint": "mmap 1 GiB BAR (NULL hint) + read every 4K page + munmap",
    "zap_refault_1024m": "COMMAND.MEM off/on (zap) + read every 4K page again",
}


def fmt_ns(ns):
    for unit, div in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= div:
            return f"{ns / div:.3g} {unit}"
    return f"{ns:.0f} ns"


def main():
    log, host, md, png = sys.argv[1:5]
    info, times, faults, notes, failures = [], {}, {}, {}, []
    for line in open(log, errors="replace"):
        line = line.strip()
        if line.startswith("bench-info: "):
            info.append(line[len("bench-info: "):])
            continue
        m = re.match(r"bench-result: (\S+) (\S+) (\d+) (.*)", line)
        if not m:
            continue
        drv, dev, rnd, rest = m.group(1), m.group(2), int(m.group(3)), m.group(4)
        if rest.startswith("not ok"):
            failures.append(f"{drv} {dev} round {rnd}: {rest}")
        elif m2 := re.match(r"bench: (\S+) (\S+) (\d+)", rest):
            times.setdefault((dev, m2.group(1)), {}).setdefault(drv, {})[rnd] = float(m2.group(2))
        elif m2 := re.match(r"bench-faults: (\S+) (.*)", rest):
            kv = dict(x.split("=") for x in m2.group(2).split())
            faults.setdefault((dev, m2.group(1)), {}).setdefault(drv, []).append(kv)
        elif m2 := re.match(r"bench-note: (\S+) (.*)", rest):
            notes.setdefault((dev, m2.group(1)), {})[drv] = m2.group(2)
    if not times:
        sys.exit("bench: no results in the console log")

    rows = []
    for (dev, row), d in times.items():
        ours, up = d.get(OURS, {}), d.get(UP, {})
        pairs = [ours[r] / up[r] for r in sorted(ours) if r in up and up[r] > 0]
        if not pairs:
            continue
        rows.append(
            dict(
                dev=dev,
                row=row,
                ours=statistics.median(ours.values()),
                up=statistics.median(up.values()),
                ratio=statistics.median(pairs),
                lo=min(pairs),
                hi=max(pairs),
                n=len(pairs),
            )
        )
    order = list(WHAT)
    rows.sort(key=lambda r: (order.index(r["row"]) if r["row"] in order else 99, r["dev"]))

    text = ["# vfio_pci_rs vs upstream vfio-pci: benchmarks", ""]
    text += ["Produced by `make bench`. Under TCG absolute times mean little: the ratio column "
             "(median over rounds of ours/upstream, the two drivers' runs of a round next to "
             "each other) is the figure; below 1.00 vfio_pci_rs is faster.", ""]
    text += ["## Setup", ""]
    text += [f"- {l}" for l in open(host).read().splitlines()]
    text += [f"- {l}" for l in info]
    text += ["", "## Results", ""]
    text += ["| device | row | what | vfio_pci_rs | vfio-pci | ratio | min-max | rounds |",
             "|---|---|---|---:|---:|---:|---|---:|"]
    for r in rows:
        text.append(
            f"| {r['dev']} | {r['row']} | {WHAT.get(r['row'], '')} | {fmt_ns(r['ours'])} | "
            f"{fmt_ns(r['up'])} | **{r['ratio']:.2f}** | {r['lo']:.2f}-{r['hi']:.2f} | {r['n']} |"
        )
    worst = max(rows, key=lambda r: r["ratio"])
    slower = [r for r in rows if r["ratio"] > 1.0]
    text += ["", f"Worst ratio: {worst['ratio']:.2f} ({worst['dev']} {worst['row']}); "
             f"rows above 1.00: {', '.join(r['dev'] + ' ' + r['row'] for r in slower) or 'none'}."]

    if faults:
        text += ["", "## Faults per operation (medians)", "",
                 "Page faults of the process (`minflt`, both drivers) and, for vfio_pci_rs, the "
                 "driver's fault counters by order (debugfs).", "",
                 "| device | row | vfio-pci minflt | vfio_pci_rs minflt | ours PTE | ours PMD | "
                 "ours PUD | ours fallback |", "|---|---|---:|---:|---:|---:|---:|---:|"]
        for (dev, row), d in sorted(faults.items()):
            def med(drv, key):
                v = [float(x[key]) for x in d.get(drv, []) if key in x]
                return f"{statistics.median(v):g}" if v else "-"
            text.append(f"| {dev} | {row} | {med(UP, 'minflt')} | {med(OURS, 'minflt')} | "
                        f"{med(OURS, 'pte')} | {med(OURS, 'pmd')} | {med(OURS, 'pud')} | "
                        f"{med(OURS, 'fallback')} |")
        for (dev, row), d in sorted(notes.items()):
            for drv, note in sorted(d.items()):
                text.append(f"\n{dev} {row} under {drv} (last round): {note}")
    if failures:
        text += ["", "## Failed operations", ""] + [f"- {f}" for f in failures]
    text += ["", "![ratio chart](results.png)", ""]
    open(md, "w").write("\n".join(text))
    print("\n".join(text))
    chart(rows, info, png)
    if failures:
        sys.exit("bench: some operations failed (see above)")


def chart(rows, info, png):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['dev']}: {r['row']}" for r in rows]
    ratios = [r["ratio"] for r in rows]
    err = [[r["ratio"] - r["lo"] for r in rows], [r["hi"] - r["ratio"] for r in rows]]
    colors = ["#2e8b57" if x <= 1.0 else "#c0392b" for x in ratios]
    fig, ax = plt.subplots(figsize=(10, 0.42 * len(rows) + 1.6))
    y = range(len(rows))
    ax.barh(y, ratios, xerr=err, color=colors, capsize=3, ecolor="#555")
    ax.axvline(1.0, color="black", linewidth=1)
    for i, x in enumerate(ratios):
        ax.text(x + 0.02, i, f"{x:.2f}", va="center", fontsize=8)
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.invert_yaxis()
    # Whiskers of a noisy round may run far out; cap the axis so the medians stay readable.
    ax.set_xlim(0, min(2.5, max(1.3, max(r["hi"] for r in rows) + 0.15)))
    ax.set_xlabel("time ratio vfio_pci_rs / vfio-pci (median over rounds; bar: min-max)  "
                  "< 1.00: vfio_pci_rs faster")
    kern = next((i for i in info if i.startswith("guest_kernel")), "")
    ax.set_title(f"vfio_pci_rs vs vfio-pci under QEMU TCG ({kern.split(' (')[0]})", fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


if __name__ == "__main__":
    main()
