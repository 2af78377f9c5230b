//! [`Shared`]: what the workers of a connection (publisher and consumer
//! threads) share with its supervisor, and the [`Command`]s they send it.
//!
//! The supervisor alone holds the `&mut amiquip::Connection` that opening a
//! channel or declaring needs, so a worker asks for those with a command
//! and blocks on the reply.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{select, Receiver, Sender};

use crate::error::{Error, Result};
use crate::rabbitmq::topology::Declaration;
use crate::thread::lock;
use crate::waiter::{ConnectionWaiter, Generation};

/// A request from a worker to the supervisor.
pub(super) enum Command {
    /// Open a channel on the live connection.
    OpenChannel(Sender<Result<(amiquip::Channel, Generation)>>),
    /// Record these and declare them now if connected.
    Declare(Vec<Declaration>, Sender<Result<()>>),
    /// Declare the whole recorded topology again now (someone deleted a
    /// queue under a consumer).
    Redeclare(Sender<Result<()>>),
}

/// What workers share with the supervisor.
pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) waiter: Arc<ConnectionWaiter>,
    commands: Sender<Command>,
    /// One sender per worker; each connect sends on all of them.
    wakers: Mutex<Vec<Sender<Generation>>>,
    blocked: Mutex<Option<String>>,
    /// `host:port` of the node connected to, while connected.
    address: Mutex<Option<String>>,
    closed: AtomicBool,
}

impl Shared {
    /// The state of connection `name`, whose supervisor takes `commands`.
    pub(super) fn new(name: String, commands: Sender<Command>) -> Self {
        Shared {
            name,
            waiter: Arc::new(ConnectionWaiter::new()),
            commands,
            wakers: Mutex::new(Vec::new()),
            blocked: Mutex::new(None),
            address: Mutex::new(None),
            closed: AtomicBool::new(false),
        }
    }

    /// A receiver that gets the generation of every later connect. A worker
    /// that cannot get a channel waits on it (next to its other inputs).
    pub(crate) fn wake_on_connect(&self) -> Receiver<Generation> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        lock(&self.wakers).push(tx);
        rx
    }

    /// Wakes every worker waiting for a connect: `generation` is up.
    pub(super) fn wake_all(&self, generation: Generation) {
        for waker in lock(&self.wakers).iter() {
            // Full: that worker has a wake-up pending already.
            let _ = waker.try_send(generation);
        }
    }

    /// A new channel on the live connection.
    ///
    /// # Errors
    ///
    /// [`Error::Disconnected`] when not connected (wait on
    /// [`wake_on_connect`](Self::wake_on_connect) and try again),
    /// [`Error::Closed`] once the connection is closed, or when `stop`
    /// becomes ready first (a worker told to stop; a worker that still has
    /// work to finish passes its deadline, `at(deadline)`: a frozen broker
    /// may never answer).
    pub(crate) fn open_channel<T>(
        &self,
        stop: &Receiver<T>,
    ) -> Result<(amiquip::Channel, Generation)> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.commands
            .send(Command::OpenChannel(tx))
            .map_err(|_| self.gone())?;
        select! {
            recv(rx) -> reply => reply.unwrap_or_else(|_| Err(self.gone())),
            recv(stop) -> _ => Err(Error::closed("worker")),
        }
    }

    /// Records `declarations` for every later connect and declares them
    /// now if connected.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a queue's arguments that cannot work
    /// ([`Declaration::validate`]), before anything is recorded;
    /// [`Error::Refused`] when the broker refused one (the record is kept
    /// only when all were accepted or the connection is down);
    /// [`Error::Closed`] once the connection is closed.
    pub(crate) fn declare(&self, declarations: Vec<Declaration>) -> Result<()> {
        for d in &declarations {
            d.validate()?;
        }
        self.ask(|reply| Command::Declare(declarations, reply))
    }

    /// Declares the whole recorded topology again, now.
    ///
    /// # Errors
    ///
    /// [`Error::Disconnected`] when not connected, [`Error::Refused`] when
    /// refused, [`Error::Closed`] once the connection is closed.
    pub(crate) fn redeclare(&self) -> Result<()> {
        self.ask(Command::Redeclare)
    }

    /// Sends the command `make` builds around a reply channel and waits
    /// for the reply.
    fn ask(&self, make: impl FnOnce(Sender<Result<()>>) -> Command) -> Result<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.commands.send(make(tx)).map_err(|_| self.gone())?;
        rx.recv().unwrap_or_else(|_| Err(self.gone()))
    }

    /// The reason the broker gave for blocking publishes, while it does.
    pub(crate) fn blocked(&self) -> Option<String> {
        lock(&self.blocked).clone()
    }

    /// Records that the broker blocks publishes (`Some(reason)`) or no
    /// longer does.
    pub(crate) fn set_blocked(&self, reason: Option<String>) {
        *lock(&self.blocked) = reason;
    }

    /// `host:port` of the node connected to, while connected.
    pub(crate) fn address(&self) -> Option<String> {
        lock(&self.address).clone()
    }

    /// Records the node connected to, or that none is.
    pub(super) fn set_address(&self, address: Option<String>) {
        *lock(&self.address) = address;
    }

    /// True once closed, by [`Connection::close`](super::Connection::close)
    /// or because the supervisor gave up.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Marks the connection closed: workers stop asking for channels.
    pub(super) fn set_closed(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// The error for a request after the supervisor ended: closed, and why
    /// when it gave up on a permanent refusal.
    fn gone(&self) -> Error {
        match self.waiter.failure() {
            Some(cause) => Error::closed(format!("connection {} ({cause})", self.name)),
            None => Error::closed(format!("connection {}", self.name)),
        }
    }

    /// Why the connection can never come up, once the supervisor gave up.
    pub(crate) fn failure(&self) -> Option<Error> {
        self.waiter.failure()
    }

    /// Why the last attempt failed, while not connected.
    pub(crate) fn last_error(&self) -> Option<Error> {
        self.waiter.last_error()
    }
}
