//! ICMPv6 (RFC 4443) types the switch cares about, and Neighbor Discovery (RFC 4861): the
//! NS/NA target and the source/target link-layer address options, read here directly.
//!
//! Malformed ([`Malformed::BadL4`]): an ICMPv6 message shorter than 4 bytes, an NS/NA
//! without its 16-byte target, or an ND option of length zero or running past the message.

use std::net::Ipv6Addr;

use vip_table::MacAddr;

use super::{mac_from_slice, Malformed};

/// ICMPv6 messages the switch cares about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Icmpv6Info {
    /// Neighbor Solicitation (135).
    NeighborSolicit {
        /// Target address.
        target: Ipv6Addr,
        /// Source link-layer address option.
        sll: Option<MacAddr>,
    },
    /// Neighbor Advertisement (136).
    NeighborAdvert {
        /// Target address.
        target: Ipv6Addr,
        /// Target link-layer address option.
        tll: Option<MacAddr>,
        /// R (0x80), S (0x40), O (0x20) flags.
        flags: u8,
    },
    /// Router Solicitation (133).
    RouterSolicit,
    /// Router Advertisement (134).
    RouterAdvert,
    /// Redirect (137).
    Redirect,
    /// Anything else (type).
    Other(u8),
}

/// NA flag: Router.
pub const NA_FLAG_ROUTER: u8 = 0x80;
/// NA flag: Solicited.
pub const NA_FLAG_SOLICITED: u8 = 0x40;
/// NA flag: Override.
pub const NA_FLAG_OVERRIDE: u8 = 0x20;

#[inline]
fn nd_lladdr(mut opts: &[u8], want: u8) -> Result<Option<MacAddr>, Malformed> {
    let mut found = None;
    // Each option is type, length (in units of 8 octets), value. Zero length is invalid
    // (RFC 4861 §4.6) and would loop forever.
    while opts.len() >= 2 {
        let (ty, len8) = (opts[0], opts[1]);
        let len = usize::from(len8) * 8;
        if len == 0 || len > opts.len() {
            return Err(Malformed::BadL4);
        }
        if ty == want && found.is_none() && len >= 8 {
            found = mac_from_slice(&opts[2..8]);
        }
        opts = &opts[len..];
    }
    Ok(found)
}

/// Classify the ICMPv6 message `p` (the IPv6 payload).
#[inline]
pub(super) fn parse_icmpv6(p: &[u8]) -> Result<Icmpv6Info, Malformed> {
    let ty = *p.first().ok_or(Malformed::BadL4)?;
    if p.len() < 4 {
        return Err(Malformed::BadL4);
    }
    let target = |p: &[u8]| -> Result<Ipv6Addr, Malformed> {
        p.get(8..24)
            .and_then(|s| <[u8; 16]>::try_from(s).ok())
            .map(Ipv6Addr::from)
            .ok_or(Malformed::BadL4)
    };
    Ok(match ty {
        133 => Icmpv6Info::RouterSolicit,
        134 => Icmpv6Info::RouterAdvert,
        135 => Icmpv6Info::NeighborSolicit {
            target: target(p)?,
            sll: nd_lladdr(p.get(24..).unwrap_or(&[]), 1)?,
        },
        136 => Icmpv6Info::NeighborAdvert {
            target: target(p)?,
            tll: nd_lladdr(p.get(24..).unwrap_or(&[]), 2)?,
            flags: p.get(4).copied().unwrap_or(0) & 0xe0,
        },
        137 => Icmpv6Info::Redirect,
        t => Icmpv6Info::Other(t),
    })
}

#[cfg(test)]
mod tests {
    use vip_table::MacAddr;

    use super::*;

    #[test]
    fn nd_zero_length_option_is_malformed_not_a_hang() {
        assert_eq!(nd_lladdr(&[1, 0, 0, 0], 1), Err(Malformed::BadL4));
        assert_eq!(
            nd_lladdr(&[1, 1, 2, 0, 0, 0, 0, 9], 1).unwrap(),
            Some(MacAddr([2, 0, 0, 0, 0, 9]))
        );
    }
}
