//! [`Socket`]: one connected stream of the queue server's protocol, over
//! TCP or a Unix domain socket, so that the server's and the client's
//! connection code is written once for both. A TLS connection is a Unix
//! socket too: the [`bridge`](super::bridge) thread does the TLS on the
//! TCP side and hands the connection code the plain end of a socket pair,
//! which (unlike a TLS stream) can be read on one thread while others
//! write, as the protocol needs.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// A connected stream, TCP or Unix; see the module docs.
#[derive(Debug)]
pub(super) enum Socket {
    /// A plain TCP connection.
    Tcp(TcpStream),
    /// A Unix domain socket connection, or the plain end of a TLS bridge.
    Unix(UnixStream),
}

impl Socket {
    /// Another handle on the same connection (for a second thread, or for
    /// shutting it down from outside).
    pub(super) fn try_clone(&self) -> io::Result<Socket> {
        Ok(match self {
            Socket::Tcp(s) => Socket::Tcp(s.try_clone()?),
            Socket::Unix(s) => Socket::Unix(s.try_clone()?),
        })
    }

    /// Shuts the connection down, waking any thread blocked reading it.
    pub(super) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.shutdown(how),
            Socket::Unix(s) => s.shutdown(how),
        }
    }

    pub(super) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.set_read_timeout(timeout),
            Socket::Unix(s) => s.set_read_timeout(timeout),
        }
    }

    pub(super) fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.set_write_timeout(timeout),
            Socket::Unix(s) => s.set_write_timeout(timeout),
        }
    }

    /// Frames go out at once rather than waiting to fill a packet; a Unix
    /// socket has no such delay to turn off.
    pub(super) fn set_nodelay(&self) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.set_nodelay(true),
            Socket::Unix(_) => Ok(()),
        }
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.read(buf),
            Socket::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.write(buf),
            Socket::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.flush(),
            Socket::Unix(s) => s.flush(),
        }
    }
}
