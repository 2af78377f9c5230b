//! [`ChannelSink`]: the input of any [`Adapter`] channel as a [`Sink`].

use std::time::Duration;

use crossbeam_channel::{SendTimeoutError, Sender};

use crate::channel::Adapter;
use crate::error::{Error, Result};
use crate::message::Message;
use crate::sink::Sink;

/// Sends each message into the input of an [`Adapter`] channel.
///
/// The whole message goes in: the consumer's delivery has its body, key,
/// routing key, headers, priority and expiry.
///
/// **What "sent" means here**: the message was taken by the channel's
/// input, and [`flush`](Sink::flush) has nothing more to wait for. For the
/// simple adapter that is the whole delivery. The RabbitMQ and durable
/// adapters store or publish what their input takes a moment later, on
/// their own threads: a crash in between loses a message the sender
/// already counted as sent. Where that matters, use `RabbitSink` (the
/// confirmed publisher) or `QueueSink` (the queue engine) instead, whose
/// `flush` returns only once the message is safe.
///
/// A full input is waited on for at most the send timeout (1 s by default),
/// then the send fails as a [`Error::Timeout`]; a closed adapter is
/// [`Error::Closed`]. Both say the destination is down, so the outbox
/// retries them without counting them against a row.
///
/// ```
/// use syncmq::outbox::MemoryOutboxStore;
/// use syncmq::{Adapter, ChannelSink, ChannelSpec, Message, Mode, SimpleAdapter};
/// use syncmq::outbox::Outbox;
///
/// # fn main() -> syncmq::Result<()> {
/// let adapter = SimpleAdapter::new();
/// adapter.new_channel(ChannelSpec::new("orders", Mode::Both))?;
/// let outbox = Outbox::start(MemoryOutboxStore::new(), ChannelSink::new(&adapter, "orders")?)?;
/// outbox.add(&Message::new(b"order 1 placed".to_vec()))?;
/// let delivery = adapter.output("orders")?.recv().unwrap();
/// assert_eq!(delivery.body(), b"order 1 placed");
/// outbox.close()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ChannelSink {
    channel: String,
    input: Sender<Message>,
    send_timeout: Duration,
}

impl ChannelSink {
    /// The send timeout when none is given.
    pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(1);

    /// A sink into the input of `channel` on `adapter`.
    ///
    /// # Errors
    ///
    /// As [`Adapter::input`]: unknown channel, wrong mode, closed adapter.
    pub fn new<A: Adapter + ?Sized>(adapter: &A, channel: &str) -> Result<Self> {
        Ok(Self::from_sender(channel, adapter.input(channel)?))
    }

    /// A sink into a channel input the caller already holds; `channel`
    /// names it in errors.
    pub fn from_sender(channel: impl Into<String>, input: Sender<Message>) -> Self {
        ChannelSink {
            channel: channel.into(),
            input,
            send_timeout: Self::DEFAULT_SEND_TIMEOUT,
        }
    }

    /// How long a send waits for room in a full input before it fails as a
    /// timeout. Keep it under the owner's close timeout; `Duration::MAX`
    /// waits as long as it takes.
    #[must_use]
    pub fn with_send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// The channel's name.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// How long a send waits for room in a full input.
    pub fn send_timeout(&self) -> Duration {
        self.send_timeout
    }
}

impl Sink for ChannelSink {
    fn send(&mut self, message: &Message) -> Result<()> {
        match self.input.send_timeout(message.clone(), self.send_timeout) {
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

    /// Nothing to wait for: a message is as safe as the channel's input
    /// makes it once `send` returned.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_input_is_a_timeout_and_a_gone_one_is_closed() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let mut sink =
            ChannelSink::from_sender("c", tx).with_send_timeout(Duration::from_millis(1));
        sink.send(&Message::from("a")).unwrap();
        let err = sink.send(&Message::from("b")).unwrap_err();
        assert!(err.is_transient(), "{err:?}");
        assert_eq!(rx.recv().unwrap().body(), b"a");
        drop(rx);
        assert!(matches!(
            sink.send(&Message::from("c")).unwrap_err(),
            Error::Closed(_)
        ));
    }

    #[test]
    fn the_whole_message_goes_in() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let mut sink = ChannelSink::from_sender("c", tx);
        let message = Message::from("a")
            .with_key("k")
            .with_routing_key("r")
            .with_priority(2);
        sink.send(&message).unwrap();
        sink.flush().unwrap();
        assert_eq!(rx.recv().unwrap(), message);
    }
}
