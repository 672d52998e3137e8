#!/usr/bin/env bash
# guests/smoke.sh [--cold] [--secs N] [--out DIR] — the by-hand smoke check of the QEMU guests.
#   1. guests/build.sh (with --cold: the cache dir is wiped first), timed, then again (cached)
#   2. `vswitch run` with two `netdev = "<tap>"` ports; guests g1 (QEMU opens its tap:
#      ifname=, vnet_hdr=on) and g2 (libvirt style: the tap fd is opened here and passed
#      with fd=) boot together on those taps; per guest: boot-to-agent time, time until
#      g1 pings g2, QEMU RSS; ping g1->g2; iperf3 g1->g2 and g2->g1 (offloads on, N s each)
#   3. the same two guests on a Linux bridge instead of the switch
# Everything it starts (vswitch, QEMU, the bridge) is stopped by PID / name on exit.
# Needs root, the vswitch release binary (built here with cargo if missing or stale).
# Addresses: 10.0.0.11/24 and 10.0.0.12/24 on the isolated taps/bridge only (no host address).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
VM=$HERE/vm.py
COLD=0 SECS=10 OUT=${TMPDIR:-/tmp}/vsg-smoke
while [ $# -gt 0 ]; do
    case $1 in
        --cold) COLD=1; shift ;;
        --secs) SECS=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        *) echo "smoke.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
CACHE=${VSWITCH_GUEST_CACHE:-/var/cache/vswitch-guests}
export VSWITCH_GUEST_RUN=${VSWITCH_GUEST_RUN:-/run/vswitch-guests-smoke}
mkdir -p "$OUT"
RES=$OUT/results.txt; : > "$RES"
say() { echo "$*" | tee -a "$RES"; }
now() { date +%s.%N; }
since() { printf '%.2f' "$(echo "$(now) - $1" | bc)"; }
TAP1=vsg-s1 TAP2=vsg-s2 BR=vsg-br0
MAC1=52:54:00:5e:00:01 MAC2=52:54:00:5e:00:02
IP1=10.0.0.11 IP2=10.0.0.12
VSPID=
cleanup() {
    "$VM" stop g1 g2 >/dev/null 2>&1 || true
    if [ -n "$VSPID" ] && kill -0 "$VSPID" 2>/dev/null; then kill "$VSPID"; wait "$VSPID" 2>/dev/null || true; fi
    ip link del "$BR" 2>/dev/null || true
}
trap cleanup EXIT

# ---- 1. build ---------------------------------------------------------------------------
if [ $COLD = 1 ]; then
    case $CACHE in /var/cache/vswitch-guests|/tmp/*) rm -rf "$CACHE" ;; *) echo "refusing to wipe $CACHE" >&2; exit 1 ;; esac
fi
t=$(now); "$HERE/build.sh" > "$OUT/build1.log" 2>&1; b1=$(since "$t")
t=$(now); "$HERE/build.sh" > "$OUT/build2.log" 2>&1; b2=$(since "$t")
say "build: first run ${b1} s ($( [ $COLD = 1 ] && echo cold || echo 'cache as found')), second run ${b2} s: $(tail -1 "$OUT/build2.log")"
say "cache: $(du -sh "$CACHE" | cut -f1) in $CACHE; images: $(cd "$CACHE" && du -ch vmlinux initrd.cpio.gz rootfs.squashfs | tail -1 | cut -f1) (vmlinux + initrd + rootfs)"
say "qemu: $(qemu-system-x86_64 --version | head -1); qemu-utils $(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null)"

(cd "$ROOT" && cargo build --release -p agent -q)
VSWITCH=$ROOT/target/release/vswitch

switch_cpu() { # user+sys CPU seconds of the vswitch process so far (0 without one)
    if [ -n "$VSPID" ]; then
        awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$VSPID/stat"
    else echo 0; fi
}
measure() { # label: boots g1/g2 (already started at $T0), then measures
    local label=$1 up1 up2 ping_t r1 r2
    up1=$("$VM" wait g1 -t 120 | awk '{print $4}')
    up2=$("$VM" wait g2 -t 120 | awk '{print $4}')
    # first successful ping g1 -> g2 (through the switch / bridge under test)
    until "$VM" exec g1 -t 5 "ping -c1 -W1 $IP2" >/dev/null 2>&1; do
        [ "$(echo "$(now) - $T0 > 90" | bc)" = 1 ] && { say "$label: g1 never reached g2"; return 1; }
    done
    ping_t=$(since "$T0")
    r1=$("$VM" info g1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["rss_kib"]//1024)')
    r2=$("$VM" info g2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["rss_kib"]//1024)')
    say "$label: boot to agent (network configured): g1 ${up1} s, g2 ${up2} s (started together); g1 pings g2 at ${ping_t} s"
    say "$label: QEMU RSS after boot: g1 ${r1} MiB, g2 ${r2} MiB (-m 128)"
    "$VM" exec g1 -t 30 "ping -c 20 -i 0.2 $IP2" > "$OUT/$label-ping.txt"
    say "$label: ping g1->g2 x20: $(grep -E 'packet loss' "$OUT/$label-ping.txt" | sed 's/, time.*//'); $(grep rtt "$OUT/$label-ping.txt")"
    "$VM" exec g2 "iperf3 -s -D"
    "$VM" exec g1 "iperf3 -s -D"
    sleep 0.5
    local cpu0; cpu0=$(switch_cpu)
    say "$label: host load before iperf3: $(cut -d' ' -f1-3 /proc/loadavg)"
    "$VM" exec g1 -t $((SECS + 30)) "iperf3 -c $IP2 -t $SECS -f m" > "$OUT/$label-iperf-g1g2.txt"
    "$VM" exec g2 -t $((SECS + 30)) "iperf3 -c $IP1 -t $SECS -f m" > "$OUT/$label-iperf-g2g1.txt"
    [ -n "$VSPID" ] && say "$label: vswitch CPU during the two iperf3 runs: $(echo "$(switch_cpu) - $cpu0" | bc) s for $((2 * SECS)) s of traffic"
    say "$label: iperf3 g1->g2 ${SECS}s: $(awk '/receiver/ {print $7, $8}' "$OUT/$label-iperf-g1g2.txt") (retr $(awk '/sender/ {print $9}' "$OUT/$label-iperf-g1g2.txt"))"
    say "$label: iperf3 g2->g1 ${SECS}s: $(awk '/receiver/ {print $7, $8}' "$OUT/$label-iperf-g2g1.txt") (retr $(awk '/sender/ {print $9}' "$OUT/$label-iperf-g2g1.txt"))"
    r1=$("$VM" info g1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["rss_kib"]//1024)')
    r2=$("$VM" info g2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["rss_kib"]//1024)')
    say "$label: QEMU RSS after iperf3: g1 ${r1} MiB, g2 ${r2} MiB"
    "$VM" exec g1 'ethtool -k eth0' | grep -E '^(tx-checksumming|tcp-segmentation-offload|generic-segmentation-offload):' | tr '\n' ' ' | sed "s/^/$label: g1 eth0 offloads: /" | tee -a "$RES"; echo | tee -a "$RES"
}

# ---- 2. through vswitch -------------------------------------------------------------------
cat > "$OUT/vswitch.toml" <<EOF
# smoke.sh: two QEMU guests whose taps QEMU (g1) or this script (g2, libvirt style) opened
[[port]]
name = "g1"
netdev = "$TAP1"
mac = "$MAC1"
ips = ["$IP1/24"]

[[port]]
name = "g2"
netdev = "$TAP2"
mac = "$MAC2"
ips = ["$IP2/24"]
EOF
"$VSWITCH" check-config "$OUT/vswitch.toml" > /dev/null
"$VSWITCH" run --config "$OUT/vswitch.toml" --socket "$OUT/vswitch.sock" 2> "$OUT/vswitch.log" &
VSPID=$!
sleep 0.5
kill -0 $VSPID || { cat "$OUT/vswitch.log"; exit 1; }
T0=$(now)
"$VM" start g1 --tap $TAP1 --mac $MAC1 --ip $IP1/24 | tee -a "$RES"
"$VM" start g2 --tap $TAP2 --mac $MAC2 --ip $IP2/24 --tap-mode fd | tee -a "$RES"
measure vswitch
"$VSWITCH" ctl --socket "$OUT/vswitch.sock" show ports > "$OUT/vswitch-ports.txt" 2>&1 || true
"$VSWITCH" ctl --socket "$OUT/vswitch.sock" show stats > "$OUT/vswitch-stats.txt" 2>&1 || true
"$VM" stop g1 g2 > /dev/null
kill "$VSPID"; wait "$VSPID" 2>/dev/null || true; VSPID=

# ---- 3. the same on a Linux bridge ---------------------------------------------------------
ip link add "$BR" type bridge
ip link set "$BR" up
T0=$(now)
"$VM" start g1 --tap $TAP1 --mac $MAC1 --ip $IP1/24 --bridge $BR | tee -a "$RES"
"$VM" start g2 --tap $TAP2 --mac $MAC2 --ip $IP2/24 --tap-mode fd --bridge $BR | tee -a "$RES"
measure bridge
"$VM" stop g1 g2 > /dev/null
ip link del "$BR"
say "logs and raw outputs: $OUT"
