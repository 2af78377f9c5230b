//! [`QueueConfig`], [`TopicConfig`] and [`Durability`]: how a queue is
//! opened and how its topics behave. Serde structs, so that a file can hold
//! them; milliseconds only at that boundary (`crate::millis`).

use std::collections::HashSet;
#[cfg(feature = "config")]
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::clock::{Clock, ConfiguredClock};
use crate::error::{Error, Result};

/// When a publish counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// On disk (fsync) before `publish` returns; concurrent publishers
    /// share one fsync. The default.
    #[default]
    Durable,
    /// Handed to the OS before `publish` returns: survives a crash of the
    /// process (`kill -9`), not of the machine. Several times faster.
    Buffered,
}

/// One topic: its subscribers and how their queues behave.
///
/// A topic has named subscribers; each gets every message, in its own queue
/// per priority level (0 is the highest). A serde struct, loadable from any
/// serde format ([`QueueConfig::from_path`] reads JSON, TOML or YAML):
/// times are whole milliseconds there, in fields ending in `_ms`, 0
/// meaning off.
///
/// | field | default | setter |
/// |---|---|---|
/// | `name` | (required) | [`new`](Self::new) |
/// | `subscribers` | (required, at least one) | [`new`](Self::new) |
/// | `priorities` | 1 | [`with_priorities`](Self::with_priorities) |
/// | `ack_timeout_ms` | 30000 | [`with_ack_timeout`](Self::with_ack_timeout) |
/// | `dedupe` | false | [`with_dedupe`](Self::with_dedupe) |
/// | `default_ttl_ms` | 0 (off) | [`with_default_ttl`](Self::with_default_ttl) |
/// | `max_deliveries` | 0 (off) | [`with_max_deliveries`](Self::with_max_deliveries) |
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicConfig {
    name: String,
    subscribers: Vec<String>,
    priorities: u8,
    #[serde(rename = "ack_timeout_ms", with = "crate::millis::or_off")]
    ack_timeout: Option<Duration>,
    dedupe: bool,
    #[serde(rename = "default_ttl_ms", with = "crate::millis::or_off")]
    default_ttl: Option<Duration>,
    max_deliveries: u32,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            name: String::new(),
            subscribers: Vec::new(),
            priorities: 1,
            ack_timeout: Some(Self::DEFAULT_ACK_TIMEOUT),
            dedupe: false,
            default_ttl: None,
            max_deliveries: 0,
        }
    }
}

impl TopicConfig {
    /// The most priority levels a topic may have.
    pub const MAX_PRIORITIES: u8 = 16;

    /// The ack timeout of a topic that sets none.
    pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(30);

    /// A topic with these subscribers, one priority level, a 30 s ack
    /// timeout, no dedupe, no default expiry and no dead-lettering.
    ///
    /// The name is 1 to 255 bytes without control characters; so is each
    /// subscriber's, and a subscriber is listed once. Re-declaring a topic
    /// may add subscribers, never remove one.
    pub fn new<S: Into<String>>(
        name: impl Into<String>,
        subscribers: impl IntoIterator<Item = S>,
    ) -> Self {
        TopicConfig {
            name: name.into(),
            subscribers: subscribers.into_iter().map(Into::into).collect(),
            ..TopicConfig::default()
        }
    }

    /// Sets the number of priority levels, 1 to
    /// [`MAX_PRIORITIES`](Self::MAX_PRIORITIES). A message's priority above
    /// the last level counts as the last level. Re-declaring a topic may
    /// raise it, never lower it.
    #[must_use]
    pub fn with_priorities(mut self, priorities: u8) -> Self {
        self.priorities = priorities;
        self
    }

    /// Sets how long a delivery may stay unacknowledged before it is
    /// delivered again, at the front; `Duration::ZERO` never redelivers on
    /// time. At least 1 ms (the file stores whole milliseconds).
    #[must_use]
    pub fn with_ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = (!timeout.is_zero()).then_some(timeout);
        self
    }

    /// Turns dedupe by message key on or off: when on, a message whose key
    /// matches an undelivered message's key replaces that message's body in
    /// place (the latest wins).
    #[must_use]
    pub fn with_dedupe(mut self, dedupe: bool) -> Self {
        self.dedupe = dedupe;
        self
    }

    /// Sets the time to live of messages that have no expiry of their own;
    /// `Duration::ZERO` (the default) keeps them until delivered. Expired
    /// messages are dropped, not delivered, and counted. At least 1 ms.
    #[must_use]
    pub fn with_default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = (!ttl.is_zero()).then_some(ttl);
        self
    }

    /// Sets the deliveries after which a message that keeps coming back is
    /// dead-lettered; 0 (the default) never dead-letters on count.
    /// Deliveries before a restart or crash count (a poison message that
    /// kills its consumer is dead-lettered after this many crashes).
    #[must_use]
    pub fn with_max_deliveries(mut self, max: u32) -> Self {
        self.max_deliveries = max;
        self
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The subscribers, in the order given.
    pub fn subscribers(&self) -> &[String] {
        &self.subscribers
    }

    /// The number of priority levels.
    pub fn priorities(&self) -> u8 {
        self.priorities
    }

    /// The ack timeout, `None` when off.
    pub fn ack_timeout(&self) -> Option<Duration> {
        self.ack_timeout
    }

    /// True when messages are deduped by key.
    pub fn dedupe(&self) -> bool {
        self.dedupe
    }

    /// The time to live of messages without an expiry of their own, `None`
    /// when off.
    pub fn default_ttl(&self) -> Option<Duration> {
        self.default_ttl
    }

    /// The deliveries after which a message is dead-lettered; 0 never.
    pub fn max_deliveries(&self) -> u32 {
        self.max_deliveries
    }

    /// Checks the topic, as [`Queue::declare_topic`](super::Queue::declare_topic)
    /// does.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the field, as `topic.priorities`:
    /// a bad topic or subscriber name, no subscriber, one listed twice,
    /// priority levels outside 1 to 16, an ack timeout or time to live
    /// below 1 ms.
    pub fn validate(&self) -> Result<()> {
        self.validate_as("topic")
    }

    /// As [`validate`](Self::validate); `field` is how errors name the
    /// topic (`"topics[2]"`).
    pub(crate) fn validate_as(&self, field: &str) -> Result<()> {
        check_name(&format!("{field}.name"), &self.name, "topic")?;
        if self.subscribers.is_empty() {
            return Err(Error::invalid(
                format!("{field}.subscribers"),
                format!("topic `{}` needs at least one subscriber", self.name),
            ));
        }
        let mut seen = HashSet::new();
        for (i, sub) in self.subscribers.iter().enumerate() {
            let f = format!("{field}.subscribers[{i}]");
            check_name(&f, sub, "subscriber")?;
            if !seen.insert(sub) {
                return Err(Error::invalid(
                    f,
                    format!("subscriber `{sub}` is listed twice"),
                ));
            }
        }
        if self.priorities == 0 || self.priorities > Self::MAX_PRIORITIES {
            return Err(Error::invalid(
                format!("{field}.priorities"),
                format!(
                    "topic `{}` has {} priority levels; 1 to {} are allowed",
                    self.name,
                    self.priorities,
                    Self::MAX_PRIORITIES
                ),
            ));
        }
        check_millis(&format!("{field}.ack_timeout"), self.ack_timeout)?;
        check_millis(&format!("{field}.default_ttl"), self.default_ttl)
    }
}

/// Refuses a time that is on but below 1 ms: the topic is stored in whole
/// milliseconds, where it would turn into 0, off, at the next open.
fn check_millis(field: &str, value: Option<Duration>) -> Result<()> {
    match value {
        Some(d) if d < Duration::from_millis(1) => Err(Error::invalid(
            field,
            format!("{d:?} is below 1 ms; times are stored in whole milliseconds (zero is off)"),
        )),
        _ => Ok(()),
    }
}

fn check_name(field: &str, name: &str, what: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid(
            field,
            format!("a {what} name must not be empty"),
        ));
    }
    if name.len() > 255 {
        return Err(Error::invalid(
            field,
            format!(
                "a {what} name is at most 255 bytes, this one has {}",
                name.len()
            ),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            format!("{what} name {name:?} contains control characters"),
        ));
    }
    Ok(())
}

/// How a queue is opened: durability, limits, the topics to declare, how
/// long [`Queue::close`](super::Queue::close) waits for its thread, and
/// the [`Clock`] deadlines and expiry follow.
///
/// A serde struct, with `#[must_use]` builders;
/// [`validate`](Self::validate) names the field at fault, as
/// `topics[1].priorities`. [`from_path`](Self::from_path) (feature
/// `config`) reads one from a JSON, TOML or YAML file, as the `syncmq` CLI's
/// `serve --config` does.
///
/// | field | default | setter |
/// |---|---|---|
/// | `durability` | `"durable"` | [`with_durability`](Self::with_durability) |
/// | `max_message_bytes` | 16 MiB | [`with_max_message_bytes`](Self::with_max_message_bytes) |
/// | `topics` | none | [`with_topic`](Self::with_topic) |
/// | `close_timeout_ms` | 10000 | [`with_close_timeout`](Self::with_close_timeout) |
/// | (not in files) | [`SystemClock`](super::SystemClock) | [`with_clock`](Self::with_clock) |
///
/// Configs compare equal when they share the clock (the same `Arc`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    durability: Durability,
    max_message_bytes: usize,
    topics: Vec<TopicConfig>,
    #[serde(rename = "close_timeout_ms", with = "crate::millis")]
    close_timeout: Duration,
    /// A file cannot hold a clock: a loaded config has the system's.
    #[serde(skip)]
    clock: ConfiguredClock,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            durability: Durability::Durable,
            max_message_bytes: Self::DEFAULT_MAX_MESSAGE_BYTES,
            topics: Vec::new(),
            close_timeout: Self::DEFAULT_CLOSE_TIMEOUT,
            clock: ConfiguredClock::default(),
        }
    }
}

impl QueueConfig {
    /// The default message size limit: 16 MiB.
    pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 << 20;

    /// How long `close` waits for the queue's thread by default.
    pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

    /// Durable publishes, a 16 MiB message limit, no topics yet, a 10 s
    /// close timeout.
    pub fn new() -> Self {
        QueueConfig::default()
    }

    /// Sets the durability; the recommended setting is the default,
    /// [`Durability::Durable`].
    #[must_use]
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets the largest stored message (body, key and headers), in bytes:
    /// 1 to 4,294,967,295.
    #[must_use]
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// Adds a topic to declare at open: created, or updated when it exists.
    #[must_use]
    pub fn with_topic(mut self, topic: TopicConfig) -> Self {
        self.topics.push(topic);
        self
    }

    /// Sets how long [`Queue::close`](super::Queue::close) waits for the
    /// queue's thread to stop (at least 1 ms).
    #[must_use]
    pub fn with_close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets the clock that ack deadlines, message expiry and topic TTLs
    /// follow; the default is [`SystemClock`](super::SystemClock). A test
    /// passes a [`ManualClock`](super::ManualClock) and moves it instead of
    /// sleeping. Timeouts of waits (a receive's, a receipt's, close's)
    /// stay on real time.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = ConfiguredClock::new(clock);
        self
    }

    /// When a publish counts as done.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// The largest stored message, in bytes.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// The topics declared at open.
    pub fn topics(&self) -> &[TopicConfig] {
        &self.topics
    }

    /// How long `close` waits for the queue's thread.
    pub fn close_timeout(&self) -> Duration {
        self.close_timeout
    }

    /// The clock deadlines, expiry and TTLs follow.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.get()
    }

    /// The topics, for the queue that declares them.
    pub(crate) fn into_topics(self) -> Vec<TopicConfig> {
        self.topics
    }

    /// Reads a config file and [validates](Self::validate) it: JSON
    /// (`.json`), TOML (`.toml`, `[[topics]]` tables) or YAML (`.yaml`,
    /// `.yml`), the format chosen by the extension. The fields are this
    /// struct's (`durability`, `max_message_bytes`, `topics`,
    /// `close_timeout_ms`) and each topic's ([`TopicConfig`]); a field that
    /// is not one of them is an error naming it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] named by the path for another extension
    /// (saying which are accepted) or a file that does not parse (naming
    /// the format and the field), or naming the field that does not
    /// validate; [`Error::Io`] naming the path when it cannot be read.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("topics.yaml");
    /// # std::fs::write(&path, "topics:\n  - name: orders\n    subscribers: [billing]\n    ack_timeout_ms: 5000\n")?;
    /// use syncmq::queue::QueueConfig;
    ///
    /// let config = QueueConfig::from_path(&path)?; // topics.yaml
    /// assert_eq!(config.topics()[0].name(), "orders");
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "config")]
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self> {
        let config: Self = crate::config_file::load(path.as_ref())?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the field, as `topics[1].priorities`.
    pub fn validate(&self) -> Result<()> {
        if self.max_message_bytes == 0 || u32::try_from(self.max_message_bytes).is_err() {
            return Err(Error::invalid(
                "max_message_bytes",
                "must be between 1 and 4294967295",
            ));
        }
        if self.close_timeout < Duration::from_millis(1) {
            return Err(Error::invalid(
                "close_timeout",
                format!("{:?} is below 1 ms", self.close_timeout),
            ));
        }
        let mut names = HashSet::new();
        for (i, topic) in self.topics.iter().enumerate() {
            let field = format!("topics[{i}]");
            topic.validate_as(&field)?;
            if !names.insert(&topic.name) {
                return Err(Error::invalid(
                    format!("{field}.name"),
                    format!("topic `{}` is declared twice", topic.name),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field() {
        let cfg = QueueConfig::new()
            .with_topic(TopicConfig::new("a", ["s"]))
            .with_topic(TopicConfig::new("b", ["s"]).with_priorities(0));
        match cfg.validate() {
            Err(Error::InvalidArgument { name, .. }) => assert_eq!(name, "topics[1].priorities"),
            other => panic!("{other:?}"),
        }
        let cfg = QueueConfig::new().with_topic(TopicConfig::new("a", Vec::<String>::new()));
        match cfg.validate() {
            Err(Error::InvalidArgument { name, .. }) => assert_eq!(name, "topics[0].subscribers"),
            other => panic!("{other:?}"),
        }
        let cfg = QueueConfig::new().with_topic(TopicConfig::new("a", ["x", "x"]));
        match cfg.validate() {
            Err(Error::InvalidArgument { name, .. }) => {
                assert_eq!(name, "topics[0].subscribers[1]");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn loads_from_a_serde_format() {
        let json = r#"{"durability":"buffered","topics":[{"name":"t","subscribers":["a","b"],"priorities":3,"dedupe":true}]}"#;
        let cfg: QueueConfig = serde_json::from_str(json).unwrap();
        assert_eq!(cfg.durability(), Durability::Buffered);
        assert_eq!(cfg.topics()[0].priorities(), 3);
        assert_eq!(cfg.topics()[0].ack_timeout(), Some(Duration::from_secs(30)));
        cfg.validate().unwrap();
        assert!(serde_json::from_str::<QueueConfig>(r#"{"topicz":[]}"#).is_err());
    }

    #[test]
    fn times_are_milliseconds_in_fields_ending_in_ms_and_zero_is_off() {
        let json = r#"{"close_timeout_ms":2500,"topics":[{"name":"t","subscribers":["a"],"ack_timeout_ms":0,"default_ttl_ms":1500}]}"#;
        let cfg: QueueConfig = serde_json::from_str(json).unwrap();
        assert_eq!(cfg.close_timeout(), Duration::from_millis(2500));
        let topic = &cfg.topics()[0];
        assert_eq!(topic.ack_timeout(), None);
        assert_eq!(topic.default_ttl(), Some(Duration::from_millis(1500)));
        let written = serde_json::to_value(&cfg).unwrap();
        assert_eq!(written["close_timeout_ms"], 2500);
        assert_eq!(written["topics"][0]["ack_timeout_ms"], 0);
        assert_eq!(written["topics"][0]["default_ttl_ms"], 1500);
        assert_eq!(serde_json::from_value::<QueueConfig>(written).unwrap(), cfg);
    }

    #[test]
    fn times_below_a_millisecond_are_refused_not_turned_off() {
        let field = |r: Result<()>| match r {
            Err(Error::InvalidArgument { name, .. }) => name,
            other => panic!("{other:?}"),
        };
        let short = Duration::from_micros(500);
        let topic = TopicConfig::new("t", ["a"]);
        assert_eq!(
            field(topic.clone().with_ack_timeout(short).validate()),
            "topic.ack_timeout"
        );
        assert_eq!(
            field(topic.clone().with_default_ttl(short).validate()),
            "topic.default_ttl"
        );
        assert_eq!(
            field(QueueConfig::new().with_close_timeout(short).validate()),
            "close_timeout"
        );
        // Zero is off, not too short.
        topic
            .with_ack_timeout(Duration::ZERO)
            .with_default_ttl(Duration::ZERO)
            .validate()
            .unwrap();
    }
}
