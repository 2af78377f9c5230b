//! The `RabbitAdapter` under faults, against the real broker: stale acks after
//! a reconnect are errors and the message comes back; what goes into an
//! input while the connection is force-closed all comes out.

#![cfg(feature = "rabbitmq")]
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{broker_url, delete_queues, eventually, force_close_connection, unique};
use syncmq::rabbitmq::{ConnectionConfig, PublisherConfig};
use syncmq::{Adapter, ChannelSpec, Error, Mode, RabbitAdapter};

const PATIENCE: Duration = Duration::from_secs(30);

fn adapter(url: &str, name: &str) -> RabbitAdapter {
    RabbitAdapter::with_config(
        ConnectionConfig::new(url)
            .with_name(name)
            .with_backoff(Duration::from_millis(20), Duration::from_millis(500)),
        PublisherConfig::new(),
    )
    .unwrap()
}

#[test]
fn an_ack_from_before_a_reconnect_is_an_error_and_the_message_returns() {
    let Some(url) = broker_url() else { return };
    let name = unique("stale");
    let queue = unique("stale-q");
    let adapter = adapter(&url, &name);
    adapter
        .new_channel(ChannelSpec::new(&queue, Mode::Both))
        .unwrap();
    let (input, output) = (
        adapter.input(&queue).unwrap(),
        adapter.output(&queue).unwrap(),
    );
    input.send(b"once".into()).unwrap();
    let first = output.recv_timeout(PATIENCE).unwrap();
    assert!(!first.is_redelivered());

    let waiter = adapter.waiter();
    let before = waiter.current().unwrap();
    assert_eq!(force_close_connection(&name), 1);
    eventually(PATIENCE, "a reconnect", || {
        waiter.current().is_some_and(|g| g > before)
    });
    match first.ack() {
        Err(Error::StaleDelivery { .. }) => {}
        other => panic!("expected a stale-ack error, got {other:?}"),
    }
    // The broker never saw that ack: the message is delivered again.
    let again = output.recv_timeout(PATIENCE).unwrap();
    assert_eq!(again.body(), b"once");
    assert!(again.is_redelivered());
    again.ack().unwrap();
    // The stats say so: two deliveries, one ack (the stale one never
    // reached the broker), and a publisher that got its one message
    // confirmed and opened a channel again after the close.
    eventually(PATIENCE, "the ack counted", || {
        adapter.stats().unwrap().channel(&queue).is_some_and(|c| {
            (c.published, c.delivered, c.acked, c.nacked, c.buffered) == (1, 2, 1, 0, 0)
        })
    });
    eventually(PATIENCE, "the publisher's reconnect", || {
        adapter.publisher_stats().reconnects == 1
    });
    let publisher = adapter.publisher_stats();
    assert_eq!(
        (publisher.confirmed, publisher.buffered),
        (1, 0),
        "{publisher:?}"
    );
    adapter.close().unwrap();
    delete_queues(&url, &[&queue]);
}

#[test]
fn an_input_loses_nothing_across_forced_closes() {
    let Some(url) = broker_url() else { return };
    let name = unique("adapter-faults");
    let queue = unique("adapter-faults-q");
    let adapter = adapter(&url, &name);
    adapter
        .new_channel(ChannelSpec::new(&queue, Mode::Both).with_instances(2))
        .unwrap();
    let (input, output) = (
        adapter.input(&queue).unwrap(),
        adapter.output(&queue).unwrap(),
    );
    let total = 6_000u32;
    let waiter = adapter.waiter();
    let sender = std::thread::spawn(move || {
        for id in 0..total {
            input.send(id.to_be_bytes().to_vec().into()).unwrap();
            if id.is_multiple_of(100) {
                // Paced so that the closes below land mid-stream.
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    });
    let mut seen = HashSet::new();
    let mut duplicates = 0;
    let mut kills = 0;
    while seen.len() < total as usize {
        let d = output
            .recv_timeout(PATIENCE)
            .expect("deliveries keep coming");
        let id = u32::from_be_bytes(d.body().try_into().unwrap());
        if !seen.insert(id) {
            duplicates += 1;
        }
        // A stale ack (its channel died after we got it) is expected here:
        // the message is redelivered and counted as a duplicate.
        let _ = d.ack();
        if kills < 2 && seen.len() >= 1_500 * (kills + 1) {
            let before = waiter.wait_connected(PATIENCE).unwrap();
            assert_eq!(force_close_connection(&name), 1);
            kills += 1;
            eventually(PATIENCE, "a reconnect", || {
                waiter.current().is_some_and(|g| g > before)
            });
        }
    }
    sender.join().unwrap();
    eprintln!("adapter faults: {total} sent, all received, {duplicates} duplicates, {kills} forced closes");
    assert_eq!(kills, 2);
    adapter.close().unwrap();
    delete_queues(&url, &[&queue]);
}

#[test]
fn close_without_a_broker_is_prompt_and_says_what_was_not_confirmed() {
    // Nothing listens on port 1: the messages can only wait in the buffer.
    let adapter = RabbitAdapter::with_config(
        ConnectionConfig::new("amqp://guest:guest@127.0.0.1:1/%2f"),
        PublisherConfig::new().with_close_timeout(Duration::from_millis(100)),
    )
    .unwrap();
    adapter
        .new_channel(ChannelSpec::new("nowhere", Mode::Both))
        .unwrap();
    let input = adapter.input("nowhere").unwrap();
    for i in 0..10u8 {
        input.send(vec![i].into()).unwrap();
    }
    let started = std::time::Instant::now();
    match adapter.close() {
        Err(Error::Timeout { what, .. }) => assert!(what.contains("10 buffered"), "{what}"),
        other => panic!("expected a timeout naming 10 messages, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The input is closed: a send gives the message back.
    assert_eq!(
        input.send("late".into()).unwrap_err().into_inner().body(),
        b"late"
    );
}

#[test]
fn a_full_publisher_makes_send_block_instead_of_failing() {
    // Nothing listens on port 1: the publisher keeps what it took, and
    // takes no more than its buffer of 2.
    let adapter = RabbitAdapter::with_config(
        ConnectionConfig::new("amqp://guest:guest@127.0.0.1:1/%2f"),
        PublisherConfig::new()
            .with_buffer(2)
            .with_close_timeout(Duration::from_millis(100)),
    )
    .unwrap();
    adapter
        .new_channel(ChannelSpec::new("held", Mode::Input).with_buffer(1))
        .unwrap();
    let input = adapter.input("held").unwrap();
    // The second and third sends return only once the publisher took the
    // ones before: two in its buffer, one in the input.
    for i in 0..3u8 {
        input.send(vec![i].into()).unwrap();
    }
    // Both full: a send waits (here until its timeout) rather than fail.
    assert!(matches!(
        input.send_timeout("fourth".into(), Duration::from_millis(200)),
        Err(crossbeam_channel::SendTimeoutError::Timeout(_))
    ));
    match adapter.close() {
        Err(Error::Timeout { what, .. }) => assert!(what.contains("3 buffered"), "{what}"),
        other => panic!("expected a timeout naming 3 messages, got {other:?}"),
    }
}
