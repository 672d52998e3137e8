//! Prometheus text exposition of the switch's counters and VIP state.
//!
//! Metric names (all prefixed `vswitch_`): `port_rx_frames_total`, `port_rx_bytes_total`,
//! `port_tx_frames_total`, `port_tx_bytes_total`, `port_answered_total`,
//! `port_drops_total{reason}`, `port_up`, `fdb_learned_entries`, `vip_epoch`,
//! `vip_owners`, `vip_owner{port}` (1 for each current owner), `vip_moves_recorded`,
//! `vip_hijack_attempts_total`, `vip_pending_claim`, `worker_io{engine}` and
//! `worker_rx_frames_total{worker}` (the daemon's workers, [`render_worker`]); in cluster mode the overlay's
//! `overlay_*` families (`metrics/overlay.rs`, private).

use std::fmt::Write;

use vip_table::{PortId, Timestamp};

use crate::control::Switch;

mod overlay;

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The workers: their I/O engine as running (`vswitch_worker_io{engine="uring"|"epoll"} 1`)
/// and the frames each read from ports (`vswitch_worker_rx_frames_total{worker}`: how the
/// kernel spread the flows over the queues).
pub fn render_worker(o: &mut String, engine: &str, rx_frames: &[u64]) {
    let _ = writeln!(
        o,
        "# HELP vswitch_worker_io The workers' I/O engine (switch.io as resolved at start).\n\
         # TYPE vswitch_worker_io gauge\nvswitch_worker_io{{engine=\"{}\"}} 1",
        esc(engine)
    );
    let _ = writeln!(
        o,
        "# HELP vswitch_worker_rx_frames_total Frames a worker read from its queues of the ports.\n\
         # TYPE vswitch_worker_rx_frames_total counter"
    );
    for (k, n) in rx_frames.iter().enumerate() {
        let _ = writeln!(o, "vswitch_worker_rx_frames_total{{worker=\"{k}\"}} {n}");
    }
}

/// Append the port captures' metrics: how many run, and the frames they lost (a full
/// capture queue; the datapath forwarded them all the same), over the daemon's life.
pub fn render_captures(o: &mut String, running: usize, lost: u64) {
    let _ = writeln!(
        o,
        "# HELP vswitch_captures_running Port captures (`vswitch ctl capture`) running.\n\
         # TYPE vswitch_captures_running gauge\nvswitch_captures_running {running}\n\
         # HELP vswitch_capture_lost_total Frames port captures lost because their queue was full.\n\
         # TYPE vswitch_capture_lost_total counter\nvswitch_capture_lost_total {lost}"
    );
}

/// Render every metric.
pub fn render(sw: &Switch, _now: Timestamp) -> String {
    let mut o = String::new();
    let family = |o: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(
            o,
            "# HELP vswitch_{name} {help}\n# TYPE vswitch_{name} {kind}"
        );
    };
    let ports: Vec<(String, crate::counters::CounterValues, bool)> = sw
        .ports()
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            sw.counters(PortId(i as u32))
                .map(|c| (esc(&p.name), c.values(), p.is_up()))
        })
        .collect();
    for (name, help, get) in [
        (
            "port_rx_frames_total",
            "Frames received from the port.",
            (|c: &crate::counters::CounterValues| c.rx_frames)
                as fn(&crate::counters::CounterValues) -> u64,
        ),
        (
            "port_rx_bytes_total",
            "Bytes received from the port.",
            |c| c.rx_bytes,
        ),
        ("port_tx_frames_total", "Frames sent to the port.", |c| {
            c.tx_frames
        }),
        ("port_tx_bytes_total", "Bytes sent to the port.", |c| {
            c.tx_bytes
        }),
        (
            "port_answered_total",
            "ARP/NS requests for VIPs answered by the switch.",
            |c| c.answered,
        ),
        (
            "port_vip_no_owner_total",
            "Frames to a VIP without an owner, delivered to the candidate their MAC names.",
            |c| c.vip_no_owner,
        ),
        (
            "port_to_switch_total",
            "Frames addressed to the switch itself (owner-discovery answers).",
            |c| c.to_switch,
        ),
    ] {
        family(&mut o, name, "counter", help);
        for (p, c, _) in &ports {
            let _ = writeln!(o, "vswitch_{name}{{port=\"{p}\"}} {}", get(c));
        }
    }
    family(
        &mut o,
        "port_drops_total",
        "counter",
        "Frames dropped, by ingress port and reason.",
    );
    for (p, c, _) in &ports {
        for (r, n) in &c.drops {
            let _ = writeln!(
                o,
                "vswitch_port_drops_total{{port=\"{p}\",reason=\"{r}\"}} {n}"
            );
        }
    }
    family(
        &mut o,
        "port_up",
        "gauge",
        "1 if the port is administratively and operationally up.",
    );
    for (p, _, up) in &ports {
        let _ = writeln!(o, "vswitch_port_up{{port=\"{p}\"}} {}", u8::from(*up));
    }
    family(
        &mut o,
        "fdb_learned_entries",
        "gauge",
        "Learned MAC entries.",
    );
    let _ = writeln!(o, "vswitch_fdb_learned_entries {}", sw.fdb().learned_len());
    family(
        &mut o,
        "vip_epoch",
        "counter",
        "Ownership changes of the VIP group.",
    );
    for (_, g) in sw.vips().groups() {
        let _ = writeln!(
            o,
            "vswitch_vip_epoch{{vip=\"{}\"}} {}",
            esc(g.name()),
            g.epoch()
        );
    }
    family(&mut o, "vip_owners", "gauge", "Number of current owners.");
    for (_, g) in sw.vips().groups() {
        let _ = writeln!(
            o,
            "vswitch_vip_owners{{vip=\"{}\"}} {}",
            esc(g.name()),
            g.owners().len()
        );
    }
    family(
        &mut o,
        "vip_owner",
        "gauge",
        "1 for each port that currently owns the VIP group.",
    );
    for (_, g) in sw.vips().groups() {
        for ow in g.owners() {
            let _ = writeln!(
                o,
                "vswitch_vip_owner{{vip=\"{}\",port=\"{}\"}} 1",
                esc(g.name()),
                esc(sw.port_name(ow.port))
            );
        }
    }
    family(
        &mut o,
        "vip_hijack_attempts_total",
        "counter",
        "Claims refused because the sender is not a candidate.",
    );
    for (_, g) in sw.vips().groups() {
        let _ = writeln!(
            o,
            "vswitch_vip_hijack_attempts_total{{vip=\"{}\"}} {}",
            esc(g.name()),
            g.hijack_count()
        );
    }
    family(
        &mut o,
        "vip_pending_claim",
        "gauge",
        "1 while flap damping holds a claim back.",
    );
    for (_, g) in sw.vips().groups() {
        let _ = writeln!(
            o,
            "vswitch_vip_pending_claim{{vip=\"{}\"}} {}",
            esc(g.name()),
            u8::from(g.pending().is_some())
        );
    }
    overlay::render(sw, &mut o);
    o
}
