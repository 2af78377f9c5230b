//! The [`Reporter`] the dispatcher and cleanup threads share: outcome
//! events into a bounded channel, never waiting for a reader, each
//! counted first (the outbox's stats).

use std::sync::Arc;

use crossbeam_channel::{Sender, TrySendError};

use crate::outbox::event::OutboxEvent;
use crate::outbox::stats::OutboxCounters;

/// Counts events and sends them without ever blocking: a full channel
/// drops the event and counts that too.
#[derive(Clone)]
pub(crate) struct Reporter {
    events: Sender<OutboxEvent>,
    counters: Arc<OutboxCounters>,
}

impl Reporter {
    pub(crate) fn new(events: Sender<OutboxEvent>, counters: Arc<OutboxCounters>) -> Self {
        Reporter { events, counters }
    }

    /// The counters it counts into (the outbox's stats and metrics).
    pub(crate) fn counters(&self) -> &OutboxCounters {
        &self.counters
    }

    pub(crate) fn report(&self, event: OutboxEvent) {
        self.counters.count(&event);
        match self.events.try_send(event) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(event)) => {
                self.counters.dropped_events.add(1);
                log::trace!("outbox events channel full; dropped {event:?}");
            }
        }
    }
}
