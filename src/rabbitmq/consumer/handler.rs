//! [`HandlerWorker`]: runs a consumer's handler on a delivery and settles
//! it, so that a message whose handler fails never loops for ever.
//!
//! `Ok` acks. `Err` or a panic with attempts left (see
//! [`ConsumerOptions::with_max_attempts`](super::ConsumerOptions::with_max_attempts))
//! waits the retry backoff and retries: on a quorum queue (the delivery
//! carries the broker's `x-delivery-count`, or the options say so and it
//! is a first delivery) a nack with requeue, as the broker counts; elsewhere a confirmed publish of the message again, to
//! the same queue with its failed attempts in `x-syncmq-attempts` (a
//! requeue cannot carry a header), then an ack. The last failed attempt
//! dead-letters the message (a confirmed publish to the dead-letter queue,
//! then an ack) or, without a dead-letter queue, acks and drops it with an
//! ERROR log. A stream gets one attempt (it cannot requeue, and a publish
//! would append a copy for every reader). Whenever a publish fails, the message is nacked with requeue:
//! never lost.

use std::fmt::Display;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{select, Receiver};

use super::counters::ConsumerCounters;
use super::failure_publisher::FailurePublisher;
use super::info::{DeliveryInfo, ATTEMPTS_HEADER};
use super::owner::Wrap;
use crate::message::{Delivery, Message};
use crate::metrics::Count;
use crate::thread::StopToken;

/// The header naming why a dead-lettered message's handler failed.
pub(super) const FAILURE_REASON_HEADER: &str = "x-failure-reason";
/// The header counting a dead-lettered message's failed attempts.
pub(super) const FAILURE_ATTEMPTS_HEADER: &str = "x-failure-attempts";

/// A consumer's handler, its error turned into text.
pub(crate) type Handler =
    dyn Fn(&Message, &DeliveryInfo) -> std::result::Result<(), String> + Send + Sync;

/// `handler`, which takes the message only, as a [`Handler`].
pub(crate) fn boxed_handler<F, E>(handler: F) -> Arc<Handler>
where
    F: Fn(&Message) -> std::result::Result<(), E> + Send + Sync + 'static,
    E: Display,
{
    boxed_handler_with_info(move |m: &Message, _: &DeliveryInfo| handler(m))
}

/// `handler` as a [`Handler`]: one type for every handler, so that what
/// runs it is not generic.
pub(crate) fn boxed_handler_with_info<F, E>(handler: F) -> Arc<Handler>
where
    F: Fn(&Message, &DeliveryInfo) -> std::result::Result<(), E> + Send + Sync + 'static,
    E: Display,
{
    Arc::new(move |m: &Message, info: &DeliveryInfo| handler(m, info).map_err(|e| e.to_string()))
}

/// A delivery and its context, as the channel owner hands them over.
pub(super) struct Job {
    pub(super) delivery: Delivery,
    pub(super) info: DeliveryInfo,
}

impl Wrap for Job {
    fn wrap(delivery: Delivery, raw: &mut amiquip::Delivery) -> Self {
        Job {
            delivery,
            info: DeliveryInfo::of(raw),
        }
    }
}

/// Where dead letters go: the exchange and routing key.
#[derive(Clone)]
pub(super) struct DeadLetters {
    pub(super) exchange: String,
    pub(super) routing_key: String,
}

/// How many attempts a message gets and the waits between them.
#[derive(Clone, Copy)]
pub(super) struct Retries {
    pub(super) max_attempts: u32,
    pub(super) initial: Duration,
    pub(super) max: Duration,
    /// The queue was said to be a quorum queue.
    pub(super) quorum_queue: bool,
    /// The queue is a stream: never retried, as a publish would append a
    /// copy for every reader and a stream cannot requeue.
    pub(super) stream: bool,
}

impl Retries {
    /// The wait before the attempt after `attempt` failed.
    fn wait_after(self, attempt: u64) -> Duration {
        let failures = u32::try_from(attempt).unwrap_or(u32::MAX);
        crate::thread::backoff(failures, self.initial, self.max)
    }
}

/// What to do with a delivery whose handler failed on `attempt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Requeue it, the broker counting the attempt (quorum queues).
    Requeue,
    /// Publish it again with the attempts so far, then ack it.
    Republish,
    /// The last attempt failed: to the dead-letter queue.
    DeadLetter,
    /// The last attempt failed and there is no dead-letter queue: ack it.
    Drop,
}

/// What follows a failure on `attempt` of `max_attempts`.
fn next(attempt: u64, max_attempts: u32, broker_counts: bool, dead_letters: bool) -> Next {
    if attempt < u64::from(max_attempts) {
        if broker_counts {
            Next::Requeue
        } else {
            Next::Republish
        }
    } else if dead_letters {
        Next::DeadLetter
    } else {
        Next::Drop
    }
}

/// One handler thread's work, or the channel owner's when it runs the
/// handler itself.
pub(super) struct HandlerWorker {
    pub(super) queue: String,
    pub(super) jobs: Receiver<Job>,
    pub(super) stop: StopToken,
    pub(super) handler: Arc<Handler>,
    /// Publishes retries and dead letters.
    pub(super) publisher: Arc<FailurePublisher>,
    pub(super) dead_letters: Option<DeadLetters>,
    pub(super) retries: Retries,
    pub(super) counters: Arc<ConsumerCounters>,
}

impl HandlerWorker {
    /// Handles deliveries until stopped or the owner is gone.
    pub(super) fn run(self) {
        loop {
            // Under load a job is already waiting: taken without the
            // select, which costs more than the rest of the hand-over.
            let waiting = if self.stop.is_stopped() {
                None
            } else {
                self.jobs.try_recv().ok()
            };
            let job = if let Some(job) = waiting {
                job
            } else {
                select! {
                    recv(self.jobs) -> j => match j { Ok(j) => j, Err(_) => break },
                    recv(self.stop.receiver()) -> _ => break,
                }
            };
            // `select!` picks at random among ready operations: a delivery
            // that came with the stop (the broker redelivering what a
            // stopping handler just requeued, say) is given back, not
            // handled.
            if self.stop.is_stopped() {
                if let Err(e) = job.delivery.nack(true) {
                    log::debug!("consumer of `{}`: {e}", self.queue);
                }
                break;
            }
            self.handle(job);
        }
    }

    /// Runs the handler on a delivery and settles it.
    pub(super) fn handle(&self, job: Job) {
        let Job { delivery, info } = job;
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            (self.handler)(delivery.message(), &info)
        }))
        .unwrap_or_else(|panic| {
            Err(format!(
                "handler panicked: {}",
                crate::thread::panic_message(panic.as_ref())
            ))
        });
        let settled = match outcome {
            Ok(()) => {
                self.counters.handled.add(1);
                delivery.ack()
            }
            Err(reason) => {
                self.counters.failed.add(1);
                self.failed(delivery, &info, &reason)
            }
        };
        if let Err(e) = settled {
            log::debug!("consumer of `{}`: {e}", self.queue);
        }
    }

    /// Settles a delivery whose handler failed for `reason`.
    fn failed(&self, delivery: Delivery, info: &DeliveryInfo, reason: &str) -> crate::Result<()> {
        let attempt = info.attempt();
        let max = if self.retries.stream {
            1
        } else {
            self.retries.max_attempts
        };
        // A quorum queue counts a requeue; a first delivery on one does not
        // carry the count yet.
        let broker_counts = info.delivery_count().is_some()
            || (self.retries.quorum_queue && !info.is_redelivered());
        let next = next(attempt, max, broker_counts, self.dead_letters.is_some());
        if matches!(next, Next::Requeue | Next::Republish) {
            if self.stop.sleep(self.retries.wait_after(attempt)) {
                log::debug!(
                    "consumer of `{}`: stopping during a retry's wait; the message is requeued",
                    self.queue
                );
                return delivery.nack(true);
            }
            log::warn!(
                "handler for `{}` failed on attempt {attempt} of {max} ({reason}); retrying",
                self.queue
            );
        }
        match next {
            Next::Requeue => {
                self.counters.retried.add(1);
                delivery.nack(true)
            }
            Next::Republish => {
                let message = delivery
                    .message()
                    .clone()
                    .with_header(ATTEMPTS_HEADER, attempt.to_string());
                let to = ("", self.queue.as_str());
                self.publish_then_ack(to, message, delivery, &self.counters.retried)
            }
            Next::DeadLetter => {
                let Some(to) = &self.dead_letters else {
                    return delivery.nack(true);
                };
                let message = delivery
                    .message()
                    .clone()
                    .with_header(FAILURE_REASON_HEADER, reason)
                    .with_header(FAILURE_ATTEMPTS_HEADER, attempt.to_string());
                log::warn!(
                    "handler for `{}` failed on attempt {attempt} of {max} ({reason}); \
                     dead-lettering the message",
                    self.queue
                );
                let to = (to.exchange.as_str(), to.routing_key.as_str());
                self.publish_then_ack(to, message, delivery, &self.counters.dead_lettered)
            }
            Next::Drop => self.drop_message(delivery, info, attempt, reason),
        }
    }

    /// Publishes `message` (confirmed) to `(exchange, routing_key)`, then
    /// counts it and acks `delivery`; requeues it when the publish fails.
    fn publish_then_ack(
        &self,
        (exchange, routing_key): (&str, &str),
        message: Message,
        delivery: Delivery,
        counter: &Count,
    ) -> crate::Result<()> {
        let published = self
            .publisher
            .get()
            .and_then(|publisher| publisher.publish(exchange, routing_key, message));
        match published {
            Ok(()) => {
                counter.add(1);
                delivery.ack()
            }
            Err(e) => {
                log::error!(
                    "consumer of `{}`: publishing a failed message to `{exchange}` with key \
                     `{routing_key}` failed ({e}); requeued",
                    self.queue
                );
                delivery.nack(true)
            }
        }
    }

    /// Acks a message whose last attempt failed, with nowhere to keep it.
    fn drop_message(
        &self,
        delivery: Delivery,
        info: &DeliveryInfo,
        attempt: u64,
        reason: &str,
    ) -> crate::Result<()> {
        log::error!(
            "handler for `{}` failed on attempt {attempt} of {} ({reason}) and there is no \
             dead-letter queue: the message (exchange `{}`, routing key `{}`) is dropped",
            self.queue,
            self.retries.max_attempts,
            info.exchange(),
            info.routing_key()
        );
        self.counters.dropped.add(1);
        delivery.ack()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_with_attempts_left_are_retried_the_way_the_queue_counts() {
        assert_eq!(next(1, 3, false, false), Next::Republish);
        assert_eq!(next(2, 3, false, true), Next::Republish);
        assert_eq!(next(1, 3, true, false), Next::Requeue);
        assert_eq!(next(2, 3, true, true), Next::Requeue);
    }

    #[test]
    fn the_last_failure_dead_letters_or_drops() {
        assert_eq!(next(3, 3, false, true), Next::DeadLetter);
        assert_eq!(next(3, 3, true, false), Next::Drop);
        // Counted beyond the maximum (a crash loop on a quorum queue).
        assert_eq!(next(9, 3, true, true), Next::DeadLetter);
        // One attempt: no retry at all.
        assert_eq!(next(1, 1, false, false), Next::Drop);
    }

    #[test]
    fn retry_waits_double_from_the_initial_up_to_the_cap() {
        let retries = Retries {
            max_attempts: 5,
            initial: Duration::from_millis(100),
            max: Duration::from_millis(300),
            quorum_queue: false,
            stream: false,
        };
        let within = |wait: Duration, full: u64| {
            wait <= Duration::from_millis(full) && wait >= Duration::from_millis(full * 3 / 4)
        };
        assert!(within(retries.wait_after(1), 100));
        assert!(within(retries.wait_after(2), 200));
        assert!(within(retries.wait_after(3), 300));
        assert!(within(retries.wait_after(u64::MAX), 300));
    }
}
