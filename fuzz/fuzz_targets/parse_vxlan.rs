//! Fuzz the VXLAN decapsulation (`wire::vxlan::decap`) and the classification of what it
//! lets through.
//!
//! The input is one UDP payload as the overlay's socket would receive it (the seed corpus is
//! the captured frames of the replay scenarios behind a VXLAN header, plus a few near
//! misses, see `fuzz/seed-corpus.sh`). For each input:
//! 1. `decap` must not panic; its error must render;
//! 2. on success the VNI fits in 24 bits, the inner frame is the input after the 8-byte
//!    header and at least an Ethernet header long, and re-encapsulating it gives the input
//!    back with the reserved bits cleared (they are ignored on receipt, RFC 7348 §5);
//! 3. the inner frame goes through `wire::parse`, which must not panic either;
//! 4. the whole payload goes through the worker's receive glue — the coalescer
//!    (`overlay::gro::Gro::feed`, twice: the second copy may join the first) and the
//!    daemon's overlay step (`forward::step_overlay_vnet`) for what it hands out — and, as
//!    a single datagram, through `forward::step_overlay`
//!    on a fixed cluster-mode switch (local vm1, vm2; host-b with vm3, the scenarios' third
//!    VM, so seeds from vm3 reach delivery; VNI 42 = VLAN 0, the seeds' VNI), as from
//!    host-b's VTEP and as from an unknown address: it must not panic, never answer, never
//!    send to another host (split horizon), and refuse the unknown address.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vip_table::{PortId, Timestamp};
use vswitch::config::Config;
use vswitch::control::Switch;
use vswitch::forward::{step_overlay, step_overlay_vnet, Recorder};
use vswitch::overlay::gro::Gro;
use vswitch::overlay::{Topology, TopologyHost, TopologyPort};
use vswitch::pipeline::{DropReason, Effects, Snapshot, Verdict};
use vswitch::wire::{self, vxlan};

const CONFIG: &str = r#"
[[port]]
name = "vm1"
tap = "fz-vm1"
mac = "02:00:00:00:00:01"
mtu = 1450
ips = ["10.0.0.1/24", "fd00::1/64"]

[[port]]
name = "vm2"
tap = "fz-vm2"
mac = "02:00:00:00:00:02"
mtu = 1450
ips = ["10.0.0.2/24", "fd00::2/64"]

[[vip]]
name = "web"
addresses = ["10.0.0.100", "fd00::100"]
mode = "active-passive"
candidates = ["vm1", "vm2"]

[cluster]
endpoints = ["http://10.250.0.11:2379"]
host = "host-a"
vtep = "10.250.1.1"
vlans = [{ vlan = 0, vni = 42 }]
"#;

const B_VTEP: [u8; 4] = [10, 250, 1, 2];

fn switch() -> &'static Snapshot {
    static SNAP: OnceLock<Snapshot> = OnceLock::new();
    SNAP.get_or_init(|| {
        let cfg = Config::from_toml_str(CONFIG).expect("fuzz config");
        let mut sw = Switch::new(cfg, Timestamp(0)).expect("fuzz switch");
        sw.set_topology(Topology {
            hosts: vec![TopologyHost {
                name: "host-b".into(),
                vtep: B_VTEP.into(),
            }],
            ports: vec![TopologyPort {
                name: "vm3".into(),
                host: "host-b".into(),
                mac: "02:00:00:00:00:03".parse().expect("mac"),
                ips: vec!["10.0.0.3".parse().expect("ip"), "fd00::3".parse().expect("ip")],
                allowed_address_pairs: vec![],
                vlan: 0,
            }],
        });
        (*sw.snapshot()).clone()
    })
}

fn overlay_step(data: &[u8]) {
    let snap = switch();
    let mut fx = Effects::default();
    let mut out = Recorder::default();
    let mut buf = data.to_vec();
    let v = step_overlay(snap, B_VTEP.into(), &mut buf, Timestamp(1), &mut fx, &mut out);
    assert!(
        !matches!(v, Verdict::Answered | Verdict::ToRemote { .. } | Verdict::ToSwitch),
        "{v:?} for a frame from another host"
    );
    assert!(out.sent_remote.is_empty(), "relayed to another host");
    assert!(fx.flood_remote.is_empty(), "replicated to another host");
    assert!(out.signals.is_empty(), "a frame from another host signalled");
    if let Verdict::Forward { port, .. } = v {
        assert!(port.index() < snap.ports.len(), "forward to {port:?}");
        assert_eq!(out.sent_to, vec![port]);
    }
    assert!(out.sent_to.iter().all(|p| *p != PortId(u32::MAX)));
    let mut buf = data.to_vec();
    let v = step_overlay(snap, [192, 0, 2, 1].into(), &mut buf, Timestamp(1), &mut fx, &mut out);
    assert_eq!(v, Verdict::Drop(DropReason::UnknownVtep));
}

/// The datagram twice through the coalescer, as the worker feeds a receive round: every
/// frame it hands out goes through the overlay step; two datagrams go in, so at most two
/// frames come out, and a joined one carries a GSO header.
fn coalesced(data: &[u8]) {
    let snap = switch();
    let mut gro = Gro::new();
    let mut fx = Effects::default();
    let mut out = Recorder::default();
    let mut frames = 0;
    let mut emit = |src: std::net::Ipv4Addr, p: &mut [u8], v: &vswitch::port::VnetHdr| {
        frames += 1;
        let _ = step_overlay_vnet(snap, src, p, v, Timestamp(1), &mut fx, &mut out);
    };
    for _ in 0..2 {
        let mut d = data.to_vec();
        gro.feed(B_VTEP.into(), &mut d, &mut emit);
    }
    gro.flush(&mut emit);
    assert!((1..=2).contains(&frames), "{frames} frames out of 2 datagrams");
    assert_eq!(gro.pending(), 0);
    assert!(out.sent_remote.is_empty(), "relayed to another host");
}

fuzz_target!(|data: &[u8]| {
    overlay_step(data);
    coalesced(data);
    match vxlan::decap(data) {
        Ok((vni, inner)) => {
            assert!(vni.get() <= vxlan::Vni::MAX, "VNI {vni} over 24 bits");
            assert!(inner.len() >= vxlan::MIN_INNER_LEN, "inner frame too short");
            assert_eq!(
                inner,
                &data[vxlan::HEADER_LEN..],
                "inner frame is not the rest"
            );
            let mut again = Vec::new();
            vxlan::encap_into(&mut again, vni, inner);
            let mut expected = data.to_vec();
            expected[0] = vxlan::FLAG_I;
            expected[1..4].fill(0);
            expected[7] = 0;
            assert_eq!(
                again, expected,
                "re-encapsulation differs beyond reserved bits"
            );
            let _ = wire::parse(inner);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
