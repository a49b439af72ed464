#!/usr/bin/env bash
# Side-by-side benchmark in pods: two network namespaces ("client" and "server" pods) on a Linux
# bridge, each with weft's iptables interception (weft-proxy init) and its sidecar as UID 1337,
# the control plane in the bridge's namespace, and one nginx app in the server pod (HTTP/1.1 on
# 8080 and 8081, h2c gRPC on 8090 and 8091). Three paths, all driven from inside the client pod,
# over the same veth path:
#   direct        UID 1337 -> 10.250.0.3:8081 (gRPC :8091) -> nginx   (a UID and ports neither
#                                                            pod's rules intercept: no proxy)
#   weft pair     root -> 10.250.0.3:8080 (gRPC :8090), intercepted -> weft (client pod) -> mTLS
#                 HTTP/2 -> intercepted -> weft (server pod) -> nginx   (both ports are in the
#                 app's MeshService)
#   haproxy pair  root -> 127.0.0.1:18001 (gRPC, h2c: 127.0.0.1:18002) -> haproxy (client pod)
#                 -> mTLS -> 10.250.0.3:18443 haproxy (server pod) -> 127.0.0.1:8080 nginx
#                 (gRPC: 127.0.0.1:8090, h2c)   (the anchor's config, ../shared/anchors/
#                 haproxy-pair.sh, one thread per proxy; port 18443 is on both pods' skip lists)
# The anchor's HAProxy config is changed only for gRPC (lib.sh, write_haproxy_pair): the client
# side has a second frontend, `bind 127.0.0.1:18002 proto h2`, into the same mTLS backend; the
# server side sends `req.hdr(content-type) -m beg application/grpc` to a second backend,
# `server app_grpc 127.0.0.1:8090 proto h2`. The HTTP/1.1 paths are the anchor's as they were.
#
# A matrix of scenarios (matrix.sh), each measured on all three paths in the same run:
#   get-32      GET /, wrk -t1 -c32
#   get-512     GET /, wrk -t1 -c512 (the connections each path's entry holds are counted
#               half-way through, and must be 512)
#   post-4k     POST /post with a 4 KiB body, wrk -t1 -c32 and a Lua script; nginx reads the
#               whole body before it answers 200, as an app that reads its input
#   get-64k     GET /64k, a 64 KiB static file, wrk -t1 -c32
#   grpc-unary  gRPC unary POST /bench.Echo/Unary over h2c, h2load -t1 -c32 -m1 (one stream per
#               connection, as unary calls from 32 callers)
# and, only when BENCH_SCENARIOS names it, post-4k-early: post-4k against an app that answers
# before it has read the body (nginx's `return`); see matrix.sh.
# Per scenario and path: req/s and errors/non-2xx (any is reported loudly and fails the run), CPU
# seconds per 1k requests of each proxy (from /proc ticks over the run, over the requests the
# load generator completed), resident memory of both proxies sampled half-way through. Once per
# round: p50/p99 latency at 1k req/s (h2load --h1, GET /) on each path. Once: idle memory of each
# proxy. One markdown table (matrix_report.py), the issue's targets met or missed below it.
# Before measuring it proves each path goes where it says, and that each answers each scenario
# right: the body of /, the 64 KiB file byte for byte, the 4 KiB POST as nginx logged it, and a
# real gRPC client (grpcio, grpc_check.py) getting the expected bytes with status OK (the trailer
# grpc-status: 0 is also checked frame by frame on the app with nghttp).
#
# Usage: sudo tests/bench/pods.sh [seconds per measurement, default 10]
#        (the old second argument, connections, is gone: the scenarios fix their connections)
#        RUNS=N repeats the whole matrix N times in one setup (default 1), interleaving paths
#        (each round: for each scenario: direct, weft, haproxy; then latency); the table shows
#        per scenario the median over runs of each number and of each weft ÷ haproxy ratio
#        (computed per run), and the min–max of the throughput ratio. docs/performance.md's
#        numbers use RUNS=5. With 10 s, RUNS=1 takes about 3.5 minutes.
#        BENCH_SCENARIOS="get-32 get-512" measures only those (default: the five above, not
#        post-4k-early).
#        WEFT_POLICY=typical (the default) gives the app a typical ServicePolicy (timeouts,
#        retries, breaker and limits all configured, none of them acting); WEFT_POLICY=none runs
#        without one; WEFT_POLICY=server adds its server half (authorization admitting the client's
#        namespace and rate limits no request reaches).
#        BENCH_TRACING=<ratio> (default 0.01) starts an OTLP collector (tests/e2e/
#        otlp_collector.py, counting spans only) in the bridge namespace and runs both sidecars
#        with --trace-collector and --trace-sampling <ratio>; the spans exported and dropped are
#        reported after the table. BENCH_TRACING=off runs without tracing. Metrics are always on.
#        BENCH_HALF_RATE=1 adds a second latency point per round at half of the round's direct
#        get-32 req/s (off by default: it costs 3 more measurements per round).
#        PROFILE=perf and SYSCALLS=1 (profile.sh): after the matrix, extra get-32 and get-512 runs
#        on the weft and haproxy paths under `perf record -g` / `strace -c -f` of each proxy (not
#        part of the table: tracing a proxy slows it).
#        KEEP=1 keeps the working directory (configs, logs, raw per-run output in raw/rN/, both
#        sidecars' /metrics after the matrix in raw/metrics-weft-{client,server}.txt).
#        WEFT_BIN=<dir> uses the weft binaries there instead of building this checkout.
#        WEFT_PROXY_FLAGS="--threads 2" adds flags to both sidecars (to measure a setting).
# Needs root (namespaces, iptables) and: wrk h2load nghttp haproxy nginx openssl python3 (with
# grpcio) curl ip iptables setpriv ss. Everything it creates (namespaces wb-<pid>-*, the processes
# in them, /tmp/weft-pods.<pid>.*) is removed on exit, also on failure or Ctrl-C; what a run killed
# outright (SIGKILL) left behind is removed by the next run.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/bench/matrix.sh
. "$(dirname "$0")/matrix.sh"
# shellcheck source=tests/bench/profile.sh
. "$(dirname "$0")/profile.sh"

D=${1:-10}
[ $# -le 1 ] || die "pods.sh takes one argument (seconds per measurement); the connections are the scenarios' own (BENCH_SCENARIOS selects them): got '$*'"
RUNS=${RUNS:-1}
WEFT_POLICY=${WEFT_POLICY:-typical}
BENCH_TRACING=${BENCH_TRACING:-0.01}
[ "$BENCH_TRACING" != off ] || BENCH_TRACING=
PROXY_UID=1337
# The sidecars run as UID 1337, as in a pod (runAsUser); so does the direct path's load generator.
AS_PROXY_UID=(setpriv --reuid="$PROXY_UID" --regid="$PROXY_UID" --clear-groups)
NET=10.250.0
BRIDGE_IP=$NET.1
CLIENT_IP=$NET.2
SERVER_IP=$NET.3
CP_ADDR=$BRIDGE_IP:15010
CP_ADMIN=$BRIDGE_IP:15014
TRUST_DOMAIN_NS=spiffe://cluster.local/ns/bench/sa
# Namespace names carry this run's pid, so a later run can tell leftovers of dead runs.
PREFIX=wb-$$
NS_BRIDGE=$PREFIX-bridge
NS_CLIENT=$PREFIX-client
NS_SERVER=$PREFIX-server
W=
PIDS=()

# --- running things in the pods ----------------------------------------------------------------

in_bridge() { ip netns exec "$NS_BRIDGE" "$@"; }
in_server() { ip netns exec "$NS_SERVER" "$@"; }
# root in the client pod: its outbound TCP is intercepted by the client pod's rules.
in_client() { ip netns exec "$NS_CLIENT" "$@"; }
# UID 1337 in the client pod: weft-proxy init exempts the proxy's UID from redirection, so this
# reaches the server pod without the client's sidecar (the direct path's load generator).
in_client_unmeshed() { ip netns exec "$NS_CLIENT" "${AS_PROXY_UID[@]}" "$@"; }

# start NAME NS USER COMMAND...: COMMAND in pod NS as USER (root, or proxy for UID 1337), in the
# background, output to $W/NAME.log; its pid in $STARTED and PIDS. The command line is one simple
# external command (no shell function), so bash forks once and `ip netns exec` and `setpriv` each
# exec the next: $STARTED ends up being the program's own pid, whose /proc/<pid>/stat the CPU and
# memory figures read (check_program makes sure).
start() {
  local name=$1 ns=$2 user=$3
  shift 3
  local prefix=(ip netns exec "$ns")
  [ "$user" = root ] || prefix+=("${AS_PROXY_UID[@]}")
  "${prefix[@]}" "$@" > "$W/$name.log" 2>&1 &
  STARTED=$!
  PIDS+=("$STARTED")
}

# check_program NAME PID PROGRAM: PID runs PROGRAM by now (the execs above are done).
program_is() { [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]; }
check_program() {
  wait_for 5 "$1 (pid $2) to be $3" program_is "$2" "$3" || fail_with_logs "$1"
}

# --- topology ----------------------------------------------------------------------------------

# remove_namespace NS: stop whatever still runs inside, then delete it (its veths go with it).
remove_namespace() {
  local ns=$1 inside
  inside=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
  # shellcheck disable=SC2086 # a list of pids
  [ -z "$inside" ] || stop_pids $inside
  ip netns delete "$ns" 2>/dev/null || true
}

# reap_stale_runs: a run killed with SIGKILL never ran its trap; its namespaces (with the
# processes in them) and its working directory stay behind. Their names carry the pid of the run
# that made them: remove those whose run is gone.
reap_stale_runs() {
  local ns dir pid
  while read -r ns _; do
    [[ $ns =~ ^wb-([0-9]+)- ]] || continue
    pid=${BASH_REMATCH[1]}
    [ -d "/proc/$pid" ] && continue
    echo "removing stale namespace $ns (its run, pid $pid, is gone)" >&2
    remove_namespace "$ns"
  done < <(ip netns list)
  for dir in /tmp/weft-pods.*; do
    [[ $dir =~ ^/tmp/weft-pods\.([0-9]+)\. ]] || continue
    pid=${BASH_REMATCH[1]}
    [ -d "/proc/$pid" ] && continue
    echo "removing stale working directory $dir (its run, pid $pid, is gone)" >&2
    rm -rf "$dir"
  done
}

# add_pod NS IP ROLE: a namespace with lo, and eth0 (a veth whose peer v-ROLE sits on the bridge)
# at IP/24 with a default route through the bridge's address.
add_pod() {
  local ns=$1 ip=$2 role=$3
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip -n "$NS_BRIDGE" link add "v-$role" type veth peer name eth0 netns "$ns"
  ip -n "$NS_BRIDGE" link set "v-$role" master br0 up
  ip -n "$ns" addr add "$ip/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add default via "$BRIDGE_IP"
}

make_topology() {
  ip netns add "$NS_BRIDGE"
  ip -n "$NS_BRIDGE" link set lo up
  ip -n "$NS_BRIDGE" link add br0 type bridge
  ip -n "$NS_BRIDGE" addr add "$BRIDGE_IP/24" dev br0
  ip -n "$NS_BRIDGE" link set br0 up
  add_pod "$NS_CLIENT" "$CLIENT_IP" client
  add_pod "$NS_SERVER" "$SERVER_IP" server
}

cleanup() {
  local rc=$?
  set +e
  stop_pids "${PIDS[@]}"
  for ns in "$NS_CLIENT" "$NS_SERVER" "$NS_BRIDGE"; do remove_namespace "$ns"; done
  if [ -n "$W" ]; then
    if [ -n "${KEEP:-}" ]; then echo "kept $W" >&2; else rm -rf "$W"; fi
  fi
  exit "$rc"
}

# --- the mesh and the apps ---------------------------------------------------------------------

write_services() {
  cat > "$W/services.yaml" <<YAML
apiVersion: weft.dev/v1alpha1
kind: MeshService
metadata: {name: app, namespace: bench}
spec:
  ports: [{port: 8080}, {port: 8090}]
  endpoints:
    - address: $SERVER_IP
      serviceAccount: server
YAML
}

# A ServicePolicy with every client layer configured; in a healthy run none of them acts.
write_policy() {
  cat > "$W/policies.yaml" <<YAML
apiVersion: weft.dev/v1alpha1
kind: ServicePolicy
metadata: {name: app, namespace: bench}
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
YAML
  if [ "$WEFT_POLICY" = server ]; then
    cat >> "$W/policies.yaml" <<YAML
  server:
    authorization:
      allow: [{from: ["spiffe://cluster.local/ns/bench/*"]}]
    rateLimit:
      total: {rps: 10000000, burst: 1000000}
      perIdentity: {rps: 10000000, burst: 1000000}
YAML
  fi
}

control_plane_ready() {
  [ -f "$W/cp/trust-bundle.pem" ] && in_bridge curl -sf "http://$CP_ADMIN/ready"
}

start_control_plane() {
  start control-plane "$NS_BRIDGE" root "$W/bin/weft-control-plane" --listen "$CP_ADDR" \
    --admin-listen "$CP_ADMIN" --data-dir "$W/cp" --bootstrap-tokens "$W/tokens.yaml" \
    --services "$W/services.yaml" ${POLICY_FLAGS[@]+"${POLICY_FLAGS[@]}"} --log warn
  wait_for 20 "the control plane (/ready on $CP_ADMIN and its trust bundle)" control_plane_ready ||
    fail_with_logs control-plane
  # The sidecars run as UID 1337 and read the bundle as their first trust anchors.
  chmod 755 "$W/cp"
  chmod 644 "$W/cp/trust-bundle.pem"
}

# start_sidecar NS ROLE: weft-proxy with default listeners (inbound [::]:15006, outbound
# 127.0.0.1:15001 and [::1]:15001, admin 0.0.0.0:15000) as UID 1337; its pid in $STARTED.
start_sidecar() {
  local ns=$1 role=$2
  start "weft-$role" "$ns" proxy "$W/bin/weft-proxy" --identity "$TRUST_DOMAIN_NS/$role" \
    --control-plane-addr "$CP_ADDR" --trust-anchors "$W/cp/trust-bundle.pem" \
    --token-file "$W/$role.token" --log warn ${TRACE_FLAGS[@]+"${TRACE_FLAGS[@]}"} \
    ${EXTRA_PROXY_FLAGS[@]+"${EXTRA_PROXY_FLAGS[@]}"}
}
# WEFT_PROXY_FLAGS: more flags for both sidecars (e.g. "--threads 2"), to measure a setting.
read -r -a EXTRA_PROXY_FLAGS <<< "${WEFT_PROXY_FLAGS:-}"

# start_collector: with BENCH_TRACING, an OTLP/gRPC collector on the bridge that counts spans.
TRACE_FLAGS=()
COLLECTOR_ADDR=$BRIDGE_IP:4317
start_collector() {
  [ -n "${BENCH_TRACING:-}" ] || return 0
  start collector "$NS_BRIDGE" root python3 "$(dirname "$0")/../e2e/otlp_collector.py" \
    --listen "$COLLECTOR_ADDR" --count-only --out "$W/collector-count.txt"
  COLLECTOR_PID=$STARTED
  wait_for 20 "the OTLP collector on $COLLECTOR_ADDR" grep -q ready "$W/collector.log" ||
    fail_with_logs collector
  TRACE_FLAGS=(--trace-collector "$COLLECTOR_ADDR" --trace-sampling "$BENCH_TRACING")
}

# trace_summary: what the collector received and what each sidecar exported and dropped.
trace_summary() {
  [ -n "${BENCH_TRACING:-}" ] || return 0
  local role admin
  for role in client server; do
    admin=$CLIENT_IP:15000
    [ "$role" = client ] || admin=$SERVER_IP:15000
    echo "tracing ($BENCH_TRACING): $role sidecar exported $(metric_sum "$admin" weft_trace_spans_exported_total) spans, dropped $(metric_sum "$admin" weft_trace_spans_dropped_total)"
  done
  kill -TERM "$COLLECTOR_PID" 2>/dev/null || true
  wait_for 5 "the collector's count" test -s "$W/collector-count.txt" &&
    echo "tracing ($BENCH_TRACING): the collector received $(cat "$W/collector-count.txt")"
}

start_server_pod() {
  # 18443: the HAProxy server side, not for weft. 8081 and 8091: the app's second HTTP and gRPC
  # ports, for the direct path.
  in_server "$W/bin/weft-proxy" init --skip-inbound-ports 18443,8081,8091 > "$W/init-server.log" 2>&1 ||
    fail_with_logs init-server
  start nginx "$NS_SERVER" root nginx -c "$W/nginx.conf"
  NGINX_PID=$STARTED
  start_sidecar "$NS_SERVER" server
  WEFT_SERVER=$STARTED
  # As root: its connection to 127.0.0.1:8080 is loopback, which the rules never redirect.
  start haproxy-server "$NS_SERVER" root haproxy -f "$W/haproxy-server.cfg"
  HA_SERVER=$STARTED
}

start_client_pod() {
  # 18443: HAProxy's mTLS to the server pod goes out as itself, not through weft.
  in_client "$W/bin/weft-proxy" init --skip-outbound-ports 18443 > "$W/init-client.log" 2>&1 ||
    fail_with_logs init-client
  start_sidecar "$NS_CLIENT" client
  WEFT_CLIENT=$STARTED
  start haproxy-client "$NS_CLIENT" root haproxy -f "$W/haproxy-client.cfg"
  HA_CLIENT=$STARTED
}

# fail_with_logs LOG...: the end of the named logs, then stop.
fail_with_logs() {
  local name
  for name in "$@"; do
    echo "--- $W/$name.log" >&2
    tail -n 20 "$W/$name.log" >&2 || true
  done
  exit 1
}

# --- proving the paths before measuring them ---------------------------------------------------

# metric_sum ADMIN_ADDR NAME [LABEL_FILTER]: the sum of a counter over its series (scraped from
# the bridge namespace, as a Prometheus server outside the pod would).
metric_sum() {
  in_bridge curl -sf "http://$1/metrics" |
    awk -v name="$2" -v filter="${3:-}" \
      'index($0, name) == 1 && (filter == "" || index($0, filter)) { sum += $NF } END { printf "%d\n", sum }'
}

proxy_ready() { in_bridge curl -sf "http://$1/ready"; }
# Each path answers before it is measured; the readiness wait also covers nginx and HAProxy.
direct_answers() { in_client_unmeshed curl -sf "http://$SERVER_IP:8081/"; }
weft_answers() { in_client curl -sf "http://$SERVER_IP:8080/"; }
haproxy_answers() { in_client curl -sf "http://127.0.0.1:18001/"; }

wait_until_ready() {
  wait_for 20 "the server pod's weft-proxy (/ready)" proxy_ready "$SERVER_IP:15000" ||
    fail_with_logs weft-server control-plane
  wait_for 20 "the client pod's weft-proxy (/ready)" proxy_ready "$CLIENT_IP:15000" ||
    fail_with_logs weft-client control-plane
  wait_for 10 "the direct path (UID $PROXY_UID -> $SERVER_IP:8081)" direct_answers ||
    fail_with_logs nginx init-server init-client
  wait_for 10 "the weft path (-> $SERVER_IP:8080)" weft_answers ||
    fail_with_logs weft-client weft-server
  wait_for 10 "the haproxy path (-> 127.0.0.1:18001)" haproxy_answers ||
    fail_with_logs haproxy-client haproxy-server
}

# prove_paths: that each path goes where it says. The weft path must pass both sidecars (the
# client's adds weft-server-identity after its mTLS handshake with the server's; the server's
# counts the request under the client's identity), the other two neither.
# requests_counted ADMIN [IDENTITY]: the server sidecar's inbound request count (from IDENTITY),
# under this build's metric or the one before it (weft_inbound_requests_total), for WEFT_BIN A/B.
requests_counted() {
  local now before_names=0
  now=$(metric_sum "$1" "weft_requests_total{" "${2:+source_identity=\"$2\"}")
  before_names=$(metric_sum "$1" "weft_inbound_requests_total{" "${2:+client_identity=\"$2\"}")
  echo $((now + before_names))
}

prove_paths() {
  local server_admin=$SERVER_IP:15000 client=$TRUST_DOMAIN_NS/client
  local before after headers
  before=$(requests_counted "$server_admin" "$client")
  headers=$(in_client curl -sfS -D - -o /dev/null "http://$SERVER_IP:8080/" | tr -d '\r') ||
    die "the weft path did not answer"
  grep -qi "^weft-server-identity: $TRUST_DOMAIN_NS/server$" <<< "$headers" ||
    die "the weft path's answer lacks 'weft-server-identity: $TRUST_DOMAIN_NS/server' (did the client sidecar route it over mTLS? is the service in discovery?); headers were:
$headers"
  after=$(requests_counted "$server_admin" "$client")
  [ "$after" -gt "$before" ] ||
    die "the server sidecar's weft_requests_total{source_identity=\"$client\"} did not count the request ($before -> $after)"
  echo "weft path: answered with weft-server-identity, server sidecar counted it ($before -> $after)" >&2

  before=$(requests_counted "$server_admin")
  direct_answers > /dev/null || die "the direct path did not answer"
  haproxy_answers > /dev/null || die "the haproxy path did not answer"
  after=$(requests_counted "$server_admin")
  [ "$after" -eq "$before" ] ||
    die "the direct or haproxy path went through the server sidecar ($before -> $after requests)"
  echo "direct and haproxy paths: answered without touching weft" >&2
}

# --- the paths, as matrix.sh measures them ----------------------------------------------------

declare -A RUNNER=([direct]=in_client_unmeshed [weft]=in_client [haproxy]=in_client)
declare -A HTTP_URL=([direct]=http://$SERVER_IP:8081 [weft]=http://$SERVER_IP:8080
  [haproxy]=http://127.0.0.1:18001)
declare -A GRPC_ADDR=([direct]=$SERVER_IP:8091 [weft]=$SERVER_IP:8090 [haproxy]=127.0.0.1:18002)
# Where each path's client connections are accepted: nginx's port in the server pod (direct),
# the client sidecar's outbound listener (weft: iptables redirects there), HAProxy's frontend.
declare -A ENTRY=([direct]="$NS_SERVER 8081" [weft]="$NS_CLIENT 15001" [haproxy]="$NS_CLIENT 18001")
declare -A PROXIES=([direct]="")

# pick_grpc_python: GRPC_PYTHON, a python3 with grpcio that UID 1337 can run too (the direct
# path's gRPC check runs as that UID; a python3 under root's home, e.g. pyenv's, is closed to it).
pick_grpc_python() {
  local candidate
  for candidate in "$(command -v python3)" /usr/bin/python3; do
    if "${AS_PROXY_UID[@]}" "$candidate" -c 'import grpc' 2>/dev/null; then
      GRPC_PYTHON=$candidate
      return
    fi
  done
  die "the grpc-unary scenario checks each path with grpcio, run as UID $PROXY_UID too: apt-get install -y python3-grpcio (or drop grpc-unary from BENCH_SCENARIOS)"
}

# --- main ----------------------------------------------------------------------------------------

main() {
  if [ "$(id -u)" != 0 ]; then
    echo "pods.sh needs root (network namespaces, iptables): sudo $0 $*" >&2
    exit 1
  fi
  positive_int seconds "$D"
  positive_int RUNS "$RUNS"
  select_scenarios
  need_tools wrk h2load nghttp haproxy nginx openssl python3 curl ip iptables setpriv ss
  if selected grpc-unary; then pick_grpc_python; fi
  profile_check_tools
  build_weft
  "$WEFT_BIN/weft-control-plane" --help | grep -q -- --services ||
    die "this weft-control-plane has no --services flag (discovery of MeshServices): merge main first"
  # get-512 holds 512 connections per hop (a proxy: twice that, and its pool to the app), latency
  # with BENCH_HALF_RATE opens rate/100; the children inherit the limit. Up to 65536, or the hard
  # limit where this root may not raise that.
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  [ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 4096 ] ||
    die "the open files limit is $(ulimit -n) (hard limit $(ulimit -Hn)); get-512 needs at least 4096"

  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  reap_stale_runs
  W=$(mktemp -d "/tmp/weft-pods.$$.XXXX")
  # UID 1337 (the sidecars, the direct path's load generator) reads configs, tokens and binaries
  # here (a checkout under a home directory may be closed to it), and writes h2load logs to raw/.
  chmod 755 "$W"
  mkdir "$W/bin" "$W/raw"
  cp "$WEFT_BIN/weft-proxy" "$WEFT_BIN/weft-control-plane" "$W/bin/"
  chown "$PROXY_UID:$PROXY_UID" "$W/raw"

  write_tokens
  chmod 644 "$W"/*.token
  write_services
  POLICY_FLAGS=()
  case "$WEFT_POLICY" in
    none) ;;
    typical | server) write_policy; POLICY_FLAGS=(--policies "$W/policies.yaml") ;;
    *) die "WEFT_POLICY=${WEFT_POLICY}: expected typical (the default), server or none" ;;
  esac
  write_app_files
  write_matrix_nginx_conf 0.0.0.0:8080 0.0.0.0:8081 -- 0.0.0.0:8090 0.0.0.0:8091
  write_haproxy_pair 127.0.0.1:18001 "$SERVER_IP:18443" "$SERVER_IP:18443" 127.0.0.1:8080 \
    127.0.0.1:18002 127.0.0.1:8090

  make_topology
  start_control_plane
  start_collector
  start_server_pod
  start_client_pod
  wait_until_ready
  check_program weft-client "$WEFT_CLIENT" weft-proxy
  check_program weft-server "$WEFT_SERVER" weft-proxy
  check_program haproxy-client "$HA_CLIENT" haproxy
  check_program haproxy-server "$HA_SERVER" haproxy
  PROXIES[weft]="$WEFT_CLIENT $WEFT_SERVER"
  PROXIES[haproxy]="$HA_CLIENT $HA_SERVER"
  prove_paths
  check_grpc_trailer
  local p round
  for p in direct weft haproxy; do check_scenarios "$p"; done
  record_idle_rss weft "$WEFT_CLIENT" "$WEFT_SERVER"
  record_idle_rss haproxy "$HA_CLIENT" "$HA_SERVER"
  record_load
  write_meta
  echo "running: $RUNS round(s) of ${SCENARIOS[*]} on 3 paths, ${D}s per measurement" >&2
  for round in $(seq "$RUNS"); do measure_round "$round"; done
  local named
  for named in nginx:"$NGINX_PID" weft-client:"$WEFT_CLIENT" weft-server:"$WEFT_SERVER" \
    haproxy-client:"$HA_CLIENT" haproxy-server:"$HA_SERVER"; do
    alive "${named#*:}" || fail_with_logs "${named%%:*}"
  done
  # Both sidecars' metrics after the matrix (status codes, refusals, weft-made answers), for
  # looking into a run whose load generators reported errors (KEEP=1 keeps them).
  in_bridge curl -sf "http://$CLIENT_IP:15000/metrics" > "$W/raw/metrics-weft-client.txt" || true
  in_bridge curl -sf "http://$SERVER_IP:15000/metrics" > "$W/raw/metrics-weft-server.txt" || true
  local rc=0
  python3 "$BENCH_DIR/matrix_report.py" "$W/raw" \
    "Pods (network namespaces, iptables interception): direct vs weft pair vs HAProxy pair (tests/bench/pods.sh $D, RUNS=$RUNS, WEFT_POLICY=$WEFT_POLICY, BENCH_TRACING=${BENCH_TRACING:-off})" ||
    rc=$?
  # h2load counts a gRPC call answered with HTTP 200 as a success whatever its grpc-status, and a
  # request the client sidecar answered itself (an open breaker, a timeout) is as fast as it is
  # wrong: any answer weft made instead of the app invalidates the run.
  local made
  made=$(awk '/^weft_requests_total\{/ && /answered_by="weft"/ { sum += $NF } END { printf "%d\n", sum }' \
    "$W/raw/metrics-weft-client.txt")
  if [ "$made" -gt 0 ]; then
    echo "**ERRORS: the client sidecar answered $made requests itself instead of the app (weft_requests_total{answered_by=\"weft\"}); the numbers above are not comparable**"
    rc=3
  fi
  trace_summary
  profile_round
  return "$rc"
}

# write_meta: what the report needs to know about this run, in $W/raw/meta.
write_meta() {
  {
    echo "seconds $D"
    echo "runs $RUNS"
    echo "scenarios ${SCENARIOS[*]}"
    echo "grpc_connections $GRPC_CONNECTIONS"
  } > "$W/raw/meta"
}

main "$@"
