//! Port captures on the threaded daemon with in-memory ports ([`MemoryPorts`]), without
//! root: the records carry the switch's decisions (an ARP spoof dropped as `arp_spoof`, a
//! good frame forwarded, what the port sent), a capture that runs changes no counter and
//! no frame of the datapath, one that ended leaves the snapshot without taps, and a capture
//! whose queue is full loses (and counts) capture frames but never a datapath frame. Each
//! test runs on both worker engines and with one and two workers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use vip_table::MacAddr;
use vswitch::capture::QUEUE;
use vswitch::config::Config;
use vswitch::datapath::{CaptureNext, CaptureStream, Command, Daemon, DaemonOptions};
use vswitch::pipeline::DropReason;
use vswitch::port::{MemoryPortHandle, MemoryPorts, VnetHdr};
use vswitch::testutil::frames::{arp_raw, padded, udp4_payload, ETH_MIN_LEN};
use vswitch::view::capture::{CaptureDir, CaptureEndReason, CaptureRecord, Decision, Direction};
use vswitch::view::{PortStatsView, View};

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 0x0b];

const SETUPS: [(&str, usize); 4] = [("epoll", 1), ("auto", 1), ("epoll", 2), ("auto", 2)];

fn config(dir: &std::path::Path, io: &str, workers: usize) -> String {
    let mut s = format!(
        "[switch]\nstate_dir = {:?}\nio = {io:?}\nworkers = {workers}\n",
        dir.display().to_string()
    );
    for (name, mac, ip) in [("a", MAC_A, 1), ("b", MAC_B, 2)] {
        s.push_str(&format!(
            "[[port]]\nname = \"{name}\"\ntap = \"mem-{name}\"\nmac = \"{}\"\nips = [\"10.9.0.{ip}/24\"]\n",
            MacAddr(mac)
        ));
    }
    s
}

struct Lab {
    daemon: Option<Daemon>,
    ports: Arc<MemoryPorts>,
    dir: PathBuf,
}

impl Lab {
    fn start(tag: &str, (io, workers): (&'static str, usize)) -> Lab {
        let dir = std::env::temp_dir().join(format!(
            "vswitch-capd-{tag}-{io}-{workers}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("vswitch.toml");
        std::fs::write(&file, config(&dir, io, workers)).unwrap();
        let ports = Arc::new(MemoryPorts::new());
        let daemon = Daemon::start(
            Config::load(&file).unwrap(),
            DaemonOptions {
                config_path: Some(file),
                ports: Some(ports.clone()),
                ..DaemonOptions::default()
            },
        )
        .unwrap();
        Lab {
            daemon: Some(daemon),
            ports,
            dir,
        }
    }

    fn q(&self, port: &str, k: usize) -> MemoryPortHandle {
        self.ports.queue(&format!("mem-{port}"), k).unwrap()
    }

    fn call(&self, cmd: Command) -> View {
        self.daemon.as_ref().unwrap().control().call(cmd).unwrap()
    }

    fn capture(&self, port: &str, dir: CaptureDir, count: Option<u64>) -> CaptureStream {
        self.daemon
            .as_ref()
            .unwrap()
            .control()
            .capture(port, dir, count, None)
            .unwrap()
    }

    fn stats(&self) -> Vec<PortStatsView> {
        match self.call(Command::ShowStats) {
            View::Stats(s) => s,
            v => panic!("{v:?}"),
        }
    }

    fn metric(&self, name: &str) -> u64 {
        let View::Metrics(m) = self.call(Command::Metrics) else {
            panic!("no metrics")
        };
        m.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{m}"))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(d) = self.daemon.take() {
            d.shutdown();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A UDP/IPv4 frame from `src` (10.9.0.`sip`) to `dst` (10.9.0.`dip`) carrying `seq`
/// (UDP 12345 → 12345), padded to the Ethernet minimum.
fn udp(src: [u8; 6], sip: u8, dst: [u8; 6], dip: u8, seq: u32) -> Vec<u8> {
    let f = udp4_payload(
        MacAddr(src),
        MacAddr(dst),
        [10, 9, 0, sip],
        [10, 9, 0, dip],
        12345,
        12345,
        &seq.to_be_bytes(),
    );
    padded(&f, ETH_MIN_LEN)
}

fn seq_of(frame: &[u8]) -> Option<u32> {
    if frame.len() < 46 || frame[12..14] != [0x08, 0x00] || frame[23] != 17 {
        return None;
    }
    Some(u32::from_be_bytes(frame[42..46].try_into().ok()?))
}

/// An ARP request from a whose sender MAC is not its Ethernet source.
fn spoofed_arp() -> Vec<u8> {
    arp_raw(
        MacAddr(MAC_A),
        MacAddr::BROADCAST,
        1,
        MacAddr([2, 0, 0, 0, 0, 0xee]),
        [10, 9, 0, 1],
        MacAddr::ZERO,
        [10, 9, 0, 2],
    )
}

/// Data frames (by sequence number) that the queues sent within `timeout`, until `n`.
fn data_frames(hs: &[MemoryPortHandle], n: usize, timeout: Duration) -> Vec<u32> {
    let until = Instant::now() + timeout;
    let mut got = Vec::new();
    loop {
        for h in hs {
            got.extend(h.take_tx().into_iter().filter_map(|(f, _)| seq_of(&f)));
        }
        if got.len() >= n || Instant::now() > until {
            got.sort_unstable();
            return got;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Records from `s` until it is idle for `quiet` (or ends).
fn drain(s: &mut CaptureStream, quiet: Duration) -> Vec<CaptureRecord> {
    let mut out = Vec::new();
    while let CaptureNext::Frame(r) = s.next(quiet) {
        out.push(r);
    }
    out
}

/// b sends one frame to a (a learns nothing, b is learned), then a sends the ARP spoof
/// and a frame to b; returns what a and b's queues sent of the data frames.
fn traffic(lab: &Lab, workers: usize) -> (Vec<u32>, Vec<u32>) {
    lab.q("b", 0)
        .push_rx(&udp(MAC_B, 2, MAC_A, 1, 1), VnetHdr::default());
    let hs_a: Vec<_> = (0..workers).map(|k| lab.q("a", k)).collect();
    let hs_b: Vec<_> = (0..workers).map(|k| lab.q("b", k)).collect();
    let to_a = data_frames(&hs_a, 1, Duration::from_secs(5));
    lab.q("a", 0).push_rx(&spoofed_arp(), VnetHdr::default());
    lab.q("a", 0)
        .push_rx(&udp(MAC_A, 1, MAC_B, 2, 2), VnetHdr::default());
    let to_b = data_frames(&hs_b, 1, Duration::from_secs(5));
    (to_a, to_b)
}

#[test]
fn a_capture_records_the_switchs_decisions() {
    for setup in SETUPS {
        let lab = Lab::start("rec", setup);
        let mut cap = lab.capture("a", CaptureDir::Both, None);
        assert_eq!(cap.started().port, "a");
        let t0 = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let (to_a, to_b) = traffic(&lab, setup.1);
        assert_eq!((to_a, to_b), (vec![1], vec![2]), "{setup:?}");
        let recs = drain(&mut cap, Duration::from_millis(300));
        let find = |d: &Decision, frame: &[u8]| {
            recs.iter()
                .find(|r| &r.decision == d && r.frame == frame)
                .unwrap_or_else(|| panic!("{setup:?}: no {d} record of {frame:02x?} in {recs:#?}"))
        };
        let spoof = find(
            &Decision::Drop {
                reason: DropReason::ArpSpoof,
            },
            &spoofed_arp(),
        );
        assert_eq!((spoof.dir, spoof.port.as_str()), (Direction::Rx, "a"));
        assert_eq!(spoof.decision.to_string(), "drop: arp_spoof");
        let good = find(
            &Decision::Forward {
                port: "b".into(),
                rewrite_dst: None,
            },
            &udp(MAC_A, 1, MAC_B, 2, 2),
        );
        assert_eq!(good.decision.to_string(), "forward: b");
        assert_eq!(good.orig_len, 60);
        let sent = find(&Decision::Tx, &udp(MAC_B, 2, MAC_A, 1, 1));
        assert_eq!(sent.dir, Direction::Tx);
        // wall-clock timestamps, in order of the step on one queue
        for r in [spoof, good, sent] {
            assert!(
                r.at_unix_ns + 1_000_000_000 > t0 && r.at_unix_ns < t0 + 60_000_000_000,
                "{setup:?}: {} vs {t0}",
                r.at_unix_ns
            );
        }
        assert!(spoof.at_unix_ns <= good.at_unix_ns, "{setup:?}");
        // nothing of b's own traffic, nothing lost
        assert!(recs.iter().all(|r| r.port == "a"), "{setup:?}");
        assert_eq!(cap.lost(), 0);
        assert_eq!(lab.metric("vswitch_captures_running"), 1, "{setup:?}");
        drop(cap);
        // the capture is off: the next snapshot has no taps
        let until = Instant::now() + Duration::from_secs(5);
        while lab.metric("vswitch_captures_running") != 0 {
            assert!(Instant::now() < until, "{setup:?}: capture still running");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn a_drops_capture_with_a_count_ends_after_count_frames() {
    let lab = Lab::start("count", ("epoll", 1));
    let mut cap = lab.capture("a", CaptureDir::Drops, Some(2));
    for _ in 0..3 {
        lab.q("a", 0).push_rx(&spoofed_arp(), VnetHdr::default());
        lab.q("a", 0)
            .push_rx(&udp(MAC_A, 1, MAC_B, 2, 9), VnetHdr::default());
    }
    let mut got = Vec::new();
    let end = loop {
        match cap.next(Duration::from_secs(5)) {
            CaptureNext::Frame(r) => got.push(r.decision.to_string()),
            CaptureNext::End(e) => break e,
            CaptureNext::Idle => panic!("idle after {got:?}"),
        }
    };
    assert_eq!(got, vec!["drop: arp_spoof", "drop: arp_spoof"]);
    assert_eq!((end.captured, end.reason), (2, CaptureEndReason::Count));
    // an unknown port is refused by name
    let e = lab
        .daemon
        .as_ref()
        .unwrap()
        .control()
        .capture("nope", CaptureDir::Rx, None, None)
        .err()
        .unwrap();
    assert_eq!(e.to_string(), "no port named `nope`");
}

#[test]
fn capture_costs_nothing_observable() {
    for setup in SETUPS {
        let without = Lab::start("off", setup);
        let (a0, b0) = traffic(&without, setup.1);
        let with = Lab::start("on", setup);
        let mut cap = with.capture("a", CaptureDir::Both, None);
        let (a1, b1) = traffic(&with, setup.1);
        assert_eq!(
            (&a0, &b0),
            (&a1, &b1),
            "{setup:?}: the same frames delivered"
        );
        assert!(!drain(&mut cap, Duration::from_millis(200)).is_empty());
        // the same counters, port by port (what the control plane sends aside)
        let key = |s: Vec<PortStatsView>| -> Vec<_> {
            s.into_iter()
                .map(|p| (p.port, p.rx_frames, p.rx_bytes, p.drops, p.answered))
                .collect()
        };
        assert_eq!(key(without.stats()), key(with.stats()), "{setup:?}");
        let arp_spoof =
            |l: &Lab| l.stats().into_iter().find(|p| p.port == "a").unwrap().drops["arp_spoof"];
        assert_eq!(arp_spoof(&with), 1);
        assert_eq!(without.metric("vswitch_captures_running"), 0);
    }
}

#[test]
fn a_full_capture_queue_loses_capture_frames_not_datapath_frames() {
    for setup in SETUPS {
        let lab = Lab::start("full", setup);
        // learn b, so a's frames are forwarded to it
        lab.q("b", 0)
            .push_rx(&udp(MAC_B, 2, MAC_A, 1, 0), VnetHdr::default());
        let hs_a: Vec<_> = (0..setup.1).map(|k| lab.q("a", k)).collect();
        assert_eq!(data_frames(&hs_a, 1, Duration::from_secs(5)), vec![0]);
        // a capture nobody reads: QUEUE frames fit, the rest are lost
        let mut cap = lab.capture("a", CaptureDir::Rx, None);
        let extra = 500;
        let n = QUEUE + extra;
        for seq in 1..=n as u32 {
            let k = seq as usize % setup.1;
            lab.q("a", k)
                .push_rx(&udp(MAC_A, 1, MAC_B, 2, seq), VnetHdr::default());
        }
        let hs_b: Vec<_> = (0..setup.1).map(|k| lab.q("b", k)).collect();
        let got = data_frames(&hs_b, n, Duration::from_secs(20));
        assert_eq!(
            got,
            (1..=n as u32).collect::<Vec<_>>(),
            "{setup:?}: every datapath frame forwarded"
        );
        let a = lab.stats().into_iter().find(|p| p.port == "a").unwrap();
        assert_eq!(a.rx_frames, n as u64, "{setup:?}");
        assert!(a.drops.values().all(|d| *d == 0), "{setup:?}: {a:?}");
        let recs = drain(&mut cap, Duration::from_millis(300));
        assert_eq!(recs.len(), QUEUE, "{setup:?}");
        assert!(recs.iter().all(|r| matches!(
            &r.decision,
            Decision::Forward { port, .. } if port == "b"
        )));
        assert_eq!(cap.lost(), extra as u64, "{setup:?}");
        assert_eq!(
            lab.metric("vswitch_capture_lost_total"),
            extra as u64,
            "{setup:?}"
        );
        // once read, the buffers are free again: nothing more is lost
        lab.q("a", 0)
            .push_rx(&udp(MAC_A, 1, MAC_B, 2, 7), VnetHdr::default());
        let more = drain(&mut cap, Duration::from_millis(300));
        assert_eq!(more.len(), 1, "{setup:?}");
        assert_eq!(cap.lost(), extra as u64);
    }
}
