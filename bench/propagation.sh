#!/usr/bin/env bash
# bench/propagation.sh - VIP move propagation across hosts (issue 10), in one run:
# without and with a background etcd write load. Root only; everything runs in namespaces
# the benchmark (agent/tests/bench_propagation.rs, cluster_lab) creates and removes.
#
#   sudo bench/propagation.sh [MOVES] [INTERVAL_MS]     (defaults 500, 60)
#
# Prints one PROPAGATION {...} JSON line per run (p50/p99/max in ms, per receiving host and
# overall) and keeps them in bench/results/propagation-<date>.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
moves=${1:-500}
interval=${2:-60}
mkdir -p bench/results
out=bench/results/propagation-$(date -u +%Y%m%dT%H%M%SZ).jsonl
cargo test --release -p agent --test bench_propagation --no-run >/dev/null 2>&1 ||
    cargo test --release -p agent --test bench_propagation --no-run
for load in 0 1; do
    echo "== etcd background load: $load"
    BENCH_MOVES=$moves BENCH_INTERVAL_MS=$interval BENCH_LOAD=$load \
        cargo test --release -p agent --test bench_propagation -- --ignored --nocapture 2>&1 |
        tee /dev/stderr | grep '^PROPAGATION ' | sed "s/^PROPAGATION /{\"load\":$load,\"r\":/; s/\$/}/" >>"$out"
done
echo "results: $out"
cat "$out"
