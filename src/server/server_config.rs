//! [`QueueServerConfig`]: how a [`QueueServer`](super::QueueServer)
//! listens, whom it lets in (a token, a Unix socket's mode, TLS) and what
//! it allows each connection, kept apart so that the server and its
//! connections both read it without using each other. A serde struct, so
//! that a file can hold it (milliseconds only at that boundary,
//! `crate::millis`; never the token or the TLS key).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::frame::{DEFAULT_MAX_FRAME, MAX_FRAME_LEN};
use super::secret::Secret;
use crate::error::{Error, Result};

/// The mode a Unix socket is made with unless configured otherwise: its
/// owner alone may connect.
pub const DEFAULT_UNIX_SOCKET_MODE: u32 = 0o600;

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
/// | `unix_socket` | none (TCP) | [`with_unix_socket`](Self::with_unix_socket) |
/// | `unix_socket_mode` | `0o600` (384) | [`with_unix_socket_mode`](Self::with_unix_socket_mode) |
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
///
/// `Debug` never shows the token or the TLS key, and a config file never
/// holds them: they are set in code ([`with_token`](Self::with_token),
/// [`with_tls_identity_pem`](Self::with_tls_identity_pem)) or by the CLI's
/// flags (`--token-file`, `--tls-cert`, `--tls-key`), so that a file that is
/// read by many or checked in leaks no secret. `token` in a file is an
/// unknown field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueServerConfig {
    addr: String,
    unix_socket: Option<PathBuf>,
    unix_socket_mode: u32,
    #[serde(skip)]
    token: Option<Secret>,
    /// The certificate chain's PEM and the key's.
    #[serde(skip)]
    tls_identity: Option<(Vec<u8>, Secret)>,
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
            unix_socket: None,
            unix_socket_mode: DEFAULT_UNIX_SOCKET_MODE,
            token: None,
            tls_identity: None,
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
    /// port) by default. Not used when a [Unix socket](Self::unix_socket)
    /// is set.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The path of the Unix domain socket to listen on instead of TCP;
    /// `None` (TCP) by default.
    pub fn unix_socket(&self) -> Option<&Path> {
        self.unix_socket.as_deref()
    }

    /// The file mode the Unix socket is made with (who may connect);
    /// [`DEFAULT_UNIX_SOCKET_MODE`] (`0o600`, the owner alone) by default.
    pub fn unix_socket_mode(&self) -> u32 {
        self.unix_socket_mode
    }

    /// Whether clients must give a token in their hello
    /// ([`with_token`](Self::with_token)).
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Whether a client's token is the server's: false when the server
    /// has none (any token, or none, is then accepted; see
    /// [`has_token`](Self::has_token)). Compared in constant time.
    pub(super) fn token_matches(&self, given: &str) -> bool {
        self.token
            .as_ref()
            .is_some_and(|t| t.matches(given.as_bytes()))
    }

    /// Whether the TCP listener speaks TLS
    /// (`with_tls_identity_pem`, feature `tls`).
    pub fn has_tls(&self) -> bool {
        self.tls_identity.is_some()
    }

    /// The TLS certificate chain's PEM and the key's, when set.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(super) fn tls_identity(&self) -> Option<(&[u8], &Secret)> {
        self.tls_identity
            .as_ref()
            .map(|(cert, key)| (&cert[..], key))
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

    /// Listens on a Unix domain socket at `path` instead of TCP (ppmq's
    /// `ServerSocket`). The socket is made with the
    /// [mode](Self::with_unix_socket_mode) already set; a socket file left
    /// by a server that died is replaced, one a live server answers on is
    /// an error naming the path, and so is a path that is not a socket.
    /// The file is removed when the server closes.
    #[must_use]
    pub fn with_unix_socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.unix_socket = Some(path.into());
        self
    }

    /// Sets the Unix socket's file mode: `0o660` lets the owner's group
    /// connect too. The owner must keep read and write.
    #[must_use]
    pub fn with_unix_socket_mode(mut self, mode: u32) -> Self {
        self.unix_socket_mode = mode;
        self
    }

    /// Requires every client to give `token` in its hello
    /// ([`QueueClientConfig::with_token`](super::QueueClientConfig::with_token)).
    /// A client without it, or with another, gets one `unauthorized`
    /// error frame and is closed before any request is read; the server
    /// logs a warning with the client's address, never the token. The
    /// comparison takes the same time wherever the tokens differ.
    ///
    /// Over plain TCP the token travels in the clear: use it with TLS or
    /// on a trusted network.
    #[must_use]
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(Secret::new(token.into()));
        self
    }

    /// Speaks TLS on the TCP listener with this identity (feature `tls`):
    /// `cert_pem` the certificate (and any intermediates), `key_pem` its
    /// private key in PKCS#8 PEM (`BEGIN PRIVATE KEY`; `openssl pkcs8
    /// -topk8 -nocrypt` converts an older key). Checked by
    /// [`validate`](Self::validate).
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    #[must_use]
    pub fn with_tls_identity_pem(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls_identity = Some((cert_pem.into(), Secret::new(key_pem)));
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
    /// handshake, idle or write timeout below 1 ms, an empty token or
    /// socket path, a socket mode that is not a permission mode or takes
    /// read and write from the owner, TLS with a Unix socket, a TLS
    /// identity that does not load.
    pub fn validate(&self) -> Result<()> {
        if self.token.as_ref().is_some_and(Secret::is_empty) {
            return Err(Error::invalid("token", "must not be empty"));
        }
        if self
            .unix_socket
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err(Error::invalid("unix_socket", "must be a path"));
        }
        // The server connects to its own socket to wake its accept on
        // close, so the owner keeps read and write.
        if self.unix_socket_mode & !0o777 != 0 || self.unix_socket_mode & 0o600 != 0o600 {
            return Err(Error::invalid(
                "unix_socket_mode",
                format!(
                    "{:#o} must be a permission mode (0o777 at most) that gives the owner read and write (0o600)",
                    self.unix_socket_mode
                ),
            ));
        }
        if self.unix_socket.is_some() && self.tls_identity.is_some() {
            return Err(Error::invalid(
                "tls",
                "TLS is for the TCP listener; a Unix socket is guarded by its file mode",
            ));
        }
        super::tls::acceptor(self)?;
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
