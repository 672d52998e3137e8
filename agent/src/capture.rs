//! `vswitch ctl capture PORT -w FILE|-`: follows a port capture on the control socket
//! (see `server::serve_capture`) and writes it as pcapng ([`crate::pcapng`]).
//!
//! The capture ends by itself (`-c COUNT`, `--duration SECS`), when the switch stops or
//! a reload removes the port, or on Ctrl-C (SIGINT, also SIGTERM): then the CLI shuts down
//! its writing half of the connection, the switch ends the capture and sends the end
//! record, and the CLI flushes the file. At the end it prints `captured N frames, lost M`
//! to stderr (M: frames the capture lost because its bounded queue was full; the switch
//! forwarded them all the same).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::Shutdown;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vswitch::datapath::Command;
use vswitch::view::capture::{CaptureDir, CaptureEnd, CaptureLine};
use vswitch::view::View;

use crate::pcapng::CaptureWriter;
use crate::server::{connect, parse_answer};

/// How often the CLI looks at Ctrl-C while no frame arrives.
const POLL: Duration = Duration::from_millis(100);
/// After Ctrl-C, how long the CLI waits for the switch's end record.
const END_WAIT: Duration = Duration::from_secs(3);

/// What `vswitch ctl capture` was asked.
pub struct Request {
    /// Port name.
    pub port: String,
    /// Which frames.
    pub dir: CaptureDir,
    /// Stop after this many frames.
    pub count: Option<u64>,
    /// Stop after this many seconds.
    pub duration: Option<u64>,
    /// The output file; `-` is stdout.
    pub out: PathBuf,
}

/// Runs the capture to its end (see the module doc).
pub fn run(socket: &Path, req: Request) -> Result<(), String> {
    let to_stdout = req.out.as_os_str() == "-";
    if to_stdout && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return Err(
            "-w -: stdout is a terminal; redirect it (`-w - | tshark -r -`) or give \
                    a file"
                .into(),
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| e.to_string())?;
    }
    let cmd = Command::Capture {
        port: req.port,
        dir: req.dir,
        count: req.count,
        duration: req.duration,
    };
    let mut s = connect(socket)?;
    let line = serde_json::to_string(&cmd).map_err(|e| e.to_string())?;
    writeln!(s, "{line}").map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(POLL)).map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s);

    let mut first = Vec::new();
    loop {
        match next_line(&mut r, &mut first) {
            Ok(Some(())) => break,
            Ok(None) => return Err("the switch closed the connection without an answer".into()),
            Err(e) if timed_out(&e) => {
                if stop.load(Ordering::Relaxed) {
                    return Err("interrupted before the capture started".into());
                }
            }
            Err(e) => return Err(format!("reading the switch's answer: {e}")),
        }
    }
    let ok = parse_answer(&String::from_utf8_lossy(&first)).map_err(|e| e.to_string())?;
    let started = match View::decode(&cmd, ok) {
        Ok(View::Capturing(s)) => s,
        Ok(v) => return Err(format!("unexpected answer from the switch: {v:?}")),
        Err(e) => return Err(format!("bad answer from the switch: {e}")),
    };

    let out: Box<dyn Write> = if to_stdout {
        Box::new(BufWriter::new(std::io::stdout().lock()))
    } else {
        let f = File::create(&req.out)
            .map_err(|e| format!("cannot create {}: {e}", req.out.display()))?;
        Box::new(BufWriter::new(f))
    };
    let mut w = CaptureWriter::new(out, &started)?;
    w.flush()
        .map_err(|e| format!("writing {}: {e}", req.out.display()))?;
    eprintln!(
        "capturing port {} ({}) of the switch at {} to {} (Ctrl-C to stop)",
        started.port,
        started.dir.as_str(),
        socket.display(),
        if to_stdout {
            "stdout".to_string()
        } else {
            req.out.display().to_string()
        }
    );

    let end = follow(&mut r, &mut w, &stop);
    let frames = w.frames();
    let flushed = w.finish().map(drop);
    let (end, problem) = match end {
        Ok(e) => (e, None),
        Err(p) => (None, Some(p)),
    };
    match end {
        Some(e) => eprintln!(
            "captured {frames} frames, lost {} ({})",
            e.capture_lost,
            e.reason.as_str()
        ),
        None => eprintln!(
            "captured {frames} frames, lost unknown (the switch closed the stream without \
             its end record)"
        ),
    }
    flushed.map_err(|e| format!("writing {}: {e}", req.out.display()))?;
    match problem {
        Some(p) => Err(p),
        None => Ok(()),
    }
}

/// Reads the stream into `w` until its end record (`Ok(Some)`), the switch closing it
/// without one (`Ok(None)`), or a failure.
fn follow<W: Write>(
    r: &mut BufReader<std::os::unix::net::UnixStream>,
    w: &mut CaptureWriter<W>,
    stop: &AtomicBool,
) -> Result<Option<CaptureEnd>, String> {
    let mut line = Vec::new();
    let mut unreadable = 0u64;
    // set on Ctrl-C: the writing half is shut down, the end record is due by then
    let mut stopping: Option<Instant> = None;
    loop {
        if stopping.is_none() && stop.load(Ordering::Relaxed) {
            // tells the switch to end the capture; it answers with the end record
            let _ = r.get_ref().shutdown(Shutdown::Write);
            stopping = Some(Instant::now() + END_WAIT);
        }
        match next_line(r, &mut line) {
            Ok(None) => return Ok(None),
            Ok(Some(())) => {}
            Err(e) if timed_out(&e) => {
                if stopping.is_some_and(|t| Instant::now() >= t) {
                    return Ok(None);
                }
                // a quiet capture: what is written is in the file (or the pipe) already
                w.flush().map_err(|e| format!("writing the capture: {e}"))?;
                continue;
            }
            Err(e) => return Err(format!("reading the capture stream: {e}")),
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim();
        if text.is_empty() {
            line.clear();
            continue;
        }
        let parsed = serde_json::from_str::<CaptureLine>(text);
        line.clear();
        match parsed {
            Ok(CaptureLine::Frame(f)) => {
                w.frame(&f)?;
                if r.buffer().is_empty() {
                    w.flush().map_err(|e| format!("writing the capture: {e}"))?;
                }
            }
            Ok(CaptureLine::End(e)) => return Ok(Some(e)),
            // a line of a newer switch that this CLI does not know: skipped, said once
            Err(e) => {
                if unreadable == 0 {
                    eprintln!("skipping a stream line this vswitch cannot read: {e}");
                }
                unreadable += 1;
            }
        }
    }
}

/// Reads up to and including the next newline into `buf`, which keeps a partial line
/// across timeouts. `Ok(None)`: end of stream (a partial last line is dropped).
fn next_line<R: BufRead>(r: &mut R, buf: &mut Vec<u8>) -> std::io::Result<Option<()>> {
    loop {
        let n = r.read_until(b'\n', buf)?;
        if buf.last() == Some(&b'\n') {
            return Ok(Some(()));
        }
        if n == 0 {
            return Ok(None);
        }
    }
}

fn timed_out(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_lines_survive_timeouts() {
        struct Chunks(Vec<std::io::Result<Vec<u8>>>);
        impl std::io::Read for Chunks {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                if self.0.is_empty() {
                    return Ok(0);
                }
                let c = self.0.remove(0)?;
                out[..c.len()].copy_from_slice(&c);
                Ok(c.len())
            }
        }
        let again = || Err(std::io::Error::from(std::io::ErrorKind::WouldBlock));
        let mut r = BufReader::new(Chunks(vec![
            Ok(b"{\"a\"".to_vec()),
            again(),
            Ok(b":1}\n{\"b\"".to_vec()),
            again(),
            Ok(b":2}\npartial".to_vec()),
        ]));
        let mut buf = Vec::new();
        assert!(timed_out(&next_line(&mut r, &mut buf).unwrap_err()));
        assert_eq!(next_line(&mut r, &mut buf).unwrap(), Some(()));
        assert_eq!(buf, b"{\"a\":1}\n");
        buf.clear();
        assert!(timed_out(&next_line(&mut r, &mut buf).unwrap_err()));
        assert_eq!(next_line(&mut r, &mut buf).unwrap(), Some(()));
        assert_eq!(buf, b"{\"b\":2}\n");
        buf.clear();
        assert_eq!(next_line(&mut r, &mut buf).unwrap(), None);
    }
}
