//! Port I/O backends behind one batch-oriented trait.
//!
//! A [`Port`] moves Ethernet frames, each with its virtio-net offload metadata
//! ([`VnetHdr`]), between the switch and one device:
//!
//! - [`TapPort`]: a tap the switch opens itself (`/dev/net/tun`, `IFF_VNET_HDR`, offloads on).
//! - [`PacketPort`]: an AF_PACKET socket on an existing interface — the host side of a tap
//!   whose fd QEMU holds, or a veth — with `PACKET_VNET_HDR`.
//! - [`MemoryPort`]: in-memory queues for tests, pollable through an eventfd.
//!
//! # Contract
//!
//! - Receiving is batched: [`Port::recv_batch`] clears the [`Batch`] and fills it with up to
//!   its capacity of frames without blocking. Buffers are allocated once with the batch and
//!   reused; nothing on the receive or transmit path of the kernel-backed ports allocates.
//! - Offloads pass through: a port that carries vnet headers ([`Offloads::vnet_hdr`]) hands
//!   out partial-checksum and GSO super-frames (up to 64 KiB) exactly as the kernel gave them
//!   and accepts them on [`Port::send`]. A port without vnet headers completes checksums and
//!   segments GSO frames in software before sending ([`vnet`]).
//! - A port whose device vanished reports [`PortError::Gone`] from `recv_batch`/`send`
//!   (and `false` from [`Port::is_present`]); the datapath must take it down. A dead device
//!   is detected from the fd itself, never from link events in the switch's own network
//!   namespace: a tap whose netdev was moved into another namespace keeps working.
//! - [`Port::raw_fd`] becomes readable (or reports an error condition) when frames are
//!   pending or the device vanished; register it with epoll/mio for readability.
//! - Every port is one queue. Multi-queue taps (`IFF_MULTI_QUEUE`, see
//!   [`TapOptions::multi_queue`]) are several `TapPort`s on the same device, one per worker.

use std::os::fd::RawFd;

use thiserror::Error;

pub mod af_packet;
pub mod factory;
pub mod memory;
pub mod ring;
pub(crate) mod sys;
pub mod tap;
pub mod vnet;

pub use af_packet::{Fanout, PacketOptions, PacketPort};
pub use factory::{MemoryPorts, OsPorts, PortFactory};
pub use memory::{MemoryPort, MemoryPortHandle};
pub use ring::{RingPort, RingRx};
pub use tap::{TapOptions, TapPort};
pub use vnet::{
    OffloadError, SoftwareOffload, VnetHdr, GSO_ECN, GSO_NONE, GSO_TCPV4, GSO_TCPV6, GSO_UDP,
    GSO_UDP_L4, VNET_HDR_F_DATA_VALID, VNET_HDR_F_NEEDS_CSUM, VNET_HDR_LEN,
};

/// Largest Ethernet frame a [`PacketBuf`] holds: a GSO super-frame (at most 65 536 bytes
/// from the IP header on, the kernel's default `gso_max_size`) plus the Ethernet header and
/// two VLAN tags.
pub const MAX_FRAME_LEN: usize = 65_536 + 14 + 8;

/// Default number of buffers in a receive batch.
pub const DEFAULT_BATCH: usize = 64;

/// One received or to-be-sent frame: Ethernet bytes plus offload metadata, in a buffer of
/// fixed capacity ([`MAX_FRAME_LEN`]) allocated once and reused.
///
/// The storage keeps [`VNET_HDR_LEN`] bytes in front of the frame, so backends read and
/// write "vnet header + frame" with one system call and no copy.
pub struct PacketBuf {
    /// `VNET_HDR_LEN` bytes of header room followed by `MAX_FRAME_LEN` bytes of frame room.
    data: Box<[u8]>,
    len: usize,
    vnet: VnetHdr,
}

impl std::fmt::Debug for PacketBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketBuf")
            .field("len", &self.len)
            .field("vnet", &self.vnet)
            .finish_non_exhaustive()
    }
}

impl Default for PacketBuf {
    fn default() -> Self {
        Self::new()
    }
}

/// A zeroed buffer of `len` bytes whose pages are all written now. `vec![0; len]` would get
/// untouched pages from calloc, which become resident only when a frame first reaches them:
/// the process's RSS then steps up by up to a whole batch (64 × 64 KiB) at a random moment,
/// the first time TSO super-frames arrive, which looks like a leak and hides a real one.
/// The zero goes through `black_box` so the compiler cannot turn the fill back into calloc.
pub fn resident_zeroed(len: usize) -> Box<[u8]> {
    let mut v = Vec::with_capacity(len);
    v.resize(len, std::hint::black_box(0u8));
    v.into_boxed_slice()
}

/// A frame did not fit a [`PacketBuf`].
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[error("frame of {len} bytes exceeds the {MAX_FRAME_LEN}-byte buffer")]
pub struct FrameTooLarge {
    /// Length of the refused frame.
    pub len: usize,
}

impl PacketBuf {
    /// An empty buffer of capacity [`MAX_FRAME_LEN`].
    ///
    /// Every page of the buffer is written now (see [`resident_zeroed`]), so a batch's
    /// memory is resident from the start instead of growing in steps the first time
    /// 64 KiB super-frames land in it.
    pub fn new() -> Self {
        Self {
            data: resident_zeroed(VNET_HDR_LEN + MAX_FRAME_LEN),
            len: 0,
            vnet: VnetHdr::default(),
        }
    }

    /// Capacity for frame bytes ([`MAX_FRAME_LEN`]).
    pub fn capacity(&self) -> usize {
        self.data.len() - VNET_HDR_LEN
    }

    /// The frame (Ethernet header first).
    pub fn frame(&self) -> &[u8] {
        &self.data[VNET_HDR_LEN..VNET_HDR_LEN + self.len]
    }

    /// The frame, mutable (same length).
    pub fn frame_mut(&mut self) -> &mut [u8] {
        &mut self.data[VNET_HDR_LEN..VNET_HDR_LEN + self.len]
    }

    /// The whole frame area (capacity bytes) to write a frame into before [`set_len`](Self::set_len).
    pub fn frame_area_mut(&mut self) -> &mut [u8] {
        &mut self.data[VNET_HDR_LEN..]
    }

    /// Frame length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the frame is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets the frame length.
    ///
    /// # Panics
    /// If `len` exceeds the capacity (a bug in the caller).
    pub fn set_len(&mut self, len: usize) {
        assert!(len <= self.capacity(), "PacketBuf::set_len beyond capacity");
        self.len = len;
    }

    /// The frame's offload metadata.
    pub fn vnet(&self) -> VnetHdr {
        self.vnet
    }

    /// Replaces the frame's offload metadata.
    pub fn set_vnet(&mut self, vnet: VnetHdr) {
        self.vnet = vnet;
    }

    /// Copies `frame` in and sets its metadata.
    pub fn copy_from(&mut self, frame: &[u8], vnet: VnetHdr) -> Result<(), FrameTooLarge> {
        let area = self.frame_area_mut();
        let Some(dst) = area.get_mut(..frame.len()) else {
            return Err(FrameTooLarge { len: frame.len() });
        };
        dst.copy_from_slice(frame);
        self.len = frame.len();
        self.vnet = vnet;
        Ok(())
    }

    /// Header room + frame area, for a backend reading "vnet header + frame" in one call.
    pub(crate) fn raw_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }
}

/// A fixed set of reusable [`PacketBuf`]s; the first [`len`](Self::len) hold frames.
#[derive(Debug)]
pub struct Batch {
    bufs: Vec<PacketBuf>,
    len: usize,
}

impl Batch {
    /// A batch of `cap` buffers (at least one), allocated now and reused forever after.
    pub fn new(cap: usize) -> Self {
        Self {
            bufs: (0..cap.max(1)).map(|_| PacketBuf::new()).collect(),
            len: 0,
        }
    }

    /// How many frames the batch can hold.
    pub fn capacity(&self) -> usize {
        self.bufs.len()
    }

    /// How many frames it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no frames.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether every buffer holds a frame.
    pub fn is_full(&self) -> bool {
        self.len == self.bufs.len()
    }

    /// Forgets all frames (buffers are kept).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The `i`-th frame, if `i < len()`.
    pub fn get(&self, i: usize) -> Option<&PacketBuf> {
        self.bufs[..self.len].get(i)
    }

    /// The `i`-th frame, mutable, if `i < len()`.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut PacketBuf> {
        self.bufs[..self.len].get_mut(i)
    }

    /// The frames.
    pub fn as_slice(&self) -> &[PacketBuf] {
        &self.bufs[..self.len]
    }

    /// Iterates over the frames.
    pub fn iter(&self) -> std::slice::Iter<'_, PacketBuf> {
        self.as_slice().iter()
    }

    /// Iterates mutably over the frames.
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, PacketBuf> {
        self.bufs[..self.len].iter_mut()
    }

    /// Appends a copy of `frame`; `Ok(false)` when the batch is full.
    pub fn push(&mut self, frame: &[u8], vnet: VnetHdr) -> Result<bool, FrameTooLarge> {
        let Some(buf) = self.bufs.get_mut(self.len) else {
            return Ok(false);
        };
        buf.copy_from(frame, vnet)?;
        self.len += 1;
        Ok(true)
    }

    /// The unused buffers after the frames, for a backend to fill before [`commit`](Self::commit).
    pub fn spare_mut(&mut self) -> &mut [PacketBuf] {
        &mut self.bufs[self.len..]
    }

    /// Marks the first `n` spare buffers as holding frames.
    ///
    /// # Panics
    /// If there are fewer than `n` spare buffers.
    pub fn commit(&mut self, n: usize) {
        assert!(
            self.len + n <= self.bufs.len(),
            "Batch::commit beyond capacity"
        );
        self.len += n;
    }

    /// Swaps two spare buffers (indices relative to [`spare_mut`](Self::spare_mut)); lets a
    /// backend compact filled buffers to the front after a multi-message receive.
    pub(crate) fn swap_spare(&mut self, a: usize, b: usize) {
        self.bufs[self.len..].swap(a, b);
    }
}

impl std::ops::Index<usize> for Batch {
    type Output = PacketBuf;

    fn index(&self, i: usize) -> &PacketBuf {
        &self.as_slice()[i]
    }
}

impl<'a> IntoIterator for &'a Batch {
    type Item = &'a PacketBuf;
    type IntoIter = std::slice::Iter<'a, PacketBuf>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// What a port does with offload metadata.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offloads {
    /// Frames carry a virtio-net header both ways: partial checksums and GSO super-frames
    /// pass through untouched. Without it the port completes/segments in software on send.
    pub vnet_hdr: bool,
    /// The device may hand this port frames with a partial checksum (`NEEDS_CSUM`).
    pub rx_partial_csum: bool,
    /// The device may hand this port TCP GSO super-frames.
    pub rx_gso: bool,
}

impl Offloads {
    /// No vnet header: plain, complete frames both ways.
    pub const NONE: Self = Self {
        vnet_hdr: false,
        rx_partial_csum: false,
        rx_gso: false,
    };
    /// Vnet header with checksum and TCP segmentation offload both ways.
    pub const FULL: Self = Self {
        vnet_hdr: true,
        rx_partial_csum: true,
        rx_gso: true,
    };
}

/// I/O counters of one port backend: what crossed the fd, and what the backend itself
/// dropped (plain increments, no atomics: a port belongs to one worker). The datapath's
/// shared per-port counters (forwarding drops by reason, ...) live in `crate::counters`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoCounters {
    /// Frames received and handed out in batches.
    pub rx_frames: u64,
    /// Bytes of those frames (without vnet headers).
    pub rx_bytes: u64,
    /// Received GSO super-frames.
    pub rx_gso: u64,
    /// Received frames with a partial checksum.
    pub rx_needs_csum: u64,
    /// Received frames discarded: truncated, shorter than a vnet header, or refused by the
    /// kernel while being read (e.g. an skb the kernel cannot describe in a vnet header).
    pub rx_dropped: u64,
    /// AF_PACKET only: frames read back that the port itself had sent (`PACKET_OUTGOING`),
    /// discarded. Stays 0 when `PACKET_IGNORE_OUTGOING` works.
    pub rx_outgoing_skipped: u64,
    /// Frames written to the device (after software segmentation, if any).
    pub tx_frames: u64,
    /// Bytes written (without vnet headers).
    pub tx_bytes: u64,
    /// Frames produced by software segmentation (subset of `tx_frames`).
    pub tx_segments: u64,
    /// Frames handed to `send` and dropped: software offload refused them, the kernel
    /// rejected them, or the device queue was full.
    pub tx_dropped: u64,
}

/// A port I/O failure.
#[derive(Debug, Error)]
pub enum PortError {
    /// Opening or configuring the port failed; the message names the step.
    #[error("port `{port}`: {step} failed: {source}")]
    Setup {
        /// Interface name.
        port: String,
        /// What was being done ("open /dev/net/tun", "TUNSETIFF", ...).
        step: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The interface name is not usable (empty, longer than 15 bytes, or containing `/`,
    /// whitespace or NUL).
    #[error("interface name `{0}` is invalid: 1 to 15 bytes, no '/', whitespace or NUL")]
    InvalidName(String),
    /// The device vanished; the port is dead and must go down. `errno` is the error that
    /// revealed it (0 when detected otherwise).
    #[error("the device vanished (errno {errno})")]
    Gone {
        /// The OS error number that revealed the loss.
        errno: i32,
    },
    /// The link is administratively down; the frame was not sent. The port is not dead.
    #[error("the link is down")]
    LinkDown,
    /// The device or socket queue is full; the frame was not sent.
    #[error("the transmit queue is full")]
    WouldBlock,
    /// The frame could not be prepared for a port without vnet headers; it was dropped.
    #[error("frame dropped: {0}")]
    Offload(#[from] OffloadError),
    /// The kernel refused this one frame (e.g. too big for the MTU, bad vnet header); the
    /// port is fine.
    #[error("frame rejected by the kernel: {0}")]
    Rejected(#[source] std::io::Error),
    /// Any other I/O error.
    #[error("I/O error: {0}")]
    Io(#[source] std::io::Error),
}

impl PortError {
    /// Whether the error concerns one frame only (dropped, port still usable).
    pub fn is_frame_drop(&self) -> bool {
        matches!(
            self,
            Self::Offload(_) | Self::Rejected(_) | Self::WouldBlock | Self::LinkDown
        )
    }

    /// Whether the port is dead.
    pub fn is_gone(&self) -> bool {
        matches!(self, Self::Gone { .. })
    }
}

/// One queue of one device, as the datapath sees it.
pub trait Port: Send {
    /// The interface name the port was opened on.
    fn name(&self) -> &str;

    /// An fd that polls readable when frames are pending, and readable or in error when
    /// the device vanished; for epoll/mio registration (readable interest; treat error
    /// readiness like readable). Owned by the port. After [`PortError::Gone`], deregister it:
    /// a dead tap or packet socket stays readable/in error forever.
    fn raw_fd(&self) -> RawFd;

    /// Whether frames carry vnet headers, and which offloads the device may hand out.
    fn offloads(&self) -> Offloads;

    /// Clears `batch` and reads up to its capacity of frames without blocking.
    /// `Ok(0)`: nothing pending. `Err(PortError::Gone)`: the device disappeared.
    fn recv_batch(&mut self, batch: &mut Batch) -> Result<usize, PortError>;

    /// Sends one frame with its offload metadata, without blocking. A port without vnet
    /// headers completes the checksum / segments a GSO frame in software first.
    fn send(&mut self, frame: &[u8], vnet: &VnetHdr) -> Result<(), PortError>;

    /// Sends every frame of `batch`. Frames hit by a per-frame error
    /// ([`PortError::is_frame_drop`]) are skipped (and counted); any other error stops the
    /// batch. Returns how many frames were sent.
    fn send_batch(&mut self, batch: &Batch) -> Result<usize, PortError> {
        let mut sent = 0;
        for buf in batch {
            match self.send(buf.frame(), &buf.vnet()) {
                Ok(()) => sent += 1,
                Err(e) if e.is_frame_drop() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(sent)
    }

    /// Whether the device still exists (cheap: one system call at most). Call it
    /// periodically (e.g. once a second) for every port: an AF_PACKET port whose interface
    /// was deleted right after (or while) its link went down gets no wake-up and no error
    /// for the deletion (see [`af_packet`]). Taps signal deletion on the fd by themselves.
    fn is_present(&self) -> bool {
        true
    }

    /// The kernel reported the link down while the device still existed: a deletion may
    /// follow without any wake-up, so the datapath re-checks [`Port::is_present`] often
    /// (every few ms) for a while rather than once a second. Default: never.
    fn link_down_reported(&self) -> bool {
        false
    }

    /// The backend's I/O counters.
    fn io_counters(&self) -> IoCounters;

    /// A second handle on the same queue for sending only (a dup of the fd), for a worker
    /// that has no queue of its own on this device; it must never be read from. `None`:
    /// the backend cannot.
    fn clone_tx(&self) -> Option<Box<dyn Port>> {
        None
    }

    /// The backend's io_uring side, if it has one (see [`ring`]). Default: none, the
    /// io_uring worker then uses `recv_batch` and `send` for this port.
    fn ring(&mut self) -> Option<&mut dyn RingPort> {
        None
    }
}

/// The transmit side that the tap and AF_PACKET backends share: a raw write of one frame
/// (with a vnet header, or none when the frame is already complete) and the state the
/// software-offload fallback needs.
pub(crate) trait RawTx {
    /// Write one frame, preceded by `hdr` (a vnet header, or empty).
    fn write_raw(&mut self, hdr: &[u8], frame: &[u8]) -> Result<(), PortError>;
    /// What the software-offload fallback needs from the port.
    fn tx_state(&mut self) -> TxState<'_>;
}

/// A [`RawTx`] backend's transmit state.
pub(crate) struct TxState<'a> {
    /// The software-offload scratch, present when the port has no vnet header.
    pub soft: &'a mut Option<SoftwareOffload>,
    /// The port's I/O counters.
    pub counters: &'a mut IoCounters,
    /// The MTU segments are cut to.
    pub mtu: usize,
    /// The errno that revealed a vanished device.
    pub gone_errno: Option<i32>,
}

/// [`Port::send`] for a [`RawTx`] backend: pass the frame and its vnet header through, or,
/// on a port without vnet headers, complete the checksum / segment it in software first.
pub(crate) fn send_via<P: RawTx>(p: &mut P, frame: &[u8], vnet: &VnetHdr) -> Result<(), PortError> {
    let st = p.tx_state();
    if let Some(errno) = st.gone_errno {
        return Err(PortError::Gone { errno });
    }
    let mtu = st.mtu;
    let Some(mut soft) = st.soft.take() else {
        return p.write_raw(&vnet.to_bytes(), frame);
    };
    let mut first_err = None;
    let mut segments = 0u64;
    let segmenting = vnet.is_gso();
    let r = soft.prepare(frame, vnet, mtu, |seg| {
        if first_err.is_none() {
            match p.write_raw(&[], seg) {
                Ok(()) => segments += u64::from(segmenting),
                Err(e) => first_err = Some(e),
            }
        }
    });
    let st = p.tx_state();
    *st.soft = Some(soft);
    st.counters.tx_segments += segments;
    match (r, first_err) {
        (Err(e), _) => {
            st.counters.tx_dropped += 1;
            Err(PortError::Offload(e))
        }
        (Ok(_), Some(e)) => Err(e),
        (Ok(_), None) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_buf_copy_and_limits() {
        let mut b = PacketBuf::new();
        assert!(b.is_empty());
        let vnet = VnetHdr {
            flags: VNET_HDR_F_NEEDS_CSUM,
            ..VnetHdr::default()
        };
        b.copy_from(&[1, 2, 3], vnet).unwrap();
        assert_eq!(b.frame(), &[1, 2, 3]);
        assert_eq!(b.vnet(), vnet);
        b.frame_mut()[0] = 9;
        assert_eq!(b.raw_mut()[VNET_HDR_LEN..VNET_HDR_LEN + 3], [9, 2, 3]);
        let big = vec![0u8; MAX_FRAME_LEN + 1];
        assert_eq!(
            b.copy_from(&big, vnet),
            Err(FrameTooLarge {
                len: MAX_FRAME_LEN + 1
            })
        );
        assert!(b.copy_from(&big[..MAX_FRAME_LEN], vnet).is_ok());
        b.frame_area_mut()[..2].copy_from_slice(&[7, 7]);
        b.set_len(2);
        assert_eq!(b.frame(), &[7, 7]);
    }

    #[test]
    fn batch_push_iterate_clear() {
        let mut batch = Batch::new(2);
        assert_eq!(batch.capacity(), 2);
        assert!(batch.push(&[1], VnetHdr::default()).unwrap());
        assert!(batch.push(&[2], VnetHdr::default()).unwrap());
        assert!(!batch.push(&[3], VnetHdr::default()).unwrap());
        assert!(batch.is_full());
        let frames: Vec<u8> = batch.iter().map(|b| b.frame()[0]).collect();
        assert_eq!(frames, vec![1, 2]);
        assert_eq!(batch[1].frame(), &[2]);
        assert!(batch.get(2).is_none());
        batch.clear();
        assert!(batch.is_empty());
        assert_eq!(batch.spare_mut().len(), 2);
        batch.spare_mut()[0]
            .copy_from(&[5], VnetHdr::default())
            .unwrap();
        batch.commit(1);
        assert_eq!(batch[0].frame(), &[5]);
    }
}
