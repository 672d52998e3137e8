//! The agent between etcd and its switch: cluster VIP groups, remote candidates, ownership
//! records and the switch's pending writes (see the contract in [`super`]).
//!
//! Every function here is idempotent and driven from the session task: the switch's
//! commands are plain in-process calls ([`ControlHandle::call`], run on tokio's blocking
//! pool so that the session's timers keep running), and what the switch says is the truth
//! about what is installed.

use std::collections::{BTreeMap, BTreeSet};

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp, TxnOpResponse};
use vswitch::config::VipDef;
use vswitch::datapath::{ClusterGroup, ClusterOwnerEntry, Command, ControlHandle};
use vswitch::view::{ClusterApplyResult, ClusterWriteView, CtlError, Reply, View};

use super::schema::{self, MovedAt, OwnerEntry, OwnerRecord};
use super::ClusterState;

/// What the session remembers between calls.
#[derive(Default)]
pub(super) struct Synced {
    /// The groups last handed to the switch.
    groups: Option<Vec<ClusterGroup>>,
    /// (vip, port) → host of the remote candidates handed to the switch.
    candidates: BTreeMap<(String, String), String>,
    /// This machine's boot id (for `moved_at`).
    boot_id: String,
}

impl Synced {
    /// Nothing handed to the switch yet; `boot_id` is this machine's.
    pub(super) fn new(boot_id: String) -> Synced {
        Synced {
            boot_id,
            ..Synced::default()
        }
    }
}

async fn call(ctl: &ControlHandle, cmd: Command) -> Reply {
    let ctl = ctl.clone();
    tokio::task::spawn_blocking(move || ctl.call(cmd))
        .await
        .unwrap_or(Err(CtlError::NoAnswer))
}

/// Forget what was handed to the switch (after a reload of its file: groups may have been
/// rebuilt), so the next [`reconcile`] sends everything again.
pub(super) fn forget(s: &mut Synced) {
    s.groups = None;
    s.candidates.clear();
}

/// Hand the switch the cluster's groups (if they changed) and the remote candidates
/// (ports of other hosts, by the port records), then every ownership record.
pub(super) async fn reconcile(ctl: &ControlHandle, state: &ClusterState, s: &mut Synced) {
    let me = state.local.host.clone();
    let (groups, want, records) = {
        let g = state.lock();
        let groups: Vec<ClusterGroup> = g
            .vips
            .values()
            .map(|def| ClusterGroup {
                def: def.clone(),
                vlan: def
                    .candidates
                    .iter()
                    .find_map(|c| g.ports.get(c).map(|p| p.vlan))
                    .unwrap_or(0),
            })
            .collect();
        let mut want = BTreeMap::new();
        for def in g.vips.values() {
            let Some(vip) = &def.name else { continue };
            for c in &def.candidates {
                if let Some(p) = g.ports.get(c) {
                    if p.host != me && g.hosts.contains_key(&p.host) {
                        want.insert((vip.clone(), c.clone()), p.host.clone());
                    }
                }
            }
        }
        let records: Vec<(String, OwnerRecord, i64)> = g
            .owners
            .iter()
            .map(|(k, (r, rev))| (k.clone(), r.clone(), *rev))
            .collect();
        (groups, want, records)
    };
    if s.groups.as_ref() != Some(&groups) {
        match call(
            ctl,
            Command::ClusterVips {
                groups: groups.clone(),
            },
        )
        .await
        {
            Ok(View::ClusterVips(r)) => {
                tracing::info!(event = "cluster_vips_installed", installed = ?r.installed, skipped = r.skipped.len(), "cluster vip groups installed");
                s.groups = Some(groups);
                // rebuilt groups: candidates and records again
                s.candidates.clear();
            }
            other => {
                tracing::warn!(result = ?other, "cannot install the cluster vip groups");
                return;
            }
        }
    }
    let gone: Vec<(String, String)> = s
        .candidates
        .keys()
        .filter(|k| !want.contains_key(*k))
        .cloned()
        .collect();
    for (vip, port) in gone {
        let _ = call(
            ctl,
            Command::ClusterCandidateGone {
                vip: vip.clone(),
                port: port.clone(),
            },
        )
        .await;
        s.candidates.remove(&(vip, port));
    }
    for ((vip, port), host) in want {
        if s.candidates.get(&(vip.clone(), port.clone())) == Some(&host) {
            continue;
        }
        let r = call(
            ctl,
            Command::ClusterCandidate {
                vip: vip.clone(),
                host: host.clone(),
                port: port.clone(),
            },
        )
        .await;
        if r.is_ok() {
            s.candidates.insert((vip, port), host);
        }
    }
    for (vip, rec, rev) in records {
        apply_owner(ctl, state, s, &vip, &rec, rev).await;
    }
}

/// Apply one ownership record (at `revision`) to the switch. Owners on hosts that are not
/// in the cluster (any more) are left out: their host's loss already dropped them.
pub(super) async fn apply_owner(
    ctl: &ControlHandle,
    state: &ClusterState,
    s: &mut Synced,
    vip: &str,
    rec: &OwnerRecord,
    revision: i64,
) {
    let revision = u64::try_from(revision).unwrap_or(0);
    let me = state.local.host.clone();
    let live: Vec<OwnerEntry> = {
        let g = state.lock();
        rec.owners
            .iter()
            .filter(|o| o.host == me || g.hosts.contains_key(&o.host))
            .cloned()
            .collect()
    };
    // the whole record in one command: an active-active group takes the set as it is
    // (every owner, not only the first; an owner the record no longer names leaves)
    let owners = live
        .iter()
        .map(|o| ClusterOwnerEntry {
            host: o.host.clone(),
            port: o.port.clone(),
            mac: o.mac.clone(),
            mac6: o.mac6.clone(),
        })
        .collect();
    let r = call(
        ctl,
        Command::ClusterOwners {
            vip: vip.into(),
            owners,
            epoch: rec.epoch,
            revision,
        },
    )
    .await;
    let moved = match r {
        Ok(View::Cluster(c)) => c.moved,
        Ok(_) => false,
        // a group this switch does not have (yet): nothing to do
        Err(CtlError::UnknownVip { .. }) => return,
        Err(e) => {
            tracing::debug!(vip, error = %e, "ownership record not applied");
            false
        }
    };
    if moved && rec.moved_at.boot_id == s.boot_id && rec.moved_at.ns > 0 {
        let now = vswitch::datapath::Clock::new().now().as_nanos();
        let secs = now.saturating_sub(rec.moved_at.ns) as f64 / 1e9;
        state.lock().stats.propagation.observe(secs);
    }
}

/// The record a pending write puts in etcd.
fn record_of(me: &str, boot_id: &str, w: &ClusterWriteView) -> OwnerRecord {
    OwnerRecord {
        epoch: w.epoch,
        owners: w
            .owners
            .iter()
            .map(|o| OwnerEntry {
                host: o.host.clone().unwrap_or_else(|| me.to_string()),
                port: o.port.clone(),
                mac: o.mac.clone(),
                mac6: o.mac6.clone(),
            })
            .collect(),
        moved_at: MovedAt {
            ns: w.moved_at_ns,
            boot_id: boot_id.to_string(),
        },
    }
}

/// Records that name one of this host's ports on another host: the port migrated here.
/// Its old host unplugged it and wrote nothing (a handover, see
/// `vip_table::VipTable::carry_state_from`), so the record still names the old host. Each
/// is written again naming this host, with the same MACs and the next epoch, conditioned on
/// the record's revision; the watch then brings it to every host, this one included (where
/// the port becomes the local owner). A lost race needs nothing: the newer record arrives
/// like any other. A port is this host's once etcd has its port record (not while another
/// host still holds the name).
pub(super) async fn adopt(
    client: &mut Client,
    state: &ClusterState,
    s: &mut Synced,
) -> Result<(), String> {
    let me = state.local.host.clone();
    let todo: Vec<(String, OwnerRecord, i64)> = {
        let g = state.lock();
        let here = |port: &str| g.ports.get(port).is_some_and(|p| p.host == me);
        g.owners
            .iter()
            .filter(|(_, (r, _))| r.owners.iter().any(|o| o.host != me && here(&o.port)))
            .map(|(vip, (r, rev))| {
                let mut r = r.clone();
                for o in &mut r.owners {
                    if here(&o.port) {
                        o.host = me.clone();
                    }
                }
                (vip.clone(), r, *rev)
            })
            .collect()
    };
    for (vip, mut rec, rev) in todo {
        rec.epoch += 1;
        rec.moved_at = MovedAt {
            ns: vswitch::datapath::Clock::new().now().as_nanos(),
            boot_id: s.boot_id.clone(),
        };
        let key = schema::owner_key(&vip);
        let txn = Txn::new()
            .when([Compare::mod_revision(key.clone(), CompareOp::Equal, rev)])
            .and_then([TxnOp::put(key, schema::encode(&rec), None)]);
        let resp = super::session::call("owner record adopt txn", client.txn(txn)).await?;
        if resp.succeeded() {
            state.lock().stats.writes += 1;
            let ports: Vec<&str> = rec.owners.iter().map(|o| o.port.as_str()).collect();
            tracing::info!(event = "vip_owner_adopted", vip = %vip, ports = %ports.join(","), epoch = rec.epoch, "a migrated port's ownership record now names this host");
        }
    }
    Ok(())
}

/// Write the switch's pending ownership records, each conditioned on the revision it was
/// based on. Won: confirm. Lost: apply the winner's record. An etcd error ends the
/// session (the writes stay pending in the switch).
pub(super) async fn write_pending(
    client: &mut Client,
    ctl: &ControlHandle,
    state: &ClusterState,
    s: &mut Synced,
) -> Result<(), String> {
    adopt(client, state, s).await?;
    let writes = match call(ctl, Command::ClusterWrites).await {
        Ok(View::ClusterWrites(w)) => w,
        _ => return Ok(()),
    };
    let me = state.local.host.clone();
    for w in writes {
        let key = schema::owner_key(&w.vip);
        let rec = record_of(&me, &s.boot_id, &w);
        let cond = match w.base_revision {
            Some(r) => Compare::mod_revision(
                key.clone(),
                CompareOp::Equal,
                i64::try_from(r).unwrap_or(i64::MAX),
            ),
            None => Compare::create_revision(key.clone(), CompareOp::Equal, 0),
        };
        let txn = Txn::new()
            .when([cond])
            .and_then([TxnOp::put(key.clone(), schema::encode(&rec), None)])
            .or_else([TxnOp::get(key.clone(), None)]);
        let resp = super::session::call("owner record txn", client.txn(txn)).await?;
        if resp.succeeded() {
            let revision = resp.header().map_or(0, |h| h.revision());
            state.lock().stats.writes += 1;
            let _ = call(
                ctl,
                Command::ClusterConfirm {
                    vip: w.vip.clone(),
                    epoch: w.epoch,
                    revision: u64::try_from(revision).unwrap_or(0),
                },
            )
            .await;
            tracing::info!(event = "vip_owner_written", vip = %w.vip, epoch = w.epoch, revision, "ownership record written");
            continue;
        }
        state.lock().stats.conflicts_lost += 1;
        let winner = resp.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().cloned(),
            _ => None,
        });
        let Some(kv) = winner else { continue };
        match schema::decode_owner(kv.value()) {
            Ok(r) => {
                tracing::info!(event = "vip_owner_conflict_lost", vip = %w.vip, revision = kv.mod_revision(), "another host wrote the ownership record first; applying its record");
                state
                    .lock()
                    .owners
                    .insert(w.vip.clone(), (r.clone(), kv.mod_revision()));
                apply_owner(ctl, state, s, &w.vip, &r, kv.mod_revision()).await;
            }
            Err(e) => {
                state.lock().malformed += 1;
                tracing::warn!(event = "cluster_malformed_record", key = %key, error = %e, "unreadable ownership record");
            }
        }
    }
    Ok(())
}

/// `cluster apply`: make `defs` the cluster's groups in one transaction (groups not in it
/// are deleted, with their ownership records).
pub(super) async fn apply_defs(
    client: &mut Client,
    state: &ClusterState,
    defs: Vec<VipDef>,
) -> Result<ClusterApplyResult, String> {
    let have: BTreeSet<String> = state.lock().vips.keys().cloned().collect();
    let names: BTreeSet<String> = defs.iter().filter_map(|d| d.name.clone()).collect();
    let mut ops = Vec::new();
    for d in &defs {
        if let Some(n) = &d.name {
            ops.push(TxnOp::put(schema::vip_key(n), schema::encode(d), None));
        }
    }
    let deleted: Vec<String> = have.difference(&names).cloned().collect();
    for n in &deleted {
        ops.push(TxnOp::delete(schema::vip_key(n), None));
        ops.push(TxnOp::delete(schema::owner_key(n), None));
    }
    let resp = super::session::call("vip groups txn", client.txn(Txn::new().and_then(ops))).await?;
    Ok(ClusterApplyResult {
        written: names.into_iter().collect(),
        deleted,
        revision: resp
            .header()
            .map_or(0, |h| u64::try_from(h.revision()).unwrap_or(0)),
    })
}
