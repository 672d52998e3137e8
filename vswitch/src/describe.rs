//! A one-line, tcpdump-like description of a frame: the golden transcripts and `vswitch
//! trace` write frames this way. Never panics (a frame that does not parse is described as
//! malformed).

use std::fmt::Write;
use std::net::IpAddr;

use crate::wire::{self, Icmpv6Info, L3, L4};

/// Describe a frame in one line.
pub fn describe(frame: &[u8]) -> String {
    let f = match wire::parse(frame) {
        Ok(f) => f,
        Err(m) => return format!("malformed ({m:?}), {} bytes", frame.len()),
    };
    let mut s = format!("{} > {}", f.src, f.dst);
    if let Some(v) = f.vlan {
        let _ = write!(s, " vlan {v}");
    }
    s.push_str(", ");
    match f.l3 {
        L3::Arp(a) => {
            if a.is_gratuitous_request() {
                let _ = write!(s, "ARP gratuitous {} is-at {}", a.spa, a.sha);
            } else if a.op == 1 {
                let _ = write!(s, "ARP who-has {} tell {} (sha {})", a.tpa, a.spa, a.sha);
            } else if a.op == 2 {
                let _ = write!(
                    s,
                    "ARP reply {} is-at {} (to {} {})",
                    a.spa, a.sha, a.tpa, a.tha
                );
            } else {
                let _ = write!(s, "ARP op {}", a.op);
            }
        }
        L3::Ipv4(ip) | L3::Ipv6(ip) => {
            let fam = if matches!(ip.src, IpAddr::V4(_)) {
                "IPv4"
            } else {
                "IPv6"
            };
            let _ = write!(s, "{fam} {} > {}", ip.src, ip.dst);
            match ip.l4 {
                L4::Tcp { sport, dport } => {
                    let _ = write!(s, " TCP {sport} > {dport}");
                }
                L4::Udp { sport, dport } => {
                    let _ = write!(s, " UDP {sport} > {dport}");
                }
                L4::Vrrp => {
                    s.push_str(" VRRP advert");
                    // A resignation (keepalived's own on a graceful stop, or the switch's for
                    // a crashed master) is what a reader of a transcript needs to see.
                    if crate::vrrp::parse(frame).is_some_and(|a| a.priority == 0) {
                        s.push_str(" priority 0");
                    }
                }
                L4::Icmpv6(i) => match i {
                    Icmpv6Info::NeighborSolicit { target, sll } => {
                        let _ = write!(s, " NS who-has {target}");
                        if let Some(m) = sll {
                            let _ = write!(s, " sll {m}");
                        }
                    }
                    Icmpv6Info::NeighborAdvert { target, tll, flags } => {
                        let _ = write!(s, " NA {target}");
                        if let Some(m) = tll {
                            let _ = write!(s, " tll {m}");
                        }
                        let mut fl = String::new();
                        for (bit, c) in [(0x80, 'R'), (0x40, 'S'), (0x20, 'O')] {
                            if flags & bit != 0 {
                                fl.push(c);
                            }
                        }
                        if !fl.is_empty() {
                            let _ = write!(s, " [{fl}]");
                        }
                    }
                    Icmpv6Info::RouterAdvert => s.push_str(" RA"),
                    Icmpv6Info::RouterSolicit => s.push_str(" RS"),
                    Icmpv6Info::Redirect => s.push_str(" redirect"),
                    Icmpv6Info::Other(t) => {
                        let _ = write!(s, " ICMPv6 type {t}");
                    }
                },
                L4::Other => {
                    let _ = write!(s, " proto {}", ip.proto);
                }
            }
        }
        L3::Other(t) => {
            let _ = write!(s, "ethertype {t:#06x}");
        }
    }
    let _ = write!(s, ", {} bytes", frame.len());
    s
}
