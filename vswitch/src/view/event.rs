//! [`Event`]: what the control thread announces to its subscribers.
//!
//! Contract:
//! - an event is something an operator (or a cluster agent) acts on: a VIP moved, a claim
//!   was held by damping, a hijack was refused, a split brain was seen, saved state was
//!   restored, owner discovery started, a VRRP step-down was sent, a port went up or down,
//!   a reload was applied or refused. Each is emitted once, by the control thread, right
//!   after the change it reports is in place (and is logged with the same `event` name);
//! - on the wire (`watch`) an event is one JSON object per line, tagged by `"event"` with
//!   the log's event names (`vip_moved`, `port_state`, …);
//! - delivery never blocks the control thread: every subscriber has a bounded queue
//!   ([`SUBSCRIBER_QUEUE`]); an event that does not fit is dropped for that subscriber and
//!   counted, and the subscriber then receives one [`Event::Lagged`] with the number it
//!   missed before its next event (or within a control-loop round, ≤ 200 ms, once there is
//!   room). A subscriber that is gone is forgotten at the next event;
//! - a subscriber sees the events emitted after it was registered (for the in-process
//!   API, once `subscribe` has returned; for `watch`, once the `{"ok":{"watching":true}}`
//!   line has been sent), in the order the control thread emitted them.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use vip_table::Timestamp;

use crate::control::SwitchEvent;

/// Events a subscriber's queue holds before it lags.
pub const SUBSCRIBER_QUEUE: usize = 1024;

/// Something the control thread did or saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// VIP ownership changed.
    VipMoved {
        /// Group name.
        vip: String,
        /// Previous (A/P) or leaving (A/A) owner.
        from: Option<String>,
        /// New (A/P) or joining (A/A) owner.
        to: Option<String>,
        /// The new owner's MAC.
        mac: Option<String>,
        /// Epoch after the move.
        epoch: u64,
        /// Why (`claim`, `admin`, `port-down`, …).
        reason: String,
        /// When, on the switch's clock (`CLOCK_MONOTONIC`, ns).
        at_ns: u64,
        /// Learned from the cluster store, not made here (absent when false).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        remote: bool,
        /// The host of the remote side, when a side is a port of another host.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host: Option<String>,
    },
    /// A claim was held back by damping; it will be applied at `due_ns`.
    VipClaimPending {
        /// Group name.
        vip: String,
        /// Claimant port.
        port: String,
        /// When it will be applied (switch clock, ns).
        due_ns: u64,
    },
    /// A non-candidate claimed a VIP address: refused.
    VipHijack {
        /// Group name.
        vip: String,
        /// The address claimed.
        addr: IpAddr,
        /// Offending port.
        port: String,
        /// Its MAC.
        mac: String,
    },
    /// Two candidates of an active-passive group answered the same discovery round.
    VipSplitBrain {
        /// Group name.
        vip: String,
        /// The answering ports.
        ports: Vec<String>,
        /// The port that holds the group meanwhile.
        holder: Option<String>,
    },
    /// VIP state saved by an earlier instance of the switch was restored.
    VipRestored {
        /// Group name.
        vip: String,
        /// The restored owners.
        owners: Vec<String>,
        /// The epoch.
        epoch: u64,
    },
    /// The switch started asking a group's candidates who holds its addresses.
    VipDiscovery {
        /// Group name.
        vip: String,
        /// Why (`start`, `reload`, …).
        trigger: String,
    },
    /// The priority-0 copy of a vanished master's VRRP advert was sent for it.
    VrrpStepDown {
        /// Group name.
        vip: String,
        /// The dead master's port.
        port: String,
        /// VRRP router id.
        vrid: u8,
        /// `ipv4` / `ipv6`.
        family: String,
        /// The advert's IP destination.
        dst: IpAddr,
        /// Ports it was sent to.
        to: Vec<String>,
    },
    /// A port went up or down.
    PortState {
        /// Port name.
        port: String,
        /// Up now.
        up: bool,
        /// `admin` or `device`.
        cause: String,
    },
    /// A configuration reload was applied.
    Reloaded {
        /// Ports that are new (or whose binding changed).
        added: Vec<String>,
        /// Ports that are gone (or whose binding changed).
        removed: Vec<String>,
        /// Ports kept.
        kept: Vec<String>,
    },
    /// A configuration reload was refused; the running configuration stays.
    ReloadRefused {
        /// Why.
        error: String,
    },
    /// This subscriber's queue was full: `missed` events were dropped for it.
    Lagged {
        /// Events dropped since the last one delivered.
        missed: u64,
    },
}

impl From<&SwitchEvent> for Event {
    fn from(e: &SwitchEvent) -> Self {
        match e {
            SwitchEvent::VipMoved {
                vip,
                from,
                to,
                mac,
                epoch,
                reason,
                at,
                remote,
                host,
            } => Event::VipMoved {
                vip: vip.clone(),
                from: from.clone(),
                to: to.clone(),
                mac: mac.map(|m| m.to_string()),
                epoch: *epoch,
                reason: reason.to_string(),
                at_ns: at.as_nanos(),
                remote: *remote,
                host: host.clone(),
            },
            SwitchEvent::VipClaimPending { vip, port, due } => Event::VipClaimPending {
                vip: vip.clone(),
                port: port.clone(),
                due_ns: due.as_nanos(),
            },
            SwitchEvent::VipHijack {
                vip,
                addr,
                port,
                mac,
            } => Event::VipHijack {
                vip: vip.clone(),
                addr: *addr,
                port: port.clone(),
                mac: mac.to_string(),
            },
            SwitchEvent::VipSplitBrain { vip, ports, holder } => Event::VipSplitBrain {
                vip: vip.clone(),
                ports: ports.clone(),
                holder: holder.clone(),
            },
            SwitchEvent::VipRestored { vip, owners, epoch } => Event::VipRestored {
                vip: vip.clone(),
                owners: owners.clone(),
                epoch: *epoch,
            },
            SwitchEvent::VipDiscovery { vip, trigger } => Event::VipDiscovery {
                vip: vip.clone(),
                trigger: trigger.to_string(),
            },
            SwitchEvent::VrrpStepDown {
                vip,
                port,
                vrid,
                family,
                dst,
                to,
            } => Event::VrrpStepDown {
                vip: vip.clone(),
                port: port.clone(),
                vrid: *vrid,
                family: (*family).to_string(),
                dst: *dst,
                to: to.clone(),
            },
            SwitchEvent::PortState { port, up, cause } => Event::PortState {
                port: port.clone(),
                up: *up,
                cause: (*cause).to_string(),
            },
        }
    }
}

/// One line for a human (`vswitch ctl watch`); the switch events read as the switch log
/// writes them.
impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let or_none = |o: &Option<String>| o.clone().unwrap_or_else(|| "none".to_string());
        match self {
            Event::VipMoved {
                vip,
                from,
                to,
                mac,
                epoch,
                reason,
                remote,
                host,
                ..
            } => {
                write!(
                    f,
                    "vip {vip}: {} -> {} (mac {}), epoch {epoch}, reason {reason}",
                    or_none(from),
                    or_none(to),
                    mac.as_deref().unwrap_or("-"),
                )?;
                match (remote, host) {
                    (_, Some(h)) => write!(f, ", remote host {h}"),
                    (true, None) => f.write_str(", remote"),
                    (false, None) => Ok(()),
                }
            }
            Event::VipClaimPending { vip, port, due_ns } => write!(
                f,
                "vip {vip}: claim from {port} held by damping until {}",
                Timestamp(*due_ns)
            ),
            Event::VipHijack {
                vip,
                addr,
                port,
                mac,
            } => write!(
                f,
                "vip {vip}: HIJACK refused: {port} ({mac}) claimed {addr}"
            ),
            Event::VipSplitBrain { vip, ports, holder } => write!(
                f,
                "vip {vip}: SPLIT BRAIN: {} answered the discovery probe; {} holds it until one answer remains",
                ports.join(" and "),
                or_none(holder),
            ),
            Event::VipRestored { vip, owners, epoch } => write!(
                f,
                "vip {vip}: restored owner {} at epoch {epoch}",
                if owners.is_empty() {
                    "none".to_string()
                } else {
                    owners.join(", ")
                },
            ),
            Event::VipDiscovery { vip, trigger } => {
                write!(f, "vip {vip}: asking the candidates who holds it ({trigger})")
            }
            Event::VrrpStepDown {
                vip,
                port,
                vrid,
                family,
                dst,
                to,
            } => write!(
                f,
                "vip {vip}: {port} vanished: priority-0 advert vrid {vrid} ({family}, to {dst}) sent for it to {}",
                to.join(",")
            ),
            Event::PortState { port, up, cause } => write!(
                f,
                "port {port} {} ({cause})",
                if *up { "up" } else { "down" }
            ),
            Event::Reloaded {
                added,
                removed,
                kept,
            } => write!(
                f,
                "configuration reloaded: added {added:?}, removed {removed:?}, kept {}",
                kept.len()
            ),
            Event::ReloadRefused { error } => write!(
                f,
                "configuration reload refused; the running configuration stays: {error}"
            ),
            Event::Lagged { missed } => write!(
                f,
                "(lagged: {missed} events dropped for this watcher)"
            ),
        }
    }
}
