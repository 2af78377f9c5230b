//! [`QueueServer`]: the listening socket, its accept thread, and the
//! connection threads it owns.

use std::collections::HashMap;
use std::fmt;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::frame::{FrameWriter, MAX_FRAME_LEN};
use super::protocol::Response;
use super::server_config::QueueServerConfig;
use super::server_connection;
use crate::error::{Error, Result};
use crate::queue::Queue;
use crate::thread::{self, join_all, lock, Worker};

/// One open connection: its socket, to shut it down on close, and its
/// thread.
struct Conn {
    stream: TcpStream,
    worker: Worker<()>,
}

struct Shared {
    queue: Arc<Queue>,
    config: QueueServerConfig,
    closing: AtomicBool,
    conns: Mutex<HashMap<u64, Conn>>,
}

/// A running queue server: the durable [`Queue`] served over TCP (ppmq's
/// `Listener`), a thread per connection. See the [module docs](super) for
/// what it guarantees.
///
/// It owns its threads (`syncmq-srv-accept`, one `syncmq-srv-conn` per
/// connection, one `syncmq-srv-push` per subscription);
/// [`close`](Self::close) or drop stops and joins them within
/// [`QueueServerConfig::close_timeout`]. It does not close the queue, which
/// belongs to the caller.
pub struct QueueServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Mutex<Option<Worker<()>>>,
}

impl fmt::Debug for QueueServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl QueueServer {
    /// Listens on `config`'s address and serves `queue` until closed.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] from [`QueueServerConfig::validate`];
    /// [`Error::AddrInUse`] naming the address when another socket has it;
    /// [`Error::Io`] for an address that cannot be bound otherwise (naming
    /// it), or a thread that cannot start.
    pub fn start(queue: Arc<Queue>, config: QueueServerConfig) -> Result<Self> {
        config.validate()?;
        let listener =
            TcpListener::bind(config.addr()).map_err(|e| Error::listen(config.addr(), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("read the listening socket's address", e))?;
        let shared = Arc::new(Shared {
            queue,
            config,
            closing: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
        });
        let accepting = shared.clone();
        let acceptor = thread::spawn("srv-accept", move || accept(&listener, &accepting))?;
        log::info!("server: listening on {addr}");
        Ok(QueueServer {
            addr,
            shared,
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
        lock(&self.shared.conns)
            .values()
            .filter(|c| !c.worker.is_finished())
            .count()
    }

    /// Stops accepting, closes every connection (their subscriptions give
    /// unacknowledged deliveries back) and joins every thread, all within
    /// the close timeout. Calling it again does nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] naming a thread that did not stop in time;
    /// [`Error::Panicked`] for one that panicked.
    pub fn close(&self) -> Result<()> {
        let Some(acceptor) = lock(&self.acceptor).take() else {
            return Ok(());
        };
        let deadline = Instant::now() + self.shared.config.close_timeout();
        self.shared.closing.store(true, Ordering::SeqCst);
        // Wake the blocking accept with a connection of our own.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => [127, 0, 0, 1].into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        // Joined first, so that no connection is added after the drain.
        let accepted = acceptor.join_deadline(deadline);
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
fn accept(listener: &TcpListener, shared: &Arc<Shared>) {
    let mut next = 1u64;
    for stream in listener.incoming() {
        if shared.closing.load(Ordering::SeqCst) {
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
            refuse(&stream, max);
            continue;
        }
        let number = next;
        next += 1;
        let Ok(handle) = stream.try_clone() else {
            continue;
        };
        let serving = shared.clone();
        match thread::spawn("srv-conn", move || {
            server_connection::serve(&serving.queue, stream, &serving.config, number);
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

/// Answers a connection over `max` with a fatal `busy` error and closes it.
fn refuse(stream: &TcpStream, max: usize) {
    log::warn!("server: refusing a connection: {max} are open already");
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
