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
//! Static entries live in an immutable hash map checked first (no lock, ~8 ns); learned
//! entries in a sharded concurrent hash map (dashmap) so that learning does not go through
//! the control thread. VMs mostly talk to each other's port MACs, so most lookups never
//! touch the concurrent map.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use vip_table::{MacAddr, PortId, Timestamp};

/// A table key: the VLAN in the top 16 bits, the MAC in the low 48.
pub type FdbKey = u64;

/// Pack (VLAN, MAC) into a key.
#[inline]
pub fn fdb_key(vlan: u16, mac: MacAddr) -> FdbKey {
    let m = mac.0;
    (u64::from(vlan) << 48)
        | (u64::from(m[0]) << 40)
        | (u64::from(m[1]) << 32)
        | (u64::from(m[2]) << 24)
        | (u64::from(m[3]) << 16)
        | (u64::from(m[4]) << 8)
        | u64::from(m[5])
}

/// Unpack a key.
#[inline]
pub fn fdb_key_parts(k: FdbKey) -> (u16, MacAddr) {
    let b = k.to_be_bytes();
    (
        (k >> 48) as u16,
        MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]]),
    )
}

/// Hasher for [`FdbKey`]s: a seeded folded multiply (one 64×64→128 multiply), a fraction of
/// the cost of hashing a tuple. The seed is random per table, so a VM cannot precompute
/// colliding MACs; the per-port learning cap bounds what it could do anyway.
#[derive(Clone, Copy, Debug)]
pub struct KeyHasherBuilder {
    seed: u64,
}

impl KeyHasherBuilder {
    fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x5eed);
        KeyHasherBuilder {
            seed: h.finish() | 1,
        }
    }
}

/// The hasher state of [`KeyHasherBuilder`].
#[derive(Clone, Copy, Debug)]
pub struct KeyHasher {
    seed: u64,
    acc: u64,
}

impl std::hash::Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    #[inline]
    fn write_u64(&mut self, x: u64) {
        let full = u128::from(self.acc ^ x ^ self.seed) * 0x5851_f42d_4c95_7f2d_u128;
        self.acc = (full as u64) ^ ((full >> 64) as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.acc
    }
}

impl std::hash::BuildHasher for KeyHasherBuilder {
    type Hasher = KeyHasher;
    #[inline]
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher {
            seed: self.seed,
            acc: 0,
        }
    }
}

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
    statics: std::collections::HashMap<FdbKey, PortId, KeyHasherBuilder>,
    map: DashMap<FdbKey, FdbEntry, KeyHasherBuilder>,
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
            statics: std::collections::HashMap::with_capacity_and_hasher(
                ports,
                KeyHasherBuilder::new(),
            ),
            map: DashMap::with_capacity_and_hasher(
                capacity.min(1 << 20) + ports,
                KeyHasherBuilder::new(),
            ),
            learned: AtomicUsize::new(0),
            per_port: (0..ports).map(|_| AtomicUsize::new(0)).collect(),
            capacity,
            port_limit,
            aging_ns: u64::try_from(aging.as_nanos()).unwrap_or(u64::MAX),
            full_events: AtomicU64::new(0),
        }
    }

    /// Install a static entry (before the table is shared). A learned entry for the same
    /// key is removed.
    pub fn add_static(&mut self, vlan: u16, mac: MacAddr, port: PortId) {
        self.statics.insert(fdb_key(vlan, mac), port);
        if let Some((_, old)) = self.map.remove(&fdb_key(vlan, mac)) {
            self.uncount(old.port);
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
        let k = fdb_key(vlan, mac);
        if let Some(p) = self.statics.get(&k) {
            return Some(*p);
        }
        let e = self.map.get(&k)?;
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
        let k = fdb_key(vlan, mac);
        if self.statics.contains_key(&k) {
            return Ok(None);
        }
        match self.map.get(&k) {
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
        let k = fdb_key(l.vlan, l.mac);
        if self.statics.contains_key(&k) {
            return;
        }
        match self.map.entry(k) {
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
        let statics = self.statics.iter().map(|(&k, &port)| {
            let (vlan, mac) = fdb_key_parts(k);
            (vlan, mac, port, true, 0)
        });
        let mut v: Vec<_> = self
            .map
            .iter()
            .filter(|e| self.fresh(e.value(), now))
            .map(|e| {
                let (vlan, mac) = fdb_key_parts(*e.key());
                let age = if e.is_static {
                    0
                } else {
                    now.0.saturating_sub(e.last_seen.load(Ordering::Relaxed))
                };
                (vlan, mac, e.port, e.is_static, age)
            })
            .chain(statics)
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
    fn key_roundtrip() {
        let m = MacAddr([0x02, 0xab, 0xcd, 0xef, 0x01, 0x23]);
        assert_eq!(fdb_key_parts(fdb_key(4094, m)), (4094, m));
        assert_ne!(fdb_key(1, m), fdb_key(2, m));
    }

    #[test]
    fn learn_age_and_caps() {
        let mut f = Fdb::new(4, 2, 1, Duration::from_secs(300));
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
