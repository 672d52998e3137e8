//! The etcd session loop (see the contract in [`super`]).
//!
//! One session = one connection, one lease, one watch. It ends on the first failure and
//! [`run`] starts the next after a back-off (0.2 s doubling to 2 s), until stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, KeyValue, PutOptions, Txn,
    TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::sync::{mpsc, watch};
use vswitch::config::ClusterSettings;
use vswitch::datapath::{Command, ControlHandle};
use vswitch::view::{PortClashView, PortView};

use super::schema::{self, Key, OwnerRecord, PortRecord};
use super::sync::{self, Synced};
use super::topology::Feed;
use super::{ClusterState, SessionState, ToSession};

/// How often the session looks for pending ownership writes even without a nudge.
const WRITES_EVERY: Duration = Duration::from_secs(1);

/// Deadline of one unary etcd call (lease grant, put, txn, get).
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Deadline of the lease revoke on a clean stop.
const REVOKE_TIMEOUT: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

type Error = String;

pub(super) async fn call<T>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!(
            "{what}: no answer within {}s",
            CALL_TIMEOUT.as_secs()
        )),
    }
}

/// What the session keeps about the local ports.
struct Local {
    /// The switch's ports, as last reported (as records).
    ports: Vec<PortRecord>,
    /// Names published under the current lease.
    published: BTreeSet<String>,
    /// Name → holder, for ports another host holds (logged once per holder).
    clashes: BTreeMap<String, String>,
}

/// Run sessions until `stop` turns true.
pub(super) async fn run(
    settings: ClusterSettings,
    state: Arc<ClusterState>,
    ctl: ControlHandle,
    mut rx: mpsc::UnboundedReceiver<ToSession>,
    mut stop: watch::Receiver<bool>,
    feed: Feed,
) {
    let mut synced = Synced::new(vswitch::state::boot_id());
    let mut local = Local {
        ports: Vec::new(),
        published: BTreeSet::new(),
        clashes: BTreeMap::new(),
    };
    let mut backoff = BACKOFF_MIN;
    loop {
        if *stop.borrow() {
            return;
        }
        {
            let mut g = state.lock();
            g.session = SessionState::Connecting;
            g.sessions += 1;
        }
        let started = Instant::now();
        let mut ctx = Ctx {
            s: &settings,
            state: &state,
            ctl: &ctl,
            synced: &mut synced,
        };
        match session(&mut ctx, &mut local, &mut rx, &mut stop, &feed).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(event = "cluster_session_lost", error = %e, "etcd session ended; reconnecting");
                state.lock().session = SessionState::Down(e);
            }
        }
        // a session that ran a while starts the back-off over
        if started.elapsed() > BACKOFF_MAX * 2 {
            backoff = BACKOFF_MIN;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

fn connect_options(s: &ClusterSettings) -> Result<ConnectOptions, Error> {
    let mut o = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_keep_alive(Duration::from_secs(1), Duration::from_secs(2))
        .with_keep_alive_while_idle(true);
    if let Some(tls) = &s.tls {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        };
        let mut t = etcd_client::TlsOptions::new()
            .ca_certificate(etcd_client::Certificate::from_pem(read(&tls.ca_file)?));
        if let Some((cert, key)) = &tls.identity {
            t = t.identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
        }
        o = o.with_tls(t);
    }
    Ok(o)
}

/// What a session works with.
struct Ctx<'a> {
    s: &'a ClusterSettings,
    state: &'a ClusterState,
    ctl: &'a ControlHandle,
    synced: &'a mut Synced,
}

/// One session: Ok when stopped, Err when it broke.
async fn session(
    ctx: &mut Ctx<'_>,
    local: &mut Local,
    rx: &mut mpsc::UnboundedReceiver<ToSession>,
    stop: &mut watch::Receiver<bool>,
    feed: &Feed,
) -> Result<(), Error> {
    let (s, state, ctl) = (ctx.s, ctx.state, ctx.ctl);
    let opts = connect_options(s)?;
    let mut client = call("connect", Client::connect(&s.endpoints, Some(opts))).await?;
    let ttl = s.lease_ttl_secs();
    let lease = call("lease grant", client.lease_grant(ttl, None))
        .await?
        .id();
    let host_key = schema::host_key(&s.host);
    let record = schema::encode(&state.local);
    call(
        "host record put",
        client.put(
            host_key.clone(),
            record,
            Some(PutOptions::new().with_lease(lease)),
        ),
    )
    .await?;
    let (mut keeper, mut acks) = call("lease keep-alive", client.lease_keep_alive(lease)).await?;
    // take whatever the switch reported meanwhile before registering
    while let Ok(m) = rx.try_recv() {
        match m {
            ToSession::Ports(p) => local.ports = records(&s.host, &p),
            ToSession::Writes => {}
            ToSession::Apply { reply, .. } => {
                let _ = reply.send(Err("the etcd session is starting; try again".into()));
            }
        }
    }
    local.published.clear();
    publish_ports(&mut client, lease, s, state, local).await?;
    let before: BTreeSet<String> = state.lock().hosts.keys().cloned().collect();
    let rev = resync(&mut client, state).await?;
    feed.send(state);
    // hosts that left while this host was away from etcd
    let after: BTreeSet<String> = state.lock().hosts.keys().cloned().collect();
    for h in before.difference(&after) {
        host_gone(ctl, &s.host, h).await;
    }
    sync::reconcile(ctl, state, ctx.synced).await;
    sync::write_pending(&mut client, ctl, state, ctx.synced).await?;
    let mut events = call(
        "watch",
        client.watch(
            schema::PREFIX,
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(rev + 1),
            ),
        ),
    )
    .await?;
    state.lock().session = SessionState::Up;
    tracing::info!(
        event = "cluster_registered",
        host = %s.host,
        lease = lease,
        revision = rev,
        published = local.published.len(),
        "registered in etcd"
    );

    let ttl_d = Duration::from_secs(ttl.unsigned_abs());
    let mut tick = tokio::time::interval(ttl_d / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_ack = Instant::now();
    let mut writes_tick = tokio::time::interval(WRITES_EVERY);
    writes_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // the event thread ends only when the switch does; then the stop signal follows
    let mut switch_reports = true;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if last_ack.elapsed() >= ttl_d {
                    return Err(format!("lease {lease:x}: no keep-alive answer for {ttl}s"));
                }
                call("lease keep-alive", keeper.keep_alive()).await?;
            }
            m = acks.message() => match m {
                Ok(Some(r)) if r.ttl() > 0 => last_ack = Instant::now(),
                Ok(Some(_)) => return Err(format!("lease {lease:x} expired")),
                Ok(None) => return Err("lease keep-alive stream closed".into()),
                Err(e) => return Err(format!("lease keep-alive: {e}")),
            },
            m = events.message() => match m {
                Ok(Some(resp)) => {
                    if resp.canceled() {
                        return Err(format!(
                            "watch cancelled (compacted at {}): {}",
                            resp.compact_revision(),
                            resp.cancel_reason()
                        ));
                    }
                    let ch = apply_events(state, &s.host, resp.events());
                    feed.send(state);
                    for h in &ch.hosts_gone {
                        host_gone(ctl, &s.host, h).await;
                    }
                    if ch.topology {
                        sync::reconcile(ctl, state, ctx.synced).await;
                        // one of our ports may have arrived by migration
                        sync::adopt(&mut client, state, ctx.synced).await?;
                    } else {
                        for (vip, rec, rev) in &ch.owners {
                            sync::apply_owner(ctl, state, ctx.synced, vip, rec, *rev).await;
                        }
                    }
                    let freed = ch.freed;
                    if freed.iter().any(|n| local.clashes.contains_key(n))
                        || !state_has_host(state, &s.host)
                    {
                        publish_ports(&mut client, lease, s, state, local).await?;
                    }
                    if !state_has_host(state, &s.host) {
                        // our record vanished under a live lease (an operator deleted it)
                        call(
                            "host record put",
                            client.put(
                                host_key.clone(),
                                schema::encode(&state.local),
                                Some(PutOptions::new().with_lease(lease)),
                            ),
                        )
                        .await?;
                    }
                }
                Ok(None) => return Err("watch stream closed".into()),
                Err(e) => return Err(format!("watch: {e}")),
            },
            _ = writes_tick.tick() => {
                sync::write_pending(&mut client, ctl, state, ctx.synced).await?;
            }
            m = rx.recv(), if switch_reports => match m {
                Some(ToSession::Ports(p)) => {
                    local.ports = records(&s.host, &p);
                    publish_ports(&mut client, lease, s, state, local).await?;
                    // the switch reloaded: its groups may have been rebuilt
                    sync::forget(ctx.synced);
                    sync::reconcile(ctl, state, ctx.synced).await;
                }
                Some(ToSession::Writes) => {
                    sync::write_pending(&mut client, ctl, state, ctx.synced).await?;
                }
                Some(ToSession::Apply { defs, reply }) => {
                    let r = sync::apply_defs(&mut client, state, defs).await;
                    let failed = r.as_ref().err().cloned();
                    let _ = reply.send(r);
                    if let Some(e) = failed {
                        return Err(e);
                    }
                }
                None => switch_reports = false,
            },
            _ = stop.changed() => {
                // leave at once rather than after the TTL
                let _ = tokio::time::timeout(REVOKE_TIMEOUT, client.lease_revoke(lease)).await;
                tracing::info!(event = "cluster_left", host = %s.host, "lease revoked");
                return Ok(());
            }
        }
    }
}

/// Tell the switch that `host` left (its record is gone).
async fn host_gone(ctl: &ControlHandle, me: &str, host: &str) {
    if host == me {
        return;
    }
    let ctl = ctl.clone();
    let cmd = Command::ClusterHostGone {
        host: host.to_string(),
    };
    let r = tokio::task::spawn_blocking(move || ctl.call(cmd)).await;
    if !matches!(r, Ok(Ok(_))) {
        tracing::warn!(host, "cannot tell the switch that a host left");
    }
}

fn state_has_host(state: &ClusterState, host: &str) -> bool {
    state.lock().hosts.contains_key(host)
}

fn records(host: &str, ports: &[PortView]) -> Vec<PortRecord> {
    ports
        .iter()
        .map(|p| PortRecord::from_view(host, p))
        .collect()
}

/// The outcome of writing one port record.
enum Claim {
    Published,
    HeldBy(String),
}

/// Write (or take over) one port record under `lease`, if no other host holds the name.
async fn claim(
    client: &mut Client,
    lease: i64,
    me: &str,
    rec: &PortRecord,
) -> Result<Claim, Error> {
    let key = schema::port_key(&rec.name);
    let value = schema::encode(rec);
    let put = || {
        TxnOp::put(
            key.clone(),
            value.clone(),
            Some(PutOptions::new().with_lease(lease)),
        )
    };
    for _ in 0..4 {
        let created = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([put()])
            .or_else([TxnOp::get(key.clone(), None)]);
        let resp = call("port record txn", client.txn(created)).await?;
        if resp.succeeded() {
            return Ok(Claim::Published);
        }
        let existing: Option<KeyValue> = resp.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().cloned(),
            _ => None,
        });
        let Some(kv) = existing else {
            continue; // deleted in between: try to create it again
        };
        let holder = match schema::decode_port(&rec.name, kv.value()) {
            Ok(r) => r.host,
            Err(e) => {
                tracing::warn!(event = "cluster_malformed_record", key = %key, error = %e, "unreadable port record: not overwritten");
                return Ok(Claim::HeldBy(format!("an unreadable record ({e})")));
            }
        };
        if holder != me {
            return Ok(Claim::HeldBy(holder));
        }
        // ours (from an earlier lease, or an older version of the port): replace it if
        // nobody changed it since we read it
        let swap = Txn::new()
            .when([Compare::mod_revision(
                key.clone(),
                CompareOp::Equal,
                kv.mod_revision(),
            )])
            .and_then([put()]);
        if call("port record txn", client.txn(swap)).await?.succeeded() {
            return Ok(Claim::Published);
        }
    }
    Err(format!(
        "port record {key}: changed under us four times in a row"
    ))
}

/// Bring etcd in line with the local ports: publish each (unless another host holds the
/// name), delete those this lease published that the switch no longer has.
async fn publish_ports(
    client: &mut Client,
    lease: i64,
    s: &ClusterSettings,
    state: &ClusterState,
    local: &mut Local,
) -> Result<(), Error> {
    let mut clashes = BTreeMap::new();
    for rec in local.ports.clone() {
        match claim(client, lease, &s.host, &rec).await? {
            Claim::Published => {
                local.published.insert(rec.name.clone());
            }
            Claim::HeldBy(holder) => {
                if local.clashes.get(&rec.name) != Some(&holder) {
                    tracing::error!(
                        event = "port_name_clash",
                        port = %rec.name,
                        holder = %holder,
                        "port {:?} is not published in the cluster: host {holder} already has a port of that name (port names are cluster-unique; rename one of them)",
                        rec.name
                    );
                }
                local.published.remove(&rec.name);
                clashes.insert(rec.name.clone(), holder);
            }
        }
    }
    let gone: Vec<String> = local
        .published
        .iter()
        .filter(|n| !local.ports.iter().any(|p| &p.name == *n))
        .cloned()
        .collect();
    for name in gone {
        let key = schema::port_key(&name);
        let del = Txn::new()
            .when([Compare::lease(key.clone(), CompareOp::Equal, lease)])
            .and_then([TxnOp::delete(key, None)]);
        call("port record delete", client.txn(del)).await?;
        local.published.remove(&name);
    }
    local.clashes = clashes;
    let mut g = state.lock();
    g.published = local.published.len();
    g.clashes = local
        .clashes
        .iter()
        .map(|(port, holder)| PortClashView {
            port: port.clone(),
            holder: holder.clone(),
        })
        .collect();
    Ok(())
}

/// Replace the view with a fresh read of the prefix; its revision.
async fn resync(client: &mut Client, state: &ClusterState) -> Result<i64, Error> {
    let resp = call(
        "get",
        client.get(schema::PREFIX, Some(GetOptions::new().with_prefix())),
    )
    .await?;
    let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
    let mut g = state.lock();
    g.hosts.clear();
    g.ports.clear();
    g.vips.clear();
    g.owners.clear();
    for kv in resp.kvs() {
        apply_put(&mut g, kv);
    }
    Ok(rev)
}

fn apply_put(g: &mut super::Inner, kv: &KeyValue) {
    let bad = |g: &mut super::Inner, e: String| {
        g.malformed += 1;
        tracing::warn!(
            event = "cluster_malformed_record",
            key = %String::from_utf8_lossy(kv.key()),
            error = %e,
            "skipped a record that does not decode"
        );
    };
    match schema::parse_key(kv.key()) {
        Some(Key::Host(h)) => match schema::decode_host(&h, kv.value()) {
            Ok(r) => {
                if !g.hosts.contains_key(&h) {
                    tracing::info!(event = "cluster_host_up", host = %h, vtep = %r.vtep, "host in the cluster");
                }
                g.hosts.insert(h, r);
            }
            Err(e) => bad(g, e),
        },
        Some(Key::Port(p)) => match schema::decode_port(&p, kv.value()) {
            Ok(r) => {
                g.ports.insert(p, r);
            }
            Err(e) => bad(g, e),
        },
        Some(Key::Vip(v)) => match schema::decode_vip(&v, kv.value()) {
            Ok(d) => {
                g.vips.insert(v, d);
            }
            Err(e) => bad(g, e),
        },
        Some(Key::Owner(v)) => match schema::decode_owner(kv.value()) {
            Ok(r) => {
                g.owners.insert(v, (r, kv.mod_revision()));
            }
            Err(e) => bad(g, e),
        },
        None => {}
    }
}

/// What a batch of watch events changed.
#[derive(Default)]
struct Changes {
    /// Port records deleted.
    freed: Vec<String>,
    /// Other hosts whose record was deleted.
    hosts_gone: Vec<String>,
    /// Hosts, ports or groups changed: reconcile the switch's groups and candidates.
    topology: bool,
    /// Ownership records written: (vip, record, mod_revision).
    owners: Vec<(String, OwnerRecord, i64)>,
}

/// Apply watch events to the view; what they changed.
fn apply_events(state: &ClusterState, me: &str, events: &[etcd_client::Event]) -> Changes {
    let mut ch = Changes::default();
    let mut g = state.lock();
    for ev in events {
        let Some(kv) = ev.kv() else { continue };
        let key = schema::parse_key(kv.key());
        match ev.event_type() {
            EventType::Put => {
                apply_put(&mut g, kv);
                match &key {
                    Some(Key::Owner(v)) => {
                        if let Some((r, rev)) = g.owners.get(v) {
                            ch.owners.push((v.clone(), r.clone(), *rev));
                        }
                    }
                    Some(_) => ch.topology = true,
                    None => {}
                }
            }
            EventType::Delete => match key {
                Some(Key::Host(h)) => {
                    let known = g.hosts.remove(&h).is_some();
                    if known && h != me {
                        tracing::info!(event = "cluster_host_down", host = %h, "host left the cluster");
                        ch.hosts_gone.push(h);
                    }
                    ch.topology = true;
                }
                Some(Key::Port(p)) => {
                    g.ports.remove(&p);
                    ch.freed.push(p);
                    ch.topology = true;
                }
                Some(Key::Vip(v)) => {
                    g.vips.remove(&v);
                    ch.topology = true;
                }
                Some(Key::Owner(v)) => {
                    g.owners.remove(&v);
                }
                None => {}
            },
        }
    }
    ch
}
