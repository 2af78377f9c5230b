//! The connection supervisor: one named thread owns the amiquip connection,
//! reconnects forever with capped exponential backoff and jitter, and after
//! every connect re-declares the recorded topology, raises the
//! [`ConnectionWaiter`]'s generation and wakes every worker so that
//! publishers resend and consumers start consuming again.
//!
//! amiquip has no recovery of its own: when its connection dies every handle
//! fails and every channel is gone. The supervisor notices at once whatever
//! the cause (a broker-side close, a broker restart, missed heartbeats on a
//! silent network) because amiquip's I/O thread drops the sender of the
//! connection-blocked listener when it ends; the supervisor waits on that
//! receiver. Heartbeats are always on (10 s by default), so a dead peer is
//! noticed within two heartbeat intervals and `close` never blocks for
//! ever.
//!
//! Workers (publisher and consumer threads) get their amiquip channels from
//! the supervisor, which alone holds the `&mut Connection` that opening one
//! needs. Every transition is logged: `info` for connects and closes, `warn`
//! for losses and failed attempts.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};

use crate::error::{Error, Result};
use crate::rabbitmq::amqp::{self, AmqpUrl};
use crate::rabbitmq::topology::Declaration;
use crate::thread::{self, Stopper, Worker};
use crate::waiter::{ConnectionWaiter, Generation};
mod supervisor;

#[cfg(test)]
use supervisor::backoff;
use supervisor::Supervisor;

/// How a [`Connection`] connects and reconnects.
///
/// ```
/// use std::time::Duration;
/// use syncmq::rabbitmq::ConnectionConfig;
///
/// let config = ConnectionConfig::new("amqp://guest:guest@127.0.0.1:5672/%2f")
///     .with_name("billing")
///     .with_heartbeat(Duration::from_secs(5))
///     .with_backoff(Duration::from_millis(50), Duration::from_secs(5));
/// ```
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    url: String,
    name: String,
    heartbeat: Duration,
    connect_timeout: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
    close_timeout: Duration,
    retry_refusals: bool,
}

impl ConnectionConfig {
    /// Defaults: a generated unique name, 10 s heartbeats, a 5 s connect
    /// timeout, backoff from 100 ms doubling up to 10 s, 10 s to close.
    pub fn new(url: impl Into<String>) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        ConnectionConfig {
            url: url.into(),
            name: format!(
                "syncmq-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ),
            heartbeat: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            close_timeout: Duration::from_secs(10),
            retry_refusals: false,
        }
    }

    /// Names the connection. The name is sent as the `information` client
    /// property, so `rabbitmqctl list_connections name client_properties`
    /// and the management UI show it. Make it unique per process to be able
    /// to close one connection from outside.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The heartbeat interval, in whole seconds (at least 1; heartbeats
    /// cannot be turned off). A dead peer is noticed within about twice
    /// this. Recommended: 5 to 30 s.
    #[must_use]
    pub fn with_heartbeat(mut self, heartbeat: Duration) -> Self {
        self.heartbeat = heartbeat;
        self
    }

    /// How long one TCP connect may take.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The reconnect backoff: the first retry waits about `min`, each later
    /// one twice as long, never more than `max`; each wait is shortened by
    /// a random jitter of up to a quarter so that many clients do not
    /// reconnect in step.
    #[must_use]
    pub fn with_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_max = max;
        self
    }

    /// How long [`Connection::close`] waits for the supervisor to close the
    /// connection and end.
    #[must_use]
    pub fn with_close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Whether to keep retrying when the broker refuses the credentials
    /// (`ACCESS_REFUSED`) or the vhost (`NOT_ALLOWED`). By default (`false`)
    /// such a refusal is permanent: the connection gives up at once and
    /// [`wait_connected`](ConnectionWaiter::wait_connected), publishes and
    /// [`Connection::last_error`] fail with [`Error::Refused`]. Turn it on
    /// when users or vhosts may be created after the program starts.
    #[must_use]
    pub fn with_retry_refusals(mut self, retry: bool) -> Self {
        self.retry_refusals = retry;
        self
    }

    /// The connection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks every setting; [`Connection::with_config`] calls it too.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the setting: a malformed URL, a
    /// heartbeat outside 1 s to 65535 s, a zero minimum backoff or a
    /// maximum below it, an empty name.
    pub fn validate(&self) -> Result<()> {
        self.checked().map(|_| ())
    }

    /// As [`validate`](Self::validate), with the parsed URL and the
    /// heartbeat in seconds that the supervisor needs.
    fn checked(&self) -> Result<(AmqpUrl, u16)> {
        let url = amqp::parse_url(&self.url)?;
        let heartbeat = u16::try_from(self.heartbeat.as_secs())
            .ok()
            .filter(|s| *s >= 1)
            .ok_or_else(|| Error::invalid("heartbeat", "must be between 1 s and 65535 s"))?;
        if self.backoff_min.is_zero() || self.backoff_max < self.backoff_min {
            return Err(Error::invalid(
                "backoff",
                "min must be above zero and max at least min",
            ));
        }
        if self.name.is_empty() {
            return Err(Error::invalid(
                "name",
                "a connection name must not be empty",
            ));
        }
        Ok((url, heartbeat))
    }
}

/// A request from a worker to the supervisor.
enum Command {
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
    pub(crate) blocked: Mutex<Option<String>>,
    closed: AtomicBool,
}

impl Shared {
    /// A receiver that gets the generation of every later connect. A worker
    /// that cannot get a channel waits on it (next to its other inputs).
    pub(crate) fn wake_on_connect(&self) -> Receiver<Generation> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        lock(&self.wakers).push(tx);
        rx
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
    /// [`Error::Refused`] when the broker refused one (the record is kept
    /// only when all were accepted or the connection is down).
    pub(crate) fn declare(&self, declarations: Vec<Declaration>) -> Result<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.commands
            .send(Command::Declare(declarations, tx))
            .map_err(|_| Error::closed(format!("connection {}", self.name)))?;
        rx.recv()
            .unwrap_or_else(|_| Err(Error::closed(format!("connection {}", self.name))))
    }

    /// Declares the whole recorded topology again, now.
    ///
    /// # Errors
    ///
    /// [`Error::Disconnected`] when not connected, [`Error::Refused`] when
    /// refused.
    pub(crate) fn redeclare(&self) -> Result<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.commands
            .send(Command::Redeclare(tx))
            .map_err(|_| Error::closed(format!("connection {}", self.name)))?;
        rx.recv()
            .unwrap_or_else(|_| Err(Error::closed(format!("connection {}", self.name))))
    }

    /// The reason the broker gave for blocking publishes, while it does.
    pub(crate) fn blocked(&self) -> Option<String> {
        lock(&self.blocked).clone()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
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

/// A supervised connection to RabbitMQ.
///
/// Connects in the background and keeps reconnecting until closed; use
/// [`waiter`](Self::waiter) to block until it is up. Dropping it closes it.
///
/// Transient failures (a refused or unreachable port, a lost connection, a
/// vhost's connection limit) are retried with backoff, and the latest is
/// kept: [`last_error`](Self::last_error) returns it and a timed-out
/// [`wait_connected`](ConnectionWaiter::wait_connected) names it. A refusal
/// of the credentials or the vhost is permanent unless
/// [`ConnectionConfig::with_retry_refusals`] says otherwise: the connection
/// gives up and every wait fails with [`Error::Refused`].
///
/// ```no_run
/// use std::time::Duration;
/// use syncmq::rabbitmq::Connection;
///
/// # fn main() -> syncmq::Result<()> {
/// let connection = Connection::open("amqp://guest:guest@127.0.0.1:5672/%2f")?;
/// connection.waiter().wait_connected(Duration::from_secs(10))?;
/// connection.close()?;
/// # Ok(())
/// # }
/// ```
pub struct Connection {
    shared: Arc<Shared>,
    stopper: Mutex<Stopper>,
    supervisor: Mutex<Option<Worker<()>>>,
    close_timeout: Duration,
}

impl Connection {
    /// A supervised connection to `url` with the default configuration.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a malformed URL. An unreachable broker
    /// is not an error: the supervisor keeps trying (see
    /// [`last_error`](Self::last_error)).
    pub fn open(url: &str) -> Result<Connection> {
        Connection::with_config(ConnectionConfig::new(url))
    }

    /// A supervised connection configured by `config`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a malformed URL or setting.
    pub fn with_config(config: ConnectionConfig) -> Result<Connection> {
        let (url, heartbeat) = config.checked()?;
        let (commands, command_rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared {
            name: config.name.clone(),
            waiter: Arc::new(ConnectionWaiter::new()),
            commands,
            wakers: Mutex::new(Vec::new()),
            blocked: Mutex::new(None),
            closed: AtomicBool::new(false),
        });
        let (stopper, stop) = thread::stop_signal();
        let close_timeout = config.close_timeout;
        let supervisor = {
            let shared = shared.clone();
            thread::spawn(format!("rmq-conn:{}", config.name), move || {
                Supervisor {
                    shared,
                    config,
                    url,
                    heartbeat,
                    commands: command_rx,
                    stop,
                    topology: Vec::new(),
                }
                .run();
            })?
        };
        Ok(Connection {
            shared,
            stopper: Mutex::new(stopper),
            supervisor: Mutex::new(Some(supervisor)),
            close_timeout,
        })
    }

    /// The waiter the supervisor sets on every connect (with a new
    /// generation) and clears on every loss. Block on it to wait for the
    /// connection; the block runtime plugs its connect/disconnect callbacks
    /// into exactly this.
    pub fn waiter(&self) -> Arc<ConnectionWaiter> {
        self.shared.waiter.clone()
    }

    /// The connection's name (its `information` client property).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Why the last connection attempt failed or the last connection was
    /// lost, while not connected since; [`Error::Refused`] once the
    /// supervisor gave up on a permanent refusal. `None` while connected.
    pub fn last_error(&self) -> Option<Error> {
        self.shared.last_error()
    }

    /// True while connected.
    pub fn is_connected(&self) -> bool {
        self.shared.waiter.is_connected()
    }

    /// The reason the broker gave for blocking publishes (a resource alarm),
    /// while it does.
    pub fn blocked(&self) -> Option<String> {
        self.shared.blocked()
    }

    /// Declares `declarations` now (when connected) and again after every
    /// reconnect. Everything is durable.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] when the broker refused one, say a queue that
    /// exists with other arguments; [`Error::Closed`] after close.
    pub fn declare(&self, declarations: Vec<Declaration>) -> Result<()> {
        self.shared.declare(declarations)
    }

    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Closes the connection and joins the supervisor, waiting at most the
    /// configured close timeout. Every thread blocked on the waiter wakes
    /// with [`Error::Closed`]. Calling it again does nothing.
    ///
    /// A connect attempt under way is cut short (its socket is shut down,
    /// which ends a TCP connect or a handshake at once) and its thread
    /// joined, so close of a connection that never came up returns at once.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when the supervisor did not end in time (the
    /// broker did not answer the close and heartbeats have not yet given up
    /// on it).
    pub fn close(&self) -> Result<()> {
        self.shared.closed.store(true, Ordering::SeqCst);
        lock(&self.stopper).stop();
        self.shared.waiter.close();
        let worker = lock(&self.supervisor).take();
        match worker {
            Some(worker) => worker.join_deadline(Instant::now() + self.close_timeout),
            None => Ok(()),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::error!("closing connection {} on drop: {e}", self.shared.name);
        }
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("name", &self.shared.name)
            .field("connected", &self.is_connected())
            .finish()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(2));
        for _ in 0..100 {
            let first = backoff(min, max, 1);
            assert!(first <= min && first >= min.mul_f64(0.75), "{first:?}");
            let third = backoff(min, max, 3);
            assert!(third <= min * 4 && third >= (min * 4).mul_f64(0.75));
            let late = backoff(min, max, 1000);
            assert!(late <= max && late >= max.mul_f64(0.75), "{late:?}");
        }
    }

    #[test]
    fn bad_configs_are_refused() {
        let base = || ConnectionConfig::new("amqp://localhost");
        for (config, field) in [
            (ConnectionConfig::new("http://x"), "url"),
            (base().with_heartbeat(Duration::ZERO), "heartbeat"),
            (
                base().with_backoff(Duration::ZERO, Duration::ZERO),
                "backoff",
            ),
            (
                base().with_backoff(Duration::from_secs(2), Duration::from_secs(1)),
                "backoff",
            ),
            (base().with_name(""), "name"),
        ] {
            match Connection::with_config(config) {
                Err(Error::InvalidArgument { name, .. }) => assert_eq!(name, field),
                other => panic!("expected InvalidArgument({field}), got {other:?}"),
            }
        }
    }
}
