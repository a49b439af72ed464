#!/usr/bin/env bash
# Side-by-side benchmark on loopback, in one run, with one app:
#   direct         wrk -> nginx
#   weft pair      wrk -> weft-proxy (client side) -> mTLS -> weft-proxy (server side) -> nginx
#   haproxy pair   wrk -> haproxy -> mTLS -> haproxy -> nginx   (the config of
#                  ../shared/anchors/haproxy-pair.sh: one thread per proxy, HTTP/2 between them)
# It reports throughput (wrk, keep-alive, saturation), latency at fixed rates (h2load --rps: 1k rps
# and half of direct saturation), CPU seconds per 1k requests and resident memory of each proxy,
# and the ratios weft/direct and weft/haproxy.
#
# Usage: tests/bench/pair.sh [seconds per run, default 10] [connections, default 32]
#        KEEP=1 keeps the working directory (configs, logs, raw wrk/h2load output).
# Needs: wrk, h2load (nghttp2-client), haproxy, nginx (nginx-light), openssl, python3.
set -euo pipefail
D=${1:-10}
C=${2:-32}
for tool in wrk h2load haproxy nginx openssl python3 curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y wrk nghttp2-client haproxy nginx-light openssl python3 curl" >&2; exit 2; }
done
root=$(cd "$(dirname "$0")/../.." && pwd)
(cd "$root" && cargo build --release --bins -q)
bin=$root/target/release
W=$(mktemp -d /tmp/weft-bench.XXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "kept $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
cd "$W"

# --- the app: the anchor's nginx, one worker ---------------------------------------------------
cat > nginx.conf <<NG
worker_processes 1; daemon off; pid $W/nginx.pid; error_log $W/nginx.err;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:18080 reuseport; location / { return 200 "hello from app\n"; } } }
NG
nginx -c "$W/nginx.conf" & pids+=($!)

# --- weft: control plane and two sidecars (release builds, defaults: one thread each) ----------
printf 'apiVersion: weft.dev/v1alpha1\nkind: BootstrapTokens\ntokens:\n  - identity: spiffe://cluster.local/ns/bench/sa/client\n    token: bench-client-token-0123456789\n  - identity: spiffe://cluster.local/ns/bench/sa/server\n    token: bench-server-token-0123456789\n' > tokens.yaml
"$bin/weft-control-plane" --listen 127.0.0.1:18010 --admin-listen 127.0.0.1:18014 --data-dir "$W/cp" \
  --bootstrap-tokens tokens.yaml --cert-ttl 1h 2> cp.log & pids+=($!)
for _ in $(seq 100); do [ -f "$W/cp/trust-bundle.pem" ] && curl -sf 127.0.0.1:18014/ready >/dev/null && break; sleep 0.1; done
common=(--control-plane-addr 127.0.0.1:18010 --trust-anchors "$W/cp/trust-bundle.pem" --outbound-listen off --log warn)
WEFT_TOKEN=bench-server-token-0123456789 "$bin/weft-proxy" "${common[@]}" \
  --identity spiffe://cluster.local/ns/bench/sa/server --inbound-listen 127.0.0.1:18106 \
  --inbound-app-addr 127.0.0.1:18080 --admin-listen 127.0.0.1:18100 2> server.log & server_pid=$!; pids+=($server_pid)
WEFT_TOKEN=bench-client-token-0123456789 "$bin/weft-proxy" "${common[@]}" \
  --identity spiffe://cluster.local/ns/bench/sa/client --inbound-listen 127.0.0.1:18107 \
  --admin-listen 127.0.0.1:18102 \
  --forward 127.0.0.1:18101=spiffe://cluster.local/ns/bench/sa/server@127.0.0.1:18106 2> client.log & client_pid=$!; pids+=($client_pid)

# --- haproxy: the anchor's mTLS pair --------------------------------------------------------------
openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
openssl req -x509 -new -key ca.key -subj /CN=anchor-ca -days 1 -out ca.pem 2>/dev/null
for n in client server; do
  openssl ecparam -name prime256v1 -genkey -noout -out $n.key 2>/dev/null
  openssl req -new -key $n.key -subj /CN=$n -out $n.csr 2>/dev/null
  printf "subjectAltName=URI:spiffe://anchor/ns/default/sa/$n\n" > $n.ext
  openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile $n.ext -out $n.pem 2>/dev/null
  cat $n.pem $n.key > $n.bundle
done
for side in client server; do
  printf 'global\n  nbthread 1\n  maxconn 4000\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n  http-reuse always\n' > haproxy-$side.cfg
done
printf 'frontend outbound\n  bind 127.0.0.1:18001\n  default_backend to_server_sidecar\nbackend to_server_sidecar\n  server s1 127.0.0.1:18443 ssl crt %s/client.bundle ca-file %s/ca.pem verify required alpn h2\n' "$W" "$W" >> haproxy-client.cfg
printf 'frontend inbound\n  bind 127.0.0.1:18443 ssl crt %s/server.bundle ca-file %s/ca.pem verify required alpn h2,http/1.1\n  default_backend app\nbackend app\n  server app 127.0.0.1:18080\n' "$W" "$W" >> haproxy-server.cfg
haproxy -f haproxy-client.cfg 2> haproxy-client.log & hc_pid=$!; pids+=($hc_pid)
haproxy -f haproxy-server.cfg 2> haproxy-server.log & hs_pid=$!; pids+=($hs_pid)

for url in 127.0.0.1:18080 127.0.0.1:18101 127.0.0.1:18001; do
  for _ in $(seq 100); do curl -sf "http://$url/" >/dev/null && break; sleep 0.1; done
  curl -sf "http://$url/" >/dev/null || { echo "not serving: $url" >&2; tail -5 ./*.log >&2; exit 1; }
done

rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
idle_weft_client=$(rss $client_pid); idle_weft_server=$(rss $server_pid)
idle_ha_client=$(rss $hc_pid); idle_ha_server=$(rss $hs_pid)

# throughput NAME URL [client-pid server-pid]: wrk at saturation; CPU and RSS of the proxies.
throughput() {
  local name=$1 url=$2 p1=${3:-} p2=${4:-} c1=0 c2=0
  [ -n "$p1" ] && c1=$(cpu_ticks "$p1") && c2=$(cpu_ticks "$p2")
  ( sleep $((D / 2)); if [ -n "$p1" ]; then echo "$(rss "$p1") $(rss "$p2")" > "rss-$name"; fi ) &
  local sampler=$!
  wrk -t1 -c"$C" -d"${D}s" --latency "http://$url/" > "wrk-$name"
  wait "$sampler" || true
  if [ -n "$p1" ]; then
    echo "$(( $(cpu_ticks "$p1") - c1 )) $(( $(cpu_ticks "$p2") - c2 ))" > "cpu-$name"
  fi
}
# latency NAME URL RATE: h2load (HTTP/1.1) at a fixed total rate, 100 req/s per client (h2load's
# --rps is unreliable above that per client); per-request log for percentiles.
latency() {
  local name=$1 url=$2 rate=$3
  local clients=$(( (rate + 99) / 100 ))
  h2load --h1 -c "$clients" --rps 100 -D "$D" --warm-up-time 1 \
    --log-file "h2load-$name-$rate" "http://$url/" > "h2load-$name-$rate.out" 2>&1 || true
}

echo "running: ${D}s per measurement, $C connections for throughput" >&2
throughput direct 127.0.0.1:18080
throughput weft 127.0.0.1:18101 $client_pid $server_pid
throughput haproxy 127.0.0.1:18001 $hc_pid $hs_pid
direct_rps=$(awk '/Requests\/sec/ {print int($2)}' wrk-direct)
half=$(( direct_rps / 2 ))
for target in "direct 127.0.0.1:18080" "weft 127.0.0.1:18101" "haproxy 127.0.0.1:18001"; do
  set -- $target
  latency "$1" "$2" 1000
  latency "$1" "$2" "$half"
done

python3 - "$W" "$D" "$C" "$half" "$idle_weft_client" "$idle_weft_server" "$idle_ha_client" "$idle_ha_server" "$(getconf CLK_TCK)" <<'PY'
import sys, os, re
w, d, c, half = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
idle = {"weft": (int(sys.argv[5]), int(sys.argv[6])), "haproxy": (int(sys.argv[7]), int(sys.argv[8]))}
tck = int(sys.argv[9])
def read(name):
    with open(os.path.join(w, name)) as f: return f.read()
def wrk(name):
    t = read("wrk-" + name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    total = int(re.search(r"(\d+) requests in", t).group(1))
    return rps, total
def pct(name, rate):
    # Every completed request counts: h2load marks HAProxy's responses as failed because their
    # status line has an empty reason phrase ("HTTP/1.1 200 "), but their timings are valid.
    lat = sorted(int(p[2]) for p in (l.split() for l in read(f"h2load-{name}-{rate}").splitlines()) if len(p) >= 3)
    m = re.search(r"finished in [\d.]+s, ([\d.]+) req/s", read(f"h2load-{name}-{rate}.out"))
    achieved = float(m.group(1)) if m else 0.0
    if not lat: return float("nan"), float("nan"), achieved
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] / 1000.0
    return q(0.50), q(0.99), achieved
rows = {n: wrk(n) for n in ("direct", "weft", "haproxy")}
lat = {(n, r): pct(n, r) for n in ("direct", "weft", "haproxy") for r in (1000, half)}
def ms(x): return f"{x:.3f}"
print(f"\n### Loopback, {d}s runs, wrk -t1 -c{c}; latency with h2load --h1 at fixed rates\n")
print("| path | throughput (req/s) | p50 / p99 at 1k rps (ms) | p50 / p99 at %d rps (ms) [achieved rps] | CPU s per 1k req (client + server proxy) | RSS idle (KiB, client/server) | RSS under load (KiB) |" % half)
print("|---|---|---|---|---|---|---|")
for n in ("direct", "weft", "haproxy"):
    rps, total = rows[n]
    a50, a99, _ = lat[(n, 1000)]; b50, b99, achieved = lat[(n, half)]
    if n == "direct":
        cpu = rss_i = rss_l = "–"
    else:
        t1, t2 = map(int, read("cpu-" + n).split())
        cpu = f"{t1 / tck / (total / 1000):.4f} + {t2 / tck / (total / 1000):.4f}"
        rss_i = "%d / %d" % idle[n]
        rss_l = " / ".join(read("rss-" + n).split())
    print(f"| {n} | {rps:,.0f} | {ms(a50)} / {ms(a99)} | {ms(b50)} / {ms(b99)} [{achieved:,.0f}] | {cpu} | {rss_i} | {rss_l} |")
d_rps, w_rps, h_rps = rows["direct"][0], rows["weft"][0], rows["haproxy"][0]
print(f"\nthroughput ratios: weft/direct = {w_rps / d_rps:.2f}, weft/haproxy = {w_rps / h_rps:.2f}, haproxy/direct = {h_rps / d_rps:.2f}")
for r in (1000, half):
    dd, ww, hh = lat[("direct", r)], lat[("weft", r)], lat[("haproxy", r)]
    print(f"latency added per pair at {r} rps: weft p50 +{ww[0] - dd[0]:.3f} ms, p99 +{ww[1] - dd[1]:.3f} ms; haproxy p50 +{hh[0] - dd[0]:.3f} ms, p99 +{hh[1] - dd[1]:.3f} ms")
PY
