//! [`Unsettled`]: the deliveries of one channel that are not settled yet,
//! by delivery tag, as the channel owner keeps them.
//!
//! The broker numbers the deliveries of a channel 1, 2, 3 ... and a
//! consumer settles them mostly in that order, so they live in a ring
//! indexed by `tag - first`: taking one in, settling the oldest and finding
//! the run of oldest ones acked are O(1) each, where an ordered map moved
//! every delivery (a few hundred bytes) about a tree (a profile of the
//! consume path put its map at 1,500 instructions per message, more than a
//! whole raw amiquip consume loop).
//!
//! amiquip acks only through the [`amiquip::Delivery`] value itself, which
//! is why the deliveries are kept and not just their tags (generic here
//! only so that the tests can keep numbers).

use std::collections::VecDeque;

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
    /// The tag of `slots[0]`.
    first: u64,
    /// `None` for a tag settled already (or never delivered).
    slots: VecDeque<Option<Slot<D>>>,
    /// How many slots hold a delivery.
    len: usize,
}

impl<D> Unsettled<D> {
    pub(super) fn new() -> Self {
        Unsettled {
            first: 0,
            slots: VecDeque::new(),
            len: 0,
        }
    }

    /// How many deliveries are unsettled.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps `delivery` under `tag` until it is settled.
    pub(super) fn insert(&mut self, tag: u64, delivery: D, offset: Option<u64>) {
        if self.slots.is_empty() {
            self.first = tag;
        }
        if tag < self.first {
            // Tags only grow on a channel; an older one is kept in front.
            for _ in tag..self.first {
                self.slots.push_front(None);
            }
            self.first = tag;
        }
        let index = self.index(tag);
        while self.slots.len() <= index {
            self.slots.push_back(None);
        }
        if self.slots[index].is_none() {
            self.len += 1;
        }
        self.slots[index] = Some(Slot {
            delivery,
            offset,
            acked: false,
        });
    }

    /// Takes the delivery under `tag` out, if it is unsettled.
    pub(super) fn remove(&mut self, tag: u64) -> Option<D> {
        let slot = self.slot_mut(tag)?.take()?;
        self.len -= 1;
        self.trim();
        Some(slot.delivery)
    }

    /// Takes out every delivery up to `tag` (an ack-multiple through it),
    /// if the one under `tag` is unsettled: that one, and how many were
    /// taken. Nothing is taken when it is not.
    pub(super) fn remove_through(&mut self, tag: u64) -> (Option<D>, u64) {
        if !matches!(self.slot_mut(tag), Some(Some(_))) {
            return (None, 0);
        }
        let mut taken = 0;
        let mut last = None;
        while self.first <= tag {
            let Some(front) = self.slots.pop_front() else {
                break;
            };
            let at = self.first;
            self.first += 1;
            if let Some(slot) = front {
                taken += 1;
                self.len -= 1;
                if at == tag {
                    last = Some(slot.delivery);
                }
            }
        }
        self.trim();
        (last, taken)
    }

    /// Marks the delivery under `tag` acked, to go out with others (see
    /// [`Unsettled::take_acked_run`]); false when it is not unsettled.
    pub(super) fn mark_acked(&mut self, tag: u64) -> bool {
        match self.slot_mut(tag) {
            Some(Some(slot)) => {
                slot.acked = true;
                true
            }
            _ => false,
        }
    }

    /// Takes out the longest run of the oldest deliveries that are all
    /// marked acked: the newest of them, which one ack-multiple settles the
    /// run through, and how many the run holds.
    pub(super) fn take_acked_run(&mut self) -> Option<(D, u64)> {
        let mut count = 0;
        let mut last = None;
        while let Some(Some(slot)) = self.slots.front() {
            if !slot.acked {
                break;
            }
            if let Some(Some(slot)) = self.slots.pop_front() {
                last = Some(slot.delivery);
            }
            self.first += 1;
            self.len -= 1;
            count += 1;
        }
        self.trim();
        last.map(|delivery| (delivery, count))
    }

    /// Takes out every delivery marked acked (those after an unacked one,
    /// once [`Unsettled::take_acked_run`] took the run in front).
    pub(super) fn take_acked(&mut self) -> Vec<D> {
        let mut acked = Vec::new();
        for entry in &mut self.slots {
            if entry.as_ref().is_some_and(|slot| slot.acked) {
                if let Some(slot) = entry.take() {
                    acked.push(slot.delivery);
                }
            }
        }
        self.len -= acked.len();
        self.trim();
        acked
    }

    /// The lowest stream offset among the unsettled deliveries.
    pub(super) fn oldest_offset(&self) -> Option<u64> {
        self.slots.iter().flatten().filter_map(|s| s.offset).min()
    }

    fn index(&self, tag: u64) -> usize {
        usize::try_from(tag - self.first).unwrap_or(usize::MAX)
    }

    fn slot_mut(&mut self, tag: u64) -> Option<&mut Option<Slot<D>>> {
        if tag < self.first {
            return None;
        }
        let index = self.index(tag);
        self.slots.get_mut(index)
    }

    /// Drops the settled slots in front, so that `first` is the oldest
    /// unsettled tag.
    fn trim(&mut self) {
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.first += 1;
        }
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
