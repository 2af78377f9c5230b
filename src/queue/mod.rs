//! The durable queue engine (the ppmq design on fjall): topics with named
//! subscribers, a queue per subscriber and priority, acks with deadlines,
//! redelivery, dead letters, dedupe and expiry.
//!
//! - [`Queue`]: opens a directory ([`FjallStore`]) or any [`Store`]
//!   ([`MemoryStore`] for tests), publishes, and hands out
//!   [`Subscriber`]s.
//! - [`QueueConfig`] and [`TopicConfig`]: serde structs with builders.
//! - [`Subscriber`]: a consumer's handle: receives ([`Received`]), acks by
//!   [`EntryId`], nacks, [`DeadLetter`]s, [`SubscriberStats`], and
//!   readiness for an event loop of the caller's
//!   ([`Subscriber::is_available`], [`Subscriber::on_ready`]).
//! - [`Queue::send`]: pipelined publishing, returning a
//!   [`Receipt`].
//! - [`Clock`]: where ack deadlines, expiry and TTLs read the time
//!   ([`SystemClock`] by default; [`ManualClock`] for tests, see "Testing
//!   with a clock" below).
//!
//! # Guarantees
//!
//! - **A publish that returned `Ok` is never lost**: with
//!   [`Durability::Durable`] (the default) it is fsynced before `publish`
//!   returns, and survives `kill -9` and power loss; with
//!   [`Durability::Buffered`] it is in the OS and survives `kill -9`.
//!   Concurrent publishers share one fsync (group commit).
//! - **Pipelined**: [`Queue::send`] writes without waiting and returns a
//!   [`Receipt`]; nothing sent is durable until the
//!   receipt's [`wait`](Receipt::wait) returned `Ok` (then it, and
//!   every earlier send, is never lost). After a crash, sends not waited
//!   for may be lost.
//! - Each `publish` is **one atomic batch**: the message once, an entry per
//!   subscriber (and now and then the counters). After a crash all of it is
//!   there or none.
//! - **At-least-once**: an entry leaves the store only when acked (or
//!   dead-lettered, or expired). Nacked, reset and timed-out deliveries come
//!   back at the front; after a restart every unacked delivery comes back,
//!   counted as redelivered: delivery counts are stored when an entry is
//!   taken, so `max_deliveries` holds across crashes (no extra delivery per
//!   process crash; see [`Subscriber::next_batch`] for power loss).
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
//!   log and the rest of the queue is still served (see
//!   [`Subscriber::next_batch`]).
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
//!
//! # Testing with a clock
//!
//! Ack deadlines, message expiry and topic TTLs follow the queue's
//! [`Clock`] ([`QueueConfig::with_clock`]). A test passes a
//! [`ManualClock`] and moves it instead of sleeping:
//! [`advance`](ManualClock::advance) moves the monotonic and the wall time
//! together and, before it returns, gives back every delivery whose ack
//! deadline it passed (waking blocked receives). Expiry is checked when a
//! message is taken, against [`Clock::wall`]: a topic's TTL counts from
//! it, and a test gives a message an expiry from it too
//! ([`Message::with_ttl`] counts from the system's clock). Waits for I/O
//! and threads stay on real time whatever the clock: a receive's timeout,
//! [`Receipt::wait_timeout`], close timeouts.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use syncmq::queue::{Clock, ManualClock, Queue, QueueConfig, TopicConfig};
//! use syncmq::Message;
//!
//! # fn main() -> syncmq::Result<()> {
//! let clock = Arc::new(ManualClock::new());
//! let queue = Queue::memory(
//!     QueueConfig::new()
//!         .with_topic(TopicConfig::new("t", ["s"]).with_ack_timeout(Duration::ZERO))
//!         .with_clock(clock.clone()),
//! )?;
//! let expiry = clock.wall() + Duration::from_secs(60);
//! queue.publish("t", &[Message::new(b"soon stale".to_vec()).with_expiry(expiry)])?;
//! clock.advance(Duration::from_secs(61))?;
//! let s = queue.subscribe("t", "s")?;
//! assert!(s.recv_timeout(Duration::ZERO)?.is_none(), "expired");
//! assert_eq!(queue.stats("t")?[0].expired, 1);
//! # Ok(())
//! # }
//! ```

mod activity;
mod clock;
mod commit;
mod commit_ticket;
mod config;
mod dead_letter;
mod delivery;
mod dir_lock;
mod entry;
mod fjall_store;
mod id_hash;
mod keys;
mod memory_store;
mod peek;
mod publish;
mod settle;
mod state;
mod store;
mod subscriber;
mod subscriber_state;
mod sweeper;
mod topic;

pub(crate) use clock::ConfiguredClock;
pub use clock::{AdvanceFn, Clock, ManualClock, SystemClock};
pub use config::{Durability, QueueConfig, TopicConfig};
pub use entry::{DeadLetter, EntryId, Peeked, Received, SubscriberStats};
pub use fjall_store::FjallStore;
pub use memory_store::MemoryStore;
pub use store::{Batch, KeyValue, Op, Space, Store};
pub use subscriber::{Interrupter, Subscriber};

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::message::Message;
use crate::metrics::Stopwatch;
use crate::receipt::Receipt;
use crate::thread::{self, lock, Worker};
use commit::Committer;
use commit_ticket::CommitTicket;
use state::{Shared, State};

/// The queue engine: topics, publishing, subscribers. See the
/// [module docs](crate::queue) for its guarantees.
///
/// Owns one thread, `syncmq-queue-sweep` (ack deadlines, on the
/// configured [`Clock`]; a [`ManualClock`]'s `advance` sweeps on its own
/// thread instead), which
/// [`close`](Queue::close) or drop stops and joins within
/// [`QueueConfig::with_close_timeout`]; group commit runs on the
/// publishers' own threads. Share a queue between threads with an `Arc`.
pub struct Queue {
    shared: Arc<Shared>,
    workers: Mutex<Vec<Worker<()>>>,
    close_timeout: Duration,
    /// Kept alive for the clock, which holds it weakly: a clock that jumps
    /// sweeps through it (see `sweeper.rs`).
    _follow_clock: Arc<AdvanceFn>,
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
    /// [`Error::DirectoryInUse`] naming the directory (and the owner's pid)
    /// when another process has it open; [`Error::Storage`] when fjall
    /// cannot open it; [`Error::Corrupt`] for unreadable records,
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
        let clock = config.clock();
        let mut state = State::load(store, clock.clone())?;
        let (durability, max_message_bytes, close_timeout) = (
            config.durability(),
            config.max_message_bytes(),
            config.close_timeout(),
        );
        for (i, topic) in config.into_topics().into_iter().enumerate() {
            state.declare(topic, &format!("topics[{i}]"))?;
        }
        let shared = Arc::new(Shared::new(state, durability, max_message_bytes));
        let follow_clock = sweeper::follow(&shared, &*clock);
        let sweeper_shared = shared.clone();
        let workers = vec![thread::spawn("queue-sweep", move || {
            sweeper::run(&sweeper_shared);
        })?];
        Ok(Queue {
            shared,
            workers: Mutex::new(workers),
            close_timeout,
            _follow_clock: follow_clock,
        })
    }

    /// Creates a topic, or updates it (subscribers may be added, priority
    /// levels raised).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the field; [`Error::Closed`].
    pub fn declare_topic(&self, topic: TopicConfig) -> Result<()> {
        let mut state = lock(&self.shared.state);
        if state.closed {
            return Err(Error::closed("queue"));
        }
        state.declare(topic, "topic")
    }

    /// The configuration of every topic, sorted by name.
    pub fn topics(&self) -> Vec<TopicConfig> {
        let state = lock(&self.shared.state);
        let mut topics: Vec<_> = state.topics.values().map(|t| t.config.clone()).collect();
        topics.sort_by(|a, b| a.name().cmp(b.name()));
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
        let stopwatch = Stopwatch::start();
        match self.write(topic, messages, Committer::written)? {
            Some(ticket) => self.shared.committer.wait(ticket, None)?,
            None => return Ok(()),
        }
        stopwatch.record(&self.shared.publish_seconds);
        Ok(())
    }

    /// Pipelined publish: writes `messages` to every subscriber of `topic`
    /// in one atomic batch now, **without** waiting for the sync, and
    /// returns a [`Receipt`] whose [`wait`](Receipt::wait) returns once the
    /// batch is durable (fsynced with [`Durability::Durable`], in the OS
    /// with [`Durability::Buffered`]). The messages are visible to
    /// subscribers as soon as `send` returns.
    ///
    /// A producer keeping up to W receipts outstanding (waiting for the
    /// oldest when the window is full) shares each fsync among up to W of
    /// its messages, like `RabbitMQ` publisher confirms: the receipt's `wait`
    /// blocks until a group-commit round has synced the batch, and leads
    /// that round itself when no other publisher is.
    ///
    /// # Guarantees
    ///
    /// - **Nothing sent is durable until its receipt's `wait` returned
    ///   `Ok`.** After a crash a send whose receipt was not waited for (or
    ///   whose wait had not returned yet) may be lost; one whose `wait`
    ///   returned `Ok` never is.
    /// - Syncs cover **prefixes**: batches are written and ticketed in one
    ///   order, and a sync covers everything written before it started, so
    ///   once a receipt's `wait` returned `Ok`, every batch sent before it
    ///   (by any thread) is durable too. Waiting for the newest of a window
    ///   covers the whole window. [`Receipt::ticket`] is the send's place in
    ///   that order (1 for the first send since the queue was opened; 0 for
    ///   an empty send, which has nothing to wait for).
    /// - Each send is one atomic batch, as `publish`: after a crash all of
    ///   it is there or none.
    /// - Order: the messages of sends made one after another are queued in
    ///   that order (FIFO within a priority), whether or not anything waited
    ///   in between.
    /// - A failed sync fails this and every later wait with the same
    ///   [`Error::Storage`]: the store cannot say what it lost.
    /// - A receipt stays valid after [`close`](Self::close): close syncs
    ///   everything that was sent, so waiting afterwards returns `Ok`
    ///   without another sync (or close's sync error). A receipt keeps the
    ///   store's files open until it is dropped, as a [`Subscriber`] does.
    /// - [`Receipt::wait_timeout`] gives up with [`Error::Timeout`] when the
    ///   time ran out while another publisher's sync was under way (the
    ///   send may still become durable); a wait that leads the sync itself
    ///   lets it end, however long the fsync takes, so that the publishers
    ///   waiting on it are not left without a leader. With
    ///   [`Durability::Buffered`] there is nothing to wait for but a flush
    ///   to the OS.
    ///
    /// ```
    /// use syncmq::queue::{Queue, QueueConfig, TopicConfig};
    /// use syncmq::{Message, Receipt};
    /// use std::collections::VecDeque;
    ///
    /// # fn main() -> syncmq::Result<()> {
    /// let queue = Queue::memory(QueueConfig::new().with_topic(TopicConfig::new("t", ["s"])))?;
    /// let mut window = VecDeque::new();
    /// for i in 0..1000u32 {
    ///     if window.len() == 64 {
    ///         window.pop_front().map(Receipt::wait).transpose()?;
    ///     }
    ///     window.push_back(queue.send("t", &[Message::new(i.to_be_bytes().to_vec())])?);
    /// }
    /// // Durable once the newest is: it covers every earlier send.
    /// window.pop_back().map(Receipt::wait).transpose()?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish), less the sync's errors, which
    /// [`Receipt::wait`] returns.
    pub fn send(&self, topic: &str, messages: &[Message]) -> Result<Receipt> {
        let Some(ticket) = self.write(topic, messages, Committer::sent)? else {
            return Ok(Receipt::settled("queue"));
        };
        Ok(Receipt::new(
            "queue",
            ticket,
            CommitTicket {
                committer: self.shared.committer.clone(),
                ticket,
            },
        ))
    }

    /// Writes `messages` and returns the batch's group-commit ticket from
    /// `record` ([`Committer::written`] when the caller waits for it at
    /// once, [`Committer::sent`] when later); `None` for no messages.
    fn write(
        &self,
        topic: &str,
        messages: &[Message],
        record: fn(&Committer) -> u64,
    ) -> Result<Option<u64>> {
        if messages.is_empty() {
            return Ok(None);
        }
        let mut state = lock(&self.shared.state);
        if state.closed {
            return Err(Error::closed("queue"));
        }
        let woken = state.publish(topic, messages, self.shared.max_message_bytes)?;
        for id in woken {
            if let Some(sub) = state.subs.get(&id) {
                sub.wake();
            }
        }
        // Under the state lock, so that tickets follow the write order.
        let ticket = record(&self.shared.committer);
        drop(state);
        Ok(Some(ticket))
    }

    /// A handle on subscriber `name` of `topic`.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown topic or subscriber;
    /// [`Error::Closed`].
    pub fn subscribe(&self, topic: &str, name: &str) -> Result<Subscriber> {
        let state = lock(&self.shared.state);
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
            handle: subscriber::next_handle(),
            watching: AtomicBool::new(false),
        })
    }

    /// The counters of every subscriber of `topic`.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown topic.
    pub fn stats(&self, topic: &str) -> Result<Vec<SubscriberStats>> {
        let state = lock(&self.shared.state);
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
        let state = lock(&self.shared.state);
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
        let state = lock(&self.shared.state);
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
        let workers = std::mem::take(&mut *lock(&self.workers));
        if workers.is_empty() {
            return Ok(());
        }
        let store = {
            let mut state = lock(&self.shared.state);
            state.closed = true;
            for sub in state.subs.values() {
                sub.wake();
            }
            state.store.clone()
        };
        self.shared.sweeper.notify_all();
        let (syncs, batches, syncing) = self.shared.committer.summary();
        log::debug!(
            "queue: closing; {syncs} syncs covered {batches} durable publishes, in {syncing:?} of syncing"
        );
        let joined = thread::join_all(workers, Instant::now() + self.close_timeout);
        // Every send is written by now and none comes after `closed`: this
        // sync settles the receipts still outstanding.
        let synced = store.sync();
        self.shared.committer.settle_all(&synced);
        // The checkpoint, after a sync that succeeded, is so that the next
        // open has nothing to replay (fjall: memtables to tables); nothing
        // is lost if it fails, the open is slower.
        let stored = synced.and_then(|()| store.checkpoint());
        joined.and(stored)
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::warn!("queue: close on drop: {e}");
        }
    }
}
