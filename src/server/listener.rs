//! [`Listener`]: the server's listening socket, TCP or a Unix domain
//! socket (ppmq's `ServerSocket`), and the Unix socket file's life: made
//! with its mode already set, a stale file from a dead server replaced, a
//! live server's never, and the file removed when the server closes.
//!
//! The socket is bound under a temporary name in the same directory, given
//! its mode, then renamed to its path: a client can only reach the path
//! once the mode guards it (binding at the path and then changing the mode
//! would leave a moment in which anyone may connect), and the rename
//! replaces a stale file in one step.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::server_addr::ServerAddr;
use super::server_config::QueueServerConfig;
use super::socket::Socket;
use crate::error::{Error, Result};

/// The listening socket; see the module docs.
pub(super) enum Listener {
    Tcp(TcpListener),
    Unix {
        listener: UnixListener,
        path: PathBuf,
        /// The socket file's device and inode, so that only our own file is
        /// removed on close (not one a later server put there).
        file: (u64, u64),
    },
}

impl Listener {
    /// Listens where `config` says: its Unix socket if it has one, else its
    /// TCP address. Returns the listener and its address (with the real
    /// port when port 0 was asked for).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the address or path: it cannot be bound,
    /// another server is listening on the path, or the path is something
    /// other than a socket.
    pub(super) fn bind(config: &QueueServerConfig) -> Result<(Listener, ServerAddr)> {
        if let Some(path) = config.unix_socket() {
            return bind_unix(path, config.unix_socket_mode());
        }
        let listener =
            TcpListener::bind(config.addr()).map_err(|e| Error::listen(config.addr(), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("read the listening socket's address", e))?;
        Ok((Listener::Tcp(listener), ServerAddr::Tcp(addr)))
    }

    /// Waits for the next connection; returns it and who is on the other
    /// end, for the logs.
    pub(super) fn accept(&self) -> io::Result<(Socket, String)> {
        match self {
            Listener::Tcp(l) => l
                .accept()
                .map(|(s, peer)| (Socket::Tcp(s), peer.to_string())),
            Listener::Unix { listener, path, .. } => listener
                .accept()
                .map(|(s, _)| (Socket::Unix(s), format!("unix:{}", path.display()))),
        }
    }

    /// Removes the socket file, if it is still the one this listener made.
    pub(super) fn remove_file(&self) {
        let Listener::Unix { path, file, .. } = self else {
            return;
        };
        match std::fs::symlink_metadata(path) {
            Ok(m) if (m.dev(), m.ino()) == *file => {
                if let Err(e) = std::fs::remove_file(path) {
                    log::warn!("server: remove the socket {}: {e}", path.display());
                }
            }
            _ => log::debug!(
                "server: {} is no longer our socket; left alone",
                path.display()
            ),
        }
    }
}

/// Connects to `addr` once, to wake a listener blocked in accept.
pub(super) fn wake(addr: &ServerAddr) {
    match addr {
        ServerAddr::Tcp(a) => {
            let mut wake = *a;
            if wake.ip().is_unspecified() {
                wake.set_ip(match wake {
                    SocketAddr::V4(_) => [127, 0, 0, 1].into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        }
        ServerAddr::Unix(path) => {
            let _ = UnixStream::connect(path);
        }
    }
}

/// Binds the Unix socket at `path` with `mode`; see the module docs.
fn bind_unix(path: &Path, mode: u32) -> Result<(Listener, ServerAddr)> {
    let shown = format!("unix:{}", path.display());
    let fail = |e: io::Error| Error::listen(&shown, e);
    // A live server's socket is `AddrInUse`: "address unix:PATH is
    // already in use".
    check_stale(path).map_err(fail)?;
    let temp = temporary_name(path);
    // Left by an earlier process that had our pid and died mid-start; the
    // name is this process's own, so nobody else's socket goes.
    let _ = std::fs::remove_file(&temp);
    let listener = UnixListener::bind(&temp)
        .map_err(|e| Error::io(format!("listen on {shown} (bind {})", temp.display()), e))?;
    let placed = std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(mode))
        .and_then(|()| std::fs::rename(&temp, path))
        .and_then(|()| std::fs::symlink_metadata(path));
    let meta = match placed {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            return Err(fail(e));
        }
    };
    let listener = Listener::Unix {
        listener,
        path: path.to_path_buf(),
        file: (meta.dev(), meta.ino()),
    };
    Ok((listener, ServerAddr::Unix(path.to_path_buf())))
}

/// Fine when nothing is at `path` or a dead server's socket is (the rename
/// replaces it); an error when a server answers there, or the path is not
/// a socket.
fn check_stale(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the path exists and is not a socket; not replacing it",
        ));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another server is listening on it",
        )),
        // Nobody listens: a socket file left by a server that died.
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            log::info!(
                "server: replacing the stale socket {} (no server answers on it)",
                path.display()
            );
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// A name next to `path`, unique in this process, and short (about 20
/// bytes) so that it fits the OS's limit on socket paths (108 bytes).
fn temporary_name(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = format!(".syncmq-{}-{n}", std::process::id());
    match path.parent() {
        Some(dir) => dir.join(name),
        None => PathBuf::from(name),
    }
}
