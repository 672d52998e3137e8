//! Frame builders for test scenarios (etherparse's `PacketBuilder` and the switch's own
//! ARP/ND builders). Inputs are test constants: these helpers panic on bad literals.

use std::net::{Ipv4Addr, Ipv6Addr};

use etherparse::{EtherType, Ethernet2Header, IpNumber, Ipv4Header, Ipv6Header, PacketBuilder};
use vip_table::MacAddr;
use vswitch::frames::{self, SmallFrame};

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

/// UDP over IPv4 with `len` bytes of payload.
pub fn udp4(
    src: MacAddr,
    dst: MacAddr,
    sip: &str,
    dip: &str,
    sport: u16,
    dport: u16,
    len: usize,
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src.0, dst.0)
        .ipv4(ip4(sip).octets(), ip4(dip).octets(), 64)
        .udp(sport, dport);
    let payload = vec![0x5a; len];
    let mut v = Vec::with_capacity(b.size(len));
    b.write(&mut v, &payload).expect("write to Vec");
    v
}

/// TCP SYN over IPv4.
pub fn tcp4_syn(
    src: MacAddr,
    dst: MacAddr,
    sip: &str,
    dip: &str,
    sport: u16,
    dport: u16,
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src.0, dst.0)
        .ipv4(ip4(sip).octets(), ip4(dip).octets(), 64)
        .tcp(sport, dport, 1000, 65535)
        .syn();
    let mut v = Vec::new();
    b.write(&mut v, &[]).expect("write to Vec");
    v
}

/// ICMPv4 echo request.
pub fn ping4(src: MacAddr, dst: MacAddr, sip: &str, dip: &str) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src.0, dst.0)
        .ipv4(ip4(sip).octets(), ip4(dip).octets(), 64)
        .icmpv4_echo_request(1, 1);
    let mut v = Vec::new();
    b.write(&mut v, &[0; 32]).expect("write to Vec");
    v
}

/// UDP over IPv6.
pub fn udp6(
    src: MacAddr,
    dst: MacAddr,
    sip: &str,
    dip: &str,
    sport: u16,
    dport: u16,
    len: usize,
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src.0, dst.0)
        .ipv6(ip6(sip).octets(), ip6(dip).octets(), 64)
        .udp(sport, dport);
    let mut v = Vec::new();
    b.write(&mut v, &vec![0x5a; len]).expect("write to Vec");
    v
}

/// An IPv4 packet with an arbitrary protocol and payload.
pub fn ipv4_raw(
    src: MacAddr,
    dst: MacAddr,
    sip: &str,
    dip: &str,
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
        ip4(sip).octets(),
        ip4(dip).octets(),
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
    sip: Ipv6Addr,
    dip: Ipv6Addr,
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
        source: sip.octets(),
        destination: dip.octets(),
    }
    .write(&mut v)
    .expect("write to Vec");
    v.extend_from_slice(payload);
    v
}

/// A VRRPv2 advertisement to 224.0.0.18 (TTL 255), as keepalived sends it.
pub fn vrrp4(src: MacAddr, sip: &str, vrid: u8, prio: u8, vip: &str) -> Vec<u8> {
    vrrp4_with(src, sip, vrid, prio, vip, false)
}

/// A VRRPv3 advertisement to ff02::12.
pub fn vrrp6(src: MacAddr, sip: &str, vrid: u8, prio: u8, vip: &str) -> Vec<u8> {
    vrrp6_with(src, sip, vrid, prio, vip, false)
}

/// A VRRPv2 advertisement to 224.0.0.18 with a valid VRRP checksum (interval 1 s).
pub fn vrrp4_signed(src: MacAddr, sip: &str, vrid: u8, prio: u8, vip: &str) -> Vec<u8> {
    vrrp4_with(src, sip, vrid, prio, vip, true)
}

/// A VRRPv3 advertisement to ff02::12 with a valid checksum (pseudo-header; 1 s).
pub fn vrrp6_signed(src: MacAddr, sip: &str, vrid: u8, prio: u8, vip: &str) -> Vec<u8> {
    vrrp6_with(src, sip, vrid, prio, vip, true)
}

fn vrrp4_with(src: MacAddr, sip: &str, vrid: u8, prio: u8, vip: &str, signed: bool) -> Vec<u8> {
    let mut p = vec![0x21, vrid, prio, 1, 0, 1, 0, 0];
    p.extend_from_slice(&ip4(vip).octets());
    p.extend_from_slice(&[0; 8]);
    if signed {
        let ck = vswitch::vrrp::checksum(2, ip4(sip).into(), ip4("224.0.0.18").into(), &p);
        p[6..8].copy_from_slice(&ck.to_be_bytes());
    }
    ipv4_raw(
        src,
        mac("01:00:5e:00:00:12"),
        sip,
        "224.0.0.18",
        112,
        255,
        &p,
    )
}

fn vrrp6_with(src: MacAddr, sip: &str, vrid: u8, prio: u8, vip: &str, signed: bool) -> Vec<u8> {
    let mut p = vec![0x31, vrid, prio, 1, 0, 100, 0, 0];
    p.extend_from_slice(&ip6(vip).octets());
    if signed {
        let ck = vswitch::vrrp::checksum(3, ip6(sip).into(), ip6("ff02::12").into(), &p);
        p[6..8].copy_from_slice(&ck.to_be_bytes());
    }
    ipv6_raw(
        src,
        mac("33:33:00:00:00:12"),
        ip6(sip),
        ip6("ff02::12"),
        112,
        255,
        &p,
    )
}

/// ARP request `who-has tpa tell spa` from `src` (sha = src).
pub fn arp_request(src: MacAddr, spa: &str, tpa: &str) -> Vec<u8> {
    let mut f = SmallFrame::default();
    frames::arp(
        &mut f,
        MacAddr::BROADCAST,
        src,
        1,
        src,
        ip4(spa),
        MacAddr::ZERO,
        ip4(tpa),
    );
    small(f)
}

/// ARP with every field explicit.
#[allow(clippy::too_many_arguments)]
pub fn arp_raw(
    eth_src: MacAddr,
    eth_dst: MacAddr,
    op: u16,
    sha: MacAddr,
    spa: &str,
    tha: MacAddr,
    tpa: &str,
) -> Vec<u8> {
    let mut f = SmallFrame::default();
    frames::arp(&mut f, eth_dst, eth_src, op, sha, ip4(spa), tha, ip4(tpa));
    small(f)
}

/// ARP reply `spa is-at src` to `dst`/`tpa`.
pub fn arp_reply(src: MacAddr, spa: &str, dst: MacAddr, tpa: &str) -> Vec<u8> {
    let mut f = SmallFrame::default();
    frames::arp_reply(&mut f, src, ip4(spa), dst, ip4(tpa));
    small(f)
}

/// Gratuitous ARP request (keepalived form).
pub fn garp(src: MacAddr, ip: &str) -> Vec<u8> {
    let mut f = SmallFrame::default();
    frames::garp(&mut f, src, ip4(ip));
    small(f)
}

/// Gratuitous ARP as `arping -U` sends it (tha zero).
pub fn garp_zero_tha(src: MacAddr, ip: &str) -> Vec<u8> {
    arp_raw(src, MacAddr::BROADCAST, 1, src, ip, MacAddr::ZERO, ip)
}

/// Neighbor Solicitation for `target` (to its solicited-node group), with SLL = `sll`.
pub fn ns(src: MacAddr, sip: &str, target: &str, sll: Option<MacAddr>) -> Vec<u8> {
    let mut f = SmallFrame::default();
    frames::solicitation(&mut f, src, ip6(sip), ip6(target), sll);
    small(f)
}

/// Neighbor Advertisement with explicit fields.
pub fn na(
    src: MacAddr,
    dst: MacAddr,
    sip: &str,
    dip: &str,
    target: &str,
    tll: Option<MacAddr>,
    flags: u8,
) -> Vec<u8> {
    let mut f = SmallFrame::default();
    frames::nd(
        &mut f,
        dst,
        src,
        ip6(sip),
        ip6(dip),
        136,
        flags,
        ip6(target),
        tll,
    );
    small(f)
}

/// Unsolicited NA (keepalived form: from the VIP to ff02::1, Override, TLL).
pub fn unsolicited_na(src: MacAddr, vip: &str) -> Vec<u8> {
    let mut f = SmallFrame::default();
    frames::unsolicited_na(&mut f, src, ip6(vip));
    small(f)
}

/// Router Advertisement from `sip` (link-local) to all-nodes.
pub fn ra(src: MacAddr, sip: &str) -> Vec<u8> {
    let dst = ip6("ff02::1");
    let mut icmp = vec![134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
    let ck = frames::icmpv6_checksum(ip6(sip), dst, &icmp);
    icmp[2..4].copy_from_slice(&ck.to_be_bytes());
    ipv6_raw(src, mac("33:33:00:00:00:01"), ip6(sip), dst, 58, 255, &icmp)
}

/// A DHCPv4 server reply (udp 67 → 68).
pub fn dhcp4_offer(src: MacAddr, dst: MacAddr, sip: &str, yiaddr: &str) -> Vec<u8> {
    udp4(src, dst, sip, yiaddr, 67, 68, 240)
}

/// A DHCPv4 discover from 0.0.0.0 (udp 68 → 67, broadcast).
pub fn dhcp4_discover(src: MacAddr) -> Vec<u8> {
    udp4(
        src,
        MacAddr::BROADCAST,
        "0.0.0.0",
        "255.255.255.255",
        68,
        67,
        240,
    )
}

/// A DHCPv6 server reply (udp 547 → 546).
pub fn dhcp6_reply(src: MacAddr, dst: MacAddr, sip: &str, dip: &str) -> Vec<u8> {
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

/// Router Solicitation from `sip` to all-routers (ff02::2), with an SLL option.
pub fn rs(src: MacAddr, sip: &str) -> Vec<u8> {
    let dst = ip6("ff02::2");
    let mut icmp = vec![133, 0, 0, 0, 0, 0, 0, 0, 1, 1];
    icmp.extend_from_slice(&src.0);
    let ck = frames::icmpv6_checksum(ip6(sip), dst, &icmp);
    icmp[2..4].copy_from_slice(&ck.to_be_bytes());
    ipv6_raw(src, mac("33:33:00:00:00:02"), ip6(sip), dst, 58, 255, &icmp)
}
