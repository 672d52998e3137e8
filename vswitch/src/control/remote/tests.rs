#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;

use vip_table::{MoveReason, PortId, StaleReason};

use super::*;
use crate::config::Config;
use crate::control::SwitchEvent;
use crate::forward::{step, Recorder};
use crate::pipeline::{process, Effects, RxMeta, Verdict, VipSignal};
use crate::port::VnetHdr;
use crate::testutil::frames::{arp_request, mac, ns, udp4, udp6};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const VIP6: &str = "fd00::100";

fn far_mac() -> MacAddr {
    mac("02:00:00:00:0b:01")
}

fn far_mac6() -> MacAddr {
    mac("02:00:00:00:0b:06")
}

/// vm1 and vm2 are local candidates of `web` (vm1 owns it), vm3 is a client; `far1` on
/// host-b is a remote candidate.
fn switch() -> Switch {
    let mut s = String::new();
    for n in 1..=3 {
        s.push_str(&format!(
            "[[port]]\nname = \"vm{n}\"\ntap = \"tap-vm{n}\"\nmac = \"02:00:00:00:00:0{n}\"\n\
             ips = [\"10.0.0.{n}/24\", \"fd00::{n}/64\"]\n\n"
        ));
    }
    s.push_str(
        "[[vip]]\nname = \"web\"\naddresses = [\"10.0.0.100\", \"fd00::100\"]\n\
         mode = \"active-passive\"\ncandidates = [\"vm1\", \"vm2\"]\nowner = \"vm1\"\n",
    );
    let mut sw = Switch::new(Config::from_toml_str(&s).unwrap(), Timestamp(0)).unwrap();
    assert!(sw.add_remote_candidate("web", "host-b", "far1").unwrap());
    sw
}

fn far1() -> RemoteOwnerRecord<'static> {
    RemoteOwnerRecord {
        host: "host-b",
        port: "far1",
        mac: far_mac(),
        mac6: far_mac6(),
    }
}

fn st(epoch: u64, revision: u64) -> Stamp {
    Stamp { epoch, revision }
}

fn t(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn moved_to_far1(sw: &mut Switch) -> Vec<Outbound> {
    let mut out = Vec::new();
    let r = sw
        .apply_remote_owner("web", far1(), st(5, 10), t(1), &mut out)
        .unwrap();
    let RemoteOutcome::Applied(Some(m)) = r else {
        panic!("{r:?}")
    };
    assert_eq!((m.from, m.reason), (Some(PortId(0)), MoveReason::Remote));
    out
}

#[test]
fn a_remote_move_is_an_event_and_announced_locally() {
    let mut sw = switch();
    sw.take_events();
    let out = moved_to_far1(&mut sw);
    let ev = sw.take_events();
    assert!(
        ev.iter().any(|e| matches!(e,
            SwitchEvent::VipMoved { from: Some(f), to: Some(to), remote: true, host: Some(h), .. }
                if f == "vm1" && to == "far1" && h == "host-b")),
        "{ev:?}"
    );
    // one GARP and one NA to the client vm3, with the remote owner's MACs
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|o| o.port == PortId(2)));
    let srcs: Vec<[u8; 6]> = out
        .iter()
        .map(|o| o.frame.as_bytes()[6..12].try_into().unwrap())
        .collect();
    assert_eq!(srcs, vec![far_mac().0, far_mac6().0]);
    let g = sw.vips().group(VipId(0)).unwrap();
    assert!(g.owners().is_empty() && g.has_owner());
    assert!(!sw.snapshot().vips.owns(PortId(0), IpAddr::V4(VIP)));
}

#[test]
fn frames_to_a_remotely_owned_vip_go_to_its_host_with_the_mac_rewritten() {
    let mut sw = switch();
    moved_to_far1(&mut sw);
    let host = sw.host_id("host-b");
    let snap = sw.snapshot();
    // a client with a stale cache (vm1's MAC) and one that asks nobody (vm2's)
    for stale in ["02:00:00:00:00:01", "02:00:00:00:00:02"] {
        let f = udp4(
            mac("02:00:00:00:00:03"),
            mac(stale),
            Ipv4Addr::new(10, 0, 0, 3),
            VIP,
            40000,
            5000,
            32,
        );
        let mut fx = Effects::default();
        let v = process(&snap, PortId(2), &f, RxMeta::default(), t(2), &mut fx);
        assert_eq!(
            v,
            Verdict::ToRemote {
                host,
                vlan: 0,
                mac: far_mac()
            }
        );
    }
    let f = udp6(
        mac("02:00:00:00:00:03"),
        mac("02:00:00:00:00:01"),
        "fd00::3",
        VIP6,
        40000,
        5000,
        32,
    );
    let mut fx = Effects::default();
    let v = process(&snap, PortId(2), &f, RxMeta::default(), t(2), &mut fx);
    assert_eq!(
        v,
        Verdict::ToRemote {
            host,
            vlan: 0,
            mac: far_mac6()
        },
        "the IPv6 MAC for IPv6"
    );
    // the forwarding step rewrites the MAC, hands the frame to the overlay hook, counts it
    let mut f = udp4(
        mac("02:00:00:00:00:03"),
        mac("02:00:00:00:00:01"),
        Ipv4Addr::new(10, 0, 0, 3),
        VIP,
        40000,
        5000,
        32,
    );
    let mut rec = Recorder::default();
    let mut fx = Effects::default();
    step(
        &snap,
        PortId(2),
        &mut f,
        &VnetHdr::default(),
        t(2),
        &mut fx,
        &mut rec,
    );
    assert_eq!(f[..6], far_mac().0);
    assert_eq!(rec.sent_remote, vec![host]);
    assert!(rec.sent_to.is_empty());
    let c = sw.counters(PortId(2)).unwrap();
    assert_eq!(c.to_remote.load(Ordering::Relaxed), 1);
    assert_eq!(c.remote_no_tunnel.load(Ordering::Relaxed), 1);
    assert_eq!(sw.host_name(host), "host-b");
}

#[test]
fn arp_and_ns_for_a_remotely_owned_vip_are_answered_with_the_remote_mac() {
    let mut sw = switch();
    moved_to_far1(&mut sw);
    let snap = sw.snapshot();
    let client = mac("02:00:00:00:00:03");
    let req = arp_request(client, "10.0.0.3", VIP);
    let mut fx = Effects::default();
    let v = process(&snap, PortId(2), &req, RxMeta::default(), t(2), &mut fx);
    assert_eq!(v, Verdict::Answered);
    let reply = fx.reply.unwrap();
    // ARP sender hardware address: after the 14-byte header and 8 bytes of ARP
    assert_eq!(reply.as_bytes()[22..28], far_mac().0);
    let ns = ns(client, "fd00::3", VIP6, Some(client));
    let mut fx = Effects::default();
    let v = process(&snap, PortId(2), &ns, RxMeta::default(), t(2), &mut fx);
    assert_eq!(v, Verdict::Answered);
    assert_eq!(fx.reply.unwrap().as_bytes()[6..12], far_mac6().0);
}

#[test]
fn stale_records_and_non_candidates_are_refused() {
    let mut sw = switch();
    moved_to_far1(&mut sw);
    let gen = sw.snapshot().generation;
    let mut out = Vec::new();
    let r = sw
        .apply_remote_owner("web", far1(), st(4, 9), t(2), &mut out)
        .unwrap();
    assert!(matches!(
        r,
        RemoteOutcome::Stale {
            reason: StaleReason::Older,
            ..
        }
    ));
    let evil = RemoteOwnerRecord {
        host: "host-c",
        port: "evil",
        ..far1()
    };
    let r = sw
        .apply_remote_owner("web", evil, st(9, 20), t(2), &mut out)
        .unwrap();
    assert!(matches!(r, RemoteOutcome::NotACandidate { .. }), "{r:?}");
    // far1 is a candidate on host-b, not on host-c
    let moved = RemoteOwnerRecord {
        host: "host-c",
        ..far1()
    };
    let r = sw
        .apply_remote_owner("web", moved, st(9, 20), t(2), &mut out)
        .unwrap();
    assert!(matches!(r, RemoteOutcome::NotACandidate { .. }), "{r:?}");
    assert!(out.is_empty());
    assert_eq!(sw.snapshot().generation, gen, "nothing published");
    assert!(matches!(
        sw.apply_remote_owner("nope", far1(), st(9, 20), t(2), &mut out),
        Err(ControlError::UnknownVip(_))
    ));
    assert!(matches!(
        sw.add_remote_candidate("web", "host-b", "vm3"),
        Err(ControlError::LocalPort(_))
    ));
}

#[test]
fn a_local_claim_after_a_remote_owner_is_written_to_the_store() {
    let mut sw = switch();
    moved_to_far1(&mut sw);
    assert!(sw.cluster_writes().is_empty());
    let mut out = Vec::new();
    let fx = Effects {
        vip: Some(VipSignal::Claim {
            vip: VipId(0),
            addr: IpAddr::V4(VIP),
            port: PortId(1),
            mac: mac("02:00:00:00:00:02"),
        }),
        ..Default::default()
    };
    assert!(sw.apply(&fx, t(3), &mut out));
    assert!(!out.is_empty(), "the usual local announcement");
    let w = sw.cluster_writes();
    assert_eq!(w.len(), 1);
    let epoch = sw.vips().group(VipId(0)).unwrap().epoch();
    assert_eq!(
        w[0],
        ClusterWrite {
            vip: "web".into(),
            epoch,
            base_revision: Some(10),
            owners: vec![NamedOwner {
                port: "vm2".into(),
                host: None,
                mac: mac("02:00:00:00:00:02"),
                mac6: mac("02:00:00:00:00:02"),
            }],
        }
    );
    let ev = sw.take_events();
    assert!(ev.iter().any(|e| matches!(e,
        SwitchEvent::VipMoved { from: Some(f), to: Some(to), remote: false, host: Some(h), .. }
            if f == "far1" && to == "vm2" && h == "host-b")));
    assert_eq!(
        sw.confirm_write("web", st(epoch, 11)).unwrap(),
        RemoteOutcome::Applied(None)
    );
    assert!(sw.cluster_writes().is_empty());
    // the watch brings our own write back: nothing changes
    let mut out = Vec::new();
    let r = sw
        .apply_remote_owner(
            "web",
            RemoteOwnerRecord {
                host: "host-a",
                port: "vm2",
                mac: mac("02:00:00:00:00:02"),
                mac6: mac("02:00:00:00:00:02"),
            },
            st(epoch, 11),
            t(4),
            &mut out,
        )
        .unwrap();
    assert!(matches!(
        r,
        RemoteOutcome::Stale {
            reason: StaleReason::Duplicate,
            ..
        }
    ));
    assert!(out.is_empty());
}

#[test]
fn host_gone_leaves_the_group_ownerless_and_starts_discovery() {
    let mut sw = switch();
    moved_to_far1(&mut sw);
    sw.take_events();
    let mut out = Vec::new();
    assert!(sw.host_gone("host-unknown", t(5), &mut out).is_empty());
    let moves = sw.host_gone("host-b", t(5), &mut out);
    assert_eq!(moves.len(), 1);
    assert_eq!(moves[0].1.reason, MoveReason::HostGone);
    let g = sw.vips().group(VipId(0)).unwrap();
    assert!(!g.has_owner() && g.remote_candidates().is_empty());
    let ev = sw.take_events();
    assert!(ev
        .iter()
        .any(|e| matches!(e, SwitchEvent::VipMoved { remote: true, .. })));
    assert!(
        ev.iter()
            .any(|e| matches!(e, SwitchEvent::VipDiscovery { .. })),
        "{ev:?}"
    );
    assert!(
        sw.cluster_writes().is_empty(),
        "nobody writes a lease expiry"
    );
    // with no owner, the snapshot steers nothing remote any more
    let snap = sw.snapshot();
    let f = udp4(
        mac("02:00:00:00:00:03"),
        mac("02:00:00:00:00:01"),
        Ipv4Addr::new(10, 0, 0, 3),
        VIP,
        40000,
        5000,
        32,
    );
    let mut fx = Effects::default();
    let v = process(&snap, PortId(2), &f, RxMeta::default(), t(6), &mut fx);
    assert!(!matches!(v, Verdict::ToRemote { .. }), "{v:?}");
}

#[test]
fn no_discovery_for_a_group_owned_on_another_host() {
    let mut sw = switch();
    moved_to_far1(&mut sw);
    let mut out = Vec::new();
    // a candidate's port coming up starts discovery...
    sw.set_port_oper(PortId(1), false, t(2), &mut out);
    sw.set_port_oper(PortId(1), true, t(3), &mut out);
    out.clear();
    // ...which asks nobody: the store says where the owner is
    for ms in [3, 200, 1_000, 40_000] {
        sw.tick(t(ms), &mut out);
    }
    assert!(out.is_empty(), "{} probes sent", out.len());
    assert!(sw.discovering().is_empty());
}
