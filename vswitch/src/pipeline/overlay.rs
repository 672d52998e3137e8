//! The pipeline's overlay half: where a local frame goes on other hosts (egress), and what
//! happens to a frame another host sent ([`process_overlay`], ingress). Pure, like
//! [`super::process`]: no I/O, no allocation, no panic; everything it wants done comes back
//! as the [`Verdict`] and the [`Effects`].
//!
//! Egress (called from [`super::process`], after this host's source checks):
//! - unicast to a MAC that misses the local FDB and is a remote port's (or pair's) MAC in
//!   the VLAN: [`Verdict::ToRemote`] to that port's host, destination MAC unchanged;
//! - broadcast, multicast, unknown unicast: the local flood set as standalone, plus
//!   head-end replication ([`Effects::flood_remote`]) to every live host with a port in the
//!   VLAN;
//! - VRRP multicast from a VIP candidate: its local peers plus the hosts that have a
//!   candidate of one of its groups; from a non-candidate: local non-candidates only (an
//!   unknown HA pair's adverts never leave the host, so they cannot disturb a declared pair
//!   elsewhere);
//! - an ARP request / IPv6 NS for a remote port's fixed IP, or for a host-prefix (/32,
//!   /128) allowed-address-pair, is answered here with that port's (pair's) MAC: ARP never
//!   crosses hosts for known addresses. Wider pairs are not answered: a prefix says which
//!   sources the port may use, not that it holds each address of it (l2pop-style responders
//!   break exactly there, answering for addresses nobody has); such requests are
//!   broadcast and replicated like any other.
//!
//! Ingress ([`process_overlay`]), in this order: the outer source must be the VTEP of a
//! live host ([`DropReason::UnknownVtep`]), the VNI must carry a VLAN
//! ([`DropReason::UnknownVni`]), the inner frame must parse and be untagged, its source
//! MAC must be a port or pair MAC of that host in that VLAN — or a VRRP virtual MAC
//! (`00:00:5e:00:01:xx` / `00:00:5e:00:02:xx`) from a host with a VIP candidate
//! ([`DropReason::OverlaySpoof`]). Nothing is learned (locations come from the store), no
//! VIP claim is signalled (ownership comes from the store), nothing is replicated to other
//! hosts (split horizon). VRRP multicast goes to the local candidates of the groups that
//! have a candidate on the sending host; other broadcast and multicast to the local up
//! ports of the VLAN; unicast IP to a VIP owned here is steered (MAC rewrite) as for a
//! local sender; other unicast goes to the port the FDB names, or is flooded to the VLAN's
//! local ports when unknown; the receiving port's destination check and MTU apply.

use std::net::{IpAddr, Ipv4Addr};

use vip_table::{HostId, MacAddr, PortId, Timestamp};

use super::{
    admits, steer_to_vip_owner, unowned_vip_of, DropReason, Effects, PortEntry, PortMask, RxMeta,
    Snapshot, Verdict,
};
use crate::discovery::SWITCH_MAC;
use crate::frames::{self, SmallFrame};
use crate::overlay::HostSet;
use crate::wire::vxlan::Vni;
use crate::wire::{self, ArpInfo, FrameFacts, Icmpv6Info, L3, L4};

/// Add `remote` to a flood: a local flood stays one, a flood that found no local port
/// (nothing else up, every port refused by its destination check or MTU) becomes a flood
/// to the other hosts only. Other verdicts are returned unchanged.
#[inline]
pub(super) fn with_remote(v: Verdict, remote: HostSet, fx: &mut Effects) -> Verdict {
    if remote.is_empty() {
        return v;
    }
    match v {
        Verdict::Flood => {
            fx.flood_remote = remote;
            Verdict::Flood
        }
        Verdict::Drop(DropReason::NoEgress | DropReason::DestCheck | DropReason::Mtu) => {
            fx.flood = PortMask::EMPTY;
            fx.flood_remote = remote;
            Verdict::Flood
        }
        other => other,
    }
}

/// The live hosts that have a candidate of one of `ingress`'s VIP groups.
#[inline]
pub(super) fn vrrp_hosts(snap: &Snapshot, ingress: PortId) -> HostSet {
    let mut set = HostSet::EMPTY;
    for id in snap.vips.groups_of(ingress) {
        if let Some(g) = snap.vips.group(*id) {
            for r in g.remote_candidates() {
                set.insert(r.host);
            }
        }
    }
    set.intersect(&snap.overlay.live());
    set
}

/// Answer an ARP request / NS for an address of a port of another host.
pub(super) fn answer_remote_neighbour(
    snap: &Snapshot,
    vlan: u16,
    f: &FrameFacts,
    fx: &mut Effects,
) -> Option<Verdict> {
    let ov = &snap.overlay;
    if !ov.enabled() {
        return None;
    }
    match &f.l3 {
        L3::Arp(a) if a.op == ArpInfo::REQUEST && !a.is_gratuitous_request() => {
            let mac = ov.neighbour(vlan, IpAddr::V4(a.tpa))?;
            let mut out = SmallFrame::default();
            frames::arp_reply(&mut out, mac, a.tpa, a.sha, a.spa);
            fx.reply = Some(out);
            Some(Verdict::Answered)
        }
        L3::Ipv6(ip) => {
            let L4::Icmpv6(Icmpv6Info::NeighborSolicit { target, sll }) = ip.l4 else {
                return None;
            };
            let mac = ov.neighbour(vlan, IpAddr::V6(target))?;
            let IpAddr::V6(src) = ip.src else {
                return None;
            };
            if src.is_unspecified() {
                // duplicate address detection: the asker has no address to answer to
                return None;
            }
            let mut out = SmallFrame::default();
            frames::na_reply(&mut out, mac, target, sll.unwrap_or(f.src), src);
            fx.reply = Some(out);
            Some(Verdict::Answered)
        }
        _ => None,
    }
}

/// A VRRP virtual router MAC (RFC 5798 §7.3: `00:00:5e:00:01:{VRID}` for IPv4,
/// `00:00:5e:00:02:{VRID}` for IPv6).
#[inline]
fn is_vrrp_vmac(m: MacAddr) -> bool {
    matches!(m.0, [0, 0, 0x5e, 0, 1 | 2, _])
}

/// Does `host` have a candidate of any VIP group?
#[inline]
fn has_remote_candidate(snap: &Snapshot, host: HostId) -> bool {
    snap.vips
        .groups()
        .any(|(_, g)| g.remote_candidates().iter().any(|r| r.host == host))
}

/// Decide what happens to `frame`, the inner frame of a VXLAN datagram with `vni` from
/// underlay address `src` (see the module doc). Returns the sending host (once the source
/// is known to be one: per-host counters) and the verdict. `fx.flood_remote` is always
/// empty: nothing from another host is replicated to a third.
pub fn process_overlay(
    snap: &Snapshot,
    src: Ipv4Addr,
    vni: Vni,
    frame: &[u8],
    meta: RxMeta,
    now: Timestamp,
    fx: &mut Effects,
) -> (Option<HostId>, Verdict) {
    fx.clear();
    let Some(host) = snap.overlay.host_at(src) else {
        return (None, Verdict::Drop(DropReason::UnknownVtep));
    };
    let v = ingress(snap, host, vni, frame, meta, now, fx);
    (Some(host), v)
}

fn ingress(
    snap: &Snapshot,
    host: HostId,
    vni: Vni,
    frame: &[u8],
    meta: RxMeta,
    now: Timestamp,
    fx: &mut Effects,
) -> Verdict {
    let ov = &snap.overlay;
    let Some(vlan) = ov.vlan_of(vni) else {
        return Verdict::Drop(DropReason::UnknownVni);
    };
    let f = match wire::parse(frame) {
        Ok(f) => f,
        Err(m) => {
            fx.malformed = Some(m);
            return Verdict::Drop(DropReason::Malformed);
        }
    };
    if f.vlan.is_some() {
        return Verdict::Drop(DropReason::Vlan);
    }
    let from_port = ov.port_by_mac(vlan, f.src).is_some_and(|p| p.host == host);
    let vmac_ok = is_vrrp_vmac(f.src) && has_remote_candidate(snap, host);
    if !(from_port || vmac_ok) {
        return Verdict::Drop(DropReason::OverlaySpoof);
    }
    if f.dst == SWITCH_MAC {
        return Verdict::Drop(DropReason::NoEgress);
    }
    let len = frame.len();
    let fits = |mtu: u16| meta.gso || len <= usize::from(mtu) + usize::from(f.l2_len);

    if let Some(ip) = f.ip() {
        if ip.is_vrrp_multicast() {
            let mut set = PortMask::EMPTY;
            for (_, g) in snap.vips.groups() {
                if !g.remote_candidates().iter().any(|r| r.host == host) {
                    continue;
                }
                for c in g.candidates() {
                    if snap
                        .ports
                        .get(c.index())
                        .is_some_and(|p| p.vlan == vlan && p.is_up() && fits(p.mtu))
                    {
                        set.insert(*c);
                    }
                }
            }
            return local_flood(set, fx);
        }
    }

    if f.dst.is_multicast() {
        // (multicast and broadcast IP destinations pass every destination check)
        let set = vlan_ports(snap, vlan, |pid, p| {
            fits(p.mtu) && f.ip().is_none_or(|ip| admits(snap, pid, p, ip.dst))
        });
        return local_flood(set, fx);
    }

    if let Some(ip) = f.ip() {
        // no ingress port: the sentinel never equals an owner, so no hairpin
        match steer_to_vip_owner(
            snap,
            PortId(u32::MAX),
            vlan,
            &f,
            ip,
            len,
            meta,
            now,
            &mut super::NoTrace,
        ) {
            // owned on a third host: never relayed (split horizon)
            Some(Verdict::ToRemote { .. }) => return Verdict::Drop(DropReason::NoEgress),
            Some(v) => return v,
            None => {}
        }
    }

    match snap.fdb.lookup(vlan, f.dst, now) {
        Some(out) => {
            let Some(egress) = snap.ports.get(out.index()) else {
                return Verdict::Drop(DropReason::NoEgress);
            };
            if !egress.is_up() {
                return Verdict::Drop(DropReason::PortDown);
            }
            if let Some(ip) = f.ip() {
                if !admits(snap, out, egress, ip.dst) {
                    if !unowned_vip_of(snap, out, ip.dst) {
                        return Verdict::Drop(DropReason::DestCheck);
                    }
                    fx.vip_no_owner = true;
                }
            }
            if !fits(egress.mtu) {
                return Verdict::Drop(DropReason::Mtu);
            }
            Verdict::Forward {
                port: out,
                rewrite_dst: None,
            }
        }
        None => {
            let all = vlan_ports(snap, vlan, |_, _| true);
            let set = vlan_ports(snap, vlan, |pid, p| {
                fits(p.mtu) && f.ip().is_none_or(|ip| admits(snap, pid, p, ip.dst))
            });
            if set.is_empty() && !all.is_empty() {
                return Verdict::Drop(DropReason::DestCheck);
            }
            local_flood(set, fx)
        }
    }
}

/// The up ports of `vlan` that `keep` admits.
#[inline]
fn vlan_ports(snap: &Snapshot, vlan: u16, keep: impl Fn(PortId, &PortEntry) -> bool) -> PortMask {
    let mut set = PortMask::EMPTY;
    for (i, p) in snap.ports.iter().enumerate() {
        let pid = PortId(i as u32);
        if p.vlan == vlan && p.is_up() && keep(pid, p) {
            set.insert(pid);
        }
    }
    set
}

#[inline]
fn local_flood(set: PortMask, fx: &mut Effects) -> Verdict {
    if set.is_empty() {
        Verdict::Drop(DropReason::NoEgress)
    } else {
        fx.flood = set;
        Verdict::Flood
    }
}

#[cfg(test)]
mod tests;
