//! The exposition: every line parses as Prometheus text 0.0.4, every sample belongs to a
//! family declared before it with its type, the values are the switch's counters.

use std::collections::{BTreeMap, HashSet};

use vip_table::{PortId, Timestamp};

use crate::config::Config;
use crate::control::Switch;
use crate::verdict::DropReason;

/// One parsed sample: name, labels in order, value.
type Sample = (String, Vec<(String, String)>, f64);

/// Parse `text` strictly: `# HELP name text`, `# TYPE name kind` (once per family, before
/// its samples) and `name{l="v",...} value`; a sample's name must be its family's (plus
/// `_bucket` / `_sum` / `_count` for a histogram) and no series may repeat.
fn parse(text: &str) -> Result<(BTreeMap<String, String>, Vec<Sample>), String> {
    let mut types = BTreeMap::new();
    let mut helped = HashSet::new();
    let mut seen = HashSet::new();
    let mut samples = Vec::new();
    let name_ok = |n: &str| {
        !n.is_empty()
            && !n.starts_with(|c: char| c.is_ascii_digit())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest.split_once(' ').ok_or(format!("bad HELP: {line}"))?;
            if !name_ok(name) || !helped.insert(name.to_string()) {
                return Err(format!("bad or repeated HELP: {line}"));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or(format!("bad TYPE: {line}"))?;
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind)
                || types.insert(name.to_string(), kind.to_string()).is_some()
                || !helped.contains(name)
            {
                return Err(format!("bad or repeated TYPE: {line}"));
            }
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            return Err(format!("unexpected line: {line:?}"));
        }
        let (series, value) = line.rsplit_once(' ').ok_or(format!("no value: {line}"))?;
        let value: f64 = value.parse().map_err(|_| format!("bad value: {line}"))?;
        let (name, labels) = match series.split_once('{') {
            None => (series, Vec::new()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .ok_or(format!("bad labels: {line}"))?;
                (
                    name,
                    parse_labels(body).ok_or(format!("bad labels: {line}"))?,
                )
            }
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|s| name.strip_suffix(s))
            .find(|f| types.get(*f).is_some_and(|k| k == "histogram"))
            .unwrap_or(name);
        if !name_ok(name) || !types.contains_key(family) {
            return Err(format!("sample of no declared family: {line}"));
        }
        if !seen.insert(series.to_string()) {
            return Err(format!("repeated series: {line}"));
        }
        samples.push((name.to_string(), labels, value));
    }
    Ok((types, samples))
}

/// `a="x",b="y\"z"` → pairs (values unescaped); `None` if malformed.
fn parse_labels(mut s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    while !s.is_empty() {
        let (k, rest) = s.split_once("=\"")?;
        let mut v = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => v.push('\n'),
                    c @ ('\\' | '"') => v.push(c),
                    _ => return None,
                },
                (_, c) => v.push(c),
            }
        };
        out.push((k.to_string(), v));
        s = &rest[end + 1..];
        s = s.strip_prefix(',').unwrap_or(s);
    }
    Some(out)
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && l.len() == labels.len()
                && l.iter()
                    .zip(labels)
                    .all(|((a, b), (c, d))| a == c && b == d)
        })
        .map(|s| s.2)
}

fn switch() -> Switch {
    let mut s = String::new();
    for n in 1..=2 {
        s.push_str(&format!(
            "[[port]]\nname = \"vm{n}\"\ntap = \"tap-vm{n}\"\nmac = \"02:00:00:00:00:0{n}\"\n\
             ips = [\"10.0.0.{n}/24\"]\n\n"
        ));
    }
    s.push_str(
        "[[vip]]\nname = \"web\"\naddresses = [\"10.0.0.100\"]\ncandidates = [\"vm1\", \"vm2\"]\n\
         owner = \"vm2\"\n",
    );
    Switch::new(Config::from_toml_str(&s).expect("config"), Timestamp(0)).expect("switch")
}

#[test]
fn the_exposition_parses_and_carries_the_counters() {
    let sw = switch();
    let c = sw.counters(PortId(0)).expect("vm1");
    c.rx(60);
    c.rx(100);
    c.count_drop(DropReason::IpSpoof);
    sw.counters(PortId(1)).expect("vm2").tx(42);
    let mut text = super::render(&sw, Timestamp(0));
    super::render_worker(&mut text, "epoll", &[7, 0]);
    let (types, samples) = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    for (family, kind) in [
        ("vswitch_port_rx_frames_total", "counter"),
        ("vswitch_port_drops_total", "counter"),
        ("vswitch_port_up", "gauge"),
        ("vswitch_fdb_learned_entries", "gauge"),
        ("vswitch_vip_epoch", "gauge"),
        ("vswitch_vip_owner", "gauge"),
        ("vswitch_vip_hijack_attempts_total", "counter"),
        ("vswitch_worker_io", "gauge"),
        ("vswitch_worker_rx_frames_total", "counter"),
    ] {
        assert_eq!(
            types.get(family).map(String::as_str),
            Some(kind),
            "{family}\n{text}"
        );
    }
    let v = |name: &str, labels: &[(&str, &str)]| value(&samples, name, labels);
    assert_eq!(
        v("vswitch_port_rx_frames_total", &[("port", "vm1")]),
        Some(2.0)
    );
    assert_eq!(
        v("vswitch_port_rx_bytes_total", &[("port", "vm1")]),
        Some(160.0)
    );
    assert_eq!(
        v("vswitch_port_tx_bytes_total", &[("port", "vm2")]),
        Some(42.0)
    );
    assert_eq!(
        v(
            "vswitch_port_drops_total",
            &[("port", "vm1"), ("reason", "ip_spoof")]
        ),
        Some(1.0)
    );
    assert_eq!(
        v(
            "vswitch_port_drops_total",
            &[("port", "vm2"), ("reason", "ip_spoof")]
        ),
        Some(0.0)
    );
    assert_eq!(v("vswitch_port_up", &[("port", "vm1")]), Some(1.0));
    assert_eq!(
        v("vswitch_vip_owner", &[("vip", "web"), ("port", "vm2")]),
        Some(1.0)
    );
    assert_eq!(
        v("vswitch_vip_owner", &[("vip", "web"), ("port", "vm1")]),
        None
    );
    assert_eq!(v("vswitch_vip_owners", &[("vip", "web")]), Some(1.0));
    assert_eq!(v("vswitch_worker_io", &[("engine", "epoll")]), Some(1.0));
    assert_eq!(
        v("vswitch_worker_rx_frames_total", &[("worker", "0")]),
        Some(7.0)
    );
    assert_eq!(
        v("vswitch_worker_rx_frames_total", &[("worker", "1")]),
        Some(0.0)
    );
    // help text as written, one full stop
    assert!(
        text.contains(
            "# HELP vswitch_port_up 1 if the port is administratively and operationally up.\n"
        ),
        "{text}"
    );
    // samples in port order
    let rx: Vec<_> = text
        .lines()
        .filter(|l| l.starts_with("vswitch_port_rx_frames_total{"))
        .collect();
    assert_eq!(
        rx,
        [
            "vswitch_port_rx_frames_total{port=\"vm1\"} 2",
            "vswitch_port_rx_frames_total{port=\"vm2\"} 0"
        ]
    );
}

#[test]
fn the_checker_refuses_what_prometheus_would() {
    for bad in [
        "x 1\n",                                             // no family
        "# HELP x h\n# TYPE x counter\nx{a=\"1} 1\n",        // unterminated label
        "# HELP x h\n# TYPE x counter\nx 1\nx 2\n",          // repeated series
        "# HELP x h\n# TYPE x gauge\n# TYPE x gauge\nx 1\n", // repeated TYPE
        "# HELP x h\n# TYPE x counter\nx one\n",             // bad value
    ] {
        assert!(parse(bad).is_err(), "{bad:?}");
    }
    assert!(parse(
        "# HELP x h\n# TYPE x histogram\nx_bucket{le=\"+Inf\"} 1\nx_sum 0.5\nx_count 1\n"
    )
    .is_ok());
}

#[test]
fn label_values_are_escaped() {
    let mut text = String::new();
    super::render_worker(&mut text, "a\"b\\c\nd", &[]);
    let (_, samples) = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        value(&samples, "vswitch_worker_io", &[("engine", "a\"b\\c\nd")]),
        Some(1.0),
        "{text}"
    );
}
