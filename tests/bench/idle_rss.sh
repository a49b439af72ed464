#!/usr/bin/env bash
# Resident memory of a sidecar pair as tests/bench/pods.sh runs it (a control plane, certificates,
# a typical ServicePolicy, discovery, metrics, tracing at 1 % to an OTLP collector), on loopback
# and without root: idle after a few requests of each kind, and optionally under a 512-connection
# load. Each start is a fresh pair; each sidecar's RSS is broken down by
# tests/bench/rss_breakdown.py (code, libraries, heap, stacks, threads). Memory is not
# timing-sensitive, so this can run while the machine is busy.
#
# Usage: tests/bench/idle_rss.sh [starts, default 3]
#        WEFT_BIN=<dir> tests/bench/idle_rss.sh     (the binaries there: A/B)
#        LOAD=1 tests/bench/idle_rss.sh             also: the largest RSS of each sidecar sampled
#                                                   during h2load --h1 -c 512 (LOAD_REQUESTS
#                                                   requests, default 200000) and its RSS after
#        PROXY_FLAGS="--threads 2" ...              flags for both sidecars
#        MAPPINGS=1 ...                             each file mapping's RSS and private dirty part
#        HOLD=30 ...                                keeps each idle pair up 30 s more, for other
#                                                   tools (it prints the sidecars' pids)
#        SIDECAR_WRAPPER="valgrind ..."             runs the sidecars under a tool
#                                                   (tests/bench/code_order.sh)
# Needs nginx, h2load, curl, python3 with grpcio and opentelemetry-proto (the collector).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STARTS=${1:-3}
LOAD_REQUESTS=${LOAD_REQUESTS:-200000}
for tool in nginx h2load curl python3; do
  command -v "$tool" > /dev/null || { echo "error: $tool is not installed" >&2; exit 1; }
done
if [ -z "${WEFT_BIN:-}" ]; then
  "$ROOT/scripts/release-build" "$ROOT/target/dist" >&2
  WEFT_BIN=$ROOT/target/dist
fi
BASE=${BASE:-22000} MESH_NAME=idle-rss
# shellcheck source=tests/bench/loopback_mesh.sh
source "$ROOT/tests/bench/loopback_mesh.sh"
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# pods.sh's typical policy: every client layer configured, none acting.
cat > "$W/policies.yaml" << EOF
apiVersion: weft.dev/v1alpha1
kind: ServicePolicy
metadata: {name: hello, namespace: demo}
spec:
  routes:
    - name: api
      match: {pathPrefix: /api}
  client:
    defaults:
      timeouts: {request: 10s, perTry: 2s, idle: 5m}
      retries:
        limit: 2
        on: [gateway-error, connect-failure, refused-stream, "grpc:unavailable"]
        backoff: {base: 25ms, max: 250ms}
        budget: {ratio: 0.2, minPerSecond: 10, window: 10s}
      circuitBreaker: {consecutiveFailures: 7, penalty: {base: 1s, max: 60s, jitter: 0.5}}
      limits: {maxConcurrent: 4096, maxPending: 1024, queueTimeout: 1s}
    overrides:
      - routes: [api]
        timeouts: {request: 3s, perTry: 1s}
EOF
head -c 4096 /dev/zero > "$W/body-4k"

"$WEFT_BIN/weft-control-plane" --bootstrap-tokens "$W/tokens.yaml" --services "$W/services.yaml" \
  --policies "$W/policies.yaml" --listen "$CP" --admin-listen "$CP_ADMIN" --data-dir "$W/cp" \
  --log warn > "$W/cp.log" 2>&1 &
PIDS+=($!)
wait_for 20 "the control plane" test -f "$W/cp/trust-bundle.pem"
nginx -c "$W/nginx.conf" > "$W/nginx.log" 2>&1 &
PIDS+=($!)
python3 "$ROOT/tests/e2e/otlp_collector.py" --listen "$COLLECTOR" --count-only \
  --out "$W/collector-count.txt" > "$W/collector.log" 2>&1 &
PIDS+=($!)
wait_for 20 "the OTLP collector" grep -q ready "$W/collector.log"
read -r -a EXTRA <<< "${PROXY_FLAGS:-}"
read -r -a WRAP <<< "${SIDECAR_WRAPPER:-}"

sidecar() { # NAME TOKEN ARGS...
  local name=$1 token=$2
  shift 2
  WEFT_TOKEN=$token ${WRAP[@]+"${WRAP[@]}"} "$WEFT_BIN/weft-proxy" --control-plane-addr "$CP" \
    --trust-anchors "$W/cp/trust-bundle.pem" --outbound-listen off --log warn \
    --trace-collector "$COLLECTOR" --trace-sampling 0.01 "$@" ${EXTRA[@]+"${EXTRA[@]}"} \
    >> "$W/$name.log" 2>&1 &
  PIDS+=($!)
  STARTED=$!
}

# What pods.sh does before it reads idle memory: prove the path, a few requests of each kind.
exercise() {
  curl -sf "http://$FORWARD/" > /dev/null
  curl -sf -X POST --data-binary @"$W/body-4k" "http://$FORWARD/api/x" > /dev/null
  curl -sf "http://$SERVER_ADMIN/metrics" > /dev/null
  curl -sf "http://$CLIENT_ADMIN/metrics" > /dev/null
  h2load --h1 -c 32 -n 3200 "http://$FORWARD/" > "$W/exercise.txt"
  grep -q "3200 succeeded" "$W/exercise.txt" || { cat "$W/exercise.txt" >&2; exit 1; }
}

# The linker's list of the functions a sidecar runs (proxy/build.rs): how much of it this binary
# still has (tests/bench/code_order.sh renews it).
listed=$(nm --defined-only "$WEFT_BIN/weft-proxy" | awk '{print $3}' | sort -u |
  comm -12 - <(sort -u "$ROOT/proxy/code-order.txt") | wc -l)
echo "proxy/code-order.txt: $listed of $(wc -l < "$ROOT/proxy/code-order.txt") functions found in $WEFT_BIN/weft-proxy"

for start in $(seq "$STARTS"); do
  sidecar server 1b3d5f7a9c0e2a4c6e8a0c2e4a6c8e0a --identity spiffe://cluster.local/ns/demo/sa/hello \
    --inbound-listen "$SERVER_IN" --inbound-app-addr "$APP" --admin-listen "$SERVER_ADMIN"
  SERVER_PID=$STARTED
  sidecar client 7f3a9c0e5b2d4f6a8c1e3b5d7f9a0c2e --identity spiffe://cluster.local/ns/demo/sa/web \
    --inbound-listen 127.0.0.1:$((BASE + 7)) --admin-listen "$CLIENT_ADMIN" \
    --forward "$FORWARD=hello.demo:8080"
  CLIENT_PID=$STARTED
  wait_for 60 "both sidecars" curl -sf "http://$FORWARD/"
  exercise
  sleep 2 # what is freed after the last request goes back to the system (not a readiness wait)
  echo "start $start: idle RSS KiB: client $(rss_kib "$CLIENT_PID"), server $(rss_kib "$SERVER_PID")"
  python3 "$ROOT/tests/bench/rss_breakdown.py" "$CLIENT_PID" "  client" ${MAPPINGS:+--mappings}
  python3 "$ROOT/tests/bench/rss_breakdown.py" "$SERVER_PID" "  server" ${MAPPINGS:+--mappings}
  if [ -n "${HOLD:-}" ]; then
    echo "holding for ${HOLD} s: client pid $CLIENT_PID, server pid $SERVER_PID"
    sleep "$HOLD"
  fi
  if [ -n "${LOAD:-}" ]; then
    h2load --h1 -c 512 -n "$LOAD_REQUESTS" "http://$FORWARD/" > "$W/load.txt" 2>&1 &
    LOAD_PID=$!
    peak_client=0 peak_server=0
    while kill -0 "$LOAD_PID" 2> /dev/null; do
      c=$(rss_kib "$CLIENT_PID") s=$(rss_kib "$SERVER_PID")
      [ "$c" -le "$peak_client" ] || peak_client=$c
      [ "$s" -le "$peak_server" ] || peak_server=$s
      sleep 0.2
    done
    wait "$LOAD_PID" || true
    grep -q "$LOAD_REQUESTS succeeded" "$W/load.txt" || { tail -8 "$W/load.txt" >&2; exit 1; }
    echo "start $start: largest RSS KiB under 512 connections: client $peak_client, server $peak_server"
    sleep 2
    echo "start $start: RSS KiB after the load: client $(rss_kib "$CLIENT_PID"), server $(rss_kib "$SERVER_PID")"
    python3 "$ROOT/tests/bench/rss_breakdown.py" "$CLIENT_PID" "  client"
    python3 "$ROOT/tests/bench/rss_breakdown.py" "$SERVER_PID" "  server"
  fi
  kill "$CLIENT_PID" "$SERVER_PID"
  wait "$CLIENT_PID" "$SERVER_PID" 2> /dev/null || true
done
