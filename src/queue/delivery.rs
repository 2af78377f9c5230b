//! Taking: [`State::take`] hands out entries, redeliveries first, then
//! each queue from its cursor, priority 0 first, FIFO within a level.
//!
//! An entry taken by a consumer stays in the store and moves, in memory, to
//! the subscriber's in-flight set with an ack deadline (`settle.rs` takes it
//! out again). Taking writes the entry's new delivery count in the
//! take's batch (for a first delivery, only the raised watermark of its
//! level: see `subscriber_state.rs`), and the batch is flushed to the
//! OS before the messages are handed out, so that a delivery that reached
//! a consumer counts even if the process then dies; an entry that had used
//! up `max_deliveries` before a restart is dead-lettered when it is next
//! taken. An entry whose message cannot be read is set aside, not
//! delivered. What this means for users is on
//! [`Subscriber::next_batch`](super::Subscriber::next_batch).

use std::hash::BuildHasherDefault;
use std::time::{Instant, SystemTime};

use super::entry::{EntryId, Received};
use super::id_hash::{IdMap, IdSet};
use super::keys;
use super::settle::drop_entry;
use super::state::State;
use super::store::{Batch, Space, Store};
use super::subscriber_state::{Inflight, SubscriberState};
use super::topic::TopicInfo;
use crate::error::{Error, Result};
use crate::message::Message;

impl State {
    /// Takes up to `max` entries for `sub_id`: redeliveries first, then the
    /// queue from its cursor, priority 0 first. Expired messages are dropped
    /// and counted on the way. Returns an error only when nothing could be
    /// taken; an error after some entries were taken is left for the next
    /// call (the entry at fault stays where it is).
    pub(crate) fn take(&mut self, sub_id: u32, max: usize) -> Result<Vec<Received>> {
        if max == 0 || self.subs.get(&sub_id).is_none_or(|s| s.ready() == 0) {
            return Ok(Vec::new());
        }
        let mut taking = Taking {
            now: self.clock.now(),
            wall: self.clock.wall(),
            tag: self.next_tag,
            batch: Batch::new(),
            out: Vec::new(),
            deadlines: Vec::new(),
            poisoned: Vec::new(),
            moved: false,
        };
        let result = (|| -> Result<()> {
            let (sub, info, store) = self.parts(sub_id)?;
            let levels = (0..sub.cursors.len()).zip(0u8..);
            for (priority, p) in levels {
                while taking.out.len() < max {
                    let Some(&(id, seq)) = sub.redeliver[priority].front() else {
                        break;
                    };
                    let prior = sub.deliveries(id);
                    let taken = taking.entry(sub, info, store, (id, seq, prior), None, false);
                    sub.redeliver[priority].pop_front();
                    taken?;
                }
                while taking.out.len() < max {
                    let from = keys::queue(sub.id, p, sub.cursors[priority]);
                    let entries = store.scan(
                        Space::Queue,
                        &from,
                        &keys::queue_end(sub.id, p),
                        max - taking.out.len(),
                    )?;
                    if entries.is_empty() {
                        break;
                    }
                    let parsed: Vec<Result<(EntryId, u64)>> =
                        entries.iter().map(|(k, v)| parse_entry(k, v)).collect();
                    let seqs = parsed
                        .iter()
                        .filter_map(|r| r.as_ref().ok().map(|(_, seq)| *seq));
                    let mut bodies = match prefetch(store, info.id, seqs) {
                        Ok(bodies) => bodies,
                        // A damaged block among them: read each on its
                        // own, so that only its messages are set aside.
                        Err(e @ Error::Corrupt { .. }) => {
                            log::warn!("queue: {e}; reading these messages one by one");
                            IdMap::default()
                        }
                        Err(e) => return Err(e),
                    };
                    for entry in parsed {
                        let (id, seq) = entry?;
                        // Raised first, the watermark says the entry was
                        // delivered once, so a first delivery writes no
                        // count of its own.
                        let prior = sub.deliveries(id);
                        taking.moved |= sub.raise_watermark(p, id.position + 1);
                        let body = bodies.remove(&seq);
                        let taken = taking.entry(sub, info, store, (id, seq, prior), body, true);
                        sub.cursors[priority] = id.position + 1;
                        taken?;
                    }
                }
                if taking.out.len() >= max {
                    break;
                }
            }
            Ok(())
        })();
        let Taking {
            tag,
            mut batch,
            out,
            deadlines,
            poisoned,
            moved,
            ..
        } = taking;
        self.next_tag = tag;
        let earliest = self.deadlines.first().map(|d| d.0);
        if deadlines.iter().any(|d| earliest.is_none_or(|e| d.0 < e)) {
            self.wake_sweeper = true;
        }
        self.deadlines.extend(deadlines);
        if let Some(sub) = self.subs.get(&sub_id).filter(|_| moved) {
            sub.put_watermark(&mut batch);
        }
        if !batch.is_empty() {
            if let Ok((sub, info, _)) = self.parts(sub_id) {
                sub.put_counters(&mut batch, info.next_seq);
            }
            self.store.write(batch)?;
        }
        if !out.is_empty() {
            // The delivery counts just written reach the OS before any
            // consumer sees the messages, so a consumer that crashes the
            // process (even by kill -9) has had its delivery counted. If
            // that fails the messages still go out: at worst the crash is
            // not counted.
            if let Err(e) = self.store.flush() {
                log::warn!("queue: delivery counts not flushed: {e}");
            }
        }
        if !poisoned.is_empty() {
            log::warn!(
                "queue: {} entries had used up their deliveries before a restart; dead-lettered",
                poisoned.len()
            );
            // On failure they stay stored in their queue and come back
            // (and are dead-lettered) after the next open.
            if let Err(e) = self.give_back(sub_id, poisoned, true) {
                log::error!("queue: dead-lettering entries failed: {e}");
            }
        }
        if let Some(sub) = self.subs.get(&sub_id) {
            for r in &out {
                sub.activity.delivered(r.deliveries);
            }
            sub.observe();
        }
        match result {
            Ok(()) => Ok(out),
            Err(e) if out.is_empty() => Err(e),
            Err(e) => {
                log::warn!("queue: stopped a batch early: {e}");
                Ok(out)
            }
        }
    }
}

/// One call of [`State::take`]: what it hands out and writes so far.
struct Taking {
    /// The queue's clock at the take: ack deadlines count from `now`,
    /// expiry is checked against `wall`.
    now: Instant,
    wall: SystemTime,
    /// The tag of the last delivery made.
    tag: u64,
    /// The delivery counts, expiries and dedupe releases, written at the
    /// end in one batch.
    batch: Batch,
    out: Vec<Received>,
    /// The ack deadlines of the deliveries in `out`.
    deadlines: Vec<(Instant, u64, u32, EntryId)>,
    /// Entries that reached the delivery limit before a restart, to
    /// dead-letter.
    poisoned: Vec<(EntryId, Inflight)>,
    /// A delivery watermark was raised: the batch stores it.
    moved: bool,
}

impl Taking {
    /// Takes entry `(id, seq)` of `sub`, delivered `deliveries` times so
    /// far (read before the take raised the watermark): delivers it, or drops it when it
    /// expired, or dead-letters it when it used up its deliveries before a
    /// restart, or sets it aside when its message cannot be read. `body`
    /// is the message's bytes when prefetched; `fresh` is true the first
    /// time any subscriber takes the entry from the store.
    fn entry(
        &mut self,
        sub: &mut SubscriberState,
        info: TopicInfo,
        store: &dyn Store,
        (id, seq, deliveries): (EntryId, u64, u32),
        body: Option<Vec<u8>>,
        fresh: bool,
    ) -> Result<()> {
        // Reads the message; `None` when it expired: then the entry is
        // dropped in the batch and counted.
        let pull = || -> Result<Option<Message>> {
            let message = if let Some(bytes) = body {
                decode_message(info.id, seq, &bytes)?
            } else {
                let qkey = keys::queue(sub.id, id.priority, id.position);
                read_message(store, info.id, seq, Space::Queue, &qkey)?
            };
            // Every read that can fail comes before anything is added to the
            // batch: an entry set aside for a failed read changes nothing.
            let mut delivered_key = None;
            if fresh && info.dedupe {
                if let Some(key) = message.key() {
                    // Delivered now: a later message with this key is a new one.
                    let dkey = keys::dedupe(info.id, key);
                    if store.get(Space::Dedupe, &dkey)?.as_deref() == Some(&seq.to_be_bytes()[..]) {
                        delivered_key = Some(dkey);
                    }
                }
            }
            let expired = message.is_expired_at(self.wall);
            if expired {
                drop_entry(sub, info, store, id, seq, &mut self.batch)?;
                sub.counters.expired += 1;
                sub.activity.expired();
            }
            if let Some(dkey) = delivered_key {
                self.batch.delete(Space::Dedupe, dkey);
            }
            Ok((!expired).then_some(message))
        };
        let message = match pull() {
            Ok(Some(message)) => message,
            Ok(None) => return Ok(()), // expired
            Err(e @ Error::Corrupt { .. }) => {
                set_aside(sub, id, &e);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if info.max_deliveries > 0 && deliveries >= info.max_deliveries {
            // A consumer crashed (or the queue was reopened) while holding
            // its last allowed delivery.
            self.poisoned.push((
                id,
                Inflight {
                    seq,
                    deliveries,
                    deadline: None,
                    tag: 0,
                },
            ));
            return Ok(());
        }
        self.deliver(sub, info, (id, seq), message, deliveries + 1);
        Ok(())
    }

    /// Puts the entry in flight as delivery number `deliveries`, and
    /// records the count in the batch so that it survives a restart.
    fn deliver(
        &mut self,
        sub: &mut SubscriberState,
        info: TopicInfo,
        (id, seq): (EntryId, u64),
        message: Message,
        deliveries: u32,
    ) {
        sub.set_attempts(id, deliveries, &mut self.batch);
        self.tag += 1;
        // A deadline beyond what the clock can hold never comes.
        let deadline = info.ack_timeout.and_then(|t| self.now.checked_add(t));
        if let Some(d) = deadline {
            self.deadlines.push((d, self.tag, sub.id, id));
        }
        sub.inflight.insert(
            id,
            Inflight {
                seq,
                deliveries,
                deadline,
                tag: self.tag,
            },
        );
        self.out.push(Received {
            id: EntryId {
                delivery: deliveries,
                ..id
            },
            message,
            deliveries,
        });
    }
}

/// Sets aside entry `id`, whose message is corrupt (unreadable bytes, a
/// damaged table block, missing): it is not delivered, reported at ERROR,
/// and the take goes on with the next one. See "A corrupt message is set
/// aside" on [`Subscriber::next_batch`](super::Subscriber::next_batch).
fn set_aside(sub: &mut SubscriberState, id: EntryId, e: &Error) {
    sub.unreadable += 1;
    log::error!(
        "queue: entry {id} of subscriber `{}` of topic `{}` set aside, not delivered: {e}. It \
         stays in the store as it is; the queue goes on without it until it is reopened",
        sub.name,
        sub.topic
    );
}

/// Reads and decodes message `seq`; errors name the key at fault.
pub(crate) fn read_message(
    store: &dyn Store,
    topic: u32,
    seq: u64,
    from: Space,
    from_key: &[u8],
) -> Result<Message> {
    let mkey = keys::message(topic, seq);
    let bytes = store.get(Space::Messages, &mkey)?.ok_or_else(|| {
        keys::corrupt(
            from,
            from_key,
            format!("refers to message {seq}, which is not stored"),
        )
    })?;
    decode_message(topic, seq, &bytes)
}

fn decode_message(topic: u32, seq: u64, bytes: &[u8]) -> Result<Message> {
    Message::from_bytes(bytes)
        .map_err(|e| keys::corrupt(Space::Messages, &keys::message(topic, seq), e.to_string()))
}

/// A queue entry's id and message sequence.
pub(crate) fn parse_entry(key: &[u8], value: &[u8]) -> Result<(EntryId, u64)> {
    let id =
        keys::entry_id(key).ok_or_else(|| keys::corrupt(Space::Queue, key, "not a queue key"))?;
    Ok((id, keys::read_u64(value, 0, Space::Queue, key)?))
}

/// The bodies of messages `seqs` of `topic`, read with one range scan when
/// they lie close together (the usual case: a queue is in publish order),
/// which is much cheaper than a point read each. Returns nothing when they
/// are spread out; the caller reads those one by one.
fn prefetch(
    store: &dyn Store,
    topic: u32,
    seqs: impl Iterator<Item = u64>,
) -> Result<IdMap<u64, Vec<u8>>> {
    let wanted: IdSet<u64> = seqs.collect();
    let (Some(&min), Some(&max)) = (wanted.iter().min(), wanted.iter().max()) else {
        return Ok(IdMap::default());
    };
    let span = max - min + 1;
    let Some(end) = max.checked_add(1) else {
        return Ok(IdMap::default());
    };
    if wanted.len() < 4 || span > 2 * wanted.len() as u64 {
        return Ok(IdMap::default());
    }
    let rows = store.scan(
        Space::Messages,
        &keys::message(topic, min),
        &keys::message(topic, end),
        usize::try_from(span).unwrap_or(usize::MAX),
    )?;
    let mut bodies = IdMap::with_capacity_and_hasher(wanted.len(), BuildHasherDefault::default());
    for (key, value) in rows {
        let seq = keys::read_u64(&key, 4, Space::Messages, &key)?;
        if wanted.contains(&seq) {
            bodies.insert(seq, value);
        }
    }
    Ok(bodies)
}
