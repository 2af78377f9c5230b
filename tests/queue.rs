//! The queue engine's behaviour, each case run on both stores: the memory
//! store and fjall in a temporary directory. A [`Fixture`] opens a queue
//! and can reopen one on the same data, as a restart would.
#![cfg(feature = "durable")]
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use syncmq::queue::{
    Batch, Clock, Durability, FjallStore, ManualClock, MemoryStore, Op, Queue, QueueConfig, Space,
    Store, SubscriberStats, TopicConfig,
};
use syncmq::{Error, Message, ObjectKind};

const PATIENCE: Duration = Duration::from_secs(20);

/// Where a test's queue lives, so it can be reopened.
enum Fixture {
    Memory(MemoryStore),
    Fjall(tempfile::TempDir),
}

impl Fixture {
    fn memory() -> Self {
        Fixture::Memory(MemoryStore::new())
    }
    fn fjall() -> Self {
        Fixture::Fjall(tempfile::tempdir().unwrap())
    }
    fn open(&self, config: QueueConfig) -> syncmq::Result<Queue> {
        match self {
            Fixture::Memory(store) => Queue::with_store(Arc::new(store.clone()), config),
            Fixture::Fjall(dir) => Queue::open(dir.path(), config),
        }
    }
    /// Writes raw bytes under a key, bypassing the engine (the queue must
    /// be closed and dropped first for fjall).
    fn put_raw(&self, space: Space, key: Vec<u8>, value: Vec<u8>) {
        let batch = Batch {
            ops: vec![Op::Put(space, key, value)],
        };
        match self {
            Fixture::Memory(store) => store.write(batch).unwrap(),
            Fixture::Fjall(dir) => {
                let store = FjallStore::open(dir.path()).unwrap();
                store.write(batch).unwrap();
                store.sync().unwrap();
            }
        }
    }
}

fn topic(name: &str, subs: &[&str]) -> TopicConfig {
    TopicConfig::new(name, subs.iter().copied())
}

fn config(t: TopicConfig) -> QueueConfig {
    QueueConfig::new().with_topic(t)
}

fn msg(body: &str) -> Message {
    Message::new(body.as_bytes().to_vec())
}

fn body(r: &syncmq::queue::Received) -> String {
    String::from_utf8(r.message.body().to_vec()).unwrap()
}

fn fifo_and_priorities(fx: &Fixture) {
    let q = fx
        .open(config(topic("t", &["a"]).with_priorities(3)))
        .unwrap();
    q.publish(
        "t",
        &[msg("low-1").with_priority(2), msg("mid-1").with_priority(1)],
    )
    .unwrap();
    q.publish(
        "t",
        &[
            msg("high-1"),
            msg("low-2").with_priority(9), // above the last level: counts as the last
            msg("high-2"),
        ],
    )
    .unwrap();
    let a = q.subscribe("t", "a").unwrap();
    let got: Vec<String> = a
        .next_batch(10, Some(PATIENCE))
        .unwrap()
        .iter()
        .map(body)
        .collect();
    assert_eq!(got, ["high-1", "high-2", "mid-1", "low-1", "low-2"]);
}

fn fanout_and_ack_frees_the_message(fx: &Fixture) {
    let q = fx.open(config(topic("t", &["a", "b"]))).unwrap();
    q.publish("t", &[msg("one"), msg("two")]).unwrap();
    let (a, b) = (
        q.subscribe("t", "a").unwrap(),
        q.subscribe("t", "b").unwrap(),
    );
    let got_a = a.next_batch(10, Some(PATIENCE)).unwrap();
    let got_b = b.next_batch(10, Some(PATIENCE)).unwrap();
    assert_eq!(got_a.iter().map(body).collect::<Vec<_>>(), ["one", "two"]);
    assert_eq!(got_b.iter().map(body).collect::<Vec<_>>(), ["one", "two"]);
    let ids: Vec<_> = got_a.iter().map(|r| r.id).collect();
    assert_eq!(a.ack(&ids).unwrap(), 2);
    assert!(
        matches!(a.ack(&ids), Err(Error::InvalidArgument { .. })),
        "a second ack finds nothing in flight and says so"
    );
    if let Fixture::Memory(store) = fx {
        assert_eq!(store.keys(Space::Messages).len(), 2, "b still holds them");
    }
    let ids: Vec<_> = got_b.iter().map(|r| r.id).collect();
    b.ack(&ids).unwrap();
    if let Fixture::Memory(store) = fx {
        assert!(
            store.keys(Space::Messages).is_empty(),
            "freed after every ack"
        );
        assert!(store.keys(Space::Queue).is_empty());
        assert!(store.keys(Space::Refs).is_empty());
    }
    let stats = q.stats("t").unwrap();
    assert!(stats.iter().all(|s| s.depth == 0 && s.in_flight == 0));
}

fn nack_reset_and_dead_letters(fx: &Fixture) {
    let q = fx
        .open(config(topic("t", &["a"]).with_max_deliveries(2)))
        .unwrap();
    q.publish("t", &[msg("x"), msg("y"), msg("z")]).unwrap();
    let a = q.subscribe("t", "a").unwrap();
    let first = a.next_batch(2, Some(PATIENCE)).unwrap();
    assert_eq!(first.iter().map(body).collect::<Vec<_>>(), ["x", "y"]);
    // Requeued entries come back at the front, in queue order.
    assert_eq!(a.nack(&[first[1].id, first[0].id], true).unwrap(), 2);
    let again = a.next_batch(3, Some(PATIENCE)).unwrap();
    assert_eq!(again.iter().map(body).collect::<Vec<_>>(), ["x", "y", "z"]);
    assert_eq!(
        again.iter().map(|r| r.deliveries).collect::<Vec<_>>(),
        [2, 2, 1]
    );
    // x reached max_deliveries: a requeue dead-letters it. y: nack without
    // requeue dead-letters at once. z: reset puts it back.
    a.nack(&[again[0].id], true).unwrap();
    a.nack(&[again[1].id], false).unwrap();
    assert_eq!(a.reset().unwrap(), 1);
    let z = a
        .recv_timeout(PATIENCE)
        .unwrap()
        .expect("a message in time");
    assert_eq!((body(&z).as_str(), z.deliveries), ("z", 2));
    a.ack(&[z.id]).unwrap();
    let stats = &q.stats("t").unwrap()[0];
    assert_eq!(
        (stats.depth, stats.in_flight, stats.dead_lettered),
        (0, 0, 2)
    );
    let dead = a.dead_letters(10).unwrap();
    assert_eq!(
        dead.iter()
            .map(|d| (
                String::from_utf8(d.message.body().to_vec()).unwrap(),
                d.deliveries
            ))
            .collect::<Vec<_>>(),
        [("x".to_string(), 2), ("y".to_string(), 2)]
    );
    assert_eq!(a.replay_dead_letters().unwrap(), 2);
    let replayed = a.next_batch(10, Some(PATIENCE)).unwrap();
    assert_eq!(replayed.iter().map(body).collect::<Vec<_>>(), ["x", "y"]);
    assert!(replayed.iter().all(|r| r.deliveries == 1));
    a.nack(&replayed.iter().map(|r| r.id).collect::<Vec<_>>(), false)
        .unwrap();
    assert_eq!(a.purge_dead_letters().unwrap(), 2);
    assert_eq!(q.stats("t").unwrap()[0].dead_lettered, 0);
    if let Fixture::Memory(store) = fx {
        assert!(store.keys(Space::Messages).is_empty());
        assert!(store.keys(Space::DeadLetters).is_empty());
        assert!(store.keys(Space::Attempts).is_empty());
    }
}

fn stats_count_what_went_through_each_subscriber(fx: &Fixture) {
    let q = fx.open(config(topic("t", &["a", "b"]))).unwrap();
    q.publish("t", &[msg("x"), msg("y"), msg("z")]).unwrap();
    let a = q.subscribe("t", "a").unwrap();
    let first = a.next_batch(2, Some(PATIENCE)).unwrap();
    assert_eq!(a.ack(&[first[0].id]).unwrap(), 1);
    assert_eq!(a.nack(&[first[1].id], true).unwrap(), 1);
    // y again (a redelivery), then z, which goes back uncounted: a release
    // is not a nack.
    let again = a.next_batch(2, Some(PATIENCE)).unwrap();
    assert_eq!(again.iter().map(body).collect::<Vec<_>>(), ["y", "z"]);
    assert_eq!(a.release(&[again[1].id]).unwrap(), 1);
    let stats = q.stats("t").unwrap();
    let expected_a = SubscriberStats {
        topic: "t".into(),
        subscriber: "a".into(),
        depth: 1,
        in_flight: 1,
        dead_lettered: 0,
        expired: 0,
        published: 3,
        delivered: 4,
        redelivered: 1,
        acked: 1,
        nacked: 1,
    };
    let expected_b = SubscriberStats {
        subscriber: "b".into(),
        depth: 3,
        in_flight: 0,
        delivered: 0,
        redelivered: 0,
        acked: 0,
        nacked: 0,
        ..expected_a.clone()
    };
    assert_eq!(stats, [expected_a.clone(), expected_b]);
    assert_eq!(a.stats().unwrap(), expected_a);
    // The JSON the CLI and the C ABI print reads back the same, and JSON
    // of an older build (without the counts since the open) reads as 0s.
    let json = serde_json::to_string(&expected_a).unwrap();
    assert_eq!(
        serde_json::from_str::<SubscriberStats>(&json).unwrap(),
        expected_a
    );
    let old =
        r#"{"topic":"t","subscriber":"a","depth":1,"in_flight":1,"dead_lettered":0,"expired":0}"#;
    let read = serde_json::from_str::<SubscriberStats>(old).unwrap();
    assert_eq!((read.depth, read.delivered, read.acked), (1, 0, 0));
}

fn ack_timeout_redelivers_at_the_front(fx: &Fixture) {
    let clock = Arc::new(ManualClock::new());
    let q = fx
        .open(
            config(topic("t", &["a"]).with_ack_timeout(Duration::from_secs(30)))
                .with_clock(clock.clone()),
        )
        .unwrap();
    q.publish("t", &[msg("first"), msg("second")]).unwrap();
    let a = q.subscribe("t", "a").unwrap();
    let taken = a.next_batch(2, Some(PATIENCE)).unwrap();
    a.ack(&[taken[1].id]).unwrap();
    q.publish("t", &[msg("third")]).unwrap();
    // "first" is not acked: past its deadline it is given back, before
    // "third", by the time `advance` returns.
    clock.advance(Duration::from_secs(31)).unwrap();
    assert_eq!(q.stats("t").unwrap()[0].in_flight, 0);
    let again = a
        .recv_timeout(Duration::ZERO)
        .unwrap()
        .expect("the redelivery, at once");
    assert_eq!((body(&again).as_str(), again.deliveries), ("first", 2));
    assert_eq!(
        (again.id.priority, again.id.position, again.id.delivery),
        (taken[0].id.priority, taken[0].id.position, 2),
        "the same entry, a new delivery"
    );
    assert!(
        matches!(a.ack(&[taken[0].id]), Err(Error::InvalidArgument { .. })),
        "the first delivery's late ack is stale"
    );
    assert_eq!(
        a.ack(&[again.id]).unwrap(),
        1,
        "the redelivery is in flight"
    );
    let third = a
        .recv_timeout(PATIENCE)
        .unwrap()
        .expect("a message in time");
    assert_eq!(body(&third), "third");
    a.ack(&[third.id]).unwrap();
}

fn dedupe_latest_wins_while_undelivered(fx: &Fixture) {
    let q = fx
        .open(config(topic("t", &["a"]).with_dedupe(true)))
        .unwrap();
    q.publish("t", &[msg("v1").with_key("k"), msg("other")])
        .unwrap();
    q.publish("t", &[msg("v2").with_key("k")]).unwrap();
    q.publish("t", &[msg("v3").with_key("k"), msg("v4").with_key("k")])
        .unwrap();
    let a = q.subscribe("t", "a").unwrap();
    let got = a.next_batch(10, Some(PATIENCE)).unwrap();
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), ["v4", "other"]);
    // Delivered: the next message with the key is a new one.
    q.publish("t", &[msg("v5").with_key("k")]).unwrap();
    let next = a
        .recv_timeout(PATIENCE)
        .unwrap()
        .expect("a message in time");
    assert_eq!(body(&next), "v5");
    a.ack(&[got[0].id, got[1].id, next.id]).unwrap();
    if let Fixture::Memory(store) = fx {
        assert!(store.keys(Space::Messages).is_empty());
        assert!(store.keys(Space::Dedupe).is_empty());
    }
}

fn expired_messages_are_dropped_and_counted(fx: &Fixture) {
    let clock = Arc::new(ManualClock::new());
    let q = fx
        .open(
            config(topic("t", &["a"]).with_default_ttl(Duration::from_secs(60)))
                .with_clock(clock.clone()),
        )
        .unwrap();
    let past = clock.wall() - Duration::from_secs(1);
    q.publish(
        "t",
        &[
            msg("stale").with_expiry(past),
            // An hour from the real now, which the clock does not reach.
            msg("fresh").with_ttl(Duration::from_secs(3600)),
            msg("default-ttl"), // gets the topic's 60 s, on the queue's clock
        ],
    )
    .unwrap();
    clock.advance(Duration::from_secs(61)).unwrap();
    let a = q.subscribe("t", "a").unwrap();
    let got = a.next_batch(10, Some(PATIENCE)).unwrap();
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), ["fresh"]);
    assert_eq!(q.stats("t").unwrap()[0].expired, 2);
}

fn restart_brings_back_in_flight_and_keeps_counting(fx: &Fixture) {
    let cfg = config(topic("t", &["a"]).with_priorities(2));
    let q = fx.open(cfg.clone()).unwrap();
    q.publish("t", &[msg("m0"), msg("m1"), msg("m2").with_priority(1)])
        .unwrap();
    let a = q.subscribe("t", "a").unwrap();
    let got = a.next_batch(2, Some(PATIENCE)).unwrap();
    a.ack(&[got[0].id]).unwrap();
    let before = got[1].id;
    drop(a);
    q.close().unwrap();
    drop(q);

    // The declared topics come back even without the config.
    let q = fx.open(QueueConfig::new()).unwrap();
    assert_eq!(q.topics(), cfg.topics());
    let stats = &q.stats("t").unwrap()[0];
    assert_eq!((stats.depth, stats.in_flight), (2, 0));
    q.publish("t", &[msg("m3")]).unwrap();
    let a = q.subscribe("t", "a").unwrap();
    let got = a.next_batch(10, Some(PATIENCE)).unwrap();
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), ["m1", "m3", "m2"]);
    // m1 was in flight: same entry, its second delivery (the restart
    // counts), and the new message got a later position than anything
    // before the restart.
    assert_eq!(
        (got[0].id.priority, got[0].id.position),
        (before.priority, before.position)
    );
    assert_eq!((got[0].deliveries, got[0].id.delivery), (2, 2));
    assert!(got[1].id.position > before.position);
}

/// Delivery counts across a restart: a first delivery stores no count of
/// its own (the level's watermark says it), a released one goes back to
/// uncounted, a redelivered one keeps its count, one never taken stays at 0.
fn counts_survive_a_restart_with_no_record_per_first_delivery(fx: &Fixture) {
    let cfg = config(topic("t", &["a"]));
    let q = fx.open(cfg.clone()).unwrap();
    q.publish(
        "t",
        &[msg("once"), msg("released"), msg("twice"), msg("never")],
    )
    .unwrap();
    let a = q.subscribe("t", "a").unwrap();
    let got = a.next_batch(3, Some(PATIENCE)).unwrap();
    assert_eq!(
        got.iter().map(|r| r.deliveries).collect::<Vec<_>>(),
        [1, 1, 1]
    );
    if let Fixture::Memory(store) = fx {
        assert!(store.keys(Space::Attempts).is_empty(), "first deliveries");
    }
    a.release(&[got[1].id]).unwrap();
    a.nack(&[got[2].id], true).unwrap();
    let again = a.next_batch(2, Some(PATIENCE)).unwrap();
    let counts: Vec<_> = again.iter().map(|r| (body(r), r.deliveries)).collect();
    assert_eq!(
        counts,
        [("released".to_string(), 1), ("twice".to_string(), 2)]
    );
    a.release(&[again[0].id]).unwrap();
    drop(a);
    q.close().unwrap();
    drop(q);

    let q = fx.open(cfg).unwrap();
    let a = q.subscribe("t", "a").unwrap();
    let got = a.next_batch(10, Some(PATIENCE)).unwrap();
    let counts: Vec<_> = got.iter().map(|r| (body(r), r.deliveries)).collect();
    assert_eq!(
        counts,
        [
            ("once".to_string(), 2),
            ("released".to_string(), 1),
            ("twice".to_string(), 3),
            ("never".to_string(), 1),
        ]
    );
    let ids: Vec<_> = got.iter().map(|r| r.id).collect();
    a.ack(&ids).unwrap();
    if let Fixture::Memory(store) = fx {
        assert!(
            store.keys(Space::Attempts).is_empty(),
            "acked: no counts left"
        );
    }
}

/// Publishes store the counters only now and then; a reopen counts the
/// entries published since, across both priority levels.
fn depth_after_a_restart_counts_what_was_published_since_the_counters(fx: &Fixture) {
    let cfg = config(topic("t", &["a", "b"]).with_priorities(2));
    let q = fx.open(cfg.clone()).unwrap();
    for i in 0..1500u32 {
        let priority = u8::from(i % 2 == 1);
        q.publish("t", &[msg(&i.to_string()).with_priority(priority)])
            .unwrap();
    }
    let a = q.subscribe("t", "a").unwrap();
    let got = a.next_batch(10, Some(PATIENCE)).unwrap();
    a.ack(&got.iter().take(5).map(|r| r.id).collect::<Vec<_>>())
        .unwrap();
    let batch: Vec<Message> = (0..700).map(|i| msg(&i.to_string())).collect();
    q.publish("t", &batch).unwrap();
    for i in 0..300 {
        q.publish("t", &[msg(&i.to_string()).with_priority(1)])
            .unwrap();
    }
    let depths = |q: &Queue| {
        q.stats("t")
            .unwrap()
            .iter()
            .map(|s| s.depth + s.in_flight)
            .collect::<Vec<_>>()
    };
    assert_eq!(depths(&q), [2495, 2500]);
    drop(a);
    drop(q); // no close: as after a crash of the process, for fjall
    let q = fx.open(cfg).unwrap();
    assert_eq!(depths(&q), [2495, 2500]);
}

fn corrupt_bytes_are_errors_naming_the_key(fx: &Fixture) {
    let q = fx.open(config(topic("t", &["a"]))).unwrap();
    q.publish("t", &[msg("good")]).unwrap();
    q.close().unwrap();
    drop(q);
    // Topic id 0, sequence 0: the first message.
    fx.put_raw(Space::Messages, vec![0; 12], vec![1, 0xC1, 0xFF]);
    let q = fx.open(QueueConfig::new()).unwrap();
    let a = q.subscribe("t", "a").unwrap();
    // An undecodable message does not stop the queue: its entry is set
    // aside (an ERROR log names messages/000000000000000000000000), not
    // delivered, and not deleted either: repaired, it comes back below.
    assert!(a.next_batch(1, Some(Duration::ZERO)).unwrap().is_empty());
    assert_eq!(q.stats("t").unwrap()[0].depth, 0, "nothing ready");
    q.close().unwrap();
    drop((a, q));
    // A queue entry that points nowhere, then counters of the wrong size.
    fx.put_raw(
        Space::Messages,
        vec![0; 12],
        msg("good").to_bytes().unwrap(),
    );
    let mut entry = vec![0, 0, 0, 0, 0];
    entry.extend_from_slice(&7u64.to_be_bytes());
    fx.put_raw(Space::Queue, entry, vec![1, 2, 3]);
    // Counters as the engine would have written them with the entry.
    let counters: Vec<u8> = [2u64, 0, 0].iter().flat_map(|n| n.to_be_bytes()).collect();
    fx.put_raw(Space::Stats, vec![0, 0, 0, 0], counters);
    let q = fx.open(QueueConfig::new()).unwrap();
    let a = q.subscribe("t", "a").unwrap();
    let first = a
        .recv_timeout(PATIENCE)
        .unwrap()
        .expect("a message in time");
    assert_eq!(body(&first), "good");
    match a.next_batch(1, Some(PATIENCE)) {
        Err(Error::Corrupt { key, .. }) => assert_eq!(key, "queue/00000000000000000000000007"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    q.close().unwrap();
    drop((a, q));
    fx.put_raw(Space::Stats, vec![0, 0, 0, 0], b"xx".to_vec());
    match fx.open(QueueConfig::new()) {
        Err(Error::Corrupt { key, .. }) => assert_eq!(key, "stats/00000000"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    fx.put_raw(Space::Meta, b"topic/t".to_vec(), b"\xFFnonsense".to_vec());
    match fx.open(QueueConfig::new()) {
        Err(Error::Corrupt { key, .. }) => assert!(key.starts_with("meta/"), "{key}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

fn bad_input_is_a_clear_error(fx: &Fixture) {
    let cfg = config(topic("t", &["a"]).with_priorities(2)).with_max_message_bytes(1000);
    let q = fx.open(cfg).unwrap();
    let big = Message::new(vec![0; 2000]);
    match q.publish("t", &[msg("ok"), big]) {
        Err(Error::InvalidArgument { name, .. }) => assert_eq!(name, "messages[1]"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        q.stats("t").unwrap()[0].depth,
        0,
        "nothing of the batch written"
    );
    assert!(matches!(
        q.publish("nope", &[msg("x")]),
        Err(Error::NotFound { kind: ObjectKind::Topic, name }) if name == "nope"
    ));
    assert!(matches!(
        q.subscribe("t", "nobody"),
        Err(Error::NotFound { kind: ObjectKind::Subscriber, name }) if name == "t/nobody"
    ));
    match q.declare_topic(topic("t", &["a"]).with_priorities(1)) {
        Err(Error::InvalidArgument { name, .. }) => assert_eq!(name, "topic.priorities"),
        other => panic!("{other:?}"),
    }
    match q.declare_topic(topic("t", &["b"]).with_priorities(2)) {
        Err(Error::InvalidArgument { name, .. }) => assert_eq!(name, "topic.subscribers"),
        other => panic!("{other:?}"),
    }
    // Adding a subscriber works; it sees messages from then on.
    q.declare_topic(topic("t", &["a", "b"]).with_priorities(2))
        .unwrap();
    q.publish("t", &[msg("for both")]).unwrap();
    let b = q.subscribe("t", "b").unwrap();
    assert_eq!(
        body(
            &b.recv_timeout(PATIENCE)
                .unwrap()
                .expect("a message in time")
        ),
        "for both"
    );
}

fn close_wakes_blocked_consumers(fx: &Fixture) {
    let q = fx.open(config(topic("t", &["a"]))).unwrap();
    let a = q.subscribe("t", "a").unwrap();
    let a2 = q.subscribe("t", "a").unwrap();
    let interrupter = a2.interrupter();
    let waiting = thread::spawn(move || a.recv());
    let interrupted = thread::spawn(move || a2.recv());
    interrupter.interrupt();
    assert!(matches!(interrupted.join().unwrap(), Err(Error::Closed(_))));
    q.close().unwrap();
    assert!(matches!(waiting.join().unwrap(), Err(Error::Closed(_))));
    assert!(matches!(
        q.publish("t", &[msg("late")]),
        Err(Error::Closed(_))
    ));
    q.close().unwrap();
}

fn a_blocked_consumer_wakes_on_publish(fx: &Fixture) {
    let q = Arc::new(fx.open(config(topic("t", &["a"]))).unwrap());
    let a = q.subscribe("t", "a").unwrap();
    let consumer = thread::spawn(move || {
        let mut seen = Vec::new();
        while seen.len() < 500 {
            for r in a.next_batch(64, Some(PATIENCE)).unwrap() {
                seen.push(body(&r));
                a.ack(&[r.id]).unwrap();
            }
        }
        seen
    });
    let producers: Vec<_> = (0..4)
        .map(|p| {
            let q = q.clone();
            thread::spawn(move || {
                for i in 0..125 {
                    q.publish("t", &[msg(&format!("{p}-{i}"))]).unwrap();
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let seen = consumer.join().unwrap();
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 500, "nothing lost or duplicated");
    for p in 0..4 {
        let order: Vec<usize> = seen
            .iter()
            .filter(|s| s.starts_with(&format!("{p}-")))
            .map(|s| s[2..].parse().unwrap())
            .collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "producer {p} reordered"
        );
    }
}

fn single_nacks_and_releases_keep_queue_order(fx: &Fixture) {
    let q = fx.open(config(topic("t", &["a"]))).unwrap();
    q.publish("t", &[msg("0"), msg("1"), msg("2"), msg("3")])
        .unwrap();
    let a = q.subscribe("t", "a").unwrap();
    let got = a.next_batch(4, Some(PATIENCE)).unwrap();
    // One at a time, in any order: they come back in queue order.
    a.nack(&[got[1].id], true).unwrap();
    a.release(&[got[3].id]).unwrap();
    a.nack(&[got[0].id], true).unwrap();
    a.ack(&[got[2].id]).unwrap();
    let again = a.next_batch(4, Some(PATIENCE)).unwrap();
    assert_eq!(again.iter().map(body).collect::<Vec<_>>(), ["0", "1", "3"]);
    // A release does not count as a delivery.
    assert_eq!(
        again.iter().map(|r| r.deliveries).collect::<Vec<_>>(),
        [2, 2, 1]
    );
}

/// A receive that times out is no error: `recv_timeout` says `Ok(None)`,
/// `next_batch` gives an empty batch, each after the full timeout, and a
/// message published later is still there for the next receive.
fn a_receive_that_times_out_is_none_or_empty(fx: &Fixture) {
    let q = fx.open(config(topic("t", &["a"]))).unwrap();
    let a = q.subscribe("t", "a").unwrap();
    let timeout = Duration::from_millis(50);

    let started = Instant::now();
    assert!(a.recv_timeout(timeout).unwrap().is_none());
    assert!(started.elapsed() >= timeout, "returned before the timeout");

    let started = Instant::now();
    assert!(a.next_batch(10, Some(timeout)).unwrap().is_empty());
    assert!(started.elapsed() >= timeout, "returned before the timeout");

    q.publish("t", &[msg("late")]).unwrap();
    let got = a.recv_timeout(PATIENCE).unwrap().expect("the late message");
    assert_eq!(body(&got), "late");
}

/// A watcher registered with `on_ready` that counts its calls on a channel.
fn peek_shows_the_next_deliveries_without_taking_or_counting_them(fx: &Fixture) {
    let cfg = config(topic("t", &["a"]).with_priorities(2).with_max_deliveries(3));
    let q = fx.open(cfg.clone()).unwrap();
    let a = q.subscribe("t", "a").unwrap();
    assert_eq!(a.peek().unwrap(), None, "nothing published yet");
    let past = SystemTime::now() - Duration::from_secs(1);
    q.publish(
        "t",
        &[
            msg("low").with_priority(1),
            msg("stale").with_expiry(past),
            msg("first").with_key("k"),
            msg("second"),
        ],
    )
    .unwrap();
    let before = q.stats("t").unwrap();

    // Peeking, even twice, takes nothing and counts nothing.
    let peeked = a.peek().unwrap().unwrap();
    assert_eq!(peeked.message.body(), b"first");
    assert_eq!(peeked.message.key(), Some("k"));
    assert_eq!(peeked.deliveries, 0);
    assert_eq!(peeked.id.delivery, 0);
    assert_eq!(a.peek().unwrap().unwrap(), peeked);
    // The first N in receive order: priority 0 first, the expired one
    // skipped (and left for a receive to drop and count).
    let bodies = |v: Vec<syncmq::queue::Peeked>| -> Vec<String> {
        v.iter()
            .map(|p| String::from_utf8(p.message.body().to_vec()).unwrap())
            .collect()
    };
    assert_eq!(bodies(a.peek_batch(2).unwrap()), ["first", "second"]);
    assert_eq!(
        bodies(a.peek_batch(10).unwrap()),
        ["first", "second", "low"]
    );
    assert!(a.peek_batch(0).unwrap().is_empty());
    assert_eq!(q.stats("t").unwrap(), before, "a peek changes no counter");
    assert_eq!(before[0].in_flight, 0);

    // The receive gets the peeked message as a first delivery.
    let got = a.recv_timeout(PATIENCE).unwrap().unwrap();
    assert_eq!(body(&got), "first");
    assert_eq!(got.deliveries, 1);
    assert_eq!(got.id.position, peeked.id.position);
    // In flight is not deliverable: the peek moves on to the next one.
    assert_eq!(a.peek().unwrap().unwrap().message.body(), b"second");
    // Given back, it is peeked first again, with its one delivery, and the
    // next receive is its second.
    a.nack(&[got.id], true).unwrap();
    let again = a.peek().unwrap().unwrap();
    assert_eq!((again.message.body(), again.deliveries), (&b"first"[..], 1));
    let got = a.recv_timeout(PATIENCE).unwrap().unwrap();
    assert_eq!((body(&got), got.deliveries), ("first".to_string(), 2));
    a.ack(&[got.id]).unwrap();

    // A peek does not count towards a restart either.
    assert_eq!(a.peek().unwrap().unwrap().message.body(), b"second");
    q.close().unwrap();
    drop((a, q));
    let q = fx.open(cfg).unwrap();
    let a = q.subscribe("t", "a").unwrap();
    assert_eq!(a.peek().unwrap().unwrap().deliveries, 0);
    let got = a.recv_timeout(PATIENCE).unwrap().unwrap();
    assert_eq!((body(&got), got.deliveries), ("second".to_string(), 1));
    // A closed queue says so, as a receive would.
    q.close().unwrap();
    assert!(matches!(a.peek(), Err(Error::Closed(_))));
}

fn watch(sub: &syncmq::queue::Subscriber) -> std::sync::mpsc::Receiver<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    sub.on_ready(Arc::new(move || {
        let _ = tx.send(());
    }));
    rx
}

/// How many calls the watcher had so far (they run on the notifying
/// thread before its call returns, so none is still under way).
fn calls(rx: &std::sync::mpsc::Receiver<()>) -> usize {
    rx.try_iter().count()
}

/// `is_available` says what a receive would find without taking it, and
/// `on_ready` is called at each change that can make something
/// deliverable: publish, nack with requeue, release, reset, an ack timeout
/// (here on the thread that moves the manual clock; with the system clock,
/// on the sweeper thread), a dead-letter replay, and the queue closing.
fn readiness_follows_what_a_receive_would_take(fx: &Fixture) {
    let clock = Arc::new(ManualClock::new());
    let q = fx
        .open(
            config(topic("t", &["a"]).with_ack_timeout(Duration::from_secs(30)))
                .with_clock(clock.clone()),
        )
        .unwrap();
    let a = q.subscribe("t", "a").unwrap();
    let rx = watch(&a);
    assert!(!a.is_available().unwrap(), "an empty queue");
    assert_eq!(calls(&rx), 0);

    q.publish("t", &[msg("m")]).unwrap();
    assert_eq!(calls(&rx), 1, "publish");
    assert!(a.is_available().unwrap());
    let got = a.next_batch(1, Some(Duration::ZERO)).unwrap();
    assert!(!a.is_available().unwrap(), "the only entry is in flight");

    a.nack(&[got[0].id], true).unwrap();
    assert_eq!(calls(&rx), 1, "nack with requeue");
    assert!(a.is_available().unwrap());
    let got = a.next_batch(1, Some(Duration::ZERO)).unwrap();
    a.release(&[got[0].id]).unwrap();
    assert_eq!(calls(&rx), 1, "release");
    let got = a.next_batch(1, Some(Duration::ZERO)).unwrap();
    assert_eq!(got.len(), 1);
    a.reset().unwrap();
    assert_eq!(calls(&rx), 1, "reset");
    assert!(a.is_available().unwrap());

    // An ack timeout gives it back, calling the watcher before `advance`
    // returns.
    let got = a.next_batch(1, Some(Duration::ZERO)).unwrap();
    assert!(!a.is_available().unwrap());
    clock.advance(Duration::from_secs(31)).unwrap();
    assert!(calls(&rx) > 0, "a call after the ack timeout");
    assert!(
        a.is_available().unwrap(),
        "redelivery after the ack timeout"
    );
    assert!(a.ack(&[got[0].id]).is_err(), "that delivery is stale");

    let got = a.next_batch(1, Some(Duration::ZERO)).unwrap();
    a.nack(&[got[0].id], false).unwrap();
    assert!(!a.is_available().unwrap(), "dead-lettered");
    calls(&rx); // the nack's own call, if any
    assert_eq!(a.replay_dead_letters().unwrap(), 1);
    assert_eq!(calls(&rx), 1, "dead-letter replay");
    assert!(a.is_available().unwrap());

    // A second handle's watcher is its own; dropping the handle drops it.
    let b = q.subscribe("t", "a").unwrap();
    let rx_b = watch(&b);
    drop(b);
    assert!(matches!(
        rx_b.try_recv(),
        Err(std::sync::mpsc::TryRecvError::Disconnected)
    ));
    // A second on_ready replaces the first.
    let rx2 = watch(&a);
    assert!(matches!(
        rx.try_recv(),
        Err(std::sync::mpsc::TryRecvError::Disconnected)
    ));
    q.close().unwrap();
    assert_eq!(calls(&rx2), 1, "close");
    assert!(matches!(a.is_available(), Err(Error::Closed(_))));
}

/// With a manual clock and a 30 s ack timeout, a taken message is not
/// redelivered 29 s on, and is 2 s later, to a consumer already blocked in
/// `recv`; with a 30 s TTL, a message taken 29 s on is delivered and one
/// taken 2 s later is dropped and counted as expired. The clock alone
/// decides: the test takes far less real time than any of those deadlines.
fn a_manual_clock_decides_ack_deadlines_and_expiry(fx: &Fixture) {
    let started = Instant::now();
    let clock = Arc::new(ManualClock::new());
    // Far from the real time, so that a deadline or expiry read on the
    // system's clock instead would show.
    clock.advance(Duration::from_secs(3600)).unwrap();
    let ttl = Duration::from_secs(30);
    let q = fx
        .open(
            QueueConfig::new()
                .with_topic(topic("acks", &["a"]).with_ack_timeout(Duration::from_secs(30)))
                .with_topic(
                    topic("ttl", &["early", "late"])
                        .with_ack_timeout(Duration::ZERO)
                        .with_default_ttl(ttl),
                )
                .with_clock(clock.clone()),
        )
        .unwrap();

    q.publish("acks", &[msg("m")]).unwrap();
    let a = Arc::new(q.subscribe("acks", "a").unwrap());
    let first = a
        .recv_timeout(Duration::ZERO)
        .unwrap()
        .expect("the message");
    let (tx, got) = std::sync::mpsc::channel();
    let blocked = {
        let a = a.clone();
        thread::Builder::new()
            .name("test-blocked-recv".into())
            .spawn(move || {
                let _ = tx.send(a.recv());
            })
            .unwrap()
    };
    clock.advance(Duration::from_secs(29)).unwrap();
    assert_eq!(
        q.stats("acks").unwrap()[0].in_flight,
        1,
        "not redelivered before its deadline"
    );
    assert!(a.recv_timeout(Duration::ZERO).unwrap().is_none());
    clock.advance(Duration::from_secs(2)).unwrap();
    // The blocked receive (woken by the redelivery, or taking it at once if
    // it had not blocked yet) gets it; the deadline only bounds a failure.
    let again = got
        .recv_timeout(PATIENCE)
        .expect("the blocked receive returns")
        .unwrap();
    blocked.join().unwrap();
    assert_eq!((body(&again).as_str(), again.deliveries), ("m", 2));
    assert!(matches!(
        a.ack(&[first.id]),
        Err(Error::InvalidArgument { .. })
    ));
    a.ack(&[again.id]).unwrap();

    // A topic's TTL and a message's own expiry both count on the clock.
    let own = msg("own-expiry").with_expiry(clock.wall() + ttl);
    q.publish("ttl", &[msg("default-ttl"), own]).unwrap();
    let (early, late) = (
        q.subscribe("ttl", "early").unwrap(),
        q.subscribe("ttl", "late").unwrap(),
    );
    clock.advance(Duration::from_secs(29)).unwrap();
    // A peek judges expiry on the same clock as a receive.
    assert_eq!(late.peek_batch(10).unwrap().len(), 2, "peek: 29 s on");
    let got = early.next_batch(10, Some(Duration::ZERO)).unwrap();
    assert_eq!(
        got.iter().map(body).collect::<Vec<_>>(),
        ["default-ttl", "own-expiry"],
        "not expired 29 s on"
    );
    clock.advance(Duration::from_secs(2)).unwrap();
    assert_eq!(late.peek().unwrap(), None, "peek: expired 31 s on");
    assert!(late
        .next_batch(10, Some(Duration::ZERO))
        .unwrap()
        .is_empty());
    let stats = q.stats("ttl").unwrap();
    assert_eq!((stats[0].expired, stats[1].expired), (0, 2));
    assert_eq!(stats[1].depth, 0, "dropped");
    assert!(
        started.elapsed() < Duration::from_secs(29),
        "the deadlines came from the clock, not from waiting"
    );
}

/// The one ack-timeout test on real time, on purpose: the sweeper thread
/// with the system clock sleeps until the deadline and redelivers on its
/// own. The timeout is short and the wait for the redelivery generous
/// (it returns as soon as the redelivery comes), so a loaded machine
/// only makes it slower.
#[test]
fn the_sweeper_thread_redelivers_on_the_system_clock() {
    let q = Queue::memory(config(
        topic("t", &["a"]).with_ack_timeout(Duration::from_millis(50)),
    ))
    .unwrap();
    q.publish("t", &[msg("m")]).unwrap();
    let a = q.subscribe("t", "a").unwrap();
    let first = a.recv_timeout(PATIENCE).unwrap().expect("the message");
    let again = a
        .recv_timeout(PATIENCE)
        .unwrap()
        .expect("the redelivery after the ack timeout");
    assert_eq!((again.deliveries, first.deliveries), (2, 1));
    a.ack(&[again.id]).unwrap();
}

macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(#[test] fn $case() { super::$case(&super::Fixture::memory()); })*
        }
        mod fjall {
            $(#[test] fn $case() { super::$case(&super::Fixture::fjall()); })*
        }
    };
}

on_both_stores!(
    fifo_and_priorities,
    fanout_and_ack_frees_the_message,
    nack_reset_and_dead_letters,
    stats_count_what_went_through_each_subscriber,
    ack_timeout_redelivers_at_the_front,
    dedupe_latest_wins_while_undelivered,
    expired_messages_are_dropped_and_counted,
    restart_brings_back_in_flight_and_keeps_counting,
    counts_survive_a_restart_with_no_record_per_first_delivery,
    depth_after_a_restart_counts_what_was_published_since_the_counters,
    corrupt_bytes_are_errors_naming_the_key,
    bad_input_is_a_clear_error,
    close_wakes_blocked_consumers,
    a_blocked_consumer_wakes_on_publish,
    readiness_follows_what_a_receive_would_take,
    single_nacks_and_releases_keep_queue_order,
    a_receive_that_times_out_is_none_or_empty,
    peek_shows_the_next_deliveries_without_taking_or_counting_them,
    a_manual_clock_decides_ack_deadlines_and_expiry,
);

/// A store that counts syncs and makes each one slow, as an fsync is.
struct SlowSync {
    inner: MemoryStore,
    syncs: AtomicUsize,
}

impl Store for SlowSync {
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
        self.syncs.fetch_add(1, Ordering::SeqCst);
        thread::sleep(Duration::from_millis(10));
        Ok(())
    }
}

#[test]
fn concurrent_durable_publishers_share_syncs() {
    let store = Arc::new(SlowSync {
        inner: MemoryStore::new(),
        syncs: AtomicUsize::new(0),
    });
    let q = Arc::new(Queue::with_store(store.clone(), config(topic("t", &["a"]))).unwrap());
    let (threads, each) = (8, 20);
    let publishers: Vec<_> = (0..threads)
        .map(|_| {
            let q = q.clone();
            thread::spawn(move || {
                for i in 0..each {
                    q.publish("t", &[msg(&i.to_string())]).unwrap();
                }
            })
        })
        .collect();
    for p in publishers {
        p.join().unwrap();
    }
    let syncs = store.syncs.load(Ordering::SeqCst);
    assert!(syncs > 0);
    // Eight publishers and a 10 ms sync: rounds of several are the rule;
    // even a badly loaded machine shares a quarter of them.
    assert!(
        syncs < threads * each * 3 / 4,
        "{syncs} syncs for {} publishes: no group commit",
        threads * each
    );
    assert_eq!(q.stats("t").unwrap()[0].depth, (threads * each) as u64);
}

#[test]
fn buffered_publishes_do_not_sync() {
    let store = Arc::new(SlowSync {
        inner: MemoryStore::new(),
        syncs: AtomicUsize::new(0),
    });
    let q = Queue::with_store(
        store.clone(),
        config(topic("t", &["a"])).with_durability(Durability::Buffered),
    )
    .unwrap();
    for i in 0..50 {
        q.publish("t", &[msg(&i.to_string())]).unwrap();
    }
    assert_eq!(store.syncs.load(Ordering::SeqCst), 0);
    q.close().unwrap();
    assert_eq!(store.syncs.load(Ordering::SeqCst), 1, "close syncs once");
}

#[test]
fn fjall_refuses_a_second_open_of_the_same_directory_naming_it_and_its_owner() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path(), config(topic("t", &["s"]))).unwrap();
    q.publish("t", &[msg("before")]).unwrap();
    let e = Queue::open(dir.path(), QueueConfig::new()).unwrap_err();
    match &e {
        Error::DirectoryInUse { dir: d, pid } => {
            assert_eq!(d, dir.path());
            assert_eq!(*pid, Some(std::process::id()));
        }
        other => panic!("expected DirectoryInUse, got {other:?}"),
    }
    assert_eq!(
        e.to_string(),
        format!(
            "data directory {} is in use by another process (pid {})",
            dir.path().display(),
            std::process::id()
        )
    );
    // The refused open left the owner's files alone: what it writes after
    // is still there after a reopen.
    q.publish("t", &[msg("after")]).unwrap();
    q.close().unwrap();
    drop(q);
    let q = Queue::open(dir.path(), config(topic("t", &["s"]))).unwrap();
    let got = q
        .subscribe("t", "s")
        .unwrap()
        .next_batch(10, Some(PATIENCE))
        .unwrap();
    let bodies: Vec<String> = got.iter().map(body).collect();
    assert_eq!(bodies, ["before", "after"]);
}
