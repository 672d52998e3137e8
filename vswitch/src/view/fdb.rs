//! `show fdb`: one [`FdbEntryView`] per MAC table entry.

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
    /// Configured (never ages) rather than learned.
    #[serde(rename = "static")]
    pub is_static: bool,
    /// Seconds since last seen (0 for static entries).
    pub age_secs: f64,
}
