//! The durable queue engine (the ppmq design on fjall): topics with named
//! subscribers, a queue per subscriber and priority, acks with deadlines,
//! redelivery, dead letters, dedupe and expiry.
//!
//! 1. [`store`]: the [`Store`] trait, with [`FjallStore`] (on disk, the
//!    default) and [`MemoryStore`] (tests) under it.
//! 2. [`config`]: [`QueueConfig`] and [`TopicConfig`], serde structs.
//! 3. the engine: publishing, recovery and bookkeeping (`engine.rs`),
//!    consuming (`delivery.rs`), group commit (`commit.rs`).
//! 4. [`Subscriber`]: a consumer's handle.
//!
//! # Guarantees
//!
//! - **A publish that returned `Ok` is never lost**: with
//!   [`Durability::Durable`] (the default) it is fsynced before `publish`
//!   returns, and survives `kill -9` and power loss; with
//!   [`Durability::Buffered`] it is in the OS and survives `kill -9`.
//!   Concurrent publishers share one fsync (group commit).
//! - **Pipelined**: [`Queue::send`] writes without waiting and returns a
//!   [`Receipt`]; nothing sent is durable until the receipt's
//!   [`wait`](Receipt::wait) returned `Ok` (then it, and every earlier send,
//!   is never lost). After a crash, sends not waited for may be lost.
//! - Each `publish` is **one atomic batch**: the message once, an entry per
//!   subscriber, the counters. After a crash all of it is there or none.
//! - **At-least-once**: an entry leaves the store only when acked (or
//!   dead-lettered, or expired). Nacked, reset and timed-out deliveries come
//!   back at the front; after a restart every unacked delivery comes back,
//!   counted as redelivered: delivery counts are stored when an entry is
//!   taken, so `max_deliveries` holds across crashes (no extra delivery per
//!   process crash; see `delivery.rs`'s docs for power loss).
//!   An ack is written at once and made durable by the next group commit
//!   or at close, so after a crash an acked message may come again, never
//!   the reverse.
//! - Priority 0 first, FIFO within a priority level.
//! - **A full disk** is an [`Error::Storage`] saying so. fjall accepts no
//!   write after a failed one, even once space is free: close the queue
//!   and open it again (every publish that returned `Ok` is there).
//! - Corrupt stored bytes are an [`Error::Corrupt`] naming the key (and
//!   the table file, for a damaged fjall block); the entry stays where it
//!   is. An entry whose message cannot be read is set aside with an ERROR
//!   log and the rest of the queue is still served (see `next_batch`).
//!
//! ```
//! use syncmq::queue::{Queue, QueueConfig, TopicConfig};
//! use syncmq::Message;
//!
//! # fn main() -> syncmq::Result<()> {
//! let queue = Queue::memory(
//!     QueueConfig::new().with_topic(TopicConfig::new("orders", ["billing", "shipping"])),
//! )?;
//! queue.publish("orders", &[Message::new(b"order 1".to_vec())])?;
//! let billing = queue.subscribe("orders", "billing")?;
//! let got = billing.recv()?;
//! assert_eq!(got.message.body(), b"order 1");
//! billing.ack(&[got.id])?;
//! # Ok(())
//! # }
//! ```

pub mod config;
pub mod store;

mod commit;
mod delivery;
mod engine;
mod fjall_store;
mod keys;
mod memory_store;
mod receipt;
mod subscriber;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use config::{Durability, QueueConfig, TopicConfig};
pub use fjall_store::FjallStore;
pub use memory_store::MemoryStore;
pub use receipt::Receipt;
pub use store::{Batch, Op, Space, Store};
pub use subscriber::{DeadLetter, EntryId, Interrupter, Received, Subscriber, SubscriberStats};

use crate::error::{Error, Result};
use crate::message::Message;
use crate::thread::{self, Worker};
use engine::{Shared, State};

/// How long `close` waits for the sweeper to end.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The queue engine. See the module docs.
///
/// Owns one thread, `syncmq-queue-sweep` (ack deadlines), which
/// [`close`](Queue::close) or drop stops and joins; group commit runs on
/// the publishers' own threads. Share a queue between threads with an
/// `Arc`.
pub struct Queue {
    shared: Arc<Shared>,
    workers: Mutex<Vec<Worker<()>>>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").finish_non_exhaustive()
    }
}

impl Queue {
    /// Opens (or creates) the queue in directory `path`, on fjall, and
    /// declares `config`'s topics.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the bad config field;
    /// [`Error::Storage`] when fjall cannot open the directory (another
    /// process has it open, say); [`Error::Corrupt`] for unreadable records,
    /// or naming a journal file damaged before its end (a torn tail after a
    /// crash opens; see [`FjallStore`]).
    pub fn open(path: impl AsRef<Path>, config: QueueConfig) -> Result<Self> {
        config.validate()?;
        Self::with_store(Arc::new(FjallStore::open(path)?), config)
    }

    /// A queue in memory, gone when dropped: for tests and throwaway work.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub fn memory(config: QueueConfig) -> Result<Self> {
        Self::with_store(Arc::new(MemoryStore::new()), config)
    }

    /// A queue on any [`Store`].
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub fn with_store(store: Arc<dyn Store>, config: QueueConfig) -> Result<Self> {
        config.validate()?;
        let mut state = State::load(store)?;
        for (i, topic) in config.topics.iter().enumerate() {
            state.declare(topic.clone(), &format!("topics[{i}]"))?;
        }
        let shared = Arc::new(Shared::new(
            state,
            config.durability,
            config.max_message_bytes,
        ));
        let sweeper_shared = shared.clone();
        let workers = vec![thread::spawn("queue-sweep", move || {
            sweep(&sweeper_shared)
        })?];
        Ok(Queue {
            shared,
            workers: Mutex::new(workers),
        })
    }

    /// Creates a topic, or updates it (subscribers may be added, priority
    /// levels raised).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the field; [`Error::Closed`].
    pub fn declare_topic(&self, topic: TopicConfig) -> Result<()> {
        let mut state = self.shared.lock();
        if state.closed {
            return Err(Error::closed("queue"));
        }
        state.declare(topic, "topic")
    }

    /// The configuration of every topic, sorted by name.
    pub fn topics(&self) -> Vec<TopicConfig> {
        let state = self.shared.lock();
        let mut topics: Vec<_> = state.topics.values().map(|t| t.config.clone()).collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        topics
    }

    /// Publishes `messages` to every subscriber of `topic` in one atomic
    /// batch; durable (or buffered, as configured) when it returns `Ok`.
    /// The same as [`send`](Self::send) then [`Receipt::wait`]; concurrent
    /// publishers share one fsync (group commit).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown topic; [`Error::InvalidArgument`]
    /// for a message over the
    /// size limit or a message key over 65,531 bytes (the most fjall
    /// stores in a key), naming the message (nothing is written then);
    /// [`Error::Closed`]; [`Error::Storage`] when the write or the sync
    /// failed (the messages may or may not be stored). After a failed write
    /// (a full disk, say: the error says so) every later write fails the
    /// same way until the queue is closed and opened again; see
    /// [`FjallStore`]'s "A full disk". [`Error::Panicked`] if the storage
    /// engine panicked (nothing is lost: later publishes never reuse a
    /// sequence number).
    pub fn publish(&self, topic: &str, messages: &[Message]) -> Result<()> {
        self.send(topic, messages)?.wait()
    }

    /// Pipelined publish: writes `messages` to every subscriber of `topic`
    /// in one atomic batch now, **without** waiting for the sync, and
    /// returns a [`Receipt`] whose [`wait`](Receipt::wait) returns once the
    /// batch is durable (fsynced with [`Durability::Durable`], in the OS
    /// with [`Durability::Buffered`]).
    ///
    /// Nothing sent is durable until its receipt's `wait` returned `Ok`:
    /// after a crash, sends not waited for may be lost, waited ones never
    /// are. Waiting for a receipt also covers every earlier send. A
    /// producer keeping up to W receipts outstanding (waiting for the
    /// oldest when the window is full) shares each fsync among up to W of
    /// its messages, like RabbitMQ publisher confirms. The messages are
    /// visible to subscribers as soon as `send` returns.
    ///
    /// ```
    /// use syncmq::queue::{Queue, QueueConfig, TopicConfig};
    /// use syncmq::Message;
    /// use std::collections::VecDeque;
    ///
    /// # fn main() -> syncmq::Result<()> {
    /// let queue = Queue::memory(QueueConfig::new().with_topic(TopicConfig::new("t", ["s"])))?;
    /// let mut window = VecDeque::new();
    /// for i in 0..1000u32 {
    ///     if window.len() == 64 {
    ///         window.pop_front().map(syncmq::queue::Receipt::wait).transpose()?;
    ///     }
    ///     window.push_back(queue.send("t", &[Message::new(i.to_be_bytes().to_vec())])?);
    /// }
    /// // Durable once the newest is: it covers every earlier send.
    /// window.pop_back().map(syncmq::queue::Receipt::wait).transpose()?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish), less the sync's errors, which
    /// [`Receipt::wait`] returns.
    pub fn send(&self, topic: &str, messages: &[Message]) -> Result<Receipt> {
        let ticket = if messages.is_empty() {
            0
        } else {
            let mut state = self.shared.lock();
            if state.closed {
                return Err(Error::closed("queue"));
            }
            let woken = state.publish(topic, messages, self.shared.max_message_bytes)?;
            for cond in woken {
                cond.notify_all();
            }
            // Under the state lock, so that tickets follow the write order.
            self.shared.committer.written()
        };
        Ok(Receipt {
            shared: self.shared.clone(),
            ticket,
        })
    }

    /// A handle on subscriber `name` of `topic`.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown topic or subscriber;
    /// [`Error::Closed`].
    pub fn subscribe(&self, topic: &str, name: &str) -> Result<Subscriber> {
        let state = self.shared.lock();
        if state.closed {
            return Err(Error::closed("queue"));
        }
        let id = state.sub_id(topic, name)?;
        Ok(Subscriber {
            shared: self.shared.clone(),
            id,
            topic: topic.to_string(),
            name: name.to_string(),
            interrupted: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The counters of every subscriber of `topic`.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown topic.
    pub fn stats(&self, topic: &str) -> Result<Vec<SubscriberStats>> {
        let state = self.shared.lock();
        let ids: Vec<u32> = state.topic(topic)?.subs.iter().map(|(_, id)| *id).collect();
        ids.into_iter().map(|id| state.stats(id)).collect()
    }

    /// Stores application metadata under `key`, durably, next to the queue
    /// (the durable adapter keeps its channel specs here).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a key over 65,531 bytes;
    /// [`Error::Closed`]; [`Error::Storage`].
    pub fn set_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        let state = self.shared.lock();
        if state.closed {
            return Err(Error::closed("queue"));
        }
        keys::check_len("key", "metadata key", key, keys::MAX_META_KEY)?;
        let mut batch = Batch::new();
        batch.put(Space::Meta, keys::meta_app(key), value.to_vec());
        state.store.write(batch)?;
        state.store.sync()
    }

    /// Application metadata stored with [`set_meta`](Self::set_meta).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a key over 65,531 bytes;
    /// [`Error::Storage`].
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        keys::check_len("key", "metadata key", key, keys::MAX_META_KEY)?;
        let state = self.shared.lock();
        state.store.get(Space::Meta, &keys::meta_app(key))
    }

    /// Stops accepting publishes and deliveries, wakes every blocked
    /// receive with [`Error::Closed`], syncs, and joins the queue's threads.
    /// It then checkpoints the store ([`Store::checkpoint`]), so that the
    /// next open has nothing to replay and takes the same time however
    /// many messages were ever written.
    /// Acks and nacks of outstanding deliveries still work; the files close
    /// when the last [`Subscriber`] is dropped. Calling it again does
    /// nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] when the final sync failed; [`Error::Timeout`]
    /// when a thread did not stop in time.
    pub fn close(&self) -> Result<()> {
        let workers =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(PoisonError::into_inner));
        if workers.is_empty() {
            return Ok(());
        }
        let store = {
            let mut state = self.shared.lock();
            state.closed = true;
            for sub in state.subs.values() {
                sub.cond.notify_all();
            }
            state.store.clone()
        };
        self.shared.sweeper.notify_all();
        let (syncs, batches) = self.shared.committer.summary();
        log::debug!("queue: closing; {syncs} syncs covered {batches} durable publishes");
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        let mut first_error = None;
        for w in workers {
            if let Err(e) = w.join_deadline(deadline) {
                first_error.get_or_insert(e);
            }
        }
        // Every send is written by now and none comes after `closed`: this
        // sync settles the receipts still outstanding.
        let synced = store.sync();
        self.shared.committer.settle_all(&synced);
        if let Err(e) = synced {
            first_error.get_or_insert(e);
        } else if let Err(e) = store.checkpoint() {
            // So that the next open has nothing to replay (fjall: memtables
            // to tables); nothing is lost if it fails, the open is slower.
            first_error.get_or_insert(e);
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::warn!("queue: close on drop: {e}");
        }
    }
}

/// The sweeper thread: sleeps on a Condvar until the earliest ack deadline
/// (or until woken because an earlier one appeared), redelivers what timed
/// out, and ends when the queue closes.
fn sweep(shared: &Shared) {
    let mut state = shared.lock();
    loop {
        if state.closed {
            return;
        }
        let now = Instant::now();
        let (woken, next) = state.sweep(now);
        for id in woken {
            if let Some(sub) = state.subs.get(&id) {
                sub.cond.notify_all();
            }
        }
        state.wake_sweeper = false;
        state = match next {
            Some(at) => {
                shared
                    .sweeper
                    .wait_timeout(state, at.saturating_duration_since(now))
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
            None => shared
                .sweeper
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner),
        };
    }
}
