//! [`Publish`] implementations that return only once the message is
//! durable, so a block that acknowledges on `ok: true` (see
//! [`PublisherBlock`](crate::block::PublisherBlock)) never acknowledges
//! what a crash could lose.
//!
//! - [`QueuePublisher`] (feature `durable`): [`Queue::publish`] into one
//!   topic of the embedded queue engine; with the default
//!   [`Durability::Durable`](crate::queue::Durability::Durable) it returns
//!   after the fsync (publishers on other threads share one through group
//!   commit).
//! - [`RabbitPublisher`] (feature `rabbitmq`): the confirmed
//!   [`Publisher::publish`], which returns once the broker confirmed the
//!   persistent message; a connection lost on the way is bridged by the
//!   publisher's retry buffer.
//!
//! Unlike [`AdapterPublisher`](crate::block::AdapterPublisher), whose `Ok`
//! only says "handed to the adapter's input", an `Ok` from either of these
//! means stored.

#[cfg(feature = "durable")]
use std::sync::Arc;

#[cfg(any(feature = "durable", feature = "rabbitmq"))]
use crate::block::publisher::Publish;
#[cfg(any(feature = "durable", feature = "rabbitmq"))]
use crate::error::Result;
#[cfg(any(feature = "durable", feature = "rabbitmq"))]
use crate::message::Message;
#[cfg(feature = "durable")]
use crate::queue::Queue;
#[cfg(feature = "rabbitmq")]
use crate::rabbitmq::Publisher;

/// Publishes into a topic of the durable [`Queue`]; `Ok` once it is
/// committed (fsynced under the default durability).
///
/// ```
/// use std::sync::Arc;
/// use syncmq::block::{Publish, QueuePublisher};
/// use syncmq::queue::{Queue, QueueConfig, TopicConfig};
///
/// # fn main() -> syncmq::Result<()> {
/// let queue = Arc::new(Queue::memory(
///     QueueConfig::new().with_topic(TopicConfig::new("lines", ["store"])),
/// )?);
/// QueuePublisher::new(queue.clone(), "lines").publish(b"hello")?;
/// assert_eq!(queue.subscribe("lines", "store")?.recv()?.message.body(), b"hello");
/// # Ok(())
/// # }
/// ```
#[cfg(feature = "durable")]
#[derive(Debug, Clone)]
pub struct QueuePublisher {
    queue: Arc<Queue>,
    topic: String,
}

#[cfg(feature = "durable")]
impl QueuePublisher {
    /// Publishes into `topic` of `queue` (declared by whoever opened it).
    pub fn new(queue: Arc<Queue>, topic: impl Into<String>) -> Self {
        QueuePublisher {
            queue,
            topic: topic.into(),
        }
    }
}

#[cfg(feature = "durable")]
impl Publish for QueuePublisher {
    /// As [`Queue::publish`] of one message.
    fn publish(&self, body: &[u8]) -> Result<()> {
        self.queue
            .publish(&self.topic, &[Message::new(body.to_vec())])
    }
}

/// Publishes through RabbitMQ's confirmed [`Publisher`]; `Ok` once the
/// broker confirmed the persistent message.
#[cfg(feature = "rabbitmq")]
#[derive(Debug, Clone)]
pub struct RabbitPublisher {
    publisher: Publisher,
    exchange: String,
    routing_key: String,
}

#[cfg(feature = "rabbitmq")]
impl RabbitPublisher {
    /// Publishes to `exchange` with `routing_key`; the default exchange
    /// (`""`) routes to the queue named `routing_key`.
    pub fn new(
        publisher: Publisher,
        exchange: impl Into<String>,
        routing_key: impl Into<String>,
    ) -> Self {
        RabbitPublisher {
            publisher,
            exchange: exchange.into(),
            routing_key: routing_key.into(),
        }
    }

    /// Publishes to the queue named `queue`, through the default exchange.
    pub fn to_queue(publisher: Publisher, queue: impl Into<String>) -> Self {
        RabbitPublisher::new(publisher, "", queue)
    }
}

#[cfg(feature = "rabbitmq")]
impl Publish for RabbitPublisher {
    /// As [`Publisher::publish`].
    fn publish(&self, body: &[u8]) -> Result<()> {
        self.publisher.publish(
            &self.exchange,
            &self.routing_key,
            Message::new(body.to_vec()),
        )
    }
}
