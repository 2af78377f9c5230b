//! Regression tests for the queue defects of issue 11: inputs that made
//! fjall panic, panics that left the engine or a server connection broken,
//! client requests that could block for ever, stale acks, and delivery
//! counts that a restart forgot.
#![cfg(all(feature = "durable", feature = "cli"))]
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use syncmq::queue::{
    Batch, KeyValue, ManualClock, MemoryStore, Op, Queue, QueueConfig, Space, Store, TopicConfig,
};
use syncmq::server::{
    QueueClient, QueueClientConfig, QueueServer, QueueServerConfig, DEFAULT_REQUEST_TIMEOUT,
};
use syncmq::{Error, Message};

/// A memory store that panics, once armed, on the next write of a message
/// or the next scan of dead letters: a stand-in for fjall panicking on some
/// input deep inside a call.
#[derive(Clone, Default)]
struct PanickingStore {
    inner: MemoryStore,
    panic_on_write: Arc<AtomicBool>,
    panic_on_dead_scan: Arc<AtomicBool>,
}

impl Store for PanickingStore {
    fn get(&self, space: Space, key: &[u8]) -> syncmq::Result<Option<Vec<u8>>> {
        self.inner.get(space, key)
    }
    fn scan(
        &self,
        space: Space,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> syncmq::Result<Vec<KeyValue>> {
        let armed =
            space == Space::DeadLetters && self.panic_on_dead_scan.swap(false, Ordering::SeqCst);
        assert!(!armed, "test store: scan of dead letters");
        self.inner.scan(space, from, to, limit)
    }
    fn write(&self, batch: Batch) -> syncmq::Result<()> {
        let has_message = batch
            .ops
            .iter()
            .any(|op| matches!(op, Op::Put(Space::Messages, ..)));
        let armed = has_message && self.panic_on_write.swap(false, Ordering::SeqCst);
        assert!(!armed, "test store: write of a message");
        self.inner.write(batch)
    }
    fn flush(&self) -> syncmq::Result<()> {
        self.inner.flush()
    }
    fn sync(&self) -> syncmq::Result<()> {
        self.inner.sync()
    }
}

fn body(i: usize) -> Message {
    Message::new(format!("m{i}").into_bytes())
}

/// Takes everything `sub` has ready, acking it, and returns the bodies.
fn drain(queue: &Queue, topic: &str, sub: &str) -> Vec<String> {
    let s = queue.subscribe(topic, sub).unwrap();
    let mut out = Vec::new();
    loop {
        let got = s.next_batch(100, Some(Duration::ZERO)).unwrap();
        if got.is_empty() {
            return out;
        }
        for r in got {
            out.push(String::from_utf8(r.message.body().to_vec()).unwrap());
            s.ack(&[r.id]).unwrap();
        }
    }
}

/// Issue 11, item 1: a 70,000-byte dedupe key made lsm-tree panic, the
/// sequence block reserved before the panic stayed in memory, and after a
/// reopen later publishes that returned `Ok` were overwritten.
#[test]
fn an_oversized_dedupe_key_is_refused_and_later_publishes_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = || QueueConfig::new().with_topic(TopicConfig::new("t", ["a"]).with_dedupe(true));
    {
        let queue = Queue::open(dir.path(), config()).unwrap();
        let long = Message::new(b"long".to_vec()).with_key("k".repeat(70_000));
        match queue.publish("t", &[body(0), long]) {
            Err(Error::InvalidArgument { name, reason }) => {
                assert_eq!(name, "messages[1].key");
                assert!(reason.contains("70000 bytes"), "{reason}");
            }
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
        // The refusal wrote nothing, and a key at the limit is fine.
        let at_limit = Message::new(b"at limit".to_vec()).with_key("k".repeat(65_531));
        queue.publish("t", &[at_limit]).unwrap();
        for i in 1..=5 {
            queue.publish("t", &[body(i)]).unwrap();
        }
        queue.close().unwrap();
    }
    let queue = Queue::open(dir.path(), config()).unwrap();
    assert_eq!(queue.stats("t").unwrap()[0].depth, 6);
    assert_eq!(
        drain(&queue, "t", "a"),
        ["at limit", "m1", "m2", "m3", "m4", "m5"]
    );
}

/// Issue 11, item 1: a panic inside the store during a publish is an error
/// for that publish, and the sequence reservation it was writing is not
/// trusted afterwards, so a reopen never reuses a sequence number.
#[test]
fn a_panic_in_the_store_fails_one_publish_and_never_reuses_sequence_numbers() {
    let store = PanickingStore::default();
    let config = || QueueConfig::new().with_topic(TopicConfig::new("t", ["a"]));
    {
        let queue = Queue::with_store(Arc::new(store.clone()), config()).unwrap();
        // The first publish carries the first sequence reservation.
        store.panic_on_write.store(true, Ordering::SeqCst);
        match queue.publish("t", &[body(0)]) {
            Err(Error::Panicked { message, .. }) => {
                assert!(message.contains("write of a message"), "{message}");
            }
            other => panic!("expected Panicked, got {other:?}"),
        }
        for i in 1..=5 {
            queue.publish("t", &[body(i)]).unwrap();
        }
        queue.close().unwrap();
    }
    let queue = Queue::with_store(Arc::new(store.clone()), config()).unwrap();
    queue.publish("t", &[body(6)]).unwrap();
    assert_eq!(
        drain(&queue, "t", "a"),
        ["m1", "m2", "m3", "m4", "m5", "m6"],
        "a reopen must not hand out the sequence numbers of m1..m5 again"
    );
}

/// Issue 11, item 1: a panic while the server answers one request is an
/// error reply to that request; the connection and the server go on.
#[test]
fn a_panic_inside_a_server_request_is_an_error_reply_and_the_connection_lives() {
    let store = PanickingStore::default();
    let queue = Arc::new(
        Queue::with_store(
            Arc::new(store.clone()),
            QueueConfig::new().with_topic(TopicConfig::new("t", ["a"])),
        )
        .unwrap(),
    );
    let server = QueueServer::start(queue, QueueServerConfig::new()).unwrap();
    let client = QueueClient::connect_with(
        server.local_addr(),
        QueueClientConfig::new().with_request_timeout(Duration::from_secs(20)),
    )
    .unwrap();
    store.panic_on_dead_scan.store(true, Ordering::SeqCst);
    match client.dead_letters("t", "a", 10) {
        Err(Error::Panicked { message, .. }) => {
            assert!(message.contains("scan of dead letters"), "{message}");
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
    // The same connection still answers, and a publish still lands.
    client.publish("t", &[body(1)]).unwrap();
    assert!(client.dead_letters("t", "a", 10).unwrap().is_empty());
    assert_eq!(client.stats(Some("t")).unwrap()[0].depth, 1);
    client.close().unwrap();
    server.close().unwrap();
}

/// Issue 11, item 1: by default a client request gives up after a bounded
/// time instead of waiting for ever on a server that never answers.
#[test]
fn client_requests_have_a_default_timeout_and_subscribe_honours_it() {
    assert_eq!(
        QueueClientConfig::default().request_timeout(),
        Some(DEFAULT_REQUEST_TIMEOUT)
    );
    // A server that completes the handshake and then never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mute = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).unwrap();
        let mut hello = vec![0; u32::from_be_bytes(len) as usize];
        stream.read_exact(&mut hello).unwrap();
        let welcome = rmp_serde::to_vec_named(&syncmq::server::protocol::Response::Welcome {
            version: syncmq::server::protocol::PROTOCOL_VERSION,
            max_frame: 1 << 20,
            idle_timeout_ms: None,
        })
        .unwrap();
        stream
            .write_all(&u32::try_from(welcome.len()).unwrap().to_be_bytes())
            .unwrap();
        stream.write_all(&welcome).unwrap();
        // Read (and ignore) until the client hangs up.
        let mut sink = [0u8; 1024];
        while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
    });
    let client = QueueClient::connect_with(
        addr,
        QueueClientConfig::new().with_request_timeout(Duration::from_millis(200)),
    )
    .unwrap();
    assert!(matches!(
        client.publish("t", &[body(0)]),
        Err(Error::Timeout { .. })
    ));
    assert!(matches!(
        client.subscribe("t", "a"),
        Err(Error::Timeout { .. })
    ));
    drop(client);
    mute.join().unwrap();
}

/// Issue 11, item 3: a redelivered entry is a new delivery. The first
/// consumer's late ack used to return `Ok(1)` and ack the second
/// consumer's copy; now it is refused and acks nothing, and acking an id
/// already acked, or one never delivered, is an error too.
#[test]
fn a_late_ack_of_an_earlier_delivery_is_refused_and_acks_nothing() {
    let clock = Arc::new(ManualClock::new());
    let queue = Queue::memory(
        QueueConfig::new()
            .with_topic(TopicConfig::new("t", ["a"]).with_ack_timeout(Duration::from_secs(30)))
            .with_clock(clock.clone()),
    )
    .unwrap();
    queue.publish("t", &[body(0)]).unwrap();
    let (one, two) = (
        queue.subscribe("t", "a").unwrap(),
        queue.subscribe("t", "a").unwrap(),
    );
    let first = one
        .recv_timeout(Duration::from_secs(20))
        .unwrap()
        .expect("a message in time");
    // Past its deadline the entry is back before `advance` returns.
    clock.advance(Duration::from_secs(31)).unwrap();
    let second = two
        .recv_timeout(Duration::ZERO)
        .unwrap()
        .expect("the redelivery, at once");
    assert_eq!(second.deliveries, 2);
    assert_ne!(first.id, second.id, "a new delivery has a new id");
    match one.ack(&[first.id]) {
        Err(Error::InvalidArgument { name, reason }) => {
            assert_eq!(name, "ids[0]");
            assert!(reason.contains("stale"), "{reason}");
        }
        other => panic!("expected the stale ack refused, got {other:?}"),
    }
    assert!(matches!(
        one.nack(&[first.id], false),
        Err(Error::InvalidArgument { .. })
    ));
    // An ack naming a stale id and a current one acks neither.
    assert!(two.ack(&[second.id, first.id]).is_err());
    assert_eq!(queue.stats("t").unwrap()[0].in_flight, 1);
    assert_eq!(two.ack(&[second.id]).unwrap(), 1);
    // Already acked, or never delivered: not a success either.
    assert!(matches!(
        two.ack(&[second.id]),
        Err(Error::InvalidArgument { .. })
    ));
    let never = syncmq::queue::EntryId {
        priority: 0,
        position: 99,
        delivery: 1,
    };
    assert!(matches!(
        two.ack_through(never),
        Err(Error::InvalidArgument { .. })
    ));
    assert_eq!(queue.stats("t").unwrap()[0].dead_lettered, 0);
}

/// Issue 11, item 4: the delivery count lived only in memory, so after a
/// reopen every message came back as its first delivery and a poison
/// message that crashed its consumer was never dead-lettered. A restart
/// (here: the queue dropped without acking, as a crash leaves it) now
/// counts, with no extra delivery per crash.
#[test]
fn delivery_counts_survive_restarts_and_a_poison_message_is_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        || QueueConfig::new().with_topic(TopicConfig::new("t", ["a"]).with_max_deliveries(3));
    {
        let queue = Queue::open(dir.path(), config()).unwrap();
        queue.publish("t", &[body(0), body(1)]).unwrap();
    }
    // Three "crashes" while holding m0 (m1 is acked the first time).
    for round in 1..=3u32 {
        let queue = Queue::open(dir.path(), config()).unwrap();
        let a = queue.subscribe("t", "a").unwrap();
        let got = a.next_batch(10, Some(Duration::ZERO)).unwrap();
        let poison = &got[0];
        assert_eq!(poison.message.body(), b"m0");
        assert_eq!(poison.deliveries, round, "the restart counted");
        if round == 1 {
            assert_eq!(got[1].message.body(), b"m1");
            a.ack(&[got[1].id]).unwrap();
        }
        // Nothing settles m0: the process "dies" holding it.
        drop(a);
        drop(queue);
    }
    let queue = Queue::open(dir.path(), config()).unwrap();
    let a = queue.subscribe("t", "a").unwrap();
    assert!(
        a.next_batch(10, Some(Duration::ZERO)).unwrap().is_empty(),
        "delivered max_deliveries times: not delivered a fourth"
    );
    let dead = a.dead_letters(10).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].message.body(), dead[0].deliveries),
        (&b"m0"[..], 3)
    );
    let stats = &queue.stats("t").unwrap()[0];
    assert_eq!(
        (stats.depth, stats.in_flight, stats.dead_lettered),
        (0, 0, 1)
    );
}
