//! [`Outbox`]: adds rows to its store and owns the dispatcher and cleanup
//! threads that send and clean them up.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use crate::error::{Error, Result};
use crate::message::Message;
use crate::outbox::cleaner::Cleaner;
use crate::outbox::config::OutboxConfig;
use crate::outbox::dispatcher::Dispatcher;
use crate::outbox::event::OutboxEvent;
use crate::outbox::reporter::Reporter;
use crate::outbox::stats::{OutboxCounters, OutboxStats};
use crate::outbox::store::OutboxStore;
use crate::outbox::wake::Wake;
use crate::sink::Sink;
use crate::thread::{self, join_all, lock, Worker};

/// The transactional outbox: adds rows to its store and dispatches them to
/// its [`Sink`] on its own threads.
///
/// The **dispatcher** (`syncmq-outbox-send`) reads up to `batch_size`
/// pending rows, sends their messages one by one in id order, flushes the
/// sink (which confirms them all, for sinks that pipeline) and marks the
/// sent ones dispatched in one store call. It sleeps on a `Condvar` that
/// every add through the `Outbox` signals, so a row is on its way the
/// moment its transaction commits; the check interval is only a fallback
/// for rows written by another process or straight into the store. A
/// failed send stops the batch (so order holds), backs off (doubling from
/// `initial_backoff` to `max_backoff`, with jitter) and starts again from
/// the first unsent row. A row that failed `max_attempts` times for a
/// reason of its own is dead-lettered and the rows behind it go on; a sink
/// that is down is waited out without counting against any row (see
/// [`Sink`]'s errors). When a flush of several rows fails for a reason of
/// one message's own, the dispatcher sends the next pass one row per
/// flush, so that the failure is counted against that row alone.
///
/// The **cleanup** thread (`syncmq-outbox-clean`) wakes every
/// `cleanup_interval` and removes dispatched rows older than `retention`, in
/// batches of `cleanup_batch_size`. The two need not run together:
/// [`OutboxConfig::with_cleanup`]`(false)` starts the dispatcher alone (for
/// a store another process cleans), and [`start_cleanup`](Self::start_cleanup)
/// the cleanup alone, so one process can dispatch and another clean the
/// same PostgreSQL table.
///
/// Outcomes go to a bounded channel ([`events`](Self::events)): when nobody
/// reads, events are dropped and counted
/// ([`dropped_events`](Self::dropped_events)), never waited on, unless the
/// config asks to wait ([`WhenFull::Wait`](crate::outbox::WhenFull::Wait)).
/// [`close`](Self::close) (or dropping the outbox) wakes both threads and
/// joins them within the close timeout.
///
/// ```
/// use syncmq::outbox::MemoryOutboxStore;
/// use syncmq::Message;
/// use syncmq::outbox::{Outbox, OutboxEvent};
///
/// # fn main() -> syncmq::Result<()> {
/// let outbox = Outbox::start(MemoryOutboxStore::new(), |m: &Message| {
///     println!("sending {} bytes", m.body().len());
///     Ok(())
/// })?;
/// let id = outbox.add(&Message::new(b"invoice 7 paid".to_vec()))?;
/// let event = outbox.events().recv().unwrap();
/// assert!(matches!(event, OutboxEvent::Dispatched { id: sent } if sent == id));
/// outbox.close()?;
/// # Ok(())
/// # }
/// ```
pub struct Outbox<S: OutboxStore> {
    store: Arc<S>,
    wake: Arc<Wake>,
    events: Receiver<OutboxEvent>,
    counters: Arc<OutboxCounters>,
    workers: Mutex<Vec<Worker<()>>>,
    /// Dropped by `close`, which ends a wait for a reader of the events.
    closing: Mutex<Option<Sender<()>>>,
    config: OutboxConfig,
}

impl<S: OutboxStore> std::fmt::Debug for Outbox<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("closed", &self.wake.is_closed())
            .field("dropped_events", &self.dropped_events())
            .finish_non_exhaustive()
    }
}

impl<S: OutboxStore> Outbox<S> {
    /// Starts dispatching the rows of `store` to `sink` with the default
    /// [`OutboxConfig`].
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the OS refuses a thread.
    pub fn start(store: S, sink: impl Sink) -> Result<Self> {
        Self::start_with(store, sink, OutboxConfig::default())
    }

    /// Starts dispatching the rows of `store` to `sink` with `config`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a bad config, [`Error::Io`] when
    /// the OS refuses a thread.
    pub fn start_with(store: S, sink: impl Sink, config: OutboxConfig) -> Result<Self> {
        let (outbox, reporter) = Outbox::new(store, config)?;
        let dispatcher = Dispatcher::new(
            outbox.store.clone(),
            sink,
            outbox.wake.clone(),
            reporter.clone(),
            outbox.config.clone(),
        );
        // On an error, dropping `outbox` closes what started.
        let sender = thread::spawn("outbox-send", move || dispatcher.run())?;
        lock(&outbox.workers).push(sender);
        if outbox.config.cleanup() {
            outbox.start_cleaner(reporter)?;
        }
        Ok(outbox)
    }

    /// Starts the cleanup thread alone, no dispatcher: removes the rows of
    /// `store` dispatched more than `retention` ago, every
    /// `cleanup_interval`, for outboxes in other processes that dispatch
    /// with [`OutboxConfig::with_cleanup`]`(false)` (outboxer's separate
    /// `Cleanup`). Adds through it are dispatched by those.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a bad config, or one with cleanup
    /// off (it would do nothing); [`Error::Io`] when the OS refuses a
    /// thread.
    pub fn start_cleanup(store: S, config: OutboxConfig) -> Result<Self> {
        if !config.cleanup() {
            return Err(Error::invalid(
                "cleanup",
                "is off, so an outbox that only cleans would do nothing",
            ));
        }
        let (outbox, reporter) = Outbox::new(store, config)?;
        outbox.start_cleaner(reporter)?;
        Ok(outbox)
    }

    /// An outbox on `store` with no thread yet, and the reporter its
    /// threads share.
    fn new(store: S, config: OutboxConfig) -> Result<(Self, Reporter)> {
        config.validate()?;
        let (events_tx, events) = crossbeam_channel::bounded(config.events_capacity());
        let (closing_tx, closing) = crossbeam_channel::bounded(0);
        let counters = Arc::new(OutboxCounters::default());
        let reporter = Reporter::new(
            events_tx,
            counters.clone(),
            config.events_when_full(),
            closing,
        );
        let outbox = Outbox {
            store: Arc::new(store),
            wake: Arc::new(Wake::default()),
            events,
            counters,
            workers: Mutex::new(Vec::with_capacity(2)),
            closing: Mutex::new(Some(closing_tx)),
            config,
        };
        Ok((outbox, reporter))
    }

    /// Starts the cleanup thread.
    fn start_cleaner(&self, reporter: Reporter) -> Result<()> {
        let cleaner = Cleaner::new(
            self.store.clone(),
            self.wake.clone(),
            reporter,
            self.config.clone(),
        );
        let worker = thread::spawn("outbox-clean", move || cleaner.run())?;
        lock(&self.workers).push(worker);
        Ok(())
    }

    /// Adds a message in a transaction of its own and wakes the dispatcher.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after [`close`](Self::close) (nothing is written),
    /// or the store's errors (then no row was added).
    pub fn add(&self, message: &Message) -> Result<u64> {
        self.check_open()?;
        let id = self.store.add(message)?;
        self.wake.notify();
        Ok(id)
    }

    /// Runs `f` in a store transaction, adds the message in the same
    /// transaction, commits both and wakes the dispatcher. Returns the row's
    /// id and what `f` returned.
    ///
    /// # Errors
    ///
    /// What `f` returned (then neither its writes nor the row exist),
    /// [`Error::Closed`] after [`close`](Self::close), or the store's
    /// errors, all as `E`.
    pub fn add_within_tx<T, E, F>(&self, message: &Message, f: F) -> Result<(u64, T), E>
    where
        F: for<'t> FnOnce(&mut S::Tx<'t>) -> Result<T, E>,
        E: From<Error>,
    {
        self.check_open()?;
        let added = self.store.add_within_tx(message, f)?;
        self.wake.notify();
        Ok(added)
    }

    /// Gives a dead letter another chance as a new row at the end of the
    /// queue (see [`OutboxStore::requeue_dead_letter`]) and wakes the
    /// dispatcher. Returns the new id.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after [`close`](Self::close), or the store's
    /// errors.
    pub fn requeue_dead_letter(&self, id: u64) -> Result<u64> {
        self.check_open()?;
        let new_id = self.store.requeue_dead_letter(id)?;
        self.wake.notify();
        Ok(new_id)
    }

    /// Wakes the dispatcher, for rows written straight into the store (for
    /// example in a transaction the caller manages).
    pub fn notify(&self) {
        self.wake.notify();
    }

    /// The store, for reads (counts, dead letters) and for rows the caller
    /// writes itself.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// The configuration the outbox runs with.
    pub fn config(&self) -> &OutboxConfig {
        &self.config
    }

    /// The outcomes of sends and cleanups. The channel is bounded; when it
    /// is full, new events are dropped, never waited for, unless the config
    /// says [`WhenFull::Wait`](crate::outbox::WhenFull::Wait). Clones share
    /// the events. It ends (disconnects) after [`close`](Self::close).
    pub fn events(&self) -> &Receiver<OutboxEvent> {
        &self.events
    }

    /// How many events were dropped because the events channel was full.
    pub fn dropped_events(&self) -> u64 {
        self.counters.dropped_events.get()
    }

    /// The store's rows in each state, and what the dispatcher and
    /// cleanup threads did since the start.
    ///
    /// # Errors
    ///
    /// The store's errors reading its counts (it is read each time).
    pub fn stats(&self) -> Result<OutboxStats> {
        let rows = self.store.counts()?;
        self.counters.observe(rows);
        Ok(self.counters.stats(rows))
    }

    /// Stops the dispatcher and cleanup threads and joins them. A send in
    /// progress finishes first; rows not yet sent stay pending for the next
    /// start. Calling it again does nothing and returns `Ok`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when a thread did not stop within the close
    /// timeout (a sink whose `send` does not return),
    /// [`Error::Panicked`] when one panicked.
    pub fn close(&self) -> Result<()> {
        self.wake.close();
        drop(lock(&self.closing).take());
        let workers = std::mem::take(&mut *lock(&self.workers));
        join_all(workers, Instant::now() + self.config.close_timeout())
    }

    fn check_open(&self) -> Result<()> {
        if self.wake.is_closed() {
            return Err(Error::closed("outbox"));
        }
        Ok(())
    }
}

impl<S: OutboxStore> Drop for Outbox<S> {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::error!("outbox did not close cleanly: {e}");
        }
    }
}
