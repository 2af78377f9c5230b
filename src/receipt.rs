//! [`Receipt`]: the proof of a pipelined publish, waited on later.
//!
//! A pipelined publish (`Queue::send`, `rabbitmq::Publisher::send`, the
//! queue client's `send`) hands its message on and returns a receipt at
//! once, without waiting for the fsync or the broker's confirm. The
//! receipt's [`wait`](Receipt::wait) returns once that message is as safe
//! as the destination promises. Keeping a window of receipts outstanding
//! lets one fsync or one confirm round trip cover many messages: the same
//! idea as RabbitMQ's publisher confirms, with the same type for every
//! destination.

use std::fmt;
use std::time::Duration;

use crate::error::Result;

/// The proof of a pipelined publish: [`wait`](Self::wait) returns once the
/// message is durable (queue) or confirmed (RabbitMQ).
///
/// Cheap, `Send`, and may be waited on from another thread. Dropping it
/// without waiting does not undo the publish, it only gives up knowing
/// when (or whether) the message became safe. What `Ok` means, and the
/// ordering rules, are those of the call that returned it.
#[must_use = "a pipelined publish is not safe until its receipt's wait returns Ok"]
pub struct Receipt {
    pending: Option<Box<dyn Pending>>,
    /// Where it came from and which publish it is, for `Debug`.
    label: &'static str,
    ticket: u64,
}

/// What a destination waits on; one implementation per destination.
pub(crate) trait Pending: Send {
    /// Blocks until the publish is safe, at most `timeout` when one is
    /// given, else as long as the destination's own limit.
    fn wait(self: Box<Self>, timeout: Option<Duration>) -> Result<()>;
}

// Made by the queue and RabbitMQ publishers only.
#[cfg_attr(not(any(feature = "durable", feature = "rabbitmq")), allow(dead_code))]
impl Receipt {
    /// A receipt for publish number `ticket` (in the publisher's own write
    /// order) that `pending` settles.
    pub(crate) fn new(label: &'static str, ticket: u64, pending: impl Pending + 'static) -> Self {
        Receipt {
            pending: Some(Box::new(pending)),
            label,
            ticket,
        }
    }

    /// A receipt with nothing to wait for (an empty publish).
    pub(crate) fn settled(label: &'static str) -> Self {
        Receipt {
            pending: None,
            label,
            ticket: 0,
        }
    }

    /// The publish's position in its publisher's write order, counted from
    /// 1 (0 when there was nothing to publish). Within one publisher a
    /// larger ticket was written later.
    #[must_use]
    pub fn ticket(&self) -> u64 {
        self.ticket
    }

    /// Blocks until the message is safe: for the queue until its batch is
    /// synced (however long the fsync takes), for RabbitMQ until the
    /// broker confirmed it, at most the publisher's confirm timeout.
    ///
    /// # Errors
    ///
    /// Why the message may not be safe: the destination's error (a failed
    /// sync, a nack, a refusal, a close), or
    /// [`Error::Timeout`](crate::Error::Timeout). The message may or may
    /// not have been stored.
    pub fn wait(self) -> Result<()> {
        match self.pending {
            Some(pending) => pending.wait(None),
            None => Ok(()),
        }
    }

    /// As [`wait`](Self::wait), at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait); [`Error::Timeout`](crate::Error::Timeout)
    /// when `timeout` ran out first.
    pub fn wait_timeout(self, timeout: Duration) -> Result<()> {
        match self.pending {
            Some(pending) => pending.wait(Some(timeout)),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receipt")
            .field("from", &self.label)
            .field("ticket", &self.ticket)
            .field("settled", &self.pending.is_none())
            .finish()
    }
}
