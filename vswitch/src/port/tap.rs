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
//! non-persistent tap — unless [`TapOptions::persist`] is set (the daemon's `tap` ports):
//!
//! - **Persistent taps.** The tap is made persistent (`TUNSETPERSIST` 1), so it outlives
//!   the port and the process (a clean stop, a crash, `kill -9`): a namespace or container
//!   holding its kernel side keeps the interface, its addresses and routes while the switch
//!   restarts. It also gets an alternative interface name, [`tap_altname`] (`vsw` + 12 hex
//!   digits of a hash of the configured name), which the kernel keeps when the tap is
//!   renamed (`eth0` in a container) or moved to another network namespace.
//! - **Reopening.** `open` first looks for the tap: by its name, then by its altname, in the
//!   caller's namespace; then by its altname in every other network namespace of the host
//!   (`/run/netns/*` and `/proc/*/ns/net`). A tap found elsewhere is attached from a
//!   short-lived thread that enters that namespace (`setns`, which needs `CAP_SYS_ADMIN`),
//!   because `TUNSETIFF` only looks up names in the namespace the tun fd was opened in. The
//!   same flags and offloads are set again; its link state, MTU, addresses and IPv6
//!   settings are left alone (they belong to whoever holds its kernel side). Only when the
//!   tap is nowhere is a new one created in the caller's namespace.
//! - A tap attached from inside another namespace holds a reference to that namespace for
//!   as long as the fd is open: deleting the namespace (`ip netns del`) then only takes
//!   effect, deleting the tap, once the port closes it.
//! - **Deleting.** [`TapPort::delete`] removes a persistent tap: through a port of this
//!   process that has it open (persistence off; the device goes when that port is dropped)
//!   or by attaching to it wherever it is, turning persistence off and closing.
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

use std::collections::HashSet;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use super::sys::{self, IfName};
use super::vnet::{SoftwareOffload, VNET_HDR_LEN};
use super::{Batch, IoCounters, Offloads, PacketBuf, Port, PortError, RingPort, RingRx, VnetHdr};

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
    /// Make the tap persistent (it outlives the port and the process), give it its
    /// [`tap_altname`], and look for an existing one in every network namespace before
    /// creating it; see the module docs. Default false (the daemon's `tap` ports set it).
    pub persist: bool,
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
            persist: false,
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
        let mut flags = libc::IFF_TAP | libc::IFF_NO_PI;
        if opts.vnet_hdr {
            flags |= libc::IFF_VNET_HDR;
        }
        if opts.multi_queue {
            flags |= libc::IFF_MULTI_QUEUE;
        }
        let found = if opts.persist {
            find_and_attach(ifname, flags).map_err(setup("TUNSETIFF (attach existing tap)"))?
        } else {
            None
        };
        let (fd, actual, foreign_mtu) = match found {
            Some(Attached {
                fd,
                actual,
                foreign_mtu,
            }) => (fd, actual, foreign_mtu),
            None => {
                let (fd, actual) =
                    attach_here(&name, flags).map_err(setup("TUNSETIFF (create/attach tap)"))?;
                (fd, actual, None)
            }
        };
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
        if opts.persist {
            sys::ioctl_value(fd.as_fd(), libc::TUNSETPERSIST, 1).map_err(setup("TUNSETPERSIST"))?;
        }
        let actual_name = IfName::new(&actual).unwrap_or(name);
        let mtu = match foreign_mtu {
            // In another namespace: its link state and IPv6 settings are not ours.
            Some(mtu) => mtu,
            None => {
                // The host's IPv6 autoconfiguration would otherwise send MLD reports, DAD
                // and router solicitations from the tap's random MAC into the switch
                // (counted as spoofing on a port no VM uses yet). A namespace the tap is
                // moved into starts with its own settings.
                let _ = std::fs::write(
                    format!("/proc/sys/net/ipv6/conf/{actual}/disable_ipv6"),
                    "1",
                );
                if opts.bring_up {
                    sys::set_link_up(&actual_name).map_err(setup("set link up (SIOCSIFFLAGS)"))?;
                }
                if opts.persist {
                    if let Err(e) = ensure_altname(&actual_name, ifname) {
                        tracing::warn!(target: "vswitch::port", tap = %ifname, error = %e,
                            "cannot give the tap its alternative name; after a restart the switch will not find it once it was renamed or moved to another namespace");
                    }
                }
                sys::link_mtu(&actual_name).unwrap_or(1500)
            }
        };
        if opts.persist {
            open_taps().push((ifname.to_owned(), fd.as_raw_fd()));
        }
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

    /// Deletes the persistent tap the switch made for a `tap` port named `ifname`, wherever
    /// it is (renamed, moved to another namespace; see the module docs). Returns whether a
    /// tap was found: `Ok(false)` if there is none.
    ///
    /// If a [`TapPort`] of this process has it open (a port leaving the configuration on a
    /// reload), its persistence is turned off and the device goes when that port is dropped.
    /// Otherwise the tap is attached, made non-persistent and closed, which deletes it. A tap
    /// another process holds (a running switch) cannot be attached: an error (`EBUSY`).
    /// Only tap devices are ever touched: a non-tap interface of that name is an error
    /// (`EINVAL`) and stays.
    pub fn delete(ifname: &str) -> Result<bool, PortError> {
        let err = |step: &'static str| {
            move |source: std::io::Error| PortError::Setup {
                port: ifname.to_owned(),
                step,
                source,
            }
        };
        IfName::new(ifname).ok_or_else(|| PortError::InvalidName(ifname.to_owned()))?;
        {
            let live = open_taps();
            let mut any = false;
            for (_, raw) in live.iter().filter(|(n, _)| n == ifname) {
                // SAFETY: a registered fd stays open until its TapPort's Drop removes it from
                // this registry, which needs the lock we hold.
                let fd = unsafe { BorrowedFd::borrow_raw(*raw) };
                // Fails (EBADFD) only if the device is already gone.
                any |= sys::ioctl_value(fd, libc::TUNSETPERSIST, 0).is_ok();
            }
            if any {
                return Ok(true);
            }
        }
        let base = libc::IFF_TAP | libc::IFF_NO_PI;
        let found = match find_and_attach(ifname, base) {
            // A multi-queue tap only attaches with IFF_MULTI_QUEUE.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                find_and_attach(ifname, base | libc::IFF_MULTI_QUEUE)
            }
            r => r,
        }
        .map_err(err("TUNSETIFF (attach tap to delete it)"))?;
        let Some(a) = found else {
            return Ok(false);
        };
        sys::ioctl_value(a.fd.as_fd(), libc::TUNSETPERSIST, 0).map_err(err("TUNSETPERSIST 0"))?;
        drop(a.fd);
        Ok(true)
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

    /// `n` bytes were read into `buf`'s storage (from its start with vnet headers, after the
    /// header room without): set the frame up and count it. False: not a frame (counted
    /// as dropped).
    fn accept_read(&mut self, buf: &mut PacketBuf, n: usize) -> bool {
        let (hdr, len) = if self.offloads.vnet_hdr {
            match VnetHdr::parse(&buf.raw_mut()[..n]) {
                Some(h) => (h, n - VNET_HDR_LEN),
                None => {
                    self.counters.rx_dropped += 1;
                    return false;
                }
            }
        } else {
            (VnetHdr::default(), n)
        };
        if len < 14 {
            // Not even an Ethernet header.
            self.counters.rx_dropped += 1;
            return false;
        }
        buf.set_len(len);
        buf.set_vnet(hdr);
        self.counters.rx_frames += 1;
        self.counters.rx_bytes += len as u64;
        self.counters.rx_gso += u64::from(hdr.is_gso());
        self.counters.rx_needs_csum += u64::from(hdr.needs_csum());
        true
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

impl Drop for TapPort {
    fn drop(&mut self) {
        // Before the fd closes (fields drop after this), so `delete` never sees a closed fd.
        let raw = self.fd.as_raw_fd();
        open_taps().retain(|(_, fd)| *fd != raw);
    }
}

/// The alternative interface name of the persistent tap of a `tap` port named `ifname`:
/// `vsw` and the low 48 bits of the FNV-1a hash of the name in hex, 15 bytes (a name
/// `TUNSETIFF` accepts). Stable across builds and versions: a restarted switch finds its
/// taps by it.
pub fn tap_altname(ifname: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in ifname.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("vsw{:012x}", h & 0xffff_ffff_ffff)
}

/// The persistent taps this process has open: (configured name, fd). An entry is removed by
/// the port's `Drop` before its fd closes.
fn open_taps() -> std::sync::MutexGuard<'static, Vec<(String, RawFd)>> {
    static OPEN_TAPS: Mutex<Vec<(String, RawFd)>> = Mutex::new(Vec::new());
    OPEN_TAPS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A tun fd attached to an existing tap.
struct Attached {
    fd: OwnedFd,
    /// The device's current name (in its namespace).
    actual: String,
    /// Its MTU, when it lives in another network namespace (None: the caller's).
    foreign_mtu: Option<usize>,
}

/// Opens `/dev/net/tun` in the calling thread's namespace and attaches it to (or creates)
/// the tap `name`; returns the fd and the device's name.
fn attach_here(name: &IfName, flags: libc::c_int) -> std::io::Result<(OwnedFd, String)> {
    let fd = sys::open(
        c"/dev/net/tun",
        libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
    )?;
    let mut req = name.ifreq();
    // The flags all fit the 16-bit ifr_flags (largest is IFF_VNET_HDR = 0x4000).
    req.ifr_ifru.ifru_flags = flags as libc::c_short;
    sys::ioctl_ifreq(fd.as_fd(), libc::TUNSETIFF, &mut req)?;
    Ok((fd, IfName::from_ifreq(&req)))
}

/// Attaches to the existing tap of the `tap` port `ifname`, wherever it is (see the module
/// docs); `Ok(None)` if there is none. Never creates a device: a name is only passed to
/// `TUNSETIFF` once it was seen to exist.
fn find_and_attach(ifname: &str, flags: libc::c_int) -> std::io::Result<Option<Attached>> {
    let invalid = || std::io::Error::from_raw_os_error(libc::EINVAL);
    let name = IfName::new(ifname).ok_or_else(invalid)?;
    let alt = IfName::new(&tap_altname(ifname)).ok_or_else(invalid)?;
    for candidate in [&name, &alt] {
        if sys::if_nametoindex(candidate).is_ok() {
            let (fd, actual) = attach_here(candidate, flags)?;
            return Ok(Some(Attached {
                fd,
                actual,
                foreign_mtu: None,
            }));
        }
    }
    let mut unsearched = 0usize;
    let mut last_error = None;
    for ns in other_netns() {
        let found = in_netns(&ns, || -> Option<std::io::Result<Attached>> {
            sys::if_nametoindex(&alt).ok()?;
            Some(attach_here(&alt, flags).map(|(fd, actual)| {
                let mtu = IfName::new(&actual)
                    .and_then(|n| sys::link_mtu(&n).ok())
                    .unwrap_or(1500);
                Attached {
                    fd,
                    actual,
                    foreign_mtu: Some(mtu),
                }
            }))
        });
        match found {
            Ok(Some(r)) => return r.map(Some),
            Ok(None) => {}
            // A namespace that went away meanwhile (a process that exited), or one we may
            // not enter.
            Err(e) => {
                tracing::debug!(target: "vswitch::port", netns = %ns.display(), error = %e, "cannot look for a tap in this namespace");
                if e.raw_os_error() != Some(libc::ENOENT) {
                    unsearched += 1;
                    last_error = Some(e);
                }
            }
        }
    }
    if let Some(e) = last_error {
        tracing::warn!(target: "vswitch::port", tap = %ifname, namespaces = unsearched, error = %e,
            "tap not found, but some network namespaces could not be searched (entering one needs CAP_SYS_ADMIN and setns allowed)");
    }
    Ok(None)
}

/// Gives the tap `actual` (in the caller's namespace) the altname of port `ifname`, unless
/// some interface already answers to that name.
fn ensure_altname(actual: &IfName, ifname: &str) -> std::io::Result<()> {
    let alt = IfName::new(&tap_altname(ifname))
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    if sys::if_nametoindex(&alt).is_ok() {
        return Ok(());
    }
    sys::add_altname(sys::if_nametoindex(actual)?, &alt)
}

/// Every network namespace of the host other than the caller's, once each: the named ones
/// (`/run/netns/*`, `ip netns`) and those of running processes (`/proc/*/ns/net`:
/// containers).
fn other_netns() -> Vec<PathBuf> {
    let id = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let mut seen: HashSet<(u64, u64)> = id(Path::new("/proc/thread-self/ns/net"))
        .into_iter()
        .collect();
    let mut out = Vec::new();
    let mut consider = |p: PathBuf| {
        if id(&p).is_some_and(|k| seen.insert(k)) {
            out.push(p);
        }
    };
    if let Ok(rd) = std::fs::read_dir("/run/netns") {
        for e in rd.flatten() {
            consider(e.path());
        }
    }
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            if e.file_name().as_bytes().iter().all(u8::is_ascii_digit) {
                consider(e.path().join("ns/net"));
            }
        }
    }
    out
}

/// Runs `f` on a new thread inside the network namespace `ns`; the thread (and its
/// namespace) ends with `f`.
fn in_netns<T: Send>(ns: &Path, f: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    let path = CString::new(ns.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            let nsfd = sys::open(&path, libc::O_RDONLY | libc::O_CLOEXEC)?;
            sys::setns_net(nsfd.as_fd())?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("namespace thread panicked")))
    })
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
                    if self.accept_read(buf, n) {
                        batch.commit(1);
                    }
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

    fn ring(&mut self) -> Option<&mut dyn RingPort> {
        Some(self)
    }

    fn clone_tx(&self) -> Option<Box<dyn Port>> {
        let fd = self.fd.try_clone().ok()?;
        Some(Box::new(TapPort {
            name: self.name.clone(),
            fd,
            offloads: self.offloads,
            soft: self.soft.as_ref().map(|_| SoftwareOffload::new()),
            mtu: self.mtu,
            counters: IoCounters::default(),
            gone_errno: None,
        }))
    }
}

impl RingPort for TapPort {
    fn ring_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn ring_rx_offset(&self) -> Option<usize> {
        Some(if self.offloads.vnet_hdr {
            0
        } else {
            VNET_HDR_LEN
        })
    }

    fn ring_rx_done(&mut self, buf: &mut PacketBuf, res: i32) -> RingRx {
        if let Some(errno) = self.gone_errno {
            return RingRx::Failed(PortError::Gone { errno });
        }
        match usize::try_from(res) {
            Ok(0) => RingRx::Empty,
            Ok(n) if self.accept_read(buf, n) => RingRx::Frame,
            Ok(_) => RingRx::Dropped,
            Err(_) => match res.saturating_neg() {
                libc::EAGAIN | libc::EINTR => RingRx::Empty,
                libc::EINVAL | libc::EMSGSIZE | libc::EFAULT => {
                    self.counters.rx_dropped += 1;
                    RingRx::Dropped
                }
                _ => RingRx::Failed(self.classify(super::ring::errno_error(res))),
            },
        }
    }

    fn ring_tx_hdr(&self, vnet: &VnetHdr) -> Option<bool> {
        super::ring::tx_hdr(self.gone_errno.is_some(), self.offloads.vnet_hdr, vnet)
    }

    fn ring_tx_done(&mut self, len: usize, res: i32) -> Result<(), PortError> {
        if res >= 0 {
            self.counters.tx_frames += 1;
            self.counters.tx_bytes += len as u64;
            return Ok(());
        }
        let err = self.classify(super::ring::errno_error(res));
        if !err.is_gone() {
            self.counters.tx_dropped += 1;
        }
        Err(err)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn altname_is_stable_short_and_distinct() {
        // Taps made by earlier builds must still be found: the value is part of the format.
        assert_eq!(tap_altname("xta"), "vswa11980061598");
        for n in ["a", "vm-web1", "vnet123456789ab", "tap0"] {
            let a = tap_altname(n);
            assert_eq!(a.len(), 15, "{a}");
            assert!(IfName::new(&a).is_some(), "{a}");
            assert_ne!(a, n);
            assert_eq!(a, tap_altname(n));
        }
        assert_ne!(tap_altname("tap0"), tap_altname("tap1"));
    }

    #[test]
    fn options_default_to_a_tap_that_goes_with_its_port() {
        assert!(!TapOptions::default().persist);
    }
}
