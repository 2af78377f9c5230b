//! The bench runner: one subcommand per component, each measuring the raw
//! library underneath in the same run, so every figure comes with its
//! baseline and the ratio between them.
//!
//! ```text
//! cargo run --release --example bench -- simple
//! cargo run --release --example bench -- simple --messages 2000000 --json
//! cargo run --release --example bench -- block
//! cargo run --release --example bench -- block-publish --messages 2000
//! cargo run --release --example bench -- queue --messages 20000 --backlog 1000000
//! cargo run --release --example bench -- rabbitmq --messages 20000
//! cargo run --release --example bench -- outbox
//! cargo run --release --example bench -- server --messages 20000
//! cargo run --release --example bench -- ffi --runs 3
//! cargo run --release --example bench -- queue --json > before.json
//! cargo run --release --example bench -- queue --compare before.json
//! cargo run --release --example bench -- simple --svg docs/bench-simple.svg
//! ```
//!
//! Each case runs `--runs` times, interleaved with its baseline so that a
//! machine that speeds up or slows down during the run affects both alike;
//! the table shows the median run and the spread of the runs (slowest to
//! fastest), marking a case whose spread passes 30%. `--compare OLD.json`
//! prints each case's change against an earlier `--json` run; `--svg FILE`
//! also draws the rate rows as a bar chart.
#![allow(clippy::unwrap_used)]
// Measurements: counts, sizes and rates go between integers and floats.
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
// Doc comments here are the subcommands' --help text, not rustdoc.
#![allow(clippy::doc_markdown)] // a test or example fails loudly on purpose

mod affinity;
mod block;
mod block_publish;
mod ffi;
#[cfg(feature = "durable")]
mod outbox;
mod queue;
#[cfg(feature = "rabbitmq")]
mod rabbitmq;
#[cfg(feature = "tls")]
mod rabbitmq_tls;
mod report;
mod server;
mod simple;
mod svg;

use clap::{Args, Parser, Subcommand};

use report::Table;

#[derive(Parser)]
#[command(about = "syncmq benchmarks, each against its raw baseline")]
struct Cli {
    #[command(subcommand)]
    component: Component,
    /// One JSON object per line instead of the table.
    #[arg(long, global = true)]
    json: bool,
    /// After the table, the change of every case against an earlier
    /// `--json` run saved in this file.
    #[arg(long, global = true, value_name = "OLD.json", conflicts_with = "json")]
    compare: Option<std::path::PathBuf>,
    /// Also draw each case's median rate beside its baseline's, with the
    /// runs' spread, as an SVG bar chart in this file.
    #[arg(long, global = true, value_name = "FILE")]
    svg: Option<std::path::PathBuf>,
}

#[derive(Subcommand)]
enum Component {
    /// SimpleAdapter with 1 and 4 instances against raw crossbeam SPSC.
    Simple(Load),
    /// Bags between two blocks through the controller against raw
    /// crossbeam unbounded SPSC.
    Block(Load),
    /// The satellite's publish path: bags through the publisher block into
    /// the durable queue, against raw one-at-a-time `Queue::publish`.
    BlockPublish(block_publish::PublishLoad),
    /// The durable queue engine against raw fjall: durable and buffered
    /// publishes, group commit, end to end, a drained backlog.
    Queue(queue::QueueLoad),
    /// Publisher, Consumer and RabbitAdapter against raw amiquip, on the
    /// broker at SYNCMQ_AMQP_URL.
    #[cfg(feature = "rabbitmq")]
    Rabbitmq(rabbitmq::RabbitArgs),
    /// The transactional outbox: adds against raw fjall commits, dispatch
    /// against direct sends, commit-to-send latency against polling.
    #[cfg(feature = "durable")]
    Outbox(outbox::OutboxLoad),
    /// The queue server over loopback against the engine in process:
    /// durable publish from 4 connections, batches, consume.
    Server(server::ServerLoad),
    /// Publishes from C through the C ABI (libsyncmq.so, built and run as a
    /// process) against Rust Queue::publish in process, and the cost of one
    /// call across the boundary.
    Ffi(ffi::FfiLoad),
}

/// The load every bench takes.
#[derive(Args, Clone, Copy)]
pub struct Load {
    /// Messages per run.
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: usize,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Channel buffer size.
    #[arg(long, default_value_t = 1024)]
    pub buffer: usize,
    /// Runs per case; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
}

fn main() {
    env_logger::init();
    let cli = Cli::parse();
    let table: Table = match cli.component {
        Component::Simple(load) => simple::run(load),
        Component::Block(load) => block::run(load),
        Component::BlockPublish(load) => block_publish::run(load),
        Component::Queue(load) => queue::run(load),
        #[cfg(feature = "rabbitmq")]
        Component::Rabbitmq(args) => rabbitmq::run(&args),
        #[cfg(feature = "durable")]
        Component::Outbox(load) => outbox::run(load),
        Component::Server(load) => server::run(load),
        Component::Ffi(load) => ffi::run(load),
    };
    if cli.json {
        table.print_json();
    } else {
        table.print();
    }
    if let Some(path) = cli.compare {
        match std::fs::read_to_string(&path) {
            Ok(old) => {
                println!();
                report::compare(&table, &old);
            }
            Err(e) => eprintln!("bench: cannot read --compare {}: {e}", path.display()),
        }
    }
    if let Some(path) = cli.svg {
        if let Err(e) = svg::write(&table, &path) {
            eprintln!("bench: --svg: {e}");
            std::process::exit(1);
        }
        eprintln!("bench: wrote {}", path.display());
    }
}
