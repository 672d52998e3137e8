//! The answers of the cluster commands: the agent's in-process commands
//! (`cluster-owner`, `cluster-writes`, …, see [`crate::datapath::Command`]) and the
//! operator's `cluster apply` / `cluster show`, which the agent answers.

use serde::{Deserialize, Serialize};

use crate::config::VipDef;

/// What an in-process cluster command did to the switch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterResult {
    /// Anything changed (a record applied, a candidate added, …).
    pub changed: bool,
    /// Ownership moved.
    pub moved: bool,
    /// Why a record was not applied (`duplicate`, `older`, `epoch-not-advanced`,
    /// `not-a-candidate`), if it was not.
    pub refused: Option<String>,
}

/// One owner in a pending write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteOwnerView {
    /// The owner's host; `None`: this host.
    pub host: Option<String>,
    /// Its port.
    pub port: String,
    /// IPv4 MAC.
    pub mac: String,
    /// IPv6 MAC.
    pub mac6: String,
}

/// A record a local change must write to the store (`cluster-writes`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterWriteView {
    /// Group name.
    pub vip: String,
    /// The record's epoch.
    pub epoch: u64,
    /// The `mod_revision` to condition the write on (`None`: create-if-absent).
    pub base_revision: Option<u64>,
    /// The owners after the change.
    pub owners: Vec<WriteOwnerView>,
    /// When the newest local owner's move was installed, on the switch's clock
    /// (`CLOCK_MONOTONIC`, ns); 0 when no local owner.
    pub moved_at_ns: u64,
}

/// `cluster-vips`: the cluster groups installed in the switch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterVipsResult {
    /// Groups in the switch now that came from the cluster.
    pub installed: Vec<String>,
    /// Groups skipped, with why (a clash with the configuration file).
    pub skipped: Vec<SkippedVip>,
}

/// A cluster group a host did not install.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedVip {
    /// Group name.
    pub vip: String,
    /// Why.
    pub reason: String,
}

/// `cluster apply`: what was written to etcd.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterApplyResult {
    /// Groups written (created or replaced).
    pub written: Vec<String>,
    /// Groups deleted (in etcd, not in the file).
    pub deleted: Vec<String>,
    /// The etcd revision of the transaction.
    pub revision: u64,
}

/// `cluster show`: the groups in etcd, as their definitions.
pub type ClusterVipDefs = Vec<VipDef>;
