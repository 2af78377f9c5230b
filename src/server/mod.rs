//! The queue server (ppmq's `Listener`): the durable [`Queue`](crate::queue::Queue)
//! served over TCP, TLS or a Unix domain socket, a thread per connection
//! ([`QueueServer`]), and the blocking [`QueueClient`] that speaks to it.
//! Whom it lets in: a shared token in the handshake
//! ([`QueueServerConfig::with_token`]), a Unix socket's file mode
//! ([`QueueServerConfig::with_unix_socket`]), TLS with the server's
//! certificate (feature `tls`, `QueueServerConfig::with_tls_identity_pem`).
//!
//! The wire protocol ([`protocol`]) is length-prefixed `MessagePack` frames
//! with a version handshake: publish (a batch, answered once durable),
//! subscribe (deliveries pushed in queue order, at most `batch`
//! unacknowledged), ack, nack, reset (ppmq's reconnect), stats and dead
//! letters. The README's "Queue server" section documents every frame.
//!
//! # Guarantees
//!
//! - A publish the server answered `published` is durable (fsynced with the
//!   default [`Durability`](crate::queue::Durability));
//!   [`QueueClient::publish`] returns `Ok` only then.
//! - A frame over [`QueueServerConfig::max_frame`], or one that does not
//!   decode, gets an error frame and that connection is closed; the server
//!   keeps serving every other connection and nothing acknowledged is lost.
//! - Memory per connection is bounded: a frame's buffer grows with the
//!   bytes that arrive (an announced length allocates nothing), a
//!   connection idle for [`QueueServerConfig::idle_timeout`] is closed, and
//!   at most [`QueueServerConfig::max_subscriptions`] subscriptions
//!   (threads) are allowed per connection.
//! - A subscriber that disconnects (or is killed) has its unacknowledged
//!   deliveries redelivered, to the next consumer of that subscriber.
//! - The server owns its threads; [`QueueServer::close`] or drop stops and
//!   joins them within [`QueueServerConfig::close_timeout`]. It does not
//!   close the queue, which belongs to the caller.
//!
//! ```
//! use std::sync::Arc;
//! use syncmq::queue::{Queue, QueueConfig, TopicConfig};
//! use syncmq::server::{QueueClient, QueueServer, QueueServerConfig};
//! use syncmq::Message;
//!
//! # fn main() -> syncmq::Result<()> {
//! let queue = Arc::new(Queue::memory(
//!     QueueConfig::new().with_topic(TopicConfig::new("orders", ["billing"])),
//! )?);
//! let server = QueueServer::start(queue, QueueServerConfig::new())?;
//! let client = QueueClient::connect(server.local_addr())?;
//! client.publish("orders", &[Message::new(b"order 1".to_vec())])?;
//! let mut billing = client.subscribe("orders", "billing")?;
//! let delivery = billing.recv()?;
//! assert_eq!(delivery.body(), b"order 1");
//! delivery.ack()?;
//! # Ok(())
//! # }
//! ```

// The one public submodule: the wire protocol is a specification for
// implementers in other languages (and for tests that speak raw frames),
// so its frame types keep their own namespace, with its docs as the spec,
// instead of generic names such as `Request` next to the client.
pub mod protocol;

#[cfg(feature = "tls")]
mod bridge;
mod client_config;
mod client_connection;
mod feed;
mod frame;
mod held_acks;
mod listener;
mod queue_client;
mod queue_server;
mod remote_subscriber;
mod secret;
mod server_addr;
mod server_config;
mod server_connection;
mod server_stats;
mod socket;
mod tls;

pub use client_config::{QueueClientConfig, DEFAULT_REQUEST_TIMEOUT};
pub use frame::DEFAULT_MAX_FRAME;
pub use queue_client::QueueClient;
pub use queue_server::QueueServer;
pub use remote_subscriber::RemoteSubscriber;
pub use server_addr::ServerAddr;
pub use server_config::{QueueServerConfig, DEFAULT_UNIX_SOCKET_MODE};
pub use server_stats::QueueServerStats;
