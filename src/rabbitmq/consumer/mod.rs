//! [`Consumer`]: a handler consumer (gormq's `AddConsumer`) with prefetch,
//! a durable queue, dead letters, handlers on our own threads, and
//! consumption that resumes by itself after every reconnect.
//!
//! The files: `options.rs` (what to consume), `owner.rs` (the thread that
//! owns the amiquip channel), `acker.rs` (acks and nacks on their way to
//! it), `handler.rs` (running the handler and settling), `counters.rs`.

use std::cell::Cell;
use std::fmt::Display;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::error::Result;
use crate::message::{Delivery, Message};
use crate::rabbitmq::connection::{Connection, Shared};
use crate::rabbitmq::publisher::{Publisher, PublisherConfig};
use crate::rabbitmq::queue_arguments::{QueueType, StreamOffset};
use crate::thread::{self, join_all, lock, Stopper, Worker};

mod acker;
mod counters;
mod handler;
mod options;
mod owner;

pub(crate) use counters::ConsumerCounters;
pub(super) use handler::boxed_handler;
use handler::{DeadLetters, Handler, HandlerWorker};
pub use options::ConsumerOptions;
pub(crate) use owner::Owner;

/// How much longer than its close timeout a closing consumer waits for its
/// threads: a handler gets the close timeout to finish the message it
/// holds, the channel owner then this to cancel and close.
const JOIN_MARGIN: Duration = Duration::from_secs(5);

/// A running consumer with handler threads (see [`Consumer::start`]).
///
/// Each consumer has one channel-owner thread (`syncmq-rmq-consume:<queue>`)
/// that alone touches its amiquip channel: it sets the prefetch (`qos`,
/// before `basic_consume`, as the broker applies it to consumers created
/// after), turns each AMQP delivery into a [`Delivery`] whose ack and nack
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
/// message), never on amiquip's I/O thread. A handler that returns `Err` or
/// panics has the message dead-lettered when
/// [`ConsumerOptions::with_dead_letters`] is on: a confirmed publish to its
/// own dead-letter queue (on the default exchange with the queue's name as
/// the key, so no binding on the consumer's exchange and no other
/// consumer's dead-letter queue sees it), with an `x-failure-reason`
/// header, then an ack. Without dead letters, or when that publish fails,
/// the message is nacked with requeue.
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
    /// A dead-letter publisher of its own when not given one.
    own_publisher: Mutex<Option<Publisher>>,
}

impl Consumer {
    /// Declares the queues (recorded for every reconnect) and starts
    /// consuming: `handler` runs on `concurrency` threads of ours. `Ok`
    /// acks; `Err` or a panic dead-letters the message and acks, or nacks
    /// with requeue when dead letters are off.
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

    /// As [`start`](Self::start) on the connection `shared`, dead-lettering
    /// through `publisher` when given one (else through one of its own).
    pub(crate) fn on(
        shared: Arc<Shared>,
        publisher: Option<Publisher>,
        options: ConsumerOptions,
        handler: &Arc<Handler>,
    ) -> Result<Self> {
        options.validate()?;
        shared.declare(options.declarations())?;
        let mut own_publisher = None;
        let dead_letters = if options.dead_letters() {
            let publisher = if let Some(publisher) = publisher {
                publisher
            } else {
                let publisher = Publisher::on(shared.clone(), PublisherConfig::default())?;
                own_publisher = Some(publisher.clone());
                publisher
            };
            let (exchange, routing_key) = options.dead_letter_target();
            Some(DeadLetters {
                publisher,
                exchange,
                routing_key,
            })
        } else {
            None
        };
        let queue = options.queue();
        let (stopper, stop) = thread::stop_signal();
        let counters = Arc::new(ConsumerCounters::default());
        // Never more than `prefetch` deliveries exist, so this never fills.
        let (jobs_tx, jobs) = crossbeam_channel::bounded(usize::from(options.prefetch()));
        let mut workers = Vec::with_capacity(options.concurrency() + 1);
        let worker = |jobs: Receiver<Delivery>| HandlerWorker {
            queue: queue.clone(),
            jobs,
            stop: stop.clone(),
            handler: handler.clone(),
            dead_letters: dead_letters.clone(),
            counters: counters.clone(),
        };
        // One handler runs on the channel owner's thread (ours too): that
        // saves two thread hand-offs per message.
        let inline: Option<Box<dyn Fn(Delivery) + Send>> = if options.concurrency() == 1 {
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
            own_publisher: Mutex::new(own_publisher),
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

    /// Messages delivered to this consumer so far (redeliveries included).
    pub fn delivered(&self) -> u64 {
        self.counters.delivered.load(Ordering::Relaxed)
    }

    /// Messages whose handler succeeded.
    pub fn handled(&self) -> u64 {
        self.counters.handled.load(Ordering::Relaxed)
    }

    /// Messages whose handler failed.
    pub fn failed(&self) -> u64 {
        self.counters.failed.load(Ordering::Relaxed)
    }

    /// Failed messages published to the dead-letter queue.
    pub fn dead_lettered(&self) -> u64 {
        self.counters.dead_lettered.load(Ordering::Relaxed)
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

    /// Closes the dead-letter publisher of its own, if it has one.
    fn close_own_publisher(&self) -> Result<()> {
        match lock(&self.own_publisher).take() {
            Some(publisher) => publisher.close(),
            None => Ok(()),
        }
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

/// The handler consumers of a [`RabbitClient`](crate::rabbitmq::RabbitClient).
pub(crate) type Consumers = Mutex<Vec<Consumer>>;

/// Closes every consumer in `consumers`: all are told to stop first, and
/// then all their threads are joined by one deadline, so that they wind
/// down together rather than one after another.
///
/// # Errors
///
/// The first error; every consumer is closed regardless.
pub(crate) fn close_all(consumers: &Consumers) -> Result<()> {
    let consumers: Vec<Consumer> = lock(consumers).drain(..).collect();
    for consumer in &consumers {
        lock(&consumer.stopper).stop();
    }
    let deadline = consumers
        .iter()
        .map(Consumer::join_deadline)
        .max()
        .unwrap_or_else(Instant::now);
    let workers = consumers.iter().flat_map(Consumer::take_workers);
    let mut result = join_all(workers, deadline);
    for consumer in &consumers {
        result = result.and(consumer.close_own_publisher());
    }
    result
}
