//! The dispatcher and cleanup threads an [`Outbox`](crate::outbox::Outbox)
//! owns, and the reporter they share. See the
//! [`dispatcher`](crate::outbox::dispatcher) module for what they do.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Sender, TrySendError};

use crate::error::{Error, Result};
use crate::outbox::config::OutboxConfig;
use crate::outbox::signal::Signal;
use crate::outbox::stream::EventStream;
use crate::outbox::{OutboxEvent, OutboxRecord, OutboxStore};
use crate::thread::panicked;

/// Sends events without ever blocking.
#[derive(Clone)]
pub(crate) struct Reporter {
    pub(crate) events: Sender<OutboxEvent>,
    pub(crate) dropped: Arc<AtomicU64>,
}

impl Reporter {
    fn report(&self, event: OutboxEvent) {
        match self.events.try_send(event) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(event)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                log::trace!("outbox events channel full; dropped {event:?}");
            }
        }
    }
}

/// True for errors that say the destination is down, not that the row is
/// bad: they are retried without counting against the row. A refusal (a
/// missing exchange or queue, no permission) is about the destination too.
fn stream_is_down(error: &Error) -> bool {
    error.is_transient() || matches!(error, Error::Closed(_) | Error::Refused { .. })
}

pub(crate) struct Dispatcher<S, T> {
    pub(crate) store: Arc<S>,
    pub(crate) stream: T,
    pub(crate) signal: Arc<Signal>,
    pub(crate) reporter: Reporter,
    pub(crate) config: OutboxConfig,
    /// Failures in a row, for the backoff; reset by every success.
    pub(crate) failures: u32,
}

/// What one pass over a batch came to.
enum Pass {
    /// Every row was handled; read the next batch at once if it was full.
    Done { full: bool },
    /// Something failed: back off, then start again.
    Failed,
}

impl<S: OutboxStore, T: EventStream> Dispatcher<S, T> {
    pub(crate) fn run(mut self) {
        log::debug!("outbox dispatcher started");
        while !self.signal.is_stopped() {
            // Read the count before the store: an add that commits after the
            // read below bumps it, and the wait returns at once.
            let seen = self.signal.adds();
            let batch = match self.store.pending(self.config.batch_size) {
                Ok(batch) => batch,
                Err(error) => {
                    log::warn!("outbox: reading pending rows failed: {error}");
                    self.reporter.report(OutboxEvent::StoreFailed { error });
                    if self.back_off() {
                        break;
                    }
                    continue;
                }
            };
            if batch.is_empty() {
                self.failures = 0;
                if self.signal.wait_for_add(seen, self.config.check_interval) {
                    break;
                }
                continue;
            }
            match self.pass(&batch) {
                Pass::Done { full: true } => {}
                Pass::Done { full: false } => {
                    if self.signal.wait_for_add(seen, self.config.check_interval) {
                        break;
                    }
                }
                Pass::Failed => {
                    if self.back_off() {
                        break;
                    }
                }
            }
        }
        log::debug!("outbox dispatcher stopped");
    }

    /// Sends the batch in order, marking what was sent. Stops at the first
    /// failure so that no row overtakes one still to be retried.
    fn pass(&mut self, batch: &[OutboxRecord]) -> Pass {
        let mut sent = Vec::with_capacity(batch.len());
        let mut failed = false;
        for record in batch {
            if self.signal.is_stopped() {
                break;
            }
            match self.send(record) {
                Ok(()) => sent.push(record.id),
                Err(error) => {
                    failed = !self.handle_failure(record, error);
                    if failed {
                        break;
                    }
                }
            }
        }
        if !sent.is_empty() {
            if let Err(error) = self.flush() {
                // Not confirmed: the rows stay pending and are sent again.
                log::warn!(
                    "outbox: the stream did not confirm {} rows: {error}",
                    sent.len()
                );
                self.reporter
                    .report(OutboxEvent::FlushFailed { ids: sent, error });
                return Pass::Failed;
            }
            if let Err(error) = self.store.mark_dispatched(&sent) {
                // The rows stay pending and are sent again: at least once.
                log::warn!(
                    "outbox: marking {} rows dispatched failed: {error}",
                    sent.len()
                );
                self.reporter.report(OutboxEvent::StoreFailed { error });
                return Pass::Failed;
            }
            self.failures = 0;
            for id in sent {
                self.reporter.report(OutboxEvent::Dispatched { id });
            }
        }
        if failed {
            Pass::Failed
        } else {
            Pass::Done {
                full: batch.len() >= self.config.batch_size,
            }
        }
    }

    /// One send; a panicking stream is a failure of that row, not the end
    /// of the dispatcher.
    fn send(&mut self, record: &OutboxRecord) -> Result<()> {
        catch_unwind(AssertUnwindSafe(|| self.stream.send(record))).unwrap_or_else(|payload| {
            Err(panicked(
                format!("outbox stream sending row {}", record.id),
                payload,
            ))
        })
    }

    /// The stream's flush, panics caught as in [`send`](Self::send).
    fn flush(&mut self) -> Result<()> {
        catch_unwind(AssertUnwindSafe(|| self.stream.flush()))
            .unwrap_or_else(|payload| Err(panicked("outbox stream flush".into(), payload)))
    }

    /// Counts a failed send. Returns true when the row went dead, so the
    /// pass may go on with the rows behind it.
    fn handle_failure(&mut self, record: &OutboxRecord, error: Error) -> bool {
        if stream_is_down(&error) {
            log::debug!("outbox: stream down sending row {}: {error}", record.id);
            self.reporter.report(OutboxEvent::Failed {
                id: record.id,
                attempts: record.attempts,
                error,
            });
            return false;
        }
        let attempts = match self.store.record_failure(record.id, &error.to_string()) {
            Ok(attempts) => attempts,
            Err(store_error) => {
                self.reporter
                    .report(OutboxEvent::StoreFailed { error: store_error });
                record.attempts.saturating_add(1)
            }
        };
        log::warn!(
            "outbox: sending row {} failed (attempt {attempts} of {}): {error}",
            record.id,
            self.config.max_attempts
        );
        self.reporter.report(OutboxEvent::Failed {
            id: record.id,
            attempts,
            error,
        });
        if attempts < self.config.max_attempts {
            return false;
        }
        match self.store.mark_dead(record.id) {
            Ok(()) => {
                log::error!(
                    "outbox: row {} is dead after {attempts} attempts",
                    record.id
                );
                self.reporter.report(OutboxEvent::Dead { id: record.id });
                true
            }
            Err(error) => {
                self.reporter.report(OutboxEvent::StoreFailed { error });
                false
            }
        }
    }

    /// Sleeps out the backoff for the failures so far. True when stopped.
    fn back_off(&mut self) -> bool {
        let wait = backoff(
            self.failures,
            self.config.initial_backoff,
            self.config.max_backoff,
        );
        self.failures = self.failures.saturating_add(1);
        self.signal.sleep(wait)
    }
}

/// `initial` doubled `failures` times, at most `max`.
fn backoff(failures: u32, initial: Duration, max: Duration) -> Duration {
    let factor = 1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX);
    initial.saturating_mul(factor).min(max)
}

pub(crate) struct Cleaner<S> {
    pub(crate) store: Arc<S>,
    pub(crate) signal: Arc<Signal>,
    pub(crate) reporter: Reporter,
    pub(crate) config: OutboxConfig,
}

impl<S: OutboxStore> Cleaner<S> {
    pub(crate) fn run(self) {
        while !self.signal.sleep(self.config.cleanup_interval) {
            self.clean();
        }
    }

    fn clean(&self) {
        let Some(older_than) = SystemTime::now().checked_sub(self.config.retention) else {
            return;
        };
        let batch = self.config.cleanup_batch_size;
        let mut removed = 0;
        while !self.signal.is_stopped() {
            match self.store.remove_dispatched(older_than, batch) {
                Ok(n) => {
                    removed += n;
                    if n < batch as u64 {
                        break;
                    }
                }
                Err(error) => {
                    log::warn!("outbox: cleanup failed: {error}");
                    self.reporter.report(OutboxEvent::StoreFailed { error });
                    break;
                }
            }
        }
        if removed > 0 {
            log::debug!("outbox: cleanup removed {removed} dispatched rows");
            self.reporter.report(OutboxEvent::Cleaned { removed });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let ms = Duration::from_millis;
        assert_eq!(backoff(0, ms(10), ms(100)), ms(10));
        assert_eq!(backoff(1, ms(10), ms(100)), ms(20));
        assert_eq!(backoff(3, ms(10), ms(100)), ms(80));
        assert_eq!(backoff(4, ms(10), ms(100)), ms(100));
        assert_eq!(backoff(u32::MAX, ms(10), ms(100)), ms(100));
    }
}
