//! The LVS-DR recipe (docs/keepalived.md §7.2, `configs/lvs-dr.toml`) on real QEMU guests:
//! two directors share the VIP with keepalived (`vrrp_instance` + `virtual_server … lb_kind
//! DR`, connection sync with `lvs_sync_daemon`), two backends have the VIP on `lo`
//! (`arp_ignore=1`, `arp_announce=2`) and answer the client directly from it. IPVS needs the
//! guest kernel (the host has no `ip_vs`), hence the guest tier; the client is a network
//! namespace.
//!
//! Guests: g1, g2 the directors (g1 priority 150), g3, g4 the backends (a TCP service that
//! first sends its name, then echoes). The port settings are the recipe's: the directors a
//! `0.0.0.0/0` pair (they forward the client's packets with the client's source address),
//! the backends a pair for the VIP (they receive it by MAC from a director and answer from
//! it); the backends are not candidates of the directors' VIP.
//!
//! 1. g1 owns the VIP; new connections from the client are spread over g3 and g4
//!    (round-robin); a capture shows the DR path: client → g1 (owner MAC), g1 → backend
//!    (the backend's MAC, IP destination still the VIP), backend → client (from the VIP,
//!    the backend's MAC) — no reply crosses g1's tap;
//! 2. graceful stop of g1's keepalived → g2; 3. keepalived back on g1 → g1 (preemption);
//!    4. g1's QEMU is killed (VM crash; the switch resigns for it) → g2. After each, new
//!    connections succeed, and a long-lived connection opened at the start is checked
//!    (with the directors' connection sync it is expected to survive; the test reports
//!    what happened and requires it).
//!
//! Needs root; builds the guest images on first use. Run:
//! `cargo test -p agent --test live_guests_lvs -- --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use common::guests::{record, Guest, Guests, TapMode};
use common::*;

/// The TCP service behind the VIP.
const SVC_PORT: u16 = 8080;
/// keepalived `virtual_router_id`.
const VRID: u8 = 51;

/// Backend service (python3-minimal): sends its name and a newline, then echoes. Prints
/// READY. Arguments: port, name.
const SERVER_PY: &str = "import socket,sys,threading
port,name=int(sys.argv[1]),sys.argv[2].encode()
s=socket.socket()
s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
s.bind(('0.0.0.0',port))
s.listen(64)
print('READY',flush=True)
def serve(c):
    try:
        c.sendall(name+b'\\n')
        while True:
            d=c.recv(4096)
            if not d: break
            c.sendall(d)
    except OSError: pass
    c.close()
while True:
    c,a=s.accept()
    threading.Thread(target=serve,args=(c,),daemon=True).start()
";

/// Client: `n` new connections, one after the other; prints the name each one got, or
/// `FAIL <error>`. Arguments: address, port, n.
const CONNECT_PY: &str = "import socket,sys,time
dst,port,n=sys.argv[1],int(sys.argv[2]),int(sys.argv[3])
for i in range(n):
    try:
        c=socket.create_connection((dst,port),timeout=3)
        f=c.makefile('rb')
        w=f.readline().decode().strip()
        c.close()
        print(w or 'FAIL empty',flush=True)
    except OSError as e:
        print('FAIL',type(e).__name__,flush=True)
    time.sleep(0.05)
";

/// Client: one long-lived connection; prints `NAME <backend>`, then every 0.1 s sends a
/// sequence number and waits (5 s) for its echo. On a failure prints `BROKEN <seq> <error>`
/// and exits; on SIGINT prints `ALIVE <echoes> <longest wait ms>`. Arguments: address,
/// port.
const LONG_PY: &str = "import socket,sys,time,signal
dst,port=sys.argv[1],int(sys.argv[2])
stop=[False]
def h(*a): stop[0]=True
signal.signal(signal.SIGINT,h)
c=socket.create_connection((dst,port),timeout=5)
f=c.makefile('rb')
print('NAME',f.readline().decode().strip(),flush=True)
i=0; worst=0.0
while not stop[0]:
    t=time.time()
    try:
        c.sendall(b'%d\\n'%i)
        got=f.readline().decode().strip()
        if got!=str(i): raise OSError('echo %r for %d'%(got,i))
    except OSError as e:
        if stop[0]: break
        print('BROKEN',i,type(e).__name__,e,flush=True); sys.exit(1)
    worst=max(worst,time.time()-t)
    i+=1
    time.sleep(0.1)
print('ALIVE',i,round(worst*1000),flush=True)
";

/// The directors' keepalived.conf (`prio` 150 on g1, 100 on g2; both start BACKUP).
fn director_conf(me: &Guest, prio: u8, vip: Ipv4Addr, backends: &[&Guest]) -> String {
    let reals: String = backends
        .iter()
        .map(|b| {
            format!(
                "    real_server {} {SVC_PORT} {{\n        weight 1\n    }}\n",
                b.ip4
            )
        })
        .collect();
    format!(
        "global_defs {{\n    router_id {name}\n    lvs_sync_daemon eth0 VI_1\n}}\n\n\
         vrrp_instance VI_1 {{\n    state BACKUP\n    interface eth0\n    virtual_router_id {VRID}\n    \
         priority {prio}\n    advert_int 1\n    virtual_ipaddress {{\n        {vip}/24 dev eth0\n    }}\n}}\n\n\
         virtual_server {vip} {SVC_PORT} {{\n    delay_loop 5\n    lb_algo rr\n    lb_kind DR\n    \
         protocol TCP\n{reals}}}\n",
        name = me.name
    )
}

/// The backends' side of LVS-DR: the VIP on `lo`, no ARP for it on eth0.
fn backend_setup(vip: Ipv4Addr) -> String {
    format!(
        "sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.eth0.arp_ignore=1 \
         net.ipv4.conf.all.arp_announce=2 net.ipv4.conf.eth0.arp_announce=2 && \
         ip addr add {vip}/32 dev lo"
    )
}

/// Starts keepalived (VRRP and the IPVS checker) in `g`; log in `share/ka-<g>-<n>.log`.
fn start_keepalived(gs: &Guests<'_>, g: &Guest, n: u32) {
    gs.spawn(
        g,
        &format!(
            "keepalived --dont-fork --log-console --log-detail --no-syslog -f /mnt/share/ka-{}.conf \
             -p /run/ka.pid -r /run/vrrp.pid -c /run/chk.pid",
            g.name
        ),
        &format!("ka-{}-{n}.log", g.name),
    );
}

/// `n` new connections from the client to the VIP: the backend names they got.
#[track_caller]
fn connect(client: &Vm, vip: Ipv4Addr, n: u32) -> Vec<String> {
    let o = client.run_args(&[
        "python3",
        "-c",
        CONNECT_PY,
        &vip.to_string(),
        &SVC_PORT.to_string(),
        &n.to_string(),
    ]);
    o.stdout.lines().map(str::to_string).collect()
}

/// New connections succeed and reach both backends (rr), within `timeout` (the first
/// tries right after a failover may still fail while keepalived takes over).
#[track_caller]
fn new_connections_work(what: &str, client: &Vm, vip: Ipv4Addr, timeout: Duration) -> Duration {
    let t = Instant::now();
    let mut last = Vec::new();
    let ok = wait_until(timeout, || {
        last = connect(client, vip, 4);
        last.iter().all(|w| w == "g3" || w == "g4")
            && last.iter().any(|w| w == "g3")
            && last.iter().any(|w| w == "g4")
    });
    assert!(
        ok.is_some(),
        "{what}: 4 new connections to the VIP should reach g3 and g4: {last:?}"
    );
    let took = t.elapsed();
    println!("{what}: new connections {last:?} (first all-good round after {took:?})");
    took
}

fn is_tcp(f: &Frame) -> bool {
    f.ip().is_some_and(|i| i.proto == 6)
}

#[test]
fn guests_lvs_dr_behind_keepalived_pair() {
    if !require_root() {
        return;
    }
    let t_start = Instant::now();
    let lab = Lab::new("qlv", 227);
    let client = lab.add_vm(VmSpec::new("cl", Backend::Tap).no_ipv6());
    let gs = Guests::new(&lab);
    let d1 = gs.add("g1", TapMode::Fd);
    let d2 = gs.add("g2", TapMode::Fd);
    let b3 = gs.add("g3", TapMode::Fd);
    let b4 = gs.add("g4", TapMode::Fd);
    let vip = lab.ip4(100);
    // The recipe's port settings (configs/lvs-dr.toml).
    let ports = gs.ports_toml_with(|g| match g.name.as_str() {
        // directors: IPVS-DR forwards the client's packets unchanged, source = the client
        "g1" | "g2" => "allowed_address_pairs = [{ ip = \"0.0.0.0/0\" }]\n".into(),
        // backends: receive the VIP (by MAC, from a director) and answer from it
        _ => format!("allowed_address_pairs = [{{ ip = \"{vip}\" }}]\n"),
    });
    let vip_cfg = vip_toml("lvs", "active-passive", &[vip.into()], &["g1", "g2"], &[]);
    lab.set_extra_config(&format!("{ports}{vip_cfg}"));
    lab.start();
    gs.put("server.py", SERVER_PY);
    gs.put("ka-g1.conf", &director_conf(&d1, 150, vip, &[&b3, &b4]));
    gs.put("ka-g2.conf", &director_conf(&d2, 100, vip, &[&b3, &b4]));
    let boot = gs.boot(&[&d1, &d2, &b3, &b4]);
    for g in [&d1, &d2, &b3, &b4] {
        lab.wait_port_up(&g.name, Duration::from_secs(10));
    }
    let t_booted = t_start.elapsed();
    for b in [&b3, &b4] {
        gs.must(b, &backend_setup(vip));
        let out = format!("server-{}.out", b.name);
        gs.spawn(b, &format!("python3 server.py {SVC_PORT} {}", b.name), &out);
        gs.wait_shared(&out, "READY", Duration::from_secs(30));
    }
    for d in [&d1, &d2] {
        // sync a connection every 10 packets (default 50): the long-lived one below sends
        // 10 a second towards the director
        gs.must(d, "sysctl -qw net.ipv4.vs.sync_threshold='3 10'");
        start_keepalived(&gs, d, 1);
    }
    lab.wait_vip_owners("lvs", &["g1"], Duration::from_secs(30));
    let ipvs = gs.must(&d1, "ipvsadm -Ln");
    assert!(
        ipvs.contains(&format!("{vip}:{SVC_PORT} rr"))
            && ipvs.contains(&format!("{}:{SVC_PORT}", b3.ip4))
            && ipvs.contains("Route"),
        "g1's IPVS table should have the DR service:\n{ipvs}"
    );

    // --- 1. the DR path -----------------------------------------------------------------
    let checks = [
        "ip_spoof",
        "dest_check",
        "hairpin",
        "vip_hijack",
        "arp_spoof",
    ];
    let drops = |lab: &Lab| -> Vec<(String, &str, u64)> {
        ["g1", "g2", "g3", "g4", "cl"]
            .iter()
            .flat_map(|p| checks.iter().map(move |r| (p.to_string(), *r)))
            .map(|(p, r)| {
                let n = lab.drops(&p, r);
                (p, r, n)
            })
            .collect()
    };
    let drops0 = drops(&lab);
    let cap_cl = lab.capture_dir(&client, Direction::Both);
    let cap_d1 = gs.capture(&d1, Direction::Both);
    new_connections_work("start (g1 directs)", &client, vip, Duration::from_secs(20));
    let f_cl = cap_cl.stop();
    let f_d1 = cap_d1.stop();
    let vip_ip = IpAddr::V4(vip);
    let backend_macs = [b3.mac, b4.mac];
    let to_vip = select(&f_cl, |f| {
        is_tcp(f) && f.ip().is_some_and(|i| i.dst == vip_ip) && f.src() == client.mac
    });
    let from_vip = select(&f_cl, |f| {
        is_tcp(f) && f.ip().is_some_and(|i| i.src == vip_ip) && f.dst() == client.mac
    });
    assert!(
        !to_vip.is_empty() && to_vip.iter().all(|f| f.dst() == d1.mac),
        "the client's packets to the VIP should be addressed to g1 (the owner):\n{}",
        summarize(&to_vip)
    );
    assert!(
        !from_vip.is_empty() && from_vip.iter().all(|f| backend_macs.contains(&f.src())),
        "the replies from the VIP should come straight from g3/g4:\n{}",
        summarize(&from_vip)
    );
    let forwarded = select(&f_d1, |f| {
        is_tcp(f)
            && f.src() == d1.mac
            && backend_macs.contains(&f.dst())
            && f.ip()
                .is_some_and(|i| i.dst == vip_ip && i.src == IpAddr::V4(client.ip4))
    });
    let replies_via_d1 = select(&f_d1, |f| {
        is_tcp(f) && f.ip().is_some_and(|i| i.src == vip_ip)
    });
    assert!(
        forwarded.len() >= to_vip.len() / 2,
        "g1 should forward the client's packets to the backends by MAC (IP destination the \
         VIP): {} forwarded of {} sent",
        forwarded.len(),
        to_vip.len()
    );
    assert!(
        replies_via_d1.is_empty(),
        "replies crossed g1's tap:\n{}",
        summarize(&replies_via_d1)
    );
    record(&format!(
        "LVS-DR: client -> VIP {} packets (to g1's MAC), g1 -> backends by MAC {}, backends -> client from the VIP {} packets, replies through g1 0",
        to_vip.len(),
        forwarded.len(),
        from_vip.len()
    ));

    // the long-lived connection
    let long = lab.spawn(
        &client,
        &[
            "python3",
            "-c",
            LONG_PY,
            &vip.to_string(),
            &SVC_PORT.to_string(),
        ],
    );
    assert!(
        long.wait_for_output("NAME g", Duration::from_secs(10)),
        "long-lived connection did not start: {}",
        long.output()
    );
    let sync_wait = || std::thread::sleep(Duration::from_secs(3));
    sync_wait();
    let long_ok = |what: &str| {
        let out = long.output();
        println!(
            "{what}: long-lived connection: {}",
            out.trim().replace('\n', " | ")
        );
        !out.contains("BROKEN")
    };

    // --- 2. graceful stop of g1's keepalived ----------------------------------------------
    let t = Instant::now();
    gs.must(&d1, "kill -TERM $(cat /run/ka.pid)");
    lab.wait_vip_owners("lvs", &["g2"], Duration::from_secs(20));
    let owner = t.elapsed();
    let conns = new_connections_work(
        "g1 stopped (g2 directs)",
        &client,
        vip,
        Duration::from_secs(20),
    );
    record(&format!(
        "LVS-DR failover, graceful stop of g1's keepalived: g2 owns the VIP after {:.2} s; new connections good after {:.2} s",
        owner.as_secs_f64(),
        conns.as_secs_f64()
    ));
    sync_wait();
    let alive_term = long_ok("after the graceful stop");

    // --- 3. failback ----------------------------------------------------------------------
    let t = Instant::now();
    start_keepalived(&gs, &d1, 2);
    lab.wait_vip_owners("lvs", &["g1"], Duration::from_secs(30));
    let owner = t.elapsed();
    let conns = new_connections_work(
        "g1 back (g1 directs)",
        &client,
        vip,
        Duration::from_secs(20),
    );
    record(&format!(
        "LVS-DR failback, keepalived started on g1: g1 owns the VIP after {:.2} s; new connections good after {:.2} s",
        owner.as_secs_f64(),
        conns.as_secs_f64()
    ));
    sync_wait();
    let alive_back = long_ok("after the failback");

    // --- 4. g1's VM crashes ---------------------------------------------------------------
    let t = Instant::now();
    gs.kill_qemu(&d1);
    lab.wait_port_down("g1", Duration::from_secs(5));
    lab.wait_vip_owners("lvs", &["g2"], Duration::from_secs(20));
    let owner = t.elapsed();
    let conns = new_connections_work(
        "g1 crashed (g2 directs)",
        &client,
        vip,
        Duration::from_secs(20),
    );
    assert!(
        lab.log().contains("vrrp_step_down"),
        "the switch did not resign for the crashed g1:\n{}",
        lab.log_tail(20)
    );
    record(&format!(
        "LVS-DR failover, g1's QEMU killed: g2 owns the VIP after {:.2} s (the switch resigned for g1); new connections good after {:.2} s",
        owner.as_secs_f64(),
        conns.as_secs_f64()
    ));
    sync_wait();
    let alive_crash = long_ok("after the crash");

    let out = long.interrupt();
    record(&format!(
        "LVS-DR long-lived connection (lvs_sync_daemon): survived graceful stop {alive_term}, failback {alive_back}, crash {alive_crash}: {}",
        out.stdout.trim().replace('\n', " | ")
    ));
    assert!(
        alive_term && alive_back && alive_crash,
        "the long-lived connection broke: {}",
        out.stdout
    );
    assert_eq!(
        drops(&lab),
        drops0,
        "refused frames during the test ({checks:?})"
    );
    record(&format!(
        "LVS-DR test: boot of 4 guests {:.1} s ({}), whole test {:.1} s",
        t_booted.as_secs_f64(),
        boot.iter()
            .map(|b| format!("{b:.1}"))
            .collect::<Vec<_>>()
            .join("/"),
        t_start.elapsed().as_secs_f64()
    ));
    gs.finish();
    lab.finish();
}
