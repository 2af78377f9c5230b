//! The publisher's counters: [`Counters`], updated by the publishing
//! thread, and the [`PublisherStats`] snapshot callers read.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Counters, for tests and metrics.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) published: AtomicU64,
    pub(super) confirmed: AtomicU64,
    pub(super) nacked: AtomicU64,
    pub(super) returned: AtomicU64,
    pub(super) resent: AtomicU64,
    pub(super) rejected: AtomicU64,
    pub(super) reconnects: AtomicU64,
}

impl Counters {
    /// What the counters say now, with `buffered` messages held.
    pub(super) fn snapshot(&self, buffered: usize) -> PublisherStats {
        PublisherStats {
            buffered: buffered as u64,
            reconnects: self.reconnects.load(Ordering::Relaxed),
            published: self.published.load(Ordering::Relaxed),
            confirmed: self.confirmed.load(Ordering::Relaxed),
            nacked: self.nacked.load(Ordering::Relaxed),
            returned: self.returned.load(Ordering::Relaxed),
            resent: self.resent.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
        }
    }
}

/// A snapshot of a publisher's counters
/// ([`Publisher::stats`](super::Publisher::stats)): counts since the
/// publisher started, and `buffered`, what it holds now.
///
/// Every message handed over ends as one of `confirmed`, `nacked` (after
/// its retries), `returned` or `rejected`, or fails at close; `published`
/// counts each send to the broker, so with resends it can exceed them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PublisherStats {
    /// `basic.publish` calls, resends included.
    pub published: u64,
    /// Messages the broker confirmed.
    pub confirmed: u64,
    /// Messages the broker nacked (a full queue with `x-overflow`
    /// `reject-publish`); each failed to its caller as
    /// [`Error::Busy`](crate::Error::Busy), not retried.
    pub nacked: u64,
    /// Mandatory messages returned as unroutable.
    pub returned: u64,
    /// Messages sent again after a connection loss.
    pub resent: u64,
    /// Messages the broker refused by closing the channel on them (say an
    /// exchange that does not exist); each failed to its caller.
    pub rejected: u64,
    /// Channels the publisher opened after its first: one per recovery
    /// from a lost channel or connection.
    #[serde(default)]
    pub reconnects: u64,
    /// Messages held until confirmed now (the retry buffer included), as
    /// [`Publisher::buffered`](super::Publisher::buffered).
    #[serde(default)]
    pub buffered: u64,
}
