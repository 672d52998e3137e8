//! Fuzz the control-socket request parser (`Command::parse_request`) with arbitrary bytes.
//!
//! The input is one request line as a client writes it to the control socket (the seed
//! corpus is one file per command, see `fuzz/seed-corpus.sh`). Parsing must never panic;
//! an accepted command must survive a round trip through the client's encoding
//! (`serde_json::to_vec`, what `vswitch ctl` sends) unchanged, and a refused one must carry
//! the `bad request:` message the socket answers with.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vswitch::datapath::Command;

fuzz_target!(|data: &[u8]| {
    match Command::parse_request(data) {
        Ok(cmd) => {
            let line = serde_json::to_vec(&cmd).expect("a parsed command serializes");
            assert_eq!(
                Command::parse_request(&line).as_ref(),
                Ok(&cmd),
                "round trip changed the command"
            );
        }
        Err(e) => assert!(e.to_string().starts_with("bad request: "), "{e}"),
    }
});
