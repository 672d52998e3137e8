#!/usr/bin/env bash
# Soak and chaos run of the switch (issue 9): 8 VMs as network namespaces on the switch's
# tap ports, keepalived pairs, iperf3 TCP and 64-byte UDP, a 100 Hz VIP prober, and faults on
# a schedule (VIP flap, valid/invalid reload, tap delete + recreate, kill -9 + restart).
# The test itself is agent/tests/soak.rs (`soak`, ignored in `cargo test`; `soak_ci` is the
# 60 s version that `cargo test --workspace` runs as root).
#
#   sudo scripts/soak.sh [--duration 600] [--kill-every 60] [--flap-every 2]
#                        [--reload-every 5] [--tap-every 10] [--tap-down 2]
#                        [--tcp-rate 100M] [--udp-pps 1000] [--hz 100] [--settle 15] [--steady-from S]
#                        [--vip-check strict|repair|skip] [--out DIR] [--plot PNG]
#
# Defaults: 10 minutes, kill -9 every 60 s, outputs in target/tmp/soak/ (samples.csv,
# events.csv, outages.csv, summary.json). --plot PNG draws them with scripts/soak-plot.py
# (needs python3-matplotlib: `apt-get install python3-matplotlib`).
# Needs root and what scripts/deps.sh installs (iproute2, keepalived, iperf3).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "SKIPPED: needs root" >&2
    exit 0
fi
bash scripts/deps.sh
args=()
plot=""
out="$PWD/target/tmp/soak"
while [ $# -gt 0 ]; do
    case "$1" in
        --plot) plot="$2"; shift 2 ;;
        --out) out="$(realpath -m "$2")"; shift 2 ;;
        --duration|--kill-every|--flap-every|--reload-every|--tap-every|--tap-down|--tcp-rate|--udp-pps|--hz|--settle|--steady-from|--vip-check)
            [ $# -ge 2 ] || { echo "$1 needs a value" >&2; exit 2; }
            args+=("$1" "$2"); shift 2 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
args+=(--out "$out")
rc=0
VSWITCH_SOAK_ARGS="${args[*]}" cargo test -p agent --test soak -- --ignored --exact soak \
    --nocapture || rc=$?
if [ -n "$plot" ] && [ -f "$out/samples.csv" ]; then
    /usr/bin/python3 scripts/soak-plot.py "$out" "$plot" || echo "plot failed (python3-matplotlib installed?)" >&2
fi
exit "$rc"
