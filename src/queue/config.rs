//! Queue and topic configuration: serde structs, loadable from any serde
//! format, with `#[must_use]` builders and validation that names the field
//! at fault.
//!
//! A topic has named subscribers, each with its own queue per priority
//! level (0 is the highest). Times are whole milliseconds so that every
//! format spells them the same way; 0 means "off".

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicConfig {
    /// The topic's name: 1 to 255 bytes, no control characters.
    pub name: String,
    /// The subscribers; each gets every message. At least one; names are
    /// unique, non-empty, without control characters. Re-declaring a topic
    /// may add subscribers, never remove one.
    pub subscribers: Vec<String>,
    /// Priority levels, 1 to 16. A message's priority above the last level
    /// counts as the last level.
    pub priorities: u8,
    /// Milliseconds a delivery may stay unacknowledged before it is
    /// delivered again, at the front; 0 never redelivers on time.
    pub ack_timeout_ms: u64,
    /// When true, a message whose key matches an undelivered message's key
    /// replaces that message's body in place (the latest wins).
    pub dedupe: bool,
    /// Milliseconds to live for messages that have no expiry of their own;
    /// 0 keeps them until delivered. Expired messages are dropped, not
    /// delivered, and counted.
    pub default_ttl_ms: u64,
    /// Deliveries after which a message that keeps coming back goes to the
    /// subscriber's dead-letter queue; 0 never dead-letters on count.
    /// Deliveries before a restart or crash count (a poison message that
    /// kills its consumer is dead-lettered after this many crashes).
    pub max_deliveries: u32,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            name: String::new(),
            subscribers: Vec::new(),
            priorities: 1,
            ack_timeout_ms: 30_000,
            dedupe: false,
            default_ttl_ms: 0,
            max_deliveries: 0,
        }
    }
}

impl TopicConfig {
    /// The most priority levels a topic may have.
    pub const MAX_PRIORITIES: u8 = 16;

    /// A topic with these subscribers, one priority level, a 30 s ack
    /// timeout, no dedupe, no default expiry and no dead-lettering.
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

    /// Sets the number of priority levels (1 to 16).
    #[must_use]
    pub fn with_priorities(mut self, priorities: u8) -> Self {
        self.priorities = priorities;
        self
    }

    /// Sets the ack timeout; `Duration::ZERO` never redelivers on time.
    #[must_use]
    pub fn with_ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Turns dedupe by message key on or off.
    #[must_use]
    pub fn with_dedupe(mut self, dedupe: bool) -> Self {
        self.dedupe = dedupe;
        self
    }

    /// Sets the time to live of messages without an expiry of their own.
    #[must_use]
    pub fn with_default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Sets the deliveries after which a message is dead-lettered; 0 never.
    #[must_use]
    pub fn with_max_deliveries(mut self, max: u32) -> Self {
        self.max_deliveries = max;
        self
    }

    /// The ack timeout, `None` when off.
    pub fn ack_timeout(&self) -> Option<Duration> {
        (self.ack_timeout_ms > 0).then(|| Duration::from_millis(self.ack_timeout_ms))
    }

    /// Checks the topic, as [`Queue::declare_topic`](super::Queue::declare_topic)
    /// does.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the field, as `topic.priorities`:
    /// a bad topic or subscriber name, no subscriber, one listed twice,
    /// priority levels outside 1 to 16.
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
        Ok(())
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

/// How a queue is opened: durability, limits, and the topics to declare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// When a publish counts as done; [`Durability::Durable`] by default.
    pub durability: Durability,
    /// The largest stored message (body, key and headers), in bytes.
    pub max_message_bytes: usize,
    /// Topics declared at open: created, or updated when they exist.
    pub topics: Vec<TopicConfig>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            durability: Durability::Durable,
            max_message_bytes: Self::DEFAULT_MAX_MESSAGE_BYTES,
            topics: Vec::new(),
        }
    }
}

impl QueueConfig {
    /// The default message size limit: 16 MiB.
    pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 << 20;

    /// Durable publishes, a 16 MiB message limit, no topics yet.
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

    /// Sets the largest stored message, in bytes.
    #[must_use]
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// Adds a topic to declare at open.
    #[must_use]
    pub fn with_topic(mut self, topic: TopicConfig) -> Self {
        self.topics.push(topic);
        self
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the field, as `topics[1].priorities`.
    pub fn validate(&self) -> Result<()> {
        if self.max_message_bytes == 0 || self.max_message_bytes > u32::MAX as usize {
            return Err(Error::invalid(
                "max_message_bytes",
                "must be between 1 and 4294967295",
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
                assert_eq!(name, "topics[0].subscribers[1]")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn loads_from_a_serde_format() {
        let json = r#"{"durability":"buffered","topics":[{"name":"t","subscribers":["a","b"],"priorities":3,"dedupe":true}]}"#;
        let cfg: QueueConfig = serde_json::from_str(json).unwrap();
        assert_eq!(cfg.durability, Durability::Buffered);
        assert_eq!(cfg.topics[0].priorities, 3);
        assert_eq!(cfg.topics[0].ack_timeout_ms, 30_000);
        cfg.validate().unwrap();
        assert!(serde_json::from_str::<QueueConfig>(r#"{"topicz":[]}"#).is_err());
    }
}
