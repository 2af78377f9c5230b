//! [`QueueSink`]: a topic of the durable queue engine as a [`Sink`], one
//! atomic, durable [`Queue::publish`] per flush.

use std::sync::Arc;

use crate::error::Result;
use crate::message::Message;
use crate::queue::Queue;
use crate::sink::Sink;

/// Sends messages into a topic of a [`Queue`], one durable publish per
/// flush.
///
/// `send` only buffers the message (key, routing key, headers, priority and
/// expiry included); `flush` publishes everything buffered to the topic in
/// one [`Queue::publish`], which returns once the batch is durable
/// (fsynced, or handed to the OS with
/// [`Durability::Buffered`](crate::queue::Durability)). A sender that
/// flushes after every message has one durable publish per message; the
/// outbox flushes once per batch of rows, so one fsync covers the batch.
///
/// # Guarantees
///
/// - **In order**: messages reach the topic in the order sent; a flush is
///   one atomic write, so after a crash all of it is in the topic or none.
/// - **A failed flush wrote nothing** (the queue's publish is atomic; only
///   a failed fsync leaves it open), so the messages it held can be sent
///   again without making copies. The outbox duplicates a row only when
///   the process stops (or its store fails) between the publish and the
///   marking of the batch: then the batch is published again after the
///   restart.
/// - **Failures**: a closed queue ([`Error::Closed`](crate::Error::Closed))
///   or a failed write ([`Error::Storage`](crate::Error::Storage)) says the
///   destination is down. A message over the queue's size limit is the
///   message's own fault: the queue names it
///   ([`Error::InvalidArgument`](crate::Error::InvalidArgument) on
///   `messages[i]`) and nothing of the flush is written.
///
/// A topic with `dedupe` on replaces an undelivered message with the same
/// key, as for any publish.
///
/// ```
/// use std::sync::Arc;
/// use syncmq::outbox::MemoryOutboxStore;
/// use syncmq::queue::{Queue, QueueConfig, TopicConfig};
/// use syncmq::{Message, QueueSink};
/// use syncmq::outbox::{Outbox, OutboxEvent};
///
/// # fn main() -> syncmq::Result<()> {
/// let queue = Arc::new(Queue::memory(
///     QueueConfig::new().with_topic(TopicConfig::new("orders", ["billing"])),
/// )?);
/// let outbox = Outbox::start(MemoryOutboxStore::new(), QueueSink::new(queue.clone(), "orders")?)?;
/// let id = outbox.add(&Message::new(b"order 1 placed".to_vec()))?;
/// let event = outbox.events().recv().unwrap();
/// assert!(matches!(event, OutboxEvent::Dispatched { id: sent } if sent == id));
/// let got = queue.subscribe("orders", "billing")?.recv()?;
/// assert_eq!(got.message.body(), b"order 1 placed");
/// outbox.close()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct QueueSink {
    queue: Arc<Queue>,
    topic: String,
    /// The messages sent since the last flush, in order.
    batch: Vec<Message>,
}

impl QueueSink {
    /// A sink into `topic` of `queue`.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`](crate::Error::NotFound) when the queue has no
    /// such topic (declare it first); [`Error::Closed`](crate::Error::Closed).
    pub fn new(queue: Arc<Queue>, topic: impl Into<String>) -> Result<Self> {
        let topic = topic.into();
        // The cheapest call that names an unknown topic.
        queue.stats(&topic)?;
        Ok(QueueSink {
            queue,
            topic,
            batch: Vec::new(),
        })
    }

    /// The topic messages go to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The queue messages go to.
    pub fn queue(&self) -> &Arc<Queue> {
        &self.queue
    }
}

impl Sink for QueueSink {
    /// Buffers the message until the next flush.
    fn send(&mut self, message: &Message) -> Result<()> {
        self.batch.push(message.clone());
        Ok(())
    }

    /// Publishes what was sent since the last flush, durably, in one
    /// atomic write. On an error the buffer is emptied all the same: send
    /// the messages again.
    fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let published = self.queue.publish(&self.topic, &self.batch);
        self.batch.clear();
        published
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Error, ObjectKind};
    use crate::queue::{QueueConfig, TopicConfig};
    use crate::sink::destination_is_down;
    use std::time::Duration;

    fn queue() -> Arc<Queue> {
        Arc::new(
            Queue::memory(
                QueueConfig::new()
                    .with_max_message_bytes(1024)
                    .with_topic(TopicConfig::new("t", ["s"])),
            )
            .unwrap(),
        )
    }

    #[test]
    fn an_unknown_topic_is_refused_at_once() {
        let err = QueueSink::new(queue(), "nope").unwrap_err();
        assert!(
            matches!(&err, Error::NotFound { kind: ObjectKind::Topic, name } if name == "nope"),
            "{err:?}"
        );
    }

    #[test]
    fn nothing_is_published_before_the_flush_and_all_of_it_after() {
        let queue = queue();
        let reader = queue.subscribe("t", "s").unwrap();
        let mut sink = QueueSink::new(queue.clone(), "t").unwrap();
        sink.send(&Message::from("a").with_routing_key("r"))
            .unwrap();
        sink.send(&Message::from("b")).unwrap();
        assert!(reader.recv_timeout(Duration::ZERO).unwrap().is_none());
        sink.flush().unwrap();
        let first = reader.recv_timeout(Duration::ZERO).unwrap().unwrap();
        assert_eq!(first.message.routing_key(), Some("r"));
        let second = reader.recv_timeout(Duration::ZERO).unwrap().unwrap();
        assert_eq!(second.message.body(), b"b");
        sink.flush().unwrap(); // nothing sent: nothing to do
    }

    #[test]
    fn a_too_large_message_fails_the_flush_as_its_own_fault_and_nothing_is_written() {
        let queue = queue();
        let reader = queue.subscribe("t", "s").unwrap();
        let mut sink = QueueSink::new(queue.clone(), "t").unwrap();
        sink.send(&Message::from("small")).unwrap();
        sink.send(&Message::new(vec![0; 4096])).unwrap();
        let err = sink.flush().unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument { name, .. } if name == "messages[1]"),
            "{err:?}"
        );
        assert!(!destination_is_down(&err));
        assert!(reader.recv_timeout(Duration::ZERO).unwrap().is_none());
        // The buffer was emptied: the small one again goes alone.
        sink.send(&Message::from("small")).unwrap();
        sink.flush().unwrap();
        let got = reader.recv_timeout(Duration::ZERO).unwrap().unwrap();
        assert_eq!(got.message.body(), b"small");
    }

    #[test]
    fn a_closed_queue_is_the_destination_down() {
        let queue = queue();
        let mut sink = QueueSink::new(queue.clone(), "t").unwrap();
        queue.close().unwrap();
        sink.send(&Message::from("late")).unwrap();
        let err = sink.flush().unwrap_err();
        assert!(destination_is_down(&err), "{err:?}");
    }
}
