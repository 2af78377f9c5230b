//! The connection supervisor: one named thread owns the amiquip connection,
//! reconnects forever (to the next node of a cluster, then with capped
//! exponential backoff and jitter once every node failed), and after
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
//! needs ([`Shared`]). Every transition is logged: `info` for connects and
//! closes, `warn` for losses and failed attempts.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::rabbitmq::topology::Declaration;
use crate::thread::{self, lock, Stopper, Worker};
use crate::waiter::ConnectionWaiter;

mod config;
mod shared;
mod supervisor;
pub(crate) mod tls;

pub use config::ConnectionConfig;
pub(crate) use shared::Shared;
use supervisor::Supervisor;
#[cfg(feature = "tls")]
pub use tls::TlsConfig;

/// A supervised connection to the broker.
///
/// Connects in the background and keeps reconnecting until closed; use
/// [`waiter`](Self::waiter) to block until it is up. One thread
/// (`syncmq-rmq-conn:<name>`) owns the amiquip connection. It notices a
/// lost connection at once, whatever the cause (a broker-side close, a
/// broker restart, or missed heartbeats on a silent network, within two
/// heartbeat intervals), reconnects with capped exponential backoff and
/// jitter, and after every connect declares the recorded topology
/// ([`declare`](Self::declare)) again, sets the waiter with a new
/// [`Generation`](crate::Generation) and wakes the publishers and consumers
/// on it. [`close`](Self::close) stops it; dropping it closes it too.
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
    /// An `amqps://` URL connects over TLS, trusting the system's CAs
    /// (feature `tls`; [`ConnectionConfig::with_tls`] sets a CA bundle of
    /// your own, a client certificate, a server name).
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
    /// [`Error::InvalidArgument`] for a malformed URL or setting (see
    /// [`ConnectionConfig::validate`]); [`Error::Io`] when the supervisor
    /// thread cannot start.
    pub fn with_config(config: ConnectionConfig) -> Result<Connection> {
        let (urls, heartbeat) = config.checked()?;
        // One connector per node, built once for every attempt.
        let tls = urls
            .iter()
            .map(|url| config.tls_connect(url))
            .collect::<Result<Vec<_>>>()?;
        let (commands, command_rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared::new(config.name().to_string(), commands));
        let (stopper, stop) = thread::stop_signal();
        let close_timeout = config.close_timeout();
        let supervisor = {
            let shared = shared.clone();
            thread::spawn(format!("rmq-conn:{}", config.name()), move || {
                Supervisor {
                    shared,
                    config,
                    urls,
                    heartbeat,
                    commands: command_rx,
                    stop,
                    topology: Vec::new(),
                    tls,
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

    /// The node in use, as `host:port` of its URL, while connected; `None`
    /// between connections. With a cluster
    /// ([`ConnectionConfig::cluster`]) it says which node the connection
    /// failed over to; every switch is also logged at `info`.
    pub fn current_address(&self) -> Option<String> {
        self.shared.address()
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
    /// [`Error::InvalidArgument`] for queue arguments that cannot work
    /// ([`Declaration::validate`]), before anything is sent;
    /// [`Error::Refused`] when the broker refused one, say a queue that
    /// exists with other arguments (406, naming the queue and the
    /// argument); [`Error::NotFound`] for a
    /// [`Declaration::existing_queue`] that does not exist;
    /// [`Error::Closed`] after close.
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
        self.shared.set_closed();
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
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_config_is_refused_before_anything_starts() {
        let config = ConnectionConfig::new("amqp://localhost").with_name("");
        match Connection::with_config(config) {
            Err(Error::InvalidArgument { name, .. }) => assert_eq!(name, "name"),
            other => panic!("expected InvalidArgument(name), got {other:?}"),
        }
    }
}
