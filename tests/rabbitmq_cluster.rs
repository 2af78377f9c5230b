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
use std::time::{Duration, Instant};

use amiquip::{AmqpValue, FieldTable, QueueDeclareOptions};
use syncmq::rabbitmq::{Connection, ConnectionConfig, Publisher, PublisherConfig};
use syncmq::{Message, Receipt};

use common::{eventually, force_close_connection_on, required, unique};

/// The cluster's URLs, node 1 first, or `None` (with a notice) when the
/// cluster is not running outside CI.
fn cluster_urls() -> Option<Vec<String>> {
    if let Ok(urls) = std::env::var("SYNCMQ_CLUSTER_URLS") {
        return Some(urls.split(',').map(str::to_string).collect());
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
    let Some(urls) = cluster_urls() else { return };
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
    let Some(urls) = cluster_urls() else { return };
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

/// The number of ready messages in `queue`, asked through `url`.
fn ready_messages(url: &str, queue: &str) -> u32 {
    let mut conn = amiquip::Connection::insecure_open(url).unwrap();
    let channel = conn.open_channel(None).unwrap();
    let count = channel
        .queue_declare_passive(queue)
        .unwrap()
        .declared_message_count()
        .unwrap_or(0);
    let _ = conn.close();
    count
}

/// How many publishes the test keeps unconfirmed, as a pipelining
/// producer would (the publisher's buffer holds 10,000).
const OUTSTANDING: usize = 2_000;

#[test]
fn a_quorum_queue_keeps_every_confirmed_publish_through_a_kill_of_the_node_in_use() {
    const TOTAL: usize = 20_000;
    const KILL_AT: usize = 5_000;
    let Some(urls) = cluster_urls() else { return };
    let _ = env_logger::builder().is_test(true).try_init();
    let queue = unique("cluster-quorum");
    declare_quorum_queue(&urls[0], &queue);
    let connection =
        connect(ConnectionConfig::cluster(urls.clone()).with_name(unique("cluster-pub")));
    let publisher = Publisher::new(&connection, PublisherConfig::default()).unwrap();
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
    // Duplicates are allowed (a confirm lost with the node is sent again);
    // a loss is not.
    let on_queue = ready_messages(&urls[node_of(&after) as usize - 1], &queue) as usize;
    eprintln!("{TOTAL} confirmed, {on_queue} on the queue, stats {stats:?}");
    assert!(on_queue >= TOTAL, "{on_queue} of {TOTAL} on the queue");
    let ids = drain_ids(&urls[node_of(&after) as usize - 1], &queue, TOTAL);
    let missing: Vec<usize> = (0..TOTAL)
        .filter(|i| !ids.contains_key(&format!("id-{i}")))
        .collect();
    let duplicates: usize = ids.values().map(|n| n - 1).sum();
    eprintln!("{} ids consumed, {duplicates} duplicates", ids.len());
    assert!(
        missing.is_empty(),
        "{} confirmed publishes lost, the first: {:?}",
        missing.len(),
        missing.first()
    );
    drop(killed);
}

/// Takes everything off `queue` (no acks, through `url`) and counts each
/// message key, until `expected` distinct keys came or none came for 5 s.
fn drain_ids(url: &str, queue: &str, expected: usize) -> HashMap<String, usize> {
    let mut conn = amiquip::Connection::insecure_open(url).unwrap();
    let channel = conn.open_channel(None).unwrap();
    let consumer = channel
        .basic_consume(
            queue,
            amiquip::ConsumerOptions {
                no_ack: true,
                ..amiquip::ConsumerOptions::default()
            },
        )
        .unwrap();
    let mut ids: HashMap<String, usize> = HashMap::new();
    while ids.len() < expected {
        match consumer.receiver().recv_timeout(Duration::from_secs(5)) {
            Ok(amiquip::ConsumerMessage::Delivery(delivery)) => {
                let id = delivery.properties.message_id().clone().unwrap_or_default();
                *ids.entry(id).or_default() += 1;
            }
            _ => break,
        }
    }
    let _ = conn.close();
    ids
}
