//! Benchmark (not a pass/fail test on timing; `#[ignore]`): the switch state at the three
//! sizes of the cost curve (`benches/common/scale.rs`: the state the pipeline benchmark
//! measures), each size in a child process of its own so that its RSS is its own.
//!
//! `cargo test --release -p vswitch --test reload_scale -- --ignored --nocapture`
//! (`VSWITCH_SCALES=small,medium,large` picks sizes; `VSWITCH_RELOADS` the number of
//! reloads for the RSS growth, default 100).
//!
//! - `pure_state_at_scale`: the pure state: `Config::from_toml_str` + `Switch::new` + the
//!   learned MACs, as the process' RSS (heap trimmed, as the daemon does); a no-op
//!   `Switch::reload`; a full reload (parse + `Switch::reload` of an edited file); RSS after
//!   1 and after N reloads (each followed by a heap trim, as the daemon's).
//! - `daemon_at_scale`: a real `Daemon::start` from the file (ports bound to interfaces
//!   that do not exist: they stay down, nothing is created, no root needed), then `ctl
//!   reload` of the unchanged file (the daemon's shortcut, from the first reload on, as
//!   `vswitch run` passes the file's bytes) and of an edited file, and the
//!   daemon process' RSS (no learned MACs: no frames flow).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../benches/common/scale.rs"]
mod scale;

use std::process::Command as Process;
use std::time::{Duration, Instant};

use scale::Scale;
use vip_table::Timestamp;
use vswitch::config::Config;
use vswitch::control::Switch;
use vswitch::datapath::{Command, Daemon, DaemonOptions};

fn rss_mib() -> f64 {
    vswitch::datapath::heap::trim_heap();
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1 << 20) as f64
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The same file with one more A/P group: a reload that must apply.
fn edited(text: &str, n: usize) -> String {
    format!(
        "{text}\n[[vip]]\nname = \"extra{n}\"\naddresses = [\"10.126.0.{}\"]\ncandidates = [\"p0\", \"p1\"]\n",
        n % 250 + 1
    )
}

/// Run `test` once per selected size, each in a child process (this test binary, with
/// `VSWITCH_SCALE_CHILD` set to the size).
fn per_scale(test: &str, run: fn(&Scale)) {
    if let Ok(label) = std::env::var("VSWITCH_SCALE_CHILD") {
        let sc = scale::SCALES
            .iter()
            .find(|s| s.label == label)
            .expect("known size");
        run(sc);
        return;
    }
    for sc in scale::selected_scales() {
        let out = Process::new(std::env::current_exe().unwrap())
            .args([
                test,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("VSWITCH_SCALE_CHILD", sc.label)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        // (libtest may print "test NAME ... " on the same line first)
        for l in stdout
            .lines()
            .filter_map(|l| l.find("SCALE ").map(|i| &l[i..]))
        {
            println!("{l}");
        }
        assert!(
            out.status.success(),
            "{}: {}{}",
            sc.label,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn reloads() -> u64 {
    std::env::var("VSWITCH_RELOADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

#[test]
#[ignore = "benchmark"]
fn pure_state_at_scale() {
    per_scale("pure_state_at_scale", |sc| {
        let rss_empty = rss_mib();
        let text = sc.config_toml();
        let t = Instant::now();
        let _: toml::Table = toml::from_str(&text).unwrap();
        let toml_only = t.elapsed();
        let t = Instant::now();
        let cfg = Config::from_toml_str(&text).unwrap();
        let parse = t.elapsed();
        let rss_text_config = rss_mib();
        let t = Instant::now();
        let mut sw = Switch::new(cfg.clone(), Timestamp(0)).unwrap();
        let build = t.elapsed();
        let rss_switch = rss_mib();
        let t = Instant::now();
        sc.learn_all(&sw, Timestamp(1));
        let learn = t.elapsed();
        assert_eq!(sw.fdb().learned_len(), sc.learned_total());
        let edited_text = edited(&text, 0);
        drop(text);
        let rss_state = rss_mib();

        let t = Instant::now();
        sw.reload(cfg.clone(), Timestamp(2)).unwrap();
        let noop = t.elapsed();
        assert_eq!(sw.fdb().learned_len(), sc.learned_total());
        let rss_1 = rss_mib();
        let n = reloads();
        for i in 1..n {
            sw.reload(cfg.clone(), Timestamp(2 + i)).unwrap();
        }
        let rss_n = rss_mib();

        // A full reload: an edited file, parsed and applied.
        let t = Instant::now();
        let cfg2 = Config::from_toml_str(&edited_text).unwrap();
        let r = sw.reload(cfg2, Timestamp(1_000)).unwrap();
        let full = t.elapsed();
        assert!(sw.vips().find("extra0").is_some());
        assert!(r.added.is_empty() && r.removed.is_empty());
        assert_eq!(sw.fdb().learned_len(), sc.learned_total());

        println!(
            "SCALE pure size={} ports={} groups={} macs={} toml_ms={:.1} parse_ms={:.1} build_ms={:.1} \
             learn_ms={:.1} startup_ms={:.1} noop_reload_ms={:.1} full_reload_ms={:.1} \
             rss_empty_mib={rss_empty:.1} rss_text_config_mib={rss_text_config:.1} \
             rss_switch_mib={rss_switch:.1} rss_state_mib={rss_state:.1} rss_after_1_mib={rss_1:.1} \
             rss_after_n_mib={rss_n:.1} reloads={n}",
            sc.label,
            sc.ports,
            sc.groups,
            sc.macs,
            ms(toml_only),
            ms(parse),
            ms(build),
            ms(learn),
            ms(parse + build),
            ms(noop),
            ms(full),
        );
    });
}

#[test]
#[ignore = "benchmark"]
fn daemon_at_scale() {
    per_scale("daemon_at_scale", |sc| {
        let rss_empty = rss_mib();
        let dir =
            std::env::temp_dir().join(format!("vswitch-scale-{}-{}", sc.label, std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("vswitch.toml");
        let text = sc.config_toml_in(&dir.display().to_string(), "netdev");
        std::fs::write(&path, &text).unwrap();

        let t = Instant::now();
        let bytes = Config::read_file(&path).unwrap();
        let cfg = Config::parse_file(&path, &bytes).unwrap();
        let d = Daemon::start(
            cfg,
            DaemonOptions {
                config_path: Some(path.clone()),
                // as `vswitch run` does
                config_bytes: Some(bytes),
                ..DaemonOptions::default()
            },
        )
        .unwrap();
        let ctl = d.control();
        // started: the control thread answers
        ctl.call(Command::ShowStats).unwrap();
        let start = t.elapsed();
        let rss_start = rss_mib();

        // the daemon knows the bytes it started from: the first reload of the unchanged
        // file is the shortcut already, and so is the second
        let t = Instant::now();
        ctl.call(Command::Reload).unwrap();
        let first = t.elapsed();
        let t = Instant::now();
        ctl.call(Command::Reload).unwrap();
        let noop = t.elapsed();

        std::fs::write(&path, edited(&text, 0)).unwrap();
        let t = Instant::now();
        ctl.call(Command::Reload).unwrap();
        let full = t.elapsed();
        let rss_1 = rss_mib();
        let n = reloads();
        for i in 1..n {
            std::fs::write(&path, edited(&text, i as usize)).unwrap();
            ctl.call(Command::Reload).unwrap();
        }
        let rss_n = rss_mib();
        d.shutdown();
        let _ = std::fs::remove_dir_all(&dir);
        println!(
            "SCALE daemon size={} start_ms={:.1} first_reload_ms={:.1} noop_reload_ms={:.1} \
             full_reload_ms={:.1} rss_empty_mib={rss_empty:.1} rss_start_mib={rss_start:.1} \
             rss_after_1_full_mib={rss_1:.1} rss_after_n_full_mib={rss_n:.1} reloads={n}",
            sc.label,
            ms(start),
            ms(first),
            ms(noop),
            ms(full),
        );
    });
}
