#!/usr/bin/env python3
"""bench/failover.py - keepalived VIP failover: Linux bridge vs vswitch, in ONE run.

    sudo python3 bench/failover.py [--reps 3] [--profiles default,fast]
                                   [--modes term,kill,crash] [--extras stale-cache,lost-garps]
                                   [--variants bridge,vswitch[,vswitch-nostep]] [--transport multicast|unicast]
                                   [--no-step-down] [--quick] [--out DIR] [--build]
    --quick: 1 rep, default profile, term + kill only, no extras (for development).

Root only. Everything happens inside network namespaces this script creates (fo-vm1..3,
10.210.0.N/24, MAC 02:00:00:10:00:0N) and is removed again, also on failure and Ctrl-C.

Per run, for one variant:
  bridge   a Linux bridge fo-br0 in the root namespace, veths fo-pvN <-> fo-vmN:eth0;
  vswitch-nostep  the same with `step_down_on_crash = false` (only changes `crash`);
  vswitch  target/release/vswitch (copied into the results dir first, so a concurrent
           rebuild cannot swap it mid-run) with a generated config: ports vm1..vm3 as `tap`
           bindings fo-t1..3, moved into the namespaces as eth0; VIP group `web`
           10.210.0.100, candidates vm1 and vm2, active-passive; --log-format json, its
           stderr kept (vip_moved events carry reaction_us and claim_rx_ns).
keepalived runs in fo-vm1 (MASTER, priority 150) and fo-vm2 (BACKUP, 100) with private pid
files and VIP 10.210.0.100/24; a UDP responder bound to the VIP in vm1 and vm2 answers
with its name; vm3 probes the VIP at 100 Hz and records per probe: answered or lost, and
by whom. tcpdump in vm2 records ARP (the new master's GARPs, and vm1's on failback).

Failure modes (applied to vm1 after `pre` seconds; `fail` seconds later vm1 comes back and
preempts, priority 150 > 100 - the failback phase, `back` seconds):
  term   SIGTERM to keepalived (graceful: priority-0 advert, VIP removed)
  kill   SIGKILL to keepalived's parent and VRRP child: the VIP stays configured on vm1
  crash  the VM dies: bridge: fo-pv1 down; vswitch: `ip -n fo-vm1 link del eth0` (the tap);
         plus SIGKILL of keepalived. vswitch resigns for the dead master (a priority-0 copy
         of its last advert to vm2, `step_down_on_crash`, on unless --no-step-down), so vm2
         takes over after its skew time; on the bridge vm2 waits for its master-down timer. Failback: port up / `ip tuntap add fo-t1` (the switch
         re-attaches it), moved back into vm1, then keepalived restarted.
Extras ("peers get it wrong"), with the failure mode --extra-mode (default term):
  stale-cache  before the failure vm3 pins the VIP's ARP entry to vm1's MAC (nud permanent)
  lost-garps   keepalived with garp_master_repeat 1 and garp_master_delay 0 (one GARP per
               transition, no second burst); during the failover window an nftables rule
               in vm3 (arp family, input hook) drops every gratuitous ARP for the VIP, so
               vm3 never hears of the move - keepalived's single GARP and, with vswitch, the
               switch's own announcement too. Without nft: the pinned-entry fallback (as
               stale-cache), recorded as such in the results.
Profiles: default = VRRPv2, advert_int 1, everything else keepalived's defaults;
          fast    = VRRPv3, advert_int 0.1.

Per run and phase: outage ms (the longest run of unanswered probes, + one probe interval),
probes lost, when the new owner first answered, when the old owner last answered, when
the new owner's first GARP was on the wire (tcpdump in vm2), and for vswitch the switch's
reaction_us (GARP arrival -> new owner installed) and when it logged the move. All times
are ms from the failure (failover) or from the start of restoring vm1 (failback).

Output (in --out, default $TMPDIR/vswitch-failover/<stamp>): results.jsonl (one JSON line
per run), summary.md (median [min..max] per variant x profile x scenario), runs/<tag>/ (the
probe record, switch log, keepalived logs, ARP capture of each run). The summary is also
printed. `--summarize FILE.jsonl` re-renders a summary.
"""
import argparse
import json
import os
import select
import shutil
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PFX = "fo"
NS = {i: f"{PFX}-vm{i}" for i in (1, 2, 3)}
BR = f"{PFX}-br0"
PV = {i: f"{PFX}-pv{i}" for i in (1, 2, 3)}
TAP = {i: f"{PFX}-t{i}" for i in (1, 2, 3)}
SUBNET = "10.210.0"
VIP = f"{SUBNET}.100"
UDP_PORT = 7777
HZ = 100.0
PERIOD = 1.0 / HZ
VRID = 51


def ip_of(i):
    return f"{SUBNET}.{i}"


def mac_of(i):
    return f"02:00:00:10:00:{i:02x}"


MAC2VM = {mac_of(i): f"vm{i}" for i in (1, 2, 3)}

PROFILES = {
    # settle: seconds after vm1 became MASTER before the probe starts (keepalived's second
    # GARP burst comes garp_master_delay = 5 s after the transition).
    "default": dict(vrrp_version=2, adv="1", pre=2.0, fail=10.0, back=7.0, settle=5.5),
    "fast": dict(vrrp_version=3, adv="0.1", pre=1.0, fail=4.0, back=4.0, settle=5.5),
}
MODES = ("term", "kill", "crash")
EXTRAS = ("stale-cache", "lost-garps")


# ---------------------------------------------------------------------------------------
# the UDP responder and the 100 Hz probe (run inside the namespaces as sub-commands)
# ---------------------------------------------------------------------------------------

def cmd_serve(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((a.bind, a.port))        # needs net.ipv4.ip_nonlocal_bind=1 before the VIP exists
    tag = a.name.encode() + b" "
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    while True:
        data, peer = s.recvfrom(512)
        try:
            s.sendto(tag + data, peer)          # sourced from the VIP (the bound address)
        except OSError:
            pass                                # eth0 gone or down (crash mode)


def cmd_probe(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    period = 1.0 / a.hz
    sent = []                                   # [seq, t_send, who, t_recv]
    t0 = time.time()
    end = t0 + a.duration
    nxt = t0
    seq = 0
    sys.stdout.write("STARTED %.6f\n" % t0)
    sys.stdout.flush()
    while True:
        now = time.time()
        if now >= nxt and now < end:
            try:
                s.sendto(b"%d" % seq, (a.dst, a.port))
            except OSError:
                pass                            # e.g. EHOSTUNREACH: ARP failed
            sent.append([seq, now, None, None])
            seq += 1
            nxt += period
            if nxt < now:                       # we were descheduled: no catch-up burst
                nxt = now + period
        if now >= end + a.grace:
            break
        timeout = max(0.0, min(nxt if now < end else end + a.grace, end + a.grace) - time.time())
        r, _, _ = select.select([s], [], [], timeout)
        if not r:
            continue
        while True:
            try:
                data = s.recv(512)
            except OSError:
                break
            t = time.time()
            try:
                who, sq = data.decode().split(" ", 1)
                p = sent[int(sq)]
            except (ValueError, IndexError):
                continue
            if p[2] is None:
                p[2], p[3] = who, t
    with open(a.out, "w") as f:
        json.dump(dict(hz=a.hz, t0=t0, probes=sent), f)


# ---------------------------------------------------------------------------------------
# process / namespace bookkeeping: everything created is removed again
# ---------------------------------------------------------------------------------------

def log(msg):
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh(cmd, check=True, timeout=30):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode:
        raise RuntimeError(f"`{' '.join(cmd)}` failed: {p.stderr.strip() or p.stdout.strip()}")
    return p.stdout


def nsx(i, *cmd):
    return ["ip", "netns", "exec", NS[i], *cmd]


def wait_for(pred, timeout, step=0.02):
    t = time.time() + timeout
    while time.time() < t:
        if pred():
            return True
        time.sleep(step)
    return pred()


def write_proc(path, value):
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError:
        pass


class Lab:
    """One topology. Tracks every process (by PID), namespace and link it creates."""

    def __init__(self, variant, rundir, binary):
        self.variant, self.dir, self.bin = variant, rundir, binary
        self.procs = []         # (label, Popen)
        self.netns = []
        self.links = []         # root-namespace links we created
        self.switch = None
        self.switch_log = os.path.join(rundir, "switch.log")
        self.sock = os.path.join(rundir, "vswitch.sock")
        self.kas = {}
        self.switch_stop = None
        self.step_down = True

    # -- processes ----------------------------------------------------------------------
    def spawn(self, label, cmd, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(cmd, **kw)
        self.procs.append((label, p))
        return p

    @staticmethod
    def stop_proc(p, sig=signal.SIGTERM, wait=3.0):
        if p.poll() is not None:
            return
        try:
            p.send_signal(sig)
            p.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)
        except ProcessLookupError:
            pass

    # -- topology -----------------------------------------------------------------------
    def make_ns(self, i):
        sh(["ip", "netns", "add", NS[i]])
        self.netns.append(NS[i])
        sh(["ip", "-n", NS[i], "link", "set", "lo", "up"])
        # IPv6 off: keeps the wire quiet (no DAD/MLD/RS noise in the captures)
        sh(nsx(i, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
               "net.ipv6.conf.default.disable_ipv6=1"))
        if i in (1, 2):
            sh(nsx(i, "sysctl", "-qw", "net.ipv4.ip_nonlocal_bind=1"))

    def guest_eth0(self, i):
        n = NS[i]
        sh(["ip", "-n", n, "link", "set", "eth0", "address", mac_of(i)])
        sh(["ip", "-n", n, "addr", "add", f"{ip_of(i)}/24", "dev", "eth0"])
        sh(["ip", "-n", n, "link", "set", "eth0", "up"])

    def up(self):
        for i in (1, 2, 3):
            self.make_ns(i)
        if self.variant == "bridge":
            sh(["ip", "link", "add", BR, "type", "bridge", "stp_state", "0", "forward_delay", "0"])
            self.links.append(BR)
            write_proc(f"/proc/sys/net/ipv6/conf/{BR}/disable_ipv6", "1")
            sh(["ip", "link", "set", BR, "up"])
            for i in (1, 2, 3):
                sh(["ip", "link", "add", PV[i], "type", "veth", "peer", "name", "eth0", "netns", NS[i]])
                self.links.append(PV[i])
                write_proc(f"/proc/sys/net/ipv6/conf/{PV[i]}/disable_ipv6", "1")
                sh(["ip", "link", "set", PV[i], "master", BR, "up"])
                self.guest_eth0(i)
        else:
            self.start_switch()
            for i in (1, 2, 3):
                self.adopt_tap(i)
        for i in (1, 2):
            ok = wait_for(lambda: subprocess.run(nsx(3, "ping", "-c1", "-W1", "-q", ip_of(i)),
                                                 capture_output=True).returncode == 0, 8, 0.1)
            if not ok:
                raise RuntimeError(f"{self.variant}: vm3 cannot reach vm{i}")

    def config_toml(self):
        out = ["# generated by bench/failover.py", "[switch]", ""]
        for i in (1, 2, 3):
            out += ["[[port]]", f'name = "vm{i}"', f'tap = "{TAP[i]}"', f'mac = "{mac_of(i)}"',
                    f'ips = ["{ip_of(i)}/24"]', ""]
        out += ["[[vip]]", 'name = "web"', f'addresses = ["{VIP}"]', 'mode = "active-passive"',
                'candidates = ["vm1", "vm2"]']
        if not self.step_down:
            out.append("step_down_on_crash = false")
        out.append("")
        return "\n".join(out)

    def start_switch(self):
        cfg = os.path.join(self.dir, "vswitch.toml")
        with open(cfg, "w") as f:
            f.write(self.config_toml())
        sh([self.bin, "check-config", cfg])
        errf = open(self.switch_log, "w")
        self.switch = self.spawn("vswitch", [self.bin, "run", "--config", cfg, "--socket", self.sock,
                                             "--log-format", "json"],
                                 stdout=subprocess.DEVNULL, stderr=errf, env=dict(os.environ, NO_COLOR="1"))
        errf.close()
        if not wait_for(lambda: os.path.exists(self.sock), 10, 0.05):
            raise RuntimeError("the switch did not come up: " + open(self.switch_log).read()[-2000:])

    def adopt_tap(self, i):
        """Move the switch's tap fo-tN (root namespace) into vmN as eth0 and configure it."""
        if not wait_for(lambda: os.path.exists(f"/sys/class/net/{TAP[i]}"), 5):
            raise RuntimeError(f"tap {TAP[i]} did not appear")
        sh(["ip", "link", "set", TAP[i], "netns", NS[i]])
        sh(["ip", "-n", NS[i], "link", "set", TAP[i], "name", "eth0"])
        self.guest_eth0(i)

    def ctl(self, *args):
        return json.loads(sh([self.bin, "ctl", "--socket", self.sock, "--json", *args]))

    def port_up(self, name):
        try:
            return any(p["name"] == name and p["oper_up"] for p in self.ctl("show", "ports"))
        except (RuntimeError, ValueError):
            return False

    def vip_owner(self):
        try:
            v = self.ctl("show", "vips")
        except (RuntimeError, ValueError):
            return None
        v = v[0] if isinstance(v, list) else v
        owners = v.get("owners") or ([v["owner"]] if v.get("owner") else [])
        names = [o["port"] if isinstance(o, dict) else o for o in owners]
        return names[0] if len(names) == 1 else (names or None)

    def fail_vm1(self, mode, crash_order="link-first"):
        if mode == "crash" and crash_order == "kill-first":
            self.kas[1].kill9()
            if self.variant == "bridge":
                sh(["ip", "link", "set", PV[1], "down"])
            else:
                sh(["ip", "-n", NS[1], "link", "del", "eth0"])
        elif mode == "crash":
            if self.variant == "bridge":
                sh(["ip", "link", "set", PV[1], "down"])
            else:
                sh(["ip", "-n", NS[1], "link", "del", "eth0"])
            self.kas[1].kill9()
        elif mode == "kill":
            self.kas[1].kill9()
        else:
            self.kas[1].term()

    def restore_vm1(self, mode):
        if mode == "crash":
            if self.variant == "bridge":
                sh(["ip", "link", "set", PV[1], "up"])
            else:
                # a new tap in the switch's namespace: the switch re-attaches it (<= ~1 s);
                # only then can it go into the VM
                sh(["ip", "tuntap", "add", "dev", TAP[1], "mode", "tap"])
                self.links.append(TAP[1])
                if not wait_for(lambda: self.port_up("vm1"), 5, 0.05):
                    raise RuntimeError("the switch did not re-attach vm1's new tap")
                self.adopt_tap(1)
                self.links.remove(TAP[1])   # lives in fo-vm1 now; goes with the namespace

    def down(self):
        for k in list(self.kas.values()):
            k.stop()
        for label, p in reversed(self.procs):
            if p is self.switch and p.poll() is None:
                # the switch must stop on SIGTERM; note it if it needs a SIGKILL
                t = time.time()
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=5)
                    self.switch_stop = dict(sigterm_s=round(time.time() - t, 3), rc=p.returncode)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=5)
                    self.switch_stop = dict(sigterm_s=None, needed_sigkill=True)
                    log("WARNING: the switch did not stop within 5 s of SIGTERM; killed")
            self.stop_proc(p)
        self.procs.clear()
        for n in self.netns:
            subprocess.run(["ip", "-n", n, "link", "del", "eth0"], capture_output=True)
            subprocess.run(["ip", "netns", "del", n], capture_output=True)
        self.netns.clear()
        for l in reversed(self.links):
            subprocess.run(["ip", "link", "del", l], capture_output=True)
        self.links.clear()


class Keepalived:
    """keepalived -n in a namespace, private pid files; stdout lines time-stamped on arrival."""
    seq = 0

    def __init__(self, lab, i, conf):
        Keepalived.seq += 1
        self.lab, self.i = lab, i
        base = os.path.join(lab.dir, f"ka-vm{i}-{Keepalived.seq}")
        self.pidf, self.vrrp_pidf, self.chk_pidf = base + ".pid", base + "-vrrp.pid", base + "-chk.pid"
        self.logf = base + ".log"
        self.lines = []
        self.p = lab.spawn(f"keepalived-vm{i}",
                           nsx(i, "keepalived", "-n", "-l", "-D", "-P", "-G", "-f", conf,
                               "-p", self.pidf, "-r", self.vrrp_pidf, "-c", self.chk_pidf),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        with open(self.logf, "w") as f:
            for line in self.p.stdout:
                t = time.time()
                self.lines.append((t, line.rstrip()))
                f.write(f"{t:.6f} {line}")

    def child(self):
        for _ in range(50):
            try:
                return int(open(self.vrrp_pidf).read())
            except (OSError, ValueError):
                if self.p.poll() is not None:
                    return None
                time.sleep(0.05)
        return None

    def kill9(self):
        c = self.child()
        # child and parent together: alone, the parent respawns the child, or the child
        # gets PDEATHSIG and shuts down gracefully (dropping the VIP).
        for pid in ([c] if c else []) + [self.p.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.p.wait(timeout=5)

    def term(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill9()

    def stop(self):
        if self.p.poll() is None:
            self.term()
        # a VRRP child left behind by a killed parent (should not happen: kill9 takes both)
        try:
            c = int(open(self.vrrp_pidf).read())
            if os.path.exists(f"/proc/{c}") and "keepalived" in open(f"/proc/{c}/comm").read():
                os.kill(c, signal.SIGKILL)
        except (OSError, ValueError):
            pass

    def master_times(self):
        return [t for t, l in self.lines if "Entering MASTER STATE" in l]


def keepalived_conf(i, prof, transport, lost_garps):
    P = PROFILES[prof]
    me, peer = (ip_of(1), ip_of(2)) if i == 1 else (ip_of(2), ip_of(1))
    g = [f"    router_id {NS[i]}"]
    if P["vrrp_version"] == 3:
        g.append("    vrrp_version 3")
    inst = [f"    state {'MASTER' if i == 1 else 'BACKUP'}", "    interface eth0",
            f"    virtual_router_id {VRID}", f"    priority {150 if i == 1 else 100}",
            f"    advert_int {P['adv']}"]
    if transport == "unicast":
        inst += [f"    unicast_src_ip {me}", "    unicast_peer {", f"        {peer}", "    }"]
    if lost_garps:
        inst += ["    garp_master_repeat 1", "    garp_master_delay 0"]
    inst += ["    virtual_ipaddress {", f"        {VIP}/24 dev eth0", "    }"]
    return ("global_defs {\n" + "\n".join(g) + "\n}\n\nvrrp_instance VI_1 {\n"
            + "\n".join(inst) + "\n}\n")


def has_vip(i):
    r = subprocess.run(["ip", "-n", NS[i], "-4", "-o", "addr", "show"], capture_output=True, text=True)
    return f" {VIP}/" in r.stdout


class ArpCapture:
    """tcpdump -l in vm2 on eth0: every ARP frame and VRRP advert vm2 sends or receives."""

    def __init__(self, lab, path):
        self.events = []        # (t, src_vm, op, spa, tpa)
        self.adverts = []       # (t, src_vm, prio)
        self.f = open(path, "w")
        self.p = lab.spawn("tcpdump-vm2", nsx(2, "tcpdump", "-i", "eth0", "-l", "-nn", "-tt", "-e",
                                              "arp or ip proto 112"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # wait for "listening on eth0"
        r, _, _ = select.select([self.p.stderr], [], [], 5)
        if r:
            self.p.stderr.readline()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            if not self.f.closed:
                self.f.write(line)
            w = line.split()
            # 1700000000.123456 02:00:00:10:00:02 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806),
            #   length 42: Request who-has 10.210.0.100 (ff:ff:ff:ff:ff:ff) tell 10.210.0.100, length 28
            try:
                t = float(w[0])
            except (ValueError, IndexError):
                continue
            src = MAC2VM.get(w[1], w[1])
            if "VRRPv2," in w or "VRRPv3," in w:
                try:
                    self.adverts.append((t, src, int(w[w.index("prio") + 1].rstrip(","))))
                except (ValueError, IndexError):
                    pass
            elif "who-has" in w:
                k = w.index("who-has")
                tpa = w[k + 1]
                spa = w[w.index("tell") + 1].rstrip(",")
                self.events.append((t, src, "request", spa, tpa))
            elif "is-at" in w:
                k = w.index("is-at")
                self.events.append((t, src, "reply", w[k - 1], None))

    def garps(self, src_vm, t0, t1):
        return [t for t, s, op, spa, tpa in self.events
                if s == src_vm and op == "request" and spa == VIP and tpa == VIP and t0 <= t < t1]

    def resignation(self, src_vm, t0, t1):
        """The first priority-0 advert from src_vm in [t0, t1): keepalived's own on a graceful
        stop, or the one the switch sends for a crashed master (step_down_on_crash)."""
        ts = [t for t, s, prio in self.adverts if s == src_vm and prio == 0 and t0 <= t < t1]
        return ts[0] if ts else None

    def last_advert(self, src_vm, before):
        ts = [t for t, s, prio in self.adverts if s == src_vm and prio > 0 and t < before]
        return ts[-1] if ts else None

    def stop(self):
        Lab.stop_proc(self.p, signal.SIGINT)
        self.t.join(timeout=2)
        self.f.close()


def nft_available():
    return shutil.which("nft") is not None


NFT_TABLE = "fo_lost_garps"


def nft_drop_garps(on):
    if on:
        rules = (f"table arp {NFT_TABLE} {{\n  chain in {{ type filter hook input priority 0; policy accept;\n"
                 f"    arp operation request arp saddr ip {VIP} arp daddr ip {VIP} counter drop\n  }}\n}}\n")
        subprocess.run(nsx(3, "nft", "-f", "-"), input=rules, text=True, check=True, capture_output=True)
    else:
        subprocess.run(nsx(3, "nft", "delete", "table", "arp", NFT_TABLE), capture_output=True)


def nft_counter():
    r = subprocess.run(nsx(3, "nft", "list", "table", "arp", NFT_TABLE), capture_output=True, text=True)
    for l in r.stdout.splitlines():
        if "counter packets" in l:
            return int(l.split("counter packets")[1].split()[0])
    return None


# ---------------------------------------------------------------------------------------
# analysis
# ---------------------------------------------------------------------------------------

def phase_stats(probes, t0, t1, new, old):
    ph = [p for p in probes if t0 <= p[1] < t1]
    if not ph:
        return {}
    ms = lambda t: round((t - t0) * 1000, 1)
    best = (0, None, None)                # (count, first lost t_send, last lost t_send)
    cur, start = 0, None
    for p in ph:
        if p[2] is None:
            if cur == 0:
                start = p[1]
            cur += 1
            if cur > best[0]:
                best = (cur, start, p[1])
        else:
            cur = 0
    censored = best[0] > 0 and ph[-1][2] is None and best[2] == ph[-1][1]
    first_new = next((p for p in ph if p[2] == new), None)
    olds = [p for p in ph if p[2] == old]
    pattern = []
    for p in ph:
        w = p[2] or "lost"
        if pattern and pattern[-1][0] == w:
            pattern[-1][1] += 1
        else:
            pattern.append([w, 1])
    return dict(
        sent=len(ph), lost=sum(1 for p in ph if p[2] is None),
        outage_ms=round((best[2] - best[1] + PERIOD) * 1000, 1) if best[0] else 0.0,
        outage_start_ms=ms(best[1]) if best[0] else None,
        recovered=not censored,
        first_new_ms=ms(first_new[1]) if first_new else None,
        last_old_ms=ms(olds[-1][1]) if olds else None,
        pattern=" ".join(f"{w}x{n}" for w, n in pattern[:40]))


def parse_switch_log(path):
    out = []
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return out
    for l in lines:
        try:
            j = json.loads(l)
        except ValueError:
            continue
        ts = j.get("timestamp")
        if ts:
            j["t"] = datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
        out.append(j)
    return out


def switch_phase(events, t0, t1, to):
    mv = [e for e in events if e.get("event") == "vip_moved" and e.get("to") == to and t0 <= e.get("t", 0) < t1]
    pend = [e for e in events if e.get("event") == "vip_claim_pending" and t0 <= e.get("t", 0) < t1]
    hij = [e for e in events if e.get("event") == "vip_hijack" and t0 <= e.get("t", 0) < t1]
    sd = [e for e in events if e.get("event") == "vrrp_step_down" and t0 <= e.get("t", 0) < t1]
    d = dict(switch_moves=len(mv), switch_pending=len(pend), switch_hijacks=len(hij))
    if sd:
        d["step_down_ms"] = round((sd[0]["t"] - t0) * 1000, 1)
    if mv:
        e = mv[0]
        d.update(switch_reason=e.get("reason"), reaction_us=e.get("reaction_us"),
                 switch_moved_ms=round((e["t"] - t0) * 1000, 1))
        if e.get("claim_rx_ns") is not None and e.get("at_ns") is not None:
            rx = e["t"] - (e["at_ns"] - e["claim_rx_ns"]) / 1e9
            d["claim_rx_ms"] = round((rx - t0) * 1000, 1)
    return d


# ---------------------------------------------------------------------------------------
# one run
# ---------------------------------------------------------------------------------------

def scenario_name(mode, extra):
    """term / kill / crash; stale-cache / lost-garps (with term); stale-cache+kill, ..."""
    if not extra:
        return mode
    return extra if mode == "term" else f"{extra}+{mode}"


def one_run(variant, prof, mode, extra, rep, a, outdir):
    P = dict(PROFILES[prof])
    if extra and a.extra_fail:
        P["fail"] = a.extra_fail
    scen = scenario_name(mode, extra)
    tag = f"{variant}-{prof}-{scen}-{rep}"
    rundir = os.path.join(outdir, "runs", tag)
    os.makedirs(rundir, exist_ok=True)
    lab = Lab(variant, rundir, a.bin)
    lab.step_down = not (a.no_step_down or variant == "vswitch-nostep")
    lost_garps = extra == "lost-garps"
    lg_method = None
    if lost_garps:
        lg_method = "nft-drop-at-vm3" if nft_available() else "pinned-entry-fallback"
    rec = dict(variant=variant, profile=prof, scenario=scen, mode=mode, extra=extra, rep=rep,
               transport=a.transport, crash_order=a.crash_order if mode == "crash" else None,
               loadavg_before=open("/proc/loadavg").read().split()[:3])
    t_start = time.time()
    cap = None
    try:
        lab.up()
        for i in (1, 2):
            r = lab.spawn(f"udp-vm{i}", nsx(i, sys.executable, os.path.abspath(__file__), "_serve",
                                             "--bind", VIP, "--port", str(UDP_PORT), "--name", f"vm{i}"),
                          stdout=subprocess.PIPE, text=True)
            if r.stdout.readline().strip() != "READY":
                raise RuntimeError(f"UDP responder in vm{i} did not start")
        confs = {}
        for i in (1, 2):
            confs[i] = os.path.join(rundir, f"keepalived-vm{i}.conf")
            with open(confs[i], "w") as f:
                f.write(keepalived_conf(i, prof, a.transport, lost_garps))
        cap = ArpCapture(lab, os.path.join(rundir, "arp-vm2.txt"))
        lab.kas[1] = Keepalived(lab, 1, confs[1])
        if not wait_for(lambda: has_vip(1), 15, 0.05):
            raise RuntimeError("vm1 never became MASTER: " + " | ".join(l for _, l in lab.kas[1].lines[-5:]))
        t_master = time.time()
        lab.kas[2] = Keepalived(lab, 2, confs[2])
        if variant.startswith("vswitch") and not wait_for(lambda: lab.vip_owner() == "vm1", 5, 0.05):
            raise RuntimeError(f"the switch did not give the VIP to vm1: owner {lab.vip_owner()}")
        time.sleep(max(0.0, t_master + P["settle"] - time.time()))
        if has_vip(2) or not has_vip(1):
            raise RuntimeError("not in steady state before the failure (VIP not on vm1 only)")
        if extra == "stale-cache" or (lost_garps and lg_method == "pinned-entry-fallback"):
            sh(["ip", "-n", NS[3], "neigh", "replace", VIP, "lladdr", mac_of(1), "dev", "eth0",
                "nud", "permanent"])
        if lost_garps and lg_method == "nft-drop-at-vm3":
            nft_drop_garps(True)
        dur = P["pre"] + P["fail"] + P["back"]
        pfile = os.path.join(rundir, "probe.json")
        probe = lab.spawn("probe", nsx(3, sys.executable, os.path.abspath(__file__), "_probe", "--dst", VIP,
                                       "--port", str(UDP_PORT), "--hz", str(HZ), "--duration", str(dur),
                                       "--out", pfile), stdout=subprocess.PIPE, text=True)
        l = probe.stdout.readline()
        if not l.startswith("STARTED"):
            raise RuntimeError("the probe did not start")
        time.sleep(P["pre"])
        t_fail = time.time()
        lab.fail_vm1(mode, a.crash_order)
        t_fail_done = time.time()
        time.sleep(max(0.0, t_fail + P["fail"] - time.time()))
        t_back = time.time()
        nft_dropped = None
        if lost_garps and lg_method == "nft-drop-at-vm3":
            nft_dropped = nft_counter()
            nft_drop_garps(False)
        lab.restore_vm1(mode)
        lab.kas[1] = Keepalived(lab, 1, confs[1])
        t_back_done = time.time()
        probe.wait(timeout=dur + 30)
        t_end = time.time()
        time.sleep(0.2)
        cap.stop()
        probes = json.load(open(pfile))["probes"]
        A = phase_stats(probes, t_fail, t_back, "vm2", "vm1")
        B = phase_stats(probes, t_back, t_end, "vm1", "vm2")
        ms = lambda t, t0: round((t - t0) * 1000, 1) if t is not None else None
        gA = cap.garps("vm2", t_fail, t_back)
        gB = cap.garps("vm1", t_back, t_end)
        mA = [t for t in lab.kas[2].master_times() if t >= t_fail]
        mB = lab.kas[1].master_times()
        la = cap.last_advert("vm1", t_back)
        rz = cap.resignation("vm1", t_fail, t_back)
        A.update(resign_ms=ms(rz, t_fail) if rz else None)
        A.update(garps=len(gA), garp_ms=ms(gA[0], t_fail) if gA else None,
                 ka_master_ms=ms(mA[0], t_fail) if mA else None,
                 old_last_advert_ms=ms(la, t_fail) if la else None)
        if gA and la and mode != "term":
            # keepalived's detection: the old master's last advert -> the new master's GARP
            A["detect_ms"] = round((gA[0] - la) * 1000, 1)
        B.update(garps=len(gB), garp_ms=ms(gB[0], t_back) if gB else None,
                 ka_master_ms=ms(mB[0], t_back) if mB else None)
        for ph in (A, B):
            if ph.get("first_new_ms") is not None and ph.get("garp_ms") is not None:
                ph["new_after_garp_ms"] = round(ph["first_new_ms"] - ph["garp_ms"], 1)
        if variant.startswith("vswitch"):
            ev = parse_switch_log(lab.switch_log)
            A.update(switch_phase(ev, t_fail, t_back, "vm2"))
            B.update(switch_phase(ev, t_back, t_end, "vm1"))
            rec["switch_events"] = [{k: e.get(k) for k in ("t", "event", "from", "to", "reason", "reaction_us",
                                                            "port", "up", "cause", "vrid", "dst")}
                                    for e in ev if e.get("event")]
            try:
                rec["switch_stats"] = {
                    x["port"]: dict(rx=x["rx_frames"], tx=x["tx_frames"], answered=x["answered"],
                                    drops={k: n for k, n in x["drops"].items() if n})
                    for x in lab.ctl("show", "stats")}
            except (RuntimeError, ValueError):
                pass
        rec.update(ts=t_fail, t_back=t_back, fail_action_ms=ms(t_fail_done, t_fail),
                   restore_ms=ms(t_back_done, t_back), lost_garps_method=lg_method, nft_dropped=nft_dropped,
                   vm3_neigh_end=sh(["ip", "-n", NS[3], "neigh", "show", VIP], check=False).strip(),
                   failover=A, failback=B, run_s=round(time.time() - t_start, 1))
        return rec
    finally:
        lab.down()
        if cap and not cap.f.closed:
            cap.t.join(timeout=2)
            cap.f.close()
        if lab.switch_stop is not None:
            rec["switch_stop"] = lab.switch_stop


# ---------------------------------------------------------------------------------------
# summary
# ---------------------------------------------------------------------------------------

def fmt(v):
    return f"{v:.0f}" if abs(v) >= 10 else f"{v:.1f}".rstrip("0").rstrip(".") if v else "0"


def cell(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    m = statistics.median(vals)
    if len(vals) == 1:
        return fmt(m)
    return f"{fmt(m)} [{fmt(min(vals))}..{fmt(max(vals))}]"


def summarize(rows, meta=None):
    for r in rows:
        r["scenario"] = r.get("scenario") or scenario_name(r.get("mode"), r.get("extra"))
    ok = [r for r in rows if "error" not in r]
    bad = [r for r in rows if "error" in r]
    out = []
    if meta:
        out += [f"- command: `{meta['command']}`", f"- date: {meta['date']}",
                f"- keepalived: {meta['keepalived']}; kernel {meta['kernel']}; {meta['cpus']} CPUs",
                f"- switch: {meta.get('switch', {}).get('version', '-')}, built "
                f"{meta.get('switch', {}).get('built', '-')} at git {meta.get('switch', {}).get('git_head', '-')}",
                f"- load (1/5/15 min) before: {meta['load_before']}; after: {meta.get('load_after', '?')}",
                f"- run time: {meta.get('run_min', '?')} min, {len(ok)} runs ok, {len(bad)} failed", ""]
    out += ["Median [min..max] over the repetitions. 100 Hz UDP probe from vm3 to the VIP; "
            "times in ms from the failure (failover) / from the start of restoring vm1 (failback). "
            "`outage` = longest run of unanswered probes + one probe interval; "
            "`≥` = the outage was still going on at the end of the window (not recovered). "
            "`GARP @` = the new master's first gratuitous ARP on the wire; "
            "`priority-0 advert @` (when recorded) = the first priority-0 advert from vm1 at vm2: "
            "keepalived's own on term; on crash the one vswitch sends for the dead master "
            "(step_down_on_crash; none on the bridge); "
            "`detection` (kill/crash, when recorded) = the old master's last advert → that GARP; "
            "`answer − GARP` = first answer from the new owner minus that GARP; "
            "`reaction` = the switch's reaction_us (GARP arrival → new owner installed).", ""]
    scen_order = list(MODES) + [f"{e}{m}" for e in EXTRAS for m in ("", "+kill", "+crash")]
    keys = sorted({(r["profile"], r["scenario"], r["variant"]) for r in ok},
                  key=lambda k: (list(PROFILES).index(k[0]) if k[0] in PROFILES else 9,
                                 scen_order.index(k[1]) if k[1] in scen_order else 9, k[2]))
    for ph, title in (("failover", "Failover (vm1 fails, vm2 takes over)"),
                      ("failback", "Failback (vm1 restored, preempts)")):
        det = any(r.get(ph, {}).get("detect_ms") is not None for r in ok)
        rz = ph == "failover" and any(r.get(ph, {}).get("resign_ms") is not None for r in ok)
        out += [f"### {title}", "",
                "| profile | scenario | variant | n | outage ms | probes lost | new owner answers @ms "
                "| old owner last answered @ms | " + ("priority-0 advert @ms | " if rz else "")
                + "GARP @ms | " + ("detection ms | " if det else "")
                + "answer − GARP ms | switch reaction µs |",
                "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if det else "")
                + ("---|" if rz else "")]
        for k in keys:
            rr = [r[ph] for r in ok if (r["profile"], r["scenario"], r["variant"]) == k and r.get(ph)]
            if not rr:
                continue
            cens = sum(1 for x in rr if not x.get("recovered", True))
            o = cell([x.get("outage_ms") for x in rr])
            if cens:
                o = ("≥" if cens == len(rr) else "") + o + ("" if cens == len(rr) else f" ({cens}/{len(rr)} ≥)")
            nn = [x.get("first_new_ms") for x in rr]
            newc = cell(nn) + (f" ({sum(v is None for v in nn)}× never)" if any(v is None for v in nn) else "")
            out.append("| " + " | ".join([
                k[0], k[1], k[2], str(len(rr)), o, cell([x.get("lost") for x in rr]), newc,
                cell([x.get("last_old_ms") for x in rr])]
                + ([cell([x.get("resign_ms") for x in rr])] if rz else [])
                + [cell([x.get("garp_ms") for x in rr])]
                + ([cell([x.get("detect_ms") for x in rr])] if det else []) + [
                cell([x.get("new_after_garp_ms") for x in rr]),
                cell([x.get("reaction_us") for x in rr]) if k[2].startswith("vswitch") else "n/a"]) + " |")
        out.append("")
    if bad:
        out += ["### Failed runs", ""] + [f"- {r['variant']} {r['profile']} {r['scenario']} rep {r['rep']}: "
                                          f"{r['error'][:300]}" for r in bad] + [""]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------

def leftovers():
    left = []
    nss = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split("\n")
    for l in nss:
        n = l.split(" ")[0]
        if n in NS.values():
            left.append(("netns", n))
    for l in [BR, *PV.values(), *TAP.values()]:
        if os.path.exists(f"/sys/class/net/{l}"):
            left.append(("link", l))
    return left


def cleanup_stale():
    for kind, n in leftovers():
        if kind == "netns":
            pids = subprocess.run(["ip", "netns", "pids", n], capture_output=True, text=True).stdout.split()
            for p in pids:
                log(f"killing pid {p} left in {n}")
                try:
                    os.kill(int(p), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", n])
        else:
            subprocess.run(["ip", "link", "del", n])
        log(f"removed {kind} {n}")


class Interrupted(Exception):
    pass


def on_signal(sig, _frame):
    raise Interrupted(f"signal {sig}")


def main():
    if len(sys.argv) > 1 and sys.argv[1] in ("_serve", "_probe"):
        ap = argparse.ArgumentParser()
        ap.add_argument("cmd")
        ap.add_argument("--bind")
        ap.add_argument("--dst")
        ap.add_argument("--port", type=int, default=UDP_PORT)
        ap.add_argument("--name")
        ap.add_argument("--hz", type=float, default=HZ)
        ap.add_argument("--duration", type=float)
        ap.add_argument("--grace", type=float, default=0.5)
        ap.add_argument("--out")
        a = ap.parse_args()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)     # Ctrl-C: the parent cleans up
        cmd_serve(a) if a.cmd == "_serve" else cmd_probe(a)
        return 0

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--profiles", default="default,fast")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--extras", default=",".join(EXTRAS),
                    help="extra scenarios, each optionally :MODE (e.g. stale-cache:kill); '' for none")
    ap.add_argument("--extra-mode", default="term", choices=MODES,
                    help="failure mode of the extra scenarios without :MODE")
    ap.add_argument("--extra-fail", type=float, default=None,
                    help="failover window (s) of the extra scenarios (default: the profile's)")
    ap.add_argument("--variants", default="bridge,vswitch")
    ap.add_argument("--transport", default="multicast", choices=["multicast", "unicast"])
    ap.add_argument("--crash-order", default="link-first", choices=["link-first", "kill-first"],
                    help="crash mode: cut the link then SIGKILL keepalived (default), or the reverse")
    ap.add_argument("--no-step-down", action="store_true",
                    help="vswitch with step_down_on_crash = false (keepalived's own master-down timer on crash)")
    ap.add_argument("--quick", action="store_true", help="1 rep, default profile, term+kill, no extras")
    ap.add_argument("--bin", default=os.path.join(REPO, "target", "release", "vswitch"))
    ap.add_argument("--build", action="store_true", help="cargo build --release -p agent first")
    ap.add_argument("--out", default=None)
    ap.add_argument("--summarize", metavar="FILE.jsonl")
    ap.add_argument("--cleanup-stale", action="store_true",
                    help="remove fo-* namespaces/links left by an earlier, killed run, and exit")
    a = ap.parse_args()

    if a.summarize:
        rows = [json.loads(l) for l in open(a.summarize) if l.strip()]
        meta_p = os.path.join(os.path.dirname(a.summarize), "meta.json")
        meta = json.load(open(meta_p)) if os.path.exists(meta_p) else None
        sys.stdout.write(summarize(rows, meta))
        return 0
    if os.geteuid() != 0:
        print("failover.py needs root (network namespaces, taps, keepalived)", file=sys.stderr)
        return 2
    if a.cleanup_stale:
        cleanup_stale()
        return 0
    if a.quick:
        a.reps, a.profiles, a.modes, a.extras = 1, "default", "term,kill", ""
    profiles = [p for p in a.profiles.split(",") if p]
    modes = [m for m in a.modes.split(",") if m]
    extras = [e for e in a.extras.split(",") if e]
    variants = [v for v in a.variants.split(",") if v]
    for p in profiles:
        if p not in PROFILES:
            ap.error(f"unknown profile {p}")
    for m in modes:
        if m not in MODES:
            ap.error(f"unknown mode {m}")
    ex2 = []
    for e in extras:
        name, _, m = e.partition(":")
        m = m or a.extra_mode
        if name not in EXTRAS or m not in MODES:
            ap.error(f"unknown extra scenario {e}")
        ex2.append((m, name))
    extras = ex2
    for v in variants:
        if v not in ("bridge", "vswitch", "vswitch-nostep"):
            ap.error(f"unknown variant {v}")
    for tool in ("keepalived", "tcpdump", "ip", "ping"):
        if not shutil.which(tool):
            print(f"needs {tool}", file=sys.stderr)
            return 2
    left = leftovers()
    if left:
        print(f"left over from an earlier run: {left}; run with --cleanup-stale", file=sys.stderr)
        return 2

    stamp = time.strftime("%Y%m%d-%H%M%S")
    outdir = a.out or os.path.join(os.environ.get("TMPDIR", "/tmp"), "vswitch-failover", stamp)
    os.makedirs(outdir, exist_ok=True)
    if any(v.startswith("vswitch") for v in variants):
        if a.build:
            subprocess.run(["cargo", "build", "--release", "-q", "-p", "agent"], cwd=REPO, check=True)
        if not os.access(a.bin, os.X_OK):
            print(f"no switch binary at {a.bin} (cargo build --release -p agent, or --build)", file=sys.stderr)
            return 2
        b = os.path.join(outdir, "vswitch")
        shutil.copy2(a.bin, b)
        a.bin = b
    if any(e == "lost-garps" for _, e in extras) and not nft_available() and shutil.which("apt-get"):
        # like the project's other scripts: install a missing Debian package
        log("lost-garps needs nft: apt-get install -y nftables")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if subprocess.run(["apt-get", "install", "-y", "-qq", "nftables"], env=env,
                          capture_output=True).returncode:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", "nftables"], env=env, capture_output=True)
    if any(e == "lost-garps" for _, e in extras) and not nft_available():
        log("nft not available: lost-garps falls back to a pinned ARP entry in vm3")

    ka_ver = subprocess.run(["keepalived", "--version"], capture_output=True, text=True)
    meta = dict(command="sudo python3 bench/failover.py " + shlex.join(sys.argv[1:]), date=time.strftime("%Y-%m-%d %H:%M %Z"),
                keepalived=(ka_ver.stdout + ka_ver.stderr).splitlines()[0].strip(),
                kernel=os.uname().release, cpus=os.cpu_count(),
                load_before=" ".join(open("/proc/loadavg").read().split()[:3]),
                uptime_before=sh(["uptime"], check=False).strip(), transport=a.transport)
    if any(v.startswith("vswitch") for v in variants):
        meta["switch"] = dict(
            version=sh([a.bin, "--version"], check=False).strip(),
            built=time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(a.bin))),
            git_head=subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True).stdout.strip())
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    plan = []
    for rep in range(1, a.reps + 1):
        for prof in profiles:
            scen = [(m, None) for m in modes] + extras
            for mode, extra in scen:
                order = variants if (rep + len(plan)) % 2 == 0 else list(reversed(variants))
                for v in order:
                    plan.append((v, prof, mode, extra, rep))
    est = sum((PROFILES[p]["pre"] + (a.extra_fail if e and a.extra_fail else PROFILES[p]["fail"])
               + PROFILES[p]["back"] + PROFILES[p]["settle"] + 6) for _, p, _, e, _ in plan)
    log(f"{len(plan)} runs, about {est / 60:.0f} min; results in {outdir}")
    path = os.path.join(outdir, "results.jsonl")
    rows = []
    t0 = time.time()
    try:
        with open(path, "a") as f:
            for k, (v, prof, mode, extra, rep) in enumerate(plan, 1):
                label = f"{v} {prof} {scenario_name(mode, extra)} rep {rep}"
                try:
                    rec = one_run(v, prof, mode, extra, rep, a, outdir)
                    A, B = rec["failover"], rec["failback"]
                    log(f"[{k}/{len(plan)}] {label}: failover outage {A.get('outage_ms')} ms"
                        f"{'' if A.get('recovered', True) else ' (not recovered)'}, lost {A.get('lost')}, "
                        f"vm2 from {A.get('first_new_ms')} ms, GARP {A.get('garp_ms')} ms"
                        f"{', reaction %s us' % A.get('reaction_us') if v.startswith('vswitch') else ''}; "
                        f"failback outage {B.get('outage_ms')} ms")
                except Interrupted:
                    raise
                except Exception as ex:   # noqa: BLE001 - one failed run must not end the series
                    rec = dict(variant=v, profile=prof, scenario=scenario_name(mode, extra), mode=mode,
                               extra=extra, rep=rep,
                               error=f"{type(ex).__name__}: {ex}"[:1000])
                    log(f"[{k}/{len(plan)}] {label}: ERROR {rec['error'][:300]}")
                rows.append(rec)
                f.write(json.dumps(rec) + "\n")
                f.flush()
    except (KeyboardInterrupt, Interrupted) as ex:
        log(f"interrupted ({str(ex) or 'Ctrl-C'}); everything created was removed")
        left = leftovers()
        if left:
            log(f"still left: {left}")
        return 130
    meta.update(load_after=" ".join(open("/proc/loadavg").read().split()[:3]),
                uptime_after=sh(["uptime"], check=False).strip(), run_min=round((time.time() - t0) / 60, 1))
    json.dump(meta, open(os.path.join(outdir, "meta.json"), "w"), indent=1)
    s = summarize(rows, meta)
    open(os.path.join(outdir, "summary.md"), "w").write(s)
    print(s)
    log(f"raw: {path}; summary: {os.path.join(outdir, 'summary.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
