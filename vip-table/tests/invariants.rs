//! Property tests of the VIP table's invariants (SEMANTICS.md §5) under random sequences of
//! claims (from candidates and non-candidates, with varying MACs), time advances, polls,
//! port losses and operator commands, on an active-passive and an active-active group.
//!
//! Checked after every operation:
//! - active-passive never has two owners; every owner is a candidate;
//! - the epoch never decreases and grows by exactly the number of moves reported, each move
//!   carrying the next epoch and the current time; an A/P move's `from`/`to` are the owners
//!   before and after;
//! - a non-candidate's claim changes nothing but the hijack counter;
//! - active-active: a change of the owner set moves a flow (of 10 000 flow hashes) only if
//!   its old owner left or its new owner joined;
//! - the same with owners on other hosts mixed in: the group also has two remote candidates
//!   (on hosts 10 and 11), and the sequences interleave records from the store (fresh,
//!   duplicate, epoch-not-advanced, and from a non-candidate on host 12) and hosts vanishing.
//!   A/P never has two owners counting both kinds; every owner, local or remote, is a
//!   candidate; a refused record changes nothing; a record's move carries an epoch above
//!   every earlier one.
//!
//! Checked at the end of a sequence:
//! - a pending claim is never lost: after polling far in the future, the last candidate
//!   claimant in A/P owns the VIP, unless an operator command (or, with
//!   `release_on_port_loss`, the loss of that port) came after its claim;
//! - damping: A/P never makes more than `max_moves` claim-driven (Claim / DampedClaim) moves
//!   within any window of `window` length.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use proptest::prelude::*;
use vip_table::{
    ClaimOutcome, Damping, HostId, Location, MacAddr, Move, MoveReason, OwnerEntry, PortId,
    RemoteOutcome, RemotePort, RemotePortId, Selected, Stamp, Timestamp, VipId, VipMode, VipSpec,
    VipTable,
};

/// Ports 0..PORTS exist; CANDIDATES own the VIP, the others are not candidates.
const PORTS: u32 = 5;
const CANDIDATES: [PortId; 3] = [PortId(1), PortId(2), PortId(3)];
const ID: VipId = VipId(0);
/// Flow hashes checked for the active-active property.
const FLOWS: usize = 10_000;

fn is_candidate(p: PortId) -> bool {
    CANDIDATES.contains(&p)
}

/// Remote ports 0 and 1 (on hosts 10 and 11) are candidates; 2 (on host 12) is not.
fn remote(n: u8) -> RemotePort {
    RemotePort {
        host: HostId(10 + u32::from(n)),
        port: RemotePortId(u32::from(n)),
    }
}

fn is_candidate_at(at: Location) -> bool {
    match at {
        Location::Local(p) => is_candidate(p),
        Location::Remote(r) => r == remote(0) || r == remote(1),
    }
}

fn mac(port: PortId, variant: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, variant, 0, port.0 as u8])
}

/// splitmix64: deterministic, well-spread flow hashes.
fn flow_hash(seed: u64, i: u64) -> u64 {
    let mut z = seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[derive(Clone, Debug)]
enum Op {
    /// A GARP / NA from `port` sending as MAC variant `mac` (ignored while the port is
    /// down: a down port sends nothing).
    Claim { port: PortId, mac: u8 },
    /// Time passes.
    Advance { ms: u64 },
    /// The control thread's timer.
    Poll,
    /// The port goes down (its tap vanished or the operator downed it).
    PortDown { port: PortId },
    /// The port comes back (no table operation: it has to claim again).
    PortUp { port: PortId },
    /// `vip move` (the control layer only accepts candidates).
    AdminAssign { port: PortId },
    /// `vip release`.
    AdminRelease { port: PortId },
    /// A record from the store: remote port `to` owns (A/P) / joined (A/A). `kind` 0: a
    /// fresh record, 1: the last record again, 2: a newer revision without a newer epoch.
    RemoteMove { to: u8, kind: u8 },
    /// A fresh record from the store: remote port `of` released the group.
    RemoteRelease { of: u8 },
    /// Host `10 + host` vanished.
    HostGone { host: u8 },
}

fn any_port() -> impl Strategy<Value = PortId> {
    (0..PORTS).prop_map(PortId)
}

fn candidate() -> impl Strategy<Value = PortId> {
    prop::sample::select(CANDIDATES.to_vec())
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        // Claims dominate: that is where the interesting interleavings are.
        6 => (any_port(), prop::sample::select(vec![0u8, 0, 0, 1]))
            .prop_map(|(port, mac)| Op::Claim { port, mac }),
        4 => prop_oneof![0u64..50, 0u64..3_000, 0u64..15_000].prop_map(|ms| Op::Advance { ms }),
        2 => Just(Op::Poll),
        1 => any_port().prop_map(|port| Op::PortDown { port }),
        1 => any_port().prop_map(|port| Op::PortUp { port }),
        1 => candidate().prop_map(|port| Op::AdminAssign { port }),
        1 => candidate().prop_map(|port| Op::AdminRelease { port }),
        2 => (prop::sample::select(vec![0u8, 0, 1, 1, 2]), prop::sample::select(vec![0u8, 0, 0, 1, 2]))
            .prop_map(|(to, kind)| Op::RemoteMove { to, kind }),
        1 => (0u8..2).prop_map(|of| Op::RemoteRelease { of }),
        1 => (0u8..3).prop_map(|host| Op::HostGone { host }),
    ]
}

#[derive(Clone, Debug)]
struct Setup {
    mode: VipMode,
    damping: Damping,
    release_on_port_loss: bool,
    owner_liveness: Option<Duration>,
}

fn setup(mode: VipMode) -> impl Strategy<Value = Setup> {
    (
        prop_oneof![1 => Just(0u32), 6 => 1u32..=4],
        1u64..=20,
        any::<bool>(),
        prop_oneof![
            Just(None),
            (1u64..=20).prop_map(|s| Some(Duration::from_secs(s)))
        ],
    )
        .prop_map(move |(max_moves, window, release, live)| Setup {
            mode,
            damping: Damping {
                max_moves,
                window: Duration::from_secs(window),
            },
            release_on_port_loss: release && mode == VipMode::ActivePassive,
            owner_liveness: live.filter(|_| mode == VipMode::ActiveActive),
        })
}

fn table(s: &Setup) -> VipTable {
    let addrs: Vec<IpAddr> = vec![
        "10.0.0.100".parse().expect("literal"),
        "fd00::100".parse().expect("literal"),
    ];
    VipTable::new(
        vec![VipSpec {
            name: "web".into(),
            addresses: addrs,
            mode: s.mode,
            candidates: CANDIDATES.to_vec(),
            damping: s.damping,
            release_on_port_loss: s.release_on_port_loss,
            virtual_mac: MacAddr([0x02, 0x5e, 0, 0, 0, 1]),
            owner_liveness: s.owner_liveness,
            initial_owners: vec![],
        }],
        Timestamp::ZERO,
    )
    .expect("valid spec")
}

/// [`table`] with the two remote candidates.
fn cluster_table(s: &Setup) -> VipTable {
    let mut t = table(s);
    let g = t.group_mut(ID).expect("group");
    g.add_remote_candidate(remote(0));
    g.add_remote_candidate(remote(1));
    t
}

fn owners(t: &VipTable) -> BTreeSet<Location> {
    t.group(ID)
        .map(|g| {
            g.owners()
                .iter()
                .map(|o| Location::Local(o.port))
                .chain(g.remote_owners().iter().map(|o| Location::Remote(o.at)))
                .collect()
        })
        .unwrap_or_default()
}

/// The owner of every test flow.
fn assignment(t: &VipTable, seed: u64) -> Vec<Option<Location>> {
    let Some(g) = t.group(ID) else {
        return vec![None; FLOWS];
    };
    (0..FLOWS as u64)
        .map(|i| {
            g.select(flow_hash(seed, i)).map(|o| match o {
                Selected::Local(o) => Location::Local(o.port),
                Selected::Remote(o) => Location::Remote(o.at),
            })
        })
        .collect()
}

/// What one sequence did, for the end-of-sequence checks.
#[derive(Default)]
struct Log {
    /// Claim-driven moves (time), A/P.
    claim_moves: Vec<Timestamp>,
    /// The last claim from an up candidate: (port, index of the op).
    last_claim: Option<(PortId, usize)>,
    /// Index of the last operator command.
    last_admin: Option<usize>,
    /// Index of the last record from the store that was applied.
    last_record: Option<usize>,
    /// Index of the last port-down per port.
    last_down: [Option<usize>; PORTS as usize],
    /// Index of the last port-down per port that withdrew that port's pending claim.
    withdrawn: [Option<usize>; PORTS as usize],
}

fn run(s: &Setup, ops: &[Op], seed: u64) -> Result<(), TestCaseError> {
    let mut t = cluster_table(s);
    let mut revision = 0u64;
    let mut now = Timestamp::from_secs(1);
    let mut up = [true; PORTS as usize];
    let mut log = Log::default();
    let ap = s.mode == VipMode::ActivePassive;

    for (i, op) in ops.iter().enumerate() {
        let g = t.group(ID).expect("group");
        let epoch0 = g.epoch();
        let owners0 = owners(&t);
        let hijacks0 = g.hijack_count();
        let pending0 = g.pending();
        let before = (!ap).then(|| assignment(&t, seed));

        let mut moves: Vec<Move> = Vec::new();
        match *op {
            Op::Claim { port, mac: m } => {
                if up[port.index()] {
                    let out = t.claim(ID, port, mac(port, m), now).expect("group");
                    if is_candidate(port) {
                        log.last_claim = Some((port, i));
                        prop_assert_ne!(out, ClaimOutcome::NotCandidate);
                    } else {
                        prop_assert_eq!(out, ClaimOutcome::NotCandidate);
                    }
                    match out {
                        ClaimOutcome::Moved(m) => moves.push(m),
                        ClaimOutcome::Pending { due } => {
                            prop_assert!(ap, "active-active claims are never damped");
                            prop_assert!(due > now, "a pending claim is due in the future");
                        }
                        ClaimOutcome::Refreshed | ClaimOutcome::NotCandidate => {}
                    }
                    let g = t.group(ID).expect("group");
                    if is_candidate(port) {
                        prop_assert_eq!(g.hijack_count(), hijacks0);
                    } else {
                        // A hijack attempt changes nothing but the record.
                        prop_assert_eq!(g.hijack_count(), hijacks0 + 1);
                        prop_assert_eq!(owners(&t), owners0.clone());
                        prop_assert_eq!(g.pending(), pending0);
                        prop_assert_eq!(g.last_hijack().map(|h| h.port), Some(port));
                    }
                }
            }
            Op::Advance { ms } => now = now + Duration::from_millis(ms),
            Op::Poll => moves.extend(t.poll(now).into_iter().map(|(id, m)| {
                assert_eq!(id, ID);
                m
            })),
            Op::PortDown { port } => {
                up[port.index()] = false;
                log.last_down[port.index()] = Some(i);
                let pending_here = t
                    .group(ID)
                    .and_then(|g| g.pending())
                    .is_some_and(|pc| pc.port == port);
                if pending_here {
                    log.withdrawn[port.index()] = Some(i);
                }
                moves.extend(t.port_down(port, now).into_iter().map(|(_, m)| m));
            }
            Op::PortUp { port } => {
                up[port.index()] = true;
                t.port_up(port);
            }
            Op::AdminAssign { port } => {
                log.last_admin = Some(i);
                let m = t
                    .group_mut(ID)
                    .expect("group")
                    .admin_assign(port, mac(port, 0), now);
                moves.extend(m);
                prop_assert!(t.group(ID).expect("group").is_owner(port));
            }
            Op::AdminRelease { port } => {
                log.last_admin = Some(i);
                let m = t.group_mut(ID).expect("group").admin_release(port, now);
                moves.extend(m);
                prop_assert!(!t.group(ID).expect("group").is_owner(port));
            }
            Op::RemoteMove { to, kind } => {
                let have = t.group(ID).expect("group").confirmed();
                let at = Location::Remote(remote(to));
                let stamp = match (kind, have) {
                    (1, Some(h)) => h,
                    (2, Some(h)) => {
                        revision += 1;
                        Stamp {
                            epoch: h.epoch,
                            revision,
                        }
                    }
                    _ => {
                        revision += 1;
                        Stamp {
                            epoch: have.map_or(1, |h| h.epoch + 1),
                            revision,
                        }
                    }
                };
                let m = MacAddr([0x02, 0xbb, 0, 0, 0, to]);
                let out = t
                    .apply_remote_move(ID, stamp, at, m, m, now)
                    .expect("group");
                let fresh = stamp.newer_than(have).is_ok();
                // a host that vanished took its candidates with it
                let cand = t.group(ID).expect("group").is_candidate_at(at);
                prop_assert!(!cand || is_candidate_at(at));
                match out {
                    RemoteOutcome::Applied(m) => {
                        prop_assert!(fresh && cand);
                        log.last_record = Some(i);
                        moves.extend(m);
                        prop_assert!(owners(&t).contains(&at));
                    }
                    RemoteOutcome::Stale { got, .. } => {
                        prop_assert!(!fresh);
                        prop_assert_eq!(got, stamp);
                    }
                    RemoteOutcome::NotACandidate { at: refused } => {
                        prop_assert!(fresh && !cand);
                        prop_assert_eq!(refused, at);
                    }
                }
                if !matches!(out, RemoteOutcome::Applied(_)) {
                    let g = t.group(ID).expect("group");
                    prop_assert_eq!(g.epoch(), epoch0, "a refused record changed the epoch");
                    prop_assert_eq!(owners(&t), owners0.clone());
                    prop_assert_eq!(g.pending(), pending0);
                    prop_assert_eq!(g.confirmed(), have);
                }
            }
            Op::RemoteRelease { of } => {
                let have = t.group(ID).expect("group").confirmed();
                revision += 1;
                let stamp = Stamp {
                    epoch: have.map_or(1, |h| h.epoch + 1),
                    revision,
                };
                let at = Location::Remote(remote(of));
                let out = t.apply_remote_release(ID, stamp, at, now).expect("group");
                let RemoteOutcome::Applied(m) = out else {
                    return Err(TestCaseError::fail(format!(
                        "a fresh release refused: {out:?}"
                    )));
                };
                log.last_record = Some(i);
                prop_assert_eq!(m.is_some(), owners0.contains(&at));
                moves.extend(m);
                prop_assert!(!owners(&t).contains(&at));
            }
            Op::HostGone { host } => {
                let h = HostId(10 + u32::from(host));
                moves.extend(t.host_gone(h, now).into_iter().map(|(_, m)| m));
                let g = t.group(ID).expect("group");
                prop_assert!(g.remote_candidates().iter().all(|c| c.host != h));
                prop_assert!(owners(&t)
                    .iter()
                    .all(|o| o.remote().is_none_or(|r| r.host != h)));
                prop_assert_eq!(moves.len(), owners0.len() - owners(&t).len());
            }
        }
        let is_record = matches!(op, Op::RemoteMove { .. } | Op::RemoteRelease { .. });

        // Epoch: monotonic, +1 per reported move, each move stamped with the next epoch.
        // A record may raise the epoch further (to its own): never less, never back.
        let g = t.group(ID).expect("group");
        if is_record {
            prop_assert!(g.epoch() >= epoch0 + moves.len() as u64);
            if let Some(m) = moves.last() {
                prop_assert_eq!(m.epoch, g.epoch());
                prop_assert!(m.epoch > epoch0);
            }
        } else {
            prop_assert_eq!(
                g.epoch(),
                epoch0 + moves.len() as u64,
                "epoch vs moves after {:?}",
                op
            );
        }
        for (k, m) in moves.iter().enumerate() {
            if !is_record {
                prop_assert_eq!(m.epoch, epoch0 + k as u64 + 1);
            }
            prop_assert_eq!(m.at, now);
            // Replacing an owner whose port is down is not flapping: damping lets it through.
            let takeover = m.from.is_some_and(|p| !up[p.index()]);
            if matches!(m.reason, MoveReason::Claim | MoveReason::DampedClaim) && ap && !takeover {
                log.claim_moves.push(now);
            }
        }

        // Ownership.
        let own = owners(&t);
        if ap {
            prop_assert!(own.len() <= 1, "A/P has owners {:?}", own);
            if let [m] = moves.as_slice() {
                prop_assert_eq!(m.from_location(), owners0.iter().next().copied());
                prop_assert_eq!(m.to_location(), own.iter().next().copied());
            }
        }
        for p in &own {
            prop_assert!(is_candidate_at(*p), "owner {:?} is not a candidate", p);
        }
        if let Some(p) = g.pending() {
            prop_assert!(ap && is_candidate(p.port), "pending {:?}", p);
        }

        // Active-active: a flow moves only if its old owner left or its new owner joined.
        if let Some(before) = before {
            if own != owners0 {
                let after = assignment(&t, seed);
                let left: BTreeSet<_> = owners0.difference(&own).copied().collect();
                let joined: BTreeSet<_> = own.difference(&owners0).copied().collect();
                for (b, a) in before.iter().zip(&after) {
                    if b == a {
                        continue;
                    }
                    let old_left = match b {
                        Some(b) => left.contains(b),
                        None => true,
                    };
                    let ok = old_left || a.is_some_and(|a| joined.contains(&a));
                    prop_assert!(
                        ok,
                        "flow moved {:?} -> {:?} though only {:?} left and {:?} joined",
                        b,
                        a,
                        left,
                        joined
                    );
                }
            }
        }
    }

    // Let every pending claim land: poll far in the future until nothing is due.
    let far = now + Duration::from_secs(3600);
    for _ in 0..16 {
        let Some(due) = t.next_deadline() else { break };
        if due > far {
            break;
        }
        let moves = t.poll(due.max(now));
        for (_, m) in &moves {
            if matches!(m.reason, MoveReason::Claim | MoveReason::DampedClaim) && ap {
                log.claim_moves.push(m.at);
            }
        }
        now = due.max(now);
    }
    let g = t.group(ID).expect("group");
    if ap {
        prop_assert!(g.pending().is_none(), "a pending claim was never applied");
        // The last candidate claimant owns the VIP unless an operator command came after its
        // claim, or its port was lost after it: with release_on_port_loss, or while the
        // claim was still held by damping (a claim from a vanished VM is withdrawn).
        if let Some((p, at)) = log.last_claim {
            // (a record from the store after the claim is newer truth: it may replace it)
            let admin_after =
                log.last_admin.is_some_and(|a| a > at) || log.last_record.is_some_and(|r| r > at);
            let lost_after =
                s.release_on_port_loss && log.last_down[p.index()].is_some_and(|d| d > at);
            let withdrawn = log.withdrawn[p.index()].is_some_and(|d| d > at);
            if !admin_after && !lost_after && !withdrawn {
                prop_assert_eq!(
                    owners(&t).into_iter().collect::<Vec<_>>(),
                    vec![Location::Local(p)],
                    "the last claimant {:?} does not own the VIP",
                    p
                );
            }
        }
        // Damping: at most max_moves claim-driven moves in any window.
        if s.damping.max_moves > 0 {
            let w = s.damping.window;
            for (k, &t0) in log.claim_moves.iter().enumerate() {
                let n = log.claim_moves[k..]
                    .iter()
                    .take_while(|&&t1| t1 < t0 + w)
                    .count();
                prop_assert!(
                    n <= s.damping.max_moves as usize,
                    "{} claim moves within {:?} from {:?} (max {}): {:?}",
                    n,
                    w,
                    t0,
                    s.damping.max_moves,
                    log.claim_moves
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn active_passive_invariants(
        s in setup(VipMode::ActivePassive),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        run(&s, &ops, 0)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn active_active_invariants(
        s in setup(VipMode::ActiveActive),
        ops in prop::collection::vec(op(), 1..60),
        seed in any::<u64>(),
    ) {
        run(&s, &ops, seed)?;
    }

    /// Rendezvous hashing in isolation: over 10 000 flows, a joining owner takes flows only
    /// for itself, a leaving owner gives up only its own, and leaving undoes joining exactly.
    #[test]
    fn active_active_join_and_leave_move_only_their_share(
        start in prop::collection::btree_set(0u32..12, 0..6),
        extra in 12u32..16,
        seed in any::<u64>(),
    ) {
        let mut spec_ports: Vec<PortId> = start.iter().copied().map(PortId).collect();
        spec_ports.push(PortId(extra));
        let mut t = VipTable::new(
            vec![VipSpec {
                name: "lb".into(),
                addresses: vec!["10.0.0.200".parse().expect("literal")],
                mode: VipMode::ActiveActive,
                candidates: spec_ports,
                damping: Damping::default(),
                release_on_port_loss: false,
                virtual_mac: MacAddr([0x02, 0x5e, 0, 0, 0, 2]),
                owner_liveness: None,
                initial_owners: vec![],
            }],
            Timestamp::ZERO,
        )
        .expect("valid spec");
        let now = Timestamp::from_secs(1);
        for p in &start {
            t.claim(ID, PortId(*p), mac(PortId(*p), 0), now);
        }
        let before = assignment(&t, seed);
        let joined = PortId(extra);
        let out = t.claim(ID, joined, mac(joined, 0), now);
        prop_assert!(matches!(out, Some(ClaimOutcome::Moved(_))));
        let after = assignment(&t, seed);
        let mut taken = 0usize;
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                prop_assert_eq!(*a, Some(Location::Local(joined)), "a flow moved to a port that did not join");
                taken += 1;
            }
        }
        // The newcomer gets roughly its fair share (1/n of the flows, generous bounds).
        let n = start.len() + 1;
        let fair = FLOWS / n;
        prop_assert!(taken > fair / 2 && taken < fair * 3 / 2 + 1, "took {} of {} flows with {} owners", taken, FLOWS, n);
        let m = t.port_down(joined, now);
        prop_assert_eq!(m.len(), 1);
        prop_assert_eq!(assignment(&t, seed), before, "leaving must undo joining exactly");
    }
}

/// "Only a candidate can own" holds for operator commands too (regression: `admin_assign`
/// used to make any port the owner).
#[test]
fn admin_assign_refuses_a_non_candidate() {
    let s = Setup {
        mode: VipMode::ActivePassive,
        damping: Damping::default(),
        release_on_port_loss: false,
        owner_liveness: None,
    };
    let mut t = table(&s);
    let m = t.group_mut(ID).expect("group").admin_assign(
        PortId(4),
        mac(PortId(4), 0),
        Timestamp::from_secs(1),
    );
    assert!(m.is_none(), "a non-candidate was made owner: {m:?}");
    assert!(owners(&t).is_empty());
}

// ---------------------------------------------------------------------------------------
// The cluster side: several switches (one VipTable per host) sharing one group through a
// model of the store (an append-only list of ownership records with revisions, written by
// transactions conditioned on the writer's confirmed revision, delivered to each host in
// order by a watch, sometimes late and twice).
//
// Checked after every operation, on every host:
// - the epoch never goes back, nor the confirmed revision;
// - at most one owner, local or remote, and it is a candidate;
// - a record that is not newer than the confirmed one (a redelivery) changes nothing;
// - a record naming a non-candidate is refused and changes nothing.
// Checked at the end (every record delivered, every pending write retried once): every
// host has the owner of the store's last record, i.e. local claims and remote records
// converge to the store's order.

const HOSTS: u32 = 3;

/// On every host, PortId(1) is its candidate and PortId(2) a non-candidate; host `h`'s
/// candidate is known to the others as remote port `h`.
fn host_table(h: u32, mode: VipMode) -> VipTable {
    let mut t = VipTable::new(
        vec![VipSpec {
            name: "web".into(),
            addresses: vec!["10.0.0.100".parse().expect("literal")],
            mode,
            candidates: vec![PortId(1)],
            damping: Damping {
                max_moves: 0,
                window: Duration::from_secs(1),
            },
            release_on_port_loss: false,
            virtual_mac: MacAddr([0x02, 0x5e, 0, 0, 0, 1]),
            owner_liveness: None,
            initial_owners: vec![],
        }],
        Timestamp::ZERO,
    )
    .expect("valid spec");
    for j in (0..HOSTS).filter(|j| *j != h) {
        t.group_mut(ID)
            .expect("group")
            .add_remote_candidate(rport(j));
    }
    t
}

fn rport(h: u32) -> RemotePort {
    RemotePort {
        host: HostId(h),
        port: RemotePortId(h),
    }
}

fn host_mac(h: u32) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 1, h as u8])
}

/// Host `h`'s view of "the candidate of host `owner`".
fn seen_from(h: u32, owner: u32) -> Location {
    if owner == h {
        Location::Local(PortId(1))
    } else {
        Location::Remote(rport(owner))
    }
}

/// The owners as host numbers, as host `h` sees them, sorted (A/P: at most one).
fn owner_hosts(t: &VipTable, h: u32) -> Vec<u32> {
    let g = t.group(ID).expect("group");
    let local = g.owners().iter().map(|_| h);
    let remote = g.remote_owners().iter().map(|o| o.at.host.0);
    let mut all: Vec<u32> = local.chain(remote).collect();
    all.sort_unstable();
    assert!(
        g.mode() == VipMode::ActiveActive || all.len() <= 1,
        "two owners on host {h}: {all:?}"
    );
    all
}

#[derive(Clone, Debug)]
struct Record {
    stamp: Stamp,
    /// The owners' hosts, sorted (the record is the whole set).
    owners: Vec<u32>,
}

#[derive(Clone, Debug)]
enum ClusterOp {
    /// A GARP from host `h`'s candidate (or, `bad`, from its non-candidate).
    Claim { h: u32, bad: bool },
    /// Host `h`'s agent writes what its switch asks to write (conditioned on the revision).
    Write { h: u32 },
    /// The watch delivers the next record to host `h`.
    Deliver { h: u32 },
    /// The watch delivers an old record again (index modulo the records so far).
    Redeliver { h: u32, k: usize },
    /// A buggy writer's record naming a port that is no candidate.
    Bogus { h: u32 },
    /// Time passes.
    Advance { ms: u64 },
}

fn cluster_op() -> impl Strategy<Value = ClusterOp> {
    let h = 0..HOSTS;
    prop_oneof![
        4 => (h.clone(), prop::bool::weighted(0.1)).prop_map(|(h, bad)| ClusterOp::Claim { h, bad }),
        3 => h.clone().prop_map(|h| ClusterOp::Write { h }),
        5 => h.clone().prop_map(|h| ClusterOp::Deliver { h }),
        1 => (h.clone(), 0usize..64).prop_map(|(h, k)| ClusterOp::Redeliver { h, k }),
        1 => h.prop_map(|h| ClusterOp::Bogus { h }),
        1 => (0u64..2_000).prop_map(|ms| ClusterOp::Advance { ms }),
    ]
}

struct Cluster {
    tables: Vec<VipTable>,
    store: Vec<Record>,
    cursor: Vec<usize>,
    revision: u64,
}

impl Cluster {
    fn apply(&mut self, h: u32, r: Record, now: Timestamp) -> RemoteOutcome {
        let t = &mut self.tables[h as usize];
        // as the agent does: the whole record as a set (`apply_remote_owner_set`)
        let set: Vec<OwnerEntry> = r
            .owners
            .iter()
            .map(|&o| OwnerEntry {
                at: seen_from(h, o),
                mac: host_mac(o),
                mac6: host_mac(o),
            })
            .collect();
        let mut moves = Vec::new();
        t.apply_remote_owner_set(ID, r.stamp, &set, now, &mut moves)
            .expect("group")
    }

    fn write(&mut self, h: u32) -> bool {
        let t = &mut self.tables[h as usize];
        let Some(w) = t.group(ID).expect("group").cluster_write() else {
            return false;
        };
        let current = self.store.last().map(|r| r.stamp.revision);
        if w.base_revision != current {
            return false; // the transaction's condition fails: someone wrote first
        }
        self.revision += 1;
        let mut owners: Vec<u32> = w
            .owners
            .iter()
            .map(|e| match e.at {
                Location::Local(_) => h,
                Location::Remote(r) => r.host.0,
            })
            .collect();
        owners.sort_unstable();
        let stamp = Stamp {
            epoch: w.epoch,
            revision: self.revision,
        };
        self.store.push(Record { stamp, owners });
        let out = t.confirm_write(ID, stamp);
        assert_eq!(out, Some(RemoteOutcome::Applied(None)));
        true
    }

    fn deliver(&mut self, h: u32, now: Timestamp) -> Result<(), TestCaseError> {
        let c = self.cursor[h as usize];
        if let Some(r) = self.store.get(c).cloned() {
            self.cursor[h as usize] += 1;
            let out = self.apply(h, r, now);
            // a host's own write comes back as a duplicate; everything else is newer
            prop_assert!(
                !matches!(out, RemoteOutcome::NotACandidate { .. }),
                "{:?}",
                out
            );
        }
        Ok(())
    }
}

fn run_cluster(ops: &[ClusterOp], mode: VipMode) -> Result<(), TestCaseError> {
    let mut c = Cluster {
        tables: (0..HOSTS).map(|h| host_table(h, mode)).collect(),
        store: Vec::new(),
        cursor: vec![0; HOSTS as usize],
        revision: 0,
    };
    let mut now = Timestamp::from_secs(1);
    let mut claimed: Vec<u32> = Vec::new();
    for op in ops {
        let before: Vec<(u64, Option<Stamp>, Vec<u32>)> = (0..HOSTS)
            .map(|h| {
                let g = c.tables[h as usize].group(ID).expect("group");
                (
                    g.epoch(),
                    g.confirmed(),
                    owner_hosts(&c.tables[h as usize], h),
                )
            })
            .collect();
        match *op {
            ClusterOp::Claim { h, bad } => {
                let port = if bad { PortId(2) } else { PortId(1) };
                let out = c.tables[h as usize]
                    .claim(ID, port, host_mac(h), now)
                    .expect("group");
                if !bad && !claimed.contains(&h) {
                    claimed.push(h);
                }
                if bad {
                    prop_assert_eq!(out, ClaimOutcome::NotCandidate);
                    prop_assert!(c.tables[h as usize]
                        .group(ID)
                        .expect("group")
                        .cluster_write()
                        .is_none_or(|w| w.owners.iter().all(|e| e.at != Location::Local(port))));
                }
            }
            ClusterOp::Write { h } => {
                c.write(h);
            }
            ClusterOp::Deliver { h } => c.deliver(h, now)?,
            ClusterOp::Redeliver { h, k } => {
                let seen = c.cursor[h as usize];
                if seen > 0 {
                    let r = c.store[k % seen].clone();
                    let out = c.apply(h, r, now);
                    prop_assert!(matches!(out, RemoteOutcome::Stale { .. }), "{:?}", out);
                }
            }
            ClusterOp::Bogus { h } => {
                let t = &mut c.tables[h as usize];
                let stamp = Stamp {
                    epoch: u64::MAX / 2,
                    revision: u64::MAX / 2,
                };
                for at in [
                    Location::Local(PortId(2)),
                    Location::Remote(RemotePort {
                        host: HostId(9),
                        port: RemotePortId(9),
                    }),
                ] {
                    let out = t.apply_remote_move(ID, stamp, at, host_mac(9), host_mac(9), now);
                    prop_assert_eq!(out, Some(RemoteOutcome::NotACandidate { at }));
                }
            }
            ClusterOp::Advance { ms } => now = now + Duration::from_millis(ms),
        }
        for h in 0..HOSTS {
            let t = &c.tables[h as usize];
            let g = t.group(ID).expect("group");
            let (e0, s0, ref o0) = before[h as usize];
            prop_assert!(g.epoch() >= e0, "host {} epoch went back", h);
            prop_assert!(
                g.confirmed().map(|s| s.revision) >= s0.map(|s| s.revision),
                "host {} confirmed revision went back",
                h
            );
            if matches!(op, ClusterOp::Redeliver { .. } | ClusterOp::Bogus { .. }) {
                prop_assert_eq!(g.confirmed(), s0);
                prop_assert_eq!(g.epoch(), e0);
                prop_assert_eq!(&owner_hosts(t, h), o0);
            }
            for o in g.owners() {
                prop_assert_eq!(o.port, PortId(1));
            }
        }
    }
    // Drain: deliver everything, retry every pending write once, deliver again.
    for _ in 0..2 {
        for h in 0..HOSTS {
            while c.cursor[h as usize] < c.store.len() {
                c.deliver(h, now)?;
            }
        }
        for h in 0..HOSTS {
            if c.write(h) {
                for k in 0..HOSTS {
                    while c.cursor[k as usize] < c.store.len() {
                        c.deliver(k, now)?;
                    }
                }
            }
        }
    }
    let last = c.store.last().map(|r| r.owners.clone()).unwrap_or_default();
    for h in 0..HOSTS {
        let t = &c.tables[h as usize];
        prop_assert!(t.group(ID).expect("group").cluster_write().is_none());
        if !c.store.is_empty() {
            prop_assert_eq!(
                &owner_hosts(t, h),
                &last,
                "host {} disagrees with the store's last record",
                h
            );
        }
        if mode == VipMode::ActiveActive {
            for k in &claimed {
                prop_assert!(last.contains(k), "host {}'s claim was lost: {:?}", k, last);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn cluster_converges_to_the_store_order(ops in prop::collection::vec(cluster_op(), 1..80)) {
        run_cluster(&ops, VipMode::ActivePassive)?;
    }

    /// The same for an active-active group, whose records are whole owner sets: every host
    /// ends holding the last record's set, and no good claim is lost (nothing here makes an
    /// owner leave, so every host whose candidate claimed is in it).
    #[test]
    fn active_active_cluster_converges_and_keeps_every_claim(ops in prop::collection::vec(cluster_op(), 1..80)) {
        run_cluster(&ops, VipMode::ActiveActive)?;
    }

    /// A host vanishing drops exactly its locations, on a group with candidates and owners
    /// spread over several hosts.
    #[test]
    fn host_gone_drops_exactly_that_host(
        hosts in prop::collection::vec(0u32..4, 1..8),
        owner in 0usize..8,
        gone in 0u32..4,
    ) {
        let mut t = host_table(0, VipMode::ActivePassive);
        let g = t.group_mut(ID).expect("group");
        for (i, h) in hosts.iter().enumerate() {
            g.add_remote_candidate(RemotePort { host: HostId(*h + 10), port: RemotePortId(i as u32 + 10) });
        }
        let cands: Vec<RemotePort> = g.remote_candidates().to_vec();
        let o = cands[owner % cands.len()];
        let stamp = Stamp { epoch: 1, revision: 1 };
        let applied = g.apply_remote_move(stamp, Location::Remote(o), host_mac(1), host_mac(1), Timestamp::ZERO);
        prop_assert!(matches!(applied, RemoteOutcome::Applied(Some(_))));
        let epoch = g.epoch();
        let gone = HostId(gone + 10);
        let moves = t.host_gone(gone, Timestamp::from_secs(1));
        let g = t.group(ID).expect("group");
        let kept: Vec<RemotePort> = cands.iter().copied().filter(|c| c.host != gone).collect();
        prop_assert_eq!(g.remote_candidates(), kept.as_slice());
        prop_assert_eq!(g.candidates(), &[PortId(1)]);
        prop_assert_eq!(moves.len(), usize::from(o.host == gone));
        prop_assert_eq!(g.has_owner(), o.host != gone);
        prop_assert_eq!(g.epoch(), epoch + moves.len() as u64);
    }
}
