//! Live tests of `vswitch ctl capture` (as root, with `tshark`; otherwise SKIPPED): the real
//! switch between network namespaces, captures of a VM's port written as pcapng and read
//! back with tshark:
//! - a `--drops -c 2` capture holds the VM's spoofed ARPs with the packet comment
//!   `drop: arp_spoof` (not its normal traffic) and ends by itself after 2 frames;
//! - a capture of both directions (`--duration`) holds the pings with `forward: vm2`
//!   (inbound) and `tx` (outbound), as many frames as the CLI says it captured, while an
//!   `--rx -c 3` capture of the same port ends after the 3 echo requests;
//! - Ctrl-C (SIGINT) ends a capture cleanly, with a complete file and the summary line;
//! - a client killed outright releases its capture;
//! - once the captures are over `vswitch_captures_running` is 0 again; a capture running
//!   when the switch stops ends;
//! - a user neither root nor in the control group is refused, even where the socket lets
//!   it connect and read; a member of the control group may capture.
//!
//! Run serially: `cargo test -p agent --test live_capture -- --test-threads=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vip_table::MacAddr;
use vswitch::testutil::frames::{arp_raw, padded, ETH_MIN_LEN};

use common::{
    require_root, run_argv, wait_until, Backend, Lab, Out, Proc, VmSpec, CMD_TIMEOUT, VSWITCH,
};

/// nobody / nogroup.
const NOBODY: u32 = 65534;

/// True if tshark is there; otherwise prints the skip notice.
fn require_tshark() -> bool {
    if run_argv(&["tshark", "--version"], CMD_TIMEOUT).ok() {
        return true;
    }
    println!("SKIPPED: needs tshark (scripts/deps.sh installs it)");
    false
}

/// `tshark -r FILE -T fields -e F…`: one row of fields per frame (hex numbers, as tshark
/// prints `frame.packet_flags_direction`, in decimal: `1` inbound, `2` outbound).
#[track_caller]
fn tshark(file: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    let f = file.to_string_lossy().into_owned();
    let mut a = vec!["tshark", "-n", "-r", f.as_str(), "-T", "fields"];
    for x in fields {
        a.extend_from_slice(&["-e", x]);
    }
    let o = run_argv(&a, CMD_TIMEOUT);
    assert!(o.ok(), "tshark cannot read {f}:\n{o}");
    o.stdout
        .lines()
        .map(|l| {
            l.split('\t')
                .map(
                    |v| match v.strip_prefix("0x").map(|h| u64::from_str_radix(h, 16)) {
                        Some(Ok(n)) => n.to_string(),
                        _ => v.to_string(),
                    },
                )
                .collect()
        })
        .collect()
}

/// Starts `vswitch ctl capture PORT ARGS… -w FILE` in the background; returns once the
/// capture runs (the CLI says so on stderr after the switch's answer).
#[track_caller]
fn start_capture<'a>(lab: &'a Lab, port: &str, args: &[&str], file: &Path) -> Proc<'a> {
    let sock = lab.socket.to_string_lossy().into_owned();
    let f = file.to_string_lossy().into_owned();
    let mut a = vec![VSWITCH, "ctl", "--socket", sock.as_str(), "capture", port];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-w", f.as_str()]);
    let p = lab.spawn_host("cap", &a);
    assert!(
        p.wait_for_output("capturing port", Duration::from_secs(10)),
        "capture {args:?} did not start: {}\n{}",
        p.output(),
        lab.log_tail(20)
    );
    p
}

/// The CLI's summary: (frames captured, frames lost).
#[track_caller]
fn summary(o: &Out) -> (u64, u64) {
    let line = o
        .stderr
        .lines()
        .find(|l| l.starts_with("captured "))
        .unwrap_or_else(|| panic!("no summary line:\n{o}"));
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(nums.len() >= 2, "summary line {line:?}");
    (nums[0], nums[1])
}

/// `vswitch_captures_running` from `vswitch ctl metrics`.
#[track_caller]
fn captures_running(lab: &Lab) -> u64 {
    let o = lab.ctl_out(&["metrics"]);
    assert!(o.ok(), "{o}");
    o.stdout
        .lines()
        .find_map(|l| l.strip_prefix("vswitch_captures_running "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no vswitch_captures_running in\n{}", o.stdout))
}

#[track_caller]
fn wait_captures_running(lab: &Lab, n: u64) {
    let ok = wait_until(Duration::from_secs(5), || captures_running(lab) == n);
    assert!(
        ok.is_some(),
        "vswitch_captures_running is {}, expected {n}",
        captures_running(lab)
    );
}

#[test]
fn capture_writes_the_switchs_decisions_as_pcapng() {
    if !require_root() || !require_tshark() {
        return;
    }
    let lab = Lab::new("capt", 218);
    lab.add_vm(VmSpec::new("vm1", Backend::Tap).no_ipv6());
    lab.add_vm(VmSpec::new("vm2", Backend::Tap).no_ipv6());
    lab.start();
    let (vm1, vm2) = (lab.vm("vm1"), lab.vm("vm2"));
    // both learned; pinned neighbours, so the captures below hold no ARP of their own
    vm1.ping_ok(vm2.ip4, 1);
    vm1.pin_neigh(vm2.ip4, vm2.mac);
    vm2.pin_neigh(vm1.ip4, vm1.mac);
    assert_eq!(captures_running(&lab), 0);

    // 1. the drops: two ARPs whose sender IP is not vm1's, amid normal traffic
    let drops = lab.dir.join("drops.pcapng");
    let cap = start_capture(&lab, "vm1", &["--drops", "-c", "2"], &drops);
    assert_eq!(captures_running(&lab), 1);
    let arp_before = lab.drops("vm1", "arp_spoof");
    vm1.ping_ok(vm2.ip4, 2);
    let forged = lab.ip4(77);
    let spoof = padded(
        &arp_raw(
            vm1.mac.into(),
            MacAddr::BROADCAST,
            1,
            vm1.mac.into(),
            forged,
            MacAddr::ZERO,
            vm2.ip4,
        ),
        ETH_MIN_LEN,
    );
    vm1.send_frames(&[spoof.clone(), spoof]);
    // -c 2: the capture ends by itself
    let o = cap.wait(Duration::from_secs(10));
    assert!(o.ok() && !o.timed_out, "the -c 2 capture did not end:\n{o}");
    assert_eq!(summary(&o), (2, 0), "{o}");
    assert!(o.stderr.contains("count reached"), "{o}");
    assert_eq!(lab.drops("vm1", "arp_spoof"), arp_before + 2);
    let rows = tshark(
        &drops,
        &[
            "frame.comment",
            "arp.src.proto_ipv4",
            "frame.packet_flags_direction",
        ],
    );
    println!("tshark -e frame.comment of {}:", drops.display());
    for r in &rows {
        println!("  {}", r.join("\t"));
    }
    let forged_s = forged.to_string();
    assert_eq!(
        rows,
        vec![vec!["drop: arp_spoof".to_string(), forged_s.clone(), "1".into()]; 2],
        "the drops capture"
    );

    // 2. both directions for 3 s, and at the same time an rx capture of 3 frames
    let both = lab.dir.join("both.pcapng");
    let rx = lab.dir.join("rx.pcapng");
    let cap_both = start_capture(&lab, "vm1", &["--duration", "3"], &both);
    let cap_rx = start_capture(&lab, "vm1", &["--rx", "-c", "3"], &rx);
    assert_eq!(captures_running(&lab), 2);
    vm1.ping_ok(vm2.ip4, 3);
    let o_rx = cap_rx.wait(Duration::from_secs(10));
    assert!(o_rx.ok() && !o_rx.timed_out, "{o_rx}");
    assert_eq!(summary(&o_rx), (3, 0), "{o_rx}");
    let o_both = cap_both.wait(Duration::from_secs(10));
    assert!(o_both.ok() && !o_both.timed_out, "{o_both}");
    assert!(o_both.stderr.contains("duration over"), "{o_both}");
    let (n_both, lost) = summary(&o_both);
    assert_eq!(lost, 0);
    let fields = [
        "frame.comment",
        "icmp.type",
        "frame.packet_flags_direction",
        "ip.src",
    ];
    let rows = tshark(&both, &fields);
    assert_eq!(rows.len() as u64, n_both, "frames in {}", both.display());
    let (ip1, ip2) = (vm1.ip4.to_string(), vm2.ip4.to_string());
    let pings = |rows: &[Vec<String>], comment: &str, typ: &str, dir: &str, src: &str| {
        rows.iter()
            .filter(|r| r == &&vec![comment.to_string(), typ.into(), dir.into(), src.into()])
            .count()
    };
    assert_eq!(pings(&rows, "forward: vm2", "8", "1", &ip1), 3, "{rows:?}");
    assert_eq!(pings(&rows, "tx", "0", "2", &ip2), 3, "{rows:?}");
    assert!(
        rows.iter().all(|r| r[0] != "drop: arp_spoof"),
        "the earlier drops are not in a later capture: {rows:?}"
    );
    let rows = tshark(&rx, &fields);
    assert_eq!(
        rows,
        vec![
            vec![
                "forward: vm2".to_string(),
                "8".into(),
                "1".into(),
                ip1.clone()
            ];
            3
        ],
        "the rx capture"
    );

    // 3. Ctrl-C: a clean end with the output complete (here `-w -`, stdout to a file:
    // `sh -c 'exec … > FILE'` keeps the CLI's PID, so the SIGINT goes to it)
    let sigint = lab.dir.join("sigint.pcapng");
    let sock = lab.socket.to_string_lossy().into_owned();
    let redirect = format!("exec \"$0\" \"$@\" > '{}'", sigint.display());
    let cap = lab.spawn_host(
        "cap",
        &[
            "sh", "-c", &redirect, VSWITCH, "ctl", "--socket", &sock, "capture", "vm1", "-w", "-",
        ],
    );
    assert!(
        cap.wait_for_output("to stdout (Ctrl-C to stop)", Duration::from_secs(10)),
        "{}",
        cap.output()
    );
    vm1.ping_ok(vm2.ip4, 2);
    std::thread::sleep(Duration::from_millis(300));
    let o = cap.interrupt();
    assert!(o.ok() && !o.timed_out, "Ctrl-C:\n{o}");
    assert!(o.stderr.contains("(stopped)"), "{o}");
    let (n, lost) = summary(&o);
    assert_eq!((n, lost), (4, 0), "{o}");
    assert_eq!(tshark(&sigint, &["frame.comment"]).len(), 4);
    wait_captures_running(&lab, 0);

    // a client that dies (SIGKILL: no goodbye) releases its capture too
    let gone = lab.dir.join("gone.pcapng");
    let cap = start_capture(&lab, "vm1", &[], &gone);
    assert_eq!(captures_running(&lab), 1);
    cap.signal(libc::SIGKILL);
    let _ = cap.wait(Duration::from_secs(5));
    wait_captures_running(&lab, 0);

    // 4. a capture running when the switch stops ends too
    let last = lab.dir.join("last.pcapng");
    let cap = start_capture(&lab, "vm2", &[], &last);
    assert_eq!(captures_running(&lab), 1);
    lab.stop_switch();
    let o = cap.wait(Duration::from_secs(10));
    assert!(o.ok() && !o.timed_out, "switch stopped:\n{o}");
    assert!(o.stderr.contains("captured 0 frames"), "{o}");
    assert!(tshark(&last, &["frame.comment"]).is_empty());
    lab.finish();
}

/// A copy of the switch binary that nobody can execute (the build tree may be private);
/// removed on drop, also when the test fails.
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

/// `vswitch ctl ARGS` as uid nobody, with `ids` the setpriv group options.
fn ctl_as(bin: &Path, lab: &Lab, ids: &[&str], args: &[&str]) -> Out {
    let uid = format!("--reuid={NOBODY}");
    let bin = bin.to_string_lossy().into_owned();
    let sock = lab.socket.to_string_lossy().into_owned();
    let mut a = vec!["setpriv", uid.as_str()];
    a.extend_from_slice(ids);
    a.extend_from_slice(&[bin.as_str(), "ctl", "--socket", sock.as_str()]);
    a.extend_from_slice(args);
    run_argv(&a, CMD_TIMEOUT)
}

#[test]
fn capture_needs_root_or_the_control_group() {
    if !require_root() {
        return;
    }
    // one port on an interface that does not exist (it stays down): no namespace, no link
    let lab = Lab::new("capn", 219);
    fs::set_permissions(&lab.dir, fs::Permissions::from_mode(0o755)).expect("chmod lab dir");
    lab.write_config_text(&format!(
        "[switch]\nctl_group = \"root\"\nstate_dir = \"{}\"\n\n\
         [[port]]\nname = \"p1\"\nnetdev = \"{}a\"\nmac = \"02:00:00:00:00:01\"\n",
        lab.state_dir().display(),
        lab.tag
    ));
    lab.start_switch();
    let bin_copy = NobodyBinary::new(&lab);
    let bin = bin_copy.0.as_path();
    // everyone may connect (and read); the capture is still refused by the peer check
    fs::set_permissions(&lab.socket, fs::Permissions::from_mode(0o666)).expect("chmod sock");
    let nogroups = [format!("--regid={NOBODY}"), "--clear-groups".to_string()];
    let nogroups: Vec<&str> = nogroups.iter().map(String::as_str).collect();
    let o = ctl_as(bin, &lab, &nogroups, &["show", "ports"]);
    assert!(o.ok(), "nobody may read:\n{o}");
    let file = lab.dir.join("nobody.pcapng");
    let f = file.to_string_lossy().into_owned();
    for w in ["-", f.as_str()] {
        let o = ctl_as(bin, &lab, &nogroups, &["capture", "p1", "-w", w]);
        assert!(!o.ok(), "a capture by nobody started:\n{o}");
        assert!(
            o.stderr.contains(
                "permission denied: capture shows the switch's traffic and needs root or \
                 membership of the control group root"
            ) && o.stderr.contains("uid 65534"),
            "{o}"
        );
        assert!(o.stdout.is_empty(), "{o}");
    }
    assert!(!file.exists(), "a refused capture wrote {f}");
    assert!(
        lab.wait_log("cmd=capture", Duration::from_secs(5)),
        "{}",
        lab.log_tail(20)
    );
    let denied = lab
        .log()
        .lines()
        .filter(|l| l.contains("ctl_denied") && l.contains("cmd=capture"))
        .count();
    assert_eq!(denied, 2, "{}", lab.log_tail(20));
    assert_eq!(captures_running(&lab), 0);

    // a member of the control group (here root's group, supplementary) may
    let member = [format!("--regid={NOBODY}"), "--groups=0".to_string()];
    let member: Vec<&str> = member.iter().map(String::as_str).collect();
    let o = ctl_as(
        bin,
        &lab,
        &member,
        &["capture", "p1", "--duration", "1", "-w", "-"],
    );
    assert!(o.ok(), "a member's capture:\n{o}");
    assert_eq!(summary(&o), (0, 0), "{o}");
    // and root may, to a file
    let root_file = lab.dir.join("root.pcapng");
    let sock = lab.socket.to_string_lossy().into_owned();
    let rf = root_file.to_string_lossy().into_owned();
    let o = run_argv(
        &[
            VSWITCH,
            "ctl",
            "--socket",
            &sock,
            "capture",
            "p1",
            "--tx",
            "--duration",
            "1",
            "-w",
            &rf,
        ],
        CMD_TIMEOUT,
    );
    assert!(o.ok(), "{o}");
    if require_tshark() {
        assert!(tshark(&root_file, &["frame.comment"]).is_empty());
    }
    wait_captures_running(&lab, 0);
    lab.finish();
}
