//! [`ConsumerStats`]: a consumer's counters read at one moment, for tests,
//! metrics and the CLI's JSON output.

use serde::{Deserialize, Serialize};

/// What a consumer counted since it started
/// ([`Consumer::stats`](super::Consumer::stats),
/// [`ConsumerHandle::stats`](crate::rabbitmq::ConsumerHandle::stats)).
///
/// Every delivery ends as one of handled, retried, dead-lettered or
/// dropped (or is requeued unsettled at a close or a connection loss):
/// `failed` is `retried + dead_lettered + dropped` plus the failures whose
/// retry or dead-letter publish failed and which were requeued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConsumerStats {
    /// Deliveries received, redeliveries and retries included.
    pub delivered: u64,
    /// Handler calls that succeeded (their message acked).
    pub handled: u64,
    /// Handler calls that returned `Err` or panicked.
    pub failed: u64,
    /// Failed attempts that were retried.
    pub retried: u64,
    /// Messages published to the dead-letter queue after their last
    /// attempt failed.
    pub dead_lettered: u64,
    /// Messages acked and lost after their last attempt failed, with no
    /// dead-letter queue to take them (each logged at ERROR).
    pub dropped: u64,
    /// Deliveries acked to the broker (an ack-multiple counts each it
    /// covers): handled ones, and failed ones republished or dropped.
    #[serde(default)]
    pub acked: u64,
    /// Deliveries nacked to the broker (retries that requeue, and nacks
    /// of the reader of a `RabbitAdapter` channel).
    #[serde(default)]
    pub nacked: u64,
    /// Deliveries the broker marked redelivered (it sent them before, to
    /// this consumer or another, and got no ack).
    #[serde(default)]
    pub redelivered: u64,
    /// Channels the consumer consumed on after its first: one per
    /// recovery from a lost channel or connection.
    #[serde(default)]
    pub reconnects: u64,
}
