//! [`TlsConfig`]: how a connection to an `amqps://` URL checks the broker
//! and shows itself (a CA bundle, a client certificate, the server name),
//! the connector built from it once before the supervisor starts, and what a
//! failed TLS handshake says in words (unknown CA, name mismatch, expired).
//!
//! TLS is amiquip's own support (`amiquip::Connection::open_tls_stream`, on
//! `native-tls`, so OpenSSL on Linux) on the socket we connect ourselves, so
//! a TLS connect keeps the connect timeout and can be cut short like a plain
//! one. Certificate verification is always on unless one of the clearly
//! named `danger_*` options is set, and then every connect logs a warning.
//! Without the `tls` feature only the stand-ins at the end of this file are
//! built, and `amqps://` URLs are refused when the configuration is checked.

#[cfg(feature = "tls")]
pub use with_tls::TlsConfig;
#[cfg(feature = "tls")]
pub(crate) use with_tls::{connector_for, handshake_failure, in_words, open_stream, TlsConnect};

#[cfg(not(feature = "tls"))]
pub(crate) use without_tls::{handshake_failure, open_stream, TlsConnect};

#[cfg(feature = "tls")]
mod with_tls {
    use std::path::{Path, PathBuf};

    use amiquip::{Auth, ConnectionOptions, ConnectionTuning};
    use native_tls::{Certificate, Identity};

    use crate::error::{Error, Result};
    use crate::rabbitmq::amqp::AmqpUrl;

    /// TLS settings of a [`Connection`](crate::rabbitmq::Connection) to an
    /// `amqps://` URL, given with
    /// [`ConnectionConfig::with_tls`](crate::rabbitmq::ConnectionConfig::with_tls).
    ///
    /// By default (and for an `amqps://` URL without `with_tls`) the
    /// broker's certificate must be signed by a CA of the system's store
    /// and be valid for the URL's host. With a CA bundle
    /// ([`with_ca_pem_file`](Self::with_ca_pem_file),
    /// [`with_ca_pem`](Self::with_ca_pem)) only the CAs given are trusted,
    /// as for a broker with certificates of a private CA. A client
    /// certificate ([`with_client_identity_pem`](Self::with_client_identity_pem))
    /// is sent when the broker asks for one (`ssl_options.verify =
    /// verify_peer`). Files are read, and everything checked, when the
    /// configuration is (by
    /// [`ConnectionConfig::validate`](crate::rabbitmq::ConnectionConfig::validate)
    /// and [`Connection::with_config`](crate::rabbitmq::Connection::with_config)):
    /// a missing file or a bad PEM is an [`Error::InvalidArgument`] naming
    /// the setting, not a connection that never comes up.
    ///
    /// A handshake that fails because of certificates (the broker's is
    /// signed by an unknown CA, is not valid for the name, has expired; the
    /// broker refused ours) is [`Error::Refused`] with a text starting
    /// `TLS handshake with host:port failed:` and the reason in words:
    /// permanent, like refused credentials, unless
    /// [`with_retry_refusals`](crate::rabbitmq::ConnectionConfig::with_retry_refusals)
    /// is set.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use syncmq::rabbitmq::{Connection, ConnectionConfig, TlsConfig};
    ///
    /// # fn main() -> syncmq::Result<()> {
    /// let tls = TlsConfig::new()
    ///     .with_ca_pem_file("/etc/syncmq/ca.pem")
    ///     .with_client_identity_pem_file("/etc/syncmq/client.pem", "/etc/syncmq/client.key");
    /// let config = ConnectionConfig::new("amqps://app:secret@rabbit.internal:5671/%2f")
    ///     .with_name("billing")
    ///     .with_tls(tls);
    /// let connection = Connection::with_config(config)?;
    /// connection.waiter().wait_connected(Duration::from_secs(10))?;
    /// # Ok(())
    /// # }
    /// ```
    #[derive(Clone, Default)]
    pub struct TlsConfig {
        ca: Vec<Pem>,
        identity: Option<(Pem, Pem)>,
        server_name: Option<String>,
        accept_invalid_certs: bool,
        accept_invalid_hostnames: bool,
    }

    /// PEM text, or the file holding it.
    #[derive(Clone)]
    enum Pem {
        File(PathBuf),
        Bytes(Vec<u8>),
    }

    impl Pem {
        /// The PEM text; `setting` names it in the error.
        fn load(&self, setting: &str) -> Result<Vec<u8>> {
            match self {
                Pem::Bytes(bytes) => Ok(bytes.clone()),
                Pem::File(path) => std::fs::read(path).map_err(|e| {
                    Error::invalid(setting, format!("cannot read `{}`: {e}", path.display()))
                }),
            }
        }

        /// The setting this came from, for errors.
        fn setting(&self, file: &'static str, bytes: &'static str) -> &'static str {
            match self {
                Pem::File(_) => file,
                Pem::Bytes(_) => bytes,
            }
        }
    }

    impl std::fmt::Debug for Pem {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                Pem::File(path) => write!(f, "{}", path.display()),
                Pem::Bytes(bytes) => write!(f, "<{} bytes of PEM>", bytes.len()),
            }
        }
    }

    impl std::fmt::Debug for TlsConfig {
        // The key's file name or size only, never its bytes.
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("TlsConfig")
                .field("ca", &self.ca)
                .field("client_identity", &self.identity.as_ref().map(|(c, _)| c))
                .field("server_name", &self.server_name)
                .field("danger_accept_invalid_certs", &self.accept_invalid_certs)
                .field(
                    "danger_accept_invalid_hostnames",
                    &self.accept_invalid_hostnames,
                )
                .finish()
        }
    }

    impl TlsConfig {
        /// The system's CAs, the URL's host as the server name, no client
        /// certificate, every check on.
        pub fn new() -> Self {
            TlsConfig::default()
        }

        /// Trusts the CA certificates in the PEM file at `path` (one or
        /// more), and only those (with the others given this way). Read
        /// when the configuration is checked.
        #[must_use]
        pub fn with_ca_pem_file(mut self, path: impl AsRef<Path>) -> Self {
            self.ca.push(Pem::File(path.as_ref().to_path_buf()));
            self
        }

        /// Trusts the CA certificates in `pem` (one or more), and only those
        /// (with the others given this way).
        #[must_use]
        pub fn with_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
            self.ca.push(Pem::Bytes(pem.into()));
            self
        }

        /// Sends this client certificate when the broker asks for one:
        /// `cert_pem` holds the certificate (and any intermediates),
        /// `key_pem` its private key in PKCS#8 PEM (`BEGIN PRIVATE KEY`;
        /// `openssl pkcs8 -topk8 -nocrypt` converts an older key).
        #[must_use]
        pub fn with_client_identity_pem(
            mut self,
            cert_pem: impl Into<Vec<u8>>,
            key_pem: impl Into<Vec<u8>>,
        ) -> Self {
            self.identity = Some((Pem::Bytes(cert_pem.into()), Pem::Bytes(key_pem.into())));
            self
        }

        /// As [`with_client_identity_pem`](Self::with_client_identity_pem),
        /// from files read when the configuration is checked.
        #[must_use]
        pub fn with_client_identity_pem_file(
            mut self,
            cert_path: impl AsRef<Path>,
            key_path: impl AsRef<Path>,
        ) -> Self {
            self.identity = Some((
                Pem::File(cert_path.as_ref().to_path_buf()),
                Pem::File(key_path.as_ref().to_path_buf()),
            ));
            self
        }

        /// The name the broker's certificate must be valid for (and that is
        /// sent as SNI), when it is not the URL's host: say the URL names
        /// an IP address or a load balancer.
        #[must_use]
        pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
            self.server_name = Some(name.into());
            self
        }

        /// DANGER: accepts any certificate from the broker, signed by anyone
        /// or expired, so anyone between us and the broker can read and
        /// change the traffic. For a test broker only; every connect with it
        /// logs a warning.
        #[must_use]
        pub fn danger_accept_invalid_certs(mut self, accept: bool) -> Self {
            self.accept_invalid_certs = accept;
            self
        }

        /// DANGER: accepts a broker certificate that is not valid for the
        /// server name (it must still be signed by a trusted CA). Prefer
        /// [`with_server_name`](Self::with_server_name); every connect with
        /// it logs a warning.
        #[must_use]
        pub fn danger_accept_invalid_hostnames(mut self, accept: bool) -> Self {
            self.accept_invalid_hostnames = accept;
            self
        }

        /// The server name set by [`with_server_name`](Self::with_server_name).
        pub fn server_name(&self) -> Option<&str> {
            self.server_name.as_deref()
        }

        /// Reads the files and builds the connector every connect attempt
        /// uses (the queue server's client builds it from the same
        /// settings).
        pub(crate) fn build(&self) -> Result<TlsConnect> {
            let mut builder = native_tls::TlsConnector::builder();
            for ca in &self.ca {
                let setting = ca.setting("tls.ca_pem_file", "tls.ca_pem");
                let pem = ca.load(setting)?;
                let certs = Certificate::stack_from_pem(&pem).map_err(|e| {
                    Error::invalid(setting, format!("not PEM certificates ({ca:?}): {e}"))
                })?;
                if certs.is_empty() {
                    return Err(Error::invalid(
                        setting,
                        format!("no `BEGIN CERTIFICATE` block in {ca:?}"),
                    ));
                }
                for cert in certs {
                    builder.add_root_certificate(cert);
                }
            }
            if !self.ca.is_empty() {
                builder.disable_built_in_roots(true);
            }
            if let Some((cert, key)) = &self.identity {
                let setting =
                    cert.setting("tls.client_identity_pem_file", "tls.client_identity_pem");
                let identity = Identity::from_pkcs8(&cert.load(setting)?, &key.load(setting)?)
                    .map_err(|e| {
                        Error::invalid(
                            setting,
                            format!(
                                "not a PEM certificate ({cert:?}) and PKCS#8 PEM key ({key:?}) \
                                 that belong together: {e}"
                            ),
                        )
                    })?;
                builder.identity(identity);
            }
            if let Some(name) = &self.server_name {
                if name.is_empty() || name.contains(char::is_whitespace) {
                    return Err(Error::invalid(
                        "tls.server_name",
                        format!("`{name}` is not a host name"),
                    ));
                }
            }
            builder.danger_accept_invalid_certs(self.accept_invalid_certs);
            builder.danger_accept_invalid_hostnames(self.accept_invalid_hostnames);
            let connector = builder
                .build()
                .map_err(|e| Error::invalid("tls", format!("cannot set up TLS: {e}")))?;
            let danger = if self.accept_invalid_certs {
                Some("danger_accept_invalid_certs: the broker's certificate is not checked")
            } else if self.accept_invalid_hostnames {
                Some(
                    "danger_accept_invalid_hostnames: the broker's certificate may be for any name",
                )
            } else {
                None
            };
            Ok(TlsConnect {
                connector,
                server_name: self.server_name.clone(),
                danger,
            })
        }
    }

    /// A [`TlsConfig`] checked and built: what every connect attempt of a
    /// connection to an `amqps://` URL uses.
    #[derive(Clone)]
    pub(crate) struct TlsConnect {
        connector: native_tls::TlsConnector,
        server_name: Option<String>,
        danger: Option<&'static str>,
    }

    impl TlsConnect {
        /// The name the certificate must be valid for, connecting to `host`.
        pub(crate) fn domain<'a>(&'a self, host: &'a str) -> &'a str {
            self.server_name.as_deref().unwrap_or(host)
        }

        /// The client's TLS handshake on a blocking std socket (the queue
        /// server's client; amiquip does its own on mio's). `name` is the
        /// connection's, for the warning a `danger_*` option logs.
        pub(crate) fn handshake(
            &self,
            host: &str,
            stream: std::net::TcpStream,
            name: &str,
        ) -> std::result::Result<
            native_tls::TlsStream<std::net::TcpStream>,
            native_tls::HandshakeError<std::net::TcpStream>,
        > {
            if let Some(danger) = self.danger {
                log::warn!("{name}: TLS with {danger}");
            }
            self.connector.connect(self.domain(host), stream)
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
            (true, Some(config)) => config.build().map(Some),
            (true, None) => TlsConfig::new().build().map(Some),
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
                if let Some(danger) = tls.danger {
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

    /// What OpenSSL's `detail` means, for the failures no retry changes;
    /// `peer` is what the other side is called (`broker`, `server`).
    pub(crate) fn in_words(detail: &str, domain: &str, peer: &str) -> Option<String> {
        let d = detail.to_ascii_lowercase();
        let has = |needles: &[&str]| needles.iter().any(|n| d.contains(n));
        let words = if has(&["hostname mismatch", "ip address mismatch"]) {
            format!("name mismatch: the {peer}'s certificate is not valid for `{domain}`")
        } else if has(&[
            "unable to get local issuer certificate",
            "unable to get issuer certificate",
            "self-signed certificate",
            "self signed certificate",
            "unable to verify the first certificate",
        ]) {
            format!("unknown CA: the {peer}'s certificate is not signed by a trusted CA")
        } else if has(&["certificate has expired"]) {
            format!("expired: the {peer}'s certificate has expired")
        } else if has(&["certificate is not yet valid"]) {
            format!("not yet valid: the {peer}'s certificate is not valid yet")
        } else if has(&["certificate revoked"]) {
            format!("revoked: the {peer}'s certificate was revoked")
        } else if has(&["alert unknown ca"]) {
            format!("unknown CA: the {peer} does not trust our client certificate")
        } else if has(&["alert certificate required"]) {
            format!("the {peer} requires a client certificate")
        } else if has(&["alert bad certificate", "alert certificate unknown"]) {
            format!("the {peer} refused our client certificate")
        } else if has(&["wrong version number", "packet length too long"]) {
            "no TLS on this port (a port without TLS?)".to_string()
        } else if has(&["certificate verify failed"]) {
            format!("the {peer}'s certificate did not verify")
        } else {
            return None;
        };
        Some(words)
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
    use super::with_tls::in_words;
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
    fn bad_files_and_pem_are_refused_naming_the_setting() {
        let url = parse_url("amqps://localhost").unwrap();
        let cases = [
            (
                TlsConfig::new().with_ca_pem_file("/nonexistent/ca.pem"),
                "tls.ca_pem_file",
            ),
            (TlsConfig::new().with_ca_pem("not a pem"), "tls.ca_pem"),
            (
                TlsConfig::new().with_client_identity_pem("no", "key"),
                "tls.client_identity_pem",
            ),
            (
                TlsConfig::new().with_client_identity_pem_file("/nonexistent/c", "/nonexistent/k"),
                "tls.client_identity_pem_file",
            ),
            (TlsConfig::new().with_server_name(""), "tls.server_name"),
        ];
        for (config, setting) in cases {
            assert_eq!(invalid_setting(connector_for(&url, Some(&config))), setting);
        }
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

    #[test]
    fn openssl_reasons_are_put_in_words() {
        let verify = "error:0A000086:SSL routines:tls_post_process_server_certificate:\
                      certificate verify failed:../ssl/statem/statem_clnt.c:1889: ";
        for (reason, words) in [
            ("(unable to get local issuer certificate)", "unknown CA"),
            ("(Hostname mismatch)", "name mismatch"),
            ("(certificate has expired)", "expired"),
            (
                "(self-signed certificate in certificate chain)",
                "unknown CA",
            ),
        ] {
            let text = in_words(&format!("{verify}{reason}"), "wrong.example", "broker").unwrap();
            assert!(text.starts_with(words), "{reason}: {text}");
        }
        assert!(in_words("(Hostname mismatch)", "wrong.example", "broker")
            .unwrap()
            .contains("wrong.example"));
        let alert = "error:0A000418:SSL routines:ssl3_read_bytes:tlsv1 alert unknown ca:\
                     ../ssl/record/rec_layer_s3.c:1601:SSL alert number 48";
        assert!(in_words(alert, "x", "broker")
            .unwrap()
            .contains("does not trust our client certificate"));
        assert!(in_words("unexpected EOF while reading", "x", "broker").is_none());
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let config = TlsConfig::new().with_client_identity_pem("CERT", "SECRET-KEY");
        assert!(!format!("{config:?}").contains("SECRET"));
    }
}
