//! The readiness fd of a subscriber handle or a watched channel output:
//! one end of a non-blocking Unix socket pair, readable while a delivery
//! may be ready, so that a host can wait in its own `poll()`/`epoll` loop
//! instead of in a library call, and no callback ever runs on a thread the
//! host did not choose.
//!
//! A watcher writes one byte to the other end: the queue's readiness
//! watcher (`Subscriber::on_ready`), on the thread that made the change,
//! under the queue's lock; or a channel's ready thread (`watch.rs`). It
//! only writes and never blocks (a full socket is already readable). After
//! every receive the handle re-arms the fd in an order that cannot lose a
//! wake-up: drain the socket first, then ask the source whether anything
//! is deliverable, and if so write a byte again. A delivery that lands
//! between the two is seen by the question or writes its own byte after
//! it.

use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use syncmq::queue::Subscriber;
use syncmq::{Error, Result};

/// The two ends of the socket pair.
pub(crate) struct Readiness {
    /// The host polls this end (the fd `syncmq_subscriber_fd` returns).
    read: UnixStream,
    /// The watcher writes here; shared with it.
    write: Arc<UnixStream>,
}

impl Readiness {
    /// A new pair, both ends non-blocking (and close-on-exec, as std
    /// creates every socket).
    ///
    /// # Errors
    ///
    /// `Io` when the OS refuses a socket.
    pub(crate) fn new() -> Result<Self> {
        let io_error = |e| Error::io("create a readiness socket pair", e);
        let (read, write) = UnixStream::pair().map_err(io_error)?;
        read.set_nonblocking(true).map_err(io_error)?;
        write.set_nonblocking(true).map_err(io_error)?;
        Ok(Readiness {
            read,
            write: Arc::new(write),
        })
    }

    /// The fd the host polls.
    pub(crate) fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// The watcher to register with `Subscriber::on_ready`: one byte per
    /// call.
    pub(crate) fn watcher(&self) -> Arc<dyn Fn() + Send + Sync> {
        let write = self.write.clone();
        Arc::new(move || signal(&write))
    }

    /// Makes the fd readable.
    pub(crate) fn signal(&self) {
        signal(&self.write);
    }

    /// Makes the fd say what `sub` has: drains it, then writes a byte again
    /// when a delivery is ready or the subscriber ended (so that the host's
    /// next receive sees `SYNCMQ_E_CLOSED` rather than waiting forever).
    pub(crate) fn rearm(&self, sub: &Subscriber) {
        self.rearm_with(|| sub.is_available().unwrap_or(true));
    }

    /// Drains the fd, then writes a byte again when `ready` (asked after
    /// the drain, never before: that order loses no wake-up) says a
    /// delivery is waiting or the source ended.
    pub(crate) fn rearm_with(&self, ready: impl FnOnce() -> bool) {
        self.drain();
        if ready() {
            self.signal();
        }
    }

    /// Reads everything written so far.
    fn drain(&self) {
        let mut buf = [0u8; 64];
        loop {
            match (&self.read).read(&mut buf) {
                Ok(n) if n < buf.len() => return,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return log_unexpected(&e, "drain"),
            }
        }
    }
}

/// Writes one byte; a full socket (`WouldBlock`) is already readable. std
/// sends with `MSG_NOSIGNAL`, so a closed peer is an `EPIPE` error here,
/// never a SIGPIPE in the host.
fn signal(write: &UnixStream) {
    loop {
        match (&*write).write(&[1]) {
            Ok(_) => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return log_unexpected(&e, "signal"),
        }
    }
}

/// `WouldBlock` is the normal end of a drain and a full socket; anything
/// else cannot happen while the handle owns both ends, and is logged.
fn log_unexpected(e: &io::Error, what: &str) {
    if e.kind() != ErrorKind::WouldBlock {
        log::warn!("syncmq-ffi: readiness socket {what}: {e}");
    }
}
