//! `RabbitMQ` that loses nothing, on amiquip and OS threads.
//!
//! 1. [`Connection`]: the supervisor. One thread owns the amiquip
//!    connection, reconnects forever with capped exponential backoff and
//!    jitter, re-declares the recorded [`Declaration`]s and wakes every
//!    worker after each connect, and sets the [`ConnectionWaiter`] with a
//!    new generation.
//! 2. [`Publisher`]: persistent messages, publisher confirms pipelined in a
//!    window, and a bounded retry buffer for what failed, was nacked or was
//!    unconfirmed when the connection died, resent in order after the
//!    reconnect. [`Publisher::publish`] returns once the broker confirmed,
//!    [`Publisher::send`] returns a [`Receipt`] at once, and
//!    [`Publisher::publish_nowait`] is fire and retry.
//! 3. [`Consumer`]: prefetch, durable `service:route:queue` queues, a
//!    `service:route:dlq` dead-letter queue for messages whose handler
//!    failed, handlers on our own threads; back by itself after a reconnect.
//! 4. [`RabbitClient`]: the gormq surface (`start`, `publish_nowait`,
//!    `add_consumer`, `close`) over the three.
//! 5. [`QueueArguments`]: what a declared queue is: classic, quorum or
//!    stream ([`QueueType`]), priorities, a delivery limit, broker-native
//!    dead-lettering, a single active consumer, a length limit whose
//!    [`Overflow::RejectPublish`] makes a publish into the full queue fail
//!    with [`Error::Busy`](crate::Error::Busy), a TTL; consumers of a
//!    stream start at a [`StreamOffset`].
//!
//! Every owner of threads here ([`Connection`], [`Publisher`], [`Consumer`],
//! [`RabbitClient`]) has a `close(&self)` that joins them within its
//! configured close timeout (`with_close_timeout`) and may be called again,
//! and closes on drop too.
//!
//! amiquip has no recovery, its `Channel` is `Send` but not `Sync`, and an
//! ack needs the channel that delivered. So each amiquip channel is owned by
//! exactly one of our threads, and publishes, acks and nacks reach it as
//! messages over crossbeam channels. Delivery tags restart on a new channel:
//! an ack for a delivery from before a reconnect is refused with an error
//! (the broker redelivers that message), never sent to another delivery.
//!
//! # Guarantees
//!
//! At least once: a publish that returned `Ok` (or was accepted by
//! [`Publisher::publish_nowait`] and later confirmed) is on the broker in a
//! durable queue; a delivery that was not acked before a connection loss is
//! delivered again. Duplicates are possible after a reconnect (a message
//! confirmed by the broker just as the connection died is sent again), so
//! consumers should be idempotent or dedupe by [`Message::key`].
//!
//! [`ConnectionWaiter`]: crate::ConnectionWaiter
//! [`Message::key`]: crate::Message::key
//! [`Receipt`]: crate::Receipt

mod amqp;
mod connection;
mod consumer;
mod publisher;
mod queue_arguments;
mod rabbit_client;
mod routed;
mod tag_ring;
mod topology;

#[cfg(feature = "tls")]
pub use connection::TlsConfig;
pub use connection::{Connection, ConnectionConfig};
pub use consumer::{Consumer, ConsumerHandle, ConsumerOptions, ConsumerStats, DeliveryInfo};
pub use publisher::{BlockedPolicy, Publisher, PublisherConfig, PublisherStats, Refusal};
pub use queue_arguments::{ArgumentValue, Overflow, QueueArguments, QueueType, StreamOffset};
pub use rabbit_client::{RabbitClient, RabbitClientConfig};
pub use routed::Routed;
pub use topology::{Declaration, ExchangeKind};

// For the `RabbitAdapter` (crate::channel), which runs consumer channel
// owners of its own on a connection's shared state.
pub(crate) use consumer::{ConsumerCounters, Owner};
