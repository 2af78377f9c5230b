//! Where fire-and-retry publishes that failed for good go: a
//! [`Refusal`] carrying the message back, on a bounded channel the caller
//! receives from, and a count that the next `flush` or `close` reports.
//!
//! A publish with a [`Receipt`](crate::Receipt) gets its error
//! there; a [`publish_nowait`](super::Publisher::publish_nowait) has no one
//! to tell, so without this the message would be gone with only a log line.
//! The channel is bounded so that a caller who never reads it cannot make
//! the publisher grow without end: when it is full a refusal is logged and
//! still counted, but its message is not kept.

use std::sync::Mutex;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::error::Error;
use crate::message::Message;
use crate::thread::lock;

/// A fire-and-retry publish ([`Publisher::publish_nowait`],
/// [`RabbitClient::publish_nowait`]) that will never be published, with its message
/// back: the broker refused it (say an exchange that does not exist), it
/// nacked it (a full queue with `x-overflow` `reject-publish`: `error` is
/// [`Error::Busy`]), it was unroutable with `mandatory` on, or the
/// publisher closed before it was confirmed.
///
/// [`Publisher::publish_nowait`]: super::Publisher::publish_nowait
/// [`RabbitClient::publish_nowait`]: crate::rabbitmq::RabbitClient::publish_nowait
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The exchange it was published to.
    pub exchange: String,
    /// Its routing key.
    pub routing_key: String,
    /// The message, unchanged: publish it again, store it, or drop it.
    pub message: Message,
    /// Why it was not published.
    pub error: Error,
}

/// The publisher's side: the channel's sender and the count not yet
/// reported by a flush.
pub(super) struct Refusals {
    tx: Sender<Refusal>,
    rx: Receiver<Refusal>,
    /// Refusals since the last report, and the first one's reason.
    unreported: Mutex<(u64, Option<String>)>,
}

impl Refusals {
    pub(super) fn new(capacity: usize) -> Self {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        Refusals {
            tx,
            rx,
            unreported: Mutex::new((0, None)),
        }
    }

    pub(super) fn receiver(&self) -> Receiver<Refusal> {
        self.rx.clone()
    }

    /// Records a refused message: counted for the next flush (unless it
    /// failed only because the publisher closed, which close reports in
    /// its own error) and handed to the caller's channel.
    pub(super) fn refuse(&self, publisher: &str, refusal: Refusal, count: bool) {
        if count {
            let mut unreported = lock(&self.unreported);
            unreported.0 += 1;
            unreported
                .1
                .get_or_insert_with(|| refusal.error.to_string());
        }
        // Disconnected cannot happen: we hold a receiver ourselves.
        if let Err(TrySendError::Full(refusal)) = self.tx.try_send(refusal) {
            log::error!(
                "publisher on {publisher}: the refusals channel is full (nobody reads \
                 Publisher::refusals?); a message to exchange `{}` with routing key `{}` \
                 is dropped: {}",
                refusal.exchange,
                refusal.routing_key,
                refusal.error
            );
        }
    }

    /// The refusals since the last report, as the error to report them
    /// with; resets the count.
    pub(super) fn take(&self) -> Option<Error> {
        let mut unreported = lock(&self.unreported);
        let (count, first) = std::mem::take(&mut *unreported);
        (count > 0).then(|| Error::Rejected {
            count,
            first: first.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(body: &[u8]) -> Refusal {
        Refusal {
            exchange: "x".into(),
            routing_key: "k".into(),
            message: Message::new(body.to_vec()),
            error: Error::refused(404, "NOT_FOUND"),
        }
    }

    #[test]
    fn a_full_channel_still_counts_and_each_refusal_is_reported_once() {
        let refusals = Refusals::new(1);
        refusals.refuse("test", refusal(b"a"), true);
        refusals.refuse("test", refusal(b"b"), true);
        // Not counted: close reports those itself.
        refusals.refuse("test", refusal(b"c"), false);
        match refusals.take() {
            Some(Error::Rejected { count: 2, first }) => assert!(first.contains("NOT_FOUND")),
            other => panic!("expected two refusals, got {other:?}"),
        }
        assert!(refusals.take().is_none(), "reported twice");
        let rx = refusals.receiver();
        assert_eq!(rx.try_recv().unwrap().message.body(), b"a");
        assert!(rx.try_recv().is_err(), "the bound was not kept");
    }
}
