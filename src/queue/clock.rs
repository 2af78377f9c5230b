//! [`Clock`]: where the queue engine reads the time for ack deadlines
//! (monotonic, [`Clock::now`]) and for message expiry and topic TTLs
//! (wall time, [`Clock::wall`], because an expiry is stored with the
//! message and must mean the same after a restart). [`SystemClock`] is the
//! default; [`ManualClock`] is a clock a test moves, as ppmq's tests move
//! theirs, so that a 30 s ack timeout is tested without waiting 30 s.
//!
//! # How a manual clock wakes the queue
//!
//! The sweeper thread sleeps on a Condvar until the earliest ack deadline,
//! in real time. Instead of waking that thread and letting it catch up
//! (which a test would have to wait for), a queue registers a callback
//! with its clock ([`Clock::on_advance`]) and [`ManualClock::advance`]
//! calls it on the advancing thread: the callback takes the queue's lock
//! and redelivers everything whose deadline has passed, waking blocked
//! receives and readiness watchers, before `advance` returns. So right
//! after `advance` a receive finds the redelivery, and a receive made
//! before it still finds nothing that was not due: no real waiting, no
//! race. The clock holds the callbacks weakly, so a queue that is dropped
//! leaves nothing behind (and a clock shared by several queues moves them
//! all).
//!
//! Only deadline, expiry and TTL logic reads the clock. Waits for I/O and
//! for threads stay on real time whatever the clock: a receive's timeout
//! (`recv_timeout`, `next_batch`), a receipt's or commit's
//! `wait_timeout`, and close timeouts.

use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use crate::error::{Error, Result};
use crate::thread::lock;

/// A callback a [`Clock`] calls after its time moved: see
/// [`Clock::on_advance`].
pub type AdvanceFn = dyn Fn() + Send + Sync;

/// The time as the queue engine reads it: a monotonic clock for ack
/// deadlines and a wall clock for message expiry and topic TTLs. Set with
/// [`QueueConfig::with_clock`](super::QueueConfig::with_clock); the
/// default is [`SystemClock`]. Tests use [`ManualClock`].
///
/// Only deadlines, expiry and TTLs follow the clock: a receive's timeout,
/// a receipt's `wait_timeout` and close timeouts are real time.
pub trait Clock: Send + Sync + 'static {
    /// Monotonic time, for ack deadlines: never goes backwards.
    fn now(&self) -> Instant;

    /// Wall time, for message expiry and topic TTLs (stored with the
    /// message as wall time).
    fn wall(&self) -> SystemTime;

    /// Registers `notify`, which a clock whose time can jump (a test's)
    /// calls, on the thread that moved it, after each jump while `notify`
    /// is alive: a queue acts on the deadlines that have passed from
    /// there. A clock that only moves on its own, as the system's, ignores
    /// it (the default); the queue's sweeper thread follows it.
    fn on_advance(&self, notify: Weak<AdvanceFn>) {
        let _ = notify;
    }
}

/// The operating system's clocks, [`Instant::now`] and
/// [`SystemTime::now`]: the default [`Clock`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A [`Clock`] that moves only when told: starts at the real time of its
/// creation, and [`advance`](Self::advance) moves its monotonic and wall
/// time together and, before it returns, lets every queue that uses it
/// act on the ack deadlines that passed (through [`Clock::on_advance`]),
/// so a test asserts right after it instead of sleeping. See "Testing
/// with a clock" in the [queue docs](crate::queue#testing-with-a-clock).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use syncmq::queue::{Clock, ManualClock};
///
/// # fn main() -> syncmq::Result<()> {
/// let clock = Arc::new(ManualClock::new());
/// let (then, wall) = (clock.now(), clock.wall());
/// clock.advance(Duration::from_secs(30))?;
/// assert_eq!(clock.now() - then, Duration::from_secs(30));
/// assert_eq!(clock.wall(), wall + Duration::from_secs(30));
/// # Ok(())
/// # }
/// ```
pub struct ManualClock {
    times: Mutex<Times>,
    /// The queues' callbacks, held weakly: see [`Clock::on_advance`].
    notify: Mutex<Vec<Weak<AdvanceFn>>>,
}

/// A [`ManualClock`]'s current readings.
#[derive(Debug, Clone, Copy)]
struct Times {
    now: Instant,
    wall: SystemTime,
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("times", &*lock(&self.times))
            .finish_non_exhaustive()
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl ManualClock {
    /// A clock reading the real time now, standing still until
    /// [`advance`](Self::advance)d.
    pub fn new() -> Self {
        ManualClock {
            times: Mutex::new(Times {
                now: Instant::now(),
                wall: SystemTime::now(),
            }),
            notify: Mutex::new(Vec::new()),
        }
    }

    /// Moves the monotonic and the wall time forward by `by`, then, on this
    /// thread and before returning, lets every queue on this clock act on
    /// what became due: deliveries past their ack deadline are given back
    /// (and blocked receives woken). Expiry needs no call: a receive checks
    /// it against [`wall`](Clock::wall) when it takes a message.
    ///
    /// Not to be called from a readiness watcher
    /// ([`Subscriber::on_ready`](super::Subscriber::on_ready)): it runs
    /// under the queue's lock, which the sweep takes.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming `by` when the clock cannot hold
    /// the time it would reach; the clock then stays where it was.
    pub fn advance(&self, by: Duration) -> Result<()> {
        {
            let mut times = lock(&self.times);
            let beyond = || {
                Error::invalid(
                    "by",
                    format!("advancing the clock by {by:?} goes beyond the time it can hold"),
                )
            };
            let now = times.now.checked_add(by).ok_or_else(beyond)?;
            let wall = times.wall.checked_add(by).ok_or_else(beyond)?;
            *times = Times { now, wall };
        }
        // Called without the clock's locks: a callback takes a queue's
        // lock, under which the queue reads this clock.
        let live: Vec<Arc<AdvanceFn>> = {
            let mut notify = lock(&self.notify);
            notify.retain(|n| n.strong_count() > 0);
            notify.iter().filter_map(Weak::upgrade).collect()
        };
        for notify in live {
            notify();
        }
        Ok(())
    }

    /// Sets the wall time (to a fixed date, say, or back, as an operator
    /// may set a machine's clock); the monotonic time stays where it is.
    /// Messages whose expiry is before it are dropped when next taken.
    pub fn set_wall(&self, wall: SystemTime) {
        lock(&self.times).wall = wall;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        lock(&self.times).now
    }

    fn wall(&self) -> SystemTime {
        lock(&self.times).wall
    }

    fn on_advance(&self, notify: Weak<AdvanceFn>) {
        let mut list = lock(&self.notify);
        list.retain(|n| n.strong_count() > 0);
        list.push(notify);
    }
}

/// The clock a config names: `None` for the system clock. Compares by
/// identity (two configs are equal when they share the clock), so that the
/// configs keep their `PartialEq`, `Eq` and `Debug`; serde skips it, since
/// a file cannot hold a clock.
#[derive(Clone, Default)]
pub(crate) struct ConfiguredClock(Option<Arc<dyn Clock>>);

impl ConfiguredClock {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        ConfiguredClock(Some(clock))
    }

    /// The clock, [`SystemClock`] when none was set.
    pub(crate) fn get(&self) -> Arc<dyn Clock> {
        self.0.clone().unwrap_or_else(|| Arc::new(SystemClock))
    }
}

impl PartialEq for ConfiguredClock {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b)),
            _ => false,
        }
    }
}

impl Eq for ConfiguredClock {}

impl fmt::Debug for ConfiguredClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("SystemClock"),
            Some(c) => write!(f, "Clock({:p})", Arc::as_ptr(c)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn advance_moves_both_times_and_calls_the_live_callbacks() {
        let clock = ManualClock::new();
        let (now, wall) = (clock.now(), clock.wall());
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let notify: Arc<AdvanceFn> = Arc::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        clock.on_advance(Arc::downgrade(&notify));
        clock.advance(Duration::from_secs(5)).unwrap();
        assert_eq!(clock.now() - now, Duration::from_secs(5));
        assert_eq!(clock.wall(), wall + Duration::from_secs(5));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        drop(notify);
        clock.advance(Duration::from_secs(1)).unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1, "a dropped callback");
        assert!(lock(&clock.notify).is_empty(), "and forgotten");
    }

    #[test]
    fn an_advance_beyond_what_the_clock_holds_is_refused_and_moves_nothing() {
        let clock = ManualClock::new();
        let now = clock.now();
        match clock.advance(Duration::MAX) {
            Err(Error::InvalidArgument { name, .. }) => assert_eq!(name, "by"),
            other => panic!("{other:?}"),
        }
        assert_eq!(clock.now(), now);
    }

    #[test]
    fn set_wall_moves_only_the_wall_time() {
        let clock = ManualClock::new();
        let now = clock.now();
        clock.set_wall(SystemTime::UNIX_EPOCH);
        assert_eq!(clock.wall(), SystemTime::UNIX_EPOCH);
        assert_eq!(clock.now(), now);
    }

    #[test]
    fn configured_clocks_are_equal_when_they_are_the_same_clock() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new());
        let other: Arc<dyn Clock> = Arc::new(ManualClock::new());
        assert_eq!(ConfiguredClock::default(), ConfiguredClock::default());
        assert_eq!(
            ConfiguredClock::new(clock.clone()),
            ConfiguredClock::new(clock.clone())
        );
        assert_ne!(
            ConfiguredClock::new(clock.clone()),
            ConfiguredClock::new(other)
        );
        assert_ne!(ConfiguredClock::new(clock), ConfiguredClock::default());
    }
}
