//! The control socket (one JSON command per line, one JSON answer per line) and the
//! Prometheus metrics endpoint.
//!
//! Protocol: the client writes `{"cmd":"show-vips"}\n` (see `vswitch::datapath::Command`),
//! the server answers `{"ok": <data>}\n` or `{"error": "<message>"}\n` and closes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use vswitch::datapath::{Command, ControlHandle};
use vswitch::request::MAX_REQUEST_LEN;

/// Serve the control socket until `stop` is set.
pub fn serve_control(
    path: &Path,
    ctl: ControlHandle,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        // A live daemon answers on it; refuse to steal it.
        if UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is in use by a running switch", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let l = UnixListener::bind(path)?;
    l.set_nonblocking(true)?;
    let path: PathBuf = path.to_path_buf();
    std::thread::Builder::new()
        .name("vswitch-ctl".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, _)) => {
                        let ctl = ctl.clone();
                        std::thread::spawn(move || handle_ctl(s, &ctl));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "control socket accept failed");
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            }
            let _ = std::fs::remove_file(&path);
        })?;
    Ok(())
}

fn handle_ctl(s: UnixStream, ctl: &ControlHandle) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut line = Vec::new();
    // One byte more than a request may have, so an over-long line is refused, not cut.
    let mut r = BufReader::new(&s).take(MAX_REQUEST_LEN as u64 + 1);
    if r.read_until(b'\n', &mut line).is_err() {
        return;
    }
    let answer = match Command::parse_request(&line) {
        Ok(cmd) => match ctl.call(cmd) {
            Ok(v) => json!({ "ok": v }),
            Err(e) => json!({ "error": e }),
        },
        Err(e) => json!({ "error": e }),
    };
    let mut w = &s;
    let _ = writeln!(w, "{answer}");
}

/// Send one command to a running switch.
pub fn call(socket: &Path, cmd: &Command) -> Result<serde_json::Value, String> {
    let mut s = UnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot reach the switch at {}: {e} (is `vswitch run` running? use --socket)",
            socket.display()
        )
    })?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(15)));
    let req = serde_json::to_string(cmd).map_err(|e| e.to_string())?;
    writeln!(s, "{req}").map_err(|e| e.to_string())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_str(resp.trim())
        .map_err(|e| format!("bad answer from the switch: {e}"))?;
    if let Some(e) = v.get("error") {
        return Err(e.as_str().unwrap_or("error").to_string());
    }
    Ok(v.get("ok").cloned().unwrap_or(serde_json::Value::Null))
}

/// Serve `GET /metrics` on `addr` until `stop` is set.
pub fn serve_metrics(
    addr: &str,
    ctl: ControlHandle,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::net::SocketAddr> {
    let l = TcpListener::bind(addr)?;
    let local = l.local_addr()?;
    l.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("vswitch-metrics".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = [0u8; 2048];
                        let n = s.read(&mut buf).unwrap_or(0);
                        let req = String::from_utf8_lossy(&buf[..n]);
                        let (status, body) = if req.starts_with("GET /metrics") {
                            match ctl.call(Command::Metrics) {
                                Ok(serde_json::Value::String(t)) => ("200 OK", t),
                                Ok(_) => ("500 Internal Server Error", String::new()),
                                Err(e) => ("503 Service Unavailable", e),
                            }
                        } else {
                            ("404 Not Found", "try /metrics\n".to_string())
                        };
                        let _ = write!(
                            s,
                            "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        })?;
    Ok(local)
}
