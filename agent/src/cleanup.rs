//! `vswitch cleanup --config FILE`: removes what a stopped switch leaves on purpose.
//!
//! The switch makes the taps of its `tap` ports persistent, so they (and a namespace's
//! addresses on them) survive a restart or a crash. `cleanup` deletes them — wherever they
//! are now, renamed or moved into a namespace — and removes a stale control socket. It
//! refuses while a switch answers on the socket (that switch holds the taps). `netdev`
//! interfaces are never touched: they belong to QEMU/libvirt.

use std::os::unix::net::UnixStream;
use std::path::Path;

use vswitch::config::{Config, PortBinding};
use vswitch::port::TapPort;

/// What to do about the control socket, from what `connect` said.
#[derive(Debug, PartialEq, Eq)]
pub enum SocketState {
    /// No file there.
    Absent,
    /// A daemon answers: refuse.
    Live,
    /// A file nobody answers on (a switch that was killed): remove it.
    Stale,
}

/// Looks at the control socket path.
pub fn socket_state(socket: &Path) -> SocketState {
    if std::fs::symlink_metadata(socket).is_err() {
        return SocketState::Absent;
    }
    match UnixStream::connect(socket) {
        Ok(_) => SocketState::Live,
        Err(_) => SocketState::Stale,
    }
}

/// Runs the command; prints one line per tap and per socket action.
pub fn run(config: &Path, socket: &Path) -> Result<(), String> {
    let cfg = Config::load(config).map_err(|e| format!("{}: invalid\n{e}", config.display()))?;
    match socket_state(socket) {
        SocketState::Live => {
            return Err(format!(
                "a switch is running on {} (it holds the taps): stop it first, then run cleanup",
                socket.display()
            ))
        }
        SocketState::Stale => {
            std::fs::remove_file(socket)
                .map_err(|e| format!("stale control socket {}: {e}", socket.display()))?;
            println!("removed stale control socket {}", socket.display());
        }
        SocketState::Absent => {}
    }
    let mut failed = Vec::new();
    for p in &cfg.ports {
        match &p.binding {
            PortBinding::Tap(tap) => match TapPort::delete(tap) {
                Ok(true) => println!("port {}: tap {tap} deleted", p.name),
                Ok(false) => println!("port {}: tap {tap} not found", p.name),
                Err(e) => {
                    println!("port {}: tap {tap} NOT deleted: {e}", p.name);
                    failed.push(tap.clone());
                }
            },
            PortBinding::Netdev(dev) => {
                println!(
                    "port {}: netdev {dev} left alone (not the switch's)",
                    p.name
                )
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "could not delete {} (another process holds them?)",
            failed.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn socket_states() {
        let dir = std::env::temp_dir().join(format!("vswitch-cleanup-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let sock = dir.join("ctl.sock");
        assert_eq!(socket_state(&sock), SocketState::Absent);
        let l = UnixListener::bind(&sock).expect("bind");
        assert_eq!(socket_state(&sock), SocketState::Live);
        drop(l); // the file stays, nobody listens: what a killed switch leaves
        assert_eq!(socket_state(&sock), SocketState::Stale);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
