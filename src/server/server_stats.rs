//! [`QueueServerStats`]: what a [`QueueServer`](super::QueueServer)
//! counted since it started, and the [`ServerCounters`] its accept and
//! connection threads count into.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A queue server's counters, totals over every connection
/// ([`QueueServer::stats`](super::QueueServer::stats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QueueServerStats {
    /// Connections open now.
    pub connections: u64,
    /// Connections accepted and served since the start.
    pub accepted: u64,
    /// Connections refused because
    /// [`max_connections`](super::QueueServerConfig::max_connections) were
    /// open.
    pub refused: u64,
    /// Frames read from clients (requests, acks, pings).
    pub frames_in: u64,
    /// Frames written to clients (answers, deliveries, errors).
    pub frames_out: u64,
}

/// The server's counters, shared by its threads.
#[derive(Debug, Default)]
pub(crate) struct ServerCounters {
    pub(crate) accepted: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) frames_in: AtomicU64,
    /// Counted by every connection's frame writer.
    pub(crate) frames_out: Arc<AtomicU64>,
}

impl ServerCounters {
    /// The counts now, with `connections` open.
    pub(crate) fn stats(&self, connections: usize) -> QueueServerStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        QueueServerStats {
            connections: connections as u64,
            accepted: read(&self.accepted),
            refused: read(&self.refused),
            frames_in: read(&self.frames_in),
            frames_out: read(&self.frames_out),
        }
    }
}
