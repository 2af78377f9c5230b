//! The connection waiter: a `Mutex` and a `Condvar` that let any number of
//! threads block until a connection is up, and wake all of them the moment
//! it is.

use std::fmt;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::thread::{lock, wait};

/// Which connection a worker is on: raised by one on every connect, so a
/// newer connection always has a larger generation. Generation 1 is the
/// first connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Generation(u64);

impl Generation {
    /// Generation `n`: for a [`Dependency`](crate::block::Dependency) that
    /// counts its own connections (raise it on every new one), and for
    /// tests. The waiter counts its own.
    pub const fn new(n: u64) -> Self {
        Generation(n)
    }

    /// The number, for logs and metrics.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "generation {}", self.0)
    }
}

#[derive(Debug, Default)]
struct State {
    connected: bool,
    closed: bool,
    /// The generation of the latest connect; 0 before the first one.
    generation: u64,
    /// Threads blocked in `wait_connected` right now.
    waiting: usize,
    /// Why the last connection attempt failed or the connection was lost;
    /// cleared by a connect.
    last_error: Option<Error>,
    /// Why the connection can never come, once it is known (set by `fail`).
    failure: Option<Error>,
}

/// Lets threads block until a connection is up.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use syncmq::ConnectionWaiter;
///
/// let waiter = Arc::new(ConnectionWaiter::new());
/// let worker = {
///     let waiter = waiter.clone();
///     std::thread::spawn(move || waiter.wait_connected(Duration::from_secs(5)))
/// };
/// let generation = waiter.set_connected();
/// assert_eq!(worker.join().unwrap().unwrap(), generation);
/// ```
///
/// ormus' Go Channel module, where this design comes from, has its workers sleep
/// ten seconds and check again; here a worker that needs the broker calls
/// [`ConnectionWaiter::wait_connected`] and the supervisor's
/// [`ConnectionWaiter::set_connected`] wakes it at once.
///
/// Every successful connect raises a [`Generation`]. A worker remembers the
/// generation it started on; when its calls fail it knows whether the
/// supervisor has already reconnected (a newer generation) or not. Anything
/// tied to one connection, such as an AMQP delivery tag, carries its
/// generation so that it is never used on a later connection.
///
/// [`ConnectionWaiter::close`] is final: it wakes every waiter with
/// [`Error::Closed`] and makes all later waits fail the same way, so no
/// thread stays blocked on a connection that will never come.
/// [`ConnectionWaiter::fail`] is the same with a cause: a connection that
/// can never succeed (the broker refused our credentials) wakes every
/// waiter with that error instead.
///
/// The supervisor also records why its last attempt failed
/// ([`ConnectionWaiter::set_last_error`]); a wait that times out names it,
/// so an unreachable broker does not look like a plain timeout.
#[derive(Debug, Default)]
pub struct ConnectionWaiter {
    state: Mutex<State>,
    changed: Condvar,
}

impl ConnectionWaiter {
    /// A waiter that starts disconnected.
    pub fn new() -> Self {
        ConnectionWaiter::default()
    }

    /// Blocks until the connection is up, and returns its generation.
    /// Returns at once when it is already up.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when no connect came within `timeout` (naming the
    /// [`last_error`](Self::last_error), if any); [`Error::Closed`] when the
    /// waiter is or gets closed, or the error given to [`fail`](Self::fail).
    pub fn wait_connected(&self, timeout: Duration) -> Result<Generation> {
        let deadline = Instant::now().checked_add(timeout);
        let mut state = lock(&self.state);
        loop {
            if let Some(failure) = &state.failure {
                return Err(failure.clone());
            }
            if state.closed {
                return Err(Error::closed("connection waiter"));
            }
            if state.connected {
                return Ok(Generation(state.generation));
            }
            // A timeout too large to add to now is a wait without end.
            state.waiting += 1;
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|left| left.is_zero()) {
                state.waiting -= 1;
                return Err(Error::timeout(
                    describe_wait("the connection", state.last_error.as_ref()),
                    timeout,
                ));
            }
            state = wait(&self.changed, state, left);
            state.waiting -= 1;
        }
    }

    /// Records a new connection and wakes every waiter. Each call is a new
    /// connection and returns the next generation.
    ///
    /// After [`close`](Self::close) this changes nothing and returns the last
    /// generation: a closed waiter stays closed.
    pub fn set_connected(&self) -> Generation {
        let mut state = lock(&self.state);
        if !state.closed {
            state.generation += 1;
            state.connected = true;
            state.last_error = None;
            self.changed.notify_all();
        }
        Generation(state.generation)
    }

    /// Records that the connection is gone; later waits block until the next
    /// [`set_connected`](Self::set_connected).
    pub fn set_disconnected(&self) {
        let mut state = lock(&self.state);
        state.connected = false;
        self.changed.notify_all();
    }

    /// True while the connection is up and the waiter is open.
    pub fn is_connected(&self) -> bool {
        let state = lock(&self.state);
        state.connected && !state.closed
    }

    /// The current connection's generation, or `None` while disconnected or
    /// closed. Compare it with a remembered one to tell whether that
    /// connection is still the live one.
    pub fn current(&self) -> Option<Generation> {
        let state = lock(&self.state);
        (state.connected && !state.closed).then_some(Generation(state.generation))
    }

    /// Closes the waiter for good: wakes every waiter with [`Error::Closed`]
    /// and fails every later wait the same way.
    pub fn close(&self) {
        let mut state = lock(&self.state);
        state.closed = true;
        state.connected = false;
        self.changed.notify_all();
    }

    /// Closes the waiter for good because the connection can never come:
    /// every waiter, now and later, gets `cause` instead of
    /// [`Error::Closed`]. The first cause given wins.
    pub fn fail(&self, cause: Error) {
        let mut state = lock(&self.state);
        if state.failure.is_none() && !state.closed {
            state.failure = Some(cause);
        }
        state.closed = true;
        state.connected = false;
        self.changed.notify_all();
    }

    /// The error given to [`fail`](Self::fail), once it was called.
    pub fn failure(&self) -> Option<Error> {
        lock(&self.state).failure.clone()
    }

    /// Records why the last connection attempt failed (or the connection
    /// was lost). The next [`set_connected`](Self::set_connected) clears it.
    pub fn set_last_error(&self, error: Error) {
        lock(&self.state).last_error = Some(error);
    }

    /// Why the last connection attempt failed or the last connection was
    /// lost, while not connected again since; `None` when connected or
    /// nothing failed yet.
    pub fn last_error(&self) -> Option<Error> {
        let state = lock(&self.state);
        state.failure.clone().or_else(|| state.last_error.clone())
    }

    /// How many threads are blocked in
    /// [`wait_connected`](Self::wait_connected) right now: the workers that
    /// are held up by the missing connection.
    pub fn waiting(&self) -> usize {
        lock(&self.state).waiting
    }

    /// True once [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }
}

/// `what` a timed-out wait was for, with the last connection error when
/// there is one: "the connection (not connected; last error: ...)".
pub(crate) fn describe_wait(what: &str, last_error: Option<&Error>) -> String {
    match last_error {
        Some(e) => format!("{what} (not connected; last connection error: {e})"),
        None => what.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::sync::Arc;
    use std::thread;

    const LONG: Duration = Duration::from_secs(30);

    /// Starts `n` threads and returns once every one of them is blocked in
    /// `wait_connected`. Their results arrive on the returned receiver.
    fn blocked_waiters(
        waiter: &Arc<ConnectionWaiter>,
        n: usize,
    ) -> mpsc::Receiver<Result<Generation>> {
        let (done_tx, done_rx) = mpsc::channel();
        for i in 0..n {
            let waiter = waiter.clone();
            let done = done_tx.clone();
            thread::Builder::new()
                .name(format!("waiter-test-{i}"))
                .spawn(move || done.send(waiter.wait_connected(LONG)).unwrap())
                .unwrap();
        }
        let deadline = Instant::now() + LONG;
        while waiter.waiting() < n {
            assert!(Instant::now() < deadline, "waiters never blocked");
            thread::yield_now();
        }
        done_rx
    }

    /// Collects `n` results, failing (rather than hanging) if a waiter was
    /// never woken.
    fn results(done: &mpsc::Receiver<Result<Generation>>, n: usize) -> Vec<Result<Generation>> {
        (0..n)
            .map(|_| {
                done.recv_timeout(Duration::from_secs(5))
                    .expect("a waiter was not woken")
            })
            .collect()
    }

    #[test]
    fn one_connect_wakes_every_waiter() {
        let waiter = Arc::new(ConnectionWaiter::new());
        let done = blocked_waiters(&waiter, 16);
        let generation = waiter.set_connected();
        for result in results(&done, 16) {
            assert_eq!(result.unwrap(), generation);
        }
        assert_eq!(waiter.waiting(), 0);
    }

    #[test]
    fn a_wait_without_a_connect_times_out() {
        let waiter = ConnectionWaiter::new();
        let started = Instant::now();
        match waiter.wait_connected(Duration::from_millis(50)) {
            Err(Error::Timeout { after, .. }) => assert_eq!(after, Duration::from_millis(50)),
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(waiter.waiting(), 0);
    }

    #[test]
    fn close_wakes_every_waiter_with_closed() {
        let waiter = Arc::new(ConnectionWaiter::new());
        let done = blocked_waiters(&waiter, 8);
        waiter.close();
        for result in results(&done, 8) {
            assert!(matches!(result, Err(Error::Closed(_))));
        }
        // Closed is final: a later connect does not reopen it.
        waiter.set_connected();
        assert!(!waiter.is_connected());
        assert!(matches!(waiter.wait_connected(LONG), Err(Error::Closed(_))));
    }

    #[test]
    fn a_timeout_names_the_last_error_and_fail_wakes_with_its_cause() {
        let waiter = Arc::new(ConnectionWaiter::new());
        waiter.set_last_error(Error::disconnected_reason("connect", "connection refused"));
        match waiter.wait_connected(Duration::from_millis(10)) {
            Err(Error::Timeout { what, .. }) => {
                assert!(what.contains("connection refused"), "{what}");
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        let done = blocked_waiters(&waiter, 2);
        waiter.fail(Error::refused(403, "ACCESS_REFUSED"));
        for result in results(&done, 2) {
            assert!(matches!(result, Err(Error::Refused { .. })), "{result:?}");
        }
        assert!(matches!(waiter.last_error(), Some(Error::Refused { .. })));
        assert!(matches!(
            waiter.wait_connected(LONG),
            Err(Error::Refused { .. })
        ));
    }

    #[test]
    fn each_reconnect_raises_the_generation() {
        let waiter = ConnectionWaiter::new();
        assert_eq!(waiter.current(), None);
        let first = waiter.set_connected();
        assert_eq!(first.get(), 1);
        assert_eq!(waiter.current(), Some(first));
        waiter.set_disconnected();
        assert!(!waiter.is_connected());
        assert_eq!(waiter.current(), None);
        let second = waiter.set_connected();
        assert!(second > first);
        assert_eq!(waiter.wait_connected(LONG).unwrap(), second);
    }

    #[test]
    fn a_disconnect_makes_waiters_block_again() {
        let waiter = Arc::new(ConnectionWaiter::new());
        waiter.set_connected();
        waiter.set_disconnected();
        assert!(matches!(
            waiter.wait_connected(Duration::from_millis(10)),
            Err(Error::Timeout { .. })
        ));
        let done = blocked_waiters(&waiter, 2);
        let generation = waiter.set_connected();
        assert_eq!(generation.get(), 2);
        for result in results(&done, 2) {
            assert_eq!(result.unwrap(), generation);
        }
    }

    #[test]
    fn a_huge_timeout_waits_without_overflow() {
        let waiter = Arc::new(ConnectionWaiter::new());
        let handle = {
            let waiter = waiter.clone();
            thread::spawn(move || waiter.wait_connected(Duration::MAX))
        };
        while waiter.waiting() < 1 {
            thread::yield_now();
        }
        waiter.set_connected();
        assert!(handle.join().unwrap().is_ok());
    }
}
