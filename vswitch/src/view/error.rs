//! [`CtlError`]: why a control command was not carried out.
//!
//! On the control socket an error travels as its message only (`{"error": "<Display>"}`),
//! so the messages below are part of the protocol: scripts, tests and docs match on them.

use crate::control::ControlError;

/// Why a control command was not carried out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CtlError {
    /// No VIP group by that name.
    #[error("no vip named `{name}`")]
    UnknownVip {
        /// The name asked for.
        name: String,
    },
    /// No port by that name.
    #[error("no port named `{name}`")]
    UnknownPort {
        /// The name asked for.
        name: String,
    },
    /// The port is not a candidate of the group.
    #[error("port `{port}` is not a candidate of vip `{vip}`")]
    NotACandidate {
        /// VIP group.
        vip: String,
        /// Port.
        port: String,
    },
    /// A mutating command from a peer that is neither root nor in the control group.
    #[error(
        "permission denied: {cmd} changes the switch and needs root or membership of the \
         control group {group} (switch.ctl_group); uid {uid} is neither"
    )]
    PermissionDenied {
        /// The command's wire name (`vip-move`).
        cmd: String,
        /// The control group as named in messages (`vswitch-ops (gid 1001)`).
        group: String,
        /// The caller's uid.
        uid: u32,
    },
    /// A mutating command from a peer whose credentials could not be read.
    #[error(
        "permission denied: {cmd} changes the switch and the caller's credentials could \
         not be read ({error})"
    )]
    CredentialsUnknown {
        /// The command's wire name.
        cmd: String,
        /// Why `SO_PEERCRED` failed.
        error: String,
    },
    /// The configuration file (on reload) is invalid or cannot be applied; nothing changed.
    #[error("{message}")]
    InvalidConfig {
        /// What is wrong, naming the fields.
        message: String,
    },
    /// `reload` on a switch started without a configuration file.
    #[error("the switch was started without a configuration file")]
    NoConfigFile,
    /// The request line is not a command.
    #[error("bad request: {message}")]
    BadRequest {
        /// What the parser said.
        message: String,
    },
    /// The request line is longer than the limit.
    #[error("request too large (at most {max} bytes)")]
    RequestTooLarge {
        /// The limit.
        max: usize,
    },
    /// The client did not send a whole request in time.
    #[error("no complete request within {secs}s")]
    RequestTimeout {
        /// The deadline.
        secs: u64,
    },
    /// Every control connection slot is running a command.
    #[error("the switch is busy: {limit} control connections are already being served; try again")]
    Busy {
        /// Connections served at once.
        limit: usize,
    },
    /// The connection was closed to make room for others before it sent its request.
    #[error(
        "closed to make room: no complete request was sent while the control socket was \
         full; try again"
    )]
    Evicted,
    /// Too many `watch` streams are open.
    #[error("too many event watchers ({limit} at once); try again later")]
    TooManyWatchers {
        /// Watchers served at once.
        limit: usize,
    },
    /// A capture from a peer that is neither root nor in the control group.
    #[error(
        "permission denied: {cmd} shows the switch's traffic and needs root or membership \
         of the control group {group} (switch.ctl_group); uid {uid} is neither"
    )]
    TrafficDenied {
        /// The command's wire name (`capture`).
        cmd: String,
        /// The control group as named in messages.
        group: String,
        /// The caller's uid.
        uid: u32,
    },
    /// Too many captures are running.
    #[error("too many captures ({limit} at once); try again later")]
    TooManyCaptures {
        /// Captures at once.
        limit: usize,
    },
    /// `capture` sent as a one-shot call: a capture is a stream (the control socket
    /// serves it; in process, `ControlHandle::capture`).
    #[error("capture is a stream of frames, not a call")]
    CaptureNotACall,
    /// `watch` sent as a one-shot call: events are a stream (the control socket serves
    /// it; in process, `Daemon::subscribe`).
    #[error("watch is a stream of events, not a call: subscribe instead")]
    NotACall,
    /// `show hosts` on a switch without a `[cluster]` section.
    #[error(
        "cluster mode is off: this switch runs standalone (no [cluster] in its configuration)"
    )]
    ClusterOff,
    /// A command only the cluster agent may send, received on the control socket.
    #[error(
        "{cmd} is sent by the cluster agent from what it reads in etcd, not over the \
         control socket (change VIP groups with `vswitch ctl cluster apply`)"
    )]
    AgentOnly {
        /// The command's wire name.
        cmd: String,
    },
    /// The control thread is gone.
    #[error("the switch is shutting down")]
    ShuttingDown,
    /// The control thread did not answer in time.
    #[error("the control thread did not answer")]
    NoAnswer,
    /// An error as a client receives it: the socket carries the message only.
    #[error("{message}")]
    Remote {
        /// The daemon's message.
        message: String,
    },
}

impl From<ControlError> for CtlError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::UnknownPort(name) => CtlError::UnknownPort { name },
            ControlError::UnknownVip(name) => CtlError::UnknownVip { name },
            ControlError::NotCandidate { vip, port } => CtlError::NotACandidate { vip, port },
            e @ (ControlError::Vip(_)
            | ControlError::TooManyPorts(_)
            | ControlError::LocalPort(_)) => CtlError::InvalidConfig {
                message: e.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_the_control_errors() {
        for e in [
            ControlError::UnknownPort("p".into()),
            ControlError::UnknownVip("v".into()),
            ControlError::NotCandidate {
                vip: "v".into(),
                port: "p".into(),
            },
            ControlError::TooManyPorts(999),
        ] {
            let msg = e.to_string();
            assert_eq!(CtlError::from(e).to_string(), msg);
        }
        assert_eq!(
            CtlError::NoConfigFile.to_string(),
            "the switch was started without a configuration file"
        );
        let denied = CtlError::PermissionDenied {
            cmd: "vip-move".into(),
            group: "ops (gid 7)".into(),
            uid: 1000,
        }
        .to_string();
        assert!(
            denied.starts_with("permission denied: vip-move changes"),
            "{denied}"
        );
        assert!(
            denied.contains("(switch.ctl_group); uid 1000 is neither"),
            "{denied}"
        );
    }
}
