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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::{Duration, Instant};

    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
    use vip_table::Timestamp;

    use super::*;
    use crate::config::Config;
    use crate::control::Switch;
    use crate::datapath::{Daemon, DaemonError, DaemonOptions};
    use crate::overlay::{Topology, TopologyHost};
    use crate::port::{GSO_TCPV4, VNET_HDR_F_NEEDS_CSUM};

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
        let mut sw = Switch::new(cluster_config("10.250.1.1"), Timestamp(0)).unwrap();
        sw.set_topology(Topology {
            hosts: vec![TopologyHost {
                name: "host-b".into(),
                vtep: "127.0.0.62".parse().unwrap(),
            }],
            ports: vec![],
        });
        let hb = sw.host_id("host-b");
        let ov = sw.overlay().clone();
        let mut a = VxlanIo::bind("127.0.0.61".parse().unwrap()).unwrap();
        let mut b = VxlanIo::bind("127.0.0.62".parse().unwrap()).unwrap();

        // a plain frame: one datagram, VNI 5000, the frame unchanged
        let mut plain = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0xb, 1])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 11], 64)
            .udp(1, 2)
            .write(&mut plain, b"hello")
            .unwrap();
        assert!(matches!(
            a.send(&ov, hb, 0, &plain, &VnetHdr::default()),
            Some(Ok(()))
        ));
        let got = recv_all(&mut b, 1);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "127.0.0.61".parse::<Ipv4Addr>().unwrap());
        let (vni, inner) = vxlan::decap(&got[0].1).unwrap();
        assert_eq!((vni.get(), inner), (5000, plain.as_slice()));

        // no tunnel: an unknown host or a VLAN without a VNI
        assert!(a
            .send(&ov, HostId(999), 0, &plain, &VnetHdr::default())
            .is_none());
        assert!(a.send(&ov, hb, 42, &plain, &VnetHdr::default()).is_none());

        // a TSO super-frame of 4000 bytes of TCP payload, gso_size 1400: three datagrams
        let body: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
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
            gso_size: 1400,
            csum_start: 34,
            csum_offset: 16,
        };
        assert!(matches!(a.send(&ov, hb, 0, &sup, &vnet), Some(Ok(()))));
        let got = recv_all(&mut b, 3);
        assert_eq!(got.len(), 3);
        let mut data = Vec::new();
        for (_, d) in &got {
            let (_, inner) = vxlan::decap(d).unwrap();
            assert!(
                inner.len() <= 14 + usize::from(ov.inner_mtu),
                "{}",
                inner.len()
            );
            let p = SlicedPacket::from_ethernet(inner).unwrap();
            let Some(TransportSlice::Tcp(t)) = p.transport else {
                panic!("not TCP")
            };
            data.extend_from_slice(t.payload());
        }
        assert_eq!(data, body, "the segments carry the stream in order");
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
