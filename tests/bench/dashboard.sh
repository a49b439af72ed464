#!/usr/bin/env bash
# CPU of `weft dashboard --prometheus` over a mesh of SIDECARS (50) sidecars that each called
# 100 destinations: a real Prometheus scrapes SIDECARS fake sidecars, each serving the /metrics
# of a real one (tests/bench/scrape.sh's caller, recorded once) with its counters growing over
# time; the dashboard refreshes every 2 s for SECONDS (60); its CPU time (utime + stime) over
# that, as a share of one core. Prometheus's own CPU is not counted: it is the user's.
#
# Usage: tests/bench/dashboard.sh                  (builds this checkout's release binaries)
#        WEFT_BIN=<dir> tests/bench/dashboard.sh   (the binaries there, weft among them)
# Needs prometheus, nginx, curl and python3.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
source "$(dirname "$0")/lib.sh"
SIDECARS=${SIDECARS:-50}
SECONDS_RUN=${SECONDS_RUN:-60}
positive_int SIDECARS "$SIDECARS"
positive_int SECONDS_RUN "$SECONDS_RUN"
need_tools prometheus nginx curl python3
if [ -z "${WEFT_BIN:-}" ]; then
  WEFT_BIN=$BENCH_ROOT/target/dist
  CARGO_TERM_QUIET=true "$BENCH_ROOT/scripts/release-build" "$WEFT_BIN" ||
    die "scripts/release-build failed"
fi
[ -x "$WEFT_BIN/weft" ] || die "WEFT_BIN=$WEFT_BIN holds no weft"
W=$(mktemp -d /tmp/weft-dashboard.XXXX)
PIDS=()
cleanup() {
  stop_pids "${PIDS[@]}"
  [ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
BASE=${BASE:-24000}

WEFT_BIN=$WEFT_BIN SAVE_METRICS="$W/sidecar.metrics" "$BENCH_DIR/scrape.sh" > /dev/null
cat > "$W/fake_sidecars.py" << 'PY'
"""SIDECARS fake sidecars on consecutive ports: each serves the recorded /metrics, its counters
(and histogram buckets, counts and sums) multiplied by the seconds since start, plus one."""
import asyncio, sys, time
text, first, count = open(sys.argv[1]).read(), int(sys.argv[2]), int(sys.argv[3])
GROWING = ("_total", "_count", "_sum", "_bucket")
lines = []
for line in text.splitlines():
    name = line.split("{", 1)[0].split(" ", 1)[0]
    if line.startswith("#") or not name.endswith(GROWING):
        lines.append((line, None))
    else:
        head, value = line.rsplit(" ", 1)
        lines.append((head, float(value)))
started = time.monotonic()
def body():
    factor = 1 + time.monotonic() - started
    return "\n".join(h if v is None else f"{h} {v * factor:g}" for h, v in lines).encode() + b"\n"
async def serve(reader, writer):
    try:
        await reader.readuntil(b"\r\n\r\n")
        payload = body()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\n"
                     b"content-length: %d\r\nconnection: close\r\n\r\n" % len(payload) + payload)
        await writer.drain()
    finally:
        writer.close()
async def main():
    for port in range(first, first + count):
        await asyncio.start_server(serve, "127.0.0.1", port)
    print("ready", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
PY
python3 "$W/fake_sidecars.py" "$W/sidecar.metrics" $((BASE + 100)) "$SIDECARS" > "$W/fake.log" 2>&1 &
PIDS+=($!)
wait_for 20 "the fake sidecars" grep -q ready "$W/fake.log"
{
  printf 'global: {scrape_interval: 5s, scrape_timeout: 4s}\nscrape_configs:\n  - job_name: weft-proxy\n    static_configs:\n      - targets: ['
  for i in $(seq 0 $((SIDECARS - 1))); do printf '"127.0.0.1:%d",' $((BASE + 100 + i)); done
  printf ']\n'
} > "$W/prometheus.yml"
prometheus --config.file="$W/prometheus.yml" --storage.tsdb.path="$W/data" \
  --web.listen-address=127.0.0.1:$((BASE + 90)) --log.level=warn > "$W/prometheus.log" 2>&1 &
PIDS+=($!)
wait_for 30 "prometheus" curl -sf "http://127.0.0.1:$((BASE + 90))/-/ready"
# Two scrapes of every target, so that rates exist.
sleep 11
"$WEFT_BIN/weft" dashboard --prometheus "http://127.0.0.1:$((BASE + 90))" \
  --listen 127.0.0.1:$((BASE + 84)) --interval 2s > "$W/dashboard.log" 2>&1 &
DASHBOARD=$!
PIDS+=("$DASHBOARD")
wait_for 30 "the dashboard" curl -sf "http://127.0.0.1:$((BASE + 84))/api/snapshot"
before=$(cpu_ticks "$DASHBOARD")
sleep "$SECONDS_RUN"
[ -z "${SHOW:-}" ] || curl -sf "http://127.0.0.1:$((BASE + 84))/api/snapshot" > "$W/snapshot.json"
after=$(cpu_ticks "$DASHBOARD")
services=$(curl -sf "http://127.0.0.1:$((BASE + 84))/api/snapshot" |
  python3 -c 'import json, sys; print(len(json.load(sys.stdin)["snapshot"]["services"]))')
echo "weft dashboard --prometheus, refreshing every 2 s over $SIDECARS sidecars ($services services shown):"
awk -v t=$((after - before)) -v s="$SECONDS_RUN" -v hz="$(getconf CLK_TCK)" \
  'BEGIN { printf "  %.1f %% of a core (%d s)\n", t * 100 / hz / s, s }'
