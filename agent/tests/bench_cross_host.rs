//! Benchmark (not a pass/fail test; `#[ignore]`, run by `bench/cross_host.sh`): traffic
//! between two VMs on one host (the baseline) and between two VMs on two hosts (VXLAN over
//! the lab's underlay bridge), in one run on the same lab. VMs a1, a2 on host-a and b1 on
//! host-b (cluster lab: every switch, etcd member and VM on this machine).
//!
//! For each pair (a1 → a2 same host; a1 → b1 cross host with the defaults: super-frames
//! sent as UDP GSO batches, received segments joined back (GRO); c1 → d1 cross host with
//! `cluster.gro = false`; e1 → f1 cross host with neither, `udp_gso = "off"` too: one
//! datagram per send and per write, the path before both):
//! - **TCP**: `iperf3 -c` for `BENCH_SECS` (default 5) s, the receiver's rate;
//! - **switch CPU per Gbit/s**: the CPU time (utime + stime from `/proc/<pid>/stat`) of
//!   every switch on the path over the TCP run, divided by run time and by the rate;
//! - **64 B rate**: `iperf3 -u -l 64 -b 0` (as fast as the sender goes), packets received
//!   per second (sent minus lost);
//! - **ping RTT**: 200 pings 10 ms apart, min / avg / max.
//!
//! The peer in the same run: **the kernel's own VXLAN** — two VM namespaces on Linux
//! bridges with a `vxlan` device each (VNI 6000, UDP 4789, static remote), the underlay
//! through a bridge in a fabric namespace as in the cluster lab. That is the path where the
//! kernel segments a super-frame after encapsulation (UDP-tunnel GSO) and joins on receive
//! (GRO). Its CPU is the kernel's (softirq), not a process's: reported as 0.
//!
//! Prints one `CROSSHOST {...}` JSON line per pair and a Markdown table.

#![allow(clippy::unwrap_used)]

mod cluster_lab;

use std::time::{Duration, Instant};

use cluster_lab::{can_run, run, wait_until, Background, Cluster, HostSpec};
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

/// UDP `RcvbufErrors + SndbufErrors` of a host's namespace (`/proc/net/snmp`): datagrams
/// its VXLAN socket lost because a buffer was full.
fn udp_buf_errors(c: &Cluster, host: &str) -> u64 {
    let (_, out) = c.host_run(host, &["cat", "/proc/net/snmp"]);
    snmp_buf_errors(&out)
}

/// `RcvbufErrors + SndbufErrors` of the `Udp:` lines of a `/proc/net/snmp`.
fn snmp_buf_errors(out: &str) -> u64 {
    let mut udp = out.lines().filter(|l| l.starts_with("Udp: "));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .filter(|(n, _)| *n == "RcvbufErrors" || *n == "SndbufErrors")
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum()
}

/// Two VMs to measure between, whoever built them.
trait Vms {
    /// Run a command in a VM to its end.
    fn run(&self, vm: &str, args: &[&str]) -> (bool, String);
    /// Start a command in a VM (killed when the guard drops).
    fn serve(&self, vm: &str, args: &[&str]) -> Background;
    /// The VM's IPv4 address.
    fn ip(&self, vm: &str) -> String;
    /// CPU seconds so far of the switch of `host` (0 for the kernel).
    fn cpu(&self, host: &str) -> f64;
    /// Datagrams lost to full UDP buffers so far on `host`.
    fn buffer_drops(&self, host: &str) -> u64;
}

impl Vms for Cluster {
    fn run(&self, vm: &str, args: &[&str]) -> (bool, String) {
        self.vm_run(vm, args)
    }
    fn serve(&self, vm: &str, args: &[&str]) -> Background {
        self.spawn_in_vm(vm, args)
    }
    fn ip(&self, vm: &str) -> String {
        self.vm(vm).ip4.clone()
    }
    fn cpu(&self, host: &str) -> f64 {
        switches_cpu(self, &[host])
    }
    fn buffer_drops(&self, host: &str) -> u64 {
        udp_buf_errors(self, host)
    }
}

/// Runs an iperf3 client in `from` against a one-shot server in `to`; the parsed JSON.
fn iperf(c: &dyn Vms, from: &str, to: &str, args: &[&str]) -> Value {
    let ip = c.ip(to);
    let server = c.serve(to, &["timeout", "60", "iperf3", "-s", "-1"]);
    std::thread::sleep(Duration::from_millis(800));
    let mut a = vec!["iperf3", "-c", ip.as_str(), "-J"];
    a.extend_from_slice(args);
    let (ok, out) = c.run(from, &a);
    drop(server);
    assert!(ok, "iperf3 {from} → {to}: {out}");
    serde_json::from_str(&out).unwrap()
}

fn measure(c: &dyn Vms, what: &str, from: &str, to: &str, hosts: &[&str], secs: &str) -> Value {
    // ping RTT
    let ip = c.ip(to);
    let (_, out) = c.run(from, &["ping", "-q", "-c", "200", "-i", "0.01", &ip]);
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
    let per0: Vec<f64> = hosts.iter().map(|h| c.cpu(h)).collect();
    let lost0: u64 = hosts.iter().map(|h| c.buffer_drops(h)).sum();
    let t0 = Instant::now();
    let tcp = iperf(c, from, to, &["-t", secs]);
    let wall = t0.elapsed().as_secs_f64();
    let lost: u64 = hosts.iter().map(|h| c.buffer_drops(h)).sum::<u64>() - lost0;
    let retransmits = tcp["end"]["sum_sent"]["retransmits"].as_u64().unwrap_or(0);
    let per_host: serde_json::Map<String, Value> = hosts
        .iter()
        .zip(per0)
        .map(|(h, c0)| (h.to_string(), json!((c.cpu(h) - c0) / wall)))
        .collect();
    let cpu: f64 = per_host.values().filter_map(Value::as_f64).sum::<f64>() * wall;
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
        "path": what,
        "tcp_gbit_s": gbps,
        "switch_cpu_cores": cpu / wall,
        "switch_cpu_cores_by_host": per_host,
        "tcp_retransmits": retransmits,
        "udp_buffer_drops": lost,
        "switch_cpu_per_gbit_s": if gbps > 0.0 { cpu / wall / gbps } else { 0.0 },
        "udp64_kpps": got / seconds / 1e3,
        "udp64_loss_pct": sum["lost_percent"].as_f64().unwrap_or(0.0),
        "ping_ms": {"min": rtt.first(), "avg": rtt.get(1), "max": rtt.get(2)},
    })
}

/// The peer: two VMs on two "hosts" joined by the kernel's VXLAN and Linux bridges.
/// Namespaces `kx<pid>{va,ha,f,hb,vb}`, removed in `Drop`.
struct KernelVxlan {
    ns: Vec<String>,
}

impl KernelVxlan {
    fn ns(&self, role: &str) -> String {
        format!("kx{}{role}", std::process::id())
    }

    fn sh(&self, ns: &str, cmd: &str) {
        let (ok, out) = run(&["ip", "netns", "exec", ns, "sh", "-ec", cmd]);
        assert!(ok, "{ns}: {cmd}: {out}");
    }

    fn new() -> KernelVxlan {
        let mut k = KernelVxlan { ns: Vec::new() };
        for role in ["va", "ha", "f", "hb", "vb"] {
            let ns = k.ns(role);
            let (ok, out) = run(&["ip", "netns", "add", &ns]);
            assert!(ok, "ip netns add {ns}: {out}");
            k.ns.push(ns);
        }
        let (va, ha, f, hb, vb) = (k.ns("va"), k.ns("ha"), k.ns("f"), k.ns("hb"), k.ns("vb"));
        k.sh(
            &f,
            "ip link add br0 type bridge; ip link set br0 up; ip link set lo up",
        );
        for (h, vm, under, over) in [
            (&ha, &va, "10.252.0.1", "10.253.0.1"),
            (&hb, &vb, "10.252.0.2", "10.253.0.2"),
        ] {
            let peer = if under.ends_with(".1") {
                "10.252.0.2"
            } else {
                "10.252.0.1"
            };
            let port = &under[9..];
            // underlay: a veth from the host to the fabric bridge
            k.sh(
                h,
                &format!(
                    "ip link set lo up; ip link add u0 type veth peer name u1 netns {f}; \
                 ip addr add {under}/24 dev u0; ip link set u0 up"
                ),
            );
            k.sh(
                &f,
                &format!("ip link set u1 name p{port}; ip link set p{port} master br0 up"),
            );
            // the host's bridge with its VXLAN device and the VM's veth
            k.sh(h, &format!(
                "ip link add br0 type bridge; ip link set br0 up; \
                 ip link add vx0 type vxlan id 6000 local {under} remote {peer} dstport 4789 nolearning; \
                 ip link set vx0 master br0 up; \
                 ip link add vm type veth peer name eth0 netns {vm}; ip link set vm master br0 up"
            ));
            k.sh(
                vm,
                &format!(
                "ip link set lo up; ip link set eth0 mtu 1450; ip addr add {over}/24 dev eth0; \
                 ip link set eth0 up"
            ),
            );
        }
        // static FDB: flood to the one remote VTEP (the `remote` of the device)
        let ok = wait_until(Duration::from_secs(10), || {
            run(&[
                "ip",
                "netns",
                "exec",
                &va,
                "ping",
                "-c",
                "1",
                "-W",
                "1",
                "10.253.0.2",
            ])
            .0
        });
        assert!(ok.is_some(), "kernel VXLAN pair does not ping");
        k
    }
}

impl Drop for KernelVxlan {
    fn drop(&mut self) {
        for ns in &self.ns {
            let _ = run(&["ip", "netns", "del", ns]);
        }
    }
}

impl Vms for KernelVxlan {
    fn run(&self, vm: &str, args: &[&str]) -> (bool, String) {
        let ns = self.ns(vm);
        let mut a = vec!["ip", "netns", "exec", ns.as_str()];
        a.extend_from_slice(args);
        run(&a)
    }
    fn serve(&self, vm: &str, args: &[&str]) -> Background {
        Background::spawn(&self.ns(vm), args)
    }
    fn ip(&self, vm: &str) -> String {
        if vm == "va" {
            "10.253.0.1"
        } else {
            "10.253.0.2"
        }
        .to_string()
    }
    fn cpu(&self, _host: &str) -> f64 {
        0.0
    }
    fn buffer_drops(&self, host: &str) -> u64 {
        let (_, out) = self.run(host, &["cat", "/proc/net/snmp"]);
        snmp_buf_errors(&out)
    }
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
    // the same cross-host pair without receive coalescing (cluster.gro = false), and
    // without either offload (also cluster.udp_gso = "off": one datagram per send)
    let no_gro = || HostSpec::default().cluster("gro = false");
    c.add_host_spec("host-c", 3, no_gro().vm("c1"));
    c.add_host_spec("host-d", 4, no_gro().vm("d1"));
    let neither = || no_gro().cluster("udp_gso = \"off\"");
    c.add_host_spec("host-e", 5, neither().vm("e1"));
    c.add_host_spec("host-f", 6, neither().vm("f1"));
    let hosts = ["host-a", "host-b", "host-c", "host-d", "host-e", "host-f"];
    let both = wait_until(Duration::from_secs(30), || {
        hosts.iter().all(|h| c.listed(h).len() == hosts.len())
    });
    assert!(both.is_some(), "hosts do not see each other:\n{}", c.logs());
    let reach = wait_until(Duration::from_secs(30), || {
        c.pings("a1", &c.vm("b1").ip4.clone())
            && c.pings("a1", &c.vm("a2").ip4.clone())
            && c.pings("c1", &c.vm("d1").ip4.clone())
            && c.pings("e1", &c.vm("f1").ip4.clone())
    });
    assert!(
        reach.is_some(),
        "VMs do not reach each other:\n{}",
        c.logs()
    );
    let ab = ["host-a", "host-b"];
    let cd = ["host-c", "host-d"];
    let ef = ["host-e", "host-f"];
    let rows = [
        measure(&c, "same host", "a1", "a2", &["host-a"], &secs),
        measure(
            &c,
            "cross host, defaults (UDP GSO + GRO)",
            "a1",
            "b1",
            &ab,
            &secs,
        ),
        measure(&c, "cross host, gro = false", "c1", "d1", &cd, &secs),
        measure(
            &c,
            "cross host, gro = false, udp_gso = off",
            "e1",
            "f1",
            &ef,
            &secs,
        ),
        measure(
            &KernelVxlan::new(),
            "peer: kernel VXLAN + Linux bridge",
            "va",
            "vb",
            &["ha", "hb"],
            &secs,
        ),
    ];
    println!("| path | pair | TCP Gbit/s | switch CPU (cores) | CPU per Gbit/s | TCP retransmits | UDP buffer drops | 64 B kpps | 64 B loss % | ping min/avg/max ms |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!("CROSSHOST {r}");
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {} | {} | {:.0} | {:.1} | {}/{}/{} |",
            r["path"].as_str().unwrap_or(""),
            r["pair"].as_str().unwrap_or(""),
            r["tcp_gbit_s"].as_f64().unwrap_or(0.0),
            r["switch_cpu_cores"].as_f64().unwrap_or(0.0),
            r["switch_cpu_per_gbit_s"].as_f64().unwrap_or(0.0),
            r["tcp_retransmits"],
            r["udp_buffer_drops"],
            r["udp64_kpps"].as_f64().unwrap_or(0.0),
            r["udp64_loss_pct"].as_f64().unwrap_or(0.0),
            r["ping_ms"]["min"],
            r["ping_ms"]["avg"],
            r["ping_ms"]["max"],
        );
    }
}
