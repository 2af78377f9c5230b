//! [`RabbitStream`]: outbox rows to RabbitMQ through a confirmed
//! [`Publisher`] of the stream's own, one confirm round trip per batch.
//!
//! `send` hands the row's message to the publisher (persistent, mandatory)
//! and keeps its [`Confirmation`]; `flush` waits until the broker confirmed
//! every message sent so far. The dispatcher marks the rows dispatched only
//! after that, so a row is marked only once the broker has it.
//!
//! # Where a row goes ([`RabbitRoute`])
//!
//! - [`RabbitRoute::Queue`] (`RabbitStream::to_queue`): the default
//!   exchange and the queue's name as routing key; the message's key is not
//!   used for routing (it travels as the AMQP `message_id`).
//! - [`RabbitRoute::Exchange`] (`RabbitStream::to_exchange`): a fixed
//!   exchange, and the **message's key as routing key** (the usual outbox
//!   shape: `Message::new(body).with_key("order.placed")` to a topic
//!   exchange), or the route's default routing key for a message without
//!   a key.
//!
//! Headers, priority and expiry travel as AMQP properties, as with the
//! publisher; none of them picks the route.
//!
//! # Failures and what the dispatcher makes of them
//!
//! - **Nacks and lost connections** are the publisher's business: it puts
//!   the messages back in its retry buffer and resends them, in order,
//!   after the reconnect. The stream just sees confirms come late: a
//!   `flush` that does not see every confirm within the flush timeout
//!   fails as a timeout (stream down: retried for ever, never counted
//!   against a row). The messages stay in the publisher, and when the
//!   dispatcher sends those rows again the stream does **not** publish them
//!   a second time: it waits for the confirms it already has. So an outage
//!   costs no pile of copies, only the duplicates the broker itself may
//!   cause (a message it stored but whose confirm the dropped connection
//!   lost is resent by the publisher: at least once).
//! - A full publisher buffer or a broker that blocks publishing are
//!   [`Error::Busy`] at `send`: stream down, retried.
//! - **Unroutable** messages (mandatory publish, no queue bound): with
//!   [`RabbitRoute::Exchange`] the route came from the row's own key, so
//!   after the failed flush the next `send` of that row fails with
//!   [`Error::InvalidArgument`], which counts as an attempt: after
//!   `max_attempts` the row goes dead and the rows behind it go on. With
//!   [`RabbitRoute::Queue`] every row has the same route, so a missing
//!   queue is the destination being down: retried for ever, not counted.
//!   Declare queues and bindings before starting the outbox.
//! - An exchange that does not exist (the broker closes the channel on the
//!   publish) is the destination's fault too: retried, not counted.
//!
//! A confirmed row that a failed flush left unmarked is not published again
//! either: the stream remembers it until the row is sent again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::outbox::stream::EventStream;
use crate::outbox::OutboxRecord;
use crate::rabbitmq::{Connection, ConnectionConfig, Publisher, PublisherConfig};
use crate::Receipt;

/// How many confirmed-but-unmarked rows the stream remembers at most; past
/// it the memory is dropped (those rows are then published again).
const MAX_REMEMBERED: usize = 100_000;

/// Where a [`RabbitStream`] publishes each row. See the
/// [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RabbitRoute {
    /// Every row to this queue, through the default exchange.
    Queue(String),
    /// Every row to this exchange, with the message's key as routing key.
    Exchange {
        /// The exchange (it must exist).
        exchange: String,
        /// The routing key of messages without a key.
        default_routing_key: String,
    },
}

impl RabbitRoute {
    /// The exchange and routing key for `record`, and whether the route
    /// came from the row itself.
    fn of<'a>(&'a self, record: &'a OutboxRecord) -> (&'a str, &'a str, bool) {
        match self {
            RabbitRoute::Queue(queue) => ("", queue.as_str(), false),
            RabbitRoute::Exchange {
                exchange,
                default_routing_key,
            } => match record.message.key() {
                Some(key) => (exchange.as_str(), key, true),
                None => (exchange.as_str(), default_routing_key.as_str(), false),
            },
        }
    }
}

/// A sent row waiting for its confirm.
#[derive(Debug)]
struct Unsettled {
    confirmation: Receipt,
    /// The route came from the row's key: unroutable is the row's fault.
    keyed: bool,
}

/// Sends outbox rows to RabbitMQ, confirmed in bulk at each flush. See the
/// [module docs](self) for routing and failures.
///
/// ```no_run
/// use syncmq::outbox::{FjallOutboxStore, RabbitStream};
/// use syncmq::rabbitmq::{Connection, Declaration};
/// use syncmq::{Message, Outbox};
///
/// # fn main() -> syncmq::Result<()> {
/// let connection = Connection::open("amqp://guest:guest@127.0.0.1:5672/%2f")?;
/// connection.declare(vec![Declaration::queue("order-events")])?;
/// let stream = RabbitStream::to_queue(&connection, "order-events")?;
/// let outbox = Outbox::start(FjallOutboxStore::open("data/app")?, stream)?;
/// outbox.add(&Message::new(b"order 42 placed".to_vec()))?;
/// // ... the row is published, confirmed, then marked dispatched.
/// outbox.stop()?;
/// # Ok(())
/// # }
/// ```
pub struct RabbitStream {
    // Dropped in this order: the publisher before its connection.
    publisher: Publisher,
    connection: Option<Connection>,
    route: RabbitRoute,
    flush_timeout: Duration,
    /// Rows sent since the last good flush, in order.
    batch: Vec<u64>,
    /// Rows published and not yet known settled (kept across failed
    /// flushes, so a row sent again is not published again).
    unsettled: BTreeMap<u64, Unsettled>,
    /// Rows the broker confirmed whose flush failed for another row.
    confirmed: HashSet<u64>,
    /// Rows the broker could not route by their own key: their next send
    /// fails with this reason, counted against the row.
    refused: HashMap<u64, String>,
}

impl std::fmt::Debug for RabbitStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitStream")
            .field("route", &self.route)
            .field("unsettled", &self.unsettled.len())
            .finish_non_exhaustive()
    }
}

impl RabbitStream {
    /// The flush timeout when none is given.
    pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

    /// Every row to `queue` (default exchange), on a publisher of its own
    /// over `connection`, with [`default_publisher_config`](Self::default_publisher_config).
    /// Keep the connection open while the outbox runs.
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

    /// Every row to `exchange` with its message's key as routing key (an
    /// empty routing key for messages without a key).
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

    /// A stream with a publisher of its own made with `config` on
    /// `connection`. Keep `mandatory` on (the default) or unroutable rows
    /// are confirmed and lost.
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

    /// A stream on a connection of its own, made from `config` (name it
    /// with [`ConnectionConfig::with_name`] to find it in `rabbitmqctl`),
    /// closed when the stream is dropped.
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
        RabbitStream {
            publisher,
            connection,
            route,
            flush_timeout: Self::DEFAULT_FLUSH_TIMEOUT,
            batch: Vec::new(),
            unsettled: BTreeMap::new(),
            confirmed: HashSet::new(),
            refused: HashMap::new(),
        }
    }

    /// The publisher configuration of [`to_queue`](Self::to_queue) and
    /// [`to_exchange`](Self::to_exchange): the publisher's defaults, but 1 s
    /// to close, so that stopping the outbox while the broker is away is not
    /// held up (rows not yet confirmed are not marked and are sent again
    /// after the restart).
    pub fn default_publisher_config() -> PublisherConfig {
        PublisherConfig::new().with_close_timeout(Duration::from_secs(1))
    }

    /// For [`RabbitRoute::Exchange`]: the routing key of messages without a
    /// key (empty by default). Does nothing for a queue route.
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

    /// How long a flush waits for the confirms before it fails as a timeout
    /// (1 s by default; the rows are sent again, without a second publish,
    /// after the dispatcher's backoff). Keep it under the outbox's stop
    /// timeout.
    #[must_use]
    pub fn with_flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// The stream's publisher, for its [`stats`](Publisher::stats).
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// The stream's own connection, when it was made with
    /// [`connect`](Self::connect).
    pub fn connection(&self) -> Option<&Connection> {
        self.connection.as_ref()
    }
}

impl EventStream for RabbitStream {
    fn send(&mut self, record: &OutboxRecord) -> Result<()> {
        if let Some(reason) = self.refused.remove(&record.id) {
            return Err(Error::invalid("routing key", reason));
        }
        if self.confirmed.contains(&record.id) || self.unsettled.contains_key(&record.id) {
            // Published before and confirmed, or still on its way: no copy.
            self.batch.push(record.id);
            return Ok(());
        }
        let (exchange, routing_key, keyed) = self.route.of(record);
        let confirmation = self
            .publisher
            .send(exchange, routing_key, record.message.clone())?;
        self.unsettled.insert(
            record.id,
            Unsettled {
                confirmation,
                keyed,
            },
        );
        self.batch.push(record.id);
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let batch = std::mem::take(&mut self.batch);
        // Our publisher holds only our messages: once it holds none, every
        // confirmation has its answer (the reply is sent before the count
        // drops). A timeout keeps them all for the rows' next send.
        self.publisher.flush(self.flush_timeout)?;
        let mut first_error = None;
        for (id, unsettled) in std::mem::take(&mut self.unsettled) {
            match unsettled.confirmation.wait_timeout(Duration::ZERO) {
                Ok(()) => {
                    self.confirmed.insert(id);
                }
                Err(error) => {
                    if unsettled.keyed && is_unroutable(&error) {
                        self.refused.insert(id, error.to_string());
                    }
                    first_error.get_or_insert(error);
                }
            }
        }
        if let Some(error) = first_error {
            if self.confirmed.len() > MAX_REMEMBERED {
                self.confirmed.clear();
            }
            return Err(error);
        }
        for id in &batch {
            self.confirmed.remove(id);
        }
        Ok(())
    }
}

/// The publisher's error for a mandatory message no queue took.
fn is_unroutable(error: &Error) -> bool {
    // 312 is AMQP's NO_ROUTE.
    matches!(error, Error::Refused { code: 312, .. })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use crate::outbox::now_ms;

    fn record(key: Option<&str>) -> OutboxRecord {
        let mut message = Message::new(b"x".to_vec());
        if let Some(key) = key {
            message = message.with_key(key);
        }
        OutboxRecord {
            id: 1,
            message,
            created_at: now_ms(),
            attempts: 0,
            last_error: None,
        }
    }

    #[test]
    fn routes_come_from_the_queue_or_the_key() {
        let queue = RabbitRoute::Queue("orders".into());
        assert_eq!(queue.of(&record(Some("k"))), ("", "orders", false));
        let exchange = RabbitRoute::Exchange {
            exchange: "events".into(),
            default_routing_key: "misc".into(),
        };
        assert_eq!(
            exchange.of(&record(Some("order.placed"))),
            ("events", "order.placed", true)
        );
        assert_eq!(exchange.of(&record(None)), ("events", "misc", false));
    }

    #[test]
    fn a_broker_that_never_answers_is_a_flush_timeout_without_a_second_publish() {
        // Nothing listens on port 1: the publisher buffers and never
        // confirms.
        let connection = Connection::open("amqp://127.0.0.1:1").unwrap();
        let mut stream = RabbitStream::to_queue(&connection, "q")
            .unwrap()
            .with_flush_timeout(Duration::from_millis(20));
        stream.send(&record(None)).unwrap();
        let err = stream.flush().unwrap_err();
        assert!(err.is_transient(), "{err:?}");
        // Sent again: still one message held by the publisher.
        stream.send(&record(None)).unwrap();
        assert_eq!(stream.publisher().buffered(), 1);
        assert!(stream.flush().is_err());
        drop(stream);
        connection.close().unwrap();
    }
}
