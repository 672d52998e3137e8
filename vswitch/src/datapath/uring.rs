//! The worker's io_uring engine (`[switch] io = "uring"`): batched port reads into
//! registered buffers and batched writes, one `io_uring_enter` per port per round instead
//! of one system call per frame.
//!
//! Contract:
//! - **order is the queue's**: every read and write carries `RWF_NOWAIT` on a non-blocking
//!   fd, so the kernel performs it inline during the submit, in submission order, or fails
//!   it with `EAGAIN`; nothing is ever parked waiting for the device (a parked read would
//!   take a later frame than the read submitted after it: reordering). Reads of one port go
//!   into consecutive buffers and are processed in that order; writes to one port complete
//!   in the order the forwarding step asked for them. A send that cannot go through the
//!   ring (software offload first: [`crate::port::RingPort::ring_tx_hdr`]) first waits for
//!   every queued write to finish, then goes through `Port::send`;
//! - **buffers**: two batches of [`BATCH`] buffers are registered with the ring (reads are
//!   `READ_FIXED`); a third, unregistered batch serves ports that read through
//!   `Port::recv_batch` (AF_PACKET: `recvmmsg` with control messages, already one call per
//!   batch). A write refers to the received frame in place (`WRITEV` of [vnet header,
//!   frame], the header in the write's own slot); a frame the switch generated (an answer,
//!   an announcement) is copied into the slot. A batch is not read into again before every
//!   write that refers to it has completed;
//! - **accounting**: completions are handed to the port backend, which counts and classifies
//!   them exactly as its synchronous calls do; the egress counters are updated when a write
//!   completes ([`forward::count_send`]); a write that finds the device gone reports the
//!   port gone like a synchronous send;
//! - **rounds**: the worker flushes (submits and waits for) every queued write at the end of
//!   each round and before any change to its port table, so no write outlives the fd it
//!   names.

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, types, IoUring, Probe};
use vip_table::PortId;

use crate::forward;
use crate::pipeline::Snapshot;
use crate::port::{Batch, Port, PortError, RingRx, VnetHdr, VNET_HDR_LEN};

use super::BATCH;

/// Batches: two registered, one plain.
pub(super) const NBUF: usize = 3;
/// The unregistered batch (ports reading through `Port::recv_batch`).
pub(super) const PLAIN: usize = 2;
/// Generated frames up to this size are copied into the write's slot.
const SMALL: usize = 256;
/// Writes in flight at most.
const SLOTS: usize = 1024;
/// Submission queue entries.
const ENTRIES: u32 = 512;
/// `user_data` of writes (slot index below).
const TX_TAG: u64 = 1 << 63;

/// One write in flight: its iovecs, its header and (for a generated frame) the frame.
struct TxSlot {
    iov: [libc::iovec; 2],
    hdr: [u8; VNET_HDR_LEN],
    small: [u8; SMALL],
    port: u32,
    len: u32,
    /// The batch whose buffer the write refers to; `NBUF`: none (copied).
    buf: u8,
}

impl TxSlot {
    fn empty() -> Self {
        TxSlot {
            iov: [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; 2],
            hdr: [0; VNET_HDR_LEN],
            small: [0; SMALL],
            port: 0,
            len: 0,
            buf: NBUF as u8,
        }
    }
}

/// Where the frame being forwarded lives: a batch and the bytes of its buffer, so a write
/// of that frame can refer to it instead of copying it.
#[derive(Clone, Copy)]
pub(super) struct RxFrame {
    pub batch: usize,
    pub start: *const u8,
    pub len: usize,
}

impl RxFrame {
    fn holds(&self, frame: &[u8]) -> bool {
        let p = frame.as_ptr() as usize;
        let s = self.start as usize;
        p >= s && p.saturating_add(frame.len()) <= s.saturating_add(self.len)
    }
}

/// The ring and its writes in flight (what the forwarding step's output uses).
pub(super) struct RingIo {
    ring: IoUring,
    slots: Box<[TxSlot]>,
    free: Vec<u16>,
    /// Writes in flight that refer to each batch.
    in_flight: [u32; NBUF],
    /// Results of the current read round, by buffer (`i32::MIN`: not completed yet).
    rx_res: [i32; BATCH],
    rx_pending: usize,
    /// Entries pushed and not yet submitted.
    queued: usize,
}

/// The engine: the ring, then the buffers (dropped after the ring, which holds them
/// registered).
pub(super) struct Uring {
    pub(super) io: RingIo,
    pub(super) bufs: [Batch; NBUF],
    /// Per port: reads to submit next time (grows while the port fills them, shrinks to
    /// what it had).
    want: Vec<u8>,
}

/// The worker's side a completion needs: the ports, the snapshot (counters), and where to
/// report a port whose device a write found gone.
pub(super) struct Ports<'a> {
    pub devs: &'a mut [Option<Box<dyn Port>>],
    pub snap: &'a Snapshot,
    pub gone: &'a mut Vec<PortId>,
}

fn check_opcodes(ring: &IoUring) -> Result<(), String> {
    let mut probe = Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| format!("IORING_REGISTER_PROBE: {e}"))?;
    for (code, name) in [
        (opcode::ReadFixed::CODE, "READ_FIXED"),
        (opcode::Writev::CODE, "WRITEV"),
    ] {
        if !probe.is_supported(code) {
            return Err(format!("the kernel's io_uring has no {name}"));
        }
    }
    Ok(())
}

// SAFETY: the raw pointers inside (the write slots' iovecs, registered buffer addresses)
// point into memory this value owns; nothing is submitted before the value reaches the
// worker thread, which is then its only user, and a ring has no affinity to the thread that
// created it (`IORING_SETUP_SINGLE_ISSUER` is not used).
unsafe impl Send for Uring {}

impl Uring {
    /// A ring with its buffers registered (the daemon builds it at start: this is the probe
    /// of `switch.io = "auto"`); an error says what the kernel refused.
    pub(super) fn new() -> Result<Uring, String> {
        let ring = IoUring::new(ENTRIES).map_err(|e| format!("io_uring_setup: {e}"))?;
        check_opcodes(&ring)?;
        let mut bufs = [Batch::new(BATCH), Batch::new(BATCH), Batch::new(BATCH)];
        let mut iovs = Vec::with_capacity(2 * BATCH);
        for b in bufs.iter_mut().take(2) {
            for buf in b.spare_mut() {
                let raw = buf.raw_mut();
                iovs.push(libc::iovec {
                    iov_base: raw.as_mut_ptr().cast(),
                    iov_len: raw.len(),
                });
            }
        }
        // SAFETY: every iovec names a live heap buffer of a `PacketBuf` in `bufs`; the
        // buffers are never reallocated (a `PacketBuf` keeps its box; the registered
        // batches are never compacted by swapping) and they are dropped after the ring
        // (field order of `Uring`), which unregisters them when it closes.
        unsafe { ring.submitter().register_buffers(&iovs) }
            .map_err(|e| format!("IORING_REGISTER_BUFFERS ({} KiB): {e}", iovs.len() * 65))?;
        let slots: Box<[TxSlot]> = (0..SLOTS).map(|_| TxSlot::empty()).collect();
        Ok(Uring {
            io: RingIo {
                ring,
                slots,
                free: (0..SLOTS as u16).rev().collect(),
                in_flight: [0; NBUF],
                rx_res: [i32::MIN; BATCH],
                rx_pending: 0,
                queued: 0,
            },
            bufs,
            want: Vec::new(),
        })
    }

    /// How many reads to submit for port `i`.
    pub(super) fn want(&mut self, i: usize) -> usize {
        if self.want.len() <= i {
            self.want.resize(i + 1, BATCH as u8);
        }
        usize::from(self.want[i]).clamp(1, BATCH)
    }

    /// Port `i` read `got` of `asked` frames: adapt the next round's reads.
    pub(super) fn got(&mut self, i: usize, asked: usize, got: usize) {
        if let Some(w) = self.want.get_mut(i) {
            let next = if got >= asked { asked * 2 } else { got + 4 };
            *w = next.clamp(4, BATCH) as u8;
        }
    }
}

impl RingIo {
    fn push(&mut self, sqe: &io_uring::squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every buffer and iovec an entry names stays valid until its completion
            // is reaped (registered batches, slots owned by `self`; see the module doc).
            if unsafe { self.ring.submission().push(sqe) }.is_ok() {
                self.queued += 1;
                return Ok(());
            }
            self.ring.submit()?;
            self.queued = 0;
        }
    }

    /// Handle every completion that is there.
    fn reap(&mut self, p: &mut Ports<'_>) {
        let mut done: [(u64, i32); 64] = [(0, 0); 64];
        loop {
            let mut n = 0;
            for cqe in self.ring.completion().take(done.len()) {
                done[n] = (cqe.user_data(), cqe.result());
                n += 1;
            }
            if n == 0 {
                return;
            }
            for &(ud, res) in &done[..n] {
                if ud & TX_TAG == 0 {
                    if let Some(r) = self.rx_res.get_mut(ud as usize) {
                        *r = res;
                        self.rx_pending = self.rx_pending.saturating_sub(1);
                    }
                    continue;
                }
                let idx = (ud & !TX_TAG) as usize;
                let Some(slot) = self.slots.get(idx) else {
                    continue;
                };
                let (port, len, buf) = (PortId(slot.port), slot.len as usize, slot.buf);
                if let Some(f) = self.in_flight.get_mut(usize::from(buf)) {
                    *f = f.saturating_sub(1);
                }
                self.free.push(idx as u16);
                let r = match p.devs.get_mut(port.index()) {
                    Some(Some(d)) => match d.ring() {
                        Some(rp) => rp.ring_tx_done(len, res),
                        None => continue,
                    },
                    _ => continue,
                };
                if let Err(e) = &r {
                    if e.is_gone() && !p.gone.contains(&port) {
                        p.gone.push(port);
                    }
                }
                forward::count_send(p.snap, port, len, &r);
            }
        }
    }

    /// Submit what is queued and wait until `done(self)` holds.
    fn wait_until(&mut self, p: &mut Ports<'_>, done: impl Fn(&RingIo) -> bool) {
        self.reap(p);
        while !done(self) {
            if let Err(e) = self.ring.submit_and_wait(1) {
                if e.raw_os_error() != Some(libc::EINTR) {
                    tracing::error!(error = %e, "io_uring_enter failed");
                    return;
                }
            }
            self.queued = 0;
            self.reap(p);
        }
    }

    /// Submit every queued write and wait for all writes in flight.
    pub(super) fn flush(&mut self, p: &mut Ports<'_>) {
        if self.queued == 0 && self.free.len() == SLOTS {
            return;
        }
        self.wait_until(p, |r| r.free.len() == SLOTS);
    }

    /// Wait until no write refers to batch `b` any more.
    pub(super) fn settle(&mut self, b: usize, p: &mut Ports<'_>) {
        if self.in_flight.get(b).is_some_and(|n| *n > 0) {
            self.wait_until(p, |r| r.in_flight.get(b).is_none_or(|n| *n == 0));
        }
    }

    /// Queue a write of `frame` (header `hdr`, if the port wants one) to `port` on `fd`.
    /// `rx`: the received frame being forwarded, which the write may refer to in place.
    /// False: not queued (too big to copy and not the received frame): send it synchronously
    /// after a [`flush`](Self::flush).
    pub(super) fn queue_write(
        &mut self,
        p: &mut Ports<'_>,
        port: PortId,
        fd: RawFd,
        frame: &[u8],
        hdr: Option<&VnetHdr>,
        rx: Option<RxFrame>,
    ) -> bool {
        let in_place = rx.filter(|r| r.holds(frame));
        if in_place.is_none() && frame.len() > SMALL {
            return false;
        }
        if self.free.is_empty() {
            self.wait_until(p, |r| !r.free.is_empty());
        }
        let Some(idx) = self.free.pop() else {
            return false;
        };
        let Some(slot) = self.slots.get_mut(usize::from(idx)) else {
            return false;
        };
        slot.port = port.0;
        slot.len = frame.len() as u32;
        let data: *const u8 = match in_place {
            Some(r) => {
                slot.buf = r.batch as u8;
                frame.as_ptr()
            }
            None => {
                slot.buf = NBUF as u8;
                slot.small[..frame.len()].copy_from_slice(frame);
                slot.small.as_ptr()
            }
        };
        let mut n = 0;
        if let Some(h) = hdr {
            slot.hdr = h.to_bytes();
            slot.iov[0] = libc::iovec {
                iov_base: slot.hdr.as_mut_ptr().cast(),
                iov_len: VNET_HDR_LEN,
            };
            n = 1;
        }
        slot.iov[n] = libc::iovec {
            iov_base: data.cast_mut().cast(),
            iov_len: frame.len(),
        };
        let sqe = opcode::Writev::new(types::Fd(fd), slot.iov.as_ptr(), (n + 1) as u32)
            .offset(u64::MAX)
            .rw_flags(libc::RWF_NOWAIT)
            .build()
            .user_data(TX_TAG | u64::from(idx));
        if let Some(f) = self.in_flight.get_mut(usize::from(slot.buf)) {
            *f += 1;
        }
        if let Err(e) = self.push(&sqe) {
            tracing::error!(error = %e, "io_uring submit failed");
        }
        true
    }

    /// Read up to `want` frames from `fd` into batch `b` (registered), at `off` in each
    /// buffer; returns the results, buffer by buffer, in order. Queued writes are submitted
    /// first, in the same call.
    pub(super) fn read(
        &mut self,
        p: &mut Ports<'_>,
        fd: RawFd,
        off: usize,
        b: usize,
        batch: &mut Batch,
        want: usize,
    ) -> [i32; BATCH] {
        self.settle(b, p);
        batch.clear();
        let want = want.min(BATCH);
        self.rx_res[..want].fill(i32::MIN);
        self.rx_pending = 0;
        for (k, buf) in batch.spare_mut().iter_mut().take(want).enumerate() {
            let raw = &mut buf.raw_mut()[off..];
            let sqe = opcode::ReadFixed::new(
                types::Fd(fd),
                raw.as_mut_ptr(),
                raw.len() as u32,
                (b * BATCH + k) as u16,
            )
            .offset(u64::MAX)
            .rw_flags(libc::RWF_NOWAIT)
            .build()
            .user_data(k as u64);
            if let Err(e) = self.push(&sqe) {
                tracing::error!(error = %e, "io_uring submit failed");
                break;
            }
            self.rx_pending += 1;
        }
        self.wait_until(p, |r| r.rx_pending == 0);
        self.rx_res
    }
}

impl Drop for RingIo {
    fn drop(&mut self) {
        // Writes in flight refer to the slots: let them finish before the memory goes.
        let mut guard = 0;
        while self.free.len() < SLOTS && guard < 1000 {
            guard += 1;
            if self.ring.submit_and_wait(1).is_err() {
                break;
            }
            for cqe in self.ring.completion() {
                if cqe.user_data() & TX_TAG != 0 {
                    self.free.push((cqe.user_data() & !TX_TAG) as u16);
                }
            }
        }
    }
}

/// Hand a read round's results (`res`, buffer by buffer) to the port backend: `ok[k]` says
/// whether buffer `k` holds a frame now; returns the first failure (the frames before it
/// are still delivered).
pub(super) fn classify(
    dev: &mut dyn Port,
    batch: &mut Batch,
    res: &[i32],
    ok: &mut [bool],
) -> Option<PortError> {
    let mut failed = None;
    let rp = dev.ring()?;
    for (k, (buf, r)) in batch.spare_mut().iter_mut().zip(res).enumerate() {
        let frame = match rp.ring_rx_done(buf, *r) {
            RingRx::Frame => true,
            RingRx::Dropped | RingRx::Empty => false,
            RingRx::Failed(e) => {
                if failed.is_none() {
                    failed = Some(e);
                }
                false
            }
        };
        if let Some(o) = ok.get_mut(k) {
            *o = frame;
        }
    }
    failed
}
