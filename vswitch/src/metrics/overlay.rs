//! The overlay's metrics (cluster mode only): per remote host (label `host`)
//! `overlay_tx_frames_total`, `overlay_tx_bytes_total`, `overlay_tx_errors_total`,
//! `overlay_rx_frames_total`, `overlay_rx_bytes_total`, `overlay_rx_coalesced_total`
//! (datagrams joined into super-frames), `overlay_rx_drops_total{reason}`
//! (`unknown_vni`, `overlay_spoof`, `malformed` always, other reasons once seen),
//! `overlay_host_up` (1 while the host is live in the topology); and without a host
//! `overlay_unknown_vtep_total` (datagrams from an address that is no live host's VTEP)
//! and `overlay_malformed_total` (datagrams that are not VXLAN).

use std::sync::atomic::Ordering;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::registry::Registry;

use crate::control::Switch;
use crate::overlay::VtepValues;
use crate::verdict::DropReason;

use super::Rows;

/// Label set `{host}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HostLabels {
    host: String,
}

/// Label set `{host, reason}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HostReasonLabels {
    host: String,
    reason: &'static str,
}

/// Register the overlay's families (nothing for a standalone switch).
pub(super) fn register(sw: &Switch, reg: &mut Registry) {
    if sw.config().cluster.is_none() {
        return;
    }
    let table = sw.overlay().clone();
    let hosts: Vec<(String, VtepValues, bool)> = sw
        .vtep_counters()
        .into_iter()
        .map(|(name, c)| {
            let live = table.hosts().any(|(_, h)| h.name == name);
            (name, c.values(), live)
        })
        .collect();
    type Get = fn(&VtepValues) -> u64;
    let families: [(&str, &str, Get); 6] = [
        (
            "overlay_tx_frames",
            "Inner frames sent to the host through VXLAN",
            |c| c.tx_frames,
        ),
        ("overlay_tx_bytes", "Inner bytes sent to the host", |c| {
            c.tx_bytes
        }),
        (
            "overlay_tx_errors",
            "Frames to the host the VXLAN socket refused",
            |c| c.tx_errors,
        ),
        (
            "overlay_rx_frames",
            "Inner frames received from the host",
            |c| c.rx_frames,
        ),
        (
            "overlay_rx_bytes",
            "Inner bytes received from the host",
            |c| c.rx_bytes,
        ),
        (
            "overlay_rx_coalesced",
            "Datagrams from the host joined into TSO super-frames for the local port (cluster.gro)",
            |c| c.rx_coalesced,
        ),
    ];
    let by_host = |get: Get| {
        hosts
            .iter()
            .map(move |(host, c, _)| (HostLabels { host: host.clone() }, get(c)))
    };
    for (name, help, get) in families {
        reg.register(name, help, Rows::counters(by_host(get)));
    }
    let always = [
        DropReason::UnknownVni,
        DropReason::OverlaySpoof,
        DropReason::Malformed,
    ];
    reg.register(
        "overlay_rx_drops",
        "Frames from the host dropped, by reason",
        Rows::counters(hosts.iter().flat_map(|(host, c, _)| {
            DropReason::ALL.into_iter().filter_map(move |r| {
                let n = c.drops.iter().find(|(d, _)| *d == r).map_or(0, |(_, n)| *n);
                (n > 0 || always.contains(&r)).then(|| {
                    (
                        HostReasonLabels {
                            host: host.clone(),
                            reason: r.as_str(),
                        },
                        n,
                    )
                })
            })
        })),
    );
    reg.register(
        "overlay_host_up",
        "1 while the host is live in the cluster topology",
        Rows::gauges(
            hosts
                .iter()
                .map(|(host, _, live)| (HostLabels { host: host.clone() }, u64::from(*live))),
        ),
    );
    let g = &table.counters;
    reg.register(
        "overlay_unknown_vtep",
        "VXLAN datagrams from an address that is not the VTEP of a live host (dropped)",
        ConstCounter::new(g.unknown_vtep.load(Ordering::Relaxed)),
    );
    reg.register(
        "overlay_malformed",
        "Datagrams on the VXLAN port that do not decapsulate (dropped)",
        ConstCounter::new(g.malformed.load(Ordering::Relaxed)),
    );
}
