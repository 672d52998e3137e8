//! Address types: MAC addresses and IP prefix sets with longest-prefix lookup.
//!
//! Contract: every parser here returns an error for bad input and never panics;
//! [`PrefixSet::longest_match`] returns the longest stored prefix that contains the
//! address, or `None`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

pub use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// A 48-bit IEEE 802 MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// True for group (multicast and broadcast) addresses: the I/G bit is set.
    #[inline]
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    /// True for ff:ff:ff:ff:ff:ff.
    #[inline]
    pub fn is_broadcast(&self) -> bool {
        self.0 == [0xff; 6]
    }

    /// True for a unicast address other than all-zeros.
    #[inline]
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast() && self.0 != [0; 6]
    }

    /// The VRRP virtual MAC for an IPv4 virtual router (RFC 5798 §7.3): 00:00:5e:00:01:VRID.
    pub fn vrrp_v4(vrid: u8) -> MacAddr {
        MacAddr([0x00, 0x00, 0x5e, 0x00, 0x01, vrid])
    }

    /// The VRRP virtual MAC for an IPv6 virtual router: 00:00:5e:00:02:VRID.
    pub fn vrrp_v6(vrid: u8) -> MacAddr {
        MacAddr([0x00, 0x00, 0x5e, 0x00, 0x02, vrid])
    }

    /// The IPv6 multicast MAC 33:33:xx:xx:xx:xx for a multicast group address.
    pub fn ipv6_multicast(group: Ipv6Addr) -> MacAddr {
        let o = group.octets();
        MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Error for a MAC address that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a MAC address (expected six hex octets like 02:00:00:00:00:11)")]
pub struct MacParseError(pub String);

impl FromStr for MacAddr {
    type Err = MacParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacParseError(s.to_string());
        let mut out = [0u8; 6];
        let mut n = 0;
        for part in s.split([':', '-']) {
            if n == 6 || part.len() != 2 {
                return Err(err());
            }
            out[n] = u8::from_str_radix(part, 16).map_err(|_| err())?;
            n += 1;
        }
        if n != 6 {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

impl serde::Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Error for an address or prefix that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IP address or CIDR prefix")]
pub struct PrefixParseError(pub String);

/// Parse `10.0.0.1`, `10.0.0.0/24`, `fd00::1` or `fd00::/64`. A bare address is a host
/// prefix (/32 or /128). Host bits below the prefix length are kept (the CIDR `10.0.0.11/24`
/// means "the address 10.0.0.11 on a /24"): use [`IpNet::trunc`] for the network.
pub fn parse_ip_or_cidr(s: &str) -> Result<IpNet, PrefixParseError> {
    let t = s.trim();
    if t.contains('/') {
        t.parse::<IpNet>()
            .map_err(|_| PrefixParseError(s.to_string()))
    } else {
        t.parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| PrefixParseError(s.to_string()))
    }
}

/// A set of IPv4 and IPv6 prefixes with longest-prefix-match lookup.
///
/// Sets here are small (a port's fixed IPs and address pairs), so lookup is a scan over
/// prefixes sorted longest first: the first hit is the longest match. This beats a trie
/// for the handful of entries a port has and never allocates on lookup.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrefixSet {
    v4: Vec<(u32, u32, u8)>, // (network, mask, len), sorted by len descending
    v6: Vec<(u128, u128, u8)>,
}

impl PrefixSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a prefix (host bits are ignored). Duplicates are kept once.
    pub fn insert(&mut self, net: IpNet) {
        match net.trunc() {
            IpNet::V4(n) => {
                let len = n.prefix_len();
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                let e = (u32::from(n.network()), mask, len);
                if !self.v4.contains(&e) {
                    self.v4.push(e);
                    self.v4.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
                }
            }
            IpNet::V6(n) => {
                let len = n.prefix_len();
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                let e = (u128::from(n.network()), mask, len);
                if !self.v6.contains(&e) {
                    self.v6.push(e);
                    self.v6.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
                }
            }
        }
    }

    /// The length of the longest prefix containing `ip`, if any.
    #[inline]
    pub fn longest_match(&self, ip: IpAddr) -> Option<u8> {
        match ip {
            IpAddr::V4(a) => self.longest_match_v4(a),
            IpAddr::V6(a) => self.longest_match_v6(a),
        }
    }

    /// IPv4 variant of [`PrefixSet::longest_match`].
    #[inline]
    pub fn longest_match_v4(&self, ip: Ipv4Addr) -> Option<u8> {
        let a = u32::from(ip);
        self.v4
            .iter()
            .find(|(net, mask, _)| a & mask == *net)
            .map(|e| e.2)
    }

    /// IPv6 variant of [`PrefixSet::longest_match`].
    #[inline]
    pub fn longest_match_v6(&self, ip: Ipv6Addr) -> Option<u8> {
        let a = u128::from(ip);
        self.v6
            .iter()
            .find(|(net, mask, _)| a & mask == *net)
            .map(|e| e.2)
    }

    /// True if some prefix contains `ip`.
    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.longest_match(ip).is_some()
    }

    /// True if the set holds at least one IPv6 prefix.
    pub fn has_v6(&self) -> bool {
        !self.v6.is_empty()
    }

    /// True if the set is empty.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// All prefixes, longest first within each family (v4 then v6).
    pub fn iter(&self) -> impl Iterator<Item = IpNet> + '_ {
        let v4 = self
            .v4
            .iter()
            .filter_map(|(n, _, l)| Ipv4Net::new(Ipv4Addr::from(*n), *l).ok().map(IpNet::V4));
        let v6 = self
            .v6
            .iter()
            .filter_map(|(n, _, l)| Ipv6Net::new(Ipv6Addr::from(*n), *l).ok().map(IpNet::V6));
        v4.chain(v6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parse_and_display() {
        let m: MacAddr = "02:00:00:00:00:1a".parse().unwrap();
        assert_eq!(m.to_string(), "02:00:00:00:00:1a");
        assert!("02:00:00:00:00".parse::<MacAddr>().is_err());
        assert!("02:00:00:00:00:00:00".parse::<MacAddr>().is_err());
        assert!("zz:00:00:00:00:00".parse::<MacAddr>().is_err());
        assert!("".parse::<MacAddr>().is_err());
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(!m.is_multicast());
        assert_eq!(MacAddr::vrrp_v4(33).to_string(), "00:00:5e:00:01:21");
    }

    #[test]
    fn longest_prefix_wins() {
        let mut s = PrefixSet::new();
        s.insert(parse_ip_or_cidr("10.0.0.0/8").unwrap());
        s.insert(parse_ip_or_cidr("10.0.9.0/24").unwrap());
        s.insert(parse_ip_or_cidr("10.0.9.7").unwrap());
        s.insert(parse_ip_or_cidr("fd00::/64").unwrap());
        assert_eq!(s.longest_match("10.0.9.7".parse().unwrap()), Some(32));
        assert_eq!(s.longest_match("10.0.9.8".parse().unwrap()), Some(24));
        assert_eq!(s.longest_match("10.1.0.1".parse().unwrap()), Some(8));
        assert_eq!(s.longest_match("11.0.0.1".parse().unwrap()), None);
        assert_eq!(s.longest_match("fd00::5".parse().unwrap()), Some(64));
        assert_eq!(s.longest_match("fd01::5".parse().unwrap()), None);
    }

    #[test]
    fn zero_prefix_matches_everything_of_its_family() {
        let mut s = PrefixSet::new();
        s.insert(parse_ip_or_cidr("0.0.0.0/0").unwrap());
        assert!(s.contains("203.0.113.9".parse().unwrap()));
        assert!(!s.contains("fd00::1".parse().unwrap()));
    }

    #[test]
    fn bad_prefixes_are_errors() {
        assert!(parse_ip_or_cidr("10.0.0.300/24").is_err());
        assert!(parse_ip_or_cidr("10.0.0.0/33").is_err());
        assert!(parse_ip_or_cidr("nonsense").is_err());
    }
}
