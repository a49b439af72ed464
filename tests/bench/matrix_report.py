#!/usr/bin/env python3
"""The table of tests/bench/pods.sh's scenario matrix, from the raw files matrix.sh leaves.

Usage: matrix_report.py RAW_DIR TITLE

RAW_DIR holds `meta` (seconds, runs, scenarios), `rss-idle-weft` / `rss-idle-haproxy` (KiB of
the client and server proxy, idle), `loadavg`, and one directory per round, rN/, with per
scenario S and path P: S-P (wrk's output, or h2load's for grpc-unary), S-P.cpu (CPU ticks of the
client and server proxy over the run), S-P.sys (the system-time part of them), S-P.rss (KiB of
both, half-way), S-P.conns (get-512: the connections the path's entry held half-way); and
lat-RATE-P.log / .out (h2load --h1 at RATE).

Each number is computed per round, then the median over rounds is shown; each weft ÷ haproxy
ratio is computed per round, then its median taken (with the min–max of the throughput ratio).
Prints the tables, the issue's targets met or missed, and every error a load generator reported.
Exits 3 when a load generator reported errors or non-2xx answers (after printing everything), so
the run fails loudly instead of quoting numbers of a broken path.
"""

import datetime
import os
import platform
import re
import statistics
import sys

from report import cpu_model  # pair.sh's report, next to this file

PATHS = ("direct", "weft", "haproxy")
LABEL = {"direct": "direct path", "weft": "weft pair", "haproxy": "haproxy pair"}
LOAD = {
    "get-32": "GET /, wrk -c32",
    "get-512": "GET /, wrk -c512",
    "post-4k": "POST 4 KiB body, wrk -c32",
    "post-4k-early": "POST 4 KiB body, answered before it is read, wrk -c32",
    "get-64k": "GET 64 KiB, wrk -c32",
    "grpc-unary": "gRPC unary, h2load -c{g} -m1",
}
# The targets: weft ÷ HAProxy throughput per scenario, and the rest.
THROUGHPUT_TARGET = {"get-32": 1.1, "get-512": 1.0, "post-4k": 1.0, "get-64k": 1.0}
CPU_TARGET = 0.9
IDLE_LIMIT_KIB = 10_000_000 / 1024  # 10 MB, decimal (the stricter reading)
LOAD_LIMIT_KIB = 20_000_000 / 1024  # 20 MB under the get-512 load
LATENCY_RATE = 1000


def read(*parts):
    with open(os.path.join(*parts)) as f:
        return f.read()


def numbers(*parts):
    return [int(x) for x in read(*parts).split()]


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def load_result(text, tool):
    """(req/s, requests completed, [error descriptions]) from wrk's or h2load's output."""
    errors = []
    if tool == "wrk":
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
        done = int(re.search(r"(\d+) requests in", text).group(1))
        for line in text.splitlines():
            if "Socket errors" in line or "Non-2xx" in line:
                errors.append(line.strip())
    else:
        rps = float(re.search(r"finished in [\d.]+s, ([\d.]+) req/s", text).group(1))
        m = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                      r"(\d+) errored, (\d+) timeout", text)
        done, _, failed, errored, timeout = map(int, m.groups())
        if failed or errored or timeout:
            errors.append(f"{failed} failed, {errored} errored, {timeout} timed out")
        m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
        if m and any(int(x) for x in m.groups()[1:]):
            errors.append("status codes: " + m.group(0).split(": ", 1)[1])
    return rps, done, errors


def percentiles(raw, rnd, rate, path):
    """p50 and p99 in ms from h2load's per-request log (third column: microseconds), and the rate
    h2load achieved. HAProxy's answers count as failed in h2load --h1 (an empty reason phrase) but
    their timings are valid, so every logged request counts."""
    base = os.path.join(raw, rnd, f"lat-{rate}-{path}")
    lat = sorted(int(p[2]) for p in (line.split() for line in read(base + ".log").splitlines())
                 if len(p) >= 3)
    m = re.search(r"finished in [\d.]+s, ([\d.]+) req/s", read(base + ".out"))
    achieved = float(m.group(1)) if m else 0.0

    def q(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))] / 1000.0

    return (q(0.50), q(0.99), achieved) if lat else (float("nan"), float("nan"), achieved)


def fmt_ratio(xs, spread=False):
    if not xs:
        return "n/a"
    text = f"{median(xs):.2f}"
    if spread and len(xs) > 1:
        text += f" [{min(xs):.2f}–{max(xs):.2f}]"
    return text


def main():
    raw, title = sys.argv[1], sys.argv[2]
    meta = dict(line.split(" ", 1) for line in read(raw, "meta").splitlines())
    seconds, runs = int(meta["seconds"]), int(meta["runs"])
    scenarios = meta["scenarios"].split()
    gconns = meta.get("grpc_connections", "32")
    rounds = [f"r{i}" for i in range(1, runs + 1)]
    tck = os.sysconf("SC_CLK_TCK")

    # Per scenario, per path: lists over rounds.
    rps, cpu, kernel, rss, conns, problems = {}, {}, {}, {}, {}, []
    ratio_rps, ratio_cpu = {}, {}
    for s in scenarios:
        tool = "h2load" if s == "grpc-unary" else "wrk"
        ratio_rps[s], ratio_cpu[s] = [], []
        for rnd in rounds:
            per = {}
            for p in PATHS:
                base = os.path.join(raw, rnd, f"{s}-{p}")
                r, done, errors = load_result(read(base), tool)
                for e in errors:
                    problems.append(f"{rnd} {s} on the {LABEL[p]}: {e}")
                rps.setdefault((s, p), []).append(r)
                if p != "direct":
                    ticks = numbers(base + ".cpu")
                    ms = [t / tck * 1000 / (done / 1000) if done else float("nan") for t in ticks]
                    cpu.setdefault((s, p), []).append(ms)
                    if os.path.exists(base + ".sys") and sum(ticks):
                        share = sum(numbers(base + ".sys")) / sum(ticks)
                        kernel.setdefault((s, p), []).append(share)
                    rss.setdefault((s, p), []).append(max(numbers(base + ".rss")))
                if os.path.exists(base + ".conns"):
                    conns.setdefault((s, p), []).append(numbers(base + ".conns")[0])
                per[p] = r
            ratio_rps[s].append(per["weft"] / per["haproxy"] if per["haproxy"] else float("nan"))
            w, h = sum(cpu[(s, "weft")][-1]), sum(cpu[(s, "haproxy")][-1])
            ratio_cpu[s].append(w / h if h else float("nan"))

    # Latency points: LATENCY_RATE every round; with BENCH_HALF_RATE, one more per round at half
    # of that round's direct get-32 req/s (a different rate each round, filed under "half").
    lat = {}
    for rnd in rounds:
        for f in os.listdir(os.path.join(raw, rnd)):
            m = re.match(r"lat-(\d+)-(\w+)\.log$", f)
            if m:
                rate, p = int(m.group(1)), m.group(2)
                key = rate if rate == LATENCY_RATE else "half"
                lat.setdefault((key, p), []).append(percentiles(raw, rnd, rate, p) + (rate,))
    idle = {p: numbers(raw, f"rss-idle-{p}") for p in ("weft", "haproxy")}

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    try:
        loadavg = f" · load average {read(raw, 'loadavg').strip()} before measuring"
    except OSError:
        loadavg = ""
    print(f"### {title}\n")
    print(f"{now} · nproc {len(os.sched_getaffinity(0))} · {cpu_model()} · Linux "
          f"{platform.release()}{loadavg} · {seconds} s per measurement · "
          f"{runs} round(s), paths interleaved; " + ("medians over rounds, ratios per round then "
          "their median [min–max]" if runs > 1 else "one round") + "\n")

    print("| scenario | load | direct req/s | weft req/s | haproxy req/s | **weft ÷ haproxy** "
          "| CPU ms per 1k req, weft (client + server) | haproxy (client + server) | **CPU ÷** "
          "| RSS under load KiB, weft (larger of 2) | haproxy |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in scenarios:
        def cpu_cell(p):
            client = median([c[0] for c in cpu[(s, p)]])
            server = median([c[1] for c in cpu[(s, p)]])
            return f"{median([sum(c) for c in cpu[(s, p)]]):.1f} ({client:.1f} + {server:.1f})"

        print(f"| {s} | {LOAD[s].format(g=gconns)} "
              f"| {median(rps[(s, 'direct')]):,.0f} | {median(rps[(s, 'weft')]):,.0f} "
              f"| {median(rps[(s, 'haproxy')]):,.0f} | **{fmt_ratio(ratio_rps[s], spread=True)}** "
              f"| {cpu_cell('weft')} | {cpu_cell('haproxy')} | **{fmt_ratio(ratio_cpu[s])}** "
              f"| {median(rss[(s, 'weft')]):,.0f} | {median(rss[(s, 'haproxy')]):,.0f} |")

    if kernel:
        print("\nKernel share of the proxies' CPU (system time ÷ all, both proxies): " + "; ".join(
            f"{s} weft {median(kernel[(s, 'weft')]):.0%}, haproxy {median(kernel[(s, 'haproxy')]):.0%}"
            for s in scenarios if (s, "weft") in kernel))

    print()
    print(f"| path | RSS idle KiB (client, server) | p50 / p99 at {LATENCY_RATE:,} req/s (ms) "
          "| achieved req/s |")
    print("|---|---:|---:|---:|")
    p99 = {}
    for p in PATHS:
        points = lat.get((LATENCY_RATE, p), [])
        p50, p99[p] = median([x[0] for x in points]), median([x[1] for x in points])
        idle_cell = "–" if p == "direct" else "{:,}, {:,}".format(*idle[p])
        print(f"| {LABEL[p]} | {idle_cell} | {p50:.3f} / {p99[p]:.3f} "
              f"| {median([x[2] for x in points]):,.0f} |")
    w_l = [w[1] / h[1] for w, h in zip(lat[(LATENCY_RATE, "weft")], lat[(LATENCY_RATE, "haproxy")])]
    w_l50 = [w[0] / h[0] for w, h in zip(lat[(LATENCY_RATE, "weft")], lat[(LATENCY_RATE, "haproxy")])]
    print(f"| **weft ÷ haproxy** | {idle['weft'][0] / idle['haproxy'][0]:.2f}, "
          f"{idle['weft'][1] / idle['haproxy'][1]:.2f} | {fmt_ratio(w_l50)} / {fmt_ratio(w_l)} | |")
    if ("half", "direct") in lat:
        rate = median([x[3] for x in lat[("half", "direct")]])
        print(f"\nlatency p50 / p99 at half of direct get-32 saturation (median {rate:,.0f} req/s; "
              "BENCH_HALF_RATE): " + "; ".join(
                  f"{LABEL[p]} {median([x[0] for x in lat[('half', p)]]):.3f} / "
                  f"{median([x[1] for x in lat[('half', p)]]):.3f} ms "
                  f"[achieved {median([x[2] for x in lat[('half', p)]]):,.0f} req/s]" for p in PATHS))
    for (key, p), points in sorted(lat.items(), key=str):
        for x in points:
            if x[2] < 0.9 * x[3]:
                print(f"note: the {LABEL[p]} reached only {x[2]:,.0f} of {x[3]:,} req/s in a latency "
                      "run: its latency there is a saturated queue, not a per-request cost")
    print("\nnote: RSS under load is resident memory half-way through the run; memory the allocator "
          "kept from an earlier, heavier scenario (get-512, get-64k) stays counted in later ones.")

    if ("get-512", "weft") in conns:
        held = ", ".join(f"{LABEL[p]} {min(conns[('get-512', p)])}" for p in PATHS
                         if ("get-512", p) in conns)
        print(f"\nget-512: connections held at each path's entry half-way (fewest over rounds): {held}")
        for p in PATHS:
            if min(conns.get(("get-512", p), [512])) < 512:
                problems.append(f"get-512 on the {LABEL[p]}: only {min(conns[('get-512', p)])} of "
                                "512 connections held half-way")

    print("\nTargets (weft pair ÷ HAProxy pair" + (", medians over rounds" if runs > 1 else "") + "):")

    def verdict(ok):
        return "met" if ok else "**MISSED**"

    for s, target in THROUGHPUT_TARGET.items():
        if s in scenarios:
            r = median(ratio_rps[s])
            print(f"- throughput ≥ {target:.1f}× in {s}: ×{r:.2f}: {verdict(r >= target)}")
    for s in scenarios:
        r = median(ratio_cpu[s])
        print(f"- CPU per request ≤ {CPU_TARGET}× in {s}: ×{r:.2f}: {verdict(r <= CPU_TARGET)}")
    print(f"- p99 at {LATENCY_RATE:,} req/s no worse than HAProxy's: {p99['weft']:.3f} vs "
          f"{p99['haproxy']:.3f} ms: {verdict(p99['weft'] <= p99['haproxy'])}")
    worst = max(idle["weft"])
    print(f"- idle weft proxy < 10 MB ({IDLE_LIMIT_KIB:,.0f} KiB): larger {worst:,} KiB: "
          f"{verdict(worst < IDLE_LIMIT_KIB)}")
    if "get-512" in scenarios:
        r = median(rss[("get-512", "weft")])
        print(f"- weft proxy < 20 MB ({LOAD_LIMIT_KIB:,.0f} KiB) under the get-512 load: larger "
              f"{r:,.0f} KiB: {verdict(r < LOAD_LIMIT_KIB)}")

    if problems:
        print("\n**ERRORS: the load generators reported failures; the numbers above are not "
              "comparable:**")
        for e in problems:
            print(f"- {e}")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
