//! [`Feed`]: one subscription on a server connection: a pusher thread that
//! takes messages from the engine and pushes them to the client, at most
//! `batch` unacknowledged at a time, and the in-flight set that acks, nacks
//! and the end of the connection settle.
//!
//! # Guarantees
//!
//! - With a `max`, the pusher stops taking after that many deliveries
//!   (redeliveries included), so a consumer that wants N messages is not
//!   sent more that would come back counted as delivered.
//! - Deliveries go out in the order the engine hands them over (queue
//!   order), one [`Response::Deliver`] frame per batch.
//! - An entry is in this subscription's in-flight set from the moment it is
//!   taken until it is acked or nacked here. When the subscription ends
//!   (unsubscribe, disconnect, server close) every entry still in the set
//!   goes back to the queue: entries the client was sent are nacked with
//!   requeue (the delivery counts toward the topic's dead-letter limit),
//!   entries never sent are released (it does not).
//! - Acks and nacks only settle entries of this subscription: a client
//!   cannot settle another connection's deliveries. They name a delivery
//!   (entry and delivery generation): an ack of an earlier delivery of an
//!   entry that came back, or of one already settled, is refused with an
//!   `invalid_argument` error, never applied to the newer delivery.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::frame::FrameWriter;
use super::protocol::{Response, WireDelivery, WireEntry, WireMessage};
use crate::error::{Error, Result};
use crate::queue::{EntryId, Interrupter, Subscriber};
use crate::thread::{self, lock, wait, Worker};

/// One entry of the in-flight set.
struct Flight {
    /// The delivery pushed: what the client must name to settle it.
    id: EntryId,
    seq: u64,
    sent: bool,
}

#[derive(Default)]
struct State {
    next_seq: u64,
    /// Keyed by the entry's slot (no delivery generation), so a
    /// redelivery replaces the earlier delivery of the same entry.
    by_id: HashMap<EntryId, Flight>,
    by_seq: BTreeMap<u64, EntryId>,
    stopped: bool,
}

struct Shared {
    sub: Subscriber,
    window: usize,
    state: Mutex<State>,
    room: Condvar,
}

/// What a [`Feed`] pushes and how.
pub(super) struct FeedSpec {
    /// The subscription's number on its connection.
    pub(super) number: u64,
    /// Unacknowledged deliveries allowed at once.
    pub(super) window: usize,
    /// Deliveries after which the feed stops taking; `None` for no limit.
    pub(super) max: Option<u64>,
    /// The most message bytes per `deliver` frame (a larger batch goes
    /// out in several), so frames stay under the limit the client knows.
    pub(super) frame_budget: usize,
}

/// A running subscription on a server connection. [`close`](Feed::close)
/// ends it; so does dropping it.
pub(super) struct Feed {
    shared: Arc<Shared>,
    interrupter: Interrupter,
    worker: Option<Worker<()>>,
}

/// How long a dropped feed waits for its pusher. The connection closes its
/// feeds with the server's close timeout; a drop only happens when that
/// path was skipped (a panic).
const DROP_TIMEOUT: Duration = Duration::from_secs(10);

impl Feed {
    /// Starts pushing `sub`'s messages through `writer`, as `spec` says.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the pusher thread cannot start.
    pub(super) fn start(sub: Subscriber, spec: FeedSpec, writer: Arc<FrameWriter>) -> Result<Self> {
        let interrupter = sub.interrupter();
        let shared = Arc::new(Shared {
            sub,
            window: spec.window.max(1),
            state: Mutex::new(State::default()),
            room: Condvar::new(),
        });
        let pusher = shared.clone();
        let worker = thread::spawn("srv-push", move || push(&pusher, &spec, &writer))?;
        Ok(Feed {
            shared,
            interrupter,
            worker: Some(worker),
        })
    }

    /// The topic and subscriber names.
    pub(super) fn names(&self) -> (&str, &str) {
        (self.shared.sub.topic(), self.shared.sub.name())
    }

    /// Acks `entries` (with `multiple`, every earlier delivery of this
    /// subscription too). Returns how many were settled.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming `entries[i]` when that entry is
    /// not an unsettled delivery of this subscription (already settled,
    /// an earlier delivery, or never pushed here): nothing is settled
    /// then. Also an error when the engine had meanwhile redelivered some
    /// of them elsewhere (ack timeout): the others are settled.
    pub(super) fn ack(&self, entries: &[WireEntry], multiple: bool) -> Result<u64> {
        let ids = self.take(entries, multiple)?;
        self.ack_taken(&ids)
    }

    /// Acks deliveries [`take`](Self::take) removed from the in-flight
    /// set, in one engine call (one store write) however many frames named
    /// them, and wakes the pusher once. Returns how many were settled.
    ///
    /// # Errors
    ///
    /// As [`ack`](Self::ack) when the engine had redelivered some of them
    /// elsewhere (ack timeout); the engine's error.
    pub(super) fn ack_taken(&self, ids: &[EntryId]) -> Result<u64> {
        let n = self.shared.sub.ack_current(ids);
        self.shared.room.notify_all();
        settled(n?, ids.len())
    }

    /// Nacks `entries`. Returns how many were settled.
    ///
    /// # Errors
    ///
    /// As [`ack`](Self::ack).
    pub(super) fn nack(&self, entries: &[WireEntry], requeue: bool) -> Result<u64> {
        let ids = self.take(entries, false)?;
        // The pusher is woken only after the engine has the entries back,
        // so a requeued entry is the next one it takes.
        let n = self.shared.sub.nack_current(&ids, requeue);
        self.shared.room.notify_all();
        settled(n?, ids.len())
    }

    /// Forgets every in-flight entry without settling it: after a reset
    /// the engine has put them back already.
    pub(super) fn forget_in_flight(&self) {
        let mut state = lock(&self.shared.state);
        state.by_id.clear();
        state.by_seq.clear();
        drop(state);
        self.shared.room.notify_all();
    }

    /// Removes the named deliveries (and with `multiple` every earlier
    /// one) from the in-flight set and returns them, for
    /// [`ack_taken`](Self::ack_taken) or a nack. Every named one must be an
    /// unsettled delivery of this subscription, else nothing is removed.
    ///
    /// # Errors
    ///
    /// As [`ack`](Self::ack), and nothing is removed then.
    pub(super) fn take(&self, entries: &[WireEntry], multiple: bool) -> Result<Vec<EntryId>> {
        let mut state = lock(&self.shared.state);
        for (i, e) in entries.iter().enumerate() {
            let id = EntryId::from(*e);
            let reason = match state.by_id.get(&id.slot()) {
                Some(f) if f.id == id => continue,
                Some(f) => format!(
                    "delivery {} of entry {} is stale: it is now out as delivery {}",
                    id.delivery,
                    id.slot(),
                    f.id.delivery
                ),
                None => format!(
                    "entry {id} is not an unsettled delivery of this subscription \
                     (already settled, or never delivered here)"
                ),
            };
            return Err(Error::invalid(format!("entries[{i}]"), reason));
        }
        let mut ids = Vec::with_capacity(entries.len());
        for e in entries {
            let slot = EntryId::from(*e).slot();
            if multiple {
                let Some(seq) = state.by_id.get(&slot).map(|f| f.seq) else {
                    continue;
                };
                let earlier: Vec<u64> = state.by_seq.range(..=seq).map(|(s, _)| *s).collect();
                for s in earlier {
                    if let Some(slot) = state.by_seq.remove(&s) {
                        if let Some(f) = state.by_id.remove(&slot) {
                            ids.push(f.id);
                        }
                    }
                }
            } else if let Some(f) = state.by_id.remove(&slot) {
                state.by_seq.remove(&f.seq);
                ids.push(f.id);
            }
        }
        Ok(ids)
    }

    /// Stops the pusher, joins it by `deadline`, and gives every entry
    /// still in flight back to the queue.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] or [`Error::Panicked`] from the pusher; the
    /// engine's error when it could not take an entry back.
    pub(super) fn close(mut self, deadline: Instant) -> Result<()> {
        self.finish(deadline)
    }

    fn finish(&mut self, deadline: Instant) -> Result<()> {
        lock(&self.shared.state).stopped = true;
        self.shared.room.notify_all();
        self.interrupter.interrupt();
        let joined = match self.worker.take() {
            Some(w) => w.join_deadline(deadline),
            None => Ok(()),
        };
        let (sent, unsent): (Vec<_>, Vec<_>) = {
            let mut state = lock(&self.shared.state);
            state.by_seq.clear();
            state.by_id.drain().partition(|(_, f)| f.sent)
        };
        let sent: Vec<EntryId> = sent.into_iter().map(|(_, f)| f.id).collect();
        let unsent: Vec<EntryId> = unsent.into_iter().map(|(_, f)| f.id).collect();
        let mut result = joined;
        // Deliveries the engine redelivered elsewhere meanwhile (ack
        // timeout) are no longer ours to give back: skipped.
        if !sent.is_empty() {
            if let Err(e) = self.shared.sub.nack_current(&sent, true) {
                result = result.and(Err(e));
            }
        }
        if !unsent.is_empty() {
            if let Err(e) = self.shared.sub.release_current(&unsent) {
                result = result.and(Err(e));
            }
        }
        result
    }
}

/// `n` of `asked` deliveries settled: the rest had been redelivered
/// elsewhere by the engine (ack timeout) and are no longer this client's.
fn settled(n: usize, asked: usize) -> Result<u64> {
    if n < asked {
        return Err(Error::invalid(
            "entries",
            format!(
                "{} of {asked} deliveries were stale (their ack timeout passed and the queue \
                 delivered them again); the other {n} were settled",
                asked - n
            ),
        ));
    }
    Ok(n as u64)
}

impl Drop for Feed {
    fn drop(&mut self) {
        if self.worker.is_some() {
            if let Err(e) = self.finish(Instant::now() + DROP_TIMEOUT) {
                log::warn!("server: dropping a subscription: {e}");
            }
        }
    }
}

/// The pusher thread.
fn push(shared: &Shared, spec: &FeedSpec, writer: &FrameWriter) {
    let number = spec.number;
    let max = spec.max.unwrap_or(u64::MAX);
    let mut pushed = 0u64;
    loop {
        let room = {
            let mut state = lock(&shared.state);
            while !state.stopped && (state.by_id.len() >= shared.window || pushed >= max) {
                state = wait(&shared.room, state, None);
            }
            if state.stopped {
                return;
            }
            (shared.window - state.by_id.len())
                .min(usize::try_from(max - pushed).unwrap_or(usize::MAX))
        };
        let got = match shared.sub.next_batch(room, None) {
            Ok(got) => got,
            Err(Error::Closed(_)) => return,
            Err(e) => {
                log::warn!(
                    "server: subscription {number} ({}/{}): {e}",
                    shared.sub.topic(),
                    shared.sub.name()
                );
                let _ = writer.send(&Response::error(0, &e));
                writer.disconnect();
                return;
            }
        };
        if got.is_empty() {
            continue;
        }
        pushed += got.len() as u64;
        let mut deliveries = Vec::with_capacity(got.len());
        let mut ids = Vec::with_capacity(got.len());
        {
            let mut state = lock(&shared.state);
            if state.stopped {
                drop(state);
                let ids: Vec<EntryId> = got.iter().map(|r| r.id).collect();
                if let Err(e) = shared.sub.release_current(&ids) {
                    log::warn!("server: subscription {number}: release: {e}");
                }
                return;
            }
            for r in &got {
                let seq = state.next_seq;
                state.next_seq += 1;
                // An entry whose ack timed out comes again (as a new
                // delivery): it replaces its old place in the order.
                let flight = Flight {
                    id: r.id,
                    seq,
                    sent: false,
                };
                if let Some(old) = state.by_id.insert(r.id.slot(), flight) {
                    state.by_seq.remove(&old.seq);
                }
                state.by_seq.insert(seq, r.id.slot());
            }
        }
        // A batch of large messages goes out in several frames, each under
        // the frame limit the client was told about.
        let budget = spec.frame_budget;
        let mut bytes = 0;
        let mut got = got.into_iter().peekable();
        while let Some(r) = got.next() {
            bytes += r.message.body().len() + 64;
            ids.push(r.id);
            deliveries.push(WireDelivery {
                entry: r.id.into(),
                deliveries: r.deliveries,
                message: WireMessage::from(&r.message),
            });
            let next_fits = got
                .peek()
                .is_some_and(|n| bytes + n.message.body().len() + 64 <= budget);
            if next_fits {
                continue;
            }
            let frame = Response::Deliver {
                sub: number,
                deliveries: std::mem::take(&mut deliveries),
            };
            if let Err(e) = writer.send(&frame) {
                // The connection is gone; its reader ends the subscription
                // and gives the entries back.
                log::debug!("server: subscription {number}: push failed: {e}");
                return;
            }
            let mut state = lock(&shared.state);
            for id in ids.drain(..) {
                if let Some(f) = state.by_id.get_mut(&id.slot()).filter(|f| f.id == id) {
                    f.sent = true;
                }
            }
            bytes = 0;
        }
    }
}
