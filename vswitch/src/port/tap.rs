//! A tap device the switch opens itself, with virtio-net headers and offloads.
//!
//! [`TapPort::open`] opens `/dev/net/tun` non-blocking and attaches to (or creates) the
//! named tap with `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`, sets the vnet header size to 10 and
//! enables `TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN)`, so the
//! kernel hands the switch partial-checksum frames and 64 KiB TSO super-frames unsegmented.
//! It then sets the link up in the caller's network namespace (unless
//! [`TapOptions::bring_up`] is false).
//!
//! The tap lives as long as the port: dropping the port closes the fd, which deletes a
//! non-persistent tap.
//!
//! - Receiving: `recvmmsg` does not work on a tap fd (`ENOTSOCK`), so a batch is one
//!   `read()` per frame until `EAGAIN` or the batch is full. Each read returns
//!   "vnet header + frame".
//! - Sending: one `writev()` of [header, frame], no copy.
//! - A vanished tap (netdev deleted, including by deleting the namespace it was moved to) is
//!   detected from the fd: the kernel detaches the fd, wakes pollers with `POLLERR`, and
//!   reads/writes fail with `EBADFD`. Any read/write error is confirmed with `TUNGETIFF`
//!   (which fails with `EBADFD` exactly when the fd is detached) before reporting
//!   [`PortError::Gone`]. A tap whose netdev was moved to another network namespace stays
//!   attached and keeps working.
//! - Multi-queue: with [`TapOptions::multi_queue`] the device is created with
//!   `IFF_MULTI_QUEUE`; each `open` of the same name then attaches one more queue, each its
//!   own `TapPort` (one per worker). All queues must be opened with the same flags.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use super::sys::{self, IfName};
use super::vnet::{SoftwareOffload, VNET_HDR_LEN};
use super::{Batch, IoCounters, Offloads, Port, PortError, VnetHdr};

/// How to open a tap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TapOptions {
    /// Exchange virtio-net headers (`IFF_VNET_HDR`) so offloads pass through. Default true.
    /// Without it, the kernel hands over only complete frames, and the port completes
    /// checksums / segments GSO frames in software on send.
    pub vnet_hdr: bool,
    /// `TUN_F_*` flags for `TUNSETOFFLOAD` (only with `vnet_hdr`): what the switch accepts
    /// from the kernel. Default `TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN`
    /// (no UFO: the software fallback cannot IP-fragment).
    pub offload_flags: u32,
    /// Set `IFF_UP` on the link after opening (in the caller's network namespace).
    /// Default true. With false, the caller brings the link up.
    pub bring_up: bool,
    /// Create/attach with `IFF_MULTI_QUEUE` (one `TapPort` per queue). Default false.
    pub multi_queue: bool,
}

/// The default `TUNSETOFFLOAD` flags: checksum offload and TCP segmentation offload.
pub const DEFAULT_TUN_OFFLOADS: u32 =
    libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_TSO_ECN;

impl Default for TapOptions {
    fn default() -> Self {
        Self {
            vnet_hdr: true,
            offload_flags: DEFAULT_TUN_OFFLOADS,
            bring_up: true,
            multi_queue: false,
        }
    }
}

/// One queue of a tap device, opened by the switch.
#[derive(Debug)]
pub struct TapPort {
    name: String,
    fd: OwnedFd,
    offloads: Offloads,
    /// Present when the tap does not carry vnet headers.
    soft: Option<SoftwareOffload>,
    /// Largest IP packet for software segmentation (the link MTU at open time).
    mtu: usize,
    counters: IoCounters,
    /// Set once the device is known to be gone; every later call fails fast.
    gone_errno: Option<i32>,
}

impl TapPort {
    /// Opens (creating if needed) the tap `ifname`; see the module docs.
    pub fn open(ifname: &str, opts: &TapOptions) -> Result<Self, PortError> {
        let name = IfName::new(ifname).ok_or_else(|| PortError::InvalidName(ifname.to_owned()))?;
        let setup = |step: &'static str| {
            move |source: std::io::Error| PortError::Setup {
                port: ifname.to_owned(),
                step,
                source,
            }
        };
        let fd = sys::open(
            c"/dev/net/tun",
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
        .map_err(setup("open /dev/net/tun"))?;
        let mut flags = libc::IFF_TAP | libc::IFF_NO_PI;
        if opts.vnet_hdr {
            flags |= libc::IFF_VNET_HDR;
        }
        if opts.multi_queue {
            flags |= libc::IFF_MULTI_QUEUE;
        }
        let mut req = name.ifreq();
        // The flags all fit the 16-bit ifr_flags (largest is IFF_VNET_HDR = 0x4000).
        req.ifr_ifru.ifru_flags = flags as libc::c_short;
        sys::ioctl_ifreq(fd.as_fd(), libc::TUNSETIFF, &mut req)
            .map_err(setup("TUNSETIFF (create/attach tap)"))?;
        let actual = IfName::from_ifreq(&req);
        if opts.vnet_hdr {
            sys::ioctl_int_ptr(fd.as_fd(), libc::TUNSETVNETHDRSZ, VNET_HDR_LEN as i32)
                .map_err(setup("TUNSETVNETHDRSZ"))?;
            sys::ioctl_value(
                fd.as_fd(),
                libc::TUNSETOFFLOAD,
                libc::c_ulong::from(opts.offload_flags),
            )
            .map_err(setup("TUNSETOFFLOAD"))?;
        }
        let actual_name = IfName::new(&actual).unwrap_or(name);
        // The host's IPv6 autoconfiguration would otherwise send MLD reports, DAD and
        // router solicitations from the tap's random MAC into the switch (counted as
        // spoofing on a port no VM uses yet). A namespace the tap is moved into starts
        // with its own settings.
        let _ = std::fs::write(
            format!("/proc/sys/net/ipv6/conf/{actual}/disable_ipv6"),
            "1",
        );
        if opts.bring_up {
            sys::set_link_up(&actual_name).map_err(setup("set link up (SIOCSIFFLAGS)"))?;
        }
        let mtu = sys::link_mtu(&actual_name).unwrap_or(1500);
        let offloads = if opts.vnet_hdr {
            Offloads {
                vnet_hdr: true,
                rx_partial_csum: opts.offload_flags & libc::TUN_F_CSUM != 0,
                rx_gso: opts.offload_flags & (libc::TUN_F_TSO4 | libc::TUN_F_TSO6) != 0,
            }
        } else {
            Offloads::NONE
        };
        Ok(Self {
            name: actual,
            fd,
            offloads,
            soft: (!opts.vnet_hdr).then(SoftwareOffload::new),
            mtu,
            counters: IoCounters::default(),
            gone_errno: None,
        })
    }

    /// Overrides the MTU used when segmenting GSO frames in software (ports without vnet
    /// headers only; defaults to the link MTU when the port was opened).
    pub fn set_segmentation_mtu(&mut self, mtu: usize) {
        self.mtu = mtu;
    }

    /// Whether the fd is still attached to a tap device (`TUNGETIFF` succeeds).
    fn attached(&self) -> bool {
        let mut req = IfName::empty_ifreq();
        !matches!(
            sys::ioctl_ifreq(self.fd.as_fd(), libc::TUNGETIFF, &mut req),
            Err(e) if e.raw_os_error() == Some(libc::EBADFD)
        )
    }

    /// Classifies a read/write error: `Gone` if the fd was detached from its device.
    fn classify(&mut self, e: std::io::Error) -> PortError {
        let errno = sys::errno_of(&e);
        if !self.attached() {
            self.gone_errno = Some(errno);
            return PortError::Gone { errno };
        }
        match errno {
            libc::EAGAIN | libc::ENOBUFS => PortError::WouldBlock,
            libc::EIO | libc::ENETDOWN => PortError::LinkDown,
            libc::EINVAL | libc::EMSGSIZE | libc::EFAULT => PortError::Rejected(e),
            _ => PortError::Io(e),
        }
    }

    fn write_frame(&mut self, hdr: &[u8], frame: &[u8]) -> Result<(), PortError> {
        loop {
            let r = if hdr.is_empty() {
                sys::write(self.fd.as_fd(), frame)
            } else {
                sys::writev2(self.fd.as_fd(), hdr, frame)
            };
            return match r {
                Ok(_) => {
                    self.counters.tx_frames += 1;
                    self.counters.tx_bytes += frame.len() as u64;
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

impl Port for TapPort {
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
        // Bounds the loop even if the kernel kept failing single frames.
        let mut budget = 2 * batch.capacity();
        while !batch.is_full() && budget > 0 {
            budget -= 1;
            let Some(buf) = batch.spare_mut().first_mut() else {
                break;
            };
            let raw = buf.raw_mut();
            let area = if vnet {
                &mut raw[..]
            } else {
                &mut raw[VNET_HDR_LEN..]
            };
            match sys::read(self.fd.as_fd(), area) {
                // A tap never reads 0 bytes; stop rather than spin if it ever did.
                Ok(0) => break,
                Ok(n) => {
                    let (hdr, len) = if vnet {
                        match VnetHdr::parse(&raw[..n]) {
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
                        // Not even an Ethernet header.
                        self.counters.rx_dropped += 1;
                        continue;
                    }
                    buf.set_len(len);
                    buf.set_vnet(hdr);
                    self.counters.rx_frames += 1;
                    self.counters.rx_bytes += len as u64;
                    self.counters.rx_gso += u64::from(hdr.is_gso());
                    self.counters.rx_needs_csum += u64::from(hdr.needs_csum());
                    batch.commit(1);
                }
                Err(e) => match e.raw_os_error() {
                    Some(libc::EAGAIN) => break,
                    Some(libc::EINTR) => continue,
                    Some(libc::EINVAL) | Some(libc::EMSGSIZE) | Some(libc::EFAULT) => {
                        // One frame the kernel could not hand over (and freed); the next may
                        // be fine.
                        self.counters.rx_dropped += 1;
                    }
                    _ => {
                        if !batch.is_empty() {
                            // Deliver what was read; the error recurs on the next call.
                            break;
                        }
                        return Err(self.classify(e));
                    }
                },
            }
        }
        Ok(batch.len())
    }

    fn send(&mut self, frame: &[u8], vnet: &VnetHdr) -> Result<(), PortError> {
        super::send_via(self, frame, vnet)
    }

    fn is_present(&self) -> bool {
        self.gone_errno.is_none() && self.attached()
    }

    fn io_counters(&self) -> IoCounters {
        self.counters
    }
}

impl super::RawTx for TapPort {
    fn write_raw(&mut self, hdr: &[u8], frame: &[u8]) -> Result<(), PortError> {
        self.write_frame(hdr, frame)
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
