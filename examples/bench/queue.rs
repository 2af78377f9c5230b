//! `bench queue`: the queue engine against raw fjall, measured in the same
//! run on the same disk, with the same 100-byte payloads.
//!
//! Baselines, each a plain fjall keyspace with big-endian keys:
//!
//! - raw fjall, fsync per message: `insert`, then `persist(SyncData)`;
//! - raw fjall, fsync per 100: 100 `insert`s, then one `persist(SyncData)`;
//! - raw fjall, buffered: `insert`, then `persist(Buffer)` (to the OS).
//!
//! Engine cases: durable publish from 1 producer (one message per
//! `publish`, compared with fsync per message), from 4 producers (group
//! commit, compared with fsync per 100), and in batches of 100; buffered
//! publish; end to end (4 producers, one message or 100 per publish, one
//! consumer taking `next_batch(100)` and acking each batch); and a backlog
//! drained:
//! `--backlog` messages published in batches of 1000, buffered, then taken
//! and acked, with the process's peak RSS.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
use fjall::{Database, KeyspaceCreateOptions, PersistMode};
use syncmq::queue::{Durability, Queue, QueueConfig, TopicConfig};
use syncmq::Message;

use crate::report::Table;

/// The load of `bench queue`.
#[derive(Args, Clone)]
pub struct QueueLoad {
    /// Messages per run of the durable and buffered cases.
    #[arg(long, default_value_t = 20_000)]
    pub messages: usize,
    /// Messages in the drained backlog (0 skips that case).
    #[arg(long, default_value_t = 1_000_000)]
    pub backlog: usize,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Runs per case; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Where the databases go (a fresh directory per run, deleted after);
    /// put it on the disk you care about, not on tmpfs.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

const RAW_EACH: &str = "raw fjall, fsync per message";
const RAW_100: &str = "raw fjall, fsync per 100";
const RAW_BUF: &str = "raw fjall, buffered (to the OS)";
const PRODUCERS: usize = 4;

type Case = (
    &'static str,
    Option<&'static str>,
    fn(&Path, &[u8], usize) -> Duration,
);

/// Set in a child process that runs one backlog drain (`raw` or `engine`)
/// and prints its time and peak RSS.
const BACKLOG_CHILD: &str = "SYNCMQ_BENCH_BACKLOG_CHILD";

pub fn run(load: QueueLoad) -> Table {
    if let Ok(which) = std::env::var(BACKLOG_CHILD) {
        let base = load.dir.clone().unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("syncmq-bench-")
            .tempdir_in(&base)
            .expect("a bench directory");
        let payload = vec![0xA5u8; load.size];
        let took = match which.as_str() {
            "raw" => raw_drain(dir.path(), &payload, load.backlog),
            _ => drain_backlog(dir.path(), &payload, load.backlog),
        };
        println!("{} {}", took.as_nanos(), peak_rss_mb());
        std::process::exit(0);
    }
    let payload = vec![0xA5u8; load.size];
    let cases: [Case; 11] = [
        (RAW_EACH, None, raw_each),
        (RAW_100, None, raw_per_100),
        (RAW_BUF, None, raw_buffered),
        ("engine, durable, 1 producer", Some(RAW_EACH), |d, p, n| {
            publish(d, p, n, 1, 1, Durability::Durable)
        }),
        (
            "engine, durable, 4 producers (group commit)",
            Some(RAW_100),
            |d, p, n| publish(d, p, n, PRODUCERS, 1, Durability::Durable),
        ),
        (
            "engine, durable, batches of 100",
            Some(RAW_100),
            |d, p, n| publish(d, p, n, 1, 100, Durability::Durable),
        ),
        ("engine, buffered, 1 producer", Some(RAW_BUF), |d, p, n| {
            publish(d, p, n, 1, 1, Durability::Buffered)
        }),
        ("engine, buffered, 4 producers", Some(RAW_BUF), |d, p, n| {
            publish(d, p, n, PRODUCERS, 1, Durability::Buffered)
        }),
        (
            "end to end: 4 durable producers -> next_batch -> ack",
            Some(RAW_100),
            |d, p, n| end_to_end(d, p, n, 1, Durability::Durable),
        ),
        (
            "end to end: 4 durable producers, batches of 100",
            Some(RAW_100),
            |d, p, n| end_to_end(d, p, n, 100, Durability::Durable),
        ),
        (
            "end to end: 4 buffered producers",
            Some(RAW_BUF),
            |d, p, n| end_to_end(d, p, n, 1, Durability::Buffered),
        ),
    ];
    let base = load.dir.clone().unwrap_or_else(std::env::temp_dir);
    let mut durations = vec![Vec::new(); cases.len()];
    for _ in 0..load.runs.max(1) {
        for (i, (_, _, f)) in cases.iter().enumerate() {
            let dir = tempfile::Builder::new()
                .prefix("syncmq-bench-")
                .tempdir_in(&base)
                .expect("a bench directory");
            durations[i].push(f(dir.path(), &payload, load.messages));
        }
    }
    let mut table = Table::new(format!(
        "bench queue: {} messages of {} bytes, median of {} runs, in {}",
        load.messages,
        load.size,
        load.runs,
        base.display()
    ));
    for (i, (case, baseline, _)) in cases.iter().enumerate() {
        match baseline {
            None => table.baseline(case, load.messages, load.size, &durations[i]),
            Some(b) => table.compared(case, b, load.messages, load.size, &durations[i]),
        }
    }
    if load.backlog > 0 {
        // Each drain runs in a child process of its own, so that its peak
        // RSS is its own and not what earlier cases left in the allocator.
        let (raw, raw_rss) = backlog_in_child("raw", &base, load.size, load.backlog);
        let (took, rss) = backlog_in_child("engine", &base, load.size, load.backlog);
        let raw_case = format!("raw fjall: drain backlog, peak RSS {raw_rss:.0} MB");
        table.baseline(&raw_case, load.backlog, load.size, &[raw]);
        table.compared(
            &format!(
                "engine: drain {} backlog, peak RSS {rss:.0} MB",
                load.backlog
            ),
            &raw_case,
            load.backlog,
            load.size,
            &[took],
        );
    }
    table
}

fn open_raw(dir: &Path) -> (Database, fjall::Keyspace) {
    let db = Database::builder(dir)
        .manual_journal_persist(true)
        .open()
        .expect("open fjall");
    let ks = db
        .keyspace("bench", KeyspaceCreateOptions::default)
        .expect("keyspace");
    (db, ks)
}

fn raw_each(dir: &Path, payload: &[u8], n: usize) -> Duration {
    let (db, ks) = open_raw(dir);
    let started = Instant::now();
    for i in 0..n as u64 {
        ks.insert(i.to_be_bytes(), payload).expect("insert");
        db.persist(PersistMode::SyncData).expect("persist");
    }
    started.elapsed()
}

fn raw_per_100(dir: &Path, payload: &[u8], n: usize) -> Duration {
    let (db, ks) = open_raw(dir);
    let started = Instant::now();
    for i in 0..n as u64 {
        ks.insert(i.to_be_bytes(), payload).expect("insert");
        if i % 100 == 99 {
            db.persist(PersistMode::SyncData).expect("persist");
        }
    }
    db.persist(PersistMode::SyncData).expect("persist");
    started.elapsed()
}

fn raw_buffered(dir: &Path, payload: &[u8], n: usize) -> Duration {
    let (db, ks) = open_raw(dir);
    let started = Instant::now();
    for i in 0..n as u64 {
        ks.insert(i.to_be_bytes(), payload).expect("insert");
        db.persist(PersistMode::Buffer).expect("persist");
    }
    started.elapsed()
}

fn raw_drain(dir: &Path, payload: &[u8], n: usize) -> Duration {
    let (db, ks) = open_raw(dir);
    for chunk in (0..n as u64).collect::<Vec<_>>().chunks(1000) {
        let mut batch = db.batch();
        for i in chunk {
            batch.insert(&ks, i.to_be_bytes(), payload);
        }
        batch.commit().expect("commit");
    }
    db.persist(PersistMode::Buffer).expect("persist");
    let started = Instant::now();
    let mut from = 0u64;
    loop {
        let keys: Vec<_> = ks
            .range(from.to_be_bytes()..)
            .take(1000)
            .map(|g| g.into_inner().expect("read"))
            .collect();
        let Some((last, _)) = keys.last() else { break };
        from = u64::from_be_bytes(last[..].try_into().expect("8 bytes")) + 1;
        let mut batch = db.batch();
        for (k, _) in &keys {
            batch.remove_weak(&ks, k.clone());
        }
        batch.commit().expect("commit");
    }
    started.elapsed()
}

fn config(durability: Durability) -> QueueConfig {
    QueueConfig::new()
        .with_durability(durability)
        .with_topic(TopicConfig::new("bench", ["a"]).with_ack_timeout(Duration::ZERO))
}

fn publish(
    dir: &Path,
    payload: &[u8],
    n: usize,
    producers: usize,
    batch: usize,
    durability: Durability,
) -> Duration {
    let queue = Arc::new(Queue::open(dir, config(durability)).expect("open queue"));
    let started = Instant::now();
    let threads: Vec<_> = (0..producers)
        .map(|p| {
            let queue = queue.clone();
            let payload = payload.to_vec();
            let share = n / producers + usize::from(p < n % producers);
            thread::spawn(move || {
                let mut left = share;
                while left > 0 {
                    let k = left.min(batch);
                    let messages: Vec<Message> =
                        (0..k).map(|_| Message::new(payload.clone())).collect();
                    queue.publish("bench", &messages).expect("publish");
                    left -= k;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("producer");
    }
    started.elapsed()
}

fn end_to_end(
    dir: &Path,
    payload: &[u8],
    n: usize,
    batch: usize,
    durability: Durability,
) -> Duration {
    let queue = Arc::new(Queue::open(dir, config(durability)).expect("open queue"));
    let sub = queue.subscribe("bench", "a").expect("subscribe");
    let started = Instant::now();
    let consumer = thread::spawn(move || {
        let mut got = 0;
        while got < n {
            let batch = sub.next_batch(100, None).expect("next_batch");
            got += batch.len();
            let ids: Vec<_> = batch.iter().map(|r| r.id).collect();
            sub.ack(&ids).expect("ack");
        }
    });
    let took_publish = {
        let payload = payload.to_vec();
        let queue = queue.clone();
        thread::spawn(move || {
            let threads: Vec<_> = (0..PRODUCERS)
                .map(|p| {
                    let queue = queue.clone();
                    let payload = payload.clone();
                    let share = n / PRODUCERS + usize::from(p < n % PRODUCERS);
                    thread::spawn(move || {
                        let mut left = share;
                        while left > 0 {
                            let k = left.min(batch);
                            let messages: Vec<Message> =
                                (0..k).map(|_| Message::new(payload.clone())).collect();
                            queue.publish("bench", &messages).expect("publish");
                            left -= k;
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().expect("producer");
            }
        })
    };
    took_publish.join().expect("producers");
    consumer.join().expect("consumer");
    started.elapsed()
}

fn drain_backlog(dir: &Path, payload: &[u8], n: usize) -> Duration {
    let queue = Queue::open(dir, config(Durability::Buffered)).expect("open queue");
    let mut left = n;
    while left > 0 {
        let k = left.min(1000);
        let messages: Vec<Message> = (0..k).map(|_| Message::new(payload.to_vec())).collect();
        queue.publish("bench", &messages).expect("publish");
        left -= k;
    }
    let sub = queue.subscribe("bench", "a").expect("subscribe");
    let started = Instant::now();
    let mut got = 0;
    while got < n {
        let batch = sub
            .next_batch(1000, Some(Duration::from_secs(10)))
            .expect("next_batch");
        assert!(!batch.is_empty(), "the backlog ran dry at {got} of {n}");
        got += batch.len();
        let ids: Vec<_> = batch.iter().map(|r| r.id).collect();
        sub.ack(&ids).expect("ack");
    }
    started.elapsed()
}

/// Runs one backlog drain in a child process; its duration and peak RSS.
fn backlog_in_child(which: &str, base: &Path, size: usize, backlog: usize) -> (Duration, f64) {
    let out = std::process::Command::new(std::env::current_exe().expect("the bench binary"))
        .args([
            "queue",
            "--backlog",
            &backlog.to_string(),
            "--size",
            &size.to_string(),
        ])
        .arg("--dir")
        .arg(base)
        .env(BACKLOG_CHILD, which)
        .output()
        .expect("run the backlog child");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace();
    let nanos: u64 = parts
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "backlog child failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let rss: f64 = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0.0);
    (Duration::from_nanos(nanos), rss)
}

/// The process's peak resident set, from /proc (0 where there is none).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
