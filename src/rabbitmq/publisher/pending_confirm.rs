//! [`PendingConfirm`]: what a [`Receipt`](crate::Receipt) from
//! [`Publisher::send`](super::Publisher::send) waits on, the broker's
//! confirm of one message.
//!
//! The wait ends with the answer, at the timeout, or when the publisher's
//! close returns, whichever comes first: a receipt must not outlive the
//! close even if the publishing thread is stuck in a call to a frozen
//! broker and never answers.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{select, Receiver, RecvTimeoutError, TryRecvError};

use crate::error::{Error, Result};
use crate::receipt::Pending;
use crate::waiter::{describe_wait, ConnectionWaiter};

/// The confirm of one message, on its way from the publishing thread.
pub(super) struct PendingConfirm {
    /// The publishing thread's answer.
    pub(super) rx: Receiver<Result<()>>,
    /// How long a wait without a timeout of its own lasts: the
    /// publisher's confirm timeout.
    pub(super) timeout: Duration,
    /// To name the last connection error when the wait times out.
    pub(super) waiter: Arc<ConnectionWaiter>,
    /// Disconnected when [`Publisher::close`](super::Publisher::close)
    /// returns.
    pub(super) closed: Receiver<()>,
}

impl PendingConfirm {
    /// The answer once the publisher closed: the one that came meanwhile,
    /// else `Closed`.
    fn after_close(&self) -> Result<()> {
        self.rx.try_recv().unwrap_or_else(|_| {
            Err(Error::closed(
                "publisher (closed before the broker confirmed the message; \
                 it may still have reached the broker)",
            ))
        })
    }
}

impl Pending for PendingConfirm {
    fn wait(self: Box<Self>, timeout: Option<Duration>) -> Result<()> {
        let timeout = timeout.unwrap_or(self.timeout);
        // An answer already there wins: `select!` picks at random among
        // ready operations, and a zero timeout is ready at once.
        let answer = match self.rx.try_recv() {
            Ok(result) => Ok(result),
            Err(TryRecvError::Disconnected) => Err(RecvTimeoutError::Disconnected),
            Err(TryRecvError::Empty) => select! {
                recv(self.rx) -> result => result.map_err(|_| RecvTimeoutError::Disconnected),
                recv(self.closed) -> _ => return self.after_close(),
                recv(crossbeam_channel::after(timeout)) -> _ => {
                    self.rx.try_recv().map_err(|_| RecvTimeoutError::Timeout)
                }
            },
        };
        match answer {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(Error::timeout(
                describe_wait(
                    "the broker's confirm (the message stays buffered and may still be published)",
                    self.waiter.last_error().as_ref(),
                ),
                timeout,
            )),
            Err(RecvTimeoutError::Disconnected) => Err(Error::closed("publisher")),
        }
    }
}
