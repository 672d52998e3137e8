//! Frames the switch itself generates: ARP replies and Neighbor Advertisements for VIPs it
//! answers for, and gratuitous ARP / unsolicited NA announcements after a VIP moves.
//!
//! Contract: builders write into a caller-provided fixed buffer ([`SmallFrame`]), never
//! allocate, and produce frames with correct lengths and checksums (ICMPv6 checksum over the
//! pseudo-header). They are also what the test scenarios use to build input frames.

use std::net::{Ipv4Addr, Ipv6Addr};

use vip_table::MacAddr;

use crate::wire::{NA_FLAG_OVERRIDE, NA_FLAG_SOLICITED};

/// Largest frame these builders produce (an NA with one option is 86 bytes).
pub const SMALL_FRAME_CAP: usize = 128;

/// A small frame in a fixed buffer.
#[derive(Clone, Copy)]
pub struct SmallFrame {
    buf: [u8; SMALL_FRAME_CAP],
    len: usize,
}

impl Default for SmallFrame {
    fn default() -> Self {
        SmallFrame {
            buf: [0; SMALL_FRAME_CAP],
            len: 0,
        }
    }
}

impl std::fmt::Debug for SmallFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SmallFrame({} bytes)", self.len)
    }
}

impl SmallFrame {
    /// The frame bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Replace the contents with a copy of `bytes`; false (and empty) if they do not fit.
    pub fn set(&mut self, bytes: &[u8]) -> bool {
        self.len = 0;
        if bytes.len() > SMALL_FRAME_CAP {
            return false;
        }
        self.put(bytes);
        true
    }

    fn put(&mut self, bytes: &[u8]) {
        let end = (self.len + bytes.len()).min(SMALL_FRAME_CAP);
        let n = end - self.len;
        self.buf[self.len..end].copy_from_slice(&bytes[..n]);
        self.len = end;
    }

    fn eth(&mut self, dst: MacAddr, src: MacAddr, ethertype: u16) {
        self.len = 0;
        self.put(&dst.0);
        self.put(&src.0);
        self.put(&ethertype.to_be_bytes());
    }
}

/// Build an ARP packet (Ethernet/IPv4) from explicit fields.
#[allow(clippy::too_many_arguments)]
pub fn arp(
    out: &mut SmallFrame,
    eth_dst: MacAddr,
    eth_src: MacAddr,
    op: u16,
    sha: MacAddr,
    spa: Ipv4Addr,
    tha: MacAddr,
    tpa: Ipv4Addr,
) {
    out.eth(eth_dst, eth_src, 0x0806);
    out.put(&[0x00, 0x01, 0x08, 0x00, 6, 4]);
    out.put(&op.to_be_bytes());
    out.put(&sha.0);
    out.put(&spa.octets());
    out.put(&tha.0);
    out.put(&tpa.octets());
}

/// ARP reply from `mac`/`ip` to a requester.
pub fn arp_reply(
    out: &mut SmallFrame,
    mac: MacAddr,
    ip: Ipv4Addr,
    to_mac: MacAddr,
    to_ip: Ipv4Addr,
) {
    arp(out, to_mac, mac, 2, mac, ip, to_mac, to_ip);
}

/// Gratuitous ARP request announcing `ip` at `mac` (keepalived's form: broadcast,
/// `spa == tpa`, `tha` = ff:ff:ff:ff:ff:ff).
pub fn garp(out: &mut SmallFrame, mac: MacAddr, ip: Ipv4Addr) {
    arp(
        out,
        MacAddr::BROADCAST,
        mac,
        1,
        mac,
        ip,
        MacAddr::BROADCAST,
        ip,
    );
}

/// The ones'-complement sum of `b` as big-endian 16-bit words (an odd last byte is padded
/// with a zero), not yet folded. Summed four bytes at a time: folding the 32-bit sum later
/// gives the same 16-bit sum (RFC 1071 §2(B)).
#[inline]
fn sum_words(b: &[u8]) -> u64 {
    let mut quads = b.chunks_exact(4);
    let mut sum: u64 = quads
        .by_ref()
        .map(|q| u64::from(u32::from_be_bytes([q[0], q[1], q[2], q[3]])))
        .sum();
    let mut words = quads.remainder().chunks_exact(2);
    sum += words
        .by_ref()
        .map(|w| u64::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u64>();
    if let [last] = words.remainder() {
        sum += u64::from(u16::from_be_bytes([*last, 0]));
    }
    sum
}

/// The ICMPv6 checksum of `icmp` sent from `src` to `dst`.
pub fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, icmp: &[u8]) -> u16 {
    let mut sum = sum_words(&src.octets())
        + sum_words(&dst.octets())
        + sum_words(&(icmp.len() as u32).to_be_bytes())
        + 58
        + sum_words(icmp);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Build an IPv6 ICMPv6 Neighbor Solicitation or Advertisement (hop limit 255).
/// `icmp_type` 135 (NS, option = SLL) or 136 (NA, option = TLL).
#[allow(clippy::too_many_arguments)]
pub fn nd(
    out: &mut SmallFrame,
    eth_dst: MacAddr,
    eth_src: MacAddr,
    ip_src: Ipv6Addr,
    ip_dst: Ipv6Addr,
    icmp_type: u8,
    flags: u8,
    target: Ipv6Addr,
    lladdr: Option<MacAddr>,
) {
    let mut icmp = [0u8; 32];
    icmp[0] = icmp_type;
    icmp[4] = flags;
    icmp[8..24].copy_from_slice(&target.octets());
    let mut icmp_len = 24;
    if let Some(m) = lladdr {
        icmp[24] = if icmp_type == 135 { 1 } else { 2 };
        icmp[25] = 1;
        icmp[26..32].copy_from_slice(&m.0);
        icmp_len = 32;
    }
    let ck = icmpv6_checksum(ip_src, ip_dst, &icmp[..icmp_len]);
    icmp[2..4].copy_from_slice(&ck.to_be_bytes());
    out.eth(eth_dst, eth_src, 0x86dd);
    out.put(&[0x60, 0, 0, 0]);
    out.put(&(icmp_len as u16).to_be_bytes());
    out.put(&[58, 255]);
    out.put(&ip_src.octets());
    out.put(&ip_dst.octets());
    out.put(&icmp[..icmp_len]);
}

/// The solicited-node multicast group of `target` (ff02::1:ffXX:XXXX, RFC 4291 §2.7.1).
pub fn solicited_node(target: Ipv6Addr) -> Ipv6Addr {
    let o = target.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// Neighbor Solicitation for `target` from `mac`/`src`, sent to the target's
/// solicited-node group, with the SLL option `sll`.
pub fn solicitation(
    out: &mut SmallFrame,
    mac: MacAddr,
    src: Ipv6Addr,
    target: Ipv6Addr,
    sll: Option<MacAddr>,
) {
    let group = solicited_node(target);
    nd(
        out,
        MacAddr::ipv6_multicast(group),
        mac,
        src,
        group,
        135,
        0,
        target,
        sll,
    );
}

/// The all-nodes multicast group ff02::1.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Solicited NA answering an NS for `target` at `mac`. If the solicitation came from `::`
/// (DAD), the answer goes to all-nodes without the S flag (RFC 4861 §7.2.4).
pub fn na_reply(
    out: &mut SmallFrame,
    mac: MacAddr,
    target: Ipv6Addr,
    to_mac: MacAddr,
    to_ip: Ipv6Addr,
) {
    if to_ip.is_unspecified() {
        unsolicited_na(out, mac, target);
    } else {
        nd(
            out,
            to_mac,
            mac,
            target,
            to_ip,
            136,
            NA_FLAG_SOLICITED | NA_FLAG_OVERRIDE,
            target,
            Some(mac),
        );
    }
}

/// Unsolicited NA announcing `target` at `mac` (keepalived's form: from the address itself
/// to ff02::1, Override set, TLL option).
pub fn unsolicited_na(out: &mut SmallFrame, mac: MacAddr, target: Ipv6Addr) {
    nd(
        out,
        MacAddr::ipv6_multicast(ALL_NODES),
        mac,
        target,
        ALL_NODES,
        136,
        NA_FLAG_OVERRIDE,
        target,
        Some(mac),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{parse, Icmpv6Info, L3, L4};

    #[test]
    fn solicitation_goes_to_the_solicited_node_group() {
        let t: Ipv6Addr = "fd00::12:3456".parse().unwrap();
        assert_eq!(
            solicited_node(t),
            "ff02::1:ff12:3456".parse::<Ipv6Addr>().unwrap()
        );
        let mut f = SmallFrame::default();
        let mac = MacAddr([2, 0, 0, 0, 0, 3]);
        solicitation(&mut f, mac, "fd00::3".parse().unwrap(), t, Some(mac));
        let b = f.as_bytes();
        assert_eq!(&b[..6], &[0x33, 0x33, 0xff, 0x12, 0x34, 0x56]);
        assert_eq!(b[14 + 40], 135);
    }

    #[test]
    fn garp_parses_as_gratuitous() {
        let mut f = SmallFrame::default();
        let m = MacAddr([2, 0, 0, 0, 0, 1]);
        garp(&mut f, m, Ipv4Addr::new(10, 0, 0, 100));
        let facts = parse(f.as_bytes()).unwrap();
        let L3::Arp(a) = facts.l3 else { panic!() };
        assert!(a.is_gratuitous_request());
        assert_eq!(a.sha, m);
    }

    /// The checksum as RFC 1071 spells it, byte pair by byte pair over the pseudo-header.
    fn reference_checksum(src: Ipv6Addr, dst: Ipv6Addr, icmp: &[u8]) -> u16 {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&src.octets());
        bytes.extend_from_slice(&dst.octets());
        bytes.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 58]);
        bytes.extend_from_slice(icmp);
        if bytes.len() % 2 == 1 {
            bytes.push(0);
        }
        let mut sum: u32 = 0;
        for i in (0..bytes.len()).step_by(2) {
            sum += u32::from(bytes[i]) << 8 | u32::from(bytes[i + 1]);
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    proptest::proptest! {
        #[test]
        fn checksum_matches_the_reference(
            src in proptest::array::uniform16(proptest::num::u8::ANY),
            dst in proptest::array::uniform16(proptest::num::u8::ANY),
            icmp in proptest::collection::vec(proptest::num::u8::ANY, 0..100),
        ) {
            let (s, d) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
            proptest::prop_assert_eq!(icmpv6_checksum(s, d, &icmp), reference_checksum(s, d, &icmp));
        }
    }

    #[test]
    fn na_checksum_verifies() {
        let mut f = SmallFrame::default();
        let m = MacAddr([2, 0, 0, 0, 0, 1]);
        let t: Ipv6Addr = "fd00::100".parse().unwrap();
        unsolicited_na(&mut f, m, t);
        let b = f.as_bytes();
        // Recomputing over the packet including its checksum gives zero.
        let icmp = &b[54..];
        let src = Ipv6Addr::from(<[u8; 16]>::try_from(&b[22..38]).unwrap());
        let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&b[38..54]).unwrap());
        assert_eq!(icmpv6_checksum(src, dst, icmp), 0);
        let facts = parse(b).unwrap();
        let L3::Ipv6(ip) = facts.l3 else { panic!() };
        assert_eq!(
            ip.l4,
            L4::Icmpv6(Icmpv6Info::NeighborAdvert {
                target: t,
                tll: Some(m),
                flags: NA_FLAG_OVERRIDE
            })
        );
    }
}
