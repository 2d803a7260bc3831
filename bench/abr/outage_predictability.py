#!/usr/bin/env python3
"""How well does the recent past of a link announce an outage? (issue 5, docs/benchmarks.md)

For every second of every trace where the link is "on" (>= 300 kbps, enough for every rung), is
an outage (>= 5 s in a row below 60 kbps) about to start within the next 11 s, the time one
top-rung request and the next decision take on such a link? Printed: the base rate, and the
rate given what a player could know at that second (the current throughput, its ratio to the
last 10 s, the time since the last outage). A pre-emptive step down pays only where that rate
is high; `abr-sim --room` measures the same from the policy side.

    python3 bench/abr/outage_predictability.py ../shared/traces/norway-3g-raw
"""
import pathlib
import sys

ON_KBPS, OFF_KBPS, OFF_RUN_S, AHEAD_S, PAST_S = 300, 60, 5, 11, 10


def per_second(path):
    pts = [tuple(map(float, line.split())) for line in path.read_text().splitlines() if line.strip()]
    xs, j = [], 0
    for t in range(int(pts[-1][0])):
        while j + 1 < len(pts) and pts[j + 1][0] <= t:
            j += 1
        xs.append(pts[j][1] * 1000)
    return xs


def rows(xs):
    last_off = None
    for t in range(len(xs) - AHEAD_S - 1):
        if xs[t] < OFF_KBPS:
            last_off = t
        if t < PAST_S or xs[t] < ON_KBPS:
            continue
        run, outage = 0, False
        for v in xs[t + 1 : t + 1 + AHEAD_S]:
            run = run + 1 if v < OFF_KBPS else 0
            if run >= OFF_RUN_S:
                outage = True
                break
        past = sum(xs[t - PAST_S : t]) / PAST_S
        since = t - last_off if last_off is not None else float("inf")
        yield xs[t], xs[t] / max(past, 1.0), since, outage


def table(name, data, key, bands):
    print(f"\n| {name} | seconds | P(outage within {AHEAD_S} s) |\n|---|---|---|")
    for lo, hi in bands:
        sel = [r for r in data if lo <= key(r) < hi]
        rate = sum(r[3] for r in sel) / len(sel) if sel else float("nan")
        print(f"| {lo:g}–{hi:g} | {len(sel)} | {rate:.3f} |")


def main():
    dirs = [pathlib.Path(d) for d in sys.argv[1:]] or [pathlib.Path("../shared/traces/norway-3g-raw")]
    data = [r for d in dirs for f in sorted(d.iterdir()) if f.is_file() for r in rows(per_second(f))]
    if not data:
        sys.exit("no trace seconds with the link on")
    base = sum(r[3] for r in data) / len(data)
    print(f"{len(data)} seconds with the link on (>= {ON_KBPS} kbps); base rate {base:.4f}")
    table("current kbps", data, lambda r: r[0], [(300, 500), (500, 800), (800, 1200), (1200, float("inf"))])
    table("current / mean of last 10 s", data, lambda r: r[1], [(0, 0.3), (0.3, 0.5), (0.5, 0.7), (0.7, 1), (1, 1.5), (1.5, float("inf"))])
    table("seconds since the last outage second", data, lambda r: r[2], [(0, 15), (15, 30), (30, 60), (60, 120), (120, 300), (300, float("inf"))])
    sel = [r for r in data if r[2] < 30 and r[0] < 500]
    print(f"\nbest pair found: an outage under 30 s ago and now < 500 kbps: {len(sel)} s, "
          f"P = {sum(r[3] for r in sel) / max(len(sel), 1):.3f}")


if __name__ == "__main__":
    main()
