//! The switch state of the cost-curve benchmarks, at one of three sizes: shared by the
//! pipeline benchmark (`benches/pipeline.rs`) and the state-at-scale benchmark
//! (`tests/reload_scale.rs`), so that the ns/frame and the RSS are of the same state.
//!
//! At every size: ports in VLANs of 16 (VLAN 10, 11, ...), each with a MAC, a fixed IPv4
//! and a fixed IPv6 address, every 16th port with an allowed-address-pair (own MAC, a /24);
//! A/P VIP groups with 2 candidates (neighbours in one VLAN), one IPv4 address in
//! 10.128.0.0/10 and one IPv6 address in fd80::/64, 1 in 10 with an initial `owner`; 8 A/A
//! groups with 3 owners; learned MACs spread over all ports. `fdb_size` is twice the
//! learned MACs, `fdb_port_limit` the learned MACs.

#![allow(dead_code)]

use std::net::{Ipv4Addr, Ipv6Addr};

use vip_table::{MacAddr, PortId, Timestamp};
use vswitch::control::Switch;
use vswitch::fdb::{Learn, LearnOp};

/// Ports per VLAN.
pub const PORTS_PER_VLAN: usize = 16;
/// Active-active groups (at every size).
pub const AA_GROUPS: usize = 8;

/// One size of the cost curve: (ports, A/P VIP groups, learned MACs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scale {
    /// Label used in benchmark ids and in the data files.
    pub label: &'static str,
    /// Ports.
    pub ports: usize,
    /// Active-passive VIP groups.
    pub groups: usize,
    /// Learned MACs.
    pub macs: usize,
}

/// The three sizes of issue 11.
pub const SCALES: [Scale; 3] = [
    Scale {
        label: "16p-100g-1k",
        ports: 16,
        groups: 100,
        macs: 1_000,
    },
    Scale {
        label: "256p-10kg-64k",
        ports: 256,
        groups: 10_000,
        macs: 65_536,
    },
    Scale {
        label: "1024p-100kg-1M",
        ports: 1024,
        groups: 100_000,
        macs: 1_048_576,
    },
];

/// The sizes named in `VSWITCH_SCALES` (comma-separated labels or `small`, `medium`,
/// `large`), all three when it is unset or empty.
pub fn selected_scales() -> Vec<Scale> {
    let want = std::env::var("VSWITCH_SCALES").unwrap_or_default();
    if want.trim().is_empty() {
        return SCALES.to_vec();
    }
    want.split(',')
        .filter_map(|w| match w.trim() {
            "small" => Some(SCALES[0]),
            "medium" => Some(SCALES[1]),
            "large" => Some(SCALES[2]),
            l => SCALES.iter().copied().find(|s| s.label == l),
        })
        .collect()
}

impl Scale {
    /// VLANs.
    pub fn vlans(&self) -> usize {
        self.ports.div_ceil(PORTS_PER_VLAN)
    }
    /// The VLAN index the benchmark's frames use (the third VLAN, or the last one).
    pub fn case_vlan(&self) -> usize {
        2.min(self.vlans() - 1)
    }
    /// A/P groups' candidates: neighbours within one VLAN.
    pub fn ap_candidates(&self, k: usize) -> [usize; 2] {
        let v = k % self.vlans();
        let j = (k / self.vlans()) % PORTS_PER_VLAN;
        [
            v * PORTS_PER_VLAN + j,
            v * PORTS_PER_VLAN + (j + 1) % PORTS_PER_VLAN,
        ]
    }
    /// The three candidates (and owners) of A/A group `k`: ports 8..=10 of VLAN `k`.
    pub fn aa_candidates(&self, k: usize) -> [usize; 3] {
        let b = (k % self.vlans()) * PORTS_PER_VLAN + 8;
        [b, b + 1, b + 2]
    }
    /// The port learned MAC `n` lives behind.
    pub fn learned_port(&self, n: usize) -> usize {
        n % self.ports
    }

    /// The configuration file.
    pub fn config_toml(&self) -> String {
        self.config_toml_in("/var/lib/vswitch", "tap")
    }

    /// The configuration file with its `state_dir` and port binding kind (`tap` or
    /// `netdev`; netdev names are of interfaces that do not exist: the ports stay down).
    pub fn config_toml_in(&self, state_dir: &str, binding: &str) -> String {
        use std::fmt::Write;
        let mut s = String::with_capacity(200 * (self.ports + self.groups) + 4096);
        let _ = writeln!(
            s,
            "[switch]\nmac_aging_secs = 300\nfdb_size = {}\nfdb_port_limit = {}\nstate_dir = {state_dir:?}\n",
            self.macs * 2,
            self.macs
        );
        for i in 0..self.ports {
            let _ = writeln!(
                s,
                "[[port]]\nname = \"p{i}\"\n{binding} = \"vswx{i}\"\nmac = \"{}\"\nvlan = {}\n\
                 ips = [\"{}/16\", \"{}/64\"]",
                port_mac(i),
                vlan_of(i),
                port_ip4(i),
                port_ip6(i)
            );
            if has_pair(i) {
                let _ = writeln!(
                    s,
                    "allowed_address_pairs = [{{ ip = \"{}/24\", mac = \"{}\" }}]",
                    pair_net(i),
                    pair_mac(i)
                );
            }
            s.push('\n');
        }
        for k in 0..self.groups {
            let [a, b] = self.ap_candidates(k);
            let _ = writeln!(
                s,
                "[[vip]]\nname = \"ap{k}\"\nmode = \"active-passive\"\n\
                 addresses = [\"{}\", \"{}\"]\ncandidates = [\"p{a}\", \"p{b}\"]",
                ap_ip4(k),
                ap_ip6(k)
            );
            if ap_owned(k) {
                let _ = writeln!(s, "owner = \"p{a}\"");
            }
            s.push('\n');
        }
        for k in 0..AA_GROUPS {
            let [a, b, c] = self.aa_candidates(k);
            let _ = writeln!(
                s,
                "[[vip]]\nname = \"aa{k}\"\nmode = \"active-active\"\n\
                 addresses = [\"{}\", \"{}\"]\ncandidates = [\"p{a}\", \"p{b}\", \"p{c}\"]\n\
                 owners = [\"p{a}\", \"p{b}\", \"p{c}\"]\n",
                aa_ip4(k),
                aa_ip6(k)
            );
        }
        s
    }

    /// Learn the MACs (and the address-pair MACs, which have talked before) at `t0`.
    pub fn learn_all(&self, sw: &Switch, t0: Timestamp) {
        let fdb = sw.fdb();
        for n in 0..self.macs {
            let p = self.learned_port(n);
            fdb.learn(
                &Learn {
                    vlan: vlan_of(p),
                    mac: learned_mac(n),
                    port: PortId(p as u32),
                    op: LearnOp::Insert,
                },
                t0,
            );
        }
        for i in (0..self.ports).filter(|&i| has_pair(i)) {
            fdb.learn(
                &Learn {
                    vlan: vlan_of(i),
                    mac: pair_mac(i),
                    port: PortId(i as u32),
                    op: LearnOp::Insert,
                },
                t0,
            );
        }
    }

    /// MACs [`Scale::learn_all`] learns.
    pub fn learned_total(&self) -> usize {
        self.macs + (0..self.ports).filter(|&i| has_pair(i)).count()
    }
}

pub fn vlan_of(i: usize) -> u16 {
    10 + (i / PORTS_PER_VLAN) as u16
}
pub fn port_mac(i: usize) -> MacAddr {
    MacAddr([0x02, 0x00, 0x00, 0x00, (i >> 8) as u8, i as u8])
}
pub fn port_ip4(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 1, 0, 0)) + i as u32 + 1)
}
pub fn port_ip6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 1, i as u16 + 1)
}
pub fn has_pair(i: usize) -> bool {
    i % PORTS_PER_VLAN == 0
}
pub fn pair_mac(i: usize) -> MacAddr {
    MacAddr([0x02, 0xaa, 0x00, 0x00, (i >> 8) as u8, i as u8])
}
pub fn pair_net(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 200 + (i >> 8) as u8, i as u8, 0)
}
pub fn ap_owned(k: usize) -> bool {
    k % 10 == 0
}
/// 10.128.0.1 onwards (100,000 groups end in 10.129.134.161).
pub fn ap_ip4(k: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 0)) + k as u32 + 1)
}
pub fn ap_ip6(k: usize) -> Ipv6Addr {
    let n = k as u32 + 1;
    Ipv6Addr::new(0xfd80, 0, 0, 0, 0, 0, (n >> 16) as u16, n as u16)
}
pub fn aa_ip4(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 127, 0, k as u8 + 1)
}
pub fn aa_ip6(k: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfd81, 0, 0, 0, 0, 0, 0, k as u16 + 1)
}
pub fn learned_mac(n: usize) -> MacAddr {
    MacAddr([0x02, 0x10, 0, (n >> 16) as u8, (n >> 8) as u8, n as u8])
}
