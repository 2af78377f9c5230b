//! [`Routed`]: a message with its exchange and routing key, gormq's
//! `Message{Exchange, RoutingKey, Body}`, for code that builds what to send
//! in one place and publishes it in another.

use crate::message::Message;

/// A message together with where it goes: an exchange and a routing key
/// (gormq's `Message` and `NewMessage(exchange, key, data)`).
///
/// The routing key picks the route only. It is neither the message's key
/// ([`Message::with_key`]: its identity, sent as the AMQP `message_id` for
/// consumers to dedupe) nor anything the broker stores; it is the
/// message's own [`routing_key`](Message::routing_key), so a `Routed` taken
/// apart again keeps it.
///
/// ```no_run
/// use syncmq::rabbitmq::{RabbitClient, RabbitClientConfig, Routed};
/// use syncmq::Message;
///
/// # fn main() -> syncmq::Result<()> {
/// let client = RabbitClient::start(RabbitClientConfig::new("amqp://guest:guest@127.0.0.1:5672/%2f", "billing"))?;
/// let placed = Routed::new("orders", "order.placed", b"order 42".to_vec());
/// client.publish_routed(placed)?; // confirmed by the broker
/// let shipped = Routed::with_message("orders", "order.shipped", Message::new("order 42").with_key("order-42"));
/// client.publish_routed_nowait(shipped)?; // retried from the buffer until confirmed
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    exchange: String,
    message: Message,
}

impl Routed {
    /// `body` to `exchange` with `routing_key`: gormq's `NewMessage`. The
    /// default exchange `""` routes by queue name.
    pub fn new(
        exchange: impl Into<String>,
        routing_key: impl Into<String>,
        body: impl Into<Vec<u8>>,
    ) -> Self {
        Routed::with_message(exchange, routing_key, Message::new(body))
    }

    /// `value` as JSON (see [`Message::encode_json`]) to `exchange` with
    /// `routing_key`: gormq's `NewMessage(exchange, key, data)` for a `data`
    /// that is a struct.
    ///
    /// # Errors
    ///
    /// [`Error::Codec`](crate::Error::Codec) when `value` cannot be written
    /// as JSON.
    #[cfg(feature = "json")]
    pub fn json<T: serde::Serialize + ?Sized>(
        exchange: impl Into<String>,
        routing_key: impl Into<String>,
        value: &T,
    ) -> crate::Result<Self> {
        Ok(Routed::with_message(
            exchange,
            routing_key,
            Message::encode_json(value)?,
        ))
    }

    /// `message` (its key, headers, priority and expiry kept) to `exchange`
    /// with `routing_key`, which replaces the message's own.
    pub fn with_message(
        exchange: impl Into<String>,
        routing_key: impl Into<String>,
        message: Message,
    ) -> Self {
        Routed {
            exchange: exchange.into(),
            message: message.with_routing_key(routing_key),
        }
    }

    /// The exchange.
    pub fn exchange(&self) -> &str {
        &self.exchange
    }

    /// The routing key.
    pub fn routing_key(&self) -> &str {
        self.message.routing_key().unwrap_or_default()
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The exchange and the message, which keeps the routing key.
    pub fn into_parts(self) -> (String, Message) {
        (self.exchange, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_travels_with_the_message_and_stays_apart_from_its_key() {
        let routed = Routed::with_message(
            "orders",
            "order.placed",
            Message::new("42")
                .with_key("order-42")
                .with_routing_key("old"),
        );
        assert_eq!(routed.exchange(), "orders");
        assert_eq!(routed.routing_key(), "order.placed");
        assert_eq!(routed.message().key(), Some("order-42"));
        let (exchange, message) = routed.into_parts();
        assert_eq!(
            (exchange.as_str(), message.routing_key()),
            ("orders", Some("order.placed"))
        );
        assert_eq!(Routed::new("", "jobs", "x").routing_key(), "jobs");
    }

    #[cfg(feature = "json")]
    #[test]
    fn a_routed_json_message_carries_its_route_and_its_content_type() {
        let routed = Routed::json("orders", "order.placed", &[1, 2]).unwrap();
        assert_eq!(routed.routing_key(), "order.placed");
        assert_eq!(routed.message().body(), b"[1,2]");
        assert_eq!(
            routed.message().header("content-type"),
            Some("application/json")
        );
    }
}
