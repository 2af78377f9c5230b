//! [`Sink`]: one destination for messages, whoever sends them.
//!
//! The outbox's dispatcher and the block runtime's publisher block both
//! hand messages to somewhere else (a channel, a queue topic, RabbitMQ) and
//! must know when those messages are safe there. A sink says both in two
//! calls: [`send`](Sink::send) hands a message on (it may return before the
//! destination has it, to pipeline), and [`flush`](Sink::flush) returns
//! once every message sent since the last flush is as safe as the
//! destination promises. A caller that must not lose a message sends, then
//! flushes, and only then forgets it.

use crate::error::Result;
use crate::message::Message;

/// A destination for messages. See the [module docs](self).
///
/// The thread that owns a sink calls it, so the methods take `&mut self`
/// and a sink need not be `Sync`.
///
/// # Errors of `send` and `flush`
///
/// An error for which [`Error::is_transient`](crate::Error::is_transient)
/// is true (disconnected, busy, timeout), or
/// [`Error::Closed`](crate::Error::Closed) or
/// [`Error::Refused`](crate::Error::Refused), says the destination is
/// down: the caller retries later and does not hold it against the message.
/// Any other error is the message's own (it cannot be encoded, it is too
/// big). After a failed `flush`, every message sent since the last good
/// flush may or may not have arrived: send them again.
///
/// A call should give up within about a second (or return a timeout), so
/// that whoever owns the sink can close in time.
pub trait Sink: Send + 'static {
    /// Hands `message` on; it is safe only once [`flush`](Self::flush)
    /// returned `Ok`.
    ///
    /// # Errors
    ///
    /// See the [trait docs](Self).
    fn send(&mut self, message: &Message) -> Result<()>;

    /// Returns once every message sent since the last flush is safe.
    ///
    /// # Errors
    ///
    /// See the [trait docs](Self).
    fn flush(&mut self) -> Result<()>;
}

/// A boxed sink sends as the one it holds.
impl<S: Sink + ?Sized> Sink for Box<S> {
    fn send(&mut self, message: &Message) -> Result<()> {
        (**self).send(message)
    }

    fn flush(&mut self) -> Result<()> {
        (**self).flush()
    }
}
