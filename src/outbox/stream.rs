//! Where the dispatcher sends rows: the [`EventStream`] trait, its blanket
//! implementation for closures, and [`ChannelStream`] for the input of any
//! [`Adapter`] channel.
//!
//! A stream's `send` returns `Ok` once the destination has taken the
//! message as far as the destination promises (a confirmed publish, a queue
//! commit, a channel buffer), or, for a stream that pipelines, once the
//! message is on its way: then `flush` returns `Ok` once every message sent
//! since the last flush is confirmed. The dispatcher sends a batch row by
//! row, flushes, and only then marks the rows dispatched; if the flush
//! fails, they are all sent again (at least once). `RabbitStream` (feature
//! `rabbitmq`), for example, publishes in `send` and waits for the
//! publisher confirms in `flush`: one round trip per batch instead of one
//! per message; `QueueStream` (feature `durable`) buffers in `send` and
//! writes the batch to a queue topic with one durable publish in `flush`.
//!
//! Errors of `send` tell the dispatcher what to do next:
//!
//! - a *stream-down* error ([`Error::is_transient`]: disconnected, busy,
//!   timeout; or [`Error::Closed`] or [`Error::Refused`]) is retried with backoff for as long as it takes and
//!   is not counted against the row;
//! - any other error is the row's own: it counts as an attempt, and after
//!   `max_attempts` the row goes dead.
//!
//! A `send` should give up within about a second (or return a timeout), so
//! that [`Outbox::stop`](crate::outbox::Outbox::stop) is never held up by a
//! destination that does not answer.

use std::time::Duration;

use crossbeam_channel::{SendTimeoutError, Sender};

use crate::channel::Adapter;
use crate::error::{Error, Result};
use crate::message::Message;
use crate::outbox::OutboxRecord;

/// A destination for outbox rows. See the [module docs](self) for what
/// its errors mean.
///
/// The dispatcher thread owns its stream, so `send` takes `&mut self` and a
/// stream need not be `Sync` (an amiquip channel, say). A stream for a
/// destination that confirms in bulk hands messages on in `send` and waits
/// in `flush`:
///
/// ```
/// use syncmq::outbox::{EventStream, OutboxRecord};
///
/// /// Stands in for a publisher with confirms: `publish` returns at once,
/// /// `wait_for_confirms` blocks until the broker has everything.
/// struct Broker { unconfirmed: Vec<Vec<u8>>, stored: Vec<Vec<u8>> }
///
/// impl EventStream for Broker {
///     fn send(&mut self, record: &OutboxRecord) -> syncmq::Result<()> {
///         self.unconfirmed.push(record.message.body().to_vec()); // publish
///         Ok(())
///     }
///
///     fn flush(&mut self) -> syncmq::Result<()> {
///         self.stored.append(&mut self.unconfirmed); // wait for confirms
///         Ok(())
///     }
/// }
/// ```
///
/// Any `FnMut(&OutboxRecord) -> Result<()>` is a stream too:
///
/// ```
/// use syncmq::outbox::{MemoryOutboxStore, Outbox, OutboxRecord};
/// use syncmq::Message;
///
/// # fn main() -> syncmq::Result<()> {
/// let (tx, rx) = crossbeam_channel::unbounded();
/// let outbox = Outbox::start(MemoryOutboxStore::new(), move |r: &OutboxRecord| {
///     tx.send(r.message.body().to_vec()).map_err(|_| syncmq::Error::closed("test receiver"))
/// })?;
/// outbox.add(&Message::new(b"hello".to_vec()))?;
/// assert_eq!(rx.recv().unwrap(), b"hello");
/// outbox.stop()?;
/// # Ok(())
/// # }
/// ```
pub trait EventStream: Send + 'static {
    /// Sends one row.
    ///
    /// # Errors
    ///
    /// As the [module docs](self) say: stream-down errors are retried
    /// without limit, others count against the row.
    fn send(&mut self, record: &OutboxRecord) -> Result<()>;

    /// Confirms every message sent since the last flush. Called after each
    /// batch, before the rows are marked dispatched. The default does
    /// nothing: for streams whose `send` already confirms.
    ///
    /// # Errors
    ///
    /// Any error: the rows since the last flush are sent again after a
    /// backoff. Flush errors are never counted against a row.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

impl<F> EventStream for F
where
    F: FnMut(&OutboxRecord) -> Result<()> + Send + 'static,
{
    fn send(&mut self, record: &OutboxRecord) -> Result<()> {
        self(record)
    }
}

/// Sends each row into the input of an [`Adapter`] channel.
///
/// The row's whole message goes in: the consumer's delivery has its body,
/// key, headers, priority and expiry.
///
/// **What "sent" means here**: the message was taken by the channel's
/// input. For the simple adapter that is the whole delivery. The RabbitMQ
/// and durable adapters store or publish what their input takes a moment
/// later, on their own threads: a crash in between loses a message the
/// outbox already marked dispatched. Where that matters, use
/// `RabbitStream` (the confirmed publisher) or `QueueStream` (the queue
/// engine) instead, whose `flush` returns only once the message is safe.
///
/// A full input is waited on for at most the send timeout (1 s by default),
/// then the send fails as a timeout and the dispatcher retries it; a closed
/// adapter is [`Error::Closed`]. Both are stream-down errors, so neither
/// makes rows go dead.
///
/// ```
/// use syncmq::outbox::{ChannelStream, MemoryOutboxStore, Outbox};
/// use syncmq::{Adapter, ChannelSpec, Message, Mode, SimpleAdapter};
///
/// # fn main() -> syncmq::Result<()> {
/// let adapter = SimpleAdapter::new();
/// adapter.new_channel(ChannelSpec::new("orders", Mode::Both))?;
/// let outbox = Outbox::start(MemoryOutboxStore::new(), ChannelStream::new(&adapter, "orders")?)?;
/// outbox.add(&Message::new(b"order 1 placed".to_vec()))?;
/// let delivery = adapter.output("orders")?.recv().unwrap();
/// assert_eq!(delivery.body(), b"order 1 placed");
/// outbox.stop()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ChannelStream {
    channel: String,
    input: Sender<Message>,
    send_timeout: Duration,
}

impl ChannelStream {
    /// The send timeout when none is given.
    pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(1);

    /// A stream into the input of `channel` on `adapter`.
    ///
    /// # Errors
    ///
    /// As [`Adapter::input`]: unknown channel, wrong mode, closed adapter.
    pub fn new<A: Adapter + ?Sized>(adapter: &A, channel: &str) -> Result<Self> {
        Ok(Self::from_sender(channel, adapter.input(channel)?))
    }

    /// A stream into a channel input the caller already holds; `channel`
    /// names it in errors.
    pub fn from_sender(channel: impl Into<String>, input: Sender<Message>) -> Self {
        ChannelStream {
            channel: channel.into(),
            input,
            send_timeout: Self::DEFAULT_SEND_TIMEOUT,
        }
    }

    /// How long a send waits for room in a full input before it fails as a
    /// timeout (and is retried). Keep it under the outbox's stop timeout.
    #[must_use]
    pub fn with_send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }
}

impl EventStream for ChannelStream {
    fn send(&mut self, record: &OutboxRecord) -> Result<()> {
        match self
            .input
            .send_timeout(record.message.clone(), self.send_timeout)
        {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Timeout(_)) => Err(Error::timeout(
                format!("room in the input of channel `{}`", self.channel),
                self.send_timeout,
            )),
            Err(SendTimeoutError::Disconnected(_)) => Err(Error::closed(format!(
                "the input of channel `{}`",
                self.channel
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::now_ms;

    fn record(body: &[u8]) -> OutboxRecord {
        OutboxRecord {
            id: 1,
            message: Message::new(body.to_vec()).with_key("k"),
            created_at: now_ms(),
            attempts: 0,
            last_error: None,
        }
    }

    #[test]
    fn a_full_input_is_a_timeout_and_a_gone_one_is_closed() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let mut stream =
            ChannelStream::from_sender("c", tx).with_send_timeout(Duration::from_millis(1));
        stream.send(&record(b"a")).unwrap();
        let err = stream.send(&record(b"b")).unwrap_err();
        assert!(err.is_transient(), "{err:?}");
        assert_eq!(rx.recv().unwrap().body(), b"a");
        drop(rx);
        assert!(matches!(
            stream.send(&record(b"c")).unwrap_err(),
            Error::Closed(_)
        ));
    }

    #[test]
    fn the_whole_message_goes_in() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let mut stream = ChannelStream::from_sender("c", tx);
        let row = record(b"a");
        stream.send(&row).unwrap();
        assert_eq!(rx.recv().unwrap(), row.message);
    }
}
