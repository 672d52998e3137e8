//! The answers of the commands that change the switch, and of `watch`.

use serde::{Deserialize, Serialize};

/// `vip move`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveResult {
    /// Whether ownership changed (false: the port already owned the group).
    pub moved: bool,
    /// The epoch after the move.
    pub epoch: Option<u64>,
}

/// `vip release`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseResult {
    /// Whether the port was an owner.
    pub released: bool,
}

/// `port up|down`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortAdminResult {
    /// Port name.
    pub port: String,
    /// The administrative state now.
    pub admin_up: bool,
}

/// `reload` (a refused reload is an error, never this).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadResult {
    /// Always true.
    pub reloaded: bool,
    /// `added [..], removed [..], kept N`.
    pub summary: String,
}

/// `SetTopology` (in process only): what the overlay table kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopologyResult {
    /// Remote hosts in the table.
    pub hosts: usize,
    /// Remote ports in the table.
    pub ports: usize,
}

/// The first line of a `watch` stream: the subscription is in place; every event the
/// control thread emits from now on follows, one per line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchStarted {
    /// Always true.
    pub watching: bool,
}
