#!/usr/bin/env bash
# Side-by-side benchmark on loopback, in one run, with one app:
#   direct         wrk -> nginx
#   weft pair      wrk -> weft-proxy (client side) -> mTLS -> weft-proxy (server side) -> nginx
#   haproxy pair   wrk -> haproxy -> mTLS -> haproxy -> nginx   (the config of
#                  ../shared/anchors/haproxy-pair.sh: one thread per proxy, HTTP/2 between them)
# It reports throughput (wrk, keep-alive, saturation), latency at fixed rates (h2load --rps: 1k rps
# and half of direct saturation), CPU seconds per 1k requests and resident memory of each proxy,
# and the ratios weft/direct and weft/haproxy. tests/bench/pods.sh measures the same in pods
# (network namespaces, iptables interception); lib.sh holds what the two share.
#
# Usage: tests/bench/pair.sh [seconds per run, default 10] [connections, default 32]
#        KEEP=1 keeps the working directory (configs, logs, raw wrk/h2load output).
#        WEFT_BIN=<dir> uses the weft binaries there instead of building this checkout.
# Needs: wrk, h2load (nghttp2-client), haproxy, nginx (nginx-light), openssl, python3, curl.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"

D=${1:-10}
C=${2:-32}
positive_int seconds "$D"
positive_int connections "$C"
need_tools wrk h2load haproxy nginx openssl python3 curl ss
build_weft
ulimit -n 65536 2>/dev/null || true # h2load opens rate/100 connections at half saturation
# Fixed loopback ports: a leftover of another run would answer instead (nginx even shares its
# port, through reuseport), so any port already taken stops the run. pods.sh has no such problem.
ports=(18080 18010 18014 18100 18101 18102 18106 18107 18001 18443)
taken=$(ss -Hltnp | awk -v ports=" ${ports[*]} " '{ n = split($4, a, ":"); if (index(ports, " " a[n] " ")) print }')
[ -z "$taken" ] || die "ports pair.sh needs are taken (stop those programs, or use tests/bench/pods.sh):
$taken"
W=$(mktemp -d /tmp/weft-bench.XXXX)
mkdir "$W/raw"
pids=()
cleanup() {
  stop_pids "${pids[@]}"
  if [ -n "${KEEP:-}" ]; then echo "kept $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
cd "$W"

# The load generator runs right here.
run_here() { "$@"; }

# --- the app: the anchor's nginx, one worker -------------------------------------------------
write_nginx_conf 127.0.0.1:18080
nginx -c "$W/nginx.conf" &
pids+=($!)

# --- weft: control plane and two sidecars (release builds, defaults: one thread each) --------
write_tokens
"$WEFT_BIN/weft-control-plane" --listen 127.0.0.1:18010 --admin-listen 127.0.0.1:18014 --data-dir "$W/cp" \
  --bootstrap-tokens tokens.yaml --cert-ttl 1h 2> cp.log &
pids+=($!)
control_plane_ready() { [ -f "$W/cp/trust-bundle.pem" ] && curl -sf 127.0.0.1:18014/ready; }
wait_for 20 "the control plane (/ready and its trust bundle)" control_plane_ready ||
  { tail -n 5 cp.log >&2; exit 1; }
common=(--control-plane-addr 127.0.0.1:18010 --trust-anchors "$W/cp/trust-bundle.pem" --outbound-listen off --log warn)
"$WEFT_BIN/weft-proxy" "${common[@]}" --token-file server.token \
  --identity spiffe://cluster.local/ns/bench/sa/server --inbound-listen 127.0.0.1:18106 \
  --inbound-app-addr 127.0.0.1:18080 --admin-listen 127.0.0.1:18100 2> server.log &
server_pid=$!
pids+=("$server_pid")
"$WEFT_BIN/weft-proxy" "${common[@]}" --token-file client.token \
  --identity spiffe://cluster.local/ns/bench/sa/client --inbound-listen 127.0.0.1:18107 \
  --admin-listen 127.0.0.1:18102 \
  --forward 127.0.0.1:18101=spiffe://cluster.local/ns/bench/sa/server@127.0.0.1:18106 2> client.log &
client_pid=$!
pids+=("$client_pid")

# --- haproxy: the anchor's mTLS pair -----------------------------------------------------------
write_haproxy_pair 127.0.0.1:18001 127.0.0.1:18443 127.0.0.1:18443 127.0.0.1:18080
haproxy -f haproxy-client.cfg 2> haproxy-client.log &
hc_pid=$!
pids+=("$hc_pid")
haproxy -f haproxy-server.cfg 2> haproxy-server.log &
hs_pid=$!
pids+=("$hs_pid")

for url in 127.0.0.1:18080 127.0.0.1:18101 127.0.0.1:18001; do
  wait_for 10 "http://$url/ to answer" curl -sf "http://$url/" ||
    { tail -n 5 ./*.log >&2; exit 1; }
done
record_idle_rss weft $client_pid $server_pid
record_idle_rss haproxy $hc_pid $hs_pid

record_load
echo "running: ${D}s per measurement, $C connections for throughput" >&2
measure_throughput direct run_here http://127.0.0.1:18080/
measure_throughput weft run_here http://127.0.0.1:18101/ $client_pid $server_pid
measure_throughput haproxy run_here http://127.0.0.1:18001/ $hc_pid $hs_pid
half=$(half_direct_rate)
for rate in 1000 "$half"; do
  measure_latency direct run_here http://127.0.0.1:18080/ "$rate"
  measure_latency weft run_here http://127.0.0.1:18101/ "$rate"
  measure_latency haproxy run_here http://127.0.0.1:18001/ "$rate"
done
report "Loopback: direct vs weft pair vs HAProxy pair (tests/bench/pair.sh $D $C)" "$half"
