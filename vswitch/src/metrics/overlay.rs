//! The overlay's metrics (cluster mode only): per remote host (label `host`)
//! `overlay_tx_frames_total`, `overlay_tx_bytes_total`, `overlay_tx_errors_total`,
//! `overlay_rx_frames_total`, `overlay_rx_bytes_total`, `overlay_rx_coalesced_total`
//! (datagrams joined into super-frames), `overlay_rx_drops_total{reason}`
//! (`unknown_vni`, `overlay_spoof`, `malformed` always, other reasons once seen),
//! `overlay_host_up` (1 while the host is live in the topology); and without a host
//! `overlay_unknown_vtep_total` (datagrams from an address that is no live host's VTEP)
//! and `overlay_malformed_total` (datagrams that are not VXLAN).

use std::fmt::Write;
use std::sync::atomic::Ordering;

use crate::control::Switch;
use crate::verdict::DropReason;

use super::esc;

/// Append the overlay's families to `o` (nothing for a standalone switch).
pub(super) fn render(sw: &Switch, o: &mut String) {
    if sw.config().cluster.is_none() {
        return;
    }
    let family = |o: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(
            o,
            "# HELP vswitch_{name} {help}\n# TYPE vswitch_{name} {kind}"
        );
    };
    let table = sw.overlay().clone();
    let hosts: Vec<(String, crate::overlay::VtepValues, bool)> = sw
        .vtep_counters()
        .into_iter()
        .map(|(name, c)| {
            let live = table.hosts().any(|(_, h)| h.name == name);
            (esc(&name), c.values(), live)
        })
        .collect();
    type Get = fn(&crate::overlay::VtepValues) -> u64;
    let families: [(&str, &str, Get); 6] = [
        (
            "overlay_tx_frames_total",
            "Inner frames sent to the host through VXLAN.",
            |c| c.tx_frames,
        ),
        (
            "overlay_tx_bytes_total",
            "Inner bytes sent to the host.",
            |c| c.tx_bytes,
        ),
        (
            "overlay_tx_errors_total",
            "Frames to the host the VXLAN socket refused.",
            |c| c.tx_errors,
        ),
        (
            "overlay_rx_frames_total",
            "Inner frames received from the host.",
            |c| c.rx_frames,
        ),
        (
            "overlay_rx_bytes_total",
            "Inner bytes received from the host.",
            |c| c.rx_bytes,
        ),
        (
            "overlay_rx_coalesced_total",
            "Datagrams from the host joined into TSO super-frames for the local port (cluster.gro).",
            |c| c.rx_coalesced,
        ),
    ];
    for (name, help, get) in families {
        family(o, name, "counter", help);
        for (h, c, _) in &hosts {
            let _ = writeln!(o, "vswitch_{name}{{host=\"{h}\"}} {}", get(c));
        }
    }
    family(
        o,
        "overlay_rx_drops_total",
        "counter",
        "Frames from the host dropped, by reason.",
    );
    let always = [
        DropReason::UnknownVni,
        DropReason::OverlaySpoof,
        DropReason::Malformed,
    ];
    for (h, c, _) in &hosts {
        for r in DropReason::ALL {
            let n = c.drops.iter().find(|(d, _)| *d == r).map_or(0, |(_, n)| *n);
            if n > 0 || always.contains(&r) {
                let _ = writeln!(
                    o,
                    "vswitch_overlay_rx_drops_total{{host=\"{h}\",reason=\"{r}\"}} {n}"
                );
            }
        }
    }
    family(
        o,
        "overlay_host_up",
        "gauge",
        "1 while the host is live in the cluster topology.",
    );
    for (h, _, live) in &hosts {
        let _ = writeln!(
            o,
            "vswitch_overlay_host_up{{host=\"{h}\"}} {}",
            u8::from(*live)
        );
    }
    let g = &table.counters;
    family(
        o,
        "overlay_unknown_vtep_total",
        "counter",
        "VXLAN datagrams from an address that is not the VTEP of a live host (dropped).",
    );
    let _ = writeln!(
        o,
        "vswitch_overlay_unknown_vtep_total {}",
        g.unknown_vtep.load(Ordering::Relaxed)
    );
    family(
        o,
        "overlay_malformed_total",
        "counter",
        "Datagrams on the VXLAN port that do not decapsulate (dropped).",
    );
    let _ = writeln!(
        o,
        "vswitch_overlay_malformed_total {}",
        g.malformed.load(Ordering::Relaxed)
    );
}
