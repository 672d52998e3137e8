//! # vswitch
//!
//! The datapath library of a userspace virtual switch for cloud compute hosts: VMs attach
//! through tap devices (or existing interfaces); the switch forwards Ethernet between them,
//! enforces per-port source/destination checks and allowed-address-pairs, and keeps a table
//! of virtual IPs that move between HA candidates on gratuitous ARP / unsolicited NA.
//!
//! Layers (dependencies point down only):
//! - [`wire`]: untrusted bytes → [`wire::FrameFacts`]; never panics;
//! - [`verdict`]: the decision's vocabulary ([`verdict::Verdict`], [`verdict::DropReason`]),
//!   shared by the pipeline and the counters;
//! - [`pipeline`]: the pure decision `process(snapshot, ingress, frame, meta, now)`;
//! - [`control`]: the single-writer state machine (VIP claims, port state, reloads);
//! - [`port`]: tap / AF_PACKET / in-memory port backends behind one batch trait;
//! - [`datapath`]: threads that connect ports, pipeline and control;
//! - [`request`]: the control-socket request parser (JSON line → [`datapath::Command`]);
//! - [`view`]: the typed answers, errors and events of the control surface;
//! - [`vrrp`]: VRRP adverts (parse, priority-0 copy) for the crashed-master step-down;
//! - [`overlay`]: the table of other hosts, their VTEPs and ports (multi-host mode);
//! - [`trace`]: `vswitch trace`, what the switch would do with one frame and why (the
//!   pipeline's tracing hook plus the control plane's claim decision, read only);
//! - [`capture`]: the datapath side of port captures (the hook's bounded queue);
//! - [`config`], [`counters`], [`metrics`], [`frames`], [`fdb`], [`describe`], [`pcap`]:
//!   supporting pieces;
//! - `testutil` (only with the `test-util` feature, or in the crate's own tests): frame
//!   builders shared by the tests, benchmarks and fuzz targets of every crate.
#![warn(missing_docs)]

pub mod capture;
pub mod config;
pub mod control;
pub mod counters;
pub mod datapath;
pub mod describe;
pub mod discovery;
pub mod fdb;
pub mod forward;
pub mod frames;
pub mod metrics;
pub mod overlay;
pub mod pcap;
pub mod pipeline;
pub mod port;
pub mod request;
pub mod state;
#[cfg(any(test, feature = "test-util"))]
pub mod testutil;
pub mod trace;
pub mod verdict;
pub mod view;
pub mod vrrp;
pub mod wire;
