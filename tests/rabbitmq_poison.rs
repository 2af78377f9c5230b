//! Poison messages against the real broker: a handler that always fails
//! gets a bounded number of attempts, then its message is dead-lettered or
//! dropped, never requeued for ever; a handler that recovers has its
//! message acked once; quorum queues count attempts with the broker's
//! `x-delivery-count`; handlers see each delivery's context; a client's
//! consumer handle tells its stats and stops it alone.

#![cfg(feature = "rabbitmq")]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{broker_url, delete_queues, eventually, queue_depth, unique, TestVhost};
use syncmq::rabbitmq::{
    Connection, ConnectionConfig, Consumer, ConsumerOptions, DeliveryInfo, Publisher,
    PublisherConfig, QueueType, RabbitClient, RabbitClientConfig,
};
use syncmq::Message;

const PATIENCE: Duration = Duration::from_secs(30);

fn connection(url: &str, name: &str) -> Connection {
    Connection::with_config(
        ConnectionConfig::new(url)
            .with_name(unique(name))
            .with_backoff(Duration::from_millis(20), Duration::from_millis(500)),
    )
    .unwrap()
}

/// Every call of a handler: the message and its context.
type Calls = Arc<Mutex<Vec<(Message, DeliveryInfo)>>>;

/// Options with quick retries: 3 attempts, 10 to 20 ms apart.
fn quick(options: ConsumerOptions) -> ConsumerOptions {
    options
        .with_max_attempts(3)
        .with_retry_backoff(Duration::from_millis(10), Duration::from_millis(20))
}

/// Quick options for the key `job` on an exchange and a service of the
/// test's own; and that exchange.
fn job_options(dead_letters: bool) -> (ConsumerOptions, String) {
    let exchange = unique("poison-ex");
    let options = ConsumerOptions::new(&exchange, "job")
        .with_service(unique("poison-svc"))
        .with_dead_letters(dead_letters);
    (quick(options), exchange)
}

/// A consumer whose handler records each call and fails the first
/// `failures` of them.
fn failing_consumer(
    conn: &Connection,
    options: ConsumerOptions,
    failures: usize,
) -> (Consumer, Calls) {
    let calls: Calls = Arc::new(Mutex::new(Vec::new()));
    let record = calls.clone();
    let consumer = Consumer::start_with_info(
        conn,
        options,
        move |m: &Message, info: &DeliveryInfo| -> Result<(), String> {
            let mut calls = record.lock().unwrap();
            calls.push((m.clone(), info.clone()));
            if calls.len() <= failures {
                Err(format!("failure {} of {failures}", calls.len()))
            } else {
                Ok(())
            }
        },
    )
    .unwrap();
    (consumer, calls)
}

/// Takes one message from `queue` (acked), with its AMQP headers as text.
fn take_one(url: &str, queue: &str) -> (Vec<u8>, Vec<(String, String)>) {
    let mut conn = amiquip::Connection::insecure_open(url).expect("a probe connection");
    let channel = conn.open_channel(None).expect("a probe channel");
    let got = channel
        .basic_get(queue, true)
        .expect("a basic_get")
        .expect("a message in the queue");
    let headers = got
        .delivery
        .properties
        .headers()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| {
            let text = match value {
                amiquip::AmqpValue::LongString(s) => s,
                other => format!("{other:?}"),
            };
            (name, text)
        })
        .collect();
    let _ = conn.close();
    (got.delivery.body, headers)
}

/// Waits until `consumer` dropped its one message, closes it, and checks
/// that nothing is left in `queue` to be tried again.
fn close_once_dropped(url: &str, consumer: &Consumer, queue: &str) {
    eventually(PATIENCE, "the poison message dropped", || {
        consumer.stats().dropped == 1
    });
    // A closed consumer has settled or requeued all it held: whatever is
    // still around would be in the queue now.
    consumer.close().unwrap();
    assert_eq!(queue_depth(url, queue), 0, "nothing left to retry");
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn publish(conn: &Connection, exchange: &str, key: &str, message: Message) {
    let publisher = Publisher::new(conn, PublisherConfig::new()).unwrap();
    publisher.publish(exchange, key, message).unwrap();
    publisher.close().unwrap();
}

#[test]
fn a_message_that_always_fails_is_tried_three_times_then_dropped() {
    let Some(url) = broker_url() else { return };
    let conn = connection(&url, "poison-drop");
    let (options, exchange) = job_options(false);
    let queue = options.queue();
    let (consumer, calls) = failing_consumer(&conn, options, usize::MAX);
    publish(
        &conn,
        &exchange,
        "job",
        Message::new(b"poison".to_vec()).with_header("trace", "t-1"),
    );
    close_once_dropped(&url, &consumer, &queue);
    let stats = consumer.stats();
    assert_eq!(
        (
            stats.delivered,
            stats.failed,
            stats.retried,
            stats.dropped,
            stats.handled
        ),
        (3, 3, 2, 1, 0),
        "{stats:?}"
    );
    let calls = calls.lock().unwrap().clone();
    let attempts: Vec<u64> = calls.iter().map(|(_, info)| info.attempt()).collect();
    assert_eq!(attempts, vec![1, 2, 3], "no fourth attempt");
    // The first came as published; retries come again through the
    // default exchange, with the queue's name as the key.
    let (first, first_info) = &calls[0];
    assert_eq!(first_info.exchange(), exchange);
    assert_eq!(first_info.routing_key(), "job");
    assert!(!first_info.is_redelivered());
    assert_eq!(first_info.header("x-syncmq-attempts"), None);
    for (message, info) in &calls[1..] {
        assert_eq!(info.exchange(), "");
        assert_eq!(info.routing_key(), queue);
        assert_eq!(info.delivery_count(), None, "a classic queue");
        assert_eq!(message.body(), first.body());
        assert_eq!(message.header("trace"), Some("t-1"));
        // Our header is in the context, never in the message.
        assert_eq!(message.header("x-syncmq-attempts"), None);
        assert_eq!(
            info.header("x-syncmq-attempts"),
            Some((info.attempt() - 1).to_string().as_str())
        );
    }
    conn.close().unwrap();
    delete_queues(&url, &[&queue]);
}

#[test]
fn with_a_dead_letter_queue_the_last_failure_lands_there_with_why() {
    let Some(url) = broker_url() else { return };
    let conn = connection(&url, "poison-dlq");
    let (options, exchange) = job_options(true);
    let (queue, dead_letter_queue) = (options.queue(), options.dead_letter_queue());
    let (consumer, calls) = failing_consumer(&conn, options, usize::MAX);
    publish(&conn, &exchange, "job", Message::new(b"poison".to_vec()));
    eventually(PATIENCE, "the poison message dead-lettered", || {
        consumer.stats().dead_lettered == 1
    });
    consumer.close().unwrap();
    assert_eq!(queue_depth(&url, &queue), 0, "nothing left to retry");
    assert_eq!(queue_depth(&url, &dead_letter_queue), 1);
    let stats = consumer.stats();
    assert_eq!(
        (
            stats.failed,
            stats.retried,
            stats.dead_lettered,
            stats.dropped
        ),
        (3, 2, 1, 0),
        "{stats:?}"
    );
    assert_eq!(calls.lock().unwrap().len(), 3);
    let (body, headers) = take_one(&url, &dead_letter_queue);
    assert_eq!(body, b"poison");
    assert_eq!(
        header(&headers, "x-failure-reason"),
        Some("failure 3 of 18446744073709551615"),
        "{headers:?}"
    );
    assert_eq!(
        header(&headers, "x-failure-attempts"),
        Some("3"),
        "{headers:?}"
    );
    conn.close().unwrap();
    delete_queues(&url, &[&queue, &dead_letter_queue]);
}

#[test]
fn a_handler_that_fails_twice_then_succeeds_has_its_message_acked_once() {
    let Some(url) = broker_url() else { return };
    let conn = connection(&url, "poison-recover");
    let (options, exchange) = job_options(true);
    let (queue, dead_letter_queue) = (options.queue(), options.dead_letter_queue());
    let (consumer, calls) = failing_consumer(&conn, options, 2);
    publish(&conn, &exchange, "job", Message::new(b"flaky".to_vec()));
    eventually(PATIENCE, "the message handled", || {
        consumer.stats().handled == 1
    });
    consumer.close().unwrap();
    assert_eq!(queue_depth(&url, &queue), 0, "acked, not requeued");
    assert_eq!(
        queue_depth(&url, &dead_letter_queue),
        0,
        "nothing dead-lettered"
    );
    let stats = consumer.stats();
    assert_eq!(
        (
            stats.handled,
            stats.failed,
            stats.retried,
            stats.dead_lettered,
            stats.dropped
        ),
        (1, 2, 2, 0, 0),
        "{stats:?}"
    );
    let attempts: Vec<u64> = calls
        .lock()
        .unwrap()
        .iter()
        .map(|(_, info)| info.attempt())
        .collect();
    assert_eq!(attempts, vec![1, 2, 3]);
    conn.close().unwrap();
    delete_queues(&url, &[&queue, &dead_letter_queue]);
}

/// A message that always fails on the quorum queue `queue` (consumed with
/// `options`) is requeued twice, counted by the broker, then dropped.
fn check_quorum_retries(url: &str, options: ConsumerOptions, queue: &str) {
    let conn = connection(url, "poison-quorum");
    let (consumer, calls) = failing_consumer(&conn, quick(options), usize::MAX);
    publish(
        &conn,
        "",
        queue,
        Message::new(b"poison".to_vec()).with_header("trace", "q-1"),
    );
    close_once_dropped(url, &consumer, queue);
    let stats = consumer.stats();
    assert_eq!(
        (stats.delivered, stats.failed, stats.retried, stats.dropped),
        (3, 3, 2, 1),
        "{stats:?}"
    );
    let calls = calls.lock().unwrap().clone();
    let seen: Vec<(u64, Option<u64>, bool)> = calls
        .iter()
        .map(|(_, info)| (info.attempt(), info.delivery_count(), info.is_redelivered()))
        .collect();
    // Requeued each time, the same message: the broker counts, and says
    // it is a redelivery.
    assert_eq!(
        seen,
        vec![(1, None, false), (2, Some(1), true), (3, Some(2), true)]
    );
    for (message, info) in &calls {
        assert_eq!(info.exchange(), "");
        assert_eq!(info.routing_key(), queue);
        assert_eq!(info.header("x-syncmq-attempts"), None, "no republish");
        assert_eq!(message.header("trace"), Some("q-1"));
        assert_eq!(info.header("trace"), Some("q-1"));
    }
    conn.close().unwrap();
    delete_queues(url, &[queue]);
}

#[test]
fn a_quorum_queue_counts_attempts_with_the_brokers_delivery_count() {
    let Some(url) = broker_url() else { return };
    let queue = unique("poison-quorum");
    let options = ConsumerOptions::new("", "")
        .with_queue(&queue)
        .with_queue_type(QueueType::Quorum);
    check_quorum_retries(&url, options, &queue);
}

#[test]
fn a_queue_quorum_by_the_vhosts_default_still_gets_three_attempts() {
    if broker_url().is_none() {
        return;
    }
    // The consumer declares its queue without `x-queue-type`: in this
    // vhost that makes a quorum queue, which the consumer cannot tell, so
    // it retries by publishing the message again with its count.
    let vhost = TestVhost::with_default_queue_type("poison-quorum", "quorum");
    let url = vhost.url();
    let queue = unique("poison-quorum");
    let conn = connection(&url, "poison-vhost-quorum");
    let options = quick(ConsumerOptions::new("", "").with_queue(&queue));
    let (consumer, calls) = failing_consumer(&conn, options, usize::MAX);
    publish(&conn, "", &queue, Message::new(b"poison".to_vec()));
    close_once_dropped(&url, &consumer, &queue);
    assert_eq!(
        calls.lock().unwrap().len(),
        3,
        "three attempts, then dropped"
    );
    conn.close().unwrap();
}

#[test]
fn a_client_consumer_handle_tells_its_stats_and_stops_it_alone() {
    let Some(url) = broker_url() else { return };
    let service = unique("poison-svc");
    let client = RabbitClient::start(
        RabbitClientConfig::new(&url, &service)
            .with_connection(ConnectionConfig::new(&url).with_name(unique("poison-handle"))),
    )
    .unwrap();
    let (a_seen, b_seen) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (a_count, b_count) = (a_seen.clone(), b_seen.clone());
    let a_keys = Arc::new(Mutex::new(Vec::new()));
    let a_record = a_keys.clone();
    let a = client
        .add_consumer_with_info(
            ConsumerOptions::new("", "handle-a"),
            move |_: &Message, info: &DeliveryInfo| -> Result<(), String> {
                a_record
                    .lock()
                    .unwrap()
                    .push(info.routing_key().to_string());
                a_count.fetch_add(1, Ordering::SeqCst);
                Ok(())
            },
        )
        .unwrap();
    let b = client
        .add_consumer(
            ConsumerOptions::new("", "handle-b"),
            move |_: &Message| -> Result<(), String> {
                b_count.fetch_add(1, Ordering::SeqCst);
                Ok(())
            },
        )
        .unwrap();
    assert_eq!(a.queue(), format!("{service}:handle-a:queue"));
    for queue in [a.queue(), b.queue()] {
        client
            .publish("", queue, Message::new(b"1".to_vec()))
            .unwrap();
    }
    eventually(PATIENCE, "one message each", || {
        a.stats().handled == 1 && b.stats().handled == 1
    });
    assert_eq!(a.stats().delivered, 1);
    assert_eq!(*a_keys.lock().unwrap(), vec![a.queue().to_string()]);
    a.close().unwrap();
    a.close().unwrap(); // a second close does nothing
    assert!(a.is_closed() && !b.is_closed());
    // a stopped consuming; b goes on.
    for queue in [a.queue(), b.queue()] {
        client
            .publish("", queue, Message::new(b"2".to_vec()))
            .unwrap();
    }
    eventually(PATIENCE, "b's second message", || b.stats().handled == 2);
    assert_eq!(
        queue_depth(&url, a.queue()),
        1,
        "a closed consumer takes nothing"
    );
    assert_eq!(a_seen.load(Ordering::SeqCst), 1);
    assert_eq!(b_seen.load(Ordering::SeqCst), 2);
    client.close().unwrap();
    assert!(b.is_closed(), "the client's close closes its consumers");
    b.close().unwrap();
    delete_queues(&url, &[a.queue(), b.queue()]);
}

#[test]
fn a_consumer_waiting_to_retry_closes_at_once_and_keeps_the_message() {
    let Some(url) = broker_url() else { return };
    let queue = unique("poison-close");
    let conn = connection(&url, "poison-close");
    let backoff = Duration::from_secs(60);
    let options = ConsumerOptions::new("", "")
        .with_queue(&queue)
        .with_retry_backoff(backoff, backoff);
    let (consumer, calls) = failing_consumer(&conn, options, usize::MAX);
    publish(&conn, "", &queue, Message::new(b"poison".to_vec()));
    eventually(PATIENCE, "the first attempt failed", || {
        consumer.stats().failed == 1
    });
    let started = std::time::Instant::now();
    consumer.close().unwrap();
    let took = started.elapsed();
    assert!(
        took < backoff / 4,
        "close waited {took:?} for a retry {backoff:?} away"
    );
    assert_eq!(calls.lock().unwrap().len(), 1);
    let stats = consumer.stats();
    assert_eq!((stats.retried, stats.dropped), (0, 0), "{stats:?}");
    assert_eq!(queue_depth(&url, &queue), 1, "the message was requeued");
    conn.close().unwrap();
    delete_queues(&url, &[&queue]);
}

#[test]
fn retry_options_default_to_three_attempts_and_bad_ones_are_refused() {
    let options = ConsumerOptions::new("orders", "order.created");
    assert_eq!(options.max_attempts(), 3);
    assert_eq!(
        options.retry_backoff(),
        (Duration::from_millis(100), Duration::from_secs(5))
    );
    options.clone().with_max_attempts(1).validate().unwrap();
    let field = |options: ConsumerOptions| match options.validate() {
        Err(syncmq::Error::InvalidArgument { name, .. }) => name,
        other => panic!("expected an InvalidArgument, got {other:?}"),
    };
    assert_eq!(field(options.clone().with_max_attempts(0)), "max_attempts");
    assert_eq!(
        field(
            options
                .clone()
                .with_retry_backoff(Duration::from_secs(2), Duration::from_secs(1))
        ),
        "retry_backoff"
    );
    assert_eq!(
        field(options.with_retry_backoff(Duration::ZERO, Duration::from_secs(3600))),
        "retry_backoff"
    );
}
