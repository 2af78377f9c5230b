//! [`State`]: everything the engine keeps behind its one mutex, how it is
//! read back at open, topic declaration, and the lookups every operation
//! starts with. Publishing, taking, settling and the dead letters each add
//! their part of `impl State` in their own file (`publish.rs`,
//! `delivery.rs`, `settle.rs`, `dead_letter.rs`).
//!
//! # Model
//!
//! Everything is written through the [`Store`] and the in-memory state
//! keeps only what a restart may forget: which entries are in flight, the
//! redelivery lists, each queue's scan cursor and the counters. Queue
//! entries stay in the store while they are in flight and leave it when
//! acked, so a restart, even after `kill -9`, finds every unacked entry in
//! its queue again (at-least-once) without replaying anything.
//!
//! Recovery reads the topic records, one sequence reservation per topic,
//! the counters, each subscriber's delivery watermark and the
//! delivery-attempt records (one per entry delivered more than once, see
//! `subscriber_state.rs`). It never scans the messages, and of each queue
//! only the entries published since its counters were last stored (at
//! most `UNCOUNTED_LIMIT`).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use super::clock::Clock;
use super::commit::Committer;
use super::config::{Durability, TopicConfig};
use super::entry::{EntryId, SubscriberStats};
use super::id_hash::IdMap;
use super::keys;
use super::store::{Batch, Space, Store};
use super::subscriber_state::{self, Counters, SubscriberState};
use super::topic::{Topic, TopicInfo, TopicRecord};
use crate::error::{Error, ObjectKind, Result};
use crate::metrics::{name, Histogram};

/// What everything that uses the engine shares: the state behind one mutex,
/// the committer and the fixed settings.
pub(crate) struct Shared {
    /// Every operation leaves it consistent before it can fail, so a panic
    /// elsewhere does not make it unusable (`crate::thread::lock`).
    pub(crate) state: Mutex<State>,
    /// The sweeper thread waits here for the next ack deadline.
    pub(crate) sweeper: Condvar,
    pub(crate) committer: Arc<Committer>,
    pub(crate) max_message_bytes: usize,
    /// From a `publish` call to its messages being durable.
    pub(crate) publish_seconds: Histogram,
}

impl Shared {
    pub(crate) fn new(state: State, durability: Durability, max_message_bytes: usize) -> Self {
        Shared {
            committer: Arc::new(Committer::new(state.store.clone(), durability)),
            state: Mutex::new(state),
            sweeper: Condvar::new(),
            max_message_bytes,
            publish_seconds: Histogram::new(name::QUEUE_PUBLISH_SECONDS, &[]),
        }
    }
}

pub(crate) struct State {
    pub(crate) closed: bool,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) topics: HashMap<String, Topic>,
    pub(crate) subs: IdMap<u32, SubscriberState>,
    next_topic_id: u32,
    next_sub_id: u32,
    /// Where ack deadlines, expiry and TTLs read the time.
    pub(crate) clock: Arc<dyn Clock>,
    /// In-flight entries with an ack deadline (by `clock`), earliest first.
    pub(crate) deadlines: BTreeSet<(Instant, u64, u32, EntryId)>,
    pub(crate) next_tag: u64,
    /// Set when a take moved the earliest deadline forward: the sweeper
    /// must wake to reschedule.
    pub(crate) wake_sweeper: bool,
}

impl State {
    /// Reads the state back from `store`: topic records, sequence
    /// reservations, counters and delivery attempts. Every stored entry
    /// starts out ready to deliver (in-flight ones come back). Deadlines
    /// and expiry follow `clock`.
    pub(crate) fn load(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Result<Self> {
        let (next_topic_id, next_sub_id) = match store.get(Space::Meta, keys::META_IDS)? {
            Some(v) => (
                keys::read_u32(&v, 0, Space::Meta, keys::META_IDS)?,
                keys::read_u32(&v, 4, Space::Meta, keys::META_IDS)?,
            ),
            None => (0, 0),
        };
        let mut topics = HashMap::new();
        let mut subs = IdMap::default();
        let records = store.scan(
            Space::Meta,
            keys::META_TOPIC_PREFIX,
            keys::META_TOPIC_END,
            usize::MAX,
        )?;
        for (key, value) in records {
            let record = TopicRecord::decode(&key, &value)?;
            let seq_key = keys::meta_seq(record.id);
            let reserved = match store.get(Space::Meta, &seq_key)? {
                Some(v) => keys::read_u64(&v, 0, Space::Meta, &seq_key)?,
                None => 0,
            };
            for (name, sub_id) in &record.subscribers {
                let mut sub = SubscriberState::new(
                    *sub_id,
                    record.config.name(),
                    name,
                    record.config.priorities(),
                );
                let stats_key = keys::stats(*sub_id);
                // No record: nothing was counted yet.
                let mut uncounted_from = 0;
                if let Some(v) = store.get(Space::Stats, &stats_key)? {
                    (sub.counters, uncounted_from) = Counters::from_bytes(&v, &stats_key)?;
                }
                // The entries published since the counters were stored (at
                // most `UNCOUNTED_LIMIT`).
                for p in 0..record.config.priorities() {
                    if uncounted_from == subscriber_state::EXACT {
                        break;
                    }
                    let tail = store.scan(
                        Space::Queue,
                        &keys::queue(*sub_id, p, uncounted_from),
                        &keys::queue_end(*sub_id, p),
                        usize::MAX,
                    )?;
                    sub.uncounted += tail.len() as u64;
                }
                sub.counters.entries += sub.uncounted;
                let attempts = store.scan(
                    Space::Attempts,
                    &keys::sub_start(*sub_id),
                    &keys::sub_end(*sub_id),
                    usize::MAX,
                )?;
                for (k, v) in attempts {
                    let id = keys::entry_id(&k)
                        .ok_or_else(|| keys::corrupt(Space::Attempts, &k, "not a queue key"))?;
                    sub.attempts
                        .insert(id, keys::read_u32(&v, 0, Space::Attempts, &k)?);
                    sub.recorded.insert(id);
                }
                let taken_key = keys::meta_taken(*sub_id);
                if let Some(v) = store.get(Space::Meta, &taken_key)? {
                    for (p, below) in sub.taken_below.iter_mut().enumerate() {
                        if v.len() > p * 8 {
                            *below = keys::read_u64(&v, p * 8, Space::Meta, &taken_key)?;
                        }
                    }
                }
                sub.observe();
                subs.insert(*sub_id, sub);
            }
            topics.insert(
                record.config.name().to_string(),
                Topic::new(record, reserved),
            );
        }
        Ok(State {
            closed: false,
            store,
            topics,
            subs,
            next_topic_id,
            next_sub_id,
            clock,
            deadlines: BTreeSet::new(),
            next_tag: 0,
            wake_sweeper: false,
        })
    }

    /// Creates `config`'s topic, or updates it: subscribers may be added and
    /// priority levels raised, never removed or lowered.
    pub(crate) fn declare(&mut self, config: TopicConfig, field: &str) -> Result<()> {
        config.validate_as(field)?;
        let mut batch = Batch::new();
        let (id, mut subscribers) = if let Some(topic) = self.topics.get(config.name()) {
            if config.priorities() < topic.config.priorities() {
                return Err(Error::invalid(
                    format!("{field}.priorities"),
                    format!(
                        "topic `{}` has {} priority levels; they cannot go down to {}",
                        config.name(),
                        topic.config.priorities(),
                        config.priorities()
                    ),
                ));
            }
            if let Some((gone, _)) = topic
                .subs
                .iter()
                .find(|(name, _)| !config.subscribers().contains(name))
            {
                return Err(Error::invalid(
                    format!("{field}.subscribers"),
                    format!(
                        "topic `{}` has subscriber `{gone}`, which cannot be removed",
                        config.name()
                    ),
                ));
            }
            (topic.id, topic.subs.clone())
        } else {
            let id = self.next_topic_id;
            self.next_topic_id += 1;
            (id, Vec::new())
        };
        let mut new_subs = Vec::new();
        for name in config.subscribers() {
            if !subscribers.iter().any(|(n, _)| n == name) {
                let sub_id = self.next_sub_id;
                self.next_sub_id += 1;
                subscribers.push((name.clone(), sub_id));
                new_subs.push((name.clone(), sub_id));
            }
        }
        let record = TopicRecord {
            id,
            config: config.clone(),
            subscribers: subscribers.clone(),
        };
        batch.put(
            Space::Meta,
            keys::meta_topic(config.name()),
            rmp_serde::to_vec_named(&record)?,
        );
        let ids = [
            self.next_topic_id.to_be_bytes(),
            self.next_sub_id.to_be_bytes(),
        ]
        .concat();
        batch.put(Space::Meta, keys::META_IDS.to_vec(), ids);
        self.store.write(batch)?;
        for (name, sub_id) in new_subs {
            self.subs.insert(
                sub_id,
                SubscriberState::new(sub_id, config.name(), &name, config.priorities()),
            );
        }
        for (_, sub_id) in &subscribers {
            if let Some(sub) = self.subs.get_mut(sub_id) {
                sub.grow(config.priorities());
            }
        }
        match self.topics.get_mut(config.name()) {
            Some(topic) => {
                topic.config = config;
                topic.subs = subscribers;
            }
            None => {
                self.topics
                    .insert(config.name().to_string(), Topic::new(record, 0));
            }
        }
        Ok(())
    }

    pub(crate) fn topic(&self, name: &str) -> Result<&Topic> {
        self.topics.get(name).ok_or_else(|| unknown_topic(name))
    }

    /// The id of subscriber `name` of `topic`.
    pub(crate) fn sub_id(&self, topic: &str, name: &str) -> Result<u32> {
        self.topic(topic)?
            .subs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| *id)
            .ok_or_else(|| Error::not_found(ObjectKind::Subscriber, format!("{topic}/{name}")))
    }

    /// The subscriber `sub_id`, its topic's settings and the store, borrowed
    /// at once.
    pub(crate) fn parts(
        &mut self,
        sub_id: u32,
    ) -> Result<(&mut SubscriberState, TopicInfo, &dyn Store)> {
        let sub = self
            .subs
            .get_mut(&sub_id)
            .ok_or_else(|| missing_sub(sub_id))?;
        let topic = self
            .topics
            .get(&sub.topic)
            .ok_or_else(|| missing_sub(sub_id))?;
        Ok((sub, topic.info(), &*self.store))
    }

    /// The name of subscriber `sub_id`'s topic.
    pub(crate) fn sub_topic(&self, sub_id: u32) -> Result<String> {
        Ok(self
            .subs
            .get(&sub_id)
            .ok_or_else(|| missing_sub(sub_id))?
            .topic
            .clone())
    }

    /// Runs `f`, which may reserve sequence numbers of topic `topic_name`
    /// (publishing, dead-lettering, replaying): when it fails or panics,
    /// the reservation is unconfirmed (see `Topic::unconfirm_reservation`).
    /// A panic (fjall panics on some inputs instead of failing) becomes an
    /// [`Error::Panicked`] for this call; the state stays usable.
    pub(crate) fn reserving<T>(
        &mut self,
        topic_name: &str,
        f: impl FnOnce(&mut State) -> Result<T>,
    ) -> Result<T> {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self)))
            .unwrap_or_else(|payload| {
                let e = crate::thread::panicked(format!("queue topic `{topic_name}`"), payload);
                log::error!("queue: {e}");
                Err(e)
            });
        if result.is_err() {
            if let Some(topic) = self.topics.get_mut(topic_name) {
                topic.unconfirm_reservation();
            }
        }
        result
    }

    pub(crate) fn stats(&self, sub_id: u32) -> Result<SubscriberStats> {
        let sub = self.subs.get(&sub_id).ok_or_else(|| missing_sub(sub_id))?;
        Ok(SubscriberStats {
            topic: sub.topic.clone(),
            subscriber: sub.name.clone(),
            depth: sub.ready(),
            in_flight: sub.inflight.len() as u64,
            dead_lettered: sub.counters.dead_letters,
            expired: sub.counters.expired,
            published: sub.activity.published.get(),
            delivered: sub.activity.delivered.get(),
            redelivered: sub.activity.redelivered.get(),
            acked: sub.activity.acked.get(),
            nacked: sub.activity.nacked.get(),
        })
    }
}

/// The queue config or `declare_topic` declares topics.
pub(crate) fn unknown_topic(name: &str) -> Error {
    Error::not_found(ObjectKind::Topic, name)
}

pub(crate) fn missing_sub(id: u32) -> Error {
    Error::storage_reason("queue", format!("subscriber id {id} has no state"))
}
