#!/usr/bin/env bash
# Certificates the CA signs per second on one core (CSR parsed and verified, identity checked,
# P-256 leaf signed): the figure of docs/performance.md's "The control plane".
#   tests/bench/ca.sh [COUNT] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
count=${1:-5000}
runs=${2:-3}
cargo build --release -q -p weft-certs --example signing_rate
for _ in $(seq "$runs"); do
  taskset -c 0 target/release/examples/signing_rate "$count"
done
