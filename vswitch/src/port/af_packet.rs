//! An AF_PACKET socket on an existing interface: the host side of a tap whose fd QEMU
//! holds, or the host side of a veth.
//!
//! [`PacketPort::open`] creates a non-blocking `SOCK_RAW` socket, enables
//! `PACKET_VNET_HDR` (so checksum-offload and GSO metadata survive the trip: without it,
//! partial-checksum frames lose their metadata and every TCP connection through the switch
//! breaks while ping still works), `PACKET_AUXDATA` (to restore VLAN tags the kernel keeps
//! out of band), `PACKET_IGNORE_OUTGOING` (frames the switch sends are never read back;
//! `PACKET_OUTGOING` frames are also filtered as a fallback), joins `PACKET_MR_PROMISC`,
//! enlarges the socket buffers and binds to the interface with `ETH_P_ALL`. The socket is
//! created with protocol 0 and only starts receiving at `bind`, so it never sees frames of
//! other interfaces.
//!
//! - Receiving: `recvmmsg` of up to [`RECV_CHUNK`] frames per call, into the batch's buffers.
//! - Sending: `sendmsg` of [header, frame] (no copy); [`Port::send_batch`] uses `sendmmsg`.
//! - Vanish: when the interface is deleted (or moved to another namespace) the kernel sets
//!   `ENETDOWN` on the socket once and unbinds it; the fd polls readable from then on (seen
//!   as `POLLIN` on Linux 6.18), the next receive fails with `ENETDOWN`, sends fail with
//!   `ENXIO`. `ENETDOWN` also happens when the link is merely set down, so every such error
//!   is confirmed by checking that the socket is still bound to its ifindex
//!   (`getsockname`; the kernel resets it on unregister) before [`PortError::Gone`] is
//!   reported. A link that is down but present gives [`PortError::LinkDown`] on send and
//!   nothing on receive; the kernel re-attaches the socket when the link comes back up.
//! - The race that makes [`Port::is_present`] necessary: deleting an interface first takes
//!   it down (the socket gets `ENETDOWN` while the ifindex still exists, so the port can
//!   only say "link down"), then unregisters it — and that second step raises no new error
//!   and no wake-up on the socket. The same holds for an interface set down and deleted
//!   later. So after a [`PortError::LinkDown`] (or `Ok(0)` receives following an
//!   `ENETDOWN`), every empty `recv_batch` re-checks presence, and the datapath must call
//!   `is_present()` periodically (e.g. once a second) for AF_PACKET ports: it is one
//!   `getsockname` call.
//!
//! VLAN: on receive the kernel keeps an 802.1Q tag it got as metadata (veth, most NICs) out
//! of the frame bytes; the port puts it back from `PACKET_AUXDATA`, so the switch always
//! sees tags in the frame. On send, tags in the frame bytes go out as they are.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use super::sys::{self, IfName};
use super::vnet::{SoftwareOffload, VNET_HDR_LEN};
use super::{Batch, IoCounters, Offloads, PacketBuf, Port, PortError, RingPort, RingRx, VnetHdr};

/// Frames per `recvmmsg`/`sendmmsg` call (the per-call arrays live on the stack).
pub const RECV_CHUNK: usize = 64;

// `linux/if_packet.h` and `linux/if_ether.h`, from libc; the casts narrow libc's c_int to
// the field widths the kernel structs use (`sll_protocol`, `mr_type`, a TPID).
const ETH_P_ALL: u16 = libc::ETH_P_ALL as u16;
use libc::{
    PACKET_ADD_MEMBERSHIP, PACKET_AUXDATA, PACKET_IGNORE_OUTGOING, PACKET_OUTGOING,
    PACKET_VNET_HDR, SOL_PACKET, TP_STATUS_VLAN_TPID_VALID, TP_STATUS_VLAN_VALID,
};
const PACKET_MR_PROMISC: libc::c_ushort = libc::PACKET_MR_PROMISC as libc::c_ushort;
const ETHERTYPE_VLAN: u16 = libc::ETH_P_8021Q as u16;

/// `struct packet_mreq`.
#[derive(Clone, Copy)]
#[repr(C)]
struct PacketMreq {
    mr_ifindex: libc::c_int,
    mr_type: libc::c_ushort,
    mr_alen: libc::c_ushort,
    mr_address: [u8; 8],
}

/// Room for one `PACKET_AUXDATA` control message (`CMSG_SPACE(20)` = 40 on 64-bit).
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct ControlBuf([u8; 64]);

/// How to open an AF_PACKET port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketOptions {
    /// Enable `PACKET_VNET_HDR` (offload metadata passes through). Default true. Without it,
    /// send completes checksums / segments GSO frames in software — but frames received from
    /// a device with offloads can then carry partial checksums the switch cannot see.
    pub vnet_hdr: bool,
    /// Join `PACKET_MR_PROMISC` on the interface. Default true.
    pub promiscuous: bool,
    /// `SO_RCVBUF`/`SO_SNDBUF` in bytes (forced beyond `rmem_max` when privileged).
    /// Default 4 MiB.
    pub socket_buffer: usize,
    /// Join a `PACKET_FANOUT` group (hash mode: every frame of a flow goes to the same
    /// socket), so several workers each read their share of the interface. Default none.
    pub fanout: Option<Fanout>,
}

/// A `PACKET_FANOUT` group of the sockets of one interface (one per worker).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fanout {
    /// Create a group with an id the kernel picks (`PACKET_FANOUT_FLAG_UNIQUEID`); read it
    /// with [`PacketPort::fanout_id`] to join the others.
    New,
    /// Join the group with this id.
    Join(u16),
}

use libc::{
    PACKET_FANOUT, PACKET_FANOUT_FLAG_DEFRAG, PACKET_FANOUT_FLAG_UNIQUEID, PACKET_FANOUT_HASH,
};

impl Default for PacketOptions {
    fn default() -> Self {
        Self {
            vnet_hdr: true,
            promiscuous: true,
            socket_buffer: 4 << 20,
            fanout: None,
        }
    }
}

/// An AF_PACKET port bound to one interface.
#[derive(Debug)]
pub struct PacketPort {
    name: String,
    ifindex: u32,
    fd: OwnedFd,
    offloads: Offloads,
    soft: Option<SoftwareOffload>,
    mtu: usize,
    ignore_outgoing: bool,
    counters: IoCounters,
    gone_errno: Option<i32>,
    /// Set when the kernel reported the link down (`ENETDOWN`) while it still existed: the
    /// socket is unhooked, and a later deletion raises no new error, so every empty receive
    /// re-checks presence until a send succeeds again. Holds the errno that reported it.
    link_down: Option<i32>,
    fanout_id: Option<u16>,
}

impl PacketPort {
    /// Opens an AF_PACKET port on the existing interface `ifname` (in the caller's network
    /// namespace); see the module docs.
    pub fn open(ifname: &str, opts: &PacketOptions) -> Result<Self, PortError> {
        let name = IfName::new(ifname).ok_or_else(|| PortError::InvalidName(ifname.to_owned()))?;
        let setup = |step: &'static str| {
            move |source: std::io::Error| PortError::Setup {
                port: ifname.to_owned(),
                step,
                source,
            }
        };
        let ifindex = sys::if_nametoindex(&name).map_err(setup("look up interface"))?;
        let fd = sys::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
        .map_err(setup("socket(AF_PACKET, SOCK_RAW)"))?;
        let on: libc::c_int = 1;
        if opts.vnet_hdr {
            sys::setsockopt(fd.as_fd(), SOL_PACKET, PACKET_VNET_HDR, &on)
                .map_err(setup("PACKET_VNET_HDR"))?;
        }
        sys::setsockopt(fd.as_fd(), SOL_PACKET, PACKET_AUXDATA, &on)
            .map_err(setup("PACKET_AUXDATA"))?;
        // Kernel >= 4.20; older kernels fall back to filtering PACKET_OUTGOING on receive.
        let ignore_outgoing =
            sys::setsockopt(fd.as_fd(), SOL_PACKET, PACKET_IGNORE_OUTGOING, &on).is_ok();
        let bufsize = libc::c_int::try_from(opts.socket_buffer).unwrap_or(libc::c_int::MAX);
        for (force, plain, step) in [
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, "SO_RCVBUF"),
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, "SO_SNDBUF"),
        ] {
            if sys::setsockopt(fd.as_fd(), libc::SOL_SOCKET, force, &bufsize).is_err() {
                sys::setsockopt(fd.as_fd(), libc::SOL_SOCKET, plain, &bufsize)
                    .map_err(setup(step))?;
            }
        }
        let ifindex_c = libc::c_int::try_from(ifindex)
            .map_err(|_| setup("ifindex")(std::io::Error::from_raw_os_error(libc::EINVAL)))?;
        if opts.promiscuous {
            let mreq = PacketMreq {
                mr_ifindex: ifindex_c,
                mr_type: PACKET_MR_PROMISC,
                mr_alen: 0,
                mr_address: [0; 8],
            };
            sys::setsockopt(fd.as_fd(), SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mreq)
                .map_err(setup("PACKET_ADD_MEMBERSHIP (promiscuous)"))?;
        }
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as libc::c_ushort;
        addr.sll_protocol = ETH_P_ALL.to_be();
        addr.sll_ifindex = ifindex_c;
        sys::bind_ll(fd.as_fd(), &addr).map_err(setup("bind to interface"))?;
        let mut fanout_id = None;
        if let Some(f) = opts.fanout {
            // flow hash (IP fragments reassembled first, so they follow their flow)
            let mode = (PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << 16;
            let arg: u32 = match f {
                Fanout::New => mode | (PACKET_FANOUT_FLAG_UNIQUEID << 16),
                Fanout::Join(id) => mode | u32::from(id),
            };
            sys::setsockopt(fd.as_fd(), SOL_PACKET, PACKET_FANOUT, &arg)
                .map_err(setup("PACKET_FANOUT"))?;
            let got: u32 = sys::getsockopt_u32(fd.as_fd(), SOL_PACKET, PACKET_FANOUT)
                .map_err(setup("read PACKET_FANOUT"))?;
            fanout_id = Some((got & 0xffff) as u16);
        }
        let mtu = sys::link_mtu(&name).unwrap_or(1500);
        Ok(Self {
            name: ifname.to_owned(),
            ifindex,
            fd,
            offloads: if opts.vnet_hdr {
                Offloads::FULL
            } else {
                Offloads::NONE
            },
            soft: (!opts.vnet_hdr).then(SoftwareOffload::new),
            mtu,
            ignore_outgoing,
            counters: IoCounters::default(),
            gone_errno: None,
            link_down: None,
            fanout_id,
        })
    }

    /// The `PACKET_FANOUT` group the socket is in.
    pub fn fanout_id(&self) -> Option<u16> {
        self.fanout_id
    }

    /// The ifindex the socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Whether `PACKET_IGNORE_OUTGOING` is in effect (otherwise outgoing frames are filtered
    /// after reading them).
    pub fn ignores_outgoing(&self) -> bool {
        self.ignore_outgoing
    }

    /// Overrides the MTU used when segmenting GSO frames in software (ports without vnet
    /// headers only; defaults to the link MTU when the port was opened).
    pub fn set_segmentation_mtu(&mut self, mtu: usize) {
        self.mtu = mtu;
    }

    /// Whether the socket is still bound to its interface. The kernel resets the bound
    /// ifindex when the interface is unregistered (deleted, or moved to another namespace),
    /// so this is exact and costs one `getsockname`.
    fn present(&self) -> bool {
        match sys::packet_bound_ifindex(self.fd.as_fd()) {
            Ok(idx) => u32::try_from(idx).is_ok_and(|i| i == self.ifindex),
            Err(_) => sys::ifindex_exists(self.ifindex),
        }
    }

    fn classify(&mut self, e: std::io::Error) -> PortError {
        let errno = sys::errno_of(&e);
        match errno {
            libc::EAGAIN | libc::ENOBUFS => PortError::WouldBlock,
            libc::ENETDOWN | libc::ENXIO | libc::ENODEV => {
                if self.present() {
                    self.link_down = Some(errno);
                    PortError::LinkDown
                } else {
                    self.gone_errno = Some(errno);
                    PortError::Gone { errno }
                }
            }
            libc::EMSGSIZE | libc::EINVAL => PortError::Rejected(e),
            _ => PortError::Io(e),
        }
    }

    fn send_one(&mut self, hdr: &[u8], frame: &[u8]) -> Result<(), PortError> {
        loop {
            let r = if hdr.is_empty() {
                sys::send(self.fd.as_fd(), frame)
            } else {
                sys::send2(self.fd.as_fd(), hdr, frame)
            };
            return match r {
                Ok(_) => {
                    self.counters.tx_frames += 1;
                    self.counters.tx_bytes += frame.len() as u64;
                    self.link_down = None;
                    Ok(())
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) => {
                    let err = self.classify(e);
                    if !err.is_gone() {
                        self.counters.tx_dropped += 1;
                    }
                    Err(err)
                }
            };
        }
    }
}

/// Reads the VLAN tag (TPID, TCI) from a `PACKET_AUXDATA` control message, if present.
///
/// Walks the control bytes safely (no pointer casts: the buffer need not be aligned),
/// with the field offsets of libc's `cmsghdr` and `tpacket_auxdata`.
fn vlan_from_control(ctrl: &[u8]) -> Option<(u16, u16)> {
    use libc::{cmsghdr, tpacket_auxdata};
    use std::mem::{offset_of, size_of};
    const HDR: usize = size_of::<cmsghdr>();
    const ALIGN: usize = size_of::<usize>();
    let u16_at = |b: &[u8], o: usize| Some(u16::from_ne_bytes(b.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |b: &[u8], o: usize| Some(u32::from_ne_bytes(b.get(o..o + 4)?.try_into().ok()?));
    let mut off = 0;
    while off + HDR <= ctrl.len() {
        let h = &ctrl[off..off + HDR];
        let at = offset_of!(cmsghdr, cmsg_len);
        let len = usize::from_ne_bytes(h.get(at..at + size_of::<usize>())?.try_into().ok()?);
        let level = u32_at(h, offset_of!(cmsghdr, cmsg_level))? as libc::c_int;
        let ty = u32_at(h, offset_of!(cmsghdr, cmsg_type))? as libc::c_int;
        if len < HDR || len > ctrl.len() - off {
            return None;
        }
        if level == SOL_PACKET && ty == PACKET_AUXDATA && len >= HDR + size_of::<tpacket_auxdata>()
        {
            let d = &ctrl[off + HDR..off + len];
            let status = u32_at(d, offset_of!(tpacket_auxdata, tp_status))?;
            let tci = u16_at(d, offset_of!(tpacket_auxdata, tp_vlan_tci))?;
            let tpid = u16_at(d, offset_of!(tpacket_auxdata, tp_vlan_tpid))?;
            if status & TP_STATUS_VLAN_VALID == 0 {
                return None;
            }
            let tpid = if status & TP_STATUS_VLAN_TPID_VALID != 0 {
                tpid
            } else {
                ETHERTYPE_VLAN
            };
            return Some((tpid, tci));
        }
        // CMSG_ALIGN: the next header starts at the next multiple of the word size
        off += (len + ALIGN - 1) & !(ALIGN - 1);
    }
    None
}

impl Port for PacketPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn offloads(&self) -> Offloads {
        self.offloads
    }

    fn recv_batch(&mut self, batch: &mut Batch) -> Result<usize, PortError> {
        batch.clear();
        if let Some(errno) = self.gone_errno {
            return Err(PortError::Gone { errno });
        }
        let vnet = self.offloads.vnet_hdr;
        let hdr_room = if vnet { 0 } else { VNET_HDR_LEN };
        // Bounds the loop even if the kernel kept failing single frames.
        let mut budget = 2 * batch.capacity();
        while !batch.is_full() && budget > 0 {
            budget -= 1;
            let spare = batch.spare_mut();
            let want = spare.len().min(RECV_CHUNK);
            // SAFETY: these are plain C structs; all-zero is valid for each (null pointers,
            // zero lengths).
            let mut msgs: [libc::mmsghdr; RECV_CHUNK] = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            let mut iovs: [libc::iovec; RECV_CHUNK] = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            let mut addrs: [libc::sockaddr_ll; RECV_CHUNK] = unsafe { std::mem::zeroed() };
            let mut ctrls = [ControlBuf([0; 64]); RECV_CHUNK];
            for i in 0..want {
                let area = &mut spare[i].raw_mut()[hdr_room..];
                iovs[i] = libc::iovec {
                    iov_base: area.as_mut_ptr().cast(),
                    iov_len: area.len(),
                };
                let h = &mut msgs[i].msg_hdr;
                h.msg_name = std::ptr::from_mut(&mut addrs[i]).cast();
                h.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
                h.msg_iov = std::ptr::from_mut(&mut iovs[i]);
                h.msg_iovlen = 1;
                h.msg_control = ctrls[i].0.as_mut_ptr().cast();
                h.msg_controllen = ctrls[i].0.len();
            }
            // SAFETY: every msg_hdr points into `addrs`, `iovs`, `ctrls` (locals that outlive
            // the call) and into the spare buffers of `batch`, which stay exclusively borrowed
            // (not touched) until recvmmsg returns; lengths match the memory.
            let got = match unsafe { sys::recvmmsg(self.fd.as_fd(), &mut msgs[..want]) } {
                Ok(n) => n,
                Err(e) => match e.raw_os_error() {
                    Some(libc::EAGAIN) => break,
                    Some(libc::EINTR) => continue,
                    Some(libc::EINVAL) | Some(libc::EMSGSIZE) => {
                        // The kernel dequeued a frame it could not describe in a vnet header.
                        self.counters.rx_dropped += 1;
                        continue;
                    }
                    _ => {
                        // The kernel reports a socket error (ENETDOWN) only once: classify it
                        // now, so a loss found here is remembered even if frames go out first.
                        let err = self.classify(e);
                        if !batch.is_empty() {
                            // Deliver what was read; a Gone is reported by the next call.
                            break;
                        }
                        if err.is_gone() {
                            return Err(err);
                        }
                        // Link down (socket unhooked until it comes back up) or transient.
                        if matches!(err, PortError::LinkDown | PortError::WouldBlock) {
                            return Ok(0);
                        }
                        return Err(err);
                    }
                },
            };
            let mut kept = 0;
            for i in 0..got {
                let n = msgs[i].msg_len as usize;
                let flags = msgs[i].msg_hdr.msg_flags;
                let ctrl_len = msgs[i].msg_hdr.msg_controllen.min(ctrls[i].0.len());
                if addrs[i].sll_pkttype == PACKET_OUTGOING {
                    self.counters.rx_outgoing_skipped += 1;
                    continue;
                }
                if flags & libc::MSG_TRUNC != 0 {
                    self.counters.rx_dropped += 1;
                    continue;
                }
                let buf = &mut batch.spare_mut()[i];
                let (mut hdr, mut len) = if vnet {
                    match VnetHdr::parse(&buf.raw_mut()[..n]) {
                        Some(h) => (h, n - VNET_HDR_LEN),
                        None => {
                            self.counters.rx_dropped += 1;
                            continue;
                        }
                    }
                } else {
                    (VnetHdr::default(), n)
                };
                if len < 14 {
                    self.counters.rx_dropped += 1;
                    continue;
                }
                if let Some((tpid, tci)) = vlan_from_control(&ctrls[i].0[..ctrl_len]) {
                    // The kernel stripped the tag into metadata; put it back at offset 12.
                    let area = buf.frame_area_mut();
                    if len + 4 > area.len() {
                        self.counters.rx_dropped += 1;
                        continue;
                    }
                    area.copy_within(12..len, 16);
                    area[12..14].copy_from_slice(&tpid.to_be_bytes());
                    area[14..16].copy_from_slice(&tci.to_be_bytes());
                    len += 4;
                    if hdr.needs_csum() {
                        hdr.csum_start = hdr.csum_start.saturating_add(4);
                    }
                    if hdr.hdr_len != 0 {
                        hdr.hdr_len = hdr.hdr_len.saturating_add(4);
                    }
                }
                buf.set_len(len);
                buf.set_vnet(hdr);
                self.counters.rx_frames += 1;
                self.counters.rx_bytes += len as u64;
                self.counters.rx_gso += u64::from(hdr.is_gso());
                self.counters.rx_needs_csum += u64::from(hdr.needs_csum());
                batch.swap_spare(kept, i);
                kept += 1;
            }
            batch.commit(kept);
            if got < want {
                break;
            }
        }
        // Frames read after a link-down may have been queued before it, so only a successful
        // send (not a receive) proves the link works again.
        if let (true, Some(errno)) = (batch.is_empty(), self.link_down) {
            if !self.present() {
                self.gone_errno = Some(errno);
                return Err(PortError::Gone { errno });
            }
        }
        Ok(batch.len())
    }

    fn send(&mut self, frame: &[u8], vnet: &VnetHdr) -> Result<(), PortError> {
        super::send_via(self, frame, vnet)
    }

    fn send_batch(&mut self, batch: &Batch) -> Result<usize, PortError> {
        if !self.offloads.vnet_hdr {
            // Software offload may turn one frame into many: one send per produced frame.
            let mut sent = 0;
            for buf in batch {
                match self.send(buf.frame(), &buf.vnet()) {
                    Ok(()) => sent += 1,
                    Err(e) if e.is_frame_drop() => {}
                    Err(e) => return Err(e),
                }
            }
            return Ok(sent);
        }
        if let Some(errno) = self.gone_errno {
            return Err(PortError::Gone { errno });
        }
        let mut sent = 0;
        let mut start = 0;
        let frames = batch.as_slice();
        while start < frames.len() {
            let chunk = &frames[start..frames.len().min(start + RECV_CHUNK)];
            let mut hdrs = [[0u8; VNET_HDR_LEN]; RECV_CHUNK];
            // SAFETY: plain C structs; all-zero is valid.
            let mut iovs: [[libc::iovec; 2]; RECV_CHUNK] = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            let mut msgs: [libc::mmsghdr; RECV_CHUNK] = unsafe { std::mem::zeroed() };
            for (i, buf) in chunk.iter().enumerate() {
                hdrs[i] = buf.vnet().to_bytes();
                let frame = buf.frame();
                iovs[i] = [
                    libc::iovec {
                        iov_base: hdrs[i].as_mut_ptr().cast(),
                        iov_len: VNET_HDR_LEN,
                    },
                    libc::iovec {
                        iov_base: frame.as_ptr().cast_mut().cast(),
                        iov_len: frame.len(),
                    },
                ];
                msgs[i].msg_hdr.msg_iov = iovs[i].as_mut_ptr();
                msgs[i].msg_hdr.msg_iovlen = 2;
            }
            // SAFETY: each msg_hdr points to two iovecs in `iovs`, which point to `hdrs` and to
            // frames in `batch`; all outlive the call and the kernel only reads them.
            match unsafe { sys::sendmmsg(self.fd.as_fd(), &mut msgs[..chunk.len()]) } {
                Ok(n) => {
                    for buf in &chunk[..n] {
                        self.counters.tx_frames += 1;
                        self.counters.tx_bytes += buf.len() as u64;
                    }
                    sent += n;
                    start += n;
                    if n < chunk.len() {
                        // Frame `start` was refused: send it alone to learn why (the error
                        // is classified and the drop counted there), then go on.
                        let buf = &frames[start];
                        start += 1;
                        match self.send_one(&buf.vnet().to_bytes(), buf.frame()) {
                            Ok(()) => sent += 1,
                            Err(e) if e.is_frame_drop() => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) => {
                    let err = self.classify(e);
                    if err.is_frame_drop() {
                        self.counters.tx_dropped += 1;
                        start += 1;
                    } else {
                        return Err(err);
                    }
                }
            }
        }
        Ok(sent)
    }

    fn is_present(&self) -> bool {
        self.gone_errno.is_none() && self.present()
    }

    fn link_down_reported(&self) -> bool {
        self.link_down.is_some()
    }

    fn io_counters(&self) -> IoCounters {
        self.counters
    }

    fn ring(&mut self) -> Option<&mut dyn RingPort> {
        Some(self)
    }

    fn clone_tx(&self) -> Option<Box<dyn Port>> {
        let fd = self.fd.try_clone().ok()?;
        Some(Box::new(PacketPort {
            name: self.name.clone(),
            ifindex: self.ifindex,
            fd,
            offloads: self.offloads,
            soft: self.soft.as_ref().map(|_| SoftwareOffload::new()),
            mtu: self.mtu,
            ignore_outgoing: self.ignore_outgoing,
            counters: IoCounters::default(),
            gone_errno: None,
            link_down: None,
            fanout_id: self.fanout_id,
        }))
    }
}

/// Receiving stays `recvmmsg` (one call per [`RECV_CHUNK`] frames already, and the VLAN tag
/// comes in a control message); sending goes through the ring.
impl RingPort for PacketPort {
    fn ring_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn ring_rx_offset(&self) -> Option<usize> {
        None
    }

    fn ring_rx_done(&mut self, _buf: &mut PacketBuf, _res: i32) -> RingRx {
        RingRx::Empty
    }

    fn ring_tx_hdr(&self, vnet: &VnetHdr) -> Option<bool> {
        super::ring::tx_hdr(self.gone_errno.is_some(), self.offloads.vnet_hdr, vnet)
    }

    fn ring_tx_done(&mut self, len: usize, res: i32) -> Result<(), PortError> {
        if res >= 0 {
            self.counters.tx_frames += 1;
            self.counters.tx_bytes += len as u64;
            self.link_down = None;
            return Ok(());
        }
        let err = self.classify(super::ring::errno_error(res));
        if !err.is_gone() {
            self.counters.tx_dropped += 1;
        }
        Err(err)
    }
}

impl super::RawTx for PacketPort {
    fn write_raw(&mut self, hdr: &[u8], frame: &[u8]) -> Result<(), PortError> {
        self.send_one(hdr, frame)
    }
    fn tx_state(&mut self) -> super::TxState<'_> {
        super::TxState {
            soft: &mut self.soft,
            counters: &mut self.counters,
            mtu: self.mtu,
            gone_errno: self.gone_errno,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmsg(level: i32, ty: i32, data: &[u8]) -> Vec<u8> {
        let len = 16 + data.len();
        let mut v = Vec::new();
        v.extend_from_slice(&len.to_ne_bytes());
        v.extend_from_slice(&level.to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(data);
        while v.len() % 8 != 0 {
            v.push(0);
        }
        v
    }

    fn auxdata(status: u32, tci: u16, tpid: u16) -> Vec<u8> {
        let mut d = Vec::new();
        d.extend_from_slice(&status.to_ne_bytes());
        d.extend_from_slice(&[0; 12]); // tp_len, tp_snaplen, tp_mac, tp_net
        d.extend_from_slice(&tci.to_ne_bytes());
        d.extend_from_slice(&tpid.to_ne_bytes());
        d
    }

    #[test]
    fn vlan_tag_is_read_from_auxdata() {
        let c = cmsg(
            SOL_PACKET,
            PACKET_AUXDATA,
            &auxdata(TP_STATUS_VLAN_VALID, 100, 0),
        );
        assert_eq!(vlan_from_control(&c), Some((0x8100, 100)));
        let c = cmsg(
            SOL_PACKET,
            PACKET_AUXDATA,
            &auxdata(TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID, 7, 0x88a8),
        );
        assert_eq!(vlan_from_control(&c), Some((0x88a8, 7)));
        let c = cmsg(SOL_PACKET, PACKET_AUXDATA, &auxdata(1, 100, 0x8100));
        assert_eq!(vlan_from_control(&c), None);
        let mut two = cmsg(libc::SOL_SOCKET, 1, &[0; 4]);
        two.extend(cmsg(
            SOL_PACKET,
            PACKET_AUXDATA,
            &auxdata(TP_STATUS_VLAN_VALID, 5, 0),
        ));
        assert_eq!(vlan_from_control(&two), Some((0x8100, 5)));
        // Garbage never panics.
        for len in 0..two.len() {
            let _ = vlan_from_control(&two[..len]);
        }
        let mut bad = two.clone();
        bad[..8].copy_from_slice(&usize::MAX.to_ne_bytes());
        assert_eq!(vlan_from_control(&bad), None);
    }
}
