//! Benchmark (not a pass/fail test; `#[ignore]`, run by `bench/propagation.sh`): how long a
//! VIP move takes to cross hosts. Three hosts of the cluster lab: candidate `web1` on
//! host-a, candidate `web2` on host-b, a client `cli` on host-c; one cluster group with
//! damping off. The candidates take turns sending a gratuitous ARP for the VIP (a claim),
//! `BENCH_MOVES` times (default 500), one every `BENCH_INTERVAL_MS` (default 60 ms).
//!
//! Propagation of one move = from the claim's arrival at the claiming host's switch (the
//! `at_ns` of its local `vip-moved` event: the worker's receive timestamp) to the move being
//! installed in another host's switch (the `at_ns` of that host's remote `vip-moved` event
//! with the same epoch, taken when the control thread applied it, just before it publishes
//! the datapath snapshot). Every switch runs on this machine, so their `CLOCK_MONOTONIC`
//! stamps compare. Events come from `vswitch ctl --json watch` on every host.
//!
//! With `BENCH_LOAD=1`, a background writer puts 1 KiB values into etcd as fast as one
//! HTTP/1.1 connection to the v3 JSON gateway allows, for the whole run; its rate is
//! printed. Results: one JSON line `PROPAGATION {...}` (p50, p99, max per receiving host
//! and overall, in ms).

#![allow(clippy::unwrap_used)]

mod cluster_lab;

use std::collections::BTreeMap;
use std::time::Duration;

use cluster_lab::{can_run, wait_until, Cluster, HostSpec};
use serde_json::Value;

const VIP: &str = "10.251.0.100";

/// Sends one gratuitous ARP request for VIP from eth0 (spa = tpa = VIP, sha = eth0's MAC).
const GARP_PY: &str = "import socket,sys
vip=bytes(int(x) for x in sys.argv[1].split('.'))
mac=bytes.fromhex(open('/sys/class/net/eth0/address').read().strip().replace(':',''))
s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW); s.bind(('eth0',0))
s.send(b'\\xff'*6+mac+b'\\x08\\x06'+bytes([0,1,8,0,6,4,0,1])+mac+vip+b'\\x00'*6+vip)
";

/// Puts 1 KiB values through etcd's v3 JSON gateway until killed; prints the count every
/// second.
const LOAD_PY: &str = "import http.client,json,base64,sys,time
c=http.client.HTTPConnection(sys.argv[1],2379,timeout=5)
v=base64.b64encode(b'x'*1024).decode(); n=0; t=time.time()
while True:
    k=base64.b64encode(('/load/k%d'%(n%1000)).encode()).decode()
    try:
        c.request('POST','/v3/kv/put',json.dumps({'key':k,'value':v}),{'Content-Type':'application/json'})
        c.getresponse().read(); n+=1
    except Exception:
        time.sleep(0.05); c=http.client.HTTPConnection(sys.argv[1],2379,timeout=5)
    if time.time()-t>=1: print('PUTS',n,flush=True); t=time.time()
";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// (host, epoch) → at_ns of `vip-moved` events for group `web`; local ones and remote ones.
fn moves(
    out: &str,
    host: &str,
    local: &mut BTreeMap<u64, (String, u64)>,
    remote: &mut BTreeMap<(String, u64), u64>,
) {
    for line in out.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if v["event"] != "vip_moved" || v["vip"] != "web" {
            continue;
        }
        let ev = &v;
        let (Some(epoch), Some(at)) = (ev["epoch"].as_u64(), ev["at_ns"].as_u64()) else {
            continue;
        };
        if ev["remote"] == true {
            remote.entry((host.to_string(), epoch)).or_insert(at);
        } else if ev["reason"] == "claim" {
            local.entry(epoch).or_insert((host.to_string(), at));
        }
    }
}

#[test]
#[ignore = "benchmark: run by bench/propagation.sh"]
fn vip_move_propagation() {
    if !can_run() {
        return;
    }
    let n = env_u64("BENCH_MOVES", 500);
    let interval = Duration::from_millis(env_u64("BENCH_INTERVAL_MS", 60));
    let load = env_u64("BENCH_LOAD", 0) == 1;
    let mut c = Cluster::new("prop", 5);
    c.add_host_spec("host-a", 1, HostSpec::default().vm("web1"));
    c.add_host_spec("host-b", 2, HostSpec::default().vm("web2"));
    c.add_host_spec("host-c", 3, HostSpec::default().vm("cli"));
    let vips = c.write_file(
        "vips.toml",
        &format!("[[vip]]\nname = \"web\"\naddresses = [{VIP:?}]\nmode = \"active-passive\"\ncandidates = [\"web1\", \"web2\"]\ndamping_max_moves = 0\n"),
    );
    let (ok, out) = c.ctl("host-a", &["cluster", "apply", vips.to_str().unwrap()]);
    assert!(ok, "cluster apply: {out}");
    let hosts = ["host-a", "host-b", "host-c"];
    for h in hosts {
        let ok = wait_until(
            Duration::from_secs(20),
            || matches!(c.ctl_json(h, &["show", "vips"]), Ok(Value::Array(v)) if v.iter().any(|g| g["name"] == "web")),
        );
        assert!(ok.is_some(), "{h} does not list the group\n{}", c.logs());
    }
    let watches: Vec<_> = hosts
        .iter()
        .map(|h| {
            let sock = c.host(h).socket.to_str().unwrap().to_string();
            let b = c.spawn_logged_root(
                &format!("watch-{h}.log"),
                &[
                    cluster_lab::VSWITCH,
                    "ctl",
                    "--socket",
                    &sock,
                    "--json",
                    "watch",
                ],
            );
            (h.to_string(), b)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let loader =
        load.then(|| c.spawn_fabric_logged("load.log", &["python3", "-c", LOAD_PY, "10.250.0.11"]));
    if loader.is_some() {
        std::thread::sleep(Duration::from_secs(2));
    }
    for i in 0..n {
        let vm = if i % 2 == 0 { "web2" } else { "web1" };
        let (ok, out) = c.vm_run(vm, &["python3", "-c", GARP_PY, VIP]);
        assert!(ok, "GARP from {vm}: {out}");
        std::thread::sleep(interval);
    }
    std::thread::sleep(Duration::from_secs(2));
    let load_rate = loader.map(|l| {
        let out = l.stop_with(libc::SIGKILL, Duration::from_secs(2));
        let counts: Vec<u64> = out
            .lines()
            .filter_map(|l| l.strip_prefix("PUTS ")?.trim().parse().ok())
            .collect();
        // puts per second over the run (the loader prints its running count every second)
        let secs = counts.len().max(1) as f64;
        counts.last().copied().unwrap_or(0) as f64 / secs
    });
    let mut local = BTreeMap::new();
    let mut remote = BTreeMap::new();
    for (h, w) in watches {
        let out = w.stop_with(libc::SIGINT, Duration::from_secs(2));
        moves(&out, &h, &mut local, &mut remote);
    }
    let mut per_host: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut missing = 0u64;
    for (epoch, (claimer, at)) in &local {
        for h in hosts.iter().filter(|h| **h != claimer.as_str()) {
            match remote.get(&(h.to_string(), *epoch)) {
                Some(r) => per_host
                    .entry(h.to_string())
                    .or_default()
                    .push((*r as f64 - *at as f64) / 1e6),
                None => missing += 1,
            }
        }
    }
    let mut all: Vec<f64> = per_host.values().flatten().copied().collect();
    all.sort_by(f64::total_cmp);
    let mut summary = serde_json::json!({
        "moves_sent": n,
        "claims_applied": local.len(),
        "installs_missing": missing,
        "etcd_load_puts_per_s": load_rate,
        "all": {"n": all.len(), "p50_ms": pct(&all, 50.0), "p99_ms": pct(&all, 99.0), "max_ms": all.last()},
    });
    for (h, v) in &mut per_host {
        v.sort_by(f64::total_cmp);
        summary[h] = serde_json::json!({"n": v.len(), "p50_ms": pct(v, 50.0), "p99_ms": pct(v, 99.0), "max_ms": v.last()});
    }
    println!("PROPAGATION {summary}");
    assert!(
        !all.is_empty(),
        "no move was seen crossing hosts\n{}",
        c.logs()
    );
}
