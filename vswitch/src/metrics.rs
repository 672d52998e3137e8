//! Prometheus text exposition (format 0.0.4) of the switch's counters and VIP state,
//! encoded by `prometheus-client`.
//!
//! Metric names (all prefixed `vswitch_`): `port_rx_frames_total`, `port_rx_bytes_total`,
//! `port_tx_frames_total`, `port_tx_bytes_total`, `port_answered_total`,
//! `port_vip_no_owner_total`, `port_to_switch_total`, `port_drops_total{reason}` (all
//! with label `port`), `port_up{port}`, `fdb_learned_entries`, `vip_epoch{vip}`,
//! `vip_owners{vip}`, `vip_owner{vip,port}` (1 for each current owner),
//! `vip_hijack_attempts_total{vip}`, `vip_pending_claim{vip}`, `worker_io{engine}` and
//! `worker_rx_frames_total{worker}` (the daemon's workers, [`render_worker`]); in cluster
//! mode the overlay's `overlay_*` families (`metrics/overlay.rs`, private).
//!
//! Contract: values are read from the switch's own atomic counters at scrape time (one
//! copy per scrape, [`Rows`]); nothing on the datapath knows about Prometheus. A family
//! with no samples (no VIP groups, say) is left out. Samples are in port / group / host /
//! worker order. The text has no `# EOF` line, so the agent can append its own families
//! ([`encode`]).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use vip_table::{PortId, Timestamp};

use crate::control::Switch;
use crate::counters::CounterValues;

mod overlay;
mod rows;

pub use rows::Rows;

/// The prefix of every metric name.
pub const PREFIX: &str = "vswitch";

/// Label set `{port}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PortLabels {
    port: String,
}

/// Label set `{port, reason}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PortReasonLabels {
    port: String,
    reason: String,
}

/// Label set `{vip}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct VipLabels {
    vip: String,
}

/// Label set `{vip, port}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct VipPortLabels {
    vip: String,
    port: String,
}

/// Label set `{engine}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EngineLabels {
    engine: String,
}

/// Label set `{worker}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct WorkerLabels {
    worker: usize,
}

/// Append the Prometheus text of `registry` to `out` (no `# EOF`: more may follow).
pub fn encode(registry: &Registry, out: &mut String) {
    // Writing to a String cannot fail; the metrics' own encoders do not fail either.
    let _ = prometheus_client::encoding::prometheus_text::encode(out, registry);
}

/// The workers: their I/O engine as running (`vswitch_worker_io{engine="uring"|"epoll"} 1`)
/// and the frames each read from ports (`vswitch_worker_rx_frames_total{worker}`: how the
/// kernel spread the flows over the queues).
pub fn render_worker(o: &mut String, engine: &str, rx_frames: &[u64]) {
    let mut reg = Registry::with_prefix(PREFIX);
    reg.register(
        "worker_io",
        "The workers' I/O engine (switch.io as resolved at start)",
        Rows::gauges([(
            EngineLabels {
                engine: engine.to_string(),
            },
            1,
        )]),
    );
    reg.register(
        "worker_rx_frames",
        "Frames a worker read from its queues of the ports",
        Rows::counters(
            rx_frames
                .iter()
                .enumerate()
                .map(|(worker, n)| (WorkerLabels { worker }, *n)),
        ),
    );
    encode(&reg, o);
}

/// Append the port captures' metrics: how many run, and the frames they lost (a full
/// capture queue; the datapath forwarded them all the same), over the daemon's life.
pub fn render_captures(o: &mut String, running: usize, lost: u64) {
    let mut reg = Registry::with_prefix(PREFIX);
    reg.register(
        "captures_running",
        "Port captures (`vswitch ctl capture`) running",
        ConstGauge::new(running as i64),
    );
    reg.register(
        "capture_lost",
        "Frames port captures lost because their queue was full",
        ConstCounter::new(lost),
    );
    encode(&reg, o);
}

/// Render every metric of the switch.
pub fn render(sw: &Switch, _now: Timestamp) -> String {
    let mut reg = Registry::with_prefix(PREFIX);
    register_ports(sw, &mut reg);
    register_vips(sw, &mut reg);
    overlay::register(sw, &mut reg);
    let mut o = String::new();
    encode(&reg, &mut o);
    o
}

/// The per-port families and the FDB size.
fn register_ports(sw: &Switch, reg: &mut Registry) {
    let ports: Vec<(String, CounterValues, bool)> = sw
        .ports()
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            sw.counters(PortId(i as u32))
                .map(|c| (p.name.clone(), c.values(), p.is_up()))
        })
        .collect();
    type Get = fn(&CounterValues) -> u64;
    let families: [(&str, &str, Get); 7] = [
        ("port_rx_frames", "Frames received from the port", |c| {
            c.rx_frames
        }),
        ("port_rx_bytes", "Bytes received from the port", |c| {
            c.rx_bytes
        }),
        ("port_tx_frames", "Frames sent to the port", |c| c.tx_frames),
        ("port_tx_bytes", "Bytes sent to the port", |c| c.tx_bytes),
        (
            "port_answered",
            "ARP/NS requests for VIPs answered by the switch",
            |c| c.answered,
        ),
        (
            "port_vip_no_owner",
            "Frames to a VIP without an owner, delivered to the candidate their MAC names",
            |c| c.vip_no_owner,
        ),
        (
            "port_to_switch",
            "Frames addressed to the switch itself (owner-discovery answers)",
            |c| c.to_switch,
        ),
    ];
    let by_port = |get: Get| {
        ports
            .iter()
            .map(move |(port, c, _)| (PortLabels { port: port.clone() }, get(c)))
    };
    for (name, help, get) in families {
        reg.register(name, help, Rows::counters(by_port(get)));
    }
    reg.register(
        "port_drops",
        "Frames dropped, by ingress port and reason",
        Rows::counters(ports.iter().flat_map(|(port, c, _)| {
            c.drops.iter().map(|(reason, n)| {
                (
                    PortReasonLabels {
                        port: port.clone(),
                        reason: reason.clone(),
                    },
                    *n,
                )
            })
        })),
    );
    reg.register(
        "port_up",
        "1 if the port is administratively and operationally up",
        Rows::gauges(
            ports
                .iter()
                .map(|(port, _, up)| (PortLabels { port: port.clone() }, u64::from(*up))),
        ),
    );
    reg.register(
        "fdb_learned_entries",
        "Learned MAC entries",
        ConstGauge::new(sw.fdb().learned_len() as u64),
    );
}

/// The VIP groups' families.
fn register_vips(sw: &Switch, reg: &mut Registry) {
    let groups: Vec<_> = sw.vips().groups().map(|(_, g)| g).collect();
    let by_vip = |get: &dyn Fn(&vip_table::VipGroup) -> u64| -> Vec<(VipLabels, u64)> {
        groups
            .iter()
            .map(|g| {
                (
                    VipLabels {
                        vip: g.name().to_string(),
                    },
                    get(g),
                )
            })
            .collect()
    };
    // A gauge, not a counter: the epoch names the group's current ownership (as `show
    // vips` does) and keeps its name without the `_total` a counter would get.
    reg.register(
        "vip_epoch",
        "Ownership changes of the VIP group (its epoch)",
        Rows::gauges(by_vip(&|g| g.epoch())),
    );
    reg.register(
        "vip_owners",
        "Number of current owners",
        Rows::gauges(by_vip(&|g| g.owners().len() as u64)),
    );
    reg.register(
        "vip_owner",
        "1 for each port that currently owns the VIP group",
        Rows::gauges(groups.iter().flat_map(|g| {
            g.owners().iter().map(|ow| {
                (
                    VipPortLabels {
                        vip: g.name().to_string(),
                        port: sw.port_name(ow.port).to_string(),
                    },
                    1,
                )
            })
        })),
    );
    reg.register(
        "vip_hijack_attempts",
        "Claims refused because the sender is not a candidate",
        Rows::counters(by_vip(&|g| g.hijack_count())),
    );
    reg.register(
        "vip_pending_claim",
        "1 while flap damping holds a claim back",
        Rows::gauges(by_vip(&|g| u64::from(g.pending().is_some()))),
    );
}

#[cfg(test)]
mod tests;
