#!/usr/bin/env bash
# CPU a sidecar spends on one Prometheus scrape when it has called many destinations: the
# caller's sidecar with DESTINATIONS (100) services behind --forward listeners, each called a
# few times (so each has its request, latency and connection series), then SCRAPES (200) GETs of
# /metrics; the sidecar's own CPU time (utime + stime from /proc/PID/stat) over the scrapes,
# divided by SCRAPES. CPU time, not wall time: it holds on a machine that does other work too.
#
# Each service has its own endpoint address (127.0.1.1, 127.0.1.2, ...: loopback), all served by
# one server sidecar listening on the wildcard address, and nginx behind it.
#
# Usage: tests/bench/scrape.sh                  (builds this checkout's release binaries)
#        WEFT_BIN=<dir> tests/bench/scrape.sh   (the binaries there)
# Needs nginx and curl.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DESTINATIONS=${DESTINATIONS:-100}
SCRAPES=${SCRAPES:-200}
for tool in nginx curl; do
  command -v "$tool" > /dev/null || { echo "error: $tool is not installed" >&2; exit 1; }
done
if [ -z "${WEFT_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --bin weft-proxy --bin weft-control-plane >&2)
  WEFT_BIN=$ROOT/target/release
fi
W=$(mktemp -d /tmp/weft-scrape.XXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2> /dev/null || true; done
  wait 2> /dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
BASE=${BASE:-23000}
CP=127.0.0.1:$((BASE + 10)) CP_ADMIN=127.0.0.1:$((BASE + 14)) APP=127.0.0.1:$((BASE + 80))
SERVER_IN=0.0.0.0:$((BASE + 6)) SERVER_ADMIN=127.0.0.1:$((BASE + 100))
CLIENT_ADMIN=127.0.0.1:$((BASE + 200)) FORWARD_BASE=$((BASE + 1000))

wait_for() { # SECONDS WHAT COMMAND...
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" > /dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "error: timed out waiting for $what" >&2; exit 1; }
    sleep 0.2
  done
}

cat > "$W/tokens.yaml" << EOF
apiVersion: weft.dev/v1alpha1
kind: BootstrapTokens
tokens:
  - {identity: spiffe://cluster.local/ns/demo/sa/web, token: 7f3a9c0e5b2d4f6a8c1e3b5d7f9a0c2e}
  - {identity: spiffe://cluster.local/ns/demo/sa/hello, token: 1b3d5f7a9c0e2a4c6e8a0c2e4a6c8e0a}
EOF
FORWARDS=()
for i in $(seq 0 $((DESTINATIONS - 1))); do
  cat >> "$W/services.yaml" << EOF
---
apiVersion: weft.dev/v1alpha1
kind: MeshService
metadata: {name: svc-$i, namespace: demo}
spec:
  ports: [{port: 8080, targetPort: $((BASE + 6))}]
  endpoints: [{address: 127.0.$((1 + i / 250)).$((1 + i % 250)), serviceAccount: hello}]
EOF
  FORWARDS+=(--forward "127.0.0.1:$((FORWARD_BASE + i))=svc-$i.demo:8080")
done
cat > "$W/nginx.conf" << EOF
worker_processes 1;
daemon off;
pid $W/nginx.pid;
error_log $W/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  server { listen $APP; location / { return 200 "hello from nginx\n"; } }
}
EOF

"$WEFT_BIN/weft-control-plane" --bootstrap-tokens "$W/tokens.yaml" --services "$W/services.yaml" \
  --listen "$CP" --admin-listen "$CP_ADMIN" --data-dir "$W/cp" --log warn > "$W/cp.log" 2>&1 &
PIDS+=($!)
wait_for 20 "the control plane" test -f "$W/cp/trust-bundle.pem"
nginx -c "$W/nginx.conf" > "$W/nginx.log" 2>&1 &
PIDS+=($!)
common=(--control-plane-addr "$CP" --trust-anchors "$W/cp/trust-bundle.pem" --outbound-listen off
  --log warn)
WEFT_TOKEN=1b3d5f7a9c0e2a4c6e8a0c2e4a6c8e0a "$WEFT_BIN/weft-proxy" "${common[@]}" \
  --identity spiffe://cluster.local/ns/demo/sa/hello --inbound-listen "$SERVER_IN" \
  --inbound-app-addr "$APP" --admin-listen "$SERVER_ADMIN" > "$W/server.log" 2>&1 &
PIDS+=($!)
WEFT_TOKEN=7f3a9c0e5b2d4f6a8c1e3b5d7f9a0c2e "$WEFT_BIN/weft-proxy" "${common[@]}" \
  --identity spiffe://cluster.local/ns/demo/sa/web --inbound-listen 127.0.0.1:$((BASE + 7)) \
  --admin-listen "$CLIENT_ADMIN" "${FORWARDS[@]}" > "$W/client.log" 2>&1 &
CLIENT_PID=$!
PIDS+=("$CLIENT_PID")
wait_for 60 "the sidecars" curl -sf "http://127.0.0.1:$FORWARD_BASE/"
for i in $(seq 0 $((DESTINATIONS - 1))); do
  for _ in 1 2 3; do
    curl -sf -o /dev/null "http://127.0.0.1:$((FORWARD_BASE + i))/" ||
      { echo "error: a request to svc-$i failed" >&2; exit 1; }
  done
done

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$CLIENT_PID/stat"; }
curl -sf "http://$CLIENT_ADMIN/metrics" > "$W/metrics.txt"
before=$(cpu_ticks)
for _ in $(seq "$SCRAPES"); do curl -sf -o /dev/null "http://$CLIENT_ADMIN/metrics"; done
after=$(cpu_ticks)
hz=$(getconf CLK_TCK)
series=$(grep -vc '^#' "$W/metrics.txt")
echo "a scrape of the caller's sidecar with $DESTINATIONS destinations ($series series, $(wc -c < "$W/metrics.txt") bytes):"
awk -v t=$((after - before)) -v n="$SCRAPES" -v hz="$hz" \
  'BEGIN { printf "  %.2f ms of the sidecar'"'"'s CPU (%d scrapes)\n", t * 1000 / hz / n, n }'
