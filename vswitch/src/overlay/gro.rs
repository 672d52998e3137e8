//! Receive coalescing of VXLAN datagrams (a userspace GRO): consecutive TCP segments of one
//! flow that arrive from one VTEP in one receive round are joined back into one TSO
//! super-frame with a virtio-net GSO header, so that the local port gets one write instead
//! of one per segment (the sender's switch cut the super-frame to the underlay's MTU;
//! this undoes the cut on the far side, as a NIC's GRO would for the kernel's VXLAN).
//!
//! Contract:
//! - pure: no I/O, no allocation after [`Gro::new`]. The worker hands it every datagram
//!   ([`Gro::feed`]) and gets back, through a callback, the frames to process: the pending
//!   super-frame when a datagram cannot join it, and that datagram alone when it cannot
//!   begin one either. Order is kept: a datagram is processed only after everything that
//!   came before it. The worker calls [`Gro::flush`] at the end of every receive round, so
//!   coalescing never waits for a datagram that has not come.
//! - what joins: IPv4 (no options, not a fragment) or IPv6 (no extension headers) TCP,
//!   inner Ethernet without VLAN tag, from the same VTEP with the same VXLAN header, whose
//!   Ethernet header, IP header (but length, IPv4 ID and checksum), TCP ports, ack,
//!   window and options are the same as the first's, whose sequence number follows on,
//!   with the flags ACK (the last may add PSH), and at most the first's payload size (a
//!   shorter one or a PSH ends the super-frame). At most 64 KiB of IP packet. Anything
//!   else (SYN, FIN, RST, URG, ECN marks, options that changed) goes alone, unchanged.
//! - what comes out: a datagram that was not joined comes out byte for byte as it came, with
//!   an empty virtio-net header; a joined one gets its IP length (and IPv4 header
//!   checksum) rewritten and a partial TCP checksum (the pseudo-header sum), with
//!   `NEEDS_CSUM`, `gso_type` TCPV4/TCPV6 and `gso_size` = the first segment's payload:
//!   exactly what a guest's TSO hands the switch on a tap. Offsets in the header are those
//!   of the inner frame (after the VXLAN header).
//!
//! The pipeline sees the super-frame as one frame (`RxMeta.gso`): its verdict depends only
//! on the headers, which every joined segment shares.

use std::net::Ipv4Addr;

use crate::port::vnet::{
    internet_checksum, ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPPROTO_TCP, TCP_FLAG_ACK as TCP_ACK,
    TCP_FLAG_PSH as TCP_PSH,
};
use crate::port::{
    resident_zeroed, VnetHdr, GSO_TCPV4, GSO_TCPV6, MAX_FRAME_LEN, VNET_HDR_F_NEEDS_CSUM,
};
use crate::wire::vxlan::HEADER_LEN as VX;

/// The largest IP packet a super-frame may become.
const MAX_IP_LEN: usize = 65_535;

/// Where the headers of a datagram that may start a super-frame are (offsets from the
/// start of the VXLAN payload).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shape {
    ipv4: bool,
    l3: usize,
    l4: usize,
    /// End of the TCP header (options included).
    hdrs: usize,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The shape of a VXLAN payload carrying a TCP segment with data that could be joined, and
/// its TCP flags.
fn shape(p: &[u8]) -> Option<(Shape, u8)> {
    let l3 = VX + 14;
    let (ipv4, l4) = match be16(p, VX + 12)? {
        ETHERTYPE_IPV4 => {
            // version 4, no options; not a fragment (MF clear, offset 0); TCP; the IP
            // length is the datagram's (no padding)
            if *p.get(l3)? != 0x45
                || be16(p, l3 + 6)? & 0x3fff != 0
                || *p.get(l3 + 9)? != IPPROTO_TCP
                || l3 + usize::from(be16(p, l3 + 2)?) != p.len()
            {
                return None;
            }
            (true, l3 + 20)
        }
        ETHERTYPE_IPV6 => {
            if *p.get(l3)? >> 4 != 6
                || *p.get(l3 + 6)? != IPPROTO_TCP
                || l3 + 40 + usize::from(be16(p, l3 + 4)?) != p.len()
            {
                return None;
            }
            (false, l3 + 40)
        }
        _ => return None,
    };
    let doff = usize::from(*p.get(l4 + 12)? >> 4) * 4;
    let hdrs = l4 + doff;
    if doff < 20 || hdrs >= p.len() {
        // a bad header, or no data (a pure ACK is never joined)
        return None;
    }
    let flags = *p.get(l4 + 13)?;
    Some((Shape { ipv4, l3, l4, hdrs }, flags))
}

/// The coalescer: one pending super-frame at a time.
pub struct Gro {
    buf: Box<[u8]>,
    /// Bytes pending in `buf` (0: nothing pending).
    len: usize,
    src: Ipv4Addr,
    shape: Shape,
    /// Payload size of the first segment (the `gso_size`).
    mss: usize,
    next_seq: u32,
    count: usize,
    /// A shorter or PSH segment was joined: the super-frame is complete.
    closed: bool,
}

impl std::fmt::Debug for Gro {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gro")
            .field("len", &self.len)
            .field("count", &self.count)
            .finish()
    }
}

impl Default for Gro {
    fn default() -> Self {
        Self::new()
    }
}

impl Gro {
    /// A coalescer with its buffer (one VXLAN header plus the largest frame), allocated once.
    pub fn new() -> Gro {
        Gro {
            buf: resident_zeroed(VX + MAX_FRAME_LEN),
            len: 0,
            src: Ipv4Addr::UNSPECIFIED,
            shape: Shape {
                ipv4: true,
                l3: 0,
                l4: 0,
                hdrs: 0,
            },
            mss: 0,
            next_seq: 0,
            count: 0,
            closed: false,
        }
    }

    /// How many segments the pending super-frame holds (0: nothing pending).
    pub fn pending(&self) -> usize {
        if self.len == 0 {
            0
        } else {
            self.count
        }
    }

    /// Begin a super-frame with this datagram (VXLAN payload `p` from `src`), if it is a
    /// TCP segment that others could join. Must be called with nothing pending.
    pub fn start(&mut self, src: Ipv4Addr, p: &[u8]) -> bool {
        debug_assert_eq!(self.len, 0, "start with a super-frame pending");
        let Some((s, flags)) = shape(p) else {
            return false;
        };
        if flags != TCP_ACK || p.len() > self.buf.len() {
            return false;
        }
        let Some(seq) = be32(p, s.l4 + 4) else {
            return false;
        };
        let data = p.len() - s.hdrs;
        self.buf[..p.len()].copy_from_slice(p);
        self.len = p.len();
        self.src = src;
        self.shape = s;
        self.mss = data;
        self.next_seq = seq.wrapping_add(data as u32);
        self.count = 1;
        self.closed = false;
        true
    }

    /// Join this datagram to the pending super-frame, if it continues it (see the module
    /// doc).
    pub fn append(&mut self, src: Ipv4Addr, p: &[u8]) -> bool {
        if self.len == 0 || self.closed || src != self.src {
            return false;
        }
        let Some((s, flags)) = shape(p) else {
            return false;
        };
        let b = &self.buf[..self.len];
        let Shape { l3, l4, hdrs, .. } = s;
        if s != self.shape
            || (flags != TCP_ACK && flags != TCP_ACK | TCP_PSH)
            || p[..l3] != b[..l3]
            || be32(p, l4 + 4) != Some(self.next_seq)
            || p[l4..l4 + 4] != b[l4..l4 + 4]
            || p[l4 + 8..l4 + 13] != b[l4 + 8..l4 + 13]
            || p[l4 + 14..l4 + 16] != b[l4 + 14..l4 + 16]
            || p[l4 + 18..hdrs] != b[l4 + 18..hdrs]
        {
            return false;
        }
        let same_ip = if s.ipv4 {
            // version/IHL, TOS; flags/fragment, TTL, protocol; addresses
            p[l3..l3 + 2] == b[l3..l3 + 2]
                && p[l3 + 6..l3 + 10] == b[l3 + 6..l3 + 10]
                && p[l3 + 12..l3 + 20] == b[l3 + 12..l3 + 20]
        } else {
            // version/class/flow; next header, hop limit, addresses
            p[l3..l3 + 4] == b[l3..l3 + 4] && p[l3 + 6..l3 + 40] == b[l3 + 6..l3 + 40]
        };
        let data = &p[hdrs..];
        if !same_ip
            || data.len() > self.mss
            || self.len + data.len() - l3 > MAX_IP_LEN
            || self.len + data.len() > self.buf.len()
        {
            return false;
        }
        self.buf[self.len..self.len + data.len()].copy_from_slice(data);
        self.len += data.len();
        self.next_seq = self.next_seq.wrapping_add(data.len() as u32);
        self.count += 1;
        if flags & TCP_PSH != 0 {
            self.buf[l4 + 13] |= TCP_PSH;
            self.closed = true;
        }
        if data.len() < self.mss {
            self.closed = true;
        }
        true
    }

    /// The whole protocol for one received datagram: join it, or hand over what is pending
    /// and then either begin a new super-frame with it or hand it over alone. `emit` gets
    /// every frame to process, in arrival order.
    pub fn feed(
        &mut self,
        src: Ipv4Addr,
        p: &mut [u8],
        emit: &mut impl FnMut(Ipv4Addr, &mut [u8], &VnetHdr),
    ) {
        if self.append(src, p) {
            return;
        }
        self.flush(emit);
        if !self.start(src, p) {
            emit(src, p, &VnetHdr::default());
        }
    }

    /// Hand what is pending to `emit` (the end of a receive round).
    pub fn flush(&mut self, emit: &mut impl FnMut(Ipv4Addr, &mut [u8], &VnetHdr)) {
        if let Some((src, f, v)) = self.take() {
            emit(src, f, &v);
        }
    }

    /// Hand over what is pending (the VTEP, the VXLAN payload, its virtio-net header) and
    /// empty the coalescer; `None` if nothing is pending.
    pub fn take(&mut self) -> Option<(Ipv4Addr, &mut [u8], VnetHdr)> {
        if self.len == 0 {
            return None;
        }
        let len = std::mem::take(&mut self.len);
        let Shape { ipv4, l3, l4, hdrs } = self.shape;
        let frame = &mut self.buf[..len];
        if self.count == 1 {
            return Some((self.src, frame, VnetHdr::default()));
        }
        let l4_len = len - l4;
        let mut pseudo = [0u8; 40];
        let pseudo = if ipv4 {
            // IP length fits: append() keeps it ≤ 65,535
            frame[l3 + 2..l3 + 4].copy_from_slice(&((len - l3) as u16).to_be_bytes());
            frame[l3 + 10..l3 + 12].copy_from_slice(&[0, 0]);
            let c = internet_checksum(&frame[l3..l4]);
            frame[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
            pseudo[..8].copy_from_slice(&frame[l3 + 12..l3 + 20]);
            pseudo[9] = IPPROTO_TCP;
            pseudo[10..12].copy_from_slice(&(l4_len as u16).to_be_bytes());
            &pseudo[..12]
        } else {
            frame[l3 + 4..l3 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            pseudo[..32].copy_from_slice(&frame[l3 + 8..l3 + 40]);
            pseudo[34..36].copy_from_slice(&(l4_len as u16).to_be_bytes());
            pseudo[39] = IPPROTO_TCP;
            &pseudo[..]
        };
        // a partial checksum holds the (uncomplemented) pseudo-header sum
        let partial = !internet_checksum(pseudo);
        frame[l4 + 16..l4 + 18].copy_from_slice(&partial.to_be_bytes());
        let vnet = VnetHdr {
            flags: VNET_HDR_F_NEEDS_CSUM,
            gso_type: if ipv4 { GSO_TCPV4 } else { GSO_TCPV6 },
            hdr_len: (hdrs - VX) as u16,
            gso_size: self.mss as u16,
            csum_start: (l4 - VX) as u16,
            csum_offset: 16,
        };
        Some((self.src, frame, vnet))
    }
}

#[cfg(test)]
mod tests;
