//! [`ServerAddr`]: where a queue server listens, a TCP address or the path
//! of a Unix domain socket, with the one spelling (`unix:/path`) the
//! command-line tool and the logs use for the latter.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where a [`QueueServer`](super::QueueServer) listens
/// ([`QueueServer::addr`](super::QueueServer::addr)), and where a
/// [`QueueClient`](super::QueueClient) connects
/// ([`QueueClient::connect_to`](super::QueueClient::connect_to)).
///
/// `Display` prints a TCP address as `host:port` and a Unix socket as
/// `unix:` followed by its path, and [`parse`](Self::parse) reads both.
///
/// ```
/// use syncmq::server::ServerAddr;
///
/// let unix = ServerAddr::parse("unix:/run/syncmq.sock")?;
/// assert_eq!(unix, ServerAddr::Unix("/run/syncmq.sock".into()));
/// assert_eq!(unix.to_string(), "unix:/run/syncmq.sock");
/// assert_eq!(ServerAddr::parse("127.0.0.1:7450")?.to_string(), "127.0.0.1:7450");
/// # Ok::<(), syncmq::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServerAddr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// The path of a Unix domain socket.
    Unix(PathBuf),
}

impl ServerAddr {
    /// `unix:PATH` as [`ServerAddr::Unix`], anything else as a TCP
    /// address (`host:port`; a host name is resolved, and its first
    /// address taken).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) naming
    /// `addr`: an empty path after `unix:`, or a TCP address that does not
    /// parse or resolves to nothing.
    pub fn parse(addr: &str) -> crate::Result<Self> {
        if let Some(path) = addr.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(crate::Error::invalid(
                    "addr",
                    "`unix:` must be followed by the socket's path",
                ));
            }
            return Ok(ServerAddr::Unix(path.into()));
        }
        let mut resolved = std::net::ToSocketAddrs::to_socket_addrs(addr).map_err(|e| {
            crate::Error::invalid(
                "addr",
                format!("`{addr}` is neither `host:port` nor `unix:PATH`: {e}"),
            )
        })?;
        resolved.next().map(ServerAddr::Tcp).ok_or_else(|| {
            crate::Error::invalid("addr", format!("`{addr}` resolves to no address"))
        })
    }
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerAddr::Tcp(addr) => write!(f, "{addr}"),
            ServerAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}
