//! [`PendingConfirm`]: what a [`Receipt`](crate::Receipt) from
//! [`Publisher::send`](super::Publisher::send) waits on, the broker's
//! confirm of one message.
//!
//! The wait ends with the answer, at the timeout, or when the publisher's
//! close returns, whichever comes first: a receipt must not outlive the
//! close even if the publishing thread is stuck in a call to a frozen
//! broker and never answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::receipt::Pending;
use crate::reply::{Answer, Outcome};
use crate::waiter::{describe_wait, ConnectionWaiter};

/// The confirm of one message, on its way from the publishing thread.
pub(super) struct PendingConfirm {
    /// The publishing thread's answer; the publisher's close closes the
    /// replies it comes from.
    pub(super) answer: Answer<Result<()>>,
    /// How long a wait without a timeout of its own lasts: the
    /// publisher's confirm timeout.
    pub(super) timeout: Duration,
    /// To name the last connection error when the wait times out.
    pub(super) waiter: Arc<ConnectionWaiter>,
}

impl Pending for PendingConfirm {
    fn wait(self: Box<Self>, timeout: Option<Duration>) -> Result<()> {
        let timeout = timeout.unwrap_or(self.timeout);
        // A timeout too long to add to the clock waits without limit (the
        // publisher's close still ends it).
        match self.answer.wait_until(Instant::now().checked_add(timeout)) {
            Outcome::Answered(result) => result,
            Outcome::Closed => Err(Error::closed(
                "publisher (closed before the broker confirmed the message; \
                 it may still have reached the broker)",
            )),
            Outcome::TimedOut => Err(Error::timeout(
                describe_wait(
                    "the broker's confirm (the message stays buffered and may still be published)",
                    self.waiter.last_error().as_ref(),
                ),
                timeout,
            )),
            Outcome::Dropped => Err(Error::closed("publisher")),
        }
    }
}
