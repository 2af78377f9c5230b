//! Named channels behind one [`Adapter`] trait.

use std::fmt;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::message::{Delivery, Message};

#[cfg(feature = "durable")]
mod durable;
#[cfg(feature = "rabbitmq")]
mod rabbitmq;
mod simple;
mod stats;

#[cfg(feature = "durable")]
pub use durable::{DurableAdapter, DurableConfig};
#[cfg(feature = "rabbitmq")]
pub use rabbitmq::RabbitAdapter;
pub use simple::SimpleAdapter;
pub use stats::{AdapterStats, ChannelStats};

/// Which ends of a channel a process uses.
///
/// With a broker between two processes, one process's `Input` channel is
/// another's `Output` channel of the same name. `Both` is for a process that
/// does both, and is what an in-process channel usually wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mode {
    /// This process writes into the channel: only `input()` is allowed.
    Input,
    /// This process reads from the channel: only `output()` is allowed.
    Output,
    /// This process writes and reads.
    Both,
}

impl Mode {
    /// True for `Input` and `Both`.
    pub fn allows_input(self) -> bool {
        matches!(self, Mode::Input | Mode::Both)
    }

    /// True for `Output` and `Both`.
    pub fn allows_output(self) -> bool {
        matches!(self, Mode::Output | Mode::Both)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Input => "Input",
            Mode::Output => "Output",
            Mode::Both => "Both",
        })
    }
}

/// What to create: a channel's name, mode, buffer size and instances, and
/// how its topic treats messages (priorities, dedupe, ack timeout, max
/// deliveries).
///
/// ```
/// use std::time::Duration;
/// use syncmq::{ChannelSpec, Mode};
///
/// let spec = ChannelSpec::new("orders", Mode::Both)
///     .with_buffer(256)
///     .with_instances(4);
/// assert!(spec.validate().is_ok());
/// assert!(ChannelSpec::new("", Mode::Both).validate().is_err());
///
/// // What a topic needs, on the adapters that have it:
/// let jobs = ChannelSpec::new("jobs", Mode::Both)
///     .with_priorities(3)
///     .with_dedupe(true)
///     .with_ack_timeout(Duration::from_secs(30))
///     .with_max_deliveries(5);
/// assert_eq!(jobs.ack_timeout(), Some(Duration::from_secs(30)));
/// ```
///
/// # Buffer size
///
/// `buffer` is the capacity of the crossbeam channels at each end (the
/// input and the output each hold up to `buffer` messages). When both are
/// full, `send` on the input blocks: that is the back-pressure.
/// **`buffer` 0 makes rendezvous channels**, as an unbuffered Go channel: a
/// `send` on the input waits until a forwarding instance takes the message,
/// and an instance waits until a consumer takes the delivery. Nothing then
/// sits in a buffer, at the cost of a hand-off per message.
///
/// # Instances
///
/// How many threads move messages from the input to the output (for
/// RabbitMQ, how many consumers). One keeps the order of the input; more
/// than one spreads the work and may reorder messages.
///
/// # Topic settings
///
/// One set of defaults for every adapter, each off: **1 priority level, no
/// dedupe, no ack timeout, no delivery limit**. Each setting is its own:
/// raising one never changes another (an ack timeout is never switched on
/// by asking for priorities). An adapter that cannot do what a setting asks
/// refuses the spec in `new_channel` with [`Error::InvalidArgument`] naming
/// the setting, rather than ignore it:
///
/// | setting | `SimpleAdapter` | `DurableAdapter` | `RabbitAdapter` |
/// |---|---|---|---|
/// | [`priorities`](Self::with_priorities) | 1 only (a FIFO) | the topic's levels | `x-max-priority` 9 on the queue when above 1 (refused for a quorum queue or stream of [`RabbitAdapter::new_channel_with`]) |
/// | [`dedupe`](Self::with_dedupe) | refused | by message key | refused |
/// | [`ack_timeout`](Self::with_ack_timeout) | refused (acks are no-ops) | redelivered after it | refused (the broker's own `consumer_timeout` applies) |
/// | [`max_deliveries`](Self::with_max_deliveries) | refused | dead-lettered after it | refused |
///
/// With `priorities` n, priority 0 is delivered first and priorities n − 1
/// and above share the last level in the durable queue. RabbitMQ maps
/// priority p to AMQP priority 9 − min(p, 9) and keeps all ten AMQP levels
/// apart, so there priorities from n − 1 to 9 are still ordered among
/// themselves. Every message keeps its own priority value either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSpec {
    name: String,
    mode: Mode,
    #[serde(default = "default_buffer")]
    buffer: usize,
    #[serde(default = "default_instances")]
    instances: usize,
    #[serde(default = "default_priorities")]
    priorities: u8,
    #[serde(default)]
    dedupe: bool,
    /// Milliseconds at the serde boundary; 0 (the default) is off.
    #[serde(default, rename = "ack_timeout_ms", with = "crate::millis::or_off")]
    ack_timeout: Option<Duration>,
    #[serde(default)]
    max_deliveries: u32,
}

fn default_buffer() -> usize {
    ChannelSpec::DEFAULT_BUFFER
}

fn default_instances() -> usize {
    1
}

fn default_priorities() -> u8 {
    1
}

impl ChannelSpec {
    /// The buffer when none is given.
    pub const DEFAULT_BUFFER: usize = 1024;
    /// The largest buffer accepted. Crossbeam allocates a bounded channel's
    /// slots up front, so a mistyped size would otherwise take all memory.
    pub const MAX_BUFFER: usize = 1 << 20;
    /// The most instances accepted; each one is a thread.
    pub const MAX_INSTANCES: usize = 256;
    /// The longest name accepted, in bytes: AMQP's limit for a queue name, so
    /// a name that works on one adapter works on all of them.
    pub const MAX_NAME_LEN: usize = 255;
    /// The most priority levels accepted: the ten AMQP priorities that
    /// RabbitMQ orders, so a spec means the same on every adapter that has
    /// priorities.
    pub const MAX_PRIORITIES: u8 = 10;

    /// A spec with [`DEFAULT_BUFFER`](Self::DEFAULT_BUFFER), one instance
    /// and the default [topic settings](Self#topic-settings), all off.
    pub fn new(name: impl Into<String>, mode: Mode) -> Self {
        ChannelSpec {
            name: name.into(),
            mode,
            buffer: Self::DEFAULT_BUFFER,
            instances: 1,
            priorities: 1,
            dedupe: false,
            ack_timeout: None,
            max_deliveries: 0,
        }
    }

    /// Sets the buffer size; see [Buffer size](Self#buffer-size).
    #[must_use]
    pub fn with_buffer(mut self, buffer: usize) -> Self {
        self.buffer = buffer;
        self
    }

    /// Sets how many instances move messages; see [Instances](Self#instances).
    #[must_use]
    pub fn with_instances(mut self, instances: usize) -> Self {
        self.instances = instances;
        self
    }

    /// Sets the number of priority levels, 1 (the default: one FIFO) to
    /// [`MAX_PRIORITIES`](Self::MAX_PRIORITIES); see
    /// [Topic settings](Self#topic-settings).
    #[must_use]
    pub fn with_priorities(mut self, priorities: u8) -> Self {
        self.priorities = priorities;
        self
    }

    /// Turns dedupe by [message key](crate::Message::with_key) on or off
    /// (off by default): a message whose key matches an undelivered one
    /// replaces it.
    #[must_use]
    pub fn with_dedupe(mut self, dedupe: bool) -> Self {
        self.dedupe = dedupe;
        self
    }

    /// Delivers again a delivery not settled within `timeout` (off by
    /// default: a delivery waits for its ack, nack or drop).
    /// `Duration::ZERO` turns it off again.
    #[must_use]
    pub fn with_ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = (!timeout.is_zero()).then_some(timeout);
        self
    }

    /// Dead-letters a message after `max` deliveries; 0 (the default)
    /// never.
    #[must_use]
    pub fn with_max_deliveries(mut self, max: u32) -> Self {
        self.max_deliveries = max;
        self
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The channel's mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The buffer size.
    pub fn buffer(&self) -> usize {
        self.buffer
    }

    /// The number of instances.
    pub fn instances(&self) -> usize {
        self.instances
    }

    /// The number of priority levels.
    pub fn priorities(&self) -> u8 {
        self.priorities
    }

    /// True when messages are deduped by key.
    pub fn dedupe(&self) -> bool {
        self.dedupe
    }

    /// The ack timeout, `None` when off.
    pub fn ack_timeout(&self) -> Option<Duration> {
        self.ack_timeout
    }

    /// The deliveries after which a message is dead-lettered; 0 never.
    pub fn max_deliveries(&self) -> u32 {
        self.max_deliveries
    }

    /// The error of an adapter that cannot do what `setting` asks: the spec
    /// is refused rather than the setting ignored.
    pub(crate) fn unsupported(&self, setting: &str, adapter: &str, why: &str) -> Error {
        Error::invalid(
            setting,
            format!("channel `{}`: the {adapter} {why}", self.name),
        )
    }

    /// Checks the spec. Adapters call this in `new_channel`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the field: an empty name, a name
    /// over [`MAX_NAME_LEN`](Self::MAX_NAME_LEN) bytes or with control
    /// characters, zero instances or more than
    /// [`MAX_INSTANCES`](Self::MAX_INSTANCES), a buffer over
    /// [`MAX_BUFFER`](Self::MAX_BUFFER), priorities outside 1 to
    /// [`MAX_PRIORITIES`](Self::MAX_PRIORITIES), an ack timeout under 1 ms.
    pub fn validate(&self) -> Result<()> {
        if self.name.is_empty() {
            return Err(Error::invalid("name", "a channel name must not be empty"));
        }
        if self.name.len() > Self::MAX_NAME_LEN {
            return Err(Error::invalid(
                "name",
                format!(
                    "a channel name is at most {} bytes, `{}...` has {}",
                    Self::MAX_NAME_LEN,
                    self.name.chars().take(20).collect::<String>(),
                    self.name.len()
                ),
            ));
        }
        if self.name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "name",
                format!("channel name {:?} contains control characters", self.name),
            ));
        }
        if self.instances == 0 {
            return Err(Error::invalid(
                "instances",
                format!("channel `{}` needs at least 1 instance", self.name),
            ));
        }
        if self.instances > Self::MAX_INSTANCES {
            return Err(Error::invalid(
                "instances",
                format!(
                    "channel `{}` asks for {} instances; the most is {}",
                    self.name,
                    self.instances,
                    Self::MAX_INSTANCES
                ),
            ));
        }
        if self.buffer > Self::MAX_BUFFER {
            return Err(Error::invalid(
                "buffer",
                format!(
                    "channel `{}` asks for a buffer of {}; the most is {}",
                    self.name,
                    self.buffer,
                    Self::MAX_BUFFER
                ),
            ));
        }
        if self.priorities == 0 || self.priorities > Self::MAX_PRIORITIES {
            return Err(Error::invalid(
                "priorities",
                format!(
                    "channel `{}` asks for {} priority levels; 1 to {} are allowed",
                    self.name,
                    self.priorities,
                    Self::MAX_PRIORITIES
                ),
            ));
        }
        // Stored in whole milliseconds, where 0 means "off": a shorter
        // timeout would silently turn the timeout off.
        if self
            .ack_timeout
            .is_some_and(|t| t < Duration::from_millis(1))
        {
            return Err(Error::invalid(
                "ack_timeout",
                format!(
                    "channel `{}`: an ack timeout is at least 1 ms (Duration::ZERO turns it off)",
                    self.name
                ),
            ));
        }
        Ok(())
    }
}

/// Named channels of messages in, deliveries out.
///
/// Every adapter keeps these rules, checked by one conformance suite
/// (`tests/conformance.rs`) that runs against each of them:
///
/// - `new_channel` validates the spec and refuses a name already in use
///   ([`Error::AlreadyExists`]).
/// - `input`, `output` and `mode` on a name never created are
///   [`Error::NotFound`]; `input` on an `Output` channel and `output`
///   on an `Input` channel are [`Error::WrongMode`].
/// - Every call after `close` is [`Error::Closed`]. `close` hands on what was
///   already sent (to the output, the broker or the disk, as the adapter
///   says), stops and joins the adapter's threads, and may be called more
///   than once. Dropping an adapter closes it.
/// - Sending on an input after `close` fails, and the `SendError` gives the
///   message back.
/// - A message's key, headers, priority and expiry reach the output as
///   sent; an expired message is dropped, not delivered. The
///   [topic settings](ChannelSpec#topic-settings) say what each adapter
///   does with them.
///
/// ```
/// use syncmq::{Adapter, ChannelSpec, Mode, SimpleAdapter};
///
/// # fn main() -> syncmq::Result<()> {
/// let adapter = SimpleAdapter::new();
/// adapter.new_channel(ChannelSpec::new("greetings", Mode::Both))?;
/// adapter.input("greetings")?.send("hello".into()).unwrap();
/// let delivery = adapter.output("greetings")?.recv().unwrap();
/// assert_eq!(delivery.body(), b"hello");
/// delivery.ack()?;
/// adapter.close()?;
/// # Ok(())
/// # }
/// ```
///
/// A program makes named channels, writes [`Message`]s into a channel's
/// input (a crossbeam [`Sender`]) and reads [`Delivery`] values from its output (a
/// crossbeam [`Receiver`]). What carries the messages in between is the
/// adapter's business, so the same program runs on any of them by swapping
/// one constructor:
///
/// 1. [`SimpleAdapter`]: crossbeam channels and forwarding threads, in
///    process; nothing survives a restart and acks are no-ops.
/// 2. [`RabbitAdapter`] (feature `rabbitmq`): each channel is a durable
///    RabbitMQ queue, published with confirms and consumed with acks.
/// 3. `DurableAdapter` (feature `durable`): each channel is a topic of the
///    embedded fjall queue engine; the default when no broker is wanted.
///
/// ormus' Go Channel module hands out raw Go channels; crossbeam
/// channels are the same idea with blocking, `select!` and timeouts that
/// work from any thread.
pub trait Adapter: Send + Sync {
    /// Creates the channel described by `spec`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a bad spec, [`Error::AlreadyExists`]
    /// for a name in use, [`Error::Closed`] after `close`, or the adapter's
    /// own errors (broker, storage).
    fn new_channel(&self, spec: ChannelSpec) -> Result<()>;

    /// A sender into the channel's input. Clone it freely. Plain bytes and
    /// strings convert: `input.send("resize".into())`; a [`Message`] with
    /// key, headers, priority or expiry goes as it is.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::WrongMode`] or [`Error::Closed`].
    fn input(&self, name: &str) -> Result<Sender<Message>>;

    /// A receiver of the channel's deliveries. Clones share the deliveries:
    /// each delivery goes to one of them.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::WrongMode`] or [`Error::Closed`].
    fn output(&self, name: &str) -> Result<Receiver<Delivery>>;

    /// The channel's mode.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] or [`Error::Closed`].
    fn mode(&self, name: &str) -> Result<Mode>;

    /// The counters of every channel: messages published, deliveries
    /// made, acked and nacked, and what waits in the channel's buffers.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after `close`.
    fn stats(&self) -> Result<AdapterStats>;

    /// Hands on what was sent, then stops and joins every thread of the
    /// adapter.
    ///
    /// # Errors
    ///
    /// Adapter-specific; an adapter that could not hand on everything in time
    /// says how much was left in an [`Error::Timeout`].
    fn close(&self) -> Result<()>;
}
