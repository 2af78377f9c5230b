//! The wire protocol of the queue server: what a client sends
//! ([`Request`]) and what the server sends back ([`Response`]).
//!
//! Every frame is a 4-byte big-endian length followed by that many bytes of
//! `MessagePack` (rmp-serde with named fields, so every struct is a map keyed
//! by field name). An enum value is a map with one entry: the variant's name
//! in snake case, then its fields. The README's "Queue server" section
//! spells out every frame for implementers in other languages.
//!
//! The first frame of a connection is the client's [`Request::Hello`]; the
//! server answers [`Response::Welcome`] or a fatal [`Response::Error`]:
//! `protocol` for a bad magic or version, `unauthorized` when the server
//! has a token and the hello's is missing or wrong (before any request is
//! read, so nothing of a refused client is applied). Version 2 added the
//! hello's `token`; a version 1 client is refused with a `protocol` error
//! that names both versions.
//! Requests carry an `id` chosen by the client; the reply to a request
//! carries the same `id`. Id 0 is reserved: requests with id 0 get no reply
//! (fire and forget), and an error with id 0 concerns the whole connection,
//! which the server then closes.
//!
//! # Limits
//!
//! - Idle timeout: after the handshake, a connection that sends no frame
//!   for the `idle_timeout_ms` announced in [`Response::Welcome`] (60 s by
//!   default, [`QueueServerConfig::idle_timeout`](super::QueueServerConfig::idle_timeout))
//!   gets a fatal `idle` error and is closed; a subscription does not
//!   count as activity, so a client waiting for deliveries keeps its
//!   connection alive with [`Request::Ping`] (id 0: no reply), as the
//!   [`QueueClient`](super::QueueClient) does every third of the timeout. A frame
//!   begun must go on arriving: a pause of the idle timeout inside a frame
//!   also closes the connection.
//! - Subscriptions: at most
//!   [`QueueServerConfig::max_subscriptions`](super::QueueServerConfig::max_subscriptions)
//!   (64 by default) at once per connection. One more is refused with an
//!   `invalid_argument` error naming `max_subscriptions`, for that request
//!   only; the connection and its other subscriptions go on.
//! - Frames: a body over `max_frame` is refused (fatal `frame_too_large`)
//!   before it is read; the server's buffer for a frame grows with the
//!   bytes that really arrive, so an announced length costs nothing.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, ObjectKind};
use crate::message::Message;
use crate::queue::{DeadLetter, EntryId, Peeked, SubscriberStats};

/// The magic string of [`Request::Hello`].
pub const MAGIC: &str = "syncmq";

/// The protocol version this build speaks: 2, the hello with a `token`.
pub const PROTOCOL_VERSION: u32 = 2;

/// The most messages one [`Request::Peek`] may ask for: its reply is one
/// frame.
pub const MAX_PEEK: u32 = 1000;

/// A message on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireMessage {
    /// The body (`MessagePack` `bin`).
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// The message's identity ([`Message::key`]), if any: what a topic
    /// with dedupe compares.
    #[serde(default)]
    pub key: Option<String>,
    /// String headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The priority, 0 the highest.
    #[serde(default)]
    pub priority: u8,
    /// The expiry, in milliseconds since the Unix epoch.
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
    /// Where the message is headed ([`Message::routing_key`]), if anywhere;
    /// left out of the frame when unset, so older peers read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key: Option<String>,
}

impl From<&Message> for WireMessage {
    fn from(m: &Message) -> Self {
        WireMessage {
            body: m.body().to_vec(),
            key: m.key().map(str::to_string),
            headers: m.headers().clone(),
            priority: m.priority(),
            // An expiry before the epoch has passed already: 0 says so.
            expires_at_ms: m.expires_at().map(|at| {
                at.duration_since(UNIX_EPOCH)
                    .map_or(0, crate::millis::to_ms)
            }),
            routing_key: m.routing_key().map(str::to_string),
        }
    }
}

impl From<WireMessage> for Message {
    fn from(w: WireMessage) -> Self {
        let mut m = Message::new(w.body).with_priority(w.priority);
        if let Some(key) = w.key {
            m = m.with_key(key);
        }
        if let Some(routing_key) = w.routing_key {
            m = m.with_routing_key(routing_key);
        }
        for (name, value) in w.headers {
            m = m.with_header(name, value);
        }
        if let Some(ms) = w.expires_at_ms {
            if let Some(at) = UNIX_EPOCH.checked_add(Duration::from_millis(ms)) {
                m = m.with_expiry(at);
            } else {
                m = m.with_expiry(SystemTime::UNIX_EPOCH);
            }
        }
        m
    }
}

/// One delivery of an entry of a subscriber's queue: what acks and nacks
/// name (as [`EntryId`]). Send it back exactly as it was delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WireEntry {
    /// The priority level.
    pub priority: u8,
    /// The position within the level.
    pub position: u64,
    /// The delivery generation; an ack naming an earlier delivery of an
    /// entry that was delivered again is refused. Absent: 0, which names
    /// no delivery.
    #[serde(default)]
    pub delivery: u32,
}

impl From<EntryId> for WireEntry {
    fn from(id: EntryId) -> Self {
        WireEntry {
            priority: id.priority,
            position: id.position,
            delivery: id.delivery,
        }
    }
}

impl From<WireEntry> for EntryId {
    fn from(e: WireEntry) -> Self {
        EntryId {
            priority: e.priority,
            position: e.position,
            delivery: e.delivery,
        }
    }
}

/// One message pushed to a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireDelivery {
    /// What to ack or nack.
    pub entry: WireEntry,
    /// Deliveries so far, this one included; above 1 means redelivered.
    pub deliveries: u32,
    /// The message.
    pub message: WireMessage,
}

/// A message a subscriber would receive next, on the wire (as [`Peeked`]):
/// the answer to [`Request::Peek`]. Nothing to settle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WirePeeked {
    /// Where the entry sits; `delivery` is 0 (a peek is no delivery).
    pub entry: WireEntry,
    /// Deliveries so far: 0 for a message never delivered.
    pub deliveries: u32,
    /// The message.
    pub message: WireMessage,
}

impl From<&Peeked> for WirePeeked {
    fn from(p: &Peeked) -> Self {
        WirePeeked {
            entry: p.id.into(),
            deliveries: p.deliveries,
            message: WireMessage::from(&p.message),
        }
    }
}

impl From<WirePeeked> for Peeked {
    fn from(p: WirePeeked) -> Self {
        Peeked {
            id: p.entry.into(),
            deliveries: p.deliveries,
            message: p.message.into(),
        }
    }
}

/// A subscriber's counters on the wire (as [`SubscriberStats`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireStats {
    /// The topic.
    pub topic: String,
    /// The subscriber.
    pub subscriber: String,
    /// Entries waiting.
    pub depth: u64,
    /// Entries delivered and not acked.
    pub in_flight: u64,
    /// Entries in the dead-letter queue.
    pub dead_lettered: u64,
    /// Messages dropped on expiry, ever.
    pub expired: u64,
    /// Entries published since the queue's open. The five counts since
    /// the open are later additions: a frame without them (an older
    /// server) reads them as 0.
    #[serde(default)]
    pub published: u64,
    /// Deliveries since the open.
    #[serde(default)]
    pub delivered: u64,
    /// Redeliveries since the open.
    #[serde(default)]
    pub redelivered: u64,
    /// Acks since the open.
    #[serde(default)]
    pub acked: u64,
    /// Nacks since the open.
    #[serde(default)]
    pub nacked: u64,
}

impl From<SubscriberStats> for WireStats {
    fn from(s: SubscriberStats) -> Self {
        WireStats {
            topic: s.topic,
            subscriber: s.subscriber,
            depth: s.depth,
            in_flight: s.in_flight,
            dead_lettered: s.dead_lettered,
            expired: s.expired,
            published: s.published,
            delivered: s.delivered,
            redelivered: s.redelivered,
            acked: s.acked,
            nacked: s.nacked,
        }
    }
}

impl From<WireStats> for SubscriberStats {
    fn from(s: WireStats) -> Self {
        SubscriberStats {
            topic: s.topic,
            subscriber: s.subscriber,
            depth: s.depth,
            in_flight: s.in_flight,
            dead_lettered: s.dead_lettered,
            expired: s.expired,
            published: s.published,
            delivered: s.delivered,
            redelivered: s.redelivered,
            acked: s.acked,
            nacked: s.nacked,
        }
    }
}

/// A dead letter on the wire (as [`DeadLetter`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireDeadLetter {
    /// Its position in the dead-letter queue.
    pub position: u64,
    /// Deliveries before it was dead-lettered.
    pub deliveries: u32,
    /// The message.
    pub message: WireMessage,
}

impl From<&DeadLetter> for WireDeadLetter {
    fn from(d: &DeadLetter) -> Self {
        WireDeadLetter {
            position: d.position,
            deliveries: d.deliveries,
            message: WireMessage::from(&d.message),
        }
    }
}

impl From<WireDeadLetter> for DeadLetter {
    fn from(d: WireDeadLetter) -> Self {
        DeadLetter {
            position: d.position,
            deliveries: d.deliveries,
            message: d.message.into(),
        }
    }
}

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// The first frame: `magic` is `"syncmq"`, `version` the protocol
    /// version the client speaks, `token` the shared secret of a server
    /// that requires one.
    Hello {
        /// Always [`MAGIC`].
        magic: String,
        /// The client's [`PROTOCOL_VERSION`].
        version: u32,
        /// The server's token, when it has one
        /// ([`QueueServerConfig::with_token`](super::QueueServerConfig::with_token));
        /// left out of the frame when the client has none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// Publishes `messages` to `topic` in one atomic batch; the reply,
    /// [`Response::Published`], comes once they are durable.
    Publish {
        /// Request id.
        id: u64,
        /// The topic.
        topic: String,
        /// The messages.
        messages: Vec<WireMessage>,
    },
    /// Starts pushing `subscriber`'s messages on this connection, at most
    /// `batch` unacknowledged at a time; the reply is
    /// [`Response::Subscribed`] with the subscription's number, then
    /// [`Response::Deliver`] frames in queue order.
    Subscribe {
        /// Request id.
        id: u64,
        /// The topic.
        topic: String,
        /// The subscriber's name.
        subscriber: String,
        /// Unacknowledged deliveries allowed at once (1 or more).
        batch: u32,
        /// Deliveries after which the server stops pushing (the
        /// subscription stays open for acks); absent or nil: no limit.
        #[serde(default)]
        max: Option<u64>,
    },
    /// Stops a subscription; its unacknowledged deliveries are redelivered.
    Unsubscribe {
        /// Request id.
        id: u64,
        /// The subscription's number.
        sub: u64,
    },
    /// Acknowledges deliveries of a subscription; with `multiple`, every
    /// delivery of the subscription up to and including each named one.
    Ack {
        /// Request id (0: no reply).
        id: u64,
        /// The subscription's number.
        sub: u64,
        /// The entries.
        entries: Vec<WireEntry>,
        /// AMQP's `multiple`.
        #[serde(default)]
        multiple: bool,
    },
    /// Rejects deliveries: with `requeue` they come back (or go to the
    /// dead-letter queue at the topic's delivery limit), without it they go
    /// to the dead-letter queue.
    Nack {
        /// Request id (0: no reply).
        id: u64,
        /// The subscription's number.
        sub: u64,
        /// The entries.
        entries: Vec<WireEntry>,
        /// Deliver again rather than dead-letter.
        requeue: bool,
    },
    /// ppmq's reconnect command: every in-flight entry of the subscriber
    /// goes back to the front of its queue.
    Reset {
        /// Request id.
        id: u64,
        /// The topic.
        topic: String,
        /// The subscriber.
        subscriber: String,
    },
    /// Up to `limit` (1 to [`MAX_PEEK`]) of the messages the subscriber's
    /// next receives would take, in that order, without taking them (see
    /// [`Subscriber::peek`](crate::queue::Subscriber::peek)); the reply is
    /// [`Response::Peeked`]. New in version 2, with the token hello.
    Peek {
        /// Request id.
        id: u64,
        /// The topic.
        topic: String,
        /// The subscriber.
        subscriber: String,
        /// The most to return.
        limit: u32,
    },
    /// Counters of every subscriber of `topic`, or of every topic.
    Stats {
        /// Request id.
        id: u64,
        /// The topic; `None` for all.
        #[serde(default)]
        topic: Option<String>,
    },
    /// Up to `limit` dead letters of the subscriber, oldest first.
    DeadLetters {
        /// Request id.
        id: u64,
        /// The topic.
        topic: String,
        /// The subscriber.
        subscriber: String,
        /// The most to return.
        limit: u32,
    },
    /// Moves every dead letter of the subscriber back to its queue.
    ReplayDeadLetters {
        /// Request id.
        id: u64,
        /// The topic.
        topic: String,
        /// The subscriber.
        subscriber: String,
    },
    /// Keep-alive: does nothing but count as a frame for the server's idle
    /// timeout (see the module docs). The reply is [`Response::Done`] with
    /// `count` 0; with id 0 there is none.
    Ping {
        /// Request id (0: no reply).
        id: u64,
    },
}

impl Request {
    /// The request's id; 0 for [`Request::Hello`], which has none.
    pub fn id(&self) -> u64 {
        match self {
            Request::Hello { .. } => 0,
            Request::Publish { id, .. }
            | Request::Subscribe { id, .. }
            | Request::Unsubscribe { id, .. }
            | Request::Ack { id, .. }
            | Request::Nack { id, .. }
            | Request::Reset { id, .. }
            | Request::Peek { id, .. }
            | Request::Stats { id, .. }
            | Request::DeadLetters { id, .. }
            | Request::ReplayDeadLetters { id, .. }
            | Request::Ping { id } => *id,
        }
    }
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// The answer to [`Request::Hello`].
    Welcome {
        /// The protocol version the server speaks.
        version: u32,
        /// The largest frame the server accepts, in bytes (length prefix
        /// excluded).
        max_frame: u64,
        /// The server's idle timeout in milliseconds: a connection that
        /// sends no frame for this long is closed. Absent or nil: none.
        #[serde(default)]
        idle_timeout_ms: Option<u64>,
    },
    /// The messages of a publish are durable.
    Published {
        /// Request id.
        id: u64,
        /// How many messages.
        count: u64,
    },
    /// A subscription started.
    Subscribed {
        /// Request id.
        id: u64,
        /// The subscription's number on this connection.
        sub: u64,
    },
    /// Messages for a subscription, in queue order.
    Deliver {
        /// The subscription's number.
        sub: u64,
        /// The deliveries.
        deliveries: Vec<WireDelivery>,
    },
    /// A request that changes counts (ack, nack, reset, replay,
    /// unsubscribe) succeeded.
    Done {
        /// Request id.
        id: u64,
        /// How many entries it affected.
        count: u64,
    },
    /// The answer to [`Request::Stats`].
    Stats {
        /// Request id.
        id: u64,
        /// One row per subscriber.
        stats: Vec<WireStats>,
    },
    /// The answer to [`Request::Peek`].
    Peeked {
        /// Request id.
        id: u64,
        /// The messages, in the order receives would take them; empty
        /// when nothing is deliverable.
        messages: Vec<WirePeeked>,
    },
    /// The answer to [`Request::DeadLetters`].
    DeadLetters {
        /// Request id.
        id: u64,
        /// The dead letters, oldest first.
        letters: Vec<WireDeadLetter>,
    },
    /// A request failed (`id` > 0; the connection stays open), or the
    /// connection failed (`id` 0: the server closes it after this frame).
    Error {
        /// Request id, or 0 for the connection.
        id: u64,
        /// What kind of error, one word per [`Error`] variant:
        /// `invalid_argument`, `not_found`, `already_exists`, `closed`,
        /// `timeout`, `codec`, `corrupt`, `io`, `storage`, `disconnected`,
        /// `busy`, `refused`, `panicked`; and for the connection `protocol`,
        /// `frame_too_large`, `idle` and `unauthorized` (a missing or wrong
        /// token). `internal` for the rest. See
        /// [`error_from_wire`] for the [`Error`] each becomes.
        kind: String,
        /// The argument, key, object name or thread concerned, when there is
        /// one.
        #[serde(default)]
        name: Option<String>,
        /// For `not_found` and `already_exists`: `topic`, `subscriber`,
        /// `channel` or `queue` (an [`ObjectKind`]'s word).
        #[serde(default)]
        object: Option<String>,
        /// What went wrong, for people.
        message: String,
    },
}

impl Response {
    /// The error frame for `err` in answer to request `id`. Causes kept as
    /// sources travel as text: the client gets the variant back with the
    /// server's text as its cause (see [`error_from_wire`]).
    pub fn error(id: u64, err: &Error) -> Self {
        let text = |name: Option<&String>| (name.cloned(), err.cause_text());
        let ((name, message), object) = match err {
            Error::InvalidArgument { name, reason } => ((Some(name.clone()), reason.clone()), None),
            Error::NotFound { kind, name } | Error::AlreadyExists { kind, name } => (
                (Some(name.clone()), err.to_string()),
                Some(kind.as_str().to_string()),
            ),
            Error::Closed(what) => ((None, what.clone()), None),
            Error::Corrupt { key, reason } => ((Some(key.clone()), reason.clone()), None),
            Error::Busy { what, reason } => ((Some(what.clone()), reason.clone()), None),
            Error::Refused { text, .. } => ((None, text.clone()), None),
            Error::Panicked { what, message } => ((Some(what.clone()), message.clone()), None),
            _ => (text(None), None),
        };
        Response::Error {
            id,
            kind: wire_kind(err).into(),
            name,
            object,
            message,
        }
    }

    /// A protocol-level error frame (id 0): `kind` and `message`.
    pub fn fatal(kind: &str, message: impl Into<String>) -> Self {
        Response::Error {
            id: 0,
            kind: kind.into(),
            name: None,
            object: None,
            message: message.into(),
        }
    }
}

/// The [`Error::Refused`] code of a missing or wrong token: 403, as
/// RabbitMQ's `ACCESS_REFUSED` for refused credentials, so that one match
/// tells refused credentials from other refusals for both.
pub const UNAUTHORIZED: u16 = 403;

/// The wire's word for `err`'s variant.
fn wire_kind(err: &Error) -> &'static str {
    match err {
        Error::InvalidArgument { .. } => "invalid_argument",
        Error::NotFound { .. } => "not_found",
        Error::AlreadyExists { .. } => "already_exists",
        Error::Closed(_) => "closed",
        Error::Timeout { .. } => "timeout",
        Error::Codec { .. } => "codec",
        Error::Corrupt { .. } => "corrupt",
        Error::Io { .. } => "io",
        Error::Storage { .. } => "storage",
        Error::Disconnected { .. } => "disconnected",
        Error::Busy { .. } => "busy",
        Error::Refused { .. } => "refused",
        Error::Panicked { .. } => "panicked",
        _ => "internal",
    }
}

/// Turns an error frame back into an [`Error`] on the client side.
///
/// Each `kind` becomes its variant again; causes come back as the server's
/// text (`what` is `server`), and a timeout's `after` is zero (the client
/// did not wait it). `protocol` and `frame_too_large` are
/// [`Error::Codec`]; `idle` (the server closed an idle connection) is
/// [`Error::Disconnected`]; `unauthorized` (a missing or wrong token) is
/// [`Error::Refused`] with code 403 ([`UNAUTHORIZED`], RabbitMQ's
/// `ACCESS_REFUSED` for refused credentials), the text saying which;
/// `internal` and kinds this build does not know are [`Error::Refused`]
/// with code 0.
pub fn error_from_wire(
    kind: &str,
    name: Option<String>,
    object: Option<String>,
    message: String,
) -> Error {
    let name = name.unwrap_or_default();
    let object = object.and_then(|word| ObjectKind::from_word(&word));
    match (kind, object) {
        ("invalid_argument", _) => Error::invalid(name, message),
        ("not_found", Some(object)) => Error::not_found(object, name),
        ("already_exists", Some(object)) => Error::already_exists(object, name),
        ("closed", _) => Error::Closed(format!("server: {message}")),
        ("timeout", _) => Error::timeout(format!("server: {message}"), Duration::ZERO),
        ("codec" | "protocol" | "frame_too_large", _) => Error::codec_reason("server", message),
        ("corrupt", _) => Error::Corrupt {
            key: name,
            reason: message,
        },
        ("io", _) => Error::Io {
            what: "server".into(),
            source: crate::error::reason(message),
        },
        ("storage", _) => Error::storage_reason("server", message),
        ("disconnected", _) => Error::disconnected_reason("server", message),
        ("idle", _) => Error::disconnected_reason("server", format!("idle: {message}")),
        ("busy", _) => Error::Busy {
            what: if name.is_empty() {
                "server".into()
            } else {
                format!("server: {name}")
            },
            reason: message,
        },
        ("refused", _) => Error::refused(0, format!("server: {message}")),
        ("unauthorized", _) => Error::refused(UNAUTHORIZED, format!("server: {message}")),
        ("panicked", _) => Error::Panicked {
            what: format!("server: {name}"),
            message,
        },
        (other, _) => Error::refused(0, format!("server ({other}): {message}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_survives_the_wire_form() {
        let m = Message::new(b"x".to_vec())
            .with_key("k")
            .with_header("h", "v")
            .with_priority(2)
            .with_ttl(Duration::from_secs(60));
        let back: Message = WireMessage::from(&m).into();
        assert_eq!(back, m);
    }

    /// `err` through an error frame and back, as the client sees it.
    fn over_the_wire(err: &Error) -> Error {
        let frame = Response::error(7, err);
        let bytes = rmp_serde::to_vec_named(&frame).unwrap();
        match rmp_serde::from_slice::<Response>(&bytes).unwrap() {
            Response::Error {
                id: 7,
                kind,
                name,
                object,
                message,
            } => error_from_wire(&kind, name, object, message),
            other => panic!("not an error frame: {other:?}"),
        }
    }

    #[test]
    fn errors_round_trip_the_wire_as_their_variant() {
        let io = || std::io::Error::other("no space");
        let cases = [
            Error::invalid("batch", "must be at least 1"),
            Error::not_found(ObjectKind::Topic, "orders"),
            Error::already_exists(ObjectKind::Subscriber, "orders/billing"),
            Error::closed("queue"),
            Error::timeout("sync", Duration::from_secs(1)),
            Error::codec_reason("decode a frame", "truncated"),
            Error::Corrupt {
                key: "queue/00".into(),
                reason: "short".into(),
            },
            Error::io("start thread x", io()),
            Error::storage("fjall: write batch", io()),
            Error::disconnected("connect", io()),
            Error::Busy {
                what: "server".into(),
                reason: "64 connections".into(),
            },
            Error::refused(0, "no"),
            Error::Panicked {
                what: "request".into(),
                message: "boom".into(),
            },
        ];
        for err in cases {
            let back = over_the_wire(&err);
            assert_eq!(
                std::mem::discriminant(&back),
                std::mem::discriminant(&err),
                "{err:?} came back as {back:?}"
            );
            assert_eq!(back.is_transient(), err.is_transient(), "{err:?}");
        }
        // What identifies the error survives, and the cause's text.
        match over_the_wire(&Error::not_found(ObjectKind::Subscriber, "t/s")) {
            Error::NotFound { kind, name } => {
                assert_eq!((kind, name.as_str()), (ObjectKind::Subscriber, "t/s"));
            }
            other => panic!("{other:?}"),
        }
        let back = over_the_wire(&Error::storage("fjall: write batch", io()));
        assert!(
            back.to_string().contains("fjall: write batch: no space"),
            "{back}"
        );
        // A kind this build does not know is a refusal, never a panic.
        let unknown = error_from_wire("martian", None, None, "hello".into());
        assert!(
            matches!(unknown, Error::Refused { code: 0, ref text } if text.contains("martian"))
        );
    }

    #[test]
    fn requests_are_maps_keyed_by_variant() {
        let req = Request::Stats { id: 7, topic: None };
        let bytes = rmp_serde::to_vec_named(&req).unwrap();
        let value: rmpv_like::Value = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(
            value,
            rmpv_like::Value::Map(
                [(
                    "stats".to_string(),
                    rmpv_like::Value::Map(
                        [
                            ("id".to_string(), rmpv_like::Value::Int(7)),
                            ("topic".to_string(), rmpv_like::Value::Nil),
                        ]
                        .into()
                    )
                )]
                .into()
            )
        );
        assert_eq!(rmp_serde::from_slice::<Request>(&bytes).unwrap(), req);
    }

    /// Just enough of a dynamic `MessagePack` value to check the shape.
    mod rmpv_like {
        use std::collections::BTreeMap;

        #[derive(Debug, PartialEq, serde::Deserialize)]
        #[serde(untagged)]
        pub enum Value {
            Nil,
            Int(u64),
            Map(BTreeMap<String, Value>),
        }
    }
}
