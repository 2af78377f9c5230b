//! [`HandlerWorker`]: runs a consumer's handler on a delivery and settles
//! it: `Ok` acks; `Err` or a panic dead-letters the message (a confirmed
//! publish to the consumer's dead-letter queue, then an ack) or, without a
//! dead-letter queue or when that publish fails, nacks it with requeue.

use std::fmt::Display;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_channel::{select, Receiver};

use super::counters::ConsumerCounters;
use crate::message::{Delivery, Message};
use crate::rabbitmq::publisher::Publisher;
use crate::thread::StopToken;

/// A consumer's handler, its error turned into text.
pub(crate) type Handler = dyn Fn(&Message) -> std::result::Result<(), String> + Send + Sync;

/// `handler` as a [`Handler`]: one type for every handler, so that what
/// runs it is not generic.
pub(crate) fn boxed_handler<F, E>(handler: F) -> Arc<Handler>
where
    F: Fn(&Message) -> std::result::Result<(), E> + Send + Sync + 'static,
    E: Display,
{
    Arc::new(move |m: &Message| handler(m).map_err(|e| e.to_string()))
}

/// Where dead letters go: the publisher and the exchange and routing key.
#[derive(Clone)]
pub(super) struct DeadLetters {
    pub(super) publisher: Publisher,
    pub(super) exchange: String,
    pub(super) routing_key: String,
}

/// One handler thread's work, or the channel owner's when it runs the
/// handler itself.
pub(super) struct HandlerWorker {
    pub(super) queue: String,
    pub(super) jobs: Receiver<Delivery>,
    pub(super) stop: StopToken,
    pub(super) handler: Arc<Handler>,
    pub(super) dead_letters: Option<DeadLetters>,
    pub(super) counters: Arc<ConsumerCounters>,
}

impl HandlerWorker {
    /// Handles deliveries until stopped or the owner is gone.
    pub(super) fn run(self) {
        loop {
            let delivery = select! {
                recv(self.jobs) -> d => match d { Ok(d) => d, Err(_) => break },
                recv(self.stop.receiver()) -> _ => break,
            };
            self.handle(delivery);
        }
    }

    /// Runs the handler on `delivery` and settles it.
    pub(super) fn handle(&self, delivery: Delivery) {
        let outcome = catch_unwind(AssertUnwindSafe(|| (self.handler)(delivery.message())))
            .unwrap_or_else(|panic| {
                Err(format!(
                    "handler panicked: {}",
                    crate::thread::panic_message(panic.as_ref())
                ))
            });
        let settled = match outcome {
            Ok(()) => {
                self.counters.handled.fetch_add(1, Ordering::Relaxed);
                delivery.ack()
            }
            Err(reason) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                self.dead_letter(delivery, &reason)
            }
        };
        if let Err(e) = settled {
            log::debug!("consumer of `{}`: {e}", self.queue);
        }
    }

    /// Settles a delivery whose handler failed for `reason`.
    fn dead_letter(&self, delivery: Delivery, reason: &str) -> crate::Result<()> {
        let Some(to) = &self.dead_letters else {
            log::warn!("handler for `{}` failed ({reason}); requeued", self.queue);
            return delivery.nack(true);
        };
        let message = delivery
            .message()
            .clone()
            .with_header("x-failure-reason", reason);
        match to.publisher.publish(&to.exchange, &to.routing_key, message) {
            Ok(()) => {
                log::warn!(
                    "handler for `{}` failed ({reason}); the message is dead-lettered",
                    self.queue
                );
                self.counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
                delivery.ack()
            }
            Err(e) => {
                log::error!(
                    "handler for `{}` failed ({reason}) and dead-lettering it failed ({e}); requeued",
                    self.queue
                );
                delivery.nack(true)
            }
        }
    }
}
