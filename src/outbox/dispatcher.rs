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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::error::{Error, Result};
use crate::message::Message;
use crate::outbox::config::OutboxConfig;
use crate::outbox::signal::Signal;
use crate::outbox::stream::EventStream;
use crate::outbox::threads::{Cleaner, Dispatcher, Reporter};
use crate::outbox::{OutboxEvent, OutboxStore};
use crate::thread::{self, Worker};
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
/// let event = outbox.events().recv().unwrap();
/// assert!(matches!(event, OutboxEvent::Dispatched { id: sent } if sent == id));
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
    /// [`Error::Io`] when the OS refuses a thread.
    pub fn start(store: S, stream: impl EventStream) -> Result<Self> {
        Self::start_with(store, stream, OutboxConfig::default())
    }

    /// Starts dispatching the rows of `store` to `stream` with `config`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a bad config, [`Error::Io`] when
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
