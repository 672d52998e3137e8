//! Live test of the VXLAN overlay (root, network namespaces, real etcd; skipped otherwise):
//! two hosts of the cluster lab, VMs a1 and a2 on host-a, b1 on host-b, one subnet (VLAN 0
//! ↔ VNI 5000). See `cluster_lab` for the namespaces and addresses.
//!
//! Run: `cargo test -p agent --test live_overlay -- --test-threads=1`.

#![allow(clippy::unwrap_used)]

mod cluster_lab;

use std::time::Duration;

use cluster_lab::{can_run, wait_until, Cluster, HostSpec};

/// Lease TTL of the test hosts.
const TTL: u32 = 3;
/// "Eventually" (generous: the machine is shared).
const SOON: Duration = Duration::from_secs(30);
const PY: &str = "/usr/bin/python3";

fn metrics(c: &Cluster, host: &str) -> String {
    let (ok, out) = c.ctl(host, &["metrics"]);
    assert!(ok, "metrics on {host}: {out}");
    out
}

/// The value of one metric line (`name{labels}`), 0 if absent.
fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// A Python one-liner that sends `payload_py` (a bytes expression) by UDP to
/// `dst`:4789 from `src` (or any address).
fn udp_sender(src: Option<&str>, dst: &str, payload_py: &str) -> String {
    let bind = src.map_or(String::new(), |s| format!("s.bind(({s:?}, 0)); "));
    format!(
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); {bind}\
         p = {payload_py}; [s.sendto(p, ({dst:?}, 4789)) for _ in range(3)]"
    )
}

/// The bytes of a VXLAN packet (VNI 5000) carrying a UDP/IPv4 frame from `src_mac` to
/// `dst_mac` (Python expression; the inner checksum is left 0, which UDP allows).
fn vxlan_payload(src_mac: &str, dst_mac: &str, src_ip: &str, dst_ip: &str) -> String {
    format!(
        "(lambda m, ip: bytes([8,0,0,0, 0,0x13,0x88,0]) + m({dst_mac:?}) + m({src_mac:?}) + \
         bytes([8,0]) + bytes([0x45,0,0,32, 0,1,0,0, 64,17,0,0]) + ip({src_ip:?}) + \
         ip({dst_ip:?}) + bytes([0x9c,0x40,0x13,0x88, 0,12,0,0]) + b'OVLY')\
         (lambda s: bytes(int(x, 16) for x in s.split(':')), \
          lambda s: bytes(int(x) for x in s.split('.')))"
    )
}

#[test]
fn vms_on_two_hosts_talk_through_the_vxlan_overlay() {
    if !can_run() {
        return;
    }
    let mut c = Cluster::new("ovl", TTL);
    c.add_host_spec("host-a", 1, HostSpec::default().vm("a1").vm("a2"));
    c.add_host_spec("host-b", 2, HostSpec::default().vm("b1"));
    let (a1, a2, b1) = (c.vm("a1").clone(), c.vm("a2").clone(), c.vm("b1").clone());
    let (va, vb) = (c.host("host-a").ip.clone(), c.host("host-b").ip.clone());

    // each switch has the other host in its overlay table
    let up = wait_until(SOON, || {
        metric(
            &metrics(&c, "host-a"),
            "vswitch_overlay_host_up{host=\"host-b\"}",
        ) == 1
            && metric(
                &metrics(&c, "host-b"),
                "vswitch_overlay_host_up{host=\"host-a\"}",
            ) == 1
    });
    assert!(up.is_some(), "hosts never saw each other:\n{}", c.logs());

    // `show fdb` lists b1's MAC at host-b
    let (ok, fdb) = c.ctl("host-a", &["show", "fdb"]);
    assert!(ok, "{fdb}");
    let row = fdb
        .lines()
        .find(|l| l.contains(&b1.mac))
        .unwrap_or_default();
    assert!(
        row.contains("b1") && row.contains("host-b") && row.contains("remote"),
        "show fdb on host-a: {fdb}"
    );

    // same-host baseline
    let (ok, out) = c.vm_run("a1", &["ping", "-c", "2", "-i", "0.2", "-W", "2", &a2.ip4]);
    assert!(ok, "ping a1 → a2 (one host): {out}\n{}", c.logs());

    // across hosts, with a capture of host-a's underlay
    let cap = c.spawn_in_host(
        "host-a",
        &[
            "timeout", "10", "tcpdump", "-i", "eth0", "-n", "-l", "-c", "2", "udp", "dst", "port",
            "4789", "and", "dst", "host", &vb,
        ],
    );
    std::thread::sleep(Duration::from_millis(800)); // tcpdump attaches
    let (ok, out) = c.vm_run("a1", &["ping", "-c", "3", "-i", "0.2", "-W", "2", &b1.ip4]);
    assert!(ok, "ping a1 → b1 (across hosts): {out}\n{}", c.logs());
    let seen = cap.finish();
    assert!(
        seen.contains(&format!("{va}.")) && seen.contains(&format!("{vb}.4789")),
        "no VXLAN from host-a's VTEP to host-b's on the underlay: {seen}"
    );
    let (ok, out) = c.vm_run(
        "b1",
        &["ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", &a1.ip6],
    );
    assert!(ok, "ping6 b1 → a1 (across hosts): {out}\n{}", c.logs());

    // ARP for a VM of the other host is answered (locally, by host-a's switch)
    let before = metric(
        &metrics(&c, "host-a"),
        "vswitch_port_answered_total{port=\"a2\"}",
    );
    let (ok, out) = c.vm_run(
        "a2",
        &["arping", "-c", "2", "-w", "5", "-I", "eth0", &b1.ip4],
    );
    assert!(ok, "arping a2 → b1: {out}\n{}", c.logs());
    assert!(
        out.to_lowercase().contains(&b1.mac.to_lowercase()),
        "the ARP answer names b1's MAC: {out}"
    );
    let answered = metric(
        &metrics(&c, "host-a"),
        "vswitch_port_answered_total{port=\"a2\"}",
    );
    assert!(
        answered >= before + 2,
        "answered by host-a: {before} → {answered}"
    );

    // TCP across hosts (segmented before encapsulation when the VM sends TSO frames)
    let server = c.spawn_in_vm("b1", &["timeout", "30", "iperf3", "-s", "-1"]);
    std::thread::sleep(Duration::from_millis(800));
    let (ok, out) = c.vm_run("a1", &["iperf3", "-c", &b1.ip4, "-t", "3", "-J"]);
    drop(server);
    assert!(ok, "iperf3 a1 → b1: {out}\n{}", c.logs());
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let bytes = v["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
    assert!(
        bytes > 1_000_000,
        "iperf3 moved {bytes} bytes\n--- host-a\n{}\n--- host-b\n{}",
        metrics(&c, "host-a"),
        metrics(&c, "host-b")
    );
    // a measurement for the report, not a pass/fail criterion
    println!(
        "iperf3 a1 → b1 over VXLAN: {:.0} Mbit/s",
        v["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap_or(0.0)
            / 1e6
    );
    let m = metrics(&c, "host-a");
    assert!(
        metric(&m, "vswitch_overlay_tx_bytes_total{host=\"host-b\"}") >= bytes,
        "host-a counted its VXLAN bytes to host-b:\n{m}"
    );
    // host-b joined a1's segments back into super-frames for b1 (cluster.gro, on by
    // default): one write per super-frame, not one per datagram
    let m = metrics(&c, "host-b");
    let joined = metric(&m, "vswitch_overlay_rx_coalesced_total{host=\"host-a\"}");
    let frames = metric(&m, "vswitch_overlay_rx_frames_total{host=\"host-a\"}");
    assert!(
        joined > 0 && joined <= frames,
        "host-b joined {joined} of {frames} datagrams from host-a:\n{m}"
    );

    // a spoofed source address from a1 never reaches the underlay
    let spoofed = "10.251.0.99";
    for cmd in [
        vec!["ip", "addr", "add", &format!("{spoofed}/32"), "dev", "eth0"],
        vec![
            "ip",
            "neigh",
            "replace",
            &b1.ip4,
            "lladdr",
            &b1.mac,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ],
    ] {
        let (ok, out) = c.vm_run("a1", &cmd);
        assert!(ok, "{cmd:?}: {out}");
    }
    let cap = c.spawn_in_host(
        "host-a",
        &[
            "timeout", "4", "tcpdump", "-i", "eth0", "-n", "-l", "udp", "port", "4789",
        ],
    );
    std::thread::sleep(Duration::from_millis(800));
    let _ = c.vm_run(
        "a1",
        &[
            "ping", "-c", "3", "-i", "0.2", "-W", "1", "-I", spoofed, &b1.ip4,
        ],
    );
    let seen = cap.finish();
    assert!(
        seen.contains("listening on eth0"),
        "the capture ran: {seen}"
    );
    assert!(
        !seen.contains(spoofed),
        "spoofed source on the underlay: {seen}"
    );
    let m = metrics(&c, "host-a");
    assert!(
        metric(
            &m,
            "vswitch_port_drops_total{port=\"a1\",reason=\"ip_spoof\"}"
        ) >= 3,
        "host-a counted the spoofed frames:\n{m}"
    );

    // VXLAN to host-b's VTEP from an address that is no live host's VTEP: dropped, counted
    let fake = udp_sender(
        None,
        &vb,
        &vxlan_payload(&a1.mac, &b1.mac, &a1.ip4, &b1.ip4),
    );
    let (ok, out) = c.fabric_run(&[PY, "-c", &fake]);
    assert!(ok, "fabric sender: {out}");
    let counted = wait_until(SOON, || {
        metric(&metrics(&c, "host-b"), "vswitch_overlay_unknown_vtep_total") >= 3
    });
    assert!(
        counted.is_some(),
        "unknown VTEP not counted:\n{}",
        metrics(&c, "host-b")
    );

    // a VM's own VXLAN datagram is plain UDP to the other VM: never decapsulated
    let listener = c.spawn_in_vm(
        "b1",
        &[
            "timeout",
            "10",
            PY,
            "-c",
            "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); \
             s.bind(('0.0.0.0', 4789)); d, a = s.recvfrom(2048); print('GOT', len(d), d[-4:], a[0])",
        ],
    );
    std::thread::sleep(Duration::from_millis(800));
    let inner = vxlan_payload(&b1.mac, &a2.mac, &b1.ip4, &a2.ip4);
    let (ok, out) = c.vm_run(
        "a1",
        &[PY, "-c", &udp_sender(Some(&a1.ip4), &b1.ip4, &inner)],
    );
    assert!(ok, "a1 sender: {out}");
    let got = listener.finish();
    assert!(
        got.contains("GOT 54 b'OVLY'") && got.contains(&a1.ip4),
        "b1 did not get a1's datagram as UDP: {got}"
    );
}
