//! The real-guest tier: QEMU guests (Debian kernel, virtio-net with its default offloads)
//! each holding its own tap, the switch bound to the host side of those taps with the
//! `netdev` backend, as it runs under libvirt. Needs root; builds the guest images on first
//! use (`guests/build.sh`, cached). Measurements go to `target/tmp/guest-results.txt`,
//! which `scripts/test-all.sh` prints.
//!
//! - [`guests_forward_with_offloads_and_enforce_source_checks`]: ping, arping and TCP between
//!   three guests (GSO super-frames cross the switch whole, payload intact), then one guest
//!   changes its MAC and another adds an address it does not own: cut off, counted.
//! - [`guests_keepalived_failover`]: keepalived A/P in two guests, a third probing the VIP:
//!   graceful stop, failback, SIGKILL of the master's QEMU (its tap vanishes), reboot and
//!   failback; `show vips` follows each time, and each outage is keepalived's detection
//!   plus at most one probe (the first probe after the new master's GARP is answered by it).
//! - [`guests_survive_switch_restart_and_match_a_bridge`]: TCP through the switch, then the
//!   switch stops and the same guests move to a Linux bridge, then the switch comes back and
//!   traffic resumes; the guests keep their interfaces throughout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::guests::{record, Guest, Guests, TapMode};
use common::*;

/// The UDP port of the echo servers behind the VIP.
const ECHO_PORT: u16 = 7777;
/// Probe rate of the VIP client.
const PROBE_HZ: u32 = 50;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Scripts every guest can run from `/mnt/share`.
fn put_scripts(gs: &Guests<'_>) {
    gs.put("echo.py", UDP_ECHO_PY);
    gs.put("watch.py", UDP_WATCH_PY);
    gs.put("rx.py", TCP_RECEIVER_PY);
    gs.put("tx.py", TCP_SENDER_PY);
}

/// Boots `all` on a switch whose config is the guests' ports plus `extra`.
fn start(lab: &Lab, gs: &Guests<'_>, all: &[&std::sync::Arc<Guest>], extra: &str) -> Vec<f64> {
    lab.set_extra_config(&format!("{}{extra}", gs.ports_toml()));
    lab.write_config();
    lab.start_switch();
    put_scripts(gs);
    let boot = gs.boot(all);
    for g in all {
        lab.wait_port_up(&g.name, Duration::from_secs(10));
    }
    boot
}

/// Sends `bytes` pseudo-random bytes over TCP from `from` to `to` and asserts they arrive
/// intact (count and SHA-256).
fn tcp_intact(gs: &Guests<'_>, from: &Guest, to: &Guest, bytes: usize) {
    tcp_intact_to(gs, from, to, to.ip4.into(), bytes);
}

/// [`tcp_intact`] to one of `to`'s addresses (IPv4 or IPv6).
fn tcp_intact_to(gs: &Guests<'_>, from: &Guest, to: &Guest, dst: IpAddr, bytes: usize) {
    let out = format!("rx-{}-{dst}-{bytes}.out", to.name);
    gs.spawn(to, &format!("python3 rx.py {dst} 5001"), &out);
    gs.wait_shared(&out, "READY", Duration::from_secs(20));
    let tx = gs.must(
        from,
        &format!("python3 /mnt/share/tx.py {dst} 5001 {bytes}"),
    );
    let sent: Vec<String> = tx.split_whitespace().map(str::to_string).collect();
    let want = format!("{bytes} {}", sent.get(1).map_or("?", String::as_str));
    gs.wait_shared(&out, &want, Duration::from_secs(30));
    println!(
        "TCP {} -> {} [{dst}]: {bytes} bytes intact in {} s",
        from.name,
        to.name,
        sent.get(2).map_or("?", String::as_str)
    );
}

fn offloads_on(gs: &Guests<'_>, g: &Guest) {
    let k = gs.must(g, "ethtool -k eth0");
    for f in [
        "tx-checksumming: on",
        "tcp-segmentation-offload: on",
        "generic-segmentation-offload: on",
    ] {
        assert!(k.contains(f), "{}: expected {f:?} in\n{k}", g.name);
    }
}

fn counter(v: &serde_json::Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

#[test]
fn guests_forward_with_offloads_and_enforce_source_checks() {
    if !require_root() {
        return;
    }
    let lab = Lab::new("qfw", 231);
    let gs = Guests::new(&lab);
    let g1 = gs.add_dual("g1", TapMode::Fd);
    let g2 = gs.add_dual("g2", TapMode::Fd);
    let g3 = gs.add("g3", TapMode::Ifname);
    let boot = start(&lab, &gs, &[&g1, &g2, &g3], "");
    let rss: Vec<Option<u64>> = [&g1, &g2, &g3].iter().map(|g| gs.rss_mib(g)).collect();
    record(&format!(
        "boot: 3 guests started together, network up (agent answering) after {} s; QEMU RSS {} MiB (-m 128)",
        boot.iter().map(|b| format!("{b:.1}")).collect::<Vec<_>>().join(" / "),
        rss.iter().map(|r| r.map_or("?".into(), |m| m.to_string())).collect::<Vec<_>>().join(" / ")
    ));

    // --- L2/L3 between every pair, arping ---------------------------------------------
    let first = gs.wait_ping(&g1, g2.ip4, Duration::from_secs(30));
    println!("first ping g1 -> g2 answered after {first:?}");
    for (a, b) in [(&g1, &g2), (&g2, &g3), (&g3, &g1)] {
        let p = gs.ping(a, b.ip4, 5);
        assert_eq!(p.lost(), 0, "{} -> {}: {p:?}", a.name, b.name);
    }
    let arp = gs.must(&g1, &format!("arping -c 3 -w 10 -I eth0 {}", g2.ip4));
    let mac2 = g2.mac.to_string().to_uppercase();
    assert!(
        arp.contains(&format!("reply from {} [{mac2}]", g2.ip4))
            && arp.contains("Received 3 response"),
        "arping g1 -> g2:\n{arp}"
    );

    // --- TCP with the guests' default offloads: GSO frames cross whole, data intact ----
    offloads_on(&gs, &g1);
    offloads_on(&gs, &g2);
    let before = lab.stats("g1");
    tcp_intact(&gs, &g1, &g2, 16 << 20);
    let after = lab.stats("g1");
    let frames = counter(&after, "rx_frames") - counter(&before, "rx_frames");
    let bytes = counter(&after, "rx_bytes") - counter(&before, "rx_bytes");
    assert!(
        frames > 0 && bytes / frames > 3000,
        "16 MiB of TCP from g1 came in {frames} frames ({} bytes each): expected GSO \
         super-frames through PACKET_VNET_HDR, not MTU-sized ones",
        bytes / frames.max(1)
    );
    tcp_intact(&gs, &g3, &g1, 4 << 20);
    // IPv6 (TSO6 in the guests): ping and an intact transfer between the dual-stack guests
    let (a1, a2) = (g1.ip6.unwrap(), g2.ip6.unwrap());
    gs.must(&g1, &format!("ping -6 -c 3 -i 0.2 -W 2 {a2}"));
    let before6 = lab.stats("g2");
    tcp_intact_to(&gs, &g2, &g1, a1.into(), 8 << 20);
    let after6 = lab.stats("g2");
    let (f6, b6) = (
        counter(&after6, "rx_frames") - counter(&before6, "rx_frames"),
        counter(&after6, "rx_bytes") - counter(&before6, "rx_bytes"),
    );
    assert!(
        f6 > 0 && b6 / f6 > 3000,
        "8 MiB of TCP over IPv6 from g2 came in {f6} frames: expected GSO super-frames"
    );
    gs.must(&g2, "iperf3 -s -D");
    let ip = gs.iperf(&g1, g2.ip4, 3);
    assert!(ip.bytes > 0, "iperf3 moved nothing");
    println!(
        "iperf3 g1 -> g2 through the switch: {:.0} Mbit/s, {} retransmits; {} bytes per frame from g1",
        ip.mbps,
        ip.retransmits,
        bytes / frames
    );
    for g in ["g1", "g2", "g3"] {
        assert_eq!(lab.drops(g, "tx_error"), 0, "tx_error on {g}");
        assert_eq!(lab.drops(g, "malformed"), 0, "malformed on {g}");
    }

    // --- source checks: an address g3 does not own ---------------------------------------
    let rogue_ip = lab.ip4(77);
    let cap = gs.capture(&g1, Direction::Both);
    let (ip0, arp0) = (lab.drops("g3", "ip_spoof"), lab.drops("g3", "arp_spoof"));
    gs.must(&g3, &format!("ip addr add {rogue_ip}/24 dev eth0"));
    let o = gs.exec(
        &g3,
        &format!("ping -c 3 -i 0.3 -W 1 -I {rogue_ip} {}", g1.ip4),
    );
    assert!(
        !o.ok(),
        "ping from an unauthorised address got through\n{o}"
    );
    let _ = gs.exec(&g3, &format!("arping -c 2 -U -I eth0 {rogue_ip}"));
    gs.must(&g3, &format!("ip addr del {rogue_ip}/24 dev eth0"));
    let ok = gs.ping(&g3, g1.ip4, 3);
    assert_eq!(ok.lost(), 0, "g3's own address must still work: {ok:?}");
    let (ip1, arp1) = (lab.drops("g3", "ip_spoof"), lab.drops("g3", "arp_spoof"));
    assert!(ip1 > ip0, "no ip_spoof drops counted ({ip0} -> {ip1})");
    assert!(arp1 > arp0, "no arp_spoof drops counted ({arp0} -> {arp1})");

    // --- source checks: g3 changes its MAC -------------------------------------------------
    let mac0 = lab.drops("g3", "mac_spoof");
    let rogue_mac = Mac([0x52, 0x54, 0x00, 231, 0x00, 0x99]);
    gs.must(&g3, &format!("ip link set eth0 address {rogue_mac}"));
    let o = gs.exec(&g3, &format!("ping -c 3 -i 0.3 -W 1 {}", g1.ip4));
    assert!(!o.ok(), "a guest with a changed MAC got through\n{o}");
    gs.must(&g3, &format!("ip link set eth0 address {}", g3.mac));
    gs.wait_ping(&g3, g1.ip4, Duration::from_secs(20));
    let mac1 = lab.drops("g3", "mac_spoof");
    assert!(mac1 > mac0, "no mac_spoof drops counted ({mac0} -> {mac1})");

    let frames = cap.stop();
    let leaked = select(&frames, |f| {
        f.src() == rogue_mac
            || f.ip().is_some_and(|i| i.src == IpAddr::V4(rogue_ip))
            || f.arp().is_some_and(|a| a.spa == rogue_ip)
    });
    assert!(leaked.is_empty(), "reached g1:\n{}", summarize(&leaked));
    let from_g3 = select(&frames, |f| f.src() == g3.mac && f.icmp_type() == Some(8));
    assert!(!from_g3.is_empty(), "g1 saw none of g3's legitimate pings");
    record(&format!(
        "source checks: g3 with an unauthorised address: ip_spoof +{}, arp_spoof +{}; with a changed MAC: mac_spoof +{}; nothing of it reached g1",
        ip1 - ip0,
        arp1 - arp0,
        mac1 - mac0
    ));
    gs.finish();
    lab.finish();
}

// ---------------------------------------------------------------------------------------
// keepalived failover
// ---------------------------------------------------------------------------------------

fn ka_conf(g: &Guest, prio: u8, vip: Ipv4Addr) -> String {
    format!(
        "global_defs {{\n    router_id {}\n}}\n\nvrrp_instance VI_1 {{\n    state BACKUP\n    interface eth0\n    virtual_router_id 51\n    priority {prio}\n    advert_int 1\n    virtual_ipaddress {{\n        {vip}/24 dev eth0\n    }}\n}}\n",
        g.name
    )
}

/// Starts keepalived in `g` (config in the share); its log goes to `share/ka-<g>-<n>.log`.
fn start_keepalived(gs: &Guests<'_>, g: &Guest, n: u32) {
    let log = format!("ka-{}-{n}.log", g.name);
    gs.spawn(
        g,
        &format!(
            "keepalived --dont-fork --log-console --log-detail --no-syslog --vrrp -f /mnt/share/ka-{}.conf -p /run/ka.pid -r /run/vrrp.pid",
            g.name
        ),
        &log,
    );
}

/// Waits until the VIP client's latest answers come from `owner` (10 s), then lets it run a
/// second longer.
#[track_caller]
fn client_follows(gs: &Guests<'_>, owner: &str) {
    let want = format!("ANSWER {owner} ");
    if wait_until(Duration::from_secs(10), || {
        gs.shared("watch.out")
            .lines()
            .last()
            .is_some_and(|l| l.starts_with(&want))
    })
    .is_none()
    {
        panic!(
            "the client is not answered by {owner}:\n{}",
            gs.shared("watch.out")
        );
    }
    std::thread::sleep(Duration::from_secs(1));
}

/// Stops the UDP watcher in `g` (its output in `share/watch.out`) and parses its report.
#[track_caller]
fn stop_watch(gs: &Guests<'_>, g: &Guest) -> WatchReport {
    gs.must(g, "pkill -INT -f watch.py");
    gs.wait_shared("watch.out", "{\"sent\"", Duration::from_secs(10));
    let out = gs.shared("watch.out");
    parse_watch_report(&out).unwrap_or_else(|e| panic!("{e}:\n{out}"))
}

fn start_echo(gs: &Guests<'_>, g: &Guest) {
    let out = format!("echo-{}.out", g.name);
    gs.spawn(g, &format!("python3 echo.py {ECHO_PORT} {}", g.name), &out);
    gs.wait_shared(&out, "READY", Duration::from_secs(20));
}

/// One failover as the client's tap saw it (host clock, seconds since the epoch).
#[derive(Debug)]
struct Failover {
    /// Last answer from the old owner before the new owner's first GARP.
    last_old: f64,
    /// The new owner's first GARP after the event.
    garp: f64,
    /// First answered probe among the first [`FIRST_PROBES`] the client sent after that
    /// GARP (or the first probe, if none was answered): sequence number and time.
    probe: (u64, f64),
    /// Who answered that probe, and when.
    answer: Option<(String, f64)>,
    /// Probes sent after the GARP before that one and never answered (a guest that has
    /// just booted may GARP before its echo service listens).
    unanswered_before: usize,
}

/// How many probes after the new owner's GARP may go unanswered before the first answer
/// (100 Hz: 50 ms). An unanswered one is the guest's (its service not up yet after a
/// reboot), not the switch's: a switch that kept the old owner answers from it, which the
/// check refuses.
const FIRST_PROBES: usize = 5;

fn udp_payload(f: &Frame) -> Option<String> {
    f.udp_ports()?;
    let l4 = f.l4();
    let len = usize::from(u16::from_be_bytes([*l4.get(4)?, *l4.get(5)?]));
    let p = l4.get(8..len.min(l4.len()))?;
    Some(String::from_utf8_lossy(p).into_owned())
}

fn failover(frames: &[Frame], vip: Ipv4Addr, old: &str, new: (&str, Mac), since: f64) -> Failover {
    let vip_ip = IpAddr::V4(vip);
    let garp = frames
        .iter()
        .filter(|f| f.ts >= since && f.src() == new.1)
        .find(|f| {
            f.arp()
                .is_some_and(|a| a.spa == vip && (a.tpa == vip || a.op == 2))
        })
        .map(|f| f.ts)
        .unwrap_or_else(|| panic!("no GARP for {vip} from {} after the event", new.0));
    let replies: Vec<(u64, String, f64)> = frames
        .iter()
        // the echo servers answer from their own address (an unbound socket), so an answer
        // is anything from the echo port
        .filter(|f| f.udp_ports().is_some_and(|p| p.0 == ECHO_PORT))
        .filter_map(|f| {
            let p = udp_payload(f)?;
            let (seq, who) = p.split_once(' ')?;
            Some((seq.parse().ok()?, who.to_string(), f.ts))
        })
        .collect();
    let last_old = replies
        .iter()
        .filter(|r| r.1 == old && r.2 < garp)
        .map(|r| r.2)
        .fold(f64::NAN, f64::max);
    let probes: Vec<(u64, f64)> = frames
        .iter()
        .filter(|f| {
            f.ts > garp
                && f.ip().is_some_and(|i| i.dst == vip_ip)
                && f.udp_ports().is_some_and(|p| p.1 == ECHO_PORT)
        })
        .filter_map(|f| Some((udp_payload(f)?.trim().parse::<u64>().ok()?, f.ts)))
        .take(FIRST_PROBES)
        .collect();
    assert!(!probes.is_empty(), "no probe captured after the GARP");
    let answered = probes
        .iter()
        .enumerate()
        .find_map(|(i, p)| Some((i, *p, replies.iter().find(|r| r.0 == p.0)?)));
    let (unanswered_before, probe, answer) = match answered {
        Some((i, p, r)) => (i, p, Some((r.1.clone(), r.2))),
        None => (probes.len(), probes[0], None),
    };
    Failover {
        last_old,
        garp,
        probe,
        answer,
        unanswered_before,
    }
}

/// Checks a failover against the contract and records its numbers.
fn check_failover(label: &str, f: &Failover, event: f64, new: &Guest) {
    let ms = |s: f64| (s * 1000.0).round();
    let (who, at) = f.answer.clone().unwrap_or_else(|| {
        panic!(
            "{label}: none of the first {FIRST_PROBES} probes after {}'s GARP was answered: {f:?}",
            new.name
        )
    });
    assert_eq!(
        who, new.name,
        "{label}: the first answered probe after the GARP was answered by {who}: {f:?}"
    );
    let outage = at - f.last_old;
    record(&format!(
        "failover {label}: event -> {}'s GARP {} ms; client outage {} ms (last answer from the old owner -> first from {}); \
         the first answered probe after the GARP ({} ms after it, {} unanswered before it) was answered by {} in {} ms",
        new.name,
        ms(f.garp - event),
        if f.last_old.is_nan() { "?".into() } else { ms(outage).to_string() },
        new.name,
        ms(f.probe.1 - f.garp),
        f.unanswered_before,
        new.name,
        ms(at - f.probe.1),
    ));
}

#[test]
fn guests_keepalived_failover() {
    if !require_root() {
        return;
    }
    let lab = Lab::new("qhv", 232);
    let gs = Guests::new(&lab);
    let g1 = gs.add("g1", TapMode::Fd);
    let g2 = gs.add("g2", TapMode::Fd);
    let client = gs.add("g3", TapMode::Ifname);
    let vip = lab.ip4(100);
    gs.put("ka-g1.conf", &ka_conf(&g1, 150, vip));
    gs.put("ka-g2.conf", &ka_conf(&g2, 100, vip));
    let vip_cfg = vip_toml("web", "active-passive", &[vip.into()], &["g1", "g2"], &[]);
    start(&lab, &gs, &[&g1, &g2, &client], &vip_cfg);
    let cap = gs.capture(&client, Direction::Both);
    for g in [&g1, &g2] {
        start_echo(&gs, g);
        start_keepalived(&gs, g, 1);
    }
    lab.wait_vip_owners("web", &["g1"], Duration::from_secs(30));
    gs.spawn(
        &client,
        &format!("python3 watch.py {vip} {ECHO_PORT} {PROBE_HZ}"),
        "watch.out",
    );
    gs.wait_shared("watch.out", "ANSWER g1", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));

    // 1. graceful stop of the master's keepalived
    let t1 = now();
    gs.must(&g1, "kill -TERM $(cat /run/ka.pid)");
    lab.wait_vip_owners("web", &["g2"], Duration::from_secs(20));
    client_follows(&gs, "g2");

    // 2. failback: keepalived back on g1 (higher priority, preempts)
    let t2 = now();
    start_keepalived(&gs, &g1, 2);
    lab.wait_vip_owners("web", &["g1"], Duration::from_secs(30));
    client_follows(&gs, "g1");

    // 3. the master's VM crashes: SIGKILL of its QEMU, its tap vanishes; the switch resigns
    // for it (priority-0 copy of g1's last advert to g2: step_down_on_crash)
    let prio0 = |gs: &Guests<'_>| {
        gs.shared("ka-g2-1.log")
            .matches("Backup received priority 0 advertisement")
            .count()
    };
    let before = prio0(&gs);
    let t3 = now();
    gs.kill_qemu(&g1);
    lab.wait_port_down("g1", Duration::from_secs(5));
    lab.wait_vip_owners("web", &["g2"], Duration::from_secs(20));
    client_follows(&gs, "g2");
    assert!(
        lab.log().contains("vrrp_step_down"),
        "the switch did not resign for the crashed g1:\n{}",
        lab.log_tail(20)
    );
    assert_eq!(
        prio0(&gs),
        before + 1,
        "g2's keepalived should take over on the switch's priority-0 advert:\n{}",
        gs.shared("ka-g2-1.log")
    );
    record("VM crash: the switch sent g1's priority-0 advert (vrrp_step_down); g2's keepalived: \"Backup received priority 0 advertisement\"");

    // 4. the VM is started again and takes the VIP back
    gs.start(&g1);
    gs.wait(&g1, Duration::from_secs(120));
    lab.wait_port_up("g1", Duration::from_secs(10));
    start_echo(&gs, &g1);
    let t4 = now();
    start_keepalived(&gs, &g1, 3);
    lab.wait_vip_owners("web", &["g1"], Duration::from_secs(30));
    client_follows(&gs, "g1");

    let watch = stop_watch(&gs, &client);
    let frames = cap.stop();
    let moves = lab.vip_moves("web");
    println!(
        "show vips moves: {moves:?}\nclient: {}",
        gs.shared("watch.out")
    );

    for (label, t, old, new) in [
        ("graceful stop (SIGTERM keepalived on g1)", t1, "g1", &g2),
        ("failback (keepalived started on g1)", t2, "g2", &g1),
        ("VM crash (SIGKILL of g1's QEMU)", t3, "g1", &g2),
        ("failback after g1's reboot", t4, "g2", &g1),
    ] {
        let f = failover(&frames, vip, old, (&new.name, new.mac), t);
        check_failover(label, &f, t, new);
    }
    assert_eq!(
        watch
            .runs
            .iter()
            .filter(|(w, _)| w != "-")
            .map(|(w, _)| w.as_str())
            .collect::<Vec<_>>(),
        ["g1", "g2", "g1", "g2", "g1"],
        "the client's answers should go g1, g2, g1, g2, g1: {}",
        watch.pattern()
    );
    record(&format!(
        "failover client ({PROBE_HZ} Hz probes to the VIP from g3): {}",
        watch.pattern()
    ));
    gs.finish();
    lab.finish();
}

// ---------------------------------------------------------------------------------------
// switch restart, and the same guests on a Linux bridge
// ---------------------------------------------------------------------------------------

fn link_state(gs: &Guests<'_>, g: &Guest) -> String {
    gs.must(g, "ip -br link show eth0; ip -br -4 addr show eth0")
}

#[test]
fn guests_survive_switch_restart_and_match_a_bridge() {
    if !require_root() {
        return;
    }
    let lab = Lab::new("qrs", 233);
    let gs = Guests::new(&lab);
    let g1 = gs.add("g1", TapMode::Fd);
    let g2 = gs.add("g2", TapMode::Ifname);
    start(&lab, &gs, &[&g1, &g2], "");
    gs.wait_ping(&g1, g2.ip4, Duration::from_secs(30));
    start_echo(&gs, &g2);
    gs.spawn(
        &g1,
        &format!("python3 watch.py {} {ECHO_PORT} 20", g2.ip4),
        "watch.out",
    );
    gs.wait_shared("watch.out", "ANSWER g2", Duration::from_secs(20));
    gs.must(&g2, "iperf3 -s -D");
    let state = (link_state(&gs, &g1), link_state(&gs, &g2));
    assert!(
        state.0.contains("UP") && state.0.contains(&g1.ip4.to_string()),
        "{}",
        state.0
    );
    let sw1 = gs.iperf(&g1, g2.ip4, 5);

    // the switch goes away: the guests keep their taps and interfaces, traffic stops
    lab.stop_switch();
    for g in [&g1, &g2] {
        assert!(gs.alive(g), "{} died with the switch", g.name);
        assert!(
            std::path::Path::new("/sys/class/net").join(&g.tap).exists(),
            "tap of {} vanished",
            g.name
        );
    }
    let o = gs.exec(&g1, &format!("ping -c 2 -W 1 {}", g2.ip4));
    assert!(
        !o.ok(),
        "traffic flowed without the switch: there is another path\n{o}"
    );

    // the same guests on a Linux bridge
    let br = format!("{}br", lab.tag);
    lab.track_link(&br);
    host_ok(&format!("ip link add {br} type bridge"));
    let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{br}/disable_ipv6"), "1");
    host_ok(&format!("ip link set {br} up"));
    for g in [&g1, &g2] {
        host_ok(&format!("ip link set {} master {br}", g.tap));
    }
    gs.wait_ping(&g1, g2.ip4, Duration::from_secs(30));
    let bridge = gs.iperf(&g1, g2.ip4, 5);
    host_ok(&format!("ip link del {br}"));

    // the switch comes back: ports up, traffic resumes, same interfaces in the guests
    lab.start_switch();
    let t = std::time::Instant::now();
    for g in [&g1, &g2] {
        lab.wait_port_up(&g.name, Duration::from_secs(10));
    }
    let back = gs.wait_ping(&g1, g2.ip4, Duration::from_secs(30));
    println!(
        "switch restarted: ports up and g1 -> g2 answered {:?} after the start",
        t.elapsed().max(back)
    );
    let sw2 = gs.iperf(&g1, g2.ip4, 5);
    tcp_intact(&gs, &g2, &g1, 8 << 20);
    assert_eq!(
        (link_state(&gs, &g1), link_state(&gs, &g2)),
        state,
        "the guests' interfaces changed"
    );
    std::thread::sleep(Duration::from_secs(1));
    let watch = stop_watch(&gs, &g1);
    assert!(
        watch
            .runs
            .last()
            .is_some_and(|(w, n)| w == "g2" && *n >= 20),
        "the client's probes must be answered again at the end: {}",
        watch.pattern()
    );
    record(&format!(
        "TCP g1 -> g2 (iperf3 5 s, offloads on): vswitch {:.0} Mbit/s (retr {}), Linux bridge {:.0} Mbit/s (retr {}), vswitch after restart {:.0} Mbit/s (retr {}); same guests, same run",
        sw1.mbps, sw1.retransmits, bridge.mbps, bridge.retransmits, sw2.mbps, sw2.retransmits
    ));
    gs.finish();
    lab.finish();
}

// ---------------------------------------------------------------------------------------
// the by-hand demo (README): boots, answers, stops clean
// ---------------------------------------------------------------------------------------

/// `guests/demo.sh` (the README's real-VM demo) with this build's switch: it boots the
/// three guests, g1's keepalived takes the VIP, g3 reaches it through the switch (the
/// script checks that itself), `--status` shows the owner, and `--stop` leaves nothing.
#[test]
fn guest_demo_boots_and_stops_clean() {
    if !require_root() {
        return;
    }
    let lab = Lab::new("qdm", 234);
    let gs = Guests::new(&lab); // the guest lock and the images
    let dir = lab.dir.join("demo");
    let dir_s = dir.to_string_lossy().into_owned();
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/../guests/demo.sh");
    let bin = format!("VSWITCH_BIN={VSWITCH}");
    let run = |args: &[&str], t: u64| {
        let mut argv = vec!["env", bin.as_str(), "bash", demo];
        argv.extend_from_slice(args);
        run_argv(&argv, Duration::from_secs(t))
    };
    /// Stops the demo also when an assertion fails.
    struct StopDemo<'a>(&'a dyn Fn());
    impl Drop for StopDemo<'_> {
        fn drop(&mut self) {
            (self.0)();
        }
    }
    let stop = || {
        let _ = run(&["--stop", "--dir", &dir_s], 60);
    };
    let _guard = StopDemo(&stop);
    let up = run(&["--dir", &dir_s], 300);
    assert!(up.ok(), "demo.sh failed\n{up}");
    let out = up.text();
    for needle in ["g1 owns web", "vm.py console", "show vips", "--stop"] {
        assert!(
            out.contains(needle),
            "no {needle:?} in the demo's output:\n{out}"
        );
    }
    assert!(
        out.contains("g1 answered"),
        "g3 did not reach the VIP:\n{out}"
    );
    let status = run(&["--status", "--dir", &dir_s], 60);
    assert!(status.ok() && status.text().contains("g1 ("), "{status}");
    let down = run(&["--stop", "--dir", &dir_s], 60);
    assert!(down.ok(), "{down}");
    assert!(!dir.exists(), "--stop left {dir_s}");
    for t in ["vsd-g1", "vsd-g2", "vsd-g3"] {
        assert!(
            !std::path::Path::new("/sys/class/net").join(t).exists(),
            "--stop left {t}"
        );
    }
    drop(gs);
    lab.finish();
}
