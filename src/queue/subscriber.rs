//! A subscriber's handle: blocking receives, acks, nacks, reset, and its
//! dead-letter queue.
//!
//! Consumers block on the subscriber's Condvar and are woken by the publish,
//! nack, reset or redelivery that gives them something to take, by
//! [`Interrupter::interrupt`], or by the queue closing; they never poll.
//! Several handles (on several threads) for one subscriber compete for its
//! entries: each entry goes to one of them.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::engine::Shared;
use crate::error::{Error, Result};
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
    pub(crate) fn from_queue_key(key: &[u8]) -> Option<Self> {
        if key.len() != 13 {
            return None;
        }
        Some(EntryId {
            priority: key[4],
            position: u64::from_be_bytes(key[5..13].try_into().ok()?),
            delivery: 0,
        })
    }

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
    /// was in flight: the count is stored, see the queue module docs).
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

/// Counters of one subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberStats {
    /// The topic.
    pub topic: String,
    /// The subscriber.
    pub subscriber: String,
    /// Entries waiting to be delivered (not those set aside because their
    /// message is corrupt: see `next_batch`).
    pub depth: u64,
    /// Entries delivered and not yet acked.
    pub in_flight: u64,
    /// Entries in the dead-letter queue.
    pub dead_lettered: u64,
    /// Messages dropped because they expired before delivery, ever.
    pub expired: u64,
}

/// A handle on one subscriber of one topic. See the module docs.
pub struct Subscriber {
    pub(crate) shared: Arc<Shared>,
    pub(crate) id: u32,
    pub(crate) topic: String,
    pub(crate) name: String,
    pub(crate) interrupted: Arc<AtomicBool>,
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("topic", &self.topic)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Wakes a [`Subscriber`]'s blocked receives and makes them, and every later
/// one on that handle, return [`Error::Closed`]. For owners that need their
/// consumer threads to stop.
#[derive(Clone)]
pub struct Interrupter {
    shared: Arc<Shared>,
    id: u32,
    flag: Arc<AtomicBool>,
}

impl fmt::Debug for Interrupter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interrupter").finish_non_exhaustive()
    }
}

impl Interrupter {
    /// Interrupts the handle it came from.
    pub fn interrupt(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let state = self.shared.lock();
        if let Some(sub) = state.subs.get(&self.id) {
            sub.cond.notify_all();
        }
    }
}

impl Subscriber {
    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The subscriber's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Takes up to `max` messages, waiting up to `timeout` (`None`: without
    /// limit) for the first; an empty vector means the time ran out (no
    /// error: see the crate docs on timeouts).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] when the queue closed or the handle was
    /// interrupted; [`Error::Corrupt`] naming the key when the next queue
    /// entry itself is unreadable (it stays where it is); [`Error::Storage`].
    /// An entry whose *message* is corrupt (undecodable, missing, in a
    /// damaged table block) is no error: it is set aside, not delivered,
    /// logged at ERROR with the key and file, and the call goes on with the
    /// entries after it; it stays in the store and is met again after a
    /// reopen.
    pub fn next_batch(&self, max: usize, timeout: Option<Duration>) -> Result<Vec<Received>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = self.shared.lock();
        loop {
            if state.closed {
                return Err(Error::closed(format!(
                    "queue of subscriber `{}`",
                    self.name
                )));
            }
            if self.interrupted.load(Ordering::SeqCst) {
                return Err(Error::closed(format!("subscriber `{}` handle", self.name)));
            }
            let got = state.take(self.id, max)?;
            if !got.is_empty() || max == 0 {
                if std::mem::take(&mut state.wake_sweeper) {
                    self.shared.sweeper.notify_one();
                }
                return Ok(got);
            }
            let wait = match deadline {
                None => None,
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(Vec::new());
                    }
                    Some(d - now)
                }
            };
            let cond = match state.subs.get_mut(&self.id) {
                Some(sub) => {
                    sub.waiters += 1;
                    sub.cond.clone()
                }
                None => return Err(Error::closed("subscriber")),
            };
            state = match wait {
                None => cond.wait(state).unwrap_or_else(|e| e.into_inner()),
                Some(t) => {
                    cond.wait_timeout(state, t)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
            if let Some(sub) = state.subs.get_mut(&self.id) {
                sub.waiters -= 1;
            }
        }
    }

    /// Takes one message, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// As [`next_batch`](Self::next_batch).
    pub fn recv(&self) -> Result<Received> {
        loop {
            if let Some(r) = self.next_batch(1, None)?.pop() {
                return Ok(r);
            }
        }
    }

    /// Takes one message, waiting at most `timeout`; `Ok(None)` when none
    /// came in time (a receive that times out is no error: see the crate
    /// docs on timeouts).
    ///
    /// # Errors
    ///
    /// As [`next_batch`](Self::next_batch).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Received>> {
        Ok(self.next_batch(1, Some(timeout))?.pop())
    }

    /// Acks deliveries: each entry is deleted, and its message once every
    /// subscriber acked it. Returns how many were acked. Acks work after
    /// the queue closed, until the last handle is dropped.
    ///
    /// Every id must name the current delivery of an in-flight entry; if
    /// one does not, nothing is acked.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming `ids[i]` when that id is stale
    /// (the entry came back after an ack timeout, nack or reset and was
    /// delivered again: only the newest delivery can be settled) or not in
    /// flight (already acked, nacked, dead-lettered, or never delivered);
    /// [`Error::Storage`].
    pub fn ack(&self, ids: &[EntryId]) -> Result<usize> {
        self.shared.lock().ack(self.id, ids, true)
    }

    /// Acks `id` and every entry this subscriber had delivered before it
    /// (AMQP's `multiple`).
    ///
    /// # Errors
    ///
    /// As [`ack`](Self::ack), for `id`.
    pub fn ack_through(&self, id: EntryId) -> Result<usize> {
        self.shared.lock().ack_through(self.id, id)
    }

    /// Rejects deliveries: with `requeue` the entries go back to the front
    /// (or to the dead-letter queue once they reached the topic's delivery
    /// limit), without it to the dead-letter queue at once. Returns how
    /// many.
    ///
    /// # Errors
    ///
    /// As [`ack`](Self::ack): a stale or unknown id rejects nothing.
    pub fn nack(&self, ids: &[EntryId], requeue: bool) -> Result<usize> {
        self.shared.lock().nack(self.id, ids, requeue, true)
    }

    /// Gives deliveries that never reached a consumer back to the front
    /// without counting the delivery: for code that took a batch and must
    /// stop before handing all of it on.
    ///
    /// # Errors
    ///
    /// As [`ack`](Self::ack).
    pub fn release(&self, ids: &[EntryId]) -> Result<usize> {
        self.shared.lock().release(self.id, ids, true)
    }

    /// As [`ack`](Self::ack), but ids that are stale or not in flight are
    /// skipped instead of refused: for owners (the server) that already
    /// checked them and must settle what is still theirs.
    pub(crate) fn ack_current(&self, ids: &[EntryId]) -> Result<usize> {
        self.shared.lock().ack(self.id, ids, false)
    }

    /// As [`nack`](Self::nack), skipping stale ids (see `ack_current`).
    pub(crate) fn nack_current(&self, ids: &[EntryId], requeue: bool) -> Result<usize> {
        self.shared.lock().nack(self.id, ids, requeue, false)
    }

    /// As [`release`](Self::release), skipping stale ids (see
    /// `ack_current`).
    pub(crate) fn release_current(&self, ids: &[EntryId]) -> Result<usize> {
        self.shared.lock().release(self.id, ids, false)
    }

    /// Puts every in-flight entry of this subscriber back at the front, as a
    /// consumer that reconnects wants (ppmq's ResetAck).
    ///
    /// # Errors
    ///
    /// [`Error::Storage`].
    pub fn reset(&self) -> Result<usize> {
        self.shared.lock().reset(self.id)
    }

    /// The subscriber's counters.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] when the subscriber's state is missing.
    pub fn stats(&self) -> Result<SubscriberStats> {
        self.shared.lock().stats(self.id)
    }

    /// Up to `limit` dead letters, oldest first.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] naming the key of an unreadable entry;
    /// [`Error::Storage`].
    pub fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        self.shared.lock().dead_letters(self.id, limit)
    }

    /// Moves every dead letter back to the end of its queue, with a fresh
    /// delivery count. Returns how many.
    ///
    /// # Errors
    ///
    /// As [`dead_letters`](Self::dead_letters).
    pub fn replay_dead_letters(&self) -> Result<usize> {
        self.shared.lock().drain_dead(self.id, true)
    }

    /// Deletes every dead letter. Returns how many.
    ///
    /// # Errors
    ///
    /// As [`dead_letters`](Self::dead_letters).
    pub fn purge_dead_letters(&self) -> Result<usize> {
        self.shared.lock().drain_dead(self.id, false)
    }

    /// A handle that interrupts this one's receives from another thread.
    pub fn interrupter(&self) -> Interrupter {
        Interrupter {
            shared: self.shared.clone(),
            id: self.id,
            flag: self.interrupted.clone(),
        }
    }
}
