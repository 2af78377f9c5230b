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

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amiquip::{
    AmqpProperties, Confirm, ConfirmSmoother, ConsumerMessage, Publish, QueueDeclareOptions,
    QueueDeleteOptions,
};
use syncmq::rabbitmq::{Connection, ConnectionConfig, ConsumerOptions, Publisher, PublisherConfig};
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

fn url() -> String {
    std::env::var("SYNCMQ_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

type PublishCase = fn(&[u8], RabbitLoad, &str) -> Duration;
type ConsumeCase = fn(RabbitLoad, &str) -> Duration;

fn queue_name(case: &str, run: usize) -> String {
    format!("syncmq-bench-{case}-{}-{run}", std::process::id())
}

pub fn run(load: RabbitLoad) -> Table {
    let payload = vec![0xA5u8; load.size];
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
    let mut publish = vec![Vec::new(); publish_cases.len()];
    let mut consume = vec![Vec::new(); consume_cases.len()];
    for r in 0..load.runs.max(1) {
        for (i, (_, case)) in publish_cases.iter().enumerate() {
            let queue = queue_name("pub", r * 10 + i);
            declare(&queue);
            publish[i].push(case(&payload, load, &queue));
            delete(&queue);
        }
        for (i, (_, case)) in consume_cases.iter().enumerate() {
            let queue = queue_name("con", r * 10 + i);
            declare(&queue);
            raw_publish(&payload, load, &queue);
            consume[i].push(case(load, &queue));
            delete(&queue);
        }
    }
    let mut table = Table::new(format!(
        "bench rabbitmq: {} persistent messages of {} bytes, window/prefetch {}, median of {} runs",
        load.messages, load.size, load.window, load.runs
    ));
    table.baseline(RAW_PUB, load.messages, load.size, &publish[0]);
    for (i, (case, _)) in publish_cases.iter().enumerate().skip(1) {
        table.compared(case, RAW_PUB, load.messages, load.size, &publish[i]);
    }
    table.baseline(RAW_CONSUME, load.messages, load.size, &consume[0]);
    for (i, (case, _)) in consume_cases.iter().enumerate().skip(1) {
        table.compared(case, RAW_CONSUME, load.messages, load.size, &consume[i]);
    }
    #[cfg(feature = "tls")]
    crate::rabbitmq_tls::rows(load, &payload, &mut table);
    table
}

fn raw_connection() -> amiquip::Connection {
    amiquip::Connection::insecure_open(&url()).expect("a broker at SYNCMQ_AMQP_URL")
}

fn declare(queue: &str) {
    let mut conn = raw_connection();
    let channel = conn.open_channel(None).expect("channel");
    channel
        .queue_declare(
            queue,
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
        )
        .expect("declare");
    conn.close().expect("close");
}

fn delete(queue: &str) {
    let mut conn = raw_connection();
    let channel = conn.open_channel(None).expect("channel");
    let _ = channel.queue_delete(queue, QueueDeleteOptions::default());
    let _ = conn.close();
}

/// Raw amiquip: persistent publishes with up to `window` unconfirmed.
fn raw_publish(payload: &[u8], load: RabbitLoad, queue: &str) -> Duration {
    raw_publish_on(raw_connection(), payload, load, queue)
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

fn ours_send_not_mandatory(payload: &[u8], load: RabbitLoad, queue: &str) -> Duration {
    send_with(payload, load, queue, false)
}

fn publisher(load: RabbitLoad, mandatory: bool) -> (Connection, Publisher) {
    publisher_on(ConnectionConfig::new(url()), load, mandatory)
}

/// A connected connection by `config` and a publisher with the load's
/// window on it.
pub fn publisher_on(
    config: ConnectionConfig,
    load: RabbitLoad,
    mandatory: bool,
) -> (Connection, Publisher) {
    let connection = Connection::with_config(config).expect("config");
    connection
        .waiter()
        .wait_connected(Duration::from_secs(10))
        .expect("connected");
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

fn ours_send(payload: &[u8], load: RabbitLoad, queue: &str) -> Duration {
    send_with(payload, load, queue, true)
}

fn send_with(payload: &[u8], load: RabbitLoad, queue: &str, mandatory: bool) -> Duration {
    let (connection, publisher) = publisher(load, mandatory);
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

fn ours_nowait(payload: &[u8], load: RabbitLoad, queue: &str) -> Duration {
    let (connection, publisher) = publisher(load, true);
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

fn ours_adapter_input(payload: &[u8], load: RabbitLoad, queue: &str) -> Duration {
    let adapter = RabbitAdapter::with_config(
        ConnectionConfig::new(url()),
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

fn raw_consume(load: RabbitLoad, queue: &str) -> Duration {
    let mut conn = raw_connection();
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

fn ours_consumer(load: RabbitLoad, queue: &str) -> Duration {
    let connection = Connection::open(&url()).expect("url");
    connection
        .waiter()
        .wait_connected(Duration::from_secs(10))
        .expect("connected");
    let count = Arc::new(AtomicUsize::new(0));
    let (done_tx, done) = crossbeam_channel::bounded::<()>(1);
    let counter = count.clone();
    let total = load.messages;
    let started = Instant::now();
    let consumer = syncmq::rabbitmq::Consumer::start(
        &connection,
        ConsumerOptions::new("", "")
            .with_queue(queue)
            .with_prefetch(load.window),
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

fn ours_adapter(load: RabbitLoad, queue: &str) -> Duration {
    let adapter = RabbitAdapter::connect(&url()).expect("url");
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
