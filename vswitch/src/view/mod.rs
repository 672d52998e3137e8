//! The typed control surface: what the daemon answers ([`View`]), why it refuses
//! ([`CtlError`]) and what it announces ([`Event`]). Shared by the daemon, the CLI and the
//! tests; JSON is a rendering of these types, not the model.
//!
//! Contract:
//! - every [`Command`] has one answer type: `show ports` → [`PortView`]s, `show fdb` →
//!   [`FdbEntryView`]s, `show vips` → [`VipView`]s, `show stats` → [`PortStatsView`]s,
//!   `vip-move` → [`MoveResult`], `vip-release` → [`ReleaseResult`], `port-admin` →
//!   [`PortAdminResult`], `reload` → [`ReloadResult`], `metrics` → the Prometheus text,
//!   `show hosts` → [`HostView`]s (answered by the agent, see [`hosts`]), the cluster
//!   commands → the views of [`cluster`],
//!   `watch` → [`WatchStarted`] followed by a stream of [`Event`]s, `trace` → [`TraceView`],
//!   `capture` → [`capture::CaptureStarted`] followed by a stream of [`capture::CaptureLine`]s;
//! - on the control socket an answer is `{"ok": <view>}` and a refusal
//!   `{"error": "<CtlError's message>"}`, one line each. A view serializes to exactly the
//!   JSON the socket always carried (same field names and shapes; objects' keys are sorted,
//!   as `serde_json::Value` writes them): tests and scripts read it;
//! - the JSON of a view does not say which view it is (a list of ports and a list of FDB
//!   entries are both arrays): a client decodes it for the command it sent
//!   ([`View::decode`]).
//!
//! ## Files
//! - `ports`, `fdb`, `vips`, `stats`, `hosts`: the `show` views;
//! - `results`: the answers of the commands that change the switch, and `watch`'s first line;
//! - `error`: [`CtlError`];
//! - `event`: [`Event`], its delivery rule and its one-line rendering;
//! - [`capture`]: the records of a port capture (frames with the switch's decision).

use serde::Serialize;

use crate::datapath::Command;

pub mod capture;
pub mod cluster;
mod error;
mod event;
mod fdb;
pub mod hosts;
mod ports;
mod results;
mod stats;
mod trace;
mod vips;

pub use cluster::{
    ClusterApplyResult, ClusterResult, ClusterVipsResult, ClusterWriteView, SkippedVip,
    WriteOwnerView,
};
pub use error::CtlError;
pub use event::{Event, SUBSCRIBER_QUEUE};
pub use fdb::FdbEntryView;
pub use hosts::{HostView, PortClashView};
pub use ports::{AddressPairView, PortView};
pub use results::{
    MoveResult, PortAdminResult, ReleaseResult, ReloadResult, TopologyResult, WatchStarted,
};
pub use stats::PortStatsView;
pub use trace::{
    ClaimView, GeneratedView, StageOutcome, StageView, TraceView, TraceVipView, VerdictView,
};
pub use vips::{
    HijackView, LastClaimView, MoveView, OwnerView, PendingView, RemoteOwnerView, VipView,
};

/// The answer to a command: a view of the state, or why it was refused.
pub type Reply = Result<View, CtlError>;

/// The answer to one command.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum View {
    /// `show ports`.
    Ports(Vec<PortView>),
    /// `show fdb`.
    Fdb(Vec<FdbEntryView>),
    /// `show vips`.
    Vips(Vec<VipView>),
    /// `show stats`.
    Stats(Vec<PortStatsView>),
    /// `show hosts`.
    Hosts(Vec<HostView>),
    /// `vip move`.
    Moved(MoveResult),
    /// `vip release`.
    Released(ReleaseResult),
    /// `port up|down`.
    PortAdmin(PortAdminResult),
    /// `reload`.
    Reloaded(ReloadResult),
    /// `metrics`: the Prometheus text exposition.
    Metrics(String),
    /// `watch`: the stream starts.
    Watching(WatchStarted),
    /// `capture`: the stream starts (then [`capture::CaptureLine`]s).
    Capturing(capture::CaptureStarted),
    /// `SetTopology` (in process only).
    Topology(TopologyResult),
    /// The in-process cluster commands that change the switch.
    Cluster(ClusterResult),
    /// `cluster-writes`.
    ClusterWrites(Vec<ClusterWriteView>),
    /// `cluster-vips`.
    ClusterVips(ClusterVipsResult),
    /// `cluster apply`.
    ClusterApplied(ClusterApplyResult),
    /// `cluster show`.
    ClusterDefs(Vec<crate::config::VipDef>),
    /// `trace`.
    Trace(Box<TraceView>),
}

impl View {
    /// The JSON rendering (what `{"ok": …}` carries and `--json` prints).
    pub fn to_json(&self) -> serde_json::Value {
        // Views are plain data (strings, numbers, maps with string keys): serializing
        // them cannot fail; `Null` would only mark a bug.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Decode the JSON answer to `cmd` (the `ok` part) into its view.
    pub fn decode(cmd: &Command, v: serde_json::Value) -> Result<View, serde_json::Error> {
        use serde_json::from_value as de;
        Ok(match cmd {
            Command::ShowPorts => View::Ports(de(v)?),
            Command::ShowFdb => View::Fdb(de(v)?),
            Command::ShowVips => View::Vips(de(v)?),
            Command::ShowStats => View::Stats(de(v)?),
            Command::ShowHosts => View::Hosts(de(v)?),
            Command::VipMove { .. } => View::Moved(de(v)?),
            Command::VipRelease { .. } => View::Released(de(v)?),
            Command::PortAdmin { .. } => View::PortAdmin(de(v)?),
            Command::Reload => View::Reloaded(de(v)?),
            Command::Metrics => View::Metrics(de(v)?),
            Command::Watch => View::Watching(de(v)?),
            Command::Capture { .. } => View::Capturing(de(v)?),
            Command::SetTopology(_) => View::Topology(de(v)?),
            Command::ClusterOwner { .. }
            | Command::ClusterOwners { .. }
            | Command::ClusterRelease { .. }
            | Command::ClusterConfirm { .. }
            | Command::ClusterCandidate { .. }
            | Command::ClusterCandidateGone { .. }
            | Command::ClusterHostGone { .. } => View::Cluster(de(v)?),
            Command::ClusterWrites => View::ClusterWrites(de(v)?),
            Command::ClusterVips { .. } => View::ClusterVips(de(v)?),
            Command::ClusterApply { .. } => View::ClusterApplied(de(v)?),
            Command::ClusterShow => View::ClusterDefs(de(v)?),
            Command::Trace { .. } => View::Trace(Box::new(de(v)?)),
        })
    }
}

#[cfg(test)]
mod tests;
