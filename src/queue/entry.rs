//! The value types a consumer handles: [`EntryId`] (what an ack names),
//! [`Received`], [`Peeked`], [`DeadLetter`] and [`SubscriberStats`]. They live apart
//! from the engine and the [`Subscriber`](super::Subscriber) handle because
//! both use them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::message::Message;

/// One delivery of an entry: where the entry sits in a subscriber's queue
/// (its priority level and position) and which delivery of it this is.
/// Acks and nacks are addressed by it.
///
/// An entry that comes back (ack timeout, nack, reset, restart) and is
/// delivered again gets a new `delivery` generation, so the id of an
/// earlier delivery no longer settles it: acking it is an error, never an
/// ack of someone else's copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId {
    /// The priority level, 0 the highest.
    pub priority: u8,
    /// The position within the level; later entries have higher positions.
    pub position: u64,
    /// The delivery generation: [`Received::deliveries`] of the delivery
    /// this id came with (1 for the first). 0 names no delivery.
    pub delivery: u32,
}

impl EntryId {
    /// The entry without the delivery: what the engine's maps are keyed
    /// by, whichever delivery is current.
    pub(crate) fn slot(self) -> Self {
        EntryId {
            delivery: 0,
            ..self
        }
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}#{}", self.priority, self.position)?;
        if self.delivery > 0 {
            write!(f, " (delivery {})", self.delivery)?;
        }
        Ok(())
    }
}

/// A message taken from a subscriber's queue, in flight until acked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// What to ack or nack: this delivery of the entry.
    pub id: EntryId,
    /// The message as published (the latest body, with dedupe).
    pub message: Message,
    /// How many times it was delivered, this time included; more than 1
    /// means it came back (nack, reset, ack timeout, or a restart while it
    /// was in flight: the count is stored, see
    /// [`Subscriber::next_batch`](super::Subscriber::next_batch)).
    pub deliveries: u32,
}

/// A message a receive would take next, looked at without taking it: from
/// [`Subscriber::peek`](super::Subscriber::peek). It is not in flight,
/// its delivery is not counted and it has no ack deadline, so there is
/// nothing to settle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peeked {
    /// Where the entry sits; `delivery` is 0, as a peek is no delivery.
    pub id: EntryId,
    /// The message as published (the latest body, with dedupe).
    pub message: Message,
    /// How many times it was delivered so far: 0 for a message never
    /// delivered. The receive that takes it is delivery `deliveries + 1`.
    pub deliveries: u32,
}

/// A message in a subscriber's dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its position in the dead-letter queue.
    pub position: u64,
    /// The message.
    pub message: Message,
    /// How many times it was delivered before it was dead-lettered.
    pub deliveries: u32,
}

/// Counters of one subscriber ([`Queue::stats`](super::Queue::stats),
/// [`Subscriber::stats`](super::Subscriber::stats)). Serializes with these
/// field names (the C ABI's stats JSON and the CLI's `stats --json` are
/// this); fields added later read as 0 from older JSON.
///
/// `depth`, `in_flight`, `dead_lettered` and `expired` are stored and
/// survive a restart; `published`, `delivered`, `redelivered`, `acked`
/// and `nacked` count what went through the subscriber since the queue
/// was opened (an operator's rates), and start at 0 at every open.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriberStats {
    /// The topic.
    pub topic: String,
    /// The subscriber.
    pub subscriber: String,
    /// Entries waiting to be delivered (not those set aside because their
    /// message is corrupt: see
    /// [`Subscriber::next_batch`](super::Subscriber::next_batch)).
    pub depth: u64,
    /// Entries delivered and not yet acked.
    pub in_flight: u64,
    /// Entries in the dead-letter queue.
    pub dead_lettered: u64,
    /// Messages dropped because they expired before delivery, ever.
    pub expired: u64,
    /// Entries published to the subscriber since the open (a dedupe that
    /// replaced an undelivered message's body adds none).
    #[serde(default)]
    pub published: u64,
    /// Deliveries since the open, redeliveries included.
    #[serde(default)]
    pub delivered: u64,
    /// Deliveries since the open of an entry delivered before (after a
    /// nack, an ack timeout, a reset or a restart).
    #[serde(default)]
    pub redelivered: u64,
    /// Deliveries acked since the open.
    #[serde(default)]
    pub acked: u64,
    /// Deliveries nacked since the open, requeued or dead-lettered (a
    /// release of deliveries no consumer saw is not one).
    #[serde(default)]
    pub nacked: u64,
}
