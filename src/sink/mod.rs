//! [`Sink`]: one destination for messages, whoever sends them, and one
//! implementation per destination.
//!
//! The outbox's dispatcher and the block runtime's publisher block both
//! hand messages to somewhere else (a channel, a queue topic, RabbitMQ) and
//! must know when those messages are safe there. A sink says both in two
//! calls: [`send`](Sink::send) hands a message on (it may return before the
//! destination has it, to pipeline), and [`flush`](Sink::flush) returns
//! once every message sent since the last flush is as safe as the
//! destination promises. A caller that must not lose a message sends, then
//! flushes, and only then forgets it.
//!
//! The files, one destination each: `channel.rs` ([`ChannelSink`], the
//! input of any [`Adapter`](crate::Adapter) channel), `queue.rs`
//! (`QueueSink`, a topic of the queue engine) and `rabbitmq.rs`
//! (`RabbitSink` and its `RabbitRoute`).

use crate::error::{Error, Result};
use crate::message::Message;

mod channel;
#[cfg(feature = "durable")]
mod queue;
#[cfg(feature = "rabbitmq")]
mod rabbitmq;

pub use channel::ChannelSink;
#[cfg(feature = "durable")]
pub use queue::QueueSink;
#[cfg(feature = "rabbitmq")]
pub use rabbitmq::{RabbitRoute, RabbitSink};

/// A destination for messages: [`send`](Self::send) hands a message on,
/// [`flush`](Self::flush) returns once everything sent is safe.
///
/// One implementation per destination: [`ChannelSink`] (the input of any
/// [`Adapter`](crate::Adapter) channel), `QueueSink` (feature `durable`: a
/// topic of the queue engine, one durable publish per flush) and
/// `RabbitSink` (feature `rabbitmq`: pipelined publishes, the broker's
/// confirms awaited in flush). A closure `FnMut(&Message) -> Result<()>` is
/// a sink whose `send` does it all and whose `flush` has nothing to wait
/// for, and a `Box<dyn Sink>` sends as the sink it holds, for a destination
/// chosen at run time.
///
/// The thread that owns a sink calls it, so the methods take `&mut self`
/// and a sink need not be `Sync`. A sink for a destination that confirms in
/// bulk hands messages on in `send` and waits in `flush`:
///
/// ```
/// use syncmq::{Message, Sink};
///
/// /// Stands in for a publisher with confirms: `publish` returns at once,
/// /// `wait_for_confirms` blocks until the broker has everything.
/// struct Broker { unconfirmed: Vec<Vec<u8>>, stored: Vec<Vec<u8>> }
///
/// impl Sink for Broker {
///     fn send(&mut self, message: &Message) -> syncmq::Result<()> {
///         self.unconfirmed.push(message.body().to_vec()); // publish
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
/// # Errors of `send` and `flush`
///
/// An error says either that the destination is down or that the message
/// is at fault, and the caller treats the two apart:
///
/// - **The destination is down**: an error for which
///   [`Error::is_transient`] is true (disconnected, busy, timeout), and
///   [`Error::Closed`], [`Error::Refused`], [`Error::Storage`] and
///   [`Error::Io`]. The caller retries later and does not hold it against
///   the message.
/// - **The message is at fault**: any other error (it is too big, it cannot
///   be encoded, no queue is bound to its routing key:
///   [`Error::InvalidArgument`], [`Error::Codec`]). Sent again it fails
///   again; the outbox counts it against the row and dead-letters the row
///   after `max_attempts`. A flush of several messages that fails this way
///   does not say which one it was: the outbox then sends them one per
///   flush to find out.
///
/// After a failed `flush`, every message sent since the last good flush
/// may or may not have arrived: send them again. A sink that pipelines may
/// recognise a message sent again whose earlier publish is still on its way
/// and wait for that instead of publishing a copy (`RabbitSink` does).
///
/// A call should give up within about a second (or return a timeout), so
/// that whoever owns the sink can close in time.
pub trait Sink: Send + 'static {
    /// Hands `message` on; it is safe only once [`flush`](Self::flush)
    /// returned `Ok`.
    ///
    /// # Errors
    ///
    /// See the [trait docs](Self#errors-of-send-and-flush).
    fn send(&mut self, message: &Message) -> Result<()>;

    /// Returns once every message sent since the last flush is safe.
    ///
    /// # Errors
    ///
    /// See the [trait docs](Self#errors-of-send-and-flush).
    fn flush(&mut self) -> Result<()>;
}

/// A closure is a sink that is done when it returns: its `flush` has
/// nothing to wait for.
///
/// ```
/// use syncmq::outbox::MemoryOutboxStore;
/// use syncmq::Message;
/// use syncmq::outbox::Outbox;
///
/// # fn main() -> syncmq::Result<()> {
/// let (tx, rx) = crossbeam_channel::unbounded();
/// let outbox = Outbox::start(MemoryOutboxStore::new(), move |m: &Message| {
///     tx.send(m.body().to_vec()).map_err(|_| syncmq::Error::closed("test receiver"))
/// })?;
/// outbox.add(&Message::new(b"hello".to_vec()))?;
/// assert_eq!(rx.recv().unwrap(), b"hello");
/// outbox.close()?;
/// # Ok(())
/// # }
/// ```
impl<F> Sink for F
where
    F: FnMut(&Message) -> Result<()> + Send + 'static,
{
    fn send(&mut self, message: &Message) -> Result<()> {
        self(message)
    }

    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A boxed sink sends as the one it holds. (For `Box<dyn Sink>` only: a
/// blanket `Box<S>` would overlap the closure implementation, since a
/// boxed closure is a closure.)
impl Sink for Box<dyn Sink> {
    fn send(&mut self, message: &Message) -> Result<()> {
        (**self).send(message)
    }

    fn flush(&mut self) -> Result<()> {
        (**self).flush()
    }
}

/// True for the errors that say the destination is down rather than that
/// the message is at fault (see [`Sink`]'s errors).
pub(crate) fn destination_is_down(error: &Error) -> bool {
    error.is_transient()
        || matches!(
            error,
            Error::Closed(_) | Error::Refused { .. } | Error::Storage { .. } | Error::Io { .. }
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_destination_is_down_or_the_message_is_at_fault() {
        for down in [
            Error::disconnected_reason("broker", "reset"),
            Error::closed("queue"),
            Error::refused(404, "no exchange"),
            Error::storage_reason("queue", "disk full"),
        ] {
            assert!(destination_is_down(&down), "{down:?}");
        }
        for own in [
            Error::invalid("message", "too big"),
            Error::codec_reason("encode", "bad"),
        ] {
            assert!(!destination_is_down(&own), "{own:?}");
        }
    }

    #[test]
    fn a_boxed_sink_and_a_closure_send_and_flush() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut boxed: Box<dyn Sink> =
            Box::new(move |m: &Message| tx.send(m.clone()).map_err(|_| Error::closed("receiver")));
        boxed.send(&Message::from("a")).unwrap();
        boxed.flush().unwrap();
        assert_eq!(rx.try_recv().unwrap().body(), b"a");
        drop(rx);
        assert!(matches!(
            boxed.send(&Message::from("b")),
            Err(Error::Closed(_))
        ));
    }
}
