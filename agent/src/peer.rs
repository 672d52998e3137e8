//! Who is on the other end of a control connection (`SO_PEERCRED`, `SO_PEERGROUPS`), and
//! whether they may change the switch.
//!
//! The kernel records the peer's credentials when it calls `connect(2)`; they cannot be
//! forged by the client. Supplementary groups come from `SO_PEERGROUPS` (Linux 4.13+,
//! also recorded at connect time); on older kernels from the `Groups:` line of
//! `/proc/<pid>/status`, used only if that process still has the peer's uid.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

/// The credentials of a control-socket peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Process id (at connect time).
    pub pid: i32,
    /// Effective uid.
    pub uid: u32,
    /// Effective (primary) gid.
    pub gid: u32,
    /// Supplementary groups; empty if they could not be read.
    pub groups: Vec<u32>,
}

impl Peer {
    /// The credentials of the process connected to `s`.
    pub fn of(s: &UnixStream) -> io::Result<Peer> {
        let cred = peer_cred(s)?;
        let groups = match peer_groups(s) {
            Ok(g) => g,
            Err(_) => proc_groups(cred.pid, cred.uid).unwrap_or_default(),
        };
        Ok(Peer {
            pid: cred.pid,
            uid: cred.uid,
            gid: cred.gid,
            groups,
        })
    }

    /// Whether the peer may run commands that change the switch: uid 0, the switch's own
    /// uid, or a member (primary or supplementary) of the control group `ctl_gid`.
    pub fn may_mutate(&self, own_uid: u32, ctl_gid: u32) -> bool {
        self.uid == 0
            || self.uid == own_uid
            || self.gid == ctl_gid
            || self.groups.contains(&ctl_gid)
    }
}

/// The effective uid of this process.
pub fn own_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn peer_cred(s: &UnixStream) -> io::Result<libc::ucred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::ucred>())
        .map_err(|_| io::Error::other("ucred size"))?;
    // SAFETY: the fd is a live socket owned by `s`; `cred` is valid for `len` bytes of
    // writes and `len` for one socklen_t, as getsockopt(2) requires.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred)
}

fn peer_groups(s: &UnixStream) -> io::Result<Vec<u32>> {
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let bytes = groups.len() * std::mem::size_of::<libc::gid_t>();
        let mut len =
            libc::socklen_t::try_from(bytes).map_err(|_| io::Error::other("too many groups"))?;
        // SAFETY: the fd is a live socket owned by `s`; `groups` is valid for `len` bytes
        // of writes and `len` for one socklen_t. The kernel writes at most `len` bytes.
        let rc = unsafe {
            libc::getsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let got = usize::try_from(len).unwrap_or(0) / std::mem::size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(got);
            return Ok(groups);
        }
        let e = io::Error::last_os_error();
        // ERANGE: the buffer was too small; `len` says how large it must be.
        if e.raw_os_error() == Some(libc::ERANGE) && got > groups.len() && got <= 65_536 {
            groups.resize(got, 0);
            continue;
        }
        return Err(e);
    }
}

/// Supplementary groups of `pid` from `/proc/<pid>/status`, if it still runs with `uid`.
fn proc_groups(pid: i32, uid: u32) -> Option<Vec<u32>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let (euid, groups) = parse_status(&text)?;
    (euid == uid).then_some(groups)
}

/// From a `/proc/<pid>/status` text: the effective uid and the supplementary groups.
pub fn parse_status(text: &str) -> Option<(u32, Vec<u32>)> {
    let mut euid = None;
    let mut groups = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Uid:") {
            // real, effective, saved, filesystem
            euid = rest.split_whitespace().nth(1).and_then(|v| v.parse().ok());
        } else if let Some(rest) = line.strip_prefix("Groups:") {
            let parsed: Result<Vec<u32>, _> = rest.split_whitespace().map(str::parse).collect();
            groups = parsed.ok();
        }
    }
    Some((euid?, groups?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> Peer {
        Peer {
            pid: 1,
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn who_may_mutate() {
        let own = 0;
        assert!(peer(0, 0, &[]).may_mutate(own, 37));
        assert!(peer(65534, 37, &[]).may_mutate(own, 37), "primary gid");
        assert!(
            peer(65534, 65534, &[5, 37]).may_mutate(own, 37),
            "supplementary"
        );
        assert!(!peer(65534, 65534, &[5]).may_mutate(own, 37));
        assert!(
            !peer(65534, 65534, &[]).may_mutate(own, 0),
            "default group gid 0"
        );
        assert!(
            peer(1000, 1000, &[]).may_mutate(1000, 0),
            "the switch's own user"
        );
    }

    #[test]
    fn status_parsing() {
        let text = "Name:\tsh\nUid:\t1000\t65534\t65534\t65534\nGid:\t1\t2\t2\t2\n\
                    Groups:\t4 24 27 \nNgid:\t0\n";
        assert_eq!(parse_status(text), Some((65534, vec![4, 24, 27])));
        assert_eq!(
            parse_status("Uid:\t0\t0\t0\t0\nGroups:\t\n"),
            Some((0, vec![]))
        );
        assert_eq!(parse_status("Groups:\t1\n"), None, "no Uid line");
        assert_eq!(parse_status("Uid:\t0\t0\t0\t0\nGroups:\tx\n"), None);
    }

    #[test]
    fn own_socketpair_peer_is_us() {
        let (a, _b) = UnixStream::pair().unwrap();
        let p = Peer::of(&a).unwrap();
        assert_eq!(p.uid, own_uid());
        assert_eq!(u32::try_from(p.pid).unwrap(), std::process::id());
    }
}
