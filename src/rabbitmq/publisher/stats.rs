//! The publisher's counters: [`Counters`], updated by the publishing
//! thread, and the [`PublisherStats`] snapshot callers read.

use serde::{Deserialize, Serialize};

use crate::metrics::{name, Count, Histogram};

/// Counters, for the stats and, each also a metric labelled with the
/// publisher's connection, the metrics.
#[derive(Debug)]
pub(super) struct Counters {
    pub(super) published: Count,
    pub(super) confirmed: Count,
    pub(super) nacked: Count,
    pub(super) returned: Count,
    pub(super) resent: Count,
    pub(super) rejected: Count,
    pub(super) reconnects: Count,
    /// From a message being taken to its confirm.
    pub(super) confirm_seconds: Histogram,
}

impl Counters {
    /// The counters of a publisher on connection `connection`.
    pub(super) fn new(connection: &str) -> Self {
        let labels = [("connection", connection)];
        Counters {
            published: Count::new(name::RABBITMQ_PUBLISHED, &labels),
            confirmed: Count::new(name::RABBITMQ_CONFIRMS, &labels),
            nacked: Count::new(name::RABBITMQ_PUBLISH_NACKED, &labels),
            returned: Count::new(name::RABBITMQ_RETURNS, &labels),
            resent: Count::new(name::RABBITMQ_RESENT, &labels),
            rejected: Count::new(name::RABBITMQ_REFUSED, &labels),
            reconnects: Count::new(name::RABBITMQ_RECONNECTS, &labels),
            confirm_seconds: Histogram::new(name::RABBITMQ_CONFIRM_SECONDS, &labels),
        }
    }

    /// What the counters say now, with `buffered` messages held.
    pub(super) fn snapshot(&self, buffered: usize) -> PublisherStats {
        PublisherStats {
            published: self.published.get(),
            confirmed: self.confirmed.get(),
            nacked: self.nacked.get(),
            returned: self.returned.get(),
            resent: self.resent.get(),
            rejected: self.rejected.get(),
            reconnects: self.reconnects.get(),
            buffered: buffered as u64,
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
