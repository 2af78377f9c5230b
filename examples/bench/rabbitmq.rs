//! `bench rabbitmq`: our publisher and consumers against raw amiquip, on the
//! broker at `SYNCMQ_AMQP_URL` (default the local one).
//!
//! Publishing: `messages` persistent messages of `size` bytes into a durable
//! queue, confirmed. The raw baseline keeps `window` publishes awaiting
//! their confirm on one amiquip channel (tracked with amiquip's
//! `ConfirmSmoother`), once as it is and once with every message
//! `mandatory`, as our publisher's defaults publish (the second row shows
//! what that costs raw amiquip). Our `Publisher` gets the same window, fed
//! by one thread through `send` (pipelined confirmations) and through
//! `publish_nowait` + `flush` (gormq's fire-and-retry); a `RabbitAdapter`
//! input channel is timed until `close` has every message confirmed.
//!
//! Every queue is durable: a lazy classic queue on the local broker (see
//! `CLASSIC_MODE` for why lazy), a quorum queue on the cluster.
//!
//! Consuming: the queue is filled first (not timed), then drained with
//! prefetch `window`: raw amiquip on one channel acking each delivery, and
//! acking every 64 with `ack_multiple` (the best a raw user gets, and the
//! baseline of ours); our handler `Consumer` (one handler thread, and
//! four), whose handler acks each, and a `RabbitAdapter` output channel,
//! acking each. The consumer and the raw loop again with 1 KiB and 64 KiB
//! bodies. Connection set-up is outside every timing.
//!
//! Every section starts with an untimed warm-up round, then runs all its
//! cases in turn, each run on a fresh queue, `--runs` times.
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
    Connection, ConnectionConfig, ConsumerOptions, Publisher, PublisherConfig, QueueArguments,
    QueueType,
};
use syncmq::{Adapter, ChannelSpec, Message, Mode, RabbitAdapter};

use crate::report::Table;

const RAW_PUB: &str = "raw amiquip publish, confirm window";
const RAW_PUB_MANDATORY: &str = "raw amiquip publish, confirm window, mandatory";
const RAW_CONSUME: &str = "raw amiquip consume, ack each";
const RAW_CONSUME_MULTIPLE: &str = "raw amiquip consume, ack_multiple every 64";

/// The mode of the bench's classic queues: lazy, their messages on disk
/// from the start, as every classic queue keeps them on RabbitMQ 3.12 and
/// later. Without it RabbitMQ 3.10 keeps a queue's messages in the queue
/// process's heap, and whether that process ran a full garbage collection
/// during a run decided the run's rate: measured, 180 ms of broker CPU per
/// 20,000 deliveries in a run without one, 350 ms in a run with one, for
/// the same case, so every consume row swung 2x between runs.
const CLASSIC_MODE: (&str, &str) = ("x-queue-mode", "lazy");

/// How many deliveries the raw `ack_multiple` baseline settles per ack: the
/// most our consumer batches (a quarter of the prefetch, at most 64).
const RAW_ACK_EVERY: usize = 64;

/// The load of `bench rabbitmq`.
#[derive(clap::Args, Clone, Copy)]
pub struct RabbitLoad {
    /// Messages per run: enough for a run of about 1.5 s, past the
    /// broker's own swings (20,000 made runs of 0.3 s whose spread reached
    /// 30-40%; 100,000, 2-13% for the same cases).
    #[arg(long, default_value_t = 100_000)]
    pub messages: usize,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Confirm window (publish) and prefetch (consume).
    #[arg(long, default_value_t = 256)]
    pub window: u16,
    /// Runs per case; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
}

/// `bench rabbitmq`'s arguments: the load, and which cases to run.
#[derive(clap::Args)]
pub struct RabbitArgs {
    #[command(flatten)]
    pub load: RabbitLoad,
    /// Runs only the cases whose name contains this text, and the
    /// baselines they are compared with ("RabbitAdapter output" picks the
    /// adapter's consume row and the raw `ack_multiple` loop): for a
    /// profile of one case. The rows of bigger bodies, of the cluster and
    /// of TLS run only without it.
    #[arg(long)]
    pub only: Option<String>,
}

/// One case of a section: what it is called, the case its rate is compared
/// with (`None` for a baseline), and one timed run on a fresh queue.
#[derive(Clone, Copy)]
struct Case<F> {
    name: &'static str,
    against: Option<&'static str>,
    run: F,
}

/// A timed publish of the load's messages into `queue`.
type PublishRun = fn(&[u8], RabbitLoad, &Broker, &str) -> Duration;
/// A timed drain of `queue`, filled with the load's messages beforehand.
type ConsumeRun = fn(RabbitLoad, &Broker, &str) -> Duration;

fn queue_name(case: &str, run: usize) -> String {
    format!("syncmq-bench-{case}-{}-{run}", std::process::id())
}

const fn case<F>(name: &'static str, against: Option<&'static str>, run: F) -> Case<F> {
    Case { name, against, run }
}

pub fn run(args: &RabbitArgs) -> Table {
    let load = args.load;
    let publish: [Case<PublishRun>; 6] = [
        case(RAW_PUB, None, raw_publish),
        // What `mandatory` (on in our defaults) costs raw amiquip itself.
        case(RAW_PUB_MANDATORY, Some(RAW_PUB), raw_publish_mandatory),
        case(
            "Publisher::send, confirmations pipelined",
            Some(RAW_PUB),
            ours_send,
        ),
        case(
            "Publisher::send, mandatory off",
            Some(RAW_PUB),
            ours_send_not_mandatory,
        ),
        case(
            "Publisher::publish_nowait + flush",
            Some(RAW_PUB),
            ours_nowait,
        ),
        case(
            "RabbitAdapter input, until close confirms",
            Some(RAW_PUB),
            ours_adapter_input,
        ),
    ];
    let consume: [Case<ConsumeRun>; 5] = [
        case(RAW_CONSUME_MULTIPLE, None, raw_consume_multiple),
        case(
            "Consumer, handler acks each",
            Some(RAW_CONSUME_MULTIPLE),
            ours_consumer,
        ),
        case(RAW_CONSUME, None, raw_consume),
        case(
            "Consumer, 4 handler threads, each acks",
            Some(RAW_CONSUME_MULTIPLE),
            ours_consumer_4,
        ),
        case(
            "RabbitAdapter output, ack each",
            Some(RAW_CONSUME_MULTIPLE),
            ours_adapter,
        ),
    ];
    let mut table = Table::new(format!(
        "bench rabbitmq: {} persistent messages of {} bytes, window/prefetch {}, \
         median of {} runs (cases interleaved, after a warm-up round)",
        load.messages, load.size, load.window, load.runs
    ));
    let local = Broker::local();
    if let Some(only) = args.only.as_deref() {
        let (publish, consume) = (picked(&publish, only), picked(&consume, only));
        section(&mut table, load, &local, "", &publish, &consume);
        return table;
    }
    section(&mut table, load, &local, "", &publish, &consume);
    // Bigger bodies, fewer of them: at most 128 MB a run in the broker.
    for size in [1024, 64 * 1024] {
        let sized = RabbitLoad {
            size,
            messages: load.messages.min((128 << 20) / size),
            ..load
        };
        section(
            &mut table,
            sized,
            &local,
            &format!("{} KiB: ", size / 1024),
            &[],
            &consume[..2],
        );
    }
    match Broker::cluster() {
        // The raw loops and ours only: the adapter's rows are the local
        // section's.
        Some(cluster) => {
            section(
                &mut table,
                load,
                &cluster,
                "quorum, 3 nodes: ",
                &[publish[0], publish[2]],
                &consume[..2],
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

/// The cases whose name contains `only`, and the baselines they are
/// compared with, in their order.
fn picked<F: Copy>(cases: &[Case<F>], only: &str) -> Vec<Case<F>> {
    let wanted = |c: &Case<F>| {
        c.name.contains(only)
            || cases
                .iter()
                .any(|other| other.against == Some(c.name) && other.name.contains(only))
    };
    cases.iter().filter(|c| wanted(c)).copied().collect()
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

/// Runs the cases on `broker` and adds their rows, each case named with
/// `prefix`. A warm-up round (a quarter of the load, untimed) comes first;
/// then every run goes through all the cases in turn, each on a fresh
/// queue (a consume case's filled by raw publishes, untimed), so that a
/// broker or machine that speeds up or slows down during the section
/// affects every case alike.
fn section(
    table: &mut Table,
    load: RabbitLoad,
    broker: &Broker,
    prefix: &str,
    publish: &[Case<PublishRun>],
    consume: &[Case<ConsumeRun>],
) {
    let payload = vec![0xA5u8; load.size];
    let warm_up = RabbitLoad {
        messages: (load.messages / 4).max(1),
        ..load
    };
    let mut publish_times = vec![Vec::new(); publish.len()];
    let mut consume_times = vec![Vec::new(); consume.len()];
    for round in 0..=load.runs.max(1) {
        let (this, timed) = if round == 0 {
            (warm_up, false)
        } else {
            (load, true)
        };
        for (i, case) in publish.iter().enumerate() {
            let queue = queue_name("pub", round * 10 + i);
            broker.declare(&queue);
            let took = (case.run)(&payload, this, broker, &queue);
            broker.delete(&queue);
            if timed {
                publish_times[i].push(took);
            }
        }
        for (i, case) in consume.iter().enumerate() {
            let queue = queue_name("con", round * 10 + i);
            broker.declare(&queue);
            raw_publish(&payload, this, broker, &queue);
            let took = (case.run)(this, broker, &queue);
            broker.delete(&queue);
            if timed {
                consume_times[i].push(took);
            }
        }
    }
    let rows = publish
        .iter()
        .map(|c| (c.name, c.against))
        .zip(publish_times)
        .chain(
            consume
                .iter()
                .map(|c| (c.name, c.against))
                .zip(consume_times),
        );
    for ((name, against), times) in rows {
        let name = format!("{prefix}{name}");
        match against {
            None => table.baseline(&name, load.messages, load.size, &times),
            Some(base) => table.compared(
                &name,
                &format!("{prefix}{base}"),
                load.messages,
                load.size,
                &times,
            ),
        }
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

    /// The arguments of every queue of the section, as ours declare them:
    /// quorum queues on the cluster, lazy classic queues elsewhere (see
    /// [`CLASSIC_MODE`]).
    fn queue_arguments(&self) -> QueueArguments {
        if self.quorum {
            QueueArguments::new().with_type(QueueType::Quorum)
        } else {
            QueueArguments::new().with_argument(CLASSIC_MODE.0, CLASSIC_MODE.1)
        }
    }

    /// The same arguments for the raw declare.
    fn raw_arguments(&self) -> FieldTable {
        let (name, value) = if self.quorum {
            ("x-queue-type", "quorum")
        } else {
            CLASSIC_MODE
        };
        let mut arguments = FieldTable::new();
        arguments.insert(name.to_string(), AmqpValue::LongString(value.into()));
        arguments
    }

    /// What our consumers declare: the queue as the raw declare made it.
    fn consumer_options(&self, queue: &str, prefetch: u16) -> ConsumerOptions {
        ConsumerOptions::new("", "")
            .with_queue(queue)
            .with_prefetch(prefetch)
            .with_queue_arguments(self.queue_arguments())
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
        let arguments = self.raw_arguments();
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

/// As [`raw_publish`], every message `mandatory`.
fn raw_publish_mandatory(
    payload: &[u8],
    load: RabbitLoad,
    broker: &Broker,
    queue: &str,
) -> Duration {
    raw_publish_with(broker.raw_connection(), payload, load, queue, true)
}

/// As [`raw_publish`], on `conn`, which it closes.
pub fn raw_publish_on(
    conn: amiquip::Connection,
    payload: &[u8],
    load: RabbitLoad,
    queue: &str,
) -> Duration {
    raw_publish_with(conn, payload, load, queue, false)
}

fn raw_publish_with(
    mut conn: amiquip::Connection,
    payload: &[u8],
    load: RabbitLoad,
    queue: &str,
    mandatory: bool,
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
                    Publish {
                        mandatory,
                        ..Publish::with_properties(
                            payload,
                            queue,
                            AmqpProperties::default().with_delivery_mode(2),
                        )
                    },
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
        .new_channel_with(
            ChannelSpec::new(queue, Mode::Input).with_buffer(usize::from(load.window)),
            broker.queue_arguments(),
        )
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
    raw_consume_acking_every(load, broker, queue, 1)
}

fn raw_consume_multiple(load: RabbitLoad, broker: &Broker, queue: &str) -> Duration {
    raw_consume_acking_every(load, broker, queue, RAW_ACK_EVERY)
}

/// Raw amiquip: drains `queue` on one channel with the load's prefetch,
/// one `ack_multiple` per `every` deliveries (a plain `ack` for 1) and one
/// for what is left at the end.
fn raw_consume_acking_every(
    load: RabbitLoad,
    broker: &Broker,
    queue: &str,
    every: usize,
) -> Duration {
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
                got += 1;
                if every == 1 {
                    consumer.ack(d).expect("ack");
                } else if got % every == 0 || got == load.messages {
                    d.ack_multiple(&channel).expect("ack_multiple");
                }
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
    consumer_with(load, broker, queue, 1)
}

fn ours_consumer_4(load: RabbitLoad, broker: &Broker, queue: &str) -> Duration {
    consumer_with(load, broker, queue, 4)
}

/// Our `Consumer` with `concurrency` handler threads, each handler
/// returning `Ok` (an ack), timed until the last delivery was handled.
fn consumer_with(load: RabbitLoad, broker: &Broker, queue: &str, concurrency: usize) -> Duration {
    let connection = broker.connection();
    let count = Arc::new(AtomicUsize::new(0));
    let (done_tx, done) = crossbeam_channel::bounded::<()>(1);
    let counter = count.clone();
    let total = load.messages;
    let started = Instant::now();
    let consumer = syncmq::rabbitmq::Consumer::start(
        &connection,
        broker
            .consumer_options(queue, load.window)
            .with_concurrency(concurrency),
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
        .new_channel_with(
            ChannelSpec::new(queue, Mode::Output).with_buffer(usize::from(load.window)),
            broker.queue_arguments(),
        )
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
