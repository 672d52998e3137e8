//! Pcap-golden scenarios: every directory under tests/scenarios is replayed through the
//! pipeline and control state and compared with its expected transcript.

use std::path::PathBuf;

use vswitch_tests::{replay, scenarios};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

#[test]
fn every_scenario_matches_its_golden_transcript() {
    let dirs = replay::scenario_dirs(&root());
    assert!(
        dirs.len() >= scenarios::all().len(),
        "scenario directories missing: run gen-scenarios"
    );
    let mut failures = Vec::new();
    for d in &dirs {
        if let Err(e) = replay::check(d) {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed:\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n\n")
    );
}

#[test]
fn committed_captures_match_their_definitions() {
    for s in scenarios::all() {
        for (name, bytes) in s.files() {
            let path = root().join(s.name).join(&name);
            let on_disk = std::fs::read(&path).unwrap_or_default();
            assert!(
                on_disk == bytes,
                "{} is stale: run `cargo run -p vswitch-tests --bin gen-scenarios`",
                path.display()
            );
        }
    }
}
