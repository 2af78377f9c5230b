//! The transactional outbox on fjall, sending to an in-process channel.
//!
//! ```text
//! cargo run --example outbox
//! RUST_LOG=debug cargo run --example outbox   # see the dispatcher work
//! ```
//!
//! Each order is written to the application's `orders` keyspace and its
//! "order placed" message to the outbox in one transaction; an order that
//! fails validation writes neither. The dispatcher sends each committed
//! message to the `order-events` channel the moment it commits.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use syncmq::outbox::fjall::KeyspaceCreateOptions;
use syncmq::outbox::FjallOutboxStore;
use syncmq::outbox::{Outbox, OutboxEvent};
use syncmq::{Adapter, ChannelSink, ChannelSpec, Error, Message, Mode, SimpleAdapter};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let dir = tempfile::tempdir()?;

    let adapter = SimpleAdapter::new();
    adapter.new_channel(ChannelSpec::new("order-events", Mode::Both))?;
    let events = adapter.output("order-events")?;

    let store = FjallOutboxStore::open(dir.path())?;
    let orders = store
        .database()
        .keyspace("orders", KeyspaceCreateOptions::default)?;
    let outbox = Outbox::start(store, ChannelSink::new(&adapter, "order-events")?)?;

    for (order, quantity) in [(1, 2), (2, 0), (3, 5)] {
        let message = Message::new(format!("order {order} placed").into_bytes())
            .with_key(format!("order-{order}"));
        let placed = outbox.add_within_tx(&message, |tx| {
            if quantity == 0 {
                return Err(Error::invalid(
                    "quantity",
                    "an order needs at least one item",
                ));
            }
            tx.insert(&orders, format!("order:{order}"), quantity.to_string());
            Ok(())
        });
        match placed {
            Ok((id, ())) => println!("order {order}: committed as outbox row {id}"),
            Err(e) => println!("order {order}: rolled back ({e}); no row, no message"),
        }
    }

    for _ in 0..2 {
        let delivery = events.recv_timeout(Duration::from_secs(5))?;
        println!("received: {}", String::from_utf8_lossy(delivery.body()));
        delivery.ack()?;
    }
    let mut dispatched = 0;
    while dispatched < 2 {
        if let OutboxEvent::Dispatched { id } =
            outbox.events().recv_timeout(Duration::from_secs(5))?
        {
            println!("outbox row {id} marked dispatched");
            dispatched += 1;
        }
    }
    outbox.close()?;
    adapter.close()?;
    Ok(())
}
