//! [`OutboxConfig`]: how an [`Outbox`](crate::outbox::Outbox) dispatches, retries,
//! cleans up and closes.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::outbox::event::WhenFull;

/// How an [`Outbox`](crate::outbox::Outbox) dispatches, retries, cleans up and
/// closes. Every knob has a default that suits most programs; change the
/// few that matter. [`validate`](Self::validate) (called by
/// [`Outbox::start_with`](crate::outbox::Outbox::start_with)) refuses zero sizes
/// and intervals and names the field at fault.
///
/// ```
/// use std::time::Duration;
/// use syncmq::outbox::OutboxConfig;
///
/// let config = OutboxConfig::new()
///     .with_retention(Duration::from_secs(3600))
///     .with_max_attempts(5);
/// assert!(config.validate().is_ok());
/// assert_eq!(config.max_attempts(), 5);
/// assert!(OutboxConfig::new().with_batch_size(0).validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxConfig {
    check_interval: Duration,
    batch_size: usize,
    initial_backoff: Duration,
    max_backoff: Duration,
    max_attempts: u32,
    cleanup_interval: Duration,
    retention: Duration,
    cleanup_batch_size: usize,
    events_capacity: usize,
    events_when_full: WhenFull,
    cleanup: bool,
    close_timeout: Duration,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            check_interval: Duration::from_secs(1),
            batch_size: 100,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            max_attempts: 10,
            cleanup_interval: Duration::from_secs(60),
            retention: Duration::from_secs(24 * 3600),
            cleanup_batch_size: 1000,
            events_capacity: 1024,
            events_when_full: WhenFull::Drop,
            cleanup: true,
            close_timeout: Duration::from_secs(5),
        }
    }
}

impl OutboxConfig {
    /// The largest events capacity accepted: crossbeam allocates a bounded
    /// channel's slots up front.
    pub const MAX_EVENTS_CAPACITY: usize = 1 << 20;

    /// The defaults, as [`Default`].
    pub fn new() -> Self {
        Self::default()
    }

    /// How often the dispatcher looks for pending rows when nothing wakes it
    /// (rows added by another process or straight into the store).
    /// Default 1 s. Adds through the [`Outbox`](crate::outbox::Outbox) wake it at
    /// once regardless.
    #[must_use]
    pub fn with_check_interval(mut self, interval: Duration) -> Self {
        self.check_interval = interval;
        self
    }

    /// How many pending rows the dispatcher reads (and, on PostgreSQL,
    /// claims) at a time. Default 100.
    #[must_use]
    pub fn with_batch_size(mut self, batch: usize) -> Self {
        self.batch_size = batch;
        self
    }

    /// The wait after the first failure in a row of failures; it doubles
    /// with each further one up to `max`. Defaults 100 ms and 30 s.
    #[must_use]
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max;
        self
    }

    /// How many failed sends (for reasons of the row's own) dead-letter a
    /// row. Default 10.
    #[must_use]
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Whether this outbox runs the cleanup thread. Default on. Turn it off
    /// when another process cleans the same store (an outbox started with
    /// [`Outbox::start_cleanup`](crate::outbox::Outbox::start_cleanup), or a
    /// job of the database's own): dispatched rows then stay until it does.
    #[must_use]
    pub fn with_cleanup(mut self, cleanup: bool) -> Self {
        self.cleanup = cleanup;
        self
    }

    /// How often the cleanup thread runs. Default 60 s.
    #[must_use]
    pub fn with_cleanup_interval(mut self, interval: Duration) -> Self {
        self.cleanup_interval = interval;
        self
    }

    /// How long dispatched rows are kept before cleanup removes them.
    /// Default 24 h. Zero removes them at the next cleanup.
    #[must_use]
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// How many rows one cleanup call removes; cleanup repeats until fewer
    /// are left. Default 1000.
    #[must_use]
    pub fn with_cleanup_batch_size(mut self, batch: usize) -> Self {
        self.cleanup_batch_size = batch;
        self
    }

    /// The capacity of the events channel. Default 1024; what happens when
    /// it is full is [`with_events_when_full`](Self::with_events_when_full)'s.
    #[must_use]
    pub fn with_events_capacity(mut self, capacity: usize) -> Self {
        self.events_capacity = capacity;
        self
    }

    /// What happens to an event when the events channel is full: dropped
    /// and counted (the default, [`WhenFull::Drop`]), or waited for until
    /// the reader takes one ([`WhenFull::Wait`], every outcome seen).
    #[must_use]
    pub fn with_events_when_full(mut self, when_full: WhenFull) -> Self {
        self.events_when_full = when_full;
        self
    }

    /// How long [`Outbox::close`](crate::outbox::Outbox::close) waits for the
    /// threads. Default 5 s.
    #[must_use]
    pub fn with_close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// How often the dispatcher looks for pending rows when nothing wakes
    /// it.
    pub fn check_interval(&self) -> Duration {
        self.check_interval
    }

    /// How many pending rows the dispatcher reads at a time.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The wait after the first failure in a row of failures.
    pub fn initial_backoff(&self) -> Duration {
        self.initial_backoff
    }

    /// The longest wait between retries.
    pub fn max_backoff(&self) -> Duration {
        self.max_backoff
    }

    /// How many failed sends dead-letter a row.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// How often the cleanup thread runs.
    pub fn cleanup_interval(&self) -> Duration {
        self.cleanup_interval
    }

    /// How long dispatched rows are kept.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// How many rows one cleanup call removes.
    pub fn cleanup_batch_size(&self) -> usize {
        self.cleanup_batch_size
    }

    /// The capacity of the events channel.
    pub fn events_capacity(&self) -> usize {
        self.events_capacity
    }

    /// What happens to an event when the events channel is full.
    pub fn events_when_full(&self) -> WhenFull {
        self.events_when_full
    }

    /// Whether the cleanup thread runs.
    pub fn cleanup(&self) -> bool {
        self.cleanup
    }

    /// How long [`Outbox::close`](crate::outbox::Outbox::close) waits for the
    /// threads.
    pub fn close_timeout(&self) -> Duration {
        self.close_timeout
    }

    /// Checks the configuration. [`Outbox::start_with`](crate::outbox::Outbox::start_with) calls this.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the field: a zero interval, batch
    /// size, events capacity or `max_attempts`, an events capacity over
    /// [`MAX_EVENTS_CAPACITY`](Self::MAX_EVENTS_CAPACITY), a zero initial
    /// backoff, or a maximum backoff below the initial one.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("check_interval", self.check_interval),
            ("cleanup_interval", self.cleanup_interval),
            ("initial_backoff", self.initial_backoff),
        ];
        for (name, value) in positive {
            if value.is_zero() {
                return Err(Error::invalid(name, "must be longer than zero"));
            }
        }
        let counts = [
            ("batch_size", self.batch_size),
            ("cleanup_batch_size", self.cleanup_batch_size),
            ("events_capacity", self.events_capacity),
            (
                "max_attempts",
                usize::try_from(self.max_attempts).unwrap_or(usize::MAX),
            ),
        ];
        for (name, value) in counts {
            if value == 0 {
                return Err(Error::invalid(name, "must be at least 1"));
            }
        }
        if self.events_capacity > Self::MAX_EVENTS_CAPACITY {
            return Err(Error::invalid(
                "events_capacity",
                format!(
                    "{} is over the most, {}",
                    self.events_capacity,
                    Self::MAX_EVENTS_CAPACITY
                ),
            ));
        }
        if self.max_backoff < self.initial_backoff {
            return Err(Error::invalid(
                "max_backoff",
                format!(
                    "{:?} is below the initial backoff {:?}",
                    self.max_backoff, self.initial_backoff
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_configs_name_the_field() {
        let cases = [
            (OutboxConfig::default().with_batch_size(0), "batch_size"),
            (
                OutboxConfig::default().with_check_interval(Duration::ZERO),
                "check_interval",
            ),
            (OutboxConfig::default().with_max_attempts(0), "max_attempts"),
            (
                OutboxConfig::default().with_events_capacity(0),
                "events_capacity",
            ),
            (
                OutboxConfig::default().with_events_capacity(usize::MAX),
                "events_capacity",
            ),
            (
                OutboxConfig::default()
                    .with_backoff(Duration::from_secs(2), Duration::from_secs(1)),
                "max_backoff",
            ),
        ];
        for (config, field) in cases {
            match config.validate() {
                Err(Error::InvalidArgument { name, .. }) => assert_eq!(name, field),
                other => panic!("expected InvalidArgument for {field}, got {other:?}"),
            }
        }
    }
}
