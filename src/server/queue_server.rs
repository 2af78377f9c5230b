//! [`QueueServer`]: the listening socket (TCP, TLS over TCP, or a Unix
//! domain socket), its accept thread, and the connection threads it owns.

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::frame::{FrameWriter, MAX_FRAME_LEN};
use super::listener::{self, Listener};
use super::protocol::Response;
use super::server_addr::ServerAddr;
use super::server_config::QueueServerConfig;
use super::server_connection;
use super::server_stats::{QueueServerStats, ServerCounters};
use super::socket::Socket;
use super::tls::{self, Acceptor};
use crate::error::Result;
use crate::queue::Queue;
use crate::thread::{self, join_all, lock, Worker};

/// One open connection: its socket (the TCP one under a TLS connection),
/// to shut it down on close, and its thread.
struct Conn {
    stream: Socket,
    worker: Worker<()>,
}

struct Shared {
    queue: Arc<Queue>,
    config: QueueServerConfig,
    tls: Option<Acceptor>,
    closing: AtomicBool,
    conns: Mutex<HashMap<u64, Conn>>,
    counters: ServerCounters,
}

/// A running queue server: the durable [`Queue`] served over TCP, TLS or a
/// Unix domain socket (ppmq's `Listener`), a thread per connection. See
/// the [module docs](super) for what it guarantees, and
/// [`QueueServerConfig`] for whom it lets in.
///
/// It owns its threads (`syncmq-srv-accept`, one `syncmq-srv-conn` per
/// connection, one `syncmq-srv-tls` per TLS connection, one
/// `syncmq-srv-push` per subscription);
/// [`close`](Self::close) or drop stops and joins them within
/// [`QueueServerConfig::close_timeout`]. It does not close the queue, which
/// belongs to the caller.
pub struct QueueServer {
    addr: ServerAddr,
    shared: Arc<Shared>,
    /// The accept thread, and the listener (kept to remove a Unix
    /// socket's file once the thread is gone).
    acceptor: Mutex<Option<(Worker<()>, Arc<Listener>)>>,
}

impl fmt::Debug for QueueServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl QueueServer {
    /// Listens on `config`'s address (or Unix socket) and serves `queue`
    /// until closed.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) from
    /// [`QueueServerConfig::validate`];
    /// [`Error::AddrInUse`](crate::Error::AddrInUse) naming the address
    /// when another socket has it (a live server's socket path included);
    /// [`Error::Io`](crate::Error::Io) for an address or socket path that
    /// cannot be bound otherwise (naming it; a path that is not a socket),
    /// or a thread that cannot start.
    pub fn start(queue: Arc<Queue>, config: QueueServerConfig) -> Result<Self> {
        config.validate()?;
        let tls = tls::acceptor(&config)?;
        let (listener, addr) = Listener::bind(&config)?;
        let listener = Arc::new(listener);
        let shared = Arc::new(Shared {
            queue,
            config,
            tls,
            closing: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            counters: ServerCounters::default(),
        });
        let accepting = shared.clone();
        let listening = listener.clone();
        let acceptor = match thread::spawn("srv-accept", move || accept(&listening, &accepting)) {
            Ok(worker) => worker,
            Err(e) => {
                listener.remove_file();
                return Err(e);
            }
        };
        let secured = match (shared.tls.is_some(), shared.config.has_token()) {
            (true, true) => " (TLS, token)",
            (true, false) => " (TLS)",
            (false, true) => " (token)",
            (false, false) => "",
        };
        log::info!("server: listening on {addr}{secured}");
        Ok(QueueServer {
            addr,
            shared,
            acceptor: Mutex::new(Some((acceptor, listener))),
        })
    }

    /// Where the server listens: its TCP address (with the real port when
    /// the config asked for port 0) or its Unix socket's path.
    pub fn addr(&self) -> &ServerAddr {
        &self.addr
    }

    /// The TCP address the server listens on (with the real port when the
    /// config asked for port 0). A server on a Unix socket has none: this
    /// is then `0.0.0.0:0`, where no connection succeeds; use
    /// [`addr`](Self::addr), which covers both.
    pub fn local_addr(&self) -> SocketAddr {
        match &self.addr {
            ServerAddr::Tcp(addr) => *addr,
            ServerAddr::Unix(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        }
    }

    /// How many connections are open.
    pub fn connections(&self) -> usize {
        lock(&self.shared.conns)
            .values()
            .filter(|c| !c.worker.is_finished())
            .count()
    }

    /// Connections open, accepted and refused, and frames read and
    /// written, over every connection since the start.
    pub fn stats(&self) -> QueueServerStats {
        self.shared.counters.stats(self.connections())
    }

    /// Stops accepting, closes every connection (their subscriptions give
    /// unacknowledged deliveries back) and joins every thread, all within
    /// the close timeout. Calling it again does nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`](crate::Error::Timeout) naming a thread that did
    /// not stop in time; [`Error::Panicked`](crate::Error::Panicked) for
    /// one that panicked.
    pub fn close(&self) -> Result<()> {
        let Some((acceptor, listener)) = lock(&self.acceptor).take() else {
            return Ok(());
        };
        let deadline = Instant::now() + self.shared.config.close_timeout();
        self.shared.closing.store(true, Ordering::SeqCst);
        // Wake the blocking accept with a connection of our own.
        listener::wake(&self.addr);
        // Joined first, so that no connection is added after the drain.
        let accepted = acceptor.join_deadline(deadline);
        // No new client finds the path once it is gone.
        listener.remove_file();
        let conns: Vec<Conn> = lock(&self.shared.conns).drain().map(|(_, c)| c).collect();
        for c in &conns {
            let _ = c.stream.shutdown(Shutdown::Both);
        }
        let joined = join_all(conns.into_iter().map(|c| c.worker), deadline);
        log::info!("server: {} closed", self.addr);
        accepted.and(joined)
    }
}

impl Drop for QueueServer {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::warn!("server: close on drop: {e}");
        }
    }
}

/// The accept thread: a connection thread per client, finished ones reaped
/// as new ones come.
fn accept(listener: &Listener, shared: &Arc<Shared>) {
    let mut next = 1u64;
    loop {
        let accepted = listener.accept();
        if shared.closing.load(Ordering::SeqCst) {
            return;
        }
        let (stream, peer) = match accepted {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors, say: the next accept may work.
                log::warn!("server: accept failed: {e}");
                std::thread::yield_now();
                continue;
            }
        };
        let mut conns = lock(&shared.conns);
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
        let max = shared.config.max_connections();
        if conns.len() >= max {
            drop(conns);
            shared.counters.refused.add(1);
            refuse(&stream, max, shared.tls.is_some());
            continue;
        }
        let number = next;
        next += 1;
        let Ok(handle) = stream.try_clone() else {
            continue;
        };
        let serving = shared.clone();
        match thread::spawn("srv-conn", move || {
            server_connection::serve(
                &serving.queue,
                stream,
                &peer,
                &serving.config,
                serving.tls.as_ref(),
                number,
                &serving.counters,
            );
        }) {
            Ok(worker) => {
                shared.counters.accepted.add(1);
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

/// Answers a connection over `max` with a fatal `busy` error and closes it.
/// A TLS client is only closed: the frame would need a TLS handshake on the
/// accept thread, which one slow client could then hold up, and bytes in
/// the clear would read as a server without TLS. It sees the server hang
/// up mid-handshake, which is [`Error::Disconnected`](crate::Error::Disconnected),
/// transient, as `busy` is.
fn refuse(stream: &Socket, max: usize, tls: bool) {
    log::warn!("server: refusing a connection: {max} are open already");
    if tls {
        let _ = stream.shutdown(Shutdown::Both);
        return;
    }
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let frame = Response::fatal("busy", format!("the server has {max} connections open"));
    match FrameWriter::new(stream, MAX_FRAME_LEN, "refuse a connection") {
        Ok(writer) => {
            let _ = writer.send(&frame);
        }
        Err(e) => log::debug!("server: refuse: {e}"),
    }
    let _ = stream.shutdown(Shutdown::Both);
}
