//! The forwarding database: (VLAN, MAC) → port, learned concurrently by the workers.
//!
//! Contract (SEMANTICS.md §2):
//! - static entries (port MACs from config) are never aged, moved or evicted and do not count
//!   against the caps;
//! - a learned entry older than the aging time is treated as absent by [`Fdb::lookup`] even
//!   before [`Fdb::sweep`] removes it;
//! - the table is bounded: at most `capacity` learned entries in total and `port_limit` per
//!   port. The pipeline refuses to learn past a cap and drops the frame (`fdb_full`); under
//!   concurrent learning the caps may be overshot by at most one entry per worker.
//!
//! The map is a sharded concurrent hash map (dashmap) so that learning does not go through
//! the control thread; lookups are lock-striped reads.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use vip_table::{MacAddr, PortId, Timestamp};

/// A table key.
pub type FdbKey = (u16, MacAddr);

/// One entry.
#[derive(Debug)]
pub struct FdbEntry {
    /// The port the MAC lives behind.
    pub port: PortId,
    /// Nanoseconds timestamp of the last frame seen from it (learned entries).
    pub last_seen: AtomicU64,
    /// Configured (never ages or moves).
    pub is_static: bool,
}

/// The table (or the port's share of it) is full: a new MAC cannot be learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdbFull;

/// What a lookup of a source MAC says must happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LearnOp {
    /// New MAC on this VLAN.
    Insert,
    /// The MAC moved to another port.
    Move {
        /// The port it was on.
        from: PortId,
    },
    /// Known on this port; its timestamp is stale enough to refresh.
    Refresh,
}

/// A learning action for the caller to apply with [`Fdb::learn`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Learn {
    /// VLAN.
    pub vlan: u16,
    /// Source MAC.
    pub mac: MacAddr,
    /// Ingress port.
    pub port: PortId,
    /// What to do.
    pub op: LearnOp,
}

/// The forwarding database.
#[derive(Debug)]
pub struct Fdb {
    map: DashMap<FdbKey, FdbEntry, ahash::RandomState>,
    learned: AtomicUsize,
    per_port: Vec<AtomicUsize>,
    capacity: usize,
    port_limit: usize,
    aging_ns: u64,
    full_events: AtomicU64,
}

impl Fdb {
    /// An empty table for `ports` ports.
    pub fn new(
        ports: usize,
        capacity: usize,
        port_limit: usize,
        aging: std::time::Duration,
    ) -> Self {
        Fdb {
            map: DashMap::with_capacity_and_hasher(
                capacity.min(1 << 20) + ports,
                ahash::RandomState::new(),
            ),
            learned: AtomicUsize::new(0),
            per_port: (0..ports).map(|_| AtomicUsize::new(0)).collect(),
            capacity,
            port_limit,
            aging_ns: u64::try_from(aging.as_nanos()).unwrap_or(u64::MAX),
            full_events: AtomicU64::new(0),
        }
    }

    /// Install a static entry.
    pub fn add_static(&self, vlan: u16, mac: MacAddr, port: PortId) {
        if let Some(old) = self.map.insert(
            (vlan, mac),
            FdbEntry {
                port,
                last_seen: AtomicU64::new(0),
                is_static: true,
            },
        ) {
            if !old.is_static {
                self.uncount(old.port);
            }
        }
    }

    fn uncount(&self, port: PortId) {
        self.learned.fetch_sub(1, Ordering::Relaxed);
        if let Some(c) = self.per_port.get(port.index()) {
            c.fetch_sub(1, Ordering::Relaxed);
        }
    }

    #[inline]
    fn fresh(&self, e: &FdbEntry, now: Timestamp) -> bool {
        e.is_static || now.0.saturating_sub(e.last_seen.load(Ordering::Relaxed)) < self.aging_ns
    }

    /// The port a destination MAC lives behind, if known and not aged out.
    #[inline]
    pub fn lookup(&self, vlan: u16, mac: MacAddr, now: Timestamp) -> Option<PortId> {
        let e = self.map.get(&(vlan, mac))?;
        self.fresh(&e, now).then_some(e.port)
    }

    /// Decide what learning a frame from `mac` on `port` needs. `None`: nothing (known and
    /// recently refreshed, or a static entry). `Err(FdbFull)`: the table or the port is full.
    #[inline]
    pub fn check_learn(
        &self,
        vlan: u16,
        mac: MacAddr,
        port: PortId,
        now: Timestamp,
    ) -> Result<Option<LearnOp>, FdbFull> {
        match self.map.get(&(vlan, mac)) {
            Some(e) if e.is_static => Ok(None),
            Some(e) if e.port == port => {
                let age = now.0.saturating_sub(e.last_seen.load(Ordering::Relaxed));
                // Refresh at most every 1/8 of the aging time: no write per frame.
                Ok((age >= self.aging_ns / 8).then_some(LearnOp::Refresh))
            }
            Some(e) => {
                if self.port_full(port) {
                    return Err(FdbFull);
                }
                Ok(Some(LearnOp::Move { from: e.port }))
            }
            None => {
                if self.learned.load(Ordering::Relaxed) >= self.capacity || self.port_full(port) {
                    return Err(FdbFull);
                }
                Ok(Some(LearnOp::Insert))
            }
        }
    }

    fn port_full(&self, port: PortId) -> bool {
        self.per_port
            .get(port.index())
            .is_some_and(|c| c.load(Ordering::Relaxed) >= self.port_limit)
    }

    /// Apply a learning action.
    pub fn learn(&self, l: &Learn, now: Timestamp) {
        match self.map.entry((l.vlan, l.mac)) {
            dashmap::Entry::Occupied(mut o) => {
                let e = o.get_mut();
                if e.is_static {
                    return;
                }
                if e.port != l.port {
                    let from = e.port;
                    e.port = l.port;
                    if let Some(c) = self.per_port.get(from.index()) {
                        c.fetch_sub(1, Ordering::Relaxed);
                    }
                    if let Some(c) = self.per_port.get(l.port.index()) {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                }
                e.last_seen.store(now.0, Ordering::Relaxed);
            }
            dashmap::Entry::Vacant(v) => {
                v.insert(FdbEntry {
                    port: l.port,
                    last_seen: AtomicU64::new(now.0),
                    is_static: false,
                });
                self.learned.fetch_add(1, Ordering::Relaxed);
                if let Some(c) = self.per_port.get(l.port.index()) {
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Count a refused learn (for `show stats`).
    pub fn note_full(&self) {
        self.full_events.fetch_add(1, Ordering::Relaxed);
    }

    /// Learns refused because a cap was reached.
    pub fn full_events(&self) -> u64 {
        self.full_events.load(Ordering::Relaxed)
    }

    /// Remove aged learned entries. Returns how many were removed.
    pub fn sweep(&self, now: Timestamp) -> usize {
        let mut removed = Vec::new();
        self.map.retain(|_, e| {
            let keep = self.fresh(e, now);
            if !keep {
                removed.push(e.port);
            }
            keep
        });
        for p in &removed {
            self.uncount(*p);
        }
        removed.len()
    }

    /// Remove every learned entry of `port` (port down or removed).
    pub fn flush_port(&self, port: PortId) {
        let mut n = 0;
        self.map.retain(|_, e| {
            let drop = !e.is_static && e.port == port;
            n += usize::from(drop);
            !drop
        });
        for _ in 0..n {
            self.uncount(port);
        }
    }

    /// Learned entries.
    pub fn learned_len(&self) -> usize {
        self.learned.load(Ordering::Relaxed)
    }

    /// A copy of all entries: (vlan, mac, port, static, age in ns or 0 for static).
    pub fn entries(&self, now: Timestamp) -> Vec<(u16, MacAddr, PortId, bool, u64)> {
        let mut v: Vec<_> = self
            .map
            .iter()
            .filter(|e| self.fresh(e.value(), now))
            .map(|e| {
                let (vlan, mac) = *e.key();
                let age = if e.is_static {
                    0
                } else {
                    now.0.saturating_sub(e.last_seen.load(Ordering::Relaxed))
                };
                (vlan, mac, e.port, e.is_static, age)
            })
            .collect();
        v.sort_by_key(|e| (e.0, e.1));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }

    #[test]
    fn learn_age_and_caps() {
        let f = Fdb::new(4, 2, 1, Duration::from_secs(300));
        let t0 = Timestamp::from_secs(1);
        f.add_static(0, mac(1), PortId(0));
        assert_eq!(
            f.check_learn(0, mac(1), PortId(3), t0),
            Ok(None),
            "static never moves"
        );
        assert_eq!(
            f.check_learn(0, mac(2), PortId(1), t0),
            Ok(Some(LearnOp::Insert))
        );
        f.learn(
            &Learn {
                vlan: 0,
                mac: mac(2),
                port: PortId(1),
                op: LearnOp::Insert,
            },
            t0,
        );
        assert_eq!(f.lookup(0, mac(2), t0), Some(PortId(1)));
        assert_eq!(f.lookup(1, mac(2), t0), None, "per vlan");
        assert_eq!(
            f.check_learn(0, mac(3), PortId(1), t0),
            Err(FdbFull),
            "port limit 1"
        );
        f.learn(
            &Learn {
                vlan: 0,
                mac: mac(4),
                port: PortId(2),
                op: LearnOp::Insert,
            },
            t0,
        );
        assert_eq!(
            f.check_learn(0, mac(5), PortId(3), t0),
            Err(FdbFull),
            "global cap 2"
        );
        let t1 = t0 + Duration::from_secs(301);
        assert_eq!(f.lookup(0, mac(2), t1), None, "aged");
        assert_eq!(
            f.lookup(0, mac(1), t1),
            Some(PortId(0)),
            "static does not age"
        );
        assert_eq!(f.sweep(t1), 2);
        assert_eq!(f.learned_len(), 0);
    }
}
