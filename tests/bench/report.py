#!/usr/bin/env python3
"""The benchmark table, from the raw files tests/bench/lib.sh leaves in a directory.

Usage: report.py RAW_DIR TITLE SECONDS CONNECTIONS HALF_RATE

Reads, for each path P in direct / weft / haproxy: wrk-P (throughput run), h2load-P-RATE and
h2load-P-RATE.out (fixed-rate runs at 1000 and HALF_RATE), and for the two proxy pairs
cpu-P (CPU ticks of client and server proxy over the wrk run), rss-idle-P and rss-load-P (KiB).
Prints a markdown table with the machine it ran on, then the weft targets, met or missed.
"""

import datetime
import math
import os
import platform
import re
import sys

PATHS = ("direct", "weft", "haproxy")
LABEL = {"direct": "direct path", "weft": "weft pair", "haproxy": "haproxy pair"}
# The target: an idle weft proxy under 10 MB (decimal megabytes, the stricter reading) resident.
IDLE_LIMIT_KIB = 10_000_000 / 1024


def read(raw, name):
    with open(os.path.join(raw, name)) as f:
        return f.read()


def wrk(raw, path):
    """Requests per second and the total completed, plus any errors wrk reported."""
    text = read(raw, "wrk-" + path)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    total = int(re.search(r"(\d+) requests in", text).group(1))
    errors = [line.strip() for line in text.splitlines() if "errors" in line or "Non-2xx" in line]
    return rps, total, errors


def percentiles(raw, path, rate):
    """p50 and p99 in ms from h2load's per-request log, and the rate h2load achieved.

    Every logged request counts: h2load marks HAProxy's answers as failed because their status line
    has an empty reason phrase ("HTTP/1.1 200 "), but their timings are valid. The log's third
    column is the request's duration in microseconds.
    """
    log = read(raw, f"h2load-{path}-{rate}").splitlines()
    lat = sorted(int(p[2]) for p in (line.split() for line in log) if len(p) >= 3)
    m = re.search(r"finished in [\d.]+s, ([\d.]+) req/s", read(raw, f"h2load-{path}-{rate}.out"))
    achieved = float(m.group(1)) if m else 0.0
    if not lat:
        return math.nan, math.nan, achieved

    def q(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))] / 1000.0

    return q(0.50), q(0.99), achieved


def pair_numbers(raw, path):
    """Whitespace-separated numbers of a per-pair file (client side first)."""
    return [int(x) for x in read(raw, f"{path}").split()]


def ratio(a, b):
    return f"{a / b:.2f}" if b else "n/a"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    raw, title, seconds, conns, half = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
    tck = os.sysconf("SC_CLK_TCK")
    rates = (1000, half)
    thr = {p: wrk(raw, p) for p in PATHS}
    lat = {(p, r): percentiles(raw, p, r) for p in PATHS for r in rates}
    cpu, idle, load = {}, {}, {}
    for p in ("weft", "haproxy"):
        ticks = pair_numbers(raw, "cpu-" + p)
        kreq = thr[p][1] / 1000
        cpu[p] = [t / tck / kreq for t in ticks]
        idle[p] = pair_numbers(raw, "rss-idle-" + p)
        load[p] = pair_numbers(raw, "rss-load-" + p)

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    ncpu = len(os.sched_getaffinity(0))
    try:
        loadavg = f" · load average {read(raw, 'loadavg').strip()} before measuring"
    except OSError:
        loadavg = ""
    print(f"### {title}\n")
    print(
        f"{now} · nproc {ncpu} · {cpu_model()} · Linux {platform.release()}{loadavg} · "
        f"wrk -t1 -c{conns}, {seconds} s per run · latency: h2load --h1, 100 req/s per "
        f"connection, at 1k req/s and at {half:,} req/s (half of direct saturation)\n"
    )

    def ms(a, b):
        return f"{a:.3f} / {b:.3f}"

    def added(p, r):
        if p == "direct":
            return "–"
        (d50, d99, _), (x50, x99, _) = lat[("direct", r)], lat[(p, r)]
        return f"{x50 - d50:+.3f} / {x99 - d99:+.3f}"

    d_rps, w_rps, h_rps = (thr[p][0] for p in PATHS)
    print(
        "| path | req/s | ÷ direct | p50 / p99 at 1k rps (ms) | added over direct (ms) "
        f"| p50 / p99 at {half:,} rps (ms) [achieved rps] | added over direct (ms) "
        "| CPU s per 1k req (client, server proxy) | RSS idle KiB (client, server) "
        "| RSS under load KiB (client, server) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for p in PATHS:
        a50, a99, _ = lat[(p, 1000)]
        b50, b99, achieved = lat[(p, half)]
        if p == "direct":
            c = i = l = "–"
        else:
            c = f"{cpu[p][0]:.4f}, {cpu[p][1]:.4f}"
            i = "{:,}, {:,}".format(*idle[p])
            l = "{:,}, {:,}".format(*load[p])
        print(
            f"| {LABEL[p]} | {thr[p][0]:,.0f} | {thr[p][0] / d_rps:.2f} | {ms(a50, a99)} "
            f"| {added(p, 1000)} | {ms(b50, b99)} [{achieved:,.0f}] | {added(p, half)} "
            f"| {c} | {i} | {l} |"
        )
    # The ratio row: weft over HAProxy for every column where a ratio means something.
    wl, hl = lat[("weft", 1000)], lat[("haproxy", 1000)]
    wh, hh = lat[("weft", half)], lat[("haproxy", half)]
    wi, hi, wo, ho = idle["weft"], idle["haproxy"], load["weft"], load["haproxy"]
    print(
        f"| **weft ÷ haproxy** | **{ratio(w_rps, h_rps)}** | "
        f"| {ratio(wl[0], hl[0])} / {ratio(wl[1], hl[1])} | "
        f"| {ratio(wh[0], hh[0])} / {ratio(wh[1], hh[1])} | "
        f"| {ratio(sum(cpu['weft']), sum(cpu['haproxy']))} (sum) "
        f"| {ratio(wi[0], hi[0])}, {ratio(wi[1], hi[1])} | {ratio(wo[0], ho[0])}, {ratio(wo[1], ho[1])} |"
    )

    print()
    for p in PATHS:
        for e in thr[p][2]:
            print(f"warning: wrk on the {LABEL[p]} path reported: {e}")
    for (p, r), (_, _, achieved) in lat.items():
        if achieved < 0.9 * r:
            print(f"note: the {LABEL[p]} reached only {achieved:,.0f} of {r:,} req/s: its latency "
                  "at that rate is a saturated queue, not a per-request cost")

    print("\nTargets (weft pair vs HAProxy pair, this run):")
    tput = w_rps / h_rps
    verdict = "met" if tput >= 1 else f"MISSED by {(1 - tput) * 100:.0f}%"
    print(f"- throughput at least HAProxy's: {w_rps:,.0f} vs {h_rps:,.0f} req/s "
          f"(×{tput:.2f}): {verdict}")
    for r in rates:
        w99, h99 = lat[("weft", r)][1], lat[("haproxy", r)][1]
        verdict = "met" if w99 <= h99 else f"MISSED by {w99 - h99:.3f} ms (×{w99 / h99:.2f})"
        print(f"- p99 no worse at {r:,} req/s: {w99:.3f} vs {h99:.3f} ms: {verdict}")
    worst = max(idle["weft"])
    verdict = "met" if worst < IDLE_LIMIT_KIB else f"MISSED by {worst - IDLE_LIMIT_KIB:,.0f} KiB"
    print(f"- idle weft proxy under 10 MB ({IDLE_LIMIT_KIB:,.0f} KiB): largest {worst:,} KiB: {verdict}")


if __name__ == "__main__":
    main()
