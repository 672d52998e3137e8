//! Creating the control socket with safe permissions, whatever the umask.
//!
//! - The socket is mode `0660`, owner root (the switch's uid), group `switch.ctl_group`
//!   (default gid 0): only root and the group's members can connect.
//! - Its directory must not be world-writable (anyone could replace the socket and answer
//!   in the switch's name). A directory the switch creates is `0750`, group `ctl_group`
//!   (missing ancestors `0755`, root's); an existing world-writable directory such as
//!   `/tmp` is refused with an error, never chmod'ed: it is not ours to change.
//! - An existing file at the socket path is replaced only if it is a socket no switch
//!   answers on.

use std::fs::{DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// Mode of the control socket.
pub const SOCKET_MODE: u32 = 0o660;
/// Mode of the socket directory when the switch creates it.
pub const DIR_MODE: u32 = 0o750;
/// Mode of missing ancestors of the socket directory that the switch creates.
const ANCESTOR_MODE: u32 = 0o755;

/// Why the control socket could not be set up.
#[derive(Debug)]
pub struct SocketError(pub String);

impl std::fmt::Display for SocketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(what: impl std::fmt::Display, e: io::Error) -> SocketError {
    SocketError(format!("{what}: {e}"))
}

/// Why a directory with this mode cannot hold the control socket, if it cannot.
pub fn dir_mode_problem(mode: u32) -> Option<String> {
    if mode & 0o002 != 0 {
        let sticky = if mode & 0o1000 != 0 {
            " (even with the sticky bit, anyone can create the socket's name while the \
             switch is not running)"
        } else {
            ""
        };
        return Some(format!(
            "is world-writable (mode {:04o}): any local user could replace the control \
             socket{sticky}; use a directory only root can write to, e.g. the default \
             /run/vswitch, which the switch creates",
            mode & 0o7777
        ));
    }
    None
}

/// Creates `dir` and its missing ancestors with explicit modes (not the umask's).
/// Returns whether `dir` itself was created.
fn create_dir(dir: &Path, gid: u32) -> Result<bool, SocketError> {
    if dir.exists() {
        return Ok(false);
    }
    let mut missing: Vec<PathBuf> = Vec::new();
    let mut p = Some(dir);
    while let Some(d) = p {
        if d.as_os_str().is_empty() || d.exists() {
            break;
        }
        missing.push(d.to_path_buf());
        p = d.parent();
    }
    for (i, d) in missing.iter().rev().enumerate() {
        let last = i + 1 == missing.len();
        let mode = if last { DIR_MODE } else { ANCESTOR_MODE };
        match DirBuilder::new().mode(0o700).create(d) {
            Ok(()) => {}
            // someone else made it in the meantime: check it like any existing directory
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if last {
                    return Ok(false);
                }
                continue;
            }
            Err(e) => return Err(err(format!("cannot create {}", d.display()), e)),
        }
        if last {
            chown_group(d, gid)?;
        }
        std::fs::set_permissions(d, Permissions::from_mode(mode))
            .map_err(|e| err(format!("cannot set the mode of {}", d.display()), e))?;
    }
    Ok(true)
}

/// Gives `path` to group `gid` (keeping its owner). Not being root is tolerated when the
/// group is already right or cannot be changed by an unprivileged switch (with a warning).
fn chown_group(path: &Path, gid: u32) -> Result<(), SocketError> {
    let md = std::fs::symlink_metadata(path)
        .map_err(|e| err(format!("cannot stat {}", path.display()), e))?;
    if md.gid() == gid {
        return Ok(());
    }
    match std::os::unix::fs::lchown(path, None, Some(gid)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied && crate::peer::own_uid() != 0 => {
            tracing::warn!(
                path = %path.display(),
                gid,
                "not root: cannot give {} to group {gid}; it keeps group {}",
                path.display(),
                md.gid()
            );
            Ok(())
        }
        Err(e) => Err(err(
            format!("cannot give {} to group {gid}", path.display()),
            e,
        )),
    }
}

/// Sets the process umask and restores the previous one on drop.
struct Umask(libc::mode_t);

impl Umask {
    fn set(mask: libc::mode_t) -> Umask {
        // SAFETY: umask(2) only swaps the process's file-creation mask; it cannot fail.
        Umask(unsafe { libc::umask(mask) })
    }
}

impl Drop for Umask {
    fn drop(&mut self) {
        // SAFETY: as above; restores the mask saved in `set`.
        unsafe { libc::umask(self.0) };
    }
}

/// Creates (or safely replaces) the control socket at `path`: mode 0660, group `gid`, in
/// a directory that is not world-writable.
pub fn bind(path: &Path, gid: u32) -> Result<UnixListener, SocketError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let created = create_dir(&dir, gid)?;
    let md =
        std::fs::metadata(&dir).map_err(|e| err(format!("cannot stat {}", dir.display()), e))?;
    if !md.is_dir() {
        return Err(SocketError(format!("{} is not a directory", dir.display())));
    }
    if let Some(why) = dir_mode_problem(md.mode()) {
        return Err(SocketError(format!(
            "socket directory {} {why} (--socket)",
            dir.display()
        )));
    }
    if !created {
        let mode = md.mode();
        let group_reaches = md.gid() == gid && mode & 0o010 != 0;
        if gid != 0 && mode & 0o001 == 0 && !group_reaches {
            tracing::warn!(
                dir = %dir.display(),
                "members of the control group (gid {gid}) cannot reach the socket: {} is mode \
                 {:04o}, group {}; make it searchable by them (e.g. chgrp {gid} and chmod 0750)",
                dir.display(),
                mode & 0o7777,
                md.gid()
            );
        }
    }

    match std::fs::symlink_metadata(path) {
        Ok(m) => {
            use std::os::unix::fs::FileTypeExt;
            if !m.file_type().is_socket() {
                return Err(SocketError(format!(
                    "{} exists and is not a socket; refusing to replace it",
                    path.display()
                )));
            }
            // A live daemon answers on it; refuse to steal it.
            if UnixStream::connect(path).is_ok() {
                return Err(SocketError(format!(
                    "{} is in use by a running switch",
                    path.display()
                )));
            }
            std::fs::remove_file(path)
                .map_err(|e| err(format!("cannot remove the stale {}", path.display()), e))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(format!("cannot stat {}", path.display()), e)),
    }

    // bind(2) creates the socket file with 0777 & ~umask: with the umask at 0117 it is
    // born 0660, so it is never connectable by others, not even for a moment. (The umask is
    // process-wide; no other thread of the switch creates files.)
    let listener = {
        let _mask = Umask::set(0o117);
        UnixListener::bind(path).map_err(|e| err(format!("cannot bind {}", path.display()), e))?
    };
    chown_group(path, gid)?;
    std::fs::set_permissions(path, Permissions::from_mode(SOCKET_MODE))
        .map_err(|e| err(format!("cannot set the mode of {}", path.display()), e))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn world_writable_dirs_are_refused() {
        assert!(dir_mode_problem(0o40755).is_none());
        assert!(dir_mode_problem(0o40750).is_none());
        assert!(dir_mode_problem(0o40770).is_none());
        let tmp = dir_mode_problem(0o41777).unwrap();
        assert!(
            tmp.contains("world-writable") && tmp.contains("sticky"),
            "{tmp}"
        );
        assert!(dir_mode_problem(0o40777).is_some());
        assert!(dir_mode_problem(0o40703).is_some());
    }

    #[test]
    fn bind_makes_0660_and_0750_whatever_the_umask() {
        let base = std::env::temp_dir().join(format!("vswitch-ctlsock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir(&base).unwrap();
        std::fs::set_permissions(&base, Permissions::from_mode(0o755)).unwrap();
        let sock = base.join("a/b/ctl.sock");
        let gid = std::fs::metadata(&base).unwrap().gid();
        let old = Umask::set(0);
        let l = bind(&sock, gid);
        drop(old);
        let l = l.unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&sock), 0o660);
        assert_eq!(mode(&base.join("a/b")), 0o750);
        assert_eq!(mode(&base.join("a")), 0o755);
        // a second bind while the first listens is refused; after it is gone, replaced
        let e = bind(&sock, gid).unwrap_err();
        assert!(e.0.contains("in use"), "{e}");
        drop(l);
        bind(&sock, gid).unwrap();
        // a regular file is never replaced
        let f = base.join("a/b/file");
        std::fs::write(&f, "x").unwrap();
        assert!(bind(&f, gid).unwrap_err().0.contains("not a socket"));
        // a world-writable directory is refused, not fixed
        let ww = base.join("ww");
        std::fs::create_dir(&ww).unwrap();
        std::fs::set_permissions(&ww, Permissions::from_mode(0o777)).unwrap();
        let e = bind(&ww.join("s.sock"), gid).unwrap_err();
        assert!(e.0.contains("world-writable"), "{e}");
        assert_eq!(mode(&ww), 0o777);
        let _ = std::fs::remove_dir_all(&base);
    }
}
