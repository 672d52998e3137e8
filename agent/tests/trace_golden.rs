//! `vswitch trace` golden tests (no root needed).
//!
//! Offline: the built binary traces frames on `golden/trace/switch.toml` (`--config`), and
//! its detailed, `--summary` and `--json` outputs are compared with
//! `golden/trace/NAME.txt`, `NAME.summary.txt` and `NAME.json`. `UPDATE_GOLDEN=1 cargo test
//! -p agent --test trace_golden` rewrites them; read the diff before committing.
//!
//! Errors: a bad input names the field and exits non-zero, without a panic.
//!
//! Live: `vswitch run` on a config whose ports have no device (they are down), then
//! `vswitch trace --socket` with a spec and with `--pcap`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vswitch"))
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/trace")
}

fn offline(args: &[&str]) -> Output {
    bin()
        .arg("trace")
        .arg("--config")
        .arg(golden_dir().join("switch.toml"))
        .args(args)
        .output()
        .unwrap()
}

/// Compare `text` with the golden file `name` (or rewrite it with `UPDATE_GOLDEN=1`).
fn golden(name: &str, text: &str) -> Option<String> {
    let path = golden_dir().join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| !v.is_empty()) {
        std::fs::write(&path, text).unwrap();
        return None;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    (want != text).then(|| {
        format!(
            "{} differs (UPDATE_GOLDEN=1 rewrites it)\n--- want\n{want}\n--- got\n{text}",
            path.display()
        )
    })
}

/// The scenarios: a name and the arguments after `vswitch trace --config switch.toml`.
const CASES: &[(&str, &[&str])] = &[
    // a non-candidate announces the VIP: a hijack, refused
    (
        "refused_hijack",
        &[
            "in_port=web3",
            "arp",
            "op=request",
            "spa=10.0.0.100",
            "tpa=10.0.0.100",
        ],
    ),
    // a candidate's GARP: the VIP would move to it
    (
        "garp_moves_vip",
        &[
            "in_port=web2",
            "arp",
            "op=request",
            "spa=10.0.0.100",
            "tpa=10.0.0.100",
        ],
    ),
    // web2 took the VIP a moment ago (damping: one move per 10 s): web1's claim back is held
    (
        "damped_claim",
        &[
            "--before",
            "in_port=web2 arp op=request spa=10.0.0.100 tpa=10.0.0.100",
            "in_port=web1",
            "arp",
            "op=request",
            "spa=10.0.0.100",
            "tpa=10.0.0.100",
        ],
    ),
    // web3 sends ARP as web1's IP
    (
        "arp_spoof_ip",
        &[
            "in_port=web3",
            "arp",
            "op=reply",
            "spa=10.0.0.11",
            "tpa=10.0.0.12",
        ],
    ),
    // web3 sends ARP with a sender MAC that is not its own
    (
        "arp_spoof_mac",
        &[
            "in_port=web3",
            "arp",
            "op=request",
            "dl_src=52:54:00:00:00:99",
            "sha=52:54:00:00:00:99",
            "tpa=10.0.0.12",
        ],
    ),
    // unicast to web1's MAC for an IP web1 may not receive
    (
        "dest_check_drop",
        &[
            "in_port=web3",
            "udp",
            "nw_dst=10.0.0.99",
            "dl_dst=52:54:00:00:00:11",
            "tp_dst=53",
        ],
    ),
    // the VIP moved to web2 (--before), the client still has web1's MAC: steered to web2
    (
        "steered_stale_cache",
        &[
            "--before",
            "in_port=web2 arp op=request spa=10.0.0.100 tpa=10.0.0.100",
            "in_port=web3",
            "udp",
            "nw_dst=10.0.0.100",
            "dl_dst=52:54:00:00:00:11",
            "tp_dst=5432",
        ],
    ),
    // broadcast
    (
        "flood_broadcast",
        &[
            "in_port=web3",
            "udp",
            "nw_dst=10.0.0.255",
            "dl_dst=ff:ff:ff:ff:ff:ff",
            "tp_dst=137",
        ],
    ),
    // a MAC no port has
    (
        "flood_unknown_unicast",
        &[
            "in_port=web3",
            "udp",
            "nw_dst=10.0.0.12",
            "dl_dst=52:54:00:00:00:77",
            "tp_dst=53",
        ],
    ),
    // a non-candidate asks for the VIP: the switch answers for the owner
    (
        "arp_responder_vip",
        &["in_port=web3", "arp", "op=request", "tpa=10.0.0.100"],
    ),
    // IPv6: a non-candidate solicits the VIP
    ("ipv6_ns_vip", &["in_port=web3", "ns", "target=fd00::100"]),
    // IPv6: a candidate's unsolicited NA for the VIP: the VIP would move
    (
        "ipv6_unsolicited_na",
        &["in_port=web2", "na", "target=fd00::100"],
    ),
    // the port's device is gone
    (
        "port_down",
        &[
            "--port-down",
            "web3",
            "in_port=web3",
            "arp",
            "tpa=10.0.0.12",
        ],
    ),
];

#[test]
fn offline_goldens() {
    let mut diffs = Vec::new();
    for (name, args) in CASES {
        for (suffix, extra) in [
            ("txt", None),
            ("summary.txt", Some("--summary")),
            ("json", Some("--json")),
        ] {
            let mut a: Vec<&str> = extra.into_iter().collect();
            a.extend_from_slice(args);
            let o = offline(&a);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success(), "{name} {a:?}: {err}");
            let out = String::from_utf8(o.stdout).unwrap();
            if suffix == "json" {
                let v: serde_json::Value = serde_json::from_str(&out).unwrap();
                assert!(v["summary"].is_string(), "{name}: {out}");
            }
            diffs.extend(golden(&format!("{name}.{suffix}"), &out));
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n\n"));
}

/// The summaries say what the goldens should say (a check independent of the files).
#[test]
fn offline_summaries_say_the_right_thing() {
    let summary = |args: &[&str]| {
        let mut a = vec!["--summary"];
        a.extend_from_slice(args);
        let o = offline(&a);
        assert!(o.status.success(), "{args:?}: {o:?}");
        String::from_utf8(o.stdout).unwrap().trim_end().to_string()
    };
    let case = |n: &str| CASES.iter().find(|c| c.0 == n).unwrap().1;
    assert_eq!(
        summary(case("refused_hijack")),
        "drop vip_hijack: port web3 is not a candidate of vip db (owner web1, epoch 1)"
    );
    assert!(summary(case("garp_moves_vip"))
        .starts_with("claim applied: moves vip db from web1 to web2 (epoch 2)"));
    assert_eq!(
        summary(case("steered_stale_cache")),
        "forward to web2, destination MAC 52:54:00:00:00:11 rewritten to 52:54:00:00:00:12 \
         (owner of vip db, epoch 2)"
    );
    let damped = summary(case("damped_claim"));
    assert!(damped.contains("pending"), "{damped}");
    assert!(summary(case("arp_spoof_ip")).starts_with("drop "));
    assert!(summary(case("arp_spoof_mac")).starts_with("drop "));
    assert!(summary(case("dest_check_drop")).starts_with("drop "));
    assert!(summary(case("flood_broadcast")).starts_with("flood"));
    assert!(summary(case("flood_unknown_unicast")).starts_with("flood"));
    assert!(summary(case("arp_responder_vip")).starts_with("answered"));
    assert!(summary(case("ipv6_ns_vip")).starts_with("answered"));
    assert!(summary(case("ipv6_unsolicited_na")).starts_with("claim applied"));
    assert!(summary(case("port_down")).starts_with("drop "));
}

#[test]
fn bad_input_names_the_field_and_fails() {
    let dir = std::env::temp_dir().join(format!("vswitch-trace-err-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("one.pcap");
    vswitch::pcap::write(
        &pcap,
        &[vswitch::pcap::Record {
            ts_ns: 0,
            data: vec![0xff; 60],
        }],
    )
    .unwrap();
    let pcap_s = pcap.to_str().unwrap();
    for (args, want) in [
        (
            &["in_port=nope", "arp", "tpa=10.0.0.1"][..],
            "in_port: unknown port \"nope\"",
        ),
        (
            &["in_port=web1", "arp", "spa=10.0.0.300", "tpa=10.0.0.1"],
            "spa: \"10.0.0.300\" is not an IP",
        ),
        (&["in_port=web1", "arp", "bogus=1"], "bogus: unknown field"),
        (&["in_port=web1", "arp"], "tpa: needed"),
        (&["arp", "tpa=10.0.0.1"], "in_port: give the ingress port"),
        (&["--port", "web1", "--hex", "52540zz"], "--hex: hex frame:"),
        (
            &["--port", "web1", "--pcap", pcap_s, "--frame", "2"],
            "--frame 2: ",
        ),
        (
            &["--port", "web1", "--pcap", pcap_s, "--frame", "0"],
            "--frame: 0",
        ),
        (&["--port", "web1"], "give the frame one way"),
        (
            &["--port-down", "nope", "in_port=web1", "arp", "tpa=10.0.0.1"],
            "--port-down: unknown port",
        ),
        (
            &[
                "--before",
                "in_port=web2 arp spa=x",
                "in_port=web1",
                "arp",
                "tpa=10.0.0.1",
            ],
            "--before 1: spa:",
        ),
    ] {
        let o = offline(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: want {want:?} in\n{err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // the pcap's frame 1 is traced (a frame from a group MAC source: malformed)
    let o = offline(&["--port", "web1", "--pcap", pcap_s, "--summary"]);
    assert!(o.status.success(), "{o:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A daemon whose ports have no device (no root needed); removed on drop.
struct NoDevSwitch {
    dir: PathBuf,
    sock: PathBuf,
    child: Option<std::process::Child>,
}

impl NoDevSwitch {
    fn start() -> NoDevSwitch {
        let dir = std::env::temp_dir().join(format!("vswitch-trace-live-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("sw.toml");
        std::fs::write(
            &cfg,
            format!(
                "[switch]\nstate_dir = {:?}\n\
                 [[port]]\nname = \"a\"\nnetdev = \"vsw-nodev-ta\"\nmac = \"02:00:00:00:00:0a\"\nips = [\"10.9.0.1/24\"]\n\
                 [[port]]\nname = \"b\"\nnetdev = \"vsw-nodev-tb\"\nmac = \"02:00:00:00:00:0b\"\nips = [\"10.9.0.2/24\"]\n\
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

    fn trace(&self, args: &[&str]) -> Output {
        bin()
            .arg("trace")
            .arg("--socket")
            .arg(&self.sock)
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for NoDevSwitch {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child, not yet reaped.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn live_trace_through_the_socket() {
    let sw = NoDevSwitch::start();
    let o = sw.trace(&[
        "--summary",
        "in_port=b",
        "arp",
        "spa=10.9.0.100",
        "tpa=10.9.0.100",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{o:?}");
    println!("live summary: {out}");
    assert!(out.contains("port_down"), "{out}");

    // the same frame from a pcap (frame 2 of 2) gives the same answer
    let sites = vec![
        vswitch::pcap::Record {
            ts_ns: 0,
            data: vec![0xff; 60],
        },
        vswitch::pcap::Record {
            ts_ns: 1_000,
            data: {
                let d = vswitch::trace::flow::PortDefaults {
                    mac: "02:00:00:00:00:0b".parse().unwrap(),
                    ipv4: Some("10.9.0.2".parse().unwrap()),
                    ipv6: None,
                };
                vswitch::trace::flow::Flow::parse("arp spa=10.9.0.100 tpa=10.9.0.100")
                    .unwrap()
                    .build(&d, &|_| None)
                    .unwrap()
            },
        },
    ];
    let pcap = sw.dir.join("in.pcap");
    vswitch::pcap::write(&pcap, &sites).unwrap();
    let p = pcap.to_str().unwrap();
    let o2 = sw.trace(&["--summary", "--port", "b", "--pcap", p, "--frame", "2"]);
    assert!(o2.status.success(), "{o2:?}");
    assert_eq!(String::from_utf8_lossy(&o2.stdout), out);

    // JSON and the detailed text come from the same view
    let o3 = sw.trace(&["--json", "--port", "b", "--pcap", p, "--frame", "2"]);
    let v: serde_json::Value = serde_json::from_slice(&o3.stdout).unwrap();
    assert_eq!(format!("{}\n", v["summary"].as_str().unwrap()), out);
    let o4 = sw.trace(&["--port", "b", "--pcap", p, "--frame", "2"]);
    let text = String::from_utf8_lossy(&o4.stdout);
    assert!(text.contains("ingress"), "{text}");

    // errors from the switch and from the input
    let o5 = sw.trace(&["in_port=zz", "arp", "tpa=10.9.0.1"]);
    assert!(!o5.status.success());
    assert!(String::from_utf8_lossy(&o5.stderr).contains("in_port: unknown port \"zz\""));
    let o6 = sw.trace(&["--port", "b", "--pcap", p, "--frame", "3"]);
    assert!(!o6.status.success());
    assert!(String::from_utf8_lossy(&o6.stderr).contains("--frame 3: "));
    let o7 = sw.trace(&["--port", "zz", "--hex", "ffffffffffff020000000000080600"]);
    assert!(!o7.status.success());
    let e7 = String::from_utf8_lossy(&o7.stderr);
    assert!(e7.contains("zz"), "{e7}");
}
