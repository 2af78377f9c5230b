//! The wake-up the dispatcher sleeps on: a `Mutex` + `Condvar` holding a
//! count of adds and a stop flag.
//!
//! Every add bumps the count and wakes the dispatcher at once; the dispatcher
//! remembers the count it saw before reading the store, so an add that
//! commits while it reads is never missed (it finds the count moved and
//! reads again instead of sleeping). A stop wakes every sleeper, whether it
//! waits for an add or sits out a backoff.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

#[derive(Debug, Default)]
pub(crate) struct Signal {
    state: Mutex<State>,
    cond: Condvar,
}

#[derive(Debug, Default)]
struct State {
    adds: u64,
    stopped: bool,
}

impl Signal {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is two plain fields that no panic can leave half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts an add and wakes the sleepers.
    pub(crate) fn notify(&self) {
        self.lock().adds += 1;
        self.cond.notify_all();
    }

    /// Sets the stop flag and wakes every sleeper.
    pub(crate) fn stop(&self) {
        self.lock().stopped = true;
        self.cond.notify_all();
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.lock().stopped
    }

    /// The number of adds so far, to pass to [`wait_for_add`](Self::wait_for_add).
    pub(crate) fn adds(&self) -> u64 {
        self.lock().adds
    }

    /// Sleeps until the add count moves past `seen`, a stop, or `timeout`.
    /// Returns true when stopped.
    pub(crate) fn wait_for_add(&self, seen: u64, timeout: Duration) -> bool {
        let guard = self.lock();
        let (guard, _) = self
            .cond
            .wait_timeout_while(guard, timeout, |s| s.adds == seen && !s.stopped)
            .unwrap_or_else(PoisonError::into_inner);
        guard.stopped
    }

    /// Sleeps until a stop or `timeout`, whatever is added meanwhile (a
    /// backoff). Returns true when stopped.
    pub(crate) fn sleep(&self, timeout: Duration) -> bool {
        let guard = self.lock();
        let (guard, _) = self
            .cond
            .wait_timeout_while(guard, timeout, |s| !s.stopped)
            .unwrap_or_else(PoisonError::into_inner);
        guard.stopped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn an_add_after_the_count_was_read_is_not_missed() {
        let signal = Signal::default();
        let seen = signal.adds();
        signal.notify();
        let started = Instant::now();
        assert!(!signal.wait_for_add(seen, Duration::from_secs(60)));
        assert!(started.elapsed() < Duration::from_secs(60));
    }

    #[test]
    fn a_stop_wakes_both_kinds_of_sleep() {
        let signal = Arc::new(Signal::default());
        let waiter = {
            let signal = signal.clone();
            std::thread::spawn(move || {
                let seen = signal.adds();
                (
                    signal.wait_for_add(seen, Duration::from_secs(60)),
                    signal.sleep(Duration::from_secs(60)),
                )
            })
        };
        signal.stop();
        assert_eq!(waiter.join().unwrap(), (true, true));
        assert!(signal.is_stopped());
    }

    #[test]
    fn the_longest_timeouts_do_not_overflow() {
        let signal = Arc::new(Signal::default());
        let seen = signal.adds();
        let notifier = {
            let signal = signal.clone();
            std::thread::spawn(move || {
                signal.notify();
                signal.stop();
            })
        };
        signal.wait_for_add(seen, Duration::MAX);
        assert!(signal.sleep(Duration::MAX));
        notifier.join().unwrap();
    }

    #[test]
    fn a_backoff_sleep_ignores_adds_and_times_out() {
        let signal = Signal::default();
        signal.notify();
        assert!(!signal.sleep(Duration::from_millis(5)));
        let seen = signal.adds();
        assert!(!signal.wait_for_add(seen, Duration::from_millis(5)));
    }
}
