#!/usr/bin/env bash
# Instructions per request of each sidecar, under callgrind: deterministic where wall-clock
# numbers on a shared 2-core machine are not, so small costs (a metric, a header) show.
#
# The by-hand mesh of docs/getting-started.md on loopback: a control plane, nginx as the app, the
# server's sidecar in front of it and the caller's sidecar with a --forward listener, both sidecars
# under valgrind --tool=callgrind. h2load --h1 -c 4 sends WARMUP requests, the counters are zeroed
# (callgrind_control -z), then REQUESTS more are sent and the counters dumped: the dumped
# instruction total / REQUESTS is one request's cost on that sidecar.
#
# Usage: tests/bench/callgrind.sh                  (builds this checkout's release binaries)
#        WEFT_BIN=<dir> tests/bench/callgrind.sh   (the binaries there: A/B)
#        PROXY_FLAGS="--trace-sampling 0.01" TRACING=1 tests/bench/callgrind.sh
#          TRACING=1 starts an OTLP collector (tests/e2e/otlp_collector.py, counting only) and
#          adds --trace-collector to both sidecars; PROXY_FLAGS go to both sidecars.
#        ROUTES=1 tests/bench/callgrind.sh
#          an HTTPRoute on hello of five rules: four that do not match the benchmark's GET /, then
#          one splitting it 50/50 between hello-v1 and hello-v2 (each a MeshService whose endpoint
#          is the same server sidecar, on 127.0.1.1 and 127.0.1.2).
#        TWO_ENDPOINTS=1 tests/bench/callgrind.sh
#          no route, and hello's endpoints are 127.0.1.1 and 127.0.1.2 (the same server sidecar):
#          the baseline for ROUTES=1, whose two backends also mean two connections between the
#          sidecars (fewer requests per HTTP/2 read and write than over one).
#        POST=1 tests/bench/callgrind.sh
#          POST /post with a 4 KiB body (pods.sh's post-4k): nginx answers once it has read it.
#        GET_64K=1 tests/bench/callgrind.sh
#          GET /64k, a 64 KiB file (pods.sh's get-64k).
#        REQUESTS=2000 WARMUP=300 (defaults)
#        ALLOCATIONS=1 tests/bench/callgrind.sh
#          no valgrind: counts each sidecar's calls of the allocator (mimalloc's mi_malloc_aligned,
#          mi_zalloc_aligned, mi_realloc_aligned) during the measured requests with perf uprobes
#          (needs root and perf), and prints allocations per request instead.
#        ALLOCATIONS=stacks tests/bench/callgrind.sh
#          the same probes recorded with call stacks (perf record --call-graph dwarf): writes
#          each sidecar's allocation sites, by count, to allocations.<side>.txt in the current
#          directory.
#        SYSCALLS=1 tests/bench/callgrind.sh
#          no valgrind: counts each sidecar's system calls that move bytes or wait (reads,
#          writes, epoll_wait, futex) during the measured requests with perf's syscall
#          tracepoints, and prints them per request instead.
# Needs valgrind, nginx, h2load, curl (and python3 with opentelemetry-proto and grpcio for
# TRACING=1).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
REQUESTS=${REQUESTS:-2000}
WARMUP=${WARMUP:-300}
TOOLS=(valgrind callgrind_control nginx h2load curl)
[ -z "${ALLOCATIONS:-}${SYSCALLS:-}" ] || TOOLS=(perf nginx h2load curl)
for tool in "${TOOLS[@]}"; do
  command -v "$tool" > /dev/null || { echo "error: $tool is not installed" >&2; exit 1; }
done
if [ -z "${WEFT_BIN:-}" ]; then
  "$ROOT/scripts/release-build" "$ROOT/target/dist" >&2
  WEFT_BIN=$ROOT/target/dist
fi
# Ports: an offset so a run does not meet the by-hand mesh of docs/getting-started.md.
BASE=${BASE:-21000} MESH_NAME=callgrind
# shellcheck source=tests/bench/loopback_mesh.sh
source "$ROOT/tests/bench/loopback_mesh.sh"
PERF_PIDS=()
if [ -n "${TWO_ENDPOINTS:-}" ]; then
  SERVER_IN=0.0.0.0:$((BASE + 6))
  sed -i 's/endpoints: \[{address: 127.0.0.1, serviceAccount: hello}\]/endpoints: [{address: 127.0.1.1, serviceAccount: hello}, {address: 127.0.1.2, serviceAccount: hello}]/' \
    "$W/services.yaml"
fi
ROUTE_FLAGS=()
if [ -n "${ROUTES:-}" ]; then
  SERVER_IN=0.0.0.0:$((BASE + 6))
  for v in 1 2; do
    cat >> "$W/services.yaml" << EOF
---
apiVersion: weft.dev/v1alpha1
kind: MeshService
metadata: {name: hello-v$v, namespace: demo}
spec:
  ports: [{port: 8080, targetPort: $((BASE + 6))}]
  endpoints: [{address: 127.0.1.$v, serviceAccount: hello}]
EOF
  done
  cat > "$W/routes.yaml" << EOF
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: hello, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: hello, port: 8080}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /api}}]
      backendRefs: [{name: hello-v1, port: 8080}]
    - matches: [{path: {type: Exact, value: /health}, method: GET}]
      backendRefs: [{name: hello-v1, port: 8080}]
    - matches: [{headers: [{name: x-canary, value: "1"}]}]
      backendRefs: [{name: hello-v2, port: 8080}]
    - matches: [{queryParams: [{name: debug, value: "1"}]}]
      backendRefs: [{name: hello-v2, port: 8080}]
    - backendRefs:
        - {name: hello-v1, port: 8080, weight: 50}
        - {name: hello-v2, port: 8080, weight: 50}
EOF
  ROUTE_FLAGS=(--routes "$W/routes.yaml")
fi
"$WEFT_BIN/weft-control-plane" --bootstrap-tokens "$W/tokens.yaml" --services "$W/services.yaml" \
  --listen "$CP" --admin-listen "$CP_ADMIN" --data-dir "$W/cp" --log warn \
  ${ROUTE_FLAGS[@]+"${ROUTE_FLAGS[@]}"} > "$W/cp.log" 2>&1 &
PIDS+=($!)
wait_for 20 "the control plane" test -f "$W/cp/trust-bundle.pem"
nginx -c "$W/nginx.conf" > "$W/nginx.log" 2>&1 &
PIDS+=($!)
read -r -a EXTRA <<< "${PROXY_FLAGS:-}"
if [ -n "${TRACING:-}" ]; then
  python3 "$ROOT/tests/e2e/otlp_collector.py" --listen "$COLLECTOR" --count-only \
    --out "$W/collector-count.txt" > "$W/collector.log" 2>&1 &
  COLLECTOR_PID=$!
  PIDS+=("$COLLECTOR_PID")
  wait_for 20 "the OTLP collector" grep -q ready "$W/collector.log"
  EXTRA+=(--trace-collector "$COLLECTOR")
fi
sidecar() { # NAME TOKEN ARGS...
  local name=$1 token=$2
  shift 2
  local under=(valgrind --tool=callgrind --callgrind-out-file="$W/callgrind.$name.%p")
  [ -z "${ALLOCATIONS:-}${SYSCALLS:-}" ] || under=()
  WEFT_TOKEN=$token ${under[@]+"${under[@]}"} \
    "$WEFT_BIN/weft-proxy" --control-plane-addr "$CP" --trust-anchors "$W/cp/trust-bundle.pem" \
    --outbound-listen off --log warn "$@" ${EXTRA[@]+"${EXTRA[@]}"} > "$W/$name.log" 2>&1 &
  PIDS+=($!)
  STARTED=$!
}
sidecar server 1b3d5f7a9c0e2a4c6e8a0c2e4a6c8e0a --identity spiffe://cluster.local/ns/demo/sa/hello \
  --inbound-listen "$SERVER_IN" --inbound-app-addr "$APP" --admin-listen "$SERVER_ADMIN"
SERVER_PID=$STARTED
sidecar client 7f3a9c0e5b2d4f6a8c1e3b5d7f9a0c2e --identity spiffe://cluster.local/ns/demo/sa/web \
  --inbound-listen 127.0.0.1:$((BASE + 7)) --admin-listen "$CLIENT_ADMIN" \
  --forward "$FORWARD=hello.demo:8080"
CLIENT_PID=$STARTED
wait_for 60 "both sidecars" curl -sf "http://$FORWARD/"

LOAD_URL=http://$FORWARD/ LOAD_BODY=()
if [ -n "${POST:-}" ]; then
  # nginx's worker (nobody) reads the answer's file: a directory it may enter.
  mkdir -p "$W/app"
  printf 'posted\n' > "$W/app/post"
  chmod 711 "$W"
  chmod 755 "$W/app"
  head -c 4096 /dev/zero | tr '\0' x > "$W/body-4k"
  LOAD_URL=http://$FORWARD/post LOAD_BODY=(-d "$W/body-4k")
fi
if [ -n "${GET_64K:-}" ]; then
  mkdir -p "$W/app"
  head -c 65536 /dev/zero | tr '\0' x > "$W/app/64k"
  chmod 711 "$W"
  chmod 755 "$W/app"
  LOAD_URL=http://$FORWARD/64k
fi
load() { # REQUESTS
  h2load --h1 -c 4 -n "$1" ${LOAD_BODY[@]+"${LOAD_BODY[@]}"} "$LOAD_URL"
}
load "$WARMUP" > "$W/warmup.txt"
if [ -n "${SYSCALLS:-}" ]; then
  EVENTS=()
  for call in read recvfrom readv write sendto writev sendmsg epoll_wait futex; do
    EVENTS+=(-e "syscalls:sys_enter_$call")
  done
  for side in server client; do
    pid=SERVER_PID
    [ "$side" = server ] || pid=CLIENT_PID
    perf stat -x, "${EVENTS[@]}" -p "${!pid}" -o "$W/syscalls.$side" &
    PERF_PIDS+=($!)
  done
  sleep 1 # perf attaches
  load "$REQUESTS" > "$W/run.txt"
  kill -INT "${PERF_PIDS[@]}"
  wait "${PERF_PIDS[@]}" 2> /dev/null || true
  echo "system calls per request ($REQUESTS requests after $WARMUP, h2load --h1 -c 4${POST:+, POST 4 KiB}${GET_64K:+, GET 64 KiB}):"
  for side in server client; do
    awk -F, -v n="$REQUESTS" -v side="$side" '$3 ~ /sys_enter_/ && $1 > 0 {
        sub(/.*sys_enter_/, "", $3); line = line sprintf(" %s %.2f", $3, $1 / n) }
      END { printf "  %s sidecar:%s\n", side, line }' "$W/syscalls.$side"
  done
  exit 0
fi
if [ -n "${ALLOCATIONS:-}" ]; then
  EVENTS=()
  for fn in mi_malloc_aligned mi_zalloc_aligned mi_realloc_aligned; do
    perf probe -q -x "$WEFT_BIN/weft-proxy" -d "probe_weft:$fn" 2> /dev/null || true
    perf probe -q -x "$WEFT_BIN/weft-proxy" -a "$fn" > /dev/null
    EVENTS+=(-e "probe_weft:$fn")
  done
  for side in server client; do
    pid=SERVER_PID
    [ "$side" = server ] || pid=CLIENT_PID
    if [ "$ALLOCATIONS" = stacks ]; then
      perf record -q --call-graph dwarf,16384 "${EVENTS[@]}" -p "${!pid}" \
        -o "$W/allocations.$side.data" > /dev/null 2>&1 &
    else
      perf stat -x, "${EVENTS[@]}" -p "${!pid}" -o "$W/allocations.$side" &
    fi
    PERF_PIDS+=($!)
  done
  sleep 1 # perf attaches its probes
  load "$REQUESTS" > "$W/run.txt"
  kill -INT "${PERF_PIDS[@]}"
  wait "${PERF_PIDS[@]}" 2> /dev/null || true
  if [ "$ALLOCATIONS" = stacks ]; then
    for side in server client; do
      perf report -q -i "$W/allocations.$side.data" --no-children --stdio -G \
        --percent-limit 0.5 > "allocations.$side.txt" 2> /dev/null
      echo "allocation sites of the $side sidecar: allocations.$side.txt"
    done
    exit 0
  fi
  echo "allocations per request ($REQUESTS requests after $WARMUP, h2load --h1 -c 4${POST:+, POST 4 KiB}${GET_64K:+, GET 64 KiB}):"
  for side in server client; do
    awk -F, -v n="$REQUESTS" -v side="$side" '$3 ~ /probe_weft/ { total += $1 }
      END { printf "  %s sidecar %.1f\n", side, total / n }' "$W/allocations.$side"
  done
  exit 0
fi
callgrind_control -z "$SERVER_PID" > /dev/null 2>&1
callgrind_control -z "$CLIENT_PID" > /dev/null 2>&1
load "$REQUESTS" > "$W/run.txt"
grep -q "succeeded, 0 failed" <(grep "^requests:" "$W/run.txt") &&
  grep -q "^status codes: $REQUESTS 2xx" "$W/run.txt" ||
  { echo "error: requests failed:" >&2; cat "$W/run.txt" >&2; exit 1; }
callgrind_control -d "$SERVER_PID" > /dev/null 2>&1
callgrind_control -d "$CLIENT_PID" > /dev/null 2>&1
per_request() { # NAME PID: the dumped total (the last dump's "totals:" line) / REQUESTS
  local file
  file=$(ls -t "$W/callgrind.$1.$2".* 2> /dev/null | head -1)
  [ -n "$file" ] || { echo "error: no callgrind dump of the $1 sidecar" >&2; exit 1; }
  awk -v n="$REQUESTS" '/^(summary|totals):/ { total = $2 } END { printf "%.1fk", total / n / 1000 }' "$file"
}
echo "instructions per request ($REQUESTS requests after $WARMUP, h2load --h1 -c 4${POST:+, POST 4 KiB}${GET_64K:+, GET 64 KiB}${PROXY_FLAGS:+, $PROXY_FLAGS}${TRACING:+, tracing to a collector}):"
echo "  server sidecar $(per_request server "$SERVER_PID")"
echo "  client sidecar $(per_request client "$CLIENT_PID")"
if [ -n "${TRACING:-}" ]; then
  for admin in "$CLIENT_ADMIN" "$SERVER_ADMIN"; do
    curl -sf "http://$admin/metrics" | grep -E "^weft_trace_spans_(exported|dropped)_total" | sed 's/^/  /' || true
  done
fi
