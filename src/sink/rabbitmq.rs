//! [`RabbitSink`]: RabbitMQ as a [`Sink`], publishing in `send` and
//! waiting for the broker's confirms in `flush`; and [`RabbitRoute`], where
//! it publishes.

use std::collections::VecDeque;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::message::Message;
// The proof of a pipelined publish.
use crate::rabbitmq::{Connection, ConnectionConfig, Publisher, PublisherConfig};
use crate::sink::Sink;
use crate::Receipt;

/// How many messages of failed flushes the sink remembers at most, to
/// recognise them when they are sent again; past it the oldest are
/// forgotten (and published again if they come back).
const MAX_CARRIED: usize = 10_000;

/// Where a [`RabbitSink`] publishes.
///
/// Headers, priority and expiry travel as AMQP properties and the key as
/// the AMQP `message_id`; none of them picks the route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RabbitRoute {
    /// Every message to this queue, through the default exchange (the
    /// queue's name is the routing key).
    Queue(String),
    /// Every message to this exchange, with the message's
    /// [routing key](Message::routing_key) (the usual outbox shape:
    /// `Message::new(body).with_routing_key("order.placed")` to a topic
    /// exchange), or `default_routing_key` for a message without one.
    Exchange {
        /// The exchange (it must exist).
        exchange: String,
        /// The routing key of messages without one.
        default_routing_key: String,
    },
}

impl RabbitRoute {
    /// The exchange and routing key for `message`, and whether the route
    /// came from the message itself (then unroutable is its own fault).
    fn of<'a>(&'a self, message: &'a Message) -> (&'a str, &'a str, bool) {
        match self {
            RabbitRoute::Queue(queue) => ("", queue.as_str(), false),
            RabbitRoute::Exchange {
                exchange,
                default_routing_key,
            } => match message.routing_key() {
                Some(routing_key) => (exchange.as_str(), routing_key, true),
                None => (exchange.as_str(), default_routing_key.as_str(), false),
            },
        }
    }
}

/// A message sent since the last good flush, and what became of it.
#[derive(Debug)]
struct Sent {
    message: Message,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Published; the receipt says when the broker confirmed it.
    Unsettled {
        receipt: Receipt,
        /// The route came from the message's routing key.
        own_route: bool,
    },
    /// The broker confirmed it, but the flush failed for another message.
    Confirmed,
    /// It failed (nacked by a full queue, refused, unroutable): sent
    /// again, it is published again.
    Failed,
}

/// Publishes messages to RabbitMQ, confirmed in bulk at each flush.
///
/// `send` hands the message to the sink's [`Publisher`] (persistent,
/// mandatory) with its pipelined send and keeps the receipt; `flush` waits
/// until the broker confirmed every message sent since the last flush: one
/// confirm round trip per flush, however many messages. The sink has a
/// publisher of its own, so a flush waits for exactly its own messages.
///
/// # Failures
///
/// - A **nack** (a full queue declared with `x-overflow`
///   `reject-publish`) fails the flush with [`Error::Busy`], transient: the
///   destination is full; the message is published again when sent again.
/// - **Lost connections** are the publisher's business: it puts
///   the messages back in its retry buffer and resends them, in order,
///   after the reconnect. The sink just sees confirms come late: a `flush`
///   that does not see every confirm within the flush timeout fails as a
///   [`Error::Timeout`] (the destination is down). The messages stay in
///   the publisher, and when the same messages are sent again (the outbox
///   sends the rows of a failed flush again) the sink does **not** publish
///   them a second time: it recognises each one and waits for the publish
///   it already has. So an outage costs no pile of copies, only the
///   duplicates the broker itself may cause (a message it stored but whose
///   confirm the dropped connection lost is resent by the publisher: at
///   least once). A message confirmed in a flush that failed for another
///   one is not published again either.
/// - A full publisher buffer or a broker that blocks publishing are
///   [`Error::Busy`] at `send`: the destination is down.
/// - **Unroutable** messages (mandatory publish, no queue bound): with
///   [`RabbitRoute::Exchange`] and the message's own routing key, the flush
///   fails with [`Error::InvalidArgument`] naming `routing_key`, the
///   message's own fault (the outbox counts it against the row and
///   dead-letters the row after `max_attempts`). Otherwise every message
///   has the same route, so a missing queue is the destination being down
///   ([`Error::Refused`] 312). Declare queues and bindings before sending.
/// - An exchange that does not exist (the broker closes the channel on the
///   publish) is the destination's fault too: [`Error::Refused`] 404.
///
/// ```no_run
/// use syncmq::outbox::FjallOutboxStore;
/// use syncmq::rabbitmq::{Connection, Declaration};
/// use syncmq::{Message, RabbitSink};
/// use syncmq::outbox::Outbox;
///
/// # fn main() -> syncmq::Result<()> {
/// let connection = Connection::open("amqp://guest:guest@127.0.0.1:5672/%2f")?;
/// connection.declare(vec![Declaration::queue("order-events")])?;
/// let sink = RabbitSink::to_queue(&connection, "order-events")?;
/// let outbox = Outbox::start(FjallOutboxStore::open("data/app")?, sink)?;
/// outbox.add(&Message::new(b"order 42 placed".to_vec()))?;
/// // ... the row is published, confirmed, then marked dispatched.
/// outbox.close()?;
/// # Ok(())
/// # }
/// ```
pub struct RabbitSink {
    // Dropped in this order: the publisher before its connection.
    publisher: Publisher,
    connection: Option<Connection>,
    route: RabbitRoute,
    flush_timeout: Duration,
    /// Sent since the last flush, in order.
    sent: Vec<Sent>,
    /// What failed flushes left, in the order sent, for `send` to
    /// recognise.
    carried: VecDeque<Sent>,
}

impl std::fmt::Debug for RabbitSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitSink")
            .field("route", &self.route)
            .field("sent", &self.sent.len())
            .field("carried", &self.carried.len())
            .finish_non_exhaustive()
    }
}

impl RabbitSink {
    /// The flush timeout when none is given.
    pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

    /// Every message to `queue` (default exchange), on a publisher of its
    /// own over `connection`, with
    /// [`default_publisher_config`](Self::default_publisher_config). Keep
    /// the connection open while the sink is in use.
    ///
    /// # Errors
    ///
    /// As [`Publisher::new`].
    pub fn to_queue(connection: &Connection, queue: impl Into<String>) -> Result<Self> {
        Self::new(
            connection,
            RabbitRoute::Queue(queue.into()),
            Self::default_publisher_config(),
        )
    }

    /// Every message to `exchange` with its routing key (an empty routing
    /// key for messages without one; see
    /// [`with_default_routing_key`](Self::with_default_routing_key)).
    ///
    /// # Errors
    ///
    /// As [`Publisher::new`].
    pub fn to_exchange(connection: &Connection, exchange: impl Into<String>) -> Result<Self> {
        Self::new(
            connection,
            RabbitRoute::Exchange {
                exchange: exchange.into(),
                default_routing_key: String::new(),
            },
            Self::default_publisher_config(),
        )
    }

    /// A sink with a publisher of its own made with `config` on
    /// `connection`. Keep `mandatory` on (the default) or unroutable
    /// messages are confirmed and lost.
    ///
    /// # Errors
    ///
    /// As [`Publisher::new`].
    pub fn new(
        connection: &Connection,
        route: RabbitRoute,
        config: PublisherConfig,
    ) -> Result<Self> {
        Ok(Self::with_publisher(
            Publisher::new(connection, config)?,
            None,
            route,
        ))
    }

    /// A sink on a connection of its own, made from `config` (name it with
    /// [`ConnectionConfig::with_name`] to find it in `rabbitmqctl`), closed
    /// when the sink is dropped.
    ///
    /// # Errors
    ///
    /// As [`Connection::with_config`] and [`Publisher::new`].
    pub fn connect(config: ConnectionConfig, route: RabbitRoute) -> Result<Self> {
        let connection = Connection::with_config(config)?;
        let publisher = Publisher::new(&connection, Self::default_publisher_config())?;
        Ok(Self::with_publisher(publisher, Some(connection), route))
    }

    fn with_publisher(
        publisher: Publisher,
        connection: Option<Connection>,
        route: RabbitRoute,
    ) -> Self {
        RabbitSink {
            publisher,
            connection,
            route,
            flush_timeout: Self::DEFAULT_FLUSH_TIMEOUT,
            sent: Vec::new(),
            carried: VecDeque::new(),
        }
    }

    /// The publisher configuration of [`to_queue`](Self::to_queue),
    /// [`to_exchange`](Self::to_exchange) and [`connect`](Self::connect):
    /// the publisher's defaults, but 1 s to close, so that closing the
    /// sink's owner while the broker is away is not held up (what was not
    /// confirmed was never reported safe).
    pub fn default_publisher_config() -> PublisherConfig {
        PublisherConfig::new().with_close_timeout(Duration::from_secs(1))
    }

    /// For [`RabbitRoute::Exchange`]: the routing key of messages without
    /// one (empty by default). Does nothing for a queue route.
    #[must_use]
    pub fn with_default_routing_key(mut self, routing_key: impl Into<String>) -> Self {
        if let RabbitRoute::Exchange {
            default_routing_key,
            ..
        } = &mut self.route
        {
            *default_routing_key = routing_key.into();
        }
        self
    }

    /// How long a flush waits for the confirms before it fails as a
    /// timeout (1 s by default; the messages stay with the publisher and
    /// are not published again when sent again). Keep it under the owner's
    /// close timeout.
    #[must_use]
    pub fn with_flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// Where the sink publishes.
    pub fn route(&self) -> &RabbitRoute {
        &self.route
    }

    /// How long a flush waits for the confirms.
    pub fn flush_timeout(&self) -> Duration {
        self.flush_timeout
    }

    /// The sink's publisher, for its [`stats`](Publisher::stats).
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// The sink's own connection, when it was made with
    /// [`connect`](Self::connect).
    pub fn connection(&self) -> Option<&Connection> {
        self.connection.as_ref()
    }

    /// Puts what a failed flush sent in front of what earlier failures
    /// left, so that sending the same messages again finds them in order.
    fn carry(&mut self, sent: Vec<Sent>) {
        let older = std::mem::take(&mut self.carried);
        self.carried = sent.into();
        self.carried.extend(older);
        self.carried.truncate(MAX_CARRIED);
    }
}

impl Sink for RabbitSink {
    fn send(&mut self, message: &Message) -> Result<()> {
        let state = match self.carried.iter().position(|c| c.message == *message) {
            Some(at) => {
                // What was carried in front of it is not being sent again
                // (its rows went elsewhere): forget it. A publish of it
                // still under way may land: at least once.
                self.carried.drain(..at);
                self.carried.pop_front().map(|c| c.state)
            }
            None => None,
        };
        let state = match state {
            Some(State::Failed) | None => {
                let (exchange, routing_key, own_route) = self.route.of(message);
                let receipt = self
                    .publisher
                    .send(exchange, routing_key, message.clone())?;
                State::Unsettled { receipt, own_route }
            }
            // Published before and confirmed, or still on its way: no copy.
            Some(state) => state,
        };
        self.sent.push(Sent {
            message: message.clone(),
            state,
        });
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let mut sent = std::mem::take(&mut self.sent);
        if sent.is_empty() {
            return Ok(());
        }
        // The publisher holds only this sink's messages: once it holds
        // none, every receipt has its answer. A timeout keeps the receipts
        // (waiting on one would use it up) for when they are sent again.
        if let Err(error) = self.publisher.flush(self.flush_timeout) {
            self.carry(sent);
            return Err(error);
        }
        let mut first_error = None;
        for s in &mut sent {
            s.state = match std::mem::replace(&mut s.state, State::Failed) {
                State::Unsettled { receipt, own_route } => {
                    match receipt.wait_timeout(Duration::ZERO) {
                        Ok(()) => State::Confirmed,
                        Err(error) => {
                            first_error.get_or_insert(if own_route && is_unroutable(&error) {
                                unroutable_by_own_key(&s.message, &error)
                            } else {
                                error
                            });
                            State::Failed
                        }
                    }
                }
                settled => settled,
            };
        }
        match first_error {
            None => Ok(()),
            Some(error) => {
                self.carry(sent);
                Err(error)
            }
        }
    }
}

/// The message's own fault: nothing is bound to its routing key.
fn unroutable_by_own_key(message: &Message, error: &Error) -> Error {
    Error::invalid(
        "routing_key",
        format!(
            "{:?}: no queue is bound to it: {error}",
            message.routing_key().unwrap_or_default()
        ),
    )
}

/// The publisher's error for a mandatory message no queue took.
fn is_unroutable(error: &Error) -> bool {
    // 312 is AMQP's NO_ROUTE.
    matches!(error, Error::Refused { code: 312, .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_come_from_the_queue_or_the_routing_key_never_the_key() {
        let queue = RabbitRoute::Queue("orders".into());
        let routed = Message::from("x")
            .with_key("id-1")
            .with_routing_key("order.placed");
        assert_eq!(queue.of(&routed), ("", "orders", false));
        let exchange = RabbitRoute::Exchange {
            exchange: "events".into(),
            default_routing_key: "misc".into(),
        };
        assert_eq!(exchange.of(&routed), ("events", "order.placed", true));
        let keyed_only = Message::from("x").with_key("order.placed");
        assert_eq!(exchange.of(&keyed_only), ("events", "misc", false));
    }

    #[test]
    fn a_broker_that_never_answers_is_a_flush_timeout_without_a_second_publish() {
        // Nothing listens on port 1: the publisher buffers and never
        // confirms.
        let connection = Connection::open("amqp://127.0.0.1:1").unwrap();
        let mut sink = RabbitSink::to_queue(&connection, "q")
            .unwrap()
            .with_flush_timeout(Duration::from_millis(20));
        let (a, b) = (Message::from("a"), Message::from("b"));
        sink.send(&a).unwrap();
        sink.send(&b).unwrap();
        let err = sink.flush().unwrap_err();
        assert!(err.is_transient(), "{err:?}");
        // Sent again: still two messages held by the publisher.
        sink.send(&a).unwrap();
        sink.send(&b).unwrap();
        assert_eq!(sink.publisher().buffered(), 2);
        assert!(sink.flush().is_err());
        // A new message is published; one sent again after it is not.
        sink.send(&Message::from("c")).unwrap();
        sink.send(&b).unwrap();
        assert_eq!(sink.publisher().buffered(), 3);
        drop(sink);
        connection.close().unwrap();
    }
}
