//! Queue types and arguments against the real broker: quorum queues and
//! their delivery count, priorities, reject-publish as a refusal, a
//! redeclare with other arguments, passive declares, broker-native
//! dead-lettering, streams read from an offset, and a single active
//! consumer.

#![cfg(feature = "rabbitmq")]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{broker_url, delete_queues, eventually, unique};
use syncmq::rabbitmq::{
    Connection, ConnectionConfig, Consumer, ConsumerOptions, Declaration, Overflow, Publisher,
    PublisherConfig, QueueArguments, QueueType, StreamOffset,
};
use syncmq::{Adapter, ChannelSpec, Error, Message, Mode, ObjectKind, RabbitAdapter};

const PATIENCE: Duration = Duration::from_secs(30);

/// A connection that is up, named after `base`.
fn connected(url: &str, base: &str) -> Connection {
    connected_as(url, &unique(base))
}

/// A connection named exactly `name` that is up.
fn connected_as(url: &str, name: &str) -> Connection {
    let conn = Connection::with_config(
        ConnectionConfig::new(url)
            .with_name(name)
            .with_backoff(Duration::from_millis(20), Duration::from_millis(500)),
    )
    .unwrap();
    conn.waiter().wait_connected(PATIENCE).unwrap();
    conn
}

/// Declares `queue` with `arguments` on `conn`.
fn declare(conn: &Connection, queue: &str, arguments: QueueArguments) -> syncmq::Result<()> {
    conn.declare(vec![Declaration::queue_with(queue, arguments)])
}

/// One-byte bodies `0`, `1`, ... for the numbers in `range`.
fn bodies(range: std::ops::Range<u8>) -> Vec<Vec<u8>> {
    range.map(|i| vec![i]).collect()
}

/// Publishes a one-byte body per number in `range` to `queue`, confirmed.
fn publish_bytes(publisher: &Publisher, queue: &str, range: std::ops::Range<u8>) {
    for body in bodies(range) {
        publisher.publish("", queue, Message::new(body)).unwrap();
    }
}

/// The broker's (ready messages, consumers) of `queue`, by passive declare.
fn counts(url: &str, queue: &str) -> (u32, u32) {
    let mut conn = amiquip::Connection::insecure_open(url).unwrap();
    let channel = conn.open_channel(None).unwrap();
    let q = channel.queue_declare_passive(queue).unwrap();
    let counts = (
        q.declared_message_count().unwrap(),
        q.declared_consumer_count().unwrap(),
    );
    let _ = conn.close();
    counts
}

/// A consumer of `queue` on the default exchange that records each body.
fn recording(conn: &Connection, options: ConsumerOptions) -> (Consumer, Arc<Mutex<Vec<Vec<u8>>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let consumer = Consumer::start(conn, options, move |m: &Message| -> Result<(), String> {
        record.lock().unwrap().push(m.body().to_vec());
        Ok(())
    })
    .unwrap();
    (consumer, seen)
}

fn adapter(url: &str) -> RabbitAdapter {
    RabbitAdapter::with_config(
        ConnectionConfig::new(url).with_name(unique("queues-adapter")),
        PublisherConfig::default(),
    )
    .unwrap()
}

#[test]
fn a_quorum_queue_round_trips_and_counts_redeliveries() {
    let Some(url) = broker_url() else { return };
    let name = unique("quorum-q");
    let adapter = adapter(&url);
    adapter
        .new_channel_with(
            ChannelSpec::new(&name, Mode::Both),
            QueueArguments::new().with_type(QueueType::Quorum),
        )
        .unwrap();
    adapter
        .input(&name)
        .unwrap()
        .send(Message::new(b"q1".to_vec()).with_key("k1"))
        .unwrap();
    let output = adapter.output(&name).unwrap();
    let first = output.recv_timeout(PATIENCE).unwrap();
    assert_eq!(first.body(), b"q1");
    assert_eq!(first.message().key(), Some("k1"));
    assert!(!first.is_redelivered());
    assert_eq!(first.message().header("x-delivery-count"), None);
    first.nack(true).unwrap();
    let again = output.recv_timeout(PATIENCE).unwrap();
    assert_eq!(again.body(), b"q1");
    assert!(again.is_redelivered());
    assert_eq!(again.message().header("x-delivery-count"), Some("1"));
    again.ack().unwrap();
    adapter.close().unwrap();
    // It is a quorum queue on the broker: redeclaring it classic is refused.
    let conn = connected(&url, "quorum-check");
    let redeclared = declare(
        &conn,
        &name,
        QueueArguments::new().with_type(QueueType::Classic),
    );
    assert!(
        matches!(&redeclared, Err(Error::Refused { code: 406, .. })),
        "{redeclared:?}"
    );
    assert_eq!(counts(&url, &name).0, 0, "the acked message stayed");
    conn.close().unwrap();
    delete_queues(&url, &[&name]);
}

#[test]
fn a_priority_queue_delivers_the_higher_priority_first() {
    let Some(url) = broker_url() else { return };
    let queue = unique("priority-q");
    let conn = connected(&url, "priority");
    declare(&conn, &queue, QueueArguments::new().with_max_priority(9)).unwrap();
    let publisher = Publisher::new(&conn, PublisherConfig::default()).unwrap();
    // Ours: 0 is the highest. Published lowest first, all ready before the
    // consumer starts.
    for (body, priority) in [(b"low", 9u8), (b"mid", 5), (b"top", 0)] {
        publisher
            .publish(
                "",
                &queue,
                Message::new(body.to_vec()).with_priority(priority),
            )
            .unwrap();
    }
    let (consumer, seen) = recording(
        &conn,
        ConsumerOptions::new("", "")
            .with_queue(&queue)
            .with_queue_arguments(QueueArguments::new().with_max_priority(9))
            .with_prefetch(1),
    );
    eventually(PATIENCE, "three consumed", || {
        seen.lock().unwrap().len() == 3
    });
    assert_eq!(
        *seen.lock().unwrap(),
        vec![b"top".to_vec(), b"mid".to_vec(), b"low".to_vec()]
    );
    consumer.close().unwrap();
    publisher.close().unwrap();
    conn.close().unwrap();
    delete_queues(&url, &[&queue]);
}

#[test]
fn a_full_reject_publish_queue_refuses_the_third_publish_visibly() {
    let Some(url) = broker_url() else { return };
    let queue = unique("bounded-q");
    let conn = connected(&url, "bounded");
    declare(
        &conn,
        &queue,
        QueueArguments::new()
            .with_max_length(2)
            .with_overflow(Overflow::RejectPublish),
    )
    .unwrap();
    // Each nacked message is sent once more, then refused.
    let publisher = Publisher::new(
        &conn,
        PublisherConfig::default()
            .with_nack_retries(1)
            .with_nack_retry_interval(Duration::from_millis(50)),
    )
    .unwrap();
    publisher
        .publish("", &queue, Message::new(b"1".to_vec()))
        .unwrap();
    publisher
        .publish("", &queue, Message::new(b"2".to_vec()))
        .unwrap();
    match publisher.publish("", &queue, Message::new(b"3".to_vec())) {
        Err(e @ Error::Busy { .. }) => {
            assert!(e.is_transient(), "{e}");
            let text = e.to_string();
            assert!(
                text.contains(&queue) && text.contains("nacked the publish 2 times"),
                "{text}"
            );
        }
        other => panic!("expected the full queue's refusal, got {other:?}"),
    }
    // A fire-and-retry publish into the full queue comes back as a refusal.
    publisher
        .publish_nowait("", &queue, Message::new(b"4".to_vec()))
        .unwrap();
    let refusal = publisher.refusals().recv_timeout(PATIENCE).unwrap();
    assert_eq!(refusal.message.body(), b"4");
    assert!(matches!(refusal.error, Error::Busy { .. }), "{refusal:?}");
    assert!(matches!(
        publisher.flush(PATIENCE),
        Err(Error::Rejected { count: 1, .. })
    ));
    let stats = publisher.stats();
    assert_eq!((stats.confirmed, stats.nacked, stats.resent), (2, 4, 2));
    assert_eq!(counts(&url, &queue).0, 2, "the queue holds the first two");
    publisher.close().unwrap();
    conn.close().unwrap();
    delete_queues(&url, &[&queue]);
}

#[test]
fn a_redeclare_with_another_queue_type_names_the_queue_and_the_argument() {
    let Some(url) = broker_url() else { return };
    let queue = unique("typed-q");
    let conn = connected(&url, "redeclare");
    declare(
        &conn,
        &queue,
        QueueArguments::new().with_type(QueueType::Quorum),
    )
    .unwrap();
    match declare(
        &conn,
        &queue,
        QueueArguments::new().with_type(QueueType::Stream),
    ) {
        Err(Error::Refused { code: 406, text }) => {
            assert!(text.contains(&format!("queue `{queue}`")), "{text}");
            assert!(text.contains("x-queue-type"), "{text}");
        }
        other => panic!("expected a 406 refusal, got {other:?}"),
    }
    // The same arguments again are a no-op, and the connection is fine.
    declare(
        &conn,
        &queue,
        QueueArguments::new().with_type(QueueType::Quorum),
    )
    .unwrap();
    // Arguments that cannot work are refused before the broker sees them.
    match declare(
        &conn,
        &queue,
        QueueArguments::new()
            .with_type(QueueType::Quorum)
            .with_max_priority(9),
    ) {
        Err(Error::InvalidArgument { name, reason }) => {
            assert_eq!(name, "x-max-priority");
            assert!(reason.contains(&queue), "{reason}");
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    conn.close().unwrap();
    delete_queues(&url, &[&queue]);
}

#[test]
fn a_passive_declare_finds_an_existing_queue_and_names_a_missing_one() {
    let Some(url) = broker_url() else { return };
    let existing = unique("owned-elsewhere-q");
    let missing = unique("missing-q");
    let conn = connected(&url, "passive");
    // Someone else's queue, with arguments we do not know: passive ignores them.
    declare(&conn, &existing, QueueArguments::new().with_max_length(7)).unwrap();
    conn.declare(vec![Declaration::existing_queue(&existing)])
        .unwrap();
    match conn.declare(vec![Declaration::existing_queue(&missing)]) {
        Err(Error::NotFound {
            kind: ObjectKind::Queue,
            name,
        }) => assert_eq!(name, missing),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(!common::queue_exists(&url, &missing), "passive created it");
    conn.close().unwrap();
    delete_queues(&url, &[&existing]);
}

#[test]
fn a_quorum_queue_dead_letters_past_its_delivery_limit() {
    let Some(url) = broker_url() else { return };
    let name = unique("limited-q");
    let dlq = unique("limited-dlq");
    let adapter = adapter(&url);
    adapter
        .new_channel(ChannelSpec::new(&dlq, Mode::Both))
        .unwrap();
    adapter
        .new_channel_with(
            ChannelSpec::new(&name, Mode::Both),
            QueueArguments::new()
                .with_type(QueueType::Quorum)
                .with_delivery_limit(1)
                .with_dead_letter_exchange("")
                .with_dead_letter_routing_key(&dlq),
        )
        .unwrap();
    adapter
        .input(&name)
        .unwrap()
        .send(Message::new(b"poison".to_vec()))
        .unwrap();
    let output = adapter.output(&name).unwrap();
    // Delivered twice (the limit allows one redelivery), then dead-lettered.
    for count in [None, Some("1")] {
        let delivery = output.recv_timeout(PATIENCE).unwrap();
        assert_eq!(delivery.body(), b"poison");
        assert_eq!(delivery.message().header("x-delivery-count"), count);
        delivery.nack(true).unwrap();
    }
    let dead = adapter
        .output(&dlq)
        .unwrap()
        .recv_timeout(PATIENCE)
        .unwrap();
    assert_eq!(dead.body(), b"poison");
    assert_eq!(
        dead.message().header("x-first-death-reason"),
        Some("delivery_limit")
    );
    dead.ack().unwrap();
    assert!(output.try_recv().is_err(), "delivered again past the limit");
    assert_eq!(counts(&url, &name).0, 0);
    adapter.close().unwrap();
    delete_queues(&url, &[&name, &dlq]);
}

#[test]
fn a_stream_is_read_from_the_first_message_and_from_an_offset() {
    let Some(url) = broker_url() else { return };
    let stream = unique("stream-q");
    let conn = connected(&url, "stream");
    let arguments = QueueArguments::new().with_type(QueueType::Stream);
    declare(&conn, &stream, arguments.clone()).unwrap();
    let publisher = Publisher::new(&conn, PublisherConfig::default()).unwrap();
    publish_bytes(&publisher, &stream, 0..10);
    // A prefetch below the count: only acks let the rest through.
    let options = |offset| {
        ConsumerOptions::new("", "")
            .with_queue(&stream)
            .with_queue_arguments(arguments.clone())
            .with_stream_offset(offset)
            .with_prefetch(3)
    };
    let (from_first, first_seen) = recording(&conn, options(StreamOffset::First));
    let (from_five, five_seen) = recording(&conn, options(StreamOffset::Offset(5)));
    eventually(PATIENCE, "ten read from the first", || {
        first_seen.lock().unwrap().len() == 10
    });
    eventually(PATIENCE, "five read from offset 5", || {
        five_seen.lock().unwrap().len() == 5
    });
    assert_eq!(*first_seen.lock().unwrap(), bodies(0..10));
    assert_eq!(*five_seen.lock().unwrap(), bodies(5..10));
    assert_eq!(
        (from_first.stats().handled, from_five.stats().handled),
        (10, 5)
    );
    from_first.close().unwrap();
    from_five.close().unwrap();
    publisher.close().unwrap();
    conn.close().unwrap();
    delete_queues(&url, &[&stream]);
}

#[test]
fn a_single_active_consumer_queue_feeds_only_the_first_consumer() {
    let Some(url) = broker_url() else { return };
    let queue = unique("sac-q");
    let conn = connected(&url, "sac");
    let options = ConsumerOptions::new("", "")
        .with_queue(&queue)
        .with_queue_arguments(QueueArguments::new().with_single_active_consumer(true));
    let (active, active_seen) = recording(&conn, options.clone());
    eventually(PATIENCE, "the first consumer registered", || {
        counts(&url, &queue).1 == 1
    });
    let (waiting, waiting_seen) = recording(&conn, options);
    eventually(PATIENCE, "the second consumer registered", || {
        counts(&url, &queue).1 == 2
    });
    let publisher = Publisher::new(&conn, PublisherConfig::default()).unwrap();
    publish_bytes(&publisher, &queue, 0..10);
    eventually(PATIENCE, "ten consumed by the active one", || {
        active_seen.lock().unwrap().len() == 10
    });
    assert_eq!(
        waiting.stats().delivered,
        0,
        "the waiting consumer got messages"
    );
    assert!(waiting_seen.lock().unwrap().is_empty());
    // Once the active one goes, the waiting one takes over.
    active.close().unwrap();
    publisher
        .publish("", &queue, Message::new(b"after".to_vec()))
        .unwrap();
    eventually(PATIENCE, "the second consumer took over", || {
        waiting_seen.lock().unwrap().len() == 1
    });
    assert_eq!(active_seen.lock().unwrap().len(), 10);
    waiting.close().unwrap();
    publisher.close().unwrap();
    conn.close().unwrap();
    delete_queues(&url, &[&queue]);
}

#[test]
fn a_failing_handler_on_a_stream_does_not_take_the_connection_down() {
    let Some(url) = broker_url() else { return };
    let stream = unique("stream-fail-q");
    let conn = connected(&url, "stream-fail");
    let generation = conn.waiter().current().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    // No dead letters: a failure is acked at once (a nack with requeue, which
    // a stream answers by closing the connection, 540, is never sent).
    let consumer = Consumer::start(
        &conn,
        ConsumerOptions::new("", "")
            .with_queue(&stream)
            .with_queue_type(QueueType::Stream)
            .with_stream_offset(StreamOffset::First)
            .with_prefetch(2),
        move |m: &Message| -> Result<(), String> {
            record.lock().unwrap().push(m.body().to_vec());
            if m.body() == [3] {
                Err("three fails".into())
            } else {
                Ok(())
            }
        },
    )
    .unwrap();
    let publisher = Publisher::new(&conn, PublisherConfig::default()).unwrap();
    publish_bytes(&publisher, &stream, 0..6);
    eventually(PATIENCE, "six read", || seen.lock().unwrap().len() == 6);
    let stats = consumer.stats();
    // A stream is not retried (a publish would append a copy for every
    // reader): the failure is acked at once and stays in the stream.
    assert_eq!((stats.failed, stats.retried, stats.dropped), (1, 0, 1));
    // Still the same connection, and the stream goes on past the failure:
    // each message read once, none redelivered.
    publisher
        .publish("", &stream, Message::new(vec![6]))
        .unwrap();
    eventually(PATIENCE, "the seventh read", || {
        seen.lock().unwrap().len() == 7
    });
    assert_eq!(*seen.lock().unwrap(), bodies(0..7));
    assert_eq!(conn.waiter().current(), Some(generation), "reconnected");
    consumer.close().unwrap();
    publisher.close().unwrap();
    conn.close().unwrap();
    delete_queues(&url, &[&stream]);
}

#[test]
fn a_stream_consumer_resumes_where_it_was_after_a_reconnect() {
    let Some(url) = broker_url() else { return };
    let stream = unique("stream-resume-q");
    let name = unique("stream-resume");
    let conn = connected_as(&url, &name);
    let first = conn.waiter().current().unwrap();
    let (consumer, seen) = recording(
        &conn,
        ConsumerOptions::new("", "")
            .with_queue(&stream)
            .with_queue_type(QueueType::Stream)
            .with_stream_offset(StreamOffset::First)
            .with_prefetch(2),
    );
    let publisher = Publisher::new(&conn, PublisherConfig::default()).unwrap();
    publish_bytes(&publisher, &stream, 0..5);
    eventually(PATIENCE, "five read", || seen.lock().unwrap().len() == 5);
    assert_eq!(common::force_close_connection(&name), 1);
    eventually(PATIENCE, "connected again", || {
        conn.waiter().current().is_some_and(|g| g > first)
    });
    publish_bytes(&publisher, &stream, 5..10);
    eventually(PATIENCE, "the tenth read", || {
        seen.lock().unwrap().last() == Some(&vec![9])
    });
    // Not from the first message again: in order, and at most the fifth
    // twice (its ack may not have been sent when the connection closed;
    // the ones before it were, before the next delivery was handled).
    let seen = seen.lock().unwrap().clone();
    let mut once = seen.clone();
    once.dedup();
    assert_eq!(once, bodies(0..10), "{seen:?}");
    assert!(seen.len() <= 11, "{seen:?}");
    consumer.close().unwrap();
    publisher.close().unwrap();
    conn.close().unwrap();
    delete_queues(&url, &[&stream]);
}

#[test]
fn consumers_and_channels_refuse_arguments_that_cannot_work() {
    let Some(url) = broker_url() else { return };
    let queue = unique("never-declared-q");
    let conn = connected(&url, "refuse-arguments");
    let started = Consumer::start(
        &conn,
        ConsumerOptions::new("", "")
            .with_queue(&queue)
            .with_queue_type(QueueType::Stream)
            .with_queue_arguments(
                QueueArguments::new()
                    .with_type(QueueType::Classic)
                    .with_delivery_limit(3),
            ),
        |_: &Message| -> Result<(), String> { Ok(()) },
    );
    match started {
        Err(Error::InvalidArgument { name, reason }) => {
            assert_eq!(name, "x-delivery-limit");
            assert!(reason.contains(&queue), "{reason}");
        }
        other => panic!("expected InvalidArgument, got {:?}", other.map(|_| ())),
    }
    let adapter = adapter(&url);
    match adapter.new_channel_with(
        ChannelSpec::new(&queue, Mode::Both).with_priorities(3),
        QueueArguments::new().with_type(QueueType::Quorum),
    ) {
        Err(Error::InvalidArgument { name, .. }) => assert_eq!(name, "priorities"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    assert!(!common::queue_exists(&url, &queue), "declared anyway");
    adapter.close().unwrap();
    conn.close().unwrap();
}
