//! Resigning for a crashed VRRP master (issue 9, point 3).
//!
//! When an active-passive owner's device vanishes, the switch knows at once that the VM is
//! gone, while the standby's keepalived would wait for its master-down timer
//! (3 × advert_int + skew). The switch therefore sends, on the dead master's behalf, what
//! the master sends when it stops gracefully: its advert with priority 0 (RFC 3768
//! §6.4.2, RFC 5798 §6.4.3). A backup that receives it takes over after its skew time.
//!
//! Contract:
//! - [`Switch::record_vrrp`] keeps the last well-formed advert of each (port, VRID, family,
//!   IP destination) from a candidate port, if it is tied to an active-passive group with
//!   `step_down_on_crash` the port is a candidate of (one of the advert's addresses is an
//!   address of the group, or its VRID is the group's `vrrp_vrid`). A priority-0 advert
//!   (the master resigned itself) forgets the port's adverts of that VRID and family. At
//!   most [`MAX_PER_PORT`] are kept per port (the oldest goes first);
//! - [`Switch::step_down_for`] runs when the device behind a port vanished (not on an
//!   administrative `port down`, not on a reload): for each of the port's adverts that is
//!   recent (at most 3 advert intervals old) and tied to a group the port **owns**, it
//!   sends the priority-0 copy ([`crate::vrrp::step_down`]) to the other up candidates of
//!   those groups — a multicast advert to each of them, a unicast advert (`unicast_peer`)
//!   out of the port behind its destination MAC if that is such a candidate (else to each
//!   of them) — and reports a [`SwitchEvent::VrrpStepDown`] per group. The port's adverts
//!   are forgotten either way: at most one burst per port-down;
//! - pure: time is an argument, the outbound frames are values.

use std::net::IpAddr;

use vip_table::{PortId, Timestamp, VipMode};

use crate::frames::SmallFrame;
use crate::vrrp;

use super::{Outbound, Switch, SwitchEvent};

/// Adverts remembered per port (a keepalived VM has a handful of instances).
pub const MAX_PER_PORT: usize = 16;

/// The last advert of one (port, VRID, family, destination).
#[derive(Clone, Copy, Debug)]
pub(super) struct LastAdvert {
    port: PortId,
    vrid: u8,
    v6: bool,
    dst: IpAddr,
    at: Timestamp,
    interval_cs: u16,
    frame: SmallFrame,
}

impl Switch {
    /// The groups (ids) an advert from `port` is tied to: active-passive, with
    /// `step_down_on_crash`, `port` a candidate, and an address of the advert in the group or
    /// the advert's VRID its `vrrp_vrid`.
    fn advert_groups(&self, port: PortId, frame: &[u8], a: &vrrp::Advert) -> Vec<vip_table::VipId> {
        let mut out = Vec::new();
        for &id in self.vips.groups_of(port) {
            let Some(g) = self.vips.group(id) else {
                continue;
            };
            if g.mode() != VipMode::ActivePassive {
                continue;
            }
            // Groups are built from the configuration in order (VipId = index); the name
            // check guards that assumption.
            let vc = match self.config.vips.get(id.0 as usize) {
                Some(v) if v.name == g.name() => v,
                _ => match self.config.vips.iter().find(|v| v.name == g.name()) {
                    Some(v) => v,
                    None => continue,
                },
            };
            if !vc.step_down_on_crash {
                continue;
            }
            let by_vrid = vc.vrrp_vrid == Some(a.vrid);
            if by_vrid || a.addresses(frame).any(|x| g.addresses().contains(&x)) {
                out.push(id);
            }
        }
        out
    }

    /// Remember a candidate's VRRP advert (the pipeline's [`crate::pipeline::Effects::vrrp`]).
    pub fn record_vrrp(&mut self, port: PortId, frame: &SmallFrame, now: Timestamp) {
        let bytes = frame.as_bytes();
        let Some(a) = vrrp::parse(bytes) else {
            return;
        };
        let v6 = a.is_ipv6();
        if a.priority == 0 {
            self.vrrp_adverts
                .retain(|r| !(r.port == port && r.vrid == a.vrid && r.v6 == v6));
            return;
        }
        if self.advert_groups(port, bytes, &a).is_empty() {
            return;
        }
        let rec = LastAdvert {
            port,
            vrid: a.vrid,
            v6,
            dst: a.dst,
            at: now,
            interval_cs: a.interval_cs,
            frame: *frame,
        };
        if let Some(r) = self
            .vrrp_adverts
            .iter_mut()
            .find(|r| r.port == port && r.vrid == a.vrid && r.v6 == v6 && r.dst == a.dst)
        {
            *r = rec;
            return;
        }
        let mine = self.vrrp_adverts.iter().filter(|r| r.port == port).count();
        if mine >= MAX_PER_PORT {
            if let Some(i) = self
                .vrrp_adverts
                .iter()
                .enumerate()
                .filter(|(_, r)| r.port == port)
                .min_by_key(|(_, r)| r.at)
                .map(|(i, _)| i)
            {
                self.vrrp_adverts.swap_remove(i);
            }
        }
        self.vrrp_adverts.push(rec);
    }

    /// The device behind `port` vanished: resign for it where it was the VRRP master of a
    /// group it owns. Call before the port is taken down (ownership and the FDB as they
    /// were).
    pub(super) fn step_down_for(&mut self, port: PortId, now: Timestamp, out: &mut Vec<Outbound>) {
        let mine: Vec<LastAdvert> = self
            .vrrp_adverts
            .iter()
            .filter(|r| r.port == port)
            .copied()
            .collect();
        self.vrrp_adverts.retain(|r| r.port != port);
        let Some(vlan) = self.ports.get(port.index()).map(|p| p.vlan) else {
            return;
        };
        for r in mine {
            let max_age = u64::from(r.interval_cs) * 3 * 10_000_000;
            if r.interval_cs == 0 || now.as_nanos().saturating_sub(r.at.as_nanos()) > max_age {
                continue;
            }
            let bytes = r.frame.as_bytes();
            let Some(a) = vrrp::parse(bytes) else {
                continue;
            };
            let mut resign = SmallFrame::default();
            if !vrrp::step_down(bytes, &a, &mut resign) {
                continue;
            }
            let mut sent: Vec<PortId> = Vec::new();
            for id in self.advert_groups(port, bytes, &a) {
                let Some(g) = self.vips.group(id) else {
                    continue;
                };
                if !g.is_owner(port) {
                    continue;
                }
                let peers: Vec<PortId> = g
                    .candidates()
                    .iter()
                    .copied()
                    .filter(|&c| c != port && self.ports.get(c.index()).is_some_and(|p| p.is_up()))
                    .collect();
                let to: Vec<PortId> = if a.is_multicast() {
                    peers
                } else {
                    let dst_mac = vip_table::MacAddr(
                        bytes
                            .get(..6)
                            .and_then(|m| m.try_into().ok())
                            .unwrap_or([0; 6]),
                    );
                    match self.fdb.lookup(vlan, dst_mac, now) {
                        Some(q) if peers.contains(&q) => vec![q],
                        _ => peers,
                    }
                };
                if to.is_empty() {
                    continue;
                }
                for &q in &to {
                    if !sent.contains(&q) {
                        sent.push(q);
                        out.push(Outbound {
                            port: q,
                            frame: resign,
                        });
                    }
                }
                self.events.push(SwitchEvent::VrrpStepDown {
                    vip: g.name().to_string(),
                    port: self.port_name(port).to_string(),
                    vrid: a.vrid,
                    family: if a.is_ipv6() { "ipv6" } else { "ipv4" },
                    dst: a.dst,
                    to: to.iter().map(|q| self.port_name(*q).to_string()).collect(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::config::Config;
    use crate::pipeline::{Effects, VrrpAdvert};
    use std::time::Duration;

    /// vm1's last priority-150 advert and keepalived's own priority-0 advert after it
    /// (from the capture fixtures, read as in the VRRP wire tests).
    fn advert_and_resignation(set: &str) -> (Vec<u8>, Vec<u8>) {
        crate::vrrp::tests::last_advert_and_resignation(set)
    }

    /// The capture sets' switch: vm1 (owner), vm2 candidates, vm3 client.
    fn switch(set: &str, extra: &str) -> Switch {
        let mut s = String::new();
        for n in 1..=3 {
            s.push_str(&format!(
                "[[port]]\nname = \"vm{n}\"\ntap = \"tap-vm{n}\"\nmac = \"02:00:00:00:03:0{n}\"\n\
                 ips = [\"10.203.0.{n}/24\", \"fd03::{n}/64\"]\n\n"
            ));
        }
        let addr = if set == "v6" {
            "fd03::100"
        } else {
            "10.203.0.100"
        };
        s.push_str(&format!(
            "[[vip]]\nname = \"vrrp33\"\naddresses = [\"{addr}\"]\nmode = \"active-passive\"\n\
             candidates = [\"vm1\", \"vm2\"]\nowner = \"vm1\"\n{extra}\n"
        ));
        Switch::new(Config::from_toml_str(&s).unwrap(), Timestamp(0)).unwrap()
    }

    fn feed(sw: &mut Switch, port: u32, frame: &[u8], at: Timestamp) {
        let mut c = SmallFrame::default();
        assert!(c.set(frame));
        let fx = Effects {
            vrrp: Some(VrrpAdvert {
                port: PortId(port),
                frame: c,
            }),
            ..Default::default()
        };
        let mut ob = Vec::new();
        sw.apply(&fx, at, &mut ob);
        assert!(ob.is_empty());
    }

    fn ms(n: u64) -> Timestamp {
        Timestamp::from_millis(n)
    }

    fn vrrp_msg(f: &[u8]) -> Vec<u8> {
        let l3 = if f[12] == 0x86 { 14 + 40 } else { 14 + 20 };
        f[l3..].to_vec()
    }

    /// The golden case for every capture set: feed the master's last advert, its device
    /// vanishes 0.5 s later: exactly one frame, to vm2, whose VRRP message is byte for byte
    /// what keepalived sent when it resigned itself, with the advert's own Ethernet and IP
    /// headers; and one `VrrpStepDown` event.
    #[test]
    fn device_loss_of_the_owner_sends_its_resignation_to_the_other_candidate() {
        for (set, extra) in [
            ("v4-multicast", ""),
            ("v4-unicast", ""),
            ("v4-vmac", "vrrp_vrid = 33"),
            ("v6", ""),
        ] {
            let (adv, resign) = advert_and_resignation(set);
            let mut sw = switch(set, extra);
            feed(&mut sw, 0, &adv, ms(1000));
            let _ = sw.take_events();
            let mut ob = Vec::new();
            sw.set_port_oper(PortId(0), false, ms(1500), &mut ob);
            assert_eq!(ob.len(), 1, "{set}: {ob:?}");
            assert_eq!(ob[0].port, PortId(1), "{set}");
            let o = ob[0].frame.as_bytes();
            assert_eq!(o.len(), adv.len(), "{set}");
            let l3 = if set == "v6" { 54 } else { 34 };
            assert_eq!(o[..l3], adv[..l3], "{set}: headers of the advert");
            assert_eq!(
                vrrp_msg(o)[..resign.len() - l3],
                vrrp_msg(&resign)[..resign.len() - l3],
                "{set}: keepalived's resignation"
            );
            let ev = sw.take_events();
            assert!(
                ev.iter().any(
                    |e| matches!(e, SwitchEvent::VrrpStepDown { vip, port, vrid: 33, to, .. }
                    if vip == "vrrp33" && port == "vm1" && to == &["vm2".to_string()])
                ),
                "{set}: {ev:?}"
            );
            // One burst per port-down: back up and down again without a new advert: nothing.
            sw.set_port_oper(PortId(0), true, ms(1600), &mut ob);
            ob.clear();
            sw.set_port_oper(PortId(0), false, ms(1700), &mut ob);
            assert!(ob.is_empty(), "{set}: a second burst {ob:?}");
        }
    }

    #[test]
    fn nothing_is_sent_when_it_should_not_be() {
        let (adv, _) = advert_and_resignation("v4-multicast");
        let down = |sw: &mut Switch, at: Timestamp| {
            let mut ob = Vec::new();
            sw.set_port_oper(PortId(0), false, at, &mut ob);
            ob
        };
        // step_down_on_crash = false
        let mut sw = switch("v4-multicast", "step_down_on_crash = false");
        feed(&mut sw, 0, &adv, ms(1000));
        assert!(down(&mut sw, ms(1500)).is_empty());
        // administrative port down
        let mut sw = switch("v4-multicast", "");
        feed(&mut sw, 0, &adv, ms(1000));
        let mut ob = Vec::new();
        sw.set_port_admin("vm1", false, ms(1500), &mut ob).unwrap();
        assert!(ob.is_empty(), "{ob:?}");
        assert!(!sw
            .take_events()
            .iter()
            .any(|e| matches!(e, SwitchEvent::VrrpStepDown { .. })));
        // the last advert is older than 3 advert intervals: that master is long gone
        let mut sw = switch("v4-multicast", "");
        feed(&mut sw, 0, &adv, ms(1000));
        assert!(down(&mut sw, ms(1000) + Duration::from_millis(3100)).is_empty());
        // the port does not own the VIP (vm2 sent the advert, vm1 owns)
        let mut sw = switch("v4-multicast", "");
        feed(&mut sw, 1, &adv, ms(1000));
        let mut ob = Vec::new();
        sw.set_port_oper(PortId(1), false, ms(1500), &mut ob);
        assert!(ob.is_empty());
        // an advert not tied to the group (other addresses, no vrrp_vrid)
        let mut sw = switch("v4-multicast", "");
        let mut other = adv.clone();
        let a = vrrp::parse(&other).unwrap();
        let addr_off = other.len() - 8 - 4;
        other[addr_off + 3] = 99; // 10.203.0.99
        let mut fixed = other.clone();
        fixed[34 + 6] = 0;
        fixed[34 + 7] = 0;
        let ck = vrrp::checksum(2, a.src, a.dst, &fixed[34..]);
        fixed[34 + 6..34 + 8].copy_from_slice(&ck.to_be_bytes());
        assert!(vrrp::parse(&fixed).is_some());
        feed(&mut sw, 0, &fixed, ms(1000));
        assert!(down(&mut sw, ms(1500)).is_empty());
        // the master resigned itself first (priority 0 seen): nothing to add
        let (adv, resign) = advert_and_resignation("v4-multicast");
        let mut sw = switch("v4-multicast", "");
        feed(&mut sw, 0, &adv, ms(1000));
        feed(&mut sw, 0, &resign, ms(1100));
        assert!(down(&mut sw, ms(1500)).is_empty());
        // a reload forgets (port ids may change); the next advert is recorded again
        let mut sw = switch("v4-multicast", "");
        feed(&mut sw, 0, &adv, ms(1000));
        let cfg = sw.config().clone();
        sw.reload(cfg, ms(1100)).unwrap();
        assert!(down(&mut sw, ms(1500)).is_empty());
    }

    #[test]
    fn unicast_adverts_go_to_the_peer_they_were_sent_to_and_memory_is_bounded() {
        let (adv, _) = advert_and_resignation("v4-unicast");
        let mut sw = switch("v4-unicast", "");
        // The advert's destination MAC is vm2's.
        feed(&mut sw, 0, &adv, ms(1000));
        // Many different unicast destinations: at most MAX_PER_PORT kept.
        for i in 0..40u8 {
            let mut f = adv.clone();
            f[14 + 19] = 10 + i; // IP destination (header checksum not checked here)
            feed(&mut sw, 0, &f, ms(1001 + u64::from(i)));
        }
        assert!(
            sw.vrrp_adverts
                .iter()
                .filter(|r| r.port == PortId(0))
                .count()
                <= MAX_PER_PORT
        );
        let mut ob = Vec::new();
        sw.set_port_oper(PortId(0), false, ms(1500), &mut ob);
        // each kept advert goes to vm2 only (the MAC it was sent to), once per advert
        assert!(
            !ob.is_empty() && ob.iter().all(|o| o.port == PortId(1)),
            "{ob:?}"
        );
        assert!(ob.len() <= MAX_PER_PORT);
        assert!(sw.vrrp_adverts.is_empty());
    }
}
