//! The answers to operator commands: JSON views of the control state (`show ports`, `fdb`,
//! `vips`, `stats`) and the state-changing commands.

use serde_json::{json, Value};
use vip_table::{PortId, Timestamp};

use crate::control::Outbound;

use super::{Command, Reply};

use super::control_loop::ControlLoop;

impl ControlLoop {
    pub(super) fn command(&mut self, cmd: Command, ob: &mut Vec<Outbound>) -> Reply {
        let now = self.clock.now();
        let ago = |t: Timestamp| now.saturating_since(t).as_secs_f64();
        match cmd {
            Command::ShowPorts => {
                let cfg = self.sw.config();
                let v: Vec<Value> = self
                    .sw
                    .ports()
                    .iter()
                    .filter_map(|p| {
                        let pc = cfg.port(&p.name)?;
                        let vips: Vec<&str> = cfg
                            .vips
                            .iter()
                            .filter(|v| v.is_candidate(&p.name))
                            .map(|v| v.name.as_str())
                            .collect();
                        Some(json!({
                            "name": p.name,
                            "binding": pc.binding.kind(),
                            "ifname": pc.binding.ifname(),
                            "mac": pc.mac.to_string(),
                            "ips": pc.ips.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
                            "allowed_address_pairs": pc.allowed_address_pairs.iter().map(|a| json!({"ip": a.ip.to_string(), "mac": a.mac.to_string()})).collect::<Vec<_>>(),
                            "vlan": p.vlan,
                            "mtu": p.mtu,
                            "admin_up": p.admin_up,
                            "oper_up": p.oper_up,
                            "port_security": p.policy.port_security,
                            "dest_check": p.policy.dest_check,
                            "vip_candidate_of": vips,
                        }))
                    })
                    .collect();
                Ok(Value::Array(v))
            }
            Command::ShowFdb => {
                let v: Vec<Value> = self
                    .sw
                    .fdb()
                    .entries(now)
                    .into_iter()
                    .map(|(vlan, mac, port, st, age)| {
                        json!({"vlan": vlan, "mac": mac.to_string(), "port": self.sw.port_name(port), "static": st, "age_secs": age as f64 / 1e9})
                    })
                    .collect();
                Ok(Value::Array(v))
            }
            Command::ShowVips => {
                let sw = &self.sw;
                let asking = sw.discovering();
                let v: Vec<Value> = sw
                    .vips()
                    .groups()
                    .map(|(_, g)| {
                        json!({
                            "name": g.name(),
                            "mode": g.mode().to_string(),
                            "addresses": g.addresses().iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                            "candidates": g.candidates().iter().map(|c| sw.port_name(*c)).collect::<Vec<_>>(),
                            "owners": g.owners().iter().map(|o| json!({"port": sw.port_name(o.port), "mac": o.mac.to_string(), "mac6": o.mac6.to_string(), "since_secs_ago": ago(o.since), "last_claim_secs_ago": ago(o.last_claim)})).collect::<Vec<_>>(),
                            "answer_mac": g.answer_mac().map(|m| m.to_string()),
                            "answer_mac6": g.answer_mac6().map(|m| m.to_string()),
                            "epoch": g.epoch(),
                            "last_claim": g.last_claim().map(|(t, p)| json!({"port": sw.port_name(p), "secs_ago": ago(t)})),
                            "pending": g.pending().map(|p| json!({"port": sw.port_name(p.port), "mac": p.mac.to_string(), "due_in_secs": p.due.saturating_since(now).as_secs_f64()})),
                            "moves": g.history().map(|m| json!({"secs_ago": ago(m.at), "epoch": m.epoch, "from": m.from.map(|p| sw.port_name(p)), "to": m.to.map(|p| sw.port_name(p)), "mac": m.mac.map(|x| x.to_string()), "reason": m.reason.to_string()})).collect::<Vec<_>>(),
                            "hijack_attempts": g.hijack_count(),
                            "discovering": asking.iter().any(|n| n == g.name()),
                            "last_hijack": g.last_hijack().map(|h| json!({"port": sw.port_name(h.port), "mac": h.mac.to_string(), "secs_ago": ago(h.at)})),
                        })
                    })
                    .collect();
                Ok(Value::Array(v))
            }
            Command::ShowStats => {
                let v: Vec<Value> = self
                    .sw
                    .ports()
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| {
                        let c = self.sw.counters(PortId(i as u32))?.values();
                        let drops: serde_json::Map<String, Value> =
                            c.drops.iter().map(|(k, n)| (k.clone(), json!(n))).collect();
                        Some(json!({"port": p.name, "up": p.is_up(), "rx_frames": c.rx_frames, "rx_bytes": c.rx_bytes, "tx_frames": c.tx_frames, "tx_bytes": c.tx_bytes, "answered": c.answered, "vip_no_owner": c.vip_no_owner, "to_switch": c.to_switch, "drops": drops}))
                    })
                    .collect();
                Ok(Value::Array(v))
            }
            Command::VipMove { vip, port } => self
                .sw
                .vip_move(&vip, &port, now, ob)
                .map(|m| json!({"moved": m.is_some(), "epoch": m.map(|m| m.epoch)}))
                .map_err(|e| e.to_string()),
            Command::VipRelease { vip, port } => self
                .sw
                .vip_release(&vip, &port, now, ob)
                .map(|m| json!({"released": m.is_some()}))
                .map_err(|e| e.to_string()),
            Command::PortAdmin { port, up } => self
                .sw
                .set_port_admin(&port, up, now, ob)
                .map(|_| json!({"port": port, "admin_up": up}))
                .map_err(|e| e.to_string()),
            Command::Reload => self
                .reload()
                .map(|s| json!({"reloaded": true, "summary": s})),
            Command::Metrics => Ok(Value::String(crate::metrics::render(&self.sw, now))),
        }
    }
}
