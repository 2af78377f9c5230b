//! [`SimpleAdapter`]: in-process channels on crossbeam and forwarding
//! threads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::yield_now;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{
    select, Receiver, Select, SendError, SendTimeoutError, Sender, TryRecvError, TrySendError,
};

use crate::channel::stats::{adapter_stats, ChannelCounters};
use crate::channel::{Adapter, AdapterStats, ChannelSpec, Mode};
use crate::error::{Error, ObjectKind, Result};
use crate::message::{Delivery, Message};
use crate::thread::{self, join_all, lock, StopToken, Stopper, Worker};

/// In-process channels on crossbeam: forwarding threads, all in process.
/// Each channel is
///
/// ```text
/// input Sender ─▶ bounded(buffer) ─▶ `instances` forwarding threads ─▶ bounded(buffer) ─▶ output Receiver
/// ```
///
/// as in ormus' Go Channel module, where data pushed to the input is written to the
/// output. One instance keeps the input's order; several may reorder.
///
/// The instances take turns: one at a time moves a run of up to 1024
/// messages and then lets go of the channel, and whichever instance takes
/// the turn next moves the next run. Moving a
/// message is two channel operations and no work of its own, so nothing is
/// gained by several threads moving at once; and each end of a crossbeam
/// channel wakes one waiting thread per operation, so several forwarders
/// waiting on the same end were each woken, in turn, once per message.
///
/// A forwarder that finds its input empty or its output full yields its CPU
/// a few times, trying again after each, before it blocks. A blocked thread
/// is registered with the channel, and the thread at the other end then
/// hands it messages one at a time, waking it for each: with more threads
/// than CPUs that was a context switch every few messages. Yielding instead
/// lets the producer or the consumer run on and fill or empty the channel.
///
/// # Guarantees
///
/// None beyond the process: a delivery's `ack` and `nack` are no-ops that
/// always succeed, a dropped delivery is gone, and nothing survives a
/// restart. Use the durable adapter for more.
///
/// # What a message keeps
///
/// Everything: the [`Message`] sent is the one delivered, with its key,
/// headers, priority and expiry. A message whose expiry has passed when a
/// forwarding thread takes it is dropped, not delivered. The channel is one
/// FIFO, so of the [topic settings](crate::ChannelSpec#topic-settings) it
/// takes only the defaults: more than one priority level, dedupe, an ack
/// timeout or a delivery limit are refused by `new_channel`, since acks are
/// no-ops and nothing is ever delivered twice.
///
/// # Close
///
/// [`close`](crate::Adapter::close) first drops the adapter's own handles,
/// then tells the forwarding threads to stop. Each one hands what is still in
/// the input on to the output, waiting for readers up to the close timeout,
/// and ends. `close` joins them all and then the input's receiving side is
/// gone, so a later `send` fails and gives the message back. A consumer
/// iterating the output sees every delivery that was handed on and then the
/// end of the channel. Messages still sent *while* `close` runs may or may
/// not be handed on; `close` says how many it had to drop.
///
/// ```
/// use syncmq::{Adapter, ChannelSpec, Mode, SimpleAdapter};
///
/// # fn main() -> syncmq::Result<()> {
/// let adapter = SimpleAdapter::new();
/// adapter.new_channel(ChannelSpec::new("jobs", Mode::Both).with_instances(2))?;
/// let input = adapter.input("jobs")?;
/// let output = adapter.output("jobs")?;
/// for i in 0..10u8 {
///     input.send(vec![i].into()).unwrap();
/// }
/// adapter.close()?; // hands the ten messages on, then ends the output
/// assert_eq!(output.iter().count(), 10);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct SimpleAdapter {
    state: Mutex<State>,
    close_timeout: Duration,
}

#[derive(Debug, Default)]
struct State {
    closed: bool,
    channels: HashMap<String, Channel>,
}

#[derive(Debug)]
struct Channel {
    mode: Mode,
    input: Sender<Message>,
    /// Kept until close has joined the forwarders, so that what they left
    /// in the input can be counted.
    input_receiver: Receiver<Message>,
    output: Receiver<Delivery>,
    stopper: Stopper,
    forwarders: Vec<Worker<()>>,
    left: Arc<Leftover>,
    counters: Arc<ChannelCounters>,
}

/// What the forwarding threads could not hand on when they stopped.
#[derive(Debug, Default)]
struct Leftover {
    /// Readers existed but did not take these before the deadline.
    timed_out: AtomicUsize,
    /// No reader was left to take these.
    unread: AtomicUsize,
}

impl SimpleAdapter {
    /// How long [`close`](crate::Adapter::close) waits, by default, for
    /// readers to take what is left.
    pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

    /// An adapter with no channels and the default close timeout.
    pub fn new() -> Self {
        Self::with_close_timeout(Self::DEFAULT_CLOSE_TIMEOUT)
    }

    /// An adapter whose `close` waits at most `timeout` for readers to take
    /// what is left in each channel.
    pub fn with_close_timeout(timeout: Duration) -> Self {
        SimpleAdapter {
            state: Mutex::default(),
            close_timeout: timeout,
        }
    }

    /// Runs `f` on the named channel, or says why it cannot.
    fn with_channel<T>(&self, name: &str, f: impl FnOnce(&Channel) -> Result<T>) -> Result<T> {
        let state = lock(&self.state);
        if state.closed {
            return Err(Error::closed("simple adapter"));
        }
        let channel = state
            .channels
            .get(name)
            .ok_or_else(|| Error::not_found(ObjectKind::Channel, name))?;
        f(channel)
    }
}

impl Default for SimpleAdapter {
    fn default() -> Self {
        Self::new()
    }
}

impl Adapter for SimpleAdapter {
    fn new_channel(&self, spec: ChannelSpec) -> Result<()> {
        spec.validate()?;
        refuse_topic_settings(&spec)?;
        let mut state = lock(&self.state);
        if state.closed {
            return Err(Error::closed("simple adapter"));
        }
        if state.channels.contains_key(spec.name()) {
            return Err(Error::already_exists(ObjectKind::Channel, spec.name()));
        }
        let (input, input_receiver) = crossbeam_channel::bounded(spec.buffer());
        let (output_sender, output) = crossbeam_channel::bounded(spec.buffer());
        let (stopper, stop) = thread::stop_signal();
        let left = Arc::new(Leftover::default());
        let counters = Arc::new(ChannelCounters::new(spec.name()));
        let turn = Arc::new(Mutex::new(()));
        let mut forwarders = Vec::with_capacity(spec.instances());
        for i in 0..spec.instances() {
            let (input, output, stop, left, turn, counters) = (
                input_receiver.clone(),
                output_sender.clone(),
                stop.clone(),
                left.clone(),
                turn.clone(),
                counters.clone(),
            );
            let close_timeout = self.close_timeout;
            // If the OS refuses a thread, the `?` drops `stopper`, which
            // stops the forwarders started so far.
            forwarders.push(thread::spawn(
                format!("simple-{i}:{}", spec.name()),
                move || {
                    forward(
                        &input,
                        &output,
                        &turn,
                        &stop,
                        close_timeout,
                        &left,
                        &counters,
                    );
                },
            )?);
        }
        state.channels.insert(
            spec.name().to_string(),
            Channel {
                mode: spec.mode(),
                input,
                input_receiver,
                output,
                stopper,
                forwarders,
                left,
                counters,
            },
        );
        Ok(())
    }

    fn input(&self, name: &str) -> Result<Sender<Message>> {
        self.with_channel(name, |ch| {
            if !ch.mode.allows_input() {
                return Err(wrong_mode(name, ch.mode, "input"));
            }
            Ok(ch.input.clone())
        })
    }

    fn output(&self, name: &str) -> Result<Receiver<Delivery>> {
        self.with_channel(name, |ch| {
            if !ch.mode.allows_output() {
                return Err(wrong_mode(name, ch.mode, "output"));
            }
            Ok(ch.output.clone())
        })
    }

    fn mode(&self, name: &str) -> Result<Mode> {
        self.with_channel(name, |ch| Ok(ch.mode))
    }

    fn stats(&self) -> Result<AdapterStats> {
        let state = lock(&self.state);
        if state.closed {
            return Err(Error::closed("simple adapter"));
        }
        Ok(adapter_stats(state.channels.iter().map(|(name, ch)| {
            let buffered = ch.input_receiver.len() + ch.output.len();
            ch.counters.stats(name, buffered)
        })))
    }

    fn close(&self) -> Result<()> {
        let channels = {
            let mut state = lock(&self.state);
            state.closed = true;
            std::mem::take(&mut state.channels)
        };
        // Tell every channel first, so they all drain in parallel.
        let mut stopping = Vec::with_capacity(channels.len());
        let mut forwarders = Vec::new();
        for (name, ch) in channels {
            let Channel {
                input,
                input_receiver,
                output,
                mut stopper,
                forwarders: these,
                left,
                ..
            } = ch;
            // Without our own receiver, a channel whose readers are all
            // gone fails fast instead of waiting out the deadline.
            drop((input, output));
            stopper.stop();
            forwarders.extend(these);
            stopping.push((name, input_receiver, left));
        }
        // The forwarders give up at the close timeout; the extra second only
        // covers the scheduling of their last steps.
        let deadline = Instant::now() + self.close_timeout + Duration::from_secs(1);
        let mut result = join_all(forwarders, deadline);
        for (name, input_receiver, left) in stopping {
            let (mut timed_out, mut unread) = (
                left.timed_out.load(Ordering::SeqCst),
                left.unread.load(Ordering::SeqCst),
            );
            // What no forwarder took goes where the timed-out ones went.
            let never_taken = input_receiver.len();
            if timed_out > 0 {
                timed_out += never_taken;
            } else {
                unread += never_taken;
            }
            if unread > 0 {
                log::warn!(
                    "simple adapter: channel `{name}` dropped {unread} messages at close: no output receiver was left to take them"
                );
            }
            if timed_out > 0 {
                result = result.and(Err(Error::timeout(
                    format!("the readers of channel `{name}` to take {timed_out} more messages"),
                    self.close_timeout,
                )));
            }
        }
        result
    }
}

impl Drop for SimpleAdapter {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::warn!("simple adapter: close on drop: {e}");
        }
    }
}

/// A FIFO of deliveries whose acks are no-ops can do the defaults only.
fn refuse_topic_settings(spec: &ChannelSpec) -> Result<()> {
    const ADAPTER: &str = "simple adapter";
    if spec.priorities() > 1 {
        return Err(spec.unsupported(
            "priorities",
            ADAPTER,
            "has one FIFO per channel, no priority levels",
        ));
    }
    if spec.dedupe() {
        return Err(spec.unsupported("dedupe", ADAPTER, "does not dedupe"));
    }
    if spec.ack_timeout().is_some() {
        return Err(spec.unsupported(
            "ack_timeout",
            ADAPTER,
            "never delivers twice (acks are no-ops)",
        ));
    }
    if spec.max_deliveries() > 0 {
        return Err(spec.unsupported(
            "max_deliveries",
            ADAPTER,
            "never delivers twice (acks are no-ops)",
        ));
    }
    Ok(())
}

fn wrong_mode(name: &str, mode: Mode, operation: &'static str) -> Error {
    Error::WrongMode {
        channel: name.to_string(),
        mode: mode.to_string(),
        operation,
    }
}

/// How many messages a forwarding instance moves in one turn before it
/// lets go of the turn. Long enough that the hand-over (a lock and, with
/// instances waiting, a wake-up) costs little per message.
const TURN: usize = 1024;

/// The body of a forwarding thread: input to output until told to stop,
/// then a drain of what is left.
///
/// The thread moves messages only while it holds its channel's `turn`, so
/// that one instance at a time waits on the input and on the output (see
/// [`SimpleAdapter`]); the others wait for the turn. The fast path is a
/// `try_recv` and a `try_send`; only when a channel is empty or full does
/// the thread yield a few times and then block, in a select that the stop
/// signal can interrupt. That keeps the per-message cost close to a bare
/// channel hop.
fn forward(
    input: &Receiver<Message>,
    output: &Sender<Delivery>,
    turn: &Mutex<()>,
    stop: &StopToken,
    close_timeout: Duration,
    left: &Leftover,
    counters: &ChannelCounters,
) {
    let pending = loop {
        let _turn = lock(turn);
        match forward_turn(input, output, stop, counters) {
            Ok(()) => {}
            Err(pending) => break pending,
        }
    };
    let deadline = Instant::now() + close_timeout;
    drain(pending, input, output, deadline, left, counters);
}

/// Moves up to [`TURN`] messages; `Err` when told to stop or when either
/// end is gone, with the delivery it could not hand on, if any.
fn forward_turn(
    input: &Receiver<Message>,
    output: &Sender<Delivery>,
    stop: &StopToken,
    counters: &ChannelCounters,
) -> Result<(), Option<Delivery>> {
    for _ in 0..TURN {
        if stop.is_stopped() {
            return Err(None);
        }
        let message = recv_or_stop(input, stop).ok_or(None)?;
        counters.published.add(1);
        if let Some(delivery) = deliverable(message) {
            // Counted before the hand-over, so that a reader that has the
            // delivery finds it counted; one the stop catches here goes to
            // the drain counted already.
            counters.delivered.add(1);
            send_or_stop(output, delivery, stop).map_err(Some)?;
        }
    }
    Ok(())
}

/// The delivery of `message`, or `None` when it expired: it is dropped, not
/// delivered, as every adapter does. The clock is read only for messages
/// that have an expiry.
fn deliverable(message: Message) -> Option<Delivery> {
    if message.expires_at().is_some() && message.is_expired_at(SystemTime::now()) {
        log::debug!("simple adapter: dropped an expired message");
        return None;
    }
    Some(Delivery::without_acker(message))
}

/// How many times a forwarder yields its CPU and tries again before it
/// blocks (see [`SimpleAdapter`]). A few suffice for the thread at the
/// other end to run; on an idle channel they cost microseconds.
const YIELDS_BEFORE_BLOCKING: usize = 8;

/// Calls `attempt` with `value` until it returns `Ok`, yielding the CPU
/// between calls, at most [`YIELDS_BEFORE_BLOCKING`] times; a failed
/// `attempt` gives `value` back for the next one, and the last one's is
/// returned as `Err` for the caller to block with.
fn try_yielding<V, T>(mut value: V, mut attempt: impl FnMut(V) -> Result<T, V>) -> Result<T, V> {
    for _ in 0..YIELDS_BEFORE_BLOCKING {
        value = match attempt(value) {
            Ok(done) => return Ok(done),
            Err(value) => value,
        };
        yield_now();
    }
    attempt(value)
}

/// The next message of the input (`Some`), or `None` when the owner says
/// stop or every sender is gone.
fn recv_or_stop(input: &Receiver<Message>, stop: &StopToken) -> Option<Message> {
    let tried = try_yielding((), |()| match input.try_recv() {
        Ok(message) => Ok(Some(message)),
        Err(TryRecvError::Empty) => Err(()),
        Err(TryRecvError::Disconnected) => Ok(None),
    });
    if let Ok(message) = tried {
        return message;
    }
    select! {
        recv(input) -> message => message.ok(),
        recv(stop.receiver()) -> _ => None,
    }
}

/// Hands `delivery` to the output, blocking while it is full; gives it back
/// when the owner says stop first or the output is gone.
fn send_or_stop(
    output: &Sender<Delivery>,
    delivery: Delivery,
    stop: &StopToken,
) -> Result<(), Delivery> {
    let tried = try_yielding(delivery, |d| match output.try_send(d) {
        Ok(()) => Ok(Ok(())),
        Err(TrySendError::Full(d)) => Err(d),
        Err(TrySendError::Disconnected(d)) => Ok(Err(d)),
    });
    let delivery = match tried {
        Ok(sent) => return sent,
        Err(full) => full,
    };
    let mut select = Select::new();
    let send_index = select.send(output);
    select.recv(stop.receiver());
    let operation = select.select();
    if operation.index() == send_index {
        operation
            .send(output, delivery)
            .map_err(SendError::into_inner)
    } else {
        // Completing the operation is required; it reports the disconnect.
        let _ = operation.recv(stop.receiver());
        Err(delivery)
    }
}

/// Hands `pending` and then the rest of the input on, until the input is
/// empty, the deadline passes or no reader is left; counts in `left` what
/// it could not hand on.
fn drain(
    mut pending: Option<Delivery>,
    input: &Receiver<Message>,
    output: &Sender<Delivery>,
    deadline: Instant,
    left: &Leftover,
    counters: &ChannelCounters,
) {
    loop {
        // `pending` was counted as delivered by `forward_turn`; a message
        // taken here is counted before its hand-over, as there.
        let delivery = match pending.take() {
            Some(d) => d,
            None => match input.try_recv() {
                Ok(message) => {
                    counters.published.add(1);
                    match deliverable(message) {
                        Some(delivery) => {
                            counters.delivered.add(1);
                            delivery
                        }
                        None => continue,
                    }
                }
                Err(_) => return,
            },
        };
        match output.send_deadline(delivery, deadline) {
            Ok(()) => {}
            Err(SendTimeoutError::Timeout(_)) => {
                left.timed_out.fetch_add(1, Ordering::SeqCst);
                return;
            }
            Err(SendTimeoutError::Disconnected(_)) => {
                left.unread.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejected_spec_leaves_the_name_free() {
        let adapter = SimpleAdapter::new();
        let bad = ChannelSpec::new("x", Mode::Both).with_instances(0);
        assert!(matches!(
            adapter.new_channel(bad),
            Err(Error::InvalidArgument { .. })
        ));
        adapter
            .new_channel(ChannelSpec::new("x", Mode::Both))
            .unwrap();
    }
}
