//! The [`Reporter`] the dispatcher and cleanup threads share: outcome
//! events into a bounded channel, each counted first (the outbox's stats).
//! When the channel is full the event is dropped and counted, or, with
//! [`WhenFull::Wait`], waited for until the reader takes one or the outbox
//! closes (the close disconnects `closing`, so no thread waits past it).

use std::sync::Arc;

use crossbeam_channel::{select, Receiver, Sender, TrySendError};

use crate::outbox::event::{OutboxEvent, WhenFull};
use crate::outbox::stats::OutboxCounters;

/// Counts events and sends them on, as its [`WhenFull`] says.
#[derive(Clone)]
pub(crate) struct Reporter {
    events: Sender<OutboxEvent>,
    counters: Arc<OutboxCounters>,
    when_full: WhenFull,
    /// Disconnected when the outbox closes.
    closing: Receiver<()>,
}

impl Reporter {
    pub(crate) fn new(
        events: Sender<OutboxEvent>,
        counters: Arc<OutboxCounters>,
        when_full: WhenFull,
        closing: Receiver<()>,
    ) -> Self {
        Reporter {
            events,
            counters,
            when_full,
            closing,
        }
    }

    /// The counters it counts into (the outbox's stats and metrics).
    pub(crate) fn counters(&self) -> &OutboxCounters {
        &self.counters
    }

    pub(crate) fn report(&self, event: OutboxEvent) {
        self.counters.count(&event);
        let event = match self.events.try_send(event) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => return,
            Err(TrySendError::Full(event)) => event,
        };
        if self.when_full == WhenFull::Wait {
            select! {
                send(self.events, event) -> _ => return,
                recv(self.closing) -> _ => {}
            }
        }
        self.counters.dropped_events.add(1);
        log::trace!("outbox events channel full; dropped an event");
    }
}
