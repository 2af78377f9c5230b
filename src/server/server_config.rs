//! [`QueueServerConfig`]: how a [`QueueServer`](super::QueueServer)
//! listens and what it allows each connection, kept apart so that the
//! server and its connections both read it without using each other.

use std::time::Duration;

use super::frame::{DEFAULT_MAX_FRAME, MAX_FRAME_LEN};
use crate::error::{Error, Result};

/// How a [`QueueServer`](super::QueueServer) listens and what it allows.
///
/// Built from [`new`](Self::new) (the defaults below) with the `with_*`
/// setters; [`QueueServer::start`](super::QueueServer::start) checks it
/// with [`validate`](Self::validate).
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueServerConfig {
    addr: String,
    max_frame: usize,
    max_connections: usize,
    handshake_timeout: Duration,
    idle_timeout: Option<Duration>,
    max_subscriptions: usize,
    write_timeout: Duration,
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
