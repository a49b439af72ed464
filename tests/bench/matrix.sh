# shellcheck shell=bash
# The scenario matrix of tests/bench/pods.sh: what each scenario sends, the app's answers to it,
# how one scenario is measured on one path, and the checks that each path answers each scenario
# as it should before anything is measured. Sourced after lib.sh, not run.
#
# The caller (pods.sh) describes its paths in associative arrays, keyed by path name
# (direct, weft, haproxy):
#   RUNNER[p]     the function that runs a load generator where path p's client sits
#   HTTP_URL[p]   base URL of the HTTP app through p (no trailing slash)
#   GRPC_ADDR[p]  HOST:PORT of the h2c gRPC app through p
#   PROXIES[p]    "CLIENT_PID SERVER_PID" of p's proxies ("" for direct)
#   ENTRY[p]      "NAMESPACE PORT": where p's client connections are accepted (counted in get-512)
# and sets W (working directory), D (seconds per measurement) and GRPC_PYTHON (a python3 with
# grpcio that every runner can run).
# shellcheck disable=SC2153 # RUNNER, HTTP_URL, ... are the caller's

# The scenarios a run measures by default, in the order a round measures them; and every one
# BENCH_SCENARIOS may name. post-4k-early is post-4k against an app that answers before it has
# read the body (nginx's `return`, which discards the body after answering): not a default, it
# reproduces a failure of the weft path (see docs/performance.md).
DEFAULT_SCENARIOS=(get-32 get-512 post-4k get-64k grpc-unary)
ALL_SCENARIOS=("${DEFAULT_SCENARIOS[@]}" post-4k-early)
# The gRPC method the app answers, and the messages (serialized protobuf: field 1, a string).
GRPC_METHOD=/bench.Echo/Unary
GRPC_REQUEST_HEX=0a0470696e67                            # {1: "ping"}
GRPC_RESPONSE_HEX=0a0d706f6e672066726f6d20617070         # {1: "pong from app"}
GRPC_CONNECTIONS=32                                      # h2load -c; one stream each (-m 1)

# select_scenarios: SCENARIOS from BENCH_SCENARIOS (default: all), each name checked.
select_scenarios() {
  local s k known
  read -r -a SCENARIOS <<< "${BENCH_SCENARIOS:-${DEFAULT_SCENARIOS[*]}}"
  [ ${#SCENARIOS[@]} -gt 0 ] || die "BENCH_SCENARIOS is empty; known: ${ALL_SCENARIOS[*]}"
  for s in "${SCENARIOS[@]}"; do
    known=
    for k in "${ALL_SCENARIOS[@]}"; do [ "$s" = "$k" ] && known=1; done
    [ -n "$known" ] || die "BENCH_SCENARIOS: unknown scenario '$s'; known: ${ALL_SCENARIOS[*]}"
  done
}

# selected SCENARIO: whether this run measures it.
selected() {
  local s
  for s in "${SCENARIOS[@]}"; do [ "$s" = "$1" ] && return 0; done
  return 1
}

# --- the app -------------------------------------------------------------------------------------

# hex_to_file HEX FILE: the bytes HEX spells.
hex_to_file() { python3 -c 'import sys; open(sys.argv[2], "wb").write(bytes.fromhex(sys.argv[1]))' "$1" "$2"; }

# grpc_frame_hex MESSAGE_HEX: the message as one gRPC length-prefixed frame (uncompressed flag,
# 4-byte big-endian length, the message).
grpc_frame_hex() { printf '00%08x%s' $((${#1} / 2)) "$1"; }

# write_app_files: what the app serves and the load generators send, in $W/app (readable by the
# load generator's UID): a 64 KiB file of random bytes, a 4 KiB request body, wrk's POST script,
# the framed gRPC request and response, and grpc_check.py.
write_app_files() {
  mkdir -p "$W/app"
  head -c 65536 /dev/urandom > "$W/app/64k"
  head -c 4096 /dev/zero | tr '\0' x > "$W/app/body-4k"
  printf 'posted\n' > "$W/app/post"
  printf 'posted\n' > "$W/app/post-early"
  cat > "$W/app/post.lua" <<'LUA'
-- wrk: every request a POST with a 4 KiB body (wrk adds its Content-Length), to the URL's path.
wrk.method = "POST"
wrk.body = string.rep("x", 4096)
wrk.headers["Content-Type"] = "application/octet-stream"
LUA
  # The gRPC check runs as the load generator's UID, which a checkout may be closed to.
  cp "$BENCH_DIR/grpc_check.py" "$W/app/"
  hex_to_file "$(grpc_frame_hex "$GRPC_REQUEST_HEX")" "$W/app/grpc-request.bin"
  hex_to_file "$(grpc_frame_hex "$GRPC_RESPONSE_HEX")" "$W/app/grpc-response.bin"
  chmod 755 "$W/app"
  chmod 644 "$W/app"/*
}

# write_matrix_nginx_conf HTTP_LISTEN... -- GRPC_LISTEN...: the anchor's app (one worker, the fixed
# 15-byte answer on /) plus what the scenarios need, in $W/nginx.conf:
#   /64k     the 64 KiB file (static)
#   /post    "posted\n" (200) once nginx has read the whole request body, as an app that reads
#            its input before answering: `mirror` (to an internal location answering 204) makes
#            nginx read the body before the content phase; the static module then refuses POST
#            (405) and `error_page 405 =200 $uri` serves the file $W/app/post as GET.
#   /post-early  "posted\n" (200) at once, with `return`: nginx answers as soon as it has the
#            headers and reads and discards the body after (post-4k-early).
#            In both, a body left unread would break the keep-alive connection's next request,
#            which wrk would count. Requests carrying `x-bench-check: 1` are logged to
#            $W/post-check.log (status, request line, Content-Length, Transfer-Encoding) for the
#            checks.
#   gRPC     on the GRPC_LISTEN addresses, h2c (HTTP/2 prior knowledge): POST /bench.Echo/Unary
#            answers the framed response (content-type application/grpc) and the trailer
#            grpc-status: 0. The static module refuses POST (405); `error_page 405 =200 $uri`
#            serves the same file as GET with status 200 (nginx has no gRPC server of its own).
#            keepalive_requests is raised there so that nginx's GOAWAY after 1000 requests (its
#            default) does not make every h2 connection to it reconnect mid-run.
write_matrix_nginx_conf() {
  local listen http="" grpc="" in_grpc=
  for listen in "$@"; do
    if [ "$listen" = -- ]; then in_grpc=1; continue; fi
    if [ -n "$in_grpc" ]; then grpc+="listen $listen http2 reuseport; "; else http+="listen $listen reuseport; "; fi
  done
  cat > "$W/nginx.conf" <<NG
worker_processes 1; daemon off; pid $W/nginx.pid; error_log $W/nginx.err;
worker_rlimit_nofile 16384;
events { worker_connections 4096; }
http {
  access_log off;
  log_format check '\$status "\$request" \$content_length \$http_transfer_encoding';
  map \$http_x_bench_check \$bench_check { default 0; 1 1; }
  server {
    $http
    location / { return 200 "hello from app\n"; }
    location = /64k { root $W/app; }
    location = /post {
      mirror /post-sink; mirror_request_body on;
      root $W/app; error_page 405 =200 \$uri;
      access_log $W/post-check.log check if=\$bench_check;
    }
    location = /post-sink { internal; return 204; }
    location = /post-early {
      access_log $W/post-check.log check if=\$bench_check;
      return 200 "posted\n";
    }
  }
  server {
    $grpc
    keepalive_requests 1000000;
    location = $GRPC_METHOD {
      types { } default_type application/grpc; etag off;
      add_trailer grpc-status 0 always;
      error_page 405 =200 \$uri;
      alias $W/app/grpc-response.bin;
    }
  }
}
NG
}

# --- proving each scenario on each path ----------------------------------------------------------

# check_scenarios PATH: every selected scenario answers through PATH as it must, once, before
# anything is measured; the first that does not stops the run, saying what arrived.
check_scenarios() {
  local p=$1 runner=${RUNNER[$1]} url=${HTTP_URL[$1]} got line
  if selected get-32 || selected get-512; then
    got=$("$runner" curl -sS "$url/") || die "GET $url/ on the $p path failed"
    [ "$got" = "hello from app" ] || die "GET $url/ on the $p path answered '$got', not 'hello from app'"
  fi
  if selected get-64k; then
    got=$("$runner" curl -sS -o /dev/null -w '%{http_code} %{size_download}' "$url/64k") ||
      die "GET $url/64k on the $p path failed"
    [ "$got" = "200 65536" ] || die "GET $url/64k on the $p path: status and size '$got', expected '200 65536'"
    cmp -s <("$runner" curl -sS "$url/64k") "$W/app/64k" ||
      die "GET $url/64k on the $p path: the bytes differ from the file nginx serves"
  fi
  local post
  for post in post post-early; do
    selected "${post/post/post-4k}" || continue
    : > "$W/post-check.log"
    got=$("$runner" curl -sS -w ' %{http_code}' -H 'x-bench-check: 1' \
      -H 'content-type: application/octet-stream' --data-binary "@$W/app/body-4k" "$url/$post") ||
      die "POST $url/$post on the $p path failed"
    [ "$got" = $'posted\n 200' ] || die "POST $url/$post on the $p path answered '$got', not 'posted' 200"
    # nginx writes its access log line when the request ends: poll for it.
    wait_for 5 "nginx's log line of the $p path's POST" test -s "$W/post-check.log" ||
      die "nginx logged no POST from the $p path"
    line=$(tail -n 1 "$W/post-check.log")
    [[ $line =~ ^200\ \"POST\ /$post\ HTTP/1\.1\"\ (4096\ -|-\ chunked)$ ]] ||
      die "nginx saw the $p path's POST as '$line', expected '200 \"POST /$post HTTP/1.1\" 4096 -' (or a chunked body)"
  done
  if selected grpc-unary; then
    "$runner" "$GRPC_PYTHON" "$W/app/grpc_check.py" "${GRPC_ADDR[$p]}" "$GRPC_METHOD" \
      "$GRPC_REQUEST_HEX" "$GRPC_RESPONSE_HEX" >&2 ||
      die "the $p path does not carry gRPC (grpcio against ${GRPC_ADDR[$p]})"
  fi
  echo "$p path: answers ${SCENARIOS[*]} as expected" >&2
}

# check_grpc_trailer: the app's gRPC answer ends with the trailer grpc-status: 0, seen frame by
# frame by nghttp (curl does not print trailers) on the direct path.
check_grpc_trailer() {
  selected grpc-unary || return 0
  local out
  out=$("${RUNNER[direct]}" nghttp -nv -H 'content-type: application/grpc' -H 'te: trailers' \
    -d "$W/app/grpc-request.bin" "http://${GRPC_ADDR[direct]}$GRPC_METHOD" 2>&1) ||
    die "nghttp could not call the app's gRPC port ${GRPC_ADDR[direct]}: $(tail -3 <<< "$out")"
  grep -q 'recv (stream_id=[0-9]*) grpc-status: 0' <<< "$out" ||
    die "the app's gRPC answer carries no grpc-status: 0 trailer; nghttp saw:
$out"
}

# --- measuring -----------------------------------------------------------------------------------

# established NAMESPACE PORT: TCP connections established with local port PORT in NAMESPACE.
established() {
  ip netns exec "$1" ss -Htn state established "( sport = :$2 )" | wc -l
}

# sample_under_load OUT PATH SCENARIO: half-way through a measurement, the resident memory (KiB)
# of PATH's proxies to OUT.rss, and for get-512 the connections its entry holds to OUT.conns.
sample_under_load() {
  local out=$1 p=$2 scenario=$3 pid rss=""
  sleep "$(awk -v d="$D" 'BEGIN { print d / 2 }')"
  if [ -n "${PROXIES[$p]}" ]; then
    for pid in ${PROXIES[$p]}; do rss+="$(rss_kib "$pid") "; done
    echo "$rss" > "$out.rss"
  fi
  if [ "$scenario" = get-512 ]; then
    # shellcheck disable=SC2086 # NAMESPACE PORT
    established ${ENTRY[$p]} > "$out.conns"
  fi
}

# run_load SCENARIO PATH OUT: the scenario's load generator through PATH for D seconds, its
# output to OUT.
run_load() {
  local scenario=$1 p=$2 out=$3 runner=${RUNNER[$2]} url=${HTTP_URL[$2]}
  case "$scenario" in
    get-32) "$runner" wrk -t1 -c32 -d"${D}s" --latency "$url/" ;;
    get-512) "$runner" wrk -t1 -c512 -d"${D}s" --latency "$url/" ;;
    post-4k) "$runner" wrk -t1 -c32 -d"${D}s" --latency -s "$W/app/post.lua" "$url/post" ;;
    post-4k-early) "$runner" wrk -t1 -c32 -d"${D}s" --latency -s "$W/app/post.lua" "$url/post-early" ;;
    get-64k) "$runner" wrk -t1 -c32 -d"${D}s" --latency "$url/64k" ;;
    grpc-unary)
      "$runner" h2load -t1 -c "$GRPC_CONNECTIONS" -m 1 -D "$D" -H 'content-type: application/grpc' \
        -H 'te: trailers' -d "$W/app/grpc-request.bin" "http://${GRPC_ADDR[$p]}$GRPC_METHOD"
      ;;
  esac > "$out" 2>&1
}

# measure SCENARIO PATH ROUND: one measurement into $W/raw/rROUND/SCENARIO-PATH (the load
# generator's output) with .cpu (CPU ticks of the client and server proxy over the run), .sys
# (the system-time part of those ticks), .rss and .conns (sample_under_load).
measure() {
  local scenario=$1 p=$2 out=$W/raw/r$3/$1-$2 before=() before_sys=() pid sampler i=0 ticks="" sys=""
  for pid in ${PROXIES[$p]}; do
    before+=("$(cpu_ticks "$pid")")
    before_sys+=("$(cpu_sys_ticks "$pid")")
  done
  sample_under_load "$out" "$p" "$scenario" &
  sampler=$!
  run_load "$scenario" "$p" "$out" ||
    die "the load generator failed in $scenario on the $p path: $(tail -3 "$out")"
  wait "$sampler" || die "could not sample the $p path's proxies in $scenario (did one exit?)"
  for pid in ${PROXIES[$p]}; do
    ticks+="$(($(cpu_ticks "$pid") - before[i])) "
    sys+="$(($(cpu_sys_ticks "$pid") - before_sys[i])) "
    i=$((i + 1))
  done
  [ -z "$ticks" ] || echo "$ticks" > "$out.cpu"
  [ -z "$sys" ] || echo "$sys" > "$out.sys"
}

# measure_latency_at PATH ROUND RATE: h2load --h1 GET / at a fixed total rate (100 req/s per
# connection, as lib.sh's measure_latency) with a per-request log, to $W/raw/rROUND/lat-RATE-PATH.
measure_latency_at() {
  local p=$1 rate=$3 out=$W/raw/r$2/lat-$3-$1
  local clients=$(((rate + 99) / 100))
  # h2load counts HAProxy's answers as failures (an empty reason phrase), so its exit status says
  # nothing; the report reads the log.
  "${RUNNER[$p]}" h2load --h1 -c "$clients" --rps 100 -D "$D" --warm-up-time 1 \
    --log-file "$out.log" "${HTTP_URL[$p]}/" > "$out.out" 2>&1 || true
  [ -s "$out.log" ] ||
    die "h2load logged no requests on the $p path at $rate rps: $(tail -3 "$out.out")"
}

# wrk_rps FILE: the req/s wrk reported.
wrk_rps() { awk '/Requests\/sec/ { print int($2) }' "$1"; }

# measure_round ROUND: every selected scenario on every path (direct, weft, haproxy, in that
# order, scenario by scenario), then latency at 1k req/s (and, with BENCH_HALF_RATE=1, at half of
# this round's direct get-32 req/s) on every path.
measure_round() {
  local round=$1 s p rate half
  mkdir -p "$W/raw/r$round"
  chown "$PROXY_UID:$PROXY_UID" "$W/raw/r$round" # the direct path's h2load writes its log here
  for s in "${SCENARIOS[@]}"; do
    for p in direct weft haproxy; do
      echo "round $round/$RUNS: $s on the $p path (${D}s)" >&2
      measure "$s" "$p" "$round"
    done
  done
  local rates=(1000)
  if [ -n "${BENCH_HALF_RATE:-}" ] && selected get-32; then
    half=$(($(wrk_rps "$W/raw/r$round/get-32-direct") / 2))
    rates+=("$half")
  fi
  for rate in "${rates[@]}"; do
    for p in direct weft haproxy; do
      echo "round $round/$RUNS: latency at $rate req/s on the $p path (${D}s)" >&2
      measure_latency_at "$p" "$round" "$rate"
    done
  done
}
