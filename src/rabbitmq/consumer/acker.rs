//! [`RabbitAcker`]: the acker behind a [`Delivery`](crate::Delivery) from
//! the broker.
//! An ack or nack travels as a [`Settle`] to the channel owner, the one
//! thread that may touch the amiquip channel the delivery came on.
//!
//! Delivery tags restart on every channel, so a settle carries the number
//! of the owner's channel it belongs to; one for an older channel is
//! refused at the delivery ([`Error::StaleDelivery`]) and never applied to
//! another delivery.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::Sender;

use crate::error::{Error, Result};
use crate::message::Acker;

/// A settle command from a delivery to its channel's owner.
#[derive(Clone, Copy)]
pub(super) struct Settle {
    /// The owner's channel the delivery came on.
    pub(super) channel: u64,
    pub(super) tag: u64,
    pub(super) action: Action,
}

/// What to do with a delivery.
#[derive(Clone, Copy)]
pub(super) enum Action {
    Ack { multiple: bool },
    Nack { requeue: bool },
}

/// Where the settles of one consumer's deliveries go: shared by all of
/// them (one reference count per delivery instead of one per field).
pub(super) struct AckRoute {
    /// The owner's current channel; 0 while it has none.
    pub(super) current: AtomicU64,
    pub(super) settles: Sender<Settle>,
    pub(super) queue: String,
    /// The queue is a stream: a nack is sent as an ack (see
    /// [`Acker::nack`] below).
    pub(super) stream: bool,
}

/// The acker behind a delivery from the broker.
pub(super) struct RabbitAcker {
    /// The owner's channel the delivery came on: the owner counts its
    /// channels from 1, one more each time it consumes on a new one (after
    /// a reconnect, or after the broker closed the channel on a live
    /// connection, which is why the connection's generation is not enough).
    pub(super) channel: u64,
    pub(super) tag: u64,
    pub(super) route: Arc<AckRoute>,
}

impl RabbitAcker {
    fn send(self, action: Action) -> Result<()> {
        let route = &self.route;
        if route.current.load(Ordering::SeqCst) != self.channel {
            return Err(Error::StaleDelivery {
                what: format!(
                    "{} from queue `{}` (channel {})",
                    self.tag, route.queue, self.channel
                ),
            });
        }
        route
            .settles
            .send(Settle {
                channel: self.channel,
                tag: self.tag,
                action,
            })
            .map_err(|_| Error::closed(format!("consumer of queue `{}`", route.queue)))
    }
}

impl Acker for RabbitAcker {
    fn ack(self: Box<Self>, multiple: bool) -> Result<()> {
        (*self).send(Action::Ack { multiple })
    }

    /// A stream neither requeues nor rejects: the broker answers a nack
    /// by closing the whole connection (540 `NOT_IMPLEMENTED`), every
    /// consumer and publisher on it included. So on a stream a nack is an
    /// ack, with a WARN: the message stays in the stream at its offset,
    /// for a consumer that starts there again.
    fn nack(self: Box<Self>, requeue: bool) -> Result<()> {
        if self.route.stream {
            log::warn!(
                "consumer of stream `{}`: a stream cannot take a nack (requeue {requeue}); \
                 delivery {} is acked instead and stays in the stream",
                self.route.queue,
                self.tag
            );
            return (*self).send(Action::Ack { multiple: false });
        }
        (*self).send(Action::Nack { requeue })
    }
}
