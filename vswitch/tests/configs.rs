//! Configuration tests: every example in `configs/` parses (new files are picked up
//! automatically), the examples mean what their comments say, and every validation rule
//! reports the field path and reason an operator needs.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vip_table::{IpNet, MacAddr, VipMode};
use vswitch::config::{
    derived_virtual_mac, AddressPair, Config, ConfigError, FieldError, PortBinding, SwitchSettings,
};

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
}

fn example(name: &str) -> Config {
    let path = configs_dir().join(name);
    match Config::load(&path) {
        Ok(c) => c,
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

// ---------------------------------------------------------------------------------------
// The examples
// ---------------------------------------------------------------------------------------

#[test]
fn every_example_config_parses() {
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(configs_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        // `*-vips.toml`: the cluster's VIP groups, for `vswitch ctl cluster apply`, not a
        // host's configuration
        if path.to_str().is_some_and(|p| p.ends_with("-vips.toml")) {
            let text = std::fs::read_to_string(&path).unwrap();
            let defs = vswitch::config::vip_defs_from_toml(&text)
                .unwrap_or_else(|e| panic!("{}:\n{e}", path.display()));
            assert!(!defs.is_empty(), "{}: no [[vip]]", path.display());
            continue;
        }
        let c = Config::load(&path).unwrap_or_else(|e| panic!("{}:\n{e}", path.display()));
        assert!(!c.ports.is_empty(), "{}: no ports", path.display());
        let text = c.explain();
        for p in &c.ports {
            assert!(
                text.contains(&p.name),
                "{}: explain misses {}",
                path.display(),
                p.name
            );
        }
        for v in &c.vips {
            assert!(
                text.contains(&v.name),
                "{}: explain misses {}",
                path.display(),
                v.name
            );
        }
        seen.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    for required in [
        "demo.toml",
        "basic.toml",
        "allowed-address-pairs.toml",
        "vip-active-passive.toml",
        "keepalived-vmac.toml",
        "vip-active-active.toml",
        "router-no-dest-check.toml",
        "netdev-libvirt.toml",
        "vlans.toml",
    ] {
        assert!(
            seen.iter().any(|s| s == required),
            "missing example {required}"
        );
    }
}

#[test]
fn demo_has_three_vms_and_a_floating_vip() {
    let c = example("demo.toml");
    assert_eq!(c.ports.len(), 3);
    for (i, p) in c.ports.iter().enumerate() {
        let n = i + 1;
        assert_eq!(p.name, format!("vm{n}"));
        assert_eq!(p.binding, PortBinding::Tap(format!("vs-demo{n}")));
        assert_eq!(p.mac, mac(&format!("02:77:00:00:00:0{n}")));
        assert_eq!(
            p.ips,
            vec![ip(&format!("10.77.0.{n}")), ip(&format!("fd77::{n}"))]
        );
        assert_eq!(p.vlan, 0);
        assert_eq!(p.mtu, 1500);
        assert!(p.port_security && p.dest_check && p.admin_up && !p.dhcp_server);
    }
    assert_eq!(c.vips.len(), 1);
    let v = &c.vips[0];
    assert_eq!(v.name, "demo-vip");
    assert_eq!(v.addresses, vec![ip("10.77.0.100")]);
    assert_eq!(v.mode, VipMode::ActivePassive);
    assert_eq!(v.candidates, vec!["vm1", "vm2"]);
    assert!(v.initial_owners.is_empty());
    assert!(v.vmacs().is_empty());
    assert_eq!(c.port_index("vm3"), Some(2));
    assert_eq!(c.port_index("vm4"), None);
}

#[test]
fn basic_applies_defaults_and_overrides() {
    let c = example("basic.toml");
    assert_eq!(c.switch, SwitchSettings::default());
    assert_eq!(c.switch.mac_aging, Duration::from_secs(300));
    let db1 = c.port("db1").unwrap();
    assert_eq!(db1.mtu, 9000);
    assert_eq!(c.port("web1").unwrap().mtu, 1500);
    let spare = c.port("spare").unwrap();
    assert!(!spare.admin_up);
    assert!(spare.ips.is_empty());
    assert!(c.vips.is_empty());
}

#[test]
fn address_pairs_resolve_mac_and_normalise_prefix() {
    let c = example("allowed-address-pairs.toml");
    let vm1 = c.port("vm1").unwrap();
    assert!(vm1.allowed_address_pairs.contains(&AddressPair {
        ip: net("10.0.9.0/24"),
        mac: vm1.mac
    }));
    assert!(vm1.allowed_address_pairs.contains(&AddressPair {
        ip: net("10.0.0.50/32"),
        mac: vm1.mac
    }));
    let vm2 = c.port("vm2").unwrap();
    assert_eq!(vm2.allowed_address_pairs[0].mac, mac("02:00:00:00:01:f2"));
    let appl = c.port("appliance").unwrap();
    assert!(appl
        .allowed_address_pairs
        .iter()
        .any(|p| p.ip.prefix_len() == 0 && p.mac == appl.mac));
    assert!(appl.port_security);
    assert!(c.explain().contains("MAC and ARP sha still checked"));
}

#[test]
fn active_passive_group_moves_v4_and_v6_together() {
    let c = example("vip-active-passive.toml");
    let v = &c.vips[0];
    assert_eq!(v.addresses, vec![ip("10.1.0.100"), ip("fd01::100")]);
    assert_eq!(v.mode, VipMode::ActivePassive);
    assert_eq!(v.initial_owners, vec!["lb1"]);
    assert!(!v.release_on_port_loss);
    assert_eq!(v.damping.max_moves, 6);
    assert_eq!(v.damping.window, Duration::from_secs(30));
    assert_eq!(c.switch.damping.max_moves, 4);
    assert_eq!(c.switch.damping.window, Duration::from_secs(10));
    assert!(!v.is_candidate("client"));
}

#[test]
fn keepalived_vmac_authorises_both_vrrp_macs() {
    let c = example("keepalived-vmac.toml");
    let v = &c.vips[0];
    assert_eq!(v.vrrp_vrid, Some(33));
    assert_eq!(
        v.vmacs(),
        vec![mac("00:00:5e:00:01:21"), mac("00:00:5e:00:02:21")]
    );
}

#[test]
fn active_active_has_three_owners_and_liveness() {
    let c = example("vip-active-active.toml");
    let v = &c.vips[0];
    assert_eq!(v.mode, VipMode::ActiveActive);
    assert_eq!(v.initial_owners, vec!["rs1", "rs2", "rs3"]);
    assert_eq!(v.owner_liveness, Some(Duration::from_secs(30)));
    assert_eq!(v.answer_mac(), mac("02:00:00:03:01:00"));
}

#[test]
fn router_has_no_dest_check_and_open_pairs() {
    let c = example("router-no-dest-check.toml");
    let rtr = c.port("rtr").unwrap();
    assert!(!rtr.dest_check);
    assert!(rtr.port_security);
    let nets: Vec<IpNet> = rtr.allowed_address_pairs.iter().map(|p| p.ip).collect();
    assert_eq!(nets, vec![net("0.0.0.0/0"), net("::/0")]);
    assert!(c.port("app1").unwrap().dest_check);
    assert!(!c.port("nested").unwrap().port_security);
}

#[test]
fn libvirt_ports_bind_to_existing_netdevs() {
    let c = example("netdev-libvirt.toml");
    let db1 = c.port("db1").unwrap();
    assert_eq!(db1.binding, PortBinding::Netdev("vnet0".into()));
    assert_eq!(db1.binding.ifname(), "vnet0");
    assert!(c.port("dhcp").unwrap().dhcp_server);
    assert!(!db1.dhcp_server);
    assert!(c
        .ports
        .iter()
        .all(|p| matches!(p.binding, PortBinding::Netdev(_))));
}

#[test]
fn vlans_allow_overlapping_ips_across_tenants() {
    let c = example("vlans.toml");
    let a = c.port("a-web").unwrap();
    let b = c.port("b-web").unwrap();
    assert_eq!(a.ips, b.ips);
    assert_eq!((a.vlan, b.vlan), (10, 20));
    assert_eq!(c.vips[0].vlan, 10);
}

// ---------------------------------------------------------------------------------------
// Validation rules
// ---------------------------------------------------------------------------------------

/// Two valid ports in vlan 0 and one in vlan 20; tests append to it.
const BASE: &str = r#"
[[port]]
name = "web1"
tap = "tap-web1"
mac = "02:00:00:00:00:11"
ips = ["10.0.0.11/24", "fd00::11/64"]

[[port]]
name = "web2"
tap = "tap-web2"
mac = "02:00:00:00:00:12"
ips = ["10.0.0.12/24"]

[[port]]
name = "other"
tap = "tap-other"
mac = "02:00:00:00:00:20"
ips = ["10.0.0.11/24"]
vlan = 20
"#;

fn with_base(extra: &str) -> String {
    format!("{BASE}\n{extra}")
}

fn field_errors(toml: &str) -> Vec<FieldError> {
    match Config::from_toml_str(toml) {
        Ok(_) => panic!("config was accepted:\n{toml}"),
        Err(ConfigError::Invalid(v)) => v,
        Err(e) => panic!("expected validation errors, got: {e}"),
    }
}

/// Assert that validating `toml` reports an error at exactly `field` whose reason
/// contains `reason`, and that the Display of the whole error has that line.
fn assert_invalid(toml: &str, field: &str, reason: &str) {
    let errs = field_errors(toml);
    assert!(
        errs.iter()
            .any(|e| e.field == field && e.reason.contains(reason)),
        "no error `{field}: ...{reason}...` among:\n{}",
        errs.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let shown = ConfigError::Invalid(errs).to_string();
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with(&format!("{field}: ")) && l.contains(reason)),
        "{shown}"
    );
}

fn syntax_error(toml: &str) -> String {
    match Config::from_toml_str(toml) {
        Err(e @ ConfigError::Syntax { .. }) => e.to_string(),
        Err(e) => panic!("expected a TOML error, got: {e}"),
        Ok(_) => panic!("config was accepted:\n{toml}"),
    }
}

#[test]
fn base_is_valid() {
    let c = Config::from_toml_str(BASE).unwrap();
    assert_eq!(c.ports.len(), 3);
}

#[test]
fn switch_ranges() {
    assert_invalid(
        "[switch]\nmac_aging_secs = 0",
        "switch.mac_aging_secs",
        "between 1 and 86400 (got 0)",
    );
    assert_invalid(
        "[switch]\nmac_aging_secs = 86401",
        "switch.mac_aging_secs",
        "between 1 and 86400",
    );
    assert_invalid("[switch]\nfdb_size = 0", "switch.fdb_size", "between 1 and");
    assert_invalid(
        "[switch]\nfdb_port_limit = -5",
        "switch.fdb_port_limit",
        "(got -5)",
    );
    assert_invalid("[switch]\nmtu = 67", "switch.mtu", "between 68 and 65535");
    assert_invalid(
        "[switch]\nmtu = 65536",
        "switch.mtu",
        "between 68 and 65535",
    );
    assert_invalid(
        "[switch]\ndamping_max_moves = -1",
        "switch.damping_max_moves",
        "between 0 and",
    );
    assert_invalid(
        "[switch]\ndamping_window_secs = 0",
        "switch.damping_window_secs",
        "greater than 0 and at most 3600",
    );
    assert_invalid(
        "[switch]\ndamping_window_secs = 3600.5",
        "switch.damping_window_secs",
        "at most 3600",
    );
    assert_invalid(
        "[switch]\ndamping_window_secs = nan",
        "switch.damping_window_secs",
        "at most 3600",
    );
    let c = Config::from_toml_str("[switch]\ndamping_window_secs = 2.5\ndamping_max_moves = 0")
        .unwrap();
    assert_eq!(c.switch.damping.window, Duration::from_millis(2500));
    assert_eq!(c.switch.damping.max_moves, 0);
}

#[test]
fn port_mtu_defaults_to_switch_mtu_and_is_range_checked() {
    let c = Config::from_toml_str(&format!("[switch]\nmtu = 9000\n{BASE}")).unwrap();
    assert!(c.ports.iter().all(|p| p.mtu == 9000));
    assert_invalid(
        &format!(
            "{BASE}\n[[port]]\nname = \"m\"\ntap = \"t-m\"\nmac = \"02:00:00:00:00:31\"\nmtu = 10"
        ),
        "port[3] \"m\".mtu",
        "between 68 and 65535 (got 10)",
    );
}

#[test]
fn port_name_rules() {
    assert_invalid(
        "[[port]]\ntap = \"t0\"\nmac = \"02:00:00:00:00:01\"",
        "port[0].name",
        "is required",
    );
    assert_invalid(
        "[[port]]\nname = \"web 1\"\ntap = \"t0\"\nmac = \"02:00:00:00:00:01\"",
        "port[0] \"web 1\".name",
        "contains ' '",
    );
    let long = "a".repeat(33);
    assert_invalid(
        &format!("[[port]]\nname = \"{long}\"\ntap = \"t0\"\nmac = \"02:00:00:00:00:01\""),
        &format!("port[0] \"{long}\".name"),
        "at most 32",
    );
    assert_invalid(
        &with_base("[[port]]\nname = \"web1\"\ntap = \"t9\"\nmac = \"02:00:00:00:00:99\""),
        "port[3] \"web1\".name",
        "duplicate port name: port[0] \"web1\"",
    );
}

#[test]
fn tap_and_netdev_exactly_one() {
    assert_invalid(
        "[[port]]\nname = \"a\"\ntap = \"t0\"\nnetdev = \"vnet0\"\nmac = \"02:00:00:00:00:01\"",
        "port[0] \"a\"",
        "has both tap = \"t0\" and netdev = \"vnet0\"",
    );
    assert_invalid(
        "[[port]]\nname = \"a\"\nmac = \"02:00:00:00:00:01\"",
        "port[0] \"a\"",
        "needs exactly one of tap",
    );
}

#[test]
fn interface_name_rules() {
    let port = |key: &str, ifname: &str| {
        format!("[[port]]\nname = \"a\"\n{key} = \"{ifname}\"\nmac = \"02:00:00:00:00:01\"")
    };
    assert_invalid(
        &port("tap", "tap-0123456789ab"),
        "port[0] \"a\".tap",
        "at most 15 bytes",
    );
    assert_invalid(&port("netdev", "a/b"), "port[0] \"a\".netdev", "'/'");
    assert_invalid(&port("netdev", "eth0:1"), "port[0] \"a\".netdev", "':'");
    assert_invalid(&port("tap", "a b"), "port[0] \"a\".tap", "whitespace");
    assert_invalid(
        &port("tap", ".."),
        "port[0] \"a\".tap",
        "not a valid interface name",
    );
    assert_invalid(&port("tap", ""), "port[0] \"a\".tap", "must not be empty");
    // 15 bytes is fine.
    Config::from_toml_str(&port("tap", "tap-0123456789a")).unwrap();
}

#[test]
fn interface_names_unique_across_tap_and_netdev() {
    assert_invalid(
        &with_base("[[port]]\nname = \"x\"\nnetdev = \"tap-web2\"\nmac = \"02:00:00:00:00:99\""),
        "port[3] \"x\".netdev",
        "interface \"tap-web2\" is already used by port[1] \"web2\"",
    );
}

#[test]
fn port_mac_rules() {
    assert_invalid(
        "[[port]]\nname = \"a\"\ntap = \"t0\"",
        "port[0] \"a\".mac",
        "is required",
    );
    assert_invalid(
        "[[port]]\nname = \"a\"\ntap = \"t0\"\nmac = \"02:00:00:00:00\"",
        "port[0] \"a\".mac",
        "\"02:00:00:00:00\" is not a MAC address",
    );
    assert_invalid(
        "[[port]]\nname = \"a\"\ntap = \"t0\"\nmac = \"01:00:5e:00:00:01\"",
        "port[0] \"a\".mac",
        "must be unicast",
    );
    assert_invalid(
        "[[port]]\nname = \"a\"\ntap = \"t0\"\nmac = \"00:00:00:00:00:00\"",
        "port[0] \"a\".mac",
        "all-zero",
    );
    assert_invalid(
        &with_base("[[port]]\nname = \"x\"\ntap = \"t9\"\nmac = \"02:00:00:00:00:12\""),
        "port[3] \"x\".mac",
        "02:00:00:00:00:12 is already the MAC of port[1] \"web2\"",
    );
}

#[test]
fn vlan_range() {
    assert_invalid(
        "[[port]]\nname = \"a\"\ntap = \"t0\"\nmac = \"02:00:00:00:00:01\"\nvlan = 4095",
        "port[0] \"a\".vlan",
        "between 0 and 4094 (got 4095)",
    );
    assert_invalid(
        "[[port]]\nname = \"a\"\ntap = \"t0\"\nmac = \"02:00:00:00:00:01\"\nvlan = -1",
        "port[0] \"a\".vlan",
        "(got -1)",
    );
}

#[test]
fn fixed_ip_rules() {
    let port = |ips: &str| {
        format!("[[port]]\nname = \"a\"\ntap = \"t0\"\nmac = \"02:00:00:00:00:01\"\nips = {ips}")
    };
    assert_invalid(
        &port(r#"["10.0.0.1", "10.0.0.300/24"]"#),
        "port[0] \"a\".ips[1]",
        "\"10.0.0.300/24\" is not an IP or CIDR",
    );
    assert_invalid(
        &port(r#"["10.0.0.0/24"]"#),
        "port[0] \"a\".ips[0]",
        "network address",
    );
    assert_invalid(
        &port(r#"["224.0.0.18"]"#),
        "port[0] \"a\".ips[0]",
        "multicast",
    );
    assert_invalid(
        &port(r#"["10.0.0.1/24", "10.0.0.1/32"]"#),
        "port[0] \"a\".ips[1]",
        "10.0.0.1 is listed twice (also ips[0])",
    );
    // The prefix is informational: the host address is what is stored.
    let c = Config::from_toml_str(&port(r#"["10.0.0.1/24", "fd00::1/64", "10.0.0.2"]"#)).unwrap();
    assert_eq!(
        c.ports[0].ips,
        vec![ip("10.0.0.1"), ip("fd00::1"), ip("10.0.0.2")]
    );
}

#[test]
fn fixed_ip_unique_within_vlan_only() {
    assert_invalid(
        &with_base(
            "[[port]]\nname = \"x\"\ntap = \"t9\"\nmac = \"02:00:00:00:00:99\"\nips = [\"fd00::11\"]",
        ),
        "port[3] \"x\".ips[0]",
        "fd00::11 is already a fixed IP of port[0] \"web1\" in vlan 0",
    );
    // BASE itself has 10.0.0.11 in vlan 0 and in vlan 20: accepted.
    let c = Config::from_toml_str(BASE).unwrap();
    assert_eq!(c.ports[0].ips[0], c.ports[2].ips[0]);
}

#[test]
fn address_pair_rules() {
    let port = |pairs: &str| {
        format!(
            "[[port]]\nname = \"w\"\ntap = \"t0\"\nmac = \"02:00:00:00:00:01\"\n\
             [[port]]\nname = \"x\"\ntap = \"t1\"\nmac = \"02:00:00:00:00:02\"\n\
             [[port]]\nname = \"vm3\"\ntap = \"t2\"\nmac = \"02:00:00:00:00:03\"\n\
             allowed_address_pairs = {pairs}"
        )
    };
    // The exact line from the architecture guide.
    let errs = field_errors(&port(
        r#"[{ ip = "10.0.0.0/24" }, { ip = "10.0.0.300/24" }]"#,
    ));
    assert_eq!(
        ConfigError::Invalid(errs).to_string(),
        "port[2] \"vm3\".allowed_address_pairs[1].ip: \"10.0.0.300/24\" is not an IP or CIDR"
    );
    assert_invalid(
        &port(r#"[{ mac = "02:00:00:00:00:09" }]"#),
        "port[2] \"vm3\".allowed_address_pairs[0].ip",
        "is required",
    );
    assert_invalid(
        &port(r#"[{ ip = "10.0.0.50", mac = "ff:ff:ff:ff:ff:ff" }]"#),
        "port[2] \"vm3\".allowed_address_pairs[0].mac",
        "must be unicast",
    );
    assert_invalid(
        &port(r#"[{ ip = "10.0.0.50", mac = "00:00:00:00:00:00" }]"#),
        "port[2] \"vm3\".allowed_address_pairs[0].mac",
        "all-zero",
    );
    assert_invalid(
        &port(r#"[{ ip = "10.0.0.50", mac = "nope" }]"#),
        "port[2] \"vm3\".allowed_address_pairs[0].mac",
        "\"nope\" is not a MAC address",
    );
    assert_invalid(
        &port(r#"[{ ip = "10.0.9.0/24" }, { ip = "10.0.9.7/24", mac = "02:00:00:00:00:03" }]"#),
        "port[2] \"vm3\".allowed_address_pairs[1]",
        "listed twice (also allowed_address_pairs[0])",
    );
}

const VIP_OK: &str = r#"
[[vip]]
name = "web"
addresses = ["10.0.0.100", "fd00::100/128"]
candidates = ["web1", "web2"]
"#;

fn vip(body: &str) -> String {
    with_base(&format!("[[vip]]\n{body}"))
}

#[test]
fn vip_minimal_is_valid_with_defaults() {
    let c = Config::from_toml_str(&with_base(VIP_OK)).unwrap();
    let v = &c.vips[0];
    assert_eq!(v.mode, VipMode::ActivePassive);
    assert_eq!(v.addresses, vec![ip("10.0.0.100"), ip("fd00::100")]);
    assert_eq!(v.damping, c.switch.damping);
    assert_eq!(v.answer_mac(), derived_virtual_mac("web"));
    assert_eq!(v.vlan, 0);
    assert_eq!(c.vip_index("web"), Some(0));
    assert!(
        v.step_down_on_crash,
        "resigning for a crashed master is the default"
    );
    assert!(c
        .explain()
        .contains("owner's device vanishes: resign for it"));
}

#[test]
fn step_down_on_crash_is_active_passive_only() {
    let c = Config::from_toml_str(&vip(r#"name = "v"
addresses = ["10.0.0.100"]
candidates = ["web1"]
step_down_on_crash = false"#))
    .unwrap();
    assert!(!c.vips[0].step_down_on_crash);
    assert!(c.explain().contains("nothing sent"));
    let c = Config::from_toml_str(&vip(r#"name = "v"
mode = "active-active"
addresses = ["10.0.0.100"]
candidates = ["web1"]"#))
    .unwrap();
    assert!(
        !c.vips[0].step_down_on_crash,
        "no VRRP master in an A/A group"
    );
    assert_invalid(
        &vip(r#"name = "v"
mode = "active-active"
addresses = ["10.0.0.100"]
candidates = ["web1"]
step_down_on_crash = true"#),
        "vip[0] \"v\".step_down_on_crash",
        "only for active-passive",
    );
}

#[test]
fn vip_name_rules() {
    assert_invalid(
        &vip(r#"addresses = ["10.0.0.100"]
candidates = ["web1"]"#),
        "vip[0].name",
        "is required",
    );
    assert_invalid(
        &vip(r#"name = "w/1"
addresses = ["10.0.0.100"]
candidates = ["web1"]"#),
        "vip[0] \"w/1\".name",
        "contains '/'",
    );
    assert_invalid(
        &format!(
            "{}\n[[vip]]\nname = \"web\"\naddresses = [\"10.0.0.101\"]\ncandidates = [\"web1\"]",
            with_base(VIP_OK)
        ),
        "vip[1] \"web\".name",
        "duplicate vip name: vip[0] \"web\"",
    );
}

#[test]
fn vip_address_rules() {
    assert_invalid(
        &vip(r#"name = "v"
addresses = []
candidates = ["web1"]"#),
        "vip[0] \"v\".addresses",
        "needs at least one address",
    );
    assert_invalid(
        &vip(r#"name = "v"
candidates = ["web1"]"#),
        "vip[0] \"v\".addresses",
        "needs at least one address",
    );
    assert_invalid(
        &vip(r#"name = "v"
addresses = ["10.0.0.256"]
candidates = ["web1"]"#),
        "vip[0] \"v\".addresses[0]",
        "\"10.0.0.256\" is not an IP address",
    );
    assert_invalid(
        &vip(r#"name = "v"
addresses = ["10.0.0.100/24"]
candidates = ["web1"]"#),
        "vip[0] \"v\".addresses[0]",
        "has a /24 prefix; a VIP address is a single address",
    );
    assert_invalid(
        &vip(r#"name = "v"
addresses = ["10.0.0.100", "10.0.0.100/32"]
candidates = ["web1"]"#),
        "vip[0] \"v\".addresses[1]",
        "listed twice",
    );
}

#[test]
fn vip_address_is_not_a_fixed_ip() {
    assert_invalid(
        &vip(r#"name = "v"
addresses = ["fd00::11"]
candidates = ["web2"]"#),
        "vip[0] \"v\".addresses[0]",
        "fd00::11 is a fixed IP of port[0] \"web1\"",
    );
}

#[test]
fn vip_address_in_one_vip_only() {
    assert_invalid(
        &format!(
            "{}\n[[vip]]\nname = \"web-b\"\naddresses = [\"10.0.0.200\", \"10.0.0.100\"]\ncandidates = [\"web2\"]",
            with_base(VIP_OK)
        ),
        "vip[1] \"web-b\".addresses[1]",
        "10.0.0.100 is already an address of vip[0] \"web\"",
    );
}

#[test]
fn vip_candidate_rules() {
    assert_invalid(
        &vip(r#"name = "v"
addresses = ["10.0.0.100"]
candidates = []"#),
        "vip[0] \"v\".candidates",
        "needs at least one candidate",
    );
    assert_invalid(
        &vip(r#"name = "v"
addresses = ["10.0.0.100"]
candidates = ["web1", "web9"]"#),
        "vip[0] \"v\".candidates[1]",
        "no port named \"web9\"",
    );
    assert_invalid(
        &vip(r#"name = "v"
addresses = ["10.0.0.100"]
candidates = ["web1", "web2", "web1"]"#),
        "vip[0] \"v\".candidates[2]",
        "\"web1\" is listed twice (also candidates[0])",
    );
    assert_invalid(
        &vip(r#"name = "v"
addresses = ["10.0.0.100"]
candidates = ["web1", "other"]"#),
        "vip[0] \"v\".candidates[1]",
        "port \"other\" is in vlan 20 but \"web1\" (candidates[0]) is in vlan 0",
    );
}

#[test]
fn vip_owner_rules() {
    assert_invalid(
        &vip(r#"name = "v"
addresses = ["10.0.0.100"]
candidates = ["web1"]
owner = "web2""#),
        "vip[0] \"v\".owner",
        "\"web2\" is not one of this vip's candidates",
    );
    assert_invalid(
        &vip(r#"name = "v"
mode = "active-active"
addresses = ["10.0.0.100"]
candidates = ["web1", "web2"]
owner = "web1""#),
        "vip[0] \"v\".owner",
        "only for active-passive",
    );
    assert_invalid(
        &vip(r#"name = "v"
addresses = ["10.0.0.100"]
candidates = ["web1", "web2"]
owners = ["web1"]"#),
        "vip[0] \"v\".owners",
        "only for active-active",
    );
    assert_invalid(
        &vip(r#"name = "v"
mode = "active-active"
addresses = ["10.0.0.100"]
candidates = ["web1"]
owners = ["web1", "web2"]"#),
        "vip[0] \"v\".owners[1]",
        "\"web2\" is not one of this vip's candidates",
    );
    assert_invalid(
        &vip(r#"name = "v"
mode = "active-active"
addresses = ["10.0.0.100"]
candidates = ["web1", "web2"]
owners = ["web1", "web1"]"#),
        "vip[0] \"v\".owners[1]",
        "listed twice",
    );
    let c = Config::from_toml_str(&vip(r#"name = "v"
addresses = ["10.0.0.100"]
candidates = ["web1", "web2"]
owner = "web2""#))
    .unwrap();
    assert_eq!(c.vips[0].initial_owners, vec!["web2"]);
}

#[test]
fn vip_active_active_only_settings() {
    assert_invalid(
        &vip(r#"name = "v"
addresses = ["10.0.0.100"]
candidates = ["web1"]
virtual_mac = "02:00:00:00:aa:aa""#),
        "vip[0] \"v\".virtual_mac",
        "only for active-active",
    );
    assert_invalid(
        &vip(r#"name = "v"
addresses = ["10.0.0.100"]
candidates = ["web1"]
owner_liveness_secs = 30"#),
        "vip[0] \"v\".owner_liveness_secs",
        "only for active-active",
    );
    assert_invalid(
        &vip(r#"name = "v"
mode = "active-active"
addresses = ["10.0.0.100"]
candidates = ["web1"]
release_on_port_loss = true"#),
        "vip[0] \"v\".release_on_port_loss",
        "only for active-passive",
    );
    assert_invalid(
        &vip(r#"name = "v"
mode = "active-active"
addresses = ["10.0.0.100"]
candidates = ["web1"]
virtual_mac = "33:33:00:00:00:01""#),
        "vip[0] \"v\".virtual_mac",
        "must be unicast",
    );
    assert_invalid(
        &vip(r#"name = "v"
mode = "active-active"
addresses = ["10.0.0.100"]
candidates = ["web1"]
virtual_mac = "02:00:00:00:00:12""#),
        "vip[0] \"v\".virtual_mac",
        "is the MAC of port[1] \"web2\"",
    );
    assert_invalid(
        &vip(r#"name = "v"
mode = "active-active"
addresses = ["10.0.0.100"]
candidates = ["web1"]
owner_liveness_secs = 0"#),
        "vip[0] \"v\".owner_liveness_secs",
        "greater than 0",
    );
    let c = Config::from_toml_str(&vip(r#"name = "v"
mode = "active-active"
addresses = ["10.0.0.100"]
candidates = ["web1", "web2"]
owner_liveness_secs = 1.5"#))
    .unwrap();
    assert_eq!(c.vips[0].owner_liveness, Some(Duration::from_millis(1500)));
    assert_eq!(c.vips[0].answer_mac(), derived_virtual_mac("v"));
}

#[test]
fn vip_vrid_and_damping_ranges() {
    for bad in ["0", "256"] {
        assert_invalid(
            &vip(&format!(
                "name = \"v\"\naddresses = [\"10.0.0.100\"]\ncandidates = [\"web1\"]\nvrrp_vrid = {bad}"
            )),
            "vip[0] \"v\".vrrp_vrid",
            "between 1 and 255",
        );
    }
    assert_invalid(
        &vip(r#"name = "v"
addresses = ["10.0.0.100"]
candidates = ["web1"]
damping_window_secs = -1"#),
        "vip[0] \"v\".damping_window_secs",
        "greater than 0",
    );
    assert_invalid(
        &vip(r#"name = "v"
addresses = ["10.0.0.100"]
candidates = ["web1"]
damping_max_moves = -1"#),
        "vip[0] \"v\".damping_max_moves",
        "between 0 and",
    );
}

// ---------------------------------------------------------------------------------------
// Shape errors and error reporting
// ---------------------------------------------------------------------------------------

#[test]
fn unknown_fields_are_rejected_by_name() {
    let e = syntax_error(&format!("{BASE}\n[switch]\nmac_aging = 5"));
    assert!(e.contains("unknown field `mac_aging`"), "{e}");
    let e = syntax_error(
        "[[port]]\nname = \"a\"\ntap = \"t\"\nmac = \"02:00:00:00:00:01\"\ndest_chek = false",
    );
    assert!(e.contains("unknown field `dest_chek`"), "{e}");
    assert!(e.contains("line 5"), "{e}");
    let e = syntax_error(
        "[[port]]\nname = \"a\"\ntap = \"t\"\nmac = \"02:00:00:00:00:01\"\n\
         allowed_address_pairs = [{ ip = \"10.0.0.5\", mak = \"02:00:00:00:00:02\" }]",
    );
    assert!(e.contains("unknown field `mak`"), "{e}");
    let e = syntax_error(&vip(
        "name = \"v\"\naddresses = [\"10.0.0.100\"]\ncandidates = [\"web1\"]\nownr = \"web1\"",
    ));
    assert!(e.contains("unknown field `ownr`"), "{e}");
    let e = syntax_error("[[ports]]\nname = \"a\"");
    assert!(e.contains("unknown field `ports`"), "{e}");
}

#[test]
fn bad_mode_and_wrong_types_are_syntax_errors() {
    let e = syntax_error(&vip(
        "name = \"v\"\nmode = \"active-standby\"\naddresses = [\"10.0.0.100\"]\ncandidates = [\"web1\"]",
    ));
    assert!(e.contains("active-standby"), "{e}");
    assert!(e.contains("active-passive"), "{e}");
    let e = syntax_error(
        "[[port]]\nname = \"a\"\ntap = \"t\"\nmac = \"02:00:00:00:00:01\"\nvlan = \"ten\"",
    );
    assert!(e.contains("vlan") || e.contains("line 5"), "{e}");
}

#[test]
fn all_errors_are_reported_together() {
    let toml = r#"
[switch]
mtu = 20

[[port]]
name = "vm1"
tap = "tap-vm1"
mac = "02:00:00:00:00:01"
ips = ["10.0.0.1/24"]

[[port]]
name = "vm1"
tap = "tap-vm1"
mac = "02:00:00:00:00:01"
ips = ["10.0.0.1/24", "bogus"]

[[vip]]
name = "v"
addresses = ["10.0.0.1"]
candidates = ["nobody"]
"#;
    let errs = field_errors(toml);
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    for expected in [
        "switch.mtu",
        "port[1] \"vm1\".name",
        "port[1] \"vm1\".tap",
        "port[1] \"vm1\".mac",
        "port[1] \"vm1\".ips[0]",
        "port[1] \"vm1\".ips[1]",
        "vip[0] \"v\".addresses[0]",
        "vip[0] \"v\".candidates[0]",
    ] {
        assert!(
            fields.contains(&expected),
            "missing {expected} in {fields:#?}"
        );
    }
    let shown = ConfigError::Invalid(errs.clone()).to_string();
    assert_eq!(shown.lines().count(), errs.len(), "{shown}");
    assert_eq!(
        Config::from_toml_str(toml)
            .unwrap_err()
            .field_errors()
            .len(),
        errs.len()
    );
}

#[test]
fn load_reports_path_on_syntax_error() {
    let dir = std::env::temp_dir().join(format!("vswitch-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("broken.toml");
    std::fs::write(&path, "[[port]\nname = 1\n").unwrap();
    let e = Config::load(&path).unwrap_err();
    let shown = e.to_string();
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        matches!(e, ConfigError::Syntax { path: Some(_), .. }),
        "{shown}"
    );
    assert!(shown.contains("broken.toml"), "{shown}");
    assert!(shown.contains("line 1"), "{shown}");
}

#[test]
fn cluster_host_a_means_what_its_comments_say() {
    let c = example("cluster-host-a.toml");
    let cl = c.cluster.as_ref().expect("[cluster]");
    assert_eq!(cl.host, "host-a");
    assert_eq!(cl.endpoints.len(), 3);
    assert_eq!(cl.vtep, "10.250.1.1".parse::<std::net::Ipv4Addr>().unwrap());
    assert_eq!(cl.underlay_mtu, 1500);
    assert_eq!(cl.lease_ttl, Duration::from_secs(5));
    assert!(cl.tls.is_none());
    // every port's VLAN has a VNI, and 1450 + 50 fits the 1500-byte underlay
    for p in &c.ports {
        assert!(cl.vni(p.vlan).is_some(), "{}", p.name);
        assert_eq!(p.mtu, 1450);
    }
    assert_eq!(cl.vni(10).map(|v| v.get()), Some(5010));
    let text = c.explain();
    assert!(
        text.contains("cluster: host \"host-a\", VTEP 10.250.1.1"),
        "{text}"
    );
    assert!(text.contains("vlan 10 travels in VNI 5010"), "{text}");
    // the standalone examples have no [cluster] and say nothing about it
    let basic = example("basic.toml");
    assert!(basic.cluster.is_none());
    assert!(!basic.explain().contains("cluster"));
}
