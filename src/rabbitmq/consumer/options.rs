//! [`ConsumerOptions`]: what a consumer consumes and how (gormq's
//! `ConsumerOption`), the queue names derived from them, and what they
//! need declared on the broker.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::rabbitmq::queue_arguments::{QueueArguments, QueueType, StreamOffset};
use crate::rabbitmq::topology::{Declaration, ExchangeKind};

/// What to consume and how: gormq's `ConsumerOption`.
///
/// The queue is durable and named `service:route:queue` unless set; with
/// dead letters on, a message whose handler failed on each of its
/// attempts ([`with_max_attempts`](Self::with_max_attempts)) goes to the
/// durable `service:route:dlq` queue (gormq's names; both can be set).
///
/// ```
/// use syncmq::rabbitmq::ConsumerOptions;
///
/// let options = ConsumerOptions::new("orders", "order.created")
///     .with_service("billing")
///     .with_prefetch(64)
///     .with_concurrency(4)
///     .with_dead_letters(true);
/// assert_eq!(options.queue(), "billing:order.created:queue");
/// assert_eq!(options.dead_letter_queue(), "billing:order.created:dlq");
/// // Dead letters go straight to their queue through the default exchange.
/// assert_eq!(options.dead_letter_routing_key(), "billing:order.created:dlq");
/// options.validate()?;
/// # Ok::<(), syncmq::Error>(())
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
    dead_letters: bool,
    dead_letter_queue: Option<String>,
    dead_letter_routing_key: Option<String>,
    close_timeout: Duration,
    queue_arguments: QueueArguments,
    stream_offset: Option<StreamOffset>,
    max_attempts: u32,
    retry_backoff: (Duration, Duration),
}

impl ConsumerOptions {
    /// Consume what `exchange` routes with `routing_key`. An empty exchange
    /// is the default exchange: the queue then gets what is published to
    /// `""` with its name as the routing key. Defaults: service `syncmq`,
    /// a durable topic exchange, prefetch 32, one handler thread, no dead
    /// letters, 5 s to close.
    pub fn new(exchange: impl Into<String>, routing_key: impl Into<String>) -> Self {
        ConsumerOptions {
            service: None,
            exchange: exchange.into(),
            exchange_kind: ExchangeKind::Topic,
            routing_key: routing_key.into(),
            queue: None,
            prefetch: 32,
            concurrency: 1,
            dead_letters: false,
            dead_letter_queue: None,
            dead_letter_routing_key: None,
            close_timeout: Duration::from_secs(5),
            queue_arguments: QueueArguments::new(),
            stream_offset: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
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

    /// Whether the messages whose handler failed on every attempt are
    /// dead-lettered: sent to the
    /// [`dead_letter_queue`](Self::dead_letter_queue) (declared durable)
    /// and acked, instead of dropped.
    #[must_use]
    pub fn with_dead_letters(mut self, on: bool) -> Self {
        self.dead_letters = on;
        self
    }

    /// A dead-letter queue name instead of `service:route:dlq`.
    #[must_use]
    pub fn with_dead_letter_queue(mut self, name: impl Into<String>) -> Self {
        self.dead_letter_queue = Some(name.into());
        self
    }

    /// Publish dead letters on the consumer's exchange with this routing
    /// key (the dead-letter queue is bound to the exchange on it) instead
    /// of straight to the dead-letter queue through the default exchange.
    /// Every queue whose binding matches the key gets them too (a `#`
    /// binding, another consumer's dead-letter queue bound on the same
    /// key): give each consumer a key of its own.
    #[must_use]
    pub fn with_dead_letter_routing_key(mut self, key: impl Into<String>) -> Self {
        self.dead_letter_routing_key = Some(key.into());
        self
    }

    /// How long a closing consumer waits for handlers to settle what they
    /// hold before it closes the channel (the broker requeues the rest).
    #[must_use]
    pub fn with_close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// The service name: as set, or the client's, or `syncmq`.
    pub fn service(&self) -> &str {
        self.service.as_deref().unwrap_or("syncmq")
    }

    pub(crate) fn has_service(&self) -> bool {
        self.service.is_some()
    }

    /// The exchange consumed from (`""`: the default exchange).
    pub fn exchange(&self) -> &str {
        &self.exchange
    }

    /// The exchange's type.
    pub fn exchange_kind(&self) -> ExchangeKind {
        self.exchange_kind
    }

    /// The routing key the queue is bound with.
    pub fn routing_key(&self) -> &str {
        &self.routing_key
    }

    /// The queue consumed: `service:route:queue` unless set.
    pub fn queue(&self) -> String {
        self.queue
            .clone()
            .unwrap_or_else(|| format!("{}:{}:queue", self.service(), self.routing_key))
    }

    /// How many messages may be unacked at once.
    pub fn prefetch(&self) -> u16 {
        self.prefetch
    }

    /// How many handler threads run.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Whether failed messages are dead-lettered.
    pub fn dead_letters(&self) -> bool {
        self.dead_letters
    }

    /// The dead-letter queue: `service:route:dlq` unless set.
    pub fn dead_letter_queue(&self) -> String {
        self.dead_letter_queue
            .clone()
            .unwrap_or_else(|| format!("{}:{}:dlq", self.service(), self.routing_key))
    }

    /// The routing key dead letters are published with: the dead-letter
    /// queue's name (on the default exchange) unless set with
    /// [`with_dead_letter_routing_key`](Self::with_dead_letter_routing_key).
    ///
    /// Until issue 11 every dead-letter queue of a service was bound to the
    /// consumer's exchange on one shared `service:dlq-route` key, so each
    /// failure landed in every dead-letter queue of the service and in any
    /// `#` binding. A queue bound that way by an older version keeps its
    /// binding on the broker; nothing publishes on that key any more.
    pub fn dead_letter_routing_key(&self) -> String {
        self.dead_letter_routing_key
            .clone()
            .unwrap_or_else(|| self.dead_letter_queue())
    }

    /// How long a closing consumer waits for handlers to settle.
    pub fn close_timeout(&self) -> Duration {
        self.close_timeout
    }

    /// Where failed messages are published: the exchange and routing key.
    /// By default the default exchange and the dead-letter queue's name,
    /// which reaches this consumer's dead-letter queue and no other queue.
    pub(super) fn dead_letter_target(&self) -> (String, String) {
        match &self.dead_letter_routing_key {
            Some(key) if !self.exchange.is_empty() => (self.exchange.clone(), key.clone()),
            _ => (String::new(), self.dead_letter_queue()),
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
        let queue = self.queue();
        if queue.is_empty() || queue.len() > 255 {
            return Err(Error::invalid("queue", "a queue name has 1 to 255 bytes"));
        }
        if self.exchange.is_empty() && self.queue.is_none() && self.routing_key.is_empty() {
            return Err(Error::invalid(
                "routing_key",
                "needed to name the queue when no queue is given",
            ));
        }
        self.validate_retries()
    }

    /// Everything this consumer needs on the broker.
    pub(super) fn declarations(&self) -> Vec<Declaration> {
        let mut out = Vec::new();
        let queue = self.queue();
        if !self.exchange.is_empty() {
            out.push(Declaration::exchange(&self.exchange, self.exchange_kind));
        }
        out.push(self.queue_declaration());
        if !self.exchange.is_empty() {
            out.push(Declaration::binding(
                &queue,
                &self.exchange,
                &self.routing_key,
            ));
        }
        if self.dead_letters {
            let dead_letter_queue = self.dead_letter_queue();
            out.push(Declaration::queue(&dead_letter_queue));
            // Only a key of the user's own needs a binding: by default dead
            // letters reach their queue by its name on the default exchange.
            if let (Some(key), false) = (&self.dead_letter_routing_key, self.exchange.is_empty()) {
                out.push(Declaration::binding(
                    &dead_letter_queue,
                    &self.exchange,
                    key,
                ));
            }
        }
        out
    }

    /// The queue's type (`x-queue-type`): [`QueueType::Quorum`] for a
    /// replicated queue, [`QueueType::Stream`] for a log read from an
    /// offset ([`with_stream_offset`](Self::with_stream_offset)). Shorthand
    /// for the type in [`with_queue_arguments`](Self::with_queue_arguments).
    #[must_use]
    pub fn with_queue_type(mut self, queue_type: QueueType) -> Self {
        self.queue_arguments = self.queue_arguments.with_type(queue_type);
        self
    }

    /// The arguments the consumer's queue is declared with (its type,
    /// delivery limit, broker-side dead-lettering, length limit...).
    /// [`Consumer::start`](super::Consumer::start) checks them
    /// ([`QueueArguments::validate`]: [`Error::InvalidArgument`] naming the
    /// argument), and fails with [`Error::Refused`] (406) naming the queue
    /// and the argument when the queue exists with other ones. Replaces
    /// a type set with [`with_queue_type`](Self::with_queue_type) before.
    #[must_use]
    pub fn with_queue_arguments(mut self, arguments: QueueArguments) -> Self {
        self.queue_arguments = arguments;
        self
    }

    /// Where a consumer of a stream queue starts reading
    /// (`x-stream-offset`); without it the broker starts at
    /// [`StreamOffset::Next`]. The consumer acks by hand with its prefetch,
    /// as a stream needs; an ack only moves the prefetch window on (the
    /// message stays in the stream). After a lost channel it resumes at
    /// the oldest delivery it had not settled (or after the newest it
    /// delivered), not at this offset again: at least once, without
    /// reading the stream from the start again. A new consumer (a
    /// restarted program) starts at this offset: the broker keeps no
    /// position for AMQP consumers.
    ///
    /// A stream cannot requeue: the broker answers a nack by closing the
    /// whole connection (540 `NOT_IMPLEMENTED`). So on a stream (this
    /// offset set, or [`QueueType::Stream`]) a failed handler's nack is
    /// sent as an ack, with a WARN; the message stays in the stream at its
    /// offset. Turn [`with_dead_letters`](Self::with_dead_letters) on to
    /// keep failures somewhere.
    #[must_use]
    pub fn with_stream_offset(mut self, offset: StreamOffset) -> Self {
        self.stream_offset = Some(offset);
        self
    }

    /// The arguments the queue is declared with.
    pub fn queue_arguments(&self) -> &QueueArguments {
        &self.queue_arguments
    }

    /// Where a stream consumer starts, when set.
    pub fn stream_offset(&self) -> Option<StreamOffset> {
        self.stream_offset
    }

    /// The declaration of the consumed queue, with its arguments.
    fn queue_declaration(&self) -> Declaration {
        Declaration::queue_with(self.queue(), self.queue_arguments.clone())
    }

    /// How many times a message is handled before it counts as poison (at
    /// least 1; 1 means no retry; default 3). A failed attempt with
    /// attempts left is retried after [`with_retry_backoff`]'s wait; the
    /// last failure dead-letters the message, or drops it (with an ERROR
    /// log) when dead letters are off. Watermill's `Retry` middleware and
    /// poison queue, rather than gormq's ack of a failed message. A stream
    /// gets one attempt whatever this says: it cannot requeue, and a
    /// publish would append a copy for every reader.
    ///
    /// [`with_retry_backoff`]: Self::with_retry_backoff
    #[must_use]
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// The wait before each retry: `initial` before the second attempt,
    /// doubling up to `max` (less up to a quarter of jitter). Default
    /// 100 ms doubling to 5 s.
    #[must_use]
    pub fn with_retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.retry_backoff = (initial, max);
        self
    }

    /// How many times a message is handled at most.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The first and the longest wait before a retry.
    pub fn retry_backoff(&self) -> (Duration, Duration) {
        self.retry_backoff
    }

    /// The retry options' part of [`validate`](Self::validate).
    fn validate_retries(&self) -> Result<()> {
        if self.max_attempts == 0 {
            return Err(Error::invalid(
                "max_attempts",
                "must be at least 1 (1 handles each message once, without retry)",
            ));
        }
        let (initial, max) = self.retry_backoff;
        if initial > max {
            return Err(Error::invalid(
                "retry_backoff",
                format!("the initial wait {initial:?} is longer than the longest {max:?}"),
            ));
        }
        if max > MAX_RETRY_BACKOFF {
            return Err(Error::invalid(
                "retry_backoff",
                format!(
                    "the longest wait {max:?} is over {MAX_RETRY_BACKOFF:?}: the message is held \
                     unacked meanwhile, and the broker's consumer_timeout (30 min by default) \
                     would close the channel"
                ),
            ));
        }
        Ok(())
    }
}

/// How many times a message is handled by default.
const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// The first and the longest wait before a retry by default.
const DEFAULT_RETRY_BACKOFF: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(5));
/// The longest wait before a retry that options may ask for.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(600);
