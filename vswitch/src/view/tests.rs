//! Round trips of the views and events, and the JSON field names scripts rely on.

use std::collections::BTreeMap;

use super::*;

fn sample_vip() -> VipView {
    VipView {
        name: "web".into(),
        mode: "active-passive".into(),
        addresses: vec!["10.0.0.100".into()],
        candidates: vec!["web1".into(), "web2".into()],
        owners: vec![OwnerView {
            port: "web1".into(),
            mac: "02:00:00:00:00:01".into(),
            mac6: "02:00:00:00:00:01".into(),
            since_secs_ago: 1.5,
            last_claim_secs_ago: 0.25,
        }],
        answer_mac: Some("02:00:00:00:00:01".into()),
        answer_mac6: None,
        epoch: 3,
        last_claim: Some(LastClaimView {
            port: "web1".into(),
            secs_ago: 0.25,
        }),
        pending: Some(PendingView {
            port: "web2".into(),
            mac: "02:00:00:00:00:02".into(),
            due_in_secs: 0.5,
        }),
        moves: vec![MoveView {
            secs_ago: 1.5,
            epoch: 3,
            from: None,
            to: Some("web1".into()),
            mac: Some("02:00:00:00:00:01".into()),
            reason: "claim".into(),
        }],
        hijack_attempts: 1,
        discovering: false,
        last_hijack: Some(HijackView {
            port: "db1".into(),
            mac: "02:00:00:00:00:09".into(),
            secs_ago: 9.0,
        }),
        remote_owners: vec![],
        remote_candidates: vec![],
    }
}

fn sample_port() -> PortView {
    PortView {
        name: "web1".into(),
        binding: "tap".into(),
        ifname: "tap-web1".into(),
        mac: "02:00:00:00:00:01".into(),
        ips: vec!["10.0.0.11/24".into()],
        allowed_address_pairs: vec![AddressPairView {
            ip: "10.0.0.100".into(),
            mac: "02:00:00:00:00:01".into(),
        }],
        vlan: 0,
        mtu: 1500,
        admin_up: true,
        oper_up: false,
        port_security: true,
        dest_check: true,
        vip_candidate_of: vec!["web".into()],
    }
}

fn sample_stats() -> PortStatsView {
    PortStatsView {
        port: "web1".into(),
        up: true,
        rx_frames: 1,
        rx_bytes: 60,
        tx_frames: 2,
        tx_bytes: 120,
        answered: 0,
        vip_no_owner: 0,
        to_switch: 1,
        drops: BTreeMap::from([("mac_spoof".to_string(), 4), ("arp_spoof".to_string(), 0)]),
    }
}

/// Every view, paired with the command it answers.
fn samples() -> Vec<(Command, View)> {
    vec![
        (Command::ShowPorts, View::Ports(vec![sample_port()])),
        (
            Command::ShowFdb,
            View::Fdb(vec![FdbEntryView {
                vlan: 7,
                mac: "02:00:00:00:00:01".into(),
                port: "web1".into(),
                host: None,
                is_static: false,
                age_secs: 2.5,
            }]),
        ),
        (Command::ShowVips, View::Vips(vec![sample_vip()])),
        (Command::ShowStats, View::Stats(vec![sample_stats()])),
        (
            Command::ShowHosts,
            View::Hosts(vec![
                HostView {
                    host: "host-a".into(),
                    vtep: "10.250.1.1".into(),
                    version: "0.1.0".into(),
                    local: true,
                    session: Some("up".into()),
                    ports: 2,
                    clashes: vec![PortClashView {
                        port: "web9".into(),
                        holder: "host-b".into(),
                    }],
                },
                HostView {
                    host: "host-b".into(),
                    vtep: "10.250.1.2".into(),
                    version: "0.1.0".into(),
                    local: false,
                    session: None,
                    ports: 1,
                    clashes: vec![],
                },
            ]),
        ),
        (
            Command::VipMove {
                vip: "web".into(),
                port: "web2".into(),
            },
            View::Moved(MoveResult {
                moved: false,
                epoch: None,
            }),
        ),
        (
            Command::VipRelease {
                vip: "web".into(),
                port: "web2".into(),
            },
            View::Released(ReleaseResult { released: true }),
        ),
        (
            Command::PortAdmin {
                port: "web1".into(),
                up: false,
            },
            View::PortAdmin(PortAdminResult {
                port: "web1".into(),
                admin_up: false,
            }),
        ),
        (
            Command::Reload,
            View::Reloaded(ReloadResult {
                reloaded: true,
                summary: "added [], removed [], kept 2".into(),
            }),
        ),
        (Command::Metrics, View::Metrics("# HELP x\nx 1\n".into())),
        (
            Command::Watch,
            View::Watching(WatchStarted { watching: true }),
        ),
    ]
}

#[test]
fn every_view_round_trips_through_its_json() {
    for (cmd, view) in samples() {
        let text = view.to_json().to_string();
        let back: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(View::decode(&cmd, back).expect("decode"), view, "{cmd:?}");
    }
    // and empty lists
    for cmd in [
        Command::ShowPorts,
        Command::ShowFdb,
        Command::ShowVips,
        Command::ShowStats,
        Command::ShowHosts,
    ] {
        let v = View::decode(&cmd, serde_json::json!([])).expect("decode");
        assert_eq!(v.to_json(), serde_json::json!([]));
    }
}

#[test]
fn a_view_of_the_wrong_command_is_refused() {
    let ports = View::Ports(vec![sample_port()]).to_json();
    assert!(View::decode(&Command::ShowVips, ports.clone()).is_err());
    assert!(View::decode(&Command::Reload, ports).is_err());
}

/// The exact JSON text of sample views: the field names and shapes of the control socket
/// (keys sorted, as `serde_json::Value` writes them). Changing this breaks scripts.
#[test]
fn json_field_names_are_pinned() {
    assert_eq!(
        View::Vips(vec![sample_vip()]).to_json().to_string(),
        concat!(
            r#"[{"addresses":["10.0.0.100"],"answer_mac":"02:00:00:00:00:01","answer_mac6":null,"#,
            r#""candidates":["web1","web2"],"discovering":false,"epoch":3,"hijack_attempts":1,"#,
            r#""last_claim":{"port":"web1","secs_ago":0.25},"#,
            r#""last_hijack":{"mac":"02:00:00:00:00:09","port":"db1","secs_ago":9.0},"#,
            r#""mode":"active-passive","#,
            r#""moves":[{"epoch":3,"from":null,"mac":"02:00:00:00:00:01","reason":"claim","secs_ago":1.5,"to":"web1"}],"#,
            r#""name":"web","#,
            r#""owners":[{"last_claim_secs_ago":0.25,"mac":"02:00:00:00:00:01","mac6":"02:00:00:00:00:01","port":"web1","since_secs_ago":1.5}],"#,
            r#""pending":{"due_in_secs":0.5,"mac":"02:00:00:00:00:02","port":"web2"}}]"#
        )
    );
    assert_eq!(
        View::Ports(vec![sample_port()]).to_json().to_string(),
        concat!(
            r#"[{"admin_up":true,"allowed_address_pairs":[{"ip":"10.0.0.100","mac":"02:00:00:00:00:01"}],"#,
            r#""binding":"tap","dest_check":true,"ifname":"tap-web1","ips":["10.0.0.11/24"],"#,
            r#""mac":"02:00:00:00:00:01","mtu":1500,"name":"web1","oper_up":false,"port_security":true,"#,
            r#""vip_candidate_of":["web"],"vlan":0}]"#
        )
    );
    assert_eq!(
        View::Stats(vec![sample_stats()]).to_json().to_string(),
        concat!(
            r#"[{"answered":0,"drops":{"arp_spoof":0,"mac_spoof":4},"port":"web1","rx_bytes":60,"#,
            r#""rx_frames":1,"to_switch":1,"tx_bytes":120,"tx_frames":2,"up":true,"vip_no_owner":0}]"#
        )
    );
    let one = |cmd: Command| {
        samples()
            .into_iter()
            .find(|(c, _)| *c == cmd)
            .map(|(_, v)| v.to_json().to_string())
            .unwrap_or_default()
    };
    assert_eq!(
        one(Command::ShowFdb),
        r#"[{"age_secs":2.5,"mac":"02:00:00:00:00:01","port":"web1","static":false,"vlan":7}]"#
    );
    assert_eq!(
        one(Command::Reload),
        r#"{"reloaded":true,"summary":"added [], removed [], kept 2"}"#
    );
    assert_eq!(
        one(Command::PortAdmin {
            port: "web1".into(),
            up: false
        }),
        r#"{"admin_up":false,"port":"web1"}"#
    );
    assert_eq!(one(Command::Metrics), r##""# HELP x\nx 1\n""##);
    assert_eq!(one(Command::Watch), r#"{"watching":true}"#);
    assert_eq!(
        View::Moved(MoveResult {
            moved: true,
            epoch: Some(4)
        })
        .to_json()
        .to_string(),
        r#"{"epoch":4,"moved":true}"#
    );
}

fn sample_events() -> Vec<Event> {
    vec![
        Event::VipMoved {
            vip: "web".into(),
            from: Some("web1".into()),
            to: Some("web2".into()),
            mac: Some("02:00:00:00:00:02".into()),
            epoch: 4,
            reason: "admin".into(),
            at_ns: 123,
            remote: false,
            host: None,
        },
        Event::VipMoved {
            vip: "web".into(),
            from: Some("web2".into()),
            to: Some("far1".into()),
            mac: Some("02:00:00:00:0b:01".into()),
            epoch: 5,
            reason: "remote".into(),
            at_ns: 124,
            remote: true,
            host: Some("host-b".into()),
        },
        Event::VipClaimPending {
            vip: "web".into(),
            port: "web2".into(),
            due_ns: 1_500_000_000,
        },
        Event::VipHijack {
            vip: "web".into(),
            addr: "10.0.0.100".parse().expect("ip"),
            port: "db1".into(),
            mac: "02:00:00:00:00:09".into(),
        },
        Event::VipSplitBrain {
            vip: "web".into(),
            ports: vec!["web1".into(), "web2".into()],
            holder: None,
        },
        Event::VipRestored {
            vip: "web".into(),
            owners: vec![],
            epoch: 2,
        },
        Event::VipDiscovery {
            vip: "web".into(),
            trigger: "start".into(),
        },
        Event::VrrpStepDown {
            vip: "web".into(),
            port: "web1".into(),
            vrid: 51,
            family: "ipv4".into(),
            dst: "224.0.0.18".parse().expect("ip"),
            to: vec!["web2".into()],
        },
        Event::PortState {
            port: "web1".into(),
            up: false,
            cause: "device".into(),
        },
        Event::Reloaded {
            added: vec!["c".into()],
            removed: vec![],
            kept: vec!["a".into(), "b".into()],
        },
        Event::ReloadRefused {
            error: "bad".into(),
        },
        Event::Lagged { missed: 7 },
    ]
}

#[test]
fn events_round_trip_and_are_tagged() {
    for e in sample_events() {
        let line = serde_json::to_string(&e).expect("serialize");
        assert!(!line.contains('\n'));
        let back: Event = serde_json::from_str(&line).expect("deserialize");
        assert_eq!(back, e);
        assert!(!e.to_string().is_empty());
    }
    assert_eq!(
        serde_json::to_value(&sample_events()[0]).expect("json"),
        serde_json::json!({
            "event": "vip_moved", "vip": "web", "from": "web1", "to": "web2",
            "mac": "02:00:00:00:00:02", "epoch": 4, "reason": "admin", "at_ns": 123
        })
    );
    assert_eq!(
        serde_json::to_string(&Event::Lagged { missed: 7 }).expect("json"),
        r#"{"event":"lagged","missed":7}"#
    );
}

/// A switch event reads the same in `ctl watch` as in the switch log.
#[test]
fn events_read_as_the_log_writes_them() {
    use crate::control::SwitchEvent;
    use vip_table::{MacAddr, MoveReason, Timestamp};
    let mac: MacAddr = "02:00:00:00:00:02".parse().expect("mac");
    for e in [
        SwitchEvent::VipMoved {
            vip: "web".into(),
            from: None,
            to: Some("web2".into()),
            mac: Some(mac),
            epoch: 4,
            reason: MoveReason::Admin,
            at: Timestamp(5),
            remote: false,
            host: None,
        },
        SwitchEvent::VipMoved {
            vip: "web".into(),
            from: Some("web2".into()),
            to: Some("far1".into()),
            mac: Some(mac),
            epoch: 5,
            reason: MoveReason::Remote,
            at: Timestamp(6),
            remote: true,
            host: Some("host-b".into()),
        },
        SwitchEvent::VipClaimPending {
            vip: "web".into(),
            port: "web2".into(),
            due: Timestamp(1_500_000_000),
        },
        SwitchEvent::VipHijack {
            vip: "web".into(),
            addr: "10.0.0.100".parse().expect("ip"),
            port: "db1".into(),
            mac,
        },
        SwitchEvent::VipSplitBrain {
            vip: "web".into(),
            ports: vec!["a".into(), "b".into()],
            holder: Some("a".into()),
        },
        SwitchEvent::VipRestored {
            vip: "web".into(),
            owners: vec!["a".into()],
            epoch: 2,
        },
        SwitchEvent::VrrpStepDown {
            vip: "web".into(),
            port: "a".into(),
            vrid: 51,
            family: "ipv6",
            dst: "ff02::12".parse().expect("ip"),
            to: vec!["b".into(), "c".into()],
        },
        SwitchEvent::PortState {
            port: "a".into(),
            up: true,
            cause: "admin",
        },
    ] {
        let ev = Event::from(&e);
        assert_eq!(ev.to_string(), e.to_string());
        let back: Event =
            serde_json::from_str(&serde_json::to_string(&ev).expect("ser")).expect("de");
        assert_eq!(back, ev);
    }
}
