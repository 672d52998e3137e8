//! Where an owner or a candidate of a VIP group is: a port of this switch, or a port of
//! another host of the cluster; and the stamp that orders ownership records cluster-wide.
//!
//! Contract:
//! - a [`Location`] is a plain `Copy` value. Local ports are [`PortId`]s of this switch's
//!   port table; remote ports are [`RemotePortId`]s on a [`HostId`]. Both ids are small
//!   integers interned by the caller (the control state keeps the names, as it does for
//!   local ports), so the pure table never holds a string and the datapath never compares
//!   one;
//! - a remote port is identified by its cluster-unique port name (interned as
//!   [`RemotePortId`]); the host is where that port lives now. A port that migrates keeps its
//!   id and changes host;
//! - a [`Stamp`] is the order etcd gives ownership records: `(epoch, revision)`, where
//!   `revision` is the record's etcd `mod_revision`. See [`Stamp::newer_than`] for the rule.

use crate::policy::PortId;

/// A host of the cluster (interned by the caller; the table never sees its name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostId(pub u32);

impl std::fmt::Display for HostId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "host#{}", self.0)
    }
}

/// A port on another host, by its cluster-unique name (interned by the caller).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemotePortId(pub u32);

/// A port of another host: which port, and on which host it lives now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemotePort {
    /// The host the port is on.
    pub host: HostId,
    /// The port (cluster-unique name, interned).
    pub port: RemotePortId,
}

/// Where a candidate or an owner is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Location {
    /// A port of this switch.
    Local(PortId),
    /// A port of another host.
    Remote(RemotePort),
}

impl Location {
    /// The local port, if it is one.
    #[inline]
    pub fn local(self) -> Option<PortId> {
        match self {
            Location::Local(p) => Some(p),
            Location::Remote(_) => None,
        }
    }
    /// The remote port, if it is one.
    #[inline]
    pub fn remote(self) -> Option<RemotePort> {
        match self {
            Location::Local(_) => None,
            Location::Remote(r) => Some(r),
        }
    }
}

/// The cluster order of an ownership record: the group's epoch it was written at and the
/// etcd `mod_revision` of the write.
///
/// **The rule.** A group remembers the stamp of the last record it applied or had
/// confirmed (its *confirmed* stamp). A record from the store is applied iff it is newer
/// than that: its revision is strictly greater **and** its epoch is strictly greater. A
/// record with the same revision is the same record seen twice ([`StaleReason::Duplicate`]);
/// a lower revision is an old record delivered late ([`StaleReason::Older`]); a higher
/// revision whose epoch did not advance was written by a writer that did not follow the
/// rule below and is refused ([`StaleReason::EpochNotAdvanced`]). A group with no
/// confirmed stamp applies any record.
///
/// **Writers.** A local change writes the group's local epoch, which is always above the
/// confirmed epoch, in a transaction conditioned on the confirmed revision. So along etcd's
/// revisions the epochs of a group's records strictly increase, and the two halves of the
/// rule agree; etcd's order decides every race and every host converges to the last
/// record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Stamp {
    /// The group's epoch the record was written at.
    pub epoch: u64,
    /// The etcd `mod_revision` of the record.
    pub revision: u64,
}

/// Why a record from the store was not applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StaleReason {
    /// The same revision as the confirmed record: seen already.
    Duplicate,
    /// An older revision than the confirmed record.
    Older,
    /// A newer revision whose epoch is not above the confirmed one.
    EpochNotAdvanced,
}

impl std::fmt::Display for StaleReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StaleReason::Duplicate => "duplicate",
            StaleReason::Older => "older",
            StaleReason::EpochNotAdvanced => "epoch-not-advanced",
        })
    }
}

impl Stamp {
    /// Is `self` newer than `have` (the confirmed stamp)? `Err` says why not.
    pub fn newer_than(self, have: Option<Stamp>) -> Result<(), StaleReason> {
        let Some(have) = have else {
            return Ok(());
        };
        if self.revision == have.revision {
            Err(StaleReason::Duplicate)
        } else if self.revision < have.revision {
            Err(StaleReason::Older)
        } else if self.epoch <= have.epoch {
            Err(StaleReason::EpochNotAdvanced)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_rule() {
        let have = Some(Stamp {
            epoch: 5,
            revision: 100,
        });
        let s = |epoch, revision| Stamp { epoch, revision };
        assert_eq!(s(6, 101).newer_than(have), Ok(()));
        assert_eq!(s(5, 100).newer_than(have), Err(StaleReason::Duplicate));
        assert_eq!(s(9, 100).newer_than(have), Err(StaleReason::Duplicate));
        assert_eq!(s(4, 99).newer_than(have), Err(StaleReason::Older));
        assert_eq!(s(9, 99).newer_than(have), Err(StaleReason::Older));
        assert_eq!(
            s(5, 101).newer_than(have),
            Err(StaleReason::EpochNotAdvanced)
        );
        assert_eq!(s(1, 1).newer_than(None), Ok(()));
    }
}
