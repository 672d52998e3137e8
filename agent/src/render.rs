//! Human tables for `vswitch ctl show …` (the `--json` output is the raw data).

use std::fmt::Write;

use serde_json::Value;

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(x) => x.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::Array(a) => {
            if a.is_empty() {
                "-".into()
            } else {
                a.iter().map(s).collect::<Vec<_>>().join(",")
            }
        }
        other => other.to_string(),
    }
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

fn arr(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// `show ports`.
pub fn ports(v: &Value) -> String {
    let rows = arr(v)
        .iter()
        .map(|p| {
            let state = match (p["admin_up"].as_bool(), p["oper_up"].as_bool()) {
                (Some(false), _) => "admin-down",
                (_, Some(false)) => "down",
                _ => "up",
            };
            vec![
                s(&p["name"]),
                format!("{} {}", s(&p["binding"]), s(&p["ifname"])),
                state.into(),
                s(&p["mac"]),
                s(&p["ips"]),
                s(&p["vlan"]),
                s(&p["port_security"]),
                s(&p["dest_check"]),
                s(&p["vip_candidate_of"]),
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
pub fn fdb(v: &Value) -> String {
    let rows = arr(v)
        .iter()
        .map(|e| {
            vec![
                s(&e["vlan"]),
                s(&e["mac"]),
                s(&e["port"]),
                if e["static"].as_bool() == Some(true) {
                    "static".into()
                } else {
                    format!("{:.0}s", e["age_secs"].as_f64().unwrap_or(0.0))
                },
            ]
        })
        .collect();
    table(&["VLAN", "MAC", "PORT", "AGE"], rows)
}

/// `show vips`.
pub fn vips(v: &Value) -> String {
    let mut out = String::new();
    for g in arr(v) {
        let owners: Vec<String> = arr(&g["owners"])
            .iter()
            .map(|o| {
                if o["mac6"].is_null() || o["mac6"] == o["mac"] {
                    format!("{} ({})", s(&o["port"]), s(&o["mac"]))
                } else {
                    format!(
                        "{} ({}, IPv6 {})",
                        s(&o["port"]),
                        s(&o["mac"]),
                        s(&o["mac6"])
                    )
                }
            })
            .collect();
        let _ = writeln!(out, "vip {} [{}]", s(&g["name"]), s(&g["mode"]));
        let _ = writeln!(out, "  addresses:   {}", s(&g["addresses"]));
        let _ = writeln!(out, "  candidates:  {}", s(&g["candidates"]));
        let _ = writeln!(
            out,
            "  owner(s):    {}",
            if owners.is_empty() {
                "none".into()
            } else {
                owners.join(", ")
            }
        );
        if g["answer_mac6"].is_null() || g["answer_mac6"] == g["answer_mac"] {
            let _ = writeln!(out, "  answer mac:  {}", s(&g["answer_mac"]));
        } else {
            let _ = writeln!(
                out,
                "  answer mac:  {} (IPv6 {})",
                s(&g["answer_mac"]),
                s(&g["answer_mac6"])
            );
        }
        let _ = writeln!(out, "  epoch:       {}", s(&g["epoch"]));
        if g["discovering"].as_bool() == Some(true) {
            let _ = writeln!(out, "  discovery:   asking the candidates who holds it");
        }
        let lc = &g["last_claim"];
        let _ = writeln!(
            out,
            "  last claim:  {}",
            if lc.is_null() {
                "-".into()
            } else {
                format!(
                    "{} {:.1}s ago",
                    s(&lc["port"]),
                    lc["secs_ago"].as_f64().unwrap_or(0.0)
                )
            }
        );
        let p = &g["pending"];
        let _ = writeln!(
            out,
            "  pending:     {}",
            if p.is_null() {
                "-".into()
            } else {
                format!(
                    "{} in {:.1}s (damping)",
                    s(&p["port"]),
                    p["due_in_secs"].as_f64().unwrap_or(0.0)
                )
            }
        );
        let _ = writeln!(out, "  hijacks:     {}", s(&g["hijack_attempts"]));
        let lh = &g["last_hijack"];
        if !lh.is_null() {
            let _ = writeln!(
                out,
                "  last hijack: {} ({}) {:.1}s ago",
                s(&lh["port"]),
                s(&lh["mac"]),
                lh["secs_ago"].as_f64().unwrap_or(0.0)
            );
        }
        let moves = arr(&g["moves"]);
        if !moves.is_empty() {
            let _ = writeln!(out, "  recent moves:");
            for m in moves.iter().rev().take(8) {
                let _ = writeln!(
                    out,
                    "    {:>8.1}s ago  epoch {:<4} {} -> {}  ({})",
                    m["secs_ago"].as_f64().unwrap_or(0.0),
                    s(&m["epoch"]),
                    s(&m["from"]),
                    s(&m["to"]),
                    s(&m["reason"])
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
pub fn stats(v: &Value) -> String {
    let rows = arr(v)
        .iter()
        .map(|p| {
            let drops: Vec<String> = p["drops"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(_, n)| n.as_u64().unwrap_or(0) > 0)
                        .map(|(k, n)| format!("{k}={n}"))
                        .collect()
                })
                .unwrap_or_default();
            vec![
                s(&p["port"]),
                if p["up"].as_bool() == Some(true) {
                    "up".into()
                } else {
                    "down".into()
                },
                s(&p["rx_frames"]),
                s(&p["rx_bytes"]),
                s(&p["tx_frames"]),
                s(&p["tx_bytes"]),
                s(&p["answered"]),
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

/// Any other command's result.
pub fn result(v: &Value) -> String {
    format!("{}\n", serde_json::to_string(v).unwrap_or_default())
}
