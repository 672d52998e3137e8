//! The threaded daemon's event stream, without root: the ports are bound to interfaces
//! that do not exist, so they start down and no device is ever opened, but the control
//! thread runs for real and answers commands.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use crossbeam_channel::Receiver;
use vswitch::config::Config;
use vswitch::datapath::{Command, Daemon, DaemonOptions};
use vswitch::view::{CtlError, Event, MoveResult, View};

fn start(tag: &str) -> (Daemon, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("vswitch-events-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let toml = format!(
        "[switch]\nstate_dir = {:?}\n\
         [[port]]\nname = \"a\"\nnetdev = \"vswnx-{tag}-a\"\nmac = \"02:00:00:00:00:0a\"\nips = [\"10.9.0.1/24\"]\n\
         [[port]]\nname = \"b\"\nnetdev = \"vswnx-{tag}-b\"\nmac = \"02:00:00:00:00:0b\"\nips = [\"10.9.0.2/24\"]\n\
         [[vip]]\nname = \"v\"\naddresses = [\"10.9.0.100\"]\ncandidates = [\"a\", \"b\"]\nowner = \"a\"\n",
        dir.display().to_string()
    );
    let cfg = Config::from_toml_str(&toml).unwrap();
    (Daemon::start(cfg, DaemonOptions::default()).unwrap(), dir)
}

/// The next event matching `f` within 5 s.
#[track_caller]
fn next(rx: &Receiver<Event>, f: impl Fn(&Event) -> bool) -> Event {
    let until = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = until.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(e) if f(&e) => return e,
            Ok(_) => continue,
            Err(e) => panic!("no matching event: {e}"),
        }
    }
}

#[test]
fn a_vip_move_reaches_a_subscriber() {
    let (d, dir) = start("mv");
    let rx = d.subscribe().unwrap();
    let r = d
        .control()
        .call(Command::VipMove {
            vip: "v".into(),
            port: "b".into(),
        })
        .unwrap();
    let View::Moved(MoveResult {
        moved: true,
        epoch: Some(epoch),
    }) = r
    else {
        panic!("{r:?}")
    };
    let e = next(&rx, |e| matches!(e, Event::VipMoved { .. }));
    match e {
        Event::VipMoved {
            vip,
            from,
            to,
            epoch: ep,
            reason,
            mac,
            ..
        } => {
            assert_eq!(vip, "v");
            assert_eq!(from.as_deref(), Some("a"));
            assert_eq!(to.as_deref(), Some("b"));
            assert_eq!(mac.as_deref(), Some("02:00:00:00:00:0b"));
            assert_eq!(ep, epoch);
            assert_eq!(reason, "admin");
        }
        other => panic!("{other:?}"),
    }

    // a second subscriber sees what happens after it subscribed, the first one too
    let rx2 = d.subscribe().unwrap();
    d.control()
        .call(Command::VipRelease {
            vip: "v".into(),
            port: "b".into(),
        })
        .unwrap();
    for r in [&rx, &rx2] {
        let e = next(r, |e| matches!(e, Event::VipMoved { .. }));
        assert!(
            matches!(&e, Event::VipMoved { from: Some(f), to: None, .. } if f == "b"),
            "{e:?}"
        );
    }

    // typed errors, and a refused reload is announced too
    assert_eq!(
        d.control().call(Command::VipMove {
            vip: "nope".into(),
            port: "b".into()
        }),
        Err(CtlError::UnknownVip {
            name: "nope".into()
        })
    );
    assert_eq!(
        d.control().call(Command::Reload),
        Err(CtlError::NoConfigFile)
    );
    let e = next(&rx, |e| matches!(e, Event::ReloadRefused { .. }));
    assert_eq!(
        e.to_string(),
        "configuration reload refused; the running configuration stays: the switch was started without a configuration file"
    );
    assert_eq!(d.control().call(Command::Watch), Err(CtlError::NotACall));

    // the stream ends when the switch stops
    d.shutdown();
    let until = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match rx.recv_timeout(until.saturating_duration_since(std::time::Instant::now())) {
            Ok(_) => continue,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("still connected after shutdown: {e}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
