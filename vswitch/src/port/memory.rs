//! An in-memory [`Port`] for tests and simulated VMs.
//!
//! [`MemoryPort::new`] returns the port (which goes to the datapath) and a
//! [`MemoryPortHandle`] (which stays with the test): the handle pushes frames the port will
//! receive and drains frames the port sent. The port's [`raw_fd`](Port::raw_fd) is an
//! eventfd that is readable exactly while received frames are pending (or after
//! [`MemoryPortHandle::vanish`]), so the port can sit in the same poll loop as real ports.
//!
//! This is a test double: pushing and sending allocate (one `Vec` per frame). A port created
//! with [`Offloads::NONE`] runs frames through the same software fallback as a real port
//! without vnet headers, so tests see exactly the frames a tap without `IFF_VNET_HDR` would.

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};

use super::sys;
use super::vnet::SoftwareOffload;
use super::{Batch, IoCounters, Offloads, Port, PortError, VnetHdr};

/// A frame with its offload metadata, as queued in a [`MemoryPort`].
pub type OwnedFrame = (Vec<u8>, VnetHdr);

#[derive(Debug, Default)]
struct Queues {
    rx: VecDeque<OwnedFrame>,
    tx: VecDeque<OwnedFrame>,
    gone: bool,
}

#[derive(Debug)]
struct Shared {
    queues: Mutex<Queues>,
    /// Readable while `queues.rx` is non-empty or `gone`; written and reset under the lock.
    event: OwnedFd,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queues> {
        // A panic in another test thread must not hide this port's frames.
        self.queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The datapath side of an in-memory port.
#[derive(Debug)]
pub struct MemoryPort {
    name: String,
    shared: Arc<Shared>,
    offloads: Offloads,
    soft: Option<SoftwareOffload>,
    mtu: usize,
    counters: IoCounters,
}

/// The test side of a [`MemoryPort`]; cheap to clone, usable from any thread.
#[derive(Clone, Debug)]
pub struct MemoryPortHandle {
    shared: Arc<Shared>,
}

impl MemoryPort {
    /// A port carrying vnet headers ([`Offloads::FULL`]): frames and metadata pass through.
    pub fn new(name: &str) -> Result<(Self, MemoryPortHandle), PortError> {
        Self::with_offloads(name, Offloads::FULL, 1500)
    }

    /// A port with the given offloads. Without `vnet_hdr`, `send` completes checksums and
    /// segments GSO frames (to `mtu`-sized IP packets) before queueing them, like a real
    /// port without vnet headers.
    pub fn with_offloads(
        name: &str,
        offloads: Offloads,
        mtu: usize,
    ) -> Result<(Self, MemoryPortHandle), PortError> {
        let event = sys::eventfd().map_err(|source| PortError::Setup {
            port: name.to_owned(),
            step: "eventfd",
            source,
        })?;
        let shared = Arc::new(Shared {
            queues: Mutex::new(Queues::default()),
            event,
        });
        let port = Self {
            name: name.to_owned(),
            shared: Arc::clone(&shared),
            offloads,
            soft: (!offloads.vnet_hdr).then(SoftwareOffload::new),
            mtu,
            counters: IoCounters::default(),
        };
        Ok((port, MemoryPortHandle { shared }))
    }
}

const GONE_ERRNO: i32 = libc::ENODEV;

impl Port for MemoryPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn raw_fd(&self) -> RawFd {
        self.shared.event.as_raw_fd()
    }

    fn offloads(&self) -> Offloads {
        self.offloads
    }

    fn recv_batch(&mut self, batch: &mut Batch) -> Result<usize, PortError> {
        batch.clear();
        let mut q = self.shared.lock();
        if q.gone {
            return Err(PortError::Gone { errno: GONE_ERRNO });
        }
        while !batch.is_full() {
            let Some((frame, vnet)) = q.rx.pop_front() else {
                break;
            };
            match batch.push(&frame, vnet) {
                Ok(_) => {
                    self.counters.rx_frames += 1;
                    self.counters.rx_bytes += frame.len() as u64;
                    self.counters.rx_gso += u64::from(vnet.is_gso());
                    self.counters.rx_needs_csum += u64::from(vnet.needs_csum());
                }
                Err(_) => self.counters.rx_dropped += 1,
            }
        }
        if q.rx.is_empty() {
            sys::eventfd_reset(self.shared.event.as_fd());
        }
        Ok(batch.len())
    }

    fn send(&mut self, frame: &[u8], vnet: &VnetHdr) -> Result<(), PortError> {
        let mut q = self.shared.lock();
        if q.gone {
            return Err(PortError::Gone { errno: GONE_ERRNO });
        }
        let counters = &mut self.counters;
        match &mut self.soft {
            None => {
                q.tx.push_back((frame.to_vec(), *vnet));
                counters.tx_frames += 1;
                counters.tx_bytes += frame.len() as u64;
                Ok(())
            }
            Some(soft) => {
                let segmenting = vnet.is_gso();
                let r = soft.prepare(frame, vnet, self.mtu, |seg| {
                    q.tx.push_back((seg.to_vec(), VnetHdr::default()));
                    counters.tx_frames += 1;
                    counters.tx_bytes += seg.len() as u64;
                    counters.tx_segments += u64::from(segmenting);
                });
                r.map(|_| ()).map_err(|e| {
                    counters.tx_dropped += 1;
                    PortError::Offload(e)
                })
            }
        }
    }

    fn is_present(&self) -> bool {
        !self.shared.lock().gone
    }

    fn io_counters(&self) -> IoCounters {
        self.counters
    }
}

impl MemoryPortHandle {
    /// Queues a frame for the port to receive and wakes its fd.
    pub fn push_rx(&self, frame: &[u8], vnet: VnetHdr) {
        let mut q = self.shared.lock();
        q.rx.push_back((frame.to_vec(), vnet));
        // Cannot fail short of the counter overflowing 2^64 - 1 writes.
        let _ = sys::eventfd_signal(self.shared.event.as_fd());
    }

    /// Takes every frame the port has sent so far, oldest first.
    pub fn take_tx(&self) -> Vec<OwnedFrame> {
        self.shared.lock().tx.drain(..).collect()
    }

    /// Frames sent and not yet taken.
    pub fn tx_len(&self) -> usize {
        self.shared.lock().tx.len()
    }

    /// Frames pushed and not yet received by the port.
    pub fn rx_len(&self) -> usize {
        self.shared.lock().rx.len()
    }

    /// Simulates the device vanishing: the port's fd polls readable and every later
    /// `recv_batch`/`send` returns [`PortError::Gone`] (errno `ENODEV`).
    pub fn vanish(&self) {
        let mut q = self.shared.lock();
        q.gone = true;
        let _ = sys::eventfd_signal(self.shared.event.as_fd());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::vnet::{GSO_TCPV4, VNET_HDR_F_NEEDS_CSUM};

    fn readable(fd: RawFd) -> bool {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: pfd is one valid pollfd for the call; timeout 0 never blocks.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        n == 1 && pfd.revents & libc::POLLIN != 0
    }

    #[test]
    fn frames_flow_both_ways_and_fd_tracks_pending() {
        let (mut port, handle) = MemoryPort::new("mem0").unwrap();
        let mut batch = Batch::new(2);
        assert!(!readable(port.raw_fd()));
        assert_eq!(port.recv_batch(&mut batch).unwrap(), 0);
        let vnet = VnetHdr {
            flags: VNET_HDR_F_NEEDS_CSUM,
            ..VnetHdr::default()
        };
        for i in 0..3u8 {
            handle.push_rx(&[i; 60], vnet);
        }
        assert!(readable(port.raw_fd()));
        assert_eq!(port.recv_batch(&mut batch).unwrap(), 2);
        assert_eq!(batch[1].frame(), &[1; 60]);
        assert_eq!(batch[1].vnet(), vnet);
        assert!(readable(port.raw_fd()), "one frame still pending");
        assert_eq!(port.recv_batch(&mut batch).unwrap(), 1);
        assert!(!readable(port.raw_fd()));
        port.send(&[9; 64], &vnet).unwrap();
        assert_eq!(handle.take_tx(), vec![(vec![9; 64], vnet)]);
        let c = port.io_counters();
        assert_eq!((c.rx_frames, c.rx_needs_csum, c.tx_frames), (3, 3, 1));
    }

    #[test]
    fn vanish_reports_gone_and_wakes_poll() {
        let (mut port, handle) = MemoryPort::new("mem1").unwrap();
        handle.vanish();
        assert!(readable(port.raw_fd()));
        assert!(!port.is_present());
        let mut batch = Batch::new(1);
        assert!(matches!(
            port.recv_batch(&mut batch),
            Err(PortError::Gone {
                errno: libc::ENODEV
            })
        ));
        assert!(port
            .send(&[0; 60], &VnetHdr::default())
            .is_err_and(|e| e.is_gone()));
    }

    #[test]
    fn port_without_vnet_refuses_malformed_gso() {
        let (mut port, handle) = MemoryPort::with_offloads("mem2", Offloads::NONE, 1500).unwrap();
        let bogus = VnetHdr {
            gso_type: GSO_TCPV4,
            gso_size: 100,
            ..VnetHdr::default()
        };
        let err = port.send(&[0u8; 200], &bogus).unwrap_err();
        assert!(err.is_frame_drop());
        assert_eq!(handle.tx_len(), 0);
        assert_eq!(port.io_counters().tx_dropped, 1);
        // Plain frames pass untouched.
        port.send(&[1u8; 60], &VnetHdr::default()).unwrap();
        assert_eq!(handle.take_tx(), vec![(vec![1u8; 60], VnetHdr::default())]);
    }
}
