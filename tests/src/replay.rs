//! Replays a pcap-golden scenario through the pipeline and the control state on a virtual
//! clock, and renders a human-readable transcript.
//!
//! A scenario is a directory with:
//! - `config.toml`: the switch configuration;
//! - `<port>.pcap`: the frames that arrive on port `<port>` (what the VM sent), any number
//!   of ports; timestamps are merged across files in arrival order (ties: port order);
//! - `events.txt` (optional): control events at times, one per line:
//!   `<secs> port-down|port-up|admin-down|admin-up <port>`, `<secs> vip-move <vip> <port>`,
//!   `<secs> vip-release <vip> <port>`, `<secs> tick`, `<secs> discover-all` (what the
//!   daemon does at start: ask every group's candidates who holds it); `#` starts a comment;
//! - `expected.txt`: the golden transcript. `UPDATE_GOLDEN=1` rewrites it; review the diff.
//!
//! Time 0 is the earliest frame or event of the scenario. Control timers (pending VIP claims,
//! liveness, FDB sweeps) fire at their deadlines between inputs, and after the last input
//! until no VIP deadline is left, so a pending claim is always seen to land.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use vip_table::{PortId, Timestamp};
use vswitch::config::Config;
use vswitch::control::{Outbound, Switch};
use vswitch::forward::{step, Recorder};
use vswitch::pipeline::{DropReason, Effects, Verdict};
use vswitch::port::VnetHdr;

use crate::describe::describe;
use crate::pcap;

/// One input of the replay.
#[derive(Debug)]
enum Input {
    Frame {
        port: PortId,
        index: usize,
        data: Vec<u8>,
    },
    Event(Vec<String>),
}

fn secs(t: Timestamp) -> String {
    format!("{:>10.6}", t.as_secs_f64())
}

fn fmt_ports(sw: &Switch, ports: impl Iterator<Item = PortId>) -> String {
    let v: Vec<&str> = ports.map(|p| sw.port_name(p)).collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(",")
    }
}

fn render_events(sw: &mut Switch, out: &mut String) {
    for e in sw.take_events() {
        let _ = writeln!(out, "      event: {e}");
    }
}

fn render_outbound(sw: &Switch, ob: &mut Vec<Outbound>, out: &mut String) {
    for o in ob.drain(..) {
        if let Some(c) = sw.counters(o.port) {
            c.tx(o.frame.as_bytes().len());
        }
        let _ = writeln!(
            out,
            "      switch sends on {}: {}",
            sw.port_name(o.port),
            describe(o.frame.as_bytes())
        );
    }
}

/// Load and replay a scenario; returns the transcript.
pub fn run(dir: &Path) -> Result<String, String> {
    let cfg_path = dir.join("config.toml");
    let config = Config::load(&cfg_path).map_err(|e| format!("{}: {e}", cfg_path.display()))?;
    let mut inputs: Vec<(u64, usize, Input)> = Vec::new();
    let mut seq = 0usize;
    for (i, p) in config.ports.iter().enumerate() {
        let path = dir.join(format!("{}.pcap", p.name));
        if !path.exists() {
            continue;
        }
        let recs = pcap::read(&path).map_err(|e| e.to_string())?;
        for (n, r) in recs.into_iter().enumerate() {
            inputs.push((
                r.ts_ns,
                seq,
                Input::Frame {
                    port: PortId(i as u32),
                    index: n + 1,
                    data: r.data,
                },
            ));
            seq += 1;
        }
    }
    let ev_path = dir.join("events.txt");
    let mut event_times = Vec::new();
    if ev_path.exists() {
        let text = std::fs::read_to_string(&ev_path).map_err(|e| e.to_string())?;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut words: Vec<String> = line.split_whitespace().map(String::from).collect();
            let t: f64 = words
                .remove(0)
                .parse()
                .map_err(|_| format!("events.txt: bad time in `{line}`"))?;
            event_times.push((t * 1e9) as u64);
            inputs.push(((t * 1e9) as u64, usize::MAX, Input::Event(words)));
        }
    }
    let origin = inputs
        .iter()
        .filter(|(_, s, _)| *s != usize::MAX)
        .map(|(t, _, _)| *t)
        .min()
        .unwrap_or(0);
    // Events are relative to the first frame; frames keep their capture offsets.
    for (t, s, _) in inputs.iter_mut() {
        if *s != usize::MAX {
            *t -= origin;
        }
    }
    inputs.sort_by_key(|(t, s, _)| (*t, *s));

    let mut sw = Switch::new(config, Timestamp::ZERO).map_err(|e| e.to_string())?;
    let mut out = String::new();
    let mut ob = Vec::new();
    let mut fx = Effects::default();
    let _ = writeln!(
        out,
        "# scenario {}",
        dir.file_name().map_or("?".into(), |n| n.to_string_lossy())
    );
    let tick_until = |sw: &mut Switch, t: Timestamp, out: &mut String, ob: &mut Vec<Outbound>| {
        for _ in 0..1000 {
            let d = sw.next_deadline();
            if d > t {
                break;
            }
            sw.tick(d, ob);
            let mut s = String::new();
            render_events(sw, &mut s);
            render_outbound(sw, ob, &mut s);
            if !s.is_empty() {
                let _ = writeln!(out, "[{}] timer", secs(d));
                out.push_str(&s);
            }
        }
    };
    let mut last = Timestamp::ZERO;
    for (t, _, input) in inputs {
        let now = Timestamp(t);
        last = now;
        tick_until(&mut sw, now, &mut out, &mut ob);
        match input {
            Input::Frame { port, index, data } => {
                let snap = sw.snapshot();
                // the daemon's own forwarding step: counters, learning, signals, sends
                let mut frame = data.clone();
                let mut rec = Recorder::default();
                let v = step(
                    &snap,
                    port,
                    &mut frame,
                    &VnetHdr::default(),
                    now,
                    &mut fx,
                    &mut rec,
                );
                let _ = writeln!(
                    out,
                    "[{}] {} #{index}: {}",
                    secs(now),
                    sw.port_name(port),
                    describe(&data)
                );
                let verdict = match v {
                    Verdict::Forward { port, rewrite_dst } => {
                        let unowned = if fx.vip_no_owner {
                            " (the VIP has no owner: delivered to the candidate its MAC names)"
                        } else {
                            ""
                        };
                        match rewrite_dst {
                            Some(m) => {
                                format!(
                                    "forward {} (dst mac rewritten to {m}){unowned}",
                                    sw.port_name(port)
                                )
                            }
                            None => format!("forward {}{unowned}", sw.port_name(port)),
                        }
                    }
                    Verdict::Flood => format!("flood {}", fmt_ports(&sw, fx.flood.iter())),
                    Verdict::Answered => {
                        let r = fx.reply.map(|r| describe(r.as_bytes())).unwrap_or_default();
                        format!("answered by the switch: {r}")
                    }
                    Verdict::ToSwitch => "to the switch (discovery answer)".to_string(),
                    Verdict::ToRemote { host, vlan, mac } => format!(
                        "to the remote owner on host {} (vlan {vlan}, dst mac {mac})",
                        sw.host_name(host)
                    ),
                    Verdict::Drop(r) => match (r, fx.malformed) {
                        (DropReason::Malformed, Some(m)) => format!("drop malformed ({m:?})"),
                        _ => format!("drop {r}"),
                    },
                };
                let _ = writeln!(out, "      => {verdict}");
                if let Some(l) = fx.learn {
                    if !matches!(l.op, vswitch::fdb::LearnOp::Refresh) {
                        let what = match l.op {
                            vswitch::fdb::LearnOp::Move { from } => {
                                format!("moved from {}", sw.port_name(from))
                            }
                            _ => "new".to_string(),
                        };
                        let _ = writeln!(
                            out,
                            "      learn: {} vlan {} on {} ({what})",
                            l.mac,
                            l.vlan,
                            sw.port_name(l.port)
                        );
                    }
                }
                for sig in rec.signals {
                    sw.signal(sig, now, &mut ob);
                }
                render_events(&mut sw, &mut out);
                render_outbound(&sw, &mut ob, &mut out);
            }
            Input::Event(words) => {
                let _ = writeln!(out, "[{}] control: {}", secs(now), words.join(" "));
                let arg = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
                let r: Result<(), String> = match arg(0) {
                    "port-down" | "port-up" => match sw.port_id(arg(1)) {
                        Some(p) => {
                            sw.set_port_oper(p, arg(0) == "port-up", now, &mut ob);
                            Ok(())
                        }
                        None => Err(format!("no port {}", arg(1))),
                    },
                    "admin-down" | "admin-up" => sw
                        .set_port_admin(arg(1), arg(0) == "admin-up", now, &mut ob)
                        .map_err(|e| e.to_string()),
                    "vip-move" => sw
                        .vip_move(arg(1), arg(2), now, &mut ob)
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                    "vip-release" => sw
                        .vip_release(arg(1), arg(2), now, &mut ob)
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                    "remote-candidate" => sw
                        .add_remote_candidate(arg(1), arg(2), arg(3))
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                    "remote-owner" | "remote-release" | "confirm-write" | "host-gone"
                    | "cluster-writes" => remote_event(&mut sw, &words, now, &mut ob, &mut out),
                    "tick" => Ok(()),
                    "discover-all" => {
                        sw.discover_all(now);
                        Ok(())
                    }
                    other => Err(format!("unknown event `{other}`")),
                };
                if let Err(e) = r {
                    let _ = writeln!(out, "      error: {e}");
                }
                render_events(&mut sw, &mut out);
                render_outbound(&sw, &mut ob, &mut out);
            }
        }
    }
    // Let every pending claim land.
    if let Some(d) = sw.vips().next_deadline() {
        tick_until(&mut sw, d.max(last), &mut out, &mut ob);
    }
    let _ = writeln!(out, "# final state");
    for (_, g) in sw.vips().groups() {
        let remote = g.remote_owners().iter().map(|o| {
            (
                format!(
                    "{} on {}",
                    sw.remote_port_name(o.at.port),
                    sw.host_name(o.at.host)
                ),
                o.mac,
                o.mac6,
            )
        });
        let owners: Vec<String> = g
            .owners()
            .iter()
            .map(|o| (sw.port_name(o.port).to_string(), o.mac, o.mac6))
            .chain(remote)
            .map(|(name, mac, mac6)| {
                if mac6 == mac {
                    format!("{name} ({mac})")
                } else {
                    format!("{name} ({mac}, IPv6 {mac6})")
                }
            })
            .collect();
        let _ = writeln!(
            out,
            "vip {} [{}]: owners {} epoch {} moves {} pending {} hijacks {}",
            g.name(),
            g.mode(),
            if owners.is_empty() {
                "none".to_string()
            } else {
                owners.join(", ")
            },
            g.epoch(),
            g.history().count(),
            g.pending()
                .map_or("none".to_string(), |p| sw.port_name(p.port).to_string()),
            g.hijack_count()
        );
    }
    for (i, p) in sw.ports().iter().enumerate() {
        let Some(c) = sw.counters(PortId(i as u32)) else {
            continue;
        };
        let v = c.values();
        let drops: Vec<String> = v
            .drops
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| format!("{r}={n}"))
            .collect();
        let _ = writeln!(
            out,
            "port {}: rx {} tx {} answered {} drops {}{}",
            p.name,
            v.rx_frames,
            v.tx_frames,
            v.answered,
            if drops.is_empty() {
                "-".to_string()
            } else {
                drops.join(" ")
            },
            if v.to_remote > 0 {
                format!(
                    " to_remote {} remote_no_tunnel {}",
                    v.to_remote, v.remote_no_tunnel
                )
            } else {
                String::new()
            }
        );
    }
    Ok(out)
}

/// The cluster events of `events.txt` (the commands the cluster agent gives the switch):
/// `remote-owner VIP HOST PORT MAC EPOCH REVISION`, `remote-release VIP HOST PORT EPOCH
/// REVISION`, `confirm-write VIP EPOCH REVISION`, `host-gone HOST`; `cluster-writes` writes
/// the records local changes ask to write to the store. An outcome other than "applied" is
/// written to the transcript.
fn remote_event(
    sw: &mut Switch,
    words: &[String],
    now: Timestamp,
    ob: &mut Vec<Outbound>,
    out: &mut String,
) -> Result<(), String> {
    use vip_table::{RemoteOutcome, Stamp};
    use vswitch::control::remote::RemoteOwnerRecord;
    let arg = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    let num = |i: usize| -> Result<u64, String> {
        arg(i)
            .parse()
            .map_err(|_| format!("`{}` is not a number", arg(i)))
    };
    let stamp = |i: usize| -> Result<Stamp, String> {
        Ok(Stamp {
            epoch: num(i)?,
            revision: num(i + 1)?,
        })
    };
    let outcome = match arg(0) {
        "remote-owner" => {
            let mac: vip_table::MacAddr = arg(4).parse().map_err(|e| format!("{e}"))?;
            let owner = RemoteOwnerRecord {
                host: arg(2),
                port: arg(3),
                mac,
                mac6: mac,
            };
            let s = stamp(5)?;
            sw.apply_remote_owner(arg(1), owner, s, now, ob)
        }
        "remote-release" => {
            let s = stamp(4)?;
            sw.apply_remote_release(arg(1), arg(2), arg(3), s, now, ob)
        }
        "confirm-write" => sw.confirm_write(arg(1), stamp(2)?),
        "cluster-writes" => {
            for w in sw.cluster_writes() {
                let owners: Vec<String> = w
                    .owners
                    .iter()
                    .map(|o| match &o.host {
                        Some(h) => format!("{} on {h} ({})", o.port, o.mac),
                        None => format!("{} ({})", o.port, o.mac),
                    })
                    .collect();
                let _ = writeln!(
                    out,
                    "      to write: vip {} owners [{}] epoch {} if revision is {}",
                    w.vip,
                    owners.join(", "),
                    w.epoch,
                    w.base_revision
                        .map_or("absent".to_string(), |r| r.to_string())
                );
            }
            return Ok(());
        }
        _ => {
            let moves = sw.host_gone(arg(1), now, ob);
            let _ = writeln!(out, "      host {} gone: {} move(s)", arg(1), moves.len());
            return Ok(());
        }
    }
    .map_err(|e| e.to_string())?;
    match outcome {
        RemoteOutcome::Applied(_) => {}
        RemoteOutcome::Stale { have, got, reason } => {
            let _ = writeln!(
                out,
                "      refused: {reason} (have epoch {} revision {}, got epoch {} revision {})",
                have.epoch, have.revision, got.epoch, got.revision
            );
        }
        RemoteOutcome::NotACandidate { .. } => {
            let _ = writeln!(out, "      refused: not a candidate");
        }
    }
    Ok(())
}

/// Every scenario directory under `root`, sorted.
pub fn scenario_dirs(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.join("config.toml").exists())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Replay a scenario and compare with `expected.txt` (or rewrite it with `UPDATE_GOLDEN=1`).
pub fn check(dir: &Path) -> Result<(), String> {
    let got = run(dir)?;
    let exp_path = dir.join("expected.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&exp_path, &got).map_err(|e| e.to_string())?;
        return Ok(());
    }
    let want = std::fs::read_to_string(&exp_path).map_err(|e| {
        format!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            exp_path.display()
        )
    })?;
    if got != want {
        let mut diff = String::new();
        for (i, (a, b)) in want.lines().zip(got.lines()).enumerate() {
            if a != b {
                let _ = writeln!(diff, "line {}:\n  expected: {a}\n  got:      {b}", i + 1);
                break;
            }
        }
        if diff.is_empty() {
            diff = format!(
                "length differs: expected {} lines, got {}",
                want.lines().count(),
                got.lines().count()
            );
        }
        return Err(format!(
            "{}: transcript differs from expected.txt\n{diff}\n--- full transcript ---\n{got}",
            dir.display()
        ));
    }
    Ok(())
}
