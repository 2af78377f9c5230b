//! [`ConsumerCounters`]: what a consumer's threads count, for tests and
//! metrics; read all at once as [`ConsumerStats`].

use std::sync::atomic::{AtomicU64, Ordering};

use super::stats::ConsumerStats;

/// A consumer's counters, shared by its channel owner and its handlers.
#[derive(Debug, Default)]
pub(crate) struct ConsumerCounters {
    /// Deliveries received (redeliveries included).
    pub(crate) delivered: AtomicU64,
    /// Handler calls that succeeded.
    pub(crate) handled: AtomicU64,
    /// Handler calls that failed or panicked.
    pub(crate) failed: AtomicU64,
    /// Failed attempts retried (requeued, or published again with their
    /// attempt count).
    pub(crate) retried: AtomicU64,
    /// Failed messages published to the dead-letter queue.
    pub(crate) dead_lettered: AtomicU64,
    /// Messages acked without a dead-letter queue after their last attempt
    /// failed.
    pub(crate) dropped: AtomicU64,
    /// Deliveries acked to the broker.
    pub(crate) acked: AtomicU64,
    /// Deliveries nacked to the broker.
    pub(crate) nacked: AtomicU64,
    /// Deliveries the broker marked redelivered.
    pub(crate) redelivered: AtomicU64,
    /// Channels consumed on after the first.
    pub(crate) reconnects: AtomicU64,
}

impl ConsumerCounters {
    /// What they count now.
    pub(crate) fn stats(&self) -> ConsumerStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ConsumerStats {
            delivered: read(&self.delivered),
            handled: read(&self.handled),
            failed: read(&self.failed),
            retried: read(&self.retried),
            dead_lettered: read(&self.dead_lettered),
            dropped: read(&self.dropped),
            acked: read(&self.acked),
            nacked: read(&self.nacked),
            redelivered: read(&self.redelivered),
            reconnects: read(&self.reconnects),
        }
    }
}
