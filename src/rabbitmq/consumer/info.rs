//! [`DeliveryInfo`]: what a handler may want to know about a delivery
//! beyond its message: where it was published, whether it was delivered
//! before, which attempt this is, and every AMQP header as the broker sent
//! it (`x-death`, `x-delivery-count` and our own `x-syncmq-*` included,
//! which the [`Message`](crate::Message) leaves out).
//!
//! The attempt number is what bounds retries (see
//! [`ConsumerOptions::with_max_attempts`](super::ConsumerOptions::with_max_attempts)):
//! the broker's `x-delivery-count` (quorum queues count every earlier
//! delivery of a message) plus our `x-syncmq-attempts` (the failed
//! attempts before a retry was published again as a new message), plus one.

use std::collections::BTreeMap;

use amiquip::{AmqpProperties, AmqpValue};

use crate::rabbitmq::amqp;

/// The header in which a retried message carries its failed attempts.
pub(super) const ATTEMPTS_HEADER: &str = "x-syncmq-attempts";
/// The header in which quorum queues count a message's earlier deliveries.
pub(super) const DELIVERY_COUNT_HEADER: &str = "x-delivery-count";

/// A delivery's context, handed to handlers started with
/// [`Consumer::start_with_info`](super::Consumer::start_with_info) or
/// [`RabbitClient::add_consumer_with_info`](crate::rabbitmq::RabbitClient::add_consumer_with_info).
///
/// ```
/// use syncmq::rabbitmq::DeliveryInfo;
///
/// let info = DeliveryInfo::new("orders", "order.created");
/// assert_eq!(info.exchange(), "orders");
/// assert_eq!(info.attempt(), 1);
/// assert!(!info.is_redelivered());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryInfo {
    exchange: String,
    routing_key: String,
    redelivered: bool,
    delivery_count: Option<u64>,
    earlier_attempts: u64,
    headers: BTreeMap<String, String>,
}

impl DeliveryInfo {
    /// The context of a first delivery published on `exchange` with
    /// `routing_key`, without headers: for testing handlers.
    pub fn new(exchange: impl Into<String>, routing_key: impl Into<String>) -> Self {
        DeliveryInfo {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            redelivered: false,
            delivery_count: None,
            earlier_attempts: 0,
            headers: BTreeMap::new(),
        }
    }

    /// The context of an AMQP delivery, whose exchange and routing key it
    /// takes (no copy per message).
    pub(super) fn of(raw: &mut amiquip::Delivery) -> Self {
        let mut info = DeliveryInfo::new(
            std::mem::take(&mut raw.exchange),
            std::mem::take(&mut raw.routing_key),
        );
        info.redelivered = raw.redelivered;
        info.read_headers(&raw.properties);
        info
    }

    fn read_headers(&mut self, properties: &AmqpProperties) {
        let Some(headers) = properties.headers() else {
            return;
        };
        for (name, value) in headers {
            if name == DELIVERY_COUNT_HEADER {
                self.delivery_count = count(value);
            } else if name == ATTEMPTS_HEADER {
                self.earlier_attempts = count(value).unwrap_or(0);
            }
            self.headers.insert(name.clone(), amqp::header_text(value));
        }
    }

    /// The exchange the message was published to (`""`: the default
    /// exchange, as for a retried message).
    pub fn exchange(&self) -> &str {
        &self.exchange
    }

    /// The routing key it was published with.
    pub fn routing_key(&self) -> &str {
        &self.routing_key
    }

    /// True when the broker delivered this message before (to us or to
    /// another consumer) and it was not acked then. A retry published again
    /// as a new message is not redelivered: see [`attempt`](Self::attempt).
    pub fn is_redelivered(&self) -> bool {
        self.redelivered
    }

    /// The broker's `x-delivery-count`: how many times a quorum queue
    /// delivered this message before. `None` on a first delivery and on
    /// classic queues.
    pub fn delivery_count(&self) -> Option<u64> {
        self.delivery_count
    }

    /// Which attempt at handling the message this is, from 1: the broker's
    /// delivery count plus the failed attempts a retry carries, plus one.
    pub fn attempt(&self) -> u64 {
        self.earlier_attempts
            .saturating_add(self.delivery_count.unwrap_or(0))
            .saturating_add(1)
    }

    /// Every AMQP header of the delivery as text (numbers in decimal,
    /// tables and arrays as `{name: value, ...}` and `[value, ...]`).
    pub fn headers(&self) -> &BTreeMap<String, String> {
        &self.headers
    }

    /// One header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// A header value as a count, if it is a non-negative number (or its text).
fn count(value: &AmqpValue) -> Option<u64> {
    match value {
        AmqpValue::ShortShortUInt(n) => Some(u64::from(*n)),
        AmqpValue::ShortUInt(n) => Some(u64::from(*n)),
        AmqpValue::LongUInt(n) => Some(u64::from(*n)),
        AmqpValue::ShortShortInt(n) => u64::try_from(*n).ok(),
        AmqpValue::ShortInt(n) => u64::try_from(*n).ok(),
        AmqpValue::LongInt(n) => u64::try_from(*n).ok(),
        AmqpValue::LongLongInt(n) => u64::try_from(*n).ok(),
        AmqpValue::LongString(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amiquip::FieldTable;

    fn properties(headers: &[(&str, AmqpValue)]) -> AmqpProperties {
        let mut table = FieldTable::new();
        for (name, value) in headers {
            table.insert((*name).to_string(), value.clone());
        }
        AmqpProperties::default().with_headers(table)
    }

    #[test]
    fn a_first_delivery_is_attempt_one() {
        let mut info = DeliveryInfo::new("", "q");
        info.read_headers(&AmqpProperties::default());
        assert_eq!(info.attempt(), 1);
        assert_eq!(info.delivery_count(), None);
        assert!(info.headers().is_empty());
    }

    #[test]
    fn attempts_add_the_brokers_count_and_ours() {
        let mut info = DeliveryInfo::new("", "q");
        info.read_headers(&properties(&[
            (DELIVERY_COUNT_HEADER, AmqpValue::LongLongInt(2)),
            (ATTEMPTS_HEADER, AmqpValue::LongString("1".into())),
            ("plain", AmqpValue::LongString("text".into())),
        ]));
        assert_eq!(info.delivery_count(), Some(2));
        assert_eq!(info.attempt(), 4);
        assert_eq!(info.header(DELIVERY_COUNT_HEADER), Some("2"));
        assert_eq!(info.header(ATTEMPTS_HEADER), Some("1"));
        assert_eq!(info.header("plain"), Some("text"));
    }

    #[test]
    fn a_garbled_attempts_header_counts_as_none() {
        let mut info = DeliveryInfo::new("", "q");
        info.read_headers(&properties(&[
            (ATTEMPTS_HEADER, AmqpValue::LongString("many".into())),
            (DELIVERY_COUNT_HEADER, AmqpValue::LongLongInt(-3)),
        ]));
        assert_eq!(info.attempt(), 1);
        assert_eq!(info.header(ATTEMPTS_HEADER), Some("many"));
    }

    #[test]
    fn nested_headers_read_as_text() {
        let mut death = FieldTable::new();
        death.insert("count".into(), AmqpValue::LongLongInt(1));
        death.insert("queue".into(), AmqpValue::LongString("q".into()));
        let mut info = DeliveryInfo::new("", "q");
        info.read_headers(&properties(&[(
            "x-death",
            AmqpValue::FieldArray(vec![AmqpValue::FieldTable(death)]),
        )]));
        assert_eq!(info.header("x-death"), Some("[{count: 1, queue: q}]"));
    }
}
