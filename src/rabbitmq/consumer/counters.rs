//! [`ConsumerCounters`]: what a consumer's threads count, read all at once
//! as [`ConsumerStats`]; each count is also a metric labelled with the
//! consumer's queue.

use super::stats::ConsumerStats;
use crate::metrics::{name, Count};

/// A consumer's counters, shared by its channel owner and its handlers.
#[derive(Debug)]
pub(crate) struct ConsumerCounters {
    /// Deliveries received (redeliveries included).
    pub(crate) delivered: Count,
    /// Handler calls that succeeded.
    pub(crate) handled: Count,
    /// Handler calls that failed or panicked.
    pub(crate) failed: Count,
    /// Failed attempts retried (requeued, or published again with their
    /// attempt count).
    pub(crate) retried: Count,
    /// Failed messages published to the dead-letter queue.
    pub(crate) dead_lettered: Count,
    /// Messages acked without a dead-letter queue after their last attempt
    /// failed.
    pub(crate) dropped: Count,
    /// Deliveries acked to the broker.
    pub(crate) acked: Count,
    /// Deliveries nacked to the broker.
    pub(crate) nacked: Count,
    /// Deliveries the broker marked redelivered.
    pub(crate) redelivered: Count,
    /// Channels consumed on after the first.
    pub(crate) reconnects: Count,
}

impl ConsumerCounters {
    /// The counters of a consumer of `queue`.
    pub(crate) fn new(queue: &str) -> Self {
        let labels = [("queue", queue)];
        // The handler outcomes are in the stats; the metrics are the
        // broker-level events every consumer has.
        let quiet = Count::default;
        ConsumerCounters {
            delivered: Count::new(name::RABBITMQ_DELIVERED, &labels),
            handled: quiet(),
            failed: quiet(),
            retried: quiet(),
            dead_lettered: Count::new(name::RABBITMQ_DEAD_LETTERED, &labels),
            dropped: quiet(),
            acked: Count::new(name::RABBITMQ_ACKED, &labels),
            nacked: Count::new(name::RABBITMQ_NACKED, &labels),
            redelivered: Count::new(name::RABBITMQ_REDELIVERED, &labels),
            reconnects: Count::new(name::RABBITMQ_RECONNECTS, &labels),
        }
    }

    /// What they count now.
    pub(crate) fn stats(&self) -> ConsumerStats {
        ConsumerStats {
            delivered: self.delivered.get(),
            handled: self.handled.get(),
            failed: self.failed.get(),
            retried: self.retried.get(),
            dead_lettered: self.dead_lettered.get(),
            dropped: self.dropped.get(),
            acked: self.acked.get(),
            nacked: self.nacked.get(),
            redelivered: self.redelivered.get(),
            reconnects: self.reconnects.get(),
        }
    }
}
