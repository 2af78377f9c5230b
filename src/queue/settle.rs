//! Settling deliveries: acks delete an entry (and its message, once no
//! subscriber holds it); nacks, releases and resets give entries back to the
//! front of their priority level, in queue order, or dead-letter them
//! after `max_deliveries` deliveries (or on a nack without requeue). Only
//! the current delivery of an entry can be settled: an id of an earlier
//! one is refused, never applied to someone else's copy.

use super::entry::EntryId;
use super::keys;
use super::state::{missing_sub, State};
use super::store::{Batch, Space, Store};
use super::subscriber_state::{Inflight, SubscriberState};
use super::topic::TopicInfo;
use crate::error::{Error, Result};

impl State {
    /// Acks deliveries; returns how many. `strict`: a stale or unknown id
    /// is an error and nothing is acked; otherwise such ids are skipped.
    pub(crate) fn ack(&mut self, sub_id: u32, ids: &[EntryId], strict: bool) -> Result<usize> {
        // An entry and its message: two deletes each, and the counters.
        let mut batch = Batch {
            ops: Vec::with_capacity(2 * ids.len() + 1),
        };
        let mut removed = Vec::with_capacity(ids.len());
        let (sub, info, store) = self.parts(sub_id)?;
        for id in current(sub, ids, strict)? {
            if let Some(inflight) = sub.inflight.remove(&id) {
                drop_entry(sub, info, store, id, inflight.seq, &mut batch)?;
                removed.push((id, inflight));
            }
        }
        if !removed.is_empty() {
            sub.put_counters(&mut batch, info.next_seq);
        }
        self.forget_deadlines(sub_id, &removed);
        self.store.write(batch)?;
        if let Some(sub) = self.subs.get(&sub_id) {
            sub.activity.acked.add(removed.len() as u64);
            sub.observe();
        }
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
        // A release gives back what no consumer saw: not a nack.
        if !uncount {
            if let Some(sub) = self.subs.get(&sub_id) {
                sub.activity.nacked.add(n as u64);
            }
        }
        Ok(n)
    }

    /// Every in-flight entry of the subscriber back to the front (ppmq's
    /// `ResetAck`, for a consumer that reconnects).
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

    fn forget_deadlines(&mut self, sub_id: u32, taken: &[(EntryId, Inflight)]) {
        for (id, i) in taken {
            if let Some(d) = i.deadline {
                self.deadlines.remove(&(d, i.tag, sub_id, *id));
            }
        }
    }

    /// Puts entries taken out of flight back at the front, in queue order,
    /// or into the dead-letter queue (`dead_letter`, or when they reached
    /// the topic's delivery limit).
    pub(crate) fn give_back(
        &mut self,
        sub_id: u32,
        taken: Vec<(EntryId, Inflight)>,
        dead_letter: bool,
    ) -> Result<()> {
        if taken.is_empty() {
            return Ok(());
        }
        // Dead-lettering reserves positions.
        let topic = self.sub_topic(sub_id)?;
        self.reserving(&topic, |state| {
            state.give_back_batch(sub_id, taken, dead_letter)
        })
    }

    fn give_back_batch(
        &mut self,
        sub_id: u32,
        taken: Vec<(EntryId, Inflight)>,
        dead_letter: bool,
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
        let max = topic.config.max_deliveries();
        let mut batch = Batch::new();
        let mut front = Vec::new();
        for (id, i) in taken {
            let qkey = keys::queue(sub.id, id.priority, id.position);
            if dead_letter || (max > 0 && i.deliveries >= max) {
                let position = topic.alloc_seq(&mut batch);
                let value = [i.seq.to_be_bytes().as_slice(), &i.deliveries.to_be_bytes()].concat();
                batch.put(
                    Space::DeadLetters,
                    keys::dead_letter(sub.id, position),
                    value,
                );
                batch.delete_weak(Space::Queue, qkey);
                sub.forget_attempts(id, &mut batch);
                sub.counters.entries = sub.counters.entries.saturating_sub(1);
                sub.counters.dead_letters += 1;
                sub.activity.dead_lettered();
            } else {
                sub.set_attempts(id, i.deliveries, &mut batch);
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
        sub.put_counters(&mut batch, topic.next_seq());
        store.write(batch)?;
        sub.observe();
        sub.wake();
        Ok(())
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
fn current(sub: &SubscriberState, ids: &[EntryId], strict: bool) -> Result<Vec<EntryId>> {
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
pub(crate) fn drop_entry(
    sub: &mut SubscriberState,
    info: TopicInfo,
    store: &dyn Store,
    id: EntryId,
    seq: u64,
    batch: &mut Batch,
) -> Result<()> {
    // The read that can fail first, so that a failure leaves neither
    // `batch` nor the counters half changed.
    release_message(info, store, seq, batch)?;
    sub.forget_attempts(id, batch);
    batch.delete_weak(Space::Queue, keys::queue(sub.id, id.priority, id.position));
    sub.counters.entries = sub.counters.entries.saturating_sub(1);
    Ok(())
}

/// One subscriber is done with message `seq`: delete it when it was the
/// last one holding it.
pub(crate) fn release_message(
    info: TopicInfo,
    store: &dyn Store,
    seq: u64,
    batch: &mut Batch,
) -> Result<()> {
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
