//! The publishing thread of a [`Publisher`](super::Publisher): it alone
//! owns the amiquip channel, publishes in order up to the confirm window,
//! matches acks, nacks and returns to messages, and puts whatever a lost
//! channel left unconfirmed back into the retry buffer, in order.
//!
//! # Refusals affect the refused message alone
//!
//! The broker answers a message it cannot take in one of two ways. Some it
//! refuses on its own: a mandatory message no queue takes comes back as a
//! `basic.return` (then its ack), a nack is for the tags it names (a full
//! queue that rejects publishes, a quorum queue electing a leader: sent
//! again a few times on a new channel, then failed to its caller as busy);
//! both are matched to their messages (by tag, a return by its content)
//! and touch nothing else in the window.
//! Others make it close the channel: a missing exchange, a body over its `max_message_size`. Then
//! every message in flight on that channel loses its confirm, though the
//! broker may well have queued it, and would be sent again: one refusal in
//! a window of 401 duplicated the 200 before it. Worse, amiquip answers the
//! close at once, possibly between the frames of a message we are still
//! sending on that channel, and the broker then closes the whole connection
//! (`unexpected_frame`).
//!
//! So a publish that would close the channel is refused before it is sent:
//! sizes and name lengths are checked by the publisher's `send`, and an
//! exchange other than the default one is looked up once per channel with a
//! passive declare on a probe channel of its own (a refusal closes the
//! probe, not the publishing channel). A message to a missing exchange fails
//! alone, unsent. If the broker still closes the channel (an exchange
//! deleted after its lookup), the messages that were in flight are sent
//! again one at a time, and the one the broker refuses fails to its caller
//! alone; the others may then be duplicated (at least once).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use amiquip::{Confirm, Publish, Return};
use crossbeam_channel::{never, Receiver, Select, TryRecvError};

use super::config::PublisherConfig;
use super::entry::{Entry, Feed};
use super::held::Held;
use super::inflight::Inflight;
use super::refusals::{Refusal, Refusals};
use super::stats::Counters;
use crate::error::Error;
use crate::message::Message;
use crate::rabbitmq::amqp;
use crate::rabbitmq::connection::Shared;
use crate::thread::StopToken;

/// The publishing thread.
pub(super) struct Engine {
    pub(super) shared: Arc<Shared>,
    pub(super) config: PublisherConfig,
    pub(super) requests: Receiver<Entry>,
    /// New channel inputs to take messages from ([`Publisher::feed`]).
    ///
    /// [`Publisher::feed`]: super::Publisher::feed
    pub(super) new_feeds: Receiver<Feed>,
    /// The inputs taken from; one is dropped when all its senders are.
    pub(super) feeds: Vec<Feed>,
    /// The sequence numbers, shared with the callers' `send`.
    pub(super) next_seq: Arc<AtomicU64>,
    pub(super) stop: StopToken,
    pub(super) held: Arc<Held>,
    pub(super) counters: Arc<Counters>,
    /// Where fire-and-retry messages that failed for good go.
    pub(super) refusals: Arc<Refusals>,
    /// Waiting to be published, in publish order.
    pub(super) queue: VecDeque<Entry>,
    /// After the broker closed a channel with several messages in flight,
    /// the messages up to this sequence number are sent one at a time, so
    /// that the one it refuses is known and failed to its caller alone.
    pub(super) careful_through: Option<u64>,
}

/// The exchanges known to exist on the current channel's connection, and
/// the channel that looks them up.
#[derive(Default)]
struct Exchanges {
    known: HashSet<String>,
    probe: Option<amiquip::Channel>,
}

enum Served {
    Done,
    Lost(Loss),
}

/// Why a channel was lost.
struct Loss {
    reason: String,
    /// The broker closed the channel (the connection is fine): something we
    /// sent was refused.
    by_server: bool,
    /// The broker's reply code when it closed the channel.
    code: u16,
    /// Wait the retry interval before the next channel.
    pause: bool,
}

impl Loss {
    fn from(e: amiquip::Error) -> Loss {
        match e {
            amiquip::Error::ServerClosedChannel { code, message, .. } => Loss {
                reason: format!("the broker closed the channel ({code}: {message})"),
                by_server: true,
                code,
                pause: false,
            },
            other => Loss::other(other.to_string()),
        }
    }

    fn other(reason: impl Into<String>) -> Loss {
        Loss {
            reason: reason.into(),
            by_server: false,
            code: 0,
            pause: false,
        }
    }

    /// The broker nacked a publish: the channel is given up, and the next
    /// one opened after the retry interval.
    fn nacked() -> Loss {
        Loss {
            pause: true,
            ..Loss::other("the broker nacked a publish")
        }
    }
}

impl Engine {
    /// Publishes until stopped (and drained) or the connection closes;
    /// returns how many messages were never confirmed.
    pub(super) fn run(mut self) -> usize {
        let name = self.shared.name.clone();
        let wake = self.shared.wake_on_connect();
        let mut draining: Option<Instant> = None;
        let mut channels = 0u64;
        loop {
            // Feeds registered while the thread waited for a channel count
            // for the drain below.
            self.adopt_feeds();
            if self.stop.is_stopped() && draining.is_none() {
                draining = Some(Instant::now() + self.config.close_timeout());
            }
            if let Some(deadline) = draining {
                let drained =
                    self.queue.is_empty() && self.requests.is_empty() && self.feeds_empty();
                if drained || Instant::now() >= deadline {
                    break;
                }
            }
            // While draining, a channel is what finishing needs: the wait
            // for it must not end at the stop signal, but at the deadline
            // (a frozen broker may never answer the channel's open).
            let opened = match draining {
                Some(deadline) => self.shared.open_channel(&crossbeam_channel::at(deadline)),
                None => self.shared.open_channel(self.stop.receiver()),
            };
            match opened {
                Ok((channel, generation)) => {
                    channels += 1;
                    if channels > 1 {
                        self.counters.reconnects.add(1);
                    }
                    match self.serve(&channel, &mut draining) {
                        Served::Done => break,
                        Served::Lost(loss) => {
                            log::warn!(
                            "publisher on {name}: channel lost ({generation}): {}; {} messages to resend",
                            loss.reason,
                            self.queue.len()
                        );
                            if loss.pause || (loss.by_server && self.careful_through.is_none()) {
                                // Nacked, or refused with nothing to blame: do
                                // not spin.
                                let _ = self.stop.sleep(self.config.nack_retry_interval());
                            }
                        }
                    }
                }
                Err(Error::Closed(_)) if self.shared.is_closed() => break,
                Err(_) => {
                    // Down: keep taking messages into the buffer until the
                    // supervisor reconnects.
                    let deadline = draining.map_or_else(never, crossbeam_channel::at);
                    let stop = if draining.is_some() {
                        never()
                    } else {
                        self.stop.receiver().clone()
                    };
                    // The retry timer covers a channel refused on a live
                    // connection, which no reconnect will announce.
                    let retry = crossbeam_channel::after(self.config.nack_retry_interval());
                    let requests = self.requests.clone();
                    let mut select = Select::new();
                    let wake_at = select.recv(&wake);
                    let requests_at = select.recv(&requests);
                    select.recv(&stop);
                    let deadline_at = select.recv(&deadline);
                    select.recv(&retry);
                    let feeds_at = self.select_feeds(&mut select, self.has_room());
                    let ready = select.ready();
                    drop(select);
                    if ready == wake_at {
                        let _ = wake.try_recv();
                    } else if ready == requests_at {
                        if let Ok(entry) = requests.try_recv() {
                            self.queue.push_back(entry);
                        }
                    } else if ready == deadline_at {
                        if deadline.try_recv().is_ok() {
                            break;
                        }
                    } else if ready >= feeds_at {
                        self.take_feed(ready - feeds_at, self.config.buffer());
                    }
                    // Anything else (the stop, the retry timer) only needs
                    // the loop to run again.
                }
            }
        }
        while let Ok(entry) = self.requests.try_recv() {
            self.queue.push_back(entry);
        }
        // What is left in the channel inputs was never taken: it is
        // unconfirmed too, and reported as such.
        self.adopt_feeds();
        for feed in std::mem::take(&mut self.feeds) {
            while let Ok(message) = feed.input.try_recv() {
                self.accept_fed(&feed, message);
            }
        }
        let unconfirmed = self.queue.len();
        if unconfirmed > 0 {
            log::error!("publisher on {name}: closed with {unconfirmed} messages unconfirmed");
        }
        // A connection that gave up says why to every waiting caller.
        let failure = self.shared.failure();
        let entries: Vec<Entry> = self.queue.drain(..).collect();
        for entry in entries {
            let error = failure.clone().unwrap_or_else(|| {
                Error::closed("publisher (closed before the broker confirmed the message)")
            });
            // Close reports these in its own error: not counted as refused.
            self.fail(entry, error, false);
        }
        unconfirmed
    }

    /// Publishes on one channel until it fails or the publisher is done.
    fn serve(&mut self, channel: &amiquip::Channel, draining: &mut Option<Instant>) -> Served {
        // The listeners first: a confirm or return that arrived before them
        // would be lost.
        let confirms = match channel.listen_for_publisher_confirms() {
            Ok(rx) => rx,
            Err(e) => return Served::Lost(Loss::from(e)),
        };
        let returns = if self.config.mandatory() {
            match channel.listen_for_returns() {
                Ok(rx) => rx,
                Err(e) => return Served::Lost(Loss::from(e)),
            }
        } else {
            never()
        };
        if let Err(e) = channel.enable_publisher_confirms() {
            return Served::Lost(Loss::from(e));
        }
        let mut inflight = Inflight::new();
        let mut exchanges = Exchanges::default();
        // A retried nack waits for a new channel: nothing more is sent on
        // this one.
        let mut reopen = false;
        let lost = loop {
            // Publish what the window allows, in order.
            let mut failed = None;
            if let Some(through) = self.careful_through {
                let done = self.queue.front().is_none_or(|e| e.seq > through)
                    && inflight.entries().all(|e| e.seq > through);
                if done {
                    self.careful_through = None;
                }
            }
            let limit = if reopen {
                0
            } else if self.careful_through.is_some() {
                1
            } else {
                self.config.window()
            };
            while inflight.len() < limit {
                let Some(mut entry) = self.queue.pop_front() else {
                    break;
                };
                match self.look_up(&mut exchanges, &entry.exchange, *draining) {
                    Ok(None) => {}
                    Ok(Some((code, reason))) => {
                        self.refuse(entry, code, &reason);
                        continue;
                    }
                    Err(e) => {
                        self.queue.push_front(entry);
                        failed = Some(e);
                        break;
                    }
                }
                if let Err(e) = self.publish(channel, &entry) {
                    self.queue.push_front(entry);
                    failed = Some(e);
                    break;
                }
                if entry.attempts > 0 {
                    self.counters.resent.add(1);
                }
                entry.attempts += 1;
                inflight.push(entry);
            }
            if failed.is_some() {
                break failed;
            }
            if let Some(deadline) = *draining {
                self.adopt_feeds();
                if self.queue.is_empty()
                    && inflight.is_empty()
                    && self.requests.is_empty()
                    && self.feeds_empty()
                {
                    break None;
                }
                if Instant::now() >= deadline {
                    break None;
                }
            }
            let timer = (*draining).map_or_else(never, crossbeam_channel::at);
            let stop = if draining.is_some() {
                never()
            } else {
                self.stop.receiver().clone()
            };
            // New messages only while the window has room: they queue behind
            // anything waiting anyway, and this keeps the order. The feeds
            // also wait for room in the buffer: their senders block
            // meanwhile, which is the channels' back-pressure.
            let window_has_room = inflight.len() < self.config.window();
            let requests = if window_has_room {
                self.requests.clone()
            } else {
                never()
            };
            let mut select = Select::new();
            let requests_at = select.recv(&requests);
            let confirms_at = select.recv(&confirms);
            let returns_at = select.recv(&returns);
            let stop_at = select.recv(&stop);
            select.recv(&timer);
            let feeds_at = self.select_feeds(&mut select, window_has_room && self.has_room());
            let ready = select.ready();
            drop(select);
            if ready == requests_at {
                while self.queue.len() < self.config.window() {
                    match requests.try_recv() {
                        Ok(entry) => self.queue.push_back(entry),
                        Err(_) => break,
                    }
                }
            } else if ready == confirms_at {
                match confirms.try_recv() {
                    Ok(confirm) => {
                        if self.settle(confirm, &mut inflight, &returns) {
                            // A channel that had a publish nacked may go on
                            // nacking: RabbitMQ keeps the quorum queue
                            // leader it knew when the publish went out, and
                            // after a failover that leader is gone. The
                            // retry goes out on a new channel, which asks
                            // for the current one, once the rest of the
                            // window is confirmed here (so that none of it
                            // is sent twice).
                            reopen = true;
                        }
                        if reopen && inflight.is_empty() {
                            break Some(Loss::nacked());
                        }
                    }
                    Err(TryRecvError::Empty) => {}
                    // The channel is gone; a call on it says why.
                    Err(TryRecvError::Disconnected) => {
                        break Some(match channel.qos(0, 0, false) {
                            Err(e) => Loss::from(e),
                            Ok(()) => Loss::other("the confirm listener ended"),
                        })
                    }
                }
            } else if ready == returns_at {
                if let Ok(ret) = returns.try_recv() {
                    note_return(&ret, &mut inflight);
                }
            } else if ready == stop_at {
                // The stop signal is a disconnect; `ready` may wake early.
                if !matches!(stop.try_recv(), Err(TryRecvError::Empty)) {
                    *draining = Some(Instant::now() + self.config.close_timeout());
                }
            } else if ready >= feeds_at {
                let room = self.config.window().saturating_sub(self.queue.len()).max(1);
                self.take_feed(ready - feeds_at, room);
            }
        };
        match lost {
            None => {
                // Done: whatever is still in flight at the deadline goes
                // back so that `run` fails it to its callers.
                self.requeue(inflight);
                Served::Done
            }
            Some(loss) => {
                if loss.by_server {
                    self.blame(&mut inflight, loss.code, &loss.reason);
                }
                self.requeue(inflight);
                Served::Lost(loss)
            }
        }
    }

    /// True while the buffer may take another fed message.
    fn has_room(&self) -> bool {
        self.held.count() < self.config.buffer()
    }

    /// Takes the feeds registered since the last call.
    fn adopt_feeds(&mut self) {
        while let Ok(feed) = self.new_feeds.try_recv() {
            self.feeds.push(feed);
        }
    }

    /// True when no channel input holds a message.
    /// Call [`adopt_feeds`](Self::adopt_feeds) first.
    fn feeds_empty(&self) -> bool {
        self.feeds.iter().all(|f| f.input.is_empty())
    }

    /// Adds the feeds to `select`: the receiver of new feeds always, the
    /// inputs when `open`. Returns the index of the first one added; index
    /// `first + 1 + i` is feed `i`.
    fn select_feeds<'a>(&'a self, select: &mut Select<'a>, open: bool) -> usize {
        let first = select.recv(&self.new_feeds);
        if open {
            for feed in &self.feeds {
                select.recv(&feed.input);
            }
        }
        first
    }

    /// Acts on the feed operation `k` of [`select_feeds`](Self::select_feeds)
    /// being ready: takes the new feeds, or up to `limit` messages from
    /// that input while the buffer has room.
    fn take_feed(&mut self, k: usize, limit: usize) {
        let Some(i) = k.checked_sub(1) else {
            self.adopt_feeds();
            return;
        };
        let mut taken = 0;
        while taken < limit && self.has_room() {
            let Some(feed) = self.feeds.get(i) else {
                return;
            };
            match feed.input.try_recv() {
                Ok(message) => {
                    let feed = &self.feeds[i];
                    let entry = self.entry_for(feed, message);
                    self.enqueue_fed(entry);
                    taken += 1;
                }
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    self.feeds.remove(i);
                    return;
                }
            }
        }
    }

    /// Takes `message` from `feed` into the queue (or, when the broker
    /// could never take it, straight to the refusals).
    fn accept_fed(&mut self, feed: &Feed, message: Message) {
        let entry = self.entry_for(feed, message);
        self.enqueue_fed(entry);
    }

    /// A fed message as a fire-and-retry entry, counted as held.
    fn entry_for(&self, feed: &Feed, message: Message) -> Entry {
        feed.taken.add(1);
        self.held.hold();
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        Entry::new(seq, &feed.exchange, &feed.routing_key, message, None)
    }

    /// Queues a fed entry. What the broker cannot take (too large, say) is
    /// refused here, as `send` refuses it to its caller: sent, it would
    /// close the channel under the whole window.
    fn enqueue_fed(&mut self, entry: Entry) {
        match amqp::check_publishable(
            &entry.exchange,
            &entry.routing_key,
            &entry.message,
            self.config.max_message_size(),
        ) {
            Ok(()) => self.queue.push_back(entry),
            Err(e) => {
                log::error!(
                    "publisher on {}: a message for routing key `{}` cannot be published: {e}",
                    self.shared.name,
                    entry.routing_key
                );
                self.counters.rejected.add(1);
                self.fail(entry, e, true);
            }
        }
    }

    /// The broker closed the channel: with one message in flight in
    /// careful mode, that message is the one refused and fails to its
    /// caller; otherwise the messages in flight are resent carefully.
    fn blame(&mut self, inflight: &mut Inflight, code: u16, reason: &str) {
        if self.careful_through.is_some() && inflight.len() == 1 {
            if let Some(entry) = inflight.drain().pop() {
                self.refuse(entry, code, reason);
            }
        } else if let Some(last) = inflight.entries().map(|e| e.seq).max() {
            self.careful_through = Some(self.careful_through.map_or(last, |c| c.max(last)));
        }
    }

    /// Fails `entry`, which the broker refused with reply `code` for
    /// `reason`, to its caller.
    fn refuse(&self, entry: Entry, code: u16, reason: &str) {
        self.counters.rejected.add(1);
        log::error!(
            "publisher on {}: the broker refused a message to exchange `{}` with routing key `{}`: {reason}",
            self.shared.name,
            entry.exchange,
            entry.routing_key
        );
        let error = Error::refused(
            code,
            format!(
                "publish to exchange `{}` with routing key `{}`: {reason}",
                entry.exchange, entry.routing_key
            ),
        );
        self.fail(entry, error, true);
    }

    /// Whether `exchange` exists: `Ok(None)` when it does (the default
    /// exchange always does), `Ok(Some((code, reason)))` when the broker refused
    /// the lookup (the exchange is missing or forbidden), `Err` when the
    /// connection failed. A passive declare on the probe channel, once per
    /// exchange and channel: a refusal closes the probe channel only.
    fn look_up(
        &self,
        exchanges: &mut Exchanges,
        exchange: &str,
        draining: Option<Instant>,
    ) -> std::result::Result<Option<(u16, String)>, Loss> {
        if exchange.is_empty() || exchanges.known.contains(exchange) {
            return Ok(None);
        }
        let probe = if let Some(probe) = exchanges.probe.take() {
            probe
        } else {
            // While draining, the stop signal is already there: wait for
            // the channel until the close deadline instead.
            let opened = match draining {
                Some(deadline) => self.shared.open_channel(&crossbeam_channel::at(deadline)),
                None => self.shared.open_channel(self.stop.receiver()),
            };
            opened
                .map_err(|e| Loss::other(format!("opening the exchange probe channel: {e}")))?
                .0
        };
        match probe.exchange_declare_passive(exchange) {
            Ok(_) => {
                exchanges.known.insert(exchange.to_string());
                exchanges.probe = Some(probe);
                Ok(None)
            }
            // The probe channel is gone with the refusal; the next lookup
            // opens another.
            Err(amiquip::Error::ServerClosedChannel { code, message, .. }) => Ok(Some((
                code,
                format!("the broker closed the channel ({code}: {message})"),
            ))),
            Err(other) => Err(Loss::from(other)),
        }
    }

    fn publish(&self, channel: &amiquip::Channel, entry: &Entry) -> std::result::Result<(), Loss> {
        let properties = amqp::properties(&entry.message, self.config.persistent());
        channel
            .basic_publish(
                entry.exchange.as_str(),
                Publish {
                    body: entry.message.body(),
                    routing_key: entry.routing_key.clone(),
                    mandatory: self.config.mandatory(),
                    immediate: false,
                    properties,
                },
            )
            .map_err(Loss::from)?;
        self.counters.published.add(1);
        Ok(())
    }

    /// Applies one confirm (possibly for several tags). True when it was a
    /// nack with a message to retry.
    fn settle(
        &mut self,
        confirm: Confirm,
        inflight: &mut Inflight,
        returns: &Receiver<Return>,
    ) -> bool {
        let (payload, acked) = match confirm {
            Confirm::Ack(p) => (p, true),
            Confirm::Nack(p) => (p, false),
        };
        // The broker sends a message's return before its ack, and one I/O
        // thread reads both, so every return for these tags is queued now.
        while let Ok(ret) = returns.try_recv() {
            note_return(&ret, inflight);
        }
        let (mut retried, mut failed) = (Vec::new(), 0);
        let tag = payload.delivery_tag;
        if payload.multiple {
            while let Some((entry, returned)) = inflight.pop_through(tag) {
                self.settle_one(entry, returned, acked, &mut retried, &mut failed);
            }
        } else if let Some((entry, returned)) = inflight.remove(tag) {
            self.settle_one(entry, returned, acked, &mut retried, &mut failed);
        }
        if !acked {
            log::warn!(
                "publisher on {}: the broker nacked {} messages (a full queue that rejects \
                 publishes, or a quorum queue electing a leader); {} to retry in {:?}, {failed} \
                 failed as busy after {} retries",
                self.shared.name,
                retried.len() + failed,
                retried.len(),
                self.config.nack_retry_interval(),
                self.config.nack_retries()
            );
        }
        let retry = !retried.is_empty();
        self.merge(retried);
        retry
    }

    /// Settles one message of a confirm: `acked` or nacked (then kept in
    /// `retried` to send again, or counted in `failed`), `returned` by the
    /// broker as unroutable or not.
    fn settle_one(
        &mut self,
        mut entry: Entry,
        returned: bool,
        acked: bool,
        retried: &mut Vec<Entry>,
        failed: &mut usize,
    ) {
        if !acked {
            self.counters.nacked.add(1);
            if entry.nacks < self.config.nack_retries() {
                entry.nacks += 1;
                retried.push(entry);
                return;
            }
            *failed += 1;
            let error = Error::Busy {
                what: format!(
                    "the queue for routing key `{}` on exchange `{}`",
                    entry.routing_key, entry.exchange
                ),
                reason: format!(
                    "the broker nacked the publish {} times: the queue is full and rejects \
                     publishes (x-overflow reject-publish), or it could not store the message",
                    entry.nacks + 1
                ),
            };
            self.fail(entry, error, true);
        } else if returned {
            self.counters.returned.add(1);
            log::warn!(
                "publisher on {}: unroutable message to exchange `{}` with routing key `{}`",
                self.shared.name,
                entry.exchange,
                entry.routing_key
            );
            let error = Error::refused(
                amqp::NO_ROUTE,
                format!(
                    "unroutable: no queue is bound to exchange `{}` for routing key `{}`",
                    entry.exchange, entry.routing_key
                ),
            );
            self.fail(entry, error, true);
        } else {
            self.counters.confirmed.add(1);
            entry.taken.record(&self.counters.confirm_seconds);
            if let Some(reply) = entry.reply {
                reply.send(Ok(()));
            }
            self.held.release();
        }
    }

    /// Settles `entry` as failed for good: its caller gets `error`, or, for
    /// a fire-and-retry publish, the message goes to the refusals (counted
    /// for the next flush when `count`).
    fn fail(&self, entry: Entry, error: Error, count: bool) {
        match entry.reply {
            Some(reply) => reply.send(Err(error)),
            None => self.refusals.refuse(
                &self.shared.name,
                Refusal {
                    exchange: entry.exchange,
                    routing_key: entry.routing_key,
                    message: entry.message,
                    error,
                },
                count,
            ),
        }
        // After the refusal is recorded, so that a flush woken by this
        // release sees it.
        self.held.release();
    }

    /// Puts what was in flight back into the queue, in order, to resend.
    fn requeue(&mut self, mut inflight: Inflight) {
        let entries = inflight.drain();
        self.merge(entries);
    }

    /// Merges `entries` into the queue, keeping publish order.
    fn merge(&mut self, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        let mut all: Vec<Entry> = self.queue.drain(..).chain(entries).collect();
        all.sort_by_key(|e| e.seq);
        self.queue = all.into();
    }
}

/// Marks returned, in `inflight`, the message `ret` brings back.
///
/// A return carries the message, not its tag, and nothing we add to every
/// message to tell them apart is free: a sequence header cost 3,500
/// instructions a message in amiquip's header encoding, 15 % of a
/// publish. So a return is matched by content, to the first message in
/// flight that it is (exchange, routing key, key and body) and that is not
/// marked yet. That is its own message: the broker returns messages in
/// publish order, a return comes before its message's confirm, and a
/// message stays in flight until its confirm. Only messages equal in all
/// of those can be mistaken for one another, and then which of them fails
/// as unroutable does not change what the broker holds.
fn note_return(ret: &Return, inflight: &mut Inflight) {
    let found = inflight.mark_returned(|entry| {
        entry.exchange == ret.exchange
            && entry.routing_key == ret.routing_key
            && entry.message.key() == ret.properties.message_id().as_deref()
            && entry.message.body() == ret.content.as_slice()
    });
    if !found {
        log::warn!(
            "a returned message to exchange `{}` with routing key `{}` matches nothing in flight",
            ret.exchange,
            ret.routing_key
        );
    }
}
