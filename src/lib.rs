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
//! 4. [`channel`]: named channels behind the [`Adapter`] trait, starting with
//!    the in-process [`SimpleAdapter`] and, with feature `rabbitmq`, the
//!    [`RabbitAdapter`].
//! 5. `rabbitmq` (feature `rabbitmq`): the supervised connection, the
//!    confirmed publisher with its retry buffer, consumers with prefetch and
//!    dead-letter queues, and the gormq-style `Client`.
//!
//! ```
//! use syncmq::{Adapter, ChannelSpec, Mode, SimpleAdapter};
//!
//! # fn main() -> syncmq::Result<()> {
//! let adapter = SimpleAdapter::new();
//! adapter.new_channel(ChannelSpec::new("events", Mode::Both))?;
//! adapter.input("events")?.send(b"started".to_vec()).unwrap();
//! let delivery = adapter.output("events")?.recv().unwrap();
//! assert_eq!(delivery.body(), b"started");
//! delivery.ack()?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod channel;
pub mod error;
pub mod message;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;
pub mod waiter;

mod thread;

#[cfg(feature = "rabbitmq")]
pub use channel::RabbitAdapter;
pub use channel::{Adapter, ChannelSpec, Mode, SimpleAdapter};

pub use error::{Error, Result};
pub use message::{Acker, Delivery, Message};
pub use waiter::{ConnectionWaiter, Generation};
