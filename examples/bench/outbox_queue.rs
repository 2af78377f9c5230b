//! `bench outbox`, the queue-engine case: rows dispatched from the fjall
//! outbox to a topic of a durable (fsync per publish) queue through
//! `QueueSink`, one `Queue::publish` per batch, against calling
//! `Queue::publish` directly with batches of the same size, measured in
//! the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Sender};
use syncmq::outbox::Outbox;
use syncmq::outbox::OutboxStore;
use syncmq::queue::{Queue, QueueConfig, TopicConfig};
use syncmq::{Message, QueueSink, Sink};

use super::{config, fjall_store, message, OutboxLoad};
use crate::report::Table;

const RAW: &str = "raw Queue::publish, batches (durable)";
const OUTBOX: &str = "dispatch: fjall store -> QueueSink (durable)";

fn open_queue(path: &std::path::Path) -> Arc<Queue> {
    let config = QueueConfig::new().with_topic(TopicConfig::new("events", ["reader"]));
    Arc::new(Queue::open(path, config).expect("open the queue"))
}

/// The raw baseline: `n` messages published in batches of `batch`.
fn raw(payload: &[u8], n: usize, batch: usize) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let queue = open_queue(dir.path());
    let messages = vec![message(payload); batch.max(1)];
    let started = Instant::now();
    let mut left = n;
    while left > 0 {
        let take = left.min(messages.len());
        queue.publish("events", &messages[..take]).expect("publish");
        left -= take;
    }
    started.elapsed()
}

/// A sink that says when `n` rows were flushed (published, confirmed).
pub struct Counting<T> {
    inner: T,
    unflushed: usize,
    flushed: usize,
    n: usize,
    done: Option<Sender<()>>,
}

impl<T> Counting<T> {
    /// Wraps `inner`; `done` hears once `n` rows were flushed.
    pub fn new(inner: T, n: usize, done: Sender<()>) -> Self {
        Counting {
            inner,
            unflushed: 0,
            flushed: 0,
            n,
            done: Some(done),
        }
    }
}

impl<T: Sink> Sink for Counting<T> {
    fn send(&mut self, message: &Message) -> syncmq::Result<()> {
        self.inner.send(message)?;
        self.unflushed += 1;
        Ok(())
    }

    fn flush(&mut self) -> syncmq::Result<()> {
        let result = self.inner.flush();
        if result.is_ok() {
            self.flushed += self.unflushed;
            if self.flushed >= self.n {
                if let Some(done) = self.done.take() {
                    let _ = done.send(());
                }
            }
        }
        self.unflushed = 0;
        result
    }
}

/// `n` rows already in a fjall outbox, dispatched to the queue.
fn dispatched(payload: &[u8], n: usize, batch: usize) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = fjall_store(&dir.path().join("outbox"));
    let message = message(payload);
    for _ in 0..n {
        store.add(&message).expect("add");
    }
    let queue = open_queue(&dir.path().join("queue"));
    let (tx, rx) = bounded(1);
    let sink = Counting::new(QueueSink::new(queue, "events").expect("sink"), n, tx);
    let started = Instant::now();
    let outbox = Outbox::start_with(store, sink, config(batch)).expect("start");
    rx.recv().expect("all published");
    let took = started.elapsed();
    outbox.close().expect("close");
    took
}

/// Adds the two rows to `table`.
pub fn queue(load: &OutboxLoad, payload: &[u8], table: &mut Table) {
    let n = load.messages;
    let (mut raw_runs, mut outbox_runs) = (Vec::new(), Vec::new());
    for _ in 0..load.runs.max(1) {
        raw_runs.push(raw(payload, n, load.batch));
        outbox_runs.push(dispatched(payload, n, load.batch));
    }
    table.baseline(RAW, n, load.size, &raw_runs);
    table.compared(OUTBOX, RAW, n, load.size, &outbox_runs);
}
