//! The verdict vocabulary: what the pipeline decides about a frame ([`Verdict`]) and why a
//! frame is dropped ([`DropReason`]). Pure data, no behaviour beyond naming.
//!
//! It sits below both of its users so that neither depends on the other: the pipeline
//! ([`crate::pipeline`], which re-exports both types, so `pipeline::Verdict` and
//! `pipeline::DropReason` remain the usual paths) produces verdicts, and the per-port
//! counters ([`crate::counters`]) count them. The pipeline's other output, its
//! [`Effects`](crate::pipeline::Effects), stays in the pipeline: it carries the FDB's
//! learning action, the VIP signal, the reply frame and the parse error, i.e. depends on
//! most of the datapath; the counters take the one fact they need from it (whether the frame
//! went to an unowned VIP's candidate) as a plain `bool`.

use vip_table::{HostId, MacAddr, PortId};

/// Why a frame was dropped. Every drop has one, and a per-port counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum DropReason {
    /// The ingress (or the only egress) port is administratively or operationally down.
    PortDown,
    /// The frame could not be parsed (truncated or inconsistent headers).
    Malformed,
    /// A tagged frame on an access port.
    Vlan,
    /// Larger than the ingress or egress port's MTU.
    Mtu,
    /// Source MAC not allowed on the port.
    MacSpoof,
    /// Source IP not allowed for the source MAC.
    IpSpoof,
    /// ARP sender MAC ≠ Ethernet source, or ARP sender IP not allowed.
    ArpSpoof,
    /// ND link-layer option ≠ Ethernet source, or NA target not allowed.
    NdSpoof,
    /// A router advertisement from a VM port.
    RaGuard,
    /// A DHCP server reply from an untrusted port.
    DhcpGuard,
    /// Unicast IP to a port that may not receive that destination.
    DestCheck,
    /// A GARP/NA claiming a VIP from a port that is not a candidate.
    VipHijack,
    /// The MAC table (or the port's share of it) is full: the new MAC is not admitted.
    FdbFull,
    /// The destination is behind the ingress port itself.
    Hairpin,
    /// Nowhere to send it (flooding with no other port up in the VLAN).
    NoEgress,
    /// The egress port refused the frame (I/O error; counted by the datapath).
    TxError,
    /// A VXLAN datagram from an address that is not the VTEP of a live host.
    UnknownVtep,
    /// A VXLAN datagram with a VNI that no VLAN is carried in.
    UnknownVni,
    /// A frame from another host whose source MAC is not a port (or pair) MAC of that host.
    OverlaySpoof,
}

impl DropReason {
    /// All reasons, in counter order.
    pub const ALL: [DropReason; 19] = [
        DropReason::PortDown,
        DropReason::Malformed,
        DropReason::Vlan,
        DropReason::Mtu,
        DropReason::MacSpoof,
        DropReason::IpSpoof,
        DropReason::ArpSpoof,
        DropReason::NdSpoof,
        DropReason::RaGuard,
        DropReason::DhcpGuard,
        DropReason::DestCheck,
        DropReason::VipHijack,
        DropReason::FdbFull,
        DropReason::Hairpin,
        DropReason::NoEgress,
        DropReason::TxError,
        DropReason::UnknownVtep,
        DropReason::UnknownVni,
        DropReason::OverlaySpoof,
    ];
    /// Number of reasons.
    pub const COUNT: usize = Self::ALL.len();

    /// The counter name (snake_case, as in metrics and `show stats`).
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::PortDown => "port_down",
            DropReason::Malformed => "malformed",
            DropReason::Vlan => "vlan",
            DropReason::Mtu => "mtu",
            DropReason::MacSpoof => "mac_spoof",
            DropReason::IpSpoof => "ip_spoof",
            DropReason::ArpSpoof => "arp_spoof",
            DropReason::NdSpoof => "nd_spoof",
            DropReason::RaGuard => "ra_guard",
            DropReason::DhcpGuard => "dhcp_guard",
            DropReason::DestCheck => "dest_check",
            DropReason::VipHijack => "vip_hijack",
            DropReason::FdbFull => "fdb_full",
            DropReason::Hairpin => "hairpin",
            DropReason::NoEgress => "no_egress",
            DropReason::TxError => "tx_error",
            DropReason::UnknownVtep => "unknown_vtep",
            DropReason::UnknownVni => "unknown_vni",
            DropReason::OverlaySpoof => "overlay_spoof",
        }
    }
}

impl DropReason {
    /// The reason named `name` (its counter name, see [`DropReason::as_str`]).
    pub fn from_name(name: &str) -> Option<DropReason> {
        DropReason::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

/// As its counter name (`arp_spoof`).
impl serde::Serialize for DropReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for DropReason {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DropReason::from_name(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("no drop reason named `{s}`")))
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The forwarding decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send to one port, rewriting the destination MAC if `rewrite_dst` is set.
    Forward {
        /// Egress port.
        port: PortId,
        /// New destination MAC (VIP steering to the current owner).
        rewrite_dst: Option<MacAddr>,
    },
    /// Send to each port of [`Effects::flood`](crate::pipeline::Effects::flood), unchanged.
    /// (The set travels in the effects so that a verdict stays a few bytes.)
    Flood,
    /// The switch answered the frame itself: send
    /// [`Effects::reply`](crate::pipeline::Effects::reply) back out of the ingress port; the
    /// frame goes nowhere else.
    Answered,
    /// The frame was addressed to the switch itself (an answer to its owner-discovery
    /// probe, see [`crate::discovery`]): consumed, sent nowhere.
    ToSwitch,
    /// Drop, counting the reason on the ingress port.
    Drop(DropReason),
    /// Unicast IP to a VIP whose (hash-chosen) owner is a port of another host: the frame,
    /// with its destination MAC rewritten to `mac`, goes to `host` through the overlay,
    /// in the segment of `vlan` (the ingress port's VLAN; the overlay maps it to its VNI).
    /// What the overlay needs is all here; until it exists the forwarding step hands it to
    /// [`Output::send_remote`](crate::forward::Output::send_remote), whose default sends
    /// nothing (counted `remote_no_tunnel`).
    ToRemote {
        /// The owner's host.
        host: HostId,
        /// The ingress VLAN.
        vlan: u16,
        /// The inner destination MAC: the remote owner's MAC for the address family.
        mac: MacAddr,
    },
}
