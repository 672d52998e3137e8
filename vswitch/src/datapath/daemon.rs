//! Starting the switch: open the ports, spawn the control thread and the worker; stop them.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_channel::{bounded, Receiver, Sender};
use mio::{Poll, Waker};
use vip_table::PortId;

use crate::config::{Config, IoEngine};
use crate::control::{ControlError, Switch};
use crate::port::{OsPorts, PortFactory};
use crate::view::{CtlError, Event};

use super::control_loop::{log_events, restore_state, ControlLoop};
use super::subscribers::{self, Subscribers};
use super::uring::Uring;
use super::worker::Worker;
use super::{spread, Clock, Command, Queue, Reply, ToControl, ToWorker, WorkerLink, WAKE};

/// Daemon options.
#[derive(Clone, Debug, Default)]
pub struct DaemonOptions {
    /// The configuration file (for reloads).
    pub config_path: Option<PathBuf>,
    /// Opens the port devices; `None`: real devices ([`OsPorts`]). Tests pass a
    /// [`crate::port::MemoryPorts`] to run the threads without root.
    pub ports: Option<Arc<dyn PortFactory>>,
    /// The bytes `config_path` held when the configuration given to [`Daemon::start`] was
    /// parsed from them (`Config::read_file` + `Config::parse_file`): a reload of the
    /// unchanged file is then the shortcut from the first one on. `None`: the first reload
    /// parses the file (the configuration given need not be its text's).
    pub config_bytes: Option<Vec<u8>>,
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
    /// Cluster mode: the VXLAN socket could not be bound on `cluster.vtep`.
    #[error(
        "cannot bind the VXLAN socket on {vtep}:4789 (cluster.vtep): {source}; the address \
         must be configured on this host and the port free"
    )]
    Vxlan {
        /// The VTEP address.
        vtep: std::net::Ipv4Addr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `switch.io = "uring"` on a kernel (or in a sandbox) without a usable io_uring.
    #[error("switch.io = \"uring\": {0}")]
    Uring(String),
    /// Cluster mode: `cluster.udp_gso = "on"` on a kernel without UDP GSO.
    #[error("cluster.udp_gso = \"on\": {0}")]
    UdpGso(#[source] std::io::Error),
}

/// A handle for sending commands to the control thread.
#[derive(Clone)]
pub struct ControlHandle {
    tx: Sender<ToControl>,
    /// The published snapshot (a capture stream names ports by it).
    snap: Arc<ArcSwap<crate::pipeline::Snapshot>>,
}

impl ControlHandle {
    /// Run a command and wait for its answer (at most 10 s). [`Command::Watch`] is not a
    /// call ([`CtlError::NotACall`]): use [`ControlHandle::subscribe`].
    pub fn call(&self, cmd: Command) -> Reply {
        if cmd == Command::Watch {
            return Err(CtlError::NotACall);
        }
        if let Command::Capture { .. } = cmd {
            return Err(CtlError::CaptureNotACall);
        }
        let (rtx, rrx) = bounded(1);
        self.tx
            .send(ToControl::Cmd { cmd, reply: rtx })
            .map_err(|_| CtlError::ShuttingDown)?;
        rrx.recv_timeout(Duration::from_secs(10))
            .map_err(|_| CtlError::NoAnswer)?
    }

    /// Subscribe to the control thread's events (see [`crate::view::Event`] for what, when
    /// and the lag rule). Returns once the control thread has registered the subscriber:
    /// every event it emits from then on is delivered (or counted as missed). The receiver disconnects when the switch stops; dropping it
    /// unsubscribes.
    pub fn subscribe(&self) -> Result<Receiver<Event>, CtlError> {
        let (tx, rx) = subscribers::channel();
        let (registered, done) = bounded(1);
        self.tx
            .send(ToControl::Subscribe { tx, registered })
            .map_err(|_| CtlError::ShuttingDown)?;
        done.recv_timeout(Duration::from_secs(10))
            .map_err(|_| CtlError::NoAnswer)?;
        Ok(rx)
    }

    /// Start a capture of `port` (see [`crate::capture`] and [`CaptureStream`]): returns
    /// once every worker's next round feeds it. It ends after `count` frames, after
    /// `duration`, when the port is removed, when the switch stops, or when the stream is
    /// dropped.
    pub fn capture(
        &self,
        port: &str,
        dir: crate::view::capture::CaptureDir,
        count: Option<u64>,
        duration: Option<Duration>,
    ) -> Result<super::CaptureStream, CtlError> {
        super::CaptureStream::start(&self.tx, &self.snap, port, dir, count, duration)
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
        let vxlan = match &sw.config().cluster {
            Some(c) => {
                let v =
                    super::vxlan_io::VxlanIo::bind(c.vtep, c.udp_gso, c.gro).map_err(|source| {
                        if source.kind() == std::io::ErrorKind::Unsupported {
                            DaemonError::UdpGso(source)
                        } else {
                            DaemonError::Vxlan {
                                vtep: c.vtep,
                                source,
                            }
                        }
                    })?;
                if v.udp_gso() {
                    tracing::info!(vtep = %c.vtep, "VXLAN super-frames go out as UDP GSO batches (cluster.udp_gso)");
                } else if c.udp_gso == crate::config::UdpGso::Auto {
                    tracing::warn!(vtep = %c.vtep, "this kernel has no UDP GSO (UDP_SEGMENT); VXLAN goes out one datagram per send");
                } else {
                    tracing::info!(vtep = %c.vtep, "VXLAN goes out one datagram per send (cluster.udp_gso = \"off\")");
                }
                Some(v)
            }
            None => None,
        };
        let n = sw.config().switch.workers.max(1);
        // one ring per worker, or none at all (every worker runs the same engine)
        let mut rings: Vec<Option<Uring>> = Vec::with_capacity(n);
        match sw.config().switch.io {
            IoEngine::Epoll => {}
            IoEngine::Uring => {
                for _ in 0..n {
                    rings.push(Some(Uring::new().map_err(DaemonError::Uring)?));
                }
            }
            IoEngine::Auto => {
                for _ in 0..n {
                    match Uring::new() {
                        Ok(u) => rings.push(Some(u)),
                        Err(why) => {
                            tracing::warn!(%why, "io_uring is not usable here; the workers use poll + read/write (switch.io = \"auto\")");
                            rings.clear();
                            break;
                        }
                    }
                }
            }
        }
        rings.resize_with(n, || None);
        let io_engine = if rings.iter().all(Option::is_some) {
            "uring"
        } else {
            "epoll"
        };
        tracing::info!(
            engine = io_engine,
            workers = n,
            "the workers use {} (switch.io = \"{}\")",
            if io_engine == "uring" {
                "io_uring"
            } else {
                "poll + read/write"
            },
            sw.config().switch.io.as_str()
        );
        let (ctx, crx) = bounded::<ToControl>(8192);
        // per worker: its queue of every port
        let mut queues: Vec<Vec<Option<Queue>>> = (0..n).map(|_| Vec::new()).collect();
        let mut ob = Vec::new();
        let ports: Arc<dyn PortFactory> = opts.ports.clone().unwrap_or_else(|| Arc::new(OsPorts));
        let mut down = Vec::new();
        for (i, pc) in sw.config().ports.clone().iter().enumerate() {
            match ports.open_queues(&pc.binding, true, n) {
                Ok(qs) => {
                    for (k, q) in spread(qs, n).into_iter().enumerate() {
                        queues[k].push(q);
                    }
                }
                Err(e) => {
                    tracing::warn!(port = %pc.name, binding = %pc.binding, error = %e, "port device unavailable; port down until it appears");
                    down.push((PortId(i as u32), false));
                    for q in queues.iter_mut() {
                        q.push(None);
                    }
                }
            }
        }
        sw.set_ports_oper(&down, clock.now(), &mut ob);
        // nobody can have subscribed yet: these events are only logged
        let mut subs = Subscribers::default();
        log_events(&mut sw, None, &mut subs);
        let snap = Arc::new(ArcSwap::new(sw.snapshot()));
        let stop = Arc::new(AtomicBool::new(false));
        let reload = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let mut links = Vec::with_capacity(n);
        let worker_rx: Vec<Arc<std::sync::atomic::AtomicU64>> =
            (0..n).map(|_| Arc::default()).collect();
        // the VXLAN socket goes to worker 0 (cluster mode runs one worker)
        let mut vxlan = vxlan;
        for (k, (queues, uring)) in queues.into_iter().zip(rings).enumerate() {
            let poll = Poll::new().map_err(|e| DaemonError::Os("epoll", e))?;
            let waker = Arc::new(
                Waker::new(poll.registry(), WAKE).map_err(|e| DaemonError::Os("eventfd", e))?,
            );
            let (wtx, wrx) = bounded::<ToWorker>(4096);
            links.push(WorkerLink { tx: wtx, waker });
            let snap = snap.clone();
            let ctx = ctx.clone();
            let stop = stop.clone();
            let layout = sw.layout();
            let vxlan = vxlan.take();
            let rx_total = worker_rx[k].clone();
            threads.push(
                std::thread::Builder::new()
                    .name(if n == 1 {
                        "vswitch-worker".into()
                    } else {
                        format!("vswitch-worker-{k}")
                    })
                    .spawn(move || {
                        Worker::new(
                            poll, queues, layout, snap, wrx, ctx, clock, vxlan, uring, rx_total,
                        )
                        .run(&stop)
                    })
                    .map_err(|e| DaemonError::Os("spawn worker", e))?,
            );
        }
        let snap_handle = snap.clone();
        {
            let stop = stop.clone();
            let reload = reload.clone();
            let file_vips = sw.config().vips.clone();
            // without the bytes, the file is parsed again at the first reload
            let mut applied_file = super::control_loop::AppliedFile::default();
            if let Some(bytes) = &opts.config_bytes {
                applied_file.record(bytes);
            }
            let control = ControlLoop {
                file_vips,
                cluster_vips: Vec::new(),
                applied_file,
                sw,
                snap,
                attach_gen: Vec::new(),
                worker_rx,
                workers: links,
                rx: crx,
                clock,
                config_path: opts.config_path,
                last_attach_try: Instant::now(),
                last_trim: Instant::now(),
                boot_id,
                saved_fp: None,
                save_failed: false,
                subs,
                io_engine,
                ports,
                captures: Default::default(),
                published: None,
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
            control: ControlHandle {
                tx: ctx,
                snap: snap_handle,
            },
            stop,
            reload,
            threads,
        })
    }

    /// A handle to send commands.
    pub fn control(&self) -> ControlHandle {
        self.control.clone()
    }

    /// Subscribe to the control thread's events: see [`ControlHandle::subscribe`].
    pub fn subscribe(&self) -> Result<Receiver<Event>, CtlError> {
        self.control.subscribe()
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
