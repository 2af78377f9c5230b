//! [`PublisherConfig`] and [`BlockedPolicy`]: how a publisher publishes,
//! checked before its thread starts.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::rabbitmq::amqp;

/// What a publish does while the broker blocks publishers (a memory or
/// disk alarm, reported with `connection.blocked`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockedPolicy {
    /// Accept the message and send it once the broker unblocks (the
    /// default; the buffer bound still applies).
    Wait,
    /// Refuse at once with [`Error::Busy`] naming the broker's reason.
    Fail,
}

/// How a [`Publisher`](crate::rabbitmq::Publisher) publishes.
///
/// ```
/// use std::time::Duration;
/// use syncmq::rabbitmq::{BlockedPolicy, PublisherConfig};
///
/// let config = PublisherConfig::new()
///     .with_window(512)
///     .with_buffer(100_000)
///     .with_nack_retry_interval(Duration::from_millis(500))
///     .with_blocked(BlockedPolicy::Fail);
/// ```
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    window: usize,
    buffer: usize,
    nack_retry_interval: Duration,
    nack_retries: u32,
    confirm_timeout: Duration,
    persistent: bool,
    mandatory: bool,
    blocked: BlockedPolicy,
    close_timeout: Duration,
    refusals_capacity: usize,
    max_message_size: usize,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        PublisherConfig {
            window: 256,
            buffer: 10_000,
            nack_retry_interval: Duration::from_secs(1),
            nack_retries: 3,
            confirm_timeout: Duration::from_secs(30),
            persistent: true,
            mandatory: true,
            blocked: BlockedPolicy::Wait,
            close_timeout: Duration::from_secs(10),
            refusals_capacity: 1_000,
            max_message_size: amqp::DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

impl PublisherConfig {
    /// Defaults: window 256, buffer 10,000, retry every 1 s, 30 s for a
    /// confirm, persistent, mandatory, wait while blocked, 10 s to close,
    /// room for 1,000 unread refusals, bodies up to 128 MiB.
    pub fn new() -> Self {
        PublisherConfig::default()
    }

    /// How many messages may await their confirm at once (1 to 65,535).
    /// Recommended: 128 to 1024; 1 is one round trip per message.
    #[must_use]
    pub fn with_window(mut self, window: usize) -> Self {
        self.window = window;
        self
    }

    /// How many messages the publisher holds until confirmed, at most: the
    /// bound of the retry buffer. A publish beyond it is an error.
    #[must_use]
    pub fn with_buffer(mut self, buffer: usize) -> Self {
        self.buffer = buffer;
        self
    }

    /// How long the publisher waits before it sends a nacked message again
    /// (default 1 s), and before it opens a new channel after the broker
    /// closed its channel on a live connection (which no reconnect
    /// announces). A lost connection is not waited for here: what it left
    /// unconfirmed is resent the moment the supervisor reconnects. gormq's
    /// `FailedMessageRetryInterval`.
    #[must_use]
    pub fn with_nack_retry_interval(mut self, interval: Duration) -> Self {
        self.nack_retry_interval = interval;
        self
    }

    /// How many times a message the broker nacks is sent again (default 3,
    /// `nack_retry_interval` apart, each time on a new channel) before it fails
    /// to its caller with [`Error::Busy`]. A quorum queue nacks while it
    /// elects a leader (a node of the cluster died), which a retry rides
    /// out; a full queue declared with `x-overflow` `reject-publish` nacks
    /// until it drains. 0 fails a nacked message at once.
    #[must_use]
    pub fn with_nack_retries(mut self, retries: u32) -> Self {
        self.nack_retries = retries;
        self
    }

    /// How long [`Publisher::publish`](crate::rabbitmq::Publisher::publish)
    /// and a [`Receipt`](crate::Receipt)'s `wait` wait for the confirm. A message
    /// whose wait timed out stays in the buffer and may still be published.
    #[must_use]
    pub fn with_confirm_timeout(mut self, timeout: Duration) -> Self {
        self.confirm_timeout = timeout;
        self
    }

    /// Persistent (delivery mode 2, the default) or transient messages.
    #[must_use]
    pub fn with_persistent(mut self, persistent: bool) -> Self {
        self.persistent = persistent;
        self
    }

    /// With `mandatory` (the default) a message no queue takes is returned
    /// by the broker and its publish fails; without, the broker drops it.
    #[must_use]
    pub fn with_mandatory(mut self, mandatory: bool) -> Self {
        self.mandatory = mandatory;
        self
    }

    /// What to do while the broker blocks publishing.
    #[must_use]
    pub fn with_blocked(mut self, policy: BlockedPolicy) -> Self {
        self.blocked = policy;
        self
    }

    /// How many refused fire-and-retry messages
    /// [`Publisher::refusals`](crate::rabbitmq::Publisher::refusals) holds
    /// until read (at least 1). Beyond that a refusal is still counted by
    /// `flush` and logged, but its message is not kept.
    #[must_use]
    pub fn with_refusals_capacity(mut self, capacity: usize) -> Self {
        self.refusals_capacity = capacity;
        self
    }

    /// The largest body the broker takes: its `max_message_size`,
    /// 128 MiB unless its configuration says otherwise
    /// (`rabbitmqctl eval 'application:get_env(rabbit, max_message_size).'`).
    /// AMQP does not announce it, so set it here when the broker's is
    /// smaller. A larger message is refused by `send`/`publish` with
    /// [`Error::InvalidArgument`] and never sent: sent, it would make the
    /// broker close the channel, and every message in flight on it would
    /// lose its confirm and be sent again.
    #[must_use]
    pub fn with_max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// How long [`Publisher::close`](crate::rabbitmq::Publisher::close)
    /// keeps publishing what is buffered.
    #[must_use]
    pub fn with_close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// How many messages may await their confirm at once.
    pub fn window(&self) -> usize {
        self.window
    }

    /// How many messages the publisher holds until confirmed, at most.
    pub fn buffer(&self) -> usize {
        self.buffer
    }

    /// How long the publisher waits before it sends a nacked message again.
    pub fn nack_retry_interval(&self) -> Duration {
        self.nack_retry_interval
    }

    /// How many times a nacked message is sent again.
    pub fn nack_retries(&self) -> u32 {
        self.nack_retries
    }

    /// How long a publish waits for its confirm.
    pub fn confirm_timeout(&self) -> Duration {
        self.confirm_timeout
    }

    /// Whether messages are persistent (delivery mode 2).
    pub fn persistent(&self) -> bool {
        self.persistent
    }

    /// Whether messages are published `mandatory`.
    pub fn mandatory(&self) -> bool {
        self.mandatory
    }

    /// What a publish does while the broker blocks publishing.
    pub fn blocked(&self) -> BlockedPolicy {
        self.blocked
    }

    /// How many unread refusals are kept.
    pub fn refusals_capacity(&self) -> usize {
        self.refusals_capacity
    }

    /// The largest body a publish takes.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// How long close keeps publishing what is buffered.
    pub fn close_timeout(&self) -> Duration {
        self.close_timeout
    }

    /// Checks every setting;
    /// [`Publisher::new`](crate::rabbitmq::Publisher::new) calls it too.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the setting: a window outside 1 to
    /// 65535, a zero buffer, message size limit or refusals capacity.
    pub fn validate(&self) -> Result<()> {
        if self.window == 0 || self.window > usize::from(u16::MAX) {
            return Err(Error::invalid("window", "must be between 1 and 65535"));
        }
        if self.buffer == 0 {
            return Err(Error::invalid("buffer", "must be at least 1"));
        }
        if self.max_message_size == 0 {
            return Err(Error::invalid("max_message_size", "must be at least 1"));
        }
        if self.refusals_capacity == 0 {
            return Err(Error::invalid("refusals_capacity", "must be at least 1"));
        }
        Ok(())
    }
}
