//! Small safe wrappers over the libc calls the port backends need.
//!
//! Every function takes and returns plain Rust values; the `unsafe` stays here. Errors are
//! `std::io::Error`s built from errno (no allocation).

use std::ffi::{c_char, c_int, c_void, CStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `IFNAMSIZ`: interface names are at most 15 bytes plus NUL.
pub(crate) const IFNAMSIZ: usize = libc::IFNAMSIZ;

/// An interface name, validated and NUL-terminated, as the kernel wants it in `ifreq`.
#[derive(Clone, Copy)]
pub(crate) struct IfName([u8; IFNAMSIZ]);

impl std::fmt::Debug for IfName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_cstr().to_bytes()))
    }
}

impl IfName {
    /// Validates `name` (1..=15 bytes, no '/', whitespace, ':' or NUL).
    pub(crate) fn new(name: &str) -> Option<Self> {
        if name.is_empty()
            || name.len() >= IFNAMSIZ
            || name
                .bytes()
                .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
        {
            return None;
        }
        let mut out = [0u8; IFNAMSIZ];
        out[..name.len()].copy_from_slice(name.as_bytes());
        Some(Self(out))
    }

    /// Reads the (possibly kernel-rewritten) name back from an `ifreq`.
    pub(crate) fn from_ifreq(req: &libc::ifreq) -> String {
        let bytes: Vec<u8> = req
            .ifr_name
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn as_cstr(&self) -> &CStr {
        // The constructor guarantees a NUL within the array (len < IFNAMSIZ).
        CStr::from_bytes_until_nul(&self.0).unwrap_or(c"")
    }

    /// A zeroed `ifreq` with an empty name (for ioctls that fill the name in).
    pub(crate) fn empty_ifreq() -> libc::ifreq {
        // SAFETY: ifreq is a plain C struct/union of integers, arrays and a pointer; all-zero
        // bytes are a valid value for every field.
        unsafe { std::mem::zeroed() }
    }

    /// A zeroed `ifreq` carrying this name.
    pub(crate) fn ifreq(&self) -> libc::ifreq {
        // SAFETY: ifreq is a plain C struct/union of integers, arrays and a pointer; all-zero
        // bytes are a valid value for every field.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        req.ifr_name = self.0.map(|b| b as c_char);
        req
    }
}

/// Converts a `-1`-on-error return into `io::Result`.
fn cvt(ret: c_int) -> io::Result<c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Converts a `-1`-on-error `ssize_t` return into `io::Result<usize>`.
fn cvt_size(ret: isize) -> io::Result<usize> {
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

/// `open(path, flags)`.
pub(crate) fn open(path: &CStr, flags: c_int) -> io::Result<OwnedFd> {
    // SAFETY: `path` is a valid NUL-terminated string for the duration of the call.
    let fd = cvt(unsafe { libc::open(path.as_ptr(), flags) })?;
    // SAFETY: open just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `socket(domain, ty, proto)`.
pub(crate) fn socket(domain: c_int, ty: c_int, proto: c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let fd = cvt(unsafe { libc::socket(domain, ty, proto) })?;
    // SAFETY: socket just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)`.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
    // SAFETY: eventfd just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds 1 to an eventfd counter.
pub(crate) fn eventfd_signal(fd: BorrowedFd<'_>) -> io::Result<()> {
    let one = 1u64.to_ne_bytes();
    write(fd, &one).map(|_| ())
}

/// Resets an eventfd counter to 0 (no error if it already was).
pub(crate) fn eventfd_reset(fd: BorrowedFd<'_>) {
    let mut buf = [0u8; 8];
    // EAGAIN (counter already 0) is the only expected error and means the same thing.
    let _ = read(fd, &mut buf);
}

/// An ioctl whose argument is a pointer to `ifreq`.
pub(crate) fn ioctl_ifreq(
    fd: BorrowedFd<'_>,
    request: libc::Ioctl,
    req: &mut libc::ifreq,
) -> io::Result<()> {
    // SAFETY: every ifreq ioctl used here reads/writes at most sizeof(ifreq) bytes through the
    // pointer, which is valid and exclusively borrowed for the call.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), request, std::ptr::from_mut(req)) }).map(|_| ())
}

/// An ioctl whose argument is an integer passed by value (TUNSETOFFLOAD).
pub(crate) fn ioctl_value(
    fd: BorrowedFd<'_>,
    request: libc::Ioctl,
    value: libc::c_ulong,
) -> io::Result<()> {
    // SAFETY: the request takes its argument by value; no memory is accessed through it.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), request, value) }).map(|_| ())
}

/// An ioctl whose argument is a pointer to an `int` the kernel reads (TUNSETVNETHDRSZ).
pub(crate) fn ioctl_int_ptr(
    fd: BorrowedFd<'_>,
    request: libc::Ioctl,
    value: c_int,
) -> io::Result<()> {
    let mut v = value;
    // SAFETY: the kernel reads one int through the pointer, which is valid for the call.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), request, std::ptr::from_mut(&mut v)) }).map(|_| ())
}

/// `setsockopt(fd, level, name, &value, sizeof value)` for any plain-data option value.
/// `getsockopt` of a 32-bit value.
pub(crate) fn getsockopt_u32(fd: BorrowedFd<'_>, level: c_int, name: c_int) -> io::Result<u32> {
    let mut v: u32 = 0;
    let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
    // SAFETY: `v` is a writable u32 and `len` says so; the kernel writes at most `len` bytes.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::from_mut(&mut v).cast::<c_void>(),
            &mut len,
        )
    })?;
    Ok(v)
}

pub(crate) fn setsockopt<T: Copy>(
    fd: BorrowedFd<'_>,
    level: c_int,
    name: c_int,
    value: &T,
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(std::mem::size_of::<T>())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: the pointer refers to `len` readable bytes of a Copy (plain-data) value.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(value).cast::<c_void>(),
            len,
        )
    })
    .map(|_| ())
}

/// `bind` to a link-layer address.
pub(crate) fn bind_ll(fd: BorrowedFd<'_>, addr: &libc::sockaddr_ll) -> io::Result<()> {
    // SAFETY: addr points to a valid sockaddr_ll of the size passed.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            std::ptr::from_ref(addr).cast::<libc::sockaddr>(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// `read(fd, buf)`.
pub(crate) fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for writes of buf.len() bytes.
    cvt_size(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast::<c_void>(), buf.len()) })
}

/// `write(fd, buf)`.
pub(crate) fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for reads of buf.len() bytes.
    cvt_size(unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast::<c_void>(), buf.len()) })
}

fn iovec(buf: &[u8]) -> libc::iovec {
    libc::iovec {
        iov_base: buf.as_ptr().cast_mut().cast::<c_void>(),
        iov_len: buf.len(),
    }
}

/// `writev(fd, [a, b])`: header and frame in one call without copying.
pub(crate) fn writev2(fd: BorrowedFd<'_>, a: &[u8], b: &[u8]) -> io::Result<usize> {
    let iov = [iovec(a), iovec(b)];
    // SAFETY: both iovecs point to live slices; the kernel only reads through them.
    cvt_size(unsafe { libc::writev(fd.as_raw_fd(), iov.as_ptr(), 2) })
}

/// `sendmsg(fd, [a, b], MSG_DONTWAIT)` on a bound socket (no destination address).
pub(crate) fn send2(fd: BorrowedFd<'_>, a: &[u8], b: &[u8]) -> io::Result<usize> {
    let mut iov = [iovec(a), iovec(b)];
    // SAFETY: msghdr is plain data; all-zero is valid (no name, no control).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = 2;
    // SAFETY: msg and the iovecs it points to are valid for the call; the kernel only reads
    // the frame bytes.
    cvt_size(unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, libc::MSG_DONTWAIT) })
}

/// `send(fd, buf, MSG_DONTWAIT)`.
pub(crate) fn send(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for reads of buf.len() bytes.
    cvt_size(unsafe {
        libc::send(
            fd.as_raw_fd(),
            buf.as_ptr().cast::<c_void>(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    })
}

/// `recvmmsg(fd, msgs, MSG_DONTWAIT)`; the caller built `msgs` with pointers into buffers it
/// keeps exclusively borrowed until this returns.
///
/// # Safety
/// Every `msg_hdr` in `msgs` must point (name, iov, control) to memory valid for writes of
/// the advertised lengths for the duration of the call.
pub(crate) unsafe fn recvmmsg(fd: BorrowedFd<'_>, msgs: &mut [libc::mmsghdr]) -> io::Result<usize> {
    let n = libc::c_uint::try_from(msgs.len()).unwrap_or(libc::c_uint::MAX);
    // SAFETY: the caller guarantees the pointers inside msgs; msgs itself is valid for n entries.
    let ret = unsafe {
        libc::recvmmsg(
            fd.as_raw_fd(),
            msgs.as_mut_ptr(),
            n,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

/// `sendmmsg(fd, msgs, MSG_DONTWAIT)`.
///
/// # Safety
/// Every `msg_hdr` in `msgs` must point to iovecs and data valid for reads for the duration
/// of the call.
pub(crate) unsafe fn sendmmsg(fd: BorrowedFd<'_>, msgs: &mut [libc::mmsghdr]) -> io::Result<usize> {
    let n = libc::c_uint::try_from(msgs.len()).unwrap_or(libc::c_uint::MAX);
    // SAFETY: the caller guarantees the pointers inside msgs; msgs itself is valid for n entries.
    let ret = unsafe { libc::sendmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), n, libc::MSG_DONTWAIT) };
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

/// `UDP_SEGMENT` (`linux/udp.h`): the GSO size of a UDP send, as a socket option or a
/// `SOL_UDP` control message (Linux 4.18).
pub(crate) const UDP_SEGMENT: c_int = libc::UDP_SEGMENT;

/// The most datagrams one UDP GSO send may carry (`UDP_MAX_SEGMENTS` was 64 until Linux
/// 6.x raised it; the older bound is used so that every kernel takes our batches).
pub(crate) const UDP_MAX_SEGMENTS: usize = 64;

/// Whether this socket's kernel knows UDP GSO: `getsockopt(SOL_UDP, UDP_SEGMENT)` succeeds.
pub(crate) fn udp_gso_supported(fd: BorrowedFd<'_>) -> bool {
    let mut v: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: v and len are valid for writes of the sizes passed.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_UDP,
            UDP_SEGMENT,
            std::ptr::from_mut(&mut v).cast::<c_void>(),
            &mut len,
        )
    };
    rc == 0
}

fn sockaddr_in(dst: std::net::SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain data; all-zero is a valid value.
    let mut a: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    a.sin_family = libc::AF_INET as libc::sa_family_t;
    a.sin_port = dst.port().to_be();
    a.sin_addr.s_addr = u32::from_ne_bytes(dst.ip().octets());
    a
}

/// A `msghdr` for one buffer with an IPv4 address and a control buffer of `ctrl_len`
/// bytes. Every pointer must stay valid (and unmoved) for the call it is passed to.
fn msghdr_v4(
    addr: &mut libc::sockaddr_in,
    iov: &mut libc::iovec,
    ctrl: &mut [u64],
    ctrl_len: usize,
) -> libc::msghdr {
    // SAFETY: msghdr is plain data; all-zero is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = std::ptr::from_mut(addr).cast::<c_void>();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    msg.msg_iov = std::ptr::from_mut(iov);
    msg.msg_iovlen = 1;
    msg.msg_control = ctrl.as_mut_ptr().cast::<c_void>();
    msg.msg_controllen = ctrl_len.min(std::mem::size_of_val(ctrl));
    msg
}

/// `sendmsg(fd, buf, to dst, [SOL_UDP UDP_SEGMENT gso_size], MSG_DONTWAIT)`: the kernel cuts
/// `buf` into datagrams of `gso_size` bytes (the last may be shorter) and sends them all.
pub(crate) fn send_to_gso(
    fd: BorrowedFd<'_>,
    buf: &[u8],
    dst: std::net::SocketAddrV4,
    gso_size: u16,
) -> io::Result<usize> {
    let mut addr = sockaddr_in(dst);
    let mut iov = iovec(buf);
    // room for one cmsg with a u16 payload, 8-byte aligned (CMSG_SPACE(2) = 24 on 64-bit)
    let mut ctrl = [0u64; 4];
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) } as usize;
    if space > std::mem::size_of_val(&ctrl) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let msg = msghdr_v4(&mut addr, &mut iov, &mut ctrl, space);
    // SAFETY: msg_control points to `space` writable, aligned bytes, so CMSG_FIRSTHDR
    // returns a header inside them with room for CMSG_LEN(2) bytes, which we fill.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        if c.is_null() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        (*c).cmsg_level = libc::SOL_UDP;
        (*c).cmsg_type = UDP_SEGMENT;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), gso_size);
    }
    // SAFETY: msg, the address, the iovec and the control buffer are valid for the call;
    // the kernel only reads through them.
    cvt_size(unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, libc::MSG_DONTWAIT) })
}

/// `UDP_GRO` (`linux/udp.h`, Linux 5.0): a socket option that lets the kernel hand a UDP
/// socket several datagrams of one flow in one read, with their size in a `SOL_UDP`
/// `UDP_GRO` control message.
pub(crate) const UDP_GRO: c_int = libc::UDP_GRO;

/// One `recvmsg(fd, buf, MSG_DONTWAIT)` on an IPv4 UDP socket: the bytes read, the source
/// (`None` for a non-IPv4 one) and, when the kernel joined datagrams (`UDP_GRO`), their
/// size: `buf` then holds datagrams of that size back to back, the last maybe shorter.
pub(crate) fn recv_from_gro(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<(usize, Option<std::net::Ipv4Addr>, Option<u16>)> {
    // SAFETY: sockaddr_in is plain data; all-zero is a valid value.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast::<c_void>(),
        iov_len: buf.len(),
    };
    let mut ctrl = [0u64; 8];
    let mut msg = msghdr_v4(&mut addr, &mut iov, &mut ctrl, usize::MAX);
    // SAFETY: every pointer in msg refers to memory valid for writes of the lengths given,
    // live for the call.
    let n = cvt_size(unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) })?;
    let src = (i32::from(addr.sin_family) == libc::AF_INET)
        .then(|| std::net::Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)));
    let mut gso = None;
    // SAFETY: the kernel wrote msg_controllen bytes of well-formed control messages into
    // ctrl; CMSG_FIRSTHDR/CMSG_NXTHDR stay inside them, and a UDP_GRO message carries an
    // int.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == UDP_GRO {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<c_int>());
                gso = u16::try_from(v).ok().filter(|v| *v > 0);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n, src, gso))
}

/// The ifindex an AF_PACKET socket is bound to, from `getsockname` (the kernel resets it
/// to -1 when the interface is unregistered: deleted or moved to another namespace).
pub(crate) fn packet_bound_ifindex(fd: BorrowedFd<'_>) -> io::Result<i32> {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: addr and len are valid for writes of the sizes passed.
    cvt(unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            std::ptr::from_mut(&mut addr).cast::<libc::sockaddr>(),
            &mut len,
        )
    })?;
    Ok(addr.sll_ifindex)
}

/// The ifindex of `name` in the current network namespace.
pub(crate) fn if_nametoindex(name: &IfName) -> io::Result<u32> {
    // SAFETY: the name is NUL-terminated and lives for the call.
    let idx = unsafe { libc::if_nametoindex(name.as_cstr().as_ptr()) };
    if idx == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(idx)
    }
}

/// Whether an interface with this ifindex exists in the current network namespace.
pub(crate) fn ifindex_exists(ifindex: u32) -> bool {
    let mut buf = [0 as c_char; IFNAMSIZ];
    // SAFETY: buf has the IFNAMSIZ bytes if_indextoname may write.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    !p.is_null()
}

/// A throw-away `AF_INET` datagram socket for interface ioctls.
fn ioctl_socket() -> io::Result<OwnedFd> {
    socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
}

/// Sets `IFF_UP` on the interface (in the current network namespace).
pub(crate) fn set_link_up(name: &IfName) -> io::Result<()> {
    let sock = ioctl_socket()?;
    let mut req = name.ifreq();
    ioctl_ifreq(sock.as_fd(), libc::SIOCGIFFLAGS, &mut req)?;
    // SAFETY: SIOCGIFFLAGS filled ifru_flags, the union member read here.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    ioctl_ifreq(sock.as_fd(), libc::SIOCSIFFLAGS, &mut req)
}

/// The interface MTU (in the current network namespace).
pub(crate) fn link_mtu(name: &IfName) -> io::Result<usize> {
    let sock = ioctl_socket()?;
    let mut req = name.ifreq();
    ioctl_ifreq(sock.as_fd(), libc::SIOCGIFMTU, &mut req)?;
    // SAFETY: SIOCGIFMTU filled ifru_mtu, the union member read here.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    usize::try_from(mtu).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// The errno of an I/O error (0 if it has none).
pub(crate) fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// Moves the calling thread into the network namespace `ns` (an fd of `/run/netns/NAME` or
/// `/proc/PID/ns/net`). Only this thread changes namespace; callers use a short-lived thread.
pub(crate) fn setns_net(ns: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: plain syscall with an fd we borrow for the call and an integer flag.
    cvt(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) }).map(|_| ())
}

/// Gives the interface with index `ifindex` the alternative name `altname` (rtnetlink
/// `RTM_NEWLINKPROP`, what `ip link property add dev IF altname NAME` does), in the calling
/// thread's network namespace. The kernel then finds the interface under that name too
/// (also `TUNSETIFF`), whatever it is renamed to and wherever it is moved.
pub(crate) fn add_altname(ifindex: u32, altname: &IfName) -> io::Result<()> {
    // `linux/rtnetlink.h`; the one number here that the libc crate does not define
    const RTM_NEWLINKPROP: u16 = 108;
    use libc::{IFLA_ALT_IFNAME, IFLA_PROP_LIST};
    // libc types these as c_int; netlink headers carry them in 16 bits
    const NLA_F_NESTED: u16 = libc::NLA_F_NESTED as u16;
    const NLMSG_ERROR: u16 = libc::NLMSG_ERROR as u16;
    let name = altname.as_cstr().to_bytes_with_nul();
    let index = i32::try_from(ifindex).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let pad4 = |n: usize| (n + 3) & !3;
    let alt_len = 4 + name.len();
    let list_len = 4 + pad4(alt_len);
    let total = 16 + 16 + list_len;
    let mut msg = Vec::with_capacity(total);
    // nlmsghdr: length, type, flags, sequence, port id (0: the kernel)
    msg.extend_from_slice(&u32::try_from(total).unwrap_or(0).to_ne_bytes());
    msg.extend_from_slice(&RTM_NEWLINKPROP.to_ne_bytes());
    let flags =
        (libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_EXCL | libc::NLM_F_APPEND) as u16;
    msg.extend_from_slice(&flags.to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    // ifinfomsg: family, pad, type, index, flags, change
    msg.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    msg.extend_from_slice(&index.to_ne_bytes());
    msg.extend_from_slice(&[0u8; 8]);
    // IFLA_PROP_LIST { IFLA_ALT_IFNAME "name\0" }
    msg.extend_from_slice(&u16::try_from(list_len).unwrap_or(0).to_ne_bytes());
    msg.extend_from_slice(&(IFLA_PROP_LIST | NLA_F_NESTED).to_ne_bytes());
    msg.extend_from_slice(&u16::try_from(alt_len).unwrap_or(0).to_ne_bytes());
    msg.extend_from_slice(&IFLA_ALT_IFNAME.to_ne_bytes());
    msg.extend_from_slice(name);
    msg.resize(total, 0);

    let sock = socket(
        libc::AF_NETLINK,
        libc::SOCK_RAW | libc::SOCK_CLOEXEC,
        libc::NETLINK_ROUTE,
    )?;
    // The kernel handles the request inside sendmsg and queues its answer before returning.
    send(sock.as_fd(), &msg)?;
    let mut buf = [0u8; 1024];
    // SAFETY: buf is valid for writes of buf.len() bytes.
    let n = cvt_size(unsafe {
        libc::recv(
            sock.as_raw_fd(),
            buf.as_mut_ptr().cast::<c_void>(),
            buf.len(),
            0,
        )
    })?;
    let ack = buf.get(..n).unwrap_or_default();
    let field = |off: usize| -> Option<[u8; 4]> { ack.get(off..off + 4)?.try_into().ok() };
    let kind = ack
        .get(4..6)
        .and_then(|b| b.try_into().ok())
        .map(u16::from_ne_bytes);
    match (kind, field(16).map(i32::from_ne_bytes)) {
        (Some(NLMSG_ERROR), Some(0)) => Ok(()),
        (Some(NLMSG_ERROR), Some(e)) => Err(io::Error::from_raw_os_error(-e)),
        _ => Err(io::Error::from_raw_os_error(libc::EPROTO)),
    }
}
