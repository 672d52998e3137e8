//! VIP groups: addresses that move together between candidate ports.
//!
//! Contract (SEMANTICS.md §5):
//! - only a candidate can own; a claim from anyone else is recorded as a hijack attempt and
//!   changes nothing;
//! - active-passive: at most one owner; a claim from a non-owner candidate moves ownership at
//!   once unless damping holds it back; the epoch increments on every ownership change and
//!   never goes back;
//! - damping: no more than `max_moves` claim-driven moves in any sliding `window`. A claim that
//!   would exceed it is held as *pending* and applied by [`VipTable::poll`] when the window
//!   allows; a newer claim replaces the pending one (the latest claimant wins, as after a split
//!   brain the last GARP is the truth), a claim by the current owner cancels it. A pending claim
//!   is never dropped;
//! - active-active: every candidate that claimed (and whose port is up) is an owner; flows are
//!   spread by rendezvous hashing of a flow hash over the owners, so a joining or leaving owner
//!   moves only its own share;
//! - port loss: active-active drops the owner at once; active-passive keeps the owner (the
//!   standby's keepalived will claim) unless `release_on_port_loss` is set.
//! - cluster: owners and candidates may also be ports of other hosts, changed only by
//!   records from the cluster store, ordered by [`crate::Stamp`]; see the `cluster`
//!   submodule ([`VipGroup::apply_remote_move`] and the rest) for those rules.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::addr::MacAddr;
use crate::location::{RemotePort, Stamp};
use crate::policy::PortId;
use crate::time::Timestamp;

mod cluster;
mod restart;
pub use cluster::{OwnerEntry, OwnerWrite, RemoteOutcome, RemoteOwner, Selected};
pub use restart::SavedGroup;

/// How many moves a group remembers for `show vips`.
pub const HISTORY_LEN: usize = 16;

/// Index of a VIP group in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VipId(pub u32);

impl VipId {
    /// The index as `usize`.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Ownership model of a VIP group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VipMode {
    /// One owner at a time (keepalived/VRRP style).
    ActivePassive,
    /// Every claimed, live candidate owns; flows are hashed over the owners.
    ActiveActive,
}

impl std::fmt::Display for VipMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VipMode::ActivePassive => "active-passive",
            VipMode::ActiveActive => "active-active",
        })
    }
}

/// Flap damping: at most `max_moves` claim-driven moves within any `window`.
/// `max_moves == 0` disables damping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Damping {
    /// Moves allowed per window.
    pub max_moves: u32,
    /// The sliding window.
    pub window: Duration,
}

impl Default for Damping {
    fn default() -> Self {
        Damping {
            max_moves: 4,
            window: Duration::from_secs(10),
        }
    }
}

/// Everything needed to create a VIP group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VipSpec {
    /// Unique name.
    pub name: String,
    /// The addresses that move together.
    pub addresses: Vec<IpAddr>,
    /// Ownership model.
    pub mode: VipMode,
    /// Ports allowed to own the group (in configuration order).
    pub candidates: Vec<PortId>,
    /// Flap damping.
    pub damping: Damping,
    /// Active-passive: clear the owner when its port goes down.
    pub release_on_port_loss: bool,
    /// MAC the switch answers ARP/NS with in active-active mode.
    pub virtual_mac: MacAddr,
    /// Active-active: drop an owner that has not re-claimed within this interval.
    pub owner_liveness: Option<Duration>,
    /// Owners installed at creation (port and the MAC traffic is sent to).
    pub initial_owners: Vec<(PortId, MacAddr)>,
}

/// A current owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The owning port.
    pub port: PortId,
    /// The MAC IPv4 traffic for the VIP is rewritten to and ARP for it is answered with:
    /// the sender MAC of the owner's latest IPv4 claim (GARP), or of its first claim.
    pub mac: MacAddr,
    /// The same for IPv6 (unsolicited NA, neighbour solicitations). It differs from `mac`
    /// when a VM announces the families from different MACs: keepalived with `use_vmac`
    /// sends the IPv4 GARP from the VRRP virtual MAC and the NA for an address in
    /// `virtual_ipaddress_excluded` from the port's own MAC. One MAC for both would turn
    /// every announcement burst into a series of MAC changes.
    pub mac6: MacAddr,
    /// When it became owner.
    pub since: Timestamp,
    /// Its latest claim (or `since`).
    pub last_claim: Timestamp,
}

/// A claim held back by damping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingClaim {
    /// The claimant.
    pub port: PortId,
    /// Its MAC.
    pub mac: MacAddr,
    /// When the claim arrived.
    pub claimed_at: Timestamp,
    /// When it will be applied.
    pub due: Timestamp,
}

/// Why ownership changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MoveReason {
    /// A gratuitous ARP / unsolicited NA from a candidate.
    Claim,
    /// A claim that damping held back, applied at the end of the window.
    DampedClaim,
    /// An operator command.
    Admin,
    /// The owner's port went down or vanished.
    PortDown,
    /// An active-active owner did not re-claim within the liveness interval.
    Liveness,
    /// The same owner claimed with a different MAC.
    MacChange,
    /// The switch asked the candidates who holds the address (an ARP probe / NS after a
    /// restart, a reload or a port coming up) and this one answered.
    Discovery,
    /// An ownership record from the cluster store (another host's claim, or a resync).
    Remote,
    /// The host of a remote owner vanished (its lease expired).
    HostGone,
}

impl std::fmt::Display for MoveReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MoveReason::Claim => "claim",
            MoveReason::DampedClaim => "damped-claim",
            MoveReason::Admin => "admin",
            MoveReason::PortDown => "port-down",
            MoveReason::Liveness => "liveness",
            MoveReason::MacChange => "mac-change",
            MoveReason::Discovery => "discovery",
            MoveReason::Remote => "remote",
            MoveReason::HostGone => "host-gone",
        })
    }
}

/// One ownership change. In active-passive `from`/`to` are the old and new owner; in
/// active-active one of them is the joining or leaving owner and the other is `None`.
/// `from`/`to` name local ports; when a side is a port of another host, it is `None` and
/// `from_remote`/`to_remote` name it (see [`Move::from_location`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Move {
    /// When.
    pub at: Timestamp,
    /// The epoch after the change.
    pub epoch: u64,
    /// Previous owner (A/P) or leaving owner (A/A), when it is a local port.
    pub from: Option<PortId>,
    /// New owner (A/P) or joining owner (A/A), when it is a local port.
    pub to: Option<PortId>,
    /// Previous or leaving owner, when it is a port of another host.
    pub from_remote: Option<RemotePort>,
    /// New or joining owner, when it is a port of another host.
    pub to_remote: Option<RemotePort>,
    /// The MAC of the new owner.
    pub mac: Option<MacAddr>,
    /// Why.
    pub reason: MoveReason,
}

/// A group's flap damping as a claim would find it ([`VipGroup::damping_at`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DampingState {
    /// The configured limit.
    pub damping: Damping,
    /// Claim-driven moves still in the sliding window.
    pub moves_in_window: usize,
    /// The window is full: a claim from a non-owner would be held until then.
    pub held_until: Option<Timestamp>,
    /// Active-passive: the owner's port is down (a claim replacing it is never held).
    pub owner_down: bool,
}

/// A claim refused because the sender is not a candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HijackAttempt {
    /// When.
    pub at: Timestamp,
    /// From which port.
    pub port: PortId,
    /// With which MAC.
    pub mac: MacAddr,
}

/// What a claim did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// Ownership changed (A/P move or A/A join).
    Moved(Move),
    /// The claimant already owned the group; its claim time was refreshed.
    Refreshed,
    /// Damping held the claim back until `due`.
    Pending {
        /// When it will be applied.
        due: Timestamp,
    },
    /// The claimant is not a candidate: a hijack attempt, recorded.
    NotCandidate,
}

/// One VIP group and its live state.
#[derive(Clone, Debug)]
pub struct VipGroup {
    spec: VipSpec,
    owners: Vec<Owner>,
    epoch: u64,
    last_claim: Option<(Timestamp, PortId)>,
    pending: Option<PendingClaim>,
    history: VecDeque<Move>,
    recent_moves: VecDeque<Timestamp>,
    hijacks: u64,
    last_hijack: Option<HijackAttempt>,
    /// Active-passive: the owner's port went down and the owner has not spoken since.
    /// Damping exists to stop a live pair from flapping; a claim that replaces a dead owner
    /// is the only way back to service, so it is not held.
    owner_down: bool,
    /// Candidates on other hosts (see [`crate::location`]).
    remote_candidates: Vec<RemotePort>,
    /// Owners on other hosts. Active-passive: `owners.len() + remote_owners.len() <= 1`.
    /// Empty on a standalone switch, so the local paths test one length and go on.
    remote_owners: Vec<RemoteOwner>,
    /// The stamp of the last ownership record applied from (or confirmed by) the store.
    confirmed: Option<Stamp>,
    /// Remote owners dropped because their location went (host gone, port record gone)
    /// while `confirmed` still named them: the confirmed record, given again once the
    /// location is back, re-installs them (see `cluster.rs`).
    lost_owners: Vec<RemotePort>,
    /// A local change (claim, discovery, operator, port loss) has not been confirmed by
    /// the store yet: [`VipGroup::cluster_write`] has something to write.
    dirty: bool,
}

#[inline]
fn mix64(mut z: u64) -> u64 {
    // splitmix64 finaliser: a cheap, well-distributed bijection.
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Sets the owner's MAC for the family `v6` (None: both); true if one changed.
fn set_family_mac(o: &mut Owner, mac: MacAddr, v6: Option<bool>) -> bool {
    let before = (o.mac, o.mac6);
    match v6 {
        Some(false) => o.mac = mac,
        Some(true) => o.mac6 = mac,
        None => {
            o.mac = mac;
            o.mac6 = mac;
        }
    }
    before != (o.mac, o.mac6)
}

impl VipGroup {
    fn new(spec: VipSpec, now: Timestamp) -> Self {
        let mut owners: Vec<Owner> = spec
            .initial_owners
            .iter()
            .map(|&(port, mac)| Owner {
                port,
                mac,
                mac6: mac,
                since: now,
                last_claim: now,
            })
            .collect();
        if spec.mode == VipMode::ActivePassive {
            owners.truncate(1);
        }
        owners.sort_by_key(|o| o.port);
        owners.dedup_by_key(|o| o.port);
        VipGroup {
            spec,
            epoch: if owners.is_empty() { 0 } else { 1 },
            owners,
            last_claim: None,
            pending: None,
            history: VecDeque::new(),
            recent_moves: VecDeque::new(),
            hijacks: 0,
            last_hijack: None,
            owner_down: false,
            remote_candidates: Vec::new(),
            remote_owners: Vec::new(),
            confirmed: None,
            lost_owners: Vec::new(),
            dirty: false,
        }
    }

    /// The group's configuration.
    pub fn spec(&self) -> &VipSpec {
        &self.spec
    }
    /// Name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }
    /// Mode.
    pub fn mode(&self) -> VipMode {
        self.spec.mode
    }
    /// Addresses.
    pub fn addresses(&self) -> &[IpAddr] {
        &self.spec.addresses
    }
    /// Candidate ports.
    pub fn candidates(&self) -> &[PortId] {
        &self.spec.candidates
    }
    /// Is `port` a candidate?
    #[inline]
    pub fn is_candidate(&self, port: PortId) -> bool {
        self.spec.candidates.contains(&port)
    }
    /// Current owners (A/P: zero or one), sorted by port.
    pub fn owners(&self) -> &[Owner] {
        &self.owners
    }
    /// Does `port` currently own the group?
    #[inline]
    pub fn is_owner(&self, port: PortId) -> bool {
        self.owners.iter().any(|o| o.port == port)
    }
    /// The epoch: +1 on every ownership change.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
    /// The latest claim seen (time, port), owner's or not.
    pub fn last_claim(&self) -> Option<(Timestamp, PortId)> {
        self.last_claim
    }
    /// The claim damping holds back, if any.
    pub fn pending(&self) -> Option<PendingClaim> {
        self.pending
    }
    /// The latest moves, oldest first (at most [`HISTORY_LEN`]).
    pub fn history(&self) -> impl Iterator<Item = &Move> {
        self.history.iter()
    }
    /// Hijack attempts so far.
    pub fn hijack_count(&self) -> u64 {
        self.hijacks
    }
    /// The latest hijack attempt.
    pub fn last_hijack(&self) -> Option<HijackAttempt> {
        self.last_hijack
    }

    /// The MAC the switch answers ARP/NS for this group with: the owner's MAC (A/P) or the
    /// group's virtual MAC (A/A). `None` when nobody owns the group.
    pub fn answer_mac(&self) -> Option<MacAddr> {
        match self.spec.mode {
            VipMode::ActivePassive => match self.owners.first() {
                Some(o) => Some(o.mac),
                None => self.remote_owners.first().map(|o| o.mac),
            },
            VipMode::ActiveActive => self.has_owner().then_some(self.spec.virtual_mac),
        }
    }

    /// The MAC to answer neighbour solicitations for the group's IPv6 addresses with:
    /// the owner's IPv6 MAC (A/P, see [`Owner::mac6`]) or the group's virtual MAC (A/A).
    pub fn answer_mac6(&self) -> Option<MacAddr> {
        match self.spec.mode {
            VipMode::ActivePassive => match self.owners.first() {
                Some(o) => Some(o.mac6),
                None => self.remote_owners.first().map(|o| o.mac6),
            },
            VipMode::ActiveActive => self.has_owner().then_some(self.spec.virtual_mac),
        }
    }

    /// The answer MAC for `addr`'s family ([`VipGroup::answer_mac`] or
    /// [`VipGroup::answer_mac6`]).
    pub fn answer_mac_for(&self, addr: IpAddr) -> Option<MacAddr> {
        if addr.is_ipv6() {
            self.answer_mac6()
        } else {
            self.answer_mac()
        }
    }

    /// The owner that should receive a flow with hash `flow_hash`: the single owner (A/P),
    /// or the rendezvous-hash winner among the owners (A/A).
    #[inline]
    pub fn select_owner(&self, flow_hash: u64) -> Option<&Owner> {
        match self.owners.len() {
            0 => None,
            1 => self.owners.first(),
            _ => self
                .owners
                .iter()
                .max_by_key(|o| mix64(flow_hash ^ mix64(u64::from(o.port.0) + 1))),
        }
    }

    fn record(&mut self, m: Move) {
        if self.history.len() == HISTORY_LEN {
            self.history.pop_front();
        }
        self.history.push_back(m);
    }

    fn trim_window(&mut self, now: Timestamp) {
        let w = self.spec.damping.window;
        while let Some(&t) = self.recent_moves.front() {
            if t + w <= now {
                self.recent_moves.pop_front();
            } else {
                break;
            }
        }
    }

    fn damped(&mut self, now: Timestamp) -> Option<Timestamp> {
        if self.spec.damping.max_moves == 0 {
            return None;
        }
        self.trim_window(now);
        self.damping_at(now).held_until
    }

    /// The damping window as a claim arriving at `now` would find it (read only: what
    /// [`VipGroup::claim_for`] consults, for `vswitch trace`).
    pub fn damping_at(&self, now: Timestamp) -> DampingState {
        let d = self.spec.damping;
        // the window's moves: those not yet aged out (`trim_window` drops the others)
        let live: Vec<Timestamp> = self
            .recent_moves
            .iter()
            .copied()
            .skip_while(|&t| t + d.window <= now)
            .collect();
        let max = d.max_moves as usize;
        let held_until = (max > 0 && live.len() >= max)
            .then(|| live.get(live.len() - max).map(|&t| t + d.window))
            .flatten();
        DampingState {
            damping: d,
            moves_in_window: live.len(),
            held_until,
            owner_down: self.owner_down,
        }
    }

    fn set_single_owner(
        &mut self,
        port: Option<(PortId, MacAddr)>,
        now: Timestamp,
        reason: MoveReason,
    ) -> Move {
        let from = self.owners.first().map(|o| o.port);
        let from_remote = self.remote_owners.first().map(|o| o.at);
        self.owners.clear();
        self.remote_owners.clear();
        self.owner_down = false;
        self.dirty = true;
        if let Some((p, mac)) = port {
            self.owners.push(Owner {
                port: p,
                mac,
                mac6: mac,
                since: now,
                last_claim: now,
            });
        }
        self.epoch += 1;
        let m = Move {
            at: now,
            epoch: self.epoch,
            from,
            to: port.map(|p| p.0),
            from_remote,
            to_remote: None,
            mac: port.map(|p| p.1),
            reason,
        };
        if matches!(reason, MoveReason::Claim | MoveReason::DampedClaim) {
            self.recent_moves.push_back(now);
        }
        self.record(m);
        m
    }

    /// The owner `port` now speaks from `mac` (one family's MAC changed): epoch + 1, recorded.
    fn mac_changed(&mut self, port: PortId, mac: MacAddr, now: Timestamp) -> Move {
        self.epoch += 1;
        self.dirty = true;
        let m = Move {
            at: now,
            epoch: self.epoch,
            from: Some(port),
            to: Some(port),
            from_remote: None,
            to_remote: None,
            mac: Some(mac),
            reason: MoveReason::MacChange,
        };
        self.record(m);
        m
    }

    fn join(&mut self, port: PortId, mac: MacAddr, now: Timestamp, reason: MoveReason) -> Move {
        self.owners.push(Owner {
            port,
            mac,
            mac6: mac,
            since: now,
            last_claim: now,
        });
        self.owners.sort_by_key(|o| o.port);
        self.epoch += 1;
        self.dirty = true;
        let m = Move {
            at: now,
            epoch: self.epoch,
            from: None,
            to: Some(port),
            from_remote: None,
            to_remote: None,
            mac: Some(mac),
            reason,
        };
        self.record(m);
        m
    }

    fn leave(&mut self, port: PortId, now: Timestamp, reason: MoveReason) -> Option<Move> {
        let before = self.owners.len();
        self.owners.retain(|o| o.port != port);
        if self.owners.len() == before {
            return None;
        }
        self.epoch += 1;
        self.dirty = true;
        let m = Move {
            at: now,
            epoch: self.epoch,
            from: Some(port),
            to: None,
            from_remote: None,
            to_remote: None,
            mac: None,
            reason,
        };
        self.record(m);
        Some(m)
    }

    /// Handle a claim for this group from `port` sending as `mac`, for both address
    /// families (the owner's IPv4 and IPv6 MACs both become `mac`). The datapath uses
    /// [`VipGroup::claim_for`], which knows the family.
    pub fn claim(&mut self, port: PortId, mac: MacAddr, now: Timestamp) -> ClaimOutcome {
        self.claim_family(port, mac, None, now)
    }

    /// Handle a claim (GARP for an IPv4 address, unsolicited NA for an IPv6 one) for `addr`
    /// of this group from `port` sending as `mac`. A claim from the owner with a new MAC
    /// changes only that family's MAC ([`Owner::mac6`]).
    pub fn claim_for(
        &mut self,
        port: PortId,
        mac: MacAddr,
        addr: IpAddr,
        now: Timestamp,
    ) -> ClaimOutcome {
        self.claim_family(port, mac, Some(addr.is_ipv6()), now)
    }

    /// `v6`: Some(family) of the claimed address, None for both.
    fn claim_family(
        &mut self,
        port: PortId,
        mac: MacAddr,
        v6: Option<bool>,
        now: Timestamp,
    ) -> ClaimOutcome {
        if !self.is_candidate(port) {
            self.hijacks += 1;
            self.last_hijack = Some(HijackAttempt { at: now, port, mac });
            return ClaimOutcome::NotCandidate;
        }
        self.last_claim = Some((now, port));
        match self.spec.mode {
            VipMode::ActivePassive => {
                if let Some(o) = self.owners.first_mut().filter(|o| o.port == port) {
                    o.last_claim = now;
                    self.owner_down = false;
                    // The owner speaking again is the latest truth: a held-back claim from
                    // the other side is superseded, not lost.
                    self.pending = None;
                    if set_family_mac(o, mac, v6) {
                        return ClaimOutcome::Moved(self.mac_changed(port, mac, now));
                    }
                    return ClaimOutcome::Refreshed;
                }
                if let Some(due) = self.damped(now).filter(|_| !self.owner_down) {
                    self.pending = Some(PendingClaim {
                        port,
                        mac,
                        claimed_at: now,
                        due,
                    });
                    return ClaimOutcome::Pending { due };
                }
                self.pending = None;
                ClaimOutcome::Moved(self.set_single_owner(
                    Some((port, mac)),
                    now,
                    MoveReason::Claim,
                ))
            }
            VipMode::ActiveActive => {
                if let Some(o) = self.owners.iter_mut().find(|o| o.port == port) {
                    o.last_claim = now;
                    set_family_mac(o, mac, v6);
                    return ClaimOutcome::Refreshed;
                }
                ClaimOutcome::Moved(self.join(port, mac, now, MoveReason::Claim))
            }
        }
    }

    /// Apply a held-back claim whose time has come, and expire A/A owners that stopped
    /// claiming. Returns the moves made.
    pub fn poll(&mut self, now: Timestamp, out: &mut Vec<Move>) {
        if let Some(p) = self.pending {
            if now >= p.due {
                match self.damped(now) {
                    Some(due) => {
                        // Defensive: the window is still full (cannot happen while only
                        // claims count), so wait for it again rather than drop the claim.
                        if let Some(pp) = self.pending.as_mut() {
                            pp.due = due.max(now);
                        }
                    }
                    None => {
                        self.pending = None;
                        out.push(self.set_single_owner(
                            Some((p.port, p.mac)),
                            now,
                            MoveReason::DampedClaim,
                        ));
                    }
                }
            }
        }
        if let (VipMode::ActiveActive, Some(live)) = (self.spec.mode, self.spec.owner_liveness) {
            let stale: Vec<PortId> = self
                .owners
                .iter()
                .filter(|o| o.last_claim + live <= now)
                .map(|o| o.port)
                .collect();
            for p in stale {
                if let Some(m) = self.leave(p, now, MoveReason::Liveness) {
                    out.push(m);
                }
            }
        }
    }

    /// The earliest time [`VipGroup::poll`] has something to do.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let pending = self.pending.map(|p| p.due);
        let live = match (self.spec.mode, self.spec.owner_liveness) {
            (VipMode::ActiveActive, Some(l)) => self.owners.iter().map(|o| o.last_claim + l).min(),
            _ => None,
        };
        match (pending, live) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The port of a candidate went down (or its tap vanished).
    pub fn port_down(&mut self, port: PortId, now: Timestamp) -> Option<Move> {
        match self.spec.mode {
            VipMode::ActiveActive => self.leave(port, now, MoveReason::PortDown),
            VipMode::ActivePassive => {
                // A held-back claim from a port that is gone would move the VIP to a dead
                // VM when the window ends: the claimant withdrew it by disappearing.
                if self.pending.is_some_and(|p| p.port == port) {
                    self.pending = None;
                }
                if self.owners.first().is_none_or(|o| o.port != port) {
                    return None;
                }
                if self.spec.release_on_port_loss {
                    return Some(self.set_single_owner(None, now, MoveReason::PortDown));
                }
                // The owner is gone: a claim held back by damping is the standby taking
                // over; apply it now rather than black-holing the VIP until the window ends.
                if let Some(p) = self.pending.take() {
                    return Some(self.set_single_owner(
                        Some((p.port, p.mac)),
                        now,
                        MoveReason::DampedClaim,
                    ));
                }
                self.owner_down = true;
                None
            }
        }
    }

    /// The port of a candidate came (back) up.
    pub fn port_up(&mut self, port: PortId) {
        if self.owners.first().is_some_and(|o| o.port == port) {
            self.owner_down = false;
        }
    }

    /// Operator command: make `port` (sending as `mac`) the owner (A/P) or an owner (A/A),
    /// bypassing damping. Returns `None` if it already was, or if it is not a candidate.
    pub fn admin_assign(&mut self, port: PortId, mac: MacAddr, now: Timestamp) -> Option<Move> {
        if !self.is_candidate(port) {
            return None;
        }
        match self.spec.mode {
            VipMode::ActivePassive => {
                self.pending = None;
                if self.owners.first().is_some_and(|o| o.port == port) {
                    return None;
                }
                Some(self.set_single_owner(Some((port, mac)), now, MoveReason::Admin))
            }
            VipMode::ActiveActive => {
                if self.is_owner(port) {
                    return None;
                }
                Some(self.join(port, mac, now, MoveReason::Admin))
            }
        }
    }

    /// Operator command: remove `port` from the owners. Returns `None` if it was not one.
    pub fn admin_release(&mut self, port: PortId, now: Timestamp) -> Option<Move> {
        match self.spec.mode {
            VipMode::ActivePassive => {
                if self.owners.first().is_some_and(|o| o.port == port) {
                    Some(self.set_single_owner(None, now, MoveReason::Admin))
                } else {
                    None
                }
            }
            VipMode::ActiveActive => self.leave(port, now, MoveReason::Admin),
        }
    }
}

/// Errors building a [`VipTable`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VipError {
    /// Two groups share a name.
    #[error("vip `{0}`: name used by another vip group")]
    DuplicateName(String),
    /// An address is in two groups.
    #[error("vip `{name}`: address {addr} is already in vip `{other}`")]
    DuplicateAddress {
        /// This group.
        name: String,
        /// The address.
        addr: IpAddr,
        /// The group that has it already.
        other: String,
    },
    /// No addresses.
    #[error("vip `{0}`: addresses is empty")]
    NoAddresses(String),
    /// An initial owner is not a candidate, or A/P has several.
    #[error("vip `{0}`: {1}")]
    BadOwners(String, &'static str),
}

#[derive(Debug, Default)]
struct VipIndex {
    by_addr: HashMap<IpAddr, VipId, ahash::RandomState>,
    by_port: HashMap<PortId, Vec<VipId>, ahash::RandomState>,
}

/// All VIP groups, indexed by address and by candidate port.
///
/// Cloning is cheap by design (the control thread clones the table into every snapshot it
/// publishes): groups sit behind `Arc` and are copied on write one at a time, and the
/// address/port index, fixed at construction, is shared.
#[derive(Clone, Debug, Default)]
pub struct VipTable {
    groups: Vec<Arc<VipGroup>>,
    index: Arc<VipIndex>,
}

impl VipTable {
    /// Build a table from specs, validating names, addresses and owners. A group may have
    /// no local candidate: a cluster group whose candidates are all on other hosts (this
    /// switch still steers to and answers for its remote owner).
    pub fn new(specs: Vec<VipSpec>, now: Timestamp) -> Result<Self, VipError> {
        let mut groups: Vec<Arc<VipGroup>> = Vec::new();
        let mut index = VipIndex::default();
        let mut names = HashMap::new();
        for spec in specs {
            if names.insert(spec.name.clone(), ()).is_some() {
                return Err(VipError::DuplicateName(spec.name));
            }
            if spec.addresses.is_empty() {
                return Err(VipError::NoAddresses(spec.name));
            }
            if spec.mode == VipMode::ActivePassive && spec.initial_owners.len() > 1 {
                return Err(VipError::BadOwners(
                    spec.name,
                    "an active-passive group has at most one owner",
                ));
            }
            if spec
                .initial_owners
                .iter()
                .any(|(p, _)| !spec.candidates.contains(p))
            {
                return Err(VipError::BadOwners(
                    spec.name,
                    "every owner must be a candidate",
                ));
            }
            let id = VipId(groups.len() as u32);
            for &a in &spec.addresses {
                if let Some(other) = index.by_addr.get(&a) {
                    return Err(VipError::DuplicateAddress {
                        name: spec.name.clone(),
                        addr: a,
                        other: groups[other.index()].spec.name.clone(),
                    });
                }
                index.by_addr.insert(a, id);
            }
            for &p in &spec.candidates {
                let v = index.by_port.entry(p).or_default();
                if !v.contains(&id) {
                    v.push(id);
                }
            }
            groups.push(Arc::new(VipGroup::new(spec, now)));
        }
        Ok(VipTable {
            groups,
            index: Arc::new(index),
        })
    }

    /// Carry live state (owners, epoch, history, pending claim, hijack record) over from
    /// `old` for groups that keep their name. `map_port` translates old port ids to new ones
    /// (ports are matched by name across a reload); owners that are no longer candidates are
    /// dropped, which counts as a move.
    ///
    /// In a cluster the two kinds of loss differ: an owner whose port is still here but no
    /// longer a candidate was removed by the operator, so the group must write that to the
    /// store (it becomes dirty); an owner whose port left this switch (`map_port` gives
    /// `None`) is handed over, not released: a live migration unplugs the port here and
    /// plugs it on another host, which adopts the store's record. Nothing is written for it.
    pub fn carry_state_from(
        &mut self,
        old: &VipTable,
        now: Timestamp,
        map_port: impl Fn(PortId) -> Option<PortId>,
    ) {
        // by name, built once: a lookup per group keeps a reload of n groups O(n)
        let by_name: std::collections::HashMap<&str, &VipGroup> = old
            .groups
            .iter()
            .map(|o| (o.spec.name.as_str(), &**o))
            .collect();
        for g in &mut self.groups {
            let g = Arc::make_mut(g);
            let Some(o) = by_name.get(g.spec.name.as_str()).copied() else {
                continue;
            };
            if o.spec.mode != g.spec.mode {
                continue;
            }
            let mut removed = false;
            let owners: Vec<Owner> = o
                .owners
                .iter()
                .filter_map(|ow| {
                    let p = map_port(ow.port)?;
                    removed |= !g.spec.candidates.contains(&p);
                    g.spec
                        .candidates
                        .contains(&p)
                        .then_some(Owner { port: p, ..*ow })
                })
                .collect();
            let lost = owners.len() != o.owners.len();
            g.owners = owners;
            g.owners.sort_by_key(|o| o.port);
            g.epoch = o.epoch.max(g.epoch);
            g.history = o.history.clone();
            g.recent_moves = o.recent_moves.clone();
            g.hijacks = o.hijacks;
            g.last_hijack = o.last_hijack;
            g.owner_down = o.owner_down && !lost;
            g.last_claim = o.last_claim.and_then(|(t, p)| map_port(p).map(|p| (t, p)));
            // the cluster side does not depend on local port ids
            g.remote_candidates = o.remote_candidates.clone();
            g.remote_owners = o.remote_owners.clone();
            if g.spec.mode == VipMode::ActivePassive && !g.owners.is_empty() {
                g.remote_owners.clear();
            }
            g.confirmed = o.confirmed;
            g.lost_owners = o.lost_owners.clone();
            g.dirty = o.dirty || removed;
            g.pending = o.pending.and_then(|p| {
                map_port(p.port)
                    .filter(|np| g.spec.candidates.contains(np))
                    .map(|np| PendingClaim { port: np, ..p })
            });
            if lost {
                g.epoch += 1;
                let e = g.epoch;
                g.record(Move {
                    at: now,
                    epoch: e,
                    from: None,
                    to: g.owners.first().map(|o| o.port),
                    from_remote: None,
                    to_remote: None,
                    mac: g.owners.first().map(|o| o.mac),
                    reason: MoveReason::Admin,
                });
            }
        }
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.groups.len()
    }
    /// True if there are no groups.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
    /// All groups, by id order.
    pub fn groups(&self) -> impl Iterator<Item = (VipId, &VipGroup)> {
        self.groups
            .iter()
            .enumerate()
            .map(|(i, g)| (VipId(i as u32), &**g))
    }
    /// A group by id.
    #[inline]
    pub fn group(&self, id: VipId) -> Option<&VipGroup> {
        self.groups.get(id.index()).map(|g| &**g)
    }
    /// A group by id, mutably (copied first if a snapshot shares it).
    pub fn group_mut(&mut self, id: VipId) -> Option<&mut VipGroup> {
        self.groups.get_mut(id.index()).map(Arc::make_mut)
    }
    /// A group by name.
    pub fn find(&self, name: &str) -> Option<VipId> {
        self.groups
            .iter()
            .position(|g| g.spec.name == name)
            .map(|i| VipId(i as u32))
    }
    /// The group an address belongs to.
    #[inline]
    pub fn lookup(&self, addr: IpAddr) -> Option<VipId> {
        if self.index.by_addr.is_empty() {
            return None;
        }
        self.index.by_addr.get(&addr).copied()
    }
    /// The group an address belongs to, with the group.
    #[inline]
    pub fn lookup_group(&self, addr: IpAddr) -> Option<(VipId, &VipGroup)> {
        let id = self.lookup(addr)?;
        self.group(id).map(|g| (id, g))
    }
    /// Is `port` a candidate for the group holding `addr`?
    #[inline]
    pub fn is_candidate_for(&self, port: PortId, addr: IpAddr) -> bool {
        self.lookup_group(addr)
            .is_some_and(|(_, g)| g.is_candidate(port))
    }
    /// Does `port` currently own `addr`?
    #[inline]
    pub fn owns(&self, port: PortId, addr: IpAddr) -> bool {
        self.lookup_group(addr)
            .is_some_and(|(_, g)| g.is_owner(port))
    }
    /// The groups `port` is a candidate of.
    pub fn groups_of(&self, port: PortId) -> &[VipId] {
        self.index
            .by_port
            .get(&port)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Handle a claim for `id`.
    pub fn claim(
        &mut self,
        id: VipId,
        port: PortId,
        mac: MacAddr,
        now: Timestamp,
    ) -> Option<ClaimOutcome> {
        self.group_mut(id).map(|g| g.claim(port, mac, now))
    }

    /// Handle a claim for address `addr` of `id` (see [`VipGroup::claim_for`]).
    pub fn claim_for(
        &mut self,
        id: VipId,
        port: PortId,
        mac: MacAddr,
        addr: IpAddr,
        now: Timestamp,
    ) -> Option<ClaimOutcome> {
        self.group_mut(id)
            .map(|g| g.claim_for(port, mac, addr, now))
    }

    /// A port came (back) up.
    pub fn port_up(&mut self, port: PortId) {
        for g in &mut self.groups {
            if g.is_candidate(port) {
                Arc::make_mut(g).port_up(port);
            }
        }
    }

    /// Apply due pending claims and liveness expiries; returns the moves.
    pub fn poll(&mut self, now: Timestamp) -> Vec<(VipId, Move)> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for (i, g) in self.groups.iter_mut().enumerate() {
            if g.next_deadline().is_some_and(|d| d <= now) {
                Arc::make_mut(g).poll(now, &mut buf);
                out.extend(buf.drain(..).map(|m| (VipId(i as u32), m)));
            }
        }
        out
    }

    /// The earliest time [`VipTable::poll`] has something to do.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.groups.iter().filter_map(|g| g.next_deadline()).min()
    }

    /// A probe answer for address `addr` (see [`VipGroup::discovered`]).
    pub fn discovered(
        &mut self,
        id: VipId,
        port: PortId,
        mac: MacAddr,
        addr: IpAddr,
        now: Timestamp,
    ) -> Option<Move> {
        self.group_mut(id)
            .and_then(|g| g.discovered(port, mac, addr.is_ipv6(), now))
    }

    /// A cheap fingerprint of the state [`VipGroup::saved`] keeps (epochs, owner MACs,
    /// pending claims): it changes whenever that state does, so the caller knows when to
    /// write it down again.
    pub fn state_fingerprint(&self) -> u64 {
        let mut h: u64 = self.groups.len() as u64;
        for g in &self.groups {
            h = mix64(h ^ g.epoch);
            if let Some(p) = g.pending {
                h = mix64(h ^ (u64::from(p.port.0) + 1) ^ p.due.as_nanos());
            }
            h = mix64(h ^ u64::from(g.owner_down));
        }
        h
    }

    /// `port` went down: drop it from A/A owner sets (and release A/P groups configured so).
    pub fn port_down(&mut self, port: PortId, now: Timestamp) -> Vec<(VipId, Move)> {
        let ids: Vec<VipId> = self.groups_of(port).to_vec();
        let mut out = Vec::new();
        for id in ids {
            if let Some(m) = self.group_mut(id).and_then(|g| g.port_down(port, now)) {
                out.push((id, m));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }

    fn spec(mode: VipMode) -> VipSpec {
        VipSpec {
            name: "web".into(),
            addresses: vec!["10.0.0.100".parse().unwrap(), "fd00::100".parse().unwrap()],
            mode,
            candidates: vec![PortId(1), PortId(2), PortId(3)],
            damping: Damping {
                max_moves: 2,
                window: Duration::from_secs(10),
            },
            release_on_port_loss: false,
            virtual_mac: MacAddr([2, 0xaa, 0, 0, 0, 1]),
            owner_liveness: None,
            initial_owners: vec![],
        }
    }

    fn t(s: u64) -> Timestamp {
        Timestamp::from_secs(s)
    }

    /// keepalived `use_vmac`: the IPv4 VIP is announced from the VRRP virtual MAC, the IPv6
    /// one (virtual_ipaddress_excluded) from the port MAC. One owner MAC for both made every
    /// announcement burst a series of mac-change moves.
    #[test]
    fn each_family_keeps_its_own_owner_mac() {
        let vmac = MacAddr([0, 0, 0x5e, 0, 1, 33]);
        let (v4, v6): (IpAddr, IpAddr) =
            ("10.0.0.100".parse().unwrap(), "fd00::100".parse().unwrap());
        let mut g = VipGroup::new(spec(VipMode::ActivePassive), t(0));
        assert!(matches!(
            g.claim_for(PortId(1), vmac, v4, t(1)),
            ClaimOutcome::Moved(_)
        ));
        // the first NA from the port MAC sets the IPv6 MAC: one change
        let ClaimOutcome::Moved(m) = g.claim_for(PortId(1), mac(1), v6, t(1)) else {
            panic!("the IPv6 MAC must change once")
        };
        assert_eq!(
            (m.reason, m.to, m.mac),
            (MoveReason::MacChange, Some(PortId(1)), Some(mac(1)))
        );
        let epoch = g.epoch();
        for i in 2..10 {
            assert_eq!(
                g.claim_for(PortId(1), vmac, v4, t(i)),
                ClaimOutcome::Refreshed
            );
            assert_eq!(
                g.claim_for(PortId(1), mac(1), v6, t(i)),
                ClaimOutcome::Refreshed
            );
        }
        assert_eq!(g.epoch(), epoch, "refreshes must not move anything");
        assert_eq!(
            (g.answer_mac(), g.answer_mac6()),
            (Some(vmac), Some(mac(1)))
        );
        assert_eq!(
            (g.answer_mac_for(v4), g.answer_mac_for(v6)),
            (Some(vmac), Some(mac(1)))
        );
        let o = g.owners()[0];
        assert_eq!((o.mac, o.mac6), (vmac, mac(1)));
        // a takeover starts from the claim's MAC for both families
        assert!(matches!(
            g.claim_for(PortId(2), vmac, v4, t(20)),
            ClaimOutcome::Moved(_)
        ));
        assert_eq!((g.answer_mac(), g.answer_mac6()), (Some(vmac), Some(vmac)));
        assert!(matches!(
            g.claim_for(PortId(2), mac(2), v6, t(20)),
            ClaimOutcome::Moved(_)
        ));
        assert_eq!(
            (g.answer_mac(), g.answer_mac6()),
            (Some(vmac), Some(mac(2)))
        );
        // a family-less claim sets both
        assert!(matches!(
            g.claim(PortId(2), mac(2), t(21)),
            ClaimOutcome::Moved(_)
        ));
        assert_eq!(
            (g.answer_mac(), g.answer_mac6()),
            (Some(mac(2)), Some(mac(2)))
        );
    }

    #[test]
    fn first_claim_moves_and_bumps_epoch() {
        let mut g = VipGroup::new(spec(VipMode::ActivePassive), t(0));
        assert_eq!(g.epoch(), 0);
        let ClaimOutcome::Moved(m) = g.claim(PortId(1), mac(1), t(1)) else {
            panic!()
        };
        assert_eq!((m.from, m.to, m.epoch), (None, Some(PortId(1)), 1));
        assert_eq!(g.claim(PortId(1), mac(1), t(1)), ClaimOutcome::Refreshed);
        assert_eq!(g.answer_mac(), Some(mac(1)));
    }

    #[test]
    fn non_candidate_is_hijack() {
        let mut g = VipGroup::new(spec(VipMode::ActivePassive), t(0));
        g.claim(PortId(1), mac(1), t(1));
        assert_eq!(g.claim(PortId(9), mac(9), t(2)), ClaimOutcome::NotCandidate);
        assert_eq!(g.owners()[0].port, PortId(1));
        assert_eq!(g.hijack_count(), 1);
        assert_eq!(g.last_hijack().unwrap().port, PortId(9));
    }

    #[test]
    fn damping_holds_then_applies_pending() {
        let mut g = VipGroup::new(spec(VipMode::ActivePassive), t(0));
        assert!(matches!(
            g.claim(PortId(1), mac(1), t(1)),
            ClaimOutcome::Moved(_)
        ));
        assert!(matches!(
            g.claim(PortId(2), mac(2), t(2)),
            ClaimOutcome::Moved(_)
        ));
        // Third move within 10 s: held until the first move leaves the window (t=11).
        assert_eq!(
            g.claim(PortId(1), mac(1), t(3)),
            ClaimOutcome::Pending { due: t(11) }
        );
        // A newer claim from port 3 replaces it: the latest claimant wins.
        assert_eq!(
            g.claim(PortId(3), mac(3), t(4)),
            ClaimOutcome::Pending { due: t(11) }
        );
        assert_eq!(g.next_deadline(), Some(t(11)));
        let mut out = vec![];
        g.poll(t(10), &mut out);
        assert!(out.is_empty());
        g.poll(t(11), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].to, Some(PortId(3)));
        assert_eq!(out[0].reason, MoveReason::DampedClaim);
        assert!(g.pending().is_none());
    }

    #[test]
    fn owner_claim_cancels_pending() {
        let mut g = VipGroup::new(spec(VipMode::ActivePassive), t(0));
        g.claim(PortId(1), mac(1), t(1));
        g.claim(PortId(2), mac(2), t(2));
        assert!(matches!(
            g.claim(PortId(1), mac(1), t(3)),
            ClaimOutcome::Pending { .. }
        ));
        assert_eq!(g.claim(PortId(2), mac(2), t(4)), ClaimOutcome::Refreshed);
        assert!(g.pending().is_none());
    }

    #[test]
    fn active_active_join_leave_and_hash() {
        let mut g = VipGroup::new(spec(VipMode::ActiveActive), t(0));
        g.claim(PortId(1), mac(1), t(1));
        g.claim(PortId(2), mac(2), t(1));
        assert_eq!(g.owners().len(), 2);
        assert_eq!(g.answer_mac(), Some(MacAddr([2, 0xaa, 0, 0, 0, 1])));
        let before: Vec<PortId> = (0..1000u64)
            .map(|h| g.select_owner(h).unwrap().port)
            .collect();
        assert!(before.contains(&PortId(1)) && before.contains(&PortId(2)));
        g.claim(PortId(3), mac(3), t(2));
        let after: Vec<PortId> = (0..1000u64)
            .map(|h| g.select_owner(h).unwrap().port)
            .collect();
        for (b, a) in before.iter().zip(&after) {
            assert!(
                a == b || *a == PortId(3),
                "a joining owner only takes flows"
            );
        }
        let m = g.port_down(PortId(3), t(3)).unwrap();
        assert_eq!(m.from, Some(PortId(3)));
        let back: Vec<PortId> = (0..1000u64)
            .map(|h| g.select_owner(h).unwrap().port)
            .collect();
        assert_eq!(back, before);
    }

    #[test]
    fn active_passive_keeps_owner_on_port_loss_unless_configured() {
        let mut g = VipGroup::new(spec(VipMode::ActivePassive), t(0));
        g.claim(PortId(1), mac(1), t(1));
        assert!(g.port_down(PortId(1), t(2)).is_none());
        assert!(g.is_owner(PortId(1)));
        let mut s = spec(VipMode::ActivePassive);
        s.release_on_port_loss = true;
        let mut g = VipGroup::new(s, t(0));
        g.claim(PortId(1), mac(1), t(1));
        let m = g.port_down(PortId(1), t(2)).unwrap();
        assert_eq!((m.from, m.to), (Some(PortId(1)), None));
        assert!(g.owners().is_empty());
    }

    #[test]
    fn pending_claim_from_a_vanished_port_is_withdrawn() {
        let mut g = VipGroup::new(spec(VipMode::ActivePassive), t(0));
        g.claim(PortId(1), mac(1), t(1));
        g.claim(PortId(2), mac(2), t(2));
        assert!(matches!(
            g.claim(PortId(1), mac(1), t(3)),
            ClaimOutcome::Pending { .. }
        ));
        assert!(g.port_down(PortId(1), t(4)).is_none());
        assert!(g.pending().is_none());
        let mut out = vec![];
        g.poll(t(20), &mut out);
        assert!(out.is_empty(), "the VIP stays on the live owner");
        assert!(g.is_owner(PortId(2)));
    }

    #[test]
    fn damping_does_not_hold_a_claim_that_replaces_a_dead_owner() {
        // Window full (2 moves in 10 s), then the owner's port dies: the standby's claim
        // is applied at once instead of black-holing the VIP until t=11.
        let mut g = VipGroup::new(spec(VipMode::ActivePassive), t(0));
        g.claim(PortId(1), mac(1), t(1));
        g.claim(PortId(2), mac(2), t(2));
        assert!(g.port_down(PortId(2), t(3)).is_none());
        assert!(matches!(
            g.claim(PortId(1), mac(1), t(4)),
            ClaimOutcome::Moved(Move {
                to: Some(PortId(1)),
                ..
            })
        ));
        // The new owner is alive: damping applies again.
        assert!(matches!(
            g.claim(PortId(3), mac(3), t(5)),
            ClaimOutcome::Pending { .. }
        ));
    }

    #[test]
    fn a_held_claim_is_applied_when_the_owner_dies() {
        let mut g = VipGroup::new(spec(VipMode::ActivePassive), t(0));
        g.claim(PortId(1), mac(1), t(1));
        g.claim(PortId(2), mac(2), t(2));
        assert!(matches!(
            g.claim(PortId(1), mac(1), t(3)),
            ClaimOutcome::Pending { .. }
        ));
        let m = g
            .port_down(PortId(2), t(4))
            .expect("the held claim is applied");
        assert_eq!((m.from, m.to), (Some(PortId(2)), Some(PortId(1))));
        assert_eq!(m.reason, MoveReason::DampedClaim);
        assert!(g.pending().is_none());
    }

    #[test]
    fn admin_assign_refuses_non_candidates() {
        let mut g = VipGroup::new(spec(VipMode::ActivePassive), t(0));
        assert!(g.admin_assign(PortId(9), mac(9), t(1)).is_none());
        assert!(g.owners().is_empty());
    }

    #[test]
    fn table_rejects_duplicate_addresses() {
        let a = spec(VipMode::ActivePassive);
        let mut b = spec(VipMode::ActivePassive);
        b.name = "other".into();
        b.addresses = vec!["fd00::100".parse().unwrap()];
        let e = VipTable::new(vec![a, b], t(0)).unwrap_err();
        assert!(e.to_string().contains("fd00::100"), "{e}");
    }

    #[test]
    fn liveness_expires_silent_aa_owner() {
        let mut s = spec(VipMode::ActiveActive);
        s.owner_liveness = Some(Duration::from_secs(5));
        let mut g = VipGroup::new(s, t(0));
        g.claim(PortId(1), mac(1), t(1));
        g.claim(PortId(2), mac(2), t(3));
        let mut out = vec![];
        g.poll(t(6), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].from, Some(PortId(1)));
        assert_eq!(g.owners().len(), 1);
    }

    /// A live migration unplugs the owner's port here (a reload without it): the owner is
    /// dropped locally, but nothing is written to the store (the host that gets the port
    /// adopts the record). An owner removed from the candidates by the operator, its port
    /// still here, is a release the store must learn.
    #[test]
    fn a_port_leaving_the_switch_hands_over_a_candidate_removed_releases() {
        let mut old = VipTable::new(vec![spec(VipMode::ActivePassive)], t(0)).unwrap();
        let id = old.find("web").unwrap();
        let g = old.group_mut(id).unwrap();
        assert!(matches!(
            g.claim(PortId(1), mac(1), t(1)),
            ClaimOutcome::Moved(_)
        ));
        let w = g.cluster_write().unwrap();
        g.confirm_write(crate::location::Stamp {
            epoch: w.epoch,
            revision: 5,
        });
        assert!(!g.is_dirty());

        // port 1 is gone from the switch (ports 2 and 3 keep their ids)
        let mut s = spec(VipMode::ActivePassive);
        s.candidates = vec![PortId(2), PortId(3)];
        let mut gone = VipTable::new(vec![s.clone()], t(2)).unwrap();
        gone.carry_state_from(&old, t(2), |p| (p != PortId(1)).then_some(p));
        let g = gone.group(id).unwrap();
        assert!(!g.has_owner());
        assert!(!g.is_dirty(), "a handover writes nothing");

        // port 1 is still here but no longer a candidate
        let mut removed = VipTable::new(vec![s], t(2)).unwrap();
        removed.carry_state_from(&old, t(2), Some);
        let g = removed.group(id).unwrap();
        assert!(!g.has_owner());
        let w = g.cluster_write().expect("the release is written");
        assert!(w.owners.is_empty());
    }
}
