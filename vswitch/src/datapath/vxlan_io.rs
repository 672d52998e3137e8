//! The worker's VXLAN socket: one nonblocking UDP socket bound on `vtep:4789`, created by
//! the daemon at start in cluster mode (a bind failure is a start error), polled by the
//! worker with the ports.
//!
//! Contract: [`VxlanIo::send`] implements [`crate::forward::Output::send_remote`]: `None`
//! when the host is not live in the snapshot's overlay table or the VLAN has no VNI (no
//! tunnel); otherwise the frame is prepared with [`segment_gso`] (checksum completed, a
//! GSO super-frame cut to the underlay's inner MTU), each piece encapsulated
//! ([`vxlan::encap_into`]) and sent to the host's VTEP, port 4789. Every buffer is made once,
//! at start: nothing allocates per frame. The UDP source port is the socket's (one per
//! host): per-flow source ports (RFC 7348 §5) would take a socket per port or a raw socket,
//! and are left out. [`VxlanIo::recv`] reads one datagram into its buffer.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

use vip_table::HostId;

use crate::overlay::Overlay;
use crate::port::vnet::segment_gso;
use crate::port::{resident_zeroed, PortError, VnetHdr, MAX_FRAME_LEN};
use crate::wire::vxlan::{self, UDP_PORT};

/// The largest UDP payload read (a datagram is at most 64 KiB).
const RX_LEN: usize = 65_536;

/// The socket and its buffers.
pub struct VxlanIo {
    sock: UdpSocket,
    scratch: Box<[u8]>,
    encap: Vec<u8>,
    rx: Box<[u8]>,
}

impl std::fmt::Debug for VxlanIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VxlanIo").field("sock", &self.sock).finish()
    }
}

impl VxlanIo {
    /// Bind `vtep:4789`, nonblocking.
    pub fn bind(vtep: Ipv4Addr) -> io::Result<VxlanIo> {
        let sock = UdpSocket::bind(SocketAddrV4::new(vtep, UDP_PORT))?;
        sock.set_nonblocking(true)?;
        Ok(VxlanIo {
            sock,
            scratch: resident_zeroed(MAX_FRAME_LEN),
            encap: Vec::with_capacity(MAX_FRAME_LEN + vxlan::HEADER_LEN),
            rx: resident_zeroed(RX_LEN),
        })
    }

    /// The socket's fd (for the poller).
    pub fn raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Send `frame` to `host` in the segment of `vlan` (see the module doc).
    pub fn send(
        &mut self,
        ov: &Overlay,
        host: HostId,
        vlan: u16,
        frame: &[u8],
        vnet: &VnetHdr,
    ) -> Option<Result<(), PortError>> {
        let h = ov.host(host)?;
        let vni = ov.vni(vlan)?;
        let dst = SocketAddrV4::new(h.vtep, UDP_PORT);
        let mut err: Option<io::Error> = None;
        let encap = &mut self.encap;
        let sock = &self.sock;
        let r = segment_gso(
            frame,
            vnet,
            usize::from(ov.inner_mtu),
            &mut self.scratch,
            |seg| {
                encap.clear();
                vxlan::encap_into(encap, vni, seg);
                if let Err(e) = sock.send_to(encap, dst) {
                    err.get_or_insert(e);
                }
            },
        );
        Some(match (r, err) {
            (Err(e), _) => Err(PortError::Offload(e)),
            (Ok(_), None) => Ok(()),
            (Ok(_), Some(e)) if e.kind() == io::ErrorKind::WouldBlock => Err(PortError::WouldBlock),
            (Ok(_), Some(e)) => Err(PortError::Io(e)),
        })
    }

    /// Read one datagram: its IPv4 source and its payload (in the socket's buffer).
    /// `Ok(None)`: nothing to read; a datagram from an IPv6 source is skipped.
    pub fn recv(&mut self) -> io::Result<Option<(Ipv4Addr, &mut [u8])>> {
        loop {
            match self.sock.recv_from(&mut self.rx) {
                Ok((n, SocketAddr::V4(a))) => {
                    let ip = *a.ip();
                    return Ok(self.rx.get_mut(..n).map(|b| (ip, b)));
                }
                Ok((_, SocketAddr::V6(_))) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}
