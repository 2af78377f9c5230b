//! [`SubscriberState`]: what the engine keeps in memory for one subscriber
//! (scan cursors, redelivery lists, in-flight entries, delivery counts) and
//! its [`Counters`], which are stored.
//!
//! # Delivery counts: a watermark and the exceptions to it
//!
//! Every entry taken from a queue has been delivered once, so storing a
//! count per taken entry (a write when it is taken and a delete when it is
//! acked: half of a drain's writes) would mostly say "1". Instead each
//! priority level stores how far its cursor has taken (`taken_below`,
//! written in the take's batch): an entry below it was delivered once,
//! one at or above it never was. Only an entry whose count differs from
//! that (delivered again, or given back without counting) has a record of
//! its own in the `attempts` space; [`SubscriberState::set_attempts`] keeps
//! that rule in one place.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar};
use std::time::Instant;

use super::activity::Activity;
use super::entry::EntryId;
use super::id_hash::{IdMap, IdSet};
use super::keys;
use super::store::{Batch, Space};
use crate::error::Result;

/// Per-subscriber counters, stored under `stats/<sub>` in the batches that
/// change them, except for publishes (see [`UNCOUNTED_LIMIT`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    /// Entries in the queue, in flight included.
    pub(crate) entries: u64,
    pub(crate) dead_letters: u64,
    pub(crate) expired: u64,
}

/// A publish leaves the stored counters as they are until this many
/// entries were published since they were last written: rewriting them
/// with every message was one of a publish's three writes. The stored
/// record says from which position on the queue's entries are not counted
/// yet, and the open counts those (at most this many per subscriber).
pub(crate) const UNCOUNTED_LIMIT: u64 = 1024;

/// A stored counter record without a position is exact (an older build
/// wrote the counters with every publish).
pub(crate) const EXACT: u64 = u64::MAX;

impl Counters {
    /// The stored form: the counters, and the position from which on the
    /// subscriber's queue entries are not counted in them.
    pub(crate) fn to_bytes(self, uncounted_from: u64) -> Vec<u8> {
        [
            self.entries,
            self.dead_letters,
            self.expired,
            uncounted_from,
        ]
        .iter()
        .flat_map(|n| n.to_be_bytes())
        .collect()
    }

    /// The counters stored under `key`, and the position from which on the
    /// queue's entries are not counted in them.
    pub(crate) fn from_bytes(bytes: &[u8], key: &[u8]) -> Result<(Self, u64)> {
        if bytes.len() != 24 && bytes.len() != 32 {
            return Err(keys::corrupt(
                Space::Stats,
                key,
                format!("expected 24 or 32 bytes of counters, found {}", bytes.len()),
            ));
        }
        let counters = Counters {
            entries: keys::read_u64(bytes, 0, Space::Stats, key)?,
            dead_letters: keys::read_u64(bytes, 8, Space::Stats, key)?,
            expired: keys::read_u64(bytes, 16, Space::Stats, key)?,
        };
        let from = match bytes.len() {
            32 => keys::read_u64(bytes, 24, Space::Stats, key)?,
            _ => EXACT,
        };
        Ok((counters, from))
    }
}

/// An entry delivered and not yet settled.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Inflight {
    /// The message's sequence.
    pub(crate) seq: u64,
    pub(crate) deliveries: u32,
    pub(crate) deadline: Option<Instant>,
    /// Which take put it in flight: a deadline of an earlier delivery of
    /// the same entry has an older tag and is ignored.
    pub(crate) tag: u64,
}

pub(crate) struct SubscriberState {
    pub(crate) id: u32,
    pub(crate) topic: String,
    pub(crate) name: String,
    /// Per priority: the next position not yet taken from the store.
    pub(crate) cursors: Vec<u64>,
    /// Per priority: entries given back, served before the cursor's.
    pub(crate) redeliver: Vec<VecDeque<(EntryId, u64)>>,
    pub(crate) inflight: IdMap<EntryId, Inflight>,
    /// Deliveries so far of every entry delivered and not yet settled
    /// for good; stored as the `taken_below` watermark and the records in
    /// `recorded` (see the module docs), so that a restart counts as a
    /// delivery.
    pub(crate) attempts: IdMap<EntryId, u32>,
    /// Per priority: every entry below this position was taken at least
    /// once (stored under `meta/taken/<sub>`, only ever raised).
    pub(crate) taken_below: Vec<u64>,
    /// The entries with a record of their own in the `attempts` space.
    pub(crate) recorded: IdSet<EntryId>,
    pub(crate) counters: Counters,
    /// What went through the subscriber since the open (not stored).
    pub(crate) activity: Activity,
    /// Entries published since the counters were last stored: not counted
    /// in the stored record (see [`UNCOUNTED_LIMIT`]).
    pub(crate) uncounted: u64,
    /// Entries set aside since the open because their message is corrupt
    /// (see `delivery.rs`): stored, counted in `counters.entries`, never
    /// delivered.
    pub(crate) unreadable: u64,
    /// Consumers of this subscriber wait here.
    pub(crate) cond: Arc<Condvar>,
    /// How many consumers wait on `cond`: a publish notifies only then,
    /// because notifying is a system call even with nobody waiting.
    pub(crate) waiters: u32,
    /// Readiness watchers ([`Subscriber::on_ready`]), keyed by the handle
    /// that registered them: called with `cond` by [`wake`](Self::wake).
    ///
    /// [`Subscriber::on_ready`]: super::Subscriber::on_ready
    pub(crate) watchers: Vec<(u64, ReadyFn)>,
}

/// A readiness watcher: see [`Subscriber::on_ready`](super::Subscriber::on_ready).
pub(crate) type ReadyFn = Arc<dyn Fn() + Send + Sync>;

impl SubscriberState {
    pub(crate) fn new(id: u32, topic: &str, name: &str, priorities: u8) -> Self {
        SubscriberState {
            id,
            topic: topic.to_string(),
            name: name.to_string(),
            cursors: vec![0; usize::from(priorities)],
            redeliver: vec![VecDeque::new(); usize::from(priorities)],
            inflight: IdMap::default(),
            attempts: IdMap::default(),
            taken_below: vec![0; usize::from(priorities)],
            recorded: IdSet::default(),
            counters: Counters::default(),
            activity: Activity::new(topic, name),
            uncounted: 0,
            unreadable: 0,
            cond: Arc::new(Condvar::new()),
            waiters: 0,
            watchers: Vec::new(),
        }
    }

    /// Tells this subscriber's consumers that something may have changed
    /// (an entry to take, the queue closing): wakes the blocked receives
    /// and calls the readiness watchers, here, under the state lock. Every
    /// place that can make an entry deliverable, or end the subscriber,
    /// calls it.
    pub(crate) fn wake(&self) {
        self.cond.notify_all();
        for (_, notify) in &self.watchers {
            notify();
        }
    }

    /// Makes room for `priorities` levels (a re-declared topic may have
    /// more).
    pub(crate) fn grow(&mut self, priorities: u8) {
        let n = usize::from(priorities);
        if self.cursors.len() < n {
            self.cursors.resize(n, 0);
            self.taken_below.resize(n, 0);
            self.redeliver.resize(n, VecDeque::new());
        }
    }

    /// Sets the depth and in-flight gauges; every operation that changes
    /// them calls it once it is done.
    pub(crate) fn observe(&self) {
        self.activity.observe(self.ready(), self.inflight.len());
    }

    /// Entries waiting to be delivered.
    pub(crate) fn ready(&self) -> u64 {
        self.counters
            .entries
            .saturating_sub(self.inflight.len() as u64)
            .saturating_sub(self.unreadable)
    }

    /// The deliveries of entry `id` so far: what this run counted, or else
    /// what the store says (its record, loaded at open, or the watermark).
    pub(crate) fn deliveries(&self, id: EntryId) -> u32 {
        self.attempts
            .get(&id)
            .copied()
            .unwrap_or_else(|| self.implied(id))
    }

    /// The count the watermark alone gives entry `id`.
    fn implied(&self, id: EntryId) -> u32 {
        let below = self
            .taken_below
            .get(usize::from(id.priority))
            .copied()
            .unwrap_or(0);
        u32::from(id.position < below)
    }

    /// Sets the deliveries of entry `id` to `count`, in memory and, when
    /// the watermark does not already say it, in `batch`. Call it after
    /// [`raise_watermark`](Self::raise_watermark) for a take.
    pub(crate) fn set_attempts(&mut self, id: EntryId, count: u32, batch: &mut Batch) {
        self.attempts.insert(id, count);
        let key = || keys::queue(self.id, id.priority, id.position);
        if count == self.implied(id) {
            if !self.recorded.is_empty() && self.recorded.remove(&id) {
                batch.delete(Space::Attempts, key());
            }
        } else {
            batch.put(Space::Attempts, key(), count.to_be_bytes().to_vec());
            self.recorded.insert(id);
        }
    }

    /// Forgets the deliveries of entry `id`, which leaves the queue.
    pub(crate) fn forget_attempts(&mut self, id: EntryId, batch: &mut Batch) {
        self.attempts.remove(&id);
        if !self.recorded.is_empty() && self.recorded.remove(&id) {
            batch.delete(
                Space::Attempts,
                keys::queue(self.id, id.priority, id.position),
            );
        }
    }

    /// Records, in memory, that the cursor of level `priority` is taking
    /// every entry below `position`; true when that raised the watermark,
    /// which the take then stores ([`put_watermark`](Self::put_watermark)).
    pub(crate) fn raise_watermark(&mut self, priority: u8, position: u64) -> bool {
        match self.taken_below.get_mut(usize::from(priority)) {
            Some(below) if position > *below => {
                *below = position;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn put_watermark(&self, batch: &mut Batch) {
        let value = self
            .taken_below
            .iter()
            .flat_map(|p| p.to_be_bytes())
            .collect();
        batch.put(Space::Meta, keys::meta_taken(self.id), value);
    }

    /// Stores the counters in `batch`, exact for every entry below
    /// `next_seq`, the topic's next sequence (every entry of the queue is
    /// below it).
    pub(crate) fn put_counters(&mut self, batch: &mut Batch, next_seq: u64) {
        batch.put(
            Space::Stats,
            keys::stats(self.id),
            self.counters.to_bytes(next_seq),
        );
        self.uncounted = 0;
    }
}
