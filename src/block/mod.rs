//! The block runtime: a process made of blocks (the design of memphis' Go
//! adapter).
//!
//! A process is a list of blocks, each with a name (its kind) and a
//! responsibility (its instance):
//!
//! - [`Block`]: the trait every block implements: `init`, `run`, `finish`,
//!   and the optional `on_enqueue`, `on_connect`, `on_disconnect`, each
//!   called when implemented.
//! - [`Bag`] and [`Value`]: what blocks send each other, and what a
//!   block's configuration is made of.
//! - [`RuntimeConfig`] and [`BlockConfig`]: which blocks in which order,
//!   serde-readable.
//! - [`Registry`]: block factories by name.
//! - [`init_blocks`] and [`Initialized`]: ordered `init`, unwound in
//!   reverse when one fails; also for tests that need a few blocks and no
//!   threads.
//! - [`Runtime`]: threads per block, ordered close; [`CloseHandle`] asks it
//!   to close from elsewhere.
//! - [`Controller`]: a block's handle on another block (or itself).
//! - [`Dependency`]: what the process depends on, watched by
//!   [`Runtime::monitor`], which drives `on_connect` / `on_disconnect` with
//!   a [`DependencyEvent`]: [`WaiterDependency`], [`TcpDependency`] and
//!   (feature `rabbitmq`) [`RabbitDependency`].
//! - [`SignalBlock`]: SIGINT and SIGTERM to the ordered close.
//! - [`PublisherBlock`]: bags to messages on any [`Sink`](crate::Sink),
//!   answered once the sink has them safe: after the queue's fsync with a
//!   [`QueueSink`](crate::QueueSink), after the broker's confirm with a
//!   [`RabbitSink`](crate::RabbitSink).
//!
//! Each block's `run` has its own thread and its callbacks their own event
//! thread, so a block's callbacks run in order and never overlap. `init`
//! goes in configuration order and `finish` in reverse, each within a
//! deadline; see [`Runtime`] for the full list of guarantees.
//!
//! ```
//! use syncmq::block::{BlockConfig, Registry, Runtime, RuntimeConfig};
//!
//! # fn main() -> syncmq::Result<()> {
//! // The signal block alone: Ctrl-C or SIGTERM would close it in order.
//! let config = RuntimeConfig::new().with_block(BlockConfig::new("finisher"));
//! let runtime = Runtime::start(&config, &Registry::new())?;
//! runtime.close_handle().close_runtime(); // what the signal block does on a signal
//! runtime.run_until_closed()
//! # }
//! ```

mod bag;
mod config;
mod controller;
mod dependency;
mod event;
mod hub;
mod init;
mod init_context;
mod label;
mod lifecycle;
mod monitor;
mod publisher;
#[cfg(feature = "rabbitmq")]
mod rabbit_dependency;
mod registry;
mod runtime;
mod signals;
mod supervised;
mod tcp_dependency;
mod value;
mod waiter_dependency;

pub use bag::Bag;
pub use config::{BlockConfig, RuntimeConfig};
pub use controller::Controller;
pub use dependency::Dependency;
pub use event::DependencyEvent;
pub use init::{init_blocks, Initialized};
pub use init_context::InitContext;
pub use lifecycle::Block;
pub use publisher::{PublisherBlock, BODY, ERROR, ID, OK};
#[cfg(feature = "rabbitmq")]
pub use rabbit_dependency::RabbitDependency;
pub use registry::Registry;
pub use runtime::{CloseHandle, Runtime};
pub use signals::{SignalBlock, SIGNAL_BLOCK};
pub use tcp_dependency::TcpDependency;
pub use value::Value;
pub use waiter_dependency::WaiterDependency;
