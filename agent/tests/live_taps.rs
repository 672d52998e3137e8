//! Live tests of the switch's persistent taps: a namespace on a `tap` port keeps its
//! interface, addresses and routes across a crash (`kill -9`) and a clean restart of the
//! switch, and the restarted switch forwards through the same devices; a reload that drops
//! a port (or changes its binding) deletes its tap; `vswitch cleanup` deletes the taps and
//! refuses while the switch runs. They need root; without it each test prints
//! "SKIPPED: needs root (live test)".
//!
//! Run serially: `cargo test -p agent --test live_taps -- --test-threads=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{require_root, wait_until, Backend, Lab, Vm, VmSpec};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// The VM's NIC as `ip -o link` and `ip -br addr` print it, and its routes.
fn nic(vm: &Vm) -> (String, String, String) {
    let link = vm.must(&format!("ip -o link show dev {}", vm.dev));
    let addr = vm.must(&format!("ip -br addr show dev {}", vm.dev));
    let routes = vm.must(&format!("ip route show dev {}", vm.dev));
    (link, addr, routes)
}

/// The interface index in `ip -o link` output ("12: eth0: <...").
fn ifindex(link: &str) -> &str {
    link.split(':').next().unwrap_or("").trim()
}

fn in_root(ifname: &str) -> bool {
    Path::new("/sys/class/net").join(ifname).exists()
}

/// Whether the VM still has its NIC (`eth0`).
fn has_nic(vm: &Vm) -> bool {
    vm.run(&format!("ip link show dev {}", vm.dev)).ok()
}

#[test]
fn taps_survive_kill_and_restart_of_the_switch() {
    if !require_root() {
        return;
    }
    let lab = Lab::new("surv", 251);
    lab.add_vm(VmSpec::new("vm1", Backend::Tap));
    lab.add_vm(VmSpec::new("vm2", Backend::Tap));
    lab.start();
    let (vm1, vm2) = (lab.vm("vm1"), lab.vm("vm2"));
    vm1.ping_ok(vm2.ip4, 2);
    let before = [nic(&vm1), nic(&vm2)];
    for (vm, (_, addr, routes)) in [&vm1, &vm2].into_iter().zip(&before) {
        assert!(addr.contains(&vm.ip4.to_string()), "{addr}");
        assert!(addr.contains(&vm.ip6.to_string()), "{addr}");
        assert!(
            routes.contains(&format!("10.{}.0.0/24", lab.net)),
            "{routes}"
        );
    }

    // A crash: SIGKILL, nothing cleaned up. The VMs keep their NICs, addresses and routes.
    lab.kill_switch();
    assert!(lab.socket.exists(), "a killed switch leaves its socket");
    for (vm, (link, addr, routes)) in [&vm1, &vm2].into_iter().zip(&before) {
        let (l, a, r) = nic(vm);
        println!("{} after kill -9: {}", vm.name, a.trim());
        assert_eq!(
            ifindex(&l),
            ifindex(link),
            "{} has another device: {l}",
            vm.name
        );
        assert!(l.contains("NO-CARRIER"), "nobody holds the tap: {l}");
        let addrs = |s: &str| {
            s.split_whitespace()
                .skip(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(addrs(&a), addrs(addr), "{}'s addresses changed", vm.name);
        // (marked "linkdown" while nobody holds the tap)
        assert_eq!(
            r.replace(" linkdown", ""),
            *routes,
            "{}'s routes changed",
            vm.name
        );
        assert!(
            !in_root(&vm.host_if),
            "{} is back in the root namespace",
            vm.host_if
        );
    }

    // The switch starts again (over the stale socket) and attaches the same devices where
    // they are: in the VMs, renamed eth0. It creates no new tap.
    lab.start_switch();
    for vm in [&vm1, &vm2] {
        let took = lab.wait_port_up(&vm.name, secs(5.0));
        println!("{} up {took:?} after the restart", vm.name);
        assert!(
            !in_root(&vm.host_if),
            "the restarted switch made a new tap {}",
            vm.host_if
        );
    }
    for (vm, (link, _, _)) in [&vm1, &vm2].into_iter().zip(&before) {
        let (l, _, _) = nic(vm);
        assert_eq!(ifindex(&l), ifindex(link), "{l}");
        assert!(
            !l.contains("NO-CARRIER"),
            "the switch holds the tap again: {l}"
        );
    }
    vm1.ping_ok(vm2.ip4, 3);
    vm2.ping_ok(vm1.ip6, 2);
    lab.tcp_transfer(&vm1, &vm2, vm2.ip4, 5301, 1 << 20);

    // A clean stop (SIGTERM) keeps them too.
    lab.restart_switch(false);
    for (vm, (link, _, _)) in [&vm1, &vm2].into_iter().zip(&before) {
        assert_eq!(ifindex(&nic(vm).0), ifindex(link));
    }
    vm1.ping_ok(vm2.ip4, 2);
    lab.finish();
}

/// The config without the `[[port]]` table of `port`.
fn without_port(config: &str, port: &str) -> String {
    let mut parts = config.split("\n[[port]]\n");
    let mut out = parts.next().unwrap_or("").to_string();
    for p in parts {
        if !p.starts_with(&format!("name = \"{port}\"\n")) {
            out.push_str("\n[[port]]\n");
            out.push_str(p);
        }
    }
    out
}

#[test]
fn reload_deletes_the_taps_of_removed_or_rebound_ports() {
    if !require_root() {
        return;
    }
    let lab = Lab::new("rmtp", 252);
    for n in ["vm1", "vm2", "vm3"] {
        lab.add_vm(VmSpec::new(n, Backend::Tap));
    }
    lab.start();
    let (vm1, vm2, vm3) = (lab.vm("vm1"), lab.vm("vm2"), lab.vm("vm3"));
    vm1.ping_ok(vm3.ip4, 1);

    // vm3's port leaves the config: its tap (eth0 in vm3) is deleted.
    let cfg = without_port(&lab.render_config(), "vm3");
    assert!(!cfg.contains("\"vm3\"") && cfg.contains("\"vm2\""), "{cfg}");
    lab.write_config_text(&cfg);
    let o = lab.reload();
    assert!(o.ok(), "{o}");
    let took = wait_until(secs(3.0), || !has_nic(&vm3));
    assert!(took.is_some(), "vm3's tap survived the removal of its port");
    println!("vm3's tap deleted {took:?} after the reload");
    assert!(lab.wait_log("tap of a removed port deleted", secs(2.0)));
    assert!(!in_root(&vm3.host_if));
    vm1.ping_ok(vm2.ip4, 2);

    // vm2's port is bound to another tap: the old one goes, the new one is created.
    let new_tap = format!("{}x", vm2.host_if);
    lab.track_link(&new_tap);
    let cfg = cfg.replace(
        &format!("tap = \"{}\"\n", vm2.host_if),
        &format!("tap = \"{new_tap}\"\n"),
    );
    lab.write_config_text(&cfg);
    let o = lab.reload();
    assert!(o.ok(), "{o}");
    assert!(
        wait_until(secs(3.0), || !has_nic(&vm2)).is_some(),
        "vm2's old tap survived the change of binding"
    );
    assert!(in_root(&new_tap), "the new tap {new_tap} was not created");
    vm1.must(&format!("ip -br link show dev {}", vm1.dev));
    assert!(lab.port_oper_up("vm1"));
    // Teardown's `vswitch cleanup` deletes vm1's tap and the new one.
    lab.finish();
    assert!(!in_root(&new_tap));
}

#[test]
fn cleanup_deletes_the_taps_and_refuses_while_the_switch_runs() {
    if !require_root() {
        return;
    }
    let lab = Lab::new("clnu", 253);
    lab.add_vm(VmSpec::new("vm1", Backend::Tap));
    lab.add_vm(VmSpec::new("vm2", Backend::Tap));
    lab.add_vm(VmSpec::new("vm3", Backend::Netdev));
    lab.start();
    let (vm1, vm2, vm3) = (lab.vm("vm1"), lab.vm("vm2"), lab.vm("vm3"));
    vm1.ping_ok(vm2.ip4, 1);

    let o = lab.cleanup_out();
    assert!(!o.ok(), "cleanup ran while the switch runs\n{o}");
    assert!(o.stderr.contains("a switch is running on"), "{o}");
    assert!(has_nic(&vm1) && has_nic(&vm2));
    vm1.ping_ok(vm3.ip4, 1);

    lab.kill_switch();
    assert!(lab.socket.exists());
    let o = lab.cleanup_out();
    println!("{}", o.stdout.trim());
    assert!(o.ok(), "{o}");
    assert!(o.stdout.contains("removed stale control socket"), "{o}");
    for vm in [&vm1, &vm2] {
        assert!(
            o.stdout.contains(&format!("tap {} deleted", vm.host_if)),
            "{o}"
        );
        assert!(!has_nic(vm), "{}'s tap is still there", vm.name);
    }
    assert!(
        o.stdout
            .contains(&format!("netdev {} left alone", vm3.host_if)),
        "{o}"
    );
    assert!(!lab.socket.exists());
    // The veth of the netdev port is not the switch's: untouched.
    assert!(has_nic(&vm3) && in_root(&vm3.host_if));

    let o = lab.cleanup_out();
    assert!(o.ok(), "{o}");
    assert!(
        o.stdout.contains(&format!("tap {} not found", vm1.host_if)),
        "{o}"
    );
    lab.finish();
}
