//! Ack deadlines: the sweeper thread (`syncmq-queue-sweep`) sleeps on a
//! Condvar until the earliest deadline, or until a take sets an earlier one,
//! and gives what timed out back to the front of its queue.
//!
//! Deadlines are read on the queue's [`Clock`]. The thread's sleep is real
//! time, which is right for the system clock; a clock that jumps (a test's
//! [`ManualClock`](super::ManualClock)) instead calls [`follow`]'s
//! callback on the thread that moved it, which sweeps there and then, so
//! the redeliveries are made before the clock's `advance` returns (the
//! thread, still asleep, finds nothing left to do when it wakes). One sweep
//! serves both: [`sweep_and_wake`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use super::clock::{AdvanceFn, Clock};
use super::entry::EntryId;
use super::state::{Shared, State};
use super::subscriber_state::Inflight;
use crate::thread::{lock, wait};

/// The sweeper thread's body: redelivers what timed out and ends when the
/// queue closes.
pub(crate) fn run(shared: &Shared) {
    let mut state = lock(&shared.state);
    loop {
        if state.closed {
            return;
        }
        let now = state.clock.now();
        let next = sweep_and_wake(&mut state, now);
        state.wake_sweeper = false;
        let timeout = next.map(|at| at.saturating_duration_since(now));
        state = wait(&shared.sweeper, state, timeout);
    }
}

/// The callback a queue registers with its clock ([`Clock::on_advance`]):
/// sweeps on the calling thread. The queue keeps it; the clock holds it
/// weakly, and it holds the queue weakly, so neither keeps the other.
pub(crate) fn follow(shared: &Arc<Shared>, clock: &dyn Clock) -> Arc<AdvanceFn> {
    let weak = Arc::downgrade(shared);
    let notify: Arc<AdvanceFn> = Arc::new(move || {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let mut state = lock(&shared.state);
        if state.closed {
            return;
        }
        let now = state.clock.now();
        sweep_and_wake(&mut state, now);
    });
    clock.on_advance(Arc::downgrade(&notify));
    notify
}

/// Sweeps at `now` and wakes the subscribers that got entries back.
/// Returns the next deadline.
fn sweep_and_wake(state: &mut State, now: Instant) -> Option<Instant> {
    let (woken, next) = state.sweep(now);
    for id in woken {
        if let Some(sub) = state.subs.get(&id) {
            sub.wake();
        }
    }
    next
}

impl State {
    /// Redelivers every entry whose ack deadline is at or before `now`.
    /// Returns the subscribers that got entries back and the next deadline.
    pub(crate) fn sweep(&mut self, now: Instant) -> (Vec<u32>, Option<Instant>) {
        let mut expired: BTreeMap<u32, Vec<(EntryId, Inflight)>> = BTreeMap::new();
        while let Some(&first) = self.deadlines.first() {
            if first.0 > now {
                break;
            }
            self.deadlines.pop_first();
            let (_, tag, sub_id, id) = first;
            if let Some(sub) = self.subs.get_mut(&sub_id) {
                if sub.inflight.get(&id).is_some_and(|i| i.tag == tag) {
                    if let Some(i) = sub.inflight.remove(&id) {
                        expired.entry(sub_id).or_default().push((id, i));
                    }
                }
            }
        }
        let mut woken = Vec::new();
        for (sub_id, taken) in expired {
            log::debug!("queue: {} deliveries timed out; redelivering", taken.len());
            if let Err(e) = self.give_back(sub_id, taken, false) {
                log::error!("queue: redelivery after an ack timeout failed: {e}");
            }
            woken.push(sub_id);
        }
        (woken, self.deadlines.first().map(|d| d.0))
    }
}
