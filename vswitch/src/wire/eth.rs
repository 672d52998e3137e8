//! Ethernet II and one VLAN tag (802.1Q or 802.1ad).
//!
//! Reads the destination and source MACs, rejects a group source address, and steps over
//! one VLAN tag if the EtherType announces one (802.1Q, or an 802.1ad outer tag: only its
//! VID is kept; an inner tag is left to the EtherType that follows, i.e. switched at L2).
//! Malformed: shorter than 14 bytes ([`Malformed::ShortEthernet`]), a group source MAC
//! ([`Malformed::MulticastSource`]), a tag cut short or with nothing after it
//! ([`Malformed::TruncatedVlan`]).

use etherparse::{Ethernet2HeaderSlice, SingleVlanHeaderSlice};
use vip_table::MacAddr;

use super::Malformed;

/// EtherType 802.1Q.
pub const ETH_P_8021Q: u16 = 0x8100;
/// EtherType 802.1ad (QinQ outer tag).
pub const ETH_P_8021AD: u16 = 0x88a8;

/// The L2 header of a frame and what follows it.
#[derive(Clone, Copy, Debug)]
pub(super) struct L2<'a> {
    /// Destination MAC.
    pub dst: MacAddr,
    /// Source MAC (never a group address).
    pub src: MacAddr,
    /// The tag's VID, if the frame is tagged.
    pub vlan: Option<u16>,
    /// Bytes of L2 header (14, or 18 with a tag).
    pub l2_len: u16,
    /// The EtherType after the tag, if any.
    pub ethertype: u16,
    /// The L3 bytes (never empty after a tag).
    pub payload: &'a [u8],
}

#[inline]
fn mac(b: [u8; 6]) -> MacAddr {
    MacAddr(b)
}

/// Parse the Ethernet header and an optional VLAN tag.
pub(super) fn parse_l2(frame: &[u8]) -> Result<L2<'_>, Malformed> {
    let eth = Ethernet2HeaderSlice::from_slice(frame).map_err(|_| Malformed::ShortEthernet)?;
    let dst = mac(eth.destination());
    let src = mac(eth.source());
    if src.is_multicast() {
        return Err(Malformed::MulticastSource);
    }
    let mut ethertype = eth.ether_type().0;
    let mut rest = frame.get(14..).unwrap_or(&[]);
    let mut vlan = None;
    let mut l2_len = 14u16;
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        let tag = SingleVlanHeaderSlice::from_slice(rest).map_err(|_| Malformed::TruncatedVlan)?;
        vlan = Some(tag.vlan_identifier().value());
        ethertype = tag.ether_type().0;
        rest = rest.get(4..).unwrap_or(&[]);
        l2_len = 18;
        if rest.is_empty() {
            return Err(Malformed::TruncatedVlan);
        }
    }
    Ok(L2 {
        dst,
        src,
        vlan,
        l2_len,
        ethertype,
        payload: rest,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_frames::ARP_REQ;
    use super::super::{parse, Malformed};

    #[test]
    fn vlan_tag_with_nothing_after() {
        let mut v = ARP_REQ[..12].to_vec();
        v.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
        assert_eq!(parse(&v), Err(Malformed::TruncatedVlan));
        v.extend_from_slice(&[0x08]);
        assert_eq!(parse(&v), Err(Malformed::TruncatedVlan));
    }

    #[test]
    fn multicast_source_is_malformed() {
        let mut v = ARP_REQ;
        v[6] = 0x01;
        assert_eq!(parse(&v), Err(Malformed::MulticastSource));
    }
}
