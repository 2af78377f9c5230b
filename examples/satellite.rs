//! A satellite process made of blocks: TCP lines in, published durably,
//! and acknowledged to the sender only once durable.
//!
//! ```text
//! cargo run --example satellite -- --listen 127.0.0.1:7070 --queue /tmp/satellite-queue
//! cargo run --example satellite -- --amqp amqp://guest:guest@127.0.0.1:5672/%2f
//! printf 'hello\nworld\n' | nc -N 127.0.0.1 7070   # answers "ok 1", "ok 2"
//! ```
//!
//! Where lines go:
//!
//! - by default, the durable queue in `--queue DIR` (topic `lines`,
//!   subscriber `consumer`): a line is acknowledged after
//!   [`Queue::publish`] returned, i.e. after the fsync;
//! - with `--amqp URL`, the durable RabbitMQ queue `--amqp-queue NAME`
//!   (default `satellite-lines`): a line is acknowledged after the broker
//!   confirmed it. The connection (named `--name`, default
//!   `satellite-<pid>`) is monitored: every block with dependency
//!   callbacks hears when the broker goes away and comes back, and the reader logs
//!   it. Lines published while the broker is away wait in the publisher's
//!   retry buffer; one that is not confirmed within 5 s is answered
//!   `err <n> ...` (it may still arrive: at least once).
//!
//! Blocks, in init order (finish goes the other way):
//!
//! 1. `finisher`: the signal block; Ctrl-C or SIGTERM closes the runtime
//!    in order, a second one exits at once.
//! 2. `store`: opens the queue (or the RabbitMQ connection, its queue
//!    declaration and a confirmed publisher); at finish, after the
//!    publisher block, closes it (the queue syncs; the RabbitMQ publisher
//!    waits for the confirms still due).
//! 3. `publisher`: the library's publisher block over a sink that flushes
//!    once durable ([`QueueSink`] or [`RabbitSink`]).
//! 4. `reader`: listens on TCP; each line becomes a bag to `publisher`, and
//!    the reply (`ok: true`) becomes `ok <n>` to the client. A line the
//!    client got no `ok` for may or may not be stored; a line it got `ok`
//!    for always is, whatever happens to the process after. Each
//!    connection has at most 256 lines waiting for their answer; the reader
//!    reads no further until some are answered, so a slow publisher slows
//!    its clients down (TCP back-pressure) instead of filling memory.
//!
//! `--server HOST:PORT` (without `--amqp`) monitors a plain TCP endpoint
//! instead: the reader logs its connects and disconnects.
//!
//! Every life-cycle step is printed to stdout as `step <what> <block>`,
//! which is what `tests/block_signals.rs` checks.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Deserialize;
use syncmq::block::{
    self, Bag, Block, BlockConfig, Controller, Dependency, DependencyEvent, InitContext,
    PublisherBlock, RabbitDependency, Registry, Runtime, RuntimeConfig, SignalBlock, TcpDependency,
    Value, SIGNAL_BLOCK,
};
use syncmq::queue::{Queue, QueueConfig, TopicConfig};
use syncmq::rabbitmq::{Connection, Declaration};
use syncmq::{Error, QueueSink, RabbitRoute, RabbitSink, Result, Sink};

/// The queue topic the lines go to.
pub const TOPIC: &str = "lines";
/// The subscriber of [`TOPIC`] that keeps every line until it is consumed.
pub const SUBSCRIBER: &str = "consumer";

/// The configuration the satellite opens its queue directory with; open
/// it the same way to read the lines.
pub fn queue_config() -> QueueConfig {
    QueueConfig::new().with_topic(TopicConfig::new(TOPIC, [SUBSCRIBER]))
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    std::process::exit(run(std::env::args().skip(1).collect()));
}

/// Prints one life-cycle step, at once (stdout may be a pipe).
pub fn step(what: &str, block: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "step {what} {block}");
    let _ = out.flush();
}

/// Where the lines go.
#[derive(Clone)]
enum Target {
    Queue(PathBuf),
    Rabbit {
        url: String,
        queue: String,
        name: String,
    },
}

struct Args {
    listen: String,
    target: Target,
    server: Option<SocketAddr>,
}

const USAGE: &str = "use --listen ADDR, --queue DIR, --amqp URL [--amqp-queue NAME] [--name CONNECTION], --server HOST:PORT";

fn parse(args: Vec<String>) -> Result<Args> {
    let mut listen = "127.0.0.1:7070".to_string();
    let mut dir = PathBuf::from("satellite-queue");
    let mut amqp: Option<String> = None;
    let mut amqp_queue = "satellite-lines".to_string();
    let mut name = format!("satellite-{}", std::process::id());
    let mut server = None;
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| Error::invalid(flag.clone(), "needs a value"))
        };
        match flag.as_str() {
            "--listen" => listen = value()?,
            "--queue" => dir = PathBuf::from(value()?),
            "--amqp" => amqp = Some(value()?),
            "--amqp-queue" => amqp_queue = value()?,
            "--name" => name = value()?,
            "--server" => {
                let v = value()?;
                server = Some(v.parse().map_err(|e| {
                    Error::invalid("--server", format!("{v:?} is not HOST:PORT: {e}"))
                })?);
            }
            other => return Err(Error::invalid(other, format!("unknown flag; {USAGE}"))),
        }
    }
    if amqp.is_some() && server.is_some() {
        return Err(Error::invalid(
            "--server",
            "with --amqp the broker connection is the monitored dependency",
        ));
    }
    let target = match amqp {
        Some(url) => Target::Rabbit {
            url,
            queue: amqp_queue,
            name,
        },
        None => Target::Queue(dir),
    };
    Ok(Args {
        listen,
        target,
        server,
    })
}

/// Runs the satellite until a signal; the process's exit code.
pub fn run(args: Vec<String>) -> i32 {
    match satellite(args) {
        Ok(()) => 0,
        Err(e) => {
            log::error!("satellite: {e}");
            eprintln!("satellite: {e}");
            1
        }
    }
}

fn satellite(args: Vec<String>) -> Result<()> {
    let args = parse(args)?;
    let backend = Arc::new(Backend::default());
    let mut registry = Registry::empty();
    registry.register(SIGNAL_BLOCK, |resp| Traced::new(resp, SignalBlock::new()))?;
    {
        let (backend, target) = (backend.clone(), args.target.clone());
        registry.register("store", move |resp| {
            Traced::new(
                resp,
                Store {
                    backend: backend.clone(),
                    target: target.clone(),
                },
            )
        })?;
    }
    {
        let backend = backend.clone();
        registry.register("publisher", move |resp| {
            let backend = backend.clone();
            Traced::new(resp, PublisherBlock::new(move |_| backend.sink()))
        })?;
    }
    registry.register("reader", |resp| Traced::new(resp, Reader::default()))?;

    let config = RuntimeConfig::new()
        .with_block(BlockConfig::new(SIGNAL_BLOCK))
        .with_block(BlockConfig::new("store"))
        .with_block(BlockConfig::new("publisher"))
        .with_block(
            BlockConfig::new("reader").with_config(Value::encode(&ReaderConf {
                listen: args.listen.clone(),
                publisher: "publisher".into(),
            })?),
        );
    let runtime = Runtime::start(&config, &registry)?;
    if let Some(broker) = backend.broker() {
        runtime.monitor(broker)?;
    } else if let Some(addr) = args.server {
        runtime.monitor(Arc::new(TcpDependency::new(addr.to_string(), addr)))?;
    }
    step("running", "all");
    let result = runtime.run_until_closed();
    step("closed", "all");
    result
}

/// Prints each life-cycle step of the block it wraps.
pub struct Traced<B> {
    resp: String,
    inner: B,
}

impl<B: Block> Traced<B> {
    /// Wraps `inner`, the block for `resp`.
    pub fn new(resp: &str, inner: B) -> Self {
        Traced {
            resp: resp.to_string(),
            inner,
        }
    }
}

impl<B: Block> Block for Traced<B> {
    fn init(&self, init: &InitContext<'_>) -> Result<()> {
        step("init", &self.resp);
        self.inner.init(init)
    }
    fn run(&self, ctl: Controller) {
        self.inner.run(ctl);
    }
    fn finish(&self) -> Result<()> {
        let result = self.inner.finish();
        step("finished", &self.resp);
        result
    }
    fn on_enqueue(&self, ctl: &Controller, bag: Bag) {
        self.inner.on_enqueue(ctl, bag);
    }
    fn on_connect(&self, ctl: &Controller, event: &DependencyEvent) {
        self.inner.on_connect(ctl, event);
    }
    fn on_disconnect(&self, ctl: &Controller, event: &DependencyEvent) {
        self.inner.on_disconnect(ctl, event);
    }
}

/// Every lock here guards state that each critical section leaves whole,
/// so a poisoned one is still safe to take.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the store block opened, for the publisher block and the monitor.
#[derive(Default)]
struct Backend {
    opened: Mutex<Option<Opened>>,
}

#[derive(Clone)]
enum Opened {
    Queue(Arc<Queue>),
    Rabbit {
        broker: Arc<RabbitDependency>,
        connection: Arc<Connection>,
        queue: String,
    },
}

impl Backend {
    /// The sink for the publisher block, which flushes it after each line:
    /// the queue's fsync, or the broker's confirm. The store block's `init`
    /// (earlier in the order) opened what it publishes to.
    fn sink(&self) -> Result<Box<dyn Sink>> {
        match lock(&self.opened).clone() {
            Some(Opened::Queue(queue)) => Ok(Box::new(QueueSink::new(queue, TOPIC)?)),
            Some(Opened::Rabbit {
                connection, queue, ..
            }) => {
                let config = RabbitSink::default_publisher_config()
                    .with_confirm_timeout(Duration::from_secs(5))
                    .with_close_timeout(Duration::from_secs(5));
                let sink = RabbitSink::new(&connection, RabbitRoute::Queue(queue), config)?
                    .with_flush_timeout(Duration::from_secs(5));
                Ok(Box::new(sink))
            }
            None => Err(Error::closed("store (not initialised)")),
        }
    }

    /// The broker connection to monitor, if any.
    fn broker(&self) -> Option<Arc<dyn Dependency>> {
        match lock(&self.opened).as_ref()? {
            Opened::Rabbit { broker, .. } => Some(broker.clone()),
            Opened::Queue(_) => None,
        }
    }
}

/// Opens where the lines go, and closes it last.
struct Store {
    backend: Arc<Backend>,
    target: Target,
}

impl Block for Store {
    fn init(&self, _conf: &InitContext<'_>) -> Result<()> {
        let opened = match &self.target {
            Target::Queue(dir) => {
                let queue = Queue::open(dir, queue_config())?;
                log::info!("store: durable queue in {}", dir.display());
                Opened::Queue(Arc::new(queue))
            }
            Target::Rabbit { url, queue, name } => {
                let broker = RabbitDependency::new(url).with_name(name).configure(|c| {
                    c.with_backoff(Duration::from_millis(100), Duration::from_secs(2))
                        .with_heartbeat(Duration::from_secs(5))
                        .with_close_timeout(Duration::from_secs(5))
                });
                let broker = Arc::new(broker.start()?);
                let connection = broker.supervisor()?;
                // Declared now if connected, and again on every reconnect.
                connection.declare(vec![Declaration::queue(queue.clone())])?;
                let shown = broker.configuration();
                let shown = shown.get("url").and_then(Value::as_str).unwrap_or("?");
                log::info!("store: RabbitMQ queue {queue} at {shown}");
                Opened::Rabbit {
                    broker,
                    connection,
                    queue: queue.clone(),
                }
            }
        };
        *lock(&self.backend.opened) = Some(opened);
        Ok(())
    }

    fn run(&self, _ctl: Controller) {}

    /// After the publisher block finished (and dropped its sink, closing
    /// its publisher): every publish it made is done.
    fn finish(&self) -> Result<()> {
        match lock(&self.backend.opened).take() {
            Some(Opened::Queue(queue)) => queue.close(),
            Some(Opened::Rabbit { broker, .. }) => broker.close(),
            None => Ok(()),
        }
    }
}

#[derive(serde::Serialize, Deserialize)]
struct ReaderConf {
    listen: String,
    publisher: String,
}

/// Lines from TCP clients to the publisher, `ok <n>` back once published.
#[derive(Default)]
struct Reader {
    listener: Mutex<Option<TcpListener>>,
    addr: Mutex<Option<SocketAddr>>,
    publisher: Mutex<String>,
    next_conn: AtomicU64,
    /// Every open connection, by number.
    conns: Conns,
}

/// How many lines of one connection may wait for their answer. The reader
/// stops reading that connection at this many, so a slow publisher slows
/// the clients down instead of filling memory.
const WINDOW: u64 = 256;

type Conns = Arc<ConnTable>;

#[derive(Default)]
struct ConnTable {
    map: Mutex<HashMap<u64, Conn>>,
    /// Notified on every answer and when the reader finishes.
    answered: Condvar,
    closing: AtomicBool,
}

/// One client: where answers go, and how many are still owed. It is
/// dropped once the client sent EOF and got every answer.
struct Conn {
    writer: TcpStream,
    sent: u64,
    answered: u64,
    eof: bool,
}

impl Conn {
    /// Closes our side once nothing more will be read or answered.
    fn done(&self) -> bool {
        let done = self.eof && self.answered == self.sent;
        if done {
            let _ = self.writer.shutdown(Shutdown::Write);
        }
        done
    }
}

impl Block for Reader {
    fn init(&self, init: &InitContext<'_>) -> Result<()> {
        let conf: ReaderConf = init.conf().decode()?;
        let listener = TcpListener::bind(&conf.listen)
            .map_err(|e| Error::invalid("listen", format!("{}: {e}", conf.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("read the listener's address", e))?;
        println!("listening on {addr}");
        *lock(&self.listener) = Some(listener);
        *lock(&self.addr) = Some(addr);
        *lock(&self.publisher) = conf.publisher;
        Ok(())
    }

    fn run(&self, ctl: Controller) {
        let Some(listener) = lock(&self.listener).take() else {
            return;
        };
        let Some(publisher) = ctl.controller(&lock(&self.publisher)) else {
            log::error!("reader: no publisher block");
            return;
        };
        for stream in listener.incoming() {
            if self.conns.closing.load(Ordering::SeqCst) {
                break;
            }
            let stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    log::warn!("reader: accept failed: {e}");
                    continue;
                }
            };
            let conn = self.next_conn.fetch_add(1, Ordering::SeqCst);
            let Ok(writer) = stream.try_clone() else {
                continue;
            };
            // A client that stops reading must not stall the event thread.
            let _ = writer.set_write_timeout(Some(Duration::from_secs(1)));
            let entry = Conn {
                writer,
                sent: 0,
                answered: 0,
                eof: false,
            };
            lock(&self.conns.map).insert(conn, entry);
            if self.conns.closing.load(Ordering::SeqCst) {
                // `finish` may have shut the others down before this one
                // was listed.
                let _ = stream.shutdown(Shutdown::Both);
            }
            let publisher = publisher.clone();
            let conns = self.conns.clone();
            let spawned = ctl.spawn(&format!("conn{conn}"), move || {
                read_lines(conn, stream, &publisher, &conns);
            });
            if let Err(e) = spawned {
                log::warn!("reader: connection {conn} refused: {e}");
                lock(&self.conns.map).remove(&conn);
            }
        }
    }

    fn finish(&self) -> Result<()> {
        self.conns.closing.store(true, Ordering::SeqCst);
        // Wake the accept loop, then end every connection's read.
        if let Some(addr) = *lock(&self.addr) {
            let _ = TcpStream::connect(addr);
        }
        let conns = lock(&self.conns.map);
        for c in conns.values() {
            let _ = c.writer.shutdown(Shutdown::Both);
        }
        // Readers waiting for their window stop waiting.
        self.conns.answered.notify_all();
        Ok(())
    }

    /// A reply from the publisher: `ok <n>` to the client once published.
    fn on_enqueue(&self, _ctl: &Controller, bag: Bag) {
        let Some((conn, seq)) = bag
            .get(block::ID)
            .and_then(Value::as_str)
            .and_then(|id| id.split_once(':'))
        else {
            return;
        };
        let (Ok(conn), Ok(seq)) = (conn.parse::<u64>(), seq.parse::<u64>()) else {
            return;
        };
        let answer = if bag.get(block::OK).and_then(Value::as_bool) == Some(true) {
            format!("ok {seq}\n")
        } else {
            let why = bag.get(block::ERROR).and_then(Value::as_str);
            format!("err {seq} {}\n", why.unwrap_or("not published"))
        };
        let mut conns = lock(&self.conns.map);
        if let Some(c) = conns.get_mut(&conn) {
            let _ = c.writer.write_all(answer.as_bytes());
            c.answered += 1;
            if c.done() {
                conns.remove(&conn);
            }
            self.conns.answered.notify_all();
        }
    }

    fn on_connect(&self, _ctl: &Controller, event: &DependencyEvent) {
        log::info!(
            "reader: dependency {} connected ({})",
            event.name(),
            event.generation()
        );
        step("dependency-connected", "reader");
    }

    fn on_disconnect(&self, _ctl: &Controller, event: &DependencyEvent) {
        log::warn!(
            "reader: dependency {} disconnected ({})",
            event.name(),
            event.generation()
        );
        step("dependency-disconnected", "reader");
    }
}

/// One connection: every line becomes a bag to the publisher, numbered
/// from 1; ends at the client's EOF or when `finish` shuts the socket. The
/// connection stays listed until every line read was answered.
fn read_lines(conn: u64, stream: TcpStream, publisher: &Controller, conns: &ConnTable) {
    let mut seq = 0u64;
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        seq += 1;
        {
            // Wait for room in the window, then count the line as sent.
            let map = lock(&conns.map);
            let mut map = conns
                .answered
                .wait_while(map, |m| {
                    !conns.closing.load(Ordering::SeqCst)
                        && m.get(&conn).is_some_and(|c| c.sent - c.answered >= WINDOW)
                })
                .unwrap_or_else(PoisonError::into_inner);
            if conns.closing.load(Ordering::SeqCst) {
                break;
            }
            if let Some(c) = map.get_mut(&conn) {
                c.sent += 1;
            }
        }
        let bag = Bag::new()
            .with(block::BODY, line)
            .with(block::ID, format!("{conn}:{seq}"));
        if !publisher.enqueue(bag) {
            // The publisher is finishing: no answer will come for this line.
            if let Some(c) = lock(&conns.map).get_mut(&conn) {
                c.sent -= 1;
            }
            break;
        }
    }
    let mut map = lock(&conns.map);
    if let Some(c) = map.get_mut(&conn) {
        c.eof = true;
        if c.done() {
            map.remove(&conn);
        }
    }
}
