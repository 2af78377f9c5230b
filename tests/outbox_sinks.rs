//! The outbox on the RabbitMQ and queue-engine sinks against the real broker
//! and the real (fjall) queue: order, exactly once without faults, marks
//! only after the destination confirmed, no loss through a forced close of
//! the sink's connection, poison rows dead-lettered, and no second copy
//! after a restart that follows a failed flush.
#![cfg(all(feature = "rabbitmq", feature = "durable"))]
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{broker_url, delete_queues, eventually, force_close_connection, unique};
use syncmq::outbox::{FjallOutboxStore, MemoryOutboxStore, OutboxCounts, OutboxStore};
use syncmq::outbox::{Outbox, OutboxConfig, OutboxEvent};
use syncmq::queue::{Queue, QueueConfig, Subscriber, TopicConfig};
use syncmq::rabbitmq::{
    Connection, ConnectionConfig, Consumer, ConsumerOptions, Declaration, ExchangeKind,
};
use syncmq::{Message, QueueSink, RabbitRoute, RabbitSink};

const PATIENCE: Duration = Duration::from_secs(30);

/// Fast retries, so failure tests take milliseconds.
fn quick() -> OutboxConfig {
    OutboxConfig::default().with_backoff(Duration::from_millis(5), Duration::from_millis(50))
}

fn connection_config(url: &str, name: &str) -> ConnectionConfig {
    ConnectionConfig::new(url)
        .with_name(name)
        .with_backoff(Duration::from_millis(20), Duration::from_millis(200))
}

fn body(i: usize) -> Vec<u8> {
    format!("row-{i:06}").into_bytes()
}

fn index(body: &[u8]) -> usize {
    std::str::from_utf8(body).unwrap()[4..].parse().unwrap()
}

/// A consumer of `queue` that records the row number of every body seen.
fn recording_consumer(conn: &Connection, queue: &str) -> (Consumer, Arc<Mutex<Vec<usize>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let consumer = Consumer::start(
        conn,
        ConsumerOptions::new("", "")
            .with_queue(queue)
            .with_prefetch(200),
        move |m: &Message| -> Result<(), String> {
            sink.lock().unwrap().push(index(m.body()));
            Ok(())
        },
    )
    .unwrap();
    (consumer, seen)
}

/// The first occurrence of each row, in the order seen, and whether any
/// row came more than once.
fn first_occurrences(seen: &[usize]) -> (Vec<usize>, usize) {
    let mut firsts = Vec::new();
    let mut unique = HashSet::new();
    for &i in seen {
        if unique.insert(i) {
            firsts.push(i);
        }
    }
    (firsts, seen.len() - unique.len())
}

fn counts<S: OutboxStore>(outbox: &Outbox<S>) -> OutboxCounts {
    outbox.store().counts().unwrap()
}

#[test]
fn rabbit_rows_are_marked_only_once_confirmed_and_arrive_in_order_once() {
    const N: usize = 300;
    let Some(url) = broker_url() else { return };
    let queue = unique("obx-rabbit");
    let conn =
        Connection::with_config(connection_config(&url, &unique("obx-rabbit-conn"))).unwrap();
    // The queue does not exist yet: every publish is unroutable, so no row
    // may be marked.
    let sink = RabbitSink::to_queue(&conn, &queue).unwrap();
    let outbox = Outbox::start_with(MemoryOutboxStore::new(), sink, quick()).unwrap();
    for i in 0..N {
        outbox.add(&Message::new(body(i))).unwrap();
    }
    let mut flush_failures = 0;
    while flush_failures < 3 {
        match outbox.events().recv_timeout(PATIENCE).unwrap() {
            OutboxEvent::FlushFailed { error, .. } => {
                assert!(error.to_string().contains("unroutable"), "{error}");
                flush_failures += 1;
            }
            OutboxEvent::Dispatched { id } => panic!("row {id} marked without a confirm"),
            _ => {}
        }
    }
    let before = counts(&outbox);
    assert_eq!(
        (before.dispatched, before.dead_letters),
        (0, 0),
        "{before:?}"
    );
    assert_eq!(before.pending, N as u64);
    // The queue appears: everything goes, once and in order.
    let (consumer, seen) = recording_consumer(&conn, &queue);
    eventually(PATIENCE, "every row dispatched", || {
        counts(&outbox).dispatched == N as u64
    });
    eventually(PATIENCE, "every row consumed", || {
        seen.lock().unwrap().len() >= N
    });
    assert_eq!(*seen.lock().unwrap(), (0..N).collect::<Vec<_>>());
    outbox.close().unwrap();
    consumer.close().unwrap();
    conn.close().unwrap();
    delete_queues(&url, &[&queue]);
}

#[test]
fn rabbit_a_forced_close_of_the_sinks_connection_loses_nothing() {
    let Some(url) = broker_url() else { return };
    let queue = unique("obx-close");
    let sink_name = unique("obx-close-sink");
    let conn = Connection::with_config(connection_config(&url, &unique("obx-close-cons"))).unwrap();
    let (consumer, seen) = recording_consumer(&conn, &queue);
    let sink = RabbitSink::connect(
        connection_config(&url, &sink_name),
        RabbitRoute::Queue(queue.clone()),
    )
    .unwrap();
    let outbox = Arc::new(Outbox::start_with(MemoryOutboxStore::new(), sink, quick()).unwrap());
    // Rows keep coming while the connection is closed under the sink.
    let done = Arc::new(AtomicBool::new(false));
    let adder = {
        let (outbox, done) = (outbox.clone(), done.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            // At most 10,000 rows, about 2 per millisecond.
            while n < 10_000 && !(done.load(Ordering::SeqCst) && n >= 2000) {
                outbox.add(&Message::new(body(n))).unwrap();
                n += 1;
                if n % 2 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            n
        })
    };
    // Two forced closes, each once rows went through on the connection.
    let mut closed = 0;
    let mut dispatched_at_close = 0;
    for _ in 0..2 {
        eventually(PATIENCE, "rows dispatched since the last close", || {
            counts(&outbox).dispatched > dispatched_at_close
        });
        let before = closed;
        eventually(PATIENCE, "the sink's connection to close", || {
            closed += force_close_connection(&sink_name);
            closed > before
        });
        dispatched_at_close = counts(&outbox).dispatched;
    }
    done.store(true, Ordering::SeqCst);
    let total = adder.join().unwrap();
    eventually(Duration::from_secs(60), "every row dispatched", || {
        counts(&outbox).dispatched == total as u64
    });
    eventually(PATIENCE, "every row consumed", || {
        let (firsts, _) = first_occurrences(&seen.lock().unwrap());
        firsts.len() == total
    });
    let (firsts, duplicates) = first_occurrences(&seen.lock().unwrap());
    assert_eq!(
        firsts,
        (0..total).collect::<Vec<_>>(),
        "first copies in order"
    );
    eprintln!("forced closes: {closed}; {total} rows, {duplicates} duplicates");
    outbox.close().unwrap();
    consumer.close().unwrap();
    conn.close().unwrap();
    delete_queues(&url, &[&queue]);
}

#[test]
fn rabbit_a_routing_key_that_routes_nowhere_is_dead_lettered_and_the_rest_go_on() {
    let Some(url) = broker_url() else { return };
    let exchange = unique("obx-ex");
    let queue = unique("obx-bound");
    let conn = Connection::with_config(connection_config(&url, &unique("obx-ex-conn"))).unwrap();
    conn.declare(vec![
        Declaration::exchange(&exchange, ExchangeKind::Direct),
        Declaration::queue(&queue),
        Declaration::binding(&queue, &exchange, "order.placed"),
    ])
    .unwrap();
    let (consumer, seen) = recording_consumer(&conn, &queue);
    let sink = RabbitSink::to_exchange(&conn, &exchange).unwrap();
    let outbox =
        Outbox::start_with(MemoryOutboxStore::new(), sink, quick().with_max_attempts(2)).unwrap();
    outbox
        .add(&Message::new(body(0)).with_routing_key("order.placed"))
        .unwrap();
    let poison = outbox
        .add(&Message::new(body(1)).with_routing_key("nobody.listens"))
        .unwrap();
    outbox
        .add(&Message::new(body(2)).with_routing_key("order.placed"))
        .unwrap();
    eventually(
        PATIENCE,
        "two rows dispatched and one dead-lettered",
        || {
            counts(&outbox)
                == OutboxCounts {
                    pending: 0,
                    dispatched: 2,
                    dead_letters: 1,
                }
        },
    );
    let dead_letters = outbox.store().dead_letters(10).unwrap();
    assert_eq!(dead_letters[0].id, poison);
    assert!(
        dead_letters[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("routing_key")),
        "{dead_letters:?}"
    );
    eventually(PATIENCE, "both good rows consumed", || {
        seen.lock().unwrap().len() >= 2
    });
    assert_eq!(*seen.lock().unwrap(), vec![0, 2]);
    outbox.close().unwrap();
    consumer.close().unwrap();
    conn.close().unwrap();
    delete_queues(&url, &[&queue]);
    let mut raw = amiquip::Connection::insecure_open(&url).unwrap();
    let channel = raw.open_channel(None).unwrap();
    let _ = channel.exchange_delete(exchange.as_str(), false);
    let _ = raw.close();
}

fn topic_config() -> QueueConfig {
    QueueConfig::new().with_topic(TopicConfig::new("events", ["reader"]))
}

/// Every body in the topic for `reader`, acked, until it stays empty.
fn drain(subscriber: &Subscriber) -> Vec<usize> {
    let mut got = Vec::new();
    loop {
        let batch = subscriber
            .next_batch(1000, Some(Duration::from_millis(200)))
            .unwrap();
        if batch.is_empty() {
            return got;
        }
        let ids: Vec<_> = batch.iter().map(|r| r.id).collect();
        got.extend(batch.iter().map(|r| index(r.message.body())));
        subscriber.ack(&ids).unwrap();
    }
}

#[test]
fn queue_rows_arrive_in_the_topic_in_order_once() {
    const N: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(Queue::open(dir.path().join("queue"), topic_config()).unwrap());
    let sink = QueueSink::new(queue.clone(), "events").unwrap();
    let outbox = Outbox::start_with(
        FjallOutboxStore::open(dir.path().join("outbox")).unwrap(),
        sink,
        quick(),
    )
    .unwrap();
    for i in 0..N {
        outbox
            .add(&Message::new(body(i)).with_key(format!("k{i}")))
            .unwrap();
    }
    eventually(PATIENCE, "every row dispatched", || {
        counts(&outbox).dispatched == N as u64
    });
    outbox.close().unwrap();
    let reader = queue.subscribe("events", "reader").unwrap();
    assert_eq!(drain(&reader), (0..N).collect::<Vec<_>>());
}

#[test]
fn queue_a_restart_after_a_failed_flush_sends_nothing_twice() {
    const FIRST: usize = 600;
    const SECOND: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let (queue_dir, outbox_dir) = (dir.path().join("queue"), dir.path().join("outbox"));
    {
        let queue = Arc::new(Queue::open(&queue_dir, topic_config()).unwrap());
        let sink = QueueSink::new(queue.clone(), "events").unwrap();
        let outbox = Outbox::start_with(
            FjallOutboxStore::open(&outbox_dir).unwrap(),
            sink,
            quick().with_batch_size(50),
        )
        .unwrap();
        for i in 0..FIRST {
            outbox.add(&Message::new(body(i))).unwrap();
        }
        eventually(PATIENCE, "some rows dispatched", || {
            counts(&outbox).dispatched > 0
        });
        // The destination fails under the dispatcher: its flushes fail and
        // the rows stay pending, however far it got.
        queue.close().unwrap();
        for i in FIRST..FIRST + SECOND {
            outbox.add(&Message::new(body(i))).unwrap();
        }
        let mut failed = false;
        while !failed {
            match outbox.events().recv_timeout(PATIENCE).unwrap() {
                OutboxEvent::FlushFailed { error, .. } => {
                    assert!(matches!(error, syncmq::Error::Closed(_)), "{error:?}");
                    failed = true;
                }
                OutboxEvent::DeadLettered { id } => panic!("row {id} was dead-lettered"),
                _ => {}
            }
        }
        let left = counts(&outbox);
        assert!(left.pending >= SECOND as u64, "{left:?}");
        assert_eq!(left.dead_letters, 0);
        outbox.close().unwrap();
    }
    // After the restart the rest goes, and no row is in the topic twice.
    let queue = Arc::new(Queue::open(&queue_dir, topic_config()).unwrap());
    let sink = QueueSink::new(queue.clone(), "events").unwrap();
    let outbox =
        Outbox::start_with(FjallOutboxStore::open(&outbox_dir).unwrap(), sink, quick()).unwrap();
    let total = (FIRST + SECOND) as u64;
    eventually(PATIENCE, "every row dispatched", || {
        counts(&outbox).dispatched == total
    });
    outbox.close().unwrap();
    let reader = queue.subscribe("events", "reader").unwrap();
    let got = drain(&reader);
    let mut times: HashMap<usize, usize> = HashMap::new();
    for &i in &got {
        *times.entry(i).or_default() += 1;
    }
    assert!(times.values().all(|&n| n == 1), "a row came twice");
    assert_eq!(got, (0..FIRST + SECOND).collect::<Vec<_>>());
}
