//! The pcap reader and writer live in the library ([`vswitch::pcap`]), where `vswitch trace
//! --pcap` reads captures too; re-exported here for the scenarios.

pub use vswitch::pcap::*;
