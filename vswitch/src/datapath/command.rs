//! Operator commands: the typed requests of the control socket. Their answers are the
//! views of [`crate::view`].

/// An operator command (from the control socket).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
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
    /// What the switch would do with `frame` arriving on `port`, and why
    /// ([`crate::trace::trace_frame`]): read only, nothing is applied.
    Trace {
        /// The ingress port.
        port: String,
        /// The whole Ethernet frame, in hex.
        frame: String,
    },
    /// Prometheus text exposition.
    Metrics,
    /// Stream the control thread's events ([`crate::view::Event`]) until the client goes
    /// away or the switch stops. Only the control socket serves it (in process:
    /// `Daemon::subscribe`).
    Watch,
    /// Stream a capture of `port` ([`crate::view::capture`]) until `count` frames were
    /// delivered, `duration` seconds passed, the client goes away or the switch stops.
    /// Only the control socket serves it (in process: `ControlHandle::capture`). It shows
    /// traffic: only root and the control group may run it ([`Command::reveals_traffic`]).
    Capture {
        /// Port name.
        port: String,
        /// Which frames (default: received and sent).
        #[serde(default)]
        dir: crate::view::capture::CaptureDir,
        /// Stop after this many frames.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<u64>,
        /// Stop after this many seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration: Option<u64>,
    },
    /// Replace the cluster topology (live hosts, their VTEPs and ports) the overlay
    /// forwards by ([`crate::control::Switch::set_topology`]). **In process only**: the
    /// cluster agent sends it from the etcd view; it has no wire form (`serde(skip)`), so
    /// the control socket cannot parse it — an operator must not be able to invent hosts
    /// or ports that the store does not have.
    #[serde(skip)]
    SetTopology(crate::overlay::Topology),
    /// Operator: validate a TOML text of `[[vip]]` tables and make it the cluster's set
    /// of VIP groups in etcd (one transaction; groups not in it are deleted). Answered by
    /// the agent; the control thread refuses it as `CtlError::ClusterOff`.
    ClusterApply {
        /// The file's text.
        toml: String,
    },
    /// Operator: the cluster's VIP groups in etcd (answered by the agent).
    ClusterShow,
    /// Agent only: the cluster's VIP groups; the switch runs the configuration file's
    /// groups plus these (see `config::merge_cluster_vips`).
    ClusterVips {
        /// The groups, each with its candidates' VLAN.
        groups: Vec<ClusterGroup>,
    },
    /// Agent only: an ownership record from the store named `port` on `host` as an owner.
    ClusterOwner {
        /// Group.
        vip: String,
        /// The owner's host.
        host: String,
        /// The owner's port.
        port: String,
        /// Its IPv4 MAC.
        mac: String,
        /// Its IPv6 MAC.
        mac6: String,
        /// The record's epoch.
        epoch: u64,
        /// The record's `mod_revision`.
        revision: u64,
    },
    /// Agent only: a whole ownership record from the store: every owner of `vip` (see
    /// `Switch::apply_remote_owners`).
    ClusterOwners {
        /// Group.
        vip: String,
        /// The owners, as the record lists them.
        owners: Vec<ClusterOwnerEntry>,
        /// The record's epoch.
        epoch: u64,
        /// The record's `mod_revision`.
        revision: u64,
    },
    /// Agent only: an ownership record from the store no longer names `port` on `host`.
    ClusterRelease {
        /// Group.
        vip: String,
        /// The former owner's host.
        host: String,
        /// The former owner's port.
        port: String,
        /// The record's epoch.
        epoch: u64,
        /// The record's `mod_revision`.
        revision: u64,
    },
    /// Agent only: the store accepted this switch's write for `vip`.
    ClusterConfirm {
        /// Group.
        vip: String,
        /// The epoch written.
        epoch: u64,
        /// The new `mod_revision`.
        revision: u64,
    },
    /// Agent only: the records local changes must write (`Switch::cluster_writes`).
    ClusterWrites,
    /// Agent only: `port` of `host` is a candidate of `vip` (or moved to `host`).
    ClusterCandidate {
        /// Group.
        vip: String,
        /// The port's host.
        host: String,
        /// The port.
        port: String,
    },
    /// Agent only: `port` (of another host) is no longer a candidate of `vip`.
    ClusterCandidateGone {
        /// Group.
        vip: String,
        /// The port.
        port: String,
    },
    /// Agent only: `host`'s record went away (its lease expired).
    ClusterHostGone {
        /// The host.
        host: String,
    },
}

/// One owner of a [`Command::ClusterOwners`] record.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterOwnerEntry {
    /// The owner's host.
    pub host: String,
    /// The owner's port.
    pub port: String,
    /// Its IPv4 MAC.
    pub mac: String,
    /// Its IPv6 MAC.
    pub mac6: String,
}

/// A cluster VIP group as the agent hands it to the switch.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClusterGroup {
    /// The definition (etcd `/vswitch/v1/vips/<name>`).
    pub def: crate::config::VipDef,
    /// Its candidates' VLAN, from the cluster's port records.
    pub vlan: u16,
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
            | Command::ClusterShow
            | Command::ClusterWrites
            | Command::Trace { .. }
            | Command::Watch
            | Command::Capture { .. } => false,
            Command::VipMove { .. }
            | Command::VipRelease { .. }
            | Command::PortAdmin { .. }
            | Command::SetTopology(_)
            | Command::ClusterApply { .. }
            | Command::ClusterVips { .. }
            | Command::ClusterOwner { .. }
            | Command::ClusterOwners { .. }
            | Command::ClusterRelease { .. }
            | Command::ClusterConfirm { .. }
            | Command::ClusterCandidate { .. }
            | Command::ClusterCandidateGone { .. }
            | Command::ClusterHostGone { .. }
            | Command::Reload => true,
        }
    }

    /// Whether the command shows the switch's traffic (a capture): like the commands that
    /// change the switch, only root and `switch.ctl_group` members may run it.
    pub fn reveals_traffic(&self) -> bool {
        matches!(self, Command::Capture { .. })
    }

    /// Whether only the cluster agent, in process, may send the command: the agent's
    /// view of etcd is the only source of these facts, so the control socket refuses
    /// them (`CtlError::AgentOnly`).
    pub fn agent_only(&self) -> bool {
        matches!(
            self,
            Command::ClusterVips { .. }
                | Command::ClusterOwner { .. }
                | Command::ClusterOwners { .. }
                | Command::ClusterRelease { .. }
                | Command::ClusterConfirm { .. }
                | Command::ClusterWrites
                | Command::ClusterCandidate { .. }
                | Command::ClusterCandidateGone { .. }
                | Command::ClusterHostGone { .. }
        )
    }
}
