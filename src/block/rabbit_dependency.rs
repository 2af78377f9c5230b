//! [`RabbitDependency`]: the block runtime's [`Dependency`] over the
//! RabbitMQ connection supervisor ([`crate::rabbitmq::Connection`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::block::dependency::Dependency;
use crate::block::value::Value;
use crate::block::waiter_dependency::WaiterDependency;
use crate::error::{Error, Result};
use crate::rabbitmq::{Connection, ConnectionConfig};
use crate::thread::lock;
use crate::waiter::Generation;

/// A [`Dependency`] that follows a RabbitMQ [`Connection`] supervisor.
///
/// The supervisor does all the connecting: it dials in the background,
/// reconnects with backoff after every loss, and raises its
/// [`ConnectionWaiter`](crate::ConnectionWaiter)'s [`Generation`] on each
/// new connection. This dependency only reports what the supervisor knows:
///
/// - `connect` starts the supervisor the first time (when built with
///   [`RabbitDependency::new`]), then returns the live connection's
///   generation or [`Error::Disconnected`] while it is down;
/// - `connection` and `is_connected` read the waiter, so a loss and a
///   reconnect between two heartbeats is still seen as a disconnect and a
///   connect;
/// - `wait_connected` blocks on the waiter, so the monitor hears of a
///   reconnect the moment it happens;
/// - `configuration` is the URL *without its password* and the connection
///   name (safe to log).
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
/// use syncmq::block::{BlockConfig, RabbitDependency, Registry, Runtime, RuntimeConfig};
///
/// # fn main() -> syncmq::Result<()> {
/// let config = RuntimeConfig::new().with_block(BlockConfig::new("finisher"));
/// let runtime = Runtime::start(&config, &Registry::new())?;
/// let broker = RabbitDependency::new("amqp://guest:guest@127.0.0.1:5672/%2f")
///     .with_name("satellite")
///     .configure(|c| c.with_heartbeat(Duration::from_secs(5)))
///     .start()?;
/// runtime.monitor(Arc::new(broker))?; // every block with on_connect/on_disconnect hears of it
/// runtime.run_until_closed()
/// # }
/// ```
pub struct RabbitDependency {
    name: String,
    url: String,
    /// Set until the supervisor is started (lazy dependencies only).
    pending: Mutex<Option<ConnectionConfig>>,
    started: Mutex<Option<Started>>,
}

#[derive(Clone)]
struct Started {
    connection: Arc<Connection>,
    waiter: WaiterDependency,
}

impl std::fmt::Debug for RabbitDependency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitDependency")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl RabbitDependency {
    /// A dependency on `url` with the default [`ConnectionConfig`]; its
    /// supervisor is started by the first [`connect`](Dependency::connect)
    /// (the monitor's first heartbeat), [`supervisor`](Self::supervisor)
    /// or [`start`](Self::start).
    pub fn new(url: &str) -> Self {
        let config = ConnectionConfig::new(url);
        RabbitDependency {
            name: config.name().to_string(),
            url: without_password(url),
            pending: Mutex::new(Some(config)),
            started: Mutex::new(None),
        }
    }

    /// Names the connection (see [`ConnectionConfig::with_name`]): the
    /// dependency's name too.
    #[must_use]
    pub fn with_name(self, name: impl Into<String>) -> Self {
        self.configure(|c| c.with_name(name))
    }

    /// Changes anything else of the connection's configuration, before it
    /// starts: `broker.configure(|c| c.with_heartbeat(Duration::from_secs(5)))`.
    #[must_use]
    pub fn configure(mut self, f: impl FnOnce(ConnectionConfig) -> ConnectionConfig) -> Self {
        let pending = lock(&self.pending).take();
        if let Some(config) = pending {
            let config = f(config);
            self.name = config.name().to_string();
            *lock(&self.pending) = Some(config);
        }
        self
    }

    /// Starts the supervisor now.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a malformed URL or setting.
    pub fn start(self) -> Result<Self> {
        self.supervisor()?;
        Ok(self)
    }

    /// A dependency that follows a supervisor someone else started (and
    /// closes); `url` is only reported.
    pub fn on(url: &str, connection: Arc<Connection>) -> Self {
        RabbitDependency {
            name: connection.name().to_string(),
            url: without_password(url),
            pending: Mutex::new(None),
            started: Mutex::new(Some(Started::of(connection))),
        }
    }

    /// The supervised connection, started if it was not yet: make
    /// publishers and consumers on it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a malformed URL or setting (the
    /// first time).
    pub fn supervisor(&self) -> Result<Arc<Connection>> {
        self.started().map(|s| s.connection)
    }

    /// Closes the supervised connection (see [`Connection::close`]).
    /// Blocks then see a disconnect and `connect` fails with
    /// [`Error::Closed`].
    ///
    /// # Errors
    ///
    /// As [`Connection::close`].
    pub fn close(&self) -> Result<()> {
        lock(&self.pending).take();
        let started = lock(&self.started).clone();
        match started {
            Some(s) => s.connection.close(),
            None => Ok(()),
        }
    }

    fn started(&self) -> Result<Started> {
        let mut started = lock(&self.started);
        if let Some(s) = started.as_ref() {
            return Ok(s.clone());
        }
        let config = lock(&self.pending)
            .take()
            .ok_or_else(|| Error::closed(format!("RabbitMQ connection `{}`", self.name)))?;
        let s = Started::of(Arc::new(Connection::with_config(config)?));
        *started = Some(s.clone());
        Ok(s)
    }

    /// The waiter view, once the supervisor runs.
    fn waiter(&self) -> Option<WaiterDependency> {
        lock(&self.started).as_ref().map(|s| s.waiter.clone())
    }
}

impl Started {
    fn of(connection: Arc<Connection>) -> Self {
        Started {
            waiter: WaiterDependency::new(connection.name(), connection.waiter()),
            connection,
        }
    }
}

impl Dependency for RabbitDependency {
    fn name(&self) -> &str {
        &self.name
    }

    /// `{url, name}`, the URL without its password.
    fn configuration(&self) -> Value {
        let mut map = BTreeMap::new();
        map.insert("url".to_string(), Value::Str(self.url.clone()));
        map.insert("name".to_string(), Value::Str(self.name.clone()));
        Value::Map(map)
    }

    /// Starts the supervisor if needed; the live generation, or
    /// [`Error::Disconnected`] while it reconnects.
    fn connect(&self) -> Result<Generation> {
        let started = self.started()?;
        if started.connection.waiter().is_closed() {
            return Err(Error::closed(format!(
                "RabbitMQ connection `{}`",
                self.name
            )));
        }
        started.waiter.connect()
    }

    fn connection(&self) -> Option<Generation> {
        self.waiter()?.connection()
    }

    fn wait_connected(&self, timeout: Duration) -> Result<Generation> {
        match self.waiter() {
            Some(waiter) => waiter.wait_connected(timeout),
            // Nothing to wait on before `connect` starts the supervisor.
            None => Err(Error::timeout(
                format!(
                    "RabbitMQ connection `{}` to connect (its supervisor is not started)",
                    self.name
                ),
                Duration::ZERO,
            )),
        }
    }
}

/// `url` with the password of its user info removed:
/// `amqp://guest:secret@host/vh` becomes `amqp://guest@host/vh`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_string();
    };
    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
    format!("{scheme}://{user}@{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_shows() {
        for (url, shown) in [
            (
                "amqp://guest:guest@127.0.0.1:5672/%2f",
                "amqp://guest@127.0.0.1:5672/%2f",
            ),
            ("amqps://u:p@ss:w@host", "amqps://u@host"),
            ("amqp://user@host/v", "amqp://user@host/v"),
            ("amqp://host:5672/v?x=a@b", "amqp://host:5672/v?x=a@b"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(without_password(url), shown, "{url}");
        }
    }

    #[test]
    fn a_lazy_dependency_starts_its_supervisor_on_connect() {
        // Nothing listens on port 1: the supervisor keeps trying.
        let broker = RabbitDependency::new("amqp://guest:guest@127.0.0.1:1/%2f")
            .with_name("lazy")
            .configure(|c| c.with_connect_timeout(Duration::from_millis(100)));
        assert_eq!(broker.name(), "lazy");
        assert_eq!(broker.connection(), None);
        assert!(broker.waiter().is_none(), "not started yet");
        assert!(matches!(broker.connect(), Err(Error::Disconnected { .. })));
        assert!(broker.waiter().is_some(), "started by connect");
        // A connect that does not come in time is an error, after the
        // full timeout.
        let timeout = Duration::from_millis(50);
        let started = std::time::Instant::now();
        assert!(matches!(
            broker.wait_connected(timeout),
            Err(Error::Timeout { after, .. }) if after == timeout
        ));
        assert!(started.elapsed() >= timeout, "returned before the timeout");
        assert_eq!(
            broker.configuration().get("url").and_then(Value::as_str),
            Some("amqp://guest@127.0.0.1:1/%2f")
        );
        broker.close().unwrap();
        assert!(matches!(broker.connect(), Err(Error::Closed(_))));
    }

    #[test]
    fn a_bad_url_is_refused_when_opened() {
        assert!(matches!(
            RabbitDependency::new("http://nope").start(),
            Err(Error::InvalidArgument { .. })
        ));
    }
}
