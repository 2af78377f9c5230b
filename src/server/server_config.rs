//! [`QueueServerConfig`]: how a [`QueueServer`](super::QueueServer)
//! listens and what it allows each connection, kept apart so that the
//! server and its connections both read it without using each other. A
//! serde struct, so that a file can hold it (milliseconds only at that
//! boundary, `crate::millis`).

#[cfg(feature = "config")]
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::frame::{DEFAULT_MAX_FRAME, MAX_FRAME_LEN};
use crate::error::{Error, Result};

/// How a [`QueueServer`](super::QueueServer) listens and what it allows.
///
/// Built from [`new`](Self::new) (the defaults below) with the `with_*`
/// setters, or read from a file by [`from_path`](Self::from_path) (feature
/// `config`); [`QueueServer::start`](super::QueueServer::start) checks it
/// with [`validate`](Self::validate).
///
/// | field | default | setter |
/// |---|---|---|
/// | `addr` | `"127.0.0.1:0"` | [`with_addr`](Self::with_addr) |
/// | `max_frame` | [`DEFAULT_MAX_FRAME`] | [`with_max_frame`](Self::with_max_frame) |
/// | `max_connections` | 1024 | [`with_max_connections`](Self::with_max_connections) |
/// | `handshake_timeout_ms` | 10000 | [`with_handshake_timeout`](Self::with_handshake_timeout) |
/// | `idle_timeout_ms` | 60000, 0 for none | [`with_idle_timeout`](Self::with_idle_timeout) |
/// | `max_subscriptions` | 64 | [`with_max_subscriptions`](Self::with_max_subscriptions) |
/// | `write_timeout_ms` | 30000 | [`with_write_timeout`](Self::with_write_timeout) |
/// | `close_timeout_ms` | 10000 | [`with_close_timeout`](Self::with_close_timeout) |
///
/// ```
/// use std::time::Duration;
/// use syncmq::server::QueueServerConfig;
///
/// let config = QueueServerConfig::new()
///     .with_addr("127.0.0.1:7450")
///     .with_idle_timeout(Duration::from_secs(30));
/// assert_eq!(config.idle_timeout(), Some(Duration::from_secs(30)));
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueServerConfig {
    addr: String,
    max_frame: usize,
    max_connections: usize,
    #[serde(rename = "handshake_timeout_ms", with = "crate::millis")]
    handshake_timeout: Duration,
    #[serde(rename = "idle_timeout_ms", with = "crate::millis::or_off")]
    idle_timeout: Option<Duration>,
    max_subscriptions: usize,
    #[serde(rename = "write_timeout_ms", with = "crate::millis")]
    write_timeout: Duration,
    #[serde(rename = "close_timeout_ms", with = "crate::millis")]
    close_timeout: Duration,
}

impl Default for QueueServerConfig {
    fn default() -> Self {
        QueueServerConfig {
            addr: "127.0.0.1:0".into(),
            max_frame: DEFAULT_MAX_FRAME,
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(60)),
            max_subscriptions: 64,
            write_timeout: Duration::from_secs(30),
            close_timeout: Duration::from_secs(10),
        }
    }
}

impl QueueServerConfig {
    /// The defaults: see each getter.
    pub fn new() -> Self {
        QueueServerConfig::default()
    }

    /// The address to listen on (`host:port`); `127.0.0.1:0` (any free
    /// port) by default.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The largest frame accepted, in bytes (length prefix excluded);
    /// [`DEFAULT_MAX_FRAME`] by default. A larger
    /// one gets a fatal `frame_too_large` error before it is read.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// The most connections at once; more are refused with a `busy` error
    /// frame. 1024 by default.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// How long a new connection may take to send its hello; 10 s.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// How long a connection may send no frame after the handshake before
    /// it gets an `idle` error frame and is closed; 60 s, `None` for
    /// never. Subscriptions do not count as activity: clients keep idle
    /// connections open with `ping` frames, as
    /// [`QueueClient`](super::QueueClient) does on its own. See
    /// [`protocol`](super::protocol).
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }

    /// The most subscriptions one connection may hold at once (each has a
    /// thread on the server); one more is refused with an
    /// `invalid_argument` error naming `max_subscriptions`. 64 by default.
    pub fn max_subscriptions(&self) -> usize {
        self.max_subscriptions
    }

    /// How long a write to a client may block before the connection is
    /// dropped (a client that stopped reading); 30 s.
    pub fn write_timeout(&self) -> Duration {
        self.write_timeout
    }

    /// How long [`QueueServer::close`](super::QueueServer::close) waits for
    /// the server's threads; 10 s.
    pub fn close_timeout(&self) -> Duration {
        self.close_timeout
    }

    /// Sets the address to listen on (`host:port`).
    #[must_use]
    pub fn with_addr(mut self, addr: impl Into<String>) -> Self {
        self.addr = addr.into();
        self
    }

    /// Sets the largest frame accepted.
    #[must_use]
    pub fn with_max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }

    /// Sets the most connections at once.
    #[must_use]
    pub fn with_max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Sets how long a new connection may take to send its hello.
    #[must_use]
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets the idle timeout after the handshake.
    #[must_use]
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// Connections are never closed for being idle.
    #[must_use]
    pub fn without_idle_timeout(mut self) -> Self {
        self.idle_timeout = None;
        self
    }

    /// Sets the most subscriptions per connection.
    #[must_use]
    pub fn with_max_subscriptions(mut self, n: usize) -> Self {
        self.max_subscriptions = n;
        self
    }

    /// Sets how long a write to a client may block before that
    /// connection is dropped.
    #[must_use]
    pub fn with_write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Sets how long [`close`](super::QueueServer::close) waits for the
    /// server's threads.
    #[must_use]
    pub fn with_close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Reads a config file and [validates](Self::validate) it, as
    /// [`QueueConfig::from_path`](crate::queue::QueueConfig::from_path)
    /// does: JSON, TOML or YAML by the extension, the fields of the table
    /// above, every one optional; an unknown field is an error naming it.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("server.toml");
    /// # std::fs::write(&path, "addr = \"127.0.0.1:7450\"\nidle_timeout_ms = 0\n")?;
    /// use syncmq::server::QueueServerConfig;
    ///
    /// let config = QueueServerConfig::from_path(&path)?; // server.toml
    /// assert_eq!(config.addr(), "127.0.0.1:7450");
    /// assert_eq!(config.idle_timeout(), None);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`QueueConfig::from_path`](crate::queue::QueueConfig::from_path),
    /// with the settings [`validate`](Self::validate) names.
    #[cfg(feature = "config")]
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self> {
        let config: Self = crate::config_file::load(path.as_ref())?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every setting; [`QueueServer::start`](super::QueueServer::start)
    /// calls it too.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the setting: a frame limit below
    /// 1024 bytes or above 4 GiB, zero connections or subscriptions, a
    /// handshake, idle or write timeout below 1 ms.
    pub fn validate(&self) -> Result<()> {
        if self.max_frame < 1024 || self.max_frame > MAX_FRAME_LEN {
            return Err(Error::invalid(
                "max_frame",
                format!("must be between 1024 and {MAX_FRAME_LEN} bytes"),
            ));
        }
        if self.max_connections == 0 {
            return Err(Error::invalid("max_connections", "must be at least 1"));
        }
        if self.max_subscriptions == 0 {
            return Err(Error::invalid("max_subscriptions", "must be at least 1"));
        }
        // Each is a socket timeout: zero is an error to the OS (and the
        // server would carry on without any), and would close every
        // connection at once anyway.
        let at_least_1_ms = |t: Duration| t >= Duration::from_millis(1);
        if !at_least_1_ms(self.handshake_timeout) {
            return Err(Error::invalid("handshake_timeout", "must be at least 1 ms"));
        }
        if !self.idle_timeout.is_none_or(at_least_1_ms) {
            return Err(Error::invalid(
                "idle_timeout",
                "must be at least 1 ms; without_idle_timeout() for none",
            ));
        }
        if !at_least_1_ms(self.write_timeout) {
            return Err(Error::invalid("write_timeout", "must be at least 1 ms"));
        }
        Ok(())
    }
}
