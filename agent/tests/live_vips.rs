//! Live multi-host tests of cluster VIP groups and VIP ownership in etcd: real etcd, real
//! `vswitch run` agents with VMs (see `cluster_lab`). Root only; they skip with a message
//! when not root or when etcd is not installed.
//!
//! A VM claims the VIP the way keepalived does: it adds the address and sends a
//! gratuitous ARP (`arping -U`, iputils). Every wait polls with a generous deadline; no
//! assertion depends on a timing threshold (the times are printed, for the record).

#![allow(clippy::unwrap_used)]

mod cluster_lab;

use std::time::Duration;

use cluster_lab::{can_run, wait_until, Cluster, HostSpec};
use serde_json::Value;

/// Lease TTL of the test hosts.
const TTL: u32 = 3;
/// How long to wait for something that should take a moment.
const SOON: Duration = Duration::from_secs(20);
/// The VIP (in the VMs' subnet).
const VIP: &str = "10.251.0.200";

const GROUP: &str =
    "[[vip]]\nname = \"web\"\naddresses = [\"10.251.0.200\"]\ncandidates = [\"web1\", \"web2\"]\n";

/// The group `web` in a host's `show vips`, if it has it.
fn web(c: &Cluster, host: &str) -> Option<Value> {
    c.ctl_json(host, &["show", "vips"])
        .ok()?
        .as_array()?
        .iter()
        .find(|g| g["name"] == "web")
        .cloned()
}

/// The local owner port of `web` on `host`.
fn local_owner(c: &Cluster, host: &str) -> Option<String> {
    let g = web(c, host)?;
    g["owners"][0]["port"].as_str().map(str::to_string)
}

/// The remote owner of `web` on `host`: (port, host).
fn remote_owner(c: &Cluster, host: &str) -> Option<(String, String)> {
    let g = web(c, host)?;
    let o = g.get("remote_owners")?.get(0)?;
    Some((
        o["port"].as_str()?.to_string(),
        o["host"].as_str()?.to_string(),
    ))
}

/// The ownership record of `web` in etcd.
fn record(c: &Cluster) -> Option<Value> {
    let m = c.etcd_get_prefix("/vswitch/v1/owners/web")?;
    serde_json::from_str(m.get("/vswitch/v1/owners/web")?).ok()
}

/// The VM of `port` claims the VIP: adds it and sends one gratuitous ARP.
fn claim(c: &Cluster, port: &str) {
    let _ = c.vm_run(
        port,
        &["ip", "addr", "add", &format!("{VIP}/32"), "dev", "eth0"],
    );
    let (ok, out) = c.vm_run(
        port,
        &["arping", "-U", "-c", "1", "-I", "eth0", "-s", VIP, VIP],
    );
    assert!(ok || out.contains("Sent 1"), "arping from {port}: {out}");
}

fn write_file(c: &Cluster, name: &str, text: &str) -> String {
    let p = c.dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

fn two_hosts(test: &str) -> Cluster {
    let mut c = Cluster::new(test, TTL);
    c.add_host_spec("host-a", 1, HostSpec::default().vm("web1"));
    c.add_host_spec("host-b", 2, HostSpec::default().vm("web2"));
    let both = wait_until(SOON, || {
        c.listed("host-a").len() == 2 && c.listed("host-b").len() == 2
    });
    assert!(both.is_some(), "hosts do not see each other:\n{}", c.logs());
    let f = write_file(&c, "web.toml", GROUP);
    let (ok, out) = c.ctl("host-a", &["cluster", "apply", &f]);
    assert!(ok, "cluster apply: {out}\n{}", c.logs());
    assert!(out.contains("written: web"), "{out}");
    let installed = wait_until(SOON, || {
        let a = web(&c, "host-a");
        let b = web(&c, "host-b");
        a.is_some_and(|g| g["remote_candidates"][0] == "web2@host-b")
            && b.is_some_and(|g| g["remote_candidates"][0] == "web1@host-a")
    });
    assert!(
        installed.is_some(),
        "group not installed on both hosts:\n{}",
        c.logs()
    );
    c
}

#[test]
fn cluster_groups_claims_and_host_death() {
    if !can_run() {
        return;
    }
    let mut c = two_hosts("vips");
    // the group as each host has it: the local candidate, the other host's as remote
    let a = web(&c, "host-a").unwrap();
    assert_eq!(a["candidates"], serde_json::json!(["web1"]));
    let (ok, shown) = c.ctl("host-b", &["cluster", "show"]);
    assert!(ok && shown.contains("name = \"web\""), "{shown}");

    // an invalid file is refused naming the field; etcd keeps the group as it was
    let before = c.etcd_get_prefix("/vswitch/v1/vips/").unwrap();
    let bad = write_file(
        &c,
        "bad.toml",
        "[[vip]]\nname = \"web\"\naddresses = [\"10.251.0.300\"]\ncandidates = [\"web1\"]\n",
    );
    let (ok, out) = c.ctl("host-a", &["cluster", "apply", &bad]);
    assert!(!ok, "{out}");
    assert!(out.contains("vip[0] \"web\".addresses[0]"), "{out}");
    assert_eq!(c.etcd_get_prefix("/vswitch/v1/vips/").unwrap(), before);

    // web2's VM on host-b claims: host-b installs it, writes it, host-a follows
    claim(&c, "web2");
    let t = wait_until(SOON, || {
        local_owner(&c, "host-b").as_deref() == Some("web2")
            && remote_owner(&c, "host-a") == Some(("web2".into(), "host-b".into()))
    });
    assert!(t.is_some(), "the claim did not reach host-a:\n{}", c.logs());
    println!("claim on host-b seen on host-a after {:?}", t.unwrap());
    let r = record(&c).unwrap();
    assert_eq!(r["owners"][0]["host"], "host-b");
    assert_eq!(r["owners"][0]["port"], "web2");
    let (_, text) = c.ctl("host-a", &["show", "vips"]);
    assert!(text.contains("web2 @ host-b"), "{text}");
    let (_, metrics) = c.ctl("host-a", &["metrics"]);
    let count = metrics
        .lines()
        .find(|l| l.starts_with("vswitch_vip_move_propagation_seconds_count"))
        .unwrap_or_default()
        .to_string();
    assert!(!count.ends_with(" 0"), "{count}\n{metrics}");
    println!(
        "{}",
        metrics
            .lines()
            .filter(
                |l| l.starts_with("vswitch_vip_move_propagation_seconds_sum")
                    || l.starts_with("vswitch_vip_move_propagation_seconds_count")
            )
            .collect::<Vec<_>>()
            .join("\n")
    );
    let (_, mb) = c.ctl("host-b", &["metrics"]);
    assert!(
        mb.contains("vswitch_cluster_owner_writes_total 1\n"),
        "{mb}"
    );

    // host-b dies: after its lease TTL host-a drops the owner; the record stays in etcd
    c.kill9("host-b");
    let t = wait_until(SOON, || {
        web(&c, "host-a").is_some_and(|g| g.get("remote_owners").is_none())
    });
    assert!(
        t.is_some(),
        "host-a kept the dead host's owner:\n{}",
        c.logs()
    );
    println!("owner dropped {:?} after the kill (TTL {TTL}s)", t.unwrap());
    assert_eq!(record(&c).unwrap()["owners"][0]["host"], "host-b");
    // the standby claims: host-a writes over the dead host's record
    claim(&c, "web1");
    let t = wait_until(SOON, || {
        record(&c).is_some_and(|r| r["owners"][0]["host"] == "host-a")
    });
    assert!(t.is_some(), "host-a's claim not written:\n{}", c.logs());
    assert_eq!(local_owner(&c, "host-a").as_deref(), Some("web1"));
}

#[test]
fn a_claim_while_etcd_is_down_is_written_when_it_returns() {
    if !can_run() {
        return;
    }
    let mut c = two_hosts("vdown");
    c.stop_etcd();
    claim(&c, "web1");
    let t = wait_until(SOON, || {
        local_owner(&c, "host-a").as_deref() == Some("web1")
    });
    assert!(
        t.is_some(),
        "the claim was not applied locally:\n{}",
        c.logs()
    );
    println!(
        "claim applied locally with etcd down after {:?}",
        t.unwrap()
    );
    c.start_etcd();
    let t = wait_until(Duration::from_secs(40), || {
        record(&c).is_some_and(|r| r["owners"][0]["host"] == "host-a")
            && remote_owner(&c, "host-b") == Some(("web1".into(), "host-a".into()))
    });
    assert!(
        t.is_some(),
        "the pending claim was not written:\n{}",
        c.logs()
    );
    println!(
        "written and seen on host-b {:?} after etcd returned",
        t.unwrap()
    );
}

#[test]
fn two_near_simultaneous_claims_end_with_one_owner() {
    if !can_run() {
        return;
    }
    let c = two_hosts("vrace");
    for port in ["web1", "web2"] {
        let _ = c.vm_run(
            port,
            &["ip", "addr", "add", &format!("{VIP}/32"), "dev", "eth0"],
        );
    }
    let a = std::thread::spawn({
        let ns = c.vm("web1").ns.clone();
        move || {
            std::process::Command::new("ip")
                .args([
                    "netns", "exec", &ns, "arping", "-U", "-c", "1", "-I", "eth0", "-s", VIP, VIP,
                ])
                .output()
        }
    });
    let b = std::thread::spawn({
        let ns = c.vm("web2").ns.clone();
        move || {
            std::process::Command::new("ip")
                .args([
                    "netns", "exec", &ns, "arping", "-U", "-c", "1", "-I", "eth0", "-s", VIP, VIP,
                ])
                .output()
        }
    });
    let _ = a.join();
    let _ = b.join();
    // one owner everywhere, the one of the last record in etcd's order
    let agreed = wait_until(SOON, || {
        let Some(r) = record(&c) else { return false };
        let (host, port) = (
            r["owners"][0]["host"].clone(),
            r["owners"][0]["port"].clone(),
        );
        let (other, other_port) = if host == "host-a" {
            ("host-b", "web1")
        } else {
            ("host-a", "web2")
        };
        let owner_host = host.as_str().unwrap_or_default().to_string();
        local_owner(&c, &owner_host).as_deref() == port.as_str()
            && remote_owner(&c, other) == Some((other_port.into(), owner_host.clone()))
            && web(&c, other).is_some_and(|g| g["owners"].as_array().is_some_and(|o| o.is_empty()))
    });
    assert!(
        agreed.is_some(),
        "hosts disagree on the owner:\n{}",
        c.logs()
    );
    println!("{:?}", record(&c));
}
