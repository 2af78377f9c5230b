//! Consumers: prefetch, durable `service:route:queue` queues, a
//! `service:route:dlq` dead-letter queue, handlers on our own threads, and
//! consumption that resumes by itself after every reconnect.
//!
//! Each consumer has one channel-owner thread (`syncmq-rmq-consume:<queue>`)
//! that alone touches its amiquip channel: it sets the prefetch (`qos`,
//! before `basic_consume`, as RabbitMQ applies it to consumers created
//! after), turns each AMQP delivery into a [`Delivery`] whose ack and nack
//! come back to it as commands, and applies them. A delivery is acked on the
//! channel it came from or not at all: after a reconnect its tag means
//! nothing, so its ack fails with an error and the broker redelivers the
//! message.
//!
//! The handler form ([`Consumer::start`], gormq's `AddConsumer`) runs the
//! handler on `concurrency` worker threads (with concurrency 1, on the
//! channel-owner thread itself, which saves two hand-offs per message). A
//! handler that returns `Err` or panics sends the message to its consumer's
//! own dead-letter queue (a confirmed publish on the default exchange with
//! the DLQ's name as the key, so no binding on the consumer's exchange and
//! no other consumer's DLQ sees it) and then acks it; with no DLQ, or when
//! that publish fails, the message is nacked with requeue. Never more than
//! `prefetch` messages are unacked at once.

use std::fmt::Display;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver};

use crate::error::{Error, Result};
use crate::message::{Delivery, Message};
use crate::rabbitmq::connection::{lock, Connection, Shared};
use crate::rabbitmq::publisher::{Publisher, PublisherConfig};
use crate::rabbitmq::topology::{Declaration, ExchangeKind};
use crate::thread::{self, StopToken, Stopper, Worker};

mod owner;

pub(crate) use owner::{Counters, Owner};

/// What to consume and how: gormq's `ConsumerOption`.
///
/// ```
/// use syncmq::rabbitmq::ConsumerOptions;
///
/// let options = ConsumerOptions::new("orders", "order.created")
///     .with_service("billing")
///     .with_prefetch(64)
///     .with_concurrency(4)
///     .with_dlq(true);
/// assert_eq!(options.queue_name(), "billing:order.created:queue");
/// assert_eq!(options.dlq_name(), "billing:order.created:dlq");
/// // Dead letters go straight to the DLQ through the default exchange.
/// assert_eq!(options.dlq_routing_key(), "billing:order.created:dlq");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerOptions {
    service: Option<String>,
    exchange: String,
    exchange_kind: ExchangeKind,
    routing_key: String,
    queue: Option<String>,
    prefetch: u16,
    concurrency: usize,
    dlq: bool,
    dlq_name: Option<String>,
    dlq_routing_key: Option<String>,
    grace: Duration,
}

impl ConsumerOptions {
    /// Consume what `exchange` routes with `routing_key`. An empty exchange
    /// is the default exchange: the queue then gets what is published to
    /// `""` with its name as the routing key. Defaults: service `syncmq`,
    /// a durable topic exchange, prefetch 32, one handler thread, no DLQ.
    pub fn new(exchange: impl Into<String>, routing_key: impl Into<String>) -> Self {
        ConsumerOptions {
            service: None,
            exchange: exchange.into(),
            exchange_kind: ExchangeKind::Topic,
            routing_key: routing_key.into(),
            queue: None,
            prefetch: 32,
            concurrency: 1,
            dlq: false,
            dlq_name: None,
            dlq_routing_key: None,
            grace: Duration::from_secs(5),
        }
    }

    /// The service name that prefixes the queue names.
    #[must_use]
    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
        self
    }

    /// The exchange's type, used to declare it (default: topic).
    #[must_use]
    pub fn with_exchange_kind(mut self, kind: ExchangeKind) -> Self {
        self.exchange_kind = kind;
        self
    }

    /// A queue name instead of `service:route:queue`.
    #[must_use]
    pub fn with_queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// How many messages may be delivered and not yet acked (at least 1).
    /// Recommended: a few times `concurrency`.
    #[must_use]
    pub fn with_prefetch(mut self, prefetch: u16) -> Self {
        self.prefetch = prefetch;
        self
    }

    /// How many handler threads run (1 to 256).
    #[must_use]
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Whether failed messages go to a dead-letter queue.
    #[must_use]
    pub fn with_dlq(mut self, dlq: bool) -> Self {
        self.dlq = dlq;
        self
    }

    /// A DLQ name instead of `service:route:dlq`.
    #[must_use]
    pub fn with_dlq_name(mut self, name: impl Into<String>) -> Self {
        self.dlq_name = Some(name.into());
        self
    }

    /// Publish dead letters on the consumer's exchange with this routing
    /// key (the DLQ is bound to the exchange on it) instead of straight to
    /// the DLQ through the default exchange. Every queue whose binding
    /// matches the key gets them too (a `#` binding, another consumer's DLQ
    /// bound on the same key): give each consumer a key of its own.
    #[must_use]
    pub fn with_dlq_routing_key(mut self, key: impl Into<String>) -> Self {
        self.dlq_routing_key = Some(key.into());
        self
    }

    /// How long a stopping consumer waits for handlers to settle what they
    /// hold before it closes the channel (the broker requeues the rest).
    #[must_use]
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The service name: as set, or the client's, or `syncmq`.
    pub fn service(&self) -> &str {
        self.service.as_deref().unwrap_or("syncmq")
    }

    pub(crate) fn has_service(&self) -> bool {
        self.service.is_some()
    }

    /// The queue consumed: `service:route:queue` unless set.
    pub fn queue_name(&self) -> String {
        self.queue
            .clone()
            .unwrap_or_else(|| format!("{}:{}:queue", self.service(), self.routing_key))
    }

    /// The dead-letter queue: `service:route:dlq` unless set.
    pub fn dlq_name(&self) -> String {
        self.dlq_name
            .clone()
            .unwrap_or_else(|| format!("{}:{}:dlq", self.service(), self.routing_key))
    }

    /// The routing key dead letters are published with: the DLQ's name
    /// (on the default exchange) unless set with
    /// [`with_dlq_routing_key`](Self::with_dlq_routing_key).
    ///
    /// Until issue 11 every DLQ of a service was bound to the consumer's
    /// exchange on one shared `service:dlq-route` key, so each failure
    /// landed in every DLQ of the service and in any `#` binding. A DLQ
    /// bound that way by an older version keeps its binding on the broker;
    /// nothing publishes on that key any more.
    pub fn dlq_routing_key(&self) -> String {
        self.dlq_routing_key
            .clone()
            .unwrap_or_else(|| self.dlq_name())
    }

    /// Where failed messages are published: the exchange and routing key.
    /// By default the default exchange and the DLQ's name, which reaches
    /// this consumer's DLQ and no other queue.
    fn dlq_target(&self) -> (String, String) {
        match &self.dlq_routing_key {
            Some(key) if !self.exchange.is_empty() => (self.exchange.clone(), key.clone()),
            _ => (String::new(), self.dlq_name()),
        }
    }

    /// Checks every option; starting a consumer calls it too.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the option: a zero prefetch, a
    /// concurrency outside 1 to 256, a queue name outside 1 to 255 bytes,
    /// no routing key to name the queue by when no queue is given.
    pub fn validate(&self) -> Result<()> {
        if self.prefetch == 0 {
            return Err(Error::invalid(
                "prefetch",
                "must be at least 1 (0 would mean no limit at all)",
            ));
        }
        if self.concurrency == 0 || self.concurrency > 256 {
            return Err(Error::invalid("concurrency", "must be between 1 and 256"));
        }
        if self.queue_name().is_empty() || self.queue_name().len() > 255 {
            return Err(Error::invalid("queue", "a queue name has 1 to 255 bytes"));
        }
        if self.exchange.is_empty() && self.queue.is_none() && self.routing_key.is_empty() {
            return Err(Error::invalid(
                "routing_key",
                "needed to name the queue when no queue is given",
            ));
        }
        Ok(())
    }

    /// Everything this consumer needs on the broker.
    pub(crate) fn declarations(&self) -> Vec<Declaration> {
        let mut out = Vec::new();
        let queue = self.queue_name();
        if !self.exchange.is_empty() {
            out.push(Declaration::exchange(&self.exchange, self.exchange_kind));
        }
        out.push(Declaration::queue(&queue));
        if !self.exchange.is_empty() {
            out.push(Declaration::binding(
                &queue,
                &self.exchange,
                &self.routing_key,
            ));
        }
        if self.dlq {
            let dlq = self.dlq_name();
            out.push(Declaration::queue(&dlq));
            // Only a key of the user's own needs a binding: by default dead
            // letters reach the DLQ by its name on the default exchange.
            if let (Some(key), false) = (&self.dlq_routing_key, self.exchange.is_empty()) {
                out.push(Declaration::binding(&dlq, &self.exchange, key));
            }
        }
        out
    }
}

type Handler = dyn Fn(&Message) -> std::result::Result<(), String> + Send + Sync;

/// A running consumer with handler threads (see [`Consumer::start`]).
/// Dropping it stops it.
pub struct Consumer {
    queue: String,
    stopper: Stopper,
    owner: Option<Worker<()>>,
    handlers: Vec<Worker<()>>,
    counters: Arc<Counters>,
    grace: Duration,
    /// A DLQ publisher of its own when not given one.
    own_publisher: Option<Publisher>,
}

impl Consumer {
    /// Declares the queues (recorded for every reconnect) and starts
    /// consuming: `handler` runs on `concurrency` threads of ours. `Ok`
    /// acks; `Err` or a panic sends the message to the DLQ and acks, or
    /// nacks with requeue when there is no DLQ.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for bad options; [`Error::Refused`] when
    /// the broker refused a declaration.
    pub fn start<F, E>(
        connection: &Connection,
        options: ConsumerOptions,
        handler: F,
    ) -> Result<Self>
    where
        F: Fn(&Message) -> std::result::Result<(), E> + Send + Sync + 'static,
        E: Display,
    {
        Consumer::on(connection.shared(), None, options, handler)
    }

    pub(crate) fn on<F, E>(
        shared: Arc<Shared>,
        publisher: Option<Publisher>,
        options: ConsumerOptions,
        handler: F,
    ) -> Result<Self>
    where
        F: Fn(&Message) -> std::result::Result<(), E> + Send + Sync + 'static,
        E: Display,
    {
        options.validate()?;
        shared.declare(options.declarations())?;
        let mut own_publisher = None;
        let dlq = if options.dlq {
            let publisher = match publisher {
                Some(p) => p,
                None => {
                    let p = Publisher::on(shared.clone(), PublisherConfig::default())?;
                    own_publisher = Some(p.clone());
                    p
                }
            };
            Some((publisher, options.dlq_target()))
        } else {
            None
        };
        let handler: Arc<Handler> =
            Arc::new(move |m: &Message| handler(m).map_err(|e| e.to_string()));
        let queue = options.queue_name();
        let (stopper, stop) = thread::stop_signal();
        let counters = Arc::new(Counters::default());
        // Never more than `prefetch` deliveries exist, so this never fills.
        let (jobs_tx, jobs) = crossbeam_channel::bounded(usize::from(options.prefetch));
        let mut handlers = Vec::with_capacity(options.concurrency);
        let worker = |jobs: Receiver<Delivery>| HandlerWorker {
            queue: queue.clone(),
            jobs,
            stop: stop.clone(),
            handler: handler.clone(),
            dlq: dlq.clone(),
            counters: counters.clone(),
        };
        // One handler runs on the channel owner's thread (ours too): that
        // saves two thread hand-offs per message.
        let inline: Option<Box<dyn Fn(Delivery) + Send>> = if options.concurrency == 1 {
            let worker = worker(jobs.clone());
            Some(Box::new(move |delivery| worker.handle(delivery)))
        } else {
            for i in 0..options.concurrency {
                let worker = worker(jobs.clone());
                handlers.push(thread::spawn(
                    format!("rmq-handler-{i}:{queue}"),
                    move || worker.run(),
                )?);
            }
            None
        };
        let owner = Owner {
            shared,
            queue: queue.clone(),
            prefetch: options.prefetch,
            grace: options.grace,
            output: jobs_tx,
            output_rx: jobs,
            inline,
            stop,
            counters: counters.clone(),
        };
        let owner = thread::spawn(format!("rmq-consume:{queue}"), move || owner.run())?;
        Ok(Consumer {
            queue,
            stopper,
            owner: Some(owner),
            handlers,
            counters,
            grace: options.grace,
            own_publisher,
        })
    }

    /// The queue consumed.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// Messages delivered to this consumer so far (redeliveries included).
    pub fn delivered(&self) -> u64 {
        self.counters.delivered.load(Ordering::Relaxed)
    }

    /// Messages whose handler succeeded.
    pub fn handled(&self) -> u64 {
        self.counters.handled.load(Ordering::Relaxed)
    }

    /// Messages whose handler failed.
    pub fn failed(&self) -> u64 {
        self.counters.failed.load(Ordering::Relaxed)
    }

    /// Failed messages published to the DLQ.
    pub fn dead_lettered(&self) -> u64 {
        self.counters.dead_lettered.load(Ordering::Relaxed)
    }

    /// Stops consuming: handlers finish the message they hold, what they
    /// hold is settled within the grace period, the rest is requeued by the
    /// broker; then every thread is joined.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when a thread did not stop in time (a handler
    /// still running).
    pub fn stop(&mut self) -> Result<()> {
        self.stopper.stop();
        let deadline = Instant::now() + self.grace + Duration::from_secs(5);
        let mut result = Ok(());
        for worker in self.handlers.drain(..) {
            result = result.and(worker.join_deadline(deadline));
        }
        if let Some(owner) = self.owner.take() {
            result = result.and(owner.join_deadline(deadline));
        }
        if let Some(publisher) = self.own_publisher.take() {
            result = result.and(publisher.close());
        }
        result
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            log::error!("stopping the consumer of `{}`: {e}", self.queue);
        }
    }
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("queue", &self.queue)
            .finish()
    }
}

struct HandlerWorker {
    queue: String,
    jobs: Receiver<Delivery>,
    stop: StopToken,
    handler: Arc<Handler>,
    dlq: Option<(Publisher, (String, String))>,
    counters: Arc<Counters>,
}

impl HandlerWorker {
    fn run(self) {
        loop {
            let delivery = select! {
                recv(self.jobs) -> d => match d { Ok(d) => d, Err(_) => break },
                recv(self.stop.receiver()) -> _ => break,
            };
            self.handle(delivery);
        }
    }

    fn handle(&self, delivery: Delivery) {
        let outcome = catch_unwind(AssertUnwindSafe(|| (self.handler)(delivery.message())))
            .unwrap_or_else(|panic| {
                Err(format!(
                    "handler panicked: {}",
                    crate::thread::panic_message(panic.as_ref())
                ))
            });
        let settled = match outcome {
            Ok(()) => {
                self.counters.handled.fetch_add(1, Ordering::Relaxed);
                delivery.ack()
            }
            Err(reason) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                match &self.dlq {
                    Some((publisher, (exchange, key))) => {
                        let message = delivery
                            .message()
                            .clone()
                            .with_header("x-failure-reason", reason.clone());
                        match publisher.publish(exchange, key, message) {
                            Ok(()) => {
                                log::warn!(
                                    "handler for `{}` failed ({reason}); message sent to the DLQ",
                                    self.queue
                                );
                                self.counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
                                delivery.ack()
                            }
                            Err(e) => {
                                log::error!(
                                    "handler for `{}` failed ({reason}) and the DLQ publish failed ({e}); requeued",
                                    self.queue
                                );
                                delivery.nack(true)
                            }
                        }
                    }
                    None => {
                        log::warn!("handler for `{}` failed ({reason}); requeued", self.queue);
                        delivery.nack(true)
                    }
                }
            }
        };
        if let Err(e) = settled {
            log::debug!("consumer of `{}`: {e}", self.queue);
        }
    }
}

/// Shared state of the handler consumers of a client, for `Client::stop`.
pub(crate) type Consumers = Mutex<Vec<Consumer>>;

pub(crate) fn stop_all(consumers: &Consumers) -> Result<()> {
    let mut result = Ok(());
    for mut consumer in lock(consumers).drain(..) {
        result = result.and(consumer.stop());
    }
    result
}
