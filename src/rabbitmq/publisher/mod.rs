//! [`Publisher`]: persistent messages, publisher confirms in a window, and
//! a bounded retry buffer resent in order after reconnects. The publishing
//! thread is in `engine.rs`; what it works on in `entry.rs` and `held.rs`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::error::{Error, Result};
use crate::message::Message;
use crate::metrics::{name, Count, Gauge};
use crate::rabbitmq::amqp;
use crate::rabbitmq::connection::{Connection, Shared};
use crate::receipt::Receipt;
use crate::reply::{Replies, Reply};
use crate::thread::{self, lock, Stopper, Worker};
use crate::waiter::describe_wait;

mod config;
mod engine;
mod entry;
mod held;
mod inflight;
mod pending_confirm;
mod refusals;
mod stats;

pub use config::{BlockedPolicy, PublisherConfig};
use engine::Engine;
use entry::{Entry, Feed};
use held::Held;
use pending_confirm::PendingConfirm;
pub use refusals::Refusal;
use refusals::Refusals;
use stats::Counters;
pub use stats::PublisherStats;

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
    /// Where receipts wait for their confirms; closed at the end of
    /// close, which ends every wait still without one.
    replies: Arc<Replies>,
    stopper: Mutex<Stopper>,
    worker: Mutex<Option<Worker<usize>>>,
    /// Set by [`Publisher::connect`]: a connection of its own, closed last.
    own_connection: Mutex<Option<Connection>>,
}

/// A confirmed publisher. Clones share one publishing thread; the last one
/// dropped closes it, and [`close`](Self::close) closes it for all.
///
/// One thread (`syncmq-rmq-pub:<connection>`) owns the amiquip channel. It
/// takes messages from callers (and, for the `RabbitAdapter`, straight from
/// each channel's input), publishes up to `window` of them before waiting
/// for confirms (never one round trip per message), and matches the
/// broker's acks and nacks to them. Confirm mode is switched on for every
/// new channel, so a reconnect never leaves it publishing unconfirmed.
///
/// # The retry buffer (gormq's failed-publish queue)
///
/// Every message handed over stays in the publisher until the broker
/// confirmed it: while it waits its turn, while it is in flight, and after
/// a failure. A message that failed to publish or was unconfirmed when
/// the connection died goes back into the buffer, in publish order, and is
/// resent at once on the next connection. The buffer is bounded
/// ([`PublisherConfig::with_buffer`]): a publish into a full buffer is an
/// error to the caller, never a silent drop.
///
/// # Guarantees
///
/// [`publish`](Self::publish) returns `Ok` only once the broker confirmed
/// the message, and a persistent message confirmed into a durable queue
/// survives a broker restart. With `mandatory` on (the default), a message
/// that no queue took comes back as an error instead of a confirm. A
/// refusal touches only the refused message, not the rest of the window.
///
/// A nack is retried a few times, then a refusal: the broker nacks a
/// message that a full queue declared with `x-overflow` `reject-publish`
/// ([`Overflow::RejectPublish`](crate::rabbitmq::Overflow::RejectPublish))
/// will not take, and a quorum queue nacks while it elects a new leader.
/// A nacked message is sent again after the retry interval, on a new
/// channel (a channel that saw a nack from a quorum queue whose leader
/// died may go on nacking), up to
/// [`PublisherConfig::with_nack_retries`] times (3 by default); then its
/// publish fails with [`Error::Busy`] (transient: the queue may drain, and
/// the caller decides whether to send again; a fire-and-retry one goes to
/// [`refusals`](Self::refusals)). Every nack is counted in
/// [`PublisherStats::nacked`] and logged at WARN.
/// Resends after a connection loss can duplicate a message the broker had
/// received but not yet confirmed: at least once, never at most once.
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
        let labels = [("connection", shared.name.as_str())];
        let held = Arc::new(Held::new(Gauge::new(name::RABBITMQ_BUFFERED, &labels)));
        let counters = Arc::new(Counters::new(&shared.name));
        let refusals = Arc::new(Refusals::new(config.refusals_capacity()));
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
                replies: Replies::new(),
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
    /// [`Error::Busy`] when the buffer is full, the broker blocks
    /// publishing under [`BlockedPolicy::Fail`], or the broker nacked the
    /// message more than the configured nack retries (a full queue with
    /// `x-overflow` `reject-publish`); [`Error::Refused`] when the
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

    /// Hands `message` over and returns at once with a [`Receipt`] to
    /// wait on: many sends in a row are pipelined in the confirm window.
    /// The receipt's `wait` returns once the broker confirmed the message,
    /// waiting at most the confirm timeout
    /// ([`PublisherConfig::with_confirm_timeout`]); its ticket is the
    /// message's place in this publisher's write order.
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish), for what can be known at once; the
    /// receipt's `wait` fails as `publish` does for the rest.
    pub fn send(&self, exchange: &str, routing_key: &str, message: Message) -> Result<Receipt> {
        let (reply, answer) = self.inner.replies.pair();
        let ticket = self.submit(exchange, routing_key, message, Some(reply))?;
        let pending = PendingConfirm {
            answer,
            timeout: self.inner.config.confirm_timeout(),
            waiter: self.inner.shared.waiter.clone(),
        };
        Ok(Receipt::new("rabbitmq publisher", ticket, pending))
    }

    /// gormq's publish: hands `message` over and returns at once. If it
    /// cannot be published now it waits in the retry buffer and is resent,
    /// until confirmed. Nothing reports the confirm; [`flush`](Self::flush)
    /// waits for all of them. A message that can never be published (the
    /// broker refused it, nacked it for a full queue, or it was unroutable
    /// with `mandatory`) comes back on [`refusals`](Self::refusals), and
    /// the next `flush` or `close`
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
        self.submit(exchange, routing_key, message, None).map(drop)
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
        taken: Arc<Count>,
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
                taken,
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
        match self.inner.held.wait_settled(Instant::now() + timeout) {
            0 => Ok(()),
            count => Err(Error::timeout(
                describe_wait(
                    &format!("{count} buffered messages to be confirmed"),
                    self.inner.shared.last_error().as_ref(),
                ),
                timeout,
            )),
        }
    }

    /// How many messages are held until confirmed right now.
    pub fn buffered(&self) -> usize {
        self.inner.held.count()
    }

    /// The publisher's counters, and what it holds now.
    pub fn stats(&self) -> PublisherStats {
        self.inner.counters.snapshot(self.buffered())
    }

    /// Stops taking messages, keeps publishing what is buffered for up to
    /// the close timeout, and joins the thread. A publisher from
    /// [`connect`](Self::connect) then closes its connection. By the time
    /// it returns, every caller still waiting for a confirm (in
    /// [`publish`](Self::publish) or a [`Receipt`]'s `wait`) has its
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

    /// Hands `message` to the publishing thread; its sequence number.
    fn submit(
        &self,
        exchange: &str,
        routing_key: &str,
        message: Message,
        reply: Option<Reply<Result<()>>>,
    ) -> Result<u64> {
        let inner = &self.inner;
        if inner.closed.load(Ordering::SeqCst) {
            return Err(Error::closed("publisher"));
        }
        // What the broker cannot take is refused here, for this message
        // alone: sent, it would close the channel under the whole window.
        amqp::check_publishable(
            exchange,
            routing_key,
            &message,
            inner.config.max_message_size(),
        )?;
        // A connection that gave up (refused credentials or vhost) will
        // never publish this: say why now rather than time out later.
        if let Some(cause) = inner.shared.failure() {
            return Err(cause);
        }
        if inner.config.blocked() == BlockedPolicy::Fail {
            if let Some(reason) = inner.shared.blocked() {
                return Err(Error::Busy {
                    what: "the broker".into(),
                    reason: format!("it blocks publishing: {reason}"),
                });
            }
        }
        let held = inner.held.hold();
        if held >= inner.config.buffer() {
            inner.held.release();
            return Err(Error::Busy {
                what: "publisher buffer".into(),
                reason: format!(
                    "full: {held} messages await the broker's confirm (buffer {})",
                    inner.config.buffer()
                ),
            });
        }
        let seq = inner.next_seq.fetch_add(1, Ordering::Relaxed);
        let entry = Entry::new(seq, exchange, routing_key, message, reply);
        if inner.requests.send(entry).is_err() {
            inner.held.release();
            return Err(Error::closed("publisher"));
        }
        Ok(seq)
    }
}

impl Inner {
    fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::SeqCst);
        lock(&self.stopper).stop();
        let worker = lock(&self.worker).take();
        let mut result = Ok(());
        if let Some(worker) = worker {
            let deadline = Instant::now() + self.config.close_timeout() + Duration::from_secs(2);
            result = match worker.join_deadline(deadline) {
                Ok(0) => Ok(()),
                // Never published because the connection gave up: say why.
                Ok(left) => Err(match self.shared.failure() {
                    Some(Error::Refused { code, text }) => Error::refused(
                        code,
                        format!("{text}; {left} buffered messages were never published"),
                    ),
                    Some(_) => Error::closed(format!(
                        "connection; {left} buffered messages were never published"
                    )),
                    None => Error::timeout(
                        describe_wait(
                            &format!("{left} buffered messages to be confirmed before close"),
                            self.shared.last_error().as_ref(),
                        ),
                        self.config.close_timeout(),
                    ),
                }),
                Err(e) => Err(e),
            };
        }
        // Whatever the thread is stuck in, no caller waits past this close.
        self.replies.close();
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
            .finish_non_exhaustive()
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
        connection.shared().set_blocked(Some("memory alarm".into()));
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
        let replies = Replies::new();
        let (_stuck_reply, answer) = replies.pair();
        let connection = unreachable();
        let pending = PendingConfirm {
            answer,
            timeout: Duration::from_secs(60),
            waiter: connection.waiter(),
        };
        let receipt = Receipt::new("rabbitmq publisher", 1, pending);
        let waiting = std::thread::spawn(move || receipt.wait());
        replies.close(); // what the end of close does
        assert!(matches!(waiting.join().unwrap(), Err(Error::Closed(_))));
        connection.close().unwrap();
    }

    #[test]
    fn a_wait_too_long_for_the_clock_ends_with_the_close() {
        // `Instant::now() + Duration::MAX` overflows: the wait has no limit
        // then, and the close still ends it.
        let replies = Replies::new();
        let (_stuck_reply, answer) = replies.pair();
        let connection = unreachable();
        let pending = PendingConfirm {
            answer,
            timeout: Duration::from_secs(60),
            waiter: connection.waiter(),
        };
        let receipt = Receipt::new("rabbitmq publisher", 1, pending);
        let waiting = std::thread::spawn(move || receipt.wait_timeout(Duration::MAX));
        replies.close();
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
        let first = publisher
            .send("", "q", Message::new(b"x".to_vec()))
            .unwrap();
        let second = publisher
            .send("", "q", Message::new(b"y".to_vec()))
            .unwrap();
        // Tickets follow the write order.
        assert_eq!((first.ticket(), second.ticket()), (1, 2));
        assert!(matches!(
            first.wait_timeout(Duration::from_millis(20)),
            Err(Error::Timeout { .. })
        ));
        assert!(matches!(
            publisher.flush(Duration::from_millis(20)),
            Err(Error::Timeout { .. })
        ));
        assert!(publisher.close().is_err());
        assert!(matches!(
            second.wait_timeout(Duration::from_secs(5)),
            Err(Error::Closed(_))
        ));
        assert!(matches!(
            publisher.publish_nowait("", "q", Message::new(vec![])),
            Err(Error::Closed(_))
        ));
        connection.close().unwrap();
    }
}
