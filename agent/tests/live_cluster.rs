//! Live multi-host tests: real etcd (three members) and real `vswitch run` agents, each in
//! its own network namespace (see `cluster_lab`). Root only; they skip with a message when
//! not root or when etcd is not installed. The labs take turns (a lock in `cluster_lab`),
//! so the file also passes under `cargo test --workspace`'s parallel threads.
//!
//! Every wait polls with a generous deadline; no assertion depends on a timing threshold
//! (the times are printed, for the record).

#![allow(clippy::unwrap_used)]

mod cluster_lab;

use std::time::{Duration, Instant};

use cluster_lab::{can_run, wait_until, Cluster};

/// Lease TTL of the test hosts.
const TTL: u32 = 3;
/// How long to wait for something that should take a moment.
const SOON: Duration = Duration::from_secs(20);

fn lists(c: &Cluster, on: &str, host: &str) -> bool {
    c.listed(on).iter().any(|h| h == host)
}

#[test]
fn two_hosts_see_each_other() {
    if !can_run() {
        return;
    }
    let mut c = Cluster::new("two", TTL);
    c.add_host("host-a", 1, &[("web1", "ta-web1")]);
    c.add_host("host-b", 2, &[("db1", "tb-db1"), ("db2", "tb-db2")]);
    let t = wait_until(SOON, || {
        lists(&c, "host-a", "host-b") && lists(&c, "host-b", "host-a")
    });
    assert!(t.is_some(), "the hosts do not see each other\n{}", c.logs());
    println!("both hosts listed after {t:?}");

    let v = c.show_hosts("host-a").unwrap();
    let a = v.as_array().unwrap();
    assert_eq!(a[0]["host"], "host-a", "{v}");
    assert_eq!(a[0]["local"], true);
    assert_eq!(a[0]["vtep"], "10.250.0.1");
    assert_eq!(a[0]["session"], "up");
    assert_eq!(a[0]["ports"], 1);
    let b = a.iter().find(|h| h["host"] == "host-b").unwrap();
    assert_eq!(b["local"], false);
    assert_eq!(b["vtep"], "10.250.0.2");
    assert!(b["session"].is_null(), "{v}");
    assert_eq!(b["version"], env!("CARGO_PKG_VERSION"));
    // host-b's two ports are known on host-a once its records have arrived
    let ports_b = wait_until(SOON, || {
        c.show_hosts("host-a")
            .ok()
            .and_then(|v| {
                v.as_array()
                    .and_then(|a| a.iter().find(|h| h["host"] == "host-b").cloned())
            })
            .is_some_and(|b| b["ports"] == 2)
    });
    assert!(ports_b.is_some(), "{:?}", c.show_hosts("host-a"));

    // the records in etcd, read with etcdctl
    let kv = c.etcd_get_prefix("/vswitch/v1/").unwrap();
    let host_a: serde_json::Value = serde_json::from_str(&kv["/vswitch/v1/hosts/host-a"]).unwrap();
    assert_eq!(host_a["vtep"], "10.250.0.1");
    let web1: serde_json::Value = serde_json::from_str(&kv["/vswitch/v1/ports/web1"]).unwrap();
    assert_eq!(web1["host"], "host-a");
    assert_eq!(web1["mac"], "02:fa:00:00:01:01");
    assert_eq!(web1["ips"][0], "10.251.1.1");
    assert_eq!(web1["vlan"], 0);
    assert!(kv.contains_key("/vswitch/v1/ports/db2"), "{kv:?}");

    // the human table
    let text = std::process::Command::new(cluster_lab::VSWITCH)
        .args(["ctl", "--socket"])
        .arg(&c.host("host-a").socket)
        .args(["show", "hosts"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(text.starts_with("HOST"), "{text}");
    assert!(text.contains("host-b  10.250.0.2"), "{text}");
    // the session gauge
    let m = std::process::Command::new(cluster_lab::VSWITCH)
        .args(["ctl", "--socket"])
        .arg(&c.host("host-a").socket)
        .arg("metrics")
        .output()
        .unwrap();
    let m = String::from_utf8_lossy(&m.stdout).to_string();
    assert!(m.contains("vswitch_cluster_session_state 2\n"), "{m}");
    assert!(m.contains("vswitch_cluster_remote_hosts 1\n"), "{m}");
}

#[test]
fn a_killed_host_disappears_after_its_lease_ttl() {
    if !can_run() {
        return;
    }
    let mut c = Cluster::new("kill", TTL);
    c.add_host("host-a", 1, &[("web1", "ta-web1")]);
    c.add_host("host-b", 2, &[("db1", "tb-db1")]);
    assert!(
        wait_until(SOON, || lists(&c, "host-b", "host-a")).is_some(),
        "{}",
        c.logs()
    );
    let killed = Instant::now();
    c.kill9("host-a");
    // gone from host-b's view after the TTL (the deadline is generous; the time is printed)
    let t = wait_until(SOON + Duration::from_secs(u64::from(TTL)), || {
        !lists(&c, "host-b", "host-a")
    });
    assert!(t.is_some(), "host-b still lists host-a\n{}", c.logs());
    println!(
        "killed host gone from the other host's view after {:?} (lease TTL {TTL}s)",
        killed.elapsed()
    );
    // host-b is still there, and so is its own session
    assert_eq!(c.listed("host-b"), ["host-b"]);
    assert_eq!(c.local_entry("host-b").unwrap()["session"], "up");
    // and its records are gone from etcd
    let kv = c.etcd_get_prefix("/vswitch/v1/").unwrap();
    assert!(!kv.contains_key("/vswitch/v1/hosts/host-a"), "{kv:?}");
    assert!(!kv.contains_key("/vswitch/v1/ports/web1"), "{kv:?}");
    assert!(kv.contains_key("/vswitch/v1/ports/db1"), "{kv:?}");
    assert!(
        c.log("host-b").contains("host left the cluster"),
        "{}",
        c.logs()
    );
}

#[test]
fn a_port_name_clash_names_the_other_host() {
    if !can_run() {
        return;
    }
    let mut c = Cluster::new("clash", TTL);
    c.add_host("host-a", 1, &[("web1", "ta-web1")]);
    assert!(wait_until(SOON, || {
        c.etcd_get_prefix("/vswitch/v1/ports/")
            .is_some_and(|kv| kv.contains_key("/vswitch/v1/ports/web1"))
    })
    .is_some());
    c.add_host("host-b", 2, &[("web1", "tb-web1"), ("db1", "tb-db1")]);
    // host-b publishes db1 but not web1, says why, and shows it
    let clash = wait_until(SOON, || {
        c.local_entry("host-b").is_some_and(|h| {
            h["clashes"].as_array().is_some_and(|v| {
                v.iter()
                    .any(|x| x["port"] == "web1" && x["holder"] == "host-a")
            })
        })
    });
    assert!(
        clash.is_some(),
        "{:?}\n{}",
        c.show_hosts("host-b"),
        c.logs()
    );
    let b = c.local_entry("host-b").unwrap();
    assert_eq!(b["ports"], 1, "{b}");
    let log = c.log("host-b");
    assert!(
        log.contains("port_name_clash")
            && log.contains("host host-a already has a port of that name"),
        "{log}"
    );
    let text = std::process::Command::new(cluster_lab::VSWITCH)
        .args(["ctl", "--socket"])
        .arg(&c.host("host-b").socket)
        .args(["show", "hosts"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(
        text.contains("not published: port web1 (host host-a holds that name"),
        "{text}"
    );
    // etcd still says web1 is host-a's
    let kv = c.etcd_get_prefix("/vswitch/v1/ports/").unwrap();
    let web1: serde_json::Value = serde_json::from_str(&kv["/vswitch/v1/ports/web1"]).unwrap();
    assert_eq!(web1["host"], "host-a");
    assert!(kv.contains_key("/vswitch/v1/ports/db1"));

    // when host-a goes away, host-b takes the name
    c.kill9("host-a");
    let taken = wait_until(SOON + Duration::from_secs(u64::from(TTL)), || {
        c.etcd_get_prefix("/vswitch/v1/ports/").is_some_and(|kv| {
            kv.get("/vswitch/v1/ports/web1")
                .is_some_and(|v| v.contains("\"host\":\"host-b\""))
        })
    });
    assert!(taken.is_some(), "{}", c.logs());
    assert!(c.local_entry("host-b").unwrap()["clashes"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn etcd_down_and_back_the_agent_registers_again() {
    if !can_run() {
        return;
    }
    let mut c = Cluster::new("down", TTL);
    c.add_host("host-a", 1, &[("web1", "ta-web1")]);
    assert!(
        wait_until(SOON, || c
            .local_entry("host-a")
            .is_some_and(|h| h["session"] == "up"))
        .is_some(),
        "{}",
        c.logs()
    );
    c.stop_etcd();
    let down = wait_until(SOON, || {
        c.local_entry("host-a")
            .is_some_and(|h| h["session"] != "up")
    });
    assert!(
        down.is_some(),
        "the agent did not notice etcd is gone\n{}",
        c.logs()
    );
    // the switch itself keeps answering while etcd is away
    assert!(c.show_hosts("host-a").is_ok());
    let back = Instant::now();
    c.start_etcd();
    let up = wait_until(SOON + SOON, || {
        c.local_entry("host-a")
            .is_some_and(|h| h["session"] == "up")
            && c.etcd_get_prefix("/vswitch/v1/").is_some_and(|kv| {
                kv.contains_key("/vswitch/v1/hosts/host-a")
                    && kv.contains_key("/vswitch/v1/ports/web1")
            })
    });
    assert!(up.is_some(), "not registered again\n{}", c.logs());
    println!(
        "registered again {:?} after the etcd restart began",
        back.elapsed()
    );
    assert!(c.log("host-a").contains("cluster_session_lost"));
    // and a second host sees it
    c.add_host("host-b", 2, &[]);
    assert!(wait_until(SOON, || lists(&c, "host-b", "host-a")).is_some());
}

#[test]
fn standalone_show_hosts_says_cluster_mode_is_off() {
    // no root needed: a switch with no ports and no [cluster]
    let dir = std::env::temp_dir().join(format!("vswitch-standalone-hosts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("s.toml");
    std::fs::write(
        &cfg,
        format!("[switch]\nstate_dir = {:?}\n", dir.display().to_string()),
    )
    .unwrap();
    let sock = dir.join("s.sock");
    let mut child = std::process::Command::new(cluster_lab::VSWITCH)
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--socket")
        .arg(&sock)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = || {
        std::process::Command::new(cluster_lab::VSWITCH)
            .args(["ctl", "--socket"])
            .arg(&sock)
            .args(["show", "hosts"])
            .output()
            .unwrap()
    };
    let answered = wait_until(Duration::from_secs(20), || {
        String::from_utf8_lossy(&out().stderr).contains("cluster mode is off")
    });
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(answered.is_some(), "{:?}", out());
}

#[test]
fn a_reload_republishes_the_ports() {
    if !can_run() {
        return;
    }
    let mut c = Cluster::new("rld", TTL);
    c.add_host("host-a", 1, &[("web1", "ta-web1"), ("web2", "ta-web2")]);
    let ports = |c: &Cluster| {
        c.etcd_get_prefix("/vswitch/v1/ports/")
            .map(|kv| kv.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let both = ["/vswitch/v1/ports/web1", "/vswitch/v1/ports/web2"];
    assert!(
        wait_until(SOON, || ports(&c) == both).is_some(),
        "{:?}\n{}",
        ports(&c),
        c.logs()
    );
    // web2 leaves the file, web3 joins it; the [cluster] section stays
    let cfg = &c.host("host-a").config;
    let text = std::fs::read_to_string(cfg).unwrap();
    let (head, cluster) = text.split_once("[cluster]").unwrap();
    let head = head.replace(
        "name = \"web2\"\ntap = \"ta-web2\"",
        "name = \"web3\"\ntap = \"ta-web3\"",
    );
    std::fs::write(cfg, format!("{head}[cluster]{cluster}")).unwrap();
    let out = std::process::Command::new(cluster_lab::VSWITCH)
        .args(["ctl", "--socket"])
        .arg(&c.host("host-a").socket)
        .arg("reload")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let after = ["/vswitch/v1/ports/web1", "/vswitch/v1/ports/web3"];
    assert!(
        wait_until(SOON, || ports(&c) == after).is_some(),
        "{:?}\n{}",
        ports(&c),
        c.logs()
    );
    assert_eq!(c.local_entry("host-a").unwrap()["ports"], 2);
    // a reload that changes [cluster] says the session keeps its settings
    let text = std::fs::read_to_string(cfg).unwrap();
    std::fs::write(
        cfg,
        text.replace("lease_ttl_secs = 3", "lease_ttl_secs = 4"),
    )
    .unwrap();
    let out = std::process::Command::new(cluster_lab::VSWITCH)
        .args(["ctl", "--socket"])
        .arg(&c.host("host-a").socket)
        .arg("reload")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        wait_until(SOON, || c
            .log("host-a")
            .contains("cluster_settings_changed"))
        .is_some(),
        "{}",
        c.logs()
    );
}

#[test]
fn tls_with_client_certificates() {
    if !can_run() {
        return;
    }
    let mut c = Cluster::new_tls("tls", TTL);
    c.add_host("host-a", 1, &[("web1", "ta-web1")]);
    c.add_host("host-b", 2, &[("db1", "tb-db1")]);
    let t = wait_until(SOON, || {
        lists(&c, "host-a", "host-b") && lists(&c, "host-b", "host-a")
    });
    assert!(
        t.is_some(),
        "the hosts do not see each other over TLS\n{}",
        c.logs()
    );
    assert_eq!(c.local_entry("host-a").unwrap()["session"], "up");
    let kv = c.etcd_get_prefix("/vswitch/v1/ports/").unwrap();
    assert!(kv.contains_key("/vswitch/v1/ports/web1"), "{kv:?}");
}

#[test]
fn vms_on_a_host_reach_each_other_through_its_switch() {
    if !can_run() {
        return;
    }
    let mut c = Cluster::new("vms", TTL);
    c.add_host_spec(
        "host-a",
        1,
        cluster_lab::HostSpec::default().vm("web1").vm("web2"),
    );
    let up = wait_until(SOON, || {
        c.ctl_json("host-a", &["show", "ports"])
            .ok()
            .and_then(|v| v.as_array().cloned())
            .is_some_and(|ports| ports.len() == 2 && ports.iter().all(|p| p["oper_up"] == true))
    });
    assert!(up.is_some(), "ports not up:\n{}", c.logs());
    let (web1, web2) = (c.vm("web1").clone(), c.vm("web2").clone());
    assert_eq!(web1.ip4, "10.251.0.17");
    assert_eq!(web2.mac, "02:fb:00:00:01:02");
    let (ok, out) = c.vm_run(
        "web1",
        &["ping", "-c", "2", "-i", "0.2", "-W", "2", &web2.ip4],
    );
    assert!(ok, "ping web1 → web2 on one host: {out}\n{}", c.logs());
    let (ok, out) = c.vm_run(
        "web2",
        &["ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", &web1.ip6],
    );
    assert!(ok, "ping6 web2 → web1 on one host: {out}\n{}", c.logs());
    // the port records carry the VMs' addresses
    let recs = c.etcd_get_prefix("/vswitch/v1/ports/").unwrap();
    let web1_rec = &recs["/vswitch/v1/ports/web1"];
    assert!(
        web1_rec.contains("10.251.0.17") && web1_rec.contains("fd51::11"),
        "{web1_rec}"
    );
}
