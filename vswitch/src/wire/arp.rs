//! ARP, Ethernet/IPv4 only (RFC 826).
//!
//! Malformed ([`Malformed::BadArp`]): shorter than 28 bytes, or any hardware type, protocol
//! type or address size other than Ethernet (1) / IPv4 (0x0800) / 6 / 4. Trailing bytes
//! (Ethernet padding) are ignored.

use std::net::Ipv4Addr;

use etherparse::{ArpPacketSlice, EtherType};
use vip_table::MacAddr;

use super::{mac_from_slice, Malformed};

/// ARP (Ethernet/IPv4) fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpInfo {
    /// 1 = request, 2 = reply.
    pub op: u16,
    /// Sender hardware address.
    pub sha: MacAddr,
    /// Sender protocol address.
    pub spa: Ipv4Addr,
    /// Target hardware address.
    pub tha: MacAddr,
    /// Target protocol address.
    pub tpa: Ipv4Addr,
}

impl ArpInfo {
    /// ARP request opcode.
    pub const REQUEST: u16 = 1;
    /// ARP reply opcode.
    pub const REPLY: u16 = 2;

    /// A gratuitous ARP: a request with `spa == tpa`, or any reply. (The claim rule then
    /// checks `spa` against the VIP table.)
    pub fn is_gratuitous_request(&self) -> bool {
        self.op == Self::REQUEST && self.spa == self.tpa && !self.spa.is_unspecified()
    }
}

/// Parse the ARP packet after the L2 header.
pub(super) fn parse_arp(b: &[u8]) -> Result<ArpInfo, Malformed> {
    let arp = ArpPacketSlice::from_slice(b).map_err(|_| Malformed::BadArp)?;
    if arp.hw_addr_type().0 != 1
        || arp.proto_addr_type() != EtherType::IPV4
        || arp.hw_addr_size() != 6
        || arp.proto_addr_size() != 4
    {
        return Err(Malformed::BadArp);
    }
    let ip4 = |s: &[u8]| <[u8; 4]>::try_from(s).map(Ipv4Addr::from).ok();
    Ok(ArpInfo {
        op: arp.operation().0,
        sha: mac_from_slice(arp.sender_hw_addr()).ok_or(Malformed::BadArp)?,
        spa: ip4(arp.sender_protocol_addr()).ok_or(Malformed::BadArp)?,
        tha: mac_from_slice(arp.target_hw_addr()).ok_or(Malformed::BadArp)?,
        tpa: ip4(arp.target_protocol_addr()).ok_or(Malformed::BadArp)?,
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use vip_table::MacAddr;

    use super::super::test_frames::ARP_REQ;
    use super::super::{parse, Malformed, L3};

    #[test]
    fn arp_request_fixture() {
        let f = parse(&ARP_REQ).unwrap();
        assert_eq!(f.dst, MacAddr::BROADCAST);
        let L3::Arp(a) = f.l3 else { panic!() };
        assert_eq!(a.op, 1);
        assert_eq!(a.spa, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(a.tpa, Ipv4Addr::new(10, 0, 0, 2));
        assert!(!a.is_gratuitous_request());
    }

    #[test]
    fn truncated_arp_is_malformed() {
        assert_eq!(parse(&ARP_REQ[..40]), Err(Malformed::BadArp));
    }

    #[test]
    fn arp_with_padding_is_fine() {
        let mut v = ARP_REQ.to_vec();
        v.extend_from_slice(&[0; 18]);
        assert!(parse(&v).is_ok());
    }
}
