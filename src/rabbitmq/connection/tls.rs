//! TLS for a connection to an `amqps://` URL: the connector built from its
//! [`TlsConfig`] (the crate's, in `src/tls.rs`) once before the supervisor
//! starts, the stream opened over it, and a failed handshake as an error.
//!
//! TLS is amiquip's own support (`amiquip::Connection::open_tls_stream`, on
//! `native-tls`, so OpenSSL on Linux) on the socket we connect ourselves, so
//! a TLS connect keeps the connect timeout and can be cut short like a plain
//! one. Certificate verification is always on unless one of the clearly
//! named `danger_*` options is set, and then every connect logs a warning.
//! Without the `tls` feature only the stand-ins at the end of this file are
//! built, and `amqps://` URLs are refused when the configuration is checked.

#[cfg(feature = "tls")]
pub use crate::tls::TlsConfig;
#[cfg(feature = "tls")]
pub(crate) use with_tls::{connector_for, handshake_failure, open_stream, TlsConnect};

#[cfg(not(feature = "tls"))]
pub(crate) use without_tls::{handshake_failure, open_stream, TlsConnect};

#[cfg(feature = "tls")]
mod with_tls {
    use amiquip::{Auth, ConnectionOptions, ConnectionTuning};

    use crate::error::{Error, Result};
    use crate::rabbitmq::amqp::AmqpUrl;
    use crate::tls::{in_words, TlsConfig};

    /// `config` checked and built: the connector and the warning every
    /// connect with it logs.
    fn build(config: &TlsConfig) -> Result<TlsConnect> {
        Ok(TlsConnect {
            connector: config.connector()?,
            server_name: config.server_name().map(str::to_string),
            danger: config.danger("broker"),
        })
    }

    /// A [`TlsConfig`] checked and built: what every connect attempt of a
    /// connection to an `amqps://` URL uses.
    #[derive(Clone)]
    pub(crate) struct TlsConnect {
        connector: native_tls::TlsConnector,
        server_name: Option<String>,
        danger: Option<String>,
    }

    impl TlsConnect {
        /// The name the certificate must be valid for, connecting to `host`.
        pub(crate) fn domain<'a>(&'a self, host: &'a str) -> &'a str {
            self.server_name.as_deref().unwrap_or(host)
        }
    }

    /// The connector for `url`: `None` for `amqp://`, else `config` (or the
    /// defaults) built.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the setting: an unreadable file, a
    /// bad PEM, a bad server name; `tls` when a [`TlsConfig`] is given for
    /// an `amqp://` URL (silently sending in the clear what was meant to be
    /// encrypted would be worse).
    pub(crate) fn connector_for(
        url: &AmqpUrl,
        config: Option<&TlsConfig>,
    ) -> Result<Option<TlsConnect>> {
        match (url.tls, config) {
            (true, Some(config)) => build(config).map(Some),
            (true, None) => build(&TlsConfig::new()).map(Some),
            (false, Some(_)) => Err(Error::invalid(
                "tls",
                format!(
                    "TLS settings are given but the URL for {}:{} is amqp://; use amqps://",
                    url.host, url.port
                ),
            )),
            (false, None) => Ok(None),
        }
    }

    /// Opens the AMQP connection on `stream`: over TLS with `tls`, in the
    /// clear without. `name` is the connection's, for the warning a
    /// `danger_*` option logs.
    pub(crate) fn open_stream(
        tls: Option<&TlsConnect>,
        host: &str,
        stream: mio::net::TcpStream,
        options: ConnectionOptions<Auth>,
        name: &str,
    ) -> amiquip::Result<amiquip::Connection> {
        match tls {
            Some(tls) => {
                if let Some(danger) = &tls.danger {
                    log::warn!("connection {name}: TLS with {danger}");
                }
                amiquip::Connection::open_tls_stream(
                    tls.connector.clone(),
                    tls.domain(host),
                    stream,
                    options,
                    ConnectionTuning::default(),
                )
            }
            None => amiquip::Connection::insecure_open_stream(
                stream,
                options,
                ConnectionTuning::default(),
            ),
        }
    }

    /// The error for a failed TLS handshake with `target` (`host:port`)
    /// for the name `domain` (or a TLS alert right after it), or `None` when
    /// `e` is neither.
    /// Certificate trouble is [`Error::Refused`] (code 0: TLS has no AMQP
    /// reply code); anything else (the peer hung up mid-handshake) is
    /// [`Error::Disconnected`], retried.
    pub(crate) fn handshake_failure(
        e: &amiquip::Error,
        target: &str,
        domain: &str,
    ) -> Option<Error> {
        let detail = match e {
            amiquip::Error::TlsHandshake { source } => source.to_string(),
            // With TLS 1.3 the broker checks our certificate after our side
            // of the handshake is done: its refusal (an alert) comes with
            // the first read of the AMQP handshake.
            amiquip::Error::IoErrorReadingSocket { source }
            | amiquip::Error::IoErrorWritingSocket { source }
                if source.to_string().contains("alert") =>
            {
                source.to_string()
            }
            _ => return None,
        };
        Some(match in_words(&detail, domain, "broker") {
            Some(words) => Error::refused(
                0,
                format!("TLS handshake with {target} failed: {words} ({detail})"),
            ),
            None => Error::disconnected_reason(
                format!("TLS handshake with {target}"),
                format!("failed: {detail}"),
            ),
        })
    }
}

/// Without the `tls` feature: no connector can exist, and every connection
/// is in the clear.
#[cfg(not(feature = "tls"))]
mod without_tls {
    use amiquip::{Auth, ConnectionOptions, ConnectionTuning};

    use crate::error::Error;

    /// Never built: without the `tls` feature `amqps://` URLs are refused.
    #[derive(Clone)]
    pub(crate) enum TlsConnect {}

    impl TlsConnect {
        /// Unreachable: there is no value.
        pub(crate) fn domain<'a>(&'a self, _host: &'a str) -> &'a str {
            match *self {}
        }
    }

    /// Opens the AMQP connection on `stream`, in the clear.
    pub(crate) fn open_stream(
        tls: Option<&TlsConnect>,
        _host: &str,
        stream: mio::net::TcpStream,
        options: ConnectionOptions<Auth>,
        _name: &str,
    ) -> amiquip::Result<amiquip::Connection> {
        if let Some(tls) = tls {
            match *tls {}
        }
        amiquip::Connection::insecure_open_stream(stream, options, ConnectionTuning::default())
    }

    /// No TLS, no handshake failure.
    pub(crate) fn handshake_failure(
        _e: &amiquip::Error,
        _target: &str,
        _domain: &str,
    ) -> Option<Error> {
        None
    }
}

#[cfg(all(test, feature = "tls"))]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::rabbitmq::amqp::parse_url;

    fn invalid_setting(result: crate::Result<Option<TlsConnect>>) -> String {
        match result {
            Err(Error::InvalidArgument { name, .. }) => name,
            Err(other) => panic!("expected InvalidArgument, got {other:?}"),
            Ok(_) => panic!("expected InvalidArgument, got a connector"),
        }
    }

    #[test]
    fn a_bad_file_is_refused_naming_the_setting() {
        let url = parse_url("amqps://localhost").unwrap();
        let config = TlsConfig::new().with_ca_pem_file("/nonexistent/ca.pem");
        assert_eq!(
            invalid_setting(connector_for(&url, Some(&config))),
            "tls.ca_pem_file"
        );
    }

    #[test]
    fn tls_settings_for_a_plain_url_are_refused() {
        let url = parse_url("amqp://localhost").unwrap();
        assert_eq!(
            invalid_setting(connector_for(&url, Some(&TlsConfig::new()))),
            "tls"
        );
        assert!(connector_for(&url, None).unwrap().is_none());
    }

    #[test]
    fn an_amqps_url_without_settings_uses_the_system_roots() {
        let url = parse_url("amqps://broker.example").unwrap();
        let connect = connector_for(&url, None).unwrap().unwrap();
        assert_eq!(connect.domain(&url.host), "broker.example");
        let named = TlsConfig::new().with_server_name("rabbit.internal");
        let connect = connector_for(&url, Some(&named)).unwrap().unwrap();
        assert_eq!(connect.domain(&url.host), "rabbit.internal");
    }
}
