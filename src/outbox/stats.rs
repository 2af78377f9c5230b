//! [`OutboxStats`]: the rows a store holds in each state and what the
//! outbox's threads did since the start, read at one moment; and the
//! [`OutboxCounters`] the [`Reporter`](super::reporter::Reporter) counts
//! every outcome into.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::outbox::event::OutboxEvent;
use crate::outbox::store::OutboxCounts;

/// An outbox's counters ([`Outbox::stats`](super::Outbox::stats)): the
/// store's rows now, and what the dispatcher and cleanup threads did
/// since [`Outbox::start`](super::Outbox::start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OutboxStats {
    /// Rows not yet sent, now.
    pub pending: u64,
    /// Rows sent and not yet removed by cleanup, now.
    pub dispatched: u64,
    /// Rows dead-lettered after `max_attempts` failed sends, now.
    pub dead_lettered: u64,
    /// Rows the sink confirmed and the dispatcher marked dispatched.
    pub delivered: u64,
    /// Sends to be made again: each failed send (retried after a
    /// backoff, or dead-lettered when it was the row's last attempt;
    /// failures while the sink is down count too, though not against the
    /// row), and each row of a sink flush that failed.
    pub retries: u64,
    /// Dispatched rows removed by cleanup.
    pub cleaned: u64,
    /// Events dropped because nobody read the events channel
    /// ([`Outbox::dropped_events`](super::Outbox::dropped_events)).
    pub dropped_events: u64,
}

/// What the outbox's threads count; one per outbox, shared by its
/// reporter clones and the outbox.
#[derive(Debug, Default)]
pub(crate) struct OutboxCounters {
    delivered: AtomicU64,
    retries: AtomicU64,
    cleaned: AtomicU64,
    pub(crate) dropped_events: AtomicU64,
}

impl OutboxCounters {
    /// Counts the outcome `event` reports.
    pub(crate) fn count(&self, event: &OutboxEvent) {
        let (counter, n) = match event {
            OutboxEvent::Dispatched { .. } => (&self.delivered, 1),
            OutboxEvent::Failed { .. } => (&self.retries, 1),
            OutboxEvent::FlushFailed { ids, .. } => (&self.retries, ids.len() as u64),
            OutboxEvent::Cleaned { removed } => (&self.cleaned, *removed),
            OutboxEvent::DeadLettered { .. } | OutboxEvent::StoreFailed { .. } => return,
        };
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The counts now, with the store's `rows`.
    pub(crate) fn stats(&self, rows: OutboxCounts) -> OutboxStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        OutboxStats {
            pending: rows.pending,
            dispatched: rows.dispatched,
            dead_lettered: rows.dead_letters,
            delivered: read(&self.delivered),
            retries: read(&self.retries),
            cleaned: read(&self.cleaned),
            dropped_events: read(&self.dropped_events),
        }
    }
}
