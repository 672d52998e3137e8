//! The etcd key schema (version 1) and the records stored under it.
//!
//! ```text
//! /vswitch/v1/hosts/<host>   HostRecord (JSON)   under the host's lease
//! /vswitch/v1/ports/<port>   PortRecord (JSON)   under the lease of the host that has the port
//! /vswitch/v1/vips/<vip>     VipDef (JSON)       no lease; written by `ctl cluster apply`
//! /vswitch/v1/owners/<vip>   OwnerRecord (JSON)  no lease; written by the claiming host
//! ```
//!
//! Host and port names are validated names (`[a-z0-9-]` hosts, `[A-Za-z0-9_.-]` ports), so
//! they never contain `/`. Everything read back from etcd is outside input: [`parse_key`]
//! and [`decode`] never panic, and a record that does not decode is skipped by the caller
//! (logged and counted), never trusted. Unknown JSON fields are ignored so that a newer
//! agent can add fields without breaking older ones; a change that older agents would
//! misread takes a new prefix (`/vswitch/v2/`).

use serde::{Deserialize, Serialize};
use vswitch::view::PortView;

/// The prefix of every key this schema version writes.
pub const PREFIX: &str = "/vswitch/v1/";
/// The prefix of host records.
pub const HOSTS: &str = "/vswitch/v1/hosts/";
/// The prefix of port records.
pub const PORTS: &str = "/vswitch/v1/ports/";
/// The prefix of cluster VIP group definitions.
pub const VIPS: &str = "/vswitch/v1/vips/";
/// The prefix of ownership records.
pub const OWNERS: &str = "/vswitch/v1/owners/";

/// `/vswitch/v1/vips/<vip>`.
pub fn vip_key(vip: &str) -> String {
    format!("{VIPS}{vip}")
}

/// `/vswitch/v1/owners/<vip>`.
pub fn owner_key(vip: &str) -> String {
    format!("{OWNERS}{vip}")
}

/// `/vswitch/v1/hosts/<host>`.
pub fn host_key(host: &str) -> String {
    format!("{HOSTS}{host}")
}

/// `/vswitch/v1/ports/<port>`.
pub fn port_key(port: &str) -> String {
    format!("{PORTS}{port}")
}

/// What a key under [`PREFIX`] names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    /// A host record.
    Host(String),
    /// A port record.
    Port(String),
    /// A cluster VIP group.
    Vip(String),
    /// The ownership record of a VIP group.
    Owner(String),
}

/// The object a key names; `None` for keys outside the schema (another prefix, an empty
/// or nested name, bytes that are not UTF-8).
pub fn parse_key(key: &[u8]) -> Option<Key> {
    let key = std::str::from_utf8(key).ok()?;
    let name = |rest: &str| (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_string());
    if let Some(rest) = key.strip_prefix(HOSTS) {
        name(rest).map(Key::Host)
    } else if let Some(rest) = key.strip_prefix(PORTS) {
        name(rest).map(Key::Port)
    } else if let Some(rest) = key.strip_prefix(VIPS) {
        name(rest).map(Key::Vip)
    } else if let Some(rest) = key.strip_prefix(OWNERS) {
        name(rest).map(Key::Owner)
    } else {
        None
    }
}

/// A host: `/vswitch/v1/hosts/<host>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    /// The host's name (the key's last part).
    pub host: String,
    /// Its VTEP: the underlay IPv4 address its VXLAN socket binds.
    pub vtep: String,
    /// The agent's version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// When this agent started, in milliseconds since the Unix epoch: tells a restarted
    /// agent from the one before it.
    pub started_at_ms: u64,
}

/// A port: `/vswitch/v1/ports/<port>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRecord {
    /// The port's name, cluster-unique.
    pub name: String,
    /// The host the port is on.
    pub host: String,
    /// The VM's MAC.
    pub mac: String,
    /// Fixed IPs.
    pub ips: Vec<String>,
    /// Allowed-address-pairs.
    pub allowed_address_pairs: Vec<PairRecord>,
    /// Access VLAN (0 = untagged).
    pub vlan: u16,
}

/// One allowed-address-pair of a [`PortRecord`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairRecord {
    /// Address or prefix.
    pub ip: String,
    /// The MAC it may be used with.
    pub mac: String,
}

impl PortRecord {
    /// The record of a local port, as the switch reports it.
    pub fn from_view(host: &str, p: &PortView) -> PortRecord {
        PortRecord {
            name: p.name.clone(),
            host: host.to_string(),
            mac: p.mac.clone(),
            ips: p.ips.clone(),
            allowed_address_pairs: p
                .allowed_address_pairs
                .iter()
                .map(|a| PairRecord {
                    ip: a.ip.clone(),
                    mac: a.mac.clone(),
                })
                .collect(),
            vlan: p.vlan,
        }
    }
}

/// The ownership record of a VIP group: `/vswitch/v1/owners/<vip>`. Not under a lease:
/// ownership outlives its writer (the others drop a dead host's owners when its host
/// record goes). Its order is `(epoch, mod_revision)`, see `vip_table::Stamp`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerRecord {
    /// The group's epoch the record was written at.
    pub epoch: u64,
    /// The owners (active-passive: zero or one).
    pub owners: Vec<OwnerEntry>,
    /// When the claim arrived on the writer's switch.
    pub moved_at: MovedAt,
}

/// One owner in an [`OwnerRecord`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerEntry {
    /// The owner port's host.
    pub host: String,
    /// The owner port (cluster-unique name).
    pub port: String,
    /// Its IPv4 MAC.
    pub mac: String,
    /// Its IPv6 MAC.
    pub mac6: String,
}

/// A time on the writer's switch clock: meaningful to a reader only on the same boot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovedAt {
    /// `CLOCK_MONOTONIC`, ns.
    pub ns: u64,
    /// The writer's `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
}

/// A VIP group definition whose name agrees with its key (the rules of `[[vip]]` are
/// checked by the switch when it installs it).
pub fn decode_vip(name: &str, value: &[u8]) -> Result<vswitch::config::VipDef, String> {
    let d: vswitch::config::VipDef = decode(value)?;
    if d.name.as_deref() != Some(name) {
        return Err(format!(
            "the record names vip {:?}, its key {name:?}",
            d.name
        ));
    }
    Ok(d)
}

/// An ownership record (every owner names a host and a port).
pub fn decode_owner(value: &[u8]) -> Result<OwnerRecord, String> {
    let r: OwnerRecord = decode(value)?;
    if r.owners
        .iter()
        .any(|o| o.host.is_empty() || o.port.is_empty())
    {
        return Err("an owner with an empty host or port".into());
    }
    Ok(r)
}

/// A record's JSON bytes.
pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    // Records are strings, numbers and lists of them: serializing cannot fail.
    serde_json::to_vec(record).unwrap_or_default()
}

/// A record read back from etcd, or why it is not one.
pub fn decode<T: for<'de> Deserialize<'de>>(value: &[u8]) -> Result<T, String> {
    serde_json::from_slice(value).map_err(|e| e.to_string())
}

/// A host record whose content agrees with its key.
pub fn decode_host(name: &str, value: &[u8]) -> Result<HostRecord, String> {
    let r: HostRecord = decode(value)?;
    if r.host != name {
        return Err(format!(
            "the record names host {:?}, its key {name:?}",
            r.host
        ));
    }
    Ok(r)
}

/// A port record whose content agrees with its key.
pub fn decode_port(name: &str, value: &[u8]) -> Result<PortRecord, String> {
    let r: PortRecord = decode(value)?;
    if r.name != name {
        return Err(format!(
            "the record names port {:?}, its key {name:?}",
            r.name
        ));
    }
    if r.host.is_empty() {
        return Err("the record has an empty host".into());
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_round_trip() {
        assert_eq!(host_key("host-a"), "/vswitch/v1/hosts/host-a");
        assert_eq!(port_key("web1"), "/vswitch/v1/ports/web1");
        assert_eq!(
            parse_key(host_key("host-a").as_bytes()),
            Some(Key::Host("host-a".into()))
        );
        assert_eq!(
            parse_key(port_key("web.1_x").as_bytes()),
            Some(Key::Port("web.1_x".into()))
        );
    }

    #[test]
    fn foreign_keys_are_not_parsed() {
        for k in [
            &b"/vswitch/v1/hosts/"[..],
            b"/vswitch/v1/ports/",
            b"/vswitch/v1/ports/a/b",
            b"/vswitch/v2/hosts/a",
            b"/vswitch/v1/vips/",
            b"/vswitch/v1/owners/a/b",
            b"/other",
            b"",
            b"/vswitch/v1/hosts/\xff",
        ] {
            assert_eq!(parse_key(k), None, "{k:?}");
        }
    }

    #[test]
    fn host_record_json() {
        let r = HostRecord {
            host: "host-a".into(),
            vtep: "10.250.1.1".into(),
            version: "0.1.0".into(),
            started_at_ms: 1_700_000_000_000,
        };
        let bytes = encode(&r);
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"host": "host-a", "vtep": "10.250.1.1", "version": "0.1.0",
                               "started_at_ms": 1_700_000_000_000u64})
        );
        assert_eq!(decode_host("host-a", &bytes).unwrap(), r);
        // a record under another host's key is refused
        assert!(decode_host("host-b", &bytes)
            .unwrap_err()
            .contains("host-b"));
        // unknown fields are ignored (a newer agent may add some)
        let newer = br#"{"host":"h","vtep":"1.2.3.4","version":"9","started_at_ms":1,"x":true}"#;
        assert!(decode_host("h", newer).is_ok());
    }

    #[test]
    fn port_record_json() {
        let r = PortRecord {
            name: "web1".into(),
            host: "host-a".into(),
            mac: "02:00:00:00:0a:11".into(),
            ips: vec!["10.0.0.11".into()],
            allowed_address_pairs: vec![PairRecord {
                ip: "10.0.0.100/32".into(),
                mac: "02:00:00:00:0a:11".into(),
            }],
            vlan: 0,
        };
        let bytes = encode(&r);
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["host"], "host-a");
        assert_eq!(v["allowed_address_pairs"][0]["ip"], "10.0.0.100/32");
        assert_eq!(decode_port("web1", &bytes).unwrap(), r);
        assert!(decode_port("web2", &bytes).is_err());
    }

    #[test]
    fn vip_and_owner_records() {
        assert_eq!(
            parse_key(b"/vswitch/v1/vips/web"),
            Some(Key::Vip("web".into()))
        );
        assert_eq!(
            parse_key(owner_key("web").as_bytes()),
            Some(Key::Owner("web".into()))
        );
        let def = br#"{"name":"web","addresses":["10.0.0.100"],"candidates":["a","b"]}"#;
        assert_eq!(decode_vip("web", def).unwrap().candidates, vec!["a", "b"]);
        assert!(decode_vip("db", def).is_err());
        assert!(decode_vip("web", br#"{"name":"web","candidatez":[]}"#).is_err());
        let r = OwnerRecord {
            epoch: 7,
            owners: vec![OwnerEntry {
                host: "host-b".into(),
                port: "web2".into(),
                mac: "02:00:00:00:00:02".into(),
                mac6: "02:00:00:00:00:02".into(),
            }],
            moved_at: MovedAt {
                ns: 5,
                boot_id: "b".into(),
            },
        };
        let bytes = encode(&r);
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["owners"][0]["host"], "host-b");
        assert_eq!(v["moved_at"]["ns"], 5);
        assert_eq!(decode_owner(&bytes).unwrap(), r);
        for bad in [
            &b"{}"[..],
            b"\xff",
            br#"{"epoch":-1,"owners":[],"moved_at":{"ns":0,"boot_id":""}}"#,
            br#"{"epoch":1,"owners":[{"host":"","port":"p","mac":"m","mac6":"m"}],"moved_at":{"ns":0,"boot_id":""}}"#,
        ] {
            assert!(decode_owner(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn malformed_records_are_errors_not_panics() {
        for bad in [
            &b""[..],
            b"null",
            b"{}",
            b"[1,2]",
            b"\xff\xfe",
            br#"{"name":"web1","host":"h","mac":"m","ips":"x","allowed_address_pairs":[],"vlan":0}"#,
            br#"{"name":"web1","host":"h","mac":"m","ips":[],"allowed_address_pairs":[],"vlan":70000}"#,
            br#"{"name":"web1","host":"","mac":"m","ips":[],"allowed_address_pairs":[],"vlan":0}"#,
        ] {
            assert!(decode_port("web1", bad).is_err(), "{bad:?}");
            assert!(decode_host("web1", bad).is_err(), "{bad:?}");
        }
    }
}
