//! Live test: the switch never reorders the frames of a flow. vm1 blasts numbered UDP
//! datagrams of several flows (source ports) at vm2 as fast as its stack sends them; vm2
//! records, per flow, every sequence number in arrival order and counts the inversions (a
//! number lower than one already seen). Drops are allowed (a tap queue overflows at this
//! rate), reordering is not. Run on whichever worker engine and number of workers the
//! suite runs (`VSWITCH_TEST_IO`, `VSWITCH_TEST_WORKERS`), for tap and AF_PACKET ports; with
//! several workers it also checks that the flows were spread (every worker read frames:
//! `vswitch_worker_rx_frames_total`), so the order held across queues.
//!
//! Needs root; without it the test prints "SKIPPED: needs root (live test)".
//! `cargo test -p agent --test live_order -- --test-threads=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{http_get, require_root, test_workers, Backend, Lab, VmSpec};

/// The receiver: per flow (source port), arrival-order inversions; prints READY, then one
/// summary line when it has been idle for 1 s after the first datagram.
const RECV_PY: &str = r#"
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("READY", flush=True)
s.settimeout(30)
top, got, inv = {}, 0, 0
while True:
    try:
        d, a = s.recvfrom(2048)
    except socket.timeout:
        break
    s.settimeout(1)
    n = struct.unpack("!I", d[:4])[0]
    if n < top.get(a[1], -1):
        inv += 1
    else:
        top[a[1]] = n
    got += 1
print(f"RESULT got={got} inversions={inv} flows={len(top)}", flush=True)
"#;

/// The sender: `count` datagrams per flow, flows interleaved, back to back.
const SEND_PY: &str = r#"
import socket, struct, sys
dst, port, flows, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
socks = []
for f in range(flows):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 40000 + f))
    s.connect((dst, port))
    socks.append(s)
pad = bytes(60)
sent = 0
for n in range(count):
    for s in socks:
        try:
            s.send(struct.pack("!I", n) + pad)
            sent += 1
        except BlockingIOError:
            pass
        except OSError:
            pass
print(f"SENT {sent}", flush=True)
"#;

fn no_reordering(b: Backend, net: u8) {
    if !require_root() {
        return;
    }
    let lab = Lab::new(&format!("ord{}", b.letter()), net);
    lab.add_vm(VmSpec::new("vm1", b).no_ipv6());
    lab.add_vm(VmSpec::new("vm2", b).no_ipv6());
    lab.with_metrics();
    lab.start();
    let (vm1, vm2) = (lab.vm("vm1"), lab.vm("vm2"));
    vm1.ping_ok(vm2.ip4, 2);
    let rx = lab.spawn_ready(&vm2, "UDP receiver", &["python3", "-c", RECV_PY, "9000"]);
    let sent = vm1.run_args(&[
        "python3",
        "-c",
        SEND_PY,
        &vm2.ip4.to_string(),
        "9000",
        "16",
        "5000",
    ]);
    assert!(sent.ok(), "sender failed: {sent}");
    assert!(
        rx.wait_for_output("RESULT", Duration::from_secs(40)),
        "no result from the receiver: {}",
        rx.output()
    );
    let out = rx.output();
    let line = out
        .lines()
        .find(|l| l.starts_with("RESULT"))
        .unwrap_or_default()
        .to_owned();
    let field = |k: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX)
    };
    eprintln!("{b:?}: {} / {line}", sent.stdout.trim());
    assert_eq!(field("flows"), 16, "{line}");
    assert!(
        field("got") >= 2000 && field("got") != u64::MAX,
        "too few datagrams arrived to judge the order: {line}"
    );
    assert_eq!(
        field("inversions"),
        0,
        "the switch reordered a flow: {line}"
    );
    let (_, body) = http_get(lab.metrics_addr(), "/metrics").expect("GET /metrics");
    let per_worker: Vec<f64> = body
        .lines()
        .filter(|l| l.starts_with("vswitch_worker_rx_frames_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    eprintln!("{b:?}: frames read per worker {per_worker:?}");
    assert_eq!(per_worker.len() as u32, test_workers(), "{body}");
    assert!(
        per_worker.iter().all(|n| *n > 100.0),
        "every worker must have had flows (16 flows' worth of hashes): {per_worker:?}"
    );
}

#[test]
fn no_reordering_tap() {
    no_reordering(Backend::Tap, 241);
}

#[test]
fn no_reordering_netdev() {
    no_reordering(Backend::Netdev, 242);
}
