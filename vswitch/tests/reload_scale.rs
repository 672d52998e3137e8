//! Benchmark (not a pass/fail test; `#[ignore]`): the pure switch state at scale — build
//! and a no-op reload of (ports, VIP groups), and the process' RSS across reloads.
//! `cargo test --release -p vswitch --test reload_scale -- --ignored --nocapture`.

#![allow(clippy::unwrap_used)]

use std::time::Instant;

use vip_table::Timestamp;
use vswitch::config::Config;
use vswitch::control::Switch;

fn config(ports: usize, groups: usize) -> String {
    let mut s = String::new();
    for p in 0..ports {
        s.push_str(&format!(
            "[[port]]\nname = \"p{p}\"\ntap = \"tp{p}\"\nmac = \"02:00:00:00:{:02x}:{:02x}\"\nmtu = 1450\n\n",
            p / 256,
            p % 256
        ));
    }
    for g in 0..groups {
        let a = 10 + g / 65536;
        let b = (g / 256) % 256;
        let c = g % 256;
        s.push_str(&format!(
            "[[vip]]\nname = \"g{g}\"\naddresses = [\"{a}.{b}.{c}.1\"]\ncandidates = [\"p{}\", \"p{}\"]\n\n",
            g % ports,
            (g + 1) % ports
        ));
    }
    s
}

fn rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1 << 20) as f64
}

#[test]
#[ignore = "benchmark"]
fn reload_at_scale() {
    for (ports, groups) in [(16, 100), (256, 10_000)] {
        let text = config(ports, groups);
        let t = Instant::now();
        let _: toml::Table = toml::from_str(&text).unwrap();
        let toml_only = t.elapsed();
        let t = Instant::now();
        let cfg = Config::from_toml_str(&text).unwrap();
        let parse = t.elapsed();
        let t = Instant::now();
        let mut sw = Switch::new(cfg.clone(), Timestamp(0)).unwrap();
        let build = t.elapsed();
        let r0 = rss_mib();
        let t = Instant::now();
        sw.reload(cfg.clone(), Timestamp(1)).unwrap();
        let reload = t.elapsed();
        let r1 = rss_mib();
        for i in 0..49 {
            sw.reload(cfg.clone(), Timestamp(2 + i)).unwrap();
        }
        let r50 = rss_mib();
        println!(
            "RELOADSCALE ports={ports} groups={groups} toml_ms={:.1} parse_ms={:.1} build_ms={:.1} noop_reload_ms={:.1} rss_mib_start={r0:.1} after_1={r1:.1} after_50={r50:.1}",
            toml_only.as_secs_f64() * 1e3,
            parse.as_secs_f64() * 1e3,
            build.as_secs_f64() * 1e3,
            reload.as_secs_f64() * 1e3
        );
    }
}
