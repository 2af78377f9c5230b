//! The gormq surface: one [`Client`] with a supervised connection, a
//! confirmed publisher whose failed publishes are retried from a buffer, and
//! handler consumers that come back after every reconnect.
//!
//! gormq's `Init`/`Start` become [`Client::start`], `Publish` (which never
//! fails: a failed publish is queued for retry) becomes
//! [`Client::publish`] (which says when the retry buffer is full instead of
//! growing without bound), `AddConsumer` becomes [`Client::add_consumer`],
//! and `Stop` becomes [`Client::stop`], which stops the consumers, flushes
//! the publisher and closes the connection, in that order.

use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::message::Message;
use crate::rabbitmq::connection::{lock, Connection, ConnectionConfig};
use crate::rabbitmq::consumer::{self, Consumer, ConsumerOptions, Consumers};
use crate::rabbitmq::publisher::{Publisher, PublisherConfig, Refusal};
use crate::waiter::ConnectionWaiter;

/// gormq's `ConnectionOptions`, plus the service name for queue names.
///
/// ```
/// use std::time::Duration;
/// use syncmq::rabbitmq::ClientConfig;
///
/// let config = ClientConfig::new("amqp://guest:guest@127.0.0.1:5672/%2f", "billing")
///     .with_reconnect_interval(Duration::from_millis(200))
///     .with_retry_interval(Duration::from_secs(2));
/// ```
#[derive(Debug, Clone)]
pub struct ClientConfig {
    service: String,
    connection: ConnectionConfig,
    publisher: PublisherConfig,
}

impl ClientConfig {
    /// A client for `service` (the prefix of its queue names) on `url`.
    pub fn new(url: impl Into<String>, service: impl Into<String>) -> Self {
        let service = service.into();
        ClientConfig {
            connection: ConnectionConfig::new(url),
            publisher: PublisherConfig::default(),
            service,
        }
    }

    /// gormq's `ReconnectInterval`: the first reconnect backoff (it
    /// doubles up to 30 times this, capped at 30 s).
    #[must_use]
    pub fn with_reconnect_interval(mut self, interval: Duration) -> Self {
        let max = interval
            .saturating_mul(30)
            .min(Duration::from_secs(30))
            .max(interval);
        self.connection = self.connection.with_backoff(interval, max);
        self
    }

    /// gormq's `FailedMessageRetryInterval`: how long a nacked message waits
    /// before it is sent again (a lost connection resends at once).
    #[must_use]
    pub fn with_retry_interval(mut self, interval: Duration) -> Self {
        self.publisher = self.publisher.with_retry_interval(interval);
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

    /// Checks every setting; [`Client::start`] calls it too.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) naming the
    /// setting: an empty service name (it begins every queue name), or what
    /// [`ConnectionConfig::validate`] and [`PublisherConfig::validate`]
    /// refuse.
    pub fn validate(&self) -> Result<()> {
        if self.service.is_empty() {
            return Err(crate::Error::invalid(
                "service",
                "must not be empty: it begins every queue name",
            ));
        }
        self.connection.validate()?;
        self.publisher.validate()
    }
}

/// A RabbitMQ pub/sub client in the manner of gormq.
///
/// ```no_run
/// use syncmq::rabbitmq::{Client, ClientConfig, ConsumerOptions};
/// use syncmq::Message;
///
/// # fn main() -> syncmq::Result<()> {
/// let client = Client::start(ClientConfig::new("amqp://127.0.0.1", "billing"))?;
/// client.add_consumer(
///     ConsumerOptions::new("orders", "order.created").with_dlq(true),
///     |message: &Message| -> Result<(), String> {
///         println!("{} bytes", message.body().len());
///         Ok(())
///     },
/// )?;
/// client.publish("orders", "order.created", Message::new(b"{}".to_vec()))?;
/// client.stop()?;
/// # Ok(())
/// # }
/// ```
pub struct Client {
    service: String,
    connection: Connection,
    publisher: Publisher,
    consumers: Arc<Consumers>,
}

impl Client {
    /// Connects (in the background: an unreachable broker is retried) and
    /// starts the publisher and its retry loop.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a bad
    /// configuration.
    pub fn start(config: ClientConfig) -> Result<Client> {
        config.validate()?;
        let connection = Connection::with_config(config.connection)?;
        let publisher = Publisher::new(&connection, config.publisher)?;
        Ok(Client {
            service: config.service,
            connection,
            publisher,
            consumers: Arc::default(),
        })
    }

    /// gormq's `Publish`: hands the message over and returns at once,
    /// without waiting for the broker. `Ok` means the publisher holds the
    /// message, not that the broker has it: while the connection is down or
    /// the broker nacks it, it is retried from the buffer until confirmed.
    /// A message that can never be published (the broker refuses it, say a
    /// missing exchange, or no queue takes it with `mandatory` on) is not
    /// retried: it comes back on [`refusals`](Self::refusals) and the next
    /// [`flush`](Self::flush) or [`stop`](Self::stop) fails with
    /// [`Error::Rejected`](crate::Error::Rejected) counting it. Use
    /// [`publish_confirmed`](Self::publish_confirmed) to wait for the
    /// confirm.
    ///
    /// # Errors
    ///
    /// As [`Publisher::publish_nowait`]: a full buffer, never a silent drop.
    pub fn publish(&self, exchange: &str, routing_key: &str, message: Message) -> Result<()> {
        self.publisher
            .publish_nowait(exchange, routing_key, message)
    }

    /// Publishes and waits for the broker's confirm.
    ///
    /// # Errors
    ///
    /// As [`Publisher::publish`].
    pub fn publish_confirmed(
        &self,
        exchange: &str,
        routing_key: &str,
        message: Message,
    ) -> Result<()> {
        self.publisher.publish(exchange, routing_key, message)
    }

    /// gormq's `AddConsumer`: declares the queues (and DLQ) under this
    /// client's service name unless the options name one, and starts
    /// consuming. Failed messages go to the DLQ through this client's
    /// publisher.
    ///
    /// # Errors
    ///
    /// As [`Consumer::start`].
    pub fn add_consumer<F, E>(&self, options: ConsumerOptions, handler: F) -> Result<()>
    where
        F: Fn(&Message) -> std::result::Result<(), E> + Send + Sync + 'static,
        E: Display,
    {
        let options = if options.has_service() {
            options
        } else {
            options.with_service(self.service.clone())
        };
        let consumer = Consumer::on(
            self.connection.shared(),
            Some(self.publisher.clone()),
            options,
            handler,
        )?;
        lock(&self.consumers).push(consumer);
        Ok(())
    }

    /// Waits until every message published so far is confirmed or failed,
    /// and reports the refusals since the last report.
    ///
    /// # Errors
    ///
    /// As [`Publisher::flush`]: [`Error::Timeout`](crate::Error::Timeout)
    /// naming how many are still buffered,
    /// [`Error::Rejected`](crate::Error::Rejected) with how many
    /// [`publish`](Self::publish)es were refused and why.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.publisher.flush(timeout)
    }

    /// Every [`publish`](Self::publish) that will never be published, with
    /// its message and why (bounded; see [`Publisher::refusals`]).
    pub fn refusals(&self) -> crossbeam_channel::Receiver<Refusal> {
        self.publisher.refusals()
    }

    /// The publisher, for confirmed and pipelined publishes.
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

    /// gormq's `Stop`: stops the consumers, publishes what is buffered
    /// (within the publisher's close timeout), closes the connection.
    ///
    /// # Errors
    ///
    /// The first error of the three steps; all three are always attempted.
    /// The publisher's step fails with
    /// [`Error::Rejected`](crate::Error::Rejected) when publishes were
    /// refused that no [`flush`](Self::flush) reported.
    pub fn stop(&self) -> Result<()> {
        let consumers = consumer::stop_all(&self.consumers);
        let publisher = self.publisher.close();
        let connection = self.connection.close();
        consumers.and(publisher).and(connection)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            log::error!("stopping the client of service `{}`: {e}", self.service);
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("service", &self.service)
            .field("connection", &self.connection)
            .finish()
    }
}
