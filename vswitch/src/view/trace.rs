//! `trace`: what the switch would do with one frame, and why ([`TraceView`]). Built by
//! [`crate::trace::trace_frame`] from the pipeline's stage records and the control plane's
//! claim decision; times are relative to the trace ("in seconds"), never clock values.

use serde::{Deserialize, Serialize};

/// The whole trace of one frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceView {
    /// The ingress port.
    pub port: String,
    /// The frame, one line (tcpdump-like).
    pub frame: String,
    /// The stages, in the order the pipeline decided them.
    pub stages: Vec<StageView>,
    /// The VIP group the frame concerns, as the trace found it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vip: Option<TraceVipView>,
    /// What the control plane would do with the frame's VIP claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<ClaimView>,
    /// The forwarding verdict.
    pub verdict: VerdictView,
    /// Frames the switch would send because of this one (ARP/NA replies, announcements).
    pub generated: Vec<GeneratedView>,
    /// The answer in one line: the verdict and the rule that decided it.
    pub summary: String,
}

/// How a stage ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageOutcome {
    /// The frame passed this stage.
    Pass,
    /// This stage decided the frame's fate (a drop, an answer, a refusal).
    Fail,
    /// Informational (a lookup, a state).
    Info,
}

/// One stage of the decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageView {
    /// `ingress`, `parse`, `mtu`, `vlan`, `vip`, `port_security`, `learning`, `to_switch`,
    /// `vrrp`, `responder`, `flood`, `steer`, `fdb`, `dest_check`, `egress`, `overlay`.
    pub stage: String,
    /// How it ended.
    pub outcome: StageOutcome,
    /// The rule that decided, with the values it looked at.
    pub rule: String,
}

/// A VIP group as the trace found it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceVipView {
    /// Group name.
    pub name: String,
    /// `active-passive` or `active-active`.
    pub mode: String,
    /// Candidate ports.
    pub candidates: Vec<String>,
    /// Owners (port names).
    pub owners: Vec<String>,
    /// Ownership epoch.
    pub epoch: u64,
    /// A claim held back by damping: its port.
    pub pending: Option<String>,
    /// Claim-driven moves in the damping window.
    pub moves_in_window: usize,
    /// Damping limit: moves per window (0: off).
    pub max_moves: u32,
    /// Damping window.
    pub window_secs: f64,
    /// A claim from a non-owner would be held this long.
    pub damped_for_secs: Option<f64>,
}

/// What the control plane would do with the frame's VIP claim.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClaimView {
    /// `applied`, `mac-change`, `refreshed`, `pending`, `refused` (not a candidate),
    /// `not-announced` (an answer to one asker, which never claims), `probe-answer`.
    pub outcome: String,
    /// Group.
    pub vip: String,
    /// The claimant.
    pub port: String,
    /// The MAC it claims with.
    pub mac: String,
    /// The owner before.
    pub from: Option<String>,
    /// The epoch after (applied) or now.
    pub epoch: u64,
    /// Pending: applied in this many seconds.
    pub due_in_secs: Option<f64>,
    /// The rule, in words.
    pub why: String,
}

/// The forwarding verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerdictView {
    /// `forward`, `flood`, `answered`, `to_switch`, `to_remote`, `drop`.
    pub action: String,
    /// The drop reason (counter name), for `drop`.
    pub reason: Option<String>,
    /// Egress ports (forward, flood).
    pub ports: Vec<String>,
    /// Hosts through the overlay (to_remote, a flood's replication).
    pub hosts: Vec<String>,
    /// The destination MAC is rewritten to this (VIP steering).
    pub rewrite_dst: Option<String>,
}

/// A frame the switch would send.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeneratedView {
    /// Out of which port.
    pub port: String,
    /// The frame, one line.
    pub frame: String,
    /// Why: `reply` (the VIP responder) or `announcement` (after a move).
    pub why: String,
}
