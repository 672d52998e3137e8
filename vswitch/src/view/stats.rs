//! `show stats`: one [`PortStatsView`] per port.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A port's counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStatsView {
    /// Port name.
    pub port: String,
    /// Up (administratively and operationally).
    pub up: bool,
    /// Frames received from the VM.
    pub rx_frames: u64,
    /// Bytes received from the VM.
    pub rx_bytes: u64,
    /// Frames sent to the VM.
    pub tx_frames: u64,
    /// Bytes sent to the VM.
    pub tx_bytes: u64,
    /// ARP / NDP requests for VIPs answered by the switch.
    pub answered: u64,
    /// Frames for a VIP without an owner.
    pub vip_no_owner: u64,
    /// Frames handed to the control plane.
    pub to_switch: u64,
    /// Drops by reason (every reason, zero or not; sorted by name).
    pub drops: BTreeMap<String, u64>,
}
