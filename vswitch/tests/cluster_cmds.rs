//! The agent's in-process cluster commands against the threaded daemon, without root
//! (the ports are bound to interfaces that do not exist): cluster VIP groups, records
//! from the store, pending writes and their confirmation, host loss.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use crossbeam_channel::Receiver;
use vswitch::config::{vip_defs_from_toml, Config};
use vswitch::datapath::{ClusterGroup, Command, Daemon, DaemonOptions};
use vswitch::view::{ClusterResult, Event, View};

fn start(tag: &str) -> (Daemon, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("vswitch-ccmd-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let toml = format!(
        "[switch]\nstate_dir = {:?}\n\
         [[port]]\nname = \"web1\"\nnetdev = \"vswnx-{tag}-a\"\nmac = \"02:00:00:00:00:0a\"\nips = [\"10.9.0.1/24\"]\n\
         [[vip]]\nname = \"filevip\"\naddresses = [\"10.9.0.99\"]\ncandidates = [\"web1\"]\n",
        dir.display().to_string()
    );
    let cfg = Config::from_toml_str(&toml).unwrap();
    (Daemon::start(cfg, DaemonOptions::default()).unwrap(), dir)
}

fn groups(text: &str) -> Vec<ClusterGroup> {
    vip_defs_from_toml(text)
        .unwrap()
        .into_iter()
        .map(|def| ClusterGroup { def, vlan: 0 })
        .collect()
}

#[track_caller]
fn next(rx: &Receiver<Event>, f: impl Fn(&Event) -> bool) -> Event {
    let until = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = until.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(e) if f(&e) => return e,
            Ok(_) => continue,
            Err(e) => panic!("no matching event: {e}"),
        }
    }
}

fn vip(d: &Daemon, name: &str) -> vswitch::view::VipView {
    let View::Vips(v) = d.control().call(Command::ShowVips).unwrap() else {
        panic!()
    };
    v.into_iter().find(|g| g.name == name).expect(name)
}

fn cluster(d: &Daemon, c: Command) -> ClusterResult {
    match d.control().call(c).unwrap() {
        View::Cluster(r) => r,
        other => panic!("{other:?}"),
    }
}

#[test]
fn cluster_groups_records_writes_and_host_loss() {
    let (d, dir) = start("all");
    let rx = d.subscribe().unwrap();
    let ctl = d.control();
    // install: one group with a local and a remote candidate, one with remote ones only,
    // one whose name is the file's (skipped, the file's stays)
    let r = ctl
        .call(Command::ClusterVips {
            groups: groups(
                "[[vip]]\nname = \"web\"\naddresses = [\"10.9.0.100\"]\ncandidates = [\"web1\", \"web2\"]\n\
                 [[vip]]\nname = \"db\"\naddresses = [\"10.9.0.101\"]\ncandidates = [\"db1\", \"db2\"]\n\
                 [[vip]]\nname = \"filevip\"\naddresses = [\"10.9.0.102\"]\ncandidates = [\"web2\"]\n",
            ),
        })
        .unwrap();
    let View::ClusterVips(r) = r else {
        panic!("{r:?}")
    };
    assert_eq!(r.installed, vec!["web", "db"]);
    assert_eq!(r.skipped.len(), 1);
    assert_eq!(r.skipped[0].vip, "filevip");
    next(&rx, |e| matches!(e, Event::Reloaded { .. }));
    assert_eq!(vip(&d, "web").candidates, vec!["web1"]);
    assert_eq!(vip(&d, "db").candidates, Vec::<String>::new());
    assert_eq!(vip(&d, "filevip").addresses, vec!["10.9.0.99"]);

    // remote candidates; a local port cannot be one
    let add = |v: &str, h: &str, p: &str| Command::ClusterCandidate {
        vip: v.into(),
        host: h.into(),
        port: p.into(),
    };
    assert!(cluster(&d, add("web", "host-b", "web2")).changed);
    assert!(!cluster(&d, add("web", "host-b", "web2")).changed);
    assert!(ctl.call(add("web", "host-b", "web1")).is_err());
    assert_eq!(vip(&d, "web").remote_candidates, vec!["web2@host-b"]);

    // a record from the store moves the group to host-b's port; the event says so
    let owner = |epoch, revision| Command::ClusterOwner {
        vip: "web".into(),
        host: "host-b".into(),
        port: "web2".into(),
        mac: "02:00:00:00:00:b2".into(),
        mac6: "02:00:00:00:00:b2".into(),
        epoch,
        revision,
    };
    let r = cluster(&d, owner(5, 10));
    assert!(r.changed && r.moved, "{r:?}");
    match next(&rx, |e| matches!(e, Event::VipMoved { .. })) {
        Event::VipMoved {
            vip,
            to,
            remote,
            host,
            ..
        } => {
            assert_eq!(vip, "web");
            assert_eq!(to.as_deref(), Some("web2"));
            assert!(remote);
            assert_eq!(host.as_deref(), Some("host-b"));
        }
        e => panic!("{e:?}"),
    }
    let v = vip(&d, "web");
    assert!(v.owners.is_empty());
    assert_eq!(v.remote_owners.len(), 1);
    assert_eq!(v.remote_owners[0].host, "host-b");
    // the same record again is a duplicate; a bad MAC is refused
    assert_eq!(
        cluster(&d, owner(5, 10)).refused.as_deref(),
        Some("duplicate")
    );
    let bad = Command::ClusterOwner {
        vip: "web".into(),
        host: "host-b".into(),
        port: "web2".into(),
        mac: "zz".into(),
        mac6: "02:00:00:00:00:b2".into(),
        epoch: 9,
        revision: 11,
    };
    assert!(ctl.call(bad).is_err());

    // a local move must be written, conditioned on the record's revision
    ctl.call(Command::VipMove {
        vip: "web".into(),
        port: "web1".into(),
    })
    .unwrap();
    let View::ClusterWrites(w) = ctl.call(Command::ClusterWrites).unwrap() else {
        panic!()
    };
    let w: Vec<_> = w.into_iter().filter(|w| w.vip == "web").collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].base_revision, Some(10));
    assert!(w[0].epoch > 5);
    assert_eq!(w[0].owners.len(), 1);
    assert_eq!(w[0].owners[0].port, "web1");
    assert_eq!(w[0].owners[0].host, None);
    assert!(w[0].moved_at_ns > 0);
    // confirmed: nothing left to write for it
    let r = cluster(
        &d,
        Command::ClusterConfirm {
            vip: "web".into(),
            epoch: w[0].epoch,
            revision: 12,
        },
    );
    assert!(r.changed, "{r:?}");
    let View::ClusterWrites(w) = ctl.call(Command::ClusterWrites).unwrap() else {
        panic!()
    };
    assert!(w.iter().all(|w| w.vip != "web"), "{w:?}");

    // host-b goes: a remote owner of db there is dropped (A/P: discovery starts)
    assert!(cluster(&d, add("db", "host-b", "db2")).changed);
    let r = cluster(
        &d,
        Command::ClusterOwner {
            vip: "db".into(),
            host: "host-b".into(),
            port: "db2".into(),
            mac: "02:00:00:00:00:d2".into(),
            mac6: "02:00:00:00:00:d2".into(),
            epoch: 1,
            revision: 13,
        },
    );
    assert!(r.moved);
    let r = cluster(
        &d,
        Command::ClusterHostGone {
            host: "host-b".into(),
        },
    );
    assert!(r.moved);
    let v = vip(&d, "db");
    assert!(v.remote_owners.is_empty() && v.remote_candidates.is_empty());
    match next(
        &rx,
        |e| matches!(e, Event::VipMoved { vip, reason, .. } if vip == "db" && reason == "host-gone"),
    ) {
        Event::VipMoved { remote, from, .. } => {
            assert!(remote);
            assert_eq!(from.as_deref(), Some("db2"));
        }
        e => panic!("{e:?}"),
    }

    // a new set (the skipped group left out) goes through the reload path, which keeps
    // the owner of a group that keeps its name
    let View::ClusterVips(_) = ctl
        .call(Command::ClusterVips {
            groups: groups(
                "[[vip]]\nname = \"web\"\naddresses = [\"10.9.0.100\"]\ncandidates = [\"web1\", \"web2\"]\n\
                 [[vip]]\nname = \"db\"\naddresses = [\"10.9.0.101\"]\ncandidates = [\"db1\", \"db2\"]\n",
            ),
        })
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(vip(&d, "web").owners[0].port, "web1");
    d.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}
