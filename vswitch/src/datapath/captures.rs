//! Port captures in the daemon: the control thread's table of running captures, and the
//! client's end of one ([`CaptureStream`]). The datapath hook and its bounded queue are
//! [`crate::capture`]; the records are [`crate::view::capture`].
//!
//! Protocol: [`ControlHandle::capture`](super::ControlHandle::capture) makes the capture's
//! queue ([`Sink`]) and sends it to the control thread (`ToControl::CaptureStart`), which
//! checks the port and the limit ([`MAX_CAPTURES`]), adds it to its table and publishes a
//! snapshot whose [`Snapshot::capture`] names it: from that snapshot on, every worker feeds
//! it. The table keeps one sending end of an end channel per capture: the control thread
//! tells the stream why it ended through it (a reload removed the port), and when the
//! control thread stops it disconnects (the switch stopped). Dropping the stream marks it
//! closed and tells the control thread (`ToControl::CaptureStop`; a closed capture is also
//! pruned at the next control-loop round, ≤ 200 ms): the next snapshot is without it, and
//! without any capture the snapshot's field is `None` again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use crossbeam_channel::{select, Receiver, Sender};
use vip_table::PortId;

use crate::capture::{RawDecision, RawFrame, Sink, Tap, Taps, MAX_CAPTURES, SNAPLEN};
use crate::control::Switch;
use crate::pipeline::{Snapshot, Verdict};
use crate::view::capture::{
    CaptureDir, CaptureEnd, CaptureEndReason, CaptureRecord, CaptureStarted, Decision,
};
use crate::view::CtlError;

use super::ToControl;

/// A capture as the control thread holds it.
struct Active {
    id: u64,
    port: String,
    dir: CaptureDir,
    sink: Arc<Sink>,
    /// Tells the stream why it ended; dropped with the table (the switch stopped).
    end: Sender<CaptureEndReason>,
    /// Set when the stream is dropped.
    closed: Arc<AtomicBool>,
}

/// What `ToControl::CaptureStart` carries.
pub(crate) struct CaptureRequest {
    pub port: String,
    pub dir: CaptureDir,
    pub sink: Arc<Sink>,
    pub end: Sender<CaptureEndReason>,
    pub closed: Arc<AtomicBool>,
    pub reply: Sender<Result<(u64, CaptureStarted), CtlError>>,
}

/// The control thread's running captures.
#[derive(Default)]
pub(super) struct Captures {
    next_id: u64,
    active: Vec<Active>,
    /// Changes with every start and stop (a snapshot must be published).
    version: u64,
    /// Frames lost by the captures that ended.
    lost_ended: u64,
}

impl Captures {
    /// Starts the capture `r` asks for; returns where to answer and the answer (sent
    /// once the snapshot with the capture is published).
    #[allow(clippy::type_complexity)]
    pub(super) fn start(
        &mut self,
        sw: &Switch,
        r: CaptureRequest,
    ) -> (
        Sender<Result<(u64, CaptureStarted), CtlError>>,
        Result<(u64, CaptureStarted), CtlError>,
    ) {
        let reply = r.reply;
        let answer = if sw.port_id(&r.port).is_none() {
            Err(CtlError::UnknownPort { name: r.port })
        } else if self.active.len() >= MAX_CAPTURES {
            Err(CtlError::TooManyCaptures {
                limit: MAX_CAPTURES,
            })
        } else {
            self.next_id += 1;
            self.version += 1;
            let id = self.next_id;
            let started = CaptureStarted {
                port: r.port.clone(),
                dir: r.dir,
                snaplen: SNAPLEN as u32,
            };
            tracing::info!(target: "vswitch::capture", event = "capture_started", port = %r.port, dir = r.dir.as_str(), id, "capture of port {} started ({})", r.port, r.dir.as_str());
            self.active.push(Active {
                id,
                port: r.port,
                dir: r.dir,
                sink: r.sink,
                end: r.end,
                closed: r.closed,
            });
            Ok((id, started))
        };
        (reply, answer)
    }

    /// Forgets capture `id` (its stream went away).
    pub(super) fn stop(&mut self, id: u64) {
        let before = self.active.len();
        let mut lost = 0;
        self.active.retain(|a| {
            if a.id == id {
                lost += a.sink.lost();
            }
            a.id != id
        });
        self.lost_ended += lost;
        if self.active.len() != before {
            self.version += 1;
            tracing::info!(target: "vswitch::capture", event = "capture_stopped", id, "capture stopped");
        }
    }

    /// Forgets the captures whose stream went away.
    pub(super) fn prune(&mut self) {
        let closed: Vec<u64> = self
            .active
            .iter()
            .filter(|a| a.closed.load(Ordering::Relaxed))
            .map(|a| a.id)
            .collect();
        for id in closed {
            self.stop(id);
        }
    }

    /// Captures running, and the frames every capture (running or ended) lost.
    pub(super) fn stats(&self) -> (usize, u64) {
        let running: u64 = self.active.iter().map(|a| a.sink.lost()).sum();
        (self.active.len(), self.lost_ended + running)
    }

    /// Changes with every start and stop.
    pub(super) fn version(&self) -> u64 {
        self.version
    }

    /// The taps of a snapshot of the switch's current layout. A capture whose port is gone
    /// (a reload removed it) ends here.
    pub(super) fn taps(&mut self, sw: &Switch) -> Option<Arc<Taps>> {
        if self.active.is_empty() {
            return None;
        }
        let before = self.active.len();
        self.active.retain(|a| {
            let here = sw.port_id(&a.port).is_some();
            if !here {
                let _ = a.end.try_send(CaptureEndReason::PortRemoved);
                self.lost_ended += a.sink.lost();
            }
            here
        });
        if self.active.len() != before {
            self.version += 1;
        }
        let taps = self
            .active
            .iter()
            .filter_map(|a| {
                sw.port_id(&a.port).map(|port| Tap {
                    port,
                    dir: a.dir,
                    sink: a.sink.clone(),
                })
            })
            .collect();
        Taps::new(sw.layout(), taps)
    }
}

/// What [`CaptureStream::next`] found.
#[derive(Debug)]
pub enum CaptureNext {
    /// A frame.
    Frame(CaptureRecord),
    /// Nothing within the wait.
    Idle,
    /// The capture is over (after every frame it had queued).
    End(CaptureEnd),
}

/// The client's end of a running capture: its frames as typed records. Dropping it stops
/// the capture.
pub struct CaptureStream {
    started: CaptureStarted,
    id: u64,
    frames: Receiver<RawFrame>,
    back: Sender<Vec<u8>>,
    sink: Arc<Sink>,
    end: Receiver<CaptureEndReason>,
    closed: Arc<AtomicBool>,
    ctl: Sender<ToControl>,
    /// Names the ports of a frame.
    snap: Arc<ArcSwap<Snapshot>>,
    count: Option<u64>,
    until: Option<Instant>,
    delivered: u64,
    /// Why it ends, once known (queued frames are still delivered).
    ended: Option<CaptureEndReason>,
    /// Unix time minus the daemon's clock (`CLOCK_MONOTONIC`), in ns.
    unix_offset: i128,
}

impl CaptureStream {
    /// Starts a capture (see the module doc); returns once the control thread has it in a
    /// published snapshot's taps.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start(
        ctl: &Sender<ToControl>,
        snap: &Arc<ArcSwap<Snapshot>>,
        port: &str,
        dir: CaptureDir,
        count: Option<u64>,
        duration: Option<Duration>,
    ) -> Result<CaptureStream, CtlError> {
        let (sink, frames, back) = Sink::new();
        let (end_tx, end) = crossbeam_channel::bounded(1);
        let closed = Arc::new(AtomicBool::new(false));
        let (reply, answer) = crossbeam_channel::bounded(1);
        ctl.send(ToControl::CaptureStart(CaptureRequest {
            port: port.to_string(),
            dir,
            sink: sink.clone(),
            end: end_tx,
            closed: closed.clone(),
            reply,
        }))
        .map_err(|_| CtlError::ShuttingDown)?;
        let (id, started) = answer
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| CtlError::NoAnswer)??;
        let unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        let unix_offset = unix - i128::from(super::monotonic_ns());
        Ok(CaptureStream {
            started,
            id,
            frames,
            back,
            sink,
            end,
            closed,
            ctl: ctl.clone(),
            snap: snap.clone(),
            count,
            until: duration.map(|d| Instant::now() + d),
            delivered: 0,
            ended: None,
            unix_offset,
        })
    }

    /// What the capture is of.
    pub fn started(&self) -> &CaptureStarted {
        &self.started
    }

    /// Frames the capture lost so far (its queue was full).
    pub fn lost(&self) -> u64 {
        self.sink.lost()
    }

    /// Frames delivered so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// The end record for `reason`.
    pub fn end_now(&self, reason: CaptureEndReason) -> CaptureEnd {
        CaptureEnd {
            captured: self.delivered,
            capture_lost: self.lost(),
            reason,
        }
    }

    /// The next frame, waiting at most `wait`.
    pub fn next(&mut self, wait: Duration) -> CaptureNext {
        if self.count.is_some_and(|c| self.delivered >= c) {
            return CaptureNext::End(self.end_now(CaptureEndReason::Count));
        }
        if let Some(reason) = self.ended {
            return match self.frames.try_recv() {
                Ok(f) => CaptureNext::Frame(self.record(f)),
                Err(_) => CaptureNext::End(self.end_now(reason)),
            };
        }
        let now = Instant::now();
        let mut deadline = now + wait;
        if let Some(u) = self.until {
            if u <= now {
                return CaptureNext::End(self.end_now(CaptureEndReason::Duration));
            }
            deadline = deadline.min(u);
        }
        let timeout = deadline.saturating_duration_since(now);
        select! {
            recv(self.frames) -> f => match f {
                Ok(f) => CaptureNext::Frame(self.record(f)),
                Err(_) => {
                    self.ended = Some(CaptureEndReason::SwitchStopped);
                    CaptureNext::End(self.end_now(CaptureEndReason::SwitchStopped))
                }
            },
            recv(self.end) -> r => {
                self.ended = Some(r.unwrap_or(CaptureEndReason::SwitchStopped));
                self.next(Duration::ZERO)
            },
            default(timeout) => {
                if self.until.is_some_and(|u| u <= Instant::now()) {
                    CaptureNext::End(self.end_now(CaptureEndReason::Duration))
                } else {
                    CaptureNext::Idle
                }
            }
        }
    }

    /// A queued frame as a record (its buffer goes back to the pool).
    fn record(&mut self, f: RawFrame) -> CaptureRecord {
        self.delivered += 1;
        let snap = self.snap.load();
        let name = |p: PortId| -> String {
            match snap.ports.get(p.index()) {
                Some(e) if snap.layout == f.layout => e.name.clone(),
                _ => format!("#{}", p.0),
            }
        };
        let decision = match f.decision {
            RawDecision::Tx => Decision::Tx,
            RawDecision::Rx(v) => match v {
                Verdict::Drop(reason) => Decision::Drop { reason },
                Verdict::Forward { port, rewrite_dst } => Decision::Forward {
                    port: name(port),
                    rewrite_dst,
                },
                Verdict::Flood => Decision::Flood,
                Verdict::Answered => Decision::Answered,
                Verdict::ToSwitch => Decision::ToSwitch,
                Verdict::ToRemote { host, mac, .. } => Decision::ToRemote {
                    host: snap
                        .overlay
                        .host(host)
                        .map_or_else(|| format!("#{}", host.0), |h| h.name.clone()),
                    rewrite_dst: mac,
                },
            },
        };
        let at = i128::from(f.at.as_nanos()) + self.unix_offset;
        let rec = CaptureRecord {
            at_unix_ns: u64::try_from(at).unwrap_or(0),
            port: name(f.port),
            dir: f.decision.direction(),
            decision,
            orig_len: f.orig_len,
            frame: f.data.clone(),
        };
        let _ = self.back.try_send(f.data);
        rec
    }
}

impl Drop for CaptureStream {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
        let _ = self.ctl.try_send(ToControl::CaptureStop { id: self.id });
    }
}
