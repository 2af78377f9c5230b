//! `syncmq`: run the queue server and talk to it from the shell.
//!
//! ```text
//! syncmq serve --data ./data --config topics.json [--listen 127.0.0.1:7450]
//! syncmq publish orders "order 1" "order 2"      # or lines from stdin
//! syncmq consume orders billing --count 10
//! syncmq peek orders billing --count 5             # look, take nothing
//! syncmq reset orders billing                      # in-flight back to the front
//! syncmq stats [orders] [--watch]
//! syncmq dlq list orders billing
//! syncmq dlq replay orders billing
//! syncmq bench --topic bench --messages 20000
//! syncmq completions bash > /etc/bash_completion.d/syncmq
//! ```
//!
//! Every command but `serve` and `completions` talks to the server at
//! `--addr` (or `SYNCMQ_ADDR`, default `127.0.0.1:7450`; `unix:/path` for a
//! Unix socket), with `--token` (or `SYNCMQ_TOKEN`, or `--token-file`) when
//! the server has one and `--tls-ca` when it speaks TLS; `serve` takes the
//! same token, `--unix PATH` and `--tls-cert`/`--tls-key`. Output is for
//! people (`--format table`, the default); with `--format json` (or
//! `--json`) it is one JSON value per line for programs. An error is one
//! line on stderr starting with `syncmq: error:` and a non-zero exit
//! status.

// Beside this file, not in src/bin/ (where cargo would take each for a
// binary of its own).
#[path = "syncmq/duration.rs"]
mod duration;
#[path = "syncmq/interrupt.rs"]
mod interrupt;
#[path = "syncmq/progress.rs"]
mod progress;

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use serde_json::json;
use syncmq::queue::{Queue, QueueConfig};
use syncmq::server::protocol::MAX_PEEK;
use syncmq::server::{QueueClient, QueueClientConfig, QueueServer, QueueServerConfig};
use syncmq::{Error, Message, Result};

const DEFAULT_ADDR: &str = "127.0.0.1:7450";

#[derive(Parser)]
#[command(
    name = "syncmq",
    version,
    about = "The syncmq durable queue server and its client"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Text for people (`table`) or one JSON value per line for programs
    /// (`json`).
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Short for `--format json`.
    #[arg(long, global = true, conflicts_with = "format")]
    json: bool,
    /// The server to talk to: `host:port`, or `unix:PATH` for a Unix socket.
    #[arg(long, global = true, env = "SYNCMQ_ADDR", default_value = DEFAULT_ADDR)]
    addr: String,
    /// The shared token: the one clients must give (serve), or the one to
    /// give the server (every other command). Other users may see a
    /// command line in the process list: prefer `SYNCMQ_TOKEN` or
    /// `--token-file`.
    #[arg(long, global = true, env = "SYNCMQ_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// As --token, read from this file (a trailing newline is dropped).
    #[arg(long, global = true, conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// Connect over TLS, trusting the CA certificates in this PEM file.
    #[cfg(feature = "tls")]
    #[arg(long, global = true)]
    tls_ca: Option<PathBuf>,
    /// The name the server's certificate must be valid for; by default the
    /// host of --addr (or its IP address).
    #[cfg(feature = "tls")]
    #[arg(long, global = true, requires = "tls_ca")]
    tls_server_name: Option<String>,
}

/// What the output is made for.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Text and tables for people.
    Table,
    /// One JSON value per line for programs.
    Json,
}

impl Cli {
    /// True when the output is JSON (`--format json` or `--json`).
    fn json(&self) -> bool {
        self.json || self.format == Format::Json
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve a queue directory until SIGINT or SIGTERM.
    Serve(Serve),
    /// Publish messages (the arguments, or stdin one per line) durably.
    Publish(Publish),
    /// Receive, print and acknowledge messages of a subscriber.
    Consume(Consume),
    /// Show the messages a subscriber would receive next, taking none.
    ///
    /// No delivery is counted, no ack deadline starts, and they stay
    /// deliverable: the next consume gets the first of them as a first
    /// delivery.
    Peek(Peek),
    /// Put a subscriber's in-flight messages back at the front of its queue.
    ///
    /// Every delivered, unacknowledged message goes back at the front of
    /// its queue, to be delivered again (each redelivery counts towards the
    /// topic's delivery limit); the consumers that hold them can no longer
    /// settle them. For a consumer that restarts and will not settle what
    /// it was sent.
    Reset {
        /// The topic.
        topic: String,
        /// The subscriber.
        subscriber: String,
    },
    /// Counters of every subscriber (of one topic, or of all).
    Stats(Stats),
    /// A subscriber's dead-letter queue.
    #[command(name = "dlq")]
    DeadLetters {
        #[command(subcommand)]
        action: DeadLetterAction,
    },
    /// Measure publish and consume throughput against the server.
    Bench(Bench),
    /// Print a shell completion script.
    ///
    /// For example `syncmq completions bash >
    /// ~/.local/share/bash-completion/completions/syncmq`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Args)]
struct Serve {
    /// The queue's directory (created if missing).
    #[arg(long)]
    data: PathBuf,
    /// The topics config: JSON (`.json`), TOML (`.toml`) or YAML (`.yaml`,
    /// `.yml`), the fields of `QueueConfig` (`durability`,
    /// `max_message_bytes`, `topics`).
    #[arg(long)]
    config: PathBuf,
    /// The address to listen on (port 0: any free port, printed).
    #[arg(long, default_value = DEFAULT_ADDR)]
    listen: String,
    /// The most connections at once.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Close a connection that sends no frame for this long (clients ping
    /// to stay open); 0 for never.
    #[arg(long, default_value_t = 60_000)]
    idle_timeout_ms: u64,
    /// The most subscriptions one connection may hold at once.
    #[arg(long, default_value_t = 64)]
    max_subscriptions: usize,
    /// Listen on a Unix domain socket at this path instead of TCP.
    #[arg(long, conflicts_with = "listen")]
    unix: Option<PathBuf>,
    /// The Unix socket's file mode, in octal.
    #[arg(long, default_value = "600", value_parser = parse_mode, requires = "unix")]
    unix_mode: u32,
    /// Speak TLS with this certificate (PEM, with any intermediates).
    #[cfg(feature = "tls")]
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The TLS certificate's private key (PKCS#8 PEM, `BEGIN PRIVATE KEY`).
    #[cfg(feature = "tls")]
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[derive(Args)]
struct Publish {
    /// The topic.
    topic: String,
    /// Message bodies; when none are given, every line of stdin is one.
    messages: Vec<String>,
    /// A dedupe key for every message.
    #[arg(long)]
    key: Option<String>,
    /// The priority (0 is the highest).
    #[arg(long, default_value_t = 0)]
    priority: u8,
    /// A header `name=value`; repeat for more.
    #[arg(long = "header", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Expire the messages this long after publishing (dropped, not
    /// delivered, once it has passed): whole milliseconds (`1500`) or a
    /// number with a unit (`500ms`, `30s`, `5m`, `2h`, `1d`).
    #[arg(long, value_parser = duration::parse)]
    ttl: Option<Duration>,
    /// Messages per publish (each publish is one durable batch).
    #[arg(long, default_value_t = 100)]
    batch: usize,
}

#[derive(Args)]
struct Consume {
    /// The topic.
    topic: String,
    /// The subscriber.
    subscriber: String,
    /// Stop after this many messages.
    #[arg(long)]
    count: Option<u64>,
    /// Stop when no message came for this many milliseconds.
    #[arg(long)]
    idle_ms: Option<u64>,
    /// Unacknowledged deliveries allowed at once.
    #[arg(long, default_value_t = 100)]
    batch: u32,
    /// Nack with requeue instead of acking: the message goes back, and this
    /// look counts as a delivery (towards `max_deliveries`), so it is no peek.
    #[arg(long)]
    requeue: bool,
}

#[derive(Args)]
struct Peek {
    /// The topic.
    topic: String,
    /// The subscriber.
    subscriber: String,
    /// How many of the next messages to show, in the order receives would
    /// take them.
    #[arg(long, default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PEEK)))]
    count: u32,
}

#[derive(Args)]
struct Stats {
    /// The topic; all topics when left out.
    topic: Option<String>,
    /// Refresh until Ctrl-C: in place on a terminal, else printed again
    /// each time.
    #[arg(long)]
    watch: bool,
    /// How often --watch refreshes, in milliseconds.
    #[arg(long, default_value_t = 1000, requires = "watch",
          value_parser = clap::value_parser!(u64).range(1..))]
    interval_ms: u64,
}

#[derive(Subcommand)]
enum DeadLetterAction {
    /// Print the dead letters, oldest first.
    List {
        /// The topic.
        topic: String,
        /// The subscriber.
        subscriber: String,
        /// The most to print.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Move every dead letter back to the subscriber's queue.
    Replay {
        /// The topic.
        topic: String,
        /// The subscriber.
        subscriber: String,
    },
}

#[derive(Args)]
struct Bench {
    /// The topic to publish to (use one made for benchmarking).
    #[arg(long, default_value = "bench")]
    topic: String,
    /// The subscriber to consume as; the topic's first when left out.
    #[arg(long)]
    subscriber: Option<String>,
    /// Messages to publish, then consume.
    #[arg(long, default_value_t = 20_000)]
    messages: usize,
    /// Publishing connections, each publishing one message at a time.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Payload bytes.
    #[arg(long, default_value_t = 100)]
    size: usize,
}

fn parse_mode(s: &str) -> std::result::Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .map_err(|e| format!("mode {s:?} is not an octal number: {e}"))
}

fn parse_header(s: &str) -> std::result::Result<(String, String), String> {
    s.split_once('=')
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .ok_or_else(|| format!("header {s:?} is not name=value"))
}

fn main() -> ExitCode {
    env_logger::init();
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever the error says.
            let line = e.to_string().replace('\n', " ");
            eprintln!("syncmq: error: {line}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<()> {
    let json = cli.json();
    match &cli.command {
        Command::Serve(s) => serve(s, token(cli)?, json),
        Command::Publish(p) => publish(&connect(cli)?, p, json),
        Command::Consume(c) => consume(cli, c),
        Command::Peek(p) => peek(&connect(cli)?, p, json),
        Command::Reset { topic, subscriber } => reset(&connect(cli)?, topic, subscriber, json),
        Command::Stats(s) => stats(&connect(cli)?, s, json),
        Command::DeadLetters { action } => dead_letters(&connect(cli)?, action, json),
        Command::Bench(b) => bench(cli, b),
        Command::Completions { shell } => {
            let mut out = std::io::stdout().lock();
            clap_complete::generate(*shell, &mut Cli::command(), "syncmq", &mut out);
            out.flush().map_err(|e| Error::io("write to stdout", e))
        }
    }
}

fn connect(cli: &Cli) -> Result<QueueClient> {
    let mut config = QueueClientConfig::new();
    if let Some(token) = token(cli)? {
        config = config.with_token(token);
    }
    #[cfg(feature = "tls")]
    if let Some(ca) = &cli.tls_ca {
        let mut tls = syncmq::TlsConfig::new().with_ca_pem_file(ca);
        // A host name in --addr is what the certificate names; the client
        // itself only sees the addresses it resolves to.
        let host = cli
            .addr
            .rsplit_once(':')
            .map(|(h, _)| h.trim_matches(['[', ']']));
        let name = cli
            .tls_server_name
            .as_deref()
            .or(host.filter(|h| h.parse::<std::net::IpAddr>().is_err()));
        if let Some(name) = name {
            tls = tls.with_server_name(name);
        }
        config = config.with_tls(tls);
    }
    match cli.addr.strip_prefix("unix:") {
        Some(path) => QueueClient::connect_unix(path, config),
        None => QueueClient::connect_with(cli.addr.as_str(), config),
    }
}

/// The token of `--token`, `SYNCMQ_TOKEN` or `--token-file`.
fn token(cli: &Cli) -> Result<Option<String>> {
    let Some(path) = &cli.token_file else {
        return Ok(cli.token.clone());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("read the token file {}", path.display()), e))?;
    let token = text.strip_suffix('\n').unwrap_or(&text);
    let token = token.strip_suffix('\r').unwrap_or(token);
    if token.is_empty() {
        return Err(Error::invalid(
            "token-file",
            format!("{} is empty", path.display()),
        ));
    }
    Ok(Some(token.to_string()))
}

/// The contents of `path`, for --tls-cert and --tls-key.
#[cfg(feature = "tls")]
fn read_pem(flag: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(format!("read {flag} {}", path.display()), e))
}

/// Prints a line and flushes, so a reader of a pipe sees it at once.
fn emit(line: impl std::fmt::Display) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("write to stdout", e))
}

fn serve(s: &Serve, token: Option<String>, json: bool) -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let config = QueueConfig::from_path(&s.config)?;
    // Registered before anything starts, so a signal during start-up is
    // not lost (and does not kill the process halfway).
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| Error::io("register for SIGINT and SIGTERM", e))?;
    let queue = Arc::new(Queue::open(&s.data, config)?);
    let topics = queue.topics().len();
    let server_config = QueueServerConfig::new()
        .with_addr(&s.listen)
        .with_max_connections(s.max_connections)
        .with_max_subscriptions(s.max_subscriptions);
    let mut server_config = match s.idle_timeout_ms {
        0 => server_config.without_idle_timeout(),
        ms => server_config.with_idle_timeout(Duration::from_millis(ms)),
    };
    if let Some(token) = token {
        server_config = server_config.with_token(token);
    }
    if let Some(path) = &s.unix {
        server_config = server_config
            .with_unix_socket(path)
            .with_unix_socket_mode(s.unix_mode);
    }
    #[cfg(feature = "tls")]
    if let (Some(cert), Some(key)) = (&s.tls_cert, &s.tls_key) {
        server_config = server_config
            .with_tls_identity_pem(read_pem("--tls-cert", cert)?, read_pem("--tls-key", key)?);
    }
    let server = QueueServer::start(queue.clone(), server_config)?;
    let addr = server.addr().clone();
    if json {
        emit(
            json!({"listening": addr.to_string(), "data": s.data.display().to_string(), "topics": topics}),
        )?;
    } else {
        emit(format_args!(
            "listening on {addr} (data {}, {topics} topics); stop with Ctrl-C",
            s.data.display()
        ))?;
    }
    let signal = signals.forever().next();
    log::info!("serve: signal {signal:?}, closing");
    let server_closed = server.close();
    let queue_closed = queue.close();
    server_closed.and(queue_closed)?;
    if json {
        emit(json!({"stopped": addr.to_string()}))
    } else {
        emit(format_args!("stopped {addr}"))
    }
}

fn publish(client: &QueueClient, p: &Publish, json: bool) -> Result<()> {
    if p.batch == 0 {
        return Err(Error::invalid("batch", "must be at least 1"));
    }
    let make = |body: String| {
        let mut m = Message::new(body.into_bytes()).with_priority(p.priority);
        if let Some(k) = &p.key {
            m = m.with_key(k.clone());
        }
        for (n, v) in &p.headers {
            m = m.with_header(n.clone(), v.clone());
        }
        // From now, per message: a long stdin run expires each one its
        // TTL after it was read.
        if let Some(ttl) = p.ttl {
            m = m.with_ttl(ttl);
        }
        m
    };
    let mut total = 0u64;
    let started = Instant::now();
    // A bar only for stdin, which may go on for long; arguments are few.
    let bar = progress::bar("published", None, json || !p.messages.is_empty());
    let mut batch = Vec::with_capacity(p.batch);
    let flush = |batch: &mut Vec<Message>, total: &mut u64| -> Result<()> {
        client.publish(&p.topic, batch)?;
        *total += batch.len() as u64;
        bar.inc(batch.len() as u64);
        batch.clear();
        Ok(())
    };
    if p.messages.is_empty() {
        for line in std::io::stdin().lock().lines() {
            let line = line.map_err(|e| Error::io("read stdin", e))?;
            batch.push(make(line));
            if batch.len() == p.batch {
                flush(&mut batch, &mut total)?;
            }
        }
    } else {
        for body in &p.messages {
            batch.push(make(body.clone()));
            if batch.len() == p.batch {
                flush(&mut batch, &mut total)?;
            }
        }
    }
    if !batch.is_empty() {
        flush(&mut batch, &mut total)?;
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    if json {
        emit(json!({"published": total, "topic": p.topic, "seconds": secs}))
    } else {
        emit(format_args!(
            "published {total} messages to {} (durable) in {secs:.2}s",
            p.topic
        ))
    }
}

fn consume(cli: &Cli, c: &Consume) -> Result<()> {
    let json = cli.json();
    let client = connect(cli)?;
    // Never take more than asked for: what is taken and not acked when we
    // stop comes back marked as redelivered.
    let window = c
        .count
        .map_or(c.batch, |n| {
            c.batch.min(u32::try_from(n).unwrap_or(u32::MAX))
        })
        .max(1);
    let mut sub = client.subscribe_limited(&c.topic, &c.subscriber, window, c.count)?;
    let bar = progress::bar("consumed", c.count, json);
    // Messages printed to the terminal the bar is drawn on would be drawn
    // over: the bar steps aside for each.
    let stdout_shares_the_terminal = !bar.is_hidden() && std::io::stdout().is_terminal();
    let mut got = 0u64;
    while c.count.is_none_or(|n| got < n) {
        let delivery = match c.idle_ms {
            Some(ms) => match sub.recv_timeout(Duration::from_millis(ms))? {
                Some(d) => d,
                None => break,
            },
            None => sub.recv()?,
        };
        let m = delivery.message();
        let line = if json {
            json!({
                "body": String::from_utf8_lossy(m.body()),
                "key": m.key(),
                "priority": m.priority(),
                "headers": m.headers(),
                "redelivered": delivery.is_redelivered(),
            })
            .to_string()
        } else {
            String::from_utf8_lossy(m.body()).into_owned()
        };
        if stdout_shares_the_terminal {
            bar.suspend(|| emit(&line))?;
        } else {
            emit(&line)?;
        }
        // Acked after it was printed: a consumer killed in between gets it
        // again (at least once).
        if c.requeue {
            delivery.nack(true)?;
        } else {
            delivery.ack()?;
        }
        got += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    if !json {
        eprintln!("consumed {got} messages from {}/{}", c.topic, c.subscriber);
    }
    // Acks are sent without waiting; close returns once the server has
    // read them.
    drop(sub);
    client.close()
}

fn peek(client: &QueueClient, p: &Peek, json: bool) -> Result<()> {
    let peeked = client.peek_batch(&p.topic, &p.subscriber, p.count)?;
    if !json && !peeked.is_empty() {
        emit(format_args!(
            "{:>8} {:>10} {:>10}  body",
            "priority", "position", "deliveries"
        ))?;
    }
    for m in &peeked {
        let body = String::from_utf8_lossy(m.message.body());
        if json {
            emit(json!({
                "body": body,
                "key": m.message.key(),
                "priority": m.id.priority,
                "position": m.id.position,
                "headers": m.message.headers(),
                "deliveries": m.deliveries,
            }))?;
        } else {
            emit(format_args!(
                "{:>8} {:>10} {:>10}  {body}",
                m.id.priority, m.id.position, m.deliveries
            ))?;
        }
    }
    if !json {
        eprintln!(
            "{} messages next for {}/{} (none taken)",
            peeked.len(),
            p.topic,
            p.subscriber
        );
    }
    Ok(())
}

fn reset(client: &QueueClient, topic: &str, subscriber: &str, json: bool) -> Result<()> {
    let n = client.reset(topic, subscriber)?;
    if json {
        emit(json!({"reset": n, "topic": topic, "subscriber": subscriber}))
    } else {
        emit(format_args!(
            "{n} in-flight messages of {topic}/{subscriber} back at the front of its queue"
        ))
    }
}

fn stats(client: &QueueClient, s: &Stats, json: bool) -> Result<()> {
    if !s.watch {
        return print_stats(client, s.topic.as_deref(), json);
    }
    let mut interrupt = interrupt::Interrupt::register()?;
    // In place only for a person at a terminal; a pipe or a file gets
    // each refresh after the last, never an escape code.
    let in_place = !json && std::io::stdout().is_terminal();
    let interval = Duration::from_millis(s.interval_ms);
    loop {
        if in_place {
            // Clear the screen and go home: the table replaces the last.
            emit(format_args!(
                "\x1b[2J\x1b[Hevery {} ms; Ctrl-C to stop",
                s.interval_ms
            ))?;
        }
        print_stats(client, s.topic.as_deref(), json)?;
        if interrupt.wait(interval)? {
            return Ok(());
        }
        if !in_place && !json {
            emit("")?;
        }
    }
}

fn print_stats(client: &QueueClient, topic: Option<&str>, json: bool) -> Result<()> {
    let rows = client.stats(topic)?;
    if json {
        // Every counter, under `SubscriberStats`' own field names.
        let rows = serde_json::to_value(&rows).map_err(|e| Error::codec("stats as JSON", e))?;
        return emit(rows);
    }
    emit(format_args!(
        "{:<24} {:<24} {:>10} {:>10} {:>13} {:>10} {:>10} {:>10}",
        "topic",
        "subscriber",
        "depth",
        "in_flight",
        "dead_lettered",
        "expired",
        "delivered",
        "acked"
    ))?;
    for s in rows {
        emit(format_args!(
            "{:<24} {:<24} {:>10} {:>10} {:>13} {:>10} {:>10} {:>10}",
            s.topic,
            s.subscriber,
            s.depth,
            s.in_flight,
            s.dead_lettered,
            s.expired,
            s.delivered,
            s.acked
        ))?;
    }
    Ok(())
}

fn dead_letters(client: &QueueClient, action: &DeadLetterAction, json: bool) -> Result<()> {
    match action {
        DeadLetterAction::List {
            topic,
            subscriber,
            limit,
        } => {
            let letters = client.dead_letters(topic, subscriber, *limit)?;
            for d in &letters {
                let body = String::from_utf8_lossy(d.message.body());
                if json {
                    emit(json!({"position": d.position, "deliveries": d.deliveries,
                                "key": d.message.key(), "body": body}))?;
                } else {
                    emit(format_args!(
                        "#{} after {} deliveries: {body}",
                        d.position, d.deliveries
                    ))?;
                }
            }
            if !json {
                eprintln!("{} dead letters of {topic}/{subscriber}", letters.len());
            }
            Ok(())
        }
        DeadLetterAction::Replay { topic, subscriber } => {
            let n = client.replay_dead_letters(topic, subscriber)?;
            if json {
                emit(json!({"replayed": n}))
            } else {
                emit(format_args!(
                    "replayed {n} dead letters of {topic}/{subscriber}"
                ))
            }
        }
    }
}

fn bench(cli: &Cli, b: &Bench) -> Result<()> {
    let json = cli.json();
    if b.connections == 0 || b.messages == 0 {
        return Err(Error::invalid("connections/messages", "must be at least 1"));
    }
    let control = connect(cli)?;
    let subscriber = match &b.subscriber {
        Some(s) => s.clone(),
        None => control
            .stats(Some(&b.topic))?
            .into_iter()
            .next()
            .map(|s| s.subscriber)
            .ok_or_else(|| Error::invalid("topic", format!("{} has no subscriber", b.topic)))?,
    };
    let clients = (0..b.connections)
        .map(|_| connect(cli))
        .collect::<Result<Vec<_>>>()?;
    let payload = vec![0xA5u8; b.size];
    if !json {
        eprintln!(
            "publishing {} messages of {} bytes over {} connections ...",
            b.messages, b.size, b.connections
        );
    }
    let started = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let handles: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(i, client)| {
                let share =
                    b.messages / b.connections + usize::from(i < b.messages % b.connections);
                let payload = &payload;
                let topic = &b.topic;
                scope.spawn(move || -> Result<()> {
                    for _ in 0..share {
                        client.publish(topic, &[Message::new(payload.clone())])?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| Error::Panicked {
                what: "a bench publisher".into(),
                message: "see its output".into(),
            })??;
        }
        Ok(())
    })?;
    let publish_s = started.elapsed().as_secs_f64();
    if !json {
        eprintln!("consuming as {subscriber} ...");
    }
    let started = Instant::now();
    let mut sub = control.subscribe_with(&b.topic, &subscriber, 1000)?;
    for _ in 0..b.messages {
        sub.recv()?.ack()?;
    }
    let consume_s = started.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)] // a rate to print: 52 bits are plenty
    let rate = |s: f64| b.messages as f64 / s;
    if json {
        emit(
            json!({"case": "publish", "connections": b.connections, "messages": b.messages, "msgs_per_s": rate(publish_s).round()}),
        )?;
        emit(
            json!({"case": "consume", "messages": b.messages, "msgs_per_s": rate(consume_s).round()}),
        )
    } else {
        emit(format_args!("{:<40} {:>12}", "case", "msgs/s"))?;
        emit(format_args!(
            "{:<40} {:>12.0}",
            format!("publish, {} connections, durable", b.connections),
            rate(publish_s)
        ))?;
        emit(format_args!(
            "{:<40} {:>12.0}",
            "consume, window 1000, ack each",
            rate(consume_s)
        ))
    }
}
