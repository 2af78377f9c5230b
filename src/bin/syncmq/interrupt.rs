//! Waiting that Ctrl-C (SIGINT) or SIGTERM cuts short, for commands that
//! repeat until stopped (`stats --watch`). The signals write to a socket
//! pair (signal-hook's self-pipe); a wait is a read with a timeout on the
//! other end, so a signal ends it at once, with no thread and no polling.
//! The command then returns normally: its last output is whole and the
//! exit status is 0.

use std::io::{ErrorKind, Read};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};
use syncmq::{Error, Result};

/// The read end of the signals' socket.
pub(crate) struct Interrupt {
    signalled: UnixStream,
}

impl Interrupt {
    /// Routes SIGINT and SIGTERM here from now on.
    pub(crate) fn register() -> Result<Self> {
        let io = |e| Error::io("register for SIGINT and SIGTERM", e);
        let (signalled, writer) = UnixStream::pair().map_err(io)?;
        signal_hook::low_level::pipe::register(SIGINT, writer.try_clone().map_err(io)?)
            .map_err(io)?;
        signal_hook::low_level::pipe::register(SIGTERM, writer).map_err(io)?;
        Ok(Interrupt { signalled })
    }

    /// Waits `timeout`; true when a signal came first (or had come since
    /// the last wait).
    pub(crate) fn wait(&mut self, timeout: Duration) -> Result<bool> {
        self.signalled
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .map_err(|e| Error::io("wait for a signal", e))?;
        match self.signalled.read(&mut [0u8; 16]) {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(false),
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(true),
            Err(e) => Err(Error::io("wait for a signal", e)),
        }
    }
}
