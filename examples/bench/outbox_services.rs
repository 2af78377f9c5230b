//! The `bench outbox` cases that need a service: RabbitMQ (a realistic
//! sink: persistent messages, publisher confirms once per batch) and
//! PostgreSQL (the store most outbox users already have; its dispatch is
//! compared with a raw `SELECT ... FOR UPDATE SKIP LOCKED LIMIT 100` +
//! `UPDATE ... WHERE id = ANY($1)` loop over the same table). Each is
//! skipped, with a note on stderr, when its service does not answer.

// Which imports are used depends on the features.
#![cfg_attr(
    not(all(feature = "rabbitmq", feature = "postgres")),
    allow(unused_imports, dead_code)
)]

use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use syncmq::outbox::Outbox;
use syncmq::outbox::OutboxStore;
use syncmq::Sink;

use crate::outbox::{config, fjall_store, message, OutboxLoad};
use crate::report::Table;

#[cfg(feature = "postgres")]
const RAW_PG: &str = "raw PostgreSQL commit, app row";
#[cfg(feature = "postgres")]
const ADD_PG: &str = "add_within_tx, app+outbox row (PostgreSQL)";
#[cfg(feature = "postgres")]
const RAW_PG_CHAN: &str = "raw PostgreSQL loop: SKIP LOCKED 100, send, UPDATE";
#[cfg(feature = "postgres")]
const PG_CHAN: &str = "dispatch: PostgreSQL store -> crossbeam";
#[cfg(feature = "rabbitmq")]
const RAW_AMQP: &str = "direct sends -> RabbitMQ, confirm per batch";
#[cfg(feature = "rabbitmq")]
const FJ_AMQP: &str = "dispatch: fjall store -> RabbitMQ";
#[cfg(feature = "rabbitmq")]
const FJ_RSINK: &str = "dispatch: fjall store -> RabbitSink";

// ---------------------------------------------------------------------------
// A realistic destination: RabbitMQ with publisher confirms, raw amiquip.

/// A sink into a durable RabbitMQ queue: `send` publishes a persistent
/// message, `flush` waits for the broker's confirms of everything sent.
#[cfg(feature = "rabbitmq")]
mod amqp {
    use amiquip::{
        AmqpProperties, Channel, Confirm, Connection, Publish, QueueDeclareOptions,
        QueueDeleteOptions,
    };
    use crossbeam_channel::{Receiver, Sender};
    use syncmq::{Error, Message, Sink};

    pub const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

    pub struct AmqpSink {
        connection: Option<Connection>,
        channel: Option<Channel>,
        confirms: Receiver<Confirm>,
        queue: String,
        published: u64,
        confirmed: u64,
        /// Told once `target` messages are confirmed.
        done: Option<(u64, Sender<()>)>,
    }

    impl AmqpSink {
        /// None when no broker answers.
        pub fn connect(queue: &str) -> Option<AmqpSink> {
            let mut connection = Connection::insecure_open(URL).ok()?;
            let channel = connection.open_channel(None).expect("channel");
            channel
                .queue_declare(
                    queue,
                    QueueDeclareOptions {
                        durable: true,
                        ..QueueDeclareOptions::default()
                    },
                )
                .expect("declare");
            let confirms = channel.listen_for_publisher_confirms().expect("confirms");
            channel.enable_publisher_confirms().expect("confirm mode");
            Some(AmqpSink {
                connection: Some(connection),
                channel: Some(channel),
                confirms,
                queue: queue.to_string(),
                published: 0,
                confirmed: 0,
                done: None,
            })
        }

        /// Tells `done` when `target` messages are confirmed.
        pub fn notify_at(mut self, target: u64, done: Sender<()>) -> Self {
            self.done = Some((target, done));
            self
        }

        fn channel(&self) -> &Channel {
            self.channel.as_ref().expect("open until drop")
        }
    }

    impl Sink for AmqpSink {
        fn send(&mut self, message: &Message) -> syncmq::Result<()> {
            let properties = AmqpProperties::default().with_delivery_mode(2);
            self.channel()
                .basic_publish(
                    "",
                    Publish::with_properties(message.body(), self.queue.clone(), properties),
                )
                .map_err(|e| Error::disconnected("publish to RabbitMQ", e))?;
            self.published += 1;
            Ok(())
        }

        fn flush(&mut self) -> syncmq::Result<()> {
            while self.confirmed < self.published {
                match self.confirms.recv() {
                    Ok(Confirm::Ack(c)) => {
                        // Tags here are confirmed in order on one channel.
                        self.confirmed = self.confirmed.max(c.delivery_tag);
                    }
                    Ok(Confirm::Nack(_)) => return Err(Error::refused(0, "nacked")),
                    Err(_) => {
                        return Err(Error::disconnected_reason("RabbitMQ", "connection lost"))
                    }
                }
            }
            if let Some((target, done)) = &self.done {
                if self.confirmed >= *target {
                    let _ = done.send(());
                }
            }
            Ok(())
        }
    }

    impl Drop for AmqpSink {
        fn drop(&mut self) {
            if let Some(channel) = self.channel.take() {
                let _ = channel.queue_delete(self.queue.clone(), QueueDeleteOptions::default());
                let _ = channel.close();
            }
            if let Some(connection) = self.connection.take() {
                let _ = connection.close();
            }
        }
    }
}

/// The PostgreSQL cases, interleaved run by run; skipped without a server.
#[cfg(feature = "postgres")]
pub fn postgres(load: &OutboxLoad, payload: &[u8], table: &mut Table) {
    let params = load.postgres.as_str();
    if !pg::available(params) {
        eprintln!("bench outbox: no PostgreSQL at {params:?}; skipping its cases");
        return;
    }
    let n = load.pg_messages;
    let mut durations = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..load.runs.max(1) {
        durations[0].push(pg::raw_commit(params, payload, n));
        durations[1].push(pg::add(params, payload, n));
        durations[2].push(pg::raw_dispatch(
            params,
            payload,
            load.pg_dispatch,
            load.batch,
        ));
        durations[3].push(pg::dispatch(params, payload, load.pg_dispatch, load.batch));
    }
    table.baseline(RAW_PG, n, load.size, &durations[0]);
    table.compared(ADD_PG, RAW_PG, n, load.size, &durations[1]);
    table.baseline(RAW_PG_CHAN, load.pg_dispatch, load.size, &durations[2]);
    table.compared(
        PG_CHAN,
        RAW_PG_CHAN,
        load.pg_dispatch,
        load.size,
        &durations[3],
    );
}

/// The RabbitMQ cases; skipped without a broker.
#[cfg(feature = "rabbitmq")]
pub fn rabbitmq(load: &OutboxLoad, payload: &[u8], table: &mut Table) {
    let n = load.amqp_messages;
    match rabbitmq_runs(payload, n, load.batch, load.runs) {
        Some([raw, outbox, rabbit_sink]) => {
            table.baseline(RAW_AMQP, n, load.size, &raw);
            table.compared(FJ_AMQP, RAW_AMQP, n, load.size, &outbox);
            table.compared(FJ_RSINK, RAW_AMQP, n, load.size, &rabbit_sink);
        }
        None => eprintln!(
            "bench outbox: no RabbitMQ at {}; skipping its cases",
            amqp::URL
        ),
    }
}

/// Rows sent to RabbitMQ in batches: directly (send × batch, then flush),
/// by the outbox from a fjall store through the raw sink above, and
/// through `RabbitSink` (our confirmed publisher); the order rotates.
/// None without a broker.
#[cfg(feature = "rabbitmq")]
fn rabbitmq_runs(
    payload: &[u8],
    n: usize,
    batch: usize,
    runs: usize,
) -> Option<[Vec<Duration>; 3]> {
    let mut durations = [Vec::new(), Vec::new(), Vec::new()];
    for run in 0..runs.max(1) {
        let queue = format!("syncmq-bench-outbox-{}-{run}", std::process::id());
        let mut order = [0, 1, 2];
        order.rotate_left(run % 3);
        for case in order {
            let took = match case {
                0 => amqp_direct(&format!("{queue}-direct"), payload, n, batch)?,
                1 => amqp_outbox(&format!("{queue}-outbox"), payload, n, batch)?,
                _ => rabbit_sink_outbox(&format!("{queue}-sink"), payload, n, batch)?,
            };
            durations[case].push(took);
        }
    }
    Some(durations)
}

#[cfg(feature = "rabbitmq")]
fn amqp_direct(queue: &str, payload: &[u8], n: usize, batch: usize) -> Option<Duration> {
    let messages = vec![message(payload); n];
    let mut sink = amqp::AmqpSink::connect(queue)?;
    let started = Instant::now();
    for chunk in messages.chunks(batch) {
        for m in chunk {
            sink.send(m).expect("publish");
        }
        sink.flush().expect("confirms");
    }
    Some(started.elapsed())
}

#[cfg(feature = "rabbitmq")]
fn amqp_outbox(queue: &str, payload: &[u8], n: usize, batch: usize) -> Option<Duration> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = fjall_store(dir.path());
    let message = message(payload);
    for _ in 0..n {
        store.add(&message).expect("add");
    }
    let (done_tx, done) = bounded(1);
    let sink = amqp::AmqpSink::connect(queue)?.notify_at(n as u64, done_tx);
    let started = Instant::now();
    let outbox = Outbox::start_with(store, sink, config(batch)).expect("start");
    done.recv().expect("all confirmed");
    let took = started.elapsed();
    outbox.close().expect("close");
    Some(took)
}

#[cfg(feature = "rabbitmq")]
fn rabbit_sink_outbox(queue: &str, payload: &[u8], n: usize, batch: usize) -> Option<Duration> {
    use syncmq::rabbitmq::Connection;
    use syncmq::RabbitSink;

    // Declares the queue now and deletes it when dropped.
    let _queue = amqp::AmqpSink::connect(queue)?;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = fjall_store(dir.path());
    let message = message(payload);
    for _ in 0..n {
        store.add(&message).expect("add");
    }
    let connection = Connection::open(amqp::URL).expect("connection");
    let (done_tx, done) = bounded(1);
    let sink = crate::outbox::queue_case::Counting::new(
        RabbitSink::to_queue(&connection, queue).expect("sink"),
        n,
        done_tx,
    );
    let started = Instant::now();
    let outbox = Outbox::start_with(store, sink, config(batch)).expect("start");
    done.recv().expect("all confirmed");
    let took = started.elapsed();
    outbox.close().expect("close");
    let _ = connection.close();
    Some(took)
}

// ---------------------------------------------------------------------------
// PostgreSQL: the database most outbox users already have.

#[cfg(feature = "postgres")]
mod pg {
    use std::time::{Duration, Instant};

    use crossbeam_channel::bounded;
    use syncmq::outbox::postgres::{Client, NoTls};
    use syncmq::outbox::Outbox;
    use syncmq::outbox::{OutboxStore, PostgresOutboxStore, PostgresStoreConfig};
    use syncmq::ChannelSink;

    /// A table pair of this run's own, dropped at the end.
    struct Tables {
        params: String,
        name: String,
    }

    impl Tables {
        fn new(params: &str, case: &str) -> Tables {
            Tables {
                params: params.to_string(),
                name: format!("bench_outbox_{case}_{}", std::process::id()),
            }
        }

        fn client(&self) -> Client {
            Client::connect(&self.params, NoTls).expect("connect")
        }

        fn app_table(&self, client: &mut Client) -> String {
            let app = format!("{}_app", self.name);
            client
                .batch_execute(&format!(
                    "DROP TABLE IF EXISTS {app}; CREATE TABLE {app} (id BIGINT PRIMARY KEY, body BYTEA NOT NULL)"
                ))
                .expect("create the app table");
            app
        }

        fn store(&self) -> PostgresOutboxStore {
            let store = PostgresOutboxStore::connect_with(
                PostgresStoreConfig::new(&self.params).with_table(&self.name),
            )
            .expect("connect the store");
            self.client()
                .batch_execute(&format!("TRUNCATE {}", self.name))
                .expect("truncate");
            store
        }
    }

    impl Drop for Tables {
        fn drop(&mut self) {
            if let Ok(mut client) = Client::connect(&self.params, NoTls) {
                let _ = client.batch_execute(&format!(
                    "DROP TABLE IF EXISTS {0}; DROP TABLE IF EXISTS {0}_app",
                    self.name
                ));
            }
        }
    }

    /// True when a PostgreSQL answers at `params`.
    pub fn available(params: &str) -> bool {
        Client::connect(params, NoTls).is_ok()
    }

    /// One app row per transaction, committed.
    pub fn raw_commit(params: &str, payload: &[u8], n: usize) -> Duration {
        let tables = Tables::new(params, "raw");
        let mut client = tables.client();
        let app = tables.app_table(&mut client);
        let insert = format!("INSERT INTO {app} (id, body) VALUES ($1, $2)");
        let started = Instant::now();
        for i in 0..i64::try_from(n).expect("a row count fits an i64") {
            let mut tx = client.transaction().expect("begin");
            tx.execute(&insert, &[&i, &payload]).expect("insert");
            tx.commit().expect("commit");
        }
        started.elapsed()
    }

    /// The same app row plus the outbox row, per transaction.
    pub fn add(params: &str, payload: &[u8], n: usize) -> Duration {
        let tables = Tables::new(params, "add");
        let app = tables.app_table(&mut tables.client());
        let store = tables.store();
        let insert = format!("INSERT INTO {app} (id, body) VALUES ($1, $2)");
        let message = crate::outbox::message(payload);
        let started = Instant::now();
        for i in 0..i64::try_from(n).expect("a row count fits an i64") {
            store
                .add_within_tx(&message, |tx| {
                    tx.execute(&insert, &[&i, &payload])
                        .map_err(syncmq::Error::from)
                })
                .expect("add");
        }
        started.elapsed()
    }

    /// The store's table with `n` rows in it, added in one transaction.
    fn filled(params: &str, case: &str, payload: &[u8], n: usize) -> (Tables, PostgresOutboxStore) {
        let tables = Tables::new(params, case);
        let store = tables.store();
        let message = crate::outbox::message(payload);
        let mut client = tables.client();
        let mut tx = client.transaction().expect("begin");
        for _ in 0..n {
            store.add_in(&mut tx, &message).expect("add");
        }
        tx.commit().expect("commit");
        (tables, store)
    }

    /// The raw baseline of the PostgreSQL dispatch, on the store's own
    /// table and rows: per batch one transaction (commits not waiting for
    /// the WAL flush, as the store's own writes) that locks the next `batch`
    /// pending rows with `FOR UPDATE SKIP LOCKED`, sends each message's
    /// bytes to the channel and marks them with one `UPDATE ... WHERE id =
    /// ANY($1)`; prepared statements, one connection.
    pub fn raw_dispatch(params: &str, payload: &[u8], n: usize, batch: usize) -> Duration {
        let (tables, _store) = filled(params, "raw_dispatch", payload, n);
        let t = &tables.name;
        let pending = "dispatched_at IS NULL AND dead_at IS NULL";
        let mut client = tables.client();
        client
            .batch_execute("SET synchronous_commit TO OFF")
            .expect("relax commits");
        let select = client
            .prepare(&format!(
                "SELECT id, message FROM {t} WHERE {pending} ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"
            ))
            .expect("prepare");
        let mark = client
            .prepare(&format!(
                "UPDATE {t} SET dispatched_at = now() WHERE id = ANY($1)"
            ))
            .expect("prepare");
        let limit = i64::try_from(batch).expect("a batch fits an i64");
        let (sender, rx) = bounded(1024);
        let done = crate::outbox::consumer(rx, n);
        let started = Instant::now();
        loop {
            let mut tx = client.transaction().expect("begin");
            let rows = tx.query(&select, &[&limit]).expect("select");
            if rows.is_empty() {
                break;
            }
            let mut ids = Vec::with_capacity(rows.len());
            for row in &rows {
                ids.push(row.get::<_, i64>(0));
                let body: Vec<u8> = row.get(1);
                sender
                    .send(syncmq::Message::new(body))
                    .expect("consumer alive");
            }
            tx.execute(&mark, &[&ids]).expect("mark");
            tx.commit().expect("commit");
        }
        done.join().expect("consumer") - started
    }

    /// Rows already in the table, dispatched to a crossbeam channel.
    pub fn dispatch(params: &str, payload: &[u8], n: usize, batch: usize) -> Duration {
        let (_tables, store) = filled(params, "dispatch", payload, n);
        let (sender, rx) = bounded(1024);
        let done = crate::outbox::consumer(rx, n);
        let started = Instant::now();
        let outbox = Outbox::start_with(
            store,
            ChannelSink::from_sender("bench", sender),
            crate::outbox::config(batch),
        )
        .expect("start");
        let took = done.join().expect("consumer") - started;
        outbox.close().expect("close");
        took
    }
}
