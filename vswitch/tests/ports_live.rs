//! Live tests of the port backends against real kernel network stacks.
//!
//! Each test builds its own network namespaces ("VMs") with unique names (the test's pid
//! plus a letter; interface names stay within 15 bytes), runs a tiny forwarding loop over
//! two ports on a thread, and moves real traffic between the namespaces: ICMP echo and a
//! TCP transfer of several MB in both directions with the kernel's default offloads on
//! (checksum offload and TSO), so partial-checksum and GSO frames cross the switch.
//! Traffic stays inside those namespaces. A guard deletes namespaces, links and the
//! persistent taps a test made (`TapPort::delete`, wherever they are) and kills child
//! processes by pid, also when a test fails.
//!
//! Needs root (CAP_NET_ADMIN, `/dev/net/tun`), `ip` and `python3`. Without root every test
//! prints "skipped: needs root" and passes. `ping` is used when installed; otherwise an
//! equivalent ICMP echo client in python3 (raw socket) is used and a note is printed.

use std::os::fd::RawFd;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vip_table::MacAddr;
use vswitch::port::tap::tap_altname;
use vswitch::port::{
    Batch, PacketOptions, PacketPort, Port, PortError, TapOptions, TapPort, VnetHdr,
};
use vswitch::testutil::frames;

// ---------------------------------------------------------------------------------------
// Environment: tools, namespaces, cleanup
// ---------------------------------------------------------------------------------------

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root (CAP_NET_ADMIN, /dev/net/tun, network namespaces)");
            return;
        }
    };
}

fn which(tool: &str) -> Option<String> {
    let out = Command::new("which").arg(tool).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

struct Tools {
    python: String,
    ping: Option<String>,
}

/// Checks `ip`, `python3` and `ping`; fails with a message naming a missing tool.
fn tools() -> Tools {
    for tool in ["ip", "python3"] {
        assert!(
            which(tool).is_some(),
            "live port tests need `{tool}` on PATH (install iproute2 / python3)"
        );
    }
    // Resolve the interpreter once (pyenv shims are slow and PATH-dependent).
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("run python3");
    let python = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(!python.is_empty(), "python3 did not report its executable");
    let ping = which("ping");
    if ping.is_none() {
        eprintln!(
            "note: `ping` is not installed (package iputils-ping); \
             using a python3 raw-socket ICMP echo client instead"
        );
    }
    Tools { python, ping }
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    out
}

/// Runs `ip ARGS`, panicking with stderr on failure.
fn ip(args: &[&str]) {
    let out = run(Command::new("ip").args(args));
    assert!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `ip ARGS`, ignoring failure (cleanup).
fn ip_quiet(args: &[&str]) {
    let _ = Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

const NS_PREFIX: &str = "vswport-";

/// Deletes namespaces left behind by earlier runs of this test binary that were killed
/// (their pid no longer exists). Only names with this file's prefix are touched.
fn remove_stale_namespaces() {
    let out = run(Command::new("ip").args(["netns", "list"]));
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            ip_quiet(&["netns", "del", name]);
        }
    }
}

/// Everything one test created; dropped (also on panic) it stops forwarders, kills child
/// processes by pid, deletes root-namespace links and namespaces.
struct Env {
    /// Process id + test letter: unique per test among concurrently running processes.
    tag: String,
    letter: char,
    netns: Vec<String>,
    links: Vec<String>,
    /// Persistent taps the test made (`TapOptions::persist`): deleted wherever they are.
    taps: Vec<String>,
    children: Vec<Child>,
    stops: Vec<Arc<AtomicBool>>,
    tools: Tools,
}

impl Env {
    /// `letter` distinguishes the tests of one process (they run in parallel).
    fn new(letter: char) -> Self {
        remove_stale_namespaces();
        Self {
            tag: format!("{}{letter}", std::process::id()),
            letter,
            netns: Vec::new(),
            links: Vec::new(),
            taps: Vec::new(),
            children: Vec::new(),
            stops: Vec::new(),
            tools: tools(),
        }
    }

    /// An interface name: one letter, the tag (pid + test letter), one suffix letter.
    fn ifname(&self, kind: char, side: char) -> String {
        let n = format!("{kind}{}{side}", self.tag);
        assert!(n.len() <= 15, "interface name {n} too long");
        n
    }

    fn add_netns(&mut self, side: char) -> String {
        let name = format!("{NS_PREFIX}{}-{}{side}", std::process::id(), self.letter);
        self.netns.push(name.clone());
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        name
    }

    /// Configures a "VM" interface already inside `ns`.
    fn configure_vm_if(&self, ns: &str, ifname: &str, mac: &str, cidr: &str) {
        ip(&["-n", ns, "link", "set", ifname, "address", mac]);
        ip(&["-n", ns, "addr", "add", cidr, "dev", ifname]);
        ip(&["-n", ns, "link", "set", ifname, "up"]);
    }

    fn python_in(&self, ns: &str, script: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, &self.tools.python, "-c", script])
            .args(args);
        cmd
    }

    /// Starts a child and remembers it for cleanup.
    fn spawn(&mut self, mut cmd: Command) -> usize {
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
        self.children.push(child);
        self.children.len() - 1
    }

    /// Waits for child `idx` at most `timeout`; kills it on timeout. Returns (success,
    /// stdout, stderr).
    fn wait(&mut self, idx: usize, timeout: Duration) -> (bool, String, String) {
        let child = &mut self.children[idx];
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        let mut stdout = String::new();
        let mut stderr = String::new();
        use std::io::Read;
        if let Some(o) = child.stdout.as_mut() {
            let _ = o.read_to_string(&mut stdout);
        }
        if let Some(e) = child.stderr.as_mut() {
            let _ = e.read_to_string(&mut stderr);
        }
        if status.is_none() {
            stderr.push_str(&format!("\n[killed after {timeout:?}]"));
        }
        (status.is_some_and(|s| s.success()), stdout, stderr)
    }

    /// Sends 3 ICMP echo requests from `ns` to `dst` and asserts 3 replies.
    fn ping(&mut self, ns: &str, dst: &str) {
        let cmd = match &self.tools.ping {
            Some(ping) => {
                let mut c = Command::new("ip");
                c.args([
                    "netns", "exec", ns, ping, "-c", "3", "-i", "0.2", "-W", "2", dst,
                ]);
                c
            }
            None => self.python_in(ns, PY_PING, &[dst]),
        };
        let idx = self.spawn(cmd);
        let (ok, out, err) = self.wait(idx, Duration::from_secs(15));
        assert!(ok, "ping {dst} from {ns} failed:\n{out}\n{err}");
        eprintln!(
            "ping {dst} from {ns}: ok ({})",
            out.lines().last().unwrap_or("")
        );
    }

    /// Moves `up` MB from `client_ns` to a server at `server_ip` and `down` MB back over one
    /// TCP connection; both directions verified by SHA-256.
    fn tcp_transfer(
        &mut self,
        client_ns: &str,
        server_ns: &str,
        server_ip: &str,
        up: usize,
        down: usize,
    ) {
        let port = "5201";
        let up_bytes = (up << 20).to_string();
        let down_bytes = (down << 20).to_string();
        let server = self.python_in(server_ns, PY_TCP_SERVER, &[server_ip, port, &down_bytes]);
        let srv = self.spawn(server);
        let client = self.python_in(
            client_ns,
            PY_TCP_CLIENT,
            &[server_ip, port, &up_bytes, &down_bytes],
        );
        let cli = self.spawn(client);
        let started = Instant::now();
        let (ok, out, err) = self.wait(cli, Duration::from_secs(60));
        let (sok, sout, serr) = self.wait(srv, Duration::from_secs(5));
        assert!(
            ok && sok,
            "TCP transfer {client_ns} -> {server_ip} failed:\nclient: {out}\n{err}\nserver: {sout}\n{serr}"
        );
        eprintln!(
            "TCP {up} MB up + {down} MB down in {:?}: {}",
            started.elapsed(),
            out.trim()
        );
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for stop in &self.stops {
            stop.store(true, Ordering::SeqCst);
        }
        for child in &mut self.children {
            // Child::kill signals exactly this pid; harmless if it already exited.
            let _ = child.kill();
            let _ = child.wait();
        }
        for tap in &self.taps {
            if let Err(e) = TapPort::delete(tap) {
                eprintln!("cleanup: tap {tap}: {e}");
            }
        }
        for link in &self.links {
            ip_quiet(&["link", "del", link]);
        }
        for ns in &self.netns {
            ip_quiet(&["netns", "del", ns]);
        }
    }
}

/// Three ICMP echo requests over a raw socket; exit 0 iff three replies arrive.
const PY_PING: &str = r#"
import os, socket, struct, sys, time
dst = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
ident = os.getpid() & 0xffff
def csum(b):
    if len(b) % 2: b += b'\0'
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff
ok = 0
for seq in range(3):
    body = struct.pack('!d', time.time()) + bytes(48)
    pkt = struct.pack('!BBHHH', 8, 0, 0, ident, seq) + body
    pkt = pkt[:2] + struct.pack('!H', csum(pkt)) + pkt[4:]
    t0 = time.time(); s.sendto(pkt, (dst, 0)); deadline = t0 + 3
    while time.time() < deadline:
        s.settimeout(max(0.01, deadline - time.time()))
        try: data, addr = s.recvfrom(2048)
        except socket.timeout: break
        ihl = (data[0] & 15) * 4
        t, code, c, i, q = struct.unpack('!BBHHH', data[ihl:ihl + 8])
        if t == 0 and i == ident and q == seq and csum(data[ihl:]) == 0:
            ok += 1; print('reply seq=%d time=%.2f ms' % (seq, (time.time() - t0) * 1000)); break
    time.sleep(0.2)
print('%d/3 replies' % ok)
sys.exit(0 if ok == 3 else 1)
"#;

/// Receives until EOF, then answers "<n> <sha256>\n<sha256 of reply data>\n" + reply data.
const PY_TCP_SERVER: &str = r#"
import hashlib, os, socket, sys
ip, port, down = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((ip, port)); s.listen(1); s.settimeout(60)
c, _ = s.accept(); c.settimeout(60)
h = hashlib.sha256(); n = 0
while True:
    d = c.recv(1 << 16)
    if not d: break
    h.update(d); n += len(d)
reply = os.urandom(down)
c.sendall(('%d %s\n%s\n' % (n, h.hexdigest(), hashlib.sha256(reply).hexdigest())).encode() + reply)
c.close()
"#;

/// Connects (retrying), sends `up` random bytes, reads the reply and checks both hashes.
const PY_TCP_CLIENT: &str = r#"
import hashlib, os, socket, sys, time
ip, port, up, down = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
data = os.urandom(up)
deadline = time.time() + 10
while True:
    try:
        c = socket.create_connection((ip, port), timeout=5); break
    except OSError:
        if time.time() > deadline: raise
        time.sleep(0.1)
c.settimeout(60)
c.sendall(data); c.shutdown(socket.SHUT_WR)
buf = bytearray()
while True:
    d = c.recv(1 << 16)
    if not d: break
    buf += d
line1, line2, rest = bytes(buf).split(b'\n', 2)
n, digest = line1.split()
assert int(n) == up, 'server got %s bytes, sent %d' % (n, up)
assert digest.decode() == hashlib.sha256(data).hexdigest(), 'upstream data corrupted'
assert len(rest) == down, 'got %d bytes back, expected %d' % (len(rest), down)
assert line2.decode() == hashlib.sha256(rest).hexdigest(), 'downstream data corrupted'
print('ok: %d bytes up, %d bytes down, hashes match' % (up, down))
"#;

// ---------------------------------------------------------------------------------------
// A two-port forwarder, as small as the datapath's inner loop
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default, Clone)]
struct FwdStats {
    /// Frames received per port.
    rx: [u64; 2],
    /// Frames forwarded out of each port (sent on port i).
    tx: [u64; 2],
    /// Received GSO super-frames / partial-checksum frames (both ports).
    gso: u64,
    needs_csum: u64,
    /// Largest received frame.
    max_len: usize,
    /// Frames received on port i whose source MAC is the other VM's: a frame the switch
    /// itself sent, read back.
    reread: [u64; 2],
    /// Received frames with an 802.1Q tag in their bytes.
    vlan_tagged: u64,
    /// Send errors other than Gone.
    send_errors: Vec<String>,
    /// Per port: errno and time of the first Gone.
    gone: [Option<(i32, Instant)>; 2],
}

struct Forwarder {
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<FwdStats>>,
    handle: Option<JoinHandle<[Box<dyn Port>; 2]>>,
}

fn poll_fds(fds: [RawFd; 2], timeout_ms: i32) -> [i16; 2] {
    let mut pfds = fds.map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    // SAFETY: pfds is an array of two valid pollfd structs for the duration of the call.
    let n = unsafe { libc::poll(pfds.as_mut_ptr(), 2, timeout_ms) };
    if n <= 0 {
        return [0, 0];
    }
    [pfds[0].revents, pfds[1].revents]
}

fn start_forwarder(env: &mut Env, ports: [Box<dyn Port>; 2], macs: [[u8; 6]; 2]) -> Forwarder {
    let stop = Arc::new(AtomicBool::new(false));
    env.stops.push(Arc::clone(&stop));
    let stats = Arc::new(Mutex::new(FwdStats::default()));
    let (stop2, stats2) = (Arc::clone(&stop), Arc::clone(&stats));
    let handle = std::thread::spawn(move || {
        let mut ports = ports;
        let mut batch = Batch::new(64);
        let mut dead = [false; 2];
        while !(stop2.load(Ordering::SeqCst) || dead[0] && dead[1]) {
            let fds = [0, 1].map(|i| if dead[i] { -1 } else { ports[i].raw_fd() });
            let revents = poll_fds(fds, 50);
            for i in 0..2 {
                // Poll every port on wake-up or timeout; recv_batch never blocks.
                if dead[i] || (revents[i] == 0 && revents[1 - i] != 0) {
                    continue;
                }
                let res = ports[i].recv_batch(&mut batch);
                let mut st = stats2.lock().unwrap_or_else(PoisonError::into_inner);
                match res {
                    Ok(_) => {}
                    Err(PortError::Gone { errno }) => {
                        st.gone[i] = Some((errno, Instant::now()));
                        dead[i] = true;
                        continue;
                    }
                    Err(e) => panic!("recv on {}: {e}", ports[i].name()),
                }
                let tx = &mut ports[1 - i];
                for buf in &batch {
                    let f = buf.frame();
                    st.rx[i] += 1;
                    st.max_len = st.max_len.max(f.len());
                    let v = buf.vnet();
                    st.gso += u64::from(v.is_gso());
                    st.needs_csum += u64::from(v.needs_csum());
                    if f.len() >= 14 && f[12..14] == [0x81, 0x00] {
                        st.vlan_tagged += 1;
                    }
                    if f.len() >= 12 && f[6..12] == macs[1 - i] {
                        st.reread[i] += 1;
                    }
                    if dead[1 - i] {
                        continue;
                    }
                    match tx.send(f, &v) {
                        Ok(()) => st.tx[1 - i] += 1,
                        Err(PortError::Gone { errno }) => {
                            st.gone[1 - i].get_or_insert((errno, Instant::now()));
                            dead[1 - i] = true;
                        }
                        Err(e) => st.send_errors.push(format!(
                            "send on {} ({} bytes, {v:?}): {e}",
                            tx.name(),
                            f.len()
                        )),
                    }
                }
            }
        }
        ports
    });
    Forwarder {
        stop,
        stats,
        handle: Some(handle),
    }
}

impl Forwarder {
    fn stats(&self) -> FwdStats {
        self.stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops the loop and returns the ports.
    fn finish(mut self) -> ([Box<dyn Port>; 2], FwdStats) {
        self.stop.store(true, Ordering::SeqCst);
        let ports = self
            .handle
            .take()
            .expect("joined once")
            .join()
            .expect("forwarder thread panicked");
        let stats = self.stats();
        (ports, stats)
    }

    /// Waits until `cond(stats)` holds, at most `timeout`.
    fn wait_for(&self, timeout: Duration, cond: impl Fn(&FwdStats) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if cond(&self.stats()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        cond(&self.stats())
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn mac_bytes(mac: &str) -> [u8; 6] {
    let mut out = [0u8; 6];
    for (o, part) in out.iter_mut().zip(mac.split(':')) {
        *o = u8::from_str_radix(part, 16).expect("hex MAC");
    }
    out
}

fn read_sysfs_counter(path: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {path}: {e}"))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("parse {path}: {e}"))
}

/// An ARP request (who-has `tpa`, tell `spa` at `sha`), padded to the Ethernet minimum as
/// a NIC sends it.
fn arp_request(sha: [u8; 6], spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    frames::padded(
        &frames::arp_request(MacAddr(sha), spa, tpa),
        frames::ETH_MIN_LEN,
    )
}

/// Receives on `port` until a frame satisfies `pred` or `timeout` passes.
fn recv_until(port: &mut dyn Port, timeout: Duration, pred: impl Fn(&[u8]) -> bool) -> bool {
    let mut batch = Batch::new(16);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        poll_fds([port.raw_fd(), -1], 50);
        match port.recv_batch(&mut batch) {
            Ok(_) => {
                if batch.iter().any(|b| pred(b.frame())) {
                    return true;
                }
            }
            Err(e) => panic!("recv on {}: {e}", port.name()),
        }
    }
    false
}

fn is_arp_reply_from(f: &[u8], spa: [u8; 4]) -> bool {
    f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[20..22] == [0, 2] && f[28..32] == spa
}

/// Runs `ip ARGS` on another thread after 100 ms while this thread blocks in poll() on
/// `fd` (2 s at most); returns the revents and how long after the command poll woke.
fn poll_wakes_during(fd: RawFd, args: &[&str]) -> (i16, Duration) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        ip(&refs);
        let _ = tx.send(Instant::now());
    });
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: pfd is one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut pfd, 1, 2000) };
    let woke = Instant::now();
    t.join().expect("ip thread");
    let done = rx.recv().expect("ip ran");
    assert!(n >= 0, "poll failed");
    (pfd.revents, woke.saturating_duration_since(done))
}

fn describe_revents(r: i16) -> String {
    let mut v = Vec::new();
    for (bit, name) in [
        (libc::POLLIN, "POLLIN"),
        (libc::POLLERR, "POLLERR"),
        (libc::POLLHUP, "POLLHUP"),
        (libc::POLLNVAL, "POLLNVAL"),
    ] {
        if r & bit != 0 {
            v.push(name);
        }
    }
    if v.is_empty() {
        "nothing (timeout)".into()
    } else {
        v.join("|")
    }
}

// ---------------------------------------------------------------------------------------
// Tap tests
// ---------------------------------------------------------------------------------------

struct TapPair {
    ns: [String; 2],
    taps: [String; 2],
    macs: [&'static str; 2],
    ips: [String; 2],
}

/// Two taps opened by the switch, each moved into its own namespace and configured.
fn tap_pair(
    env: &mut Env,
    letter: char,
    subnet: u8,
    opts: [TapOptions; 2],
) -> (TapPair, [Box<dyn Port>; 2]) {
    let taps = [env.ifname('t', 'a'), env.ifname('t', 'b')];
    let ns = [env.add_netns('a'), env.add_netns('b')];
    let macs = match letter {
        'a' => ["02:00:00:99:01:01", "02:00:00:99:01:02"],
        _ => ["02:00:00:99:02:01", "02:00:00:99:02:02"],
    };
    let ips = [format!("10.199.{subnet}.1"), format!("10.199.{subnet}.2")];
    let mut ports: Vec<Box<dyn Port>> = Vec::new();
    for i in 0..2 {
        let port = TapPort::open(&taps[i], &opts[i]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(port.name(), taps[i]);
        ports.push(Box::new(port));
        // The tap's netdev moves into the VM namespace; the fd stays with the switch.
        ip(&["link", "set", &taps[i], "netns", &ns[i]]);
        env.configure_vm_if(&ns[i], &taps[i], macs[i], &format!("{}/24", ips[i]));
    }
    let ports: [Box<dyn Port>; 2] = match ports.try_into() {
        Ok(p) => p,
        Err(_) => unreachable!("two ports"),
    };
    (
        TapPair {
            ns,
            taps,
            macs,
            ips,
        },
        ports,
    )
}

#[test]
fn tap_ping_and_tcp_with_offloads() {
    require_root!();
    let mut env = Env::new('a');
    let (pair, ports) = tap_pair(&mut env, 'a', 1, [TapOptions::default(); 2]);
    for p in &ports {
        assert!(p.offloads().vnet_hdr && p.offloads().rx_gso);
    }
    let fwd = start_forwarder(&mut env, ports, pair.macs.map(mac_bytes));
    env.ping(&pair.ns[0], &pair.ips[1]);
    env.tcp_transfer(&pair.ns[0], &pair.ns[1], &pair.ips[1], 8, 4);
    let (ports, st) = fwd.finish();
    eprintln!("tap forwarder: {st:?}");
    for p in &ports {
        eprintln!("{}: {:?}", p.name(), p.io_counters());
    }
    assert!(
        st.send_errors.is_empty(),
        "send errors: {:?}",
        st.send_errors
    );
    assert!(
        st.gso > 0 || st.needs_csum > 0,
        "no GSO or partial-checksum frame crossed the switch: vnet path not exercised"
    );
    assert_eq!(st.gone, [None, None]);
    assert_eq!(st.reread, [0, 0]);
}

#[test]
fn tap_vanish_is_gone_and_other_port_keeps_working() {
    require_root!();
    let mut env = Env::new('u');
    let (pair, ports) = tap_pair(&mut env, 'u', 2, [TapOptions::default(); 2]);
    let fwd = start_forwarder(&mut env, ports, pair.macs.map(mac_bytes));
    env.ping(&pair.ns[0], &pair.ips[1]);
    // Delete tap A's netdev from inside its namespace while the switch holds the fd.
    let deleted = Instant::now();
    ip(&["-n", &pair.ns[0], "link", "del", &pair.taps[0]]);
    assert!(
        fwd.wait_for(Duration::from_secs(2), |s| s.gone[0].is_some()),
        "recv on the deleted tap did not report Gone within 2 s"
    );
    let (ports, st) = fwd.finish();
    let (errno, when) = st.gone[0].expect("gone");
    eprintln!(
        "tap vanish: Gone (errno {errno} = {}) {:?} after `ip link del`",
        std::io::Error::from_raw_os_error(errno),
        when.duration_since(deleted)
    );
    assert!(st.gone[1].is_none(), "the other tap must not be gone");
    let [mut a, mut b] = ports;
    assert!(!a.is_present());
    let mut batch = Batch::new(4);
    assert!(matches!(
        a.recv_batch(&mut batch),
        Err(PortError::Gone { .. })
    ));
    assert!(matches!(
        a.send(&[0u8; 60], &VnetHdr::default()),
        Err(PortError::Gone { .. })
    ));
    // The other tap still works both ways: ask VM B for its MAC, get the answer.
    assert!(b.is_present());
    let sha = mac_bytes(pair.macs[0]);
    let req = arp_request(sha, [10, 199, 2, 1], [10, 199, 2, 2]);
    b.send(&req, &VnetHdr::default())
        .expect("send on the surviving tap");
    assert!(
        recv_until(b.as_mut(), Duration::from_secs(3), |f| is_arp_reply_from(
            f,
            [10, 199, 2, 2]
        )),
        "no ARP reply on the surviving tap"
    );
}

#[test]
fn tap_moved_down_and_deleted() {
    // Straight from the fd, without the forwarder: a moved tap and a tap that is down are
    // not gone; a deleted tap is, on both send and receive.
    require_root!();
    let mut env = Env::new('e');
    let ns = env.add_netns('a');
    let name = env.ifname('t', 'a');
    let mut port = TapPort::open(&name, &TapOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let arp = arp_request([2, 0, 0, 0, 0, 1], [10, 199, 7, 9], [10, 199, 7, 1]);
    ip(&["link", "set", &name, "netns", &ns]);
    env.configure_vm_if(&ns, &name, "02:00:00:99:07:01", "10.199.7.1/24");
    assert!(
        port.is_present(),
        "a tap moved to another netns must not look gone"
    );
    port.send(&arp, &VnetHdr::default())
        .expect("send on a moved tap");
    assert!(
        recv_until(&mut port, Duration::from_secs(3), |f| is_arp_reply_from(
            f,
            [10, 199, 7, 1]
        )),
        "no ARP reply through a tap moved to another namespace"
    );
    ip(&["-n", &ns, "link", "set", &name, "down"]);
    let w = port.send(&arp, &VnetHdr::default());
    eprintln!("send on a tap that is down: {w:?}");
    assert!(!matches!(w, Err(PortError::Gone { .. })), "{w:?}");
    let mut batch = Batch::new(2);
    let r = port.recv_batch(&mut batch);
    eprintln!("recv on a tap that is down: {r:?}");
    assert!(r.is_ok(), "{r:?}");
    assert!(port.is_present());
    // Drain anything pending, then delete the netdev while blocked in poll on the fd.
    while port.recv_batch(&mut batch).is_ok_and(|n| n > 0) {}
    let (revents, after) = poll_wakes_during(port.raw_fd(), &["-n", &ns, "link", "del", &name]);
    eprintln!(
        "poll on the tap fd during delete: {} ({after:?} after the command returned)",
        describe_revents(revents)
    );
    assert!(revents != 0, "poll did not wake when the tap was deleted");
    assert!(!port.is_present());
    let w = port.send(&arp, &VnetHdr::default());
    eprintln!("send after delete: {w:?}");
    assert!(matches!(w, Err(PortError::Gone { .. })), "{w:?}");
    let r = port.recv_batch(&mut batch);
    eprintln!("recv after delete: {r:?}");
    assert!(matches!(r, Err(PortError::Gone { .. })), "{r:?}");
}

fn ip_out(args: &[&str]) -> (bool, String) {
    let out = run(Command::new("ip").args(args));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

const PERSIST: TapOptions = TapOptions {
    vnet_hdr: true,
    offload_flags: vswitch::port::tap::DEFAULT_TUN_OFFLOADS,
    bring_up: true,
    multi_queue: false,
    persist: true,
};

#[test]
fn persistent_tap_outlives_its_port_and_is_found_again_renamed_in_its_namespace() {
    // What the daemon's `tap` ports do: the tap stays (with the namespace's address on it)
    // when the port closes, and the next open finds it in that namespace under its altname,
    // renamed, and works; `delete` removes it once the port closes.
    require_root!();
    let mut env = Env::new('k');
    let ns = env.add_netns('a');
    let name = env.ifname('t', 'k');
    env.taps.push(name.clone());
    let port = TapPort::open(&name, &PERSIST).unwrap_or_else(|e| panic!("{e}"));
    let (_, shown) = ip_out(&["-d", "link", "show", "dev", &name]);
    assert!(
        shown.contains(&format!("altname {}", tap_altname(&name))),
        "{shown}"
    );
    ip(&["link", "set", &name, "netns", &ns]);
    ip(&["-n", &ns, "link", "set", &name, "name", "eth0"]);
    env.configure_vm_if(&ns, "eth0", "02:00:00:99:0b:01", "10.199.11.1/24");
    drop(port);
    let (ok, addr) = ip_out(&["-n", &ns, "-br", "addr", "show", "dev", "eth0"]);
    assert!(ok && addr.contains("10.199.11.1/24"), "after close: {addr}");

    let mut port = TapPort::open(&name, &PERSIST).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(port.name(), "eth0", "not the tap in the namespace");
    assert!(
        !std::path::Path::new("/sys/class/net").join(&name).exists(),
        "a second tap was created in the root namespace"
    );
    assert!(port.offloads().vnet_hdr);
    // The carrier came back with the attach; the kernel activates the link's queue only
    // when its link watcher runs (up to a second later): until then the namespace's
    // replies are dropped, so ask a few times.
    let arp = arp_request([2, 0, 0, 0, 0, 1], [10, 199, 11, 9], [10, 199, 11, 1]);
    let replied = (0..10).any(|_| {
        port.send(&arp, &VnetHdr::default()).expect("send");
        recv_until(&mut port, Duration::from_millis(300), |f| {
            is_arp_reply_from(f, [10, 199, 11, 1])
        })
    });
    assert!(replied, "no ARP reply through the re-attached tap");
    let again = TapPort::open(&name, &PERSIST);
    assert!(
        matches!(&again, Err(PortError::Setup { source, .. }) if source.raw_os_error() == Some(libc::EBUSY)),
        "a second open of a held tap: {again:?}"
    );

    // Deleting while the port holds it: persistence off, the device goes when it closes.
    assert!(TapPort::delete(&name).unwrap_or_else(|e| panic!("{e}")));
    assert!(ip_out(&["-n", &ns, "link", "show", "dev", "eth0"]).0);
    drop(port);
    let deadline = Instant::now() + Duration::from_secs(3);
    while ip_out(&["-n", &ns, "link", "show", "dev", "eth0"]).0 {
        assert!(Instant::now() < deadline, "the tap outlived its deletion");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!TapPort::delete(&name).unwrap_or_else(|e| panic!("{e}")));
}

#[test]
fn delete_finds_persistent_taps_and_never_touches_other_devices() {
    require_root!();
    let mut env = Env::new('n');
    let ns = env.add_netns('a');
    let exists = |n: &str| std::path::Path::new("/sys/class/net").join(n).exists();

    // Left in the root namespace by a port that closed.
    let root_tap = env.ifname('t', 'r');
    env.taps.push(root_tap.clone());
    drop(TapPort::open(&root_tap, &PERSIST).unwrap_or_else(|e| panic!("{e}")));
    assert!(exists(&root_tap), "a persistent tap vanished with its port");
    assert!(TapPort::delete(&root_tap).unwrap_or_else(|e| panic!("{e}")));
    assert!(!exists(&root_tap));

    // Moved into a namespace (not renamed), nobody holds it.
    let moved = env.ifname('t', 'm');
    env.taps.push(moved.clone());
    drop(TapPort::open(&moved, &PERSIST).unwrap_or_else(|e| panic!("{e}")));
    ip(&["link", "set", &moved, "netns", &ns]);
    assert!(TapPort::delete(&moved).unwrap_or_else(|e| panic!("{e}")));
    assert!(!ip_out(&["-n", &ns, "link", "show", "dev", &moved]).0);

    // A veth of that name is not a tap: refused, and it stays.
    let veth = env.ifname('v', 'a');
    env.links.push(veth.clone());
    ip(&[
        "link",
        "add",
        &veth,
        "type",
        "veth",
        "peer",
        "name",
        &env.ifname('v', 'b'),
    ]);
    let r = TapPort::delete(&veth);
    assert!(r.is_err(), "{r:?}");
    assert!(exists(&veth), "delete removed a veth");
    assert!(!TapPort::delete(&env.ifname('t', 'z')).unwrap_or_else(|e| panic!("{e}")));
}

#[test]
fn fresh_tap_is_silent_before_a_vm_uses_it() {
    // Regression: a tap brought up in the switch's namespace used to run the host's IPv6
    // autoconfiguration (MLD reports, DAD, router solicitations from the tap's random MAC),
    // which the switch then counted as spoofing on a port no VM used yet.
    require_root!();
    let env = Env::new('q');
    let name = env.ifname('t', 'q');
    let mut port = TapPort::open(&name, &TapOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let mut batch = Batch::new(16);
    let mut seen = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        if let Ok(n) = port.recv_batch(&mut batch) {
            for k in 0..n {
                if let Some(b) = batch.get(k) {
                    seen.push(b.frame().len());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        seen.is_empty(),
        "a fresh tap delivered {} frames (sizes {seen:?}) with nothing attached",
        seen.len()
    );
}

#[test]
fn tap_multi_queue_ports_share_one_device() {
    // IFF_MULTI_QUEUE: each open of the same name attaches one more queue (one port each);
    // the kernel spreads flows over them. Deleting the device kills every queue.
    require_root!();
    let mut env = Env::new('q');
    let ns = env.add_netns('a');
    let name = env.ifname('t', 'a');
    let opts = TapOptions {
        multi_queue: true,
        ..TapOptions::default()
    };
    let mut queues: Vec<TapPort> = (0..2)
        .map(|_| TapPort::open(&name, &opts).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    ip(&["link", "set", &name, "netns", &ns]);
    env.configure_vm_if(&ns, &name, "02:00:00:99:08:01", "10.199.8.1/24");
    // ARP requests for many different addresses: replies leave on some queue.
    let mut batch = Batch::new(16);
    let mut replies = 0;
    let deadline = Instant::now() + Duration::from_secs(3);
    while replies == 0 && Instant::now() < deadline {
        for q in queues.iter_mut() {
            let arp = arp_request([2, 0, 0, 0, 0, 1], [10, 199, 8, 9], [10, 199, 8, 1]);
            q.send(&arp, &VnetHdr::default()).expect("send on a queue");
        }
        std::thread::sleep(Duration::from_millis(50));
        for q in queues.iter_mut() {
            q.recv_batch(&mut batch).expect("recv on a queue");
            replies += batch
                .iter()
                .filter(|b| is_arp_reply_from(b.frame(), [10, 199, 8, 1]))
                .count();
        }
    }
    assert!(replies > 0, "no ARP reply on any queue");
    ip(&["-n", &ns, "link", "del", &name]);
    for q in queues.iter_mut() {
        assert!(!q.is_present());
        assert!(matches!(
            q.recv_batch(&mut batch),
            Err(PortError::Gone { .. })
        ));
    }
}

#[test]
fn tap_without_vnet_hdr_gets_software_segmentation() {
    // Port A carries vnet headers (GSO frames arrive), port B does not: every GSO frame
    // from A must be segmented and checksummed in software for B, or TCP breaks.
    require_root!();
    let mut env = Env::new('m');
    let plain = TapOptions {
        vnet_hdr: false,
        ..TapOptions::default()
    };
    let (pair, ports) = tap_pair(&mut env, 'm', 5, [TapOptions::default(), plain]);
    assert!(!ports[1].offloads().vnet_hdr);
    let fwd = start_forwarder(&mut env, ports, pair.macs.map(mac_bytes));
    env.ping(&pair.ns[0], &pair.ips[1]);
    env.tcp_transfer(&pair.ns[0], &pair.ns[1], &pair.ips[1], 8, 4);
    let (ports, st) = fwd.finish();
    eprintln!("mixed forwarder: {st:?}");
    for p in &ports {
        eprintln!("{}: {:?}", p.name(), p.io_counters());
    }
    assert!(
        st.send_errors.is_empty(),
        "send errors: {:?}",
        st.send_errors
    );
    let b = ports[1].io_counters();
    assert!(st.gso > 0, "expected GSO frames from the vnet tap");
    assert!(
        b.tx_segments > 0,
        "expected software segments on the plain tap"
    );
}

// ---------------------------------------------------------------------------------------
// AF_PACKET tests
// ---------------------------------------------------------------------------------------

struct VethPair {
    ns: [String; 2],
    host: [String; 2],
    macs: [&'static str; 2],
    ips: [String; 2],
}

/// Per VM a veth pair: the VM side in its own namespace, the host side up in the root
/// namespace (IPv6 off so the host stack stays quiet), with a PacketPort on it.
fn veth_pair(env: &mut Env, subnet: u8, macs: [&'static str; 2]) -> (VethPair, [Box<dyn Port>; 2]) {
    let host = [env.ifname('h', 'a'), env.ifname('h', 'b')];
    let guest = [env.ifname('g', 'a'), env.ifname('g', 'b')];
    let ns = [env.add_netns('a'), env.add_netns('b')];
    let ips = [format!("10.199.{subnet}.1"), format!("10.199.{subnet}.2")];
    let mut ports: Vec<Box<dyn Port>> = Vec::new();
    for i in 0..2 {
        env.links.push(host[i].clone());
        ip(&[
            "link", "add", &host[i], "type", "veth", "peer", "name", &guest[i],
        ]);
        let _ = std::fs::write(
            format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", host[i]),
            "1",
        );
        ip(&["link", "set", &host[i], "up"]);
        ip(&["link", "set", &guest[i], "netns", &ns[i]]);
        env.configure_vm_if(&ns[i], &guest[i], macs[i], &format!("{}/24", ips[i]));
        let port =
            PacketPort::open(&host[i], &PacketOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            port.ignores_outgoing(),
            "PACKET_IGNORE_OUTGOING unsupported?"
        );
        ports.push(Box::new(port));
    }
    let ports: [Box<dyn Port>; 2] = match ports.try_into() {
        Ok(p) => p,
        Err(_) => unreachable!("two ports"),
    };
    (
        VethPair {
            ns,
            host,
            macs,
            ips,
        },
        ports,
    )
}

#[test]
fn af_packet_ping_and_tcp_with_offloads() {
    require_root!();
    let mut env = Env::new('p');
    let (pair, ports) = veth_pair(&mut env, 3, ["02:00:00:99:03:01", "02:00:00:99:03:02"]);
    let fwd = start_forwarder(&mut env, ports, pair.macs.map(mac_bytes));
    env.ping(&pair.ns[0], &pair.ips[1]);
    env.tcp_transfer(&pair.ns[0], &pair.ns[1], &pair.ips[1], 8, 4);
    let (ports, st) = fwd.finish();
    eprintln!("af_packet forwarder: {st:?}");
    for p in &ports {
        eprintln!("{}: {:?}", p.name(), p.io_counters());
    }
    assert!(
        st.send_errors.is_empty(),
        "send errors: {:?}",
        st.send_errors
    );
    assert!(
        st.gso > 0 || st.needs_csum > 0,
        "no GSO or partial-checksum frame crossed the switch: vnet path not exercised"
    );
    // No frame the switch sent is read back: nothing with the other VM's source MAC, no
    // PACKET_OUTGOING frames, and never more frames than the host veth received.
    assert_eq!(
        st.reread,
        [0, 0],
        "frames sent by the switch were read back"
    );
    for (i, p) in ports.iter().enumerate() {
        let c = p.io_counters();
        assert_eq!(
            c.rx_outgoing_skipped,
            0,
            "{}: outgoing frames reached the socket",
            p.name()
        );
        let host_rx = read_sysfs_counter(&format!(
            "/sys/class/net/{}/statistics/rx_packets",
            pair.host[i]
        ));
        let host_tx = read_sysfs_counter(&format!(
            "/sys/class/net/{}/statistics/tx_packets",
            pair.host[i]
        ));
        eprintln!(
            "{}: port rx {} tx {} / veth rx_packets {host_rx} tx_packets {host_tx}",
            p.name(),
            c.rx_frames,
            c.tx_frames
        );
        assert!(
            c.rx_frames <= host_rx,
            "{}: read more frames than arrived",
            p.name()
        );
        assert!(c.tx_frames <= host_tx);
    }
}

/// Sends 30 frames tagged VLAN 100 (ethertype 0x88b5 inside) from `ifname` to `dst_mac`.
const PY_VLAN_SEND: &str = r#"
import socket, sys, time
ifname, dst = sys.argv[1], bytes.fromhex(sys.argv[2].replace(':', ''))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind((ifname, 0))
src = s.getsockname()[4]
frame = dst + src + bytes([0x81, 0x00, 0x00, 100, 0x88, 0xb5]) + b'vswitch-vlan-test'
frame += bytes(64 - len(frame))
for i in range(30):
    s.send(frame); time.sleep(0.05)
"#;

/// Waits for 3 frames with ethertype 0x88b5 whose VLAN tag (from PACKET_AUXDATA, where the
/// receiving kernel puts it) is 100.
const PY_VLAN_RECV: &str = r#"
import socket, struct, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.setsockopt(263, 8, 1)  # SOL_PACKET, PACKET_AUXDATA
s.bind((sys.argv[1], 0)); s.settimeout(0.2)
got = 0; untagged = 0; deadline = time.time() + 10
while time.time() < deadline and got < 3:
    try: data, anc, flags, addr = s.recvmsg(2048, socket.CMSG_SPACE(32))
    except socket.timeout: continue
    if data[12:14] != b'\x88\xb5' or b'vswitch-vlan-test' not in data: continue
    tci = None
    for level, ty, d in anc:
        if level == 263 and ty == 8:
            status, _, _, _, _, vtci, _ = struct.unpack('IIIHHHH', d[:20])
            if status & 0x10: tci = vtci & 0xfff
    if tci == 100: got += 1
    else: untagged += 1
print('tagged frames: %d, without tag: %d' % (got, untagged))
sys.exit(0 if got >= 3 else 1)
"#;

#[test]
fn af_packet_vlan_tags_survive() {
    // The receiving kernel moves any 802.1Q tag into skb metadata before AF_PACKET sees the
    // frame; the port must restore it from PACKET_AUXDATA, or the tag is silently lost and
    // VM B gets the frame on the wrong (untagged) network.
    require_root!();
    let mut env = Env::new('l');
    let (pair, ports) = veth_pair(&mut env, 10, ["02:00:00:99:0a:01", "02:00:00:99:0a:02"]);
    let guest = [env.ifname('g', 'a'), env.ifname('g', 'b')];
    let fwd = start_forwarder(&mut env, ports, pair.macs.map(mac_bytes));
    let recv = env.python_in(&pair.ns[1], PY_VLAN_RECV, &[&guest[1]]);
    let recv = env.spawn(recv);
    std::thread::sleep(Duration::from_millis(300));
    let send = env.python_in(&pair.ns[0], PY_VLAN_SEND, &[&guest[0], pair.macs[1]]);
    let send = env.spawn(send);
    let (rok, rout, rerr) = env.wait(recv, Duration::from_secs(15));
    let (sok, sout, serr) = env.wait(send, Duration::from_secs(15));
    let (_ports, st) = fwd.finish();
    eprintln!("vlan forwarder: {st:?}");
    eprintln!("VM B: {}", rout.trim());
    assert!(sok, "VLAN sender failed: {sout}\n{serr}");
    assert!(
        st.vlan_tagged >= 3,
        "the switch saw no frame with its 802.1Q tag in the bytes"
    );
    assert!(
        rok,
        "VM B did not receive the frames on VLAN 100: {rout}\n{rerr}"
    );
    assert!(
        st.send_errors.is_empty(),
        "send errors: {:?}",
        st.send_errors
    );
}

#[test]
fn af_packet_vanish_is_gone_and_other_port_keeps_working() {
    require_root!();
    let mut env = Env::new('v');
    let (pair, ports) = veth_pair(&mut env, 4, ["02:00:00:99:04:01", "02:00:00:99:04:02"]);
    let fwd = start_forwarder(&mut env, ports, pair.macs.map(mac_bytes));
    env.ping(&pair.ns[0], &pair.ips[1]);
    let deleted = Instant::now();
    ip(&["link", "del", &pair.host[0]]);
    assert!(
        fwd.wait_for(Duration::from_secs(2), |s| s.gone[0].is_some()),
        "the AF_PACKET port of the deleted veth did not report Gone within 2 s"
    );
    let (ports, st) = fwd.finish();
    let (errno, when) = st.gone[0].expect("gone");
    eprintln!(
        "af_packet vanish: Gone (errno {errno} = {}) {:?} after `ip link del`",
        std::io::Error::from_raw_os_error(errno),
        when.duration_since(deleted)
    );
    assert!(st.gone[1].is_none());
    let [mut a, mut b] = ports;
    assert!(!a.is_present());
    let w = a.send(&[0u8; 60], &VnetHdr::default());
    assert!(matches!(w, Err(PortError::Gone { .. })), "{w:?}");
    // The surviving port works both ways.
    assert!(b.is_present());
    let req = arp_request(mac_bytes(pair.macs[0]), [10, 199, 4, 1], [10, 199, 4, 2]);
    b.send(&req, &VnetHdr::default())
        .expect("send on the surviving port");
    assert!(
        recv_until(b.as_mut(), Duration::from_secs(3), |f| is_arp_reply_from(
            f,
            [10, 199, 4, 2]
        )),
        "no ARP reply on the surviving port"
    );
}

#[test]
fn af_packet_link_down_is_not_gone() {
    // ENETDOWN also comes when the link is merely set down: the port must not die.
    require_root!();
    let mut env = Env::new('d');
    let (pair, ports) = veth_pair(&mut env, 6, ["02:00:00:99:06:01", "02:00:00:99:06:02"]);
    let [mut a, mut b] = ports;
    ip(&["link", "set", &pair.host[0], "down"]);
    let mut batch = Batch::new(4);
    let r = a.recv_batch(&mut batch);
    eprintln!("recv after link down: {r:?}");
    assert!(r.is_ok(), "{r:?}");
    let w = a.send(
        &arp_request([2, 0, 0, 0, 0, 9], [10, 199, 6, 9], [10, 199, 6, 1]),
        &VnetHdr::default(),
    );
    eprintln!("send while link down: {w:?}");
    assert!(matches!(w, Err(PortError::LinkDown)), "{w:?}");
    assert!(a.is_present());
    ip(&["link", "set", &pair.host[0], "up"]);
    // Back up: the kernel re-hooks the socket; frames flow again.
    let req = arp_request(
        mac_bytes("02:00:00:99:06:09"),
        [10, 199, 6, 9],
        [10, 199, 6, 1],
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut ok = false;
    while !ok && Instant::now() < deadline {
        let _ = a.send(&req, &VnetHdr::default());
        ok = recv_until(a.as_mut(), Duration::from_millis(300), |f| {
            is_arp_reply_from(f, [10, 199, 6, 1])
        });
    }
    assert!(ok, "no ARP reply after the link came back up");
    // Deleted while blocked in poll: the socket error wakes the poller.
    while a.recv_batch(&mut batch).is_ok_and(|n| n > 0) {}
    let (revents, after) = poll_wakes_during(a.raw_fd(), &["link", "del", &pair.host[0]]);
    eprintln!(
        "poll on the AF_PACKET fd during delete: {} ({after:?} after the command returned)",
        describe_revents(revents)
    );
    assert!(revents != 0, "poll did not wake when the veth was deleted");
    // A send is the first call to notice.
    let w = a.send(&req, &VnetHdr::default());
    eprintln!("send after delete: {w:?}");
    assert!(matches!(w, Err(PortError::Gone { .. })), "{w:?}");
    assert!(!a.is_present());
    assert!(matches!(
        a.recv_batch(&mut batch),
        Err(PortError::Gone { .. })
    ));
    // Down first, deleted later: the deletion raises nothing on the socket; the port finds
    // out from is_present() / the next empty receive.
    ip(&["link", "set", &pair.host[1], "down"]);
    // Frames queued before the link went down are still delivered first.
    // The first receive reports ENETDOWN (link down: Ok(0)); frames queued before the
    // link went down are delivered by the next ones.
    for _ in 0..3 {
        b.recv_batch(&mut batch).expect("recv while down");
    }
    assert!(b.is_present());
    ip(&["link", "del", &pair.host[1]]);
    assert!(!b.is_present(), "deleted while down: still looks present");
    let mut results = Vec::new();
    for _ in 0..3 {
        let r = b.recv_batch(&mut batch);
        let gone = matches!(r, Err(PortError::Gone { .. }));
        results.push(format!("{r:?}"));
        if gone {
            break;
        }
    }
    eprintln!("recv after down-then-delete: {results:?}");
    assert!(
        results.last().is_some_and(|r| r.starts_with("Err(Gone")),
        "{results:?}"
    );
}
