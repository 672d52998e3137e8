//! The live switch: a control thread that owns the [`Switch`] state and a worker that moves
//! frames between real ports.
//!
//! Contract:
//! - the worker polls every port fd (mio, edge-triggered), drains up to [`BATCH`] frames per
//!   port per round, runs [`process`] against the snapshot loaded once per batch, and sends.
//!   How it reads and writes is its engine (`switch.io`): one system call per frame, or
//!   io_uring with one submit per port per round (`uring`; same order, frames and counters);
//!   It applies MAC learning straight into the shared FDB and forwards VIP signals to the
//!   control thread over a bounded channel. No allocation and no logging per frame;
//! - the control thread is the only writer of ports, VIPs and configuration; it publishes
//!   snapshots through an `ArcSwap`; it runs timers (pending claims, FDB sweeps), operator
//!   commands, reloads and device re-attachment; it logs every VIP move and hijack attempt as
//!   a structured event and hands every event to its subscribers ([`crate::view::Event`]);
//! - a port whose device vanishes (reads/writes report it gone) goes down; the others keep
//!   forwarding. Every second the control thread looks for down ports whose interface exists
//!   again and re-attaches them;
//! - a reload that fails validation or construction changes nothing; one that succeeds
//!   swaps the port table atomically for the worker (ports that keep their name and binding
//!   keep their open device);
//! - multi-queue (`switch.workers = N`): each worker is a thread with its own poll, channel
//!   and queue of every port (multi-queue taps, `IFF_MULTI_QUEUE`; AF_PACKET sockets in one
//!   `PACKET_FANOUT` hash group). The kernel picks a queue per flow, so every frame of a flow
//!   is read and forwarded by one worker and never reordered; a worker sends through its own
//!   queue of the egress port. Learning (the shared FDB), counters (atomics) and VIP signals
//!   (one channel to the control thread) are the same for any worker. Frames the control
//!   plane generates go out through worker 0.
//!
//! ## Files
//! - [`command`]: the typed operator commands, shared by the daemon, the CLI (through the
//!   control socket) and the tests; their answers, errors and events are in [`crate::view`];
//! - [`daemon`]: starting and stopping the threads, opening port devices through a
//!   [`crate::port::PortFactory`] (real devices, or in-memory ports for tests of the threads
//!   without root: `vswitch/tests/daemon_memory.rs`), subscribing to events
//!   ([`Daemon::subscribe`]);
//! - `control_loop`: the control thread (owns [`Switch`]; timers, commands, reloads,
//!   re-attachment, the VIP state file) and the typed views it answers with (`views`);
//! - `subscribers`: the control thread's event subscribers (bounded queues, `try_send`: a
//!   slow subscriber lags, see [`crate::view::Event`]);
//! - `worker`: the worker thread (polls the ports, runs the pipeline, sends);
//! - `uring`: the worker's io_uring engine (registered batches, queued writes, order);
//! - `captures`: the control thread's table of port captures and the client's
//!   [`CaptureStream`].
//!
//! ## Control ↔ worker protocol
//! Two bounded crossbeam channels and one `ArcSwap<Snapshot>`:
//! - control → worker (`ToWorker`, one channel per worker, capacity 4096, the worker is woken
//!   through its mio `Waker`): `Send` a frame the control plane generated (announcements,
//!   discovery probes, VRRP step-downs) out of a port (worker 0 only); `Attach` the worker's
//!   queue of a re-opened device to a port id of the current layout, with the attachment's
//!   generation; `Relayout` after a reload (for every new port id, the old id whose open
//!   device it keeps, plus the worker's queues of the newly opened devices); `Shutdown`;
//! - worker → control (`ToControl`, capacity 8192, `try_send`: a full queue drops the
//!   message, never blocks the datapath): `Vip` (a claim, hijack or discovery answer with its
//!   arrival time), `Vrrp` (a candidate's advert), `Gone` (a port's device vanished, with the
//!   generation of the attachment: the first report takes the port down, later ones about
//!   the same attachment or an older one change nothing; the device itself is handed over to
//!   be closed off the datapath), `Cmd` from the control
//!   socket threads with a reply channel, `Subscribe` (a new event subscriber's queue),
//!   `CaptureStart` (a port capture's queue, answered once a snapshot with it is
//!   published) and `CaptureStop` (its stream went away; see `captures`);
//! - snapshots: the control thread publishes a new `Arc<Snapshot>` after every change; the
//!   worker loads it once per round and only uses one whose `layout` matches the port table
//!   it holds (a `Relayout` message is on its way otherwise). A snapshot also tells the
//!   workers which port captures run ([`crate::capture`]): the control thread adds the
//!   captures' taps to the switch's snapshot when it publishes, so starting and stopping a
//!   capture is a new snapshot, and with none running the field is `None` (one check per
//!   frame in the forwarding step).

use std::time::Instant;

use crossbeam_channel::Sender;
use vip_table::{PortId, Timestamp};

use crate::control::Outbound;
use crate::pipeline::{VipSignal, VrrpAdvert};
use crate::port::Port;

mod captures;
mod cluster;
pub mod command;
mod control_loop;
pub mod daemon;
pub mod heap;
mod subscribers;
mod uring;
mod views;
pub mod vxlan_io;
mod worker;

pub use crate::view::Reply;
pub use captures::{CaptureNext, CaptureStream};
pub use command::{ClusterGroup, ClusterOwnerEntry, Command};
pub use daemon::{ControlHandle, Daemon, DaemonError, DaemonOptions};

/// Frames drained from one port per round.
pub const BATCH: usize = 64;
const WAKE: mio::Token = mio::Token(usize::MAX);

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

/// The control thread's line to one worker.
pub(crate) struct WorkerLink {
    pub tx: crossbeam_channel::Sender<ToWorker>,
    pub waker: std::sync::Arc<mio::Waker>,
}

impl WorkerLink {
    /// Send and wake (a full queue drops `Send` frames, never blocks: `try`).
    pub fn send(&self, msg: ToWorker, block: bool) {
        let _ = if block {
            self.tx.send(msg).map_err(|_| ())
        } else {
            self.tx.try_send(msg).map_err(|_| ())
        };
        let _ = self.waker.wake();
    }
}

/// One worker's queue of a port's device.
pub(crate) struct Queue {
    pub dev: Box<dyn Port>,
    /// The worker reads from it; false: a send-only handle on another worker's queue (the
    /// device has fewer queues than there are workers).
    pub reads: bool,
}

pub(crate) enum ToWorker {
    Send(Outbound),
    Attach {
        layout: u64,
        port: PortId,
        /// This worker's queue of the re-opened device.
        queue: Queue,
        /// The attachment's generation (see `Gone`).
        gen: u32,
    },
    Relayout {
        layout: u64,
        /// For each new port id: the old port id whose device it keeps.
        keep: Vec<Option<PortId>>,
        /// This worker's queues of the newly opened devices.
        add: Vec<(PortId, Queue)>,
    },
    Shutdown,
}

/// Hand the queues of one device to `n` workers: worker `k` gets queue `k`, or a send-only
/// handle on the first queue when the device has fewer queues (`None` if even that fails).
pub(crate) fn spread(queues: Vec<Box<dyn Port>>, n: usize) -> Vec<Option<Queue>> {
    let mut out: Vec<Option<Queue>> = Vec::with_capacity(n);
    let mut it = queues.into_iter();
    for _ in 0..n {
        match it.next() {
            Some(dev) => out.push(Some(Queue { dev, reads: true })),
            None => {
                let tx = out
                    .first()
                    .and_then(|q| q.as_ref())
                    .and_then(|q| q.dev.clone_tx())
                    .map(|dev| Queue { dev, reads: false });
                out.push(tx);
            }
        }
    }
    out
}

pub(crate) enum ToControl {
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
        /// The generation of the attachment that vanished: a report about a device that
        /// was already replaced (another worker's queue noticed late) is ignored.
        gen: u32,
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
    /// A new event subscriber (its queue's sending end); `registered` is told once it is.
    Subscribe {
        tx: Sender<crate::view::Event>,
        registered: Sender<()>,
    },
    /// Start a port capture (see [`captures`]); answered once a snapshot with it is
    /// published.
    CaptureStart(captures::CaptureRequest),
    /// A capture's stream went away.
    CaptureStop {
        id: u64,
    },
}
