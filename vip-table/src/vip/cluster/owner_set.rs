//! A whole ownership record from the store applied to an active-active group: the record
//! names every owner of the group (local and remote), so it replaces the group's remote
//! owners and — unless a local change is not yet written — its local owners.
//!
//! Contract ([`VipGroup::apply_remote_owner_set`], active-active groups only):
//! - a record that is not newer than the confirmed one changes nothing
//!   ([`RemoteOutcome::Stale`]), except the confirmed record given again while one of its
//!   remote owners was dropped only because its location went (`lost_owners`) and no local
//!   change is unwritten: those owners are re-installed (as
//!   [`VipGroup::apply_remote_move`] does for one);
//! - a newer record: the remote owners become exactly the record's remote entries that are
//!   candidates (a remote owner not in it leaves, a new one joins, a known one with other
//!   MACs changes MAC). The local owners become the record's local entries, except while the
//!   group is dirty: then they are kept as they are (the unwritten change is written next,
//!   conditioned on this record's revision, and so carries both). Entries that are not
//!   candidates are skipped; a record with entries and none a candidate is refused
//!   ([`RemoteOutcome::NotACandidate`]);
//! - every change is a [`Move`] pushed to `moves` (reason `remote`, or `mac_change`), in the
//!   history and the damping window like any move; the epoch then advances once. The
//!   returned outcome carries the first move.
//! - when the group then holds exactly the record, it is not dirty.

use super::{OwnerEntry, RemoteOutcome, RemoteOwner};
use crate::addr::MacAddr;
use crate::location::{Location, StaleReason, Stamp};
use crate::time::Timestamp;
use crate::vip::{Move, MoveReason, Owner, VipGroup, VipMode};

impl VipGroup {
    /// Apply a whole ownership record `set` at `stamp` to an active-active group (see the
    /// module doc). For an active-passive group this is [`VipGroup::apply_remote_move`] of
    /// its first entry, and an empty record [`VipGroup::apply_remote_release`] of the
    /// group's owner — unless that owner is a local claim not yet written, which stands.
    pub fn apply_remote_owner_set(
        &mut self,
        stamp: Stamp,
        set: &[OwnerEntry],
        now: Timestamp,
        moves: &mut Vec<Move>,
    ) -> RemoteOutcome {
        if self.spec.mode == VipMode::ActivePassive {
            let r = match set.first() {
                Some(e) => self.apply_remote_move(stamp, e.at, e.mac, e.mac6, now),
                // a release: of the remote owner, or of a local one whose claim is written;
                // an unwritten local claim stands (it is written next, on this revision)
                None => {
                    let from = self
                        .remote_owners
                        .first()
                        .map(|o| Location::Remote(o.at))
                        .or_else(|| {
                            let local = self.owners.first().map(|o| Location::Local(o.port));
                            local.filter(|_| !self.dirty)
                        });
                    match (from, stamp.newer_than(self.confirmed)) {
                        (Some(from), _) => self.apply_remote_release(stamp, from, now),
                        (None, Err(reason)) => self.stale(stamp, reason),
                        (None, Ok(())) => {
                            self.advance(stamp, false);
                            RemoteOutcome::Applied(None)
                        }
                    }
                }
            };
            if let RemoteOutcome::Applied(Some(m)) = r {
                moves.push(m);
            }
            return r;
        }
        let first = moves.len();
        if let Err(reason) = stamp.newer_than(self.confirmed) {
            if reason != StaleReason::Duplicate || self.dirty {
                return self.stale(stamp, reason);
            }
            // the confirmed record again: re-install owners dropped with their location
            for e in set {
                let Location::Remote(r) = e.at else { continue };
                if self.lost_owners.contains(&r)
                    && !self.has_owner_at(e.at)
                    && self.is_candidate_at(e.at)
                {
                    self.lost_owners.retain(|o| *o != r);
                    self.add_owner(e, now, moves);
                }
            }
            if moves.len() == first {
                return self.stale(stamp, reason);
            }
            self.epoch += 1;
            return self.finish(now, first, moves);
        }
        let wanted: Vec<&OwnerEntry> = set.iter().filter(|e| self.is_candidate_at(e.at)).collect();
        if wanted.is_empty() {
            if let Some(e) = set.first() {
                return RemoteOutcome::NotACandidate { at: e.at };
            }
        }
        // the owners become the record's: remote ones always, local ones unless an
        // unwritten local change stands (it is written next, with both)
        let keep_local = self.dirty;
        let settled = |at: &Location| matches!(at, Location::Remote(_)) || !keep_local;
        for o in self.entries() {
            if settled(&o.at) && !wanted.iter().any(|e| e.at == o.at) {
                self.remove_owner_at(o.at);
                moves.push(leave(now, o.at));
            }
        }
        for e in wanted.iter().filter(|e| settled(&e.at)) {
            match self.owner_macs_mut(e.at) {
                Some((m4, m6)) if (*m4, *m6) == (e.mac, e.mac6) => {}
                Some((m4, m6)) => {
                    (*m4, *m6) = (e.mac, e.mac6);
                    moves.push(join(now, e, MoveReason::MacChange));
                }
                None => self.add_owner(e, now, moves),
            }
        }
        let changed = moves.len() > first;
        self.advance(stamp, changed);
        if self.holds_exactly(&wanted) {
            self.dirty = false;
        }
        if !changed {
            return RemoteOutcome::Applied(None);
        }
        self.finish(now, first, moves)
    }

    /// Add `e` as an owner, local or remote, and push its join.
    fn add_owner(&mut self, e: &OwnerEntry, now: Timestamp, moves: &mut Vec<Move>) {
        match e.at {
            Location::Local(port) => {
                self.owners.push(Owner {
                    port,
                    mac: e.mac,
                    mac6: e.mac6,
                    since: now,
                    last_claim: now,
                });
                self.owners.sort_by_key(|o| o.port);
            }
            Location::Remote(at) => {
                self.remote_owners.push(RemoteOwner {
                    at,
                    mac: e.mac,
                    mac6: e.mac6,
                    since: now,
                });
                self.remote_owners.sort_by_key(|o| o.at.port);
            }
        }
        moves.push(join(now, e, MoveReason::Remote));
    }

    fn remove_owner_at(&mut self, at: Location) {
        match at {
            Location::Local(p) => self.owners.retain(|o| o.port != p),
            Location::Remote(r) => self.remote_owners.retain(|o| o.at != r),
        }
    }

    /// The MACs (IPv4, IPv6) of the owner at `at`, if it is one.
    fn owner_macs_mut(&mut self, at: Location) -> Option<(&mut MacAddr, &mut MacAddr)> {
        match at {
            Location::Local(p) => self
                .owners
                .iter_mut()
                .find(|o| o.port == p)
                .map(|o| (&mut o.mac, &mut o.mac6)),
            Location::Remote(r) => self
                .remote_owners
                .iter_mut()
                .find(|o| o.at == r)
                .map(|o| (&mut o.mac, &mut o.mac6)),
        }
    }

    /// The group holds exactly the owners of `set` (same places, same MACs).
    fn holds_exactly(&self, set: &[&OwnerEntry]) -> bool {
        let mine = self.entries();
        mine.len() == set.len() && mine.iter().all(|m| set.contains(&m))
    }

    /// Stamp the moves from `first` on with the group's epoch, record them and count them
    /// in the damping window.
    fn finish(&mut self, now: Timestamp, first: usize, moves: &mut [Move]) -> RemoteOutcome {
        self.trim_window(now);
        for m in moves.iter_mut().skip(first) {
            m.epoch = self.epoch;
            self.recent_moves.push_back(m.at);
            self.record(*m);
        }
        RemoteOutcome::Applied(moves.get(first).copied())
    }
}

/// `from` left the owners (epoch set by the caller).
pub(super) fn leave(now: Timestamp, from: Location) -> Move {
    Move {
        at: now,
        epoch: 0,
        from: from.local(),
        to: None,
        from_remote: from.remote(),
        to_remote: None,
        mac: None,
        reason: MoveReason::Remote,
    }
}

/// `e` joined the owners, or changed its MAC (epoch set by the caller).
fn join(now: Timestamp, e: &OwnerEntry, reason: MoveReason) -> Move {
    Move {
        at: now,
        epoch: 0,
        from: None,
        to: e.at.local(),
        from_remote: None,
        to_remote: e.at.remote(),
        mac: Some(e.mac),
        reason,
    }
}
