//! What syncmq records through the [`metrics`](https://docs.rs/metrics)
//! crate facade with feature `metrics`: every metric's name (the README's
//! "Metrics" table lists them), and the handles the owners count with.
//!
//! The handles are the crate's one way of counting: a [`Count`] is the
//! number a `stats()` snapshot reads and, with the feature, the metric
//! counter of the same event, so that a call site stays one line. Handles
//! are made once per owner (per topic and subscriber, per connection, per
//! channel) with their labels, so a hot path only adds to them: no label
//! allocation and no registry lookup per message. A recorder installed
//! after an owner was made is not seen by that owner's handles (the
//! `metrics` crate's rule): install it first.
//!
//! Without the feature every metric handle is a zero-sized type and every
//! helper an empty inline function: no call into `metrics` is compiled in
//! (a [`Count`] is then its atomic number alone).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
#[cfg(feature = "metrics")]
use std::time::Instant;

/// The names of the metrics, `syncmq_<part>_<what>`; counters end in
/// `_total`, histograms of durations in `_seconds`.
pub(crate) mod name {
    /// Entries published to a subscriber's queue; labels `topic`, `subscriber`.
    pub(crate) const QUEUE_PUBLISHED: &str = "syncmq_queue_published_total";
    /// Deliveries, redeliveries included; `topic`, `subscriber`.
    pub(crate) const QUEUE_DELIVERED: &str = "syncmq_queue_delivered_total";
    /// Deliveries of an entry delivered before; `topic`, `subscriber`.
    pub(crate) const QUEUE_REDELIVERED: &str = "syncmq_queue_redelivered_total";
    /// Deliveries acked; `topic`, `subscriber`.
    pub(crate) const QUEUE_ACKED: &str = "syncmq_queue_acked_total";
    /// Deliveries nacked; `topic`, `subscriber`.
    pub(crate) const QUEUE_NACKED: &str = "syncmq_queue_nacked_total";
    /// Entries moved to the dead-letter queue; `topic`, `subscriber`.
    pub(crate) const QUEUE_DEAD_LETTERED: &str = "syncmq_queue_dead_lettered_total";
    /// Messages dropped on expiry; `topic`, `subscriber`.
    pub(crate) const QUEUE_EXPIRED: &str = "syncmq_queue_expired_total";
    /// Entries waiting to be delivered (gauge); `topic`, `subscriber`.
    pub(crate) const QUEUE_DEPTH: &str = "syncmq_queue_depth";
    /// Entries delivered and not acked (gauge); `topic`, `subscriber`.
    pub(crate) const QUEUE_IN_FLIGHT: &str = "syncmq_queue_in_flight";
    /// From a `Queue::publish` call to its messages being durable.
    pub(crate) const QUEUE_PUBLISH_SECONDS: &str = "syncmq_queue_publish_seconds";
    /// One group-commit sync (fsync) of the queue's store.
    pub(crate) const QUEUE_FSYNC_SECONDS: &str = "syncmq_queue_fsync_seconds";

    /// `basic.publish` calls, resends included; label `connection`.
    pub(crate) const RABBITMQ_PUBLISHED: &str = "syncmq_rabbitmq_published_total";
    /// Publishes the broker confirmed; `connection`.
    pub(crate) const RABBITMQ_CONFIRMS: &str = "syncmq_rabbitmq_confirms_total";
    /// Mandatory publishes returned unroutable; `connection`.
    pub(crate) const RABBITMQ_RETURNS: &str = "syncmq_rabbitmq_returns_total";
    /// Publishes the broker nacked; `connection`.
    pub(crate) const RABBITMQ_PUBLISH_NACKED: &str = "syncmq_rabbitmq_publish_nacked_total";
    /// Publishes the broker refused by closing the channel, or that it
    /// could never take; `connection`.
    pub(crate) const RABBITMQ_REFUSED: &str = "syncmq_rabbitmq_refused_total";
    /// Messages sent again after a lost channel; `connection`.
    pub(crate) const RABBITMQ_RESENT: &str = "syncmq_rabbitmq_resent_total";
    /// Channels a publisher or consumer opened after its first; `connection`
    /// (a publisher) or `queue` (a consumer).
    pub(crate) const RABBITMQ_RECONNECTS: &str = "syncmq_rabbitmq_reconnects_total";
    /// Messages a publisher holds until confirmed (gauge); `connection`.
    pub(crate) const RABBITMQ_BUFFERED: &str = "syncmq_rabbitmq_buffered";
    /// From a publish being taken to its confirm; `connection`.
    pub(crate) const RABBITMQ_CONFIRM_SECONDS: &str = "syncmq_rabbitmq_confirm_seconds";
    /// Deliveries a consumer received; label `queue`.
    pub(crate) const RABBITMQ_DELIVERED: &str = "syncmq_rabbitmq_delivered_total";
    /// Deliveries the broker marked redelivered; `queue`.
    pub(crate) const RABBITMQ_REDELIVERED: &str = "syncmq_rabbitmq_redelivered_total";
    /// Deliveries acked to the broker; `queue`.
    pub(crate) const RABBITMQ_ACKED: &str = "syncmq_rabbitmq_acked_total";
    /// Deliveries nacked to the broker; `queue`.
    pub(crate) const RABBITMQ_NACKED: &str = "syncmq_rabbitmq_nacked_total";
    /// Failed messages published to a dead-letter queue; `queue`.
    pub(crate) const RABBITMQ_DEAD_LETTERED: &str = "syncmq_rabbitmq_dead_lettered_total";

    /// Messages an adapter took from a channel's input; label `channel`.
    pub(crate) const CHANNEL_PUBLISHED: &str = "syncmq_channel_published_total";
    /// Deliveries put on a channel's output; `channel`.
    pub(crate) const CHANNEL_DELIVERED: &str = "syncmq_channel_delivered_total";
    /// Deliveries of a channel acked; `channel`.
    pub(crate) const CHANNEL_ACKED: &str = "syncmq_channel_acked_total";
    /// Deliveries of a channel nacked; `channel`.
    pub(crate) const CHANNEL_NACKED: &str = "syncmq_channel_nacked_total";

    /// Connections the queue server accepted.
    pub(crate) const SERVER_ACCEPTED: &str = "syncmq_server_accepted_total";
    /// Connections the queue server refused (too many open).
    pub(crate) const SERVER_REFUSED: &str = "syncmq_server_refused_total";
    /// Frames read from clients.
    pub(crate) const SERVER_FRAMES_IN: &str = "syncmq_server_frames_in_total";
    /// Frames written to clients.
    pub(crate) const SERVER_FRAMES_OUT: &str = "syncmq_server_frames_out_total";

    /// Outbox rows the sink confirmed.
    pub(crate) const OUTBOX_DELIVERED: &str = "syncmq_outbox_delivered_total";
    /// Outbox sends to be made again.
    pub(crate) const OUTBOX_RETRIES: &str = "syncmq_outbox_retries_total";
    /// Outbox rows dead-lettered.
    pub(crate) const OUTBOX_DEAD_LETTERED: &str = "syncmq_outbox_dead_lettered_total";
    /// Outbox rows not yet sent (gauge).
    pub(crate) const OUTBOX_PENDING: &str = "syncmq_outbox_pending";
    /// Outbox rows in the dead-letter state (gauge).
    pub(crate) const OUTBOX_DEAD_LETTERS: &str = "syncmq_outbox_dead_letters";
    /// From a row's commit to the sink confirming it.
    pub(crate) const OUTBOX_SEND_SECONDS: &str = "syncmq_outbox_send_seconds";
}

/// Whether the metrics are compiled in: work done only to feed a metric
/// (a store count for a gauge) is skipped without them.
pub(crate) const ENABLED: bool = cfg!(feature = "metrics");

/// A metric's labels: static keys, values borrowed at the handle's making.
pub(crate) type Labels<'a> = &'a [(&'static str, &'a str)];

#[cfg(feature = "metrics")]
fn owned(labels: Labels<'_>) -> Vec<::metrics::Label> {
    labels
        .iter()
        .map(|(key, value)| ::metrics::Label::new(*key, (*value).to_string()))
        .collect()
}

/// A metric counter; nothing without the feature. The default records
/// nothing either: a [`Count`] kept for the stats alone.
#[derive(Clone, Default)]
pub(crate) struct Counter {
    #[cfg(feature = "metrics")]
    inner: Option<::metrics::Counter>,
}

impl Counter {
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables, clippy::unused_self))]
    pub(crate) fn new(name: &'static str, labels: Labels<'_>) -> Self {
        Counter {
            #[cfg(feature = "metrics")]
            inner: Some(::metrics::counter!(name, owned(labels))),
        }
    }

    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables, clippy::unused_self))]
    pub(crate) fn increment(&self, n: u64) {
        #[cfg(feature = "metrics")]
        if let Some(inner) = &self.inner {
            inner.increment(n);
        }
    }
}

/// A metric gauge; nothing without the feature.
#[derive(Clone, Default)]
pub(crate) struct Gauge {
    #[cfg(feature = "metrics")]
    inner: Option<::metrics::Gauge>,
}

impl Gauge {
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables, clippy::unused_self))]
    pub(crate) fn new(name: &'static str, labels: Labels<'_>) -> Self {
        Gauge {
            #[cfg(feature = "metrics")]
            inner: Some(::metrics::gauge!(name, owned(labels))),
        }
    }

    /// Sets the gauge to `value` (a count; a gauge is an `f64`).
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables, clippy::unused_self))]
    pub(crate) fn set(&self, value: u64) {
        #[cfg(feature = "metrics")]
        if let Some(inner) = &self.inner {
            // Counts far below 2^53: exact as an f64.
            #[allow(clippy::cast_precision_loss)]
            inner.set(value as f64);
        }
    }
}

impl Gauge {
    /// Moves the gauge by `delta`, atomically: for a gauge that several
    /// threads move.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables, clippy::unused_self))]
    pub(crate) fn add(&self, delta: f64) {
        #[cfg(feature = "metrics")]
        if let Some(inner) = &self.inner {
            inner.increment(delta);
        }
    }
}

/// A metric histogram of durations, in seconds; nothing without the
/// feature.
#[derive(Clone, Default)]
pub(crate) struct Histogram {
    #[cfg(feature = "metrics")]
    inner: Option<::metrics::Histogram>,
}

impl Histogram {
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables, clippy::unused_self))]
    pub(crate) fn new(name: &'static str, labels: Labels<'_>) -> Self {
        Histogram {
            #[cfg(feature = "metrics")]
            inner: Some(::metrics::histogram!(name, owned(labels))),
        }
    }

    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables, clippy::unused_self))]
    pub(crate) fn record(&self, took: Duration) {
        #[cfg(feature = "metrics")]
        if let Some(inner) = &self.inner {
            inner.record(took.as_secs_f64());
        }
    }
}

/// When something started, for a [`Histogram`]; without the feature it
/// holds nothing and never reads the clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stopwatch {
    #[cfg(feature = "metrics")]
    started: Instant,
}

impl Stopwatch {
    #[inline]
    pub(crate) fn start() -> Self {
        Stopwatch {
            #[cfg(feature = "metrics")]
            started: Instant::now(),
        }
    }

    /// Records the time since the start in `histogram`.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables, clippy::unused_self))]
    pub(crate) fn record(self, histogram: &Histogram) {
        #[cfg(feature = "metrics")]
        histogram.record(self.started.elapsed());
    }
}

/// A number a `stats()` snapshot reads, and with the feature the metric
/// counter of the same event: one [`add`](Self::add) counts both.
#[derive(Default)]
pub(crate) struct Count {
    value: AtomicU64,
    metric: Counter,
}

impl Count {
    /// A count also recorded as metric `name` with `labels`.
    pub(crate) fn new(name: &'static str, labels: Labels<'_>) -> Self {
        Count {
            value: AtomicU64::new(0),
            metric: Counter::new(name, labels),
        }
    }

    #[inline]
    pub(crate) fn add(&self, n: u64) {
        self.value.fetch_add(n, Ordering::Relaxed);
        self.metric.increment(n);
    }

    pub(crate) fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

// The handles hold no secrets worth hiding; Debug for the owners' derives.
macro_rules! debug_as_name {
    ($($t:ident),*) => {$(
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(stringify!($t))
            }
        }
    )*};
}
debug_as_name!(Counter, Gauge, Histogram);
