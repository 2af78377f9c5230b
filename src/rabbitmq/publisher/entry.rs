//! What the publishing thread works on: an [`Entry`] per message held until
//! confirmed, and a [`Feed`], a channel input it takes messages from itself.

use std::sync::Arc;

use crossbeam_channel::Receiver;

use crate::error::Result;
use crate::message::Message;
use crate::metrics::{Count, Stopwatch};
use crate::reply::Reply;

/// One message held by the publisher until the broker confirmed it.
pub(super) struct Entry {
    /// Its place in the publisher's write order; also its receipt's ticket.
    pub(super) seq: u64,
    pub(super) exchange: String,
    pub(super) routing_key: String,
    pub(super) message: Message,
    /// Where its caller waits for the confirm; `None` for fire and retry.
    pub(super) reply: Option<Reply<Result<()>>>,
    /// How many times it was published.
    pub(super) attempts: u32,
    /// How many times the broker nacked it.
    pub(super) nacks: u32,
    /// When the publisher took it, for the confirm latency.
    pub(super) taken: Stopwatch,
}

impl Entry {
    /// Message number `seq`, not yet published.
    pub(super) fn new(
        seq: u64,
        exchange: &str,
        routing_key: &str,
        message: Message,
        reply: Option<Reply<Result<()>>>,
    ) -> Self {
        Entry {
            seq,
            exchange: exchange.to_string(),
            routing_key: routing_key.to_string(),
            message,
            reply,
            attempts: 0,
            nacks: 0,
            taken: Stopwatch::start(),
        }
    }
}

/// A channel input the publishing thread takes messages from itself: see
/// [`Publisher::feed`](super::Publisher::feed).
pub(super) struct Feed {
    pub(super) exchange: String,
    pub(super) routing_key: String,
    pub(super) input: Receiver<Message>,
    /// Counts the messages taken from `input`: the channel's `published`.
    pub(super) taken: Arc<Count>,
}
