//! A connection to a cluster of brokers, against three RabbitMQ nodes of
//! the tests' own (`scripts/rabbitmq-cluster.sh start`; the test script
//! starts them and sets `SYNCMQ_CLUSTER_URLS`): nodes tried in order or
//! shuffled, a lost node replaced by the next, and a quorum queue that
//! keeps every confirmed publish through a `kill -9` of the node in use.
#![cfg(feature = "rabbitmq")]
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use amiquip::{AmqpValue, FieldTable, QueueDeclareOptions};
use syncmq::rabbitmq::{
    Connection, ConnectionConfig, Consumer, ConsumerOptions, Publisher, PublisherConfig, QueueType,
};
use syncmq::{Message, Receipt};

use common::{eventually, force_close_connection_on, required, unique};

/// The tests take turns: one kills a node that another expects to find.
static CLUSTER: Mutex<()> = Mutex::new(());

/// The cluster's URLs, node 1 first, with the turn to use it, or `None`
/// (with a notice) when the cluster is not running outside CI.
fn cluster_urls() -> Option<(Vec<String>, MutexGuard<'static, ()>)> {
    if let Ok(urls) = std::env::var("SYNCMQ_CLUSTER_URLS") {
        // A test that failed holding the turn leaves the cluster whole
        // (its killed node restarts on drop): the turn is still good.
        let turn = CLUSTER.lock().unwrap_or_else(PoisonError::into_inner);
        return Some((urls.split(',').map(str::to_string).collect(), turn));
    }
    assert!(
        !required(),
        "SYNCMQ_CLUSTER_URLS is not set: scripts/test.sh starts the cluster and sets it"
    );
    eprintln!(
        "NOTICE: skipping a cluster test: run scripts/rabbitmq-cluster.sh start and set \
         SYNCMQ_CLUSTER_URLS=$(scripts/rabbitmq-cluster.sh urls)"
    );
    None
}

/// The node (1 to 3) listening on `address` (`127.0.0.1:570N`).
fn node_of(address: &str) -> u16 {
    let port: u16 = address.rsplit(':').next().unwrap().parse().unwrap();
    port - 5700
}

fn node_name(node: u16) -> String {
    format!("syncmq-c{node}@localhost")
}

fn cluster_script(args: &[&str]) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/rabbitmq-cluster.sh");
    let out = Command::new(script).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "rabbitmq-cluster.sh {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A node killed with `kill -9`, started again when dropped, so that a
/// failing test leaves the cluster whole for the next one.
struct Killed(u16);

impl Killed {
    fn node(node: u16) -> Self {
        cluster_script(&["kill", &node.to_string()]);
        Killed(node)
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        cluster_script(&["start-node", &self.0.to_string()]);
    }
}

fn connect(config: ConnectionConfig) -> Connection {
    let connection = Connection::with_config(
        config.with_backoff(Duration::from_millis(50), Duration::from_millis(500)),
    )
    .unwrap();
    connection
        .waiter()
        .wait_connected(Duration::from_secs(30))
        .unwrap();
    connection
}

/// Waits until `connection` is up on `address`.
fn connected_to(connection: &Connection, address: &str) {
    eventually(
        Duration::from_secs(30),
        &format!("connected to {address}"),
        || connection.current_address().as_deref() == Some(address),
    );
}

#[test]
fn nodes_are_tried_in_order_and_a_lost_one_is_replaced_by_the_next() {
    let Some((urls, _turn)) = cluster_urls() else {
        return;
    };
    // Nothing listens on 5709: the first round skips it.
    let mut listed = vec!["amqp://guest:guest@127.0.0.1:5709/%2f".to_string()];
    listed.extend(urls.iter().cloned());
    let name = unique("cluster-order");
    let connection = connect(ConnectionConfig::cluster(listed).with_name(&name));
    connected_to(&connection, "127.0.0.1:5701");
    // Each loss moves on to the next node; after the last, the round wraps
    // past the dead address back to node 1.
    for (from, to) in [(1, 2), (2, 3), (3, 1)] {
        assert_eq!(force_close_connection_on(&node_name(from), &name), 1);
        connected_to(&connection, &format!("127.0.0.1:{}", 5700 + to));
    }
    connection.close().unwrap();
    assert_eq!(connection.current_address(), None);
}

#[test]
fn shuffled_nodes_never_retry_the_lost_node_first() {
    let Some((urls, _turn)) = cluster_urls() else {
        return;
    };
    let name = unique("cluster-shuffle");
    let connection = connect(
        ConnectionConfig::cluster(urls)
            .with_name(&name)
            .with_shuffle(true),
    );
    let mut seen = Vec::new();
    for _ in 0..6 {
        let address = connection.current_address().unwrap();
        seen.push(node_of(&address));
        assert_eq!(
            force_close_connection_on(&node_name(node_of(&address)), &name),
            1
        );
        eventually(Duration::from_secs(30), "a different node", || {
            connection
                .current_address()
                .is_some_and(|now| now != address)
        });
    }
    assert!(seen.windows(2).all(|w| w[0] != w[1]), "{seen:?}");
    connection.close().unwrap();
}

/// Declares a quorum queue named `name` on node 1, over a raw connection.
fn declare_quorum_queue(url: &str, name: &str) {
    let mut conn = amiquip::Connection::insecure_open(url).unwrap();
    let channel = conn.open_channel(None).unwrap();
    let mut arguments = FieldTable::new();
    arguments.insert(
        "x-queue-type".to_string(),
        AmqpValue::LongString("quorum".into()),
    );
    let options = QueueDeclareOptions {
        durable: true,
        arguments,
        ..QueueDeclareOptions::default()
    };
    channel.queue_declare(name, options).unwrap();
    let _ = conn.close();
}

/// How many publishes the test keeps unconfirmed, as a pipelining
/// producer would (the publisher's buffer holds 10,000).
const OUTSTANDING: usize = 2_000;

#[test]
fn a_quorum_queue_keeps_every_confirmed_publish_through_a_kill_of_the_node_in_use() {
    const TOTAL: usize = 20_000;
    const KILL_AT: usize = 5_000;
    let Some((urls, _turn)) = cluster_urls() else {
        return;
    };
    let _ = env_logger::builder().is_test(true).try_init();
    let queue = unique("cluster-quorum");
    declare_quorum_queue(&urls[0], &queue);
    let connection =
        connect(ConnectionConfig::cluster(urls.clone()).with_name(unique("cluster-pub")));
    let publisher = Publisher::new(&connection, PublisherConfig::default()).unwrap();
    // A consumer on the same node (its own connection, the same address
    // list): it loses its node too, and must resume on another.
    let consumer_connection =
        connect(ConnectionConfig::cluster(urls.clone()).with_name(unique("cluster-con")));
    let consumed: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let record = consumed.clone();
    let consumer = Consumer::start(
        &consumer_connection,
        ConsumerOptions::new("", "")
            .with_queue(&queue)
            .with_queue_type(QueueType::Quorum)
            .with_prefetch(256),
        move |m: &Message| -> Result<(), String> {
            *record
                .lock()
                .unwrap()
                .entry(m.key().unwrap_or_default().to_string())
                .or_default() += 1;
            Ok(())
        },
    )
    .unwrap();
    let before = connection.current_address().unwrap();
    let mut receipts: VecDeque<(usize, Receipt)> = VecDeque::with_capacity(OUTSTANDING);
    let mut unconfirmed = Vec::new();
    let mut settle = |(i, receipt): (usize, Receipt)| {
        if let Err(e) = receipt.wait_timeout(Duration::from_secs(20)) {
            unconfirmed.push((i, e));
        }
    };
    let mut killed = None;
    let mut failover = None;
    for i in 0..TOTAL {
        if i == KILL_AT {
            // Mid-stream: up to OUTSTANDING publishes are unconfirmed.
            let at = Instant::now();
            killed = Some((Killed::node(node_of(&before)), at));
        }
        if let (Some((_, at)), None) = (&killed, failover) {
            if connection
                .current_address()
                .is_some_and(|now| now != before)
            {
                failover = Some(at.elapsed());
            }
        }
        if receipts.len() == OUTSTANDING {
            settle(receipts.pop_front().unwrap());
        }
        let message = Message::new(format!("body {i}")).with_key(format!("id-{i}"));
        receipts.push_back((i, publisher.send("", &queue, message).unwrap()));
    }
    receipts.into_iter().for_each(&mut settle);
    assert!(
        unconfirmed.is_empty(),
        "{} publishes not confirmed, the first: {:?}",
        unconfirmed.len(),
        unconfirmed.first()
    );
    let after = connection.current_address().unwrap();
    assert_ne!(after, before, "the publisher should be on another node");
    eprintln!(
        "killed {before}; publishing went on on {after}; connected again after {:?}",
        failover.unwrap_or_default()
    );
    let stats = publisher.stats();
    publisher.close().unwrap();
    connection.close().unwrap();
    // Duplicates are allowed (a confirm lost with the node is sent again,
    // a delivery whose ack was lost comes again); a loss is not.
    let all_consumed = || consumed.lock().unwrap().len() == TOTAL;
    eventually(Duration::from_secs(120), "every id consumed", all_consumed);
    let consumer_address = consumer_connection.current_address().unwrap();
    assert_ne!(
        consumer_address, before,
        "the consumer should be on another node"
    );
    consumer.close().unwrap();
    consumer_connection.close().unwrap();
    let consumed = consumed.lock().unwrap();
    let missing: Vec<usize> = (0..TOTAL)
        .filter(|i| !consumed.contains_key(&format!("id-{i}")))
        .collect();
    assert!(missing.is_empty(), "{} ids never consumed", missing.len());
    let duplicates: usize = consumed.values().map(|n| n - 1).sum();
    eprintln!(
        "{TOTAL} confirmed and consumed (the consumer resumed on {consumer_address}); \
         {duplicates} deliveries were duplicates; publisher {stats:?}"
    );
    drop(killed);
    common::delete_queues(&urls[0], &[&queue]);
}
