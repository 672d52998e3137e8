//! Frame builders for tests: the one place where test, benchmark and fuzz code builds
//! Ethernet frames (UDP/TCP/ICMP over IPv4 and IPv6, raw IP packets, ARP, Neighbor
//! Discovery, VRRP adverts, DHCP look-alikes, 802.1Q tags, padding and patched headers).
//!
//! Built with etherparse's `PacketBuilder` and the switch's own ARP/ND builders
//! ([`crate::frames`]), so that the bytes are what the switch and real hosts produce; the
//! pcap-golden scenarios of the `vswitch-tests` crate are built from these and compared byte
//! for byte, so a change to any builder's output shows up there.
//!
//! Addresses are test constants: IPs are given as literals (`"10.0.0.1"`) or as
//! [`Ipv4Addr`]/[`Ipv6Addr`] values (see [`AsIpv4`], [`AsIpv6`]); MACs as [`MacAddr`]
//! ([`mac`] parses a literal). These helpers panic on bad literals.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{EtherType, Ethernet2Header, IpNumber, Ipv4Header, Ipv6Header, PacketBuilder};
use vip_table::MacAddr;

use crate::frames::{self, SmallFrame};

/// An IPv4 address argument: a literal (`&str`, panics if it does not parse), an
/// [`Ipv4Addr`] or its octets.
pub trait AsIpv4 {
    /// The address.
    fn ipv4(self) -> Ipv4Addr;
}

impl AsIpv4 for Ipv4Addr {
    fn ipv4(self) -> Ipv4Addr {
        self
    }
}

impl AsIpv4 for [u8; 4] {
    fn ipv4(self) -> Ipv4Addr {
        self.into()
    }
}

impl AsIpv4 for &str {
    fn ipv4(self) -> Ipv4Addr {
        ip4(self)
    }
}

/// An IPv6 address argument: a literal (`&str`, panics if it does not parse) or an
/// [`Ipv6Addr`].
pub trait AsIpv6 {
    /// The address.
    fn ipv6(self) -> Ipv6Addr;
}

impl AsIpv6 for Ipv6Addr {
    fn ipv6(self) -> Ipv6Addr {
        self
    }
}

impl AsIpv6 for &str {
    fn ipv6(self) -> Ipv6Addr {
        ip6(self)
    }
}

/// Parse a MAC literal.
pub fn mac(s: &str) -> MacAddr {
    s.parse().expect("MAC literal")
}
/// Parse an IPv4 literal.
pub fn ip4(s: &str) -> Ipv4Addr {
    s.parse().expect("IPv4 literal")
}
/// Parse an IPv6 literal.
pub fn ip6(s: &str) -> Ipv6Addr {
    s.parse().expect("IPv6 literal")
}

fn small(f: SmallFrame) -> Vec<u8> {
    f.as_bytes().to_vec()
}

/// UDP over IPv4 (TTL 64) with `len` bytes of payload (0x5a each).
pub fn udp4(
    src: MacAddr,
    dst: MacAddr,
    sip: impl AsIpv4,
    dip: impl AsIpv4,
    sport: u16,
    dport: u16,
    len: usize,
) -> Vec<u8> {
    udp4_payload(src, dst, sip, dip, sport, dport, &vec![0x5a; len])
}

/// UDP over IPv4 (TTL 64) carrying `payload`.
pub fn udp4_payload(
    src: MacAddr,
    dst: MacAddr,
    sip: impl AsIpv4,
    dip: impl AsIpv4,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src.0, dst.0)
        .ipv4(sip.ipv4().octets(), dip.ipv4().octets(), 64)
        .udp(sport, dport);
    let mut v = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut v, payload).expect("write to Vec");
    v
}

/// TCP SYN over IPv4.
pub fn tcp4_syn(
    src: MacAddr,
    dst: MacAddr,
    sip: impl AsIpv4,
    dip: impl AsIpv4,
    sport: u16,
    dport: u16,
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src.0, dst.0)
        .ipv4(sip.ipv4().octets(), dip.ipv4().octets(), 64)
        .tcp(sport, dport, 1000, 65535)
        .syn();
    let mut v = Vec::new();
    b.write(&mut v, &[]).expect("write to Vec");
    v
}

/// ICMPv4 echo request (id 1, seq 1, 32 zero bytes).
pub fn ping4(src: MacAddr, dst: MacAddr, sip: impl AsIpv4, dip: impl AsIpv4) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src.0, dst.0)
        .ipv4(sip.ipv4().octets(), dip.ipv4().octets(), 64)
        .icmpv4_echo_request(1, 1);
    let mut v = Vec::new();
    b.write(&mut v, &[0; 32]).expect("write to Vec");
    v
}

/// UDP over IPv6 (hop limit 64) with `len` bytes of payload (0x5a each).
pub fn udp6(
    src: MacAddr,
    dst: MacAddr,
    sip: impl AsIpv6,
    dip: impl AsIpv6,
    sport: u16,
    dport: u16,
    len: usize,
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src.0, dst.0)
        .ipv6(sip.ipv6().octets(), dip.ipv6().octets(), 64)
        .udp(sport, dport);
    let mut v = Vec::with_capacity(b.size(len));
    b.write(&mut v, &vec![0x5a; len]).expect("write to Vec");
    v
}

/// An IPv4 packet with an arbitrary protocol and payload (header checksum computed).
pub fn ipv4_raw(
    src: MacAddr,
    dst: MacAddr,
    sip: impl AsIpv4,
    dip: impl AsIpv4,
    proto: u8,
    ttl: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    Ethernet2Header {
        source: src.0,
        destination: dst.0,
        ether_type: EtherType::IPV4,
    }
    .write(&mut v)
    .expect("write to Vec");
    let h = Ipv4Header::new(
        payload.len() as u16,
        ttl,
        IpNumber(proto),
        sip.ipv4().octets(),
        dip.ipv4().octets(),
    )
    .expect("payload fits");
    h.write(&mut v).expect("write to Vec");
    v.extend_from_slice(payload);
    v
}

/// An IPv6 packet with an arbitrary next header and payload.
pub fn ipv6_raw(
    src: MacAddr,
    dst: MacAddr,
    sip: impl AsIpv6,
    dip: impl AsIpv6,
    next: u8,
    hop: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    Ethernet2Header {
        source: src.0,
        destination: dst.0,
        ether_type: EtherType::IPV6,
    }
    .write(&mut v)
    .expect("write to Vec");
    Ipv6Header {
        traffic_class: 0,
        flow_label: Default::default(),
        payload_length: payload.len() as u16,
        next_header: IpNumber(next),
        hop_limit: hop,
        source: sip.ipv6().octets(),
        destination: dip.ipv6().octets(),
    }
    .write(&mut v)
    .expect("write to Vec");
    v.extend_from_slice(payload);
    v
}

/// VRRP's IPv4 multicast group and its MAC.
const VRRP4_GROUP: (Ipv4Addr, MacAddr) = (
    Ipv4Addr::new(224, 0, 0, 18),
    MacAddr([0x01, 0x00, 0x5e, 0x00, 0x00, 0x12]),
);
/// VRRP's IPv6 multicast group (ff02::12) and its MAC.
const VRRP6_GROUP: (Ipv6Addr, MacAddr) = (
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12),
    MacAddr([0x33, 0x33, 0x00, 0x00, 0x00, 0x12]),
);

/// A VRRPv2 advertisement to 224.0.0.18 (TTL 255), as keepalived sends it.
pub fn vrrp4(src: MacAddr, sip: impl AsIpv4, vrid: u8, prio: u8, vip: impl AsIpv4) -> Vec<u8> {
    vrrp4_with(src, sip.ipv4(), vrid, prio, vip.ipv4(), false)
}

/// A VRRPv3 advertisement to ff02::12.
pub fn vrrp6(src: MacAddr, sip: impl AsIpv6, vrid: u8, prio: u8, vip: impl AsIpv6) -> Vec<u8> {
    vrrp3_with(src, sip.ipv6().into(), vrid, prio, vip.ipv6().into(), false)
}

/// A VRRPv2 advertisement to 224.0.0.18 with a valid VRRP checksum (interval 1 s).
pub fn vrrp4_signed(
    src: MacAddr,
    sip: impl AsIpv4,
    vrid: u8,
    prio: u8,
    vip: impl AsIpv4,
) -> Vec<u8> {
    vrrp4_with(src, sip.ipv4(), vrid, prio, vip.ipv4(), true)
}

/// A VRRPv3 advertisement to ff02::12 with a valid checksum (pseudo-header; 1 s).
pub fn vrrp6_signed(
    src: MacAddr,
    sip: impl AsIpv6,
    vrid: u8,
    prio: u8,
    vip: impl AsIpv6,
) -> Vec<u8> {
    vrrp3_with(src, sip.ipv6().into(), vrid, prio, vip.ipv6().into(), true)
}

/// A VRRPv3 advertisement over IPv4 (RFC 5798) to 224.0.0.18: one address, interval 1 s,
/// checksum left zero.
pub fn vrrp3_v4(src: MacAddr, sip: impl AsIpv4, vrid: u8, prio: u8, vip: impl AsIpv4) -> Vec<u8> {
    vrrp3_with(src, sip.ipv4().into(), vrid, prio, vip.ipv4().into(), false)
}

fn vrrp4_with(
    src: MacAddr,
    sip: Ipv4Addr,
    vrid: u8,
    prio: u8,
    vip: Ipv4Addr,
    signed: bool,
) -> Vec<u8> {
    let (group, group_mac) = VRRP4_GROUP;
    let mut p = vec![0x21, vrid, prio, 1, 0, 1, 0, 0];
    p.extend_from_slice(&vip.octets());
    p.extend_from_slice(&[0; 8]);
    if signed {
        let ck = crate::vrrp::checksum(2, sip.into(), group.into(), &p);
        p[6..8].copy_from_slice(&ck.to_be_bytes());
    }
    ipv4_raw(src, group_mac, sip, group, 112, 255, &p)
}

/// VRRPv3 (interval 100 cs) over the family of `sip`; `vip` is of the same family.
fn vrrp3_with(src: MacAddr, sip: IpAddr, vrid: u8, prio: u8, vip: IpAddr, signed: bool) -> Vec<u8> {
    let mut p = vec![0x31, vrid, prio, 1, 0, 100, 0, 0];
    match vip {
        IpAddr::V4(a) => p.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => p.extend_from_slice(&a.octets()),
    }
    let group: IpAddr = match sip {
        IpAddr::V4(_) => VRRP4_GROUP.0.into(),
        IpAddr::V6(_) => VRRP6_GROUP.0.into(),
    };
    if signed {
        let ck = crate::vrrp::checksum(3, sip, group, &p);
        p[6..8].copy_from_slice(&ck.to_be_bytes());
    }
    match sip {
        IpAddr::V4(s) => ipv4_raw(src, VRRP4_GROUP.1, s, VRRP4_GROUP.0, 112, 255, &p),
        IpAddr::V6(s) => ipv6_raw(src, VRRP6_GROUP.1, s, VRRP6_GROUP.0, 112, 255, &p),
    }
}

/// ARP request `who-has tpa tell spa` from `src` (sha = src, tha zero), broadcast.
pub fn arp_request(src: MacAddr, spa: impl AsIpv4, tpa: impl AsIpv4) -> Vec<u8> {
    arp_raw(src, MacAddr::BROADCAST, 1, src, spa, MacAddr::ZERO, tpa)
}

/// ARP with every field explicit (42 bytes: [`padded`] makes it a minimum-size frame).
#[allow(clippy::too_many_arguments)]
pub fn arp_raw(
    eth_src: MacAddr,
    eth_dst: MacAddr,
    op: u16,
    sha: MacAddr,
    spa: impl AsIpv4,
    tha: MacAddr,
    tpa: impl AsIpv4,
) -> Vec<u8> {
    let mut f = SmallFrame::default();
    frames::arp(
        &mut f,
        eth_dst,
        eth_src,
        op,
        sha,
        spa.ipv4(),
        tha,
        tpa.ipv4(),
    );
    small(f)
}

/// ARP reply `spa is-at src` to `dst`/`tpa`.
pub fn arp_reply(src: MacAddr, spa: impl AsIpv4, dst: MacAddr, tpa: impl AsIpv4) -> Vec<u8> {
    let mut f = SmallFrame::default();
    frames::arp_reply(&mut f, src, spa.ipv4(), dst, tpa.ipv4());
    small(f)
}

/// Gratuitous ARP request (keepalived form: tha broadcast).
pub fn garp(src: MacAddr, ip: impl AsIpv4) -> Vec<u8> {
    let mut f = SmallFrame::default();
    frames::garp(&mut f, src, ip.ipv4());
    small(f)
}

/// Gratuitous ARP as `arping -U` sends it (tha zero).
pub fn garp_zero_tha(src: MacAddr, ip: impl AsIpv4) -> Vec<u8> {
    let ip = ip.ipv4();
    arp_raw(src, MacAddr::BROADCAST, 1, src, ip, MacAddr::ZERO, ip)
}

/// Neighbor Solicitation for `target` (to its solicited-node group), with SLL = `sll`.
pub fn ns(src: MacAddr, sip: impl AsIpv6, target: impl AsIpv6, sll: Option<MacAddr>) -> Vec<u8> {
    let mut f = SmallFrame::default();
    frames::solicitation(&mut f, src, sip.ipv6(), target.ipv6(), sll);
    small(f)
}

/// Neighbor Advertisement with explicit fields.
pub fn na(
    src: MacAddr,
    dst: MacAddr,
    sip: impl AsIpv6,
    dip: impl AsIpv6,
    target: impl AsIpv6,
    tll: Option<MacAddr>,
    flags: u8,
) -> Vec<u8> {
    let mut f = SmallFrame::default();
    frames::nd(
        &mut f,
        dst,
        src,
        sip.ipv6(),
        dip.ipv6(),
        136,
        flags,
        target.ipv6(),
        tll,
    );
    small(f)
}

/// Unsolicited NA (keepalived form: from the VIP to ff02::1, Override, TLL).
pub fn unsolicited_na(src: MacAddr, vip: impl AsIpv6) -> Vec<u8> {
    let mut f = SmallFrame::default();
    frames::unsolicited_na(&mut f, src, vip.ipv6());
    small(f)
}

/// Router Advertisement from `sip` (link-local) to all-nodes.
pub fn ra(src: MacAddr, sip: impl AsIpv6) -> Vec<u8> {
    let sip = sip.ipv6();
    let dst = ip6("ff02::1");
    let mut icmp = vec![134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
    let ck = frames::icmpv6_checksum(sip, dst, &icmp);
    icmp[2..4].copy_from_slice(&ck.to_be_bytes());
    ipv6_raw(src, mac("33:33:00:00:00:01"), sip, dst, 58, 255, &icmp)
}

/// Router Solicitation from `sip` to all-routers (ff02::2), with an SLL option.
pub fn rs(src: MacAddr, sip: impl AsIpv6) -> Vec<u8> {
    let sip = sip.ipv6();
    let dst = ip6("ff02::2");
    let mut icmp = vec![133, 0, 0, 0, 0, 0, 0, 0, 1, 1];
    icmp.extend_from_slice(&src.0);
    let ck = frames::icmpv6_checksum(sip, dst, &icmp);
    icmp[2..4].copy_from_slice(&ck.to_be_bytes());
    ipv6_raw(src, mac("33:33:00:00:00:02"), sip, dst, 58, 255, &icmp)
}

/// A DHCPv4 server reply (udp 67 → 68).
pub fn dhcp4_offer(src: MacAddr, dst: MacAddr, sip: impl AsIpv4, yiaddr: impl AsIpv4) -> Vec<u8> {
    udp4(src, dst, sip, yiaddr, 67, 68, 240)
}

/// A DHCPv4 discover from 0.0.0.0 (udp 68 → 67, broadcast).
pub fn dhcp4_discover(src: MacAddr) -> Vec<u8> {
    udp4(
        src,
        MacAddr::BROADCAST,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
        68,
        67,
        240,
    )
}

/// A DHCPv6 server reply (udp 547 → 546).
pub fn dhcp6_reply(src: MacAddr, dst: MacAddr, sip: impl AsIpv6, dip: impl AsIpv6) -> Vec<u8> {
    udp6(src, dst, sip, dip, 547, 546, 60)
}

/// Insert an 802.1Q tag with `vid` after the MAC addresses.
pub fn tagged(frame: &[u8], vid: u16) -> Vec<u8> {
    let mut v = frame[..12].to_vec();
    v.extend_from_slice(&[0x81, 0x00]);
    v.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    v.extend_from_slice(&frame[12..]);
    v
}

/// `frame` with `bytes` written over it at `at` (to make a header lie).
pub fn patched(frame: &[u8], at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut v = frame.to_vec();
    v[at..at + bytes.len()].copy_from_slice(bytes);
    v
}

/// The Ethernet minimum frame length without the FCS, what a NIC pads short frames to.
pub const ETH_MIN_LEN: usize = 60;

/// `frame` with zeros appended up to `len` bytes (unchanged if it is already as long), e.g.
/// `padded(&arp_request(..), ETH_MIN_LEN)` as a host's NIC sends it.
pub fn padded(frame: &[u8], len: usize) -> Vec<u8> {
    let mut v = frame.to_vec();
    if v.len() < len {
        v.resize(len, 0);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_and_typed_addresses_build_the_same_bytes() {
        let (a, b) = (mac("02:00:00:00:00:01"), mac("02:00:00:00:00:02"));
        assert_eq!(
            udp4(a, b, "10.0.0.1", "10.0.0.2", 1, 2, 8),
            udp4(a, b, Ipv4Addr::new(10, 0, 0, 1), [10, 0, 0, 2], 1, 2, 8)
        );
        assert_eq!(
            ns(a, "fd00::1", "fd00::2", Some(a)),
            ns(a, ip6("fd00::1"), ip6("fd00::2"), Some(a))
        );
    }

    #[test]
    fn vrrp3_over_ipv4_has_the_advert_layout() {
        let f = vrrp3_v4(mac("00:00:5e:00:01:07"), "10.0.0.11", 7, 100, "10.0.0.100");
        assert_eq!(f.len(), 14 + 20 + 12);
        assert_eq!(&f[..6], &[0x01, 0, 0x5e, 0, 0, 0x12]);
        assert_eq!((f[22], f[23]), (255, 112), "TTL 255, protocol VRRP");
        assert_eq!(&f[34..], &[0x31, 7, 100, 1, 0, 100, 0, 0, 10, 0, 0, 100]);
    }

    #[test]
    fn padding_only_grows() {
        let f = arp_request(mac("02:00:00:00:00:01"), "10.0.0.1", "10.0.0.2");
        assert_eq!(f.len(), 42);
        let p = padded(&f, ETH_MIN_LEN);
        assert_eq!((p.len(), &p[..42]), (60, &f[..]));
        assert_eq!(padded(&p, 10), p);
    }
}
