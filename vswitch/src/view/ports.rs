//! `show ports`: one [`PortView`] per configured port.

use serde::{Deserialize, Serialize};

/// A port with its configuration and state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortView {
    /// Port name.
    pub name: String,
    /// `tap` or `netdev`.
    pub binding: String,
    /// The interface behind the binding.
    pub ifname: String,
    /// The VM's MAC.
    pub mac: String,
    /// The port's own addresses (CIDR).
    pub ips: Vec<String>,
    /// Extra (IP, MAC) pairs the port may send from.
    pub allowed_address_pairs: Vec<AddressPairView>,
    /// Access VLAN.
    pub vlan: u16,
    /// MTU.
    pub mtu: u16,
    /// Administratively up.
    pub admin_up: bool,
    /// Operationally up (the device is there).
    pub oper_up: bool,
    /// Source checks on.
    pub port_security: bool,
    /// Destination checks on.
    pub dest_check: bool,
    /// VIP groups this port is a candidate of.
    pub vip_candidate_of: Vec<String>,
}

/// One allowed address pair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressPairView {
    /// IP or CIDR.
    pub ip: String,
    /// MAC.
    pub mac: String,
}

impl PortView {
    /// `admin-down`, `down` or `up`.
    pub fn state(&self) -> &'static str {
        if !self.admin_up {
            "admin-down"
        } else if !self.oper_up {
            "down"
        } else {
            "up"
        }
    }
}
