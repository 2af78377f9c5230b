//! The [`Dependency`] trait: what a process depends on (a broker, a
//! server), as the monitor sees it.

use std::any::Any;
use std::time::Duration;

use crate::block::value::Value;
use crate::error::{Error, Result};
use crate::waiter::Generation;

/// What a process depends on: a broker, a server (the memphis Go adapter's
/// `Server` and `Configurator`).
///
/// [`Runtime::monitor`](crate::block::Runtime::monitor) watches one and
/// tells every block when it comes and goes. The Go adapter's interface is
/// configuration, connect and is-connected; this one adds a
/// [`Generation`], raised on every new connection, so that a disconnect and
/// reconnect between two heartbeats is still seen. Three implementations
/// come with the runtime:
///
/// 1. [`WaiterDependency`](crate::block::WaiterDependency): any
///    [`ConnectionWaiter`](crate::ConnectionWaiter), such as the one the
///    RabbitMQ connection supervisor keeps. A connect wakes the monitor at
///    once, and `connect` never dials (the supervisor does that).
/// 2. [`TcpDependency`](crate::block::TcpDependency): a plain TCP
///    endpoint. `connect` dials; the heartbeat checks that the connection
///    is still open.
/// 3. [`RabbitDependency`](crate::block::RabbitDependency) (feature
///    `rabbitmq`): the RabbitMQ connection supervisor itself.
///
/// A dependency is `Any`, so a callback gets it back with its own type
/// from [`DependencyEvent::dependency_as`](crate::block::DependencyEvent::dependency_as):
/// the Go adapter's `sc.(*Conn)` type assertion on the server connection.
pub trait Dependency: Any + Send + Sync {
    /// A name for logs and callbacks.
    fn name(&self) -> &str;

    /// The dependency's configuration, as the process sees it; `Null` by
    /// default.
    fn configuration(&self) -> Value {
        Value::Null
    }

    /// Connects, or returns the live connection's generation when already
    /// connected. Generations grow with every new connection.
    ///
    /// # Errors
    ///
    /// Why there is no connection (typically [`Error::Disconnected`]).
    fn connect(&self) -> Result<Generation>;

    /// The live connection's generation, or `None` when there is none
    /// (never connected, or the connection broke).
    fn connection(&self) -> Option<Generation>;

    /// True while connected and the connection is alive.
    fn is_connected(&self) -> bool {
        self.connection().is_some()
    }

    /// Blocks up to `timeout` for a connection and returns its generation.
    /// The default answers from [`connection`](Self::connection) at once; a
    /// dependency that can be woken (a
    /// [`WaiterDependency`](crate::block::WaiterDependency)) overrides it,
    /// so the monitor sees a connect the moment it happens.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when no connection came within `timeout` (a
    /// connect is an action that must complete: see the crate docs on
    /// timeouts); the default, which cannot wait, says so at once with
    /// `after` zero. A dependency may also return why it will not connect
    /// (a `WaiterDependency` passes on its waiter's [`Error::Closed`] or
    /// failure).
    fn wait_connected(&self, timeout: Duration) -> Result<Generation> {
        let _ = timeout;
        self.connection().ok_or_else(|| {
            Error::timeout(
                format!("`{}` to connect (it cannot be waited on)", self.name()),
                Duration::ZERO,
            )
        })
    }
}
