//! The publisher, consumer and client against the real broker: round trip,
//! dead letters, prefetch, unroutable publishes, buffering through an outage, and no
//! loss while our connections are force-closed mid-stream.

#![cfg(feature = "rabbitmq")]
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    broker_url, delete_queues, eventually, force_close_connection, queue_depth, unique,
    SilentProxy, TestVhost,
};
use syncmq::rabbitmq::{
    Connection, ConnectionConfig, Consumer, ConsumerOptions, ConsumerStats, Publisher,
    PublisherConfig, PublisherStats, RabbitClient, RabbitClientConfig,
};
use syncmq::{Error, Message};

const PATIENCE: Duration = Duration::from_secs(30);

fn connection(url: &str, name: &str) -> Connection {
    Connection::with_config(
        ConnectionConfig::new(url)
            .with_name(name)
            .with_backoff(Duration::from_millis(20), Duration::from_millis(500)),
    )
    .unwrap()
}

/// A consumer on the default exchange that records every body it sees.
fn recording_consumer(
    conn: &Connection,
    queue: &str,
    prefetch: u16,
) -> (Consumer, Arc<Mutex<Vec<Message>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let consumer = Consumer::start(
        conn,
        ConsumerOptions::new("", "")
            .with_queue(queue)
            .with_prefetch(prefetch),
        move |m: &Message| -> Result<(), String> {
            record.lock().unwrap().push(m.clone());
            Ok(())
        },
    )
    .unwrap();
    (consumer, seen)
}

#[test]
fn a_confirmed_publish_arrives_with_its_properties() {
    let Some(url) = broker_url() else { return };
    let queue = unique("rt");
    let conn = connection(&url, &unique("rt-conn"));
    let (consumer, seen) = recording_consumer(&conn, &queue, 8);
    let publisher = Publisher::new(&conn, PublisherConfig::new()).unwrap();
    let sent = Message::new(b"hello".to_vec())
        .with_key("order-1")
        .with_header("origin", "test")
        .with_priority(3)
        .with_ttl(Duration::from_secs(3600));
    publisher.publish("", &queue, sent.clone()).unwrap();
    eventually(PATIENCE, "the message consumed", || {
        seen.lock().unwrap().len() == 1
    });
    let got = seen.lock().unwrap()[0].clone();
    assert_eq!(got.body(), b"hello");
    assert_eq!(got.key(), Some("order-1"));
    assert_eq!(got.header("origin"), Some("test"));
    assert_eq!(got.priority(), 3);
    assert_eq!(got.expires_at(), sent.expires_at());
    assert_eq!(publisher.stats().confirmed, 1);
    consumer.close().unwrap();
    publisher.close().unwrap();
    conn.close().unwrap();
    // Each close may be called again: it does nothing.
    consumer.close().unwrap();
    publisher.close().unwrap();
    conn.close().unwrap();
    delete_queues(&url, &[&queue]);
}

#[test]
fn returns_in_a_window_fail_exactly_the_unroutable_messages() {
    // Returns are matched to messages by content: here every message has
    // the same body and key, and only the routing key tells a routable one
    // (to `queue`) from an unroutable one (to a queue that does not exist),
    // interleaved in one window.
    let Some(url) = broker_url() else { return };
    let conn = connection(&url, &unique("returns"));
    let queue = unique("returns-q");
    let missing = unique("no-such-queue");
    conn.declare(vec![syncmq::rabbitmq::Declaration::queue(&queue)])
        .unwrap();
    let publisher = Publisher::new(&conn, PublisherConfig::new()).unwrap();
    let receipts: Vec<_> = (0..300)
        .map(|i| {
            let to = if i % 3 == 0 { &missing } else { &queue };
            let message = Message::new(b"same".to_vec()).with_key("same");
            (to == &missing, publisher.send("", to, message).unwrap())
        })
        .collect();
    for (unroutable, receipt) in receipts {
        match (unroutable, receipt.wait_timeout(PATIENCE)) {
            (true, Err(Error::Refused { code: 312, .. })) | (false, Ok(())) => {}
            (unroutable, other) => panic!("unroutable {unroutable}: {other:?}"),
        }
    }
    let stats = publisher.stats();
    assert_eq!((stats.returned, stats.confirmed), (100, 200), "{stats:?}");
    publisher.close().unwrap();
    conn.close().unwrap();
    delete_queues(&url, &[&queue]);
}

#[test]
fn an_unroutable_mandatory_publish_is_an_error() {
    let Some(url) = broker_url() else { return };
    let conn = connection(&url, &unique("unroutable"));
    let publisher = Publisher::new(&conn, PublisherConfig::new()).unwrap();
    match publisher.publish("", &unique("no-such-queue"), Message::new(b"x".to_vec())) {
        Err(Error::Refused { code: 312, text }) => assert!(text.contains("unroutable"), "{text}"),
        other => panic!("expected an unroutable error, got {other:?}"),
    }
    assert_eq!(publisher.stats().returned, 1);
    // The publisher goes on working.
    let queue = unique("routable");
    conn.declare(vec![syncmq::rabbitmq::Declaration::queue(&queue)])
        .unwrap();
    publisher
        .publish("", &queue, Message::new(b"y".to_vec()))
        .unwrap();
    publisher.close().unwrap();
    conn.close().unwrap();
    delete_queues(&url, &[&queue]);
}

#[test]
fn a_failing_handler_dead_letters_and_acks() {
    let Some(url) = broker_url() else { return };
    let service = unique("svc");
    let exchange = unique("ex");
    let client = RabbitClient::start(
        RabbitClientConfig::new(&url, &service)
            .with_connection(ConnectionConfig::new(&url).with_name(unique("dead-letter-conn"))),
    )
    .unwrap();
    let ok = Arc::new(AtomicUsize::new(0));
    let ok2 = ok.clone();
    client
        .add_consumer(
            ConsumerOptions::new(&exchange, "job")
                .with_dead_letters(true)
                .with_retry_backoff(Duration::from_millis(10), Duration::from_millis(20)),
            move |m: &Message| -> Result<(), String> {
                match m.body() {
                    b"bad" => Err("cannot do bad jobs".into()),
                    b"panic" => panic!("handler exploded"),
                    _ => {
                        ok2.fetch_add(1, Ordering::SeqCst);
                        Ok(())
                    }
                }
            },
        )
        .unwrap();
    let dead_letters = Arc::new(Mutex::new(Vec::new()));
    let record = dead_letters.clone();
    client
        .add_consumer(
            ConsumerOptions::new("", "").with_queue(format!("{service}:job:dlq")),
            move |m: &Message| -> Result<(), String> {
                record.lock().unwrap().push(m.clone());
                Ok(())
            },
        )
        .unwrap();
    for body in [&b"good"[..], b"bad", b"good", b"panic"] {
        client
            .publish(&exchange, "job", Message::new(body.to_vec()))
            .unwrap();
    }
    eventually(PATIENCE, "two dead letters", || {
        dead_letters.lock().unwrap().len() == 2
    });
    eventually(PATIENCE, "two good jobs", || ok.load(Ordering::SeqCst) == 2);
    let dead_letters = dead_letters.lock().unwrap().clone();
    let mut bodies: Vec<&[u8]> = dead_letters.iter().map(Message::body).collect();
    bodies.sort();
    assert_eq!(bodies, vec![&b"bad"[..], b"panic"]);
    assert!(dead_letters.iter().any(|m| m
        .header("x-failure-reason")
        .is_some_and(|r| r.contains("cannot do bad jobs"))));
    // Each failed three times (the default) before it was dead-lettered.
    assert!(
        dead_letters
            .iter()
            .all(|m| m.header("x-failure-attempts") == Some("3")),
        "{dead_letters:?}"
    );
    client.close().unwrap();
    client.close().unwrap(); // a second close does nothing
    delete_queues(
        &url,
        &[
            &format!("{service}:job:queue"),
            &format!("{service}:job:dlq"),
        ],
    );
}

#[test]
fn never_more_unacked_than_prefetch() {
    let Some(url) = broker_url() else { return };
    let queue = unique("prefetch");
    let conn = connection(&url, &unique("prefetch-conn"));
    let publisher = Publisher::new(&conn, PublisherConfig::new()).unwrap();
    conn.declare(vec![syncmq::rabbitmq::Declaration::queue(&queue)])
        .unwrap();
    for i in 0..20u32 {
        publisher
            .publish("", &queue, Message::new(i.to_be_bytes().to_vec()))
            .unwrap();
    }
    // Eight handler threads but prefetch 3: at most three messages are ever
    // held at once; handlers block until released.
    let (release_tx, release_rx) = crossbeam_channel::unbounded::<()>();
    let holding = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let (h, m, d) = (holding.clone(), most.clone(), done.clone());
    let consumer = Consumer::start(
        &conn,
        ConsumerOptions::new("", "")
            .with_queue(&queue)
            .with_prefetch(3)
            .with_concurrency(8),
        move |_: &Message| -> Result<(), String> {
            let now = h.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            release_rx
                .recv_timeout(PATIENCE)
                .map_err(|e| e.to_string())?;
            h.fetch_sub(1, Ordering::SeqCst);
            d.fetch_add(1, Ordering::SeqCst);
            Ok(())
        },
    )
    .unwrap();
    eventually(PATIENCE, "three handlers busy", || {
        holding.load(Ordering::SeqCst) == 3
    });
    for _ in 0..20 {
        release_tx.send(()).unwrap();
    }
    eventually(PATIENCE, "all twenty handled", || {
        done.load(Ordering::SeqCst) == 20
    });
    assert_eq!(
        most.load(Ordering::SeqCst),
        3,
        "more than prefetch in flight"
    );
    consumer.close().unwrap();
    publisher.close().unwrap();
    conn.close().unwrap();
    delete_queues(&url, &[&queue]);
}

#[test]
fn prefetch_zero_and_bad_options_are_refused() {
    let conn = Connection::open("amqp://127.0.0.1:1").unwrap();
    for (options, field) in [
        (ConsumerOptions::new("", "q").with_prefetch(0), "prefetch"),
        (
            ConsumerOptions::new("", "q").with_concurrency(0),
            "concurrency",
        ),
        (ConsumerOptions::new("", ""), "routing_key"),
    ] {
        match Consumer::start(&conn, options, |_: &Message| -> Result<(), String> {
            Ok(())
        }) {
            Err(Error::InvalidArgument { name, .. }) => assert_eq!(name, field),
            other => panic!("expected InvalidArgument({field}), got {other:?}"),
        }
    }
    for (config, field) in [
        (PublisherConfig::new().with_window(0), "window"),
        (PublisherConfig::new().with_buffer(0), "buffer"),
    ] {
        match Publisher::new(&conn, config) {
            Err(Error::InvalidArgument { name, .. }) => assert_eq!(name, field),
            other => panic!("expected InvalidArgument({field}), got {other:?}"),
        }
    }
    conn.close().unwrap();
}

/// Counts how often each u32 id was consumed.
fn counting_consumer(conn: &Connection, queue: &str) -> (Consumer, Arc<Mutex<HashMap<u32, u32>>>) {
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let record = seen.clone();
    let consumer = Consumer::start(
        conn,
        ConsumerOptions::new("", "")
            .with_queue(queue)
            .with_prefetch(256)
            .with_concurrency(2),
        move |m: &Message| -> Result<(), String> {
            let id = u32::from_be_bytes(m.body().try_into().map_err(|_| "bad body")?);
            *record.lock().unwrap().entry(id).or_insert(0) += 1;
            Ok(())
        },
    )
    .unwrap();
    (consumer, seen)
}

#[test]
fn nothing_confirmed_is_lost_while_connections_are_force_closed() {
    let Some(url) = broker_url() else { return };
    let _ = env_logger::builder().is_test(true).try_init();
    let name = unique("faults");
    let queue = unique("faults-q");
    let total = 20_000u32;
    let conn = connection(&url, &name);
    conn.declare(vec![syncmq::rabbitmq::Declaration::queue(&queue)])
        .unwrap();
    let (consumer, seen) = counting_consumer(&conn, &queue);
    let publisher = Publisher::new(&conn, PublisherConfig::new()).unwrap();

    // Another thread force-closes our connection five times, spread over
    // the run: each time a few thousand more publishes were confirmed.
    let killer = {
        let publisher = publisher.clone();
        let name = name.clone();
        let waiter = conn.waiter();
        std::thread::spawn(move || {
            let mut kills = 0;
            for threshold in [2_000u64, 5_000, 8_000, 11_000, 14_000] {
                eventually(PATIENCE, "publishing progress", || {
                    publisher.stats().confirmed >= threshold
                });
                let before = waiter.wait_connected(PATIENCE).unwrap();
                assert_eq!(
                    force_close_connection(&name),
                    1,
                    "our connection was not found"
                );
                kills += 1;
                eventually(PATIENCE, "a reconnect", || {
                    waiter.current().is_some_and(|g| g > before)
                });
            }
            kills
        })
    };

    // Confirmed publishes, pipelined: every one must come back Ok. The
    // stream goes on (at least `total`) until the fifth close, and is paced
    // so that the closes land mid-stream rather than after the end.
    let mut window = std::collections::VecDeque::new();
    let mut sent = 0u32;
    while sent < total || !killer.is_finished() {
        window.push_back(
            publisher
                .send("", &queue, Message::new(sent.to_be_bytes().to_vec()))
                .unwrap(),
        );
        sent += 1;
        if window.len() >= 512 {
            window.pop_front().unwrap().wait().unwrap();
        }
        if sent.is_multiple_of(100) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    for receipt in window {
        receipt.wait().unwrap();
    }
    let total = sent;
    assert_eq!(killer.join().unwrap(), 5);

    eventually(Duration::from_secs(60), "every id consumed", || {
        seen.lock().unwrap().len() == total as usize
    });
    let seen = seen.lock().unwrap();
    let duplicates: u32 = seen.values().map(|n| n - 1).sum();
    let stats = publisher.stats();
    eprintln!(
        "faults: {total} confirmed, all consumed; {duplicates} duplicates; publisher resent {} and saw {} nacks",
        stats.resent, stats.nacked
    );
    assert!((0..total).all(|id| seen.contains_key(&id)));
    drop(seen);
    consumer.close().unwrap();
    publisher.close().unwrap();
    conn.close().unwrap();
    delete_queues(&url, &[&queue]);
}

#[test]
fn confirms_are_back_on_after_a_reconnect_and_nothing_doubles() {
    let Some(url) = broker_url() else { return };
    let name = unique("reconfirm");
    let queue = unique("reconfirm-q");
    let conn = connection(&url, &name);
    conn.declare(vec![syncmq::rabbitmq::Declaration::queue(&queue)])
        .unwrap();
    let (consumer, seen) = counting_consumer(&conn, &queue);
    let publisher = Publisher::new(&conn, PublisherConfig::new()).unwrap();
    publisher
        .publish("", &queue, Message::new(1u32.to_be_bytes().to_vec()))
        .unwrap();
    let waiter = conn.waiter();
    let first = waiter.current().unwrap();
    assert_eq!(force_close_connection(&name), 1);
    eventually(PATIENCE, "a reconnect", || {
        waiter.current().is_some_and(|g| g > first)
    });

    // A publish on the new channel is confirmed (confirm mode is on again),
    // once, and arrives once.
    publisher
        .publish("", &queue, Message::new(2u32.to_be_bytes().to_vec()))
        .unwrap();
    let stats = publisher.stats();
    assert_eq!((stats.published, stats.confirmed), (2, 2), "{stats:?}");
    eventually(PATIENCE, "both consumed", || {
        seen.lock().unwrap().len() == 2
    });
    publisher.flush(PATIENCE).unwrap();
    assert_eq!(seen.lock().unwrap().get(&2), Some(&1));
    consumer.close().unwrap();
    publisher.close().unwrap();
    conn.close().unwrap();
    delete_queues(&url, &[&queue]);
}

#[test]
fn publisher_and_consumer_stats_count_a_workload_and_a_reconnect() {
    let Some(url) = broker_url() else { return };
    let name = unique("stats");
    let queue = unique("stats-q");
    let conn = connection(&url, &name);
    conn.declare(vec![syncmq::rabbitmq::Declaration::queue(&queue)])
        .unwrap();
    let (consumer, seen) = recording_consumer(&conn, &queue, 10);
    let publisher = Publisher::new(&conn, PublisherConfig::new()).unwrap();
    for body in [b"a", b"b"] {
        publisher
            .publish("", &queue, Message::new(body.to_vec()))
            .unwrap();
    }
    let unroutable = publisher.publish("", &unique("no-such-queue"), Message::new(b"x".to_vec()));
    assert!(matches!(unroutable, Err(Error::Refused { code: 312, .. })));
    // Both acked before the connection goes, so that nothing comes back.
    eventually(PATIENCE, "two acks", || consumer.stats().acked == 2);
    let waiter = conn.waiter();
    let first = waiter.current().unwrap();
    assert_eq!(force_close_connection(&name), 1);
    eventually(PATIENCE, "a reconnect", || {
        waiter.current().is_some_and(|g| g > first)
    });
    publisher
        .publish("", &queue, Message::new(b"c".to_vec()))
        .unwrap();
    eventually(PATIENCE, "three acks", || consumer.stats().acked == 3);
    // A publish returns once its confirm is answered, and the thread lets
    // go of the message right after.
    eventually(PATIENCE, "nothing buffered", || {
        publisher.stats().buffered == 0
    });
    let stats = publisher.stats();
    assert_eq!(
        (
            stats.published,
            stats.confirmed,
            stats.returned,
            stats.nacked,
            stats.resent,
            stats.reconnects,
            stats.buffered
        ),
        (4, 3, 1, 0, 0, 1, 0),
        "{stats:?}"
    );
    let consumed = consumer.stats();
    assert_eq!(
        (
            consumed.delivered,
            consumed.handled,
            consumed.acked,
            consumed.nacked,
            consumed.redelivered,
            consumed.reconnects,
            consumed.failed
        ),
        (3, 3, 3, 0, 0, 1, 0),
        "{consumed:?}"
    );
    assert_eq!(seen.lock().unwrap().len(), 3);
    // The JSON the CLI prints reads back the same.
    let json = serde_json::to_string(&stats).unwrap();
    assert_eq!(
        serde_json::from_str::<PublisherStats>(&json).unwrap(),
        stats
    );
    let json = serde_json::to_string(&consumed).unwrap();
    assert_eq!(
        serde_json::from_str::<ConsumerStats>(&json).unwrap(),
        consumed
    );
    consumer.close().unwrap();
    publisher.close().unwrap();
    conn.close().unwrap();
    delete_queues(&url, &[&queue]);
}

#[test]
fn publishes_during_an_outage_are_buffered_bounded_and_resent_in_order() {
    let Some(_) = broker_url() else { return };
    let vhost = TestVhost::new("syncmq-buffer");
    let name = unique("buffer");
    let queue = "buffered";
    let conn = connection(&vhost.url(), &name);
    conn.declare(vec![syncmq::rabbitmq::Declaration::queue(queue)])
        .unwrap();
    let publisher = Publisher::new(&conn, PublisherConfig::new().with_buffer(100)).unwrap();
    let waiter = conn.waiter();
    waiter.wait_connected(PATIENCE).unwrap();

    vhost.refuse_connections();
    assert_eq!(force_close_connection(&name), 1);
    eventually(PATIENCE, "the loss noticed", || !waiter.is_connected());
    for id in 0..100u32 {
        publisher
            .publish_nowait("", queue, Message::new(id.to_be_bytes().to_vec()))
            .unwrap();
    }
    // The buffer is full: the caller is told, nothing is dropped silently.
    match publisher.publish_nowait("", queue, Message::new(b"one too many".to_vec())) {
        Err(Error::Busy { what, reason }) => {
            assert_eq!(what, "publisher buffer");
            assert!(reason.contains("full"), "{reason}");
        }
        other => panic!("expected a full buffer, got {other:?}"),
    }
    assert_eq!(publisher.buffered(), 100);

    vhost.accept_connections();
    publisher.flush(PATIENCE).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let consumer = Consumer::start(
        &conn,
        ConsumerOptions::new("", "")
            .with_queue(queue)
            .with_prefetch(1),
        move |m: &Message| -> Result<(), String> {
            record
                .lock()
                .unwrap()
                .push(u32::from_be_bytes(m.body().try_into().unwrap()));
            Ok(())
        },
    )
    .unwrap();
    eventually(PATIENCE, "all hundred consumed", || {
        seen.lock().unwrap().len() >= 100
    });
    assert_eq!(
        *seen.lock().unwrap(),
        (0..100).collect::<Vec<u32>>(),
        "not in order"
    );
    consumer.close().unwrap();
    publisher.close().unwrap();
    conn.close().unwrap();
}

#[test]
fn a_message_the_broker_refuses_fails_alone() {
    let Some(url) = broker_url() else { return };
    let queue = unique("refused-q");
    let conn = connection(&url, &unique("refused"));
    conn.declare(vec![syncmq::rabbitmq::Declaration::queue(&queue)])
        .unwrap();
    let publisher = Publisher::new(&conn, PublisherConfig::new()).unwrap();
    // A publish to an exchange that does not exist makes the broker close
    // the channel; the messages around it in the window must not suffer.
    let mut receipts = Vec::new();
    for i in 0..100u32 {
        let exchange = if i == 50 { "no-such-exchange" } else { "" };
        receipts.push((
            i,
            publisher
                .send(exchange, &queue, Message::new(i.to_be_bytes().to_vec()))
                .unwrap(),
        ));
    }
    for (i, receipt) in receipts {
        match (i, receipt.wait()) {
            (50, Err(Error::Refused { code: 404, text })) => {
                assert!(text.contains("NOT_FOUND"), "{text}");
            }
            (50, other) => panic!("expected the refusal, got {other:?}"),
            (_, result) => result.unwrap(),
        }
    }
    assert_eq!(publisher.stats().rejected, 1);
    publisher
        .publish("", &queue, Message::new(b"after".to_vec()))
        .unwrap();
    publisher.close().unwrap();
    conn.close().unwrap();
    delete_queues(&url, &[&queue]);
}

#[test]
fn a_consumer_whose_queue_is_deleted_declares_it_again() {
    let Some(url) = broker_url() else { return };
    let queue = unique("deleted-q");
    let conn = connection(&url, &unique("deleted"));
    let (consumer, seen) = counting_consumer(&conn, &queue);
    let publisher = Publisher::new(&conn, PublisherConfig::new()).unwrap();
    publisher
        .publish("", &queue, Message::new(1u32.to_be_bytes().to_vec()))
        .unwrap();
    eventually(PATIENCE, "the first consumed", || {
        seen.lock().unwrap().len() == 1
    });
    delete_queues(&url, &[&queue]);
    // The queue comes back and the consumer with it; a mandatory publish
    // fails as unroutable until then, so retry until it is taken.
    eventually(PATIENCE, "the queue declared again", || {
        publisher
            .publish("", &queue, Message::new(2u32.to_be_bytes().to_vec()))
            .is_ok()
    });
    eventually(PATIENCE, "the second consumed", || {
        seen.lock().unwrap().len() == 2
    });
    consumer.close().unwrap();
    publisher.close().unwrap();
    conn.close().unwrap();
    delete_queues(&url, &[&queue]);
}

#[test]
fn nothing_confirmed_is_lost_when_the_connection_goes_silent() {
    let Some(url) = broker_url() else { return };
    let proxy = SilentProxy::start();
    let queue = unique("silent-q");
    // The consumer reads over a direct connection; the publisher's goes
    // through the proxy, which goes silent mid-stream.
    let direct = connection(&url, &unique("silent-direct"));
    direct
        .declare(vec![syncmq::rabbitmq::Declaration::queue(&queue)])
        .unwrap();
    let (consumer, seen) = counting_consumer(&direct, &queue);
    let proxied = Connection::with_config(
        ConnectionConfig::new(proxy.url())
            .with_name(unique("silent-pub"))
            .with_heartbeat(Duration::from_secs(1))
            .with_backoff(Duration::from_millis(20), Duration::from_millis(500)),
    )
    .unwrap();
    let publisher = Publisher::new(&proxied, PublisherConfig::new()).unwrap();
    let total = 3_000u32;
    let mut window = std::collections::VecDeque::new();
    for id in 0..total {
        if id == 1_000 {
            proxy.silence_existing();
        }
        window.push_back(
            publisher
                .send("", &queue, Message::new(id.to_be_bytes().to_vec()))
                .unwrap(),
        );
        if window.len() >= 512 {
            window.pop_front().unwrap().wait().unwrap();
        }
    }
    for receipt in window {
        receipt.wait().unwrap();
    }
    eventually(PATIENCE, "every id consumed", || {
        seen.lock().unwrap().len() == total as usize
    });
    let stats = publisher.stats();
    assert!(
        stats.resent > 0,
        "nothing was in flight when the connection went silent: {stats:?}"
    );
    consumer.close().unwrap();
    publisher.close().unwrap();
    proxied.close().unwrap();
    direct.close().unwrap();
    delete_queues(&url, &[&queue]);
}

#[test]
fn many_threads_publish_through_one_publisher() {
    let Some(url) = broker_url() else { return };
    let queue = unique("threads-q");
    let conn = connection(&url, &unique("threads"));
    conn.declare(vec![syncmq::rabbitmq::Declaration::queue(&queue)])
        .unwrap();
    let (consumer, seen) = counting_consumer(&conn, &queue);
    let publisher = Publisher::new(&conn, PublisherConfig::new()).unwrap();
    let threads: Vec<_> = (0..8u32)
        .map(|t| {
            let publisher = publisher.clone();
            let queue = queue.clone();
            std::thread::spawn(move || {
                for i in 0..250u32 {
                    let id = t * 1_000 + i;
                    publisher
                        .publish("", &queue, Message::new(id.to_be_bytes().to_vec()))
                        .unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(publisher.stats().confirmed, 2_000);
    eventually(PATIENCE, "all 2,000 consumed", || {
        seen.lock().unwrap().len() == 2_000
    });
    assert!(
        seen.lock().unwrap().values().all(|&n| n == 1),
        "a duplicate without any fault"
    );
    consumer.close().unwrap();
    publisher.close().unwrap();
    conn.close().unwrap();
    delete_queues(&url, &[&queue]);
}

#[test]
fn close_during_an_outage_publishes_the_buffer_once_the_broker_is_back() {
    let Some(_) = broker_url() else { return };
    let vhost = TestVhost::new("syncmq-close-outage");
    let queue = "held";
    let setup = connection(&vhost.url(), &unique("close-outage-setup"));
    setup
        .declare(vec![syncmq::rabbitmq::Declaration::queue(queue)])
        .unwrap();
    setup.close().unwrap();
    // The broker refuses us from the start: the publisher never had a
    // channel when it is told to close.
    vhost.refuse_connections();
    let conn = connection(&vhost.url(), &unique("close-outage"));
    let publisher = Publisher::new(
        &conn,
        PublisherConfig::new().with_close_timeout(Duration::from_secs(20)),
    )
    .unwrap();
    for id in 0..10u32 {
        publisher
            .publish_nowait("", queue, Message::new(id.to_be_bytes().to_vec()))
            .unwrap();
    }
    let closing = {
        let publisher = publisher.clone();
        std::thread::spawn(move || publisher.close())
    };
    vhost.accept_connections();
    closing.join().unwrap().unwrap();
    assert_eq!(publisher.stats().confirmed, 10);
    conn.close().unwrap();
}

/// Issue 11 item 8: closing a consumer must not kill the connection it
/// shares. amiquip sends `ClientCancelled` to the consumer's receiver after
/// the cancel is answered; a receiver dropped before that makes its I/O
/// loop fail, and every channel of the connection goes with it (the
/// publisher then resends: duplicates). 100 start/close cycles beside a
/// busy publisher on the same connection: still the first connection
/// generation at the end, and every message handled exactly once.
#[test]
fn closing_a_consumer_never_kills_the_shared_connection() {
    let Some(url) = broker_url() else { return };
    let _ = env_logger::builder().is_test(true).try_init();
    let queue = unique("cycle-q");
    let conn = connection(&url, &unique("cycle-conn"));
    conn.declare(vec![syncmq::rabbitmq::Declaration::queue(&queue)])
        .unwrap();
    let first = conn.waiter().wait_connected(PATIENCE).unwrap();
    let publisher = Publisher::new(&conn, PublisherConfig::new()).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let published = Arc::new(AtomicUsize::new(0));
    // Four threads keep the connection's I/O thread busy with publishes
    // (each id confirmed before the next) while consumers come and go.
    let publishers: Vec<_> = (0..4u32)
        .map(|t| {
            let (publisher, stop, published, queue) = (
                publisher.clone(),
                stop.clone(),
                published.clone(),
                queue.clone(),
            );
            std::thread::spawn(move || {
                let mut sent = Vec::new();
                let mut n = 0u32;
                while !stop.load(Ordering::SeqCst) {
                    let id = t << 24 | n;
                    publisher
                        .publish("", &queue, Message::new(id.to_be_bytes().to_vec()))
                        .unwrap();
                    sent.push(id);
                    published.fetch_add(1, Ordering::SeqCst);
                    n += 1;
                }
                sent
            })
        })
        .collect();
    let seen = Arc::new(Mutex::new(HashMap::<u32, u32>::new()));
    for cycle in 0..100 {
        let record = seen.clone();
        let handled = Arc::new(AtomicUsize::new(0));
        let count = handled.clone();
        let consumer = Consumer::start(
            &conn,
            ConsumerOptions::new("", "")
                .with_queue(&queue)
                .with_prefetch(64),
            move |m: &Message| -> Result<(), String> {
                let id = u32::from_be_bytes(m.body().try_into().map_err(|_| "bad body")?);
                *record.lock().unwrap().entry(id).or_insert(0) += 1;
                count.fetch_add(1, Ordering::SeqCst);
                Ok(())
            },
        )
        .unwrap();
        // Close while deliveries are flowing, the case that raced.
        eventually(PATIENCE, "the cycle's consumer handled a message", || {
            handled.load(Ordering::SeqCst) > 0
        });
        consumer.close().unwrap();
        assert_eq!(
            conn.waiter().current(),
            Some(first),
            "cycle {cycle}: closing a consumer cost the shared connection"
        );
    }
    stop.store(true, Ordering::SeqCst);
    let sent: Vec<u32> = publishers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    // A last consumer takes what is left.
    let (rest, rest_seen) = counting_consumer(&conn, &queue);
    eventually(PATIENCE, "every published message handled", || {
        seen.lock().unwrap().len() + rest_seen.lock().unwrap().len() >= sent.len()
    });
    rest.close().unwrap();
    publisher.close().unwrap();
    assert_eq!(
        conn.waiter().current(),
        Some(first),
        "the connection was lost"
    );
    let mut all = seen.lock().unwrap().clone();
    for (id, n) in rest_seen.lock().unwrap().iter() {
        *all.entry(*id).or_insert(0) += n;
    }
    let doubled: Vec<_> = all.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "handled more than once: {doubled:?}");
    assert_eq!(all.len(), sent.len(), "messages missing");
    assert!(sent.iter().all(|id| all.contains_key(id)));
    conn.close().unwrap();
    delete_queues(&url, &[&queue]);
}

/// Issue 11 item 9: two consumers of one service on one exchange. Every
/// failure on `route.a` lands in a's DLQ, once; b's DLQ stays empty; and a
/// `#` binding on the exchange sees the original publishes only, never a
/// dead letter. (On main every DLQ of the service was bound on one shared
/// `service:dlq-route` key: each failure landed in both DLQs and in `#`.)
#[test]
fn each_consumer_dead_letters_into_its_own_queue_only() {
    let Some(url) = broker_url() else { return };
    let service = unique("svc");
    let exchange = unique("dead-letter-ex");
    let tap = unique("dead-letter-tap");
    let conn = connection(&url, &unique("dead-letter-own-conn"));
    let consumer = |route: &str| {
        Consumer::start(
            &conn,
            ConsumerOptions::new(&exchange, route)
                .with_service(&service)
                .with_dead_letters(true)
                // One attempt: what this checks is where dead letters go.
                .with_max_attempts(1),
            |m: &Message| -> Result<(), String> {
                match m.body() {
                    b"bad" => Err("cannot do bad jobs".into()),
                    _ => Ok(()),
                }
            },
        )
        .unwrap()
    };
    let a = consumer("route.a");
    let b = consumer("route.b");
    // A queue that sees everything published on the exchange.
    conn.declare(vec![
        syncmq::rabbitmq::Declaration::queue(&tap),
        syncmq::rabbitmq::Declaration::binding(&tap, &exchange, "#"),
    ])
    .unwrap();
    let publisher = Publisher::new(&conn, PublisherConfig::new()).unwrap();
    let failures = 20u64;
    for _ in 0..failures {
        publisher
            .publish(&exchange, "route.a", Message::new(b"bad".to_vec()))
            .unwrap();
    }
    for _ in 0..5 {
        publisher
            .publish(&exchange, "route.b", Message::new(b"good".to_vec()))
            .unwrap();
    }
    // `dead_lettered` counts confirmed DLQ publishes: each was routed, to
    // every queue it would ever reach, before its confirm came.
    eventually(PATIENCE, "a's failures dead-lettered", || {
        a.stats().dead_lettered == failures
    });
    eventually(PATIENCE, "b's messages handled", || b.stats().handled == 5);
    a.close().unwrap();
    b.close().unwrap();
    publisher.close().unwrap();
    let (a_dead_letters, b_dead_letters) = (
        format!("{service}:route.a:dlq"),
        format!("{service}:route.b:dlq"),
    );
    assert_eq!(a.stats().failed, failures);
    assert_eq!(
        queue_depth(&url, &a_dead_letters),
        u32::try_from(failures).unwrap(),
        "each failure lands in a's DLQ exactly once"
    );
    assert_eq!(
        queue_depth(&url, &b_dead_letters),
        0,
        "b's DLQ got a's failures"
    );
    assert_eq!(
        queue_depth(&url, &tap),
        u32::try_from(failures).unwrap() + 5,
        "the `#` binding got dead letters"
    );
    conn.close().unwrap();
    delete_queues(
        &url,
        &[
            &format!("{service}:route.a:queue"),
            &format!("{service}:route.b:queue"),
            &a_dead_letters,
            &b_dead_letters,
            &tap,
        ],
    );
}

#[test]
fn fire_and_retry_refusals_are_reported_by_flush_and_come_back() {
    let Some(url) = broker_url() else { return };
    let queue = unique("nowait-refused-q");
    let client = RabbitClient::start(
        RabbitClientConfig::new(&url, unique("nowait-refused"))
            .with_connection(ConnectionConfig::new(&url).with_name(unique("nowait-refused"))),
    )
    .unwrap();
    client
        .connection()
        .declare(vec![syncmq::rabbitmq::Declaration::queue(&queue)])
        .unwrap();
    let missing_exchange = unique("no-such-exchange");
    let no_queue = unique("no-such-queue");
    // Both return Ok: they are handed over, not yet confirmed...
    client
        .publish_nowait(
            &missing_exchange,
            &queue,
            Message::new(b"to nowhere".to_vec()),
        )
        .unwrap();
    client
        .publish_nowait("", &no_queue, Message::new(b"unroutable".to_vec()))
        .unwrap();
    client
        .publish_nowait("", &queue, Message::new(b"fine".to_vec()))
        .unwrap();
    // ...and flush says two of them will never be published, and why.
    match client.flush(PATIENCE) {
        Err(Error::Rejected { count: 2, first }) => {
            assert!(first.contains("exchange"), "{first}");
        }
        other => panic!("expected two refusals, got {other:?}"),
    }
    // Each comes back with its message, once.
    let refusals = client.refusals();
    let mut back: Vec<_> = (0..2)
        .map(|_| {
            refusals
                .recv_timeout(PATIENCE)
                .expect("a refused message back")
        })
        .collect();
    back.sort_by(|a, b| a.message.body().cmp(b.message.body()));
    assert_eq!(back[0].message.body(), b"to nowhere");
    assert_eq!(back[0].exchange, missing_exchange);
    assert!(
        matches!(&back[0].error, Error::Refused { code: 404, text } if text.contains("NOT_FOUND")),
        "{:?}",
        back[0].error
    );
    assert_eq!(back[1].message.body(), b"unroutable");
    assert_eq!(back[1].routing_key, no_queue);
    assert!(
        matches!(&back[1].error, Error::Refused { code: 312, text } if text.contains("unroutable")),
        "{:?}",
        back[1].error
    );
    assert!(refusals.try_recv().is_err(), "a refusal came back twice");
    // Reported once: the next flush is clean.
    client.flush(PATIENCE).unwrap();

    // A refusal no flush reported is reported by close.
    client
        .publish_nowait(&missing_exchange, &queue, Message::new(b"again".to_vec()))
        .unwrap();
    eventually(PATIENCE, "the refusal back", || !refusals.is_empty());
    match client.close() {
        Err(Error::Rejected { count: 1, .. }) => {}
        other => panic!("expected close to report the refusal, got {other:?}"),
    }
    delete_queues(&url, &[&queue]);
}

#[test]
fn close_of_a_frozen_publisher_fails_its_waiting_callers_before_it_returns() {
    let Some(_) = broker_url() else { return };
    let proxy = SilentProxy::start();
    let conn = Connection::with_config(
        ConnectionConfig::new(proxy.url())
            .with_name(unique("frozen"))
            .with_heartbeat(Duration::from_secs(10))
            .with_close_timeout(Duration::from_millis(200)),
    )
    .unwrap();
    conn.waiter().wait_connected(PATIENCE).unwrap();
    // The network freezes: no byte gets through and nothing is closed, so
    // the publisher's channel open is never answered (heartbeats would
    // tell only after about 20 s).
    proxy.silence_existing();
    let publisher = Publisher::new(
        &conn,
        PublisherConfig::new().with_close_timeout(Duration::from_millis(200)),
    )
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let caller = {
        let publisher = publisher.clone();
        std::thread::spawn(move || {
            let _ = tx.send(publisher.publish("", "q", Message::new(b"x".to_vec())));
        })
    };
    eventually(PATIENCE, "the caller waiting for its confirm", || {
        publisher.buffered() == 1
    });
    // Close may report the unconfirmed message; what matters is that the
    // caller is not left waiting once it returned.
    let _ = publisher.close();
    match rx.recv_timeout(Duration::from_secs(1)) {
        Ok(Err(Error::Closed(_))) => {}
        Ok(other) => panic!("expected Closed, got {other:?}"),
        Err(e) => panic!("the caller was still blocked after close returned: {e}"),
    }
    caller.join().unwrap();
    let _ = conn.close();
}

/// Sends 401 messages (ids 0..401) pipelined in one window, the one at
/// 200 through `odd_send`, and checks that the other 400 each arrive
/// exactly once while the odd one alone fails with what `expect` accepts.
/// Returns the publisher and what its close said.
fn one_refusal_in_a_window_of_401(
    name: &str,
    config: PublisherConfig,
    odd_send: impl Fn(&Publisher, &str, Message) -> syncmq::Result<syncmq::Receipt>,
    expect: impl Fn(&Error) -> bool,
) -> (Publisher, syncmq::Result<()>) {
    const ODD: u32 = 200;
    let Some(url) = broker_url() else {
        unreachable!("checked by the caller")
    };
    let queue = unique(&format!("{name}-q"));
    let conn = connection(&url, &unique(name));
    conn.declare(vec![syncmq::rabbitmq::Declaration::queue(&queue)])
        .unwrap();
    let generation = conn.waiter().wait_connected(PATIENCE).unwrap();
    // One handler thread: messages are handled in queue order.
    let seen = Arc::new(Mutex::new(HashMap::<u32, u32>::new()));
    let record = seen.clone();
    let consumer = Consumer::start(
        &conn,
        ConsumerOptions::new("", "")
            .with_queue(&queue)
            .with_prefetch(256)
            .with_concurrency(1),
        move |m: &Message| -> Result<(), String> {
            let id = u32::from_be_bytes(m.body().try_into().map_err(|_| "bad body")?);
            *record.lock().unwrap().entry(id).or_insert(0) += 1;
            Ok(())
        },
    )
    .unwrap();
    let publisher = Publisher::new(&conn, config.with_window(512)).unwrap();
    let mut receipts = Vec::new();
    for i in 0..401u32 {
        let message = Message::new(i.to_be_bytes().to_vec());
        let sent = if i == ODD {
            odd_send(&publisher, &queue, message)
        } else {
            publisher.send("", &queue, message)
        };
        receipts.push((i, sent));
    }
    for (i, sent) in receipts {
        let result = sent.and_then(syncmq::Receipt::wait);
        match (i, result) {
            (ODD, Err(e)) => assert!(expect(&e), "the refusal: {e:?}"),
            (ODD, Ok(())) => panic!("the odd message was confirmed"),
            (_, result) => result.unwrap_or_else(|e| panic!("message {i}: {e:?}")),
        }
    }
    // A marker confirmed after everything else: once it is consumed, every
    // duplicate a resend could have caused is in the queue before it.
    publisher
        .publish("", &queue, Message::new(u32::MAX.to_be_bytes().to_vec()))
        .unwrap();
    eventually(PATIENCE, "the marker consumed", || {
        seen.lock().unwrap().contains_key(&u32::MAX)
    });
    let seen = seen.lock().unwrap().clone();
    let doubled: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "delivered more than once: {doubled:?}");
    assert_eq!(seen.len(), 401, "400 messages and the marker");
    assert!(
        !seen.contains_key(&ODD),
        "the refused message was delivered"
    );
    assert_eq!(
        conn.waiter().current(),
        Some(generation),
        "the connection was lost"
    );
    consumer.close().unwrap();
    let closed = publisher.close();
    conn.close().unwrap();
    delete_queues(&url, &[&queue]);
    (publisher, closed)
}

#[test]
fn one_missing_exchange_in_a_window_of_401_resends_nothing_else() {
    let Some(_) = broker_url() else { return };
    let missing = unique("no-such-exchange");
    let (publisher, closed) = one_refusal_in_a_window_of_401(
        "window-missing",
        PublisherConfig::new(),
        |p, queue, m| p.send(&missing, queue, m),
        |e| matches!(e, Error::Refused { code: 404, text } if text.contains("NOT_FOUND") && text.contains(&missing)),
    );
    closed.unwrap();
    assert_eq!(publisher.stats().resent, 0, "{:?}", publisher.stats());
}

#[test]
fn one_unroutable_message_in_a_window_of_401_resends_nothing_else() {
    let Some(_) = broker_url() else { return };
    let no_queue = unique("no-such-queue");
    let (publisher, closed) = one_refusal_in_a_window_of_401(
        "window-unroutable",
        PublisherConfig::new(),
        |p, _, m| p.send("", &no_queue, m),
        |e| matches!(e, Error::Refused { code: 312, text } if text.contains("unroutable")),
    );
    closed.unwrap();
    assert_eq!(publisher.stats().resent, 0, "{:?}", publisher.stats());
    assert_eq!(publisher.stats().returned, 1);
}

#[test]
fn an_oversized_message_in_a_pipelined_window_fails_alone() {
    let Some(_) = broker_url() else { return };
    // The broker allows 128 MiB; a smaller limit on the publisher keeps the
    // test light, and the same check guards the broker's own limit.
    let (publisher, closed) = one_refusal_in_a_window_of_401(
        "window-oversized",
        PublisherConfig::new().with_max_message_size(64 * 1024),
        |p, queue, _| p.send("", queue, Message::new(vec![7; 64 * 1024 + 1])),
        |e| matches!(e, Error::InvalidArgument { name, reason } if name == "message" && reason.contains("65537")),
    );
    closed.unwrap();
    let stats = publisher.stats();
    assert_eq!((stats.resent, stats.published), (0, 401), "{stats:?}");
}

#[test]
fn a_message_over_the_brokers_own_limit_fails_alone_unsent() {
    let Some(_) = broker_url() else { return };
    // RabbitMQ's default max_message_size, 128 MiB, which the publisher
    // assumes unless told otherwise: one byte more closed the channel under
    // the window (and, racing amiquip's close-ok, the connection).
    let too_big = (128 << 20) + 1;
    let (publisher, closed) = one_refusal_in_a_window_of_401(
        "window-over-broker-limit",
        PublisherConfig::new(),
        |p, queue, _| p.send("", queue, Message::new(vec![7; too_big])),
        |e| matches!(e, Error::InvalidArgument { name, reason } if name == "message" && reason.contains(&too_big.to_string())),
    );
    closed.unwrap();
    let stats = publisher.stats();
    assert_eq!((stats.resent, stats.published), (0, 401), "{stats:?}");
}

#[test]
fn an_exchange_deleted_after_its_lookup_fails_only_its_message() {
    let Some(url) = broker_url() else { return };
    let queue = unique("deleted-ex-q");
    let exchange = unique("deleted-ex");
    let conn = connection(&url, &unique("deleted-ex"));
    conn.declare(vec![syncmq::rabbitmq::Declaration::queue(&queue)])
        .unwrap();
    // The exchange comes and goes behind the publisher's back, on a
    // connection of the test's own.
    let mut side = amiquip::Connection::insecure_open(&url).unwrap();
    let channel = side.open_channel(None).unwrap();
    let declared = channel
        .exchange_declare(
            amiquip::ExchangeType::Direct,
            exchange.as_str(),
            amiquip::ExchangeDeclareOptions::default(),
        )
        .unwrap();
    channel
        .queue_bind(
            queue.as_str(),
            exchange.as_str(),
            queue.as_str(),
            amiquip::FieldTable::default(),
        )
        .unwrap();
    let publisher = Publisher::new(&conn, PublisherConfig::new()).unwrap();
    publisher
        .publish(&exchange, &queue, Message::new(b"known".to_vec()))
        .unwrap();
    declared.delete(false).unwrap();
    // The publisher still believes in it: the broker closes the channel,
    // and the fallback still fails that message alone.
    let mut receipts = Vec::new();
    for i in 0..101u32 {
        let to = if i == 50 { exchange.as_str() } else { "" };
        let message = Message::new(i.to_be_bytes().to_vec());
        receipts.push((i, publisher.send(to, &queue, message).unwrap()));
    }
    for (i, receipt) in receipts {
        match (i, receipt.wait()) {
            (50, Err(Error::Refused { code: 404, text })) => {
                assert!(text.contains("NOT_FOUND"), "{text}");
            }
            (50, other) => panic!("expected the refusal, got {other:?}"),
            (_, result) => result.unwrap_or_else(|e| panic!("message {i}: {e:?}")),
        }
    }
    assert_eq!(publisher.stats().rejected, 1);
    publisher.close().unwrap();
    conn.close().unwrap();
    let _ = side.close();
    delete_queues(&url, &[&queue]);
}

#[test]
fn one_nacked_message_in_a_window_of_401_is_retried_alone_then_fails_as_busy() {
    let Some(url) = broker_url() else { return };
    // A queue that is always full and rejects publishes: the broker nacks
    // each message routed to it.
    let full = unique("always-full-q");
    let mut side = amiquip::Connection::insecure_open(&url).unwrap();
    let channel = side.open_channel(None).unwrap();
    let mut arguments = amiquip::FieldTable::new();
    arguments.insert("x-max-length".into(), amiquip::AmqpValue::LongInt(0));
    arguments.insert(
        "x-overflow".into(),
        amiquip::AmqpValue::LongString("reject-publish".into()),
    );
    channel
        .queue_declare(
            full.as_str(),
            amiquip::QueueDeclareOptions {
                arguments,
                ..Default::default()
            },
        )
        .unwrap();
    let (publisher, closed) = one_refusal_in_a_window_of_401(
        "window-nacked",
        PublisherConfig::new()
            .with_confirm_timeout(Duration::from_secs(10))
            .with_close_timeout(Duration::from_secs(5))
            .with_nack_retry_interval(Duration::from_millis(50)),
        |p, _, m| p.send("", &full, m),
        // Nacked again on each of its 3 retries, it fails its caller (well
        // within the confirm timeout), naming the queue.
        |e| matches!(e, Error::Busy { what, reason } if what.contains(&full) && reason.contains("nacked the publish 4 times")),
    );
    // Nothing is left to retry at close.
    assert!(closed.is_ok(), "{closed:?}");
    let stats = publisher.stats();
    assert_eq!(stats.nacked, 4, "{stats:?}");
    // 401 sends, the odd one's 3 retries and the marker: nothing else resent.
    assert_eq!((stats.published, stats.resent), (405, 3), "{stats:?}");
    let _ = side.close();
    delete_queues(&url, &[&full]);
}

/// How many deliveries of `queue` the broker counts as unacknowledged.
fn unacknowledged(queue: &str) -> Option<u64> {
    common::rabbitmqctl(&["list_queues", "name", "messages_unacknowledged"])
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .find(|(name, _)| *name == queue)
        .and_then(|(_, count)| count.trim().parse().ok())
}

#[test]
fn acks_held_for_a_batch_reach_the_broker_while_the_consumer_idles() {
    // The consumer holds acks back for a batch (a quarter of the prefetch)
    // while more deliveries come; when none comes, they must still reach
    // the broker, not wait for the close.
    let Some(url) = broker_url() else { return };
    let queue = unique("held-acks");
    let conn = connection(&url, &unique("held-acks-conn"));
    let (consumer, seen) = recording_consumer(&conn, &queue, 256);
    let publisher = Publisher::new(&conn, PublisherConfig::new()).unwrap();
    for i in 0..3 {
        publisher
            .publish("", &queue, Message::new(format!("m{i}").into_bytes()))
            .unwrap();
    }
    eventually(PATIENCE, "three messages handled", || {
        seen.lock().unwrap().len() == 3
    });
    eventually(PATIENCE, "the broker saw every ack", || {
        unacknowledged(&queue) == Some(0)
    });
    assert_eq!(consumer.stats().handled, 3);
    consumer.close().unwrap();
    publisher.close().unwrap();
    conn.close().unwrap();
    delete_queues(&url, &[&queue]);
}
