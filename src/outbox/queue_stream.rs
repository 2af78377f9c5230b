//! [`QueueStream`]: outbox rows into a topic of the durable queue engine,
//! one atomic, durable [`Queue::publish`] per batch.
//!
//! `send` only buffers the row's message (key, headers, priority and
//! expiry included); `flush` publishes everything buffered to the topic in
//! one call, which returns once the batch is durable (fsynced, or handed to
//! the OS with [`Durability::Buffered`](crate::queue::Durability)). The
//! dispatcher marks the rows dispatched only after that.
//!
//! # Guarantees
//!
//! - **In order**: rows reach the topic in id order; a batch is one atomic
//!   write, so after a crash all of it is in the topic or none.
//! - **At least once, and few duplicates**: a flush that failed wrote
//!   nothing (the queue's publish is atomic; only a failed fsync leaves it
//!   open), so the rows it held are sent again without copies. A row is
//!   duplicated only when the process stops (or the outbox store fails)
//!   between the publish and the marking of its batch: then that batch is
//!   published again after the restart.
//! - **Failures**: a closed queue ([`Error::Closed`]) or a failed write is
//!   the destination being down (retried for ever, never counted). A
//!   message over the queue's size limit is the row's own fault: the queue
//!   names it in its error, and that row's next send fails with
//!   [`Error::InvalidArgument`], counted as an attempt, so it goes dead
//!   after `max_attempts` instead of blocking the rows behind it.
//!
//! A topic with `dedupe` on replaces an undelivered message with the same
//! key, as for any publish.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, ObjectKind, Result};
use crate::message::Message;
use crate::outbox::stream::EventStream;
use crate::outbox::OutboxRecord;
use crate::queue::Queue;

/// Sends outbox rows into a topic of a [`Queue`], one durable publish per
/// batch. See the [module docs](self).
///
/// ```
/// use std::sync::Arc;
/// use syncmq::outbox::{MemoryOutboxStore, QueueStream};
/// use syncmq::queue::{Queue, QueueConfig, TopicConfig};
/// use syncmq::{Message, Outbox, OutboxEvent};
///
/// # fn main() -> syncmq::Result<()> {
/// let queue = Arc::new(Queue::memory(
///     QueueConfig::new().with_topic(TopicConfig::new("orders", ["billing"])),
/// )?);
/// let outbox = Outbox::start(MemoryOutboxStore::new(), QueueStream::new(queue.clone(), "orders")?)?;
/// let id = outbox.add(&Message::new(b"order 1 placed".to_vec()))?;
/// let event = outbox.events().recv().unwrap();
/// assert!(matches!(event, OutboxEvent::Dispatched { id: sent } if sent == id));
/// let got = queue.subscribe("orders", "billing")?.recv()?;
/// assert_eq!(got.message.body(), b"order 1 placed");
/// outbox.stop()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct QueueStream {
    queue: Arc<Queue>,
    topic: String,
    /// The rows sent since the last flush, in order.
    ids: Vec<u64>,
    messages: Vec<Message>,
    /// Rows the queue refused for their own sake (too large): their next
    /// send fails with this reason, counted against the row.
    refused: HashMap<u64, String>,
}

impl QueueStream {
    /// A stream into `topic` of `queue`.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when the queue has no such topic (declare it
    /// first).
    pub fn new(queue: Arc<Queue>, topic: impl Into<String>) -> Result<Self> {
        let topic = topic.into();
        if !queue.topics().iter().any(|t| t.name() == topic) {
            return Err(Error::not_found(ObjectKind::Topic, topic));
        }
        Ok(QueueStream {
            queue,
            topic,
            ids: Vec::new(),
            messages: Vec::new(),
            refused: HashMap::new(),
        })
    }

    /// The topic rows go to.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

impl EventStream for QueueStream {
    fn send(&mut self, record: &OutboxRecord) -> Result<()> {
        if let Some(reason) = self.refused.remove(&record.id) {
            return Err(Error::invalid("message", reason));
        }
        self.ids.push(record.id);
        self.messages.push(record.message.clone());
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let ids = std::mem::take(&mut self.ids);
        let messages = std::mem::take(&mut self.messages);
        match self.queue.publish(&self.topic, &messages) {
            Ok(()) => Ok(()),
            Err(Error::InvalidArgument { name, reason }) => {
                // The engine names the message at fault `messages[i]`.
                let at = name
                    .strip_prefix("messages[")
                    .and_then(|rest| rest.strip_suffix(']'))
                    .and_then(|i| i.parse::<usize>().ok())
                    .and_then(|i| ids.get(i));
                if let Some(&id) = at {
                    self.refused
                        .insert(id, format!("topic `{}`: {reason}", self.topic));
                }
                Err(Error::InvalidArgument { name, reason })
            }
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::now_ms;
    use crate::queue::{QueueConfig, TopicConfig};

    fn record(id: u64, body: Vec<u8>) -> OutboxRecord {
        OutboxRecord {
            id,
            message: Message::new(body),
            created_at: now_ms(),
            attempts: 0,
            last_error: None,
        }
    }

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
        let err = QueueStream::new(queue(), "nope").unwrap_err();
        assert!(
            matches!(&err, Error::NotFound { kind: ObjectKind::Topic, name } if name == "nope"),
            "{err:?}"
        );
    }

    #[test]
    fn a_too_large_row_fails_its_next_send_and_nothing_is_written() {
        let queue = queue();
        let mut stream = QueueStream::new(queue.clone(), "t").unwrap();
        stream.send(&record(1, b"small".to_vec())).unwrap();
        stream.send(&record(2, vec![0; 4096])).unwrap();
        assert!(stream.flush().is_err());
        assert_eq!(queue.stats("t").unwrap()[0].depth, 0);
        // The batch again: the small row is fine, the large one is refused
        // as its own fault (not transient, not closed).
        stream.send(&record(1, b"small".to_vec())).unwrap();
        let err = stream.send(&record(2, vec![0; 4096])).unwrap_err();
        assert!(
            !err.is_transient() && !matches!(err, Error::Closed(_)),
            "{err:?}"
        );
        stream.flush().unwrap();
        let got = queue.subscribe("t", "s").unwrap().recv().unwrap();
        assert_eq!(got.message.body(), b"small");
    }
}
