//! Feature `metrics` end to end, as an operator runs it: the Prometheus
//! recorder installed, the prometheus example's HTTP server on an
//! ephemeral port, a small workload on the durable queue, and a scrape
//! over plain TCP whose counters, gauges and histograms must say what the
//! workload did. The recorder is global and installed once per process,
//! so this file holds one test.
#![cfg(all(feature = "durable", feature = "metrics"))]
#![allow(clippy::unwrap_used)]

#[path = "../examples/prometheus/http.rs"]
mod http;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use syncmq::queue::{Queue, QueueConfig, TopicConfig};
use syncmq::{Adapter, ChannelSpec, DurableAdapter, Message, Mode};

const PATIENCE: Duration = Duration::from_secs(20);

/// The body of `GET /metrics`, over a plain socket.
fn scrape(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, PATIENCE).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    assert!(head.contains("text/plain"), "{head}");
    body.to_string()
}

/// The value of the sample `series` (a name with its labels, as the
/// exporter writes them), if the scrape has it.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().unwrap())
}

#[test]
fn a_scrape_shows_what_the_workload_did() {
    let handle = PrometheusBuilder::new().install_recorder().unwrap();
    let server = http::MetricsServer::start("127.0.0.1:0", handle).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(
        Queue::open(
            dir.path().join("queue"),
            QueueConfig::new().with_topic(TopicConfig::new("orders", ["billing"])),
        )
        .unwrap(),
    );
    let messages: Vec<Message> = (0..3)
        .map(|i| Message::new(format!("order {i}").into_bytes()))
        .collect();
    queue.publish("orders", &messages).unwrap();
    let billing = queue.subscribe("orders", "billing").unwrap();
    let first = billing.recv_timeout(PATIENCE).unwrap().unwrap();
    billing.ack(&[first.id]).unwrap();
    let second = billing.recv_timeout(PATIENCE).unwrap().unwrap();
    billing.nack(&[second.id], true).unwrap();
    let again = billing.recv_timeout(PATIENCE).unwrap().unwrap();
    assert_eq!(again.deliveries, 2);

    // And a channel of the durable adapter, whose counts are the channel's.
    let adapter = DurableAdapter::open(dir.path().join("adapter")).unwrap();
    adapter
        .new_channel(ChannelSpec::new("jobs", Mode::Both))
        .unwrap();
    adapter.input("jobs").unwrap().send("job 1".into()).unwrap();
    let delivery = adapter
        .output("jobs")
        .unwrap()
        .recv_timeout(PATIENCE)
        .unwrap();
    delivery.ack().unwrap();

    let text = scrape(server.addr());
    let billing_series = |name: &str| format!("{name}{{topic=\"orders\",subscriber=\"billing\"}}");
    let value = |name: &str| sample(&text, &billing_series(name));
    assert_eq!(value("syncmq_queue_published_total"), Some(3.0), "{text}");
    assert_eq!(value("syncmq_queue_delivered_total"), Some(3.0), "{text}");
    assert_eq!(value("syncmq_queue_redelivered_total"), Some(1.0), "{text}");
    assert_eq!(value("syncmq_queue_acked_total"), Some(1.0), "{text}");
    assert_eq!(value("syncmq_queue_nacked_total"), Some(1.0), "{text}");
    // One acked, one in flight (the redelivery), one waiting.
    assert_eq!(value("syncmq_queue_depth"), Some(1.0), "{text}");
    assert_eq!(value("syncmq_queue_in_flight"), Some(1.0), "{text}");
    // Two publishes waited for durability: the test's, and the adapter
    // pump's of its one message (both queues record into one histogram);
    // each waited for an fsync.
    assert_eq!(
        sample(&text, "syncmq_queue_publish_seconds_count"),
        Some(2.0),
        "{text}"
    );
    assert!(
        sample(&text, "syncmq_queue_fsync_seconds_count").is_some_and(|n| n >= 1.0),
        "{text}"
    );
    let channel = |name: &str| sample(&text, &format!("{name}{{channel=\"jobs\"}}"));
    assert_eq!(
        channel("syncmq_channel_published_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        channel("syncmq_channel_delivered_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(channel("syncmq_channel_acked_total"), Some(1.0), "{text}");

    adapter.close().unwrap();
    queue.close().unwrap();
    drop(server);
}
