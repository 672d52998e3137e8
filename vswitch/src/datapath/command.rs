//! Operator commands: the typed requests of the control socket. Their answers are the
//! views of [`crate::view`].

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
    /// The hosts of the cluster (multi-host mode): answered by the agent, which holds the
    /// etcd session; the control thread refuses it as `CtlError::ClusterOff`.
    ShowHosts,
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
    /// Stream the control thread's events ([`crate::view::Event`]) until the client goes
    /// away or the switch stops. Only the control socket serves it (in process:
    /// `Daemon::subscribe`).
    Watch,
    /// Replace the cluster topology (live hosts, their VTEPs and ports) the overlay
    /// forwards by ([`crate::control::Switch::set_topology`]). **In process only**: the
    /// cluster agent sends it from the etcd view; it has no wire form (`serde(skip)`), so
    /// the control socket cannot parse it — an operator must not be able to invent hosts
    /// or ports that the store does not have.
    #[serde(skip)]
    SetTopology(crate::overlay::Topology),
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
            | Command::ShowHosts
            | Command::Metrics
            | Command::Watch => false,
            Command::VipMove { .. }
            | Command::VipRelease { .. }
            | Command::PortAdmin { .. }
            | Command::Reload
            | Command::SetTopology(_) => true,
        }
    }
}
