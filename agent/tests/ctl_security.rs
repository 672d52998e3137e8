//! Live tests of the locked-down control plane (as root; otherwise SKIPPED):
//! - the control socket is 0660, group `switch.ctl_group`, in a directory that is not
//!   world-writable, even when the switch is started under `umask 000`;
//! - an unprivileged user (nobody, through `setpriv`) cannot change the switch, neither
//!   through the socket's mode nor, when it can connect, through the `SO_PEERCRED` check
//!   (refused, logged, and without effect), while read-only commands work for it;
//! - a member of `ctl_group` (supplementary or primary group) may change the switch;
//! - idle connections do not lock root out, and an oversized request gets an error;
//! - the metrics endpoint listens on loopback for a bare port, answers garbage with 400.
//!
//! The switch's ports name interfaces that do not exist (they stay down): no namespace or
//! link is created. Everything lives in the lab's temp directory; the switch is killed by
//! PID when the lab is dropped, also when a test fails.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{require_root, run_argv, Lab, Out, CMD_TIMEOUT, VSWITCH};

/// nobody / nogroup.
const NOBODY: u32 = 65534;

/// A group of this host for `ctl_group` that nobody is not in: (name, gid).
fn test_group() -> (String, u32) {
    let text = fs::read_to_string("/etc/group").expect("read /etc/group");
    let groups: Vec<(String, u32, String)> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let gid = f.get(2)?.parse::<u32>().ok()?;
            Some((
                f.first()?.to_string(),
                gid,
                f.get(3).unwrap_or(&"").to_string(),
            ))
        })
        .collect();
    for prefer in ["operator", "src", "staff", "users", "games"] {
        if let Some((n, g, _)) = groups
            .iter()
            .find(|(n, g, m)| n == prefer && m.is_empty() && *g != 0)
        {
            return (n.clone(), *g);
        }
    }
    groups
        .into_iter()
        .find(|(_, g, m)| *g != 0 && *g != NOBODY && m.is_empty())
        .map(|(n, g, _)| (n, g))
        .expect("a group without members in /etc/group")
}

/// A lab whose socket is in `run/` below the lab directory (the switch creates `run/`),
/// with a config of two ports on absent interfaces and one VIP.
fn lab(name: &str, net: u8, group: &str) -> Lab {
    let mut lab = Lab::new(name, net);
    // nobody must be able to reach the lab directory (the test's umask may be strict)
    fs::set_permissions(&lab.dir, fs::Permissions::from_mode(0o755)).expect("chmod lab dir");
    lab.socket = lab.dir.join("run").join("ctl.sock");
    let t = &lab.tag;
    lab.write_config_text(&format!(
        "[switch]\nctl_group = \"{group}\"\nstate_dir = \"{}\"\n\n\
         [[port]]\nname = \"p1\"\nnetdev = \"{t}a\"\nmac = \"02:00:00:00:00:01\"\n\n\
         [[port]]\nname = \"p2\"\nnetdev = \"{t}b\"\nmac = \"02:00:00:00:00:02\"\n\n\
         [[vip]]\nname = \"web\"\naddresses = [\"10.{net}.0.100\"]\ncandidates = [\"p1\", \"p2\"]\n",
        lab.state_dir().display()
    ));
    lab
}

/// A copy of the switch binary that nobody can execute (the build tree may be private);
/// removed on drop, also when the test fails (the lab keeps its directory then).
struct NobodyBinary(PathBuf);

impl NobodyBinary {
    fn new(lab: &Lab) -> NobodyBinary {
        let p = lab.dir.join("vswitch");
        fs::copy(VSWITCH, &p).expect("copy the binary");
        let b = NobodyBinary(p);
        fs::set_permissions(&b.0, fs::Permissions::from_mode(0o755)).expect("chmod the binary");
        b
    }
}

impl Drop for NobodyBinary {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// `vswitch ctl --json ARGS` as uid nobody, with `ids` the setpriv group options.
fn ctl_as(bin: &Path, lab: &Lab, ids: &[&str], args: &[&str]) -> Out {
    let uid = format!("--reuid={NOBODY}");
    let bin = bin.to_string_lossy().into_owned();
    let sock = lab.socket.to_string_lossy().into_owned();
    let mut a = vec!["setpriv", uid.as_str()];
    a.extend_from_slice(ids);
    a.extend_from_slice(&[bin.as_str(), "ctl", "--socket", sock.as_str(), "--json"]);
    a.extend_from_slice(args);
    run_argv(&a, CMD_TIMEOUT)
}

fn admin_up(lab: &Lab, port: &str) -> bool {
    let p = lab.port(port).unwrap_or_else(|| panic!("no port {port}"));
    p["admin_up"]
        .as_bool()
        .unwrap_or_else(|| panic!("no admin_up in {p}"))
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p)
        .unwrap_or_else(|e| panic!("stat {}: {e}", p.display()))
        .mode()
        & 0o7777
}

#[test]
fn socket_permissions_and_peer_checks() {
    if !require_root() {
        return;
    }
    let (gname, gid) = test_group();
    let lab = lab("ctlp", 245, &gname);
    let bin_copy = NobodyBinary::new(&lab);
    let bin = bin_copy.0.as_path();
    lab.with_umask(0o000);
    lab.start_switch();

    // 0660 root:ctl_group, in a 0750 root:ctl_group directory, despite umask 000
    let sock_md = fs::metadata(&lab.socket).expect("stat socket");
    let dir = lab.socket.parent().expect("socket dir");
    let dir_md = fs::metadata(dir).expect("stat socket dir");
    assert_eq!(mode(&lab.socket), 0o660, "socket mode");
    assert_eq!((sock_md.uid(), sock_md.gid()), (0, gid), "socket owner");
    assert_eq!(mode(dir), 0o750, "socket dir mode");
    assert_eq!(dir_md.gid(), gid, "socket dir group");
    assert_eq!(mode(dir) & 0o002, 0, "socket dir is not world-writable");
    let log = lab.log();
    assert!(log.contains("control socket ready"), "{log}");

    let gid_s = gid.to_string();
    let nogroups = [format!("--regid={NOBODY}"), "--clear-groups".to_string()];
    let nogroups: Vec<&str> = nogroups.iter().map(String::as_str).collect();
    let member = [format!("--regid={NOBODY}"), format!("--groups={gid_s}")];
    let member: Vec<&str> = member.iter().map(String::as_str).collect();
    let primary = [format!("--regid={gid_s}"), "--clear-groups".to_string()];
    let primary: Vec<&str> = primary.iter().map(String::as_str).collect();

    // nobody outside the group cannot even connect; nothing changes
    assert!(admin_up(&lab, "p1"));
    let o = ctl_as(bin, &lab, &nogroups, &["port", "down", "p1"]);
    assert!(!o.ok(), "nobody may not connect:\n{o}");
    assert!(o.stderr.contains("ermission denied"), "{o}");
    let o = ctl_as(bin, &lab, &nogroups, &["show", "vips"]);
    assert!(!o.ok(), "{o}");
    assert!(admin_up(&lab, "p1"), "a refused port down took effect");

    // a member (supplementary group) may read and change
    let o = ctl_as(bin, &lab, &member, &["show", "vips"]);
    assert!(o.ok(), "member: show vips\n{o}\n{}", lab.log_tail(10));
    assert!(o.stdout.contains("\"web\""), "{o}");
    let o = ctl_as(bin, &lab, &member, &["port", "down", "p1"]);
    assert!(o.ok(), "member: port down\n{o}\n{}", lab.log_tail(10));
    assert!(!admin_up(&lab, "p1"), "member's port down had no effect");
    // a member by primary group too
    let o = ctl_as(bin, &lab, &primary, &["port", "up", "p1"]);
    assert!(
        o.ok(),
        "primary-group member: port up\n{o}\n{}",
        lab.log_tail(10)
    );
    assert!(admin_up(&lab, "p1"));

    // An operator widens the socket to everyone: nobody can connect now, and may read,
    // but the SO_PEERCRED check still refuses every command that changes something.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod dir");
    fs::set_permissions(&lab.socket, fs::Permissions::from_mode(0o666)).expect("chmod sock");
    let o = ctl_as(bin, &lab, &nogroups, &["show", "vips"]);
    assert!(o.ok(), "anyone who can connect may read:\n{o}");
    assert!(o.stdout.contains("\"web\""), "{o}");
    let o = ctl_as(bin, &lab, &nogroups, &["show", "ports"]);
    assert!(o.ok(), "{o}");
    for args in [
        &["port", "down", "p1"][..],
        &["vip", "move", "web", "p2"],
        &["vip", "release", "web", "p1"],
        &["reload"],
    ] {
        let o = ctl_as(bin, &lab, &nogroups, args);
        assert!(!o.ok(), "{args:?} by nobody succeeded:\n{o}");
        assert!(o.stderr.contains("permission denied"), "{o}");
        assert!(
            o.stderr.contains(&gname),
            "the message names the group: {o}"
        );
    }
    assert!(admin_up(&lab, "p1"), "a refused port down took effect");
    assert!(
        lab.vip_owners("web").is_empty(),
        "a refused vip move took effect"
    );
    assert!(
        lab.wait_log("ctl_denied", Duration::from_secs(5)),
        "no ctl_denied log:\n{}",
        lab.log_tail(20)
    );
    let denied: Vec<String> = lab
        .log()
        .lines()
        .filter(|l| l.contains("ctl_denied"))
        .map(str::to_string)
        .collect();
    assert_eq!(denied.len(), 4, "{denied:#?}");
    assert!(
        denied
            .iter()
            .all(|l| l.contains("WARN") && l.contains("uid=65534") && l.contains("pid=")),
        "{denied:#?}"
    );
    assert!(
        denied.iter().any(|l| l.contains("cmd=port-admin")),
        "{denied:#?}"
    );
    assert!(
        denied.iter().any(|l| l.contains("cmd=vip-move")),
        "{denied:#?}"
    );

    // root still may
    let o = lab.ctl_out(&["port", "down", "p2"]);
    assert!(o.ok(), "{o}");
    assert!(!admin_up(&lab, "p2"));
    lab.finish();
}

#[test]
fn existing_world_writable_socket_dir_is_refused() {
    if !require_root() {
        return;
    }
    let mut lab = lab("ctlw", 246, "root");
    let ww = lab.dir.join("open");
    fs::create_dir(&ww).expect("mkdir");
    fs::set_permissions(&ww, fs::Permissions::from_mode(0o1777)).expect("chmod");
    lab.socket = ww.join("ctl.sock");
    let cfg = lab.config_path.to_string_lossy().into_owned();
    let sock = lab.socket.to_string_lossy().into_owned();
    let o = run_argv(
        &[VSWITCH, "run", "--config", &cfg, "--socket", &sock],
        CMD_TIMEOUT,
    );
    assert!(!o.ok(), "{o}");
    assert!(o.stderr.contains("world-writable"), "{o}");
    assert!(!lab.socket.exists());
    assert_eq!(mode(&ww), 0o1777, "an existing directory is not changed");
    lab.finish();
}

/// Opens `n` connections that never send anything.
fn idle_connections(sock: &Path, n: usize) -> Vec<UnixStream> {
    (0..n)
        .map(|i| UnixStream::connect(sock).unwrap_or_else(|e| panic!("connect #{i}: {e}")))
        .collect()
}

/// Whether the server still holds `s` open (no data, no end-of-file yet).
fn still_open(s: &UnixStream) -> bool {
    let _ = s.set_nonblocking(true);
    let mut buf = [0u8; 256];
    let mut r = s;
    matches!(r.read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[test]
fn idle_connections_do_not_lock_out_root() {
    if !require_root() {
        return;
    }
    let lab = lab("ctli", 247, "root");
    lab.start_switch();
    let idle = idle_connections(&lab.socket, 40);
    // let the switch accept them all
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let stats = lab.ctl(&["show", "stats"]);
    let took = t.elapsed();
    assert!(stats.as_array().is_some_and(|a| a.len() == 2), "{stats}");
    // The idle clients are dropped by the server after 5 s without a request; an answer
    // well inside that shows they did not have to time out first.
    assert!(took < Duration::from_secs(4), "show stats took {took:?}");
    let open = idle.iter().filter(|s| still_open(s)).count();
    assert!(
        open >= 20,
        "only {open} of 40 idle connections still open: the answer did not come while they were held"
    );
    let o = lab.ctl_out(&["port", "down", "p1"]);
    assert!(o.ok(), "{o}");
    drop(idle);
    lab.finish();
}

#[test]
fn oversized_request_gets_an_error() {
    if !require_root() {
        return;
    }
    let lab = lab("ctlr", 248, "root");
    lab.start_switch();
    let mut s = UnixStream::connect(&lab.socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.set_write_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let big = format!(
        "{{\"cmd\":\"port-admin\",\"port\":\"{}\",\"up\":false}}\n",
        "x".repeat(100 * 1024)
    );
    // the switch stops reading at the limit, answers and closes: the rest may not fit
    let _ = s.write_all(big.as_bytes());
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    assert!(resp.contains("request too large"), "answer: {resp:?}");
    let v: serde_json::Value = serde_json::from_str(resp.trim()).expect("JSON answer");
    assert!(v["error"].is_string(), "{v}");
    // a request just under the limit is read (and refused for what it says)
    let mut s = UnixStream::connect(&lab.socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let long_name = format!(
        "{{\"cmd\":\"port-admin\",\"port\":\"{}\",\"up\":false}}\n",
        "x".repeat(60 * 1024)
    );
    s.write_all(long_name.as_bytes()).expect("write");
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    assert!(!resp.contains("too large"), "{resp}");
    assert!(resp.contains("error"), "{resp}");
    // still serving
    assert!(admin_up(&lab, "p1"));
    lab.finish();
}

fn raw_http(addr: SocketAddr, req: &[u8]) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = s.write_all(req);
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp
}

#[test]
fn metrics_on_loopback_by_default_and_garbage_is_400() {
    if !require_root() {
        return;
    }
    let lab = lab("ctlm", 249, "root");
    // a bare port (0: any free one) listens on loopback
    lab.with_metrics_arg("0");
    lab.start_switch();
    let addr = lab.metrics_addr();
    assert_eq!(addr.ip().to_string(), "127.0.0.1", "{addr}");
    assert_ne!(addr.port(), 0);

    // a silent client does not stop the others
    let _silent = TcpStream::connect(addr).expect("connect");
    let (code, body) = common::http_get(addr, "/metrics").expect("GET /metrics");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("vswitch_port_up"), "{body}");

    let resp = raw_http(addr, b"garbage\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 400 "), "{resp:?}");
    let resp = raw_http(addr, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 404 "), "{resp:?}");
    let resp = raw_http(addr, b"GET /metrics HTTP/1.0\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 200 "), "{resp:?}");
    let huge = [b"GET /metrics HTTP/1.1\r\nX: ".to_vec(), vec![b'a'; 20_000]].concat();
    let resp = raw_http(addr, &huge);
    assert!(resp.starts_with("HTTP/1.1 400 "), "{resp:?}");
    // an unfinished request is answered 408 after the deadline, not held forever
    let resp = raw_http(addr, b"GET /metrics HTTP/1.1\r\n");
    assert!(resp.starts_with("HTTP/1.1 408 "), "{resp:?}");
    lab.finish();
}

/// `check-config` (no root needed): an unknown `ctl_group` is an error naming the field;
/// a known one is shown by the explanation.
#[test]
fn check_config_validates_and_explains_ctl_group() {
    let dir = std::env::temp_dir().join(format!("vswitch-ctlgrp-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("mkdir");
    let bad = dir.join("bad.toml");
    let good = dir.join("good.toml");
    fs::write(&bad, "[switch]\nctl_group = \"vswitch-no-such-group-x9\"\n").expect("write");
    fs::write(&good, "[switch]\nctl_group = \"root\"\n").expect("write");
    let b = run_argv(
        &[VSWITCH, "check-config", &bad.to_string_lossy()],
        CMD_TIMEOUT,
    );
    let g = run_argv(
        &[VSWITCH, "check-config", &good.to_string_lossy()],
        CMD_TIMEOUT,
    );
    let _ = fs::remove_dir_all(&dir);
    assert!(!b.ok(), "{b}");
    assert!(
        b.stderr
            .contains("switch.ctl_group: no group named \"vswitch-no-such-group-x9\""),
        "{b}"
    );
    assert!(g.ok(), "{g}");
    assert!(
        g.stdout.contains("control socket group root (gid 0)"),
        "{g}"
    );
}
