//! Live HA tests: real keepalived (VRRP) inside the VM namespaces, on the real `vswitch`
//! binary, with a client probing a UDP service on the VIP at 100 Hz. They check that the
//! switch's VIP owner follows keepalived's MASTER through every failure a VM sees (graceful
//! stop, keepalived crash, VM crash — its device deleted) and back, over every keepalived
//! transport (multicast, `unicast_peer`, `use_vmac`, IPv6), and the cases peers get wrong:
//! stale or static client caches, a single GARP, a split brain against flap damping, a
//! hijack by a non-candidate, VRRP adverts leaking to non-candidates; plus active/active
//! flow spreading and an IPv4+IPv6 group moving as one.
//!
//! They need root; without it each test prints "SKIPPED: needs root (live test)".
//! Run serially: `cargo test -p agent --test live_ha -- --test-threads=1`.
//!
//! Outage bounds are generous on purpose: they tell "the client got answers again soon after
//! keepalived decided" from "blackholed"; the numbers they print are informational (the
//! benchmarks measure them).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    flow_rounds, require_root, select, summarize, vip_toml, wait_until, web_vip, Backend,
    Direction, FlowRound, Lab, Proc, Vm, VmSpec, WatchReport,
};

/// The UDP echo service on the VIP.
const PORT: u16 = 7000;
/// Client probe rate.
const HZ: u32 = 100;
/// keepalived's virtual router ID in every test (0x33: VMAC 00:00:5e:00:01:33).
const VRID: u8 = 51;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

// ---------------------------------------------------------------------------------------
// keepalived configuration
// ---------------------------------------------------------------------------------------

/// How the two keepalived instances talk and announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    /// VRRP to 224.0.0.18.
    Multicast,
    /// VRRP unicast to `unicast_peer`.
    Unicast,
    /// `use_vmac` + `vmac_xmit_base`: the VIP lives on a macvlan with MAC 00:00:5e:00:01:VRID.
    Vmac,
    /// An IPv6 instance (VRRPv3 to ff02::12, unsolicited NAs).
    Ipv6,
}

/// One keepalived setup; both VMs use it with their own state and priority.
#[derive(Clone, Debug)]
struct KaSpec {
    /// `vrrp_version`.
    version: u8,
    /// `advert_int` in seconds.
    advert: f64,
    transport: Transport,
    /// `virtual_ipaddress` entries.
    vips: Vec<String>,
    /// `virtual_ipaddress_excluded` entries (not in adverts; still announced).
    excluded: Vec<String>,
    /// With `Unicast`: send adverts here instead of to the other VM (split brain).
    peer_override: Option<String>,
    /// More lines in the `vrrp_instance` block.
    instance_extra: Vec<String>,
    /// With `Vmac`: also `vmac_xmit_base` (adverts from the port MAC and eth0); without
    /// it keepalived sends its adverts from the virtual MAC on the macvlan.
    vmac_xmit_base: bool,
}

impl KaSpec {
    /// VRRPv3 with 100 ms adverts: a failover takes ~0.35 s, so the tests stay short.
    fn fast(transport: Transport, vips: &[String]) -> KaSpec {
        KaSpec {
            version: 3,
            advert: 0.1,
            transport,
            vips: vips.to_vec(),
            excluded: Vec::new(),
            peer_override: None,
            instance_extra: Vec::new(),
            vmac_xmit_base: true,
        }
    }

    /// keepalived's defaults as people run them: VRRPv2, 1 s adverts.
    fn v2_default(transport: Transport, vips: &[String]) -> KaSpec {
        KaSpec {
            version: 2,
            advert: 1.0,
            ..KaSpec::fast(transport, vips)
        }
    }

    fn extra(mut self, line: &str) -> KaSpec {
        self.instance_extra.push(line.to_string());
        self
    }

    /// keepalived's own failure detection: master-down interval = 3 × advert_int + skew,
    /// and skew < advert_int.
    fn detection(&self) -> Duration {
        secs(4.0 * self.advert)
    }

    /// The outage a client may see when the switch does its job: keepalived's detection
    /// plus 2 s. A switch that blackholes the VIP (stale owner, dropped claim, a client
    /// cache it cannot fix) exceeds it by far.
    fn outage_bound(&self) -> Duration {
        self.detection() + secs(2.0)
    }

    fn conf(&self, me: &Vm, peer: &Vm, state: &str, prio: u8) -> String {
        let mut inst = vec![
            format!("state {state}"),
            "interface eth0".to_string(),
            format!("virtual_router_id {VRID}"),
            format!("priority {prio}"),
            format!("advert_int {}", self.advert),
        ];
        match self.transport {
            Transport::Unicast => {
                let to = self
                    .peer_override
                    .clone()
                    .unwrap_or_else(|| peer.ip4.to_string());
                inst.push(format!("unicast_src_ip {}", me.ip4));
                inst.push(format!("unicast_peer {{\n        {to}\n    }}"));
            }
            Transport::Vmac => {
                inst.push("use_vmac".into());
                if self.vmac_xmit_base {
                    inst.push("vmac_xmit_base".into());
                }
            }
            Transport::Multicast | Transport::Ipv6 => {}
        }
        inst.extend(self.instance_extra.iter().cloned());
        let block = |name: &str, addrs: &[String]| {
            format!(
                "{name} {{\n{}\n    }}",
                addrs
                    .iter()
                    .map(|a| format!("        {a}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        };
        inst.push(block("virtual_ipaddress", &self.vips));
        if !self.excluded.is_empty() {
            inst.push(block("virtual_ipaddress_excluded", &self.excluded));
        }
        format!(
            "global_defs {{\n    router_id {}\n    vrrp_version {}\n}}\n\nvrrp_instance VI_1 {{\n{}\n}}\n",
            me.name,
            self.version,
            inst.iter()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    }
}

/// A `virtual_ipaddress` entry for an address, on eth0 (or, with `use_vmac`, on the VMAC
/// interface keepalived creates).
fn ka_addr(a: IpAddr, t: Transport) -> String {
    let len = if a.is_ipv4() { 32 } else { 128 };
    if t == Transport::Vmac {
        format!("{a}/{len}")
    } else {
        format!("{a}/{len} dev eth0")
    }
}

/// keepalived's latest state from its log: "MASTER", "BACKUP", "FAULT", …
fn ka_state(p: &Proc<'_>) -> Option<String> {
    p.output().lines().rev().find_map(|l| {
        let rest = l.split("(VI_1) Entering ").nth(1)?;
        rest.split_whitespace().next().map(str::to_string)
    })
}

/// Whether `vm` has `addr` configured on any interface.
fn holds(vm: &Vm, addr: IpAddr) -> bool {
    vm.run("ip -o addr show")
        .stdout
        .contains(&format!(" {addr}/"))
}

#[track_caller]
fn wait_ka_state(p: &Proc<'_>, state: &str, timeout: Duration) {
    if wait_until(timeout, || ka_state(p).as_deref() == Some(state)).is_none() {
        panic!(
            "keepalived {} not {state} after {timeout:?} (state {:?}):\n{}",
            p.name,
            ka_state(p),
            tail(&p.output(), 25)
        );
    }
}

fn tail(s: &str, n: usize) -> String {
    let l: Vec<&str> = s.lines().collect();
    l[l.len().saturating_sub(n)..].join("\n")
}

// ---------------------------------------------------------------------------------------
// An HA pair: keepalived in vm1 (MASTER, 150) and vm2 (BACKUP, 100), a client probing
// ---------------------------------------------------------------------------------------

/// How the MASTER fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// SIGTERM to keepalived: priority-0 advert, VIPs removed.
    Term,
    /// SIGKILL of keepalived's parent and VRRP child: the VIP stays configured on the VM.
    Kill,
    /// The VM crashes: keepalived killed and the VM's device deleted under the switch.
    Crash,
}

struct HaPair<'l> {
    lab: &'l Lab,
    ka: KaSpec,
    vip_name: String,
    vm1: Arc<Vm>,
    vm2: Arc<Vm>,
    client: Arc<Vm>,
    /// Addresses the client probes (the VIP group's addresses it serves).
    targets: Vec<IpAddr>,
    ka1: Option<Proc<'l>>,
    ka2: Option<Proc<'l>>,
}

impl<'l> HaPair<'l> {
    /// Starts UDP echo servers in vm1 and vm2, keepalived in vm1 (MASTER) and, once vm1
    /// owns the VIP, in vm2 (BACKUP); checks vm2 stays BACKUP for a detection interval.
    #[track_caller]
    fn start(lab: &'l Lab, ka: KaSpec, vip_name: &str, targets: &[IpAddr]) -> HaPair<'l> {
        let (vm1, vm2, client) = (lab.vm("vm1"), lab.vm("vm2"), lab.vm("vm3"));
        // The echo servers stay up for the whole test (bound to `::`, they survive the
        // VIP coming and going and the device being deleted).
        let _ = lab.udp_echo(&vm1, PORT);
        let _ = lab.udp_echo(&vm2, PORT);
        let mut ha = HaPair {
            lab,
            ka,
            vip_name: vip_name.to_string(),
            vm1,
            vm2,
            client,
            targets: targets.to_vec(),
            ka1: None,
            ka2: None,
        };
        ha.ka1 = Some(ha.start_ka(1));
        wait_ka_state(ha.ka(1), "MASTER", ha.ka.detection() + secs(10.0));
        lab.wait_vip_owners(vip_name, &["vm1"], secs(5.0));
        ha.ka2 = Some(ha.start_ka(2));
        wait_ka_state(ha.ka(2), "BACKUP", secs(10.0));
        // vm2 hears vm1's adverts: it stays BACKUP past its master-down interval.
        std::thread::sleep(ha.ka.detection() + secs(0.2));
        assert_eq!(
            ka_state(ha.ka(2)).as_deref(),
            Some("BACKUP"),
            "vm2 did not stay BACKUP (does it hear vm1's adverts?)\n{}",
            tail(&ha.ka(2).output(), 20)
        );
        assert_eq!(lab.vip_owners(vip_name), ["vm1"], "{}", lab.vip(vip_name));
        for &t in &ha.targets {
            assert!(holds(&ha.vm1, t), "vm1 (MASTER) does not hold {t}");
            assert!(!holds(&ha.vm2, t), "vm2 (BACKUP) holds {t}");
        }
        ha
    }

    fn vm(&self, i: u8) -> &Arc<Vm> {
        if i == 1 {
            &self.vm1
        } else {
            &self.vm2
        }
    }

    #[track_caller]
    fn ka(&self, i: u8) -> &Proc<'l> {
        let p = if i == 1 { &self.ka1 } else { &self.ka2 };
        p.as_ref()
            .unwrap_or_else(|| panic!("keepalived in vm{i} is not running"))
    }

    /// vm1 is MASTER with priority 150, vm2 BACKUP with 100 (preemption on).
    fn start_ka(&self, i: u8) -> Proc<'l> {
        let (me, peer) = if i == 1 {
            (&self.vm1, &self.vm2)
        } else {
            (&self.vm2, &self.vm1)
        };
        let (state, prio) = if i == 1 {
            ("MASTER", 150)
        } else {
            ("BACKUP", 100)
        };
        self.lab
            .keepalived(me, &self.ka.conf(me, peer, state, prio))
    }

    /// Makes vm1 fail as `f`.
    fn fail(&mut self, f: Failure) {
        let ka1 = self.ka1.take().expect("keepalived in vm1 runs");
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
                self.lab.delete_device(&self.vm1);
                ka1.wait(secs(5.0));
            }
        }
    }

    /// Brings vm1 back after `f`: its device (after a crash), then keepalived.
    fn restore(&mut self, f: Failure) {
        if f == Failure::Crash {
            self.lab.recreate_device(&self.vm1);
        }
        self.ka1 = Some(self.start_ka(1));
    }

    /// Runs `act` while the client probes every target; then waits until keepalived in
    /// `to` is MASTER, `show vips` names `to`, and the client's answers come from `to`.
    /// Asserts the client's worst outage is within [`KaSpec::outage_bound`].
    #[track_caller]
    fn phase(&mut self, what: &str, from: u8, to: u8, act: impl FnOnce(&mut Self)) {
        let lab = self.lab;
        let (from_vm, to_vm) = (self.vm(from).clone(), self.vm(to).clone());
        let watches: Vec<(IpAddr, Proc<'l>)> = self
            .targets
            .iter()
            .map(|&t| (t, lab.udp_watch(&self.client, t, PORT, HZ)))
            .collect();
        for (t, w) in &watches {
            assert!(
                w.wait_for_output(&format!("ANSWER {} ", from_vm.name), secs(5.0)),
                "{what}: before the change, {t} should answer from {}: {}\n{}",
                from_vm.name,
                w.output(),
                lab.vip(&self.vip_name)
            );
        }
        std::thread::sleep(secs(0.2));
        let t0 = Instant::now();
        act(self);
        wait_ka_state(self.ka(to), "MASTER", self.ka.detection() + secs(10.0));
        let ka_took = t0.elapsed();
        lab.wait_vip_owners(&self.vip_name, &[to_vm.name.as_str()], secs(5.0));
        let owner_took = t0.elapsed();
        for (t, w) in &watches {
            assert!(
                w.wait_for_output(&format!("ANSWER {} ", to_vm.name), secs(5.0)),
                "{what}: the client gets no answer from {} on {t}: {}\n{}",
                to_vm.name,
                w.output(),
                lab.vip(&self.vip_name)
            );
        }
        std::thread::sleep(secs(0.3));
        let reports: Vec<(IpAddr, WatchReport)> = watches
            .into_iter()
            .map(|(t, w)| (t, lab.watch_report(w)))
            .collect();
        // The owner still follows keepalived after the dust settled.
        assert_eq!(ka_state(self.ka(to)).as_deref(), Some("MASTER"));
        assert_eq!(lab.vip_owners(&self.vip_name), [to_vm.name.as_str()]);
        for &t in &self.targets {
            assert!(
                holds(&to_vm, t),
                "{what}: the new MASTER {} does not hold {t}",
                to_vm.name
            );
        }
        for (t, r) in &reports {
            println!(
                "{what} [{t}]: keepalived MASTER after {:.2} s, switch owner after {:.2} s; client: {r}",
                ka_took.as_secs_f64(),
                owner_took.as_secs_f64()
            );
            let last = r.last_answerer();
            assert!(
                last.is_some_and(|(w, n)| w == to_vm.name && n >= 10) && r.lost_at_end() == 0,
                "{what}: the client's last answers should come from {} without loss: {r}",
                to_vm.name
            );
            assert!(
                r.max_gap_ms <= self.ka.outage_bound().as_secs_f64() * 1000.0,
                "{what}: the client's outage exceeds keepalived's detection ({:?}) + 2 s: {r}",
                self.ka.detection()
            );
        }
    }

    /// Failover from vm1 by `f`, then failback to vm1 (it preempts, 150 > 100).
    #[track_caller]
    fn fail_and_back(&mut self, f: Failure) {
        self.phase(&format!("failover ({f:?})"), 1, 2, |ha| ha.fail(f));
        for &t in &self.targets.clone() {
            match f {
                // keepalived removed the VIP on its way out.
                Failure::Term => assert!(!holds(&self.vm1, t), "vm1 still holds {t} after SIGTERM"),
                // A killed keepalived leaves the VIP configured: the switch, not ARP, decides.
                Failure::Kill => assert!(
                    holds(&self.vm1, t),
                    "vm1 no longer holds {t}: keepalived stopped gracefully instead of crashing"
                ),
                Failure::Crash => {}
            }
        }
        self.phase(&format!("failback after {f:?}"), 2, 1, |ha| ha.restore(f));
        wait_ka_state(self.ka(2), "BACKUP", secs(5.0));
        for &t in &self.targets.clone() {
            assert!(
                wait_until(secs(3.0), || !holds(&self.vm2, t)).is_some(),
                "vm2 (BACKUP again) still holds {t}"
            );
        }
    }
}

/// The three VMs of an A/P test: vm1, vm2 (the keepalived pair), vm3 (the client).
fn ap_lab(name: &str, net: u8, b: Backend) -> Lab {
    let lab = Lab::new(name, net);
    for n in ["vm1", "vm2", "vm3"] {
        lab.add_vm(VmSpec::new(n, b));
    }
    lab
}

/// [`ap_lab`] on taps with the `web` VIP at 10.<net>.0.100, started.
fn web_lab(name: &str, net: u8) -> (Lab, Ipv4Addr) {
    let lab = ap_lab(name, net, Backend::Tap);
    let vip = lab.ip4(100);
    lab.set_extra_config(&web_vip(&[vip.into()]));
    lab.start();
    (lab, vip)
}

/// A/P failover matrix for one transport: each failure (SIGTERM, SIGKILL, VM crash) in
/// turn, each followed by the failback.
fn ap_matrix(name: &str, net: u8, b: Backend, t: Transport, failures: &[Failure]) {
    if !require_root() {
        return;
    }
    let lab = ap_lab(name, net, b);
    let vip: IpAddr = if t == Transport::Ipv6 {
        lab.ip6(0x100).into()
    } else {
        lab.ip4(100).into()
    };
    let mut extra = vec![
        // Six moves in ~15 s: flap damping (4 per 10 s by default) would hold the fifth
        // claim back on purpose. Damping has its own test (split brain).
        "damping_max_moves = 0",
    ];
    let vrid = format!("vrrp_vrid = {VRID}");
    if t == Transport::Vmac {
        extra.push(&vrid);
    }
    lab.set_extra_config(&vip_toml(
        "web",
        "active-passive",
        &[vip],
        &["vm1", "vm2"],
        &extra,
    ));
    lab.start();
    let ka = KaSpec::fast(t, &[ka_addr(vip, t)]);
    let mut ha = HaPair::start(&lab, ka, "web", &[vip]);
    if t == Transport::Vmac {
        let v = lab.vip("web");
        assert_eq!(
            v["owners"][0]["mac"], "00:00:5e:00:01:33",
            "with use_vmac the owner MAC is the VRRP virtual MAC: {v}"
        );
    }
    for &f in failures {
        ha.fail_and_back(f);
    }
    let v = lab.vip("web");
    println!(
        "show vips after the matrix: epoch {} moves {}",
        v["epoch"], v["moves"]
    );
    drop(ha);
    lab.finish();
}

// ---------------------------------------------------------------------------------------
// 1. Active/passive matrix: transports × failures, each with failback
// ---------------------------------------------------------------------------------------

const ALL: [Failure; 3] = [Failure::Term, Failure::Kill, Failure::Crash];

#[test]
fn ap_multicast_tap() {
    ap_matrix("hmct", 230, Backend::Tap, Transport::Multicast, &ALL);
}

#[test]
fn ap_multicast_netdev() {
    ap_matrix("hmcn", 231, Backend::Netdev, Transport::Multicast, &ALL);
}

#[test]
fn ap_unicast_peer_tap() {
    ap_matrix("huct", 232, Backend::Tap, Transport::Unicast, &ALL);
}

#[test]
fn ap_use_vmac_tap() {
    ap_matrix(
        "hvmt",
        233,
        Backend::Tap,
        Transport::Vmac,
        &[Failure::Term, Failure::Crash],
    );
}

/// `use_vmac` and a keepalived crash (SIGKILL): the killed node keeps its `vrrp.51` macvlan
/// with the VMAC and the VIP (keepalived set `accept_local = 1` on it), so its kernel answers
/// the new master's gratuitous ARP with a unicast ARP reply "VIP is-at VMAC" to the VMAC.
/// The switch must not take that answer for a claim: the owner has to follow keepalived's
/// MASTER (vm2), not the node whose keepalived is dead.
#[test]
fn ap_use_vmac_keepalived_killed_tap() {
    ap_matrix("hvkt", 243, Backend::Tap, Transport::Vmac, &[Failure::Kill]);
}

/// `use_vmac` with an IPv4 and an IPv6 VIP in one group: keepalived announces the IPv4
/// address from the VRRP virtual MAC and the IPv6 one (`virtual_ipaddress_excluded`, on
/// eth0) from the port MAC. The owner keeps one MAC per family: IPv4 and IPv6 clients both
/// follow each failover, and the repeated announcement bursts are refreshes, not a stream of
/// `mac-change` moves (with one owner MAC every burst flipped it back and forth).
#[test]
fn ap_use_vmac_dual_stack_tap() {
    if !require_root() {
        return;
    }
    let lab = ap_lab("hvdt", 244, Backend::Tap);
    let (vip, vip6) = (lab.ip4(100), lab.ip6(0x100));
    let vrid = format!("vrrp_vrid = {VRID}");
    lab.set_extra_config(&vip_toml(
        "web",
        "active-passive",
        &[vip.into(), vip6.into()],
        &["vm1", "vm2"],
        &["damping_max_moves = 0", &vrid],
    ));
    lab.start();
    let mut ka = KaSpec::fast(Transport::Vmac, &[ka_addr(vip.into(), Transport::Vmac)]);
    ka.excluded = vec![ka_addr(vip6.into(), Transport::Multicast)];
    let mut ha = HaPair::start(&lab, ka, "web", &[vip.into(), vip6.into()]);
    let owner = |lab: &Lab| {
        let v = lab.vip("web");
        (
            v["owners"][0]["mac"].as_str().unwrap_or("").to_string(),
            v["owners"][0]["mac6"].as_str().unwrap_or("").to_string(),
        )
    };
    let vm1_mac = ha.vm1.mac.to_string();
    assert!(
        wait_until(secs(3.0), || owner(&lab)
            == ("00:00:5e:00:01:33".to_string(), vm1_mac.clone()))
        .is_some(),
        "owner MACs (IPv4, IPv6) should be (the VMAC, vm1's MAC): {:?}",
        owner(&lab)
    );
    ha.fail_and_back(Failure::Term);
    // keepalived repeats its announcements (garp_master_repeat, garp_master_delay): wait
    // for a later burst and count the MAC changes it caused
    let epoch0 = lab.vip("web")["epoch"].as_u64().unwrap_or(0);
    std::thread::sleep(secs(6.0));
    let v = lab.vip("web");
    let epoch1 = v["epoch"].as_u64().unwrap_or(0);
    let changes = lab
        .vip_moves("web")
        .iter()
        .filter(|m| m.3 == "mac-change")
        .count();
    assert_eq!(
        epoch1, epoch0,
        "announcement bursts moved the VIP again: {}",
        v["moves"]
    );
    assert!(
        changes <= 3,
        "{changes} mac-change moves for 2 takeovers (at most one per takeover expected): {}",
        v["moves"]
    );
    assert_eq!(owner(&lab), ("00:00:5e:00:01:33".to_string(), vm1_mac));
    drop(ha);
    lab.finish();
}

#[test]
fn ap_ipv6_vip_tap() {
    ap_matrix("h6t", 234, Backend::Tap, Transport::Ipv6, &ALL);
}

// ---------------------------------------------------------------------------------------
// 2. What peers get wrong
// ---------------------------------------------------------------------------------------

/// vm3 pins the VIP's ARP entry to vm1's MAC; after keepalived fails over to vm2 the
/// switch steers vm3's frames to vm2 (rewriting eth.dst) and vm2 answers.
#[test]
fn stale_static_client_cache_tap() {
    if !require_root() {
        return;
    }
    let (lab, vip) = web_lab("stlt", 235);
    let ka = KaSpec::fast(
        Transport::Multicast,
        &[ka_addr(vip.into(), Transport::Multicast)],
    );
    let mut ha = HaPair::start(&lab, ka, "web", &[vip.into()]);
    let (vm1, vm2, vm3) = (ha.vm1.clone(), ha.vm2.clone(), ha.client.clone());
    vm3.pin_neigh(vip, vm1.mac);
    let cap2 = lab.capture(&vm2);
    ha.phase(
        "failover (Term) with vm3's ARP entry pinned to vm1",
        1,
        2,
        |ha| ha.fail(Failure::Term),
    );
    let n = vm3.neigh(vip);
    assert!(
        n.contains(&vm1.mac.to_string()) && n.contains("PERMANENT"),
        "vm3's entry for the VIP should still say vm1: {n}"
    );
    vm3.ping_ok(vip, 3);
    let f2 = cap2.stop();
    let from3 = |f: &common::Frame| {
        f.ip()
            .is_some_and(|ip| ip.src == IpAddr::from(vm3.ip4) && ip.dst == IpAddr::from(vip))
    };
    let steered = select(&f2, |f| from3(f) && f.dst() == vm2.mac);
    let unsteered = select(&f2, |f| from3(f) && f.dst() != vm2.mac);
    assert!(
        steered.len() >= 10 && unsteered.is_empty(),
        "vm2 should get vm3's packets to the VIP with eth.dst rewritten to its MAC ({} steered, {} not):\n{}",
        steered.len(),
        unsteered.len(),
        summarize(&unsteered)
    );
    println!(
        "vm3 (pinned to vm1's MAC) reached vm2: {} frames steered",
        steered.len()
    );
    drop(ha);
    lab.finish();
}

/// keepalived sends ONE gratuitous ARP (`garp_master_repeat 1`, no delayed burst, no
/// refresh): the VIP still moves, and the client follows, both ways.
#[test]
fn single_garp_tap() {
    if !require_root() {
        return;
    }
    let (lab, vip) = web_lab("g1t", 236);
    let ka = KaSpec::fast(
        Transport::Multicast,
        &[ka_addr(vip.into(), Transport::Multicast)],
    )
    .extra("garp_master_repeat 1")
    .extra("garp_master_delay 0")
    .extra("garp_master_refresh 0");
    let mut ha = HaPair::start(&lab, ka, "web", &[vip.into()]);
    let (vm1, vm2) = (ha.vm1.clone(), ha.vm2.clone());
    let garps_from = |frames: &[common::Frame], vm: &Vm| {
        select(frames, |f| {
            f.src() == vm.mac && f.arp().is_some_and(|a| a.spa == vip && a.tpa == vip)
        })
        .len()
    };
    // SIGKILL: vm1 keeps the VIP configured, so only vm2's one GARP can move it.
    let cap2 = lab.capture_dir(&vm2, Direction::Both);
    ha.phase("failover (Kill), one GARP", 1, 2, |ha| {
        ha.fail(Failure::Kill)
    });
    let f2 = cap2.stop();
    assert_eq!(
        garps_from(&f2, &vm2),
        1,
        "vm2 should have sent exactly one GARP:\n{}",
        summarize(&f2.iter().collect::<Vec<_>>())
    );
    let cap1 = lab.capture_dir(&vm1, Direction::Both);
    ha.phase("failback, one GARP", 2, 1, |ha| ha.restore(Failure::Kill));
    let f1 = cap1.stop();
    assert_eq!(
        garps_from(&f1, &vm1),
        1,
        "vm1 should have sent exactly one GARP:\n{}",
        summarize(&f1.iter().collect::<Vec<_>>())
    );
    drop(ha);
    lab.finish();
}

/// Split brain: both keepalived MASTER (their adverts go to a peer address nobody has) and
/// both re-send a GARP every second. Damping (2 moves per 5 s) holds the flapping: a pending
/// claim is shown, no 5 s window has more than 2 moves, and the held claim is applied when
/// the window ends (`damped-claim`), never dropped.
#[test]
fn split_brain_damping_tap() {
    if !require_root() {
        return;
    }
    let lab = ap_lab("sbt", 237, Backend::Tap);
    let vip = lab.ip4(100);
    lab.set_extra_config(&vip_toml(
        "web",
        "active-passive",
        &[vip.into()],
        &["vm1", "vm2"],
        &["damping_max_moves = 2", "damping_window_secs = 5"],
    ));
    lab.start();
    let (vm1, vm2, vm3) = (lab.vm("vm1"), lab.vm("vm2"), lab.vm("vm3"));
    let mut ka = KaSpec::fast(
        Transport::Unicast,
        &[ka_addr(vip.into(), Transport::Unicast)],
    )
    .extra("garp_master_refresh 1")
    .extra("garp_master_refresh_repeat 1");
    ka.peer_override = Some(lab.ip4(250).to_string());
    let _ = lab.udp_echo(&vm1, PORT);
    let _ = lab.udp_echo(&vm2, PORT);
    let watch = lab.udp_watch(&vm3, vip, PORT, HZ);
    let ka1 = lab.keepalived(&vm1, &ka.conf(&vm1, &vm2, "MASTER", 150));
    wait_ka_state(&ka1, "MASTER", secs(10.0));
    lab.wait_vip_owners("web", &["vm1"], secs(5.0));
    let ka2 = lab.keepalived(&vm2, &ka.conf(&vm2, &vm1, "MASTER", 100));
    wait_ka_state(&ka2, "MASTER", secs(10.0));
    assert!(
        holds(&vm1, vip.into()) && holds(&vm2, vip.into()),
        "not a split brain"
    );
    assert_eq!(ka_state(&ka1).as_deref(), Some("MASTER"));

    // Watch the flapping for 8 s.
    let mut pendings: Vec<(String, f64)> = Vec::new();
    let mut owners_seen: Vec<String> = Vec::new();
    let t = Instant::now();
    while t.elapsed() < secs(8.0) {
        let v = lab.vip("web");
        if let Some(p) = v["pending"]["port"].as_str() {
            pendings.push((
                p.to_string(),
                v["pending"]["due_in_secs"].as_f64().unwrap_or(0.0),
            ));
        }
        if let Some(o) = v["owners"][0]["port"].as_str() {
            if owners_seen.last().map(String::as_str) != Some(o) {
                owners_seen.push(o.to_string());
            }
        }
        std::thread::sleep(secs(0.1));
    }
    println!(
        "split brain for 8 s: owners in turn {owners_seen:?}; {} polls saw a pending claim",
        pendings.len()
    );
    assert!(
        owners_seen.len() >= 2,
        "both MASTERs' GARPs should have moved the VIP at least once: {owners_seen:?}\n{}",
        lab.vip("web")
    );
    assert!(
        !pendings.is_empty(),
        "damping never showed a pending claim during the split brain\n{}",
        lab.vip("web")
    );
    assert!(
        lab.log()
            .lines()
            .any(|l| l.contains("WARN") && l.contains("vip_claim_pending")),
        "no vip_claim_pending warning in the log"
    );

    // The split brain ends: the owner's keepalived dies while the other side's claim is
    // held. That claim must be applied when the window ends (damped-claim), not dropped.
    let mut claimant = None;
    wait_until(secs(8.0), || {
        let v = lab.vip("web");
        match (
            v["pending"]["port"].as_str(),
            v["pending"]["due_in_secs"].as_f64(),
        ) {
            (Some(p), Some(d)) if d >= 1.5 => {
                claimant = Some(p.to_string());
                true
            }
            _ => false,
        }
    });
    let claimant = claimant
        .unwrap_or_else(|| panic!("no pending claim with ≥ 1.5 s to go\n{}", lab.vip("web")));
    let (survivor, dead) = if claimant == "vm1" {
        (&ka1, &ka2)
    } else {
        (&ka2, &ka1)
    };
    dead.crash();
    println!("killed the owner's keepalived; {claimant}'s claim is pending");
    let moved = wait_until(secs(7.0), || lab.vip_owners("web") == [claimant.as_str()]);
    let moves = lab.vip_moves("web");
    for m in &moves {
        println!(
            "  move {:>6.2} s ago  {:?} -> {:?}  ({})",
            m.0, m.1, m.2, m.3
        );
    }
    let last = moves.last().cloned();
    assert!(
        moved.is_some()
            && last.as_ref().is_some_and(
                |m| m.3 == "damped-claim" && m.2.as_deref() == Some(claimant.as_str())
            ),
        "the pending claim of {claimant} was not applied as damped-claim (last move {last:?})\n{}",
        lab.vip("web")
    );
    assert_eq!(ka_state(survivor).as_deref(), Some("MASTER"));
    // Never more than 2 claim-driven moves in any 5 s window.
    let times: Vec<f64> = moves
        .iter()
        .filter(|m| m.3 == "claim" || m.3 == "damped-claim")
        .map(|m| -m.0)
        .collect();
    assert!(
        times.len() >= 3,
        "expected at least 3 claim-driven moves: {moves:?}"
    );
    for w in times.windows(3) {
        assert!(
            w[2] - w[0] >= 5.0 - 1e-3,
            "3 moves within {:.3} s (damping allows 2 per 5 s): {moves:?}",
            w[2] - w[0]
        );
    }
    std::thread::sleep(secs(0.5));
    let r = lab.watch_report(watch);
    println!("client across the split brain: {r}");
    assert!(
        r.last_answerer()
            .is_some_and(|(w, n)| w == claimant && n >= 10)
            && r.lost_at_end() == 0,
        "the client should end up answered by {claimant}: {r}"
    );
    assert!(
        r.max_gap_ms <= 2000.0,
        "the client was blackholed during the split brain: {r}"
    );
    lab.finish();
}

/// A VM that is not a candidate adds the VIP and sends GARPs: refused (counted, logged),
/// the owner stays, the client's probes see no outage.
#[test]
fn hijack_by_non_candidate_tap() {
    if !require_root() {
        return;
    }
    let lab = ap_lab("hjt", 238, Backend::Tap);
    lab.add_vm(VmSpec::new("vm4", Backend::Tap));
    let vip = lab.ip4(100);
    lab.set_extra_config(&web_vip(&[vip.into()]));
    lab.start();
    let ka = KaSpec::fast(
        Transport::Multicast,
        &[ka_addr(vip.into(), Transport::Multicast)],
    );
    let ha = HaPair::start(&lab, ka, "web", &[vip.into()]);
    let (vm3, vm4) = (ha.client.clone(), lab.vm("vm4"));
    let epoch = lab.vip("web")["epoch"].as_u64().unwrap();
    let watch = lab.udp_watch(&vm3, vip, PORT, HZ);
    assert!(watch.wait_for_output("ANSWER vm1 ", secs(5.0)));
    std::thread::sleep(secs(0.3));
    vm4.must(&format!("ip addr add {vip}/32 dev eth0"));
    vm4.must(&format!("arping -c 2 -U -I eth0 {vip}"));
    std::thread::sleep(secs(0.5));
    let r = lab.watch_report(watch);
    println!("client during the hijack attempt: {r}");
    let v = lab.vip("web");
    assert!(
        v["hijack_attempts"].as_u64().unwrap_or(0) >= 1,
        "hijack not counted: {v}"
    );
    assert_eq!(v["last_hijack"]["port"], "vm4", "{v}");
    assert_eq!(lab.vip_owners("web"), ["vm1"], "{v}");
    assert_eq!(v["epoch"].as_u64(), Some(epoch), "epoch moved: {v}");
    assert!(lab.drops("vm4", "vip_hijack") >= 1);
    let warn = lab
        .log()
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("vip_hijack") && l.contains("vm4"))
        .count();
    assert!(
        warn >= 1,
        "no vip_hijack WARN line for vm4 in the switch log:\n{}",
        lab.log_tail(20)
    );
    assert!(
        r.by.keys().all(|w| w == "vm1") && r.received + 2 >= r.sent && r.lost_at_end() == 0,
        "the client's probes should all be answered by vm1 during the hijack: {r}"
    );
    let n = vm3.neigh(vip);
    assert!(
        !n.contains(&vm4.mac.to_string()),
        "vm3's entry for the VIP points at the hijacker: {n}"
    );
    assert_eq!(ka_state(ha.ka(1)).as_deref(), Some("MASTER"));
    drop(ha);
    lab.finish();
}

/// keepalived as people run it (VRRPv2, 1 s adverts, multicast): adverts reach the other
/// candidate only — the client never sees IP protocol 112 — and a crash of keepalived, then
/// of the whole VM, fail over within keepalived's own detection time (+2 s) and back.
#[test]
fn vrrp_v2_adverts_only_to_candidates_tap() {
    if !require_root() {
        return;
    }
    let (lab, vip) = web_lab("vrt", 239);
    let (vm1, vm2, vm3) = (lab.vm("vm1"), lab.vm("vm2"), lab.vm("vm3"));
    let cap3 = lab.capture(&vm3);
    let cap2 = lab.capture(&vm2);
    let ka = KaSpec::v2_default(
        Transport::Multicast,
        &[ka_addr(vip.into(), Transport::Multicast)],
    );
    let mut ha = HaPair::start(&lab, ka, "web", &[vip.into()]);
    let f2 = cap2.stop();
    let vrrp = |f: &common::Frame| f.ip().is_some_and(|ip| ip.proto == 112);
    let adverts = select(&f2, |f| vrrp(f) && f.src() == vm1.mac);
    assert!(
        adverts.len() >= 3,
        "vm2 should hear vm1's adverts:\n{}",
        summarize(&f2.iter().collect::<Vec<_>>())
    );
    println!("vm2 heard {} adverts from vm1", adverts.len());
    ha.fail_and_back(Failure::Kill);
    ha.fail_and_back(Failure::Crash);
    let f3 = cap3.stop();
    let leaked = select(&f3, vrrp);
    assert!(
        leaked.is_empty(),
        "VRRP adverts reached the client vm3:\n{}",
        summarize(&leaked)
    );
    println!("vm3 (client) saw {} frames and no VRRP advert", f3.len());
    drop(ha);
    lab.finish();
}

// ---------------------------------------------------------------------------------------
// 3. Active/active: flows spread over 3 owners, an owner leaving moves only its flows
// ---------------------------------------------------------------------------------------

/// The first round after `after` (exclusive) in which every flow was answered.
fn full_round_after(p: &Proc<'_>, after: u64, timeout: Duration) -> Option<FlowRound> {
    let mut found = None;
    wait_until(timeout, || {
        found = flow_rounds(p)
            .into_iter()
            .find(|r| r.round > after && r.answered() == r.who.len());
        found.is_some()
    });
    found
}

fn last_round(p: &Proc<'_>) -> u64 {
    flow_rounds(p).last().map_or(0, |r| r.round)
}

#[test]
fn active_active_tap() {
    if !require_root() {
        return;
    }
    const FLOWS: usize = 96;
    let lab = Lab::new("aat", 240);
    for n in ["vm1", "vm2", "vm3", "vm4"] {
        lab.add_vm(VmSpec::new(n, Backend::Tap));
    }
    let vip = lab.ip4(100);
    lab.set_extra_config(&vip_toml(
        "aa",
        "active-active",
        &[vip.into()],
        &["vm1", "vm2", "vm3"],
        &[],
    ));
    lab.start();
    let owners: Vec<Arc<Vm>> = ["vm1", "vm2", "vm3"].iter().map(|n| lab.vm(n)).collect();
    let client = lab.vm("vm4");
    // LVS-DR style backends: the VIP on lo, no ARP for it, a UDP service bound to it.
    for vm in &owners {
        vm.must(&format!("ip addr add {vip}/32 dev lo"));
        for s in ["all", "eth0"] {
            vm.must(&format!("sysctl -qw net.ipv4.conf.{s}.arp_ignore=1"));
            vm.must(&format!("sysctl -qw net.ipv4.conf.{s}.arp_announce=2"));
        }
        let _ = lab.udp_echo_at(vm, vip, PORT);
    }
    let claim = |vm: &Vm| vm.must(&format!("arping -c 1 -U -I eth0 {vip}"));
    for vm in &owners {
        claim(vm);
    }
    lab.wait_vip_owners("aa", &["vm1", "vm2", "vm3"], secs(3.0));
    let flows = lab.udp_flows(&client, vip, PORT, FLOWS, secs(0.25));
    let first = full_round_after(&flows, 0, secs(5.0)).unwrap_or_else(|| {
        panic!(
            "no round with all {FLOWS} flows answered: {:?}",
            flow_rounds(&flows).last()
        )
    });
    // Stable: the same owner per flow over four more rounds.
    let r0 = first.round;
    wait_until(secs(5.0), || last_round(&flows) >= r0 + 4);
    let rounds = flow_rounds(&flows);
    for r in rounds.iter().filter(|r| r.round > r0 && r.round <= r0 + 4) {
        assert_eq!(r.answered(), FLOWS, "round {} lost flows: {r:?}", r.round);
        assert_eq!(
            r.who, first.who,
            "flows changed owner between rounds {r0} and {}",
            r.round
        );
    }
    let share = first.share();
    println!("{FLOWS} flows over 3 owners: {share:?}");
    for vm in &owners {
        let n = share.get(&vm.name).copied().unwrap_or(0);
        assert!(
            n * 10 >= FLOWS,
            "{} got only {n} of {FLOWS} flows: {share:?}",
            vm.name
        );
    }

    // An owner leaves; only its flows move, and every flow is answered again.
    let leave = |what: &str, act: &dyn Fn()| {
        let before =
            full_round_after(&flows, last_round(&flows), secs(5.0)).expect("a full round before");
        let mark = last_round(&flows) + 1;
        let t = Instant::now();
        act();
        lab.wait_vip_owners("aa", &["vm1", "vm3"], secs(5.0));
        let after = full_round_after(&flows, mark, secs(10.0)).unwrap_or_else(|| {
            panic!(
                "{what}: flows not all answered again: {:?}",
                flow_rounds(&flows).last()
            )
        });
        let took = t.elapsed();
        let gaps = flow_rounds(&flows)
            .iter()
            .filter(|r| r.round >= mark && r.round < after.round)
            .map(|r| FLOWS - r.answered())
            .collect::<Vec<_>>();
        println!("{what}: all flows answered again after {took:.2?} (unanswered per round before: {gaps:?}); share {:?}", after.share());
        assert!(
            took <= secs(5.0),
            "{what}: flows took {took:?} to be answered again"
        );
        let mut moved = 0;
        for (i, (b, a)) in before.who.iter().zip(&after.who).enumerate() {
            if b.as_deref() == Some("vm2") {
                assert!(
                    a.as_deref() != Some("vm2"),
                    "flow {i} still answered by vm2"
                );
                moved += 1;
            } else {
                assert_eq!(b, a, "{what}: flow {i} of a remaining owner moved");
            }
        }
        assert!(moved > 0);
        before
    };
    let vm2 = owners[1].clone();
    let before = leave("vm2's device deleted", &|| lab.delete_device(&vm2));
    // vm2 comes back and claims again: it takes back exactly its flows.
    lab.recreate_device(&vm2);
    claim(&vm2);
    lab.wait_vip_owners("aa", &["vm1", "vm2", "vm3"], secs(5.0));
    let mark = last_round(&flows) + 1;
    let back = full_round_after(&flows, mark, secs(10.0)).expect("a full round after vm2 rejoined");
    assert_eq!(
        back.who, before.who,
        "after vm2 rejoined, flows are not where they were"
    );
    leave("ctl vip release aa vm2", &|| {
        let o = lab.ctl_out(&["vip", "release", "aa", "vm2"]);
        assert!(o.ok(), "{o}");
    });
    let v = lab.vip("aa");
    println!("show vips: owners {} moves {}", v["owners"], v["moves"]);
    flows.interrupt();
    lab.finish();
}

// ---------------------------------------------------------------------------------------
// 4. A group with an IPv4 and an IPv6 address moves as one
// ---------------------------------------------------------------------------------------

/// keepalived's VRRP instance is one family: the IPv4 VIP is in `virtual_ipaddress`, the
/// IPv6 one in `virtual_ipaddress_excluded` (keepalived 2.2.7 ignores a v6 address in a v4
/// instance's `virtual_ipaddress`; excluded addresses are set and announced — with an
/// unsolicited NA — but not carried in adverts). Then, without keepalived, a v4 GARP alone
/// moves the IPv6 address too.
#[test]
fn group_v4_v6_moves_as_one_tap() {
    if !require_root() {
        return;
    }
    let lab = ap_lab("dut", 241, Backend::Tap);
    let (vip, vip6) = (lab.ip4(100), lab.ip6(0x100));
    lab.set_extra_config(&web_vip(&[vip.into(), vip6.into()]));
    lab.start();
    let mut ka = KaSpec::fast(
        Transport::Multicast,
        &[ka_addr(vip.into(), Transport::Multicast)],
    );
    ka.excluded = vec![ka_addr(vip6.into(), Transport::Multicast)];
    let mut ha = HaPair::start(&lab, ka, "web", &[vip.into(), vip6.into()]);
    ha.fail_and_back(Failure::Term);
    let (vm1, vm2, vm3) = (ha.vm1.clone(), ha.vm2.clone(), ha.client.clone());
    // Stop keepalived in both (VIPs removed); the addresses are now set by hand on both
    // VMs and only IPv4 GARPs claim.
    for i in [2, 1] {
        let p = if i == 1 { ha.ka1.take() } else { ha.ka2.take() }.unwrap();
        p.signal(libc::SIGTERM);
        p.wait(secs(10.0));
    }
    for vm in [&vm1, &vm2] {
        vm.must(&format!("ip addr add {vip}/32 dev eth0"));
        vm.must(&format!("ip addr add {vip6}/128 dev eth0 nodad"));
    }
    for (who, other) in [(&vm2, &vm1), (&vm1, &vm2)] {
        let cap = lab.capture_dir(who, Direction::Both);
        let w6 = lab.udp_watch(&vm3, vip6, PORT, HZ);
        assert!(
            w6.wait_for_output(&format!("ANSWER {} ", other.name), secs(5.0)),
            "{}",
            w6.output()
        );
        who.must(&format!("arping -c 1 -U -I eth0 {vip}"));
        lab.wait_vip_owners("web", &[who.name.as_str()], secs(3.0));
        assert!(
            w6.wait_for_output(&format!("ANSWER {} ", who.name), secs(5.0)),
            "{}",
            w6.output()
        );
        std::thread::sleep(secs(0.3));
        let r = lab.watch_report(w6);
        println!("v4 GARP from {}: client's IPv6 probes: {r}", who.name);
        assert!(
            r.last_answerer()
                .is_some_and(|(w, n)| w == who.name && n >= 10),
            "IPv6 probes should follow the v4 claim to {}: {r}",
            who.name
        );
        assert!(
            r.max_gap_ms <= 1000.0,
            "IPv6 client blackholed after a v4 claim: {r}"
        );
        vm3.ping_ok(vip6, 2);
        let f = cap.stop();
        let nas = select(&f, |f| f.src() == who.mac && f.icmp_type() == Some(136));
        assert!(
            nas.is_empty(),
            "{} sent an NA, the v6 move is not the v4 GARP's doing:\n{}",
            who.name,
            summarize(&nas)
        );
    }
    drop(ha);
    lab.finish();
}

// ---------------------------------------------------------------------------------------
// 7. A crashed master: the switch resigns for it (priority-0 advert, issue 9 point 3)
// ---------------------------------------------------------------------------------------

/// How the crash step-down test makes vm1 go away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loss {
    /// keepalived SIGKILLed and the device deleted: the VM crashed.
    Crash,
    /// Only the device deleted; keepalived keeps running in vm1 (the VM lost its NIC).
    DeviceOnly,
    /// `vswitch ctl port down vm1`: administrative, the VM is alive.
    Admin,
}

/// Priority-0 VRRP adverts in `frames` that come from `vm` (its MAC or its address).
fn resignations_from<'f>(frames: &'f [common::Frame], vm: &Vm) -> Vec<&'f common::Frame> {
    select(frames, |f| {
        f.ip().is_some_and(|ip| {
            ip.proto == 112
                && (f.src() == vm.mac || ip.src == IpAddr::V4(vm.ip4))
                && f.l4().get(2) == Some(&0)
        })
    })
}

/// vm1 (MASTER, 150) and vm2 (BACKUP, 100) with keepalived's default 1 s adverts; vm1
/// goes away as `loss`. With `step_down` (the switch's `step_down_on_crash`, default on)
/// and a device loss, vm2's capture must show the priority-0 advert from vm1's address,
/// vm2's keepalived must log that it took over because of it ("Backup received priority 0
/// advertisement") and become MASTER before its master-down timer could have fired
/// (≥ 3 × advert_int + skew − advert_int after the failure, i.e. ≥ 2.6 s); the client is
/// answered by vm2 soon after. Without it (disabled, or an administrative port down) no
/// priority-0 advert reaches vm2 and it takes over on its master-down timer. Then vm1
/// comes back (device recreated; keepalived restarted after a crash, still running
/// otherwise) and preempts: the VIP returns to vm1.
fn crash_step_down(name: &str, net: u8, b: Backend, t: Transport, loss: Loss, step_down: bool) {
    if !require_root() {
        return;
    }
    let lab = ap_lab(name, net, b);
    let vip: IpAddr = if t == Transport::Ipv6 {
        lab.ip6(0x100).into()
    } else {
        lab.ip4(100).into()
    };
    let mut extra = vec!["damping_max_moves = 0"];
    let vrid = format!("vrrp_vrid = {VRID}");
    if t == Transport::Vmac {
        extra.push(&vrid);
    }
    if !step_down {
        extra.push("step_down_on_crash = false");
    }
    lab.set_extra_config(&vip_toml(
        "web",
        "active-passive",
        &[vip],
        &["vm1", "vm2"],
        &extra,
    ));
    lab.start();
    let version = if t == Transport::Ipv6 { 3 } else { 2 };
    // With use_vmac, keepalived's adverts from the virtual MAC (no vmac_xmit_base): the
    // resignation must keep that source MAC.
    let ka = KaSpec {
        version,
        vmac_xmit_base: false,
        ..KaSpec::v2_default(t, &[ka_addr(vip, t)])
    };
    let mut ha = HaPair::start(&lab, ka, "web", &[vip]);
    let (vm1, vm2, client) = (ha.vm1.clone(), ha.vm2.clone(), ha.client.clone());
    let cap = lab.capture_dir(&vm2, Direction::In);
    let watch = lab.udp_watch(&client, vip, PORT, HZ);
    assert!(
        watch.wait_for_output("ANSWER vm1 ", secs(5.0)),
        "the client is not answered by vm1: {}",
        watch.output()
    );
    std::thread::sleep(secs(0.3));
    let t0 = Instant::now();
    let ka1 = ha.ka1.take().expect("keepalived in vm1");
    match loss {
        Loss::Crash => {
            ka1.crash();
            lab.delete_device(&vm1);
        }
        Loss::DeviceOnly => lab.delete_device(&vm1),
        Loss::Admin => {
            lab.ctl(&["port", "down", "vm1"]);
        }
    }
    let fail_took = t0.elapsed();
    wait_ka_state(ha.ka(2), "MASTER", secs(10.0));
    let ka_took = t0.elapsed();
    lab.wait_vip_owners("web", &["vm2"], secs(5.0));
    assert!(
        watch.wait_for_output("ANSWER vm2 ", secs(5.0)),
        "the client gets no answer from vm2: {}",
        watch.output()
    );
    std::thread::sleep(secs(0.5));
    let report = lab.watch_report(watch);
    let frames = cap.stop();
    let resign = resignations_from(&frames, &vm1);
    let ka2_log = ha.ka(2).output();
    let by_prio0 = ka2_log.contains("Backup received priority 0 advertisement");
    let sent = loss != Loss::Admin && step_down;
    println!(
        "{name}: {loss:?} (step_down_on_crash {step_down}) took {:.3} s; vm2 MASTER after {:.3} s \
         (priority-0 advert seen by keepalived: {by_prio0}); client: {report}\n\
         priority-0 adverts from vm1 at vm2: {}\nswitch: {}",
        fail_took.as_secs_f64(),
        ka_took.as_secs_f64(),
        summarize(&resign),
        lab.log()
            .lines()
            .filter(|l| l.contains("vrrp_step_down") || l.contains("\"port_state\""))
            .collect::<Vec<_>>()
            .join("\n")
    );
    if sent {
        assert!(
            !resign.is_empty(),
            "no priority-0 advert from vm1 reached vm2:\n{}",
            summarize(&select(&frames, |f| f.ip().is_some_and(|i| i.proto == 112)))
        );
        if t == Transport::Vmac {
            assert!(
                resign
                    .iter()
                    .all(|f| f.src().to_string() == "00:00:5e:00:01:33"),
                "with use_vmac the resignation comes from the virtual MAC, as vm1's adverts:\n{}",
                summarize(&resign)
            );
        }
        assert!(
            by_prio0,
            "vm2's keepalived did not take over on a priority-0 advert:\n{}",
            tail(&ka2_log, 20)
        );
        assert!(
            lab.log().contains("vrrp_step_down"),
            "no vrrp_step_down event:\n{}",
            lab.log_tail(20)
        );
        // keepalived's own timer would fire 3 × advert_int + skew after vm1's last advert,
        // which was at most one advert_int before the failure: not before 2.6 s.
        assert!(
            ka_took < secs(2.5),
            "vm2 became MASTER only after {ka_took:?}: that is its master-down timer"
        );
    } else {
        assert!(
            resign.is_empty(),
            "a priority-0 advert from vm1 reached vm2 ({loss:?}, step_down_on_crash \
             {step_down}):\n{}",
            summarize(&resign)
        );
        assert!(!by_prio0, "{}", tail(&ka2_log, 20));
        assert!(
            !lab.log().contains("vrrp_step_down"),
            "{}",
            lab.log_tail(20)
        );
    }
    assert!(
        report.last_answerer().is_some_and(|(w, _)| w == "vm2"),
        "{report}"
    );

    // vm1 comes back and preempts (150 > 100).
    let t1 = Instant::now();
    let watch = lab.udp_watch(&client, vip, PORT, HZ);
    match loss {
        Loss::Crash => {
            drop(ka1);
            ha.restore(Failure::Crash);
        }
        Loss::DeviceOnly => {
            // keepalived never stopped: it finds its interface again by itself.
            lab.recreate_device(&vm1);
            ha.ka1 = Some(ka1);
        }
        Loss::Admin => {
            lab.ctl(&["port", "up", "vm1"]);
            ha.ka1 = Some(ka1);
        }
    }
    wait_ka_state(ha.ka(1), "MASTER", secs(20.0));
    lab.wait_vip_owners("web", &["vm1"], secs(5.0));
    assert!(
        watch.wait_for_output("ANSWER vm1 ", secs(5.0)),
        "after vm1 came back the client gets no answer from it: {}",
        watch.output()
    );
    wait_ka_state(ha.ka(2), "BACKUP", secs(5.0));
    std::thread::sleep(secs(0.3));
    let back = lab.watch_report(watch);
    println!(
        "{name}: vm1 back and MASTER again after {:.2} s (preemption); client: {back}",
        t1.elapsed().as_secs_f64()
    );
    assert!(holds(&vm1, vip) && !holds(&vm2, vip));
    drop(ha);
    lab.finish();
}

#[test]
fn crash_step_down_multicast_v2_tap() {
    crash_step_down(
        "hsdm",
        240,
        Backend::Tap,
        Transport::Multicast,
        Loss::Crash,
        true,
    );
}

#[test]
fn crash_step_down_multicast_v2_netdev() {
    crash_step_down(
        "hsdn",
        241,
        Backend::Netdev,
        Transport::Multicast,
        Loss::Crash,
        true,
    );
}

#[test]
fn crash_step_down_unicast_peer_tap() {
    crash_step_down(
        "hsdu",
        242,
        Backend::Tap,
        Transport::Unicast,
        Loss::Crash,
        true,
    );
}

#[test]
fn crash_step_down_ipv6_v3_tap() {
    crash_step_down(
        "hsdw",
        243,
        Backend::Tap,
        Transport::Ipv6,
        Loss::Crash,
        true,
    );
}

#[test]
fn crash_step_down_use_vmac_tap() {
    crash_step_down(
        "hsdv",
        244,
        Backend::Tap,
        Transport::Vmac,
        Loss::Crash,
        true,
    );
}

#[test]
fn crash_step_down_disabled_sends_nothing_tap() {
    crash_step_down(
        "hsdx",
        245,
        Backend::Tap,
        Transport::Multicast,
        Loss::Crash,
        false,
    );
}

#[test]
fn admin_port_down_sends_no_step_down_tap() {
    crash_step_down(
        "hsdq",
        246,
        Backend::Tap,
        Transport::Multicast,
        Loss::Admin,
        true,
    );
}

#[test]
fn device_back_with_live_keepalived_preempts_tap() {
    crash_step_down(
        "hsdl",
        247,
        Backend::Tap,
        Transport::Multicast,
        Loss::DeviceOnly,
        true,
    );
}

/// Seconds since midnight UTC of a switch log line's timestamp (`2026-12-02T06:16:40.742541Z`).
fn log_secs_of_day(line: &str) -> Option<f64> {
    let t = line.split_whitespace().next()?.split('T').nth(1)?;
    let t = t.strip_suffix('Z')?;
    let mut it = t.split(':');
    let (h, m, s) = (it.next()?, it.next()?, it.next()?);
    Some(h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
}

fn now_secs_of_day() -> f64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs_f64()) % 86400.0
}

/// Active/active: how fast a crashed owner's flows move. Its device is deleted; the
/// switch must take the port down and drop the owner (`vip_moved`, reason `port-down`):
/// from then on every new frame of its flows goes to the other owner. 5 times per backend;
/// the client's flows are checked to be all answered by vm2 afterwards. Measured from the
/// kernel's `Deleted` link event (`ip -ts monitor link`) to the switch's `vip_moved` line.
/// (The worker used to
/// notice a deleted AF_PACKET interface only at its once-a-second presence check; now a
/// port whose link went down is re-checked every 2 ms, and the dead socket is closed by the
/// control thread after the port-down, as closing it waits for an RCU grace period.)
fn aa_crash_detection(name: &str, net: u8, b: Backend) {
    if !require_root() {
        return;
    }
    const FLOWS: usize = 32;
    let lab = Lab::new(name, net);
    for n in ["vm1", "vm2", "vm3"] {
        lab.add_vm(VmSpec::new(n, b));
    }
    let vip = lab.ip4(100);
    lab.set_extra_config(&vip_toml(
        "aa",
        "active-active",
        &[vip.into()],
        &["vm1", "vm2"],
        &[],
    ));
    lab.start();
    let (vm1, vm2, client) = (lab.vm("vm1"), lab.vm("vm2"), lab.vm("vm3"));
    let setup = |vm: &Vm| {
        vm.must(&format!("ip addr replace {vip}/32 dev lo"));
        for s in ["all", "eth0"] {
            vm.must(&format!("sysctl -qw net.ipv4.conf.{s}.arp_ignore=1"));
            vm.must(&format!("sysctl -qw net.ipv4.conf.{s}.arp_announce=2"));
        }
    };
    setup(&vm1);
    setup(&vm2);
    // Bound to the VIP on lo: they survive the deletion of eth0.
    let _ = lab.udp_echo_at(&vm1, vip, PORT);
    let _ = lab.udp_echo_at(&vm2, vip, PORT);
    let claim = |vm: &Vm| vm.must(&format!("arping -c 1 -U -I eth0 {vip}"));
    let mut took = Vec::new();
    for rep in 0..5 {
        claim(&vm1);
        claim(&vm2);
        lab.wait_vip_owners("aa", &["vm1", "vm2"], secs(3.0));
        let flows = lab.udp_flows(&client, vip, PORT, FLOWS, secs(0.1));
        let before = full_round_after(&flows, 0, secs(5.0)).expect("all flows answered");
        let mark_lines = lab.log().lines().count();
        // The kernel's own time of the deletion: `ip -ts monitor link` where the device is.
        let (mon_args, dev) = match b {
            Backend::Netdev => (vec!["ip", "-ts", "monitor", "link"], vm1.host_if.clone()),
            Backend::Tap => (
                vec!["ip", "-n", vm1.ns.as_str(), "-ts", "monitor", "link"],
                vm1.dev.clone(),
            ),
        };
        let mon = lab.spawn_host("monitor", &mon_args);
        std::thread::sleep(secs(0.2));
        let t_start = now_secs_of_day();
        lab.delete_device(&vm1);
        let t_cmd = now_secs_of_day();
        std::thread::sleep(secs(0.1));
        let mon_out = mon.interrupt().stdout;
        let t_del = mon_out
            .lines()
            .find(|l| l.contains("Deleted") && l.contains(&format!(" {dev}")))
            .and_then(|l| {
                let ts = l.strip_prefix('[')?.split(']').next()?;
                log_secs_of_day(&format!("{ts}Z x"))
            })
            .unwrap_or_else(|| panic!("no Deleted line for {dev}:\n{mon_out}"));
        lab.wait_vip_owners("aa", &["vm2"], secs(5.0));
        let log = lab.log();
        let moved = log
            .lines()
            .skip(mark_lines)
            .find(|l| l.contains("\"vip_moved\"") && l.contains("port-down"))
            .and_then(log_secs_of_day)
            .expect("a vip_moved port-down line");
        let after = full_round_after(&flows, last_round(&flows) + 1, secs(5.0))
            .expect("all flows answered after the loss");
        assert!(
            after.who.iter().all(|w| w.as_deref() == Some("vm2")),
            "{after:?}"
        );
        let ms = (moved - t_del) * 1000.0;
        for l in log
            .lines()
            .skip(mark_lines)
            .filter(|l| l.contains("vanished"))
        {
            println!("  switch: {l}");
        }
        println!(
            "{name} rep {rep}: `ip link del` ran {:.1} ms (kernel's Deleted event {:.1} ms \
             after its start); owner dropped {ms:.1} ms after the Deleted event; flows before \
             {:?}, after {:?}",
            (t_cmd - t_start) * 1000.0,
            (t_del - t_start) * 1000.0,
            before.share(),
            after.share()
        );
        took.push(ms);
        flows.interrupt();
        lab.recreate_device(&vm1);
        setup(&vm1);
    }
    took.sort_by(f64::total_cmp);
    println!(
        "{name}: device deleted → A/A owner dropped: median {:.1} ms [min {:.1} .. max {:.1}]",
        took[2], took[0], took[4]
    );
    // Generous: measured 0.3–2.3 ms; the old once-a-second presence check gave up to 1 s.
    assert!(
        took[4] < 100.0,
        "a vanished device took {took:?} ms to be noticed"
    );
    lab.finish();
}

#[test]
fn active_active_crash_detection_netdev() {
    aa_crash_detection("aadn", 248, Backend::Netdev);
}

#[test]
fn active_active_crash_detection_tap() {
    aa_crash_detection("aadt", 249, Backend::Tap);
}
