//! The CLI without a running switch (no root needed): `check-config` on good and bad files,
//! `cleanup`'s socket handling, and output to a reader that went away.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vswitch"))
}

fn configs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../configs")
}

#[test]
fn check_config_explains_a_valid_file() {
    let o = bin()
        .arg("check-config")
        .arg(configs().join("vip-active-passive.toml"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("OK"), "{out}");
}

#[test]
fn check_config_names_every_bad_field_and_fails() {
    let dir = std::env::temp_dir().join(format!("vswitch-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.toml");
    std::fs::write(
        &f,
        "[[port]]\nname = \"a\"\ntap = \"tap-a\"\nmac = \"02:00:00:00:00:01\"\n\
         allowed_address_pairs = [{ ip = \"10.0.0.300/24\" }]\n\
         [[vip]]\nname = \"v\"\naddresses = [\"10.0.0.100\"]\ncandidates = [\"a\", \"nope\"]\n",
    )
    .unwrap();
    let o = bin().arg("check-config").arg(&f).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("port[0] \"a\".allowed_address_pairs[0].ip"),
        "{err}"
    );
    assert!(err.contains("vip[0] \"v\".candidates[1]"), "{err}");
}

#[test]
fn output_to_a_closed_pipe_is_not_a_panic() {
    // Regression: `vswitch ctl ... | head` panicked with "failed printing to stdout".
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = bin()
        .arg("check-config")
        .arg(configs().join("vip-active-passive.toml"))
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(o.status.success(), "{o:?}");
}

/// Logs written to a file or pipe (systemd, `2> vswitch.log`) carry no ANSI colour codes.
#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let dir = std::env::temp_dir().join(format!("vswitch-cli-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("sw.toml");
    std::fs::write(
        &cfg,
        "[[port]]\nname = \"a\"\nnetdev = \"vsw-nodev0\"\nmac = \"02:00:00:00:00:01\"\n",
    )
    .unwrap();
    let sock = dir.join("ctl.sock");
    let mut child = bin()
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .arg("--socket")
        .arg(&sock)
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while !sock.exists() && t.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child, not yet reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(err.contains("starting"), "no log lines:\n{err}");
    assert!(
        !err.contains('\u{1b}'),
        "ANSI escape codes in a piped log:\n{err:?}"
    );
}

/// `configs/vswitch.service` is a unit systemd accepts without a warning (every key known,
/// the binary it names exists), pointed at this build's binary.
#[test]
fn systemd_unit_verifies() {
    if std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("SKIPPED: no systemd-analyze");
        return;
    }
    let unit = std::fs::read_to_string(configs().join("vswitch.service")).unwrap();
    let unit = unit.replace("/usr/local/bin/vswitch", env!("CARGO_BIN_EXE_vswitch"));
    let dir = std::env::temp_dir().join(format!("vswitch-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("vswitch.service");
    std::fs::write(&f, unit).unwrap();
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&f)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&o.stderr);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "systemd-analyze verify failed:\n{out}{err}"
    );
    let complaints: Vec<&str> = err
        .lines()
        .chain(out.lines())
        .filter(|l| l.contains("vswitch.service"))
        .collect();
    assert!(
        complaints.is_empty(),
        "systemd complains:\n{}",
        complaints.join("\n")
    );
}

/// `vswitch cleanup` refuses while something answers on the control socket, removes a
/// stale one, and never touches `netdev` interfaces (so this needs no root).
#[test]
fn cleanup_refuses_a_live_socket_and_removes_a_stale_one() {
    let dir = std::env::temp_dir().join(format!("vswitch-cli-cleanup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("sw.toml");
    std::fs::write(
        &cfg,
        "[[port]]\nname = \"a\"\nnetdev = \"vsw-nodev0\"\nmac = \"02:00:00:00:00:01\"\n",
    )
    .unwrap();
    let sock = dir.join("ctl.sock");
    let cleanup = || {
        bin()
            .arg("cleanup")
            .arg("--config")
            .arg(&cfg)
            .arg("--socket")
            .arg(&sock)
            .output()
            .unwrap()
    };
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let o = cleanup();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{o:?}");
    assert!(err.contains("a switch is running on"), "{err}");
    assert!(sock.exists());
    drop(listener); // the file stays with nobody behind it: a killed switch
    let o = cleanup();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{o:?}");
    assert!(out.contains("removed stale control socket"), "{out}");
    assert!(out.contains("netdev vsw-nodev0 left alone"), "{out}");
    assert!(!sock.exists());
    std::fs::write(&cfg, "[[port]]\nname = 3\n").unwrap();
    let o = cleanup();
    assert!(!o.status.success(), "an invalid config: {o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("invalid"),
        "{o:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A switch on ports whose interfaces do not exist (they stay down, so this needs no root),
/// with one VIP group `v` owned by `a`; stopped (SIGTERM) and cleaned up on drop.
struct NoDevSwitch {
    dir: PathBuf,
    sock: PathBuf,
    child: Option<std::process::Child>,
}

impl NoDevSwitch {
    fn start(tag: &str) -> NoDevSwitch {
        let dir = std::env::temp_dir().join(format!("vswitch-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("sw.toml");
        std::fs::write(
            &cfg,
            format!(
                "[switch]\nstate_dir = {:?}\n\
                 [[port]]\nname = \"a\"\nnetdev = \"vsw-nodev-a\"\nmac = \"02:00:00:00:00:0a\"\nips = [\"10.9.0.1/24\"]\n\
                 [[port]]\nname = \"b\"\nnetdev = \"vsw-nodev-b\"\nmac = \"02:00:00:00:00:0b\"\nips = [\"10.9.0.2/24\"]\n\
                 [[vip]]\nname = \"v\"\naddresses = [\"10.9.0.100\"]\ncandidates = [\"a\", \"b\"]\nowner = \"a\"\n",
                dir.join("state").display().to_string()
            ),
        )
        .unwrap();
        let sock = dir.join("ctl.sock");
        let child = bin()
            .arg("run")
            .arg("--config")
            .arg(&cfg)
            .arg("--socket")
            .arg(&sock)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t = std::time::Instant::now();
        while !sock.exists() && t.elapsed() < std::time::Duration::from_secs(10) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(
            sock.exists(),
            "the switch did not create {}",
            sock.display()
        );
        NoDevSwitch {
            dir,
            sock,
            child: Some(child),
        }
    }

    fn ctl(&self, args: &[&str]) -> std::process::Output {
        bin().arg("ctl").args(args).output().unwrap()
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child, not yet reaped.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

impl Drop for NoDevSwitch {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `--json` and `--socket` are accepted before and after the `ctl` subcommand's words.
#[test]
fn ctl_flags_go_anywhere() {
    // without a switch: the socket given last is the one tried, never "unexpected argument"
    for args in [
        &[
            "ctl",
            "show",
            "vips",
            "--json",
            "--socket",
            "/nonexistent/vsw.sock",
        ][..],
        &[
            "ctl",
            "--json",
            "show",
            "vips",
            "--socket",
            "/nonexistent/vsw.sock",
        ],
        &[
            "ctl",
            "vip",
            "move",
            "v",
            "b",
            "--socket",
            "/nonexistent/vsw.sock",
            "--json",
        ],
        &[
            "ctl",
            "watch",
            "--json",
            "--socket",
            "/nonexistent/vsw.sock",
        ],
    ] {
        let o = bin().args(args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?}");
        assert!(
            err.contains("cannot reach the switch at /nonexistent/vsw.sock"),
            "{args:?}: {err}"
        );
    }
    let sw = NoDevSwitch::start("flags");
    let s = sw.sock.to_str().unwrap();
    let names = |o: &std::process::Output| -> Vec<String> {
        assert!(o.status.success(), "{o:?}");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap().to_string())
            .collect()
    };
    let before = sw.ctl(&["--json", "--socket", s, "show", "vips"]);
    let after = sw.ctl(&["show", "vips", "--json", "--socket", s]);
    let mixed = sw.ctl(&["--socket", s, "show", "vips", "--json"]);
    assert_eq!(names(&before), ["v"]);
    assert_eq!(names(&after), ["v"]);
    assert_eq!(names(&mixed), ["v"]);
    // without --json: the table, wherever --socket is
    let human = sw.ctl(&["show", "vips", "--socket", s]);
    assert!(human.status.success(), "{human:?}");
    assert!(String::from_utf8_lossy(&human.stdout).starts_with("vip v [active-passive]"));
    // a typed refusal keeps its message
    let o = sw.ctl(&["vip", "move", "nope", "b", "--socket", s]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no vip named `nope`"),
        "{o:?}"
    );
}

/// Lines of a child's pipe, read by a thread, with a timeout per line.
fn lines_of(r: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufRead::lines(std::io::BufReader::new(r)) {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

/// The first line that satisfies `f` within 10 s.
fn wait_line(rx: &std::sync::mpsc::Receiver<String>, f: impl Fn(&str) -> bool) -> String {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut seen = Vec::new();
    loop {
        let left = until.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if f(&l) => return l,
            Ok(l) => seen.push(l),
            Err(e) => panic!("no matching line ({e}); seen:\n{}", seen.join("\n")),
        }
    }
}

/// `vswitch ctl watch` (JSON and human) sees an operator's VIP move, and ends by itself
/// when the switch stops.
#[test]
fn ctl_watch_follows_events_until_the_switch_stops() {
    let mut sw = NoDevSwitch::start("watch");
    let s = sw.sock.to_str().unwrap().to_string();
    let watch = |json: bool| {
        let mut c = bin();
        c.args(["ctl", "watch", "--socket", &s]);
        if json {
            c.arg("--json");
        }
        let mut child = c
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = lines_of(child.stdout.take().unwrap());
        let err = lines_of(child.stderr.take().unwrap());
        wait_line(&err, |l| l.starts_with("watching the events"));
        (child, out)
    };
    let (mut jw, jout) = watch(true);
    let (mut hw, hout) = watch(false);
    let o = sw.ctl(&["vip", "move", "v", "b", "--socket", &s]);
    assert!(o.status.success(), "{o:?}");
    let line = wait_line(&jout, |l| l.contains("vip_moved"));
    let ev: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(ev["event"], "vip_moved");
    assert_eq!(ev["vip"], "v");
    assert_eq!(ev["from"], "a");
    assert_eq!(ev["to"], "b");
    assert_eq!(ev["reason"], "admin");
    let human = wait_line(&hout, |l| l.starts_with("vip v:"));
    assert!(
        human.starts_with("vip v: a -> b (mac 02:00:00:00:00:0b)"),
        "{human}"
    );
    sw.stop();
    for w in [&mut jw, &mut hw] {
        let t = std::time::Instant::now();
        let status = loop {
            if let Some(st) = w.try_wait().unwrap() {
                break st;
            }
            if t.elapsed() > std::time::Duration::from_secs(10) {
                let _ = w.kill();
                panic!("ctl watch still running after the switch stopped");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        assert!(status.success(), "{status:?}");
    }
}
