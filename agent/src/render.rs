//! Human tables for `vswitch ctl show …` and one-line events for `vswitch ctl watch`,
//! rendered from the typed views (`--json` prints the views' JSON instead).

use std::fmt::Write;

use vswitch::view::{FdbEntryView, HostView, PortStatsView, PortView, View, VipView};

/// A list cell: `-` when empty.
fn list(v: &[String]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(",")
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

fn opt(v: Option<&str>) -> String {
    v.unwrap_or("-").to_string()
}

fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut w: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(x) = w.get_mut(i) {
                *x = (*x).max(c.len());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{:<width$}", c, width = w.get(i).copied().unwrap_or(0)))
            .collect();
        let _ = writeln!(out, "{}", parts.join("  ").trim_end());
    };
    line(headers.to_vec(), &mut out);
    for r in &rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// Any answer, for a human.
pub fn view(v: &View) -> String {
    match v {
        View::Ports(p) => ports(p),
        View::Fdb(f) => fdb(f),
        View::Vips(g) => vips(g),
        View::Stats(s) => stats(s),
        View::Hosts(h) => hosts(h),
        View::Metrics(text) => text.clone(),
        View::ClusterDefs(d) if d.is_empty() => "no cluster vip groups\n".into(),
        View::ClusterDefs(d) => vswitch::config::vip_defs_to_toml(d),
        View::ClusterApplied(r) => format!(
            "cluster vip groups written: {}; deleted: {} (etcd revision {})\n",
            list(&r.written),
            list(&r.deleted),
            r.revision
        ),
        other => result(other),
    }
}

/// `show hosts`: one row per host, this one first; then this host's port-name clashes.
pub fn hosts(v: &[HostView]) -> String {
    let rows = v
        .iter()
        .map(|h| {
            vec![
                h.host.clone(),
                h.vtep.clone(),
                h.version.clone(),
                if h.local { "local" } else { "remote" }.to_string(),
                opt(h.session.as_deref()),
                h.ports.to_string(),
            ]
        })
        .collect();
    let mut out = table(
        &["HOST", "VTEP", "VERSION", "WHERE", "SESSION", "PORTS"],
        rows,
    );
    for h in v.iter().filter(|h| h.local) {
        for c in &h.clashes {
            let _ = writeln!(
                out,
                "not published: port {} (host {} holds that name; port names are cluster-unique)",
                c.port, c.holder
            );
        }
    }
    out
}

/// `show ports`.
pub fn ports(v: &[PortView]) -> String {
    let rows = v
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                format!("{} {}", p.binding, p.ifname),
                p.state().into(),
                p.mac.clone(),
                list(&p.ips),
                p.vlan.to_string(),
                yes_no(p.port_security),
                yes_no(p.dest_check),
                list(&p.vip_candidate_of),
            ]
        })
        .collect();
    table(
        &[
            "PORT", "BINDING", "STATE", "MAC", "IPS", "VLAN", "PORTSEC", "DESTCHK", "VIPS",
        ],
        rows,
    )
}

/// `show fdb`.
pub fn fdb(v: &[FdbEntryView]) -> String {
    // the HOST column only in cluster mode, when other hosts' ports are listed
    let remote = v.iter().any(|e| e.host.is_some());
    let rows = v
        .iter()
        .map(|e| {
            let mut r = vec![e.vlan.to_string(), e.mac.clone(), e.port.clone()];
            if remote {
                r.push(e.host.clone().unwrap_or_else(|| "(local)".into()));
            }
            r.push(if e.host.is_some() {
                "remote".into()
            } else if e.is_static {
                "static".into()
            } else {
                format!("{:.0}s", e.age_secs)
            });
            r
        })
        .collect();
    if remote {
        table(&["VLAN", "MAC", "PORT", "HOST", "AGE"], rows)
    } else {
        table(&["VLAN", "MAC", "PORT", "AGE"], rows)
    }
}

/// `show vips`.
pub fn vips(v: &[VipView]) -> String {
    let mut out = String::new();
    for g in v {
        let mac = |m: &str, m6: &str| {
            if m6 == m {
                format!("({m})")
            } else {
                format!("({m}, IPv6 {m6})")
            }
        };
        let owners: Vec<String> = g
            .owners
            .iter()
            .map(|o| format!("{} {}", o.port, mac(&o.mac, &o.mac6)))
            .chain(
                g.remote_owners
                    .iter()
                    .map(|o| format!("{} @ {} {}", o.port, o.host, mac(&o.mac, &o.mac6))),
            )
            .collect();
        let mut candidates = g.candidates.clone();
        candidates.extend(g.remote_candidates.iter().cloned());
        let _ = writeln!(out, "vip {} [{}]", g.name, g.mode);
        let _ = writeln!(out, "  addresses:   {}", list(&g.addresses));
        let _ = writeln!(out, "  candidates:  {}", list(&candidates));
        let _ = writeln!(
            out,
            "  owner(s):    {}",
            if owners.is_empty() {
                "none".into()
            } else {
                owners.join(", ")
            }
        );
        match (&g.answer_mac, &g.answer_mac6) {
            (m4, Some(m6)) if g.answer_mac6 != g.answer_mac => {
                let _ = writeln!(out, "  answer mac:  {} (IPv6 {m6})", opt(m4.as_deref()));
            }
            (m4, _) => {
                let _ = writeln!(out, "  answer mac:  {}", opt(m4.as_deref()));
            }
        }
        let _ = writeln!(out, "  epoch:       {}", g.epoch);
        if g.discovering {
            let _ = writeln!(out, "  discovery:   asking the candidates who holds it");
        }
        let _ = writeln!(
            out,
            "  last claim:  {}",
            match &g.last_claim {
                None => "-".into(),
                Some(lc) => format!("{} {:.1}s ago", lc.port, lc.secs_ago),
            }
        );
        let _ = writeln!(
            out,
            "  pending:     {}",
            match &g.pending {
                None => "-".into(),
                Some(p) => format!("{} in {:.1}s (damping)", p.port, p.due_in_secs),
            }
        );
        let _ = writeln!(out, "  hijacks:     {}", g.hijack_attempts);
        if let Some(lh) = &g.last_hijack {
            let _ = writeln!(
                out,
                "  last hijack: {} ({}) {:.1}s ago",
                lh.port, lh.mac, lh.secs_ago
            );
        }
        if !g.moves.is_empty() {
            let _ = writeln!(out, "  recent moves:");
            for m in g.moves.iter().rev().take(8) {
                let _ = writeln!(
                    out,
                    "    {:>8.1}s ago  epoch {:<4} {} -> {}  ({})",
                    m.secs_ago,
                    m.epoch.to_string(),
                    opt(m.from.as_deref()),
                    opt(m.to.as_deref()),
                    m.reason
                );
            }
        }
    }
    if out.is_empty() {
        out.push_str("no vip groups configured\n");
    }
    out
}

/// `show stats`.
pub fn stats(v: &[PortStatsView]) -> String {
    let rows = v
        .iter()
        .map(|p| {
            let drops: Vec<String> = p
                .drops
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| format!("{k}={n}"))
                .collect();
            vec![
                p.port.clone(),
                if p.up { "up" } else { "down" }.into(),
                p.rx_frames.to_string(),
                p.rx_bytes.to_string(),
                p.tx_frames.to_string(),
                p.tx_bytes.to_string(),
                p.answered.to_string(),
                if drops.is_empty() {
                    "-".into()
                } else {
                    drops.join(" ")
                },
            ]
        })
        .collect();
    table(
        &[
            "PORT", "STATE", "RX", "RX_BYTES", "TX", "TX_BYTES", "ANSWERED", "DROPS",
        ],
        rows,
    )
}

/// Any other command's result: its JSON on one line.
pub fn result(v: &View) -> String {
    format!("{}\n", v.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vswitch::view::{MoveResult, OwnerView};

    #[test]
    fn vips_render_from_the_typed_view() {
        let g = VipView {
            name: "web".into(),
            mode: "active-passive".into(),
            addresses: vec!["10.0.0.100".into()],
            candidates: vec!["a".into(), "b".into()],
            owners: vec![OwnerView {
                port: "a".into(),
                mac: "02:00:00:00:00:0a".into(),
                mac6: "02:00:00:00:00:0a".into(),
                since_secs_ago: 1.0,
                last_claim_secs_ago: 1.0,
            }],
            answer_mac: Some("02:00:00:00:00:0a".into()),
            answer_mac6: Some("02:00:00:00:00:0a".into()),
            epoch: 2,
            last_claim: None,
            pending: None,
            moves: vec![],
            hijack_attempts: 0,
            discovering: false,
            last_hijack: None,
            remote_owners: vec![],
            remote_candidates: vec!["b2@host-b".into()],
        };
        let mut remote = g.clone();
        remote.owners.clear();
        remote.remote_owners.push(vswitch::view::RemoteOwnerView {
            port: "b2".into(),
            host: "host-b".into(),
            mac: "02:00:00:00:00:b2".into(),
            mac6: "02:00:00:00:00:b2".into(),
            since_secs_ago: 1.0,
        });
        let r = vips(&[remote]);
        assert!(
            r.contains("  owner(s):    b2 @ host-b (02:00:00:00:00:b2)\n"),
            "{r}"
        );
        assert!(r.contains("  candidates:  a,b,b2@host-b\n"), "{r}");
        let out = vips(&[g]);
        assert!(out.starts_with("vip web [active-passive]\n"), "{out}");
        assert!(
            out.contains("  owner(s):    a (02:00:00:00:00:0a)\n"),
            "{out}"
        );
        assert!(out.contains("  answer mac:  02:00:00:00:00:0a\n"), "{out}");
        assert!(out.contains("  last claim:  -\n"), "{out}");
        assert_eq!(vips(&[]), "no vip groups configured\n");
        assert_eq!(
            result(&View::Moved(MoveResult {
                moved: true,
                epoch: Some(3)
            })),
            "{\"epoch\":3,\"moved\":true}\n"
        );
    }

    #[test]
    fn fdb_lists_other_hosts_ports_with_their_host_only_in_cluster_mode() {
        let local = FdbEntryView {
            vlan: 0,
            mac: "02:00:00:00:00:01".into(),
            port: "web1".into(),
            host: None,
            is_static: true,
            age_secs: 0.0,
        };
        let remote = FdbEntryView {
            mac: "02:00:00:00:0b:01".into(),
            port: "far1".into(),
            host: Some("host-b".into()),
            ..local.clone()
        };
        let out = fdb(std::slice::from_ref(&local));
        assert!(out.starts_with("VLAN"), "{out}");
        assert!(!out.contains("HOST"), "standalone: no HOST column: {out}");
        let out = fdb(&[local, remote]);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].contains("HOST"), "{out}");
        assert!(
            lines[1].contains("web1")
                && lines[1].contains("(local)")
                && lines[1].contains("static"),
            "{out}"
        );
        assert!(
            lines[2].contains("far1") && lines[2].contains("host-b") && lines[2].contains("remote"),
            "{out}"
        );
    }
}
