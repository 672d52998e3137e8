//! The file form of the configuration, exactly as serde reads it from TOML.
//!
//! Everything the validator can judge with a better message than serde is kept loose
//! here: numbers are `i64` (so `vlan = -1` is a range error with a field path, not a type
//! error), addresses and MACs are strings, and required fields are `Option` (so a missing
//! name is reported together with every other problem). Only the shape — tables, arrays,
//! value types and field names — is enforced by serde, with `deny_unknown_fields` on
//! every table.

use serde::{Deserialize, Serialize};
use vip_table::VipMode;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub switch: Option<RawSwitch>,
    #[serde(default, rename = "port")]
    pub ports: Vec<RawPort>,
    #[serde(default, rename = "vip")]
    pub vips: Vec<RawVip>,
    #[serde(default)]
    pub cluster: Option<RawCluster>,
}

/// `[cluster]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    #[serde(default)]
    pub endpoints: Vec<String>,
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub host: Option<String>,
    pub vtep: Option<String>,
    pub underlay_mtu: Option<i64>,
    #[serde(default)]
    pub vlans: Vec<RawVlanVni>,
    pub lease_ttl_secs: Option<i64>,
    pub udp_gso: Option<String>,
    pub gro: Option<bool>,
}

/// One entry of `cluster.vlans`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVlanVni {
    pub vlan: Option<i64>,
    pub vni: Option<i64>,
}

/// `[switch]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSwitch {
    pub mac_aging_secs: Option<i64>,
    pub fdb_size: Option<i64>,
    pub fdb_port_limit: Option<i64>,
    pub mtu: Option<i64>,
    pub damping_max_moves: Option<i64>,
    pub damping_window_secs: Option<f64>,
    pub state_dir: Option<String>,
    pub ctl_group: Option<String>,
    pub io: Option<String>,
    pub workers: Option<i64>,
}

/// `[[port]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPort {
    pub name: Option<String>,
    pub tap: Option<String>,
    pub netdev: Option<String>,
    pub mac: Option<String>,
    #[serde(default)]
    pub ips: Vec<String>,
    pub vlan: Option<i64>,
    pub mtu: Option<i64>,
    pub port_security: Option<bool>,
    pub dest_check: Option<bool>,
    pub dhcp_server: Option<bool>,
    pub admin_up: Option<bool>,
    #[serde(default)]
    pub allowed_address_pairs: Vec<RawPair>,
}

/// One entry of `allowed_address_pairs`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPair {
    pub ip: Option<String>,
    pub mac: Option<String>,
}

/// `[[vip]]`: also the definition of a cluster VIP group (`vswitch ctl cluster apply`,
/// the etcd record `/vswitch/v1/vips/<name>`), validated by the same rules.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawVip {
    /// Group name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Addresses.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Ownership model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<VipMode>,
    /// Candidate port names.
    #[serde(default)]
    pub candidates: Vec<String>,
    /// Initial owner (A/P).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Initial owners (A/A).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owners: Option<Vec<String>>,
    /// See [`super::VipConfig::release_on_port_loss`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_on_port_loss: Option<bool>,
    /// See [`super::VipConfig::step_down_on_crash`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_down_on_crash: Option<bool>,
    /// VRRP router id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vrrp_vrid: Option<i64>,
    /// A/A answer MAC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub virtual_mac: Option<String>,
    /// Damping: moves per window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub damping_max_moves: Option<i64>,
    /// Damping window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub damping_window_secs: Option<f64>,
    /// A/A owner liveness.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_liveness_secs: Option<f64>,
}
