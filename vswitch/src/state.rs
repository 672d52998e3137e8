//! The VIP state file: what the switch knows about VIP ownership, kept across restarts.
//!
//! Contract:
//! - [`SavedState::of`] takes the VIP state of a [`Switch`] (owners with their MAC per
//!   family, epoch, pending claim, recent history, damping window, hijack count), by group
//!   and port *name*; [`SavedState::restore_into`] puts it back into a freshly built
//!   [`Switch`] for the groups that still exist with the same mode, keeping only owners
//!   that are still candidates. Epochs never go backwards;
//! - [`save`] writes it atomically: a temporary file in the same directory, `fsync`, rename
//!   over the old one, `fsync` of the directory. A crash at any point leaves the old or the
//!   new file, never a torn one;
//! - [`load`] never panics: a missing file is `Ok(None)`; an unreadable, corrupt or
//!   foreign-version file is an error that says what is wrong (the daemon warns and starts
//!   with discovery);
//! - times are [`Timestamp`]s of the daemon clock (`CLOCK_MONOTONIC`), comparable across
//!   restarts within one boot; the file records the boot id, and after a reboot restored
//!   times are set to the origin (a reboot also restarts every VM on the host).
//!
//! The format is JSON (one object, `version` 1), readable by an operator with `jq`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vip_table::{MacAddr, Move, MoveReason, Owner, PendingClaim, SavedGroup, Timestamp, VipMode};

use crate::control::{Switch, SwitchEvent};

/// The file name under `[switch] state_dir`.
pub const FILE_NAME: &str = "vip-state.json";
/// The format version written.
pub const VERSION: u32 = 1;

/// The whole file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedState {
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// `/proc/sys/kernel/random/boot_id` when written (empty if unknown).
    pub boot_id: String,
    /// One record per VIP group.
    pub groups: Vec<GroupRecord>,
}

/// One group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRecord {
    /// Group name.
    pub name: String,
    /// Mode when saved (state is not carried across a mode change).
    pub mode: VipMode,
    /// Epoch.
    pub epoch: u64,
    /// Owners.
    pub owners: Vec<OwnerRecord>,
    /// A claim damping held back.
    pub pending: Option<PendingRecord>,
    /// Recent moves, oldest first.
    pub history: Vec<MoveRecord>,
    /// Claim-driven moves in the damping window (ns).
    pub recent_moves_ns: Vec<u64>,
    /// A/P: the owner's port was down.
    pub owner_down: bool,
    /// Hijack attempts.
    pub hijacks: u64,
}

/// An owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerRecord {
    /// Port name.
    pub port: String,
    /// IPv4 MAC.
    pub mac: MacAddr,
    /// IPv6 MAC.
    pub mac6: MacAddr,
    /// Owner since (ns).
    pub since_ns: u64,
    /// Latest claim (ns).
    pub last_claim_ns: u64,
}

/// A pending claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingRecord {
    /// Claimant port name.
    pub port: String,
    /// Its MAC.
    pub mac: MacAddr,
    /// When it arrived (ns).
    pub claimed_at_ns: u64,
    /// When it is due (ns).
    pub due_ns: u64,
}

/// A move.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveRecord {
    /// When (ns).
    pub at_ns: u64,
    /// Epoch after it.
    pub epoch: u64,
    /// From (port name).
    pub from: Option<String>,
    /// To (port name).
    pub to: Option<String>,
    /// New owner MAC.
    pub mac: Option<MacAddr>,
    /// Why.
    pub reason: MoveReason,
}

/// Why a state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// It could not be read.
    #[error("cannot read {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// It is not a state file of this format.
    #[error("{} is corrupt or not a vswitch state file: {error}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        error: serde_json::Error,
    },
    /// A version this build does not read.
    #[error("{} has format version {found}; this switch reads version {VERSION}", path.display())]
    Version {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
    },
}

/// What a restore did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Groups whose state was restored.
    pub restored: Vec<String>,
    /// Groups in the file that no longer exist (or changed mode).
    pub skipped: Vec<String>,
}

fn ts(ns: u64, same_boot: bool) -> Timestamp {
    Timestamp(if same_boot { ns } else { 0 })
}

impl SavedState {
    /// The VIP state of `sw`.
    pub fn of(sw: &Switch, boot_id: &str) -> SavedState {
        let name = |p: vip_table::PortId| sw.port_name(p).to_string();
        let groups = sw
            .vips()
            .groups()
            .map(|(_, g)| {
                let s = g.saved();
                GroupRecord {
                    name: g.name().to_string(),
                    mode: g.mode(),
                    epoch: s.epoch,
                    owners: s
                        .owners
                        .iter()
                        .map(|o| OwnerRecord {
                            port: name(o.port),
                            mac: o.mac,
                            mac6: o.mac6,
                            since_ns: o.since.as_nanos(),
                            last_claim_ns: o.last_claim.as_nanos(),
                        })
                        .collect(),
                    pending: s.pending.map(|p| PendingRecord {
                        port: name(p.port),
                        mac: p.mac,
                        claimed_at_ns: p.claimed_at.as_nanos(),
                        due_ns: p.due.as_nanos(),
                    }),
                    history: s
                        .history
                        .iter()
                        .map(|m| MoveRecord {
                            at_ns: m.at.as_nanos(),
                            epoch: m.epoch,
                            from: m.from.map(name),
                            to: m.to.map(name),
                            mac: m.mac,
                            reason: m.reason,
                        })
                        .collect(),
                    recent_moves_ns: s.recent_moves.iter().map(|t| t.as_nanos()).collect(),
                    owner_down: s.owner_down,
                    hijacks: s.hijacks,
                }
            })
            .collect();
        SavedState {
            version: VERSION,
            boot_id: boot_id.to_string(),
            groups,
        }
    }

    /// Put the saved state back into `sw` (built from the configuration now in force):
    /// groups are matched by name and mode, ports by name. `boot_id`: this boot's id, to
    /// tell whether the saved times still mean anything. Logs a
    /// [`SwitchEvent::VipRestored`] per restored group.
    pub fn restore_into(&self, sw: &mut Switch, boot_id: &str) -> RestoreReport {
        let same_boot = !boot_id.is_empty() && self.boot_id == boot_id;
        let mut report = RestoreReport::default();
        for r in &self.groups {
            let Some(id) = sw.vips().find(&r.name) else {
                report.skipped.push(r.name.clone());
                continue;
            };
            if sw.vips().group(id).map(|g| g.mode()) != Some(r.mode) {
                report.skipped.push(r.name.clone());
                continue;
            }
            let port = |n: &str| sw.port_id(n);
            let saved = SavedGroup {
                epoch: r.epoch,
                owners: r
                    .owners
                    .iter()
                    .filter_map(|o| {
                        Some(Owner {
                            port: port(&o.port)?,
                            mac: o.mac,
                            mac6: o.mac6,
                            since: ts(o.since_ns, same_boot),
                            last_claim: ts(o.last_claim_ns, same_boot),
                        })
                    })
                    .collect(),
                pending: r.pending.as_ref().and_then(|p| {
                    Some(PendingClaim {
                        port: port(&p.port)?,
                        mac: p.mac,
                        claimed_at: ts(p.claimed_at_ns, same_boot),
                        due: ts(p.due_ns, same_boot),
                    })
                }),
                history: r
                    .history
                    .iter()
                    .map(|m| Move {
                        at: ts(m.at_ns, same_boot),
                        epoch: m.epoch,
                        from: m.from.as_deref().and_then(port),
                        to: m.to.as_deref().and_then(port),
                        // the cluster side is resynced from the store, not saved
                        from_remote: None,
                        to_remote: None,
                        mac: m.mac,
                        reason: m.reason,
                    })
                    .collect(),
                recent_moves: if same_boot {
                    r.recent_moves_ns.iter().map(|&n| Timestamp(n)).collect()
                } else {
                    Vec::new()
                },
                owner_down: r.owner_down,
                hijacks: r.hijacks,
            };
            // an owner whose port no longer exists counts as lost (the epoch moves on)
            let mut saved = saved;
            if saved.owners.len() != r.owners.len() {
                saved.owners.clear();
                saved.epoch += 1;
            }
            sw.restore_group(id, &saved);
            let (owners, epoch) = sw
                .vips()
                .group(id)
                .map(|g| {
                    (
                        g.owners()
                            .iter()
                            .map(|o| sw.port_name(o.port).to_string())
                            .collect(),
                        g.epoch(),
                    )
                })
                .unwrap_or_default();
            sw.push_event(SwitchEvent::VipRestored {
                vip: r.name.clone(),
                owners,
                epoch,
            });
            report.restored.push(r.name.clone());
        }
        sw.republish();
        report
    }
}

/// The state file under `dir`.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Read the state file. `Ok(None)` if there is none.
pub fn load(path: &Path) -> Result<Option<SavedState>, StateError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(StateError::Read {
                path: path.to_path_buf(),
                error,
            })
        }
    };
    // the version first, so a newer file says so rather than "unknown field"
    #[derive(Deserialize)]
    struct V {
        version: u32,
    }
    let v: V = serde_json::from_slice(&bytes).map_err(|error| StateError::Corrupt {
        path: path.to_path_buf(),
        error,
    })?;
    if v.version != VERSION {
        return Err(StateError::Version {
            path: path.to_path_buf(),
            found: v.version,
        });
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|error| StateError::Corrupt {
            path: path.to_path_buf(),
            error,
        })
}

/// Write the state file atomically (temp file, fsync, rename, fsync of the directory),
/// creating the directory (mode 0750) if needed.
pub fn save(path: &Path, state: &SavedState) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)?;
    }
    let tmp = dir.join(format!(".{FILE_NAME}.tmp"));
    let text = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(&tmp)?;
        f.write_all(&text)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    fs::File::open(dir)?.sync_all()
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`), or empty.
pub fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const CFG: &str = r#"
[[port]]
name = "a"
tap = "ta"
mac = "02:00:00:00:00:01"
ips = ["10.0.0.1/24"]
[[port]]
name = "b"
tap = "tb"
mac = "02:00:00:00:00:02"
ips = ["10.0.0.2/24"]
[[vip]]
name = "web"
addresses = ["10.0.0.100", "fd00::100"]
mode = "active-passive"
candidates = ["a", "b"]
"#;

    fn switch(cfg: &str) -> Switch {
        Switch::new(
            Config::from_toml_str(cfg).unwrap(),
            Timestamp::from_secs(100),
        )
        .unwrap()
    }

    fn claim(sw: &mut Switch, port: &str, mac: MacAddr, addr: &str, at: u64) {
        let fx = crate::pipeline::Effects {
            vip: Some(crate::pipeline::VipSignal::Claim {
                vip: sw.vips().find("web").unwrap(),
                addr: addr.parse().unwrap(),
                port: sw.port_id(port).unwrap(),
                mac,
            }),
            ..Default::default()
        };
        sw.apply(&fx, Timestamp::from_secs(at), &mut Vec::new());
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vswitch-state-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn owner_macs_epoch_and_history_survive_a_restart() {
        let mut sw = switch(CFG);
        let vmac = MacAddr([0, 0, 0x5e, 0, 1, 7]);
        claim(&mut sw, "a", MacAddr([2, 0, 0, 0, 0, 1]), "10.0.0.100", 101);
        claim(&mut sw, "b", vmac, "10.0.0.100", 102);
        claim(&mut sw, "b", MacAddr([2, 0, 0, 0, 0, 2]), "fd00::100", 102);
        let before = sw
            .vips()
            .group(sw.vips().find("web").unwrap())
            .unwrap()
            .clone();
        assert_eq!(before.epoch(), 3);

        let dir = tmp("roundtrip");
        let path = path_in(&dir);
        save(&path, &SavedState::of(&sw, "boot-1")).unwrap();
        let loaded = load(&path).unwrap().unwrap();

        // the next instance, with the ports in another order
        let mut sw2 = switch(
            &CFG.replace("name = \"a\"", "name = \"x\"")
                .replace("\"a\", \"b\"", "\"b\", \"x\""),
        );
        let r = loaded.restore_into(&mut sw2, "boot-1");
        assert_eq!(r.restored, vec!["web".to_string()]);
        let g = sw2.vips().group(sw2.vips().find("web").unwrap()).unwrap();
        assert_eq!(g.owners().len(), 1);
        let o = g.owners()[0];
        assert_eq!(sw2.port_name(o.port), "b");
        assert_eq!((o.mac, o.mac6), (vmac, MacAddr([2, 0, 0, 0, 0, 2])));
        assert_eq!(g.epoch(), 3, "the epoch carries over");
        assert_eq!(g.history().count(), before.history().count());
        assert_eq!(o.since, Timestamp::from_secs(102), "same boot: times kept");
        // the snapshot the datapath uses has it too
        let snap = sw2.snapshot();
        assert!(snap.vips.owns(o.port, "10.0.0.100".parse().unwrap()));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_owner_that_is_no_candidate_any_more_is_dropped_and_the_epoch_moves_on() {
        let mut sw = switch(CFG);
        claim(&mut sw, "a", MacAddr([2, 0, 0, 0, 0, 1]), "10.0.0.100", 101);
        let saved = SavedState::of(&sw, "boot-1");
        let mut sw2 = switch(&CFG.replace("candidates = [\"a\", \"b\"]", "candidates = [\"b\"]"));
        saved.restore_into(&mut sw2, "other-boot");
        let g = sw2.vips().group(sw2.vips().find("web").unwrap()).unwrap();
        assert!(g.owners().is_empty());
        assert_eq!(g.epoch(), 2, "never backwards, and the loss is a change");
        // a removed group is skipped, not an error
        let mut sw3 = switch(&CFG.replace("name = \"web\"", "name = \"db\""));
        let r = saved.restore_into(&mut sw3, "boot-1");
        assert_eq!(r.skipped, vec!["web".to_string()]);
    }

    #[test]
    fn bad_files_are_errors_that_say_why_and_a_missing_one_is_none() {
        let dir = tmp("bad");
        fs::create_dir_all(&dir).unwrap();
        let path = path_in(&dir);
        assert!(load(&path).unwrap().is_none());
        fs::write(&path, b"{\"version\": 1, \"boot_id\": \"x\", \"gro").unwrap();
        let e = load(&path).unwrap_err();
        assert!(e.to_string().contains("corrupt"), "{e}");
        fs::write(&path, b"\xff\xfe garbage").unwrap();
        assert!(matches!(load(&path), Err(StateError::Corrupt { .. })));
        fs::write(&path, b"{\"version\": 9}").unwrap();
        let e = load(&path).unwrap_err();
        assert!(e.to_string().contains("version 9"), "{e}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn save_replaces_the_file_atomically() {
        let dir = tmp("atomic");
        let path = path_in(&dir);
        let sw = switch(CFG);
        save(&path, &SavedState::of(&sw, "b")).unwrap();
        save(&path, &SavedState::of(&sw, "c")).unwrap();
        assert_eq!(load(&path).unwrap().unwrap().boot_id, "c");
        let names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        assert_eq!(names, vec![FILE_NAME.to_string()], "no temp file left");
        let _ = fs::remove_dir_all(&dir);
    }
}
