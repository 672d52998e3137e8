//! Cross-crate test support for the vswitch: pcap I/O, frame builders, a tcpdump-like frame
//! describer, the pcap-golden replay runner and the scenario definitions.
#![allow(missing_docs)]

pub mod build;
pub mod describe;
pub mod pcap;
pub mod replay;
pub mod scenarios;
