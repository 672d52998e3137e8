//! The human summary printed by `vswitch check-config`: the effective configuration with
//! every default applied, in words an operator can check against intent.

use std::fmt::Write as _;
use std::time::Duration;

use vip_table::{IpNet, VipMode};

use super::{Config, PortConfig, VipConfig};

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

fn vlan_text(vlan: u16) -> String {
    if vlan == 0 {
        "untagged".to_string()
    } else {
        format!("vlan {vlan}")
    }
}

fn join<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    let v: Vec<String> = items.into_iter().map(|x| x.to_string()).collect();
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(", ")
    }
}

fn is_everything(net: &IpNet) -> bool {
    net.prefix_len() == 0
}

pub(super) fn explain(c: &Config) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail; the results are ignored deliberately.
    let s_ = &mut s;
    let sw = &c.switch;
    let _ = writeln!(s_, "switch:");
    let _ = writeln!(
        s_,
        "  learned MACs age out after {}; at most {} learned MACs in total, {} per port",
        secs(sw.mac_aging),
        sw.fdb_size,
        sw.fdb_port_limit
    );
    let _ = writeln!(s_, "  default port mtu {}", sw.mtu);
    let _ = writeln!(
        s_,
        "  VIP ownership is kept across restarts in {}",
        sw.state_dir.join(crate::state::FILE_NAME).display()
    );
    let _ = writeln!(
        s_,
        "  default vip flap damping: {}",
        damping_text(sw.damping.max_moves, sw.damping.window)
    );
    let group = match &sw.ctl_group.name {
        Some(name) => format!("{name} (gid {})", sw.ctl_group.gid),
        None => format!("gid {} (default)", sw.ctl_group.gid),
    };
    let _ = writeln!(
        s_,
        "  control socket group {group}: socket mode 0660; root and members of the group may \
         change the switch, anyone else who can connect may only read"
    );

    let _ = writeln!(s_, "ports ({}):", c.ports.len());
    for p in &c.ports {
        explain_port(s_, c, p);
    }

    let _ = writeln!(s_, "vips ({}):", c.vips.len());
    for v in &c.vips {
        explain_vip(s_, c, v);
    }
    explain_cluster(s_, c);
    s
}

fn explain_cluster(s: &mut String, c: &Config) {
    // standalone: the summary stays exactly what it always was
    let Some(cl) = &c.cluster else {
        return;
    };
    let _ = writeln!(
        s,
        "cluster: host {:?}, VTEP {} (underlay mtu {})",
        cl.host, cl.vtep, cl.underlay_mtu
    );
    let tls = match &cl.tls {
        None => "plain http".to_string(),
        Some(t) => match &t.identity {
            None => format!("TLS, CA {}", t.ca_file.display()),
            Some((cert, _)) => format!(
                "TLS, CA {}, client certificate {}",
                t.ca_file.display(),
                cert.display()
            ),
        },
    };
    let _ = writeln!(s, "  etcd {} ({tls})", cl.endpoints.join(", "));
    let _ = writeln!(
        s,
        "  host lease TTL {}: a dead host's records vanish this long after its agent",
        secs(cl.lease_ttl)
    );
    for m in &cl.vnis {
        let _ = writeln!(s, "  {} travels in VNI {}", vlan_text(m.vlan), m.vni.get());
    }
}

fn damping_text(max_moves: u32, window: Duration) -> String {
    if max_moves == 0 {
        "off (every claim moves the vip at once)".to_string()
    } else {
        format!(
            "{max_moves} moves per {}; further claims are held and applied when the window ends",
            secs(window)
        )
    }
}

fn explain_port(s: &mut String, c: &Config, p: &PortConfig) {
    let _ = writeln!(
        s,
        "  {}: {}, mac {}, {}, mtu {}, admin {}",
        p.name,
        p.binding,
        p.mac,
        vlan_text(p.vlan),
        p.mtu,
        if p.admin_up { "up" } else { "down" }
    );
    let _ = writeln!(s, "    fixed ips: {}", join(&p.ips));
    if p.port_security {
        let _ = writeln!(
            s,
            "    port_security on; dest_check {}{}; dhcp_server {}",
            on_off(p.dest_check),
            if p.dest_check {
                ""
            } else {
                " (receives traffic for any destination IP)"
            },
            on_off(p.dhcp_server)
        );
    } else {
        let _ = writeln!(
            s,
            "    port_security off: no source checks and no dest check (sends and receives anything); dhcp_server {}",
            on_off(p.dhcp_server)
        );
    }
    if !p.allowed_address_pairs.is_empty() {
        let pairs = p.allowed_address_pairs.iter().map(|a| {
            let mac = if a.mac == p.mac {
                "port mac".to_string()
            } else {
                format!("mac {}", a.mac)
            };
            let open = if is_everything(&a.ip) {
                ", any source IP; MAC and ARP sha still checked"
            } else {
                ""
            };
            format!("{} ({mac}{open})", a.ip)
        });
        let _ = writeln!(s, "    allowed_address_pairs: {}", join(pairs));
    }
    let vips: Vec<&str> = c
        .vips
        .iter()
        .filter(|v| v.is_candidate(&p.name))
        .map(|v| v.name.as_str())
        .collect();
    if !vips.is_empty() {
        let _ = writeln!(s, "    vip candidate of: {}", vips.join(", "));
    }
}

fn explain_vip(s: &mut String, c: &Config, v: &VipConfig) {
    let _ = writeln!(
        s,
        "  {}: {}, {}, addresses {}",
        v.name,
        v.mode,
        vlan_text(v.vlan),
        join(&v.addresses)
    );
    let _ = writeln!(s, "    candidates: {}", join(&v.candidates));
    match v.mode {
        VipMode::ActivePassive => {
            let owner = v
                .initial_owners
                .first()
                .map_or("none (the first claim decides)".to_string(), |o| {
                    o.to_string()
                });
            let _ = writeln!(s, "    initial owner: {owner}");
            let _ = writeln!(
                s,
                "    ARP/NS from non-candidates answered with the current owner's MAC; \
                 on owner port loss: {}",
                if v.release_on_port_loss {
                    "release the vip"
                } else {
                    "keep the owner until a standby claims"
                }
            );
            let _ = writeln!(
                s,
                "    owner's device vanishes: {}",
                if v.step_down_on_crash {
                    "resign for it (priority-0 copy of its last VRRP advert to the other \
                     candidates)"
                } else {
                    "nothing sent (the standby waits for its master-down timer)"
                }
            );
        }
        VipMode::ActiveActive => {
            let owners = if v.initial_owners.is_empty() {
                "none (candidates join by claiming)".to_string()
            } else {
                v.initial_owners.join(", ")
            };
            let _ = writeln!(s, "    initial owners: {owners}");
            let how = if v.virtual_mac.is_some() {
                "configured"
            } else {
                "derived from the name"
            };
            let _ = writeln!(
                s,
                "    ARP/NS from non-candidates answered with virtual mac {} ({how}); \
                 new flows hashed over live owners",
                v.answer_mac()
            );
            match v.owner_liveness {
                Some(d) => {
                    let _ = writeln!(
                        s,
                        "    an owner that has not re-claimed within {} is dropped",
                        secs(d)
                    );
                }
                None => {
                    let _ = writeln!(s, "    owners stay until their port goes down");
                }
            }
        }
    }
    if v.mode == VipMode::ActivePassive {
        // Damping holds back active-passive moves only; active-active joins are immediate.
        let _ = writeln!(
            s,
            "    flap damping: {}",
            damping_text(v.damping.max_moves, v.damping.window)
        );
    }
    if let Some(vrid) = v.vrrp_vrid {
        let _ = writeln!(
            s,
            "    vrrp_vrid {vrid}: candidates may also send from {}",
            join(v.vmacs())
        );
    }
    let missing: Vec<&str> = v
        .candidates
        .iter()
        .filter(|n| c.port(n).is_none())
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        // Unreachable for a validated Config; kept so explain never lies about a
        // hand-built one.
        let _ = writeln!(s, "    unknown candidates: {}", missing.join(", "));
    }
}
