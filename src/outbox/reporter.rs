//! The [`Reporter`] the dispatcher and cleanup threads share: outcome
//! events into a bounded channel, never waiting for a reader.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Sender, TrySendError};

use crate::outbox::event::OutboxEvent;

/// Sends events without ever blocking: a full channel drops the event and
/// counts it.
#[derive(Clone)]
pub(crate) struct Reporter {
    events: Sender<OutboxEvent>,
    dropped: Arc<AtomicU64>,
}

impl Reporter {
    pub(crate) fn new(events: Sender<OutboxEvent>, dropped: Arc<AtomicU64>) -> Self {
        Reporter { events, dropped }
    }

    pub(crate) fn report(&self, event: OutboxEvent) {
        match self.events.try_send(event) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(event)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                log::trace!("outbox events channel full; dropped {event:?}");
            }
        }
    }
}
