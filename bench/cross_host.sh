#!/usr/bin/env bash
# bench/cross_host.sh - cross-host (VXLAN) vs same-host traffic through the switch (issue
# 10), in one run on one lab: TCP throughput, switch CPU per Gbit/s, 64 B UDP rate, ping
# RTT. Root only; everything runs in namespaces the benchmark
# (agent/tests/bench_cross_host.rs, cluster_lab) creates and removes. Release build.
#
#   sudo bench/cross_host.sh [SECONDS]      (per measurement; default 5)
#
# Prints a Markdown table and keeps the CROSSHOST {...} JSON lines in
# bench/results/cross-host-<date>.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
mkdir -p bench/results
out=bench/results/cross-host-$(date -u +%Y%m%dT%H%M%SZ).jsonl
cargo test --release -p agent --test bench_cross_host --no-run >/dev/null 2>&1 ||
    cargo test --release -p agent --test bench_cross_host --no-run
BENCH_SECS=$secs cargo test --release -p agent --test bench_cross_host -- --ignored --nocapture 2>&1 |
    tee /dev/stderr | grep '^CROSSHOST ' | sed 's/^CROSSHOST //' >"$out"
echo "results: $out"
