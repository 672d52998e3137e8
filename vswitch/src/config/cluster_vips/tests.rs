#![allow(clippy::unwrap_used)]
use super::*;

const FILE: &str = r#"
[[port]]
name = "web1"
tap = "tap-web1"
mac = "02:00:00:00:0a:01"
ips = ["10.0.0.11/24"]
vlan = 7

[[vip]]
name = "local"
addresses = ["10.0.0.90"]
candidates = ["web1"]
"#;

fn defs(text: &str) -> Vec<VipDef> {
    vip_defs_from_toml(text).unwrap()
}

fn groups(text: &str, vlan: u16) -> Vec<ClusterVip> {
    cluster_vip_configs(&defs(text))
        .unwrap()
        .into_iter()
        .map(|group| ClusterVip { group, vlan })
        .collect()
}

#[test]
fn candidates_may_be_any_port_of_the_cluster() {
    let d = defs(
        r#"[[vip]]
name = "web"
addresses = ["10.0.0.100"]
candidates = ["web1", "web2"]
"#,
    );
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].candidates, vec!["web1", "web2"]);
    let g = cluster_vip_configs(&d).unwrap();
    assert_eq!(g[0].candidates, vec!["web1", "web2"]);
    // the definition round-trips through JSON (the etcd record)
    let json = serde_json::to_vec(&d[0]).unwrap();
    let back: VipDef = serde_json::from_slice(&json).unwrap();
    assert_eq!(back, d[0]);
    // and through the TOML `cluster show` prints
    assert_eq!(vip_defs_from_toml(&vip_defs_to_toml(&d)).unwrap(), d);
}

#[test]
fn invalid_definitions_name_the_field() {
    let e = vip_defs_from_toml(
        r#"[[vip]]
name = "web"
addresses = ["10.0.0.300"]
candidates = ["web1", "bad/name"]
"#,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains(r#"vip[0] "web".addresses[0]"#), "{e}");
    assert!(e.contains(r#"vip[0] "web".candidates[1]"#), "{e}");
    // a typo'd field and a table other than [[vip]] are refused by name
    let e = vip_defs_from_toml("[[vip]]\nname = \"w\"\ncandidatez = []\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("candidatez"), "{e}");
    let e = vip_defs_from_toml("[[port]]\nname = \"w\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("port"), "{e}");
    // names and addresses are unique across the set
    let e = vip_defs_from_toml(
        "[[vip]]\nname = \"a\"\naddresses = [\"10.0.0.1\"]\ncandidates = [\"x\"]\n\
         [[vip]]\nname = \"b\"\naddresses = [\"10.0.0.1\"]\ncandidates = [\"y\"]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains(r#"vip[1] "b".addresses[0]"#), "{e}");
}

#[test]
fn merge_adds_cluster_groups_and_the_file_wins_clashes() {
    let file = Config::from_toml_str(FILE).unwrap();
    let cluster = groups(
        r#"[[vip]]
name = "web"
addresses = ["10.0.0.100"]
candidates = ["web1", "web2"]

[[vip]]
name = "remote-only"
addresses = ["10.0.0.101"]
candidates = ["db1", "db2"]

[[vip]]
name = "local"
addresses = ["10.0.0.102"]
candidates = ["web2"]

[[vip]]
name = "steals"
addresses = ["10.0.0.90"]
candidates = ["web2"]

[[vip]]
name = "fixed"
addresses = ["10.0.0.11"]
candidates = ["web2"]
"#,
        3,
    );
    let (cfg, skipped) = merge_cluster_vips(&file, &cluster);
    let names: Vec<&str> = cfg.vips.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, vec!["local", "web", "remote-only"]);
    // a local candidate's VLAN wins; a group with none takes the records' VLAN
    assert_eq!(cfg.vips[1].vlan, 7);
    assert_eq!(cfg.vips[2].vlan, 3);
    let why: Vec<(&str, &str)> = skipped
        .iter()
        .map(|(n, w)| (n.as_str(), w.as_str()))
        .collect();
    assert_eq!(why.len(), 3, "{why:?}");
    assert_eq!(why[0].0, "local");
    assert!(why[0].1.contains("configuration file"), "{why:?}");
    assert_eq!(why[1].0, "steals");
    assert!(why[1].1.contains("10.0.0.90"), "{why:?}");
    assert_eq!(why[2].0, "fixed");
    assert!(why[2].1.contains("fixed IP"), "{why:?}");
    // and the switch builds from it: a group with no local candidate is accepted
    let sw = crate::control::Switch::new(cfg, vip_table::Timestamp(1)).unwrap();
    assert_eq!(sw.vips().groups().count(), 3);
}
