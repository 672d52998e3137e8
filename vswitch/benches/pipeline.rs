//! Criterion benchmark of the pure forwarding decision, `pipeline::process`, per frame class.
//!
//! Setup (built through the public API, see docs/benchmarks.md and `common/scale.rs`): at
//! each of three sizes (ports, A/P VIP groups, learned MACs) = (16, 100, 1k),
//! (256, 10k, 64k), (1024, 100k, 1M); `VSWITCH_SCALES=small,medium,large` picks some.
//! Ports in VLANs of 16, each with a MAC, a fixed IPv4 and IPv6 address, every 16th with
//! an allowed-address-pair; A/P groups with 2 candidates, 1 in 10 owned; 8 A/A groups with
//! 3 owners; the MACs learned `now - 1 s`, so that no frame needs a refresh (steady state).
//! Benchmark ids: `process/<size>/<class>` and `parts/<size>/<part>`.
//!
//! Every frame is pre-built and its verdict checked once before it is measured; one
//! `Effects` is reused across iterations and nothing is applied.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vip_table::{PortId, Timestamp};
use vswitch::config::Config;
use vswitch::control::Switch;
use vswitch::pipeline::{process, DropReason, Effects, RxMeta, Verdict};
use vswitch::testutil::frames::{arp_request, garp, ns, udp4, udp6};
use vswitch::wire;

#[path = "common/scale.rs"]
mod scale;

use scale::{
    aa_ip4, ap_ip4, ap_ip6, ap_owned, has_pair, learned_mac, pair_mac, pair_net, port_ip4,
    port_ip6, port_mac, vlan_of, Scale, PORTS_PER_VLAN,
};

/// The UDP ports of every measured datagram.
const SPORT: u16 = 40000;
const DPORT: u16 = 5000;

/// One measured frame class.
struct Case {
    name: &'static str,
    ingress: PortId,
    frame: Vec<u8>,
    check: fn(&Verdict, &Effects) -> bool,
}

fn forward(v: &Verdict, fx: &Effects) -> bool {
    matches!(
        v,
        Verdict::Forward {
            rewrite_dst: None,
            ..
        }
    ) && fx.learn.is_none()
}
fn forward_rewrite(v: &Verdict, fx: &Effects) -> bool {
    matches!(
        v,
        Verdict::Forward {
            rewrite_dst: Some(_),
            ..
        }
    ) && fx.learn.is_none()
}
fn flood(v: &Verdict, fx: &Effects) -> bool {
    matches!(v, Verdict::Flood if fx.flood.len() == PORTS_PER_VLAN - 1) && fx.learn.is_none()
}
fn answered(v: &Verdict, fx: &Effects) -> bool {
    *v == Verdict::Answered && fx.reply.is_some()
}
fn ip_spoof(v: &Verdict, _: &Effects) -> bool {
    *v == Verdict::Drop(DropReason::IpSpoof)
}
fn malformed(v: &Verdict, fx: &Effects) -> bool {
    *v == Verdict::Drop(DropReason::Malformed) && fx.malformed.is_some()
}
fn garp_claim(v: &Verdict, fx: &Effects) -> bool {
    flood(v, fx) && matches!(fx.vip, Some(vswitch::pipeline::VipSignal::Claim { .. }))
}

fn setup(sc: &Scale) -> (Switch, Timestamp, Vec<Case>) {
    let t0 = Timestamp::from_secs(1_000);
    let now = t0 + Duration::from_secs(1);
    let cfg = Config::from_toml_str(&sc.config_toml()).expect("bench config is valid");
    let sw = Switch::new(cfg, t0).expect("switch");
    sc.learn_all(&sw, t0);
    assert_eq!(sw.fdb().learned_len(), sc.learned_total());

    // Every case's ports are in one VLAN (the third, or the only one): ports base..base+16.
    let base = sc.case_vlan() * PORTS_PER_VLAN;
    let pid = |i: usize| PortId(i as u32);
    let mut cases = Vec::new();

    // 1. Known unicast UDP/IPv4, learned source (pair MAC of port 32) to a learned MAC
    //    behind port 33 at its fixed IP. 64-byte payload.
    let (a, b) = (base, base + 1);
    let dst_mac = learned_mac(
        (0..sc.macs)
            .find(|n| sc.learned_port(*n) == b)
            .expect("mac"),
    );
    let mut sip = pair_net(a).octets();
    sip[3] = 7;
    cases.push(Case {
        name: "unicast_udp4",
        ingress: pid(a),
        frame: udp4(pair_mac(a), dst_mac, sip, port_ip4(b), SPORT, DPORT, 64),
        check: forward,
    });

    // 2. Known unicast UDP/IPv6 between two port MACs (static entries).
    let (a, b) = (base + 2, base + 3);
    cases.push(Case {
        name: "unicast_udp6",
        ingress: pid(a),
        frame: udp6(
            port_mac(a),
            port_mac(b),
            port_ip6(a),
            port_ip6(b),
            SPORT,
            DPORT,
            64,
        ),
        check: forward,
    });

    // 3. Broadcast ARP request for a neighbour: flooded to the other 15 ports of the VLAN.
    let (a, b) = (base + 4, base + 5);
    cases.push(Case {
        name: "arp_broadcast_flood",
        ingress: pid(a),
        frame: arp_request(port_mac(a), port_ip4(a), port_ip4(b)),
        check: flood,
    });

    // An owned A/P group in VLAN 10 (ports 0..16) and a non-candidate client there.
    let k = (0..sc.groups)
        .find(|&k| {
            ap_owned(k) && k > sc.groups / 2 && sc.ap_candidates(k)[0] / PORTS_PER_VLAN == base / 16
        })
        .expect("group");
    let [owner, standby] = sc.ap_candidates(k);
    let client = (base..base + PORTS_PER_VLAN)
        .find(|&i| i != owner && i != standby && !has_pair(i))
        .expect("client");

    // 4. ARP request for the VIP from a non-candidate: answered with the owner's MAC.
    cases.push(Case {
        name: "arp_vip_answered",
        ingress: pid(client),
        frame: arp_request(port_mac(client), port_ip4(client), ap_ip4(k)),
        check: answered,
    });

    // 4b. The IPv6 equivalent: NS for the VIP's IPv6 address, answered with an NA.
    cases.push(Case {
        name: "ns_vip_answered",
        ingress: pid(client),
        frame: ns(
            port_mac(client),
            port_ip6(client),
            ap_ip6(k),
            Some(port_mac(client)),
        ),
        check: answered,
    });

    // 5. Unicast UDP to the A/P VIP, addressed to the standby's MAC (a stale neighbour
    //    entry): steered to the owner with a MAC rewrite.
    cases.push(Case {
        name: "udp4_to_ap_vip",
        ingress: pid(client),
        frame: udp4(
            port_mac(client),
            port_mac(standby),
            port_ip4(client),
            ap_ip4(k),
            SPORT,
            DPORT,
            64,
        ),
        check: forward_rewrite,
    });

    // 6. Unicast UDP to an A/A VIP at its virtual MAC: rendezvous hash over 3 owners.
    let aa = sc.case_vlan();
    let aa_mac = vswitch::config::derived_virtual_mac(&format!("aa{aa}"));
    let aa_client = (base..base + PORTS_PER_VLAN)
        .find(|i| !sc.aa_candidates(aa).contains(i) && !has_pair(*i))
        .expect("client");
    cases.push(Case {
        name: "udp4_to_aa_vip",
        ingress: pid(aa_client),
        frame: udp4(
            port_mac(aa_client),
            aa_mac,
            port_ip4(aa_client),
            aa_ip4(aa),
            SPORT,
            DPORT,
            64,
        ),
        check: forward_rewrite,
    });

    // 7. IP spoof: a VM sends from its neighbour's address.
    let (a, b) = (base + 8, base + 9);
    cases.push(Case {
        name: "drop_ip_spoof",
        ingress: pid(a),
        frame: udp4(
            port_mac(a),
            port_mac(b),
            port_ip4(b),
            port_ip4(b),
            SPORT,
            DPORT,
            64,
        ),
        check: ip_spoof,
    });

    // 8. Malformed: IPv4 total length larger than the frame.
    let mut bad = udp4(
        port_mac(a),
        port_mac(b),
        port_ip4(a),
        port_ip4(b),
        SPORT,
        DPORT,
        64,
    );
    bad[16..18].copy_from_slice(&1400u16.to_be_bytes());
    cases.push(Case {
        name: "drop_malformed",
        ingress: pid(a),
        frame: bad,
        check: malformed,
    });

    // 9. GARP from the current owner of the A/P VIP: claim (refresh), flooded.
    cases.push(Case {
        name: "garp_owner_claim",
        ingress: pid(owner),
        frame: garp(port_mac(owner), ap_ip4(k)),
        check: garp_claim,
    });

    // Sanity: every case yields the verdict it is meant to measure.
    let snap = sw.snapshot();
    let mut fx = Effects::default();
    for c in &cases {
        let v = process(&snap, c.ingress, &c.frame, RxMeta::default(), now, &mut fx);
        assert!((c.check)(&v, &fx), "{}: {v:?} {fx:?}", c.name);
    }
    (sw, now, cases)
}

fn bench_process(c: &mut Criterion) {
    for sc in scale::selected_scales() {
        bench_scale(c, &sc);
    }
}

/// `process/<size>/<class>` and `parts/<size>/<part>` at one size.
fn bench_scale(c: &mut Criterion, sc: &Scale) {
    let (sw, now, cases) = setup(sc);
    let size = sc.label;
    let snap = sw.snapshot();
    let mut fx = Effects::default();
    let mut g = c.benchmark_group("process");
    g.throughput(Throughput::Elements(1));
    for case in &cases {
        g.bench_function(format!("{size}/{}", case.name), |b| {
            // The closure returns `()`: criterion's own black box of a large return value
            // would otherwise be part of the measurement.
            b.iter(|| {
                let v = process(
                    black_box(&snap),
                    black_box(case.ingress),
                    black_box(&case.frame),
                    RxMeta::default(),
                    black_box(now),
                    &mut fx,
                );
                black_box(&v);
            })
        });
    }
    g.finish();
    black_box(&fx);

    // The building blocks, to read the per-class numbers against.
    let mut g = c.benchmark_group("parts");
    g.throughput(Throughput::Elements(1));
    for name in ["unicast_udp4", "unicast_udp6", "arp_broadcast_flood"] {
        let case = cases.iter().find(|c| c.name == name).expect("case");
        g.bench_function(format!("{size}/wire_parse/{name}"), |b| {
            b.iter(|| {
                let f = wire::parse(black_box(&case.frame));
                black_box(&f);
            })
        });
    }
    let fdb = sw.fdb().clone();
    let n = 12_345 % sc.macs;
    let (lvlan, lmac) = (vlan_of(sc.learned_port(n)), learned_mac(n));
    g.bench_function(format!("{size}/fdb_lookup_learned_hit"), |b| {
        b.iter(|| fdb.lookup(black_box(lvlan), black_box(lmac), black_box(now)))
    });
    g.bench_function(format!("{size}/fdb_check_learn_static"), |b| {
        b.iter(|| {
            fdb.check_learn(
                black_box(vlan_of(3)),
                black_box(port_mac(3)),
                PortId(3),
                black_box(now),
            )
        })
    });
    let vips = snap.vips.clone();
    let (hit, miss) = (
        IpAddr::V4(ap_ip4(4_321 % sc.groups)),
        IpAddr::V4(port_ip4(7)),
    );
    g.bench_function(format!("{size}/vip_lookup_hit"), |b| {
        b.iter(|| vips.lookup(black_box(hit)))
    });
    g.bench_function(format!("{size}/vip_lookup_miss"), |b| {
        b.iter(|| vips.lookup(black_box(miss)))
    });
    g.finish();
}

criterion_group!(benches, bench_process);
criterion_main!(benches);
