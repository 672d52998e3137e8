//! A frame from a flow-like text, for `vswitch trace`: `in_port=web1 arp op=request
//! spa=10.0.0.100 tpa=10.0.0.100`. Words are separated by spaces or commas; a protocol
//! keyword (`arp`, `ip`, `icmp`, `udp`, `tcp`, `ipv6`, `icmp6`, `udp6`, `tcp6`, `ns`, `na`)
//! and `field=value` pairs. Fields not given take defaults from the ingress port
//! ([`PortDefaults`]): the source MAC is the port's MAC, source addresses its first IP of
//! the family, the destination MAC of unicast IP what a correct neighbour cache holds
//! (`neighbour`), broadcast for ARP requests. Errors name the field.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use vip_table::MacAddr;

use crate::frames::{self, SmallFrame};

/// What the defaults are taken from.
#[derive(Clone, Debug)]
pub struct PortDefaults {
    /// The port's MAC.
    pub mac: MacAddr,
    /// Its first IPv4 address.
    pub ipv4: Option<Ipv4Addr>,
    /// Its first IPv6 address.
    pub ipv6: Option<Ipv6Addr>,
}

/// A bad flow text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    /// A field's value does not parse.
    #[error("{field}: {value:?} is not {expected}")]
    BadValue {
        /// The field.
        field: String,
        /// Its value.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
    /// An unknown field or keyword.
    #[error("{0}: unknown field (fields: in_port dl_src dl_dst vlan op sha spa tha tpa nw_src nw_dst ttl tp_src tp_dst target lladdr flags len; protocols: arp ip icmp udp tcp ipv6 icmp6 udp6 tcp6 ns na)")]
    Unknown(String),
    /// A field that is needed has no value and no default.
    #[error("{field}: needed ({why})")]
    Missing {
        /// The field.
        field: &'static str,
        /// Why there is no default.
        why: String,
    },
}

/// A parsed flow text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    /// `in_port=`.
    pub in_port: Option<String>,
    proto: Option<String>,
    fields: Vec<(String, String)>,
}

const PROTOS: [&str; 11] = [
    "arp", "ip", "icmp", "udp", "tcp", "ipv6", "icmp6", "udp6", "tcp6", "ns", "na",
];

/// Canonical field name of an alias.
fn canon(k: &str) -> Option<&'static str> {
    Some(match k {
        "dl_src" | "eth_src" => "dl_src",
        "dl_dst" | "eth_dst" => "dl_dst",
        "vlan" | "dl_vlan" => "vlan",
        "op" | "arp_op" => "op",
        "sha" | "arp_sha" => "sha",
        "spa" | "arp_spa" => "spa",
        "tha" | "arp_tha" => "tha",
        "tpa" | "arp_tpa" => "tpa",
        "nw_src" | "ip_src" | "ipv6_src" | "src" => "nw_src",
        "nw_dst" | "ip_dst" | "ipv6_dst" | "dst" => "nw_dst",
        "ttl" | "nw_ttl" => "ttl",
        "tp_src" | "sport" | "udp_src" | "tcp_src" => "tp_src",
        "tp_dst" | "dport" | "udp_dst" | "tcp_dst" => "tp_dst",
        "target" | "nd_target" => "target",
        "lladdr" | "nd_sll" | "nd_tll" => "lladdr",
        "flags" | "na_flags" => "flags",
        "len" => "len",
        _ => return None,
    })
}

fn bad(field: &str, value: &str, expected: &'static str) -> FlowError {
    FlowError::BadValue {
        field: field.to_string(),
        value: value.to_string(),
        expected,
    }
}

impl Flow {
    /// Parse the text (no defaults applied yet).
    pub fn parse(text: &str) -> Result<Flow, FlowError> {
        let mut f = Flow::default();
        for w in text.split([' ', ',', '\t', '\n']).filter(|w| !w.is_empty()) {
            match w.split_once('=') {
                Some(("in_port", v)) => f.in_port = Some(v.to_string()),
                Some((k, v)) => {
                    let c = canon(k).ok_or_else(|| FlowError::Unknown(k.to_string()))?;
                    f.fields.retain(|(x, _)| x != c);
                    f.fields.push((c.to_string(), v.to_string()));
                }
                None if PROTOS.contains(&w) => {
                    if let Some(p) = &f.proto {
                        return Err(FlowError::BadValue {
                            field: "protocol".into(),
                            value: format!("{p} {w}"),
                            expected: "one protocol keyword",
                        });
                    }
                    f.proto = Some(w.to_string());
                }
                None => return Err(FlowError::Unknown(w.to_string())),
            }
        }
        Ok(f)
    }

    /// Whether the text describes a frame (beyond `in_port=`).
    pub fn has_frame(&self) -> bool {
        self.proto.is_some() || !self.fields.is_empty()
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(x, _)| x == k)
            .map(|(_, v)| v.as_str())
    }

    fn mac(&self, k: &str) -> Result<Option<MacAddr>, FlowError> {
        self.get(k)
            .map(|v| v.parse().map_err(|_| bad(k, v, "a MAC address")))
            .transpose()
    }

    fn ip(&self, k: &str) -> Result<Option<IpAddr>, FlowError> {
        self.get(k)
            .map(|v| v.parse().map_err(|_| bad(k, v, "an IP address")))
            .transpose()
    }

    fn num<T: std::str::FromStr>(
        &self,
        k: &str,
        what: &'static str,
    ) -> Result<Option<T>, FlowError> {
        self.get(k)
            .map(|v| v.parse().map_err(|_| bad(k, v, what)))
            .transpose()
    }

    fn v4(&self, k: &str) -> Result<Option<Ipv4Addr>, FlowError> {
        match self.ip(k)? {
            None => Ok(None),
            Some(IpAddr::V4(a)) => Ok(Some(a)),
            Some(IpAddr::V6(_)) => Err(bad(k, self.get(k).unwrap_or(""), "an IPv4 address")),
        }
    }

    fn v6(&self, k: &str) -> Result<Option<Ipv6Addr>, FlowError> {
        match self.ip(k)? {
            None => Ok(None),
            Some(IpAddr::V6(a)) => Ok(Some(a)),
            Some(IpAddr::V4(_)) => Err(bad(k, self.get(k).unwrap_or(""), "an IPv6 address")),
        }
    }

    /// Build the frame. `neighbour(ip)`: the MAC a correct neighbour cache holds for `ip`
    /// (a port's fixed IP, a VIP's answer MAC), for the destination MAC of unicast IP.
    pub fn build(
        &self,
        d: &PortDefaults,
        neighbour: &dyn Fn(IpAddr) -> Option<MacAddr>,
    ) -> Result<Vec<u8>, FlowError> {
        let proto = self.proto.as_deref().ok_or(FlowError::Missing {
            field: "protocol",
            why: "give one of arp ip icmp udp tcp ipv6 icmp6 udp6 tcp6 ns na".into(),
        })?;
        let src = self.mac("dl_src")?.unwrap_or(d.mac);
        let dl_dst = self.mac("dl_dst")?;
        let mut frame = match proto {
            "arp" => self.arp(src, dl_dst, d)?,
            "ns" | "na" => self.nd(proto == "ns", src, dl_dst, d)?,
            _ => self.ip_frame(proto, src, dl_dst, d, neighbour)?,
        };
        if let Some(vid) = self.num::<u16>("vlan", "a VLAN id (1-4094)")? {
            if vid == 0 || vid > 4094 {
                return Err(bad("vlan", &vid.to_string(), "a VLAN id (1-4094)"));
            }
            let mut tag = vec![0x81, 0x00];
            tag.extend_from_slice(&vid.to_be_bytes());
            frame.splice(12..12, tag);
        }
        if let Some(len) = self.num::<usize>("len", "a frame length in bytes")? {
            if len < frame.len() || len > super::MAX_FRAME_LEN {
                return Err(FlowError::BadValue {
                    field: "len".into(),
                    value: len.to_string(),
                    expected: "a length between the frame's own and 65535",
                });
            }
            if !matches!(proto, "arp" | "ns" | "na") {
                // grow the IP payload so that the headers' lengths stay consistent
                return self.ip_frame_padded(proto, src, dl_dst, d, neighbour, len);
            }
            frame.resize(len, 0);
        }
        Ok(frame)
    }

    fn arp(
        &self,
        src: MacAddr,
        dl_dst: Option<MacAddr>,
        d: &PortDefaults,
    ) -> Result<Vec<u8>, FlowError> {
        let op = match self.get("op") {
            None | Some("request") | Some("1") => 1,
            Some("reply") | Some("2") => 2,
            Some(v) => v
                .parse::<u16>()
                .map_err(|_| bad("op", v, "request, reply or an ARP opcode"))?,
        };
        let sha = self.mac("sha")?.unwrap_or(src);
        let spa = match self.v4("spa")? {
            Some(a) => a,
            None => d.ipv4.ok_or(FlowError::Missing {
                field: "spa",
                why: "the port has no IPv4 address".into(),
            })?,
        };
        let tpa = match self.v4("tpa")? {
            Some(a) => a,
            None if op == 2 => spa,
            None => {
                return Err(FlowError::Missing {
                    field: "tpa",
                    why: "the address the request asks for".into(),
                })
            }
        };
        let dst = dl_dst.unwrap_or(MacAddr::BROADCAST);
        let tha = self
            .mac("tha")?
            .unwrap_or(if op == 2 { dst } else { MacAddr::ZERO });
        let mut f = SmallFrame::default();
        frames::arp(&mut f, dst, src, op, sha, spa, tha, tpa);
        Ok(f.as_bytes().to_vec())
    }

    fn nd(
        &self,
        ns: bool,
        src: MacAddr,
        dl_dst: Option<MacAddr>,
        d: &PortDefaults,
    ) -> Result<Vec<u8>, FlowError> {
        let target = self.v6("target")?.ok_or(FlowError::Missing {
            field: "target",
            why: "the address solicited or advertised".into(),
        })?;
        let lladdr = match self.get("lladdr") {
            Some("none") => None,
            _ => Some(self.mac("lladdr")?.unwrap_or(src)),
        };
        let mut f = SmallFrame::default();
        if ns {
            let ip_src = match self.v6("nw_src")? {
                Some(a) => a,
                None => d.ipv6.ok_or(FlowError::Missing {
                    field: "nw_src",
                    why: "the port has no IPv6 address".into(),
                })?,
            };
            let group = frames::solicited_node(target);
            let ip_dst = self.v6("nw_dst")?.unwrap_or(group);
            let dst = dl_dst.unwrap_or(MacAddr::ipv6_multicast(ip_dst));
            frames::nd(&mut f, dst, src, ip_src, ip_dst, 135, 0, target, lladdr);
        } else {
            let ip_src = self.v6("nw_src")?.unwrap_or(target);
            let ip_dst = self.v6("nw_dst")?.unwrap_or(frames::ALL_NODES);
            let dst = dl_dst.unwrap_or(MacAddr::ipv6_multicast(ip_dst));
            let flags = match self.get("flags") {
                None => crate::wire::NA_FLAG_OVERRIDE,
                Some("none") | Some("0") => 0,
                Some(v) => {
                    let mut b = 0u8;
                    for c in v.chars() {
                        b |= match c.to_ascii_uppercase() {
                            'R' => crate::wire::NA_FLAG_ROUTER,
                            'S' => crate::wire::NA_FLAG_SOLICITED,
                            'O' => crate::wire::NA_FLAG_OVERRIDE,
                            _ => return Err(bad("flags", v, "NA flags: letters R, S, O, or none")),
                        };
                    }
                    b
                }
            };
            frames::nd(&mut f, dst, src, ip_src, ip_dst, 136, flags, target, lladdr);
        }
        Ok(f.as_bytes().to_vec())
    }

    fn ip_frame(
        &self,
        proto: &str,
        src: MacAddr,
        dl_dst: Option<MacAddr>,
        d: &PortDefaults,
        neighbour: &dyn Fn(IpAddr) -> Option<MacAddr>,
    ) -> Result<Vec<u8>, FlowError> {
        self.ip_frame_padded(proto, src, dl_dst, d, neighbour, 0)
    }

    /// An IPv4/IPv6 frame of at least `len` bytes (the payload grows).
    fn ip_frame_padded(
        &self,
        proto: &str,
        src: MacAddr,
        dl_dst: Option<MacAddr>,
        d: &PortDefaults,
        neighbour: &dyn Fn(IpAddr) -> Option<MacAddr>,
        len: usize,
    ) -> Result<Vec<u8>, FlowError> {
        let v6 = matches!(proto, "ipv6" | "icmp6" | "udp6" | "tcp6")
            || matches!(self.ip("nw_dst")?, Some(IpAddr::V6(_)));
        let dst_ip = self.ip("nw_dst")?.ok_or(FlowError::Missing {
            field: "nw_dst",
            why: "the destination IP".into(),
        })?;
        let src_ip = match self.ip("nw_src")? {
            Some(a) => a,
            None if v6 => IpAddr::V6(d.ipv6.ok_or(FlowError::Missing {
                field: "nw_src",
                why: "the port has no IPv6 address".into(),
            })?),
            None => IpAddr::V4(d.ipv4.ok_or(FlowError::Missing {
                field: "nw_src",
                why: "the port has no IPv4 address".into(),
            })?),
        };
        if src_ip.is_ipv6() != dst_ip.is_ipv6() || dst_ip.is_ipv6() != v6 {
            return Err(bad(
                "nw_src",
                &src_ip.to_string(),
                "of the same family as nw_dst and the protocol",
            ));
        }
        let dst = match dl_dst {
            Some(m) => m,
            None => match dst_ip {
                IpAddr::V4(a) if a.is_broadcast() => MacAddr::BROADCAST,
                IpAddr::V4(a) if a.is_multicast() => {
                    let o = a.octets();
                    MacAddr([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]])
                }
                IpAddr::V6(a) if a.is_multicast() => MacAddr::ipv6_multicast(a),
                a => neighbour(a).ok_or(FlowError::Missing {
                    field: "dl_dst",
                    why: format!("no port or vip of the switch has {a}: which MAC does the sender's neighbour cache hold?"),
                })?,
            },
        };
        let ttl = self.num::<u8>("ttl", "a TTL (0-255)")?.unwrap_or(64);
        let sport = self.num::<u16>("tp_src", "a port number")?.unwrap_or(40000);
        let dport = self.num::<u16>("tp_dst", "a port number")?.unwrap_or(80);
        let hdr = if v6 { 54 } else { 34 };
        let (pnum, mut l4): (u8, Vec<u8>) = match proto {
            "udp" | "udp6" => {
                let mut u = Vec::new();
                u.extend_from_slice(&sport.to_be_bytes());
                u.extend_from_slice(&dport.to_be_bytes());
                u.extend_from_slice(&[0, 8, 0, 0]);
                (17, u)
            }
            "tcp" | "tcp6" => {
                let mut t = Vec::new();
                t.extend_from_slice(&sport.to_be_bytes());
                t.extend_from_slice(&dport.to_be_bytes());
                t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
                (6, t)
            }
            "icmp" => (1, vec![8, 0, 0, 0, 0, 1, 0, 1]),
            "icmp6" => (58, vec![128, 0, 0, 0, 0, 1, 0, 1]),
            _ => (if v6 { 59 } else { 253 }, Vec::new()),
        };
        if len > hdr + l4.len() {
            l4.resize(len - hdr, 0);
        }
        if pnum == 17 {
            let n = l4.len() as u16;
            l4[4..6].copy_from_slice(&n.to_be_bytes());
        }
        let mut f = Vec::with_capacity(hdr + l4.len());
        f.extend_from_slice(&dst.0);
        f.extend_from_slice(&src.0);
        match (src_ip, dst_ip) {
            (IpAddr::V4(s), IpAddr::V4(t)) => {
                f.extend_from_slice(&[0x08, 0x00]);
                let total = (20 + l4.len()) as u16;
                let mut ip = vec![0x45, 0];
                ip.extend_from_slice(&total.to_be_bytes());
                ip.extend_from_slice(&[0, 0, 0x40, 0, ttl, pnum, 0, 0]);
                ip.extend_from_slice(&s.octets());
                ip.extend_from_slice(&t.octets());
                let ck = checksum(&ip);
                ip[10..12].copy_from_slice(&ck.to_be_bytes());
                f.extend_from_slice(&ip);
                if pnum == 1 {
                    let ck = checksum(&l4);
                    l4[2..4].copy_from_slice(&ck.to_be_bytes());
                }
            }
            (IpAddr::V6(s), IpAddr::V6(t)) => {
                f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
                f.extend_from_slice(&(l4.len() as u16).to_be_bytes());
                f.extend_from_slice(&[pnum, ttl]);
                f.extend_from_slice(&s.octets());
                f.extend_from_slice(&t.octets());
                if pnum == 58 {
                    let ck = frames::icmpv6_checksum(s, t, &l4);
                    l4[2..4].copy_from_slice(&ck.to_be_bytes());
                }
            }
            _ => {
                return Err(bad(
                    "nw_src",
                    &src_ip.to_string(),
                    "of the same family as nw_dst",
                ))
            }
        }
        f.extend_from_slice(&l4);
        Ok(f)
    }
}

/// The Internet checksum of `b`.
fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::wire::{parse, Icmpv6Info, L3, L4};

    fn d() -> PortDefaults {
        PortDefaults {
            mac: MacAddr([0x52, 0x54, 0, 0, 0, 1]),
            ipv4: Some(Ipv4Addr::new(10, 0, 0, 11)),
            ipv6: Some("fd00::11".parse().unwrap()),
        }
    }

    fn none(_: IpAddr) -> Option<MacAddr> {
        None
    }

    fn build(text: &str) -> Result<Vec<u8>, FlowError> {
        Flow::parse(text)?.build(&d(), &none)
    }

    #[test]
    fn garp_with_defaults() {
        let f = Flow::parse("in_port=web1 arp op=request spa=10.0.0.100 tpa=10.0.0.100").unwrap();
        assert_eq!(f.in_port.as_deref(), Some("web1"));
        let facts = parse(&f.build(&d(), &none).unwrap()).unwrap();
        assert_eq!(facts.src, d().mac);
        assert_eq!(facts.dst, MacAddr::BROADCAST);
        let L3::Arp(a) = facts.l3 else { panic!() };
        assert!(a.is_gratuitous_request());
        assert_eq!(a.sha, d().mac);
    }

    #[test]
    fn udp_to_a_neighbour_and_padding() {
        let n =
            |ip: IpAddr| (ip == IpAddr::V4(Ipv4Addr::new(10, 0, 0, 12))).then_some(MacAddr([2; 6]));
        let b = Flow::parse("udp,nw_dst=10.0.0.12,tp_dst=53,len=200")
            .unwrap()
            .build(&d(), &n)
            .unwrap();
        assert_eq!(b.len(), 200);
        let facts = parse(&b).unwrap();
        assert_eq!(facts.dst, MacAddr([2; 6]));
        let ip = facts.ip().unwrap();
        assert_eq!(ip.src, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 11)));
        assert_eq!(
            ip.l4,
            L4::Udp {
                sport: 40000,
                dport: 53
            }
        );
    }

    #[test]
    fn ns_and_na() {
        let facts = parse(&build("ns target=fd00::100").unwrap()).unwrap();
        let ip = facts.ip().unwrap();
        assert_eq!(
            ip.l4,
            L4::Icmpv6(Icmpv6Info::NeighborSolicit {
                target: "fd00::100".parse().unwrap(),
                sll: Some(d().mac)
            })
        );
        let facts = parse(&build("na target=fd00::100 flags=SO lladdr=none").unwrap()).unwrap();
        let L4::Icmpv6(Icmpv6Info::NeighborAdvert { tll, flags, .. }) = facts.ip().unwrap().l4
        else {
            panic!()
        };
        assert_eq!((tll, flags), (None, 0x60));
    }

    #[test]
    fn errors_name_the_field() {
        let e = |t: &str| build(t).unwrap_err().to_string();
        assert!(e("arp spa=10.0.0.300 tpa=1.2.3.4").starts_with("spa: \"10.0.0.300\" is not an IP"));
        assert!(e("arp dl_src=zz tpa=1.2.3.4").starts_with("dl_src: \"zz\" is not a MAC"));
        assert!(e("arp").starts_with("tpa: needed"));
        assert!(e("udp nw_dst=10.0.0.99").starts_with("dl_dst: needed"));
        assert!(e("udp").starts_with("nw_dst: needed"));
        assert!(e("bogus=1").starts_with("bogus: unknown field"));
        assert!(e("tpa=10.0.0.1").starts_with("protocol: needed"));
        assert!(e("arp tpa=10.0.0.1 vlan=5000").starts_with("vlan: "));
        assert!(e("na target=fd00::1 flags=X").starts_with("flags: "));
        assert!(e("arp udp").starts_with("protocol: "));
    }
}
