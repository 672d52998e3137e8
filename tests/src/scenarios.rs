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
        Scenario { name, about, config, frames: Vec::new(), events: Vec::new() }
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
    format!("{}{}{}{}", port_block(1, ""), port_block(2, ""), port_block(3, ""), tail)
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
            port_block(3, "allowed_address_pairs = [{ ip = \"10.0.0.33\", mac = \"02:00:00:00:00:33\" }]")
        ),
    );
    let m33 = mac("02:00:00:00:00:33");
    s.at(0.0, "vm1", arp_request(vm(1), "10.0.0.1", "10.0.0.33"))
        .at(0.001, "vm3", arp_reply(m33, "10.0.0.33", vm(1), "10.0.0.1"))
        .at(0.002, "vm1", udp4(vm(1), m33, "10.0.0.1", "10.0.0.33", 4000, 53, 20))
        .at(0.003, "vm2", udp4(vm(2), m33, "10.0.0.2", "10.0.0.33", 4000, 53, 20))
        .at(400.0, "vm1", udp4(vm(1), m33, "10.0.0.1", "10.0.0.33", 4000, 53, 20))
        .at(400.1, "vm2", udp4(vm(2), bc, "10.0.0.2", "10.0.0.255", 5000, 5000, 8));
    v.push(s);

    let mut s = Scenario::new(
        "mac-spoof",
        "A VM sends from a MAC that is not its own: dropped as mac_spoof, never learned.",
        three_vms(""),
    );
    s.at(0.0, "vm3", udp4(mac("02:00:00:00:00:99"), vm(1), "10.0.0.3", "10.0.0.1", 1, 2, 10))
        .at(0.1, "vm3", udp4(vm(1), vm(2), "10.0.0.1", "10.0.0.2", 1, 2, 10))
        .at(0.2, "vm3", udp4(vm(3), vm(1), "10.0.0.3", "10.0.0.1", 1, 2, 10));
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
    s.at(1.0, "vm3", udp4(vm(3), vm(1), "10.0.0.3", "10.0.0.100", 7000, 80, 10))
        .at(2.0, "vm2", garp(vm(2), "10.0.0.100"))
        .at(2.5, "vm3", udp4(vm(3), vm(1), "10.0.0.3", "10.0.0.100", 7000, 80, 10));
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

    v
}
