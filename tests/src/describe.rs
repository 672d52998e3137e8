//! The tcpdump-like one-line frame description lives in the library ([`vswitch::describe`]),
//! where `vswitch trace` uses it too; re-exported here for the transcripts.

pub use vswitch::describe::describe;
