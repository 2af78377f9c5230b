//! The main job in a few lines: two named channels, a worker thread between
//! them, and a summary at the end.
//!
//! ```text
//! cargo run --release --example quickstart
//! ```
//!
//! `orders` carries typed orders to a worker thread, which acknowledges each
//! one and writes a receipt to `receipts`. Swap the adapter's constructor
//! and the same program runs on RabbitMQ or the durable queue.

use std::thread;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use syncmq::{Adapter, ChannelSpec, Message, Mode, SimpleAdapter};

#[derive(Serialize, Deserialize)]
struct Order {
    id: u32,
    cents: u64,
}

const ORDERS: u32 = 10_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let started = Instant::now();

    let adapter = SimpleAdapter::new();
    adapter.new_channel(ChannelSpec::new("orders", Mode::Both).with_instances(2))?;
    adapter.new_channel(ChannelSpec::new("receipts", Mode::Both))?;

    let orders_in = adapter.input("orders")?;
    let orders_out = adapter.output("orders")?;
    let receipts_in = adapter.input("receipts")?;
    let receipts_out = adapter.output("receipts")?;

    // The worker: decode, acknowledge, pass a receipt on. It ends when the
    // orders channel does, which is when the adapter closes.
    let worker = thread::Builder::new()
        .name("quickstart-worker".into())
        .spawn(move || -> syncmq::Result<u64> {
            let mut total = 0;
            for delivery in orders_out.iter() {
                let order: Order = delivery.decode()?;
                total += order.cents;
                delivery.ack()?;
                receipts_in
                    .send(format!("order {} paid", order.id).into_bytes())
                    .map_err(|_| syncmq::Error::closed("receipts channel"))?;
            }
            Ok(total)
        })?;

    // The producer runs on its own thread: with bounded channels, a
    // producer that waits for nobody would stall once every buffer is full.
    let producer = thread::Builder::new()
        .name("quickstart-producer".into())
        .spawn(move || -> syncmq::Result<()> {
            for id in 0..ORDERS {
                let order = Message::encode(&Order { id, cents: 250 })?;
                orders_in
                    .send(order.into_body())
                    .map_err(|_| syncmq::Error::closed("orders channel"))?;
            }
            Ok(())
        })?;

    let mut receipts = 0;
    for delivery in receipts_out.iter().take(ORDERS as usize) {
        receipts += 1;
        delivery.ack()?;
    }
    producer.join().map_err(|_| "the producer panicked")??;
    adapter.close()?;
    let total = worker.join().map_err(|_| "the worker panicked")??;

    println!("adapter:   simple (in process)");
    println!("orders:    {ORDERS} sent, {receipts} receipts received and acknowledged");
    println!("revenue:   {:.2}", total as f64 / 100.0);
    println!("took:      {:?}", started.elapsed());
    Ok(())
}
