//! Overlay counters: per remote host (VTEP) frames and bytes each way and drops by reason,
//! plus what was refused before any host was known (a datagram from an address that is no
//! live host's VTEP).
//!
//! Contract: relaxed atomics written by the datapath ([`crate::forward`]), read by the
//! metrics exposition; they only go up. A host's counters live in the switch by host id
//! and survive the host leaving and coming back.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::verdict::DropReason;

/// Counters of one remote host.
#[derive(Debug, Default)]
pub struct VtepCounters {
    /// Inner frames sent to the host (one per VXLAN datagram).
    pub tx_frames: AtomicU64,
    /// Inner bytes sent.
    pub tx_bytes: AtomicU64,
    /// Sends the socket refused.
    pub tx_errors: AtomicU64,
    /// Inner frames received from the host (one per VXLAN datagram, also when joined).
    pub rx_frames: AtomicU64,
    /// Inner bytes received (a joined super-frame's headers once).
    pub rx_bytes: AtomicU64,
    /// Datagrams that receive coalescing joined into a super-frame with others.
    pub rx_coalesced: AtomicU64,
    drops: [AtomicU64; DropReason::COUNT],
}

/// A plain copy of [`VtepCounters`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VtepValues {
    /// Frames sent.
    pub tx_frames: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Sends refused.
    pub tx_errors: u64,
    /// Frames received.
    pub rx_frames: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Datagrams joined into super-frames.
    pub rx_coalesced: u64,
    /// Received frames dropped, by reason (non-zero ones only).
    pub drops: Vec<(DropReason, u64)>,
}

impl VtepCounters {
    /// Count a sent frame.
    #[inline]
    pub fn tx(&self, bytes: usize) {
        self.tx_frames.fetch_add(1, Ordering::Relaxed);
        self.tx_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }
    /// Count a received frame.
    #[inline]
    pub fn rx(&self, bytes: usize) {
        self.rx_frames.fetch_add(1, Ordering::Relaxed);
        self.rx_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }
    /// Count a super-frame that receive coalescing joined from `segments` datagrams.
    #[inline]
    pub fn rx_joined(&self, segments: usize, bytes: usize) {
        self.rx_frames.fetch_add(segments as u64, Ordering::Relaxed);
        self.rx_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.rx_coalesced
            .fetch_add(segments as u64, Ordering::Relaxed);
    }
    /// Count a dropped received frame.
    #[inline]
    pub fn count_drop(&self, r: DropReason) {
        if let Some(c) = self.drops.get(r as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
    /// Drops of one reason.
    pub fn drop_count(&self, r: DropReason) -> u64 {
        self.drops
            .get(r as usize)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
    /// A copy.
    pub fn values(&self) -> VtepValues {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        VtepValues {
            tx_frames: l(&self.tx_frames),
            tx_bytes: l(&self.tx_bytes),
            tx_errors: l(&self.tx_errors),
            rx_frames: l(&self.rx_frames),
            rx_bytes: l(&self.rx_bytes),
            rx_coalesced: l(&self.rx_coalesced),
            drops: DropReason::ALL
                .iter()
                .map(|r| (*r, self.drop_count(*r)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        }
    }
}

/// Counters of datagrams no host can be blamed for.
#[derive(Debug, Default)]
pub struct OverlayCounters {
    /// From an address that is not the VTEP of a live host.
    pub unknown_vtep: AtomicU64,
    /// Not a VXLAN packet the switch accepts (short, no I flag, inner frame too short).
    pub malformed: AtomicU64,
}
