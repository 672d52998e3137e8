//! Fuzz `wire::parse` and the pure pipeline `process` with arbitrary frames.
//!
//! The input is one Ethernet frame, exactly as a port would receive it (the seed corpus is
//! the captured frames of the replay scenarios, see `fuzz/seed-corpus.sh`). For each input:
//! 1. `wire::parse` (must not panic);
//! 2. `process` on a fixed 3-port switch (one active-passive and one active-active VIP,
//!    built once), from each of the 3 ingress ports, checking the verdict's invariants;
//! 3. the effects are applied (`Switch::apply`) to a fresh copy of that switch and the
//!    frame is run again on the resulting snapshot through the daemon's forwarding step
//!    (`forward::step`: counters, learning, signals, sends), its signals applied, so
//!    learning, claims and hijack reports are exercised too. The fresh copy keeps every run independent of earlier
//!    inputs, so a crash reproduces from its input alone.
//!
//! Addresses match the scenario fixtures (vm1..vm3 = 02:00:00:00:00:0N, 10.0.0.N, fd00::N,
//! VIP 10.0.0.100 / fd00::100) and, through address pairs and a second VIP address, the
//! keepalived captures (02:00:00:00:03:0N, 10.203.0.N, fd03::N, VRID 33), so seeds reach
//! the deep paths (claims, the ARP/ND responder, VIP steering) rather than stopping at the
//! MAC check.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vip_table::{PortId, Timestamp};
use vswitch::config::Config;
use vswitch::control::Switch;
use vswitch::forward::{step, Recorder};
use vswitch::pipeline::{process, DropReason, Effects, RxMeta, Snapshot, Verdict};
use vswitch::port::VnetHdr;
use vswitch::wire;

const PORTS: u32 = 3;

const CONFIG: &str = r#"
[switch]
fdb_size = 64
fdb_port_limit = 16
damping_max_moves = 0

[[port]]
name = "vm1"
tap = "fz-vm1"
mac = "02:00:00:00:00:01"
ips = ["10.0.0.1/24", "fd00::1/64"]
allowed_address_pairs = [
    { ip = "10.203.0.1", mac = "02:00:00:00:03:01" },
    { ip = "fd03::1", mac = "02:00:00:00:03:01" },
]

[[port]]
name = "vm2"
tap = "fz-vm2"
mac = "02:00:00:00:00:02"
ips = ["10.0.0.2/24", "fd00::2/64"]
allowed_address_pairs = [
    { ip = "10.203.0.2", mac = "02:00:00:00:03:02" },
    { ip = "fd03::2", mac = "02:00:00:00:03:02" },
]

[[port]]
name = "vm3"
tap = "fz-vm3"
mac = "02:00:00:00:00:03"
ips = ["10.0.0.3/24", "fd00::3/64"]
allowed_address_pairs = [
    { ip = "10.203.0.3", mac = "02:00:00:00:03:03" },
    { ip = "fd03::3", mac = "02:00:00:00:03:03" },
]

[[vip]]
name = "web"
mode = "active-passive"
addresses = ["10.0.0.100", "fd00::100", "10.203.0.100", "fd03::100"]
candidates = ["vm1", "vm2"]
owner = "vm1"
vrrp_vrid = 33

[[vip]]
name = "aa"
mode = "active-active"
addresses = ["10.0.0.200", "fd00::200"]
candidates = ["vm1", "vm2", "vm3"]
owners = ["vm1", "vm2", "vm3"]
"#;

fn t0() -> Timestamp {
    Timestamp::from_secs(1_000)
}

struct Fixed {
    config: Config,
    snapshot: std::sync::Arc<Snapshot>,
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let config = Config::from_toml_str(CONFIG).expect("fuzz config is valid");
        let sw = Switch::new(config.clone(), t0()).expect("fuzz switch");
        Fixed {
            config,
            snapshot: sw.snapshot(),
        }
    })
}

/// The pipeline's contract, checked on every verdict.
fn check(
    ingress: PortId,
    parsed: &Result<wire::FrameFacts, wire::Malformed>,
    v: Verdict,
    fx: &Effects,
) {
    if let Err(m) = parsed {
        assert_eq!(v, Verdict::Drop(DropReason::Malformed), "{m:?}");
        assert_eq!(fx.malformed, Some(*m));
    }
    match v {
        Verdict::Forward { port, rewrite_dst } => {
            assert_ne!(port, ingress, "forwarded back out of the ingress port");
            assert!(port.0 < PORTS, "forward to unknown port {port:?}");
            if let Some(m) = rewrite_dst {
                assert!(m.is_unicast(), "rewrite to a group MAC {m}");
            }
        }
        Verdict::Flood => {
            let set = fx.flood;
            assert!(!set.is_empty(), "flood to nobody");
            assert!(
                !set.contains(ingress),
                "flooded back out of the ingress port"
            );
            assert!(set.iter().all(|p| p.0 < PORTS), "flood to unknown port");
        }
        Verdict::Answered => {
            let reply = fx.reply.expect("answered without a reply");
            let r = wire::parse(reply.as_bytes());
            assert!(r.is_ok(), "own reply does not parse: {r:?}");
        }
        Verdict::ToSwitch => {
            assert!(
                matches!(
                    fx.vip,
                    Some(vswitch::pipeline::VipSignal::ProbeAnswer { .. })
                ),
                "consumed by the switch without being a discovery answer: {:?}",
                fx.vip
            );
        }
        // the fuzz target has no cluster: no VIP is owned on another host
        Verdict::ToRemote { .. } => panic!("to a remote owner without a cluster"),
        Verdict::Drop(_) => {}
    }
    if fx.reply.is_some() {
        assert_eq!(v, Verdict::Answered, "a reply without Answered");
    }
    if let Some(l) = fx.learn {
        assert_eq!(l.port, ingress, "learning on another port than the ingress");
    }
}

fuzz_target!(|data: &[u8]| {
    let parsed = wire::parse(data);
    let fx_ = fixed();
    let snap = &fx_.snapshot;
    let now = t0() + std::time::Duration::from_secs(1);

    let mut effects = [Effects::default(); PORTS as usize];
    for i in 0..PORTS {
        let ingress = PortId(i);
        let fx = &mut effects[i as usize];
        let v = process(snap, ingress, data, RxMeta::default(), now, fx);
        check(ingress, &parsed, v, fx);
    }
    // A GSO super-frame skips the MTU checks: one more path.
    let mut fx = Effects::default();
    let v = process(snap, PortId(0), data, RxMeta { gso: true }, now, &mut fx);
    check(PortId(0), &parsed, v, &fx);

    // Apply what the frames asked for to a fresh switch, then run the frame again.
    let mut sw = Switch::new(fx_.config.clone(), t0()).expect("fuzz switch");
    let mut out = Vec::new();
    for fx in &effects {
        sw.apply(fx, now, &mut out);
    }
    let _ = sw.take_events();
    let snap = sw.snapshot();
    let later = now + std::time::Duration::from_secs(1);
    for i in 0..PORTS {
        // the daemon's own forwarding step (counters, learning, signals, sends)
        let ingress = PortId(i);
        let mut fx = Effects::default();
        let mut frame = data.to_vec();
        let mut rec = Recorder::default();
        let v = step(
            &snap,
            ingress,
            &mut frame,
            &VnetHdr::default(),
            later,
            &mut fx,
            &mut rec,
        );
        check(ingress, &parsed, v, &fx);
        assert_eq!(
            frame.len(),
            data.len(),
            "the step changed the frame's length"
        );
        assert!(
            rec.sent_to.iter().all(|p| p.0 < PORTS),
            "sent to an unknown port: {:?}",
            rec.sent_to
        );
        for sig in rec.signals {
            sw.signal(sig, later, &mut out);
        }
    }
    for o in &out {
        assert!(o.port.0 < PORTS);
        assert!(
            wire::parse(o.frame.as_bytes()).is_ok(),
            "announcement does not parse"
        );
    }
});
