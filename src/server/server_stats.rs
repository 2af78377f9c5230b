//! [`QueueServerStats`]: what a [`QueueServer`](super::QueueServer)
//! counted since it started, and the [`ServerCounters`] its accept and
//! connection threads count into.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::metrics::{name, Count};

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

/// The server's counters, shared by its threads; each also a metric.
#[derive(Debug)]
pub(crate) struct ServerCounters {
    pub(crate) accepted: Count,
    pub(crate) refused: Count,
    pub(crate) frames_in: Count,
    /// Counted by every connection's frame writer.
    pub(crate) frames_out: Arc<Count>,
}

impl Default for ServerCounters {
    fn default() -> Self {
        ServerCounters {
            accepted: Count::new(name::SERVER_ACCEPTED, &[]),
            refused: Count::new(name::SERVER_REFUSED, &[]),
            frames_in: Count::new(name::SERVER_FRAMES_IN, &[]),
            frames_out: Arc::new(Count::new(name::SERVER_FRAMES_OUT, &[])),
        }
    }
}

impl ServerCounters {
    /// The counts now, with `connections` open.
    pub(crate) fn stats(&self, connections: usize) -> QueueServerStats {
        QueueServerStats {
            connections: connections as u64,
            accepted: self.accepted.get(),
            refused: self.refused.get(),
            frames_in: self.frames_in.get(),
            frames_out: self.frames_out.get(),
        }
    }
}
