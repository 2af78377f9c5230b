//! [`QueueArguments`]: the `x-` arguments a queue is declared with (its
//! type, priorities, length limits, dead-lettering, single active consumer,
//! TTL), typed so that a caller never builds an AMQP field table, and
//! checked before anything reaches the broker; and [`StreamOffset`], where
//! a consumer of a stream queue starts.
//!
//! The broker compares the arguments of a redeclare with those the queue
//! has and closes the channel on a difference (406 `PRECONDITION_FAILED`,
//! naming the argument): that is an [`Error::Refused`] from the declare,
//! naming the queue. [`QueueArguments::validate`] refuses what the broker
//! would refuse (or silently ignore) for a queue type, before the broker
//! sees it: the gormq and Watermill RabbitMQ clients pass such tables
//! through unchecked.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use amiquip::{AmqpValue, FieldTable};

use crate::error::{Error, Result};
use crate::rabbitmq::amqp::MAX_AMQP_PRIORITY;

/// The type of a queue: `x-queue-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueType {
    /// A classic queue (the broker's default): one node, priorities,
    /// every overflow mode.
    Classic,
    /// A quorum queue: replicated with Raft, a delivery limit and
    /// at-least-once dead-lettering; no priorities (RabbitMQ 3.10).
    Quorum,
    /// A stream: an append-only log that consumers read from an offset
    /// ([`StreamOffset`]) without removing messages; needs manual acks
    /// and a prefetch (the consumer always has both), and a durable queue
    /// that is neither exclusive nor auto-delete (every queue a
    /// [`Declaration`](crate::rabbitmq::Declaration) declares is). A
    /// stream cannot requeue: the consumer sends a nack as an ack.
    Stream,
}

impl QueueType {
    /// The `x-queue-type` value: `classic`, `quorum` or `stream`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
            QueueType::Stream => "stream",
        }
    }
}

/// What a queue at its length limit does with another message:
/// `x-overflow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Overflow {
    /// Drops (or dead-letters) the oldest message: the broker's default.
    DropHead,
    /// Refuses the new message: the broker nacks a confirmed publish, and
    /// the [`Publisher`](crate::rabbitmq::Publisher) fails it with
    /// [`Error::Busy`] instead of dropping it.
    RejectPublish,
    /// As [`RejectPublish`](Self::RejectPublish), and dead-letters the
    /// refused message (classic queues only).
    RejectPublishDlx,
}

impl Overflow {
    /// The `x-overflow` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Overflow::DropHead => "drop-head",
            Overflow::RejectPublish => "reject-publish",
            Overflow::RejectPublishDlx => "reject-publish-dlx",
        }
    }
}

/// The value of an argument set with [`QueueArguments::with_argument`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ArgumentValue {
    /// An integer (sent as an AMQP signed 64-bit integer).
    Int(i64),
    /// A string (sent as an AMQP long string).
    Str(String),
    /// A boolean.
    Bool(bool),
}

impl From<i64> for ArgumentValue {
    fn from(v: i64) -> Self {
        ArgumentValue::Int(v)
    }
}

impl From<&str> for ArgumentValue {
    fn from(v: &str) -> Self {
        ArgumentValue::Str(v.to_string())
    }
}

impl From<String> for ArgumentValue {
    fn from(v: String) -> Self {
        ArgumentValue::Str(v)
    }
}

impl From<bool> for ArgumentValue {
    fn from(v: bool) -> Self {
        ArgumentValue::Bool(v)
    }
}

impl ArgumentValue {
    fn to_amqp(&self) -> AmqpValue {
        match self {
            ArgumentValue::Int(n) => AmqpValue::LongLongInt(*n),
            ArgumentValue::Str(s) => AmqpValue::LongString(s.clone()),
            ArgumentValue::Bool(b) => AmqpValue::Boolean(*b),
        }
    }
}

/// The arguments a queue is declared with. Empty by default (a classic
/// queue as the broker makes it); each `with_` sets one `x-` argument.
///
/// ```
/// use std::time::Duration;
/// use syncmq::rabbitmq::{Declaration, Overflow, QueueArguments, QueueType};
///
/// // A replicated queue that dead-letters a message after 5 deliveries.
/// let orders = QueueArguments::new()
///     .with_type(QueueType::Quorum)
///     .with_delivery_limit(5)
///     .with_dead_letter_exchange("")
///     .with_dead_letter_routing_key("orders.dlq");
/// orders.validate()?;
/// let declaration = Declaration::queue_with("orders", orders);
///
/// // A bounded classic queue: a publish beyond 10,000 messages fails.
/// let bounded = QueueArguments::new()
///     .with_max_length(10_000)
///     .with_overflow(Overflow::RejectPublish)
///     .with_message_ttl(Duration::from_secs(3600));
/// bounded.validate()?;
///
/// // Priorities are not for quorum queues (RabbitMQ 3.10).
/// let wrong = QueueArguments::new().with_type(QueueType::Quorum).with_max_priority(9);
/// assert!(wrong.validate().is_err());
/// # Ok::<(), syncmq::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[must_use]
pub struct QueueArguments {
    queue_type: Option<QueueType>,
    max_priority: Option<u8>,
    delivery_limit: Option<u32>,
    dead_letter_exchange: Option<String>,
    dead_letter_routing_key: Option<String>,
    single_active_consumer: bool,
    max_length: Option<u64>,
    max_length_bytes: Option<u64>,
    overflow: Option<Overflow>,
    message_ttl: Option<Duration>,
    queue_version: Option<u8>,
    other: BTreeMap<String, ArgumentValue>,
}

impl QueueArguments {
    /// No arguments.
    pub fn new() -> Self {
        Self::default()
    }

    /// `x-queue-type`.
    pub fn with_type(mut self, queue_type: QueueType) -> Self {
        self.queue_type = Some(queue_type);
        self
    }

    /// `x-max-priority`: a priority queue with levels 0 to `max` (1 to
    /// 255; classic queues only). A [`Message`](crate::Message)'s priority
    /// maps to AMQP 0 to 9 (`9 - min(priority, 9)`: ours 0 is the
    /// highest), so a `max` above 9 only costs the broker memory, and one
    /// below 9 folds our lower levels together: 9 is the value to use.
    pub fn with_max_priority(mut self, max: u8) -> Self {
        self.max_priority = Some(max);
        self
    }

    /// `x-delivery-limit` (quorum queues): after this many deliveries
    /// that were not acked (nacked with requeue, or outstanding when a
    /// consumer's channel closed) the message is dead-lettered, or
    /// dropped without a dead-letter exchange. The broker counts them in
    /// the `x-delivery-count` header it adds to a redelivery.
    pub fn with_delivery_limit(mut self, limit: u32) -> Self {
        self.delivery_limit = Some(limit);
        self
    }

    /// `x-dead-letter-exchange`: where the broker sends a message that is
    /// rejected without requeue, expired, over the length limit or over
    /// the delivery limit. `""` is the default exchange (with
    /// [`with_dead_letter_routing_key`](Self::with_dead_letter_routing_key)
    /// naming the queue). Dead-lettering is at most once, except on a
    /// quorum queue with `x-dead-letter-strategy` `at-least-once` (set it
    /// with [`with_argument`](Self::with_argument); the broker wants
    /// [`Overflow::RejectPublish`] with it).
    pub fn with_dead_letter_exchange(mut self, exchange: impl Into<String>) -> Self {
        self.dead_letter_exchange = Some(exchange.into());
        self
    }

    /// `x-dead-letter-routing-key`: the routing key dead letters get
    /// instead of their own (needs a dead-letter exchange).
    pub fn with_dead_letter_routing_key(mut self, key: impl Into<String>) -> Self {
        self.dead_letter_routing_key = Some(key.into());
        self
    }

    /// `x-single-active-consumer`: only one consumer at a time gets
    /// messages; the others wait and one takes over when it goes (classic
    /// and quorum queues).
    pub fn with_single_active_consumer(mut self, on: bool) -> Self {
        self.single_active_consumer = on;
        self
    }

    /// `x-max-length`: at most this many ready messages (classic and
    /// quorum queues); what happens to more is the
    /// [`with_overflow`](Self::with_overflow) mode.
    pub fn with_max_length(mut self, messages: u64) -> Self {
        self.max_length = Some(messages);
        self
    }

    /// `x-max-length-bytes`: at most this many bytes of ready message
    /// bodies (for a stream: of the whole log, whose oldest segments go).
    pub fn with_max_length_bytes(mut self, bytes: u64) -> Self {
        self.max_length_bytes = Some(bytes);
        self
    }

    /// `x-overflow`: what a full queue does with another message.
    pub fn with_overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = Some(overflow);
        self
    }

    /// `x-message-ttl`: a message older than this in the queue expires
    /// (dead-lettered, or dropped); whole milliseconds, at most `u32::MAX`
    /// of them (classic and quorum queues).
    pub fn with_message_ttl(mut self, ttl: Duration) -> Self {
        self.message_ttl = Some(ttl);
        self
    }

    /// `x-queue-version`: a classic queue's storage format, 1 or 2.
    pub fn with_queue_version(mut self, version: u8) -> Self {
        self.queue_version = Some(version);
        self
    }

    /// Any other argument (`x-max-age` of a stream, `x-queue-mode`,
    /// `x-dead-letter-strategy`, a plugin's), sent as given. The name must
    /// not be one a typed method above sets.
    pub fn with_argument(
        mut self,
        name: impl Into<String>,
        value: impl Into<ArgumentValue>,
    ) -> Self {
        self.other.insert(name.into(), value.into());
        self
    }

    /// The queue type, when set.
    pub fn queue_type(&self) -> Option<QueueType> {
        self.queue_type
    }

    /// `x-max-priority`, when set.
    pub fn max_priority(&self) -> Option<u8> {
        self.max_priority
    }

    /// True when no argument is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Checks the arguments against each other and against their queue
    /// type (classic when none is set); declaring calls it too.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the argument: `x-max-priority` 0
    /// or on a quorum queue or stream; `x-delivery-limit` on a classic
    /// queue (the broker ignores it there) or stream; a message TTL beyond
    /// `u32::MAX` ms; a queue version other than 1 or 2, or on a quorum
    /// queue or stream; `reject-publish-dlx` on a quorum queue; on a
    /// stream, anything but `x-max-length-bytes` and the arguments of
    /// [`with_argument`](Self::with_argument); a dead-letter routing key
    /// without a dead-letter exchange; an empty or overlong argument name,
    /// or one a typed method sets.
    pub fn validate(&self) -> Result<()> {
        let kind = self.queue_type.unwrap_or(QueueType::Classic);
        let not_on = |name: &str| {
            Error::invalid(name, format!("not supported on a {} queue", kind.as_str()))
        };
        if let Some(max) = self.max_priority {
            if max == 0 {
                return Err(Error::invalid(
                    "x-max-priority",
                    format!(
                        "must be 1 to 255 (use {MAX_AMQP_PRIORITY}: a message's priority maps \
                         to 0 to {MAX_AMQP_PRIORITY})"
                    ),
                ));
            }
            if kind != QueueType::Classic {
                return Err(not_on("x-max-priority"));
            }
        }
        if self.delivery_limit.is_some() && kind != QueueType::Quorum {
            return Err(Error::invalid(
                "x-delivery-limit",
                format!(
                    "only a quorum queue has a delivery limit (this is a {} queue)",
                    kind.as_str()
                ),
            ));
        }
        if let Some(ttl) = self.message_ttl {
            if ttl.as_millis() > u128::from(u32::MAX) {
                return Err(Error::invalid(
                    "x-message-ttl",
                    format!("{ttl:?} is more than u32::MAX milliseconds (about 49 days)"),
                ));
            }
        }
        if let Some(version) = self.queue_version {
            if version != 1 && version != 2 {
                return Err(Error::invalid("x-queue-version", "must be 1 or 2"));
            }
            if kind != QueueType::Classic {
                return Err(not_on("x-queue-version"));
            }
        }
        if self.overflow == Some(Overflow::RejectPublishDlx) && kind == QueueType::Quorum {
            return Err(Error::invalid(
                "x-overflow",
                "reject-publish-dlx is for classic queues; a quorum queue takes drop-head \
                 or reject-publish",
            ));
        }
        if kind == QueueType::Stream {
            let unsupported = [
                (
                    "x-dead-letter-exchange",
                    self.dead_letter_exchange.is_some(),
                ),
                ("x-single-active-consumer", self.single_active_consumer),
                ("x-max-length", self.max_length.is_some()),
                ("x-overflow", self.overflow.is_some()),
                ("x-message-ttl", self.message_ttl.is_some()),
            ];
            if let Some((name, _)) = unsupported.iter().find(|(_, set)| *set) {
                return Err(Error::invalid(
                    *name,
                    "not supported on a stream (it keeps every message until \
                     x-max-length-bytes or x-max-age removes whole segments)",
                ));
            }
        }
        if self.dead_letter_routing_key.is_some() && self.dead_letter_exchange.is_none() {
            return Err(Error::invalid(
                "x-dead-letter-routing-key",
                "needs x-dead-letter-exchange (\"\" for the default exchange)",
            ));
        }
        let typed = self.typed_names();
        for name in self.other.keys() {
            if name.is_empty() || name.len() > 255 {
                return Err(Error::invalid(
                    "argument name",
                    format!("`{name}`: an argument name has 1 to 255 bytes"),
                ));
            }
            if typed.contains(&name.as_str()) {
                return Err(Error::invalid(
                    name.as_str(),
                    "set twice: with its typed method and with with_argument",
                ));
            }
        }
        for (name, value) in [
            ("x-dead-letter-exchange", &self.dead_letter_exchange),
            ("x-dead-letter-routing-key", &self.dead_letter_routing_key),
        ] {
            if value.as_ref().is_some_and(|v| v.len() > 255) {
                return Err(Error::invalid(name, "at most 255 bytes"));
            }
        }
        Ok(())
    }

    /// The names of the typed arguments that are set.
    fn typed_names(&self) -> Vec<&'static str> {
        [
            ("x-queue-type", self.queue_type.is_some()),
            ("x-max-priority", self.max_priority.is_some()),
            ("x-delivery-limit", self.delivery_limit.is_some()),
            (
                "x-dead-letter-exchange",
                self.dead_letter_exchange.is_some(),
            ),
            (
                "x-dead-letter-routing-key",
                self.dead_letter_routing_key.is_some(),
            ),
            ("x-single-active-consumer", self.single_active_consumer),
            ("x-max-length", self.max_length.is_some()),
            ("x-max-length-bytes", self.max_length_bytes.is_some()),
            ("x-overflow", self.overflow.is_some()),
            ("x-message-ttl", self.message_ttl.is_some()),
            ("x-queue-version", self.queue_version.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }

    /// The AMQP field table to declare with. Integers beyond `i64` (which
    /// the broker could not hold either) are sent as `i64::MAX`.
    pub(crate) fn to_field_table(&self) -> FieldTable {
        let int = |n: u64| AmqpValue::LongLongInt(i64::try_from(n).unwrap_or(i64::MAX));
        let text = |s: &str| AmqpValue::LongString(s.to_string());
        let mut table = FieldTable::new();
        let mut put = |name: &str, value: AmqpValue| {
            table.insert(name.to_string(), value);
        };
        if let Some(t) = self.queue_type {
            put("x-queue-type", text(t.as_str()));
        }
        if let Some(max) = self.max_priority {
            put("x-max-priority", AmqpValue::ShortShortUInt(max));
        }
        if let Some(limit) = self.delivery_limit {
            put("x-delivery-limit", int(u64::from(limit)));
        }
        if let Some(exchange) = &self.dead_letter_exchange {
            put("x-dead-letter-exchange", text(exchange));
        }
        if let Some(key) = &self.dead_letter_routing_key {
            put("x-dead-letter-routing-key", text(key));
        }
        if self.single_active_consumer {
            put("x-single-active-consumer", AmqpValue::Boolean(true));
        }
        if let Some(n) = self.max_length {
            put("x-max-length", int(n));
        }
        if let Some(n) = self.max_length_bytes {
            put("x-max-length-bytes", int(n));
        }
        if let Some(overflow) = self.overflow {
            put("x-overflow", text(overflow.as_str()));
        }
        if let Some(ttl) = self.message_ttl {
            put(
                "x-message-ttl",
                int(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
            );
        }
        if let Some(version) = self.queue_version {
            put("x-queue-version", int(u64::from(version)));
        }
        for (name, value) in &self.other {
            put(name, value.to_amqp());
        }
        table
    }
}

/// Where a consumer of a stream queue starts reading: `x-stream-offset`.
/// A stream keeps its messages after they are acked, so each consumer
/// says where in the log it begins; without one it begins at
/// [`Next`](Self::Next).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamOffset {
    /// The oldest message the stream still has.
    First,
    /// The last chunk written (a few of the newest messages).
    Last,
    /// Only messages published after the consumer started.
    Next,
    /// The message at this offset (0 is the first ever written) or, when
    /// that was removed, the oldest one left.
    Offset(u64),
    /// The messages written from about this time on (the broker works in
    /// whole seconds and chunks, so a few older ones may come too).
    Timestamp(SystemTime),
}

impl StreamOffset {
    /// The `x-stream-offset` consume argument.
    pub(crate) fn to_amqp(self) -> AmqpValue {
        match self {
            StreamOffset::First => AmqpValue::LongString("first".into()),
            StreamOffset::Last => AmqpValue::LongString("last".into()),
            StreamOffset::Next => AmqpValue::LongString("next".into()),
            StreamOffset::Offset(n) => AmqpValue::LongLongInt(i64::try_from(n).unwrap_or(i64::MAX)),
            StreamOffset::Timestamp(at) => {
                AmqpValue::Timestamp(at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
            }
        }
    }

    /// The consume arguments for this offset.
    pub(crate) fn consume_arguments(self) -> FieldTable {
        let mut table = FieldTable::new();
        table.insert("x-stream-offset".to_string(), self.to_amqp());
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(arguments: &QueueArguments, name: &str) {
        match arguments.validate() {
            Err(Error::InvalidArgument { name: n, reason }) => {
                assert_eq!(n, name, "{reason}");
            }
            other => panic!("expected {name} refused, got {other:?}"),
        }
    }

    #[test]
    fn impossible_combinations_are_refused_naming_the_argument() {
        let quorum = || QueueArguments::new().with_type(QueueType::Quorum);
        let stream = || QueueArguments::new().with_type(QueueType::Stream);
        refused(&quorum().with_max_priority(9), "x-max-priority");
        refused(&stream().with_max_priority(9), "x-max-priority");
        refused(
            &QueueArguments::new().with_max_priority(0),
            "x-max-priority",
        );
        refused(
            &QueueArguments::new().with_delivery_limit(3),
            "x-delivery-limit",
        );
        refused(&stream().with_delivery_limit(3), "x-delivery-limit");
        refused(
            &QueueArguments::new().with_message_ttl(Duration::from_millis(u64::from(u32::MAX) + 1)),
            "x-message-ttl",
        );
        refused(
            &QueueArguments::new().with_queue_version(3),
            "x-queue-version",
        );
        refused(&quorum().with_queue_version(2), "x-queue-version");
        refused(
            &quorum().with_overflow(Overflow::RejectPublishDlx),
            "x-overflow",
        );
        refused(
            &stream().with_single_active_consumer(true),
            "x-single-active-consumer",
        );
        refused(&stream().with_max_length(5), "x-max-length");
        refused(
            &stream().with_dead_letter_exchange("dlx"),
            "x-dead-letter-exchange",
        );
        refused(
            &QueueArguments::new().with_dead_letter_routing_key("k"),
            "x-dead-letter-routing-key",
        );
        refused(
            &quorum().with_argument("x-queue-type", "stream"),
            "x-queue-type",
        );
        refused(&QueueArguments::new().with_argument("", 1), "argument name");
    }

    #[test]
    fn what_each_type_takes_is_accepted() {
        QueueArguments::new().validate().unwrap();
        QueueArguments::new()
            .with_type(QueueType::Classic)
            .with_max_priority(9)
            .with_max_length(2)
            .with_overflow(Overflow::RejectPublishDlx)
            .with_dead_letter_exchange("")
            .with_dead_letter_routing_key("dlq")
            .with_message_ttl(Duration::from_millis(u64::from(u32::MAX)))
            .with_queue_version(2)
            .with_single_active_consumer(true)
            .validate()
            .unwrap();
        QueueArguments::new()
            .with_type(QueueType::Quorum)
            .with_delivery_limit(3)
            .with_overflow(Overflow::RejectPublish)
            .with_dead_letter_exchange("dlx")
            .with_argument("x-dead-letter-strategy", "at-least-once")
            .validate()
            .unwrap();
        QueueArguments::new()
            .with_type(QueueType::Stream)
            .with_max_length_bytes(1 << 30)
            .with_argument("x-max-age", "7D")
            .validate()
            .unwrap();
    }

    #[test]
    fn the_table_carries_each_argument_with_its_amqp_type() {
        let table = QueueArguments::new()
            .with_type(QueueType::Quorum)
            .with_delivery_limit(3)
            .with_single_active_consumer(true)
            .with_message_ttl(Duration::from_millis(1500))
            .with_argument("x-custom", false)
            .to_field_table();
        assert_eq!(
            table.get("x-queue-type"),
            Some(&AmqpValue::LongString("quorum".into()))
        );
        assert_eq!(
            table.get("x-delivery-limit"),
            Some(&AmqpValue::LongLongInt(3))
        );
        assert_eq!(
            table.get("x-single-active-consumer"),
            Some(&AmqpValue::Boolean(true))
        );
        assert_eq!(
            table.get("x-message-ttl"),
            Some(&AmqpValue::LongLongInt(1500))
        );
        assert_eq!(table.get("x-custom"), Some(&AmqpValue::Boolean(false)));
        assert_eq!(table.len(), 5);
        assert!(QueueArguments::new().to_field_table().is_empty());
        assert!(QueueArguments::new().is_empty());
    }

    #[test]
    fn stream_offsets_map_to_the_broker_forms() {
        assert_eq!(
            StreamOffset::First.to_amqp(),
            AmqpValue::LongString("first".into())
        );
        assert_eq!(StreamOffset::Offset(5).to_amqp(), AmqpValue::LongLongInt(5));
        assert_eq!(
            StreamOffset::Timestamp(UNIX_EPOCH + Duration::from_millis(10_999)).to_amqp(),
            AmqpValue::Timestamp(10)
        );
    }
}
