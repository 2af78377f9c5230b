//! [`RemoteSubscriber`]: a subscription of a
//! [`QueueClient`](super::QueueClient), and the acker that settles its
//! deliveries over the connection.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::client_connection::ClientConnection;
use super::protocol::{Request, WireDelivery, WireEntry};
use crate::error::{Error, Result};
use crate::message::{Acker, Delivery};

/// The deliveries of one subscription on a queue server, in queue order,
/// from [`QueueClient::subscribe`](super::QueueClient::subscribe).
///
/// Iterating blocks for the next delivery; the iterator ends after
/// yielding the error that ended the connection.
///
/// # Guarantees
///
/// - Deliveries come in the order the server pushed them (queue order), at
///   most the subscription's batch unsettled at a time.
/// - [`Delivery::ack`] and [`Delivery::nack`] return without waiting for a
///   reply, like AMQP's basic.ack: `Ok` means the server will read it
///   before any later request of the same client (it answers requests in
///   order), and [`QueueClient::close`](super::QueueClient::close) waits
///   until it has. While the subscriber still holds received deliveries
///   not handed out yet, acks are held back (at most a quarter of the
///   batch, up to 64, and 1 ms after the oldest) to go out together in
///   one write, which the server applies at once: they leave at the latest
///   when the subscriber runs out of deliveries in hand, and before any
///   other frame of the client. Nacks are sent at once.
///   An ack lost with the connection means the message comes again (at
///   least once), never that it is lost; once the connection is gone, an
///   ack or nack is [`Error::StaleDelivery`].
/// - A delivery dropped unsettled is nacked with requeue.
/// - Dropping the subscriber unsubscribes: the server gives back what it
///   had pushed and was not settled.
pub struct RemoteSubscriber {
    connection: Arc<ClientConnection>,
    sub: u64,
    rx: Receiver<Vec<WireDelivery>>,
    buffered: VecDeque<WireDelivery>,
    /// The most acks held back at once: a quarter of the batch, at most
    /// 64 (past that one write saves nothing more).
    hold_limit: usize,
    /// Whether the connection was told this subscription has deliveries
    /// in hand (so its acks may be held back).
    busy: bool,
    ended: bool,
}

impl RemoteSubscriber {
    pub(super) fn new(
        connection: Arc<ClientConnection>,
        sub: u64,
        batch: u32,
        rx: Receiver<Vec<WireDelivery>>,
    ) -> Self {
        RemoteSubscriber {
            connection,
            sub,
            rx,
            buffered: VecDeque::new(),
            hold_limit: (batch as usize / 4).clamp(1, 64),
            busy: false,
            ended: false,
        }
    }

    /// The next delivery, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// [`Error::Disconnected`] (or the server's error) when the connection
    /// ended.
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
                self.note_in_hand();
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
                Err(()) => return Err(self.connection.end_error()),
            }
        }
    }

    /// Tells the connection whether deliveries are still in hand (after
    /// taking in what has arrived meanwhile), so that acks are held back
    /// only while the consumer is coming back for more.
    fn note_in_hand(&mut self) {
        if self.buffered.is_empty() {
            self.buffered.extend(self.rx.try_iter().flatten());
        }
        match (self.buffered.is_empty(), self.busy) {
            (false, false) => self.connection.busy(self.sub, self.hold_limit),
            (true, true) => {
                if let Err(e) = self.connection.idle(self.sub) {
                    // The acks' own calls report the connection's end.
                    log::debug!("client: sending held acks: {e}");
                }
            }
            _ => return,
        }
        self.busy = !self.busy;
    }

    fn delivery(&self, d: WireDelivery) -> Delivery {
        let acker = RemoteAcker {
            connection: self.connection.clone(),
            sub: self.sub,
            entry: d.entry,
        };
        Delivery::new(d.message.into(), Box::new(acker)).with_redelivered(d.deliveries > 1)
    }
}

impl fmt::Debug for RemoteSubscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteSubscriber")
            .field("sub", &self.sub)
            .finish_non_exhaustive()
    }
}

impl Iterator for RemoteSubscriber {
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

impl Drop for RemoteSubscriber {
    fn drop(&mut self) {
        self.connection.remove_route(self.sub);
        // Id 0: no reply to wait for (a drop cannot wait, or report).
        let _ = self.connection.send(&Request::Unsubscribe {
            id: 0,
            sub: self.sub,
        });
    }
}

/// Settles a delivery over the connection, without waiting for a reply
/// (see [`RemoteSubscriber`]'s guarantees).
struct RemoteAcker {
    connection: Arc<ClientConnection>,
    sub: u64,
    entry: WireEntry,
}

impl RemoteAcker {
    /// `sent`, the outcome of sending the ack or nack, as the caller sees
    /// it.
    fn settle(&self, sent: Result<()>) -> Result<()> {
        sent.map_err(|e| {
            // The server gives back what a gone connection held: the
            // delivery is stale, as on any adapter whose connection went.
            if matches!(e, Error::Disconnected { .. }) || self.connection.has_ended() {
                let WireEntry {
                    priority,
                    position,
                    delivery,
                } = self.entry;
                Error::StaleDelivery {
                    what: format!(
                        "{priority}/{position} (delivery {delivery}) of queue server subscription {}",
                        self.sub
                    ),
                }
            } else {
                e
            }
        })
    }
}

impl Acker for RemoteAcker {
    fn ack(self: Box<Self>, multiple: bool) -> Result<()> {
        let sent = if multiple {
            self.connection.send(&Request::Ack {
                id: 0,
                sub: self.sub,
                entries: vec![self.entry],
                multiple,
            })
        } else {
            self.connection.ack(self.sub, self.entry)
        };
        self.settle(sent)
    }

    fn nack(self: Box<Self>, requeue: bool) -> Result<()> {
        let sent = self.connection.send(&Request::Nack {
            id: 0,
            sub: self.sub,
            entries: vec![self.entry],
            requeue,
        });
        self.settle(sent)
    }
}
