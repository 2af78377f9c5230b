//! The connection supervisor against the real broker: reconnects after a
//! broker-side close with a new generation, re-declares the topology, wakes
//! waiters, and closes within its deadline.

#![cfg(feature = "rabbitmq")]
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{
    broker_url, delete_queues, eventually, force_close_connection, queue_exists, unique,
    SilentProxy, TestVhost,
};
use syncmq::rabbitmq::{
    Connection, ConnectionConfig, Declaration, Publisher, PublisherConfig, QueueArguments,
};
use syncmq::Error;
use syncmq::Message;

const PATIENCE: Duration = Duration::from_secs(20);

fn connect(url: &str, name: &str) -> Connection {
    Connection::with_config(
        ConnectionConfig::new(url)
            .with_name(name)
            .with_backoff(Duration::from_millis(20), Duration::from_millis(500)),
    )
    .unwrap()
}

#[test]
fn a_forced_close_reconnects_with_a_new_generation_and_redeclares() {
    let Some(url) = broker_url() else { return };
    let name = unique("conn-test");
    let queue = unique("conn-test-q");
    let connection = connect(&url, &name);
    let waiter = connection.waiter();
    let first = waiter.wait_connected(PATIENCE).unwrap();
    connection
        .declare(vec![Declaration::queue(&queue)])
        .unwrap();
    assert!(queue_exists(&url, &queue));

    // Someone deletes the queue and the broker drops our connection: after
    // the reconnect the supervisor has declared it again.
    delete_queues(&url, &[&queue]);
    assert!(!queue_exists(&url, &queue));
    assert_eq!(force_close_connection(&name), 1);
    eventually(PATIENCE, "a reconnect with a newer generation", || {
        waiter.current().is_some_and(|g| g > first)
    });
    assert!(queue_exists(&url, &queue), "topology not re-declared");

    // And once more: every reconnect raises the generation again.
    let second = waiter.current().unwrap();
    assert_eq!(force_close_connection(&name), 1);
    eventually(PATIENCE, "a second reconnect", || {
        waiter.current().is_some_and(|g| g > second)
    });
    connection.close().unwrap();
    delete_queues(&url, &[&queue]);
}

#[test]
fn waiters_blocked_during_an_outage_wake_on_reconnect() {
    let Some(_) = broker_url() else { return };
    let vhost = TestVhost::new("syncmq-outage");
    let name = unique("conn-wake");
    let connection = connect(&vhost.url(), &name);
    let waiter = connection.waiter();
    let first = waiter.wait_connected(PATIENCE).unwrap();

    // An outage: the broker drops us and refuses to take us back.
    vhost.refuse_connections();
    assert_eq!(force_close_connection(&name), 1);
    eventually(PATIENCE, "the loss noticed", || !waiter.is_connected());
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let waiter = waiter.clone();
            std::thread::spawn(move || waiter.wait_connected(PATIENCE))
        })
        .collect();
    eventually(PATIENCE, "three blocked waiters", || waiter.waiting() == 3);
    assert!(!waiter.is_connected(), "reconnected although refused");

    // The outage ends: every waiter wakes on the new generation.
    vhost.accept_connections();
    for handle in handles {
        let generation = handle.join().unwrap().unwrap();
        assert!(generation > first);
    }
    connection.close().unwrap();
}

#[test]
fn an_unreachable_broker_is_retried_and_close_is_prompt() {
    // Port 1 refuses at once: the supervisor keeps retrying with backoff.
    let connection = Connection::with_config(
        ConnectionConfig::new("amqp://guest:guest@127.0.0.1:1/%2f")
            .with_backoff(Duration::from_millis(10), Duration::from_secs(30)),
    )
    .unwrap();
    let waiter = connection.waiter();
    // Each failed attempt is kept, and a wait or publish that times out
    // names it instead of looking like a slow broker.
    eventually(PATIENCE, "a failed attempt recorded", || {
        connection.last_error().is_some()
    });
    match connection.last_error() {
        Some(e @ Error::Disconnected { .. }) => {
            assert!(e.to_string().contains("127.0.0.1:1"), "{e}");
        }
        other => panic!("expected the connect error, got {other:?}"),
    }
    match waiter.wait_connected(Duration::from_millis(200)) {
        Err(Error::Timeout { what, .. }) => {
            assert!(
                what.contains("last connection error") && what.contains("127.0.0.1:1"),
                "{what}"
            );
        }
        other => panic!("expected a timeout naming the cause, got {other:?}"),
    }
    let publisher = Publisher::new(
        &connection,
        PublisherConfig::new()
            .with_confirm_timeout(Duration::from_millis(100))
            .with_close_timeout(Duration::ZERO),
    )
    .unwrap();
    match publisher.publish("", "q", Message::new(b"x".to_vec())) {
        Err(Error::Timeout { what, .. }) => {
            assert!(
                what.contains("confirm") && what.contains("127.0.0.1:1"),
                "{what}"
            );
        }
        other => panic!("expected a timeout naming the cause, got {other:?}"),
    }
    assert!(
        publisher.close().is_err(),
        "one message was never confirmed"
    );
    let blocked = {
        let waiter = waiter.clone();
        std::thread::spawn(move || waiter.wait_connected(Duration::from_secs(60)))
    };
    eventually(PATIENCE, "the waiter blocked", || waiter.waiting() == 1);
    // Never connected, so nothing to close on the broker: at once.
    let started = Instant::now();
    connection.close().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(blocked.join().unwrap(), Err(Error::Closed(_))));
    // A declare after close is refused, not lost silently.
    assert!(matches!(
        connection.declare(vec![Declaration::queue("x")]),
        Err(Error::Closed(_))
    ));
}

#[test]
fn a_silent_connection_is_noticed_by_heartbeats_and_replaced() {
    let Some(_) = broker_url() else { return };
    let proxy = SilentProxy::start();
    let connection = Connection::with_config(
        ConnectionConfig::new(proxy.url())
            .with_name(unique("silent"))
            .with_heartbeat(Duration::from_secs(1))
            .with_backoff(Duration::from_millis(20), Duration::from_millis(500)),
    )
    .unwrap();
    let waiter = connection.waiter();
    let first = waiter.wait_connected(PATIENCE).unwrap();
    // No bytes either way from now on, and nothing closed: only missed
    // heartbeats can tell. With 1 s heartbeats that takes a few seconds.
    let silenced = Instant::now();
    proxy.silence_existing();
    eventually(PATIENCE, "the silent connection replaced", || {
        waiter.current().is_some_and(|g| g > first)
    });
    let noticed = silenced.elapsed();
    assert!(
        noticed < Duration::from_secs(10),
        "a dead connection took {noticed:?} to notice with 1 s heartbeats"
    );
    connection.close().unwrap();
}

#[test]
fn a_recorded_declaration_the_broker_refuses_does_not_block_reconnects() {
    let Some(_) = broker_url() else { return };
    let vhost = TestVhost::new("syncmq-refused");
    let name = unique("refused-decl");
    // A queue that exists without a max priority...
    {
        let mut raw = amiquip::Connection::insecure_open(&vhost.url()).unwrap();
        let channel = raw.open_channel(None).unwrap();
        channel
            .queue_declare(
                "taken",
                amiquip::QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
            )
            .unwrap();
        raw.close().unwrap();
    }
    let connection = connect(&vhost.url(), &name);
    let waiter = connection.waiter();
    let first = waiter.wait_connected(PATIENCE).unwrap();
    vhost.refuse_connections();
    assert_eq!(force_close_connection(&name), 1);
    eventually(PATIENCE, "the loss noticed", || !waiter.is_connected());
    // ...and, recorded while down, a declaration of it with one, which the
    // broker will refuse, next to one it accepts.
    connection
        .declare(vec![
            Declaration::queue_with("taken", QueueArguments::new().with_max_priority(5)),
            Declaration::queue("fine"),
        ])
        .unwrap();
    vhost.accept_connections();
    eventually(PATIENCE, "connected again despite the refusal", || {
        waiter.current().is_some_and(|g| g > first)
    });
    assert!(queue_exists(&vhost.url(), "fine"));
    connection.close().unwrap();
}

/// A connection the broker refuses for good fails fast with the cause:
/// every wait and publish gets [`Error::Refused`], and close is at once.
fn assert_refused_fast(url: &str, code: &str) {
    let connection = Connection::with_config(
        ConnectionConfig::new(url)
            .with_name(unique("refused"))
            .with_backoff(Duration::from_millis(20), Duration::from_millis(500)),
    )
    .unwrap();
    let publisher = Publisher::new(&connection, PublisherConfig::new()).unwrap();
    let pending = publisher
        .send("", "q", Message::new(b"x".to_vec()))
        .unwrap();
    // PATIENCE is far longer than one attempt: a result before it is fast.
    match connection.waiter().wait_connected(PATIENCE) {
        Err(Error::Refused { text, .. }) => assert!(text.contains(code), "{text}"),
        other => panic!("expected {code}, got {other:?}"),
    }
    assert!(matches!(
        connection.last_error(),
        Some(Error::Refused { .. })
    ));
    match pending.wait_timeout(PATIENCE) {
        Err(Error::Refused { text, .. }) => assert!(text.contains(code), "{text}"),
        other => panic!("expected the buffered publish to fail with {code}, got {other:?}"),
    }
    match publisher.publish("", "q", Message::new(b"y".to_vec())) {
        Err(Error::Refused { text, .. }) => assert!(text.contains(code), "{text}"),
        other => panic!("expected {code}, got {other:?}"),
    }
    let started = Instant::now();
    match publisher.close() {
        Err(Error::Refused { text, .. }) => assert!(text.contains("1 buffered"), "{text}"),
        other => panic!("expected close to name the unpublished message, got {other:?}"),
    }
    connection.close().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_wrong_password_fails_fast_as_access_refused() {
    let Some(_) = broker_url() else { return };
    assert_refused_fast(
        "amqp://guest:not-the-password@127.0.0.1:5672/%2f",
        "ACCESS_REFUSED",
    );
}

#[test]
fn an_unknown_vhost_fails_fast_as_not_allowed() {
    let Some(_) = broker_url() else { return };
    let vhost = unique("syncmq-no-such-vhost");
    assert_refused_fast(
        &format!("amqp://guest:guest@127.0.0.1:5672/{vhost}"),
        "NOT_ALLOWED",
    );
}

#[test]
fn a_refusal_is_retried_when_asked_and_the_timeout_names_it() {
    let Some(_) = broker_url() else { return };
    let connection = Connection::with_config(
        ConnectionConfig::new("amqp://guest:not-the-password@127.0.0.1:5672/%2f")
            .with_retry_refusals(true)
            .with_backoff(Duration::from_millis(20), Duration::from_millis(200)),
    )
    .unwrap();
    eventually(PATIENCE, "a refused attempt recorded", || {
        connection.last_error().is_some()
    });
    match connection
        .waiter()
        .wait_connected(Duration::from_millis(300))
    {
        Err(Error::Timeout { what, .. }) => assert!(what.contains("ACCESS_REFUSED"), "{what}"),
        other => panic!("expected a timeout naming ACCESS_REFUSED, got {other:?}"),
    }
    assert!(
        !connection.waiter().is_closed(),
        "gave up although asked to retry"
    );
    let started = Instant::now();
    connection.close().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}
