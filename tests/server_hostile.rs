//! The queue server's cost per connection under hostile or careless
//! clients: announced-but-unsent frames, connections that go quiet, and
//! more subscriptions than a connection may hold.

#![cfg(feature = "durable")]
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use syncmq::queue::{Queue, QueueConfig, TopicConfig};
use syncmq::server::protocol::{Request, Response, MAGIC, PROTOCOL_VERSION};
use syncmq::server::{QueueClient, QueueServer, QueueServerConfig};
use syncmq::{Error, Message};

/// The tests run one at a time: the memory test measures the whole
/// process, and another test's queue would count against it.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

fn memory_queue(subscribers: &[&str]) -> Arc<Queue> {
    let topic = TopicConfig::new("orders", subscribers.iter().copied());
    Arc::new(Queue::memory(QueueConfig::new().with_topic(topic)).unwrap())
}

/// This process's resident set, in bytes, from /proc/self/status.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/self/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmRSS in kB");
    kib * 1024
}

/// A connection speaking raw frames, for what the client never sends.
struct Raw {
    stream: TcpStream,
}

impl Raw {
    /// Connects and says hello; returns the welcome's idle timeout too.
    fn hello(addr: SocketAddr) -> (Raw, Option<u64>) {
        let stream = TcpStream::connect(addr).unwrap();
        // The bound on every wait of these tests: a server that never
        // answers fails the test instead of hanging it.
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut raw = Raw { stream };
        raw.send(&Request::Hello {
            magic: MAGIC.into(),
            version: PROTOCOL_VERSION,
            token: None,
        });
        match raw.recv() {
            Ok(Some(Response::Welcome {
                version,
                idle_timeout_ms,
                ..
            })) => {
                assert_eq!(version, PROTOCOL_VERSION);
                (raw, idle_timeout_ms)
            }
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    fn send(&mut self, request: &Request) {
        let body = rmp_serde::to_vec_named(request).unwrap();
        let mut frame = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).unwrap();
    }

    /// The next frame; `Ok(None)` at end of stream; `Err` when the read
    /// timeout passed first.
    fn recv(&mut self) -> std::io::Result<Option<Response>> {
        let mut len = [0u8; 4];
        match self.stream.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(None),
            Err(e) => return Err(e),
        }
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body)?;
        Ok(Some(
            rmp_serde::from_slice(&body).expect("the server sends valid frames"),
        ))
    }
}

#[test]
fn frames_announcing_16_mib_and_sending_one_byte_do_not_grow_the_servers_memory() {
    // 32 connections each announce a 16 MiB frame and send one byte of
    // it. Today's main resized its buffer to the announced length: 512 MiB.
    const HOSTILE: usize = 32;
    // Messages a well-behaved client publishes and consumes meanwhile.
    const N: usize = 10_000;
    let _serial = serial();
    let queue = memory_queue(&["billing"]);
    let server = QueueServer::start(queue, QueueServerConfig::new()).unwrap();
    let before = rss_bytes();

    let mut hostile = Vec::new();
    for _ in 0..HOSTILE {
        let (mut raw, _) = Raw::hello(server.local_addr());
        let mut bytes = (16u32 << 20).to_be_bytes().to_vec();
        bytes.push(0x81);
        raw.stream.write_all(&bytes).unwrap();
        hostile.push(raw);
    }

    // Meanwhile the well-behaved client: every message arrives, exactly
    // once.
    let client = QueueClient::connect(server.local_addr()).unwrap();
    for batch in 0..N / 100 {
        let messages: Vec<Message> = (0..100)
            .map(|i| Message::new(format!("m-{}", batch * 100 + i).into_bytes()))
            .collect();
        client.publish("orders", &messages).unwrap();
    }
    let mut billing = client.subscribe("orders", "billing").unwrap();
    let mut seen = HashSet::new();
    while seen.len() < N {
        let delivery = billing
            .recv_timeout(Duration::from_secs(10))
            .unwrap()
            .unwrap_or_else(|| panic!("only {} of {N} messages came", seen.len()));
        let body = String::from_utf8(delivery.body().to_vec()).unwrap();
        assert!(seen.insert(body.clone()), "{body} came twice");
        delivery.ack().unwrap();
    }
    let stats = client.stats(Some("orders")).unwrap();
    assert_eq!((stats[0].depth, stats[0].in_flight), (0, 0), "{stats:?}");

    // The hostile connections are still open, each holding its frame.
    assert_eq!(server.connections(), HOSTILE + 1);
    let grown = rss_bytes().saturating_sub(before);
    assert!(
        grown < 64 << 20,
        "the server's RSS grew by {} MiB with {HOSTILE} announced 16 MiB frames",
        grown >> 20
    );
    drop(hostile);
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let _serial = serial();
    let queue = memory_queue(&["billing"]);
    let timeout = Duration::from_millis(300);
    let server =
        QueueServer::start(queue, QueueServerConfig::new().with_idle_timeout(timeout)).unwrap();
    let (mut raw, announced) = Raw::hello(server.local_addr());
    assert_eq!(announced, Some(300));

    // Pings keep it open well past the timeout.
    let start = Instant::now();
    let mut last_ping = start;
    for id in 1..=10 {
        // Before the send: the server's idle clock starts after it reads.
        last_ping = Instant::now();
        raw.send(&Request::Ping { id });
        match raw.recv().unwrap() {
            Some(Response::Done { id: got, count: 0 }) => assert_eq!(got, id),
            other => panic!("expected done for ping {id}, got {other:?}"),
        }
        std::thread::sleep(timeout / 3);
    }
    assert!(start.elapsed() > timeout * 3);

    // Silence: an `idle` error frame, then end of stream, well within the
    // 10 s read timeout of `Raw`.
    match raw.recv().expect("closed before the read timeout") {
        Some(Response::Error { id: 0, kind, .. }) => assert_eq!(kind, "idle"),
        other => panic!("expected an idle error, got {other:?}"),
    }
    assert!(matches!(raw.recv(), Ok(None)), "expected end of stream");
    assert!(last_ping.elapsed() >= timeout, "closed before the timeout");
}

#[test]
fn a_quiet_client_with_a_subscription_is_kept_alive_by_its_pings() {
    let _serial = serial();
    let queue = memory_queue(&["billing"]);
    let timeout = Duration::from_millis(200);
    let server =
        QueueServer::start(queue, QueueServerConfig::new().with_idle_timeout(timeout)).unwrap();
    let consumer = QueueClient::connect(server.local_addr()).unwrap();
    let mut billing = consumer.subscribe("orders", "billing").unwrap();

    // Nothing to deliver for five idle timeouts: the connection stays.
    assert!(billing.recv_timeout(timeout * 5).unwrap().is_none());
    assert_eq!(server.connections(), 1);

    let producer = QueueClient::connect(server.local_addr()).unwrap();
    producer
        .publish("orders", &[Message::new(b"late".to_vec())])
        .unwrap();
    let delivery = billing
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .expect("the kept subscription gets the message");
    assert_eq!(delivery.body(), b"late");
    delivery.ack().unwrap();
}

#[test]
fn subscriptions_past_the_cap_are_refused_and_the_connection_goes_on() {
    let subscribers = ["a", "b", "c", "d"];
    let _serial = serial();
    let queue = memory_queue(&subscribers);
    let server =
        QueueServer::start(queue, QueueServerConfig::new().with_max_subscriptions(3)).unwrap();

    // Through the client: the fourth is an error naming the limit.
    let client = QueueClient::connect(server.local_addr()).unwrap();
    let mut subs: Vec<_> = subscribers[..3]
        .iter()
        .map(|s| client.subscribe("orders", s).unwrap())
        .collect();
    match client.subscribe("orders", "d") {
        Err(Error::InvalidArgument { name, reason }) => {
            assert_eq!(name, "max_subscriptions");
            assert!(reason.contains("3 subscriptions"), "{reason}");
        }
        other => panic!("expected the cap, got {other:?}"),
    }
    // Room again once one goes.
    drop(subs.pop());
    let mut d = client.subscribe("orders", "d").unwrap();
    client
        .publish("orders", &[Message::new(b"x".to_vec())])
        .unwrap();
    let delivery = d.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    delivery.ack().unwrap();

    // Raw: 100 subscribes on one connection get 3 subscriptions and 97
    // errors; the connection still answers.
    let (mut raw, _) = Raw::hello(server.local_addr());
    for id in 1..=100 {
        raw.send(&Request::Subscribe {
            id,
            topic: "orders".into(),
            subscriber: subscribers[(id % 4) as usize].into(),
            batch: 1,
            max: Some(0),
        });
    }
    let (mut subscribed, mut refused) = (0, 0);
    while subscribed + refused < 100 {
        match raw.recv().unwrap() {
            Some(Response::Subscribed { .. }) => subscribed += 1,
            Some(Response::Error { id, kind, name, .. }) if id > 0 => {
                assert_eq!(kind, "invalid_argument");
                assert_eq!(name.as_deref(), Some("max_subscriptions"));
                refused += 1;
            }
            Some(Response::Deliver { .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((subscribed, refused), (3, 97));
    raw.send(&Request::Stats {
        id: 101,
        topic: None,
    });
    loop {
        match raw.recv().unwrap() {
            Some(Response::Stats { id, .. }) => break assert_eq!(id, 101),
            Some(Response::Deliver { .. }) => {}
            other => panic!("expected stats, got {other:?}"),
        }
    }
}
