//! One client connection on the server ([`serve`]): the handshake, then a
//! loop that reads request frames and answers them, on the connection's
//! own thread.
//!
//! # Guarantees
//!
//! - A publish is answered only after [`Queue::publish`] returned, so a
//!   `published` reply means durable (as the queue is configured).
//! - A frame over the limit, a frame that does not decode, a wrong first
//!   frame or a request that breaks the protocol gets an error frame with
//!   id 0, then the connection is closed. Nothing the peer sent before that
//!   is undone, and other connections are not affected.
//! - When the connection ends, for whatever reason, its subscriptions stop
//!   and their unacknowledged deliveries go back to the queue.
//! - Acks without a reply (id 0) that arrive together (frames already
//!   read from the socket in one go) are checked one frame at a time, as
//!   any ack, and applied to the engine in one call: one store write and
//!   one wake-up of the pusher for a burst of acks instead of one each.
//!   They are applied before the connection waits for more bytes and
//!   before any other request is handled, so a later request (or the end
//!   of the connection) sees them settled.
//! - A server with a token refuses a hello without it, or with another,
//!   with one fatal `unauthorized` error before it reads anything more, so
//!   nothing a refused client sent is applied; the warning it logs names
//!   the peer, never a token.
//! - Over TLS the handshake comes first, within the handshake timeout; the
//!   connection's bridge thread is joined when the connection ends.
//! - A peer silent for the handshake timeout (before hello) or the idle
//!   timeout (after it) gets a fatal `idle` error and is closed, so a
//!   connection slot and its buffers are never held by nobody.
//! - At most `max_subscriptions` subscriptions at once: one more is an
//!   error reply to that subscribe, never another thread.
//! - A panic while answering a request (a bug, or a library that panics on
//!   some input) is an [`Error::Panicked`] reply to that request; the
//!   connection goes on. A panic anywhere else ends the connection as
//!   cleanly as any other error: the socket is closed, never left open
//!   with nobody reading it.

use std::collections::HashMap;
use std::io::BufReader;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::feed::{Feed, FeedSpec};
use super::frame::{self, FrameError, FrameWriter, MAX_FRAME_LEN};
use super::protocol::{
    Request, Response, WireDeadLetter, WireEntry, WirePeeked, WireStats, MAGIC, MAX_PEEK,
    PROTOCOL_VERSION,
};
use super::server_config::QueueServerConfig;
use super::server_stats::ServerCounters;
use super::socket::Socket;
use super::tls::Acceptor;
use crate::error::{Error, Result};
use crate::message::Message;
use crate::queue::{EntryId, Queue};
use crate::thread;

/// Serves one connection until the peer leaves, breaks the protocol, or
/// the server closes (which shuts the socket down under the reader).
/// `peer` names the other end for the logs; with `tls` the TLS handshake
/// comes first.
pub(super) fn serve(
    queue: &Queue,
    stream: Socket,
    peer: &str,
    config: &QueueServerConfig,
    tls: Option<&Acceptor>,
    number: u64,
    counters: &ServerCounters,
) {
    log::debug!("server: connection {number} from {peer}");
    let (stream, bridge) = match tls {
        None => (stream, None),
        Some(acceptor) => {
            match acceptor.accept(stream, config.handshake_timeout(), config.write_timeout()) {
                Ok((plain, bridge)) => (plain, Some(bridge)),
                Err(e) => {
                    log::warn!("server: connection {number} from {peer}: {e}");
                    return;
                }
            }
        }
    };
    let _ = stream.set_nodelay();
    let _ = stream.set_write_timeout(Some(config.write_timeout()));
    // The server's own frames are not held to the limit it sets clients;
    // its deliveries are split to stay under it (see `FeedSpec`).
    let writer = match FrameWriter::new(&stream, MAX_FRAME_LEN, "write to a client connection") {
        Ok(w) => Arc::new(w.with_counter(counters.frames_out.clone())),
        Err(e) => {
            log::warn!("server: connection {number}: {e}");
            let _ = stream.shutdown(std::net::Shutdown::Both);
            join_bridge(bridge, config, number);
            return;
        }
    };
    let mut conn = Connection {
        queue,
        writer,
        feeds: HashMap::new(),
        acked: HashMap::new(),
        next_sub: 1,
        config,
        peer,
        counters,
    };
    let reader = BufReader::new(stream);
    // Even a panic outside a request ends the connection properly: its
    // subscriptions stop and the client sees the socket close.
    let outcome =
        std::panic::catch_unwind(AssertUnwindSafe(|| conn.run(reader))).unwrap_or_else(|payload| {
            Err(thread::panicked(
                format!("server connection {number}"),
                payload,
            ))
        });
    match &outcome {
        Ok(()) => log::debug!("server: connection {number} from {peer} closed"),
        Err(e) => log::info!("server: connection {number} from {peer} closed: {e}"),
    }
    conn.end();
    join_bridge(bridge, config, number);
}

/// Joins a TLS connection's bridge thread, which ends once the plain end
/// was shut down (after it sent what was written before).
fn join_bridge(bridge: Option<thread::Worker<()>>, config: &QueueServerConfig, number: u64) {
    if let Some(bridge) = bridge {
        if let Err(e) = bridge.join_timeout(config.close_timeout()) {
            log::warn!("server: connection {number}: {e}");
        }
    }
}

struct Connection<'a> {
    queue: &'a Queue,
    writer: Arc<FrameWriter>,
    /// The connection's subscriptions, by number.
    feeds: HashMap<u64, Feed>,
    /// Acks read and checked, not yet applied to the engine, by
    /// subscription (see the module docs).
    acked: HashMap<u64, Vec<EntryId>>,
    next_sub: u64,
    config: &'a QueueServerConfig,
    /// Who is on the other end, for the logs.
    peer: &'a str,
    counters: &'a ServerCounters,
}

impl Connection<'_> {
    fn run(&mut self, mut reader: BufReader<Socket>) -> Result<()> {
        let config = self.config;
        let mut buf = Vec::new();
        // The handshake, with a deadline so a silent peer cannot hold a
        // connection slot forever.
        let _ = reader
            .get_ref()
            .set_read_timeout(Some(config.handshake_timeout()));
        let hello_wait = Wait::Hello(config.handshake_timeout());
        match self.read(&mut reader, &mut buf, config.max_frame(), hello_wait)? {
            None => return Ok(()),
            Some(Request::Hello {
                magic,
                version,
                token,
            }) => {
                if magic != MAGIC {
                    return self.fatal("protocol", format!("bad magic {magic:?}"));
                }
                if version != PROTOCOL_VERSION {
                    return self.fatal(
                        "protocol",
                        format!(
                            "protocol version {version} is not supported; this server speaks {PROTOCOL_VERSION}"
                        ),
                    );
                }
                self.authorize(token.as_deref())?;
                self.writer.send(&Response::Welcome {
                    version: PROTOCOL_VERSION,
                    max_frame: config.max_frame() as u64,
                    idle_timeout_ms: config.idle_timeout().map(crate::millis::to_ms),
                })?;
            }
            Some(_) => return self.fatal("protocol", "the first frame must be hello"),
        }
        // From here on the idle timeout: a peer that sends nothing, not
        // even a ping, is closed rather than holding its slot for ever.
        let _ = reader.get_ref().set_read_timeout(config.idle_timeout());
        let wait = Wait::Request(config.idle_timeout().unwrap_or(Duration::MAX));
        loop {
            // The acks of a burst are applied once the burst is read.
            if !frame::has_frame(reader.buffer()) {
                self.settle_acks();
            }
            let Some(request) = self.read(&mut reader, &mut buf, config.max_frame(), wait)? else {
                return Ok(());
            };
            let id = request.id();
            // A panic in one request (a bug, or a library that panics on
            // some input) fails that request, not the connection.
            match std::panic::catch_unwind(AssertUnwindSafe(|| self.handle(request))) {
                Ok(handled) => handled?,
                Err(payload) => {
                    let e = thread::panicked(format!("server request {id}"), payload);
                    log::error!("server: {e}");
                    if id != 0 {
                        self.writer.send(&Response::error(id, &e))?;
                    }
                }
            }
        }
    }

    /// Lets the hello's `token` in, or refuses it with one `unauthorized`
    /// frame: a server without a token takes any.
    fn authorize(&self, token: Option<&str>) -> Result<()> {
        if !self.config.has_token() {
            return Ok(());
        }
        let why = match token {
            Some(t) if self.config.token_matches(t) => return Ok(()),
            Some(_) => "the token is wrong",
            None => "this server requires a token and the hello has none",
        };
        // The peer's address and what was wrong, never the token.
        log::warn!("server: refusing {}: {why}", self.peer);
        let _ = self.writer.send(&Response::fatal("unauthorized", why));
        Err(Error::refused(super::protocol::UNAUTHORIZED, why))
    }

    /// Reads one request; `None` when the peer closed between frames. A
    /// frame that is too large or does not decode, or a peer silent for
    /// the read timeout, is answered with a fatal error and ends the
    /// connection.
    fn read(
        &self,
        reader: &mut BufReader<Socket>,
        buf: &mut Vec<u8>,
        max: usize,
        wait: Wait,
    ) -> Result<Option<Request>> {
        match frame::read_frame(reader, buf, max) {
            Ok(()) => {
                self.counters.frames_in.add(1);
            }
            Err(FrameError::Eof) => return Ok(None),
            Err(FrameError::Idle) => {
                let message = match wait {
                    Wait::Hello(t) => format!("no hello within {t:?}"),
                    Wait::Request(t) => format!(
                        "no frame for {t:?} (the idle timeout); send ping frames to keep a quiet connection open"
                    ),
                };
                return self.fatal("idle", message).map(|()| None);
            }
            Err(e @ FrameError::TooLarge { .. }) => {
                return self.fatal("frame_too_large", e.to_string()).map(|()| None)
            }
            Err(FrameError::Io(e)) => {
                return Err(Error::disconnected("read from a client connection", e))
            }
        }
        match frame::decode::<Request>(buf) {
            Ok(r) => Ok(Some(r)),
            Err(e) => self.fatal("protocol", e.to_string()).map(|()| None),
        }
    }

    /// Sends a connection-level error; the caller then ends the connection.
    fn fatal(&self, kind: &str, message: impl Into<String>) -> Result<()> {
        let message = message.into();
        log::info!("server: closing a connection: {kind}: {message}");
        let _ = self.writer.send(&Response::fatal(kind, message.clone()));
        Err(Error::codec_reason(
            format!("serve a connection ({kind})"),
            message,
        ))
    }

    /// Answers one request. An `Err` ends the connection.
    fn handle(&mut self, request: Request) -> Result<()> {
        let request = match request {
            Request::Ack {
                id: 0,
                sub,
                entries,
                multiple: false,
            } => {
                self.hold_ack(sub, &entries);
                return Ok(());
            }
            other => other,
        };
        // Whatever comes after an ack sees it applied.
        self.settle_acks();
        let (id, outcome) = match request {
            Request::Hello { .. } => return self.fatal("protocol", "hello sent twice"),
            // Reading it was the point: it reset the idle timeout.
            Request::Ping { id } => (id, Ok(Response::Done { id, count: 0 })),
            Request::Publish {
                id,
                topic,
                messages,
            } => {
                let count = messages.len() as u64;
                let messages: Vec<Message> = messages.into_iter().map(Message::from).collect();
                let r = self.queue.publish(&topic, &messages);
                (id, r.map(|()| Response::Published { id, count }))
            }
            Request::Subscribe {
                id,
                topic,
                subscriber,
                batch,
                max,
            } => match self.subscribe(id, &topic, &subscriber, batch, max) {
                // Replied inside, before the first delivery could go out.
                Ok(()) => return Ok(()),
                Err(e) => (id, Err(e)),
            },
            Request::Unsubscribe { id, sub } => {
                let r = match self.feeds.remove(&sub) {
                    Some(feed) => feed
                        .close(Instant::now() + self.config.close_timeout())
                        .map(|()| Response::Done { id, count: 1 }),
                    None => Err(unknown_sub(sub)),
                };
                (id, r)
            }
            Request::Ack {
                id,
                sub,
                entries,
                multiple,
            } => {
                let r = self.feed(sub).and_then(|feed| feed.ack(&entries, multiple));
                (id, r.map(|count| Response::Done { id, count }))
            }
            Request::Nack {
                id,
                sub,
                entries,
                requeue,
            } => {
                let r = self.feed(sub).and_then(|feed| feed.nack(&entries, requeue));
                (id, r.map(|count| Response::Done { id, count }))
            }
            Request::Reset {
                id,
                topic,
                subscriber,
            } => {
                let r = self.queue.subscribe(&topic, &subscriber).and_then(|s| {
                    let n = s.reset()?;
                    for feed in self.feeds.values() {
                        if feed.names() == (topic.as_str(), subscriber.as_str()) {
                            feed.forget_in_flight();
                        }
                    }
                    Ok(n)
                });
                (
                    id,
                    r.map(|n| Response::Done {
                        id,
                        count: n as u64,
                    }),
                )
            }
            Request::Peek {
                id,
                topic,
                subscriber,
                limit,
            } => (id, self.peek(id, &topic, &subscriber, limit)),
            Request::Stats { id, topic } => (id, self.stats(id, topic)),
            Request::DeadLetters {
                id,
                topic,
                subscriber,
                limit,
            } => {
                let r = self
                    .queue
                    .subscribe(&topic, &subscriber)
                    .and_then(|s| s.dead_letters(limit as usize))
                    .map(|letters| Response::DeadLetters {
                        id,
                        letters: letters.iter().map(WireDeadLetter::from).collect(),
                    });
                (id, r)
            }
            Request::ReplayDeadLetters {
                id,
                topic,
                subscriber,
            } => {
                let r = self
                    .queue
                    .subscribe(&topic, &subscriber)
                    .and_then(|s| s.replay_dead_letters())
                    .map(|n| Response::Done {
                        id,
                        count: n as u64,
                    });
                (id, r)
            }
        };
        let response = match outcome {
            Ok(r) => r,
            Err(e) => {
                log::debug!("server: request {id} failed: {e}");
                Response::error(id, &e)
            }
        };
        // Id 0 asks for no reply; errors are logged above.
        if id != 0 {
            self.writer.send(&response)?;
        }
        Ok(())
    }

    fn subscribe(
        &mut self,
        id: u64,
        topic: &str,
        subscriber: &str,
        batch: u32,
        max: Option<u64>,
    ) -> Result<()> {
        if batch == 0 {
            return Err(Error::invalid("batch", "must be at least 1"));
        }
        // Each subscription is a thread: the cap keeps one connection from
        // taking the server's threads.
        if self.feeds.len() >= self.config.max_subscriptions() {
            return Err(Error::invalid(
                "max_subscriptions",
                format!(
                    "this connection has {} subscriptions, the most the server allows; unsubscribe one or open another connection",
                    self.feeds.len()
                ),
            ));
        }
        let sub = self.queue.subscribe(topic, subscriber)?;
        let number = self.next_sub;
        self.next_sub += 1;
        let spec = FeedSpec {
            number,
            window: batch as usize,
            max,
            frame_budget: self.config.max_frame() / 2,
        };
        let writer = self.writer.clone();
        // The writer stays locked from the start of the pusher until the
        // reply is written, so the reply goes out before any delivery.
        let feed = self
            .writer
            .send_after(&Response::Subscribed { id, sub: number }, || {
                Feed::start(sub, spec, writer)
            })?;
        self.feeds.insert(number, feed);
        Ok(())
    }

    /// Checks an ack without a reply and keeps its deliveries for
    /// [`settle_acks`](Self::settle_acks); a wrong one is refused alone,
    /// as it would be on its own (logged: there is no reply to send).
    fn hold_ack(&mut self, sub: u64, entries: &[WireEntry]) {
        match self.feed(sub).and_then(|feed| feed.take(entries, false)) {
            Ok(ids) => self.acked.entry(sub).or_default().extend(ids),
            Err(e) => log::debug!("server: an ack without reply failed: {e}"),
        }
    }

    /// Applies the acks [`hold_ack`](Self::hold_ack) kept, one engine call
    /// per subscription.
    fn settle_acks(&mut self) {
        for (sub, ids) in self.acked.drain() {
            let Some(feed) = self.feeds.get(&sub) else {
                continue;
            };
            if let Err(e) = feed.ack_taken(&ids) {
                log::debug!("server: acks without reply of subscription {sub} failed: {e}");
            }
        }
    }

    /// Subscription `sub` of this connection.
    fn feed(&self, sub: u64) -> Result<&Feed> {
        self.feeds.get(&sub).ok_or_else(|| unknown_sub(sub))
    }

    /// The answer to a peek: up to `limit` of what `subscriber`'s next
    /// receives would take, taking none.
    fn peek(&self, id: u64, topic: &str, subscriber: &str, limit: u32) -> Result<Response> {
        if limit == 0 || limit > MAX_PEEK {
            return Err(Error::invalid(
                "limit",
                format!("a peek returns 1 to {MAX_PEEK} messages, not {limit}"),
            ));
        }
        let peeked = self
            .queue
            .subscribe(topic, subscriber)?
            .peek_batch(limit as usize)?;
        Ok(Response::Peeked {
            id,
            messages: peeked.iter().map(WirePeeked::from).collect(),
        })
    }

    fn stats(&self, id: u64, topic: Option<String>) -> Result<Response> {
        let topics = match topic {
            Some(t) => vec![t],
            None => self
                .queue
                .topics()
                .into_iter()
                .map(|t| t.name().to_string())
                .collect(),
        };
        let mut stats = Vec::new();
        for t in topics {
            stats.extend(self.queue.stats(&t)?.into_iter().map(WireStats::from));
        }
        Ok(Response::Stats { id, stats })
    }

    /// Stops every subscription (their deliveries go back) and closes the
    /// socket.
    fn end(&mut self) {
        self.settle_acks();
        let deadline = Instant::now() + self.config.close_timeout();
        for (number, feed) in self.feeds.drain() {
            if let Err(e) = feed.close(deadline) {
                log::warn!("server: ending subscription {number}: {e}");
            }
        }
        self.writer.disconnect();
    }
}

/// What a read waits for, and the timeout it waits with, for the `idle`
/// error's message.
#[derive(Clone, Copy)]
enum Wait {
    Hello(Duration),
    Request(Duration),
}

fn unknown_sub(sub: u64) -> Error {
    Error::invalid("sub", format!("no subscription {sub} on this connection"))
}
