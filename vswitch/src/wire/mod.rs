//! Frame classification: untrusted bytes in, small owned facts out.
//!
//! Contract:
//! - [`parse`] never panics, whatever the bytes (fuzzed); it borrows the frame and does not
//!   allocate;
//! - a frame is [`Malformed`] when a header it announces is truncated or inconsistent (a VLAN
//!   tag with nothing after it, ARP shorter than 28 bytes or not Ethernet/IPv4, IPv4 IHL < 5 or
//!   a total length larger than the frame, IPv6 payload length larger than the frame, a TCP/UDP
//!   header cut short, an ND message without its target). Trailing Ethernet padding is not
//!   malformed;
//! - an EtherType the switch does not interpret is [`L3::Other`] and is switched at L2.
//!
//! Parsing is done with etherparse's checked slices (`*Slice::from_slice`); the Neighbor
//! Discovery target and link-layer address options are read here directly.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    ArpPacketSlice, EtherType, Ethernet2HeaderSlice, IpNumber, Ipv4Slice, Ipv6Slice,
    SingleVlanHeaderSlice, TcpHeaderSlice, UdpHeaderSlice,
};
use vip_table::MacAddr;

/// EtherType 802.1Q.
pub const ETH_P_8021Q: u16 = 0x8100;
/// EtherType 802.1ad (QinQ outer tag).
pub const ETH_P_8021AD: u16 = 0x88a8;
/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// 224.0.0.18, the VRRP (IPv4) multicast group.
pub const VRRP_V4_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// ff02::12, the VRRP (IPv6) multicast group.
pub const VRRP_V6_GROUP: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

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

#[inline]
fn mac(b: [u8; 6]) -> MacAddr {
    MacAddr(b)
}

fn mac_from_slice(s: &[u8]) -> Option<MacAddr> {
    <[u8; 6]>::try_from(s).ok().map(MacAddr)
}

/// Classify a frame.
pub fn parse(frame: &[u8]) -> Result<FrameFacts, Malformed> {
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
    let l3 = match EtherType(ethertype) {
        EtherType::ARP => L3::Arp(parse_arp(rest)?),
        EtherType::IPV4 => L3::Ipv4(parse_ipv4(rest)?),
        EtherType::IPV6 => L3::Ipv6(parse_ipv6(rest)?),
        _ => L3::Other(ethertype),
    };
    Ok(FrameFacts {
        dst,
        src,
        vlan,
        l2_len,
        l3,
    })
}

fn parse_arp(b: &[u8]) -> Result<ArpInfo, Malformed> {
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

fn parse_l4(proto: u8, payload: &[u8], fragmented_tail: bool, v6: bool) -> Result<L4, Malformed> {
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

fn parse_ipv4(b: &[u8]) -> Result<IpInfo, Malformed> {
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

fn parse_ipv6(b: &[u8]) -> Result<IpInfo, Malformed> {
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

fn parse_icmpv6(p: &[u8]) -> Result<Icmpv6Info, Malformed> {
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
    use super::*;

    /// ARP request who-has 10.0.0.2 tell 10.0.0.1 from 02:00:00:00:00:01 (fixture bytes).
    const ARP_REQ: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x06, // eth
        0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, // htype ptype hlen plen op
        0x02, 0, 0, 0, 0, 0x01, 10, 0, 0, 1, // sha spa
        0, 0, 0, 0, 0, 0, 10, 0, 0, 2, // tha tpa
    ];

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

    #[test]
    fn vlan_tag_with_nothing_after() {
        let mut v = ARP_REQ[..12].to_vec();
        v.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
        assert_eq!(parse(&v), Err(Malformed::TruncatedVlan));
        v.extend_from_slice(&[0x08]);
        assert_eq!(parse(&v), Err(Malformed::TruncatedVlan));
    }

    fn ipv4_udp(ihl_byte: u8, total_len: u16) -> Vec<u8> {
        let mut v = ARP_REQ[..12].to_vec();
        v.extend_from_slice(&[0x08, 0x00]);
        let tl = total_len.to_be_bytes();
        v.extend_from_slice(&[
            ihl_byte, 0, tl[0], tl[1], 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        v.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0x00, 0x08, 0, 0]);
        v
    }

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

    #[test]
    fn multicast_source_is_malformed() {
        let mut v = ARP_REQ;
        v[6] = 0x01;
        assert_eq!(parse(&v), Err(Malformed::MulticastSource));
    }

    #[test]
    fn nd_zero_length_option_is_malformed_not_a_hang() {
        assert_eq!(nd_lladdr(&[1, 0, 0, 0], 1), Err(Malformed::BadL4));
        assert_eq!(
            nd_lladdr(&[1, 1, 2, 0, 0, 0, 0, 9], 1).unwrap(),
            Some(MacAddr([2, 0, 0, 0, 0, 9]))
        );
    }

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
