//! The main job in a few lines: two named channels on the embedded durable
//! queue, a worker thread between them, a summary at the end, and a restart
//! that loses nothing.
//!
//! ```text
//! cargo run --release --example quickstart
//! ```
//!
//! `orders` carries typed orders to a worker thread, which acknowledges each
//! one and writes a receipt to `receipts`. Every message goes through the
//! fjall-backed queue in a fresh temporary directory (set `SYNCMQ_DATA` to
//! keep it somewhere else; a directory that already holds channels is
//! reused). Then the program sends a message nobody reads, closes the
//! adapter, opens it again on the same directory and gets the message back.
//! Swap `DurableAdapter::open(dir)` for `SimpleAdapter::new()` and the same
//! program runs in memory.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use syncmq::{Adapter, ChannelSpec, DurableAdapter, Message, Mode};

#[derive(Serialize, Deserialize)]
struct Order {
    id: u32,
    cents: u64,
}

const ORDERS: u32 = 10_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,fjall=warn,lsm_tree=warn"),
    )
    .init();
    let started = Instant::now();
    // A fresh directory unless SYNCMQ_DATA names one; the temporary one is
    // deleted when `_temp` is dropped at the end.
    let (_temp, dir): (Option<tempfile::TempDir>, PathBuf) =
        if let Some(dir) = std::env::var_os("SYNCMQ_DATA") {
            (None, dir.into())
        } else {
            let temp = tempfile::Builder::new()
                .prefix("syncmq-quickstart-")
                .tempdir()?;
            let dir = temp.path().to_path_buf();
            (Some(temp), dir)
        };

    let adapter = DurableAdapter::open(&dir)?;
    // `new_channel` on a channel restored from an earlier run re-declares it.
    adapter.new_channel(ChannelSpec::new("orders", Mode::Both).with_instances(2))?;
    adapter.new_channel(ChannelSpec::new("receipts", Mode::Both))?;

    let orders_in = adapter.input("orders")?;
    let orders_out = adapter.output("orders")?;
    let receipts_in = adapter.input("receipts")?;
    let receipts_out = adapter.output("receipts")?;

    // The worker: decode, pass a receipt on, acknowledge. It ends when the
    // orders channel does, which is when the adapter closes.
    let worker = thread::Builder::new()
        .name("quickstart-worker".into())
        .spawn(move || -> syncmq::Result<u64> {
            let mut total = 0;
            for delivery in &orders_out {
                let order: Order = delivery.decode()?;
                total += order.cents;
                receipts_in
                    .send(format!("order {} paid", order.id).into())
                    .map_err(|_| syncmq::Error::closed("receipts channel"))?;
                delivery.ack()?;
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
                    .send(order)
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

    // A message nobody reads before the restart.
    adapter.new_channel(ChannelSpec::new("survivor", Mode::Both))?;
    adapter
        .input("survivor")?
        .send(b"sent before the restart".into())
        .map_err(|_| "survivor channel closed")?;
    adapter.close()?; // publishes and syncs what was sent, joins every thread
    let total = worker.join().map_err(|_| "the worker panicked")??;
    drop(receipts_out);

    let adapter = DurableAdapter::open(&dir)?; // channels come back too
    let delivery = adapter
        .output("survivor")?
        .recv_timeout(Duration::from_secs(10))?;
    let survived = String::from_utf8_lossy(delivery.body()).into_owned();
    delivery.ack()?;
    adapter.close()?;

    println!("adapter:   durable (fjall in {})", dir.display());
    println!("orders:    {ORDERS} sent, {receipts} receipts received and acknowledged");
    println!("revenue:   {}.{:02}", total / 100, total % 100);
    println!("restart:   {survived:?} came back after close and reopen");
    println!("took:      {:?}", started.elapsed());
    Ok(())
}
