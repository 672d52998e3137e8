//! Benchmark (not a pass/fail test; `#[ignore]`, run by `bench/cross_host.sh`): traffic
//! between two VMs on one host (the baseline) and between two VMs on two hosts (VXLAN over
//! the lab's underlay bridge), in one run on the same lab. VMs a1, a2 on host-a and b1 on
//! host-b (cluster lab: every switch, etcd member and VM on this machine).
//!
//! For each pair (a1 → a2 same host, a1 → b1 cross host):
//! - **TCP**: `iperf3 -c` for `BENCH_SECS` (default 5) s, the receiver's rate;
//! - **switch CPU per Gbit/s**: the CPU time (utime + stime from `/proc/<pid>/stat`) of
//!   every switch on the path over the TCP run, divided by run time and by the rate;
//! - **64 B rate**: `iperf3 -u -l 64 -b 0` (as fast as the sender goes), packets received
//!   per second (sent minus lost);
//! - **ping RTT**: 200 pings 10 ms apart, min / avg / max.
//!
//! Prints one `CROSSHOST {...}` JSON line per pair and a Markdown table.

#![allow(clippy::unwrap_used)]

mod cluster_lab;

use std::time::{Duration, Instant};

use cluster_lab::{can_run, wait_until, Cluster, HostSpec};
use serde_json::{json, Value};

/// CPU seconds (user + system) of a process so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // fields after the command name (which is in parentheses)
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    // utime and stime are fields 14 and 15 of stat; `rest` starts at field 3
    (ticks(11) + ticks(12)) / hz
}

fn switches_cpu(c: &Cluster, hosts: &[&str]) -> f64 {
    hosts
        .iter()
        .filter_map(|h| c.agent_pid(h))
        .map(cpu_secs)
        .sum()
}

/// Runs an iperf3 client in `from` against a one-shot server in `to`; the parsed JSON.
fn iperf(c: &Cluster, from: &str, to: &str, args: &[&str]) -> Value {
    let ip = c.vm(to).ip4.clone();
    let server = c.spawn_in_vm(to, &["timeout", "60", "iperf3", "-s", "-1"]);
    std::thread::sleep(Duration::from_millis(800));
    let mut a = vec!["iperf3", "-c", ip.as_str(), "-J"];
    a.extend_from_slice(args);
    let (ok, out) = c.vm_run(from, &a);
    drop(server);
    assert!(ok, "iperf3 {from} → {to}: {out}");
    serde_json::from_str(&out).unwrap()
}

fn measure(c: &Cluster, from: &str, to: &str, hosts: &[&str], secs: &str) -> Value {
    // ping RTT
    let ip = c.vm(to).ip4.clone();
    let (_, out) = c.vm_run(from, &["ping", "-q", "-c", "200", "-i", "0.01", &ip]);
    let rtt: Vec<f64> = out
        .lines()
        .find_map(|l| l.split_once(" = ").filter(|_| l.starts_with("rtt")))
        .map(|(_, v)| {
            v.trim_end_matches(" ms")
                .split('/')
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    // TCP with the switches' CPU
    let cpu0 = switches_cpu(c, hosts);
    let t0 = Instant::now();
    let tcp = iperf(c, from, to, &["-t", secs]);
    let wall = t0.elapsed().as_secs_f64();
    let cpu = switches_cpu(c, hosts) - cpu0;
    let bps = tcp["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0);
    let gbps = bps / 1e9;
    // 64 B UDP
    let udp = iperf(c, from, to, &["-u", "-l", "64", "-b", "0", "-t", secs]);
    let sum = &udp["end"]["sum"];
    let seconds = sum["seconds"].as_f64().unwrap_or(1.0).max(0.001);
    let got = sum["packets"].as_f64().unwrap_or(0.0) - sum["lost_packets"].as_f64().unwrap_or(0.0);
    json!({
        "pair": format!("{from} → {to}"),
        "tcp_gbit_s": gbps,
        "switch_cpu_cores": cpu / wall,
        "switch_cpu_per_gbit_s": if gbps > 0.0 { cpu / wall / gbps } else { 0.0 },
        "udp64_kpps": got / seconds / 1e3,
        "udp64_loss_pct": sum["lost_percent"].as_f64().unwrap_or(0.0),
        "ping_ms": {"min": rtt.first(), "avg": rtt.get(1), "max": rtt.get(2)},
    })
}

#[test]
#[ignore = "benchmark: run by bench/cross_host.sh"]
fn cross_host_vs_same_host() {
    if !can_run() {
        return;
    }
    let secs = std::env::var("BENCH_SECS").unwrap_or_else(|_| "5".into());
    let mut c = Cluster::new("xbench", 5);
    c.add_host_spec("host-a", 1, HostSpec::default().vm("a1").vm("a2"));
    c.add_host_spec("host-b", 2, HostSpec::default().vm("b1"));
    let both = wait_until(Duration::from_secs(30), || {
        c.listed("host-a").len() == 2 && c.listed("host-b").len() == 2
    });
    assert!(both.is_some(), "hosts do not see each other:\n{}", c.logs());
    let reach = wait_until(Duration::from_secs(30), || {
        c.pings("a1", &c.vm("b1").ip4.clone()) && c.pings("a1", &c.vm("a2").ip4.clone())
    });
    assert!(
        reach.is_some(),
        "VMs do not reach each other:\n{}",
        c.logs()
    );
    let rows = [
        measure(&c, "a1", "a2", &["host-a"], &secs),
        measure(&c, "a1", "b1", &["host-a", "host-b"], &secs),
    ];
    println!("| pair | TCP Gbit/s | switch CPU (cores) | CPU per Gbit/s | 64 B kpps | 64 B loss % | ping min/avg/max ms |");
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        println!("CROSSHOST {r}");
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.0} | {:.1} | {}/{}/{} |",
            r["pair"].as_str().unwrap_or(""),
            r["tcp_gbit_s"].as_f64().unwrap_or(0.0),
            r["switch_cpu_cores"].as_f64().unwrap_or(0.0),
            r["switch_cpu_per_gbit_s"].as_f64().unwrap_or(0.0),
            r["udp64_kpps"].as_f64().unwrap_or(0.0),
            r["udp64_loss_pct"].as_f64().unwrap_or(0.0),
            r["ping_ms"]["min"],
            r["ping_ms"]["avg"],
            r["ping_ms"]["max"],
        );
    }
}
