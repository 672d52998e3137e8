//! What a VIP group needs across a restart of the switch: its saved state
//! ([`SavedGroup`], [`VipGroup::saved`], [`VipGroup::restore`]) and the answers of owner
//! discovery ([`VipGroup::discovered`]).

use super::{set_family_mac, MoveReason, VipGroup, VipMode, HISTORY_LEN};
use super::{Move, Owner, PendingClaim};
use crate::addr::MacAddr;
use crate::policy::PortId;
use crate::time::Timestamp;

/// The live state of a group that is worth keeping across a restart of the switch (see
/// [`VipGroup::saved`] and [`VipGroup::restore`]). Ports are ids of the table it came
/// from; the caller maps them (by name) to the ids of the table it restores into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedGroup {
    /// The epoch.
    pub epoch: u64,
    /// The owners.
    pub owners: Vec<Owner>,
    /// The claim damping holds back.
    pub pending: Option<PendingClaim>,
    /// Recent moves, oldest first.
    pub history: Vec<Move>,
    /// Times of the claim-driven moves in the damping window.
    pub recent_moves: Vec<Timestamp>,
    /// A/P: the owner's port was down and the owner has not spoken since.
    pub owner_down: bool,
    /// Hijack attempts so far.
    pub hijacks: u64,
}

impl VipGroup {
    /// The state to keep across a restart.
    pub fn saved(&self) -> SavedGroup {
        SavedGroup {
            epoch: self.epoch,
            owners: self.owners.clone(),
            pending: self.pending,
            history: self.history.iter().copied().collect(),
            recent_moves: self.recent_moves.iter().copied().collect(),
            owner_down: self.owner_down,
            hijacks: self.hijacks,
        }
    }

    /// Restore state saved by an earlier instance of the switch (ports already mapped to
    /// this table's ids; `None` for a port that no longer exists). Owners and a pending
    /// claim whose port is no longer a candidate are dropped; the epoch never goes back.
    /// Returns the owners restored.
    pub fn restore(&mut self, saved: &SavedGroup) -> usize {
        let mut owners: Vec<Owner> = saved
            .owners
            .iter()
            .filter(|o| self.is_candidate(o.port))
            .copied()
            .collect();
        if self.spec.mode == VipMode::ActivePassive {
            owners.truncate(1);
        }
        owners.sort_by_key(|o| o.port);
        owners.dedup_by_key(|o| o.port);
        let lost = owners.len() != saved.owners.len();
        self.epoch = self.epoch.max(saved.epoch);
        if lost || !owners.is_empty() {
            self.owners = owners;
        }
        if lost {
            // what the saved state said is no longer true: a change of ownership
            self.epoch += 1;
        }
        self.pending = saved.pending.filter(|p| self.is_candidate(p.port));
        self.history = saved.history.iter().copied().collect();
        while self.history.len() > HISTORY_LEN {
            self.history.pop_front();
        }
        self.recent_moves = saved.recent_moves.iter().copied().collect();
        self.owner_down = saved.owner_down && !lost;
        self.hijacks = self.hijacks.max(saved.hijacks);
        self.owners.len()
    }

    /// A candidate answered the switch's question "who holds this address?" (an ARP reply
    /// to its probe, a solicited NA to its NS) from `mac`, for the family `v6` of the
    /// asked address. The VM that answers holds the address now, so this is applied at
    /// once, without damping (it is no flap: nothing announced a change). A/P: the
    /// answerer becomes the owner (or, if it is, its MAC for that family is updated);
    /// A/A: it joins the owners. `None` when nothing changed or it is no candidate.
    pub fn discovered(
        &mut self,
        port: PortId,
        mac: MacAddr,
        v6: bool,
        now: Timestamp,
    ) -> Option<Move> {
        if !self.is_candidate(port) {
            return None;
        }
        if let Some(o) = self.owners.iter_mut().find(|o| o.port == port) {
            o.last_claim = now;
            self.owner_down = false;
            if self.spec.mode == VipMode::ActivePassive {
                self.pending = None;
            }
            if set_family_mac(o, mac, Some(v6)) {
                return Some(self.mac_changed(port, mac, now));
            }
            return None;
        }
        match self.spec.mode {
            VipMode::ActivePassive => {
                self.pending = None;
                Some(self.set_single_owner(Some((port, mac)), now, MoveReason::Discovery))
            }
            VipMode::ActiveActive => Some(self.join(port, mac, now, MoveReason::Discovery)),
        }
    }
}
