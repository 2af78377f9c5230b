//! [`PostgresStoreConfig`]: where the PostgreSQL outbox store connects,
//! which table it uses and how long its claims on rows last.

use std::time::Duration;

use crate::error::{Error, Result};

/// How a [`PostgresOutboxStore`](crate::outbox::PostgresOutboxStore) connects and claims rows.
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresStoreConfig {
    params: String,
    table: String,
    lease: Duration,
    max_idle: usize,
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

    /// Checks the table name and the lease.
    /// [`PostgresOutboxStore::connect_with`](crate::outbox::PostgresOutboxStore::connect_with)
    /// calls this.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming `table` or `lease`.
    pub fn validate(&self) -> Result<()> {
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
