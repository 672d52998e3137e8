//! Live fault tests of a cluster (root, network namespaces, real etcd; skipped otherwise),
//! issue 10 "Faults": all of etcd down, a host's underlay cut and healed, an agent
//! restarted (on a host without and with the owner). A `kill -9`ed owner agent is in
//! `live_vips.rs`, a claim while etcd is down in `live_vips.rs`, etcd down and back without
//! VIPs in `live_cluster.rs`.
//!
//! Every assertion is on what the switches show (`show vips`, etcd's record, metrics) and
//! on traffic (pings and ARP answers from client VMs). Times are printed, never asserted:
//! the machine is shared.
//!
//! Run: `cargo test -p agent --test live_faults -- --test-threads=1 --nocapture`.

#![allow(clippy::unwrap_used)]

mod cluster_lab;

use std::time::{Duration, Instant};

use cluster_lab::{can_run, wait_until, Cluster, HostSpec};

/// Lease TTL of the test hosts.
const TTL: u32 = 3;
/// "Eventually" (generous: the machine is shared).
const SOON: Duration = Duration::from_secs(30);
/// The VIPs (in the VMs' subnet).
const VIP: &str = "10.251.0.200";
const VIP2: &str = "10.251.0.201";

fn group(name: &str, vip: &str, candidates: &[&str]) -> String {
    let c: Vec<String> = candidates.iter().map(|p| format!("\"{p}\"")).collect();
    format!(
        "[[vip]]\nname = \"{name}\"\naddresses = [\"{vip}\"]\ncandidates = [{}]\n",
        c.join(", ")
    )
}

/// Apply `text` as the cluster's VIP groups (from `via`) and wait until every host in
/// `hosts` has every group in `names`.
fn apply(c: &Cluster, via: &str, text: &str, hosts: &[&str], names: &[&str]) {
    let f = c.write_file("groups.toml", text);
    let (ok, out) = c.ctl(via, &["cluster", "apply", f.to_str().unwrap()]);
    assert!(ok, "cluster apply: {out}\n{}", c.logs());
    let installed = wait_until(SOON, || {
        hosts
            .iter()
            .all(|h| names.iter().all(|n| c.group(h, n).is_some()))
    });
    assert!(installed.is_some(), "groups not installed:\n{}", c.logs());
}

fn all_listed(c: &Cluster, hosts: &[&str], n: usize) {
    let t = wait_until(SOON, || hosts.iter().all(|h| c.listed(h).len() == n));
    assert!(t.is_some(), "hosts do not see each other:\n{}", c.logs());
}

fn at(host: &str, port: &str) -> Option<(String, String)> {
    Some((host.to_string(), port.to_string()))
}

fn local(port: &str) -> Option<(String, String)> {
    at("local", port)
}

/// `port` claims `vip` and every host in `seen` (host → expected view) agrees.
fn claim_and_wait(c: &Cluster, port: &str, vip: &str, name: &str, seen: &[(&str, &str)]) {
    c.claim(port, vip);
    let t = wait_until(SOON, || {
        seen.iter()
            .all(|(h, owner_host)| c.owner_seen(h, name) == at(owner_host, port))
    });
    assert!(
        t.is_some(),
        "{port}'s claim of {name} did not spread:\n{}",
        c.logs()
    );
}

/// How many of `n` pings (one per 100 ms) of `ip` from `port` were answered.
fn answered(c: &Cluster, port: &str, ip: &str, n: u32) -> u32 {
    let (_, out) = c.vm_run(
        port,
        &["ping", "-c", &n.to_string(), "-i", "0.1", "-W", "1", ip],
    );
    out.lines()
        .find_map(|l| {
            let (_, rest) = l.split_once("transmitted, ")?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0)
}

#[test]
fn with_all_of_etcd_down_forwarding_and_claims_go_on_and_converge_when_it_returns() {
    if !can_run() {
        return;
    }
    let mut c = Cluster::new("fdown", TTL);
    c.add_host_spec("host-a", 1, HostSpec::default().vm("web1"));
    c.add_host_spec("host-b", 2, HostSpec::default().vm("web2").vm("cli"));
    all_listed(&c, &["host-a", "host-b"], 2);
    apply(
        &c,
        "host-a",
        &group("web", VIP, &["web1", "web2"]),
        &["host-a", "host-b"],
        &["web"],
    );
    claim_and_wait(
        &c,
        "web1",
        VIP,
        "web",
        &[("host-a", "local"), ("host-b", "host-a")],
    );
    let web1 = c.vm("web1").mac.clone();
    let web2 = c.vm("web2").mac.clone();

    c.stop_etcd();
    // the sessions notice (the keep-alive fails)
    let down = wait_until(SOON, || {
        ["host-a", "host-b"].iter().all(|h| {
            c.local_entry(h)
                .is_some_and(|e| e["session"].as_str().is_some_and(|s| s != "up"))
        })
    });
    assert!(
        down.is_some(),
        "the sessions did not see etcd go:\n{}",
        c.logs()
    );
    // forwarding goes on with the last state: host-b still steers the VIP through the
    // overlay to web1 on host-a, well past the lease TTL
    std::thread::sleep(Duration::from_secs(u64::from(TTL) + 1));
    assert_eq!(
        answered(&c, "cli", VIP, 10),
        10,
        "VIP traffic across hosts stopped with etcd down:\n{}",
        c.logs()
    );
    assert_eq!(c.arp_answer("cli", VIP).as_deref(), Some(web1.as_str()));
    // the VRRP pair fails over meanwhile: web2 (host-b) claims; its host applies it at once
    let _ = c.vm_run(
        "web1",
        &["ip", "addr", "del", &format!("{VIP}/32"), "dev", "eth0"],
    );
    c.claim("web2", VIP);
    let t = wait_until(SOON, || c.owner_seen("host-b", "web") == local("web2"));
    assert!(
        t.is_some(),
        "the claim was not applied locally:\n{}",
        c.logs()
    );
    println!(
        "claim applied on host-b with etcd down after {:?}",
        t.unwrap()
    );
    assert!(c.pings("cli", VIP), "the new owner is not reached");
    assert_eq!(c.arp_answer("cli", VIP).as_deref(), Some(web2.as_str()));
    assert_eq!(
        c.owner_seen("host-a", "web"),
        local("web1"),
        "host-a cannot know yet"
    );

    // etcd returns: the pending claim is written and host-a installs it
    c.start_etcd();
    let back = Instant::now();
    let t = wait_until(SOON, || {
        c.owner_record("web")
            .is_some_and(|r| r["owners"][0]["host"] == "host-b" && r["owners"][0]["port"] == "web2")
            && c.owner_seen("host-a", "web") == at("host-b", "web2")
            && c.owner_seen("host-b", "web") == local("web2")
    });
    assert!(
        t.is_some(),
        "no convergence after etcd returned: a {:?} b {:?} record {:?}\n{}",
        c.owner_seen("host-a", "web"),
        c.owner_seen("host-b", "web"),
        c.owner_record("web"),
        c.logs()
    );
    println!(
        "converged {:?} after etcd was healthy again",
        back.elapsed()
    );
    assert!(c.pings("cli", VIP));
}

#[test]
fn an_underlay_cut_and_heal_ends_with_one_owner_the_latest_by_etcd_order() {
    if !can_run() {
        return;
    }
    let mut c = Cluster::new("fcut", TTL);
    c.add_host_spec(
        "host-a",
        1,
        HostSpec::default().vm("web1").vm("web3").vm("cli1"),
    );
    c.add_host_spec("host-b", 2, HostSpec::default().vm("web2").vm("cli2"));
    all_listed(&c, &["host-a", "host-b"], 2);
    apply(
        &c,
        "host-a",
        &group("web", VIP, &["web1", "web2", "web3"]),
        &["host-a", "host-b"],
        &["web"],
    );
    claim_and_wait(
        &c,
        "web1",
        VIP,
        "web",
        &[("host-a", "local"), ("host-b", "host-a")],
    );
    let lost_before = c.metric("host-a", "vswitch_cluster_owner_conflicts_lost_total");

    // cut host-a off: it loses etcd and host-b; its lease expires and host-b drops it
    c.cut("host-a");
    let gone = wait_until(SOON, || c.listed("host-b") == vec!["host-b".to_string()]);
    assert!(gone.is_some(), "host-b still lists host-a:\n{}", c.logs());
    println!("host-b dropped host-a {:?} after the cut", gone.unwrap());
    // each side fails over on its own (split brain): web2 claims on host-b (written: host-b
    // still has etcd), then web3 claims on host-a (kept, pending: host-a has no etcd)
    let _ = c.vm_run(
        "web1",
        &["ip", "addr", "del", &format!("{VIP}/32"), "dev", "eth0"],
    );
    c.claim("web2", VIP);
    let t = wait_until(SOON, || {
        c.owner_record("web")
            .is_some_and(|r| r["owners"][0]["host"] == "host-b" && r["owners"][0]["port"] == "web2")
    });
    assert!(t.is_some(), "host-b's claim not written:\n{}", c.logs());
    c.claim("web3", VIP);
    let t = wait_until(SOON, || c.owner_seen("host-a", "web") == local("web3"));
    assert!(
        t.is_some(),
        "host-a did not apply web3's claim:\n{}",
        c.logs()
    );
    assert!(
        c.metric("host-a", "vswitch_cluster_owner_writes_pending") >= 1,
        "host-a's claim is not pending:\n{}",
        c.ctl("host-a", &["metrics"]).1
    );

    // heal: host-a registers again; its pending write was based on the record it last saw,
    // and etcd has a later one (host-b's): host-a's write loses and it converges
    c.heal("host-a");
    let healed = Instant::now();
    let t = wait_until(SOON, || {
        c.owner_seen("host-a", "web") == at("host-b", "web2")
            && c.owner_seen("host-b", "web") == local("web2")
            && c.listed("host-b").len() == 2
    });
    assert!(
        t.is_some(),
        "no single owner after the heal: a {:?} b {:?} record {:?}\n{}",
        c.owner_seen("host-a", "web"),
        c.owner_seen("host-b", "web"),
        c.owner_record("web"),
        c.logs()
    );
    println!("one owner everywhere {:?} after the heal", healed.elapsed());
    let r = c.owner_record("web").unwrap();
    assert_eq!(r["owners"].as_array().map(Vec::len), Some(1), "{r}");
    assert_eq!(r["owners"][0]["host"], "host-b", "{r}");
    assert_eq!(r["owners"][0]["port"], "web2", "{r}");
    // host-a either lost its conditional write or, having read host-b's later record
    // first, dropped the claim it had not written
    println!(
        "host-a lost {} conditional writes",
        c.metric("host-a", "vswitch_cluster_owner_conflicts_lost_total") - lost_before
    );
    assert_eq!(
        c.metric("host-a", "vswitch_cluster_owner_writes_pending"),
        0,
        "host-a still has a pending write"
    );
    // traffic from both hosts goes to the one owner: web3 gives the address up (its
    // keepalived sees web2's adverts again), and a client on host-a, whose switch answers
    // ARP with web2's MAC, reaches web2 through the overlay
    let _ = c.vm_run(
        "web3",
        &["ip", "addr", "del", &format!("{VIP}/32"), "dev", "eth0"],
    );
    let web2 = c.vm("web2").mac.clone();
    assert_eq!(c.arp_answer("cli1", VIP).as_deref(), Some(web2.as_str()));
    let reached = wait_until(SOON, || c.pings("cli1", VIP) && c.pings("cli2", VIP));
    assert!(reached.is_some(), "the owner is not reached:\n{}", c.logs());
}

#[test]
fn a_restarted_agent_resyncs_from_etcd() {
    if !can_run() {
        return;
    }
    let mut c = Cluster::new("frst", TTL);
    c.add_host_spec("host-a", 1, HostSpec::default().vm("web1"));
    c.add_host_spec("host-b", 2, HostSpec::default().vm("web2").vm("cli"));
    all_listed(&c, &["host-a", "host-b"], 2);
    apply(
        &c,
        "host-a",
        &group("web", VIP, &["web1", "web2"]),
        &["host-a", "host-b"],
        &["web"],
    );
    claim_and_wait(
        &c,
        "web1",
        VIP,
        "web",
        &[("host-a", "local"), ("host-b", "host-a")],
    );

    // 1. the agent of a host without the owner dies; meanwhile the cluster gains a group
    //    and web1 claims it. The restarted agent has it all from etcd.
    c.kill9("host-b");
    let both = format!(
        "{}{}",
        group("web", VIP, &["web1", "web2"]),
        group("db", VIP2, &["web1", "web2"])
    );
    apply(&c, "host-a", &both, &["host-a"], &["web", "db"]);
    claim_and_wait(&c, "web1", VIP2, "db", &[("host-a", "local")]);
    c.restart_agent("host-b");
    let started = Instant::now();
    let t = wait_until(SOON, || {
        c.owner_seen("host-b", "web") == at("host-a", "web1")
            && c.owner_seen("host-b", "db") == at("host-a", "web1")
    });
    assert!(
        t.is_some(),
        "host-b did not resync: web {:?} db {:?}\n{}",
        c.owner_seen("host-b", "web"),
        c.owner_seen("host-b", "db"),
        c.logs()
    );
    println!("host-b resynced {:?} after its restart", started.elapsed());
    let reached = wait_until(SOON, || c.pings("cli", VIP) && c.pings("cli", VIP2));
    assert!(
        reached.is_some(),
        "VIPs not reached from host-b:\n{}",
        c.logs()
    );

    // 2. the owner's agent dies and comes back at once (within its lease): web1 keeps both
    //    VIPs without a GARP, and host-b keeps steering to it
    let writes_before = c.metric("host-a", "vswitch_cluster_owner_writes_total");
    c.kill9("host-a");
    c.restart_agent("host-a");
    let started = Instant::now();
    let t = wait_until(SOON, || {
        c.owner_seen("host-a", "web") == local("web1")
            && c.owner_seen("host-a", "db") == local("web1")
            && c.listed("host-a").len() == 2
    });
    assert!(
        t.is_some(),
        "host-a lost its owners over a restart: web {:?} db {:?}\n{}",
        c.owner_seen("host-a", "web"),
        c.owner_seen("host-a", "db"),
        c.logs()
    );
    println!(
        "host-a back with its owners {:?} after its restart",
        started.elapsed()
    );
    assert_eq!(c.owner_seen("host-b", "web"), at("host-a", "web1"));
    let reached = wait_until(SOON, || c.pings("cli", VIP) && c.pings("cli", VIP2));
    assert!(
        reached.is_some(),
        "VIPs not reached after host-a's restart:\n{}",
        c.logs()
    );
    let r = c.owner_record("web").unwrap();
    assert_eq!(r["owners"][0]["host"], "host-a", "{r}");
    println!(
        "host-a wrote {} records after its restart (was {writes_before} before, the counter restarts)",
        c.metric("host-a", "vswitch_cluster_owner_writes_total")
    );

    // 3. the owner's agent is down longer than its lease: host-b drops host-a's locations;
    //    when host-a comes back (its VM never GARPs again) host-b installs web1 @ host-a
    //    from the record again
    c.kill9("host-a");
    let gone = wait_until(SOON, || c.listed("host-b") == vec!["host-b".to_string()]);
    assert!(gone.is_some(), "host-b still lists host-a:\n{}", c.logs());
    assert_ne!(c.owner_seen("host-b", "web"), at("host-a", "web1"));
    c.restart_agent("host-a");
    let started = Instant::now();
    let t = wait_until(SOON, || {
        c.owner_seen("host-b", "web") == at("host-a", "web1")
            && c.owner_seen("host-b", "db") == at("host-a", "web1")
            && c.owner_seen("host-a", "web") == local("web1")
    });
    assert!(
        t.is_some(),
        "host-b did not get web1 @ host-a back: web {:?} db {:?}; host-a web {:?}\n{}",
        c.owner_seen("host-b", "web"),
        c.owner_seen("host-b", "db"),
        c.owner_seen("host-a", "web"),
        c.logs()
    );
    println!(
        "host-b steers to web1 @ host-a again {:?} after host-a's restart",
        started.elapsed()
    );
    let reached = wait_until(SOON, || c.pings("cli", VIP) && c.pings("cli", VIP2));
    assert!(reached.is_some(), "VIPs not reached:\n{}", c.logs());
    if std::env::var_os("LAB_LOGS").is_some() {
        println!("{}", c.logs());
    }
}
