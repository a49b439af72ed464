#!/usr/bin/env bash
# Side-by-side benchmark in pods: two network namespaces ("client" and "server" pods) on a Linux
# bridge, each with weft's iptables interception (weft-proxy init) and its sidecar as UID 1337,
# the control plane in the bridge's namespace, and one nginx app in the server pod. Three paths,
# all driven by wrk / h2load inside the client pod, over the same veth path:
#   direct        UID 1337 -> 10.250.0.3:8081 -> nginx      (a UID and a port neither pod's rules
#                                                            intercept: no proxy anywhere)
#   weft pair     root -> 10.250.0.3:8080, intercepted -> weft (client pod) -> mTLS HTTP/2 ->
#                 intercepted -> weft (server pod) -> nginx
#   haproxy pair  root -> 127.0.0.1:18001 -> haproxy (client pod) -> mTLS -> 10.250.0.3:18443
#                 haproxy (server pod) -> 127.0.0.1:8080 nginx   (the anchor's config,
#                 ../shared/anchors/haproxy-pair.sh, one thread per proxy; port 18443 is on both
#                 pods' skip lists)
# Measured as in pair.sh (lib.sh): wrk throughput, h2load latency at 1k rps and at half of direct
# saturation, CPU per 1k requests and resident memory of each proxy; one markdown table.
#
# Usage: sudo tests/bench/pods.sh [seconds per run, default 10] [connections, default 32]
#        KEEP=1 keeps the working directory (configs, logs, raw wrk/h2load output).
#        WEFT_BIN=<dir> uses the weft binaries there instead of building this checkout.
#        WEFT_POLICY=typical gives the app a typical ServicePolicy (timeouts, retries, breaker and
#        limits all configured, none of them acting), to measure what the layers cost;
#        WEFT_POLICY=server adds its server half (authorization admitting the client's namespace
#        and rate limits no request reaches), to measure what the server sidecar's checks cost.
#        BENCH_TRACING=<ratio> (e.g. 0.01) starts an OTLP collector (tests/e2e/otlp_collector.py,
#        counting spans only) in the bridge namespace and runs both sidecars with
#        --trace-collector and --trace-sampling <ratio>, to measure what tracing costs; the spans
#        exported and dropped are reported after the table.
# Needs root (namespaces, iptables) and: wrk h2load haproxy nginx openssl python3 curl ip iptables
# setpriv. Everything it creates (namespaces wb-<pid>-*, the processes in them,
# /tmp/weft-pods.<pid>.*) is removed on exit, also on failure or Ctrl-C; what a run killed
# outright (SIGKILL) left behind is removed by the next run.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"

D=${1:-10}
C=${2:-32}
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
  ports: [{port: 8080}]
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
  if [ "${WEFT_POLICY:-}" = server ]; then
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
    --token-file "$W/$role.token" --log warn ${TRACE_FLAGS[@]+"${TRACE_FLAGS[@]}"}
}

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
  # 18443: the HAProxy server side, not for weft. 8081: the app's second port, for the direct path.
  in_server "$W/bin/weft-proxy" init --skip-inbound-ports 18443,8081 > "$W/init-server.log" 2>&1 ||
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

# --- main ----------------------------------------------------------------------------------------

main() {
  if [ "$(id -u)" != 0 ]; then
    echo "pods.sh needs root (network namespaces, iptables): sudo $0 $*" >&2
    exit 1
  fi
  positive_int seconds "$D"
  positive_int connections "$C"
  need_tools wrk h2load haproxy nginx openssl python3 curl ip iptables setpriv
  build_weft
  "$WEFT_BIN/weft-control-plane" --help | grep -q -- --services ||
    die "this weft-control-plane has no --services flag (discovery of MeshServices): merge main first"
  ulimit -n 65536 2>/dev/null || true # h2load opens rate/100 connections at half saturation

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
  case "${WEFT_POLICY:-}" in
    "") ;;
    typical | server) write_policy; POLICY_FLAGS=(--policies "$W/policies.yaml") ;;
    *) die "WEFT_POLICY=${WEFT_POLICY}: expected typical or server (or unset)" ;;
  esac
  write_nginx_conf 0.0.0.0:8080 0.0.0.0:8081
  write_haproxy_pair 127.0.0.1:18001 "$SERVER_IP:18443" "$SERVER_IP:18443" 127.0.0.1:8080

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
  prove_paths
  record_idle_rss weft "$WEFT_CLIENT" "$WEFT_SERVER"
  record_idle_rss haproxy "$HA_CLIENT" "$HA_SERVER"
  record_load
  echo "running: ${D}s per measurement, $C connections for throughput" >&2
  measure_throughput direct in_client_unmeshed "http://$SERVER_IP:8081/"
  measure_throughput weft in_client "http://$SERVER_IP:8080/" "$WEFT_CLIENT" "$WEFT_SERVER"
  measure_throughput haproxy in_client http://127.0.0.1:18001/ "$HA_CLIENT" "$HA_SERVER"
  local half rate
  half=$(half_direct_rate)
  for rate in 1000 "$half"; do
    measure_latency direct in_client_unmeshed "http://$SERVER_IP:8081/" "$rate"
    measure_latency weft in_client "http://$SERVER_IP:8080/" "$rate"
    measure_latency haproxy in_client http://127.0.0.1:18001/ "$rate"
  done
  local named
  for named in nginx:"$NGINX_PID" weft-client:"$WEFT_CLIENT" weft-server:"$WEFT_SERVER" \
    haproxy-client:"$HA_CLIENT" haproxy-server:"$HA_SERVER"; do
    alive "${named#*:}" || fail_with_logs "${named%%:*}"
  done
  report "Pods (network namespaces, iptables interception): direct vs weft pair vs HAProxy pair (tests/bench/pods.sh $D $C${WEFT_POLICY:+, WEFT_POLICY=$WEFT_POLICY}${BENCH_TRACING:+, BENCH_TRACING=$BENCH_TRACING})" "$half"
  trace_summary
}

main "$@"
