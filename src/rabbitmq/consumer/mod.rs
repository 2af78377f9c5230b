//! [`Consumer`]: a handler consumer (gormq's `AddConsumer`) with prefetch,
//! a durable queue, dead letters, handlers on our own threads, and
//! consumption that resumes by itself after every reconnect.
//!
//! The files: `options.rs` (what to consume), `owner.rs` (the thread that
//! owns the amiquip channel), `acker.rs` (acks and nacks on their way to
//! it), `handler.rs` (running the handler and settling: retries, dead
//! letters, drops), `info.rs` (what a handler is told about a delivery),
//! `failure_publisher.rs` (what publishes them), `counters.rs` and
//! `stats.rs` (what a consumer counts), `unsettled.rs` (the deliveries
//! the owner holds until they are settled), `handle.rs` (a
//! [`RabbitClient`](crate::rabbitmq::RabbitClient)'s consumer, to watch and
//! stop).

use std::cell::Cell;
use std::fmt::Display;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::error::Result;
use crate::message::Message;
use crate::rabbitmq::connection::{Connection, Shared};
use crate::rabbitmq::publisher::Publisher;
use crate::rabbitmq::queue_arguments::{QueueType, StreamOffset};
use crate::thread::{self, join_all, lock, Stopper, Worker};
use failure_publisher::FailurePublisher;

mod acker;
mod counters;
mod failure_publisher;
mod handle;
mod handler;
mod info;
mod options;
mod owner;
mod stats;
mod unsettled;

pub(crate) use counters::ConsumerCounters;
pub use handle::ConsumerHandle;
pub(crate) use handler::Handler;
pub(super) use handler::{boxed_handler, boxed_handler_with_info};
use handler::{DeadLetters, HandlerWorker, Job, Retries};
pub use info::DeliveryInfo;
pub use options::ConsumerOptions;
pub(crate) use owner::Owner;
pub use stats::ConsumerStats;

/// How much longer than its close timeout a closing consumer waits for its
/// threads: a handler gets the close timeout to finish the message it
/// holds, the channel owner then this to cancel and close.
const JOIN_MARGIN: Duration = Duration::from_secs(5);

/// A running consumer with handler threads (see [`Consumer::start`]).
///
/// Each consumer has one channel-owner thread (`syncmq-rmq-consume:<queue>`)
/// that alone touches its amiquip channel: it sets the prefetch (`qos`,
/// before `basic_consume`, as the broker applies it to consumers created
/// after), turns each AMQP delivery into a [`Delivery`](crate::Delivery) whose ack and nack
/// come back to it as commands, and applies them. Never more than
/// `prefetch` messages are unacked at once. A delivery is acked on the
/// channel it came from or not at all: after a reconnect its tag means
/// nothing, so its ack fails with [`Error::StaleDelivery`] and the broker
/// redelivers the message. After a reconnect, or when the broker cancels
/// the consumer (its queue deleted), it declares what it needs again and
/// consumes on a new channel.
///
/// The handler runs on `concurrency` threads of ours (with concurrency 1,
/// on the channel-owner thread itself, which saves two hand-offs per
/// message), never on amiquip's I/O thread.
///
/// # Failures and poison messages
///
/// A handler that returns `Err` or panics never makes a message loop for
/// ever. Each message gets [`ConsumerOptions::with_max_attempts`] attempts
/// (3 by default), a backoff apart
/// ([`ConsumerOptions::with_retry_backoff`]; the wait ends early when the
/// consumer closes, and the message is then requeued). A retry is a nack
/// with requeue on a quorum queue, whose `x-delivery-count` header counts
/// the attempts (declared with [`ConsumerOptions::with_queue_type`]; a
/// queue that is quorum by its vhost's default is retried by publishes,
/// as a classic one); a stream gets
/// one attempt; elsewhere it is a confirmed publish of the message again,
/// to the same queue with its failed attempts in an `x-syncmq-attempts`
/// header, and then an ack. After the last attempt the message goes, with
/// [`ConsumerOptions::with_dead_letters`], to its own dead-letter queue (a
/// confirmed publish on the default exchange with the queue's name as the
/// key, so no binding on the consumer's exchange and no other consumer's
/// dead-letter queue sees it) with `x-failure-reason` and
/// `x-failure-attempts` headers, and is acked; without dead letters it is
/// acked and dropped with an ERROR log and counted in
/// [`ConsumerStats::dropped`] (gormq acks a failed message at once;
/// Watermill retries, then sends it to a poison queue). When a retry or
/// dead-letter publish fails, the message is nacked with requeue: never
/// lost. [`DeliveryInfo::attempt`] tells a handler which attempt it runs.
///
/// A handler slower than the broker's `consumer_timeout` (30 minutes by
/// default) has its channel closed by the broker, which redelivers the
/// message; the consumer logs a warning naming that and consumes again.
///
/// [`close`](Self::close) stops it; dropping it closes it too.
///
/// [`Error::StaleDelivery`]: crate::Error::StaleDelivery
pub struct Consumer {
    options: ConsumerOptions,
    queue: String,
    stopper: Mutex<Stopper>,
    /// The handler threads, then the channel owner; empty once closed.
    workers: Mutex<Vec<Worker<()>>>,
    counters: Arc<ConsumerCounters>,
    /// Publishes retries and dead letters.
    publisher: Arc<FailurePublisher>,
}

impl Consumer {
    /// Declares the queues (recorded for every reconnect) and starts
    /// consuming: `handler` runs on `concurrency` threads of ours. `Ok`
    /// acks; `Err` or a panic retries the message, then dead-letters or
    /// drops it (see [Failures and poison messages](Self#failures-and-poison-messages)).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for bad
    /// options (see [`ConsumerOptions::validate`]);
    /// [`Error::Refused`](crate::Error::Refused) when the broker refused a
    /// declaration; [`Error::Closed`](crate::Error::Closed) once the
    /// connection is closed.
    pub fn start<F, E>(
        connection: &Connection,
        options: ConsumerOptions,
        handler: F,
    ) -> Result<Self>
    where
        F: Fn(&Message) -> std::result::Result<(), E> + Send + Sync + 'static,
        E: Display,
    {
        Consumer::on(connection.shared(), None, options, &boxed_handler(handler))
    }

    /// As [`start`](Self::start), with a handler that is also told about
    /// each delivery: its exchange, routing key, redelivered flag, attempt
    /// and headers.
    ///
    /// ```no_run
    /// use syncmq::rabbitmq::{Connection, Consumer, ConsumerOptions, DeliveryInfo};
    /// use syncmq::Message;
    ///
    /// # fn main() -> syncmq::Result<()> {
    /// let connection = Connection::open("amqp://127.0.0.1")?;
    /// let consumer = Consumer::start_with_info(
    ///     &connection,
    ///     ConsumerOptions::new("orders", "order.*").with_max_attempts(5),
    ///     |message: &Message, info: &DeliveryInfo| -> Result<(), String> {
    ///         println!("{} on attempt {}", info.routing_key(), info.attempt());
    ///         Ok(())
    ///     },
    /// )?;
    /// consumer.close()?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub fn start_with_info<F, E>(
        connection: &Connection,
        options: ConsumerOptions,
        handler: F,
    ) -> Result<Self>
    where
        F: Fn(&Message, &DeliveryInfo) -> std::result::Result<(), E> + Send + Sync + 'static,
        E: Display,
    {
        Consumer::on(
            connection.shared(),
            None,
            options,
            &boxed_handler_with_info(handler),
        )
    }

    /// As [`start`](Self::start) on the connection `shared`, publishing
    /// retries and dead letters through `publisher` when given one (else
    /// through one of its own, when it needs one).
    pub(crate) fn on(
        shared: Arc<Shared>,
        publisher: Option<Publisher>,
        options: ConsumerOptions,
        handler: &Arc<Handler>,
    ) -> Result<Self> {
        options.validate()?;
        shared.declare(options.declarations())?;
        let queue = options.queue();
        let publisher = Arc::new(FailurePublisher::new(shared.clone(), &queue, publisher));
        let dead_letters = options.dead_letters().then(|| {
            let (exchange, routing_key) = options.dead_letter_target();
            DeadLetters {
                exchange,
                routing_key,
            }
        });
        let (initial, max) = options.retry_backoff();
        let retries = Retries {
            max_attempts: options.max_attempts(),
            initial,
            max,
            quorum_queue: options.queue_arguments().queue_type() == Some(QueueType::Quorum),
            stream: options.stream_offset().is_some()
                || options.queue_arguments().queue_type() == Some(QueueType::Stream),
        };
        let (stopper, stop) = thread::stop_signal();
        let counters = Arc::new(ConsumerCounters::new(&queue));
        // Never more than `prefetch` deliveries exist, so this never fills.
        let (jobs_tx, jobs) = crossbeam_channel::bounded(usize::from(options.prefetch()));
        let mut workers = Vec::with_capacity(options.concurrency() + 1);
        let worker = |jobs: Receiver<Job>| HandlerWorker {
            queue: queue.clone(),
            jobs,
            stop: stop.clone(),
            handler: handler.clone(),
            publisher: publisher.clone(),
            dead_letters: dead_letters.clone(),
            retries,
            counters: counters.clone(),
        };
        // One handler runs on the channel owner's thread (ours too): that
        // saves two thread hand-offs per message.
        let inline: Option<Box<dyn Fn(Job) + Send>> = if options.concurrency() == 1 {
            let worker = worker(jobs.clone());
            Some(Box::new(move |delivery| worker.handle(delivery)))
        } else {
            for i in 0..options.concurrency() {
                let worker = worker(jobs.clone());
                workers.push(thread::spawn(
                    format!("rmq-handler-{i}:{queue}"),
                    move || worker.run(),
                )?);
            }
            None
        };
        let owner = Owner {
            shared,
            queue: queue.clone(),
            prefetch: options.prefetch(),
            close_timeout: options.close_timeout(),
            output: jobs_tx,
            output_rx: jobs,
            inline,
            stop,
            counters: counters.clone(),
            // The broker's default offset, `next`, for a stream without one.
            stream_offset: options
                .stream_offset()
                .or(
                    (options.queue_arguments().queue_type() == Some(QueueType::Stream))
                        .then_some(StreamOffset::Next),
                ),
            stream_resume: Cell::new(None),
        };
        workers.push(thread::spawn(format!("rmq-consume:{queue}"), move || {
            owner.run();
        })?);
        Ok(Consumer {
            options,
            queue,
            stopper: Mutex::new(stopper),
            workers: Mutex::new(workers),
            counters,
            publisher,
        })
    }

    /// The queue consumed.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The options it was started with (the service filled in by a
    /// [`RabbitClient`](crate::rabbitmq::RabbitClient)).
    pub fn options(&self) -> &ConsumerOptions {
        &self.options
    }

    /// What it counted so far: deliveries, handled, failed, retried,
    /// dead-lettered and dropped messages.
    pub fn stats(&self) -> ConsumerStats {
        self.counters.stats()
    }

    /// Whether it was closed.
    pub(crate) fn is_closed(&self) -> bool {
        lock(&self.workers).is_empty()
    }

    /// Stops consuming: handlers finish the message they hold, what they
    /// hold is settled within the close timeout
    /// ([`ConsumerOptions::with_close_timeout`]), the rest is requeued by
    /// the broker; then every thread is joined. Calling it again does
    /// nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`](crate::Error::Timeout) when a thread did not stop
    /// in time (a handler still running);
    /// [`Error::Panicked`](crate::Error::Panicked) when one panicked; what
    /// closing its own dead-letter publisher returned.
    pub fn close(&self) -> Result<()> {
        lock(&self.stopper).stop();
        let joined = join_all(self.take_workers(), self.join_deadline());
        joined.and(self.close_own_publisher())
    }

    /// When a consumer told to stop now must have ended.
    fn join_deadline(&self) -> Instant {
        Instant::now() + self.options.close_timeout() + JOIN_MARGIN
    }

    /// Its threads, to join; none the second time.
    fn take_workers(&self) -> Vec<Worker<()>> {
        std::mem::take(&mut *lock(&self.workers))
    }

    /// Closes the failure publisher of its own, if it made one.
    fn close_own_publisher(&self) -> Result<()> {
        self.publisher.close()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::error!("closing the consumer of `{}`: {e}", self.queue);
        }
    }
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

/// The handler consumers of a [`RabbitClient`](crate::rabbitmq::RabbitClient),
/// shared with their [`ConsumerHandle`]s.
pub(crate) type Consumers = Mutex<Vec<Arc<Consumer>>>;

/// Closes every consumer in `consumers`: all are told to stop first, and
/// then all their threads are joined by one deadline, so that they wind
/// down together rather than one after another.
///
/// # Errors
///
/// The first error; every consumer is closed regardless.
pub(crate) fn close_all(consumers: &Consumers) -> Result<()> {
    let consumers: Vec<Arc<Consumer>> = lock(consumers).drain(..).collect();
    for consumer in &consumers {
        lock(&consumer.stopper).stop();
    }
    let deadline = consumers
        .iter()
        .map(|consumer| consumer.join_deadline())
        .max()
        .unwrap_or_else(Instant::now);
    let workers = consumers
        .iter()
        .flat_map(|consumer| consumer.take_workers());
    let mut result = join_all(workers, deadline);
    for consumer in &consumers {
        result = result.and(consumer.close_own_publisher());
    }
    result
}
