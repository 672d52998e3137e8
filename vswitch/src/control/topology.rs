//! The overlay side of [`Switch`]: the cluster topology the agent sends, built into the
//! immutable [`Overlay`] table of the next snapshot.
//!
//! Contract:
//! - [`Switch::set_topology`] replaces the whole topology (hosts with a live record, their
//!   port records), interns host names with [`Switch::host_id`] so that the overlay's
//!   [`HostId`]s are the VIP table's, rebuilds the table and publishes a snapshot; it
//!   returns how many remote hosts and ports the table kept;
//! - a reload rebuilds the table from the last topology (local port names and the VLAN →
//!   VNI map may have changed); a standalone switch's table is always empty;
//! - per-host counters are kept by host id for the life of the switch.

use std::sync::Arc;

use vip_table::HostId;

use super::Switch;
use crate::overlay::{Overlay, OverlayCounters, Topology, VtepCounters};

/// What the switch keeps for the overlay.
#[derive(Debug, Default)]
pub(super) struct OverlayState {
    /// The last topology the agent sent.
    topology: Topology,
    /// The table built from it (what snapshots carry).
    pub(super) table: Arc<Overlay>,
    /// Per-host counters, by host id.
    vteps: Vec<Arc<VtepCounters>>,
    /// Counters of datagrams from no known host.
    global: Arc<OverlayCounters>,
}

impl Switch {
    /// Replace the cluster topology (see the module doc). Returns (hosts, ports) kept in
    /// the overlay table.
    pub fn set_topology(&mut self, topology: Topology) -> (usize, usize) {
        self.overlay.topology = topology;
        self.rebuild_overlay();
        self.publish(false);
        let t = &self.overlay.table;
        (t.hosts().count(), t.ports().len())
    }

    /// The overlay table now in force.
    pub fn overlay(&self) -> &Arc<Overlay> {
        &self.overlay.table
    }

    /// The counters of every host the switch has counted for, with the host's name.
    pub fn vtep_counters(&self) -> Vec<(String, Arc<VtepCounters>)> {
        self.overlay
            .vteps
            .iter()
            .enumerate()
            .map(|(i, c)| (self.host_name(HostId(i as u32)).to_string(), c.clone()))
            .collect()
    }

    /// Rebuild the overlay table from the last topology (no publish).
    pub(super) fn rebuild_overlay(&mut self) {
        let topo = std::mem::take(&mut self.overlay.topology);
        let cluster = self.config.cluster.clone();
        let vnis: Vec<_> = cluster
            .as_ref()
            .map(|c| c.vnis.iter().map(|m| (m.vlan, m.vni)).collect())
            .unwrap_or_default();
        let local = cluster.as_ref().map(|c| {
            let inner = u32::from(c.underlay_mtu)
                .saturating_sub(crate::wire::vxlan::OVERHEAD_IPV4)
                .min(u32::from(u16::MAX)) as u16;
            crate::overlay::LocalSide {
                host: c.host.as_str(),
                vtep: c.vtep,
                inner_mtu: inner,
                vnis: vnis.as_slice(),
            }
        });
        let global = self.overlay.global.clone();
        let by_name = self.by_name.clone();
        let mut ids = Vec::new();
        for h in &topo.hosts {
            let id = self.host_id(&h.name);
            let i = id.0 as usize;
            while self.overlay.vteps.len() <= i {
                self.overlay.vteps.push(Arc::new(VtepCounters::default()));
            }
            ids.push((h.name.clone(), id, self.overlay.vteps[i].clone()));
        }
        let table = Overlay::build(
            &topo,
            local,
            |p| by_name.contains_key(p),
            |name| {
                ids.iter()
                    .find(|(n, _, _)| n == name)
                    .map(|(_, id, c)| (*id, c.clone()))
            },
            global,
        );
        self.overlay.table = Arc::new(table);
        self.overlay.topology = topo;
    }
}
