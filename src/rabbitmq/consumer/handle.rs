//! [`ConsumerHandle`]: what [`RabbitClient::add_consumer`] returns, to
//! watch one consumer of the client and to stop it alone. gormq's
//! `AddConsumer` returns nothing: its consumers only stop with the client.
//!
//! [`RabbitClient::add_consumer`]: crate::rabbitmq::RabbitClient::add_consumer

use std::sync::Arc;

use super::{Consumer, ConsumerStats};
use crate::error::Result;

/// One consumer of a [`RabbitClient`](crate::rabbitmq::RabbitClient): its
/// stats, and a close that stops it alone. The client still owns the
/// consumer: dropping the handle does not stop it, and the client's close
/// closes it (closing both ways, or twice, is fine).
#[derive(Clone)]
pub struct ConsumerHandle {
    consumer: Arc<Consumer>,
}

impl ConsumerHandle {
    pub(crate) fn new(consumer: Arc<Consumer>) -> Self {
        ConsumerHandle { consumer }
    }

    /// What the consumer counted so far.
    pub fn stats(&self) -> ConsumerStats {
        self.consumer.stats()
    }

    /// The queue it consumes.
    pub fn queue(&self) -> &str {
        self.consumer.queue()
    }

    /// Whether it was closed, through this handle or by the client.
    pub fn is_closed(&self) -> bool {
        self.consumer.is_closed()
    }

    /// Stops this consumer alone, as [`Consumer::close`]; the client and
    /// its other consumers go on. Calling it again does nothing.
    ///
    /// # Errors
    ///
    /// As [`Consumer::close`].
    pub fn close(&self) -> Result<()> {
        self.consumer.close()
    }
}

impl std::fmt::Debug for ConsumerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerHandle")
            .field("queue", &self.consumer.queue())
            .field("stats", &self.stats())
            .finish()
    }
}
