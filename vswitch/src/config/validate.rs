//! From the file form ([`RawConfig`]) to a validated [`Config`].
//!
//! The validator never stops at the first problem: every check runs, each failure is
//! recorded as a [`FieldError`] with an operator-findable path, and values that failed
//! get a neutral stand-in so later checks can still run without cascading into spurious
//! follow-on errors (cross-checks only use values that were themselves valid).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use vip_table::{parse_ip_or_cidr, Damping, IpNet, MacAddr, VipMode};

use super::cluster::{self, PortFacts};
use super::group::{group_name_problem, lookup_group};
use super::raw::{RawConfig, RawPort, RawSwitch, RawVip};
use super::{
    AddressPair, Config, ConfigError, CtlGroup, FieldError, IoEngine, PortBinding, PortConfig,
    SwitchSettings, VipConfig, DEFAULT_DAMPING_MAX_MOVES, DEFAULT_DAMPING_WINDOW,
    DEFAULT_FDB_PORT_LIMIT, DEFAULT_FDB_SIZE, DEFAULT_MAC_AGING, DEFAULT_MTU, DEFAULT_STATE_DIR,
};

/// Longest accepted port / VIP name.
pub(super) const MAX_NAME_LEN: usize = 32;
/// Linux IFNAMSIZ - 1: the longest interface name the kernel accepts.
pub(super) const MAX_IFNAME_LEN: usize = 15;
/// Upper bound of `switch.workers`.
pub const MAX_WORKERS: usize = 64;

/// Upper bound of `fdb_size` / `fdb_port_limit` (16 Mi entries): anything larger is a typo.
pub(super) const MAX_FDB_ENTRIES: i64 = 1 << 24;
/// Highest access VLAN id (4095 is reserved).
pub(super) const MAX_VLAN: i64 = 4094;
/// Lowest MTU (the IPv4 minimum, RFC 791).
pub(super) const MIN_MTU: i64 = 68;
/// Highest MTU.
pub(super) const MAX_MTU: i64 = 65_535;
/// Longest MAC aging time and owner liveness interval, in seconds (one day).
pub(super) const MAX_AGING_SECS: i64 = 86_400;
/// Longest damping window, in seconds.
pub(super) const MAX_DAMPING_WINDOW_SECS: f64 = 3_600.0;

/// Validate a parsed file.
pub(super) fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let mut v = Validator::default();
    let switch = v.switch(raw.switch.as_ref());
    let ports = v.ports(&raw.ports, &switch);
    let vips = v.vips(&raw.vips, &ports, &switch, Candidates::Local);
    let cluster = raw.cluster.as_ref().map(|c| {
        let facts: Vec<PortFacts<'_>> = ports
            .ports
            .iter()
            .zip(&ports.labels)
            .zip(&ports.vlan_ok)
            .map(|((port, label), &vlan_ok)| PortFacts {
                label,
                port,
                vlan_ok,
            })
            .collect();
        cluster::validate(c, &facts, &mut v.errors)
    });
    if cluster.is_some() && switch.workers > 1 {
        v.err(
            "switch.workers",
            format!(
                "cluster mode runs one worker in this build (got {}): the VXLAN socket has one \
                 reader; remove switch.workers or set it to 1",
                switch.workers
            ),
        );
    }
    if v.errors.is_empty() {
        Ok(Config {
            switch,
            ports: ports.ports,
            vips,
            cluster,
        })
    } else {
        Err(ConfigError::Invalid(v.errors))
    }
}

/// Where a group's candidates may be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Candidates {
    /// Ports of this file (`[[vip]]` of a configuration).
    Local,
    /// Ports anywhere in the cluster (a cluster group): any valid port name.
    Cluster,
}

/// Validate cluster VIP group definitions: every rule of `[[vip]]` except that a
/// candidate may be a port of any host (it needs only a valid name), and without the
/// checks against a file's ports (fixed IPs, port MACs); damping defaults to the built-in
/// switch defaults. `vlan` is 0 (the caller knows the candidates' VLAN).
pub(super) fn validate_cluster_vips(raw: &[RawVip]) -> Result<Vec<VipConfig>, ConfigError> {
    let mut v = Validator::default();
    let switch = v.switch(None);
    let ports = CheckedPorts {
        ports: Vec::new(),
        by_name: HashMap::new(),
        labels: Vec::new(),
        vlan_ok: Vec::new(),
        fixed_ips: HashMap::new(),
        macs: HashMap::new(),
    };
    let vips = v.vips(raw, &ports, &switch, Candidates::Cluster);
    if v.errors.is_empty() {
        Ok(vips)
    } else {
        Err(ConfigError::Invalid(v.errors))
    }
}

/// Ports as validated, plus what the VIP checks need to know about them.
struct CheckedPorts {
    ports: Vec<PortConfig>,
    /// Port name → index of the first port with that name.
    by_name: HashMap<String, usize>,
    /// Index → display label (`port[1] "web2"`).
    labels: Vec<String>,
    /// Index → whether its vlan value was valid.
    vlan_ok: Vec<bool>,
    /// Every valid fixed IP (any vlan) → label of the first port that has it.
    fixed_ips: HashMap<IpAddr, String>,
    /// Every valid port MAC → label.
    macs: HashMap<MacAddr, String>,
}

#[derive(Default)]
struct Validator {
    errors: Vec<FieldError>,
}

fn port_label(i: usize, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("port[{i}] {n:?}"),
        None => format!("port[{i}]"),
    }
}

fn vip_label(i: usize, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("vip[{i}] {n:?}"),
        None => format!("vip[{i}]"),
    }
}

/// Why `name` is not a valid port / VIP name, if it is not.
fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Some(format!(
            "{name:?} is {} characters long; at most {MAX_NAME_LEN} are allowed",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Some(format!(
            "{name:?} contains {c:?}; names use only letters, digits, '_', '.' and '-'"
        ));
    }
    None
}

/// Why `name` is not a valid Linux interface name (the kernel's `dev_valid_name`), if it
/// is not.
fn ifname_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.len() > MAX_IFNAME_LEN {
        return Some(format!(
            "{name:?} is {} bytes long; Linux interface names are at most {MAX_IFNAME_LEN} bytes",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Some(format!("{name:?} is not a valid interface name"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| *c == '/' || *c == ':' || *c == '\0' || c.is_whitespace())
    {
        return Some(format!(
            "{name:?} contains {c:?}; Linux interface names cannot contain '/', ':' or whitespace"
        ));
    }
    None
}

/// Why `ip` cannot be a host address (fixed IP or VIP address), if it cannot.
fn host_problem(ip: IpAddr) -> Option<&'static str> {
    if ip.is_unspecified() {
        Some("is the unspecified address")
    } else if ip.is_multicast() {
        Some("is a multicast address")
    } else if ip.is_loopback() {
        Some("is a loopback address")
    } else if ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
        Some("is the broadcast address")
    } else {
        None
    }
}

/// For a fixed IP written with a prefix: why the address is not a usable host address of
/// that prefix (the network or broadcast address), if it is not.
fn prefix_host_problem(net: IpNet) -> Option<&'static str> {
    match net {
        IpNet::V4(n) if n.prefix_len() <= 30 => {
            if n.addr() == n.network() {
                Some("is the network address of its prefix, not a host address")
            } else if n.addr() == n.broadcast() {
                Some("is the broadcast address of its prefix, not a host address")
            } else {
                None
            }
        }
        IpNet::V6(n) if n.prefix_len() <= 126 && n.addr() == n.network() => {
            Some("is the subnet-router anycast address of its prefix, not a host address")
        }
        _ => None,
    }
}

fn mac_syntax(s: &str) -> String {
    format!("{s:?} is not a MAC address (expected six hex octets like 02:00:00:00:00:11)")
}

impl Validator {
    fn err(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            reason: reason.into(),
        });
    }

    /// An integer setting in `lo..=hi`; `None` (after recording an error) if out of range.
    fn int(&mut self, field: &str, v: i64, lo: i64, hi: i64) -> Option<i64> {
        if (lo..=hi).contains(&v) {
            Some(v)
        } else {
            self.err(field, format!("must be between {lo} and {hi} (got {v})"));
            None
        }
    }

    /// A duration in seconds, `0 < v <= max`; `None` (after recording an error) otherwise.
    fn secs(&mut self, field: &str, v: f64, max: f64) -> Option<Duration> {
        if v > 0.0 && v <= max {
            if let Ok(d) = Duration::try_from_secs_f64(v) {
                return Some(d);
            }
        }
        self.err(
            field,
            format!("must be a number of seconds greater than 0 and at most {max} (got {v})"),
        );
        None
    }

    /// A MAC that must be unicast and not all-zero.
    fn unicast_mac(&mut self, field: &str, s: &str, what: &str) -> Option<MacAddr> {
        match s.parse::<MacAddr>() {
            Err(_) => {
                self.err(field, mac_syntax(s));
                None
            }
            Ok(m) if m == MacAddr::ZERO => {
                self.err(
                    field,
                    format!("{m} is all-zero; {what} must be a unicast MAC"),
                );
                None
            }
            Ok(m) if m.is_multicast() => {
                self.err(
                    field,
                    format!(
                        "{m} is a multicast/broadcast MAC (low bit of the first octet set); \
                         {what} must be unicast"
                    ),
                );
                None
            }
            Ok(m) if m == crate::discovery::SWITCH_MAC => {
                self.err(
                    field,
                    format!("{m} is the switch's own MAC (it asks VMs who holds a VIP from it); {what} must be another one"),
                );
                None
            }
            Ok(m) => Some(m),
        }
    }

    fn damping(
        &mut self,
        prefix: &str,
        max_moves: Option<i64>,
        window_secs: Option<f64>,
        default: Damping,
    ) -> Damping {
        let max_moves = max_moves
            .and_then(|m| {
                self.int(
                    &format!("{prefix}damping_max_moves"),
                    m,
                    0,
                    i64::from(u32::MAX),
                )
            })
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(default.max_moves);
        let window = window_secs
            .and_then(|w| {
                self.secs(
                    &format!("{prefix}damping_window_secs"),
                    w,
                    MAX_DAMPING_WINDOW_SECS,
                )
            })
            .unwrap_or(default.window);
        Damping { max_moves, window }
    }

    fn switch(&mut self, raw: Option<&RawSwitch>) -> SwitchSettings {
        let Some(raw) = raw else {
            return SwitchSettings::default();
        };
        let mac_aging = raw
            .mac_aging_secs
            .and_then(|v| self.int("switch.mac_aging_secs", v, 1, MAX_AGING_SECS))
            .and_then(|v| u64::try_from(v).ok())
            .map_or(DEFAULT_MAC_AGING, Duration::from_secs);
        let fdb_size = raw
            .fdb_size
            .and_then(|v| self.int("switch.fdb_size", v, 1, MAX_FDB_ENTRIES))
            .and_then(|v| usize::try_from(v).ok())
            .unwrap_or(DEFAULT_FDB_SIZE);
        let fdb_port_limit = raw
            .fdb_port_limit
            .and_then(|v| self.int("switch.fdb_port_limit", v, 1, MAX_FDB_ENTRIES))
            .and_then(|v| usize::try_from(v).ok())
            .unwrap_or(DEFAULT_FDB_PORT_LIMIT);
        let mtu = raw
            .mtu
            .and_then(|v| self.int("switch.mtu", v, MIN_MTU, MAX_MTU))
            .and_then(|v| u16::try_from(v).ok())
            .unwrap_or(DEFAULT_MTU);
        let damping = self.damping(
            "switch.",
            raw.damping_max_moves,
            raw.damping_window_secs,
            Damping {
                max_moves: DEFAULT_DAMPING_MAX_MOVES,
                window: DEFAULT_DAMPING_WINDOW,
            },
        );
        let state_dir = match raw.state_dir.as_deref() {
            None => PathBuf::from(DEFAULT_STATE_DIR),
            Some(d) if d.is_empty() || !Path::new(d).is_absolute() => {
                self.err(
                    "switch.state_dir",
                    format!("{d:?} is not an absolute path; the VIP state file lives there"),
                );
                PathBuf::from(DEFAULT_STATE_DIR)
            }
            Some(d) => PathBuf::from(d),
        };
        let ctl_group = raw
            .ctl_group
            .as_deref()
            .and_then(|name| self.ctl_group(name))
            .unwrap_or_default();
        let workers = raw
            .workers
            .and_then(|v| self.int("switch.workers", v, 1, MAX_WORKERS as i64))
            .and_then(|v| usize::try_from(v).ok())
            .unwrap_or(1);
        let io = match raw.io.as_deref() {
            None | Some("auto") => IoEngine::Auto,
            Some("uring") => IoEngine::Uring,
            Some("epoll") => IoEngine::Epoll,
            Some(other) => {
                self.err(
                    "switch.io",
                    format!("must be \"auto\", \"uring\" or \"epoll\" (got {other:?})"),
                );
                IoEngine::Auto
            }
        };
        SwitchSettings {
            mac_aging,
            fdb_size,
            fdb_port_limit,
            mtu,
            damping,
            state_dir,
            ctl_group,
            io,
            workers,
        }
    }

    /// `switch.ctl_group`: a group that exists on this host.
    fn ctl_group(&mut self, name: &str) -> Option<CtlGroup> {
        const FIELD: &str = "switch.ctl_group";
        if let Some(why) = group_name_problem(name) {
            self.err(FIELD, why);
            return None;
        }
        match lookup_group(name) {
            Ok(Some(gid)) => Some(CtlGroup {
                name: Some(name.to_string()),
                gid,
            }),
            Ok(None) => {
                self.err(
                    FIELD,
                    format!(
                        "no group named {name:?} on this host (`getent group {name}` finds \
                         nothing); create it (groupadd) or name an existing group"
                    ),
                );
                None
            }
            Err(e) => {
                self.err(
                    FIELD,
                    format!("cannot look up group {name:?} in the group database: {e}"),
                );
                None
            }
        }
    }

    fn ports(&mut self, raw: &[RawPort], switch: &SwitchSettings) -> CheckedPorts {
        let mut out = CheckedPorts {
            ports: Vec::with_capacity(raw.len()),
            by_name: HashMap::new(),
            labels: Vec::with_capacity(raw.len()),
            vlan_ok: Vec::with_capacity(raw.len()),
            fixed_ips: HashMap::new(),
            macs: HashMap::new(),
        };
        // Interface name → label of the port that uses it (taps and netdevs share one
        // namespace: the host's).
        let mut ifnames: HashMap<String, String> = HashMap::new();
        // (vlan, fixed IP) → label.
        let mut vlan_ips: HashMap<(u16, IpAddr), String> = HashMap::new();

        for (i, rp) in raw.iter().enumerate() {
            let label = port_label(i, rp.name.as_deref());

            // name
            let name = match &rp.name {
                None => {
                    self.err(format!("{label}.name"), "is required");
                    String::new()
                }
                Some(n) => {
                    if let Some(why) = name_problem(n) {
                        self.err(format!("{label}.name"), why);
                    }
                    // An invalid but unique name is still indexed, so VIP candidates that
                    // name it do not pile a "no port named" error on top.
                    if let Some(&j) = out.by_name.get(n) {
                        let other = out.labels.get(j).cloned().unwrap_or_default();
                        self.err(
                            format!("{label}.name"),
                            format!("duplicate port name: {other} has the same name"),
                        );
                    } else {
                        out.by_name.insert(n.clone(), i);
                    }
                    n.clone()
                }
            };

            // binding
            let mut check_ifname = |v: &mut Self, key: &str, ifname: &str| {
                let field = format!("{label}.{key}");
                if let Some(why) = ifname_problem(ifname) {
                    v.err(field, why);
                } else if let Some(other) = ifnames.get(ifname) {
                    v.err(
                        field,
                        format!("interface {ifname:?} is already used by {other}"),
                    );
                } else {
                    ifnames.insert(ifname.to_string(), label.clone());
                }
            };
            let binding = match (&rp.tap, &rp.netdev) {
                (Some(t), None) => {
                    check_ifname(self, "tap", t);
                    PortBinding::Tap(t.clone())
                }
                (None, Some(n)) => {
                    check_ifname(self, "netdev", n);
                    PortBinding::Netdev(n.clone())
                }
                (Some(t), Some(n)) => {
                    self.err(
                        label.clone(),
                        format!(
                            "has both tap = {t:?} and netdev = {n:?}; set exactly one \
                             (tap: a tap device the switch creates; netdev: an existing interface)"
                        ),
                    );
                    PortBinding::Tap(t.clone())
                }
                (None, None) => {
                    self.err(
                        label.clone(),
                        "needs exactly one of tap = \"...\" (a tap device the switch creates) \
                         or netdev = \"...\" (an existing interface such as a libvirt vnetN)",
                    );
                    PortBinding::Tap(String::new())
                }
            };

            // mac
            let mac_field = format!("{label}.mac");
            let mac = match &rp.mac {
                None => {
                    self.err(mac_field, "is required");
                    None
                }
                Some(s) => match self.unicast_mac(&mac_field, s, "a port MAC") {
                    Some(m) => {
                        if let Some(other) = out.macs.get(&m) {
                            self.err(mac_field, format!("{m} is already the MAC of {other}"));
                        } else {
                            out.macs.insert(m, label.clone());
                        }
                        Some(m)
                    }
                    None => None,
                },
            };
            let mac = mac.unwrap_or(MacAddr::ZERO);

            // vlan, mtu
            let vlan = match rp.vlan {
                None => Some(0),
                Some(v) => self
                    .int(&format!("{label}.vlan"), v, 0, MAX_VLAN)
                    .and_then(|v| u16::try_from(v).ok()),
            };
            let vlan_ok = vlan.is_some();
            let vlan = vlan.unwrap_or(0);
            let mtu = rp
                .mtu
                .and_then(|v| self.int(&format!("{label}.mtu"), v, MIN_MTU, MAX_MTU))
                .and_then(|v| u16::try_from(v).ok())
                .unwrap_or(switch.mtu);

            // fixed ips
            let mut ips: Vec<IpAddr> = Vec::with_capacity(rp.ips.len());
            for (k, s) in rp.ips.iter().enumerate() {
                let field = format!("{label}.ips[{k}]");
                let net = match parse_ip_or_cidr(s) {
                    Ok(n) => n,
                    Err(_) => {
                        self.err(field, format!("{s:?} is not an IP or CIDR"));
                        continue;
                    }
                };
                let ip = net.addr();
                if let Some(why) = host_problem(ip).or_else(|| prefix_host_problem(net)) {
                    self.err(
                        field,
                        format!(
                            "{s:?} {why}; a fixed IP is one host address \
                             (use allowed_address_pairs to allow a range)"
                        ),
                    );
                    continue;
                }
                if let Some(j) = ips.iter().position(|x| *x == ip) {
                    self.err(field, format!("{ip} is listed twice (also ips[{j}])"));
                    continue;
                }
                ips.push(ip);
                if vlan_ok {
                    if let Some(other) = vlan_ips.get(&(vlan, ip)) {
                        self.err(
                            field,
                            format!("{ip} is already a fixed IP of {other} in vlan {vlan}"),
                        );
                    } else {
                        vlan_ips.insert((vlan, ip), label.clone());
                    }
                }
                out.fixed_ips.entry(ip).or_insert_with(|| label.clone());
            }

            // allowed address pairs
            let mut pairs: Vec<AddressPair> = Vec::with_capacity(rp.allowed_address_pairs.len());
            for (k, rpair) in rp.allowed_address_pairs.iter().enumerate() {
                let base = format!("{label}.allowed_address_pairs[{k}]");
                let ip = match &rpair.ip {
                    None => {
                        self.err(
                            format!("{base}.ip"),
                            "is required (an IP or CIDR, e.g. \"10.0.9.0/24\")",
                        );
                        None
                    }
                    Some(s) => match parse_ip_or_cidr(s) {
                        Ok(n) => Some(n.trunc()),
                        Err(_) => {
                            self.err(format!("{base}.ip"), format!("{s:?} is not an IP or CIDR"));
                            None
                        }
                    },
                };
                let pair_mac = match &rpair.mac {
                    None => Some(mac),
                    Some(s) => self.unicast_mac(&format!("{base}.mac"), s, "a pair MAC"),
                };
                if let (Some(ip), Some(pair_mac)) = (ip, pair_mac) {
                    let pair = AddressPair { ip, mac: pair_mac };
                    if let Some(j) = pairs.iter().position(|p| *p == pair) {
                        self.err(
                            base,
                            format!(
                                "{ip} with mac {pair_mac} is listed twice \
                                 (also allowed_address_pairs[{j}])"
                            ),
                        );
                    } else {
                        pairs.push(pair);
                    }
                }
            }

            out.labels.push(label);
            out.vlan_ok.push(vlan_ok);
            out.ports.push(PortConfig {
                name,
                binding,
                mac,
                ips,
                vlan,
                mtu,
                port_security: rp.port_security.unwrap_or(true),
                dest_check: rp.dest_check.unwrap_or(true),
                dhcp_server: rp.dhcp_server.unwrap_or(false),
                admin_up: rp.admin_up.unwrap_or(true),
                allowed_address_pairs: pairs,
            });
        }
        out
    }

    fn vips(
        &mut self,
        raw: &[RawVip],
        ports: &CheckedPorts,
        switch: &SwitchSettings,
        cands: Candidates,
    ) -> Vec<VipConfig> {
        let mut out = Vec::with_capacity(raw.len());
        let mut names: HashMap<String, String> = HashMap::new();
        // VIP address → label of the VIP that has it. VIP addresses are global (the VIP
        // table is keyed by address alone), so this spans all vlans.
        let mut addrs: HashMap<IpAddr, String> = HashMap::new();

        for (i, rv) in raw.iter().enumerate() {
            let label = vip_label(i, rv.name.as_deref());
            let mode = rv.mode.unwrap_or(VipMode::ActivePassive);

            // name
            let name = match &rv.name {
                None => {
                    self.err(format!("{label}.name"), "is required");
                    String::new()
                }
                Some(n) => {
                    if let Some(why) = name_problem(n) {
                        self.err(format!("{label}.name"), why);
                    }
                    if let Some(other) = names.get(n) {
                        self.err(
                            format!("{label}.name"),
                            format!("duplicate vip name: {other} has the same name"),
                        );
                    } else {
                        names.insert(n.clone(), label.clone());
                    }
                    n.clone()
                }
            };

            // addresses
            if rv.addresses.is_empty() {
                self.err(
                    format!("{label}.addresses"),
                    "needs at least one address (e.g. [\"10.0.0.100\"])",
                );
            }
            let mut addresses: Vec<IpAddr> = Vec::with_capacity(rv.addresses.len());
            for (k, s) in rv.addresses.iter().enumerate() {
                let field = format!("{label}.addresses[{k}]");
                let net = match parse_ip_or_cidr(s) {
                    Ok(n) => n,
                    Err(_) => {
                        self.err(field, format!("{s:?} is not an IP address"));
                        continue;
                    }
                };
                if net.prefix_len() != net.max_prefix_len() {
                    self.err(
                        field,
                        format!(
                            "{s:?} has a /{} prefix; a VIP address is a single address \
                             (write it without a prefix)",
                            net.prefix_len()
                        ),
                    );
                    continue;
                }
                let ip = net.addr();
                if let Some(why) = host_problem(ip) {
                    self.err(field, format!("{s:?} {why}"));
                    continue;
                }
                if let Some(j) = addresses.iter().position(|x| *x == ip) {
                    self.err(field, format!("{ip} is listed twice (also addresses[{j}])"));
                    continue;
                }
                addresses.push(ip);
                if let Some(other) = ports.fixed_ips.get(&ip) {
                    self.err(
                        field.clone(),
                        format!(
                            "{ip} is a fixed IP of {other}; a VIP address must not be any \
                             port's fixed IP (make the port a candidate instead)"
                        ),
                    );
                }
                if let Some(other) = addrs.get(&ip) {
                    self.err(field, format!("{ip} is already an address of {other}"));
                } else {
                    addrs.insert(ip, label.clone());
                }
            }

            // candidates
            if rv.candidates.is_empty() {
                self.err(
                    format!("{label}.candidates"),
                    "needs at least one candidate port",
                );
            }
            let mut candidates: Vec<String> = Vec::with_capacity(rv.candidates.len());
            // (candidates index, port index) of the first candidate with a valid vlan.
            let mut vlan_ref: Option<(usize, usize)> = None;
            for (k, c) in rv.candidates.iter().enumerate() {
                let field = format!("{label}.candidates[{k}]");
                if let Some(j) = candidates.iter().position(|x| x == c) {
                    self.err(
                        field,
                        format!("{c:?} is listed twice (also candidates[{j}])"),
                    );
                    continue;
                }
                candidates.push(c.clone());
                let Some(&pi) = ports.by_name.get(c) else {
                    match cands {
                        Candidates::Local => self.err(field, format!("no port named {c:?}")),
                        Candidates::Cluster => {
                            if let Some(why) = name_problem(c) {
                                self.err(field, format!("{c:?} is not a port name: {why}"));
                            }
                        }
                    }
                    continue;
                };
                if !ports.vlan_ok.get(pi).copied().unwrap_or(false) {
                    continue;
                }
                match vlan_ref {
                    None => vlan_ref = Some((k, pi)),
                    Some((rk, rpi)) => {
                        let (Some(p), Some(rp)) = (ports.ports.get(pi), ports.ports.get(rpi))
                        else {
                            continue;
                        };
                        if p.vlan != rp.vlan {
                            self.err(
                                field,
                                format!(
                                    "port {c:?} is in vlan {} but {:?} (candidates[{rk}]) is in \
                                     vlan {}; all candidates of a vip must share one vlan",
                                    p.vlan, rp.name, rp.vlan
                                ),
                            );
                        }
                    }
                }
            }
            let vlan = vlan_ref
                .and_then(|(_, pi)| ports.ports.get(pi))
                .map_or(0, |p| p.vlan);

            // initial owners
            let mut initial_owners: Vec<String> = Vec::new();
            if let Some(o) = &rv.owner {
                let field = format!("{label}.owner");
                if mode == VipMode::ActiveActive {
                    self.err(
                        field,
                        "is only for active-passive groups; an active-active group lists its \
                         initial owners in owners = [...]",
                    );
                } else if !rv.candidates.contains(o) {
                    self.err(field, format!("{o:?} is not one of this vip's candidates"));
                } else {
                    initial_owners.push(o.clone());
                }
            }
            if let Some(list) = &rv.owners {
                if mode == VipMode::ActivePassive {
                    self.err(
                        format!("{label}.owners"),
                        "is only for active-active groups; an active-passive group names its \
                         single initial owner in owner = \"...\"",
                    );
                } else {
                    for (k, o) in list.iter().enumerate() {
                        let field = format!("{label}.owners[{k}]");
                        if let Some(j) = list.iter().take(k).position(|x| x == o) {
                            self.err(field, format!("{o:?} is listed twice (also owners[{j}])"));
                        } else if !rv.candidates.contains(o) {
                            self.err(field, format!("{o:?} is not one of this vip's candidates"));
                        } else {
                            initial_owners.push(o.clone());
                        }
                    }
                }
            }

            let release_on_port_loss = rv.release_on_port_loss.unwrap_or(false);
            if release_on_port_loss && mode == VipMode::ActiveActive {
                self.err(
                    format!("{label}.release_on_port_loss"),
                    "is only for active-passive groups; an active-active group always drops \
                     an owner whose port goes down",
                );
            }

            let step_down_on_crash = match rv.step_down_on_crash {
                Some(true) if mode == VipMode::ActiveActive => {
                    self.err(
                        format!("{label}.step_down_on_crash"),
                        "is only for active-passive groups (an active-active group drops a \
                         crashed owner at once; there is no VRRP master to resign for)",
                    );
                    false
                }
                Some(b) => b,
                None => mode == VipMode::ActivePassive,
            };

            let vrrp_vrid = rv
                .vrrp_vrid
                .and_then(|v| self.int(&format!("{label}.vrrp_vrid"), v, 1, 255))
                .and_then(|v| u8::try_from(v).ok());

            let virtual_mac = match &rv.virtual_mac {
                None => None,
                Some(s) => {
                    let field = format!("{label}.virtual_mac");
                    if mode == VipMode::ActivePassive {
                        self.err(
                            field,
                            "is only for active-active groups; an active-passive vip is \
                             answered with its current owner's MAC",
                        );
                        None
                    } else {
                        let m = self.unicast_mac(&field, s, "a virtual MAC");
                        if let Some(other) = m.and_then(|m| ports.macs.get(&m)) {
                            self.err(
                                field,
                                format!("{s} is the MAC of {other}; use a MAC of its own"),
                            );
                        }
                        m
                    }
                }
            };

            let damping = self.damping(
                &format!("{label}."),
                rv.damping_max_moves,
                rv.damping_window_secs,
                switch.damping,
            );

            let owner_liveness = match rv.owner_liveness_secs {
                None => None,
                Some(_) if mode == VipMode::ActivePassive => {
                    self.err(
                        format!("{label}.owner_liveness_secs"),
                        "is only for active-active groups (an active-passive owner stays \
                         until another candidate claims the vip)",
                    );
                    None
                }
                Some(s) => self.secs(
                    &format!("{label}.owner_liveness_secs"),
                    s,
                    MAX_AGING_SECS as f64,
                ),
            };

            out.push(VipConfig {
                name,
                addresses,
                mode,
                candidates,
                vlan,
                initial_owners,
                release_on_port_loss,
                step_down_on_crash,
                vrrp_vrid,
                virtual_mac,
                damping,
                owner_liveness,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctl_group_unknown_is_an_error_naming_the_field() {
        let e = Config::from_toml_str("[switch]\nctl_group = \"vswitch-no-such-group-x9\"\n")
            .unwrap_err();
        let f = e.field_errors();
        assert_eq!(f.len(), 1, "{e}");
        assert_eq!(f[0].field, "switch.ctl_group");
        assert!(f[0].reason.contains("no group named"), "{e}");
        assert!(f[0].reason.contains("vswitch-no-such-group-x9"), "{e}");
    }

    #[test]
    fn io_engine_values_default_and_error() {
        assert_eq!(Config::from_toml_str("").unwrap().switch.io, IoEngine::Auto);
        for (v, want) in [
            ("auto", IoEngine::Auto),
            ("uring", IoEngine::Uring),
            ("epoll", IoEngine::Epoll),
        ] {
            let c = Config::from_toml_str(&format!("[switch]\nio = {v:?}\n")).unwrap();
            assert_eq!(c.switch.io, want);
            assert_eq!(want.as_str(), v);
        }
        let e = Config::from_toml_str("[switch]\nio = \"io_uring\"\n").unwrap_err();
        let f = e.field_errors();
        assert_eq!(f.len(), 1, "{e}");
        assert_eq!(f[0].field, "switch.io");
        assert!(
            f[0].reason.contains("\"auto\", \"uring\" or \"epoll\"")
                && f[0].reason.contains("io_uring"),
            "{e}"
        );
    }

    #[test]
    fn workers_range_default_and_cluster_mode() {
        assert_eq!(Config::from_toml_str("").unwrap().switch.workers, 1);
        let c = Config::from_toml_str("[switch]\nworkers = 2\n").unwrap();
        assert_eq!(c.switch.workers, 2);
        for bad in ["0", "65", "-1"] {
            let e = Config::from_toml_str(&format!("[switch]\nworkers = {bad}\n")).unwrap_err();
            let f = e.field_errors();
            assert_eq!(f[0].field, "switch.workers", "{bad}: {e}");
            assert!(f[0].reason.contains("between 1 and 64"), "{e}");
        }
        let cluster = "[switch]\nworkers = 2\n[[port]]\nname = \"web1\"\ntap = \"tap-web1\"\n\
                       mac = \"02:00:00:00:00:11\"\nmtu = 1450\n[cluster]\n\
                       endpoints = [\"http://10.250.0.11:2379\"]\nhost = \"host-a\"\n\
                       vtep = \"10.250.1.1\"\nvlans = [{ vlan = 0, vni = 5000 }]\n";
        match Config::from_toml_str(cluster) {
            Err(e) => {
                let f = e.field_errors();
                assert!(
                    f.iter().any(|f| f.field == "switch.workers"
                        && f.reason.contains("cluster mode runs one worker")),
                    "{e}"
                );
            }
            Ok(_) => panic!("workers = 2 with [cluster] must be refused"),
        }
    }

    #[test]
    fn ctl_group_bad_name_is_an_error() {
        for bad in ["", "a b", "a:b"] {
            let text = format!("[switch]\nctl_group = {bad:?}\n");
            let e = Config::from_toml_str(&text).unwrap_err();
            assert_eq!(
                e.field_errors()[0].field,
                "switch.ctl_group",
                "{bad:?}: {e}"
            );
        }
    }

    #[test]
    fn ctl_group_resolves_and_defaults_to_gid_0() {
        let c = Config::from_toml_str("[switch]\nctl_group = \"root\"\n").unwrap();
        assert_eq!(
            c.switch.ctl_group,
            CtlGroup {
                name: Some("root".into()),
                gid: 0
            }
        );
        let c = Config::from_toml_str("[switch]\nmtu = 1500\n").unwrap();
        assert_eq!(c.switch.ctl_group, CtlGroup::default());
        assert_eq!(c.switch.ctl_group.gid, 0);
    }

    #[test]
    fn names() {
        assert!(name_problem("web-1.a_b").is_none());
        assert!(name_problem("").is_some());
        assert!(name_problem("a b").is_some());
        assert!(name_problem(&"a".repeat(33)).is_some());
        assert!(name_problem(&"a".repeat(32)).is_none());
    }

    #[test]
    fn ifnames() {
        assert!(ifname_problem("tap-web1").is_none());
        assert!(ifname_problem("123456789012345").is_none());
        assert!(ifname_problem("1234567890123456").is_some());
        assert!(ifname_problem(".").is_some());
        assert!(ifname_problem("..").is_some());
        assert!(ifname_problem("a/b").is_some());
        assert!(ifname_problem("a:1").is_some());
        assert!(ifname_problem("a b").is_some());
        assert!(ifname_problem("").is_some());
    }

    #[test]
    fn host_addresses() {
        let p = |s: &str| parse_ip_or_cidr(s).unwrap();
        assert!(prefix_host_problem(p("10.0.0.11/24")).is_none());
        assert!(prefix_host_problem(p("10.0.0.0/24")).is_some());
        assert!(prefix_host_problem(p("10.0.0.255/24")).is_some());
        assert!(prefix_host_problem(p("10.0.0.0/31")).is_none());
        assert!(prefix_host_problem(p("fd00::/64")).is_some());
        assert!(prefix_host_problem(p("fd00::1/64")).is_none());
        assert!(host_problem("0.0.0.0".parse().unwrap()).is_some());
        assert!(host_problem("224.0.0.18".parse().unwrap()).is_some());
        assert!(host_problem("::1".parse().unwrap()).is_some());
        assert!(host_problem("255.255.255.255".parse().unwrap()).is_some());
        assert!(host_problem("fe80::1".parse().unwrap()).is_none());
    }
}
