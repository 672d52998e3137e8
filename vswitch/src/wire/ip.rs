//! What IPv4 and IPv6 share: the [`IpInfo`] facts, the [`L4`] transport facts and the
//! transport dispatch (TCP and UDP ports, ICMPv6 for IPv6, VRRP).
//!
//! Malformed ([`Malformed::BadL4`]): a TCP or UDP header cut short or invalid, or an
//! ICMPv6 message [`super::icmpv6`] rejects. A non-first fragment carries no transport
//! header and is [`L4::Other`]; so is any protocol not interpreted.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{IpNumber, TcpHeaderSlice, UdpHeaderSlice};

use super::icmpv6::{parse_icmpv6, Icmpv6Info};
use super::Malformed;

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// 224.0.0.18, the VRRP (IPv4) multicast group.
pub const VRRP_V4_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// ff02::12, the VRRP (IPv6) multicast group.
pub const VRRP_V6_GROUP: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

/// Layer-4 facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    /// TCP ports.
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
    /// UDP ports.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
    /// ICMPv6 (only for IPv6).
    Icmpv6(Icmpv6Info),
    /// VRRP (protocol 112).
    Vrrp,
    /// A non-first fragment, or a protocol not interpreted.
    Other,
}

/// IPv4/IPv6 facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpInfo {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Transport protocol number (after IPv6 extension headers).
    pub proto: u8,
    /// TTL / hop limit.
    pub ttl: u8,
    /// Bytes of L3 headers (IPv4 header with options, or IPv6 header with extensions).
    pub hdr_len: u16,
    /// Transport facts.
    pub l4: L4,
}

impl IpInfo {
    /// DHCPv4 client → server (udp 68 → 67).
    pub fn is_dhcp4_client(&self) -> bool {
        matches!(
            self.l4,
            L4::Udp {
                sport: 68,
                dport: 67
            }
        )
    }
    /// DHCPv4 server → client (udp 67 → 68).
    pub fn is_dhcp4_server(&self) -> bool {
        matches!(
            self.l4,
            L4::Udp {
                sport: 67,
                dport: 68
            }
        )
    }
    /// DHCPv6 server/relay → client (udp 547 → 546).
    pub fn is_dhcp6_server(&self) -> bool {
        matches!(
            self.l4,
            L4::Udp {
                sport: 547,
                dport: 546
            }
        )
    }
    /// A VRRP advertisement to the VRRP multicast group.
    pub fn is_vrrp_multicast(&self) -> bool {
        self.l4 == L4::Vrrp
            && match self.dst {
                IpAddr::V4(a) => a == VRRP_V4_GROUP,
                IpAddr::V6(a) => a == VRRP_V6_GROUP,
            }
    }
    /// A stable hash of the 5-tuple (used for active-active owner selection).
    #[inline]
    pub fn flow_hash(&self) -> u64 {
        let (sp, dp) = match self.l4 {
            L4::Tcp { sport, dport } | L4::Udp { sport, dport } => (sport, dport),
            _ => (0, 0),
        };
        let fold = |a: IpAddr| -> u64 {
            match a {
                IpAddr::V4(v) => u64::from(u32::from(v)),
                IpAddr::V6(v) => {
                    let x = u128::from(v);
                    (x as u64) ^ ((x >> 64) as u64)
                }
            }
        };
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for w in [
            fold(self.src),
            fold(self.dst),
            u64::from(self.proto),
            (u64::from(sp) << 16) | u64::from(dp),
        ] {
            h = (h ^ w).wrapping_mul(0x0000_0100_0000_01b3);
            h ^= h >> 29;
        }
        h
    }
}

/// Classify the transport header of an IP payload (`v6`: ICMPv6 is interpreted).
#[inline]
pub(super) fn parse_l4(
    proto: u8,
    payload: &[u8],
    fragmented_tail: bool,
    v6: bool,
) -> Result<L4, Malformed> {
    if fragmented_tail {
        return Ok(L4::Other);
    }
    Ok(match IpNumber(proto) {
        IpNumber::TCP => {
            let t = TcpHeaderSlice::from_slice(payload).map_err(|_| Malformed::BadL4)?;
            L4::Tcp {
                sport: t.source_port(),
                dport: t.destination_port(),
            }
        }
        IpNumber::UDP => {
            let u = UdpHeaderSlice::from_slice(payload).map_err(|_| Malformed::BadL4)?;
            L4::Udp {
                sport: u.source_port(),
                dport: u.destination_port(),
            }
        }
        IpNumber::IPV6_ICMP if v6 => L4::Icmpv6(parse_icmpv6(payload)?),
        IpNumber(IPPROTO_VRRP) => L4::Vrrp,
        _ => L4::Other,
    })
}
