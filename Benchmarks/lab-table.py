#!/usr/bin/env python3
"""Issue 8's target table from one lab run (Benchmarks/run-lab.sh's raw.tsv).

    Benchmarks/lab-table.py RAW.TSV [--dns DNS-RAW.TSV]

Medians over the rounds per peer, mode and metric; "best sing-box" is the better of sb-system and
sb-gvisor (higher throughput, lower loss/latency); every target of issue 8 with sluice's figure, the
ratio and whether it holds. Prints Markdown.
"""
import statistics
import sys
from collections import defaultdict


def load(path):
    values = defaultdict(list)
    with open(path) as f:
        next(f)
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 5 or parts[4] in ("", "NA"):
                continue
            try:
                values[(parts[0], parts[1], parts[3])].append(float(parts[4]))
            except ValueError:
                pass
    return {k: statistics.median(v) for k, v in values.items()}


def fmt(x):
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        return 2
    m = load(args[0])
    dns = load(args[args.index("--dns") + 1]) if "--dns" in args else {}
    sb = ["sb-system", "sb-gvisor"]

    def get(peer, mode, metric):
        return m.get((peer, mode, metric))

    def best(mode, metric, higher=True):
        vals = [(get(p, mode, metric), p) for p in sb if get(p, mode, metric) is not None]
        if not vals:
            return None, None
        return (max if higher else min)(vals)

    rows = []
    # (mode, metric, label, factor vs best sing-box, extra kernel factor)
    for mode, metric, label, factor, kernel_factor in [
        ("local", "tcp1_gbps", "TCP 1 stream, Gbit/s", 1.5, 0.5),
        ("local", "tcp4_gbps", "TCP 4 streams, Gbit/s", 1.5, None),
        ("local", "http_conn_rps", "new TCP connections/s", 1.5, None),
        ("gateway", "tcp1_gbps", "TCP 1 stream, Gbit/s", 2.0, None),
        ("gateway", "http_big_MBps", "100 MiB download, MiB/s", 3.0, None),
        ("gateway", "http_conn_rps", "new TCP connections/s", 1.5, None),
    ]:
        k, (b, bp), s = get("baseline", mode, metric), best(mode, metric), get("sluice", mode, metric)
        ratio = s / b if s is not None and b else None
        holds = ratio is not None and ratio >= factor
        target = f">= {factor}x sing-box"
        if kernel_factor is not None:
            target += f", >= {kernel_factor}x kernel"
            holds = holds and k is not None and s is not None and s / k >= kernel_factor
        rows.append((mode, label, fmt(k), f"{fmt(b)} ({bp})" if b else "-", fmt(s),
                     fmt(s / k) if s is not None and k else "-", fmt(ratio), target, holds))
    for mode in ("local", "gateway"):
        (b, bp), s = best(mode, "udp_loss_pct", higher=False), get("sluice", mode, "udp_loss_pct")
        rows.append((mode, "UDP loss, %", "-", f"{fmt(b)} ({bp})" if b is not None else "-", fmt(s), "-",
                     "-", "less loss than sing-box", s is not None and b is not None and s <= b))
        k = get("baseline", mode, "ping_avg_ms")
        (b, bp), s = best(mode, "ping_avg_ms", higher=False), get("sluice", mode, "ping_avg_ms")
        over = lambda x: None if x is None or k is None else x - k
        rows.append((mode, "ping RTT overhead, ms", fmt(k), f"+{fmt(over(b))} ({bp})" if b else "-",
                     f"+{fmt(over(s))}" if s is not None else "-", "-", "-", "no more than sing-box",
                     s is not None and b is not None and s <= b))
    s, b = get("sluice", "all", "rss_kib"), get("sb-system", "all", "rss_kib")
    rows.append(("memory", "RSS after the suite, KiB (all processes)", "-", f"{fmt(b)} (sb-system)", fmt(s), "-",
                 fmt(b / s) if s and b else "-", "<= sing-box system", s is not None and b is not None and s <= b))
    if dns:
        def d(peer):
            return dns.get((peer, "dns", "qps_warm")) or dns.get((peer, "all", "qps_warm"))
        rows.append(("DNS", "fake-IP queries/s, warm", "-", fmt(d("sb-fakeip")), fmt(d("sluice")), "-",
                     fmt(d("sluice") / d("sb-fakeip")) if d("sluice") and d("sb-fakeip") else "-", ">= 1.5x sing-box",
                     bool(d("sluice") and d("sb-fakeip") and d("sluice") / d("sb-fakeip") >= 1.5)))
    print("| mode | metric | kernel | best sing-box | **sluice** | sluice / kernel | sluice / sing-box | target | holds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r[:-1]) + f" | {'yes' if r[-1] else '**no**'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
