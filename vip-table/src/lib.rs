//! # vip-table
//!
//! The pure tables behind the vswitch's forwarding decisions: address types, per-port
//! source/destination policy compiled from configuration, and VIP groups with their
//! ownership rules (claims, hijack refusal, flap damping with pending claims, active-active
//! rendezvous hashing, port loss), and their cluster side: owners and candidates on other
//! hosts ([`Location`]) changed by small typed operations ordered by a [`Stamp`].
//!
//! Nothing here performs I/O, spawns threads, reads a clock or logs: time is a
//! [`Timestamp`] argument, so every behaviour can be replayed deterministically. The
//! `vswitch` crate builds snapshots from these tables; the control thread is their only
//! writer.

#![warn(missing_docs)]

pub mod addr;
pub mod location;
pub mod policy;
pub mod time;
pub mod vip;

pub use addr::{parse_ip_or_cidr, IpNet, MacAddr, PrefixSet};
pub use location::{HostId, Location, RemotePort, RemotePortId, StaleReason, Stamp};
pub use policy::{PortId, PortPolicy};
pub use time::Timestamp;
pub use vip::{
    ClaimOutcome, Damping, DampingState, HijackAttempt, Move, MoveReason, Owner, OwnerEntry,
    OwnerWrite, PendingClaim, RemoteOutcome, RemoteOwner, SavedGroup, Selected, VipError, VipGroup,
    VipId, VipMode, VipSpec, VipTable, HISTORY_LEN,
};
