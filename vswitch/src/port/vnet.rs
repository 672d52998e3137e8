//! The virtio-net header and the software fallback for ports that do not carry it.
//!
//! Taps opened with `IFF_VNET_HDR` and AF_PACKET sockets with `PACKET_VNET_HDR` exchange a
//! [`VnetHdr`] in front of every frame. It says whether the L4 checksum is still partial
//! ([`VNET_HDR_F_NEEDS_CSUM`]: the field holds only the pseudo-header sum) and whether the
//! frame is a GSO super-frame (up to 64 KiB) that the receiver must segment.
//!
//! A frame with such metadata may go to a port without vnet headers only after the work
//! the header defers has been done: [`complete_checksum`] fills the checksum in,
//! [`segment_gso`] cuts a super-frame into wire-sized frames. [`SoftwareOffload`] bundles
//! both with a preallocated scratch buffer, so the transmit path never allocates.
//!
//! Contract: nothing here panics on any byte sequence; a frame that does not match its
//! header is refused with an [`OffloadError`] before any output is produced, so a port
//! never emits a half-segmented or wrongly checksummed frame.
//!
//! Not supported, refused with an error (the caller counts the drop):
//! - UFO ([`GSO_UDP`]) datagrams larger than the MTU would need IP fragmentation, which is
//!   not implemented ([`OffloadError::UfoNeedsFragmentation`]). UFO datagrams that fit are
//!   sent whole with the checksum completed. Taps are opened without `TUN_F_UFO`, so the
//!   kernel fragments before handing such datagrams to the switch.
//! - Checksum offload that is not a ones-complement sum (SCTP CRC32c) is never requested by
//!   the kernel from taps or AF_PACKET sockets, and is not handled.

use thiserror::Error;

/// Size of `struct virtio_net_hdr` as exchanged with taps and AF_PACKET sockets.
pub const VNET_HDR_LEN: usize = 10;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the L4 checksum at `csum_start + csum_offset` is partial.
pub const VNET_HDR_F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksum was already verified (receive side only).
pub const VNET_HDR_F_DATA_VALID: u8 = 2;
/// `VIRTIO_NET_HDR_GSO_NONE`: not a GSO frame.
pub const GSO_NONE: u8 = 0;
/// `VIRTIO_NET_HDR_GSO_TCPV4`: TCP over IPv4 segmentation.
pub const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_UDP`: UDP fragmentation offload (UFO).
pub const GSO_UDP: u8 = 3;
/// `VIRTIO_NET_HDR_GSO_TCPV6`: TCP over IPv6 segmentation.
pub const GSO_TCPV6: u8 = 4;
/// `VIRTIO_NET_HDR_GSO_UDP_L4`: UDP segmentation (USO), one UDP datagram per segment.
pub const GSO_UDP_L4: u8 = 5;
/// `VIRTIO_NET_HDR_GSO_ECN`: flag bit; the TCP stream uses ECN (CWR only on the first segment).
pub const GSO_ECN: u8 = 0x80;

pub(crate) const ETHERTYPE_IPV4: u16 = 0x0800;
pub(crate) const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
pub(crate) const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const TCP_FLAG_FIN: u8 = 0x01;
pub(crate) const TCP_FLAG_PSH: u8 = 0x08;
pub(crate) const TCP_FLAG_ACK: u8 = 0x10;
const TCP_FLAG_CWR: u8 = 0x80;

/// `struct virtio_net_hdr` (10 bytes, host byte order, i.e. little-endian on x86), as
/// carried by `IFF_VNET_HDR` taps and `PACKET_VNET_HDR` sockets.
///
/// The kernel uses the legacy virtio layout in host byte order for both (taps unless
/// `TUNSETVNETLE`/`BE` is set, which this crate never does), so [`parse`](Self::parse) and
/// [`write`](Self::write) use native endianness.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHdr {
    /// [`VNET_HDR_F_NEEDS_CSUM`] and/or [`VNET_HDR_F_DATA_VALID`].
    pub flags: u8,
    /// One of the `GSO_*` types, possibly or-ed with [`GSO_ECN`].
    pub gso_type: u8,
    /// Length of the Ethernet + IP + L4 headers (a hint for GSO frames).
    pub hdr_len: u16,
    /// Payload bytes per segment for GSO frames.
    pub gso_size: u16,
    /// Offset from the start of the Ethernet frame where checksumming starts.
    pub csum_start: u16,
    /// Offset of the checksum field from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Size of the header on the wire ([`VNET_HDR_LEN`]).
    pub const LEN: usize = VNET_HDR_LEN;

    /// Parses the first [`VNET_HDR_LEN`] bytes; `None` when `bytes` is shorter.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let b: &[u8; VNET_HDR_LEN] = bytes.get(..VNET_HDR_LEN)?.try_into().ok()?;
        Some(Self {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16::from_ne_bytes([b[2], b[3]]),
            gso_size: u16::from_ne_bytes([b[4], b[5]]),
            csum_start: u16::from_ne_bytes([b[6], b[7]]),
            csum_offset: u16::from_ne_bytes([b[8], b[9]]),
        })
    }

    /// The 10-byte wire image.
    pub fn to_bytes(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }

    /// Writes the wire image into the first [`VNET_HDR_LEN`] bytes of `out`.
    ///
    /// # Panics
    /// If `out` is shorter than [`VNET_HDR_LEN`] (a bug in the caller's buffer handling).
    pub fn write(&self, out: &mut [u8]) {
        out[..VNET_HDR_LEN].copy_from_slice(&self.to_bytes());
    }

    /// The GSO type without the [`GSO_ECN`] flag.
    pub fn gso_kind(&self) -> u8 {
        self.gso_type & !GSO_ECN
    }

    /// Whether this is a GSO super-frame that must be segmented before it reaches a wire.
    pub fn is_gso(&self) -> bool {
        self.gso_kind() != GSO_NONE
    }

    /// Whether the L4 checksum is partial and must be completed by whoever puts the frame
    /// on a wire.
    pub fn needs_csum(&self) -> bool {
        self.flags & VNET_HDR_F_NEEDS_CSUM != 0
    }

    /// Whether the frame can go as-is to a port without vnet headers.
    pub fn is_plain(&self) -> bool {
        !self.is_gso() && !self.needs_csum()
    }
}

/// Why a frame could not be prepared for a port without vnet headers. The frame is dropped.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum OffloadError {
    /// The frame does not match its vnet header (or is not a frame the header could describe).
    #[error("frame does not match its virtio-net header: {0}")]
    Malformed(&'static str),
    /// A GSO type the software fallback does not implement.
    #[error("unsupported GSO type {0:#04x}")]
    UnsupportedGso(u8),
    /// A UFO datagram larger than the MTU would need IP fragmentation (not implemented).
    #[error("UFO datagram of {len} bytes exceeds the MTU and would need IP fragmentation")]
    UfoNeedsFragmentation {
        /// IP packet length of the datagram.
        len: usize,
    },
    /// A produced segment would not fit the scratch buffer.
    #[error("segment of {len} bytes exceeds the {cap}-byte scratch buffer")]
    TooLarge {
        /// Needed bytes.
        len: usize,
        /// Scratch capacity.
        cap: usize,
    },
}

/// Adds `data` as big-endian 16-bit words to a ones-complement accumulator (not folded).
fn sum_be16(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]))
            + u64::from(u16::from_be_bytes([c[2], c[3]]))
            + u64::from(u16::from_be_bytes([c[4], c[5]]))
            + u64::from(u16::from_be_bytes([c[6], c[7]]));
    }
    let mut pairs = chunks.remainder().chunks_exact(2);
    for p in &mut pairs {
        acc += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        acc += u64::from(u16::from_be_bytes([*last, 0]));
    }
    acc
}

/// Folds a ones-complement accumulator to 16 bits (not inverted).
fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    // The loop leaves acc <= 0xffff.
    acc as u16
}

/// The Internet checksum (RFC 1071) of `data`: the inverted ones-complement sum.
pub fn internet_checksum(data: &[u8]) -> u16 {
    !fold(sum_be16(data, 0))
}

fn be16(b: &[u8], off: usize) -> Result<u16, OffloadError> {
    match b.get(off..off + 2) {
        Some(s) => Ok(u16::from_be_bytes([s[0], s[1]])),
        None => Err(OffloadError::Malformed("frame truncated")),
    }
}

fn be32(b: &[u8], off: usize) -> Result<u32, OffloadError> {
    match b.get(off..off + 4) {
        Some(s) => Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]])),
        None => Err(OffloadError::Malformed("frame truncated")),
    }
}

fn byte(b: &[u8], off: usize) -> Result<u8, OffloadError> {
    b.get(off)
        .copied()
        .ok_or(OffloadError::Malformed("frame truncated"))
}

/// Fills in the L4 checksum that `vnet` marks as partial ([`VNET_HDR_F_NEEDS_CSUM`]):
/// the ones-complement sum over `frame[csum_start..]` (whose checksum field holds the
/// pseudo-header sum) is folded, inverted and stored at `csum_start + csum_offset`.
/// A frame without `NEEDS_CSUM` is left alone.
///
/// A computed UDP checksum of zero is sent as `0xffff` (zero means "no checksum" in UDP).
pub fn complete_checksum(frame: &mut [u8], vnet: &VnetHdr) -> Result<(), OffloadError> {
    if !vnet.needs_csum() {
        return Ok(());
    }
    let start = usize::from(vnet.csum_start);
    let field = start + usize::from(vnet.csum_offset);
    if start < 14 || field + 2 > frame.len() {
        return Err(OffloadError::Malformed(
            "csum_start/csum_offset outside the frame",
        ));
    }
    let mut csum = !fold(sum_be16(&frame[start..], 0));
    if csum == 0 && vnet.csum_offset == 6 {
        // UDP (the only ones-complement L4 checksum at offset 6): 0 would mean "none".
        csum = 0xffff;
    }
    frame[field..field + 2].copy_from_slice(&csum.to_be_bytes());
    Ok(())
}

/// Where the layers of an IP frame start.
#[derive(Clone, Copy, Debug)]
struct Layers {
    l3: usize,
    l4: usize,
    ipv4: bool,
    proto: u8,
}

/// Finds the L3 and L4 offsets of an Ethernet frame (with up to two VLAN tags) carrying
/// IPv4 or IPv6. For IPv6, hop-by-hop, routing and destination-options headers are skipped;
/// a fragment header is refused (a fragment cannot be segmented).
fn locate(frame: &[u8]) -> Result<Layers, OffloadError> {
    let mut off = 12;
    let mut ethertype = be16(frame, off)?;
    let mut tags = 0;
    while ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
        tags += 1;
        if tags > 2 {
            return Err(OffloadError::Malformed("more than two VLAN tags"));
        }
        off += 4;
        ethertype = be16(frame, off)?;
    }
    let l3 = off + 2;
    match ethertype {
        ETHERTYPE_IPV4 => {
            let vihl = byte(frame, l3)?;
            let ihl = usize::from(vihl & 0x0f) * 4;
            if vihl >> 4 != 4 || ihl < 20 || frame.len() < l3 + ihl {
                return Err(OffloadError::Malformed("bad IPv4 header"));
            }
            if be16(frame, l3 + 6)? & 0x3fff != 0 {
                return Err(OffloadError::Malformed("IPv4 fragment"));
            }
            Ok(Layers {
                l3,
                l4: l3 + ihl,
                ipv4: true,
                proto: byte(frame, l3 + 9)?,
            })
        }
        ETHERTYPE_IPV6 => {
            if byte(frame, l3)? >> 4 != 6 || frame.len() < l3 + 40 {
                return Err(OffloadError::Malformed("bad IPv6 header"));
            }
            let mut next = byte(frame, l3 + 6)?;
            let mut l4 = l3 + 40;
            for _ in 0..8 {
                match next {
                    // Hop-by-hop, routing, destination options.
                    0 | 43 | 60 => {
                        next = byte(frame, l4)?;
                        l4 += (usize::from(byte(frame, l4 + 1)?) + 1) * 8;
                    }
                    44 => return Err(OffloadError::Malformed("IPv6 fragment")),
                    _ => break,
                }
            }
            Ok(Layers {
                l3,
                l4,
                ipv4: false,
                proto: next,
            })
        }
        _ => Err(OffloadError::Malformed("GSO frame is not IPv4 or IPv6")),
    }
}

/// Ones-complement sum of the pseudo-header for an L4 segment of `l4_len` bytes.
fn pseudo_header_sum(frame: &[u8], layers: &Layers, l4_len: usize) -> u64 {
    let addrs = if layers.ipv4 {
        &frame[layers.l3 + 12..layers.l3 + 20]
    } else {
        &frame[layers.l3 + 8..layers.l3 + 40]
    };
    // l4_len < 2^32 always (frames are at most 64 KiB); the upper half matters for IPv6 only.
    let len = l4_len as u64;
    sum_be16(addrs, 0) + u64::from(layers.proto) + (len >> 16) + (len & 0xffff)
}

/// Rewrites the IP header of a segment: total/payload length, IPv4 ID and header checksum.
fn fix_ip_header(seg: &mut [u8], layers: &Layers, index: usize, id0: u16) {
    let l3_len = seg.len() - layers.l3;
    if layers.ipv4 {
        let ip = &mut seg[layers.l3..layers.l4];
        // Segments are at most the scratch size (< 64 KiB + headers), checked by the caller.
        ip[2..4].copy_from_slice(&(l3_len as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&id0.wrapping_add(index as u16).to_be_bytes());
        ip[10..12].copy_from_slice(&[0, 0]);
        let csum = internet_checksum(ip);
        ip[10..12].copy_from_slice(&csum.to_be_bytes());
    } else {
        let payload_len = (l3_len - 40) as u16;
        seg[layers.l3 + 4..layers.l3 + 6].copy_from_slice(&payload_len.to_be_bytes());
    }
}

/// Computes the full L4 checksum of a segment into its checksum field (at `l4 + field`).
fn fill_l4_checksum(seg: &mut [u8], layers: &Layers, field: usize, udp: bool) {
    let l4_len = seg.len() - layers.l4;
    seg[layers.l4 + field..layers.l4 + field + 2].copy_from_slice(&[0, 0]);
    let acc = pseudo_header_sum(seg, layers, l4_len);
    let mut csum = !fold(sum_be16(&seg[layers.l4..], acc));
    if udp && csum == 0 {
        csum = 0xffff;
    }
    seg[layers.l4 + field..layers.l4 + field + 2].copy_from_slice(&csum.to_be_bytes());
}

/// Cuts a GSO super-frame into frames a wire can carry and hands each to `out`, complete
/// with IP and L4 checksums; returns the number of frames produced.
///
/// - TCP ([`GSO_TCPV4`], [`GSO_TCPV6`], with or without [`GSO_ECN`]): the payload is split
///   into `gso_size` pieces (fewer if `mtu` — the largest IP packet the egress link carries,
///   e.g. 1500 — is smaller than headers + `gso_size`). Each segment gets its IP total
///   length (IPv4: ID + 1 per segment, header checksum recomputed) or IPv6 payload length,
///   its sequence number, FIN/PSH only on the last and CWR only on the first segment, and a
///   freshly computed TCP checksum.
/// - USO ([`GSO_UDP_L4`]): one UDP datagram per `gso_size` piece, each with its own length
///   and checksum.
/// - UFO ([`GSO_UDP`]): sent whole (checksum completed) if it fits `mtu`; otherwise refused
///   with [`OffloadError::UfoNeedsFragmentation`] — IP fragmentation is not implemented.
/// - A non-GSO frame is passed through, its checksum completed if `NEEDS_CSUM` is set.
///
/// `scratch` holds one segment at a time (no allocation); it must fit the frame's headers
/// plus one segment's payload. Every check happens before the first call to `out`, so on
/// error nothing was emitted.
pub fn segment_gso(
    frame: &[u8],
    vnet: &VnetHdr,
    mtu: usize,
    scratch: &mut [u8],
    mut out: impl FnMut(&[u8]),
) -> Result<usize, OffloadError> {
    let kind = vnet.gso_kind();
    if kind == GSO_NONE {
        return single(frame, vnet, scratch, out);
    }
    let layers = locate(frame)?;
    let (want_proto, l4_hdr_len) = match kind {
        GSO_TCPV4 | GSO_TCPV6 => {
            if (kind == GSO_TCPV4) != layers.ipv4 {
                return Err(OffloadError::Malformed(
                    "GSO type does not match IP version",
                ));
            }
            let doff = usize::from(byte(frame, layers.l4 + 12)? >> 4) * 4;
            if doff < 20 {
                return Err(OffloadError::Malformed("bad TCP data offset"));
            }
            (IPPROTO_TCP, doff)
        }
        GSO_UDP | GSO_UDP_L4 => (IPPROTO_UDP, 8),
        other => return Err(OffloadError::UnsupportedGso(other)),
    };
    if layers.proto != want_proto {
        return Err(OffloadError::Malformed(
            "GSO type does not match L4 protocol",
        ));
    }
    let hdrs = layers.l4 + l4_hdr_len;
    if frame.len() < hdrs {
        return Err(OffloadError::Malformed("frame shorter than its headers"));
    }
    if kind == GSO_UDP {
        let len = frame.len() - layers.l3;
        if len > mtu {
            return Err(OffloadError::UfoNeedsFragmentation { len });
        }
        return single(frame, vnet, scratch, out);
    }
    let payload = &frame[hdrs..];
    let room = mtu.saturating_sub(hdrs - layers.l3);
    let mss = usize::from(vnet.gso_size).min(room);
    if mss == 0 {
        return Err(OffloadError::Malformed("gso_size is zero or MTU too small"));
    }
    let largest = hdrs + mss.min(payload.len());
    if largest > scratch.len() || largest - layers.l3 > usize::from(u16::MAX) {
        return Err(OffloadError::TooLarge {
            len: largest,
            cap: scratch.len(),
        });
    }
    let id0 = if layers.ipv4 {
        be16(frame, layers.l3 + 4)?
    } else {
        0
    };
    let seq0 = be32(frame, layers.l4 + 4)?;
    let flags0 = byte(frame, layers.l4 + 13)?;
    let count = payload.len().div_ceil(mss).max(1);
    let mut chunks = payload.chunks(mss);
    for index in 0..count {
        let chunk = chunks.next().unwrap_or(&[]);
        let seg_len = hdrs + chunk.len();
        let seg = &mut scratch[..seg_len];
        seg[..hdrs].copy_from_slice(&frame[..hdrs]);
        seg[hdrs..].copy_from_slice(chunk);
        fix_ip_header(seg, &layers, index, id0);
        if want_proto == IPPROTO_TCP {
            let th = &mut seg[layers.l4..];
            // Segment offsets are < 64 KiB, so the sequence advance fits a u32.
            let seq = seq0.wrapping_add((index * mss) as u32);
            th[4..8].copy_from_slice(&seq.to_be_bytes());
            let mut flags = flags0;
            if index + 1 != count {
                flags &= !(TCP_FLAG_FIN | TCP_FLAG_PSH);
            }
            if index != 0 {
                flags &= !TCP_FLAG_CWR;
            }
            th[13] = flags;
            fill_l4_checksum(seg, &layers, 16, false);
        } else {
            let udp_len = (seg_len - layers.l4) as u16;
            seg[layers.l4 + 4..layers.l4 + 6].copy_from_slice(&udp_len.to_be_bytes());
            fill_l4_checksum(seg, &layers, 6, true);
        }
        out(seg);
    }
    Ok(count)
}

/// Emits one frame, completing its checksum in `scratch` if needed.
fn single(
    frame: &[u8],
    vnet: &VnetHdr,
    scratch: &mut [u8],
    mut out: impl FnMut(&[u8]),
) -> Result<usize, OffloadError> {
    if !vnet.needs_csum() {
        out(frame);
        return Ok(1);
    }
    let Some(copy) = scratch.get_mut(..frame.len()) else {
        return Err(OffloadError::TooLarge {
            len: frame.len(),
            cap: scratch.len(),
        });
    };
    copy.copy_from_slice(frame);
    complete_checksum(copy, vnet)?;
    out(copy);
    Ok(1)
}

/// The software fallback of one port without vnet headers: completes checksums and
/// segments GSO frames in a scratch buffer allocated once, when the port is opened.
pub struct SoftwareOffload {
    scratch: Box<[u8]>,
}

impl std::fmt::Debug for SoftwareOffload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareOffload")
            .field("scratch_len", &self.scratch.len())
            .finish()
    }
}

impl Default for SoftwareOffload {
    fn default() -> Self {
        Self::new()
    }
}

impl SoftwareOffload {
    /// A fallback able to handle any frame up to [`super::MAX_FRAME_LEN`] bytes.
    pub fn new() -> Self {
        Self {
            scratch: super::resident_zeroed(super::MAX_FRAME_LEN),
        }
    }

    /// Turns `frame` + `vnet` into plain frames (see [`segment_gso`]) and hands each to
    /// `out`; returns how many were produced. A frame that needs no work is passed through
    /// without copying.
    pub fn prepare(
        &mut self,
        frame: &[u8],
        vnet: &VnetHdr,
        mtu: usize,
        out: impl FnMut(&[u8]),
    ) -> Result<usize, OffloadError> {
        segment_gso(frame, vnet, mtu, &mut self.scratch, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
    const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

    fn eth(ethertype: u16) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&DST_MAC);
        f.extend_from_slice(&SRC_MAC);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f
    }

    /// Ethernet + IPv4 + UDP 5000 -> 5001 (checksum 0) around `body`.
    fn udp4_frame(body: &[u8]) -> Vec<u8> {
        let mut f = eth(ETHERTYPE_IPV4);
        f.extend(ipv4_header(IPPROTO_UDP, 8 + body.len(), 9));
        f.extend_from_slice(&[0x13, 0x88, 0x13, 0x89]);
        f.extend_from_slice(&((8 + body.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(body);
        f
    }

    fn ipv4_header(proto: u8, l4_len: usize, id: u16) -> Vec<u8> {
        let total = (20 + l4_len) as u16;
        let mut h = vec![0x45, 0];
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&id.to_be_bytes());
        h.extend_from_slice(&[0x40, 0, 64, proto, 0, 0]); // DF, TTL 64, checksum 0
        h.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        let c = internet_checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    fn ipv6_header(proto: u8, l4_len: usize) -> Vec<u8> {
        let mut h = vec![0x60, 0, 0, 0];
        h.extend_from_slice(&(l4_len as u16).to_be_bytes());
        h.extend_from_slice(&[proto, 64]);
        h.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        h.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        h
    }

    fn tcp_header(seq: u32, flags: u8) -> Vec<u8> {
        let mut t = vec![0x30, 0x39, 0x00, 0x50]; // 12345 -> 80
        t.extend_from_slice(&seq.to_be_bytes());
        t.extend_from_slice(&7u32.to_be_bytes()); // ack
        t.extend_from_slice(&[0x80, flags]); // doff 8 (32 bytes with options)
        t.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]); // window, csum, urg
        t.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]); // NOP NOP TS
        t
    }

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    /// Writes the pseudo-header sum into the L4 checksum field, as a sender with checksum
    /// offload leaves it, and returns the matching vnet header.
    fn make_partial(frame: &mut [u8], l3: usize, l4: usize, field: usize, ipv4: bool) -> VnetHdr {
        let proto = if ipv4 { frame[l3 + 9] } else { frame[l3 + 6] };
        let layers = Layers {
            l3,
            l4,
            ipv4,
            proto,
        };
        let l4_len = frame.len() - l4;
        let pseudo = fold(pseudo_header_sum(frame, &layers, l4_len));
        frame[l4 + field..l4 + field + 2].copy_from_slice(&pseudo.to_be_bytes());
        VnetHdr {
            flags: VNET_HDR_F_NEEDS_CSUM,
            csum_start: l4 as u16,
            csum_offset: field as u16,
            ..VnetHdr::default()
        }
    }

    /// Verifies IP and L4 checksums of a plain frame by recomputation; returns the layers.
    fn verify(frame: &[u8]) -> Layers {
        let layers = locate(frame).expect("locate");
        if layers.ipv4 {
            assert_eq!(
                internet_checksum(&frame[layers.l3..layers.l4]),
                0,
                "IPv4 header checksum"
            );
            let total = be16(frame, layers.l3 + 2).unwrap() as usize;
            assert_eq!(total, frame.len() - layers.l3, "IPv4 total length");
        } else {
            let plen = be16(frame, layers.l3 + 4).unwrap() as usize;
            assert_eq!(plen, frame.len() - layers.l3 - 40, "IPv6 payload length");
        }
        let l4_len = frame.len() - layers.l4;
        let acc = pseudo_header_sum(frame, &layers, l4_len);
        assert_eq!(
            !fold(sum_be16(&frame[layers.l4..], acc)),
            0,
            "L4 checksum over pseudo-header + segment"
        );
        layers
    }

    #[test]
    fn vnet_hdr_roundtrip_and_short_input() {
        let h = VnetHdr {
            flags: VNET_HDR_F_NEEDS_CSUM,
            gso_type: GSO_TCPV4 | GSO_ECN,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        let mut b = [0u8; 12];
        h.write(&mut b);
        assert_eq!(VnetHdr::parse(&b), Some(h));
        assert_eq!(h.to_bytes()[..], b[..10]);
        assert!(h.is_gso() && h.needs_csum() && !h.is_plain());
        assert_eq!(h.gso_kind(), GSO_TCPV4);
        assert_eq!(VnetHdr::parse(&b[..9]), None);
        let ecn_only = VnetHdr {
            gso_type: GSO_ECN,
            ..VnetHdr::default()
        };
        assert!(!ecn_only.is_gso());
    }

    #[test]
    fn internet_checksum_rfc1071_example() {
        // RFC 1071 section 3 example: sum 0xddf2 -> checksum 0x220d.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(internet_checksum(&data), !0xddf2);
        // Odd length pads with zero.
        assert_eq!(internet_checksum(&[0xab]), !0xab00);
    }

    #[test]
    fn complete_checksum_tcp_ipv4() {
        let body = payload(333);
        let mut tcp = tcp_header(1000, 0x18);
        tcp.extend_from_slice(&body);
        let mut f = eth(ETHERTYPE_IPV4);
        f.extend(ipv4_header(IPPROTO_TCP, tcp.len(), 1));
        f.extend(tcp);
        let vnet = make_partial(&mut f, 14, 34, 16, true);
        complete_checksum(&mut f, &vnet).unwrap();
        verify(&f);
    }

    #[test]
    fn complete_checksum_udp_ipv6_never_zero() {
        let mut f = eth(ETHERTYPE_IPV6);
        let body = payload(101);
        f.extend(ipv6_header(IPPROTO_UDP, 8 + body.len()));
        f.extend_from_slice(&[0x13, 0x88, 0x13, 0x89]);
        f.extend_from_slice(&((8 + body.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend(body);
        let vnet = make_partial(&mut f, 14, 54, 6, false);
        complete_checksum(&mut f, &vnet).unwrap();
        verify(&f);
        assert_ne!(be16(&f, 54 + 6).unwrap(), 0);
    }

    #[test]
    fn complete_checksum_refuses_out_of_range_offsets() {
        let mut f = eth(ETHERTYPE_IPV4);
        f.extend(ipv4_header(IPPROTO_TCP, 20, 1));
        f.extend(vec![0u8; 20]);
        let bad = VnetHdr {
            flags: VNET_HDR_F_NEEDS_CSUM,
            csum_start: 34,
            csum_offset: 19,
            ..VnetHdr::default()
        };
        assert!(matches!(
            complete_checksum(&mut f, &bad),
            Err(OffloadError::Malformed(_))
        ));
        let no_csum = VnetHdr::default();
        let before = f.clone();
        complete_checksum(&mut f, &no_csum).unwrap();
        assert_eq!(f, before);
    }

    fn tso_frame(ipv4: bool, vlan: bool, body: &[u8], flags: u8) -> (Vec<u8>, VnetHdr) {
        let mut f = Vec::new();
        f.extend_from_slice(&DST_MAC);
        f.extend_from_slice(&SRC_MAC);
        if vlan {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
        }
        let l3 = f.len();
        let mut tcp = tcp_header(0xffff_f000, flags);
        let l4_off = if ipv4 { 20 } else { 40 };
        tcp.extend_from_slice(body);
        if ipv4 {
            f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
            f.extend(ipv4_header(IPPROTO_TCP, tcp.len(), 0xfffe));
        } else {
            f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
            f.extend(ipv6_header(IPPROTO_TCP, tcp.len()));
        }
        let l3 = l3 + 2;
        f.extend(tcp);
        let mut vnet = make_partial(&mut f, l3, l3 + l4_off, 16, ipv4);
        vnet.gso_type = if ipv4 { GSO_TCPV4 } else { GSO_TCPV6 } | GSO_ECN;
        vnet.gso_size = 1000;
        vnet.hdr_len = (l3 + l4_off + 32) as u16;
        (f, vnet)
    }

    fn check_tcp_segments(ipv4: bool, vlan: bool) {
        let body = payload(4321);
        let (f, vnet) = tso_frame(ipv4, vlan, &body, 0x80 | 0x18 | 0x01); // CWR PSH ACK FIN
        let mut scratch = vec![0u8; 2048];
        let mut segs: Vec<Vec<u8>> = Vec::new();
        let n = segment_gso(&f, &vnet, 1500, &mut scratch, |s| segs.push(s.to_vec())).unwrap();
        assert_eq!(n, 5);
        assert_eq!(segs.len(), 5);
        let mut reassembled = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            let layers = verify(s);
            let th = &s[layers.l4..];
            let seq = u32::from_be_bytes([th[4], th[5], th[6], th[7]]);
            assert_eq!(seq, 0xffff_f000u32.wrapping_add(i as u32 * 1000));
            let flags = th[13];
            let last = i == 4;
            assert_eq!(flags & TCP_FLAG_FIN != 0, last, "FIN only on last");
            assert_eq!(flags & TCP_FLAG_PSH != 0, last, "PSH only on last");
            assert_eq!(flags & TCP_FLAG_CWR != 0, i == 0, "CWR only on first");
            assert_eq!(flags & 0x10, 0x10, "ACK on all");
            if layers.ipv4 {
                let id = be16(s, layers.l3 + 4).unwrap();
                assert_eq!(id, 0xfffeu16.wrapping_add(i as u16));
            }
            let data = &s[layers.l4 + 32..];
            assert_eq!(data.len(), if last { 321 } else { 1000 });
            reassembled.extend_from_slice(data);
            // Headers before the L3 header are untouched (MACs, VLAN tag).
            assert_eq!(s[..layers.l3], f[..layers.l3]);
        }
        assert_eq!(reassembled, body);
    }

    #[test]
    fn segments_tcpv4() {
        check_tcp_segments(true, false);
    }

    #[test]
    fn segments_tcpv6() {
        check_tcp_segments(false, false);
    }

    #[test]
    fn segments_tcpv4_behind_vlan_tag() {
        check_tcp_segments(true, true);
    }

    #[test]
    fn segment_size_capped_by_mtu() {
        let body = payload(3000);
        let (f, vnet) = tso_frame(true, false, &body, 0x10);
        let mut scratch = vec![0u8; 4096];
        let mut sizes = Vec::new();
        // gso_size is 1000, but MTU 552 leaves only 552 - 20 (IP) - 32 (TCP) = 500 per segment.
        segment_gso(&f, &vnet, 552, &mut scratch, |s| {
            verify(s);
            sizes.push(s.len() - 14);
        })
        .unwrap();
        assert_eq!(sizes, vec![552; 6]);
    }

    #[test]
    fn segments_uso_ipv4() {
        let body = payload(2500);
        let mut f = udp4_frame(&body);
        let mut vnet = make_partial(&mut f, 14, 34, 6, true);
        vnet.gso_type = GSO_UDP_L4;
        vnet.gso_size = 1200;
        let mut scratch = vec![0u8; 2048];
        let mut got = Vec::new();
        let n = segment_gso(&f, &vnet, 1500, &mut scratch, |s| {
            let layers = verify(s);
            assert_eq!(
                usize::from(be16(s, layers.l4 + 4).unwrap()),
                s.len() - layers.l4
            );
            got.extend_from_slice(&s[layers.l4 + 8..]);
        })
        .unwrap();
        assert_eq!(n, 3);
        assert_eq!(got, body);
    }

    #[test]
    fn ufo_fits_or_is_refused() {
        for (len, ok) in [(1000usize, true), (3000, false)] {
            let body = payload(len);
            let mut f = udp4_frame(&body);
            let mut vnet = make_partial(&mut f, 14, 34, 6, true);
            vnet.gso_type = GSO_UDP;
            vnet.gso_size = 1472;
            let mut scratch = vec![0u8; 4096];
            let mut emitted = 0;
            let r = segment_gso(&f, &vnet, 1500, &mut scratch, |s| {
                verify(s);
                emitted += 1;
            });
            if ok {
                assert_eq!(r, Ok(1));
                assert_eq!(emitted, 1);
            } else {
                assert_eq!(
                    r,
                    Err(OffloadError::UfoNeedsFragmentation { len: 20 + 8 + len })
                );
                assert_eq!(emitted, 0, "nothing emitted on refusal");
            }
        }
    }

    #[test]
    fn malformed_gso_frames_are_refused_without_output() {
        let body = payload(3000);
        let (f, vnet) = tso_frame(true, false, &body, 0x10);
        let mut scratch = vec![0u8; 4096];
        let mut emitted = 0;
        let mut count = |_: &[u8]| emitted += 1;
        // Wrong IP version for the GSO type.
        let v6 = VnetHdr {
            gso_type: GSO_TCPV6,
            ..vnet
        };
        assert!(segment_gso(&f, &v6, 1500, &mut scratch, &mut count).is_err());
        // Unknown GSO type.
        let odd = VnetHdr {
            gso_type: 0x7f,
            ..vnet
        };
        assert_eq!(
            segment_gso(&f, &odd, 1500, &mut scratch, &mut count),
            Err(OffloadError::UnsupportedGso(0x7f))
        );
        // gso_size 0.
        let zero = VnetHdr {
            gso_size: 0,
            ..vnet
        };
        assert!(segment_gso(&f, &zero, 1500, &mut scratch, &mut count).is_err());
        // Scratch too small.
        let mut tiny = [0u8; 100];
        assert!(matches!(
            segment_gso(&f, &vnet, 1500, &mut tiny, &mut count),
            Err(OffloadError::TooLarge { .. })
        ));
        // Every truncation inside the headers (14 Ethernet + 20 IPv4 + 32 TCP).
        for cut in 0..66 {
            let _ = segment_gso(&f[..cut], &vnet, 1500, &mut scratch, &mut count);
        }
        assert_eq!(emitted, 0);
    }

    #[test]
    fn no_byte_sequence_panics() {
        // A cheap deterministic fuzz: random frames against random headers.
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut scratch = vec![0u8; 2048];
        for _ in 0..20_000 {
            let len = (next() % 200) as usize;
            let mut f: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if len > 14 && next() % 2 == 0 {
                f[12] = 0x08;
                f[13] = 0x00;
                f[14] = 0x45;
            }
            let r = next();
            let vnet = VnetHdr {
                flags: (r & 3) as u8,
                gso_type: [0, 1, 3, 4, 5, 0x81, 9][(r >> 2) as usize % 7],
                hdr_len: (r >> 8) as u16,
                gso_size: (r >> 24) as u16 % 100,
                csum_start: (r >> 40) as u16 % 220,
                csum_offset: (r >> 56) as u16 % 40,
            };
            let _ = segment_gso(&f, &vnet, 1500, &mut scratch, |_| {});
            let _ = complete_checksum(&mut f, &vnet);
        }
    }
}
