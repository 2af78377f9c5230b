//! [`OutboxStats`]: the rows a store holds in each state and what the
//! outbox's threads did since the start, read at one moment; and the
//! [`OutboxCounters`] the [`Reporter`](super::reporter::Reporter) counts
//! every outcome into.

use serde::{Deserialize, Serialize};

use crate::metrics::{name, Count, Counter, Gauge, Histogram};

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
/// reporter clones and the outbox. Each count is also a metric.
#[derive(Debug)]
pub(crate) struct OutboxCounters {
    delivered: Count,
    retries: Count,
    dead_lettered: Counter,
    cleaned: Count,
    pub(crate) dropped_events: Count,
    /// The store's rows, as metrics.
    pending: Gauge,
    dead_letters: Gauge,
    /// From a row's commit to the sink confirming it.
    pub(crate) send_seconds: Histogram,
}

impl Default for OutboxCounters {
    fn default() -> Self {
        OutboxCounters {
            delivered: Count::new(name::OUTBOX_DELIVERED, &[]),
            retries: Count::new(name::OUTBOX_RETRIES, &[]),
            dead_lettered: Counter::new(name::OUTBOX_DEAD_LETTERED, &[]),
            cleaned: Count::default(),
            dropped_events: Count::default(),
            pending: Gauge::new(name::OUTBOX_PENDING, &[]),
            dead_letters: Gauge::new(name::OUTBOX_DEAD_LETTERS, &[]),
            send_seconds: Histogram::new(name::OUTBOX_SEND_SECONDS, &[]),
        }
    }
}

impl OutboxCounters {
    /// Counts the outcome `event` reports.
    pub(crate) fn count(&self, event: &OutboxEvent) {
        match event {
            OutboxEvent::Dispatched { .. } => self.delivered.add(1),
            OutboxEvent::Failed { .. } => self.retries.add(1),
            OutboxEvent::FlushFailed { ids, .. } => self.retries.add(ids.len() as u64),
            OutboxEvent::DeadLettered { .. } => self.dead_lettered.increment(1),
            OutboxEvent::Cleaned { removed } => self.cleaned.add(*removed),
            OutboxEvent::StoreFailed { .. } => {}
        }
    }

    /// Sets the row gauges to the store's `rows`.
    pub(crate) fn observe(&self, rows: OutboxCounts) {
        self.pending.set(rows.pending);
        self.dead_letters.set(rows.dead_letters);
    }

    /// The counts now, with the store's `rows`.
    pub(crate) fn stats(&self, rows: OutboxCounts) -> OutboxStats {
        OutboxStats {
            pending: rows.pending,
            dispatched: rows.dispatched,
            dead_lettered: rows.dead_letters,
            delivered: self.delivered.get(),
            retries: self.retries.get(),
            cleaned: self.cleaned.get(),
            dropped_events: self.dropped_events.get(),
        }
    }
}
