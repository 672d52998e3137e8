//! `show hosts`: one [`HostView`] per host of the cluster, this one first.
//!
//! The cluster view lives in the agent (it holds the etcd session), so the agent's control
//! socket answers `show hosts` itself; the control thread, which knows no cluster, refuses
//! it with [`CtlError::ClusterOff`](super::CtlError::ClusterOff) — which is also the
//! answer of a standalone switch.

use serde::{Deserialize, Serialize};

/// A host of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostView {
    /// Host name (`cluster.host` of its configuration).
    pub host: String,
    /// Its VTEP (underlay IPv4 address).
    pub vtep: String,
    /// Its agent's version.
    pub version: String,
    /// This host (`true`) or another one.
    pub local: bool,
    /// This host only: the etcd session's state (`connecting`, `up`, `down`), see
    /// `docs/cluster.md`; `None` for remote hosts.
    pub session: Option<String>,
    /// Remote hosts: how many port records it publishes; this host: how many of its
    /// ports it publishes.
    pub ports: usize,
    /// This host only: local ports not published because another host holds the name.
    pub clashes: Vec<PortClashView>,
}

/// A local port whose name another host already publishes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortClashView {
    /// The port name.
    pub port: String,
    /// The host whose record holds the name.
    pub holder: String,
}
