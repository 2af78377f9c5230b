//! syncmq's metrics in Prometheus text format over HTTP, with nothing
//! async: the `metrics` crate's Prometheus recorder (its HTTP listener
//! off) rendered on request by a small synchronous `tiny_http` server.
//!
//! ```text
//! cargo run --example prometheus --features metrics -- 127.0.0.1:9464 30
//! curl -s http://127.0.0.1:9464/metrics | grep syncmq_
//! ```
//!
//! It opens a durable queue in a temporary directory and, for the given
//! number of seconds (30 by default), publishes a message every 50 ms to
//! topic `orders` and consumes it as subscriber `billing`, so the queue's
//! counters, gauges and latency histograms move while you scrape them.
//! The recorder is installed before the queue opens: handles made before
//! it would not see it.
#![allow(clippy::unwrap_used)] // an example fails loudly on purpose

mod http;

use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusBuilder;
use syncmq::queue::{Queue, QueueConfig, TopicConfig};
use syncmq::Message;

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,fjall=warn,lsm_tree=warn"),
    )
    .init();
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9464".into());
    let seconds: u64 = match args.next() {
        Some(s) => s
            .parse()
            .map_err(|e| format!("seconds: `{s}` is not a whole number: {e}"))?,
        None => 30,
    };

    // First the recorder, then everything that records.
    let handle = PrometheusBuilder::new().install_recorder()?;
    let server = http::MetricsServer::start(&addr, handle)?;
    log::info!("serving http://{}/metrics for {seconds} s", server.addr());

    let dir = tempfile::tempdir()?;
    let queue = Arc::new(Queue::open(
        dir.path(),
        QueueConfig::new().with_topic(TopicConfig::new("orders", ["billing"])),
    )?);
    let billing = queue.subscribe("orders", "billing")?;
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut n = 0u64;
    while Instant::now() < until {
        queue.publish("orders", &[Message::new(format!("order {n}").into_bytes())])?;
        if let Some(received) = billing.recv_timeout(Duration::from_secs(1))? {
            billing.ack(&[received.id])?;
        }
        n += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    log::info!("published and consumed {n} messages");
    queue.close()?;
    drop(server);
    Ok(())
}
