//! `trace_frame` on a switch built from a config: a refused hijack, a claim that moves the
//! VIP, a steered stale-cache frame; and the trace changes nothing (owners, epoch, FDB,
//! counters).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use vip_table::{MacAddr, Timestamp};
use vswitch::config::Config;
use vswitch::control::Switch;
use vswitch::trace::flow::{Flow, PortDefaults};
use vswitch::trace::trace_frame;

const CFG: &str = r#"
[[port]]
name = "web1"
tap = "t-web1"
mac = "52:54:00:00:00:11"
ips = ["10.0.0.11/24"]
[[port]]
name = "web2"
tap = "t-web2"
mac = "52:54:00:00:00:12"
ips = ["10.0.0.12/24"]
[[port]]
name = "web3"
tap = "t-web3"
mac = "52:54:00:00:00:13"
ips = ["10.0.0.13/24"]
[[vip]]
name = "db"
addresses = ["10.0.0.100"]
candidates = ["web1", "web2"]
owner = "web1"
"#;

fn frame(sw: &Switch, port: &str, spec: &str) -> Vec<u8> {
    let pc = sw.config().port(port).unwrap();
    let d = PortDefaults {
        mac: pc.mac,
        ipv4: pc.ips.iter().find_map(|i| match i {
            IpAddr::V4(a) => Some(*a),
            _ => None,
        }),
        ipv6: None,
    };
    let ports: Vec<(IpAddr, MacAddr)> = sw
        .config()
        .ports
        .iter()
        .flat_map(|p| p.ips.iter().map(move |i| (*i, p.mac)))
        .collect();
    Flow::parse(spec)
        .unwrap()
        .build(&d, &|ip| ports.iter().find(|(i, _)| *i == ip).map(|x| x.1))
        .unwrap()
}

#[test]
fn hijack_claim_and_steering() {
    let mut sw = Switch::new(Config::from_toml_str(CFG).unwrap(), Timestamp(0)).unwrap();
    let now = Timestamp(1_000_000_000);
    let f = frame(&sw, "web3", "arp spa=10.0.0.100 tpa=10.0.0.100");
    let t = trace_frame(&sw, "web3", &f, now).unwrap();
    println!("{}\n{t:#?}", t.summary);
    assert_eq!(
        t.summary,
        "drop vip_hijack: port web3 is not a candidate of vip db (owner web1, epoch 1)"
    );

    let f = frame(&sw, "web2", "arp spa=10.0.0.100 tpa=10.0.0.100");
    let t = trace_frame(&sw, "web2", &f, now).unwrap();
    println!("{}", t.summary);
    assert!(
        t.summary
            .starts_with("claim applied: moves vip db from web1 to web2 (epoch 2); flood to"),
        "{}",
        t.summary
    );
    assert!(t
        .generated
        .iter()
        .any(|g| g.port == "web3" && g.why == "announcement"));
    // nothing changed
    let g = sw.vips().group(sw.vips().find("db").unwrap()).unwrap();
    assert_eq!((g.epoch(), g.owners()[0].port.0), (1, 0));
    assert_eq!(
        sw.counters(sw.port_id("web2").unwrap())
            .unwrap()
            .values()
            .rx_frames,
        0
    );

    // the VIP moves for real; a client with a stale cache (web1's MAC) is steered
    let mut ob = Vec::new();
    sw.vip_move("db", "web2", now, &mut ob).unwrap();
    let f = frame(
        &sw,
        "web3",
        "udp nw_dst=10.0.0.100 dl_dst=52:54:00:00:00:11 tp_dst=5432",
    );
    let t = trace_frame(&sw, "web3", &f, now).unwrap();
    println!("{}\n{t:#?}", t.summary);
    assert_eq!(
        t.summary,
        "forward to web2, destination MAC 52:54:00:00:00:11 rewritten to 52:54:00:00:00:12 \
         (owner of vip db, epoch 2)"
    );
    assert!(sw.fdb().entries(now).iter().all(|e| e.3), "nothing learned");
}
