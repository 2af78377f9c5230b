//! `bench block`: bags through the block runtime against raw crossbeam.
//!
//! The baseline is one producer thread sending `messages` bags (each with
//! a `size`-byte body) through a crossbeam `unbounded()` channel to one
//! consumer thread. The runtime case sends the same bags from one block's
//! `run` through its controller to another block's `on_enqueue`: the
//! routing, the `__from` the runtime adds and the event thread are what the
//! ratio shows. The clock stops when the last bag has been handled.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use syncmq::block::{
    Bag, Block, BlockConfig, Controller, InitContext, Registry, Runtime, RuntimeConfig,
};

use crate::report::Table;
use crate::Load;

const RAW: &str = "raw crossbeam unbounded SPSC, Bag";
const BLOCKS: &str = "controller.enqueue -> on_enqueue";

pub fn run(load: Load) -> Table {
    let body = vec![0xA5u8; load.size];
    let mut raw_runs = Vec::new();
    let mut block_runs = Vec::new();
    for _ in 0..load.runs.max(1) {
        raw_runs.push(raw(&body, load.messages));
        block_runs.push(blocks(&body, load.messages));
    }
    let mut table = Table::new(format!(
        "bench block: {} bags with a {}-byte body, median of {} runs",
        load.messages, load.size, load.runs
    ));
    table.baseline(RAW, load.messages, load.size, &raw_runs);
    table.compared(BLOCKS, RAW, load.messages, load.size, &block_runs);
    table
}

fn bag(body: &[u8]) -> Bag {
    Bag::new().with("body", body)
}

fn raw(body: &[u8], messages: usize) -> Duration {
    let (tx, rx) = crossbeam_channel::unbounded::<Bag>();
    let started = Instant::now();
    let producer = {
        let body = body.to_vec();
        thread::spawn(move || {
            for _ in 0..messages {
                tx.send(bag(&body)).expect("consumer alive");
            }
        })
    };
    for _ in 0..messages {
        drop(rx.recv().expect("producer alive"));
    }
    let took = started.elapsed();
    producer.join().expect("producer");
    took
}

/// Sends `messages` bags to `sink` from `run`.
struct Source {
    body: Vec<u8>,
    messages: usize,
    started: Arc<Mutex<Option<Instant>>>,
}

impl Block for Source {
    fn init(&self, _: &InitContext<'_>) -> syncmq::Result<()> {
        Ok(())
    }
    fn run(&self, ctl: Controller) {
        let sink = ctl.controller("sink").expect("sink block");
        *self.started.lock().expect("lock") = Some(Instant::now());
        for _ in 0..self.messages {
            assert!(sink.enqueue(bag(&self.body)));
        }
    }
    fn finish(&self) -> syncmq::Result<()> {
        Ok(())
    }
}

/// Counts bags; reports when the last one arrived.
struct Sink {
    messages: usize,
    seen: Mutex<usize>,
    done: Sender<Instant>,
}

impl Block for Sink {
    fn init(&self, _: &InitContext<'_>) -> syncmq::Result<()> {
        Ok(())
    }
    fn run(&self, _: Controller) {}
    fn finish(&self) -> syncmq::Result<()> {
        Ok(())
    }
    fn on_enqueue(&self, _: &Controller, bag: Bag) {
        drop(bag);
        let mut seen = self.seen.lock().expect("lock");
        *seen += 1;
        if *seen == self.messages {
            let _ = self.done.send(Instant::now());
        }
    }
}

fn blocks(body: &[u8], messages: usize) -> Duration {
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    let started = Arc::new(Mutex::new(None));
    let mut registry = Registry::empty();
    registry
        .register("sink", move |_| Sink {
            messages,
            seen: Mutex::new(0),
            done: done_tx.clone(),
        })
        .expect("register");
    {
        let body = body.to_vec();
        let started = started.clone();
        registry
            .register("source", move |_| Source {
                body: body.clone(),
                messages,
                started: started.clone(),
            })
            .expect("register");
    }
    let config = RuntimeConfig::new()
        .with_block(BlockConfig::new("sink"))
        .with_block(BlockConfig::new("source"));
    let runtime = Runtime::start(&config, &registry).expect("start");
    let finished = done_rx.recv().expect("every bag handled");
    runtime.close().expect("close");
    let started = started.lock().expect("lock").expect("source ran");
    finished - started
}
