//! Consuming: taking entries, acks and nacks, redelivery at the front,
//! dead letters and expiry.
//!
//! An entry taken by a consumer stays in the store and moves, in memory, to
//! the subscriber's in-flight set with an ack deadline. `ack` deletes it
//! (and the message, once no subscriber holds it); `nack` with requeue,
//! `reset` and a passed deadline put it back at the front of its priority
//! level, in queue order; after `max_deliveries` deliveries, or on `nack`
//! without requeue, it moves to the subscriber's dead-letter queue instead.
//!
//! # Delivery counts survive restarts
//!
//! Taking an entry writes its new delivery count (the `attempts` space)
//! in the take's batch, and the batch is flushed to the OS before the
//! messages are handed out. So a delivery that reached a consumer counts
//! even if the process then dies (`kill -9` included): after a reopen the
//! entry comes back as delivery n + 1 (`deliveries` > 1, redelivered), and
//! an entry that had used up `max_deliveries` goes to the dead-letter queue
//! when it is next taken instead of being delivered again. A poison message
//! that crashes its consumer is thus dead-lettered after `max_deliveries`
//! crashes, with no extra delivery per crash. Only a crash of the machine
//! (power loss) can forget counts written since the last fsync (the next
//! group commit, or close): then at most the deliveries made since that
//! fsync are not counted.
//! Priority 0 is served first, FIFO within a level.
//!
//! # A corrupt message is set aside
//!
//! When the message of an entry being taken cannot be read (its bytes do
//! not decode, it is missing, or the table block holding it is damaged,
//! which `FjallStore` reports as an [`Error::Corrupt`] naming the key and
//! the table file), the entry is set aside: it is not delivered, an ERROR
//! log names the entry, the subscriber and the error, and the batch goes
//! on with the next entry, so one damaged block does not stop the queue.
//! The entry stays in the store as it is (nothing is deleted on account of
//! a read that failed; a repaired file brings it back), `depth` no longer
//! counts it, and the next open meets it again and says so again. It is
//! not dead-lettered: the dead-letter queue would then fail to list it
//! too. A damaged block of queue entries themselves cannot be stepped
//! over (the positions after it are unknown): `next_batch` fails with that
//! `Error::Corrupt`.

use std::collections::{HashMap, HashSet};
use std::time::{Instant, SystemTime};

use super::engine::{missing_sub, Inflight, State, Sub, TopicInfo};
use super::keys;
use super::store::{Batch, Space, Store};
use super::subscriber::{DeadLetter, EntryId, Received, SubscriberStats};
use crate::error::{Error, Result};
use crate::message::Message;

impl State {
    fn parts(&mut self, sub_id: u32) -> Result<(&mut Sub, TopicInfo, &dyn Store)> {
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

    fn sub_topic(&self, sub_id: u32) -> Result<String> {
        Ok(self
            .subs
            .get(&sub_id)
            .ok_or_else(|| missing_sub(sub_id))?
            .topic
            .clone())
    }

    /// Takes up to `max` entries for `sub_id`: redeliveries first, then the
    /// queue from its cursor, priority 0 first. Expired messages are dropped
    /// and counted on the way. Returns an error only when nothing could be
    /// taken; an error after some entries were taken is left for the next
    /// call (the entry at fault stays where it is).
    pub(crate) fn take(&mut self, sub_id: u32, max: usize) -> Result<Vec<Received>> {
        let mut out = Vec::new();
        if max == 0 || self.subs.get(&sub_id).is_none_or(|s| s.ready() == 0) {
            return Ok(out);
        }
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut batch = Batch::new();
        let mut tag = self.next_tag;
        let mut new_deadlines = Vec::new();
        // Entries that reached the delivery limit before a restart.
        let mut poisoned = Vec::new();
        let result = (|| -> Result<()> {
            let (sub, info, store) = self.parts(sub_id)?;
            for priority in 0..sub.cursors.len() {
                let p = priority as u8;
                while out.len() < max {
                    let Some(&(id, seq)) = sub.redeliver[priority].front() else {
                        break;
                    };
                    let taken = pull(sub, info, store, id, seq, None, false, wall, &mut batch);
                    sub.redeliver[priority].pop_front();
                    let Some(taken) = readable(sub, id, taken)? else {
                        continue;
                    };
                    if let Some(message) = taken {
                        if let Some(spent) = exhausted(sub, info, id, seq) {
                            poisoned.push(spent);
                            continue;
                        }
                        out.push(deliver(
                            sub,
                            info,
                            id,
                            seq,
                            message,
                            now,
                            &mut tag,
                            &mut new_deadlines,
                            &mut batch,
                        ));
                    }
                }
                while out.len() < max {
                    let from = keys::queue(sub.id, p, sub.cursors[priority]);
                    let entries = store.scan(
                        Space::Queue,
                        &from,
                        &keys::queue_end(sub.id, p),
                        max - out.len(),
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
                            HashMap::new()
                        }
                        Err(e) => return Err(e),
                    };
                    for entry in parsed {
                        let (id, seq) = entry?;
                        let body = bodies.remove(&seq);
                        let taken = pull(sub, info, store, id, seq, body, true, wall, &mut batch);
                        sub.cursors[priority] = id.position + 1;
                        let Some(taken) = readable(sub, id, taken)? else {
                            continue;
                        };
                        if let Some(message) = taken {
                            if let Some(spent) = exhausted(sub, info, id, seq) {
                                poisoned.push(spent);
                                continue;
                            }
                            out.push(deliver(
                                sub,
                                info,
                                id,
                                seq,
                                message,
                                now,
                                &mut tag,
                                &mut new_deadlines,
                                &mut batch,
                            ));
                        }
                    }
                }
                if out.len() >= max {
                    break;
                }
            }
            Ok(())
        })();
        self.next_tag = tag;
        let earliest = self.deadlines.first().map(|d| d.0);
        if new_deadlines
            .iter()
            .any(|d| earliest.is_none_or(|e| d.0 < e))
        {
            self.wake_sweeper = true;
        }
        for d in new_deadlines {
            self.deadlines.insert(d);
        }
        let delivered = !out.is_empty();
        if !batch.is_empty() {
            if let Some(sub) = self.subs.get(&sub_id) {
                sub.put_counters(&mut batch);
            }
            self.store.write(batch)?;
        }
        if delivered {
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
        match result {
            Ok(()) => Ok(out),
            Err(e) if out.is_empty() => Err(e),
            Err(e) => {
                log::warn!("queue: stopped a batch early: {e}");
                Ok(out)
            }
        }
    }

    /// Acks deliveries; returns how many. `strict`: a stale or unknown id
    /// is an error and nothing is acked; otherwise such ids are skipped.
    pub(crate) fn ack(&mut self, sub_id: u32, ids: &[EntryId], strict: bool) -> Result<usize> {
        let mut batch = Batch::new();
        let mut removed = Vec::new();
        let (sub, info, store) = self.parts(sub_id)?;
        for id in current(sub, ids, strict)? {
            if let Some(inflight) = sub.inflight.remove(&id) {
                drop_entry(sub, info, store, id, inflight.seq, &mut batch)?;
                removed.push((id, inflight));
            }
        }
        if !removed.is_empty() {
            sub.put_counters(&mut batch);
        }
        self.forget_deadlines(sub_id, &removed);
        self.store.write(batch)?;
        Ok(removed.len())
    }

    /// Acks `id` and every entry of the subscriber delivered before it.
    pub(crate) fn ack_through(&mut self, sub_id: u32, id: EntryId) -> Result<usize> {
        let sub = self.subs.get(&sub_id).ok_or_else(|| missing_sub(sub_id))?;
        let slot = current(sub, &[id], true)?[0];
        let Some(last) = sub.inflight.get(&slot).map(|i| i.tag) else {
            return Ok(0);
        };
        let ids: Vec<EntryId> = sub
            .inflight
            .iter()
            .filter(|(_, i)| i.tag <= last)
            .map(|(slot, i)| current_id(*slot, i))
            .collect();
        self.ack(sub_id, &ids, true)
    }

    /// Gives deliveries back (`requeue`) or dead-letters them; `strict` as
    /// for `ack`.
    pub(crate) fn nack(
        &mut self,
        sub_id: u32,
        ids: &[EntryId],
        requeue: bool,
        strict: bool,
    ) -> Result<usize> {
        self.give_back_ids(sub_id, ids, requeue, false, strict)
    }

    /// Gives deliveries that never reached a consumer back to the front,
    /// without counting the delivery; `strict` as for `ack`.
    pub(crate) fn release(&mut self, sub_id: u32, ids: &[EntryId], strict: bool) -> Result<usize> {
        self.give_back_ids(sub_id, ids, true, true, strict)
    }

    fn give_back_ids(
        &mut self,
        sub_id: u32,
        ids: &[EntryId],
        requeue: bool,
        uncount: bool,
        strict: bool,
    ) -> Result<usize> {
        let sub = self
            .subs
            .get_mut(&sub_id)
            .ok_or_else(|| missing_sub(sub_id))?;
        let slots = current(sub, ids, strict)?;
        let taken: Vec<(EntryId, Inflight)> = slots
            .iter()
            .filter_map(|id| sub.inflight.remove(id).map(|i| (*id, i)))
            .map(|(id, mut i)| {
                if uncount {
                    i.deliveries = i.deliveries.saturating_sub(1);
                }
                (id, i)
            })
            .collect();
        self.forget_deadlines(sub_id, &taken);
        let n = taken.len();
        self.give_back(sub_id, taken, !requeue)?;
        Ok(n)
    }

    /// Every in-flight entry of the subscriber back to the front (ppmq's
    /// ResetAck, for a consumer that reconnects).
    pub(crate) fn reset(&mut self, sub_id: u32) -> Result<usize> {
        let sub = self
            .subs
            .get_mut(&sub_id)
            .ok_or_else(|| missing_sub(sub_id))?;
        let taken: Vec<(EntryId, Inflight)> = sub.inflight.drain().collect();
        self.forget_deadlines(sub_id, &taken);
        let n = taken.len();
        self.give_back(sub_id, taken, false)?;
        Ok(n)
    }

    /// Redelivers every entry whose ack deadline is at or before `now`.
    /// Returns the subscribers that got entries back and the next deadline.
    pub(crate) fn sweep(&mut self, now: Instant) -> (Vec<u32>, Option<Instant>) {
        let mut expired: std::collections::BTreeMap<u32, Vec<(EntryId, Inflight)>> =
            Default::default();
        while let Some(&first) = self.deadlines.first() {
            if first.0 > now {
                break;
            }
            self.deadlines.pop_first();
            let (_, tag, sub_id, id) = first;
            if let Some(sub) = self.subs.get_mut(&sub_id) {
                if sub.inflight.get(&id).is_some_and(|i| i.tag == tag) {
                    if let Some(i) = sub.inflight.remove(&id) {
                        expired.entry(sub_id).or_default().push((id, i));
                    }
                }
            }
        }
        let mut woken = Vec::new();
        for (sub_id, taken) in expired {
            log::debug!("queue: {} deliveries timed out; redelivering", taken.len());
            if let Err(e) = self.give_back(sub_id, taken, false) {
                log::error!("queue: redelivery after an ack timeout failed: {e}");
            }
            woken.push(sub_id);
        }
        (woken, self.deadlines.first().map(|d| d.0))
    }

    fn forget_deadlines(&mut self, sub_id: u32, taken: &[(EntryId, Inflight)]) {
        for (id, i) in taken {
            if let Some(d) = i.deadline {
                self.deadlines.remove(&(d, i.tag, sub_id, *id));
            }
        }
    }

    /// Puts entries taken out of flight back at the front, in queue order,
    /// or into the dead-letter queue (`dead`, or when they reached the
    /// topic's delivery limit).
    fn give_back(
        &mut self,
        sub_id: u32,
        taken: Vec<(EntryId, Inflight)>,
        dead: bool,
    ) -> Result<()> {
        if taken.is_empty() {
            return Ok(());
        }
        // Dead-lettering reserves positions.
        let topic = self.sub_topic(sub_id)?;
        self.reserving(&topic, |state| state.give_back_batch(sub_id, taken, dead))
    }

    fn give_back_batch(
        &mut self,
        sub_id: u32,
        taken: Vec<(EntryId, Inflight)>,
        dead: bool,
    ) -> Result<()> {
        let State {
            topics,
            subs,
            store,
            ..
        } = self;
        let sub = subs.get_mut(&sub_id).ok_or_else(|| missing_sub(sub_id))?;
        let topic = topics
            .get_mut(&sub.topic)
            .ok_or_else(|| missing_sub(sub_id))?;
        let max = topic.config.max_deliveries;
        let mut batch = Batch::new();
        let mut front = Vec::new();
        for (id, i) in taken {
            let qkey = keys::queue(sub.id, id.priority, id.position);
            if dead || (max > 0 && i.deliveries >= max) {
                let position = topic.alloc_seq(&mut batch);
                let value = [i.seq.to_be_bytes().as_slice(), &i.deliveries.to_be_bytes()].concat();
                batch.put(Space::Dead, keys::dead(sub.id, position), value);
                batch.delete_weak(Space::Queue, qkey.clone());
                if sub.attempts.remove(&id).is_some() {
                    batch.delete(Space::Attempts, qkey);
                }
                sub.counters.entries = sub.counters.entries.saturating_sub(1);
                sub.counters.dead += 1;
            } else {
                if i.deliveries == 0 {
                    if sub.attempts.remove(&id).is_some() {
                        batch.delete(Space::Attempts, qkey);
                    }
                } else {
                    sub.attempts.insert(id, i.deliveries);
                    batch.put(Space::Attempts, qkey, i.deliveries.to_be_bytes().to_vec());
                }
                front.push((id, i.seq));
            }
        }
        // The redelivery list stays in queue order, whatever order entries
        // come back in: it is served before the rest of the level.
        for (id, seq) in front {
            let list = &mut sub.redeliver[usize::from(id.priority)];
            let at = list.partition_point(|(other, _)| other.position < id.position);
            list.insert(at, (id, seq));
        }
        sub.put_counters(&mut batch);
        store.write(batch)?;
        sub.cond.notify_all();
        Ok(())
    }

    /// Up to `limit` dead letters of the subscriber, oldest first.
    pub(crate) fn dead_letters(&mut self, sub_id: u32, limit: usize) -> Result<Vec<DeadLetter>> {
        let (sub, info, store) = self.parts(sub_id)?;
        let entries = store.scan(
            Space::Dead,
            &keys::sub_start(sub.id),
            &keys::sub_end(sub.id),
            limit,
        )?;
        let mut out = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let position = keys::read_u64(&key, 4, Space::Dead, &key)?;
            let seq = keys::read_u64(&value, 0, Space::Dead, &key)?;
            let deliveries = keys::read_u32(&value, 8, Space::Dead, &key)?;
            out.push(DeadLetter {
                position,
                message: read_message(store, info.id, seq, Space::Dead, &key)?,
                deliveries,
            });
        }
        Ok(out)
    }

    /// Moves every dead letter back to the end of its queue (`replay`), or
    /// deletes them all. Returns how many.
    pub(crate) fn drain_dead(&mut self, sub_id: u32, replay: bool) -> Result<usize> {
        // Replaying reserves positions.
        let topic = self.sub_topic(sub_id)?;
        self.reserving(&topic, |state| state.drain_dead_batches(sub_id, replay))
    }

    fn drain_dead_batches(&mut self, sub_id: u32, replay: bool) -> Result<usize> {
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
            let last_priority = topic.config.priorities - 1;
            let entries = store.scan(
                Space::Dead,
                &keys::sub_start(sub.id),
                &keys::sub_end(sub.id),
                1024,
            )?;
            if entries.is_empty() {
                if n > 0 {
                    sub.cond.notify_all();
                }
                return Ok(n);
            }
            let mut batch = Batch::new();
            for (key, value) in entries {
                let seq = keys::read_u64(&value, 0, Space::Dead, &key)?;
                if replay {
                    let message = read_message(&**store, info.id, seq, Space::Dead, &key)?;
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
                batch.delete_weak(Space::Dead, key);
                sub.counters.dead = sub.counters.dead.saturating_sub(1);
                n += 1;
            }
            sub.put_counters(&mut batch);
            store.write(batch)?;
        }
    }

    pub(crate) fn stats(&self, sub_id: u32) -> Result<SubscriberStats> {
        let sub = self.subs.get(&sub_id).ok_or_else(|| missing_sub(sub_id))?;
        Ok(SubscriberStats {
            topic: sub.topic.clone(),
            subscriber: sub.name.clone(),
            depth: sub.ready(),
            in_flight: sub.inflight.len() as u64,
            dead_lettered: sub.counters.dead,
            expired: sub.counters.expired,
        })
    }
}

/// Reads the message of entry `(id, seq)`. `None` when it expired: then the
/// entry is dropped in `batch` and counted. `fresh` is true the first time
/// any subscriber takes the entry from the store.
#[allow(clippy::too_many_arguments)]
fn pull(
    sub: &mut Sub,
    info: TopicInfo,
    store: &dyn Store,
    id: EntryId,
    seq: u64,
    body: Option<Vec<u8>>,
    fresh: bool,
    now: SystemTime,
    batch: &mut Batch,
) -> Result<Option<Message>> {
    let qkey = keys::queue(sub.id, id.priority, id.position);
    let message = match body {
        Some(bytes) => decode_message(info.id, seq, &bytes)?,
        None => read_message(store, info.id, seq, Space::Queue, &qkey)?,
    };
    // Every read that can fail comes before anything is added to `batch`:
    // an entry set aside for a failed read (see `readable`) changes nothing.
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
    let expired = message.is_expired_at(now);
    if expired {
        drop_entry(sub, info, store, id, seq, batch)?;
        sub.counters.expired += 1;
    }
    if let Some(dkey) = delivered_key {
        batch.delete(Space::Dedupe, dkey);
    }
    Ok((!expired).then_some(message))
}

/// `pulled` as [`pull`] returned it for entry `id`; `None` when its
/// message is corrupt (unreadable bytes, a damaged table block, missing):
/// then the entry is set aside, reported at ERROR, and the caller goes on
/// with the next one. See "A corrupt message is set aside" in the module
/// docs.
fn readable(
    sub: &mut Sub,
    id: EntryId,
    pulled: Result<Option<Message>>,
) -> Result<Option<Option<Message>>> {
    match pulled {
        Ok(taken) => Ok(Some(taken)),
        Err(e @ Error::Corrupt { .. }) => {
            sub.unreadable += 1;
            log::error!(
                "queue: entry {id} of subscriber `{}` of topic `{}` set aside, not delivered: \
                 {e}. It stays in the store as it is; the queue goes on without it until it is \
                 reopened",
                sub.name,
                sub.topic
            );
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The entry as an in-flight record to dead-letter, when it was delivered
/// `max_deliveries` times already: a consumer crashed (or the queue was
/// reopened) while holding its last allowed delivery.
fn exhausted(sub: &Sub, info: TopicInfo, id: EntryId, seq: u64) -> Option<(EntryId, Inflight)> {
    let deliveries = sub.attempts.get(&id).copied().unwrap_or(0);
    (info.max_deliveries > 0 && deliveries >= info.max_deliveries).then_some((
        id,
        Inflight {
            seq,
            deliveries,
            deadline: None,
            tag: 0,
        },
    ))
}

/// Puts the entry in flight as its next delivery, and records the count in
/// `batch` so that it survives a restart.
#[allow(clippy::too_many_arguments)]
fn deliver(
    sub: &mut Sub,
    info: TopicInfo,
    id: EntryId,
    seq: u64,
    message: Message,
    now: Instant,
    tag: &mut u64,
    deadlines: &mut Vec<(Instant, u64, u32, EntryId)>,
    batch: &mut Batch,
) -> Received {
    let deliveries = sub.attempts.get(&id).copied().unwrap_or(0) + 1;
    sub.attempts.insert(id, deliveries);
    batch.put(
        Space::Attempts,
        keys::queue(sub.id, id.priority, id.position),
        deliveries.to_be_bytes().to_vec(),
    );
    *tag += 1;
    let deadline = info.ack_timeout.map(|t| now + t);
    if let Some(d) = deadline {
        deadlines.push((d, *tag, sub.id, id));
    }
    sub.inflight.insert(
        id,
        Inflight {
            seq,
            deliveries,
            deadline,
            tag: *tag,
        },
    );
    Received {
        id: EntryId {
            delivery: deliveries,
            ..id
        },
        message,
        deliveries,
    }
}

/// The id of the current delivery of in-flight entry `slot`.
fn current_id(slot: EntryId, inflight: &Inflight) -> EntryId {
    EntryId {
        delivery: inflight.deliveries,
        ..slot
    }
}

/// The slots of `ids` that name the current delivery of an in-flight entry.
/// `strict`: any other id is an [`Error::InvalidArgument`] naming it, so
/// that an ack of an earlier delivery never settles a later one (which
/// another consumer may hold); otherwise such ids are skipped.
fn current(sub: &Sub, ids: &[EntryId], strict: bool) -> Result<Vec<EntryId>> {
    let mut slots = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let slot = id.slot();
        let reason = match sub.inflight.get(&slot) {
            Some(f) if f.deliveries == id.delivery => {
                slots.push(slot);
                continue;
            }
            _ if !strict => continue,
            Some(f) if id.delivery < f.deliveries => format!(
                "delivery {} of entry {slot} of subscriber `{}` is stale: the entry came back \
                 (ack timeout, nack or reset) and is now out as delivery {}; only the newest \
                 delivery can be settled",
                id.delivery, sub.name, f.deliveries
            ),
            Some(f) => format!(
                "entry {slot} of subscriber `{}` has no delivery {} (the current one is {})",
                sub.name, id.delivery, f.deliveries
            ),
            None => format!(
                "entry {slot} of subscriber `{}` is not in flight: already acked, nacked or \
                 dead-lettered, or never delivered",
                sub.name
            ),
        };
        return Err(Error::invalid(format!("ids[{i}]"), reason));
    }
    Ok(slots)
}

/// Deletes the entry and lets go of its message.
fn drop_entry(
    sub: &mut Sub,
    info: TopicInfo,
    store: &dyn Store,
    id: EntryId,
    seq: u64,
    batch: &mut Batch,
) -> Result<()> {
    // The read that can fail first, so that a failure leaves neither
    // `batch` nor the counters half changed.
    release_message(info, store, seq, batch)?;
    let qkey = keys::queue(sub.id, id.priority, id.position);
    if sub.attempts.remove(&id).is_some() {
        batch.delete(Space::Attempts, qkey.clone());
    }
    batch.delete_weak(Space::Queue, qkey);
    sub.counters.entries = sub.counters.entries.saturating_sub(1);
    Ok(())
}

/// One subscriber is done with message `seq`: delete it when it was the
/// last one holding it.
fn release_message(info: TopicInfo, store: &dyn Store, seq: u64, batch: &mut Batch) -> Result<()> {
    let mkey = keys::message(info.id, seq);
    if info.fanout {
        if let Some(v) = store.get(Space::Refs, &mkey)? {
            let left = keys::read_u32(&v, 0, Space::Refs, &mkey)?;
            if left > 1 {
                batch.put(Space::Refs, mkey, (left - 1).to_be_bytes().to_vec());
                return Ok(());
            }
            batch.delete(Space::Refs, mkey.clone());
        }
    }
    if info.dedupe {
        // Dedupe may have rewritten the message: a weak delete could bring
        // an older body back.
        batch.delete(Space::Messages, mkey);
    } else {
        batch.delete_weak(Space::Messages, mkey);
    }
    Ok(())
}

/// Reads and decodes message `seq`; errors name the key at fault.
fn read_message(
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
fn parse_entry(key: &[u8], value: &[u8]) -> Result<(EntryId, u64)> {
    let id = EntryId::from_queue_key(key)
        .ok_or_else(|| keys::corrupt(Space::Queue, key, "not a queue key"))?;
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
) -> Result<HashMap<u64, Vec<u8>>> {
    let wanted: HashSet<u64> = seqs.collect();
    let (Some(&min), Some(&max)) = (wanted.iter().min(), wanted.iter().max()) else {
        return Ok(HashMap::new());
    };
    let span = max - min + 1;
    let Some(end) = max.checked_add(1) else {
        return Ok(HashMap::new());
    };
    if wanted.len() < 4 || span > 2 * wanted.len() as u64 {
        return Ok(HashMap::new());
    }
    let rows = store.scan(
        Space::Messages,
        &keys::message(topic, min),
        &keys::message(topic, end),
        usize::try_from(span).unwrap_or(usize::MAX),
    )?;
    let mut bodies = HashMap::with_capacity(wanted.len());
    for (key, value) in rows {
        let seq = keys::read_u64(&key, 4, Space::Messages, &key)?;
        if wanted.contains(&seq) {
            bodies.insert(seq, value);
        }
    }
    Ok(bodies)
}
