//! `ctl reload` of a configuration file that has not changed (the same bytes, or a text
//! that configures the same switch) applies nothing and keeps the runtime state (owners
//! moved by `vip move`, the cluster's groups); a changed file is applied, also one changed
//! back to an earlier text. Threaded daemon without root: the ports are bound to
//! interfaces that do not exist.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use vswitch::config::{vip_defs_from_toml, Config};
use vswitch::datapath::{ClusterGroup, Command, Daemon, DaemonOptions};
use vswitch::view::{ReloadResult, View};

const NOTHING_APPLIED: &str = "nothing applied";

fn file(dir: &std::path::Path, extra: &str) -> String {
    format!(
        "[switch]\nstate_dir = {:?}\n\
         [[port]]\nname = \"a\"\nnetdev = \"vswnx-rs-a\"\nmac = \"02:00:00:00:00:0a\"\nips = [\"10.9.0.1/24\"]\n\
         [[port]]\nname = \"b\"\nnetdev = \"vswnx-rs-b\"\nmac = \"02:00:00:00:00:0b\"\nips = [\"10.9.0.2/24\"]\n\
         [[vip]]\nname = \"v\"\naddresses = [\"10.9.0.100\"]\ncandidates = [\"a\", \"b\"]\nowner = \"a\"\n{extra}",
        dir.display().to_string()
    )
}

fn reload(d: &Daemon) -> ReloadResult {
    match d.control().call(Command::Reload).unwrap() {
        View::Reloaded(r) => r,
        other => panic!("{other:?}"),
    }
}

/// Group name → its owners' port names.
fn vips(d: &Daemon) -> Vec<(String, Vec<String>)> {
    let View::Vips(v) = d.control().call(Command::ShowVips).unwrap() else {
        panic!()
    };
    let mut v: Vec<_> = v
        .into_iter()
        .map(|g| (g.name, g.owners.into_iter().map(|o| o.port).collect()))
        .collect();
    v.sort();
    v
}

fn owners(list: &[(String, Vec<String>)], name: &str) -> Option<Vec<String>> {
    list.iter().find(|(n, _)| n == name).map(|(_, o)| o.clone())
}

#[test]
fn unchanged_file_applies_nothing_and_keeps_runtime_state_changed_file_applies() {
    let dir = std::env::temp_dir().join(format!("vswitch-reload-sc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("vswitch.toml");
    let original = file(&dir, "");
    std::fs::write(&path, &original).unwrap();
    let d = Daemon::start(
        Config::load(&path).unwrap(),
        DaemonOptions {
            config_path: Some(path.clone()),
            ..DaemonOptions::default()
        },
    )
    .unwrap();
    let ctl = d.control();

    // runtime state: a cluster group and an operator's move
    let groups = vip_defs_from_toml(
        "[[vip]]\nname = \"cv\"\naddresses = [\"10.9.0.200\"]\ncandidates = [\"a\", \"b\"]\n",
    )
    .unwrap()
    .into_iter()
    .map(|def| ClusterGroup { def, vlan: 0 })
    .collect();
    ctl.call(Command::ClusterVips { groups }).unwrap();
    ctl.call(Command::VipMove {
        vip: "v".into(),
        port: "b".into(),
    })
    .unwrap();
    ctl.call(Command::VipMove {
        vip: "cv".into(),
        port: "a".into(),
    })
    .unwrap();
    let before = vips(&d);
    assert_eq!(owners(&before, "v"), Some(vec!["b".to_string()]));
    assert_eq!(owners(&before, "cv"), Some(vec!["a".to_string()]));

    // the first reload parses the file: it configures what runs
    let r = reload(&d);
    assert!(r.summary.contains(NOTHING_APPLIED), "{}", r.summary);
    assert!(
        r.summary.starts_with("added [], removed [], kept 2"),
        "{}",
        r.summary
    );
    assert_eq!(vips(&d), before);
    // the same bytes again: the short cut
    let r = reload(&d);
    assert!(r.summary.contains(NOTHING_APPLIED), "{}", r.summary);
    assert_eq!(vips(&d), before);
    // a comment changes the bytes, not the switch
    std::fs::write(&path, format!("# edited\n{original}")).unwrap();
    let r = reload(&d);
    assert!(r.summary.contains(NOTHING_APPLIED), "{}", r.summary);
    assert_eq!(vips(&d), before);

    // a changed file is applied; the runtime state stays
    std::fs::write(
        &path,
        file(
            &dir,
            "[[vip]]\nname = \"w\"\naddresses = [\"10.9.0.101\"]\ncandidates = [\"a\"]\n",
        ),
    )
    .unwrap();
    let r = reload(&d);
    assert!(!r.summary.contains(NOTHING_APPLIED), "{}", r.summary);
    let after = vips(&d);
    assert!(owners(&after, "w").is_some(), "{after:?}");
    assert_eq!(owners(&after, "v"), Some(vec!["b".to_string()]));
    assert_eq!(owners(&after, "cv"), Some(vec!["a".to_string()]));
    // and so is the earlier text again (its stamp was replaced)
    std::fs::write(&path, &original).unwrap();
    let r = reload(&d);
    assert!(!r.summary.contains(NOTHING_APPLIED), "{}", r.summary);
    let back = vips(&d);
    assert!(owners(&back, "w").is_none(), "{back:?}");
    assert_eq!(back, before);
    // an unreadable file is refused, and the running configuration stays
    std::fs::write(&path, "[[port]\n").unwrap();
    assert!(d.control().call(Command::Reload).is_err());
    assert_eq!(vips(&d), before);

    d.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `DaemonOptions::config_bytes`: the daemon knows from the start which bytes its
/// configuration came from, so the first reload of them is the shortcut too (nothing is
/// parsed: shown here by starting on a configuration that is *not* those bytes' and seeing
/// it stay); without them the first reload parses and applies the file.
#[test]
fn the_bytes_given_at_start_make_the_first_reload_the_shortcut() {
    for known in [true, false] {
        let dir = std::env::temp_dir().join(format!(
            "vswitch-reload-first-{known}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("vswitch.toml");
        let text = file(&dir, "");
        std::fs::write(&path, &text).unwrap();
        // what runs: the file plus one group
        let running = file(
            &dir,
            "[[vip]]\nname = \"w\"\naddresses = [\"10.9.0.101\"]\ncandidates = [\"a\"]\n",
        );
        let d = Daemon::start(
            Config::from_toml_str(&running).unwrap(),
            DaemonOptions {
                config_path: Some(path.clone()),
                config_bytes: known.then(|| text.clone().into_bytes()),
                ..DaemonOptions::default()
            },
        )
        .unwrap();
        assert!(owners(&vips(&d), "w").is_some());
        let r = reload(&d);
        if known {
            assert!(r.summary.contains(NOTHING_APPLIED), "{}", r.summary);
            assert!(
                owners(&vips(&d), "w").is_some(),
                "the shortcut parsed nothing"
            );
        } else {
            assert!(!r.summary.contains(NOTHING_APPLIED), "{}", r.summary);
            assert!(owners(&vips(&d), "w").is_none(), "the file was applied");
        }
        d.shutdown();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
