//! [`Outbox`]: the owner of the dispatcher and cleanup threads, and the
//! [`OutboxConfig`] that tunes them.
//!
//! The **dispatcher** (`syncmq-outbox-send`) reads up to `batch_size` pending
//! rows, sends them one by one in id order, flushes the stream (which
//! confirms them all, for streams that pipeline) and marks the sent ones
//! dispatched in one store call. It sleeps on a `Condvar` that every add
//! through the [`Outbox`] signals, so a row is on its way the moment its
//! transaction commits; the check interval is only a fallback for rows
//! written by another process or straight into the store. A failed send
//! stops the batch (so order holds), backs off (doubling from
//! `initial_backoff` to `max_backoff`) and starts again from the first
//! unsent row. A row that failed `max_attempts` times for a reason of its
//! own goes dead and the rows behind it go on; a stream that is down is
//! waited out without counting against any row.
//!
//! The **cleanup** thread (`syncmq-outbox-clean`) wakes every
//! `cleanup_interval` and removes dispatched rows older than `retention`, in
//! batches of `cleanup_batch_size`.
//!
//! Outcomes go to a bounded channel ([`Outbox::events`]) with `try_send`:
//! when nobody reads, events are dropped and counted
//! ([`Outbox::dropped_events`]), never waited on. [`Outbox::stop`] (or
//! dropping the outbox) wakes both threads and joins them within
//! `stop_timeout`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::error::{Error, Result};
use crate::message::Message;
use crate::outbox::signal::Signal;
use crate::outbox::stream::EventStream;
use crate::outbox::{OutboxEvent, OutboxRecord, OutboxStore};
use crate::thread::{self, Worker};

/// How an [`Outbox`] dispatches and cleans up. Every field has a default
/// that suits most programs; change the few that matter.
///
/// ```
/// use std::time::Duration;
/// use syncmq::outbox::OutboxConfig;
///
/// let config = OutboxConfig::default()
///     .with_retention(Duration::from_secs(3600))
///     .with_max_attempts(5);
/// assert!(config.validate().is_ok());
/// assert!(OutboxConfig::default().with_batch_size(0).validate().is_err());
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
    stop_timeout: Duration,
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
            stop_timeout: Duration::from_secs(5),
        }
    }
}

impl OutboxConfig {
    /// The largest events capacity accepted: crossbeam allocates a bounded
    /// channel's slots up front.
    pub const MAX_EVENTS_CAPACITY: usize = 1 << 20;

    /// How often the dispatcher looks for pending rows when nothing wakes it
    /// (rows added by another process or straight into the store).
    /// Default 1 s. Adds through the [`Outbox`] wake it at once regardless.
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

    /// How many failed sends (for reasons of the row's own) make a row dead.
    /// Default 10.
    #[must_use]
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
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

    /// The capacity of the events channel. Default 1024; when it is full,
    /// new events are dropped (and counted), never waited for.
    #[must_use]
    pub fn with_events_capacity(mut self, capacity: usize) -> Self {
        self.events_capacity = capacity;
        self
    }

    /// How long [`Outbox::stop`] waits for the threads. Default 5 s.
    #[must_use]
    pub fn with_stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }

    /// Checks the configuration. [`Outbox::start_with`] calls this.
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
            ("max_attempts", self.max_attempts as usize),
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

/// The transactional outbox: adds rows to its store and dispatches them to
/// its stream on its own threads. See the [module docs](self).
///
/// ```
/// use syncmq::outbox::{MemoryOutboxStore, Outbox, OutboxEvent, OutboxRecord};
/// use syncmq::Message;
///
/// # fn main() -> syncmq::Result<()> {
/// let outbox = Outbox::start(MemoryOutboxStore::new(), |r: &OutboxRecord| {
///     println!("sending {}", r.id);
///     Ok(())
/// })?;
/// let id = outbox.add(&Message::new(b"invoice 7 paid".to_vec()))?;
/// assert_eq!(outbox.events().recv().unwrap(), OutboxEvent::Dispatched { id });
/// outbox.stop()?;
/// # Ok(())
/// # }
/// ```
pub struct Outbox<S: OutboxStore> {
    store: Arc<S>,
    signal: Arc<Signal>,
    events: Receiver<OutboxEvent>,
    dropped: Arc<AtomicU64>,
    workers: Mutex<Vec<Worker<()>>>,
    stop_timeout: Duration,
}

impl<S: OutboxStore> std::fmt::Debug for Outbox<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("stopped", &self.signal.is_stopped())
            .field("dropped_events", &self.dropped_events())
            .finish_non_exhaustive()
    }
}

impl<S: OutboxStore> Outbox<S> {
    /// Starts dispatching the rows of `store` to `stream` with the default
    /// [`OutboxConfig`].
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] when the OS refuses a thread.
    pub fn start(store: S, stream: impl EventStream) -> Result<Self> {
        Self::start_with(store, stream, OutboxConfig::default())
    }

    /// Starts dispatching the rows of `store` to `stream` with `config`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a bad config, [`Error::Storage`] when
    /// the OS refuses a thread.
    pub fn start_with(store: S, stream: impl EventStream, config: OutboxConfig) -> Result<Self> {
        config.validate()?;
        let store = Arc::new(store);
        let signal = Arc::new(Signal::default());
        let (events_tx, events) = crossbeam_channel::bounded(config.events_capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        let reporter = Reporter {
            events: events_tx,
            dropped: dropped.clone(),
        };
        let dispatcher = Dispatcher {
            store: store.clone(),
            stream,
            signal: signal.clone(),
            reporter: reporter.clone(),
            config: config.clone(),
            failures: 0,
        };
        let mut workers = vec![thread::spawn("outbox-send", move || dispatcher.run())?];
        let cleaner = Cleaner {
            store: store.clone(),
            signal: signal.clone(),
            reporter,
            config: config.clone(),
        };
        match thread::spawn("outbox-clean", move || cleaner.run()) {
            Ok(worker) => workers.push(worker),
            Err(e) => {
                signal.stop();
                for worker in workers {
                    let _ = worker.join_timeout(config.stop_timeout);
                }
                return Err(e);
            }
        }
        Ok(Outbox {
            store,
            signal,
            events,
            dropped,
            workers: Mutex::new(workers),
            stop_timeout: config.stop_timeout,
        })
    }

    /// Adds a message in a transaction of its own and wakes the dispatcher.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after [`stop`](Self::stop) (nothing is written),
    /// or the store's errors (then no row was added).
    pub fn add(&self, message: &Message) -> Result<u64> {
        self.check_open()?;
        let id = self.store.add(message)?;
        self.signal.notify();
        Ok(id)
    }

    /// Runs `f` in a store transaction, adds the message in the same
    /// transaction, commits both and wakes the dispatcher. Returns the row's
    /// id and what `f` returned.
    ///
    /// # Errors
    ///
    /// What `f` returned (then neither its writes nor the row exist),
    /// [`Error::Closed`] after [`stop`](Self::stop), or the store's errors,
    /// all as `E`.
    pub fn add_within_tx<T, E, F>(&self, message: &Message, f: F) -> Result<(u64, T), E>
    where
        F: for<'t> FnOnce(&mut S::Tx<'t>) -> Result<T, E>,
        E: From<Error>,
    {
        self.check_open()?;
        let added = self.store.add_within_tx(message, f)?;
        self.signal.notify();
        Ok(added)
    }

    /// Gives a dead row another chance as a new row at the end of the
    /// queue (see [`OutboxStore::requeue_dead`]) and wakes the dispatcher.
    /// Returns the new id.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after [`stop`](Self::stop), or the store's errors.
    pub fn requeue_dead(&self, id: u64) -> Result<u64> {
        self.check_open()?;
        let new_id = self.store.requeue_dead(id)?;
        self.signal.notify();
        Ok(new_id)
    }

    /// Wakes the dispatcher, for rows written straight into the store (for
    /// example in a transaction the caller manages).
    pub fn notify(&self) {
        self.signal.notify();
    }

    /// The store, for reads (counts, dead rows) and for rows the caller
    /// writes itself.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// The outcomes of sends and cleanups. The channel is bounded; when it
    /// is full, new events are dropped, never waited for. Clones share the
    /// events. It ends (disconnects) after [`stop`](Self::stop).
    pub fn events(&self) -> &Receiver<OutboxEvent> {
        &self.events
    }

    /// How many events were dropped because the events channel was full.
    pub fn dropped_events(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Stops the dispatcher and cleanup threads and joins them. A send in
    /// progress finishes first; rows not yet sent stay pending for the next
    /// start. Calling it again does nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when a thread did not stop within the stop
    /// timeout (a stream whose `send` does not return),
    /// [`Error::Panicked`] when one panicked.
    pub fn stop(&self) -> Result<()> {
        self.signal.stop();
        let workers =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(PoisonError::into_inner));
        let deadline = Instant::now() + self.stop_timeout;
        let mut first_error = None;
        for worker in workers {
            if let Err(e) = worker.join_deadline(deadline) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn check_open(&self) -> Result<()> {
        if self.signal.is_stopped() {
            return Err(Error::closed("outbox"));
        }
        Ok(())
    }
}

impl<S: OutboxStore> Drop for Outbox<S> {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            log::error!("outbox did not stop cleanly: {e}");
        }
    }
}

/// Sends events without ever blocking.
#[derive(Clone)]
struct Reporter {
    events: Sender<OutboxEvent>,
    dropped: Arc<AtomicU64>,
}

impl Reporter {
    fn report(&self, event: OutboxEvent) {
        match self.events.try_send(event) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(event)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                log::trace!("outbox events channel full; dropped {event:?}");
            }
        }
    }
}

/// True for errors that say the destination is down, not that the row is
/// bad: they are retried without counting against the row.
fn stream_is_down(error: &Error) -> bool {
    error.is_transient() || matches!(error, Error::Closed(_))
}

struct Dispatcher<S, T> {
    store: Arc<S>,
    stream: T,
    signal: Arc<Signal>,
    reporter: Reporter,
    config: OutboxConfig,
    /// Failures in a row, for the backoff; reset by every success.
    failures: u32,
}

/// What one pass over a batch came to.
enum Pass {
    /// Every row was handled; read the next batch at once if it was full.
    Done { full: bool },
    /// Something failed: back off, then start again.
    Failed,
}

impl<S: OutboxStore, T: EventStream> Dispatcher<S, T> {
    fn run(mut self) {
        log::debug!("outbox dispatcher started");
        while !self.signal.is_stopped() {
            // Read the count before the store: an add that commits after the
            // read below bumps it, and the wait returns at once.
            let seen = self.signal.adds();
            let batch = match self.store.pending(self.config.batch_size) {
                Ok(batch) => batch,
                Err(error) => {
                    log::warn!("outbox: reading pending rows failed: {error}");
                    self.reporter.report(OutboxEvent::StoreFailed { error });
                    if self.back_off() {
                        break;
                    }
                    continue;
                }
            };
            if batch.is_empty() {
                self.failures = 0;
                if self.signal.wait_for_add(seen, self.config.check_interval) {
                    break;
                }
                continue;
            }
            match self.pass(&batch) {
                Pass::Done { full: true } => {}
                Pass::Done { full: false } => {
                    if self.signal.wait_for_add(seen, self.config.check_interval) {
                        break;
                    }
                }
                Pass::Failed => {
                    if self.back_off() {
                        break;
                    }
                }
            }
        }
        log::debug!("outbox dispatcher stopped");
    }

    /// Sends the batch in order, marking what was sent. Stops at the first
    /// failure so that no row overtakes one still to be retried.
    fn pass(&mut self, batch: &[OutboxRecord]) -> Pass {
        let mut sent = Vec::with_capacity(batch.len());
        let mut failed = false;
        for record in batch {
            if self.signal.is_stopped() {
                break;
            }
            match self.send(record) {
                Ok(()) => sent.push(record.id),
                Err(error) => {
                    failed = !self.handle_failure(record, error);
                    if failed {
                        break;
                    }
                }
            }
        }
        if !sent.is_empty() {
            if let Err(error) = self.flush() {
                // Not confirmed: the rows stay pending and are sent again.
                log::warn!(
                    "outbox: the stream did not confirm {} rows: {error}",
                    sent.len()
                );
                self.reporter
                    .report(OutboxEvent::FlushFailed { ids: sent, error });
                return Pass::Failed;
            }
            if let Err(error) = self.store.mark_dispatched(&sent) {
                // The rows stay pending and are sent again: at least once.
                log::warn!(
                    "outbox: marking {} rows dispatched failed: {error}",
                    sent.len()
                );
                self.reporter.report(OutboxEvent::StoreFailed { error });
                return Pass::Failed;
            }
            self.failures = 0;
            for id in sent {
                self.reporter.report(OutboxEvent::Dispatched { id });
            }
        }
        if failed {
            Pass::Failed
        } else {
            Pass::Done {
                full: batch.len() >= self.config.batch_size,
            }
        }
    }

    /// One send; a panicking stream is a failure of that row, not the end
    /// of the dispatcher.
    fn send(&mut self, record: &OutboxRecord) -> Result<()> {
        catch_unwind(AssertUnwindSafe(|| self.stream.send(record))).unwrap_or_else(|payload| {
            Err(panicked(
                format!("outbox stream sending row {}", record.id),
                payload,
            ))
        })
    }

    /// The stream's flush, panics caught as in [`send`](Self::send).
    fn flush(&mut self) -> Result<()> {
        catch_unwind(AssertUnwindSafe(|| self.stream.flush()))
            .unwrap_or_else(|payload| Err(panicked("outbox stream flush".into(), payload)))
    }

    /// Counts a failed send. Returns true when the row went dead, so the
    /// pass may go on with the rows behind it.
    fn handle_failure(&mut self, record: &OutboxRecord, error: Error) -> bool {
        if stream_is_down(&error) {
            log::debug!("outbox: stream down sending row {}: {error}", record.id);
            self.reporter.report(OutboxEvent::Failed {
                id: record.id,
                attempts: record.attempts,
                error,
            });
            return false;
        }
        let attempts = match self.store.record_failure(record.id, &error.to_string()) {
            Ok(attempts) => attempts,
            Err(store_error) => {
                self.reporter
                    .report(OutboxEvent::StoreFailed { error: store_error });
                record.attempts.saturating_add(1)
            }
        };
        log::warn!(
            "outbox: sending row {} failed (attempt {attempts} of {}): {error}",
            record.id,
            self.config.max_attempts
        );
        self.reporter.report(OutboxEvent::Failed {
            id: record.id,
            attempts,
            error,
        });
        if attempts < self.config.max_attempts {
            return false;
        }
        match self.store.mark_dead(record.id) {
            Ok(()) => {
                log::error!(
                    "outbox: row {} is dead after {attempts} attempts",
                    record.id
                );
                self.reporter.report(OutboxEvent::Dead { id: record.id });
                true
            }
            Err(error) => {
                self.reporter.report(OutboxEvent::StoreFailed { error });
                false
            }
        }
    }

    /// Sleeps out the backoff for the failures so far. True when stopped.
    fn back_off(&mut self) -> bool {
        let wait = backoff(
            self.failures,
            self.config.initial_backoff,
            self.config.max_backoff,
        );
        self.failures = self.failures.saturating_add(1);
        self.signal.sleep(wait)
    }
}

fn panicked(what: String, payload: Box<dyn std::any::Any + Send>) -> Error {
    Error::Panicked {
        what,
        message: payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into()),
    }
}

/// `initial` doubled `failures` times, at most `max`.
fn backoff(failures: u32, initial: Duration, max: Duration) -> Duration {
    let factor = 1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX);
    initial.saturating_mul(factor).min(max)
}

struct Cleaner<S> {
    store: Arc<S>,
    signal: Arc<Signal>,
    reporter: Reporter,
    config: OutboxConfig,
}

impl<S: OutboxStore> Cleaner<S> {
    fn run(self) {
        while !self.signal.sleep(self.config.cleanup_interval) {
            self.clean();
        }
    }

    fn clean(&self) {
        let Some(older_than) = SystemTime::now().checked_sub(self.config.retention) else {
            return;
        };
        let batch = self.config.cleanup_batch_size;
        let mut removed = 0;
        while !self.signal.is_stopped() {
            match self.store.remove_dispatched(older_than, batch) {
                Ok(n) => {
                    removed += n;
                    if n < batch as u64 {
                        break;
                    }
                }
                Err(error) => {
                    log::warn!("outbox: cleanup failed: {error}");
                    self.reporter.report(OutboxEvent::StoreFailed { error });
                    break;
                }
            }
        }
        if removed > 0 {
            log::debug!("outbox: cleanup removed {removed} dispatched rows");
            self.reporter.report(OutboxEvent::Cleaned { removed });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let ms = Duration::from_millis;
        assert_eq!(backoff(0, ms(10), ms(100)), ms(10));
        assert_eq!(backoff(1, ms(10), ms(100)), ms(20));
        assert_eq!(backoff(3, ms(10), ms(100)), ms(80));
        assert_eq!(backoff(4, ms(10), ms(100)), ms(100));
        assert_eq!(backoff(u32::MAX, ms(10), ms(100)), ms(100));
    }

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
