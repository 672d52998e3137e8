//! Port policy compiled from configuration: which MACs a port may send from, which IPs
//! each of those MACs may use, and which destination IPs the port may receive.
//!
//! Contract (SEMANTICS.md §3–4):
//! - allowed MACs = the port MAC ∪ allowed-address-pair MACs ∪ VRRP virtual MACs of VIP
//!   groups the port is a candidate for;
//! - allowed IPs for MAC `m` = fixed IPs (for the port MAC) ∪ address-pair prefixes whose
//!   MAC is `m`. VIP addresses of groups the port is a candidate for are allowed for every
//!   allowed MAC, but live in the [`crate::VipTable`], not here, so that ten thousand VIP
//!   groups do not get copied into every port;
//! - the destination check admits fixed IPs ∪ address-pair prefixes (for any MAC); owned
//!   VIPs are again checked against the [`crate::VipTable`].
//!
//! A `/0` pair opens every IP of its family for that MAC; it never opens MACs.

use std::net::IpAddr;

use crate::addr::{IpNet, MacAddr, PrefixSet};

/// Index of a port in the switch's port table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PortId(pub u32);

impl PortId {
    /// The index as `usize`, for slices.
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl std::fmt::Display for PortId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The compiled source/destination policy of one port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortPolicy {
    /// Enforce the source checks (MAC, IP, ARP, ND, RA guard, DHCP guard).
    pub port_security: bool,
    /// Enforce the destination check on unicast IP delivered to this port.
    pub dest_check: bool,
    /// The port may send DHCP server replies (it is a trusted DHCP server).
    pub dhcp_server: bool,
    /// The port's own MAC.
    pub mac: MacAddr,
    /// Allowed source MACs with the prefixes each may use. The port MAC is first.
    by_mac: Vec<(MacAddr, PrefixSet)>,
    /// Every prefix of every MAC: what the destination check admits.
    receive: PrefixSet,
}

impl PortPolicy {
    /// A policy with only the port MAC allowed and no IPs yet.
    pub fn new(mac: MacAddr) -> Self {
        PortPolicy {
            port_security: true,
            dest_check: true,
            dhcp_server: false,
            mac,
            by_mac: vec![(mac, PrefixSet::new())],
            receive: PrefixSet::new(),
        }
    }

    /// Allow `mac` as a source MAC (with no IPs of its own).
    pub fn allow_mac(&mut self, mac: MacAddr) {
        if !self.by_mac.iter().any(|(m, _)| *m == mac) {
            self.by_mac.push((mac, PrefixSet::new()));
        }
    }

    /// Allow `mac` to send from (and the port to receive) addresses in `net`.
    pub fn allow(&mut self, mac: MacAddr, net: IpNet) {
        self.allow_mac(mac);
        if let Some((_, set)) = self.by_mac.iter_mut().find(|(m, _)| *m == mac) {
            set.insert(net);
        }
        self.receive.insert(net);
    }

    /// Is `mac` an allowed source MAC?
    #[inline]
    pub fn mac_allowed(&self, mac: MacAddr) -> bool {
        self.by_mac.iter().any(|(m, _)| *m == mac)
    }

    /// May `mac` send from `ip` (VIP candidacy not included)?
    #[inline]
    pub fn ip_allowed(&self, mac: MacAddr, ip: IpAddr) -> bool {
        self.by_mac
            .iter()
            .find(|(m, _)| *m == mac)
            .is_some_and(|(_, set)| set.contains(ip))
    }

    /// Does the destination check admit `ip` (owned VIPs not included)?
    #[inline]
    pub fn receives(&self, ip: IpAddr) -> bool {
        self.receive.contains(ip)
    }

    /// True if any allowed prefix is IPv6 (link-local sources are then allowed).
    pub fn has_ipv6(&self) -> bool {
        self.receive.has_v6()
    }

    /// The allowed MACs, port MAC first.
    pub fn allowed_macs(&self) -> impl Iterator<Item = MacAddr> + '_ {
        self.by_mac.iter().map(|(m, _)| *m)
    }

    /// The longest prefix that lets `mac` send from `ip` (what [`PortPolicy::ip_allowed`]
    /// found), to name it in a trace.
    pub fn source_prefix(&self, mac: MacAddr, ip: IpAddr) -> Option<IpNet> {
        self.prefixes_for(mac)
            .filter(|n| n.contains(&ip))
            .max_by_key(IpNet::prefix_len)
    }

    /// The longest prefix that lets the port receive `ip` (what
    /// [`PortPolicy::receives`] found), to name it in a trace.
    pub fn receive_prefix(&self, ip: IpAddr) -> Option<IpNet> {
        self.receive
            .iter()
            .filter(|n| n.contains(&ip))
            .max_by_key(IpNet::prefix_len)
    }

    /// The prefixes allowed for `mac`.
    pub fn prefixes_for(&self, mac: MacAddr) -> impl Iterator<Item = IpNet> + '_ {
        self.by_mac
            .iter()
            .filter(move |(m, _)| *m == mac)
            .flat_map(|(_, s)| s.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::parse_ip_or_cidr;

    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }

    #[test]
    fn pair_ips_belong_to_their_mac_only() {
        let port_mac = mac("02:00:00:00:00:11");
        let vmac = mac("00:00:5e:00:01:33");
        let mut p = PortPolicy::new(port_mac);
        p.allow(port_mac, parse_ip_or_cidr("10.0.0.11").unwrap());
        p.allow(vmac, parse_ip_or_cidr("10.0.0.50").unwrap());
        assert!(p.mac_allowed(vmac));
        assert!(p.ip_allowed(vmac, "10.0.0.50".parse().unwrap()));
        assert!(!p.ip_allowed(vmac, "10.0.0.11".parse().unwrap()));
        assert!(p.ip_allowed(port_mac, "10.0.0.11".parse().unwrap()));
        assert!(!p.ip_allowed(port_mac, "10.0.0.12".parse().unwrap()));
        assert!(!p.mac_allowed(mac("02:00:00:00:00:99")));
        assert!(p.receives("10.0.0.50".parse().unwrap()));
        assert!(!p.receives("10.0.1.1".parse().unwrap()));
    }

    #[test]
    fn zero_pair_opens_ips_not_macs() {
        let port_mac = mac("02:00:00:00:00:11");
        let mut p = PortPolicy::new(port_mac);
        p.allow(port_mac, parse_ip_or_cidr("0.0.0.0/0").unwrap());
        assert!(p.ip_allowed(port_mac, "198.51.100.7".parse().unwrap()));
        assert!(!p.mac_allowed(mac("02:00:00:00:00:12")));
    }
}
