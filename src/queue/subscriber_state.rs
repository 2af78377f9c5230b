//! [`SubscriberState`]: what the engine keeps in memory for one subscriber
//! (scan cursors, redelivery lists, in-flight entries, delivery counts) and
//! its [`Counters`], which are stored.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar};
use std::time::Instant;

use super::entry::EntryId;
use super::keys;
use super::store::{Batch, Space};
use crate::error::Result;

/// Per-subscriber counters, stored under `stats/<sub>` in the batches that
/// change them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    /// Entries in the queue, in flight included.
    pub(crate) entries: u64,
    pub(crate) dead_letters: u64,
    pub(crate) expired: u64,
}

impl Counters {
    pub(crate) fn to_bytes(self) -> Vec<u8> {
        [self.entries, self.dead_letters, self.expired]
            .iter()
            .flat_map(|n| n.to_be_bytes())
            .collect()
    }

    pub(crate) fn from_bytes(bytes: &[u8], key: &[u8]) -> Result<Self> {
        if bytes.len() != 24 {
            return Err(keys::corrupt(
                Space::Stats,
                key,
                format!("expected 24 bytes of counters, found {}", bytes.len()),
            ));
        }
        Ok(Counters {
            entries: keys::read_u64(bytes, 0, Space::Stats, key)?,
            dead_letters: keys::read_u64(bytes, 8, Space::Stats, key)?,
            expired: keys::read_u64(bytes, 16, Space::Stats, key)?,
        })
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
            inflight: HashMap::new(),
            attempts: HashMap::new(),
            counters: Counters::default(),
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
