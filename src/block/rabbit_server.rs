//! [`RabbitServer`]: the block runtime's [`Server`] over the RabbitMQ
//! connection supervisor ([`crate::rabbitmq::Connection`]).
//!
//! The supervisor does all the connecting: it dials in the background,
//! reconnects with backoff after every loss, and raises its
//! [`ConnectionWaiter`](crate::ConnectionWaiter)'s generation on each new
//! connection. This server only reports what the supervisor knows:
//!
//! - `connect` starts the supervisor the first time (when built with
//!   [`RabbitServer::new`]), then returns the live connection's generation
//!   or [`Error::Disconnected`] while it is down;
//! - `connection` and `is_connected` read the waiter, and the epoch is the
//!   waiter's generation, so a loss and a reconnect between two heartbeats
//!   is still seen as a disconnect and a connect;
//! - `wait_connected` blocks on the waiter, so the monitor hears of a
//!   reconnect the moment it happens;
//! - `configuration` is the URL *without its password* and the connection
//!   name (safe to log).
//!
//! ```no_run
//! use syncmq::block::{RabbitServer, Runtime, RuntimeConfig, BlockConfig, Registry};
//! use std::time::Duration;
//!
//! # fn main() -> syncmq::Result<()> {
//! let config = RuntimeConfig::new().with_block(BlockConfig::new("finisher"));
//! let mut runtime = Runtime::start(&config, &Registry::new())?;
//! let server = RabbitServer::new("amqp://guest:guest@127.0.0.1:5672/%2f")
//!     .with_name("satellite")
//!     .configure(|c| c.with_heartbeat(Duration::from_secs(5)))
//!     .start()?;
//! runtime.monitor(server)?; // every block with on_connect/on_disconnect hears of it
//! runtime.run_until_shutdown()
//! # }
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::block::bag::Value;
use crate::block::server::{Server, WaiterServer};
use crate::error::{Error, Result};
use crate::rabbitmq::{Connection, ConnectionConfig};

/// A [`Server`] that follows a RabbitMQ [`Connection`] supervisor. See the
/// [module docs](self).
pub struct RabbitServer {
    name: String,
    url: String,
    /// Set until the supervisor is started (lazy servers only).
    pending: Mutex<Option<ConnectionConfig>>,
    started: Mutex<Option<Started>>,
}

#[derive(Clone)]
struct Started {
    connection: Arc<Connection>,
    waiter: WaiterServer,
}

impl std::fmt::Debug for RabbitServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitServer")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl RabbitServer {
    /// A server on `url` with the default [`ConnectionConfig`]; its
    /// supervisor is started by the first [`connect`](Server::connect)
    /// (the monitor's first heartbeat), [`supervisor`](Self::supervisor)
    /// or [`start`](Self::start).
    pub fn new(url: &str) -> Self {
        let config = ConnectionConfig::new(url);
        RabbitServer {
            name: config.name().to_string(),
            url: without_password(url),
            pending: Mutex::new(Some(config)),
            started: Mutex::new(None),
        }
    }

    /// Names the connection (see [`ConnectionConfig::with_name`]): the
    /// server's name too.
    #[must_use]
    pub fn with_name(self, name: impl Into<String>) -> Self {
        self.configure(|c| c.with_name(name))
    }

    /// Changes anything else of the connection's configuration, before it
    /// starts: `server.configure(|c| c.with_heartbeat(Duration::from_secs(5)))`.
    #[must_use]
    pub fn configure(mut self, f: impl FnOnce(ConnectionConfig) -> ConnectionConfig) -> Self {
        let pending = self
            .pending
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(config) = pending.take() {
            let config = f(config);
            self.name = config.name().to_string();
            *pending = Some(config);
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

    /// A server that follows a supervisor someone else started (and
    /// closes); `url` is only reported.
    pub fn on(url: &str, connection: Arc<Connection>) -> Self {
        RabbitServer {
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
            .ok_or_else(|| Error::closed(format!("RabbitMQ server `{}`", self.name)))?;
        let s = Started::of(Arc::new(Connection::with_config(config)?));
        *started = Some(s.clone());
        Ok(s)
    }

    /// The waiter view, once the supervisor runs.
    fn waiter(&self) -> Option<WaiterServer> {
        lock(&self.started).as_ref().map(|s| s.waiter.clone())
    }
}

impl Started {
    fn of(connection: Arc<Connection>) -> Self {
        Started {
            waiter: WaiterServer::new(connection.name(), connection.waiter()),
            connection,
        }
    }
}

impl Server for RabbitServer {
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
    fn connect(&self) -> Result<u64> {
        let started = self.started()?;
        if started.connection.waiter().is_closed() {
            return Err(Error::closed(format!("RabbitMQ server `{}`", self.name)));
        }
        started.waiter.connect()
    }

    fn connection(&self) -> Option<u64> {
        self.waiter()?.connection()
    }

    fn wait_connected(&self, timeout: Duration) -> Result<u64> {
        match self.waiter() {
            Some(waiter) => waiter.wait_connected(timeout),
            // Nothing to wait on before `connect` starts the supervisor.
            None => Err(Error::timeout(
                format!(
                    "RabbitMQ server `{}` to connect (its supervisor is not started)",
                    self.name
                ),
                Duration::ZERO,
            )),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `url` with the password of its user info removed:
/// `amqp://guest:secret@host/vh` becomes `amqp://guest@host/vh`.
pub(crate) fn without_password(url: &str) -> String {
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
    fn a_lazy_server_starts_its_supervisor_on_connect() {
        // Nothing listens on port 1: the supervisor keeps trying.
        let server = RabbitServer::new("amqp://guest:guest@127.0.0.1:1/%2f")
            .with_name("lazy")
            .configure(|c| c.with_connect_timeout(Duration::from_millis(100)));
        assert_eq!(server.name(), "lazy");
        assert_eq!(server.connection(), None);
        assert!(server.waiter().is_none(), "not started yet");
        assert!(matches!(server.connect(), Err(Error::Disconnected { .. })));
        assert!(server.waiter().is_some(), "started by connect");
        // A connect that does not come in time is an error, after the
        // full timeout.
        let timeout = Duration::from_millis(50);
        let started = std::time::Instant::now();
        assert!(matches!(
            server.wait_connected(timeout),
            Err(Error::Timeout { after, .. }) if after == timeout
        ));
        assert!(started.elapsed() >= timeout, "returned before the timeout");
        assert_eq!(
            server.configuration().get("url").and_then(Value::as_str),
            Some("amqp://guest@127.0.0.1:1/%2f")
        );
        server.close().unwrap();
        assert!(matches!(server.connect(), Err(Error::Closed(_))));
    }

    #[test]
    fn a_bad_url_is_refused_when_opened() {
        assert!(matches!(
            RabbitServer::new("http://nope").start(),
            Err(Error::InvalidArgument { .. })
        ));
    }
}
