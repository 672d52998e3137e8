//! IPv4 (RFC 791).
//!
//! Malformed ([`Malformed::BadIpv4`]): not version 4, IHL < 5, a header longer than the
//! bytes, or a total length larger than the frame (a shorter one is fine: the rest is
//! Ethernet padding). Only the first fragment's transport header is read.

use std::net::IpAddr;

use etherparse::Ipv4Slice;

use super::ip::{parse_l4, IpInfo};
use super::Malformed;

/// Parse the IPv4 packet after the L2 header.
pub(super) fn parse_ipv4(b: &[u8]) -> Result<IpInfo, Malformed> {
    let ip = Ipv4Slice::from_slice(b).map_err(|_| Malformed::BadIpv4)?;
    let h = ip.header();
    let hdr_len = u16::from(h.ihl()) * 4;
    let payload = ip.payload();
    // Only the first fragment carries the transport header.
    let tail = payload.fragmented && h.fragments_offset().value() != 0;
    let proto = h.protocol().0;
    let l4 = parse_l4(proto, payload.payload, tail, false)?;
    Ok(IpInfo {
        src: IpAddr::V4(h.source_addr()),
        dst: IpAddr::V4(h.destination_addr()),
        proto,
        ttl: h.ttl(),
        hdr_len,
        l4,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_frames::ipv4_udp;
    use super::super::{parse, Malformed, L4};

    #[test]
    fn ipv4_udp_fixture_and_lies() {
        let f = parse(&ipv4_udp(0x45, 28)).unwrap();
        let ip = f.ip().unwrap();
        assert_eq!(
            ip.l4,
            L4::Udp {
                sport: 12345,
                dport: 53
            }
        );
        assert_eq!(
            parse(&ipv4_udp(0x44, 28)),
            Err(Malformed::BadIpv4),
            "IHL < 5"
        );
        assert_eq!(
            parse(&ipv4_udp(0x45, 400)),
            Err(Malformed::BadIpv4),
            "length lies"
        );
        assert_eq!(
            parse(&ipv4_udp(0x45, 24)),
            Err(Malformed::BadL4),
            "udp cut short"
        );
    }
}
