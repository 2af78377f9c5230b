//! [`RabbitClient`] and [`RabbitClientConfig`]: the gormq surface, one
//! client with a supervised connection, a confirmed publisher whose failed
//! publishes are retried from a buffer, and handler consumers that come
//! back after every reconnect.

use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::message::Message;
use crate::rabbitmq::connection::{Connection, ConnectionConfig};
use crate::rabbitmq::consumer::{
    self, Consumer, ConsumerHandle, ConsumerOptions, Consumers, DeliveryInfo, Handler,
};
use crate::rabbitmq::publisher::{Publisher, PublisherConfig, Refusal};
use crate::rabbitmq::routed::Routed;
use crate::thread::lock;
use crate::waiter::ConnectionWaiter;

/// gormq's `ConnectionOptions`, plus the service name for queue names.
///
/// ```
/// use std::time::Duration;
/// use syncmq::rabbitmq::RabbitClientConfig;
///
/// let config = RabbitClientConfig::new("amqp://guest:guest@127.0.0.1:5672/%2f", "billing")
///     .with_first_reconnect_delay(Duration::from_millis(200))
///     .with_nack_retry_interval(Duration::from_secs(2))
///     .with_close_timeout(Duration::from_secs(3));
/// assert_eq!(config.service(), "billing");
/// assert_eq!(config.publisher().close_timeout(), Duration::from_secs(3));
/// config.validate()?;
/// # Ok::<(), syncmq::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RabbitClientConfig {
    service: String,
    connection: ConnectionConfig,
    publisher: PublisherConfig,
}

impl RabbitClientConfig {
    /// A client for `service` (the prefix of its queue names) on `url`,
    /// with the default [`ConnectionConfig`] and [`PublisherConfig`].
    pub fn new(url: impl Into<String>, service: impl Into<String>) -> Self {
        RabbitClientConfig {
            service: service.into(),
            connection: ConnectionConfig::new(url),
            publisher: PublisherConfig::default(),
        }
    }

    /// How long the connection waits before its first reconnect after a
    /// loss; each later attempt waits twice as long as the one before, up
    /// to 30 times this delay and never more than 30 s (less a random
    /// jitter of up to a quarter, so that many clients do not reconnect in
    /// step). gormq's `ReconnectInterval`, which waited the same interval
    /// before every attempt; [`ConnectionConfig::with_backoff`] sets both
    /// ends.
    #[must_use]
    pub fn with_first_reconnect_delay(mut self, delay: Duration) -> Self {
        let max = delay
            .saturating_mul(30)
            .min(Duration::from_secs(30))
            .max(delay);
        self.connection = self.connection.with_backoff(delay, max);
        self
    }

    /// How long the publisher waits before it sends a message the broker
    /// nacked again (see [`PublisherConfig::with_nack_retry_interval`];
    /// after [`PublisherConfig::with_nack_retries`] nacks it fails as
    /// [`Error::Busy`](crate::Error::Busy)). gormq's
    /// `FailedMessageRetryInterval`, which also paced resends after a lost
    /// connection: here those go out the moment the connection is back.
    #[must_use]
    pub fn with_nack_retry_interval(mut self, interval: Duration) -> Self {
        self.publisher = self.publisher.with_nack_retry_interval(interval);
        self
    }

    /// How long [`RabbitClient::close`] keeps publishing what is buffered,
    /// and then waits for the connection to close: the close timeout of
    /// both the publisher and the connection. Each consumer has its own
    /// ([`ConsumerOptions::with_close_timeout`]).
    #[must_use]
    pub fn with_close_timeout(mut self, timeout: Duration) -> Self {
        self.publisher = self.publisher.with_close_timeout(timeout);
        self.connection = self.connection.with_close_timeout(timeout);
        self
    }

    /// Replaces the whole connection configuration.
    #[must_use]
    pub fn with_connection(mut self, connection: ConnectionConfig) -> Self {
        self.connection = connection;
        self
    }

    /// Replaces the whole publisher configuration.
    #[must_use]
    pub fn with_publisher(mut self, publisher: PublisherConfig) -> Self {
        self.publisher = publisher;
        self
    }

    /// The service name that prefixes the queue names.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The connection configuration.
    pub fn connection(&self) -> &ConnectionConfig {
        &self.connection
    }

    /// The publisher configuration.
    pub fn publisher(&self) -> &PublisherConfig {
        &self.publisher
    }

    /// Checks every setting; [`RabbitClient::start`] calls it too.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the setting: an empty service name
    /// (it begins every queue name), or what
    /// [`ConnectionConfig::validate`] and [`PublisherConfig::validate`]
    /// refuse.
    pub fn validate(&self) -> Result<()> {
        if self.service.is_empty() {
            return Err(Error::invalid(
                "service",
                "must not be empty: it begins every queue name",
            ));
        }
        self.connection.validate()?;
        self.publisher.validate()
    }
}

/// A pub/sub client of the broker in the manner of gormq.
///
/// gormq's `Init`/`Start` become [`start`](Self::start); its `Publish`,
/// which never fails (a failed publish is queued for retry), becomes
/// [`publish_nowait`](Self::publish_nowait), which says when the retry
/// buffer is full instead of growing without bound; [`publish`](Self::publish)
/// waits for the broker's confirm. `AddConsumer` becomes
/// [`add_consumer`](Self::add_consumer), and `Stop` becomes
/// [`close`](Self::close), which closes the consumers, flushes the
/// publisher and closes the connection, in that order. Dropping the client
/// closes it too.
///
/// ```no_run
/// use syncmq::rabbitmq::{ConsumerOptions, RabbitClient, RabbitClientConfig};
/// use syncmq::Message;
///
/// # fn main() -> syncmq::Result<()> {
/// let client = RabbitClient::start(RabbitClientConfig::new("amqp://127.0.0.1", "billing"))?;
/// client.add_consumer(
///     ConsumerOptions::new("orders", "order.created").with_dead_letters(true),
///     |message: &Message| -> Result<(), String> {
///         println!("{} bytes", message.body().len());
///         Ok(())
///     },
/// )?;
/// client.publish("orders", "order.created", Message::new(b"{}".to_vec()))?; // confirmed
/// client.close()?;
/// # Ok(())
/// # }
/// ```
pub struct RabbitClient {
    service: String,
    connection: Connection,
    publisher: Publisher,
    consumers: Consumers,
}

impl RabbitClient {
    /// Connects (in the background: an unreachable broker is retried) and
    /// starts the publisher and its retry loop.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a bad configuration (see
    /// [`RabbitClientConfig::validate`]); [`Error::Io`] when a thread
    /// cannot start.
    pub fn start(config: RabbitClientConfig) -> Result<RabbitClient> {
        config.validate()?;
        let connection = Connection::with_config(config.connection)?;
        let publisher = Publisher::new(&connection, config.publisher)?;
        Ok(RabbitClient {
            service: config.service,
            connection,
            publisher,
            consumers: Consumers::default(),
        })
    }

    /// Publishes and returns once the broker confirmed the message.
    ///
    /// # Errors
    ///
    /// As [`Publisher::publish`].
    pub fn publish(&self, exchange: &str, routing_key: &str, message: Message) -> Result<()> {
        self.publisher.publish(exchange, routing_key, message)
    }

    /// As [`publish`](Self::publish), for a message that carries its route.
    ///
    /// # Errors
    ///
    /// As [`Publisher::publish`].
    pub fn publish_routed(&self, routed: Routed) -> Result<()> {
        let (exchange, message) = routed.into_parts();
        let key = message.routing_key().unwrap_or_default().to_string();
        self.publisher.publish(&exchange, &key, message)
    }

    /// As [`publish_nowait`](Self::publish_nowait), for a message that
    /// carries its route: gormq's `Publish(msg)`.
    ///
    /// # Errors
    ///
    /// As [`Publisher::publish_nowait`].
    pub fn publish_routed_nowait(&self, routed: Routed) -> Result<()> {
        let (exchange, message) = routed.into_parts();
        let key = message.routing_key().unwrap_or_default().to_string();
        self.publisher.publish_nowait(&exchange, &key, message)
    }

    /// gormq's `Publish`: hands the message over and returns at once,
    /// without waiting for the broker. `Ok` means the publisher holds the
    /// message, not that the broker has it: while the connection is down or
    /// the broker nacks it, it is retried from the buffer until confirmed.
    /// A message that can never be published (the broker refuses it, say a
    /// missing exchange, or no queue takes it with `mandatory` on) is not
    /// retried: it comes back on [`refusals`](Self::refusals) and the next
    /// [`flush`](Self::flush) or [`close`](Self::close) fails with
    /// [`Error::Rejected`] counting it.
    ///
    /// # Errors
    ///
    /// As [`Publisher::publish_nowait`]: a full buffer, never a silent drop.
    pub fn publish_nowait(
        &self,
        exchange: &str,
        routing_key: &str,
        message: Message,
    ) -> Result<()> {
        self.publisher
            .publish_nowait(exchange, routing_key, message)
    }

    /// gormq's `AddConsumer`: declares the queues (and the dead-letter
    /// queue) under this client's service name unless the options name
    /// one, and starts consuming. Retries and dead letters go through this
    /// client's publisher. The handle tells the consumer's stats and stops
    /// it alone; the client's [`close`](Self::close) stops it too.
    ///
    /// # Errors
    ///
    /// As [`Consumer::start`].
    pub fn add_consumer<F, E>(&self, options: ConsumerOptions, handler: F) -> Result<ConsumerHandle>
    where
        F: Fn(&Message) -> std::result::Result<(), E> + Send + Sync + 'static,
        E: Display,
    {
        self.add(options, &consumer::boxed_handler(handler))
    }

    /// As [`add_consumer`](Self::add_consumer), with a handler that is
    /// also told about each delivery (see
    /// [`Consumer::start_with_info`]).
    ///
    /// # Errors
    ///
    /// As [`Consumer::start`].
    pub fn add_consumer_with_info<F, E>(
        &self,
        options: ConsumerOptions,
        handler: F,
    ) -> Result<ConsumerHandle>
    where
        F: Fn(&Message, &DeliveryInfo) -> std::result::Result<(), E> + Send + Sync + 'static,
        E: Display,
    {
        self.add(options, &consumer::boxed_handler_with_info(handler))
    }

    fn add(&self, options: ConsumerOptions, handler: &Arc<Handler>) -> Result<ConsumerHandle> {
        let options = if options.has_service() {
            options
        } else {
            options.with_service(self.service.clone())
        };
        let consumer = Arc::new(Consumer::on(
            self.connection.shared(),
            Some(self.publisher.clone()),
            options,
            handler,
        )?);
        let mut consumers = lock(&self.consumers);
        // Those closed through their handles need no closing any more.
        consumers.retain(|c| !c.is_closed());
        consumers.push(consumer.clone());
        Ok(ConsumerHandle::new(consumer))
    }

    /// Waits until every message published so far is confirmed or failed,
    /// and reports the refusals since the last report.
    ///
    /// # Errors
    ///
    /// As [`Publisher::flush`]: [`Error::Timeout`] naming how many are
    /// still buffered, [`Error::Rejected`] with how many
    /// [`publish_nowait`](Self::publish_nowait)es were refused and why.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.publisher.flush(timeout)
    }

    /// Every [`publish_nowait`](Self::publish_nowait) that will never be
    /// published, with its message and why (bounded; see
    /// [`Publisher::refusals`]).
    pub fn refusals(&self) -> crossbeam_channel::Receiver<Refusal> {
        self.publisher.refusals()
    }

    /// The publisher, for pipelined publishes
    /// ([`send`](Publisher::send)).
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// The supervised connection.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The connection's waiter.
    pub fn waiter(&self) -> Arc<ConnectionWaiter> {
        self.connection.waiter()
    }

    /// gormq's `Stop`: closes the consumers, publishes what is buffered
    /// (within the publisher's close timeout), closes the connection.
    /// Calling it again does nothing.
    ///
    /// # Errors
    ///
    /// The first error of the three steps; all three are always attempted.
    /// The publisher's step fails with [`Error::Rejected`] when publishes
    /// were refused that no [`flush`](Self::flush) reported.
    pub fn close(&self) -> Result<()> {
        let consumers = consumer::close_all(&self.consumers);
        let publisher = self.publisher.close();
        let connection = self.connection.close();
        consumers.and(publisher).and(connection)
    }
}

impl Drop for RabbitClient {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::error!("closing the client of service `{}`: {e}", self.service);
        }
    }
}

impl std::fmt::Debug for RabbitClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitClient")
            .field("service", &self.service)
            .field("connection", &self.connection)
            .finish_non_exhaustive()
    }
}
