//! The control thread's side of the cluster commands (see [`super::Command`]): each is
//! one call of the `Switch`'s cluster methods ([`crate::control::remote`]) or, for the
//! cluster's VIP groups, the reload path with the file's groups plus the cluster's.
//!
//! Contract:
//! - `cluster-vips` replaces the cluster groups; the switch then runs
//!   `config::merge_cluster_vips(file, cluster)` through `Switch::reload`, which keeps the
//!   owners, epochs and remote state of groups that keep their name. A set that changes
//!   nothing is not applied (no reload, no `reloaded` event). A later file reload keeps the
//!   cluster groups. Skipped groups (a clash with the file) are logged
//!   (`event = "cluster_vip_skipped"`) and returned;
//! - record commands answer [`ClusterResult`]: `refused` names why a record was not
//!   applied (the core's `StaleReason`, or `not-a-candidate`); MACs that do not parse
//!   are a `bad request`, nothing changes;
//! - moves emit the switch's usual events (with `remote: true`), so `ctl watch` sees them.

use std::str::FromStr;

use vip_table::{MacAddr, RemoteOutcome, Stamp};

use crate::config::{cluster_vip_configs, ClusterVip};
use crate::control::remote::RemoteOwnerRecord;
use crate::control::Outbound;
use crate::view::{
    ClusterResult, ClusterVipsResult, ClusterWriteView, CtlError, SkippedVip, View, WriteOwnerView,
};

use super::control_loop::ControlLoop;
use super::{ClusterGroup, Command, Reply};

fn mac(s: &str) -> Result<MacAddr, CtlError> {
    MacAddr::from_str(s).map_err(|e| CtlError::BadRequest {
        message: format!("{s:?} is not a MAC address: {e}"),
    })
}

fn outcome(o: RemoteOutcome) -> ClusterResult {
    match o {
        RemoteOutcome::Applied(m) => ClusterResult {
            changed: true,
            moved: m.is_some(),
            refused: None,
        },
        RemoteOutcome::Stale { reason, .. } => ClusterResult {
            changed: false,
            moved: false,
            refused: Some(reason.to_string()),
        },
        RemoteOutcome::NotACandidate { .. } => ClusterResult {
            changed: false,
            moved: false,
            refused: Some("not-a-candidate".into()),
        },
    }
}

fn changed(c: bool, moved: bool) -> ClusterResult {
    ClusterResult {
        changed: c,
        moved,
        refused: None,
    }
}

impl ControlLoop {
    /// One cluster command (the caller checked it is one).
    pub(super) fn cluster_command(&mut self, cmd: Command, ob: &mut Vec<Outbound>) -> Reply {
        let now = self.clock.now();
        match cmd {
            Command::ClusterVips { groups } => {
                self.install_cluster_vips(&groups).map(View::ClusterVips)
            }
            Command::ClusterOwner {
                vip,
                host,
                port,
                mac: m4,
                mac6: m6,
                epoch,
                revision,
            } => {
                let owner = RemoteOwnerRecord {
                    host: &host,
                    port: &port,
                    mac: mac(&m4)?,
                    mac6: mac(&m6)?,
                };
                let o =
                    self.sw
                        .apply_remote_owner(&vip, owner, Stamp { epoch, revision }, now, ob)?;
                Ok(View::Cluster(outcome(o)))
            }
            Command::ClusterOwners {
                vip,
                owners,
                epoch,
                revision,
            } => {
                let mut set = Vec::with_capacity(owners.len());
                for o in &owners {
                    set.push(RemoteOwnerRecord {
                        host: &o.host,
                        port: &o.port,
                        mac: mac(&o.mac)?,
                        mac6: mac(&o.mac6)?,
                    });
                }
                let o =
                    self.sw
                        .apply_remote_owners(&vip, &set, Stamp { epoch, revision }, now, ob)?;
                Ok(View::Cluster(outcome(o)))
            }
            Command::ClusterRelease {
                vip,
                host,
                port,
                epoch,
                revision,
            } => {
                let o = self.sw.apply_remote_release(
                    &vip,
                    &host,
                    &port,
                    Stamp { epoch, revision },
                    now,
                    ob,
                )?;
                Ok(View::Cluster(outcome(o)))
            }
            Command::ClusterConfirm {
                vip,
                epoch,
                revision,
            } => {
                let o = self.sw.confirm_write(&vip, Stamp { epoch, revision })?;
                Ok(View::Cluster(outcome(o)))
            }
            Command::ClusterWrites => Ok(View::ClusterWrites(self.writes_view())),
            Command::ClusterCandidate { vip, host, port } => {
                let c = self.sw.add_remote_candidate(&vip, &host, &port)?;
                Ok(View::Cluster(changed(c, false)))
            }
            Command::ClusterCandidateGone { vip, port } => {
                let m = self.sw.remove_remote_candidate(&vip, &port, now, ob)?;
                Ok(View::Cluster(changed(true, m.is_some())))
            }
            Command::ClusterHostGone { host } => {
                let moves = self.sw.host_gone(&host, now, ob);
                Ok(View::Cluster(changed(!moves.is_empty(), !moves.is_empty())))
            }
            // the agent answers these; a switch without one has no cluster
            Command::ClusterApply { .. } | Command::ClusterShow => Err(CtlError::ClusterOff),
            _ => Err(CtlError::NotACall),
        }
    }

    fn writes_view(&self) -> Vec<ClusterWriteView> {
        let sw = &self.sw;
        sw.cluster_writes()
            .into_iter()
            .map(|w| {
                let moved_at_ns = sw
                    .vips()
                    .find(&w.vip)
                    .and_then(|id| sw.vips().group(id))
                    .and_then(|g| g.owners().iter().map(|o| o.since.as_nanos()).max())
                    .unwrap_or(0);
                ClusterWriteView {
                    vip: w.vip,
                    epoch: w.epoch,
                    base_revision: w.base_revision,
                    owners: w
                        .owners
                        .into_iter()
                        .map(|o| WriteOwnerView {
                            host: o.host,
                            port: o.port,
                            mac: o.mac.to_string(),
                            mac6: o.mac6.to_string(),
                        })
                        .collect(),
                    moved_at_ns,
                }
            })
            .collect()
    }

    /// Validate the cluster groups (each alone: one bad record does not hide the others)
    /// and run the file's configuration plus them.
    fn install_cluster_vips(
        &mut self,
        groups: &[ClusterGroup],
    ) -> Result<ClusterVipsResult, CtlError> {
        let mut skipped = Vec::new();
        let mut valid = Vec::new();
        for g in groups {
            let name = g.def.name.clone().unwrap_or_default();
            match cluster_vip_configs(std::slice::from_ref(&g.def)) {
                Ok(mut v) => {
                    if let Some(group) = v.pop() {
                        valid.push(ClusterVip {
                            group,
                            vlan: g.vlan,
                        });
                    }
                }
                Err(e) => skipped.push(SkippedVip {
                    vip: name,
                    reason: e.to_string().replace('\n', "; "),
                }),
            }
        }
        self.cluster_vips = valid;
        let mut base = self.sw.config().clone();
        base.vips = self.file_vips.clone();
        let (merged, clash) = crate::config::merge_cluster_vips(&base, &self.cluster_vips);
        skipped.extend(
            clash
                .into_iter()
                .map(|(vip, reason)| SkippedVip { vip, reason }),
        );
        for s in &skipped {
            tracing::error!(target: "vswitch::config", event = "cluster_vip_skipped", vip = %s.vip, reason = %s.reason, "cluster vip group {:?} not installed: {}", s.vip, s.reason);
        }
        if merged != *self.sw.config() {
            let r = self.apply_merged(merged);
            if r.is_err() {
                // the running configuration is not the file's merged with these groups:
                // the next reload of the file must apply it, changed or not
                self.applied_file.forget();
            }
            self.reloaded(r)?;
        }
        let installed = self
            .cluster_vips
            .iter()
            .map(|c| c.group.name.clone())
            .filter(|n| !skipped.iter().any(|s| &s.vip == n))
            .collect();
        Ok(ClusterVipsResult { installed, skipped })
    }
}
