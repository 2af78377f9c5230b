//! [`Inflight`]: the messages published on one channel and not confirmed
//! yet, by delivery tag, as the publishing thread keeps them (in a
//! [`TagRing`](crate::rabbitmq::tag_ring::TagRing)), with whether the
//! broker returned each (`basic.return`, which comes before its ack).

use super::entry::Entry;
use crate::rabbitmq::tag_ring::TagRing;

/// One message awaiting its confirm.
struct Slot {
    entry: Entry,
    /// The broker returned it as unroutable: its ack fails it.
    returned: bool,
}

/// The messages in flight on one channel, by delivery tag.
pub(super) struct Inflight {
    ring: TagRing<Slot>,
}

impl Inflight {
    /// A fresh channel's: its first publish is tag 1.
    pub(super) fn new() -> Self {
        Inflight {
            ring: TagRing::new(1),
        }
    }

    /// How many messages are in flight.
    pub(super) fn len(&self) -> usize {
        self.ring.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Keeps `entry`, just published, until it is confirmed; returns its
    /// delivery tag. A channel tags its publishes 1, 2, 3 ... in the order
    /// sent, so the tag is the next one after every tag kept or settled.
    pub(super) fn push(&mut self, entry: Entry) -> u64 {
        self.ring.push(Slot {
            entry,
            returned: false,
        })
    }

    /// Takes the message under `tag` out, with whether it was returned.
    pub(super) fn remove(&mut self, tag: u64) -> Option<(Entry, bool)> {
        self.ring.remove(tag).map(|s| (s.entry, s.returned))
    }

    /// Takes out the oldest message if its tag is `tag` or below (one step
    /// of an ack-multiple through `tag`), with whether it was returned.
    pub(super) fn pop_through(&mut self, tag: u64) -> Option<(Entry, bool)> {
        self.ring.pop_through(tag).map(|s| (s.entry, s.returned))
    }

    /// Marks returned the oldest message, not marked yet, that `matches`;
    /// false when none does.
    pub(super) fn mark_returned(&mut self, matches: impl Fn(&Entry) -> bool) -> bool {
        let found = self
            .ring
            .iter_mut()
            .find(|slot| !slot.returned && matches(&slot.entry));
        found.map(|slot| slot.returned = true).is_some()
    }

    /// The messages in flight, oldest first.
    pub(super) fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.ring.iter().map(|slot| &slot.entry)
    }

    /// Takes every message out, oldest first.
    pub(super) fn drain(&mut self) -> Vec<Entry> {
        self.ring.drain().into_iter().map(|s| s.entry).collect()
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
