//! The block runtime: a process made of blocks (the design of
//! Memphis' Go adapter).
//!
//! A process is a list of blocks, each with a name (its kind) and a
//! responsibility (its instance). The pieces, one file each:
//!
//! 1. [`lifecycle`]: the [`Block`] trait: `init`, `run`, `finish`, and the
//!    optional `on_enqueue`, `on_connect`, `on_disconnect`.
//! 2. [`bag`]: [`Bag`], what blocks send each other, and [`Value`].
//! 3. [`config`]: [`RuntimeConfig`] and [`BlockConfig`], serde-readable.
//! 4. [`registry`]: [`Registry`], block factories by name.
//! 5. [`init`]: ordered `init`, unwound in reverse when one fails.
//! 6. [`controller`]: [`Controller`], a block's handle on another block.
//! 7. [`runtime`]: [`Runtime`]: threads per block, ordered shutdown.
//! 8. [`server`]: the [`Server`] trait, [`WaiterServer`], [`TcpServer`] and
//!    the monitor that drives `on_connect` / `on_disconnect`.
//! 9. [`signals`]: [`SignalBlock`], SIGINT and SIGTERM to ordered shutdown.
//! 10. [`publisher`]: [`PublisherBlock`], bags to durable publishes.
//! 11. [`rabbit_server`] (feature `rabbitmq`): [`RabbitServer`], the
//!     [`Server`] over the RabbitMQ connection supervisor.
//! 12. [`sinks`]: [`Publish`] implementations that return only once the
//!     message is durable: [`QueuePublisher`] (feature `durable`, after the
//!     queue's fsync) and [`RabbitPublisher`] (feature `rabbitmq`, after
//!     the broker's confirm).
//!
//! Each block's `run` has its own thread and its callbacks their own event
//! thread, so a block's callbacks run in order and never overlap. `init`
//! goes in configuration order and `finish` in reverse, each within a
//! deadline; see [`runtime`] for the full list of guarantees.
//!
//! ```
//! use syncmq::block::{BlockConfig, Registry, Runtime, RuntimeConfig};
//!
//! # fn main() -> syncmq::Result<()> {
//! // The signal block alone: Ctrl-C or SIGTERM would end it in order.
//! let config = RuntimeConfig::new().with_block(BlockConfig::new("finisher"));
//! let runtime = Runtime::start(&config, &Registry::new())?;
//! runtime.handle().shutdown(); // what the signal block does on a signal
//! runtime.run_until_shutdown()
//! # }
//! ```

pub mod bag;
pub mod config;
pub mod controller;
mod hub;
pub mod init;
pub mod lifecycle;
pub mod publisher;
#[cfg(feature = "rabbitmq")]
pub mod rabbit_server;
pub mod registry;
pub mod runtime;
pub mod server;
pub mod signals;
pub mod sinks;
mod supervised;

pub use bag::{Bag, Value};
pub use config::{BlockConfig, RuntimeConfig};
pub use controller::Controller;
pub use init::{init_blocks, Initialized};
pub use lifecycle::{Block, Callbacks};
pub use publisher::{AdapterPublisher, Publish, PublisherBlock};
#[cfg(feature = "rabbitmq")]
pub use rabbit_server::RabbitServer;
pub use registry::Registry;
pub use runtime::{Runtime, ShutdownHandle};
pub use server::{Server, ServerEvent, TcpServer, WaiterServer};
pub use signals::{SignalBlock, SIGNAL_BLOCK};
#[cfg(feature = "durable")]
pub use sinks::QueuePublisher;
#[cfg(feature = "rabbitmq")]
pub use sinks::RabbitPublisher;
