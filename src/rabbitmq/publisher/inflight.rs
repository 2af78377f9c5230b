//! [`Inflight`]: the messages published on one channel and not confirmed
//! yet, by delivery tag, as the publishing thread keeps them.
//!
//! A channel numbers its publishes 1, 2, 3 ... and the broker confirms
//! them mostly in that order, so they live in a ring indexed by
//! `tag - first`: taking one in, settling the oldest and settling a run
//! through a tag (an ack-multiple) are O(1) a message, where an ordered
//! map moved every entry about a tree (a profile of `Publisher::send` put
//! the map at 1,100 instructions a message, and the set of returned tags
//! beside it hashed every confirm). Whether the broker returned a message
//! (`basic.return`, before its ack) is a flag in its slot.

use std::collections::VecDeque;

use super::entry::Entry;

/// One message awaiting its confirm.
struct Slot {
    entry: Entry,
    /// The broker returned it as unroutable: its ack fails it.
    returned: bool,
}

/// The messages in flight on one channel, by delivery tag.
pub(super) struct Inflight {
    /// The tag of `slots[0]` (the next tag when `slots` is empty).
    first: u64,
    /// `None` for a tag settled already.
    slots: VecDeque<Option<Slot>>,
    /// How many slots hold a message.
    len: usize,
}

impl Inflight {
    pub(super) fn new() -> Self {
        Inflight {
            first: 1,
            slots: VecDeque::new(),
            len: 0,
        }
    }

    /// How many messages are in flight.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps `entry`, just published, until it is confirmed; returns its
    /// delivery tag. A channel tags its publishes 1, 2, 3 ... in the order
    /// sent, so the tag is the next one after every tag kept or settled.
    pub(super) fn push(&mut self, entry: Entry) -> u64 {
        self.slots.push_back(Some(Slot {
            entry,
            returned: false,
        }));
        self.len += 1;
        self.first + self.slots.len() as u64 - 1
    }

    /// Takes the message under `tag` out, with whether it was returned.
    pub(super) fn remove(&mut self, tag: u64) -> Option<(Entry, bool)> {
        let index = usize::try_from(tag.checked_sub(self.first)?).ok()?;
        let slot = self.slots.get_mut(index)?.take()?;
        self.len -= 1;
        self.trim();
        Some((slot.entry, slot.returned))
    }

    /// Takes out the oldest message if its tag is `tag` or below (one step
    /// of an ack-multiple through `tag`), with whether it was returned.
    pub(super) fn pop_through(&mut self, tag: u64) -> Option<(Entry, bool)> {
        // `trim` keeps a message in the front slot whenever any is left.
        if self.first > tag {
            return None;
        }
        let slot = self.slots.pop_front()??;
        self.first += 1;
        self.len -= 1;
        self.trim();
        Some((slot.entry, slot.returned))
    }

    /// Marks returned the oldest message, not marked yet, that `matches`;
    /// false when none does.
    pub(super) fn mark_returned(&mut self, matches: impl Fn(&Entry) -> bool) -> bool {
        let found = self
            .slots
            .iter_mut()
            .flatten()
            .find(|slot| !slot.returned && matches(&slot.entry));
        match found {
            Some(slot) => {
                slot.returned = true;
                true
            }
            None => false,
        }
    }

    /// The messages in flight, oldest first.
    pub(super) fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.slots.iter().flatten().map(|slot| &slot.entry)
    }

    /// Takes every message out, oldest first.
    pub(super) fn drain(&mut self) -> Vec<Entry> {
        self.len = 0;
        self.first += self.slots.len() as u64;
        self.slots
            .drain(..)
            .flatten()
            .map(|slot| slot.entry)
            .collect()
    }

    /// Drops the settled slots at the front, so that the front slot holds
    /// a message whenever one is in flight.
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
    use crate::message::Message;

    fn entry(seq: u64) -> Entry {
        Entry::new(seq, "", "q", Message::new(vec![]), None)
    }

    fn seqs(inflight: &Inflight) -> Vec<u64> {
        inflight.entries().map(|e| e.seq).collect()
    }

    #[test]
    fn tags_count_from_one_in_publish_order() {
        let mut inflight = Inflight::new();
        let tags: Vec<u64> = (1..=3).map(|seq| inflight.push(entry(seq))).collect();
        assert_eq!(tags, vec![1, 2, 3]);
        assert!(inflight.remove(1).is_some());
        assert!(inflight.remove(3).is_some());
        assert!(inflight.remove(2).is_some());
        assert!(inflight.is_empty());
        assert_eq!(inflight.push(entry(4)), 4);
        assert_eq!(inflight.drain().len(), 1);
        assert_eq!(inflight.push(entry(5)), 5);
    }

    #[test]
    fn single_confirms_out_of_order_keep_the_rest_in_order() {
        let mut inflight = Inflight::new();
        for seq in 1..=4 {
            inflight.push(entry(seq * 10));
        }
        assert_eq!(inflight.remove(2).map(|(e, _)| e.seq), Some(20));
        assert!(inflight.remove(2).is_none());
        assert_eq!(inflight.remove(1).map(|(e, _)| e.seq), Some(10));
        assert_eq!(inflight.len(), 2);
        assert_eq!(seqs(&inflight), vec![30, 40]);
        assert!(inflight.remove(9).is_none());
        assert!(inflight.remove(0).is_none());
    }

    #[test]
    fn an_ack_multiple_takes_everything_through_its_tag() {
        let mut inflight = Inflight::new();
        for seq in 1..=5 {
            inflight.push(entry(seq));
        }
        assert!(inflight.remove(2).is_some());
        let mut taken = Vec::new();
        while let Some((e, _)) = inflight.pop_through(4) {
            taken.push(e.seq);
        }
        assert_eq!(taken, vec![1, 3, 4]);
        assert_eq!(seqs(&inflight), vec![5]);
        assert!(inflight.pop_through(4).is_none());
    }

    #[test]
    fn a_return_marks_the_oldest_unmarked_match() {
        let mut inflight = Inflight::new();
        for _ in 1..=3 {
            inflight.push(entry(7));
        }
        assert!(inflight.mark_returned(|e| e.seq == 7));
        assert!(inflight.mark_returned(|e| e.seq == 7));
        assert!(!inflight.mark_returned(|e| e.seq == 8));
        let flags: Vec<bool> = (1..=3)
            .filter_map(|tag| inflight.remove(tag))
            .map(|(_, returned)| returned)
            .collect();
        assert_eq!(flags, vec![true, true, false]);
        assert!(inflight.is_empty());
    }
}
