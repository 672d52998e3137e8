//! Real QEMU guests for the live tests: unmodified Debian kernels behind virtio-net, each
//! holding its own tap, with the switch bound to the host side of those taps (`netdev`
//! ports), as on a libvirt host. Images and the guest side are in `guests/` (see
//! docs/guests.md); this module drives `guests/vm.py`.
//!
//! ```ignore
//! let lab = Lab::new("qfw", 231);               // the switch, captures, cleanup
//! let gs = Guests::new(&lab);                     // one guest test at a time; images built
//! let g1 = gs.add("g1", TapMode::Fd);             // 10.231.0.11, 52:54:00:e7:00:01, tap <tag>g1
//! lab.set_extra_config(&gs.ports_toml());         // [[port]] netdev = "<tap>" per guest
//! lab.write_config();
//! lab.start_switch();
//! gs.boot(&[&g1, ...]);                           // starts QEMU, waits for the agents
//! gs.must(&g1, "ping -c1 10.231.0.12");
//! gs.finish();                                    // stops QEMU, asserts the taps are gone
//! ```
//!
//! Contract:
//! - [`Guests::new`] takes a process-wide and a host-wide lock
//!   (`/tmp/vswitch-guests-cpu.lock`, also taken by `guests/demo.sh` users by hand):
//!   TCG guests are CPU-bound, and two sets of three on two cores make every timer late.
//! - It runs `guests/build.sh` once per test process (0.3 s when the cache is current; on a
//!   fresh machine it installs QEMU and builds the images, about a minute).
//! - Every QEMU started here is stopped on drop, by the PID `vm.py` recorded (checked
//!   against `/proc/PID/cmdline`), also when the test panics; then its console log tail is
//!   printed. State (`vm.py`'s per-guest dirs) lives in the lab dir, so it is kept with the
//!   lab's files when a test fails.
//! - Each guest mounts the lab's `share/` dir on `/mnt/share` (9p): scripts go in there,
//!   and background commands write their output there, where the test reads it directly.
//! - Addresses: guest `gN` gets `10.<net>.0.(10+N)/24` and MAC `52:54:00:<net>:00:0N`;
//!   nothing else is ever addressed.

use super::*;
use std::sync::OnceLock;

/// `guests/vm.py`.
pub const VM_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guests/vm.py");
/// `guests/build.sh`.
pub const BUILD_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guests/build.sh");
/// Where the guest tests append their measurements (`scripts/test-all.sh` prints it).
pub const RESULTS: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/guest-results.txt");
/// Host-wide lock file held while guests run.
pub const CPU_LOCK: &str = "/tmp/vswitch-guests-cpu.lock";
/// Time limit of one command in a guest.
pub const GUEST_CMD_TIMEOUT: Duration = Duration::from_secs(60);

/// How the guest's tap is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TapMode {
    /// libvirt's way: `vm.py` opens `/dev/net/tun` with `IFF_VNET_HDR` and hands QEMU the
    /// fd (`-netdev tap,fd=N`); the tap vanishes when QEMU dies.
    Fd,
    /// QEMU opens (creates) the tap itself: `-netdev tap,ifname=…,vnet_hdr=on`.
    Ifname,
}

/// One guest.
#[derive(Debug)]
pub struct Guest {
    /// Its port name in the switch config (`g1`).
    pub name: String,
    /// Its name for `vm.py` (unique on the host: lab tag + name).
    pub vm: String,
    /// The tap (host side), `<lab tag><name>`.
    pub tap: String,
    /// Its MAC (set by QEMU).
    pub mac: Mac,
    /// Its IPv4 address (/24).
    pub ip4: Ipv4Addr,
    /// Its IPv6 address (/64), for a dual-stack guest ([`Guests::add_dual`]); a v4-only
    /// guest has IPv6 off on eth0, so it sends no RS/MLD noise into the switch.
    pub ip6: Option<Ipv6Addr>,
    /// How its tap is opened.
    pub mode: TapMode,
    pid: Mutex<Option<u32>>,
}

impl Guest {
    /// The QEMU PID of the current boot.
    pub fn pid(&self) -> Option<u32> {
        *self.pid.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Builds (or checks) the guest images once per test process.
pub fn ensure_images() -> Result<(), String> {
    static IMAGES: OnceLock<Result<(), String>> = OnceLock::new();
    IMAGES
        .get_or_init(|| {
            let t = Instant::now();
            let o = run_argv(&["bash", BUILD_SH], Duration::from_secs(1800));
            if o.ok() {
                println!(
                    "guest images ready in {:.1} s: {}",
                    t.elapsed().as_secs_f64(),
                    o.stdout.lines().last().unwrap_or_default()
                );
                Ok(())
            } else {
                Err(format!("guests/build.sh failed:\n{o}"))
            }
        })
        .clone()
}

/// Appends a measurement line to [`RESULTS`] (and prints it).
pub fn record(line: &str) {
    println!("RESULT {line}");
    if let Ok(mut f) = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(RESULTS)
    {
        let _ = writeln!(f, "{line}");
    }
}

/// Held while a test's guests exist: the process-wide mutex and the host-wide flock.
struct CpuLock {
    _inner: MutexGuard<'static, ()>,
    _file: fs::File,
}

fn cpu_lock() -> CpuLock {
    static SERIAL: Mutex<()> = Mutex::new(());
    let inner = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(CPU_LOCK)
        .unwrap_or_else(|e| panic!("open {CPU_LOCK}: {e}"));
    // SAFETY: flock(2) on a descriptor we own for the duration of the call.
    let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock {CPU_LOCK}");
    CpuLock {
        _inner: inner,
        _file: file,
    }
}

/// A test's guests. Drop it before its [`Lab`] (declare it after the lab).
pub struct Guests<'l> {
    lab: &'l Lab,
    /// `vm.py`'s state dir for this test.
    pub run: PathBuf,
    /// Shared with every guest on `/mnt/share`.
    pub share: PathBuf,
    list: Mutex<Vec<Arc<Guest>>>,
    _lock: CpuLock,
}

impl<'l> Guests<'l> {
    /// Takes the guest lock and makes sure the images exist (panics if they cannot be built).
    #[track_caller]
    pub fn new(lab: &'l Lab) -> Guests<'l> {
        let lock = cpu_lock();
        if let Err(e) = ensure_images() {
            panic!("{e}");
        }
        let run = lab.dir.join("guests");
        let share = lab.dir.join("share");
        fs::create_dir_all(&run).expect("create guest run dir");
        fs::create_dir_all(&share).expect("create share dir");
        Guests {
            lab,
            run,
            share,
            list: Mutex::new(Vec::new()),
            _lock: lock,
        }
    }

    fn guests(&self) -> Vec<Arc<Guest>> {
        self.list.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Declares an IPv4-only guest `name` (`g1`, `g2`, …: the number picks address and MAC).
    pub fn add(&self, name: &str, mode: TapMode) -> Arc<Guest> {
        self.add_guest(name, mode, false)
    }

    /// Declares a dual-stack guest: also `fd<net hex>::(10+N)/64`.
    pub fn add_dual(&self, name: &str, mode: TapMode) -> Arc<Guest> {
        self.add_guest(name, mode, true)
    }

    fn add_guest(&self, name: &str, mode: TapMode, dual: bool) -> Arc<Guest> {
        let n: u8 = name
            .trim_start_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .unwrap_or_else(|_| panic!("guest name {name:?} must end with its number"));
        let tap = format!("{}{name}", self.lab.tag);
        assert!(tap.len() <= 15, "tap name {tap} too long");
        let g = Arc::new(Guest {
            name: name.to_string(),
            vm: format!("{}-{name}", self.lab.tag),
            tap,
            mac: Mac([0x52, 0x54, 0x00, self.lab.net, 0x00, n]),
            ip4: self.lab.ip4(10 + n),
            ip6: dual.then(|| self.lab.ip6(10 + u16::from(n))),
            mode,
            pid: Mutex::new(None),
        });
        self.lab.track_link(&g.tap);
        self.list
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(g.clone());
        g
    }

    /// One `[[port]]` table per guest: `netdev` on its tap, its MAC and addresses.
    pub fn ports_toml(&self) -> String {
        self.ports_toml_with(|_| String::new())
    }

    /// [`Guests::ports_toml`] with more `key = value` lines per guest (`extra(g)`, each line
    /// ending in a newline), e.g. allowed-address-pairs.
    pub fn ports_toml_with(&self, extra: impl Fn(&Guest) -> String) -> String {
        let mut s = String::new();
        for g in self.guests() {
            let v6 = g.ip6.map(|a| format!(", \"{a}/64\"")).unwrap_or_default();
            s.push_str(&format!(
                "[[port]]\nname = \"{}\"\nnetdev = \"{}\"\nmac = \"{}\"\nips = [\"{}/24\"{v6}]\n{}\n",
                g.name,
                g.tap,
                g.mac,
                g.ip4,
                extra(&g)
            ));
        }
        s
    }

    /// Runs `vm.py ARGS` with this test's state dir.
    pub fn vm_py(&self, args: &[&str], timeout: Duration) -> Out {
        let run = format!("VSWITCH_GUEST_RUN={}", self.run.display());
        let mut argv = vec!["env", run.as_str(), "python3", VM_PY];
        argv.extend_from_slice(args);
        run_argv(&argv, timeout)
    }

    /// Starts `g`'s QEMU (does not wait for the boot).
    #[track_caller]
    pub fn start(&self, g: &Guest) {
        let mut ip = format!("{}/24", g.ip4);
        if let Some(a) = g.ip6 {
            ip.push_str(&format!(",{a}/64"));
        }
        let mac = g.mac.to_string();
        let share = self.share.to_string_lossy().into_owned();
        let mode = match g.mode {
            TapMode::Fd => "fd",
            TapMode::Ifname => "ifname",
        };
        let o = self
            .vm_py(
                &[
                    "start",
                    &g.vm,
                    "--tap",
                    &g.tap,
                    "--mac",
                    &mac,
                    "--ip",
                    &ip,
                    "--tap-mode",
                    mode,
                    "--share",
                    &share,
                    "--json",
                ],
                Duration::from_secs(60),
            )
            .expect_ok("start guest");
        let info: Value = serde_json::from_str(o.stdout.trim())
            .unwrap_or_else(|e| panic!("vm.py start output is not JSON ({e})\n{o}"));
        let pid = info["pid"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or_else(|| panic!("no pid in {info}"));
        *g.pid.lock().unwrap_or_else(|e| e.into_inner()) = Some(pid);
    }

    /// Waits until `g`'s agent answers (its network is configured by then); returns the
    /// seconds since its QEMU started.
    #[track_caller]
    pub fn wait(&self, g: &Guest, timeout: Duration) -> f64 {
        let t = format!("{}", timeout.as_secs());
        let o = self.vm_py(
            &["wait", &g.vm, "-t", &t],
            timeout + Duration::from_secs(10),
        );
        if !o.ok() {
            panic!(
                "guest {} did not come up\n{o}\n{}",
                g.name,
                self.console_tail(g, 30)
            );
        }
        // "<vm> up after 4.81 s (since QEMU start)"
        o.stdout
            .split_whitespace()
            .nth(3)
            .and_then(|s| s.parse().ok())
            .unwrap_or(f64::NAN)
    }

    /// Starts all of `gs` together and waits for each; returns their boot times (s).
    #[track_caller]
    pub fn boot(&self, gs: &[&Arc<Guest>]) -> Vec<f64> {
        for g in gs {
            self.start(g);
        }
        gs.iter()
            .map(|g| self.wait(g, Duration::from_secs(120)))
            .collect()
    }

    /// Runs `cmd` (sh) in the guest, with the default time limit.
    pub fn exec(&self, g: &Guest, cmd: &str) -> Out {
        self.exec_t(g, cmd, GUEST_CMD_TIMEOUT)
    }

    /// Runs `cmd` (sh) in the guest; the guest kills it after `timeout`.
    pub fn exec_t(&self, g: &Guest, cmd: &str, timeout: Duration) -> Out {
        let t = format!("{}", timeout.as_secs().max(1));
        let mut o = self.vm_py(
            &["exec", &g.vm, "-t", &t, cmd],
            timeout + Duration::from_secs(15),
        );
        o.cmd = format!("[{}] {cmd}", g.name);
        o
    }

    /// Runs `cmd` in the guest and panics unless it succeeds; returns its stdout.
    #[track_caller]
    pub fn must(&self, g: &Guest, cmd: &str) -> String {
        let o = self.exec(g, cmd);
        if !o.ok() {
            panic!("in guest {}: command failed\n{o}", g.name);
        }
        o.stdout
    }

    /// Starts `cmd` in the background in the guest, its stdout and stderr going to
    /// `share/<file>`; returns its PID in the guest.
    #[track_caller]
    pub fn spawn(&self, g: &Guest, cmd: &str, file: &str) -> u32 {
        let out = self.must(
            g,
            &format!("cd /mnt/share && nohup {cmd} > {file} 2>&1 < /dev/null & echo $!"),
        );
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("no PID from background start of {cmd:?}: {out:?}"))
    }

    /// The contents of `share/<file>` so far.
    pub fn shared(&self, file: &str) -> String {
        fs::read_to_string(self.share.join(file)).unwrap_or_default()
    }

    /// Waits until `share/<file>` contains `needle`; panics after `timeout`.
    #[track_caller]
    pub fn wait_shared(&self, file: &str, needle: &str, timeout: Duration) {
        if wait_until(timeout, || self.shared(file).contains(needle)).is_none() {
            panic!(
                "no {needle:?} in {file} after {timeout:?}:\n{}",
                self.shared(file)
            );
        }
    }

    /// Writes `share/<file>` (a script for the guests).
    pub fn put(&self, file: &str, contents: &str) {
        fs::write(self.share.join(file), contents).expect("write shared file");
    }

    /// Pings `dst` from `g` until one answer comes back; returns how long that took.
    #[track_caller]
    pub fn wait_ping(&self, g: &Guest, dst: Ipv4Addr, timeout: Duration) -> Duration {
        let t = Instant::now();
        loop {
            let o = self.exec_t(g, &format!("ping -c1 -W1 {dst}"), Duration::from_secs(5));
            if o.ok() {
                return t.elapsed();
            }
            if t.elapsed() > timeout {
                panic!(
                    "{} never reached {dst} in {timeout:?}\n{o}\n{}",
                    g.name,
                    self.lab.log_tail(20)
                );
            }
        }
    }

    /// `count` pings from `g` to `dst`, 0.2 s apart; parsed.
    pub fn ping(&self, g: &Guest, dst: Ipv4Addr, count: u32) -> PingStats {
        let o = self.exec_t(
            g,
            &format!("ping -n -c {count} -i 0.2 -W 1 {dst}"),
            Duration::from_secs(u64::from(count) + 10),
        );
        parse_ping(&o.stdout).unwrap_or_else(|| panic!("no ping summary\n{o}"))
    }

    /// QEMU's resident memory, MiB.
    pub fn rss_mib(&self, g: &Guest) -> Option<u64> {
        let pid = g.pid()?;
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kib: u64 = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        Some(kib / 1024)
    }

    /// Whether `g`'s QEMU (the PID we started) is alive.
    pub fn alive(&self, g: &Guest) -> bool {
        g.pid().is_some_and(|pid| is_qemu_of(pid, &g.vm))
    }

    /// SIGKILLs `g`'s QEMU: a real VM crash (with [`TapMode::Fd`] its tap vanishes).
    /// Returns once the process is gone.
    #[track_caller]
    pub fn kill_qemu(&self, g: &Guest) {
        let pid = g.pid().expect("guest was never started");
        assert!(is_qemu_of(pid, &g.vm), "QEMU of {} is not running", g.name);
        signal_foreign(pid, libc::SIGKILL);
        if wait_until(Duration::from_secs(10), || !is_qemu_of(pid, &g.vm)).is_none() {
            panic!("QEMU {pid} of {} survived SIGKILL", g.name);
        }
    }

    /// Stops `g`'s QEMU (SIGTERM, then SIGKILL; by its recorded PID).
    pub fn stop(&self, g: &Guest) {
        let _ = self.vm_py(&["stop", &g.vm], Duration::from_secs(20));
    }

    /// Captures on the host side of `g`'s tap: frames the guest sent are
    /// [`Direction::In`]; with [`Direction::Both`] also what the switch delivered to it.
    #[track_caller]
    pub fn capture(&self, g: &Guest, dir: Direction) -> Capture<'l> {
        self.lab.capture_on(None, &g.tap, &g.name, dir)
    }

    /// The last `n` lines of `g`'s serial console.
    pub fn console_tail(&self, g: &Guest, n: usize) -> String {
        let log = fs::read_to_string(self.run.join(&g.vm).join("console.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        format!(
            "--- {} console (last {n} lines) ---\n{}",
            g.name,
            lines[lines.len().saturating_sub(n)..].join("\n")
        )
    }

    fn teardown(&self) {
        for g in self.guests() {
            if self.alive(&g) {
                self.stop(&g);
            }
            // vm.py could not stop it (e.g. its state dir is broken): it is ours, by PID
            if let Some(pid) = g.pid().filter(|p| is_qemu_of(*p, &g.vm)) {
                signal_foreign(pid, libc::SIGKILL);
            }
        }
    }

    /// What of the guests is still on the host: QEMU processes, taps.
    pub fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        for g in self.guests() {
            if let Some(pid) = g.pid().filter(|p| is_qemu_of(*p, &g.vm)) {
                left.push(format!("QEMU {pid} of {}", g.name));
            }
            if Path::new("/sys/class/net").join(&g.tap).exists() {
                left.push(format!("tap {}", g.tap));
            }
        }
        left
    }

    /// Stops every guest now and asserts that no QEMU and no tap of theirs is left.
    #[track_caller]
    pub fn finish(self) {
        self.teardown();
        let mut left = Vec::new();
        let clean = wait_until(Duration::from_secs(10), || {
            left = self.leftovers();
            left.is_empty()
        });
        assert!(clean.is_some(), "left behind by the guests: {left:?}");
    }
}

impl Drop for Guests<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for g in self.guests() {
                eprintln!("{}", self.console_tail(&g, 25));
            }
        }
        self.teardown();
    }
}

/// `pid` is alive (not a zombie) and is the QEMU started for `vm` (guards PID reuse).
fn is_qemu_of(pid: u32, vm: &str) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    if matches!(proc_state(pid), Some('Z' | 'X') | None) {
        return false;
    }
    let argv: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    argv.windows(2)
        .any(|w| w[0] == b"-name" && w[1] == vm.as_bytes())
}

/// One iperf3 run's result (from `iperf3 -J`).
#[derive(Clone, Copy, Debug)]
pub struct Iperf {
    /// Receiver's throughput, Mbit/s.
    pub mbps: f64,
    /// TCP retransmissions seen by the sender.
    pub retransmits: u64,
    /// Bytes the receiver got.
    pub bytes: u64,
}

impl Guests<'_> {
    /// Runs `iperf3 -c dst -t secs` from `from` (an `iperf3 -s -D` must run at `dst`).
    #[track_caller]
    pub fn iperf(&self, from: &Guest, dst: Ipv4Addr, secs: u32) -> Iperf {
        let o = self.exec_t(
            from,
            &format!("iperf3 -c {dst} -t {secs} -J"),
            Duration::from_secs(u64::from(secs) + 40),
        );
        let v: Value = serde_json::from_str(&o.stdout)
            .unwrap_or_else(|e| panic!("iperf3 output is not JSON ({e})\n{o}"));
        if let Some(err) = v["error"].as_str() {
            panic!("iperf3 from {} to {dst}: {err}\n{o}", from.name);
        }
        let end = &v["end"];
        Iperf {
            mbps: end["sum_received"]["bits_per_second"]
                .as_f64()
                .unwrap_or(0.0)
                / 1e6,
            retransmits: end["sum_sent"]["retransmits"].as_u64().unwrap_or(0),
            bytes: end["sum_received"]["bytes"].as_u64().unwrap_or(0),
        }
    }
}
