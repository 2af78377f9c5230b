//! The transactional outbox: a message is written in the same transaction as
//! the application's own data, and a dispatcher thread sends it afterwards.
//!
//! The pieces, one file each:
//!
//! 1. [`OutboxStore`]: where rows live. [`MemoryOutboxStore`] (tests, no
//!    durability), `FjallOutboxStore` (feature `durable`: the application's
//!    keyspaces and the outbox in one fjall database, committed together) and
//!    `PostgresOutboxStore` (feature `postgres`: a table next to the
//!    application's, written in the application's transaction).
//! 2. [`EventStream`]: where rows go. Any closure
//!    `FnMut(&OutboxRecord) -> Result<()>`, [`ChannelStream`] for the
//!    input of any [`Adapter`](crate::Adapter) channel, `RabbitStream`
//!    (feature `rabbitmq`: a confirmed publisher, one confirm wait per
//!    batch) and `QueueStream` (feature `durable`: a topic of the queue
//!    engine, one durable publish per batch).
//! 3. [`Outbox`]: owns a dispatcher thread and a cleanup thread (see
//!    [`OutboxConfig`] for every knob) and reports outcomes as
//!    [`OutboxEvent`]s.
//!
//! # Guarantees
//!
//! - **Atomic**: `add_within_tx` commits the application's writes and the
//!   outbox row together, or neither (when the closure fails, or the commit
//!   does).
//! - **At least once**: a row whose add returned `Ok` is sent until the stream
//!   accepts it, through stream failures and restarts of the process (fjall,
//!   PostgreSQL). A crash between a send and its `mark_dispatched` sends the
//!   row again after the restart, so consumers should dedupe by
//!   [`OutboxRecord::id`] or the message key.
//! - **In order**: rows are sent in id order; a row is sent only after every
//!   row before it was sent or went dead. With several dispatchers on one
//!   PostgreSQL table each keeps that order for the rows it claimed; and
//!   PostgreSQL hands out ids at insert, not at commit, so concurrent
//!   writers' rows can become visible out of id order (see its store).
//! - **Confirmed before marked**: a row is marked dispatched only after the
//!   stream's `send` and then its `flush` returned `Ok`, so a stream that
//!   pipelines (a publisher with confirms) loses nothing either.
//! - **No head-of-line blocking forever**: a row the stream rejects
//!   `max_attempts` times for a reason of the row's own (not a stream that is
//!   down) is moved aside as dead and the rows behind it go on; the
//!   application lists dead rows, requeues them or removes them.
//! - **Never stalls on its reports**: outcome events go to a bounded channel
//!   with `try_send`; when nobody reads it, events are dropped and counted,
//!   and dispatching goes on.
//!
//! The Go outboxer dispatches only on a ticker, reads rows without
//! `ORDER BY` and without claiming them, keeps no attempt count, and blocks
//! on unbuffered result channels; none of that is copied here.

use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::message::Message;

pub mod config;
pub mod dispatcher;
pub mod memory_store;
#[cfg(feature = "durable")]
pub mod queue_stream;
#[cfg(feature = "rabbitmq")]
pub mod rabbit_stream;
#[cfg(feature = "durable")]
mod record;
mod signal;
pub mod stream;
mod threads;

#[cfg(feature = "durable")]
pub mod fjall_store;
#[cfg(feature = "postgres")]
pub mod postgres_config;
#[cfg(feature = "postgres")]
pub mod postgres_store;

pub use config::OutboxConfig;
pub use dispatcher::Outbox;
pub use memory_store::{MemoryOutboxStore, MemoryTx};
#[cfg(feature = "durable")]
pub use queue_stream::QueueStream;
#[cfg(feature = "rabbitmq")]
pub use rabbit_stream::{RabbitRoute, RabbitStream};
pub use stream::{ChannelStream, EventStream};

/// The fjall version the fjall store is built with, for the application's
/// own keyspaces and transactions (`fjall::KeyspaceCreateOptions`,
/// `fjall::PersistMode`, ...).
#[cfg(feature = "durable")]
pub use ::fjall;
/// The `postgres` version the PostgreSQL store is built with, for the
/// application's own statements (`postgres::Transaction`, ...).
#[cfg(feature = "postgres")]
pub use ::postgres;
#[cfg(feature = "durable")]
pub use fjall_store::FjallOutboxStore;
#[cfg(feature = "postgres")]
pub use postgres_config::PostgresStoreConfig;
#[cfg(feature = "postgres")]
pub use postgres_store::PostgresOutboxStore;

/// One row of the outbox: a message and what has happened to it so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRecord {
    /// The row's id: assigned by the store, unique and increasing in the
    /// order rows were added. Stable across restarts, so a consumer can use
    /// it to drop a message it already saw.
    pub id: u64,
    /// The message to send.
    pub message: Message,
    /// When the row was added (the adding process's clock, to the
    /// millisecond).
    pub created_at: SystemTime,
    /// How many sends of this row failed for a reason of the row's own.
    pub attempts: u32,
    /// The error of the last failed send, if any.
    pub last_error: Option<String>,
}

/// How many rows a store holds in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    /// Rows not yet sent.
    pub pending: u64,
    /// Rows sent and not yet removed by cleanup.
    pub dispatched: u64,
    /// Rows moved aside after `max_attempts` failed sends.
    pub dead: u64,
}

/// What the dispatcher and cleanup threads report on [`Outbox::events`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum OutboxEvent {
    /// The row was accepted by the stream and marked dispatched.
    Dispatched {
        /// The row's id.
        id: u64,
    },
    /// A send of the row failed; it will be tried again after a backoff.
    Failed {
        /// The row's id.
        id: u64,
        /// The failed attempts counted against the row so far (failures
        /// because the stream is down are not counted).
        attempts: u32,
        /// Why the send failed.
        error: Error,
    },
    /// The row failed `max_attempts` times and was moved aside; the rows
    /// behind it go on.
    Dead {
        /// The row's id.
        id: u64,
    },
    /// The stream's [`flush`](EventStream::flush) failed: it could not
    /// confirm these rows, so they stay pending and are sent again after a
    /// backoff. Not counted against the rows.
    FlushFailed {
        /// The rows sent since the last confirmed flush.
        ids: Vec<u64>,
        /// Why the flush failed.
        error: Error,
    },
    /// The store failed (reading pending rows, marking or cleaning up); the
    /// thread backs off and tries again.
    StoreFailed {
        /// What failed.
        error: Error,
    },
    /// Cleanup removed this many dispatched rows older than the retention
    /// period.
    Cleaned {
        /// How many rows were removed.
        removed: u64,
    },
}

/// Where outbox rows live.
///
/// A store is shared by the threads adding rows and the [`Outbox`]'s
/// dispatcher and cleanup threads, so every method takes `&self`.
/// Implementations must keep these rules, which the [`Outbox`] relies on:
///
/// - ids are unique and increase in the order adds commit (PostgreSQL:
///   in the order ids are taken, see its store);
/// - `pending` returns rows not dispatched and not dead, lowest id first;
/// - a row once marked dispatched or dead is never returned by `pending`
///   again;
/// - `remove_dispatched` removes only dispatched rows.
pub trait OutboxStore: Send + Sync + 'static {
    /// What [`add_within_tx`](Self::add_within_tx) hands the caller's closure
    /// for its own writes: the store's transaction.
    type Tx<'t>;

    /// Adds a row in a transaction of its own and returns its id.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] when the write or commit fails (then no row was
    /// added), [`Error::Codec`] for a message too large to encode.
    fn add(&self, message: &Message) -> Result<u64>;

    /// Runs `f` with a transaction, adds the row in the same transaction and
    /// commits both; returns the row's id and what `f` returned.
    ///
    /// # Errors
    ///
    /// When `f` fails its error is returned and the transaction rolled back:
    /// neither the application's writes nor the row exist. A failed write or
    /// commit of the store is an [`Error::Storage`] turned into `E`. `Error`
    /// has `From` for `fjall::Error` and `postgres::Error`, so with
    /// `E = Error` the closure can use `?` on the store's own calls.
    fn add_within_tx<T, E, F>(&self, message: &Message, f: F) -> Result<(u64, T), E>
    where
        F: for<'t> FnOnce(&mut Self::Tx<'t>) -> Result<T, E>,
        E: From<Error>;

    /// Up to `batch` pending rows, lowest id first. A store shared by several
    /// dispatchers claims the rows it returns, so no other dispatcher gets
    /// them while the claim lasts.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] when the store cannot be read.
    fn pending(&self, batch: usize) -> Result<Vec<OutboxRecord>>;

    /// Marks the rows dispatched (sent), so `pending` never returns them
    /// again and cleanup may remove them. Ids that are not pending are
    /// ignored.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`]; then the rows stay pending and are sent again.
    fn mark_dispatched(&self, ids: &[u64]) -> Result<()>;

    /// Counts a failed send against the row and keeps the error; returns
    /// the row's attempts so far.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`]; [`Error::InvalidArgument`] when the row is not
    /// pending.
    fn record_failure(&self, id: u64, error: &str) -> Result<u32>;

    /// Moves the row aside as dead: `pending` no longer returns it, cleanup
    /// does not remove it, [`dead`](Self::dead) lists it.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`]; [`Error::InvalidArgument`] when the row is not
    /// pending.
    fn mark_dead(&self, id: u64) -> Result<()>;

    /// Removes up to `batch` rows dispatched before `older_than` and returns
    /// how many it removed.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`].
    fn remove_dispatched(&self, older_than: SystemTime, batch: usize) -> Result<u64>;

    /// Gives a dead row another chance: removes it and adds its message as
    /// a new pending row (a new id, after every row pending now, no
    /// attempts), in one transaction. Returns the new id.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when the row is not dead;
    /// [`Error::Storage`].
    fn requeue_dead(&self, id: u64) -> Result<u64>;

    /// Deletes a dead row for good.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when the row is not dead;
    /// [`Error::Storage`].
    fn remove_dead(&self, id: u64) -> Result<()>;

    /// Up to `limit` dead rows, lowest id first.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`].
    fn dead(&self, limit: usize) -> Result<Vec<OutboxRecord>>;

    /// How many rows are in each state. May scan the store: for tests and
    /// monitoring, not for a hot path.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`].
    fn counts(&self) -> Result<OutboxCounts>;
}

/// Checks a batch size argument: at least 1.
pub(crate) fn check_batch(name: &str, batch: usize) -> Result<()> {
    if batch == 0 {
        return Err(Error::invalid(name, "a batch size must be at least 1"));
    }
    Ok(())
}

/// Milliseconds since the Unix epoch, 0 for times before it.
pub(crate) fn millis(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The time `ms` milliseconds after the Unix epoch.
pub(crate) fn from_millis(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms)
}

/// The current time truncated to milliseconds, so a time compares equal
/// after a round trip through any store.
pub(crate) fn now_ms() -> SystemTime {
    from_millis(millis(SystemTime::now()))
}
