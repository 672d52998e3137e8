//! Live test of the "crossed priorities" recipe (docs/keepalived.md §6,
//! `configs/keepalived-crossed.toml`): two VIPs served active/active by DNS round-robin,
//! each a VRRP instance of its own with the priorities crossed — s1 is MASTER of VIP1 and
//! BACKUP of VIP2, s2 the reverse — and one `[[vip]]` group per instance.
//!
//! Real keepalived (VRRPv2, `advert_int 1`, as the recipe says) in the two server VMs, a UDP
//! echo service that answers with the server's name, and a client probing both VIPs at
//! 100 Hz the whole time. In every phase the test checks what the client sees (who answers
//! each VIP, its worst outage, that the VIP keepalived did not move lost nothing) and the
//! switch's owner view (`show vips`: owner port, owner MAC, epoch of the untouched group):
//!
//! 1. start: VIP1 on s1, VIP2 on s2;
//! 2. s1's keepalived stops (SIGTERM) → both on s2; s1 starts again → VIP1 back on s1
//!    (preemption), VIP2 stays on s2;
//! 3. the same with a keepalived crash (SIGKILL: s1 keeps VIP1 configured, s2 takes over
//!    on its master-down timer) and with a VM crash (s1's device deleted: the switch resigns
//!    VRID 51 — and only 51 — for it, s2 takes over after its skew time).
//!
//! Needs root; without it it prints "SKIPPED: needs root (live test)".
//! Run: `cargo test -p agent --test live_ha_crossed -- --nocapture` (about 60 s).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{require_root, vip_toml, wait_until, Backend, Lab, Proc, Vm, VmSpec, WatchReport};

/// The UDP echo service on both VIPs.
const PORT: u16 = 7000;
/// Client probe rate.
const HZ: u32 = 100;
/// keepalived's `advert_int` (the recipe's, keepalived's default).
const ADVERT: f64 = 1.0;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// keepalived's failure detection: master-down interval = 3 × advert_int + skew, skew <
/// advert_int. Also about what a freshly started MASTER waits before it takes over.
fn detection() -> Duration {
    secs(4.0 * ADVERT)
}

/// The outage a client of the moving VIP may see: keepalived's detection plus 2 s. A
/// switch that kept the VIP on the stopped server exceeds it by far.
fn outage_bound() -> Duration {
    detection() + secs(2.0)
}

/// One VRRP instance = one VIP = one `[[vip]]` group.
struct Instance {
    /// keepalived's instance name (`VI_1`).
    name: &'static str,
    /// The switch's group name (`vip1`).
    group: &'static str,
    vrid: u8,
    vip: Ipv4Addr,
    /// The server whose keepalived is MASTER (priority 150); the other is BACKUP (100).
    master: &'static str,
}

/// s1's and s2's keepalived.conf: both instances, state and priority by `me`.
fn ka_conf(me: &Vm, insts: &[Instance]) -> String {
    let mut s = format!("global_defs {{\n    router_id {}\n}}\n", me.name);
    for i in insts {
        let (state, prio) = if i.master == me.name {
            ("MASTER", 150)
        } else {
            ("BACKUP", 100)
        };
        s.push_str(&format!(
            "\nvrrp_instance {} {{\n    state {state}\n    interface eth0\n    virtual_router_id {}\n    \
             priority {prio}\n    advert_int {ADVERT}\n    virtual_ipaddress {{\n        {}/24 dev eth0\n    }}\n}}\n",
            i.name, i.vrid, i.vip
        ));
    }
    s
}

/// The latest state keepalived logged for `inst`: "MASTER", "BACKUP", "FAULT", …
fn ka_state(p: &Proc<'_>, inst: &str) -> Option<String> {
    let needle = format!("({inst}) Entering ");
    p.output().lines().rev().find_map(|l| {
        let rest = l.split(needle.as_str()).nth(1)?;
        rest.split_whitespace().next().map(str::to_string)
    })
}

#[track_caller]
fn wait_ka_state(p: &Proc<'_>, inst: &str, state: &str, timeout: Duration) {
    if wait_until(timeout, || ka_state(p, inst).as_deref() == Some(state)).is_none() {
        let out = p.output();
        let lines: Vec<&str> = out.lines().collect();
        panic!(
            "keepalived {}: {inst} not {state} after {timeout:?} (state {:?}):\n{}",
            p.name,
            ka_state(p, inst),
            lines[lines.len().saturating_sub(25)..].join("\n")
        );
    }
}

/// Whether `vm` has `addr` configured.
fn holds(vm: &Vm, addr: Ipv4Addr) -> bool {
    vm.run("ip -o addr show")
        .stdout
        .contains(&format!(" {addr}/"))
}

/// How s1 fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// SIGTERM to keepalived: priority-0 advert for VI_1, both VIPs' config removed.
    Term,
    /// SIGKILL of keepalived (parent and VRRP child): VIP1 stays configured on s1.
    Kill,
    /// The VM crashes: keepalived killed and s1's device deleted under the switch.
    Crash,
}

struct Crossed<'l> {
    lab: &'l Lab,
    s1: Arc<Vm>,
    s2: Arc<Vm>,
    client: Arc<Vm>,
    insts: [Instance; 2],
    ka1: Option<Proc<'l>>,
    ka2: Proc<'l>,
}

impl<'l> Crossed<'l> {
    fn vm(&self, name: &str) -> &Arc<Vm> {
        if name == "s1" {
            &self.s1
        } else {
            &self.s2
        }
    }

    #[track_caller]
    fn ka(&self, name: &str) -> &Proc<'l> {
        if name == "s1" {
            self.ka1.as_ref().expect("keepalived in s1 runs")
        } else {
            &self.ka2
        }
    }

    /// keepalived state, switch owner, owner MAC and the VIP on the server: `owner` holds
    /// `inst` in every view.
    #[track_caller]
    fn assert_owner(&self, inst: &Instance, owner: &str) {
        let other = if owner == "s1" { "s2" } else { "s1" };
        wait_ka_state(self.ka(owner), inst.name, "MASTER", detection() + secs(6.0));
        self.lab.wait_vip_owners(inst.group, &[owner], secs(5.0));
        let v = self.lab.vip(inst.group);
        assert_eq!(
            v["owners"][0]["mac"].as_str(),
            Some(self.vm(owner).mac.to_string().as_str()),
            "{}: the owner MAC should be {owner}'s: {v}",
            inst.group
        );
        assert!(
            holds(self.vm(owner), inst.vip),
            "{owner} (MASTER of {}) does not hold {}",
            inst.name,
            inst.vip
        );
        if other == "s2" || self.ka1.is_some() {
            let st = ka_state(self.ka(other), inst.name);
            assert_ne!(
                st.as_deref(),
                Some("MASTER"),
                "{other} is MASTER of {} too (split brain)",
                inst.name
            );
        }
    }

    /// Runs `act` while the client probes both VIPs; then `moved` (VIP1's instance) must
    /// end on `to` with an outage within the bound, and the other VIP must have stayed on
    /// s2 without losing a probe and without a move (same epoch).
    #[track_caller]
    fn phase(&mut self, what: &str, to: &str, act: impl FnOnce(&mut Self)) {
        let lab = self.lab;
        let from = if to == "s1" { "s2" } else { "s1" };
        let (vip1, vip2) = (&self.insts[0], &self.insts[1]);
        let epoch2 = lab.vip(vip2.group)["epoch"].as_u64();
        let w1 = lab.udp_watch(&self.client, vip1.vip, PORT, HZ);
        let w2 = lab.udp_watch(&self.client, vip2.vip, PORT, HZ);
        for (w, who, i) in [(&w1, from, vip1), (&w2, "s2", vip2)] {
            assert!(
                w.wait_for_output(&format!("ANSWER {who} "), secs(5.0)),
                "{what}: before the change {} should answer from {who}: {}\n{}",
                i.vip,
                w.output(),
                lab.vip(i.group)
            );
        }
        std::thread::sleep(secs(0.3));
        let t0 = Instant::now();
        act(self);
        let (vip1, vip2) = (&self.insts[0], &self.insts[1]);
        wait_ka_state(self.ka(to), vip1.name, "MASTER", detection() + secs(6.0));
        let ka_took = t0.elapsed();
        lab.wait_vip_owners(vip1.group, &[to], secs(5.0));
        let owner_took = t0.elapsed();
        assert!(
            w1.wait_for_output(&format!("ANSWER {to} "), secs(5.0)),
            "{what}: the client gets no answer from {to} on {}: {}\n{}",
            vip1.vip,
            w1.output(),
            lab.vip(vip1.group)
        );
        std::thread::sleep(secs(0.5));
        let r1: WatchReport = lab.watch_report(w1);
        let r2: WatchReport = lab.watch_report(w2);
        println!(
            "{what}: {} MASTER on {to} after {:.2} s, switch owner after {:.2} s\n  client -> VIP1 {}: {r1}\n  client -> VIP2 {}: {r2}",
            vip1.name,
            ka_took.as_secs_f64(),
            owner_took.as_secs_f64(),
            vip1.vip,
            vip2.vip
        );
        assert!(
            r1.last_answerer().is_some_and(|(w, n)| w == to && n >= 20) && r1.lost_at_end() == 0,
            "{what}: VIP1's last answers should come from {to} without loss: {r1}"
        );
        assert!(
            r1.max_gap_ms <= outage_bound().as_secs_f64() * 1000.0,
            "{what}: VIP1's outage exceeds keepalived's detection + 2 s: {r1}"
        );
        // VIP2's keepalived instance did not change: every probe answered by s2 (one may be
        // in flight when the watcher stops)
        assert!(
            r2.by.keys().all(|w| w == "s2") && r2.received + 1 >= r2.sent,
            "{what}: VIP2 should be answered by s2 throughout: {r2}"
        );
        assert_eq!(
            lab.vip(vip2.group)["epoch"].as_u64(),
            epoch2,
            "{what}: VIP2 moved: {}",
            lab.vip(vip2.group)
        );
        self.assert_owner(vip1, to);
        self.assert_owner(vip2, "s2");
    }

    /// s1 fails as `f`.
    fn fail(&mut self, f: Failure) {
        let ka1 = self.ka1.take().expect("keepalived in s1 runs");
        match f {
            Failure::Term => {
                ka1.signal(libc::SIGTERM);
                let o = ka1.wait(secs(10.0));
                assert!(!o.timed_out, "keepalived did not stop on SIGTERM\n{o}");
            }
            Failure::Kill => {
                ka1.crash();
                ka1.wait(secs(5.0));
            }
            Failure::Crash => {
                ka1.crash();
                self.lab.delete_device(&self.s1);
                ka1.wait(secs(5.0));
            }
        }
    }

    /// s1 comes back after `f`: its device (after a VM crash), then keepalived.
    fn restore(&mut self, f: Failure) {
        if f == Failure::Crash {
            self.lab.recreate_device(&self.s1);
        }
        let conf = ka_conf(&self.s1, &self.insts);
        self.ka1 = Some(self.lab.keepalived(&self.s1, &conf));
    }

    /// Failover of VIP1 to s2 by `f`, then failback (s1 preempts, 150 > 100).
    #[track_caller]
    fn fail_and_back(&mut self, f: Failure) {
        let step_downs = self.lab.log().matches("vrrp_step_down").count();
        self.phase(&format!("s1 fails ({f:?})"), "s2", |c| c.fail(f));
        let vip1 = self.insts[0].vip;
        match f {
            Failure::Term => assert!(!holds(&self.s1, vip1), "s1 still holds VIP1 after SIGTERM"),
            // the zombie still has the VIP: the switch, not ARP, decides who gets traffic
            Failure::Kill => assert!(
                holds(&self.s1, vip1),
                "s1 no longer holds VIP1: keepalived stopped gracefully instead of crashing"
            ),
            Failure::Crash => {
                // the switch resigned for s1: VRID 51 (VI_1, which s1 was MASTER of), not 52
                let log = self.lab.log();
                let new: Vec<&str> = log
                    .lines()
                    .filter(|l| l.contains("vrrp_step_down"))
                    .skip(step_downs)
                    .collect();
                assert!(
                    new.len() == 1 && new[0].contains("vrid=51") && new[0].contains("vip=vip1"),
                    "expected one step-down, for vip1 / VRID 51: {new:?}"
                );
                let ka2 = self.ka2.output();
                assert!(
                    ka2.contains("(VI_1) Backup received priority 0 advertisement"),
                    "s2 did not get the switch's priority-0 advert for VI_1"
                );
            }
        }
        self.phase(&format!("s1 back after {f:?}"), "s1", |c| c.restore(f));
        wait_ka_state(self.ka("s2"), "VI_1", "BACKUP", secs(5.0));
        assert!(
            wait_until(secs(3.0), || !holds(&self.s2, vip1)).is_some(),
            "s2 (BACKUP of VI_1 again) still holds VIP1"
        );
    }
}

#[test]
fn crossed_priorities_two_vips_tap() {
    if !require_root() {
        return;
    }
    let t_start = Instant::now();
    let lab = Lab::new("xpt", 226);
    for n in ["s1", "s2", "cl"] {
        lab.add_vm(VmSpec::new(n, Backend::Tap));
    }
    let insts = [
        Instance {
            name: "VI_1",
            group: "vip1",
            vrid: 51,
            vip: lab.ip4(101),
            master: "s1",
        },
        Instance {
            name: "VI_2",
            group: "vip2",
            vrid: 52,
            vip: lab.ip4(102),
            master: "s2",
        },
    ];
    // The recipe's switch side: one group per VRRP instance, both servers candidates of
    // both; nothing else (no pairs, dest_check on). Damping off: VIP1 moves 6 times in
    // ~40 s here, by design.
    let mut extra = String::new();
    for i in &insts {
        extra.push_str(&vip_toml(
            i.group,
            "active-passive",
            &[IpAddr::V4(i.vip)],
            &["s1", "s2"],
            &["damping_max_moves = 0"],
        ));
    }
    lab.set_extra_config(&extra);
    lab.start();
    let (s1, s2, client) = (lab.vm("s1"), lab.vm("s2"), lab.vm("cl"));
    // (tap ports count a few drops while the lab moves the taps: compare, not to 0)
    const CHECKS: [&str; 3] = ["vip_hijack", "ip_spoof", "dest_check"];
    let drops = |lab: &Lab| -> Vec<u64> {
        ["s1", "s2", "cl"]
            .iter()
            .flat_map(|p| CHECKS.iter().map(move |r| (p, r)))
            .map(|(p, r)| lab.drops(p, r))
            .collect()
    };
    let drops0 = drops(&lab);
    // the service, on both servers for both VIPs (bound to 0.0.0.0: it answers on
    // whichever VIP the server holds)
    let _e1 = lab.udp_echo(&s1, PORT);
    let _e2 = lab.udp_echo(&s2, PORT);
    let ka1 = lab.keepalived(&s1, &ka_conf(&s1, &insts));
    let ka2 = lab.keepalived(&s2, &ka_conf(&s2, &insts));
    let mut c = Crossed {
        lab: &lab,
        s1,
        s2,
        client,
        insts,
        ka1: Some(ka1),
        ka2,
    };
    c.assert_owner(&c.insts[0], "s1");
    c.assert_owner(&c.insts[1], "s2");
    wait_ka_state(c.ka("s1"), "VI_2", "BACKUP", secs(5.0));
    wait_ka_state(c.ka("s2"), "VI_1", "BACKUP", secs(5.0));
    // both VIPs served, each by its MASTER (what the client sees)
    for (i, who) in [(0, "s1"), (1, "s2")] {
        let vip = c.insts[i].vip;
        let w = lab.udp_watch(&c.client, vip, PORT, HZ);
        assert!(
            w.wait_for_output(&format!("ANSWER {who} "), secs(5.0)),
            "{vip} not answered by {who}: {}",
            w.output()
        );
        std::thread::sleep(secs(0.5));
        let r = lab.watch_report(w);
        assert!(
            r.by.keys().all(|w| w == who) && r.received + 1 >= r.sent && r.received >= 30,
            "{vip} should be answered by {who} alone: {r}"
        );
    }
    let client_mac = |vip: Ipv4Addr| c.client.neigh(vip);
    println!(
        "start: VIP1 {} on s1, VIP2 {} on s2; the client's neighbours: [{}] [{}]",
        c.insts[0].vip,
        c.insts[1].vip,
        client_mac(c.insts[0].vip).trim(),
        client_mac(c.insts[1].vip).trim()
    );

    for f in [Failure::Term, Failure::Kill, Failure::Crash] {
        c.fail_and_back(f);
    }
    for i in &c.insts {
        println!("{} moves: {:?}", i.group, lab.vip_moves(i.group));
    }
    assert_eq!(
        lab.vip("vip2")["epoch"].as_u64(),
        Some(1),
        "VIP2 should have moved once (its first claim, by s2): {}",
        lab.vip("vip2")
    );
    // the recipe needs no pairs and no dest_check change: nothing was refused
    assert_eq!(
        drops(&lab),
        drops0,
        "{CHECKS:?} drops on s1, s2, cl changed during the test"
    );
    println!("wall time {:.1} s", t_start.elapsed().as_secs_f64());
    drop(c);
    lab.finish();
}
