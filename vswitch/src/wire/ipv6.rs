//! IPv6 (RFC 8200) with its extension headers.
//!
//! Malformed ([`Malformed::BadIpv6`]): not version 6, shorter than 40 bytes, a payload
//! length larger than the frame, or an extension header cut short. `hdr_len` includes the
//! extension headers. In a fragmented packet the transport header is read only if it starts
//! in this fragment, and a transport header that does not parse there is [`super::L4::Other`]
//! rather than malformed (it may continue in the next fragment).
//!
//! The common case, a fixed header followed directly by TCP, UDP or ICMPv6 (no extension
//! headers), is read here from the 40 bytes; everything else goes through etherparse's
//! checked slices. Both give the same facts for every input (proptest below).

use std::net::{IpAddr, Ipv6Addr};

use etherparse::Ipv6Slice;

use super::ip::{parse_l4, IpInfo, L4};
use super::Malformed;

/// Fixed header length.
const FIXED: usize = 40;

/// Parse the IPv6 packet after the L2 header.
#[inline]
pub(super) fn parse_ipv6(b: &[u8]) -> Result<IpInfo, Malformed> {
    match b.get(..FIXED) {
        Some(h) if h[0] >> 4 == 6 && matches!(h[6], 6 | 17 | 58) => parse_fixed(b, h),
        _ => parse_with_extensions(b),
    }
}

/// A fixed header whose next header is TCP, UDP or ICMPv6. `h` is `b[..40]`.
#[inline]
fn parse_fixed(b: &[u8], h: &[u8]) -> Result<IpInfo, Malformed> {
    let plen = usize::from(u16::from_be_bytes([h[4], h[5]]));
    let rest = b.get(FIXED..).unwrap_or(&[]);
    // a payload length of 0 with more bytes behind: a jumbogram, the rest of the frame is
    // its payload (as etherparse reads it)
    let payload = if plen == 0 && !rest.is_empty() {
        rest
    } else {
        rest.get(..plen).ok_or(Malformed::BadIpv6)?
    };
    let addr = |o: usize| {
        let mut a = [0u8; 16];
        a.copy_from_slice(&h[o..o + 16]);
        IpAddr::V6(Ipv6Addr::from(a))
    };
    let proto = h[6];
    Ok(IpInfo {
        src: addr(8),
        dst: addr(24),
        proto,
        ttl: h[7],
        hdr_len: FIXED as u16,
        l4: parse_l4(proto, payload, false, true)?,
    })
}

/// Any IPv6 packet, through etherparse (extension headers, fragments).
fn parse_with_extensions(b: &[u8]) -> Result<IpInfo, Malformed> {
    let ip = Ipv6Slice::from_slice(b).map_err(|_| Malformed::BadIpv6)?;
    let h = ip.header();
    let payload = ip.payload();
    let hdr_len = FIXED + ip.extensions().slice().len();
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

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The fast path reads what etherparse reads, malformed or not: any bytes with a
        /// version-6 nibble and a TCP/UDP/ICMPv6 next header, any payload length.
        #[test]
        fn fast_path_agrees_with_etherparse(
            mut bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..140),
            next in proptest::sample::select(vec![6u8, 17, 58]),
            plen in proptest::option::of(0u16..120),
            icmp_type in proptest::sample::select(vec![128u8, 133, 134, 135, 136, 137]),
        ) {
            if let Some(first) = bytes.first_mut() {
                *first = 0x60 | (*first & 0x0f);
            }
            if let Some(b) = bytes.get_mut(6) {
                *b = next;
            }
            if let (Some(p), true) = (plen, bytes.len() >= 6) {
                bytes[4..6].copy_from_slice(&p.to_be_bytes());
            }
            if let Some(b) = bytes.get_mut(FIXED) {
                if next == 58 {
                    *b = icmp_type;
                }
            }
            proptest::prop_assert_eq!(parse_ipv6(&bytes), parse_with_extensions(&bytes));
        }
    }
}
