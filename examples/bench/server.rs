//! `bench server`: the queue server over loopback against the same engine
//! in process, measured in the same run on the same disk, with the same
//! payloads.
//!
//! - durable publish, one message per publish, from 4 client connections,
//!   against 4 in-process producer threads calling `Queue::publish`
//!   (both share fsyncs through group commit; the target is >= 0.5x);
//! - durable publish in batches of 100 from one connection, against the
//!   same batches in process;
//! - consume of a backlog: a subscription with a window of 100 acking each
//!   delivery, against `next_batch(100)` + `ack` of each batch in process.
//!
//! Each server case and its baseline swap order on every other run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
use syncmq::queue::{Durability, Queue, QueueConfig, TopicConfig};
use syncmq::server::{QueueClient, QueueServer, QueueServerConfig};
use syncmq::Message;

use crate::report::Table;

/// The load of `bench server`.
#[derive(Args, Clone)]
pub struct ServerLoad {
    /// Messages per run.
    #[arg(long, default_value_t = 20_000)]
    pub messages: usize,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Runs per case; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Where the queues go (a fresh directory per run, deleted after).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Runs only the cases whose name contains this text, and the
    /// in-process baselines they are compared with ("consume" picks the
    /// consume pair): for a profile of one case.
    #[arg(long)]
    pub only: Option<String>,
}

const CONNECTIONS: usize = 4;
const ENGINE_4: &str = "engine in process, durable, 4 producers";
const ENGINE_100: &str = "engine in process, durable, batches of 100";
const ENGINE_CONSUME: &str = "engine in process: next_batch(100) + ack";

type Case = (
    &'static str,
    Option<&'static str>,
    fn(&Path, &[u8], usize) -> Duration,
);

pub fn run(load: ServerLoad) -> Table {
    let payload = vec![0xA5u8; load.size];
    let cases: [Case; 6] = [
        (ENGINE_4, None, |d, p, n| {
            engine_publish(d, p, n, CONNECTIONS, 1)
        }),
        (
            "server, durable, 4 connections",
            Some(ENGINE_4),
            |d, p, n| server_publish(d, p, n, CONNECTIONS, 1),
        ),
        (ENGINE_100, None, |d, p, n| engine_publish(d, p, n, 1, 100)),
        (
            "server, durable, batches of 100, 1 connection",
            Some(ENGINE_100),
            |d, p, n| server_publish(d, p, n, 1, 100),
        ),
        (ENGINE_CONSUME, None, engine_consume),
        (
            "server: consume, window 100, ack each",
            Some(ENGINE_CONSUME),
            server_consume,
        ),
    ];
    // A baseline runs when a case compared with it is picked.
    let picked = |name: &str| {
        load.only.as_deref().is_none_or(|only| {
            name.contains(only)
                || cases
                    .iter()
                    .any(|c| c.1 == Some(name) && c.0.contains(only))
        })
    };
    let chosen: Vec<bool> = cases.iter().map(|c| picked(c.0)).collect();
    let base = load.dir.unwrap_or_else(std::env::temp_dir);
    let mut durations = vec![Vec::new(); cases.len()];
    for run in 0..load.runs.max(1) {
        // Each pair (baseline, server case) runs in one order on even runs
        // and in the other on odd runs, so whatever the disk is still doing
        // for the case before (writeback, deleting the last directory)
        // weighs on both alike.
        for k in 0..cases.len() {
            let i = if run % 2 == 1 { k ^ 1 } else { k };
            if !chosen[i] {
                continue;
            }
            let f = cases[i].2;
            let dir = tempfile::Builder::new()
                .prefix("syncmq-bench-")
                .tempdir_in(&base)
                .expect("a bench directory");
            durations[i].push(f(dir.path(), &payload, load.messages));
        }
    }
    let mut table = Table::new(format!(
        "bench server: {} messages of {} bytes over loopback, median of {} runs, in {}",
        load.messages,
        load.size,
        load.runs,
        base.display()
    ));
    for (i, (case, baseline, _)) in cases.iter().enumerate() {
        if !chosen[i] {
            continue;
        }
        match baseline {
            None => table.baseline(case, load.messages, load.size, &durations[i]),
            Some(b) => table.compared(case, b, load.messages, load.size, &durations[i]),
        }
    }
    table
}

fn open(dir: &Path, durability: Durability) -> Arc<Queue> {
    let config = QueueConfig::new()
        .with_durability(durability)
        .with_topic(TopicConfig::new("bench", ["a"]).with_ack_timeout(Duration::ZERO));
    Arc::new(Queue::open(dir, config).expect("open queue"))
}

fn share(n: usize, parts: usize, i: usize) -> usize {
    n / parts + usize::from(i < n % parts)
}

fn publish_share(publish: &dyn Fn(&[Message]), payload: &[u8], share: usize, batch: usize) {
    let mut left = share;
    while left > 0 {
        let k = left.min(batch);
        let messages: Vec<Message> = (0..k).map(|_| Message::new(payload.to_vec())).collect();
        publish(&messages);
        left -= k;
    }
}

fn engine_publish(
    dir: &Path,
    payload: &[u8],
    n: usize,
    producers: usize,
    batch: usize,
) -> Duration {
    let queue = open(dir, Durability::Durable);
    let started = Instant::now();
    thread::scope(|s| {
        for p in 0..producers {
            let queue = &queue;
            s.spawn(move || {
                let publish = |m: &[Message]| queue.publish("bench", m).expect("publish");
                publish_share(&publish, payload, share(n, producers, p), batch);
            });
        }
    });
    started.elapsed()
}

fn server_publish(
    dir: &Path,
    payload: &[u8],
    n: usize,
    connections: usize,
    batch: usize,
) -> Duration {
    let queue = open(dir, Durability::Durable);
    let server = QueueServer::start(queue, QueueServerConfig::new()).expect("start server");
    let clients: Vec<QueueClient> = (0..connections)
        .map(|_| QueueClient::connect(server.local_addr()).expect("connect"))
        .collect();
    let started = Instant::now();
    thread::scope(|s| {
        for (p, client) in clients.iter().enumerate() {
            s.spawn(move || {
                let publish = |m: &[Message]| client.publish("bench", m).expect("publish");
                publish_share(&publish, payload, share(n, connections, p), batch);
            });
        }
    });
    started.elapsed()
}

/// A backlog of `n`, published buffered in batches of 1000 (not measured).
fn backlog(dir: &Path, payload: &[u8], n: usize) -> Arc<Queue> {
    let queue = open(dir, Durability::Buffered);
    let publish = |m: &[Message]| queue.publish("bench", m).expect("publish");
    publish_share(&publish, payload, n, 1000);
    queue
}

fn engine_consume(dir: &Path, payload: &[u8], n: usize) -> Duration {
    let queue = backlog(dir, payload, n);
    let sub = queue.subscribe("bench", "a").expect("subscribe");
    let started = Instant::now();
    let mut got = 0;
    while got < n {
        let batch = sub.next_batch(100, None).expect("next_batch");
        got += batch.len();
        let ids: Vec<_> = batch.iter().map(|r| r.id).collect();
        sub.ack(&ids).expect("ack");
    }
    started.elapsed()
}

fn server_consume(dir: &Path, payload: &[u8], n: usize) -> Duration {
    let queue = backlog(dir, payload, n);
    let server = QueueServer::start(queue, QueueServerConfig::new()).expect("start server");
    let client = QueueClient::connect(server.local_addr()).expect("connect");
    let started = Instant::now();
    let mut sub = client.subscribe_with("bench", "a", 100).expect("subscribe");
    for _ in 0..n {
        sub.recv().expect("recv").ack().expect("ack");
    }
    // Acks go out without a reply: close returns once the server has
    // applied them all.
    drop(sub);
    client.close().expect("close");
    started.elapsed()
}
