//! `bench outbox`: the transactional outbox against the raw libraries
//! underneath, measured in the same run.
//!
//! - **add**: `add_within_tx` (an application row and the outbox row in one
//!   fjall transaction) against a raw fjall write transaction that commits
//!   the application row alone, synced (`SyncData`, the store's default)
//!   and buffered (`Buffer`).
//! - **dispatch**: rows already in the store sent to a sink. Into a
//!   crossbeam channel (the cheapest possible destination) against a raw
//!   fjall loop over the same rows: plain fjall range-scans a batch of the
//!   store's `pending` keyspace, sends each row to the channel, and moves
//!   the batch to `dispatched` in one buffered write batch, as the store does, so
//!   the ratio is the outbox's own overhead over fjall's. (Direct
//!   `ChannelSink` sends stay as the floor of the channel alone.) And into a
//!   sink that inserts each
//!   message into a fjall keyspace (a stand-in for the queue engine). Plus
//!   add→dispatched: a producer adding while the dispatcher sends.
//! - **queue engine**: rows dispatched through `QueueSink` (one durable
//!   `Queue::publish` per batch) against `Queue::publish` called directly
//!   with batches of the same size (`outbox_queue.rs`).
//! - **RabbitMQ** (when a broker answers on 127.0.0.1:5672): a realistic
//!   destination, persistent messages into a durable queue, published in
//!   `send` and confirmed in `flush` once per batch; the outbox dispatching
//!   from fjall against calling that sink directly.
//! - **latency**: from the store's commit returning to the sink's `send`
//!   being called (commit-to-send; the bench wraps the store to stamp the
//!   commit), with wake-on-add against interval-only polling (the Go outboxer's
//!   design: a row waits for the next tick; adds here come right after a
//!   tick, so the wait is about a whole interval).

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use clap::Args;
use crossbeam_channel::{bounded, unbounded, Receiver};
use syncmq::outbox::fjall::{
    Database, Keyspace, KeyspaceCreateOptions, PersistMode, SingleWriterTxDatabase,
};
use syncmq::outbox::{
    FjallOutboxStore, MemoryOutboxStore, OutboxCounts, OutboxRecord, OutboxStore,
};
use syncmq::outbox::{Outbox, OutboxConfig};
use syncmq::{ChannelSink, Message, Sink};

use crate::report::Table;

// The cases that need RabbitMQ or PostgreSQL.
#[path = "outbox_services.rs"]
mod services;
// Dispatch to the queue engine through `QueueSink`.
#[path = "outbox_queue.rs"]
pub mod queue_case;

/// The load of `bench outbox`.
#[derive(Args, Clone)]
pub struct OutboxLoad {
    /// Rows per throughput run (buffered adds and dispatch).
    #[arg(long, default_value_t = 50_000)]
    pub messages: usize,
    /// Adds per synced (fsync per commit) run.
    #[arg(long, default_value_t = 500)]
    pub synced_messages: usize,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// The dispatcher's batch size.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Commit-to-send samples per wake-on-add latency case.
    #[arg(long, default_value_t = 2000)]
    pub samples: usize,
    /// The check interval of the interval-only polling case, in ms.
    #[arg(long, default_value_t = 20)]
    pub poll_ms: u64,
    /// Rows per RabbitMQ run (persistent messages, durable queue).
    #[arg(long, default_value_t = 10_000)]
    pub amqp_messages: usize,
    /// Rows per PostgreSQL run (one synced commit per add).
    #[arg(long, default_value_t = 1000)]
    pub pg_messages: usize,
    /// Rows per PostgreSQL dispatch run.
    #[arg(long, default_value_t = 20_000)]
    pub pg_dispatch: usize,
    /// The PostgreSQL connection string of the PostgreSQL cases.
    #[arg(
        long,
        default_value = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=5"
    )]
    pub postgres: String,
    /// Runs per throughput case; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

const RAW_SYNC: &str = "raw fjall commit, app row (SyncData)";
const ADD_SYNC: &str = "add_within_tx, app+outbox row (SyncData)";
const RAW_BUF: &str = "raw fjall commit, app row (Buffer)";
const ADD_BUF: &str = "add_within_tx, app+outbox row (Buffer)";
const RAW_CHAN: &str = "direct ChannelSink sends -> crossbeam";
const RAW_FJ_CHAN: &str = "raw fjall loop: scan 100, send, 1 batch";
const MEM_CHAN: &str = "dispatch: memory store -> crossbeam";
const FJ_CHAN: &str = "dispatch: fjall store -> crossbeam";
const E2E_CHAN: &str = "add->dispatched: fjall -> crossbeam";
const RAW_FJS: &str = "direct sends -> fjall insert sink";
const FJ_FJS: &str = "dispatch: fjall store -> fjall insert";

/// One throughput case: (payload, messages, batch) to the run's duration.
type Case = fn(&[u8], usize, usize) -> Duration;

#[allow(clippy::needless_pass_by_value)] // `main` hands each component its own load
pub fn run(load: OutboxLoad) -> Table {
    let payload = vec![0xA5u8; load.size];
    let mut table = Table::new(format!(
        "bench outbox: {} rows ({} synced) of {} bytes, batch {}, median of {} runs",
        load.messages, load.synced_messages, load.size, load.batch, load.runs
    ));

    let cases: [(&str, usize, Case); 11] = [
        (RAW_SYNC, load.synced_messages, |p, n, _| {
            raw_commit(p, n, PersistMode::SyncData)
        }),
        (ADD_SYNC, load.synced_messages, |p, n, _| {
            add(p, n, PersistMode::SyncData)
        }),
        (RAW_BUF, load.messages, |p, n, _| {
            raw_commit(p, n, PersistMode::Buffer)
        }),
        (ADD_BUF, load.messages, |p, n, _| {
            add(p, n, PersistMode::Buffer)
        }),
        (RAW_CHAN, load.messages, |p, n, _| direct_channel(p, n)),
        (RAW_FJ_CHAN, load.messages, raw_fjall_dispatch),
        (MEM_CHAN, load.messages, |p, n, b| {
            dispatch_channel(MemoryOutboxStore::new(), p, n, b)
        }),
        (FJ_CHAN, load.messages, |p, n, b| {
            let dir = tempfile::tempdir().expect("tempdir");
            dispatch_channel(fjall_store(dir.path()), p, n, b)
        }),
        (E2E_CHAN, load.messages, add_to_dispatched),
        (RAW_FJS, load.messages, |p, n, _| direct_fjall_sink(p, n)),
        (FJ_FJS, load.messages, dispatch_fjall_sink),
    ];
    let mut durations = vec![Vec::new(); cases.len()];
    for _ in 0..load.runs.max(1) {
        for (i, (_, n, case)) in cases.iter().enumerate() {
            durations[i].push(case(&payload, *n, load.batch));
        }
    }
    let baseline_of = |case: &str| match case {
        ADD_SYNC => Some(RAW_SYNC),
        ADD_BUF => Some(RAW_BUF),
        MEM_CHAN => Some(RAW_CHAN),
        FJ_CHAN | E2E_CHAN => Some(RAW_FJ_CHAN),
        FJ_FJS => Some(RAW_FJS),
        _ => None,
    };
    for (i, (case, n, _)) in cases.iter().enumerate() {
        match baseline_of(case) {
            None => table.baseline(case, *n, load.size, &durations[i]),
            Some(base) => table.compared(case, base, *n, load.size, &durations[i]),
        }
    }

    queue_case::queue(&load, &payload, &mut table);

    #[cfg(feature = "rabbitmq")]
    services::rabbitmq(&load, &payload, &mut table);

    #[cfg(feature = "postgres")]
    services::postgres(&load, &payload, &mut table);

    let poll = format!("polling only, every {} ms (fjall Buffer)", load.poll_ms);
    // Polling waits about half an interval per sample: keep its count small.
    let poll_samples = load.samples.min(200);
    let interval = Duration::from_millis(load.poll_ms.max(1));
    let dir = tempfile::tempdir().expect("tempdir");
    let samples = latency(
        fjall_store(dir.path()),
        &payload,
        poll_samples,
        interval,
        false,
    );
    table.latency(&poll, None, &samples);
    let wake = [
        ("wake-on-add (fjall Buffer)", PersistMode::Buffer),
        ("wake-on-add (fjall SyncData)", PersistMode::SyncData),
    ];
    for (case, mode) in wake {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FjallOutboxStore::open(dir.path())
            .expect("open")
            .with_durability(mode);
        let n = if mode == PersistMode::SyncData {
            load.samples.min(500)
        } else {
            load.samples
        };
        let samples = latency(store, &payload, n, Duration::from_secs(1), true);
        table.latency(case, Some(&poll), &samples);
    }
    let samples = latency(
        MemoryOutboxStore::new(),
        &payload,
        load.samples,
        Duration::from_secs(1),
        true,
    );
    table.latency("wake-on-add (memory store)", Some(&poll), &samples);
    table
}

pub fn fjall_store(path: &std::path::Path) -> FjallOutboxStore {
    FjallOutboxStore::open(path)
        .expect("open the fjall outbox")
        .with_durability(PersistMode::Buffer)
}

pub fn message(payload: &[u8]) -> Message {
    Message::new(payload.to_vec())
}

fn raw_commit(payload: &[u8], n: usize, mode: PersistMode) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = SingleWriterTxDatabase::builder(dir.path())
        .open()
        .expect("open fjall");
    let app = db
        .keyspace("app", KeyspaceCreateOptions::default)
        .expect("keyspace");
    let started = Instant::now();
    for i in 0..n as u64 {
        let mut tx = db.write_tx().durability(Some(mode));
        tx.insert(&app, i.to_be_bytes(), payload);
        tx.commit().expect("commit");
    }
    started.elapsed()
}

fn add(payload: &[u8], n: usize, mode: PersistMode) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FjallOutboxStore::open(dir.path())
        .expect("open")
        .with_durability(mode);
    let app = store
        .database()
        .keyspace("app", KeyspaceCreateOptions::default)
        .expect("keyspace");
    let message = message(payload);
    let started = Instant::now();
    for i in 0..n as u64 {
        store
            .add_within_tx(&message, |tx| {
                tx.insert(&app, i.to_be_bytes(), payload);
                Ok::<_, syncmq::Error>(())
            })
            .expect("add");
    }
    started.elapsed()
}

/// A consumer that takes `n` messages and returns when it took the last.
pub fn consumer(rx: Receiver<Message>, n: usize) -> thread::JoinHandle<Instant> {
    thread::spawn(move || {
        for _ in 0..n {
            drop(rx.recv().expect("producer alive"));
        }
        Instant::now()
    })
}

pub fn direct_channel(payload: &[u8], n: usize) -> Duration {
    let messages = vec![message(payload); n];
    let (tx, rx) = bounded(1024);
    let mut sink = ChannelSink::from_sender("bench", tx);
    let done = consumer(rx, n);
    let started = Instant::now();
    for m in &messages {
        sink.send(m).expect("send");
    }
    done.join().expect("consumer") - started
}

pub fn config(batch: usize) -> OutboxConfig {
    OutboxConfig::default().with_batch_size(batch)
}

fn dispatch_channel<S: OutboxStore>(store: S, payload: &[u8], n: usize, batch: usize) -> Duration {
    let message = message(payload);
    for _ in 0..n {
        store.add(&message).expect("add");
    }
    let (tx, rx) = bounded(1024);
    let done = consumer(rx, n);
    let started = Instant::now();
    let outbox = Outbox::start_with(store, ChannelSink::from_sender("bench", tx), config(batch))
        .expect("start");
    let took = done.join().expect("consumer") - started;
    outbox.close().expect("close");
    took
}

/// The raw baseline of the fjall dispatch: the store's own rows and
/// keyspaces, read and moved with plain fjall. Scan `batch` pending rows
/// from past the last one taken, send each row's bytes to the channel, then
/// one buffered write batch (as the store's, not a transaction) moves them
/// to `dispatched` (key: millis ++ id, as the store's) with `remove_weak`
/// from `pending`; repeat until empty.
fn raw_fjall_dispatch(payload: &[u8], n: usize, batch: usize) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = fjall_store(dir.path());
    let message = message(payload);
    for _ in 0..n {
        store.add(&message).expect("add");
    }
    let db = store.database();
    let prefix = FjallOutboxStore::DEFAULT_PREFIX;
    let keyspace = |part: &str| {
        db.keyspace(&format!("{prefix}.{part}"), KeyspaceCreateOptions::default)
            .expect("keyspace")
    };
    let (pending, dispatched) = (keyspace("pending"), keyspace("dispatched"));
    let (tx, rx) = bounded(1024);
    let done = consumer(rx, n);
    let started = Instant::now();
    let mut from = 0u64;
    loop {
        let rows: Vec<_> = pending
            .inner()
            .range(from.to_be_bytes()..)
            .take(batch)
            .map(|guard| guard.into_inner().expect("read a row"))
            .collect();
        let Some((last, _)) = rows.last() else { break };
        from = u64::from_be_bytes(last[..].try_into().expect("an 8-byte key")) + 1;
        for (_, row) in &rows {
            tx.send(Message::new(row.to_vec())).expect("consumer alive");
        }
        let at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis() as u64;
        let mut batch = db.inner().batch().durability(Some(PersistMode::Buffer));
        for (key, row) in rows {
            let mut moved = at.to_be_bytes().to_vec();
            moved.extend_from_slice(&key);
            batch.insert(dispatched.inner(), moved, row);
            batch.remove_weak(pending.inner(), key);
        }
        batch.commit().expect("commit");
    }
    done.join().expect("consumer") - started
}

fn add_to_dispatched(payload: &[u8], n: usize, batch: usize) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tx, rx) = bounded(1024);
    let done = consumer(rx, n);
    let outbox = Arc::new(
        Outbox::start_with(
            fjall_store(dir.path()),
            ChannelSink::from_sender("bench", tx),
            config(batch),
        )
        .expect("start"),
    );
    let message = message(payload);
    let started = Instant::now();
    for _ in 0..n {
        outbox.add(&message).expect("add");
    }
    let took = done.join().expect("consumer") - started;
    outbox.close().expect("close");
    took
}

/// A sink that inserts each message into a fjall keyspace, as a queue
/// engine's publish would, under the number of the send.
struct FjallSink {
    _db: Database,
    keyspace: Keyspace,
    sent: u64,
    done: Option<crossbeam_channel::Sender<()>>,
    n: u64,
}

impl FjallSink {
    fn open(path: &std::path::Path, n: usize) -> (Self, Receiver<()>) {
        let db = Database::builder(path).open().expect("open fjall");
        let keyspace = db
            .keyspace("queue", KeyspaceCreateOptions::default)
            .expect("keyspace");
        let (tx, rx) = bounded(1);
        let sink = FjallSink {
            _db: db,
            keyspace,
            sent: 0,
            done: Some(tx),
            n: n as u64,
        };
        (sink, rx)
    }
}

impl Sink for FjallSink {
    fn send(&mut self, message: &Message) -> syncmq::Result<()> {
        self.sent += 1;
        self.keyspace
            .insert(self.sent.to_be_bytes(), message.body())
            .map_err(syncmq::Error::from)?;
        if self.sent == self.n {
            if let Some(done) = self.done.take() {
                let _ = done.send(());
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> syncmq::Result<()> {
        Ok(())
    }
}

fn direct_fjall_sink(payload: &[u8], n: usize) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let messages = vec![message(payload); n];
    let (mut sink, _done) = FjallSink::open(dir.path(), n);
    let started = Instant::now();
    for m in &messages {
        sink.send(m).expect("send");
    }
    started.elapsed()
}

fn dispatch_fjall_sink(payload: &[u8], n: usize, batch: usize) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = fjall_store(&dir.path().join("outbox"));
    let message = message(payload);
    for _ in 0..n {
        store.add(&message).expect("add");
    }
    let (sink, done) = FjallSink::open(&dir.path().join("queue"), n);
    let started = Instant::now();
    let outbox = Outbox::start_with(store, sink, config(batch)).expect("start");
    done.recv().expect("all sent");
    let took = started.elapsed();
    outbox.close().expect("close");
    took
}

/// A store that notes when each add's commit returned, before the outbox
/// wakes its dispatcher.
struct Stamped<S> {
    inner: S,
    committed: Mutex<Option<Instant>>,
}

impl<S: OutboxStore> OutboxStore for Stamped<S> {
    type Tx<'t> = S::Tx<'t>;

    fn add(&self, message: &Message) -> syncmq::Result<u64> {
        let id = self.inner.add(message)?;
        *self.committed.lock().expect("stamp") = Some(Instant::now());
        Ok(id)
    }

    fn add_within_tx<T, E, F>(&self, message: &Message, f: F) -> Result<(u64, T), E>
    where
        F: for<'t> FnOnce(&mut Self::Tx<'t>) -> Result<T, E>,
        E: From<syncmq::Error>,
    {
        let added = self.inner.add_within_tx(message, f)?;
        *self.committed.lock().expect("stamp") = Some(Instant::now());
        Ok(added)
    }

    fn pending(&self, batch: usize) -> syncmq::Result<Vec<OutboxRecord>> {
        self.inner.pending(batch)
    }

    fn mark_dispatched(&self, ids: &[u64]) -> syncmq::Result<()> {
        self.inner.mark_dispatched(ids)
    }

    fn record_failure(&self, id: u64, error: &str) -> syncmq::Result<u32> {
        self.inner.record_failure(id, error)
    }

    fn dead_letter(&self, id: u64) -> syncmq::Result<()> {
        self.inner.dead_letter(id)
    }

    fn remove_dispatched(&self, older_than: SystemTime, batch: usize) -> syncmq::Result<u64> {
        self.inner.remove_dispatched(older_than, batch)
    }

    fn requeue_dead_letter(&self, id: u64) -> syncmq::Result<u64> {
        self.inner.requeue_dead_letter(id)
    }

    fn remove_dead_letter(&self, id: u64) -> syncmq::Result<()> {
        self.inner.remove_dead_letter(id)
    }

    fn dead_letters(&self, limit: usize) -> syncmq::Result<Vec<OutboxRecord>> {
        self.inner.dead_letters(limit)
    }

    fn counts(&self) -> syncmq::Result<OutboxCounts> {
        self.inner.counts()
    }
}

/// Commit-to-send latencies of `n` adds, one at a time. With `wake`, adds
/// go through the outbox (which wakes the dispatcher); without, straight
/// into the store, found only by the check every `interval`.
fn latency<S: OutboxStore>(
    store: S,
    payload: &[u8],
    n: usize,
    interval: Duration,
    wake: bool,
) -> Vec<Duration> {
    let (tx, rx) = unbounded::<Instant>();
    let sink = move |_: &Message| {
        let _ = tx.send(Instant::now());
        Ok(())
    };
    let config = OutboxConfig::default().with_check_interval(interval);
    let store = Stamped {
        inner: store,
        committed: Mutex::new(None),
    };
    let outbox = Outbox::start_with(store, sink, config).expect("start");
    let message = message(payload);
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        if wake {
            outbox.add(&message).expect("add");
        } else {
            outbox.store().add(&message).expect("add");
        }
        let sent = rx.recv().expect("dispatcher alive");
        let committed = outbox
            .store()
            .committed
            .lock()
            .expect("stamp")
            .take()
            .expect("stamped");
        // The dispatcher may find the row before the stamp is taken: zero.
        samples.push(sent.saturating_duration_since(committed));
    }
    outbox.close().expect("close");
    samples
}
