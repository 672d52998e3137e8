//! Port state in [`Switch`]: a device appearing or vanishing, an operator's `port up|down`.
//!
//! Contract:
//! - every change goes through one path ([`Switch::change_ports`]): for each port that
//!   goes from up to down, a crashed master's VRRP resignation (a device that vanished),
//!   its learned MACs flushed, its VIP ownership given up (discovery for a group left
//!   without an owner); for each that comes up, discovery of its groups (the VM behind it
//!   may hold a VIP already); a [`SwitchEvent::PortState`] either way;
//! - the flood masks are recomputed (O(ports²)) and one snapshot published (a copy of the
//!   VIP table) once per call, not per port: a daemon start with many ports down, a
//!   reload's unavailable ports and one re-attach round are one call each.

use vip_table::{PortId, Timestamp, VipMode};

use super::{ControlError, Outbound, Switch, SwitchEvent};
use crate::discovery::Trigger;
use crate::pipeline::recompute_masks;

/// One port's change.
#[derive(Clone, Copy, Debug)]
enum Change {
    /// The device behind it appeared (`true`) or vanished.
    Device(bool),
    /// The operator set it up (`true`) or down.
    Admin(bool),
}

impl Switch {
    /// The device behind a port appeared or vanished.
    pub fn set_port_oper(
        &mut self,
        pid: PortId,
        up: bool,
        now: Timestamp,
        out: &mut Vec<Outbound>,
    ) {
        self.set_ports_oper(&[(pid, up)], now, out);
    }

    /// Several devices appeared or vanished at once (the daemon's start, a reload, one
    /// attach round): each change as [`Switch::set_port_oper`] makes it, in the order given,
    /// with one recomputation of the flood masks and one snapshot at the end.
    pub fn set_ports_oper(
        &mut self,
        changes: &[(PortId, bool)],
        now: Timestamp,
        out: &mut Vec<Outbound>,
    ) {
        self.change_ports(
            changes.iter().map(|&(p, up)| (p, Change::Device(up))),
            now,
            out,
        );
    }

    /// Operator command: `port up|down NAME`.
    pub fn set_port_admin(
        &mut self,
        name: &str,
        up: bool,
        now: Timestamp,
        out: &mut Vec<Outbound>,
    ) -> Result<(), ControlError> {
        let pid = self
            .port_id(name)
            .filter(|p| p.index() < self.ports.len())
            .ok_or_else(|| ControlError::UnknownPort(name.to_string()))?;
        self.change_ports([(pid, Change::Admin(up))], now, out);
        Ok(())
    }

    /// Apply `changes` in order (see the module doc); one mask recompute and one snapshot
    /// if any port's state changed.
    fn change_ports(
        &mut self,
        changes: impl IntoIterator<Item = (PortId, Change)>,
        now: Timestamp,
        out: &mut Vec<Outbound>,
    ) {
        let mut changed = false;
        for (pid, change) in changes {
            let Some(p) = self.ports.get_mut(pid.index()) else {
                continue;
            };
            let was = p.is_up();
            let cause = match change {
                Change::Device(up) => {
                    p.oper_up = up;
                    "device"
                }
                Change::Admin(up) => {
                    p.admin_up = up;
                    "admin"
                }
            };
            let (up, name) = (p.is_up(), p.name.clone());
            if up == was {
                continue;
            }
            if matches!(change, Change::Device(false)) {
                self.step_down_for(pid, now, out);
            }
            self.events.push(SwitchEvent::PortState {
                port: name,
                up,
                cause,
            });
            if up {
                self.vips.port_up(pid);
                for id in self.vips.groups_of(pid).to_vec() {
                    self.start_discovery(id, Trigger::PortUp, now);
                }
            } else {
                self.fdb.flush_port(pid);
                for (id, m) in self.vips.port_down(pid, now) {
                    self.on_move(id, m, out);
                    let unowned = self.vips.group(id).is_some_and(|g| {
                        g.mode() == VipMode::ActivePassive && g.owners().is_empty()
                    });
                    if unowned {
                        self.start_discovery(id, Trigger::NoOwner, now);
                    }
                }
            }
            changed = true;
        }
        if changed {
            recompute_masks(&mut self.ports, &self.vips);
            self.publish(true);
        }
    }
}
