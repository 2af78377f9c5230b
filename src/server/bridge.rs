//! The TLS bridge: one thread per TLS connection that moves bytes between
//! the TLS stream on the TCP socket and the bridge's end of a Unix socket
//! pair, whose other end is the [`Socket`] the connection code uses.
//!
//! Why a thread: the protocol reads a connection on one thread while other
//! threads write to it, and a TLS stream (one OpenSSL session) can be used
//! by one thread at a time. Locking it around every read would hold
//! writers up for as long as the reader waits, so a peer that stops
//! reading while it writes would deadlock both sides. The bridge owns the
//! session alone and drives both directions at once, on non-blocking
//! sockets and mio's poll (already a dependency of the `tls` feature, for
//! RabbitMQ), so the connection code keeps full-duplex, clonable sockets
//! with the read and write timeouts it already relies on.
//!
//! It ends when either side does: the TLS peer closing (or failing) shuts
//! the plain end down, which the connection's reader sees as the end of
//! the connection; the connection code shutting its end down (close, or a
//! broken protocol) sends TLS's `close_notify` and closes the TCP socket.
//! Bytes bound for a TLS peer that accepts none for the write timeout end
//! it too, as a stuck write on a plain socket would.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use mio::unix::EventedFd;
use mio::{Events, Poll, PollOpt, Ready, Token};
use native_tls::TlsStream;

use super::socket::Socket;
use crate::error::{Error, Result};
use crate::thread::{self, Worker};

const TLS: Token = Token(0);
const PLAIN: Token = Token(1);

/// The most bytes moved in one read: one TLS record's worth and then some.
const CHUNK: usize = 64 << 10;

/// How long a wait for the sockets lasts before everything is tried again
/// anyway: a TLS session may need the socket the other way round from the
/// bytes it moves (a read that must write, a write that must read), which
/// no event announces; rare, so an idle connection wakes once a second.
const POLL_STEP: Duration = Duration::from_secs(1);

/// Starts the bridge thread (`syncmq-<name>`) for `tls`, whose handshake
/// is done. Returns the plain end, for the connection code, and the
/// thread, which its owner joins after shutting that end down.
///
/// # Errors
///
/// [`Error::Io`] when the socket pair, the poll or the thread cannot be
/// made.
pub(super) fn start(
    tls: TlsStream<TcpStream>,
    name: &str,
    write_timeout: Duration,
) -> Result<(Socket, Worker<()>)> {
    let fail = |e| Error::io("set up a TLS connection's bridge", e);
    let (inner, outer) = UnixStream::pair().map_err(fail)?;
    tls.get_ref().set_nonblocking(true).map_err(fail)?;
    outer.set_nonblocking(true).map_err(fail)?;
    let poll = Poll::new().map_err(fail)?;
    let both = Ready::readable() | Ready::writable();
    poll.register(
        &EventedFd(&tls.get_ref().as_raw_fd()),
        TLS,
        both,
        PollOpt::edge(),
    )
    .map_err(fail)?;
    poll.register(&EventedFd(&outer.as_raw_fd()), PLAIN, both, PollOpt::edge())
        .map_err(fail)?;
    let mut bridge = Bridge {
        tls,
        plain: outer,
        poll,
        write_timeout,
    };
    let worker = thread::spawn(name, move || bridge.run())?;
    Ok((Socket::Unix(inner), worker))
}

struct Bridge {
    tls: TlsStream<TcpStream>,
    plain: UnixStream,
    poll: Poll,
    write_timeout: Duration,
}

/// Bytes read from one side, not yet all written to the other.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    written: usize,
    /// The side they come from has closed.
    eof: bool,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.written == self.bytes.len()
    }

    fn rest(&self) -> &[u8] {
        &self.bytes[self.written..]
    }

    fn fill(&mut self, chunk: &[u8]) {
        self.bytes.clear();
        self.bytes.extend_from_slice(chunk);
        self.written = 0;
    }
}

impl Bridge {
    fn run(&mut self) {
        match self.pump() {
            Ok(()) => log::debug!("tls bridge: ended"),
            Err(e) => log::debug!("tls bridge: ended: {e}"),
        }
        // `close_notify` for the peer, as far as the socket takes it now.
        let _ = self.tls.shutdown();
        let _ = self.tls.get_ref().shutdown(Shutdown::Both);
        let _ = self.plain.shutdown(Shutdown::Both);
    }

    /// Moves bytes both ways until one side ends. Each pass tries every
    /// move that can make progress; only when none did does it wait for
    /// the sockets (edge-triggered: every socket waited on returned
    /// `WouldBlock` since its last event, so its next change wakes it).
    fn pump(&mut self) -> io::Result<()> {
        let mut chunk = vec![0u8; CHUNK];
        let mut down = Pending::default(); // from the TLS peer
        let mut up = Pending::default(); // to the TLS peer
        let mut events = Events::with_capacity(4);
        let mut stuck_since: Option<Instant> = None;
        loop {
            let mut moved = false;
            if down.is_empty() && !down.eof {
                match self.tls.read(&mut chunk) {
                    Ok(0) => down.eof = true,
                    Ok(n) => down.fill(&chunk[..n]),
                    Err(e) if blocked(&e) => {}
                    Err(e) => return Err(e),
                }
                moved |= !down.is_empty() || down.eof;
            }
            if !down.is_empty() {
                match self.plain.write(down.rest()) {
                    Ok(n) => {
                        down.written += n;
                        moved = true;
                    }
                    Err(e) if blocked(&e) => {}
                    Err(e) => return Err(e),
                }
            }
            if down.eof && down.is_empty() {
                return Ok(());
            }
            if up.is_empty() && !up.eof {
                match self.plain.read(&mut chunk) {
                    Ok(0) => up.eof = true,
                    Ok(n) => up.fill(&chunk[..n]),
                    Err(e) if blocked(&e) => {}
                    Err(e) => return Err(e),
                }
                moved |= !up.is_empty() || up.eof;
            }
            if !up.is_empty() {
                match self.tls.write(up.rest()) {
                    Ok(n) => {
                        up.written += n;
                        moved = true;
                        stuck_since = None;
                    }
                    Err(e) if blocked(&e) => {}
                    Err(e) => return Err(e),
                }
            }
            if up.eof && up.is_empty() {
                return Ok(());
            }
            if moved {
                continue;
            }
            if up.is_empty() {
                stuck_since = None;
            } else if stuck_since.get_or_insert_with(Instant::now).elapsed() >= self.write_timeout {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the TLS peer took no bytes for {:?} (the write timeout)",
                        self.write_timeout
                    ),
                ));
            }
            match self.poll.poll(&mut events, Some(POLL_STEP)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

fn blocked(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}
