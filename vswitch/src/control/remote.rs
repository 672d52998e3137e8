//! The cluster side of [`Switch`]: small typed commands for ownership changes made on
//! other hosts, as the cluster agent learns them from the store (etcd), instead of a
//! whole-config reload.
//!
//! Contract:
//! - hosts and remote ports are named by the caller (cluster-unique port names); the
//!   switch interns them as [`HostId`] / [`RemotePortId`] for the pure table and keeps the
//!   names for events and views. A port name that is one of this switch's ports is that
//!   local port ([`Location::Local`]): a record naming it is this host's own write coming
//!   back, or a resync after a restart;
//! - every command is one [`vip_table`] operation (see `vip_table::vip::cluster` for the
//!   rules and the store order), returns its typed outcome, and on a move emits the same
//!   [`SwitchEvent::VipMoved`] as a local move, with `remote: true`, and the same
//!   announcements to the local non-candidate ports of the VIP's VLAN (with the new
//!   owner's MAC, as the issue asks of remote hosts), then publishes a snapshot;
//! - a record from the store ends owner discovery for its group (it is fresh truth); a host
//!   vanishing that leaves an active-passive group without an owner starts it, as a local
//!   port loss does;
//! - local claims are unchanged; what they must write to the store is
//!   [`Switch::cluster_writes`], a value the agent writes and confirms with
//!   [`Switch::confirm_write`].

use std::collections::HashMap;

use vip_table::{
    HostId, Location, MacAddr, Move, RemoteOutcome, RemotePort, RemotePortId, Stamp, Timestamp,
    VipId, VipMode,
};

use super::{ControlError, Outbound, Switch};
use crate::discovery::Trigger;

/// Names of the cluster's other hosts and ports, interned.
#[derive(Debug, Default)]
pub(super) struct Names {
    hosts: Vec<String>,
    host_ids: HashMap<String, HostId>,
    ports: Vec<String>,
    port_ids: HashMap<String, RemotePortId>,
}

fn intern<I: Copy>(
    names: &mut Vec<String>,
    ids: &mut HashMap<String, I>,
    name: &str,
    make: impl Fn(u32) -> I,
) -> I {
    if let Some(id) = ids.get(name) {
        return *id;
    }
    let id = make(names.len() as u32);
    names.push(name.to_string());
    ids.insert(name.to_string(), id);
    id
}

/// One owner of a [`ClusterWrite`], by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedOwner {
    /// The port (cluster-unique name).
    pub port: String,
    /// Its host; `None`: this host.
    pub host: Option<String>,
    /// Its IPv4 MAC.
    pub mac: MacAddr,
    /// Its IPv6 MAC.
    pub mac6: MacAddr,
}

/// A record a local change must write to the store (see [`vip_table::OwnerWrite`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterWrite {
    /// Group name.
    pub vip: String,
    /// The epoch the change was made at.
    pub epoch: u64,
    /// The revision to condition the transaction on (`None`: the store has no record).
    pub base_revision: Option<u64>,
    /// The owners after the change.
    pub owners: Vec<NamedOwner>,
}

/// An owner as a record from the store names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteOwnerRecord<'a> {
    /// The owner's host.
    pub host: &'a str,
    /// The owner's port (cluster-unique name).
    pub port: &'a str,
    /// Its IPv4 MAC.
    pub mac: MacAddr,
    /// Its IPv6 MAC.
    pub mac6: MacAddr,
}

impl Switch {
    /// The id of host `name` (interned on first use).
    pub fn host_id(&mut self, name: &str) -> HostId {
        let n = &mut self.remote;
        intern(&mut n.hosts, &mut n.host_ids, name, HostId)
    }

    /// The name of a host (`?` for an id this switch never gave out).
    pub fn host_name(&self, id: HostId) -> &str {
        self.remote
            .hosts
            .get(id.0 as usize)
            .map_or("?", String::as_str)
    }

    /// The name of a remote port.
    pub fn remote_port_name(&self, id: RemotePortId) -> String {
        self.remote
            .ports
            .get(id.0 as usize)
            .cloned()
            .unwrap_or_else(|| "?".to_string())
    }

    fn remote_port(&mut self, host: &str, port: &str) -> RemotePort {
        let host = self.host_id(host);
        let n = &mut self.remote;
        let port = intern(&mut n.ports, &mut n.port_ids, port, RemotePortId);
        RemotePort { host, port }
    }

    /// Where port `port` on `host` is: a local port if this switch has one by that name.
    fn location(&mut self, host: &str, port: &str) -> Location {
        match self.port_id(port) {
            Some(p) => Location::Local(p),
            None => Location::Remote(self.remote_port(host, port)),
        }
    }

    fn vip_id(&self, vip: &str) -> Result<VipId, ControlError> {
        self.vips
            .find(vip)
            .ok_or_else(|| ControlError::UnknownVip(vip.to_string()))
    }

    fn after_remote(
        &mut self,
        id: VipId,
        out: RemoteOutcome,
        tx: &mut Vec<Outbound>,
    ) -> RemoteOutcome {
        if let RemoteOutcome::Applied(m) = out {
            self.after_applied(id, m, tx);
        }
        out
    }

    /// A record was applied to group `id` with these moves: discovery ends (the store's
    /// record is the freshest truth), every move is emitted and announced, a snapshot goes
    /// out.
    fn after_applied(
        &mut self,
        id: VipId,
        moves: impl IntoIterator<Item = Move>,
        tx: &mut Vec<Outbound>,
    ) {
        self.discovery.stop(id);
        for m in moves {
            self.on_move_from(id, m, true, tx);
        }
        self.publish(false);
    }

    /// A record from the store: `owner` became the owner of `vip` (A/P) or joined its
    /// owners (A/A) at `stamp`.
    pub fn apply_remote_owner(
        &mut self,
        vip: &str,
        owner: RemoteOwnerRecord<'_>,
        stamp: Stamp,
        now: Timestamp,
        out: &mut Vec<Outbound>,
    ) -> Result<RemoteOutcome, ControlError> {
        let id = self.vip_id(vip)?;
        let at = self.location(owner.host, owner.port);
        let r = self
            .vips
            .apply_remote_move(id, stamp, at, owner.mac, owner.mac6, now)
            .ok_or_else(|| ControlError::UnknownVip(vip.to_string()))?;
        Ok(self.after_remote(id, r, out))
    }

    /// A whole ownership record from the store: `owners` are every owner of `vip` at
    /// `stamp` (active-active: the set replaces the group's; active-passive: the first
    /// becomes the owner, none releases; see `vip_table::VipGroup::apply_remote_owner_set`).
    /// Every move is announced and emitted as [`Switch::apply_remote_owner`] does for one.
    pub fn apply_remote_owners(
        &mut self,
        vip: &str,
        owners: &[RemoteOwnerRecord<'_>],
        stamp: Stamp,
        now: Timestamp,
        out: &mut Vec<Outbound>,
    ) -> Result<RemoteOutcome, ControlError> {
        let id = self.vip_id(vip)?;
        let set: Vec<vip_table::OwnerEntry> = owners
            .iter()
            .map(|o| vip_table::OwnerEntry {
                at: self.location(o.host, o.port),
                mac: o.mac,
                mac6: o.mac6,
            })
            .collect();
        let mut moves = Vec::new();
        let r = self
            .vips
            .apply_remote_owner_set(id, stamp, &set, now, &mut moves)
            .ok_or_else(|| ControlError::UnknownVip(vip.to_string()))?;
        if let RemoteOutcome::Applied(_) = r {
            self.after_applied(id, moves, out);
        }
        Ok(r)
    }

    /// A record from the store: `port` on `host` released `vip` at `stamp`.
    pub fn apply_remote_release(
        &mut self,
        vip: &str,
        host: &str,
        port: &str,
        stamp: Stamp,
        now: Timestamp,
        out: &mut Vec<Outbound>,
    ) -> Result<RemoteOutcome, ControlError> {
        let id = self.vip_id(vip)?;
        let at = self.location(host, port);
        let r = self
            .vips
            .apply_remote_release(id, stamp, at, now)
            .ok_or_else(|| ControlError::UnknownVip(vip.to_string()))?;
        Ok(self.after_remote(id, r, out))
    }

    /// The store accepted the write of [`Switch::cluster_writes`] for `vip` at `stamp`.
    pub fn confirm_write(
        &mut self,
        vip: &str,
        stamp: Stamp,
    ) -> Result<RemoteOutcome, ControlError> {
        let id = self.vip_id(vip)?;
        self.vips
            .confirm_write(id, stamp)
            .ok_or_else(|| ControlError::UnknownVip(vip.to_string()))
    }

    /// Port `port` of host `host` became a candidate of `vip` (or moved to `host`).
    /// Returns true if anything changed. A port of this switch cannot be a remote candidate:
    /// [`ControlError::LocalPort`].
    pub fn add_remote_candidate(
        &mut self,
        vip: &str,
        host: &str,
        port: &str,
    ) -> Result<bool, ControlError> {
        let id = self.vip_id(vip)?;
        let Location::Remote(at) = self.location(host, port) else {
            return Err(ControlError::LocalPort(port.to_string()));
        };
        let changed = self
            .vips
            .group_mut(id)
            .is_some_and(|g| g.add_remote_candidate(at));
        if changed {
            self.publish(false);
        }
        Ok(changed)
    }

    /// Port `port` of another host is no longer a candidate of `vip`; returns the move if
    /// it owned the group.
    pub fn remove_remote_candidate(
        &mut self,
        vip: &str,
        port: &str,
        now: Timestamp,
        out: &mut Vec<Outbound>,
    ) -> Result<Option<Move>, ControlError> {
        let id = self.vip_id(vip)?;
        let Some(pid) = self.remote.port_ids.get(port).copied() else {
            return Ok(None);
        };
        let m = self
            .vips
            .group_mut(id)
            .and_then(|g| g.remove_remote_candidate(pid, now));
        if let Some(m) = m {
            self.on_move_from(id, m, true, out);
            self.start_discovery_if_ownerless(id, now);
        }
        self.publish(false);
        Ok(m)
    }

    /// Host `host` vanished (its lease expired): every group drops its candidates and
    /// owners there. Returns the moves; an active-passive group left without an owner
    /// starts owner discovery.
    pub fn host_gone(
        &mut self,
        host: &str,
        now: Timestamp,
        out: &mut Vec<Outbound>,
    ) -> Vec<(VipId, Move)> {
        let Some(h) = self.remote.host_ids.get(host).copied() else {
            return Vec::new();
        };
        let moves = self.vips.host_gone(h, now);
        for &(id, m) in &moves {
            self.on_move_from(id, m, true, out);
            self.start_discovery_if_ownerless(id, now);
        }
        self.publish(false);
        moves
    }

    fn start_discovery_if_ownerless(&mut self, id: VipId, now: Timestamp) {
        let unowned = self
            .vips
            .group(id)
            .is_some_and(|g| g.mode() == VipMode::ActivePassive && !g.has_owner());
        if unowned {
            self.start_discovery(id, Trigger::NoOwner, now);
        }
    }

    /// The records local changes must write to the store (claims, discovery answers,
    /// operator commands, port losses not yet confirmed), by group name.
    pub fn cluster_writes(&self) -> Vec<ClusterWrite> {
        self.vips
            .cluster_writes()
            .into_iter()
            .filter_map(|(id, w)| {
                let g = self.vips.group(id)?;
                let owners = w
                    .owners
                    .iter()
                    .map(|e| {
                        let (port, host) = match e.at {
                            Location::Local(p) => (self.port_name(p).to_string(), None),
                            Location::Remote(r) => (
                                self.remote_port_name(r.port),
                                Some(self.host_name(r.host).to_string()),
                            ),
                        };
                        NamedOwner {
                            port,
                            host,
                            mac: e.mac,
                            mac6: e.mac6,
                        }
                    })
                    .collect();
                Some(ClusterWrite {
                    vip: g.name().to_string(),
                    epoch: w.epoch,
                    base_revision: w.base_revision,
                    owners,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
