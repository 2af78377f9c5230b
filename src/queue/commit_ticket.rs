//! [`CommitTicket`]: what a [`Receipt`](crate::Receipt) from
//! [`Queue::send`](super::Queue::send) waits on, a group-commit ticket.
//! The guarantees are on `Queue::send`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::commit::Committer;
use crate::error::Result;
use crate::receipt::Pending;

/// A send's place in the queue's write order and the committer that makes
/// it durable. It keeps the committer, and so the store's files, alive
/// until the receipt is dropped, even after the queue is (as a
/// [`Subscriber`](super::Subscriber) does).
pub(crate) struct CommitTicket {
    pub(crate) committer: Arc<Committer>,
    /// The send's ticket, from [`Committer::written`]; never 0 (an empty
    /// send gets a settled receipt instead).
    pub(crate) ticket: u64,
}

impl Pending for CommitTicket {
    fn wait(self: Box<Self>, timeout: Option<Duration>) -> Result<()> {
        // A timeout too long to add to the clock waits without one.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        self.committer.wait(self.ticket, deadline)
    }
}
