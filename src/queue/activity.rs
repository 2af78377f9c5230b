//! [`Activity`]: what one subscriber did since the queue was opened
//! (entries published to it, delivered, redelivered, acked, nacked), and
//! the metrics of its queue. Kept in memory, never stored: the stored
//! [`Counters`](super::subscriber_state::Counters) say what the queue
//! holds, these say what went through it, which is what an operator
//! watching a rate wants.

use crate::metrics::{name, Count, Counter, Gauge};

/// A subscriber's counts since the open, each also a metric labelled with
/// its topic and subscriber.
#[derive(Debug)]
pub(crate) struct Activity {
    /// Entries published to the subscriber's queue (a dedupe that
    /// replaced an undelivered body adds none).
    pub(crate) published: Count,
    /// Deliveries handed out, redeliveries included.
    pub(crate) delivered: Count,
    /// Deliveries after the first of their entry (a nack, an ack timeout,
    /// a reset or a restart brought them back).
    pub(crate) redelivered: Count,
    /// Deliveries acked.
    pub(crate) acked: Count,
    /// Deliveries nacked, requeued or dead-lettered.
    pub(crate) nacked: Count,
    /// Metrics only: the stored counters count these.
    dead_lettered: Counter,
    expired: Counter,
    depth: Gauge,
    in_flight: Gauge,
}

impl Activity {
    pub(crate) fn new(topic: &str, subscriber: &str) -> Self {
        let labels = [("topic", topic), ("subscriber", subscriber)];
        Activity {
            published: Count::new(name::QUEUE_PUBLISHED, &labels),
            delivered: Count::new(name::QUEUE_DELIVERED, &labels),
            redelivered: Count::new(name::QUEUE_REDELIVERED, &labels),
            acked: Count::new(name::QUEUE_ACKED, &labels),
            nacked: Count::new(name::QUEUE_NACKED, &labels),
            dead_lettered: Counter::new(name::QUEUE_DEAD_LETTERED, &labels),
            expired: Counter::new(name::QUEUE_EXPIRED, &labels),
            depth: Gauge::new(name::QUEUE_DEPTH, &labels),
            in_flight: Gauge::new(name::QUEUE_IN_FLIGHT, &labels),
        }
    }

    /// Counts one delivery, number `deliveries` of its entry.
    pub(crate) fn delivered(&self, deliveries: u32) {
        self.delivered.add(1);
        if deliveries > 1 {
            self.redelivered.add(1);
        }
    }

    /// Counts an entry moved to the dead-letter queue.
    pub(crate) fn dead_lettered(&self) {
        self.dead_lettered.increment(1);
    }

    /// Counts a message dropped on expiry.
    pub(crate) fn expired(&self) {
        self.expired.increment(1);
    }

    /// Sets the gauges: `depth` entries waiting, `in_flight` delivered and
    /// not acked.
    pub(crate) fn observe(&self, depth: u64, in_flight: usize) {
        self.depth.set(depth);
        self.in_flight.set(in_flight as u64);
    }
}
