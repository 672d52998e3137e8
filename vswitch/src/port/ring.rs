//! What a port backend offers an io_uring worker (`datapath::uring`): the fd, where a read
//! puts its bytes in a [`PacketBuf`], and how a completed read or write is accounted.
//!
//! Contract:
//! - the worker submits plain reads (`READ_FIXED`, into its registered buffers) and
//!   `WRITEV`s of [vnet header, frame] on [`RingPort::ring_fd`], all with `RWF_NOWAIT`:
//!   an operation never waits for the device, it completes inline, in submission order, or
//!   fails with `EAGAIN`. So the frames of one port are read and written in the order of
//!   the queue, exactly as the synchronous calls do;
//! - the backend interprets every completion: [`RingPort::ring_rx_done`] /
//!   [`RingPort::ring_tx_done`] count into the port's [`IoCounters`](super::IoCounters) and
//!   classify errors exactly as [`Port::recv_batch`](super::Port::recv_batch) and
//!   [`Port::send`](super::Port::send) do (a vanished device is [`PortError::Gone`]);
//! - a frame that needs software offload before it can be written (a port without vnet
//!   headers, a GSO or partial-checksum frame) is not a ring write:
//!   [`RingPort::ring_tx_hdr`] answers `None` and the worker uses `Port::send`, after the
//!   writes it queued for the port are done, so order is kept.

use std::os::fd::RawFd;

use super::{PacketBuf, PortError, VnetHdr};

/// The outcome of one ring read.
#[derive(Debug)]
pub enum RingRx {
    /// A frame is in the buffer (length and vnet header set).
    Frame,
    /// The kernel handed over something that is not a frame; counted, skipped.
    Dropped,
    /// Nothing was pending (`EAGAIN`).
    Empty,
    /// The read failed; `Gone` when the device vanished.
    Failed(PortError),
}

/// A port backend that an io_uring worker can drive directly.
pub trait RingPort {
    /// The fd reads and writes go to.
    fn ring_fd(&self) -> RawFd;
    /// Where in [`PacketBuf`]'s storage (header room + frame room) a ring read puts its
    /// bytes: 0 when reads carry a vnet header, the header room's length otherwise. `None`:
    /// this port receives through `Port::recv_batch` (it needs control messages).
    fn ring_rx_offset(&self) -> Option<usize>;
    /// A ring read into `buf` (at [`ring_rx_offset`](Self::ring_rx_offset)) completed with
    /// `res` (bytes, or `-errno`): set the frame's length and header, count.
    fn ring_rx_done(&mut self, buf: &mut PacketBuf, res: i32) -> RingRx;
    /// How a frame with header `vnet` is written through the ring: `Some(true)` preceded by
    /// its vnet header, `Some(false)` as it is; `None`: not through the ring (software
    /// offload first, or the device is gone), use `Port::send`.
    fn ring_tx_hdr(&self, vnet: &VnetHdr) -> Option<bool>;
    /// A ring write of a `len`-byte frame completed with `res` (bytes, or `-errno`).
    fn ring_tx_done(&mut self, len: usize, res: i32) -> Result<(), PortError>;
}

/// The error of a failed completion.
pub(crate) fn errno_error(res: i32) -> std::io::Error {
    std::io::Error::from_raw_os_error(res.saturating_neg())
}

/// [`RingPort::ring_tx_hdr`] for a backend that writes [vnet header, frame] when it has vnet
/// headers (`vnet_hdr`), and the bare frame otherwise, which only a complete frame (no GSO,
/// no partial checksum) can be; nothing through the ring once the device is `gone`.
pub(crate) fn tx_hdr(gone: bool, vnet_hdr: bool, vnet: &VnetHdr) -> Option<bool> {
    if gone {
        None
    } else if vnet_hdr {
        Some(true)
    } else if vnet.is_gso() || vnet.needs_csum() {
        None
    } else {
        Some(false)
    }
}
