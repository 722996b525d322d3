#!/usr/bin/env python3
"""`make bench` report: reads the bench guest's console log and writes the markdown table and the
PNG chart. Usage: bench_report.py CONSOLE_LOG HOST_TXT RESULTS_MD RESULTS_PNG

Console lines (from tests/guest/bench.sh and `vfio-test bench OURS UP`), OURS_BDF being the twin
bound to vfio_pci_rs in that round:
  bench-info: KEY VALUE...
  bench-result: ROUND DEVICE OURS_BDF bench-pair: ROW OPS_PER_BATCH OURS_NS UP_NS RATIO,RATIO,...
  bench-result: ROUND DEVICE OURS_BDF bench-faults: ROW DRIVER minflt=N [pte=N pmd=N pud=N fallback=N around=N]
  bench-result: ROUND DEVICE OURS_BDF bench-note: ROW DRIVER TEXT
  bench-result: ROUND DEVICE OURS_BDF not ok ...
Per row: the median ns/op of each driver (median over rounds of the per-round medians), the
median of all pair ratios ours/upstream (each pair: two adjacent batches, one per driver, on the
two twins open at once), the min-max of the per-round median ratios (the spread a reader should
check), and the median ratio by which twin was ours (placement bias, cancelled by the swap).
"""
import os
import random
import re
import statistics
import sys

OURS, UP = "vfio_pci_rs", "vfio-pci"

# Kernel reports (scripts/kernel-reports.ere, the pattern every verdict uses): any on the
# console, or in the kernel log the guest prints after the rounds (`bench-dmesg:`, the console
# being quiet during them), fails the bench.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernel-reports.ere"),
          encoding="utf-8") as _f:
    REPORT = re.compile(_f.read().strip())

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
    "map_touch_1024m_null_hint": "mmap 1 GiB BAR (NULL hint), read every 4K page: time per "
                                 "BAR, touched in 4 MiB chunks alternating between the drivers",
    "zap_refault_1024m": "COMMAND.MEM off/on (zap) + read every 4K page again",
}


def fmt_ns(ns):
    for unit, div in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= div:
            return f"{ns / div:.3g} {unit}"
    return f"{ns:.0f} ns"


def ratio_of(groups):
    """The row's ratio from its pair ratios grouped by twin: with both twins as ours, the
    geometric mean of the two by-twin medians (a slot's own speed multiplies both drivers'
    times and cancels); else the pooled median."""
    meds = [statistics.median(g) for g in groups]
    if len(meds) == 2:
        return statistics.geometric_mean(meds)
    return statistics.median(x for g in groups for x in g)


def bootstrap_ci(rounds_by_twin, n=1000, seed=0):
    """95% interval of the ratio by a two-level bootstrap: per twin, its rounds drawn with
    replacement, then each drawn round's pair ratios drawn with replacement. Rounds are the
    outer level because pairs of one round share a code placement and are not independent."""
    rng = random.Random(seed)
    stats = []
    for _ in range(n):
        groups = []
        for rounds in rounds_by_twin:
            pooled = []
            for r in rng.choices(rounds, k=len(rounds)):
                pooled += rng.choices(r, k=len(r))
            groups.append(pooled)
        stats.append(ratio_of(groups))
    stats.sort()
    return stats[int(0.025 * n)], stats[int(0.975 * n) - 1]


def main():
    log, host, md, png = sys.argv[1:5]
    info, failures, reports = [], [], []
    # (dev, row) -> round -> dict(ours, up, ratios, twin)
    pairs, faults, notes, pins = {}, {}, {}, {}
    for line in open(log, errors="replace"):
        line = line.strip()
        if REPORT.search(line):
            # An error line is on the console and again in the log printed after the rounds.
            reports.append(line.removeprefix("bench-dmesg: "))
        if line.startswith("bench-info: "):
            info.append(line[len("bench-info: "):])
            continue
        m = re.match(r"bench-result: (\d+) (\S+) (\S+) (.*)", line)
        if not m:
            continue
        rnd, dev, twin, rest = int(m.group(1)), m.group(2), m.group(3), m.group(4)
        if m2 := re.match(r"bench-pin: (\S+) irq (\d+) to CPU 0: (\S+)", rest):
            pins[m2.group(1)] = f"{m2.group(1)} irq {m2.group(2)} {m2.group(3)}"
        elif rest.startswith("not ok"):
            failures.append(f"{dev} round {rnd} (ours {twin}): {rest}")
        elif m2 := re.match(r"bench-pair: (\S+) (\S+) (\S+) (\S+) (\S+)", rest):
            ratios = [float(x) for x in m2.group(5).split(",") if x]
            pairs.setdefault((dev, m2.group(1)), {})[rnd] = dict(
                ours=float(m2.group(3)), up=float(m2.group(4)), ratios=ratios, twin=twin)
        elif m2 := re.match(r"bench-faults: (\S+) (\S+) (.*)", rest):
            kv = dict(x.split("=") for x in m2.group(3).split())
            faults.setdefault((dev, m2.group(1)), {}).setdefault(m2.group(2), []).append(kv)
        elif m2 := re.match(r"bench-note: (\S+) (\S+) (.*)", rest):
            # The last round's notes; a row may note several lines per driver.
            nd = notes.setdefault((dev, m2.group(1)), {})
            if nd.get("round", rnd) != rnd:
                nd.clear()
            nd["round"] = rnd
            nd[m2.group(2)] = (nd.get(m2.group(2), "") + "; " + m2.group(3)).lstrip("; ")
    if not pairs:
        sys.exit("bench: no results in the console log")

    rows = []
    for (dev, row), by_round in pairs.items():
        rs = [r for r in by_round.values() if r["ratios"]]
        if not rs:
            continue
        per_round = [statistics.median(r["ratios"]) for r in rs]
        twins = sorted({r["twin"] for r in rs})
        rounds_by_twin = [[r["ratios"] for r in rs if r["twin"] == t] for t in twins]
        pooled = [[x for rr in g for x in rr] for g in rounds_by_twin]
        by_twin = [statistics.median(g) for g in pooled]
        rows.append(dict(
            dev=dev, row=row,
            ours=statistics.median(r["ours"] for r in rs),
            up=statistics.median(r["up"] for r in rs),
            ratio=ratio_of(pooled),
            ci=bootstrap_ci(rounds_by_twin),
            lo=min(per_round), hi=max(per_round), by_twin=by_twin,
            pairs=sum(len(r["ratios"]) for r in rs), n=len(rs),
        ))
    order = list(WHAT)
    rows.sort(key=lambda r: (order.index(r["row"]) if r["row"] in order else 99, r["dev"]))

    text = ["# vfio_pci_rs vs upstream vfio-pci: benchmarks", ""]
    text += ["Produced by `make bench`. Under TCG absolute times mean little: the ratio column is "
             "the figure; below 1.00 vfio_pci_rs is faster. Times are the guest's clock, by "
             "default QEMU's virtual clock (`-icount`: a fixed 8 ns per guest instruction, idle "
             "time skipped, so a row's time is the instructions on its path plus its sleeps, and "
             "its ratio repeats from run to run to the third decimal; the setup says which "
             "clock this run used). Method: the "
             "guest has two twins of "
             "each device model; in every round one twin is bound to vfio_pci_rs and the other "
             "to vfio-pci at the same time, and one process alternates small batches of the "
             "row's operation between the two open devices (ours, upstream, upstream, ours, ...), "
             "each batch after a 10 ms pause (what a batch leaves to run later runs there, not "
             "in the next batch, the other driver's half of the time). "
             "A pair's ratio is its two adjacent batches' time per operation, ours/upstream, so "
             "host noise (other tenants of a shared machine) hits both sides alike. *ratio*: "
             "the geometric mean of the two *by twin* medians (a slot's own speed, e.g. a shared "
             "interrupt line, scales both drivers' times there and cancels out); *round min-max*: the smallest and largest per-round "
             "median ratio; *by twin*: the median ratio with the first / the second twin as "
             "ours (which twin is ours swaps every round, so placement cancels out); *pairs x "
             "rounds*: how many pair ratios went in; *95% CI*: the ratio's interval by a two-level "
             "bootstrap (rounds, then the pairs of each drawn round, drawn with replacement; "
             "1,000 draws): a row is measurably slower only if its interval lies above 1.00. "
             "The ns columns are medians per operation.",
             ""]
    text += ["## Setup", ""]
    text += [f"- {l}" for l in open(host).read().splitlines()]
    text += [f"- {l}" for l in info]
    if pins:
        text.append(f"- INTx lines pinned to CPU 0: {', '.join(v for _, v in sorted(pins.items()))}")
    text += ["", "## Results", ""]
    text += ["| device | row | what | vfio_pci_rs | vfio-pci | ratio | 95% CI | round min-max | "
             "by twin | pairs x rounds |", "|---|---|---|---:|---:|---:|---|---|---|---:|"]
    for r in rows:
        tw = " / ".join(f"{x:.3f}" for x in r["by_twin"])
        text.append(
            f"| {r['dev']} | {r['row']} | {WHAT.get(r['row'], '')} | {fmt_ns(r['ours'])} | "
            f"{fmt_ns(r['up'])} | **{r['ratio']:.3f}** | {r['ci'][0]:.3f}-{r['ci'][1]:.3f} | "
            f"{r['lo']:.3f}-{r['hi']:.3f} | {tw} | "
            f"{r['pairs'] // max(r['n'], 1)} x {r['n']} |"
        )
    worst = max(rows, key=lambda r: r["ratio"])
    # The pair ratios are logged to 4 decimals: a row is slower if its ratio is above 1.0000.
    slower = [r for r in rows if round(r["ratio"], 4) > 1.0]
    measurably = [r for r in rows if r["ci"][0] > 1.0]
    spread = max(r["hi"] / r["lo"] for r in rows if r["lo"] > 0)
    above = ", ".join(f"{r['dev']} {r['row']} ({r['ratio']:.4f})" for r in slower)
    text += ["", f"Worst ratio: {worst['ratio']:.4f} ({worst['dev']} {worst['row']}); "
             f"rows above 1.0000: {above or 'none'}. "
             f"Rows measurably slower (95% CI above 1.00): "
             f"{', '.join(r['dev'] + ' ' + r['row'] for r in measurably) or 'none'}. "
             f"Widest round spread (max/min of the per-round medians): {spread:.2f}x.",
             "", "Instruction counts per operation (the profile of where each driver spends its "
             "time) are in `profile.md`."]

    if faults:
        text += ["", "## Faults per operation (medians over rounds)", "",
                 "Page faults of the process (`minflt`, both drivers) and, for vfio_pci_rs, the "
                 "driver's fault counters by order (debugfs); *ours around*: 4 KiB pages a fault "
                 "mapped for the rest of its 2 MiB block.", "",
                 "| device | row | vfio-pci minflt | vfio_pci_rs minflt | ours PTE | ours PMD | "
                 "ours PUD | ours fallback | ours around |",
                 "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        verdicts = []
        for (dev, row), d in sorted(faults.items()):
            def med(drv, key):
                v = [float(x[key]) for x in d.get(drv, []) if key in x]
                return statistics.median(v) if v else None
            def f(x):
                return "-" if x is None else f"{x:g}"
            text.append(f"| {dev} | {row} | {f(med(UP, 'minflt'))} | {f(med(OURS, 'minflt'))} | "
                        f"{f(med(OURS, 'pte'))} | {f(med(OURS, 'pmd'))} | {f(med(OURS, 'pud'))} | "
                        f"{f(med(OURS, 'fallback'))} | {f(med(OURS, 'around'))} |")
            if row.startswith("map_touch_") and row.endswith("_aligned"):
                pud, pmd, pte = med(OURS, "pud"), med(OURS, "pmd"), med(OURS, "pte")
                if pud == 1 and not pmd and not pte:
                    verdict = "fully mapped by 1 PUD fault per map + touch"
                else:
                    verdict = (f"mapped by {f(pud)} PUD, {f(pmd)} PMD and {f(pte)} PTE faults "
                               "per map + touch (see the layout notes below for why)")
                verdicts.append(f"\nAligned BAR ({dev} {row}) under vfio_pci_rs: {verdict}.")
        text += verdicts
    if notes:
        text += ["", "## Notes (last round)", ""]
        for (dev, row), d in sorted(notes.items()):
            for drv, note in sorted(d.items()):
                if drv != "round":
                    text.append(f"- {dev} {row} under {drv}: {note}")
    if failures:
        text += ["", "## Failed operations", ""] + [f"- {f}" for f in failures]
    reports = list(dict.fromkeys(reports))
    if reports:
        text += ["", "## Kernel reports", ""] + [f"- `{r}`" for r in reports[:20]]
    text += ["", "![ratio chart](results.png)", ""]
    open(md, "w").write("\n".join(text))
    print("\n".join(text))
    clock = next((l.split()[1].rstrip(":") for l in open(host).read().splitlines()
                  if l.startswith("clock ")), "host")
    chart(rows, info, clock, png)
    if failures:
        sys.exit("bench: some operations failed (see above)")
    if reports:
        sys.exit(f"bench: {len(reports)} kernel report lines in the guest's log (see above)")


def chart(rows, info, clock, png):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['dev']}: {r['row']}" for r in rows]
    ratios = [r["ratio"] for r in rows]
    err = [[max(0.0, r["ratio"] - r["ci"][0]) for r in rows],
           [max(0.0, r["ci"][1] - r["ratio"]) for r in rows]]
    # Green: at or below parity; red: measurably slower (the whole interval above 1.00); amber:
    # above 1.00 but within the measurement's reach of parity.
    colors = ["#2e8b57" if r["ratio"] <= 1.0 else "#c0392b" if r["ci"][0] > 1.0 else "#e0a030"
              for r in rows]
    fig, ax = plt.subplots(figsize=(10, 0.36 * len(rows) + 1.8))
    y = list(range(len(rows)))
    # Bars grow from 1.00 (parity) to the ratio, so faster and slower read off at a glance.
    ax.barh(y, [x - 1.0 for x in ratios], left=1.0, xerr=err, color=colors, capsize=3,
            ecolor="#555")
    ax.axvline(1.0, color="black", linewidth=1)
    for i, r in enumerate(rows):
        ax.text(max(r["ci"][1], r["ratio"]) + 0.01, i, f"{r['ratio']:.3f}", va="center",
                fontsize=8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    # Cap the axis so a far whisker cannot squash the rest.
    lo = max(0.0, min(r["ci"][0] for r in rows) - 0.05)
    ax.set_xlim(min(lo, 0.9), min(2.5, max(1.1, max(r["ci"][1] for r in rows) + 0.08)))
    ax.set_xlabel("time ratio vfio_pci_rs / vfio-pci: < 1.00 vfio_pci_rs faster\n"
                  "(median of interleaved batch pairs, both twin placements; whisker: 95% bootstrap "
                  "interval)", fontsize=9)
    kern = next((i for i in info if i.startswith("guest_kernel")), "")
    ax.set_title(f"vfio_pci_rs vs vfio-pci under QEMU TCG ({kern.split(' (')[0]}, {clock} clock)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


if __name__ == "__main__":
    main()
