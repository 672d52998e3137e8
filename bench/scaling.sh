#!/usr/bin/env bash
# Worker scaling: aggregate 64 B rate over 4 VM pairs with 1 and 2 workers (`[switch]
# workers`), on both engines (`io = "epoll" | "uring"`), and per-core efficiency (frames
# delivered per CPU-second of the switch process). One run; compare within it.
#
#   bench/scaling.sh [SECONDS=10] [ROUNDS=2]
#
# Root only. Creates 8 network namespaces sc<pid>v1..v8 (vm1->vm2, vm3->vm4, ... over taps the
# switch creates), runs trafgen (netsniff-ng) in the 4 senders at once with random UDP source
# ports (every frame its own flow, so the kernel spreads them over the tap queues), counts
# what the receivers' eth0 got, and removes everything it made on exit. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/scaling.sh: needs root" >&2; exit 1; }
DUR=${1:-10}
ROUNDS=${2:-2}
command -v trafgen >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq netsniff-ng >/dev/null
}
bash scripts/deps.sh >/dev/null
cargo build --release -q -p agent
BIN=$(pwd)/target/release/vswitch
TAG=sc$$
DIR=$(mktemp -d /tmp/vswitch-scaling.XXXXXX)
SW=""
cleanup() {
    [ -n "$SW" ] && kill "$SW" 2>/dev/null && wait "$SW" 2>/dev/null || true
    for i in $(seq 8); do ip netns del "${TAG}v$i" 2>/dev/null || true; done
    "$BIN" cleanup --config "$DIR/w1-epoll.toml" --socket "$DIR/sock" >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap cleanup EXIT
mac() { printf '02:00:00:00:%02x:%02x' "$1" "$2"; }
for w in 1 2; do
    for io in epoll uring; do
        {
            printf '[switch]\nstate_dir = "%s/state"\nio = "%s"\nworkers = %d\n' "$DIR" "$io" "$w"
            for i in $(seq 8); do
                printf '[[port]]\nname = "vm%d"\ntap = "%st%d"\nmac = "%s"\nips = ["10.230.0.%d/24"]\n' \
                    "$i" "$TAG" "$i" "$(mac 1 "$i")" "$i"
            done
        } > "$DIR/w$w-$io.toml"
    done
done
for i in $(seq 8); do ip netns add "${TAG}v$i"; done
for p in 1 3 5 7; do
    r=$((p + 1))
    cat > "$DIR/tg$p.cfg" <<EOF
{
  eth(da=$(mac 1 $r), sa=$(mac 1 $p), type=0x0800),
  ipv4(sa=10.230.0.$p, da=10.230.0.$r, ttl=64),
  udp(sp=drnd(), dp=9),
  fill(0x00, 18)
}
EOF
done
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rx() { ip netns exec "${TAG}v$1" cat /sys/class/net/eth0/statistics/rx_packets; }
CLK=$(getconf CLK_TCK)
run_one() {  # $1 = config name
    "$BIN" run --config "$DIR/$1.toml" --socket "$DIR/sock" > "$DIR/switch.log" 2>&1 &
    SW=$!
    for i in $(seq 8); do
        local t="${TAG}t$i"
        for _ in $(seq 100); do
            { ip link show "$t" >/dev/null 2>&1 || ip -n "${TAG}v$i" link show eth0 >/dev/null 2>&1; } && break
            sleep 0.05
        done
        if ip link show "$t" >/dev/null 2>&1; then
            ip link set "$t" netns "${TAG}v$i"
            ip -n "${TAG}v$i" link set "$t" name eth0
        fi
        ip -n "${TAG}v$i" link set eth0 up
        ip -n "${TAG}v$i" link set lo up
    done
    sleep 1
    local r0=0 r1=0 c0 c1 t0 t1
    for r in 2 4 6 8; do r0=$((r0 + $(rx $r))); done
    c0=$(ticks "$SW"); t0=$(date +%s.%N)
    local pids=()
    for p in 1 3 5 7; do
        ip netns exec "${TAG}v$p" timeout -s INT "$DUR" trafgen -o eth0 -i "$DIR/tg$p.cfg" \
            -P 1 --no-sock-mem -Q >/dev/null 2>&1 &
        pids+=($!)
    done
    wait "${pids[@]}" 2>/dev/null || true
    sleep 0.2
    c1=$(ticks "$SW"); t1=$(date +%s.%N)
    for r in 2 4 6 8; do r1=$((r1 + $(rx $r))); done
    local workers
    workers=$(grep -o 'workers=[0-9]*' "$DIR/switch.log" | head -1 | cut -d= -f2)
    kill "$SW"; wait "$SW" 2>/dev/null || true; SW=""
    # the taps persist (in the namespaces): delete them, the next config makes its own
    # (a tap made with one queue cannot get a second)
    "$BIN" cleanup --config "$DIR/$1.toml" --socket "$DIR/sock" >/dev/null
    python3 - "$1" "$r0" "$r1" "$c0" "$c1" "$t0" "$t1" "$CLK" "${workers:-?}" <<'EOF'
import sys
name, r0, r1, c0, c1, t0, t1, clk, w = sys.argv[1:]
dt = float(t1) - float(t0)
pps = (int(r1) - int(r0)) / dt
cores = (int(c1) - int(c0)) / int(clk) / dt
eff = pps / cores if cores > 0 else 0
print(f"| {name} | {w} | {pps/1e3:,.0f}k | {cores:.2f} | {eff/1e3:,.0f}k |", flush=True)
EOF
}
echo "| config | workers | 64 B delivered/s (4 pairs) | switch CPU (cores) | frames per CPU-second |"
echo "|---|---|---|---|---|"
for round in $(seq "$ROUNDS"); do
    order=(w1-epoll w2-epoll w1-uring w2-uring)
    [ $((round % 2)) -eq 0 ] && order=(w2-uring w1-uring w2-epoll w1-epoll)
    for c in "${order[@]}"; do run_one "$c"; done
done
