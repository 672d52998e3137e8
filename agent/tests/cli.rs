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
