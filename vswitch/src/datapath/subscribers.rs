//! The control thread's event subscribers: a bounded queue each, filled with `try_send`
//! so a slow subscriber loses events (counted, then reported as [`Event::Lagged`]) and never
//! blocks the control thread. See [`crate::view::Event`] for the contract.

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

use crate::view::{Event, SUBSCRIBER_QUEUE};

/// A subscriber's queue: [`SUBSCRIBER_QUEUE`] events.
pub(crate) fn channel() -> (Sender<Event>, Receiver<Event>) {
    bounded(SUBSCRIBER_QUEUE)
}

struct Subscriber {
    tx: Sender<Event>,
    /// Events dropped since the last one delivered.
    missed: u64,
}

/// The subscribers of one control thread.
#[derive(Default)]
pub(crate) struct Subscribers {
    subs: Vec<Subscriber>,
}

/// Delivers `ev` (after a pending `Lagged` notice); `false` if the subscriber is gone.
fn offer(s: &mut Subscriber, ev: Option<&Event>) -> bool {
    if s.missed > 0 {
        match s.tx.try_send(Event::Lagged { missed: s.missed }) {
            Ok(()) => s.missed = 0,
            Err(TrySendError::Full(_)) => {
                s.missed += u64::from(ev.is_some());
                return true;
            }
            Err(TrySendError::Disconnected(_)) => return false,
        }
    }
    let Some(ev) = ev else { return true };
    match s.tx.try_send(ev.clone()) {
        Ok(()) => true,
        Err(TrySendError::Full(_)) => {
            s.missed += 1;
            true
        }
        Err(TrySendError::Disconnected(_)) => false,
    }
}

impl Subscribers {
    /// Registers a subscriber (made by [`channel`]).
    pub(crate) fn push(&mut self, tx: Sender<Event>) {
        self.subs.push(Subscriber { tx, missed: 0 });
    }

    /// Sends `ev` to every subscriber; forgets those that went away.
    pub(crate) fn publish(&mut self, ev: &Event) {
        self.subs.retain_mut(|s| offer(s, Some(ev)));
    }

    /// Delivers pending `Lagged` notices to subscribers that have room again.
    pub(crate) fn flush_lag(&mut self) {
        if self.subs.iter().any(|s| s.missed > 0) {
            self.subs.retain_mut(|s| offer(s, None));
        }
    }

    /// Subscribers registered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.subs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Subscribers {
        fn add(&mut self, cap: usize) -> Receiver<Event> {
            let (tx, rx) = bounded(cap);
            self.push(tx);
            rx
        }
    }

    fn port(n: u32) -> Event {
        Event::PortState {
            port: format!("p{n}"),
            up: true,
            cause: "admin".into(),
        }
    }

    #[test]
    fn a_slow_subscriber_lags_and_is_told() {
        let mut s = Subscribers::default();
        let slow = s.add(2);
        let fast = s.add(16);
        for n in 0..5 {
            s.publish(&port(n));
        }
        // the fast one got everything, the slow one the first two; three were dropped
        assert_eq!(
            fast.try_iter().collect::<Vec<_>>(),
            (0..5).map(port).collect::<Vec<_>>()
        );
        assert_eq!(slow.try_iter().collect::<Vec<_>>(), vec![port(0), port(1)]);
        // once there is room, the next round tells it how many it missed
        s.flush_lag();
        assert_eq!(slow.try_recv().ok(), Some(Event::Lagged { missed: 3 }));
        s.publish(&port(5));
        assert_eq!(slow.try_iter().collect::<Vec<_>>(), vec![port(5)]);
        assert!(fast.try_iter().eq([port(5)]));
    }

    #[test]
    fn lag_notice_comes_before_the_next_event() {
        let mut s = Subscribers::default();
        let rx = s.add(1);
        s.publish(&port(0));
        s.publish(&port(1)); // dropped
        assert_eq!(rx.try_recv().ok(), Some(port(0)));
        s.publish(&port(2)); // the notice takes the free place, port(2) is dropped too
        assert_eq!(rx.try_recv().ok(), Some(Event::Lagged { missed: 1 }));
        s.flush_lag();
        assert_eq!(rx.try_recv().ok(), Some(Event::Lagged { missed: 1 }));
        s.publish(&port(3));
        assert_eq!(rx.try_recv().ok(), Some(port(3)));
    }

    #[test]
    fn gone_subscribers_are_forgotten() {
        let mut s = Subscribers::default();
        let a = s.add(SUBSCRIBER_QUEUE);
        let b = s.add(SUBSCRIBER_QUEUE);
        drop(a);
        s.publish(&port(0));
        assert_eq!(s.len(), 1);
        assert_eq!(b.try_recv().ok(), Some(port(0)));
    }
}
