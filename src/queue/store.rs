//! The storage seam under the queue engine: the [`Store`] trait, the
//! [`Batch`]es it applies and the [`Space`]s it keeps keys in. The engine
//! never talks to fjall directly.

use crate::error::Result;

/// The spaces the engine keeps its keys in. Each is a separate keyspace in
/// fjall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Space {
    /// Topic records, id allocation, sequence reservations, application
    /// metadata.
    Meta,
    /// Message bytes, by topic id and message sequence.
    Messages,
    /// Queue entries, by subscriber id, priority and position.
    Queue,
    /// Dead-lettered entries, by subscriber id and position.
    DeadLetters,
    /// Dedupe key to message sequence, for undelivered keyed messages.
    Dedupe,
    /// Delivery counts of entries that were delivered and not yet acked.
    Attempts,
    /// How many subscribers still hold a fanned-out message.
    Refs,
    /// Per-subscriber counters: entries, dead-lettered, expired.
    Stats,
}

impl Space {
    /// Every space, in a fixed order.
    pub const ALL: [Space; 8] = [
        Space::Meta,
        Space::Messages,
        Space::Queue,
        Space::DeadLetters,
        Space::Dedupe,
        Space::Attempts,
        Space::Refs,
        Space::Stats,
    ];

    /// The space's name: the fjall keyspace name (stored on disk, so it
    /// never changes).
    pub fn name(self) -> &'static str {
        match self {
            Space::Meta => "meta",
            Space::Messages => "messages",
            Space::Queue => "queue",
            Space::DeadLetters => "dead",
            Space::Dedupe => "dedupe",
            Space::Attempts => "attempts",
            Space::Refs => "refs",
            Space::Stats => "stats",
        }
    }
}

/// One write of a [`Batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Inserts or replaces `key`.
    Put(Space, Vec<u8>, Vec<u8>),
    /// Deletes `key`, whatever was written under it before.
    Delete(Space, Vec<u8>),
    /// Deletes a key that was written exactly once (see [`Store`]).
    DeleteWeak(Space, Vec<u8>),
}

/// Operations applied together, atomically, by [`Store::write`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// The operations, applied in order.
    pub ops: Vec<Op>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Batch::default()
    }

    /// Adds a put.
    pub fn put(&mut self, space: Space, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push(Op::Put(space, key, value));
    }

    /// Adds a delete.
    pub fn delete(&mut self, space: Space, key: Vec<u8>) {
        self.ops.push(Op::Delete(space, key));
    }

    /// Adds a weak delete, for keys written exactly once.
    pub fn delete_weak(&mut self, space: Space, key: Vec<u8>) {
        self.ops.push(Op::DeleteWeak(space, key));
    }

    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A key and its value, as [`Store::scan`] returns them.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// A sorted key-value store with atomic batches, split into a few named
/// [`Space`]s: what the queue engine runs on.
///
/// The engine writes [`Batch`]es and reads ranges through this trait, so
/// the same engine runs on [`FjallStore`](super::FjallStore) (on disk, the
/// default) and on [`MemoryStore`](super::MemoryStore) (tests, throwaway
/// queues), or on a store of your own
/// ([`Queue::with_store`](super::Queue::with_store)).
///
/// # What an implementation promises
///
/// - Keys sort as bytes, so the engine's big-endian integer keys come back
///   in queue order.
/// - [`write`](Store::write) applies a whole batch atomically: after a
///   crash either every operation of the batch is there or none is. It is
///   visible to readers as soon as it returns; it need not be on disk yet.
/// - [`sync`](Store::sync) makes every batch written before it durable;
///   the engine calls it once per group-commit round, for many publishers.
///   [`flush`](Store::flush) hands written batches to the OS, which is
///   enough to survive a crash of the process but not of the machine.
/// - [`Op::DeleteWeak`] deletes a key that was written exactly once: the
///   store may drop the delete marker as soon as it meets the value
///   (fjall's `remove_weak`), so a drained queue leaves no tombstones
///   behind.
pub trait Store: Send + Sync {
    /// The value under `key`.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::Error::Storage) when the store fails.
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Up to `limit` entries with `from <= key < to`, in key order.
    ///
    /// # Errors
    ///
    /// As [`Store::get`].
    fn scan(&self, space: Space, from: &[u8], to: &[u8], limit: usize) -> Result<Vec<KeyValue>>;

    /// Applies `batch` atomically; visible at once, durable after the next
    /// [`Store::sync`].
    ///
    /// # Errors
    ///
    /// As [`Store::get`]; nothing of the batch is applied then.
    fn write(&self, batch: Batch) -> Result<()>;

    /// Hands every written batch to the OS: safe from a crash of the
    /// process, not from one of the machine.
    ///
    /// # Errors
    ///
    /// As [`Store::get`].
    fn flush(&self) -> Result<()>;

    /// Makes every written batch durable (fsync).
    ///
    /// # Errors
    ///
    /// As [`Store::get`].
    fn sync(&self) -> Result<()>;

    /// A clean close: leaves the store so that the next open has nothing
    /// to replay (fjall writes its memtables to tables, so its journal
    /// holds nothing newer than them). The engine calls it once, from
    /// [`Queue::close`](super::Queue::close), right after a [`Store::sync`] that succeeded; writes
    /// after it (late acks) are still allowed. The default does nothing.
    ///
    /// # Errors
    ///
    /// As [`Store::get`].
    fn checkpoint(&self) -> Result<()> {
        Ok(())
    }
}
