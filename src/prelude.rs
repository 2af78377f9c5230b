//! The items most programs use, for a glob import:
//!
//! ```
//! use syncmq::prelude::*;
//!
//! # fn main() -> syncmq::Result<()> {
//! let adapter = SimpleAdapter::new();
//! adapter.new_channel(ChannelSpec::new("events", Mode::Both))?;
//! adapter.input("events")?.send(Message::from("started")).unwrap();
//! adapter.output("events")?.recv().unwrap().ack()?;
//! # Ok(())
//! # }
//! ```
//!
//! Each item here also has its one path elsewhere in the crate; the
//! prelude only gathers them.

#[cfg(feature = "rabbitmq")]
pub use crate::RabbitAdapter;
pub use crate::{
    outbox::Outbox, Adapter, ChannelSink, ChannelSpec, ConnectionWaiter, Delivery, Error,
    Generation, Message, Mode, Receipt, Result, SimpleAdapter, Sink,
};
#[cfg(feature = "durable")]
pub use crate::{queue::Queue, DurableAdapter, QueueSink};
#[cfg(feature = "rabbitmq")]
pub use crate::{rabbitmq::Connection, rabbitmq::Consumer, rabbitmq::Publisher, RabbitSink};
