//! The publisher block: bags in, durable publishes out, a reply to each
//! sender.
//!
//! A block sends the publisher a bag with the bytes to publish under
//! [`BODY`] (bytes or a string) and, optionally, anything under [`ID`]. The
//! publisher hands the body to its [`Publish`] implementation, which
//! returns once the message is as safe as that implementation makes it,
//! then replies to the sender (the bag's `__from`) with [`ID`] echoed and
//! [`OK`] true, or [`OK`] false and the reason under [`ERROR`]. A sender
//! that acknowledges to its own client only on `ok: true` never
//! acknowledges what was not published.
//!
//! Bags are published one at a time in the order they arrive (they come
//! through the block's event thread), and every bag queued before the
//! shutdown is published before the block's `finish`.
//!
//! What "published" means is the [`Publish`] implementation's:
//! [`AdapterPublisher`] sends into any [`Adapter`]'s input channel (as safe
//! as that adapter's input: in process for the simple adapter);
//! [`QueuePublisher`](crate::block::sinks) waits for the durable queue's
//! fsync and [`RabbitPublisher`](crate::block::sinks) for the broker's
//! confirm (see [`sinks`](crate::block::sinks)).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use crossbeam_channel::Sender;

use crate::block::bag::Bag;
use crate::block::callbacks::Callbacks;
use crate::block::controller::Controller;
use crate::block::lifecycle::Block;
use crate::block::value::Value;
use crate::channel::Adapter;
use crate::error::{Error, Result};
use crate::message::Message;

/// The key of the bytes to publish (bytes or a string).
pub const BODY: &str = "body";
/// The key of the sender's own reference, echoed in the reply.
pub const ID: &str = "id";
/// The key of the reply's outcome: a bool.
pub const OK: &str = "ok";
/// The key of the reply's error text, when `ok` is false.
pub const ERROR: &str = "error";

/// Publishes one message and returns once it is as safe as the
/// implementation promises.
pub trait Publish: Send + Sync + 'static {
    /// Publishes `body`.
    ///
    /// # Errors
    ///
    /// Why it was not published; the caller still has the bytes.
    fn publish(&self, body: &[u8]) -> Result<()>;
}

/// A shared publisher publishes as the one it shares.
impl<P: Publish + ?Sized> Publish for Arc<P> {
    fn publish(&self, body: &[u8]) -> Result<()> {
        (**self).publish(body)
    }
}

/// Publishes into the input of a channel of any [`Adapter`].
#[derive(Debug, Clone)]
pub struct AdapterPublisher {
    channel: String,
    input: Sender<Message>,
}

impl AdapterPublisher {
    /// Publishes into `adapter`'s channel `channel`, which must exist and
    /// allow input.
    ///
    /// # Errors
    ///
    /// As [`Adapter::input`].
    pub fn new(adapter: &dyn Adapter, channel: &str) -> Result<Self> {
        Ok(AdapterPublisher {
            channel: channel.to_string(),
            input: adapter.input(channel)?,
        })
    }
}

impl Publish for AdapterPublisher {
    fn publish(&self, body: &[u8]) -> Result<()> {
        self.input
            .send(body.into())
            .map_err(|_| Error::closed(format!("channel `{}`", self.channel)))
    }
}

type Make = dyn Fn(&Value) -> Result<Arc<dyn Publish>> + Send + Sync;

/// The publisher block. See the [module docs](self).
///
/// ```
/// use syncmq::block::{AdapterPublisher, PublisherBlock, Registry};
/// use syncmq::{Adapter, ChannelSpec, Mode, SimpleAdapter};
/// use std::sync::Arc;
///
/// let adapter = Arc::new(SimpleAdapter::new());
/// adapter.new_channel(ChannelSpec::new("lines", Mode::Both)).unwrap();
/// let mut registry = Registry::new();
/// registry.register("publisher", move |_| {
///     let adapter = adapter.clone();
///     // Swap this one constructor to publish elsewhere.
///     PublisherBlock::new(move |_conf| AdapterPublisher::new(&*adapter, "lines"))
/// }).unwrap();
/// ```
pub struct PublisherBlock {
    make: Box<Make>,
    publisher: Mutex<Option<Arc<dyn Publish>>>,
}

impl fmt::Debug for PublisherBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublisherBlock").finish_non_exhaustive()
    }
}

impl PublisherBlock {
    /// A publisher block whose `init` calls `make` with the block's
    /// configuration to get its [`Publish`] implementation.
    pub fn new<P, F>(make: F) -> Self
    where
        P: Publish,
        F: Fn(&Value) -> Result<P> + Send + Sync + 'static,
    {
        PublisherBlock {
            make: Box::new(move |conf| Ok(Arc::new(make(conf)?) as Arc<dyn Publish>)),
            publisher: Mutex::new(None),
        }
    }

    fn publisher(&self) -> Option<Arc<dyn Publish>> {
        self.publisher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Block for PublisherBlock {
    fn init(&self, conf: &Value) -> Result<()> {
        let publisher = (self.make)(conf)?;
        *self
            .publisher
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(publisher);
        Ok(())
    }

    fn run(&self, _ctl: Controller) {}

    fn finish(&self) -> Result<()> {
        self.publisher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        Ok(())
    }

    fn callbacks(&self) -> Callbacks {
        Callbacks::ENQUEUE
    }

    fn on_enqueue(&self, ctl: &Controller, mut bag: Bag) {
        let outcome = match (bag.get(BODY).and_then(Value::as_bytes), self.publisher()) {
            (Some(body), Some(publisher)) => publisher.publish(body),
            (None, _) => Err(Error::invalid(
                BODY,
                "a bag to the publisher carries the bytes to publish under `body`",
            )),
            (_, None) => Err(Error::closed("publisher block")),
        };
        let mut reply = Bag::new().with(OK, outcome.is_ok());
        if let Some(id) = bag.remove(ID) {
            reply.insert(ID, id);
        }
        if let Err(e) = &outcome {
            log::warn!("publisher `{}`: {e}", ctl.responsibility());
            reply.insert(ERROR, e.to_string());
        }
        let Some(from) = bag.from() else {
            return;
        };
        match ctl.controller(from) {
            Some(sender) => {
                match sender.try_enqueue(reply) {
                    Ok(_) => {}
                    // The sender finished first (it does, in a shutdown):
                    // expected, and once per bag still queued.
                    Err(e @ Error::Closed(_)) => log::debug!(
                        "publisher `{}` could not reply to `{from}`: {e}",
                        ctl.responsibility()
                    ),
                    Err(e) => log::warn!(
                        "publisher `{}` could not reply to `{from}`: {e}",
                        ctl.responsibility()
                    ),
                }
            }
            None => log::warn!(
                "publisher `{}`: no block `{from}` to reply to",
                ctl.responsibility()
            ),
        }
    }
}
