use std::time::Duration;

use super::*;
use crate::policy::PortId;
use crate::vip::{ClaimOutcome, Damping, VipSpec};

fn mac(n: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 0, n])
}

fn t(s: u64) -> Timestamp {
    Timestamp::from_secs(s)
}

const HB: HostId = HostId(2);
const HC: HostId = HostId(3);

fn rp(host: HostId, port: u32) -> RemotePort {
    RemotePort {
        host,
        port: RemotePortId(port),
    }
}

fn st(epoch: u64, revision: u64) -> Stamp {
    Stamp { epoch, revision }
}

/// Local candidates 1 and 2; remote candidates 10 (host B) and 11 (host C).
fn group(mode: VipMode) -> VipGroup {
    let mut g = VipGroup::new(
        VipSpec {
            name: "web".into(),
            addresses: vec!["10.0.0.100".parse().unwrap(), "fd00::100".parse().unwrap()],
            mode,
            candidates: vec![PortId(1), PortId(2)],
            damping: Damping {
                max_moves: 2,
                window: Duration::from_secs(10),
            },
            release_on_port_loss: false,
            virtual_mac: MacAddr([2, 0xaa, 0, 0, 0, 1]),
            owner_liveness: None,
            initial_owners: vec![],
        },
        t(0),
    );
    assert!(g.add_remote_candidate(rp(HB, 10)));
    assert!(g.add_remote_candidate(rp(HC, 11)));
    g
}

#[test]
fn a_local_claim_is_applied_at_once_and_asks_to_be_written() {
    let mut g = group(VipMode::ActivePassive);
    assert!(g.cluster_write().is_none());
    let ClaimOutcome::Moved(m) = g.claim(PortId(1), mac(1), t(1)) else {
        panic!("a local candidate's claim moves")
    };
    let w = g.cluster_write().expect("a local move is written");
    assert_eq!(w.epoch, m.epoch);
    assert_eq!(w.base_revision, None);
    assert_eq!(
        w.owners,
        vec![OwnerEntry {
            at: Location::Local(PortId(1)),
            mac: mac(1),
            mac6: mac(1)
        }]
    );
    assert_eq!(
        g.confirm_write(st(w.epoch, 7)),
        RemoteOutcome::Applied(None)
    );
    assert!(g.cluster_write().is_none());
    assert_eq!(g.confirmed(), Some(st(w.epoch, 7)));
    // the watch delivers our own write: a duplicate, harmless
    assert!(matches!(
        g.apply_remote_move(
            st(w.epoch, 7),
            Location::Local(PortId(1)),
            mac(1),
            mac(1),
            t(1)
        ),
        RemoteOutcome::Stale {
            reason: StaleReason::Duplicate,
            ..
        }
    ));
    assert!(g.is_owner(PortId(1)));
}

#[test]
fn the_echo_before_the_confirmation_confirms() {
    let mut g = group(VipMode::ActivePassive);
    g.claim(PortId(1), mac(1), t(1));
    let e = g.epoch();
    assert_eq!(
        g.apply_remote_move(st(e, 7), Location::Local(PortId(1)), mac(1), mac(1), t(1)),
        RemoteOutcome::Applied(None)
    );
    assert!(g.cluster_write().is_none());
    assert_eq!(g.epoch(), e);
}

#[test]
fn a_remote_move_replaces_a_local_owner_and_steers_to_the_host() {
    let mut g = group(VipMode::ActivePassive);
    g.claim(PortId(1), mac(1), t(1));
    g.confirm_write(st(g.epoch(), 5));
    let before = g.epoch();
    let RemoteOutcome::Applied(Some(m)) = g.apply_remote_move(
        st(before + 1, 6),
        Location::Remote(rp(HB, 10)),
        mac(10),
        mac(10),
        t(2),
    ) else {
        panic!("a newer record from a candidate applies")
    };
    assert_eq!((m.from, m.to), (Some(PortId(1)), None));
    assert_eq!((m.from_remote, m.to_remote), (None, Some(rp(HB, 10))));
    assert_eq!(m.reason, MoveReason::Remote);
    assert!(g.epoch() > before);
    assert!(g.owners().is_empty() && g.has_owner());
    assert!(!g.is_owner(PortId(1)));
    assert_eq!(g.answer_mac(), Some(mac(10)));
    match g.select(42) {
        Some(Selected::Remote(o)) => assert_eq!((o.at, o.mac), (rp(HB, 10), mac(10))),
        other => panic!("{other:?}"),
    }
    assert!(g.cluster_write().is_none(), "a record is not written back");
}

#[test]
fn stale_and_duplicate_records_change_nothing() {
    let mut g = group(VipMode::ActivePassive);
    g.apply_remote_move(
        st(3, 10),
        Location::Remote(rp(HB, 10)),
        mac(10),
        mac(10),
        t(1),
    );
    let (e, owners) = (g.epoch(), g.remote_owners().to_vec());
    for (s, r) in [
        (st(3, 10), StaleReason::Duplicate),
        (st(2, 9), StaleReason::Older),
        (st(9, 9), StaleReason::Older),
        (st(3, 11), StaleReason::EpochNotAdvanced),
    ] {
        assert_eq!(
            g.apply_remote_move(s, Location::Remote(rp(HC, 11)), mac(11), mac(11), t(2)),
            RemoteOutcome::Stale {
                have: st(3, 10),
                got: s,
                reason: r
            }
        );
        assert_eq!(
            g.apply_remote_release(s, Location::Remote(rp(HB, 10)), t(2)),
            RemoteOutcome::Stale {
                have: st(3, 10),
                got: s,
                reason: r
            }
        );
    }
    assert_eq!((g.epoch(), g.remote_owners()), (e, owners.as_slice()));
}

#[test]
fn a_non_candidate_is_refused_everywhere() {
    let mut g = group(VipMode::ActivePassive);
    for at in [
        Location::Remote(rp(HB, 99)),
        // the right port on the wrong host
        Location::Remote(rp(HC, 10)),
        Location::Local(PortId(9)),
    ] {
        assert_eq!(
            g.apply_remote_move(st(1, 1), at, mac(9), mac(9), t(1)),
            RemoteOutcome::NotACandidate { at }
        );
    }
    assert!(!g.has_owner());
    assert_eq!(g.confirmed(), None, "a refused record confirms nothing");
}

#[test]
fn host_gone_drops_exactly_that_hosts_locations() {
    let mut g = group(VipMode::ActivePassive);
    g.apply_remote_move(
        st(1, 1),
        Location::Remote(rp(HB, 10)),
        mac(10),
        mac(10),
        t(1),
    );
    let mut out = vec![];
    g.host_gone(HC, t(2), &mut out);
    assert!(out.is_empty());
    assert_eq!(g.remote_candidates(), &[rp(HB, 10)]);
    assert!(g.has_owner());
    let e = g.epoch();
    g.host_gone(HB, t(3), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].from_remote, out[0].reason, out[0].epoch),
        (Some(rp(HB, 10)), MoveReason::HostGone, e + 1)
    );
    assert!(!g.has_owner() && g.remote_candidates().is_empty());
    assert_eq!(g.candidates(), &[PortId(1), PortId(2)]);
    assert!(
        g.cluster_write().is_none(),
        "every host sees the lease expire"
    );
    // the standby's claim is a normal local claim again
    assert!(matches!(
        g.claim(PortId(2), mac(2), t(4)),
        ClaimOutcome::Moved(_)
    ));
    assert_eq!(g.cluster_write().map(|w| w.base_revision), Some(Some(1)));
}

#[test]
fn a_race_is_decided_by_the_store() {
    // hosts A (this one) and B both saw record (5, 100); both claim
    let mut g = group(VipMode::ActivePassive);
    g.apply_remote_move(
        st(5, 100),
        Location::Remote(rp(HC, 11)),
        mac(11),
        mac(11),
        t(1),
    );
    assert!(matches!(
        g.claim(PortId(1), mac(1), t(2)),
        ClaimOutcome::Moved(_)
    ));
    let w = g.cluster_write().expect("to write");
    assert_eq!(w.base_revision, Some(100));
    // B's write won: revision 101. Ours (conditioned on 100) fails; B's record arrives.
    let RemoteOutcome::Applied(Some(m)) = g.apply_remote_move(
        st(6, 101),
        Location::Remote(rp(HB, 10)),
        mac(10),
        mac(10),
        t(2),
    ) else {
        panic!("the winner's record applies")
    };
    assert_eq!(m.from, Some(PortId(1)));
    assert!(g.cluster_write().is_none(), "the loser converges");
    assert!(m.epoch >= w.epoch, "the epoch never goes back");
}

#[test]
fn remote_moves_count_in_the_damping_window() {
    let mut g = group(VipMode::ActivePassive);
    g.apply_remote_move(
        st(1, 1),
        Location::Remote(rp(HB, 10)),
        mac(10),
        mac(10),
        t(1),
    );
    g.apply_remote_move(
        st(2, 2),
        Location::Remote(rp(HC, 11)),
        mac(11),
        mac(11),
        t(2),
    );
    assert_eq!(
        g.claim(PortId(1), mac(1), t(3)),
        ClaimOutcome::Pending { due: t(11) },
        "a pair flapping across hosts is damped"
    );
    // a newer record withdraws the held claim
    g.apply_remote_move(
        st(3, 3),
        Location::Remote(rp(HB, 10)),
        mac(10),
        mac(10),
        t(4),
    );
    assert!(g.pending().is_none());
}

#[test]
fn a_remote_release_leaves_the_group_without_owner() {
    let mut g = group(VipMode::ActivePassive);
    g.apply_remote_move(
        st(1, 1),
        Location::Remote(rp(HB, 10)),
        mac(10),
        mac(10),
        t(1),
    );
    // a release of a port that does not own it advances the stamp only
    assert_eq!(
        g.apply_remote_release(st(2, 2), Location::Remote(rp(HC, 11)), t(2)),
        RemoteOutcome::Applied(None)
    );
    let RemoteOutcome::Applied(Some(m)) =
        g.apply_remote_release(st(3, 3), Location::Remote(rp(HB, 10)), t(3))
    else {
        panic!()
    };
    assert_eq!((m.from_remote, m.to_remote), (Some(rp(HB, 10)), None));
    assert!(!g.has_owner());
    assert_eq!(g.answer_mac(), None);
}

#[test]
fn active_active_mixes_local_and_remote_owners() {
    let mut g = group(VipMode::ActiveActive);
    g.claim(PortId(1), mac(1), t(1));
    g.apply_remote_move(
        st(5, 5),
        Location::Remote(rp(HB, 10)),
        mac(10),
        mac(10),
        t(1),
    );
    assert!(g.is_owner(PortId(1)));
    assert_eq!(g.remote_owners().len(), 1);
    assert_eq!(g.answer_mac(), Some(MacAddr([2, 0xaa, 0, 0, 0, 1])));
    let picks: Vec<bool> = (0..1000u64)
        .map(|h| matches!(g.select(h), Some(Selected::Remote(_))))
        .collect();
    assert!(picks.iter().any(|r| *r) && picks.iter().any(|r| !*r));
    // the local join is still to be written, on the new base
    assert_eq!(g.cluster_write().map(|w| w.base_revision), Some(Some(5)));
    // a third owner takes flows from the others only
    g.apply_remote_move(
        st(6, 6),
        Location::Remote(rp(HC, 11)),
        mac(11),
        mac(11),
        t(2),
    );
    for (h, was_remote) in picks.iter().enumerate() {
        match g.select(h as u64) {
            Some(Selected::Remote(o)) if o.at == rp(HC, 11) => {}
            Some(Selected::Remote(o)) => assert!(*was_remote && o.at == rp(HB, 10)),
            Some(Selected::Local(_)) => assert!(!*was_remote),
            None => panic!(),
        }
    }
    let mut out = vec![];
    g.host_gone(HB, t(3), &mut out);
    g.host_gone(HC, t(3), &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(g.owners().len(), 1);
    assert!(g.remote_owners().is_empty());
}

#[test]
fn a_migrating_port_keeps_its_ownership() {
    let mut g = group(VipMode::ActivePassive);
    g.apply_remote_move(
        st(1, 1),
        Location::Remote(rp(HB, 10)),
        mac(10),
        mac(10),
        t(1),
    );
    let e = g.epoch();
    assert!(g.add_remote_candidate(rp(HC, 10)));
    assert_eq!(g.remote_owners()[0].at, rp(HC, 10));
    assert_eq!(g.epoch(), e, "a migration is no move");
    let mut out = vec![];
    g.host_gone(HB, t(2), &mut out);
    assert!(
        out.is_empty() && g.has_owner(),
        "the old host's lease is not the port's"
    );
}

#[test]
fn removing_a_remote_candidate_drops_its_ownership() {
    let mut g = group(VipMode::ActivePassive);
    g.apply_remote_move(
        st(1, 1),
        Location::Remote(rp(HB, 10)),
        mac(10),
        mac(10),
        t(1),
    );
    let m = g
        .remove_remote_candidate(RemotePortId(10), t(2))
        .expect("moved");
    assert_eq!(m.from_remote, Some(rp(HB, 10)));
    assert!(!g.has_owner());
    assert!(g.remove_remote_candidate(RemotePortId(11), t(3)).is_none());
}

#[test]
fn the_confirmed_record_again_reinstalls_an_owner_whose_host_came_back() {
    let mut g = group(VipMode::ActivePassive);
    let b = Location::Remote(rp(HB, 10));
    assert!(matches!(
        g.apply_remote_move(st(1, 5), b, mac(10), mac(10), t(1)),
        RemoteOutcome::Applied(Some(_))
    ));
    let mut out = vec![];
    g.host_gone(HB, t(2), &mut out);
    assert!(!g.has_owner(), "the owner went with its host");
    // host B is back (its lease renewed, its port record again): the record still stands
    assert!(g.add_remote_candidate(rp(HB, 10)));
    assert!(matches!(
        g.apply_remote_move(st(1, 5), b, mac(10), mac(10), t(3)),
        RemoteOutcome::Applied(Some(_))
    ));
    assert_eq!(g.remote_owners()[0].at, rp(HB, 10));
    assert!(
        g.cluster_write().is_none(),
        "a record applied is not written back"
    );
    // given once more, it is the duplicate it always was
    assert!(matches!(
        g.apply_remote_move(st(1, 5), b, mac(10), mac(10), t(4)),
        RemoteOutcome::Stale {
            reason: StaleReason::Duplicate,
            ..
        }
    ));
    assert_eq!(g.remote_owners().len(), 1);
}

#[test]
fn the_confirmed_record_again_never_undoes_an_unwritten_local_claim() {
    let mut g = group(VipMode::ActivePassive);
    let b = Location::Remote(rp(HB, 10));
    g.apply_remote_move(st(1, 5), b, mac(10), mac(10), t(1));
    let mut out = vec![];
    g.host_gone(HB, t(2), &mut out);
    assert!(matches!(
        g.claim(PortId(1), mac(1), t(3)),
        ClaimOutcome::Moved(_)
    ));
    assert!(g.add_remote_candidate(rp(HB, 10)));
    assert!(matches!(
        g.apply_remote_move(st(1, 5), b, mac(10), mac(10), t(4)),
        RemoteOutcome::Stale {
            reason: StaleReason::Duplicate,
            ..
        }
    ));
    assert_eq!(g.owners()[0].port, PortId(1), "the local claim stands");
    assert!(g.cluster_write().is_some(), "and is still to be written");
}

fn entry(at: Location, m: u8) -> OwnerEntry {
    OwnerEntry {
        at,
        mac: mac(m),
        mac6: mac(m),
    }
}

fn owners_at(g: &VipGroup) -> Vec<Location> {
    g.entries().iter().map(|e| e.at).collect()
}

#[test]
fn an_active_active_record_is_the_whole_owner_set() {
    let mut g = group(VipMode::ActiveActive);
    let b = Location::Remote(rp(HB, 10));
    let c = Location::Remote(rp(HC, 11));
    let mut moves = Vec::new();
    // both remote owners of one record are installed (not only the first)
    let r = g.apply_remote_owner_set(st(1, 5), &[entry(b, 10), entry(c, 11)], t(1), &mut moves);
    assert!(matches!(r, RemoteOutcome::Applied(Some(_))), "{r:?}");
    assert_eq!(moves.len(), 2);
    assert_eq!(owners_at(&g), vec![b, c]);
    assert!(moves.iter().all(|m| m.epoch == g.epoch()));
    // the same record again: nothing
    moves.clear();
    let r = g.apply_remote_owner_set(st(1, 5), &[entry(b, 10), entry(c, 11)], t(2), &mut moves);
    assert!(matches!(r, RemoteOutcome::Stale { .. }), "{r:?}");
    assert!(moves.is_empty());
    // a newer record without host C's owner: it leaves; a new MAC on B is a MAC change
    let r = g.apply_remote_owner_set(st(2, 6), &[entry(b, 20)], t(3), &mut moves);
    assert!(matches!(r, RemoteOutcome::Applied(Some(_))), "{r:?}");
    assert_eq!(owners_at(&g), vec![b]);
    assert_eq!(g.remote_owners()[0].mac, mac(20));
    assert_eq!(moves.len(), 2);
    assert!(moves
        .iter()
        .any(|m| m.from_remote == Some(rp(HC, 11)) && m.to_location().is_none()));
    assert!(moves.iter().any(|m| m.reason == MoveReason::MacChange));
    // a record naming this switch's port (a resync, or our write seen first through the
    // watch) installs it as a local owner; an empty record leaves no owner
    moves.clear();
    let l1 = Location::Local(PortId(1));
    g.apply_remote_owner_set(st(3, 7), &[entry(l1, 1), entry(b, 20)], t(4), &mut moves);
    assert_eq!(owners_at(&g), vec![l1, b]);
    g.apply_remote_owner_set(st(4, 8), &[], t(5), &mut moves);
    assert!(!g.has_owner());
    assert!(
        g.cluster_write().is_none(),
        "the store's record is nothing to write"
    );
}

#[test]
fn an_active_active_record_keeps_an_unwritten_local_join() {
    // host A's VM joins while host B's VM joins too; B's record wins the race and does
    // not name A's VM: A keeps it, stays dirty, and its next write carries both
    let mut g = group(VipMode::ActiveActive);
    let b = Location::Remote(rp(HB, 10));
    let l1 = Location::Local(PortId(1));
    let mut moves = Vec::new();
    g.apply_remote_owner_set(st(1, 5), &[], t(0), &mut moves);
    assert!(matches!(
        g.claim(PortId(1), mac(1), t(1)),
        ClaimOutcome::Moved(_)
    ));
    assert!(g.is_dirty());
    let r = g.apply_remote_owner_set(st(2, 6), &[entry(b, 10)], t(2), &mut moves);
    assert!(matches!(r, RemoteOutcome::Applied(Some(_))), "{r:?}");
    assert_eq!(owners_at(&g), vec![l1, b]);
    let w = g
        .cluster_write()
        .expect("the local join is still to be written");
    assert_eq!(w.base_revision, Some(6));
    assert_eq!(w.owners.len(), 2);
    // once written and seen back, the group is clean
    assert_eq!(
        g.confirm_write(st(w.epoch, 9)),
        RemoteOutcome::Applied(None)
    );
    assert!(g.cluster_write().is_none());
}

#[test]
fn an_active_active_record_skips_non_candidates_and_refuses_a_set_of_them() {
    let mut g = group(VipMode::ActiveActive);
    let b = Location::Remote(rp(HB, 10));
    let stranger = Location::Remote(rp(HB, 99));
    let mut moves = Vec::new();
    let r = g.apply_remote_owner_set(st(1, 5), &[entry(stranger, 9)], t(1), &mut moves);
    assert_eq!(r, RemoteOutcome::NotACandidate { at: stranger });
    assert!(!g.has_owner());
    g.apply_remote_owner_set(
        st(2, 6),
        &[entry(stranger, 9), entry(b, 10)],
        t(2),
        &mut moves,
    );
    assert_eq!(owners_at(&g), vec![b]);
}

#[test]
fn an_active_active_record_again_reinstalls_owners_whose_host_came_back() {
    let mut g = group(VipMode::ActiveActive);
    let b = Location::Remote(rp(HB, 10));
    let c = Location::Remote(rp(HC, 11));
    let rec = [entry(b, 10), entry(c, 11)];
    let mut moves = Vec::new();
    g.apply_remote_owner_set(st(1, 5), &rec, t(1), &mut moves);
    let mut gone = Vec::new();
    g.host_gone(HC, t(2), &mut gone);
    assert_eq!(owners_at(&g), vec![b]);
    // host C is back with its port; the record still stands and is given again
    assert!(g.add_remote_candidate(rp(HC, 11)));
    moves.clear();
    let r = g.apply_remote_owner_set(st(1, 5), &rec, t(3), &mut moves);
    assert!(matches!(r, RemoteOutcome::Applied(Some(_))), "{r:?}");
    assert_eq!(owners_at(&g), vec![b, c]);
    assert_eq!(moves.len(), 1);
}

#[test]
fn an_active_passive_record_set_is_a_move_or_a_release() {
    let mut g = group(VipMode::ActivePassive);
    let b = Location::Remote(rp(HB, 10));
    let mut moves = Vec::new();
    g.apply_remote_owner_set(st(1, 5), &[entry(b, 10)], t(1), &mut moves);
    assert_eq!(owners_at(&g), vec![b]);
    g.apply_remote_owner_set(st(2, 6), &[], t(2), &mut moves);
    assert!(!g.has_owner());
    assert_eq!(moves.len(), 2);
}

#[test]
fn an_empty_active_passive_record_never_drops_an_unwritten_local_claim() {
    // host B's owner released (its record is empty) while our standby's claim, based on
    // the record before, is not yet written: the claim stands and is still to be written
    let mut g = group(VipMode::ActivePassive);
    let b = Location::Remote(rp(HB, 10));
    let mut moves = Vec::new();
    g.apply_remote_owner_set(st(1, 5), &[entry(b, 10)], t(1), &mut moves);
    assert!(matches!(
        g.claim(PortId(1), mac(1), t(2)),
        ClaimOutcome::Moved(_)
    ));
    let r = g.apply_remote_owner_set(st(2, 6), &[], t(3), &mut moves);
    assert_eq!(r, RemoteOutcome::Applied(None));
    assert_eq!(owners_at(&g), vec![Location::Local(PortId(1))]);
    let w = g.cluster_write().expect("the claim is still to be written");
    assert_eq!(w.base_revision, Some(6));
}
