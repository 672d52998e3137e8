//! Group lookups for `switch.ctl_group` (the host's group database through NSS:
//! `/etc/group`, LDAP, …).

use std::ffi::{CStr, CString};
use std::io;

/// Longest accepted group name (glibc and shadow-utils stay far below this).
pub(super) const MAX_GROUP_NAME_LEN: usize = 256;

/// Why `name` cannot be a group name at all, if it cannot (checked before any lookup).
pub(super) fn group_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty (leave it out for the default, gid 0)".into());
    }
    if name.len() > MAX_GROUP_NAME_LEN {
        return Some(format!(
            "is {} bytes long; group names are at most {MAX_GROUP_NAME_LEN} bytes",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| *c == ':' || *c == '\0' || c.is_whitespace() || c.is_control())
    {
        return Some(format!(
            "{name:?} contains {c:?}; a group name has no ':', whitespace or control characters"
        ));
    }
    None
}

/// The gid of the group called `name`: `Ok(None)` if the host has no such group, `Err`
/// if the group database could not be read.
pub fn lookup_group(name: &str) -> io::Result<Option<u32>> {
    let cname = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in group name"))?;
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        // SAFETY: an all-zero `group` is a valid value of this plain C struct (null
        // pointers, gid 0); getgrnam_r only writes to it.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: `cname` is a NUL-terminated string, `grp` and `result` are valid for
        // writes, and `buf` is valid for `buf.len()` bytes; getgrnam_r stores the group's
        // strings in `buf`, which outlives every use of `grp` below.
        let rc = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut grp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < (1 << 20) {
            let len = buf.len() * 4;
            buf.resize(len, 0);
            continue;
        }
        if rc != 0 {
            // glibc reports "not found" as 0 with a null result, but NSS modules may
            // answer ENOENT and friends, which mean the same.
            if matches!(rc, libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM) {
                return Ok(None);
            }
            return Err(io::Error::from_raw_os_error(rc));
        }
        if result.is_null() {
            return Ok(None);
        }
        return Ok(Some(grp.gr_gid));
    }
}

/// The name of group `gid`, if the host has one (for messages).
pub fn group_name(gid: u32) -> Option<String> {
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        // SAFETY: as in `lookup_group`: an all-zero `group` is a valid value.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: `grp` and `result` are valid for writes and `buf` for `buf.len()` bytes;
        // the strings getgrgid_r stores in `buf` are read below while `buf` is alive.
        let rc =
            unsafe { libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr(), buf.len(), &mut result) };
        if rc == libc::ERANGE && buf.len() < (1 << 20) {
            let len = buf.len() * 4;
            buf.resize(len, 0);
            continue;
        }
        if rc != 0 || result.is_null() || grp.gr_name.is_null() {
            return None;
        }
        // SAFETY: on success gr_name points to a NUL-terminated string inside `buf`.
        let name = unsafe { CStr::from_ptr(grp.gr_name) };
        return Some(name.to_string_lossy().into_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_group_is_gid_0() {
        assert_eq!(lookup_group("root").unwrap(), Some(0));
        assert_eq!(group_name(0).as_deref(), Some("root"));
    }

    #[test]
    fn unknown_group_is_none_not_an_error() {
        assert_eq!(lookup_group("vswitch-no-such-group-x9").unwrap(), None);
    }

    #[test]
    fn nul_in_name_is_an_error() {
        assert!(lookup_group("a\0b").is_err());
    }

    #[test]
    fn name_rules() {
        assert!(group_name_problem("vswitch-ops").is_none());
        assert!(group_name_problem("").is_some());
        assert!(group_name_problem("a b").is_some());
        assert!(group_name_problem("a:b").is_some());
        assert!(group_name_problem("a\0b").is_some());
        assert!(group_name_problem(&"g".repeat(MAX_GROUP_NAME_LEN + 1)).is_some());
    }
}
