//! `bench rabbitmq`'s TLS rows: `Publisher::send` over `amqps://` against
//! the same node's plain port, in the same run, to show what TLS costs; and
//! raw amiquip the same way, to show how much of that is TLS itself (the
//! client's OpenSSL and the broker's Erlang TLS) rather than syncmq.
//!
//! The node is the tests' TLS node (`scripts/rabbitmq-tls-node.sh start`
//! prints the variables): `SYNCMQ_TLS_URL`, `SYNCMQ_TLS_DIR` (its
//! `certs/ca.pem` is trusted) and `SYNCMQ_TLS_PLAIN_URL`. Without them the
//! rows are left out, with a notice. Plain and TLS runs alternate.

use std::time::Duration;

use syncmq::rabbitmq::{ConnectionConfig, Declaration, TlsConfig};

use crate::rabbitmq::{publisher_on, raw_publish_on, time_sends, RabbitLoad};
use crate::report::Table;

const RAW_PLAIN: &str = "raw amiquip publish, plain, on the TLS node";
const RAW_TLS: &str = "raw amiquip publish over TLS";
const PLAIN: &str = "Publisher::send, plain, on the TLS node";
const TLS: &str = "Publisher::send over TLS (amqps://)";

/// Adds the plain and TLS rows to `table`, when the TLS node is configured.
pub fn rows(load: RabbitLoad, payload: &[u8], table: &mut Table) {
    let (Ok(tls_url), Ok(dir), Ok(plain_url)) = (
        std::env::var("SYNCMQ_TLS_URL"),
        std::env::var("SYNCMQ_TLS_DIR"),
        std::env::var("SYNCMQ_TLS_PLAIN_URL"),
    ) else {
        eprintln!(
            "bench rabbitmq: no TLS rows (set SYNCMQ_TLS_URL, SYNCMQ_TLS_DIR and \
             SYNCMQ_TLS_PLAIN_URL: scripts/rabbitmq-tls-node.sh start prints them)"
        );
        return;
    };
    let ca = std::path::Path::new(&dir).join("certs").join("ca.pem");
    let (mut plain, mut tls) = (Vec::new(), Vec::new());
    let (mut raw_plain, mut raw_tls) = (Vec::new(), Vec::new());
    for run in 0..load.runs.max(1) {
        let queue = format!("syncmq-bench-tls-{}-{run}", std::process::id());
        for (conn, times) in [
            (
                amiquip::Connection::insecure_open(&plain_url).expect("the TLS node's plain port"),
                &mut raw_plain,
            ),
            (raw_tls_connection(&tls_url, &ca), &mut raw_tls),
        ] {
            declare(&plain_url, &queue);
            times.push(raw_publish_on(conn, payload, load, &queue));
            delete(&plain_url, &queue);
        }
        plain.push(one_run(
            ConnectionConfig::new(&plain_url),
            &plain_url,
            payload,
            load,
            &queue,
        ));
        tls.push(one_run(
            ConnectionConfig::new(&tls_url).with_tls(TlsConfig::new().with_ca_pem_file(&ca)),
            &plain_url,
            payload,
            load,
            &queue,
        ));
    }
    table.baseline(RAW_PLAIN, load.messages, load.size, &raw_plain);
    table.compared(RAW_TLS, RAW_PLAIN, load.messages, load.size, &raw_tls);
    table.baseline(PLAIN, load.messages, load.size, &plain);
    table.compared(TLS, PLAIN, load.messages, load.size, &tls);
}

/// One timed run of sends on a fresh queue (declared, and deleted through
/// the plain port `plain_url`, outside the timing).
fn one_run(
    config: ConnectionConfig,
    plain_url: &str,
    payload: &[u8],
    load: RabbitLoad,
    queue: &str,
) -> Duration {
    let (connection, publisher) = publisher_on(config, load, true);
    connection
        .declare(vec![Declaration::queue(queue)])
        .expect("declare");
    let took = time_sends(&publisher, payload, load, queue);
    publisher.close().expect("close");
    connection.close().expect("close");
    delete(plain_url, queue);
    took
}

/// Deletes `queue` on the node, through its plain port `plain_url`.
fn delete(plain_url: &str, queue: &str) {
    let mut conn =
        amiquip::Connection::insecure_open(plain_url).expect("the TLS node's plain port");
    let channel = conn.open_channel(None).expect("channel");
    let _ = channel.queue_delete(queue, amiquip::QueueDeleteOptions::default());
    let _ = conn.close();
}

/// Raw amiquip over TLS to `url` (`amqps://guest:guest@localhost:5671/...`
/// as the node script prints it), trusting the PEM file `ca`.
fn raw_tls_connection(url: &str, ca: &std::path::Path) -> amiquip::Connection {
    let pem = std::fs::read(ca).expect("the node's CA");
    let connector = native_tls::TlsConnector::builder()
        .add_root_certificate(native_tls::Certificate::from_pem(&pem).expect("a PEM CA"))
        .build()
        .expect("a TLS connector");
    let authority = url
        .trim_start_matches("amqps://")
        .split(['/', '@'])
        .nth(1)
        .expect("user@host:port");
    let host = authority.split(':').next().expect("host");
    let addr = std::net::ToSocketAddrs::to_socket_addrs(authority)
        .expect("resolve")
        .next()
        .expect("an address");
    let stream = mio::net::TcpStream::connect(&addr).expect("connect");
    amiquip::Connection::open_tls_stream(
        connector,
        host,
        stream,
        amiquip::ConnectionOptions::<amiquip::Auth>::default(),
        amiquip::ConnectionTuning::default(),
    )
    .expect("a raw TLS connection")
}

/// Declares the durable `queue` on the node, through its plain port.
fn declare(plain_url: &str, queue: &str) {
    let mut conn =
        amiquip::Connection::insecure_open(plain_url).expect("the TLS node's plain port");
    let channel = conn.open_channel(None).expect("channel");
    channel
        .queue_declare(
            queue,
            amiquip::QueueDeclareOptions {
                durable: true,
                ..amiquip::QueueDeclareOptions::default()
            },
        )
        .expect("declare");
    let _ = conn.close();
}
