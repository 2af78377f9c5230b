//! `amqps://` against a TLS-enabled RabbitMQ node of the tests' own
//! (`scripts/rabbitmq-tls-node.sh start`, which `scripts/test.sh` runs):
//! a round trip, a client certificate the broker sees, a broker of an
//! unknown CA, a name mismatch, an expired certificate (a TLS peer of the
//! test's own) and a plain port refused with errors that say TLS and why, a
//! hanging handshake cut short by close, and no confirmed publish lost while
//! the TLS connection is force-closed.
//!
//! The node's URL and certificate directory come from `SYNCMQ_TLS_URL` and
//! `SYNCMQ_TLS_DIR`; without them the tests skip with a notice, except under
//! the test script or in CI, where they fail.

#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, required, unique};
use syncmq::rabbitmq::{
    Connection, ConnectionConfig, Consumer, ConsumerOptions, Declaration, Publisher,
    PublisherConfig, TlsConfig,
};
use syncmq::{Error, Message};

const PATIENCE: Duration = Duration::from_secs(30);
/// The node `scripts/rabbitmq-tls-node.sh` starts.
const NODE: &str = "syncmq-tls@localhost";

/// The TLS node: its `amqps://` URL and certificate directory.
struct TlsNode {
    url: String,
    certs: PathBuf,
}

impl TlsNode {
    /// The node from the environment, or `None` (with a notice) when it is
    /// not configured and the tests are not required here.
    fn get() -> Option<TlsNode> {
        if let (Ok(url), Ok(dir)) = (
            std::env::var("SYNCMQ_TLS_URL"),
            std::env::var("SYNCMQ_TLS_DIR"),
        ) {
            return Some(TlsNode {
                url,
                certs: PathBuf::from(dir).join("certs"),
            });
        }
        assert!(
            !required(),
            "SYNCMQ_TLS_URL and SYNCMQ_TLS_DIR are not set, and TLS broker tests are \
             required here (start the node: scripts/rabbitmq-tls-node.sh start)"
        );
        eprintln!(
            "NOTICE: skipping a TLS broker test: SYNCMQ_TLS_URL/SYNCMQ_TLS_DIR not set \
             (scripts/rabbitmq-tls-node.sh start prints them)"
        );
        None
    }

    fn cert(&self, file: &str) -> PathBuf {
        self.certs.join(file)
    }

    /// TLS settings trusting the node's CA.
    fn trusting(&self) -> TlsConfig {
        TlsConfig::new().with_ca_pem_file(self.cert("ca.pem"))
    }

    /// The node's URL with `host` instead of its host name.
    fn url_with_host(&self, host: &str) -> String {
        self.url.replace("@localhost:", &format!("@{host}:"))
    }
}

/// A connection named `name` to `url` with `tls`.
fn connect(url: &str, name: &str, tls: TlsConfig) -> Connection {
    Connection::with_config(
        ConnectionConfig::new(url)
            .with_name(name)
            .with_backoff(Duration::from_millis(20), Duration::from_millis(500))
            .with_tls(tls),
    )
    .unwrap()
}

/// `rabbitmqctl` on the TLS node; its standard output.
fn ctl(args: &[&str]) -> String {
    common::rabbitmqctl_on(NODE, args)
}

/// The `list_connections` line of the connection named `name` on the TLS
/// node, with the given columns after `pid` and `client_properties`.
fn connection_lines(name: &str, columns: &[&str]) -> Vec<String> {
    let mut args = vec!["list_connections", "pid", "client_properties"];
    args.extend_from_slice(columns);
    let needle = format!("{{\"information\",\"{name}\"}}");
    ctl(&args)
        .lines()
        .filter(|line| line.contains(&needle))
        .map(str::to_string)
        .collect()
}

/// Deletes queues on the TLS node.
fn delete_queues(queues: &[&str]) {
    for queue in queues {
        ctl(&["delete_queue", queue]);
    }
}

/// The error a connection that can never come up gives.
fn refusal(conn: &Connection) -> String {
    match conn.waiter().wait_connected(PATIENCE) {
        Err(Error::Refused { code: 0, text }) => {
            eprintln!("refused as expected: {text}");
            // The connection keeps it too.
            assert!(
                matches!(conn.last_error(), Some(Error::Refused { .. }) | None),
                "{:?}",
                conn.last_error()
            );
            text
        }
        other => panic!("expected a TLS refusal, got {other:?}"),
    }
}

#[test]
fn a_confirmed_publish_round_trips_over_tls() {
    let Some(node) = TlsNode::get() else { return };
    let name = unique("tls-rt");
    let queue = unique("tls-rt-q");
    let conn = connect(&node.url, &name, node.trusting());
    conn.declare(vec![Declaration::queue(&queue)]).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let consumer = Consumer::start(
        &conn,
        ConsumerOptions::new("", "").with_queue(&queue),
        move |m: &Message| -> Result<(), String> {
            record.lock().unwrap().push(m.clone());
            Ok(())
        },
    )
    .unwrap();
    let publisher = Publisher::new(&conn, PublisherConfig::new()).unwrap();
    publisher
        .publish(
            "",
            &queue,
            Message::new(b"over tls".to_vec()).with_key("k-1"),
        )
        .unwrap();
    eventually(PATIENCE, "the message consumed", || {
        seen.lock().unwrap().len() == 1
    });
    let got = seen.lock().unwrap()[0].clone();
    assert_eq!((got.body(), got.key()), (&b"over tls"[..], Some("k-1")));
    // The broker agrees that this connection is TLS.
    let lines = connection_lines(&name, &["ssl"]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].ends_with("\ttrue"), "{lines:?}");
    consumer.close().unwrap();
    publisher.close().unwrap();
    conn.close().unwrap();
    delete_queues(&[&queue]);
}

#[test]
fn a_client_certificate_is_presented_to_the_broker() {
    let Some(node) = TlsNode::get() else { return };
    let with_cert = unique("tls-client-cert");
    let without = unique("tls-no-cert");
    let a = connect(
        &node.url,
        &with_cert,
        node.trusting()
            .with_client_identity_pem_file(node.cert("client.pem"), node.cert("client.key")),
    );
    let pem = std::fs::read(node.cert("client.pem")).unwrap();
    let key = std::fs::read(node.cert("client.key")).unwrap();
    let b = connect(
        &node.url,
        &without,
        node.trusting().with_client_identity_pem(pem, key),
    );
    let c = connect(&node.url, &unique("tls-anonymous"), node.trusting());
    for conn in [&a, &b, &c] {
        conn.waiter().wait_connected(PATIENCE).unwrap();
    }
    for name in [&with_cert, &without] {
        let lines = connection_lines(name, &["peer_cert_subject"]);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("CN=syncmq-client"), "{lines:?}");
    }
    let lines = connection_lines(c.name(), &["peer_cert_subject"]);
    assert!(!lines[0].contains("CN=syncmq-client"), "{lines:?}");
    for conn in [a, b, c] {
        conn.close().unwrap();
    }
}

#[test]
fn a_broker_of_an_unknown_ca_is_refused_saying_tls_and_why() {
    let Some(node) = TlsNode::get() else { return };
    // Another CA than the one that signed the broker's certificate.
    let conn = connect(
        &node.url,
        &unique("tls-wrong-ca"),
        TlsConfig::new().with_ca_pem_file(node.cert("other-ca.pem")),
    );
    let text = refusal(&conn);
    assert!(
        text.starts_with("TLS handshake with localhost:5671 failed: unknown CA"),
        "{text}"
    );
    conn.close().unwrap();

    // No CA given: the system's CAs do not know the test CA either.
    let conn = Connection::with_config(
        ConnectionConfig::new(&node.url).with_name(unique("tls-system-roots")),
    )
    .unwrap();
    let text = refusal(&conn);
    assert!(text.contains("unknown CA"), "{text}");
    conn.close().unwrap();
}

#[test]
fn a_name_mismatch_is_refused_saying_tls_and_why() {
    let Some(node) = TlsNode::get() else { return };
    // The right CA, but the broker's certificate is for localhost and
    // 127.0.0.1 only.
    let url = node.url_with_host("127.0.0.1");
    let conn = connect(
        &url,
        &unique("tls-mismatch"),
        node.trusting().with_server_name("wrong.example"),
    );
    let text = refusal(&conn);
    assert!(
        text.starts_with("TLS handshake with 127.0.0.1:5671 failed: name mismatch"),
        "{text}"
    );
    assert!(text.contains("wrong.example"), "{text}");
    conn.close().unwrap();

    // The same name accepted on purpose: connects (and warns).
    let conn = connect(
        &url,
        &unique("tls-mismatch-accepted"),
        node.trusting()
            .with_server_name("wrong.example")
            .danger_accept_invalid_hostnames(true),
    );
    conn.waiter().wait_connected(PATIENCE).unwrap();
    conn.close().unwrap();

    // The IP address is in the certificate: connecting by it is fine.
    let conn = connect(&url, &unique("tls-by-ip"), node.trusting());
    conn.waiter().wait_connected(PATIENCE).unwrap();
    conn.close().unwrap();
}

#[test]
fn nothing_confirmed_is_lost_over_tls_while_the_connection_is_force_closed_twice() {
    let Some(node) = TlsNode::get() else { return };
    let _ = env_logger::builder().is_test(true).try_init();
    let name = unique("tls-faults");
    let queue = unique("tls-faults-q");
    let total = 10_000u32;
    let conn = connect(&node.url, &name, node.trusting());
    conn.declare(vec![Declaration::queue(&queue)]).unwrap();
    let publisher = Publisher::new(&conn, PublisherConfig::new()).unwrap();

    // Another thread force-closes our connection twice, each time once a
    // few thousand more publishes were confirmed, and waits for the
    // reconnect.
    let killer = {
        let publisher = publisher.clone();
        let name = name.clone();
        let waiter = conn.waiter();
        std::thread::spawn(move || {
            let mut kills = 0;
            for threshold in [3_000u64, 6_000] {
                eventually(PATIENCE, "publishing progress", || {
                    publisher.stats().confirmed >= threshold
                });
                let before = waiter.wait_connected(PATIENCE).unwrap();
                assert_eq!(
                    common::force_close_connection_on(NODE, &name),
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

    // Confirmed publishes with the default window: every receipt must come
    // back Ok. The stream goes on past `total` until the second close has
    // happened and the connection is back.
    let mut receipts = std::collections::VecDeque::new();
    let mut sent = 0u32;
    while sent < total || !killer.is_finished() {
        receipts.push_back(
            publisher
                .send("", &queue, Message::new(sent.to_be_bytes().to_vec()))
                .unwrap(),
        );
        sent += 1;
        if receipts.len() >= 512 {
            receipts.pop_front().unwrap().wait().unwrap();
        }
    }
    for receipt in receipts {
        receipt.wait().unwrap();
    }
    assert_eq!(killer.join().unwrap(), 2);
    let stats = publisher.stats();
    publisher.close().unwrap();

    // Every id is on the queue (duplicates allowed).
    let seen = Arc::new(Mutex::new(HashMap::<u32, u32>::new()));
    let record = seen.clone();
    let consumer = Consumer::start(
        &conn,
        ConsumerOptions::new("", "")
            .with_queue(&queue)
            .with_prefetch(512),
        move |m: &Message| -> Result<(), String> {
            let id = u32::from_be_bytes(m.body().try_into().map_err(|_| "bad body")?);
            *record.lock().unwrap().entry(id).or_insert(0) += 1;
            Ok(())
        },
    )
    .unwrap();
    eventually(Duration::from_secs(60), "every id consumed", || {
        seen.lock().unwrap().len() == sent as usize
    });
    let seen = seen.lock().unwrap();
    assert!((0..sent).all(|id| seen.contains_key(&id)));
    let duplicates: u32 = seen.values().map(|n| n - 1).sum();
    eprintln!(
        "tls faults: {sent} confirmed over TLS through 2 forced closes, 0 lost; \
         {duplicates} duplicates; publisher resent {} and saw {} nacks",
        stats.resent, stats.nacked
    );
    drop(seen);
    consumer.close().unwrap();
    conn.close().unwrap();
    delete_queues(&[&queue]);
}

#[test]
fn amqps_to_a_plain_amqp_port_is_refused_saying_it_is_not_tls() {
    let Some(node) = TlsNode::get() else { return };
    // The node's plain AMQP listener (scripts/rabbitmq-tls-node.sh).
    let url = node.url.replace(":5671/", ":5710/");
    let conn = connect(&url, &unique("tls-plain-port"), node.trusting());
    let text = refusal(&conn);
    assert!(
        text.starts_with("TLS handshake with localhost:5710 failed: no TLS on this port"),
        "{text}"
    );
    conn.close().unwrap();
}

#[test]
fn close_cuts_a_hanging_tls_handshake_short() {
    use std::io::Read;
    // A "broker" that accepts and reads the ClientHello, then never
    // answers: only close can end the attempt (the connect timeout is far
    // away).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        let mut hello = [0u8; 1];
        socket.read_exact(&mut hello).unwrap();
        // 0x16: a TLS handshake record, so the handshake is under way.
        assert_eq!(hello[0], 0x16);
        socket
    });
    let conn = Connection::with_config(
        ConnectionConfig::new(format!("amqps://guest:guest@127.0.0.1:{port}/%2f"))
            .with_name(unique("tls-hanging"))
            .with_connect_timeout(Duration::from_secs(60))
            .with_tls(TlsConfig::new().with_server_name("localhost")),
    )
    .unwrap();
    let socket = peer.join().unwrap();
    let started = std::time::Instant::now();
    conn.close().unwrap();
    // The supervisor joins the attempt's thread before it ends; an attempt
    // that went on would hold close for half its 10 s close timeout.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "close took {:?}",
        started.elapsed()
    );
    assert!(!conn.is_connected());
    drop(socket);
}

#[test]
fn an_expired_broker_certificate_is_refused_saying_tls_and_why() {
    let Some(node) = TlsNode::get() else { return };
    // A TLS peer of our own with an expired certificate of the node's CA
    // (RabbitMQ has one set of certificates per node).
    let identity = native_tls::Identity::from_pkcs8(
        &std::fs::read(node.cert("expired.pem")).unwrap(),
        &std::fs::read(node.cert("expired.key")).unwrap(),
    )
    .unwrap();
    let acceptor = native_tls::TlsAcceptor::new(identity).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = std::thread::spawn(move || {
        let (socket, _) = listener.accept().unwrap();
        // The client gives up on our certificate.
        acceptor.accept(socket).is_err()
    });
    let conn = connect(
        &format!("amqps://guest:guest@localhost:{port}/%2f"),
        &unique("tls-expired"),
        node.trusting(),
    );
    let text = refusal(&conn);
    assert!(
        text.starts_with(&format!(
            "TLS handshake with localhost:{port} failed: expired"
        )),
        "{text}"
    );
    conn.close().unwrap();
    assert!(peer.join().unwrap(), "the handshake succeeded");
}

#[test]
fn a_client_certificate_the_broker_does_not_trust_is_refused_saying_so() {
    let Some(node) = TlsNode::get() else { return };
    // Signed by the other CA. With TLS 1.3 the broker's refusal comes
    // after our side of the handshake, with the first read (an attempt may
    // see only the reset and is retried).
    let conn = connect(
        &node.url,
        &unique("tls-stranger"),
        node.trusting()
            .with_client_identity_pem_file(node.cert("stranger.pem"), node.cert("stranger.key")),
    );
    let text = refusal(&conn);
    assert!(
        text.starts_with(
            "TLS handshake with localhost:5671 failed: unknown CA: the broker does not trust \
             our client certificate"
        ),
        "{text}"
    );
    conn.close().unwrap();
}
