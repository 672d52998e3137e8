//! Live test of a VM's live migration in a cluster (root, network namespaces, real etcd;
//! skipped otherwise): the port of the VM that owns a VIP disappears from host A and
//! appears on host C with the same name and MAC, as an orchestrator moves it (A's file
//! loses the `[[port]]`, C's gains it, each reloaded). The VM keeps its addresses and
//! sends nothing: a migrated guest does not GARP its VIP.
//!
//! What must hold (issue 10, "Live migration"): the VM keeps its VIP ownership (one
//! record in etcd, now naming host C), every host forwards to the new location, and host A
//! does not treat the migration as a crash: no step-down advert on the owner's behalf and
//! no release.
//!
//! Run: `cargo test -p agent --test live_migration -- --test-threads=1`.

#![allow(clippy::unwrap_used)]

mod cluster_lab;

use std::time::Duration;

use cluster_lab::{can_run, wait_until, Cluster, HostSpec};

/// Lease TTL of the test hosts.
const TTL: u32 = 3;
/// "Eventually" (generous: the machine is shared).
const SOON: Duration = Duration::from_secs(30);
/// The VIP (in the VMs' subnet).
const VIP: &str = "10.251.0.200";
const GROUP: &str =
    "[[vip]]\nname = \"web\"\naddresses = [\"10.251.0.200\"]\ncandidates = [\"web1\", \"web2\"]\n";

#[test]
fn a_migrated_owner_keeps_its_vip_and_is_reached_at_its_new_host() {
    if !can_run() {
        return;
    }
    let mut c = Cluster::new("mig", TTL);
    c.add_host_spec("host-a", 1, HostSpec::default().vm("web1"));
    c.add_host_spec("host-b", 2, HostSpec::default().vm("web2").vm("cli"));
    c.add_host_spec("host-c", 3, HostSpec::default().vm("cli3"));
    let all = wait_until(SOON, || {
        ["host-a", "host-b", "host-c"]
            .iter()
            .all(|h| c.listed(h).len() == 3)
    });
    assert!(all.is_some(), "hosts do not see each other:\n{}", c.logs());
    let f = c.write_file("web.toml", GROUP);
    let (ok, out) = c.ctl("host-a", &["cluster", "apply", f.to_str().unwrap()]);
    assert!(ok, "cluster apply: {out}\n{}", c.logs());
    let installed = wait_until(SOON, || {
        ["host-a", "host-b", "host-c"]
            .iter()
            .all(|h| c.group(h, "web").is_some())
    });
    assert!(installed.is_some(), "group not installed:\n{}", c.logs());

    // web1's guest answers no ARP request (`arp_ignore = 8`), so no host can learn the
    // owner by asking (owner discovery): after the migration only the ownership record can
    // say who owns the VIP. Clients still reach it: the switches answer ARP for VIPs.
    let (ok, out) = c.vm_run("web1", &["sysctl", "-w", "net.ipv4.conf.all.arp_ignore=8"]);
    assert!(ok, "{out}");
    // web1 (host-a) claims the VIP the way keepalived does
    let _ = c.vm_run(
        "web1",
        &["ip", "addr", "add", &format!("{VIP}/32"), "dev", "eth0"],
    );
    let (ok, out) = c.vm_run(
        "web1",
        &["arping", "-U", "-c", "1", "-I", "eth0", "-s", VIP, VIP],
    );
    assert!(ok || out.contains("Sent 1"), "arping: {out}");
    let owned = wait_until(SOON, || {
        c.owner_seen("host-a", "web") == Some(("local".into(), "web1".into()))
            && c.owner_seen("host-b", "web") == Some(("host-a".into(), "web1".into()))
            && c.owner_seen("host-c", "web") == Some(("host-a".into(), "web1".into()))
    });
    assert!(owned.is_some(), "the claim did not spread:\n{}", c.logs());
    assert!(
        c.pings("cli", VIP),
        "VIP not reachable before the migration"
    );
    let epoch_before = c.owner_record("web").unwrap()["epoch"].as_u64().unwrap();
    let writes_before = c.metric("host-a", "vswitch_cluster_owner_writes_total");
    assert_eq!(writes_before, 1, "host-a wrote its claim");

    // migrate web1: host-a → host-c; the guest keeps its addresses (the VIP too) and
    // announces nothing
    let mac = c.vm("web1").mac.clone();
    // the guest is on no host for a while (the last copy round, the orchestrator's
    // switch-over): longer than host-a's write interval (1 s), so a release would be written
    c.migrate_vm_with("web1", "host-c", |c| {
        std::thread::sleep(Duration::from_millis(2500));
        assert_eq!(
            c.metric("host-a", "vswitch_cluster_owner_writes_total"),
            writes_before,
            "host-a wrote a release for the unplugged port:\n{}",
            c.log("host-a")
        );
        let r = c.owner_record("web").unwrap();
        assert_eq!(r["owners"][0]["host"], "host-a", "{r}");
    });
    let moved = wait_until(SOON, || {
        c.owner_seen("host-c", "web") == Some(("local".into(), "web1".into()))
            && c.owner_seen("host-a", "web") == Some(("host-c".into(), "web1".into()))
            && c.owner_seen("host-b", "web") == Some(("host-c".into(), "web1".into()))
    });
    assert!(
        moved.is_some(),
        "ownership did not follow the migrated port: a {:?} b {:?} c {:?}\n{}",
        c.owner_seen("host-a", "web"),
        c.owner_seen("host-b", "web"),
        c.owner_seen("host-c", "web"),
        c.logs()
    );
    println!(
        "every host sees web1 @ host-c {:?} after the migration",
        moved.unwrap()
    );
    let r = c.owner_record("web").unwrap();
    assert_eq!(r["owners"][0]["host"], "host-c", "{r}");
    assert_eq!(r["owners"][0]["port"], "web1", "{r}");
    assert_eq!(r["owners"][0]["mac"], mac.as_str(), "{r}");
    assert!(r["epoch"].as_u64().unwrap() >= epoch_before, "{r}");

    // traffic: the clients on host-b and host-c reach the VIP at its new place, and ARP
    // for the VIP is answered with the owner's MAC
    let reached = wait_until(SOON, || c.pings("cli", VIP) && c.pings("cli3", VIP));
    assert!(
        reached.is_some(),
        "VIP not reachable after the migration:\n{}",
        c.logs()
    );
    assert_eq!(c.arp_answer("cli", VIP).as_deref(), Some(mac.as_str()));

    // host-a did not treat it as a crash: it wrote nothing (no release) and sent no
    // step-down on web1's behalf
    assert_eq!(
        c.metric("host-a", "vswitch_cluster_owner_writes_total"),
        writes_before,
        "host-a wrote a release:\n{}",
        c.log("host-a")
    );
    let log = c.log("host-a");
    assert!(
        !log.contains("vrrp_step_down"),
        "host-a stepped down:\n{log}"
    );
    // host-c carried the record over (adopted it): nobody claimed or discovered anything
    let lc = c.log("host-c");
    assert!(lc.contains("vip_owner_adopted"), "{lc}");
    assert!(!lc.contains("reason=discovery"), "{lc}");
    if std::env::var_os("LAB_LOGS").is_some() {
        println!("{}", c.logs());
    }
}
