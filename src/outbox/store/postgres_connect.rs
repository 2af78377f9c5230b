//! [`PgConnector`]: how every connection of the PostgreSQL outbox store is
//! opened (the adds' pool, the dispatcher's own connections), so that all
//! of them use the same parsed connection string and the same TLS.
//!
//! The string is parsed once, when the store opens: `sslmode` and
//! `sslrootcert` by `postgres_params` (libpq's values), the rest by the
//! `postgres` crate. TLS is `postgres-native-tls` on the crate's
//! [`TlsConfig`], with libpq's meaning of each `sslmode` as far as
//! the `postgres` crate allows (it asks for TLS first, so `allow` is
//! `prefer`).

use postgres::tls::MakeTlsConnect;
use postgres::{Client, Config, NoTls, Socket};

use crate::error::{Error, Result};
use crate::outbox::store::postgres_params::{take_libpq_settings, SslMode};
use crate::tls::{in_words, TlsConfig};

/// The parsed connection string and the TLS every connection uses.
pub(crate) struct PgConnector {
    config: Config,
    tls: Option<Tls>,
    /// The first host, the name its certificate must be valid for unless
    /// a server name is given.
    host: String,
    /// `host:port` of the first host, for errors.
    target: String,
}

/// A TLS connector built once, and what each connect says about it.
#[derive(Clone)]
struct Tls {
    connector: native_tls::TlsConnector,
    /// The name the certificate must be valid for, when not the host.
    server_name: Option<String>,
    /// Logged on each connect: a check the settings turned off.
    warning: Option<String>,
}

/// `postgres-native-tls`'s connector, for the configured server name
/// instead of the host when one is given.
impl MakeTlsConnect<Socket> for Tls {
    type Stream = postgres_native_tls::TlsStream<Socket>;
    type TlsConnect = postgres_native_tls::TlsConnector;
    type Error = native_tls::Error;

    fn make_tls_connect(
        &mut self,
        host: &str,
    ) -> std::result::Result<Self::TlsConnect, Self::Error> {
        let domain = self.server_name.as_deref().unwrap_or(host);
        Ok(postgres_native_tls::TlsConnector::new(
            self.connector.clone(),
            domain,
        ))
    }
}

impl PgConnector {
    /// Parses `params` and builds the TLS connector that `tls` and the
    /// string's `sslmode` call for, as the table of
    /// [`PostgresStoreConfig::with_tls`](crate::outbox::PostgresStoreConfig::with_tls)
    /// says. `sslrootcert` in the string adds its file to `tls`'s CAs.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming `params` for a string the
    /// `postgres` crate cannot parse (its reason, never the string), `tls`
    /// for TLS settings with `sslmode=disable`, or the [`TlsConfig`]
    /// setting at fault.
    pub(crate) fn new(params: &str, tls: Option<&TlsConfig>) -> Result<Self> {
        let libpq = take_libpq_settings(params)?;
        let mut config: Config = libpq
            .rest
            .parse()
            .map_err(|e: postgres::Error| Error::invalid("params", chain(&e)))?;
        let mut tls = tls.cloned();
        if let Some(path) = &libpq.root_cert {
            tls = Some(tls.unwrap_or_default().with_ca_pem_file(path));
        }
        let given = tls.is_some();
        // Only what the caller turned off is warned of: verify-ca's own
        // any-host-name below is what was asked for.
        let danger = tls.as_ref().and_then(|t| t.danger("server"));
        let mode = libpq.ssl_mode;
        let (crate_mode, tls) = match (mode, tls) {
            (None | Some(SslMode::Disable), None) => (postgres::config::SslMode::Disable, None),
            (Some(SslMode::Disable), Some(_)) => {
                return Err(Error::invalid(
                    "tls",
                    "TLS settings are given but the connection string says sslmode=disable",
                ))
            }
            (Some(SslMode::Allow | SslMode::Prefer), tls) => (
                postgres::config::SslMode::Prefer,
                Some(tls.unwrap_or_else(unchecked)),
            ),
            (Some(SslMode::Require), None) => {
                (postgres::config::SslMode::Require, Some(unchecked()))
            }
            (Some(SslMode::Require | SslMode::VerifyCa), tls) => (
                postgres::config::SslMode::Require,
                Some(
                    tls.unwrap_or_default()
                        .danger_accept_invalid_hostnames(true),
                ),
            ),
            (None | Some(SslMode::VerifyFull), tls) => (
                postgres::config::SslMode::Require,
                Some(tls.unwrap_or_default()),
            ),
        };
        // As libpq, no TLS over Unix sockets (the server offers none there):
        // a string of socket directories only is in the clear whatever
        // its sslmode.
        let sockets_only = !config.get_hosts().is_empty()
            && config
                .get_hosts()
                .iter()
                .all(|h| !matches!(h, postgres::config::Host::Tcp(_)));
        let (crate_mode, tls) = if sockets_only {
            (postgres::config::SslMode::Disable, None)
        } else {
            (crate_mode, tls)
        };
        config.ssl_mode(crate_mode);
        let tls = match tls {
            Some(settings) => Some(Tls {
                connector: settings.connector()?,
                server_name: settings.server_name().map(str::to_string),
                warning: danger.or_else(|| unchecked_warning(mode, given)),
            }),
            None => None,
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let (host, target) = match config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(host)) => (host.clone(), format!("{host}:{port}")),
            #[cfg(unix)]
            Some(postgres::config::Host::Unix(path)) => {
                let path = path.display().to_string();
                (path.clone(), path)
            }
            None => (String::new(), "the server".to_string()),
        };
        Ok(PgConnector {
            config,
            tls,
            host,
            target,
        })
    }

    /// Whether connections use TLS (or try it, for `sslmode=prefer`).
    pub(crate) fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Opens a connection.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] when the server cannot be reached or refuses; a
    /// failed TLS handshake says why in words (`TLS handshake with
    /// host:port failed: unknown CA: ...`).
    pub(crate) fn connect(&self) -> Result<Client> {
        let connected = match &self.tls {
            Some(tls) => {
                if let Some(warning) = &tls.warning {
                    log::warn!("postgres outbox: TLS to {} with {warning}", self.target);
                }
                self.config.connect(tls.clone())
            }
            None => self.config.connect(NoTls),
        };
        connected.map_err(|e| self.connect_failure(e))
    }

    /// A failed connect as our error, a certificate problem in words.
    fn connect_failure(&self, e: postgres::Error) -> Error {
        let text = chain(&e);
        let domain = self
            .tls
            .as_ref()
            .and_then(|tls| tls.server_name.as_deref())
            .unwrap_or(&self.host);
        let what = match in_words(&text, domain, "server") {
            Some(words) => format!(
                "postgres outbox: connecting: TLS handshake with {} failed: {words}",
                self.target
            ),
            None => "postgres outbox: connecting".to_string(),
        };
        Error::storage(what, e)
    }
}

/// The settings of an `sslmode` that does not check the certificate, as
/// libpq without a CA.
fn unchecked() -> TlsConfig {
    TlsConfig::new()
        .danger_accept_invalid_certs(true)
        .danger_accept_invalid_hostnames(true)
}

/// The warning each connect logs for an `sslmode` that checks no
/// certificate: one given without TLS settings or `sslrootcert`.
fn unchecked_warning(mode: Option<SslMode>, given: bool) -> Option<String> {
    if given {
        return None;
    }
    match mode {
        Some(SslMode::Allow | SslMode::Prefer | SslMode::Require) => Some(
            "sslmode=prefer or require and no CA: the server's certificate is not checked \
             (as libpq); give one with with_tls or sslrootcert and use sslmode=verify-full"
                .to_string(),
        ),
        _ => None,
    }
}

/// `e` and its causes, `: `-separated (the `postgres` crate's `Display`
/// says only the kind of error).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        next = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(params: &str, tls: Option<&TlsConfig>) -> (String, String) {
        match PgConnector::new(params, tls) {
            Err(Error::InvalidArgument { name, reason }) => (name, reason),
            Err(other) => panic!("{params}: expected InvalidArgument, got {other:?}"),
            Ok(_) => panic!("{params}: expected InvalidArgument, got a connector"),
        }
    }

    #[test]
    fn a_bad_string_is_refused_naming_what_is_wrong_not_the_password() {
        for (params, why) in [
            (
                "postgres://app:secretpw@db:notaport/app",
                "invalid value for option `port`",
            ),
            (
                "host=db password=secretpw bogus=1",
                "unknown option `bogus`",
            ),
            ("host=db password='secretpw", "unterminated quoted"),
            (
                "host=db password=secretpw sslmode=always",
                "sslmode `always`",
            ),
        ] {
            let (name, reason) = invalid(params, None);
            assert_eq!(name, "params", "{params}");
            assert!(reason.contains(why), "{params}: {reason}");
            assert!(!reason.contains("secretpw"), "{params}: {reason}");
        }
    }

    #[test]
    fn tls_settings_with_sslmode_disable_are_refused() {
        let (name, _) = invalid("host=db sslmode=disable", Some(&TlsConfig::new()));
        assert_eq!(name, "tls");
        let (name, _) = invalid("host=db sslmode=disable sslrootcert=/etc/ca.pem", None);
        assert_eq!(name, "tls");
    }

    #[test]
    fn each_sslmode_picks_plain_or_tls_and_the_checks() {
        let plain = PgConnector::new("host=db", None).unwrap();
        assert!(!plain.uses_tls());
        assert_eq!(plain.target, "db:5432");
        for params in [
            "host=db sslmode=require",
            "postgres://db:6432/app?sslmode=prefer",
        ] {
            let unchecked = PgConnector::new(params, None).unwrap();
            let warning = unchecked.tls.as_ref().and_then(|t| t.warning.clone());
            assert!(
                warning.is_some_and(|w| w.contains("not checked")),
                "{params}"
            );
        }
        for mode in ["verify-ca", "verify-full"] {
            let checked = PgConnector::new(&format!("host=db sslmode={mode}"), None).unwrap();
            assert_eq!(
                checked.config.get_ssl_mode(),
                postgres::config::SslMode::Require
            );
            assert!(
                checked.tls.as_ref().is_some_and(|t| t.warning.is_none()),
                "{mode}"
            );
        }
        // verify-ca's any host name is asked for, not a danger to warn of;
        // the caller's own danger_* option is.
        let ca = TlsConfig::new();
        let asked = PgConnector::new("host=db sslmode=verify-ca", Some(&ca)).unwrap();
        assert!(asked.tls.is_some_and(|t| t.warning.is_none()));
        let danger = TlsConfig::new().danger_accept_invalid_certs(true);
        let danger = PgConnector::new("host=db sslmode=verify-full", Some(&danger)).unwrap();
        assert!(danger
            .tls
            .and_then(|t| t.warning)
            .is_some_and(|w| w.contains("danger_accept_invalid_certs")));
        // TLS settings without an sslmode: TLS is required.
        let given = PgConnector::new("host=db", Some(&TlsConfig::new())).unwrap();
        assert_eq!(
            given.config.get_ssl_mode(),
            postgres::config::SslMode::Require
        );
        let named = TlsConfig::new().with_server_name("db.internal");
        let named = PgConnector::new("host=10.0.0.5", Some(&named)).unwrap();
        assert_eq!(
            named.tls.and_then(|t| t.server_name).as_deref(),
            Some("db.internal")
        );
    }

    #[test]
    fn unix_sockets_are_in_the_clear_as_with_libpq() {
        let socket = PgConnector::new("host=/var/run/postgresql sslmode=require", None).unwrap();
        assert!(!socket.uses_tls());
        assert_eq!(
            socket.config.get_ssl_mode(),
            postgres::config::SslMode::Disable
        );
        let mixed = PgConnector::new("host=/var/run/postgresql,db sslmode=require", None).unwrap();
        assert!(mixed.uses_tls());
    }

    #[test]
    fn a_missing_ca_file_is_refused_naming_the_setting() {
        let (name, _) = invalid("host=db sslrootcert=/nonexistent/ca.pem", None);
        assert_eq!(name, "tls.ca_pem_file");
    }
}
