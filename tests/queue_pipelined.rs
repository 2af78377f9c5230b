//! Pipelined publishing: `Queue::send` and `Receipt::wait`, on both stores
//! where the store matters, and on a store that counts (or fails) syncs
//! where the number of syncs is the point. The kill -9 test is in
//! `queue_crash.rs`.
#![cfg(feature = "durable")]
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use syncmq::queue::{
    Batch, Durability, MemoryStore, Queue, QueueConfig, Space, Store, TopicConfig,
};
use syncmq::{Error, Message, Receipt};

fn config() -> QueueConfig {
    QueueConfig::new().with_topic(TopicConfig::new("t", ["a"]).with_ack_timeout(Duration::ZERO))
}

fn msg(body: &str) -> Message {
    Message::new(body.as_bytes().to_vec())
}

/// Every body subscriber `a` holds, in delivery order, acked.
fn drain(q: &Queue) -> Vec<String> {
    let a = q.subscribe("t", "a").unwrap();
    let mut bodies = Vec::new();
    loop {
        let batch = a.next_batch(1000, Some(Duration::ZERO)).unwrap();
        if batch.is_empty() {
            return bodies;
        }
        for r in &batch {
            bodies.push(String::from_utf8(r.message.body().to_vec()).unwrap());
        }
        let ids: Vec<_> = batch.iter().map(|r| r.id).collect();
        a.ack(&ids).unwrap();
    }
}

/// A memory store that counts syncs, makes each one slow (as an fsync is)
/// and fails them on demand; or holds each one until the test lets it go.
#[derive(Default)]
struct Syncs {
    inner: MemoryStore,
    count: AtomicUsize,
    fail: AtomicBool,
    delay_ms: u64,
    hold: Option<Hold>,
}

/// Every sync says that it started and then waits until the test lets it
/// go (or drops its sender): a sync that takes as long as the test wants.
struct Hold {
    started: Mutex<mpsc::Sender<()>>,
    release: Mutex<mpsc::Receiver<()>>,
}

impl Syncs {
    fn new(delay_ms: u64) -> Arc<Self> {
        Arc::new(Syncs {
            delay_ms,
            ..Syncs::default()
        })
    }
    /// A store whose syncs are held: a sync sends on the first receiver
    /// when it starts and ends when the second sender sends.
    fn held() -> (Arc<Self>, mpsc::Receiver<()>, mpsc::Sender<()>) {
        let (started_tx, started) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        let store = Arc::new(Syncs {
            hold: Some(Hold {
                started: Mutex::new(started_tx),
                release: Mutex::new(release_rx),
            }),
            ..Syncs::default()
        });
        (store, started, release)
    }
    fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

impl Store for Syncs {
    fn get(&self, space: Space, key: &[u8]) -> syncmq::Result<Option<Vec<u8>>> {
        self.inner.get(space, key)
    }
    fn scan(
        &self,
        space: Space,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> syncmq::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.inner.scan(space, from, to, limit)
    }
    fn write(&self, batch: Batch) -> syncmq::Result<()> {
        self.inner.write(batch)
    }
    fn flush(&self) -> syncmq::Result<()> {
        Ok(())
    }
    fn sync(&self) -> syncmq::Result<()> {
        self.count.fetch_add(1, Ordering::SeqCst);
        if let Some(hold) = &self.hold {
            // Nobody listening any more is fine: the test is past that.
            let _ = hold.started.lock().unwrap().send(());
            // Released, or the test dropped its sender: go on either way.
            let _ = hold.release.lock().unwrap().recv();
        }
        thread::sleep(Duration::from_millis(self.delay_ms));
        if self.fail.load(Ordering::SeqCst) {
            return Err(Error::storage_reason("test store", "disk on fire"));
        }
        Ok(())
    }
}

fn sends_keep_order_and_survive_a_restart(open: &dyn Fn() -> Queue) {
    let q = open();
    let receipts: Vec<Receipt> = (0..200)
        .map(|i| q.send("t", &[msg(&i.to_string())]).unwrap())
        .collect();
    assert!(
        receipts.windows(2).all(|w| w[0].ticket() < w[1].ticket()),
        "tickets follow the send order"
    );
    // Visible to consumers before anything waited.
    assert_eq!(q.stats("t").unwrap()[0].depth, 200);
    for r in receipts {
        r.wait().unwrap();
    }
    q.close().unwrap();
    drop(q);
    let expected: Vec<String> = (0..200).map(|i| i.to_string()).collect();
    assert_eq!(drain(&open()), expected);
}

#[test]
fn sends_keep_order_and_survive_a_restart_in_memory() {
    let store = MemoryStore::new();
    sends_keep_order_and_survive_a_restart(&|| {
        Queue::with_store(Arc::new(store.clone()), config()).unwrap()
    });
}

#[test]
fn sends_keep_order_and_survive_a_restart_on_fjall() {
    let dir = tempfile::tempdir().unwrap();
    sends_keep_order_and_survive_a_restart(&|| Queue::open(dir.path(), config()).unwrap());
}

#[test]
fn waiting_the_newest_receipt_covers_every_earlier_send() {
    let store = Syncs::new(1);
    let q = Queue::with_store(store.clone(), config()).unwrap();
    let mut receipts: Vec<Receipt> = (0..50)
        .map(|i| q.send("t", &[msg(&i.to_string())]).unwrap())
        .collect();
    assert_eq!(store.count(), 0, "send does not sync");
    receipts.pop().unwrap().wait().unwrap();
    assert_eq!(store.count(), 1);
    for r in receipts {
        r.wait().unwrap();
    }
    assert_eq!(store.count(), 1, "the earlier sends were covered");
    // An empty send has nothing to wait for.
    q.send("t", &[]).unwrap().wait().unwrap();
    assert_eq!(store.count(), 1);
}

#[test]
fn pipelined_producers_share_syncs_and_keep_their_order() {
    let store = Syncs::new(5);
    let q = Arc::new(Queue::with_store(store.clone(), config()).unwrap());
    let (producers, each, window) = (4, 200, 32);
    let threads: Vec<_> = (0..producers)
        .map(|p| {
            let q = q.clone();
            thread::spawn(move || {
                let mut outstanding = VecDeque::new();
                for i in 0..each {
                    if outstanding.len() == window {
                        let oldest: Receipt = outstanding.pop_front().unwrap();
                        oldest.wait().unwrap();
                    }
                    outstanding.push_back(q.send("t", &[msg(&format!("{p}-{i}"))]).unwrap());
                }
                for r in outstanding {
                    r.wait().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let total = producers * each;
    let syncs = store.count();
    // Every round covers at least the leader's own window, but for the
    // last few: about total / window syncs, whatever the scheduling.
    assert!(
        syncs <= total / (window / 2),
        "{syncs} syncs for {total} pipelined sends"
    );
    let seen = drain(&q);
    assert_eq!(seen.len(), total);
    for p in 0..producers {
        let order: Vec<usize> = seen
            .iter()
            .filter_map(|s| s.strip_prefix(&format!("{p}-")))
            .map(|i| i.parse().unwrap())
            .collect();
        assert_eq!(order, (0..each).collect::<Vec<_>>(), "producer {p}");
    }
}

#[test]
fn receipts_can_be_waited_on_another_thread() {
    let q = Queue::memory(config()).unwrap();
    let receipt = q.send("t", &[msg("x")]).unwrap();
    thread::spawn(move || receipt.wait())
        .join()
        .unwrap()
        .unwrap();
}

#[test]
fn send_after_close_is_an_error_and_outstanding_receipts_are_settled() {
    let store = Syncs::new(1);
    let q = Queue::with_store(store.clone(), config()).unwrap();
    let receipts: Vec<Receipt> = (0..10)
        .map(|i| q.send("t", &[msg(&i.to_string())]).unwrap())
        .collect();
    q.close().unwrap();
    assert_eq!(store.count(), 1, "close syncs once");
    assert!(matches!(q.send("t", &[msg("late")]), Err(Error::Closed(_))));
    for r in receipts {
        r.wait().unwrap();
    }
    assert_eq!(store.count(), 1, "close's sync covered the receipts");
}

#[test]
fn a_failed_sync_fails_this_and_every_later_wait() {
    let store = Syncs::new(0);
    let q = Queue::with_store(store.clone(), config()).unwrap();
    q.send("t", &[msg("ok")]).unwrap().wait().unwrap();
    store.fail.store(true, Ordering::SeqCst);
    let first = q.send("t", &[msg("lost?")]).unwrap();
    let second = q.send("t", &[msg("lost too?")]).unwrap();
    assert!(matches!(first.wait(), Err(Error::Storage { .. })));
    assert!(matches!(second.wait(), Err(Error::Storage { .. })));
    assert!(matches!(
        q.publish("t", &[msg("later")]),
        Err(Error::Storage { .. })
    ));
}

#[test]
fn bad_input_to_send_writes_nothing() {
    let q = Queue::memory(config()).unwrap();
    assert!(matches!(
        q.send("nope", &[msg("x")]),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(q.stats("t").unwrap()[0].depth, 0);
}

#[test]
fn buffered_receipts_do_not_sync() {
    let store = Syncs::new(1);
    let q = Queue::with_store(
        store.clone(),
        config().with_durability(Durability::Buffered),
    )
    .unwrap();
    for i in 0..20 {
        q.send("t", &[msg(&i.to_string())]).unwrap().wait().unwrap();
    }
    assert_eq!(store.count(), 0);
    assert_eq!(drain(&q).len(), 20);
}

#[test]
fn wait_timeout_gives_up_while_another_publishers_sync_runs() {
    let (store, started, release) = Syncs::held();
    let q = Queue::with_store(store.clone(), config()).unwrap();
    let first = q.send("t", &[msg("first")]).unwrap();
    let leader = thread::spawn(move || first.wait());
    started.recv().unwrap(); // the leader is inside its sync, held
    let second = q.send("t", &[msg("second")]).unwrap();
    let waited = Instant::now();
    let timeout = Duration::from_millis(50);
    match second.wait_timeout(timeout) {
        Err(Error::Timeout { after, .. }) => assert!(after >= timeout, "{after:?}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(waited.elapsed() >= timeout, "gave up early");
    release.send(()).unwrap();
    leader.join().unwrap().unwrap();
    // The timed-out send was written all the same; a later wait (this one
    // leads its own sync) covers it, well within its time.
    let third = q.send("t", &[msg("third")]).unwrap();
    release.send(()).unwrap();
    third.wait_timeout(Duration::from_secs(60)).unwrap();
    started.recv().unwrap();
    assert_eq!(
        store.count(),
        2,
        "one sync each for the leader and the third"
    );
    drop(release); // close's sync goes through unheld
    assert_eq!(drain(&q), ["first", "second", "third"]);
    q.close().unwrap();
}

#[test]
fn wait_timeout_returns_ok_once_durable_and_a_settled_receipt_at_once() {
    let store = Syncs::new(1);
    let q = Queue::with_store(store.clone(), config()).unwrap();
    let receipt = q.send("t", &[msg("x")]).unwrap();
    assert_eq!(receipt.ticket(), 1);
    receipt.wait_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(store.count(), 1, "the timed wait led the sync");
    // Nothing to wait for: no sync, and no timeout even at zero.
    let empty = q.send("t", &[]).unwrap();
    assert_eq!(empty.ticket(), 0);
    empty.wait_timeout(Duration::ZERO).unwrap();
    assert_eq!(store.count(), 1);
}
