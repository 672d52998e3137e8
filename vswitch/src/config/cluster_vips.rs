//! Cluster VIP groups: `[[vip]]` definitions that live in the cluster store (etcd key
//! `/vswitch/v1/vips/<name>`) instead of one host's file.
//!
//! Contract:
//! - a definition ([`VipDef`]) has exactly the fields of a file's `[[vip]]` table and is
//!   validated by the same code ([`cluster_vip_configs`]), except that a candidate may be a
//!   port of any host of the cluster (it needs only a valid port name) and the checks
//!   against one file's ports (fixed IPs, port MACs) are left to each host's merge;
//! - [`vip_defs_from_toml`] reads the file of `vswitch ctl cluster apply`: `[[vip]]`
//!   tables and nothing else, every problem named by its field (`vip[1] "db".addresses[0]`);
//! - [`merge_cluster_vips`] is the effective configuration of one host: the file's groups
//!   plus the cluster's. A cluster group whose name or an address is already the file's
//!   (or an earlier cluster group's), or whose address is a local port's fixed IP, is
//!   skipped with a reason (the file wins: a host's own definition is never replaced from
//!   the store). A candidate that is a local port makes the group's VLAN that port's.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::Deserialize;

pub use super::raw::RawVip as VipDef;
use super::{Config, ConfigError, VipConfig};

/// The file of `vswitch ctl cluster apply`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VipFile {
    #[serde(default, rename = "vip")]
    vips: Vec<VipDef>,
}

/// Parse and validate a TOML text of `[[vip]]` tables; the definitions as written.
pub fn vip_defs_from_toml(text: &str) -> Result<Vec<VipDef>, ConfigError> {
    let f: VipFile =
        toml::from_str(text).map_err(|error| ConfigError::Syntax { path: None, error })?;
    cluster_vip_configs(&f.vips)?;
    Ok(f.vips)
}

/// Validate definitions together (names and addresses unique among them); the groups,
/// with `vlan` 0.
pub fn cluster_vip_configs(defs: &[VipDef]) -> Result<Vec<VipConfig>, ConfigError> {
    super::validate::validate_cluster_vips(defs)
}

/// Definitions as a TOML text of `[[vip]]` tables (what `cluster show` prints; `cluster
/// apply` reads it back).
pub fn vip_defs_to_toml(defs: &[VipDef]) -> String {
    #[derive(serde::Serialize)]
    struct Out<'a> {
        vip: &'a [VipDef],
    }
    toml::to_string(&Out { vip: defs }).unwrap_or_default()
}

/// A cluster group with the VLAN its candidates are in (as the cluster's port records
/// say; a local candidate's VLAN wins in [`merge_cluster_vips`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterVip {
    /// The validated group.
    pub group: VipConfig,
    /// Its candidates' VLAN.
    pub vlan: u16,
}

/// The file's configuration plus the cluster groups that do not clash with it; the
/// skipped groups with why.
pub fn merge_cluster_vips(
    file: &Config,
    cluster: &[ClusterVip],
) -> (Config, Vec<(String, String)>) {
    let mut cfg = file.clone();
    let mut skipped = Vec::new();
    let mut addrs: HashMap<IpAddr, String> = HashMap::new();
    for v in &cfg.vips {
        for a in &v.addresses {
            addrs.insert(*a, format!("vip {:?} of the configuration file", v.name));
        }
    }
    for p in &cfg.ports {
        for ip in &p.ips {
            addrs.insert(*ip, format!("a fixed IP of local port {:?}", p.name));
        }
    }
    for c in cluster {
        let g = &c.group;
        if cfg.vips.iter().any(|v| v.name == g.name) {
            skipped.push((
                g.name.clone(),
                "a vip of that name is in the configuration file (the file's stays)".into(),
            ));
            continue;
        }
        if let Some((a, other)) = g
            .addresses
            .iter()
            .find_map(|a| addrs.get(a).map(|o| (*a, o.clone())))
        {
            skipped.push((g.name.clone(), format!("address {a} is already {other}")));
            continue;
        }
        let mut g = g.clone();
        g.vlan = g
            .candidates
            .iter()
            .find_map(|c| cfg.port(c).map(|p| p.vlan))
            .unwrap_or(c.vlan);
        for a in &g.addresses {
            addrs.insert(*a, format!("an address of cluster vip {:?}", g.name));
        }
        cfg.vips.push(g);
    }
    (cfg, skipped)
}

#[cfg(test)]
mod tests;
