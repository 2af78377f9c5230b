//! [`ConsumerCounters`]: what a consumer's threads count, for tests and
//! metrics.

use std::sync::atomic::AtomicU64;

/// A consumer's counters, shared by its channel owner and its handlers.
#[derive(Debug, Default)]
pub(crate) struct ConsumerCounters {
    /// Deliveries received (redeliveries included).
    pub(crate) delivered: AtomicU64,
    /// Handler calls that succeeded.
    pub(crate) handled: AtomicU64,
    /// Handler calls that failed or panicked.
    pub(crate) failed: AtomicU64,
    /// Failed messages published to the dead-letter queue.
    pub(crate) dead_lettered: AtomicU64,
}
