//! The [`OutboxStore`] trait, where outbox rows live, and one file per
//! store: `memory.rs`, `fjall.rs` (with the stored form of a row in
//! `fjall_row.rs`), `postgres.rs` with its `postgres_config.rs`, `postgres_connect.rs` (every
//! connection it opens) and `postgres_params.rs` (libpq's `sslmode`).

use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::message::Message;
use crate::outbox::record::OutboxRecord;

#[cfg(feature = "durable")]
mod fjall;
#[cfg(feature = "durable")]
mod fjall_row;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
mod postgres_config;
#[cfg(feature = "postgres")]
mod postgres_connect;
#[cfg(feature = "postgres")]
mod postgres_params;

#[cfg(feature = "durable")]
pub use fjall::FjallOutboxStore;
pub use memory::{MemoryOutboxStore, MemoryTx};
#[cfg(feature = "postgres")]
pub use postgres::PostgresOutboxStore;
#[cfg(feature = "postgres")]
pub use postgres_config::PostgresStoreConfig;

/// How many rows a store holds in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    /// Rows not yet sent.
    pub pending: u64,
    /// Rows sent and not yet removed by cleanup.
    pub dispatched: u64,
    /// Rows dead-lettered after `max_attempts` failed sends.
    pub dead_letters: u64,
}

/// Where outbox rows live.
///
/// A store is shared by the threads adding rows and the [`Outbox`](crate::outbox::Outbox)'s
/// dispatcher and cleanup threads, so every method takes `&self`.
/// Implementations must keep these rules, which the [`Outbox`](crate::outbox::Outbox) relies on:
///
/// - ids are unique and increase in the order adds commit (PostgreSQL:
///   in the order ids are taken, see its store);
/// - `pending` returns rows neither dispatched nor dead-lettered, lowest id
///   first;
/// - a row once marked dispatched or dead-lettered is never returned by
///   `pending` again;
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

    /// Dead-letters the row: `pending` no longer returns it, cleanup does
    /// not remove it, [`dead_letters`](Self::dead_letters) lists it.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`]; [`Error::InvalidArgument`] when the row is not
    /// pending.
    fn dead_letter(&self, id: u64) -> Result<()>;

    /// Removes up to `batch` rows dispatched before `older_than` and returns
    /// how many it removed.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`].
    fn remove_dispatched(&self, older_than: SystemTime, batch: usize) -> Result<u64>;

    /// Gives a dead letter another chance: removes it and adds its message
    /// as a new pending row (a new id, after every row pending now, no
    /// attempts), in one transaction. Returns the new id.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when the row is not a dead letter;
    /// [`Error::Storage`].
    fn requeue_dead_letter(&self, id: u64) -> Result<u64>;

    /// Deletes a dead letter for good.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when the row is not a dead letter;
    /// [`Error::Storage`].
    fn remove_dead_letter(&self, id: u64) -> Result<()>;

    /// Up to `limit` dead letters, lowest id first.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`].
    fn dead_letters(&self, limit: usize) -> Result<Vec<OutboxRecord>>;

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
