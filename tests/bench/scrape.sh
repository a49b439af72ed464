#!/usr/bin/env bash
# CPU a sidecar spends on one Prometheus scrape when it has called many destinations: the
# caller's sidecar with DESTINATIONS (100) services behind --forward listeners, each called a
# few times (so each has its request, latency and connection series), then SCRAPES (200) GETs of
# /metrics; the sidecar's own CPU time (utime + stime) over the scrapes, divided by SCRAPES. CPU
# time, not wall time: it holds on a machine that does other work too.
#
# Each service has its own endpoint address (127.0.1.1, 127.0.1.2, ...: loopback), all served by
# one server sidecar listening on the wildcard address, and nginx behind it.
#
# Usage: tests/bench/scrape.sh                  (builds this checkout's release binaries)
#        WEFT_BIN=<dir> tests/bench/scrape.sh   (the binaries there)
#        SAVE_METRICS=FILE tests/bench/scrape.sh  (also keeps that sidecar's /metrics in FILE, as
#                                                  tests/bench/dashboard.sh serves it)
# Needs nginx and curl.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
source "$(dirname "$0")/lib.sh"
DESTINATIONS=${DESTINATIONS:-100}
SCRAPES=${SCRAPES:-200}
positive_int DESTINATIONS "$DESTINATIONS"
positive_int SCRAPES "$SCRAPES"
need_tools nginx curl
build_weft
W=$(mktemp -d /tmp/weft-scrape.XXXX)
PIDS=()
cleanup() {
  stop_pids "${PIDS[@]}"
  [ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
BASE=${BASE:-23000}
CP=127.0.0.1:$((BASE + 10)) APP=127.0.0.1:$((BASE + 80)) SERVER_IN=0.0.0.0:$((BASE + 6))
CLIENT_ADMIN=127.0.0.1:$((BASE + 200)) FORWARD_BASE=$((BASE + 1000))

write_tokens
write_nginx_conf "$APP"
FORWARDS=()
for i in $(seq 0 $((DESTINATIONS - 1))); do
  cat >> "$W/services.yaml" << EOF
---
apiVersion: weft.dev/v1alpha1
kind: MeshService
metadata: {name: svc-$i, namespace: bench}
spec:
  ports: [{port: 8080, targetPort: $((BASE + 6))}]
  endpoints: [{address: 127.0.$((1 + i / 250)).$((1 + i % 250)), serviceAccount: server}]
EOF
  FORWARDS+=(--forward "127.0.0.1:$((FORWARD_BASE + i))=svc-$i.bench:8080")
done

"$WEFT_BIN/weft-control-plane" --bootstrap-tokens "$W/tokens.yaml" --services "$W/services.yaml" \
  --listen "$CP" --admin-listen 127.0.0.1:$((BASE + 14)) --data-dir "$W/cp" --log warn \
  > "$W/cp.log" 2>&1 &
PIDS+=($!)
wait_for 20 "the control plane" test -f "$W/cp/trust-bundle.pem"
nginx -c "$W/nginx.conf" > "$W/nginx.log" 2>&1 &
PIDS+=($!)
common=(--control-plane-addr "$CP" --trust-anchors "$W/cp/trust-bundle.pem" --outbound-listen off
  --log warn)
WEFT_TOKEN=$BENCH_SERVER_TOKEN "$WEFT_BIN/weft-proxy" "${common[@]}" \
  --identity spiffe://cluster.local/ns/bench/sa/server --inbound-listen "$SERVER_IN" \
  --inbound-app-addr "$APP" --admin-listen 127.0.0.1:$((BASE + 100)) > "$W/server.log" 2>&1 &
PIDS+=($!)
WEFT_TOKEN=$BENCH_CLIENT_TOKEN "$WEFT_BIN/weft-proxy" "${common[@]}" \
  --identity spiffe://cluster.local/ns/bench/sa/client --inbound-listen 127.0.0.1:$((BASE + 7)) \
  --admin-listen "$CLIENT_ADMIN" "${FORWARDS[@]}" > "$W/client.log" 2>&1 &
CLIENT_PID=$!
PIDS+=("$CLIENT_PID")
wait_for 60 "the sidecars" curl -sf "http://127.0.0.1:$FORWARD_BASE/"
for i in $(seq 0 $((DESTINATIONS - 1))); do
  for _ in 1 2 3; do
    curl -sf -o /dev/null "http://127.0.0.1:$((FORWARD_BASE + i))/" ||
      die "a request to svc-$i failed"
  done
done

curl -sf "http://$CLIENT_ADMIN/metrics" > "$W/metrics.txt"
[ -z "${SAVE_METRICS:-}" ] || cp "$W/metrics.txt" "$SAVE_METRICS"
before=$(cpu_ticks "$CLIENT_PID")
for _ in $(seq "$SCRAPES"); do curl -sf -o /dev/null "http://$CLIENT_ADMIN/metrics"; done
after=$(cpu_ticks "$CLIENT_PID")
series=$(grep -vc '^#' "$W/metrics.txt")
echo "a scrape of the caller's sidecar with $DESTINATIONS destinations ($series series, $(wc -c < "$W/metrics.txt") bytes):"
awk -v t=$((after - before)) -v n="$SCRAPES" -v hz="$(getconf CLK_TCK)" \
  'BEGIN { printf "  %.2f ms of the sidecar'"'"'s CPU (%d scrapes)\n", t * 1000 / hz / n, n }'
