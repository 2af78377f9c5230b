//! The publisher block: bags in, messages to a [`Sink`] out, a reply to
//! each sender once the sink has them safe.

use std::fmt;
use std::sync::Mutex;

use crate::block::bag::Bag;
use crate::block::controller::Controller;
use crate::block::init_context::InitContext;
use crate::block::lifecycle::Block;
use crate::block::value::Value;
use crate::error::{Error, Result};
use crate::message::Message;
use crate::sink::Sink;
use crate::thread::lock;

/// The key of the bytes to publish (bytes or a string).
pub const BODY: &str = "body";
/// The key of the sender's own reference, echoed in the reply.
pub const ID: &str = "id";
/// The key of the reply's outcome: a bool.
pub const OK: &str = "ok";
/// The key of the reply's error text, when `ok` is false.
pub const ERROR: &str = "error";

/// Makes the block's sink from the block's configuration, in `init`.
type Make = dyn Fn(&Value) -> Result<Box<dyn Sink>> + Send + Sync;

/// The publisher block: publishes the body of each bag it is sent to a
/// [`Sink`], then answers the sender.
///
/// A block sends the publisher a bag with the bytes to publish under
/// [`BODY`] (bytes or a string) and, optionally, anything under [`ID`]. The
/// publisher sends the body to its sink and flushes it, so the message is
/// as safe as that sink makes it, then replies to the sender (the bag's
/// `__from`) with [`ID`] echoed and [`OK`] true, or [`OK`] false and the
/// reason under [`ERROR`]. A sender that acknowledges to its own client
/// only on `ok: true` never acknowledges what was not published.
///
/// Bags are published one at a time in the order they arrive (they come
/// through the block's event thread), and every bag queued before the
/// runtime closes is published before the block's `finish`, which drops
/// the sink.
///
/// What "safe" means is the sink's: a [`QueueSink`](crate::QueueSink)
/// flushes once the durable queue's fsync is done, a
/// [`RabbitSink`](crate::RabbitSink) once the broker confirmed, a
/// [`ChannelSink`](crate::ChannelSink) once the channel's input took the
/// message (in process only, for the simple adapter).
///
/// ```
/// use syncmq::block::{PublisherBlock, Registry};
/// use syncmq::{Adapter, ChannelSink, ChannelSpec, Mode, SimpleAdapter};
/// use std::sync::Arc;
///
/// let adapter = Arc::new(SimpleAdapter::new());
/// adapter.new_channel(ChannelSpec::new("lines", Mode::Both)).unwrap();
/// let mut registry = Registry::new();
/// registry.register("publisher", move |_| {
///     let adapter = adapter.clone();
///     // Swap this one constructor to publish elsewhere.
///     PublisherBlock::new(move |_conf| ChannelSink::new(&*adapter, "lines"))
/// }).unwrap();
/// ```
pub struct PublisherBlock {
    make: Box<Make>,
    sink: Mutex<Option<Box<dyn Sink>>>,
}

impl fmt::Debug for PublisherBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublisherBlock").finish_non_exhaustive()
    }
}

impl PublisherBlock {
    /// A publisher block whose `init` calls `make` with the block's
    /// configuration to get its sink.
    pub fn new<S, F>(make: F) -> Self
    where
        S: Sink,
        F: Fn(&Value) -> Result<S> + Send + Sync + 'static,
    {
        PublisherBlock {
            make: Box::new(move |conf| Ok(Box::new(make(conf)?) as Box<dyn Sink>)),
            sink: Mutex::new(None),
        }
    }

    /// Sends `body` and waits until the sink has it safe.
    fn publish(&self, body: &[u8]) -> Result<()> {
        let mut sink = lock(&self.sink);
        let sink = sink
            .as_mut()
            .ok_or_else(|| Error::closed("publisher block"))?;
        sink.send(&Message::new(body.to_vec()))?;
        sink.flush()
    }
}

impl Block for PublisherBlock {
    fn init(&self, init: &InitContext<'_>) -> Result<()> {
        *lock(&self.sink) = Some((self.make)(init.conf())?);
        Ok(())
    }

    fn run(&self, _ctl: Controller) {}

    fn finish(&self) -> Result<()> {
        lock(&self.sink).take();
        Ok(())
    }

    fn on_enqueue(&self, ctl: &Controller, mut bag: Bag) {
        let outcome = match bag.get(BODY).and_then(Value::as_bytes) {
            Some(body) => self.publish(body),
            None => Err(Error::invalid(
                BODY,
                "a bag to the publisher carries the bytes to publish under `body`",
            )),
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
                    Ok(()) => {}
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
