//! [`Subscriber`]: a consumer's handle on one subscriber of one topic, and
//! its [`Interrupter`]. Besides blocking receives, a handle can say whether
//! anything is deliverable now ([`Subscriber::is_available`]), show what
//! is without taking it ([`Subscriber::peek`]) and call a
//! watcher when that may have changed ([`Subscriber::on_ready`]), for hosts
//! that wait in their own event loop (the C ABI's readiness fd) instead of
//! in a receive.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::entry::{DeadLetter, EntryId, Peeked, Received, SubscriberStats};
use super::state::{Shared, State};
use super::subscriber_state::ReadyFn;
use crate::error::{Error, Result};
use crate::thread::lock;

/// A handle on one subscriber of one topic: blocking receives, acks, nacks,
/// reset, and its dead-letter queue. From
/// [`Queue::subscribe`](super::Queue::subscribe).
///
/// Consumers block on the subscriber's Condvar and are woken by the publish,
/// nack, reset or redelivery that gives them something to take, by
/// [`Interrupter::interrupt`], or by the queue closing; they never poll.
/// Several handles (on several threads) for one subscriber compete for its
/// entries: each entry goes to one of them. A handle keeps the store's
/// files open until it is dropped, so acks still work after
/// [`Queue::close`](super::Queue::close).
pub struct Subscriber {
    pub(crate) shared: Arc<Shared>,
    pub(crate) id: u32,
    pub(crate) topic: String,
    pub(crate) name: String,
    pub(crate) interrupted: Arc<AtomicBool>,
    /// This handle's key among its subscriber's readiness watchers.
    pub(crate) handle: u64,
    /// Whether it registered a watcher, so that a drop of a handle that
    /// never did takes no lock.
    pub(crate) watching: AtomicBool,
}

/// Handle keys for [`Subscriber::on_ready`]: unique within the process.
static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

/// A key for a new [`Subscriber`] handle.
pub(crate) fn next_handle() -> u64 {
    NEXT_HANDLE.fetch_add(1, Ordering::Relaxed)
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
        let state = lock(&self.shared.state);
        if let Some(sub) = state.subs.get(&self.id) {
            sub.wake();
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
    /// error: see the crate docs on timeouts). The timeout is real time,
    /// whatever the queue's [`Clock`](super::Clock). Redeliveries come first, then
    /// the queue; priority 0 first, FIFO within a level.
    ///
    /// # Delivery counts survive restarts
    ///
    /// Taking an entry stores its new delivery count, and hands it to the OS
    /// before the messages are returned. So a delivery that reached a
    /// consumer counts even if the process then dies (`kill -9` included):
    /// after a reopen the entry comes back as delivery n + 1
    /// ([`Received::deliveries`] > 1), and an entry that had used up the
    /// topic's `max_deliveries` goes to the dead-letter queue when it is
    /// next taken instead of being delivered again. A poison message that
    /// crashes its consumer is thus dead-lettered after `max_deliveries`
    /// crashes, with no extra delivery per crash. Only a crash of the
    /// machine (power loss) can forget counts written since the last fsync
    /// (the next group commit, or close): then at most the deliveries made
    /// since that fsync are not counted.
    ///
    /// # A corrupt message is set aside
    ///
    /// When the message of an entry being taken cannot be read (its bytes do
    /// not decode, it is missing, or the table block holding it is damaged,
    /// which [`FjallStore`](super::FjallStore) reports as an
    /// [`Error::Corrupt`] naming the key and the table file), the entry is
    /// set aside: it is not delivered, an ERROR log names the entry, the
    /// subscriber and the error, and the call goes on with the next entry,
    /// so one damaged block does not stop the queue. The entry stays in the
    /// store as it is (nothing is deleted on account of a read that failed;
    /// a repaired file brings it back), [`SubscriberStats::depth`] no longer
    /// counts it, and the next open meets it again and says so again. It is
    /// not dead-lettered: the dead-letter queue would then fail to list it
    /// too.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] when the queue closed or the handle was
    /// interrupted; [`Error::Corrupt`] naming the key when the next queue
    /// entry itself is unreadable (the positions after a damaged block of
    /// queue entries are unknown, so it cannot be stepped over; it stays
    /// where it is); [`Error::Storage`]. An entry whose *message* is corrupt
    /// is no error (see above).
    pub fn next_batch(&self, max: usize, timeout: Option<Duration>) -> Result<Vec<Received>> {
        // A timeout too long to add to the clock waits without limit.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut state = lock(&self.shared.state);
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
            state = crate::thread::wait(&cond, state, wait);
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
        lock(&self.shared.state).ack(self.id, ids, true)
    }

    /// Acks `id` and every entry this subscriber had delivered before it
    /// (AMQP's `multiple`).
    ///
    /// # Errors
    ///
    /// As [`ack`](Self::ack), for `id`.
    pub fn ack_through(&self, id: EntryId) -> Result<usize> {
        lock(&self.shared.state).ack_through(self.id, id)
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
        lock(&self.shared.state).nack(self.id, ids, requeue, true)
    }

    /// Gives deliveries that never reached a consumer back to the front
    /// without counting the delivery: for code that took a batch and must
    /// stop before handing all of it on.
    ///
    /// # Errors
    ///
    /// As [`ack`](Self::ack).
    pub fn release(&self, ids: &[EntryId]) -> Result<usize> {
        lock(&self.shared.state).release(self.id, ids, true)
    }

    /// As [`ack`](Self::ack), but ids that are stale or not in flight are
    /// skipped instead of refused: for owners (the server) that already
    /// checked them and must settle what is still theirs.
    pub(crate) fn ack_current(&self, ids: &[EntryId]) -> Result<usize> {
        lock(&self.shared.state).ack(self.id, ids, false)
    }

    /// As [`nack`](Self::nack), skipping stale ids (see `ack_current`).
    pub(crate) fn nack_current(&self, ids: &[EntryId], requeue: bool) -> Result<usize> {
        lock(&self.shared.state).nack(self.id, ids, requeue, false)
    }

    /// As [`release`](Self::release), skipping stale ids (see
    /// `ack_current`).
    pub(crate) fn release_current(&self, ids: &[EntryId]) -> Result<usize> {
        lock(&self.shared.state).release(self.id, ids, false)
    }

    /// Puts every in-flight entry of this subscriber back at the front, as a
    /// consumer that reconnects wants (ppmq's `ResetAck`).
    ///
    /// # Errors
    ///
    /// [`Error::Storage`].
    pub fn reset(&self) -> Result<usize> {
        lock(&self.shared.state).reset(self.id)
    }

    /// The subscriber's counters.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] when the subscriber's state is missing.
    pub fn stats(&self) -> Result<SubscriberStats> {
        lock(&self.shared.state).stats(self.id)
    }

    /// Up to `limit` dead letters, oldest first.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] naming the key of an unreadable entry;
    /// [`Error::Storage`].
    pub fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        lock(&self.shared.state).dead_letters(self.id, limit)
    }

    /// Moves every dead letter back to the end of its queue, with a fresh
    /// delivery count. Returns how many.
    ///
    /// # Errors
    ///
    /// As [`dead_letters`](Self::dead_letters).
    pub fn replay_dead_letters(&self) -> Result<usize> {
        lock(&self.shared.state).drain_dead_letters(self.id, true)
    }

    /// Deletes every dead letter. Returns how many.
    ///
    /// # Errors
    ///
    /// As [`dead_letters`](Self::dead_letters).
    pub fn purge_dead_letters(&self) -> Result<usize> {
        lock(&self.shared.state).drain_dead_letters(self.id, false)
    }

    /// Whether a receive would find something now: a redelivery or a
    /// queued entry, without taking it. A message that expired while
    /// queued still counts until a receive drops it (that receive then
    /// returns nothing, and this says `false` after it), and several
    /// handles of one subscriber compete, so `true` is a hint that a
    /// receive with a timeout of zero is worth making, never a promise.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] when the queue closed or the handle was
    /// interrupted, as a receive would return.
    pub fn is_available(&self) -> Result<bool> {
        let state = lock(&self.shared.state);
        self.check_open(&state)?;
        Ok(state.subs.get(&self.id).is_some_and(|s| s.ready() > 0))
    }

    /// The message the next receive would take, without taking it: no
    /// delivery is counted (a later receive of it is still delivery 1 of
    /// a fresh message), it gets no ack deadline and it stays deliverable
    /// to every handle. `None` when nothing is deliverable now; it does not
    /// wait. A publish, a nack or another handle's receive may come before
    /// the next receive, so the receive is not promised this message.
    ///
    /// Expired messages, entries a receive would dead-letter (their
    /// deliveries used up before a restart) and entries whose message
    /// cannot be read are skipped, as a receive skips them, but left where
    /// they are for the receive to deal with.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] as [`is_available`](Self::is_available);
    /// [`Error::Corrupt`] naming the key when a queue entry itself is
    /// unreadable; [`Error::Storage`].
    pub fn peek(&self) -> Result<Option<Peeked>> {
        Ok(self.peek_batch(1)?.pop())
    }

    /// Up to `max` of the messages receives would take next, in the order
    /// they would take them (redeliveries first, priority 0 first, FIFO
    /// within a level), without taking any: as [`peek`](Self::peek). Costs
    /// a read per message, under the queue's lock.
    ///
    /// # Errors
    ///
    /// As [`peek`](Self::peek).
    pub fn peek_batch(&self, max: usize) -> Result<Vec<Peeked>> {
        let state = lock(&self.shared.state);
        self.check_open(&state)?;
        state.peek(self.id, max)
    }

    /// The error a receive would return when the queue closed or this
    /// handle was interrupted.
    fn check_open(&self, state: &State) -> Result<()> {
        if state.closed {
            return Err(Error::closed(format!(
                "queue of subscriber `{}`",
                self.name
            )));
        }
        if self.interrupted.load(Ordering::SeqCst) {
            return Err(Error::closed(format!("subscriber `{}` handle", self.name)));
        }
        Ok(())
    }

    /// Calls `notify` whenever something may have become deliverable to
    /// this subscriber (a publish, a nack or release with requeue, a reset,
    /// an ack timeout, a dead-letter replay) or it ended (the queue closed,
    /// the handle was interrupted): at every point where a blocked receive
    /// would be woken. Then [`is_available`](Self::is_available) or a
    /// receive says what there is; a call may come with nothing to take
    /// (another handle took it first).
    ///
    /// `notify` runs on the thread that caused the change (a publisher,
    /// the `syncmq-queue-sweep` thread for ack timeouts, or the thread
    /// that moved a [`ManualClock`](super::ManualClock), the closing
    /// thread) while it holds the queue's lock: it must be quick, must not
    /// block, and must not call into the queue (that would deadlock).
    /// Writing a byte to a non-blocking socket or setting a flag is the
    /// intended use. A second call replaces this handle's earlier watcher;
    /// dropping the handle removes it.
    pub fn on_ready(&self, notify: Arc<dyn Fn() + Send + Sync>) {
        let mut state = lock(&self.shared.state);
        let Some(sub) = state.subs.get_mut(&self.id) else {
            return;
        };
        let notify: ReadyFn = notify;
        sub.watchers.retain(|(handle, _)| *handle != self.handle);
        sub.watchers.push((self.handle, notify));
        self.watching.store(true, Ordering::SeqCst);
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

impl Drop for Subscriber {
    /// Removes this handle's readiness watcher, if it registered one.
    fn drop(&mut self) {
        if !self.watching.load(Ordering::SeqCst) {
            return;
        }
        let mut state = lock(&self.shared.state);
        if let Some(sub) = state.subs.get_mut(&self.id) {
            sub.watchers.retain(|(handle, _)| *handle != self.handle);
        }
    }
}
