//! The worker: polls every port, runs the pipeline on each batch and sends the results.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use vip_table::{PortId, Timestamp};

use crate::forward;
use crate::frames::SmallFrame;
use crate::pipeline::{Effects, Snapshot};
use crate::port::{Batch, Port, PortError, VnetHdr};

use super::uring::{self, Ports, RingIo, RxFrame, Uring, PLAIN};
use super::vxlan_io::VxlanIo;
use super::{Clock, Queue, ToControl, ToWorker, BATCH, WAKE};
use crate::overlay::gro::Gro;

/// The poll token of the VXLAN socket.
const VXLAN: Token = Token(usize::MAX - 1);

pub(super) struct Worker {
    poll: Poll,
    devs: Vec<Option<Box<dyn Port>>>,
    /// Per port: whether this worker reads its queue (false: a send-only handle).
    reads: Vec<bool>,
    /// Per port: the generation of the attachment held (0: opened at start or relayout).
    gens: Vec<u32>,
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
    /// The VXLAN socket (cluster mode) and whether it may have datagrams waiting.
    vxlan: Option<VxlanIo>,
    vxlan_ready: bool,
    /// Joins the TCP segments of a receive round back into super-frames (cluster mode).
    gro: Option<Gro>,
    /// The io_uring engine (`[switch] io = "uring"`); `None`: poll + read/write.
    uring: Option<Uring>,
    /// The registered batch the next ring read goes into (0 or 1).
    next_batch: usize,
    /// Frames this worker read from ports (`vswitch_worker_rx_frames_total{worker}`).
    rx_total: Arc<std::sync::atomic::AtomicU64>,
}

/// How often a port whose link went down is checked for having vanished.
const SUSPECT_CHECK: Duration = Duration::from_millis(2);
/// For how long after its link went down (then once a second, as every port).
const SUSPECT_FOR: Duration = Duration::from_secs(3);

impl Worker {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        poll: Poll,
        queues: Vec<Option<Queue>>,
        layout: u64,
        snap: Arc<ArcSwap<Snapshot>>,
        rx: Receiver<ToWorker>,
        tx: Sender<ToControl>,
        clock: Clock,
        vxlan: Option<VxlanIo>,
        uring: Option<Uring>,
        rx_total: Arc<std::sync::atomic::AtomicU64>,
    ) -> Self {
        let reads: Vec<bool> = queues
            .iter()
            .map(|q| q.as_ref().is_some_and(|q| q.reads))
            .collect();
        let devs: Vec<Option<Box<dyn Port>>> =
            queues.into_iter().map(|q| q.map(|q| q.dev)).collect();
        if let Some(v) = &vxlan {
            if let Err(e) =
                poll.registry()
                    .register(&mut SourceFd(&v.raw_fd()), VXLAN, Interest::READABLE)
            {
                tracing::error!(error = %e, "cannot poll the VXLAN socket");
            }
        }
        let mut w = Worker {
            vxlan_ready: vxlan.is_some(),
            gro: vxlan.as_ref().filter(|v| v.gro()).map(|_| Gro::new()),
            vxlan,
            poll,
            ready: vec![true; devs.len()],
            gens: vec![0; devs.len()],
            reads,
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
            uring,
            next_batch: 0,
            rx_total,
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
        if !self.reads.get(i).copied().unwrap_or(false) {
            return;
        }
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
        if !self.reads.get(i).copied().unwrap_or(false) {
            return;
        }
        if let Some(fd) = self.fd(i) {
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        }
    }

    fn gone(&mut self, i: usize, why: String) {
        // no queued write may outlive the fd it names
        self.flush_ring();
        self.deregister(i);
        let dev = self.devs.get_mut(i).and_then(Option::take);
        if let Some(r) = self.ready.get_mut(i) {
            *r = false;
        }
        let _ = self.tx.try_send(ToControl::Gone {
            layout: self.layout,
            port: PortId(i as u32),
            gen: self.gens.get(i).copied().unwrap_or(0),
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
                ToWorker::Attach {
                    layout,
                    port,
                    queue,
                    gen,
                } => {
                    if layout == self.layout {
                        let i = port.index();
                        if let Some(s) = self.suspect_since.get_mut(i) {
                            *s = None;
                        }
                        self.flush_ring();
                        self.deregister(i);
                        if let Some(slot) = self.devs.get_mut(i) {
                            *slot = Some(queue.dev);
                            self.reads[i] = queue.reads;
                            self.gens[i] = gen;
                            self.register(i);
                            if let Some(r) = self.ready.get_mut(i) {
                                *r = true;
                            }
                        }
                    }
                }
                ToWorker::Relayout { layout, keep, add } => {
                    self.flush_ring();
                    for i in 0..self.devs.len() {
                        self.deregister(i);
                    }
                    let mut old: Vec<Option<Box<dyn Port>>> = std::mem::take(&mut self.devs);
                    let old_reads = std::mem::take(&mut self.reads);
                    let mut devs: Vec<Option<Box<dyn Port>>> = keep
                        .iter()
                        .map(|k| k.and_then(|o| old.get_mut(o.index()).and_then(Option::take)))
                        .collect();
                    let mut reads: Vec<bool> = keep
                        .iter()
                        .map(|k| k.and_then(|o| old_reads.get(o.index()).copied()) == Some(true))
                        .collect();
                    for (pid, q) in add {
                        if let Some(slot) = devs.get_mut(pid.index()) {
                            *slot = Some(q.dev);
                            reads[pid.index()] = q.reads;
                        }
                    }
                    drop(old);
                    self.suspect_since.clear();
                    self.devs = devs;
                    self.reads = reads;
                    self.gens = vec![0; self.devs.len()];
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
        let mut out = WorkerOut {
            devs: &mut self.devs,
            gone: &mut self.gone_on_send,
            tx: &self.tx,
            vxlan: None,
            snap: &snap,
            ring: self.uring.as_mut().map(|u| &mut u.io),
            rx: None,
        };
        let now = self.clock.now();
        forward::send_counted(
            &snap,
            &mut out,
            port,
            f.as_bytes(),
            &VnetHdr::default(),
            now,
        );
        self.flush_ring();
    }

    /// Submit every queued ring write and wait for them (io_uring only).
    fn flush_ring(&mut self) {
        if let Some(u) = self.uring.as_mut() {
            let snap = self.snap.load();
            u.io.flush(&mut Ports {
                devs: &mut self.devs,
                snap: &snap,
                gone: &mut self.gone_on_send,
            });
        }
    }

    /// One port's receive round through poll + read/write: drain up to a batch, step every
    /// frame.
    fn port_round_epoll(&mut self, i: usize, snap: &Snapshot, batch: &mut Batch, fx: &mut Effects) {
        let res = match self.devs[i].as_mut() {
            Some(d) => d.recv_batch(batch),
            None => {
                self.ready[i] = false;
                return;
            }
        };
        let n = match res {
            Ok(n) => n,
            Err(e) if e.is_gone() => {
                self.gone(i, e.to_string());
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "recv failed");
                self.ready[i] = false;
                return;
            }
        };
        if n < batch.capacity() {
            self.ready[i] = false;
        }
        self.rx_total.fetch_add(n as u64, Ordering::Relaxed);
        let now = self.clock.now();
        let ingress = PortId(i as u32);
        let mut out = WorkerOut {
            devs: &mut self.devs,
            gone: &mut self.gone_on_send,
            tx: &self.tx,
            vxlan: self.vxlan.as_mut(),
            snap,
            ring: None,
            rx: None,
        };
        for k in 0..n {
            let Some(buf) = batch.get_mut(k) else { break };
            let vnet = buf.vnet();
            forward::step(snap, ingress, buf.frame_mut(), &vnet, now, fx, &mut out);
        }
    }

    /// One port's receive round through the ring: one submit of the writes queued so far
    /// and this port's reads, then every frame stepped, in the order read; the step's
    /// writes are queued (see [`uring`]).
    fn port_round_uring(&mut self, i: usize, snap: &Snapshot, fx: &mut Effects) {
        let Some(u) = self.uring.as_mut() else {
            return;
        };
        let Some(dev) = self.devs[i].as_mut() else {
            self.ready[i] = false;
            return;
        };
        let ring_rx = dev
            .ring()
            .and_then(|r| r.ring_rx_offset().map(|off| (r.ring_fd(), off)));
        let mut ok = [false; BATCH];
        let failed;
        let (b, in_spare) = match ring_rx {
            Some((fd, off)) => {
                let b = self.next_batch;
                self.next_batch = 1 - b;
                let want = u.want(i);
                let Uring { io, bufs, .. } = u;
                let res = io.read(
                    &mut Ports {
                        devs: &mut self.devs,
                        snap,
                        gone: &mut self.gone_on_send,
                    },
                    fd,
                    off,
                    b,
                    &mut bufs[b],
                    want,
                );
                let Some(dev) = self.devs[i].as_mut() else {
                    return;
                };
                failed = uring::classify(dev.as_mut(), &mut bufs[b], &res[..want], &mut ok);
                let got = ok.iter().filter(|o| **o).count();
                let full = res[..want].iter().all(|r| *r > 0);
                u.got(i, want, got);
                if !full {
                    self.ready[i] = false;
                }
                (b, true)
            }
            None => {
                let Uring { io, bufs, .. } = u;
                io.settle(
                    PLAIN,
                    &mut Ports {
                        devs: &mut self.devs,
                        snap,
                        gone: &mut self.gone_on_send,
                    },
                );
                let Some(dev) = self.devs[i].as_mut() else {
                    return;
                };
                match dev.recv_batch(&mut bufs[PLAIN]) {
                    Ok(n) => {
                        ok[..n.min(BATCH)].fill(true);
                        if n < bufs[PLAIN].capacity() {
                            self.ready[i] = false;
                        }
                        failed = None;
                    }
                    Err(e) => failed = Some(e),
                }
                (PLAIN, false)
            }
        };
        let now = self.clock.now();
        let ingress = PortId(i as u32);
        let frames = ok.iter().filter(|o| **o).count();
        self.rx_total.fetch_add(frames as u64, Ordering::Relaxed);
        let Some(u) = self.uring.as_mut() else {
            return;
        };
        let Uring { io, bufs, .. } = u;
        let batch = &mut bufs[b];
        let mut out = WorkerOut {
            devs: &mut self.devs,
            gone: &mut self.gone_on_send,
            tx: &self.tx,
            vxlan: self.vxlan.as_mut(),
            snap,
            ring: Some(io),
            rx: None,
        };
        for (k, _) in ok.iter().enumerate().filter(|(_, o)| **o) {
            let buf = if in_spare {
                batch.spare_mut().get_mut(k)
            } else {
                batch.get_mut(k)
            };
            let Some(buf) = buf else { break };
            let vnet = buf.vnet();
            let frame = buf.frame_mut();
            out.rx = Some(RxFrame {
                batch: b,
                start: frame.as_ptr(),
                len: frame.len(),
            });
            forward::step(snap, ingress, frame, &vnet, now, fx, &mut out);
        }
        match failed {
            Some(e) if e.is_gone() => self.gone(i, e.to_string()),
            Some(e) => {
                tracing::debug!(error = %e, "recv failed");
                self.ready[i] = false;
            }
            None => {}
        }
    }

    pub(super) fn run(mut self, stop: &AtomicBool) {
        let mut events = Events::with_capacity(256);
        // the ring worker reads into its own (registered) batches
        let mut batch = Batch::new(if self.uring.is_some() { 0 } else { BATCH });
        let mut fx = Effects::default();
        while !stop.load(Ordering::Relaxed) {
            let busy = self.vxlan_ready
                || self
                    .ready
                    .iter()
                    .zip(&self.reads)
                    .any(|(ready, reads)| *ready && *reads);
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
                if ev.token() == VXLAN {
                    self.vxlan_ready = true;
                } else if ev.token() != WAKE {
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
                if !self.ready[i] || !self.reads[i] {
                    continue;
                }
                if self.uring.is_some() {
                    self.port_round_uring(i, &snap, &mut fx);
                } else {
                    self.port_round_epoll(i, &snap, &mut batch, &mut fx);
                }
            }
            // frames from the overlay are sent synchronously, after every ring write
            self.flush_ring();
            if self.vxlan_ready {
                self.vxlan_round(&snap, &mut fx);
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

impl Worker {
    /// Read up to a batch of VXLAN datagrams and run each through the overlay step.
    fn vxlan_round(&mut self, snap: &Snapshot, fx: &mut Effects) {
        let Some(vx) = self.vxlan.as_mut() else {
            self.vxlan_ready = false;
            return;
        };
        let now = self.clock.now();
        // frames from the overlay go to local ports only: no tunnel in this output
        let mut out = WorkerOut {
            devs: &mut self.devs,
            gone: &mut self.gone_on_send,
            tx: &self.tx,
            vxlan: None,
            snap,
            ring: None,
            rx: None,
        };
        let mut emit = |src: std::net::Ipv4Addr, payload: &mut [u8], vnet: &VnetHdr| {
            forward::step_overlay_vnet(snap, src, payload, vnet, now, fx, &mut out);
        };
        for _ in 0..BATCH {
            let (src, payload) = match vx.recv() {
                Ok(Some(d)) => d,
                Ok(None) => {
                    self.vxlan_ready = false;
                    break;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "VXLAN recv failed");
                    self.vxlan_ready = false;
                    break;
                }
            };
            match self.gro.as_mut() {
                Some(gro) => gro.feed(src, payload, &mut emit),
                None => emit(src, payload, &VnetHdr::default()),
            }
        }
        // nothing waits past the round
        if let Some(gro) = self.gro.as_mut() {
            gro.flush(&mut emit);
        }
    }
}

/// The worker's side of a forwarding step: the real devices, the VXLAN socket, and the
/// channel to the control thread.
struct WorkerOut<'a> {
    devs: &'a mut [Option<Box<dyn Port>>],
    /// Ports whose device a send found gone (handled after the round).
    gone: &'a mut Vec<PortId>,
    tx: &'a Sender<ToControl>,
    /// The tunnel (`None`: no overlay here, or a step for a frame from the overlay).
    vxlan: Option<&'a mut VxlanIo>,
    /// The snapshot of the round (the overlay table).
    snap: &'a Snapshot,
    /// The ring (io_uring worker): sends are queued on it.
    ring: Option<&'a mut RingIo>,
    /// The received frame being stepped, which a queued write may refer to in place.
    rx: Option<RxFrame>,
}

impl forward::Output for WorkerOut<'_> {
    #[inline]
    fn send(
        &mut self,
        port: PortId,
        frame: &[u8],
        vnet: &VnetHdr,
    ) -> Option<Result<(), PortError>> {
        if let Some(ring) = self.ring.as_deref_mut() {
            let Some(Some(d)) = self.devs.get_mut(port.index()) else {
                return None;
            };
            let how = d
                .ring()
                .and_then(|r| r.ring_tx_hdr(vnet).map(|h| (r.ring_fd(), h)));
            let mut p = Ports {
                devs: &mut *self.devs,
                snap: self.snap,
                gone: &mut *self.gone,
            };
            if let Some((fd, with_hdr)) = how {
                if ring.queue_write(&mut p, port, fd, frame, with_hdr.then_some(vnet), self.rx) {
                    // counted when it completes
                    return None;
                }
            }
            // a synchronous send comes after every queued write: order is kept
            ring.flush(&mut p);
        }
        let Some(Some(d)) = self.devs.get_mut(port.index()) else {
            return None;
        };
        let r = d.send(frame, vnet);
        if let Err(e) = &r {
            if e.is_gone() && !self.gone.contains(&port) {
                self.gone.push(port);
            }
        }
        Some(r)
    }

    #[inline]
    fn send_remote(
        &mut self,
        host: vip_table::HostId,
        vlan: u16,
        frame: &[u8],
        vnet: &VnetHdr,
    ) -> Option<Result<(), PortError>> {
        let vx = self.vxlan.as_deref_mut()?;
        vx.send(&self.snap.overlay, host, vlan, frame, vnet)
    }

    #[inline]
    fn signal(&mut self, signal: forward::Signal, at: Timestamp) {
        // a full queue drops the signal rather than stall the datapath
        let _ = self.tx.try_send(match signal {
            forward::Signal::Vip(signal) => ToControl::Vip { signal, at },
            forward::Signal::Vrrp(advert) => ToControl::Vrrp { advert, at },
        });
    }
}
