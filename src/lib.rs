//! # syncmq
//!
//! Synchronous messaging for programs that are not async: daemons,
//! command-line tools, codebases that call through FFI. Blocking calls on OS
//! threads and crossbeam channels, and no async runtime anywhere.
//!
//! # Where things are
//!
//! The items every part shares live at the crate root: [`Message`],
//! [`Delivery`], [`Error`], [`Receipt`], [`Sink`], [`Generation`], the
//! [`ConnectionWaiter`], and the named channels ([`Adapter`],
//! [`ChannelSpec`], [`SimpleAdapter`], `DurableAdapter`, `RabbitAdapter`)
//! and the sinks ([`ChannelSink`], `QueueSink`, `RabbitSink`). Each larger
//! part has one module: `queue`, `rabbitmq`,
//! `server`, [`outbox`], [`block`]. Every item has exactly one path;
//! [`prelude`] gathers the ones most programs use, and
//! [`crossbeam_channel`] is re-exported so that `select!` over our
//! receivers needs no crossbeam of your own.
//!
//! # Layers
//!
//! Lowest first; a layer uses only the layers above it in this list
//! (`tests/layers.rs` fails the build's tests otherwise):
//!
//! 1. errors ([`Error`], [`Result`]), threads (named, joined by a
//!    deadline), the counts every `stats()` reads (and, with feature
//!    `metrics`, records through the `metrics` facade), durations at the
//!    serde boundary, `TlsConfig` (the TLS settings RabbitMQ connections
//!    and the PostgreSQL store share), config files in JSON, TOML or YAML
//!    (feature `config`), the worker count of the fjall databases syncmq
//!    opens (feature `durable`);
//! 2. [`Message`] and [`Delivery`] (with JSON payloads, feature `json`),
//!    [`Receipt`] and the one-shot replies receipts wait on, the
//!    [`ConnectionWaiter`];
//! 3. `queue` (feature `durable`): the fjall-backed queue engine: topics,
//!    subscribers, priorities, acks with redelivery, dead letters, dedupe,
//!    expiry and group commit;
//! 4. `rabbitmq` (feature `rabbitmq`): the supervised connection, the
//!    confirmed publisher with its retry buffer, consumers with prefetch
//!    and dead letters, and the gormq-style `RabbitClient`;
//! 5. `server` (feature `durable`): the queue engine over TCP
//!    (length-prefixed MessagePack frames) and its blocking `QueueClient`,
//!    under the `syncmq` command-line tool;
//! 6. channels: the [`Adapter`] trait and its three adapters, on the queue
//!    engine and RabbitMQ;
//! 7. sinks: the [`Sink`] trait and one sink per destination (channel,
//!    queue topic, RabbitMQ);
//! 8. [`outbox`]: the transactional outbox, dispatching to any sink;
//! 9. [`block`]: the block runtime, whose publisher block sends to any sink.
//!
//! # Vocabulary
//!
//! One word per idea, in every module:
//!
//! | word | means |
//! |---|---|
//! | **publish** | returns once the message is safe: fsynced (queue) or confirmed (RabbitMQ) |
//! | **send** | pipelined: hands the message on and returns a [`Receipt`] to wait on later |
//! | **`_nowait`** | fire and forget: nothing to wait on, retried in the background |
//! | **[`Receipt`]** | the proof of a send; `wait` returns once that message is safe |
//! | **[`Sink`]** | a destination: `send` then `flush` |
//! | **receive** (`recv`, `recv_timeout`, `next_batch`) | waits for something to arrive; a timeout is `Ok(None)` or an empty batch, not an error |
//! | **peek** (`peek`, `peek_batch`) | shows what the next receives would take, without waiting, taking or counting a delivery |
//! | **ack / nack** | settle a [`Delivery`]: done, or give it back (requeue) or dead-letter it |
//! | **dead letter** | a message set aside after too many deliveries or a nack without requeue |
//! | **[`Generation`]** | how many times a connection has come up; a reconnect is a new generation |
//! | **dependency** | something the block runtime watches connect and disconnect |
//! | **stats** | `stats()` on every owner: a serde snapshot of its counts, in these words: `published`, `delivered`, `redelivered`, `acked`, `nacked`, `dead_lettered`, `expired`, `refused`, `reconnects`, `depth`, `in_flight`, `buffered` |
//! | **close** | `close(&self)` stops an owner's threads within its `with_close_timeout`; dropping closes too |
//! | **key** | a message's identity (dedupe key, AMQP `message_id`); **routing key** is where it goes |
//!
//! Features: `durable` (fjall: the queue engine, the `DurableAdapter`, the
//! queue server), `rabbitmq` (amiquip) and `tls` (`amqps://`, amiquip's
//! `native-tls`), all on by default; `postgres`
//! for the outbox's PostgreSQL store; `metrics` for counters, gauges and
//! histograms through the `metrics` crate facade (the README's "Operating
//! syncmq" lists them); `cli` for the `syncmq` binary. On
//! docs.rs each item says which feature it needs.
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
//!   [`server::RemoteSubscriber::recv_timeout`]); a batch is `Result<Vec<T>>`,
//!   empty when the time ran out ([`queue::Subscriber::next_batch`]). `Err`
//!   means the caller must act: the queue closed, the connection ended.
//! - An **action** that must complete (a publish waiting for durability or
//!   a confirm, a connect, [`ConnectionWaiter::wait_connected`],
//!   [`block::Dependency::wait_connected`], a close, a flush, a request and its
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

#![cfg_attr(docsrs, feature(doc_cfg))]

mod channel;
// Its users (the queue's and the server's configs) need `durable`.
#[cfg(feature = "config")]
#[cfg_attr(not(feature = "durable"), allow(dead_code))]
mod config_file;
mod error;
#[cfg(feature = "durable")]
mod fjall_workers;
#[cfg(feature = "json")]
mod json;
mod message;
// Every owner's counts go through it; with feature `metrics` they are
// recorded through the `metrics` facade as well. Some handles serve the
// queue and RabbitMQ parts only.
#[cfg_attr(not(all(feature = "durable", feature = "rabbitmq")), allow(dead_code))]
mod metrics;
mod millis;
mod receipt;
// Used by the RabbitMQ publisher and the queue server's client.
#[cfg_attr(not(any(feature = "rabbitmq", feature = "durable")), allow(dead_code))]
mod reply;
mod sink;
mod thread;
#[cfg(any(feature = "tls", feature = "postgres"))]
mod tls;
mod waiter;

pub mod block;
pub mod outbox;
pub mod prelude;
#[cfg(feature = "durable")]
pub mod queue;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;
#[cfg(feature = "durable")]
pub mod server;

/// The crossbeam channels every channel input, output and event stream of
/// the crate is made of, re-exported so that `select!` over them, and
/// their error types, need no crossbeam of your own (and never a second,
/// incompatible version of it).
pub use crossbeam_channel;

#[cfg(feature = "rabbitmq")]
pub use channel::RabbitAdapter;
pub use channel::{Adapter, AdapterStats, ChannelSpec, ChannelStats, Mode, SimpleAdapter};
#[cfg(feature = "durable")]
pub use channel::{DurableAdapter, DurableConfig};
pub use error::{Error, ErrorSource, ObjectKind, Result};
pub use message::{Acker, Delivery, Message};
pub use receipt::Receipt;
#[cfg(feature = "durable")]
pub use sink::QueueSink;
pub use sink::{ChannelSink, Sink};
#[cfg(feature = "rabbitmq")]
pub use sink::{RabbitRoute, RabbitSink};
/// Also at `syncmq::rabbitmq::TlsConfig`, where it was first.
#[cfg(any(feature = "tls", feature = "postgres"))]
pub use tls::TlsConfig;
pub use waiter::{ConnectionWaiter, Generation};

/// Every code block of the README, compiled (and, unless marked `no_run`,
/// run) by `cargo test --doc`, so the README cannot drift from the crate.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
