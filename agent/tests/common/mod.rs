//! Live-test harness: "VMs" as network namespaces attached to a real `vswitch run` process.
//!
//! ```ignore
//! if !common::require_root() { return; }            // prints "SKIPPED: needs root (live test)"
//! let lab = Lab::new("vipt", 203);                    // name ends with g-z; address block 203
//! lab.add_vm(VmSpec::new("vm1", Backend::Tap));       // 10.203.0.1/24, fdcb::1/64, 02:cb:00:00:00:01
//! lab.add_vm(VmSpec::new("vm2", Backend::Netdev).vlan(10).port_toml("dest_check = false"));
//! lab.set_extra_config(&vip_toml("web", "active-passive", &[lab.ip4(100).into()], &["vm1", "vm2"], &[]));
//! lab.start();                                        // namespaces, veths, switch, taps adopted, ports up
//! let vm1 = lab.vm("vm1");
//! let cap = lab.capture(&vm1);                        // tcpdump -Q in, returns once capturing
//! vm1.ping_ok(lab.ip4(2), 3);
//! let frames = cap.stop();                            // parsed pcap: frames.iter().filter(|f| f.arp()...)
//! assert_eq!(lab.vip_owners("web"), ["vm1"]);         // `ctl --json show vips`, parsed
//! lab.finish();                                       // teardown + assert nothing is left on the host
//! ```
//!
//! A [`Lab`] owns everything a test creates and removes it in `Drop`, also when the test
//! panics (then it first prints the tail of the switch log and `show ports`, and keeps its
//! directory with config, logs and captures):
//! - the switch child process (config written to a private temp dir, a private control
//!   socket, stdout+stderr to a log file);
//! - one network namespace per VM (`vsl-<tag>-<vm>`), and the links it made in the root
//!   namespace (veth host ends, persistent taps) — deleted by name, and only those;
//! - the switch's own taps, which are persistent (they outlive the switch): after stopping
//!   it, teardown runs `vswitch cleanup` on the lab's config, which deletes them wherever
//!   they are (renamed `eth0` in a VM namespace, or still in the root namespace); deleting a
//!   namespace also deletes a tap inside it (it does not come back to the root namespace);
//! - background processes (tcpdump, ping, python servers, keepalived, …) — killed by the
//!   PID we got when we spawned them, together with their descendants; processes still
//!   inside one of the lab's namespaces after that (daemons that detached) are killed too,
//!   since they would keep the namespace and its devices alive.
//!
//! Names: a test picks a short lab name (≤ 4 chars ending with a letter g-z, e.g. `l2t` for
//! "L2, tap backend"); the lab tag is that name plus the test process' PID in hex, so two
//! test binaries (or two developers) never collide. Interface names are `<tag><vm>` (≤ 15
//! bytes, checked). Inside a VM namespace the NIC is always called [`VM_DEV`] (`eth0`),
//! whatever the backend.
//!
//! Backends ([`Backend`]):
//! - `Tap`: the switch creates the tap (`tap = "<tag><vm>"`); once it exists the lab moves it
//!   into the VM namespace, renames it `eth0`, sets MAC/IPs and brings it up. The switch
//!   keeps using its fd; the tap is persistent, so a switch restart (or crash) leaves it in
//!   the VM with its addresses, and the restarted switch finds it there again by its
//!   altname. (Until it is moved, the tap is up in the root namespace with a
//!   random MAC, so the host's IPv6 autoconf frames reach the switch from it: expect one or
//!   two `mac_spoof` drops per tap port at start, and `tx_error`s for frames the switch
//!   sent while the moved tap was still down. Compare counters before/after, not to 0.)
//! - `Netdev`: the lab creates a veth pair before the switch starts (host end in the root
//!   namespace with IPv6 disabled so the host stack stays silent, `eth0` in the VM), and the
//!   config says `netdev = "<host end>"`.
//!
//! Offloads are left at their defaults in the VMs (TSO/GSO and partial checksums stay on):
//! TCP must work through the switch in that state.
//!
//! Addresses: a lab gets a number `net` (one per test); VM number `i` has `10.<net>.0.<i>/24`,
//! `fd<net hex>::<i>/64` (added `nodad`; DAD is off and IPv6 addresses survive link down in
//! VM namespaces) and MAC `02:<net hex>:00:00:00:<i>`.
//!
//! Commands run with a time limit ([`CMD_TIMEOUT`]) and never hang on a daemon that keeps
//! their output pipes open. Helpers for HA tests: [`Lab::udp_echo`] / [`Lab::udp_probe`]
//! measure a client's outage towards a VIP, [`Proc::signal_tree`] kills a daemon with its
//! children (a keepalived crash), [`vip_toml`] writes `[[vip]]` tables.

#![allow(dead_code)] // each test binary uses a subset of the harness

pub mod guests;

use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The switch binary under test.
pub const VSWITCH: &str = env!("CARGO_BIN_EXE_vswitch");
/// The NIC's name inside every VM namespace.
pub const VM_DEV: &str = "eth0";
/// Default time limit for one foreground command.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// Root check, polling
// ---------------------------------------------------------------------------------------

/// Whether we run as root (live tests need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// True if the test may run; otherwise prints the skip notice (tests `return` on false).
pub fn require_root() -> bool {
    if is_root() {
        return true;
    }
    println!("SKIPPED: needs root (live test)");
    false
}

/// Polls `f` every 50 ms until it returns true or `timeout` passes. Returns the time it
/// took, or `None` on timeout.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t = Instant::now();
    loop {
        if f() {
            return Some(t.elapsed());
        }
        if t.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) on a PID we spawned ourselves and have not reaped yet (the
        // `Child` is still held by the caller), so it cannot name a recycled process.
        unsafe { libc::kill(pid, sig) };
    }
}

/// PIDs of every descendant of `pid` (children first), from `/proc/<pid>/task/*/children`.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let kids = fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for k in kids
                .split_whitespace()
                .filter_map(|k| k.parse::<u32>().ok())
            {
                if !out.contains(&k) {
                    out.push(k);
                    todo.push(k);
                }
            }
        }
    }
    out
}

/// Signals `child` and all its descendants (e.g. keepalived's VRRP child together with its
/// parent, which is how a crash looks). Only processes we started, and theirs.
fn signal_tree(child: &Child, sig: libc::c_int) {
    let kids = descendants(child.id());
    signal(child.id(), sig);
    for k in kids {
        signal_foreign(k, sig);
    }
}

/// kill(2) on a descendant of one of our children (not reaped by us: the PID may in
/// theory have been recycled between listing and signalling; the window is microseconds
/// and we only ever list descendants of processes we own).
fn signal_foreign(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        if pid > 1 {
            // SAFETY: plain kill(2) syscall; no memory is involved.
            unsafe { libc::kill(pid, sig) };
        }
    }
}

/// Waits for `child` up to `timeout`, then SIGKILLs it (it is ours) and reaps it.
/// Returns the exit code (None if killed by a signal or on timeout) and whether it timed out.
fn wait_child(child: &mut Child, timeout: Duration) -> (Option<i32>, bool) {
    let t = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return (st.code(), false),
            Ok(None) if t.elapsed() < timeout => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                signal(child.id(), libc::SIGKILL);
                let _ = child.wait();
                return (None, true);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Running commands
// ---------------------------------------------------------------------------------------

/// The result of a command.
#[derive(Clone, Debug)]
pub struct Out {
    /// What was run.
    pub cmd: String,
    /// Exit code (None: killed by a signal or timed out).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Killed because it ran past its time limit.
    pub timed_out: bool,
}

impl Out {
    /// Exit status 0.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics with the full output unless the command succeeded.
    #[track_caller]
    pub fn expect_ok(self, what: &str) -> Out {
        if !self.ok() {
            panic!("{what}: command failed\n{self}");
        }
        self
    }

    /// stdout and stderr together.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl fmt::Display for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "$ {}\n  exit: {}{}",
            self.cmd,
            self.code.map_or("none".into(), |c| c.to_string()),
            if self.timed_out { " (TIMED OUT)" } else { "" }
        )?;
        for l in self.stdout.lines() {
            writeln!(f, "  | {l}")?;
        }
        for l in self.stderr.lines() {
            writeln!(f, "  ! {l}")?;
        }
        Ok(())
    }
}

fn describe(args: &[&str]) -> String {
    args.iter()
        .map(|a| {
            if a.is_empty() || a.contains(char::is_whitespace) {
                format!("'{a}'")
            } else if a.len() > 120 {
                format!(
                    "{}…",
                    &a[..a.char_indices().nth(100).map_or(a.len(), |(i, _)| i)]
                )
            } else {
                (*a).to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `args` (no shell) with a time limit, capturing output.
pub fn run_argv(args: &[&str], timeout: Duration) -> Out {
    let cmd = describe(args);
    let fail = |e: String| Out {
        cmd: cmd.clone(),
        code: None,
        stdout: String::new(),
        stderr: e,
        timed_out: false,
    };
    let Some((prog, rest)) = args.split_first() else {
        return fail("empty command".into());
    };
    let mut child = match Command::new(prog)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return fail(format!("cannot start {prog}: {e}")),
    };
    let so = PipeReader::start(child.stdout.take());
    let se = PipeReader::start(child.stderr.take());
    let (code, timed_out) = wait_child(&mut child, timeout);
    // A daemon the command left behind may hold the pipes open: do not wait for EOF long.
    let grace = Instant::now() + Duration::from_millis(500);
    Out {
        cmd,
        code,
        stdout: so.finish(grace),
        stderr: se.finish(grace),
        timed_out,
    }
}

/// Collects a pipe in a thread, so a command's output can be taken even if some
/// grandchild keeps the pipe open.
struct PipeReader {
    buf: Arc<Mutex<Vec<u8>>>,
    done: std::sync::mpsc::Receiver<()>,
}

impl PipeReader {
    fn start<R: Read + Send + 'static>(pipe: Option<R>) -> PipeReader {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let (tx, done) = std::sync::mpsc::channel();
        let b = buf.clone();
        std::thread::spawn(move || {
            if let Some(mut p) = pipe {
                let mut chunk = [0u8; 8192];
                while let Ok(n) = p.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    b.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend_from_slice(&chunk[..n]);
                }
            }
            let _ = tx.send(());
        });
        PipeReader { buf, done }
    }

    fn finish(self, deadline: Instant) -> String {
        let _ = self
            .done
            .recv_timeout(deadline.saturating_duration_since(Instant::now()));
        let b = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&b).into_owned()
    }
}

/// Runs a command in the root namespace (whitespace-split).
pub fn host(cmd: &str) -> Out {
    run_argv(&cmd.split_whitespace().collect::<Vec<_>>(), CMD_TIMEOUT)
}

/// Runs a command in the root namespace and panics if it fails; returns stdout.
#[track_caller]
pub fn host_ok(cmd: &str) -> String {
    host(cmd).expect_ok("host command").stdout
}

/// Runs `args` inside network namespace `ns` (`ip netns exec`, which execs in place).
pub fn in_ns(ns: &str, args: &[&str], timeout: Duration) -> Out {
    let mut a = vec!["ip", "netns", "exec", ns];
    a.extend_from_slice(args);
    run_argv(&a, timeout)
}

// ---------------------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------------------

/// An Ethernet address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// ff:ff:ff:ff:ff:ff
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    /// 00:00:00:00:00:00
    pub const ZERO: Mac = Mac([0; 6]);
}

impl From<Mac> for vip_table::MacAddr {
    fn from(m: Mac) -> Self {
        vip_table::MacAddr(m.0)
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.trim().split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(format!("not a MAC: {s}"));
        }
        let mut m = [0u8; 6];
        for (o, p) in m.iter_mut().zip(parts) {
            *o = u8::from_str_radix(p, 16).map_err(|_| format!("not a MAC: {s}"))?;
        }
        Ok(Mac(m))
    }
}

// ---------------------------------------------------------------------------------------
// VMs
// ---------------------------------------------------------------------------------------

/// How a VM is attached to the switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The switch creates a tap; its kernel side becomes the VM's NIC.
    Tap,
    /// A veth pair made by the test; the switch attaches to the host end (AF_PACKET).
    Netdev,
}

impl Backend {
    /// One letter for names.
    pub fn letter(self) -> char {
        match self {
            Backend::Tap => 't',
            Backend::Netdev => 'n',
        }
    }

    /// The config key of the binding.
    pub fn key(self) -> &'static str {
        match self {
            Backend::Tap => "tap",
            Backend::Netdev => "netdev",
        }
    }
}

/// What a VM should look like; see [`Lab::add_vm`].
#[derive(Clone, Debug)]
pub struct VmSpec {
    /// Port name (also the VM name), ≤ 5 characters.
    pub name: String,
    /// Attachment.
    pub backend: Backend,
    /// Access VLAN.
    pub vlan: u16,
    /// Give the VM an IPv6 address (otherwise IPv6 is disabled in its namespace).
    pub ipv6: bool,
    /// Host number for addresses and MAC (default: position in the lab, from 1).
    pub index: Option<u8>,
    /// Extra `key = value` lines for this `[[port]]` table.
    pub port_toml: Vec<String>,
}

impl VmSpec {
    /// A VM with default settings.
    pub fn new(name: &str, backend: Backend) -> Self {
        VmSpec {
            name: name.to_string(),
            backend,
            vlan: 0,
            ipv6: true,
            index: None,
            port_toml: Vec::new(),
        }
    }

    /// Access VLAN.
    pub fn vlan(mut self, vlan: u16) -> Self {
        self.vlan = vlan;
        self
    }

    /// No IPv6 in this VM.
    pub fn no_ipv6(mut self) -> Self {
        self.ipv6 = false;
        self
    }

    /// Host number for addresses and MAC.
    pub fn index(mut self, i: u8) -> Self {
        self.index = Some(i);
        self
    }

    /// An extra line in the port's config table, e.g. `dest_check = false`.
    pub fn port_toml(mut self, line: &str) -> Self {
        self.port_toml.push(line.to_string());
        self
    }
}

/// A VM: a network namespace whose `eth0` is attached to a switch port of the same name.
#[derive(Clone, Debug)]
pub struct Vm {
    /// Port / VM name.
    pub name: String,
    /// Host number.
    pub index: u8,
    /// Attachment.
    pub backend: Backend,
    /// Access VLAN.
    pub vlan: u16,
    /// IPv6 enabled.
    pub ipv6: bool,
    /// Network namespace.
    pub ns: String,
    /// NIC name inside the namespace.
    pub dev: String,
    /// Interface name in the root namespace: the tap's name as the switch creates it, or
    /// the veth host end.
    pub host_if: String,
    /// The port's MAC.
    pub mac: Mac,
    /// Fixed IPv4 address (/24).
    pub ip4: Ipv4Addr,
    /// Fixed IPv6 address (/64).
    pub ip6: Ipv6Addr,
    /// Extra port config lines.
    pub port_toml: Vec<String>,
}

/// Ping statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PingStats {
    /// Echo requests sent.
    pub transmitted: u32,
    /// Replies received.
    pub received: u32,
}

impl PingStats {
    /// Requests without reply.
    pub fn lost(&self) -> u32 {
        self.transmitted.saturating_sub(self.received)
    }
}

/// Parses iputils ping's summary line ("N packets transmitted, M received").
pub fn parse_ping(text: &str) -> Option<PingStats> {
    let line = text.lines().find(|l| l.contains("packets transmitted"))?;
    let mut nums = line
        .split(',')
        .filter_map(|p| p.split_whitespace().next()?.parse::<u32>().ok());
    Some(PingStats {
        transmitted: nums.next()?,
        received: nums.next()?,
    })
}

const SEND_FRAMES_PY: &str = "import socket,sys
s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)
s.bind((sys.argv[1],0))
for h in sys.argv[2:]:
    s.send(bytes.fromhex(h))
";

impl Vm {
    /// Runs a whitespace-split command in the VM.
    pub fn run(&self, cmd: &str) -> Out {
        self.run_args(&cmd.split_whitespace().collect::<Vec<_>>())
    }

    /// Runs a command (argument vector) in the VM.
    pub fn run_args(&self, args: &[&str]) -> Out {
        in_ns(&self.ns, args, CMD_TIMEOUT)
    }

    /// Runs a command in the VM and panics (with its output) if it fails; returns stdout.
    #[track_caller]
    pub fn must(&self, cmd: &str) -> String {
        let o = self.run(cmd);
        if !o.ok() {
            panic!("[{}] command failed\n{o}", self.name);
        }
        o.stdout
    }

    /// `ping -c count -i 0.2 -W 1 dst` (IPv6 if `dst` contains ':').
    pub fn ping(&self, dst: impl fmt::Display, count: u32) -> PingStats {
        let dst = dst.to_string();
        let fam = if dst.contains(':') { "-6" } else { "-4" };
        let o = self.run(&format!("ping {fam} -n -c {count} -i 0.2 -W 1 {dst}"));
        parse_ping(&o.stdout).unwrap_or(PingStats {
            transmitted: count,
            received: 0,
        })
    }

    /// Panics unless every one of `count` pings to `dst` is answered.
    #[track_caller]
    pub fn ping_ok(&self, dst: impl fmt::Display, count: u32) {
        let dst = dst.to_string();
        let s = self.ping(&dst, count);
        assert!(
            s.received == count && s.transmitted == count,
            "[{}] ping {dst}: {s:?}",
            self.name
        );
    }

    /// Sends raw Ethernet frames out of the VM's NIC (AF_PACKET, via python3).
    #[track_caller]
    pub fn send_frames(&self, frames: &[Vec<u8>]) {
        let hex: Vec<String> = frames.iter().map(|f| to_hex(f)).collect();
        let mut args = vec!["python3", "-c", SEND_FRAMES_PY, self.dev.as_str()];
        args.extend(hex.iter().map(String::as_str));
        let o = self.run_args(&args);
        if !o.ok() {
            panic!("[{}] sending raw frames failed\n{o}", self.name);
        }
    }

    /// `ip neigh show IP dev eth0`.
    pub fn neigh(&self, ip: impl fmt::Display) -> String {
        self.run(&format!("ip neigh show {ip} dev {}", self.dev))
            .stdout
            .trim()
            .to_string()
    }

    /// Pins a neighbour entry (`nud permanent`).
    #[track_caller]
    pub fn pin_neigh(&self, ip: impl fmt::Display, mac: Mac) {
        self.must(&format!(
            "ip neigh replace {ip} lladdr {mac} dev {} nud permanent",
            self.dev
        ));
    }
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---------------------------------------------------------------------------------------
// Frames (what tcpdump captured) and frame builders
// ---------------------------------------------------------------------------------------

/// The ARP part of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp {
    /// 1 request, 2 reply.
    pub op: u16,
    /// Sender MAC.
    pub sha: Mac,
    /// Sender IP.
    pub spa: Ipv4Addr,
    /// Target MAC.
    pub tha: Mac,
    /// Target IP.
    pub tpa: Ipv4Addr,
}

/// An IP packet's header facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpFacts {
    /// Source.
    pub src: IpAddr,
    /// Destination.
    pub dst: IpAddr,
    /// Protocol / next header (first header only).
    pub proto: u8,
}

/// One captured frame.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Captured bytes (possibly cut at the snap length).
    pub data: Vec<u8>,
    /// Length on the wire.
    pub orig_len: u32,
    /// Capture time, seconds since the Unix epoch (the host's clock).
    pub ts: f64,
}

const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
/// ARP ethertype.
pub const ETH_P_ARP: u16 = 0x0806;
/// IPv4 ethertype.
pub const ETH_P_IP: u16 = 0x0800;
/// IPv6 ethertype.
pub const ETH_P_IPV6: u16 = 0x86dd;

impl Frame {
    fn mac_at(&self, off: usize) -> Mac {
        let mut m = [0u8; 6];
        if let Some(b) = self.data.get(off..off + 6) {
            m.copy_from_slice(b);
        }
        Mac(m)
    }

    /// Destination MAC.
    pub fn dst(&self) -> Mac {
        self.mac_at(0)
    }

    /// Source MAC.
    pub fn src(&self) -> Mac {
        self.mac_at(6)
    }

    fn be16(&self, off: usize) -> Option<u16> {
        let b = self.data.get(off..off + 2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }

    /// VLAN IDs of the tags, outermost first, and the offset of the L3 header.
    fn tags(&self) -> (Vec<u16>, usize) {
        let mut off = 12;
        let mut tags = Vec::new();
        while let Some(t) = self.be16(off) {
            if t != ETH_P_8021Q && t != ETH_P_8021AD {
                break;
            }
            tags.push(self.be16(off + 2).unwrap_or(0) & 0x0fff);
            off += 4;
        }
        (tags, off + 2)
    }

    /// 802.1Q tags in the frame (an access port must never deliver one).
    pub fn vlan_tags(&self) -> Vec<u16> {
        self.tags().0
    }

    /// The ethertype after any VLAN tags.
    pub fn ethertype(&self) -> u16 {
        let (_, l3) = self.tags();
        self.be16(l3 - 2).unwrap_or(0)
    }

    /// The L3 bytes.
    pub fn l3(&self) -> &[u8] {
        let (_, l3) = self.tags();
        self.data.get(l3..).unwrap_or(&[])
    }

    /// ARP fields (Ethernet/IPv4 ARP only).
    pub fn arp(&self) -> Option<Arp> {
        if self.ethertype() != ETH_P_ARP {
            return None;
        }
        let a = self.l3();
        if a.len() < 28 || a[0..6] != [0, 1, 8, 0, 6, 4] {
            return None;
        }
        let mac = |o: usize| {
            let mut m = [0u8; 6];
            m.copy_from_slice(&a[o..o + 6]);
            Mac(m)
        };
        let ip = |o: usize| Ipv4Addr::new(a[o], a[o + 1], a[o + 2], a[o + 3]);
        Some(Arp {
            op: u16::from_be_bytes([a[6], a[7]]),
            sha: mac(8),
            spa: ip(14),
            tha: mac(18),
            tpa: ip(24),
        })
    }

    /// IPv4/IPv6 header facts.
    pub fn ip(&self) -> Option<IpFacts> {
        let p = self.l3();
        match self.ethertype() {
            ETH_P_IP if p.len() >= 20 => Some(IpFacts {
                src: Ipv4Addr::new(p[12], p[13], p[14], p[15]).into(),
                dst: Ipv4Addr::new(p[16], p[17], p[18], p[19]).into(),
                proto: p[9],
            }),
            ETH_P_IPV6 if p.len() >= 40 => {
                let a = |o: usize| {
                    let mut b = [0u8; 16];
                    b.copy_from_slice(&p[o..o + 16]);
                    Ipv6Addr::from(b)
                };
                Some(IpFacts {
                    src: a(8).into(),
                    dst: a(24).into(),
                    proto: p[6],
                })
            }
            _ => None,
        }
    }

    /// The L4 bytes of an IPv4 packet, or of an IPv6 packet without extension headers.
    pub fn l4(&self) -> &[u8] {
        let p = self.l3();
        match self.ethertype() {
            ETH_P_IP if p.len() >= 20 => {
                let ihl = usize::from(p[0] & 0x0f) * 4;
                p.get(ihl..).unwrap_or(&[])
            }
            ETH_P_IPV6 if p.len() >= 40 => &p[40..],
            _ => &[],
        }
    }

    /// ICMP (v4) or ICMPv6 type.
    pub fn icmp_type(&self) -> Option<u8> {
        let ip = self.ip()?;
        match ip.proto {
            1 | 58 => self.l4().first().copied(),
            _ => None,
        }
    }

    /// UDP (source, destination) ports.
    pub fn udp_ports(&self) -> Option<(u16, u16)> {
        let ip = self.ip()?;
        let l4 = self.l4();
        (ip.proto == 17 && l4.len() >= 8).then(|| {
            (
                u16::from_be_bytes([l4[0], l4[1]]),
                u16::from_be_bytes([l4[2], l4[3]]),
            )
        })
    }

    /// Whether the captured bytes contain `needle` (e.g. a payload marker).
    pub fn contains(&self, needle: &[u8]) -> bool {
        !needle.is_empty() && self.data.windows(needle.len()).any(|w| w == needle)
    }

    /// One line for failure messages.
    pub fn summary(&self) -> String {
        let mut s = format!("{} > {}", self.src(), self.dst());
        let tags = self.vlan_tags();
        if !tags.is_empty() {
            s.push_str(&format!(" vlan {tags:?}"));
        }
        if let Some(a) = self.arp() {
            let op = match a.op {
                1 => "request",
                2 => "reply",
                _ => "op?",
            };
            s.push_str(&format!(
                " ARP {op} sha {} spa {} tha {} tpa {}",
                a.sha, a.spa, a.tha, a.tpa
            ));
        } else if let Some(ip) = self.ip() {
            s.push_str(&format!(" IP {} > {} proto {}", ip.src, ip.dst, ip.proto));
            if let Some(t) = self.icmp_type() {
                s.push_str(&format!(" icmp type {t}"));
            }
            if let Some((a, b)) = self.udp_ports() {
                s.push_str(&format!(" udp {a} > {b}"));
            }
        } else {
            s.push_str(&format!(" ethertype 0x{:04x}", self.ethertype()));
        }
        s.push_str(&format!(" len {}", self.orig_len));
        s
    }
}

/// The frames matching `pred`.
pub fn select(frames: &[Frame], pred: impl Fn(&Frame) -> bool) -> Vec<&Frame> {
    frames.iter().filter(|f| pred(f)).collect()
}

/// Summaries of frames, one per line (for assertion messages).
pub fn summarize(frames: &[&Frame]) -> String {
    frames
        .iter()
        .map(|f| format!("    {}", f.summary()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parses a classic pcap file (any byte order, µs or ns timestamps; Ethernet link type)
/// with `pcap-file`. A last record cut short (tcpdump killed mid-write) is ignored.
pub fn parse_pcap(bytes: &[u8]) -> Result<Vec<Frame>, String> {
    use pcap_file::pcap::PcapParser;
    use pcap_file::{DataLink, PcapError};
    let (mut rest, parser) = PcapParser::new(bytes)
        .map_err(|e| format!("not a pcap file ({} bytes): {e}", bytes.len()))?;
    let linktype = parser.header().datalink;
    if linktype != DataLink::ETHERNET {
        return Err(format!(
            "pcap link type {linktype:?}, expected Ethernet (1)"
        ));
    }
    let mut frames = Vec::new();
    while !rest.is_empty() {
        match parser.next_packet(rest) {
            Ok((next, p)) => {
                frames.push(Frame {
                    orig_len: p.orig_len,
                    ts: p.timestamp.as_secs_f64(),
                    data: p.data.into_owned(),
                });
                rest = next;
            }
            Err(PcapError::IncompleteBuffer) => break,
            Err(e) => {
                return Err(format!(
                    "pcap record at byte {}: {e}",
                    bytes.len() - rest.len()
                ))
            }
        }
    }
    Ok(frames)
}

// ---------------------------------------------------------------------------------------
// Background processes and captures
// ---------------------------------------------------------------------------------------

struct BgProc {
    id: u64,
    name: String,
    child: Child,
}

/// A background process owned by the lab (killed in the lab's `Drop` if still running).
pub struct Proc<'a> {
    lab: &'a Lab,
    id: u64,
    pid: u32,
    /// A label.
    pub name: String,
    /// Its stdout file.
    pub out: PathBuf,
    /// Its stderr file.
    pub err: PathBuf,
}

impl Proc<'_> {
    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// What it has written so far (stdout, then stderr).
    pub fn output(&self) -> String {
        format!(
            "{}{}",
            fs::read_to_string(&self.out).unwrap_or_default(),
            fs::read_to_string(&self.err).unwrap_or_default()
        )
    }

    /// Waits until its output contains `needle`. False on timeout or if it exited first.
    pub fn wait_for_output(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || {
            self.output().contains(needle) || !self.lab.proc_running(self.id)
        });
        self.output().contains(needle)
    }

    /// Whether it is still running.
    pub fn running(&self) -> bool {
        self.lab.proc_running(self.id)
    }

    /// Sends a signal (SIGINT, SIGTERM, SIGHUP, …) without waiting.
    pub fn signal(&self, sig: libc::c_int) {
        if self.lab.proc_running(self.id) {
            signal(self.pid, sig);
        }
    }

    /// Sends a signal to it and every process it started (SIGKILL of keepalived's parent
    /// and VRRP child together simulates a crash), without waiting.
    pub fn signal_tree(&self, sig: libc::c_int) {
        let st = self.lab.st();
        if let Some(p) = st.procs.iter().find(|p| p.id == self.id) {
            signal_tree(&p.child, sig);
        }
    }

    /// Waits for it to exit (killing it after `timeout`) and returns its output.
    pub fn wait(self, timeout: Duration) -> Out {
        let (code, timed_out) = match self.lab.take_proc(self.id) {
            Some(mut c) => wait_child(&mut c, timeout),
            None => (None, false),
        };
        Out {
            cmd: self.name.clone(),
            code,
            stdout: fs::read_to_string(&self.out).unwrap_or_default(),
            stderr: fs::read_to_string(&self.err).unwrap_or_default(),
            timed_out,
        }
    }

    /// SIGINT, then [`Proc::wait`] up to 5 s.
    pub fn interrupt(self) -> Out {
        self.signal(libc::SIGINT);
        self.wait(Duration::from_secs(5))
    }
}

/// Which frames a capture records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Frames the VM's NIC received (`tcpdump -Q in`).
    In,
    /// Both directions.
    Both,
}

/// A running tcpdump in a VM; [`Capture::stop`] returns the frames.
pub struct Capture<'a> {
    proc: Proc<'a>,
    file: PathBuf,
    /// The VM it runs in.
    pub vm: String,
}

impl Capture<'_> {
    /// Stops tcpdump (SIGINT by PID) and reads the frames back.
    #[track_caller]
    pub fn stop(self) -> Vec<Frame> {
        // Let frames still in flight through the switch arrive first.
        std::thread::sleep(Duration::from_millis(150));
        let out = self.proc.interrupt();
        let bytes = fs::read(&self.file).unwrap_or_default();
        match parse_pcap(&bytes) {
            Ok(f) => f,
            Err(e) => panic!("capture in {}: {e}\n{out}", self.vm),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The lab
// ---------------------------------------------------------------------------------------

/// How to make the switch re-read its config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReloadBy {
    /// `vswitch ctl reload` (must succeed).
    Ctl,
    /// SIGHUP to the switch process.
    Sighup,
}

#[derive(Default)]
struct Inner {
    switch: Option<Child>,
    namespaces: Vec<String>,
    links: Vec<String>,
    procs: Vec<BgProc>,
    next_id: u64,
    vms: Vec<Arc<Vm>>,
    extra_config: String,
    metrics: bool,
    /// `--metrics` value instead of 127.0.0.1:0 (with `metrics`).
    metrics_arg: Option<String>,
    /// Start the switch under this umask (through `sh -c 'umask …; exec …'`).
    umask: Option<u32>,
}

/// One test's world: a switch process, VMs, captures, background processes. Everything is
/// removed on drop; see the module docs.
pub struct Lab {
    /// The short name given by the test.
    pub name: String,
    /// Unique prefix of every interface name (name + PID in hex).
    pub tag: String,
    /// Address block number: 10.<net>.0.0/24, fd<net hex>::/64.
    pub net: u8,
    /// Private directory: config, socket, logs, captures.
    pub dir: PathBuf,
    /// The switch's config file.
    pub config_path: PathBuf,
    /// The switch's control socket.
    pub socket: PathBuf,
    /// The switch's stdout+stderr.
    pub log_path: PathBuf,
    inner: Mutex<Inner>,
}

impl Lab {
    /// A new, empty lab. `name`: 1-4 characters `[a-z0-9]` ending with a letter `g-z`
    /// (so name and hex PID cannot run together ambiguously), unique per test — end it with
    /// the backend letter (`t`/`n`) when a test runs per backend; `net`: the test's
    /// address block.
    pub fn new(name: &str, net: u8) -> Lab {
        assert!(
            !name.is_empty()
                && name.len() <= 4
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                && name.ends_with(|c: char| ('g'..='z').contains(&c)),
            "lab name {name:?}: 1-4 chars [a-z0-9], the last one a letter g-z"
        );
        let tag = format!("{name}{:x}", std::process::id());
        let dir = std::env::temp_dir().join(format!("vswitch-live-{tag}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create lab dir");
        Lab {
            name: name.to_string(),
            net,
            config_path: dir.join("vswitch.toml"),
            socket: dir.join("ctl.sock"),
            log_path: dir.join("vswitch.log"),
            dir,
            tag,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn st(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serve metrics on 127.0.0.1:<random> (call before [`Lab::start`]).
    pub fn with_metrics(&self) -> &Self {
        self.st().metrics = true;
        self
    }

    /// Serve metrics with `--metrics ARG` (call before [`Lab::start`]).
    pub fn with_metrics_arg(&self, arg: &str) -> &Self {
        let mut st = self.st();
        st.metrics = true;
        st.metrics_arg = Some(arg.to_string());
        drop(st);
        self
    }

    /// Start the switch under `umask MASK` (call before [`Lab::start_switch`]).
    pub fn with_umask(&self, mask: u32) -> &Self {
        self.st().umask = Some(mask);
        self
    }

    /// TOML appended after the ports (e.g. `[[vip]]` tables, `[switch]`).
    pub fn set_extra_config(&self, toml: &str) {
        self.st().extra_config = toml.to_string();
    }

    /// IPv4 address `10.<net>.0.<host>`.
    pub fn ip4(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, self.net, 0, host)
    }

    /// IPv6 address `fd<net hex>::<host hex>`.
    pub fn ip6(&self, host: u16) -> Ipv6Addr {
        Ipv6Addr::new(0xfd00 | u16::from(self.net), 0, 0, 0, 0, 0, 0, host)
    }

    /// Declares a VM (before [`Lab::start`]; afterwards use [`Lab::add_vm_live`]).
    pub fn add_vm(&self, spec: VmSpec) -> Arc<Vm> {
        let mut st = self.st();
        let index = spec
            .index
            .unwrap_or_else(|| u8::try_from(st.vms.len() + 1).expect("at most 254 VMs"));
        let host_if = format!("{}{}", self.tag, spec.name);
        assert!(
            host_if.len() <= 15,
            "interface name {host_if:?} is longer than 15 bytes: use a shorter lab or VM name"
        );
        assert!(
            st.vms
                .iter()
                .all(|v| v.name != spec.name && v.index != index),
            "VM {} (index {index}) declared twice",
            spec.name
        );
        let vm = Arc::new(Vm {
            ns: format!("vsl-{}-{}", self.tag, spec.name),
            dev: VM_DEV.to_string(),
            host_if,
            mac: Mac([0x02, self.net, 0, 0, 0, index]),
            ip4: self.ip4(index),
            ip6: self.ip6(u16::from(index)),
            index,
            name: spec.name,
            backend: spec.backend,
            vlan: spec.vlan,
            ipv6: spec.ipv6,
            port_toml: spec.port_toml,
        });
        st.vms.push(vm.clone());
        vm
    }

    /// A declared VM by name (panics if unknown).
    #[track_caller]
    pub fn vm(&self, name: &str) -> Arc<Vm> {
        self.st()
            .vms
            .iter()
            .find(|v| v.name == name)
            .cloned()
            .unwrap_or_else(|| panic!("no VM named {name}"))
    }

    /// All VMs.
    pub fn vms(&self) -> Vec<Arc<Vm>> {
        self.st().vms.clone()
    }

    /// The config the lab would write now: its VMs' ports, then the extra TOML (and the
    /// worker engine of [`io_setting`]).
    pub fn render_config(&self) -> String {
        let st = self.st();
        let mut s = format!("# written by the live-test harness, lab {}\n", self.tag);
        // the lab's own VIP state file, never the host's /var/lib/vswitch
        s.push_str(&format!(
            "[switch]\nstate_dir = \"{}\"\n{}",
            self.state_dir().display(),
            io_setting()
        ));
        for v in &st.vms {
            s.push_str(&format!(
                "\n[[port]]\nname = \"{}\"\n{} = \"{}\"\nmac = \"{}\"\n",
                v.name,
                v.backend.key(),
                v.host_if,
                v.mac
            ));
            if v.ipv6 {
                s.push_str(&format!("ips = [\"{}/24\", \"{}/64\"]\n", v.ip4, v.ip6));
            } else {
                s.push_str(&format!("ips = [\"{}/24\"]\n", v.ip4));
            }
            if v.vlan != 0 {
                s.push_str(&format!("vlan = {}\n", v.vlan));
            }
            for l in &v.port_toml {
                s.push_str(l);
                s.push('\n');
            }
        }
        if !st.extra_config.is_empty() {
            s.push('\n');
            s.push_str(&st.extra_config);
            s.push('\n');
        }
        s
    }

    /// Writes [`Lab::render_config`] to the config file.
    pub fn write_config(&self) {
        fs::write(&self.config_path, self.render_config()).expect("write config");
    }

    /// Writes arbitrary text to the config file (e.g. an invalid config).
    pub fn write_config_text(&self, text: &str) {
        fs::write(&self.config_path, text).expect("write config");
    }

    fn track_ns(&self, ns: &str) {
        self.st().namespaces.push(ns.to_string());
    }

    /// Deletes the interface `ifname` (if it exists) when the lab is torn down.
    pub fn track_link(&self, ifname: &str) {
        let mut st = self.st();
        if !st.links.iter().any(|l| l == ifname) {
            st.links.push(ifname.to_string());
        }
    }

    fn make_namespace(&self, vm: &Vm) {
        self.track_ns(&vm.ns);
        host_ok(&format!("ip netns add {}", vm.ns));
        let mut sysctls = vec![
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
            "net.ipv6.conf.all.keep_addr_on_down=1",
            "net.ipv6.conf.default.keep_addr_on_down=1",
        ];
        if !vm.ipv6 {
            sysctls.push("net.ipv6.conf.all.disable_ipv6=1");
            sysctls.push("net.ipv6.conf.default.disable_ipv6=1");
        }
        let mut args = vec!["sysctl", "-qw"];
        args.extend(sysctls);
        in_ns(&vm.ns, &args, CMD_TIMEOUT).expect_ok("namespace sysctls");
        host_ok(&format!("ip -n {} link set lo up", vm.ns));
    }

    /// Creates the veth pair of a netdev VM (host end up, silent; `eth0` in the VM).
    fn make_veth(&self, vm: &Vm) {
        self.track_link(&vm.host_if);
        host_ok(&format!(
            "ip link add {} type veth peer name {} netns {}",
            vm.host_if, vm.dev, vm.ns
        ));
        let _ = fs::write(
            format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", vm.host_if),
            "1",
        );
        host_ok(&format!("ip link set {} up", vm.host_if));
    }

    /// MAC, addresses, link up inside the VM.
    fn configure_guest(&self, vm: &Vm) {
        let n = &vm.ns;
        let d = &vm.dev;
        host_ok(&format!("ip -n {n} link set {d} address {}", vm.mac));
        host_ok(&format!("ip -n {n} addr add {}/24 dev {d}", vm.ip4));
        if vm.ipv6 {
            host_ok(&format!("ip -n {n} addr add {}/64 dev {d} nodad", vm.ip6));
        }
        host_ok(&format!("ip -n {n} link set {d} up"));
    }

    /// Moves a tap the switch has opened into the VM and configures it.
    #[track_caller]
    fn adopt_tap(&self, vm: &Vm) {
        let sys = Path::new("/sys/class/net").join(&vm.host_if);
        if wait_until(Duration::from_secs(5), || sys.exists()).is_none() {
            panic!("tap {} did not appear", vm.host_if);
        }
        host_ok(&format!("ip link set {} netns {}", vm.host_if, vm.ns));
        host_ok(&format!(
            "ip -n {} link set {} name {}",
            vm.ns, vm.host_if, vm.dev
        ));
        self.configure_guest(vm);
    }

    /// Creates namespaces and veths, writes the config, starts the switch, attaches and
    /// configures every VM and waits until every port is up.
    #[track_caller]
    pub fn start(&self) {
        let vms = self.vms();
        for vm in &vms {
            self.make_namespace(vm);
            if vm.backend == Backend::Netdev {
                self.make_veth(vm);
            }
        }
        self.write_config();
        self.start_switch();
        for vm in &vms {
            match vm.backend {
                Backend::Tap => self.adopt_tap(vm),
                Backend::Netdev => self.configure_guest(vm),
            }
        }
        for vm in &vms {
            self.wait_port_up(&vm.name, Duration::from_secs(5));
        }
    }

    /// Starts `vswitch run` on the current config file and waits for its control socket.
    #[track_caller]
    pub fn start_switch(&self) {
        let log = fs::File::create(&self.log_path).expect("create switch log");
        let log2 = log.try_clone().expect("dup log fd");
        let (umask, metrics) = {
            let st = self.st();
            let m = st.metrics.then(|| {
                st.metrics_arg
                    .clone()
                    .unwrap_or_else(|| "127.0.0.1:0".into())
            });
            (st.umask, m)
        };
        // With a umask: `sh -c 'umask M; exec "$0" "$@"' vswitch run …` (the shell execs
        // the switch in place, so the child's PID is the switch's).
        let mut cmd = match umask {
            Some(m) => {
                let mut c = Command::new("sh");
                c.args(["-c", &format!("umask {m:03o}; exec \"$0\" \"$@\""), VSWITCH]);
                c
            }
            None => Command::new(VSWITCH),
        };
        cmd.arg("run")
            .arg("--config")
            .arg(&self.config_path)
            .arg("--socket")
            .arg(&self.socket);
        if let Some(m) = metrics {
            cmd.args(["--metrics", &m]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .env("NO_COLOR", "1")
            .env(
                "RUST_LOG",
                std::env::var("VSWITCH_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .spawn()
            .expect("start vswitch");
        {
            let mut st = self.st();
            assert!(st.switch.is_none(), "switch already running");
            st.switch = Some(child);
        }
        let t = Instant::now();
        loop {
            if UnixStream::connect(&self.socket).is_ok() {
                break;
            }
            let exited = {
                let mut st = self.st();
                st.switch
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten())
                    .map(|s| s.to_string())
            };
            if let Some(s) = exited {
                panic!(
                    "the switch exited ({s}) before its control socket was ready:\n{}",
                    self.log_tail(40)
                );
            }
            if t.elapsed() > Duration::from_secs(10) {
                panic!("no control socket after 10 s:\n{}", self.log_tail(40));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Restarts the switch on the current config file: stops it (SIGTERM; with `kill` a
    /// SIGKILL, a crash), starts it again and waits until every port is up. Tap VMs keep
    /// their taps (persistent, with their addresses; the new switch re-attaches them where
    /// they are), netdev VMs their veths. The previous log is kept as `vswitch.log.1`.
    #[track_caller]
    pub fn restart_switch(&self, kill: bool) {
        if kill {
            self.kill_switch();
        } else {
            self.stop_switch();
        }
        let old_log = self.dir.join("vswitch.log.1");
        let _ = fs::rename(&self.log_path, &old_log);
        self.start_switch();
        for vm in &self.vms() {
            self.wait_port_up(&vm.name, Duration::from_secs(5));
        }
    }

    /// `vswitch cleanup --config <lab config> --socket <lab socket>` (raw output).
    pub fn cleanup_out(&self) -> Out {
        let config = self.config_path.to_string_lossy().into_owned();
        let socket = self.socket.to_string_lossy().into_owned();
        run_argv(
            &[VSWITCH, "cleanup", "--config", &config, "--socket", &socket],
            CMD_TIMEOUT,
        )
    }

    /// Writes a file into the lab directory (e.g. a keepalived.conf) and returns its path.
    pub fn write_file(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.dir.join(name);
        fs::write(&p, contents).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }

    /// The switch's PID.
    pub fn switch_pid(&self) -> Option<u32> {
        self.st().switch.as_ref().map(Child::id)
    }

    /// Whether the switch process is still running.
    pub fn switch_running(&self) -> bool {
        self.st()
            .switch
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Sends SIGHUP to the switch (reload).
    pub fn sighup(&self) {
        let st = self.st();
        if let Some(c) = st.switch.as_ref() {
            signal(c.id(), libc::SIGHUP);
        }
    }

    /// The switch's state directory (the VIP state file lives there).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// Kills the switch with SIGKILL (a crash: no clean shutdown) and reaps it.
    pub fn kill_switch(&self) {
        let child = self.st().switch.take();
        if let Some(mut c) = child {
            signal(c.id(), libc::SIGKILL);
            let _ = wait_child(&mut c, Duration::from_secs(3));
        }
    }

    /// Stops the switch (SIGTERM, then SIGKILL after 3 s). Returns its exit code.
    pub fn stop_switch(&self) -> Option<i32> {
        let child = self.st().switch.take();
        child.and_then(|mut c| {
            signal(c.id(), libc::SIGTERM);
            wait_child(&mut c, Duration::from_secs(3)).0
        })
    }

    /// The switch log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last `n` lines of the switch log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Waits until the switch log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.log().contains(needle)).is_some()
    }

    // --- control socket --------------------------------------------------------------

    /// `vswitch ctl --socket S ARGS…` (raw output).
    pub fn ctl_out(&self, args: &[&str]) -> Out {
        let sock = self.socket.to_string_lossy().into_owned();
        let mut a = vec![VSWITCH, "ctl", "--socket", sock.as_str()];
        a.extend_from_slice(args);
        run_argv(&a, CMD_TIMEOUT)
    }

    /// `vswitch ctl --json ARGS…`, parsed; panics on failure.
    #[track_caller]
    pub fn ctl(&self, args: &[&str]) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let o = self.ctl_out(&a);
        if !o.ok() {
            panic!("ctl failed\n{o}\nswitch log:\n{}", self.log_tail(20));
        }
        serde_json::from_str(&o.stdout)
            .unwrap_or_else(|e| panic!("ctl output is not JSON: {e}\n{o}"))
    }

    /// `show ports` entries.
    pub fn ports(&self) -> Vec<Value> {
        self.ctl(&["show", "ports"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// One `show ports` entry.
    pub fn port(&self, name: &str) -> Option<Value> {
        self.ports()
            .into_iter()
            .find(|p| p["name"].as_str() == Some(name))
    }

    /// `show ports` says the port is operationally up.
    pub fn port_oper_up(&self, name: &str) -> bool {
        self.port(name)
            .is_some_and(|p| p["oper_up"].as_bool() == Some(true))
    }

    /// Waits until the port is up; panics after `timeout`. Returns how long it took.
    #[track_caller]
    pub fn wait_port_up(&self, name: &str, timeout: Duration) -> Duration {
        wait_until(timeout, || self.port_oper_up(name)).unwrap_or_else(|| {
            panic!(
                "port {name} not up after {timeout:?}: {:?}\n{}",
                self.port(name),
                self.log_tail(20)
            )
        })
    }

    /// Waits until the port is down; panics after `timeout`. Returns how long it took.
    #[track_caller]
    pub fn wait_port_down(&self, name: &str, timeout: Duration) -> Duration {
        wait_until(timeout, || {
            self.port(name)
                .is_some_and(|p| p["oper_up"].as_bool() == Some(false))
        })
        .unwrap_or_else(|| {
            panic!(
                "port {name} not down after {timeout:?}: {:?}\n{}",
                self.port(name),
                self.log_tail(20)
            )
        })
    }

    /// One port's `show stats` entry.
    #[track_caller]
    pub fn stats(&self, port: &str) -> Value {
        self.ctl(&["show", "stats"])
            .as_array()
            .and_then(|a| a.iter().find(|p| p["port"].as_str() == Some(port)).cloned())
            .unwrap_or_else(|| panic!("no stats for port {port}"))
    }

    /// A port's drop counter for `reason` (`mac_spoof`, `arp_spoof`, …).
    #[track_caller]
    pub fn drops(&self, port: &str, reason: &str) -> u64 {
        let s = self.stats(port);
        s["drops"][reason]
            .as_u64()
            .unwrap_or_else(|| panic!("no drop reason {reason:?} in {s}"))
    }

    /// One `show vips` entry.
    #[track_caller]
    pub fn vip(&self, name: &str) -> Value {
        self.ctl(&["show", "vips"])
            .as_array()
            .and_then(|a| a.iter().find(|v| v["name"].as_str() == Some(name)).cloned())
            .unwrap_or_else(|| panic!("no VIP named {name}"))
    }

    /// Port names of the VIP's owners.
    pub fn vip_owners(&self, name: &str) -> Vec<String> {
        self.vip(name)["owners"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|o| o["port"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until the VIP's owners are exactly `owners`; panics after `timeout`.
    #[track_caller]
    pub fn wait_vip_owners(&self, name: &str, owners: &[&str], timeout: Duration) {
        if wait_until(timeout, || self.vip_owners(name) == owners).is_none() {
            panic!(
                "VIP {name}: owners {:?}, expected {owners:?}\n{}\n{}",
                self.vip_owners(name),
                self.vip(name),
                self.log_tail(20)
            );
        }
    }

    /// The address printed by `--metrics` ("metrics at http://ADDR/metrics").
    #[track_caller]
    pub fn metrics_addr(&self) -> SocketAddr {
        let mut found = None;
        wait_until(Duration::from_secs(5), || {
            found = self.log().lines().find_map(|l| {
                let rest = l.split("metrics at http://").nth(1)?;
                rest.split('/').next()?.parse::<SocketAddr>().ok()
            });
            found.is_some()
        });
        found.unwrap_or_else(|| panic!("no metrics address in the log:\n{}", self.log_tail(20)))
    }

    // --- live changes ----------------------------------------------------------------

    /// `vswitch ctl reload` (raw output: the caller checks success or the error).
    pub fn reload(&self) -> Out {
        self.ctl_out(&["reload"])
    }

    /// Adds a VM to a running lab: namespace (and veth), config rewritten, reload by `how`,
    /// device adopted, port up. Panics if any step fails.
    #[track_caller]
    pub fn add_vm_live(&self, spec: VmSpec, how: ReloadBy) -> Arc<Vm> {
        let vm = self.add_vm(spec);
        self.make_namespace(&vm);
        if vm.backend == Backend::Netdev {
            self.make_veth(&vm);
        }
        self.write_config();
        match how {
            ReloadBy::Ctl => {
                let o = self.reload();
                if !o.ok() {
                    panic!(
                        "reload adding {} failed\n{o}\n{}",
                        vm.name,
                        self.log_tail(20)
                    );
                }
            }
            ReloadBy::Sighup => {
                self.sighup();
                if wait_until(Duration::from_secs(5), || self.port(&vm.name).is_some()).is_none() {
                    panic!(
                        "SIGHUP: port {} did not appear in show ports\n{}",
                        vm.name,
                        self.log_tail(20)
                    );
                }
            }
        }
        match vm.backend {
            Backend::Tap => self.adopt_tap(&vm),
            Backend::Netdev => self.configure_guest(&vm),
        }
        self.wait_port_up(&vm.name, Duration::from_secs(5));
        vm
    }

    /// Deletes a VM's device under the switch's feet: the tap inside the VM namespace, or
    /// the veth pair.
    #[track_caller]
    pub fn delete_device(&self, vm: &Vm) {
        match vm.backend {
            Backend::Tap => host_ok(&format!("ip -n {} link del {}", vm.ns, vm.dev)),
            Backend::Netdev => host_ok(&format!("ip link del {}", vm.host_if)),
        };
    }

    /// Recreates a deleted device: a tap (`ip tuntap add`, root namespace) that the switch
    /// re-attaches, then moved into the VM; or a new veth with the same host-end name.
    /// Returns how long the switch took to report the port up again.
    #[track_caller]
    pub fn recreate_device(&self, vm: &Vm) -> Duration {
        let took = match vm.backend {
            Backend::Tap => {
                self.track_link(&vm.host_if);
                host_ok(&format!("ip tuntap add dev {} mode tap", vm.host_if));
                // The switch only finds it in its own namespace: wait before moving it.
                let took = self.wait_port_up(&vm.name, Duration::from_secs(5));
                self.adopt_tap(vm);
                took
            }
            Backend::Netdev => {
                self.make_veth(vm);
                self.configure_guest(vm);
                self.wait_port_up(&vm.name, Duration::from_secs(5))
            }
        };
        took
    }

    // --- background processes --------------------------------------------------------

    fn proc_running(&self, id: u64) -> bool {
        self.st()
            .procs
            .iter_mut()
            .find(|p| p.id == id)
            .is_some_and(|p| matches!(p.child.try_wait(), Ok(None)))
    }

    fn take_proc(&self, id: u64) -> Option<Child> {
        let mut st = self.st();
        let i = st.procs.iter().position(|p| p.id == id)?;
        Some(st.procs.remove(i).child)
    }

    /// Spawns a helper program in `vm` that prints `READY` once it is listening, and waits
    /// for that (10 s), naming `what` if it does not come up.
    #[track_caller]
    pub fn spawn_ready(&self, vm: &Vm, what: &str, args: &[&str]) -> Proc<'_> {
        let p = self.spawn(vm, args);
        assert!(
            p.wait_for_output("READY", Duration::from_secs(10)),
            "{what} in {} did not start: {}",
            vm.name,
            p.output()
        );
        p
    }

    /// Starts `args` in the background inside `vm` (stdout/stderr to files in the lab dir).
    #[track_caller]
    pub fn spawn(&self, vm: &Vm, args: &[&str]) -> Proc<'_> {
        self.spawn_in(Some(&vm.ns), &vm.name, args)
    }

    /// Starts `args` in the background in the host's (root) namespace, e.g. a tcpdump on
    /// the host side of a QEMU guest's tap; `who` labels its output files.
    #[track_caller]
    pub fn spawn_host(&self, who: &str, args: &[&str]) -> Proc<'_> {
        self.spawn_in(None, who, args)
    }

    #[track_caller]
    fn spawn_in(&self, ns: Option<&str>, who: &str, args: &[&str]) -> Proc<'_> {
        let id = {
            let mut st = self.st();
            st.next_id += 1;
            st.next_id
        };
        let label = args.first().map_or("proc", |a| {
            Path::new(a)
                .file_name()
                .and_then(|f| f.to_str())
                .unwrap_or("proc")
        });
        let out = self.dir.join(format!("{id}-{who}-{label}.out"));
        let err = self.dir.join(format!("{id}-{who}-{label}.err"));
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).args(args);
                c
            }
            None => {
                let mut c = Command::new(args.first().copied().unwrap_or("true"));
                c.args(args.iter().skip(1));
                c
            }
        };
        cmd.stdin(Stdio::null())
            .stdout(fs::File::create(&out).expect("create out file"))
            .stderr(fs::File::create(&err).expect("create err file"));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {args:?} in {who}: {e}"));
        let pid = child.id();
        let name = format!("[{who}] {}", describe(args));
        self.st().procs.push(BgProc {
            id,
            name: name.clone(),
            child,
        });
        Proc {
            lab: self,
            id,
            pid,
            name,
            out,
            err,
        }
    }

    /// Captures what `vm`'s NIC receives (see [`Lab::capture_dir`]).
    #[track_caller]
    pub fn capture(&self, vm: &Vm) -> Capture<'_> {
        self.capture_dir(vm, Direction::In)
    }

    /// Starts tcpdump on the VM's NIC and returns once it is capturing.
    #[track_caller]
    pub fn capture_dir(&self, vm: &Vm, dir: Direction) -> Capture<'_> {
        self.capture_on(Some(&vm.ns), &vm.dev, &vm.name, dir)
    }

    /// Starts tcpdump on interface `dev` in namespace `ns` (None: the host's), labelled
    /// `who`, and returns once it is capturing. On the host side of a guest's tap,
    /// [`Direction::In`] is what the guest sent.
    #[track_caller]
    pub fn capture_on(
        &self,
        ns: Option<&str>,
        dev: &str,
        who: &str,
        dir: Direction,
    ) -> Capture<'_> {
        let id = self.st().next_id + 1;
        let file = self.dir.join(format!("cap-{who}-{id}.pcap"));
        let file_s = file.to_string_lossy().into_owned();
        let mut args = vec![
            "tcpdump",
            "-i",
            dev,
            "-w",
            file_s.as_str(),
            "--immediate-mode",
            "-U",
            "-n",
            "-Z",
            "root",
            "-s",
            "512",
        ];
        if dir == Direction::In {
            args.extend(["-Q", "in"]);
        }
        let proc = self.spawn_in(ns, who, &args);
        let ready = wait_until(Duration::from_secs(5), || {
            proc.output().contains("listening on")
                && fs::metadata(&file).is_ok_and(|m| m.len() >= 24)
        });
        if ready.is_none() {
            let out = proc.output();
            panic!("tcpdump on {dev} ({who}) did not start capturing:\n{out}");
        }
        // The socket is bound and the ring mapped once "listening on" is printed; a short
        // grace period covers the filter attach.
        std::thread::sleep(Duration::from_millis(50));
        Capture {
            proc,
            file,
            vm: who.to_string(),
        }
    }

    // --- teardown --------------------------------------------------------------------

    fn teardown(&self) {
        let (procs, switch, namespaces, links) = {
            let mut st = self.st();
            (
                std::mem::take(&mut st.procs),
                st.switch.take(),
                std::mem::take(&mut st.namespaces),
                std::mem::take(&mut st.links),
            )
        };
        for mut p in procs {
            if std::thread::panicking() {
                eprintln!("killing background process {}", p.name);
            }
            signal_tree(&p.child, libc::SIGKILL);
            let _ = p.child.wait();
        }
        if let Some(mut c) = switch {
            signal(c.id(), libc::SIGTERM);
            wait_child(&mut c, Duration::from_secs(3));
        }
        // The switch's taps are persistent: delete them wherever they are now (a stopped
        // switch no longer answers on the socket, so cleanup does not refuse).
        if self.config_path.exists() {
            let o = self.cleanup_out();
            if std::thread::panicking() || !o.ok() {
                eprintln!("teardown: {o}");
            }
        }
        for ns in namespaces.iter().rev() {
            // A process still inside one of our namespaces (a daemon that detached from
            // the process we spawned) was started by this test; it would keep the
            // namespace and its devices alive after `ip netns del`.
            for pid in host(&format!("ip netns pids {ns}"))
                .stdout
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
            {
                signal_foreign(pid, libc::SIGKILL);
            }
            let _ = host(&format!("ip netns del {ns}"));
        }
        for l in &links {
            if Path::new("/sys/class/net").join(l).exists() {
                let _ = host(&format!("ip link del {l}"));
            }
        }
        // A VM's interface name left in the root namespace (e.g. a tap a test made by
        // hand) was made by this test: the name holds the lab tag, which holds our PID.
        for l in self.root_links() {
            let _ = host(&format!("ip link del {l}"));
        }
    }

    /// What of this lab is still visible on the host (namespaces, interfaces).
    pub fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        let ns_prefix = format!("vsl-{}-", self.tag);
        for l in host("ip netns list").stdout.lines() {
            if l.starts_with(&ns_prefix) {
                left.push(format!("netns {l}"));
            }
        }
        left.extend(self.root_links().into_iter().map(|l| format!("link {l}")));
        left
    }

    /// This lab's interface names (`<tag><vm>`) that exist in the root namespace.
    fn root_links(&self) -> Vec<String> {
        self.vms()
            .iter()
            .map(|v| v.host_if.clone())
            .filter(|n| Path::new("/sys/class/net").join(n).exists())
            .collect()
    }

    /// Tears everything down now and asserts nothing of the lab is left on the host.
    #[track_caller]
    pub fn finish(self) {
        self.teardown();
        let mut left = Vec::new();
        let clean = wait_until(Duration::from_secs(3), || {
            left = self.leftovers();
            left.is_empty()
        });
        assert!(clean.is_some(), "left behind after teardown: {left:?}");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        if failed {
            eprintln!(
                "\n===== lab {}: test failed; switch log (last 60 lines) =====\n{}\n===== end of switch log =====",
                self.tag,
                self.log_tail(60)
            );
            if self.switch_running() {
                let o = self.ctl_out(&["show", "ports"]);
                eprintln!("{o}");
            }
        }
        self.teardown();
        if failed {
            eprintln!(
                "lab files (config, logs, captures) kept in {}",
                self.dir.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Small clients
// ---------------------------------------------------------------------------------------

/// A minimal HTTP/1.1 GET: returns (status code, body).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((resp.as_str(), ""));
    let code = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, body.to_string()))
}

/// Python TCP receiver: prints READY once listening, then "<bytes> <sha256>" after EOF.
/// Arguments: bind address, port.
pub const TCP_RECEIVER_PY: &str = "import socket,sys,hashlib
host,port=sys.argv[1],int(sys.argv[2])
fam=socket.AF_INET6 if ':' in host else socket.AF_INET
s=socket.socket(fam,socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
s.bind((host,port)); s.listen(1); s.settimeout(20)
print('READY',flush=True)
c,_=s.accept(); c.settimeout(20)
h=hashlib.sha256(); n=0
while True:
    b=c.recv(1<<16)
    if not b: break
    h.update(b); n+=len(b)
c.close()
print(n,h.hexdigest(),flush=True)
";

/// Python TCP sender: sends N pseudo-random bytes (fixed seed), waits for the receiver to
/// close, prints "<bytes> <sha256> <seconds>". Arguments: address, port, N.
pub const TCP_SENDER_PY: &str = "import socket,sys,hashlib,random,time
host,port,n=sys.argv[1],int(sys.argv[2]),int(sys.argv[3])
data=random.Random(7).randbytes(n)
s=socket.create_connection((host,port),timeout=20)
t=time.time(); s.sendall(data); s.shutdown(socket.SHUT_WR)
while s.recv(4096): pass
print(n,hashlib.sha256(data).hexdigest(),round(time.time()-t,3),flush=True)
";

/// Python UDP sender: one datagram with `payload` to addr:port, broadcast allowed.
/// Arguments: source address, destination address, port, payload.
pub const UDP_SEND_PY: &str = "import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET,socket.SO_BROADCAST,1)
s.bind((sys.argv[1],0))
s.sendto(sys.argv[4].encode(),(sys.argv[2],int(sys.argv[3])))
";

/// The VIP most tests use: group `web`, active-passive, candidates vm1 and vm2.
pub fn web_vip(addresses: &[IpAddr]) -> String {
    vip_toml("web", "active-passive", addresses, &["vm1", "vm2"], &[])
}

/// A `[[vip]]` table. `mode`: "active-passive" or "active-active"; `extra`: more
/// `key = value` lines (e.g. `owner = "vm1"`, `vrrp_vrid = 51`).
pub fn vip_toml(
    name: &str,
    mode: &str,
    addresses: &[IpAddr],
    candidates: &[&str],
    extra: &[&str],
) -> String {
    let q = |v: Vec<String>| {
        v.iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut s = format!(
        "[[vip]]\nname = \"{name}\"\naddresses = [{}]\nmode = \"{mode}\"\ncandidates = [{}]\n",
        q(addresses.iter().map(ToString::to_string).collect()),
        q(candidates.iter().map(ToString::to_string).collect()),
    );
    for l in extra {
        s.push_str(l);
        s.push('\n');
    }
    s
}

/// Python UDP echo server (IPv4 and IPv6): answers "<payload> <name>". Prints READY.
/// A failed reply (the VM's device vanished mid-test: ENETUNREACH) is skipped, not fatal,
/// so the server answers again once the VM is back, as a real service would.
/// Arguments: port, name.
pub const UDP_ECHO_PY: &str = "import socket,sys
port,name=int(sys.argv[1]),sys.argv[2].encode()
s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,0)
s.bind(('::',port))
print('READY',flush=True)
while True:
    d,a=s.recvfrom(2048)
    try: s.sendto(d+b' '+name,a)
    except OSError: pass
";

/// Python UDP prober: sends sequence-numbered datagrams at a fixed rate for a while,
/// collects echoes (from any source address), then prints one JSON line
/// `{"sent","received","max_gap_ms","by":{name: count}}`; `max_gap_ms` is the longest run
/// of unanswered probes times the interval (the outage a client saw). Prints READY first.
/// Arguments: address, port, rate (Hz), duration (s).
pub const UDP_PROBE_PY: &str = "import socket,sys,time,json,select
dst,port,hz,dur=sys.argv[1],int(sys.argv[2]),float(sys.argv[3]),float(sys.argv[4])
s=socket.socket(socket.AF_INET6 if ':' in dst else socket.AF_INET,socket.SOCK_DGRAM)
iv=1.0/hz; n=int(dur*hz); got={}
def rx(until):
    while True:
        r=until-time.time()
        if r<=0: return
        if select.select([s],[],[],r)[0]:
            d,_=s.recvfrom(2048)
            k,_,who=d.decode().partition(' ')
            got.setdefault(int(k),who)
print('READY',flush=True)
t0=time.time()
for i in range(n):
    try: s.sendto(str(i).encode(),(dst,port))
    except OSError: pass
    rx(t0+(i+1)*iv)
rx(time.time()+0.5)
run=best=0
for i in range(n):
    run=0 if i in got else run+1
    best=max(best,run)
by={}
for w in got.values(): by[w]=by.get(w,0)+1
print(json.dumps({'sent':n,'received':len(got),'max_gap_ms':round(best*iv*1000,1),'by':by}),flush=True)
";

/// What [`UDP_PROBE_PY`] reports.
#[derive(Clone, Debug)]
pub struct ProbeReport {
    /// Probes sent.
    pub sent: u64,
    /// Probes answered.
    pub received: u64,
    /// Longest run of unanswered probes, in milliseconds.
    pub max_gap_ms: f64,
    /// Answers per responder name.
    pub by: std::collections::BTreeMap<String, u64>,
}

impl Lab {
    /// Starts a UDP echo server in `vm` (answers with the VM's name) and waits until ready.
    #[track_caller]
    pub fn udp_echo(&self, vm: &Vm, port: u16) -> Proc<'_> {
        let port = port.to_string();
        self.spawn_ready(
            vm,
            "UDP echo server",
            &["python3", "-c", UDP_ECHO_PY, &port, &vm.name],
        )
    }

    /// Starts a UDP prober in `vm` towards dst:port (see [`UDP_PROBE_PY`]); read the result
    /// with [`Lab::probe_report`] after it ends.
    #[track_caller]
    pub fn udp_probe(
        &self,
        vm: &Vm,
        dst: impl fmt::Display,
        port: u16,
        hz: u32,
        duration: Duration,
    ) -> Proc<'_> {
        let (dst, port, hz) = (dst.to_string(), port.to_string(), hz.to_string());
        let dur = format!("{:.3}", duration.as_secs_f64());
        self.spawn_ready(
            vm,
            "UDP prober",
            &["python3", "-c", UDP_PROBE_PY, &dst, &port, &hz, &dur],
        )
    }

    /// Waits for a prober to finish and parses its report.
    #[track_caller]
    pub fn probe_report(&self, probe: Proc<'_>, timeout: Duration) -> ProbeReport {
        let o = probe.wait(timeout);
        let line = o.stdout.lines().last().unwrap_or_default().to_string();
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("prober output is not JSON ({e})\n{o}"));
        ProbeReport {
            sent: v["sent"].as_u64().unwrap_or(0),
            received: v["received"].as_u64().unwrap_or(0),
            max_gap_ms: v["max_gap_ms"].as_f64().unwrap_or(f64::MAX),
            by: answers_by(&v["by"]),
        }
    }
}

impl Lab {
    /// Sends `bytes` pseudo-random bytes over TCP from `from` to `dst:port` (an address of
    /// `to`, or a VIP it holds) and panics unless the receiver got exactly those bytes
    /// (count and SHA-256). Returns the sender's elapsed time in seconds.
    #[track_caller]
    pub fn tcp_transfer(
        &self,
        from: &Vm,
        to: &Vm,
        dst: impl fmt::Display,
        port: u16,
        bytes: usize,
    ) -> f64 {
        let (dst, port, n) = (dst.to_string(), port.to_string(), bytes.to_string());
        let rx = self.spawn(to, &["python3", "-c", TCP_RECEIVER_PY, &dst, &port]);
        assert!(
            rx.wait_for_output("READY", Duration::from_secs(10)),
            "TCP receiver in {} did not start: {}",
            to.name,
            rx.output()
        );
        let tx = from
            .run_args(&["python3", "-c", TCP_SENDER_PY, &dst, &port, &n])
            .expect_ok("TCP sender");
        let rx = rx.wait(Duration::from_secs(10));
        assert!(rx.ok(), "TCP receiver failed\n{rx}");
        let sent: Vec<&str> = tx.stdout.split_whitespace().collect();
        let last = rx.stdout.lines().last().unwrap_or_default();
        let got: Vec<&str> = last.split_whitespace().collect();
        assert_eq!(got.first(), Some(&n.as_str()), "receiver byte count\n{rx}");
        assert_eq!(
            got.get(1),
            sent.get(1),
            "payload checksum differs\nsender: {tx}\nreceiver: {rx}"
        );
        let took = sent.get(2).and_then(|t| t.parse().ok()).unwrap_or(f64::NAN);
        println!(
            "TCP {} -> {} [{dst}]: {bytes} bytes intact in {took} s",
            from.name, to.name
        );
        took
    }

    /// Runs `ping` in `vm` in the background: `count` echo requests every `interval`
    /// seconds (e.g. "0.05"); read the result with `parse_ping(&proc.wait(..).stdout)`.
    pub fn bg_ping(&self, vm: &Vm, dst: impl fmt::Display, count: u32, interval: &str) -> Proc<'_> {
        let (dst, count) = (dst.to_string(), count.to_string());
        let fam = if dst.contains(':') { "-6" } else { "-4" };
        self.spawn(
            vm,
            &[
                "ping", fam, "-n", "-i", interval, "-c", &count, "-W", "1", &dst,
            ],
        )
    }
}

// ---------------------------------------------------------------------------------------
// HA helpers: keepalived in a VM, a continuous VIP watcher, per-flow probes (A/A)
// ---------------------------------------------------------------------------------------

/// Python UDP echo server bound to one address (e.g. a VIP on `lo`), so its answers come
/// from that address, as an LVS-DR backend's do. Answers "<payload> <name>"; prints READY.
/// Arguments: bind address, port, name.
pub const UDP_ECHO_AT_PY: &str = "import socket,sys
addr,port,name=sys.argv[1],int(sys.argv[2]),sys.argv[3].encode()
s=socket.socket(socket.AF_INET6 if ':' in addr else socket.AF_INET,socket.SOCK_DGRAM)
s.bind((addr,port))
print('READY',flush=True)
while True:
    d,a=s.recvfrom(2048)
    try: s.sendto(d+b' '+name,a)
    except OSError: pass
";

/// Python UDP watcher: sends sequence-numbered datagrams at a fixed rate until SIGINT or
/// SIGTERM (or 120 s), printing `ANSWER <name> <seq> <secs>` whenever the responder
/// changes; at the end one JSON line `{"sent","received","max_gap_ms","by","runs"}` where
/// `runs` is the answer sequence run-length encoded (`["-", n]` for n lost probes).
/// Prints READY first. Arguments: address, port, rate (Hz). Needs no `json` module, so it
/// also runs in the QEMU guests' python3-minimal.
pub const UDP_WATCH_PY: &str = r#"import socket,sys,time,select,signal
dst,port,hz=sys.argv[1],int(sys.argv[2]),float(sys.argv[3])
s=socket.socket(socket.AF_INET6 if ':' in dst else socket.AF_INET,socket.SOCK_DGRAM)
iv=1.0/hz; got={}; n=0; stop=[False]; last=[None]
def h(*a): stop[0]=True
signal.signal(signal.SIGINT,h); signal.signal(signal.SIGTERM,h)
def rx(until):
    while True:
        r=until-time.time()
        if r<=0: return
        if select.select([s],[],[],r)[0]:
            d,_=s.recvfrom(2048)
            k,_,who=d.decode().partition(' ')
            k=int(k)
            if k not in got:
                got[k]=who
                if who!=last[0]:
                    last[0]=who
                    print('ANSWER',who,k,round(time.time()-t0,3),flush=True)
print('READY',flush=True)
t0=time.time()
while not stop[0] and n<hz*120:
    try: s.sendto(str(n).encode(),(dst,port))
    except OSError: pass
    n+=1
    rx(t0+n*iv)
rx(time.time()+0.5)
runs=[]
for i in range(n):
    w=got.get(i,'-')
    if runs and runs[-1][0]==w: runs[-1][1]+=1
    else: runs.append([w,1])
best=max([c for w,c in runs if w=='-'] or [0])
by={}
for w in got.values(): by[w]=by.get(w,0)+1
q=lambda w:'"'+''.join(c for c in w if c.isalnum() or c in '-_.')+'"'
print('{"sent":%d,"received":%d,"max_gap_ms":%.1f,"by":{%s},"runs":[%s]}'%(n,len(got),best*iv*1000,
    ','.join('%s:%d'%(q(w),c) for w,c in by.items()),','.join('[%s,%d]'%(q(w),c) for w,c in runs)),flush=True)
"#;

/// What [`UDP_WATCH_PY`] reports.
#[derive(Clone, Debug)]
pub struct WatchReport {
    /// Probes sent.
    pub sent: u64,
    /// Probes answered.
    pub received: u64,
    /// Longest run of unanswered probes, in milliseconds (the client's worst outage).
    pub max_gap_ms: f64,
    /// Answers per responder name.
    pub by: std::collections::BTreeMap<String, u64>,
    /// The answers in order, run-length encoded: (responder or "-" for lost, count).
    pub runs: Vec<(String, u64)>,
}

impl WatchReport {
    /// Who answered the last answered probes, and how many in a row.
    pub fn last_answerer(&self) -> Option<(&str, u64)> {
        self.runs
            .iter()
            .rev()
            .find(|(w, _)| w != "-")
            .map(|(w, n)| (w.as_str(), *n))
    }

    /// Probes lost after the last answer (still unanswered at the end).
    pub fn lost_at_end(&self) -> u64 {
        self.runs
            .last()
            .filter(|(w, _)| w == "-")
            .map_or(0, |(_, n)| *n)
    }

    /// "vm1x120 -x35 vm2x200": the answer sequence, for messages.
    pub fn pattern(&self) -> String {
        self.runs
            .iter()
            .map(|(w, n)| format!("{w}x{n}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl fmt::Display for WatchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sent {} answered {} worst gap {} ms: {}",
            self.sent,
            self.received,
            self.max_gap_ms,
            self.pattern()
        )
    }
}

/// A prober's `{"name": count}` object.
fn answers_by(v: &Value) -> std::collections::BTreeMap<String, u64> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

/// Parses the summary line [`UDP_WATCH_PY`] prints at its end (the last line starting with
/// `{`) out of its output.
pub fn parse_watch_report(out: &str) -> Result<WatchReport, String> {
    let line = out
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_default();
    let v: Value = serde_json::from_str(line)
        .map_err(|e| format!("watcher output has no JSON summary ({e})"))?;
    Ok(WatchReport {
        sent: v["sent"].as_u64().unwrap_or(0),
        received: v["received"].as_u64().unwrap_or(0),
        max_gap_ms: v["max_gap_ms"].as_f64().unwrap_or(f64::MAX),
        by: answers_by(&v["by"]),
        runs: v["runs"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| {
                        (
                            r[0].as_str().unwrap_or("?").to_string(),
                            r[1].as_u64().unwrap_or(0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// Python per-flow UDP prober: opens N sockets (N distinct source ports = N flows) and,
/// every `period` seconds until SIGINT/SIGTERM, sends one datagram per flow and prints one
/// JSON line `{"round": r, "who": [name or null per flow]}` (answers wait up to 0.2 s).
/// Prints `READY <ports…>` first. Arguments: address, port, flows, period (s).
pub const UDP_FLOWS_PY: &str = "import socket,sys,time,json,select,signal
dst,port,nf,per=sys.argv[1],int(sys.argv[2]),int(sys.argv[3]),float(sys.argv[4])
fam=socket.AF_INET6 if ':' in dst else socket.AF_INET
ss=[]
for i in range(nf):
    s=socket.socket(fam,socket.SOCK_DGRAM); s.bind(('',0)); s.setblocking(False); ss.append(s)
stop=[False]
def h(*a): stop[0]=True
signal.signal(signal.SIGINT,h); signal.signal(signal.SIGTERM,h)
print('READY',' '.join(str(s.getsockname()[1]) for s in ss),flush=True)
r=0
while not stop[0]:
    t=time.time(); who=[None]*nf; idx={s.fileno():i for i,s in enumerate(ss)}
    for s in ss:
        try: s.sendto(str(r).encode(),(dst,port))
        except OSError: pass
    while None in who and time.time()<t+0.2:
        for s in select.select(ss,[],[],0.02)[0]:
            try: d=s.recv(2048)
            except OSError: continue
            k,_,w=d.decode().partition(' ')
            if k==str(r): who[idx[s.fileno()]]=w
    print(json.dumps({'round':r,'who':who}),flush=True)
    r+=1
    time.sleep(max(0,t+per-time.time()))
";

/// One round of [`UDP_FLOWS_PY`]: who answered each flow (None: no answer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRound {
    /// Round number.
    pub round: u64,
    /// Responder per flow.
    pub who: Vec<Option<String>>,
}

impl FlowRound {
    /// Flows that got an answer.
    pub fn answered(&self) -> usize {
        self.who.iter().filter(|w| w.is_some()).count()
    }

    /// Flows per responder.
    pub fn share(&self) -> std::collections::BTreeMap<String, usize> {
        let mut m = std::collections::BTreeMap::new();
        for w in self.who.iter().flatten() {
            *m.entry(w.clone()).or_insert(0) += 1;
        }
        m
    }
}

impl Lab {
    /// Starts keepalived (VRRP only, foreground, logging to its output files) in `vm` with
    /// `conf` written into the lab directory, and private pid files so several instances
    /// coexist on the host. The process is the keepalived parent; its VRRP child is its
    /// descendant: [`Proc::crash`] is a crash (the VIPs stay configured), [`Proc::signal`]
    /// with SIGTERM a graceful stop (priority-0 advert, VIPs removed).
    #[track_caller]
    pub fn keepalived(&self, vm: &Vm, conf: &str) -> Proc<'_> {
        let n = {
            let mut st = self.st();
            st.next_id += 1;
            st.next_id
        };
        let base = format!("ka-{}-{n}", vm.name);
        let cfg = self.write_file(&format!("{base}.conf"), conf);
        let path = |ext: &str| {
            self.dir
                .join(format!("{base}.{ext}"))
                .to_string_lossy()
                .into_owned()
        };
        let (cfg, pid, vrrp, chk) = (
            cfg.to_string_lossy().into_owned(),
            path("pid"),
            path("vrrp.pid"),
            path("chk.pid"),
        );
        self.spawn(
            vm,
            &[
                "keepalived",
                "--dont-fork",
                "--log-console",
                "--log-detail",
                "--no-syslog",
                "--vrrp",
                "--use-file",
                &cfg,
                "--pid",
                &pid,
                "--vrrp_pid",
                &vrrp,
                "--checkers_pid",
                &chk,
            ],
        )
    }

    /// Starts a UDP watcher in `vm` towards dst:port (see [`UDP_WATCH_PY`]); stop it with
    /// [`Lab::watch_report`].
    #[track_caller]
    pub fn udp_watch(&self, vm: &Vm, dst: impl fmt::Display, port: u16, hz: u32) -> Proc<'_> {
        let (dst, port, hz) = (dst.to_string(), port.to_string(), hz.to_string());
        self.spawn_ready(
            vm,
            "UDP watcher",
            &["python3", "-c", UDP_WATCH_PY, &dst, &port, &hz],
        )
    }

    /// Stops a watcher (SIGINT) and parses its report.
    #[track_caller]
    pub fn watch_report(&self, watch: Proc<'_>) -> WatchReport {
        let o = watch.interrupt();
        parse_watch_report(&o.stdout).unwrap_or_else(|e| panic!("{e}\n{o}"))
    }

    /// Starts a per-flow prober in `vm` (see [`UDP_FLOWS_PY`]); read its rounds with
    /// [`flow_rounds`].
    #[track_caller]
    pub fn udp_flows(
        &self,
        vm: &Vm,
        dst: impl fmt::Display,
        port: u16,
        flows: usize,
        period: Duration,
    ) -> Proc<'_> {
        let (dst, port, nf) = (dst.to_string(), port.to_string(), flows.to_string());
        let per = format!("{:.3}", period.as_secs_f64());
        self.spawn_ready(
            vm,
            "flow prober",
            &["python3", "-c", UDP_FLOWS_PY, &dst, &port, &nf, &per],
        )
    }

    /// Starts a UDP echo server bound to `addr` in `vm` (see [`UDP_ECHO_AT_PY`]).
    #[track_caller]
    pub fn udp_echo_at(&self, vm: &Vm, addr: impl fmt::Display, port: u16) -> Proc<'_> {
        let (addr, port) = (addr.to_string(), port.to_string());
        self.spawn_ready(
            vm,
            "UDP echo server",
            &["python3", "-c", UDP_ECHO_AT_PY, &addr, &port, &vm.name],
        )
    }

    /// The moves `show vips` records for a VIP: (seconds ago, from, to, reason), oldest
    /// first.
    pub fn vip_moves(&self, name: &str) -> Vec<(f64, Option<String>, Option<String>, String)> {
        self.vip(name)["moves"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| {
                        (
                            m["secs_ago"].as_f64().unwrap_or(f64::NAN),
                            m["from"].as_str().map(str::to_string),
                            m["to"].as_str().map(str::to_string),
                            m["reason"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The rounds a per-flow prober has printed so far (see [`UDP_FLOWS_PY`]).
pub fn flow_rounds(p: &Proc<'_>) -> Vec<FlowRound> {
    fs::read_to_string(&p.out)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| FlowRound {
            round: v["round"].as_u64().unwrap_or(0),
            who: v["who"]
                .as_array()
                .map(|a| a.iter().map(|w| w.as_str().map(str::to_string)).collect())
                .unwrap_or_default(),
        })
        .collect()
}

/// The state letter of `/proc/<pid>/stat` (`R`, `S`, `T`, `Z`, …), None if it is gone.
fn proc_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

impl Proc<'_> {
    /// A crash of a daemon and its children (keepalived's parent and VRRP child), without
    /// races: the process is frozen first (SIGSTOP, until `/proc` says it stopped) so it can
    /// neither respawn a child nor hand a "parent died" signal on; then its descendants,
    /// deepest first, and finally itself get SIGKILL. Does not wait.
    ///
    /// A plain [`Proc::signal_tree`] with SIGKILL kills the parent first, and keepalived's
    /// VRRP child (PR_SET_PDEATHSIG = SIGTERM) then sometimes shuts down gracefully —
    /// priority-0 advert, VIPs removed — before its own SIGKILL lands: a clean stop, not a
    /// crash.
    pub fn crash(&self) {
        if !self.lab.proc_running(self.id) {
            return;
        }
        let pid = self.pid;
        // Still ours and not reaped (we hold `&self`, `wait` takes `self`): safe to signal.
        signal(pid, libc::SIGSTOP);
        let t = Instant::now();
        while !matches!(proc_state(pid), Some('T' | 't' | 'Z') | None)
            && t.elapsed() < Duration::from_secs(2)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        for k in descendants(pid).into_iter().rev() {
            signal_foreign(k, libc::SIGKILL);
        }
        signal(pid, libc::SIGKILL);
    }
}

// ---------------------------------------------------------------------------------------
// Crash and restart of the switch (soak test)
// ---------------------------------------------------------------------------------------

impl Lab {
    /// Starts the switch again after [`Lab::kill_switch`] (or [`Lab::stop_switch`]),
    /// keeping the previous log as `vswitch.log.<n>` (n = 1, 2, …; [`Lab::restart_switch`]
    /// keeps only one). The VMs' taps are persistent and the new switch re-attaches them
    /// where they are; a VM whose tap was deleted while the switch was down gets the new
    /// one the switch creates, adopted as at start. Waits until every port is up. Returns
    /// the number the old log got.
    #[track_caller]
    pub fn start_switch_again(&self) -> usize {
        let n = (1..)
            .find(|n| !self.dir.join(format!("vswitch.log.{n}")).exists())
            .unwrap_or(1);
        let _ = fs::rename(&self.log_path, self.dir.join(format!("vswitch.log.{n}")));
        self.start_switch();
        let vms = self.vms();
        for vm in vms.iter().filter(|v| v.backend == Backend::Tap) {
            if !self.vm_has_dev(vm) {
                self.adopt_tap(vm);
            }
        }
        for vm in &vms {
            self.wait_port_up(&vm.name, Duration::from_secs(5));
        }
        n
    }

    /// Whether the VM's NIC ([`VM_DEV`]) exists in its namespace.
    pub fn vm_has_dev(&self, vm: &Vm) -> bool {
        in_ns(&vm.ns, &["ip", "link", "show", &vm.dev], CMD_TIMEOUT).ok()
    }

    /// Every switch log of this lab: the kept ones (`vswitch.log.<n>`), then the current.
    pub fn all_logs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for n in 1.. {
            let p = self.dir.join(format!("vswitch.log.{n}"));
            match fs::read_to_string(&p) {
                Ok(t) => out.push((p.to_string_lossy().into_owned(), t)),
                Err(_) => break,
            }
        }
        out.push((self.log_path.to_string_lossy().into_owned(), self.log()));
        out
    }
}

/// `switch.io` and `switch.workers` for the switches the tests start: `VSWITCH_TEST_IO`
/// (`epoll`, `uring` or `auto`) and `VSWITCH_TEST_WORKERS` (a number) when set, so
/// `.ci/run` can run the live suite on each worker engine and with several workers; empty
/// (the defaults: `auto`, one worker) otherwise. (Cluster labs take the engine only: cluster
/// mode runs one worker.)
pub fn io_setting() -> String {
    let mut s = String::new();
    if let Ok(v) = std::env::var("VSWITCH_TEST_IO") {
        if !v.is_empty() {
            s.push_str(&format!("io = {v:?}\n"));
        }
    }
    if let Ok(v) = std::env::var("VSWITCH_TEST_WORKERS") {
        if let Ok(n) = v.trim().parse::<u32>() {
            s.push_str(&format!("workers = {n}\n"));
        }
    }
    s
}

/// The number of workers the suite's switches run (`VSWITCH_TEST_WORKERS`, default 1).
pub fn test_workers() -> u32 {
    std::env::var("VSWITCH_TEST_WORKERS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1)
}
