#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;

use vip_table::{HostId, MacAddr, PortId, Timestamp};

use crate::config::Config;
use crate::control::Switch;
use crate::forward::{step, step_overlay, Recorder};
use crate::overlay::{Topology, TopologyHost, TopologyPair, TopologyPort};
use crate::pipeline::{process, process_overlay, DropReason, Effects, RxMeta, Verdict};
use crate::port::VnetHdr;
use crate::testutil::frames::{arp_request, garp, ip4, mac, ns, udp4, udp4_payload, vrrp3_v4};
use crate::wire::vxlan::{self, Vni};

const B_VTEP: Ipv4Addr = Ipv4Addr::new(10, 250, 1, 2);
const C_VTEP: Ipv4Addr = Ipv4Addr::new(10, 250, 1, 3);

fn vm1() -> MacAddr {
    mac("02:00:00:00:00:01")
}
fn vm2() -> MacAddr {
    mac("02:00:00:00:00:02")
}
fn far1() -> MacAddr {
    mac("02:00:00:00:0b:01")
}
fn far1_pair() -> MacAddr {
    mac("02:00:00:00:0b:02")
}
fn far2() -> MacAddr {
    mac("02:00:00:00:0c:01")
}

fn config(cluster: bool) -> Config {
    config_with(cluster, "")
}

fn config_with(cluster: bool, extra: &str) -> Config {
    let mut s = String::new();
    for n in 1..=2 {
        s.push_str(&format!(
            "[[port]]\nname = \"vm{n}\"\ntap = \"tap-vm{n}\"\nmac = \"02:00:00:00:00:0{n}\"\n\
             mtu = 1450\nips = [\"10.0.0.{n}/24\", \"fd00::{n}/64\"]\n\n"
        ));
    }
    s.push_str(extra);
    if cluster {
        s.push_str(
            "[cluster]\nendpoints = [\"http://10.250.0.11:2379\"]\nhost = \"host-a\"\n\
             vtep = \"10.250.1.1\"\nvlans = [{ vlan = 0, vni = 5000 }]\n",
        );
    }
    Config::from_toml_str(&s).unwrap()
}

fn host(name: &str, vtep: Ipv4Addr) -> TopologyHost {
    TopologyHost {
        name: name.into(),
        vtep,
    }
}

fn port(name: &str, host: &str, mac: MacAddr, ip: &str) -> TopologyPort {
    TopologyPort {
        name: name.into(),
        host: host.into(),
        mac,
        ips: vec![ip.parse().unwrap()],
        allowed_address_pairs: vec![],
        vlan: 0,
    }
}

/// host-a (this one) with vm1, vm2; host-b with far1 (a /32 and a /24 pair), host-c with
/// far2; plus records the table must ignore.
fn topology() -> Topology {
    let mut f1 = port("far1", "host-b", far1(), "10.0.0.11");
    f1.ips.push("fd00::11".parse().unwrap());
    f1.allowed_address_pairs = vec![
        TopologyPair {
            ip: "10.0.0.50/32".parse().unwrap(),
            mac: far1_pair(),
        },
        TopologyPair {
            ip: "10.0.1.0/24".parse().unwrap(),
            mac: far1(),
        },
    ];
    Topology {
        hosts: vec![
            host("host-a", Ipv4Addr::new(10, 250, 1, 1)),
            host("host-b", B_VTEP),
            host("host-c", C_VTEP),
        ],
        ports: vec![
            f1,
            port("far2", "host-c", far2(), "10.0.0.12"),
            // a local port's name: our own record coming back
            port("vm1", "host-b", mac("02:00:00:00:0e:01"), "10.0.0.61"),
            // a host that is not live
            port("gone1", "host-d", mac("02:00:00:00:0d:01"), "10.0.0.62"),
            // a VLAN without a VNI
            TopologyPort {
                vlan: 7,
                ..port("v7", "host-b", mac("02:00:00:00:07:01"), "10.0.7.1")
            },
        ],
    }
}

fn switch() -> Switch {
    let mut sw = Switch::new(config(true), Timestamp(0)).unwrap();
    assert_eq!(sw.set_topology(topology()), (2, 2));
    sw
}

fn vni() -> Vni {
    Vni::new(5000).unwrap()
}

fn encap(vni: Vni, inner: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    vxlan::encap_into(&mut v, vni, inner);
    v
}

#[test]
fn the_table_keeps_live_hosts_and_their_ports_with_the_vip_tables_host_ids() {
    let mut sw = switch();
    let b = sw.host_id("host-b");
    let c = sw.host_id("host-c");
    let snap = sw.snapshot();
    let ov = &snap.overlay;
    assert_eq!(ov.host_at(B_VTEP), Some(b));
    assert_eq!(ov.host_at(C_VTEP), Some(c));
    assert_eq!(
        ov.host_at(Ipv4Addr::new(10, 250, 1, 1)),
        None,
        "not ourselves"
    );
    assert_eq!(ov.port_by_mac(0, far1()).map(|p| p.host), Some(b));
    assert_eq!(
        ov.port_by_mac(0, far1_pair()).map(|p| p.name.as_str()),
        Some("far1")
    );
    assert!(
        ov.port_by_mac(0, mac("02:00:00:00:0e:01")).is_none(),
        "local name"
    );
    assert!(
        ov.port_by_mac(0, mac("02:00:00:00:0d:01")).is_none(),
        "dead host"
    );
    assert!(
        ov.port_by_mac(7, mac("02:00:00:00:07:01")).is_none(),
        "no VNI"
    );
    assert_eq!(ov.vlan_of(vni()), Some(0));
    assert_eq!(ov.inner_mtu, 1450, "default underlay 1500 - 50");

    // standalone: nothing, whatever the agent sends
    let mut alone = Switch::new(config(false), Timestamp(0)).unwrap();
    assert_eq!(alone.set_topology(topology()), (0, 0));
    assert!(!alone.snapshot().overlay.enabled());
}

#[test]
fn unicast_to_a_remote_port_goes_to_its_host_with_the_mac_unchanged() {
    let mut sw = switch();
    let b = sw.host_id("host-b");
    let snap = sw.snapshot();
    let mut fx = Effects::default();
    let mut f = udp4(vm1(), far1(), "10.0.0.1", "10.0.0.11", 40000, 5000, 32);
    let mut rec = Recorder::default();
    let v = step(
        &snap,
        PortId(0),
        &mut f,
        &VnetHdr::default(),
        Timestamp(1),
        &mut fx,
        &mut rec,
    );
    assert_eq!(
        v,
        Verdict::ToRemote {
            host: b,
            vlan: 0,
            mac: far1()
        }
    );
    assert_eq!(rec.sent_remote, vec![b]);
    assert!(rec.sent_to.is_empty());
    assert_eq!(&f[..6], &far1().0);
    // the source is checked here first: a spoofed source never reaches the overlay
    let spoof = udp4(vm1(), far1(), "10.0.0.99", "10.0.0.11", 40000, 5000, 32);
    let v = process(
        &snap,
        PortId(0),
        &spoof,
        RxMeta::default(),
        Timestamp(1),
        &mut fx,
    );
    assert_eq!(v, Verdict::Drop(DropReason::IpSpoof));
}

#[test]
fn broadcast_and_unknown_unicast_are_replicated_to_every_host_of_the_vlan() {
    let mut sw = switch();
    let (b, c) = (sw.host_id("host-b"), sw.host_id("host-c"));
    let snap = sw.snapshot();
    let mut fx = Effects::default();
    let mut rec = Recorder::default();
    let mut f = arp_request(vm1(), "10.0.0.1", "10.0.0.99");
    let v = step(
        &snap,
        PortId(0),
        &mut f,
        &VnetHdr::default(),
        Timestamp(1),
        &mut fx,
        &mut rec,
    );
    assert_eq!(v, Verdict::Flood);
    assert_eq!(rec.sent_to, vec![PortId(1)]);
    assert_eq!(rec.sent_remote, vec![b, c]);

    // unknown unicast: vm2's destination check refuses it, the other hosts still get it
    let unknown = mac("02:00:00:00:99:99");
    let f = udp4(vm1(), unknown, "10.0.0.1", "10.0.0.77", 40000, 5000, 32);
    let v = process(
        &snap,
        PortId(0),
        &f,
        RxMeta::default(),
        Timestamp(1),
        &mut fx,
    );
    assert_eq!(v, Verdict::Flood);
    assert!(fx.flood.is_empty());
    assert_eq!(fx.flood_remote.iter().collect::<Vec<_>>(), vec![b, c]);
}

#[test]
fn arp_and_ns_for_remote_fixed_ips_and_host_pairs_are_answered_locally_wider_pairs_are_not() {
    let sw = switch();
    let snap = sw.snapshot();
    let mut fx = Effects::default();
    for (tpa, want) in [
        ("10.0.0.11", far1()),
        ("10.0.0.50", far1_pair()),
        ("10.0.0.12", far2()),
    ] {
        let f = arp_request(vm1(), "10.0.0.1", tpa);
        let v = process(
            &snap,
            PortId(0),
            &f,
            RxMeta::default(),
            Timestamp(1),
            &mut fx,
        );
        assert_eq!(v, Verdict::Answered, "{tpa}");
        let r = fx.reply.unwrap();
        let facts = crate::wire::parse(r.as_bytes()).unwrap();
        let crate::wire::L3::Arp(a) = facts.l3 else {
            panic!("not ARP")
        };
        assert_eq!((a.op, a.sha, a.spa), (2, want, ip4(tpa)));
        assert_eq!(facts.dst, vm1());
    }
    // inside the /24 pair: not answered, broadcast (and replicated) instead
    let f = arp_request(vm1(), "10.0.0.1", "10.0.1.9");
    let v = process(
        &snap,
        PortId(0),
        &f,
        RxMeta::default(),
        Timestamp(1),
        &mut fx,
    );
    assert_eq!(v, Verdict::Flood);
    assert!(fx.reply.is_none());
    // IPv6 NS for far1's fixed address
    let ns = ns(vm1(), "fd00::1", "fd00::11", Some(vm1()));
    let v = process(
        &snap,
        PortId(0),
        &ns,
        RxMeta::default(),
        Timestamp(1),
        &mut fx,
    );
    assert_eq!(v, Verdict::Answered);
    let facts = crate::wire::parse(fx.reply.unwrap().as_bytes()).unwrap();
    assert_eq!(facts.src, far1());
}

#[test]
fn frames_from_other_hosts_are_checked_and_delivered_locally_only() {
    let sw = switch();
    let snap = sw.snapshot();
    let mut fx = Effects::default();
    let t = Timestamp(1);
    let m = RxMeta::default();
    let to_vm1 = udp4(far1(), vm1(), "10.0.0.11", "10.0.0.1", 40000, 5000, 32);
    // known unicast: vm1's port by the FDB
    let (h, v) = process_overlay(&snap, B_VTEP, vni(), &to_vm1, m, t, &mut fx);
    assert!(h.is_some());
    assert_eq!(
        v,
        Verdict::Forward {
            port: PortId(0),
            rewrite_dst: None
        }
    );
    // from an address that is no live host's VTEP
    let (h, v) = process_overlay(&snap, ip4("10.250.1.9"), vni(), &to_vm1, m, t, &mut fx);
    assert_eq!((h, v), (None, Verdict::Drop(DropReason::UnknownVtep)));
    // a VNI no VLAN is carried in
    let (_, v) = process_overlay(&snap, B_VTEP, Vni::new(77).unwrap(), &to_vm1, m, t, &mut fx);
    assert_eq!(v, Verdict::Drop(DropReason::UnknownVni));
    // far2 is host-c's: host-b may not send from its MAC
    let spoof = udp4(far2(), vm1(), "10.0.0.12", "10.0.0.1", 40000, 5000, 32);
    let (_, v) = process_overlay(&snap, B_VTEP, vni(), &spoof, m, t, &mut fx);
    assert_eq!(v, Verdict::Drop(DropReason::OverlaySpoof));
    // the receiving port's destination check
    let wrong = udp4(far1(), vm1(), "10.0.0.11", "10.0.0.77", 40000, 5000, 32);
    let (_, v) = process_overlay(&snap, B_VTEP, vni(), &wrong, m, t, &mut fx);
    assert_eq!(v, Verdict::Drop(DropReason::DestCheck));
    // broadcast: every local port of the VLAN, never another host (split horizon)
    let bc = arp_request(far1(), "10.0.0.11", "10.0.0.2");
    let (_, v) = process_overlay(&snap, B_VTEP, vni(), &bc, m, t, &mut fx);
    assert_eq!(v, Verdict::Flood);
    assert_eq!(
        fx.flood.iter().collect::<Vec<_>>(),
        vec![PortId(0), PortId(1)]
    );
    assert!(fx.flood_remote.is_empty());
    // nothing learned from the overlay
    assert_eq!(snap.fdb.lookup(0, far1(), t), None);
}

#[test]
fn the_overlay_step_counts_per_host_and_sends_to_local_ports() {
    let mut sw = switch();
    let b = sw.host_id("host-b");
    let snap = sw.snapshot();
    let mut fx = Effects::default();
    let mut rec = Recorder::default();
    let t = Timestamp(1);
    let inner = udp4(far1(), vm2(), "10.0.0.11", "10.0.0.2", 40000, 5000, 32);
    let mut d = encap(vni(), &inner);
    let v = step_overlay(&snap, B_VTEP, &mut d, t, &mut fx, &mut rec);
    assert!(matches!(
        v,
        Verdict::Forward {
            port: PortId(1),
            ..
        }
    ));
    assert_eq!(rec.sent_to, vec![PortId(1)]);
    assert!(rec.sent_remote.is_empty());
    let spoof = udp4(far2(), vm2(), "10.0.0.12", "10.0.0.2", 40000, 5000, 32);
    step_overlay(
        &snap,
        B_VTEP,
        &mut encap(vni(), &spoof),
        t,
        &mut fx,
        &mut rec,
    );
    step_overlay(
        &snap,
        B_VTEP,
        &mut encap(Vni::new(9).unwrap(), &inner),
        t,
        &mut fx,
        &mut rec,
    );
    step_overlay(&snap, ip4("192.0.2.1"), &mut d, t, &mut fx, &mut rec);
    step_overlay(&snap, B_VTEP, &mut [0u8; 4], t, &mut fx, &mut rec);
    let c = &snap.overlay.host(b).unwrap().counters;
    let vals = c.values();
    assert_eq!(vals.rx_frames, 3);
    assert_eq!(vals.rx_bytes, (inner.len() * 2 + spoof.len()) as u64);
    assert_eq!(c.drop_count(DropReason::OverlaySpoof), 1);
    assert_eq!(c.drop_count(DropReason::UnknownVni), 1);
    assert_eq!(c.drop_count(DropReason::Malformed), 1);
    assert_eq!(
        snap.overlay.counters.unknown_vtep.load(Ordering::Relaxed),
        1
    );
    assert_eq!(
        rec.sent_to,
        vec![PortId(1)],
        "only the good frame was delivered"
    );
    // the receiving port counted its tx
    assert_eq!(snap.counters[1].tx_frames.load(Ordering::Relaxed), 1);
}

#[test]
fn a_tenants_vxlan_datagram_is_a_plain_frame_never_decapsulated() {
    let sw = switch();
    let snap = sw.snapshot();
    let mut fx = Effects::default();
    // vm1 wraps a frame "from far1" in VXLAN and sends it to vm2 on UDP 4789
    let inner = udp4(far1(), vm2(), "10.0.0.11", "10.0.0.2", 40000, 5000, 32);
    let mut f = udp4_payload(
        vm1(),
        vm2(),
        "10.0.0.1",
        "10.0.0.2",
        40000,
        vxlan::UDP_PORT,
        &encap(vni(), &inner),
    );
    let before = f.clone();
    let mut rec = Recorder::default();
    let v = step(
        &snap,
        PortId(0),
        &mut f,
        &VnetHdr::default(),
        Timestamp(1),
        &mut fx,
        &mut rec,
    );
    assert_eq!(
        v,
        Verdict::Forward {
            port: PortId(1),
            rewrite_dst: None
        }
    );
    assert_eq!(f, before, "delivered unchanged, as UDP");
    assert!(rec.sent_remote.is_empty());
}

#[test]
fn a_host_that_left_is_cut_off_at_once() {
    let mut sw = switch();
    let mut t = topology();
    t.hosts.retain(|h| h.name != "host-b");
    assert_eq!(sw.set_topology(t), (1, 1));
    let snap = sw.snapshot();
    let mut fx = Effects::default();
    let to_vm1 = udp4(far1(), vm1(), "10.0.0.11", "10.0.0.1", 40000, 5000, 32);
    let (_, v) = process_overlay(
        &snap,
        B_VTEP,
        vni(),
        &to_vm1,
        RxMeta::default(),
        Timestamp(1),
        &mut fx,
    );
    assert_eq!(v, Verdict::Drop(DropReason::UnknownVtep));
    // far1's MAC is unknown now: flooded locally and to host-c only
    let f = udp4(vm1(), far1(), "10.0.0.1", "10.0.0.11", 40000, 5000, 32);
    let v = process(
        &snap,
        PortId(0),
        &f,
        RxMeta::default(),
        Timestamp(1),
        &mut fx,
    );
    assert_eq!(v, Verdict::Flood);
    assert_eq!(
        fx.flood_remote.iter().collect::<Vec<_>>(),
        vec![sw.host_id("host-c")]
    );
    let _ = HostId(0);
}

#[test]
fn the_metrics_show_per_host_traffic_and_drops() {
    let mut sw = switch();
    let snap = sw.snapshot();
    let mut fx = Effects::default();
    let mut rec = Recorder::default();
    let t = Timestamp(1);
    let inner = udp4(far1(), vm2(), "10.0.0.11", "10.0.0.2", 40000, 5000, 32);
    step_overlay(
        &snap,
        B_VTEP,
        &mut encap(vni(), &inner),
        t,
        &mut fx,
        &mut rec,
    );
    let spoof = udp4(far2(), vm2(), "10.0.0.12", "10.0.0.2", 40000, 5000, 32);
    step_overlay(
        &snap,
        B_VTEP,
        &mut encap(vni(), &spoof),
        t,
        &mut fx,
        &mut rec,
    );
    step_overlay(
        &snap,
        ip4("192.0.2.1"),
        &mut encap(vni(), &inner),
        t,
        &mut fx,
        &mut rec,
    );
    // a send the tunnel took is counted on the host
    let f = udp4(vm1(), far2(), "10.0.0.1", "10.0.0.12", 40000, 5000, 32);
    struct Tunnel;
    impl crate::forward::Output for Tunnel {
        fn send(
            &mut self,
            _: PortId,
            _: &[u8],
            _: &VnetHdr,
        ) -> Option<Result<(), crate::port::PortError>> {
            Some(Ok(()))
        }
        fn signal(&mut self, _: crate::forward::Signal, _: Timestamp) {}
        fn send_remote(
            &mut self,
            _: HostId,
            _: u16,
            _: &[u8],
            _: &VnetHdr,
        ) -> Option<Result<(), crate::port::PortError>> {
            Some(Ok(()))
        }
    }
    step(
        &snap,
        PortId(0),
        &mut f.clone(),
        &VnetHdr::default(),
        t,
        &mut fx,
        &mut Tunnel,
    );
    let m = crate::metrics::render(&sw, t);
    for line in [
        "vswitch_overlay_rx_frames_total{host=\"host-b\"} 2\n",
        format!(
            "vswitch_overlay_rx_bytes_total{{host=\"host-b\"}} {}\n",
            inner.len() + spoof.len()
        )
        .as_str(),
        "vswitch_overlay_rx_drops_total{host=\"host-b\",reason=\"overlay_spoof\"} 1\n",
        "vswitch_overlay_rx_drops_total{host=\"host-b\",reason=\"unknown_vni\"} 0\n",
        "vswitch_overlay_tx_frames_total{host=\"host-c\"} 1\n",
        format!(
            "vswitch_overlay_tx_bytes_total{{host=\"host-c\"}} {}\n",
            f.len()
        )
        .as_str(),
        "vswitch_overlay_host_up{host=\"host-b\"} 1\n",
        "vswitch_overlay_unknown_vtep_total 1\n",
    ] {
        assert!(m.contains(line), "missing {line:?} in\n{m}");
    }
    // host-b leaves: its counters stay, it is no longer up
    let mut t2 = topology();
    t2.hosts.retain(|h| h.name != "host-b");
    sw.set_topology(t2);
    let m = crate::metrics::render(&sw, t);
    assert!(
        m.contains("vswitch_overlay_host_up{host=\"host-b\"} 0\n"),
        "{m}"
    );
    // standalone: no overlay families
    let alone = Switch::new(config(false), Timestamp(0)).unwrap();
    assert!(!crate::metrics::render(&alone, t).contains("vswitch_overlay_"));
}

#[test]
fn vrrp_adverts_cross_only_to_hosts_with_a_candidate_of_the_senders_groups() {
    let vip = "[[vip]]\nname = \"web\"\naddresses = [\"10.0.0.100\"]\n\
               mode = \"active-passive\"\ncandidates = [\"vm1\"]\n\n";
    let mut sw = Switch::new(config_with(true, vip), Timestamp(0)).unwrap();
    sw.set_topology(topology());
    assert!(sw.add_remote_candidate("web", "host-b", "far1").unwrap());
    let b = sw.host_id("host-b");
    let snap = sw.snapshot();
    let mut fx = Effects::default();
    let t = Timestamp(1);
    let m = RxMeta::default();
    // from the local candidate vm1: no local peer, host-b (far1's host) only, not host-c
    let f = vrrp3_v4(vm1(), "10.0.0.1", 7, 100, "10.0.0.100");
    let v = process(&snap, PortId(0), &f, m, t, &mut fx);
    assert_eq!(v, Verdict::Flood);
    assert!(fx.flood.is_empty());
    assert_eq!(fx.flood_remote.iter().collect::<Vec<_>>(), vec![b]);
    // from the non-candidate vm2: stays on this host (and here nobody else is a
    // non-candidate)
    let f = vrrp3_v4(vm2(), "10.0.0.2", 7, 100, "10.0.0.100");
    let v = process(&snap, PortId(1), &f, m, t, &mut fx);
    assert_eq!(v, Verdict::Drop(DropReason::NoEgress));
    assert!(fx.flood_remote.is_empty());
    // from host-b, sent from the virtual MAC: to the local candidate vm1 only
    let vmac = mac("00:00:5e:00:01:07");
    let f = vrrp3_v4(vmac, "10.0.0.11", 7, 100, "10.0.0.100");
    let (_, v) = process_overlay(&snap, B_VTEP, vni(), &f, m, t, &mut fx);
    assert_eq!(v, Verdict::Flood);
    assert_eq!(fx.flood.iter().collect::<Vec<_>>(), vec![PortId(0)]);
    // host-c has no candidate: its virtual MAC is no MAC of its ports
    let (_, v) = process_overlay(&snap, C_VTEP, vni(), &f, m, t, &mut fx);
    assert_eq!(v, Verdict::Drop(DropReason::OverlaySpoof));
    // and unicast from host-b to the VIP owned here is steered to the owner, MAC rewritten
    let mut fx2 = Effects::default();
    let claim = garp(vm1(), "10.0.0.100");
    let _ = process(&snap, PortId(0), &claim, m, t, &mut fx2);
    sw.apply(&fx2, t, &mut Vec::new());
    let snap = sw.snapshot();
    let to_vip = udp4(
        far1(),
        mac("02:00:00:00:aa:aa"),
        "10.0.0.11",
        "10.0.0.100",
        40000,
        80,
        32,
    );
    let (_, v) = process_overlay(&snap, B_VTEP, vni(), &to_vip, m, t, &mut fx);
    assert_eq!(
        v,
        Verdict::Forward {
            port: PortId(0),
            rewrite_dst: Some(vm1())
        }
    );
}

#[test]
fn a_frame_the_sending_host_steered_to_a_local_active_active_owner_goes_to_it() {
    // web: active-active, owners vm1 here and far1 on host-b. host-c's switch picked vm1
    // for these flows and rewrote the MAC; this host hashes owners by ids of its own and
    // would pick far1 for some of them, which it may not relay (split horizon): the
    // sender's choice must stand
    let vips = "[[vip]]\nname = \"web\"\naddresses = [\"10.0.0.100\"]\nmode = \"active-active\"\n\
                candidates = [\"vm1\"]\n\n";
    let mut sw = Switch::new(config_with(true, vips), Timestamp(0)).unwrap();
    sw.set_topology(topology());
    assert!(sw.add_remote_candidate("web", "host-b", "far1").unwrap());
    let owners = [
        crate::control::remote::RemoteOwnerRecord {
            host: "host-a",
            port: "vm1",
            mac: vm1(),
            mac6: vm1(),
        },
        crate::control::remote::RemoteOwnerRecord {
            host: "host-b",
            port: "far1",
            mac: far1(),
            mac6: far1(),
        },
    ];
    let stamp = vip_table::Stamp {
        epoch: 1,
        revision: 5,
    };
    let mut out = Vec::new();
    sw.apply_remote_owners("web", &owners, stamp, Timestamp(1), &mut out)
        .unwrap();
    let snap = sw.snapshot();
    let (_, g) = snap
        .vips
        .lookup_group("10.0.0.100".parse().unwrap())
        .unwrap();
    assert_eq!((g.owners().len(), g.remote_owners().len()), (1, 1));
    let mut fx = Effects::default();
    let mut remote_picks = 0;
    for dport in 1000..1064 {
        let f = udp4(far2(), vm1(), "10.0.0.12", "10.0.0.100", 40000, dport, 32);
        let (_, v) = process_overlay(
            &snap,
            C_VTEP,
            vni(),
            &f,
            RxMeta::default(),
            Timestamp(2),
            &mut fx,
        );
        assert_eq!(
            v,
            Verdict::Forward {
                port: PortId(0),
                rewrite_dst: None
            },
            "flow from port {dport}"
        );
        let ipf = crate::wire::parse(&f).unwrap();
        if let Some(vip_table::Selected::Remote(_)) = ipf.ip().and_then(|i| g.select(i.flow_hash()))
        {
            remote_picks += 1;
        }
    }
    assert!(
        remote_picks > 0,
        "the test flows would have been re-steered to far1"
    );
}
