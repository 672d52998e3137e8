//! The forwarding decision: `process(snapshot, ingress, frame, now) -> Verdict`.
//!
//! Contract:
//! - [`process`] is a pure function of the snapshot (including the FDB's current contents),
//!   the ingress port, the frame bytes and `now`. It performs no I/O, takes no lock other
//!   than the FDB's read stripes, never allocates and never panics. Everything it wants done
//!   comes back as values: the [`Verdict`] (forward / flood / answered / drop with a reason)
//!   and [`Effects`] (a learning action, a VIP claim or hijack signal, a reply frame);
//! - the caller applies the effects: learning into the FDB, VIP signals to the control
//!   thread, the reply frame out of the ingress port; and counts the verdict;
//! - the rules are SEMANTICS.md §2–5, in this order: port state, MTU, parse, VLAN, source
//!   check, learning, VIP claims/hijacks, VRRP scoping, the VIP ARP/ND responder, destination
//!   selection (VIP steering with MAC rewrite, FDB, flooding), destination check;
//! - [`process_traced`] is the same decision, reporting each stage to a [`Tracer`]
//!   (`vswitch trace`); [`process`] is it with the no-op [`NoTrace`], which compiles away
//!   (see [`trace`]).

use std::net::IpAddr;
use std::sync::Arc;

use vip_table::{MacAddr, PortId, PortPolicy, Selected, Timestamp, VipId, VipTable};

use crate::discovery::SWITCH_MAC;
use crate::fdb::{Fdb, Learn};
use crate::frames::{self, SmallFrame};
use crate::overlay::HostSet;
use crate::wire::{self, ArpInfo, FrameFacts, Icmpv6Info, IpInfo, Malformed, L3, L4};

// The verdict vocabulary lives in `crate::verdict` (so that the counters need not depend
// on the pipeline); re-exported here, its usual path.
pub use crate::verdict::{DropReason, Verdict};

mod overlay;
pub mod trace;
pub use overlay::process_overlay;
use trace::{Admission, Allowance, LearnStage, Responder, SourceCheck, SourceRule, Stage, Steer};
pub use trace::{NoTrace, StageLog, Tracer};

/// The largest number of ports a switch instance supports.
pub const MAX_PORTS: usize = 1024;
const MASK_WORDS: usize = MAX_PORTS / 64;

/// A set of ports, as a fixed bitmap (no allocation on the hot path).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct PortMask([u64; MASK_WORDS]);

impl PortMask {
    /// The empty set.
    pub const EMPTY: PortMask = PortMask([0; MASK_WORDS]);

    /// Add a port (ignored past [`MAX_PORTS`]).
    #[inline]
    pub fn insert(&mut self, p: PortId) {
        let i = p.index();
        if i < MAX_PORTS {
            self.0[i / 64] |= 1 << (i % 64);
        }
    }
    /// Remove a port.
    #[inline]
    pub fn remove(&mut self, p: PortId) {
        let i = p.index();
        if i < MAX_PORTS {
            self.0[i / 64] &= !(1 << (i % 64));
        }
    }
    /// Membership.
    #[inline]
    pub fn contains(&self, p: PortId) -> bool {
        let i = p.index();
        i < MAX_PORTS && self.0[i / 64] & (1 << (i % 64)) != 0
    }
    /// True if empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
    /// Number of ports.
    pub fn len(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
    /// The ports, ascending.
    pub fn iter(&self) -> impl Iterator<Item = PortId> + '_ {
        self.0.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros();
                w &= w - 1;
                Some(PortId((wi * 64) as u32 + b))
            })
        })
    }
}

impl std::fmt::Debug for PortMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter().map(|p| p.0)).finish()
    }
}

/// One port as the pipeline sees it.
#[derive(Clone, Debug)]
pub struct PortEntry {
    /// Configured name.
    pub name: String,
    /// Source/destination policy.
    pub policy: PortPolicy,
    /// Access VLAN (0 = untagged).
    pub vlan: u16,
    /// MTU (L3 bytes).
    pub mtu: u16,
    /// Administratively up.
    pub admin_up: bool,
    /// Operationally up (the device exists and works).
    pub oper_up: bool,
    /// IPv6 link-local sources are allowed (the port has IPv6 addresses or VIPs).
    pub ipv6_enabled: bool,
    /// Candidate of at least one VIP group.
    pub is_candidate: bool,
    /// Up ports of the same VLAN, minus this one: the flood set.
    pub flood: PortMask,
    /// The smallest MTU in the flood set (frames above it are filtered port by port).
    pub flood_min_mtu: u16,
    /// Up candidates of this port's VIP groups, minus this one: where its VRRP adverts go.
    pub vrrp_peers: PortMask,
    /// Up ports of the same VLAN that are no VIP candidate: where a non-candidate's VRRP
    /// adverts go (so they can never disturb a declared HA pair).
    pub non_candidates: PortMask,
}

impl PortEntry {
    /// Up = admin up and oper up.
    #[inline]
    pub fn is_up(&self) -> bool {
        self.admin_up && self.oper_up
    }
}

/// Recompute the per-port masks after a change of port state or VIP candidacy.
pub fn recompute_masks(ports: &mut [PortEntry], vips: &VipTable) {
    let n = ports.len().min(MAX_PORTS);
    for i in 0..n {
        let pid = PortId(i as u32);
        let vlan = ports[i].vlan;
        let mut flood = PortMask::EMPTY;
        let mut noncand = PortMask::EMPTY;
        for (j, q) in ports.iter().enumerate().take(n) {
            if j != i && q.vlan == vlan && q.is_up() {
                flood.insert(PortId(j as u32));
                if vips.groups_of(PortId(j as u32)).is_empty() {
                    noncand.insert(PortId(j as u32));
                }
            }
        }
        let mut peers = PortMask::EMPTY;
        for id in vips.groups_of(pid) {
            if let Some(g) = vips.group(*id) {
                for c in g.candidates() {
                    if flood.contains(*c) {
                        peers.insert(*c);
                    }
                }
            }
        }
        let min_mtu = flood
            .iter()
            .filter_map(|q| ports.get(q.index()).map(|e| e.mtu))
            .min()
            .unwrap_or(u16::MAX);
        let p = &mut ports[i];
        p.flood = flood;
        p.flood_min_mtu = min_mtu;
        p.non_candidates = noncand;
        p.vrrp_peers = peers;
        p.is_candidate = !vips.groups_of(pid).is_empty();
    }
}

/// What the pipeline decides from: immutable except for the FDB, published by the control
/// thread, loaded by workers once per batch.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Ports, indexed by [`PortId`].
    pub ports: Arc<Vec<PortEntry>>,
    /// VIP groups with their current owners.
    pub vips: Arc<VipTable>,
    /// The forwarding database (shared across snapshots; concurrently learned).
    pub fdb: Arc<Fdb>,
    /// Increments with every published snapshot.
    pub generation: u64,
    /// Increments when port ids are reassigned (a reload): a worker only uses a snapshot
    /// whose layout matches the port table it holds.
    pub layout: u64,
    /// Per-port counters, indexed like `ports`.
    pub counters: Arc<Vec<Arc<crate::counters::PortCounters>>>,
    /// The other hosts and their ports (empty in standalone mode).
    pub overlay: Arc<crate::overlay::Overlay>,
    /// The port captures running (`None`: none, the usual case; see [`crate::capture`]).
    /// The switch state builds snapshots without; the daemon's control thread adds them.
    pub capture: Option<Arc<crate::capture::Taps>>,
}

/// Per-frame metadata from the port backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxMeta {
    /// The frame is a GSO super-frame (virtio-net header): it will be segmented to the MTU
    /// by whoever receives it, so the MTU check does not apply to its length.
    pub gso: bool,
}

/// A VIP-related signal for the control thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VipSignal {
    /// A candidate claimed the group (GARP / ARP reply / NA for one of its addresses).
    Claim {
        /// Group.
        vip: VipId,
        /// The address claimed.
        addr: IpAddr,
        /// Claimant port.
        port: PortId,
        /// The MAC it claimed with (ARP sha / NA TLL or Ethernet source).
        mac: MacAddr,
    },
    /// A candidate answered the switch's owner-discovery probe for one of the group's
    /// addresses: it holds the address.
    ProbeAnswer {
        /// Group.
        vip: VipId,
        /// The address asked about.
        addr: IpAddr,
        /// The answering port.
        port: PortId,
        /// The MAC it answered with (ARP sha / NA TLL or Ethernet source).
        mac: MacAddr,
    },
    /// A non-candidate tried to claim: dropped.
    Hijack {
        /// Group.
        vip: VipId,
        /// The address claimed.
        addr: IpAddr,
        /// The offending port.
        port: PortId,
        /// Its MAC.
        mac: MacAddr,
    },
}

/// Side effects of one frame, as values.
#[derive(Clone, Copy, Debug, Default)]
pub struct Effects {
    /// MAC learning to apply to the FDB.
    pub learn: Option<Learn>,
    /// A VIP claim or hijack attempt.
    pub vip: Option<VipSignal>,
    /// A frame the switch generated (ARP reply / NA for a VIP), for the ingress port.
    pub reply: Option<SmallFrame>,
    /// Why the frame was malformed, when it was.
    pub malformed: Option<Malformed>,
    /// The egress ports of a [`Verdict::Flood`] (meaningless for other verdicts).
    pub flood: PortMask,
    /// The other hosts a [`Verdict::Flood`] is replicated to through the overlay (head-end
    /// replication of broadcast, multicast and unknown unicast); empty for every other
    /// verdict and for frames that came from another host (split horizon).
    pub flood_remote: HostSet,
    /// The frame is unicast IP to a VIP that has no owner, delivered to the candidate
    /// whose MAC it is addressed to (as a bridge would), not dropped by the destination
    /// check. Counted as `vip_no_owner` on the ingress port.
    pub vip_no_owner: bool,
    /// A copy of a well-formed VRRP advert from a VIP candidate that passed the source
    /// check, for the control thread (it remembers each master's last advert to resign
    /// for it if its device vanishes: [`crate::control::Switch::record_vrrp`]).
    pub vrrp: Option<VrrpAdvert>,
}

/// A VRRP advert a candidate sent (copied; see [`Effects::vrrp`]).
#[derive(Clone, Copy, Debug)]
pub struct VrrpAdvert {
    /// The ingress port.
    pub port: PortId,
    /// The frame as received.
    pub frame: SmallFrame,
}

impl Effects {
    fn clear(&mut self) {
        self.learn = None;
        self.vip = None;
        self.reply = None;
        self.malformed = None;
        self.vip_no_owner = false;
        self.vrrp = None;
        self.flood_remote = HostSet::EMPTY;
    }
}

#[inline]
fn is_link_local_v6(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(a) if (a.segments()[0] & 0xffc0) == 0xfe80)
}

/// Why `mac` may send from `ip` on `pid` (its prefixes, or VIP candidacy); `None`: it may
/// not. The datapath tests it for `is_some()`.
#[inline(always)]
fn src_ip_allowance(
    snap: &Snapshot,
    pid: PortId,
    port: &PortEntry,
    mac: MacAddr,
    ip: IpAddr,
) -> Option<Allowance> {
    if port.policy.ip_allowed(mac, ip) {
        Some(Allowance::Prefix)
    } else if snap.vips.is_candidate_for(pid, ip) {
        Some(Allowance::VipCandidate)
    } else {
        None
    }
}

/// Why the destination check of `port` admits unicast IP to `dst`; `None`: it refuses.
#[inline(always)]
fn admission(snap: &Snapshot, pid: PortId, port: &PortEntry, dst: IpAddr) -> Option<Admission> {
    if !(port.policy.port_security && port.policy.dest_check) {
        return Some(Admission::Off);
    }
    match dst {
        IpAddr::V4(a) if a.is_broadcast() || a.is_multicast() => return Some(Admission::Group),
        IpAddr::V6(a) if a.is_multicast() => return Some(Admission::Group),
        _ => {}
    }
    if port.policy.receives(dst) {
        Some(Admission::Prefix)
    } else if snap.vips.owns(pid, dst) {
        Some(Admission::OwnedVip)
    } else if port.ipv6_enabled && is_link_local_v6(dst) {
        Some(Admission::LinkLocal)
    } else {
        None
    }
}

/// Does the destination check of `port` admit unicast IP to `dst`?
#[inline]
fn admits(snap: &Snapshot, pid: PortId, port: &PortEntry, dst: IpAddr) -> bool {
    admission(snap, pid, port, dst).is_some()
}

/// Is `dst` an address of a VIP group that has no owner, of which `pid` is a candidate?
/// Until the owner is known (after a restart, before discovery answers), such a frame goes
/// to the candidate its destination MAC names, as a bridge would deliver it.
#[inline]
fn unowned_vip_of(snap: &Snapshot, pid: PortId, dst: IpAddr) -> bool {
    snap.vips
        .lookup_group(dst)
        .is_some_and(|(_, g)| !g.has_owner() && g.is_candidate(pid))
}

/// A source-check record.
#[inline(always)]
fn check(rule: SourceRule, allowed_by: Option<Allowance>, passed: bool) -> Stage {
    Stage::Check(SourceCheck {
        rule,
        passed,
        allowed_by,
    })
}

/// The source check (SEMANTICS.md §3). `Ok` if the frame may enter.
fn source_check<T: Tracer>(
    snap: &Snapshot,
    pid: PortId,
    port: &PortEntry,
    f: &FrameFacts,
    t: &mut T,
) -> Result<(), DropReason> {
    let pol = &port.policy;
    let mac_ok = pol.mac_allowed(f.src);
    t.stage(check(SourceRule::SrcMac(f.src), None, mac_ok));
    if !mac_ok {
        return Err(DropReason::MacSpoof);
    }
    match &f.l3 {
        L3::Arp(a) => {
            let sha_ok = a.sha == f.src;
            t.stage(check(SourceRule::ArpSha(a.sha), None, sha_ok));
            if !sha_ok {
                return Err(DropReason::ArpSpoof);
            }
            let why = if a.spa.is_unspecified() {
                Some(Allowance::Unspecified)
            } else {
                src_ip_allowance(snap, pid, port, f.src, IpAddr::V4(a.spa))
            };
            t.stage(check(
                SourceRule::ArpSpa(IpAddr::V4(a.spa)),
                why,
                why.is_some(),
            ));
            if why.is_none() {
                // A claim for a VIP from a non-candidate is reported as a hijack, not as a
                // plain ARP spoof: the caller checks VIP addresses first.
                return Err(DropReason::ArpSpoof);
            }
        }
        L3::Ipv4(ip) => {
            let why = src_ip_allowance(snap, pid, port, f.src, ip.src).or_else(|| {
                (ip.src.is_unspecified() && ip.is_dhcp4_client()).then_some(Allowance::Unspecified)
            });
            t.stage(check(SourceRule::SrcIp(ip.src), why, why.is_some()));
            if why.is_none() {
                return Err(DropReason::IpSpoof);
            }
            if ip.is_dhcp4_server() {
                t.stage(check(SourceRule::DhcpServer, None, pol.dhcp_server));
                if !pol.dhcp_server {
                    return Err(DropReason::DhcpGuard);
                }
            }
        }
        L3::Ipv6(ip) => {
            let icmp = matches!(ip.l4, L4::Icmpv6(_));
            let why = src_ip_allowance(snap, pid, port, f.src, ip.src)
                .or_else(|| (ip.src.is_unspecified() && icmp).then_some(Allowance::Unspecified))
                .or_else(|| {
                    (port.ipv6_enabled && is_link_local_v6(ip.src)).then_some(Allowance::LinkLocal)
                });
            t.stage(check(SourceRule::SrcIp(ip.src), why, why.is_some()));
            if why.is_none() {
                return Err(DropReason::IpSpoof);
            }
            match ip.l4 {
                L4::Icmpv6(Icmpv6Info::RouterAdvert) => {
                    t.stage(check(SourceRule::RaGuard, None, false));
                    return Err(DropReason::RaGuard);
                }
                L4::Icmpv6(Icmpv6Info::NeighborSolicit { sll: Some(m), .. }) => {
                    t.stage(check(SourceRule::NdLladdr(m), None, m == f.src));
                    if m != f.src {
                        return Err(DropReason::NdSpoof);
                    }
                }
                L4::Icmpv6(Icmpv6Info::NeighborAdvert { target, tll, .. }) => {
                    if let Some(m) = tll {
                        t.stage(check(SourceRule::NdLladdr(m), None, m == f.src));
                        if m != f.src {
                            return Err(DropReason::NdSpoof);
                        }
                    }
                    let a = IpAddr::V6(target);
                    let why = src_ip_allowance(snap, pid, port, f.src, a).or_else(|| {
                        (port.ipv6_enabled && is_link_local_v6(a)).then_some(Allowance::LinkLocal)
                    });
                    t.stage(check(SourceRule::NaTarget(a), why, why.is_some()));
                    if why.is_none() {
                        return Err(DropReason::NdSpoof);
                    }
                }
                _ => {}
            }
            if ip.is_dhcp6_server() {
                t.stage(check(SourceRule::DhcpServer, None, pol.dhcp_server));
                if !pol.dhcp_server {
                    return Err(DropReason::DhcpGuard);
                }
            }
        }
        L3::Other(_) => {}
    }
    Ok(())
}

/// If the frame speaks for a VIP address (a GARP, an ARP reply, an NA), the group, the
/// address, the MAC, and whether it is an announcement to everyone (a claim) rather than an
/// answer to one asker.
///
/// Only announcements claim: a gratuitous ARP request, an ARP reply sent to broadcast
/// (`arping -A`), an unsolicited NA (S flag clear). A unicast ARP reply or a solicited NA
/// answers somebody's request: a VM that still has the address — its keepalived was
/// killed; with `use_vmac` the macvlan has `accept_local = 1` — answers the new master's
/// GARP that way, and must not take the VIP back. From a non-candidate, any of them is a
/// hijack attempt.
#[inline]
fn claimed_vip(snap: &Snapshot, f: &FrameFacts) -> Option<(VipId, IpAddr, MacAddr, bool)> {
    if snap.vips.is_empty() {
        return None;
    }
    match &f.l3 {
        L3::Arp(a) if a.is_gratuitous_request() || a.op == ArpInfo::REPLY => {
            let addr = IpAddr::V4(a.spa);
            let announced = a.is_gratuitous_request() || f.dst.is_multicast();
            snap.vips
                .lookup(addr)
                .map(|id| (id, addr, a.sha, announced))
        }
        L3::Ipv6(IpInfo {
            l4: L4::Icmpv6(Icmpv6Info::NeighborAdvert { target, tll, flags }),
            ..
        }) => {
            let addr = IpAddr::V6(*target);
            let announced = flags & wire::NA_FLAG_SOLICITED == 0;
            snap.vips
                .lookup(addr)
                .map(|id| (id, addr, tll.unwrap_or(f.src), announced))
        }
        _ => None,
    }
}

/// Decide what happens to `frame` arriving on `ingress`: [`process_traced`] without a
/// tracer (the datapath's entry point).
#[inline]
pub fn process(
    snap: &Snapshot,
    ingress: PortId,
    frame: &[u8],
    meta: RxMeta,
    now: Timestamp,
    fx: &mut Effects,
) -> Verdict {
    process_traced(snap, ingress, frame, meta, now, fx, &mut NoTrace)
}

/// An MTU record (`len`: the whole frame; `l2_len`: its L2 header).
#[inline(always)]
fn mtu_stage(port: PortId, len: usize, l2_len: u16, mtu: u16, meta: RxMeta, ok: bool) -> Stage {
    Stage::Mtu {
        port,
        l3_len: len.saturating_sub(usize::from(l2_len)),
        mtu,
        gso: meta.gso,
        ok,
    }
}

/// Decide what happens to `frame` arriving on `ingress`, telling `t` how each stage
/// decided (see [`trace`]). Pure like [`process`], which is this with [`NoTrace`].
pub fn process_traced<T: Tracer>(
    snap: &Snapshot,
    ingress: PortId,
    frame: &[u8],
    meta: RxMeta,
    now: Timestamp,
    fx: &mut Effects,
    t: &mut T,
) -> Verdict {
    fx.clear();
    let Some(port) = snap.ports.get(ingress.index()) else {
        t.stage(Stage::Ingress {
            known: false,
            admin_up: false,
            oper_up: false,
        });
        return Verdict::Drop(DropReason::PortDown);
    };
    t.stage(Stage::Ingress {
        known: true,
        admin_up: port.admin_up,
        oper_up: port.oper_up,
    });
    if !port.is_up() {
        return Verdict::Drop(DropReason::PortDown);
    }
    let f = match wire::parse(frame) {
        Ok(f) => f,
        Err(m) => {
            t.stage(Stage::Malformed(m));
            fx.malformed = Some(m);
            return Verdict::Drop(DropReason::Malformed);
        }
    };
    t.stage(Stage::Parsed(f));
    let mtu_ok = meta.gso || frame.len() <= usize::from(port.mtu) + usize::from(f.l2_len);
    t.stage(mtu_stage(
        ingress,
        frame.len(),
        f.l2_len,
        port.mtu,
        meta,
        mtu_ok,
    ));
    if !mtu_ok {
        return Verdict::Drop(DropReason::Mtu);
    }
    if let Some(vid) = f.vlan {
        t.stage(Stage::Tagged { vid });
        return Verdict::Drop(DropReason::Vlan);
    }
    let vlan = port.vlan;

    // VIP claims are judged before the generic source check so that a non-candidate's claim
    // is reported as what it is: a hijack attempt.
    let claim = claimed_vip(snap, &f);
    if let Some((vip, addr, mac, announced)) = claim {
        let candidate = snap
            .vips
            .group(vip)
            .is_some_and(|g| g.is_candidate(ingress));
        t.stage(Stage::Announcement {
            vip,
            addr,
            mac,
            announced,
            candidate,
        });
        if !candidate {
            fx.vip = Some(VipSignal::Hijack {
                vip,
                addr,
                port: ingress,
                mac: f.src,
            });
            return Verdict::Drop(DropReason::VipHijack);
        }
        if port.policy.port_security {
            if let Err(r) = source_check(snap, ingress, port, &f, t) {
                return Verdict::Drop(r);
            }
        } else {
            t.stage(Stage::PortSecurityOff);
        }
        if announced {
            fx.vip = Some(VipSignal::Claim {
                vip,
                addr,
                port: ingress,
                mac,
            });
        }
    } else if port.policy.port_security {
        if let Err(r) = source_check(snap, ingress, port, &f, t) {
            return Verdict::Drop(r);
        }
    } else {
        t.stage(Stage::PortSecurityOff);
    }

    // Learning (only frames that passed the source check teach the table).
    match snap.fdb.check_learn(vlan, f.src, ingress, now) {
        Ok(Some(op)) => {
            t.stage(Stage::Learn(match op {
                crate::fdb::LearnOp::Insert => LearnStage::Insert,
                crate::fdb::LearnOp::Move { from } => LearnStage::Move { from },
                crate::fdb::LearnOp::Refresh => LearnStage::Refresh,
            }));
            fx.learn = Some(Learn {
                vlan,
                mac: f.src,
                port: ingress,
                op,
            })
        }
        Ok(None) => t.stage(Stage::Learn(LearnStage::Known)),
        Err(crate::fdb::FdbFull) => {
            t.stage(Stage::Learn(LearnStage::Full));
            fx.vip = None;
            return Verdict::Drop(DropReason::FdbFull);
        }
    }

    // Frames to the switch itself: answers to its owner-discovery probes.
    if f.dst == SWITCH_MAC {
        if let Some((vip, addr, mac, false)) = claim {
            t.stage(Stage::ToSwitch { probe_answer: true });
            fx.vip = Some(VipSignal::ProbeAnswer {
                vip,
                addr,
                port: ingress,
                mac,
            });
            return Verdict::ToSwitch;
        }
        t.stage(Stage::ToSwitch {
            probe_answer: false,
        });
        return Verdict::Drop(DropReason::NoEgress);
    }

    // VRRP adverts stay among the candidates of the sender's groups.
    if let Some(ip) = f.ip() {
        if ip.l4 == L4::Vrrp && port.is_candidate {
            record_vrrp(ingress, frame, fx);
        }
        if ip.is_vrrp_multicast() {
            let (set, remote) = if port.is_candidate {
                (port.vrrp_peers, overlay::vrrp_hosts(snap, ingress))
            } else {
                (port.non_candidates, HostSet::EMPTY)
            };
            t.stage(Stage::Vrrp {
                candidate: port.is_candidate,
                set,
            });
            let v = flood_or_drop(set, fx);
            return overlay::with_remote(v, remote, fx);
        }
    }

    // The VIP ARP/ND responder: answer non-candidates from the live owner table.
    if let Some(v) = answer_vip_query(snap, ingress, &f, fx, t) {
        return v;
    }
    // ARP / NS for a port of another host: answered here, from the topology.
    if let Some(v) = overlay::answer_remote_neighbour(snap, vlan, &f, fx) {
        t.stage(Stage::RemoteNeighbour);
        return v;
    }

    if f.dst.is_multicast() {
        t.stage(Stage::Multicast { set: port.flood });
        let v = fit_mtu(snap, port.flood, port, frame.len(), f.l2_len, meta, fx, t);
        return overlay::with_remote(v, snap.overlay.hosts_in_vlan(vlan), fx);
    }

    // Unicast IP to a VIP: steer to the (hash-chosen) owner, rewriting the MAC.
    if let Some(ip) = f.ip() {
        if let Some(v) = steer_to_vip_owner(snap, ingress, vlan, &f, ip, frame.len(), meta, now, t)
        {
            return v;
        }
    }

    let found = snap.fdb.lookup(vlan, f.dst, now);
    t.stage(Stage::FdbLookup {
        mac: f.dst,
        port: found,
    });
    match found {
        Some(out) => {
            if out == ingress {
                t.stage(Stage::Hairpin);
                return Verdict::Drop(DropReason::Hairpin);
            }
            let Some(egress) = snap.ports.get(out.index()) else {
                return flood_unknown(snap, port, &f, frame.len(), meta, fx, t);
            };
            if !egress.is_up() {
                t.stage(Stage::EgressDown { port: out });
                return Verdict::Drop(DropReason::PortDown);
            }
            if let Some(ip) = f.ip() {
                let why = admission(snap, out, egress, ip.dst)
                    .or_else(|| unowned_vip_of(snap, out, ip.dst).then_some(Admission::UnownedVip));
                t.stage(Stage::DestCheck {
                    port: out,
                    dst: ip.dst,
                    admitted: why,
                });
                match why {
                    None => return Verdict::Drop(DropReason::DestCheck),
                    Some(Admission::UnownedVip) => fx.vip_no_owner = true,
                    Some(_) => {}
                }
            }
            let mtu_ok = meta.gso || frame.len() <= usize::from(egress.mtu) + usize::from(f.l2_len);
            t.stage(mtu_stage(
                out,
                frame.len(),
                f.l2_len,
                egress.mtu,
                meta,
                mtu_ok,
            ));
            if !mtu_ok {
                return Verdict::Drop(DropReason::Mtu);
            }
            Verdict::Forward {
                port: out,
                rewrite_dst: None,
            }
        }
        None => {
            // a port of another host: through the overlay, unchanged
            if let Some(rp) = snap.overlay.port_by_mac(vlan, f.dst) {
                t.stage(Stage::RemotePort { host: rp.host });
                return Verdict::ToRemote {
                    host: rp.host,
                    vlan,
                    mac: f.dst,
                };
            }
            let v = flood_unknown(snap, port, &f, frame.len(), meta, fx, t);
            overlay::with_remote(v, snap.overlay.hosts_in_vlan(vlan), fx)
        }
    }
}

/// Copy a candidate's VRRP advert into the effects (no allocation; frames longer than a
/// [`SmallFrame`] or not well-formed adverts are not recorded).
#[inline]
fn record_vrrp(port: PortId, frame: &[u8], fx: &mut Effects) {
    if frame.len() <= frames::SMALL_FRAME_CAP && crate::vrrp::parse(frame).is_some() {
        let mut c = SmallFrame::default();
        if c.set(frame) {
            fx.vrrp = Some(VrrpAdvert { port, frame: c });
        }
    }
}

/// Remove from a flood set the ports whose MTU the frame exceeds (GSO frames are exempt).
#[allow(clippy::too_many_arguments)]
#[inline]
fn fit_mtu<T: Tracer>(
    snap: &Snapshot,
    mut set: PortMask,
    port: &PortEntry,
    len: usize,
    l2_len: u16,
    meta: RxMeta,
    fx: &mut Effects,
    t: &mut T,
) -> Verdict {
    let l3 = len.saturating_sub(usize::from(l2_len));
    if meta.gso || l3 <= usize::from(port.flood_min_mtu) {
        return flood_or_drop(set, fx);
    }
    let before = set;
    for p in before.iter() {
        if snap
            .ports
            .get(p.index())
            .is_some_and(|e| l3 > usize::from(e.mtu))
        {
            set.remove(p);
        }
    }
    if T::ENABLED {
        let mut removed = before;
        for p in set.iter() {
            removed.remove(p);
        }
        t.stage(Stage::FloodMtu { removed });
    }
    if set.is_empty() && !before.is_empty() {
        return Verdict::Drop(DropReason::Mtu);
    }
    flood_or_drop(set, fx)
}

#[inline]
fn flood_or_drop(set: PortMask, fx: &mut Effects) -> Verdict {
    if set.is_empty() {
        Verdict::Drop(DropReason::NoEgress)
    } else {
        fx.flood = set;
        Verdict::Flood
    }
}

/// Unknown unicast: flood in the VLAN, but only to ports whose destination check admits it
/// and whose MTU fits.
fn flood_unknown<T: Tracer>(
    snap: &Snapshot,
    port: &PortEntry,
    f: &FrameFacts,
    len: usize,
    meta: RxMeta,
    fx: &mut Effects,
    t: &mut T,
) -> Verdict {
    let Some(ip) = f.ip() else {
        t.stage(Stage::UnknownUnicast {
            set: port.flood,
            refused: PortMask::EMPTY,
        });
        return fit_mtu(snap, port.flood, port, len, f.l2_len, meta, fx, t);
    };
    let mut set = port.flood;
    let mut refused = PortMask::EMPTY;
    for p in port.flood.iter() {
        if let Some(e) = snap.ports.get(p.index()) {
            if !admits(snap, p, e, ip.dst) {
                set.remove(p);
                refused.insert(p);
            }
        }
    }
    t.stage(Stage::UnknownUnicast {
        set: port.flood,
        refused,
    });
    if set.is_empty() && !port.flood.is_empty() {
        return Verdict::Drop(DropReason::DestCheck);
    }
    fit_mtu(snap, set, port, len, f.l2_len, meta, fx, t)
}

#[allow(clippy::too_many_arguments)]
#[inline]
fn steer_to_vip_owner<T: Tracer>(
    snap: &Snapshot,
    ingress: PortId,
    vlan: u16,
    f: &FrameFacts,
    ip: &IpInfo,
    len: usize,
    meta: RxMeta,
    now: Timestamp,
    t: &mut T,
) -> Option<Verdict> {
    let (vip, g) = snap.vips.lookup_group(ip.dst)?;
    // A frame addressed to a non-candidate's MAC (a router in front of the VIP) is that
    // port's business: only frames meant for the VIP at L2 are steered.
    if let Some(p) = snap.fdb.lookup(vlan, f.dst, now) {
        if !g.is_candidate(p) {
            t.stage(Stage::Steer {
                vip,
                steer: Steer::NotForVip { port: p },
            });
            return None;
        }
    }
    // A frame already addressed to one of the group's owners here goes to that owner: the
    // sending host chose it among active-active owners (its choice stands: hosts hash
    // owners by ids of their own), or the client's cache names it and it still owns.
    let chosen = g
        .owners()
        .iter()
        .find(|o| o.mac == f.dst || o.mac6 == f.dst);
    let Some(selected) = chosen
        .map(Selected::Local)
        .or_else(|| g.select(ip.flow_hash()))
    else {
        t.stage(Stage::Steer {
            vip,
            steer: Steer::NoOwner,
        });
        return None;
    };
    let owner = match selected {
        Selected::Local(o) => o,
        Selected::Remote(o) => {
            // owned on another host: through the overlay, with the same MAC rewrite
            let mac = if ip.dst.is_ipv6() { o.mac6 } else { o.mac };
            t.stage(Stage::Steer {
                vip,
                steer: Steer::Remote {
                    host: o.at.host,
                    mac,
                },
            });
            return Some(Verdict::ToRemote {
                host: o.at.host,
                vlan,
                mac,
            });
        }
    };
    let mac = if ip.dst.is_ipv6() {
        owner.mac6
    } else {
        owner.mac
    };
    let egress = snap.ports.get(owner.port.index())?;
    if egress.vlan != vlan {
        t.stage(Stage::Steer {
            vip,
            steer: Steer::OtherVlan,
        });
        return None;
    }
    t.stage(Stage::Steer {
        vip,
        steer: Steer::Owner {
            port: owner.port,
            mac,
            by_dst_mac: chosen.is_some(),
        },
    });
    if owner.port == ingress {
        t.stage(Stage::Hairpin);
        return Some(Verdict::Drop(DropReason::Hairpin));
    }
    if !egress.is_up() {
        t.stage(Stage::EgressDown { port: owner.port });
        return Some(Verdict::Drop(DropReason::PortDown));
    }
    let mtu_ok = meta.gso || len <= usize::from(egress.mtu) + usize::from(f.l2_len);
    t.stage(mtu_stage(
        owner.port, len, f.l2_len, egress.mtu, meta, mtu_ok,
    ));
    if !mtu_ok {
        return Some(Verdict::Drop(DropReason::Mtu));
    }
    Some(Verdict::Forward {
        port: owner.port,
        rewrite_dst: (f.dst != mac).then_some(mac),
    })
}

fn answer_vip_query<T: Tracer>(
    snap: &Snapshot,
    ingress: PortId,
    f: &FrameFacts,
    fx: &mut Effects,
    t: &mut T,
) -> Option<Verdict> {
    if snap.vips.is_empty() {
        return None;
    }
    match &f.l3 {
        L3::Arp(a) if a.op == ArpInfo::REQUEST && !a.is_gratuitous_request() => {
            let addr = IpAddr::V4(a.tpa);
            let (vip, g) = snap.vips.lookup_group(addr)?;
            if g.is_candidate(ingress) {
                t.stage(Stage::Responder {
                    vip,
                    addr,
                    outcome: Responder::AskerIsCandidate,
                });
                return None;
            }
            let Some(mac) = g.answer_mac() else {
                t.stage(Stage::Responder {
                    vip,
                    addr,
                    outcome: Responder::NoOwner,
                });
                return None;
            };
            t.stage(Stage::Responder {
                vip,
                addr,
                outcome: Responder::Answered { mac },
            });
            let out = fx.reply.insert(SmallFrame::default());
            frames::arp_reply(out, mac, a.tpa, a.sha, a.spa);
            Some(Verdict::Answered)
        }
        L3::Ipv6(ip) => {
            let L4::Icmpv6(Icmpv6Info::NeighborSolicit { target, sll }) = ip.l4 else {
                return None;
            };
            let addr = IpAddr::V6(target);
            let (vip, g) = snap.vips.lookup_group(addr)?;
            if g.is_candidate(ingress) {
                t.stage(Stage::Responder {
                    vip,
                    addr,
                    outcome: Responder::AskerIsCandidate,
                });
                return None;
            }
            let Some(mac) = g.answer_mac6() else {
                t.stage(Stage::Responder {
                    vip,
                    addr,
                    outcome: Responder::NoOwner,
                });
                return None;
            };
            let IpAddr::V6(src) = ip.src else {
                return None;
            };
            t.stage(Stage::Responder {
                vip,
                addr,
                outcome: Responder::Answered { mac },
            });
            // built in place: a SmallFrame is 136 bytes
            let out = fx.reply.insert(SmallFrame::default());
            frames::na_reply(out, mac, target, sll.unwrap_or(f.src), src);
            Some(Verdict::Answered)
        }
        _ => None,
    }
}
