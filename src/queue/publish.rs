//! Publishing: [`State::publish`] writes each message once and an entry per
//! subscriber in one atomic batch, and the counters once every
//! `UNCOUNTED_LIMIT` entries (an open counts the entries published since);
//! dedupe replaces an undelivered message with the same key in place.

use std::collections::HashMap;

use super::keys;
use super::state::{missing_sub, unknown_topic, State};
use super::store::{Batch, Space, Store};
use super::subscriber_state::UNCOUNTED_LIMIT;
use crate::error::{Error, Result};
use crate::message::Message;

impl State {
    /// Writes `messages` to `topic` in one batch: each message once, an
    /// entry per subscriber, now and then the counters. Returns the subscribers to wake
    /// (those with a consumer waiting or a readiness watcher).
    pub(crate) fn publish(
        &mut self,
        topic_name: &str,
        messages: &[Message],
        max_bytes: usize,
    ) -> Result<Vec<u32>> {
        self.reserving(topic_name, |state| {
            state.publish_batch(topic_name, messages, max_bytes)
        })
    }

    fn publish_batch(
        &mut self,
        topic_name: &str,
        messages: &[Message],
        max_bytes: usize,
    ) -> Result<Vec<u32>> {
        let State {
            topics,
            subs,
            store,
            clock,
            ..
        } = self;
        let topic = topics
            .get_mut(topic_name)
            .ok_or_else(|| unknown_topic(topic_name))?;
        // A topic's TTL counts from the queue's clock.
        let now = clock.wall();
        let ttl = topic.config.default_ttl();
        let mut encoded = Vec::with_capacity(messages.len());
        for (i, m) in messages.iter().enumerate() {
            if let Some(key) = m.key() {
                keys::check_len(
                    format!("messages[{i}].key"),
                    "message key",
                    key,
                    keys::MAX_MESSAGE_KEY,
                )?;
            }
            let bytes = match ttl {
                // An expiry beyond what the clock can hold never comes.
                Some(ttl) if m.expires_at().is_none() => match now.checked_add(ttl) {
                    Some(at) => m.clone().with_expiry(at).to_bytes()?,
                    None => m.to_bytes()?,
                },
                _ => m.to_bytes()?,
            };
            if bytes.len() > max_bytes {
                return Err(Error::invalid(
                    format!("messages[{i}]"),
                    format!(
                        "the message takes {} bytes stored; the most is {max_bytes}",
                        bytes.len()
                    ),
                ));
            }
            encoded.push(bytes);
        }
        let mut batch = Batch::new();
        let mut added = vec![0u64; topic.subs.len()];
        let mut keyed: HashMap<&str, u64> = HashMap::new();
        let last_priority = topic.config.priorities() - 1;
        // Subscriber ids are u32s, so no topic has more subscribers.
        let holders = u32::try_from(topic.subs.len()).unwrap_or(u32::MAX);
        let result = (|| -> Result<()> {
            for (m, bytes) in messages.iter().zip(encoded) {
                let dedupe_key = if topic.config.dedupe() { m.key() } else { None };
                if let Some(key) = dedupe_key {
                    let existing = match keyed.get(key) {
                        Some(&seq) => Some(seq),
                        None => existing_undelivered(&**store, topic.id, key)?,
                    };
                    if let Some(seq) = existing {
                        batch.put(Space::Messages, keys::message(topic.id, seq), bytes);
                        keyed.insert(key, seq);
                        continue;
                    }
                }
                let seq = topic.alloc_seq(&mut batch);
                batch.put(Space::Messages, keys::message(topic.id, seq), bytes);
                if topic.subs.len() > 1 {
                    batch.put(
                        Space::Refs,
                        keys::message(topic.id, seq),
                        holders.to_be_bytes().to_vec(),
                    );
                }
                let priority = m.priority().min(last_priority);
                for (i, (_, sub_id)) in topic.subs.iter().enumerate() {
                    batch.put(
                        Space::Queue,
                        keys::queue(*sub_id, priority, seq),
                        seq.to_be_bytes().to_vec(),
                    );
                    added[i] += 1;
                }
                if let Some(key) = dedupe_key {
                    batch.put(
                        Space::Dedupe,
                        keys::dedupe(topic.id, key),
                        seq.to_be_bytes().to_vec(),
                    );
                    keyed.insert(key, seq);
                }
            }
            // The counters are stored only every `UNCOUNTED_LIMIT` entries:
            // an open counts the entries published since.
            let mut counters = Vec::new();
            for (i, (_, sub_id)) in topic.subs.iter().enumerate() {
                let sub = subs.get(sub_id).ok_or_else(|| missing_sub(*sub_id))?;
                let mut c = sub.counters;
                c.entries += added[i];
                let mut uncounted = sub.uncounted + added[i];
                if uncounted >= UNCOUNTED_LIMIT {
                    let stored = c.to_bytes(topic.next_seq());
                    batch.put(Space::Stats, keys::stats(*sub_id), stored);
                    uncounted = 0;
                }
                counters.push((c, uncounted));
            }
            store.write(std::mem::take(&mut batch))?;
            for (i, (_, sub_id)) in topic.subs.iter().enumerate() {
                if let Some(sub) = subs.get_mut(sub_id) {
                    (sub.counters, sub.uncounted) = counters[i];
                    sub.activity.published.add(added[i]);
                    sub.observe();
                }
            }
            Ok(())
        })();
        // On an error `reserving` unconfirms the reservation.
        result?;
        Ok(topic
            .subs
            .iter()
            .filter_map(|(_, id)| subs.get(id))
            .filter(|s| s.waiters > 0 || !s.watchers.is_empty())
            .map(|s| s.id)
            .collect())
    }
}

/// The sequence of the undelivered message with this dedupe key, if any.
fn existing_undelivered(store: &dyn Store, topic: u32, key: &str) -> Result<Option<u64>> {
    let dkey = keys::dedupe(topic, key);
    let Some(v) = store.get(Space::Dedupe, &dkey)? else {
        return Ok(None);
    };
    let seq = keys::read_u64(&v, 0, Space::Dedupe, &dkey)?;
    // The mapping goes when the message is first taken, in the same batch;
    // a missing message means it was never there to replace.
    Ok(store
        .get(Space::Messages, &keys::message(topic, seq))?
        .map(|_| seq))
}
