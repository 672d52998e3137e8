//! Multi-host live-test harness: real etcd members and real `vswitch run` agents, each in
//! a network namespace of its own, on one bridge.
//!
//! ```text
//! fabric namespace  vcl<pid>f   bridge br0 10.250.0.254/24
//!   ├── vcl<pid>e1  10.250.0.11  etcd member m1  (client :2379, peer :2380)
//!   ├── vcl<pid>e2  10.250.0.12  etcd member m2
//!   ├── vcl<pid>e3  10.250.0.13  etcd member m3
//!   ├── vcl<pid>ha  10.250.0.1   vswitch run, [cluster] host = "host-a", vtep 10.250.0.1
//!   └── vcl<pid>hb  10.250.0.2   vswitch run, host-b
//! ```
//!
//! Address block 10.250.0.0/24 (the single-switch `Lab`s use 10.<net>.0.0/24 with other
//! nets). Namespace names carry the test process' PID, so two test binaries never collide.
//! [`Cluster`] owns everything it creates and removes it in `Drop`, also when the test
//! panics: the agents and etcd members are killed by the PID we got when we spawned them
//! (`ip netns exec` execs the program, so that PID is the program's), then the namespaces
//! we made are deleted by name (which also removes the veths and the agents' taps in
//! them). Data dirs, configs and logs live in a private temp dir, removed on success and
//! kept (its path printed with the log tails) on failure.

#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

mod vips;

/// The switch binary under test.
pub const VSWITCH: &str = env!("CARGO_BIN_EXE_vswitch");
/// Debian's etcd-server.
pub const ETCD: &str = "/usr/bin/etcd";
/// Debian's etcd-client.
pub const ETCDCTL: &str = "/usr/bin/etcdctl";

/// True if the test may run; otherwise prints why it is skipped.
pub fn can_run() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIPPED: needs root (live test)");
        return false;
    }
    for bin in [ETCD, ETCDCTL, "/usr/bin/openssl"] {
        if !Path::new(bin).exists() {
            println!("SKIPPED: needs {bin} (scripts/deps.sh installs etcd-server, etcd-client and openssl)");
            return false;
        }
    }
    true
}

/// Polls `f` every 100 ms until it returns true or `timeout` passes; the time it took.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t = std::time::Instant::now();
    loop {
        if f() {
            return Some(t.elapsed());
        }
        if t.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs a command to its end: success and stdout + stderr.
pub fn run(args: &[&str]) -> (bool, String) {
    match Command::new(args[0]).args(&args[1..]).output() {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, format!("{}: {e}", args[0])),
    }
}

fn must(args: &[&str]) -> String {
    let (ok, out) = run(args);
    assert!(ok, "{args:?} failed: {out}");
    out
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// One lab at a time per test process: the namespace names are per process, and
/// `cargo test` runs a file's tests in parallel unless told `--test-threads=1`.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// One etcd member.
struct Member {
    name: String,
    ns: String,
    ip: String,
    child: Option<Child>,
}

/// One host: a namespace with its agent.
pub struct Host {
    /// Cluster host name (`host-a`).
    pub name: String,
    /// Its namespace.
    pub ns: String,
    /// Underlay / VTEP address.
    pub ip: String,
    /// Its config file.
    pub config: PathBuf,
    /// Its control socket.
    pub socket: PathBuf,
    /// Its log.
    pub log: PathBuf,
    child: Option<Child>,
}

/// What a host runs: tap ports (no VM behind them), VMs, and extra configuration.
#[derive(Clone, Debug, Default)]
pub struct HostSpec {
    /// `(port, tap)`: a tap port the switch creates, with no VM behind it.
    pub taps: Vec<(String, String)>,
    /// VMs: a namespace each, on a veth the switch binds.
    pub vms: Vec<VmDef>,
    /// Appended to the config before `[cluster]` (e.g. `[[vip]]` tables).
    pub extra_toml: String,
    /// Appended inside `[cluster]` (e.g. `udp_gso = "off"`).
    pub cluster_toml: String,
}

impl HostSpec {
    /// Add a tap port.
    pub fn tap(mut self, port: &str, tap: &str) -> Self {
        self.taps.push((port.to_string(), tap.to_string()));
        self
    }

    /// Add a VM on port `port` (≤ 14 characters).
    pub fn vm(mut self, port: &str) -> Self {
        self.vms.push(VmDef {
            port: port.to_string(),
            extra: Vec::new(),
        });
        self
    }

    /// Add a VM with extra lines in its `[[port]]` table (e.g. `dest_check = false`).
    pub fn vm_with(mut self, port: &str, extra: &[&str]) -> Self {
        self.vms.push(VmDef {
            port: port.to_string(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        });
        self
    }

    /// Append a line to the host's `[cluster]` table.
    pub fn cluster(mut self, line: &str) -> Self {
        self.cluster_toml.push_str(line);
        self.cluster_toml.push('\n');
        self
    }

    /// Append raw TOML (before `[cluster]`).
    pub fn toml(mut self, text: &str) -> Self {
        self.extra_toml.push_str(text);
        self.extra_toml.push('\n');
        self
    }
}

/// One VM of a [`HostSpec`].
#[derive(Clone, Debug)]
pub struct VmDef {
    /// Port name (cluster-unique).
    pub port: String,
    /// Extra lines for its `[[port]]` table.
    pub extra: Vec<String>,
}

/// A VM: a namespace whose `eth0` is a veth to its host's switch.
#[derive(Clone, Debug)]
pub struct Vm {
    /// Port name.
    pub port: String,
    /// The host it is on.
    pub host: String,
    /// Its namespace.
    pub ns: String,
    /// The veth end in the host namespace (the switch's `netdev`).
    pub host_if: String,
    /// Its MAC.
    pub mac: String,
    /// IPv4 address (/24 in 10.251.0.0).
    pub ip4: String,
    /// IPv6 address (/64 in fd51::).
    pub ip6: String,
    /// Extra lines of its `[[port]]` table.
    pub extra: Vec<String>,
}

/// A process a test started in one of the lab's namespaces; `ip netns exec` execs the
/// program, so the PID is the program's. Killed (that PID only) on drop.
pub struct Background {
    child: Option<Child>,
    /// Where stdout and stderr go ([`Cluster::spawn_logged`]); piped otherwise.
    log: Option<PathBuf>,
}

impl Background {
    pub fn spawn(ns: &str, args: &[&str]) -> Background {
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {args:?} in {ns}: {e}"));
        Background {
            child: Some(child),
            log: None,
        }
    }

    fn spawn_logged(ns: &str, args: &[&str], log: PathBuf) -> Background {
        let f = fs::File::create(&log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {args:?} in {ns}: {e}"));
        Background {
            child: Some(child),
            log: Some(log),
        }
    }

    /// What a [`Cluster::spawn_logged`] process printed so far.
    pub fn output(&self) -> String {
        self.log
            .as_ref()
            .and_then(|p| fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// Waits (at most `timeout`) until its output contains `needle`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.output().contains(needle)).is_some()
    }

    /// Sends `sig` to the process (by the PID we spawned; it has not been reaped).
    pub fn signal(&self, sig: libc::c_int) {
        if let Some(pid) = self
            .child
            .as_ref()
            .and_then(|c| libc::pid_t::try_from(c.id()).ok())
        {
            // SAFETY: kill(2) on the PID of a child we spawned and still hold (not reaped),
            // so it cannot name a recycled process.
            unsafe { libc::kill(pid, sig) };
        }
    }

    /// Sends `sig`, waits (at most `timeout`, then SIGKILL) for the end; its output.
    pub fn stop_with(mut self, sig: libc::c_int, timeout: Duration) -> String {
        self.signal(sig);
        if let Some(mut c) = self.child.take() {
            let gone = wait_until(timeout, || matches!(c.try_wait(), Ok(Some(_))));
            if gone.is_none() {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
        self.output()
    }

    /// Waits for it to end (bound it with `timeout N` or a count) and returns stdout +
    /// stderr.
    pub fn finish(mut self) -> String {
        let Some(c) = self.child.take() else {
            return String::new();
        };
        if self.log.is_some() {
            let mut c = c;
            let _ = c.wait();
            return self.output();
        }
        match c.wait_with_output() {
            Ok(o) => format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => format!("wait: {e}"),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The whole multi-host lab.
pub struct Cluster {
    /// PID-unique prefix of the namespace names.
    pub tag: String,
    /// Private directory: etcd data, configs, sockets, logs.
    pub dir: PathBuf,
    fabric: String,
    members: Vec<Member>,
    hosts: BTreeMap<String, Host>,
    vms: BTreeMap<String, Vm>,
    namespaces: Vec<String>,
    /// Lease TTL written into every host's config.
    pub lease_ttl_secs: u32,
    /// TLS towards etcd (`Cluster::new_tls`): clients use https and a client certificate.
    tls: Option<Tls>,
    /// Held until the lab is torn down (a field: dropped after `Drop::drop` ran).
    _turn: MutexGuard<'static, ()>,
}

/// PEM files made with openssl for one lab: a CA, a server certificate valid for every
/// member's IP, a client certificate.
struct Tls {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

impl Tls {
    fn make(dir: &Path, ips: &[String]) -> Tls {
        let p = |n: &str| dir.join(n);
        let s = |p: &PathBuf| p.to_str().unwrap().to_string();
        let t = Tls {
            ca: p("ca.pem"),
            server_cert: p("server.pem"),
            server_key: p("server-key.pem"),
            client_cert: p("client.pem"),
            client_key: p("client-key.pem"),
        };
        let ca_key = p("ca-key.pem");
        must(&[
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=vswitch-test-ca",
            "-keyout",
            &s(&ca_key),
            "-out",
            &s(&t.ca),
        ]);
        let san: Vec<String> = ips.iter().map(|ip| format!("IP:{ip}")).collect();
        for (cert, key, cn, ext) in [
            (
                &t.server_cert,
                &t.server_key,
                "etcd",
                format!(
                    "subjectAltName={}\nextendedKeyUsage=serverAuth",
                    san.join(",")
                ),
            ),
            (
                &t.client_cert,
                &t.client_key,
                "vswitch",
                "extendedKeyUsage=clientAuth".to_string(),
            ),
        ] {
            let csr = dir.join(format!("{cn}.csr"));
            let extfile = dir.join(format!("{cn}.ext"));
            fs::write(&extfile, ext).unwrap();
            must(&[
                "openssl",
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                &format!("/CN={cn}"),
                "-keyout",
                &s(key),
                "-out",
                &s(&csr),
            ]);
            must(&[
                "openssl",
                "x509",
                "-req",
                "-in",
                &s(&csr),
                "-CA",
                &s(&t.ca),
                "-CAkey",
                &s(&ca_key),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &s(&extfile),
                "-out",
                &s(cert),
            ]);
        }
        t
    }
}

impl Cluster {
    /// The fabric and three etcd members, started and healthy.
    pub fn new(test: &str, lease_ttl_secs: u32) -> Cluster {
        Self::build(test, lease_ttl_secs, false)
    }

    /// As [`Cluster::new`], with etcd serving clients over TLS and requiring a client
    /// certificate (`--client-cert-auth`); the hosts get `https://` endpoints and
    /// `ca_file`, `cert_file`, `key_file`.
    pub fn new_tls(test: &str, lease_ttl_secs: u32) -> Cluster {
        Self::build(test, lease_ttl_secs, true)
    }

    fn build(test: &str, lease_ttl_secs: u32, tls: bool) -> Cluster {
        // a test that failed while holding it poisoned it; its lab was still torn down
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let tag = format!("vcl{:x}", std::process::id());
        let dir = std::env::temp_dir().join(format!("vswitch-cluster-{tag}-{test}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let fabric = format!("{tag}f");
        let mut c = Cluster {
            tag,
            dir,
            fabric: fabric.clone(),
            members: Vec::new(),
            hosts: BTreeMap::new(),
            vms: BTreeMap::new(),
            namespaces: Vec::new(),
            lease_ttl_secs,
            tls: None,
            _turn: turn,
        };
        c.add_ns(&fabric);
        must(&["ip", "-n", &fabric, "link", "add", "br0", "type", "bridge"]);
        must(&[
            "ip",
            "-n",
            &fabric,
            "addr",
            "add",
            "10.250.0.254/24",
            "dev",
            "br0",
        ]);
        must(&["ip", "-n", &fabric, "link", "set", "br0", "up"]);
        for i in 1..=3u8 {
            let ns = format!("{}e{i}", c.tag);
            let ip = format!("10.250.0.{}", 10 + i);
            c.attach(&ns, &format!("e{i}"), &ip);
            c.members.push(Member {
                name: format!("m{i}"),
                ns,
                ip,
                child: None,
            });
        }
        if tls {
            let ips: Vec<String> = c.members.iter().map(|m| m.ip.clone()).collect();
            c.tls = Some(Tls::make(&c.dir, &ips));
        }
        for i in 0..3 {
            c.start_member(i);
        }
        let ok = wait_until(Duration::from_secs(30), || c.etcd_healthy());
        assert!(
            ok.is_some(),
            "etcd did not become healthy:\n{}",
            c.member_logs()
        );
        c
    }

    fn add_ns(&mut self, ns: &str) {
        let _ = run(&["ip", "netns", "del", ns]);
        must(&["ip", "netns", "add", ns]);
        self.namespaces.push(ns.to_string());
        must(&["ip", "-n", ns, "link", "set", "lo", "up"]);
    }

    /// A namespace on the bridge with `ip`/24 on its `eth0`.
    fn attach(&mut self, ns: &str, port: &str, ip: &str) {
        self.add_ns(ns);
        let f = self.fabric.clone();
        must(&[
            "ip", "-n", &f, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns",
            ns,
        ]);
        must(&["ip", "-n", &f, "link", "set", port, "master", "br0", "up"]);
        must(&[
            "ip",
            "-n",
            ns,
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            "eth0",
        ]);
        must(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
    }

    fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}=http://{}:2380", m.name, m.ip))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    fn client_urls(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("{}://{}:2379", self.scheme(), m.ip))
            .collect()
    }

    /// The etcd client URLs, as a TOML list.
    pub fn endpoints_toml(&self) -> String {
        let v: Vec<String> = self
            .client_urls()
            .iter()
            .map(|u| format!("{u:?}"))
            .collect();
        format!("[{}]", v.join(", "))
    }

    /// etcdctl's TLS flags, if any.
    fn etcdctl_tls(&self) -> Vec<String> {
        match &self.tls {
            None => Vec::new(),
            Some(t) => vec![
                format!("--cacert={}", t.ca.display()),
                format!("--cert={}", t.client_cert.display()),
                format!("--key={}", t.client_key.display()),
            ],
        }
    }

    fn start_member(&mut self, i: usize) {
        let initial = self.initial_cluster();
        let dir = self.dir.clone();
        let tag = self.tag.clone();
        let scheme = self.scheme();
        let tls = self
            .tls
            .as_ref()
            .map(|t| (t.server_cert.clone(), t.server_key.clone(), t.ca.clone()));
        let m = &mut self.members[i];
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{}.log", m.name)))
            .unwrap();
        let data = dir.join(format!("{}.etcd", m.name));
        let client = format!("{scheme}://{}:2379", m.ip);
        let peer = format!("http://{}:2380", m.ip);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &m.ns, ETCD])
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial])
            .args(["--initial-cluster-token", &tag])
            .args(["--initial-cluster-state", "new"]);
        if let Some((cert, key, ca)) = tls {
            cmd.arg("--cert-file")
                .arg(cert)
                .arg("--key-file")
                .arg(key)
                .arg("--trusted-ca-file")
                .arg(ca)
                .arg("--client-cert-auth");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        m.child = Some(child);
    }

    fn etcdctl(&self, endpoints: &str, args: &[&str]) -> (bool, String) {
        let tls = self.etcdctl_tls();
        let mut argv: Vec<&str> = vec!["ip", "netns", "exec", &self.fabric, ETCDCTL];
        argv.push("--endpoints");
        argv.push(endpoints);
        argv.extend(tls.iter().map(String::as_str));
        argv.extend_from_slice(args);
        run(&argv)
    }

    /// Whether every member answers `endpoint health`.
    pub fn etcd_healthy(&self) -> bool {
        let eps = self.client_urls().join(",");
        self.etcdctl(
            &eps,
            &[
                "--dial-timeout=1s",
                "--command-timeout=2s",
                "endpoint",
                "health",
            ],
        )
        .0
    }

    /// Keys (and values) under `prefix`, read with etcdctl from the fabric namespace.
    pub fn etcd_get_prefix(&self, prefix: &str) -> Option<BTreeMap<String, String>> {
        let ep = self.client_urls().join(",");
        let (ok, out) = self.etcdctl(&ep, &["--command-timeout=3s", "get", "--prefix", prefix]);
        if !ok {
            return None;
        }
        let lines: Vec<&str> = out.lines().collect();
        let mut m = BTreeMap::new();
        for kv in lines.chunks(2) {
            if let [k, v] = kv {
                m.insert((*k).to_string(), (*v).to_string());
            }
        }
        Some(m)
    }

    /// Kill every etcd member (SIGKILL, by PID).
    pub fn stop_etcd(&mut self) {
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// Start the members again on their data dirs.
    pub fn start_etcd(&mut self) {
        for i in 0..self.members.len() {
            self.start_member(i);
        }
        let ok = wait_until(Duration::from_secs(30), || self.etcd_healthy());
        assert!(
            ok.is_some(),
            "etcd did not come back:\n{}",
            self.member_logs()
        );
    }

    /// A host namespace at 10.250.0.`n` running `vswitch run` with these `[[port]]`s:
    /// `(name, tap)` pairs. Returns once its control socket answers.
    pub fn add_host(&mut self, name: &str, n: u8, ports: &[(&str, &str)]) {
        let mut spec = HostSpec::default();
        for (port, tap) in ports {
            spec = spec.tap(port, tap);
        }
        self.add_host_spec(name, n, spec);
    }

    /// A host namespace at 10.250.0.`n` running `vswitch run` with the ports, VMs and extra
    /// configuration of `spec`. Each VM is a namespace of its own whose `eth0` is a veth
    /// to the host namespace, where the switch binds the other end (`netdev = "p<port>"`).
    /// Returns once its control socket answers.
    pub fn add_host_spec(&mut self, name: &str, n: u8, spec: HostSpec) {
        let ns = format!("{}h{}", self.tag, name.trim_start_matches("host-"));
        let ip = format!("10.250.0.{n}");
        self.attach(&ns, &format!("h{n}"), &ip);
        let config = self.dir.join(format!("{name}.toml"));
        let socket = self.dir.join(format!("{name}.sock"));
        let log = self.dir.join(format!("{name}.log"));
        let state = self.dir.join(format!("{name}-state"));
        let mut toml = format!(
            "[switch]\nmtu = 1450\nstate_dir = {:?}\n{}\n",
            state.display().to_string(),
            match std::env::var("VSWITCH_TEST_IO") {
                // the worker engine, as in `common::io_setting`
                Ok(v) if !v.is_empty() => format!("io = {v:?}\n"),
                _ => String::new(),
            }
        );
        for (i, (port, tap)) in spec.taps.iter().enumerate() {
            toml.push_str(&format!(
                "[[port]]\nname = {port:?}\ntap = {tap:?}\nmac = \"02:fa:00:00:{n:02x}:{:02x}\"\nips = [\"10.251.{n}.{}\"]\n\n",
                i + 1,
                i + 1
            ));
        }
        for (i, v) in spec.vms.iter().enumerate() {
            let vm = self.add_vm(name, &ns, n, 0x80 + i as u8, v);
            toml.push_str(&Self::vm_port_toml(&vm));
            self.vms.insert(vm.port.clone(), vm);
        }
        toml.push_str(&spec.extra_toml);
        toml.push_str(&format!(
            "\n[cluster]\nendpoints = {}\nhost = {name:?}\nvtep = {ip:?}\nlease_ttl_secs = {}\nvlans = [{{ vlan = 0, vni = 5000 }}]\n",
            self.endpoints_toml(),
            self.lease_ttl_secs
        ));
        toml.push_str(&spec.cluster_toml);
        if let Some(t) = &self.tls {
            toml.push_str(&format!(
                "ca_file = {:?}\ncert_file = {:?}\nkey_file = {:?}\n",
                t.ca.display().to_string(),
                t.client_cert.display().to_string(),
                t.client_key.display().to_string()
            ));
        }
        fs::write(&config, toml).unwrap();
        let mut h = Host {
            name: name.to_string(),
            ns,
            ip,
            config,
            socket,
            log,
            child: None,
        };
        Self::spawn_agent(&mut h);
        self.hosts.insert(name.to_string(), h);
        self.wait_agent(name);
    }

    /// Waits (20 s at most) for the host's control socket to answer; panics with the log
    /// tail if it does not.
    fn wait_agent(&self, name: &str) {
        let h = &self.hosts[name];
        let sock = h.socket.clone();
        let up = wait_until(Duration::from_secs(20), || {
            run(&[
                VSWITCH,
                "ctl",
                "--socket",
                sock.to_str().unwrap(),
                "show",
                "ports",
            ])
            .0
        });
        assert!(
            up.is_some(),
            "{name}: the switch did not start:\n{}",
            tail(&h.log, 30)
        );
    }

    /// Start a host's agent again (after [`Cluster::kill9`]) on the same config; returns
    /// once its control socket answers.
    pub fn restart_agent(&mut self, name: &str) {
        let h = self.hosts.get_mut(name).unwrap();
        assert!(h.child.is_none(), "{name}: the agent is still running");
        let _ = fs::remove_file(&h.socket);
        Self::spawn_agent(h);
        self.wait_agent(name);
    }

    /// The VM namespace for port `v.port` of host `host` (namespace `hns`, number `n`):
    /// address 10.251.0.`16 n + i`/24 and fd51::`16 n + i`/64 (no DAD), MAC
    /// 02:fb:00:00:`n`:`i`, where `i` is the VM's position on its host (from 1). The VMs of
    /// every host share one subnet: VLAN 0, VNI 5000 across the overlay.
    fn add_vm(&mut self, host: &str, hns: &str, n: u8, slot: u8, v: &VmDef) -> Vm {
        let i = slot - 0x80 + 1;
        let x = u16::from(n) * 16 + u16::from(i);
        assert!(
            x < 255 && i < 16,
            "too many hosts or VMs for the VM address plan"
        );
        let vns = format!("{}v{}", self.tag, v.port);
        let host_if = format!("p{}", v.port);
        assert!(
            host_if.len() <= 15 && vns.len() <= 40,
            "port name {:?} too long",
            v.port
        );
        self.add_ns(&vns);
        let mac = format!("02:fb:00:00:{n:02x}:{i:02x}");
        let ip4 = format!("10.251.0.{x}");
        let ip6 = format!("fd51::{x:x}");
        let vm = Vm {
            port: v.port.clone(),
            host: host.to_string(),
            ns: vns,
            host_if,
            mac,
            ip4,
            ip6,
            extra: v.extra.clone(),
        };
        Self::wire_vm(hns, &vm);
        vm
    }

    /// The VM's NIC: a veth from host namespace `hns` (end `vm.host_if`, up) to the VM's
    /// `eth0`, with the VM's MAC, addresses and MTU.
    fn wire_vm(hns: &str, vm: &Vm) {
        let (vns, host_if, mac, ip4, ip6) = (&vm.ns, &vm.host_if, &vm.mac, &vm.ip4, &vm.ip6);
        must(&[
            "ip", "-n", hns, "link", "add", host_if, "type", "veth", "peer", "name", "eth0",
            "netns", vns,
        ]);
        must(&["ip", "-n", hns, "link", "set", host_if, "up"]);
        must(&["ip", "-n", vns, "link", "set", "eth0", "address", mac]);
        must(&[
            "ip",
            "-n",
            vns,
            "addr",
            "add",
            &format!("{ip4}/24"),
            "dev",
            "eth0",
        ]);
        must(&[
            "ip",
            "-n",
            vns,
            "addr",
            "add",
            &format!("{ip6}/64"),
            "dev",
            "eth0",
            "nodad",
        ]);
        // the port MTU (`[switch] mtu = 1450`), as DHCP would tell a VM: the overlay carries
        // 1450 inner bytes on the fabric's 1500
        must(&["ip", "-n", vns, "link", "set", "eth0", "mtu", "1450"]);
        must(&["ip", "-n", vns, "link", "set", "eth0", "up"]);
    }

    /// The `[[port]]` table of a VM in its host's config.
    fn vm_port_toml(vm: &Vm) -> String {
        let mut t = format!(
            "[[port]]\nname = {:?}\nnetdev = {:?}\nmac = {:?}\nips = [{:?}, {:?}]\n",
            vm.port, vm.host_if, vm.mac, vm.ip4, vm.ip6
        );
        for line in &vm.extra {
            t.push_str(line);
            t.push('\n');
        }
        t.push('\n');
        t
    }

    /// Live migration of the VM of `port` to host `to`: its NIC disappears from the old
    /// host (the port leaves that host's config, `ctl reload`, then the veth is deleted) and
    /// appears on `to` with the same name, MAC and addresses (a new veth, the port added to
    /// that host's config, `ctl reload`). The VM's namespace, and what runs in it, stays, and
    /// so do the addresses the guest added (a VIP).
    pub fn migrate_vm(&mut self, port: &str, to: &str) {
        self.migrate_vm_with(port, to, |_| {});
    }

    /// [`Cluster::migrate_vm`], calling `between` while the port is on no host (unplugged
    /// from the old one, not yet plugged into `to`).
    pub fn migrate_vm_with(&mut self, port: &str, to: &str, between: impl FnOnce(&Cluster)) {
        let vm = self.vms[port].clone();
        let from = vm.host.clone();
        let table = Self::vm_port_toml(&vm);
        let (fns, tns) = (self.hosts[&from].ns.clone(), self.hosts[to].ns.clone());
        // the addresses the guest added itself (a VIP): a migrated guest keeps them
        let (_, shown) = self.vm_run(port, &["ip", "-o", "addr", "show", "dev", "eth0"]);
        let own: Vec<String> = shown
            .lines()
            .filter_map(|l| {
                let mut w = l
                    .split_whitespace()
                    .skip_while(|w| *w != "inet" && *w != "inet6");
                w.next()?;
                Some(w.next()?.to_string())
            })
            .filter(|a| {
                let ip = a.split('/').next().unwrap_or_default();
                ip != vm.ip4 && ip != vm.ip6 && !ip.starts_with("fe80:")
            })
            .collect();
        let old = fs::read_to_string(&self.hosts[&from].config).unwrap();
        assert!(
            old.contains(&table),
            "{from}'s config has no table for {port}"
        );
        fs::write(&self.hosts[&from].config, old.replace(&table, "")).unwrap();
        let (ok, out) = self.ctl(&from, &["reload"]);
        assert!(ok, "reload {from}: {out}");
        // the orchestrator unplugs the port first; the device goes when the source's
        // QEMU exits after the migration
        must(&["ip", "-n", &fns, "link", "del", &vm.host_if]);
        between(self);
        Self::wire_vm(&tns, &vm);
        for a in &own {
            let mut cmd = vec!["ip", "-n", &vm.ns, "addr", "add", a, "dev", "eth0"];
            if a.contains(':') {
                cmd.push("nodad");
            }
            must(&cmd);
        }
        let new = fs::read_to_string(&self.hosts[to].config).unwrap();
        let at = new.find("\n[cluster]").unwrap();
        fs::write(
            &self.hosts[to].config,
            format!("{}\n{table}{}", &new[..at], &new[at..]),
        )
        .unwrap();
        let (ok, out) = self.ctl(to, &["reload"]);
        assert!(ok, "reload {to}: {out}");
        self.vms.get_mut(port).unwrap().host = to.to_string();
    }

    /// Cut host `name` off the underlay (its veth on the fabric bridge goes down): it loses
    /// etcd and the other hosts.
    pub fn cut(&self, name: &str) {
        let n = self.hosts[name].ip.rsplit('.').next().unwrap().to_string();
        must(&[
            "ip",
            "-n",
            &self.fabric,
            "link",
            "set",
            &format!("h{n}"),
            "down",
        ]);
    }

    /// Undo [`Cluster::cut`].
    pub fn heal(&self, name: &str) {
        let n = self.hosts[name].ip.rsplit('.').next().unwrap().to_string();
        must(&[
            "ip",
            "-n",
            &self.fabric,
            "link",
            "set",
            &format!("h{n}"),
            "up",
        ]);
    }

    /// The VM of port `port`.
    pub fn vm(&self, port: &str) -> &Vm {
        &self.vms[port]
    }

    /// Runs `args` inside the VM of port `port`: (success, stdout + stderr).
    pub fn vm_run(&self, port: &str, args: &[&str]) -> (bool, String) {
        let mut a = vec!["ip", "netns", "exec", self.vms[port].ns.as_str()];
        a.extend_from_slice(args);
        run(&a)
    }

    /// Runs `args` inside the namespace of host `name` (its underlay side).
    pub fn host_run(&self, name: &str, args: &[&str]) -> (bool, String) {
        let mut a = vec!["ip", "netns", "exec", self.hosts[name].ns.as_str()];
        a.extend_from_slice(args);
        run(&a)
    }

    /// Runs `args` inside the fabric namespace (the underlay bridge, 10.250.0.254).
    pub fn fabric_run(&self, args: &[&str]) -> (bool, String) {
        let mut a = vec!["ip", "netns", "exec", self.fabric.as_str()];
        a.extend_from_slice(args);
        run(&a)
    }

    /// Starts `args` in the background inside the VM of port `port` (e.g. a server or a
    /// capture); killed by its PID when the handle is dropped.
    pub fn spawn_in_vm(&self, port: &str, args: &[&str]) -> Background {
        Background::spawn(&self.vms[port].ns, args)
    }

    /// Starts `args` in the background inside the VM of `port`, its stdout and stderr going
    /// to `<lab dir>/<file>` (read with [`Background::output`]).
    pub fn spawn_logged(&self, port: &str, file: &str, args: &[&str]) -> Background {
        Background::spawn_logged(&self.vms[port].ns, args, self.dir.join(file))
    }

    /// Starts `args` in the background in the test's own namespace (e.g. `vswitch ctl watch`
    /// on a host's socket), logged to `<lab dir>/<file>`.
    pub fn spawn_logged_root(&self, file: &str, args: &[&str]) -> Background {
        let f = fs::File::create(self.dir.join(file)).unwrap();
        let child = Command::new(args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {args:?}: {e}"));
        Background {
            child: Some(child),
            log: Some(self.dir.join(file)),
        }
    }

    /// Starts `args` in the background in the fabric namespace, logged to `<lab dir>/<file>`.
    pub fn spawn_fabric_logged(&self, file: &str, args: &[&str]) -> Background {
        Background::spawn_logged(&self.fabric, args, self.dir.join(file))
    }

    /// Writes `contents` to `<lab dir>/<file>`; its path.
    pub fn write_file(&self, file: &str, contents: &str) -> PathBuf {
        let p = self.dir.join(file);
        fs::write(&p, contents).unwrap();
        p
    }

    /// Starts `args` in the background inside host `name`'s namespace (e.g. a tcpdump of
    /// its underlay `eth0`); killed by its PID when the handle is dropped.
    pub fn spawn_in_host(&self, name: &str, args: &[&str]) -> Background {
        Background::spawn(&self.hosts[name].ns, args)
    }

    /// `vswitch ctl --json ARGS` on a host: the parsed answer, or the error text.
    pub fn ctl_json(&self, name: &str, args: &[&str]) -> Result<Value, String> {
        let h = &self.hosts[name];
        let mut a = vec![
            VSWITCH,
            "ctl",
            "--socket",
            h.socket.to_str().unwrap(),
            "--json",
        ];
        a.extend_from_slice(args);
        let (ok, out) = run(&a);
        if !ok {
            return Err(out);
        }
        serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))
    }

    /// `vswitch ctl ARGS` on a host: (success, output).
    pub fn ctl(&self, name: &str, args: &[&str]) -> (bool, String) {
        let h = &self.hosts[name];
        let mut a = vec![VSWITCH, "ctl", "--socket", h.socket.to_str().unwrap()];
        a.extend_from_slice(args);
        run(&a)
    }

    fn spawn_agent(h: &mut Host) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&h.log)
            .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &h.ns, VSWITCH, "run", "--config"])
            .arg(&h.config)
            .arg("--socket")
            .arg(&h.socket)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn vswitch");
        h.child = Some(child);
    }

    /// The host.
    pub fn host(&self, name: &str) -> &Host {
        &self.hosts[name]
    }

    /// The PID of the host's agent, while it runs.
    pub fn agent_pid(&self, name: &str) -> Option<u32> {
        self.hosts[name].child.as_ref().map(Child::id)
    }

    /// `kill -9` the host's agent (by the PID we spawned); returns once it is reaped.
    pub fn kill9(&mut self, name: &str) {
        let h = self.hosts.get_mut(name).unwrap();
        if let Some(mut c) = h.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `vswitch ctl --json show hosts` on a host: the parsed answer, or the error text.
    pub fn show_hosts(&self, name: &str) -> Result<Value, String> {
        let h = &self.hosts[name];
        let (ok, out) = run(&[
            VSWITCH,
            "ctl",
            "--socket",
            h.socket.to_str().unwrap(),
            "--json",
            "show",
            "hosts",
        ]);
        if !ok {
            return Err(out);
        }
        serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))
    }

    /// The host names `name` lists in `show hosts` (empty on an error).
    pub fn listed(&self, name: &str) -> Vec<String> {
        match self.show_hosts(name) {
            Ok(Value::Array(v)) => v
                .iter()
                .filter_map(|h| h["host"].as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The local entry of `show hosts` on `name`.
    pub fn local_entry(&self, name: &str) -> Option<Value> {
        match self.show_hosts(name) {
            Ok(Value::Array(v)) => v.into_iter().find(|h| h["local"] == true),
            _ => None,
        }
    }

    /// The agent's log so far.
    pub fn log(&self, name: &str) -> String {
        fs::read_to_string(&self.hosts[name].log).unwrap_or_default()
    }

    /// Tails of every log, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for h in self.hosts.values() {
            s.push_str(&format!(
                "--- {} ({})\n{}\n",
                h.name,
                h.log.display(),
                tail(&h.log, 25)
            ));
        }
        s
    }

    fn member_logs(&self) -> String {
        let mut s = String::new();
        for m in &self.members {
            let p = self.dir.join(format!("{}.log", m.name));
            s.push_str(&format!("--- {}\n{}\n", m.name, tail(&p, 10)));
        }
        s
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        if failed {
            eprintln!(
                "cluster lab kept in {}\n{}{}",
                self.dir.display(),
                self.logs(),
                self.member_logs()
            );
        }
        for h in self.hosts.values_mut() {
            if let Some(mut c) = h.child.take() {
                // SIGTERM first: the agent revokes its lease and removes its socket
                if let Ok(pid) = libc::pid_t::try_from(c.id()) {
                    // SAFETY: kill(2) on the PID of a child we spawned and have not reaped
                    // (the `Child` is held here), so it cannot name a recycled process.
                    unsafe { libc::kill(pid, libc::SIGTERM) };
                }
                let gone = wait_until(Duration::from_secs(5), || {
                    matches!(c.try_wait(), Ok(Some(_)))
                });
                if gone.is_none() {
                    let _ = c.kill();
                }
                let _ = c.wait();
            }
        }
        self.stop_etcd();
        for ns in self.namespaces.iter().rev() {
            let _ = run(&["ip", "netns", "del", ns]);
        }
        if !failed {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
