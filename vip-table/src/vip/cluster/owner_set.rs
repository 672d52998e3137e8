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
                    self.join_remote(e, now, moves);
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
        // remote owners: exactly the record's
        let leaving: Vec<RemoteOwner> = self
            .remote_owners
            .iter()
            .filter(|o| !wanted.iter().any(|e| e.at == Location::Remote(o.at)))
            .copied()
            .collect();
        for o in leaving {
            self.remote_owners.retain(|x| x.at != o.at);
            moves.push(leave(now, Location::Remote(o.at)));
        }
        // local owners: the record's, unless an unwritten local change stands
        if !self.dirty {
            let leaving: Vec<Owner> = self
                .owners
                .iter()
                .filter(|o| !wanted.iter().any(|e| e.at == Location::Local(o.port)))
                .copied()
                .collect();
            for o in leaving {
                self.owners.retain(|x| x.port != o.port);
                moves.push(leave(now, Location::Local(o.port)));
            }
        }
        for e in &wanted {
            match e.at {
                Location::Remote(r) => match self.remote_owners.iter_mut().find(|o| o.at == r) {
                    Some(o) if o.mac == e.mac && o.mac6 == e.mac6 => {}
                    Some(o) => {
                        o.mac = e.mac;
                        o.mac6 = e.mac6;
                        moves.push(join(now, e, MoveReason::MacChange));
                    }
                    None => self.join_remote(e, now, moves),
                },
                Location::Local(p) if !self.dirty => {
                    match self.owners.iter_mut().find(|o| o.port == p) {
                        Some(o) if o.mac == e.mac && o.mac6 == e.mac6 => {}
                        Some(o) => {
                            o.mac = e.mac;
                            o.mac6 = e.mac6;
                            moves.push(join(now, e, MoveReason::MacChange));
                        }
                        None => {
                            self.owners.push(Owner {
                                port: p,
                                mac: e.mac,
                                mac6: e.mac6,
                                since: now,
                                last_claim: now,
                            });
                            self.owners.sort_by_key(|o| o.port);
                            moves.push(join(now, e, MoveReason::Remote));
                        }
                    }
                }
                Location::Local(_) => {}
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

    fn join_remote(&mut self, e: &OwnerEntry, now: Timestamp, moves: &mut Vec<Move>) {
        let Location::Remote(at) = e.at else { return };
        self.remote_owners.push(RemoteOwner {
            at,
            mac: e.mac,
            mac6: e.mac6,
            since: now,
        });
        self.remote_owners.sort_by_key(|o| o.at.port);
        moves.push(join(now, e, MoveReason::Remote));
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

fn leave(now: Timestamp, from: Location) -> Move {
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
