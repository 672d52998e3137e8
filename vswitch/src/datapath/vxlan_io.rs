//! The worker's VXLAN socket: one nonblocking UDP socket bound on `vtep:4789`, created by
//! the daemon at start in cluster mode (a bind failure is a start error), polled by the
//! worker with the ports.
//!
//! Contract: [`VxlanIo::send`] implements [`crate::forward::Output::send_remote`]: `None`
//! when the host is not live in the snapshot's overlay table or the VLAN has no VNI (no
//! tunnel); otherwise the frame is prepared with [`segment_gso`] (checksum completed, a
//! GSO super-frame cut to the underlay's inner MTU), each piece encapsulated
//! ([`vxlan::encap_into`]) and sent to the host's VTEP, port 4789.
//!
//! Sending, by `cluster.udp_gso`:
//! - **UDP GSO** (`auto` where the kernel has it, or `on`): the encapsulated pieces of one
//!   frame are laid end to end in one buffer and handed over in one `sendmsg` with
//!   `UDP_SEGMENT` = the piece size; the kernel cuts the buffer into datagrams again. All
//!   pieces but the last have the same size (that is how [`segment_gso`] cuts), so one
//!   batch holds a whole super-frame up to [`MAX_GSO_BYTES`] or
//!   [`sys::UDP_MAX_SEGMENTS`] pieces; a longer one takes two. A frame that is one piece
//!   goes out with a plain `send_to`. If the kernel refuses a batch at run time (`EIO`:
//!   the route's device cannot checksum), the batch is resent one datagram at a time and
//!   GSO stays off for the socket's life (logged once).
//! - **One datagram per send** (`off`, or `auto` without kernel support).
//!
//! The socket's kernel buffers are raised to [`SOCKET_BUFFER`] at bind.
//!
//! Every buffer is made once, at start: nothing allocates per frame. The UDP source port
//! is the socket's (one per host): per-flow source ports (RFC 7348 §5) would take a socket
//! per port or a raw socket, and are left out.
//!
//! Receiving: the socket has `UDP_GRO` on, so the kernel may hand over several datagrams
//! of one flow in one read (a GSO batch from another host that it never had to cut, or
//! what the NIC's GRO joined); [`VxlanIo::recv`] hands them out one at a time, in order,
//! so the worker sees datagrams either way.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

use vip_table::HostId;

use crate::config::UdpGso;
use crate::overlay::Overlay;
use crate::port::sys;
use crate::port::vnet::segment_gso;
use crate::port::{resident_zeroed, PortError, VnetHdr, MAX_FRAME_LEN};
use crate::wire::vxlan::{self, UDP_PORT};

/// The largest UDP payload read (a datagram is at most 64 KiB).
const RX_LEN: usize = 65_536;

/// The most bytes one UDP GSO batch holds: the largest UDP payload over IPv4
/// (65,535 − 20 − 8).
pub const MAX_GSO_BYTES: usize = 65_507;

/// The VXLAN socket's send and receive buffers (bytes asked for; the kernel doubles it for
/// its bookkeeping). The default (net.core.[rw]mem_default, 208 KiB) holds three 64 KiB
/// bursts: a guest's TCP fills that in microseconds, and every datagram past it is lost
/// (`RcvbufErrors`/`SndbufErrors`) and retransmitted. 4 MiB holds a window's worth.
pub const SOCKET_BUFFER: libc::c_int = 4 << 20;

/// The socket and its buffers.
pub struct VxlanIo {
    sock: UdpSocket,
    scratch: Box<[u8]>,
    encap: Vec<u8>,
    rx: Box<[u8]>,
    /// What `rx` holds from the last read: `rx_next..rx_len` not yet handed out, in
    /// datagrams of `rx_seg` bytes (the whole rest when the kernel did not join any).
    rx_len: usize,
    rx_next: usize,
    rx_seg: usize,
    rx_src: Ipv4Addr,
    rx_reads: u64,
    gso: bool,
    gro: bool,
}

/// Encapsulated pieces of one frame waiting to go out in one send.
struct Batch<'a> {
    buf: &'a mut Vec<u8>,
    /// The size of every piece but possibly the last.
    seg: usize,
    count: usize,
    /// A shorter piece was added: nothing more may follow in this batch.
    closed: bool,
}

impl std::fmt::Debug for VxlanIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VxlanIo").field("sock", &self.sock).finish()
    }
}

impl VxlanIo {
    /// Bind `vtep:4789`, nonblocking, and settle `udp_gso`: `On` on a kernel without UDP
    /// GSO is an `Unsupported` error; `Auto` there falls back (see [`VxlanIo::udp_gso`]).
    pub fn bind(vtep: Ipv4Addr, udp_gso: UdpGso, gro: bool) -> io::Result<VxlanIo> {
        let sock = UdpSocket::bind(SocketAddrV4::new(vtep, UDP_PORT))?;
        sock.set_nonblocking(true)?;
        let fd = std::os::fd::AsFd::as_fd(&sock);
        for (force, plain) in [
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        ] {
            // FORCE (CAP_NET_ADMIN, which the switch has for its taps) passes net.core's
            // *mem_max; without it the kernel caps the plain option there
            if sys::setsockopt(fd, libc::SOL_SOCKET, force, &SOCKET_BUFFER).is_err() {
                let _ = sys::setsockopt(fd, libc::SOL_SOCKET, plain, &SOCKET_BUFFER);
            }
        }
        // the kernel may join datagrams of one flow into one read (UDP GRO on receive):
        // `recv` cuts them apart again; a kernel without it just says no
        let on: libc::c_int = 1;
        let _ = sys::setsockopt(fd, libc::SOL_UDP, sys::UDP_GRO, &on);
        let have = sys::udp_gso_supported(fd);
        let gso = match udp_gso {
            UdpGso::Off => false,
            UdpGso::Auto => have,
            UdpGso::On if have => true,
            UdpGso::On => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "this kernel has no UDP GSO (UDP_SEGMENT, Linux 4.18); set cluster.udp_gso = \"auto\" or \"off\"",
                ))
            }
        };
        Ok(VxlanIo {
            sock,
            scratch: resident_zeroed(MAX_FRAME_LEN),
            encap: Vec::with_capacity(MAX_GSO_BYTES),
            rx: resident_zeroed(RX_LEN),
            rx_len: 0,
            rx_next: 0,
            rx_seg: 0,
            rx_src: Ipv4Addr::UNSPECIFIED,
            rx_reads: 0,
            gso,
            gro,
        })
    }

    /// Whether the worker joins received TCP segments back into super-frames
    /// (`cluster.gro`, [`crate::overlay::gro`]).
    pub fn gro(&self) -> bool {
        self.gro
    }

    /// How many reads returned datagrams so far (fewer than the datagrams when the kernel
    /// joined some).
    pub fn rx_reads(&self) -> u64 {
        self.rx_reads
    }

    /// Whether super-frames go out as UDP GSO batches.
    pub fn udp_gso(&self) -> bool {
        self.gso
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
        let sock = &self.sock;
        let gso = &mut self.gso;
        let mut batch = Batch {
            buf: &mut self.encap,
            seg: 0,
            count: 0,
            closed: false,
        };
        batch.buf.clear();
        let r = segment_gso(
            frame,
            vnet,
            usize::from(ov.inner_mtu),
            &mut self.scratch,
            |seg| {
                let len = vxlan::HEADER_LEN + seg.len();
                if batch.count > 0
                    && (!*gso
                        || batch.closed
                        || len > batch.seg
                        || batch.buf.len() + len > MAX_GSO_BYTES
                        || batch.count == sys::UDP_MAX_SEGMENTS)
                {
                    flush(sock, dst, &mut batch, gso, &mut err);
                }
                if batch.count == 0 {
                    batch.seg = len;
                } else if len < batch.seg {
                    batch.closed = true;
                }
                vxlan::encap_into(batch.buf, vni, seg);
                batch.count += 1;
            },
        );
        if batch.count > 0 {
            flush(sock, dst, &mut batch, gso, &mut err);
        }
        Some(match (r, err) {
            (Err(e), _) => Err(PortError::Offload(e)),
            (Ok(_), None) => Ok(()),
            (Ok(_), Some(e)) if e.kind() == io::ErrorKind::WouldBlock => Err(PortError::WouldBlock),
            (Ok(_), Some(e)) => Err(PortError::Io(e)),
        })
    }

    /// Read one datagram: its IPv4 source and its payload (in the socket's buffer).
    /// `Ok(None)`: nothing to read; a datagram from an IPv6 source is skipped. When the
    /// kernel handed over several datagrams in one read (`UDP_GRO`), they come out one per
    /// call, in order, before the next read.
    pub fn recv(&mut self) -> io::Result<Option<(Ipv4Addr, &mut [u8])>> {
        if self.rx_next >= self.rx_len {
            loop {
                let fd = std::os::fd::AsFd::as_fd(&self.sock);
                match sys::recv_from_gro(fd, &mut self.rx) {
                    Ok((n, Some(src), seg)) => {
                        self.rx_len = n;
                        self.rx_next = 0;
                        self.rx_seg = seg.map_or(n, usize::from).max(1);
                        self.rx_src = src;
                        self.rx_reads += 1;
                        break;
                    }
                    Ok((_, None, _)) => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
        }
        let start = self.rx_next;
        let end = (start + self.rx_seg).min(self.rx_len);
        self.rx_next = end.max(start + 1);
        Ok(self.rx.get_mut(start..end).map(|b| (self.rx_src, b)))
    }
}

/// Send what `batch` holds (one datagram, or a GSO batch of several) and empty it; the
/// first error is kept in `err`. A GSO batch the kernel refuses for good (`EIO`, `EINVAL`)
/// is resent one datagram at a time, and GSO is turned off.
fn flush(
    sock: &UdpSocket,
    dst: SocketAddrV4,
    batch: &mut Batch<'_>,
    gso: &mut bool,
    err: &mut Option<io::Error>,
) {
    let buf: &[u8] = batch.buf;
    let r = if batch.count == 1 {
        sock.send_to(buf, dst).map(|_| ())
    } else {
        let seg = u16::try_from(batch.seg).unwrap_or(u16::MAX);
        match sys::send_to_gso(std::os::fd::AsFd::as_fd(sock), buf, dst, seg) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::EIO | libc::EINVAL)) => {
                *gso = false;
                tracing::warn!(vtep = %dst.ip(), error = %e, "the kernel refused a UDP GSO send; VXLAN goes out one datagram per send from now on");
                buf.chunks(batch.seg)
                    .map(|d| sock.send_to(d, dst).map(|_| ()))
                    .find(Result::is_err)
                    .unwrap_or(Ok(()))
            }
            r => r.map(|_| ()),
        }
    };
    if let Err(e) = r {
        err.get_or_insert(e);
    }
    batch.buf.clear();
    batch.count = 0;
    batch.closed = false;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::{Duration, Instant};

    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
    use vip_table::{MacAddr, Timestamp};

    use super::*;
    use crate::config::Config;
    use crate::control::Switch;
    use crate::datapath::{Daemon, DaemonError, DaemonOptions};
    use crate::overlay::{Topology, TopologyHost};
    use crate::port::{GSO_TCPV4, VNET_HDR_F_NEEDS_CSUM};
    use crate::testutil::frames::udp4_payload;

    fn cluster_config(vtep: &str) -> Config {
        Config::from_toml_str(&format!(
            "[[port]]\nname = \"vm1\"\ntap = \"vxt-never\"\nmac = \"02:00:00:00:00:01\"\nmtu = 1450\n\
             [cluster]\nendpoints = [\"http://10.250.0.11:2379\"]\nhost = \"host-a\"\n\
             vtep = \"{vtep}\"\nvlans = [{{ vlan = 0, vni = 5000 }}]\n"
        ))
        .unwrap()
    }

    fn recv_all(b: &mut VxlanIo, want: usize) -> Vec<(Ipv4Addr, Vec<u8>)> {
        let mut got = Vec::new();
        let t = Instant::now();
        while got.len() < want && t.elapsed() < Duration::from_secs(5) {
            match b.recv().unwrap() {
                Some((src, p)) => got.push((src, p.to_vec())),
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        got
    }

    /// Two sockets on loopback addresses (no root): host-a's socket on 127.0.0.61, host-b's
    /// VTEP 127.0.0.62 (the configuration names another VTEP: it refuses loopback ones).
    #[test]
    fn frames_are_encapsulated_to_the_hosts_vtep_and_super_frames_segmented_first() {
        encapsulated_and_segmented(UdpGso::Off, "127.0.0.61", "127.0.0.62");
        encapsulated_and_segmented(UdpGso::On, "127.0.0.63", "127.0.0.64");
    }

    /// Both sending modes put the same datagrams on the wire.
    fn encapsulated_and_segmented(mode: UdpGso, a_ip: &str, b_ip: &str) {
        let mut sw = Switch::new(cluster_config("10.250.1.1"), Timestamp(0)).unwrap();
        sw.set_topology(Topology {
            hosts: vec![TopologyHost {
                name: "host-b".into(),
                vtep: b_ip.parse().unwrap(),
            }],
            ports: vec![],
        });
        let hb = sw.host_id("host-b");
        let ov = sw.overlay().clone();
        let mut a = VxlanIo::bind(a_ip.parse().unwrap(), mode, true).unwrap();
        let mut b = VxlanIo::bind(b_ip.parse().unwrap(), UdpGso::Off, true).unwrap();
        assert_eq!(a.udp_gso(), mode == UdpGso::On);

        // a plain frame: one datagram, VNI 5000, the frame unchanged
        let plain = udp4_payload(
            MacAddr([2, 0, 0, 0, 0, 1]),
            MacAddr([2, 0, 0, 0, 0xb, 1]),
            [10, 0, 0, 1],
            [10, 0, 0, 11],
            1,
            2,
            b"hello",
        );
        assert!(matches!(
            a.send(&ov, hb, 0, &plain, &VnetHdr::default()),
            Some(Ok(()))
        ));
        let got = recv_all(&mut b, 1);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, a_ip.parse::<Ipv4Addr>().unwrap());
        let (vni, inner) = vxlan::decap(&got[0].1).unwrap();
        assert_eq!((vni.get(), inner), (5000, plain.as_slice()));

        // no tunnel: an unknown host or a VLAN without a VNI
        assert!(a
            .send(&ov, HostId(999), 0, &plain, &VnetHdr::default())
            .is_none());
        assert!(a.send(&ov, hb, 42, &plain, &VnetHdr::default()).is_none());

        // TSO super-frames: (payload, gso_size) → datagrams. 4000/1400: three, the last
        // shorter; 64000/1000: 64, more bytes than one GSO batch holds; 8000/100: 80, more
        // pieces than one GSO batch may carry
        for (len, gso_size, want) in [
            (4000u32, 1400u16, 3usize),
            (64_000, 1000, 64),
            (8000, 100, 80),
        ] {
            let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut sup = Vec::new();
            PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0xb, 1])
                .ipv4([10, 0, 0, 1], [10, 0, 0, 11], 64)
                .tcp(40000, 5201, 1000, 64000)
                .ack(1)
                .write(&mut sup, &body)
                .unwrap();
            let vnet = VnetHdr {
                flags: VNET_HDR_F_NEEDS_CSUM,
                gso_type: GSO_TCPV4,
                hdr_len: 54,
                gso_size,
                csum_start: 34,
                csum_offset: 16,
            };
            assert!(matches!(a.send(&ov, hb, 0, &sup, &vnet), Some(Ok(()))));
            let reads0 = b.rx_reads();
            let got = recv_all(&mut b, want);
            assert_eq!(got.len(), want, "{mode:?} {len}/{gso_size}");
            let reads = b.rx_reads() - reads0;
            if mode == UdpGso::On {
                // a GSO batch over loopback reaches the UDP_GRO socket whole: one read each
                assert!(reads < want as u64, "{reads} reads for {want} datagrams");
            } else {
                assert_eq!(reads, want as u64);
            }
            let mut data = Vec::new();
            let mut seq = 1000u32;
            for (_, d) in &got {
                let (vni, inner) = vxlan::decap(d).unwrap();
                assert_eq!(vni.get(), 5000);
                assert!(
                    inner.len() <= 14 + usize::from(ov.inner_mtu),
                    "{}",
                    inner.len()
                );
                let p = SlicedPacket::from_ethernet(inner).unwrap();
                let Some(TransportSlice::Tcp(t)) = p.transport else {
                    panic!("not TCP")
                };
                assert_eq!(t.sequence_number(), seq, "{mode:?}: in order");
                seq += t.payload().len() as u32;
                data.extend_from_slice(t.payload());
            }
            assert_eq!(
                data, body,
                "{mode:?}: the segments carry the stream in order"
            );
        }
    }

    #[test]
    fn a_vtep_that_is_not_an_address_of_this_host_is_a_clear_start_error() {
        // 192.0.2.1 (TEST-NET-1) is nobody's address here: bind fails before any port opens
        let e = Daemon::start(cluster_config("192.0.2.1"), DaemonOptions::default())
            .err()
            .unwrap();
        assert!(matches!(e, DaemonError::Vxlan { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("192.0.2.1:4789") && msg.contains("cluster.vtep"),
            "{msg}"
        );
    }
}
