//! Named threads with an owner that can join them within a deadline.
//!
//! Every thread syncmq starts goes through [`spawn`]: its name starts with
//! `syncmq-` (so a test, `top -H` or a debugger can tell ours apart; Linux
//! shows the first 15 bytes), and it comes back as a [`Worker`] that its owner
//! must join. `std` can only join without a deadline, so a worker also holds
//! the receiving end of a channel whose sender the thread drops as it ends,
//! even by panicking; [`Worker::join_timeout`] waits on that channel.
//!
//! Owners tell their threads to stop with a [`Stopper`]: a thread checks its
//! [`StopToken`] with one atomic load on a hot path, selects on it while
//! blocked on a channel, or sleeps on it between retries, and wakes at once
//! either way. Dropping the `Stopper` stops the threads too, so an owner that
//! is dropped without being closed does not leave its threads behind.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{
    Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::error::{Error, Result};

/// The prefix of every thread name syncmq gives.
pub const THREAD_PREFIX: &str = "syncmq-";

/// A thread we started and must join.
#[derive(Debug)]
pub struct Worker<T> {
    name: String,
    handle: JoinHandle<T>,
    finished: Receiver<()>,
}

/// Starts `f` on a thread named `syncmq-{name}`.
///
/// # Errors
///
/// [`Error::Io`] when the OS refuses a new thread (out of memory or
/// over the process's thread limit).
pub fn spawn<T, F>(name: impl AsRef<str>, f: F) -> Result<Worker<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let name = format!("{THREAD_PREFIX}{}", name.as_ref());
    let (finished_tx, finished) = crossbeam_channel::bounded::<()>(0);
    let handle = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            // Dropped when `f` returns or unwinds: that is the signal.
            let _finished = finished_tx;
            f()
        })
        .map_err(|e| Error::io(format!("start thread {name}"), e))?;
    Ok(Worker {
        name,
        handle,
        finished,
    })
}

impl<T> Worker<T> {
    /// The thread's full name.
    #[allow(dead_code)] // for owners that report a stuck thread by name
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True once the thread has ended; [`join`](Self::join) then returns at
    /// once.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Waits for the thread to end, however long that takes.
    ///
    /// # Errors
    ///
    /// [`Error::Panicked`] when the thread panicked.
    pub fn join(self) -> Result<T> {
        let name = self.name;
        self.handle
            .join()
            .map_err(|payload| panicked(name, payload))
    }

    /// Waits at most `timeout` for the thread to end.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when it is still running; the thread is then left
    /// to finish on its own (it cannot be killed) and the error is logged,
    /// because a thread that ignores its stop signal is a bug.
    /// [`Error::Panicked`] when it panicked.
    // Only the queue client joins by timeout rather than by deadline.
    #[cfg_attr(not(feature = "durable"), allow(dead_code))]
    pub fn join_timeout(self, timeout: Duration) -> Result<T> {
        self.join_deadline(Instant::now() + timeout)
    }

    /// As [`join_timeout`](Self::join_timeout), with a deadline shared by
    /// several joins.
    ///
    /// # Errors
    ///
    /// As [`join_timeout`](Self::join_timeout).
    pub fn join_deadline(self, deadline: Instant) -> Result<T> {
        let started = Instant::now();
        match self.finished.recv_deadline(deadline) {
            Err(RecvTimeoutError::Disconnected) => self.join(),
            Ok(()) => unreachable!("nothing is ever sent on the finished channel"),
            Err(RecvTimeoutError::Timeout) => {
                let waited = started.elapsed();
                log::error!(
                    "thread {} did not stop in time; leaving it running",
                    self.name
                );
                Err(Error::timeout(
                    format!("thread {} to stop", self.name),
                    waited,
                ))
            }
        }
    }
}

/// The owner's side of a stop signal. See [`stop_signal`].
#[derive(Debug)]
pub struct Stopper {
    flag: Arc<AtomicBool>,
    /// Never sent on: dropping it disconnects every token's receiver, which
    /// is what wakes a thread blocked in a `select!`.
    wake: Option<Sender<()>>,
}

/// A thread's side of a stop signal. Clone one per thread.
#[derive(Debug, Clone)]
pub struct StopToken {
    flag: Arc<AtomicBool>,
    wake: Receiver<()>,
}

/// A new stop signal: the owner keeps the [`Stopper`], each thread gets a
/// clone of the [`StopToken`].
pub fn stop_signal() -> (Stopper, StopToken) {
    let flag = Arc::new(AtomicBool::new(false));
    let (wake_tx, wake_rx) = crossbeam_channel::bounded(0);
    (
        Stopper {
            flag: flag.clone(),
            wake: Some(wake_tx),
        },
        StopToken {
            flag,
            wake: wake_rx,
        },
    )
}

impl Stopper {
    /// Tells every token's thread to stop. Calling it again does nothing.
    pub fn stop(&mut self) {
        self.flag.store(true, Ordering::SeqCst);
        self.wake = None;
    }
}

impl Drop for Stopper {
    fn drop(&mut self) {
        self.stop();
    }
}

impl StopToken {
    /// True once the owner said stop. One atomic load: cheap enough for
    /// every message on a hot path.
    pub fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// A receiver that becomes ready (disconnected) when the owner says
    /// stop, for use in `select!` next to the channel a thread blocks on.
    pub fn receiver(&self) -> &Receiver<()> {
        &self.wake
    }

    /// Sleeps for `duration` or until the owner says stop, whichever comes
    /// first. Returns true when stopped: the caller should wind down.
    pub fn sleep(&self, duration: Duration) -> bool {
        match self.wake.recv_timeout(duration) {
            Err(RecvTimeoutError::Timeout) => self.is_stopped(),
            Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
        }
    }
}

/// [`Error::Panicked`] for `what`, with the panic's message.
#[allow(clippy::needless_pass_by_value)] // takes over the payload `catch_unwind` hands out
pub(crate) fn panicked(what: String, payload: Box<dyn Any + Send>) -> Error {
    Error::Panicked {
        what,
        message: panic_message(payload.as_ref()),
    }
}

/// The message a panic was raised with (`panic!("...")` gives a `&str` or a
/// `String`; anything else has none to show).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_is_named_and_returns_its_value() {
        let w = spawn("unit", || std::thread::current().name().map(String::from)).unwrap();
        assert_eq!(w.name(), "syncmq-unit");
        assert_eq!(w.join().unwrap().as_deref(), Some("syncmq-unit"));
    }

    #[test]
    fn a_panic_is_an_error_naming_the_thread() {
        let w = spawn("boom", || -> () { panic!("kaput") }).unwrap();
        match w.join_timeout(Duration::from_secs(5)) {
            Err(Error::Panicked { what, message }) => {
                assert_eq!(what, "syncmq-boom");
                assert_eq!(message, "kaput");
            }
            other => panic!("expected Panicked, got {other:?}"),
        }
    }

    #[test]
    fn a_stop_wakes_a_sleeping_thread_at_once() {
        let (mut stopper, token) = stop_signal();
        let w = spawn("sleeper", move || {
            let started = Instant::now();
            let stopped = token.sleep(Duration::from_secs(60));
            (stopped, started.elapsed())
        })
        .unwrap();
        stopper.stop();
        let (stopped, slept) = w.join_timeout(Duration::from_secs(10)).unwrap();
        assert!(stopped);
        assert!(slept < Duration::from_secs(60));
    }

    #[test]
    fn dropping_the_stopper_stops_and_a_timeout_is_not_a_stop() {
        let (stopper, token) = stop_signal();
        assert!(!token.sleep(Duration::from_millis(1)));
        assert!(!token.is_stopped());
        drop(stopper);
        assert!(token.is_stopped());
        assert!(token.sleep(Duration::from_secs(60)));
        assert!(token.receiver().recv().is_err());
    }

    #[test]
    fn a_thread_that_does_not_stop_is_a_timeout() {
        let (tx, rx) = crossbeam_channel::bounded::<()>(0);
        let w = spawn("stuck", move || rx.recv()).unwrap();
        let err = w.join_timeout(Duration::from_millis(20)).unwrap_err();
        match err {
            // The error says how long we waited, not how long was left.
            Error::Timeout { after, .. } => {
                assert!(after >= Duration::from_millis(20), "{after:?}");
            }
            other => panic!("expected Timeout, got {other:?}"),
        }
        drop(tx); // lets the thread end
    }
}

/// Joins every worker by one shared `deadline` and keeps the first error.
///
/// Every worker is joined (or given up on at the deadline) even after one
/// failed, so no thread is left unjoined because another panicked.
///
/// # Errors
///
/// The first worker's [`Error::Panicked`] or [`Error::Timeout`].
pub fn join_all<T>(workers: impl IntoIterator<Item = Worker<T>>, deadline: Instant) -> Result<()> {
    let mut first = Ok(());
    for worker in workers {
        if let Err(e) = worker.join_deadline(deadline) {
            if first.is_ok() {
                first = Err(e);
            }
        }
    }
    first
}

/// Locks `mutex`, taking the data even if a thread panicked while holding
/// it.
///
/// Every lock in syncmq guards state that each critical section leaves
/// consistent before anything can panic, and a panicking thread is reported
/// through its [`Worker`]; refusing the lock afterwards would turn one
/// failure into a cascade of them.
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Takes `lock` for reading, as [`lock`] does for a mutex.
pub fn read<T: ?Sized>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// Takes `lock` for writing, as [`lock`] does for a mutex.
pub fn write<T: ?Sized>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// Waits on `condvar` with `guard`, at most `timeout` when one is given,
/// and takes the data back even if a thread panicked meanwhile (see
/// [`lock`]). Spurious and timed-out wake-ups both just return: callers
/// re-check their condition and their deadline in a loop.
pub fn wait<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: Option<Duration>,
) -> MutexGuard<'a, T> {
    match timeout {
        None => condvar.wait(guard).unwrap_or_else(PoisonError::into_inner),
        Some(timeout) => {
            condvar
                .wait_timeout(guard, timeout)
                .unwrap_or_else(PoisonError::into_inner)
                .0
        }
    }
}

/// The wait before retry number `failures` (1 for the first retry):
/// `initial * 2^(failures-1)`, at most `max`, less up to a quarter of
/// random jitter so that many clients retrying the same broker spread out.
/// `failures == 0` waits `initial`, less jitter.
pub fn backoff(failures: u32, initial: Duration, max: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    let full = initial.saturating_mul(1u32 << doublings).min(max);
    full.saturating_sub(full.mul_f64(random_fraction() * 0.25))
}

/// A number in [0, 1) that differs between calls and processes; enough for
/// jitter, not for anything that needs real randomness.
pub(crate) fn random_fraction() -> f64 {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher};
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            h.finish() | 1
        });
    }
    STATE.with(|s| {
        // xorshift64
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        #[allow(clippy::cast_precision_loss)] // 53 bits fit an f64 exactly
        let fraction = (x >> 11) as f64 / (1u64 << 53) as f64;
        fraction
    })
}

#[cfg(test)]
mod helper_tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_less_a_quarter_of_jitter() {
        let (initial, max) = (Duration::from_millis(100), Duration::from_secs(1));
        for (failures, full) in [
            (0, 100),
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (40, 1000),
        ] {
            let full = Duration::from_millis(full);
            let wait = backoff(failures, initial, max);
            assert!(
                wait <= full && wait >= full * 3 / 4,
                "{failures}: {wait:?} vs {full:?}"
            );
        }
    }

    #[test]
    fn join_all_joins_every_worker_and_keeps_the_first_error() {
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        let tx = done_tx.clone();
        let workers = vec![
            spawn("join-all-panics", || panic!("first")).unwrap(),
            spawn("join-all-ok", move || tx.send(()).unwrap()).unwrap(),
        ];
        let error = join_all(workers, Instant::now() + Duration::from_secs(5)).unwrap_err();
        assert!(matches!(error, Error::Panicked { .. }), "{error:?}");
        drop(done_tx);
        assert_eq!(done_rx.iter().count(), 1, "the second worker was joined");
    }

    #[test]
    fn lock_takes_a_poisoned_mutex() {
        let mutex = Arc::new(Mutex::new(1));
        let m = mutex.clone();
        let _ = std::thread::spawn(move || {
            let _guard = m.lock().unwrap();
            panic!("poison");
        })
        .join();
        assert!(mutex.is_poisoned());
        assert_eq!(*lock(&mutex), 1);
    }
}
