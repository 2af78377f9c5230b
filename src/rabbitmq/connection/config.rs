//! [`ConnectionConfig`]: how a supervised connection connects and
//! reconnects (to one broker or to the nodes of a cluster in turn), checked
//! before the supervisor starts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::tls::TlsConnect;
#[cfg(feature = "tls")]
use super::tls::{self, TlsConfig};
use crate::error::{Error, Result};
use crate::rabbitmq::amqp::{self, AmqpUrl};

/// How a [`Connection`](crate::rabbitmq::Connection) connects and
/// reconnects.
///
/// ```
/// use std::time::Duration;
/// use syncmq::rabbitmq::ConnectionConfig;
///
/// let config = ConnectionConfig::new("amqp://guest:guest@127.0.0.1:5672/%2f")
///     .with_name("billing")
///     .with_heartbeat(Duration::from_secs(5))
///     .with_backoff(Duration::from_millis(50), Duration::from_secs(5));
/// assert_eq!(config.name(), "billing");
/// config.validate()?;
/// # Ok::<(), syncmq::Error>(())
/// ```
///
/// For a cluster, give every node's URL ([`cluster`](Self::cluster)): the
/// connection tries them in turn and moves to the next one when the node
/// it uses goes away.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    urls: Vec<String>,
    shuffle: bool,
    name: String,
    heartbeat: Duration,
    connect_timeout: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
    close_timeout: Duration,
    retry_refusals: bool,
    #[cfg(feature = "tls")]
    tls: Option<TlsConfig>,
}

impl ConnectionConfig {
    /// A connection to the broker at `url`
    /// (`amqp://user:pass@host:port/vhost`). Defaults: a generated unique
    /// name, 10 s heartbeats, a 5 s connect timeout, backoff from 100 ms
    /// doubling up to 10 s, 10 s to close.
    pub fn new(url: impl Into<String>) -> Self {
        ConnectionConfig::cluster([url])
    }

    /// A connection to one of the nodes of a cluster, each with a URL of
    /// its own (`amqp://a,b,c` is not a URL: one host per URL). The
    /// connection tries them in this order (or shuffled, see
    /// [`with_shuffle`](Self::with_shuffle)) and uses the first that
    /// accepts it. When that node goes away it reconnects to the next one,
    /// declares the recorded topology there and wakes the publishers and
    /// consumers, which carry on on the new node. Only after every node
    /// failed in a round does it wait the backoff. The other defaults are
    /// those of [`new`](Self::new).
    ///
    /// ```
    /// use syncmq::rabbitmq::ConnectionConfig;
    ///
    /// let config = ConnectionConfig::cluster([
    ///     "amqp://guest:guest@10.0.0.1:5672/%2f",
    ///     "amqp://guest:guest@10.0.0.2:5672/%2f",
    ///     "amqp://guest:guest@10.0.0.3:5672/%2f",
    /// ])
    /// .with_shuffle(true);
    /// assert_eq!(config.urls().len(), 3);
    /// config.validate()?;
    /// # Ok::<(), syncmq::Error>(())
    /// ```
    pub fn cluster<I, S>(urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        ConnectionConfig {
            urls: urls.into_iter().map(Into::into).collect(),
            shuffle: false,
            name: format!(
                "syncmq-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ),
            heartbeat: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            close_timeout: Duration::from_secs(10),
            retry_refusals: false,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Whether each round of connect attempts takes the nodes in a random
    /// order instead of the given one (default `false`). Shuffling spreads
    /// many clients over the nodes; the given order suits a preferred node
    /// with standbys. Either way the node just lost is tried last.
    #[must_use]
    pub fn with_shuffle(mut self, shuffle: bool) -> Self {
        self.shuffle = shuffle;
        self
    }

    /// Names the connection. The name is sent as the `information` client
    /// property, so `rabbitmqctl list_connections name client_properties`
    /// and the management UI show it. Make it unique per process to be able
    /// to close one connection from outside.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The heartbeat interval, in whole seconds (at least 1; heartbeats
    /// cannot be turned off). A dead peer is noticed within about twice
    /// this. Recommended: 5 to 30 s.
    #[must_use]
    pub fn with_heartbeat(mut self, heartbeat: Duration) -> Self {
        self.heartbeat = heartbeat;
        self
    }

    /// How long one TCP connect may take; it also bounds the AMQP
    /// handshake.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The reconnect backoff: the first retry waits about `min`, each later
    /// one twice as long, never more than `max`; each wait is shortened by
    /// a random jitter of up to a quarter so that many clients do not
    /// reconnect in step.
    #[must_use]
    pub fn with_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_max = max;
        self
    }

    /// How long [`Connection::close`](crate::rabbitmq::Connection::close)
    /// waits for the supervisor to close the connection and end.
    #[must_use]
    pub fn with_close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Whether to keep retrying when the broker refuses the credentials
    /// (`ACCESS_REFUSED`) or the vhost (`NOT_ALLOWED`). By default (`false`)
    /// such a refusal is permanent: the connection gives up at once and
    /// [`wait_connected`](crate::ConnectionWaiter::wait_connected),
    /// publishes and
    /// [`Connection::last_error`](crate::rabbitmq::Connection::last_error)
    /// fail with [`Error::Refused`]. Turn it on when users or vhosts may be
    /// created after the program starts.
    #[must_use]
    pub fn with_retry_refusals(mut self, retry: bool) -> Self {
        self.retry_refusals = retry;
        self
    }

    /// TLS settings for an `amqps://` URL: the CAs to trust, a client
    /// certificate, the server name (see [`TlsConfig`]). Without them an
    /// `amqps://` URL trusts the system's CAs; with them the URL must be
    /// `amqps://` ([`validate`](Self::validate) refuses an `amqp://` one).
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The TLS settings given with [`with_tls`](Self::with_tls).
    #[cfg(feature = "tls")]
    pub fn tls(&self) -> Option<&TlsConfig> {
        self.tls.as_ref()
    }

    /// The brokers' URLs, in the order given.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// Whether the nodes are tried in a random order.
    pub fn shuffle(&self) -> bool {
        self.shuffle
    }

    /// The connection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The heartbeat interval.
    pub fn heartbeat(&self) -> Duration {
        self.heartbeat
    }

    /// How long one TCP connect may take.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The first reconnect backoff.
    pub fn backoff_min(&self) -> Duration {
        self.backoff_min
    }

    /// The longest reconnect backoff.
    pub fn backoff_max(&self) -> Duration {
        self.backoff_max
    }

    /// How long close waits for the supervisor.
    pub fn close_timeout(&self) -> Duration {
        self.close_timeout
    }

    /// Whether refused credentials or vhosts are retried.
    pub fn retry_refusals(&self) -> bool {
        self.retry_refusals
    }

    /// Checks every setting;
    /// [`Connection::with_config`](crate::rabbitmq::Connection::with_config)
    /// calls it too.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the setting: no URL, a malformed
    /// URL or one that lists several hosts, a heartbeat outside 1 s to
    /// 65535 s, a zero minimum backoff or a maximum below it, an empty
    /// name; for TLS an unreadable file or bad PEM (`tls.ca_pem_file`,
    /// ...), or TLS settings for an `amqp://` URL (`tls`).
    pub fn validate(&self) -> Result<()> {
        let (urls, _) = self.checked()?;
        for url in &urls {
            self.tls_connect(url)?;
        }
        Ok(())
    }

    /// The TLS connector for `url`, built once for every attempt; `None`
    /// for `amqp://`.
    // Without the `tls` feature there is never a connector, but the
    // signature stays for the callers.
    #[cfg_attr(
        not(feature = "tls"),
        allow(clippy::unused_self, clippy::unnecessary_wraps)
    )]
    pub(super) fn tls_connect(&self, url: &AmqpUrl) -> Result<Option<TlsConnect>> {
        #[cfg(feature = "tls")]
        return tls::connector_for(url, self.tls.as_ref());
        #[cfg(not(feature = "tls"))]
        {
            let _ = url;
            Ok(None)
        }
    }

    /// As [`validate`](Self::validate), with the parsed URLs and the
    /// heartbeat in seconds that the supervisor needs.
    pub(super) fn checked(&self) -> Result<(Vec<AmqpUrl>, u16)> {
        if self.urls.is_empty() {
            return Err(Error::invalid("urls", "give at least one broker URL"));
        }
        let urls = self
            .urls
            .iter()
            .map(|url| amqp::parse_url(url))
            .collect::<Result<Vec<_>>>()?;
        let heartbeat = u16::try_from(self.heartbeat.as_secs())
            .ok()
            .filter(|s| *s >= 1)
            .ok_or_else(|| Error::invalid("heartbeat", "must be between 1 s and 65535 s"))?;
        if self.backoff_min.is_zero() || self.backoff_max < self.backoff_min {
            return Err(Error::invalid(
                "backoff",
                "min must be above zero and max at least min",
            ));
        }
        if self.name.is_empty() {
            return Err(Error::invalid(
                "name",
                "a connection name must not be empty",
            ));
        }
        Ok((urls, heartbeat))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_configs_are_refused_naming_the_setting() {
        let base = || ConnectionConfig::new("amqp://localhost");
        for (config, field) in [
            (ConnectionConfig::new("http://x"), "url"),
            (base().with_heartbeat(Duration::ZERO), "heartbeat"),
            (
                base().with_backoff(Duration::ZERO, Duration::ZERO),
                "backoff",
            ),
            (
                base().with_backoff(Duration::from_secs(2), Duration::from_secs(1)),
                "backoff",
            ),
            (base().with_name(""), "name"),
            (ConnectionConfig::cluster(Vec::<String>::new()), "urls"),
            (
                ConnectionConfig::cluster(["amqp://a:5672", "amqp://b:56x"]),
                "url",
            ),
        ] {
            match config.validate() {
                Err(Error::InvalidArgument { name, .. }) => assert_eq!(name, field),
                other => panic!("expected InvalidArgument({field}), got {other:?}"),
            }
        }
        base().validate().unwrap();
    }

    #[test]
    fn a_host_list_inside_one_url_is_refused_with_the_way_out() {
        for url in [
            "amqp://a,b,c",
            "amqp://guest:secret@a:5672,b:5672/%2f",
            "amqp://a:5672,b/vhost",
        ] {
            match ConnectionConfig::new(url).validate() {
                Err(Error::InvalidArgument { name, reason }) => {
                    assert_eq!(name, "url");
                    assert!(reason.contains("ConnectionConfig::cluster"), "{reason}");
                    assert!(!reason.contains("secret"), "the password leaked: {reason}");
                }
                other => panic!("{url}: expected InvalidArgument(url), got {other:?}"),
            }
        }
        ConnectionConfig::cluster(["amqp://a", "amqp://b:5673", "amqp://c/%2f"])
            .validate()
            .unwrap();
    }
}
