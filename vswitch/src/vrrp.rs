//! VRRP advertisements on the wire (RFC 3768 VRRPv2, RFC 5798 VRRPv3): just enough to
//! recognise a master's advert, list the addresses it protects, and turn a copy of it into
//! the master's resignation — the same advert with priority 0 (RFC 3768 §6.4.2 /
//! RFC 5798 §6.4.3: "send an ADVERTISEMENT with Priority = 0").
//!
//! Contract:
//! - [`parse`] reads untrusted bytes: it never panics and returns `None` for anything that
//!   is not a well-formed advert (untagged Ethernet, IPv4 with protocol 112 or IPv6 whose
//!   next header is 112, VRRP type 1, version 2 over IPv4 or 3 over either family, a count
//!   that fits the length, a valid VRRP checksum). AH-authenticated VRRPv2 (IP protocol 51,
//!   RFC 2338's auth type 2) is never an advert here: it cannot be re-signed, so the switch
//!   could not speak for such a master anyway;
//! - [`step_down`] writes the priority-0 copy of an advert into a [`SmallFrame`]: every
//!   byte as received (Ethernet addresses — a `use_vmac` master's virtual MAC included —,
//!   the IP header, VRID, addresses, advert interval, the VRRPv2 authentication data, any
//!   Ethernet padding) except the priority and the VRRP checksum. The IP header checksum
//!   does not cover the payload, so it stays valid; the VRRPv3 checksum covers the IPv4 or
//!   IPv6 pseudo-header and is recomputed with it;
//! - nothing here allocates.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::frames::{SmallFrame, SMALL_FRAME_CAP};
use crate::wire::{IPPROTO_VRRP, VRRP_V4_GROUP, VRRP_V6_GROUP};

const ETH_LEN: usize = 14;
const VRRP_HDR_LEN: usize = 8;
/// VRRPv2's authentication data after the addresses (RFC 3768 §5.3.10).
const V2_AUTH_LEN: usize = 8;

/// A parsed VRRP advertisement (offsets into the frame it came from).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Advert {
    /// 2 or 3.
    pub version: u8,
    /// Virtual router id.
    pub vrid: u8,
    /// Sender's priority (0 = it is giving up mastership).
    pub priority: u8,
    /// Number of addresses.
    pub count: u8,
    /// VRRPv2 authentication type (0 none, 1 simple text password); 0 for VRRPv3.
    pub auth_type: u8,
    /// Advertisement interval in centiseconds (VRRPv2's seconds are converted).
    pub interval_cs: u16,
    /// IP source.
    pub src: IpAddr,
    /// IP destination (the VRRP group, or a `unicast_peer`).
    pub dst: IpAddr,
    vrrp_off: usize,
    vrrp_len: usize,
}

impl Advert {
    /// The advert goes to the VRRP multicast group (224.0.0.18 / ff02::12).
    pub fn is_multicast(&self) -> bool {
        match self.dst {
            IpAddr::V4(a) => a == VRRP_V4_GROUP,
            IpAddr::V6(a) => a == VRRP_V6_GROUP,
        }
    }

    /// The address family is IPv6.
    pub fn is_ipv6(&self) -> bool {
        self.src.is_ipv6()
    }

    /// The `i`-th protected address of the advert in `frame` (the frame it was parsed from).
    pub fn address(&self, frame: &[u8], i: usize) -> Option<IpAddr> {
        let base = self.vrrp_off + VRRP_HDR_LEN;
        if self.is_ipv6() {
            let o = frame.get(base + 16 * i..base + 16 * (i + 1))?;
            let b: [u8; 16] = o.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        } else {
            let o = frame.get(base + 4 * i..base + 4 * (i + 1))?;
            Some(IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], o[3])))
        }
    }

    /// The protected addresses of the advert in `frame`.
    pub fn addresses<'a>(&'a self, frame: &'a [u8]) -> impl Iterator<Item = IpAddr> + 'a {
        (0..usize::from(self.count)).filter_map(move |i| self.address(frame, i))
    }
}

/// One's-complement sum of `b` (odd length padded with zero), not yet folded.
fn sum16(mut sum: u32, b: &[u8]) -> u32 {
    let mut it = b.chunks_exact(2);
    for c in &mut it {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = it.remainder() {
        sum += u32::from(u16::from_be_bytes([*last, 0]));
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The VRRP checksum of `msg` (the VRRP message with its checksum field as it is; zero it
/// to compute, keep it to verify: a valid message gives 0). VRRPv2: the message alone;
/// VRRPv3: with the IPv4/IPv6 pseudo-header of `src` → `dst`.
pub fn checksum(version: u8, src: IpAddr, dst: IpAddr, msg: &[u8]) -> u16 {
    let mut sum = 0u32;
    if version == 3 {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                sum = sum16(sum, &s.octets());
                sum = sum16(sum, &d.octets());
                sum = sum16(sum, &[0, IPPROTO_VRRP]);
                sum = sum16(sum, &(msg.len() as u16).to_be_bytes());
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                sum = sum16(sum, &s.octets());
                sum = sum16(sum, &d.octets());
                sum = sum16(sum, &(msg.len() as u32).to_be_bytes());
                sum = sum16(sum, &[0, 0, 0, IPPROTO_VRRP]);
            }
            _ => {}
        }
    }
    fold(sum16(sum, msg))
}

/// Parse a VRRP advertisement; `None` for anything else (see the module docs).
pub fn parse(frame: &[u8]) -> Option<Advert> {
    let eth = frame.get(..ETH_LEN)?;
    let (src, dst, l3_off, l3_end) = match u16::from_be_bytes([eth[12], eth[13]]) {
        0x0800 => {
            let ip = frame.get(ETH_LEN..ETH_LEN + 20)?;
            if ip[0] >> 4 != 4 || ip[9] != IPPROTO_VRRP {
                return None;
            }
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            // Not a fragment (MF clear, offset 0).
            if ihl < 20 || total < ihl || u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
                return None;
            }
            let s = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
            let d = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
            (IpAddr::V4(s), IpAddr::V4(d), ETH_LEN + ihl, ETH_LEN + total)
        }
        0x86dd => {
            let ip = frame.get(ETH_LEN..ETH_LEN + 40)?;
            if ip[0] >> 4 != 6 || ip[6] != IPPROTO_VRRP {
                return None;
            }
            let plen = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            let s: [u8; 16] = ip[8..24].try_into().ok()?;
            let d: [u8; 16] = ip[24..40].try_into().ok()?;
            (
                IpAddr::V6(Ipv6Addr::from(s)),
                IpAddr::V6(Ipv6Addr::from(d)),
                ETH_LEN + 40,
                ETH_LEN + 40 + plen,
            )
        }
        _ => return None,
    };
    let msg = frame.get(l3_off..l3_end)?;
    let hdr = msg.get(..VRRP_HDR_LEN)?;
    let (version, kind) = (hdr[0] >> 4, hdr[0] & 0x0f);
    if kind != 1 || !(version == 2 && src.is_ipv4() || version == 3) {
        return None;
    }
    let count = hdr[3];
    let alen = if src.is_ipv6() { 16 } else { 4 };
    let mut need = VRRP_HDR_LEN + alen * usize::from(count);
    let (auth_type, interval_cs) = if version == 2 {
        need += V2_AUTH_LEN;
        // RFC 2338 auth type 2 is IP AH: not something the switch can speak for.
        if hdr[4] > 1 {
            return None;
        }
        (hdr[4], u16::from(hdr[5]) * 100)
    } else {
        (0, u16::from_be_bytes([hdr[4], hdr[5]]) & 0x0fff)
    };
    // keepalived sends exactly the message; tolerate nothing shorter.
    let msg = msg.get(..need)?;
    if checksum(version, src, dst, msg) != 0 {
        return None;
    }
    Some(Advert {
        version,
        vrid: hdr[1],
        priority: hdr[2],
        count,
        auth_type,
        interval_cs,
        src,
        dst,
        vrrp_off: l3_off,
        vrrp_len: need,
    })
}

/// Write into `out` the priority-0 copy of the advert `frame` (parsed as `a`). Returns
/// false (and leaves `out` empty) if the frame does not fit a [`SmallFrame`].
pub fn step_down(frame: &[u8], a: &Advert, out: &mut SmallFrame) -> bool {
    *out = SmallFrame::default();
    if frame.len() > SMALL_FRAME_CAP || a.vrrp_off + a.vrrp_len > frame.len() {
        return false;
    }
    let mut buf = [0u8; SMALL_FRAME_CAP];
    let Some(b) = buf.get_mut(..frame.len()) else {
        return false;
    };
    b.copy_from_slice(frame);
    let Some(msg) = b.get_mut(a.vrrp_off..a.vrrp_off + a.vrrp_len) else {
        return false;
    };
    msg[2] = 0;
    msg[6] = 0;
    msg[7] = 0;
    let ck = checksum(a.version, a.src, a.dst, msg);
    msg[6..8].copy_from_slice(&ck.to_be_bytes());
    out.set(b)
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// Frames of a classic pcap (read with `pcap-file`).
    fn pcap_frames(bytes: &[u8]) -> Vec<Vec<u8>> {
        let (mut rest, parser) = pcap_file::pcap::PcapParser::new(bytes).unwrap();
        let mut v = Vec::new();
        while !rest.is_empty() {
            let (next, p) = parser.next_packet(rest).unwrap();
            v.push(p.data.into_owned());
            rest = next;
        }
        v
    }

    fn fixture(set: &str, vm: u8) -> Vec<Vec<u8>> {
        let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/keepalived")
            .join(format!("keepalived-{set}-vm{vm}.pcap"));
        let b = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(&b[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "little-endian pcap");
        pcap_frames(&b)
    }

    /// vm1's adverts in a capture set: (its last priority-150 advert before its graceful
    /// stop, the priority-0 advert keepalived itself sent on the stop).
    pub(crate) fn last_advert_and_resignation(set: &str) -> (Vec<u8>, Vec<u8>) {
        let frames = fixture(set, 1);
        let mut last = None;
        for f in &frames {
            let Some(a) = parse(f) else { continue };
            if a.priority == 0 {
                return (last.expect("an advert before the resignation"), f.clone());
            }
            last = Some(f.clone());
        }
        panic!("{set}: no priority-0 advert from vm1");
    }

    /// Against real keepalived 2.2.7: the priority-0 copy of the master's last advert has
    /// exactly the VRRP message (checksum included) keepalived sent when it stopped, and
    /// the same Ethernet and IP addressing.
    #[test]
    fn step_down_matches_keepalived_own_resignation() {
        for (set, version, v6, mcast) in [
            ("v4-multicast", 2, false, true),
            ("v4-unicast", 2, false, false),
            ("v4-vmac", 2, false, true),
            ("v6", 3, true, true),
        ] {
            let (adv, resign) = last_advert_and_resignation(set);
            let a = parse(&adv).unwrap();
            assert_eq!(a.version, version, "{set}");
            assert_eq!(a.is_ipv6(), v6, "{set}");
            assert_eq!(a.is_multicast(), mcast, "{set}");
            assert_eq!((a.vrid, a.priority, a.interval_cs), (33, 150, 100), "{set}");
            let want_addr: IpAddr = if v6 {
                "fd03::100".parse().unwrap()
            } else {
                "10.203.0.100".parse().unwrap()
            };
            assert_eq!(a.addresses(&adv).collect::<Vec<_>>(), [want_addr], "{set}");
            let mut out = SmallFrame::default();
            assert!(step_down(&adv, &a, &mut out), "{set}");
            let o = out.as_bytes();
            assert_eq!(o.len(), adv.len(), "{set}");
            let r = parse(&resign).unwrap();
            let p = parse(o).expect("the copy parses as a valid advert");
            assert_eq!(p.priority, 0, "{set}");
            // Ethernet header and IP addresses as keepalived's own resignation.
            assert_eq!(o[..14], resign[..14], "{set}: ethernet header");
            assert_eq!((p.src, p.dst), (r.src, r.dst), "{set}");
            // The VRRP message, checksum included, byte for byte.
            let m = |f: &[u8], a: &Advert| f[a.vrrp_off..a.vrrp_off + a.vrrp_len].to_vec();
            assert_eq!(m(o, &p), m(&resign, &r), "{set}: VRRP message");
            // The IP header is the advert's, still valid.
            if !v6 {
                assert_eq!(o[14..34], adv[14..34], "{set}");
                assert_eq!(fold(sum16(0, &o[14..34])), 0, "{set}: IPv4 header checksum");
            }
        }
    }

    #[test]
    fn captured_adverts_have_valid_checksums_and_the_rest_is_not_vrrp() {
        for set in ["v4-multicast", "v4-unicast", "v4-vmac", "v6"] {
            let mut adverts = 0;
            for vm in 1..=3 {
                for f in fixture(set, vm) {
                    let is_vrrp = (f.len() > 23 && f[12..14] == [8, 0] && f[23] == 112)
                        || (f.len() > 20 && f[12..14] == [0x86, 0xdd] && f[20] == 112);
                    assert_eq!(parse(&f).is_some(), is_vrrp, "{set} vm{vm}: {f:02x?}");
                    adverts += usize::from(is_vrrp);
                }
            }
            assert!(adverts > 10, "{set}: {adverts} adverts");
        }
    }

    fn v2_frame(auth_type: u8, addrs: &[Ipv4Addr]) -> Vec<u8> {
        let mut f = vec![0x01, 0, 0x5e, 0, 0, 0x12, 2, 0, 0, 0, 0, 1, 8, 0];
        let vlen = 8 + 4 * addrs.len() + 8;
        let total = (20 + vlen) as u16;
        let mut ip = vec![0x45, 0xc0];
        ip.extend_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&[0, 1, 0, 0, 255, 112, 0, 0, 10, 0, 0, 1, 224, 0, 0, 18]);
        let ck = fold(sum16(0, &ip));
        ip[10..12].copy_from_slice(&ck.to_be_bytes());
        f.extend_from_slice(&ip);
        let mut v = vec![0x21, 7, 200, addrs.len() as u8, auth_type, 1, 0, 0];
        for a in addrs {
            v.extend_from_slice(&a.octets());
        }
        v.extend_from_slice(b"secret\0\0");
        let ck = checksum(
            2,
            "10.0.0.1".parse().unwrap(),
            "224.0.0.18".parse().unwrap(),
            &v,
        );
        v[6..8].copy_from_slice(&ck.to_be_bytes());
        f.extend_from_slice(&v);
        f
    }

    #[test]
    fn pass_authentication_is_kept_and_ah_refused() {
        let addrs = [Ipv4Addr::new(10, 0, 0, 100), Ipv4Addr::new(10, 0, 0, 101)];
        let f = v2_frame(1, &addrs);
        let a = parse(&f).unwrap();
        assert_eq!((a.auth_type, a.count, a.vrid, a.priority), (1, 2, 7, 200));
        let mut out = SmallFrame::default();
        assert!(step_down(&f, &a, &mut out));
        let o = out.as_bytes();
        assert!(o.ends_with(b"secret\0\0"), "the password stays");
        assert_eq!(parse(o).unwrap().priority, 0);
        // Auth type 2 (IP AH) is not an advert the switch can speak for.
        assert_eq!(parse(&v2_frame(2, &addrs)), None);
        // Protocol 51 is not VRRP at all.
        let mut ah = f.clone();
        ah[23] = 51;
        assert_eq!(parse(&ah), None);
    }

    #[test]
    fn malformed_adverts_are_ignored() {
        let f = v2_frame(0, &[Ipv4Addr::new(10, 0, 0, 100)]);
        assert!(parse(&f).is_some());
        // every truncation
        for n in 0..f.len() {
            assert_eq!(parse(&f[..n]), None, "truncated to {n}");
        }
        // a bad checksum, a wrong type, version 2 over IPv6 is checked elsewhere, a count
        // beyond the message
        let mut bad = f.clone();
        bad[14 + 20 + 6] ^= 1;
        assert_eq!(parse(&bad), None);
        let mut bad = f.clone();
        bad[14 + 20] = 0x22;
        assert_eq!(parse(&bad), None);
        let mut bad = f.clone();
        bad[14 + 20 + 3] = 9;
        assert_eq!(parse(&bad), None);
        // A frame too long for a SmallFrame is not copied.
        let big = v2_frame(0, &[Ipv4Addr::new(10, 0, 0, 100); 30]);
        let a = parse(&big).unwrap();
        let mut out = SmallFrame::default();
        assert!(!step_down(&big, &a, &mut out));
        assert!(out.as_bytes().is_empty());
        // Arbitrary bytes never panic.
        for seed in 0u32..2000 {
            let mut x = seed.wrapping_mul(2654435761);
            let mut g = f.clone();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let i = (x as usize) % g.len();
                g[i] = (x >> 8) as u8;
            }
            let _ = parse(&g).map(|a| a.addresses(&g).count());
        }
    }
}
