#!/usr/bin/env bash
# Peer comparison (throughput/latency) in ONE run: Linux bridge, Open vSwitch userspace
# datapath (tap + TSO), the null tap forwarder with vnet headers (the I/O limit of a tap
# switch), and vswitch, on the shared peer harness (../shared/peers/bench.py): ping RTT,
# iperf3 TCP, iperf3 UDP 64 B, trafgen 64 B, vm1 -> vm2 in network namespaces it creates.
#
#   sudo bench/peers.sh [--baseline REV] [--rounds 3] [--duration 10] [--variants bridge,ovs-tap-tso,null-vnet,cmd-epoll,cmd-uring]
#
# vswitch runs as two variants: `cmd-epoll` (`[switch] io = "epoll"`) and `cmd-uring`
# (`io = "uring"`); `cmd` is the default (`io = "auto"`). The copy of the harness gets
# those names added to its `cmd` case (the shared original is not touched).
#
# `--baseline REV` (a commit, tag or branch of this repository) adds the variant `cmd-base`:
# REV's switch, built in a worktree of its own ($RUN/base-src, release, its own target dir),
# on its epoll worker (`io = "epoll"`, or no `io` at all when REV predates the setting), so
# that "no regression on the epoll worker" is checked in the same run. With no `--variants`
# it runs after `cmd-epoll`.
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
BASE_REV=
args=()
while [ $# -gt 0 ]; do
    case $1 in
        --baseline) BASE_REV=${2:?--baseline needs a revision}; shift 2 ;;
        --baseline=*) BASE_REV=${1#--baseline=}; shift ;;
        *) args+=("$1"); shift ;;
    esac
done
# the worker engines (and the baseline) as variants of the harness's `cmd` (the switch
# creates the taps)
sed -i -e 's/^    cmd|cmd-veth)$/    cmd|cmd-veth|cmd-epoll|cmd-uring|cmd-base)/' \
    -e 's/if \[ \$v = cmd \]; then/if [ $v != cmd-veth ]; then/' "$PEERS/topo.sh"
grep -q 'cmd-epoll|cmd-uring|cmd-base' "$PEERS/topo.sh" || { echo "peers.sh: cannot add the engine variants to topo.sh" >&2; exit 1; }
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
# The harness's VMs: vm1..vm2, eth0 = the tap tN renamed, 10.200.0.N/24, 02:00:00:00:00:0N.
for io in auto epoll uring; do
    {
        printf '[switch]\nio = "%s"\n' "$io"
        for n in 1 2; do
            printf '[[port]]\nname = "vm%d"\ntap = "t%d"\nmac = "02:00:00:00:00:%02x"\nips = ["10.200.0.%d/24"]\n' "$n" "$n" "$n" "$n"
        done
    } > "$RUN/vswitch-peers-$io.toml"
    "$BIN" check-config "$RUN/vswitch-peers-$io.toml" >/dev/null
done
BASE_BIN=
if [ -n "$BASE_REV" ]; then
    rev=$(git rev-parse --verify "$BASE_REV^{commit}") || { echo "peers.sh: --baseline $BASE_REV: no such commit" >&2; exit 2; }
    git worktree remove --force "$RUN/base-src" 2>/dev/null || rm -rf "$RUN/base-src"
    git worktree add -q --detach "$RUN/base-src" "$rev"
    echo "peers.sh: building the baseline $BASE_REV ($rev) in $RUN/base-src" >&2
    (cd "$RUN/base-src" && CARGO_TARGET_DIR="$RUN/base-target" cargo build --release -q -p agent)
    BASE_BIN=$RUN/base-target/release/vswitch
    # its epoll worker: `io = "epoll"` where REV knows the setting, no `io` where it does not
    cp "$RUN/vswitch-peers-epoll.toml" "$RUN/vswitch-peers-base.toml"
    if ! "$BASE_BIN" check-config "$RUN/vswitch-peers-base.toml" >/dev/null 2>&1; then
        sed -i '/^io = "epoll"$/d' "$RUN/vswitch-peers-base.toml"
        "$BASE_BIN" check-config "$RUN/vswitch-peers-base.toml" >/dev/null
    fi
    printf '%s %s\n' "$BASE_REV" "$rev" > "$RUN/baseline.txt"
fi
# the config follows the variant topo.sh is bringing up (cmd = auto)
cat > "$RUN/switch-cmd.sh" <<EOS
#!/usr/bin/env bash
case \$(cat "$RUN/topo.variant") in
    cmd-epoll) io=epoll ;;
    cmd-uring) io=uring ;;
    cmd-base) exec "$BASE_BIN" run --config "$RUN/vswitch-peers-base.toml" --socket "$RUN/vswitch.sock" ;;
    *) io=auto ;;
esac
exec "$BIN" run --config "$RUN/vswitch-peers-\$io.toml" --socket "$RUN/vswitch.sock"
EOS
chmod +x "$RUN/switch-cmd.sh"
export SWITCH_CMD="$RUN/switch-cmd.sh"
variants=bridge,ovs-tap-tso,null-vnet,cmd-epoll,cmd-uring
[ -z "$BASE_REV" ] || variants=bridge,ovs-tap-tso,null-vnet,cmd-epoll,cmd-base,cmd-uring
[ ${#args[@]} -gt 0 ] || args=(--rounds 3 --duration 10 --pin --variants "$variants")
cleanup() {
    "$PEERS/cleanup.sh" >/dev/null 2>&1 || true
    [ -z "$BASE_REV" ] || git worktree remove --force "$RUN/base-src" 2>/dev/null || true
}
trap cleanup EXIT
python3 "$PEERS/bench.py" "${args[@]}"
