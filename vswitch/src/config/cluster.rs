//! `[cluster]`: multi-host mode (etcd endpoints, this host's name and VTEP, the VLAN ↔ VNI
//! map, the lease TTL) and its validation.
//!
//! Contract:
//! - without a `[cluster]` table [`Config::cluster`](super::Config::cluster) is `None` and
//!   nothing else about the configuration changes (standalone mode);
//! - with one, every problem is reported like the rest of the file (`cluster.<field>:
//!   <reason>`), together with the other sections' problems;
//! - a validated [`ClusterSettings`] has at least one endpoint, all of one scheme; TLS
//!   files that exist and are readable (checked when the file is validated, so
//!   `check-config` catches a wrong path); a VNI for every VLAN a port uses, VNIs unique
//!   and in `1..=0xFFFFFF`; and an underlay MTU that carries every port's MTU plus the
//!   VXLAN overhead ([`OVERHEAD_IPV4`]).
//!
//! The section is read by the agent at start; a reload that changes it is applied to the
//! switch as usual but the cluster session keeps the settings it started with (see
//! `docs/config.md`).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use super::raw::RawCluster;
use super::{FieldError, PortConfig};
use crate::wire::vxlan::{inner_mtu_fits, Vni, OVERHEAD_IPV4};

/// Default underlay MTU (`cluster.underlay_mtu`).
pub const DEFAULT_UNDERLAY_MTU: u16 = 1500;
/// Default TTL of the host's etcd lease (`cluster.lease_ttl_secs`).
pub const DEFAULT_LEASE_TTL_SECS: u32 = 5;
/// Shortest accepted lease TTL: the keep-alive runs at a third of it, and etcd's own
/// minimum is in this range.
pub const MIN_LEASE_TTL_SECS: i64 = 2;
/// Longest accepted lease TTL: a dead host lingers in the cluster this long.
pub const MAX_LEASE_TTL_SECS: i64 = 60;
/// Longest host name (a DNS label).
pub const MAX_HOST_LEN: usize = 63;

/// A validated `[cluster]` table.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterSettings {
    /// etcd client endpoints as written (`http://10.0.0.1:2379`), at least one, all with
    /// the same scheme.
    pub endpoints: Vec<String>,
    /// TLS settings; `Some` exactly when the endpoints are `https://`.
    pub tls: Option<ClusterTls>,
    /// This host's cluster-unique name (`host`): the key of its host record.
    pub host: String,
    /// The underlay IPv4 address this host's VXLAN socket binds (`vtep`).
    pub vtep: Ipv4Addr,
    /// The underlay's MTU (`underlay_mtu`).
    pub underlay_mtu: u16,
    /// VLAN → VNI, in file order (`vlans`).
    pub vnis: Vec<VlanVni>,
    /// TTL of the host's etcd lease (`lease_ttl_secs`): how long a dead host's records
    /// outlive it.
    pub lease_ttl: Duration,
    /// How VXLAN datagrams are handed to the kernel (`udp_gso`).
    pub udp_gso: UdpGso,
    /// Whether TCP segments received from one host in one round are joined back into
    /// super-frames for the local port (`gro`, default true; see `overlay::gro`).
    pub gro: bool,
}

/// `cluster.udp_gso`: whether the segments of a TSO super-frame, each already cut and
/// encapsulated in userspace, are sent to a remote host as one UDP GSO batch (one
/// `sendmsg` with `UDP_SEGMENT`: the kernel splits it into datagrams) or one `send_to`
/// each. The kernel's VXLAN device would segment the inner TCP stream itself
/// (UDP-tunnel GSO); a UDP socket cannot ask for that, so the inner cut stays ours either
/// way (docs/cluster.md, "TSO super-frames and the underlay").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UdpGso {
    /// Probe the socket at start; fall back to one datagram per send, with a log line,
    /// when the kernel lacks `UDP_SEGMENT` (Linux < 4.18). The default.
    #[default]
    Auto,
    /// Require UDP GSO: a kernel without it is a start error.
    On,
    /// One `send_to` per datagram.
    Off,
}

impl UdpGso {
    /// The spelling in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            UdpGso::Auto => "auto",
            UdpGso::On => "on",
            UdpGso::Off => "off",
        }
    }
}

impl ClusterSettings {
    /// The VNI a VLAN is carried in, if it has one.
    pub fn vni(&self, vlan: u16) -> Option<Vni> {
        self.vnis.iter().find(|m| m.vlan == vlan).map(|m| m.vni)
    }

    /// The lease TTL in whole seconds (what etcd is asked for).
    pub fn lease_ttl_secs(&self) -> i64 {
        i64::try_from(self.lease_ttl.as_secs()).unwrap_or(i64::from(DEFAULT_LEASE_TTL_SECS))
    }
}

/// TLS towards etcd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterTls {
    /// CA certificate(s) that signed the etcd servers' certificates (PEM, `ca_file`).
    pub ca_file: PathBuf,
    /// A client certificate and its key (PEM, `cert_file` + `key_file`), for etcd with
    /// `--client-cert-auth`.
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// One entry of `cluster.vlans`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VlanVni {
    /// Access VLAN (0 = untagged).
    pub vlan: u16,
    /// The VNI its frames travel in between hosts.
    pub vni: Vni,
}

/// Why `name` is not a valid host name (a DNS label: 1–63 of `a-z`, `0-9`, `-`, not
/// starting or ending with `-`), if it is not. Lower case only, so that a host has one
/// spelling in etcd keys.
pub(crate) fn host_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.len() > MAX_HOST_LEN {
        return Some(format!(
            "{name:?} is {} characters long; at most {MAX_HOST_LEN} are allowed (a DNS label)",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Some(format!(
            "{name:?} contains {c:?}; host names use only lower-case letters, digits and '-'"
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some(format!(
            "{name:?} starts or ends with '-'; host names are DNS labels"
        ));
    }
    None
}

/// Why `url` is not an etcd endpoint (`http://host:port` or `https://host:port`, host a
/// name, an IPv4 address or a bracketed IPv6 address, no path), if it is not; otherwise
/// whether it is `https`.
fn endpoint(url: &str) -> Result<bool, String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        return Err(format!(
            "{url:?} is not an etcd endpoint: expected http://HOST:PORT or https://HOST:PORT"
        ));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let Some((host, port)) = rest.rsplit_once(':') else {
        return Err(format!(
            "{url:?} has no port: write it as http://HOST:PORT (etcd clients use 2379)"
        ));
    };
    if port.parse::<u16>().ok().filter(|p| *p != 0).is_none() {
        return Err(format!(
            "{url:?}: port {port:?} is not a number between 1 and 65535"
        ));
    }
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    };
    if !host_ok {
        return Err(format!(
            "{url:?}: {host:?} is not a host name, an IPv4 address or a bracketed IPv6 address \
             (and a path is not allowed)"
        ));
    }
    Ok(tls)
}

/// A file that must exist and be readable now.
fn readable(errors: &mut Vec<FieldError>, field: &str, path: &str) -> Option<PathBuf> {
    let why = if path.is_empty() {
        Some("must not be empty".to_string())
    } else {
        match std::fs::File::open(path) {
            Ok(f) => match f.metadata() {
                Ok(m) if m.is_file() => None,
                Ok(_) => Some(format!("{path:?} is not a regular file")),
                Err(e) => Some(format!("cannot read {path:?}: {e}")),
            },
            Err(e) => Some(format!("cannot read {path:?}: {e}")),
        }
    };
    match why {
        Some(reason) => {
            errors.push(FieldError {
                field: field.to_string(),
                reason,
            });
            None
        }
        None => Some(PathBuf::from(path)),
    }
}

/// One port as the cluster checks see it.
pub(super) struct PortFacts<'a> {
    /// `port[1] "web2"`.
    pub label: &'a str,
    /// The validated port (vlan and mtu resolved).
    pub port: &'a PortConfig,
    /// Whether its `vlan` value was valid (an invalid one already has its error).
    pub vlan_ok: bool,
}

/// Validate `[cluster]` against the validated ports; problems go to `errors`.
pub(super) fn validate(
    raw: &RawCluster,
    ports: &[PortFacts<'_>],
    errors: &mut Vec<FieldError>,
) -> ClusterSettings {
    let mut err = |field: String, reason: String| errors.push(FieldError { field, reason });

    // endpoints
    let mut schemes: Vec<bool> = Vec::new();
    if raw.endpoints.is_empty() {
        err(
            "cluster.endpoints".into(),
            "needs at least one etcd endpoint, e.g. [\"http://10.0.0.1:2379\"]".into(),
        );
    }
    for (i, url) in raw.endpoints.iter().enumerate() {
        match endpoint(url) {
            Ok(tls) => schemes.push(tls),
            Err(why) => err(format!("cluster.endpoints[{i}]"), why),
        }
    }
    let https = schemes.first().copied().unwrap_or(false);
    if schemes.iter().any(|s| *s != https) {
        err(
            "cluster.endpoints".into(),
            "mixes http:// and https:// endpoints; use one scheme for every member".into(),
        );
    }

    // TLS
    let ca = raw.ca_file.as_deref();
    let cert = raw.cert_file.as_deref();
    let key = raw.key_file.as_deref();
    let any_tls = ca.is_some() || cert.is_some() || key.is_some();
    if any_tls && !https && !schemes.is_empty() {
        err(
            "cluster.ca_file".into(),
            "TLS files are set but the endpoints are http://; use https:// endpoints or drop \
             ca_file, cert_file and key_file"
                .into(),
        );
    }
    match (cert, key) {
        (Some(_), None) => err(
            "cluster.key_file".into(),
            "is required with cert_file (the client certificate's private key)".into(),
        ),
        (None, Some(_)) => err(
            "cluster.cert_file".into(),
            "is required with key_file (the client certificate for that key)".into(),
        ),
        _ => {}
    }
    if https && ca.is_none() {
        err(
            "cluster.ca_file".into(),
            "is required with https:// endpoints: the CA certificate (PEM) that signed the \
             etcd servers' certificates"
                .into(),
        );
    }
    let ca_path = ca.and_then(|p| readable(errors, "cluster.ca_file", p));
    let cert_path = cert.and_then(|p| readable(errors, "cluster.cert_file", p));
    let key_path = key.and_then(|p| readable(errors, "cluster.key_file", p));
    let tls = match (https, ca_path) {
        (true, Some(ca_file)) => Some(ClusterTls {
            ca_file,
            identity: cert_path.zip(key_path),
        }),
        _ => None,
    };
    let mut err = |field: String, reason: String| errors.push(FieldError { field, reason });

    // host
    let host = match raw.host.as_deref() {
        None => {
            err(
                "cluster.host".into(),
                "is required: this host's cluster-unique name".into(),
            );
            String::new()
        }
        Some(h) => {
            if let Some(why) = host_name_problem(h) {
                err("cluster.host".into(), why);
            }
            h.to_string()
        }
    };

    // vtep
    let vtep = match raw.vtep.as_deref() {
        None => {
            err(
                "cluster.vtep".into(),
                "is required: the underlay IPv4 address this host binds VXLAN (UDP 4789) on".into(),
            );
            Ipv4Addr::UNSPECIFIED
        }
        Some(s) => match s.parse::<Ipv4Addr>() {
            Err(_) => {
                err(
                    "cluster.vtep".into(),
                    format!("{s:?} is not an IPv4 address (the underlay is IPv4)"),
                );
                Ipv4Addr::UNSPECIFIED
            }
            Ok(a)
                if a.is_unspecified()
                    || a.is_multicast()
                    || a.is_loopback()
                    || a.is_broadcast() =>
            {
                err(
                    "cluster.vtep".into(),
                    format!("{a} is not a unicast host address; name this host's underlay address"),
                );
                Ipv4Addr::UNSPECIFIED
            }
            Ok(a) => a,
        },
    };

    // underlay_mtu
    let underlay_mtu = match raw.underlay_mtu {
        None => Some(DEFAULT_UNDERLAY_MTU),
        Some(m) => match u16::try_from(m).ok().filter(|m| *m >= 576) {
            Some(m) => Some(m),
            None => {
                err(
                    "cluster.underlay_mtu".into(),
                    format!("must be between 576 and 65535 (got {m})"),
                );
                None
            }
        },
    };
    if let Some(u) = underlay_mtu {
        let too_big: Vec<&PortFacts<'_>> = ports
            .iter()
            .filter(|p| !inner_mtu_fits(u32::from(u), u32::from(p.port.mtu)))
            .collect();
        // the first of the ports with the largest MTU (max_by_key keeps the last)
        if let Some(worst) = too_big.iter().rev().max_by_key(|p| p.port.mtu) {
            let others = match too_big.len() - 1 {
                0 => String::new(),
                1 => " (and 1 more port)".to_string(),
                n => format!(" (and {n} more ports)"),
            };
            err(
                "cluster.underlay_mtu".into(),
                format!(
                    "{u} cannot carry {}'s mtu {}{others}: VXLAN over IPv4 adds {OVERHEAD_IPV4} \
                     bytes, so the underlay needs at least {}; raise cluster.underlay_mtu or \
                     lower the ports' mtu (switch.mtu or the port's own)",
                    worst.label,
                    worst.port.mtu,
                    u32::from(worst.port.mtu) + OVERHEAD_IPV4
                ),
            );
        }
    }

    // lease_ttl_secs
    let lease_ttl = match raw.lease_ttl_secs {
        None => Duration::from_secs(u64::from(DEFAULT_LEASE_TTL_SECS)),
        Some(t) if (MIN_LEASE_TTL_SECS..=MAX_LEASE_TTL_SECS).contains(&t) => {
            Duration::from_secs(t.unsigned_abs())
        }
        Some(t) => {
            err(
                "cluster.lease_ttl_secs".into(),
                format!(
                    "must be between {MIN_LEASE_TTL_SECS} and {MAX_LEASE_TTL_SECS} (got {t}): \
                     a dead host's records outlive it by this many seconds"
                ),
            );
            Duration::from_secs(u64::from(DEFAULT_LEASE_TTL_SECS))
        }
    };

    // udp_gso
    let udp_gso = match raw.udp_gso.as_deref() {
        None | Some("auto") => UdpGso::Auto,
        Some("on") => UdpGso::On,
        Some("off") => UdpGso::Off,
        Some(other) => {
            err(
                "cluster.udp_gso".into(),
                format!("must be \"auto\", \"on\" or \"off\" (got {other:?})"),
            );
            UdpGso::Auto
        }
    };

    // vlans
    let mut vnis: Vec<VlanVni> = Vec::new();
    let mut by_vlan: HashMap<u16, usize> = HashMap::new();
    let mut by_vni: HashMap<u32, usize> = HashMap::new();
    for (i, m) in raw.vlans.iter().enumerate() {
        let field = |k: &str| format!("cluster.vlans[{i}].{k}");
        let vlan = match m.vlan {
            None => {
                err(field("vlan"), "is required".into());
                None
            }
            Some(v) => match u16::try_from(v).ok().filter(|v| *v <= 4094) {
                None => {
                    err(
                        field("vlan"),
                        format!("must be between 0 and 4094 (got {v})"),
                    );
                    None
                }
                Some(v) => {
                    if let Some(j) = by_vlan.get(&v) {
                        err(
                            field("vlan"),
                            format!("vlan {v} is already mapped by cluster.vlans[{j}]"),
                        );
                        None
                    } else {
                        by_vlan.insert(v, i);
                        Some(v)
                    }
                }
            },
        };
        let vni = match m.vni {
            None => {
                err(field("vni"), "is required".into());
                None
            }
            Some(n) => match u32::try_from(n)
                .ok()
                .filter(|n| *n >= 1)
                .and_then(|n| Vni::new(n).ok())
            {
                None => {
                    err(
                        field("vni"),
                        format!("must be between 1 and {} (got {n})", Vni::MAX),
                    );
                    None
                }
                Some(vni) => {
                    if let Some(j) = by_vni.get(&vni.get()) {
                        err(
                            field("vni"),
                            format!(
                                "VNI {} is already used by cluster.vlans[{j}]; each VLAN needs \
                                 its own VNI",
                                vni.get()
                            ),
                        );
                        None
                    } else {
                        by_vni.insert(vni.get(), i);
                        Some(vni)
                    }
                }
            },
        };
        if let (Some(vlan), Some(vni)) = (vlan, vni) {
            vnis.push(VlanVni { vlan, vni });
        }
    }
    // every VLAN a port uses is carried in a VNI: one error per unmapped VLAN
    let mut unmapped: Vec<(u16, &str)> = Vec::new();
    for p in ports.iter().filter(|p| p.vlan_ok) {
        let v = p.port.vlan;
        if !by_vlan.contains_key(&v) && !unmapped.iter().any(|(u, _)| *u == v) {
            unmapped.push((v, p.label));
        }
    }
    for (vlan, label) in unmapped {
        err(
            "cluster.vlans".into(),
            format!("vlan {vlan} (used by {label}) has no VNI; add {{ vlan = {vlan}, vni = ... }}"),
        );
    }

    ClusterSettings {
        endpoints: raw.endpoints.clone(),
        tls,
        host,
        vtep,
        underlay_mtu: underlay_mtu.unwrap_or(DEFAULT_UNDERLAY_MTU),
        vnis,
        lease_ttl,
        udp_gso,
        gro: raw.gro.unwrap_or(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ConfigError};

    const PORT: &str =
        "[[port]]\nname = \"web1\"\ntap = \"tap-web1\"\nmac = \"02:00:00:00:00:11\"\nmtu = 1450\n";

    fn cluster(body: &str) -> String {
        format!("{PORT}\n[cluster]\n{body}")
    }

    const OK: &str = "endpoints = [\"http://10.250.0.11:2379\"]\nhost = \"host-a\"\nvtep = \"10.250.1.1\"\nvlans = [{ vlan = 0, vni = 5000 }]\n";

    /// The single error of an invalid file.
    fn one_error(text: &str) -> (String, String) {
        let e = Config::from_toml_str(text).unwrap_err();
        let f = e.field_errors();
        assert_eq!(f.len(), 1, "expected one error, got: {e}");
        (f[0].field.clone(), f[0].reason.clone())
    }

    fn with(line: &str) -> String {
        cluster(&format!("{OK}{line}\n"))
    }

    fn replace(from: &str, to: &str) -> String {
        cluster(&OK.replace(from, to))
    }

    #[test]
    fn without_cluster_nothing_changes() {
        let c = Config::from_toml_str(PORT).unwrap();
        assert!(c.cluster.is_none());
    }

    #[test]
    fn a_valid_section_has_its_defaults() {
        let c = Config::from_toml_str(&cluster(OK)).unwrap();
        let cl = c.cluster.unwrap();
        assert_eq!(cl.endpoints, ["http://10.250.0.11:2379"]);
        assert_eq!(cl.host, "host-a");
        assert_eq!(cl.vtep, Ipv4Addr::new(10, 250, 1, 1));
        assert_eq!(cl.underlay_mtu, DEFAULT_UNDERLAY_MTU);
        assert_eq!(cl.lease_ttl, Duration::from_secs(5));
        assert_eq!(cl.lease_ttl_secs(), 5);
        assert_eq!(cl.vni(0).map(Vni::get), Some(5000));
        assert_eq!(cl.vni(7), None);
        assert!(cl.tls.is_none());
    }

    #[test]
    fn unknown_field_is_a_syntax_error() {
        let e = Config::from_toml_str(&with("lease_tll_secs = 5")).unwrap_err();
        assert!(matches!(e, ConfigError::Syntax { .. }), "{e}");
        assert!(e.to_string().contains("lease_tll_secs"), "{e}");
    }

    #[test]
    fn endpoints_are_required_and_checked() {
        let (f, r) = one_error(&replace("endpoints = [\"http://10.250.0.11:2379\"]\n", ""));
        assert_eq!(f, "cluster.endpoints");
        assert!(r.contains("at least one"), "{r}");
        for (bad, why) in [
            ("10.0.0.1:2379", "expected http://"),
            ("http://10.0.0.1", "no port"),
            ("http://10.0.0.1:0", "port \"0\""),
            ("http://10.0.0.1:70000", "port \"70000\""),
            ("http://:2379", "is not a host name"),
            ("http://a/b:2379", "is not a host name"),
            ("http://[zz::1]:2379", "is not a host name"),
        ] {
            let (f, r) = one_error(&replace("http://10.250.0.11:2379", bad));
            assert_eq!(f, "cluster.endpoints[0]", "{bad}");
            assert!(r.contains(why), "{bad}: {r}");
        }
        for good in ["http://etcd-1.example:2379", "http://[fd00::1]:2379/"] {
            Config::from_toml_str(&replace("http://10.250.0.11:2379", good)).unwrap();
        }
    }

    #[test]
    fn endpoints_share_one_scheme() {
        let dir = tempdir("scheme");
        let ca = file(&dir, "ca.pem");
        let text = replace(
            "[\"http://10.250.0.11:2379\"]",
            &format!(
                "[\"http://10.250.0.11:2379\", \"https://10.250.0.12:2379\"]\nca_file = {ca:?}"
            ),
        );
        let e = Config::from_toml_str(&text).unwrap_err();
        assert!(
            e.field_errors()
                .iter()
                .any(|f| f.field == "cluster.endpoints" && f.reason.contains("mixes")),
            "{e}"
        );
    }

    /// A private directory, removed when dropped.
    struct TempDir(PathBuf);

    impl std::ops::Deref for TempDir {
        type Target = std::path::Path;
        fn deref(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn tempdir(test: &str) -> TempDir {
        let d =
            std::env::temp_dir().join(format!("vswitch-cluster-cfg-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }

    fn file(dir: &std::path::Path, name: &str) -> String {
        let p = dir.join(name);
        std::fs::write(&p, "-----BEGIN CERTIFICATE-----\n").unwrap();
        p.display().to_string()
    }

    #[test]
    fn tls_files_must_exist_and_go_together() {
        let dir = tempdir("tls");
        let (ca, cert, key) = (
            file(&dir, "ca.pem"),
            file(&dir, "c.pem"),
            file(&dir, "k.pem"),
        );
        let https = |extra: &str| {
            replace(
                "endpoints = [\"http://10.250.0.11:2379\"]",
                &format!("endpoints = [\"https://10.250.0.11:2379\"]\n{extra}"),
            )
        };
        // all three: ok
        let c = Config::from_toml_str(&https(&format!(
            "ca_file = {ca:?}\ncert_file = {cert:?}\nkey_file = {key:?}"
        )))
        .unwrap();
        let tls = c.cluster.unwrap().tls.unwrap();
        assert_eq!(tls.ca_file, PathBuf::from(&ca));
        assert_eq!(
            tls.identity,
            Some((PathBuf::from(&cert), PathBuf::from(&key)))
        );
        // ca alone: ok, no identity
        let c = Config::from_toml_str(&https(&format!("ca_file = {ca:?}"))).unwrap();
        assert_eq!(c.cluster.unwrap().tls.unwrap().identity, None);
        // https without a CA
        let (f, r) = one_error(&https(""));
        assert_eq!(f, "cluster.ca_file");
        assert!(r.contains("required with https://"), "{r}");
        // cert without key, key without cert
        let (f, r) = one_error(&https(&format!("ca_file = {ca:?}\ncert_file = {cert:?}")));
        assert_eq!(f, "cluster.key_file");
        assert!(r.contains("with cert_file"), "{r}");
        let (f, r) = one_error(&https(&format!("ca_file = {ca:?}\nkey_file = {key:?}")));
        assert_eq!(f, "cluster.cert_file");
        assert!(r.contains("with key_file"), "{r}");
        // a missing file, a directory
        let missing = dir.join("nope.pem").display().to_string();
        let (f, r) = one_error(&https(&format!("ca_file = {missing:?}")));
        assert_eq!(f, "cluster.ca_file");
        assert!(r.contains("cannot read") && r.contains("nope.pem"), "{r}");
        let d = dir.display().to_string();
        let (f, r) = one_error(&https(&format!(
            "ca_file = {ca:?}\ncert_file = {cert:?}\nkey_file = {d:?}"
        )));
        assert_eq!(f, "cluster.key_file");
        assert!(r.contains("not a regular file"), "{r}");
        // TLS files with http:// endpoints
        let (f, r) = one_error(&with(&format!("ca_file = {ca:?}")));
        assert_eq!(f, "cluster.ca_file");
        assert!(r.contains("endpoints are http://"), "{r}");
    }

    #[test]
    fn host_is_required_and_a_dns_label() {
        let (f, r) = one_error(&replace("host = \"host-a\"\n", ""));
        assert_eq!(f, "cluster.host");
        assert!(r.contains("required"), "{r}");
        for bad in ["", "Host-A", "host_a", "a/b", "-a", "a-", &"a".repeat(64)] {
            let (f, _) = one_error(&replace("\"host-a\"", &format!("{bad:?}")));
            assert_eq!(f, "cluster.host", "{bad:?}");
        }
        assert!(host_name_problem("h1").is_none());
        assert!(host_name_problem(&"a".repeat(63)).is_none());
    }

    #[test]
    fn vtep_is_a_unicast_ipv4_address() {
        let (f, r) = one_error(&replace("vtep = \"10.250.1.1\"\n", ""));
        assert_eq!(f, "cluster.vtep");
        assert!(r.contains("required"), "{r}");
        for (bad, why) in [
            ("fd00::1", "not an IPv4 address"),
            ("10.0.0", "not an IPv4 address"),
            ("0.0.0.0", "not a unicast"),
            ("224.0.0.1", "not a unicast"),
            ("127.0.0.1", "not a unicast"),
            ("255.255.255.255", "not a unicast"),
        ] {
            let (f, r) = one_error(&replace("10.250.1.1", bad));
            assert_eq!(f, "cluster.vtep", "{bad}");
            assert!(r.contains(why), "{bad}: {r}");
        }
    }

    #[test]
    fn underlay_mtu_range_and_fit() {
        for bad in ["100", "70000", "-1"] {
            let (f, r) = one_error(&with(&format!("underlay_mtu = {bad}")));
            assert_eq!(f, "cluster.underlay_mtu");
            assert!(r.contains("between 576 and 65535"), "{r}");
        }
        // 1450 + 50 = 1500 fits the default
        Config::from_toml_str(&cluster(OK)).unwrap();
        // a port at the default 1500 does not
        let text = format!("{}\n[cluster]\n{OK}", PORT.replace("mtu = 1450\n", ""));
        let (f, r) = one_error(&text);
        assert_eq!(f, "cluster.underlay_mtu");
        assert!(r.contains("port[0] \"web1\"'s mtu 1500"), "{r}");
        assert!(r.contains("at least 1550"), "{r}");
        // raised underlay: fine
        Config::from_toml_str(&format!("{text}underlay_mtu = 1550\n")).unwrap();
        // several ports: the largest is named, the others counted
        let text = format!(
            "{PORT}[[port]]\nname = \"b\"\ntap = \"tap-b\"\nmac = \"02:00:00:00:00:12\"\nmtu = 9000\n\
             [[port]]\nname = \"c\"\ntap = \"tap-c\"\nmac = \"02:00:00:00:00:13\"\nmtu = 1500\n\
             [cluster]\n{OK}"
        );
        let (_, r) = one_error(&text);
        assert!(
            r.contains("port[1] \"b\"'s mtu 9000 (and 1 more port)"),
            "{r}"
        );
        assert!(r.contains("at least 9050"), "{r}");
    }

    #[test]
    fn lease_ttl_range() {
        for (v, want) in [
            ("auto", UdpGso::Auto),
            ("on", UdpGso::On),
            ("off", UdpGso::Off),
        ] {
            let c = Config::from_toml_str(&with(&format!("udp_gso = {v:?}"))).unwrap();
            assert_eq!(c.cluster.unwrap().udp_gso, want);
        }
        assert!(
            Config::from_toml_str(&with(""))
                .unwrap()
                .cluster
                .unwrap()
                .gro
        );
        assert!(
            !Config::from_toml_str(&with("gro = false"))
                .unwrap()
                .cluster
                .unwrap()
                .gro
        );
        let (f, r) = one_error(&with("udp_gso = \"yes\""));
        assert_eq!(f, "cluster.udp_gso");
        assert!(
            r.contains("\"auto\", \"on\" or \"off\"") && r.contains("yes"),
            "{r}"
        );
        Config::from_toml_str(&with("lease_ttl_secs = 2")).unwrap();
        Config::from_toml_str(&with("lease_ttl_secs = 60")).unwrap();
        for bad in ["1", "61", "0", "-5"] {
            let (f, r) = one_error(&with(&format!("lease_ttl_secs = {bad}")));
            assert_eq!(f, "cluster.lease_ttl_secs");
            assert!(r.contains("between 2 and 60"), "{r}");
        }
    }

    #[test]
    fn vlan_vni_map() {
        let vlans = |v: &str| {
            replace(
                "vlans = [{ vlan = 0, vni = 5000 }]",
                &format!("vlans = {v}"),
            )
        };
        for (v, field, why) in [
            (
                "[{ vlan = 0, vni = 0 }]",
                "cluster.vlans[0].vni",
                "between 1 and 16777215",
            ),
            (
                "[{ vlan = 0, vni = 16777216 }]",
                "cluster.vlans[0].vni",
                "between 1 and",
            ),
            (
                "[{ vlan = 0, vni = -1 }]",
                "cluster.vlans[0].vni",
                "between 1 and",
            ),
            ("[{ vlan = 0 }]", "cluster.vlans[0].vni", "required"),
            (
                "[{ vlan = 0, vni = 1 }, { vlan = 4095, vni = 2 }]",
                "cluster.vlans[1].vlan",
                "between 0 and 4094",
            ),
            (
                "[{ vni = 1 }, { vlan = 0, vni = 2 }]",
                "cluster.vlans[0].vlan",
                "required",
            ),
            (
                "[{ vlan = 0, vni = 1 }, { vlan = 0, vni = 2 }]",
                "cluster.vlans[1].vlan",
                "already mapped by cluster.vlans[0]",
            ),
            (
                "[{ vlan = 0, vni = 7 }, { vlan = 5, vni = 7 }]",
                "cluster.vlans[1].vni",
                "already used by cluster.vlans[0]",
            ),
        ] {
            let (f, r) = one_error(&vlans(v));
            assert_eq!(f, field, "{v}");
            assert!(r.contains(why), "{v}: {r}");
        }
        // a VLAN a port uses with no VNI
        let (f, r) = one_error(&vlans("[{ vlan = 10, vni = 5010 }]"));
        assert_eq!(f, "cluster.vlans");
        assert!(
            r.contains("vlan 0 (used by port[0] \"web1\") has no VNI"),
            "{r}"
        );
        // the largest VNI is fine; unused mappings are fine
        let c = Config::from_toml_str(&vlans(
            "[{ vlan = 0, vni = 16777215 }, { vlan = 9, vni = 9 }]",
        ))
        .unwrap();
        assert_eq!(c.cluster.unwrap().vni(0).map(Vni::get), Some(Vni::MAX));
    }

    #[test]
    fn cluster_errors_come_with_the_other_sections_errors() {
        let text = format!("[switch]\nmtu = 1\n{}", cluster("host = \"A\"\n"));
        let e = Config::from_toml_str(&text).unwrap_err();
        let fields: Vec<&str> = e.field_errors().iter().map(|f| f.field.as_str()).collect();
        for want in [
            "switch.mtu",
            "cluster.endpoints",
            "cluster.host",
            "cluster.vtep",
            "cluster.vlans",
        ] {
            assert!(fields.contains(&want), "{want} missing in {fields:?}");
        }
    }
}
