//! The control-socket request parser: one JSON line → a typed [`Command`].
//!
//! Pure (no I/O), so the agent's control socket and the `control_request` fuzz target run
//! exactly the same code on untrusted bytes. A request is one JSON object such as
//! `{"cmd":"show-vips"}` or `{"cmd":"vip-move","vip":"web","port":"web2"}` (the tags and
//! fields of [`Command`]); surrounding ASCII whitespace (the line's `\n`) is ignored.

use crate::datapath::Command;
use crate::view::CtlError;

/// Longest request line the control socket reads (a real command is well under 1 KiB).
pub const MAX_REQUEST_LEN: usize = 64 * 1024;

impl Command {
    /// Parses one request line. Never panics; the error ([`CtlError::BadRequest`]) says
    /// what the control socket sends back (`bad request: …`).
    pub fn parse_request(line: &[u8]) -> Result<Command, CtlError> {
        if line.len() > MAX_REQUEST_LEN {
            return Err(CtlError::BadRequest {
                message: format!("longer than {MAX_REQUEST_LEN} bytes"),
            });
        }
        serde_json::from_slice::<Command>(line.trim_ascii()).map_err(|e| CtlError::BadRequest {
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_topology_command_has_no_wire_form() {
        // in process only (the cluster agent): an operator cannot invent hosts or ports
        for line in [
            &b"{\"cmd\":\"set-topology\"}"[..],
            b"{\"cmd\":\"set-topology\",\"hosts\":[],\"ports\":[]}",
            b"{\"SetTopology\":{\"hosts\":[],\"ports\":[]}}",
        ] {
            let e = Command::parse_request(line).unwrap_err();
            assert!(e.to_string().starts_with("bad request: "), "{e}");
        }
        let t = Command::SetTopology(crate::overlay::Topology::default());
        assert!(t.mutates());
        assert!(serde_json::to_vec(&t).is_err(), "not serializable either");
    }

    #[test]
    fn parses_every_command_shape() {
        assert_eq!(
            Command::parse_request(b"{\"cmd\":\"show-vips\"}\n"),
            Ok(Command::ShowVips)
        );
        assert_eq!(
            Command::parse_request(
                b"  {\"cmd\":\"vip-move\",\"vip\":\"web\",\"port\":\"web2\"}\r\n"
            ),
            Ok(Command::VipMove {
                vip: "web".into(),
                port: "web2".into()
            })
        );
        assert_eq!(
            Command::parse_request(b"{\"cmd\":\"port-admin\",\"port\":\"p\",\"up\":false}"),
            Ok(Command::PortAdmin {
                port: "p".into(),
                up: false
            })
        );
    }

    #[test]
    fn round_trips_what_the_client_sends() {
        for c in [
            Command::ShowPorts,
            Command::ShowFdb,
            Command::ShowVips,
            Command::ShowStats,
            Command::ShowHosts,
            Command::Reload,
            Command::Metrics,
            Command::Watch,
            Command::VipRelease {
                vip: "v".into(),
                port: "p\u{e9}\"".into(),
            },
        ] {
            let line = serde_json::to_vec(&c).expect("serialize");
            assert_eq!(Command::parse_request(&line), Ok(c));
        }
    }

    #[test]
    fn refuses_garbage_with_a_message() {
        for bad in [
            &b""[..],
            b"\xff\xfe",
            b"{\"cmd\":\"nope\"}",
            b"{\"cmd\":\"vip-move\",\"vip\":\"web\"}",
            b"[1,2]",
            b"{\"cmd\":\"show-vips\"} trailing",
        ] {
            let e = Command::parse_request(bad).expect_err("must be refused");
            assert!(e.to_string().starts_with("bad request: "), "{e}");
        }
        let long = vec![b' '; MAX_REQUEST_LEN + 1];
        assert!(Command::parse_request(&long).is_err());
    }
}
