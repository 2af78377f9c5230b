//! `bench rabbitmq`: our publisher and consumers against raw amiquip, on the
//! broker at `SYNCMQ_AMQP_URL` (default the local one).
//!
//! Publishing: `messages` persistent messages of `size` bytes into a durable
//! queue, confirmed. The raw baseline keeps `window` publishes awaiting
//! their confirm on one amiquip channel (tracked with amiquip's
//! `ConfirmSmoother`); our `Publisher` gets the same window, fed by one
//! thread through `send` (pipelined confirmations) and through
//! `publish_nowait` + `flush` (gormq's fire-and-retry); a `RabbitAdapter`
//! input channel is timed until `close` has every message confirmed.
//!
//! Consuming: the queue is filled first (not timed), then drained with
//! prefetch `window` and an ack per message: raw amiquip on one channel, our
//! handler `Consumer`, and a `RabbitAdapter` output channel.
//! Connection set-up is outside every timing.
//!
//! With `SYNCMQ_CLUSTER_URLS` set (`scripts/rabbitmq-cluster.sh start`,
//! then `export SYNCMQ_CLUSTER_URLS=$(scripts/rabbitmq-cluster.sh urls)`),
//! the same publish and consume cases run again on a quorum queue of the
//! three-node cluster, raw amiquip on node 1 and ours through the address
//! list (which connects to node 1 too).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amiquip::{
    AmqpProperties, AmqpValue, Confirm, ConfirmSmoother, ConsumerMessage, FieldTable, Publish,
    QueueDeclareOptions, QueueDeleteOptions,
};
use syncmq::rabbitmq::{
    Connection, ConnectionConfig, ConsumerOptions, Publisher, PublisherConfig, QueueType,
};
use syncmq::{Adapter, ChannelSpec, Message, Mode, RabbitAdapter};

use crate::report::Table;

const RAW_PUB: &str = "raw amiquip publish, confirm window";
const RAW_CONSUME: &str = "raw amiquip consume, ack each";

/// The load of `bench rabbitmq`.
#[derive(clap::Args, Clone, Copy)]
pub struct RabbitLoad {
    /// Messages per run.
    #[arg(long, default_value_t = 20_000)]
    pub messages: usize,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Confirm window (publish) and prefetch (consume).
    #[arg(long, default_value_t = 256)]
    pub window: u16,
    /// Runs per case; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

type PublishCase = fn(&[u8], RabbitLoad, &Broker, &str) -> Duration;
type ConsumeCase = fn(RabbitLoad, &Broker, &str) -> Duration;

fn queue_name(case: &str, run: usize) -> String {
    format!("syncmq-bench-{case}-{}-{run}", std::process::id())
}

pub fn run(load: RabbitLoad) -> Table {
    let publish_cases: [(&str, PublishCase); 5] = [
        (RAW_PUB, raw_publish),
        ("Publisher::send, confirmations pipelined", ours_send),
        ("Publisher::send, mandatory off", ours_send_not_mandatory),
        ("Publisher::publish_nowait + flush", ours_nowait),
        (
            "RabbitAdapter input, until close confirms",
            ours_adapter_input,
        ),
    ];
    let consume_cases: [(&str, ConsumeCase); 3] = [
        (RAW_CONSUME, raw_consume),
        ("Consumer, handler acks each", ours_consumer),
        ("RabbitAdapter output, ack each", ours_adapter),
    ];
    let mut table = Table::new(format!(
        "bench rabbitmq: {} persistent messages of {} bytes, window/prefetch {}, median of {} runs",
        load.messages, load.size, load.window, load.runs
    ));
    section(
        &mut table,
        load,
        &Broker::local(),
        "",
        &publish_cases,
        &consume_cases,
    );
    match Broker::cluster() {
        // The adapter declares classic queues of its own: not on the
        // quorum section.
        Some(cluster) => {
            section(
                &mut table,
                load,
                &cluster,
                "quorum, 3 nodes: ",
                &publish_cases[..2],
                &consume_cases[..2],
            );
            failover(&mut table, load, &cluster);
        }
        None => eprintln!(
            "bench rabbitmq: no cluster rows (set SYNCMQ_CLUSTER_URLS=$(scripts/rabbitmq-cluster.sh urls))"
        ),
    }
    #[cfg(feature = "tls")]
    crate::rabbitmq_tls::rows(load, &vec![0xA5u8; load.size], &mut table);
    table
}

/// A connection by `config`, connected.
fn connected(config: ConnectionConfig) -> Connection {
    let connection = Connection::with_config(config).expect("config");
    connection
        .waiter()
        .wait_connected(Duration::from_secs(10))
        .expect("connected");
    connection
}

/// Runs the cases on `broker`, baselines first, and adds their rows, each
/// case named with `prefix`.
fn section(
    table: &mut Table,
    load: RabbitLoad,
    broker: &Broker,
    prefix: &str,
    publish_cases: &[(&str, PublishCase)],
    consume_cases: &[(&str, ConsumeCase)],
) {
    let payload = vec![0xA5u8; load.size];
    let mut publish = vec![Vec::new(); publish_cases.len()];
    let mut consume = vec![Vec::new(); consume_cases.len()];
    for r in 0..load.runs.max(1) {
        for (i, (_, case)) in publish_cases.iter().enumerate() {
            let queue = queue_name("pub", r * 10 + i);
            broker.declare(&queue);
            publish[i].push(case(&payload, load, broker, &queue));
            broker.delete(&queue);
        }
        for (i, (_, case)) in consume_cases.iter().enumerate() {
            let queue = queue_name("con", r * 10 + i);
            broker.declare(&queue);
            raw_publish(&payload, load, broker, &queue);
            consume[i].push(case(load, broker, &queue));
            broker.delete(&queue);
        }
    }
    let named = |case: &str| format!("{prefix}{case}");
    let (raw_pub, raw_consume) = (named(RAW_PUB), named(RAW_CONSUME));
    table.baseline(&raw_pub, load.messages, load.size, &publish[0]);
    for (i, (case, _)) in publish_cases.iter().enumerate().skip(1) {
        table.compared(
            &named(case),
            &raw_pub,
            load.messages,
            load.size,
            &publish[i],
        );
    }
    table.baseline(&raw_consume, load.messages, load.size, &consume[0]);
    for (i, (case, _)) in consume_cases.iter().enumerate().skip(1) {
        table.compared(
            &named(case),
            &raw_consume,
            load.messages,
            load.size,
            &consume[i],
        );
    }
}

/// Where a section of the bench runs: the brokers' URLs (the first is
/// the one raw amiquip uses) and the type of the queues declared there.
pub struct Broker {
    urls: Vec<String>,
    quorum: bool,
}

impl Broker {
    /// The broker at `SYNCMQ_AMQP_URL` (default the local one), classic
    /// queues.
    fn local() -> Self {
        let url = std::env::var("SYNCMQ_AMQP_URL")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string());
        Broker {
            urls: vec![url],
            quorum: false,
        }
    }

    /// The cluster at `SYNCMQ_CLUSTER_URLS` (`scripts/rabbitmq-cluster.sh
    /// urls`), quorum queues; `None` when it is not set.
    fn cluster() -> Option<Self> {
        let urls = std::env::var("SYNCMQ_CLUSTER_URLS").ok()?;
        Some(Broker {
            urls: urls.split(',').map(str::to_string).collect(),
            quorum: true,
        })
    }

    /// What our consumers declare: the queue as the raw declare made it.
    fn consumer_options(&self, queue: &str, prefetch: u16) -> ConsumerOptions {
        let options = ConsumerOptions::new("", "")
            .with_queue(queue)
            .with_prefetch(prefetch);
        if self.quorum {
            options.with_queue_type(QueueType::Quorum)
        } else {
            options
        }
    }

    fn config(&self) -> ConnectionConfig {
        ConnectionConfig::cluster(self.urls.clone())
    }

    /// Our supervised connection, connected.
    fn connection(&self) -> Connection {
        connected(self.config())
    }

    fn raw_connection(&self) -> amiquip::Connection {
        amiquip::Connection::insecure_open(&self.urls[0]).expect("a broker at the bench's URL")
    }

    fn declare(&self, queue: &str) {
        let mut conn = self.raw_connection();
        let channel = conn.open_channel(None).expect("channel");
        let mut arguments = FieldTable::new();
        if self.quorum {
            arguments.insert(
                "x-queue-type".to_string(),
                AmqpValue::LongString("quorum".into()),
            );
        }
        channel
            .queue_declare(
                queue,
                QueueDeclareOptions {
                    durable: true,
                    arguments,
                    ..QueueDeclareOptions::default()
                },
            )
            .expect("declare");
        conn.close().expect("close");
    }

    fn delete(&self, queue: &str) {
        let mut conn = self.raw_connection();
        let channel = conn.open_channel(None).expect("channel");
        let _ = channel.queue_delete(queue, QueueDeleteOptions::default());
        let _ = conn.close();
    }
}

/// Raw amiquip: persistent publishes with up to `window` unconfirmed.
fn raw_publish(payload: &[u8], load: RabbitLoad, broker: &Broker, queue: &str) -> Duration {
    raw_publish_on(broker.raw_connection(), payload, load, queue)
}

/// As [`raw_publish`], on `conn`, which it closes.
pub fn raw_publish_on(
    mut conn: amiquip::Connection,
    payload: &[u8],
    load: RabbitLoad,
    queue: &str,
) -> Duration {
    let channel = conn.open_channel(None).expect("channel");
    let confirms = channel.listen_for_publisher_confirms().expect("listen");
    channel.enable_publisher_confirms().expect("confirms");
    let mut smoother = ConfirmSmoother::new();
    let (mut sent, mut confirmed) = (0usize, 0usize);
    let started = Instant::now();
    while confirmed < load.messages {
        while sent < load.messages && sent - confirmed < usize::from(load.window) {
            channel
                .basic_publish(
                    "",
                    Publish::with_properties(
                        payload,
                        queue,
                        AmqpProperties::default().with_delivery_mode(2),
                    ),
                )
                .expect("publish");
            sent += 1;
        }
        let confirm = confirms.recv().expect("confirms");
        for c in smoother.process(confirm) {
            assert!(matches!(c, Confirm::Ack(_)), "nacked");
            confirmed += 1;
        }
    }
    let took = started.elapsed();
    conn.close().expect("close");
    took
}

fn ours_send_not_mandatory(
    payload: &[u8],
    load: RabbitLoad,
    broker: &Broker,
    queue: &str,
) -> Duration {
    send_with(payload, load, broker, queue, false)
}

fn publisher(load: RabbitLoad, broker: &Broker, mandatory: bool) -> (Connection, Publisher) {
    publisher_on(broker.config(), load, mandatory)
}

/// A connected connection by `config` and a publisher with the load's
/// window on it.
pub fn publisher_on(
    config: ConnectionConfig,
    load: RabbitLoad,
    mandatory: bool,
) -> (Connection, Publisher) {
    let connection = connected(config);
    let publisher = Publisher::new(
        &connection,
        PublisherConfig::new()
            .with_window(usize::from(load.window))
            .with_buffer(load.messages.max(1))
            .with_mandatory(mandatory),
    )
    .expect("publisher");
    (connection, publisher)
}

fn ours_send(payload: &[u8], load: RabbitLoad, broker: &Broker, queue: &str) -> Duration {
    send_with(payload, load, broker, queue, true)
}

fn send_with(
    payload: &[u8],
    load: RabbitLoad,
    broker: &Broker,
    queue: &str,
    mandatory: bool,
) -> Duration {
    let (connection, publisher) = publisher(load, broker, mandatory);
    let took = time_sends(&publisher, payload, load, queue);
    publisher.close().expect("close");
    connection.close().expect("close");
    took
}

/// `load.messages` sends through `publisher`, at most four windows of
/// receipts outstanding, until the last is confirmed.
pub fn time_sends(
    publisher: &Publisher,
    payload: &[u8],
    load: RabbitLoad,
    queue: &str,
) -> Duration {
    let mut pending = VecDeque::new();
    let started = Instant::now();
    for _ in 0..load.messages {
        pending.push_back(
            publisher
                .send("", queue, Message::new(payload.to_vec()))
                .expect("send"),
        );
        if pending.len() > 4 * usize::from(load.window) {
            if let Some(oldest) = pending.pop_front() {
                oldest.wait().expect("confirmed");
            }
        }
    }
    for confirmation in pending {
        confirmation.wait().expect("confirmed");
    }
    started.elapsed()
}

fn ours_nowait(payload: &[u8], load: RabbitLoad, broker: &Broker, queue: &str) -> Duration {
    let (connection, publisher) = publisher(load, broker, true);
    let started = Instant::now();
    for _ in 0..load.messages {
        publisher
            .publish_nowait("", queue, Message::new(payload.to_vec()))
            .expect("publish");
    }
    publisher.flush(Duration::from_secs(300)).expect("flush");
    let took = started.elapsed();
    publisher.close().expect("close");
    connection.close().expect("close");
    took
}

fn ours_adapter_input(payload: &[u8], load: RabbitLoad, broker: &Broker, queue: &str) -> Duration {
    let adapter = RabbitAdapter::with_config(
        broker.config(),
        PublisherConfig::new()
            .with_window(usize::from(load.window))
            .with_buffer(load.messages.max(1)),
    )
    .expect("url");
    adapter
        .waiter()
        .wait_connected(Duration::from_secs(10))
        .expect("connected");
    adapter
        .new_channel(ChannelSpec::new(queue, Mode::Input).with_buffer(usize::from(load.window)))
        .expect("channel");
    let input = adapter.input(queue).expect("input");
    let started = Instant::now();
    for _ in 0..load.messages {
        input.send(payload.into()).expect("send");
    }
    drop(input);
    adapter.close().expect("close: every message confirmed");
    started.elapsed()
}

fn raw_consume(load: RabbitLoad, broker: &Broker, queue: &str) -> Duration {
    let mut conn = broker.raw_connection();
    let channel = conn.open_channel(None).expect("channel");
    let started = Instant::now();
    channel.qos(0, load.window, false).expect("qos");
    let consumer = channel
        .basic_consume(queue, amiquip::ConsumerOptions::default())
        .expect("consume");
    let mut got = 0;
    while got < load.messages {
        match consumer.receiver().recv().expect("deliveries") {
            ConsumerMessage::Delivery(d) => {
                consumer.ack(d).expect("ack");
                got += 1;
            }
            other => panic!("consumer ended: {other:?}"),
        }
    }
    let took = started.elapsed();
    drop(consumer);
    conn.close().expect("close");
    took
}

fn ours_consumer(load: RabbitLoad, broker: &Broker, queue: &str) -> Duration {
    let connection = broker.connection();
    let count = Arc::new(AtomicUsize::new(0));
    let (done_tx, done) = crossbeam_channel::bounded::<()>(1);
    let counter = count.clone();
    let total = load.messages;
    let started = Instant::now();
    let consumer = syncmq::rabbitmq::Consumer::start(
        &connection,
        broker.consumer_options(queue, load.window),
        move |_: &Message| -> Result<(), String> {
            if counter.fetch_add(1, Ordering::Relaxed) + 1 == total {
                let _ = done_tx.try_send(());
            }
            Ok(())
        },
    )
    .expect("consumer");
    done.recv().expect("all handled");
    let took = started.elapsed();
    consumer.close().expect("close");
    connection.close().expect("close");
    took
}

fn ours_adapter(load: RabbitLoad, broker: &Broker, queue: &str) -> Duration {
    let adapter = RabbitAdapter::with_config(broker.config(), PublisherConfig::new()).expect("url");
    adapter
        .waiter()
        .wait_connected(Duration::from_secs(10))
        .expect("connected");
    let started = Instant::now();
    adapter
        .new_channel(ChannelSpec::new(queue, Mode::Output).with_buffer(usize::from(load.window)))
        .expect("channel");
    let output = adapter.output(queue).expect("output");
    for _ in 0..load.messages {
        output.recv().expect("delivery").ack().expect("ack");
    }
    let took = started.elapsed();
    adapter.close().expect("close");
    took
}

/// How long a connection takes to be up on another node after `kill -9` of
/// the node it uses (the broker's own quorum election is not in it: a
/// connection does not wait for one). The node is started again after each
/// run, outside the timing.
fn failover(table: &mut Table, load: RabbitLoad, broker: &Broker) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/rabbitmq-cluster.sh");
    let cluster = |args: &[&str]| {
        let status = std::process::Command::new(script)
            .args(args)
            .status()
            .expect("run rabbitmq-cluster.sh");
        assert!(status.success(), "rabbitmq-cluster.sh {args:?} failed");
    };
    let mut samples = Vec::new();
    for _ in 0..load.runs.max(1) {
        let connection = broker.connection();
        let before = connection.current_address().expect("connected");
        let node = before
            .rsplit(':')
            .next()
            .and_then(|port| port.parse::<u16>().ok())
            .expect("a 127.0.0.1:570N address")
            - 5700;
        // Timed from the signal: the node's PID from its own pid file and
        // `kill -9` straight away (the cluster script, a bash process,
        // takes longer to start than the failover takes).
        let pid_file = format!(
            "{}/syncmq-c{node}/pid",
            std::env::var("SYNCMQ_NODES_DIR").unwrap_or_else(|_| "/tmp/syncmq-nodes".into())
        );
        let pid = std::fs::read_to_string(&pid_file).expect("the node's pid file");
        let started = Instant::now();
        let status = std::process::Command::new("kill")
            .args(["-9", pid.trim()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -9 {} failed", pid.trim());
        while connection.current_address().is_none_or(|now| now == before) {
            std::thread::sleep(Duration::from_micros(200));
        }
        samples.push(started.elapsed());
        // The script's kill returns once the process is gone, which the
        // restart needs.
        cluster(&["kill", &node.to_string()]);
        connection.close().expect("close");
        cluster(&["start-node", &node.to_string()]);
    }
    table.latency(
        "quorum, 3 nodes: on another node after kill -9",
        None,
        &samples,
    );
}
