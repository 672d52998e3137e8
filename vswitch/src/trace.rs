//! `vswitch trace`: what the switch would do with one frame arriving on one port, and why.
//!
//! Contract:
//! - [`trace_frame`] runs the real decision: [`crate::pipeline::process_traced`] on the
//!   switch's current snapshot (the one the workers use), with a [`StageLog`] as tracer;
//!   the verdict and the effects are the pipeline's own. A VIP claim is judged by
//!   [`Switch::preview_claim`] (the group's own `claim_for` on a copy), so damping, the
//!   owner-down rule and the epoch are the ones the control thread would apply;
//! - nothing is applied: no learning, no claim, no counter, no event, nothing sent. The
//!   snapshot, the FDB, the VIP table and the counters are the same after a trace (the
//!   daemon test `trace_changes_nothing` checks it);
//! - the answer is a typed [`TraceView`]: the stages with the rule that decided each, the
//!   VIP group's state, the claim decision, the verdict, the frames the switch would send,
//!   and a one-line summary. Names replace ids; times are relative to `now`;
//! - [`flow`] builds a frame from a flow-like text (`arp op=request tpa=10.0.0.100`) with
//!   defaults from the ingress port; [`decode_hex`] reads a whole frame given in hex.
//!
//! The same function answers the control socket's `trace` command (the control thread, on
//! its live `Switch`) and `vswitch trace --config FILE` (a `Switch` built from the file).

use std::fmt::Write;
use std::net::IpAddr;

use vip_table::{ClaimOutcome, MacAddr, MoveReason, PortId, Timestamp, VipId};

use crate::control::Switch;
use crate::describe::describe;
use crate::pipeline::trace::{
    Admission, Allowance, LearnStage, Responder, SourceCheck, SourceRule, Stage, Steer,
};
use crate::pipeline::{
    process_traced, Effects, PortMask, RxMeta, Snapshot, StageLog, Verdict, VipSignal,
};
use crate::view::{
    ClaimView, CtlError, GeneratedView, StageOutcome, StageView, TraceView, TraceVipView,
    VerdictView,
};
use crate::wire::{self, FrameFacts, Malformed, L3};

pub mod flow;

/// Longest frame a trace accepts (a GSO super-frame is at most this).
pub const MAX_FRAME_LEN: usize = 65_535;

/// A frame written in hex (`52540000...`; spaces, colons and a `0x` prefix are ignored).
pub fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    let t = text.trim();
    let t = t.strip_prefix("0x").unwrap_or(t);
    let digits: Vec<u8> = t
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b':' && *b != b'-')
        .collect();
    if digits.len() % 2 != 0 {
        return Err(format!(
            "hex frame: odd number of hex digits ({})",
            digits.len()
        ));
    }
    let nib = |c: u8, at: usize| -> Result<u8, String> {
        (c as char).to_digit(16).map(|d| d as u8).ok_or_else(|| {
            format!(
                "hex frame: {:?} at digit {at} is not a hex digit",
                c as char
            )
        })
    };
    let bytes = digits
        .chunks(2)
        .enumerate()
        .map(|(i, p)| Ok((nib(p[0], 2 * i)? << 4) | nib(p[1], 2 * i + 1)?))
        .collect::<Result<Vec<u8>, String>>()?;
    if bytes.len() > MAX_FRAME_LEN {
        return Err(format!(
            "hex frame: {} bytes, at most {MAX_FRAME_LEN}",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// A frame in hex (the control socket's `trace` command carries frames this way).
pub fn encode_hex(frame: &[u8]) -> String {
    frame.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Trace `frame` arriving on port `port` of `sw` at `now`. Read only (see the module doc).
pub fn trace_frame(
    sw: &Switch,
    port: &str,
    frame: &[u8],
    now: Timestamp,
) -> Result<TraceView, CtlError> {
    let pid = sw.port_id(port).ok_or_else(|| CtlError::UnknownPort {
        name: port.to_string(),
    })?;
    if frame.len() > MAX_FRAME_LEN {
        return Err(CtlError::BadRequest {
            message: format!("frame of {} bytes, at most {MAX_FRAME_LEN}", frame.len()),
        });
    }
    let snap = sw.snapshot();
    let mut fx = Effects::default();
    let mut log = StageLog::default();
    let verdict = process_traced(&snap, pid, frame, RxMeta::default(), now, &mut fx, &mut log);
    let cx = Cx {
        sw,
        snap: &snap,
        ingress: pid,
        facts: wire::parse(frame).ok(),
        now,
    };
    let mut stages: Vec<StageView> = log.0.iter().filter_map(|s| cx.stage(s)).collect();
    let vip_id = relevant_vip(&log.0, &fx);
    let vip = vip_id.and_then(|id| cx.vip_view(id));
    let mut generated = Vec::new();
    let claim = cx.claim(&fx, &log.0, &mut generated);
    if let Some(c) = &claim {
        stages.push(StageView {
            stage: "claim".into(),
            outcome: match c.outcome.as_str() {
                "refused" => StageOutcome::Fail,
                "applied" | "mac-change" | "pending" => StageOutcome::Pass,
                _ => StageOutcome::Info,
            },
            rule: c.why.clone(),
        });
    }
    if let (Verdict::Answered, Some(r)) = (verdict, fx.reply) {
        generated.insert(
            0,
            GeneratedView {
                port: port.to_string(),
                frame: describe(r.as_bytes()),
                why: "reply".into(),
            },
        );
    }
    let verdict_view = cx.verdict(&verdict, &fx);
    let summary = cx.summary(
        &verdict,
        &verdict_view,
        &stages,
        claim.as_ref(),
        vip.as_ref(),
        &generated,
    );
    Ok(TraceView {
        port: port.to_string(),
        frame: describe(frame),
        stages,
        vip,
        claim,
        verdict: verdict_view,
        generated,
        summary,
    })
}

/// The group the frame is about: the one it claims, asks about or is sent to.
fn relevant_vip(stages: &[Stage], fx: &Effects) -> Option<VipId> {
    let from_signal = fx.vip.map(|s| match s {
        VipSignal::Claim { vip, .. }
        | VipSignal::ProbeAnswer { vip, .. }
        | VipSignal::Hijack { vip, .. } => vip,
    });
    from_signal.or_else(|| {
        stages.iter().find_map(|s| match s {
            Stage::Announcement { vip, .. }
            | Stage::Responder { vip, .. }
            | Stage::Steer { vip, .. } => Some(*vip),
            _ => None,
        })
    })
}

fn secs(d: std::time::Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn malformed_text(m: Malformed) -> &'static str {
    match m {
        Malformed::ShortEthernet => "shorter than an Ethernet header",
        Malformed::TruncatedVlan => "a VLAN tag cut short",
        Malformed::BadArp => "ARP cut short, or not Ethernet/IPv4 ARP",
        Malformed::BadIpv4 => "an invalid IPv4 header",
        Malformed::BadIpv6 => "an invalid IPv6 header or extension header",
        Malformed::BadL4 => "a TCP/UDP/ICMPv6 header cut short or invalid",
        Malformed::MulticastSource => "a group address as source MAC",
    }
}

/// What the stages are rendered against.
struct Cx<'a> {
    sw: &'a Switch,
    snap: &'a Snapshot,
    ingress: PortId,
    facts: Option<FrameFacts>,
    now: Timestamp,
}

fn sv(stage: &str, outcome: StageOutcome, rule: String) -> Option<StageView> {
    Some(StageView {
        stage: stage.into(),
        outcome,
        rule,
    })
}

impl Cx<'_> {
    fn name(&self, p: PortId) -> String {
        self.sw.port_name(p).to_string()
    }

    fn names(&self, set: &PortMask) -> Vec<String> {
        set.iter().map(|p| self.name(p)).collect()
    }

    fn vip_name(&self, id: VipId) -> String {
        self.snap
            .vips
            .group(id)
            .map_or_else(|| format!("#{}", id.0), |g| g.name().to_string())
    }

    fn src(&self) -> MacAddr {
        self.facts.map_or(MacAddr::ZERO, |f| f.src)
    }

    fn in_name(&self) -> String {
        self.name(self.ingress)
    }

    /// The owners of a group, for a sentence: `owner web1` / `owners a, b` / `no owner`.
    fn owner_text(&self, id: VipId) -> String {
        let Some(g) = self.snap.vips.group(id) else {
            return "no owner".into();
        };
        let mut names: Vec<String> = g.owners().iter().map(|o| self.name(o.port)).collect();
        for o in g.remote_owners() {
            names.push(format!(
                "{}@{}",
                self.sw.remote_port_name(o.at.port),
                self.sw.host_name(o.at.host)
            ));
        }
        match names.len() {
            0 => "no owner".into(),
            1 => format!("owner {}", names[0]),
            _ => format!("owners {}", names.join(", ")),
        }
    }

    fn policy(&self, p: PortId) -> Option<&vip_table::PortPolicy> {
        self.snap.ports.get(p.index()).map(|e| &e.policy)
    }

    fn stage(&self, s: &Stage) -> Option<StageView> {
        use StageOutcome::{Fail, Info, Pass};
        let port = self.in_name();
        match *s {
            Stage::Ingress { known: false, .. } => sv(
                "ingress",
                Fail,
                format!("port {port} is not in the snapshot"),
            ),
            Stage::Ingress {
                admin_up, oper_up, ..
            } => {
                let e = self.snap.ports.get(self.ingress.index())?;
                if admin_up && oper_up {
                    sv(
                        "ingress",
                        Pass,
                        format!("port {port} is up (vlan {}, mtu {})", e.vlan, e.mtu),
                    )
                } else {
                    let why = match (admin_up, oper_up) {
                        (false, false) => "administratively down and its device is gone",
                        (false, true) => "administratively down",
                        _ => "down: its device is gone",
                    };
                    sv("ingress", Fail, format!("port {port} is {why}"))
                }
            }
            Stage::Malformed(m) => sv(
                "parse",
                Fail,
                format!("the frame is malformed: {}", malformed_text(m)),
            ),
            Stage::Parsed(f) => {
                let what = match f.l3 {
                    L3::Arp(_) => "ARP",
                    L3::Ipv4(_) => "IPv4",
                    L3::Ipv6(_) => "IPv6",
                    L3::Other(_) => "a frame switched at L2",
                };
                sv("parse", Pass, format!("{what} from {} to {}", f.src, f.dst))
            }
            Stage::Mtu {
                port: p,
                l3_len,
                mtu,
                gso,
                ok,
            } => {
                let stage = if p == self.ingress { "mtu" } else { "egress" };
                let who = self.name(p);
                let rule = if gso {
                    format!("a GSO super-frame: exempt from the mtu of port {who}")
                } else if ok {
                    format!("{l3_len} bytes of L3 fit the mtu {mtu} of port {who}")
                } else {
                    format!("{l3_len} bytes of L3 exceed the mtu {mtu} of port {who}")
                };
                sv(stage, if ok { Pass } else { Fail }, rule)
            }
            Stage::Tagged { vid } => sv(
                "vlan",
                Fail,
                format!("tagged with VLAN {vid}, but port {port} is an access port"),
            ),
            Stage::Announcement {
                vip,
                addr,
                mac,
                announced,
                candidate,
            } => {
                let name = self.vip_name(vip);
                let kind = if announced {
                    "announces"
                } else {
                    "answers for"
                };
                if candidate {
                    let mut r =
                        format!("port {port} {kind} {addr} of vip {name} at {mac}: a candidate");
                    if !announced {
                        r.push_str(" (an answer to one asker, not a claim)");
                    }
                    sv("vip", Pass, r)
                } else {
                    let cands: Vec<String> = self
                        .snap
                        .vips
                        .group(vip)
                        .map(|g| g.candidates().iter().map(|c| self.name(*c)).collect())
                        .unwrap_or_default();
                    sv(
                        "vip",
                        Fail,
                        format!(
                            "port {port} is not a candidate of vip {name} ({}, epoch {}; \
                             candidates {}): a hijack attempt on {addr}",
                            self.owner_text(vip),
                            self.snap.vips.group(vip).map_or(0, |g| g.epoch()),
                            list(&cands)
                        ),
                    )
                }
            }
            Stage::PortSecurityOff => sv(
                "port_security",
                Info,
                format!("port security is off on port {port}: no source check"),
            ),
            Stage::Check(c) => self.check(c),
            Stage::Learn(l) => {
                let src = self.src();
                let (o, r) = match l {
                    LearnStage::Insert => (Info, format!("would learn {src} on port {port}")),
                    LearnStage::Move { from } => (
                        Info,
                        format!(
                            "would move {src} from port {} to port {port}",
                            self.name(from)
                        ),
                    ),
                    LearnStage::Refresh => (
                        Info,
                        format!("{src} is known on port {port}: would refresh its age"),
                    ),
                    LearnStage::Known => (
                        Info,
                        format!("{src} is known (static, or learned on port {port} recently)"),
                    ),
                    LearnStage::Full => (
                        Fail,
                        format!("the MAC table (or port {port}'s share of it) is full: {src} is not admitted"),
                    ),
                };
                sv("learning", o, r)
            }
            Stage::ToSwitch { probe_answer } => {
                if probe_answer {
                    sv(
                        "to_switch",
                        Info,
                        "addressed to the switch: an answer to its owner-discovery probe".into(),
                    )
                } else {
                    sv(
                        "to_switch",
                        Fail,
                        "addressed to the switch's own MAC and not an answer to a probe: \
                         nowhere to send it"
                            .into(),
                    )
                }
            }
            Stage::Vrrp { candidate, set } => {
                let who = if candidate {
                    "a VIP candidate: to the candidates of its groups"
                } else {
                    "a non-candidate: to the ports that are no VIP candidate"
                };
                sv(
                    "vrrp",
                    if set.is_empty() { Fail } else { Info },
                    format!(
                        "VRRP advert to the VRRP group from {who} ({})",
                        list(&self.names(&set))
                    ),
                )
            }
            Stage::Responder { vip, addr, outcome } => {
                let name = self.vip_name(vip);
                let (o, r) = match outcome {
                    Responder::Answered { mac } => (
                        Pass,
                        format!(
                            "{addr} is an address of vip {name} ({}); port {port} is no \
                             candidate: the switch answers with {mac}",
                            self.owner_text(vip)
                        ),
                    ),
                    Responder::AskerIsCandidate => (
                        Info,
                        format!(
                            "{addr} is an address of vip {name}; the asker {port} is a \
                             candidate: not answered by the switch, switched on"
                        ),
                    ),
                    Responder::NoOwner => (
                        Info,
                        format!("{addr} is an address of vip {name}, which has no owner: not answered, switched on"),
                    ),
                };
                sv("responder", o, r)
            }
            Stage::RemoteNeighbour => sv(
                "responder",
                Pass,
                "the address is a port's of another host: answered from the cluster topology"
                    .into(),
            ),
            Stage::Multicast { set } => sv(
                "flood",
                if set.is_empty() { Fail } else { Info },
                format!(
                    "broadcast/multicast destination: flood in the VLAN ({})",
                    list(&self.names(&set))
                ),
            ),
            Stage::Steer { vip, steer } => self.steer(vip, steer),
            Stage::FdbLookup { mac, port: p } => {
                let vlan = self
                    .snap
                    .ports
                    .get(self.ingress.index())
                    .map_or(0, |e| e.vlan);
                let r = match p {
                    Some(p) => format!("{mac} is on port {} (vlan {vlan})", self.name(p)),
                    None => format!("{mac} is unknown in vlan {vlan}"),
                };
                sv("fdb", Info, r)
            }
            Stage::Hairpin => sv(
                "egress",
                Fail,
                format!("the destination is behind the ingress port {port} itself (hairpin)"),
            ),
            Stage::EgressDown { port: p } => sv(
                "egress",
                Fail,
                format!("the egress port {} is down", self.name(p)),
            ),
            Stage::DestCheck {
                port: p,
                dst,
                admitted,
            } => self.dest_check(p, dst, admitted),
            Stage::UnknownUnicast { set, refused } => {
                let mut r = format!(
                    "unknown unicast: flood in the VLAN ({})",
                    list(&self.names(&set))
                );
                if !refused.is_empty() {
                    let _ = write!(
                        r,
                        "; refused by their destination check: {}",
                        list(&self.names(&refused))
                    );
                }
                let all = !set.is_empty() && refused.len() == set.len();
                sv("flood", if all { Fail } else { Info }, r)
            }
            Stage::FloodMtu { removed } => (!removed.is_empty()).then(|| StageView {
                stage: "mtu".into(),
                outcome: Info,
                rule: format!(
                    "left out of the flood for their mtu: {}",
                    list(&self.names(&removed))
                ),
            }),
            Stage::RemotePort { host } => sv(
                "overlay",
                Pass,
                format!(
                    "the destination MAC is a port's of host {}: through the overlay",
                    self.sw.host_name(host)
                ),
            ),
        }
    }

    fn allowed_ips(&self, mac: MacAddr) -> String {
        let v: Vec<String> = self
            .policy(self.ingress)
            .map(|p| p.prefixes_for(mac).map(|n| n.to_string()).collect())
            .unwrap_or_default();
        list(&v)
    }

    fn allowance(&self, what: &str, ip: IpAddr, a: Option<Allowance>) -> String {
        let src = self.src();
        let port = self.in_name();
        match a {
            Some(Allowance::Prefix) => {
                let net = self
                    .policy(self.ingress)
                    .and_then(|p| p.source_prefix(src, ip))
                    .map_or_else(|| "?".to_string(), |n| n.to_string());
                format!("{what} {ip} is allowed for {src} by {net}")
            }
            Some(Allowance::VipCandidate) => {
                let g = self
                    .snap
                    .vips
                    .lookup(ip)
                    .map_or_else(|| "?".to_string(), |id| self.vip_name(id));
                format!("{what} {ip} is an address of vip {g}, and port {port} is a candidate")
            }
            Some(Allowance::LinkLocal) => {
                format!("{what} {ip} is IPv6 link-local on a port with IPv6")
            }
            Some(Allowance::Unspecified) => {
                format!("{what} {ip} is unspecified, which this kind of frame may use")
            }
            Some(Allowance::PortMac | Allowance::OtherMac) | None => format!(
                "{what} {ip} is not allowed for {src} on port {port} (allowed: {})",
                self.allowed_ips(src)
            ),
        }
    }

    fn check(&self, c: SourceCheck) -> Option<StageView> {
        let outcome = if c.passed {
            StageOutcome::Pass
        } else {
            StageOutcome::Fail
        };
        let src = self.src();
        let port = self.in_name();
        let rule = match c.rule {
            SourceRule::SrcMac(m) => {
                let pol = self.policy(self.ingress)?;
                if !c.passed {
                    let macs: Vec<String> = pol.allowed_macs().map(|m| m.to_string()).collect();
                    format!(
                        "source MAC {m} is not allowed on port {port} (allowed: {})",
                        list(&macs)
                    )
                } else if m == pol.mac {
                    format!("source MAC {m} is the port's MAC")
                } else {
                    format!("source MAC {m} is an allowed MAC of port {port} (an address pair's or a VRRP virtual MAC)")
                }
            }
            SourceRule::ArpSha(sha) => {
                if c.passed {
                    format!("ARP sender MAC {sha} is the Ethernet source")
                } else {
                    format!("ARP sender MAC {sha} is not the Ethernet source {src}")
                }
            }
            SourceRule::ArpSpa(ip) => self.allowance("ARP sender IP", ip, c.allowed_by),
            SourceRule::SrcIp(ip) => self.allowance("source IP", ip, c.allowed_by),
            SourceRule::NaTarget(ip) => self.allowance("NA target", ip, c.allowed_by),
            SourceRule::DhcpServer => {
                if c.passed {
                    format!("DHCP server reply from port {port}, which has dhcp_server = true")
                } else {
                    format!("DHCP server reply from port {port}, which has no dhcp_server = true (DHCP guard)")
                }
            }
            SourceRule::RaGuard => {
                format!("router advertisement from the VM port {port} (RA guard)")
            }
            SourceRule::NdLladdr(m) => {
                if c.passed {
                    format!("ND link-layer address option {m} is the Ethernet source")
                } else {
                    format!("ND link-layer address option {m} is not the Ethernet source {src}")
                }
            }
        };
        sv("port_security", outcome, rule)
    }

    fn steer(&self, vip: VipId, steer: Steer) -> Option<StageView> {
        let name = self.vip_name(vip);
        let dst = self.facts.map_or(MacAddr::ZERO, |f| f.dst);
        let (o, r) = match steer {
            Steer::NotForVip { port } => (
                StageOutcome::Info,
                format!(
                    "unicast to vip {name}, but {dst} is the MAC of port {}, no candidate \
                     (a router in front of the VIP): not steered",
                    self.name(port)
                ),
            ),
            Steer::NoOwner => (
                StageOutcome::Info,
                format!("unicast to vip {name}, which has no owner: not steered"),
            ),
            Steer::OtherVlan => (
                StageOutcome::Info,
                format!("unicast to vip {name}, whose owner is in another VLAN: not steered"),
            ),
            Steer::Owner {
                port,
                mac,
                by_dst_mac,
            } => {
                let owner = self.name(port);
                let n = self.snap.vips.group(vip).map_or(0, |g| g.owners().len());
                let how = if by_dst_mac {
                    "the frame is addressed to it".to_string()
                } else if n > 1 {
                    format!("chosen by flow hash among {n} owners")
                } else {
                    "the owner".to_string()
                };
                let mut r = format!("unicast to vip {name}: to {owner} ({how})");
                if dst != mac {
                    let _ = write!(
                        r,
                        "; destination MAC {dst} is not the owner's: rewritten to {mac} \
                         (a stale or static neighbour cache)"
                    );
                } else {
                    let _ = write!(r, "; destination MAC {mac} is the owner's");
                }
                (StageOutcome::Pass, r)
            }
            Steer::Remote { host, mac } => (
                StageOutcome::Pass,
                format!(
                    "unicast to vip {name}, owned on host {}: through the overlay, \
                     destination MAC rewritten to {mac}",
                    self.sw.host_name(host)
                ),
            ),
        };
        sv("steer", o, r)
    }

    fn dest_check(&self, p: PortId, dst: IpAddr, a: Option<Admission>) -> Option<StageView> {
        let port = self.name(p);
        let (o, r) = match a {
            Some(Admission::Off) => (
                StageOutcome::Pass,
                format!("port {port} has no destination check (port security or dest_check off)"),
            ),
            Some(Admission::Group) => (
                StageOutcome::Pass,
                format!("{dst} is a broadcast/multicast address"),
            ),
            Some(Admission::Prefix) => {
                let net = self
                    .policy(p)
                    .and_then(|pol| pol.receive_prefix(dst))
                    .map_or_else(|| "?".to_string(), |n| n.to_string());
                (
                    StageOutcome::Pass,
                    format!("port {port} receives {dst} ({net})"),
                )
            }
            Some(Admission::OwnedVip) => {
                let g = self
                    .snap
                    .vips
                    .lookup(dst)
                    .map_or_else(|| "?".to_string(), |id| self.vip_name(id));
                (
                    StageOutcome::Pass,
                    format!("port {port} owns vip {g}, of which {dst} is an address"),
                )
            }
            Some(Admission::LinkLocal) => (
                StageOutcome::Pass,
                format!("{dst} is IPv6 link-local and port {port} has IPv6"),
            ),
            Some(Admission::UnownedVip) => (
                StageOutcome::Pass,
                format!(
                    "{dst} is an address of a vip without owner, of which port {port} is a \
                     candidate: delivered to the MAC it is addressed to (counted vip_no_owner)"
                ),
            ),
            None => {
                let v: Vec<String> = self
                    .policy(p)
                    .map(|pol| {
                        let mut seen: Vec<String> = Vec::new();
                        for m in pol.allowed_macs() {
                            for n in pol.prefixes_for(m) {
                                let s = n.to_string();
                                if !seen.contains(&s) {
                                    seen.push(s);
                                }
                            }
                        }
                        seen
                    })
                    .unwrap_or_default();
                (
                    StageOutcome::Fail,
                    format!(
                        "port {port} may not receive {dst} (receives: {}; owns no vip with it)",
                        list(&v)
                    ),
                )
            }
        };
        sv("dest_check", o, r)
    }

    fn vip_view(&self, id: VipId) -> Option<TraceVipView> {
        let g = self.snap.vips.group(id)?;
        let d = g.damping_at(self.now);
        let mut owners: Vec<String> = g.owners().iter().map(|o| self.name(o.port)).collect();
        for o in g.remote_owners() {
            owners.push(format!(
                "{}@{}",
                self.sw.remote_port_name(o.at.port),
                self.sw.host_name(o.at.host)
            ));
        }
        Some(TraceVipView {
            name: g.name().to_string(),
            mode: g.mode().to_string(),
            candidates: g.candidates().iter().map(|c| self.name(*c)).collect(),
            owners,
            epoch: g.epoch(),
            pending: g.pending().map(|p| self.name(p.port)),
            moves_in_window: d.moves_in_window,
            max_moves: d.damping.max_moves,
            window_secs: d.damping.window.as_secs_f64(),
            damped_for_secs: d
                .held_until
                .map(|t| t.saturating_since(self.now).as_secs_f64()),
        })
    }

    /// The control plane's decision on the frame's VIP signal (read only), and the
    /// announcements a move would send (into `generated`).
    fn claim(
        &self,
        fx: &Effects,
        stages: &[Stage],
        generated: &mut Vec<GeneratedView>,
    ) -> Option<ClaimView> {
        let epoch = |id: VipId| self.snap.vips.group(id).map_or(0, |g| g.epoch());
        let first_owner = |id: VipId| {
            self.snap
                .vips
                .group(id)
                .and_then(|g| g.owners().first().map(|o| self.name(o.port)))
        };
        match fx.vip {
            Some(VipSignal::Claim {
                vip,
                addr,
                port,
                mac,
            }) => {
                let (outcome, ob) = self.sw.preview_claim(vip, addr, port, mac, self.now)?;
                let name = self.vip_name(vip);
                let who = self.name(port);
                let g = self.snap.vips.group(vip)?;
                let d = g.damping_at(self.now);
                let window = format!(
                    "{} of {} claim moves in the last {}",
                    d.moves_in_window,
                    d.damping.max_moves,
                    secs(d.damping.window)
                );
                let damping = if d.damping.max_moves == 0 {
                    "damping off".to_string()
                } else if d.owner_down {
                    format!("{window}; the owner's port is down, so the claim is not held")
                } else {
                    window
                };
                for o in ob {
                    generated.push(GeneratedView {
                        port: self.name(o.port),
                        frame: describe(o.frame.as_bytes()),
                        why: "announcement".into(),
                    });
                }
                let from = first_owner(vip);
                let (kind, e, due, why) = match outcome {
                    ClaimOutcome::Moved(m) if m.reason == MoveReason::MacChange => (
                        "mac-change",
                        m.epoch,
                        None,
                        format!(
                            "owner {who} of vip {name} now announces {addr} from {mac}: \
                             epoch {} → {}",
                            epoch(vip),
                            m.epoch
                        ),
                    ),
                    ClaimOutcome::Moved(m) => (
                        "applied",
                        m.epoch,
                        None,
                        match &from {
                            Some(f) => format!(
                                "candidate {who} claims vip {name}: owner {f} → {who}, epoch {} → {} ({damping})",
                                epoch(vip),
                                m.epoch
                            ),
                            None if g.mode() == vip_table::VipMode::ActiveActive => format!(
                                "candidate {who} joins the owners of vip {name}: epoch {} → {}",
                                epoch(vip),
                                m.epoch
                            ),
                            None => format!(
                                "candidate {who} claims vip {name}, which had no owner: epoch {} → {} ({damping})",
                                epoch(vip),
                                m.epoch
                            ),
                        },
                    ),
                    ClaimOutcome::Refreshed => (
                        "refreshed",
                        epoch(vip),
                        None,
                        format!(
                            "{who} already owns vip {name} (epoch {}): its claim time is refreshed",
                            epoch(vip)
                        ),
                    ),
                    ClaimOutcome::Pending { due } => {
                        let due_in = due.saturating_since(self.now);
                        (
                            "pending",
                            epoch(vip),
                            Some(due_in.as_secs_f64()),
                            format!(
                                "damping holds the claim of {who} for vip {name} ({damping}): \
                                 applied in +{} unless the owner speaks again; {} stays owner \
                                 (epoch {})",
                                secs(due_in),
                                from.as_deref().unwrap_or("nobody"),
                                epoch(vip)
                            ),
                        )
                    }
                    ClaimOutcome::NotCandidate => (
                        "refused",
                        epoch(vip),
                        None,
                        format!("port {who} is not a candidate of vip {name}"),
                    ),
                };
                Some(ClaimView {
                    outcome: kind.into(),
                    vip: name,
                    port: who,
                    mac: mac.to_string(),
                    from,
                    epoch: e,
                    due_in_secs: due,
                    why,
                })
            }
            Some(VipSignal::Hijack { vip, port, mac, .. }) => {
                let name = self.vip_name(vip);
                Some(ClaimView {
                    outcome: "refused".into(),
                    vip: name.clone(),
                    port: self.name(port),
                    mac: mac.to_string(),
                    from: first_owner(vip),
                    epoch: epoch(vip),
                    due_in_secs: None,
                    why: format!(
                        "port {} is not a candidate of vip {name} ({}, epoch {}): refused, \
                         counted vip_hijack and logged (event vip_hijack); ownership unchanged",
                        self.name(port),
                        self.owner_text(vip),
                        epoch(vip)
                    ),
                })
            }
            Some(VipSignal::ProbeAnswer { vip, port, mac, .. }) => Some(ClaimView {
                outcome: "probe-answer".into(),
                vip: self.vip_name(vip),
                port: self.name(port),
                mac: mac.to_string(),
                from: first_owner(vip),
                epoch: epoch(vip),
                due_in_secs: None,
                why: "an answer to the switch's owner-discovery probe: the discovery round \
                      decides (see show vips)"
                    .into(),
            }),
            None => stages.iter().find_map(|s| match *s {
                Stage::Announcement {
                    vip,
                    addr,
                    mac,
                    announced: false,
                    candidate: true,
                } => Some(ClaimView {
                    outcome: "not-announced".into(),
                    vip: self.vip_name(vip),
                    port: self.in_name(),
                    mac: mac.to_string(),
                    from: first_owner(vip),
                    epoch: epoch(vip),
                    due_in_secs: None,
                    why: format!(
                        "a unicast ARP reply / solicited NA for {addr} answers one asker: it \
                         never moves the VIP"
                    ),
                }),
                _ => None,
            }),
        }
    }

    fn verdict(&self, v: &Verdict, fx: &Effects) -> VerdictView {
        let mut out = VerdictView {
            action: String::new(),
            reason: None,
            ports: Vec::new(),
            hosts: Vec::new(),
            rewrite_dst: None,
        };
        match *v {
            Verdict::Forward { port, rewrite_dst } => {
                out.action = "forward".into();
                out.ports.push(self.name(port));
                out.rewrite_dst = rewrite_dst.map(|m| m.to_string());
            }
            Verdict::Flood => {
                out.action = "flood".into();
                out.ports = self.names(&fx.flood);
                out.hosts = fx
                    .flood_remote
                    .iter()
                    .map(|h| self.sw.host_name(h).to_string())
                    .collect();
            }
            Verdict::Answered => out.action = "answered".into(),
            Verdict::ToSwitch => out.action = "to_switch".into(),
            Verdict::ToRemote { host, mac, .. } => {
                out.action = "to_remote".into();
                out.hosts.push(self.sw.host_name(host).to_string());
                out.rewrite_dst = Some(mac.to_string());
            }
            Verdict::Drop(r) => {
                out.action = "drop".into();
                out.reason = Some(r.as_str().to_string());
            }
        }
        out
    }

    fn summary(
        &self,
        v: &Verdict,
        vv: &VerdictView,
        stages: &[StageView],
        claim: Option<&ClaimView>,
        vip: Option<&TraceVipView>,
        generated: &[GeneratedView],
    ) -> String {
        let fwd = match *v {
            Verdict::Drop(r) => {
                let why = stages
                    .iter()
                    .rev()
                    .find(|s| s.outcome == StageOutcome::Fail && s.stage != "claim")
                    .map(|s| s.rule.clone());
                let why = match (r, claim) {
                    (crate::pipeline::DropReason::VipHijack, Some(c)) => format!(
                        "port {} is not a candidate of vip {} ({}, epoch {})",
                        c.port,
                        c.vip,
                        c.from
                            .as_ref()
                            .map_or_else(|| "no owner".to_string(), |f| format!("owner {f}")),
                        c.epoch
                    ),
                    _ => why.unwrap_or_else(|| "no rule recorded".into()),
                };
                return format!("drop {r}: {why}");
            }
            Verdict::Forward { .. } => {
                let mut s = format!("forward to {}", list(&vv.ports));
                if let (Some(m), Some(f)) = (&vv.rewrite_dst, self.facts) {
                    let _ = write!(s, ", destination MAC {} rewritten to {m}", f.dst);
                    if let Some(g) = vip {
                        let _ = write!(s, " (owner of vip {}, epoch {})", g.name, g.epoch);
                    }
                }
                s
            }
            Verdict::Flood => {
                let mut s = format!("flood to {}", list(&vv.ports));
                if !vv.hosts.is_empty() {
                    let _ = write!(s, " and hosts {}", vv.hosts.join(", "));
                }
                s
            }
            Verdict::Answered => {
                let r = generated
                    .iter()
                    .find(|g| g.why == "reply")
                    .map_or_else(String::new, |g| format!(": {}", g.frame));
                format!("answered by the switch{r}")
            }
            Verdict::ToSwitch => "to the switch: an answer to its owner-discovery probe".into(),
            Verdict::ToRemote { .. } => format!(
                "to host {} through the overlay, destination MAC rewritten to {}",
                list(&vv.hosts),
                vv.rewrite_dst.as_deref().unwrap_or("-")
            ),
        };
        match claim {
            Some(c) if c.outcome == "applied" || c.outcome == "mac-change" => {
                let moved = match &c.from {
                    Some(f) if *f != c.port => {
                        format!("moves vip {} from {f} to {}", c.vip, c.port)
                    }
                    Some(_) => format!("vip {} stays with {}, new MAC", c.vip, c.port),
                    None => format!("gives vip {} to {}", c.vip, c.port),
                };
                format!("claim applied: {moved} (epoch {}); {fwd}", c.epoch)
            }
            Some(c) if c.outcome == "pending" => format!(
                "claim pending: vip {} damped until +{:.1}s ({} stays owner); {fwd}",
                c.vip,
                c.due_in_secs.unwrap_or(0.0),
                c.from.as_deref().unwrap_or("nobody")
            ),
            Some(c) if c.outcome == "refreshed" => format!(
                "claim refreshed: {} already owns vip {} (epoch {}); {fwd}",
                c.port, c.vip, c.epoch
            ),
            _ => fwd,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_names_bad_digits() {
        let f = vec![0u8, 1, 0xab, 0xff];
        assert_eq!(decode_hex(&encode_hex(&f)), Ok(f.clone()));
        assert_eq!(decode_hex("0x00 01:ab-FF\n"), Ok(f));
        let e = decode_hex("00zz").unwrap_err();
        assert!(e.contains("'z' at digit 2"), "{e}");
        assert!(decode_hex("abc").unwrap_err().contains("odd number"));
    }
}
