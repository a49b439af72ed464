#!/usr/bin/env bash
# Regenerates proxy/code-order.txt: the functions a sidecar pair runs (start-up, certificates,
# discovery, requests of each kind, metrics, tracing export, a 512-connection load), recorded
# under callgrind by tests/bench/idle_rss.sh, hottest first. proxy/build.rs has the linker place
# them first and together, so a sidecar's resident code is what it runs (see docs/performance.md).
#
# Symbol names carry hashes that change when a dependency, the toolchain or the features a build
# resolves change: then the list goes stale (tests/bench/idle_rss.sh says how much of it the binary
# still has) and this script is run again on the binary scripts/release-build makes, as the
# Containerfile and the benchmarks do (the sidecar in a cargo invocation of its own, for the host
# target: another kind of build names its functions differently).
#
# Usage: tests/bench/code_order.sh        (builds, or WEFT_BIN=<dir> for binaries built already)
# Needs valgrind and what tests/bench/idle_rss.sh needs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
command -v valgrind > /dev/null || { echo "error: valgrind is not installed" >&2; exit 1; }
if [ -z "${WEFT_BIN:-}" ]; then
  "$ROOT/scripts/release-build" "$ROOT/target/dist" >&2
  WEFT_BIN=$ROOT/target/dist
fi
W=$(mktemp -d /tmp/weft-code-order.XXXX)
trap 'rm -rf "$W"' EXIT
# Under valgrind a request costs ~50 times as much: a few thousand at 512 connections suffice to
# run every path the load takes.
SIDECAR_WRAPPER="valgrind --tool=callgrind --demangle=no --compress-strings=no --callgrind-out-file=$W/callgrind.%p" \
  WEFT_BIN=$WEFT_BIN LOAD=1 LOAD_REQUESTS=${LOAD_REQUESTS:-5120} BASE=${BASE:-23000} \
  "$ROOT/tests/bench/idle_rss.sh" 1 > "$W/run.txt" 2>&1 || { cat "$W/run.txt" >&2; exit 1; }
python3 "$ROOT/tests/bench/code_order.py" "$WEFT_BIN/weft-proxy" "$W"/callgrind.* > "$W/order.txt"
cp "$W/order.txt" "$ROOT/proxy/code-order.txt"
echo "proxy/code-order.txt: $(wc -l < "$ROOT/proxy/code-order.txt") functions"
