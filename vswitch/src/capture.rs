//! Port capture at the switch: the datapath side. What a port received (with the switch's
//! decision about each frame) and what the switch sent out of it, copied into a bounded
//! queue for an operator's `vswitch ctl capture`. The records it turns into are the typed
//! ones of [`crate::view::capture`].
//!
//! Contract:
//! - the hook is in the forwarding step ([`crate::forward::step`] for received frames,
//!   [`crate::forward::send_counted`] for sent ones), so every worker and both engines feed
//!   it, and so do the golden replay and the fuzz target (with no capture: `None`);
//! - **off, it costs one check of a snapshot field** per received frame and per send:
//!   [`Snapshot::capture`](crate::pipeline::Snapshot::capture) is `None` unless a capture
//!   runs. The control thread publishes a snapshot with [`Taps`] when a capture starts and
//!   one without when the last one ends (the snapshot is the control → worker channel for
//!   this; see [`crate::datapath`]);
//! - **on, it is bounded**: a capture has [`QUEUE`] buffers. The worker takes a free one
//!   (`try_recv`), copies at most [`SNAPLEN`] bytes of the frame and its decision into it
//!   and queues it (`try_send`). With no free buffer the capture loses the frame (counted,
//!   [`Sink::lost`], reported as `capture_lost`); the datapath never waits and never loses
//!   a frame for a capture. The buffers are reused: a frame up to
//!   [`PREALLOCATED`] bytes costs no allocation, a larger one (GSO super-frames) grows its
//!   buffer once;
//! - the captured bytes of a received frame are the frame as received (before a VIP
//!   steering rewrite of its destination MAC, which the decision names); of a sent frame,
//!   as handed to the port;
//! - `drops` captures the frames received on the port that the pipeline dropped; a send
//!   that fails (`port_down`, `tx_error` on the egress port) is not a drop of the capture.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use vip_table::{PortId, Timestamp};

use crate::pipeline::Verdict;
use crate::view::capture::{CaptureDir, Direction};

/// Buffers (frames in flight) of one capture.
pub const QUEUE: usize = 1024;
/// Bytes kept of a frame at most.
pub const SNAPLEN: usize = 65535;
/// The capacity each buffer starts with.
pub const PREALLOCATED: usize = 2048;
/// Captures running at once.
pub const MAX_CAPTURES: usize = 4;

/// What the switch did with a captured frame, as the worker knows it (port ids; the
/// stream names them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawDecision {
    /// A received frame's verdict.
    Rx(Verdict),
    /// A frame sent out of the port.
    Tx,
}

impl RawDecision {
    /// Which way the frame went.
    pub fn direction(self) -> Direction {
        match self {
            RawDecision::Rx(_) => Direction::Rx,
            RawDecision::Tx => Direction::Tx,
        }
    }
}

/// A captured frame in the queue.
#[derive(Debug)]
pub struct RawFrame {
    /// When the step ran (the daemon's clock).
    pub at: Timestamp,
    /// The port layout the port ids are of.
    pub layout: u64,
    /// The captured port.
    pub port: PortId,
    /// What happened.
    pub decision: RawDecision,
    /// The frame's length.
    pub orig_len: u32,
    /// The first [`SNAPLEN`] bytes (a buffer of the capture's pool).
    pub data: Vec<u8>,
}

/// The shared end of one capture: the queue the workers fill and the free buffers.
#[derive(Debug)]
pub struct Sink {
    frames: Sender<RawFrame>,
    free: Receiver<Vec<u8>>,
    /// Frames lost (no free buffer, or the stream went away).
    lost: AtomicU64,
}

impl Sink {
    /// A capture's sink, the receiving end of its frames, and where used buffers go back.
    pub fn new() -> (Arc<Sink>, Receiver<RawFrame>, Sender<Vec<u8>>) {
        let (ftx, frx) = crossbeam_channel::bounded(QUEUE);
        let (btx, brx) = crossbeam_channel::bounded(QUEUE);
        for _ in 0..QUEUE {
            let _ = btx.try_send(Vec::with_capacity(PREALLOCATED));
        }
        let sink = Arc::new(Sink {
            frames: ftx,
            free: brx,
            lost: AtomicU64::new(0),
        });
        (sink, frx, btx)
    }

    /// Frames lost so far.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    #[inline]
    fn offer(&self, at: Timestamp, layout: u64, port: PortId, d: RawDecision, frame: &[u8]) {
        let Ok(mut data) = self.free.try_recv() else {
            self.lost.fetch_add(1, Ordering::Relaxed);
            return;
        };
        data.clear();
        data.extend_from_slice(frame.get(..SNAPLEN).unwrap_or(frame));
        let rec = RawFrame {
            at,
            layout,
            port,
            decision: d,
            orig_len: u32::try_from(frame.len()).unwrap_or(u32::MAX),
            data,
        };
        // never full (as many places as buffers); an error: the stream is gone
        if self.frames.try_send(rec).is_err() {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One capture as a snapshot carries it: the port (an id of the snapshot's layout), which
/// frames, and where they go.
#[derive(Clone, Debug)]
pub struct Tap {
    /// The captured port.
    pub port: PortId,
    /// Which frames.
    pub dir: CaptureDir,
    /// Where they go.
    pub sink: Arc<Sink>,
}

/// The captures running, as a snapshot carries them (never empty: no capture is `None`).
#[derive(Clone, Debug)]
pub struct Taps {
    layout: u64,
    taps: Vec<Tap>,
}

impl Taps {
    /// The captures of a snapshot of `layout`; `None` if there are none.
    pub fn new(layout: u64, taps: Vec<Tap>) -> Option<Arc<Taps>> {
        (!taps.is_empty()).then(|| Arc::new(Taps { layout, taps }))
    }

    /// A frame received on `port` that the pipeline decided `v` about.
    #[inline]
    pub fn rx(&self, port: PortId, frame: &[u8], v: &Verdict, at: Timestamp) {
        for t in &self.taps {
            let wants = match t.dir {
                CaptureDir::Rx | CaptureDir::Both => true,
                CaptureDir::Drops => matches!(v, Verdict::Drop(_)),
                CaptureDir::Tx => false,
            };
            if t.port == port && wants {
                t.sink
                    .offer(at, self.layout, port, RawDecision::Rx(*v), frame);
            }
        }
    }

    /// A frame sent out of `port`.
    #[inline]
    pub fn tx(&self, port: PortId, frame: &[u8], at: Timestamp) {
        for t in &self.taps {
            if t.port == port && matches!(t.dir, CaptureDir::Tx | CaptureDir::Both) {
                t.sink.offer(at, self.layout, port, RawDecision::Tx, frame);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::DropReason;

    #[test]
    fn a_full_capture_loses_frames_and_counts_them() {
        let (sink, rx, back) = Sink::new();
        let taps = Taps::new(
            1,
            vec![Tap {
                port: PortId(0),
                dir: CaptureDir::Drops,
                sink: sink.clone(),
            }],
        )
        .unwrap();
        let drop = Verdict::Drop(DropReason::ArpSpoof);
        let fwd = Verdict::Flood;
        // not dropped, or another port, or sent: not for a `drops` capture
        taps.rx(PortId(0), &[1; 60], &fwd, Timestamp(1));
        taps.rx(PortId(1), &[1; 60], &drop, Timestamp(1));
        taps.tx(PortId(0), &[1; 60], Timestamp(1));
        assert!(rx.is_empty());
        for _ in 0..QUEUE + 5 {
            taps.rx(PortId(0), &[2; 60], &drop, Timestamp(2));
        }
        assert_eq!(rx.len(), QUEUE);
        assert_eq!(sink.lost(), 5);
        // a buffer handed back makes room for one more
        let f = rx.recv().unwrap();
        assert_eq!(
            (f.port, f.decision, f.orig_len, f.data.len()),
            (PortId(0), RawDecision::Rx(drop), 60, 60)
        );
        back.send(f.data).unwrap();
        taps.rx(PortId(0), &vec![3; SNAPLEN + 10], &drop, Timestamp(3));
        assert_eq!(sink.lost(), 5);
        let last = rx.try_iter().last().unwrap();
        assert_eq!(
            (last.orig_len as usize, last.data.len()),
            (SNAPLEN + 10, SNAPLEN)
        );
    }
}
