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
//! commit, compared with fsync per 100), from 4 pipelined producers (each
//! `send`s and keeps up to `--window` receipts outstanding, waiting for the
//! oldest when the window is full; compared with fsync per 100), and in
//! batches of 100; buffered publish; end to end (4 producers, one message
//! or 100 per publish, or pipelined, one consumer taking `next_batch(100)`
//! and acking each batch); and a backlog drained: `--backlog` messages
//! published in batches of 1000, buffered, then taken
//! and acked, with the process's peak RSS; and reopen: `--reopen`
//! messages published, taken and acked, the queue closed, then the time of
//! `Queue::open` plus the first (empty) `next_batch`, which a clean close
//! keeps independent of how much was ever written.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
use fjall::{Database, KeyspaceCreateOptions, PersistMode};
use syncmq::queue::{Durability, Queue, QueueConfig, TopicConfig};
use syncmq::Message;
use syncmq::Receipt;

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
    /// Messages published and acked before the reopen case (0 skips it).
    #[arg(long, default_value_t = 1_000_000)]
    pub reopen: usize,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Runs per case; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Receipts each pipelined producer keeps outstanding (`Queue::send`,
    /// waiting for the oldest when the window is full).
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    /// Where the databases go (a fresh directory per run, deleted after);
    /// put it on the disk you care about, not on tmpfs.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Instead of the cases above, where the durable rate comes from:
    /// producers 1, 2, 4, 8 against windows 1, 16, 64, 256, then message
    /// sizes 100 B, 1 KiB and 64 KiB (4 producers, window 64), each against
    /// raw fjall's fsync per message at the same size.
    #[arg(long)]
    pub scaling: bool,
    /// Runs only the cases whose name contains this text (and the raw
    /// baselines they are compared with); "drain" picks the backlog drain,
    /// "reopen" the reopen case.
    #[arg(long)]
    pub only: Option<String>,
}

const RAW_EACH: &str = "raw fjall, fsync per message";
const RAW_100: &str = "raw fjall, fsync per 100";
const RAW_BUF: &str = "raw fjall, buffered (to the OS)";
const PRODUCERS: usize = 4;

type Case = (
    &'static str,
    Option<&'static str>,
    fn(&Path, &[u8], usize, usize) -> Duration,
);

/// Set in a child process that runs one backlog drain (`raw` or `engine`)
/// and prints its time and peak RSS.
const BACKLOG_CHILD: &str = "SYNCMQ_BENCH_BACKLOG_CHILD";

pub fn run(load: QueueLoad) -> Table {
    if load.scaling {
        return scaling(&load);
    }
    if let Ok(which) = std::env::var(BACKLOG_CHILD) {
        let base = load.dir.unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("syncmq-bench-")
            .tempdir_in(&base)
            .expect("a bench directory");
        let payload = vec![0xA5u8; load.size];
        let took = match which.as_str() {
            "raw" => raw_drain(dir.path(), &payload, load.backlog, false),
            "raw-capped" => raw_drain(dir.path(), &payload, load.backlog, true),
            _ => drain_backlog(dir.path(), &payload, load.backlog),
        };
        println!("{} {}", took.as_nanos(), peak_rss_mb());
        std::process::exit(0);
    }
    let payload = vec![0xA5u8; load.size];
    let cases: [Case; 13] = [
        (RAW_EACH, None, |d, p, n, _| raw_each(d, p, n)),
        (RAW_100, None, |d, p, n, _| raw_per_100(d, p, n)),
        (RAW_BUF, None, |d, p, n, _| raw_buffered(d, p, n)),
        (
            "engine, durable, 1 producer",
            Some(RAW_EACH),
            |d, p, n, _| publish(d, p, n, 1, 1, 0, Durability::Durable),
        ),
        (
            "engine, durable, 4 producers (group commit)",
            Some(RAW_100),
            |d, p, n, _| publish(d, p, n, PRODUCERS, 1, 0, Durability::Durable),
        ),
        (
            "engine, durable, 4 producers, pipelined (window W)",
            Some(RAW_100),
            |d, p, n, w| publish(d, p, n, PRODUCERS, 1, w, Durability::Durable),
        ),
        (
            "engine, durable, batches of 100",
            Some(RAW_100),
            |d, p, n, _| publish(d, p, n, 1, 100, 0, Durability::Durable),
        ),
        (
            "engine, buffered, 1 producer",
            Some(RAW_BUF),
            |d, p, n, _| publish(d, p, n, 1, 1, 0, Durability::Buffered),
        ),
        (
            "engine, buffered, 4 producers",
            Some(RAW_BUF),
            |d, p, n, _| publish(d, p, n, PRODUCERS, 1, 0, Durability::Buffered),
        ),
        (
            "end to end: 4 durable producers -> next_batch -> ack",
            Some(RAW_100),
            |d, p, n, _| end_to_end(d, p, n, 1, 0, Durability::Durable),
        ),
        (
            "end to end: 4 pipelined producers (window W)",
            Some(RAW_100),
            |d, p, n, w| end_to_end(d, p, n, 1, w, Durability::Durable),
        ),
        (
            "end to end: 4 durable producers, batches of 100",
            Some(RAW_100),
            |d, p, n, _| end_to_end(d, p, n, 100, 0, Durability::Durable),
        ),
        (
            "end to end: 4 buffered producers",
            Some(RAW_BUF),
            |d, p, n, _| end_to_end(d, p, n, 1, 0, Durability::Buffered),
        ),
    ];
    let picked = |name: &str| load.only.as_deref().is_none_or(|only| name.contains(only));
    // A case runs when picked, a baseline also when a picked case needs it.
    let runs: Vec<bool> = cases
        .iter()
        .map(|(name, _, _)| {
            picked(name)
                || cases
                    .iter()
                    .any(|(other, base, _)| *base == Some(*name) && picked(other))
        })
        .collect();
    let base = load.dir.unwrap_or_else(std::env::temp_dir);
    let mut durations = vec![Vec::new(); cases.len()];
    for _ in 0..load.runs.max(1) {
        for (i, (_, _, f)) in cases.iter().enumerate() {
            if !runs[i] {
                continue;
            }
            let dir = tempfile::Builder::new()
                .prefix("syncmq-bench-")
                .tempdir_in(&base)
                .expect("a bench directory");
            durations[i].push(f(dir.path(), &payload, load.messages, load.window.max(1)));
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
        if !runs[i] {
            continue;
        }
        let case = &case.replace("window W", &format!("window {}", load.window.max(1)));
        match baseline {
            None => table.baseline(case, load.messages, load.size, &durations[i]),
            Some(b) => table.compared(case, b, load.messages, load.size, &durations[i]),
        }
    }
    if load.backlog > 0 && picked("engine: drain backlog") {
        // Each drain runs in a child process of its own, so that its peak
        // RSS is its own and not what earlier cases left in the allocator.
        // Raw fjall twice: with its defaults (64 MiB memtables, which a
        // drain of this size never writes to tables), and with the
        // engine's memtable and cache sizes, which keep the memory under
        // 64 MB and make fjall flush and compact while it drains: the
        // engine is compared with the raw loop under the same budget.
        let (raw, raw_rss) = backlog_in_child("raw", &base, load.size, load.backlog);
        let (capped, capped_rss) = backlog_in_child("raw-capped", &base, load.size, load.backlog);
        let (took, rss) = backlog_in_child("engine", &base, load.size, load.backlog);
        let raw_case = format!("raw fjall: drain backlog, defaults, peak RSS {raw_rss:.0} MB");
        table.baseline(&raw_case, load.backlog, load.size, &[raw]);
        let raw_case =
            format!("raw fjall: drain backlog, engine settings, peak RSS {capped_rss:.0} MB");
        table.baseline(&raw_case, load.backlog, load.size, &[capped]);
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
    if load.reopen > 0 && picked("engine: reopen") {
        // Raw and engine runs alternate, each in a fresh directory.
        let (mut raw, mut engine) = (Vec::new(), Vec::new());
        for _ in 0..load.runs.max(1) {
            for (samples, reopen) in [
                (
                    &mut raw,
                    raw_reopen_after as fn(&Path, &[u8], usize) -> Duration,
                ),
                (&mut engine, reopen_after),
            ] {
                let dir = tempfile::Builder::new()
                    .prefix("syncmq-bench-")
                    .tempdir_in(&base)
                    .expect("a bench directory");
                samples.push(reopen(dir.path(), &payload, load.reopen));
            }
        }
        let raw_case = format!(
            "raw fjall: reopen after {} inserts and removes, open + first read",
            load.reopen
        );
        table.latency(&raw_case, None, &raw);
        table.latency(
            &format!(
                "engine: reopen after {} messages (all acked), open + first next_batch",
                load.reopen
            ),
            Some(&raw_case),
            &engine,
        );
    }
    table
}

/// `--scaling`: durable publishes by producers x window, then by message
/// size. A window of 1 is a `publish` that waits for its own sync.
fn scaling(load: &QueueLoad) -> Table {
    const PRODUCERS: [usize; 4] = [1, 2, 4, 8];
    const WINDOWS: [usize; 4] = [1, 16, 64, 256];
    const SIZES: [usize; 3] = [100, 1024, 64 << 10];
    // The large messages stop at about 200 MB a run.
    let count = |size: usize| load.messages.min((200 << 20) / size).max(1);
    let base = load.dir.clone().unwrap_or_else(std::env::temp_dir);
    let fresh = || {
        tempfile::Builder::new()
            .prefix("syncmq-bench-")
            .tempdir_in(&base)
            .expect("a bench directory")
    };
    let grid: Vec<(usize, usize)> = PRODUCERS
        .iter()
        .flat_map(|&p| WINDOWS.iter().map(move |&w| (p, w)))
        .collect();
    let mut raw = vec![Vec::new(); SIZES.len()];
    let mut by_grid = vec![Vec::new(); grid.len()];
    let mut by_size = vec![Vec::new(); SIZES.len()];
    for _ in 0..load.runs.max(1) {
        for (i, &size) in SIZES.iter().enumerate() {
            let payload = vec![0xA5u8; size];
            raw[i].push(raw_each(fresh().path(), &payload, count(size)));
            by_size[i].push(publish(
                fresh().path(),
                &payload,
                count(size),
                4,
                1,
                64,
                Durability::Durable,
            ));
        }
        let payload = vec![0xA5u8; load.size];
        for (i, &(producers, window)) in grid.iter().enumerate() {
            // Window 1: each publish waits for its sync (`window` 0 here).
            let window = if window == 1 { 0 } else { window };
            by_grid[i].push(publish(
                fresh().path(),
                &payload,
                load.messages,
                producers,
                1,
                window,
                Durability::Durable,
            ));
        }
    }
    let mut table = Table::new(format!(
        "bench queue --scaling: durable publishes, {} messages (fewer of 64 KiB), median of {} runs, in {}",
        load.messages,
        load.runs,
        base.display()
    ));
    let raw_case = |size: usize| format!("raw fjall, fsync per message, {size} B");
    for (i, &size) in SIZES.iter().enumerate() {
        table.baseline(&raw_case(size), count(size), size, &raw[i]);
    }
    let base_index = SIZES.iter().position(|&s| s == load.size);
    for (i, &(producers, window)) in grid.iter().enumerate() {
        let case = format!("{producers} producers, window {window}, {} B", load.size);
        match base_index {
            Some(b) => table.compared(
                &case,
                &raw_case(SIZES[b]),
                load.messages,
                load.size,
                &by_grid[i],
            ),
            None => table.baseline(&case, load.messages, load.size, &by_grid[i]),
        }
    }
    for (i, &size) in SIZES.iter().enumerate() {
        table.compared(
            &format!("4 producers, window 64, {size} B"),
            &raw_case(size),
            count(size),
            size,
            &by_size[i],
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

/// As [`open_raw`], with the engine's settings: 4 MiB memtables, an 8 MiB
/// block cache (`src/queue/fjall_store.rs`) and at least three workers
/// (`src/fjall_workers.rs`: with fjall's two on two cores, one spins
/// through every compaction).
fn open_raw_capped(dir: &Path) -> (Database, fjall::Keyspace) {
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let db = Database::builder(dir)
        .manual_journal_persist(true)
        .cache_size(8 << 20)
        .worker_threads(workers.clamp(3, 4))
        .open()
        .expect("open fjall");
    let ks = db
        .keyspace("bench", || {
            KeyspaceCreateOptions::default().max_memtable_size(4 << 20)
        })
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

/// Raw fjall: fills `n` entries in batches of 1,000 (not timed), then
/// drains them: range scans of 1,000 and a batch of weak removes each.
/// `capped` opens fjall with the engine's memtable and block cache sizes.
fn raw_drain(dir: &Path, payload: &[u8], n: usize, capped: bool) -> Duration {
    let (db, ks) = if capped {
        open_raw_capped(dir)
    } else {
        open_raw(dir)
    };
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

/// Publishes `n` messages from `producers` threads, `batch` per call: with
/// `window` 0 each `publish` waits for its sync; otherwise each producer
/// `send`s and keeps up to `window` receipts outstanding.
fn publish(
    dir: &Path,
    payload: &[u8],
    n: usize,
    producers: usize,
    batch: usize,
    window: usize,
    durability: Durability,
) -> Duration {
    let queue = Arc::new(Queue::open(dir, config(durability)).expect("open queue"));
    let started = Instant::now();
    produce(&queue, payload, n, producers, batch, window);
    started.elapsed()
}

/// The producers of [`publish`] and [`end_to_end`]; returns when all of
/// them are done and every message is durable.
fn produce(
    queue: &Arc<Queue>,
    payload: &[u8],
    n: usize,
    producers: usize,
    batch: usize,
    window: usize,
) {
    let threads: Vec<_> = (0..producers)
        .map(|p| {
            let queue = queue.clone();
            let payload = payload.to_vec();
            let share = n / producers + usize::from(p < n % producers);
            thread::spawn(move || {
                let mut outstanding: VecDeque<Receipt> = VecDeque::with_capacity(window);
                let mut left = share;
                while left > 0 {
                    let k = left.min(batch);
                    let messages: Vec<Message> =
                        (0..k).map(|_| Message::new(payload.clone())).collect();
                    if window == 0 {
                        queue.publish("bench", &messages).expect("publish");
                    } else {
                        if outstanding.len() >= window {
                            if let Some(oldest) = outstanding.pop_front() {
                                oldest.wait().expect("wait");
                            }
                        }
                        outstanding.push_back(queue.send("bench", &messages).expect("send"));
                    }
                    left -= k;
                }
                for receipt in outstanding {
                    receipt.wait().expect("wait");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("producer");
    }
}

fn end_to_end(
    dir: &Path,
    payload: &[u8],
    n: usize,
    batch: usize,
    window: usize,
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
    produce(&queue, payload, n, PRODUCERS, batch, window);
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

/// Publishes, takes and acks `n` messages, closes the queue, and times the
/// reopen: `Queue::open` and the first `next_batch`, which finds nothing.
fn reopen_after(dir: &Path, payload: &[u8], n: usize) -> Duration {
    {
        let queue = Queue::open(dir, config(Durability::Buffered)).expect("open queue");
        let sub = queue.subscribe("bench", "a").expect("subscribe");
        let mut left = n;
        while left > 0 {
            let k = left.min(1000);
            let messages: Vec<Message> = (0..k).map(|_| Message::new(payload.to_vec())).collect();
            queue.publish("bench", &messages).expect("publish");
            let batch = sub.next_batch(k, None).expect("next_batch");
            let ids: Vec<_> = batch.iter().map(|r| r.id).collect();
            sub.ack(&ids).expect("ack");
            left -= k;
        }
        queue.close().expect("close");
    }
    let started = Instant::now();
    let queue = Queue::open(dir, config(Durability::Buffered)).expect("reopen queue");
    let sub = queue.subscribe("bench", "a").expect("subscribe");
    let got = sub.next_batch(1, Some(Duration::ZERO)).expect("next_batch");
    let took = started.elapsed();
    assert!(got.is_empty(), "every message was acked before the reopen");
    took
}

/// Raw fjall's share of a reopen: `n` messages inserted and removed again
/// in batches of 1,000 (one keyspace, the engine's memtable size), the
/// database dropped, then the time to open it and read its first key.
/// fjall replays its active journal (up to 64 MB) at every open, whatever
/// is already in tables; the engine's clean close starts a fresh journal
/// (see `FjallStore`), so this is what a plain fjall user pays, not a floor.
fn raw_reopen_after(dir: &Path, payload: &[u8], n: usize) -> Duration {
    let open = || open_raw_capped(dir);
    {
        let (db, ks) = open();
        let mut next = 0u64;
        while next < n as u64 {
            let k = (n as u64 - next).min(1000);
            let mut batch = db.batch();
            for i in next..next + k {
                batch.insert(&ks, i.to_be_bytes(), payload);
            }
            batch.commit().expect("commit");
            let mut batch = db.batch();
            for i in next..next + k {
                batch.remove(&ks, i.to_be_bytes());
            }
            batch.commit().expect("commit");
            next += k;
        }
        db.persist(PersistMode::SyncAll).expect("persist");
    }
    let started = Instant::now();
    let (_db, ks) = open();
    let first = ks.first_key_value();
    let took = started.elapsed();
    assert!(first.is_none(), "every key was removed before the reopen");
    took
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
