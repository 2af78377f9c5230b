//! The blocking client of the queue server.
//!
//! A [`Client`] is one TCP connection with one reader thread
//! (`syncmq-client`) that routes replies to the callers waiting for them and
//! deliveries to their [`Subscription`]. It is `Send + Sync`: threads may
//! share one client, and their requests go out pipelined on the connection
//! (the server answers them in order, one at a time; open more clients for
//! more parallel publishes).
//!
//! # Guarantees
//!
//! - [`Client::publish`] returns `Ok` only after the server said the
//!   messages are durable. An error means they may or may not be stored
//!   (the connection may have died after the write): publish again, and
//!   use a dedupe key if duplicates matter.
//! - Deliveries come in queue order. A [`Delivery`](crate::Delivery) dropped unsettled is
//!   nacked with requeue; deliveries not settled when the client or the
//!   connection goes away are redelivered by the server.
//! - Dropping the client closes the connection and joins its thread.
//! - A quiet client is not closed by the server's idle timeout: when the
//!   server announces one, the reader thread sends a `ping` whenever
//!   nothing went out for a third of it (subscriptions waiting for
//!   deliveries included).

use std::collections::HashMap;
use std::io::{self, BufReader, BufWriter, Read};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, Sender};

use super::consumer::Subscription;
use super::frame::{self, FrameError};
use super::protocol::{
    error_from_wire, Request, Response, WireDelivery, WireMessage, MAGIC, PROTOCOL_VERSION,
};
use crate::error::{Error, Result};
use crate::message::Message;
use crate::queue::{DeadLetter, SubscriberStats};
use crate::thread::{self, Worker};

/// How long a request waits for its reply unless configured otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How a [`Client`] connects.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// How long connecting and the handshake may take; 10 s.
    pub connect_timeout: Duration,
    /// How long a request waits for its reply; 30 s. `None` waits as long
    /// as the connection lives (a server that stops answering without
    /// closing the connection would then block the caller for ever).
    pub request_timeout: Option<Duration>,
    /// Unacknowledged deliveries per subscription by default; 100.
    pub batch: u32,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Some(DEFAULT_REQUEST_TIMEOUT),
            batch: 100,
        }
    }
}

impl ClientConfig {
    /// The defaults: see each field.
    pub fn new() -> Self {
        ClientConfig::default()
    }

    /// Sets the connect and handshake timeout.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets how long a request waits for its reply.
    #[must_use]
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// Requests wait for their reply as long as the connection lives.
    #[must_use]
    pub fn without_request_timeout(mut self) -> Self {
        self.request_timeout = None;
        self
    }

    /// Sets the default subscription batch (window).
    #[must_use]
    pub fn with_batch(mut self, batch: u32) -> Self {
        self.batch = batch;
        self
    }

    /// Checks every setting; [`Client::connect_with`] calls it too.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the setting: a connect or request
    /// timeout below 1 ms (the OS refuses a zero socket timeout, and a
    /// request could never be answered in time), a zero batch.
    pub fn validate(&self) -> Result<()> {
        if self.connect_timeout < Duration::from_millis(1) {
            return Err(Error::invalid("connect_timeout", "must be at least 1 ms"));
        }
        if self
            .request_timeout
            .is_some_and(|t| t < Duration::from_millis(1))
        {
            return Err(Error::invalid(
                "request_timeout",
                "must be at least 1 ms, or None to wait as long as the connection lives",
            ));
        }
        if self.batch == 0 {
            return Err(Error::invalid("batch", "must be at least 1"));
        }
        Ok(())
    }
}

type Reply = Result<Response>;

pub(super) struct Inner {
    writer: Mutex<(BufWriter<TcpStream>, Vec<u8>)>,
    raw: TcpStream,
    max_frame: usize,
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, Sender<Reply>>>,
    pub(super) subs: Mutex<HashMap<u64, Sender<Vec<WireDelivery>>>>,
    /// Why the connection ended, once it has.
    ended: Mutex<Option<Error>>,
    /// How often to ping when nothing else goes out: a third of the
    /// server's idle timeout; `None` when it has none.
    keepalive: Option<Duration>,
    started: Instant,
    /// When a frame last went out, in milliseconds since `started`.
    last_sent_ms: AtomicU64,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inner {
    pub(super) fn send(&self, request: &Request) -> Result<()> {
        if let Some(e) = lock(&self.ended).clone() {
            return Err(e);
        }
        let mut guard = lock(&self.writer);
        let (stream, buf) = &mut *guard;
        frame::encode_frame(request, buf, self.max_frame)?;
        self.write_locked(stream, buf)
    }

    fn write_locked(&self, stream: &mut BufWriter<TcpStream>, buf: &[u8]) -> Result<()> {
        frame::write_encoded(stream, buf).map_err(|e| {
            // Part of a frame may have gone out: the stream is unusable.
            let _ = self.raw.shutdown(Shutdown::Both);
            Error::disconnected("send to the queue server", e)
        })?;
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_sent_ms.store(now, Ordering::Relaxed);
        Ok(())
    }

    /// Sends a ping (id 0, no reply) if nothing went out for the keep-alive
    /// interval, so the server's idle timeout does not close a client that
    /// is only waiting.
    fn keep_alive(&self) {
        let Some(every) = self.keepalive else {
            return;
        };
        let last = Duration::from_millis(self.last_sent_ms.load(Ordering::Relaxed));
        if self.started.elapsed().saturating_sub(last) < every {
            return;
        }
        // A writer holding the lock is sending a frame already; waiting for
        // it here would stop the reader, which that write may depend on.
        let Ok(mut guard) = self.writer.try_lock() else {
            return;
        };
        let (stream, buf) = &mut *guard;
        let sent = frame::encode_frame(&Request::Ping { id: 0 }, buf, self.max_frame)
            .and_then(|()| self.write_locked(stream, buf));
        if let Err(e) = sent {
            log::debug!("client: keep-alive ping failed: {e}");
        }
    }

    fn call(&self, timeout: Option<Duration>, make: impl FnOnce(u64) -> Request) -> Reply {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = crossbeam_channel::bounded(1);
        lock(&self.pending).insert(id, tx);
        if let Err(e) = self.send(&make(id)) {
            lock(&self.pending).remove(&id);
            return Err(e);
        }
        let reply = match timeout {
            None => rx.recv().map_err(|_| self.end_error()),
            Some(t) => rx.recv_timeout(t).map_err(|e| match e {
                RecvTimeoutError::Timeout => Error::timeout(format!("reply to request {id}"), t),
                RecvTimeoutError::Disconnected => self.end_error(),
            }),
        };
        lock(&self.pending).remove(&id);
        match reply? {
            Ok(Response::Error {
                kind,
                name,
                object,
                message,
                ..
            }) => Err(error_from_wire(&kind, name, object, message)),
            other => other,
        }
    }

    pub(super) fn end_error(&self) -> Error {
        lock(&self.ended)
            .clone()
            .unwrap_or_else(|| Error::disconnected_reason("queue server", "the connection closed"))
    }
}

/// A connection to a queue server. See the module docs.
pub struct Client {
    inner: Arc<Inner>,
    config: ClientConfig,
    reader: Mutex<Option<Worker<()>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

fn unexpected(r: &Response) -> Error {
    Error::codec_reason(
        "read a queue server reply",
        format!("unexpected reply {r:?}"),
    )
}

impl Client {
    /// Connects to the server at `addr` (`host:port`) with the defaults.
    ///
    /// # Errors
    ///
    /// [`Error::Disconnected`] when nothing answers or the handshake fails
    /// (naming the address); [`Error::Codec`] when the server speaks another
    /// protocol version.
    pub fn connect(addr: impl ToSocketAddrs) -> Result<Self> {
        Self::connect_with(addr, ClientConfig::default())
    }

    /// Connects with `config`.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect); [`Error::InvalidArgument`] from
    /// [`ClientConfig::validate`].
    pub fn connect_with(addr: impl ToSocketAddrs, config: ClientConfig) -> Result<Self> {
        config.validate()?;
        let addrs: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(|e| Error::invalid("addr", format!("not a socket address: {e}")))?
            .collect();
        let mut last = Error::invalid("addr", "resolves to no address");
        for a in addrs {
            match Self::connect_one(a, &config) {
                Ok(c) => return Ok(c),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn connect_one(addr: SocketAddr, config: &ClientConfig) -> Result<Self> {
        let fail = |e: std::io::Error| Error::disconnected(format!("connect to {addr}"), e);
        let stream = TcpStream::connect_timeout(&addr, config.connect_timeout).map_err(fail)?;
        let _ = stream.set_nodelay(true);
        stream
            .set_read_timeout(Some(config.connect_timeout))
            .map_err(fail)?;
        let mut reader = BufReader::new(stream.try_clone().map_err(fail)?);
        let mut writer = BufWriter::new(stream.try_clone().map_err(fail)?);
        let mut buf = Vec::new();
        frame::encode_frame(
            &Request::Hello {
                magic: MAGIC.into(),
                version: PROTOCOL_VERSION,
            },
            &mut buf,
            DEFAULT_CLIENT_MAX_FRAME,
        )?;
        frame::write_encoded(&mut writer, &buf).map_err(fail)?;
        let mut frame_buf = Vec::new();
        frame::read_frame(&mut reader, &mut frame_buf, DEFAULT_CLIENT_MAX_FRAME)
            .map_err(|e| Error::disconnected(format!("handshake with {addr}"), e))?;
        let (max_frame, idle_timeout_ms) = match frame::decode::<Response>(&frame_buf)? {
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
        let inner = Arc::new(Inner {
            writer: Mutex::new((writer, Vec::new())),
            raw: stream,
            max_frame,
            next_id: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            subs: Mutex::new(HashMap::new()),
            ended: Mutex::new(None),
            keepalive,
            started: Instant::now(),
            last_sent_ms: AtomicU64::new(0),
        });
        let reader_inner = inner.clone();
        // The server may push frames larger than its own limit (a batch of
        // large messages is split, but one message with its envelope may
        // come close), so allow twice the limit.
        let limit = max_frame.saturating_mul(2);
        let worker = thread::spawn("client", move || read_loop(&reader_inner, reader, limit))?;
        Ok(Client {
            inner,
            config: config.clone(),
            reader: Mutex::new(Some(worker)),
        })
    }

    /// Publishes `messages` to `topic` in one atomic batch and returns once
    /// the server says they are durable.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] from the server for an unknown topic,
    /// [`Error::InvalidArgument`] for a message over the size limit
    /// (nothing was stored either way); [`Error::Codec`] when the
    /// batch is over the frame limit (split it); [`Error::Disconnected`] when the
    /// connection failed (the messages may or may not be stored).
    pub fn publish(&self, topic: &str, messages: &[Message]) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let wire: Vec<WireMessage> = messages.iter().map(WireMessage::from).collect();
        match self
            .inner
            .call(self.config.request_timeout, |id| Request::Publish {
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
    /// [`Error::Disconnected`] when the connection failed.
    pub fn subscribe(&self, topic: &str, subscriber: &str) -> Result<Subscription> {
        self.subscribe_with(topic, subscriber, self.config.batch)
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
    ) -> Result<Subscription> {
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
    ) -> Result<Subscription> {
        if batch == 0 {
            return Err(Error::invalid("batch", "must be at least 1"));
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        // Registered under the reply's number by the reader thread, before
        // it reads the next frame, so no delivery can come unrouted.
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        lock(&self.inner.pending).insert(id, reply_tx);
        lock(&self.inner.subs).insert(u64::MAX - id, tx);
        let sent = self.inner.send(&Request::Subscribe {
            id,
            topic: topic.into(),
            subscriber: subscriber.into(),
            batch,
            max,
        });
        let reply = sent.and_then(|()| match self.config.request_timeout {
            None => reply_rx.recv().map_err(|_| self.inner.end_error()),
            Some(t) => reply_rx.recv_timeout(t).map_err(|e| match e {
                RecvTimeoutError::Timeout => {
                    Error::timeout(format!("reply to subscribe request {id}"), t)
                }
                RecvTimeoutError::Disconnected => self.inner.end_error(),
            }),
        });
        lock(&self.inner.pending).remove(&id);
        let placeholder = lock(&self.inner.subs).remove(&(u64::MAX - id));
        match reply? {
            Ok(Response::Subscribed { sub, .. }) => {
                Ok(Subscription::new(self.inner.clone(), sub, rx))
            }
            Ok(Response::Error {
                kind,
                name,
                object,
                message,
                ..
            }) => {
                drop(placeholder);
                Err(error_from_wire(&kind, name, object, message))
            }
            Ok(other) => Err(unexpected(&other)),
            Err(e) => Err(e),
        }
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

    /// The counters of every subscriber of `topic`, or of every topic.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown topic; [`Error::Disconnected`].
    pub fn stats(&self, topic: Option<&str>) -> Result<Vec<SubscriberStats>> {
        match self
            .inner
            .call(self.config.request_timeout, |id| Request::Stats {
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
            .inner
            .call(self.config.request_timeout, |id| Request::DeadLetters {
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
        match self.inner.call(self.config.request_timeout, make)? {
            Response::Done { count, .. } => Ok(count),
            other => Err(unexpected(&other)),
        }
    }

    /// Closes the connection and joins the reader thread. Deliveries not
    /// settled yet are redelivered by the server.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if the reader thread did not stop in time.
    pub fn close(&self) -> Result<()> {
        let Some(worker) = lock(&self.reader).take() else {
            return Ok(());
        };
        let _ = self.inner.raw.shutdown(Shutdown::Both);
        worker.join_timeout(Duration::from_secs(10))
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::warn!("client: close on drop: {e}");
        }
    }
}

/// The frame limit used before the server announced its own.
const DEFAULT_CLIENT_MAX_FRAME: usize = 1 << 20;

/// The reader thread: routes replies and deliveries until the connection
/// ends, then fails every waiting call and ends every subscription.
fn read_loop(inner: &Inner, reader: BufReader<TcpStream>, limit: usize) {
    let mut reader = KeepAliveReader { inner, reader };
    let mut buf = Vec::new();
    let why = loop {
        match frame::read_frame(&mut reader, &mut buf, limit) {
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
                let tx = lock(&inner.subs).get(&sub).cloned();
                match tx {
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
                // Move the subscription's channel under its number before
                // any delivery for it is read.
                let mut subs = lock(&inner.subs);
                if let Some(tx) = subs.get(&(u64::MAX - id)).cloned() {
                    subs.insert(sub, tx);
                }
                drop(subs);
                reply(inner, id, Response::Subscribed { id, sub });
            }
            other => {
                let id = match &other {
                    Response::Published { id, .. }
                    | Response::Done { id, .. }
                    | Response::Stats { id, .. }
                    | Response::DeadLetters { id, .. }
                    | Response::Error { id, .. } => *id,
                    _ => 0,
                };
                reply(inner, id, other);
            }
        }
    };
    log::debug!("client: connection ended: {why}");
    *lock(&inner.ended) = Some(why.clone());
    for (_, tx) in lock(&inner.pending).drain() {
        let _ = tx.send(Err(why.clone()));
    }
    lock(&inner.subs).clear();
    let _ = inner.raw.shutdown(Shutdown::Both);
}

/// The reader thread's socket: a read timeout (the keep-alive interval) is
/// a chance to ping, never an error, even inside a frame.
struct KeepAliveReader<'a> {
    inner: &'a Inner,
    reader: BufReader<TcpStream>,
}

impl Read for KeepAliveReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let got = self.reader.read(out);
            // After every read, not only timeouts: a client that receives
            // a steady stream but sends nothing must ping too.
            self.inner.keep_alive();
            match got {
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                other => return other,
            }
        }
    }
}

fn reply(inner: &Inner, id: u64, response: Response) {
    if let Some(tx) = lock(&inner.pending).get(&id) {
        let _ = tx.send(Ok(response));
    }
}
