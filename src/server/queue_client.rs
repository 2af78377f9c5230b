//! [`QueueClient`]: the blocking client of the queue server.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::client_config::QueueClientConfig;
use super::client_connection::{unexpected, ClientConnection};
use super::protocol::{Request, Response, WireMessage};
use super::remote_subscriber::RemoteSubscriber;
use super::server_addr::ServerAddr;
use super::tls::{self, ClientTls};
use crate::error::{Error, Result};
use crate::message::Message;
use crate::queue::{DeadLetter, Peeked, SubscriberStats};
use crate::thread::{self, lock, Worker};

/// What [`QueueClient::open`] made.
type Opened = (Arc<ClientConnection>, Worker<()>, Option<Worker<()>>);

/// A connection to a queue server.
///
/// One connection (TCP, TLS over TCP, or a Unix domain socket) with one
/// reader thread (`syncmq-client`; over TLS also a `syncmq-client-tls`
/// bridge thread) that routes
/// replies to the callers waiting for them and deliveries to their
/// [`RemoteSubscriber`]. It is `Send + Sync`: threads may share one
/// client, and their requests go out one after the other on the
/// connection (the server answers them in order, one at a time; open more
/// clients for more parallel publishes).
///
/// # Guarantees
///
/// - [`publish`](Self::publish) returns `Ok` only after the server said the
///   messages are durable. An error means they may or may not be stored
///   (the connection may have died after the write): publish again, and
///   use a dedupe key if duplicates matter.
/// - Deliveries come in queue order; see [`RemoteSubscriber`] for how they
///   are settled. Deliveries not settled when the client or the connection
///   goes away are redelivered by the server.
/// - [`close`](Self::close), or dropping the client, waits until the
///   server has read every ack sent before, then closes the connection and
///   joins the reader thread.
/// - A quiet client is not closed by the server's idle timeout: when the
///   server announces one, the reader thread sends a `ping` whenever
///   nothing went out for a third of it (subscriptions waiting for
///   deliveries included).
pub struct QueueClient {
    connection: Arc<ClientConnection>,
    config: QueueClientConfig,
    reader: Mutex<Option<Worker<()>>>,
    /// A TLS connection's bridge thread.
    bridge: Mutex<Option<Worker<()>>>,
}

impl fmt::Debug for QueueClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueClient").finish_non_exhaustive()
    }
}

impl QueueClient {
    /// Connects to the server at `addr` (`host:port`) with the defaults.
    ///
    /// # Errors
    ///
    /// [`Error::Unreachable`] naming the address when nothing answers
    /// there (`cannot reach the queue server at 127.0.0.1:7450: connection
    /// refused`); [`Error::Disconnected`] when the handshake fails;
    /// [`Error::Codec`] when the server speaks another
    /// protocol version; [`Error::Busy`] when it has all the connections it
    /// allows.
    pub fn connect(addr: impl ToSocketAddrs) -> Result<Self> {
        Self::connect_with(addr, QueueClientConfig::default())
    }

    /// Connects with `config`, trying each address `addr` resolves to.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect) (the last address's error);
    /// [`Error::InvalidArgument`] from [`QueueClientConfig::validate`], or
    /// naming `addr` when it resolves to nothing; [`Error::Refused`] for
    /// a server certificate that does not verify (with
    /// [`with_tls`](QueueClientConfig::with_tls)), or a missing or wrong
    /// token (code [`UNAUTHORIZED`](super::protocol::UNAUTHORIZED), the
    /// text saying which).
    pub fn connect_with(addr: impl ToSocketAddrs, config: QueueClientConfig) -> Result<Self> {
        config.validate()?;
        let addrs: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(|e| Error::invalid("addr", format!("not a socket address: {e}")))?
            .collect();
        let tls = tls::client_tls(&config)?;
        let mut last = Error::invalid("addr", "resolves to no address");
        for a in addrs {
            match Self::open(&ServerAddr::Tcp(a), &config, tls.as_ref()) {
                Ok(opened) => return Ok(Self::from_parts(opened, config)),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Connects with `config` to the server listening on the Unix domain
    /// socket at `path` ([`QueueServerConfig::with_unix_socket`](super::QueueServerConfig::with_unix_socket)).
    ///
    /// # Errors
    ///
    /// As [`connect_with`](Self::connect_with); [`Error::InvalidArgument`]
    /// naming `tls` when `config` asks for TLS, which is for TCP.
    pub fn connect_unix(path: impl AsRef<Path>, config: QueueClientConfig) -> Result<Self> {
        Self::connect_to(&ServerAddr::Unix(path.as_ref().to_path_buf()), config)
    }

    /// Connects with `config` to `addr`, TCP or Unix socket, as
    /// [`QueueServer::addr`](super::QueueServer::addr) gives it or
    /// [`ServerAddr::parse`] reads it.
    ///
    /// # Errors
    ///
    /// As [`connect_with`](Self::connect_with) and
    /// [`connect_unix`](Self::connect_unix).
    pub fn connect_to(addr: &ServerAddr, config: QueueClientConfig) -> Result<Self> {
        config.validate()?;
        let tls = tls::client_tls(&config)?;
        let opened = Self::open(addr, &config, tls.as_ref())?;
        Ok(Self::from_parts(opened, config))
    }

    /// One connection attempt, and the reader thread: the connection, the
    /// reader, a TLS connection's bridge.
    fn open(
        addr: &ServerAddr,
        config: &QueueClientConfig,
        tls: Option<&ClientTls>,
    ) -> Result<Opened> {
        let (connection, reader, bridge) = ClientConnection::open(addr, config, tls)?;
        let connection = Arc::new(connection);
        let reading = connection.clone();
        let worker = match thread::spawn("client", move || reading.read_loop(reader)) {
            Ok(worker) => worker,
            Err(e) => {
                connection.disconnect();
                if let Some(bridge) = bridge {
                    let _ = bridge.join_timeout(config.close_timeout());
                }
                return Err(e);
            }
        };
        Ok((connection, worker, bridge))
    }

    fn from_parts((connection, reader, bridge): Opened, config: QueueClientConfig) -> Self {
        QueueClient {
            connection,
            config,
            reader: Mutex::new(Some(reader)),
            bridge: Mutex::new(bridge),
        }
    }

    /// Publishes `messages` to `topic` in one atomic batch and returns once
    /// the server says they are durable.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] from the server for an unknown topic,
    /// [`Error::InvalidArgument`] for a message over the size limit
    /// (nothing was stored either way); [`Error::Codec`] when the batch is
    /// over the frame limit (split it); [`Error::Disconnected`] when the
    /// connection failed, [`Error::Timeout`] when no reply came within the
    /// request timeout (the messages may or may not be stored).
    pub fn publish(&self, topic: &str, messages: &[Message]) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let wire: Vec<WireMessage> = messages.iter().map(WireMessage::from).collect();
        match self
            .connection
            .call(self.config.request_timeout(), |id| Request::Publish {
                id,
                topic: topic.to_string(),
                messages: wire,
            })? {
            Response::Published { .. } => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Subscribes as `subscriber` of `topic`, with the configured batch.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown topic or subscriber;
    /// [`Error::InvalidArgument`] naming `max_subscriptions` when the
    /// connection holds as many as the server allows;
    /// [`Error::Disconnected`] when the connection failed.
    pub fn subscribe(&self, topic: &str, subscriber: &str) -> Result<RemoteSubscriber> {
        self.subscribe_with(topic, subscriber, self.config.batch())
    }

    /// Subscribes with at most `batch` unacknowledged deliveries at a time.
    ///
    /// # Errors
    ///
    /// As [`subscribe`](Self::subscribe); [`Error::InvalidArgument`] for a
    /// zero batch.
    pub fn subscribe_with(
        &self,
        topic: &str,
        subscriber: &str,
        batch: u32,
    ) -> Result<RemoteSubscriber> {
        self.subscribe_limited(topic, subscriber, batch, None)
    }

    /// Subscribes for at most `max` deliveries in all (redeliveries
    /// included), `batch` unacknowledged at a time: for a consumer that
    /// wants N messages and must not be sent more (what it was sent and
    /// did not settle when it leaves counts as a delivery).
    ///
    /// # Errors
    ///
    /// As [`subscribe_with`](Self::subscribe_with).
    pub fn subscribe_limited(
        &self,
        topic: &str,
        subscriber: &str,
        batch: u32,
        max: Option<u64>,
    ) -> Result<RemoteSubscriber> {
        if batch == 0 {
            return Err(Error::invalid("batch", "must be at least 1"));
        }
        let (sub, rx) = self
            .connection
            .subscribe(self.config.request_timeout(), |id| Request::Subscribe {
                id,
                topic: topic.into(),
                subscriber: subscriber.into(),
                batch,
                max,
            })?;
        Ok(RemoteSubscriber::new(
            self.connection.clone(),
            sub,
            batch,
            rx,
        ))
    }

    /// ppmq's reconnect: every in-flight delivery of `subscriber` goes back
    /// to the front of its queue. Returns how many.
    ///
    /// # Errors
    ///
    /// As [`subscribe`](Self::subscribe).
    pub fn reset(&self, topic: &str, subscriber: &str) -> Result<u64> {
        self.count(|id| Request::Reset {
            id,
            topic: topic.into(),
            subscriber: subscriber.into(),
        })
    }

    /// The message `subscriber`'s next receive would take, without taking
    /// it: no delivery is counted, it stays deliverable (see
    /// [`Subscriber::peek`](crate::queue::Subscriber::peek)). `None` when
    /// nothing is deliverable now; it does not wait.
    ///
    /// # Errors
    ///
    /// As [`subscribe`](Self::subscribe).
    pub fn peek(&self, topic: &str, subscriber: &str) -> Result<Option<Peeked>> {
        Ok(self.peek_batch(topic, subscriber, 1)?.pop())
    }

    /// Up to `limit` (1 to [`MAX_PEEK`](super::protocol::MAX_PEEK)) of the
    /// messages `subscriber`'s next receives would take, in that order,
    /// taking none: as [`peek`](Self::peek).
    ///
    /// # Errors
    ///
    /// As [`subscribe`](Self::subscribe); [`Error::InvalidArgument`] naming
    /// `limit` when it is 0 or above the maximum.
    pub fn peek_batch(&self, topic: &str, subscriber: &str, limit: u32) -> Result<Vec<Peeked>> {
        match self
            .connection
            .call(self.config.request_timeout(), |id| Request::Peek {
                id,
                topic: topic.into(),
                subscriber: subscriber.into(),
                limit,
            })? {
            Response::Peeked { messages, .. } => Ok(messages.into_iter().map(Into::into).collect()),
            other => Err(unexpected(&other)),
        }
    }

    /// The counters of every subscriber of `topic`, or of every topic.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown topic; [`Error::Disconnected`].
    pub fn stats(&self, topic: Option<&str>) -> Result<Vec<SubscriberStats>> {
        match self
            .connection
            .call(self.config.request_timeout(), |id| Request::Stats {
                id,
                topic: topic.map(str::to_string),
            })? {
            Response::Stats { stats, .. } => Ok(stats.into_iter().map(Into::into).collect()),
            other => Err(unexpected(&other)),
        }
    }

    /// Up to `limit` dead letters of `subscriber`, oldest first.
    ///
    /// # Errors
    ///
    /// As [`subscribe`](Self::subscribe).
    pub fn dead_letters(
        &self,
        topic: &str,
        subscriber: &str,
        limit: u32,
    ) -> Result<Vec<DeadLetter>> {
        match self
            .connection
            .call(self.config.request_timeout(), |id| Request::DeadLetters {
                id,
                topic: topic.into(),
                subscriber: subscriber.into(),
                limit,
            })? {
            Response::DeadLetters { letters, .. } => {
                Ok(letters.into_iter().map(Into::into).collect())
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Moves every dead letter of `subscriber` back to its queue. Returns
    /// how many.
    ///
    /// # Errors
    ///
    /// As [`subscribe`](Self::subscribe).
    pub fn replay_dead_letters(&self, topic: &str, subscriber: &str) -> Result<u64> {
        self.count(|id| Request::ReplayDeadLetters {
            id,
            topic: topic.into(),
            subscriber: subscriber.into(),
        })
    }

    fn count(&self, make: impl FnOnce(u64) -> Request) -> Result<u64> {
        match self.connection.call(self.config.request_timeout(), make)? {
            Response::Done { count, .. } => Ok(count),
            other => Err(unexpected(&other)),
        }
    }

    /// Waits until the server has read every ack and nack sent so far,
    /// then closes the connection and joins the reader thread (each at most
    /// the [close timeout](QueueClientConfig::close_timeout)). Deliveries not settled yet are redelivered by the
    /// server. Calling it again does nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if the reader thread did not stop in time. A
    /// server that does not answer in time is logged, not an error: what it
    /// did not read comes again (at least once).
    pub fn close(&self) -> Result<()> {
        let Some(worker) = lock(&self.reader).take() else {
            return Ok(());
        };
        let timeout = self.config.close_timeout();
        if !self.connection.has_ended() {
            // The server answers in order: its reply to this ping means it
            // has applied every ack and nack written before it.
            match self
                .connection
                .call(Some(timeout), |id| Request::Ping { id })
            {
                Ok(_) => {}
                Err(e @ Error::Timeout { .. }) => log::warn!("client: close: {e}"),
                Err(e) => log::debug!("client: close: {e}"),
            }
        }
        self.connection.disconnect();
        let joined = worker.join_timeout(timeout);
        // The bridge ends once it has seen the connection shut down.
        match lock(&self.bridge).take() {
            Some(bridge) => joined.and(bridge.join_timeout(timeout)),
            None => joined,
        }
    }
}

impl Drop for QueueClient {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::warn!("client: close on drop: {e}");
        }
    }
}
