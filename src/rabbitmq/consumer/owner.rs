//! The channel owner of a consumer: the one thread that touches its amiquip
//! channel. It sets the prefetch, consumes, wraps each AMQP delivery in a
//! [`Delivery`] whose ack or nack comes back to it as a command, and applies
//! those on the channel the delivery came from. After a reconnect it
//! consumes on a fresh channel; a settle for a delivery of an older channel
//! is refused at the delivery (an error naming it stale), never applied to
//! another delivery.
//!
//! A stop cancels the AMQP consumer and keeps its receiver until amiquip
//! confirms the cancel on it (bounded): amiquip treats a receiver dropped
//! before that as fatal and would close the whole shared connection.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amiquip::ConsumerMessage;
use crossbeam_channel::{never, select, Receiver, RecvTimeoutError, Sender, TrySendError};

use super::acker::{AckRoute, Action, RabbitAcker, Settle};
use super::counters::ConsumerCounters;
use super::unsettled::Unsettled;
use crate::error::Error;
use crate::message::Delivery;
use crate::rabbitmq::amqp;
use crate::rabbitmq::connection::Shared;
use crate::rabbitmq::queue_arguments::StreamOffset;
use crate::thread::StopToken;

/// What a channel owner hands over for each AMQP delivery: the
/// [`Delivery`] alone (the `RabbitAdapter`'s outputs), or with what a
/// handler is told about it.
pub(crate) trait Wrap: Send + 'static {
    /// `delivery` (its message taken from `raw`), with what it needs of
    /// `raw`, which it may take: only the delivery tag is used after.
    fn wrap(delivery: Delivery, raw: &mut amiquip::Delivery) -> Self;
}

impl Wrap for Delivery {
    fn wrap(delivery: Delivery, _: &mut amiquip::Delivery) -> Self {
        delivery
    }
}

/// The channel-owner side of one consumer: consumes `queue` on fresh
/// channels for ever, hands [`Delivery`] values (wrapped as `T`) to
/// `output`.
pub(crate) struct Owner<T: Wrap = Delivery> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) queue: String,
    pub(crate) prefetch: u16,
    /// How long a closing owner waits for what handlers hold to be
    /// settled.
    pub(crate) close_timeout: Duration,
    pub(crate) output: Sender<T>,
    /// A receiver of `output`, to take back undelivered messages on stop.
    pub(crate) output_rx: Receiver<T>,
    /// When set, deliveries go to this on the owner's own thread instead of
    /// `output` (a handler consumer with concurrency 1: no hand-offs).
    pub(crate) inline: Option<Box<dyn Fn(T) + Send>>,
    pub(crate) stop: StopToken,
    pub(crate) counters: Arc<ConsumerCounters>,
    /// Set for a stream queue, and only then: where to start reading
    /// (`x-stream-offset`); each consume, the first and the one after a
    /// reconnect, starts there. A stream cannot take a nack (the broker
    /// closes the whole connection, 540 `NOT_IMPLEMENTED`), so its
    /// deliveries turn a nack into an ack.
    pub(crate) stream_offset: Option<StreamOffset>,
    /// For a stream: where the next consume resumes, once one delivered
    /// something (see [`Owner::resume_at`]). Only the owner's thread
    /// touches it.
    pub(crate) stream_resume: Cell<Option<u64>>,
}

/// How long a stopping consumer waits, after the broker answered its
/// cancel, for amiquip to confirm it on the receiver. It comes within
/// microseconds (amiquip sends it right after the answer); the bound is for
/// a connection that dies meanwhile.
const CANCEL_WAIT: Duration = Duration::from_secs(2);

/// How long a consumer the broker refused waits before trying again.
const REFUSED_PAUSE: Duration = Duration::from_secs(1);

enum Served {
    Stop,
    Lost(String),
    /// The broker refused us on a live connection (a deleted queue, say):
    /// retried after a pause instead of at once.
    Refused(String),
    /// The broker closed the channel because a delivery stayed unacked
    /// longer than its `consumer_timeout`: consumed again at once.
    AckTimedOut(String),
}

fn lost(context: &str, e: amiquip::Error) -> Served {
    match e {
        amiquip::Error::ServerClosedChannel { code, message, .. } => {
            closed_by_broker(context, code, &message)
        }
        other => Served::Lost(format!("{context}: {other}")),
    }
}

/// What the broker closing the channel with `code` and `message` means.
/// 406 `PRECONDITION_FAILED` "delivery acknowledgement on channel N timed
/// out" is the broker's `consumer_timeout` (30 minutes by default): a
/// handler held a message longer than that. Anything else is a refusal.
fn closed_by_broker(context: &str, code: u16, message: &str) -> Served {
    let text = format!("{context}: the broker closed the channel ({code}: {message})");
    if code == 406 && message.contains("delivery acknowledgement") && message.contains("timed out")
    {
        Served::AckTimedOut(text)
    } else {
        Served::Refused(text)
    }
}

impl<T: Wrap> Owner<T> {
    /// Consumes until told to stop or the connection is closed.
    pub(crate) fn run(self) {
        let wake = self.shared.wake_on_connect();
        let (settle_tx, settles) = crossbeam_channel::unbounded::<Settle>();
        let route = Arc::new(AckRoute {
            current: AtomicU64::new(0),
            settles: settle_tx,
            queue: self.queue.clone(),
            stream: self.stream_offset.is_some(),
        });
        let mut channel_number = 0;
        while !self.stop.is_stopped() {
            match self.shared.open_channel(self.stop.receiver()) {
                Ok((channel, generation)) => {
                    channel_number += 1;
                    if channel_number > 1 {
                        self.counters.reconnects.add(1);
                    }
                    let served = self.consume_on(&channel, channel_number, &route, &settles);
                    route.current.store(0, Ordering::SeqCst);
                    if !matches!(served, Served::Stop) {
                        // Deliveries of the lost channel that no reader took
                        // yet are stale: drop them (the broker redelivers
                        // them) rather than have handlers work on them.
                        while self.output_rx.try_recv().is_ok() {}
                    }
                    match served {
                        Served::Stop => break,
                        Served::Lost(reason) => log::warn!(
                            "consumer of `{}`: channel lost ({generation}): {reason}",
                            self.queue
                        ),
                        Served::AckTimedOut(reason) => log::warn!(
                            "consumer of `{}`: a handler held a message longer than the broker's \
                             consumer_timeout, so the broker closed the channel and redelivers \
                             what was unacked ({reason}); consuming again",
                            self.queue
                        ),
                        Served::Refused(reason) => {
                            log::error!(
                                "consumer of `{}`: {reason}; retrying in {:?}",
                                self.queue,
                                REFUSED_PAUSE
                            );
                            if self.stop.sleep(REFUSED_PAUSE) {
                                break;
                            }
                            // If our queue was deleted, this brings it back.
                            if let Err(e) = self.shared.redeclare() {
                                log::warn!("consumer of `{}`: {e}", self.queue);
                            }
                        }
                    }
                }
                Err(Error::Closed(_)) if self.shared.is_closed() => break,
                Err(_) => {
                    select! {
                        recv(wake) -> _ => {}
                        recv(self.stop.receiver()) -> _ => break,
                        // Settles of stale deliveries: nothing to do, the
                        // broker redelivers them.
                        recv(settles) -> _ => {}
                        // A channel refused on a live connection: no
                        // reconnect will announce the retry.
                        recv(crossbeam_channel::after(REFUSED_PAUSE)) -> _ => {}
                    }
                }
            }
        }
        // Take back what no reader took; dropping requeues (a no-op now).
        while self.output_rx.try_recv().is_ok() {}
        log::debug!("consumer of `{}`: stopped", self.queue);
    }

    fn consume_on(
        &self,
        channel: &amiquip::Channel,
        channel_number: u64,
        route: &Arc<AckRoute>,
        settles: &Receiver<Settle>,
    ) -> Served {
        if let Err(e) = channel.qos(0, self.prefetch, false) {
            return lost("qos", e);
        }
        // Manual acks (`no_ack` false) and the prefetch above: what a
        // stream consumer needs too. After a lost channel a stream resumes
        // where it left off instead of at its configured offset again.
        let offset = match (self.stream_offset, self.stream_resume.get()) {
            (Some(_), Some(next)) => Some(StreamOffset::Offset(next)),
            (offset, _) => offset,
        };
        let options = amiquip::ConsumerOptions {
            arguments: offset
                .map(StreamOffset::consume_arguments)
                .unwrap_or_default(),
            ..amiquip::ConsumerOptions::default()
        };
        let consumer = match channel.basic_consume(self.queue.as_str(), options) {
            Ok(c) => c,
            Err(e) => return lost("basic_consume", e),
        };
        route.current.store(channel_number, Ordering::SeqCst);
        log::info!(
            "consumer of `{}`: consuming (prefetch {})",
            self.queue,
            self.prefetch
        );
        let mut cancel = Cancel::NotSent;
        let mut pending = Unsettled::new();
        let served = self.deliver(
            channel,
            &consumer,
            &mut cancel,
            &mut pending,
            channel_number,
            route,
            settles,
        );
        self.finish_cancel(&consumer, cancel);
        self.resume_at(&pending);
        served
    }

    /// Cancels `consumer` (unless done already) and keeps its receiver
    /// until amiquip has sent it `ClientCancelled` or let go of it, at most
    /// [`CANCEL_WAIT`]. amiquip's I/O thread sends `ClientCancelled` just
    /// after it answers the cancel; if the receiver is gone by then, it
    /// takes that for a fatal error and the whole connection dies, with
    /// every other channel on it (issue 11, item 8).
    fn finish_cancel(&self, consumer: &amiquip::Consumer, cancel: Cancel) {
        let answered = match cancel {
            Cancel::Done => return,
            Cancel::Sent { answered } => answered,
            Cancel::NotSent => match consumer.cancel() {
                Ok(()) => true,
                Err(e) => {
                    // The channel is gone: nothing will be sent to us.
                    log::debug!("consumer of `{}`: cancel: {e}", self.queue);
                    false
                }
            },
        };
        if !answered {
            return;
        }
        let deadline = Instant::now() + CANCEL_WAIT;
        loop {
            match consumer.receiver().recv_deadline(deadline) {
                // Sent before the broker saw the cancel: unacked, so the
                // channel's close requeues it.
                Ok(ConsumerMessage::Delivery(_)) => {}
                Ok(_) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {
                    log::warn!(
                        "consumer of `{}`: the cancel was answered but not confirmed within {:?}",
                        self.queue,
                        CANCEL_WAIT
                    );
                    return;
                }
            }
        }
    }

    /// Hands deliveries over and applies settles until stopped or the
    /// channel is lost; records in `cancel` how far the cancel got.
    #[allow(clippy::too_many_arguments)]
    fn deliver(
        &self,
        channel: &amiquip::Channel,
        consumer: &amiquip::Consumer,
        cancel: &mut Cancel,
        pending: &mut Unsettled,
        channel_number: u64,
        route: &Arc<AckRoute>,
        settles: &Receiver<Settle>,
    ) -> Served {
        let mut stopping: Option<Instant> = None;
        let deliveries = consumer.receiver();
        let mut held = HeldAcks::new(ack_batch(self.prefetch));
        let (no_deliveries, no_settles, no_stop) = (never(), never(), never());
        loop {
            if let Some(deadline) = stopping {
                if pending.is_empty() || Instant::now() >= deadline {
                    if !pending.is_empty() {
                        log::warn!(
                            "consumer of `{}`: {} deliveries unsettled at stop; the broker requeues them",
                            self.queue,
                            pending.len()
                        );
                    }
                    return Served::Stop;
                }
            }
            let (incoming, stop) = if stopping.is_none() {
                (deliveries, self.stop.receiver())
            } else {
                (&no_deliveries, &no_stop)
            };
            // Under load a delivery is already waiting: taken without the
            // select, which costs more than the rest of its hand-over.
            let waiting = if stopping.is_none() && !self.stop.is_stopped() {
                deliveries.try_recv().ok()
            } else {
                None
            };
            let message = if let Some(message) = waiting {
                Ok(message)
            } else {
                // Acks wait while more deliveries are already here, or
                // for at most ACK_LINGER, up to a batch, so that one
                // ack-multiple frame settles many (as a raw consumer
                // acking every N does).
                let holding = stopping.is_none() && held.hold(deliveries, settles);
                let settling = if holding { &no_settles } else { settles };
                // A stop's deadline, or when held acks must go out if no
                // delivery comes first.
                let timer = match (stopping, holding && deliveries.is_empty()) {
                    (Some(deadline), _) => crossbeam_channel::at(deadline),
                    (None, true) => held.deadline().map_or_else(never, crossbeam_channel::at),
                    (None, false) => never(),
                };
                select! {
                    recv(incoming) -> message => message,
                    recv(settling) -> settle => {
                        if let Ok(settle) = settle {
                            held.sent();
                            if let Err(e) = apply_batch(channel, pending, settle, settles, channel_number, &self.counters) {
                                return e;
                            }
                        }
                        continue;
                    }
                    recv(stop) -> _ => {
                        stopping = Some(Instant::now() + self.close_timeout);
                        *cancel = self.send_cancel(consumer);
                        while self.output_rx.try_recv().is_ok() {}
                        continue;
                    }
                    recv(timer) -> _ => continue,
                }
            };
            match message {
                Ok(ConsumerMessage::Delivery(mut raw)) => {
                    let tag = raw.delivery_tag();
                    let body = std::mem::take(&mut raw.body);
                    let redelivered = raw.redelivered;
                    let message = amqp::message_from(body, &raw.properties);
                    let offset = self
                        .stream_offset
                        .and(amqp::stream_offset_of(&raw.properties));
                    if let Some(offset) = offset {
                        let next = offset.saturating_add(1);
                        let resume = self.stream_resume.get().map_or(next, |n| n.max(next));
                        self.stream_resume.set(Some(resume));
                    }
                    self.counters.delivered.add(1);
                    if redelivered {
                        self.counters.redelivered.add(1);
                    }
                    let acker = RabbitAcker {
                        channel: channel_number,
                        tag,
                        route: route.clone(),
                    };
                    let delivery = T::wrap(
                        Delivery::new(message, Box::new(acker)).with_redelivered(redelivered),
                        &mut raw,
                    );
                    pending.insert(tag, raw, offset);
                    // A delivery not handed over is dropped, which
                    // requeues it through `settles`.
                    if let Some(handle) = &self.inline {
                        handle(delivery);
                    } else if let Err(TrySendError::Full(delivery)) = self.output.try_send(delivery)
                    {
                        // The readers are behind: wait for room, or a stop.
                        select! {
                            send(self.output, delivery) -> _ => {}
                            recv(self.stop.receiver()) -> _ => {
                                stopping = Some(Instant::now() + self.close_timeout);
                                *cancel = self.send_cancel(consumer);
                                while self.output_rx.try_recv().is_ok() {}
                            }
                        }
                    }
                    // The acks that came meanwhile (an inline handler's
                    // own, at least) go out now unless they may wait for
                    // more to join them.
                    if !held.hold(deliveries, settles) {
                        if let Ok(settle) = settles.try_recv() {
                            held.sent();
                            if let Err(e) = apply_batch(
                                channel,
                                pending,
                                settle,
                                settles,
                                channel_number,
                                &self.counters,
                            ) {
                                return e;
                            }
                        }
                    }
                }
                // Each of these is amiquip's last message to us.
                Ok(ConsumerMessage::ServerClosedChannel(e)) => {
                    *cancel = Cancel::Done;
                    return lost("consuming", e);
                }
                Ok(ConsumerMessage::ServerCancelled) => {
                    *cancel = Cancel::Done;
                    return Served::Refused(
                        "the broker cancelled the consumer (queue deleted?)".into(),
                    );
                }
                Ok(other) => {
                    *cancel = Cancel::Done;
                    return Served::Lost(format!("{other:?}"));
                }
                Err(_) => {
                    *cancel = Cancel::Done;
                    return Served::Lost("the consumer's channel ended".into());
                }
            }
        }
    }
}

impl<T: Wrap> Owner<T> {
    /// For a stream, after a consume ended: the next one starts at the
    /// oldest delivery not settled on it (its ack, if it comes, is stale
    /// now, so the broker must send it again), or else after the newest
    /// delivered. At least once, without reading the stream from its
    /// configured offset (say the first message) again.
    fn resume_at(&self, unsettled: &Unsettled) {
        if self.stream_offset.is_none() {
            return;
        }
        if let Some(oldest) = unsettled.oldest_offset() {
            self.stream_resume.set(Some(oldest));
        }
    }

    /// Sends the cancel of a stopping consumer; the broker's answer comes
    /// back on its receiver, read in [`Owner::finish_cancel`].
    fn send_cancel(&self, consumer: &amiquip::Consumer) -> Cancel {
        match consumer.cancel() {
            Ok(()) => Cancel::Sent { answered: true },
            Err(e) => {
                log::debug!("consumer of `{}`: cancel: {e}", self.queue);
                Cancel::Sent { answered: false }
            }
        }
    }
}

/// How many acks may wait for more deliveries before they go out as one
/// ack-multiple: a quarter of the prefetch, so the broker's window never
/// runs dry waiting for them, at most 64 (past that a frame saves nothing).
fn ack_batch(prefetch: u16) -> usize {
    match prefetch {
        0 => 64, // no prefetch limit
        p => (usize::from(p) / 4).clamp(1, 64),
    }
}

/// The longest an ack waits for more to go out with it when no delivery is
/// waiting: a consumer that keeps up with the broker would otherwise send
/// an ack per delivery, the slow mode it then stays in.
const ACK_LINGER: Duration = Duration::from_millis(1);

/// When the settles waiting in the owner's channel may wait longer: fewer
/// than `batch` of them, and either more deliveries already here to be
/// handled first, or less than [`ACK_LINGER`] since the oldest came.
struct HeldAcks {
    batch: usize,
    /// When the owner first held the settles waiting now.
    since: Option<Instant>,
}

impl HeldAcks {
    fn new(batch: usize) -> Self {
        HeldAcks { batch, since: None }
    }

    /// True while the settles waiting may wait.
    fn hold(&mut self, deliveries: &Receiver<ConsumerMessage>, settles: &Receiver<Settle>) -> bool {
        if settles.is_empty() {
            self.since = None;
            return false;
        }
        if settles.len() >= self.batch {
            return false;
        }
        let since = *self.since.get_or_insert_with(Instant::now);
        !deliveries.is_empty() || since.elapsed() < ACK_LINGER
    }

    /// When what is held must go out.
    fn deadline(&self) -> Option<Instant> {
        self.since.map(|since| since + ACK_LINGER)
    }

    /// The settles waiting are being sent.
    fn sent(&mut self) {
        self.since = None;
    }
}

/// How far the cancel of an amiquip consumer got.
#[derive(Clone, Copy)]
enum Cancel {
    NotSent,
    /// Sent; `answered` when the broker answered it (amiquip then sends
    /// `ClientCancelled` to the receiver).
    Sent {
        answered: bool,
    },
    /// amiquip sent its last message to the receiver: nothing more comes.
    Done,
}

/// Applies `first` and every settle already waiting. Single acks that
/// cover the oldest pending deliveries without a gap go out as one
/// ack-multiple: the same effect on the broker, one frame instead of many.
fn apply_batch(
    channel: &amiquip::Channel,
    pending: &mut Unsettled,
    first: Settle,
    settles: &Receiver<Settle>,
    channel_number: u64,
    counters: &ConsumerCounters,
) -> std::result::Result<(), Served> {
    let mut marked = 0u64;
    let mut settle = Some(first);
    while let Some(s) = settle.take().or_else(|| settles.try_recv().ok()) {
        match s.action {
            Action::Ack { multiple: false } if s.channel == channel_number => {
                // false: settled already (by an earlier ack-multiple).
                if pending.mark_acked(s.tag) {
                    marked += 1;
                }
            }
            _ => apply(channel, pending, s, channel_number, counters)?,
        }
        if marked >= 4096 {
            break;
        }
    }
    let mut run = 0;
    if let Some((raw, n)) = pending.take_acked_run() {
        raw.ack_multiple(channel)
            .map_err(|e| lost("settling deliveries", e))?;
        counters.acked.add(n);
        run = n;
    }
    // Acked behind one that is not: each on its own.
    if marked > run {
        for raw in pending.take_acked() {
            raw.ack(channel)
                .map_err(|e| lost("settling a delivery", e))?;
            counters.acked.add(1);
        }
    }
    Ok(())
}

fn apply(
    channel: &amiquip::Channel,
    pending: &mut Unsettled,
    settle: Settle,
    channel_number: u64,
    counters: &ConsumerCounters,
) -> std::result::Result<(), Served> {
    if settle.channel != channel_number {
        log::debug!("dropping a settle for a delivery of an older channel");
        return Ok(());
    }
    let (raw, n) = match settle.action {
        Action::Ack { multiple: true } => pending.remove_through(settle.tag),
        _ => (pending.remove(settle.tag), 1),
    };
    let Some(raw) = raw else {
        return Ok(()); // settled already (by an earlier ack-multiple)
    };
    let (result, counter) = match settle.action {
        Action::Ack { multiple: false } => (raw.ack(channel), &counters.acked),
        Action::Ack { multiple: true } => (raw.ack_multiple(channel), &counters.acked),
        Action::Nack { requeue } => (raw.nack(channel, requeue), &counters.nacked),
    };
    result.map_err(|e| lost("settling a delivery", e))?;
    counter.add(n);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_wait_for_at_most_a_quarter_of_the_prefetch() {
        // A prefetch of 1 or 2 leaves nothing to batch: the broker sends no
        // more until the ack went out.
        assert_eq!(ack_batch(1), 1);
        assert_eq!(ack_batch(2), 1);
        assert_eq!(ack_batch(40), 10);
        assert_eq!(ack_batch(256), 64);
        assert_eq!(ack_batch(u16::MAX), 64);
        assert_eq!(ack_batch(0), 64);
    }

    #[test]
    fn an_ack_timeout_is_told_from_other_channel_closes() {
        let timeout = "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. \
                       Timeout value used: 1800000 ms. This timeout value can be configured, \
                       see consumers doc guide to learn more";
        assert!(matches!(
            closed_by_broker("consuming", 406, timeout),
            Served::AckTimedOut(text) if text.contains("timed out")
        ));
        assert!(matches!(
            lost(
                "consuming",
                amiquip::Error::ServerClosedChannel {
                    channel_id: 1,
                    code: 406,
                    message: timeout.into()
                }
            ),
            Served::AckTimedOut(_)
        ));
        let inequivalent = "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q'";
        assert!(matches!(
            closed_by_broker("basic_consume", 406, inequivalent),
            Served::Refused(_)
        ));
        let missing = "NOT_FOUND - no queue 'q' in vhost '/'";
        assert!(matches!(
            closed_by_broker("basic_consume", 404, missing),
            Served::Refused(_)
        ));
    }
}
