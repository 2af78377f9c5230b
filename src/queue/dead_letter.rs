//! The dead letters of a subscriber: listing, replaying and purging them.
//! Entries get here from `settle.rs` (a nack without requeue, or the
//! topic's delivery limit), stored under the subscriber's id and a position
//! from the topic's sequence counter.

use super::delivery::read_message;
use super::entry::DeadLetter;
use super::keys;
use super::settle::release_message;
use super::state::{missing_sub, State};
use super::store::{Batch, Space};
use crate::error::Result;

impl State {
    /// Up to `limit` dead letters of the subscriber, oldest first.
    pub(crate) fn dead_letters(&mut self, sub_id: u32, limit: usize) -> Result<Vec<DeadLetter>> {
        let (sub, info, store) = self.parts(sub_id)?;
        let entries = store.scan(
            Space::DeadLetters,
            &keys::sub_start(sub.id),
            &keys::sub_end(sub.id),
            limit,
        )?;
        let mut out = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let position = keys::read_u64(&key, 4, Space::DeadLetters, &key)?;
            let seq = keys::read_u64(&value, 0, Space::DeadLetters, &key)?;
            let deliveries = keys::read_u32(&value, 8, Space::DeadLetters, &key)?;
            out.push(DeadLetter {
                position,
                message: read_message(store, info.id, seq, Space::DeadLetters, &key)?,
                deliveries,
            });
        }
        Ok(out)
    }

    /// Moves every dead letter back to the end of its queue (`replay`), or
    /// deletes them all. Returns how many.
    pub(crate) fn drain_dead_letters(&mut self, sub_id: u32, replay: bool) -> Result<usize> {
        // Replaying reserves positions.
        let topic = self.sub_topic(sub_id)?;
        self.reserving(&topic, |state| {
            state.drain_dead_letter_batches(sub_id, replay)
        })
    }

    fn drain_dead_letter_batches(&mut self, sub_id: u32, replay: bool) -> Result<usize> {
        let mut n = 0;
        loop {
            let State {
                topics,
                subs,
                store,
                ..
            } = &mut *self;
            let sub = subs.get_mut(&sub_id).ok_or_else(|| missing_sub(sub_id))?;
            let topic = topics
                .get_mut(&sub.topic)
                .ok_or_else(|| missing_sub(sub_id))?;
            let info = topic.info();
            let last_priority = topic.config.priorities() - 1;
            let entries = store.scan(
                Space::DeadLetters,
                &keys::sub_start(sub.id),
                &keys::sub_end(sub.id),
                1024,
            )?;
            if entries.is_empty() {
                if n > 0 {
                    sub.observe();
                    sub.wake();
                }
                return Ok(n);
            }
            let mut batch = Batch::new();
            for (key, value) in entries {
                let seq = keys::read_u64(&value, 0, Space::DeadLetters, &key)?;
                if replay {
                    let message = read_message(&**store, info.id, seq, Space::DeadLetters, &key)?;
                    let position = topic.alloc_seq(&mut batch);
                    let priority = message.priority().min(last_priority);
                    batch.put(
                        Space::Queue,
                        keys::queue(sub.id, priority, position),
                        seq.to_be_bytes().to_vec(),
                    );
                    sub.counters.entries += 1;
                } else {
                    release_message(info, &**store, seq, &mut batch)?;
                }
                batch.delete_weak(Space::DeadLetters, key);
                sub.counters.dead_letters = sub.counters.dead_letters.saturating_sub(1);
                n += 1;
            }
            sub.put_counters(&mut batch, topic.next_seq());
            store.write(batch)?;
        }
    }
}
