//! # syncmq
//!
//! Synchronous messaging for programs that are not async: daemons,
//! command-line tools, codebases that call through FFI. Blocking calls on OS
//! threads and crossbeam channels, and no async runtime anywhere.
//!
//! The layers, lowest first (a layer never uses one above it):
//!
//! 1. [`error`]: one [`Error`] enum and the [`Result`] alias.
//! 2. [`message`]: [`Message`], [`Delivery`] and the [`Acker`] behind acks.
//! 3. [`waiter`]: [`ConnectionWaiter`], which wakes every thread waiting for
//!    a connection the moment it is up.
//! 4. [`queue`] (feature `durable`): the fjall-backed queue engine: topics,
//!    subscribers, priorities, acks with redelivery, dead letters, dedupe,
//!    expiry and group commit.
//! 5. [`channel`]: named channels behind the [`Adapter`] trait: the
//!    in-process [`SimpleAdapter`], with the `durable` feature the
//!    [`DurableAdapter`] on the queue engine, and with the `rabbitmq` feature
//!    the `RabbitAdapter`.
//! 6. [`outbox`]: the transactional outbox; an [`Outbox`] commits messages
//!    with the application's data (memory, fjall or PostgreSQL store) and
//!    dispatches them on its own threads to any [`outbox::EventStream`].
//! 7. [`rabbitmq`] (feature `rabbitmq`): the supervised connection, the
//!    confirmed publisher with its retry buffer, consumers with prefetch and
//!    dead-letter queues, and the gormq-style `Client`.
//! 8. [`server`] (feature `durable`): the queue engine served over TCP
//!    (length-prefixed MessagePack frames), its blocking `Client`, and the
//!    `syncmq` command-line tool on top.
//! 9. [`block`]: the block runtime: a process made of blocks with ordered
//!    init and finish, bags between them, server callbacks (over the
//!    RabbitMQ supervisor too) and signal shutdown; its publishers return
//!    once the queue engine or the broker has the message.
//!
//! # Timeouts
//!
//! Every blocking call that takes a timeout follows one rule, so that `?`
//! passes up failures and nothing else:
//!
//! - A **receive**, waiting for something to arrive (a delivery, a batch,
//!   an event), does not report the timeout as an error: nothing arriving
//!   in time is an ordinary answer. One item is `Result<Option<T>>`,
//!   `Ok(None)` when the time ran out ([`queue::Subscriber::recv_timeout`],
//!   [`server::Subscription::recv_timeout`]); a batch is `Result<Vec<T>>`,
//!   empty when the time ran out ([`queue::Subscriber::next_batch`]). `Err`
//!   means the caller must act: the queue closed, the connection ended.
//! - An **action** that must complete (a publish waiting for durability or
//!   a confirm, a connect, [`ConnectionWaiter::wait_connected`],
//!   [`block::Server::wait_connected`], a close, a flush, a request and its
//!   reply) fails with [`Error::Timeout`] `{ what, after }` when it did not
//!   complete in time: `what` names what did not happen (with the last
//!   connection error when there is one), `after` how long it waited.
//! - The crossbeam [`Receiver`](crossbeam_channel::Receiver)s the crate
//!   hands out (channel outputs from [`Adapter::output`], outbox events,
//!   publisher refusals) are crossbeam's own: their `recv_timeout` answers
//!   with crossbeam's [`RecvTimeoutError`](crossbeam_channel::RecvTimeoutError)
//!   (`Timeout` or `Disconnected`).
//!
//! ```
//! use syncmq::{Adapter, ChannelSpec, Mode, SimpleAdapter};
//!
//! # fn main() -> syncmq::Result<()> {
//! let adapter = SimpleAdapter::new();
//! adapter.new_channel(ChannelSpec::new("events", Mode::Both))?;
//! adapter.input("events")?.send("started".into()).unwrap();
//! let delivery = adapter.output("events")?.recv().unwrap();
//! assert_eq!(delivery.body(), b"started");
//! delivery.ack()?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod block;
pub mod channel;
pub mod error;
pub mod message;
pub mod outbox;
#[cfg(feature = "durable")]
pub mod queue;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;
#[cfg(feature = "durable")]
pub mod server;
pub mod waiter;

mod millis;
mod receipt;
mod sink;
mod thread;

#[cfg(feature = "rabbitmq")]
pub use channel::RabbitAdapter;
pub use channel::{Adapter, ChannelSpec, Mode, SimpleAdapter};
#[cfg(feature = "durable")]
pub use channel::{DurableAdapter, DurableConfig};

pub use error::{Error, ObjectKind, Result};
pub use message::{Acker, Delivery, Message};
pub use outbox::{Outbox, OutboxConfig, OutboxEvent};
pub use receipt::Receipt;
#[cfg(feature = "durable")]
pub use sink::QueueSink;
pub use sink::{ChannelSink, Sink};
#[cfg(feature = "rabbitmq")]
pub use sink::{RabbitRoute, RabbitSink};
pub use waiter::{ConnectionWaiter, Generation};

/// Every code block of the README, compiled (and, unless marked `no_run`,
/// run) by `cargo test --doc`, so the README cannot drift from the crate.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
