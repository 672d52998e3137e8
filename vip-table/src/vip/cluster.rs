//! A VIP group in a cluster: owners and candidates on other hosts, and the small typed
//! operations that change them when the cluster store (etcd) says so. No whole-config
//! reload is involved.
//!
//! Contract:
//! - **local claims keep every local rule** (candidacy, hijack refusal, damping, A/P vs
//!   A/A). A local change marks the group *dirty*; [`VipGroup::cluster_write`] is then the
//!   record to write to the store (the owners, the epoch it was made at and the revision to
//!   condition the transaction on), as a value. The caller writes it and reports the
//!   revision with [`VipGroup::confirm_write`]; if the write loses a race, the winner's
//!   record arrives like any other and is applied;
//! - **records from the store** ([`VipGroup::apply_remote_move`],
//!   [`VipGroup::apply_remote_release`]) are applied iff their [`Stamp`] is newer than the
//!   group's confirmed one ([`Stamp::newer_than`]); otherwise they change nothing and
//!   return [`RemoteOutcome::Stale`] — except the confirmed record itself, given again
//!   while the group lacks the owner it names (A/P: has no owner) and has no unwritten
//!   local change: it re-installs an owner dropped
//!   because its host's lease expired (or its port record went) once that host is back,
//!   as its record still stands in the store. A record naming a port that is not a candidate
//!   (local or remote) is refused: [`RemoteOutcome::NotACandidate`]. Records are never
//!   damped (the claiming host damped the claim), but an applied move counts in the damping
//!   window, so a pair flapping across hosts is damped like one flapping on one host;
//! - the local epoch never goes back: an applied record that changes ownership sets it to
//!   `max(epoch + 1, record epoch)`, one that changes nothing to `max(epoch, record epoch)`;
//! - an active-passive record replaces whatever owner the group had, local or remote, and
//!   withdraws a pending local claim (the record is newer truth); in active-active a move
//!   is a join and a release a leave of that one owner;
//! - **membership changes** ([`VipGroup::add_remote_candidate`],
//!   [`VipGroup::remove_remote_candidate`], [`VipGroup::host_gone`]) come from the store's
//!   port and host records. They write nothing back: every host sees the same lease expire.
//!   An active-passive group whose owner vanished with its host is left without an owner
//!   (the caller starts owner discovery, as for a local port loss with
//!   `release_on_port_loss`).

use std::sync::Arc;

use super::{mix64, Move, MoveReason, Owner, VipGroup, VipId, VipMode, VipTable};
use crate::addr::MacAddr;
use crate::location::{HostId, Location, RemotePort, RemotePortId, StaleReason, Stamp};
use crate::time::Timestamp;

/// An owner on another host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteOwner {
    /// Where it is.
    pub at: RemotePort,
    /// The MAC for IPv4 (ARP answers, steering).
    pub mac: MacAddr,
    /// The MAC for IPv6.
    pub mac6: MacAddr,
    /// When this switch learned it.
    pub since: Timestamp,
}

/// The owner a flow goes to ([`VipGroup::select`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selected<'a> {
    /// A port of this switch.
    Local(&'a Owner),
    /// A port of another host.
    Remote(&'a RemoteOwner),
}

/// One owner in a record for the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnerEntry {
    /// Where it is.
    pub at: Location,
    /// Its IPv4 MAC.
    pub mac: MacAddr,
    /// Its IPv6 MAC.
    pub mac6: MacAddr,
}

/// What a local change must write to the store ([`VipGroup::cluster_write`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerWrite {
    /// The epoch the change was made at (the record's epoch).
    pub epoch: u64,
    /// The revision to condition the transaction on: the confirmed record's, `None` when
    /// the store has no record of the group yet (create-if-absent).
    pub base_revision: Option<u64>,
    /// All owners (A/P: zero or one), local and remote.
    pub owners: Vec<OwnerEntry>,
}

/// What a record from the store did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteOutcome {
    /// Applied; `Some` if ownership changed.
    Applied(Option<Move>),
    /// Not newer than what the group has: nothing changed.
    Stale {
        /// The group's confirmed stamp.
        have: Stamp,
        /// The record's.
        got: Stamp,
        /// Why it is not newer.
        reason: StaleReason,
    },
    /// The record names a port that is not a candidate of the group: refused.
    NotACandidate {
        /// The port.
        at: Location,
    },
}

#[inline]
pub(super) fn remote_key(r: RemotePort) -> u64 {
    // a different key space than local ports (`port + 1`), so the two never collide
    mix64((1 << 40) | u64::from(r.port.0))
}

impl VipGroup {
    /// Does the group have any owner, here or on another host?
    #[inline]
    pub fn has_owner(&self) -> bool {
        !self.owners.is_empty() || !self.remote_owners.is_empty()
    }

    /// Is the owner at `at` (local port or remote port) one of the owners?
    fn has_owner_at(&self, at: Location) -> bool {
        match at {
            Location::Local(p) => self.owners.iter().any(|o| o.port == p),
            Location::Remote(r) => self.remote_owners.iter().any(|o| o.at == r),
        }
    }

    /// Owners on other hosts.
    pub fn remote_owners(&self) -> &[RemoteOwner] {
        &self.remote_owners
    }

    /// Candidates on other hosts.
    pub fn remote_candidates(&self) -> &[RemotePort] {
        &self.remote_candidates
    }

    /// Is `at` a candidate (a local candidate port, or a remote candidate on that host)?
    pub fn is_candidate_at(&self, at: Location) -> bool {
        match at {
            Location::Local(p) => self.is_candidate(p),
            Location::Remote(r) => self.remote_candidates.contains(&r),
        }
    }

    /// The stamp of the last record applied from or confirmed by the store.
    pub fn confirmed(&self) -> Option<Stamp> {
        self.confirmed
    }

    /// True while a local change has not been confirmed by the store.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// The owner that should receive a flow with hash `flow_hash`, local or remote. With no
    /// remote owner this is [`VipGroup::select_owner`]: one length test more.
    #[inline]
    pub fn select(&self, flow_hash: u64) -> Option<Selected<'_>> {
        if self.remote_owners.is_empty() {
            return self.select_owner(flow_hash).map(Selected::Local);
        }
        if self.owners.is_empty() && self.remote_owners.len() == 1 {
            return self.remote_owners.first().map(Selected::Remote);
        }
        let local = self.owners.iter().map(|o| {
            (
                mix64(flow_hash ^ mix64(u64::from(o.port.0) + 1)),
                Selected::Local(o),
            )
        });
        let remote = self
            .remote_owners
            .iter()
            .map(|o| (mix64(flow_hash ^ remote_key(o.at)), Selected::Remote(o)));
        local.chain(remote).max_by_key(|(k, _)| *k).map(|(_, s)| s)
    }

    /// All owners as store entries.
    fn entries(&self) -> Vec<OwnerEntry> {
        self.owners
            .iter()
            .map(|o| OwnerEntry {
                at: Location::Local(o.port),
                mac: o.mac,
                mac6: o.mac6,
            })
            .chain(self.remote_owners.iter().map(|o| OwnerEntry {
                at: Location::Remote(o.at),
                mac: o.mac,
                mac6: o.mac6,
            }))
            .collect()
    }

    /// The record a local change must write to the store, `None` when there is nothing to
    /// write (no local change since the last confirmed record).
    pub fn cluster_write(&self) -> Option<OwnerWrite> {
        self.dirty.then(|| OwnerWrite {
            epoch: self.epoch,
            base_revision: self.confirmed.map(|s| s.revision),
            owners: self.entries(),
        })
    }

    /// The store accepted a write made from [`VipGroup::cluster_write`] at `stamp.epoch`,
    /// as revision `stamp.revision`. Clears the dirty mark if no local change came since.
    /// A stamp that is not newer than the confirmed one changes nothing.
    pub fn confirm_write(&mut self, stamp: Stamp) -> RemoteOutcome {
        if let Err(reason) = stamp.newer_than(self.confirmed) {
            return self.stale(stamp, reason);
        }
        self.lost_owners.clear();
        self.confirmed = Some(stamp);
        if stamp.epoch >= self.epoch {
            self.dirty = false;
        }
        self.epoch = self.epoch.max(stamp.epoch);
        RemoteOutcome::Applied(None)
    }

    fn stale(&self, got: Stamp, reason: StaleReason) -> RemoteOutcome {
        RemoteOutcome::Stale {
            have: self.confirmed.unwrap_or_default(),
            got,
            reason,
        }
    }

    /// Accept `stamp` as confirmed; `changed`: ownership changed.
    fn advance(&mut self, stamp: Stamp, changed: bool) {
        self.epoch = if changed {
            (self.epoch + 1).max(stamp.epoch)
        } else {
            self.epoch.max(stamp.epoch)
        };
        if self.confirmed != Some(stamp) {
            self.lost_owners.clear();
        }
        self.confirmed = Some(stamp);
    }

    /// A record from the store: `to` (a local or remote candidate, speaking as `mac` for
    /// IPv4 and `mac6` for IPv6) became the owner (A/P) or joined the owners (A/A), at
    /// `stamp`.
    pub fn apply_remote_move(
        &mut self,
        stamp: Stamp,
        to: Location,
        mac: MacAddr,
        mac6: MacAddr,
        now: Timestamp,
    ) -> RemoteOutcome {
        if let Err(reason) = stamp.newer_than(self.confirmed) {
            // the record last confirmed, given again, re-installs an owner that was dropped
            // only because its location went (its host's lease expired, its port record
            // went) and is back; never over a local change not yet written
            let lost = match to {
                Location::Remote(r) => self.lost_owners.contains(&r),
                Location::Local(_) => false,
            };
            let missing = match self.spec.mode {
                VipMode::ActivePassive => !self.has_owner(),
                VipMode::ActiveActive => !self.has_owner_at(to),
            };
            if reason != StaleReason::Duplicate
                || self.dirty
                || !lost
                || !missing
                || !self.is_candidate_at(to)
            {
                return self.stale(stamp, reason);
            }
            if let Location::Remote(r) = to {
                self.lost_owners.retain(|o| *o != r);
            }
        }
        if !self.is_candidate_at(to) {
            return RemoteOutcome::NotACandidate { at: to };
        }
        let (already, macs_same) = match to {
            Location::Local(p) => self
                .owners
                .iter()
                .find(|o| o.port == p)
                .map_or((false, false), |o| (true, o.mac == mac && o.mac6 == mac6)),
            Location::Remote(r) => self
                .remote_owners
                .iter()
                .find(|o| o.at == r)
                .map_or((false, false), |o| (true, o.mac == mac && o.mac6 == mac6)),
        };
        let sole = self.owners.len() + self.remote_owners.len() == 1;
        let ap = self.spec.mode == VipMode::ActivePassive;
        if already && macs_same && (sole || !ap) {
            // the store says what the group already has (our own write coming back, or a
            // resync): a confirmation
            self.advance(stamp, false);
            if ap || stamp.epoch >= self.epoch {
                self.dirty = false;
            }
            return RemoteOutcome::Applied(None);
        }
        let from = if ap {
            let from = self.owners.first().map(|o| o.port);
            let from_remote = self.remote_owners.first().map(|o| o.at);
            self.owners.clear();
            self.remote_owners.clear();
            self.pending = None;
            self.owner_down = false;
            (from, from_remote)
        } else {
            self.owners.retain(|o| Location::Local(o.port) != to);
            self.remote_owners.retain(|o| Location::Remote(o.at) != to);
            (None, None)
        };
        match to {
            Location::Local(port) => {
                self.owners.push(Owner {
                    port,
                    mac,
                    mac6,
                    since: now,
                    last_claim: now,
                });
                self.owners.sort_by_key(|o| o.port);
            }
            Location::Remote(at) => {
                self.remote_owners.push(RemoteOwner {
                    at,
                    mac,
                    mac6,
                    since: now,
                });
                self.remote_owners.sort_by_key(|o| o.at.port);
            }
        }
        self.advance(stamp, true);
        if ap {
            // the group now holds exactly the record
            self.dirty = false;
        }
        self.trim_window(now);
        self.recent_moves.push_back(now);
        let m = Move {
            at: now,
            epoch: self.epoch,
            from: from.0,
            to: to.local(),
            from_remote: from.1,
            to_remote: to.remote(),
            mac: Some(mac),
            reason: if already {
                MoveReason::MacChange
            } else {
                MoveReason::Remote
            },
        };
        self.record(m);
        RemoteOutcome::Applied(Some(m))
    }

    /// A record from the store: `from` released the group (A/P: the group has no owner if
    /// `from` owned it; A/A: `from` left the owners), at `stamp`.
    pub fn apply_remote_release(
        &mut self,
        stamp: Stamp,
        from: Location,
        now: Timestamp,
    ) -> RemoteOutcome {
        if let Err(reason) = stamp.newer_than(self.confirmed) {
            return self.stale(stamp, reason);
        }
        let owned = match from {
            Location::Local(p) => self.owners.iter().any(|o| o.port == p),
            Location::Remote(r) => self.remote_owners.iter().any(|o| o.at == r),
        };
        if !owned {
            self.advance(stamp, false);
            return RemoteOutcome::Applied(None);
        }
        self.owners.retain(|o| Location::Local(o.port) != from);
        self.remote_owners
            .retain(|o| Location::Remote(o.at) != from);
        if self.spec.mode == VipMode::ActivePassive {
            self.owner_down = false;
            self.dirty = false;
        }
        self.advance(stamp, true);
        let m = Move {
            epoch: self.epoch,
            ..owner_set::leave(now, from)
        };
        self.record(m);
        RemoteOutcome::Applied(Some(m))
    }

    /// A port of another host became a candidate (or, if it was one on another host, it
    /// migrated to `at.host`: an owner there moves with it, which is no ownership change).
    /// Returns true if anything changed.
    pub fn add_remote_candidate(&mut self, at: RemotePort) -> bool {
        if self.remote_candidates.contains(&at) {
            return false;
        }
        match self
            .remote_candidates
            .iter_mut()
            .find(|c| c.port == at.port)
        {
            Some(c) => c.host = at.host,
            None => self.remote_candidates.push(at),
        }
        for o in self
            .remote_owners
            .iter_mut()
            .filter(|o| o.at.port == at.port)
        {
            o.at.host = at.host;
        }
        true
    }

    /// A port of another host is no longer a candidate; if it owned the group it is dropped
    /// (reason `admin`: the group's definition changed). Returns the move, if any.
    pub fn remove_remote_candidate(&mut self, port: RemotePortId, now: Timestamp) -> Option<Move> {
        self.remote_candidates.retain(|c| c.port != port);
        self.drop_remote_owners(|o| o.at.port == port, now, MoveReason::Admin)
    }

    /// `host` vanished (its lease expired): its candidates and owners are dropped. Returns
    /// the moves (A/P: at most one, leaving the group without an owner).
    pub fn host_gone(&mut self, host: HostId, now: Timestamp, out: &mut Vec<Move>) {
        self.remote_candidates.retain(|c| c.host != host);
        while let Some(m) =
            self.drop_remote_owners(|o| o.at.host == host, now, MoveReason::HostGone)
        {
            out.push(m);
        }
    }

    /// Drop the first remote owner matching `f`.
    fn drop_remote_owners(
        &mut self,
        f: impl Fn(&RemoteOwner) -> bool,
        now: Timestamp,
        reason: MoveReason,
    ) -> Option<Move> {
        let i = self.remote_owners.iter().position(f)?;
        let gone = self.remote_owners.remove(i);
        self.lost_owners.push(gone.at);
        self.epoch += 1;
        let m = Move {
            at: now,
            epoch: self.epoch,
            from: None,
            to: None,
            from_remote: Some(gone.at),
            to_remote: None,
            mac: None,
            reason,
        };
        self.record(m);
        Some(m)
    }
}

impl Move {
    /// The previous (A/P) or leaving (A/A) owner, wherever it is.
    pub fn from_location(&self) -> Option<Location> {
        self.from
            .map(Location::Local)
            .or(self.from_remote.map(Location::Remote))
    }
    /// The new (A/P) or joining (A/A) owner, wherever it is.
    pub fn to_location(&self) -> Option<Location> {
        self.to
            .map(Location::Local)
            .or(self.to_remote.map(Location::Remote))
    }
}

impl VipTable {
    /// [`VipGroup::apply_remote_move`] on group `id` (`None`: no such group).
    pub fn apply_remote_move(
        &mut self,
        id: VipId,
        stamp: Stamp,
        to: Location,
        mac: MacAddr,
        mac6: MacAddr,
        now: Timestamp,
    ) -> Option<RemoteOutcome> {
        self.group_mut(id)
            .map(|g| g.apply_remote_move(stamp, to, mac, mac6, now))
    }

    /// [`VipGroup::apply_remote_release`] on group `id`.
    pub fn apply_remote_release(
        &mut self,
        id: VipId,
        stamp: Stamp,
        from: Location,
        now: Timestamp,
    ) -> Option<RemoteOutcome> {
        self.group_mut(id)
            .map(|g| g.apply_remote_release(stamp, from, now))
    }

    /// [`VipGroup::apply_remote_owner_set`] on group `id`.
    pub fn apply_remote_owner_set(
        &mut self,
        id: VipId,
        stamp: Stamp,
        set: &[OwnerEntry],
        now: Timestamp,
        moves: &mut Vec<Move>,
    ) -> Option<RemoteOutcome> {
        self.group_mut(id)
            .map(|g| g.apply_remote_owner_set(stamp, set, now, moves))
    }

    /// [`VipGroup::confirm_write`] on group `id`.
    pub fn confirm_write(&mut self, id: VipId, stamp: Stamp) -> Option<RemoteOutcome> {
        self.group_mut(id).map(|g| g.confirm_write(stamp))
    }

    /// `host` vanished: [`VipGroup::host_gone`] on every group that has a candidate there.
    pub fn host_gone(&mut self, host: HostId, now: Timestamp) -> Vec<(VipId, Move)> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for (i, g) in self.groups.iter_mut().enumerate() {
            if g.remote_candidates.iter().any(|c| c.host == host)
                || g.remote_owners.iter().any(|o| o.at.host == host)
            {
                Arc::make_mut(g).host_gone(host, now, &mut buf);
                out.extend(buf.drain(..).map(|m| (VipId(i as u32), m)));
            }
        }
        out
    }

    /// The records local changes must write, by group.
    pub fn cluster_writes(&self) -> Vec<(VipId, OwnerWrite)> {
        self.groups()
            .filter_map(|(id, g)| g.cluster_write().map(|w| (id, w)))
            .collect()
    }
}

mod owner_set;

#[cfg(test)]
mod tests;
