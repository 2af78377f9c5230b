//! [`TlsConfig`]: how a TLS connection checks its peer and shows itself (a
//! CA bundle, a client certificate, the server name), for every client of
//! the crate that speaks TLS (RabbitMQ, the PostgreSQL outbox store), and
//! what a failed handshake says in words (unknown CA, name mismatch,
//! expired).
//!
//! One settings type and one connector builder on `native-tls` (OpenSSL on
//! Linux): each client wraps the connector its own way (amiquip's
//! `open_tls_stream`, `postgres-native-tls`) but checks certificates the
//! same. Certificate verification is always on unless one of the clearly
//! named `danger_*` options is set, and then every connect logs a warning.

use std::path::{Path, PathBuf};

use native_tls::{Certificate, Identity};

use crate::error::{Error, Result};

/// TLS settings of a connection: how the peer's certificate is checked
/// and the client certificate shown. Given to a RabbitMQ connection to an
/// `amqps://` URL with
/// [`ConnectionConfig::with_tls`](crate::rabbitmq::ConnectionConfig::with_tls)
/// (feature `tls`) and to the PostgreSQL outbox store with
/// [`PostgresStoreConfig::with_tls`](crate::outbox::PostgresStoreConfig::with_tls)
/// (feature `postgres`).
///
/// By default the peer's certificate must be signed by a CA of the system's
/// store and be valid for the host connected to. With a CA bundle
/// ([`with_ca_pem_file`](Self::with_ca_pem_file),
/// [`with_ca_pem`](Self::with_ca_pem)) only the CAs given are trusted, as
/// for a server with certificates of a private CA. A client certificate
/// ([`with_client_identity_pem`](Self::with_client_identity_pem)) is sent
/// when the peer asks for one (RabbitMQ's `ssl_options.verify =
/// verify_peer`, PostgreSQL's `clientcert`). Files are read, and everything
/// checked, when the configuration is (by
/// [`ConnectionConfig::validate`](crate::rabbitmq::ConnectionConfig::validate),
/// [`Connection::with_config`](crate::rabbitmq::Connection::with_config),
/// [`PostgresOutboxStore::connect_with`](crate::outbox::PostgresOutboxStore::connect_with)):
/// a missing file or a bad PEM is an [`Error::InvalidArgument`] naming the
/// setting, not a connection that never comes up.
///
/// A RabbitMQ handshake that fails because of certificates (the broker's is
/// signed by an unknown CA, is not valid for the name, has expired; the
/// broker refused ours) is [`Error::Refused`] with a text starting
/// `TLS handshake with host:port failed:` and the reason in words:
/// permanent, like refused credentials, unless
/// [`with_retry_refusals`](crate::rabbitmq::ConnectionConfig::with_retry_refusals)
/// is set. The PostgreSQL store's [`Error::Storage`] says the same words.
///
/// ```no_run
/// # #[cfg(feature = "tls")]
/// # fn main() -> syncmq::Result<()> {
/// use std::time::Duration;
/// use syncmq::rabbitmq::{Connection, ConnectionConfig};
/// use syncmq::TlsConfig;
///
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
/// # #[cfg(not(feature = "tls"))]
/// # fn main() {}
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    ca: Vec<Pem>,
    identity: Option<(Pem, Pem)>,
    server_name: Option<String>,
    accept_invalid_certs: bool,
    accept_invalid_hostnames: bool,
}

/// PEM text, or the file holding it.
#[derive(Clone, PartialEq, Eq)]
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
    /// The system's CAs, the host connected to as the server name, no client
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

    /// Sends this client certificate when the peer asks for one:
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

    /// The name the peer's certificate must be valid for (and that is
    /// sent as SNI), when it is not the host connected to: say the URL
    /// names an IP address or a load balancer.
    #[must_use]
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// DANGER: accepts any certificate from the peer, signed by anyone
    /// or expired, so anyone between us and the peer can read and
    /// change the traffic. For a test server only; every connect with it
    /// logs a warning.
    #[must_use]
    pub fn danger_accept_invalid_certs(mut self, accept: bool) -> Self {
        self.accept_invalid_certs = accept;
        self
    }

    /// DANGER: accepts a peer certificate that is not valid for the
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
    /// uses.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the setting: an unreadable file, a
    /// bad PEM, a bad server name.
    pub(crate) fn connector(&self) -> Result<native_tls::TlsConnector> {
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
            let setting = cert.setting("tls.client_identity_pem_file", "tls.client_identity_pem");
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
        builder
            .build()
            .map_err(|e| Error::invalid("tls", format!("cannot set up TLS: {e}")))
    }

    /// The warning to log on each connect when a `danger_*` option is set:
    /// the `peer`'s (`broker`, `server`) certificate is not fully checked.
    pub(crate) fn danger(&self, peer: &str) -> Option<String> {
        if self.accept_invalid_certs {
            Some(format!(
                "danger_accept_invalid_certs: the {peer}'s certificate is not checked"
            ))
        } else if self.accept_invalid_hostnames {
            Some(format!(
                "danger_accept_invalid_hostnames: the {peer}'s certificate may be for any name"
            ))
        } else {
            None
        }
    }
}

/// What OpenSSL's `detail` means, for the failures no retry changes; `peer`
/// (`broker`, `server`) is who is on the other side, for the words.
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
        "no TLS on this port (a port for plain connections?)".to_string()
    } else if has(&["certificate verify failed"]) {
        format!("the {peer}'s certificate did not verify")
    } else {
        return None;
    };
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid_setting(result: Result<native_tls::TlsConnector>) -> String {
        match result {
            Err(Error::InvalidArgument { name, .. }) => name,
            Err(other) => panic!("expected InvalidArgument, got {other:?}"),
            Ok(_) => panic!("expected InvalidArgument, got a connector"),
        }
    }

    #[test]
    fn bad_files_and_pem_are_refused_naming_the_setting() {
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
            assert_eq!(invalid_setting(config.connector()), setting);
        }
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
            .contains("the broker does not trust our client certificate"));
        assert!(in_words(alert, "x", "server")
            .unwrap()
            .contains("the server does not trust our client certificate"));
        assert!(in_words("unexpected EOF while reading", "x", "broker").is_none());
    }

    #[test]
    fn danger_options_are_named_in_the_warning() {
        assert_eq!(TlsConfig::new().danger("server"), None);
        let any_name = TlsConfig::new().danger_accept_invalid_hostnames(true);
        assert!(any_name
            .danger("server")
            .is_some_and(|w| w.contains("the server's certificate may be for any name")));
        let any_cert = any_name.danger_accept_invalid_certs(true);
        assert!(any_cert
            .danger("broker")
            .is_some_and(|w| w.contains("the broker's certificate is not checked")));
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let config = TlsConfig::new().with_client_identity_pem("CERT", "SECRET-KEY");
        assert!(!format!("{config:?}").contains("SECRET"));
    }
}
