//! The owner-discovery side of [`Switch`]: starting discovery for a group, sending a
//! round's probes, applying answers under the split-brain rule (the rules themselves are in
//! [`crate::discovery`]).

use std::net::IpAddr;

use vip_table::{MacAddr, PortId, Timestamp, VipId};

use super::{Outbound, Switch, SwitchEvent};
use crate::discovery::{self, AnswerAction, RoundAction, Trigger};
use crate::pipeline::PortEntry;

impl Switch {
    /// Ask the candidates of every group who holds its addresses (the daemon does this at
    /// start, after restoring saved state; see [`crate::discovery`]).
    pub fn discover_all(&mut self, now: Timestamp) {
        let ids: Vec<VipId> = self.vips.groups().map(|(id, _)| id).collect();
        for id in ids {
            self.start_discovery(id, Trigger::Start, now);
        }
    }

    /// The groups being asked about, by name.
    pub fn discovering(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .discovery
            .active()
            .filter_map(|id| self.vips.group(id).map(|g| g.name().to_string()))
            .collect();
        v.sort();
        v
    }

    pub(super) fn start_discovery(&mut self, id: VipId, trigger: Trigger, now: Timestamp) {
        let Some(g) = self.vips.group(id) else {
            return;
        };
        if !self.discovery.is_active(id) {
            self.events.push(SwitchEvent::VipDiscovery {
                vip: g.name().to_string(),
                trigger,
            });
        }
        self.discovery.start(id, now);
    }

    /// Send the probes of one discovery round of `id`.
    fn probe(&self, id: VipId, out: &mut Vec<Outbound>) {
        let Some(g) = self.vips.group(id) else {
            return;
        };
        for c in g.candidates() {
            if !self.ports.get(c.index()).is_some_and(PortEntry::is_up) {
                continue;
            }
            for a in g.addresses() {
                out.push(Outbound {
                    port: *c,
                    frame: discovery::probe_frame(*a),
                });
            }
        }
    }

    pub(super) fn discovery_rounds(&mut self, now: Timestamp, out: &mut Vec<Outbound>) -> bool {
        let mut changed = false;
        for id in self.discovery.due(now) {
            let Some(g) = self.vips.group(id) else {
                self.discovery.stop(id);
                continue;
            };
            let aa = g.mode() == vip_table::VipMode::ActiveActive;
            if !aa && g.owners().is_empty() && !g.remote_owners().is_empty() {
                // owned on another host, as the cluster store says: nobody here to ask
                self.discovery.stop(id);
                continue;
            }
            if let Some((p, mac)) = self.discovery.split_resolved_by(id) {
                // the split brain is over: the single answerer holds the addresses
                let v6 = g.addresses().first().is_some_and(IpAddr::is_ipv6);
                if let Some(m) = self
                    .vips
                    .group_mut(id)
                    .and_then(|g| g.discovered(p, mac, v6, now))
                {
                    self.on_move(id, m, out);
                    changed = true;
                }
            }
            let owner = self
                .vips
                .group(id)
                .and_then(|g| g.owners().first().map(|o| o.port));
            if self.discovery.round(id, owner, aa, now) == RoundAction::Probe {
                self.probe(id, out);
            }
        }
        changed
    }

    pub(super) fn on_probe_answer(
        &mut self,
        vip: VipId,
        addr: IpAddr,
        port: PortId,
        mac: MacAddr,
        now: Timestamp,
        out: &mut Vec<Outbound>,
    ) -> bool {
        let Some(g) = self.vips.group(vip) else {
            return false;
        };
        let aa = g.mode() == vip_table::VipMode::ActiveActive;
        let apply = match self.discovery.answer(vip, port, mac, aa, now) {
            AnswerAction::Ignore | AnswerAction::Hold => None,
            AnswerAction::Apply => Some(port),
            AnswerAction::SplitBrain { first, keep } => {
                let holder = keep.unwrap_or(first);
                let name = g.name().to_string();
                self.events.push(SwitchEvent::VipSplitBrain {
                    vip: name,
                    ports: vec![
                        self.port_name(first).to_string(),
                        self.port_name(port).to_string(),
                    ],
                    holder: Some(self.port_name(holder).to_string()),
                });
                // the owner from before the round keeps it; otherwise the first answer
                (holder == port).then_some(port)
            }
        };
        let Some(p) = apply else {
            return false;
        };
        match self.vips.discovered(vip, p, mac, addr, now) {
            Some(m) => {
                self.on_move(vip, m, out);
                self.publish(false);
                true
            }
            None => false,
        }
    }
}
