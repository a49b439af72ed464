#!/usr/bin/env bash
# Records proxy/pgo/weft-proxy.profdata, the profile scripts/release-build optimises weft-proxy
# with: an instrumented sidecar pair runs the benchmark's whole matrix in pods once
# (tests/bench/pods.sh: HTTP/1.1 gets of both sizes at 32 and 512 connections, 4 KiB posts, gRPC
# unary, metrics, tracing, certificates and discovery), and the counts both sidecars write at exit
# are merged. Run it again when the request path has changed much (a stale profile costs speed on
# what changed, never correctness); pods.sh's ratios before and after show what it buys.
#
# Usage: sudo tests/bench/pgo.sh [seconds per measurement, default 3]
# Needs root and what pods.sh needs, and llvm-profdata of the toolchain's LLVM
# (`rustup component add llvm-tools`).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
D=${1:-3}
HOST=$(rustc -vV | sed -n 's/^host: //p')
PROFDATA=$(find "$(rustc --print sysroot)/lib/rustlib" -name llvm-profdata -type f | head -1)
[ -n "$PROFDATA" ] || { echo "error: no llvm-profdata: rustup component add llvm-tools" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "error: pods.sh needs root: sudo $0" >&2; exit 1; }
W=$(mktemp -d /tmp/weft-pgo.XXXX)
trap 'rm -rf "$W"' EXIT
# The sidecars run as UID 1337 and write their counts here when they exit.
chmod 755 "$W"
mkdir -m 1777 "$W/raw"
mkdir -m 755 "$W/bin"

cd "$ROOT"
RUSTFLAGS="-Cprofile-generate=$W/raw" CARGO_TARGET_DIR=$ROOT/target/pgo-generate \
  cargo build --release --locked -p weft-proxy --bin weft-proxy --target "$HOST"
cargo build --release --locked --bin weft-control-plane --bin weft
cp "target/pgo-generate/$HOST/release/weft-proxy" target/release/weft-control-plane "$W/bin/"

# A file per process: the default name is one file per binary, which `weft-proxy init` (root)
# creates first and the sidecars (UID 1337) then cannot write. A short grace: the sidecars write
# their counts when they exit, and pods.sh kills what has not exited 5 s after SIGTERM.
LLVM_PROFILE_FILE="$W/raw/%p.profraw" WEFT_BIN=$W/bin RUNS=1 \
  WEFT_PROXY_FLAGS="--shutdown-grace 1s" "$ROOT/tests/bench/pods.sh" "$D" > "$W/pods.txt" 2>&1 ||
  { cat "$W/pods.txt" >&2; exit 1; }
# weft-proxy init writes one too (it is the same binary): three files at least.
[ "$(ls "$W"/raw/*.profraw 2> /dev/null | wc -l)" -ge 3 ] ||
  { ls -la "$W/raw" >&2; echo "error: the sidecars wrote no counts" >&2; exit 1; }
mkdir -p proxy/pgo
"$PROFDATA" merge --sparse -o proxy/pgo/weft-proxy.profdata "$W"/raw/*.profraw
echo "proxy/pgo/weft-proxy.profdata: $(du -k proxy/pgo/weft-proxy.profdata | cut -f1) KiB, from $(ls "$W"/raw/*.profraw | wc -l) processes"
