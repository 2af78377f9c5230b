//! [`Held`]: how many messages the publisher holds until they are settled,
//! which bounds the retry buffer and is what `flush` waits on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use crate::metrics::Gauge;
use crate::thread::{lock, wait};

/// Messages accepted and not yet settled (confirmed, or failed for good).
pub(super) struct Held {
    count: AtomicUsize,
    zero: Condvar,
    lock: Mutex<()>,
    /// The count, as a metric: moved by the same steps as `count` (not
    /// set to it, which two threads could do out of order).
    gauge: Gauge,
}

impl Held {
    /// None held; the count goes to `gauge` too.
    pub(super) fn new(gauge: Gauge) -> Self {
        Held {
            count: AtomicUsize::new(0),
            zero: Condvar::new(),
            lock: Mutex::new(()),
            gauge,
        }
    }

    /// How many are held now.
    pub(super) fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Counts one more message held; returns how many were held before.
    pub(super) fn hold(&self) -> usize {
        self.gauge.add(1.0);
        self.count.fetch_add(1, Ordering::SeqCst)
    }

    /// One message is settled; wakes the waiters when none is left.
    pub(super) fn release(&self) {
        self.gauge.add(-1.0);
        if self.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            let _guard = lock(&self.lock);
            self.zero.notify_all();
        }
    }

    /// Waits until none is held or `deadline` passes; returns how many are
    /// still held (0 when all were settled in time).
    pub(super) fn wait_settled(&self, deadline: Instant) -> usize {
        let mut guard = lock(&self.lock);
        loop {
            let count = self.count();
            let left = deadline.saturating_duration_since(Instant::now());
            if count == 0 || left.is_zero() {
                return count;
            }
            guard = wait(&self.zero, guard, Some(left));
        }
    }
}
