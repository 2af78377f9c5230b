//! [`OutboxEvent`]: what the dispatcher and cleanup threads report, and
//! [`WhenFull`]: what they do when nobody reads the reports.

use crate::error::Error;

/// What the dispatcher and cleanup threads do with an event when the events
/// channel is full ([`OutboxConfig::with_events_when_full`](crate::outbox::OutboxConfig::with_events_when_full)).
///
/// outboxer hands outcomes over on two Go channels, `OkChan` and `ErrChan`,
/// that the dispatcher waits on. Here the default never waits: an outbox
/// whose events nobody reads keeps dispatching, and the dropped events are
/// counted ([`Outbox::dropped_events`](crate::outbox::Outbox::dropped_events)).
/// A program that must see every outcome asks the dispatcher to wait
/// instead, and then has to read [`Outbox::events`](crate::outbox::Outbox::events):
/// dispatching goes at the pace of its reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenFull {
    /// Drop the new event and count it; never slow the dispatcher down.
    #[default]
    Drop,
    /// Wait until the reader takes an event (or the outbox closes, when
    /// the event is dropped and counted): every outcome is seen, and a
    /// reader that stops stops the dispatching.
    Wait,
}

/// What the dispatcher and cleanup threads report on
/// [`Outbox::events`](crate::outbox::Outbox::events).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum OutboxEvent {
    /// The row was accepted by the sink and marked dispatched.
    Dispatched {
        /// The row's id.
        id: u64,
    },
    /// A send of the row failed; it will be tried again after a backoff.
    Failed {
        /// The row's id.
        id: u64,
        /// The failed attempts counted against the row so far (failures
        /// because the sink is down are not counted).
        attempts: u32,
        /// Why the send failed.
        error: Error,
    },
    /// The row failed `max_attempts` times and was dead-lettered: set aside
    /// (see [`OutboxStore::dead_letters`](crate::outbox::OutboxStore::dead_letters))
    /// so that the rows behind it go on.
    DeadLettered {
        /// The row's id.
        id: u64,
    },
    /// The sink's [`flush`](crate::Sink::flush) failed: it could not
    /// confirm these rows, so they stay pending and are sent again after a
    /// backoff. Not counted against the rows; when the error was a
    /// message's own fault, the rows are sent again one per flush so that
    /// the one at fault is found and counted.
    FlushFailed {
        /// The rows sent since the last confirmed flush.
        ids: Vec<u64>,
        /// Why the flush failed.
        error: Error,
    },
    /// The store failed (reading pending rows, marking or cleaning up); the
    /// thread backs off and tries again.
    StoreFailed {
        /// What failed.
        error: Error,
    },
    /// Cleanup removed this many dispatched rows older than the retention
    /// period.
    Cleaned {
        /// How many rows were removed.
        removed: u64,
    },
}
