//! The switch configuration: TOML schema, parser and validator.
//!
//! A configuration file has three parts: an optional `[switch]` table with global settings,
//! one `[[port]]` table per VM attachment and one `[[vip]]` table per VIP group; an
//! optional `[cluster]` table turns on multi-host mode (see [`ClusterSettings`]). The full
//! operator reference is `docs/config.md`; the example files in `configs/` each teach one
//! feature and are parsed by a test.
//!
//! Contract:
//! - [`Config::from_toml_str`] / [`Config::load`] return either a fully validated
//!   [`Config`] or an error; they never panic on any input.
//! - Unknown fields are rejected everywhere (a typo such as `dest_chek` is an error naming
//!   the field, never a silently ignored setting).
//! - Validation collects *every* problem it finds into [`ConfigError::Invalid`], each with a
//!   field path an operator can find in the file (`port[1] "web2".allowed_address_pairs[0].ip`).
//! - In a returned [`Config`], all defaults are applied (port MTUs resolved from
//!   `switch.mtu`, per-VIP damping from the switch defaults, pair MACs from the port MAC),
//!   names are unique, every VIP candidate and initial owner names an existing port, all
//!   candidates of a VIP share one VLAN, and no address is claimed twice.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vip_table::{Damping, IpNet, MacAddr, VipMode};

mod cluster;
mod cluster_vips;
mod explain;
mod group;
mod raw;
mod validate;

pub use cluster::{
    ClusterSettings, ClusterTls, UdpGso, VlanVni, DEFAULT_LEASE_TTL_SECS, DEFAULT_UNDERLAY_MTU,
};
pub use cluster_vips::{
    cluster_vip_configs, merge_cluster_vips, vip_defs_from_toml, vip_defs_to_toml, ClusterVip,
    VipDef,
};
pub use group::{group_name, lookup_group};

/// Default MAC aging time of learned FDB entries.
pub const DEFAULT_MAC_AGING: Duration = Duration::from_secs(300);
/// Default global cap on learned MAC entries.
pub const DEFAULT_FDB_SIZE: usize = 65_536;
/// Default per-port cap on learned MAC entries.
pub const DEFAULT_FDB_PORT_LIMIT: usize = 4_096;
/// Default port MTU (IP MTU, excluding the Ethernet header).
pub const DEFAULT_MTU: u16 = 1500;
/// Default VIP flap damping: moves allowed per window.
pub const DEFAULT_DAMPING_MAX_MOVES: u32 = 4;
/// Default VIP flap damping window.
pub const DEFAULT_DAMPING_WINDOW: Duration = Duration::from_secs(10);
/// Default directory of the VIP state file.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/vswitch";

/// A validated switch configuration with every default applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Global settings (`[switch]`).
    pub switch: SwitchSettings,
    /// Ports in file order (`[[port]]`); a port's index here is its position in the file.
    pub ports: Vec<PortConfig>,
    /// VIP groups in file order (`[[vip]]`).
    pub vips: Vec<VipConfig>,
    /// Multi-host mode (`[cluster]`); `None`: standalone, the default.
    pub cluster: Option<ClusterSettings>,
}

/// Global settings from the `[switch]` table.
#[derive(Clone, Debug, PartialEq)]
pub struct SwitchSettings {
    /// How long a learned MAC stays in the FDB without being seen (`mac_aging_secs`).
    pub mac_aging: Duration,
    /// Global cap on learned MAC entries (`fdb_size`). Static port MACs do not count.
    pub fdb_size: usize,
    /// Per-port cap on learned MAC entries (`fdb_port_limit`).
    pub fdb_port_limit: usize,
    /// Default port MTU (`mtu`), used by ports that do not set their own.
    pub mtu: u16,
    /// Default VIP flap damping (`damping_max_moves`, `damping_window_secs`).
    pub damping: Damping,
    /// Where the VIP state file lives (`state_dir`): owners, epochs, pending claims and
    /// history survive a restart of the switch (see `vswitch::state`).
    pub state_dir: PathBuf,
    /// The group of the control socket (`ctl_group`): its members (and root) may run
    /// commands that change the switch.
    pub ctl_group: CtlGroup,
    /// How the worker moves frames (`io`); read at start (a reload keeps the running one).
    pub io: IoEngine,
    /// Worker threads (`workers`), each with its own queue of every port (multi-queue taps,
    /// `PACKET_FANOUT` sockets); read at start.
    pub workers: usize,
}

/// `switch.io`: how the worker reads and writes port devices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IoEngine {
    /// io_uring when the kernel has it (probed at start), poll + read/write otherwise.
    #[default]
    Auto,
    /// io_uring, or the switch does not start.
    Uring,
    /// Poll (epoll) + one read/write system call per frame.
    Epoll,
}

impl IoEngine {
    /// The value as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            IoEngine::Auto => "auto",
            IoEngine::Uring => "uring",
            IoEngine::Epoll => "epoll",
        }
    }
}

/// The control socket's group (`switch.ctl_group`), resolved when the file is validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CtlGroup {
    /// The group name from the file; `None`: not set (the default, gid 0).
    pub name: Option<String>,
    /// The group's gid on this host.
    pub gid: u32,
}

impl Default for SwitchSettings {
    fn default() -> Self {
        SwitchSettings {
            mac_aging: DEFAULT_MAC_AGING,
            fdb_size: DEFAULT_FDB_SIZE,
            fdb_port_limit: DEFAULT_FDB_PORT_LIMIT,
            mtu: DEFAULT_MTU,
            damping: Damping {
                max_moves: DEFAULT_DAMPING_MAX_MOVES,
                window: DEFAULT_DAMPING_WINDOW,
            },
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            ctl_group: CtlGroup::default(),
            io: IoEngine::Auto,
            workers: 1,
        }
    }
}

/// How a port is attached to the host.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PortBinding {
    /// A tap device the switch creates (or opens, if it exists) under this name.
    Tap(String),
    /// An existing interface the switch attaches to, e.g. the host side of a QEMU/libvirt
    /// tap (`vnet7`) or a veth.
    Netdev(String),
}

impl PortBinding {
    /// The Linux interface name, whatever the binding kind.
    pub fn ifname(&self) -> &str {
        match self {
            PortBinding::Tap(n) | PortBinding::Netdev(n) => n,
        }
    }

    /// `"tap"` or `"netdev"`: the configuration key of this binding kind.
    pub fn kind(&self) -> &'static str {
        match self {
            PortBinding::Tap(_) => "tap",
            PortBinding::Netdev(_) => "netdev",
        }
    }
}

/// The taps of `old` bindings that no `new` binding uses any more (the port left the
/// configuration, or its binding changed), in `old`'s order, each once: the persistent taps a
/// reload deletes. An interface name still used by any new binding, `tap` or `netdev`, is
/// kept; `netdev` interfaces are never in the list (they belong to QEMU/libvirt).
pub fn removed_taps<'a>(
    old: impl IntoIterator<Item = &'a PortBinding>,
    new: impl IntoIterator<Item = &'a PortBinding>,
) -> Vec<String> {
    let still: std::collections::HashSet<&str> = new.into_iter().map(PortBinding::ifname).collect();
    let mut out: Vec<String> = Vec::new();
    for b in old {
        if let PortBinding::Tap(name) = b {
            if !still.contains(name.as_str()) && !out.contains(name) {
                out.push(name.clone());
            }
        }
    }
    out
}

impl fmt::Display for PortBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind(), self.ifname())
    }
}

/// One validated `[[port]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct PortConfig {
    /// Unique port name.
    pub name: String,
    /// The host interface behind the port.
    pub binding: PortBinding,
    /// The VM's MAC address (unicast); a static FDB entry.
    pub mac: MacAddr,
    /// Fixed IPs (host addresses; a prefix length written in the file is informational
    /// and dropped here). Allowed as sources with [`PortConfig::mac`] and, with
    /// `dest_check`, as destinations.
    pub ips: Vec<IpAddr>,
    /// Access VLAN, 0 = untagged.
    pub vlan: u16,
    /// Port MTU (the port's own value or `switch.mtu`).
    pub mtu: u16,
    /// Source checks (MAC, IP, ARP, ND, RA guard, DHCP guard) on frames from the VM.
    pub port_security: bool,
    /// Deliver unicast IP only to destinations the port is allowed to have.
    pub dest_check: bool,
    /// The port is a trusted DHCP server: its DHCP server replies pass the DHCP guard.
    pub dhcp_server: bool,
    /// Administrative state at start; a down port neither sends nor receives.
    pub admin_up: bool,
    /// Allowed-address-pairs with their MAC resolved (the port MAC when not given).
    pub allowed_address_pairs: Vec<AddressPair>,
}

/// One allowed-address-pair: the port may send from `ip` with `mac` (and, with
/// `dest_check`, receive traffic to `ip`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddressPair {
    /// Allowed addresses: a host address is a /32 or /128; a CIDR is normalised to its
    /// network (host bits dropped).
    pub ip: IpNet,
    /// The MAC the addresses may be used with (the port MAC unless the pair names one).
    pub mac: MacAddr,
}

/// One validated `[[vip]]` group.
#[derive(Clone, Debug, PartialEq)]
pub struct VipConfig {
    /// Unique VIP group name.
    pub name: String,
    /// Addresses that move together (at least one; no prefix).
    pub addresses: Vec<IpAddr>,
    /// Ownership model.
    pub mode: VipMode,
    /// Names of the ports allowed to own the group, in file order; all exist and share
    /// [`VipConfig::vlan`].
    pub candidates: Vec<String>,
    /// The VLAN of the candidates (and so of the VIP).
    pub vlan: u16,
    /// Owners installed at start (`owner` for active-passive: at most one; `owners` for
    /// active-active). Every entry is a candidate. Empty: the first claim decides.
    pub initial_owners: Vec<String>,
    /// Active-passive: clear the owner when its port goes down.
    pub release_on_port_loss: bool,
    /// Active-passive: when the owner's device vanishes, send the priority-0 copy of its
    /// last VRRP advert to the other candidates on its behalf (the standby takes over
    /// after its skew time instead of its master-down timer). Always false for
    /// active-active groups.
    pub step_down_on_crash: bool,
    /// VRRP router id whose virtual MACs are authorised on the candidates (keepalived
    /// `use_vmac`).
    pub vrrp_vrid: Option<u8>,
    /// Active-active: the configured MAC the switch answers ARP/NS with (see
    /// [`VipConfig::answer_mac`] for the effective one).
    pub virtual_mac: Option<MacAddr>,
    /// Flap damping (the per-VIP override or the switch default).
    pub damping: Damping,
    /// Active-active: drop an owner that has not re-claimed within this interval.
    pub owner_liveness: Option<Duration>,
}

impl VipConfig {
    /// The MAC the switch answers ARP/NS with for an active-active group: `virtual_mac`
    /// if configured, otherwise [`derived_virtual_mac`] of the group name.
    pub fn answer_mac(&self) -> MacAddr {
        self.virtual_mac
            .unwrap_or_else(|| derived_virtual_mac(&self.name))
    }

    /// The VRRP virtual MACs authorised on the candidates: `00:00:5e:00:01:VRID` (IPv4)
    /// and `00:00:5e:00:02:VRID` (IPv6); empty without `vrrp_vrid`.
    pub fn vmacs(&self) -> Vec<MacAddr> {
        match self.vrrp_vrid {
            Some(vrid) => vec![MacAddr::vrrp_v4(vrid), MacAddr::vrrp_v6(vrid)],
            None => Vec::new(),
        }
    }

    /// True if the named port is a candidate of this group.
    pub fn is_candidate(&self, port: &str) -> bool {
        self.candidates.iter().any(|c| c == port)
    }
}

/// The default virtual MAC of an active-active VIP group: `02:5e` followed by the four
/// bytes (big-endian) of the 32-bit FNV-1a hash of the group name. Locally administered,
/// unicast, and stable across restarts and hosts.
pub fn derived_virtual_mac(name: &str) -> MacAddr {
    const FNV_OFFSET: u32 = 0x811c_9dc5;
    const FNV_PRIME: u32 = 0x0100_0193;
    let h = name.bytes().fold(FNV_OFFSET, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(FNV_PRIME)
    });
    let b = h.to_be_bytes();
    MacAddr([0x02, 0x5e, b[0], b[1], b[2], b[3]])
}

/// One validation problem: where it is and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the offending field, e.g. `port[1] "web2".allowed_address_pairs[0].ip`,
    /// `vip[0] "web".candidates[1]` or `switch.mtu`.
    pub field: String,
    /// What is wrong and, where useful, how to fix it.
    pub reason: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The text is not valid TOML, a value has the wrong type, or a field is unknown or
    /// missing. toml's message names the line, column and field.
    #[error("{}{error}", path.as_ref().map(|p| format!("{}: ", p.display())).unwrap_or_default())]
    Syntax {
        /// The file, when loaded from one.
        path: Option<PathBuf>,
        /// toml's error.
        error: toml::de::Error,
    },
    /// The file parsed but breaks validation rules; every problem found is listed, one
    /// per line as `<field>: <reason>`.
    #[error("{}", display_lines(.0))]
    Invalid(Vec<FieldError>),
}

fn display_lines(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(FieldError::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl ConfigError {
    /// The validation problems, if this is [`ConfigError::Invalid`]; empty otherwise.
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            ConfigError::Invalid(v) => v,
            _ => &[],
        }
    }
}

/// Texts at least this long are parsed on a helper thread (see [`Config::from_toml_str`]).
const PARSE_ON_A_THREAD: usize = 64 << 10;

impl Config {
    /// Parse and validate a configuration from TOML text.
    ///
    /// A long text (a switch with thousands of groups) is parsed on a short-lived helper
    /// thread and the result copied back: the parser's transient allocations are many
    /// times the size of the result (toml's document keeps every key, value and span), and
    /// with the result's allocations scattered among them, freed but pinned pages stayed
    /// resident (measured at 256 ports × 10,000 groups: 46 MiB of RSS for a 3.5 MiB
    /// configuration). On its own thread, glibc's malloc takes the parse from another
    /// arena, which is wholly free afterwards and goes back to the kernel with the next
    /// heap trim.
    pub fn from_toml_str(s: &str) -> Result<Config, ConfigError> {
        if s.len() < PARSE_ON_A_THREAD {
            return Config::parse_here(s);
        }
        std::thread::scope(|scope| {
            match std::thread::Builder::new()
                .name("vswitch-parse".into())
                .spawn_scoped(scope, || Config::parse_here(s))
            {
                Ok(h) => match h.join() {
                    // copied on this thread, into this thread's arena (the point: the
                    // helper's copy goes, and its arena with it)
                    Ok(Ok(parsed)) => {
                        let here = parsed.clone();
                        drop(parsed);
                        Ok(here)
                    }
                    Ok(Err(e)) => Err(e),
                    Err(panic) => std::panic::resume_unwind(panic),
                },
                // no thread to be had: parse here (the result is the same)
                Err(_) => Config::parse_here(s),
            }
        })
    }

    fn parse_here(s: &str) -> Result<Config, ConfigError> {
        let raw: raw::RawConfig =
            toml::from_str(s).map_err(|error| ConfigError::Syntax { path: None, error })?;
        validate::validate(raw)
    }

    /// Read, parse and validate a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::parse_file(path, &Config::read_file(path)?)
    }

    /// The bytes of a configuration file (for [`Config::parse_file`]).
    pub fn read_file(path: &Path) -> Result<Vec<u8>, ConfigError> {
        std::fs::read(path).map_err(|error| ConfigError::Io {
            path: path.to_path_buf(),
            error,
        })
    }

    /// Parse and validate the bytes of the configuration file at `path` (which errors
    /// name).
    pub fn parse_file(path: &Path, bytes: &[u8]) -> Result<Config, ConfigError> {
        let text = std::str::from_utf8(bytes).map_err(|e| ConfigError::Io {
            path: path.to_path_buf(),
            error: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })?;
        Config::from_toml_str(text).map_err(|e| match e {
            ConfigError::Syntax { path: None, error } => ConfigError::Syntax {
                path: Some(path.to_path_buf()),
                error,
            },
            other => other,
        })
    }

    /// Index of the port with this name in [`Config::ports`].
    pub fn port_index(&self, name: &str) -> Option<usize> {
        self.ports.iter().position(|p| p.name == name)
    }

    /// The port with this name.
    pub fn port(&self, name: &str) -> Option<&PortConfig> {
        self.ports.iter().find(|p| p.name == name)
    }

    /// Index of the VIP group with this name in [`Config::vips`].
    pub fn vip_index(&self, name: &str) -> Option<usize> {
        self.vips.iter().position(|v| v.name == name)
    }

    /// A human-readable summary of the effective configuration (every default applied),
    /// as printed by `vswitch check-config`.
    pub fn explain(&self) -> String {
        explain::explain(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_taps_are_old_taps_no_new_binding_uses() {
        let t = |n: &str| PortBinding::Tap(n.to_string());
        let d = |n: &str| PortBinding::Netdev(n.to_string());
        let old = [t("a"), t("b"), d("vnet1"), t("c"), t("d"), t("a")];
        // a stays; b goes; the netdev is never deleted; c becomes a netdev (kept); d goes.
        let new = [t("a"), d("c"), t("e")];
        assert_eq!(removed_taps(&old, &new), ["b", "d"]);
        assert!(removed_taps(&old, &old).is_empty());
        assert_eq!(removed_taps(&old, &[]), ["a", "b", "c", "d"]);
        assert!(removed_taps(&[d("x")], &[]).is_empty());
    }

    #[test]
    fn derived_mac_is_stable_local_unicast() {
        let m = derived_virtual_mac("web");
        assert_eq!(m, derived_virtual_mac("web"));
        assert_ne!(m, derived_virtual_mac("web2"));
        assert_eq!(m.0[0], 0x02);
        assert_eq!(m.0[1], 0x5e);
        assert!(m.is_unicast());
        // FNV-1a("a") = 0xe40c292c
        assert_eq!(
            derived_virtual_mac("a"),
            MacAddr([0x02, 0x5e, 0xe4, 0x0c, 0x29, 0x2c])
        );
    }

    #[test]
    fn empty_config_is_all_defaults() {
        let c = Config::from_toml_str("").unwrap();
        assert_eq!(c.switch, SwitchSettings::default());
        assert!(c.ports.is_empty());
        assert!(c.vips.is_empty());
    }

    #[test]
    fn explain_shows_the_control_group() {
        let c = Config::from_toml_str("").unwrap();
        assert!(
            c.explain().contains("control socket group gid 0 (default)"),
            "{}",
            c.explain()
        );
        let c = Config::from_toml_str("[switch]\nctl_group = \"root\"\n").unwrap();
        assert!(
            c.explain().contains("control socket group root (gid 0)"),
            "{}",
            c.explain()
        );
    }

    #[test]
    fn syntax_error_keeps_toml_message() {
        let e = Config::from_toml_str("[switch]\nmtu = \n").unwrap_err();
        assert!(matches!(e, ConfigError::Syntax { .. }));
        assert!(e.to_string().contains("line 2"), "{e}");
    }

    #[test]
    fn load_missing_file_names_path() {
        let e = Config::load(Path::new("/nonexistent/vswitch.toml")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/vswitch.toml"), "{e}");
    }
}
