//! [`Wake`]: the wake-up the dispatcher sleeps on, a `Mutex` + `Condvar`
//! holding a count of adds and a closed flag.
//!
//! Every add bumps the count and wakes the dispatcher at once if it sleeps
//! (a busy dispatcher costs an add no wake-up call); the dispatcher
//! remembers the count it saw before reading the store, so an add that
//! commits while it reads is never missed (it finds the count moved and
//! reads again instead of sleeping). A close wakes every sleeper, whether it
//! waits for an add or sits out a backoff.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::thread::{lock, wait};

#[derive(Debug, Default)]
pub(crate) struct Wake {
    state: Mutex<State>,
    cond: Condvar,
}

#[derive(Debug, Default)]
struct State {
    adds: u64,
    closed: bool,
    /// Threads in `wait_until`: with none, an add has nobody to wake.
    sleepers: usize,
}

impl Wake {
    /// Counts an add and wakes the sleepers, if any. A sleeper counts
    /// itself under the lock before it checks the count, so one that is
    /// not counted yet will see this add.
    pub(crate) fn notify(&self) {
        let mut state = lock(&self.state);
        state.adds += 1;
        let sleepers = state.sleepers;
        drop(state);
        if sleepers > 0 {
            self.cond.notify_all();
        }
    }

    /// Sets the closed flag and wakes every sleeper.
    pub(crate) fn close(&self) {
        lock(&self.state).closed = true;
        self.cond.notify_all();
    }

    pub(crate) fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }

    /// The number of adds so far, to pass to [`wait_for_add`](Self::wait_for_add).
    pub(crate) fn adds(&self) -> u64 {
        lock(&self.state).adds
    }

    /// Sleeps until the add count moves past `seen`, a close, or `timeout`.
    /// Returns true when closed.
    pub(crate) fn wait_for_add(&self, seen: u64, timeout: Duration) -> bool {
        self.wait_until(timeout, |s| s.adds != seen)
    }

    /// Sleeps until a close or `timeout`, whatever is added meanwhile (a
    /// backoff). Returns true when closed.
    pub(crate) fn sleep(&self, timeout: Duration) -> bool {
        self.wait_until(timeout, |_| false)
    }

    /// Sleeps until `done`, a close, or `timeout`. Returns true when closed.
    fn wait_until(&self, timeout: Duration, done: impl Fn(&State) -> bool) -> bool {
        // A timeout too large to add to now is a wait without end.
        let deadline = Instant::now().checked_add(timeout);
        let mut state = lock(&self.state);
        state.sleepers += 1;
        while !state.closed && !done(&state) {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|left| left.is_zero()) {
                break;
            }
            state = wait(&self.cond, state, left);
        }
        state.sleepers -= 1;
        state.closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn an_add_after_the_count_was_read_is_not_missed() {
        let wake = Wake::default();
        let seen = wake.adds();
        wake.notify();
        let started = Instant::now();
        assert!(!wake.wait_for_add(seen, Duration::from_secs(60)));
        assert!(started.elapsed() < Duration::from_secs(60));
    }

    #[test]
    fn a_close_wakes_both_kinds_of_sleep() {
        let wake = Arc::new(Wake::default());
        let waiter = {
            let wake = wake.clone();
            std::thread::spawn(move || {
                let seen = wake.adds();
                (
                    wake.wait_for_add(seen, Duration::from_secs(60)),
                    wake.sleep(Duration::from_secs(60)),
                )
            })
        };
        wake.close();
        assert_eq!(waiter.join().unwrap(), (true, true));
        assert!(wake.is_closed());
    }

    #[test]
    fn the_longest_timeouts_do_not_overflow() {
        let wake = Arc::new(Wake::default());
        let seen = wake.adds();
        let notifier = {
            let wake = wake.clone();
            std::thread::spawn(move || {
                wake.notify();
                wake.close();
            })
        };
        wake.wait_for_add(seen, Duration::MAX);
        assert!(wake.sleep(Duration::MAX));
        notifier.join().unwrap();
    }

    #[test]
    fn a_backoff_sleep_ignores_adds_and_times_out() {
        let wake = Wake::default();
        wake.notify();
        assert!(!wake.sleep(Duration::from_millis(5)));
        let seen = wake.adds();
        assert!(!wake.wait_for_add(seen, Duration::from_millis(5)));
    }
}
