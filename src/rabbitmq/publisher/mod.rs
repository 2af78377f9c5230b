//! The confirmed publisher: persistent messages, publisher confirms in a
//! window, and a bounded retry buffer resent in order after reconnects.
//!
//! One thread (`syncmq-rmq-pub:<connection>`) owns the amiquip channel. It
//! takes messages from callers over a crossbeam channel (and, for the
//! `RabbitAdapter`, straight from each channel's input), publishes up to
//! `window` of them before waiting for confirms (never one round trip per
//! message), and matches the broker's acks and nacks to them by delivery
//! tag. Confirm mode is switched on for every new channel, after the
//! confirm listener is installed, so a reconnect never leaves us publishing
//! unconfirmed.
//!
//! # The retry buffer (gormq's failed-publish queue)
//!
//! Every message a caller handed over stays in the publisher until the
//! broker confirmed it: while it waits its turn, while it is in flight, and
//! after a failure. A message that failed to publish, was nacked, or was
//! unconfirmed when the connection died goes back into the buffer, in
//! publish order, and is resent: at once on the next connection, or after
//! the retry interval for a nack. The buffer is bounded (`buffer`): a
//! publish into a full buffer is an error to the caller, never a silent
//! drop.
//!
//! # Guarantees
//!
//! [`Publisher::publish`] returns `Ok` only once the broker confirmed the
//! message, and a persistent message confirmed into a durable queue
//! survives a broker restart. With `mandatory` on (the default), a message
//! that no queue took comes back as an error instead of a confirm. Resends
//! after a connection loss can duplicate a message the broker had received
//! but not yet confirmed: at least once, never at most once.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, RecvTimeoutError, Sender, TryRecvError};

use crate::error::{Error, Result};
use crate::message::Message;
use crate::rabbitmq::amqp;
use crate::rabbitmq::connection::{lock, Connection, Shared};
use crate::thread::{self, Stopper, Worker};
use crate::waiter::describe_wait;

mod engine;
mod refusals;

use engine::Engine;
pub use refusals::Refusal;
use refusals::Refusals;

/// What a publish does while the broker blocks publishers (a memory or
/// disk alarm, reported with `connection.blocked`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockedPolicy {
    /// Accept the message and send it once the broker unblocks (the
    /// default; the buffer bound still applies).
    Wait,
    /// Refuse at once with [`Error::Busy`] naming the broker's reason.
    Fail,
}

/// How a [`Publisher`] publishes.
///
/// ```
/// use std::time::Duration;
/// use syncmq::rabbitmq::{BlockedPolicy, PublisherConfig};
///
/// let config = PublisherConfig::new()
///     .with_window(512)
///     .with_buffer(100_000)
///     .with_retry_interval(Duration::from_millis(500))
///     .with_blocked(BlockedPolicy::Fail);
/// ```
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    window: usize,
    buffer: usize,
    retry_interval: Duration,
    confirm_timeout: Duration,
    persistent: bool,
    mandatory: bool,
    blocked: BlockedPolicy,
    close_timeout: Duration,
    refusals: usize,
    max_message_size: usize,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        PublisherConfig {
            window: 256,
            buffer: 10_000,
            retry_interval: Duration::from_secs(1),
            confirm_timeout: Duration::from_secs(30),
            persistent: true,
            mandatory: true,
            blocked: BlockedPolicy::Wait,
            close_timeout: Duration::from_secs(10),
            refusals: 1_000,
            max_message_size: amqp::DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

impl PublisherConfig {
    /// Defaults: window 256, buffer 10,000, retry every 1 s, 30 s for a
    /// confirm, persistent, mandatory, wait while blocked, 10 s to close,
    /// room for 1,000 unread refusals, bodies up to 128 MiB.
    pub fn new() -> Self {
        PublisherConfig::default()
    }

    /// How many messages may await their confirm at once (1 to 65,535).
    /// Recommended: 128 to 1024; 1 is one round trip per message.
    #[must_use]
    pub fn with_window(mut self, window: usize) -> Self {
        self.window = window;
        self
    }

    /// How many messages the publisher holds until confirmed, at most: the
    /// bound of the retry buffer. A publish beyond it is an error.
    #[must_use]
    pub fn with_buffer(mut self, buffer: usize) -> Self {
        self.buffer = buffer;
        self
    }

    /// How long a nacked message waits before it is sent again.
    #[must_use]
    pub fn with_retry_interval(mut self, interval: Duration) -> Self {
        self.retry_interval = interval;
        self
    }

    /// How long [`Publisher::publish`] waits for the confirm. A message
    /// whose wait timed out stays in the buffer and may still be published.
    #[must_use]
    pub fn with_confirm_timeout(mut self, timeout: Duration) -> Self {
        self.confirm_timeout = timeout;
        self
    }

    /// Persistent (delivery mode 2, the default) or transient messages.
    #[must_use]
    pub fn with_persistent(mut self, persistent: bool) -> Self {
        self.persistent = persistent;
        self
    }

    /// With `mandatory` (the default) a message no queue takes is returned
    /// by the broker and its publish fails; without, the broker drops it.
    #[must_use]
    pub fn with_mandatory(mut self, mandatory: bool) -> Self {
        self.mandatory = mandatory;
        self
    }

    /// What to do while the broker blocks publishing.
    #[must_use]
    pub fn with_blocked(mut self, policy: BlockedPolicy) -> Self {
        self.blocked = policy;
        self
    }

    /// How many refused fire-and-retry messages
    /// [`Publisher::refusals`] holds until read (at least 1). Beyond that a
    /// refusal is still counted by `flush` and logged, but its message is
    /// not kept.
    #[must_use]
    pub fn with_refusals_capacity(mut self, capacity: usize) -> Self {
        self.refusals = capacity;
        self
    }

    /// The largest body the broker takes: RabbitMQ's `max_message_size`,
    /// 128 MiB unless its configuration says otherwise
    /// (`rabbitmqctl eval 'application:get_env(rabbit, max_message_size).'`).
    /// AMQP does not announce it, so set it here when the broker's is
    /// smaller. A larger message is refused by `send`/`publish` with
    /// [`Error::InvalidArgument`] and never sent: sent, it would make the
    /// broker close the channel, and every message in flight on it would
    /// lose its confirm and be sent again.
    #[must_use]
    pub fn with_max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// How long [`Publisher::close`] keeps publishing what is buffered.
    #[must_use]
    pub fn with_close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Checks every setting; [`Publisher::new`] calls it too.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the setting: a window outside 1 to
    /// 65535, a zero buffer, message size limit or refusals capacity.
    pub fn validate(&self) -> Result<()> {
        if self.window == 0 || self.window > usize::from(u16::MAX) {
            return Err(Error::invalid("window", "must be between 1 and 65535"));
        }
        if self.buffer == 0 {
            return Err(Error::invalid("buffer", "must be at least 1"));
        }
        if self.max_message_size == 0 {
            return Err(Error::invalid("max_message_size", "must be at least 1"));
        }
        if self.refusals == 0 {
            return Err(Error::invalid("refusals_capacity", "must be at least 1"));
        }
        Ok(())
    }
}

/// The confirm of one message sent with [`Publisher::send`].
#[derive(Debug)]
#[must_use = "a confirmation says whether the broker took the message"]
pub struct Confirmation {
    rx: Receiver<Result<()>>,
    timeout: Duration,
    /// To name the last connection error when the wait times out.
    waiter: Arc<crate::waiter::ConnectionWaiter>,
    /// Disconnected when [`Publisher::close`] returns: a wait must not
    /// outlive the close even if the publishing thread is stuck in a call
    /// to a frozen broker and never answers.
    closed: Receiver<()>,
}

impl Confirmation {
    /// Waits for the broker's confirm, at most the configured confirm
    /// timeout.
    ///
    /// # Errors
    ///
    /// As [`Publisher::publish`].
    pub fn wait(self) -> Result<()> {
        let timeout = self.timeout;
        self.wait_timeout(timeout)
    }

    /// The answer once the publisher closed: the one that came meanwhile,
    /// else `Closed`.
    fn after_close(&self) -> Result<()> {
        self.rx.try_recv().unwrap_or_else(|_| {
            Err(Error::closed(
                "publisher (closed before the broker confirmed the message; \
                 it may still have reached the broker)",
            ))
        })
    }

    /// Waits for the broker's confirm, at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`Publisher::publish`].
    pub fn wait_timeout(self, timeout: Duration) -> Result<()> {
        // An answer already there wins: `select!` picks at random among
        // ready operations, and a zero timeout is ready at once.
        let answer = match self.rx.try_recv() {
            Ok(result) => Ok(result),
            Err(TryRecvError::Disconnected) => Err(RecvTimeoutError::Disconnected),
            Err(TryRecvError::Empty) => select! {
                recv(self.rx) -> result => result.map_err(|_| RecvTimeoutError::Disconnected),
                recv(self.closed) -> _ => return self.after_close(),
                recv(crossbeam_channel::after(timeout)) -> _ => {
                    self.rx.try_recv().map_err(|_| RecvTimeoutError::Timeout)
                }
            },
        };
        match answer {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(Error::timeout(
                describe_wait(
                    "the broker's confirm (the message stays buffered and may still be published)",
                    self.waiter.last_error().as_ref(),
                ),
                timeout,
            )),
            Err(RecvTimeoutError::Disconnected) => Err(Error::closed("publisher")),
        }
    }
}

/// Counters, for tests and metrics.
#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    confirmed: AtomicU64,
    nacked: AtomicU64,
    returned: AtomicU64,
    resent: AtomicU64,
    rejected: AtomicU64,
}

/// A snapshot of a publisher's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PublisherStats {
    /// `basic.publish` calls, resends included.
    pub published: u64,
    /// Messages the broker confirmed.
    pub confirmed: u64,
    /// Nacks received (each message nacked is retried).
    pub nacked: u64,
    /// Mandatory messages returned as unroutable.
    pub returned: u64,
    /// Messages sent again after a connection loss or a nack.
    pub resent: u64,
    /// Messages the broker refused by closing the channel on them (say an
    /// exchange that does not exist); each failed to its caller.
    pub rejected: u64,
}

struct Entry {
    seq: u64,
    exchange: String,
    routing_key: String,
    message: Message,
    reply: Option<Sender<Result<()>>>,
    not_before: Option<Instant>,
    attempts: u32,
}

/// A channel input the publishing thread takes messages from itself: see
/// [`Publisher::feed`].
struct Feed {
    exchange: String,
    routing_key: String,
    input: Receiver<Message>,
}

/// Messages accepted and not yet settled; `flush` waits for zero.
#[derive(Default)]
struct Held {
    count: AtomicUsize,
    zero: Condvar,
    lock: Mutex<()>,
}

impl Held {
    fn release(&self) {
        if self.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            let _guard = lock(&self.lock);
            self.zero.notify_all();
        }
    }
}

struct Inner {
    config: PublisherConfig,
    shared: Arc<Shared>,
    requests: Sender<Entry>,
    /// Channel inputs for the publishing thread to take messages from.
    feeds: Sender<Feed>,
    held: Arc<Held>,
    counters: Arc<Counters>,
    refusals: Arc<Refusals>,
    /// Shared with the publishing thread, which numbers fed messages.
    next_seq: Arc<AtomicU64>,
    closed: AtomicBool,
    /// Dropped at the end of close, waking every [`Confirmation`] wait.
    closing: Mutex<Option<Sender<()>>>,
    closed_rx: Receiver<()>,
    stopper: Mutex<Stopper>,
    worker: Mutex<Option<Worker<usize>>>,
    /// Set by [`Publisher::connect`]: a connection of its own, closed last.
    own_connection: Mutex<Option<Connection>>,
}

/// A confirmed publisher. Clones share one publishing thread; the last one
/// dropped closes it.
///
/// ```no_run
/// use syncmq::rabbitmq::Publisher;
/// use syncmq::Message;
///
/// # fn main() -> syncmq::Result<()> {
/// let publisher = Publisher::connect("amqp://guest:guest@127.0.0.1:5672/%2f")?;
/// publisher.publish("", "orders", Message::new(b"order 42".to_vec()))?; // confirmed
/// publisher.close()?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

impl Publisher {
    /// A publisher with the default configuration on a connection of its
    /// own to `url`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a malformed URL.
    pub fn connect(url: &str) -> Result<Publisher> {
        let connection = Connection::open(url)?;
        let publisher = Publisher::new(&connection, PublisherConfig::default())?;
        *lock(&publisher.inner.own_connection) = Some(connection);
        Ok(publisher)
    }

    /// A publisher on `connection`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a bad configuration.
    pub fn new(connection: &Connection, config: PublisherConfig) -> Result<Publisher> {
        Publisher::on(connection.shared(), config)
    }

    pub(crate) fn on(shared: Arc<Shared>, config: PublisherConfig) -> Result<Publisher> {
        config.validate()?;
        let (requests, request_rx) = crossbeam_channel::unbounded();
        let (feeds, new_feeds) = crossbeam_channel::unbounded();
        let next_seq = Arc::new(AtomicU64::new(1));
        let (stopper, stop) = thread::stop_signal();
        let held = Arc::new(Held::default());
        let counters = Arc::new(Counters::default());
        let refusals = Arc::new(Refusals::new(config.refusals));
        let (closing, closed_rx) = crossbeam_channel::bounded(0);
        let engine = Engine {
            refusals: refusals.clone(),
            shared: shared.clone(),
            config: config.clone(),
            requests: request_rx,
            new_feeds,
            feeds: Vec::new(),
            next_seq: next_seq.clone(),
            stop,
            held: held.clone(),
            counters: counters.clone(),
            queue: VecDeque::new(),
            careful_through: None,
        };
        let worker = thread::spawn(format!("rmq-pub:{}", shared.name), move || engine.run())?;
        Ok(Publisher {
            inner: Arc::new(Inner {
                config,
                shared,
                requests,
                feeds,
                held,
                counters,
                refusals,
                next_seq,
                closed: AtomicBool::new(false),
                closing: Mutex::new(Some(closing)),
                closed_rx,
                stopper: Mutex::new(stopper),
                worker: Mutex::new(Some(worker)),
                own_connection: Mutex::new(None),
            }),
        })
    }

    /// Publishes `message` to `exchange` (`""` is the default exchange,
    /// which routes to the queue named `routing_key`) and returns once the
    /// broker confirmed it.
    ///
    /// # Errors
    ///
    /// [`Error::Busy`] when the buffer is full or the broker blocks
    /// publishing under [`BlockedPolicy::Fail`]; [`Error::Refused`] when the
    /// broker refused the message (code 404 for a missing exchange, 312 for
    /// a mandatory message no queue took); [`Error::Timeout`] when no confirm came within the
    /// confirm timeout (the message stays buffered and may still be
    /// published; the error names the last connection error while not
    /// connected); [`Error::Refused`] when the connection gave up on a
    /// refusal of its credentials or vhost; [`Error::Closed`] after close;
    /// [`Error::InvalidArgument`], at once and without sending anything,
    /// for a message the broker cannot take: a body beyond
    /// [`PublisherConfig::with_max_message_size`], key and headers beyond
    /// one frame, or a name or routing key beyond 255 bytes.
    pub fn publish(&self, exchange: &str, routing_key: &str, message: Message) -> Result<()> {
        self.send(exchange, routing_key, message)?.wait()
    }

    /// Hands `message` over and returns at once with a [`Confirmation`] to
    /// wait on: many sends in a row are pipelined in the confirm window.
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish), for what can be known at once.
    pub fn send(
        &self,
        exchange: &str,
        routing_key: &str,
        message: Message,
    ) -> Result<Confirmation> {
        self.try_send(exchange, routing_key, message)
            .map_err(|(e, _)| e)
    }

    /// As [`send`](Self::send), giving the message back with the error.
    pub(crate) fn try_send(
        &self,
        exchange: &str,
        routing_key: &str,
        message: Message,
    ) -> std::result::Result<Confirmation, (Error, Message)> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.submit(exchange, routing_key, message, Some(tx))?;
        Ok(Confirmation {
            rx,
            timeout: self.inner.config.confirm_timeout,
            waiter: self.inner.shared.waiter.clone(),
            closed: self.inner.closed_rx.clone(),
        })
    }

    /// gormq's publish: hands `message` over and returns at once. If it
    /// cannot be published now it waits in the retry buffer and is resent,
    /// until confirmed. Nothing reports the confirm; [`flush`](Self::flush)
    /// waits for all of them. A message that can never be published (the
    /// broker refused it, or it was unroutable with `mandatory`) comes back
    /// on [`refusals`](Self::refusals), and the next `flush` or `close`
    /// fails with [`Error::Rejected`] counting it.
    ///
    /// # Errors
    ///
    /// [`Error::Busy`] when the buffer is full (the message was not
    /// taken) or the broker blocks under [`BlockedPolicy::Fail`];
    /// [`Error::InvalidArgument`] for a message the broker cannot take (as
    /// for [`publish`](Self::publish); not taken); [`Error::Closed`] after
    /// close.
    pub fn publish_nowait(
        &self,
        exchange: &str,
        routing_key: &str,
        message: Message,
    ) -> Result<()> {
        self.submit(exchange, routing_key, message, None)
            .map_err(|(e, _)| e)
    }

    /// Has the publishing thread take messages from `input` itself and
    /// publish each to `exchange` with `routing_key`, fire and retry as
    /// [`publish_nowait`](Self::publish_nowait): a message taken stays in
    /// the retry buffer until confirmed, and one refused for good goes to
    /// [`refusals`](Self::refusals).
    ///
    /// The thread takes from `input` only while its confirm window and its
    /// buffer have room, so a bounded `input` pushes back: its senders
    /// block while the broker is slow or away, and nothing polls. Close
    /// publishes what is still in `input` within the close timeout; the
    /// feed ends when every sender of `input` is gone.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after close.
    pub(crate) fn feed(
        &self,
        exchange: &str,
        routing_key: &str,
        input: Receiver<Message>,
    ) -> Result<()> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(Error::closed("publisher"));
        }
        self.inner
            .feeds
            .send(Feed {
                exchange: exchange.to_string(),
                routing_key: routing_key.to_string(),
                input,
            })
            .map_err(|_| Error::closed("publisher"))
    }

    /// Waits until every message handed over so far is settled (confirmed,
    /// or failed to its caller), then reports the fire-and-retry publishes
    /// refused since the last report.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] naming how many are still buffered;
    /// [`Error::Rejected`] with how many
    /// [`publish_nowait`](Self::publish_nowait) messages the broker refused
    /// since the last `flush` or `close` reported them, and why the first
    /// was (each refusal is reported once; the messages are on
    /// [`refusals`](Self::refusals)).
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.wait_settled(timeout)?;
        match self.inner.refusals.take() {
            Some(rejected) => Err(rejected),
            None => Ok(()),
        }
    }

    /// The fire-and-retry messages that will never be published, each
    /// with its message and why: refused by the broker, unroutable with
    /// `mandatory`, or still unconfirmed when the publisher closed. The
    /// channel is bounded ([`PublisherConfig::with_refusals_capacity`]);
    /// all clones of the publisher share it.
    pub fn refusals(&self) -> Receiver<Refusal> {
        self.inner.refusals.receiver()
    }

    fn wait_settled(&self, timeout: Duration) -> Result<()> {
        let held = &self.inner.held;
        let deadline = Instant::now() + timeout;
        let mut guard = lock(&held.lock);
        loop {
            let count = held.count.load(Ordering::SeqCst);
            if count == 0 {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::timeout(
                    describe_wait(
                        &format!("{count} buffered messages to be confirmed"),
                        self.inner.shared.last_error().as_ref(),
                    ),
                    timeout,
                ));
            }
            guard = held
                .zero
                .wait_timeout(guard, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// How many messages are held until confirmed right now.
    pub fn buffered(&self) -> usize {
        self.inner.held.count.load(Ordering::SeqCst)
    }

    /// The publisher's counters.
    pub fn stats(&self) -> PublisherStats {
        let c = &self.inner.counters;
        PublisherStats {
            published: c.published.load(Ordering::Relaxed),
            confirmed: c.confirmed.load(Ordering::Relaxed),
            nacked: c.nacked.load(Ordering::Relaxed),
            returned: c.returned.load(Ordering::Relaxed),
            resent: c.resent.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
        }
    }

    /// Stops taking messages, keeps publishing what is buffered for up to
    /// the close timeout, and joins the thread. A publisher from
    /// [`connect`](Self::connect) then closes its connection. By the time
    /// it returns, every caller still waiting for a confirm (in
    /// [`publish`](Self::publish) or [`Confirmation::wait`]) has its
    /// answer, [`Error::Closed`] if none came, even when the publishing
    /// thread is stuck in a call to a frozen broker.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when messages were still unconfirmed at the
    /// deadline (each of their callers got [`Error::Closed`]; fire-and-retry
    /// ones go to [`refusals`](Self::refusals));
    /// [`Error::Rejected`] for fire-and-retry refusals no `flush` reported;
    /// [`Error::Refused`] naming how many were never published when the
    /// connection gave up on a refusal (at once, without waiting).
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }

    fn submit(
        &self,
        exchange: &str,
        routing_key: &str,
        message: Message,
        reply: Option<Sender<Result<()>>>,
    ) -> std::result::Result<(), (Error, Message)> {
        let inner = &self.inner;
        if inner.closed.load(Ordering::SeqCst) {
            return Err((Error::closed("publisher"), message));
        }
        // What the broker cannot take is refused here, for this message
        // alone: sent, it would close the channel under the whole window.
        if let Err(e) = amqp::check_publishable(
            exchange,
            routing_key,
            &message,
            inner.config.max_message_size,
        ) {
            return Err((e, message));
        }
        // A connection that gave up (refused credentials or vhost) will
        // never publish this: say why now rather than time out later.
        if let Some(cause) = inner.shared.failure() {
            return Err((cause, message));
        }
        if inner.config.blocked == BlockedPolicy::Fail {
            if let Some(reason) = inner.shared.blocked() {
                return Err((
                    Error::Busy {
                        what: "the broker".into(),
                        reason: format!("it blocks publishing: {reason}"),
                    },
                    message,
                ));
            }
        }
        let held = inner.held.count.fetch_add(1, Ordering::SeqCst);
        if held >= inner.config.buffer {
            inner.held.release();
            return Err((
                Error::Busy {
                    what: "publisher buffer".into(),
                    reason: format!(
                        "full: {held} messages await the broker's confirm (buffer {})",
                        inner.config.buffer
                    ),
                },
                message,
            ));
        }
        let entry = Entry {
            seq: inner.next_seq.fetch_add(1, Ordering::Relaxed),
            exchange: exchange.to_string(),
            routing_key: routing_key.to_string(),
            message,
            reply,
            not_before: None,
            attempts: 0,
        };
        if let Err(returned) = inner.requests.send(entry) {
            inner.held.release();
            return Err((Error::closed("publisher"), returned.into_inner().message));
        }
        Ok(())
    }
}

impl Inner {
    fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::SeqCst);
        lock(&self.stopper).stop();
        let worker = lock(&self.worker).take();
        let mut result = Ok(());
        if let Some(worker) = worker {
            let deadline = Instant::now() + self.config.close_timeout + Duration::from_secs(2);
            result = match worker.join_deadline(deadline) {
                Ok(0) => Ok(()),
                // Never published because the connection gave up: say why.
                Ok(left) if self.shared.failure().is_some() => Err(match self.shared.failure() {
                    Some(Error::Refused { code, text }) => Error::refused(
                        code,
                        format!("{text}; {left} buffered messages were never published"),
                    ),
                    _ => Error::closed(format!(
                        "connection; {left} buffered messages were never published"
                    )),
                }),
                Ok(left) => Err(Error::timeout(
                    describe_wait(
                        &format!("{left} buffered messages to be confirmed before close"),
                        self.shared.last_error().as_ref(),
                    ),
                    self.config.close_timeout,
                )),
                Err(e) => Err(e),
            };
        }
        // Whatever the thread is stuck in, no caller waits past this close.
        drop(lock(&self.closing).take());
        // Refusals that no flush reported: close is the last chance.
        if let Some(rejected) = self.refusals.take() {
            result = result.and(Err(rejected));
        }
        if let Some(connection) = lock(&self.own_connection).take() {
            let closed = connection.close();
            result = result.and(closed);
        }
        result
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::error!("closing publisher on drop: {e}");
        }
    }
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("connection", &self.inner.shared.name)
            .field("buffered", &self.buffered())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection that never connects (nothing listens on port 1), so
    /// everything published stays buffered.
    fn unreachable() -> Connection {
        Connection::open("amqp://127.0.0.1:1").unwrap()
    }

    #[test]
    fn while_the_broker_blocks_fail_refuses_and_wait_buffers() {
        let connection = unreachable();
        *lock(&connection.shared().blocked) = Some("memory alarm".into());
        let failing = Publisher::new(
            &connection,
            PublisherConfig::new().with_blocked(BlockedPolicy::Fail),
        )
        .unwrap();
        match failing.publish_nowait("", "q", Message::new(b"x".to_vec())) {
            Err(Error::Busy { reason, .. }) => assert!(reason.contains("memory alarm"), "{reason}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(failing.buffered(), 0);
        let waiting = Publisher::new(
            &connection,
            PublisherConfig::new().with_close_timeout(Duration::from_millis(50)),
        )
        .unwrap();
        waiting
            .publish_nowait("", "q", Message::new(b"x".to_vec()))
            .unwrap();
        assert_eq!(waiting.buffered(), 1);
        // Closing with a message never confirmed says so.
        let closed = waiting.close();
        assert!(matches!(closed, Err(Error::Timeout { .. })), "{closed:?}");
        failing.close().unwrap();
        connection.close().unwrap();
    }

    #[test]
    fn a_wait_ends_with_the_close_even_if_the_thread_never_answers() {
        // The publishing thread stuck in a call to a frozen broker: it
        // holds the reply sender and never sends.
        let (_stuck_reply, rx) = crossbeam_channel::bounded(1);
        let (closing, closed) = crossbeam_channel::bounded::<()>(0);
        let connection = unreachable();
        let confirmation = Confirmation {
            rx,
            timeout: Duration::from_secs(60),
            waiter: connection.waiter(),
            closed,
        };
        let waiting = std::thread::spawn(move || confirmation.wait());
        drop(closing); // what the end of close does
        assert!(matches!(waiting.join().unwrap(), Err(Error::Closed(_))));
        connection.close().unwrap();
    }

    #[test]
    fn a_confirm_wait_times_out_and_close_fails_the_waiters() {
        let connection = unreachable();
        let publisher = Publisher::new(
            &connection,
            PublisherConfig::new().with_close_timeout(Duration::from_millis(50)),
        )
        .unwrap();
        let confirmation = publisher
            .send("", "q", Message::new(b"x".to_vec()))
            .unwrap();
        let pending = publisher
            .send("", "q", Message::new(b"y".to_vec()))
            .unwrap();
        assert!(matches!(
            confirmation.wait_timeout(Duration::from_millis(20)),
            Err(Error::Timeout { .. })
        ));
        assert!(matches!(
            publisher.flush(Duration::from_millis(20)),
            Err(Error::Timeout { .. })
        ));
        assert!(publisher.close().is_err());
        assert!(matches!(
            pending.wait_timeout(Duration::from_secs(5)),
            Err(Error::Closed(_))
        ));
        assert!(matches!(
            publisher.publish_nowait("", "q", Message::new(vec![])),
            Err(Error::Closed(_))
        ));
        connection.close().unwrap();
    }
}
