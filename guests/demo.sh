#!/usr/bin/env bash
# guests/demo.sh — the by-hand demo with real guests: one command boots three QEMU guests on
# `vswitch run` and leaves them running, with instructions to log in and to watch `show vips`.
#
#   guests/demo.sh [--dir D]            build (guests/build.sh, cargo build --release -p agent),
#                                       start the switch and boot g1, g2, g3; leave them running
#   guests/demo.sh --status [--dir D]   the guests (vm.py list), `show vips`, the instructions
#   guests/demo.sh --start gN [--dir D] (re)boot one guest with the same settings, e.g. after a
#                                       `kill -9` of its QEMU; g1/g2 start keepalived again
#   guests/demo.sh --stop [--dir D]     stop the guests and the switch (by their recorded PIDs)
#                                       and remove the state dir; nothing running is fine
#
# The demo (10.77.0.0/24, only on the guests' taps; the host gets no address):
#   g1  10.77.0.11  52:54:00:77:00:01  tap vsd-g1 (libvirt style: the tap fd is passed to QEMU,
#                                      the tap vanishes when QEMU dies)  keepalived prio 150
#   g2  10.77.0.12  52:54:00:77:00:02  tap vsd-g2 (the same)              keepalived prio 100
#   g3  10.77.0.13  52:54:00:77:00:03  tap vsd-g3 (QEMU opens it: ifname=)  the client
#   VIP 10.77.0.100 ("web" in the switch: active-passive, candidates g1 and g2); keepalived
#   VRRP multicast, virtual_router_id 77, advert_int 1, preempt on. g1 and g2 run a UDP echo
#   server on port 7777 that answers "<payload> <hostname>"; g3 has `vip-probe`, which sends
#   a datagram to the VIP every 100 ms and prints who answered.
#
# State dir (default /run/vswitch-guest-demo): vswitch.toml, vswitch.log, vswitch.pid,
# vswitch.sock, boot-gN.sh (each guest's boot command), instructions.txt and guests/ (the
# vm.py state: VSWITCH_GUEST_RUN=D/guests). A second run stops the demo in the same dir first.
# If a step fails, the script prints the relevant log tails and stops what it started.
# Env: VSWITCH_GUEST_CACHE (the images, as for build.sh and vm.py), VSWITCH_DEMO_BOOT_TIMEOUT
# (seconds to wait for each guest's agent, default 90), VSWITCH_BIN (use this switch binary
# instead of building target/release/vswitch; the test suite passes its own).
# Needs root. Every guest is a TCG QEMU process: ~280 MiB RSS each, boot ~5-8 s.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
VM=$HERE/vm.py
VSWITCH=${VSWITCH_BIN:-$ROOT/target/release/vswitch}
ME=guests/demo.sh

ARGS="$*"
DIR=/run/vswitch-guest-demo
ACTION=up START_NAME=
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case $1 in
        --dir) [ $# -ge 2 ] || { echo "$ME: --dir needs a directory" >&2; exit 2; }; DIR=$2; shift 2 ;;
        --dir=*) DIR=${1#--dir=}; shift ;;
        --stop) ACTION=stop; shift ;;
        --status) ACTION=status; shift ;;
        --start) [ $# -ge 2 ] || { echo "$ME: --start needs a guest name (g1, g2 or g3)" >&2; exit 2; }
                 ACTION=start START_NAME=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "$ME: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ "$(id -u)" != 0 ]; then
    echo "$ME: must be run as root (it creates taps, starts QEMU and the switch): sudo $0${ARGS:+ $ARGS}" >&2
    exit 1
fi
case $DIR in /*) ;; *) DIR=$PWD/$DIR ;; esac
DIR=${DIR%/}
[ -n "$DIR" ] || { echo "$ME: refusing --dir /" >&2; exit 2; }
MARK=$DIR/.vswitch-guest-demo
SOCK=$DIR/vswitch.sock CONF=$DIR/vswitch.toml SWLOG=$DIR/vswitch.log SWPID=$DIR/vswitch.pid
export VSWITCH_GUEST_RUN=$DIR/guests

# ---- the demo's settings ------------------------------------------------------------------
NAMES=(g1 g2 g3)
declare -A IP=([g1]=10.77.0.11 [g2]=10.77.0.12 [g3]=10.77.0.13)
declare -A MAC=([g1]=52:54:00:77:00:01 [g2]=52:54:00:77:00:02 [g3]=52:54:00:77:00:03)
declare -A TAP=([g1]=vsd-g1 [g2]=vsd-g2 [g3]=vsd-g3)
declare -A TAPMODE=([g1]=fd [g2]=fd [g3]=ifname)
declare -A PRIO=([g1]=150 [g2]=100)
declare -A STATE=([g1]=MASTER [g2]=BACKUP)
VIP=10.77.0.100 VRID=77 ECHO_PORT=7777 VIPNAME=web
BOOT_TIMEOUT=${VSWITCH_DEMO_BOOT_TIMEOUT:-90} # seconds per guest, until its agent answers

T0=${EPOCHREALTIME/./}
secs_since() { local d=$(( ${EPOCHREALTIME/./} - $1 )); printf '%d.%d' $((d / 1000000)) $((d % 1000000 / 100000)); }
elapsed() { secs_since "$T0"; }
log() { printf '[demo %5ss] %s\n' "$(elapsed)" "$*"; }
die() { echo "$ME: $*" >&2; exit 1; }
# the --dir option to repeat in printed commands (nothing for the default dir)
DIROPT=
[ "$DIR" = /run/vswitch-guest-demo ] || DIROPT=" --dir $DIR"

# ---- stop / status ------------------------------------------------------------------------
guest_pid() { # NAME -> the QEMU PID vm.py recorded ("" if none or not running)
    "$VM" info "$1" 2>/dev/null | python3 -c 'import json,sys
i = json.load(sys.stdin)
print(i["pid"] if i["alive"] else "")' 2>/dev/null || true
}
switch_pid() { # the running switch's PID ("" if none): PID file checked against /proc/PID/cmdline
    local pid
    pid=$(cat "$SWPID" 2>/dev/null) || return 0
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    if { tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null | grep -q "vswitch.* run --config $CONF"; then
        echo "$pid"
    fi
}
do_stop() {
    if [ ! -e "$DIR" ]; then
        echo "$ME: no demo in $DIR (nothing to stop)"
        return 0
    fi
    if [ ! -e "$MARK" ]; then
        [ -z "$(ls -A "$DIR")" ] || die "$DIR exists but is not a demo state dir (no $MARK); not touching it"
    fi
    local n pid i
    if [ -d "$VSWITCH_GUEST_RUN" ]; then
        for n in "$VSWITCH_GUEST_RUN"/*/; do
            n=$(basename "$n")
            [ -e "$VSWITCH_GUEST_RUN/$n/info.json" ] || continue
            "$VM" stop "$n" || true # by the recorded PID, checked against /proc/PID/cmdline
        done
    fi
    pid=$(switch_pid)
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do [ -n "$(switch_pid)" ] || break; sleep 0.1; done
        if [ -n "$(switch_pid)" ]; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.2; fi
        echo "switch stopped (pid $pid)"
    fi
    # the taps belong to the guests' QEMUs (fd= or QEMU-created ifname=): they go with them
    for n in "${NAMES[@]}"; do
        for ((i = 0; i < 30; i++)); do [ -e "/sys/class/net/${TAP[$n]}" ] || break; sleep 0.1; done
        if [ -e "/sys/class/net/${TAP[$n]}" ]; then
            echo "$ME: warning: ${TAP[$n]} is still there (not created by this demo?)" >&2
        fi
    done
    rm -rf "$DIR"
    echo "demo stopped; $DIR removed"
}
show_vips() { "$VSWITCH" ctl --socket "$SOCK" show vips; }
do_status() {
    [ -e "$MARK" ] || { echo "$ME: no demo in $DIR"; return 1; }
    local pid; pid=$(switch_pid)
    echo "== switch: $([ -n "$pid" ] && echo "pid $pid" || echo "NOT RUNNING"), log $SWLOG"
    echo "== guests (VSWITCH_GUEST_RUN=$VSWITCH_GUEST_RUN $VM list)"
    "$VM" list
    echo "== vswitch ctl show vips"
    [ -n "$pid" ] && show_vips
    echo "== instructions: $DIR/instructions.txt"
}

# ---- what goes into the guests ----------------------------------------------------------
udp_echo_py() { # the echo server in g1/g2 (python3-minimal: socket, struct, sys, time)
    cat <<'EOF'
#!/usr/bin/python3
# udp-echo [PORT]: answers every datagram with "<payload> <hostname>", from the address the
# datagram was sent to (IP_PKTINFO), so an answer to the VIP comes from the VIP. Failed
# sends (the VIP just left this guest, ...) are skipped; it never dies on OSError.
import socket, struct, sys, time
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
port = int(sys.argv[1]) if len(sys.argv) > 1 else 7777
name = socket.gethostname().encode()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
s.bind(("0.0.0.0", port))
print("udp-echo: listening on udp port %d as %s" % (port, name.decode()), flush=True)
while True:
    try:
        data, anc, _flags, peer = s.recvmsg(2048, socket.CMSG_SPACE(12))
    except OSError:
        time.sleep(0.05)
        continue
    reply = data.rstrip(b"\r\n") + b" " + name
    pktinfo = None
    for level, kind, val in anc:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(val) >= 12:
            # struct in_pktinfo {ifindex; spec_dst; addr}: answer from addr (our address
            # the datagram was sent to)
            pktinfo = struct.pack("i4s4s", 0, val[8:12], b"\0\0\0\0")
    try:
        if pktinfo is None:
            raise OSError
        s.sendmsg([reply], [(socket.IPPROTO_IP, IP_PKTINFO, pktinfo)], 0, peer)
    except OSError:
        try:
            s.sendto(reply, peer)
        except OSError:
            pass
EOF
}
vip_probe_py() { # the client in g3
    cat <<EOF
#!/usr/bin/python3
"""vip-probe [-c COUNT] [-i SECS] [-q] [ADDR [PORT]]

Sends the UDP datagram "probe N" to ADDR:PORT (default $VIP:$ECHO_PORT, the VIP) every SECS
(default 0.1) and prints who answered: the echo servers in g1 and g2 append their hostname.
A line starting with *** marks a change of the answering guest, with the gap in between.
Ends after COUNT probes (default: never) or on Ctrl-C, with a summary.
  -q  print only the changes and the summary"""
EOF
    cat <<'EOF'
import argparse, select, socket, sys, time
ap = argparse.ArgumentParser(usage=__doc__.split("\n")[0], description=__doc__.split("\n", 2)[2],
                             formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("addr", nargs="?", default="10.77.0.100")
ap.add_argument("port", nargs="?", type=int, default=7777)
ap.add_argument("-c", "--count", type=int, default=0)
ap.add_argument("-i", "--interval", type=float, default=0.1)
ap.add_argument("-q", "--quiet", action="store_true")
a = ap.parse_args()


def stamp(t):
    return time.strftime("%H:%M:%S", time.localtime(t)) + ".%03d" % int(t % 1 * 1000)


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sent, unanswered, per = 0, 0, {}
last_who, last_ok, streak = None, None, 0
say("vip-probe: udp %s:%d every %.0f ms (Ctrl-C: summary)" % (a.addr, a.port, a.interval * 1000))
try:
    seq = 0
    while not a.count or seq < a.count:
        seq += 1
        t0 = time.time()
        deadline = t0 + a.interval
        try:
            s.sendto(b"probe %d" % seq, (a.addr, a.port))
        except OSError as e:
            say("%s seq=%d send failed: %s" % (stamp(t0), seq, e))
        sent += 1
        who = src = None
        while who is None:
            left = deadline - time.time()
            if left <= 0 or not select.select([s], [], [], left)[0]:
                break
            try:
                data, src = s.recvfrom(2048)
            except OSError:
                continue
            f = data.decode(errors="replace").split()
            if len(f) == 3 and f[0] == "probe" and f[1] == str(seq):
                who, rtt = f[2], (time.time() - t0) * 1000
        if who is None:
            unanswered += 1
            streak += 1
            if a.quiet and streak == 1:
                say("%s seq=%d no answer (answers stopped)" % (stamp(t0), seq))
            elif not a.quiet:
                say("%s seq=%d no answer" % (stamp(t0), seq))
        else:
            per[who] = per.get(who, 0) + 1
            if last_who is None:
                say("*** %s first answer from %s" % (stamp(t0), who))
            elif who != last_who:
                say("*** %s now answered by %s (was %s): %d unanswered, %.1f s from the last %s answer"
                    % (stamp(t0), who, last_who, streak, t0 - last_ok, last_who))
            elif streak:
                say("*** %s answers again from %s: %d unanswered, %.1f s without an answer"
                    % (stamp(t0), who, streak, t0 - last_ok))
            if not a.quiet:
                say("%s seq=%d %s (from %s) %.1f ms" % (stamp(t0), seq, who, src[0], rtt))
            last_who, last_ok, streak = who, t0, 0
        left = deadline - time.time()
        if left > 0:
            time.sleep(left)
except KeyboardInterrupt:
    pass
say("vip-probe: %d sent; %s; unanswered %d"
    % (sent, ", ".join("%s answered %d" % kv for kv in sorted(per.items())) or "no answers", unanswered))
EOF
}
write_boot() { # NAME: the guest's boot command (vm.py --cmd; run by sh once eth0 is up)
    local n=$1 f=$DIR/boot-$1.sh
    {
        echo "# $ME: boot command of $n (run by the guest's init once eth0 is up; log /run/vmcmd.log)"
        echo "set -e"
        if [ "$n" = g3 ]; then
            echo "cat > /usr/local/bin/vip-probe <<'VSD_EOF'"
            vip_probe_py
            echo "VSD_EOF"
            echo "chmod +x /usr/local/bin/vip-probe"
            echo "echo 'g3: the client; run vip-probe'"
        else
            cat <<EOF
cat > /run/keepalived.conf <<'VSD_EOF'
global_defs {
    router_id $n
}
vrrp_instance $VIPNAME {
    state ${STATE[$n]}
    interface eth0
    virtual_router_id $VRID
    priority ${PRIO[$n]}
    advert_int 1
    # preempt is on (keepalived's default, no nopreempt): g1 takes the VIP back on return
    virtual_ipaddress {
        $VIP/24 dev eth0
    }
}
VSD_EOF
cat > /usr/local/bin/udp-echo <<'VSD_EOF'
$(udp_echo_py)
VSD_EOF
cat > /usr/local/bin/ka-start <<'VSD_EOF'
#!/bin/sh
# ka-start: (re)start keepalived with /run/keepalived.conf, unless it runs already
if [ -s /run/keepalived.pid ] && kill -0 "\$(cat /run/keepalived.pid)" 2>/dev/null; then
    echo "keepalived already running (pid \$(cat /run/keepalived.pid))"
    exit 0
fi
rm -f /run/keepalived.pid /run/vrrp.pid
nohup keepalived -f /run/keepalived.conf -p /run/keepalived.pid -r /run/vrrp.pid --dont-fork --log-console >> /run/keepalived.log 2>&1 < /dev/null &
echo "keepalived started (pid \$!), log /run/keepalived.log"
VSD_EOF
chmod +x /usr/local/bin/udp-echo /usr/local/bin/ka-start
nohup /usr/local/bin/udp-echo $ECHO_PORT > /run/udp-echo.log 2>&1 < /dev/null &
/usr/local/bin/ka-start
EOF
        fi
    } > "$f"
}

# ---- starting things ------------------------------------------------------------------------
STEP="" FAILED_GUEST=""
write_config() {
    cat > "$CONF" <<EOF
# $ME: the switch for the by-hand guest demo. Ports bind to the host side of the guests'
# taps (netdev =): QEMU (or vm.py, libvirt style) owns the taps; the switch attaches when
# they appear and re-attaches within a second after a guest is re-booted.

[switch]
state_dir = "$DIR/state"   # the demo's own VIP state file, not the host's /var/lib/vswitch
EOF
    local n
    for n in "${NAMES[@]}"; do
        cat >> "$CONF" <<EOF

[[port]]
name = "$n"
netdev = "${TAP[$n]}"
mac = "${MAC[$n]}"
ips = ["${IP[$n]}/24"]
EOF
    done
    cat >> "$CONF" <<EOF

# keepalived in g1 (priority 150) and g2 (100) share $VIP (vrid $VRID). No initial owner:
# keepalived's first gratuitous ARP decides.
[[vip]]
name = "$VIPNAME"
addresses = ["$VIP"]
mode = "active-passive"
candidates = ["g1", "g2"]
EOF
}
start_switch() {
    "$VSWITCH" check-config "$CONF" > "$DIR/check-config.txt"
    # In its own session, so it survives this script and the terminal, and with no file
    # descriptor but stdin/stdout/stderr: an inherited one (say the lock fd of a
    # `flock LOCK guests/demo.sh`) would otherwise stay held for as long as the demo runs.
    NO_COLOR=1 python3 -c 'import subprocess, sys
with open(sys.argv[1], "wb") as log:
    p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                         start_new_session=True, close_fds=True)
print(p.pid)' "$SWLOG" "$VSWITCH" run --config "$CONF" --socket "$SOCK" > "$SWPID"
    local i
    for ((i = 0; i < 50; i++)); do
        [ -n "$(switch_pid)" ] || die "vswitch run exited at once"
        [ -S "$SOCK" ] && "$VSWITCH" ctl --socket "$SOCK" show ports > /dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "the switch's control socket $SOCK did not come up in 5 s"
}
start_guest() { # NAME: boot it (vm.py start), prints vm.py's line
    local n=$1 line
    FAILED_GUEST=$n
    if [ -e "/sys/class/net/${TAP[$n]}" ]; then
        die "interface ${TAP[$n]} still exists: another demo with a different --dir? ($ME --stop --dir THAT_DIR)"
    fi
    write_boot "$n"
    line=$("$VM" start "$n" --tap "${TAP[$n]}" --tap-mode "${TAPMODE[$n]}" --mac "${MAC[$n]}" \
        --ip "${IP[$n]}/24" --cmd "$DIR/boot-$n.sh") || die "vm.py start $n failed"
    log "started $line (tap mode ${TAPMODE[$n]})"
    FAILED_GUEST=
}
wait_guest() { # NAME: until its agent answers and its boot command has finished
    local n=$1 up i rc
    FAILED_GUEST=$n
    up=$("$VM" wait "$n" -t "$BOOT_TIMEOUT") || die "guest $n did not boot (its agent did not answer in $BOOT_TIMEOUT s)"
    log "$up"
    for ((i = 0; i < 60; i++)); do
        rc=$("$VM" exec "$n" -t 20 'cat /run/vmcmd.rc 2>/dev/null' 2>/dev/null) || true
        [ -n "$rc" ] && break
        sleep 0.5
    done
    [ "$rc" = 0 ] || die "the boot command of $n failed (rc=${rc:-none after 30 s}): $("$VM" exec "$n" 'cat /run/vmcmd.log' 2>&1 | tail -5)"
    FAILED_GUEST=
}
vip_owner() { # the port(s) owning $VIPNAME, comma separated, "none" or "" (switch not answering)
    "$VSWITCH" ctl --socket "$SOCK" --json show vips 2>/dev/null | python3 -c 'import json,sys
for v in json.load(sys.stdin):
    if v["name"] == sys.argv[1]:
        print(",".join(o["port"] for o in v["owners"]) or "none")' "$VIPNAME" 2>/dev/null || true
}
wait_owner() { # PORT SECS: until PORT owns the VIP; returns 1 on timeout
    local want=$1 secs=$2 t=${EPOCHREALTIME/./} o
    while :; do
        o=$(vip_owner)
        [ "$o" = "$want" ] && return 0
        (( ${EPOCHREALTIME/./} - t < secs * 1000000 )) || return 1
        sleep 0.5
    done
}
failure_report() {
    local n f
    echo "---- switch log ($SWLOG), last 15 lines" >&2
    tail -n 15 "$SWLOG" 2>/dev/null | sed 's/^/  /' >&2 || true
    for n in "${NAMES[@]}"; do
        [ -d "$VSWITCH_GUEST_RUN/$n" ] || continue
        [ -n "$FAILED_GUEST" ] && [ "$FAILED_GUEST" != "$n" ] && continue
        echo "---- $n: $("$VM" list 2>/dev/null | grep "^$n " | tr -s ' ')" >&2
        f=$VSWITCH_GUEST_RUN/$n/qemu.log
        if [ -s "$f" ]; then echo "---- $n: qemu.log, last 10 lines" >&2; tail -n 10 "$f" | sed 's/^/  /' >&2; fi
        echo "---- $n: console (vm.py log $n), last 15 lines" >&2
        "$VM" log "$n" 2>/dev/null | tr -d '\r' | tail -n 15 | sed 's/^/  /' >&2 || true
        if [ "$n" != g3 ] && [ -n "$(guest_pid "$n")" ]; then
            echo "---- $n: /run/keepalived.log, last 10 lines" >&2
            "$VM" exec "$n" -t 10 'tail -n 10 /run/keepalived.log 2>/dev/null || echo "(none yet)"' 2>&1 |
                sed 's/^/  /' >&2 || true
        fi
    done
}
on_exit() {
    local rc=$?
    [ "$rc" = 0 ] && return
    [ -n "$STEP" ] || exit "$rc"
    trap - INT TERM
    if [ "$rc" = 130 ] || [ "$rc" = 143 ]; then
        echo "$ME: interrupted while: $STEP" >&2
    else
        echo "$ME: FAILED while: $STEP (exit $rc)" >&2
        failure_report || true
    fi
    if [ "$ACTION" = up ]; then
        echo "$ME: stopping what it started" >&2
        do_stop >&2 || true
    else
        echo "$ME: the rest of the demo is left as it is; $ME --status$DIROPT / --stop$DIROPT" >&2
    fi
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

instructions() {
    local p1 p2 p3 sp
    p1=$(guest_pid g1) p2=$(guest_pid g2) p3=$(guest_pid g3) sp=$(switch_pid)
    cat <<EOF
== vswitch guest demo: 3 QEMU guests on the switch (state dir $DIR)
   switch  pid ${sp:--}   log $SWLOG   config $CONF
   g1      pid ${p1:--}   10.77.0.11  tap vsd-g1 (fd)      keepalived prio 150 + udp-echo :$ECHO_PORT
   g2      pid ${p2:--}   10.77.0.12  tap vsd-g2 (fd)      keepalived prio 100 + udp-echo :$ECHO_PORT
   g3      pid ${p3:--}   10.77.0.13  tap vsd-g3 (ifname)  the client: vip-probe
   VIP $VIPNAME = $VIP (active-passive, candidates g1 g2)

All commands below are run as root from the repository root:
   cd $ROOT
   export VSWITCH_GUEST_RUN=$VSWITCH_GUEST_RUN

1. Watch the VIP's owner (in a second terminal):
   watch -n 0.5 target/release/vswitch ctl --socket $SOCK show vips

2. Log in to the client (serial console, root shell; Ctrl-] quits) and probe the VIP:
   guests/vm.py console g3
     vip-probe          # UDP to $VIP:$ECHO_PORT every 100 ms, prints who answered; Ctrl-C: summary
     vip-probe -q       # only the changes of the answering guest and the gaps
   or without logging in (output when it ends):  guests/vm.py exec g3 -t 60 'vip-probe -c 200'
   Other guests the same way: guests/vm.py console g1  (ip -br addr; tail /run/keepalived.log)

3. Fail over, while vip-probe runs:
   graceful (keepalived stops, g2 takes over at once):
     guests/vm.py exec g1 'kill \$(cat /run/keepalived.pid)'
   crash (g1's QEMU dies, its tap vsd-g1 vanishes; g2 takes over after ~3 s of missing adverts):
     kill -9 ${p1:-<g1 QEMU pid>}

4. Fail back (g1 has the higher priority and preempts):
   after the graceful one:  guests/vm.py exec g1 ka-start
   after the crash:         $ME --start g1$DIROPT

5. Status and stop:
   $ME --status$DIROPT
   $ME --stop$DIROPT        # stops the guests and the switch, removes $DIR
EOF
}

# ---- main -------------------------------------------------------------------------------------
case $ACTION in
    stop) do_stop; exit 0 ;;
    status) do_status; exit ;;
esac

if [ "$ACTION" = start ]; then
    [[ " ${NAMES[*]} " == *" $START_NAME "* ]] || die "--start: unknown guest $START_NAME (g1, g2 or g3)"
    [ -e "$MARK" ] || die "no demo in $DIR: run $ME$DIROPT first"
    [ -n "$(switch_pid)" ] || die "the demo's switch is not running ($SWPID); $ME --stop$DIROPT, then $ME$DIROPT"
    n=$START_NAME
    STEP="re-booting $n"
    if [ -n "$(guest_pid "$n")" ]; then
        log "stopping the running $n first"
        "$VM" stop "$n" > /dev/null
        for ((i = 0; i < 30; i++)); do [ -e "/sys/class/net/${TAP[$n]}" ] || break; sleep 0.1; done
    fi
    start_guest "$n"
    wait_guest "$n"
    if [ "$n" != g3 ]; then
        log "$n: $("$VM" exec "$n" 'pidof keepalived > /dev/null && echo keepalived running; pidof -x udp-echo > /dev/null && echo udp-echo running' | tr '\n' ' ')"
        if [ "$n" = g1 ]; then
            if wait_owner g1 30; then log "show vips: g1 owns $VIPNAME again (failback)"
            else log "show vips: $VIPNAME is owned by $(vip_owner) (g1 did not take it back in 30 s)"; fi
        fi
    fi
    STEP=""
    instructions > "$DIR/instructions.txt"
    echo
    echo "$n re-booted: pid $(guest_pid "$n"). Instructions (also in $DIR/instructions.txt):"
    echo
    cat "$DIR/instructions.txt"
    exit 0
fi

# ACTION=up
if [ -e "$MARK" ]; then
    log "a demo is (or was) running in $DIR: stopping it first"
    do_stop
fi
[ ! -e "$DIR" ] || [ -z "$(ls -A "$DIR")" ] || die "$DIR exists and is not a demo state dir; use another --dir"
for n in "${NAMES[@]}"; do
    if [ -e "/sys/class/net/${TAP[$n]}" ]; then
        die "interface ${TAP[$n]} already exists: another demo with a different --dir? ($ME --stop --dir THAT_DIR)"
    fi
done
STEP="building the guest images (guests/build.sh)"
log "$STEP"
"$HERE/build.sh"
STEP="building the switch (cargo build --release -p agent)"
log "$STEP"
if [ -n "${VSWITCH_BIN:-}" ]; then
    [ -x "$VSWITCH_BIN" ] || die "VSWITCH_BIN=$VSWITCH_BIN is not an executable"
    log "using VSWITCH_BIN=$VSWITCH (no build)"
elif command -v cargo > /dev/null; then
    (cd "$ROOT" && cargo build --release -p agent)
elif [ -x "$VSWITCH" ]; then
    log "cargo is not in root's PATH; using the existing $VSWITCH"
else
    die "cargo is not in root's PATH and $VSWITCH does not exist: build it first (cargo build --release -p agent)"
fi

STEP="starting the switch"
mkdir -p "$DIR" "$VSWITCH_GUEST_RUN"
: > "$MARK"
write_config
start_switch
log "switch running: pid $(switch_pid), config $CONF, socket $SOCK, log $SWLOG"

STEP="booting the guests"
TB=${EPOCHREALTIME/./}
for n in "${NAMES[@]}"; do start_guest "$n"; done
STEP="waiting for the guests' agents and boot commands"
for n in "${NAMES[@]}"; do wait_guest "$n"; done
log "all 3 guests up, $(secs_since "$TB") s after the first QEMU start; ports: $("$VSWITCH" ctl --socket "$SOCK" show ports | awk 'NR > 1 {printf "%s %s  ", $1, $4}')"

STEP="waiting (60 s) until keepalived in g1 owns the VIP (show vips: $VIPNAME owned by g1)"
FAILED_GUEST=
if ! wait_owner g1 60; then
    echo "---- show vips" >&2; show_vips >&2 || true
    die "g1 did not become the owner of $VIPNAME in 60 s (owner: $(vip_owner))"
fi
log "show vips: g1 owns $VIPNAME ($VIP)"

STEP="checking that g3 reaches the VIP (vip-probe in g3)"
FAILED_GUEST=g3
for ((i = 0; ; i++)); do
    out=$("$VM" exec g3 -t 20 'vip-probe -q -c 10' 2>&1) || true
    sum=$(echo "$out" | tail -n 1)
    [[ $sum == *"g1 answered"* ]] && break
    (( i < 4 )) || { echo "$out" >&2; die "g3 gets no answer from g1 through the VIP"; }
    sleep 1
done
log "g3 -> $VIP:$ECHO_PORT: ${sum#vip-probe: }"
STEP="" FAILED_GUEST=

instructions > "$DIR/instructions.txt"
echo
show_vips | sed 's/^/   /'
echo
cat "$DIR/instructions.txt"
