#!/usr/bin/env python3
"""Before/after table from one lab run with peers baseline, sluice-before and sluice (run-lab.sh -b DIR -k).

    Benchmarks/before-after.py RAW.TSV

Medians over the rounds per peer, mode and metric; each sluice figure as a ratio to the kernel baseline (for
throughput and rates: sluice / kernel; for latency, loss, memory and CPU: kernel-free figures are compared
directly), and the change of "after" against "before", signed so that negative is worse. Prints Markdown.
"""
import statistics
import sys
from collections import defaultdict

LOWER_IS_BETTER = ("ping_avg_ms", "udp_loss_pct", "proxy_cpu_s", "rss_idle_kib", "rss_kib", "rss_peak_kib")
NO_BASELINE = ("proxy_cpu_s", "rss_idle_kib", "rss_kib", "rss_peak_kib")


def main(path):
    values = defaultdict(list)
    with open(path) as f:
        next(f)
        for line in f:
            peer, mode, _, metric, value = (line.rstrip("\n").split("\t") + [""] * 5)[:5]
            try:
                values[(peer, mode, metric)].append(float(value))
            except ValueError:
                pass
    med = {k: statistics.median(v) for k, v in values.items()}
    keys = sorted({(m, x) for (_, m, x) in med})
    print("| mode | metric | kernel | before | after | before / kernel | after / kernel | change |")
    print("|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for mode, metric in keys:
        before, after = med.get(("sluice-before", mode, metric)), med.get(("sluice", mode, metric))
        if before is None or after is None:
            continue
        kernel = med.get(("baseline", mode, metric))
        lower = metric in LOWER_IS_BETTER
        if metric in NO_BASELINE or not kernel:
            rb = ra = None
            change = (before / after - 1) if lower else (after / before - 1) if before else 0.0
        else:
            rb, ra = before / kernel, after / kernel
            change = (rb / ra - 1) if lower else (ra / rb - 1)
        if metric == "udp_loss_pct":
            change = -(after - before) / 100  # percentage points of loss, negative is worse
        worst = min(worst, change)
        fmt = lambda x: "" if x is None else f"{x:.3g}"
        print(f"| {mode} | {metric} | {fmt(kernel)} | {fmt(before)} | {fmt(after)} | {fmt(rb)} | {fmt(ra)} | {change:+.1%} |")
    print(f"\nWorst change (negative is worse): {worst:+.1%}")


if __name__ == "__main__":
    main(sys.argv[1])
