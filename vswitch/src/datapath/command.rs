//! Operator commands: the typed requests of the control socket and their answer type.

use serde_json::Value;

/// An operator command (from the control socket).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Command {
    /// Ports with their configuration and state.
    ShowPorts,
    /// The MAC table.
    ShowFdb,
    /// VIP groups with owners, epochs, claims, moves, hijacks.
    ShowVips,
    /// Per-port counters.
    ShowStats,
    /// Move a VIP to a port (A/A: add an owner).
    VipMove {
        /// VIP name.
        vip: String,
        /// Port name.
        port: String,
    },
    /// Remove a port from a VIP's owners.
    VipRelease {
        /// VIP name.
        vip: String,
        /// Port name.
        port: String,
    },
    /// Set a port administratively up or down.
    PortAdmin {
        /// Port name.
        port: String,
        /// Up?
        up: bool,
    },
    /// Re-read the configuration file and apply it.
    Reload,
    /// Prometheus text exposition.
    Metrics,
}

impl Command {
    /// Whether the command changes the switch (ports, VIPs, configuration). The control
    /// socket lets only root and `switch.ctl_group` members run these. The match lists
    /// every variant on purpose: a new command does not compile until it is classified.
    pub fn mutates(&self) -> bool {
        match self {
            Command::ShowPorts
            | Command::ShowFdb
            | Command::ShowVips
            | Command::ShowStats
            | Command::Metrics => false,
            Command::VipMove { .. }
            | Command::VipRelease { .. }
            | Command::PortAdmin { .. }
            | Command::Reload => true,
        }
    }
}

/// The answer to a command: JSON data, or an error message for the operator.
pub type Reply = Result<Value, String>;
