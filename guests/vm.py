#!/usr/bin/env python3
"""vm.py - boot the vswitch test guests under QEMU (TCG) on taps and run commands in them.

  vm.py start NAME --tap TAP [--ip 10.0.0.11/24] [--mac M] [options] [-- QEMU ARGS]
                                   starts QEMU in the background, prints its PID
  vm.py wait NAME [-t SECS]        until the guest's agent answers (network is up by then)
  vm.py exec NAME [-t SECS] CMD... run CMD with sh in the guest: its stdout, stderr, exit code
  vm.py put NAME LOCAL REMOTE      copy a (small) file into the guest
  vm.py info NAME                  JSON: pid, alive, RSS, tap, mac, ip, boot time
  vm.py list                       every guest under the state dir
  vm.py link NAME up|down          set the guest NIC's link (QMP set_link)
  vm.py console NAME               interactive shell on the serial console (Ctrl-] quits)
  vm.py log NAME                   the serial console log
  vm.py stop NAME... | --all       SIGTERM (then SIGKILL) the QEMU process, by PID

QEMU always runs with -accel tcg: KVM on these machines (PVM, no vmx/svm) hangs or aborts.
The guest's NIC is virtio-net-pci on a tap:
  --tap-mode ifname (default)  QEMU opens/creates the tap itself:
                               -netdev tap,ifname=TAP,script=no,downscript=no,vnet_hdr=on
  --tap-mode fd                libvirt style: this script opens /dev/net/tun with
                               IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, brings the tap up and hands
                               QEMU the fd (-netdev tap,fd=N); the tap vanishes with QEMU.
Either way the host side of the tap is set up (and put on --bridge BR if given), so a
switch can attach to it with AF_PACKET (vswitch: a port with netdev = "TAP").

Per-guest state lives in $VSWITCH_GUEST_RUN/NAME (default /run/vswitch-guests/NAME):
info.json, qemu.log, console.log (serial console), console.sock, qmp.sock and the agent
FIFOs agent.in/agent.out (QEMU's "pipe" chardev behind the virtio-serial port
org.vswitch.agent; protocol in guests/vsg-agent). Images come from guests/build.sh's
cache ($VSWITCH_GUEST_CACHE, default /var/cache/vswitch-guests).

Also importable: start(), wait(), run(), stop(), info().
"""
import argparse
import base64
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

RUN = os.environ.get("VSWITCH_GUEST_RUN", "/run/vswitch-guests")
CACHE = os.environ.get("VSWITCH_GUEST_CACHE", "/var/cache/vswitch-guests")
QEMU = os.environ.get("VSWITCH_QEMU", "qemu-system-x86_64")
AGENT_PORT = "org.vswitch.agent"

TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000


class VmError(Exception):
    pass


def vmdir(name):
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,39}", name):
        raise VmError(f"bad guest name {name!r} (letters, digits, _ . -; at most 40)")
    return os.path.join(RUN, name)


def default_mac(name):
    h = hashlib.sha1(name.encode()).digest()
    return "52:54:00:%02x:%02x:%02x" % (h[0], h[1], h[2])


def read_info(name):
    try:
        with open(os.path.join(vmdir(name), "info.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        raise VmError(f"no guest {name!r} under {RUN}") from None


def write_info(name, info):
    p = os.path.join(vmdir(name), "info.json")
    with open(p + ".tmp", "w") as f:
        json.dump(info, f, indent=1)
    os.replace(p + ".tmp", p)


def is_our_qemu(pid, name):
    """The PID is alive (not a zombie) and is the QEMU started for NAME (guards PID reuse)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    if state in ("Z", "X"):
        return False
    return b"-name" in argv and name.encode() in argv


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return None


def holds_tap(pid, tap):
    """PID has /dev/net/tun open, attached to TAP (the tun driver's fdinfo says "iff:")."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "/dev/net/tun":
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                if f"iff:\t{tap}\n" in f.read():
                    return True
        except OSError:
            continue
    return False


def ip_link(*args):
    subprocess.run(["ip", "link", "set", *args], check=True)


def open_tap_fd(tap, vnet_hdr):
    """libvirt's way: a non-persistent tap that lives as long as the fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR)
    flags = IFF_TAP | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", tap.encode(), flags))
    return fd


def start(name, tap, ip="", mac=None, gw=None, mtu=None, mem=None, smp=1, image="debian",
          tap_mode="ifname", vnet_hdr=True, nic="virtio", cmd=None, cmd_file=None, halt=False,
          share=None, bridge=None, append="", cache=CACHE, kernel="vmlinux", accel="tcg",
          extra=(), wait_s=0):
    """Start a guest in the background; returns its info dict (pid, mac, ...)."""
    d = vmdir(name)  # checks the name
    man = os.path.join(cache, "manifest.txt")
    if not os.path.exists(man):
        raise VmError(f"no guest images in {cache}: run guests/build.sh first")
    d = vmdir(name)
    if os.path.exists(os.path.join(d, "info.json")):
        old = read_info(name)
        if is_our_qemu(old["pid"], name):
            raise VmError(f"guest {name} is already running (pid {old['pid']})")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    mac = mac or default_mac(name)
    mem = mem or (128 if image == "debian" else 96)
    for f in ("agent.in", "agent.out"):
        os.mkfifo(os.path.join(d, f), 0o600)
    karg = ["console=ttyS0", "quiet", "panic=-1", f"vsg.name={name}"]
    if ip:
        karg.append(f"vsg.ip={ip}")
    if gw:
        karg.append(f"vsg.gw={gw}")
    if mtu:
        karg.append(f"vsg.mtu={mtu}")
    if halt:
        karg.append("vsg.halt=1")
    argv = [QEMU, "-name", name, "-accel", accel, "-machine", "pc", "-m", str(mem),
            "-smp", str(smp), "-nodefaults", "-no-user-config", "-display", "none",
            "-no-reboot",
            "-chardev", f"socket,id=con,path={d}/console.sock,server=on,wait=off,"
                        f"logfile={d}/console.log",
            "-serial", "chardev:con",
            "-qmp", f"unix:{d}/qmp.sock,server=on,wait=off",
            "-device", "virtio-serial-pci,id=vser0",
            "-chardev", f"pipe,id=agent,path={d}/agent",
            "-device", f"virtserialport,bus=vser0.0,chardev=agent,name={AGENT_PORT}",
            "-kernel", os.path.join(cache, kernel),
            "-initrd", os.path.join(cache, "initrd.cpio.gz")]
    if image == "debian":
        karg.append("vsg.root=vda")
        argv += ["-drive", f"file={cache}/rootfs.squashfs,if=none,id=root,format=raw,readonly=on",
                 "-device", "virtio-blk-pci,drive=root"]
    elif image != "tiny":
        raise VmError(f"unknown image {image!r} (debian or tiny)")
    pass_fds = ()
    tap_fd = None
    tap_existed = os.path.exists(f"/sys/class/net/{tap}")
    if tap_mode == "fd":
        tap_fd = open_tap_fd(tap, vnet_hdr)
        netdev = f"tap,id=n0,fd={tap_fd}"  # vnet_hdr follows IFF_VNET_HDR on the fd
        pass_fds = (tap_fd,)
    elif tap_mode == "ifname":
        netdev = (f"tap,id=n0,ifname={tap},script=no,downscript=no,"
                  f"vnet_hdr={'on' if vnet_hdr else 'off'}")
    else:
        raise VmError(f"unknown tap mode {tap_mode!r} (ifname or fd)")
    model = {"virtio": "virtio-net-pci", "e1000": "e1000"}[nic]
    argv += ["-netdev", netdev, "-device", f"{model},netdev=n0,mac={mac},romfile="]
    if cmd is not None or cmd_file:
        p = os.path.join(d, "vmcmd.sh")
        if cmd_file:
            with open(cmd_file) as src:
                cmd = src.read()
        with open(p, "w") as f:
            f.write(cmd)
        argv += ["-fw_cfg", f"name=opt/vmcmd,file={p}"]
    if share:
        argv += ["-fsdev", f"local,id=share,path={os.path.abspath(share)},security_model=none",
                 "-device", "virtio-9p-pci,fsdev=share,mount_tag=share"]
    if append:
        karg.append(append)
    argv += ["-append", " ".join(karg), *extra]
    try:
        if tap_fd is not None:
            ip_link(tap, "up")
            if bridge:
                ip_link(tap, "master", bridge)
        log = open(os.path.join(d, "qemu.log"), "wb")
        t0 = time.time()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                pass_fds=pass_fds, start_new_session=True)
        log.close()
    finally:
        if tap_fd is not None:
            os.close(tap_fd)
    info = {"name": name, "pid": proc.pid, "tap": tap, "tap_mode": tap_mode,
            "tap_existed": tap_existed, "mac": mac, "ip": ip, "image": image, "mem": mem,
            "vnet_hdr": vnet_hdr, "nic": nic, "started_at": t0, "argv": argv}
    write_info(name, info)
    if tap_mode == "ifname":
        # QEMU opens (and creates, if needed) the tap while it starts; once it holds it,
        # bring the host side up
        deadline = time.time() + 20
        while not holds_tap(proc.pid, tap):
            if proc.poll() is not None or time.time() > deadline:
                raise VmError(f"{name}: QEMU exited or did not open tap {tap}:\n" + qemu_log(name))
            time.sleep(0.02)
        ip_link(tap, "up")
        if bridge:
            ip_link(tap, "master", bridge)
    if proc.poll() is not None:
        raise VmError(f"{name}: QEMU exited at once:\n" + qemu_log(name))
    if wait_s:
        info["up_s"] = wait(name, wait_s)
    return info


def qemu_log(name):
    try:
        with open(os.path.join(vmdir(name), "qemu.log"), errors="replace") as f:
            return f.read()[-4000:]
    except FileNotFoundError:
        return ""


class Agent:
    """One exchange with the guest agent over the FIFOs (serialised by a lock file)."""

    def __init__(self, name, deadline):
        self.name = name
        self.d = vmdir(name)
        self.info = read_info(name)
        self.lock = open(os.path.join(self.d, "agent.lock"), "w")
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        # QEMU opens both FIFOs (O_RDWR) while it initialises; until then opening the write
        # end fails with ENXIO (no reader).
        while True:
            if not is_our_qemu(self.info["pid"], name):
                self.lock.close()
                raise VmError(f"guest {name} is not running")
            try:
                self.wfd = os.open(os.path.join(self.d, "agent.in"), os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as e:
                if e.errno != errno.ENXIO or time.time() > deadline:
                    self.lock.close()
                    raise VmError(f"guest {name}: agent channel not open ({e})") from None
                time.sleep(0.02)
        self.rfd = os.open(os.path.join(self.d, "agent.out"), os.O_RDONLY | os.O_NONBLOCK)
        self.buf = b""
        self.drain()

    def close(self):
        os.close(self.rfd)
        os.close(self.wfd)
        self.lock.close()

    def drain(self):
        """Throw away answers to earlier requests that nobody waited for."""
        while True:
            try:
                if not os.read(self.rfd, 65536):
                    return
            except BlockingIOError:
                return

    def send(self, line, deadline):
        data = line.encode()
        while data:
            left = deadline - time.time()
            if left <= 0 or not select.select([], [self.wfd], [], left)[1]:
                raise TimeoutError
            try:
                data = data[os.write(self.wfd, data):]
            except BlockingIOError:
                pass

    def lines(self, deadline):
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                yield line.decode(errors="replace")
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError
            if not select.select([self.rfd], [], [], min(left, 1.0))[0]:
                if not is_our_qemu(self.info["pid"], self.name):
                    raise VmError(f"guest {self.name} died")
                continue
            try:
                chunk = os.read(self.rfd, 65536)
            except BlockingIOError:
                continue
            if not chunk:  # no writer: QEMU not there yet (start-up) or gone
                if not is_our_qemu(self.info["pid"], self.name):
                    raise VmError(f"guest {self.name} died")
                time.sleep(0.02)
                continue
            self.buf += chunk

    def call(self, kind, args, timeout):
        rid = secrets.token_hex(4)
        deadline = time.time() + timeout
        self.send(" ".join([kind, rid, *args]) + "\n", deadline)
        out, err = [], []
        for line in self.lines(deadline):
            f = line.split(" ", 2)
            if len(f) < 3 or f[1] != rid:
                continue
            if f[0] == "O":
                out.append(f[2])
            elif f[0] == "E":
                err.append(f[2])
            elif f[0] == "D":
                return (int(f[2]), base64.b64decode("".join(out)),
                        base64.b64decode("".join(err)))


def run(name, command, timeout=60):
    """Run COMMAND (a sh script) in the guest; returns (rc, stdout bytes, stderr bytes).
    Raises TimeoutError when no answer arrives in TIMEOUT seconds (the guest also kills the
    command after TIMEOUT s)."""
    a = Agent(name, time.time() + timeout)
    try:
        b64 = base64.b64encode(command.encode()).decode()
        return a.call("X", [str(int(max(1, timeout))), b64], timeout + 5)
    finally:
        a.close()


def wait(name, timeout=60):
    """Wait until the agent answers; returns seconds since QEMU was started."""
    a = Agent(name, time.time() + timeout)
    try:
        a.call("P", [], timeout)
    finally:
        a.close()
    return time.time() - a.info["started_at"]


def info(name):
    i = read_info(name)
    i["alive"] = is_our_qemu(i["pid"], name)
    i["rss_kib"] = rss_kib(i["pid"]) if i["alive"] else None
    return i


def stop(name, grace=5.0):
    """Stop the guest's QEMU (by its PID); returns True if it was running."""
    i = read_info(name)
    pid, was = i["pid"], False
    if is_our_qemu(pid, name):
        was = True
        os.kill(pid, signal.SIGTERM)
        deadline = time.time() + grace
        while is_our_qemu(pid, name) and time.time() < deadline:
            time.sleep(0.05)
        if is_our_qemu(pid, name):
            os.kill(pid, signal.SIGKILL)
            while is_our_qemu(pid, name):
                time.sleep(0.05)
    d = vmdir(name)
    for f in ("agent.in", "agent.out", "console.sock", "qmp.sock"):
        try:
            os.unlink(os.path.join(d, f))
        except FileNotFoundError:
            pass
    i["stopped_at"] = time.time()
    write_info(name, i)
    return was


def qmp(name, command, arguments=None):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(os.path.join(vmdir(name), "qmp.sock"))
    f = s.makefile("rwb")

    def call(cmd, args=None):
        msg = {"execute": cmd}
        if args is not None:
            msg["arguments"] = args
        f.write(json.dumps(msg).encode() + b"\n")
        f.flush()
        while True:
            r = json.loads(f.readline())
            if "return" in r or "error" in r:
                return r

    json.loads(f.readline())  # greeting
    call("qmp_capabilities")
    r = call(command, arguments)
    s.close()
    return r


def console(name):
    import termios
    import tty
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.path.join(vmdir(name), "console.sock"))
    print(f"[{name} console; Ctrl-] quits]", file=sys.stderr)
    fd = sys.stdin.fileno()
    old = termios.tcgetattr(fd) if os.isatty(fd) else None
    try:
        if old:
            tty.setraw(fd)
        s.sendall(b"\n")
        while True:
            r = select.select([fd, s], [], [])[0]
            if s in r:
                d = s.recv(65536)
                if not d:
                    break
                os.write(sys.stdout.fileno(), d)
            if fd in r:
                d = os.read(fd, 1024)
                if not d or b"\x1d" in d:
                    break
                s.sendall(d)
    finally:
        if old:
            termios.tcsetattr(fd, termios.TCSADRAIN, old)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="op", required=True)
    p = sub.add_parser("start", help="start a guest in the background, print its PID")
    p.add_argument("name")
    p.add_argument("--tap", required=True, help="tap name (host side), at most 15 bytes")
    p.add_argument("--ip", default="", help="eth0 address(es), comma separated, e.g. 10.0.0.11/24")
    p.add_argument("--mac", help="guest MAC (default: 52:54:00 + hash of the name)")
    p.add_argument("--gw")
    p.add_argument("--mtu", type=int)
    p.add_argument("--mem", type=int, help="MiB (default 128 debian, 96 tiny)")
    p.add_argument("--smp", type=int, default=1)
    p.add_argument("--image", choices=["debian", "tiny"], default="debian")
    p.add_argument("--tap-mode", choices=["ifname", "fd"], default="ifname")
    p.add_argument("--vnet-hdr", choices=["on", "off"], default="on")
    p.add_argument("--nic", choices=["virtio", "e1000"], default="virtio")
    p.add_argument("--cmd", dest="cmd_file", help="sh script the guest runs at boot (fw_cfg opt/vmcmd)")
    p.add_argument("--cmd-str", dest="cmd", help="the same, given inline")
    p.add_argument("--halt", action="store_true", help="power off after the boot command")
    p.add_argument("--share", help="host dir shared over 9p, mounted on /mnt/share")
    p.add_argument("--bridge", help="also put the tap on this Linux bridge")
    p.add_argument("--append", default="", help="extra kernel command line")
    p.add_argument("--kernel", choices=["vmlinux", "vmlinuz"], default="vmlinux")
    p.add_argument("--cache", default=CACHE)
    p.add_argument("--accel", default="tcg", help="keep tcg: KVM here hangs (see docs/guests.md)")
    p.add_argument("--wait", type=float, default=0, metavar="SECS",
                   help="also wait until the agent answers and print the boot time")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("wait")
    p.add_argument("name")
    p.add_argument("-t", "--timeout", type=float, default=60)
    p = sub.add_parser("exec")
    p.add_argument("name")
    p.add_argument("-t", "--timeout", type=float, default=60)
    p.add_argument("command", nargs="+")
    p = sub.add_parser("put")
    p.add_argument("name")
    p.add_argument("local")
    p.add_argument("remote")
    p = sub.add_parser("info")
    p.add_argument("name")
    sub.add_parser("list")
    p = sub.add_parser("link")
    p.add_argument("name")
    p.add_argument("state", choices=["up", "down"])
    p = sub.add_parser("console")
    p.add_argument("name")
    p = sub.add_parser("log")
    p.add_argument("name")
    p = sub.add_parser("stop")
    p.add_argument("names", nargs="*")
    p.add_argument("--all", action="store_true")
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:  # start NAME ... -- EXTRA QEMU ARGS
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    a = ap.parse_args(argv)
    try:
        if a.op == "start":
            i = start(a.name, a.tap, ip=a.ip, mac=a.mac, gw=a.gw, mtu=a.mtu, mem=a.mem,
                      smp=a.smp, image=a.image, tap_mode=a.tap_mode, vnet_hdr=a.vnet_hdr == "on",
                      nic=a.nic, cmd=a.cmd, cmd_file=a.cmd_file, halt=a.halt, share=a.share,
                      bridge=a.bridge, append=a.append, cache=a.cache, kernel=a.kernel,
                      accel=a.accel, extra=extra, wait_s=a.wait)
            if a.json:
                print(json.dumps(i))
            else:
                up = f" up={i['up_s']:.2f}s" if "up_s" in i else ""
                print(f"{a.name} pid={i['pid']} tap={a.tap} mac={i['mac']} ip={a.ip}{up}")
        elif a.op == "wait":
            print(f"{a.name} up after {wait(a.name, a.timeout):.2f} s (since QEMU start)")
        elif a.op == "exec":
            cmd = a.command[0] if len(a.command) == 1 else " ".join(a.command)
            rc, out, err = run(a.name, cmd, a.timeout)
            sys.stdout.buffer.write(out)
            sys.stderr.buffer.write(err)
            sys.exit(rc)
        elif a.op == "put":
            with open(a.local, "rb") as f:
                b64 = base64.b64encode(f.read()).decode()
            q = a.remote.replace("'", "'\\''")
            rc, out, err = run(a.name, f"base64 -d > '{q}' <<'VSG_EOF'\n{b64}\nVSG_EOF\n")
            sys.stderr.buffer.write(err)
            sys.exit(rc)
        elif a.op == "info":
            print(json.dumps(info(a.name), indent=1))
        elif a.op == "list":
            for n in sorted(os.listdir(RUN)) if os.path.isdir(RUN) else []:
                try:
                    i = info(n)
                except (VmError, ValueError):
                    continue
                rss = f"{i['rss_kib'] // 1024}MiB" if i["rss_kib"] else "-"
                print(f"{n:12} pid={i['pid']:<8} {'running' if i['alive'] else 'stopped':8} "
                      f"tap={i['tap']:15} mac={i['mac']} ip={i['ip']} rss={rss}")
        elif a.op == "link":
            r = qmp(a.name, "set_link", {"name": "n0", "up": a.state == "up"})
            if "error" in r:
                raise VmError(r["error"].get("desc", str(r)))
        elif a.op == "console":
            console(a.name)
        elif a.op == "log":
            with open(os.path.join(vmdir(a.name), "console.log"), "rb") as f:
                sys.stdout.buffer.write(f.read())
        elif a.op == "stop":
            names = a.names
            if a.all:
                names = sorted(os.listdir(RUN)) if os.path.isdir(RUN) else []
            for n in names:
                try:
                    if stop(n):
                        print(f"{n} stopped")
                except VmError as e:
                    print(e, file=sys.stderr)
    except TimeoutError:
        print(f"vm.py: {a.op} {getattr(a, 'name', '')}: timed out", file=sys.stderr)
        sys.exit(124)
    except (VmError, OSError) as e:
        print(f"vm.py: {e}", file=sys.stderr)
        sys.exit(255)


if __name__ == "__main__":
    main()
