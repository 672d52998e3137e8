//! The pipeline's tracing hook: what [`super::process_traced`] reports, stage by stage, as
//! it decides about one frame.
//!
//! Contract:
//! - the pipeline has one copy of its rules. [`super::process`] is
//!   `process_traced(…, &mut NoTrace)`; `vswitch trace` runs the same function with a
//!   [`StageLog`]. A record is emitted where a rule decides, with the values the rule
//!   decided on; the verdict is the pipeline's own return value, never recomputed;
//! - zero cost when not tracing: [`Tracer::stage`] of [`NoTrace`] is an empty
//!   `#[inline(always)]` method, so building a record whose fields are values the pipeline
//!   already holds compiles to nothing; a record that needs extra work (a policy lookup to
//!   name *which* prefix admitted an address, a flood set's members before filtering) is
//!   built only under `if T::ENABLED`, a constant `false` for [`NoTrace`], so the branch and
//!   the work are removed when `process` is monomorphized. Where a rule's outcome has
//!   several reasons (a source address allowed by a prefix or by VIP candidacy), the rule
//!   itself returns the reason ([`Allowance`], [`Admission`]) and the datapath tests it for
//!   `is_some()`: the same branches, no extra work; Nothing here allocates on the
//!   pipeline's side (records are `Copy` values; only [`StageLog`] keeps them, in a `Vec`);
//! - records carry ids ([`PortId`], [`VipId`]): the control plane's trace
//!   ([`crate::trace`]) turns them into names and a typed view.

use std::net::IpAddr;

use vip_table::{HostId, MacAddr, PortId, VipId};

use super::PortMask;
use crate::wire::{FrameFacts, Malformed};

/// Receives the pipeline's stage records.
pub trait Tracer {
    /// False for [`NoTrace`]: records that cost work to assemble are only built when true.
    const ENABLED: bool;
    /// One stage record.
    fn stage(&mut self, s: Stage);
}

/// The tracer of the datapath: records nothing, costs nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoTrace;

impl Tracer for NoTrace {
    const ENABLED: bool = false;
    #[inline(always)]
    fn stage(&mut self, _: Stage) {}
}

/// A tracer that keeps every record, in order.
#[derive(Clone, Debug, Default)]
pub struct StageLog(pub Vec<Stage>);

impl Tracer for StageLog {
    const ENABLED: bool = true;
    fn stage(&mut self, s: Stage) {
        self.0.push(s);
    }
}

/// Why a source address (or MAC) was allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allowance {
    /// The port's own MAC.
    PortMac,
    /// Another allowed MAC (an allowed-address-pair's, a VRRP virtual MAC).
    OtherMac,
    /// A prefix allowed for the sending MAC (a fixed IP or an allowed-address-pair; the
    /// trace names which: [`vip_table::PortPolicy::source_prefix`]).
    Prefix,
    /// An address of a VIP group the port is a candidate of.
    VipCandidate,
    /// An IPv6 link-local address on a port with IPv6.
    LinkLocal,
    /// The unspecified address where the rules allow it (ARP probe, DHCPv4 discover,
    /// ICMPv6 from `::`).
    Unspecified,
}

/// One rule of the source check (SEMANTICS.md §3), with what it looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceRule {
    /// The Ethernet source MAC is an allowed MAC of the port.
    SrcMac(MacAddr),
    /// ARP sender MAC = Ethernet source.
    ArpSha(MacAddr),
    /// ARP sender IP allowed for the source MAC.
    ArpSpa(IpAddr),
    /// IP source allowed for the source MAC.
    SrcIp(IpAddr),
    /// DHCP server replies only from trusted ports.
    DhcpServer,
    /// No router advertisements from VM ports.
    RaGuard,
    /// The ND link-layer address option (NS source / NA target) = Ethernet source.
    NdLladdr(MacAddr),
    /// NA target allowed for the source MAC.
    NaTarget(IpAddr),
}

/// One source-check rule's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceCheck {
    /// The rule.
    pub rule: SourceRule,
    /// Passed?
    pub passed: bool,
    /// What admitted it (the address rules that passed).
    pub allowed_by: Option<Allowance>,
}

/// What learning the frame's source would do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LearnStage {
    /// New MAC on this VLAN.
    Insert,
    /// The MAC moves from another port.
    Move {
        /// The port it was on.
        from: PortId,
    },
    /// Known on this port; its timestamp would be refreshed.
    Refresh,
    /// Known (static, or refreshed recently): nothing to do.
    Known,
    /// The table or the port's share of it is full.
    Full,
}

/// The VIP ARP/ND responder's decision for a request about a VIP address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Responder {
    /// Answered with `mac` (the owner's, or the A/A virtual MAC).
    Answered {
        /// The MAC in the answer.
        mac: MacAddr,
    },
    /// The asker is a candidate of the group: its request goes on like any other (the
    /// owner answers it itself).
    AskerIsCandidate,
    /// Nobody owns the group: not answered, forwarded.
    NoOwner,
}

/// How VIP steering chose (or declined) the owner for unicast IP to a VIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Steer {
    /// The destination MAC is a non-candidate's (a router in front of the VIP): not steered.
    NotForVip {
        /// The port the MAC belongs to.
        port: PortId,
    },
    /// Nobody owns the group (here or on another host): not steered.
    NoOwner,
    /// To a local owner; `rewrite` is the new destination MAC when it differs.
    Owner {
        /// The owner's port.
        port: PortId,
        /// Its MAC for the address family.
        mac: MacAddr,
        /// The frame was already addressed to this owner (kept), rather than chosen by hash.
        by_dst_mac: bool,
    },
    /// To an owner on another host.
    Remote {
        /// The owner's host.
        host: HostId,
        /// Its MAC for the address family.
        mac: MacAddr,
    },
    /// The owner's port is in another VLAN: not steered.
    OtherVlan,
}

/// Why the destination check admitted an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Port security or the destination check is off on the port.
    Off,
    /// Broadcast or multicast.
    Group,
    /// A prefix the port may receive (fixed IP or allowed-address-pair; the trace names
    /// which: [`vip_table::PortPolicy::receive_prefix`]).
    Prefix,
    /// A VIP the port owns.
    OwnedVip,
    /// IPv6 link-local on a port with IPv6.
    LinkLocal,
    /// Not admitted, but the address is an unowned VIP of which the port is a candidate and
    /// the frame is addressed to its MAC (delivered, counted `vip_no_owner`).
    UnownedVip,
}

/// One stage of the decision.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stage {
    /// The ingress port's state (up = admin and oper up). `known: false`: no such port.
    Ingress {
        /// The port exists in the snapshot.
        known: bool,
        /// Administratively up.
        admin_up: bool,
        /// Operationally up.
        oper_up: bool,
    },
    /// The frame parsed.
    Parsed(FrameFacts),
    /// The frame did not parse.
    Malformed(Malformed),
    /// An MTU check: `l3_len` bytes after the L2 header against `mtu` of `port` (the
    /// ingress port or an egress port); GSO frames are exempt.
    Mtu {
        /// The port checked.
        port: PortId,
        /// L3 length of the frame.
        l3_len: usize,
        /// The port's MTU.
        mtu: u16,
        /// A GSO super-frame (exempt).
        gso: bool,
        /// Fits.
        ok: bool,
    },
    /// A VLAN-tagged frame on an access port.
    Tagged {
        /// The tag's VID.
        vid: u16,
    },
    /// The frame speaks for a VIP address (GARP, ARP reply, NA).
    Announcement {
        /// The group.
        vip: VipId,
        /// The address.
        addr: IpAddr,
        /// The MAC it announces.
        mac: MacAddr,
        /// An announcement to everyone (a claim) rather than an answer to one asker.
        announced: bool,
        /// The ingress port is a candidate of the group.
        candidate: bool,
    },
    /// Port security is off on the ingress port: no source check.
    PortSecurityOff,
    /// One rule of the source check.
    Check(SourceCheck),
    /// MAC learning.
    Learn(LearnStage),
    /// Addressed to the switch's own MAC.
    ToSwitch {
        /// An answer to the switch's owner-discovery probe.
        probe_answer: bool,
    },
    /// A VRRP advert to the VRRP group: scoped to the sender's peers.
    Vrrp {
        /// The sender is a VIP candidate (its set is its groups' candidates; otherwise the
        /// non-candidates).
        candidate: bool,
        /// Where it goes.
        set: PortMask,
    },
    /// The VIP responder, for an ARP request / NS about a VIP address.
    Responder {
        /// The group.
        vip: VipId,
        /// The address asked about.
        addr: IpAddr,
        /// What it did.
        outcome: Responder,
    },
    /// An ARP request / NS for a port of another host, answered from the topology.
    RemoteNeighbour,
    /// Broadcast or multicast: flooded in the VLAN (then filtered by MTU).
    Multicast {
        /// The flood set before filtering.
        set: PortMask,
    },
    /// Unicast IP to a VIP address.
    Steer {
        /// The group.
        vip: VipId,
        /// The decision.
        steer: Steer,
    },
    /// The FDB lookup of the destination MAC.
    FdbLookup {
        /// The MAC looked up.
        mac: MacAddr,
        /// The port the FDB names.
        port: Option<PortId>,
    },
    /// The destination is behind the ingress port.
    Hairpin,
    /// The egress port is down.
    EgressDown {
        /// The port.
        port: PortId,
    },
    /// The destination check of an egress port for unicast IP to `dst`.
    DestCheck {
        /// The port.
        port: PortId,
        /// The destination IP.
        dst: IpAddr,
        /// Why it was admitted, `None`: refused.
        admitted: Option<Admission>,
    },
    /// Unknown unicast: flooded in the VLAN to the ports whose destination check admits it.
    UnknownUnicast {
        /// The flood set before filtering.
        set: PortMask,
        /// Ports removed by their destination check.
        refused: PortMask,
    },
    /// A flood set lost ports to their MTU.
    FloodMtu {
        /// The ports removed.
        removed: PortMask,
    },
    /// Unicast to a MAC of a port of another host: through the overlay.
    RemotePort {
        /// The host.
        host: HostId,
    },
}
