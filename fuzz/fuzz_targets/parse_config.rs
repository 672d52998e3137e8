//! Fuzz the configuration parser and validator with arbitrary bytes.
//!
//! The input is a configuration file as `vswitch run --config` / `check-config` would read
//! it (the seed corpus is `configs/*.toml`, see `fuzz/seed-corpus.sh`). Invalid UTF-8 is
//! refused by the reader before the parser sees it, so only UTF-8 inputs reach
//! `Config::from_toml_str`. It must never panic; on success `explain()` (what
//! `check-config` prints) must not panic either, and a valid config must describe every
//! port and VIP it has; on failure the error must render.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vswitch::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_toml_str(text) {
        Ok(config) => {
            let explained = config.explain();
            for p in &config.ports {
                assert!(
                    explained.contains(p.name.as_str()),
                    "explain() does not name port {:?}",
                    p.name
                );
            }
            for v in &config.vips {
                assert!(
                    explained.contains(v.name.as_str()),
                    "explain() does not name VIP {:?}",
                    v.name
                );
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
