//! Live test of an active-active VIP group across hosts (root, network namespaces, real
//! etcd; skipped otherwise): web1 on host-a and web2 on host-b both claim the VIP, and every
//! host — host-c, which has neither, too — holds both owners, because an ownership record
//! is applied as the whole owner set (`Command::ClusterOwners`). Before, other hosts
//! installed only the record's first owner. Then host-a's agent is killed: after its lease
//! every host holds web2 alone, and the client on host-c still reaches the VIP.
//!
//! Run: `cargo test -p agent --test live_active_active -- --nocapture`.

#![allow(clippy::unwrap_used)]

mod cluster_lab;

use std::collections::BTreeSet;
use std::time::Duration;

use cluster_lab::{can_run, wait_until, Cluster, HostSpec};

const TTL: u32 = 3;
const SOON: Duration = Duration::from_secs(30);
const VIP: &str = "10.251.0.210";

/// Where `host` sees the owners of `name`: `local:<port>` or `<host>:<port>`, sorted.
fn owners(c: &Cluster, host: &str, name: &str) -> BTreeSet<String> {
    let Some(g) = c.group(host, name) else {
        return BTreeSet::new();
    };
    let local = g["owners"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| Some(format!("local:{}", o["port"].as_str()?)));
    let remote = g["remote_owners"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| Some(format!("{}:{}", o["host"].as_str()?, o["port"].as_str()?)));
    local.chain(remote).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn both_owners_of_an_active_active_group_are_held_on_every_host() {
    if !can_run() {
        return;
    }
    let mut c = Cluster::new("aa", TTL);
    c.add_host_spec("host-a", 1, HostSpec::default().vm("web1"));
    c.add_host_spec("host-b", 2, HostSpec::default().vm("web2"));
    c.add_host_spec("host-c", 3, HostSpec::default().vm("cli"));
    let hosts = ["host-a", "host-b", "host-c"];
    let listed = wait_until(SOON, || hosts.iter().all(|h| c.listed(h).len() == 3));
    assert!(
        listed.is_some(),
        "hosts do not see each other:\n{}",
        c.logs()
    );
    let f = c.write_file(
        "aa.toml",
        &format!(
            "[[vip]]\nname = \"web\"\naddresses = [\"{VIP}\"]\nmode = \"active-active\"\n\
             candidates = [\"web1\", \"web2\"]\n"
        ),
    );
    let (ok, out) = c.ctl("host-a", &["cluster", "apply", f.to_str().unwrap()]);
    assert!(ok, "cluster apply: {out}\n{}", c.logs());
    let installed = wait_until(SOON, || hosts.iter().all(|h| c.group(h, "web").is_some()));
    assert!(installed.is_some(), "group not installed:\n{}", c.logs());

    c.claim("web1", VIP);
    c.claim("web2", VIP);
    let want = [
        ("host-a", set(&["local:web1", "host-b:web2"])),
        ("host-b", set(&["host-a:web1", "local:web2"])),
        ("host-c", set(&["host-a:web1", "host-b:web2"])),
    ];
    let both = wait_until(SOON, || {
        want.iter().all(|(h, w)| owners(&c, h, "web") == *w)
    });
    assert!(
        both.is_some(),
        "not every host holds both owners: a {:?} b {:?} c {:?}\nrecord {:?}\n{}",
        owners(&c, "host-a", "web"),
        owners(&c, "host-b", "web"),
        owners(&c, "host-c", "web"),
        c.owner_record("web"),
        c.logs()
    );
    let rec = c.owner_record("web").unwrap();
    assert_eq!(rec["owners"].as_array().map(Vec::len), Some(2), "{rec}");
    // the client on the third host reaches the VIP (its flow goes to one of the two)
    let reach = wait_until(SOON, || c.pings("cli", VIP));
    if reach.is_none() {
        for h in hosts {
            let m = c.ctl(h, &["metrics"]).1;
            let m: Vec<&str> = m
                .lines()
                .filter(|l| !l.starts_with('#') && !l.ends_with(" 0"))
                .collect();
            eprintln!("== {h} metrics\n{}", m.join("\n"));
            eprintln!("== {h} vips {:?}", c.group(h, "web"));
        }
        eprintln!("== cli neigh {:?}", c.vm_run("cli", &["ip", "neigh"]));
        eprintln!("== web1 addr {:?}", c.vm_run("web1", &["ip", "addr"]));
    }
    assert!(reach.is_some(), "cli cannot reach the VIP:\n{}", c.logs());

    // host-a dies: after its lease web2 is the one owner everywhere, and still answers
    c.kill9("host-a");
    let alone = wait_until(SOON, || {
        owners(&c, "host-b", "web") == set(&["local:web2"])
            && owners(&c, "host-c", "web") == set(&["host-b:web2"])
    });
    assert!(
        alone.is_some(),
        "host-a's owner not dropped: b {:?} c {:?}\n{}",
        owners(&c, "host-b", "web"),
        owners(&c, "host-c", "web"),
        c.logs()
    );
    let reach = wait_until(SOON, || c.pings("cli", VIP));
    assert!(
        reach.is_some(),
        "cli cannot reach the VIP on web2:\n{}",
        c.logs()
    );
}
