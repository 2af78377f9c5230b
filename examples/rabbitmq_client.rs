//! The gormq-style client against a local broker: a consumer with a
//! dead-letter queue, confirmed and fire-and-retry publishes, and the
//! reconnect behaviour in the log.
//!
//! ```text
//! RUST_LOG=info cargo run --example rabbitmq_client
//! # in another shell, to watch it reconnect and lose nothing:
//! rabbitmqctl close_all_connections "testing reconnects"
//! ```
#![allow(clippy::unwrap_used)] // a test or example fails loudly on purpose

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use syncmq::rabbitmq::{ConsumerOptions, RabbitClient, RabbitClientConfig};
use syncmq::Message;

fn main() -> syncmq::Result<()> {
    env_logger::init();
    let url = std::env::var("SYNCMQ_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string());
    let client = RabbitClient::start(RabbitClientConfig::new(url, "example"))?;
    client.waiter().wait_connected(Duration::from_secs(10))?;

    let handled = Arc::new(AtomicUsize::new(0));
    let counter = handled.clone();
    client.add_consumer(
        ConsumerOptions::new("example-events", "order.created")
            .with_prefetch(32)
            .with_concurrency(2)
            .with_dead_letters(true), // failures go to example:order.created:dlq
        move |message: &Message| -> Result<(), String> {
            if message.body().starts_with(b"poison") {
                return Err("cannot handle poison".into());
            }
            counter.fetch_add(1, Ordering::Relaxed);
            Ok(())
        },
    )?;

    // Confirmed: returns once the broker has it.
    client.publish(
        "example-events",
        "order.created",
        Message::new(b"order 1".to_vec()),
    )?;
    client.publish(
        "example-events",
        "order.created",
        Message::new(b"poison".to_vec()),
    )?;
    // Fire and retry: buffered and resent until confirmed.
    for i in 0..1_000 {
        client.publish_nowait(
            "example-events",
            "order.created",
            Message::new(format!("order {i}").into_bytes()),
        )?;
    }
    client.publisher().flush(Duration::from_secs(60))?;
    println!(
        "published 1,002 messages; handled {} so far",
        handled.load(Ordering::Relaxed)
    );
    std::thread::sleep(Duration::from_secs(1));
    println!("handled {}", handled.load(Ordering::Relaxed));
    client.close()
}
