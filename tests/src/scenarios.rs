//! The pcap-golden scenarios, defined as code so that the committed captures can be
//! regenerated (`cargo run -p vswitch-tests --bin gen-scenarios`) and checked for drift.
//!
//! Each scenario writes `tests/scenarios/<name>/{config.toml,<port>.pcap,events.txt}`; the
//! golden transcript `expected.txt` is produced by replaying them (see [`crate::replay`]).

use std::io;
use std::path::Path;

use crate::build::*;
use crate::pcap::{self, Record};

/// Base time of generated captures (2023-11-14), so they look like real captures.
pub const BASE_SECS: u64 = 1_700_000_000;

/// One scenario.
pub struct Scenario {
    /// Directory name.
    pub name: &'static str,
    /// What it shows (written at the top of config.toml).
    pub about: &'static str,
    /// Switch configuration (TOML).
    pub config: String,
    /// Frames: (ingress port, seconds since start, bytes).
    pub frames: Vec<(&'static str, f64, Vec<u8>)>,
    /// Control events: (seconds since start, event words).
    pub events: Vec<(f64, &'static str)>,
}

impl Scenario {
    fn new(name: &'static str, about: &'static str, config: String) -> Self {
        Scenario {
            name,
            about,
            config,
            frames: Vec::new(),
            events: Vec::new(),
        }
    }
    /// Add a frame arriving on `port` at `t` seconds.
    pub fn at(&mut self, t: f64, port: &'static str, frame: Vec<u8>) -> &mut Self {
        self.frames.push((port, t, frame));
        self
    }
    /// Add a control event at `t` seconds.
    pub fn event(&mut self, t: f64, ev: &'static str) -> &mut Self {
        self.events.push((t, ev));
        self
    }

    /// The files of the scenario: (file name, bytes).
    pub fn files(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut cfg = String::new();
        for l in self.about.lines() {
            cfg.push_str("# ");
            cfg.push_str(l.trim());
            cfg.push('\n');
        }
        cfg.push('\n');
        cfg.push_str(&self.config);
        out.push(("config.toml".to_string(), cfg.into_bytes()));
        let mut ports: Vec<&str> = self.frames.iter().map(|f| f.0).collect();
        ports.sort();
        ports.dedup();
        for p in ports {
            let recs: Vec<Record> = self
                .frames
                .iter()
                .filter(|f| f.0 == p)
                .map(|f| Record {
                    ts_ns: BASE_SECS * 1_000_000_000 + (f.1 * 1e6).round() as u64 * 1000,
                    data: f.2.clone(),
                })
                .collect();
            out.push((format!("{p}.pcap"), pcap::to_bytes(&recs)));
        }
        if !self.events.is_empty() {
            let mut ev = String::from("# seconds since the first frame, then the event\n");
            for (t, e) in &self.events {
                ev.push_str(&format!("{t} {e}\n"));
            }
            out.push(("events.txt".to_string(), ev.into_bytes()));
        }
        out
    }

    /// Write the scenario's files under `root/<name>/`.
    pub fn write(&self, root: &Path) -> io::Result<()> {
        let dir = root.join(self.name);
        std::fs::create_dir_all(&dir)?;
        for (name, bytes) in self.files() {
            std::fs::write(dir.join(name), bytes)?;
        }
        Ok(())
    }
}

/// MAC of standard VM `n`.
pub fn vm(n: u8) -> vip_table::MacAddr {
    vip_table::MacAddr([0x02, 0, 0, 0, 0, n])
}

/// A port block for standard VM `n`: 10.0.0.n/24, fd00::n/64, MAC 02:00:00:00:00:0n.
pub fn port_block(n: u8, extra: &str) -> String {
    format!(
        "[[port]]\nname = \"vm{n}\"\ntap = \"tap-vm{n}\"\nmac = \"02:00:00:00:00:{n:02x}\"\nips = [\"10.0.0.{n}/24\", \"fd00::{n}/64\"]\n{extra}\n"
    )
}

/// Three standard VMs plus `tail` (e.g. VIP blocks).
pub fn three_vms(tail: &str) -> String {
    format!(
        "{}{}{}{}",
        port_block(1, ""),
        port_block(2, ""),
        port_block(3, ""),
        tail
    )
}

/// The standard active-passive VIP: 10.0.0.100 + fd00::100, candidates vm1 and vm2.
pub const VIP_AP: &str = "[[vip]]\nname = \"web\"\naddresses = [\"10.0.0.100\", \"fd00::100\"]\nmode = \"active-passive\"\ncandidates = [\"vm1\", \"vm2\"]\n";

/// Every scenario.
pub fn all() -> Vec<Scenario> {
    let mut v = Vec::new();
    let bc = vip_table::MacAddr::BROADCAST;

    let mut s = Scenario::new(
        "l2-learning-flooding-aging",
        "L2 basics: unknown unicast floods, replies are learned and forwarded to one port,\n\
         broadcast floods to all but the ingress, and a learned MAC ages out after 300 s.\n\
         vm3 uses a second, learned MAC via an allowed-address-pair so that aging is visible.",
        format!(
            "{}{}{}",
            port_block(1, ""),
            port_block(2, ""),
            port_block(
                3,
                "allowed_address_pairs = [{ ip = \"10.0.0.33\", mac = \"02:00:00:00:00:33\" }]"
            )
        ),
    );
    let m33 = mac("02:00:00:00:00:33");
    s.at(0.0, "vm1", arp_request(vm(1), "10.0.0.1", "10.0.0.33"))
        .at(0.001, "vm3", arp_reply(m33, "10.0.0.33", vm(1), "10.0.0.1"))
        .at(
            0.002,
            "vm1",
            udp4(vm(1), m33, "10.0.0.1", "10.0.0.33", 4000, 53, 20),
        )
        .at(
            0.003,
            "vm2",
            udp4(vm(2), m33, "10.0.0.2", "10.0.0.33", 4000, 53, 20),
        )
        .at(
            400.0,
            "vm1",
            udp4(vm(1), m33, "10.0.0.1", "10.0.0.33", 4000, 53, 20),
        )
        .at(
            400.1,
            "vm2",
            udp4(vm(2), bc, "10.0.0.2", "10.0.0.255", 5000, 5000, 8),
        );
    v.push(s);

    let mut s = Scenario::new(
        "mac-spoof",
        "A VM sends from a MAC that is not its own: dropped as mac_spoof, never learned.",
        three_vms(""),
    );
    s.at(
        0.0,
        "vm3",
        udp4(
            mac("02:00:00:00:00:99"),
            vm(1),
            "10.0.0.3",
            "10.0.0.1",
            1,
            2,
            10,
        ),
    )
    .at(
        0.1,
        "vm3",
        udp4(vm(1), vm(2), "10.0.0.1", "10.0.0.2", 1, 2, 10),
    )
    .at(
        0.2,
        "vm3",
        udp4(vm(3), vm(1), "10.0.0.3", "10.0.0.1", 1, 2, 10),
    );
    v.push(s);

    let mut s = Scenario::new(
        "vip-garp-request-move",
        "Active-passive VIP: vm1 claims with keepalived's GARP (5 in a burst), vm3 (client) sends\n\
         to the VIP; vm2 claims with one GARP: ownership moves at once, the switch announces the\n\
         move to the non-candidate vm3, and vm3's next frame (still to vm1's MAC: stale cache)\n\
         reaches vm2 with the destination MAC rewritten.",
        three_vms(VIP_AP),
    );
    for i in 0..5 {
        s.at(f64::from(i) * 0.001, "vm1", garp(vm(1), "10.0.0.100"));
    }
    s.at(
        1.0,
        "vm3",
        udp4(vm(3), vm(1), "10.0.0.3", "10.0.0.100", 7000, 80, 10),
    )
    .at(2.0, "vm2", garp(vm(2), "10.0.0.100"))
    .at(
        2.5,
        "vm3",
        udp4(vm(3), vm(1), "10.0.0.3", "10.0.0.100", 7000, 80, 10),
    );
    v.push(s);

    let mut s = Scenario::new(
        "vip-arp-and-ns-answered",
        "The switch answers ARP requests and neighbour solicitations for a VIP from non-candidates\n\
         from the live owner table; before any claim nobody owns it and the request floods;\n\
         requests from candidates flood as usual.",
        three_vms(VIP_AP),
    );
    s.at(0.0, "vm3", arp_request(vm(3), "10.0.0.3", "10.0.0.100"))
        .at(0.5, "vm1", garp(vm(1), "10.0.0.100"))
        .at(0.6, "vm1", unsolicited_na(vm(1), "fd00::100"))
        .at(1.0, "vm3", arp_request(vm(3), "10.0.0.3", "10.0.0.100"))
        .at(1.1, "vm3", ns(vm(3), "fd00::3", "fd00::100", Some(vm(3))))
        .at(1.2, "vm2", arp_request(vm(2), "10.0.0.2", "10.0.0.100"));
    v.push(s);

    l2_scenarios(&mut v);
    source_check_scenarios(&mut v);
    vip_scenarios(&mut v);
    discovery_scenarios(&mut v);
    v
}

/// A MAC that no port has.
fn foreign(last: u8) -> vip_table::MacAddr {
    vip_table::MacAddr([0x02, 0, 0, 0, 0, last])
}

/// Layer 2: VLANs, MTU, admin state, malformed input.
fn l2_scenarios(v: &mut Vec<Scenario>) {
    let bc = vip_table::MacAddr::BROADCAST;

    let mut s = Scenario::new(
        "vlan-isolation",
        "Access VLANs: vm1/vm2 untagged, vm3/vm4 in vlan 10, vm5/vm6 in vlan 20. Each broadcast\n\
         floods only inside its own VLAN; a unicast from vm3 to vm5's MAC is unknown in vlan 10\n\
         and floods to vm4 only (never crosses into vlan 20). A tagged frame arriving on an\n\
         access port (vlan 20 tag on vm3, vlan 10 tag on untagged vm1, even vm4's own vlan 10 tag)\n\
         is dropped and counted as `vlan`.",
        format!(
            "{}{}{}{}{}{}",
            port_block(1, ""),
            port_block(2, ""),
            port_block(3, "vlan = 10"),
            port_block(4, "vlan = 10"),
            port_block(5, "vlan = 20"),
            port_block(6, "vlan = 20"),
        ),
    );
    s.at(0.0, "vm1", arp_request(vm(1), "10.0.0.1", "10.0.0.2"))
        .at(0.1, "vm3", arp_request(vm(3), "10.0.0.3", "10.0.0.4"))
        .at(0.2, "vm5", arp_request(vm(5), "10.0.0.5", "10.0.0.6"))
        .at(
            0.3,
            "vm3",
            udp4(vm(3), bc, "10.0.0.3", "255.255.255.255", 5000, 5000, 8),
        )
        .at(0.4, "vm3", arp_reply(vm(3), "10.0.0.3", vm(5), "10.0.0.5"))
        .at(
            0.5,
            "vm3",
            tagged(&udp4(vm(3), vm(5), "10.0.0.3", "10.0.0.5", 1, 2, 10), 20),
        )
        .at(
            0.6,
            "vm1",
            tagged(&arp_request(vm(1), "10.0.0.1", "10.0.0.3"), 10),
        )
        .at(
            0.7,
            "vm4",
            tagged(&udp4(vm(4), vm(3), "10.0.0.4", "10.0.0.3", 1, 2, 10), 10),
        );
    v.push(s);

    let mut s = Scenario::new(
        "mtu",
        "Port MTU: vm2 has mtu = 1400, the others the default 1500. An IP packet of exactly the\n\
         MTU passes; one byte more is dropped as `mtu`, whether the ingress port (vm1 sending\n\
         1501, vm2 sending 1401) or the egress port (vm1 sending 1401 to vm2) is too small.\n\
         A broadcast too large for vm2 still floods to vm3, but not to vm2.",
        format!(
            "{}{}{}",
            port_block(1, ""),
            port_block(2, "mtu = 1400"),
            port_block(3, "")
        ),
    );
    // udp4 payload + 28 = IP length.
    s.at(
        0.0,
        "vm1",
        udp4(vm(1), vm(2), "10.0.0.1", "10.0.0.2", 1, 2, 1372),
    )
    .at(
        0.1,
        "vm1",
        udp4(vm(1), vm(2), "10.0.0.1", "10.0.0.2", 1, 2, 1373),
    )
    .at(
        0.2,
        "vm1",
        udp4(vm(1), vm(3), "10.0.0.1", "10.0.0.3", 1, 2, 1472),
    )
    .at(
        0.3,
        "vm1",
        udp4(vm(1), vm(3), "10.0.0.1", "10.0.0.3", 1, 2, 1473),
    )
    .at(
        0.4,
        "vm2",
        udp4(vm(2), vm(1), "10.0.0.2", "10.0.0.1", 1, 2, 1373),
    )
    .at(
        0.5,
        "vm2",
        udp4(vm(2), vm(1), "10.0.0.2", "10.0.0.1", 1, 2, 1372),
    )
    // A 1436-byte IP broadcast from vm1 floods to vm3 but not to vm2 (MTU 1400); a
    // 1400-byte one reaches both.
    .at(
        0.6,
        "vm1",
        udp4(vm(1), bc, "10.0.0.1", "10.0.0.255", 9, 9, 1408),
    )
    .at(
        0.7,
        "vm1",
        udp4(vm(1), bc, "10.0.0.1", "10.0.0.255", 9, 9, 1372),
    );
    v.push(s);

    let mut s = Scenario::new(
        "admin-down",
        "`admin-down vm2` (events.txt): frames from vm2 are dropped as `port_down`, vm2 leaves\n\
         vm1's flood set and unicast to it is dropped `port_down`; `admin-up vm2` restores both\n\
         directions.",
        three_vms(""),
    );
    s.at(
        0.0,
        "vm2",
        udp4(vm(2), vm(1), "10.0.0.2", "10.0.0.1", 1, 2, 10),
    )
    .event(1.0, "admin-down vm2")
    .at(
        2.0,
        "vm2",
        udp4(vm(2), vm(1), "10.0.0.2", "10.0.0.1", 1, 2, 10),
    )
    .at(2.1, "vm1", arp_request(vm(1), "10.0.0.1", "10.0.0.3"))
    .at(
        2.2,
        "vm1",
        udp4(vm(1), vm(2), "10.0.0.1", "10.0.0.2", 1, 2, 10),
    )
    .event(3.0, "admin-up vm2")
    .at(
        4.0,
        "vm2",
        udp4(vm(2), vm(1), "10.0.0.2", "10.0.0.1", 1, 2, 10),
    )
    .at(4.1, "vm1", arp_request(vm(1), "10.0.0.1", "10.0.0.3"))
    .at(
        4.2,
        "vm1",
        udp4(vm(1), vm(2), "10.0.0.1", "10.0.0.2", 1, 2, 10),
    );
    v.push(s);

    let udp = udp4(vm(1), vm(2), "10.0.0.1", "10.0.0.2", 1, 2, 10);
    let udp6_ = udp6(vm(1), vm(2), "fd00::1", "fd00::2", 1, 2, 10);
    let mut vlan_only = udp[..12].to_vec();
    vlan_only.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
    // IPv4 total length 24 = IP header + half a UDP header, frame cut to match.
    let udp_cut = patched(&udp[..14 + 24], 16, &24u16.to_be_bytes());
    // An NS with no room for its target.
    let ns_short = ipv6_raw(
        vm(1),
        bc,
        ip6("fd00::1"),
        ip6("ff02::1"),
        58,
        255,
        &[135, 0, 0, 0, 0, 0, 0, 0],
    );
    let mut s = Scenario::new(
        "malformed",
        "Malformed input from vm1, each dropped as `malformed (<why>)` and never a panic: an ARP\n\
         cut to 26 bytes, IPv4 IHL < 5, IPv4 total length larger than the frame, an IPv6 payload\n\
         length larger than the frame, a VLAN tag with nothing after it, a 10-byte runt, a UDP\n\
         header cut short, a multicast source MAC and an NS without its target. vm1's last,\n\
         well-formed frame is forwarded as usual.",
        three_vms(""),
    );
    s.at(
        0.0,
        "vm1",
        arp_request(vm(1), "10.0.0.1", "10.0.0.2")[..40].to_vec(),
    )
    .at(0.1, "vm1", patched(&udp, 14, &[0x44]))
    .at(0.2, "vm1", patched(&udp, 16, &500u16.to_be_bytes()))
    .at(0.3, "vm1", patched(&udp6_, 18, &500u16.to_be_bytes()))
    .at(0.4, "vm1", vlan_only)
    .at(0.5, "vm1", udp[..10].to_vec())
    .at(0.6, "vm1", udp_cut)
    .at(0.7, "vm1", patched(&udp, 6, &[0x03]))
    .at(0.8, "vm1", ns_short)
    .at(0.9, "vm1", udp.clone());
    v.push(s);
}

/// SEMANTICS §3–4: source and destination checks.
fn source_check_scenarios(v: &mut Vec<Scenario>) {
    let bc = vip_table::MacAddr::BROADCAST;

    let mut s = Scenario::new(
        "ip-spoof",
        "IP source check: vm3 may send only from its fixed IPs (and IPv6 link-local). From vm1's\n\
         IPv4 or IPv6 address, from the VIP (vm3 is not a candidate) or from :: in a non-ICMPv6\n\
         packet it is dropped `ip_spoof`. A candidate (vm1) may send from the VIP even when it\n\
         does not own it.",
        three_vms(VIP_AP),
    );
    s.at(
        0.0,
        "vm3",
        udp4(vm(3), vm(2), "10.0.0.1", "10.0.0.2", 1, 2, 10),
    )
    .at(
        0.1,
        "vm3",
        udp4(vm(3), vm(1), "10.0.0.100", "10.0.0.1", 1, 2, 10),
    )
    .at(
        0.2,
        "vm3",
        udp6(vm(3), vm(2), "fd00::1", "fd00::2", 1, 2, 10),
    )
    .at(0.3, "vm3", udp6(vm(3), vm(1), "::", "fd00::1", 1, 2, 10))
    .at(
        0.4,
        "vm3",
        udp4(vm(3), vm(1), "10.0.0.3", "10.0.0.1", 1, 2, 10),
    )
    .at(
        0.5,
        "vm3",
        udp6(vm(3), vm(1), "fd00::3", "fd00::1", 1, 2, 10),
    )
    .at(
        0.6,
        "vm3",
        udp6(vm(3), vm(1), "fe80::3", "fe80::1", 1, 2, 10),
    )
    .at(
        0.7,
        "vm1",
        udp4(vm(1), vm(3), "10.0.0.100", "10.0.0.3", 1, 2, 10),
    );
    v.push(s);

    let mut s = Scenario::new(
        "arp-sha-spoof",
        "ARP sender-hardware check: an ARP request or reply whose sha is not the Ethernet source\n\
         is dropped `arp_spoof` even when spa is the sender's own IP; a candidate's gratuitous\n\
         ARP for the VIP with a foreign sha is dropped too and claims nothing. The honest ARP\n\
         request at the end floods.",
        three_vms(VIP_AP),
    );
    let vip4 = "10.0.0.100";
    s.at(
        0.0,
        "vm3",
        arp_raw(
            vm(3),
            bc,
            1,
            vm(1),
            "10.0.0.3",
            vip_table::MacAddr::ZERO,
            "10.0.0.2",
        ),
    )
    .at(
        0.1,
        "vm3",
        arp_raw(vm(3), vm(2), 2, vm(1), "10.0.0.3", vm(2), "10.0.0.2"),
    )
    .at(
        0.2,
        "vm3",
        arp_raw(
            vm(3),
            bc,
            1,
            foreign(0x99),
            "10.0.0.3",
            vip_table::MacAddr::ZERO,
            "10.0.0.2",
        ),
    )
    .at(0.3, "vm1", arp_raw(vm(1), bc, 1, vm(2), vip4, bc, vip4))
    .at(0.4, "vm3", arp_request(vm(3), "10.0.0.3", "10.0.0.2"));
    v.push(s);

    let mut s = Scenario::new(
        "arp-spa-spoof",
        "ARP sender-IP check: vm3 may not ARP (request, reply or gratuitous) with another VM's\n\
         IP or with the VIP (it is not a candidate) as spa: `arp_spoof`. An ARP probe from\n\
         0.0.0.0 and a request from its own IP flood.",
        three_vms(VIP_AP),
    );
    s.at(0.0, "vm3", arp_request(vm(3), "10.0.0.1", "10.0.0.2"))
        .at(0.1, "vm3", arp_reply(vm(3), "10.0.0.2", vm(1), "10.0.0.1"))
        .at(0.2, "vm3", garp(vm(3), "10.0.0.1"))
        .at(0.3, "vm3", arp_request(vm(3), "10.0.0.100", "10.0.0.1"))
        .at(0.4, "vm3", arp_request(vm(3), "0.0.0.0", "10.0.0.50"))
        .at(0.5, "vm3", arp_request(vm(3), "10.0.0.3", "10.0.0.1"));
    v.push(s);

    let mut s = Scenario::new(
        "aap-by-cidr",
        "Allowed-address-pairs by prefix: vm3 has pairs 10.0.5.0/24 and fd00:5::/64 (port MAC).\n\
         It may send and ARP from any address inside them and nothing outside (`ip_spoof`); with\n\
         dest_check it receives unicast to addresses inside them and nothing outside.",
        format!(
            "{}{}{}",
            port_block(1, ""),
            port_block(2, ""),
            port_block(
                3,
                "allowed_address_pairs = [{ ip = \"10.0.5.0/24\" }, { ip = \"fd00:5::/64\" }]"
            )
        ),
    );
    s.at(
        0.0,
        "vm3",
        udp4(vm(3), vm(1), "10.0.5.77", "10.0.0.1", 1, 2, 10),
    )
    .at(
        0.1,
        "vm3",
        udp4(vm(3), vm(1), "10.0.6.1", "10.0.0.1", 1, 2, 10),
    )
    .at(
        0.2,
        "vm3",
        udp6(vm(3), vm(1), "fd00:5::7", "fd00::1", 1, 2, 10),
    )
    .at(
        0.3,
        "vm3",
        udp6(vm(3), vm(1), "fd00:6::7", "fd00::1", 1, 2, 10),
    )
    .at(0.4, "vm3", arp_request(vm(3), "10.0.5.9", "10.0.0.1"))
    .at(
        0.5,
        "vm1",
        udp4(vm(1), vm(3), "10.0.0.1", "10.0.5.77", 1, 2, 10),
    )
    .at(
        0.6,
        "vm1",
        udp4(vm(1), vm(3), "10.0.0.1", "10.0.6.1", 1, 2, 10),
    )
    .at(
        0.7,
        "vm1",
        udp6(vm(1), vm(3), "fd00::1", "fd00:5::7", 1, 2, 10),
    );
    v.push(s);

    let m50 = mac("02:00:00:00:00:50");
    let mut s = Scenario::new(
        "aap-by-mac",
        "Allowed-address-pair with its own MAC: vm3 has { ip = 10.0.0.50, mac = 02:00:00:00:00:50 }.\n\
         That MAC may send (and ARP) only from 10.0.0.50, and the port MAC may not use 10.0.0.50\n\
         (`ip_spoof` / `arp_spoof`); another unknown MAC is `mac_spoof`. The pair MAC is learned\n\
         on vm3 and unicast to it reaches vm3.",
        format!(
            "{}{}{}",
            port_block(1, ""),
            port_block(2, ""),
            port_block(3, "allowed_address_pairs = [{ ip = \"10.0.0.50\", mac = \"02:00:00:00:00:50\" }]")
        ),
    );
    s.at(
        0.0,
        "vm3",
        udp4(m50, vm(1), "10.0.0.50", "10.0.0.1", 1, 2, 10),
    )
    .at(
        0.1,
        "vm3",
        udp4(m50, vm(1), "10.0.0.3", "10.0.0.1", 1, 2, 10),
    )
    .at(
        0.2,
        "vm3",
        udp4(vm(3), vm(1), "10.0.0.50", "10.0.0.1", 1, 2, 10),
    )
    .at(0.3, "vm3", arp_request(m50, "10.0.0.50", "10.0.0.1"))
    .at(0.4, "vm3", arp_request(m50, "10.0.0.3", "10.0.0.1"))
    .at(
        0.5,
        "vm3",
        udp4(vm(3), vm(1), "10.0.0.3", "10.0.0.1", 1, 2, 10),
    )
    .at(
        0.6,
        "vm3",
        udp4(foreign(0x51), vm(1), "10.0.0.50", "10.0.0.1", 1, 2, 10),
    )
    .at(
        0.7,
        "vm1",
        udp4(vm(1), m50, "10.0.0.1", "10.0.0.50", 1, 2, 10),
    );
    v.push(s);

    let mut s = Scenario::new(
        "aap-zero-prefix-still-enforces-mac",
        "A 0.0.0.0/0 + ::/0 pair on vm3 opens every source IP (and every destination), but never\n\
         MACs or the ARP sha check: a foreign source MAC is `mac_spoof`, an ARP with sha != eth.src\n\
         is `arp_spoof`, and a GARP for the VIP (vm3 is no candidate) is still a `vip_hijack`.",
        format!(
            "{}{}{}{}",
            port_block(1, ""),
            port_block(2, ""),
            port_block(3, "allowed_address_pairs = [{ ip = \"0.0.0.0/0\" }, { ip = \"::/0\" }]"),
            VIP_AP
        ),
    );
    s.at(
        0.0,
        "vm3",
        udp4(vm(3), vm(1), "198.51.100.7", "10.0.0.1", 1, 2, 10),
    )
    .at(
        0.1,
        "vm3",
        udp6(vm(3), vm(1), "2001:db8::7", "fd00::1", 1, 2, 10),
    )
    .at(0.2, "vm3", arp_request(vm(3), "198.51.100.7", "10.0.0.1"))
    .at(
        0.3,
        "vm3",
        udp4(foreign(0x99), vm(1), "10.0.0.3", "10.0.0.1", 1, 2, 10),
    )
    .at(
        0.4,
        "vm3",
        arp_raw(
            vm(3),
            bc,
            1,
            foreign(0x99),
            "10.0.0.3",
            vip_table::MacAddr::ZERO,
            "10.0.0.1",
        ),
    )
    .at(
        0.5,
        "vm3",
        arp_raw(vm(3), vm(1), 2, vm(1), "198.51.100.7", vm(1), "10.0.0.1"),
    )
    .at(0.6, "vm3", garp(vm(3), "10.0.0.100"))
    .at(
        0.7,
        "vm1",
        udp4(vm(1), vm(3), "10.0.0.1", "203.0.113.9", 1, 2, 10),
    );
    v.push(s);

    let all_nodes = mac("33:33:00:00:00:01");
    let mut s = Scenario::new(
        "nd-spoof",
        "Neighbor Discovery checks on vm3: an NA whose target is not vm3's is `nd_spoof`, an NA\n\
         whose TLL is not eth.src is `nd_spoof`, an NS whose SLL is not eth.src is `nd_spoof`.\n\
         Honest ones pass: DAD NS from ::, NS with its own SLL, solicited NA for its own address,\n\
         NA for its link-local address, NA without a TLL option.",
        three_vms(""),
    );
    s.at(
        0.0,
        "vm3",
        na(
            vm(3),
            all_nodes,
            "fd00::3",
            "ff02::1",
            "fd00::1",
            Some(vm(3)),
            0x20,
        ),
    )
    .at(
        0.1,
        "vm3",
        na(
            vm(3),
            all_nodes,
            "fd00::3",
            "ff02::1",
            "fd00::3",
            Some(vm(1)),
            0x20,
        ),
    )
    .at(0.2, "vm3", ns(vm(3), "fd00::3", "fd00::1", Some(vm(1))))
    .at(0.3, "vm3", ns(vm(3), "::", "fd00::3", None))
    .at(0.4, "vm3", ns(vm(3), "fd00::3", "fd00::1", Some(vm(3))))
    .at(
        0.5,
        "vm3",
        na(
            vm(3),
            vm(1),
            "fd00::3",
            "fd00::1",
            "fd00::3",
            Some(vm(3)),
            0x60,
        ),
    )
    .at(
        0.6,
        "vm3",
        na(
            vm(3),
            all_nodes,
            "fe80::3",
            "ff02::1",
            "fe80::3",
            Some(vm(3)),
            0x20,
        ),
    )
    .at(
        0.7,
        "vm3",
        na(
            vm(3),
            all_nodes,
            "fd00::3",
            "ff02::1",
            "fd00::3",
            None,
            0x20,
        ),
    );
    v.push(s);

    let mut s = Scenario::new(
        "ra-guard",
        "RA guard: a router advertisement from VM port vm3 is dropped `ra_guard`; its router\n\
         solicitation floods. vm4 has port_security = false, so its RA floods.",
        format!(
            "{}{}{}{}",
            port_block(1, ""),
            port_block(2, ""),
            port_block(3, ""),
            port_block(4, "port_security = false")
        ),
    );
    s.at(0.0, "vm3", ra(vm(3), "fe80::3"))
        .at(0.1, "vm3", rs(vm(3), "fe80::3"))
        .at(0.2, "vm4", ra(vm(4), "fe80::4"));
    v.push(s);

    let mut s = Scenario::new(
        "dhcp-guard",
        "DHCP guard: DHCPv4 (udp 67->68) and DHCPv6 (udp 547->546) server replies from vm1 are\n\
         dropped `dhcp_guard`; vm2 has dhcp_server = true and its replies pass (unicast and\n\
         broadcast). The client vm3's DHCPDISCOVER from 0.0.0.0 floods; other traffic from\n\
         0.0.0.0 is `ip_spoof`.",
        format!(
            "{}{}{}",
            port_block(1, ""),
            port_block(2, "dhcp_server = true"),
            port_block(3, "")
        ),
    );
    s.at(0.0, "vm3", dhcp4_discover(vm(3)))
        .at(
            0.1,
            "vm1",
            dhcp4_offer(vm(1), vm(3), "10.0.0.1", "10.0.0.3"),
        )
        .at(
            0.2,
            "vm2",
            dhcp4_offer(vm(2), vm(3), "10.0.0.2", "10.0.0.3"),
        )
        .at(
            0.3,
            "vm2",
            udp4(vm(2), bc, "10.0.0.2", "255.255.255.255", 67, 68, 240),
        )
        .at(0.4, "vm1", dhcp6_reply(vm(1), vm(3), "fe80::1", "fe80::3"))
        .at(0.5, "vm2", dhcp6_reply(vm(2), vm(3), "fe80::2", "fe80::3"))
        .at(
            0.6,
            "vm3",
            udp4(vm(3), bc, "0.0.0.0", "255.255.255.255", 5000, 5000, 8),
        );
    v.push(s);

    let mut s = Scenario::new(
        "dest-check-on-off",
        "Destination check: unicast to 10.0.0.50 / fd00::50 sent to vm2's MAC is dropped\n\
         `dest_check` (vm2 may not have that IP); vm3 has dest_check = false and vm4\n\
         port_security = false, so they receive it. Unknown unicast floods only to ports that\n\
         admit the destination IP; multicast is not subject to the check.",
        format!(
            "{}{}{}{}",
            port_block(1, ""),
            port_block(2, ""),
            port_block(3, "dest_check = false"),
            port_block(4, "port_security = false")
        ),
    );
    s.at(
        0.0,
        "vm1",
        udp4(vm(1), vm(2), "10.0.0.1", "10.0.0.50", 1, 2, 10),
    )
    .at(
        0.1,
        "vm1",
        udp6(vm(1), vm(2), "fd00::1", "fd00::50", 1, 2, 10),
    )
    .at(
        0.2,
        "vm1",
        udp4(vm(1), vm(3), "10.0.0.1", "10.0.0.50", 1, 2, 10),
    )
    .at(
        0.3,
        "vm1",
        udp4(vm(1), vm(4), "10.0.0.1", "10.0.0.60", 1, 2, 10),
    )
    .at(
        0.4,
        "vm1",
        udp4(vm(1), foreign(0x77), "10.0.0.1", "10.0.0.77", 1, 2, 10),
    )
    .at(
        0.5,
        "vm1",
        udp4(vm(1), foreign(0x77), "10.0.0.1", "10.0.0.2", 1, 2, 10),
    )
    .at(
        0.6,
        "vm1",
        udp4(
            vm(1),
            mac("01:00:5e:01:01:01"),
            "10.0.0.1",
            "239.1.1.1",
            1,
            2,
            10,
        ),
    )
    .at(
        0.7,
        "vm1",
        udp4(vm(1), vm(2), "10.0.0.1", "10.0.0.2", 1, 2, 10),
    );
    v.push(s);
}

/// Four standard VMs plus `tail`.
fn four_vms(tail: &str) -> String {
    format!("{}{}", three_vms(""), port_block(4, "")) + tail
}

/// SEMANTICS §5: VIP claims, moves, steering, VRRP scoping.
fn vip_scenarios(v: &mut Vec<Scenario>) {
    let bc = vip_table::MacAddr::BROADCAST;
    let vip4 = "10.0.0.100";
    let vip6 = "fd00::100";

    let mut s = Scenario::new(
        "arp-reply-move",
        "Only announcements claim. A unicast ARP reply with spa = VIP from the standby vm2 (what\n\
         a node whose keepalived was killed, VIP still configured, sends when it answers the new\n\
         master's GARP) is delivered to vm3 but claims nothing: the owner stays vm1. The same\n\
         reply sent to broadcast (`arping -A`, a gratuitous reply) is a claim: ownership moves\n\
         to vm2 at once (epoch 2) and vm3's next frame to the VIP (to vm1's MAC) reaches vm2 with\n\
         the MAC rewritten. vm1 then claims back with an `arping -U` style GARP (tha =\n\
         00:00:00:00:00:00), which is a claim too.",
        three_vms(VIP_AP),
    );
    s.at(0.0, "vm1", garp(vm(1), vip4))
        .at(
            1.0,
            "vm3",
            udp4(vm(3), vm(1), "10.0.0.3", vip4, 7000, 80, 10),
        )
        .at(2.0, "vm2", arp_reply(vm(2), vip4, vm(3), "10.0.0.3"))
        .at(
            2.2,
            "vm3",
            udp4(vm(3), vm(1), "10.0.0.3", vip4, 7000, 80, 10),
        )
        .at(2.4, "vm2", arp_raw(vm(2), bc, 2, vm(2), vip4, bc, vip4))
        .at(
            2.5,
            "vm3",
            udp4(vm(3), vm(1), "10.0.0.3", vip4, 7000, 80, 10),
        )
        .at(3.0, "vm1", garp_zero_tha(vm(1), vip4))
        .at(
            3.5,
            "vm3",
            udp4(vm(3), vm(2), "10.0.0.3", vip4, 7000, 80, 10),
        );
    v.push(s);

    let mut s = Scenario::new(
        "unsolicited-na-move-ipv6",
        "IPv6-only VIP fd00::100: keepalived's unsolicited NA (from the VIP to ff02::1, Override,\n\
         TLL) from vm1 claims it; the switch answers vm3's NS with vm1's MAC. vm2's unsolicited\n\
         NA moves it; vm3's traffic to vm1's MAC is rewritten to vm2 and its next NS is answered\n\
         with vm2's MAC. The switch announces each move with an NA to vm3 only.",
        three_vms(
            "[[vip]]\nname = \"web6\"\naddresses = [\"fd00::100\"]\nmode = \"active-passive\"\ncandidates = [\"vm1\", \"vm2\"]\n",
        ),
    );
    s.at(0.0, "vm1", unsolicited_na(vm(1), vip6))
        .at(1.0, "vm3", ns(vm(3), "fd00::3", vip6, Some(vm(3))))
        .at(
            1.1,
            "vm3",
            udp6(vm(3), vm(1), "fd00::3", vip6, 7000, 80, 10),
        )
        .at(2.0, "vm2", unsolicited_na(vm(2), vip6))
        .at(
            2.5,
            "vm3",
            udp6(vm(3), vm(1), "fd00::3", vip6, 7000, 80, 10),
        )
        .at(3.0, "vm3", ns(vm(3), "fd00::3", vip6, Some(vm(3))));
    v.push(s);

    let mut s = Scenario::new(
        "vip-group-v4-v6-move-together",
        "The VIP group's addresses move together: vm1 claims with an IPv6 NA only, and traffic to\n\
         10.0.0.100 goes to vm1 too; vm2 claims with an IPv4 GARP only, and traffic to fd00::100\n\
         follows to vm2 (rewritten), NS and ARP for either address are answered with vm2's MAC,\n\
         and the switch announces both addresses (GARP + NA) to vm3 on each move.",
        three_vms(VIP_AP),
    );
    s.at(0.0, "vm1", unsolicited_na(vm(1), vip6))
        .at(
            0.5,
            "vm3",
            udp6(vm(3), vm(1), "fd00::3", vip6, 7000, 80, 10),
        )
        .at(
            0.6,
            "vm3",
            udp4(vm(3), vm(1), "10.0.0.3", vip4, 7000, 80, 10),
        )
        .at(1.0, "vm2", garp(vm(2), vip4))
        .at(
            1.5,
            "vm3",
            udp6(vm(3), vm(1), "fd00::3", vip6, 7000, 80, 10),
        )
        .at(1.6, "vm3", ns(vm(3), "fd00::3", vip6, Some(vm(3))))
        .at(1.7, "vm3", arp_request(vm(3), "10.0.0.3", vip4));
    v.push(s);

    let mut s = Scenario::new(
        "non-candidate-hijack",
        "vm3 is not a candidate of the VIP owned by vm1. Its GARP (both tha forms), ARP reply and\n\
         unsolicited NA for the VIP, and a GARP sent with vm1's MAC, are each dropped `vip_hijack`\n\
         with a HIJACK event naming port and MAC; the owner and epoch stay and nothing is\n\
         announced. The client vm4 still reaches vm1, and its ARP is answered with vm1's MAC.",
        four_vms(VIP_AP),
    );
    s.at(0.0, "vm1", garp(vm(1), vip4))
        .at(1.0, "vm3", garp(vm(3), vip4))
        .at(1.1, "vm3", garp_zero_tha(vm(3), vip4))
        .at(1.2, "vm3", arp_reply(vm(3), vip4, vm(4), "10.0.0.4"))
        .at(1.3, "vm3", unsolicited_na(vm(3), vip6))
        .at(1.4, "vm3", garp(vm(1), vip4))
        .at(
            2.0,
            "vm4",
            udp4(vm(4), vm(1), "10.0.0.4", vip4, 7000, 80, 10),
        )
        .at(2.1, "vm4", arp_request(vm(4), "10.0.0.4", vip4));
    v.push(s);

    let mut s = Scenario::new(
        "stale-dst-mac-steered",
        "After the VIP moves from vm1 to vm2, the client vm3 keeps sending to vm1's MAC (stale\n\
         ARP/ND cache): TCP, UDP over IPv6 and ICMP to the VIP all reach vm2 with eth.dst rewritten\n\
         to vm2's MAC, as does a frame to a MAC nobody has; traffic to vm1's own IP stays with vm1.",
        three_vms(VIP_AP),
    );
    s.at(0.0, "vm1", garp(vm(1), vip4))
        .at(
            1.0,
            "vm3",
            tcp4_syn(vm(3), vm(1), "10.0.0.3", vip4, 40000, 443),
        )
        .at(2.0, "vm2", garp(vm(2), vip4))
        .at(
            2.1,
            "vm3",
            tcp4_syn(vm(3), vm(1), "10.0.0.3", vip4, 40000, 443),
        )
        .at(
            2.2,
            "vm3",
            udp6(vm(3), vm(1), "fd00::3", vip6, 7000, 53, 10),
        )
        .at(2.3, "vm3", ping4(vm(3), vm(1), "10.0.0.3", vip4))
        .at(
            2.4,
            "vm3",
            udp4(vm(3), foreign(0x77), "10.0.0.3", vip4, 7000, 80, 10),
        )
        .at(
            2.5,
            "vm3",
            udp4(vm(3), vm(1), "10.0.0.3", "10.0.0.1", 7000, 80, 10),
        );
    v.push(s);

    let mut s = Scenario::new(
        "garp-on-behalf",
        "One GARP only (vm1), later one NA only (vm2): the VM's own announcement floods to the\n\
         VLAN, and on each move the switch sends a GARP and an NA with the new owner's MAC to the\n\
         non-candidates of the VIP's VLAN (vm3, vm4) only: never to the candidates vm1/vm2 and\n\
         never to vm5 in vlan 10.",
        format!(
            "{}{}{}{}{}{}",
            port_block(1, ""),
            port_block(2, ""),
            port_block(3, ""),
            port_block(4, ""),
            port_block(5, "vlan = 10"),
            VIP_AP
        ),
    );
    s.at(0.0, "vm1", garp(vm(1), vip4))
        .at(5.0, "vm2", unsolicited_na(vm(2), vip6));
    v.push(s);

    let mut s = Scenario::new(
        "damping-pending-withdrawn-on-port-loss",
        "Flap damping holds vm1's claim (2 moves per 10 s already used), then vm1's port goes\n\
         down (its VM crashed): the held claim is withdrawn, so the timer at t=10 does not move\n\
         the VIP to a dead port; it stays on vm2 and vm3's traffic keeps reaching it.",
        three_vms(
            "[[vip]]\nname = \"web\"\naddresses = [\"10.0.0.100\"]\nmode = \"active-passive\"\ncandidates = [\"vm1\", \"vm2\"]\ndamping_max_moves = 2\ndamping_window_secs = 10\n",
        ),
    );
    s.at(0.0, "vm1", garp(vm(1), "10.0.0.100"))
        .at(1.0, "vm2", garp(vm(2), "10.0.0.100"))
        .at(2.0, "vm1", garp(vm(1), "10.0.0.100"))
        .event(3.0, "port-down vm1")
        .at(
            12.0,
            "vm3",
            udp4(vm(3), vm(2), "10.0.0.3", "10.0.0.100", 7000, 80, 10),
        );
    v.push(s);

    let mut s = Scenario::new(
        "damping-pending-applied",
        "Flap damping (damping_max_moves = 2, damping_window_secs = 10) in a split brain: vm1 and\n\
         vm2 GARP alternately every second for 6 s. The first two claims move the VIP (t=0, t=1);\n\
         later claims from the non-owner vm1 are held as pending until t=10; each claim from the\n\
         owner vm2 in between supersedes the pending one (the latest claimant wins), and the\n\
         last one, vm1's at t=6, is applied by the timer at the end of the window (t=10, reason\n\
         damped-claim). The VIP never moves more than 2 times in any 10 s; vm3's traffic\n\
         follows the owner.",
        three_vms(
            "[[vip]]\nname = \"web\"\naddresses = [\"10.0.0.100\", \"fd00::100\"]\nmode = \"active-passive\"\ncandidates = [\"vm1\", \"vm2\"]\ndamping_max_moves = 2\ndamping_window_secs = 10\n",
        ),
    );
    for i in 0..=6u8 {
        let (p, m) = if i % 2 == 0 {
            ("vm1", vm(1))
        } else {
            ("vm2", vm(2))
        };
        s.at(f64::from(i), p, garp(m, vip4));
    }
    s.at(
        6.5,
        "vm3",
        udp4(vm(3), vm(1), "10.0.0.3", vip4, 7000, 80, 10),
    )
    .at(
        10.5,
        "vm3",
        udp4(vm(3), vm(2), "10.0.0.3", vip4, 7000, 80, 10),
    );
    v.push(s);

    let vmac_aa = mac("02:5e:00:00:00:c8");
    let mut s = Scenario::new(
        "active-active-distribution",
        "Active-active VIP 10.0.0.200 with candidates vm1..vm3, all of which claim. vm4's ARP is\n\
         answered with the group's virtual MAC. 64 UDP flows (source ports 10000..10063) are\n\
         spread over the three owners by rendezvous hashing (each flow's owner is on its line,\n\
         the MAC rewritten to that owner's). Then vm2's port goes down (events.txt): it leaves\n\
         the owner set at once, and when the same 64 flows are sent again only the flows that\n\
         were on vm2 move; every other flow keeps its owner.",
        four_vms(
            "[[vip]]\nname = \"lb\"\naddresses = [\"10.0.0.200\"]\nmode = \"active-active\"\ncandidates = [\"vm1\", \"vm2\", \"vm3\"]\nvirtual_mac = \"02:5e:00:00:00:c8\"\n",
        ),
    );
    s.at(0.0, "vm1", garp(vm(1), "10.0.0.200"))
        .at(0.1, "vm2", garp(vm(2), "10.0.0.200"))
        .at(0.2, "vm3", garp(vm(3), "10.0.0.200"))
        .at(1.0, "vm4", arp_request(vm(4), "10.0.0.4", "10.0.0.200"));
    for round in 0..2u16 {
        for i in 0..64u16 {
            let t = 2.0 + 2.0 * f64::from(round) + f64::from(i) * 0.001;
            s.at(
                t,
                "vm4",
                udp4(vm(4), vmac_aa, "10.0.0.4", "10.0.0.200", 10000 + i, 80, 10),
            );
        }
    }
    s.event(3.0, "port-down vm2");
    v.push(s);

    let vmac = mac("00:00:5e:00:01:21");
    let mut s = Scenario::new(
        "keepalived-use-vmac",
        "keepalived use_vmac (vrrp_vrid = 33): vm1's GARP from the virtual MAC 00:00:5e:00:01:21\n\
         (sha = that MAC) is a valid claim and the owner MAC is the vmac; vm1's ARP request with\n\
         spa = VIP from its port MAC and its VRRP adverts from the port MAC and (as keepalived sends\n\
         them without vmac_xmit_base) from the vmac with the port's fixed IP pass. ARP for the VIP is\n\
         answered with the vmac, traffic to the VIP sent to vm1's port MAC is rewritten to the\n\
         vmac. When vm2 GARPs from the same vmac, the VIP and the vmac move to vm2.",
        three_vms(
            "[[vip]]\nname = \"web\"\naddresses = [\"10.0.0.100\", \"fd00::100\"]\nmode = \"active-passive\"\ncandidates = [\"vm1\", \"vm2\"]\nvrrp_vrid = 33\n",
        ),
    );
    s.at(0.0, "vm1", arp_raw(vmac, bc, 1, vmac, vip4, bc, vip4))
        .at(0.1, "vm1", vrrp4(vm(1), "10.0.0.1", 33, 150, vip4))
        // keepalived without vmac_xmit_base sends adverts from the vmac with the port's IP.
        .at(0.15, "vm1", vrrp4(vmac, "10.0.0.1", 33, 150, vip4))
        .at(0.2, "vm1", arp_request(vm(1), vip4, "10.0.0.3"))
        .at(1.0, "vm3", arp_request(vm(3), "10.0.0.3", vip4))
        .at(
            1.1,
            "vm3",
            udp4(vm(3), vmac, "10.0.0.3", vip4, 7000, 80, 10),
        )
        .at(
            1.2,
            "vm3",
            udp4(vm(3), vm(1), "10.0.0.3", vip4, 7000, 80, 10),
        )
        .at(2.0, "vm2", arp_raw(vmac, bc, 1, vmac, vip4, bc, vip4))
        .at(
            2.1,
            "vm3",
            udp4(vm(3), vmac, "10.0.0.3", vip4, 7000, 80, 10),
        );
    v.push(s);

    let mut s = Scenario::new(
        "keepalived-use-vmac-dual-stack",
        "keepalived use_vmac with an IPv4 and an IPv6 VIP (vrrp_vrid = 33): keepalived announces\n\
         10.0.0.100 with a GARP from the virtual MAC and fd00::100 (virtual_ipaddress_excluded)\n\
         with an unsolicited NA from the port's own MAC. The owner keeps one MAC per family: the\n\
         second announcement burst is a refresh, not a MAC change; ARP for the VIP is answered\n\
         with the vmac and NS with the port MAC; IPv4 traffic is rewritten to the vmac, IPv6\n\
         traffic to the port MAC. vm2 takes over with the same pair of announcements: one move\n\
         and one IPv6 MAC change, then IPv6 traffic goes to vm2's own MAC.",
        three_vms(
            "[[vip]]\nname = \"web\"\naddresses = [\"10.0.0.100\", \"fd00::100\"]\nmode = \"active-passive\"\ncandidates = [\"vm1\", \"vm2\"]\nvrrp_vrid = 33\n",
        ),
    );
    let vip6 = "fd00::100";
    s.at(0.0, "vm1", arp_raw(vmac, bc, 1, vmac, vip4, bc, vip4))
        .at(0.05, "vm1", unsolicited_na(vm(1), vip6))
        .at(0.1, "vm1", arp_raw(vmac, bc, 1, vmac, vip4, bc, vip4))
        .at(0.15, "vm1", unsolicited_na(vm(1), vip6))
        .at(1.0, "vm3", arp_request(vm(3), "10.0.0.3", vip4))
        .at(1.05, "vm3", ns(vm(3), "fd00::3", vip6, Some(vm(3))))
        .at(
            1.1,
            "vm3",
            udp4(vm(3), vm(1), "10.0.0.3", vip4, 7000, 80, 10),
        )
        .at(1.2, "vm3", udp6(vm(3), vmac, "fd00::3", vip6, 7000, 80, 10))
        .at(2.0, "vm2", arp_raw(vmac, bc, 1, vmac, vip4, bc, vip4))
        .at(2.05, "vm2", unsolicited_na(vm(2), vip6))
        .at(2.1, "vm2", arp_raw(vmac, bc, 1, vmac, vip4, bc, vip4))
        .at(2.15, "vm2", unsolicited_na(vm(2), vip6))
        .at(
            2.2,
            "vm3",
            udp6(vm(3), vm(1), "fd00::3", vip6, 7000, 80, 10),
        )
        .at(
            2.3,
            "vm3",
            udp4(vm(3), vm(1), "10.0.0.3", vip4, 7000, 80, 10),
        );
    v.push(s);

    let mut s = Scenario::new(
        "vrrp-adverts-only-to-candidates",
        "VRRP scoping: VRRPv2 adverts to 224.0.0.18 and VRRPv3 adverts to ff02::12 from the\n\
         candidate vm1 reach only the other candidate vm2 (and vm2's reach only vm1), never the\n\
         non-candidates vm3/vm4; adverts from the non-candidate vm3 reach only vm4, never the HA\n\
         pair. Unicast VRRP (unicast_peer) to vm2's fixed IP is forwarded normally.",
        four_vms(VIP_AP),
    );
    let mut payload = vec![0x21, 51, 150, 1, 0, 1, 0, 0];
    payload.extend_from_slice(&ip4(vip4).octets());
    payload.extend_from_slice(&[0; 8]);
    s.at(0.0, "vm1", vrrp4(vm(1), "10.0.0.1", 51, 150, vip4))
        .at(0.1, "vm1", vrrp6(vm(1), "fe80::1", 51, 150, vip6))
        .at(0.2, "vm2", vrrp4(vm(2), "10.0.0.2", 51, 100, vip4))
        .at(0.3, "vm3", vrrp4(vm(3), "10.0.0.3", 51, 200, vip4))
        .at(0.4, "vm3", vrrp6(vm(3), "fe80::3", 51, 200, vip6))
        .at(
            0.5,
            "vm1",
            ipv4_raw(vm(1), vm(2), "10.0.0.1", "10.0.0.2", 112, 255, &payload),
        );
    v.push(s);

    let mut s = Scenario::new(
        "vrrp-step-down-on-crash",
        "Resigning for a crashed VRRP master (step_down_on_crash, default on): vm1 owns `web`\n\
         and sends a VRRPv2 and a VRRPv3 advert (valid checksums); the non-candidate vm3 sends\n\
         one too (not recorded). An admin down/up of vm1 sends nothing. vm1's device then\n\
         vanishes (port-down): the switch sends vm2 - only vm2 - the priority-0 copy of each of\n\
         vm1's adverts (event vrrp_step_down). vm2's GARP claims; vm1's port coming back and\n\
         going down again sends nothing (no longer the owner, adverts forgotten).",
        three_vms(VIP_AP),
    );
    s.at(0.0, "vm1", garp(vm(1), vip4))
        .at(0.1, "vm1", vrrp4_signed(vm(1), "10.0.0.1", 51, 150, vip4))
        .at(0.2, "vm1", vrrp6_signed(vm(1), "fe80::1", 51, 150, vip6))
        .at(0.3, "vm3", vrrp4_signed(vm(3), "10.0.0.3", 51, 200, vip4))
        .event(0.5, "admin-down vm1")
        .event(0.6, "admin-up vm1")
        .at(1.1, "vm1", vrrp4_signed(vm(1), "10.0.0.1", 51, 150, vip4))
        .event(1.5, "port-down vm1")
        .at(2.1, "vm2", garp(vm(2), vip4))
        .event(3.0, "port-up vm1")
        .event(3.5, "port-down vm1");
    v.push(s);

    let mut s = Scenario::new(
        "ap-owner-port-down",
        "Port loss, active-passive: vm1 owns `web` and `db`. vm1's port goes down (events.txt):\n\
         `web` keeps vm1 as owner (no move: keepalived on the standby will claim) and traffic to\n\
         it is dropped `port_down`; `db` has release_on_port_loss = true and is released at once\n\
         (vm1 -> none, reason port-down). vm2's GARPs then claim both; the port coming back\n\
         changes nothing.",
        three_vms(&format!(
            "{VIP_AP}\n[[vip]]\nname = \"db\"\naddresses = [\"10.0.0.200\"]\nmode = \"active-passive\"\ncandidates = [\"vm1\", \"vm2\"]\nrelease_on_port_loss = true\n"
        )),
    );
    s.at(0.0, "vm1", garp(vm(1), vip4))
        .at(0.01, "vm1", garp(vm(1), "10.0.0.200"))
        .at(
            0.5,
            "vm3",
            udp4(vm(3), vm(1), "10.0.0.3", vip4, 7000, 80, 10),
        )
        .at(
            0.6,
            "vm3",
            udp4(vm(3), vm(1), "10.0.0.3", "10.0.0.200", 7000, 80, 10),
        )
        .event(1.0, "port-down vm1")
        .at(
            1.5,
            "vm3",
            udp4(vm(3), vm(1), "10.0.0.3", vip4, 7000, 80, 10),
        )
        .at(
            1.6,
            "vm3",
            udp4(vm(3), vm(1), "10.0.0.3", "10.0.0.200", 7000, 80, 10),
        )
        .at(1.7, "vm3", arp_request(vm(3), "10.0.0.3", "10.0.0.200"))
        .at(2.0, "vm2", garp(vm(2), vip4))
        .at(2.01, "vm2", garp(vm(2), "10.0.0.200"))
        .at(
            2.5,
            "vm3",
            udp4(vm(3), vm(1), "10.0.0.3", vip4, 7000, 80, 10),
        )
        .at(
            2.6,
            "vm3",
            udp4(vm(3), vm(1), "10.0.0.3", "10.0.0.200", 7000, 80, 10),
        )
        .event(3.0, "port-up vm1");
    v.push(s);

    let mut s = Scenario::new(
        "operator-vip-move",
        "Operator moves (events.txt): with damping_max_moves = 1, vm2's claim after vm1's is held\n\
         pending; `vip-move web vm2` moves the VIP at once (reason admin) and clears the pending\n\
         claim, `vip-move web vm1` right after moves it back although damping is exhausted;\n\
         moving to the current owner changes nothing, moving to the non-candidate vm3 is an error,\n\
         and `vip-release web vm1` leaves the VIP without an owner.",
        three_vms(
            "[[vip]]\nname = \"web\"\naddresses = [\"10.0.0.100\", \"fd00::100\"]\nmode = \"active-passive\"\ncandidates = [\"vm1\", \"vm2\"]\ndamping_max_moves = 1\ndamping_window_secs = 10\n",
        ),
    );
    s.at(0.0, "vm1", garp(vm(1), vip4))
        .at(1.0, "vm2", garp(vm(2), vip4))
        .event(2.0, "vip-move web vm2")
        .event(3.0, "vip-move web vm1")
        .event(3.5, "vip-move web vm1")
        .event(4.0, "vip-move web vm3")
        .at(
            5.0,
            "vm3",
            udp4(vm(3), vm(2), "10.0.0.3", vip4, 7000, 80, 10),
        )
        .event(6.0, "vip-release web vm1")
        .at(7.0, "vm3", arp_request(vm(3), "10.0.0.3", vip4));
    v.push(s);

    let mut s = Scenario::new(
        "remote-vip-move",
        "Multi-host, pure core: the cluster agent's commands (events.txt) move the VIP between\n\
         this switch's vm1/vm2 and far1 on host-b. After a record from the store makes far1 the\n\
         owner, the switch announces far1's MAC to vm3, answers vm3's ARP with it and sends\n\
         vm3's traffic (stale MAC included) to host-b with the MAC rewritten (no tunnel yet:\n\
         counted remote_no_tunnel). An older record, a duplicate and a non-candidate are refused.\n\
         vm2's GARP takes the VIP back locally at once and asks to be written (the record to\n\
         write, conditioned on the revision last seen, is `cluster-writes`). A second record\n\
         to far1, then host-b's lease expiring (host-gone) leave the VIP without an owner and\n\
         start discovery.",
        three_vms(VIP_AP),
    );
    s.at(0.0, "vm1", garp(vm(1), vip4))
        .event(0.2, "cluster-writes")
        .event(0.5, "confirm-write web 1 10")
        .event(0.6, "cluster-writes")
        .event(1.0, "remote-candidate web host-b far1")
        .event(1.5, "remote-owner web host-b far1 02:00:00:00:0b:01 2 11")
        .at(
            2.0,
            "vm3",
            udp4(vm(3), vm(1), "10.0.0.3", vip4, 7000, 80, 10),
        )
        .at(2.1, "vm3", arp_request(vm(3), "10.0.0.3", vip4))
        .event(2.5, "remote-owner web host-b far1 02:00:00:00:0b:01 2 11")
        .event(2.6, "remote-owner web host-b far1 02:00:00:00:0b:01 1 9")
        .event(2.7, "remote-owner web host-c evil 02:00:00:00:0c:01 9 12")
        .at(3.0, "vm2", garp(vm(2), vip4))
        .at(
            3.5,
            "vm3",
            udp4(vm(3), vm(1), "10.0.0.3", vip4, 7000, 80, 10),
        )
        .event(3.2, "cluster-writes")
        .event(4.0, "confirm-write web 3 13")
        .event(5.0, "remote-owner web host-b far1 02:00:00:00:0b:01 5 14")
        .event(6.0, "host-gone host-b")
        .at(
            6.5,
            "vm3",
            udp4(vm(3), vm(1), "10.0.0.3", vip4, 7000, 80, 10),
        );
    v.push(s);
}

/// Owner discovery after a restart (the daemon's `discover-all` at start).
fn discovery_scenarios(v: &mut Vec<Scenario>) {
    let vip4 = "10.0.0.100";
    let vip6 = "fd00::100";
    let sw = vswitch::discovery::SWITCH_MAC;
    let ll = "fe80::76:73ff:fe77:1";

    let mut s = Scenario::new(
        "restart-discovery",
        "A restart with no saved owner (events.txt `discover-all`, what the daemon does at start):\n\
         the switch asks vm1 and vm2 (the candidates, nobody else) who holds 10.0.0.100 with an ARP\n\
         probe (sender IP 0.0.0.0) and who holds fd00::100 with an NS from its link-local address.\n\
         Before anyone answers (also before the asking), vm3's frames to the VIP addressed to vm1's\n\
         MAC (its cache) are delivered to vm1 as a bridge would, not dropped by vm1's destination check. vm2 answers\n\
         both (ARP reply and solicited NA to the switch's MAC): it becomes the owner (reason\n\
         discovery) and the switch announces it to vm3; vm3's stale-cache frame is then steered\n\
         to vm2. The round after the answer settles the group: no more probes. vm1's answer about\n\
         its own address, sent to the switch's MAC, is no VIP answer: dropped no_egress.",
        three_vms(VIP_AP),
    );
    s.at(
        0.0,
        "vm3",
        udp4(vm(3), vm(1), "10.0.0.3", vip4, 7000, 80, 10),
    )
    .event(0.0, "discover-all")
    .at(
        0.02,
        "vm3",
        udp4(vm(3), vm(1), "10.0.0.3", vip4, 7000, 80, 11),
    )
    .at(0.03, "vm2", arp_reply(vm(2), vip4, sw, "0.0.0.0"))
    .at(
        0.031,
        "vm2",
        na(vm(2), sw, vip6, ll, vip6, Some(vm(2)), 0x60),
    )
    .at(
        0.2,
        "vm3",
        udp4(vm(3), vm(1), "10.0.0.3", vip4, 7000, 80, 10),
    )
    .at(0.3, "vm1", arp_reply(vm(1), "10.0.0.1", sw, "0.0.0.0"))
    .event(2.0, "tick");
    v.push(s);

    let mut s = Scenario::new(
        "discovery-split-brain",
        "Split brain seen by discovery: vm1 is the owner before the restart (a GARP), then the\n\
         switch asks (`discover-all`). vm2 answers first, then vm1: both hold 10.0.0.100. The owner\n\
         from before the round (vm1) keeps it, the split brain is logged, and while both keep\n\
         answering nothing moves. When only vm2 answers a round (keepalived resolved it: vm1 stepped\n\
         down), vm2 becomes the owner (reason discovery) and the asking stops.",
        three_vms("[[vip]]\nname = \"web\"\naddresses = [\"10.0.0.100\"]\nmode = \"active-passive\"\ncandidates = [\"vm1\", \"vm2\"]\n"),
    );
    s.at(0.0, "vm1", garp(vm(1), vip4))
        .event(0.5, "discover-all")
        .at(0.51, "vm2", arp_reply(vm(2), vip4, sw, "0.0.0.0"))
        .at(0.52, "vm1", arp_reply(vm(1), vip4, sw, "0.0.0.0"))
        .at(0.61, "vm2", arp_reply(vm(2), vip4, sw, "0.0.0.0"))
        .at(0.62, "vm1", arp_reply(vm(1), vip4, sw, "0.0.0.0"))
        .at(0.81, "vm2", arp_reply(vm(2), vip4, sw, "0.0.0.0"))
        .at(
            1.5,
            "vm3",
            udp4(vm(3), vm(1), "10.0.0.3", vip4, 7000, 80, 10),
        )
        .event(3.0, "tick");
    v.push(s);
}
