//! `show vips`: one [`VipView`] per VIP group. Times are relative to the answer ("seconds
//! ago", "due in seconds"), never clock values.

use serde::{Deserialize, Serialize};

/// A VIP group with its owners, epoch, claims, moves and hijacks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VipView {
    /// Group name.
    pub name: String,
    /// `active-passive` or `active-active`.
    pub mode: String,
    /// The group's addresses.
    pub addresses: Vec<String>,
    /// Candidate port names.
    pub candidates: Vec<String>,
    /// Current owners.
    pub owners: Vec<OwnerView>,
    /// The MAC the switch answers ARP with.
    pub answer_mac: Option<String>,
    /// The MAC the switch answers NDP with.
    pub answer_mac6: Option<String>,
    /// Ownership epoch (+1 per move).
    pub epoch: u64,
    /// The last accepted claim.
    pub last_claim: Option<LastClaimView>,
    /// A claim held back by damping.
    pub pending: Option<PendingView>,
    /// Recent moves, oldest first.
    pub moves: Vec<MoveView>,
    /// Claims by non-candidates refused so far.
    pub hijack_attempts: u64,
    /// The switch is asking the candidates who holds the group.
    pub discovering: bool,
    /// The last refused claim by a non-candidate.
    pub last_hijack: Option<HijackView>,
    /// Owners on other hosts (multi-host mode; absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote_owners: Vec<RemoteOwnerView>,
    /// Candidates on other hosts, as `port@host` (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote_candidates: Vec<String>,
}

/// An owner of a group on another host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RemoteOwnerView {
    /// Port name.
    pub port: String,
    /// Its host.
    pub host: String,
    /// MAC for IPv4.
    pub mac: String,
    /// MAC for IPv6.
    pub mac6: String,
    /// Learned since.
    pub since_secs_ago: f64,
}

/// One owner of a group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OwnerView {
    /// Port name.
    pub port: String,
    /// MAC for IPv4.
    pub mac: String,
    /// MAC for IPv6.
    pub mac6: String,
    /// Owner since.
    pub since_secs_ago: f64,
    /// Its last claim.
    pub last_claim_secs_ago: f64,
}

/// The last accepted claim.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LastClaimView {
    /// Claimant port.
    pub port: String,
    /// When.
    pub secs_ago: f64,
}

/// A claim held back by damping.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingView {
    /// Claimant port.
    pub port: String,
    /// Its MAC.
    pub mac: String,
    /// When it will be applied.
    pub due_in_secs: f64,
}

/// One entry of a group's move history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MoveView {
    /// When.
    pub secs_ago: f64,
    /// Epoch after the move.
    pub epoch: u64,
    /// Previous (A/P) or leaving (A/A) owner.
    pub from: Option<String>,
    /// New (A/P) or joining (A/A) owner.
    pub to: Option<String>,
    /// The new owner's MAC.
    pub mac: Option<String>,
    /// Why (`claim`, `admin`, `port-down`, …).
    pub reason: String,
}

/// A refused claim by a non-candidate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HijackView {
    /// Offending port.
    pub port: String,
    /// Its MAC.
    pub mac: String,
    /// When.
    pub secs_ago: f64,
}
