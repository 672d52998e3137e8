//! The threaded daemon (control thread, worker, channels, snapshots) on in-memory ports
//! ([`MemoryPorts`]), without root: forwarding through the real worker, a claim reaching
//! the control thread through the worker's channel, a port whose device vanishes and comes
//! back (re-attachment), and a reload under traffic that adds a port (a relayout) and loses
//! no frame of the ports it keeps. Each test runs on both worker engines (`switch.io`
//! `"epoll"` and `"auto"`, which is io_uring where the kernel and `RLIMIT_MEMLOCK` allow),
//! with one worker and with two (`switch.workers = 2`: every port has two queues, and a
//! frame pushed into queue k is read and forwarded by worker k).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vip_table::MacAddr;
use vswitch::config::Config;
use vswitch::datapath::{Command, Daemon, DaemonOptions};
use vswitch::port::{MemoryPortHandle, MemoryPorts, VnetHdr};
use vswitch::testutil::frames::{garp, padded, udp4_payload, ETH_MIN_LEN};
use vswitch::view::{Event, View};

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 0x0b];
const MAC_C: [u8; 6] = [2, 0, 0, 0, 0, 0x0c];

fn port(name: &str, mac: [u8; 6], ip: u8) -> String {
    format!(
        "[[port]]\nname = \"{name}\"\ntap = \"mem-{name}\"\nmac = \"{}\"\nips = [\"10.9.0.{ip}/24\"]\n",
        MacAddr(mac)
    )
}

const SETUPS: [(&str, usize); 4] = [("epoll", 1), ("auto", 1), ("epoll", 2), ("auto", 2)];

fn config(dir: &std::path::Path, io: &str, workers: usize, with_c: bool) -> String {
    let mut s = format!(
        "[switch]\nstate_dir = {:?}\nio = {io:?}\nworkers = {workers}\n",
        dir.display().to_string()
    );
    s.push_str(&port("a", MAC_A, 1));
    s.push_str(&port("b", MAC_B, 2));
    if with_c {
        s.push_str(&port("c", MAC_C, 3));
    }
    s.push_str(
        "[[vip]]\nname = \"v\"\naddresses = [\"10.9.0.100\"]\ncandidates = [\"a\", \"b\"]\nowner = \"a\"\n",
    );
    s
}

struct Lab {
    daemon: Option<Daemon>,
    ports: Arc<MemoryPorts>,
    dir: PathBuf,
    file: PathBuf,
    io: &'static str,
    workers: usize,
}

impl Lab {
    fn start(tag: &str, (io, workers): (&'static str, usize)) -> Lab {
        let dir = std::env::temp_dir().join(format!(
            "vswitch-memd-{tag}-{io}-{workers}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("vswitch.toml");
        std::fs::write(&file, config(&dir, io, workers, false)).unwrap();
        let ports = Arc::new(MemoryPorts::new());
        let cfg = Config::load(&file).unwrap();
        let daemon = Daemon::start(
            cfg,
            DaemonOptions {
                config_path: Some(file.clone()),
                ports: Some(ports.clone()),
                ..DaemonOptions::default()
            },
        )
        .unwrap();
        Lab {
            daemon: Some(daemon),
            ports,
            dir,
            file,
            io,
            workers,
        }
    }

    /// Queue `k` of the port's device (the one worker `k` reads and sends through).
    fn q(&self, port: &str, k: usize) -> MemoryPortHandle {
        self.ports.queue(&format!("mem-{port}"), k).unwrap()
    }

    /// Every queue of the port's device.
    fn all(&self, port: &str) -> Vec<MemoryPortHandle> {
        (0..self.workers).map(|k| self.q(port, k)).collect()
    }

    fn call(&self, cmd: Command) -> View {
        self.daemon.as_ref().unwrap().control().call(cmd).unwrap()
    }

    fn port_up(&self, name: &str) -> bool {
        match self.call(Command::ShowPorts) {
            View::Ports(p) => p.iter().any(|p| p.name == name && p.oper_up),
            v => panic!("{v:?}"),
        }
    }

    fn owners(&self) -> Vec<String> {
        match self.call(Command::ShowVips) {
            View::Vips(v) => v[0].owners.iter().map(|o| o.port.clone()).collect(),
            v => panic!("{v:?}"),
        }
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

/// A UDP/IPv4 frame from port `src` (MAC, 10.9.0.`sip`) to `dst`, carrying `seq`
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

/// Frames the queues `hs` sent within `timeout` until `enough` holds for them (each
/// queue's in its order, queue after queue per poll).
fn collect(
    hs: &[MemoryPortHandle],
    timeout: Duration,
    enough: impl Fn(&[Vec<u8>]) -> bool,
) -> Vec<Vec<u8>> {
    let until = Instant::now() + timeout;
    let mut got = Vec::new();
    loop {
        for h in hs {
            got.extend(h.take_tx().into_iter().map(|(f, _)| f));
        }
        if enough(&got) || Instant::now() > until {
            return got;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn wait(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

#[test]
fn the_worker_forwards_between_memory_ports_and_counts() {
    for setup in SETUPS {
        the_worker_forwards_between_memory_ports_and_counts_on(setup);
    }
}

fn the_worker_forwards_between_memory_ports_and_counts_on(setup: (&'static str, usize)) {
    let lab = Lab::start("fwd", setup);
    // one flow per queue of a (flow k: sequence numbers k << 24 ..)
    for n in 0..100 {
        for k in 0..lab.workers {
            let seq = ((k as u32) << 24) | n;
            lab.q("a", k)
                .push_rx(&udp(MAC_A, 1, MAC_B, 2, seq), VnetHdr::default());
        }
    }
    let total = 100 * lab.workers;
    let per_queue: Vec<Vec<u32>> = lab
        .all("b")
        .iter()
        .map(|h| {
            collect(std::slice::from_ref(h), Duration::from_secs(5), |g| {
                g.iter().filter(|f| seq_of(f).is_some()).count() >= 100
            })
            .iter()
            .filter_map(|f| seq_of(f))
            .collect()
        })
        .collect();
    for (k, seqs) in per_queue.iter().enumerate() {
        // worker k read a's queue k and sent through its own queue of b: in order, all
        let want: Vec<u32> = (0..100).map(|n| ((k as u32) << 24) | n).collect();
        assert_eq!(seqs, &want, "{setup:?}: queue {k} of b");
    }
    match lab.call(Command::ShowStats) {
        View::Stats(s) => {
            let b = s.iter().find(|p| p.port == "b").unwrap();
            let a = s.iter().find(|p| p.port == "a").unwrap();
            // (plus what the control plane sent: the owner discovery probe at start)
            assert!(b.tx_frames >= total as u64, "{setup:?}: {b:?}");
            assert_eq!(a.rx_frames, total as u64, "{setup:?}: {a:?}");
        }
        v => panic!("{v:?}"),
    }
    // learning from any worker lands in the one FDB
    match lab.call(Command::ShowFdb) {
        View::Fdb(f) => assert!(
            f.iter()
                .any(|e| e.mac == MacAddr(MAC_A).to_string() && e.port == "a"),
            "{setup:?}: {f:?}"
        ),
        v => panic!("{v:?}"),
    }
}

#[test]
fn a_garp_from_a_standby_moves_the_vip_through_the_workers_channel() {
    for setup in SETUPS {
        a_garp_from_a_standby_moves_the_vip_through_the_workers_channel_on(setup);
    }
}

fn a_garp_from_a_standby_moves_the_vip_through_the_workers_channel_on(
    setup: (&'static str, usize),
) {
    let lab = Lab::start("garp", setup);
    let rx = lab.daemon.as_ref().unwrap().subscribe().unwrap();
    assert_eq!(lab.owners(), vec!["a".to_string()]);
    let g = garp(MacAddr(MAC_B), [10, 9, 0, 100]);
    // through the last worker's queue
    lab.q("b", lab.workers - 1).push_rx(&g, VnetHdr::default());
    let until = Instant::now() + Duration::from_secs(5);
    let moved = loop {
        match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(Event::VipMoved { vip, to, .. }) if vip == "v" => break to,
            Ok(_) => continue,
            Err(e) => panic!("{setup:?}: no move: {e}"),
        }
    };
    assert_eq!(moved.as_deref(), Some("b"), "{setup:?}");
    assert_eq!(lab.owners(), vec!["b".to_string()], "{setup:?}");
    // the GARP itself was flooded to a by that worker, and the switch announced the move
    let got = collect(&lab.all("a"), Duration::from_secs(2), |g| !g.is_empty());
    assert!(
        got.iter().any(|f| f[12..14] == [0x08, 0x06]),
        "{setup:?}: {got:?}"
    );
}

#[test]
fn a_vanished_device_takes_its_port_down_and_is_attached_again_when_it_returns() {
    for setup in SETUPS {
        a_vanished_device_takes_its_port_down_and_is_attached_again_when_it_returns_on(setup);
    }
}

fn a_vanished_device_takes_its_port_down_and_is_attached_again_when_it_returns_on(
    setup: (&'static str, usize),
) {
    let lab = Lab::start("gone", setup);
    let rx = lab.daemon.as_ref().unwrap().subscribe().unwrap();
    lab.ports.remove("mem-b");
    assert!(
        wait(Duration::from_secs(5), || !lab.port_up("b")),
        "{setup:?}: b still up"
    );
    // the other ports keep being served
    assert!(lab.port_up("a"));
    lab.ports.add("mem-b");
    assert!(
        wait(Duration::from_secs(5), || lab.port_up("b")),
        "{setup:?}: b not re-attached"
    );
    assert_eq!(
        lab.ports.opened("mem-b"),
        2,
        "opened at start and re-attached"
    );
    // every worker's late report of the old device is ignored: b stays up
    std::thread::sleep(Duration::from_millis(300));
    assert!(lab.port_up("b"), "{setup:?}");
    let downs = rx
        .try_iter()
        .filter(|e| matches!(e, Event::PortState { port, up: false, .. } if port == "b"))
        .count();
    assert_eq!(downs, 1, "{setup:?}: one port-down for one vanished device");
    for k in 0..lab.workers {
        let seq = 7 + k as u32;
        lab.q("a", k)
            .push_rx(&udp(MAC_A, 1, MAC_B, 2, seq), VnetHdr::default());
    }
    let got = collect(&lab.all("b"), Duration::from_secs(5), |g| {
        g.iter().filter(|f| seq_of(f).is_some()).count() >= lab.workers
    });
    for k in 0..lab.workers {
        let seq = 7 + k as u32;
        assert!(
            got.iter().any(|f| seq_of(f) == Some(seq)),
            "{setup:?}: worker {k}: {got:?}"
        );
    }
}

#[test]
fn a_reload_under_traffic_adds_a_port_and_loses_no_frame_of_the_kept_ones() {
    for setup in SETUPS {
        a_reload_under_traffic_adds_a_port_and_loses_no_frame_of_the_kept_ones_on(setup);
    }
}

fn a_reload_under_traffic_adds_a_port_and_loses_no_frame_of_the_kept_ones_on(
    setup: (&'static str, usize),
) {
    let lab = Lab::start("reload", setup);
    let a = lab.all("a");
    let stop = Arc::new(AtomicBool::new(false));
    let pushed = Arc::new(AtomicU64::new(0));
    let sender = {
        let (stop, pushed, a) = (stop.clone(), pushed.clone(), a.clone());
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                // flow k on queue k
                for (k, q) in a.iter().enumerate() {
                    q.push_rx(
                        &udp(MAC_A, 1, MAC_B, 2, ((k as u32) << 24) | n),
                        VnetHdr::default(),
                    );
                }
                n += 1;
                pushed.store(u64::from(n), Ordering::Relaxed);
                if n % 64 == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    std::fs::write(&lab.file, config(&lab.dir, lab.io, lab.workers, true)).unwrap();
    match lab.call(Command::Reload) {
        View::Reloaded(r) => assert!(r.reloaded, "{r:?}"),
        v => panic!("{v:?}"),
    }
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    let per_flow = pushed.load(Ordering::Relaxed) as usize;
    let got = collect(&lab.all("b"), Duration::from_secs(10), |g| {
        g.iter().filter(|f| seq_of(f).is_some()).count() >= per_flow * lab.workers
    });
    for k in 0..lab.workers {
        let seqs: Vec<u32> = got
            .iter()
            .filter_map(|f| seq_of(f))
            .filter(|s| s >> 24 == k as u32)
            .collect();
        assert_eq!(
            seqs.len(),
            per_flow,
            "{setup:?}: every frame of flow {k} arrives once"
        );
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{setup:?}: flow {k} in order across the reload"
        );
    }
    assert_eq!(lab.ports.opened("mem-a"), 1, "a kept its device");
    // the new port c is in the new layout and reachable from every worker
    assert!(wait(Duration::from_secs(5), || lab.port_up("c")));
    for (k, q) in a.iter().enumerate() {
        q.push_rx(&udp(MAC_A, 1, MAC_C, 3, 99 + k as u32), VnetHdr::default());
    }
    let got = collect(&lab.all("c"), Duration::from_secs(5), |g| {
        g.iter().filter(|f| seq_of(f).is_some()).count() >= lab.workers
    });
    for k in 0..lab.workers {
        assert!(
            got.iter().any(|f| seq_of(f) == Some(99 + k as u32)),
            "{setup:?}: {got:?}"
        );
    }
}
