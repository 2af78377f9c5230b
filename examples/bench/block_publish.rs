//! `bench block-publish`: the satellite's publish path, bags through the
//! publisher block into the durable queue with a reply per bag, against
//! raw `Queue::publish` of one message per call.
//!
//! Both sides publish one message at a time, each durable (fsynced) before
//! the next, as the satellite does for each TCP line. The baseline is one
//! thread calling [`Queue::publish`] `messages` times; the block case sends
//! `messages` bags from a source block to a [`PublisherBlock`] over a
//! [`QueueSink`](syncmq::QueueSink), and the clock stops when the source has received
//! the last `ok` reply. The ratio is what the runtime (routing, the event
//! threads, the reply bag) adds on top of the fsync.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use crossbeam_channel::Sender;
use syncmq::block::{
    self, Bag, Block, BlockConfig, Controller, InitContext, PublisherBlock, Registry, Runtime,
    RuntimeConfig, Value,
};
use syncmq::queue::{Queue, QueueConfig, TopicConfig};
use syncmq::Message;

use crate::report::Table;

const TOPIC: &str = "lines";
const RAW: &str = "raw Queue::publish, 1 message per call (fsync each)";
const BLOCKS: &str = "bag -> PublisherBlock(QueueSink) -> ok reply";

/// The load of `bench block-publish`: few messages, each costs an fsync.
#[derive(Args, Clone, Copy)]
pub struct PublishLoad {
    /// Messages per run.
    #[arg(long, default_value_t = 2_000)]
    pub messages: usize,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Runs per case; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

pub fn run(load: PublishLoad) -> Table {
    let body = vec![0xA5u8; load.size];
    let mut raw_runs = Vec::new();
    let mut block_runs = Vec::new();
    for _ in 0..load.runs.max(1) {
        raw_runs.push(raw(&body, load.messages));
        block_runs.push(blocks(&body, load.messages));
    }
    let mut table = Table::new(format!(
        "bench block-publish: {} durable publishes of {} bytes, one at a time, median of {} runs",
        load.messages, load.size, load.runs
    ));
    table.baseline(RAW, load.messages, load.size, &raw_runs);
    table.compared(BLOCKS, RAW, load.messages, load.size, &block_runs);
    table
}

fn open(dir: &tempfile::TempDir) -> Queue {
    Queue::open(
        dir.path(),
        QueueConfig::new().with_topic(TopicConfig::new(TOPIC, ["consumer"])),
    )
    .expect("open the queue")
}

fn raw(body: &[u8], messages: usize) -> Duration {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let queue = open(&dir);
    let started = Instant::now();
    for _ in 0..messages {
        queue
            .publish(TOPIC, &[Message::new(body.to_vec())])
            .expect("publish");
    }
    let took = started.elapsed();
    queue.close().expect("close");
    took
}

/// Sends every bag to the publisher from `run`; counts the `ok` replies.
struct Source {
    body: Vec<u8>,
    messages: usize,
    started: Arc<Mutex<Option<Instant>>>,
    replies: Mutex<usize>,
    done: Sender<Instant>,
}

impl Block for Source {
    fn init(&self, _: &InitContext<'_>) -> syncmq::Result<()> {
        Ok(())
    }
    fn run(&self, ctl: Controller) {
        let target = ctl.controller("publisher").expect("publisher block");
        *self.started.lock().expect("lock") = Some(Instant::now());
        for i in 0..self.messages {
            let bag = Bag::new().with(block::BODY, self.body.as_slice()).with(
                block::ID,
                i64::try_from(i).expect("fewer than 2^63 messages"),
            );
            assert!(target.enqueue(bag));
        }
    }
    fn finish(&self) -> syncmq::Result<()> {
        Ok(())
    }
    fn on_enqueue(&self, _: &Controller, reply: Bag) {
        assert_eq!(
            reply.get(block::OK).and_then(Value::as_bool),
            Some(true),
            "{reply:?}"
        );
        let mut replies = self.replies.lock().expect("lock");
        *replies += 1;
        if *replies == self.messages {
            let _ = self.done.send(Instant::now());
        }
    }
}

fn blocks(body: &[u8], messages: usize) -> Duration {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let queue = Arc::new(open(&dir));
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    let started = Arc::new(Mutex::new(None));
    let mut registry = Registry::empty();
    {
        let queue = queue.clone();
        registry
            .register("publisher", move |_| {
                let queue = queue.clone();
                PublisherBlock::new(move |_| syncmq::QueueSink::new(queue.clone(), TOPIC))
            })
            .expect("register");
    }
    {
        let body = body.to_vec();
        let started = started.clone();
        registry
            .register("source", move |_| Source {
                body: body.clone(),
                messages,
                started: started.clone(),
                replies: Mutex::new(0),
                done: done_tx.clone(),
            })
            .expect("register");
    }
    let config = RuntimeConfig::new()
        .with_block(BlockConfig::new("publisher"))
        .with_block(BlockConfig::new("source"));
    let runtime = Runtime::start(&config, &registry).expect("start");
    let finished = done_rx.recv().expect("every bag answered");
    runtime.close().expect("close");
    queue.close().expect("close");
    let started = started.lock().expect("lock").expect("source ran");
    finished - started
}
