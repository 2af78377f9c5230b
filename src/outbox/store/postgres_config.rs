//! [`PostgresStoreConfig`]: where the PostgreSQL outbox store connects
//! (a URL or `key=value` string, and TLS), which table it uses and how long
//! its claims on rows last.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::outbox::store::postgres_connect::PgConnector;
use crate::tls::TlsConfig;

/// How a [`PostgresOutboxStore`](crate::outbox::PostgresOutboxStore) connects and claims rows.
///
/// The connection string is libpq's, in either form: a URL
/// (`postgres://app:secret@db.internal:5432/app?sslmode=verify-full`) or
/// `key=value` pairs (`host=db.internal user=app dbname=app
/// sslmode=verify-full`). `sslmode` means what it means to libpq as far as
/// the `postgres` crate allows (see [`with_tls`](Self::with_tls)), and
/// `sslrootcert=FILE` names the CA file to trust.
///
/// The table name goes into SQL text, so [`validate`](Self::validate)
/// checks it strictly: lowercase ASCII letters, digits and `_`, which needs
/// no quoting and cannot inject.
///
/// ```
/// use std::time::Duration;
/// use syncmq::outbox::PostgresStoreConfig;
///
/// let config = PostgresStoreConfig::new("host=127.0.0.1 user=postgres dbname=app")
///     .with_table("orders_outbox")
///     .with_lease(Duration::from_secs(30));
/// assert!(config.validate().is_ok());
/// assert!(PostgresStoreConfig::new("").with_table("drop table x;").validate().is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresStoreConfig {
    params: String,
    tls: Option<TlsConfig>,
    table: String,
    lease: Duration,
    max_idle: usize,
}

impl std::fmt::Debug for PostgresStoreConfig {
    // The connection string may hold a password: only its parsed form,
    // which the `postgres` crate prints with the password hidden.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let params = self
            .params
            .parse::<postgres::Config>()
            .map_or_else(|_| "<not parsed>".to_string(), |c| format!("{c:?}"));
        f.debug_struct("PostgresStoreConfig")
            .field("params", &params)
            .field("tls", &self.tls)
            .field("table", &self.table)
            .field("lease", &self.lease)
            .field("max_idle", &self.max_idle)
            .finish()
    }
}

impl PostgresStoreConfig {
    /// The table when none is given.
    pub const DEFAULT_TABLE: &'static str = "syncmq_outbox";

    /// A config for the connection string `params` (the `postgres` crate's
    /// key=value or URL form, for example
    /// `host=127.0.0.1 user=postgres dbname=app connect_timeout=5`).
    pub fn new(params: impl Into<String>) -> Self {
        PostgresStoreConfig {
            params: params.into(),
            tls: None,
            table: Self::DEFAULT_TABLE.into(),
            lease: Duration::from_secs(60),
            max_idle: 4,
        }
    }

    /// The outbox table's name: lowercase ASCII letters, digits and `_`,
    /// starting with a letter or `_`, at most 50 bytes (room for the index
    /// names). Default `syncmq_outbox`.
    #[must_use]
    pub fn with_table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// Connects over TLS, checking the server's certificate as `tls` says
    /// (its CAs, or the system's; the host name unless the string says
    /// `sslmode=verify-ca` or `require`), on every connection the store
    /// opens. With the string's `sslmode`:
    ///
    /// | `sslmode` | without `with_tls` | with `with_tls` |
    /// |---|---|---|
    /// | not given | in the clear | TLS required, checked as `tls` says |
    /// | `disable` | in the clear | refused: [`Error::InvalidArgument`] `tls` |
    /// | `allow`, `prefer` | TLS if the server offers it, certificate not checked | TLS if offered, checked as `tls` says |
    /// | `require` | TLS required, certificate not checked | TLS required, CA checked, any host name |
    /// | `verify-ca` | TLS required, system CAs, any host name | TLS required, `tls`'s CAs, any host name |
    /// | `verify-full` | TLS required, system CAs and the host name | TLS required, checked as `tls` says |
    ///
    /// A connection whose certificate is not checked logs a warning on
    /// each connect, as do `tls`'s `danger_*` options. The `postgres`
    /// crate always asks for TLS before plain, so `allow` is `prefer`. As
    /// with libpq, a connection over a Unix socket (`host=/var/run/postgresql`)
    /// never uses TLS.
    #[must_use]
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// How long a claim on pending rows lasts. Default 60 s; whole
    /// milliseconds, at least one.
    #[must_use]
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How many idle connections the store keeps for reuse. Default 4.
    #[must_use]
    pub fn with_max_idle(mut self, connections: usize) -> Self {
        self.max_idle = connections;
        self
    }

    /// The connection string.
    pub fn params(&self) -> &str {
        &self.params
    }

    /// The TLS settings given with [`with_tls`](Self::with_tls).
    pub fn tls(&self) -> Option<&TlsConfig> {
        self.tls.as_ref()
    }

    /// The outbox table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// How long a claim on pending rows lasts.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// How many idle connections the store keeps for reuse.
    pub fn max_idle(&self) -> usize {
        self.max_idle
    }

    /// Checks the connection string, the TLS settings (reading the CA
    /// files), the table name and the lease, without connecting.
    /// [`PostgresOutboxStore::connect_with`](crate::outbox::PostgresOutboxStore::connect_with)
    /// does the same.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming `table` or `lease`; `params` for a
    /// connection string that cannot be parsed (saying why, never repeating
    /// the string, which may hold a password); `tls` or the [`TlsConfig`]
    /// setting at fault.
    pub fn validate(&self) -> Result<()> {
        self.connector().map(drop)
    }

    /// The checked config's connector, which every connection of the store
    /// is opened with.
    pub(crate) fn connector(&self) -> Result<PgConnector> {
        self.check_table_and_lease()?;
        PgConnector::new(&self.params, self.tls.as_ref())
    }

    fn check_table_and_lease(&self) -> Result<()> {
        let t = &self.table;
        let first_ok = t
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
        let rest_ok = t
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !first_ok || !rest_ok || t.len() > 50 {
            return Err(Error::invalid(
                "table",
                format!(
                    "{t:?}: a table name is 1 to 50 lowercase ASCII letters, digits or `_`, not starting with a digit"
                ),
            ));
        }
        if self.lease < Duration::from_millis(1) {
            return Err(Error::invalid("lease", "must be at least 1 ms"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        for params in [
            "host=db user=app password=secretpw",
            "postgres://app:secretpw@db/app",
            "not parsed 'secretpw",
        ] {
            let text = format!("{:?}", PostgresStoreConfig::new(params));
            assert!(!text.contains("secretpw"), "{text}");
        }
    }
}
