//! `vswitch`: the daemon (`run`), the configuration checker (`check-config`), the operator
//! CLI (`ctl`), the frame tracer (`trace`), the tap remover (`cleanup`) and the built-in demo (`demo`).

mod capture;
mod cleanup;
mod cluster;
mod ctl_socket;
mod demo;
mod pcapng;
mod peer;
mod render;
mod server;
mod trace;
mod watch;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use vswitch::config::Config;
use vswitch::datapath::{Command, Daemon, DaemonOptions};
use vswitch::view::capture::CaptureDir;

/// Default control socket.
pub const DEFAULT_SOCKET: &str = "/run/vswitch/vswitch.sock";

#[derive(Parser)]
#[command(
    name = "vswitch",
    version,
    about = "A VIP-aware userspace virtual switch for compute hosts"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the switch in the foreground.
    Run {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Control socket path.
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Serve Prometheus metrics: `--metrics` alone is 127.0.0.1:9420, a bare port
        /// (`--metrics 9420`) listens on 127.0.0.1, an address is used as given
        /// (`--metrics 0.0.0.0:9420` for every interface).
        #[arg(long, value_name = "[ADDR:]PORT", num_args = 0..=1, default_missing_value = "")]
        metrics: Option<String>,
        /// Log format on stderr.
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
    },
    /// Validate a configuration file and explain what it sets up.
    CheckConfig {
        /// Configuration file (TOML).
        file: PathBuf,
    },
    /// Talk to a running switch. `--socket` and `--json` may come anywhere after `ctl`.
    Ctl {
        /// Control socket path.
        #[arg(long, global = true, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Print JSON instead of tables.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        what: CtlCmd,
    },
    /// What the switch would do with one frame, and why: each stage of the decision with
    /// the rule that decided it (read only). Live by default (the control socket); offline
    /// with `--config FILE`. See docs/trace.md.
    Trace(trace::TraceArgs),
    /// Delete the persistent taps of the config's `tap` ports (wherever they are now) and a
    /// stale control socket. Refuses while a switch answers on the socket. Never touches
    /// `netdev` interfaces.
    Cleanup {
        /// Configuration file (TOML) whose `tap` ports' taps to delete.
        #[arg(long, short)]
        config: PathBuf,
        /// Control socket path of that switch.
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Run the built-in demo: three VMs as network namespaces on taps (needs root).
    Demo {
        /// Keep the demo running at the end until Ctrl-C, to explore with `vswitch ctl`.
        #[arg(long)]
        keep: bool,
    },
}

#[derive(Subcommand)]
enum CtlCmd {
    /// Show ports, fdb, vips, stats or hosts.
    Show {
        #[arg(value_enum)]
        what: ShowWhat,
    },
    /// VIP operations.
    Vip {
        #[command(subcommand)]
        op: VipOp,
    },
    /// Set a port administratively up or down.
    Port {
        #[arg(value_enum)]
        state: UpDown,
        /// Port name.
        port: String,
    },
    /// Re-read the configuration file (an invalid one is refused; the running one stays).
    Reload,
    /// Print the Prometheus metrics text.
    Metrics,
    /// Follow the switch's events (VIP moves, claims, hijacks, ports up/down, reloads), one
    /// line each, until Ctrl-C or the switch stops; `--json`: one JSON object per line.
    Watch,
    /// Capture a port's frames with the switch's decision about each (pcapng, the decision
    /// as the packet comment: `drop: arp_spoof`, `forward: web2`, `tx`, ...) until COUNT
    /// frames, SECS seconds, Ctrl-C or the switch stops. Needs root or the control group.
    Capture {
        /// Port name.
        port: String,
        /// Only what the port received (every decision).
        #[arg(long, conflicts_with_all = ["tx", "drops"])]
        rx: bool,
        /// Only what the switch sent out of the port.
        #[arg(long, conflicts_with = "drops")]
        tx: bool,
        /// Only the received frames the switch dropped.
        #[arg(long)]
        drops: bool,
        /// Stop after COUNT frames.
        #[arg(short = 'c', long, value_name = "COUNT", value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
        /// Stop after SECS seconds.
        #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
        duration: Option<u64>,
        /// Write pcapng to FILE (`-`: stdout, e.g. `-w - | tshark -r -`).
        #[arg(short = 'w', long = "write", value_name = "FILE")]
        write: PathBuf,
    },
    /// Cluster VIP groups in etcd (multi-host mode).
    Cluster {
        #[command(subcommand)]
        op: ClusterOp,
    },
}

#[derive(Subcommand)]
enum ClusterOp {
    /// Validate FILE (a TOML of `[[vip]]` tables) and make it the cluster's set of VIP
    /// groups in etcd, in one transaction: groups not in FILE are deleted.
    Apply { file: PathBuf },
    /// Print the cluster's VIP groups (as `[[vip]]` tables).
    Show,
}

#[derive(Clone, Copy, ValueEnum)]
enum ShowWhat {
    Ports,
    Fdb,
    Vips,
    Stats,
    /// The cluster's hosts (multi-host mode).
    Hosts,
}

#[derive(Clone, Copy, ValueEnum)]
enum UpDown {
    Up,
    Down,
}

#[derive(Subcommand)]
enum VipOp {
    /// Make PORT the owner (active-passive) or an owner (active-active), bypassing damping.
    Move { vip: String, port: String },
    /// Remove PORT from the owners.
    Release { vip: String, port: String },
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // colour only on a terminal: logs that go to a file, a pipe or the journal stay plain
    // text (and NO_COLOR turns it off everywhere)
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => b.init(),
        LogFormat::Json => b.json().flatten_event(true).init(),
    }
}

fn run(config: &Path, socket: &Path, metrics: Option<&str>) -> Result<(), String> {
    let bytes = Config::read_file(config).map_err(|e| e.to_string())?;
    let cfg = Config::parse_file(config, &bytes).map_err(|e| e.to_string())?;
    let metrics = metrics
        .map(server::metrics_listen_addr)
        .transpose()
        .map_err(|e| format!("--metrics {e}"))?;
    tracing::info!(config = %config.display(), ports = cfg.ports.len(), vips = cfg.vips.len(), "starting");
    // The control group is taken at start; a reload does not change the socket's access.
    let cfg_group = cfg.switch.ctl_group.clone();
    // So is `[cluster]`: the session keeps the settings it started with.
    let cluster_settings = cfg.cluster.clone();
    let daemon = Daemon::start(
        cfg,
        DaemonOptions {
            config_path: Some(config.to_path_buf()),
            // a `ctl reload` of the unchanged file is the shortcut from the first one on
            config_bytes: Some(bytes),
            ..DaemonOptions::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let stop = daemon.stop_flag();
    let reload = daemon.reload_flag();
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| e.to_string())?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reload).map_err(|e| e.to_string())?;
    let ctl_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let group = &cfg_group;
    let access = server::CtlAccess {
        gid: group.gid,
        label: match &group.name {
            Some(n) => format!("{n} (gid {})", group.gid),
            None => match vswitch::config::group_name(group.gid) {
                Some(n) => format!("{n} (gid {})", group.gid),
                None => format!("gid {}", group.gid),
            },
        },
    };
    let label = access.label.clone();
    let cluster = match cluster_settings {
        None => None,
        Some(settings) => {
            tracing::info!(
                host = %settings.host,
                vtep = %settings.vtep,
                endpoints = ?settings.endpoints,
                "cluster mode: starting the etcd session"
            );
            match cluster::Cluster::start(settings, config.to_path_buf(), daemon.control()) {
                Ok(c) => Some(c),
                Err(e) => {
                    daemon.shutdown();
                    return Err(e);
                }
            }
        }
    };
    let view = cluster.as_ref().map(cluster::Cluster::state);
    let stop_cluster = |c: Option<cluster::Cluster>| {
        if let Some(c) = c {
            c.shutdown();
        }
    };
    if let Err(e) = server::serve_control(
        socket,
        daemon.control(),
        ctl_stop.clone(),
        access,
        view.clone(),
    ) {
        stop_cluster(cluster);
        daemon.shutdown();
        return Err(format!("control socket {}: {e}", socket.display()));
    }
    tracing::info!(socket = %socket.display(), group = %label, "control socket ready (mode 0660)");
    if let Some(addr) = metrics.as_deref() {
        match server::serve_metrics(addr, daemon.control(), ctl_stop.clone(), view) {
            Ok(a) => tracing::info!(addr = %a, "metrics at http://{a}/metrics"),
            Err(e) => {
                ctl_stop.store(true, Ordering::Relaxed);
                stop_cluster(cluster);
                daemon.shutdown();
                return Err(format!("metrics {addr}: {e}"));
            }
        }
    }
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    tracing::info!("stopping");
    ctl_stop.store(true, Ordering::Relaxed);
    stop_cluster(cluster);
    daemon.shutdown();
    let _ = std::fs::remove_file(socket);
    Ok(())
}

fn ctl(socket: &Path, json: bool, what: CtlCmd) -> Result<(), String> {
    let cmd = match what {
        CtlCmd::Show { what } => match what {
            ShowWhat::Ports => Command::ShowPorts,
            ShowWhat::Fdb => Command::ShowFdb,
            ShowWhat::Vips => Command::ShowVips,
            ShowWhat::Stats => Command::ShowStats,
            ShowWhat::Hosts => Command::ShowHosts,
        },
        CtlCmd::Cluster {
            op: ClusterOp::Apply { file },
        } => Command::ClusterApply {
            toml: std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?,
        },
        CtlCmd::Cluster {
            op: ClusterOp::Show,
        } => Command::ClusterShow,
        CtlCmd::Vip {
            op: VipOp::Move { vip, port },
        } => Command::VipMove { vip, port },
        CtlCmd::Vip {
            op: VipOp::Release { vip, port },
        } => Command::VipRelease { vip, port },
        CtlCmd::Port { state, port } => Command::PortAdmin {
            port,
            up: matches!(state, UpDown::Up),
        },
        CtlCmd::Reload => Command::Reload,
        CtlCmd::Metrics => Command::Metrics,
        CtlCmd::Watch => return watch::follow(socket, json),
        CtlCmd::Capture {
            port,
            rx,
            tx,
            drops,
            count,
            duration,
            write,
        } => {
            let dir = match (rx, tx, drops) {
                (true, _, _) => CaptureDir::Rx,
                (_, true, _) => CaptureDir::Tx,
                (_, _, true) => CaptureDir::Drops,
                _ => CaptureDir::Both,
            };
            let req = capture::Request {
                port,
                dir,
                count,
                duration,
                out: write,
            };
            return capture::run(socket, req);
        }
    };
    let view = server::call(socket, &cmd)?;
    if json {
        let text = serde_json::to_string_pretty(&view.to_json()).map_err(|e| e.to_string())?;
        emit(&format!("{text}\n"));
        return Ok(());
    }
    emit(&render::view(&view));
    Ok(())
}

/// Write to stdout; a reader that went away (`vswitch ctl show stats | head`) is not an
/// error worth a panic.
fn emit(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Run {
            config,
            socket,
            metrics,
            log_format,
        } => {
            init_logs(log_format);
            run(&config, &socket, metrics.as_deref())
        }
        Cmd::CheckConfig { file } => match Config::load(&file) {
            Ok(c) => {
                emit(&format!("{}: OK\n\n{}\n", file.display(), c.explain()));
                Ok(())
            }
            Err(e) => Err(format!("{}: invalid\n{e}", file.display())),
        },
        Cmd::Ctl { socket, json, what } => ctl(&socket, json, what),
        Cmd::Trace(a) => trace::run(&a).map(|text| emit(&text)),
        Cmd::Cleanup { config, socket } => cleanup::run(&config, &socket),
        Cmd::Demo { keep } => demo::run(keep),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vswitch: {e}");
            ExitCode::FAILURE
        }
    }
}
