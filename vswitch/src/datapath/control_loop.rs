//! The control thread: the single writer of the switch state. It applies what the worker
//! reports, runs timers, operator commands, reloads and device re-attachment, writes the VIP
//! state file, and logs every event an operator acts on.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use vip_table::{PortId, Timestamp};

use crate::config::{Config, PortBinding};
use crate::control::{Outbound, ReloadReport, Switch, SwitchEvent};
use crate::pipeline::{Effects, Snapshot};
use crate::port::tap::TapPort;
use crate::view::{CtlError, Event, ReloadResult};

use super::subscribers::Subscribers;
use super::{Clock, ToControl, ToWorker};

/// Log the switch's new events and hand them to the subscribers.
pub(super) fn log_events(
    sw: &mut Switch,
    reaction: Option<(Timestamp, Timestamp)>,
    subs: &mut Subscribers,
) {
    for e in sw.take_events() {
        let event = Event::from(&e);
        let msg = event.to_string();
        subs.publish(&event);
        match e {
            SwitchEvent::VipMoved {
                vip,
                from,
                to,
                mac,
                epoch,
                reason,
                at,
                ..
            } => {
                let reaction_us = reaction
                    .filter(|_| matches!(reason, vip_table::MoveReason::Claim))
                    .map(|(rx, done)| done.saturating_since(rx).as_micros() as u64);
                tracing::info!(
                    target: "vswitch::vip",
                    event = "vip_moved",
                    vip = %vip,
                    from = from.as_deref().unwrap_or("-"),
                    to = to.as_deref().unwrap_or("-"),
                    mac = %mac.map_or("-".to_string(), |m| m.to_string()),
                    epoch,
                    reason = %reason,
                    at_ns = at.as_nanos(),
                    claim_rx_ns = reaction.map(|r| r.0.as_nanos()),
                    reaction_us,
                    "{msg}"
                );
            }
            SwitchEvent::VipClaimPending { vip, port, due } => tracing::warn!(
                target: "vswitch::vip",
                event = "vip_claim_pending",
                vip = %vip,
                port = %port,
                due_ns = due.as_nanos(),
                "{msg}"
            ),
            SwitchEvent::VipHijack {
                vip,
                addr,
                port,
                mac,
            } => tracing::warn!(
                target: "vswitch::vip",
                event = "vip_hijack",
                vip = %vip,
                addr = %addr,
                port = %port,
                mac = %mac,
                "{msg}"
            ),
            SwitchEvent::VipSplitBrain { vip, ports, holder } => tracing::warn!(
                target: "vswitch::vip",
                event = "vip_split_brain",
                vip = %vip,
                ports = %ports.join(","),
                holder = holder.as_deref().unwrap_or("-"),
                "{msg}"
            ),
            SwitchEvent::VipRestored { vip, owners, epoch } => tracing::info!(
                target: "vswitch::vip",
                event = "vip_restored",
                vip = %vip,
                owners = %owners.join(","),
                epoch,
                "{msg}"
            ),
            SwitchEvent::VipDiscovery { vip, trigger } => tracing::debug!(
                target: "vswitch::vip",
                event = "vip_discovery",
                vip = %vip,
                trigger = %trigger,
                "{msg}"
            ),
            SwitchEvent::VrrpStepDown {
                vip,
                port,
                vrid,
                family,
                dst,
                to,
            } => tracing::info!(
                target: "vswitch::vip",
                event = "vrrp_step_down",
                vip = %vip,
                port = %port,
                vrid,
                family,
                dst = %dst,
                to = %to.join(","),
                "{msg}"
            ),
            SwitchEvent::PortState { port, up, cause } => tracing::info!(
                target: "vswitch::port",
                event = "port_state",
                port = %port,
                up,
                cause,
                "{msg}"
            ),
        }
    }
}

pub(super) struct ControlLoop {
    pub(super) sw: Switch,
    pub(super) snap: Arc<ArcSwap<Snapshot>>,
    /// One line per worker (worker 0 sends the control plane's frames).
    pub(super) workers: Vec<super::WorkerLink>,
    /// Per worker: frames read from ports.
    pub(super) worker_rx: Vec<Arc<std::sync::atomic::AtomicU64>>,
    /// Per port: the generation of its current attachment (see `ToControl::Gone`).
    pub(super) attach_gen: Vec<u32>,
    pub(super) rx: Receiver<ToControl>,
    pub(super) clock: Clock,
    pub(super) config_path: Option<PathBuf>,
    pub(super) last_attach_try: Instant,
    /// When the heap was last trimmed (see [`super::heap`]).
    pub(super) last_trim: Instant,
    pub(super) boot_id: String,
    /// Fingerprint of the VIP state last written to the state file.
    pub(super) saved_fp: Option<u64>,
    /// The last write failed (logged once until one succeeds).
    pub(super) save_failed: bool,
    /// Who gets the events.
    pub(super) subs: Subscribers,
    /// The configuration file's VIP groups (as last applied).
    pub(super) file_vips: Vec<crate::config::VipConfig>,
    /// The cluster's VIP groups (validated), as the agent last gave them.
    pub(super) cluster_vips: Vec<crate::config::ClusterVip>,
    /// The worker's I/O engine as running ("uring" or "epoll"; `switch.io` is read at start).
    pub(super) io_engine: &'static str,
    /// The port captures running.
    pub(super) captures: super::captures::Captures,
    /// The switch generation and captures version of the last snapshot published.
    pub(super) published: Option<(u64, u64)>,
    /// Opens port devices (reloads, re-attachment).
    pub(super) ports: std::sync::Arc<dyn crate::port::PortFactory>,
    /// The configuration file the running configuration was built from (see
    /// [`AppliedFile`]).
    pub(super) applied_file: AppliedFile,
}

/// Which configuration file the running configuration is built from, by a keyed hash of
/// its bytes, so that a reload of an unchanged file costs a read and a hash instead of a
/// parse and a rebuild of the whole switch state.
///
/// Invariant: while [`AppliedFile::is`] holds for a file's bytes, the running
/// configuration is exactly that file's merged with the current cluster groups
/// (`config::merge_cluster_vips`), so applying the file again would change nothing. Hence
/// it is recorded only after that file was applied (or found to change nothing), and
/// forgotten whenever the running configuration stops being that merge (an apply of the
/// cluster groups that was refused). Runtime state (owners, cluster groups) is not part of
/// the file: a reload, short-cut or not, keeps it.
#[derive(Debug, Default)]
pub(super) struct AppliedFile {
    /// Random per process: nobody can make two files collide on purpose.
    keys: std::hash::RandomState,
    /// Length and hash of the file's bytes.
    stamp: Option<(usize, u64)>,
}

impl AppliedFile {
    fn stamp(&self, bytes: &[u8]) -> (usize, u64) {
        use std::hash::BuildHasher;
        (bytes.len(), self.keys.hash_one(bytes))
    }

    /// The running configuration is built from a file with these bytes.
    pub(super) fn is(&self, bytes: &[u8]) -> bool {
        self.stamp.is_some_and(|s| s == self.stamp(bytes))
    }

    /// The running configuration was just built from a file with these bytes.
    pub(super) fn record(&mut self, bytes: &[u8]) {
        self.stamp = Some(self.stamp(bytes));
    }

    /// The running configuration is no longer (known to be) the file's.
    pub(super) fn forget(&mut self) {
        self.stamp = None;
    }
}

/// Restore the VIP state file into a freshly built switch; a missing file is no news, a bad
/// one a warning (the switch starts with discovery either way).
pub(super) fn restore_state(sw: &mut Switch, path: &std::path::Path, boot_id: &str) {
    match crate::state::load(path) {
        Ok(Some(saved)) => {
            let r = saved.restore_into(sw, boot_id);
            tracing::info!(
                target: "vswitch::state",
                event = "state_restored",
                file = %path.display(),
                restored = r.restored.len(),
                skipped = r.skipped.len(),
                "VIP state restored from {}",
                path.display()
            );
        }
        Ok(None) => tracing::info!(
            target: "vswitch::state",
            file = %path.display(),
            "no VIP state file yet; owners will be discovered"
        ),
        Err(e) => tracing::warn!(
            target: "vswitch::state",
            event = "state_unusable",
            file = %path.display(),
            error = %e,
            "the VIP state file cannot be used ({e}); starting without it, owners will be discovered"
        ),
    }
}

impl ControlLoop {
    pub(super) fn run(mut self, stop: &AtomicBool, reload: &AtomicBool, initial: Vec<Outbound>) {
        self.flush(initial);
        while !stop.load(Ordering::Relaxed) {
            let now = self.clock.now();
            let deadline = self.sw.next_deadline();
            let wait = Duration::from_nanos(deadline.as_nanos().saturating_sub(now.as_nanos()))
                .min(Duration::from_millis(200));
            match self.rx.recv_timeout(wait) {
                Ok(msg) => {
                    self.handle(msg);
                    // Drain what else is queued before publishing.
                    while let Ok(m) = self.rx.try_recv() {
                        self.handle(m);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let mut ob = Vec::new();
            self.sw.tick(self.clock.now(), &mut ob);
            self.emit(None);
            self.subs.flush_lag();
            self.captures.prune();
            self.flush(ob);
            self.save_state();
            if reload.swap(false, Ordering::Relaxed) {
                match self.reload() {
                    Ok(v) => {
                        tracing::info!(target: "vswitch::config", event = "reload", result = %v.summary, "configuration reloaded")
                    }
                    Err(e) => {
                        tracing::error!(target: "vswitch::config", event = "reload_refused", error = %e, "configuration reload refused; the running configuration stays")
                    }
                }
            }
            if self.last_trim.elapsed() >= super::heap::TRIM_EVERY {
                super::heap::trim_heap();
                self.last_trim = Instant::now();
            }
            if self.last_attach_try.elapsed() >= Duration::from_secs(1) {
                self.last_attach_try = Instant::now();
                self.reattach();
            }
        }
        for w in &self.workers {
            w.send(ToWorker::Shutdown, true);
        }
    }

    /// Log the switch's new events and hand them to the subscribers.
    fn emit(&mut self, reaction: Option<(Timestamp, Timestamp)>) {
        log_events(&mut self.sw, reaction, &mut self.subs);
    }

    /// Write the VIP state file if the VIP state changed since the last write.
    fn save_state(&mut self) {
        let fp = self.sw.vips().state_fingerprint();
        if self.saved_fp == Some(fp) {
            return;
        }
        let path = crate::state::path_in(&self.sw.config().switch.state_dir);
        let state = crate::state::SavedState::of(&self.sw, &self.boot_id);
        match crate::state::save(&path, &state) {
            Ok(()) => {
                self.saved_fp = Some(fp);
                if self.save_failed {
                    tracing::info!(target: "vswitch::state", file = %path.display(), "VIP state file written again");
                }
                self.save_failed = false;
            }
            Err(e) => {
                if !self.save_failed {
                    tracing::error!(target: "vswitch::state", event = "state_write_failed", file = %path.display(), error = %e, "cannot write the VIP state file; a restart would have to rediscover owners");
                }
                self.save_failed = true;
                // try again at the next change or tick
            }
        }
    }

    /// Publish the switch's snapshot (with the captures' taps, if any run) if it or the
    /// captures changed since the last one.
    fn publish(&mut self) {
        let cur = self.sw.snapshot();
        if self.published == Some((cur.generation, self.captures.version())) {
            return;
        }
        let snap = match self.captures.taps(&self.sw) {
            None => cur.clone(),
            Some(taps) => Arc::new(Snapshot {
                capture: Some(taps),
                ..(*cur).clone()
            }),
        };
        self.snap.store(snap);
        self.published = Some((cur.generation, self.captures.version()));
    }

    fn flush(&mut self, ob: Vec<Outbound>) {
        self.publish();
        if ob.is_empty() {
            return;
        }
        if let Some(w) = self.workers.first() {
            for o in ob {
                let _ = w.tx.try_send(ToWorker::Send(o));
            }
            let _ = w.waker.wake();
        }
    }

    fn handle(&mut self, msg: ToControl) {
        let mut ob = Vec::new();
        match msg {
            ToControl::Vip { signal, at } => {
                let fx = Effects {
                    vip: Some(signal),
                    ..Default::default()
                };
                let now = self.clock.now();
                self.sw.apply(&fx, now, &mut ob);
                self.emit(Some((at, now)));
            }
            ToControl::Vrrp { advert, at } => {
                self.sw.record_vrrp(advert.port, &advert.frame, at);
            }
            ToControl::Gone {
                layout,
                port,
                gen,
                why,
                dev,
            } => {
                let current = self.attach_gen.get(port.index()).copied().unwrap_or(0);
                let up = self.sw.ports().get(port.index()).is_some_and(|p| p.oper_up);
                // several workers report the same device; only the attachment in place counts
                if layout == self.sw.layout() && gen == current && up {
                    tracing::warn!(target: "vswitch::port", port = %self.sw.port_name(port), reason = %why, "port device vanished");
                    self.sw
                        .set_port_oper(port, false, self.clock.now(), &mut ob);
                    self.emit(None);
                }
                // Publish and send (a crashed master's resignation) before closing it.
                self.flush(std::mem::take(&mut ob));
                drop(dev);
            }
            ToControl::Subscribe { tx, registered } => {
                self.subs.push(tx);
                let _ = registered.send(());
            }
            ToControl::CaptureStart(r) => {
                let (reply, answer) = self.captures.start(&self.sw, r);
                // the workers take it from the next snapshot: publish before answering
                self.publish();
                let _ = reply.send(answer);
            }
            ToControl::CaptureStop { id } => self.captures.stop(id),
            ToControl::Cmd { cmd, reply } => {
                let r = self.command(cmd, &mut ob);
                let _ = reply.send(r);
                self.emit(None);
            }
        }
        self.flush(ob);
    }

    fn reattach(&mut self) {
        let layout = self.sw.layout();
        let down: Vec<(PortId, PortBinding)> = self
            .sw
            .ports()
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.oper_up)
            .filter_map(|(i, p)| {
                self.sw
                    .config()
                    .port(&p.name)
                    .map(|pc| (PortId(i as u32), pc.binding.clone()))
            })
            .collect();
        let mut up = Vec::new();
        for (pid, b) in down {
            if !self.ports.exists(&b) {
                continue;
            }
            match self.ports.open_queues(&b, false, self.workers.len()) {
                Ok(qs) => {
                    let i = pid.index();
                    if self.attach_gen.len() <= i {
                        self.attach_gen.resize(i + 1, 0);
                    }
                    self.attach_gen[i] = self.attach_gen[i].wrapping_add(1);
                    let gen = self.attach_gen[i];
                    for (w, q) in self
                        .workers
                        .iter()
                        .zip(super::spread(qs, self.workers.len()))
                    {
                        if let Some(queue) = q {
                            w.send(
                                ToWorker::Attach {
                                    layout,
                                    port: pid,
                                    queue,
                                    gen,
                                },
                                true,
                            );
                        }
                    }
                    up.push((pid, true));
                }
                Err(e) => {
                    tracing::debug!(port = %self.sw.port_name(pid), error = %e, "re-attach failed")
                }
            }
        }
        if !up.is_empty() {
            // one snapshot for every port that came back in this round
            let mut ob = Vec::new();
            self.sw.set_ports_oper(&up, self.clock.now(), &mut ob);
            self.emit(None);
            self.flush(ob);
        }
    }

    /// Re-read the configuration file and apply it; tells the subscribers either way.
    pub(super) fn reload(&mut self) -> Result<ReloadResult, CtlError> {
        match self.apply_config_file() {
            Ok((report, true)) => {
                let mut r = self.reloaded(Ok(report))?;
                r.summary
                    .push_str(" (the file configures what runs: nothing applied)");
                Ok(r)
            }
            Ok((report, false)) => self.reloaded(Ok(report)),
            Err(e) => self.reloaded(Err(e)),
        }
    }

    /// After a reload (of the file or of the cluster groups): trim the heap, tell the
    /// subscribers.
    pub(super) fn reloaded(
        &mut self,
        result: Result<ReloadReport, CtlError>,
    ) -> Result<ReloadResult, CtlError> {
        // A reload builds and drops a whole configuration (and, when refused, the parser's
        // error state): hand the freed pages back so RSS does not ratchet up with reloads.
        super::heap::trim_heap();
        self.last_trim = Instant::now();
        match result {
            Ok(report) => {
                let summary = format!(
                    "added {:?}, removed {:?}, kept {}",
                    report.added,
                    report.removed,
                    report.kept.len()
                );
                self.subs.publish(&Event::Reloaded {
                    added: report.added,
                    removed: report.removed,
                    kept: report.kept,
                });
                Ok(ReloadResult {
                    reloaded: true,
                    summary,
                })
            }
            Err(e) => {
                self.subs.publish(&Event::ReloadRefused {
                    error: e.to_string(),
                });
                Err(e)
            }
        }
    }

    fn apply_config_file(&mut self) -> Result<(ReloadReport, bool), CtlError> {
        let invalid = |e: crate::config::ConfigError| CtlError::InvalidConfig {
            message: e.to_string(),
        };
        let path = self.config_path.clone().ok_or(CtlError::NoConfigFile)?;
        let bytes = Config::read_file(&path).map_err(invalid)?;
        if self.applied_file.is(&bytes) {
            // the file the running configuration was built from: nothing to apply
            return Ok((self.unchanged_report(), true));
        }
        let cfg = Config::parse_file(&path, &bytes).map_err(invalid)?;
        let (io, workers) = (self.sw.config().switch.io, self.sw.config().switch.workers);
        if cfg.switch.io != io || cfg.switch.workers != workers {
            tracing::warn!(target: "vswitch::config", engine = self.io_engine, workers, new_io = cfg.switch.io.as_str(), new_workers = cfg.switch.workers, "switch.io / switch.workers changed: the workers are set up at start; the running ones stay until a restart");
        }
        let file_vips = cfg.vips.clone();
        let (merged, skipped) = crate::config::merge_cluster_vips(&cfg, &self.cluster_vips);
        for (vip, reason) in &skipped {
            tracing::error!(target: "vswitch::config", event = "cluster_vip_skipped", vip = %vip, reason = %reason, "cluster vip group {vip:?} not installed: {reason}");
        }
        if merged == *self.sw.config() {
            // a different file (comments, order of keys) that configures the same switch
            self.file_vips = file_vips;
            self.applied_file.record(&bytes);
            return Ok((self.unchanged_report(), true));
        }
        let report = self.apply_merged(merged)?;
        self.file_vips = file_vips;
        self.applied_file.record(&bytes);
        Ok((report, false))
    }

    /// The report of a reload that changed nothing: every port kept.
    fn unchanged_report(&self) -> ReloadReport {
        ReloadReport {
            kept: self.sw.ports().iter().map(|p| p.name.clone()).collect(),
            ..ReloadReport::default()
        }
    }

    /// Apply a whole configuration (the file's plus the cluster groups).
    pub(super) fn apply_merged(&mut self, cfg: Config) -> Result<ReloadReport, CtlError> {
        let old_bindings: HashMap<String, PortBinding> = self
            .sw
            .config()
            .ports
            .iter()
            .map(|p| (p.name.clone(), p.binding.clone()))
            .collect();
        let old_ids: HashMap<String, PortId> = self
            .sw
            .ports()
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.clone(), PortId(i as u32)))
            .collect();
        // Open new devices before committing, so a failure to open is just a down port.
        let mut keep = Vec::new();
        let mut add = Vec::new();
        let mut failed = Vec::new();
        for (i, pc) in cfg.ports.iter().enumerate() {
            let same = old_bindings.get(&pc.name) == Some(&pc.binding);
            if same {
                keep.push(old_ids.get(&pc.name).copied());
            } else {
                keep.push(None);
                match self
                    .ports
                    .open_queues(&pc.binding, true, self.workers.len())
                {
                    Ok(qs) => add.push((PortId(i as u32), super::spread(qs, self.workers.len()))),
                    Err(e) => failed.push((PortId(i as u32), pc.name.clone(), e.to_string())),
                }
            }
        }
        let now = self.clock.now();
        let report = self
            .sw
            .reload(cfg, now)
            .map_err(|e| CtlError::InvalidConfig {
                message: e.to_string(),
            })?;
        let new_bindings = self.sw.config().ports.iter().map(|p| &p.binding);
        for tap in crate::config::removed_taps(old_bindings.values(), new_bindings) {
            match TapPort::delete(&tap) {
                Ok(found) => {
                    tracing::info!(target: "vswitch::port", tap = %tap, found, "tap of a removed port deleted")
                }
                Err(e) => {
                    tracing::warn!(target: "vswitch::port", tap = %tap, error = %e, "cannot delete the tap of a removed port")
                }
            }
        }
        let mut ob = Vec::new();
        for (_, name, e) in &failed {
            tracing::warn!(port = %name, error = %e, "port device unavailable after reload");
        }
        // (kept ports that were down stay down: their state was carried over)
        let down: Vec<(PortId, bool)> = failed.iter().map(|(pid, _, _)| (*pid, false)).collect();
        self.sw.set_ports_oper(&down, now, &mut ob);
        // per worker: its queues of the new devices
        let mut per: Vec<Vec<(PortId, super::Queue)>> =
            (0..self.workers.len()).map(|_| Vec::new()).collect();
        for (pid, qs) in add {
            for (k, q) in qs.into_iter().enumerate() {
                if let (Some(q), Some(list)) = (q, per.get_mut(k)) {
                    list.push((pid, q));
                }
            }
        }
        self.attach_gen = vec![0; self.sw.ports().len()];
        for (w, add) in self.workers.iter().zip(per) {
            w.send(
                ToWorker::Relayout {
                    layout: self.sw.layout(),
                    keep: keep.clone(),
                    add,
                },
                true,
            );
        }
        self.emit(None);
        self.flush(ob);
        Ok(report)
    }
}
