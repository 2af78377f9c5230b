//! `bench rabbitmq`'s TLS rows: `Publisher::send` over `amqps://` against
//! the same node's plain port, in the same run, to show what TLS costs.
//!
//! The node is the tests' TLS node (`scripts/rabbitmq-tls-node.sh start`
//! prints the variables): `SYNCMQ_TLS_URL`, `SYNCMQ_TLS_DIR` (its
//! `certs/ca.pem` is trusted) and `SYNCMQ_TLS_PLAIN_URL`. Without them the
//! rows are left out, with a notice. Plain and TLS runs alternate.

use std::time::Duration;

use syncmq::rabbitmq::{ConnectionConfig, Declaration, TlsConfig};

use crate::rabbitmq::{publisher_on, time_sends, RabbitLoad};
use crate::report::Table;

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
    for run in 0..load.runs.max(1) {
        let queue = format!("syncmq-bench-tls-{}-{run}", std::process::id());
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
