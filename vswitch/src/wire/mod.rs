//! Frame classification: untrusted bytes in, small owned facts out.
//!
//! What it parses: one Ethernet II frame as a port receives it — the Ethernet header and at
//! most one VLAN tag (`eth.rs`), then by EtherType ARP (`arp.rs`), IPv4 (`ipv4.rs`) or IPv6
//! with its extension headers (`ipv6.rs`), then the transport header (`ip.rs`, shared by
//! both): TCP/UDP ports, ICMPv6 with the Neighbor Discovery target and link-layer options
//! (`icmpv6.rs`), VRRP. The result is a [`FrameFacts`]: a few `Copy` fields, no borrow of the frame.
//! [`vxlan`] is the VXLAN (RFC 7348) encapsulation codec for the overlay; [`parse`] does not
//! look inside VXLAN: a VXLAN frame is plain UDP to it.
//!
//! Contract:
//! - [`parse`] never panics, whatever the bytes (proptest here, and the `parse_process` fuzz
//!   target); it borrows the frame and does not allocate;
//! - a frame is [`Malformed`] when a header it announces is truncated or inconsistent (a VLAN
//!   tag with nothing after it, ARP shorter than 28 bytes or not Ethernet/IPv4, IPv4 IHL < 5 or
//!   a total length larger than the frame, IPv6 payload length larger than the frame, a TCP/UDP
//!   header cut short, an ND message without its target), or when its source MAC is a group
//!   address. The pipeline drops it as `malformed` (the variant says which header failed).
//!   Trailing Ethernet padding is not malformed;
//! - an EtherType the switch does not interpret is [`L3::Other`] and is switched at L2; a
//!   transport protocol it does not interpret, or a non-first fragment, is [`L4::Other`].
//!
//! Parsing is done with etherparse's checked slices (`*Slice::from_slice`); the Neighbor
//! Discovery target and link-layer address options are read here directly. The protocol
//! modules are private: everything is used as `crate::wire::Name`, except the
//! [`vxlan`] codec, which keeps its own namespace.

use etherparse::EtherType;
use vip_table::MacAddr;

mod arp;
mod eth;
mod icmpv6;
mod ip;
mod ipv4;
mod ipv6;
pub mod vxlan;

pub use arp::ArpInfo;
pub use eth::{ETH_P_8021AD, ETH_P_8021Q};
pub use icmpv6::{Icmpv6Info, NA_FLAG_OVERRIDE, NA_FLAG_ROUTER, NA_FLAG_SOLICITED};
pub use ip::{IpInfo, IPPROTO_VRRP, L4, VRRP_V4_GROUP, VRRP_V6_GROUP};

/// Why a frame could not be classified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than an Ethernet header.
    ShortEthernet,
    /// A VLAN tag announced but cut short.
    TruncatedVlan,
    /// ARP cut short, or not Ethernet/IPv4 ARP.
    BadArp,
    /// IPv4 header invalid (IHL < 5, version, lengths).
    BadIpv4,
    /// IPv6 header or extension headers invalid.
    BadIpv6,
    /// TCP/UDP/ICMPv6 header cut short or invalid.
    BadL4,
    /// The source MAC is a group address.
    MulticastSource,
}

/// Layer-3 facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L3 {
    /// Ethernet/IPv4 ARP.
    Arp(ArpInfo),
    /// IPv4.
    Ipv4(IpInfo),
    /// IPv6.
    Ipv6(IpInfo),
    /// Any other EtherType (switched at L2 only).
    Other(u16),
}

/// Everything the pipeline needs to know about a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameFacts {
    /// Destination MAC.
    pub dst: MacAddr,
    /// Source MAC.
    pub src: MacAddr,
    /// The outer VLAN tag's VID, if the frame is tagged.
    pub vlan: Option<u16>,
    /// Bytes of L2 header (14, or 18 with a tag).
    pub l2_len: u16,
    /// Layer-3 facts.
    pub l3: L3,
}

impl FrameFacts {
    /// The IP facts of an IPv4 or IPv6 frame.
    #[inline]
    pub fn ip(&self) -> Option<&IpInfo> {
        match &self.l3 {
            L3::Ipv4(i) | L3::Ipv6(i) => Some(i),
            _ => None,
        }
    }
}

/// A MAC address from a 6-byte slice (`None` for any other length).
fn mac_from_slice(s: &[u8]) -> Option<MacAddr> {
    <[u8; 6]>::try_from(s).ok().map(MacAddr)
}

/// Classify a frame.
pub fn parse(frame: &[u8]) -> Result<FrameFacts, Malformed> {
    let l2 = eth::parse_l2(frame)?;
    let l3 = match EtherType(l2.ethertype) {
        EtherType::ARP => L3::Arp(arp::parse_arp(l2.payload)?),
        EtherType::IPV4 => L3::Ipv4(ipv4::parse_ipv4(l2.payload)?),
        EtherType::IPV6 => L3::Ipv6(ipv6::parse_ipv6(l2.payload)?),
        _ => L3::Other(l2.ethertype),
    };
    Ok(FrameFacts {
        dst: l2.dst,
        src: l2.src,
        vlan: l2.vlan,
        l2_len: l2.l2_len,
        l3,
    })
}

/// Fixture frames shared by the protocol modules' tests.
#[cfg(test)]
mod test_frames {
    /// ARP request who-has 10.0.0.2 tell 10.0.0.1 from 02:00:00:00:00:01 (fixture bytes).
    pub(super) const ARP_REQ: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x06, // eth
        0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, // htype ptype hlen plen op
        0x02, 0, 0, 0, 0, 0x01, 10, 0, 0, 1, // sha spa
        0, 0, 0, 0, 0, 0, 10, 0, 0, 2, // tha tpa
    ];

    /// IPv4/UDP 10.0.0.1:12345 → 10.0.0.2:53 with the given first byte (version + IHL) and
    /// total length (the UDP header is 8 bytes, no payload).
    pub(super) fn ipv4_udp(ihl_byte: u8, total_len: u16) -> Vec<u8> {
        let mut v = ARP_REQ[..12].to_vec();
        v.extend_from_slice(&[0x08, 0x00]);
        let tl = total_len.to_be_bytes();
        v.extend_from_slice(&[
            ihl_byte, 0, tl[0], tl[1], 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        v.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0x00, 0x08, 0, 0]);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::test_frames::{ipv4_udp, ARP_REQ};
    use super::*;

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn never_panics_after_valid_prefix(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..120), cut in 0usize..42) {
            let mut v = ARP_REQ[..cut].to_vec();
            v.extend_from_slice(&tail);
            let _ = parse(&v);
            let mut w = ipv4_udp(0x45, 28);
            w.truncate(14 + cut.min(20));
            w.extend_from_slice(&tail);
            let _ = parse(&w);
        }
    }
}
