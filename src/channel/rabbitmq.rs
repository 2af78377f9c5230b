//! The RabbitMQ adapter: each channel is a durable queue of the same name,
//! published with confirms and consumed with acks, over one supervised
//! connection.
//!
//! ```text
//! input Sender ─▶ bounded(buffer) ─▶ forwarder ─▶ Publisher (confirms, retry buffer) ─▶ queue `name`
//! queue `name` ─▶ `instances` consumers (prefetch = buffer) ─▶ bounded(buffer) ─▶ output Receiver
//! ```
//!
//! # Guarantees
//!
//! At least once. What the forwarder took from the input stays in the
//! publisher until the broker confirmed it, through reconnects. A delivery
//! that is neither acked nor nacked (dropped, or outstanding when the
//! connection died) is delivered again; [`Delivery::is_redelivered`] says so.
//! An ack for a delivery from before a reconnect returns
//! [`Error::StaleDelivery`] (its channel is gone; the broker redelivers it), never a
//! panic and never an ack of some other delivery.
//!
//! # Close
//!
//! [`close`](Adapter::close) stops the forwarders after they handed what is
//! in the inputs to the publisher (within 10 s, should its buffer be full),
//! flushes the publisher (every message confirmed, within its close
//! timeout, even when the connection only comes up during the close), stops
//! the consumers (deliveries not yet taken from the output go back to the
//! queue; those a reader holds get the consumer's grace period to be
//! settled) and closes the connection. What could not be confirmed in time
//! is counted in the [`Error::Timeout`] that `close` returns. What is left in
//! a queue is there for the next program that opens the channel. While the
//! broker is away, the inputs push back: a full input blocks `send`.
//!
//! [`Delivery::is_redelivered`]: crate::Delivery::is_redelivered

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};

use crate::channel::{Adapter, ChannelSpec, Mode};
use crate::error::{Error, ObjectKind, Result};
use crate::message::{Delivery, Message};
use crate::rabbitmq::consumer::{Counters, Owner};
use crate::rabbitmq::{
    Confirmation, Connection, ConnectionConfig, Declaration, Publisher, PublisherConfig,
};
use crate::thread::{self, StopToken, Stopper, Worker};
use crate::waiter::ConnectionWaiter;

/// Channels as durable RabbitMQ queues.
///
/// ```no_run
/// use syncmq::{Adapter, ChannelSpec, Mode, RabbitAdapter};
///
/// # fn main() -> syncmq::Result<()> {
/// let adapter = RabbitAdapter::connect("amqp://guest:guest@127.0.0.1:5672/%2f")?;
/// adapter.new_channel(ChannelSpec::new("jobs", Mode::Both))?;
/// adapter.input("jobs")?.send(b"job 1".to_vec()).unwrap();
/// let delivery = adapter.output("jobs")?.recv().unwrap();
/// delivery.ack()?;
/// adapter.close()?;
/// # Ok(())
/// # }
/// ```
pub struct RabbitAdapter {
    connection: Connection,
    publisher: Publisher,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    closed: bool,
    channels: HashMap<String, Channel>,
}

struct Channel {
    name: String,
    mode: Mode,
    input: Option<Sender<Vec<u8>>>,
    output: Option<Receiver<Delivery>>,
    stopper: Stopper,
    forwarder: Option<Worker<usize>>,
    consumers: Vec<Worker<()>>,
}

impl RabbitAdapter {
    /// How long a stopping consumer waits for a reader to settle what it
    /// holds.
    pub const CLOSE_GRACE: Duration = Duration::from_secs(5);

    /// An adapter on a supervised connection to `url`, with default
    /// settings.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a malformed URL. An unreachable broker
    /// is not an error: the connection keeps trying and messages wait.
    pub fn connect(url: &str) -> Result<Self> {
        Self::with_config(ConnectionConfig::new(url), PublisherConfig::default())
    }

    /// An adapter with its connection and publisher configured.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a bad configuration.
    pub fn with_config(connection: ConnectionConfig, publisher: PublisherConfig) -> Result<Self> {
        let connection = Connection::with_config(connection)?;
        let publisher = Publisher::new(&connection, publisher)?;
        Ok(RabbitAdapter {
            connection,
            publisher,
            state: Mutex::default(),
        })
    }

    /// The connection's waiter: block on it to wait for the broker.
    pub fn waiter(&self) -> Arc<ConnectionWaiter> {
        self.connection.waiter()
    }

    /// The supervised connection.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn with_channel<T>(&self, name: &str, f: impl FnOnce(&Channel) -> Result<T>) -> Result<T> {
        let state = self.lock();
        if state.closed {
            return Err(Error::closed("rabbitmq adapter"));
        }
        let channel = state
            .channels
            .get(name)
            .ok_or_else(|| Error::not_found(ObjectKind::Channel, name))?;
        f(channel)
    }
}

impl Adapter for RabbitAdapter {
    fn new_channel(&self, spec: ChannelSpec) -> Result<()> {
        spec.validate()?;
        let mut state = self.lock();
        if state.closed {
            return Err(Error::closed("rabbitmq adapter"));
        }
        if state.channels.contains_key(spec.name()) {
            return Err(Error::already_exists(ObjectKind::Channel, spec.name()));
        }
        let name = spec.name().to_string();
        self.connection.declare(vec![Declaration::queue(&name)])?;
        let (stopper, stop) = thread::stop_signal();
        let mut channel = Channel {
            name: name.clone(),
            mode: spec.mode(),
            input: None,
            output: None,
            stopper,
            forwarder: None,
            consumers: Vec::new(),
        };
        if spec.mode().allows_input() {
            let (input, input_rx) = crossbeam_channel::bounded(spec.buffer());
            let forwarder = Forwarder {
                queue: name.clone(),
                input: input_rx,
                publisher: self.publisher.clone(),
                stop: stop.clone(),
                window: spec.buffer().clamp(1, 1024),
            };
            // On failure `channel` drops, and its stopper ends what started.
            channel.forwarder = Some(thread::spawn(format!("rmq-in:{name}"), move || {
                forwarder.run()
            })?);
            channel.input = Some(input);
        }
        if spec.mode().allows_output() {
            let (output, output_rx) = crossbeam_channel::bounded(spec.buffer());
            let prefetch = u16::try_from(spec.buffer().max(1)).unwrap_or(u16::MAX);
            for i in 0..spec.instances() {
                let owner = Owner {
                    shared: self.connection.shared(),
                    queue: name.clone(),
                    prefetch,
                    grace: Self::CLOSE_GRACE,
                    output: output.clone(),
                    output_rx: output_rx.clone(),
                    inline: None,
                    stop: stop.clone(),
                    counters: Arc::new(Counters::default()),
                };
                channel
                    .consumers
                    .push(thread::spawn(format!("rmq-out-{i}:{name}"), move || {
                        owner.run()
                    })?);
            }
            channel.output = Some(output_rx);
        }
        state.channels.insert(name, channel);
        Ok(())
    }

    fn input(&self, name: &str) -> Result<Sender<Vec<u8>>> {
        self.with_channel(name, |ch| {
            ch.input
                .clone()
                .ok_or_else(|| wrong_mode(name, ch.mode, "input"))
        })
    }

    fn output(&self, name: &str) -> Result<Receiver<Delivery>> {
        self.with_channel(name, |ch| {
            ch.output
                .clone()
                .ok_or_else(|| wrong_mode(name, ch.mode, "output"))
        })
    }

    fn mode(&self, name: &str) -> Result<Mode> {
        self.with_channel(name, |ch| Ok(ch.mode))
    }

    fn close(&self) -> Result<()> {
        let channels: Vec<Channel> = {
            let mut state = self.lock();
            if state.closed {
                return Ok(());
            }
            state.closed = true;
            state.channels.drain().map(|(_, ch)| ch).collect()
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut result = Ok(());
        let mut channels = channels;
        // 1. Forwarders hand what is in the inputs to the publisher.
        for ch in &mut channels {
            ch.input = None;
            ch.stopper.stop();
        }
        for ch in &mut channels {
            if let Some(forwarder) = ch.forwarder.take() {
                result = result.and(match forwarder.join_deadline(deadline) {
                    Ok(0) => Ok(()),
                    Ok(dropped) => Err(Error::timeout(
                        format!(
                            "{dropped} messages of channel `{}` to reach the publisher",
                            ch.name
                        ),
                        Forwarder::CLOSE_WAIT,
                    )),
                    Err(e) => Err(e),
                });
            }
        }
        // 2. The publisher gets it all confirmed.
        result = result.and(self.publisher.close());
        // 3. Consumers stop; undelivered messages stay in their queues.
        for ch in &mut channels {
            ch.output = None;
            for consumer in ch.consumers.drain(..) {
                result = result.and(consumer.join_deadline(deadline));
            }
        }
        result.and(self.connection.close())
    }
}

impl Drop for RabbitAdapter {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::error!("closing the rabbitmq adapter on drop: {e}");
        }
    }
}

impl std::fmt::Debug for RabbitAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitAdapter")
            .field("connection", &self.connection)
            .finish()
    }
}

fn wrong_mode(name: &str, mode: Mode, operation: &'static str) -> Error {
    Error::WrongMode {
        channel: name.to_string(),
        mode: mode.to_string(),
        operation,
    }
}

/// Moves bytes from a channel's input to the publisher, keeping up to
/// `window` confirmations outstanding.
struct Forwarder {
    queue: String,
    input: Receiver<Vec<u8>>,
    publisher: Publisher,
    stop: StopToken,
    window: usize,
}

impl Forwarder {
    /// How long a closing forwarder keeps trying to hand the rest of its
    /// input to the publisher.
    const CLOSE_WAIT: Duration = Duration::from_secs(10);

    /// Forwards until stopped, then hands on what is left in the input.
    /// Returns how many messages it could not hand on before its deadline.
    fn run(self) -> usize {
        let mut pending: VecDeque<Confirmation> = VecDeque::new();
        loop {
            let bytes = select! {
                recv(self.input) -> bytes => match bytes { Ok(b) => b, Err(_) => break },
                recv(self.stop.receiver()) -> _ => break,
            };
            self.forward(bytes, &mut pending, None);
        }
        // Closing: what is still in the input goes out too, within a
        // deadline (a broker that stays away cannot hold close for ever).
        let deadline = Instant::now() + Self::CLOSE_WAIT;
        let mut dropped = 0;
        while let Ok(bytes) = self.input.try_recv() {
            if !self.forward(bytes, &mut pending, Some(deadline)) {
                dropped += 1;
            }
        }
        // The confirms themselves are the publisher's business now: its
        // close waits for them (within its own close timeout).
        drop(pending);
        if dropped > 0 {
            log::error!(
                "channel `{}`: {dropped} messages could not be handed to the publisher before close",
                self.queue
            );
        }
        dropped
    }

    /// Hands `bytes` to the publisher, waiting while its buffer is full.
    /// False when it could not (a permanent error, or the deadline).
    fn forward(
        &self,
        bytes: Vec<u8>,
        pending: &mut VecDeque<Confirmation>,
        deadline: Option<Instant>,
    ) -> bool {
        let mut message = Message::new(bytes);
        let mut deadline = deadline;
        let handed = loop {
            match self.publisher.try_send("", &self.queue, message) {
                Ok(confirmation) => {
                    pending.push_back(confirmation);
                    break true;
                }
                Err((e, back)) if e.is_transient() => {
                    if deadline.is_none() && self.stop.is_stopped() {
                        // Told to close while waiting for room.
                        deadline = Some(Instant::now() + Self::CLOSE_WAIT);
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        log::error!("channel `{}`: {e}", self.queue);
                        break false;
                    }
                    // A full buffer (or a blocked broker): wait for our own
                    // oldest confirm, or a moment when other channels fill
                    // it, and try again with the same message.
                    log::debug!("channel `{}`: retrying a send: {e}", self.queue);
                    match pending.pop_front() {
                        Some(oldest) => self.check(oldest, deadline, pending),
                        None => std::thread::sleep(Duration::from_millis(20)),
                    }
                    message = back;
                }
                Err((e, _)) => {
                    log::error!(
                        "channel `{}`: a message could not be published: {e}",
                        self.queue
                    );
                    break false;
                }
            }
        };
        while pending.len() > self.window && !(deadline.is_none() && self.stop.is_stopped()) {
            if let Some(oldest) = pending.pop_front() {
                self.check(oldest, deadline, pending);
            }
        }
        handed
    }

    /// Waits for one confirm: until it comes or the forwarder is told to
    /// stop (the confirmation then goes back to `pending` for the closing
    /// phase), or when closing until `deadline`. A message not confirmed
    /// yet stays in the publisher's buffer either way.
    fn check(
        &self,
        confirmation: Confirmation,
        deadline: Option<Instant>,
        pending: &mut VecDeque<Confirmation>,
    ) {
        let result = match deadline {
            Some(d) => confirmation.wait_timeout(d.saturating_duration_since(Instant::now())),
            None => match confirmation.wait_or_stop(&self.stop) {
                Ok(result) => result,
                Err(unconfirmed) => {
                    pending.push_front(unconfirmed);
                    return;
                }
            },
        };
        if let Err(e) = result {
            log::warn!("channel `{}`: publish not confirmed: {e}", self.queue);
        }
    }
}
