//! `vswitch trace`: what the switch would do with one frame, and why.
//!
//! Contract:
//! - the frame comes from exactly one of: a flow-like spec (`in_port=web1 arp
//!   spa=10.0.0.100 tpa=10.0.0.100`, [`vswitch::trace::flow`]), `--hex HEX`, or `--pcap FILE
//!   [--frame N]` (1-based); the ingress port from `in_port=` or `--port`. Fields a spec
//!   leaves out default from that port (its MAC, its first IPv4/IPv6 address) and, for the
//!   destination MAC of unicast IP, from what a correct neighbour cache holds (a port's
//!   MAC for its fixed IPs, a VIP's answer MAC);
//! - live (default): the `trace` command over the control socket; the running switch
//!   answers from its live state, read only (any local user may run it, like `show`);
//! - offline (`--config FILE`): a [`Switch`] built from the file as the daemon builds it at
//!   start, without opening a port: every port is up unless named by `--port-down`, the VIP
//!   owners are the config's `owner =` (plus the state file with `--restore-state`, its
//!   times taken as "long ago"). `--before SPEC` frames run through the real pipeline and
//!   [`Switch::apply`] first (learning, claims, damping), all at one fixed offline time, so
//!   the output does not depend on the clock. Nothing touches the network;
//! - output: the typed [`TraceView`] only — a detailed text (one line per stage with the
//!   rule that decided it, then the VIP group, the claim, the verdict, the generated
//!   frames and the summary), `--summary` (the summary line), or `--json` (the view's JSON);
//! - errors name the field (`in_port`, `--hex`, `--frame`, a spec field) and make the
//!   command exit non-zero; outside input never panics.

use std::fmt::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use vip_table::{MacAddr, Timestamp};
use vswitch::config::Config;
use vswitch::control::Switch;
use vswitch::datapath::Command;
use vswitch::pipeline::{process, Effects, RxMeta};
use vswitch::trace::flow::{Flow, PortDefaults};
use vswitch::trace::{decode_hex, encode_hex, trace_frame};
use vswitch::view::{StageOutcome, TraceView, View};

/// When an offline switch is built (its clock's zero).
const OFFLINE_START: Timestamp = Timestamp(0);
/// When offline frames (`--before` and the traced one) arrive: one second after the start.
const OFFLINE_NOW: Timestamp = Timestamp(1_000_000_000);

/// `vswitch trace` arguments.
#[derive(clap::Args, Debug)]
pub struct TraceArgs {
    /// The frame as a flow-like spec: a protocol keyword (arp ip icmp udp tcp ipv6 icmp6
    /// udp6 tcp6 ns na) and field=value pairs (in_port dl_src dl_dst vlan op sha spa tha tpa
    /// nw_src nw_dst ttl tp_src tp_dst target lladdr flags len). Fields left out default
    /// from the ingress port.
    #[arg(value_name = "SPEC")]
    spec: Vec<String>,
    /// The whole Ethernet frame in hex instead of a spec.
    #[arg(long, value_name = "HEX", conflicts_with = "pcap")]
    hex: Option<String>,
    /// Take the frame from a pcap file (Ethernet) instead of a spec.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Which frame of the pcap file (1 is the first).
    #[arg(
        long = "frame",
        value_name = "N",
        default_value_t = 1,
        requires = "pcap"
    )]
    frame_no: usize,
    /// The ingress port (or `in_port=` in the spec).
    #[arg(long, value_name = "NAME")]
    port: Option<String>,
    /// Offline: trace on a switch built from this configuration instead of asking the
    /// running one.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Offline: take this port as down (its device is gone). Repeatable.
    #[arg(long = "port-down", value_name = "NAME", requires = "config")]
    port_down: Vec<String>,
    /// Offline: restore the VIP state file of the config's `state_dir` first, as the
    /// daemon does at start (its times count as long ago).
    #[arg(long, requires = "config")]
    restore_state: bool,
    /// Offline: a frame (a spec; `in_port=` defaults to the traced frame's port) traced and
    /// applied before the traced one, e.g. a first claim. Repeatable, applied in order.
    #[arg(long, value_name = "SPEC", requires = "config")]
    before: Vec<String>,
    /// Control socket of the running switch (live mode).
    #[arg(long, default_value = crate::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Print only the one-line summary.
    #[arg(long, conflicts_with = "json")]
    summary: bool,
    /// Print the trace as JSON.
    #[arg(long)]
    json: bool,
}

/// What spec defaults are taken from: the switch's ports and VIP groups.
#[derive(Debug, Default)]
struct Site {
    ports: Vec<SitePort>,
    /// A VIP address and the MAC a correct neighbour cache holds for it.
    vips: Vec<(IpAddr, MacAddr)>,
}

#[derive(Debug)]
struct SitePort {
    name: String,
    mac: MacAddr,
    ips: Vec<IpAddr>,
}

impl Site {
    fn of_switch(sw: &Switch) -> Site {
        let ports = sw
            .config()
            .ports
            .iter()
            .map(|p| SitePort {
                name: p.name.clone(),
                mac: p.mac,
                ips: p.ips.clone(),
            })
            .collect();
        let vips = sw
            .vips()
            .groups()
            .flat_map(|(_, g)| {
                g.addresses()
                    .iter()
                    .filter_map(|a| Some((*a, g.answer_mac_for(*a)?)))
                    .collect::<Vec<_>>()
            })
            .collect();
        Site { ports, vips }
    }

    fn of_daemon(socket: &Path) -> Result<Site, String> {
        let View::Ports(pv) = crate::server::call(socket, &Command::ShowPorts)? else {
            return Err("bad answer from the switch to show ports".into());
        };
        let View::Vips(vv) = crate::server::call(socket, &Command::ShowVips)? else {
            return Err("bad answer from the switch to show vips".into());
        };
        let ip = |s: &str| s.split('/').next().and_then(|a| a.parse::<IpAddr>().ok());
        let mut ports = Vec::new();
        for p in pv {
            let Ok(mac) = p.mac.parse::<MacAddr>() else {
                continue;
            };
            ports.push(SitePort {
                name: p.name,
                mac,
                ips: p.ips.iter().filter_map(|s| ip(s)).collect(),
            });
        }
        let mut vips = Vec::new();
        for v in vv {
            for a in v.addresses.iter().filter_map(|s| ip(s)) {
                let answer = if a.is_ipv4() {
                    v.answer_mac.as_deref()
                } else {
                    v.answer_mac6.as_deref()
                };
                let owner = v.owners.first().map(|o| {
                    if a.is_ipv4() {
                        o.mac.as_str()
                    } else {
                        o.mac6.as_str()
                    }
                });
                if let Some(m) = answer.or(owner).and_then(|m| m.parse().ok()) {
                    vips.push((a, m));
                }
            }
        }
        Ok(Site { ports, vips })
    }

    fn port(&self, name: &str) -> Result<&SitePort, String> {
        self.ports.iter().find(|p| p.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.ports.iter().map(|p| p.name.as_str()).collect();
            format!(
                "in_port: unknown port {name:?} (ports: {})",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )
        })
    }

    /// Build the frame of `flow` arriving on `port`.
    fn build(&self, flow: &Flow, port: &str) -> Result<Vec<u8>, String> {
        let p = self.port(port)?;
        let d = PortDefaults {
            mac: p.mac,
            ipv4: p.ips.iter().find_map(|i| match i {
                IpAddr::V4(a) => Some(*a),
                IpAddr::V6(_) => None,
            }),
            ipv6: p.ips.iter().find_map(|i| match i {
                IpAddr::V6(a) => Some(*a),
                IpAddr::V4(_) => None,
            }),
        };
        let neighbour = |ip: IpAddr| {
            self.ports
                .iter()
                .find(|q| q.ips.contains(&ip))
                .map(|q| q.mac)
                .or_else(|| self.vips.iter().find(|(a, _)| *a == ip).map(|x| x.1))
        };
        flow.build(&d, &neighbour).map_err(|e| e.to_string())
    }
}

/// Where the frame comes from, before the switch is asked.
enum Input {
    Spec(Flow),
    Bytes(Vec<u8>),
}

/// Read the arguments into the ingress port and the frame's source.
fn input(a: &TraceArgs) -> Result<(String, Input), String> {
    let flow = Flow::parse(&a.spec.join(" ")).map_err(|e| e.to_string())?;
    let port = match (&flow.in_port, &a.port) {
        (Some(x), Some(y)) if x != y => {
            return Err(format!(
                "in_port: {x:?} in the spec and --port {y:?} disagree"
            ))
        }
        (Some(x), _) | (None, Some(x)) => x.clone(),
        (None, None) => {
            return Err("in_port: give the ingress port (in_port=NAME or --port NAME)".into())
        }
    };
    let given = [flow.has_frame(), a.hex.is_some(), a.pcap.is_some()]
        .iter()
        .filter(|x| **x)
        .count();
    if given != 1 {
        return Err(format!(
            "give the frame one way: a flow spec (arp tpa=...), --hex HEX or --pcap FILE ({given} given)"
        ));
    }
    if let Some(h) = &a.hex {
        return Ok((
            port,
            Input::Bytes(decode_hex(h).map_err(|e| format!("--hex: {e}"))?),
        ));
    }
    if let Some(path) = &a.pcap {
        let bytes = std::fs::read(path).map_err(|e| format!("--pcap {}: {e}", path.display()))?;
        let recs =
            vswitch::pcap::parse(&bytes).map_err(|e| format!("--pcap {}: {e}", path.display()))?;
        if a.frame_no == 0 {
            return Err("--frame: 0 is not a frame number (the first frame is 1)".into());
        }
        let count = recs.len();
        let n = a.frame_no;
        return match recs.into_iter().nth(n - 1) {
            Some(r) if r.data.len() <= vswitch::trace::MAX_FRAME_LEN => {
                Ok((port, Input::Bytes(r.data)))
            }
            Some(r) => Err(format!(
                "--frame {n}: {} bytes, at most {}",
                r.data.len(),
                vswitch::trace::MAX_FRAME_LEN
            )),
            None => Err(format!(
                "--frame {n}: {} has {count} frame{}",
                path.display(),
                if count == 1 { "" } else { "s" }
            )),
        };
    }
    Ok((port, Input::Spec(flow)))
}

/// Run `vswitch trace`; the text to print.
pub fn run(a: &TraceArgs) -> Result<String, String> {
    let (port, inp) = input(a)?;
    let (trace, before) = match &a.config {
        Some(path) => offline(a, path, &port, inp)?,
        None => {
            if !a.before.is_empty() || !a.port_down.is_empty() {
                return Err("--before and --port-down need --config (offline mode)".into());
            }
            let frame = match inp {
                Input::Bytes(b) => b,
                Input::Spec(f) => Site::of_daemon(&a.socket)?.build(&f, &port)?,
            };
            let cmd = Command::Trace {
                port,
                frame: encode_hex(&frame),
            };
            match crate::server::call(&a.socket, &cmd)? {
                View::Trace(t) => (*t, Vec::new()),
                _ => return Err("bad answer from the switch to trace".into()),
            }
        }
    };
    if a.json {
        let mut s = serde_json::to_string_pretty(&trace).map_err(|e| e.to_string())?;
        s.push('\n');
        return Ok(s);
    }
    if a.summary {
        return Ok(format!("{}\n", trace.summary));
    }
    Ok(render(&trace, &before))
}

/// A `--before` frame: its port and what it did.
struct Before {
    port: String,
    summary: String,
}

/// Offline: build the switch, apply `--port-down` and `--before`, trace.
fn offline(
    a: &TraceArgs,
    path: &Path,
    port: &str,
    inp: Input,
) -> Result<(TraceView, Vec<Before>), String> {
    let cfg = Config::load(path).map_err(|e| format!("{}: invalid\n{e}", path.display()))?;
    let state_path = vswitch::state::path_in(&cfg.switch.state_dir);
    let mut sw = Switch::new(cfg, OFFLINE_START).map_err(|e| e.to_string())?;
    if a.restore_state {
        match vswitch::state::load(&state_path) {
            // an empty boot id: the saved times are taken as long ago
            Ok(Some(saved)) => {
                saved.restore_into(&mut sw, "");
            }
            Ok(None) => {
                return Err(format!(
                    "--restore-state: no state file at {}",
                    state_path.display()
                ))
            }
            Err(e) => return Err(format!("--restore-state: {}: {e}", state_path.display())),
        }
    }
    let site = Site::of_switch(&sw);
    site.port(port)?;
    let mut out = Vec::new();
    let mut down = Vec::new();
    for name in &a.port_down {
        let pid = sw
            .port_id(name)
            .ok_or_else(|| format!("--port-down: unknown port {name:?}"))?;
        down.push((pid, false));
    }
    if !down.is_empty() {
        sw.set_ports_oper(&down, OFFLINE_START, &mut out);
    }
    let mut before = Vec::new();
    for (i, spec) in a.before.iter().enumerate() {
        let n = i + 1;
        let flow = Flow::parse(spec).map_err(|e| format!("--before {n}: {e}"))?;
        let bport = flow.in_port.clone().unwrap_or_else(|| port.to_string());
        // the defaults come from the switch as the earlier frames left it
        let frame = Site::of_switch(&sw)
            .build(&flow, &bport)
            .map_err(|e| format!("--before {n}: {e}"))?;
        let t = trace_frame(&sw, &bport, &frame, OFFLINE_NOW)
            .map_err(|e| format!("--before {n}: {e}"))?;
        let pid = sw
            .port_id(&bport)
            .ok_or_else(|| format!("--before {n}: in_port: unknown port {bport:?}"))?;
        let snap = sw.snapshot();
        let mut fx = Effects::default();
        let _verdict = process(&snap, pid, &frame, RxMeta::default(), OFFLINE_NOW, &mut fx);
        sw.apply(&fx, OFFLINE_NOW, &mut out);
        before.push(Before {
            port: bport,
            summary: t.summary,
        });
    }
    let frame = match inp {
        Input::Bytes(b) => b,
        Input::Spec(f) => Site::of_switch(&sw).build(&f, port)?,
    };
    let t = trace_frame(&sw, port, &frame, OFFLINE_NOW).map_err(|e| e.to_string())?;
    Ok((t, before))
}

/// A stage's name for a human.
fn stage_label(stage: &str) -> &str {
    match stage {
        "port_security" => "port security",
        "vip" => "vip claim check",
        "claim" => "claim decision",
        "to_switch" => "to the switch",
        "responder" => "arp/nd responder",
        "steer" => "vip steering",
        "fdb" => "fdb lookup",
        "dest_check" => "destination check",
        other => other,
    }
}

fn outcome_label(o: StageOutcome) -> &'static str {
    match o {
        StageOutcome::Pass => "pass",
        StageOutcome::Fail => "FAIL",
        StageOutcome::Info => "info",
    }
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// The detailed text of a trace.
fn render(t: &TraceView, before: &[Before]) -> String {
    let mut o = String::new();
    for (i, b) in before.iter().enumerate() {
        let _ = writeln!(o, "before {} (on {}): {}", i + 1, b.port, b.summary);
    }
    if !before.is_empty() {
        o.push('\n');
    }
    let _ = writeln!(o, "frame on {}: {}", t.port, t.frame);
    o.push('\n');
    let w = t
        .stages
        .iter()
        .map(|s| stage_label(&s.stage).len())
        .max()
        .unwrap_or(0);
    for (i, s) in t.stages.iter().enumerate() {
        let _ = writeln!(
            o,
            "{:>2}. {:<w$}  {}  {}",
            i + 1,
            stage_label(&s.stage),
            outcome_label(s.outcome),
            s.rule
        );
    }
    o.push('\n');
    if let Some(v) = &t.vip {
        let _ = write!(
            o,
            "vip table (before this frame): {} ({}), candidates {}, owners {}, epoch {}",
            v.name,
            v.mode,
            list(&v.candidates),
            list(&v.owners),
            v.epoch
        );
        if let Some(p) = &v.pending {
            let _ = write!(o, ", pending claim from {p}");
        }
        if v.max_moves == 0 {
            o.push_str(", damping off");
        } else {
            let _ = write!(
                o,
                ", damping {} of {} moves in {:.1}s",
                v.moves_in_window, v.max_moves, v.window_secs
            );
        }
        if let Some(d) = v.damped_for_secs {
            let _ = write!(o, " (a claim now would be held {d:.1}s)");
        }
        o.push('\n');
    }
    if let Some(c) = &t.claim {
        let _ = write!(
            o,
            "claim: {} ({}) for vip {}: {}",
            c.port, c.mac, c.vip, c.outcome
        );
        if let Some(f) = &c.from {
            let _ = write!(o, ", owner before {f}");
        }
        let _ = write!(o, ", epoch {}", c.epoch);
        if let Some(d) = c.due_in_secs {
            let _ = write!(o, ", due in {d:.1}s");
        }
        o.push('\n');
    }
    let v = &t.verdict;
    let _ = write!(o, "verdict: {}", v.action);
    if let Some(r) = &v.reason {
        let _ = write!(o, " ({r})");
    }
    if !v.ports.is_empty() {
        let _ = write!(o, " to ports {}", v.ports.join(", "));
    }
    if !v.hosts.is_empty() {
        let _ = write!(o, " to hosts {}", v.hosts.join(", "));
    }
    if let Some(m) = &v.rewrite_dst {
        let _ = write!(o, ", destination MAC rewritten to {m}");
    }
    o.push('\n');
    if t.generated.is_empty() {
        o.push_str("generated: none\n");
    } else {
        o.push_str("generated:\n");
        for g in &t.generated {
            let _ = writeln!(o, "  {} out of {}: {}", g.why, g.port, g.frame);
        }
    }
    let _ = writeln!(o, "summary: {}", t.summary);
    o
}
