//! The event stream: serving `{"cmd":"watch"}` on the control socket, and following it in
//! `vswitch ctl watch`.
//!
//! Server side: at most [`MAX_WATCHERS`] streams at once (each also holds one of the
//! control socket's connection slots). The stream starts with `{"ok":{"watching":true}}`
//! once the control thread has registered the subscriber, then carries one
//! `vswitch::view::Event` per line. It ends when the client closes its end (noticed
//! within [`PEER_CHECK`]), when a write does not complete within the socket's write
//! timeout (a client that stopped reading), or when the switch stops. A watcher that
//! reads too slowly is never waited for: the control thread drops the events that do not
//! fit its queue and the stream reports them as a `lagged` event.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::RecvTimeoutError;
use vswitch::datapath::{Command, ControlHandle};
use vswitch::view::{CtlError, Event, View, WatchStarted};

use crate::server::{answer, connect, parse_answer, refusal, WRITE_TIMEOUT};

/// `watch` streams served at once.
pub const MAX_WATCHERS: usize = 8;
/// How often a quiet stream checks whether its client is still there.
pub const PEER_CHECK: Duration = Duration::from_millis(500);

static WATCHERS: AtomicUsize = AtomicUsize::new(0);

/// One of the [`MAX_WATCHERS`] places; released on drop.
struct WatcherPlace;

impl WatcherPlace {
    fn take() -> Option<WatcherPlace> {
        WATCHERS
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_WATCHERS).then_some(n + 1)
            })
            .ok()
            .map(|_| WatcherPlace)
    }
}

impl Drop for WatcherPlace {
    fn drop(&mut self) {
        WATCHERS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Whether the client closed its end (a quiet stream cannot learn it by writing).
pub(crate) fn peer_closed(s: &UnixStream) -> bool {
    if s.set_nonblocking(true).is_err() {
        return true;
    }
    let mut buf = [0u8; 256];
    let mut r = s;
    let closed = match r.read(&mut buf) {
        Ok(0) => true,
        // whatever a client sends after its request is ignored
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    closed || s.set_nonblocking(false).is_err()
}

/// Serves one `watch` request on `s` until either side goes away.
pub fn serve(s: &UnixStream, ctl: &ControlHandle) {
    let Some(_place) = WatcherPlace::take() else {
        let e = CtlError::TooManyWatchers {
            limit: MAX_WATCHERS,
        };
        answer(s, &refusal(&e));
        return;
    };
    let rx = match ctl.subscribe() {
        Ok(rx) => rx,
        Err(e) => {
            answer(s, &refusal(&e));
            return;
        }
    };
    let _ = s.set_write_timeout(Some(WRITE_TIMEOUT));
    let started = View::Watching(WatchStarted { watching: true });
    let mut w = s;
    if writeln!(w, "{}", serde_json::json!({ "ok": started.to_json() })).is_err() {
        return;
    }
    loop {
        match rx.recv_timeout(PEER_CHECK) {
            Ok(ev) => {
                let Ok(line) = serde_json::to_string(&ev) else {
                    continue;
                };
                if writeln!(w, "{line}").is_err() {
                    return;
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if peer_closed(s) {
                    return;
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// `vswitch ctl watch`: prints every event until the switch closes the stream (or Ctrl-C,
/// or stdout goes away). `json`: the events' JSON, one per line; otherwise one line each
/// for a human.
pub fn follow(socket: &Path, json: bool) -> Result<(), String> {
    let mut s = connect(socket)?;
    let req = serde_json::to_string(&Command::Watch).map_err(|e| e.to_string())?;
    writeln!(s, "{req}").map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s);
    let mut first = String::new();
    let n = r.read_line(&mut first).map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("the switch closed the connection without an answer".into());
    }
    let ok = parse_answer(&first).map_err(|e| e.to_string())?;
    View::decode(&Command::Watch, ok).map_err(|e| format!("bad answer from the switch: {e}"))?;
    eprintln!(
        "watching the events of the switch at {} (Ctrl-C to stop)",
        socket.display()
    );
    let mut out = std::io::stdout().lock();
    for line in r.lines() {
        let line = line.map_err(|e| format!("reading the event stream: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let text = render(&line, json);
        if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
            // the reader went away (`vswitch ctl watch | head`)
            return Ok(());
        }
    }
    eprintln!("the switch closed the event stream");
    Ok(())
}

/// One stream line as printed: an event from a newer switch that this CLI does not know is
/// passed through (`--json`) or shown raw.
fn render(line: &str, json: bool) -> String {
    match serde_json::from_str::<Event>(line) {
        Ok(ev) if json => serde_json::to_string(&ev).unwrap_or_else(|_| line.to_string()),
        Ok(ev) => ev.to_string(),
        Err(_) if json => line.to_string(),
        Err(_) => format!("(unknown event) {line}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_render_for_humans_and_scripts() {
        let line = r#"{"event":"port_state","port":"a","up":false,"cause":"admin"}"#;
        assert_eq!(render(line, false), "port a down (admin)");
        assert_eq!(render(line, true), line);
        let future = r#"{"event":"from_the_future","x":1}"#;
        assert_eq!(render(future, true), future);
        assert!(render(future, false).starts_with("(unknown event) "));
    }

    #[test]
    fn watcher_places_are_bounded() {
        let places: Vec<_> = std::iter::from_fn(WatcherPlace::take).take(100).collect();
        assert_eq!(places.len(), MAX_WATCHERS);
        assert!(WatcherPlace::take().is_none());
        drop(places);
        assert!(WatcherPlace::take().is_some());
    }

    #[test]
    fn a_closed_peer_is_noticed() {
        let (a, b) = UnixStream::pair().expect("pair");
        assert!(!peer_closed(&a));
        drop(b);
        assert!(peer_closed(&a));
    }
}
