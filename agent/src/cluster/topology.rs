//! Feeding the switch the cluster topology: the hosts and port records of the cluster
//! view, as a typed [`Topology`] sent with [`Command::SetTopology`].
//!
//! Contract:
//! - [`ClusterState::topology`] turns the view into a [`Topology`]; a record whose VTEP,
//!   MAC or address does not parse is skipped (it was outside input, already counted as
//!   malformed if it did not decode at all);
//! - [`Feed::send`] never blocks the async session: it hands the value to a plain thread
//!   (`cluster-topology`) that sends only the newest value (older ones queued meanwhile are
//!   dropped) and only when it differs from the last one the switch accepted;
//! - the session sends after every resync and every batch of watch events; while the
//!   session is down the switch keeps the last topology (a short etcd outage does not cut
//!   the overlay; a host that really left is removed when the view is read again).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::mpsc;

use vip_table::{parse_ip_or_cidr, MacAddr};
use vswitch::datapath::{Command, ControlHandle};
use vswitch::overlay::{Topology, TopologyHost, TopologyPair, TopologyPort};

use super::ClusterState;

impl ClusterState {
    /// The topology of the current view (see the module doc).
    pub fn topology(&self) -> Topology {
        let g = self.lock();
        let hosts = g
            .hosts
            .values()
            .filter_map(|h| {
                Some(TopologyHost {
                    name: h.host.clone(),
                    vtep: h.vtep.parse::<Ipv4Addr>().ok()?,
                })
            })
            .collect();
        let ports = g
            .ports
            .values()
            .filter_map(|p| {
                let ips = p
                    .ips
                    .iter()
                    .map(|i| i.parse::<IpAddr>())
                    .collect::<Result<Vec<_>, _>>()
                    .ok()?;
                let allowed_address_pairs = p
                    .allowed_address_pairs
                    .iter()
                    .map(|a| {
                        Some(TopologyPair {
                            ip: parse_ip_or_cidr(&a.ip).ok()?,
                            mac: a.mac.parse::<MacAddr>().ok()?,
                        })
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(TopologyPort {
                    name: p.name.clone(),
                    host: p.host.clone(),
                    mac: p.mac.parse::<MacAddr>().ok()?,
                    ips,
                    allowed_address_pairs,
                    vlan: p.vlan,
                })
            })
            .collect();
        Topology { hosts, ports }
    }
}

/// The sending end of the topology thread.
#[derive(Clone, Debug)]
pub(crate) struct Feed {
    tx: mpsc::Sender<Topology>,
}

impl Feed {
    /// Start the `cluster-topology` thread sending to `ctl`.
    pub(crate) fn start(ctl: ControlHandle) -> Result<Feed, String> {
        let (tx, rx) = mpsc::channel::<Topology>();
        std::thread::Builder::new()
            .name("cluster-topology".into())
            .spawn(move || {
                let mut last: Option<Topology> = None;
                while let Ok(mut t) = rx.recv() {
                    // coalesce: only the newest matters
                    while let Ok(newer) = rx.try_recv() {
                        t = newer;
                    }
                    if last.as_ref() == Some(&t) {
                        continue;
                    }
                    match ctl.call(Command::SetTopology(t.clone())) {
                        Ok(_) => last = Some(t),
                        Err(e) => {
                            tracing::warn!(error = %e, "cluster: the switch did not take the topology");
                        }
                    }
                }
            })
            .map_err(|e| format!("cluster: cannot start the topology thread: {e}"))?;
        Ok(Feed { tx })
    }

    /// Hand the switch the topology of `state` (never blocks).
    pub(crate) fn send(&self, state: &ClusterState) {
        let _ = self.tx.send(state.topology());
    }
}
