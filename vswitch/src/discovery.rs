//! Active owner discovery: the switch asks a VIP group's candidates who holds its addresses.
//!
//! A restored owner may be stale (the VIP moved while the switch was down, and keepalived
//! does not announce it again in steady state), and a group may have no owner at all. So the
//! switch asks, instead of waiting for the next gratuitous ARP:
//! - **when**: at daemon start (every group), when a reload adds a group, when an
//!   active-passive group is left without an owner, and when a candidate's port comes up;
//! - **the question**: per IPv4 address an ARP probe (RFC 5227 form: sender IP 0.0.0.0, so
//!   it pollutes no ARP cache; sender MAC [`SWITCH_MAC`]), per IPv6 address a neighbour
//!   solicitation from the switch's link-local address (EUI-64 of [`SWITCH_MAC`]) to the
//!   address's solicited-node group. They go only to the up candidate ports of the group;
//! - **the answer**: the candidate that holds the address answers to [`SWITCH_MAC`] (an ARP
//!   reply, a solicited NA). The pipeline hands it to the control state as
//!   [`crate::pipeline::VipSignal::ProbeAnswer`]; it is applied at once
//!   ([`vip_table::VipGroup::discovered`], move reason `discovery`, no damping: an answer is
//!   no flap);
//! - **rounds and back-off**: a round sends the probes; the next round is due after
//!   [`FIRST_RETRY`], doubling up to [`MAX_RETRY`]. A group is settled by a round in which
//!   exactly one candidate answered (active-active: at least one). A group with an owner is
//!   also settled after [`ROUNDS_WITH_OWNER`] rounds nobody answered (the owner stands: a VM
//!   may not answer probes, e.g. `arp_ignore`); a group without one keeps asking;
//! - **split brain** (two candidates of an active-passive group answer in the same round):
//!   the owner from before that round keeps the group if it answered, otherwise the first to
//!   answer does. It is logged (`vip_split_brain`), and while it lasts answers move nothing;
//!   the rounds go on (at most [`SPLIT_MAX_RETRY`] apart) until one has a single answer,
//!   which then owns the group (keepalived
//!   resolves its own split brain within an advert interval: the lower priority steps down
//!   and removes the address);
//! - a claim (GARP / unsolicited NA) from a candidate ends the discovery of its group: it is
//!   the freshest truth there is.
//!
//! Pure: time is an argument; the caller sends the frames it returns.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use vip_table::{MacAddr, PortId, Timestamp, VipId};

use crate::frames::{self, SmallFrame};

/// The MAC the switch speaks from (probes) and that answers are addressed to. Locally
/// administered, unicast; no port may use it (the config validator refuses it).
pub const SWITCH_MAC: MacAddr = MacAddr([0x02, 0x76, 0x73, 0x77, 0x00, 0x01]);

/// The delay before the second round.
pub const FIRST_RETRY: Duration = Duration::from_millis(100);
/// The longest delay between rounds.
pub const MAX_RETRY: Duration = Duration::from_secs(30);
/// The longest delay between rounds while a split brain lasts: keepalived resolves its
/// own within an advert interval or so, and until the next round the group stays with the
/// holder the split-brain rule chose, which may be the one keepalived demotes.
pub const SPLIT_MAX_RETRY: Duration = Duration::from_secs(1);
/// Unanswered rounds after which a group that has an owner keeps it and stops asking.
pub const ROUNDS_WITH_OWNER: u32 = 4;

/// The switch's IPv6 link-local address (modified EUI-64 of [`SWITCH_MAC`]).
pub fn switch_link_local() -> Ipv6Addr {
    let m = SWITCH_MAC.0;
    Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([m[0] ^ 0x02, m[1]]),
        u16::from_be_bytes([m[2], 0xff]),
        u16::from_be_bytes([0xfe, m[3]]),
        u16::from_be_bytes([m[4], m[5]]),
    )
}

/// The question for `addr`: an ARP probe or a neighbour solicitation.
pub fn probe_frame(addr: IpAddr) -> SmallFrame {
    let mut f = SmallFrame::default();
    match addr {
        IpAddr::V4(a) => frames::arp(
            &mut f,
            MacAddr::BROADCAST,
            SWITCH_MAC,
            1,
            SWITCH_MAC,
            std::net::Ipv4Addr::UNSPECIFIED,
            MacAddr([0; 6]),
            a,
        ),
        IpAddr::V6(a) => {
            frames::solicitation(&mut f, SWITCH_MAC, switch_link_local(), a, Some(SWITCH_MAC))
        }
    }
    f
}

/// Why a group is being asked (for the log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The daemon started.
    Start,
    /// A reload added the group.
    Reload,
    /// The group was left without an owner.
    NoOwner,
    /// A candidate's port came up.
    PortUp,
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Trigger::Start => "start",
            Trigger::Reload => "reload",
            Trigger::NoOwner => "no-owner",
            Trigger::PortUp => "port-up",
        })
    }
}

#[derive(Clone, Debug)]
struct Probe {
    /// When the next round is due.
    next: Timestamp,
    /// Rounds sent so far.
    rounds: u32,
    /// Delay after the next round.
    interval: Duration,
    /// Who answered in the current round (with the MAC of its first answer), in order.
    answered: Vec<(PortId, MacAddr)>,
    /// The owner (A/P) when the current round was sent.
    owner_at_round: Option<PortId>,
    /// Two candidates answered in one round and no round since had a single answer.
    split: bool,
}

/// What a due round asks of the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoundAction {
    /// Send the probes of a new round.
    Probe,
    /// The group is settled: stop.
    Settled,
}

/// What an answer means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerAction {
    /// Nobody asked (no discovery running for the group): ignore it.
    Ignore,
    /// Apply it: the answerer holds the address.
    Apply,
    /// Split brain began with this answer: log it; move the group back to `keep` if set.
    SplitBrain {
        /// The other answerer(s)' first.
        first: PortId,
        /// The owner from before the round, if it answered: it keeps the group.
        keep: Option<PortId>,
    },
    /// Split brain goes on: record only.
    Hold,
}

/// Discovery state of every group being asked.
#[derive(Clone, Debug, Default)]
pub struct Discovery {
    probes: HashMap<VipId, Probe>,
}

impl Discovery {
    /// Ask the candidates of `id` (again) from `now` on. A discovery already running is
    /// restarted from its first round.
    pub fn start(&mut self, id: VipId, now: Timestamp) {
        let split = self.probes.get(&id).is_some_and(|p| p.split);
        self.probes.insert(
            id,
            Probe {
                next: now,
                rounds: 0,
                interval: FIRST_RETRY,
                answered: Vec::new(),
                owner_at_round: None,
                split,
            },
        );
    }

    /// Stop asking about `id` (a claim settled it, or the group is gone).
    pub fn stop(&mut self, id: VipId) {
        self.probes.remove(&id);
    }

    /// Is `id` being asked about?
    pub fn is_active(&self, id: VipId) -> bool {
        self.probes.contains_key(&id)
    }

    /// Groups being asked about.
    pub fn active(&self) -> impl Iterator<Item = VipId> + '_ {
        self.probes.keys().copied()
    }

    /// Forget everything (a reload renumbers the groups).
    pub fn clear(&mut self) {
        self.probes.clear();
    }

    /// The earliest due round.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.probes.values().map(|p| p.next).min()
    }

    /// Groups whose round is due at `now`, sorted.
    pub fn due(&self, now: Timestamp) -> Vec<VipId> {
        let mut v: Vec<VipId> = self
            .probes
            .iter()
            .filter(|(_, p)| p.next <= now)
            .map(|(id, _)| *id)
            .collect();
        v.sort();
        v
    }

    /// A round of `id` is due: judge the round that ends and say whether to send another.
    /// `owner`: the group's (first) owner now; `active_active`: the group's mode.
    pub fn round(
        &mut self,
        id: VipId,
        owner: Option<PortId>,
        active_active: bool,
        now: Timestamp,
    ) -> RoundAction {
        let Some(p) = self.probes.get_mut(&id) else {
            return RoundAction::Settled;
        };
        if p.rounds > 0 {
            let n = p.answered.len();
            let settled = if active_active {
                n >= 1
            } else {
                n == 1 || (n == 0 && owner.is_some() && !p.split && p.rounds >= ROUNDS_WITH_OWNER)
            };
            if n == 1 {
                p.split = false;
            }
            if settled {
                self.probes.remove(&id);
                return RoundAction::Settled;
            }
        }
        p.rounds += 1;
        p.answered.clear();
        p.owner_at_round = owner;
        p.next = now + p.interval;
        let cap = if p.split { SPLIT_MAX_RETRY } else { MAX_RETRY };
        p.interval = (p.interval * 2).min(cap);
        RoundAction::Probe
    }

    /// `port` answered the question about `id`.
    pub fn answer(
        &mut self,
        id: VipId,
        port: PortId,
        mac: MacAddr,
        active_active: bool,
        now: Timestamp,
    ) -> AnswerAction {
        let Some(p) = self.probes.get_mut(&id) else {
            return AnswerAction::Ignore;
        };
        if p.answered.iter().any(|(q, _)| *q == port) {
            // another address of the same group, or a duplicate: same answerer
            return if p.split {
                AnswerAction::Hold
            } else {
                AnswerAction::Apply
            };
        }
        p.answered.push((port, mac));
        if active_active {
            return AnswerAction::Apply;
        }
        if p.answered.len() == 2 && !p.split {
            p.split = true;
            // ask again soon: the split brain may end any moment
            p.interval = FIRST_RETRY;
            p.next = p.next.min(now + FIRST_RETRY);
            let keep = p
                .owner_at_round
                .filter(|o| p.answered.iter().any(|(q, _)| q == o));
            return AnswerAction::SplitBrain {
                first: p.answered[0].0,
                keep,
            };
        }
        if p.split || p.answered.len() > 1 {
            return AnswerAction::Hold;
        }
        AnswerAction::Apply
    }

    /// The single answerer of the round that just ended during a split brain, if any
    /// (the caller applies it before calling [`Discovery::round`]).
    pub fn split_resolved_by(&self, id: VipId) -> Option<(PortId, MacAddr)> {
        let p = self.probes.get(&id)?;
        match p.answered.as_slice() {
            [only] if p.split && p.rounds > 0 => Some(*only),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: VipId = VipId(0);
    const M: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

    fn ms(n: u64) -> Timestamp {
        Timestamp::from_millis(n)
    }

    #[test]
    fn probe_frames_ask_without_polluting_caches() {
        let f = probe_frame("10.0.0.100".parse().unwrap());
        let b = f.as_bytes();
        assert_eq!(&b[0..6], &[0xff; 6], "broadcast");
        assert_eq!(&b[6..12], &SWITCH_MAC.0);
        assert_eq!(&b[12..14], &[0x08, 0x06]);
        assert_eq!(&b[20..22], &[0, 1], "request");
        assert_eq!(&b[22..28], &SWITCH_MAC.0, "sha");
        assert_eq!(&b[28..32], &[0, 0, 0, 0], "spa 0.0.0.0: a probe");
        assert_eq!(&b[38..42], &[10, 0, 0, 100], "tpa");
        let facts = crate::wire::parse(b).unwrap();
        assert!(matches!(facts.l3, crate::wire::L3::Arp(_)));

        let f6 = probe_frame("fd00::100".parse().unwrap());
        let facts = crate::wire::parse(f6.as_bytes()).unwrap();
        let ip = facts.ip().unwrap();
        assert_eq!(ip.src, IpAddr::V6(switch_link_local()));
        assert!(matches!(
            ip.l4,
            crate::wire::L4::Icmpv6(crate::wire::Icmpv6Info::NeighborSolicit { sll: Some(m), .. }) if m == SWITCH_MAC
        ));
        assert_eq!(
            switch_link_local(),
            "fe80::76:73ff:fe77:1".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn back_off_doubles_and_caps() {
        let mut d = Discovery::default();
        d.start(G, ms(0));
        let mut now = ms(0);
        let mut gaps = Vec::new();
        for _ in 0..12 {
            assert_eq!(d.round(G, None, false, now), RoundAction::Probe);
            let next = d.next_deadline().unwrap();
            gaps.push(next.saturating_since(now).as_millis() as u64);
            now = next;
        }
        assert_eq!(&gaps[..4], &[100, 200, 400, 800]);
        assert_eq!(*gaps.last().unwrap(), MAX_RETRY.as_millis() as u64);
        assert!(d.is_active(G), "no owner: keeps asking");
    }

    #[test]
    fn one_answer_settles_and_an_owner_stops_after_quiet_rounds() {
        let mut d = Discovery::default();
        d.start(G, ms(0));
        assert_eq!(d.round(G, None, false, ms(0)), RoundAction::Probe);
        assert_eq!(d.answer(G, PortId(1), M, false, ms(0)), AnswerAction::Apply);
        assert_eq!(
            d.answer(G, PortId(1), M, false, ms(0)),
            AnswerAction::Apply,
            "its v6 answer"
        );
        assert_eq!(
            d.round(G, Some(PortId(1)), false, ms(100)),
            RoundAction::Settled
        );
        assert!(!d.is_active(G));

        d.start(G, ms(0));
        let mut now = ms(0);
        let mut rounds = 0;
        while d.round(G, Some(PortId(2)), false, now) == RoundAction::Probe {
            rounds += 1;
            now = d.next_deadline().unwrap();
        }
        assert_eq!(rounds, ROUNDS_WITH_OWNER);
    }

    #[test]
    fn split_brain_keeps_the_owner_that_answered_until_one_answer_remains() {
        let mut d = Discovery::default();
        d.start(G, ms(0));
        assert_eq!(
            d.round(G, Some(PortId(1)), false, ms(0)),
            RoundAction::Probe
        );
        assert_eq!(d.answer(G, PortId(2), M, false, ms(0)), AnswerAction::Apply);
        assert_eq!(
            d.answer(G, PortId(1), M, false, ms(0)),
            AnswerAction::SplitBrain {
                first: PortId(2),
                keep: Some(PortId(1))
            }
        );
        assert_eq!(
            d.round(G, Some(PortId(1)), false, ms(100)),
            RoundAction::Probe
        );
        // both still answer: nothing moves
        assert_eq!(d.answer(G, PortId(2), M, false, ms(0)), AnswerAction::Hold);
        assert_eq!(d.answer(G, PortId(1), M, false, ms(0)), AnswerAction::Hold);
        assert_eq!(
            d.round(G, Some(PortId(1)), false, ms(300)),
            RoundAction::Probe
        );
        // keepalived resolved it: only port 2 answers
        assert_eq!(d.answer(G, PortId(2), M, false, ms(0)), AnswerAction::Hold);
        assert_eq!(d.split_resolved_by(G), Some((PortId(2), M)));
        assert_eq!(
            d.round(G, Some(PortId(2)), false, ms(700)),
            RoundAction::Settled
        );
    }

    /// A split brain found late in the back-off is asked about again within 100 ms, and
    /// at most every second while it lasts (a 6.4 s gap made a kill -9 during a keepalived
    /// transition cost 4.4 s in the soak).
    #[test]
    fn split_brain_asks_again_soon_and_often() {
        let mut d = Discovery::default();
        d.start(G, ms(0));
        let mut now = ms(0);
        for _ in 0..7 {
            assert_eq!(d.round(G, None, false, now), RoundAction::Probe);
            now = d.next_deadline().unwrap();
        }
        // the 8th round: both answer, 50 ms in
        assert_eq!(d.round(G, None, false, now), RoundAction::Probe);
        let t = now + Duration::from_millis(50);
        assert_eq!(d.answer(G, PortId(1), M, false, t), AnswerAction::Apply);
        assert!(matches!(
            d.answer(G, PortId(2), M, false, t),
            AnswerAction::SplitBrain { .. }
        ));
        assert!(d.next_deadline().unwrap() <= t + FIRST_RETRY);
        let mut now = d.next_deadline().unwrap();
        for _ in 0..10 {
            assert_eq!(d.round(G, Some(PortId(1)), false, now), RoundAction::Probe);
            assert_eq!(d.answer(G, PortId(1), M, false, now), AnswerAction::Hold);
            assert_eq!(d.answer(G, PortId(2), M, false, now), AnswerAction::Hold);
            let next = d.next_deadline().unwrap();
            assert!(next.saturating_since(now) <= SPLIT_MAX_RETRY);
            now = next;
        }
    }

    #[test]
    fn active_active_takes_every_answer() {
        let mut d = Discovery::default();
        d.start(G, ms(0));
        assert_eq!(d.round(G, None, true, ms(0)), RoundAction::Probe);
        assert_eq!(d.answer(G, PortId(1), M, true, ms(0)), AnswerAction::Apply);
        assert_eq!(d.answer(G, PortId(2), M, true, ms(0)), AnswerAction::Apply);
        assert_eq!(
            d.round(G, Some(PortId(1)), true, ms(100)),
            RoundAction::Settled
        );
        assert_eq!(d.answer(G, PortId(3), M, true, ms(0)), AnswerAction::Ignore);
    }
}
