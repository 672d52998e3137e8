//! The live switch: a control thread that owns the [`Switch`] state and a worker that moves
//! frames between real ports.
//!
//! Contract:
//! - the worker polls every port fd (mio, edge-triggered), drains up to [`BATCH`] frames per
//!   port per round, runs [`process`] against the snapshot loaded once per batch, and sends.
//!   It applies MAC learning straight into the shared FDB and forwards VIP signals to the
//!   control thread over a bounded channel. No allocation and no logging per frame;
//! - the control thread is the only writer of ports, VIPs and configuration; it publishes
//!   snapshots through an `ArcSwap`; it runs timers (pending claims, FDB sweeps), operator
//!   commands, reloads and device re-attachment; it logs every VIP move and hijack attempt as
//!   a structured event;
//! - a port whose device vanishes (reads/writes report it gone) goes down; the others keep
//!   forwarding. Every second the control thread looks for down ports whose interface exists
//!   again and re-attaches them;
//! - a reload that fails validation or construction changes nothing; one that succeeds
//!   swaps the port table atomically for the worker (ports that keep their name and binding
//!   keep their open device);
//! - multi-queue: a worker owns one queue of every port; more workers means more queues per
//!   tap (`IFF_MULTI_QUEUE`). This build runs one worker.

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use serde_json::{json, Value};
use vip_table::{PortId, Timestamp};

use crate::config::{Config, PortBinding};
use crate::control::{ControlError, Outbound, Switch, SwitchEvent};
use crate::frames::SmallFrame;
use crate::pipeline::{
    process, DropReason, Effects, RxMeta, Snapshot, Verdict, VipSignal, VrrpAdvert,
};
use crate::port::af_packet::{PacketOptions, PacketPort};
use crate::port::tap::{TapOptions, TapPort};
use crate::port::{Batch, Port, PortError, VnetHdr};

/// Frames drained from one port per round.
pub const BATCH: usize = 64;
const WAKE: Token = Token(usize::MAX);

/// The daemon's clock as the pipeline's [`Timestamp`]: `CLOCK_MONOTONIC` (time since boot),
/// so that times saved in the state file by one instance of the switch mean the same to the
/// next one on the same boot (and the clocks of several switches on one machine compare).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
    offset: u64,
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    u64::try_from(ts.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(ts.tv_nsec).unwrap_or(0))
}

impl Clock {
    /// The clock (its origin is the boot).
    pub fn new() -> Self {
        let origin = Instant::now();
        Clock {
            origin,
            offset: monotonic_ns(),
        }
    }
    /// Now.
    #[inline]
    pub fn now(&self) -> Timestamp {
        Timestamp(
            self.offset.saturating_add(
                u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX),
            ),
        )
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// An operator command (from the control socket).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// Prometheus text exposition.
    Metrics,
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
            | Command::Metrics => false,
            Command::VipMove { .. }
            | Command::VipRelease { .. }
            | Command::PortAdmin { .. }
            | Command::Reload => true,
        }
    }
}

/// The answer to a command: JSON data, or an error message for the operator.
pub type Reply = Result<Value, String>;

enum ToWorker {
    Send(Outbound),
    Attach {
        layout: u64,
        port: PortId,
        dev: Box<dyn Port>,
    },
    Relayout {
        layout: u64,
        /// For each new port id: the old port id whose device it keeps.
        keep: Vec<Option<PortId>>,
        /// Newly opened devices.
        add: Vec<(PortId, Box<dyn Port>)>,
    },
    Shutdown,
}

enum ToControl {
    Vip {
        signal: VipSignal,
        at: Timestamp,
    },
    Vrrp {
        advert: VrrpAdvert,
        at: Timestamp,
    },
    Gone {
        layout: u64,
        port: PortId,
        why: String,
        /// The dead device, closed by the control thread after it has acted: closing an
        /// AF_PACKET socket waits for an RCU grace period (`synchronize_net`, ~10 ms under
        /// load), which must delay neither the worker's other ports nor the port-down.
        dev: Option<Box<dyn Port>>,
    },
    Cmd {
        cmd: Command,
        reply: Sender<Reply>,
    },
}

/// Daemon options.
#[derive(Clone, Debug, Default)]
pub struct DaemonOptions {
    /// The configuration file (for reloads).
    pub config_path: Option<PathBuf>,
}

/// Errors starting the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The state could not be built.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// An OS resource could not be created.
    #[error("{0}: {1}")]
    Os(&'static str, #[source] std::io::Error),
}

/// A handle for sending commands to the control thread.
#[derive(Clone)]
pub struct ControlHandle {
    tx: Sender<ToControl>,
}

impl ControlHandle {
    /// Run a command and wait for its answer (at most 10 s).
    pub fn call(&self, cmd: Command) -> Reply {
        let (rtx, rrx) = bounded(1);
        self.tx
            .send(ToControl::Cmd { cmd, reply: rtx })
            .map_err(|_| "the switch is shutting down".to_string())?;
        rrx.recv_timeout(Duration::from_secs(10))
            .map_err(|_| "the control thread did not answer".to_string())?
    }
}

/// A running switch.
pub struct Daemon {
    control: ControlHandle,
    stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Daemon {
    /// Open the ports and start the control thread and the worker.
    pub fn start(config: Config, opts: DaemonOptions) -> Result<Daemon, DaemonError> {
        let clock = Clock::new();
        let state_path = crate::state::path_in(&config.switch.state_dir);
        let mut sw = Switch::new(config, clock.now())?;
        let boot_id = crate::state::boot_id();
        restore_state(&mut sw, &state_path, &boot_id);
        // whatever was restored may be stale: ask the candidates
        sw.discover_all(clock.now());
        let poll = Poll::new().map_err(|e| DaemonError::Os("epoll", e))?;
        let waker =
            Arc::new(Waker::new(poll.registry(), WAKE).map_err(|e| DaemonError::Os("eventfd", e))?);
        let (wtx, wrx) = bounded::<ToWorker>(4096);
        let (ctx, crx) = bounded::<ToControl>(8192);
        let mut devs: Vec<Option<Box<dyn Port>>> = Vec::new();
        let mut ob = Vec::new();
        for (i, pc) in sw.config().ports.clone().iter().enumerate() {
            match open_binding(&pc.binding, true) {
                Ok(d) => devs.push(Some(d)),
                Err(e) => {
                    tracing::warn!(port = %pc.name, binding = %pc.binding, error = %e, "port device unavailable; port down until it appears");
                    sw.set_port_oper(PortId(i as u32), false, clock.now(), &mut ob);
                    devs.push(None);
                }
            }
        }
        log_events(&mut sw, None);
        let snap = Arc::new(ArcSwap::new(sw.snapshot()));
        let stop = Arc::new(AtomicBool::new(false));
        let reload = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        {
            let snap = snap.clone();
            let ctx = ctx.clone();
            let stop = stop.clone();
            let layout = sw.layout();
            threads.push(
                std::thread::Builder::new()
                    .name("vswitch-worker".into())
                    .spawn(move || {
                        Worker::new(poll, devs, layout, snap, wrx, ctx, clock).run(&stop)
                    })
                    .map_err(|e| DaemonError::Os("spawn worker", e))?,
            );
        }
        {
            let stop = stop.clone();
            let reload = reload.clone();
            let control = ControlLoop {
                sw,
                snap,
                wtx,
                waker,
                rx: crx,
                clock,
                config_path: opts.config_path,
                last_attach_try: Instant::now(),
                boot_id,
                saved_fp: None,
                save_failed: false,
            };
            let pending_ob = ob;
            threads.push(
                std::thread::Builder::new()
                    .name("vswitch-control".into())
                    .spawn(move || control.run(&stop, &reload, pending_ob))
                    .map_err(|e| DaemonError::Os("spawn control", e))?,
            );
        }
        Ok(Daemon {
            control: ControlHandle { tx: ctx },
            stop,
            reload,
            threads,
        })
    }

    /// A handle to send commands.
    pub fn control(&self) -> ControlHandle {
        self.control.clone()
    }

    /// Ask for a configuration reload (what SIGHUP does).
    pub fn request_reload(&self) {
        self.reload.store(true, Ordering::Relaxed);
    }

    /// A flag that, once set, stops the daemon (for signal handlers).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// A flag that, once set, reloads the configuration (for signal handlers).
    pub fn reload_flag(&self) -> Arc<AtomicBool> {
        self.reload.clone()
    }

    /// Stop both threads and close every port.
    pub fn shutdown(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wait();
    }

    /// Wait until the daemon stops (after the stop flag is set).
    pub fn wait(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Open the device behind a binding. `create`: a tap binding may create the tap; otherwise
/// only an existing interface is attached.
fn open_binding(b: &PortBinding, create: bool) -> Result<Box<dyn Port>, PortError> {
    match b {
        PortBinding::Tap(name) => {
            if !create && !interface_exists(name) {
                return Err(PortError::Gone {
                    errno: libc::ENODEV,
                });
            }
            // Persistent: a namespace on the tap keeps it across a restart of the switch.
            let opts = TapOptions {
                persist: true,
                ..TapOptions::default()
            };
            Ok(Box::new(TapPort::open(name, &opts)?))
        }
        PortBinding::Netdev(name) => {
            Ok(Box::new(PacketPort::open(name, &PacketOptions::default())?))
        }
    }
}

fn interface_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

fn log_events(sw: &mut Switch, reaction: Option<(Timestamp, Timestamp)>) {
    for e in sw.take_events() {
        let msg = e.to_string();
        match e {
            SwitchEvent::VipMoved {
                vip,
                from,
                to,
                mac,
                epoch,
                reason,
                at,
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

struct ControlLoop {
    sw: Switch,
    snap: Arc<ArcSwap<Snapshot>>,
    wtx: Sender<ToWorker>,
    waker: Arc<Waker>,
    rx: Receiver<ToControl>,
    clock: Clock,
    config_path: Option<PathBuf>,
    last_attach_try: Instant,
    boot_id: String,
    /// Fingerprint of the VIP state last written to the state file.
    saved_fp: Option<u64>,
    /// The last write failed (logged once until one succeeds).
    save_failed: bool,
}

/// Restore the VIP state file into a freshly built switch; a missing file is no news, a bad
/// one a warning (the switch starts with discovery either way).
fn restore_state(sw: &mut Switch, path: &std::path::Path, boot_id: &str) {
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
    fn run(mut self, stop: &AtomicBool, reload: &AtomicBool, initial: Vec<Outbound>) {
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
            log_events(&mut self.sw, None);
            self.flush(ob);
            self.save_state();
            if reload.swap(false, Ordering::Relaxed) {
                match self.reload() {
                    Ok(v) => {
                        tracing::info!(target: "vswitch::config", event = "reload", result = %v, "configuration reloaded")
                    }
                    Err(e) => {
                        tracing::error!(target: "vswitch::config", event = "reload_refused", error = %e, "configuration reload refused; the running configuration stays")
                    }
                }
            }
            if self.last_attach_try.elapsed() >= Duration::from_secs(1) {
                self.last_attach_try = Instant::now();
                self.reattach();
            }
        }
        let _ = self.wtx.send(ToWorker::Shutdown);
        let _ = self.waker.wake();
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

    fn publish(&self) {
        let cur = self.sw.snapshot();
        if self.snap.load().generation != cur.generation {
            self.snap.store(cur);
        }
    }

    fn flush(&mut self, ob: Vec<Outbound>) {
        self.publish();
        if ob.is_empty() {
            return;
        }
        for o in ob {
            let _ = self.wtx.try_send(ToWorker::Send(o));
        }
        let _ = self.waker.wake();
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
                log_events(&mut self.sw, Some((at, now)));
            }
            ToControl::Vrrp { advert, at } => {
                self.sw.record_vrrp(advert.port, &advert.frame, at);
            }
            ToControl::Gone {
                layout,
                port,
                why,
                dev,
            } => {
                if layout == self.sw.layout() {
                    tracing::warn!(target: "vswitch::port", port = %self.sw.port_name(port), reason = %why, "port device vanished");
                    self.sw
                        .set_port_oper(port, false, self.clock.now(), &mut ob);
                    log_events(&mut self.sw, None);
                }
                // Publish and send (a crashed master's resignation) before closing it.
                self.flush(std::mem::take(&mut ob));
                drop(dev);
            }
            ToControl::Cmd { cmd, reply } => {
                let r = self.command(cmd, &mut ob);
                let _ = reply.send(r);
                log_events(&mut self.sw, None);
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
        for (pid, b) in down {
            if !interface_exists(b.ifname()) {
                continue;
            }
            match open_binding(&b, false) {
                Ok(dev) => {
                    let _ = self.wtx.send(ToWorker::Attach {
                        layout,
                        port: pid,
                        dev,
                    });
                    let _ = self.waker.wake();
                    let mut ob = Vec::new();
                    self.sw.set_port_oper(pid, true, self.clock.now(), &mut ob);
                    log_events(&mut self.sw, None);
                    self.flush(ob);
                }
                Err(e) => {
                    tracing::debug!(port = %self.sw.port_name(pid), error = %e, "re-attach failed")
                }
            }
        }
    }

    fn reload(&mut self) -> Result<String, String> {
        let path = self
            .config_path
            .clone()
            .ok_or_else(|| "the switch was started without a configuration file".to_string())?;
        let cfg = Config::load(&path).map_err(|e| e.to_string())?;
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
                match open_binding(&pc.binding, true) {
                    Ok(d) => add.push((PortId(i as u32), d)),
                    Err(e) => failed.push((PortId(i as u32), pc.name.clone(), e.to_string())),
                }
            }
        }
        let now = self.clock.now();
        let report = self.sw.reload(cfg, now).map_err(|e| e.to_string())?;
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
        for (pid, name, e) in &failed {
            tracing::warn!(port = %name, error = %e, "port device unavailable after reload");
            self.sw.set_port_oper(*pid, false, now, &mut ob);
        }
        // Kept ports that were down stay down; their ids may have changed.
        for (i, k) in keep.iter().enumerate() {
            if k.is_some() && !self.sw.ports()[i].oper_up {
                // already down in carried state
            }
        }
        let _ = self.wtx.send(ToWorker::Relayout {
            layout: self.sw.layout(),
            keep,
            add,
        });
        let _ = self.waker.wake();
        log_events(&mut self.sw, None);
        self.flush(ob);
        Ok(format!(
            "added {:?}, removed {:?}, kept {}",
            report.added,
            report.removed,
            report.kept.len()
        ))
    }

    fn command(&mut self, cmd: Command, ob: &mut Vec<Outbound>) -> Reply {
        let now = self.clock.now();
        let ago = |t: Timestamp| now.saturating_since(t).as_secs_f64();
        match cmd {
            Command::ShowPorts => {
                let cfg = self.sw.config();
                let v: Vec<Value> = self
                    .sw
                    .ports()
                    .iter()
                    .filter_map(|p| {
                        let pc = cfg.port(&p.name)?;
                        let vips: Vec<&str> = cfg
                            .vips
                            .iter()
                            .filter(|v| v.is_candidate(&p.name))
                            .map(|v| v.name.as_str())
                            .collect();
                        Some(json!({
                            "name": p.name,
                            "binding": pc.binding.kind(),
                            "ifname": pc.binding.ifname(),
                            "mac": pc.mac.to_string(),
                            "ips": pc.ips.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
                            "allowed_address_pairs": pc.allowed_address_pairs.iter().map(|a| json!({"ip": a.ip.to_string(), "mac": a.mac.to_string()})).collect::<Vec<_>>(),
                            "vlan": p.vlan,
                            "mtu": p.mtu,
                            "admin_up": p.admin_up,
                            "oper_up": p.oper_up,
                            "port_security": p.policy.port_security,
                            "dest_check": p.policy.dest_check,
                            "vip_candidate_of": vips,
                        }))
                    })
                    .collect();
                Ok(Value::Array(v))
            }
            Command::ShowFdb => {
                let v: Vec<Value> = self
                    .sw
                    .fdb()
                    .entries(now)
                    .into_iter()
                    .map(|(vlan, mac, port, st, age)| {
                        json!({"vlan": vlan, "mac": mac.to_string(), "port": self.sw.port_name(port), "static": st, "age_secs": age as f64 / 1e9})
                    })
                    .collect();
                Ok(Value::Array(v))
            }
            Command::ShowVips => {
                let sw = &self.sw;
                let asking = sw.discovering();
                let v: Vec<Value> = sw
                    .vips()
                    .groups()
                    .map(|(_, g)| {
                        json!({
                            "name": g.name(),
                            "mode": g.mode().to_string(),
                            "addresses": g.addresses().iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                            "candidates": g.candidates().iter().map(|c| sw.port_name(*c)).collect::<Vec<_>>(),
                            "owners": g.owners().iter().map(|o| json!({"port": sw.port_name(o.port), "mac": o.mac.to_string(), "mac6": o.mac6.to_string(), "since_secs_ago": ago(o.since), "last_claim_secs_ago": ago(o.last_claim)})).collect::<Vec<_>>(),
                            "answer_mac": g.answer_mac().map(|m| m.to_string()),
                            "answer_mac6": g.answer_mac6().map(|m| m.to_string()),
                            "epoch": g.epoch(),
                            "last_claim": g.last_claim().map(|(t, p)| json!({"port": sw.port_name(p), "secs_ago": ago(t)})),
                            "pending": g.pending().map(|p| json!({"port": sw.port_name(p.port), "mac": p.mac.to_string(), "due_in_secs": p.due.saturating_since(now).as_secs_f64()})),
                            "moves": g.history().map(|m| json!({"secs_ago": ago(m.at), "epoch": m.epoch, "from": m.from.map(|p| sw.port_name(p)), "to": m.to.map(|p| sw.port_name(p)), "mac": m.mac.map(|x| x.to_string()), "reason": m.reason.to_string()})).collect::<Vec<_>>(),
                            "hijack_attempts": g.hijack_count(),
                            "discovering": asking.iter().any(|n| n == g.name()),
                            "last_hijack": g.last_hijack().map(|h| json!({"port": sw.port_name(h.port), "mac": h.mac.to_string(), "secs_ago": ago(h.at)})),
                        })
                    })
                    .collect();
                Ok(Value::Array(v))
            }
            Command::ShowStats => {
                let v: Vec<Value> = self
                    .sw
                    .ports()
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| {
                        let c = self.sw.counters(PortId(i as u32))?.values();
                        let drops: serde_json::Map<String, Value> =
                            c.drops.iter().map(|(k, n)| (k.clone(), json!(n))).collect();
                        Some(json!({"port": p.name, "up": p.is_up(), "rx_frames": c.rx_frames, "rx_bytes": c.rx_bytes, "tx_frames": c.tx_frames, "tx_bytes": c.tx_bytes, "answered": c.answered, "vip_no_owner": c.vip_no_owner, "to_switch": c.to_switch, "drops": drops}))
                    })
                    .collect();
                Ok(Value::Array(v))
            }
            Command::VipMove { vip, port } => self
                .sw
                .vip_move(&vip, &port, now, ob)
                .map(|m| json!({"moved": m.is_some(), "epoch": m.map(|m| m.epoch)}))
                .map_err(|e| e.to_string()),
            Command::VipRelease { vip, port } => self
                .sw
                .vip_release(&vip, &port, now, ob)
                .map(|m| json!({"released": m.is_some()}))
                .map_err(|e| e.to_string()),
            Command::PortAdmin { port, up } => self
                .sw
                .set_port_admin(&port, up, now, ob)
                .map(|_| json!({"port": port, "admin_up": up}))
                .map_err(|e| e.to_string()),
            Command::Reload => self
                .reload()
                .map(|s| json!({"reloaded": true, "summary": s})),
            Command::Metrics => Ok(Value::String(crate::metrics::render(&self.sw, now))),
        }
    }
}

struct Worker {
    poll: Poll,
    devs: Vec<Option<Box<dyn Port>>>,
    layout: u64,
    snap: Arc<ArcSwap<Snapshot>>,
    rx: Receiver<ToWorker>,
    tx: Sender<ToControl>,
    clock: Clock,
    ready: Vec<bool>,
    gone_on_send: Vec<PortId>,
    last_presence_check: Instant,
    /// Since when each port has been reporting its link down (see
    /// [`Port::link_down_reported`]): re-checked every [`SUSPECT_CHECK`] for
    /// [`SUSPECT_FOR`], so a deleted interface is noticed in milliseconds, not seconds.
    suspect_since: Vec<Option<Instant>>,
    last_suspect_check: Instant,
}

/// How often a port whose link went down is checked for having vanished.
const SUSPECT_CHECK: Duration = Duration::from_millis(2);
/// For how long after its link went down (then once a second, as every port).
const SUSPECT_FOR: Duration = Duration::from_secs(3);

impl Worker {
    fn new(
        poll: Poll,
        devs: Vec<Option<Box<dyn Port>>>,
        layout: u64,
        snap: Arc<ArcSwap<Snapshot>>,
        rx: Receiver<ToWorker>,
        tx: Sender<ToControl>,
        clock: Clock,
    ) -> Self {
        let mut w = Worker {
            poll,
            ready: vec![true; devs.len()],
            devs,
            layout,
            snap,
            rx,
            tx,
            clock,
            gone_on_send: Vec::new(),
            last_presence_check: Instant::now(),
            suspect_since: Vec::new(),
            last_suspect_check: Instant::now(),
        };
        for i in 0..w.devs.len() {
            w.register(i);
        }
        w
    }

    fn fd(&self, i: usize) -> Option<RawFd> {
        self.devs
            .get(i)
            .and_then(|d| d.as_ref())
            .map(|d| d.raw_fd())
    }

    fn register(&mut self, i: usize) {
        if let Some(fd) = self.fd(i) {
            if let Err(e) =
                self.poll
                    .registry()
                    .register(&mut SourceFd(&fd), Token(i), Interest::READABLE)
            {
                tracing::error!(error = %e, "cannot poll port fd");
            }
        }
    }

    fn deregister(&mut self, i: usize) {
        if let Some(fd) = self.fd(i) {
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        }
    }

    fn gone(&mut self, i: usize, why: String) {
        self.deregister(i);
        let dev = self.devs.get_mut(i).and_then(Option::take);
        if let Some(r) = self.ready.get_mut(i) {
            *r = false;
        }
        let _ = self.tx.try_send(ToControl::Gone {
            layout: self.layout,
            port: PortId(i as u32),
            why,
            dev,
        });
    }

    /// Ports whose link just went down: is the interface being deleted? (The deletion of
    /// an AF_PACKET port's interface raises no event after the link-down one.)
    fn check_suspects(&mut self) {
        if self.last_suspect_check.elapsed() < SUSPECT_CHECK {
            return;
        }
        self.last_suspect_check = Instant::now();
        self.suspect_since.resize(self.devs.len(), None);
        for j in 0..self.devs.len() {
            let Some(d) = self.devs[j].as_ref() else {
                self.suspect_since[j] = None;
                continue;
            };
            let reported = d.link_down_reported();
            // Sticky for SUSPECT_FOR: the link-down flag can clear again while the
            // interface is being torn down (seen with veths), the deletion comes later.
            let since = match (reported, self.suspect_since[j]) {
                (_, Some(t)) => t,
                (true, None) => {
                    let t = Instant::now();
                    self.suspect_since[j] = Some(t);
                    t
                }
                (false, None) => continue,
            };
            if since.elapsed() > SUSPECT_FOR {
                if !reported {
                    self.suspect_since[j] = None;
                }
                continue;
            }
            if !d.is_present() {
                self.suspect_since[j] = None;
                self.gone(j, "interface no longer present".into());
            }
        }
    }

    /// Returns false on shutdown.
    fn handle_msgs(&mut self) -> bool {
        while let Ok(m) = self.rx.try_recv() {
            match m {
                ToWorker::Shutdown => return false,
                ToWorker::Send(o) => self.send_small(o.port, &o.frame),
                ToWorker::Attach { layout, port, dev } => {
                    if layout == self.layout {
                        let i = port.index();
                        if let Some(s) = self.suspect_since.get_mut(i) {
                            *s = None;
                        }
                        self.deregister(i);
                        if let Some(slot) = self.devs.get_mut(i) {
                            *slot = Some(dev);
                            self.register(i);
                            if let Some(r) = self.ready.get_mut(i) {
                                *r = true;
                            }
                        }
                    }
                }
                ToWorker::Relayout { layout, keep, add } => {
                    for i in 0..self.devs.len() {
                        self.deregister(i);
                    }
                    let mut old: Vec<Option<Box<dyn Port>>> = std::mem::take(&mut self.devs);
                    let mut devs: Vec<Option<Box<dyn Port>>> = keep
                        .iter()
                        .map(|k| k.and_then(|o| old.get_mut(o.index()).and_then(Option::take)))
                        .collect();
                    for (pid, d) in add {
                        if let Some(slot) = devs.get_mut(pid.index()) {
                            *slot = Some(d);
                        }
                    }
                    drop(old);
                    self.suspect_since.clear();
                    self.devs = devs;
                    self.ready = vec![true; self.devs.len()];
                    self.layout = layout;
                    for i in 0..self.devs.len() {
                        self.register(i);
                    }
                }
            }
        }
        true
    }

    fn send_small(&mut self, port: PortId, f: &SmallFrame) {
        let snap = self.snap.load();
        let hdr = VnetHdr::default();
        let res = match self.devs.get_mut(port.index()).and_then(|d| d.as_mut()) {
            Some(d) => d.send(f.as_bytes(), &hdr),
            None => return,
        };
        if let Some(c) = snap.counters.get(port.index()) {
            match res {
                Ok(()) => c.tx(f.as_bytes().len()),
                Err(PortError::LinkDown) => c.count_drop(DropReason::PortDown),
                Err(_) => c.count_drop(DropReason::TxError),
            }
        }
    }

    fn run(mut self, stop: &AtomicBool) {
        let mut events = Events::with_capacity(256);
        let mut batch = Batch::new(BATCH);
        let mut fx = Effects::default();
        while !stop.load(Ordering::Relaxed) {
            let busy = self.ready.iter().any(|r| *r);
            let timeout = if busy {
                Duration::ZERO
            } else if self
                .suspect_since
                .iter()
                .flatten()
                .any(|t| t.elapsed() <= SUSPECT_FOR)
            {
                SUSPECT_CHECK
            } else {
                Duration::from_millis(100)
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    tracing::error!(error = %e, "poll failed");
                }
                continue;
            }
            for ev in events.iter() {
                if ev.token() != WAKE {
                    if let Some(r) = self.ready.get_mut(ev.token().0) {
                        *r = true;
                    }
                }
            }
            if !self.handle_msgs() {
                break;
            }
            let snap = self.snap.load_full();
            if snap.layout != self.layout {
                // A relayout message is on its way; wait for it.
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            for i in 0..self.devs.len() {
                if !self.ready[i] {
                    continue;
                }
                let res = match self.devs[i].as_mut() {
                    Some(d) => d.recv_batch(&mut batch),
                    None => {
                        self.ready[i] = false;
                        continue;
                    }
                };
                let n = match res {
                    Ok(n) => n,
                    Err(e) if e.is_gone() => {
                        self.gone(i, e.to_string());
                        continue;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "recv failed");
                        self.ready[i] = false;
                        continue;
                    }
                };
                if n < batch.capacity() {
                    self.ready[i] = false;
                }
                let now = self.clock.now();
                let ingress = PortId(i as u32);
                for k in 0..n {
                    let Some(buf) = batch.get_mut(k) else { break };
                    let vnet = buf.vnet();
                    let meta = RxMeta { gso: vnet.is_gso() };
                    let len = buf.len();
                    let v = process(&snap, ingress, buf.frame(), meta, now, &mut fx);
                    if let Some(c) = snap.counters.get(i) {
                        c.rx(len);
                        c.verdict(&v, &fx);
                    }
                    if let Some(l) = &fx.learn {
                        snap.fdb.learn(l, now);
                    }
                    if let Some(signal) = fx.vip {
                        let _ = self.tx.try_send(ToControl::Vip { signal, at: now });
                    }
                    if let Some(advert) = fx.vrrp {
                        let _ = self.tx.try_send(ToControl::Vrrp { advert, at: now });
                    }
                    match v {
                        Verdict::Forward { port, rewrite_dst } => {
                            if let Some(m) = rewrite_dst {
                                if let Some(d) = buf.frame_mut().get_mut(..6) {
                                    d.copy_from_slice(&m.0);
                                }
                            }
                            send_to(
                                &mut self.devs,
                                &mut self.gone_on_send,
                                &snap,
                                port,
                                buf.frame(),
                                &vnet,
                            );
                        }
                        Verdict::Flood => {
                            let set = fx.flood;
                            for p in set.iter() {
                                send_to(
                                    &mut self.devs,
                                    &mut self.gone_on_send,
                                    &snap,
                                    p,
                                    buf.frame(),
                                    &vnet,
                                );
                            }
                        }
                        Verdict::Answered => {
                            if let Some(r) = fx.reply {
                                send_to(
                                    &mut self.devs,
                                    &mut self.gone_on_send,
                                    &snap,
                                    ingress,
                                    r.as_bytes(),
                                    &VnetHdr::default(),
                                );
                            }
                        }
                        Verdict::Drop(_) | Verdict::ToSwitch => {}
                    }
                }
            }
            if !self.gone_on_send.is_empty() {
                let g = std::mem::take(&mut self.gone_on_send);
                for j in g {
                    self.gone(j.index(), "send reported the device gone".into());
                }
            }
            self.check_suspects();
            if self.last_presence_check.elapsed() >= Duration::from_secs(1) {
                self.last_presence_check = Instant::now();
                for j in 0..self.devs.len() {
                    if self.devs[j].as_ref().is_some_and(|d| !d.is_present()) {
                        self.gone(j, "interface no longer present".into());
                    }
                }
            }
        }
    }
}

#[inline]
fn send_to(
    devs: &mut [Option<Box<dyn Port>>],
    gone: &mut Vec<PortId>,
    snap: &Snapshot,
    port: PortId,
    frame: &[u8],
    vnet: &VnetHdr,
) {
    let Some(Some(d)) = devs.get_mut(port.index()) else {
        return;
    };
    let r = d.send(frame, vnet);
    if let Some(c) = snap.counters.get(port.index()) {
        match r {
            Ok(()) => c.tx(frame.len()),
            Err(PortError::LinkDown) => c.count_drop(DropReason::PortDown),
            Err(e) => {
                c.count_drop(DropReason::TxError);
                if e.is_gone() && !gone.contains(&port) {
                    gone.push(port);
                }
            }
        }
    }
}
