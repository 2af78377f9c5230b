//! The queue server over a real TCP socket: end to end through the client,
//! hostile frames, many concurrent clients, and consumers that die with
//! deliveries in flight.

#![cfg(feature = "durable")]
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeSet, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use syncmq::queue::{ManualClock, Queue, QueueConfig, TopicConfig};
use syncmq::server::protocol::{
    Request, Response, WireEntry, WireMessage, MAGIC, MAX_PEEK, PROTOCOL_VERSION,
};
use syncmq::server::{
    QueueClient, QueueClientConfig, QueueServer, QueueServerConfig, QueueServerStats,
};
use syncmq::{Delivery, Error, Message, ObjectKind};

fn topic() -> TopicConfig {
    TopicConfig::new("orders", ["billing", "shipping"])
}

fn durable_queue(dir: &std::path::Path, topic: TopicConfig) -> Arc<Queue> {
    Arc::new(Queue::open(dir, QueueConfig::new().with_topic(topic)).unwrap())
}

/// The ack timeout of the tests that move a [`ManualClock`] past it.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// A durable queue in `dir` with one topic, on `clock`.
fn durable_queue_on(
    dir: &std::path::Path,
    topic: TopicConfig,
    clock: &Arc<ManualClock>,
) -> Arc<Queue> {
    let config = QueueConfig::new()
        .with_topic(topic)
        .with_clock(clock.clone());
    Arc::new(Queue::open(dir, config).unwrap())
}

fn bodies(n: usize, tag: &str) -> Vec<Message> {
    (0..n)
        .map(|i| Message::new(format!("{tag}-{i}").into_bytes()))
        .collect()
}

/// A connection speaking raw frames, for what the client never sends.
struct Raw {
    stream: TcpStream,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Raw { stream }
    }

    fn hello(addr: SocketAddr) -> Raw {
        let mut raw = Raw::connect(addr);
        raw.send(&Request::Hello {
            magic: MAGIC.into(),
            version: PROTOCOL_VERSION,
            token: None,
        });
        match raw.recv() {
            Some(Response::Welcome { version, .. }) => assert_eq!(version, PROTOCOL_VERSION),
            other => panic!("expected welcome, got {other:?}"),
        }
        raw
    }

    fn send(&mut self, request: &Request) {
        let body = rmp_serde::to_vec_named(request).unwrap();
        self.send_bytes(&frame(&body));
    }

    fn send_bytes(&mut self, bytes: &[u8]) {
        // The server may have closed already: that is an outcome, not a
        // test failure.
        let _ = self.stream.write_all(bytes);
    }

    /// The next frame, or `None` at end of stream (or a reset).
    fn recv(&mut self) -> Option<Response> {
        let mut len = [0u8; 4];
        if self.stream.read_exact(&mut len).is_err() {
            return None;
        }
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body).ok()?;
        Some(rmp_serde::from_slice(&body).expect("the server sends valid frames"))
    }

    /// Reads until the server closes; returns what came.
    fn until_closed(&mut self) -> Vec<Response> {
        let mut got = Vec::new();
        while let Some(r) = self.recv() {
            got.push(r);
        }
        got
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn is_fatal(r: &Response, want: &str) -> bool {
    matches!(r, Response::Error { id: 0, kind, .. } if kind == want)
}

#[test]
fn end_to_end_publish_consume_ack_nack_reset_stats() {
    let dir = tempfile::tempdir().unwrap();
    let queue = durable_queue(dir.path(), topic().with_max_deliveries(0));
    let server = QueueServer::start(queue.clone(), QueueServerConfig::new()).unwrap();
    let client = QueueClient::connect(server.local_addr()).unwrap();

    client.publish("orders", &bodies(5, "o")).unwrap();
    // Durable when publish returned: the engine has it for both subscribers.
    let stats = client.stats(Some("orders")).unwrap();
    assert_eq!(stats.len(), 2);
    assert!(stats.iter().all(|s| s.depth == 5), "{stats:?}");

    // A window of 2: two come, and go back when the subscription is dropped
    // with them unsettled.
    let mut billing = client.subscribe_with("orders", "billing", 2).unwrap();
    let held = [billing.recv().unwrap(), billing.recv().unwrap()];
    assert_eq!(held[0].body(), b"o-0");
    drop(billing);
    drop(held);
    common::eventually(Duration::from_secs(5), "the two given back", || {
        let s = client.stats(Some("orders")).unwrap();
        s.iter()
            .any(|s| s.subscriber == "billing" && s.depth == 5 && s.in_flight == 0)
    });
    let mut billing = client.subscribe_with("orders", "billing", 2).unwrap();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let d = billing.recv().unwrap();
        seen.push(String::from_utf8(d.body().to_vec()).unwrap());
        d.ack().unwrap();
    }
    assert_eq!(seen, ["o-0", "o-1", "o-2", "o-3", "o-4"]);
    common::eventually(Duration::from_secs(5), "billing drained", || {
        let s = client.stats(Some("orders")).unwrap();
        s.iter()
            .any(|s| s.subscriber == "billing" && s.depth == 0 && s.in_flight == 0)
    });

    // Nack with requeue comes back first; nack without goes to the DLQ.
    let mut shipping = client.subscribe_with("orders", "shipping", 1).unwrap();
    let first = shipping.recv().unwrap();
    assert_eq!(first.body(), b"o-0");
    first.nack(true).unwrap();
    let again = shipping.recv().unwrap();
    assert_eq!(again.body(), b"o-0");
    assert!(again.is_redelivered());
    again.nack(false).unwrap();
    common::eventually(Duration::from_secs(5), "one dead letter", || {
        client.dead_letters("orders", "shipping", 10).unwrap().len() == 1
    });
    let dead = client.dead_letters("orders", "shipping", 10).unwrap();
    assert_eq!(dead[0].message.body(), b"o-0");

    // Reset puts the in-flight delivery back; it comes again.
    let held = shipping.recv().unwrap();
    assert_eq!(held.body(), b"o-1");
    assert_eq!(client.reset("orders", "shipping").unwrap(), 1);
    let again = shipping.recv().unwrap();
    assert_eq!(again.body(), b"o-1");
    assert!(again.is_redelivered());
    again.ack().unwrap();
    drop(held); // its acker's nack names an entry no longer in flight here

    assert_eq!(client.replay_dead_letters("orders", "shipping").unwrap(), 1);
    assert!(client
        .dead_letters("orders", "shipping", 10)
        .unwrap()
        .is_empty());

    // Errors are clear and leave the connection usable.
    // An unknown topic crosses the wire as itself.
    match client.publish("nope", &bodies(1, "x")) {
        Err(Error::NotFound {
            kind: ObjectKind::Topic,
            name,
        }) => assert_eq!(name, "nope"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(matches!(
        client.subscribe("orders", "nobody"),
        Err(Error::NotFound { kind: ObjectKind::Subscriber, name }) if name == "orders/nobody"
    ));
    client.publish("orders", &bodies(1, "after")).unwrap();
    server.close().unwrap();
    // After close calls fail, the iterator ends with the error.
    assert!(client.publish("orders", &bodies(1, "late")).is_err());
    let rest: Vec<_> = shipping.by_ref().collect();
    assert!(matches!(rest.last(), Some(Err(_))), "{rest:?}");
}

#[test]
fn a_published_reply_means_durable_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let queue = durable_queue(dir.path(), topic());
        let server = QueueServer::start(queue.clone(), QueueServerConfig::new()).unwrap();
        let client = QueueClient::connect(server.local_addr()).unwrap();
        client.publish("orders", &bodies(3, "d")).unwrap();
        server.close().unwrap();
        queue.close().unwrap();
    }
    let queue = durable_queue(dir.path(), topic());
    let server = QueueServer::start(queue, QueueServerConfig::new()).unwrap();
    let client = QueueClient::connect(server.local_addr()).unwrap();
    let mut sub = client.subscribe("orders", "billing").unwrap();
    for i in 0..3 {
        let d = sub.recv().unwrap();
        assert_eq!(d.body(), format!("d-{i}").as_bytes());
        d.ack().unwrap();
    }
}

/// A wire message as a peer before routing keys wrote it.
#[derive(serde::Serialize)]
struct Before {
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
    key: Option<String>,
}

#[test]
fn every_field_of_a_message_crosses_the_wire() {
    let queue = Arc::new(Queue::memory(QueueConfig::new().with_topic(topic())).unwrap());
    let server = QueueServer::start(queue, QueueServerConfig::new()).unwrap();
    let client = QueueClient::connect(server.local_addr()).unwrap();
    let expiry = std::time::SystemTime::now() + Duration::from_secs(3600);
    let sent = Message::new(b"full".to_vec())
        .with_key("order-7")
        .with_routing_key("orders.eu")
        .with_header("trace", "abc")
        .with_priority(0)
        .with_expiry(expiry);
    client
        .publish("orders", std::slice::from_ref(&sent))
        .unwrap();
    let mut sub = client.subscribe("orders", "billing").unwrap();
    let got = sub.recv().unwrap();
    assert_eq!(got.message().key(), Some("order-7"));
    assert_eq!(got.message().routing_key(), Some("orders.eu"));
    assert_eq!(
        got.message().headers().get("trace").map(String::as_str),
        Some("abc")
    );
    assert_eq!(got.message(), &sent, "the expiry and body too");
    got.ack().unwrap();
    // A frame from a peer that never heard of routing keys still reads.
    let old = rmp_serde::to_vec_named(&Before {
        body: b"x".to_vec(),
        key: Some("k".into()),
    })
    .unwrap();
    let read: WireMessage = rmp_serde::from_slice(&old).unwrap();
    assert_eq!((read.key.as_deref(), read.routing_key), (Some("k"), None));
}

#[test]
fn handshake_errors_close_the_connection() {
    let queue = Arc::new(Queue::memory(QueueConfig::new().with_topic(topic())).unwrap());
    let server = QueueServer::start(queue, QueueServerConfig::new()).unwrap();
    let addr = server.local_addr();

    let mut raw = Raw::connect(addr);
    raw.send(&Request::Hello {
        magic: MAGIC.into(),
        version: 99,
        token: None,
    });
    let got = raw.until_closed();
    assert!(got.len() == 1 && is_fatal(&got[0], "protocol"), "{got:?}");

    let mut raw = Raw::connect(addr);
    raw.send(&Request::Stats { id: 1, topic: None });
    let got = raw.until_closed();
    assert!(got.len() == 1 && is_fatal(&got[0], "protocol"), "{got:?}");

    let mut raw = Raw::hello(addr);
    raw.send_bytes(&u32::MAX.to_be_bytes());
    let got = raw.until_closed();
    assert!(
        got.len() == 1 && is_fatal(&got[0], "frame_too_large"),
        "{got:?}"
    );

    assert!(QueueClient::connect(addr).is_ok());
}

#[test]
fn the_frame_limit_is_enforced_and_request_errors_keep_the_connection() {
    let queue = Arc::new(Queue::memory(QueueConfig::new().with_topic(topic())).unwrap());
    let server = QueueServer::start(queue, QueueServerConfig::new().with_max_frame(4096)).unwrap();
    let client = QueueClient::connect(server.local_addr()).unwrap();
    // Over the limit the client refuses to send (it knows the limit).
    let big = Message::new(vec![7u8; 8192]);
    assert!(matches!(
        client.publish("orders", &[big]),
        Err(Error::Codec { .. })
    ));
    client.publish("orders", &bodies(2, "ok")).unwrap();

    // A raw peer that sends it anyway is cut off, the others go on.
    let mut raw = Raw::hello(server.local_addr());
    let body = rmp_serde::to_vec_named(&Request::Publish {
        id: 5,
        topic: "orders".into(),
        messages: vec![WireMessage::from(&Message::new(vec![1u8; 8192]))],
    })
    .unwrap();
    raw.send_bytes(&frame(&body));
    let got = raw.until_closed();
    assert!(
        got.len() == 1 && is_fatal(&got[0], "frame_too_large"),
        "{got:?}"
    );
    let stats = client.stats(Some("orders")).unwrap();
    assert!(stats.iter().all(|s| s.depth == 2), "{stats:?}");
}

/// A tiny deterministic generator (xorshift), so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
}

#[test]
fn ten_thousand_random_and_truncated_frames_crash_nothing_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let queue = durable_queue(dir.path(), TopicConfig::new("orders", ["billing"]));
    let server =
        QueueServer::start(queue, QueueServerConfig::new().with_max_frame(64 << 10)).unwrap();
    let addr = server.local_addr();
    // A well-behaved client that stays connected through the storm.
    let good = QueueClient::connect(addr).unwrap();
    let mut published = Vec::new();
    let valid = rmp_serde::to_vec_named(&Request::Publish {
        id: 9,
        topic: "orders".into(),
        messages: vec![WireMessage::from(&Message::new(b"never stored".to_vec()))],
    })
    .unwrap();
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let mut cut_off = 0;
    for i in 0..10_000u32 {
        let handshake = rng.below(4) != 0;
        let mut raw = if handshake {
            Raw::hello(addr)
        } else {
            Raw::connect(addr)
        };
        let case = rng.below(5);
        match case {
            // Random bytes, with a length prefix that matches them.
            0 => {
                let n = rng.below(64);
                let body = rng.bytes(n);
                raw.send_bytes(&frame(&body));
            }
            // Raw noise, length prefix included.
            1 => {
                let n = rng.below(64) + 1;
                let noise = rng.bytes(n);
                raw.send_bytes(&noise);
            }
            // A valid publish, truncated, announced at its truncated length.
            2 => {
                let keep = rng.below(valid.len());
                raw.send_bytes(&frame(&valid[..keep]));
            }
            // A valid publish, cut off inside the frame.
            3 => {
                let whole = frame(&valid);
                let keep = rng.below(whole.len());
                raw.send_bytes(&whole[..keep]);
            }
            // A valid publish with random bytes flipped.
            _ => {
                let mut body = valid.clone();
                for _ in 0..=rng.below(4) {
                    let at = rng.below(body.len());
                    body[at] = rng.byte();
                }
                raw.send_bytes(&frame(&body));
            }
        }
        let _ = raw.stream.shutdown(std::net::Shutdown::Write);
        let got = raw.until_closed();
        // The server answers a bad frame with one error frame and closes;
        // a frame cut off by our own shutdown just ends the connection. A
        // flipped byte may leave a valid request, which is answered.
        for r in &got {
            match r {
                Response::Error { .. } | Response::Published { .. } => {}
                other => panic!("case {case} of round {i}: unexpected {other:?}"),
            }
        }
        if got
            .iter()
            .any(|r| matches!(r, Response::Error { id: 0, .. }))
        {
            cut_off += 1;
        }
        if i % 1000 == 0 {
            let batch = bodies(3, &format!("good-{i}"));
            good.publish("orders", &batch).unwrap();
            published.extend(batch.into_iter().map(Message::into_body));
        }
    }
    assert!(
        cut_off > 1000,
        "only {cut_off} connections got an error frame"
    );
    // Every acknowledged publish is there, in order. (A flipped byte may
    // have made another valid publish; those were answered and count too.)
    let mut sub = good.subscribe("orders", "billing").unwrap();
    let mut good_only = Vec::new();
    while good_only.len() < published.len() {
        let d = sub
            .recv_timeout(Duration::from_secs(5))
            .unwrap()
            .expect("an acknowledged publish is missing");
        if d.body().starts_with(b"good-") {
            good_only.push(d.body().to_vec());
        }
        d.ack().unwrap();
    }
    assert_eq!(good_only, published);
}

#[test]
fn fifty_concurrent_clients_lose_nothing() {
    const PUBLISHERS: usize = 25;
    const CONSUMERS: usize = 25;
    const PER_PUBLISHER: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let queue = durable_queue(dir.path(), TopicConfig::new("orders", ["billing"]));
    let server = QueueServer::start(queue, QueueServerConfig::new()).unwrap();
    let addr = server.local_addr();
    let total = PUBLISHERS * PER_PUBLISHER;
    let received = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut threads = Vec::new();
    for p in 0..PUBLISHERS {
        threads.push(std::thread::spawn(move || {
            let client = QueueClient::connect(addr).unwrap();
            for b in 0..PER_PUBLISHER / 5 {
                let batch: Vec<Message> = (0..5)
                    .map(|i| Message::new(format!("p{p}-{}", b * 5 + i).into_bytes()))
                    .collect();
                client.publish("orders", &batch).unwrap();
            }
        }));
    }
    for _ in 0..CONSUMERS {
        let received = received.clone();
        threads.push(std::thread::spawn(move || {
            let client =
                QueueClient::connect_with(addr, QueueClientConfig::new().with_batch(8)).unwrap();
            let mut sub = client.subscribe("orders", "billing").unwrap();
            loop {
                if received.lock().unwrap().len() >= total {
                    return;
                }
                if let Some(d) = sub.recv_timeout(Duration::from_millis(50)).unwrap() {
                    received
                        .lock()
                        .unwrap()
                        .push(String::from_utf8(d.body().to_vec()).unwrap());
                    d.ack().unwrap();
                }
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    let received = received.lock().unwrap();
    let unique: HashSet<&String> = received.iter().collect();
    assert_eq!(unique.len(), total, "some messages never came");
    assert_eq!(received.len(), total, "some messages came twice");
    let client = QueueClient::connect(addr).unwrap();
    common::eventually(Duration::from_secs(5), "every ack applied", || {
        let s = &client.stats(Some("orders")).unwrap()[0];
        s.depth == 0 && s.in_flight == 0
    });
}

#[test]
fn a_consumer_killed_mid_batch_has_its_messages_redelivered_to_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let queue = durable_queue(dir.path(), TopicConfig::new("orders", ["billing"]));
    let server = QueueServer::start(queue, QueueServerConfig::new()).unwrap();
    let addr = server.local_addr();
    let client = QueueClient::connect(addr).unwrap();
    client.publish("orders", &bodies(10, "m")).unwrap();

    // The doomed consumer speaks raw frames so that nothing settles its
    // deliveries on the way out: it acks two and then its socket dies.
    let mut doomed = Raw::hello(addr);
    doomed.send(&Request::Subscribe {
        id: 1,
        topic: "orders".into(),
        subscriber: "billing".into(),
        batch: 6,
        max: None,
    });
    let Some(Response::Subscribed { sub, .. }) = doomed.recv() else {
        panic!("no subscribed reply");
    };
    let mut entries: Vec<WireEntry> = Vec::new();
    while entries.len() < 6 {
        match doomed.recv() {
            Some(Response::Deliver { deliveries, .. }) => {
                entries.extend(deliveries.iter().map(|d| d.entry));
            }
            other => panic!("expected deliveries, got {other:?}"),
        }
    }
    doomed.send(&Request::Ack {
        id: 2,
        sub,
        entries: entries[..2].to_vec(),
        multiple: false,
    });
    // The window refills as the acks land: two more come (m-6, m-7),
    // before or after the reply.
    let mut replied = false;
    while !replied || entries.len() < 8 {
        match doomed.recv() {
            Some(Response::Done { id: 2, count }) => {
                assert_eq!(count, 2);
                replied = true;
            }
            Some(Response::Deliver { deliveries, .. }) => {
                entries.extend(deliveries.iter().map(|d| d.entry));
            }
            other => panic!("expected the ack's reply, got {other:?}"),
        }
    }
    let held = entries.len() - 2;
    assert_eq!(held, 6);
    drop(doomed); // killed: no nack, no unsubscribe, just a closed socket
                  // The server notices the closed socket and gives the six back.
    common::eventually(Duration::from_secs(5), "the six given back", || {
        let s = &client.stats(Some("orders")).unwrap()[0];
        s.in_flight == 0 && s.depth == 8
    }); // killed: no nack, no unsubscribe, just a closed socket

    let mut next = client.subscribe("orders", "billing").unwrap();
    let mut got = Vec::new();
    for _ in 0..8 {
        let d = next.recv().unwrap();
        got.push((
            String::from_utf8(d.body().to_vec()).unwrap(),
            d.is_redelivered(),
        ));
        d.ack().unwrap();
    }
    let names: Vec<&str> = got.iter().map(|(b, _)| b.as_str()).collect();
    assert_eq!(
        names,
        ["m-2", "m-3", "m-4", "m-5", "m-6", "m-7", "m-8", "m-9"]
    );
    // Those it held come again, first, marked as redelivered.
    assert!(got[..held].iter().all(|(_, r)| *r), "{got:?}");
    assert!(got[held..].iter().all(|(_, r)| !*r), "{got:?}");
    assert!(next
        .recv_timeout(Duration::from_millis(100))
        .unwrap()
        .is_none());
}

#[test]
fn deliveries_come_in_queue_order_and_the_window_holds() {
    let queue = Arc::new(
        Queue::memory(QueueConfig::new().with_topic(TopicConfig::new("t", ["s"]))).unwrap(),
    );
    let server = QueueServer::start(queue, QueueServerConfig::new()).unwrap();
    let client = QueueClient::connect(server.local_addr()).unwrap();
    client.publish("t", &bodies(50, "n")).unwrap();
    let mut sub = client.subscribe_with("t", "s", 5).unwrap();
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(sub.recv().unwrap());
    }
    // Five unacknowledged: nothing more comes until one is settled.
    assert!(sub
        .recv_timeout(Duration::from_millis(100))
        .unwrap()
        .is_none());
    let stats = &client.stats(Some("t")).unwrap()[0];
    assert_eq!((stats.in_flight, stats.depth), (5, 45));
    // ack_multiple settles all five at once.
    held.pop().unwrap().ack_multiple().unwrap();
    let mut order: BTreeSet<usize> = BTreeSet::new();
    let mut last = 4;
    for _ in 5..50 {
        let d = sub.recv().unwrap();
        let n: usize = std::str::from_utf8(&d.body()[2..])
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(n, last + 1, "out of order");
        last = n;
        order.insert(n);
        d.ack().unwrap();
    }
    drop(held); // acked through ack_multiple already: their nacks do nothing
    assert_eq!(order.len(), 45);
}

#[test]
fn connections_over_the_limit_are_refused_with_busy() {
    let queue = Arc::new(Queue::memory(QueueConfig::new().with_topic(topic())).unwrap());
    let server =
        QueueServer::start(queue, QueueServerConfig::new().with_max_connections(2)).unwrap();
    let a = QueueClient::connect(server.local_addr()).unwrap();
    let b = QueueClient::connect(server.local_addr()).unwrap();
    match QueueClient::connect(server.local_addr()) {
        Err(e @ Error::Busy { .. }) => assert!(e.is_transient(), "{e}"),
        other => panic!("expected a busy refusal, got {other:?}"),
    }
    // A slot frees when a client leaves.
    drop(b);
    common::eventually(Duration::from_secs(5), "one connection left", || {
        server.connections() == 1
    });
    let c = QueueClient::connect(server.local_addr()).unwrap();
    a.publish("orders", &bodies(1, "a")).unwrap();
    c.publish("orders", &bodies(1, "c")).unwrap();
}

#[test]
fn server_stats_count_connections_frames_and_refusals() {
    let queue = Arc::new(Queue::memory(QueueConfig::new().with_topic(topic())).unwrap());
    let server =
        QueueServer::start(queue, QueueServerConfig::new().with_max_connections(1)).unwrap();
    assert_eq!(server.stats(), QueueServerStats::default());
    // Hello and welcome, ping and its answer.
    let mut raw = Raw::hello(server.local_addr());
    raw.send(&Request::Ping { id: 1 });
    assert!(matches!(raw.recv(), Some(Response::Done { id: 1, .. })));
    // The second connection is one over the limit.
    let refused = Raw::connect(server.local_addr()).until_closed();
    assert!(refused.iter().any(|r| is_fatal(r, "busy")), "{refused:?}");
    let stats = server.stats();
    assert_eq!(
        (
            stats.connections,
            stats.accepted,
            stats.refused,
            stats.frames_in,
            stats.frames_out
        ),
        (1, 1, 1, 2, 2),
        "{stats:?}"
    );
    let json = serde_json::to_string(&stats).unwrap();
    assert_eq!(
        serde_json::from_str::<QueueServerStats>(&json).unwrap(),
        stats
    );
    drop(raw);
    common::eventually(Duration::from_secs(5), "the connection closed", || {
        server.stats().connections == 0
    });
    assert_eq!(server.stats().accepted, 1);
}

#[test]
fn a_consumer_that_stops_reading_is_dropped_and_others_go_on() {
    let queue = Arc::new(
        Queue::memory(QueueConfig::new().with_topic(TopicConfig::new("t", ["s"]))).unwrap(),
    );
    let server = QueueServer::start(
        queue,
        QueueServerConfig::new().with_write_timeout(Duration::from_millis(300)),
    )
    .unwrap();
    let client = QueueClient::connect(server.local_addr()).unwrap();
    // 32 MB: more than the loopback socket buffers hold.
    let big: Vec<Message> = (0..512)
        .map(|_| Message::new(vec![1u8; 64 << 10]))
        .collect();
    for chunk in big.chunks(64) {
        client.publish("t", chunk).unwrap();
    }
    let mut stuck = Raw::hello(server.local_addr());
    stuck.send(&Request::Subscribe {
        id: 1,
        topic: "t".into(),
        subscriber: "s".into(),
        batch: 1000,
        max: None,
    });
    // It never reads: the server's writes block, time out, and the
    // connection is dropped with every delivery given back.
    common::eventually(
        Duration::from_secs(20),
        "the stuck consumer dropped",
        || {
            let s = &client.stats(Some("t")).unwrap()[0];
            server.connections() == 1 && s.in_flight == 0 && s.depth == 512
        },
    );
    client.publish("t", &bodies(1, "after")).unwrap();
    drop(stuck);
}

#[test]
fn an_unacked_delivery_comes_again_after_the_ack_timeout_and_can_be_acked() {
    let clock = Arc::new(ManualClock::new());
    let queue = Arc::new(
        Queue::memory(
            QueueConfig::new()
                .with_topic(TopicConfig::new("t", ["s"]).with_ack_timeout(ACK_TIMEOUT))
                .with_clock(clock.clone()),
        )
        .unwrap(),
    );
    let server = QueueServer::start(queue, QueueServerConfig::new()).unwrap();
    let client = QueueClient::connect(server.local_addr()).unwrap();
    client.publish("t", &bodies(1, "slow")).unwrap();
    let mut sub = client.subscribe_with("t", "s", 10).unwrap();
    let first = sub.recv().unwrap();
    assert!(!first.is_redelivered());
    // Not acked in time: the engine gives it back and it is pushed again.
    clock.advance(ACK_TIMEOUT + Duration::from_secs(1)).unwrap();
    let again = sub.recv().unwrap();
    assert_eq!(again.body(), b"slow-0");
    assert!(again.is_redelivered());
    again.ack_multiple().unwrap();
    drop(first);
    common::eventually(Duration::from_secs(5), "acked", || {
        let s = &client.stats(Some("t")).unwrap()[0];
        s.depth == 0 && s.in_flight == 0
    });
}

/// Issue 11, item 3: an entry redelivered after its ack timeout is a new
/// delivery; the late ack of the first one is refused, not applied to the
/// second, and an ack of something already acked is an error too.
#[test]
fn a_stale_ack_over_the_wire_is_refused_and_settles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new());
    let queue = durable_queue_on(
        dir.path(),
        TopicConfig::new("t", ["s"]).with_ack_timeout(ACK_TIMEOUT),
        &clock,
    );
    let server = QueueServer::start(queue.clone(), QueueServerConfig::new()).unwrap();
    queue
        .publish("t", &[Message::new(b"slow".to_vec())])
        .unwrap();
    let mut raw = Raw::hello(server.local_addr());
    raw.send(&Request::Subscribe {
        id: 1,
        topic: "t".into(),
        subscriber: "s".into(),
        batch: 10,
        max: None,
    });
    let mut entries = Vec::new();
    let mut sub = 0;
    // The first delivery, then (once the clock is past the ack timeout)
    // the second.
    let mut advanced = false;
    while entries.len() < 2 {
        if entries.len() == 1 && !advanced {
            clock.advance(ACK_TIMEOUT + Duration::from_secs(1)).unwrap();
            advanced = true;
        }
        match raw.recv() {
            Some(Response::Subscribed { sub: n, .. }) => sub = n,
            Some(Response::Deliver { deliveries, .. }) => {
                entries.extend(deliveries.into_iter().map(|d| (d.entry, d.deliveries)));
            }
            other => panic!("expected a delivery, got {other:?}"),
        }
    }
    let (first, second) = (entries[0], entries[1]);
    assert_eq!((first.1, second.1), (1, 2));
    assert_eq!(
        (first.0.priority, first.0.position),
        (second.0.priority, second.0.position)
    );
    assert_eq!((first.0.delivery, second.0.delivery), (1, 2));
    let ack = |id, entry| Request::Ack {
        id,
        sub,
        entries: vec![entry],
        multiple: false,
    };
    raw.send(&ack(2, first.0));
    match raw.recv() {
        Some(Response::Error {
            id: 2,
            kind,
            message,
            ..
        }) => {
            assert_eq!(kind, "invalid_argument");
            assert!(message.contains("stale"), "{message}");
        }
        other => panic!("expected the stale ack refused, got {other:?}"),
    }
    assert_eq!(queue.stats("t").unwrap()[0].in_flight, 1, "nothing acked");
    raw.send(&ack(3, second.0));
    assert!(matches!(
        raw.recv(),
        Some(Response::Done { id: 3, count: 1 })
    ));
    raw.send(&ack(4, second.0));
    assert!(matches!(
        raw.recv(),
        Some(Response::Error { id: 4, ref kind, .. }) if kind == "invalid_argument"
    ));
    assert_eq!(queue.stats("t").unwrap()[0].in_flight, 0);
    drop(raw);
    server.close().unwrap();
}

/// Acks go out without a reply; `close` is where the client waits for the
/// server to have applied them. After that, an ack has no connection to go
/// over: the delivery is stale (the server gives it back).
#[test]
fn close_returns_once_every_ack_is_applied_and_a_later_ack_is_stale() {
    // On disk, where an ack costs the server a write: enough of them are
    // still being applied when the last one has been sent.
    const N: u32 = 2001;
    let dir = tempfile::tempdir().unwrap();
    let queue = durable_queue(dir.path(), TopicConfig::new("t", ["s"]));
    let server = QueueServer::start(queue.clone(), QueueServerConfig::new()).unwrap();
    let client = QueueClient::connect(server.local_addr()).unwrap();
    client.publish("t", &bodies(N as usize, "a")).unwrap();
    let mut sub = client.subscribe_with("t", "s", N).unwrap();
    let mut deliveries: Vec<Delivery> = (0..N).map(|_| sub.recv().unwrap()).collect();
    let kept = deliveries.pop().unwrap();
    for d in deliveries {
        d.ack().unwrap();
    }
    client.close().unwrap();
    // No waiting here: every ack was applied when close returned; only the
    // kept delivery is left (in flight, or given back already).
    let s = &queue.stats("t").unwrap()[0];
    assert_eq!(s.depth + s.in_flight, 1, "{s:?}");
    match kept.ack() {
        Err(Error::StaleDelivery { what }) => assert!(what.contains("subscription"), "{what}"),
        other => panic!("expected a stale delivery, got {other:?}"),
    }
    client.close().unwrap(); // a second close does nothing
    drop(sub);
    server.close().unwrap();
    server.close().unwrap();
}

#[test]
fn a_socket_timeout_below_a_millisecond_is_refused_naming_it() {
    let queue = Arc::new(Queue::memory(QueueConfig::new().with_topic(topic())).unwrap());
    for (config, want) in [
        (
            QueueServerConfig::new().with_handshake_timeout(Duration::ZERO),
            "handshake_timeout",
        ),
        (
            QueueServerConfig::new().with_idle_timeout(Duration::from_micros(500)),
            "idle_timeout",
        ),
        (
            QueueServerConfig::new().with_write_timeout(Duration::ZERO),
            "write_timeout",
        ),
    ] {
        match QueueServer::start(queue.clone(), config) {
            Err(Error::InvalidArgument { name, .. }) => assert_eq!(name, want),
            other => panic!("expected {want} refused, got {other:?}"),
        }
    }
    let server =
        QueueServer::start(queue, QueueServerConfig::new().without_idle_timeout()).unwrap();
    // Without an idle timeout the welcome announces none.
    let mut raw = Raw::connect(server.local_addr());
    raw.send(&Request::Hello {
        magic: MAGIC.into(),
        version: PROTOCOL_VERSION,
        token: None,
    });
    let welcome = raw.recv();
    assert!(
        matches!(
            welcome,
            Some(Response::Welcome {
                idle_timeout_ms: None,
                ..
            })
        ),
        "{welcome:?}"
    );
    raw.send(&Request::Ping { id: 1 });
    assert!(matches!(
        raw.recv(),
        Some(Response::Done { id: 1, count: 0 })
    ));
}

#[test]
fn acks_that_arrive_together_settle_together_and_a_wrong_one_alone() {
    let queue = Arc::new(Queue::memory(QueueConfig::new().with_topic(topic())).unwrap());
    let server = QueueServer::start(queue.clone(), QueueServerConfig::new()).unwrap();
    queue.publish("orders", &bodies(10, "m")).unwrap();
    let mut raw = Raw::hello(server.local_addr());
    raw.send(&Request::Subscribe {
        id: 1,
        topic: "orders".into(),
        subscriber: "billing".into(),
        batch: 10,
        max: None,
    });
    let mut sub = 0;
    let mut entries = Vec::new();
    while entries.len() < 10 {
        match raw.recv() {
            Some(Response::Subscribed { sub: n, .. }) => sub = n,
            Some(Response::Deliver { deliveries, .. }) => {
                entries.extend(deliveries.into_iter().map(|d| d.entry));
            }
            other => panic!("expected a delivery, got {other:?}"),
        }
    }
    let ack = |entry| {
        frame(
            &rmp_serde::to_vec_named(&Request::Ack {
                id: 0,
                sub,
                entries: vec![entry],
                multiple: false,
            })
            .unwrap(),
        )
    };
    let never = WireEntry {
        position: 999,
        ..entries[0]
    };
    // One write: five acks with a wrong one among them (never delivered)
    // and one twice, then a ping whose reply says they were all read.
    let mut burst = Vec::new();
    for (i, entry) in entries[..5].iter().enumerate() {
        burst.extend(ack(*entry));
        if i == 2 {
            burst.extend(ack(never));
            burst.extend(ack(entries[0]));
        }
    }
    burst.extend(frame(
        &rmp_serde::to_vec_named(&Request::Ping { id: 2 }).unwrap(),
    ));
    raw.send_bytes(&burst);
    assert!(matches!(
        raw.recv(),
        Some(Response::Done { id: 2, count: 0 })
    ));
    let stats = billing_stats(&queue);
    assert_eq!(
        (stats.in_flight, stats.depth),
        (5, 0),
        "the five right acks settled, the wrong ones nothing"
    );
    drop(raw);
    server.close().unwrap();
}

#[test]
fn held_acks_go_out_when_the_subscriber_runs_out_and_before_any_request() {
    let queue = Arc::new(Queue::memory(QueueConfig::new().with_topic(topic())).unwrap());
    let server = QueueServer::start(queue.clone(), QueueServerConfig::new()).unwrap();
    let client = QueueClient::connect(server.local_addr()).unwrap();
    client.publish("orders", &bodies(20, "m")).unwrap();
    let mut billing = client.subscribe_with("orders", "billing", 20).unwrap();
    let in_flight = || billing_stats(&queue).in_flight;
    // Acked with more deliveries in hand: some may be held back, but the
    // client's next request finds every one of them read.
    let mut last = None;
    for _ in 0..20 {
        let delivery = billing.recv().unwrap();
        if let Some(d) = last.replace(delivery) {
            d.ack().unwrap();
        }
    }
    let stats = client.stats(Some("orders")).unwrap();
    let billing_in_flight = stats.iter().find(|s| s.subscriber == "billing").unwrap();
    assert_eq!(
        billing_in_flight.in_flight, 1,
        "every ack but the last one's applied"
    );
    // Nothing in hand any more: an ack goes out at once, with no later
    // request to carry it.
    last.unwrap().ack().unwrap();
    common::eventually(Duration::from_secs(10), "the last ack applied", || {
        in_flight() == 0
    });
    drop(billing);
    client.close().unwrap();
    server.close().unwrap();
}

#[test]
fn a_peek_over_the_wire_shows_the_next_messages_and_takes_none() {
    let dir = tempfile::tempdir().unwrap();
    let queue = durable_queue(dir.path(), topic().with_priorities(2));
    let server = QueueServer::start(queue.clone(), QueueServerConfig::new()).unwrap();
    let client = QueueClient::connect(server.local_addr()).unwrap();
    assert_eq!(client.peek("orders", "billing").unwrap(), None);
    client
        .publish(
            "orders",
            &[
                Message::new(b"later".to_vec()).with_priority(1),
                Message::new(b"first".to_vec()).with_header("h", "v"),
                Message::new(b"second".to_vec()),
            ],
        )
        .unwrap();
    let before = client.stats(Some("orders")).unwrap();

    let peeked = client.peek("orders", "billing").unwrap().unwrap();
    assert_eq!(peeked.message.body(), b"first");
    assert_eq!(peeked.message.header("h"), Some("v"));
    assert_eq!((peeked.deliveries, peeked.id.delivery), (0, 0));
    let all: Vec<Vec<u8>> = client
        .peek_batch("orders", "billing", 10)
        .unwrap()
        .into_iter()
        .map(|p| p.message.into_body())
        .collect();
    assert_eq!(all, [&b"first"[..], b"second", b"later"]);
    assert_eq!(client.stats(Some("orders")).unwrap(), before);
    assert_eq!(billing_stats(&queue).in_flight, 0);

    // The subscriber then receives it as a first delivery.
    let mut billing = client.subscribe_with("orders", "billing", 1).unwrap();
    let d = billing.recv().unwrap();
    assert_eq!(d.body(), b"first");
    assert!(!d.is_redelivered());
    d.ack().unwrap();

    // Bad limits and unknown names are request errors; the connection
    // goes on.
    for limit in [0, MAX_PEEK + 1] {
        match client.peek_batch("orders", "billing", limit) {
            Err(Error::InvalidArgument { name, .. }) => assert_eq!(name, "limit"),
            other => panic!("limit {limit}: expected InvalidArgument, got {other:?}"),
        }
    }
    assert!(matches!(
        client.peek("orders", "nobody"),
        Err(Error::NotFound {
            kind: ObjectKind::Subscriber,
            ..
        })
    ));
    assert_eq!(
        client
            .peek("orders", "shipping")
            .unwrap()
            .unwrap()
            .message
            .body(),
        b"first"
    );
}

#[test]
fn a_busy_address_and_an_unreachable_server_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let queue = durable_queue(dir.path(), topic());
    let server = QueueServer::start(queue.clone(), QueueServerConfig::new()).unwrap();
    let taken = server.local_addr().to_string();
    match QueueServer::start(queue, QueueServerConfig::new().with_addr(&taken)) {
        Err(e @ Error::AddrInUse { .. }) => {
            assert_eq!(e.to_string(), format!("address {taken} is already in use"));
        }
        other => panic!("expected AddrInUse, got {other:?}"),
    }
    // A port nothing listens on: the one the server had, once closed.
    server.close().unwrap();
    drop(server);
    match QueueClient::connect(taken.as_str()) {
        Err(e @ Error::Unreachable { .. }) => {
            assert!(e.is_transient());
            assert_eq!(
                e.to_string(),
                format!("cannot reach the queue server at {taken}: connection refused")
            );
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

fn billing_stats(queue: &Queue) -> syncmq::queue::SubscriberStats {
    queue
        .stats("orders")
        .unwrap()
        .into_iter()
        .find(|s| s.subscriber == "billing")
        .unwrap()
}
