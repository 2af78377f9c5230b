//! TLS for the queue server's TCP connections (feature `tls`, on
//! `native-tls`: OpenSSL on Linux, everything blocking): the server's
//! acceptor, built once from its PEM identity, and the client's handshake,
//! with the connector the RabbitMQ connection uses
//! ([`TlsConfig`](crate::TlsConfig): CA bundle, server name,
//! client certificate), so that both say what a failed handshake means in
//! the same words. A finished handshake goes to the
//! [`bridge`](super::bridge), which gives the connection code a plain
//! [`Socket`].
//!
//! Without the feature only stand-ins are built: no acceptor or connector
//! can exist, and every connection is plain.

#[cfg(feature = "tls")]
pub(super) use with_tls::{acceptor, client_tls, Acceptor, ClientTls};
#[cfg(not(feature = "tls"))]
pub(super) use without_tls::{acceptor, client_tls, Acceptor, ClientTls};

#[cfg(feature = "tls")]
mod with_tls {
    use std::net::TcpStream;
    use std::time::Duration;

    use native_tls::{HandshakeError, Identity, TlsAcceptor};

    use super::super::bridge;
    use super::super::client_config::QueueClientConfig;
    use super::super::server_config::QueueServerConfig;
    use super::super::socket::Socket;
    use crate::error::{Error, Result};
    use crate::thread::Worker;
    use crate::tls::in_words;

    /// The server's side of TLS: its identity, checked and built.
    #[derive(Clone)]
    pub(in crate::server) struct Acceptor(TlsAcceptor);

    /// The client's side: its connector, the name the server's certificate
    /// must be valid for when it is not the address's host, and the warning
    /// a `danger_*` option logs on every connect.
    pub(in crate::server) struct ClientTls {
        connector: native_tls::TlsConnector,
        server_name: Option<String>,
        danger: Option<String>,
    }

    /// The acceptor for `config`'s identity; `None` when it has none.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming `tls_identity_pem` when the
    /// certificate and key are not PEM or do not belong together.
    pub(in crate::server) fn acceptor(config: &QueueServerConfig) -> Result<Option<Acceptor>> {
        let Some((cert, key)) = config.tls_identity() else {
            return Ok(None);
        };
        let invalid = |e: native_tls::Error| {
            Error::invalid(
                "tls_identity_pem",
                format!(
                    "not a PEM certificate and a PKCS#8 PEM key (`BEGIN PRIVATE KEY`) that belong together: {e}"
                ),
            )
        };
        let identity = Identity::from_pkcs8(cert, key.expose()).map_err(invalid)?;
        TlsAcceptor::new(identity)
            .map(|a| Some(Acceptor(a)))
            .map_err(invalid)
    }

    /// The connector for `config`'s [`TlsConfig`](crate::TlsConfig);
    /// `None` when it has none.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the setting (an unreadable file, a
    /// bad PEM, a bad server name).
    pub(in crate::server) fn client_tls(config: &QueueClientConfig) -> Result<Option<ClientTls>> {
        let Some(tls) = config.tls() else {
            return Ok(None);
        };
        Ok(Some(ClientTls {
            connector: tls.connector()?,
            server_name: tls.server_name().map(str::to_string),
            danger: tls.danger("server"),
        }))
    }

    impl Acceptor {
        /// The server's TLS handshake on `socket`, each read and write of
        /// it within `timeout`; then the bridge thread.
        ///
        /// # Errors
        ///
        /// [`Error::Refused`] when the handshake failed (a client that does
        /// not trust our certificate, a client that speaks no TLS),
        /// [`Error::Timeout`] when the client was too slow, [`Error::Io`]
        /// when the bridge cannot start.
        pub(in crate::server) fn accept(
            &self,
            socket: Socket,
            timeout: Duration,
            write_timeout: Duration,
        ) -> Result<(Socket, Worker<()>)> {
            let tcp = tcp(socket, timeout)?;
            match self.0.accept(tcp) {
                Ok(tls) => bridge::start(tls, "srv-tls", write_timeout),
                // OpenSSL's reason as it is: the words of `in_words` are
                // the client's view (our certificate, the peer's CA).
                Err(HandshakeError::Failure(e)) => {
                    Err(Error::refused(0, format!("TLS handshake failed: {e}")))
                }
                Err(HandshakeError::WouldBlock(_)) => {
                    Err(Error::timeout("the client's TLS handshake", timeout))
                }
            }
        }
    }

    impl ClientTls {
        /// The client's TLS handshake with `target` on `socket`, for the name
        /// `host` (unless the [`TlsConfig`](crate::TlsConfig) names
        /// another), each read and write of it within `timeout`; then the
        /// bridge thread, which gives up on a server that takes no bytes
        /// for `stall`.
        ///
        /// # Errors
        ///
        /// [`Error::Refused`] when certificates are the trouble (an unknown
        /// CA, a name mismatch, an expired certificate; the text says which),
        /// [`Error::Disconnected`] for anything else (the server hung up),
        /// [`Error::Timeout`] when it was too slow.
        pub(in crate::server) fn connect(
            &self,
            socket: Socket,
            target: &str,
            host: &str,
            timeout: Duration,
            stall: Duration,
        ) -> Result<(Socket, Worker<()>)> {
            let tcp = tcp(socket, timeout)?;
            if let Some(danger) = &self.danger {
                log::warn!("client of {target}: TLS with {danger}");
            }
            let domain = self.server_name.as_deref().unwrap_or(host);
            match self.connector.connect(domain, tcp) {
                Ok(stream) => bridge::start(stream, "client-tls", stall),
                Err(HandshakeError::Failure(e)) => {
                    let detail = e.to_string();
                    Err(match in_words(&detail, domain, "server") {
                        Some(words) => Error::refused(
                            0,
                            format!("TLS handshake with {target} failed: {words} ({detail})"),
                        ),
                        None => Error::disconnected_reason(
                            format!("TLS handshake with {target}"),
                            format!("failed: {detail}"),
                        ),
                    })
                }
                Err(HandshakeError::WouldBlock(_)) => Err(Error::timeout(
                    format!("TLS handshake with {target}"),
                    timeout,
                )),
            }
        }
    }

    /// The TCP socket under `socket`, with `timeout` for the handshake.
    fn tcp(socket: Socket, timeout: Duration) -> Result<TcpStream> {
        let Socket::Tcp(tcp) = socket else {
            return Err(Error::invalid(
                "tls",
                "TLS is for TCP connections; a Unix socket is guarded by its file mode",
            ));
        };
        let fail = |e| Error::io("set the TLS handshake's timeout", e);
        tcp.set_read_timeout(Some(timeout)).map_err(fail)?;
        tcp.set_write_timeout(Some(timeout)).map_err(fail)?;
        Ok(tcp)
    }
}

#[cfg(not(feature = "tls"))]
mod without_tls {
    use std::time::Duration;

    use super::super::client_config::QueueClientConfig;
    use super::super::server_config::QueueServerConfig;
    use super::super::socket::Socket;
    use crate::error::Result;
    use crate::thread::Worker;

    /// Never built: without the `tls` feature there is no TLS.
    #[derive(Clone)]
    pub(in crate::server) enum Acceptor {}

    /// Never built, as [`Acceptor`].
    pub(in crate::server) enum ClientTls {}

    /// Always `None`.
    // The same signature as with the feature, for the one caller.
    #[allow(clippy::unnecessary_wraps)]
    pub(in crate::server) fn acceptor(_config: &QueueServerConfig) -> Result<Option<Acceptor>> {
        Ok(None)
    }

    /// Always `None`.
    #[allow(clippy::unnecessary_wraps)]
    pub(in crate::server) fn client_tls(_config: &QueueClientConfig) -> Result<Option<ClientTls>> {
        Ok(None)
    }

    impl Acceptor {
        /// Unreachable: there is no value.
        pub(in crate::server) fn accept(
            &self,
            _socket: Socket,
            _timeout: Duration,
            _write_timeout: Duration,
        ) -> Result<(Socket, Worker<()>)> {
            match *self {}
        }
    }

    impl ClientTls {
        /// Unreachable: there is no value.
        pub(in crate::server) fn connect(
            &self,
            _socket: Socket,
            _target: &str,
            _host: &str,
            _timeout: Duration,
            _stall: Duration,
        ) -> Result<(Socket, Worker<()>)> {
            match *self {}
        }
    }
}
