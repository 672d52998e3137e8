//! The forwarding step: one received frame in; counters, learning, control-plane signals and
//! sends out. The one copy of the per-frame glue around [`process`], called by the
//! daemon's worker, the golden replay and the fuzz target alike.
//!
//! Contract:
//! - [`step`] runs [`process`] on the frame, then applies the verdict and its effects in
//!   this order: counts the frame on the ingress port (`rx`, the verdict's drop or answer,
//!   `vip_no_owner`), learns into the snapshot's FDB, hands VIP signals and VRRP adverts to
//!   [`Output::signal`], rewrites the destination MAC (VIP steering) in place, and sends:
//!   one port for a forward, every port of the flood set, the reply frame back out of the
//!   ingress port for an answer. Every send is counted on its egress port: `tx` on success,
//!   `port_down` when the link is down, `tx_error` otherwise;
//! - it does no I/O itself: sends and signals go through the caller's [`Output`] (real
//!   devices and a channel to the control thread in the worker; a recorder in the replay and
//!   the fuzz target). It takes time as an argument, allocates nothing and never panics;
//! - a frame to a VIP owned on another host ([`Verdict::ToRemote`]) gets its destination MAC
//!   rewritten like a forward and goes to [`Output::send_remote`]: **the hook for the
//!   overlay**. Until the VXLAN sender implements it, the default sends nothing and the
//!   frame is counted `remote_no_tunnel` on the ingress port (and `to_remote`, as every
//!   such frame);
//! - frames keep their virtio-net header (`vnet`): GSO super-frames and partial checksums
//!   pass through unchanged; a frame the switch generated goes with an empty one;
//! - a flood is also handed to [`Output::send_remote`] once per host of
//!   [`Effects::flood_remote`] (head-end replication); every frame handed to the overlay that
//!   a tunnel took is counted on that host's [`crate::overlay::VtepCounters`] (`tx` once
//!   per inner frame handed over, `tx_errors` on a refusal);
//! - a port capture ([`crate::capture`]) is fed here and nowhere else: a received frame
//!   with its verdict after the counting, learning and signals (before the destination
//!   rewrite), every send of [`send_counted`] before it is handed to the output. With no
//!   capture running this costs one check of [`Snapshot::capture`] per frame and per send;
//! - [`step_overlay`] is the same glue for a VXLAN datagram received from the underlay: it
//!   refuses a datagram from an address that is no live host's VTEP (counted
//!   `unknown_vtep` in [`crate::overlay::OverlayCounters`]) or that does not decapsulate
//!   (`malformed`, on the host), runs [`process_overlay`] on the inner frame, counts it on
//!   the sending host (`rx`, drops by reason), and sends to local ports only. It never
//!   learns, never signals, never sends to the overlay.

use std::net::Ipv4Addr;

use vip_table::{HostId, PortId, Timestamp};

use crate::pipeline::{
    process, process_overlay, DropReason, Effects, RxMeta, Snapshot, Verdict, VipSignal, VrrpAdvert,
};
use crate::port::{PortError, VnetHdr};
use crate::wire::vxlan;

/// Something the control plane must hear about from the datapath.
#[derive(Clone, Copy, Debug)]
pub enum Signal {
    /// A VIP claim, hijack attempt or discovery answer.
    Vip(VipSignal),
    /// A VIP candidate's VRRP advert (kept to resign for a crashed master).
    Vrrp(VrrpAdvert),
}

/// Where a step's sends and signals go.
pub trait Output {
    /// Send `frame` out of `port`. The step counts the result on `port`; `None`: the step
    /// counts nothing: no device is behind the port right now (it just vanished, nothing
    /// sent), or the output queued the send and counts its result with [`count_send`] when
    /// it completes.
    fn send(&mut self, port: PortId, frame: &[u8], vnet: &VnetHdr)
        -> Option<Result<(), PortError>>;
    /// Hand a signal to the control plane (`at`: when the frame arrived).
    fn signal(&mut self, signal: Signal, at: Timestamp);
    /// Send `frame` (its destination MAC already rewritten to the remote owner's) to `host`
    /// through the overlay, in the segment of `vlan`. `None`: no tunnel carries it (the
    /// default, until the VXLAN overlay implements this), counted `remote_no_tunnel` on
    /// the ingress port; `Some(Ok)` / `Some(Err)`: sent / refused (the overlay counts its
    /// own per-VTEP results).
    fn send_remote(
        &mut self,
        host: HostId,
        vlan: u16,
        frame: &[u8],
        vnet: &VnetHdr,
    ) -> Option<Result<(), PortError>> {
        let _ = (host, vlan, frame, vnet);
        None
    }
}

/// Process `frame` (received on `ingress` with header `vnet` at `now`) and apply the
/// outcome; returns the verdict (the effects are left in `fx` for callers that describe
/// them).
pub fn step(
    snap: &Snapshot,
    ingress: PortId,
    frame: &mut [u8],
    vnet: &VnetHdr,
    now: Timestamp,
    fx: &mut Effects,
    out: &mut impl Output,
) -> Verdict {
    let meta = RxMeta { gso: vnet.is_gso() };
    let v = process(snap, ingress, frame, meta, now, fx);
    if let Some(c) = snap.counters.get(ingress.index()) {
        c.rx(frame.len());
        c.verdict(&v, fx.vip_no_owner);
    }
    if let Some(l) = &fx.learn {
        snap.fdb.learn(l, now);
    }
    if let Some(s) = fx.vip {
        out.signal(Signal::Vip(s), now);
    }
    if let Some(a) = fx.vrrp {
        out.signal(Signal::Vrrp(a), now);
    }
    // off: this one check of the snapshot (see `crate::capture`)
    if let Some(c) = &snap.capture {
        c.rx(ingress, frame, &v, now);
    }
    match v {
        Verdict::Forward { port, rewrite_dst } => {
            if let Some(m) = rewrite_dst {
                if let Some(d) = frame.get_mut(..6) {
                    d.copy_from_slice(&m.0);
                }
            }
            send_counted(snap, out, port, frame, vnet, now);
        }
        Verdict::Flood => {
            for p in fx.flood.iter() {
                send_counted(snap, out, p, frame, vnet, now);
            }
            if !fx.flood_remote.is_empty() {
                let vlan = snap.ports.get(ingress.index()).map_or(0, |p| p.vlan);
                for h in fx.flood_remote.iter() {
                    let r = out.send_remote(h, vlan, frame, vnet);
                    count_remote(snap, h, frame.len(), r);
                }
            }
        }
        Verdict::Answered => {
            if let Some(r) = fx.reply {
                send_counted(snap, out, ingress, r.as_bytes(), &VnetHdr::default(), now);
            }
        }
        Verdict::ToRemote { host, vlan, mac } => {
            if let Some(d) = frame.get_mut(..6) {
                d.copy_from_slice(&mac.0);
            }
            let r = out.send_remote(host, vlan, frame, vnet);
            if r.is_none() {
                if let Some(c) = snap.counters.get(ingress.index()) {
                    c.remote_no_tunnel
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            count_remote(snap, host, frame.len(), r);
        }
        Verdict::Drop(_) | Verdict::ToSwitch => {}
    }
    v
}

/// Count a frame handed to the overlay on its host's counters.
#[inline]
fn count_remote(snap: &Snapshot, host: HostId, len: usize, r: Option<Result<(), PortError>>) {
    let Some(h) = snap.overlay.host(host) else {
        return;
    };
    match r {
        Some(Ok(())) => h.counters.tx(len),
        Some(Err(_)) => {
            h.counters
                .tx_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        None => {}
    }
}

/// Process one VXLAN datagram's UDP `payload` received from underlay address `src` at
/// `now`, and apply the outcome (see the module doc). The inner frame is rewritten in place
/// for VIP steering.
pub fn step_overlay(
    snap: &Snapshot,
    src: Ipv4Addr,
    payload: &mut [u8],
    now: Timestamp,
    fx: &mut Effects,
    out: &mut impl Output,
) -> Verdict {
    step_overlay_vnet(snap, src, payload, &VnetHdr::default(), now, fx, out)
}

/// [`step_overlay`] for a payload with a virtio-net header: a super-frame that
/// [`crate::overlay::gro::Gro`] joined from several datagrams goes through the pipeline
/// as one frame (`RxMeta.gso`) and is sent with its header.
pub fn step_overlay_vnet(
    snap: &Snapshot,
    src: Ipv4Addr,
    payload: &mut [u8],
    vnet: &VnetHdr,
    now: Timestamp,
    fx: &mut Effects,
    out: &mut impl Output,
) -> Verdict {
    use std::sync::atomic::Ordering::Relaxed;
    let ov = &snap.overlay;
    let Some(host) = ov.host_at(src) else {
        ov.counters.unknown_vtep.fetch_add(1, Relaxed);
        return Verdict::Drop(DropReason::UnknownVtep);
    };
    let counters = ov.host(host).map(|h| &h.counters);
    let vni = match vxlan::decap(payload) {
        Ok((vni, _)) => vni,
        Err(_) => {
            ov.counters.malformed.fetch_add(1, Relaxed);
            if let Some(c) = counters {
                c.count_drop(DropReason::Malformed);
            }
            return Verdict::Drop(DropReason::Malformed);
        }
    };
    let Some(frame) = payload.get_mut(vxlan::HEADER_LEN..) else {
        return Verdict::Drop(DropReason::Malformed);
    };
    let meta = RxMeta { gso: vnet.is_gso() };
    let (_, v) = process_overlay(snap, src, vni, frame, meta, now, fx);
    if let Some(c) = counters {
        if vnet.is_gso() && vnet.gso_size > 0 {
            let data = frame.len().saturating_sub(usize::from(vnet.hdr_len));
            c.rx_joined(data.div_ceil(usize::from(vnet.gso_size)), frame.len());
        } else {
            c.rx(frame.len());
        }
        if let Verdict::Drop(r) = v {
            c.count_drop(r);
        }
    }
    match v {
        Verdict::Forward { port, rewrite_dst } => {
            if let Some(m) = rewrite_dst {
                if let Some(d) = frame.get_mut(..6) {
                    d.copy_from_slice(&m.0);
                }
            }
            send_counted(snap, out, port, frame, vnet, now);
        }
        Verdict::Flood => {
            for p in fx.flood.iter() {
                send_counted(snap, out, p, frame, vnet, now);
            }
        }
        Verdict::Answered | Verdict::ToRemote { .. } | Verdict::Drop(_) | Verdict::ToSwitch => {}
    }
    v
}

/// Send through `out` (at `now`) and count the result on the egress port; a capture of
/// the port's sent frames gets a copy first.
#[inline]
pub fn send_counted(
    snap: &Snapshot,
    out: &mut impl Output,
    port: PortId,
    frame: &[u8],
    vnet: &VnetHdr,
    now: Timestamp,
) {
    if let Some(c) = &snap.capture {
        c.tx(port, frame, now);
    }
    let Some(r) = out.send(port, frame, vnet) else {
        return;
    };
    count_send(snap, port, frame.len(), &r);
}

/// Count the result of a send of a `len`-byte frame on its egress port: `tx`, or the drop
/// (`port_down` for a link that is down, `tx_error` otherwise). [`send_counted`] calls it;
/// an [`Output`] that completes sends later (the io_uring worker) calls it on completion.
#[inline]
pub fn count_send(snap: &Snapshot, port: PortId, len: usize, r: &Result<(), PortError>) {
    if let Some(c) = snap.counters.get(port.index()) {
        match r {
            Ok(()) => c.tx(len),
            Err(PortError::LinkDown) => c.count_drop(DropReason::PortDown),
            Err(_) => c.count_drop(DropReason::TxError),
        }
    }
}

/// An [`Output`] that sends nowhere (every send succeeds) and keeps the signals, for the
/// golden replay and the fuzz target, which apply them to their `Switch` after the step.
#[derive(Debug, Default)]
pub struct Recorder {
    /// The signals of the step, in order.
    pub signals: Vec<Signal>,
    /// The ports sent to, in order.
    pub sent_to: Vec<PortId>,
    /// The hosts handed to the overlay hook, in order (the recorder has no tunnel either:
    /// it answers `None`).
    pub sent_remote: Vec<HostId>,
}

impl Output for Recorder {
    fn send(
        &mut self,
        port: PortId,
        _frame: &[u8],
        _vnet: &VnetHdr,
    ) -> Option<Result<(), PortError>> {
        self.sent_to.push(port);
        Some(Ok(()))
    }
    fn signal(&mut self, signal: Signal, _at: Timestamp) {
        self.signals.push(signal);
    }
    fn send_remote(
        &mut self,
        host: HostId,
        _vlan: u16,
        _frame: &[u8],
        _vnet: &VnetHdr,
    ) -> Option<Result<(), PortError>> {
        self.sent_remote.push(host);
        None
    }
}
