//! `Switch::set_ports_oper`: many devices changing at once (a daemon start with ports
//! down, a reload, an attach round) give the same state as one change at a time, with
//! one snapshot instead of one per port.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use vip_table::{PortId, Timestamp};
use vswitch::config::Config;
use vswitch::control::{Switch, SwitchEvent};

/// `n` ports on one VLAN, every other one a candidate of one VIP group owned by port 0.
fn switch(n: usize) -> Switch {
    let mut t = String::new();
    for i in 0..n {
        t.push_str(&format!(
            "[[port]]\nname = \"p{i}\"\nnetdev = \"vswnx-b{i}\"\nmac = \"02:00:00:00:{:02x}:{:02x}\"\nips = [\"10.8.{}.{}/16\"]\n",
            i / 256,
            i % 256,
            i / 250,
            i % 250 + 1
        ));
    }
    let cands: Vec<String> = (0..n).step_by(2).map(|i| format!("\"p{i}\"")).collect();
    t.push_str(&format!(
        "[[vip]]\nname = \"v\"\naddresses = [\"10.8.255.100\"]\ncandidates = [{}]\nowner = \"p0\"\n",
        cands.join(", ")
    ));
    Switch::new(Config::from_toml_str(&t).unwrap(), Timestamp(0)).unwrap()
}

/// What the pipeline sees of the ports: state and flood masks.
fn ports_seen(sw: &Switch) -> Vec<(bool, String, u16)> {
    sw.snapshot()
        .ports
        .iter()
        .map(|p| (p.is_up(), format!("{:?}", p.flood), p.flood_min_mtu))
        .collect()
}

fn port_events(sw: &mut Switch) -> Vec<(String, bool)> {
    sw.take_events()
        .into_iter()
        .filter_map(|e| match e {
            SwitchEvent::PortState { port, up, .. } => Some((port, up)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_batch_is_the_same_as_one_change_at_a_time_with_one_snapshot() {
    let n = 40;
    // ports 0, 3, 6, … go down, then 0 and 6 come back
    let downs: Vec<(PortId, bool)> = (0..n as u32)
        .step_by(3)
        .map(|i| (PortId(i), false))
        .collect();
    let ups = [(PortId(0), true), (PortId(6), true)];

    let mut one = switch(n);
    let mut ob1 = Vec::new();
    one.take_events();
    for &(p, up) in downs.iter().chain(&ups) {
        one.set_port_oper(p, up, Timestamp(1_000_000), &mut ob1);
    }

    let mut batch = switch(n);
    let mut ob2 = Vec::new();
    batch.take_events();
    let g0 = batch.snapshot().generation;
    batch.set_ports_oper(&downs, Timestamp(1_000_000), &mut ob2);
    assert_eq!(
        batch.snapshot().generation,
        g0 + 1,
        "one snapshot for the whole batch"
    );
    batch.set_ports_oper(&ups, Timestamp(1_000_000), &mut ob2);

    assert_eq!(ports_seen(&one), ports_seen(&batch));
    assert_eq!(port_events(&mut one), port_events(&mut batch));
    // the owner went down (and came back): the group lost it either way
    let owners = |sw: &Switch| {
        let s = sw.snapshot();
        let (_, g) = s.vips.groups().next().unwrap();
        g.owners().iter().map(|o| o.port).collect::<Vec<_>>()
    };
    assert_eq!(owners(&one), owners(&batch));
    assert_eq!(ob1.len(), ob2.len(), "the same frames to send");
    // down ports are out of every flood set
    let s = batch.snapshot();
    assert!(!s.ports[3].is_up());
    assert!(!s.ports[1].flood.contains(PortId(3)));
    assert!(s.ports[1].flood.contains(PortId(0)));
}

#[test]
fn an_empty_or_unchanged_batch_publishes_nothing() {
    let mut sw = switch(4);
    let g0 = sw.snapshot().generation;
    let mut ob = Vec::new();
    sw.set_ports_oper(&[], Timestamp(1), &mut ob);
    sw.set_ports_oper(
        &[(PortId(1), true), (PortId(99), false)],
        Timestamp(1),
        &mut ob,
    );
    assert_eq!(sw.snapshot().generation, g0);
}
