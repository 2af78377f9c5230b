//! A subscription of the [`Client`](super::Client): deliveries in queue
//! order as an iterator, each settled over the connection.
//!
//! # Guarantees
//!
//! - Deliveries come in the order the server pushed them (queue order).
//! - Acks and nacks go out without waiting for a reply, like AMQP's
//!   basic.ack: one lost with the connection means the message comes again
//!   (at least once), never that it is lost.
//! - Dropping the subscription unsubscribes: the server gives back what it
//!   had pushed and was not settled.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::client::{lock, Inner};
use super::protocol::{Request, WireDelivery, WireEntry};
use crate::error::{Error, Result};
use crate::message::{Acker, Delivery};

/// Deliveries of one subscription, in queue order. Iterating blocks for
/// the next one; the iterator ends after yielding the error that ended the
/// connection. Dropping it unsubscribes (its unsettled deliveries are
/// redelivered).
pub struct Subscription {
    inner: Arc<Inner>,
    sub: u64,
    rx: Receiver<Vec<WireDelivery>>,
    buffered: VecDeque<WireDelivery>,
    ended: bool,
}

impl Subscription {
    pub(super) fn new(inner: Arc<Inner>, sub: u64, rx: Receiver<Vec<WireDelivery>>) -> Self {
        Subscription {
            inner,
            sub,
            rx,
            buffered: VecDeque::new(),
            ended: false,
        }
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("sub", &self.sub)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// The next delivery, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// [`Error::Disconnected`] (or the server's error) when the connection ended.
    pub fn recv(&mut self) -> Result<Delivery> {
        self.next_deadline(None)?
            .ok_or_else(|| Error::disconnected_reason("queue server subscription", "ended"))
    }

    /// The next delivery, or `Ok(None)` when none came within `timeout` (a
    /// receive that times out is no error: see the crate docs on timeouts).
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Delivery>> {
        self.next_deadline(Some(Instant::now() + timeout))
    }

    fn next_deadline(&mut self, deadline: Option<Instant>) -> Result<Option<Delivery>> {
        loop {
            if let Some(d) = self.buffered.pop_front() {
                return Ok(Some(self.delivery(d)));
            }
            let got = match deadline {
                None => self.rx.recv().map_err(|_| ()),
                Some(d) => match self.rx.recv_deadline(d) {
                    Ok(v) => Ok(v),
                    Err(RecvTimeoutError::Timeout) => return Ok(None),
                    Err(RecvTimeoutError::Disconnected) => Err(()),
                },
            };
            match got {
                Ok(batch) => self.buffered.extend(batch),
                Err(()) => return Err(self.inner.end_error()),
            }
        }
    }

    fn delivery(&self, d: WireDelivery) -> Delivery {
        let acker = RemoteAcker {
            inner: self.inner.clone(),
            sub: self.sub,
            entry: d.entry,
        };
        Delivery::new(d.message.into(), Box::new(acker)).with_redelivered(d.deliveries > 1)
    }
}

impl Iterator for Subscription {
    type Item = Result<Delivery>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        match self.next_deadline(None) {
            Ok(Some(d)) => Some(Ok(d)),
            Ok(None) => None,
            Err(e) => {
                self.ended = true;
                Some(Err(e))
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        lock(&self.inner.subs).remove(&self.sub);
        // Fire and forget: id 0 gets no reply.
        let _ = self.inner.send(&Request::Unsubscribe {
            id: 0,
            sub: self.sub,
        });
    }
}

/// Settles a delivery over the connection, without waiting for a reply
/// (like AMQP's basic.ack): an ack lost with the connection means the
/// message is delivered again.
struct RemoteAcker {
    inner: Arc<Inner>,
    sub: u64,
    entry: WireEntry,
}

impl Acker for RemoteAcker {
    fn ack(self: Box<Self>, multiple: bool) -> Result<()> {
        self.inner.send(&Request::Ack {
            id: 0,
            sub: self.sub,
            entries: vec![self.entry],
            multiple,
        })
    }

    fn nack(self: Box<Self>, requeue: bool) -> Result<()> {
        self.inner.send(&Request::Nack {
            id: 0,
            sub: self.sub,
            entries: vec![self.entry],
            requeue,
        })
    }
}
