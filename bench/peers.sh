#!/usr/bin/env bash
# Peer comparison (throughput/latency) in ONE run: Linux bridge, Open vSwitch userspace
# datapath (tap + TSO), the null tap forwarder with vnet headers (the I/O limit of a tap
# switch), and vswitch, on the shared peer harness (../shared/peers/bench.py): ping RTT,
# iperf3 TCP, iperf3 UDP 64 B, trafgen 64 B, vm1 -> vm2 in network namespaces it creates.
#
#   sudo bench/peers.sh [--rounds 3] [--duration 10] [--variants bridge,ovs-tap-tso,null-vnet,cmd]
#
# Root only. Installs what the harness needs (openvswitch, iperf3, netsniff-ng, ...). The
# results (medians with [min..max] and the switch's CPU) land in $RUN/results. Compare only
# numbers from the same run: the machine is noisy. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUN=${RUN:-${TMPDIR:-/tmp}/vswitch-peers-run}
mkdir -p "$RUN"
# The harness builds its null forwarder next to itself: run a writable copy of it.
rm -rf "$RUN/peers" && cp -r "$(cd ../shared/peers && pwd)" "$RUN/peers" && chmod -R u+w "$RUN/peers"
PEERS=$RUN/peers
export PEERS
need=()
for p in openvswitch-switch iperf3 netsniff-ng tcpdump ethtool iproute2 iputils-ping gcc; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
bash scripts/deps.sh   # protoc, which the agent's build needs
cargo build --release -q -p agent
BIN=$(pwd)/target/release/vswitch
CFG=$RUN/vswitch-peers.toml
# The harness's VMs: vm1..vm2, eth0 = the tap tN renamed, 10.200.0.N/24, 02:00:00:00:00:0N.
{
    echo '[switch]'
    for n in 1 2; do
        printf '[[port]]\nname = "vm%d"\ntap = "t%d"\nmac = "02:00:00:00:00:%02x"\nips = ["10.200.0.%d/24"]\n' "$n" "$n" "$n" "$n"
    done
} > "$CFG"
"$BIN" check-config "$CFG" >/dev/null
export SWITCH_CMD="$BIN run --config $CFG --socket $RUN/vswitch.sock"
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--rounds 3 --duration 10 --pin --variants bridge,ovs-tap-tso,null-vnet,cmd)
trap '"$PEERS/cleanup.sh" >/dev/null 2>&1 || true' EXIT
python3 "$PEERS/bench.py" "${args[@]}"
