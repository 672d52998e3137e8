//! The typed records of a port capture (`capture`): what the switch saw on a port and what
//! it decided about each frame. The datapath side (the hook, the bounded queue) is
//! [`crate::capture`]; pcapng is only the CLI's rendering of these records.
//!
//! On the control socket a capture is a stream: the answer line `{"ok": <CaptureStarted>}`,
//! then one [`CaptureLine`] per line: `{"frame": <CaptureRecord>}` for each frame, and a
//! last `{"end": <CaptureEnd>}` with the counts and why it ended.

use std::fmt;

use serde::{Deserialize, Serialize};
use vip_table::MacAddr;

use crate::verdict::DropReason;

/// Which frames of the port a capture takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureDir {
    /// What the port received at the switch (every decision).
    Rx,
    /// What the switch sent out of the port.
    Tx,
    /// Both (the default).
    #[default]
    Both,
    /// Only the frames the switch dropped that the port received.
    Drops,
}

impl CaptureDir {
    /// The option's name (`rx`, `tx`, `both`, `drops`).
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureDir::Rx => "rx",
            CaptureDir::Tx => "tx",
            CaptureDir::Both => "both",
            CaptureDir::Drops => "drops",
        }
    }
}

/// Which way a captured frame went through the port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Received on the port (into the switch).
    Rx,
    /// Sent out of the port (by the switch).
    Tx,
}

/// The switch's decision about a captured frame. Its [`Display`](fmt::Display) is the
/// packet comment of the pcapng rendering (`drop: arp_spoof`, `forward: web2 rewrite dst
/// 52:54:00:00:00:02`, `flood`, `answered`, `tx`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Dropped (received frames only), with the counter it was counted on.
    Drop {
        /// Why.
        reason: DropReason,
    },
    /// Forwarded to one port.
    Forward {
        /// The egress port (`egress` on the wire: the record's own `port` is the captured
        /// one, and the decision is flattened into the record).
        #[serde(rename = "egress")]
        port: String,
        /// The destination MAC it was rewritten to (VIP steering); the captured bytes are
        /// the frame as received.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rewrite_dst: Option<MacAddr>,
    },
    /// Flooded in its VLAN.
    Flood,
    /// Answered by the switch (ARP / NS responder); the answer goes back out of the port.
    Answered,
    /// Addressed to the switch itself (an answer to its owner-discovery probe).
    ToSwitch,
    /// Sent to a VIP owner on another host through the overlay.
    ToRemote {
        /// The owner's host.
        host: String,
        /// The destination MAC it was rewritten to.
        rewrite_dst: MacAddr,
    },
    /// Sent out of the port (a frame the port sent, whoever it came from).
    Tx,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Drop { reason } => write!(f, "drop: {reason}"),
            Decision::Forward { port, rewrite_dst } => {
                write!(f, "forward: {port}")?;
                if let Some(m) = rewrite_dst {
                    write!(f, " rewrite dst {m}")?;
                }
                Ok(())
            }
            Decision::Flood => f.write_str("flood"),
            Decision::Answered => f.write_str("answered"),
            Decision::ToSwitch => f.write_str("to switch"),
            Decision::ToRemote { host, rewrite_dst } => {
                write!(f, "to remote: {host} rewrite dst {rewrite_dst}")
            }
            Decision::Tx => f.write_str("tx"),
        }
    }
}

/// One captured frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureRecord {
    /// When the switch handled it: nanoseconds since the Unix epoch.
    pub at_unix_ns: u64,
    /// The captured port.
    pub port: String,
    /// Received or sent.
    pub dir: Direction,
    /// What the switch decided.
    #[serde(flatten)]
    pub decision: Decision,
    /// The frame's length on the wire (the captured bytes may be fewer: at most
    /// [`crate::capture::SNAPLEN`]).
    pub orig_len: u32,
    /// The frame's bytes (hex on the control socket).
    #[serde(with = "hex_bytes")]
    pub frame: Vec<u8>,
}

/// The answer that starts a capture stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureStarted {
    /// The captured port.
    pub port: String,
    /// Which frames.
    pub dir: CaptureDir,
    /// Bytes kept of each frame at most.
    pub snaplen: u32,
}

/// Why a capture ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureEndReason {
    /// `count` frames were delivered.
    Count,
    /// `duration` passed.
    Duration,
    /// The client stopped it (Ctrl-C, closed its end).
    Client,
    /// A reload removed the port.
    PortRemoved,
    /// The switch stopped.
    SwitchStopped,
}

impl CaptureEndReason {
    /// In words.
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureEndReason::Count => "count reached",
            CaptureEndReason::Duration => "duration over",
            CaptureEndReason::Client => "stopped",
            CaptureEndReason::PortRemoved => "the port was removed",
            CaptureEndReason::SwitchStopped => "the switch stopped",
        }
    }
}

/// The last line of a capture stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureEnd {
    /// Frames delivered.
    pub captured: u64,
    /// Frames the capture lost because its queue was full (the datapath forwarded them
    /// all the same).
    pub capture_lost: u64,
    /// Why it ended.
    pub reason: CaptureEndReason,
}

/// One line of a capture stream after its first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureLine {
    /// A frame.
    Frame(CaptureRecord),
    /// The end.
    End(CaptureEnd),
}

/// Bytes as a lowercase hex string.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(b.len() * 2);
        for x in b {
            out.push(char::from(HEX[usize::from(x >> 4)]));
            out.push(char::from(HEX[usize::from(x & 15)]));
        }
        s.serialize_str(&out)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let nib = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        };
        let bytes = s.as_bytes();
        if bytes.len() % 2 != 0 {
            return Err(serde::de::Error::custom("odd number of hex digits"));
        }
        bytes
            .chunks_exact(2)
            .map(|p| match (nib(p[0]), nib(p[1])) {
                (Some(h), Some(l)) => Ok(h << 4 | l),
                _ => Err(serde::de::Error::custom("not a hex digit")),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_read_as_comments() {
        let d = Decision::Drop {
            reason: DropReason::ArpSpoof,
        };
        assert_eq!(d.to_string(), "drop: arp_spoof");
        let f = Decision::Forward {
            port: "web2".into(),
            rewrite_dst: Some(MacAddr([0x52, 0x54, 0, 0, 0, 2])),
        };
        assert_eq!(f.to_string(), "forward: web2 rewrite dst 52:54:00:00:00:02");
        assert_eq!(
            Decision::Forward {
                port: "b".into(),
                rewrite_dst: None
            }
            .to_string(),
            "forward: b"
        );
        assert_eq!(Decision::Tx.to_string(), "tx");
        assert_eq!(Decision::Answered.to_string(), "answered");
    }

    #[test]
    fn lines_round_trip() {
        let r = CaptureLine::Frame(CaptureRecord {
            at_unix_ns: 1_700_000_000_123_456_789,
            port: "web1".into(),
            dir: Direction::Rx,
            decision: Decision::Drop {
                reason: DropReason::VipHijack,
            },
            orig_len: 3,
            frame: vec![0x00, 0xab, 0xff],
        });
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(
            j,
            r#"{"frame":{"at_unix_ns":1700000000123456789,"port":"web1","dir":"rx","decision":"drop","reason":"vip_hijack","orig_len":3,"frame":"00abff"}}"#
        );
        assert_eq!(serde_json::from_str::<CaptureLine>(&j).unwrap(), r);
        // a forward names its egress port apart from the captured one
        let r = CaptureLine::Frame(CaptureRecord {
            at_unix_ns: 1,
            port: "web1".into(),
            dir: Direction::Rx,
            decision: Decision::Forward {
                port: "web2".into(),
                rewrite_dst: Some(MacAddr([0x52, 0x54, 0, 0, 0, 2])),
            },
            orig_len: 1,
            frame: vec![0],
        });
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(
            j,
            r#"{"frame":{"at_unix_ns":1,"port":"web1","dir":"rx","decision":"forward","egress":"web2","rewrite_dst":"52:54:00:00:00:02","orig_len":1,"frame":"00"}}"#
        );
        assert_eq!(serde_json::from_str::<CaptureLine>(&j).unwrap(), r);
        let e = CaptureLine::End(CaptureEnd {
            captured: 2,
            capture_lost: 1,
            reason: CaptureEndReason::Count,
        });
        let j = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<CaptureLine>(&j).unwrap(), e);
        assert!(serde_json::from_str::<CaptureRecord>(
            r#"{"at_unix_ns":1,"port":"a","dir":"tx","decision":"tx","orig_len":1,"frame":"0g"}"#
        )
        .is_err());
    }
}
