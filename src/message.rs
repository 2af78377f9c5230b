//! Messages, deliveries and acknowledgements: the vocabulary every adapter
//! speaks.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Cursor;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The version byte that starts every stored message written by this build.
pub(crate) const STORED_FORMAT_VERSION: u8 = 1;

/// What a producer sends.
///
/// ```
/// use std::time::Duration;
/// use syncmq::Message;
///
/// let msg = Message::new(b"order 42 shipped".to_vec())
///     .with_key("order-42")
///     .with_routing_key("order.shipped")
///     .with_header("content-type", "text/plain")
///     .with_priority(1)
///     .with_ttl(Duration::from_secs(60));
/// assert_eq!(msg.key(), Some("order-42"));
/// assert_eq!(msg.routing_key(), Some("order.shipped"));
/// assert_eq!(msg.body(), b"order 42 shipped");
/// ```
///
/// A [`Message`] is what a producer sends: body bytes plus an optional key
/// (its identity: dedupe, AMQP `message_id`), an optional routing key (where
/// a router sends it), string headers, a priority (0 is the highest) and an
/// optional expiry.
/// A [`Delivery`] is what a consumer receives: the message and an [`Acker`]
/// that reports the outcome back to whoever delivered it.
///
/// # Acknowledgement
///
/// `ack`, `ack_multiple` and `nack` consume the delivery, so a delivery is
/// settled at most once by construction. A delivery dropped without being
/// settled calls [`Acker::release`]; each adapter documents what that means
/// (the RabbitMQ and durable adapters give the message back to be delivered
/// again, the simple adapter has nothing to give back).
///
/// # Formats
///
/// Typed payloads go through [`Message::encode`] and [`Delivery::decode`],
/// which use MessagePack with named fields (rmp-serde), so a reader in another
/// language sees a map. Where a whole message is stored or crosses a wire,
/// [`Message::to_bytes`] writes one version byte followed by the MessagePack
/// of its fields; [`Message::from_bytes`] checks that byte first, so formats
/// added later stay readable next to old data. Every decoder returns
/// [`Error::Codec`] for random, truncated or trailing bytes; none panics.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    body: Vec<u8>,
    priority: u8,
    /// Everything most messages leave unset lives behind one pointer, so a
    /// plain message is three words and a flag: that keeps the slots of
    /// every channel it crosses small. `None` and "all unset" are the same;
    /// every constructor keeps it `None` until a field is set.
    extras: Option<Box<Extras>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Extras {
    key: Option<String>,
    routing_key: Option<String>,
    headers: BTreeMap<String, String>,
    /// Milliseconds since the Unix epoch; kept in this form because it is
    /// the form that is stored, so a message compares equal after a round
    /// trip through storage.
    expires_at_ms: Option<u64>,
}

/// What `headers()` returns for a message without any.
static NO_HEADERS: BTreeMap<String, String> = BTreeMap::new();

impl Message {
    /// A message with this body, no key, no headers, priority 0 and no expiry.
    pub fn new(body: impl Into<Vec<u8>>) -> Self {
        Message {
            body: body.into(),
            ..Message::default()
        }
    }

    /// A message whose body is `value` in MessagePack with named fields.
    ///
    /// ```
    /// # use syncmq::Message;
    /// #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    /// struct Order { id: u64 }
    ///
    /// let msg = Message::encode(&Order { id: 7 }).unwrap();
    /// assert_eq!(msg.decode::<Order>().unwrap(), Order { id: 7 });
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] when `value`'s `Serialize` implementation fails.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self> {
        Ok(Message::new(rmp_serde::to_vec_named(value)?))
    }

    /// Decodes the body as a `T` written by [`Message::encode`].
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] when the body is not exactly one MessagePack `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        decode_exact(&self.body, "message body")
    }

    /// Sets the key: the message's identity, and nothing else. Where the
    /// adapter dedupes (the durable queue with `dedupe` on), a newer message
    /// with the same key replaces an undelivered older one; on RabbitMQ it
    /// travels as the AMQP `message_id`, for consumers to dedupe. It never
    /// picks a route: that is the [routing key](Self::with_routing_key).
    #[must_use]
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.extras_mut().key = Some(key.into());
        self
    }

    /// Sets the routing key: where a router sends the message. A
    /// [`RabbitSink`](crate::RabbitSink) to an exchange publishes with it as
    /// the AMQP routing key (`order.placed` to a topic exchange, say).
    /// Channels and queue topics carry it along unread.
    #[must_use]
    pub fn with_routing_key(mut self, routing_key: impl Into<String>) -> Self {
        self.extras_mut().routing_key = Some(routing_key.into());
        self
    }

    /// Adds a header, replacing an earlier value under the same name.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extras_mut().headers.insert(name.into(), value.into());
        self
    }

    /// Sets the priority. 0 is the highest and the default; adapters with
    /// fewer levels document how they map the rest.
    #[must_use]
    pub fn with_priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }

    /// Expires the message `ttl` from now: it is dropped, not delivered, once
    /// that moment has passed.
    #[must_use]
    pub fn with_ttl(self, ttl: Duration) -> Self {
        self.with_expiry(SystemTime::now() + ttl)
    }

    /// Expires the message at `at`. Times before the Unix epoch mean "already
    /// expired"; the moment is kept to the millisecond.
    #[must_use]
    pub fn with_expiry(mut self, at: SystemTime) -> Self {
        self.extras_mut().expires_at_ms = Some(millis_since_epoch(at));
        self
    }

    fn extras_mut(&mut self) -> &mut Extras {
        self.extras.get_or_insert_with(Box::default)
    }

    fn extras(&self) -> Option<&Extras> {
        self.extras.as_deref()
    }

    fn expires_at_ms(&self) -> Option<u64> {
        self.extras().and_then(|e| e.expires_at_ms)
    }

    /// The body bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Takes the body, leaving the rest of the message as it is.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The key (the message's identity), if one was set.
    pub fn key(&self) -> Option<&str> {
        self.extras().and_then(|e| e.key.as_deref())
    }

    /// The routing key, if one was set.
    pub fn routing_key(&self) -> Option<&str> {
        self.extras().and_then(|e| e.routing_key.as_deref())
    }

    /// The headers, ordered by name.
    pub fn headers(&self) -> &BTreeMap<String, String> {
        self.extras().map_or(&NO_HEADERS, |e| &e.headers)
    }

    /// One header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers().get(name).map(String::as_str)
    }

    /// The priority; 0 is the highest.
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// When the message expires, if it does.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at_ms()
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
    }

    /// True when the message has an expiry and `now` is at or past it.
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        self.expires_at_ms()
            .is_some_and(|at| millis_since_epoch(now) >= at)
    }

    /// The stored form: one format version byte (1, written by this build),
    /// then the fields in
    /// MessagePack.
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] only for bodies or headers too large for MessagePack
    /// (over 4 GiB).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.body.len() + 16);
        self.write_bytes(&mut out)?;
        Ok(out)
    }

    /// Appends the stored form to `out`, so a hot loop can reuse one buffer.
    ///
    /// # Errors
    ///
    /// As [`Message::to_bytes`].
    pub fn write_bytes(&self, out: &mut Vec<u8>) -> Result<()> {
        out.push(STORED_FORMAT_VERSION);
        let stored = StoredV1Ref {
            body: &self.body,
            key: self.key(),
            headers: self.headers(),
            priority: self.priority,
            expires_at_ms: self.expires_at_ms(),
            routing_key: self.routing_key(),
        };
        rmp_serde::encode::write(out, &stored)?;
        Ok(())
    }

    /// Reads the stored form written by [`Message::to_bytes`].
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] for empty, random, truncated or trailing bytes, and
    /// for a version byte this build does not know (the error names it).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let (&version, rest) = bytes
            .split_first()
            .ok_or_else(|| Error::codec_reason("decode a stored message", "no bytes"))?;
        match version {
            STORED_FORMAT_VERSION => {
                let v1: StoredV1 = decode_exact(rest, "stored message")?;
                let extras = Extras {
                    key: v1.key,
                    routing_key: v1.routing_key,
                    headers: v1.headers,
                    expires_at_ms: v1.expires_at_ms,
                };
                Ok(Message {
                    body: v1.body,
                    priority: v1.priority,
                    extras: (extras != Extras::default()).then(|| Box::new(extras)),
                })
            }
            other => Err(Error::codec_reason(
                "decode a stored message",
                format!("format version {other}; this build reads version {STORED_FORMAT_VERSION}"),
            )),
        }
    }
}

/// A message with this body and nothing else set, so that the plain bytes
/// case stays one line: `input.send("resize".into())`.
impl From<Vec<u8>> for Message {
    fn from(body: Vec<u8>) -> Self {
        Message::new(body)
    }
}

/// A message with a copy of these bytes as its body.
impl From<&[u8]> for Message {
    fn from(body: &[u8]) -> Self {
        Message::new(body)
    }
}

/// A message with a copy of these bytes as its body.
impl<const N: usize> From<&[u8; N]> for Message {
    fn from(body: &[u8; N]) -> Self {
        Message::new(body.as_slice())
    }
}

/// A message whose body is the string's UTF-8 bytes.
impl From<&str> for Message {
    fn from(body: &str) -> Self {
        Message::new(body.as_bytes())
    }
}

/// A message whose body is the string's UTF-8 bytes, without a copy.
impl From<String> for Message {
    fn from(body: String) -> Self {
        Message::new(body.into_bytes())
    }
}

/// Version 1 of the stored form, borrowed for writing: a MessagePack array
/// of the fields in this order.
///
/// The routing key came later, as a last element written only when set: a
/// message without one is stored byte for byte as before, and what was
/// stored before reads with none (`default`).
#[derive(Serialize)]
struct StoredV1Ref<'a> {
    #[serde(with = "serde_bytes")]
    body: &'a [u8],
    key: Option<&'a str>,
    headers: &'a BTreeMap<String, String>,
    priority: u8,
    expires_at_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    routing_key: Option<&'a str>,
}

/// Version 1 of the stored form, owned for reading.
#[derive(Deserialize)]
struct StoredV1 {
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
    key: Option<String>,
    headers: BTreeMap<String, String>,
    priority: u8,
    expires_at_ms: Option<u64>,
    #[serde(default)]
    routing_key: Option<String>,
}

/// Decodes exactly one `T` from `bytes`: trailing bytes are an error too,
/// because they mean the bytes were not what the caller thinks they are.
///
/// The reader copies as it goes rather than trusting length prefixes, so a
/// random length cannot make it allocate gigabytes.
fn decode_exact<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    let mut de = rmp_serde::Deserializer::new(Cursor::new(bytes));
    let value = T::deserialize(&mut de).map_err(|e| Error::codec(format!("decode {what}"), e))?;
    let read = de.position();
    if read != bytes.len() as u64 {
        return Err(Error::codec_reason(
            format!("decode {what}"),
            format!(
                "{} trailing bytes after the value",
                bytes.len() as u64 - read
            ),
        ));
    }
    Ok(value)
}

fn millis_since_epoch(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, crate::millis::to_ms)
}

/// Settles a delivery with whoever delivered it. Each adapter implements it.
///
/// The methods take `Box<Self>` so that a delivery is settled at most once:
/// [`Delivery`] gives its acker away on the first `ack`, `nack` or drop.
pub trait Acker: Send {
    /// Acknowledges the delivery; with `multiple`, also every earlier
    /// unsettled delivery from the same source (AMQP's `multiple` flag).
    ///
    /// # Errors
    ///
    /// Adapter-specific, for example [`Error::StaleDelivery`] when the connection
    /// that delivered the message is gone (the message is then redelivered).
    fn ack(self: Box<Self>, multiple: bool) -> Result<()>;

    /// Rejects the delivery: with `requeue` it is delivered again, without it
    /// the adapter drops it or dead-letters it, as the adapter documents.
    ///
    /// # Errors
    ///
    /// As [`Acker::ack`].
    fn nack(self: Box<Self>, requeue: bool) -> Result<()>;

    /// Called when a delivery is dropped unsettled. The default gives the
    /// message back (`nack` with requeue), which is what at-least-once
    /// adapters want; an error here has nobody to go to, so it is logged.
    fn release(self: Box<Self>) {
        if let Err(e) = self.nack(true) {
            log::debug!("requeue of a dropped delivery failed: {e}");
        }
    }
}

/// What a consumer receives: a message and the means to settle it.
///
/// ```
/// use syncmq::{Delivery, Message};
///
/// let delivery = Delivery::without_acker(Message::new(b"hi".to_vec()));
/// assert_eq!(delivery.body(), b"hi");
/// delivery.ack().unwrap();
/// ```
pub struct Delivery {
    message: Message,
    redelivered: bool,
    acker: Option<Box<dyn Acker>>,
}

impl Delivery {
    /// A delivery settled through `acker`. Adapters call this.
    pub fn new(message: Message, acker: Box<dyn Acker>) -> Self {
        Delivery {
            message,
            redelivered: false,
            acker: Some(acker),
        }
    }

    /// A delivery with nothing to settle: `ack` and `nack` succeed and do
    /// nothing, and dropping it loses it.
    pub fn without_acker(message: Message) -> Self {
        Delivery {
            message,
            redelivered: false,
            acker: None,
        }
    }

    /// Marks whether this message was delivered before.
    #[must_use]
    pub fn with_redelivered(mut self, redelivered: bool) -> Self {
        self.redelivered = redelivered;
        self
    }

    /// The body bytes.
    pub fn body(&self) -> &[u8] {
        self.message.body()
    }

    /// The whole message: key, headers, priority, expiry.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// True when the message was delivered before, and not settled then.
    pub fn is_redelivered(&self) -> bool {
        self.redelivered
    }

    /// Decodes the body as a `T` written by [`Message::encode`].
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] when the body is not exactly one MessagePack `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        self.message.decode()
    }

    /// Acknowledges this delivery.
    ///
    /// # Errors
    ///
    /// As the adapter's [`Acker::ack`].
    pub fn ack(mut self) -> Result<()> {
        self.acker.take().map_or(Ok(()), |a| a.ack(false))
    }

    /// Acknowledges this delivery and every earlier unsettled one from the
    /// same source.
    ///
    /// # Errors
    ///
    /// As the adapter's [`Acker::ack`].
    pub fn ack_multiple(mut self) -> Result<()> {
        self.acker.take().map_or(Ok(()), |a| a.ack(true))
    }

    /// Rejects this delivery; with `requeue` it will be delivered again.
    ///
    /// # Errors
    ///
    /// As the adapter's [`Acker::nack`].
    pub fn nack(mut self, requeue: bool) -> Result<()> {
        self.acker.take().map_or(Ok(()), |a| a.nack(requeue))
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if let Some(acker) = self.acker.take() {
            acker.release();
        }
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("message", &self.message)
            .field("redelivered", &self.redelivered)
            .field("settled", &self.acker.is_none())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::{Arc, Mutex};

    fn full_message() -> Message {
        Message::new(vec![1, 2, 3, 255])
            .with_key("k-1")
            .with_routing_key("order.placed")
            .with_header("a", "1")
            .with_header("b", "two")
            .with_priority(3)
            .with_expiry(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123))
    }

    #[test]
    fn stored_form_round_trips_every_field() {
        let msg = full_message();
        let bytes = msg.to_bytes().unwrap();
        assert_eq!(bytes[0], STORED_FORMAT_VERSION);
        assert_eq!(Message::from_bytes(&bytes).unwrap(), msg);
    }

    /// The stored form as it was before the routing key: the array of the
    /// five fields it had, for the test that old data stays readable.
    fn stored_before_routing_key(msg: &Message) -> Vec<u8> {
        let mut out = vec![STORED_FORMAT_VERSION];
        let old = (
            serde_bytes::Bytes::new(msg.body()),
            msg.key(),
            msg.headers(),
            msg.priority(),
            msg.expires_at_ms(),
        );
        rmp_serde::encode::write(&mut out, &old).unwrap();
        out
    }

    #[test]
    fn messages_stored_before_the_routing_key_read_without_one() {
        let msg = Message::new(b"old".to_vec())
            .with_key("k")
            .with_header("a", "1");
        let old = stored_before_routing_key(&msg);
        let read = Message::from_bytes(&old).unwrap();
        assert_eq!(read, msg);
        assert_eq!(read.routing_key(), None);
        // And a message without one is still stored exactly as before, so
        // an older build reads it too.
        assert_eq!(msg.to_bytes().unwrap(), old);
        let routed = msg.with_routing_key("r");
        assert_ne!(routed.to_bytes().unwrap(), old);
        assert_eq!(
            Message::from_bytes(&routed.to_bytes().unwrap())
                .unwrap()
                .routing_key(),
            Some("r")
        );
    }

    #[test]
    fn unknown_version_is_named_in_the_error() {
        let mut bytes = full_message().to_bytes().unwrap();
        bytes[0] = 9;
        match Message::from_bytes(&bytes) {
            Err(e @ Error::Codec { .. }) => assert!(e.to_string().contains("version 9"), "{e}"),
            other => panic!("expected a codec error, got {other:?}"),
        }
    }

    #[test]
    fn empty_and_trailing_bytes_are_codec_errors() {
        assert!(matches!(Message::from_bytes(&[]), Err(Error::Codec { .. })));
        let mut bytes = full_message().to_bytes().unwrap();
        bytes.push(0);
        assert!(matches!(
            Message::from_bytes(&bytes),
            Err(Error::Codec { .. })
        ));
    }

    #[test]
    fn every_truncation_is_a_codec_error() {
        let bytes = full_message().to_bytes().unwrap();
        for len in 0..bytes.len() {
            assert!(
                matches!(Message::from_bytes(&bytes[..len]), Err(Error::Codec { .. })),
                "truncated to {len} bytes decoded"
            );
        }
    }

    #[test]
    fn bytes_and_strings_convert_to_plain_messages() {
        let plain = Message::new(b"job".to_vec());
        assert_eq!(Message::from(b"job".to_vec()), plain);
        assert_eq!(Message::from(&b"job"[..]), plain);
        assert_eq!(Message::from(b"job"), plain);
        assert_eq!(Message::from("job"), plain);
        assert_eq!(Message::from(String::from("job")), plain);
        assert_eq!(plain.key(), None);
        assert_eq!(plain.routing_key(), None);
        assert!(plain.headers().is_empty());
        assert_eq!(plain.priority(), 0);
        assert_eq!(plain.expires_at(), None);
    }

    #[test]
    fn expiry_is_compared_to_the_millisecond() {
        let at = UNIX_EPOCH + Duration::from_secs(5);
        let msg = Message::new(vec![]).with_expiry(at);
        assert!(!msg.is_expired_at(at - Duration::from_millis(1)));
        assert!(msg.is_expired_at(at));
        assert!(!Message::new(vec![]).is_expired_at(SystemTime::now()));
        let before_epoch = UNIX_EPOCH - Duration::from_secs(1);
        assert!(Message::new(vec![])
            .with_expiry(before_epoch)
            .is_expired_at(UNIX_EPOCH));
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Order {
        id: u64,
        items: Vec<String>,
    }

    #[test]
    fn typed_payloads_round_trip_and_mismatches_are_codec_errors() {
        let order = Order {
            id: 9,
            items: vec!["tea".into()],
        };
        let msg = Message::encode(&order).unwrap();
        let delivery = Delivery::without_acker(msg);
        assert_eq!(delivery.decode::<Order>().unwrap(), order);
        assert!(matches!(
            delivery.decode::<String>(),
            Err(Error::Codec { .. })
        ));
    }

    /// Records what happened to each delivery it settles.
    struct Recorder(Arc<Mutex<Vec<&'static str>>>);

    impl Acker for Recorder {
        fn ack(self: Box<Self>, multiple: bool) -> Result<()> {
            let what = if multiple { "ack-multiple" } else { "ack" };
            self.0.lock().unwrap().push(what);
            Ok(())
        }
        fn nack(self: Box<Self>, requeue: bool) -> Result<()> {
            let what = if requeue { "nack-requeue" } else { "nack-drop" };
            self.0.lock().unwrap().push(what);
            Ok(())
        }
    }

    #[test]
    fn each_delivery_is_settled_exactly_once() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let new = || Delivery::new(Message::new(vec![]), Box::new(Recorder(log.clone())));
        new().ack().unwrap();
        new().ack_multiple().unwrap();
        new().nack(false).unwrap();
        new().nack(true).unwrap();
        drop(new());
        assert_eq!(
            *log.lock().unwrap(),
            [
                "ack",
                "ack-multiple",
                "nack-drop",
                "nack-requeue",
                "nack-requeue"
            ]
        );
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic_a_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            // Ok is possible for bytes that happen to be valid; the point is
            // that anything else is a codec error rather than a panic.
            if let Err(e) = Message::from_bytes(&bytes) {
                prop_assert!(matches!(e, Error::Codec { .. }), "{}", e);
            }
            let delivery = Delivery::without_acker(Message::new(bytes));
            if let Err(e) = delivery.decode::<Order>() {
                prop_assert!(matches!(e, Error::Codec { .. }), "{}", e);
            }
        }

        #[test]
        fn version_byte_then_random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut stored = vec![STORED_FORMAT_VERSION];
            stored.extend(bytes);
            if let Err(e) = Message::from_bytes(&stored) {
                prop_assert!(matches!(e, Error::Codec { .. }), "{}", e);
            }
        }

        #[test]
        fn any_message_round_trips(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            key in proptest::option::of(".{0,20}"),
            routing_key in proptest::option::of(".{0,20}"),
            headers in proptest::collection::btree_map(".{0,8}", ".{0,8}", 0..4),
            priority in any::<u8>(),
            expiry in proptest::option::of(any::<u64>()),
        ) {
            let mut msg = Message::new(body).with_priority(priority);
            if let Some(key) = key {
                msg = msg.with_key(key);
            }
            if let Some(routing_key) = routing_key {
                msg = msg.with_routing_key(routing_key);
            }
            for (name, value) in headers {
                msg = msg.with_header(name, value);
            }
            if let Some(ms) = expiry {
                msg = msg.with_expiry(UNIX_EPOCH + Duration::from_millis(ms));
            }
            let bytes = msg.to_bytes().unwrap();
            prop_assert_eq!(Message::from_bytes(&bytes).unwrap(), msg);
        }
    }
}
