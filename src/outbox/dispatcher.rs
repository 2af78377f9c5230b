//! The dispatcher thread's loop: pending rows to the sink, in id order,
//! marked dispatched once the sink's flush confirmed them. See
//! [`Outbox`](crate::outbox::Outbox) for what it does.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::error::{Error, Result};
use crate::metrics;
use crate::outbox::config::OutboxConfig;
use crate::outbox::event::OutboxEvent;
use crate::outbox::record::OutboxRecord;
use crate::outbox::reporter::Reporter;
use crate::outbox::store::OutboxStore;
use crate::outbox::wake::Wake;
use crate::sink::{destination_is_down, Sink};
use crate::thread::{backoff, panicked};

pub(crate) struct Dispatcher<S, K> {
    store: Arc<S>,
    sink: K,
    wake: Arc<Wake>,
    reporter: Reporter,
    config: OutboxConfig,
    /// Failures in a row, for the backoff; reset by every success.
    failures: u32,
    /// Flush after every row. Set when a flush of several rows failed for
    /// a reason of one message's own (the sink cannot say which), so that
    /// the next pass finds the row and counts the failure against it alone;
    /// cleared by a pass that went through.
    one_by_one: bool,
    /// When the row gauges were last set (metrics only).
    observed: Option<Instant>,
}

/// How often the row gauges are set at most. Counting the rows reads the
/// whole store (a query on PostgreSQL), so counting once a pass made a
/// dispatch of 50,000 rows quadratic; the gauges lag by this much instead.
const OBSERVE_EVERY: Duration = Duration::from_secs(1);

/// What one pass over a batch came to.
enum Pass {
    /// Every row was handled; read the next batch at once if it was full.
    Done { full: bool },
    /// Something failed: back off, then start again.
    Failed,
}

impl<S: OutboxStore, K: Sink> Dispatcher<S, K> {
    pub(crate) fn new(
        store: Arc<S>,
        sink: K,
        wake: Arc<Wake>,
        reporter: Reporter,
        config: OutboxConfig,
    ) -> Self {
        Dispatcher {
            store,
            sink,
            wake,
            reporter,
            config,
            failures: 0,
            one_by_one: false,
            observed: None,
        }
    }

    pub(crate) fn run(mut self) {
        log::debug!("outbox dispatcher started");
        while !self.wake.is_closed() {
            // Read the count before the store: an add that commits after the
            // read below bumps it, and the wait returns at once.
            let seen = self.wake.adds();
            let batch = match self.store.pending(self.config.batch_size()) {
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
            let passed = self.pass(&batch);
            self.observe_rows();
            let closed = match passed {
                Pass::Done { full: true } => false,
                Pass::Done { full: false } => {
                    self.wake.wait_for_add(seen, self.config.check_interval())
                }
                Pass::Failed => self.back_off(),
            };
            if closed {
                break;
            }
        }
        log::debug!("outbox dispatcher stopped");
    }

    /// Sends the batch in order and marks what the sink confirmed. Stops at
    /// the first failure so that no row overtakes one still to be retried;
    /// a dead-lettered row is out of the way, so the rows behind it go on.
    fn pass(&mut self, batch: &[OutboxRecord]) -> Pass {
        let mut sent = Vec::with_capacity(batch.len());
        for record in batch {
            if self.wake.is_closed() {
                break;
            }
            if let Err(error) = self.send(record) {
                // What was sent before this row is settled first.
                if !self.settle(&mut sent) || !self.handle_failure(record, error) {
                    return Pass::Failed;
                }
                continue;
            }
            sent.push(record);
            if self.one_by_one && !self.settle(&mut sent) {
                return Pass::Failed;
            }
        }
        if !self.settle(&mut sent) {
            return Pass::Failed;
        }
        self.failures = 0;
        self.one_by_one = false;
        Pass::Done {
            full: batch.len() >= self.config.batch_size(),
        }
    }

    /// Flushes the sink and marks the rows `sent` since the last flush
    /// dispatched. Returns true when the pass may go on.
    fn settle(&mut self, sent: &mut Vec<&OutboxRecord>) -> bool {
        if sent.is_empty() {
            return true;
        }
        let rows = std::mem::take(sent);
        if let Err(error) = self.flush() {
            if let ([row], false) = (rows.as_slice(), destination_is_down(&error)) {
                // Only this row can be at fault.
                return self.handle_failure(row, error);
            }
            if !destination_is_down(&error) {
                self.one_by_one = true;
            }
            // Not confirmed: the rows stay pending and are sent again.
            log::warn!(
                "outbox: the sink did not confirm {} rows: {error}",
                rows.len()
            );
            let ids = rows.iter().map(|r| r.id).collect();
            self.reporter
                .report(OutboxEvent::FlushFailed { ids, error });
            return false;
        }
        let ids: Vec<u64> = rows.iter().map(|r| r.id).collect();
        if let Err(error) = self.store.mark_dispatched(&ids) {
            // The rows stay pending and are sent again: at least once.
            log::warn!(
                "outbox: marking {} rows dispatched failed: {error}",
                ids.len()
            );
            self.reporter.report(OutboxEvent::StoreFailed { error });
            return false;
        }
        if metrics::ENABLED {
            let now = SystemTime::now();
            let send_seconds = &self.reporter.counters().send_seconds;
            for row in &rows {
                // A clock set back since the commit has nothing to say.
                if let Ok(took) = now.duration_since(row.created_at) {
                    send_seconds.record(took);
                }
            }
        }
        for id in ids {
            self.reporter.report(OutboxEvent::Dispatched { id });
        }
        true
    }

    /// Sets the row gauges from the store's counts: only with the metrics
    /// compiled in, and at most every [`OBSERVE_EVERY`].
    fn observe_rows(&mut self) {
        if !metrics::ENABLED || self.observed.is_some_and(|at| at.elapsed() < OBSERVE_EVERY) {
            return;
        }
        self.observed = Some(Instant::now());
        match self.store.counts() {
            Ok(rows) => self.reporter.counters().observe(rows),
            Err(e) => log::debug!("outbox: counting rows for the metrics failed: {e}"),
        }
    }

    /// One send; a panicking sink is a failure of that row, not the end of
    /// the dispatcher.
    fn send(&mut self, record: &OutboxRecord) -> Result<()> {
        catch_unwind(AssertUnwindSafe(|| self.sink.send(&record.message))).unwrap_or_else(
            |payload| {
                Err(panicked(
                    format!("outbox sink sending row {}", record.id),
                    payload,
                ))
            },
        )
    }

    /// The sink's flush, panics caught as in [`send`](Self::send).
    fn flush(&mut self) -> Result<()> {
        catch_unwind(AssertUnwindSafe(|| self.sink.flush()))
            .unwrap_or_else(|payload| Err(panicked("outbox sink flush".into(), payload)))
    }

    /// Counts a failed send of `record`. Returns true when the row was
    /// dead-lettered, so the pass may go on with the rows behind it.
    fn handle_failure(&mut self, record: &OutboxRecord, error: Error) -> bool {
        if destination_is_down(&error) {
            log::debug!("outbox: sink down sending row {}: {error}", record.id);
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
            self.config.max_attempts()
        );
        self.reporter.report(OutboxEvent::Failed {
            id: record.id,
            attempts,
            error,
        });
        if attempts < self.config.max_attempts() {
            return false;
        }
        match self.store.dead_letter(record.id) {
            Ok(()) => {
                log::error!(
                    "outbox: row {} dead-lettered after {attempts} attempts",
                    record.id
                );
                self.reporter
                    .report(OutboxEvent::DeadLettered { id: record.id });
                true
            }
            Err(error) => {
                self.reporter.report(OutboxEvent::StoreFailed { error });
                false
            }
        }
    }

    /// Sleeps out the backoff for the failures so far. True when closed.
    fn back_off(&mut self) -> bool {
        self.failures = self.failures.saturating_add(1);
        let wait = backoff(
            self.failures,
            self.config.initial_backoff(),
            self.config.max_backoff(),
        );
        self.wake.sleep(wait)
    }
}
