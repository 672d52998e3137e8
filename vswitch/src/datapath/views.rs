//! The answers to operator commands: the typed views ([`crate::view`]) of the control state
//! (`show ports`, `fdb`, `vips`, `stats`) and the results of the state-changing commands.

use vip_table::{PortId, Timestamp};

use crate::control::Outbound;
use crate::view::{
    AddressPairView, CtlError, FdbEntryView, HijackView, LastClaimView, MoveResult, MoveView,
    OwnerView, PendingView, PortAdminResult, PortStatsView, PortView, ReleaseResult,
    RemoteOwnerView, View, VipView,
};

use super::{Command, Reply};

use super::control_loop::ControlLoop;

/// `show fdb`: the local MAC table, then the MACs of other hosts' ports.
pub(crate) fn fdb_view(sw: &crate::control::Switch, now: Timestamp) -> Vec<FdbEntryView> {
    let mut v: Vec<FdbEntryView> = sw
        .fdb()
        .entries(now)
        .into_iter()
        .map(|(vlan, mac, port, st, age)| FdbEntryView {
            vlan,
            mac: mac.to_string(),
            port: sw.port_name(port).to_string(),
            host: None,
            is_static: st,
            age_secs: age as f64 / 1e9,
        })
        .collect();
    let ov = sw.overlay();
    for p in ov.ports() {
        let host = ov.host(p.host).map(|h| h.name.clone());
        for mac in p.policy.allowed_macs() {
            v.push(FdbEntryView {
                vlan: p.vlan,
                mac: mac.to_string(),
                port: p.name.clone(),
                host: host.clone(),
                is_static: true,
                age_secs: 0.0,
            });
        }
    }
    v
}

impl ControlLoop {
    pub(super) fn command(&mut self, cmd: Command, ob: &mut Vec<Outbound>) -> Reply {
        let now = self.clock.now();
        match cmd {
            Command::ShowPorts => Ok(View::Ports(self.ports_view())),
            Command::ShowFdb => Ok(View::Fdb(self.fdb_view(now))),
            Command::ShowVips => Ok(View::Vips(self.vips_view(now))),
            Command::ShowStats => Ok(View::Stats(self.stats_view())),
            Command::VipMove { vip, port } => {
                let m = self.sw.vip_move(&vip, &port, now, ob)?;
                Ok(View::Moved(MoveResult {
                    moved: m.is_some(),
                    epoch: m.map(|m| m.epoch),
                }))
            }
            Command::VipRelease { vip, port } => {
                let m = self.sw.vip_release(&vip, &port, now, ob)?;
                Ok(View::Released(ReleaseResult {
                    released: m.is_some(),
                }))
            }
            Command::PortAdmin { port, up } => {
                self.sw.set_port_admin(&port, up, now, ob)?;
                Ok(View::PortAdmin(PortAdminResult { port, admin_up: up }))
            }
            Command::Reload => self.reload().map(View::Reloaded),
            Command::Metrics => {
                let mut m = crate::metrics::render(&self.sw, now);
                let rx: Vec<u64> = self
                    .worker_rx
                    .iter()
                    .map(|c| c.load(std::sync::atomic::Ordering::Relaxed))
                    .collect();
                crate::metrics::render_worker(&mut m, self.io_engine, &rx);
                let (running, lost) = self.captures.stats();
                crate::metrics::render_captures(&mut m, running, lost);
                Ok(View::Metrics(m))
            }
            Command::Trace { port, frame } => {
                let bytes = crate::trace::decode_hex(&frame)
                    .map_err(|message| CtlError::BadRequest { message })?;
                crate::trace::trace_frame(&self.sw, &port, &bytes, now)
                    .map(|t| View::Trace(Box::new(t)))
            }
            Command::Watch => Err(CtlError::NotACall),
            Command::Capture { .. } => Err(CtlError::CaptureNotACall),
            // the agent answers it when it runs a cluster session
            Command::ShowHosts => Err(CtlError::ClusterOff),
            Command::SetTopology(t) => {
                let (hosts, ports) = self.sw.set_topology(t);
                Ok(View::Topology(crate::view::TopologyResult { hosts, ports }))
            }
            c @ (Command::ClusterApply { .. }
            | Command::ClusterShow
            | Command::ClusterVips { .. }
            | Command::ClusterOwner { .. }
            | Command::ClusterOwners { .. }
            | Command::ClusterRelease { .. }
            | Command::ClusterConfirm { .. }
            | Command::ClusterWrites
            | Command::ClusterCandidate { .. }
            | Command::ClusterCandidateGone { .. }
            | Command::ClusterHostGone { .. }) => self.cluster_command(c, ob),
        }
    }

    fn ports_view(&self) -> Vec<PortView> {
        let cfg = self.sw.config();
        self.sw
            .ports()
            .iter()
            .filter_map(|p| {
                let pc = cfg.port(&p.name)?;
                Some(PortView {
                    name: p.name.clone(),
                    binding: pc.binding.kind().to_string(),
                    ifname: pc.binding.ifname().to_string(),
                    mac: pc.mac.to_string(),
                    ips: pc.ips.iter().map(|i| i.to_string()).collect(),
                    allowed_address_pairs: pc
                        .allowed_address_pairs
                        .iter()
                        .map(|a| AddressPairView {
                            ip: a.ip.to_string(),
                            mac: a.mac.to_string(),
                        })
                        .collect(),
                    vlan: p.vlan,
                    mtu: p.mtu,
                    admin_up: p.admin_up,
                    oper_up: p.oper_up,
                    port_security: p.policy.port_security,
                    dest_check: p.policy.dest_check,
                    vip_candidate_of: cfg
                        .vips
                        .iter()
                        .filter(|v| v.is_candidate(&p.name))
                        .map(|v| v.name.clone())
                        .collect(),
                })
            })
            .collect()
    }

    fn fdb_view(&self, now: Timestamp) -> Vec<FdbEntryView> {
        fdb_view(&self.sw, now)
    }

    fn vips_view(&self, now: Timestamp) -> Vec<VipView> {
        let sw = &self.sw;
        let ago = |t: Timestamp| now.saturating_since(t).as_secs_f64();
        let name = |p: PortId| sw.port_name(p).to_string();
        let asking = sw.discovering();
        sw.vips()
            .groups()
            .map(|(_, g)| VipView {
                name: g.name().to_string(),
                mode: g.mode().to_string(),
                addresses: g.addresses().iter().map(|a| a.to_string()).collect(),
                candidates: g.candidates().iter().map(|c| name(*c)).collect(),
                owners: g
                    .owners()
                    .iter()
                    .map(|o| OwnerView {
                        port: name(o.port),
                        mac: o.mac.to_string(),
                        mac6: o.mac6.to_string(),
                        since_secs_ago: ago(o.since),
                        last_claim_secs_ago: ago(o.last_claim),
                    })
                    .collect(),
                answer_mac: g.answer_mac().map(|m| m.to_string()),
                answer_mac6: g.answer_mac6().map(|m| m.to_string()),
                epoch: g.epoch(),
                last_claim: g.last_claim().map(|(t, p)| LastClaimView {
                    port: name(p),
                    secs_ago: ago(t),
                }),
                pending: g.pending().map(|p| PendingView {
                    port: name(p.port),
                    mac: p.mac.to_string(),
                    due_in_secs: p.due.saturating_since(now).as_secs_f64(),
                }),
                moves: g
                    .history()
                    .map(|m| MoveView {
                        secs_ago: ago(m.at),
                        epoch: m.epoch,
                        from: m.from.map(name),
                        to: m.to.map(name),
                        mac: m.mac.map(|x| x.to_string()),
                        reason: m.reason.to_string(),
                    })
                    .collect(),
                hijack_attempts: g.hijack_count(),
                discovering: asking.iter().any(|n| n == g.name()),
                last_hijack: g.last_hijack().map(|h| HijackView {
                    port: name(h.port),
                    mac: h.mac.to_string(),
                    secs_ago: ago(h.at),
                }),
                remote_owners: g
                    .remote_owners()
                    .iter()
                    .map(|o| RemoteOwnerView {
                        port: sw.remote_port_name(o.at.port),
                        host: sw.host_name(o.at.host).to_string(),
                        mac: o.mac.to_string(),
                        mac6: o.mac6.to_string(),
                        since_secs_ago: ago(o.since),
                    })
                    .collect(),
                remote_candidates: g
                    .remote_candidates()
                    .iter()
                    .map(|c| format!("{}@{}", sw.remote_port_name(c.port), sw.host_name(c.host)))
                    .collect(),
            })
            .collect()
    }

    fn stats_view(&self) -> Vec<PortStatsView> {
        self.sw
            .ports()
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let c = self.sw.counters(PortId(i as u32))?.values();
                Some(PortStatsView {
                    port: p.name.clone(),
                    up: p.is_up(),
                    rx_frames: c.rx_frames,
                    rx_bytes: c.rx_bytes,
                    tx_frames: c.tx_frames,
                    tx_bytes: c.tx_bytes,
                    answered: c.answered,
                    vip_no_owner: c.vip_no_owner,
                    to_switch: c.to_switch,
                    drops: c.drops.into_iter().collect(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::Config;
    use crate::control::Switch;
    use crate::overlay::{Topology, TopologyHost, TopologyPair, TopologyPort};

    #[test]
    fn show_fdb_lists_remote_macs_with_their_host_and_port() {
        let cfg = Config::from_toml_str(
            "[[port]]\nname = \"vm1\"\ntap = \"t1\"\nmac = \"02:00:00:00:00:01\"\nmtu = 1450\n\
             [cluster]\nendpoints = [\"http://10.250.0.11:2379\"]\nhost = \"host-a\"\n\
             vtep = \"10.250.1.1\"\nvlans = [{ vlan = 0, vni = 5000 }]\n",
        )
        .unwrap();
        let mut sw = Switch::new(cfg, Timestamp(0)).unwrap();
        sw.set_topology(Topology {
            hosts: vec![TopologyHost {
                name: "host-b".into(),
                vtep: "10.250.1.2".parse().unwrap(),
            }],
            ports: vec![TopologyPort {
                name: "far1".into(),
                host: "host-b".into(),
                mac: "02:00:00:00:0b:01".parse().unwrap(),
                ips: vec!["10.0.0.11".parse().unwrap()],
                allowed_address_pairs: vec![TopologyPair {
                    ip: "10.0.0.50/32".parse().unwrap(),
                    mac: "02:00:00:00:0b:02".parse().unwrap(),
                }],
                vlan: 0,
            }],
        });
        let v = fdb_view(&sw, Timestamp(1));
        let cells: Vec<(&str, &str, Option<&str>)> = v
            .iter()
            .map(|e| (e.mac.as_str(), e.port.as_str(), e.host.as_deref()))
            .collect();
        assert_eq!(
            cells,
            vec![
                ("02:00:00:00:00:01", "vm1", None),
                ("02:00:00:00:0b:01", "far1", Some("host-b")),
                ("02:00:00:00:0b:02", "far1", Some("host-b")),
            ]
        );
        // local entries keep their JSON shape (no `host` key)
        let j = serde_json::to_value(&v[0]).unwrap();
        assert!(j.get("host").is_none(), "{j}");
        assert_eq!(serde_json::to_value(&v[1]).unwrap()["host"], "host-b");
    }
}
