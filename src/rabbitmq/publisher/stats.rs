//! The publisher's counters: [`Counters`], updated by the publishing
//! thread, and the [`PublisherStats`] snapshot callers read.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters, for tests and metrics.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) published: AtomicU64,
    pub(super) confirmed: AtomicU64,
    pub(super) nacked: AtomicU64,
    pub(super) returned: AtomicU64,
    pub(super) resent: AtomicU64,
    pub(super) rejected: AtomicU64,
}

impl Counters {
    /// What the counters say now.
    pub(super) fn snapshot(&self) -> PublisherStats {
        PublisherStats {
            published: self.published.load(Ordering::Relaxed),
            confirmed: self.confirmed.load(Ordering::Relaxed),
            nacked: self.nacked.load(Ordering::Relaxed),
            returned: self.returned.load(Ordering::Relaxed),
            resent: self.resent.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
        }
    }
}

/// A snapshot of a publisher's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
}
