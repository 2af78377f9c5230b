//! [`Unsettled`]: the deliveries of one channel that are not settled yet,
//! by delivery tag, as the channel owner keeps them (in a
//! [`TagRing`](crate::rabbitmq::tag_ring::TagRing)), with which of them
//! their readers acked, to go out together in one ack-multiple.
//!
//! amiquip acks only through the [`amiquip::Delivery`] value itself, which
//! is why the deliveries are kept and not just their tags (generic here
//! only so that the tests can keep numbers).

use crate::rabbitmq::tag_ring::TagRing;

/// One unsettled delivery.
struct Slot<D> {
    delivery: D,
    /// Its offset in a stream, to resume at after a lost channel.
    offset: Option<u64>,
    /// Acked by its reader, waiting to go out with others in one
    /// ack-multiple.
    acked: bool,
}

/// The unsettled deliveries of one channel, by tag.
pub(super) struct Unsettled<D = amiquip::Delivery> {
    ring: TagRing<Slot<D>>,
}

impl<D> Unsettled<D> {
    pub(super) fn new() -> Self {
        Unsettled {
            ring: TagRing::new(1),
        }
    }

    /// How many deliveries are unsettled.
    pub(super) fn len(&self) -> usize {
        self.ring.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Keeps `delivery` under `tag` until it is settled.
    pub(super) fn insert(&mut self, tag: u64, delivery: D, offset: Option<u64>) {
        let slot = Slot {
            delivery,
            offset,
            acked: false,
        };
        self.ring.insert(tag, slot);
    }

    /// Takes the delivery under `tag` out, if it is unsettled.
    pub(super) fn remove(&mut self, tag: u64) -> Option<D> {
        self.ring.remove(tag).map(|slot| slot.delivery)
    }

    /// Takes out every delivery up to `tag` (an ack-multiple through it),
    /// if the one under `tag` is unsettled: that one, and how many were
    /// taken. Nothing is taken when it is not.
    pub(super) fn remove_through(&mut self, tag: u64) -> (Option<D>, u64) {
        if self.ring.get_mut(tag).is_none() {
            return (None, 0);
        }
        let (mut taken, mut last) = (0, None);
        while let Some(slot) = self.ring.pop_through(tag) {
            taken += 1;
            last = Some(slot.delivery);
        }
        (last, taken)
    }

    /// Marks the delivery under `tag` acked, to go out with others (see
    /// [`Unsettled::take_acked_run`]); false when it is not unsettled.
    pub(super) fn mark_acked(&mut self, tag: u64) -> bool {
        self.ring
            .get_mut(tag)
            .map(|slot| slot.acked = true)
            .is_some()
    }

    /// Takes out the longest run of the oldest deliveries that are all
    /// marked acked: the newest of them, which one ack-multiple settles the
    /// run through, and how many the run holds.
    pub(super) fn take_acked_run(&mut self) -> Option<(D, u64)> {
        let (mut count, mut last) = (0, None);
        while self.ring.front().is_some_and(|slot| slot.acked) {
            last = self.ring.pop_through(u64::MAX).map(|slot| slot.delivery);
            count += 1;
        }
        last.map(|delivery| (delivery, count))
    }

    /// Takes out every delivery marked acked (those after an unacked one,
    /// once [`Unsettled::take_acked_run`] took the run in front).
    pub(super) fn take_acked(&mut self) -> Vec<D> {
        let acked = self.ring.take_if(|slot| slot.acked);
        acked.into_iter().map(|slot| slot.delivery).collect()
    }

    /// The lowest stream offset among the unsettled deliveries.
    pub(super) fn oldest_offset(&self) -> Option<u64> {
        self.ring.iter().filter_map(|slot| slot.offset).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(tags: std::ops::RangeInclusive<u64>) -> Unsettled<u64> {
        let mut unsettled = Unsettled::new();
        for tag in tags {
            unsettled.insert(tag, tag * 10, None);
        }
        unsettled
    }

    #[test]
    fn the_oldest_acked_run_goes_out_as_one() {
        let mut u = filled(1..=6);
        for tag in [1, 2, 3, 5] {
            assert!(u.mark_acked(tag));
        }
        // 1-3 in one ack-multiple through 3; 5 waits behind 4.
        assert_eq!(u.take_acked_run(), Some((30, 3)));
        assert_eq!(u.take_acked_run(), None);
        assert_eq!(u.len(), 3);
        assert_eq!(u.take_acked(), vec![50]);
        assert_eq!(u.len(), 2);
        assert_eq!(u.remove(4), Some(40));
        assert_eq!(u.remove(6), Some(60));
        assert!(u.is_empty());
        // A tag settled already is not there to settle again.
        assert_eq!(u.remove(4), None);
        assert!(!u.mark_acked(2));
    }

    #[test]
    fn an_ack_multiple_takes_what_is_older() {
        let mut u = filled(1..=5);
        assert_eq!(u.remove(2), Some(20));
        assert_eq!(u.remove_through(4), (Some(40), 3));
        assert_eq!(u.len(), 1);
        // Through a tag not unsettled: nothing is taken.
        assert_eq!(u.remove_through(4), (None, 0));
        assert_eq!(u.remove_through(9), (None, 0));
        assert_eq!(u.len(), 1);
        assert_eq!(u.remove(5), Some(50));
    }

    #[test]
    fn tags_after_a_gap_and_before_the_first_are_kept() {
        let mut u = Unsettled::new();
        u.insert(10, 100, Some(7));
        u.insert(13, 130, Some(3));
        u.insert(8, 80, None);
        assert_eq!(u.len(), 3);
        assert_eq!(u.oldest_offset(), Some(3));
        assert_eq!(u.remove(8), Some(80));
        assert!(u.mark_acked(10));
        assert_eq!(u.take_acked_run(), Some((100, 1)));
        assert_eq!(u.remove(13), Some(130));
        assert!(u.is_empty());
        assert_eq!(u.oldest_offset(), None);
        // A fresh run after it was empty starts at its own first tag.
        u.insert(20, 200, None);
        assert_eq!(u.remove(20), Some(200));
    }
}
