//! [`FailurePublisher`]: the publisher a consumer sends retries and dead
//! letters through. A [`RabbitClient`](crate::rabbitmq::RabbitClient)'s
//! consumers use the client's; a consumer started alone makes one of its
//! own at its first failure, so that a consumer whose handler never fails
//! costs no publisher thread or channel, and closes it when it closes.

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::rabbitmq::connection::Shared;
use crate::rabbitmq::publisher::{Publisher, PublisherConfig};
use crate::thread::lock;

/// The publisher of a consumer's failed messages (see the module docs).
pub(super) struct FailurePublisher {
    shared: Arc<Shared>,
    queue: String,
    given: Option<Publisher>,
    /// The consumer's own publisher once made; `Err` once closed.
    own: Mutex<std::result::Result<Option<Publisher>, ()>>,
}

impl FailurePublisher {
    /// Publishes through `given`, or through one of its own on `shared`.
    pub(super) fn new(shared: Arc<Shared>, queue: &str, given: Option<Publisher>) -> Self {
        FailurePublisher {
            shared,
            queue: queue.to_string(),
            given,
            own: Mutex::new(Ok(None)),
        }
    }

    /// The publisher to use, made now if it is the first time.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once [`close`](Self::close) was called; what
    /// starting a publisher returned.
    pub(super) fn get(&self) -> Result<Publisher> {
        if let Some(publisher) = &self.given {
            return Ok(publisher.clone());
        }
        let mut own = lock(&self.own);
        match &mut *own {
            Err(()) => Err(Error::closed(format!(
                "the failure publisher of the consumer of `{}`",
                self.queue
            ))),
            Ok(Some(publisher)) => Ok(publisher.clone()),
            Ok(slot @ None) => {
                let publisher = Publisher::on(self.shared.clone(), PublisherConfig::default())?;
                *slot = Some(publisher.clone());
                Ok(publisher)
            }
        }
    }

    /// Closes the publisher of its own, if it made one; none is made after.
    ///
    /// # Errors
    ///
    /// What closing it returned.
    pub(super) fn close(&self) -> Result<()> {
        let own = std::mem::replace(&mut *lock(&self.own), Err(()));
        match own {
            Ok(Some(publisher)) => publisher.close(),
            Ok(None) | Err(()) => Ok(()),
        }
    }
}
