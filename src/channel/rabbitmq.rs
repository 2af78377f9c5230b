//! [`RabbitAdapter`]: channels as durable RabbitMQ queues over one
//! supervised connection.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::channel::stats::adapter_stats;
use crate::channel::{Adapter, AdapterStats, ChannelSpec, ChannelStats, Mode};
use crate::error::{Error, ObjectKind, Result};
use crate::message::{Delivery, Message};
use crate::metrics::{self, Count};
use crate::rabbitmq::{
    Connection, ConnectionConfig, ConsumerCounters, Declaration, Owner, Publisher, PublisherConfig,
    PublisherStats, QueueArguments, QueueType, StreamOffset,
};
use crate::thread::{self, join_all, lock, Stopper, Worker};
use crate::waiter::ConnectionWaiter;

/// Channels as durable RabbitMQ queues: each channel is a durable queue of
/// the same name, published with confirms and consumed with acks, over one
/// supervised connection.
///
/// ```text
/// input Sender ─▶ bounded(buffer) ─▶ Publisher thread (confirm window, retry buffer) ─▶ queue `name`
/// queue `name` ─▶ `instances` consumers (prefetch = buffer) ─▶ bounded(buffer) ─▶ output Receiver
/// ```
///
/// The publisher's own thread takes messages from every channel's input:
/// there is no thread per channel between the two. It takes from an input
/// only while its confirm window and retry buffer
/// ([`PublisherConfig::with_buffer`]) have room; otherwise messages wait in
/// the input, and once that is full `send` blocks. That is the
/// back-pressure, and nothing polls.
///
/// # Guarantees
///
/// At least once. A `send` returns when the message is in the input; what
/// the publisher took from an input stays in its retry buffer until the
/// broker confirmed it, through reconnects (duplicates are possible after
/// a reconnect). A message the broker refuses for good (unroutable: its
/// queue was deleted) is logged, and counted in the [`Error::Rejected`]
/// that `close` returns. A delivery that is neither acked nor nacked
/// (dropped, or outstanding when the connection died) is delivered again;
/// [`Delivery::is_redelivered`] says so. An ack for a delivery from before
/// a reconnect returns [`Error::StaleDelivery`] (its channel is gone; the
/// broker redelivers it), never a panic and never an ack of some
/// other delivery.
///
/// # What a message keeps
///
/// Key (as `message_id`), headers, priority and expiry travel as AMQP
/// properties and come back in the delivery (the routing key does not: the
/// channel's queue name routes every message); an expired message is dropped
/// by the broker. A spec with more than one priority level declares the
/// queue with `x-max-priority` 9 (a queue that exists without it, or the
/// other way round, is refused by the broker: [`Error::Refused`] from
/// `new_channel`). Dedupe, an ack timeout and a delivery limit are not
/// RabbitMQ queue features for a classic queue, so `new_channel` refuses a
/// spec asking for them.
///
/// # Queue types and arguments
///
/// [`new_channel_with`](Self::new_channel_with) declares the channel's
/// queue with [`QueueArguments`]: a quorum queue (replicated, for a
/// cluster), a length limit, a TTL. A quorum queue has no priorities on
/// RabbitMQ 3.10, so a spec with more than one priority level is refused
/// for one.
///
/// ```no_run
/// use syncmq::rabbitmq::{QueueArguments, QueueType};
/// use syncmq::{ChannelSpec, Mode, RabbitAdapter};
///
/// # fn main() -> syncmq::Result<()> {
/// let adapter = RabbitAdapter::connect("amqp://guest:guest@127.0.0.1:5672/%2f")?;
/// adapter.new_channel_with(
///     ChannelSpec::new("jobs", Mode::Both),
///     QueueArguments::new().with_type(QueueType::Quorum),
/// )?;
/// # Ok(())
/// # }
/// ```
///
/// # Close
///
/// [`close`](Adapter::close) drops the adapter's own senders, closes the
/// publisher (it takes what is still in the inputs and gets everything
/// confirmed within its close timeout, even when the connection only comes
/// up during the close), stops the consumers (deliveries not yet taken
/// from the output go back to the queue; those a reader holds get the
/// consumers' close timeout
/// ([`CONSUMER_CLOSE_TIMEOUT`](Self::CONSUMER_CLOSE_TIMEOUT)) to be settled) and closes the connection. What
/// could not be confirmed in time is counted in the [`Error::Timeout`] that
/// `close` returns; a message sent while `close` runs may or may not be
/// published. What is left in a queue is there for the next program that
/// opens the channel.
///
/// ```no_run
/// use syncmq::{Adapter, ChannelSpec, Mode, RabbitAdapter};
///
/// # fn main() -> syncmq::Result<()> {
/// let adapter = RabbitAdapter::connect("amqp://guest:guest@127.0.0.1:5672/%2f")?;
/// adapter.new_channel(ChannelSpec::new("jobs", Mode::Both))?;
/// adapter.input("jobs")?.send("job 1".into()).unwrap();
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
    mode: Mode,
    input: Option<Sender<Message>>,
    output: Option<Receiver<Delivery>>,
    stopper: Stopper,
    consumers: Vec<Worker<()>>,
    /// What the publisher took from the input.
    published: Arc<Count>,
    /// What the channel's consumers count, all instances together.
    consumed: Arc<ConsumerCounters>,
}

impl RabbitAdapter {
    /// How long a closing consumer waits for a reader to settle what it
    /// holds.
    pub const CONSUMER_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

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

    /// The counters of the publisher every channel's input goes through:
    /// what the broker confirmed, returned or refused, reconnects, and
    /// what is buffered until confirmed.
    pub fn publisher_stats(&self) -> PublisherStats {
        self.publisher.stats()
    }

    /// As [`new_channel`](Adapter::new_channel), with the channel's queue
    /// declared with `arguments` (say
    /// `QueueArguments::new().with_type(QueueType::Quorum)`). A spec with
    /// more than one priority level adds `x-max-priority` 9 unless the
    /// arguments set a maximum of their own.
    ///
    /// # Errors
    ///
    /// As `new_channel`, and [`Error::InvalidArgument`] naming the setting
    /// for arguments that cannot work ([`QueueArguments::validate`]) or
    /// priorities on a quorum queue or stream; [`Error::Refused`] (406)
    /// when the queue exists with other arguments.
    // By value, as `Adapter::new_channel` takes it.
    #[allow(clippy::needless_pass_by_value)]
    pub fn new_channel_with(&self, spec: ChannelSpec, arguments: QueueArguments) -> Result<()> {
        spec.validate()?;
        refuse_topic_settings(&spec)?;
        let mut arguments = arguments;
        if spec.priorities() > 1 && arguments.max_priority().is_none() {
            if matches!(
                arguments.queue_type(),
                Some(QueueType::Quorum | QueueType::Stream)
            ) {
                return Err(spec.unsupported(
                    "priorities",
                    "rabbitmq adapter",
                    "has no priorities on a quorum queue or stream (RabbitMQ 3.10)",
                ));
            }
            // Ours map priority p to AMQP 9 - min(p, 9): all ten levels.
            arguments = arguments.with_max_priority(9);
        }
        self.open_channel(&spec, arguments)
    }

    fn with_channel<T>(&self, name: &str, f: impl FnOnce(&Channel) -> Result<T>) -> Result<T> {
        let state = lock(&self.state);
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
        self.new_channel_with(spec, QueueArguments::new())
    }

    fn input(&self, name: &str) -> Result<Sender<Message>> {
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

    /// `buffered` counts what waits in the input for the publisher and on
    /// the output for a reader; the publisher's own buffer is in
    /// [`publisher_stats`](RabbitAdapter::publisher_stats).
    fn stats(&self) -> Result<AdapterStats> {
        let state = lock(&self.state);
        if state.closed {
            return Err(Error::closed("rabbitmq adapter"));
        }
        Ok(adapter_stats(state.channels.iter().map(|(name, ch)| {
            let consumed = ch.consumed.stats();
            let input = ch.input.as_ref().map_or(0, Sender::len);
            let output = ch.output.as_ref().map_or(0, Receiver::len);
            ChannelStats {
                name: name.clone(),
                published: ch.published.get(),
                delivered: consumed.delivered,
                acked: consumed.acked,
                nacked: consumed.nacked,
                buffered: (input + output) as u64,
            }
        })))
    }

    fn close(&self) -> Result<()> {
        let channels: Vec<Channel> = {
            let mut state = lock(&self.state);
            if state.closed {
                return Ok(());
            }
            state.closed = true;
            state.channels.drain().map(|(_, ch)| ch).collect()
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut channels = channels;
        // 1. Our senders go, so that an input ends once its users' do; the
        // consumers are told to stop.
        for ch in &mut channels {
            ch.input = None;
            ch.stopper.stop();
        }
        // 2. The publisher takes what is left in the inputs and gets it all
        // confirmed.
        let result = self.publisher.close();
        // 3. Consumers stop; undelivered messages stay in their queues.
        let consumers = channels.iter_mut().flat_map(|ch| {
            ch.output = None;
            ch.consumers.drain(..)
        });
        result
            .and(join_all(consumers, deadline))
            .and(self.connection.close())
    }
}

impl RabbitAdapter {
    /// Declares the channel's queue and starts its input and consumers.
    fn open_channel(&self, spec: &ChannelSpec, arguments: QueueArguments) -> Result<()> {
        let stream = arguments.queue_type() == Some(QueueType::Stream);
        let mut state = lock(&self.state);
        if state.closed {
            return Err(Error::closed("rabbitmq adapter"));
        }
        if state.channels.contains_key(spec.name()) {
            return Err(Error::already_exists(ObjectKind::Channel, spec.name()));
        }
        let name = spec.name().to_string();
        self.connection
            .declare(vec![Declaration::queue_with(name.clone(), arguments)])?;
        // A stream reads from the next message, the broker's default; its
        // deliveries turn a nack into an ack.
        let stream_offset = stream.then_some(StreamOffset::Next);
        let (stopper, stop) = thread::stop_signal();
        let mut channel = Channel {
            mode: spec.mode(),
            input: None,
            output: None,
            stopper,
            consumers: Vec::new(),
            published: Arc::new(Count::new(
                metrics::name::CHANNEL_PUBLISHED,
                &[("channel", &name)],
            )),
            consumed: Arc::new(ConsumerCounters::new(&name)),
        };
        if spec.mode().allows_input() {
            let (input, input_rx) = crossbeam_channel::bounded(spec.buffer());
            self.publisher
                .feed("", &name, input_rx, channel.published.clone())?;
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
                    close_timeout: Self::CONSUMER_CLOSE_TIMEOUT,
                    output: output.clone(),
                    output_rx: output_rx.clone(),
                    inline: None,
                    stop: stop.clone(),
                    counters: channel.consumed.clone(),
                    stream_offset,
                    stream_resume: Cell::new(None),
                };
                channel
                    .consumers
                    // On failure `channel` drops, and its stopper ends what
                    // started.
                    .push(thread::spawn(format!("rmq-out-{i}:{name}"), move || {
                        owner.run();
                    })?);
            }
            channel.output = Some(output_rx);
        }
        state.channels.insert(name, channel);
        Ok(())
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
            .finish_non_exhaustive()
    }
}

fn wrong_mode(name: &str, mode: Mode, operation: &'static str) -> Error {
    Error::WrongMode {
        channel: name.to_string(),
        mode: mode.to_string(),
        operation,
    }
}

/// Dedupe, an ack timeout and a delivery limit are not features of a
/// classic RabbitMQ queue: a spec asking for them is refused, not ignored.
fn refuse_topic_settings(spec: &ChannelSpec) -> Result<()> {
    const ADAPTER: &str = "rabbitmq adapter";
    if spec.dedupe() {
        return Err(spec.unsupported(
            "dedupe",
            ADAPTER,
            "does not dedupe (the key travels as `message_id` for consumers to dedupe)",
        ));
    }
    if spec.ack_timeout().is_some() {
        return Err(spec.unsupported(
            "ack_timeout",
            ADAPTER,
            "has no ack timeout per queue (the broker's `consumer_timeout` applies)",
        ));
    }
    if spec.max_deliveries() > 0 {
        return Err(spec.unsupported(
            "max_deliveries",
            ADAPTER,
            "has no delivery limit on a classic queue (a quorum queue has one: \
             new_channel_with and QueueArguments::with_delivery_limit)",
        ));
    }
    Ok(())
}
