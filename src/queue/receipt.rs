//! Pipelined publishing: [`Receipt`], the proof of a
//! [`Queue::send`](super::Queue::send) that can be waited on later.
//!
//! `send` writes its batch at once and returns a receipt without syncing;
//! [`Receipt::wait`] blocks until a group-commit round has synced that batch
//! (it leads the round itself when no other publisher is). A producer that
//! keeps a window of receipts outstanding, like RabbitMQ publisher confirms,
//! lets one fsync cover many of its messages instead of one.
//!
//! # Guarantees
//!
//! - **Nothing sent is durable until its receipt's `wait` returned `Ok`.**
//!   After a crash a send whose receipt was not waited for (or whose wait
//!   had not returned yet) may be lost; one whose `wait` returned `Ok` never
//!   is.
//! - Syncs cover **prefixes**: batches are written and ticketed in one
//!   order, and a sync covers everything written before it started, so once
//!   a receipt's `wait` returned `Ok`, every batch sent before it (by any
//!   thread) is durable too. Waiting for the newest of a window covers the
//!   whole window.
//! - Each send is one atomic batch, as `publish`: after a crash all of it is
//!   there or none.
//! - Order: the messages of sends made one after another are queued in
//!   that order (FIFO within a priority), whether or not anything waited in
//!   between.
//! - A failed sync fails this and every later wait with the same
//!   [`Error::Storage`](crate::Error::Storage): the store cannot say what it
//!   lost.
//! - A receipt stays valid after [`Queue::close`](super::Queue::close):
//!   close syncs everything that was sent, so waiting afterwards returns
//!   `Ok` without another sync (or close's sync error).

use std::sync::Arc;

use super::config::Durability;
use super::engine::Shared;
use crate::error::Result;

/// The proof of a [`Queue::send`](super::Queue::send): [`wait`](Self::wait)
/// returns once that send is durable. Cheap (a ticket number and a handle
/// on the queue), `Send`, and may be waited on from another thread.
///
/// Dropping it without waiting does not undo the send, it only gives up
/// knowing when (or whether) it became durable. Like a
/// [`Subscriber`](super::Subscriber), a receipt keeps the store's files
/// open until it is dropped, even after the queue is.
#[must_use = "a send is not durable until its receipt's wait returns Ok"]
pub struct Receipt {
    pub(crate) shared: Arc<Shared>,
    /// The send's group-commit ticket; 0 for an empty send (nothing to
    /// wait for).
    pub(crate) ticket: u64,
}

impl std::fmt::Debug for Receipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receipt")
            .field("ticket", &self.ticket)
            .finish_non_exhaustive()
    }
}

impl Receipt {
    /// The send's position in the queue's write order (1 for the first
    /// send since the queue was opened; 0 for an empty send). Waiting for a
    /// receipt covers every receipt with a smaller ticket.
    pub fn ticket(&self) -> u64 {
        self.ticket
    }

    /// Blocks until the send is durable: fsynced with
    /// [`Durability::Durable`] (the default), sharing the sync with every
    /// other publisher waiting meanwhile; written to the OS with
    /// [`Durability::Buffered`].
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::Error::Storage) when the sync failed (the
    /// send may or may not be stored).
    pub fn wait(self) -> Result<()> {
        if self.ticket == 0 {
            return Ok(());
        }
        match self.shared.durability {
            Durability::Durable => self.shared.committer.wait(self.ticket),
            Durability::Buffered => self.shared.lock().store.clone().flush(),
        }
    }
}
