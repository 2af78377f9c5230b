//! The transactional outbox: a message is written in the same transaction as
//! the application's own data, and a dispatcher thread sends it afterwards.
//!
//! The pieces:
//!
//! 1. [`OutboxStore`]: where rows live. [`MemoryOutboxStore`] (tests, no
//!    durability), `FjallOutboxStore` (feature `durable`: the application's
//!    keyspaces and the outbox in one fjall database, committed together) and
//!    `PostgresOutboxStore` (feature `postgres`: a table next to the
//!    application's, written in the application's transaction).
//! 2. A [`Sink`](crate::Sink): where rows go. Any closure
//!    `FnMut(&Message) -> Result<()>`, [`ChannelSink`](crate::ChannelSink)
//!    for the input of any [`Adapter`](crate::Adapter) channel,
//!    `RabbitSink` (feature `rabbitmq`: a confirmed publisher, one confirm
//!    wait per batch) and `QueueSink` (feature `durable`: a topic of the
//!    queue engine, one durable publish per batch).
//! 3. [`Outbox`]: owns a dispatcher thread and a cleanup thread (see
//!    [`OutboxConfig`] for every knob) and reports outcomes as
//!    [`OutboxEvent`]s.
//!
//! # Guarantees
//!
//! - **Atomic**: `add_within_tx` commits the application's writes and the
//!   outbox row together, or neither (when the closure fails, or the commit
//!   does).
//! - **At least once**: a row whose add returned `Ok` is sent until the sink
//!   accepts it, through sink failures and restarts of the process (fjall,
//!   PostgreSQL). A crash between a send and its `mark_dispatched` sends the
//!   row again after the restart, so consumers should dedupe by the
//!   message's [key](crate::Message::with_key) (or [`OutboxRecord::id`],
//!   when the sink carries it).
//! - **In order**: rows are sent in id order; a row is sent only after every
//!   row before it was sent or dead-lettered. With several dispatchers on
//!   one PostgreSQL table each keeps that order for the rows it claimed; and
//!   PostgreSQL hands out ids at insert, not at commit, so concurrent
//!   writers' rows can become visible out of id order (see its store).
//! - **Confirmed before marked**: a row is marked dispatched only after the
//!   sink's `send` and then its `flush` returned `Ok`, so a sink that
//!   pipelines (a publisher with confirms) loses nothing either.
//! - **No head-of-line blocking forever**: a row that fails `max_attempts`
//!   times for a reason of its own (not a sink that is down) is
//!   dead-lettered and the rows behind it go on; the application lists the
//!   dead letters, requeues them or removes them.
//! - **Never stalls on its reports**: outcome events go to a bounded channel
//!   with `try_send`; when nobody reads it, events are dropped and counted,
//!   and dispatching goes on.
//!
//! The Go outboxer dispatches only on a ticker, reads rows without
//! `ORDER BY` and without claiming them, keeps no attempt count, and blocks
//! on unbuffered result channels; none of that is copied here.
//!
//! The files: `outbox.rs` ([`Outbox`]), `config.rs`, `event.rs`,
//! `record.rs`, `stats.rs`, the two threads (`dispatcher.rs`, `cleaner.rs`) with the
//! `reporter.rs` and the `wake.rs` they share, and `store/` with the
//! [`OutboxStore`] trait and one file per store.

mod cleaner;
mod config;
mod dispatcher;
mod event;
#[allow(clippy::module_inception)] // the file is named for the type it holds
mod outbox;
mod record;
mod reporter;
mod stats;
mod store;
mod wake;

pub use config::OutboxConfig;
pub use event::{OutboxEvent, WhenFull};
pub use outbox::Outbox;
pub use record::OutboxRecord;
pub use stats::OutboxStats;
#[cfg(feature = "durable")]
pub use store::FjallOutboxStore;
pub use store::{MemoryOutboxStore, MemoryTx, OutboxCounts, OutboxStore};
#[cfg(feature = "postgres")]
pub use store::{PostgresOutboxStore, PostgresStoreConfig};

/// The fjall version the fjall store is built with, for the application's
/// own keyspaces and transactions (`fjall::KeyspaceCreateOptions`,
/// `fjall::PersistMode`, ...).
#[cfg(feature = "durable")]
pub use ::fjall;
/// The `postgres` version the PostgreSQL store is built with, for the
/// application's own statements (`postgres::Transaction`, ...).
#[cfg(feature = "postgres")]
pub use ::postgres;
