//! Per-port counters: frames and bytes in and out, and drops by reason.
//!
//! Contract: counters are relaxed atomics written by the datapath (never by the pure
//! pipeline) and read by `show stats` and the metrics endpoint; they only go up. Across a
//! reload a port keeps its counters if it keeps its name.
//!
//! Dependencies: only the verdict vocabulary ([`crate::verdict`]), not the pipeline (which
//! holds the counters in its snapshot). [`PortCounters::verdict`] therefore takes the one
//! fact it needs from the pipeline's `Effects` — whether the frame went to an unowned VIP's
//! candidate — as a `bool` rather than the effects themselves.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::verdict::{DropReason, Verdict};

/// Counters of one port.
#[derive(Debug, Default)]
pub struct PortCounters {
    /// Frames received from the port.
    pub rx_frames: AtomicU64,
    /// Bytes received from the port.
    pub rx_bytes: AtomicU64,
    /// Frames sent to the port.
    pub tx_frames: AtomicU64,
    /// Bytes sent to the port.
    pub tx_bytes: AtomicU64,
    /// Frames the switch answered itself (ARP/NS for VIPs) on this port.
    pub answered: AtomicU64,
    /// Frames from this port to a VIP without an owner, delivered to the candidate their
    /// destination MAC names (see [`crate::pipeline::Effects::vip_no_owner`]).
    pub vip_no_owner: AtomicU64,
    /// Frames from this port addressed to the switch itself (owner-discovery answers).
    pub to_switch: AtomicU64,
    /// Frames from this port to a VIP owned on another host ([`Verdict::ToRemote`]).
    pub to_remote: AtomicU64,
    /// Of those, frames no tunnel carried (the overlay is not there yet, or has no path to
    /// that host).
    pub remote_no_tunnel: AtomicU64,
    drops: [AtomicU64; DropReason::COUNT],
}

/// A plain copy of a port's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CounterValues {
    /// Frames received.
    pub rx_frames: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames sent.
    pub tx_frames: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// ARP/NS answered by the switch.
    pub answered: u64,
    /// Delivered to a candidate of an unowned VIP.
    pub vip_no_owner: u64,
    /// Addressed to the switch (discovery answers).
    pub to_switch: u64,
    /// To a VIP owned on another host (left out of the JSON while zero).
    #[serde(skip_serializing_if = "is_zero")]
    pub to_remote: u64,
    /// To a VIP owned on another host, not carried by a tunnel (left out while zero).
    #[serde(skip_serializing_if = "is_zero")]
    pub remote_no_tunnel: u64,
    /// Drops by reason name (all reasons, zeros included).
    pub drops: Vec<(String, u64)>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl CounterValues {
    /// The count for one reason.
    pub fn drop_count(&self, r: DropReason) -> u64 {
        self.drops
            .iter()
            .find(|(n, _)| n == r.as_str())
            .map_or(0, |(_, v)| *v)
    }
}

impl PortCounters {
    /// Count a received frame.
    #[inline]
    pub fn rx(&self, len: usize) {
        self.rx_frames.fetch_add(1, Ordering::Relaxed);
        self.rx_bytes.fetch_add(len as u64, Ordering::Relaxed);
    }
    /// Count a sent frame.
    #[inline]
    pub fn tx(&self, len: usize) {
        self.tx_frames.fetch_add(1, Ordering::Relaxed);
        self.tx_bytes.fetch_add(len as u64, Ordering::Relaxed);
    }
    /// Count a drop.
    #[inline]
    pub fn count_drop(&self, r: DropReason) {
        self.drops[r as usize].fetch_add(1, Ordering::Relaxed);
    }
    /// Count what a verdict says about the ingress side (drops, answers, frames to the
    /// switch) and, for a forward or flood, a delivery to an unowned VIP's candidate
    /// (`vip_no_owner`: [`crate::pipeline::Effects::vip_no_owner`] of the same frame).
    #[inline]
    pub fn verdict(&self, v: &Verdict, vip_no_owner: bool) {
        match v {
            Verdict::Drop(r) => self.count_drop(*r),
            Verdict::Answered => {
                self.answered.fetch_add(1, Ordering::Relaxed);
            }
            Verdict::ToSwitch => {
                self.to_switch.fetch_add(1, Ordering::Relaxed);
            }
            Verdict::ToRemote { .. } => {
                self.to_remote.fetch_add(1, Ordering::Relaxed);
            }
            Verdict::Forward { .. } | Verdict::Flood => {
                if vip_no_owner {
                    self.vip_no_owner.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    /// The drop count for one reason.
    pub fn drops(&self, r: DropReason) -> u64 {
        self.drops[r as usize].load(Ordering::Relaxed)
    }
    /// A copy of all values.
    pub fn values(&self) -> CounterValues {
        CounterValues {
            rx_frames: self.rx_frames.load(Ordering::Relaxed),
            rx_bytes: self.rx_bytes.load(Ordering::Relaxed),
            tx_frames: self.tx_frames.load(Ordering::Relaxed),
            tx_bytes: self.tx_bytes.load(Ordering::Relaxed),
            answered: self.answered.load(Ordering::Relaxed),
            vip_no_owner: self.vip_no_owner.load(Ordering::Relaxed),
            to_switch: self.to_switch.load(Ordering::Relaxed),
            to_remote: self.to_remote.load(Ordering::Relaxed),
            remote_no_tunnel: self.remote_no_tunnel.load(Ordering::Relaxed),
            drops: DropReason::ALL
                .iter()
                .map(|r| (r.as_str().to_string(), self.drops(*r)))
                .collect(),
        }
    }
}
