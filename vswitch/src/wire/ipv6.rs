//! IPv6 (RFC 8200) with its extension headers.
//!
//! Malformed ([`Malformed::BadIpv6`]): not version 6, shorter than 40 bytes, a payload
//! length larger than the frame, or an extension header cut short. `hdr_len` includes the
//! extension headers. In a fragmented packet the transport header is read only if it starts
//! in this fragment, and a transport header that does not parse there is [`super::L4::Other`]
//! rather than malformed (it may continue in the next fragment).

use std::net::IpAddr;

use etherparse::Ipv6Slice;

use super::ip::{parse_l4, IpInfo, L4};
use super::Malformed;

/// Parse the IPv6 packet after the L2 header.
pub(super) fn parse_ipv6(b: &[u8]) -> Result<IpInfo, Malformed> {
    let ip = Ipv6Slice::from_slice(b).map_err(|_| Malformed::BadIpv6)?;
    let h = ip.header();
    let payload = ip.payload();
    let hdr_len = 40 + ip.extensions().slice().len();
    let proto = payload.ip_number.0;
    // A fragmented payload: only parse the transport header if it starts here.
    let tail = payload.fragmented && ip.extensions().first_header().is_none();
    let l4 = if payload.fragmented {
        if tail {
            L4::Other
        } else {
            parse_l4(proto, payload.payload, false, true).unwrap_or(L4::Other)
        }
    } else {
        parse_l4(proto, payload.payload, false, true)?
    };
    Ok(IpInfo {
        src: IpAddr::V6(h.source_addr()),
        dst: IpAddr::V6(h.destination_addr()),
        proto,
        ttl: h.hop_limit(),
        hdr_len: u16::try_from(hdr_len).unwrap_or(u16::MAX),
        l4,
    })
}
