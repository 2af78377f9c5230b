//! Topology: the exchanges, queues and bindings a program needs, recorded so
//! that the connection supervisor can declare them again after every
//! reconnect (a broker restart loses what was not durable, and a new broker
//! behind the same address has nothing at all).
//!
//! Declarations are idempotent on the broker: declaring what exists with the
//! same settings is a no-op, so re-declaring everything is always safe. A
//! queue declared with other arguments than it has is refused (406
//! `PRECONDITION_FAILED`); a passive declare
//! ([`Declaration::existing_queue`]) only checks that a queue someone else
//! owns is there.

use amiquip::{Channel, ExchangeDeclareOptions, ExchangeType, FieldTable, QueueDeclareOptions};

use crate::error::{Error, ObjectKind, Result};
use crate::rabbitmq::amqp::broker;
use crate::rabbitmq::queue_arguments::QueueArguments;

/// AMQP reply code 404, of a passive declare of a missing queue.
const NOT_FOUND: u16 = 404;

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
        /// Its type, priorities, limits and the rest of its `x-` arguments.
        arguments: QueueArguments,
    },
    /// A queue that must exist already (someone else declares it): a
    /// passive declare, which creates nothing and changes nothing.
    ExistingQueue {
        /// Its name.
        name: String,
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

    /// A durable queue with no arguments (a classic queue, unless the
    /// broker's default queue type says otherwise).
    pub fn queue(name: impl Into<String>) -> Self {
        Self::queue_with(name, QueueArguments::new())
    }

    /// A durable queue declared with `arguments`.
    ///
    /// ```
    /// use syncmq::rabbitmq::{Declaration, QueueArguments, QueueType};
    ///
    /// let jobs = Declaration::queue_with(
    ///     "jobs",
    ///     QueueArguments::new().with_type(QueueType::Quorum).with_delivery_limit(5),
    /// );
    /// assert_eq!(jobs.to_string(), "queue `jobs`");
    /// ```
    pub fn queue_with(name: impl Into<String>, arguments: QueueArguments) -> Self {
        Declaration::Queue {
            name: name.into(),
            arguments,
        }
    }

    /// A queue someone else owns: declaring it only checks that it exists
    /// (a passive declare), whatever its arguments. Declaring a missing one
    /// is [`Error::NotFound`].
    pub fn existing_queue(name: impl Into<String>) -> Self {
        Declaration::ExistingQueue { name: name.into() }
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

    /// Checks what can be checked before the broker sees it: a queue's
    /// arguments ([`QueueArguments::validate`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the argument and the queue.
    pub fn validate(&self) -> Result<()> {
        match self {
            Declaration::Queue { name, arguments } => arguments.validate().map_err(|e| match e {
                Error::InvalidArgument {
                    name: argument,
                    reason,
                } => Error::invalid(argument, format!("queue `{name}`: {reason}")),
                other => other,
            }),
            _ => Ok(()),
        }
    }

    /// Declares this on `channel`.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] when the broker refuses: a queue that exists with
    /// other arguments is code 406, with the text `queue `name`: ` and the
    /// broker's message, which names the argument (`inequivalent arg
    /// 'x-queue-type'`); [`Error::NotFound`] for an
    /// [`existing_queue`](Self::existing_queue) that does not exist;
    /// [`Error::Disconnected`] when the connection is gone.
    pub(crate) fn declare(&self, channel: &Channel) -> Result<()> {
        self.declare_raw(channel).map_err(|e| match (self, e) {
            (
                Declaration::ExistingQueue { name },
                amiquip::Error::ServerClosedChannel {
                    code: NOT_FOUND, ..
                },
            ) => Error::not_found(ObjectKind::Queue, name.as_str()),
            (
                Declaration::Queue { name, .. } | Declaration::ExistingQueue { name },
                amiquip::Error::ServerClosedChannel { code, message, .. },
            ) => Error::refused(code, format!("queue `{name}`: {message}")),
            (_, e) => broker(&format!("declare {self}"), e),
        })
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
            Declaration::Queue { name, arguments } => {
                let options = QueueDeclareOptions {
                    durable: true,
                    arguments: arguments.to_field_table(),
                    ..QueueDeclareOptions::default()
                };
                channel.queue_declare(name.as_str(), options).map(drop)
            }
            Declaration::ExistingQueue { name } => {
                channel.queue_declare_passive(name.as_str()).map(drop)
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
            Declaration::Queue { name, .. } | Declaration::ExistingQueue { name } => {
                write!(f, "queue `{name}`")
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rabbitmq::queue_arguments::QueueType;

    #[test]
    fn a_queue_with_impossible_arguments_is_refused_naming_argument_and_queue() {
        let declaration = Declaration::queue_with(
            "jobs",
            QueueArguments::new()
                .with_type(QueueType::Stream)
                .with_message_ttl(std::time::Duration::from_secs(1)),
        );
        match declaration.validate() {
            Err(Error::InvalidArgument { name, reason }) => {
                assert_eq!(name, "x-message-ttl");
                assert!(reason.starts_with("queue `jobs`: "), "{reason}");
            }
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
        Declaration::queue("jobs").validate().unwrap();
        Declaration::existing_queue("jobs").validate().unwrap();
        assert_eq!(
            Declaration::existing_queue("jobs").to_string(),
            "queue `jobs`"
        );
    }
}
