//! [`HeldAcks`]: the acks a client holds back while its consumer still has
//! deliveries in hand to go through, so that a burst of acks leaves in one
//! write (one system call) and the server applies it in one store write,
//! instead of one round of each per ack.
//!
//! An ack is held only while its subscription is *busy*: its
//! [`RemoteSubscriber`](super::RemoteSubscriber) holds received deliveries
//! that it has not handed out yet, so the consumer is coming back for
//! them. Everything held goes out, in the order it was made:
//!
//! - with the ack that finds the subscription no longer busy, or that
//!   would be the `limit`-th held for it (a quarter of its batch, at most
//!   64, as the RabbitMQ consumer's acks: the server pushes the next
//!   deliveries while the consumer works through the rest);
//! - with the first ack made [`MAX_HOLD`] or more after the oldest held one
//!   (a slow consumer delays an ack by one message's work at most);
//! - when the subscriber runs out of deliveries in hand (before it waits
//!   for the server), and before any other frame of the connection goes
//!   out, so a later request still finds every earlier ack read.
//!
//! Nacks and `multiple` acks are never held (they flush what is).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::protocol::{Request, WireEntry};

/// The longest an ack waits for the next one to go out with it.
pub(super) const MAX_HOLD: Duration = Duration::from_millis(1);

/// Acks waiting to be sent, and which subscriptions may hold them.
#[derive(Default)]
pub(super) struct HeldAcks {
    /// Ack frames not sent yet, oldest first.
    frames: Vec<Request>,
    /// When the oldest of them was made.
    since: Option<Instant>,
    /// Busy subscriptions: how many acks each holds, and its limit.
    busy: HashMap<u64, Busy>,
}

struct Busy {
    held: usize,
    limit: usize,
}

impl HeldAcks {
    /// Subscription `sub` has deliveries in hand: up to `limit` of its acks
    /// may wait.
    pub(super) fn busy(&mut self, sub: u64, limit: usize) {
        self.busy.entry(sub).or_insert(Busy { held: 0, limit });
    }

    /// Subscription `sub` has nothing in hand (or ended): none of its acks
    /// may wait any longer. The caller sends what [`take`](Self::take)
    /// returns.
    pub(super) fn idle(&mut self, sub: u64) {
        self.busy.remove(&sub);
    }

    /// Records the ack of `entry`. True when it may wait; false when the
    /// caller must send everything held now ([`take`](Self::take)).
    pub(super) fn hold(&mut self, sub: u64, entry: WireEntry, now: Instant) -> bool {
        // An ack right behind another of the same subscription joins its
        // frame: one frame to encode, send and decode for the burst. Only
        // the last frame is joined, so acks still leave in the order they
        // were made.
        match self.frames.last_mut() {
            Some(Request::Ack {
                id: 0,
                sub: last,
                entries,
                multiple: false,
            }) if *last == sub => entries.push(entry),
            _ => self.frames.push(Request::Ack {
                id: 0,
                sub,
                entries: vec![entry],
                multiple: false,
            }),
        }
        let since = *self.since.get_or_insert(now);
        let Some(busy) = self.busy.get_mut(&sub) else {
            return false;
        };
        busy.held += 1;
        busy.held < busy.limit && now.duration_since(since) < MAX_HOLD
    }

    /// Everything held, oldest first, to be sent now: one frame per run of
    /// acks of one subscription.
    pub(super) fn take(&mut self) -> Vec<Request> {
        self.since = None;
        for busy in self.busy.values_mut() {
            busy.held = 0;
        }
        std::mem::take(&mut self.frames)
    }

    /// True when nothing is held.
    pub(super) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(position: u64) -> WireEntry {
        WireEntry {
            priority: 0,
            position,
            delivery: 1,
        }
    }

    #[test]
    fn acks_wait_only_while_busy_and_under_the_limit() {
        let now = Instant::now();
        let mut held = HeldAcks::default();
        // Not busy: the ack goes out at once.
        assert!(!held.hold(1, entry(1), now));
        assert_eq!(held.take().len(), 1);
        held.busy(1, 3);
        assert!(held.hold(1, entry(2), now));
        assert!(held.hold(1, entry(3), now));
        // The third reaches the limit: all three go, in order, in one frame.
        assert!(!held.hold(1, entry(4), now));
        assert_eq!(positions(&held.take()), [vec![2, 3, 4]]);
        assert!(held.is_empty());
        // Still busy, it waits; once idle, the next ack sends both.
        assert!(held.hold(1, entry(5), now));
        held.idle(1);
        assert!(!held.hold(1, entry(6), now));
        assert_eq!(positions(&held.take()), [vec![5, 6]]);
    }

    /// The entries' positions, frame by frame.
    fn positions(frames: &[Request]) -> Vec<Vec<u64>> {
        frames
            .iter()
            .map(|f| match f {
                Request::Ack { entries, .. } => entries.iter().map(|e| e.position).collect(),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn acks_of_two_subscriptions_keep_their_order_in_a_frame_per_run() {
        let now = Instant::now();
        let mut held = HeldAcks::default();
        held.busy(1, 10);
        held.busy(2, 10);
        for (sub, position) in [(1, 1), (1, 2), (2, 10), (1, 3), (2, 11), (2, 12)] {
            assert!(held.hold(sub, entry(position), now));
        }
        assert_eq!(
            positions(&held.take()),
            [vec![1, 2], vec![10], vec![3], vec![11, 12]]
        );
    }

    #[test]
    fn an_ack_made_after_max_hold_sends_the_old_ones() {
        let now = Instant::now();
        let mut held = HeldAcks::default();
        held.busy(1, 100);
        assert!(held.hold(1, entry(1), now));
        assert!(!held.hold(1, entry(2), now + MAX_HOLD));
        assert_eq!(positions(&held.take()), [vec![1, 2]]);
    }
}
