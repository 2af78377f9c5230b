//! [`AdapterStats`] and [`ChannelStats`]: what every [`Adapter`](super::Adapter)
//! counts per channel, in one shape whichever adapter carries the
//! messages, and the [`ChannelCounters`] its threads count into.

use serde::{Deserialize, Serialize};

use crate::metrics::{name, Count};

/// The counters of every channel of an adapter, by channel name
/// ([`Adapter::stats`](super::Adapter::stats)).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterStats {
    /// One entry per channel, in name order.
    pub channels: Vec<ChannelStats>,
}

impl AdapterStats {
    /// The counters of channel `name`, if the adapter has it.
    pub fn channel(&self, name: &str) -> Option<&ChannelStats> {
        self.channels.iter().find(|c| c.name == name)
    }
}

/// What one channel counted since the adapter made it (counts start at 0
/// when an adapter restores a channel, too).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelStats {
    /// The channel's name.
    pub name: String,
    /// Messages the adapter took from the input and handed on: to the
    /// forwarders' output (simple), stored in the queue (durable), or to
    /// the publisher (rabbitmq, whose [`PublisherStats`] say what the broker
    /// confirmed).
    ///
    /// [`PublisherStats`]: crate::rabbitmq::PublisherStats
    pub published: u64,
    /// Deliveries put on the output, redeliveries included; counted as
    /// they are handed over, so a delivery in hand is always counted.
    pub delivered: u64,
    /// Deliveries acked. The simple adapter's acks are no-ops, so it
    /// counts none.
    pub acked: u64,
    /// Deliveries nacked (requeued or not). None on the simple adapter.
    pub nacked: u64,
    /// Messages waiting in the channel's own buffers now: sent to the
    /// input and not yet taken, plus deliveries on the output no reader
    /// took yet.
    pub buffered: u64,
}

/// The counters one channel's threads and ackers share, each also a
/// metric labelled with the channel's name.
#[derive(Debug)]
pub(crate) struct ChannelCounters {
    pub(crate) published: Count,
    pub(crate) delivered: Count,
    pub(crate) acked: Count,
    pub(crate) nacked: Count,
}

impl ChannelCounters {
    pub(crate) fn new(channel: &str) -> Self {
        let labels = [("channel", channel)];
        ChannelCounters {
            published: Count::new(name::CHANNEL_PUBLISHED, &labels),
            delivered: Count::new(name::CHANNEL_DELIVERED, &labels),
            acked: Count::new(name::CHANNEL_ACKED, &labels),
            nacked: Count::new(name::CHANNEL_NACKED, &labels),
        }
    }

    /// The counts now, for channel `name` with `buffered` messages in its
    /// buffers.
    pub(crate) fn stats(&self, name: &str, buffered: usize) -> ChannelStats {
        ChannelStats {
            name: name.to_string(),
            published: self.published.get(),
            delivered: self.delivered.get(),
            acked: self.acked.get(),
            nacked: self.nacked.get(),
            buffered: buffered as u64,
        }
    }
}

/// The adapter's stats of `channels`, sorted by name.
pub(crate) fn adapter_stats(channels: impl Iterator<Item = ChannelStats>) -> AdapterStats {
    let mut channels: Vec<ChannelStats> = channels.collect();
    channels.sort_by(|a, b| a.name.cmp(&b.name));
    AdapterStats { channels }
}
