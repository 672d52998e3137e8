//! Live multi-host HA: a real keepalived pair across hosts (root, network namespaces, real
//! etcd; skipped otherwise). The MASTER VM `web1` is on host-a, the BACKUP `web2` on
//! host-b, and the client `cli` on host-c has a **permanent** ARP (or NDP) entry for the
//! VIP naming web1's MAC: the stale cache every failover leaves behind. The VIP group is a
//! cluster object (`vswitch ctl cluster apply`), not in any host's file.
//!
//! Each phase makes web1 fail in one way (keepalived stopped, keepalived killed, the VM's
//! device deleted) or come back, while the client probes a UDP echo service on the VIP at
//! 100 Hz; it ends when keepalived's new MASTER holds the VIP, every host's switch names
//! it as the owner, and the client's answers come from it. What crosses hosts: VRRP
//! adverts (overlay, to candidates only), the claim (etcd), the client's frames (overlay,
//! steered to the owner's host with the MAC rewritten). The group has flap damping off
//! (`damping_max_moves = 0`): five moves in a few seconds would otherwise hold the fifth
//! claim back (damping has its own tests in `live_ha`). Outage bounds are generous
//! (keepalived's detection + 2 s): they tell "failed over" from "blackholed"; the numbers
//! are printed for the record.
//!
//! Run: `cargo test -p agent --test live_cluster_ha -- --test-threads=1`.

#![allow(clippy::unwrap_used)]

mod cluster_lab;
mod common;

use std::time::{Duration, Instant};

use cluster_lab::{can_run, wait_until, Background, Cluster, HostSpec};
use common::{parse_watch_report, UDP_ECHO_PY, UDP_WATCH_PY};
use serde_json::Value;

/// Lease TTL of the test hosts.
const TTL: u32 = 3;
/// The UDP echo service on the VIP.
const PORT: &str = "7000";
/// Client probe rate.
const HZ: &str = "100";
/// keepalived's advert interval (VRRPv3, 100 ms: detection ≈ 0.4 s).
const ADVERT: f64 = 0.1;
const VIP4: &str = "10.251.0.100";
const VIP6: &str = "fd51::100";

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// keepalived's failure detection (3 × advert + skew < 4 × advert) + 2 s.
fn outage_bound() -> Duration {
    secs(4.0 * ADVERT + 2.0)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Transport {
    Multicast,
    Unicast,
    Ipv6,
}

impl Transport {
    fn vip(self) -> &'static str {
        if self == Transport::Ipv6 {
            VIP6
        } else {
            VIP4
        }
    }
}

/// The owners of group `web` as host `host`'s switch sees them (local and remote ports).
fn owners(c: &Cluster, host: &str) -> Vec<String> {
    let Ok(Value::Array(vips)) = c.ctl_json(host, &["show", "vips"]) else {
        return Vec::new();
    };
    let Some(g) = vips.iter().find(|g| g["name"] == "web") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for key in ["owners", "remote_owners"] {
        if let Some(list) = g[key].as_array() {
            out.extend(
                list.iter()
                    .filter_map(|o| o["port"].as_str().map(str::to_string)),
            );
        }
    }
    out.sort();
    out
}

struct Ha {
    c: Cluster,
    t: Transport,
    ka1: Option<Background>,
    ka2: Option<Background>,
    _echo: Vec<Background>,
    runs: u32,
}

impl Ha {
    fn new(name: &str, t: Transport) -> Ha {
        let mut c = Cluster::new(name, TTL);
        c.add_host_spec("host-a", 1, HostSpec::default().vm("web1"));
        c.add_host_spec("host-b", 2, HostSpec::default().vm("web2"));
        c.add_host_spec("host-c", 3, HostSpec::default().vm("cli"));
        let vips = c.write_file(
            "vips.toml",
            &format!(
                "[[vip]]\nname = \"web\"\naddresses = [{:?}]\nmode = \"active-passive\"\ncandidates = [\"web1\", \"web2\"]\ndamping_max_moves = 0\n",
                t.vip()
            ),
        );
        let (ok, out) = c.ctl("host-a", &["cluster", "apply", vips.to_str().unwrap()]);
        assert!(ok, "cluster apply: {out}\n{}", c.logs());
        for h in ["host-a", "host-b", "host-c"] {
            let listed = wait_until(
                secs(20.0),
                || matches!(c.ctl_json(h, &["show", "vips"]), Ok(Value::Array(v)) if v.iter().any(|g| g["name"] == "web")),
            );
            assert!(
                listed.is_some(),
                "{h} does not list the cluster group\n{}",
                c.logs()
            );
        }
        // every host knows the others (the overlay needs their VTEPs and ports)
        let meshed = wait_until(secs(20.0), || {
            ["host-a", "host-b", "host-c"]
                .iter()
                .all(|h| c.listed(h).len() == 3)
        });
        assert!(
            meshed.is_some(),
            "hosts do not see each other\n{}",
            c.logs()
        );
        // IPv6 VRRP is sent from the link-local address: wait until DAD is done with it
        for vm in ["web1", "web2", "cli"] {
            let ready = wait_until(secs(10.0), || {
                let (ok, out) = c.vm_run(
                    vm,
                    &["ip", "-6", "addr", "show", "dev", "eth0", "tentative"],
                );
                ok && out.trim().is_empty()
            });
            assert!(ready.is_some(), "{vm}: IPv6 addresses still tentative");
        }
        let echo = ["web1", "web2"]
            .iter()
            .map(|vm| {
                let b = c.spawn_logged(
                    vm,
                    &format!("echo-{vm}.log"),
                    &["python3", "-c", UDP_ECHO_PY, PORT, vm],
                );
                assert!(
                    b.wait_for("READY", secs(10.0)),
                    "echo server in {vm}: {}",
                    b.output()
                );
                b
            })
            .collect();
        let mut ha = Ha {
            c,
            t,
            ka1: None,
            ka2: None,
            _echo: echo,
            runs: 0,
        };
        ha.ka1 = Some(ha.start_ka(1));
        ha.wait_holder("web1", secs(15.0));
        ha.wait_owner("web1", secs(15.0));
        ha.ka2 = Some(ha.start_ka(2));
        let k2 = ha.ka2.as_ref().unwrap();
        assert!(
            k2.wait_for("Entering BACKUP", secs(10.0)),
            "web2 did not enter BACKUP: {}",
            k2.output()
        );
        // web2 hears web1's adverts across the overlay: it stays BACKUP past detection
        std::thread::sleep(secs(4.0 * ADVERT + 0.5));
        assert!(
            !k2.output().contains("Entering MASTER"),
            "web2 became MASTER: it does not hear web1's adverts across hosts\n{}\n{}",
            k2.output(),
            ha.c.logs()
        );
        // the client's stale, permanent cache entry: web1's MAC
        let web1_mac = ha.c.vm("web1").mac.clone();
        let fam = if t == Transport::Ipv6 { "-6" } else { "-4" };
        let (ok, out) = ha.c.vm_run(
            "cli",
            &[
                "ip",
                fam,
                "neigh",
                "replace",
                t.vip(),
                "lladdr",
                &web1_mac,
                "nud",
                "permanent",
                "dev",
                "eth0",
            ],
        );
        assert!(ok, "pin the client's neighbour entry: {out}");
        ha
    }

    fn conf(&self, i: u8) -> String {
        let (me, peer) = if i == 1 {
            ("web1", "web2")
        } else {
            ("web2", "web1")
        };
        let (state, prio) = if i == 1 {
            ("MASTER", 150)
        } else {
            ("BACKUP", 100)
        };
        let mut inst = vec![
            format!("state {state}"),
            "interface eth0".to_string(),
            "virtual_router_id 51".to_string(),
            format!("priority {prio}"),
            format!("advert_int {ADVERT}"),
        ];
        if self.t == Transport::Unicast {
            inst.push(format!("unicast_src_ip {}", self.c.vm(me).ip4));
            inst.push(format!(
                "unicast_peer {{\n        {}\n    }}",
                self.c.vm(peer).ip4
            ));
        }
        let len = if self.t == Transport::Ipv6 { 128 } else { 32 };
        inst.push(format!(
            "virtual_ipaddress {{\n        {}/{len} dev eth0\n    }}",
            self.t.vip()
        ));
        format!(
            "global_defs {{\n    router_id {me}\n    vrrp_version 3\n}}\n\nvrrp_instance VI_1 {{\n{}\n}}\n",
            inst.iter().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
        )
    }

    fn start_ka(&mut self, i: u8) -> Background {
        self.runs += 1;
        let vm = if i == 1 { "web1" } else { "web2" };
        let base = format!("ka-{vm}-{}", self.runs);
        let conf = self.c.write_file(&format!("{base}.conf"), &self.conf(i));
        let p = |ext: &str| {
            self.c
                .dir
                .join(format!("{base}.{ext}"))
                .to_string_lossy()
                .into_owned()
        };
        let (pid, vrrp, chk) = (p("pid"), p("vrrp.pid"), p("chk.pid"));
        self.c.spawn_logged(
            vm,
            &format!("{base}.log"),
            &[
                "keepalived",
                "--dont-fork",
                "--log-console",
                "--log-detail",
                "--no-syslog",
                "--vrrp",
                "--use-file",
                conf.to_str().unwrap(),
                "--pid",
                &pid,
                "--vrrp_pid",
                &vrrp,
                "--checkers_pid",
                &chk,
            ],
        )
    }

    fn holds(&self, vm: &str) -> bool {
        let (_, out) = self.c.vm_run(vm, &["ip", "-o", "addr", "show"]);
        out.contains(&format!(" {}/", self.t.vip()))
    }

    #[track_caller]
    fn wait_holder(&self, vm: &str, timeout: Duration) {
        let ok = wait_until(timeout, || self.holds(vm));
        assert!(
            ok.is_some(),
            "{vm} does not hold the VIP (keepalived MASTER?)\n{}",
            self.c.logs()
        );
    }

    /// Every host's switch names `vm` as the one owner.
    #[track_caller]
    fn wait_owner(&self, vm: &str, timeout: Duration) -> Duration {
        let t0 = Instant::now();
        for h in ["host-a", "host-b", "host-c"] {
            let ok = wait_until(timeout, || owners(&self.c, h) == [vm]);
            assert!(
                ok.is_some(),
                "{h}: owner is {:?}, expected {vm}\n{:?}\n{}",
                owners(&self.c, h),
                self.c.ctl_json(h, &["show", "vips"]),
                self.c.logs()
            );
        }
        t0.elapsed()
    }

    /// Runs `act` while the client probes the VIP; then waits until `to` holds the VIP,
    /// every host names it the owner and the client's answers come from it.
    #[track_caller]
    fn phase(&mut self, what: &str, from: &str, to: &str, act: impl FnOnce(&mut Ha)) {
        let watch = self.c.spawn_logged(
            "cli",
            &format!("watch-{}.log", self.runs),
            &["python3", "-c", UDP_WATCH_PY, self.t.vip(), PORT, HZ],
        );
        assert!(
            watch.wait_for(&format!("ANSWER {from} "), secs(10.0)),
            "{what}: before the change the VIP should answer from {from}: {}\n{:?}\n{}",
            watch.output(),
            self.c.ctl_json("host-c", &["show", "vips"]),
            self.c.logs()
        );
        std::thread::sleep(secs(0.3));
        let t0 = Instant::now();
        act(self);
        self.wait_holder(to, secs(15.0));
        let ka_took = t0.elapsed();
        self.wait_owner(to, secs(15.0));
        let owner_took = t0.elapsed();
        assert!(
            watch.wait_for(&format!("ANSWER {to} "), secs(10.0)),
            "{what}: the client gets no answer from {to}: {}\n{:?}\n{}",
            watch.output(),
            self.c.ctl_json("host-c", &["show", "vips"]),
            self.c.logs()
        );
        std::thread::sleep(secs(0.5));
        let out = watch.stop_with(libc::SIGINT, secs(5.0));
        let r = parse_watch_report(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
        println!(
            "{what}: {to} holds the VIP after {:.2} s, every switch names it after {:.2} s; client: {r}",
            ka_took.as_secs_f64(),
            owner_took.as_secs_f64()
        );
        let last = r.last_answerer();
        assert!(
            last.is_some_and(|(w, n)| w == to && n >= 10) && r.lost_at_end() == 0,
            "{what}: the client's last answers should come from {to} without loss: {r}"
        );
        assert!(
            r.max_gap_ms <= outage_bound().as_secs_f64() * 1000.0,
            "{what}: the client's outage exceeds keepalived's detection + 2 s: {r}"
        );
    }

    fn stop_ka1(&mut self, sig: libc::c_int) {
        let k = self.ka1.take().unwrap();
        let out = k.stop_with(sig, secs(10.0));
        if sig == libc::SIGTERM {
            assert!(
                out.contains("Stopped") || out.contains("Stopping"),
                "keepalived did not stop cleanly:\n{out}"
            );
        }
    }
}

fn failover_suite(name: &str, t: Transport, crash: bool) {
    if !can_run() {
        return;
    }
    let mut ha = Ha::new(name, t);
    ha.phase("graceful stop", "web1", "web2", |h| {
        h.stop_ka1(libc::SIGTERM)
    });
    ha.phase("failback", "web2", "web1", |h| h.ka1 = Some(h.start_ka(1)));
    ha.phase("keepalived SIGKILL", "web1", "web2", |h| {
        h.stop_ka1(libc::SIGKILL)
    });
    ha.phase("failback after kill", "web2", "web1", |h| {
        // the killed instance left the VIP on web1's eth0; a new one takes it over again
        h.ka1 = Some(h.start_ka(1))
    });
    if crash {
        ha.phase("VM crash", "web1", "web2", |h| {
            // the VM dies with its device: keepalived stops advertising, the port vanishes
            if let Some(k) = h.ka1.take() {
                let _ = k.stop_with(libc::SIGKILL, secs(5.0));
            }
            let ns = h.c.host("host-a").ns.clone();
            let dev = h.c.vm("web1").host_if.clone();
            let (ok, out) = h.c.host_run("host-a", &["ip", "link", "del", &dev]);
            assert!(ok, "delete {dev} in {ns}: {out}");
        });
    }
    // the switches never saw more than one owner at the end
    for h in ["host-a", "host-b", "host-c"] {
        assert_eq!(owners(&ha.c, h).len(), 1, "{h}");
    }
}

#[test]
fn keepalived_across_hosts_multicast() {
    failover_suite("kamc", Transport::Multicast, true);
}

#[test]
fn keepalived_across_hosts_unicast_peer() {
    failover_suite("kauc", Transport::Unicast, false);
}

#[test]
fn keepalived_across_hosts_ipv6_vip() {
    failover_suite("ka6", Transport::Ipv6, false);
}
