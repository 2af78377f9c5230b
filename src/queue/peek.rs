//! Peeking: [`State::peek`] reads what [`State::take`] would hand out
//! next, in the same order (redeliveries first, then each queue from its
//! cursor, priority 0 first), and changes nothing: no delivery is counted,
//! nothing goes in flight, no ack deadline is set, and nothing is written.
//!
//! What a take would not deliver is left out as the take would leave it
//! out: an expired message (which the take drops; the peek leaves that to
//! it), an entry that used up its deliveries before a restart (the take
//! dead-letters it), and an entry whose message cannot be read (the take
//! sets it aside). So the first peeked message is the one the next receive
//! gets, unless a publish, a nack or another handle comes in between.
//!
//! [`State::take`]: super::state::State::take

use std::time::SystemTime;

use super::delivery::{parse_entry, read_message};
use super::entry::{EntryId, Peeked};
use super::keys;
use super::state::{missing_sub, State};
use super::store::{Space, Store};
use super::subscriber_state::SubscriberState;
use super::topic::TopicInfo;
use crate::error::{Error, Result};

impl State {
    /// Up to `max` of the entries a take of `sub_id` would hand out next,
    /// without taking them. Costs a read per message, and a scan of each
    /// level's queue as far as the `max`-th deliverable entry.
    pub(crate) fn peek(&self, sub_id: u32, max: usize) -> Result<Vec<Peeked>> {
        let sub = self.subs.get(&sub_id).ok_or_else(|| missing_sub(sub_id))?;
        let topic = self
            .topics
            .get(&sub.topic)
            .ok_or_else(|| missing_sub(sub_id))?;
        let mut looking = Looking {
            sub,
            info: topic.info(),
            store: &*self.store,
            // Expiry as the take judges it: on the queue's clock.
            wall: self.clock.wall(),
            out: Vec::new(),
        };
        if max == 0 || sub.ready() == 0 {
            return Ok(looking.out);
        }
        for (priority, p) in (0..sub.cursors.len()).zip(0u8..) {
            for &(id, seq) in &sub.redeliver[priority] {
                if looking.out.len() >= max {
                    return Ok(looking.out);
                }
                looking.entry(id, seq)?;
            }
            let mut from = sub.cursors[priority];
            while looking.out.len() < max {
                let entries = looking.store.scan(
                    Space::Queue,
                    &keys::queue(sub.id, p, from),
                    &keys::queue_end(sub.id, p),
                    max - looking.out.len(),
                )?;
                if entries.is_empty() {
                    break;
                }
                for (key, value) in &entries {
                    let (id, seq) = parse_entry(key, value)?;
                    from = id.position + 1;
                    looking.entry(id, seq)?;
                }
            }
            if looking.out.len() >= max {
                break;
            }
        }
        looking.out.truncate(max);
        Ok(looking.out)
    }
}

/// One call of [`State::peek`]: what it found so far.
struct Looking<'a> {
    sub: &'a SubscriberState,
    info: TopicInfo,
    store: &'a dyn Store,
    wall: SystemTime,
    out: Vec<Peeked>,
}

impl Looking<'_> {
    /// Adds entry `(id, seq)` when a take would deliver it (see the module
    /// docs for what it would not).
    fn entry(&mut self, id: EntryId, seq: u64) -> Result<()> {
        let deliveries = self.sub.deliveries(id);
        if self.info.max_deliveries > 0 && deliveries >= self.info.max_deliveries {
            return Ok(());
        }
        let qkey = keys::queue(self.sub.id, id.priority, id.position);
        let message = match read_message(self.store, self.info.id, seq, Space::Queue, &qkey) {
            Ok(message) => message,
            Err(Error::Corrupt { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        if !message.is_expired_at(self.wall) {
            self.out.push(Peeked {
                id: id.slot(),
                message,
                deliveries,
            });
        }
        Ok(())
    }
}
