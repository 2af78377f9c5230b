//! [`QueueClientConfig`]: how a [`QueueClient`](super::QueueClient)
//! connects (with a token, over TLS), waits and closes.

use std::time::Duration;

use super::secret::Secret;
use crate::error::{Error, Result};

/// How long a request waits for its reply unless configured otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How a [`QueueClient`](super::QueueClient) connects.
///
/// Built from [`new`](Self::new) (the defaults below) with the `with_*`
/// setters; [`QueueClient::connect_with`](super::QueueClient::connect_with)
/// checks it with [`validate`](Self::validate).
///
/// ```
/// use std::time::Duration;
/// use syncmq::server::QueueClientConfig;
///
/// let config = QueueClientConfig::new()
///     .with_request_timeout(Duration::from_secs(5))
///     .with_batch(10);
/// assert_eq!(config.request_timeout(), Some(Duration::from_secs(5)));
/// assert!(config.validate().is_ok());
/// ```
///
/// `Debug` never shows the token or a TLS key.
#[derive(Debug, Clone)]
pub struct QueueClientConfig {
    connect_timeout: Duration,
    request_timeout: Option<Duration>,
    batch: u32,
    close_timeout: Duration,
    token: Option<Secret>,
    #[cfg(feature = "tls")]
    tls: Option<crate::TlsConfig>,
}

impl Default for QueueClientConfig {
    fn default() -> Self {
        QueueClientConfig {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Some(DEFAULT_REQUEST_TIMEOUT),
            batch: 100,
            close_timeout: Duration::from_secs(10),
            token: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl QueueClientConfig {
    /// The defaults: see each getter.
    pub fn new() -> Self {
        QueueClientConfig::default()
    }

    /// How long connecting and the handshake may take; 10 s.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// How long a request waits for its reply;
    /// [`DEFAULT_REQUEST_TIMEOUT`] (30 s). `None` waits as long as the
    /// connection lives (a server that stops answering without closing the
    /// connection would then block the caller for ever).
    pub fn request_timeout(&self) -> Option<Duration> {
        self.request_timeout
    }

    /// Unacknowledged deliveries per subscription by default; 100.
    pub fn batch(&self) -> u32 {
        self.batch
    }

    /// How long [`QueueClient::close`](super::QueueClient::close) waits
    /// for the server to have read what was sent, and then for the reader
    /// thread to end; 10 s each.
    pub fn close_timeout(&self) -> Duration {
        self.close_timeout
    }

    /// Whether a token is sent in the hello ([`with_token`](Self::with_token)).
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The token, for the hello.
    pub(super) fn token(&self) -> Option<String> {
        self.token
            .as_ref()
            .map(|t| String::from_utf8_lossy(t.expose()).into_owned())
    }

    /// The TLS settings, when the connection is to use TLS.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls(&self) -> Option<&crate::TlsConfig> {
        self.tls.as_ref()
    }

    /// Sends `token` in the hello, for a server started with
    /// [`QueueServerConfig::with_token`](super::QueueServerConfig::with_token).
    /// A server that has no token ignores it.
    #[must_use]
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(Secret::new(token.into()));
        self
    }

    /// Connects over TLS (feature `tls`) with `tls`'s settings, the same
    /// [`TlsConfig`](crate::TlsConfig) a RabbitMQ connection
    /// takes: the CA that signed the server's certificate
    /// ([`with_ca_pem`](crate::TlsConfig::with_ca_pem), else
    /// the system's CAs) and the name the certificate must be valid for
    /// ([`with_server_name`](crate::TlsConfig::with_server_name);
    /// else the IP address connected to, since the client is given
    /// addresses, not host names). A certificate that does not verify is
    /// [`Error::Refused`] saying why (an unknown CA, a name mismatch).
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    #[must_use]
    pub fn with_tls(mut self, tls: crate::TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sets the connect and handshake timeout.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets how long a request waits for its reply.
    #[must_use]
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// Requests wait for their reply as long as the connection lives.
    #[must_use]
    pub fn without_request_timeout(mut self) -> Self {
        self.request_timeout = None;
        self
    }

    /// Sets the default subscription batch (window).
    #[must_use]
    pub fn with_batch(mut self, batch: u32) -> Self {
        self.batch = batch;
        self
    }

    /// Sets how long [`close`](super::QueueClient::close) waits.
    #[must_use]
    pub fn with_close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Checks every setting;
    /// [`QueueClient::connect_with`](super::QueueClient::connect_with)
    /// calls it too.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the setting: a connect or request
    /// timeout below 1 ms (the OS refuses a zero socket timeout, and a
    /// request could never be answered in time), a zero batch, an empty
    /// token, TLS settings that do not load (naming the `tls.` setting).
    pub fn validate(&self) -> Result<()> {
        if self.token.as_ref().is_some_and(Secret::is_empty) {
            return Err(Error::invalid("token", "must not be empty"));
        }
        super::tls::client_tls(self)?;
        if self.connect_timeout < Duration::from_millis(1) {
            return Err(Error::invalid("connect_timeout", "must be at least 1 ms"));
        }
        if self
            .request_timeout
            .is_some_and(|t| t < Duration::from_millis(1))
        {
            return Err(Error::invalid(
                "request_timeout",
                "must be at least 1 ms; without_request_timeout() to wait as long as the connection lives",
            ));
        }
        if self.batch == 0 {
            return Err(Error::invalid("batch", "must be at least 1"));
        }
        Ok(())
    }
}
