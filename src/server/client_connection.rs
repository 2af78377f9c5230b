//! The client's side of one connection to the queue server, shared by the
//! [`QueueClient`](super::QueueClient) that owns it and the
//! [`RemoteSubscriber`](super::RemoteSubscriber)s and deliveries made from
//! it: the handshake, requests and their replies, the routes of pushed
//! deliveries, and the reader thread's loop.
//!
//! It is its own file so that the client and its subscribers share it
//! without using each other.

use std::collections::HashMap;
use std::io::{self, BufReader, Read};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::client_config::QueueClientConfig;
use super::frame::{self, FrameError, FrameWriter};
use super::held_acks::HeldAcks;
use super::protocol::{
    error_from_wire, Request, Response, WireDelivery, WireEntry, MAGIC, PROTOCOL_VERSION,
};
use super::server_addr::ServerAddr;
use super::socket::Socket;
use super::tls::ClientTls;
use crate::error::{Error, Result};
use crate::reply::{Answer, Outcome, Replies, Reply};
use crate::thread::{lock, Worker};

/// The frame limit used before the server announced its own.
const HANDSHAKE_MAX_FRAME: usize = 1 << 20;

/// How long a call without a timeout waits at a time (it then waits
/// again): any deadline must be a point in time.
const NO_TIMEOUT_STEP: Duration = Duration::from_secs(3600);

/// One connection to a queue server; see the module docs.
pub(super) struct ClientConnection {
    writer: FrameWriter,
    /// Acks not sent yet. Every frame but a keep-alive ping is written
    /// with this lock held, after what it holds, so frames go out in the
    /// order they were made.
    held: Mutex<HeldAcks>,
    /// The largest frame the reader accepts.
    read_limit: usize,
    next_id: AtomicU64,
    /// Callers waiting for the reply to their request, by request id: the
    /// reply, or why the connection ended. They wait on one condvar
    /// ([`Replies`]) rather than a channel each: a channel's receiver
    /// spins, yielding the CPU several times per call, before it sleeps,
    /// which on a busy machine takes the CPU from the threads that bring
    /// the reply.
    pending: Mutex<HashMap<u64, Reply<Result<Response>>>>,
    replies: Arc<Replies>,
    /// Where a subscribe's deliveries go once its `subscribed` reply comes,
    /// by request id: the reader moves the route to `routes` before it
    /// reads the next frame, so no delivery comes unrouted.
    new_routes: Mutex<HashMap<u64, Sender<Vec<WireDelivery>>>>,
    /// Where pushed deliveries go, by subscription number.
    routes: Mutex<HashMap<u64, Sender<Vec<WireDelivery>>>>,
    /// Why the connection ended, once it has.
    ended: Mutex<Option<Error>>,
    /// How often to ping when nothing else goes out: a third of the
    /// server's idle timeout; `None` when it has none.
    keepalive: Option<Duration>,
}

impl ClientConnection {
    /// Connects to `addr` (over TLS with `tls`) and says hello, with
    /// `config`'s token, each step within its connect timeout. Returns the
    /// connection, the reader for [`read_loop`](Self::read_loop), and a
    /// TLS connection's bridge thread, which ends once the connection is
    /// shut down.
    ///
    /// # Errors
    ///
    /// [`Error::Unreachable`] naming the address when nothing answers
    /// there (TCP or Unix socket); [`Error::Disconnected`] when the
    /// handshake fails; [`Error::Codec`] when the server speaks another
    /// protocol version; [`Error::Refused`] for a TLS certificate that
    /// does not verify, or a token the server does not take (code
    /// [`UNAUTHORIZED`](super::protocol::UNAUTHORIZED)); the server's other
    /// refusals (`busy`) as their error.
    pub(super) fn open(
        addr: &ServerAddr,
        config: &QueueClientConfig,
        tls: Option<&ClientTls>,
    ) -> Result<(ClientConnection, BufReader<Socket>, Option<Worker<()>>)> {
        let timeout = config.connect_timeout();
        let unreachable =
            |e: io::Error| Error::unreachable("the queue server", addr.to_string(), e);
        let socket = match addr {
            ServerAddr::Tcp(a) => {
                Socket::Tcp(TcpStream::connect_timeout(a, timeout).map_err(unreachable)?)
            }
            ServerAddr::Unix(path) => Socket::Unix(UnixStream::connect(path).map_err(unreachable)?),
        };
        let (socket, bridge) = match (tls, addr) {
            (Some(tls), ServerAddr::Tcp(a)) => {
                let target = addr.to_string();
                let (plain, bridge) = tls.connect(
                    socket,
                    &target,
                    &a.ip().to_string(),
                    timeout,
                    config.close_timeout(),
                )?;
                (plain, Some(bridge))
            }
            (Some(_), ServerAddr::Unix(_)) => {
                return Err(Error::invalid(
                    "tls",
                    format!("{addr} is a Unix socket; TLS is for TCP connections"),
                ))
            }
            (None, _) => (socket, None),
        };
        match Self::hello(addr, &socket, timeout, config.token()) {
            Ok((connection, reader)) => Ok((connection, reader, bridge)),
            Err(e) => {
                let _ = socket.shutdown(Shutdown::Both);
                if let Some(bridge) = bridge {
                    if let Err(joined) = bridge.join_timeout(config.close_timeout()) {
                        log::warn!("client: {joined}");
                    }
                }
                Err(e)
            }
        }
    }

    /// The protocol's handshake on `stream`: hello (with `token`), then the
    /// server's welcome or refusal.
    fn hello(
        addr: &ServerAddr,
        stream: &Socket,
        timeout: Duration,
        token: Option<String>,
    ) -> Result<(ClientConnection, BufReader<Socket>)> {
        let fail = |e: io::Error| Error::disconnected(format!("connect to {addr}"), e);
        stream.set_nodelay().map_err(fail)?;
        stream.set_read_timeout(Some(timeout)).map_err(fail)?;
        let mut reader = BufReader::new(stream.try_clone().map_err(fail)?);
        let writer = FrameWriter::new(stream, HANDSHAKE_MAX_FRAME, "send to the queue server")
            .map_err(fail)?;
        writer.send(&Request::Hello {
            magic: MAGIC.into(),
            version: PROTOCOL_VERSION,
            token,
        })?;
        let mut buf = Vec::new();
        frame::read_frame(&mut reader, &mut buf, HANDSHAKE_MAX_FRAME)
            .map_err(|e| Error::disconnected(format!("handshake with {addr}"), e))?;
        let (max_frame, idle_timeout_ms) = match frame::decode::<Response>(&buf)? {
            Response::Welcome {
                version,
                max_frame,
                idle_timeout_ms,
            } if version == PROTOCOL_VERSION => (
                usize::try_from(max_frame).unwrap_or(usize::MAX),
                idle_timeout_ms,
            ),
            Response::Welcome { version, .. } => {
                return Err(Error::codec_reason(
                    format!("handshake with {addr}"),
                    format!("the server speaks protocol {version}, this client {PROTOCOL_VERSION}"),
                ))
            }
            Response::Error {
                kind,
                name,
                object,
                message,
                ..
            } => return Err(error_from_wire(&kind, name, object, message)),
            other => return Err(unexpected(&other)),
        };
        // The reader wakes at the keep-alive interval to ping if need be.
        let keepalive =
            idle_timeout_ms.map(|ms| Duration::from_millis(ms / 3).max(Duration::from_millis(1)));
        stream.set_read_timeout(keepalive).map_err(fail)?;
        let connection = ClientConnection {
            writer: writer.with_limit(max_frame),
            held: Mutex::new(HeldAcks::default()),
            // The server may push frames larger than its own limit (a batch
            // of large messages is split, but one message with its envelope
            // may come close), so allow twice the limit.
            read_limit: max_frame.saturating_mul(2),
            next_id: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            replies: Replies::new(),
            new_routes: Mutex::new(HashMap::new()),
            routes: Mutex::new(HashMap::new()),
            ended: Mutex::new(None),
            keepalive,
        };
        Ok((connection, reader))
    }

    /// Sends `request` without waiting for anything.
    ///
    /// # Errors
    ///
    /// Why the connection ended, when it has; as [`FrameWriter::send`].
    pub(super) fn send(&self, request: &Request) -> Result<()> {
        self.check_open()?;
        let mut held = lock(&self.held);
        if held.is_empty() {
            return self.writer.send(request);
        }
        let frames = held.take();
        self.writer.send_all(frames.iter().chain([request]))
    }

    /// Acks `entry` of subscription `sub` without waiting for anything; the
    /// frame may be held back to go out with others (see [`HeldAcks`]).
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub(super) fn ack(&self, sub: u64, entry: WireEntry) -> Result<()> {
        self.check_open()?;
        let mut held = lock(&self.held);
        if held.hold(sub, entry, Instant::now()) {
            return Ok(());
        }
        self.writer.send_all(&held.take())
    }

    /// Subscription `sub` has deliveries in hand: up to `limit` of its
    /// acks may be held back.
    pub(super) fn busy(&self, sub: u64, limit: usize) {
        lock(&self.held).busy(sub, limit);
    }

    /// Subscription `sub` has no delivery in hand: sends what is held.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub(super) fn idle(&self, sub: u64) -> Result<()> {
        let mut held = lock(&self.held);
        held.idle(sub);
        if held.is_empty() {
            return Ok(());
        }
        self.check_open()?;
        self.writer.send_all(&held.take())
    }

    fn check_open(&self) -> Result<()> {
        match lock(&self.ended).clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// True once the connection ended (the reader saw it go).
    pub(super) fn has_ended(&self) -> bool {
        lock(&self.ended).is_some()
    }

    /// Sends the request `make` builds with a fresh id and waits at most
    /// `timeout` for its reply; an error reply is its [`Error`].
    ///
    /// # Errors
    ///
    /// The server's error; [`Error::Timeout`] when no reply came in time;
    /// why the connection ended.
    pub(super) fn call(
        &self,
        timeout: Option<Duration>,
        make: impl FnOnce(u64) -> Request,
    ) -> Result<Response> {
        self.call_routed(timeout, make, None)
    }

    /// As [`call`](Self::call) for a subscribe: returns its subscription
    /// number and the receiver of its deliveries.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    pub(super) fn subscribe(
        &self,
        timeout: Option<Duration>,
        make: impl FnOnce(u64) -> Request,
    ) -> Result<(u64, Receiver<Vec<WireDelivery>>)> {
        let (tx, rx) = crossbeam_channel::unbounded();
        match self.call_routed(timeout, make, Some(tx))? {
            Response::Subscribed { sub, .. } => Ok((sub, rx)),
            other => Err(unexpected(&other)),
        }
    }

    /// Stops routing deliveries to subscription `sub`; its held acks go
    /// out with the next frame (its unsubscribe).
    pub(super) fn remove_route(&self, sub: u64) {
        lock(&self.routes).remove(&sub);
        lock(&self.held).idle(sub);
    }

    /// Why the connection ended, or that it did when the reader has not
    /// said yet.
    pub(super) fn end_error(&self) -> Error {
        lock(&self.ended)
            .clone()
            .unwrap_or_else(|| Error::disconnected_reason("queue server", "the connection closed"))
    }

    /// Shuts the socket down: the reader thread sees the end and fails
    /// every waiting call.
    pub(super) fn disconnect(&self) {
        self.writer.disconnect();
    }

    fn call_routed(
        &self,
        timeout: Option<Duration>,
        make: impl FnOnce(u64) -> Request,
        route: Option<Sender<Vec<WireDelivery>>>,
    ) -> Result<Response> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = self.replies.pair();
        lock(&self.pending).insert(id, reply);
        if let Some(route) = route {
            lock(&self.new_routes).insert(id, route);
        }
        let reply = self
            .send(&make(id))
            .and_then(|()| self.wait_reply(id, &answer, timeout));
        lock(&self.pending).remove(&id);
        // Moved to `routes` already when the subscribe succeeded.
        lock(&self.new_routes).remove(&id);
        match reply? {
            Response::Error {
                kind,
                name,
                object,
                message,
                ..
            } => Err(error_from_wire(&kind, name, object, message)),
            other => Ok(other),
        }
    }

    /// Waits at most `timeout` for the reply to request `id`.
    fn wait_reply(
        &self,
        id: u64,
        answer: &Answer<Result<Response>>,
        timeout: Option<Duration>,
    ) -> Result<Response> {
        // A timeout too long to add to the clock waits without limit.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            let until = deadline.unwrap_or_else(|| Instant::now() + NO_TIMEOUT_STEP);
            match answer.wait_until(Some(until)) {
                Outcome::Answered(reply) => return reply,
                Outcome::Dropped | Outcome::Closed => return Err(self.end_error()),
                Outcome::TimedOut => {
                    if let (Some(_), Some(t)) = (deadline, timeout) {
                        return Err(Error::timeout(format!("reply to request {id}"), t));
                    }
                }
            }
        }
    }

    /// Sends a ping (id 0, no reply) if nothing went out for the keep-alive
    /// interval, so the server's idle timeout does not close a client that
    /// is only waiting.
    fn keep_alive(&self) {
        let Some(every) = self.keepalive else {
            return;
        };
        if self.writer.idle_for() < every {
            return;
        }
        // A writer holding the lock is sending a frame already; waiting for
        // it here would stop the reader, which that write may depend on.
        if let Some(Err(e)) = self.writer.try_send(&Request::Ping { id: 0 }) {
            log::debug!("client: keep-alive ping failed: {e}");
        }
    }

    /// The reader thread: routes replies and deliveries until the
    /// connection ends, then fails every waiting call and ends every
    /// subscription.
    pub(super) fn read_loop(&self, reader: BufReader<Socket>) {
        let mut reader = KeepAliveReader {
            connection: self,
            reader,
        };
        let mut buf = Vec::new();
        let why = loop {
            match frame::read_frame(&mut reader, &mut buf, self.read_limit) {
                Ok(()) => {}
                Err(FrameError::Eof) => {
                    break Error::disconnected_reason("queue server", "closed the connection")
                }
                Err(e) => break Error::disconnected("read from the queue server", e),
            }
            let response = match frame::decode::<Response>(&buf) {
                Ok(r) => r,
                // The connection ends: the stream is out of step.
                Err(e) => break e,
            };
            match response {
                Response::Deliver { sub, deliveries } => {
                    let route = lock(&self.routes).get(&sub).cloned();
                    match route {
                        Some(tx) => {
                            let _ = tx.send(deliveries);
                        }
                        None => log::debug!("client: deliveries for a closed subscription {sub}"),
                    }
                }
                Response::Error {
                    id: 0,
                    kind,
                    name,
                    object,
                    message,
                } => break error_from_wire(&kind, name, object, message),
                Response::Subscribed { id, sub } => {
                    // Routed before any delivery for it is read.
                    if let Some(tx) = lock(&self.new_routes).remove(&id) {
                        lock(&self.routes).insert(sub, tx);
                    }
                    self.reply(id, Response::Subscribed { id, sub });
                }
                other => {
                    let id = match &other {
                        Response::Published { id, .. }
                        | Response::Done { id, .. }
                        | Response::Stats { id, .. }
                        | Response::DeadLetters { id, .. }
                        | Response::Peeked { id, .. }
                        | Response::Error { id, .. } => *id,
                        _ => 0,
                    };
                    self.reply(id, other);
                }
            }
        };
        log::debug!("client: connection ended: {why}");
        *lock(&self.ended) = Some(why.clone());
        for (_, reply) in lock(&self.pending).drain() {
            reply.send(Err(why.clone()));
        }
        lock(&self.routes).clear();
        self.disconnect();
    }

    fn reply(&self, id: u64, response: Response) {
        if let Some(reply) = lock(&self.pending).remove(&id) {
            reply.send(Ok(response));
        }
    }
}

/// [`Error::Codec`] for a reply that does not answer the request.
pub(super) fn unexpected(r: &Response) -> Error {
    Error::codec_reason(
        "read a queue server reply",
        format!("unexpected reply {r:?}"),
    )
}

/// The reader thread's socket: a read timeout (the keep-alive interval) is
/// a chance to ping, never an error, even inside a frame.
struct KeepAliveReader<'a> {
    connection: &'a ClientConnection,
    reader: BufReader<Socket>,
}

impl Read for KeepAliveReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let got = self.reader.read(out);
            // After every read, not only timeouts: a client that receives
            // a steady stream but sends nothing must ping too.
            self.connection.keep_alive();
            match got {
                Err(e) if frame::is_timeout(&e) => {}
                other => return other,
            }
        }
    }
}
