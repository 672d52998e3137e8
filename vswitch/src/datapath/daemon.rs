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

use crate::config::{Config, PortBinding};
use crate::control::{ControlError, Switch};
use crate::port::af_packet::{PacketOptions, PacketPort};
use crate::port::tap::{TapOptions, TapPort};
use crate::port::{Port, PortError};
use crate::view::{CtlError, Event};

use super::control_loop::{log_events, restore_state, ControlLoop};
use super::subscribers::{self, Subscribers};
use super::worker::Worker;
use super::{Clock, Command, Reply, ToControl, ToWorker, WAKE};

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
    /// Cluster mode: `cluster.udp_gso = "on"` on a kernel without UDP GSO.
    #[error("cluster.udp_gso = \"on\": {0}")]
    UdpGso(#[source] std::io::Error),
}

/// A handle for sending commands to the control thread.
#[derive(Clone)]
pub struct ControlHandle {
    tx: Sender<ToControl>,
}

impl ControlHandle {
    /// Run a command and wait for its answer (at most 10 s). [`Command::Watch`] is not a
    /// call ([`CtlError::NotACall`]): use [`ControlHandle::subscribe`].
    pub fn call(&self, cmd: Command) -> Reply {
        if cmd == Command::Watch {
            return Err(CtlError::NotACall);
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
        // nobody can have subscribed yet: these events are only logged
        let mut subs = Subscribers::default();
        log_events(&mut sw, None, &mut subs);
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
                        Worker::new(poll, devs, layout, snap, wrx, ctx, clock, vxlan).run(&stop)
                    })
                    .map_err(|e| DaemonError::Os("spawn worker", e))?,
            );
        }
        {
            let stop = stop.clone();
            let reload = reload.clone();
            let file_vips = sw.config().vips.clone();
            let control = ControlLoop {
                file_vips,
                cluster_vips: Vec::new(),
                // the file is read again at the first reload (the configuration given here
                // need not be its text's)
                applied_file: Default::default(),
                sw,
                snap,
                wtx,
                waker,
                rx: crx,
                clock,
                config_path: opts.config_path,
                last_attach_try: Instant::now(),
                last_trim: Instant::now(),
                boot_id,
                saved_fp: None,
                save_failed: false,
                subs,
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

/// Open the device behind a binding. `create`: a tap binding may create the tap; otherwise
/// only an existing interface is attached.
pub(super) fn open_binding(b: &PortBinding, create: bool) -> Result<Box<dyn Port>, PortError> {
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

pub(super) fn interface_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}
