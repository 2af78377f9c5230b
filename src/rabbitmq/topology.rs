//! Topology: the exchanges, queues and bindings a program needs, recorded so
//! that the connection supervisor can declare them again after every
//! reconnect (a broker restart loses what was not durable, and a new broker
//! behind the same address has nothing at all).
//!
//! Declarations are idempotent on the broker: declaring what exists with the
//! same settings is a no-op, so re-declaring everything is always safe.

use amiquip::{
    AmqpValue, Channel, ExchangeDeclareOptions, ExchangeType, FieldTable, QueueDeclareOptions,
};

use crate::error::Result;
use crate::rabbitmq::amqp::broker;

/// The type of an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExchangeKind {
    /// Routes on the exact routing key.
    Direct,
    /// Routes to every bound queue.
    Fanout,
    /// Routes on routing-key patterns (`orders.*`, `#`).
    Topic,
    /// Routes on header values.
    Headers,
}

/// One thing to declare on the broker.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Declaration {
    /// A durable exchange.
    Exchange {
        /// Its name; not empty (the default exchange needs no declaration).
        name: String,
        /// Its type.
        kind: ExchangeKind,
    },
    /// A durable queue.
    Queue {
        /// Its name.
        name: String,
        /// `x-max-priority`, for a priority queue.
        max_priority: Option<u8>,
    },
    /// A binding of a queue to an exchange.
    Binding {
        /// The queue.
        queue: String,
        /// The exchange.
        exchange: String,
        /// The routing key (or pattern, for a topic exchange).
        routing_key: String,
    },
}

impl Declaration {
    /// A durable exchange of this kind.
    pub fn exchange(name: impl Into<String>, kind: ExchangeKind) -> Self {
        Declaration::Exchange {
            name: name.into(),
            kind,
        }
    }

    /// A durable queue.
    pub fn queue(name: impl Into<String>) -> Self {
        Declaration::Queue {
            name: name.into(),
            max_priority: None,
        }
    }

    /// A binding from `exchange` to `queue` on `routing_key`.
    pub fn binding(
        queue: impl Into<String>,
        exchange: impl Into<String>,
        routing_key: impl Into<String>,
    ) -> Self {
        Declaration::Binding {
            queue: queue.into(),
            exchange: exchange.into(),
            routing_key: routing_key.into(),
        }
    }

    /// Declares this on `channel`.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`](crate::Error::Refused) when the broker refuses (say
    /// a queue exists with other settings, code 406);
    /// [`Error::Disconnected`](crate::Error::Disconnected) when the
    /// connection is gone.
    pub(crate) fn declare(&self, channel: &Channel) -> Result<()> {
        self.declare_raw(channel)
            .map_err(|e| broker(&format!("declare {self}"), e))
    }

    /// As [`declare`](Self::declare), with amiquip's error, to tell a
    /// refusal (the broker closes the channel) from a lost connection.
    pub(crate) fn declare_raw(&self, channel: &Channel) -> amiquip::Result<()> {
        match self {
            Declaration::Exchange { name, kind } => {
                let kind = match kind {
                    ExchangeKind::Direct => ExchangeType::Direct,
                    ExchangeKind::Fanout => ExchangeType::Fanout,
                    ExchangeKind::Topic => ExchangeType::Topic,
                    ExchangeKind::Headers => ExchangeType::Headers,
                };
                let options = ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                };
                channel
                    .exchange_declare(kind, name.as_str(), options)
                    .map(drop)
            }
            Declaration::Queue { name, max_priority } => {
                let mut arguments = FieldTable::new();
                if let Some(max) = max_priority {
                    arguments.insert(
                        "x-max-priority".to_string(),
                        AmqpValue::ShortShortUInt(*max),
                    );
                }
                let options = QueueDeclareOptions {
                    durable: true,
                    arguments,
                    ..QueueDeclareOptions::default()
                };
                channel.queue_declare(name.as_str(), options).map(drop)
            }
            Declaration::Binding {
                queue,
                exchange,
                routing_key,
            } => channel.queue_bind(
                queue.as_str(),
                exchange.as_str(),
                routing_key.as_str(),
                FieldTable::new(),
            ),
        }
    }
}

impl std::fmt::Display for Declaration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Declaration::Exchange { name, .. } => write!(f, "exchange `{name}`"),
            Declaration::Queue { name, .. } => write!(f, "queue `{name}`"),
            Declaration::Binding {
                queue,
                exchange,
                routing_key,
            } => write!(
                f,
                "the binding of queue `{queue}` to exchange `{exchange}` on `{routing_key}`"
            ),
        }
    }
}
