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
//! - multi-queue: a worker owns one queue of every port; more workers means more queues per
//!   tap (`IFF_MULTI_QUEUE`). This build runs one worker.
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
//! - `uring`: the worker's io_uring engine (registered batches, queued writes, order).
//!
//! ## Control ↔ worker protocol
//! Two bounded crossbeam channels and one `ArcSwap<Snapshot>`:
//! - control → worker (`ToWorker`, capacity 4096, the worker is woken through a mio
//!   `Waker`): `Send` a frame the control plane generated (announcements, discovery probes,
//!   VRRP step-downs) out of a port; `Attach` a re-opened device to a port id of the current
//!   layout; `Relayout` after a reload (for every new port id, the old id whose open device it
//!   keeps, plus the newly opened devices); `Shutdown`;
//! - worker → control (`ToControl`, capacity 8192, `try_send`: a full queue drops the
//!   message, never blocks the datapath): `Vip` (a claim, hijack or discovery answer with its
//!   arrival time), `Vrrp` (a candidate's advert), `Gone` (a port's device vanished; the
//!   device itself is handed over to be closed off the datapath), `Cmd` from the control
//!   socket threads with a reply channel, and `Subscribe` (a new event subscriber's queue);
//! - snapshots: the control thread publishes a new `Arc<Snapshot>` after every change; the
//!   worker loads it once per round and only uses one whose `layout` matches the port table
//!   it holds (a `Relayout` message is on its way otherwise).

use std::time::Instant;

use crossbeam_channel::Sender;
use vip_table::{PortId, Timestamp};

use crate::control::Outbound;
use crate::pipeline::{VipSignal, VrrpAdvert};
use crate::port::Port;

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

pub(crate) enum ToWorker {
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
}
