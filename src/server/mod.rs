//! The queue server (ppmq's `Listener`): the durable [`Queue`] served over
//! TCP, a thread per connection, and the blocking [`Client`] that speaks to
//! it.
//!
//! The protocol ([`protocol`]) is length-prefixed MessagePack frames with a
//! version handshake: publish (a batch, answered once durable), subscribe
//! (deliveries pushed in queue order, at most `batch` unacknowledged), ack,
//! nack, reset (ppmq's reconnect), stats and dead letters. The README's
//! "Queue server" section documents every frame.
//!
//! # Guarantees
//!
//! - A publish the server answered `published` is durable (fsynced with the
//!   default [`Durability`](crate::queue::Durability)); the client's
//!   [`Client::publish`] returns `Ok` only then.
//! - A frame over [`ServerConfig::max_frame`], or one that does not decode,
//!   gets an error frame and that connection is closed; the server keeps
//!   serving every other connection and nothing acknowledged is lost.
//! - Memory per connection is bounded: a frame's buffer grows with the
//!   bytes that arrive (an announced length allocates nothing), a
//!   connection idle for [`ServerConfig::idle_timeout`] is closed, and at
//!   most [`ServerConfig::max_subscriptions`] subscriptions (threads) are
//!   allowed per connection.
//! - A subscriber that disconnects (or is killed) has its unacknowledged
//!   deliveries redelivered, to the next consumer of that subscriber.
//! - The server owns its threads (`syncmq-srv-accept`, one
//!   `syncmq-srv-conn` per connection, one `syncmq-srv-push` per
//!   subscription); [`Server::shutdown`] or drop stops and joins them within
//!   [`ServerConfig::shutdown_timeout`]. It does not close the queue, which
//!   belongs to the caller.
//!
//! ```
//! use std::sync::Arc;
//! use syncmq::queue::{Queue, QueueConfig, TopicConfig};
//! use syncmq::server::{Client, Server, ServerConfig};
//! use syncmq::Message;
//!
//! # fn main() -> syncmq::Result<()> {
//! let queue = Arc::new(Queue::memory(
//!     QueueConfig::new().with_topic(TopicConfig::new("orders", ["billing"])),
//! )?);
//! let server = Server::start(queue, ServerConfig::new())?;
//! let client = Client::connect(server.local_addr())?;
//! client.publish("orders", &[Message::new(b"order 1".to_vec())])?;
//! let mut billing = client.subscribe("orders", "billing")?;
//! let delivery = billing.recv()?;
//! assert_eq!(delivery.body(), b"order 1");
//! delivery.ack()?;
//! # Ok(())
//! # }
//! ```

pub mod protocol;

mod client;
mod connection;
mod consumer;
mod frame;
mod subscription;

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

pub use client::{Client, ClientConfig, DEFAULT_REQUEST_TIMEOUT};
pub use consumer::Subscription;
pub use frame::DEFAULT_MAX_FRAME;

use crate::error::{Error, Result};
use crate::queue::Queue;
use crate::thread::{self, Worker};

/// How a [`Server`] listens and what it allows.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The address to listen on; `127.0.0.1:0` (any free port) by default.
    pub addr: String,
    /// The largest frame accepted, in bytes (length prefix excluded);
    /// [`DEFAULT_MAX_FRAME`] by default.
    pub max_frame: usize,
    /// The most connections at once; more are refused with a `busy` error
    /// frame. 1024 by default.
    pub max_connections: usize,
    /// How long a new connection may take to send its hello; 10 s.
    pub handshake_timeout: Duration,
    /// How long a connection may send no frame after the handshake before
    /// it gets an `idle` error frame and is closed; 60 s, `None` for
    /// never. Subscriptions do not count as activity: clients keep idle
    /// connections open with `ping` frames, as [`Client`] does on its own.
    /// See [`protocol`].
    pub idle_timeout: Option<Duration>,
    /// The most subscriptions one connection may hold at once (each has a
    /// thread on the server); one more is refused with an
    /// `invalid_argument` error naming `max_subscriptions`. 64 by default.
    pub max_subscriptions: usize,
    /// How long a write to a client may block before the connection is
    /// dropped (a client that stopped reading); 30 s.
    pub write_timeout: Duration,
    /// How long [`Server::shutdown`] waits for its threads; 10 s.
    pub shutdown_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            addr: "127.0.0.1:0".into(),
            max_frame: DEFAULT_MAX_FRAME,
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(60)),
            max_subscriptions: 64,
            write_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

impl ServerConfig {
    /// The defaults: see each field.
    pub fn new() -> Self {
        ServerConfig::default()
    }

    /// Sets the address to listen on (`host:port`).
    #[must_use]
    pub fn with_addr(mut self, addr: impl Into<String>) -> Self {
        self.addr = addr.into();
        self
    }

    /// Sets the largest frame accepted.
    #[must_use]
    pub fn with_max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }

    /// Sets the most connections at once.
    #[must_use]
    pub fn with_max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Sets the idle timeout after the handshake; `None` for none.
    #[must_use]
    pub fn with_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets the most subscriptions per connection.
    #[must_use]
    pub fn with_max_subscriptions(mut self, n: usize) -> Self {
        self.max_subscriptions = n;
        self
    }

    /// Sets how long a write to a client may block before that
    /// connection is dropped.
    #[must_use]
    pub fn with_write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Sets how long shutdown waits for the server's threads.
    #[must_use]
    pub fn with_shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Checks every setting; [`Server::start`] calls it too.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the setting: a frame limit below
    /// 1024 bytes or above 4 GiB, zero connections or subscriptions, an
    /// idle timeout below 1 ms.
    pub fn validate(&self) -> Result<()> {
        if self.max_frame < 1024 || self.max_frame > u32::MAX as usize {
            return Err(Error::invalid(
                "max_frame",
                "must be between 1024 and 4294967295 bytes",
            ));
        }
        if self.max_connections == 0 {
            return Err(Error::invalid("max_connections", "must be at least 1"));
        }
        if self.max_subscriptions == 0 {
            return Err(Error::invalid("max_subscriptions", "must be at least 1"));
        }
        // A zero socket timeout is an error to the OS, and would close
        // every connection at once anyway.
        if self
            .idle_timeout
            .is_some_and(|t| t < Duration::from_millis(1))
        {
            return Err(Error::invalid(
                "idle_timeout",
                "must be at least 1 ms, or None for no idle timeout",
            ));
        }
        Ok(())
    }
}

struct Conn {
    stream: TcpStream,
    worker: Worker<()>,
}

struct Inner {
    queue: Arc<Queue>,
    config: ServerConfig,
    stopping: AtomicBool,
    conns: Mutex<HashMap<u64, Conn>>,
}

impl Inner {
    fn conns(&self) -> MutexGuard<'_, HashMap<u64, Conn>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running queue server. See the module docs.
pub struct Server {
    addr: SocketAddr,
    inner: Arc<Inner>,
    acceptor: Mutex<Option<Worker<()>>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Listens on `config.addr` and serves `queue` until shut down.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a bad config field; [`Error::Io`] for
    /// an address that cannot be bound (naming it).
    pub fn start(queue: Arc<Queue>, config: ServerConfig) -> Result<Self> {
        config.validate()?;
        let listener = TcpListener::bind(&config.addr)
            .map_err(|e| Error::io(format!("listen on {}", config.addr), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("read the listening socket's address", e))?;
        let inner = Arc::new(Inner {
            queue,
            config,
            stopping: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
        });
        let acceptor_inner = inner.clone();
        let acceptor = thread::spawn("srv-accept", move || accept(&listener, &acceptor_inner))?;
        log::info!("server: listening on {addr}");
        Ok(Server {
            addr,
            inner,
            acceptor: Mutex::new(Some(acceptor)),
        })
    }

    /// The address the server listens on (with the real port when the
    /// config asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections are open.
    pub fn connections(&self) -> usize {
        self.inner
            .conns()
            .values()
            .filter(|c| !c.worker.is_finished())
            .count()
    }

    /// Stops accepting, closes every connection (their subscriptions give
    /// unacknowledged deliveries back) and joins every thread. Calling it
    /// again does nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] naming a thread that did not stop in time.
    pub fn shutdown(&self) -> Result<()> {
        let Some(acceptor) = self
            .acceptor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return Ok(());
        };
        let deadline = Instant::now() + self.inner.config.shutdown_timeout;
        self.inner.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept with a connection of our own.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => [127, 0, 0, 1].into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        let mut first_error = acceptor.join_deadline(deadline).err();
        let conns: Vec<Conn> = self.inner.conns().drain().map(|(_, c)| c).collect();
        for c in &conns {
            let _ = c.stream.shutdown(Shutdown::Both);
        }
        for c in conns {
            if let Err(e) = c.worker.join_deadline(deadline) {
                first_error.get_or_insert(e);
            }
        }
        log::info!("server: {} stopped", self.addr);
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            log::warn!("server: shutdown on drop: {e}");
        }
    }
}

/// The accept thread: a connection thread per client, finished ones reaped
/// as new ones come.
fn accept(listener: &TcpListener, inner: &Arc<Inner>) {
    let mut next = 1u64;
    for stream in listener.incoming() {
        if inner.stopping.load(Ordering::SeqCst) {
            return;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors, say: the next accept may work.
                log::warn!("server: accept failed: {e}");
                std::thread::yield_now();
                continue;
            }
        };
        let mut conns = inner.conns();
        let finished: Vec<u64> = conns
            .iter()
            .filter(|(_, c)| c.worker.is_finished())
            .map(|(n, _)| *n)
            .collect();
        for n in finished {
            if let Some(c) = conns.remove(&n) {
                if let Err(e) = c.worker.join() {
                    log::error!("server: connection {n}: {e}");
                }
            }
        }
        if conns.len() >= inner.config.max_connections {
            drop(conns);
            refuse(stream, inner.config.max_connections);
            continue;
        }
        let number = next;
        next += 1;
        let Ok(handle) = stream.try_clone() else {
            continue;
        };
        let conn_inner = inner.clone();
        match thread::spawn("srv-conn", move || {
            connection::serve(&conn_inner.queue, stream, &conn_inner.config, number);
        }) {
            Ok(worker) => {
                conns.insert(
                    number,
                    Conn {
                        stream: handle,
                        worker,
                    },
                );
            }
            Err(e) => {
                log::error!("server: {e}");
                let _ = handle.shutdown(Shutdown::Both);
            }
        }
    }
}

fn refuse(stream: TcpStream, max: usize) {
    log::warn!("server: refusing a connection: {max} are open already");
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let mut buf = Vec::new();
    let frame = protocol::Response::fatal("busy", format!("the server has {max} connections open"));
    if frame::encode_frame(&frame, &mut buf, u32::MAX as usize).is_ok() {
        let mut s = &stream;
        let _ = frame::write_encoded(&mut s, &buf);
    }
    let _ = stream.shutdown(Shutdown::Both);
}
