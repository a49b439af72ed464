# shellcheck shell=bash
# Shared parts of the side-by-side benchmarks: tests/bench/pair.sh (everything on loopback) and
# tests/bench/pods.sh (pods as network namespaces; its scenario matrix is in matrix.sh, which
# uses the process, configuration and /proc helpers here, not measure_* or report). Sourced, not
# run. The caller sets
#   W  working directory (raw wrk/h2load output, CPU and memory samples go to $W/raw)
#   D  seconds per measurement      C  wrk connections (pair.sh)
# and hands the measuring functions a *runner*: the name of a function that runs a command where
# the load generator belongs (here, inside a pod, inside a pod as another user). That is the only
# difference between the two topologies as far as measuring goes.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_ROOT=$(cd "$BENCH_DIR/../.." && pwd)
# Tokens the control plane accepts for the two bench identities (bootstrap tokens: >= 16 chars).
BENCH_CLIENT_TOKEN=bench-client-token-0123456789
BENCH_SERVER_TOKEN=bench-server-token-0123456789

die() {
  echo "error: $*" >&2
  exit 1
}

# positive_int NAME VALUE: the command line's numbers, checked before anything is set up.
positive_int() {
  [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer, got '$2'"
}

# need_tools TOOL...: all present, or one line saying what to install.
need_tools() {
  local missing=() tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  [ ${#missing[@]} -eq 0 ] && return
  echo "missing: ${missing[*]}" >&2
  echo "install: apt-get install -y wrk nghttp2-client haproxy nginx-light openssl python3 curl iproute2 iptables util-linux procps" >&2
  exit 2
}

# build_weft: the release binaries as the image ships them (scripts/release-build: the sidecar in
# its own cargo invocation, with its profile) into $WEFT_BIN. Fat LTO makes the first build slow;
# later runs with nothing changed take a second. WEFT_BIN=<dir> set by the caller skips the build
# and uses the binaries there (to compare two builds, one run each). Under sudo, cargo is often not on
# PATH: then binaries that are already built are used (with a notice), since building as root
# would also leave root-owned files in target/.
build_weft() {
  if [ -n "${WEFT_BIN:-}" ]; then
    if ! [ -x "$WEFT_BIN/weft-proxy" ] || ! [ -x "$WEFT_BIN/weft-control-plane" ]; then
      die "WEFT_BIN=$WEFT_BIN holds no weft-proxy and weft-control-plane"
    fi
    echo "notice: using the binaries in WEFT_BIN=$WEFT_BIN (not building)" >&2
    return
  fi
  WEFT_BIN=$BENCH_ROOT/target/dist
  if command -v cargo >/dev/null; then
    CARGO_TERM_QUIET=true "$BENCH_ROOT/scripts/release-build" "$WEFT_BIN" ||
      die "scripts/release-build failed"
  elif [ -x "$WEFT_BIN/weft-proxy" ] && [ -x "$WEFT_BIN/weft-control-plane" ]; then
    echo "notice: cargo not on PATH; using the binaries already in $WEFT_BIN" >&2
  else
    die "cargo not on PATH and no release binaries in $WEFT_BIN: run scripts/release-build first"
  fi
}

# wait_for SECONDS WHAT COMMAND...: poll COMMAND (output discarded) every 0.1 s until it
# succeeds; after SECONDS, say so naming WHAT and return 1 (set -e then stops the script, or the
# caller adds diagnostics with ||). Readiness is always polled, never slept for.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "error: timed out after ${seconds}s waiting for $what" >&2
      return 1
    fi
    sleep 0.1
  done
}

# alive PID...: whether any of them still runs (an exited child stays a zombie until reaped, and
# kill -0 would still find it).
alive() {
  local pid state
  for pid in "$@"; do
    state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1) || true
    [ -n "$state" ] && [ "$state" != Z ] && return 0
  done
  return 1
}

# stop_pids PID...: SIGTERM, up to 5 s for them to go, then SIGKILL for any that ignored it.
stop_pids() {
  local _
  [ $# -gt 0 ] || return 0
  kill "$@" 2>/dev/null || true
  for _ in $(seq 50); do
    alive "$@" || return 0
    sleep 0.1
  done
  kill -KILL "$@" 2>/dev/null || true
}

# --- configurations ---------------------------------------------------------------------------

# write_nginx_conf LISTEN...: the anchor's app (nginx, one worker, fixed 15-byte answer) in
# $W/nginx.conf, listening on every LISTEN address.
write_nginx_conf() {
  local listen lines=""
  for listen in "$@"; do lines+="listen $listen reuseport; "; done
  cat > "$W/nginx.conf" <<NG
worker_processes 1; daemon off; pid $W/nginx.pid; error_log $W/nginx.err;
events { worker_connections 4096; }
http { access_log off; server { $lines location / { return 200 "hello from app\n"; } } }
NG
}

# write_tokens: $W/tokens.yaml for the control plane, and each token alone in $W/<side>.token.
write_tokens() {
  cat > "$W/tokens.yaml" <<YAML
apiVersion: weft.dev/v1alpha1
kind: BootstrapTokens
tokens:
  - identity: spiffe://cluster.local/ns/bench/sa/client
    token: $BENCH_CLIENT_TOKEN
  - identity: spiffe://cluster.local/ns/bench/sa/server
    token: $BENCH_SERVER_TOKEN
YAML
  echo "$BENCH_CLIENT_TOKEN" > "$W/client.token"
  echo "$BENCH_SERVER_TOKEN" > "$W/server.token"
}

# write_haproxy_pair CLIENT_BIND SERVER_ADDR SERVER_BIND APP_ADDR [GRPC_BIND GRPC_APP_ADDR]: the
# anchor (../shared/anchors/haproxy-pair.sh) with its addresses as parameters. Its CA and two
# P-256 certificates, and two one-thread configs in $W: haproxy-client.cfg (plain HTTP in on
# CLIENT_BIND, mTLS with ALPN h2 out to SERVER_ADDR) and haproxy-server.cfg (mTLS with verified
# client certificates in on SERVER_BIND, plain HTTP out to APP_ADDR).
# With GRPC_BIND and GRPC_APP_ADDR (pods.sh's grpc-unary scenario), two additions to the anchor and
# nothing else: the client side also takes h2c (HTTP/2 prior knowledge) on GRPC_BIND, into the
# same mTLS backend; the server side sends requests whose content-type begins with
# application/grpc to GRPC_APP_ADDR over h2c (`proto h2`), everything else to APP_ADDR as before.
write_haproxy_pair() {
  local client_bind=$1 server_addr=$2 server_bind=$3 app_addr=$4 side
  local grpc_bind=${5:-} grpc_app_addr=${6:-}
  (
    cd "$W"
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
    openssl req -x509 -new -key ca.key -subj /CN=anchor-ca -days 1 -out ca.pem 2>/dev/null
    for side in client server; do
      openssl ecparam -name prime256v1 -genkey -noout -out "$side.key" 2>/dev/null
      openssl req -new -key "$side.key" -subj "/CN=$side" -out "$side.csr" 2>/dev/null
      echo "subjectAltName=URI:spiffe://anchor/ns/default/sa/$side" > "$side.ext"
      openssl x509 -req -in "$side.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
        -extfile "$side.ext" -out "$side.pem" 2>/dev/null
      cat "$side.pem" "$side.key" > "$side.bundle"
    done
  ) || die "openssl could not make the HAProxy pair's certificates"
  for side in client server; do
    printf 'global\n  nbthread 1\n  maxconn 4000\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n  http-reuse always\n' \
      > "$W/haproxy-$side.cfg"
  done
  cat >> "$W/haproxy-client.cfg" <<HA
frontend outbound
  bind $client_bind
  default_backend to_server_sidecar
backend to_server_sidecar
  server s1 $server_addr ssl crt $W/client.bundle ca-file $W/ca.pem verify required alpn h2
HA
  cat >> "$W/haproxy-server.cfg" <<HA
frontend inbound
  bind $server_bind ssl crt $W/server.bundle ca-file $W/ca.pem verify required alpn h2,http/1.1
HA
  [ -z "$grpc_bind" ] || cat >> "$W/haproxy-server.cfg" <<HA
  use_backend app_grpc if { req.hdr(content-type) -m beg application/grpc }
HA
  cat >> "$W/haproxy-server.cfg" <<HA
  default_backend app
backend app
  server app $app_addr
HA
  [ -z "$grpc_bind" ] || {
    cat >> "$W/haproxy-client.cfg" <<HA
frontend outbound_grpc
  bind $grpc_bind proto h2
  default_backend to_server_sidecar
HA
    cat >> "$W/haproxy-server.cfg" <<HA
backend app_grpc
  server app_grpc $grpc_app_addr proto h2
HA
  }
}

# --- measuring --------------------------------------------------------------------------------

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# User + system CPU ticks of a process. The fields are counted after the ")" that ends the
# command name, which may itself contain spaces.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# cpu_sys_ticks PID: the kernel's part of cpu_ticks (system time).
cpu_sys_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $13}'; }

# record_idle_rss NAME CLIENT_PID SERVER_PID: resident memory of a pair that is up but unloaded.
record_idle_rss() {
  echo "$(rss_kib "$2") $(rss_kib "$3")" > "$W/raw/rss-idle-$1"
}

# record_load: the 1-minute load average just before measuring. Everything shares the machine's
# cores with whatever else runs there; a load above nproc means the numbers are suspect.
record_load() {
  cut -d' ' -f1 /proc/loadavg > "$W/raw/loadavg"
  local load cpus
  load=$(cat "$W/raw/loadavg")
  cpus=$(nproc)
  awk -v l="$load" -v n="$cpus" 'BEGIN { exit !(l > n) }' &&
    echo "warning: load average $load on $cpus CPUs before measuring: other work competes for the cores" >&2
  return 0
}

# measure_throughput NAME RUNNER URL [CLIENT_PID SERVER_PID]: wrk at saturation (keep-alive,
# HTTP/1.1, C connections, one thread). With proxy pids: their CPU ticks over the run, and their
# resident memory half-way through it.
measure_throughput() {
  local name=$1 runner=$2 url=$3 p1=${4:-} p2=${5:-} c1=0 c2=0 sampler=
  if [ -n "$p1" ]; then
    c1=$(cpu_ticks "$p1")
    c2=$(cpu_ticks "$p2")
    (sleep $((D / 2)) && echo "$(rss_kib "$p1") $(rss_kib "$p2")" > "$W/raw/rss-load-$name") &
    sampler=$!
  fi
  "$runner" wrk -t1 -c"$C" -d"${D}s" --latency "$url" > "$W/raw/wrk-$name" 2>&1 ||
    die "wrk failed on the $name path: $(tail -3 "$W/raw/wrk-$name")"
  if [ -n "$p1" ]; then
    wait "$sampler" || die "could not sample the $name proxies' memory (did one exit?)"
    echo "$(($(cpu_ticks "$p1") - c1)) $(($(cpu_ticks "$p2") - c2))" > "$W/raw/cpu-$name"
  fi
}

# measure_latency NAME RUNNER URL RATE: h2load (HTTP/1.1) at a fixed total rate: 100 req/s per
# connection (h2load's --rps is unreliable above that per client), so RATE/100 connections, with
# a per-request log for the percentiles. h2load counts HAProxy's answers as failures (empty
# reason phrase after HTTP/2 between the proxies), so its exit status says nothing here; the
# report reads the log.
measure_latency() {
  local name=$1 runner=$2 url=$3 rate=$4
  local clients=$(((rate + 99) / 100))
  "$runner" h2load --h1 -c "$clients" --rps 100 -D "$D" --warm-up-time 1 \
    --log-file "$W/raw/h2load-$name-$rate" "$url" > "$W/raw/h2load-$name-$rate.out" 2>&1 || true
  [ -s "$W/raw/h2load-$name-$rate" ] ||
    die "h2load logged no requests on the $name path at $rate rps: $(tail -3 "$W/raw/h2load-$name-$rate.out")"
}

# half_direct_rate: half of the direct path's wrk req/s, the second latency rate.
half_direct_rate() {
  awk '/Requests\/sec/ {print int($2 / 2)}' "$W/raw/wrk-direct"
}

# report TITLE HALF_RATE: the markdown table from everything in $W/raw.
report() {
  python3 "$BENCH_DIR/report.py" "$W/raw" "$1" "$D" "$C" "$2"
}
