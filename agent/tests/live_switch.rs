//! Live tests: the real `vswitch` binary between network namespaces ("VMs"), on taps the
//! switch creates and on veths it attaches to (AF_PACKET), with real ping, arping, tcpdump
//! and TCP. They need root; without it each test prints "SKIPPED: needs root (live test)".
//!
//! Run serially: `cargo test -p agent --test live_switch -- --test-threads=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{
    http_get, parse_ping, require_root, select, summarize, wait_until, web_vip, Backend, Lab, Mac,
    ReloadBy, VmSpec, UDP_SEND_PY,
};
use vip_table::MacAddr;
use vswitch::testutil::frames::{arp_raw, arp_reply, arp_request, padded, ETH_MIN_LEN};

/// Each test has its own address block; the netdev variant uses `base + 10`.
fn net(base: u8, b: Backend) -> u8 {
    match b {
        Backend::Tap => base,
        Backend::Netdev => base + 10,
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

// ---------------------------------------------------------------------------------------
// 1. Connectivity: ping, arping, IPv6, TCP with offloads, broadcast confined to the VLAN
// ---------------------------------------------------------------------------------------

fn connectivity(b: Backend) {
    if !require_root() {
        return;
    }
    let lab = Lab::new(&format!("l2{}", b.letter()), net(201, b));
    for n in ["vm1", "vm2", "vm3"] {
        lab.add_vm(VmSpec::new(n, b));
    }
    // Another tenant: vm4 and vm5, same subnet, VLAN 10. They must see nothing of VLAN 0.
    lab.add_vm(VmSpec::new("vm4", b).vlan(10));
    lab.add_vm(VmSpec::new("vm5", b).vlan(10));
    lab.start();
    let (vm1, vm2, vm3, vm4) = (lab.vm("vm1"), lab.vm("vm2"), lab.vm("vm3"), lab.vm("vm4"));
    let vm5 = lab.vm("vm5");
    let cap4 = lab.capture(&vm4);

    for (a, z) in [(&vm1, &vm2), (&vm1, &vm3), (&vm2, &vm3), (&vm3, &vm1)] {
        a.ping_ok(z.ip4, 3);
        a.ping_ok(z.ip6, 3);
    }
    let o = vm1.run(&format!("arping -c 2 -w 5 -I {} {}", vm1.dev, vm3.ip4));
    assert!(
        o.ok() && o.stdout.contains("Received 2 response"),
        "arping vm1 -> vm3\n{o}"
    );
    let o = vm2.run(&format!("arping -c 2 -w 5 -I {} {}", vm2.dev, vm1.ip4));
    assert!(
        o.ok() && o.stdout.contains("Received 2 response"),
        "arping vm2 -> vm1\n{o}"
    );
    // Same addresses, other VLAN: unreachable.
    assert_eq!(
        vm4.ping(vm1.ip4, 2).received,
        0,
        "vm4 (vlan 10) reached vm1"
    );

    // TCP through the switch with the VMs' offloads on (GSO super-frames, partial csums).
    for v in [&vm1, &vm3] {
        let k = v.must(&format!("ethtool -k {}", v.dev));
        for feature in ["tcp-segmentation-offload: on", "tx-checksumming: on"] {
            assert!(k.contains(feature), "{}: expected {feature}\n{k}", v.name);
        }
    }
    lab.tcp_transfer(&vm1, &vm2, vm2.ip4, 5001, 8 << 20);
    lab.tcp_transfer(&vm3, &vm1, vm1.ip6, 5002, 4 << 20);

    // Broadcast: reaches vm2 and vm3 (VLAN 0), not vm4 (VLAN 10).
    let cap2 = lab.capture(&vm2);
    let cap3 = lab.capture(&vm3);
    let nobody = lab.ip4(77);
    let _ = vm1.run(&format!("arping -c 2 -w 2 -I {} {nobody}", vm1.dev));
    let marker = format!("vswitch-bcast-{}", lab.tag);
    let bcast = lab.ip4(255).to_string();
    vm1.run_args(&[
        "python3",
        "-c",
        UDP_SEND_PY,
        &vm1.ip4.to_string(),
        &bcast,
        "9999",
        &marker,
    ])
    .expect_ok("UDP broadcast");
    // VLAN hopping: vm1 sends broadcasts tagged with vm4's VLAN. An access port drops
    // tagged frames (counted as `vlan`); veths carry the tag out of band, so this also
    // checks that the AF_PACKET port restores it.
    let vlan_drops = lab.drops("vm1", "vlan");
    let mut hop = padded(&arp_request(vm1.mac.into(), vm1.ip4, vm4.ip4), ETH_MIN_LEN);
    hop.splice(12..12, [0x81, 0x00, 0x00, 10]);
    vm1.send_frames(&[hop.clone(), hop]);
    // Positive control for vm4's capture: its own VLAN does reach it.
    vm5.ping_ok(vm4.ip4, 2);
    let (f2, f3, f4) = (cap2.stop(), cap3.stop(), cap4.stop());
    for (name, frames) in [("vm2", &f2), ("vm3", &f3)] {
        let arps = select(frames, |f| {
            f.dst() == Mac::BROADCAST
                && f.arp()
                    .is_some_and(|a| a.op == 1 && a.spa == vm1.ip4 && a.tpa == nobody)
        });
        assert!(
            arps.len() >= 2,
            "{name} did not get vm1's 2 broadcast ARP requests; it got:\n{}",
            summarize(&frames.iter().collect::<Vec<_>>())
        );
        let udp = select(frames, |f| {
            f.dst() == Mac::BROADCAST && f.udp_ports().is_some_and(|p| p.1 == 9999)
        });
        assert!(
            udp.len() == 1 && udp[0].contains(marker.as_bytes()),
            "{name} did not get vm1's UDP broadcast exactly once: {udp:?}"
        );
        let tagged = select(frames, |f| !f.vlan_tags().is_empty());
        assert!(
            tagged.is_empty(),
            "tagged frames on an access port:\n{}",
            summarize(&tagged)
        );
    }
    let vlan0_macs = [vm1.mac, vm2.mac, vm3.mac];
    let vlan0_ips: Vec<IpAddr> = [&vm1, &vm2, &vm3]
        .iter()
        .flat_map(|v| [IpAddr::from(v.ip4), IpAddr::from(v.ip6)])
        .collect();
    let leaked = select(&f4, |f| {
        vlan0_macs.contains(&f.src())
            || f.arp()
                .is_some_and(|a| vlan0_ips.contains(&IpAddr::from(a.spa)))
            || f.ip().is_some_and(|ip| vlan0_ips.contains(&ip.src))
            || f.contains(marker.as_bytes())
    });
    assert!(
        leaked.is_empty(),
        "VLAN 0 frames reached vm4 in VLAN 10:\n{}",
        summarize(&leaked)
    );
    let hops = lab.drops("vm1", "vlan") - vlan_drops;
    assert_eq!(hops, 2, "tagged frames from an access port: vlan drops");
    let own = select(&f4, |f| f.src() == vm5.mac && f.icmp_type() == Some(8));
    assert_eq!(
        own.len(),
        2,
        "vm4 should see vm5's 2 echo requests (same VLAN 10)"
    );
    println!(
        "vm4 (vlan 10) received {} frames during the test, none from VLAN 0",
        f4.len()
    );
    lab.finish();
}

#[test]
fn connectivity_tap() {
    connectivity(Backend::Tap);
}

#[test]
fn connectivity_netdev() {
    connectivity(Backend::Netdev);
}

// ---------------------------------------------------------------------------------------
// 2. Spoofing: MAC, IP (v4, v6), ARP — never reaches the victim, counted per reason
// ---------------------------------------------------------------------------------------

fn spoofing(b: Backend) {
    if !require_root() {
        return;
    }
    let lab = Lab::new(&format!("spf{}", b.letter()), net(202, b));
    for n in ["vm1", "vm2", "vm3"] {
        lab.add_vm(VmSpec::new(n, b));
    }
    lab.start();
    let (vm1, vm2, vm3) = (lab.vm("vm1"), lab.vm("vm2"), lab.vm("vm3"));
    vm3.ping_ok(vm1.ip4, 1);
    vm1.ping_ok(vm2.ip4, 1);
    let before = lab.stats("vm3");
    let count = |reason: &str| before["drops"][reason].as_u64().unwrap();
    let honest_before = [lab.stats("vm1"), lab.stats("vm2")];
    let cap = lab.capture(&vm1);

    // MAC spoof: vm3 takes another MAC and pings vm1. vm3's neighbour entries for vm1 are
    // pinned (after the MAC change, which flushes them) so that vm3 really sends the
    // spoofed packets instead of failing at ARP/ND; the same for the IP spoofs below.
    let spoof_mac = Mac([0x02, lab.net, 0, 0, 0, 0x99]);
    vm3.must(&format!("ip link set dev {} address {spoof_mac}", vm3.dev));
    vm3.pin_neigh(vm1.ip4, vm1.mac);
    let s = vm3.ping(vm1.ip4, 3);
    assert_eq!(s.received, 0, "MAC spoof got replies: {s:?}");
    vm3.must(&format!("ip link set dev {} address {}", vm3.dev, vm3.mac));
    vm3.pin_neigh(vm1.ip4, vm1.mac);
    vm3.pin_neigh(vm1.ip6, vm1.mac);

    // IP spoof: addresses vm3 was never given, IPv4 and IPv6.
    let (fake4, fake6) = (lab.ip4(50), lab.ip6(0x50));
    vm3.must(&format!("ip addr add {fake4}/24 dev {}", vm3.dev));
    vm3.must(&format!("ip addr add {fake6}/64 dev {} nodad", vm3.dev));
    let o = vm3.run(&format!("ping -n -c 3 -i 0.2 -W 1 -I {fake4} {}", vm1.ip4));
    assert_eq!(parse_ping(&o.stdout).map(|p| p.received), Some(0), "{o}");
    let o = vm3.run(&format!(
        "ping -6 -n -c 3 -i 0.2 -W 1 -I {fake6} {}",
        vm1.ip6
    ));
    assert_eq!(parse_ping(&o.stdout).map(|p| p.received), Some(0), "{o}");
    vm3.must(&format!("ip addr del {fake4}/24 dev {}", vm3.dev));
    vm3.must(&format!("ip addr del {fake6}/64 dev {}", vm3.dev));

    // ARP spoof, three ways:
    // (a) poisoning: an ARP reply to vm1 saying vm2's IP is at vm3's MAC (spa not allowed);
    // (b) sha != eth.src, with vm3's own IP;
    // (c) iputils arping with a forged sender IP (vm2's), broadcast.
    let forged_sha = Mac([0x02, lab.net, 0, 0, 0, 0x66]);
    let poison = padded(
        &arp_reply(vm3.mac.into(), vm2.ip4, vm1.mac.into(), vm1.ip4),
        ETH_MIN_LEN,
    );
    let bad_sha = padded(
        &arp_raw(
            vm3.mac.into(),
            MacAddr::BROADCAST,
            1,
            forged_sha.into(),
            vm3.ip4,
            MacAddr::ZERO,
            vm1.ip4,
        ),
        ETH_MIN_LEN,
    );
    vm3.send_frames(&[
        poison.clone(),
        poison.clone(),
        poison,
        bad_sha.clone(),
        bad_sha.clone(),
        bad_sha,
    ]);
    vm3.must("sysctl -qw net.ipv4.ip_nonlocal_bind=1");
    let o = vm3.run(&format!(
        "arping -c 2 -w 2 -s {} -I {} {}",
        vm2.ip4, vm3.dev, vm1.ip4
    ));
    assert!(
        o.stdout.contains("Sent 2 probes"),
        "arping -s did not send\n{o}"
    );
    assert!(
        o.stdout.contains("Received 0 response"),
        "forged-sender ARP got answered\n{o}"
    );

    // Positive control: vm3's honest traffic does reach vm1 (and the capture works).
    vm3.ping_ok(vm1.ip4, 2);
    let frames = cap.stop();

    let bad = select(&frames, |f| {
        f.src() == spoof_mac
            || f.ip()
                .is_some_and(|ip| ip.src == IpAddr::from(fake4) || ip.src == IpAddr::from(fake6))
            || f.arp().is_some_and(|a| {
                a.sha == forged_sha
                    || a.sha == spoof_mac
                    || (f.src() == vm3.mac && a.spa == vm2.ip4)
            })
    });
    assert!(
        bad.is_empty(),
        "spoofed frames reached the victim vm1:\n{}",
        summarize(&bad)
    );
    let honest = select(&frames, |f| {
        f.src() == vm3.mac
            && f.icmp_type() == Some(8)
            && f.ip().is_some_and(|ip| ip.src == IpAddr::from(vm3.ip4))
    });
    assert_eq!(
        honest.len(),
        2,
        "vm1 should see vm3's 2 honest echo requests; it saw:\n{}",
        summarize(&frames.iter().collect::<Vec<_>>())
    );
    let n = vm1.neigh(vm2.ip4);
    assert!(
        !n.contains(&vm3.mac.to_string()),
        "vm1's ARP cache was poisoned: {n}"
    );

    let after = lab.stats("vm3");
    let delta = |reason: &str| after["drops"][reason].as_u64().unwrap() - count(reason);
    println!(
        "vm3 drops: mac_spoof +{}, ip_spoof +{}, arp_spoof +{}",
        delta("mac_spoof"),
        delta("ip_spoof"),
        delta("arp_spoof")
    );
    assert!(delta("mac_spoof") >= 3, "mac_spoof: {after}");
    assert!(delta("ip_spoof") >= 6, "ip_spoof: {after}");
    assert!(delta("arp_spoof") >= 8, "arp_spoof: {after}");
    // (Not zero: a tap is up in the switch's namespace for a moment before the lab moves
    // it, and the host's IPv6 autoconf frames from it count as mac_spoof.)
    for (v, b) in [&vm1, &vm2].into_iter().zip(&honest_before) {
        let s = lab.stats(&v.name);
        for r in ["mac_spoof", "ip_spoof", "arp_spoof"] {
            assert_eq!(
                s["drops"][r], b["drops"][r],
                "honest {} got {r} drops: {s}",
                v.name
            );
        }
    }
    lab.finish();
}

#[test]
fn spoofing_tap() {
    spoofing(Backend::Tap);
}

#[test]
fn spoofing_netdev() {
    spoofing(Backend::Netdev);
}

// ---------------------------------------------------------------------------------------
// 3. VIP: claim, failover with a pinned (stale) client ARP entry, hijack refused
// ---------------------------------------------------------------------------------------

fn vip_failover(b: Backend) {
    if !require_root() {
        return;
    }
    let lab = Lab::new(&format!("vip{}", b.letter()), net(203, b));
    for n in ["vm1", "vm2", "vm3", "vm4"] {
        lab.add_vm(VmSpec::new(n, b));
    }
    // One group, an IPv4 and an IPv6 address that move together.
    let (vip, vip6) = (lab.ip4(100), lab.ip6(0x100));
    lab.set_extra_config(&web_vip(&[vip.into(), vip6.into()]));
    lab.start();
    let (vm1, vm2, vm3, vm4) = (lab.vm("vm1"), lab.vm("vm2"), lab.vm("vm3"), lab.vm("vm4"));
    assert!(lab.vip_owners("web").is_empty(), "{}", lab.vip("web"));

    // vm1 becomes master: adds the VIP and sends one gratuitous ARP.
    vm1.must(&format!("ip addr add {vip}/32 dev {}", vm1.dev));
    vm1.must(&format!("arping -c 1 -U -I {} {vip}", vm1.dev));
    lab.wait_vip_owners("web", &["vm1"], secs(2.0));
    let epoch1 = lab.vip("web")["epoch"].as_u64().unwrap();
    vm3.ping_ok(vip, 3);
    vm4.ping_ok(vip, 2);
    // A stale (here: static) ARP entry in the client: the VIP is at vm1's MAC.
    vm3.pin_neigh(vip, vm1.mac);

    // Failover: vm1 gives the VIP up, vm2 takes it with ONE gratuitous ARP, while vm4
    // probes a UDP service on the VIP at 100 Hz.
    let _echo1 = lab.udp_echo(&vm1, 7000);
    let _echo2 = lab.udp_echo(&vm2, 7000);
    let probe = lab.udp_probe(&vm4, vip, 7000, 100, secs(2.0));
    let cap2 = lab.capture(&vm2);
    let cap4 = lab.capture(&vm4);
    std::thread::sleep(secs(0.5));
    vm1.must(&format!("ip addr del {vip}/32 dev {}", vm1.dev));
    vm2.must(&format!("ip addr add {vip}/32 dev {}", vm2.dev));
    vm2.must(&format!("arping -c 1 -U -I {} {vip}", vm2.dev));
    lab.wait_vip_owners("web", &["vm2"], secs(2.0));
    let v = lab.vip("web");
    assert_eq!(v["epoch"].as_u64(), Some(epoch1 + 1), "epoch: {v}");
    // The IPv6 address moved with the group: vm3's NS for it is answered with vm2's MAC.
    vm2.must(&format!("ip addr add {vip6}/128 dev {} nodad", vm2.dev));
    vm3.ping_ok(vip6, 2);
    let n6 = vm3.neigh(vip6);
    assert!(
        n6.contains(&vm2.mac.to_string()),
        "vm3's neighbour entry for {vip6}: {n6}"
    );
    let n = vm3.neigh(vip);
    assert!(
        n.contains(&vm1.mac.to_string()) && n.contains("PERMANENT"),
        "vm3's entry for the VIP should still say vm1: {n}"
    );
    vm3.ping_ok(vip, 3);
    let f2 = cap2.stop();
    let f4 = cap4.stop();
    let r = lab.probe_report(probe, secs(10.0));
    println!("UDP client (vm4) across the failover: {r:?}");
    assert!(
        r.by.get("vm1").is_some_and(|n| *n > 10) && r.by.get("vm2").is_some_and(|n| *n > 10),
        "the VIP service should answer from vm1, then from vm2: {r:?}"
    );
    assert!(
        r.max_gap_ms <= 500.0 && r.sent - r.received <= 50,
        "client outage during a manual failover: {r:?}"
    );
    let steered = select(&f2, |f| {
        f.icmp_type() == Some(8)
            && f.dst() == vm2.mac
            && f.ip()
                .is_some_and(|ip| ip.src == IpAddr::from(vm3.ip4) && ip.dst == IpAddr::from(vip))
    });
    assert_eq!(
        steered.len(),
        3,
        "vm2 should get vm3's 3 echo requests to the VIP, with eth.dst rewritten to vm2's MAC:\n{}",
        summarize(&f2.iter().collect::<Vec<_>>())
    );
    // vm4 (a non-candidate neighbour) hears vm2's GARP and the switch's own GARP.
    let garps = select(&f4, |f| {
        f.arp()
            .is_some_and(|a| a.spa == vip && a.tpa == vip && a.sha == vm2.mac)
    });
    assert!(
        garps.len() >= 2,
        "vm4 should hear vm2's GARP and the switch's GARP for the VIP (vm2's MAC):\n{}",
        summarize(&f4.iter().collect::<Vec<_>>())
    );
    // ...and the switch's unsolicited NA for the IPv6 address, with vm2's MAC.
    let nas = select(&f4, |f| {
        let l4 = f.l4();
        f.icmp_type() == Some(136)
            && f.src() == vm2.mac
            && l4.len() >= 24
            && l4[8..24] == vip6.octets()
    });
    assert!(
        !nas.is_empty(),
        "vm4 should get the switch's unsolicited NA for {vip6}:\n{}",
        summarize(&f4.iter().collect::<Vec<_>>())
    );
    println!(
        "failover seen by vm4: {} GARPs and {} NAs for the VIP with vm2's MAC",
        garps.len(),
        nas.len()
    );

    // Hijack: vm3 is not a candidate. A 4th client pings the VIP throughout: no outage.
    let watch = lab.bg_ping(&vm4, vip, 40, "0.05");
    std::thread::sleep(secs(0.3));
    let cap4 = lab.capture(&vm4);
    vm3.must(&format!("ip addr add {vip}/32 dev {}", vm3.dev));
    vm3.must(&format!("arping -c 1 -U -I {} {vip}", vm3.dev));
    vm3.must(&format!("ip addr del {vip}/32 dev {}", vm3.dev));
    let hijacks = || lab.vip("web")["hijack_attempts"].as_u64();
    assert!(
        wait_until(secs(2.0), || hijacks() == Some(1)).is_some(),
        "hijack not counted: {}",
        lab.vip("web")
    );
    let v = lab.vip("web");
    assert_eq!(lab.vip_owners("web"), ["vm2"], "{v}");
    assert_eq!(v["epoch"].as_u64(), Some(epoch1 + 1), "epoch moved: {v}");
    assert_eq!(v["last_hijack"]["port"], "vm3", "{v}");
    assert_eq!(lab.drops("vm3", "vip_hijack"), 1);
    assert!(
        lab.log().contains("vip_hijack"),
        "no hijack warning in the log"
    );
    let w = watch.wait(secs(10.0));
    let ws = parse_ping(&w.stdout).unwrap_or_else(|| panic!("{w}"));
    assert!(
        ws.transmitted == 40 && ws.lost() == 0,
        "vm4 lost pings to the VIP during the hijack attempt: {ws:?}\n{w}"
    );
    let f4 = cap4.stop();
    let forged = select(&f4, |f| {
        f.src() == vm3.mac && f.arp().is_some_and(|a| a.spa == vip)
    });
    assert!(
        forged.is_empty(),
        "vm3's hijack GARP reached vm4:\n{}",
        summarize(&forged)
    );
    let n = vm4.neigh(vip);
    assert!(
        !n.contains(&vm3.mac.to_string()),
        "vm4's ARP entry for the VIP points at the hijacker: {n}"
    );
    vm3.ping_ok(vip, 2);
    lab.finish();
}

#[test]
fn vip_failover_tap() {
    vip_failover(Backend::Tap);
}

#[test]
fn vip_failover_netdev() {
    vip_failover(Backend::Netdev);
}

// ---------------------------------------------------------------------------------------
// 4. A VM's device vanishes mid-traffic, then comes back
// ---------------------------------------------------------------------------------------

fn device_vanishes(b: Backend) {
    if !require_root() {
        return;
    }
    let lab = Lab::new(&format!("gon{}", b.letter()), net(204, b));
    for n in ["vm1", "vm2", "vm3"] {
        lab.add_vm(VmSpec::new(n, b));
    }
    lab.start();
    let (vm1, vm2, vm3) = (lab.vm("vm1"), lab.vm("vm2"), lab.vm("vm3"));
    vm1.ping_ok(vm2.ip4, 1);
    vm1.ping_ok(vm3.ip4, 1);

    let traffic = lab.bg_ping(&vm1, vm2.ip4, 80, "0.05");
    std::thread::sleep(secs(0.5));
    lab.delete_device(&vm3);
    let took = lab.wait_port_down("vm3", secs(3.0));
    println!("vm3's device deleted: port down after {took:?}");
    assert!(took <= secs(2.5), "port down only after {took:?}");
    let o = traffic.wait(secs(15.0));
    let s = parse_ping(&o.stdout).unwrap_or_else(|| panic!("{o}"));
    println!("vm1 -> vm2 across the vanishing: {s:?}");
    assert!(
        s.transmitted == 80 && s.lost() <= 1,
        "vm1 <-> vm2 lost pings while vm3 vanished: {s:?}"
    );
    vm2.ping_ok(vm1.ip6, 2);
    assert!(lab.port_oper_up("vm1") && lab.port_oper_up("vm2"));

    let back = lab.recreate_device(&vm3);
    println!("vm3's device recreated: port up after {back:?}");
    assert!(back <= secs(3.0), "re-attach took {back:?}");
    vm1.ping_ok(vm3.ip4, 3);
    vm3.ping_ok(vm2.ip6, 2);
    assert!(lab.port_oper_up("vm3"));
    lab.tcp_transfer(&vm1, &vm3, vm3.ip4, 5003, 2 << 20);
    lab.finish();
}

#[test]
fn device_vanishes_tap() {
    device_vanishes(Backend::Tap);
}

#[test]
fn device_vanishes_netdev() {
    device_vanishes(Backend::Netdev);
}

// ---------------------------------------------------------------------------------------
// 5. Reload: add a port live, refuse an invalid config, SIGHUP
// ---------------------------------------------------------------------------------------

fn reload(b: Backend) {
    if !require_root() {
        return;
    }
    let lab = Lab::new(&format!("rld{}", b.letter()), net(205, b));
    for n in ["vm1", "vm2", "vm3"] {
        lab.add_vm(VmSpec::new(n, b));
    }
    lab.start();
    let (vm1, vm2) = (lab.vm("vm1"), lab.vm("vm2"));
    let pid = lab.switch_pid();
    vm1.ping_ok(vm2.ip4, 1);

    // A 4th port, added by `ctl reload` while vm1 pings vm2.
    let traffic = lab.bg_ping(&vm1, vm2.ip4, 60, "0.05");
    std::thread::sleep(secs(0.3));
    let vm4 = lab.add_vm_live(VmSpec::new("vm4", b), ReloadBy::Ctl);
    vm4.ping_ok(vm1.ip4, 3);
    vm1.ping_ok(vm4.ip6, 2);
    let o = traffic.wait(secs(15.0));
    let s = parse_ping(&o.stdout).unwrap_or_else(|| panic!("{o}"));
    assert!(
        s.transmitted == 60 && s.lost() <= 1,
        "vm1 -> vm2 during the reload: {s:?}"
    );
    assert_eq!(lab.switch_pid(), pid);
    assert!(lab.switch_running(), "the switch restarted or died");

    // An invalid config: refused with the field named; the running config stays.
    let good = lab.render_config();
    let bad_cidr = format!("10.{}.0.0/33", lab.net);
    let bad = good.replacen(
        "name = \"vm2\"\n",
        &format!("name = \"vm2\"\nallowed_address_pairs = [{{ ip = \"{bad_cidr}\" }}]\n"),
        1,
    );
    assert_ne!(bad, good);
    lab.write_config_text(&bad);
    let o = lab.reload();
    assert!(!o.ok(), "an invalid config was accepted\n{o}");
    assert!(
        o.stderr
            .contains("port[1] \"vm2\".allowed_address_pairs[0].ip")
            && o.stderr.contains(&bad_cidr),
        "the error should name the field and the value\n{o}"
    );
    println!("refused reload: {}", o.stderr.trim());
    assert_eq!(lab.ports().len(), 4);
    vm1.ping_ok(vm4.ip4, 2);
    vm4.ping_ok(vm2.ip4, 2);

    // SIGHUP with a valid config (which adds a 5th port).
    let vm5 = lab.add_vm_live(VmSpec::new("vm5", b), ReloadBy::Sighup);
    assert_eq!(lab.ports().len(), 5);
    vm5.ping_ok(vm1.ip4, 2);
    vm2.ping_ok(vm5.ip4, 2);
    assert!(
        lab.wait_log("configuration reloaded", secs(2.0)),
        "no reload in the log"
    );
    assert_eq!(lab.switch_pid(), pid);
    lab.finish();
}

#[test]
fn reload_tap() {
    reload(Backend::Tap);
}

#[test]
fn reload_netdev() {
    reload(Backend::Netdev);
}

// ---------------------------------------------------------------------------------------
// 6. Prometheus metrics over HTTP
// ---------------------------------------------------------------------------------------

fn metrics(b: Backend) {
    if !require_root() {
        return;
    }
    let lab = Lab::new(&format!("met{}", b.letter()), net(206, b));
    lab.add_vm(VmSpec::new("vm1", b));
    lab.add_vm(VmSpec::new("vm2", b));
    let vip = lab.ip4(100);
    lab.set_extra_config(&web_vip(&[vip.into()]));
    lab.with_metrics();
    lab.start();
    let (vm1, vm2) = (lab.vm("vm1"), lab.vm("vm2"));
    vm1.ping_ok(vm2.ip4, 2);
    vm1.must(&format!("ip addr add {vip}/32 dev {}", vm1.dev));
    vm1.must(&format!("arping -c 1 -U -I {} {vip}", vm1.dev));
    lab.wait_vip_owners("web", &["vm1"], secs(2.0));

    let addr = lab.metrics_addr();
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    let (code, body) = http_get(addr, "/metrics").expect("GET /metrics");
    assert_eq!(code, 200, "{body}");
    let value = |prefix: &str| -> Option<f64> {
        body.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    };
    // the worker engine the suite asked for (`VSWITCH_TEST_IO`); `auto` is io_uring on the
    // kernels CI runs on
    let engine = match std::env::var("VSWITCH_TEST_IO").as_deref() {
        Ok("epoll") => "epoll",
        _ => "uring",
    };
    assert_eq!(
        value(&format!("vswitch_worker_io{{engine=\"{engine}\"}}")),
        Some(1.0),
        "{body}"
    );
    let rx = value("vswitch_port_rx_frames_total{port=\"vm1\"}");
    assert!(
        rx.is_some_and(|n| n >= 2.0),
        "rx frames of vm1: {rx:?}\n{body}"
    );
    assert_eq!(
        value("vswitch_vip_owner{vip=\"web\",port=\"vm1\"}"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(value("vswitch_port_up{port=\"vm2\"}"), Some(1.0), "{body}");
    let (code, _) = http_get(addr, "/nope").expect("GET /nope");
    assert_eq!(code, 404);
    lab.finish();
}

#[test]
fn metrics_tap() {
    metrics(Backend::Tap);
}

#[test]
fn metrics_netdev() {
    metrics(Backend::Netdev);
}

// ---------------------------------------------------------------------------------------
// 7. A VM whose interface is down: frames for it are counted as port_down on its port
//    (regression: they used to be counted as tx_error)
// ---------------------------------------------------------------------------------------

#[test]
fn vm_link_down_counts_port_down_not_tx_error() {
    if !require_root() {
        return;
    }
    let b = Backend::Tap;
    let lab = Lab::new("lnkt", 207);
    lab.add_vm(VmSpec::new("vm1", b));
    lab.add_vm(VmSpec::new("vm2", b));
    lab.start();
    let (vm1, vm2) = (lab.vm("vm1"), lab.vm("vm2"));
    vm1.ping_ok(vm2.ip4, 2);
    let (pd0, tx0) = (lab.drops("vm2", "port_down"), lab.drops("vm2", "tx_error"));
    vm2.must(&format!("ip link set {} down", vm2.dev));
    // vm1 still has vm2 in its ARP cache: these reach the switch and go to vm2's tap.
    let _ = vm1.ping(vm2.ip4, 5);
    let (pd1, tx1) = (lab.drops("vm2", "port_down"), lab.drops("vm2", "tx_error"));
    assert!(
        pd1 >= pd0 + 3,
        "port_down on vm2 went {pd0} -> {pd1} (tx_error {tx0} -> {tx1})"
    );
    assert_eq!(tx1, tx0, "a link that is down is not a tx error");
    vm2.must(&format!("ip link set {} up", vm2.dev));
    vm1.ping_ok(vm2.ip4, 2);
    lab.finish();
}

// ---------------------------------------------------------------------------------------
// 8. `vswitch ctl watch --json` follows a VIP claimed by a guest and moved by the operator
// ---------------------------------------------------------------------------------------

/// The `vip_moved` events in a `ctl watch --json` output so far.
fn moved_events(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "vip_moved")
        .collect()
}

#[test]
fn ctl_watch_sees_vip_moves() {
    if !require_root() {
        return;
    }
    let b = Backend::Tap;
    let lab = Lab::new("evt", 208);
    for n in ["vm1", "vm2", "vm3"] {
        lab.add_vm(VmSpec::new(n, b));
    }
    let vip = lab.ip4(100);
    lab.set_extra_config(&web_vip(&[vip.into()]));
    lab.start();
    let sock = lab.socket.to_string_lossy().into_owned();
    let watch = lab.spawn_host(
        "watch",
        &[common::VSWITCH, "ctl", "watch", "--json", "--socket", &sock],
    );
    assert!(
        watch.wait_for_output("watching the events", Duration::from_secs(5)),
        "ctl watch did not start: {}",
        watch.output()
    );
    // a guest claims the VIP with one gratuitous ARP
    let vm1 = lab.vm("vm1");
    vm1.must(&format!("ip addr add {vip}/32 dev {}", vm1.dev));
    vm1.must(&format!("arping -c 1 -U -I {} {vip}", vm1.dev));
    lab.wait_vip_owners("web", &["vm1"], secs(2.0));
    // the operator moves it
    lab.ctl(&["vip", "move", "web", "vm2"]);
    let epoch = lab.vip("web")["epoch"].as_u64().unwrap();
    let read = || std::fs::read_to_string(&watch.out).unwrap_or_default();
    let by = |reason: &str| {
        moved_events(&read())
            .into_iter()
            .find(|m| m["reason"] == reason)
    };
    let seen = wait_until(secs(3.0), || by("claim").is_some() && by("admin").is_some());
    assert!(seen.is_some(), "ctl watch saw:\n{}", watch.output());
    let out = read();
    let claim = by("claim").unwrap();
    assert_eq!(claim["vip"], "web", "{claim}");
    assert_eq!(claim["to"], "vm1", "{claim}");
    assert_eq!(claim["mac"], vm1.mac.to_string(), "{claim}");
    let admin = by("admin").unwrap();
    assert_eq!(admin["from"], "vm1", "{admin}");
    assert_eq!(admin["to"], "vm2", "{admin}");
    assert_eq!(admin["reason"], "admin", "{admin}");
    assert_eq!(admin["epoch"].as_u64(), Some(epoch), "{admin}");
    // every line is one JSON object
    for l in out.lines() {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["event"].is_string(), "{l}");
    }
    // the stream ends when the switch stops
    lab.stop_switch();
    assert!(
        wait_until(secs(5.0), || !watch.running()).is_some(),
        "ctl watch still running after the switch stopped"
    );
    lab.finish();
}
