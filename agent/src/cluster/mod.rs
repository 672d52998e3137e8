//! Multi-host mode: the agent's etcd session and its view of the cluster.
//!
//! Started only when the configuration has a `[cluster]` section ([`Cluster::start`]);
//! a standalone switch never builds a runtime or opens a connection.
//!
//! Contract:
//! - **Threads.** The async runtime (tokio, current-thread) runs on one thread of its own,
//!   `cluster`; a second plain thread, `cluster-events`, follows the switch's event stream
//!   (`ControlHandle::subscribe`) and asks the control thread for the port list at start
//!   and after every `Reloaded` (or `Lagged`: a reload may have been missed). Neither touches the datapath threads: the datapath never
//!   waits for etcd.
//! - **Session** ([`session`]): connect, grant a lease of `cluster.lease_ttl_secs`, write
//!   the host record and the port records under it, keep the lease alive (every third of
//!   the TTL), and watch `/vswitch/v1/` from the revision of a fresh read. Any failure
//!   (etcd unreachable, lease lost, watch cancelled or compacted) ends the session; the
//!   next one starts after a short back-off and re-registers everything with a new lease,
//!   without a restart of the agent. A clean stop revokes the lease, so the host leaves
//!   the cluster at once instead of after the TTL.
//! - **Port names are cluster-unique.** A port record is written with a transaction:
//!   created only if the key does not exist, or replaced only if the record there names
//!   this host (compare-and-swap on its `mod_revision`). A port whose name another host
//!   holds is **not published** (it keeps working locally), an error naming the other host
//!   is logged (`event = "port_name_clash"`) and `show hosts` lists it under the local
//!   host's `clashes`; the agent tries again when that record goes away, on reconnect and
//!   after a reload.
//! - **Cluster view** ([`ClusterState`]): hosts and port records as last read from etcd,
//!   plus the local session's state. Every value from etcd is outside input: a record that
//!   does not decode is logged, counted (`vswitch_cluster_malformed_records_total`) and skipped.
//! - **Topology** ([`topology`]): after every resync and every batch of watch events the
//!   switch is sent the view's hosts and ports (`Command::SetTopology`) from a small thread
//!   of its own, `cluster-topology`, so the overlay forwards by the same view.
//! - **Live migration** ([`sync::adopt`]): a port unplugged on one host (a reload without
//!   it) is handed over, not released; the host whose port record then holds the name
//!   rewrites every ownership record that names the port on another host, so the VIP
//!   stays with the migrated VM without any GARP.
//! - `show hosts` is answered from the cluster view by the agent's control socket
//!   ([`ClusterState::hosts_view`]).
//!
//! The key schema is [`schema`] and `docs/cluster.md`.

pub mod schema;
mod session;
mod sync;
mod topology;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vswitch::config::{ClusterSettings, VipDef};
use vswitch::datapath::{Command, ControlHandle};
use vswitch::view::{ClusterApplyResult, CtlError, Event, HostView, PortClashView, PortView, View};

use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use schema::{HostRecord, OwnerRecord, PortRecord};

/// Bucket bounds (seconds) of `vswitch_vip_move_propagation_seconds`.
const PROPAGATION_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Ownership counters.
#[derive(Debug)]
struct OwnerStats {
    /// Ownership records written (transactions won).
    writes: u64,
    /// Writes that lost to another host's (the winner's record was applied).
    conflicts_lost: u64,
    /// Claim arrival on the claiming switch → move installed here (same boot only).
    propagation: Histogram,
}

impl Default for OwnerStats {
    fn default() -> Self {
        OwnerStats {
            writes: 0,
            conflicts_lost: 0,
            propagation: Histogram::new(PROPAGATION_BUCKETS),
        }
    }
}

/// The local etcd session's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// Connecting, granting the lease, registering (the first attempt or after a loss).
    Connecting,
    /// Lease held and kept alive, records written, watch running.
    Up,
    /// The last session failed; the next attempt is scheduled.
    Down(String),
}

impl SessionState {
    /// `connecting`, `up` or `down`: the word `show hosts` prints.
    pub fn word(&self) -> &'static str {
        match self {
            SessionState::Connecting => "connecting",
            SessionState::Up => "up",
            SessionState::Down(_) => "down",
        }
    }

    /// The metrics gauge value: 0 down, 1 connecting, 2 up.
    pub fn gauge(&self) -> u8 {
        match self {
            SessionState::Down(_) => 0,
            SessionState::Connecting => 1,
            SessionState::Up => 2,
        }
    }
}

#[derive(Debug)]
struct Inner {
    session: SessionState,
    /// Every host record seen in etcd, by host name (this host's included).
    hosts: BTreeMap<String, HostRecord>,
    /// Every port record seen in etcd, by port name (this host's included).
    ports: BTreeMap<String, PortRecord>,
    /// Local ports published under our lease.
    published: usize,
    /// Local ports held by another host.
    clashes: Vec<PortClashView>,
    /// Records from etcd that did not decode.
    malformed: u64,
    /// Sessions started (1 = the first).
    sessions: u64,
    /// Cluster VIP group definitions, by name.
    vips: BTreeMap<String, VipDef>,
    /// Ownership records with their `mod_revision`, by group name.
    owners: BTreeMap<String, (OwnerRecord, i64)>,
    stats: OwnerStats,
}

/// The cluster view shared by the session and the control socket.
#[derive(Debug)]
pub struct ClusterState {
    /// This host's own record (what it writes).
    local: HostRecord,
    inner: Mutex<Inner>,
    /// To the session (operator requests that need etcd).
    tx: tokio::sync::mpsc::UnboundedSender<ToSession>,
}

impl ClusterState {
    fn new(local: HostRecord, tx: tokio::sync::mpsc::UnboundedSender<ToSession>) -> ClusterState {
        ClusterState {
            tx,
            local,
            inner: Mutex::new(Inner {
                session: SessionState::Connecting,
                hosts: BTreeMap::new(),
                ports: BTreeMap::new(),
                published: 0,
                clashes: Vec::new(),
                malformed: 0,
                sessions: 0,
                vips: BTreeMap::new(),
                owners: BTreeMap::new(),
                stats: OwnerStats::default(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `show hosts`: this host first, then the others by name.
    pub fn hosts_view(&self) -> Vec<HostView> {
        let g = self.lock();
        let count = |h: &str| g.ports.values().filter(|p| p.host == h).count();
        let mut out = vec![HostView {
            host: self.local.host.clone(),
            vtep: self.local.vtep.clone(),
            version: self.local.version.clone(),
            local: true,
            session: Some(g.session.word().to_string()),
            ports: g.published,
            clashes: g.clashes.clone(),
        }];
        for (name, h) in &g.hosts {
            if *name == self.local.host {
                continue;
            }
            out.push(HostView {
                host: name.clone(),
                vtep: h.vtep.clone(),
                version: h.version.clone(),
                local: false,
                session: None,
                ports: count(name),
                clashes: Vec::new(),
            });
        }
        out
    }

    /// `cluster show`: the groups in etcd (as last read).
    pub fn defs_view(&self) -> Vec<VipDef> {
        self.lock().vips.values().cloned().collect()
    }

    /// `cluster apply`: validate `toml` (`[[vip]]` tables) and write it to etcd as the
    /// cluster's set of groups, through the session (at most ~10 s).
    pub fn apply(&self, toml: &str) -> Result<ClusterApplyResult, CtlError> {
        let defs =
            vswitch::config::vip_defs_from_toml(toml).map_err(|e| CtlError::InvalidConfig {
                message: e.to_string(),
            })?;
        let (reply, done) = std::sync::mpsc::sync_channel(1);
        self.tx
            .send(ToSession::Apply { defs, reply })
            .map_err(|_| CtlError::ShuttingDown)?;
        match done.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(CtlError::Remote {
                message: format!("etcd: {e}; nothing changed"),
            }),
            Err(_) => Err(CtlError::Remote {
                message: "the etcd session is not up (no answer within 10s); nothing changed"
                    .into(),
            }),
        }
    }

    /// Prometheus lines for the cluster (appended to the switch's metrics); `pending` is
    /// the switch's count of ownership changes not yet written (`Command::ClusterWrites`).
    pub fn metrics(&self, pending: u64) -> String {
        let g = self.lock();
        let remote = g.hosts.keys().filter(|h| **h != self.local.host).count();
        let mut reg = Registry::with_prefix(vswitch::metrics::PREFIX);
        reg.register(
            "cluster_owner_writes",
            "Ownership records written to etcd (transactions won)",
            ConstCounter::new(g.stats.writes),
        );
        reg.register(
            "cluster_owner_conflicts_lost",
            "Ownership writes that lost to another host's; its record was applied",
            ConstCounter::new(g.stats.conflicts_lost),
        );
        reg.register(
            "cluster_owner_writes_pending",
            "Local ownership changes not yet written to etcd",
            ConstGauge::new(pending),
        );
        reg.register(
            "cluster_vips",
            "Cluster VIP groups in etcd",
            ConstGauge::new(g.vips.len() as u64),
        );
        reg.register(
            "vip_move_propagation_seconds",
            "From a claim's arrival on the claiming host's switch to the move installed here (same boot only)",
            g.stats.propagation.clone(),
        );
        reg.register(
            "cluster_session_state",
            "The etcd session: 0 down, 1 connecting, 2 up",
            ConstGauge::new(u64::from(g.session.gauge())),
        );
        reg.register(
            "cluster_sessions",
            "etcd sessions started (a new one after every loss)",
            ConstCounter::new(g.sessions),
        );
        reg.register(
            "cluster_remote_hosts",
            "Other hosts with a live record in etcd",
            ConstGauge::new(remote as u64),
        );
        reg.register(
            "cluster_port_clashes",
            "Local ports not published: another host holds the name",
            ConstGauge::new(g.clashes.len() as u64),
        );
        reg.register(
            "cluster_malformed_records",
            "Records read from etcd that did not decode (skipped)",
            ConstCounter::new(g.malformed),
        );
        let mut out = String::new();
        vswitch::metrics::encode(&reg, &mut out);
        out
    }
}

/// What the event thread and the control socket hand the session.
#[derive(Debug)]
pub(crate) enum ToSession {
    /// The switch's ports now (at start and after each reload).
    Ports(Vec<PortView>),
    /// A local VIP change: look at the switch's pending writes.
    Writes,
    /// `cluster apply`.
    Apply {
        defs: Vec<VipDef>,
        reply: std::sync::mpsc::SyncSender<Result<ClusterApplyResult, String>>,
    },
}

/// A running cluster agent.
pub struct Cluster {
    state: Arc<ClusterState>,
    stop: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Cluster {
    /// Start the session thread and the event follower for `settings`, talking to the
    /// switch through `ctl`.
    pub fn start(
        settings: ClusterSettings,
        config_path: std::path::PathBuf,
        ctl: ControlHandle,
    ) -> Result<Cluster, String> {
        let started_at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<ToSession>();
        let state = Arc::new(ClusterState::new(
            HostRecord {
                host: settings.host.clone(),
                vtep: settings.vtep.to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                started_at_ms,
            },
            tx.clone(),
        ));
        let (stop, stop_rx) = tokio::sync::watch::channel(false);

        // the event follower: ports at start, again after every reload
        let events = ctl.subscribe().map_err(|e| format!("cluster: {e}"))?;
        let ports = |ctl: &ControlHandle| match ctl.call(Command::ShowPorts) {
            Ok(View::Ports(p)) => Some(p),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "cluster: cannot read the switch's ports");
                None
            }
        };
        let feed = topology::Feed::start(ctl.clone())?;
        let first = ports(&ctl).unwrap_or_default();
        let _ = tx.send(ToSession::Ports(first));
        let started_with = settings.clone();
        let session_ctl = ctl.clone();
        std::thread::Builder::new()
            .name("cluster-events".into())
            .spawn(move || {
                for ev in events.iter() {
                    // a local VIP change may have to be written to etcd
                    let local_vip = matches!(
                        &ev,
                        Event::VipMoved { remote: false, .. }
                            | Event::VipClaimPending { .. }
                            | Event::VipRestored { .. }
                            | Event::VipSplitBrain { .. }
                    );
                    if local_vip && tx.send(ToSession::Writes).is_err() {
                        break;
                    }
                    // a lagged subscriber may have missed a reload: read the ports again
                    let lagged = matches!(ev, Event::Lagged { .. });
                    if let Event::Reloaded { .. } | Event::Lagged { .. } = ev {
                        if let Ok(c) = vswitch::config::Config::load(&config_path) {
                            if !lagged && c.cluster.as_ref() != Some(&started_with) {
                                tracing::warn!(
                                    event = "cluster_settings_changed",
                                    "the reloaded configuration changes [cluster]; the etcd \
                                     session keeps the settings it started with until the \
                                     switch restarts"
                                );
                            }
                        }
                        if let Some(p) = ports(&ctl) {
                            if tx.send(ToSession::Ports(p)).is_err() {
                                break;
                            }
                        }
                    }
                }
            })
            .map_err(|e| format!("cluster: cannot start the event thread: {e}"))?;

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cluster: cannot build the async runtime: {e}"))?;
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name("cluster".into())
            .spawn(move || {
                runtime.block_on(session::run(settings, st, session_ctl, rx, stop_rx, feed))
            })
            .map_err(|e| format!("cluster: cannot start the session thread: {e}"))?;
        Ok(Cluster {
            state,
            stop,
            thread: Some(thread),
        })
    }

    /// The shared cluster view.
    pub fn state(&self) -> Arc<ClusterState> {
        self.state.clone()
    }

    /// Stop the session: revoke the lease (at most ~1 s) and end the thread.
    pub fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            // the session gives the revoke a deadline; do not hang the stop on etcd
            let deadline = std::time::Instant::now() + Duration::from_secs(3);
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn host(h: &str) -> HostRecord {
        HostRecord {
            host: h.into(),
            vtep: "10.250.1.1".into(),
            version: "0.1.0".into(),
            started_at_ms: 1,
        }
    }

    #[test]
    fn hosts_view_lists_this_host_first_and_counts_ports() {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let s = ClusterState::new(host("host-b"), tx);
        {
            let mut g = s.lock();
            g.hosts.insert("host-a".into(), host("host-a"));
            g.hosts.insert("host-b".into(), host("host-b"));
            g.ports.insert(
                "web1".into(),
                PortRecord {
                    name: "web1".into(),
                    host: "host-a".into(),
                    mac: "02:00:00:00:00:01".into(),
                    ips: vec![],
                    allowed_address_pairs: vec![],
                    vlan: 0,
                },
            );
            g.session = SessionState::Up;
            g.published = 3;
        }
        let v = s.hosts_view();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].host, "host-b");
        assert!(v[0].local);
        assert_eq!(v[0].session.as_deref(), Some("up"));
        assert_eq!(v[0].ports, 3);
        assert_eq!(v[1].host, "host-a");
        assert!(!v[1].local);
        assert_eq!(v[1].session, None);
        assert_eq!(v[1].ports, 1);
        assert!(s.metrics(0).contains("vswitch_cluster_session_state 2\n"));
        assert!(s.metrics(0).contains("vswitch_cluster_remote_hosts 1\n"));
    }

    #[test]
    fn metrics_keep_their_names_and_the_histogram_its_buckets() {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let s = ClusterState::new(host("host-a"), tx);
        {
            let mut g = s.lock();
            g.stats.writes = 3;
            g.stats.propagation.observe(0.003);
            g.stats.propagation.observe(0.2);
        }
        let m = s.metrics(2);
        for line in [
            "# TYPE vswitch_cluster_owner_writes_total counter\n",
            "vswitch_cluster_owner_writes_total 3\n",
            "vswitch_cluster_owner_conflicts_lost_total 0\n",
            "vswitch_cluster_owner_writes_pending 2\n",
            "vswitch_cluster_sessions_total 0\n",
            "vswitch_cluster_malformed_records_total 0\n",
            "# TYPE vswitch_vip_move_propagation_seconds histogram\n",
            "vswitch_vip_move_propagation_seconds_bucket{le=\"0.0025\"} 0\n",
            "vswitch_vip_move_propagation_seconds_bucket{le=\"0.005\"} 1\n",
            "vswitch_vip_move_propagation_seconds_bucket{le=\"0.25\"} 2\n",
            "vswitch_vip_move_propagation_seconds_bucket{le=\"5\"} 2\n",
            "vswitch_vip_move_propagation_seconds_bucket{le=\"+Inf\"} 2\n",
            "vswitch_vip_move_propagation_seconds_count 2\n",
        ] {
            assert!(m.contains(line), "missing {line:?} in\n{m}");
        }
        assert!(!m.contains("# EOF"), "{m}");
    }
}
