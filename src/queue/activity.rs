//! [`Activity`]: what one subscriber did since the queue was opened
//! (entries published to it, delivered, redelivered, acked, nacked). Kept
//! in memory under the engine's lock, never stored: the stored
//! [`Counters`](super::subscriber_state::Counters) say what the queue
//! holds, these say what went through it, which is what an operator
//! watching a rate wants.

/// A subscriber's counts since the open; each only grows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Activity {
    /// Entries published to the subscriber's queue (a dedupe that
    /// replaced an undelivered body adds none).
    pub(crate) published: u64,
    /// Deliveries handed out, redeliveries included.
    pub(crate) delivered: u64,
    /// Deliveries after the first of their entry (a nack, an ack timeout,
    /// a reset or a restart brought them back).
    pub(crate) redelivered: u64,
    /// Deliveries acked.
    pub(crate) acked: u64,
    /// Deliveries nacked, requeued or dead-lettered.
    pub(crate) nacked: u64,
}

impl Activity {
    /// Counts `n` entries published.
    pub(crate) fn published(&mut self, n: u64) {
        self.published += n;
    }

    /// Counts one delivery, number `deliveries` of its entry.
    pub(crate) fn delivered(&mut self, deliveries: u32) {
        self.delivered += 1;
        if deliveries > 1 {
            self.redelivered += 1;
        }
    }

    /// Counts `n` deliveries acked.
    pub(crate) fn acked(&mut self, n: u64) {
        self.acked += n;
    }

    /// Counts `n` deliveries nacked.
    pub(crate) fn nacked(&mut self, n: u64) {
        self.nacked += n;
    }
}
