//! `show fdb`: one [`FdbEntryView`] per MAC table entry, then (cluster mode) one per MAC
//! of a port of another host, as the overlay table has it (`host` set, `static`: the
//! location comes from the store, it never ages).

use serde::{Deserialize, Serialize};

/// A MAC table entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FdbEntryView {
    /// VLAN.
    pub vlan: u16,
    /// MAC.
    pub mac: String,
    /// Port name.
    pub port: String,
    /// The host the port is on, for a port of another host (absent for local entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Configured (never ages) rather than learned.
    #[serde(rename = "static")]
    pub is_static: bool,
    /// Seconds since last seen (0 for static entries).
    pub age_secs: f64,
}
