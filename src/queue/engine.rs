//! The engine's state and its bookkeeping: topics, subscribers, recovery
//! and publishing. Consuming lives in `delivery.rs`.
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
//! Recovery reads the topic records, one sequence reservation per topic, the
//! counters and the delivery-attempt records (one per entry delivered and
//! not yet acked); it never scans the messages or the queues.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::commit::Committer;
use super::config::{Durability, TopicConfig};
use super::keys;
use super::store::{Batch, Space, Store};
use super::subscriber::EntryId;
use crate::error::{Error, ObjectKind, Result};
use crate::message::Message;

/// Sequence numbers are reserved in blocks of this size, with one meta
/// write per block, so a restart resumes after the block without scanning.
const SEQ_BLOCK: u64 = 1 << 16;

/// What everything that uses the engine shares: the state behind one mutex,
/// the committer and the fixed settings.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// The sweeper thread waits here for the next ack deadline.
    pub(crate) sweeper: Condvar,
    pub(crate) committer: Committer,
    pub(crate) durability: Durability,
    pub(crate) max_message_bytes: usize,
}

impl Shared {
    pub(crate) fn new(state: State, durability: Durability, max_message_bytes: usize) -> Self {
        Shared {
            committer: Committer::new(state.store.clone()),
            state: Mutex::new(state),
            sweeper: Condvar::new(),
            durability,
            max_message_bytes,
        }
    }

    /// The state. Every operation leaves it consistent before it can fail,
    /// so a panic elsewhere does not make it unusable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A topic as stored under `meta/topic/<name>`, in MessagePack with field
/// names, so fields added later (with defaults) still read old records.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TopicRecord {
    id: u32,
    config: TopicConfig,
    subscribers: Vec<(String, u32)>,
}

pub(crate) struct Topic {
    pub(crate) id: u32,
    pub(crate) config: TopicConfig,
    pub(crate) subs: Vec<(String, u32)>,
    next_seq: u64,
    reserved: u64,
}

impl Topic {
    /// The next sequence number, reserving a new block in `batch` when the
    /// current one is used up.
    pub(crate) fn alloc_seq(&mut self, batch: &mut Batch) -> u64 {
        if self.next_seq >= self.reserved {
            self.reserved = self.next_seq + SEQ_BLOCK;
            batch.put(
                Space::Meta,
                keys::meta_seq(self.id),
                self.reserved.to_be_bytes().to_vec(),
            );
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Called when a batch that may hold a new reservation was not written
    /// (an error, or a panic that may have struck before or after the
    /// write): the next allocation writes a fresh reservation, so the one
    /// in memory never runs ahead of the stored one. Numbers are skipped,
    /// never reused; a reuse after reopen would overwrite stored messages.
    fn unconfirm_reservation(&mut self) {
        self.reserved = self.reserved.min(self.next_seq);
    }
}

/// The settings of a topic the delivery code needs, copied out so that the
/// topic and a subscriber can be borrowed at once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TopicInfo {
    pub(crate) id: u32,
    pub(crate) fanout: bool,
    pub(crate) dedupe: bool,
    pub(crate) ack_timeout: Option<std::time::Duration>,
    pub(crate) max_deliveries: u32,
}

impl Topic {
    pub(crate) fn info(&self) -> TopicInfo {
        TopicInfo {
            id: self.id,
            fanout: self.subs.len() > 1,
            dedupe: self.config.dedupe,
            ack_timeout: self.config.ack_timeout(),
            max_deliveries: self.config.max_deliveries,
        }
    }
}

/// Per-subscriber counters, stored under `stats/<sub>` in the batches that
/// change them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    /// Entries in the queue, in flight included.
    pub(crate) entries: u64,
    pub(crate) dead: u64,
    pub(crate) expired: u64,
}

impl Counters {
    fn to_bytes(self) -> Vec<u8> {
        [self.entries, self.dead, self.expired]
            .iter()
            .flat_map(|n| n.to_be_bytes())
            .collect()
    }

    fn from_bytes(bytes: &[u8], key: &[u8]) -> Result<Self> {
        if bytes.len() != 24 {
            return Err(keys::corrupt(
                Space::Stats,
                key,
                format!("expected 24 bytes of counters, found {}", bytes.len()),
            ));
        }
        Ok(Counters {
            entries: keys::read_u64(bytes, 0, Space::Stats, key)?,
            dead: keys::read_u64(bytes, 8, Space::Stats, key)?,
            expired: keys::read_u64(bytes, 16, Space::Stats, key)?,
        })
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Inflight {
    pub(crate) seq: u64,
    pub(crate) deliveries: u32,
    pub(crate) deadline: Option<Instant>,
    pub(crate) tag: u64,
}

pub(crate) struct Sub {
    pub(crate) id: u32,
    pub(crate) topic: String,
    pub(crate) name: String,
    /// Per priority: the next position not yet taken from the store.
    pub(crate) cursors: Vec<u64>,
    /// Per priority: entries given back, served before the cursor's.
    pub(crate) redeliver: Vec<VecDeque<(EntryId, u64)>>,
    pub(crate) inflight: HashMap<EntryId, Inflight>,
    /// Deliveries so far of every entry delivered and not yet settled
    /// for good; mirrored in the store (written when the entry is taken),
    /// so that a restart counts as a delivery.
    pub(crate) attempts: HashMap<EntryId, u32>,
    pub(crate) counters: Counters,
    /// Entries set aside since the open because their message is corrupt
    /// (see `delivery.rs`): stored, counted in `counters.entries`, never
    /// delivered.
    pub(crate) unreadable: u64,
    /// Consumers of this subscriber wait here.
    pub(crate) cond: Arc<Condvar>,
    /// How many consumers wait on `cond`: a publish notifies only then,
    /// because notifying is a system call even with nobody waiting.
    pub(crate) waiters: u32,
}

impl Sub {
    fn new(id: u32, topic: &str, name: &str, priorities: u8) -> Self {
        Sub {
            id,
            topic: topic.to_string(),
            name: name.to_string(),
            cursors: vec![0; usize::from(priorities)],
            redeliver: vec![VecDeque::new(); usize::from(priorities)],
            inflight: HashMap::new(),
            attempts: HashMap::new(),
            counters: Counters::default(),
            unreadable: 0,
            cond: Arc::new(Condvar::new()),
            waiters: 0,
        }
    }

    fn grow(&mut self, priorities: u8) {
        let n = usize::from(priorities);
        if self.cursors.len() < n {
            self.cursors.resize(n, 0);
            self.redeliver.resize(n, VecDeque::new());
        }
    }

    /// Entries waiting to be delivered.
    pub(crate) fn ready(&self) -> u64 {
        self.counters
            .entries
            .saturating_sub(self.inflight.len() as u64)
            .saturating_sub(self.unreadable)
    }

    pub(crate) fn put_counters(&self, batch: &mut Batch) {
        batch.put(Space::Stats, keys::stats(self.id), self.counters.to_bytes());
    }
}

pub(crate) struct State {
    pub(crate) closed: bool,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) topics: HashMap<String, Topic>,
    pub(crate) subs: HashMap<u32, Sub>,
    next_topic_id: u32,
    next_sub_id: u32,
    /// In-flight entries with an ack deadline, earliest first.
    pub(crate) deadlines: BTreeSet<(Instant, u64, u32, EntryId)>,
    pub(crate) next_tag: u64,
    /// Set when a take moved the earliest deadline forward: the sweeper
    /// must wake to reschedule.
    pub(crate) wake_sweeper: bool,
}

fn decode_record(key: &[u8], bytes: &[u8]) -> Result<TopicRecord> {
    rmp_serde::from_slice(bytes).map_err(|e| keys::corrupt(Space::Meta, key, e.to_string()))
}

impl State {
    /// Reads the state back from `store`: topic records, sequence
    /// reservations, counters and delivery attempts. Every stored entry
    /// starts out ready to deliver (in-flight ones come back).
    pub(crate) fn load(store: Arc<dyn Store>) -> Result<Self> {
        let (next_topic_id, next_sub_id) = match store.get(Space::Meta, keys::META_IDS)? {
            Some(v) => (
                keys::read_u32(&v, 0, Space::Meta, keys::META_IDS)?,
                keys::read_u32(&v, 4, Space::Meta, keys::META_IDS)?,
            ),
            None => (0, 0),
        };
        let mut state = State {
            closed: false,
            store: store.clone(),
            topics: HashMap::new(),
            subs: HashMap::new(),
            next_topic_id,
            next_sub_id,
            deadlines: BTreeSet::new(),
            next_tag: 0,
            wake_sweeper: false,
        };
        let records = store.scan(
            Space::Meta,
            keys::META_TOPIC_PREFIX,
            keys::META_TOPIC_END,
            usize::MAX,
        )?;
        for (key, value) in records {
            let record = decode_record(&key, &value)?;
            let seq_key = keys::meta_seq(record.id);
            let reserved = match store.get(Space::Meta, &seq_key)? {
                Some(v) => keys::read_u64(&v, 0, Space::Meta, &seq_key)?,
                None => 0,
            };
            for (name, sub_id) in &record.subscribers {
                let mut sub =
                    Sub::new(*sub_id, &record.config.name, name, record.config.priorities);
                let stats_key = keys::stats(*sub_id);
                if let Some(v) = store.get(Space::Stats, &stats_key)? {
                    sub.counters = Counters::from_bytes(&v, &stats_key)?;
                }
                let attempts = store.scan(
                    Space::Attempts,
                    &keys::sub_start(*sub_id),
                    &keys::sub_end(*sub_id),
                    usize::MAX,
                )?;
                for (k, v) in attempts {
                    let id = EntryId::from_queue_key(&k)
                        .ok_or_else(|| keys::corrupt(Space::Attempts, &k, "not a queue key"))?;
                    sub.attempts
                        .insert(id, keys::read_u32(&v, 0, Space::Attempts, &k)?);
                }
                state.subs.insert(*sub_id, sub);
            }
            state.topics.insert(
                record.config.name.clone(),
                Topic {
                    id: record.id,
                    config: record.config,
                    subs: record.subscribers,
                    next_seq: reserved,
                    reserved,
                },
            );
        }
        Ok(state)
    }

    /// Creates `config`'s topic, or updates it: subscribers may be added and
    /// priority levels raised, never removed or lowered.
    pub(crate) fn declare(&mut self, config: TopicConfig, field: &str) -> Result<()> {
        config.validate_as(field)?;
        let mut batch = Batch::new();
        let (id, mut subscribers) = match self.topics.get(&config.name) {
            Some(topic) => {
                if config.priorities < topic.config.priorities {
                    return Err(Error::invalid(
                        format!("{field}.priorities"),
                        format!(
                            "topic `{}` has {} priority levels; they cannot go down to {}",
                            config.name, topic.config.priorities, config.priorities
                        ),
                    ));
                }
                if let Some((gone, _)) = topic
                    .subs
                    .iter()
                    .find(|(name, _)| !config.subscribers.contains(name))
                {
                    return Err(Error::invalid(
                        format!("{field}.subscribers"),
                        format!(
                            "topic `{}` has subscriber `{gone}`, which cannot be removed",
                            config.name
                        ),
                    ));
                }
                (topic.id, topic.subs.clone())
            }
            None => {
                let id = self.next_topic_id;
                self.next_topic_id += 1;
                (id, Vec::new())
            }
        };
        let mut new_subs = Vec::new();
        for name in &config.subscribers {
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
            keys::meta_topic(&config.name),
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
                Sub::new(sub_id, &config.name, &name, config.priorities),
            );
        }
        for (_, sub_id) in &subscribers {
            if let Some(sub) = self.subs.get_mut(sub_id) {
                sub.grow(config.priorities);
            }
        }
        match self.topics.get_mut(&config.name) {
            Some(topic) => {
                topic.config = config;
                topic.subs = subscribers;
            }
            None => {
                self.topics.insert(
                    config.name.clone(),
                    Topic {
                        id,
                        config,
                        subs: subscribers,
                        next_seq: 0,
                        reserved: 0,
                    },
                );
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

    /// Writes `messages` to `topic` in one batch: each message once, an
    /// entry per subscriber, the counters. Returns the condvars to notify.
    pub(crate) fn publish(
        &mut self,
        topic_name: &str,
        messages: &[Message],
        max_bytes: usize,
    ) -> Result<Vec<Arc<Condvar>>> {
        self.reserving(topic_name, |state| {
            state.publish_batch(topic_name, messages, max_bytes)
        })
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

    fn publish_batch(
        &mut self,
        topic_name: &str,
        messages: &[Message],
        max_bytes: usize,
    ) -> Result<Vec<Arc<Condvar>>> {
        let State {
            topics,
            subs,
            store,
            ..
        } = self;
        let topic = topics
            .get_mut(topic_name)
            .ok_or_else(|| unknown_topic(topic_name))?;
        let now = SystemTime::now();
        let ttl = topic.config.default_ttl_ms;
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
            let bytes = if ttl > 0 && m.expires_at().is_none() {
                m.clone()
                    .with_expiry(now + std::time::Duration::from_millis(ttl))
                    .to_bytes()?
            } else {
                m.to_bytes()?
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
        let last_priority = topic.config.priorities - 1;
        let result = (|| -> Result<()> {
            for (m, bytes) in messages.iter().zip(encoded) {
                let dedupe_key = if topic.config.dedupe { m.key() } else { None };
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
                        (topic.subs.len() as u32).to_be_bytes().to_vec(),
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
            let mut counters = Vec::new();
            for (i, (_, sub_id)) in topic.subs.iter().enumerate() {
                let sub = subs.get(sub_id).ok_or_else(|| missing_sub(*sub_id))?;
                let mut c = sub.counters;
                c.entries += added[i];
                batch.put(Space::Stats, keys::stats(*sub_id), c.to_bytes());
                counters.push(c);
            }
            store.write(std::mem::take(&mut batch))?;
            for (i, (_, sub_id)) in topic.subs.iter().enumerate() {
                if let Some(sub) = subs.get_mut(sub_id) {
                    sub.counters = counters[i];
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
            .filter(|s| s.waiters > 0)
            .map(|s| s.cond.clone())
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

/// The queue config or `declare_topic` declares topics.
pub(crate) fn unknown_topic(name: &str) -> Error {
    Error::not_found(ObjectKind::Topic, name)
}

pub(crate) fn missing_sub(id: u32) -> Error {
    Error::storage_reason("queue", format!("subscriber id {id} has no state"))
}
