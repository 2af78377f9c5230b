//! [`DurableAdapter`]: channels as topics of the embedded queue engine, and
//! its [`DurableConfig`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::channel::stats::{adapter_stats, ChannelCounters};
use crate::channel::{Adapter, AdapterStats, ChannelSpec, Mode};
use crate::error::{Error, ObjectKind, Result};
use crate::message::{Acker, Delivery, Message};
use crate::queue::{
    Clock, ConfiguredClock, Durability, EntryId, Interrupter, Queue, QueueConfig, Subscriber,
    TopicConfig,
};
use crate::thread::{self, join_all, lock, StopToken, Stopper, Worker};
use crossbeam_channel::{select, Receiver, Sender};

/// Where the adapter keeps its channel specs, in the queue's metadata.
const CHANNELS_META: &str = "durable-adapter/channels";

/// The most messages a publishing thread puts in one batch.
const MAX_BATCH: usize = 512;

/// Settings of a [`DurableAdapter`]. What a channel's topic does
/// (priorities, dedupe, ack timeout, delivery limit) is in its
/// [`ChannelSpec`].
///
/// ```
/// use std::time::Duration;
/// use syncmq::DurableConfig;
///
/// let config = DurableConfig::new().with_close_timeout(Duration::from_secs(2));
/// assert!(config.validate().is_ok());
/// assert_eq!(config.close_timeout(), Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurableConfig {
    durability: Durability,
    close_timeout: Duration,
    clock: ConfiguredClock,
}

impl Default for DurableConfig {
    fn default() -> Self {
        DurableConfig {
            durability: Durability::default(),
            close_timeout: Duration::from_secs(10),
            clock: ConfiguredClock::default(),
        }
    }
}

impl DurableConfig {
    /// Durable publishes, 10 s to close.
    pub fn new() -> Self {
        DurableConfig::default()
    }

    /// Sets when a publish is done; [`Durability::Durable`] (fsync), the
    /// default, is the recommended setting.
    #[must_use]
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// How long [`close`](Adapter::close) waits for the channels' threads
    /// to store what is in the inputs and stop. Default 10 s.
    #[must_use]
    pub fn with_close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets the clock the channels' ack timeouts follow, as
    /// [`QueueConfig::with_clock`]: a test passes a
    /// [`ManualClock`](crate::queue::ManualClock) and moves it instead of
    /// sleeping. The default is the system clock.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = ConfiguredClock::new(clock);
        self
    }

    /// When a publish is done.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// How long `close` waits for the channels' threads.
    pub fn close_timeout(&self) -> Duration {
        self.close_timeout
    }

    /// Checks the settings. [`DurableAdapter::open_with`] calls this.
    ///
    /// # Errors
    ///
    /// None today: every durability and close timeout is valid. Kept so
    /// that a setting added later is checked where the others are.
    pub fn validate(&self) -> Result<()> {
        Ok(())
    }
}

/// Channels on the embedded durable queue: each channel is a topic of the
/// queue engine ([`crate::queue`]) with one subscriber,
/// [`OUTPUT_SUBSCRIBER`](Self::OUTPUT_SUBSCRIBER), on fjall in a directory
/// of your choice. The default adapter when no broker is wanted.
///
/// ```text
/// input Sender ─▶ bounded(buffer) ─▶ `instances` publishing threads ─▶ queue (fsync, group commit)
/// queue ─▶ `instances` consuming threads ─▶ bounded(buffer) ─▶ output Receiver
/// ```
///
/// The publishing threads take whatever is waiting in the input and publish
/// it as one batch, so a busy channel pays one fsync for many messages.
///
/// # Guarantees
///
/// - A message is durable once a publishing thread has published it, which
///   `close` waits for: everything sent before `close` survives a restart.
///   (A `send` returns when the message is in the input buffer; for "`Ok`
///   means on disk" call [`Queue::publish`](crate::queue::Queue::publish) directly.)
/// - At-least-once: a delivery stays in the queue until acked. `nack(true)`
///   and a dropped, unsettled delivery come back at the front; `nack(false)`
///   moves it to the channel's dead-letter queue (see
///   [`queue`](Self::queue)); deliveries unsettled at a crash or close
///   come back after the next open. `ack_multiple` acks every earlier
///   unsettled delivery of the channel too.
/// - Settling a delivery whose ack timeout passed (it was redelivered, or
///   dead-lettered) is an [`Error::StaleDelivery`],
///   never an ack of the newer delivery, as on RabbitMQ after a reconnect.
/// - One instance keeps the order; more may reorder.
/// - `close` publishes what is in the inputs, syncs, gives the deliveries
///   still waiting in the outputs back to the queue (they come first after
///   the next open), and joins every thread. Deliveries a consumer holds
///   can still be settled after `close`; the directory stays open (and
///   locked against a new adapter) until the last of them is settled or
///   dropped.
/// - Every field of a [`Message`] is stored and delivered: key, headers,
///   priority and expiry. The channel's
///   [topic settings](crate::ChannelSpec#topic-settings) are its topic's:
///   priority levels, dedupe by key, ack timeout and delivery limit, each
///   off by default, none implying another. An expired message is dropped,
///   not delivered, and counted in the queue's stats.
/// - Channels survive a restart: an adapter opened on the same directory
///   has them again (calling `new_channel` once more for such a channel is
///   allowed and updates its spec; a second call in one session is
///   [`Error::AlreadyExists`]).
///
/// ```
/// use syncmq::{Adapter, ChannelSpec, DurableAdapter, Mode};
///
/// # fn main() -> syncmq::Result<()> {
/// let dir = tempfile::tempdir().unwrap();
/// let adapter = DurableAdapter::open(dir.path())?;
/// adapter.new_channel(ChannelSpec::new("jobs", Mode::Both))?;
/// adapter.input("jobs")?.send("resize photo 7".into()).unwrap();
/// adapter.close()?; // published and synced: it survives the restart
///
/// let adapter = DurableAdapter::open(dir.path())?;
/// let delivery = adapter.output("jobs")?.recv().unwrap();
/// assert_eq!(delivery.body(), b"resize photo 7");
/// delivery.ack()?;
/// # Ok(())
/// # }
/// ```
pub struct DurableAdapter {
    state: Mutex<State>,
    config: DurableConfig,
}

impl std::fmt::Debug for DurableAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableAdapter")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

struct State {
    /// `None` once closed.
    queue: Option<Arc<Queue>>,
    channels: HashMap<String, Channel>,
}

/// The adapter's own ends of a channel's input.
type InputEnds = (Sender<Message>, Receiver<Message>);

struct Channel {
    spec: ChannelSpec,
    /// False for a channel restored from disk that `new_channel` has not
    /// declared in this session yet.
    declared: bool,
    input: Option<InputEnds>,
    output: Option<Receiver<Delivery>>,
    stopper: Stopper,
    pumps: Vec<Worker<()>>,
    /// How many messages the pumps could not store.
    lost: Arc<AtomicUsize>,
    counters: Arc<ChannelCounters>,
    consumers: Vec<Worker<()>>,
    interrupters: Vec<Interrupter>,
    close_timeout: Duration,
}

impl DurableAdapter {
    /// The subscriber every channel's topic has: read the channel's queue
    /// through it (see [`queue`](Self::queue)).
    pub const OUTPUT_SUBSCRIBER: &'static str = "output";

    /// Opens (or creates) the adapter's queue in directory `path`, with
    /// durable publishes, and restores the channels made there before.
    ///
    /// # Errors
    ///
    /// [`Error::DirectoryInUse`] when another process (or another open in
    /// this one) uses the directory; [`Error::Storage`] when it cannot be
    /// opened otherwise; [`Error::Corrupt`] for unreadable records.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, DurableConfig::default())
    }

    /// As [`open`](Self::open), with settings.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open), and [`Error::InvalidArgument`] for a bad
    /// config.
    pub fn open_with(path: impl AsRef<Path>, config: DurableConfig) -> Result<Self> {
        config.validate()?;
        let queue = Queue::open(
            path,
            QueueConfig::new()
                .with_durability(config.durability())
                .with_clock(config.clock.get()),
        )?;
        Self::on_queue(queue, config)
    }

    /// An adapter on a queue in memory: the same behaviour, nothing on
    /// disk, gone when dropped.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the OS refuses a thread.
    pub fn memory() -> Result<Self> {
        Self::on_queue(Queue::memory(QueueConfig::new())?, DurableConfig::new())
    }

    fn on_queue(queue: Queue, config: DurableConfig) -> Result<Self> {
        let queue = Arc::new(queue);
        let corrupt = |reason: String| Error::Corrupt {
            key: format!("meta/app/{CHANNELS_META}"),
            reason,
        };
        // Specs are stored in their serde form, which reads what earlier
        // builds stored (every topic setting defaults to off).
        let stored: Vec<ChannelSpec> = match queue.meta(CHANNELS_META)? {
            Some(bytes) => rmp_serde::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?,
            None => Vec::new(),
        };
        let adapter = DurableAdapter {
            state: Mutex::new(State {
                queue: Some(queue.clone()),
                channels: HashMap::new(),
            }),
            config,
        };
        for spec in stored {
            spec.validate()
                .map_err(|e| corrupt(format!("stored channel `{}`: {e}", spec.name())))?;
            let channel = adapter.start(&queue, spec, false)?;
            lock(&adapter.state)
                .channels
                .insert(channel.spec.name().to_string(), channel);
        }
        Ok(adapter)
    }

    /// The queue under the adapter, for what channels do not show: stats,
    /// dead letters, replays. Each channel is a topic of the same name with
    /// one subscriber, [`OUTPUT_SUBSCRIBER`](Self::OUTPUT_SUBSCRIBER).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after `close`.
    pub fn queue(&self) -> Result<Arc<Queue>> {
        lock(&self.state)
            .queue
            .clone()
            .ok_or_else(|| Error::closed("durable adapter"))
    }

    /// Declares the channel's topic and starts its threads.
    fn start(&self, queue: &Arc<Queue>, spec: ChannelSpec, declared: bool) -> Result<Channel> {
        queue.declare_topic(topic(&spec))?;
        let (stopper, stop) = thread::stop_signal();
        let (name, mode, buffer) = (spec.name().to_string(), spec.mode(), spec.buffer());
        let instances = spec.instances();
        let mut channel = Channel {
            spec,
            declared,
            input: None,
            output: None,
            stopper,
            pumps: Vec::new(),
            lost: Arc::new(AtomicUsize::new(0)),
            counters: Arc::new(ChannelCounters::new(&name)),
            consumers: Vec::new(),
            interrupters: Vec::new(),
            close_timeout: self.config.close_timeout(),
        };
        // On an error below, dropping `channel` stops what was started.
        if mode.allows_input() {
            let (tx, rx) = crossbeam_channel::bounded(buffer);
            for i in 0..instances {
                let (queue, rx, stop, lost, counters, topic) = (
                    queue.clone(),
                    rx.clone(),
                    stop.clone(),
                    channel.lost.clone(),
                    channel.counters.clone(),
                    name.clone(),
                );
                channel.pumps.push(thread::spawn(
                    format!("durable-in-{i}:{name}"),
                    move || pump(&queue, &topic, &rx, &stop, &lost, &counters),
                )?);
            }
            channel.input = Some((tx, rx));
        }
        if mode.allows_output() {
            let (tx, rx) = crossbeam_channel::bounded(buffer);
            let prefetch = buffer.clamp(1, 256);
            for i in 0..instances {
                let sub = Arc::new(queue.subscribe(&name, Self::OUTPUT_SUBSCRIBER)?);
                channel.interrupters.push(sub.interrupter());
                let (tx, stop, counters) = (tx.clone(), stop.clone(), channel.counters.clone());
                channel.consumers.push(thread::spawn(
                    format!("durable-out-{i}:{name}"),
                    move || consume(&sub, prefetch, &tx, &stop, &counters),
                )?);
            }
            channel.output = Some(rx);
        }
        Ok(channel)
    }

    fn save_specs(queue: &Queue, channels: &HashMap<String, Channel>) -> Result<()> {
        let mut specs: Vec<&ChannelSpec> = channels.values().map(|c| &c.spec).collect();
        specs.sort_by(|a, b| a.name().cmp(b.name()));
        queue.set_meta(CHANNELS_META, &rmp_serde::to_vec_named(&specs)?)
    }

    fn with_channel<T>(&self, name: &str, f: impl FnOnce(&Channel) -> Result<T>) -> Result<T> {
        let state = lock(&self.state);
        if state.queue.is_none() {
            return Err(Error::closed("durable adapter"));
        }
        let channel = state
            .channels
            .get(name)
            .ok_or_else(|| Error::not_found(ObjectKind::Channel, name))?;
        f(channel)
    }
}

/// The channel's topic: every setting from the spec, so that none takes
/// the queue's own default (a 30 s ack timeout) behind the spec's back.
fn topic(spec: &ChannelSpec) -> TopicConfig {
    TopicConfig::new(spec.name(), [DurableAdapter::OUTPUT_SUBSCRIBER])
        .with_priorities(spec.priorities())
        .with_dedupe(spec.dedupe())
        .with_ack_timeout(spec.ack_timeout().unwrap_or(Duration::ZERO))
        .with_max_deliveries(spec.max_deliveries())
}

impl Adapter for DurableAdapter {
    fn new_channel(&self, spec: ChannelSpec) -> Result<()> {
        spec.validate()?;
        let mut state = lock(&self.state);
        let queue = state
            .queue
            .clone()
            .ok_or_else(|| Error::closed("durable adapter"))?;
        let restored = match state.channels.get(spec.name()) {
            Some(c) if c.declared => {
                return Err(Error::already_exists(ObjectKind::Channel, spec.name()))
            }
            Some(_) => state.channels.remove(spec.name()),
            None => None,
        };
        if let Some(mut old) = restored {
            if let Err(e) = old.close(Instant::now() + self.config.close_timeout()) {
                log::warn!("durable adapter: restarting channel `{}`: {e}", spec.name());
            }
        }
        let name = spec.name().to_string();
        let channel = self.start(&queue, spec, true)?;
        state.channels.insert(name, channel);
        Self::save_specs(&queue, &state.channels)
    }

    fn input(&self, name: &str) -> Result<Sender<Message>> {
        self.with_channel(name, |ch| match &ch.input {
            Some((tx, _)) => Ok(tx.clone()),
            None => Err(wrong_mode(name, ch.spec.mode(), "input")),
        })
    }

    fn output(&self, name: &str) -> Result<Receiver<Delivery>> {
        self.with_channel(name, |ch| match &ch.output {
            Some(rx) => Ok(rx.clone()),
            None => Err(wrong_mode(name, ch.spec.mode(), "output")),
        })
    }

    fn mode(&self, name: &str) -> Result<Mode> {
        self.with_channel(name, |ch| Ok(ch.spec.mode()))
    }

    fn stats(&self) -> Result<AdapterStats> {
        let state = lock(&self.state);
        if state.queue.is_none() {
            return Err(Error::closed("durable adapter"));
        }
        Ok(adapter_stats(state.channels.iter().map(|(name, ch)| {
            let input = ch.input.as_ref().map_or(0, |(_, rx)| rx.len());
            let output = ch.output.as_ref().map_or(0, Receiver::len);
            ch.counters.stats(name, input + output)
        })))
    }

    fn close(&self) -> Result<()> {
        let (queue, channels) = {
            let mut state = lock(&self.state);
            (state.queue.take(), std::mem::take(&mut state.channels))
        };
        let Some(queue) = queue else {
            return Ok(());
        };
        let deadline = Instant::now() + self.config.close_timeout();
        let mut result = Ok(());
        for (_, mut channel) in channels {
            result = result.and(channel.close(deadline));
        }
        result.and(queue.close())
    }
}

impl Drop for DurableAdapter {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::warn!("durable adapter: close on drop: {e}");
        }
    }
}

impl Channel {
    /// Publishes what is in the input, stops the channel's threads and
    /// joins them by `deadline`. The output ends once the consumers are
    /// joined. Calling it again does nothing.
    fn close(&mut self, deadline: Instant) -> Result<()> {
        self.input = None;
        self.stopper.stop();
        for i in &self.interrupters {
            i.interrupt();
        }
        let joined = join_all(
            std::mem::take(&mut self.pumps)
                .into_iter()
                .chain(std::mem::take(&mut self.consumers)),
            deadline,
        );
        // Deliveries nobody took from the output go back to the queue
        // (dropping them requeues them), so they do not keep it open after
        // close.
        if let Some(output) = self.output.take() {
            while let Ok(delivery) = output.try_recv() {
                drop(delivery);
            }
        }
        let lost = self.lost.swap(0, Ordering::SeqCst);
        joined.and(if lost > 0 {
            Err(Error::storage_reason(
                format!("channel `{}`", self.spec.name()),
                format!("{lost} messages could not be stored (see the log)"),
            ))
        } else {
            Ok(())
        })
    }
}

impl Drop for Channel {
    /// Only does something for a channel dropped without `close`, as when
    /// starting it failed half way.
    fn drop(&mut self) {
        if let Err(e) = self.close(Instant::now() + self.close_timeout) {
            log::warn!("durable adapter: channel `{}`: {e}", self.spec.name());
        }
    }
}

fn wrong_mode(name: &str, mode: Mode, operation: &'static str) -> Error {
    Error::WrongMode {
        channel: name.to_string(),
        mode: mode.to_string(),
        operation,
    }
}

/// A publishing thread: input to queue, a batch of whatever is waiting at a
/// time, until told to stop; then what is left in the input. Counts in
/// `lost` the messages it could not store.
fn pump(
    queue: &Queue,
    topic: &str,
    input: &Receiver<Message>,
    stop: &StopToken,
    lost: &AtomicUsize,
    counters: &ChannelCounters,
) {
    loop {
        let first = select! {
            recv(input) -> message => match message {
                Ok(message) => message,
                Err(_) => return,
            },
            recv(stop.receiver()) -> _ => break,
        };
        lost.fetch_add(
            publish_waiting(queue, topic, input, Some(first), counters),
            Ordering::SeqCst,
        );
    }
    // Stopped: whatever was sent before the input's last handle went.
    while !input.is_empty() {
        let lost_now = publish_waiting(queue, topic, input, None, counters);
        lost.fetch_add(lost_now, Ordering::SeqCst);
    }
}

/// Publishes `first` and up to a batch of what waits behind it, counting
/// what was stored in `counters`; returns how many could not be stored.
fn publish_waiting(
    queue: &Queue,
    topic: &str,
    input: &Receiver<Message>,
    first: Option<Message>,
    counters: &ChannelCounters,
) -> usize {
    let mut batch: Vec<Message> = first.into_iter().collect();
    while batch.len() < MAX_BATCH {
        match input.try_recv() {
            Ok(message) => batch.push(message),
            Err(_) => break,
        }
    }
    if batch.is_empty() || queue.publish(topic, &batch).is_ok() {
        counters.published.add(batch.len() as u64);
        return 0;
    }
    // One bad message (too large, say) must not take the others with it.
    let mut lost = 0;
    for m in batch {
        if let Err(e) = queue.publish(topic, std::slice::from_ref(&m)) {
            log::error!(
                "durable adapter: channel `{topic}`: a message of {} bytes was not stored: {e}",
                m.body().len()
            );
            lost += 1;
        } else {
            counters.published.add(1);
        }
    }
    lost
}

/// A consuming thread: queue to output until told to stop. Deliveries it
/// still holds then are dropped, which gives them back to the queue.
fn consume(
    sub: &Arc<Subscriber>,
    prefetch: usize,
    output: &Sender<Delivery>,
    stop: &StopToken,
    counters: &Arc<ChannelCounters>,
) {
    while !stop.is_stopped() {
        let batch = match sub.next_batch(prefetch, None) {
            Ok(batch) => batch,
            Err(Error::Closed(_)) => return,
            Err(e) => {
                log::error!("durable adapter: channel `{}`: {e}", sub.topic());
                if stop.sleep(Duration::from_secs(1)) {
                    return;
                }
                continue;
            }
        };
        let mut batch = batch.into_iter();
        while let Some(r) = batch.next() {
            let acker = DurableAcker {
                sub: sub.clone(),
                id: r.id,
                counters: counters.clone(),
            };
            let delivery =
                Delivery::new(r.message, Box::new(acker)).with_redelivered(r.deliveries > 1);
            // Counted before the hand-over, so that a reader that has the
            // delivery finds it counted (a stop that catches this one has
            // counted it all the same).
            counters.delivered.add(1);
            let handed_on = select! {
                send(output, delivery) -> sent => sent.is_ok(),
                recv(stop.receiver()) -> _ => false,
            };
            if !handed_on {
                // Not delivered: back to the front.
                let ids: Vec<EntryId> = batch.map(|r| r.id).collect();
                if let Err(e) = sub.release_current(&ids) {
                    log::warn!("durable adapter: channel `{}`: {e}", sub.topic());
                }
                return;
            }
        }
    }
}

/// Settles a delivery with the queue.
struct DurableAcker {
    sub: Arc<Subscriber>,
    id: EntryId,
    /// The channel's, which count what the queue settled.
    counters: Arc<ChannelCounters>,
}

impl Acker for DurableAcker {
    fn ack(self: Box<Self>, multiple: bool) -> Result<()> {
        let acked = if multiple {
            self.sub.ack_through(self.id)?
        } else {
            self.sub.ack(&[self.id])?
        };
        self.counters.acked.add(acked as u64);
        Ok(())
    }

    fn nack(self: Box<Self>, requeue: bool) -> Result<()> {
        let nacked = self.sub.nack(&[self.id], requeue)?;
        self.counters.nacked.add(nacked as u64);
        Ok(())
    }
}
