//! The control socket (one JSON command per line, one JSON answer per line) and the
//! Prometheus metrics endpoint.
//!
//! Protocol: the client writes `{"cmd":"show-vips"}\n` (see `vswitch::datapath::Command`),
//! the server answers `{"ok": <view>}\n` or `{"error": "<message>"}\n` and closes (the
//! views and messages are `vswitch::view`'s). `{"cmd":"watch"}` is the exception: the
//! server answers `{"ok":{"watching":true}}\n` and then streams events, one JSON object per
//! line, until the client closes or the switch stops (see [`crate::watch`]); so is
//! `{"cmd":"capture",...}`: `{"ok": <CaptureStarted>}`, then one frame per line and an end
//! record (see `serve_capture` and `vswitch::view::capture`).
//!
//! Access: the socket is 0660, group `switch.ctl_group` (see [`crate::ctl_socket`]).
//! Each peer's credentials are read with `SO_PEERCRED`; read-only commands are answered
//! for anyone who could connect, commands that change the switch ([`Command::mutates`])
//! only for root and members of the control group — others get
//! `{"error": "permission denied: ..."}` and an `event = "ctl_denied"` warning. The same
//! holds for commands that show tenants' traffic ([`Command::reveals_traffic`]: `capture`),
//! which are read-only but not for anyone who can connect.
//!
//! Limits: at most [`MAX_CTL_CONNECTIONS`] connections are served at once; one request is
//! at most [`MAX_REQUEST_BYTES`] and must arrive within [`REQUEST_DEADLINE`]. Every
//! connection has its own thread, so the accept loop never waits for a client. When the
//! table is full, the oldest connection that has not yet sent its request is closed to
//! make room (idle or slow clients cannot lock operators out); if every slot is busy
//! running a command, the new connection gets an error and is closed at once.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use vswitch::datapath::{CaptureNext, Command, ControlHandle};
use vswitch::request::MAX_REQUEST_LEN;
use vswitch::view::capture::{CaptureDir, CaptureEndReason, CaptureLine};
use vswitch::view::{CtlError, Reply, View};

use crate::peer::Peer;

/// Control connections served at once.
pub const MAX_CTL_CONNECTIONS: usize = 32;
/// Longest control request line (without its newline).
pub const MAX_REQUEST_BYTES: usize = MAX_REQUEST_LEN;
/// A control client must have sent its whole request within this time.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// Time allowed for writing one answer.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Metrics connections served at once.
pub const MAX_METRICS_CONNECTIONS: usize = 8;
/// Longest HTTP request head (request line and headers) the metrics endpoint reads.
pub const MAX_HTTP_REQUEST_BYTES: usize = 8 * 1024;
/// An HTTP client must have sent its request head within this time.
pub const HTTP_DEADLINE: Duration = Duration::from_secs(2);
/// The metrics port used when `--metrics` is given without a value.
pub const DEFAULT_METRICS_PORT: u16 = 9420;

// ---------------------------------------------------------------------------------------
// Connection slots
// ---------------------------------------------------------------------------------------

/// A connection the slot table can close to make room.
pub trait Evict: Send + 'static {
    /// Makes the connection's pending read return end-of-file.
    fn evict(&self);
}

impl Evict for UnixStream {
    fn evict(&self) {
        let _ = self.shutdown(Shutdown::Read);
    }
}

impl Evict for TcpStream {
    fn evict(&self) {
        let _ = self.shutdown(Shutdown::Read);
    }
}

struct Entry<T> {
    id: u64,
    /// Still waiting for its request (may be evicted).
    reading: bool,
    evicted: Arc<AtomicBool>,
    conn: T,
}

struct Table<T> {
    next_id: u64,
    entries: Vec<Entry<T>>,
}

/// A bounded table of live connections.
pub struct Slots<T> {
    max: usize,
    table: Mutex<Table<T>>,
}

/// A connection's place in [`Slots`]; released on drop.
pub struct Slot<T: Evict> {
    slots: Arc<Slots<T>>,
    id: u64,
    evicted: Arc<AtomicBool>,
}

impl<T: Evict> Slots<T> {
    /// A table of at most `max` connections.
    pub fn new(max: usize) -> Arc<Slots<T>> {
        Arc::new(Slots {
            max,
            table: Mutex::new(Table {
                next_id: 0,
                entries: Vec::new(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table<T>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a connection (`handle`: a clone the table may use to evict it). When full,
    /// evicts the oldest connection still reading its request; `None` if every slot is
    /// running a command.
    pub fn admit(self: &Arc<Self>, handle: T) -> Option<Slot<T>> {
        let mut t = self.lock();
        if t.entries.len() >= self.max {
            let victim = t.entries.iter().position(|e| e.reading)?;
            let e = t.entries.remove(victim);
            e.evicted.store(true, Ordering::Relaxed);
            e.conn.evict();
        }
        let id = t.next_id;
        t.next_id += 1;
        let evicted = Arc::new(AtomicBool::new(false));
        t.entries.push(Entry {
            id,
            reading: true,
            evicted: evicted.clone(),
            conn: handle,
        });
        Some(Slot {
            slots: self.clone(),
            id,
            evicted,
        })
    }

    /// Connections in the table.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

impl<T: Evict> Slot<T> {
    /// The request has arrived: from now on the connection is not evicted.
    pub fn serving(&self) {
        let mut t = self.slots.lock();
        if let Some(e) = t.entries.iter_mut().find(|e| e.id == self.id) {
            e.reading = false;
        }
    }

    /// Whether the table closed this connection to make room.
    pub fn evicted(&self) -> bool {
        self.evicted.load(Ordering::Relaxed)
    }
}

impl<T: Evict> Drop for Slot<T> {
    fn drop(&mut self) {
        let mut t = self.slots.lock();
        t.entries.retain(|e| e.id != self.id);
    }
}

// ---------------------------------------------------------------------------------------
// Reading a request
// ---------------------------------------------------------------------------------------

/// Why a request could not be read.
#[derive(Debug)]
pub enum RequestError {
    /// Longer than the limit.
    TooLarge,
    /// The client closed without sending anything.
    Empty,
    /// Timeout or I/O error.
    Io(std::io::Error),
}

/// Reads one request line of at most `max` bytes (the newline not counted; a last line
/// without newline is accepted at end-of-file).
pub fn read_request<R: BufRead>(r: R, max: usize) -> Result<Vec<u8>, RequestError> {
    let mut buf = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let n = r
        .take(limit)
        .read_until(b'\n', &mut buf)
        .map_err(RequestError::Io)?;
    if buf.last() == Some(&b'\n') {
        buf.pop();
        return Ok(buf);
    }
    if buf.len() > max {
        return Err(RequestError::TooLarge);
    }
    if n == 0 {
        return Err(RequestError::Empty);
    }
    Ok(buf)
}

/// A reader whose reads all end by one deadline (a client trickling a byte at a time
/// cannot stretch the per-read timeout).
struct DeadlineReader<'a, S> {
    s: &'a S,
    until: Instant,
}

trait SetReadTimeout {
    fn set_timeout(&self, t: Duration) -> std::io::Result<()>;
}

impl SetReadTimeout for UnixStream {
    fn set_timeout(&self, t: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(t))
    }
}

impl SetReadTimeout for TcpStream {
    fn set_timeout(&self, t: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(t))
    }
}

impl<S> Read for DeadlineReader<'_, S>
where
    S: SetReadTimeout,
    for<'b> &'b S: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "request deadline passed",
            ));
        }
        self.s.set_timeout(left)?;
        let mut s = self.s;
        s.read(buf)
    }
}

// ---------------------------------------------------------------------------------------
// The control socket
// ---------------------------------------------------------------------------------------

/// Who may change the switch through the control socket.
#[derive(Clone, Debug)]
pub struct CtlAccess {
    /// The control group's gid (`switch.ctl_group`).
    pub gid: u32,
    /// How to name it in messages (`vswitch-ops (gid 1001)`).
    pub label: String,
}

/// The cluster view, when the switch runs in cluster mode (`[cluster]`).
pub type ClusterView = Option<Arc<crate::cluster::ClusterState>>;

/// Answer `cmd`: `show hosts` from the cluster view, `metrics` with the cluster's lines
/// appended, everything else (and `show hosts` of a standalone switch, refused as
/// `ClusterOff`) by the control thread.
pub(crate) fn dispatch(ctl: &ControlHandle, cluster: &ClusterView, cmd: Command) -> Reply {
    match (cmd, cluster) {
        (cmd, _) if cmd.agent_only() => Err(CtlError::AgentOnly {
            cmd: cmd_name(&cmd),
        }),
        (Command::ShowHosts, Some(c)) => Ok(View::Hosts(c.hosts_view())),
        (Command::ClusterShow, Some(c)) => Ok(View::ClusterDefs(c.defs_view())),
        (Command::ClusterApply { toml }, Some(c)) => c.apply(&toml).map(View::ClusterApplied),
        (Command::Metrics, Some(c)) => match ctl.call(Command::Metrics) {
            Ok(View::Metrics(t)) => {
                // read from the switch, so it is right while etcd is unreachable too
                let pending = match ctl.call(Command::ClusterWrites) {
                    Ok(View::ClusterWrites(w)) => w.len() as u64,
                    _ => 0,
                };
                Ok(View::Metrics(t + &c.metrics(pending)))
            }
            other => other,
        },
        (cmd, _) => ctl.call(cmd),
    }
}

/// The name of a command as written on the wire (`port-admin`).
fn cmd_name(cmd: &Command) -> String {
    serde_json::to_value(cmd)
        .ok()
        .and_then(|v| v.get("cmd").and_then(|c| c.as_str()).map(str::to_string))
        .unwrap_or_else(|| "?".to_string())
}

/// Creates the control socket (see [`crate::ctl_socket::bind`]) and serves it until
/// `stop` is set.
pub fn serve_control(
    path: &Path,
    ctl: ControlHandle,
    stop: Arc<AtomicBool>,
    access: CtlAccess,
    cluster: ClusterView,
) -> Result<(), String> {
    let l = crate::ctl_socket::bind(path, access.gid).map_err(|e| e.to_string())?;
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    let path = path.to_path_buf();
    let slots: Arc<Slots<UnixStream>> = Slots::new(MAX_CTL_CONNECTIONS);
    let access = Arc::new(access);
    std::thread::Builder::new()
        .name("vswitch-ctl".into())
        .spawn(move || {
            let mut busy_logged = false;
            while !stop.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, _)) => {
                        let admitted = s.try_clone().ok().and_then(|h| slots.admit(h));
                        let Some(slot) = admitted else {
                            // every slot is running a command: say so and close at once
                            let _ = s.set_nonblocking(true);
                            let mut w = &s;
                            let busy = CtlError::Busy {
                                limit: MAX_CTL_CONNECTIONS,
                            };
                            let _ = writeln!(w, "{}", refusal(&busy));
                            if !busy_logged {
                                tracing::warn!(
                                    event = "ctl_busy",
                                    limit = MAX_CTL_CONNECTIONS,
                                    "control socket full: refusing connections"
                                );
                                busy_logged = true;
                            }
                            continue;
                        };
                        busy_logged = false;
                        let ctl = ctl.clone();
                        let access = access.clone();
                        let cluster = cluster.clone();
                        let spawned = std::thread::Builder::new()
                            .name("vswitch-ctl-conn".into())
                            .spawn(move || handle_ctl(s, &ctl, &cluster, &slot, &access));
                        if let Err(e) = spawned {
                            tracing::warn!(error = %e, "cannot start a control connection thread");
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "control socket accept failed");
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            }
            let _ = std::fs::remove_file(&path);
        })
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// The answer line of a refused command.
pub(crate) fn refusal(e: &CtlError) -> serde_json::Value {
    json!({ "error": e.to_string() })
}

pub(crate) fn answer(s: &UnixStream, v: &serde_json::Value) {
    let _ = s.set_write_timeout(Some(WRITE_TIMEOUT));
    let mut w = s;
    let _ = writeln!(w, "{v}");
}

fn handle_ctl(
    s: UnixStream,
    ctl: &ControlHandle,
    cluster: &ClusterView,
    slot: &Slot<UnixStream>,
    access: &CtlAccess,
) {
    let _ = s.set_nonblocking(false);
    let peer = Peer::of(&s);
    let reader = BufReader::new(DeadlineReader {
        s: &s,
        until: Instant::now() + REQUEST_DEADLINE,
    });
    let read = read_request(reader, MAX_REQUEST_BYTES);
    slot.serving();
    if slot.evicted() {
        answer(&s, &refusal(&CtlError::Evicted));
        return;
    }
    let line = match read {
        Ok(l) => l,
        Err(RequestError::TooLarge) => {
            let e = CtlError::RequestTooLarge {
                max: MAX_REQUEST_BYTES,
            };
            answer(&s, &refusal(&e));
            return;
        }
        Err(RequestError::Io(e))
            if e.kind() == std::io::ErrorKind::TimedOut
                || e.kind() == std::io::ErrorKind::WouldBlock =>
        {
            let e = CtlError::RequestTimeout {
                secs: REQUEST_DEADLINE.as_secs(),
            };
            answer(&s, &refusal(&e));
            return;
        }
        Err(_) => return,
    };
    // the same pure parser the `control_request` fuzz target runs
    let reply = match Command::parse_request(&line) {
        Err(e) => refusal(&e),
        Ok(cmd) => {
            let name = cmd_name(&cmd);
            match &peer {
                Ok(p)
                    if cmd.reveals_traffic()
                        && !p.may_mutate(crate::peer::own_uid(), access.gid) =>
                {
                    tracing::warn!(
                        event = "ctl_denied",
                        uid = p.uid,
                        pid = p.pid,
                        cmd = %name,
                        "control command refused: uid {} may not see the switch's traffic \
                         (neither root nor in the control group {})",
                        p.uid,
                        access.label
                    );
                    refusal(&CtlError::TrafficDenied {
                        cmd: name,
                        group: access.label.clone(),
                        uid: p.uid,
                    })
                }
                Ok(p) if cmd.mutates() && !p.may_mutate(crate::peer::own_uid(), access.gid) => {
                    tracing::warn!(
                        event = "ctl_denied",
                        uid = p.uid,
                        pid = p.pid,
                        cmd = %name,
                        "control command refused: uid {} is neither root nor in the control \
                         group {}",
                        p.uid,
                        access.label
                    );
                    refusal(&CtlError::PermissionDenied {
                        cmd: name,
                        group: access.label.clone(),
                        uid: p.uid,
                    })
                }
                Err(e) if cmd.mutates() || cmd.reveals_traffic() => {
                    tracing::warn!(
                        event = "ctl_denied",
                        cmd = %name,
                        error = %e,
                        "control command refused: cannot read the peer's credentials"
                    );
                    refusal(&CtlError::CredentialsUnknown {
                        cmd: name,
                        error: e.to_string(),
                    })
                }
                _ => {
                    if cmd.mutates() || cmd.reveals_traffic() {
                        if let Ok(p) = &peer {
                            tracing::info!(
                                event = "ctl_command",
                                uid = p.uid,
                                pid = p.pid,
                                cmd = %name,
                                "control command"
                            );
                        }
                    }
                    if cmd == Command::Watch {
                        // a stream, not one answer: it ends when either side goes away
                        crate::watch::serve(&s, ctl);
                        return;
                    }
                    if let Command::Capture {
                        port,
                        dir,
                        count,
                        duration,
                    } = cmd
                    {
                        // a stream too: it ends by itself (count, duration), when the
                        // client goes away or when the switch stops
                        let duration = duration.map(Duration::from_secs);
                        serve_capture(&s, ctl, &port, dir, count, duration);
                        return;
                    }
                    match dispatch(ctl, cluster, cmd) {
                        Ok(v) => json!({ "ok": v.to_json() }),
                        Err(e) => refusal(&e),
                    }
                }
            }
        }
    };
    answer(&s, &reply);
}

/// How often a capture stream checks whether its client is still there (also while
/// frames flow).
pub const CAPTURE_PEER_CHECK: Duration = Duration::from_millis(200);

/// Serves one `capture` request on `s`: the answer line `{"ok": <CaptureStarted>}`, then
/// one `CaptureLine` per line, the last one the end record. Ends when the capture reaches
/// its count or duration, when the switch stops or removes the port, when a write does
/// not complete within [`WRITE_TIMEOUT`] (a client that stopped reading), or when the
/// client closes its end: a client that only shuts down its writing half (what `vswitch
/// ctl capture` does on Ctrl-C) still gets the end record with reason `client`. Dropping
/// the [`CaptureStream`](vswitch::datapath::CaptureStream) releases the capture.
fn serve_capture(
    s: &UnixStream,
    ctl: &ControlHandle,
    port: &str,
    dir: CaptureDir,
    count: Option<u64>,
    duration: Option<Duration>,
) {
    let mut cap = match ctl.capture(port, dir, count, duration) {
        Ok(c) => c,
        Err(e) => {
            answer(s, &refusal(&e));
            return;
        }
    };
    let _ = s.set_write_timeout(Some(WRITE_TIMEOUT));
    let started = View::Capturing(cap.started().clone());
    let mut w = std::io::BufWriter::new(s);
    if writeln!(w, "{}", json!({ "ok": started.to_json() }))
        .and_then(|()| w.flush())
        .is_err()
    {
        return;
    }
    let mut checked = Instant::now();
    loop {
        let line = match cap.next(CAPTURE_PEER_CHECK) {
            CaptureNext::Frame(r) => CaptureLine::Frame(r),
            CaptureNext::End(e) => CaptureLine::End(e),
            CaptureNext::Idle => {
                if w.flush().is_err() {
                    return;
                }
                if crate::watch::peer_closed(s) {
                    end_by_client(&mut w, &cap);
                    return;
                }
                checked = Instant::now();
                continue;
            }
        };
        let end = matches!(line, CaptureLine::End(_));
        let Ok(text) = serde_json::to_string(&line) else {
            continue;
        };
        if writeln!(w, "{text}").is_err() {
            return;
        }
        if end {
            let _ = w.flush();
            return;
        }
        if checked.elapsed() >= CAPTURE_PEER_CHECK {
            if w.flush().is_err() {
                return;
            }
            if crate::watch::peer_closed(s) {
                end_by_client(&mut w, &cap);
                return;
            }
            checked = Instant::now();
        }
    }
}

/// The end record of a capture its client stopped (a client that closed both halves
/// does not read it; the write just fails).
fn end_by_client<W: Write>(w: &mut W, cap: &vswitch::datapath::CaptureStream) {
    let end = CaptureLine::End(cap.end_now(CaptureEndReason::Client));
    if let Ok(text) = serde_json::to_string(&end) {
        let _ = writeln!(w, "{text}").and_then(|()| w.flush());
    }
}

/// Connects to a running switch's control socket.
pub(crate) fn connect(socket: &Path) -> Result<UnixStream, String> {
    UnixStream::connect(socket).map_err(|e| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            format!(
                "cannot reach the switch at {}: {e} (the control socket is for root and \
                 members of the switch's ctl_group)",
                socket.display()
            )
        } else {
            format!(
                "cannot reach the switch at {}: {e} (is `vswitch run` running? use --socket)",
                socket.display()
            )
        }
    })
}

/// The `ok` part of an answer line, or the switch's error (its message).
pub(crate) fn parse_answer(line: &str) -> Result<serde_json::Value, CtlError> {
    let v: serde_json::Value = serde_json::from_str(line.trim()).map_err(|e| CtlError::Remote {
        message: format!("bad answer from the switch: {e}"),
    })?;
    if let Some(e) = v.get("error") {
        return Err(CtlError::Remote {
            message: e.as_str().unwrap_or("error").to_string(),
        });
    }
    Ok(v.get("ok").cloned().unwrap_or(serde_json::Value::Null))
}

/// Send one command to a running switch; its answer as the command's typed view.
pub fn call(socket: &Path, cmd: &Command) -> Result<View, String> {
    let mut s = connect(socket)?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(15)));
    let req = serde_json::to_string(cmd).map_err(|e| e.to_string())?;
    writeln!(s, "{req}").map_err(|e| e.to_string())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).map_err(|e| e.to_string())?;
    let ok = parse_answer(&resp).map_err(|e| e.to_string())?;
    View::decode(cmd, ok).map_err(|e| format!("bad answer from the switch: {e}"))
}

// ---------------------------------------------------------------------------------------
// Metrics over HTTP
// ---------------------------------------------------------------------------------------

/// The address `--metrics VALUE` listens on: a bare port (`9420`) or no value means
/// loopback (`127.0.0.1`); anything else (`0.0.0.0:9420`, `[::1]:9420`,
/// `localhost:9420`) is used as given.
pub fn metrics_listen_addr(arg: &str) -> Result<String, String> {
    let arg = arg.trim();
    if arg.is_empty() {
        return Ok(format!("127.0.0.1:{DEFAULT_METRICS_PORT}"));
    }
    if arg.bytes().all(|b| b.is_ascii_digit()) {
        let port: u16 = arg
            .parse()
            .map_err(|_| format!("{arg:?} is not a port number (0-65535)"))?;
        return Ok(format!("127.0.0.1:{port}"));
    }
    if let Some(port) = arg.strip_prefix(':') {
        return Err(format!(
            "{arg:?}: give a port alone for loopback ({port}) or an address with it \
             (0.0.0.0{arg} to listen on every interface)"
        ));
    }
    Ok(arg.to_string())
}

/// What to answer an HTTP request head.
#[derive(Debug, PartialEq, Eq)]
pub enum HttpRoute {
    /// `GET /metrics HTTP/1.x`.
    Metrics,
    /// A valid GET of another path.
    NotFound,
    /// A valid request line with another method.
    MethodNotAllowed,
    /// Not an HTTP/1.x request line.
    BadRequest,
}

/// Routes a request by its first line.
pub fn route(head: &[u8]) -> HttpRoute {
    let end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let Ok(line) = std::str::from_utf8(&head[..end]) else {
        return HttpRoute::BadRequest;
    };
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return HttpRoute::BadRequest;
    };
    let method_ok = !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase());
    if !method_ok || !target.starts_with('/') || !matches!(version, "HTTP/1.0" | "HTTP/1.1") {
        return HttpRoute::BadRequest;
    }
    if target.bytes().any(|b| b.is_ascii_control()) {
        return HttpRoute::BadRequest;
    }
    if method != "GET" {
        return HttpRoute::MethodNotAllowed;
    }
    let path = target.split('?').next().unwrap_or(target);
    if path == "/metrics" {
        HttpRoute::Metrics
    } else {
        HttpRoute::NotFound
    }
}

/// How reading an HTTP request head ended.
#[derive(Debug)]
pub enum HeadError {
    /// No end of headers within the limit.
    TooLarge,
    /// The client closed before the end of headers.
    Incomplete,
    /// Timeout or I/O error.
    Io(std::io::Error),
}

/// Reads a request head (up to and including the empty line) of at most `max` bytes.
pub fn read_head<R: Read>(mut r: R, max: usize) -> Result<Vec<u8>, HeadError> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let n = r.read(&mut buf).map_err(HeadError::Io)?;
        if n == 0 {
            return Err(HeadError::Incomplete);
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(head);
        }
        if head.len() > max {
            return Err(HeadError::TooLarge);
        }
    }
}

fn handle_http(
    mut s: TcpStream,
    ctl: &ControlHandle,
    cluster: &ClusterView,
    slot: &Slot<TcpStream>,
) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_write_timeout(Some(WRITE_TIMEOUT));
    let reader = DeadlineReader {
        s: &s,
        until: Instant::now() + HTTP_DEADLINE,
    };
    let (status, body) = match read_head(reader, MAX_HTTP_REQUEST_BYTES) {
        Err(HeadError::TooLarge) => ("400 Bad Request", "request too large\n".to_string()),
        Err(HeadError::Io(e))
            if !slot.evicted()
                && matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) =>
        {
            (
                "408 Request Timeout",
                "no complete request in time\n".to_string(),
            )
        }
        // A client that closed (or an incomplete head) gets whatever its first line
        // deserves; a connection evicted for room gets nothing.
        Err(HeadError::Incomplete) | Err(HeadError::Io(_)) => return,
        Ok(head) => {
            slot.serving();
            match route(&head) {
                HttpRoute::Metrics => match dispatch(ctl, cluster, Command::Metrics) {
                    Ok(View::Metrics(t)) => ("200 OK", t),
                    Ok(_) => ("500 Internal Server Error", String::new()),
                    Err(e) => ("503 Service Unavailable", e.to_string()),
                },
                HttpRoute::NotFound => ("404 Not Found", "try /metrics\n".to_string()),
                HttpRoute::MethodNotAllowed => {
                    ("405 Method Not Allowed", "only GET /metrics\n".to_string())
                }
                HttpRoute::BadRequest => ("400 Bad Request", "try GET /metrics\n".to_string()),
            }
        }
    };
    let allow = if status.starts_with("405") {
        "Allow: GET\r\n"
    } else {
        ""
    };
    let _ = write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n{body}",
        prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        body.len()
    );
}

/// Serve `GET /metrics` on `addr` (see [`metrics_listen_addr`]) until `stop` is set.
pub fn serve_metrics(
    addr: &str,
    ctl: ControlHandle,
    stop: Arc<AtomicBool>,
    cluster: ClusterView,
) -> std::io::Result<std::net::SocketAddr> {
    let l = TcpListener::bind(addr)?;
    let local = l.local_addr()?;
    l.set_nonblocking(true)?;
    let slots: Arc<Slots<TcpStream>> = Slots::new(MAX_METRICS_CONNECTIONS);
    std::thread::Builder::new()
        .name("vswitch-metrics".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, _)) => {
                        let admitted = s.try_clone().ok().and_then(|h| slots.admit(h));
                        let Some(slot) = admitted else {
                            let _ = s.set_nonblocking(true);
                            let mut w = &s;
                            let _ = w.write_all(
                                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                            );
                            continue;
                        };
                        let ctl = ctl.clone();
                        let cluster = cluster.clone();
                        let spawned = std::thread::Builder::new()
                            .name("vswitch-metrics-conn".into())
                            .spawn(move || handle_http(s, &ctl, &cluster, &slot));
                        if let Err(e) = spawned {
                            tracing::warn!(error = %e, "cannot start a metrics connection thread");
                        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_size_cap() {
        let ok = read_request(&b"{\"cmd\":\"show-vips\"}\n"[..], 64).unwrap();
        assert_eq!(ok, b"{\"cmd\":\"show-vips\"}");
        // exactly the limit (plus newline) passes, one more byte does not
        let at = [b"a".repeat(64), b"\n".to_vec()].concat();
        assert_eq!(read_request(&at[..], 64).unwrap().len(), 64);
        let over = [b"a".repeat(65), b"\n".to_vec()].concat();
        assert!(matches!(
            read_request(&over[..], 64),
            Err(RequestError::TooLarge)
        ));
        let endless = b"a".repeat(10_000);
        assert!(matches!(
            read_request(&endless[..], 64),
            Err(RequestError::TooLarge)
        ));
        // no newline before end-of-file: accepted; nothing at all: Empty
        assert_eq!(read_request(&b"abc"[..], 64).unwrap(), b"abc");
        assert!(matches!(
            read_request(&b""[..], 64),
            Err(RequestError::Empty)
        ));
        // only the first line is read
        assert_eq!(read_request(&b"a\nbbbbbbbbbbbb"[..], 4).unwrap(), b"a");
    }

    #[test]
    fn mutating_commands() {
        let p = || "p".to_string();
        for c in [
            Command::ShowPorts,
            Command::ShowFdb,
            Command::ShowVips,
            Command::ShowStats,
            Command::ShowHosts,
            Command::Metrics,
            Command::Watch,
        ] {
            assert!(!c.mutates(), "{c:?}");
        }
        for c in [
            Command::VipMove {
                vip: p(),
                port: p(),
            },
            Command::VipRelease {
                vip: p(),
                port: p(),
            },
            Command::PortAdmin {
                port: p(),
                up: false,
            },
            Command::Reload,
        ] {
            assert!(c.mutates(), "{c:?}");
        }
        // a capture changes nothing but shows traffic: root and the control group only
        let cap = Command::Capture {
            port: p(),
            dir: CaptureDir::Drops,
            count: None,
            duration: None,
        };
        assert!(!cap.mutates() && cap.reveals_traffic());
        assert!(!Command::Watch.reveals_traffic() && !Command::ShowStats.reveals_traffic());
        assert_eq!(cmd_name(&cap), "capture");
        assert_eq!(
            cmd_name(&Command::PortAdmin {
                port: p(),
                up: true
            }),
            "port-admin"
        );
    }

    #[test]
    fn agent_only_commands_are_refused_by_name() {
        let c = Command::ClusterHostGone { host: "h".into() };
        assert!(c.agent_only() && c.mutates());
        assert!(!Command::ClusterApply {
            toml: String::new()
        }
        .agent_only());
        assert!(!Command::ClusterShow.agent_only());
        let e = CtlError::AgentOnly { cmd: cmd_name(&c) }.to_string();
        assert!(
            e.starts_with("cluster-host-gone is sent by the cluster agent"),
            "{e}"
        );
    }

    #[test]
    fn metrics_addresses() {
        assert_eq!(metrics_listen_addr("9420").unwrap(), "127.0.0.1:9420");
        assert_eq!(metrics_listen_addr("0").unwrap(), "127.0.0.1:0");
        assert_eq!(metrics_listen_addr("").unwrap(), "127.0.0.1:9420");
        assert_eq!(metrics_listen_addr("0.0.0.0:1").unwrap(), "0.0.0.0:1");
        assert_eq!(metrics_listen_addr("[::1]:9420").unwrap(), "[::1]:9420");
        assert!(metrics_listen_addr("70000").is_err());
        assert!(metrics_listen_addr(":9420").is_err());
    }

    #[test]
    fn http_routes() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            HttpRoute::Metrics
        );
        assert_eq!(
            route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            HttpRoute::Metrics
        );
        assert_eq!(route(b"GET /nope HTTP/1.1\r\n\r\n"), HttpRoute::NotFound);
        assert_eq!(
            route(b"GET /metricsX HTTP/1.1\r\n\r\n"),
            HttpRoute::NotFound
        );
        assert_eq!(
            route(b"POST /metrics HTTP/1.1\r\n\r\n"),
            HttpRoute::MethodNotAllowed
        );
        for bad in [
            &b"garbage\r\n\r\n"[..],
            b"GET /metrics\r\n\r\n",
            b"GET /metrics HTTP/2.0\r\n\r\n",
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"GET  /metrics HTTP/1.1\r\n\r\n",
            b"get /metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/1.1 x\r\n\r\n",
            b"\xff\xfe\r\n\r\n",
            b"",
        ] {
            assert_eq!(
                route(bad),
                HttpRoute::BadRequest,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn http_head_cap() {
        let h = read_head(&b"GET /metrics HTTP/1.1\r\nA: b\r\n\r\nbody"[..], 100).unwrap();
        assert!(h.starts_with(b"GET /metrics"));
        let long = [b"GET / HTTP/1.1\r\nX: ".to_vec(), b"a".repeat(5000)].concat();
        assert!(matches!(
            read_head(&long[..], 1024),
            Err(HeadError::TooLarge)
        ));
        assert!(matches!(
            read_head(&b"GET / HTTP/1.1\r\n"[..], 1024),
            Err(HeadError::Incomplete)
        ));
    }

    #[test]
    fn full_table_evicts_the_oldest_idle_connection() {
        let slots: Arc<Slots<UnixStream>> = Slots::new(2);
        let (a, mut a_peer) = UnixStream::pair().unwrap();
        let (b, _b_peer) = UnixStream::pair().unwrap();
        let (c, _c_peer) = UnixStream::pair().unwrap();
        let sa = slots.admit(a.try_clone().unwrap()).unwrap();
        let sb = slots.admit(b.try_clone().unwrap()).unwrap();
        sb.serving();
        // full: a (still reading) makes room for c; its read ends at once
        let sc = slots.admit(c.try_clone().unwrap()).unwrap();
        assert!(sa.evicted() && !sb.evicted() && !sc.evicted());
        assert_eq!(slots.len(), 2);
        let mut buf = [0u8; 1];
        assert_eq!((&a).read(&mut buf).unwrap(), 0, "evicted: end-of-file");
        let _ = a_peer.write_all(b"x");
        drop(sa);
        assert_eq!(
            slots.len(),
            2,
            "dropping an evicted slot frees nothing twice"
        );
        // every slot serving: no room
        sc.serving();
        let (d, _d_peer) = UnixStream::pair().unwrap();
        assert!(slots.admit(d).is_none());
        drop(sb);
        assert_eq!(slots.len(), 1);
        let (e, _e_peer) = UnixStream::pair().unwrap();
        assert!(slots.admit(e).is_some());
    }
}
