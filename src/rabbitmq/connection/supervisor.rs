//! The supervisor thread of a [`Connection`](super::Connection): connect
//! (to the first node that answers, in a round over the configured nodes),
//! declare the recorded topology, set the waiter, serve workers until the
//! connection dies, then reconnect: to the next node at once, and with
//! capped exponential backoff and jitter once a whole round failed; all of
//! it logged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use amiquip::ConnectionBlockedNotification;
use crossbeam_channel::{select, Receiver};

use super::config::ConnectionConfig;
use super::shared::{Command, Shared};
use super::tls::TlsConnect;
use crate::error::{Error, Result};
use crate::rabbitmq::amqp::{self, broker, AmqpUrl};
use crate::rabbitmq::topology::Declaration;
use crate::thread::{self, backoff, StopToken};
use crate::waiter::Generation;

pub(super) struct Supervisor {
    pub(super) shared: Arc<Shared>,
    pub(super) config: ConnectionConfig,
    /// The nodes, as given; at least one.
    pub(super) urls: Vec<AmqpUrl>,
    pub(super) heartbeat: u16,
    pub(super) commands: Receiver<Command>,
    pub(super) stop: StopToken,
    pub(super) topology: Vec<Declaration>,
    /// The TLS connector of each node (`None` for `amqp://`).
    pub(super) tls: Vec<Option<TlsConnect>>,
}

/// A connection lost sooner than this after its connect counts as a failed
/// attempt for the backoff.
const SHORT_LIVED: Duration = Duration::from_secs(1);

/// Why `serve` returned.
enum Outcome {
    Stop,
    Lost(String),
}

impl Supervisor {
    pub(super) fn run(mut self) {
        let name = self.config.name().to_string();
        // Rounds in a row in which no node could be reached.
        let mut failures: u32 = 0;
        // The node used last: the next round starts after it, ends with it.
        let mut last: Option<usize> = None;
        while !self.stop.is_stopped() {
            let Some(round) = self.connect_round(last) else {
                break;
            };
            let (mut conn, node) = match round {
                Ok(connected) => connected,
                Err(e @ Error::Refused { .. }) if !self.config.retry_refusals() => {
                    // Retrying cannot help: give up now with the cause,
                    // rather than time every caller out.
                    log::error!("connection {name}: giving up: {e}");
                    self.shared.set_closed();
                    self.shared.waiter.fail(e);
                    break;
                }
                Err(e) => {
                    self.shared.waiter.set_last_error(e.clone());
                    failures = failures.saturating_add(1);
                    let delay = backoff(
                        failures,
                        self.config.backoff_min(),
                        self.config.backoff_max(),
                    );
                    log::warn!(
                        "connection {name}: attempt {failures} failed: {e}; retrying in {delay:?}"
                    );
                    if self.idle(delay) {
                        break;
                    }
                    continue;
                }
            };
            let address = self.urls[node].address();
            if let Some(previous) = last.filter(|&previous| previous != node) {
                log::info!(
                    "connection {name}: failed over from {} to {address}",
                    self.urls[previous].address()
                );
            }
            last = Some(node);
            let connected_at = Instant::now();
            let blocked = match conn.listen_for_connection_blocked() {
                Ok(rx) => rx,
                Err(e) => {
                    log::warn!("connection {name}: lost while setting up: {e}");
                    continue;
                }
            };
            self.shared.set_address(Some(address.clone()));
            let generation = self.shared.waiter.set_connected();
            log::info!("connection {name}: connected to {address} ({generation})");
            self.shared.wake_all(generation);
            let outcome = self.serve(&mut conn, &blocked, generation);
            self.shared.waiter.set_disconnected();
            self.shared.set_address(None);
            self.shared.set_blocked(None);
            match outcome {
                Outcome::Stop => {
                    log::info!("connection {name}: closing ({generation})");
                    if let Err(e) = conn.close() {
                        log::debug!("connection {name}: close: {e}");
                    }
                    break;
                }
                Outcome::Lost(reason) => {
                    log::warn!("connection {name}: lost {address} ({generation}): {reason}");
                    self.shared
                        .waiter
                        .set_last_error(Error::disconnected_reason(
                            format!("connection {name}"),
                            format!("lost {address}: {reason}"),
                        ));
                    drop(conn);
                    // A connection that dies at once (a broker that
                    // accepts and then drops us) is retried with backoff
                    // like a failed attempt, not in a loop.
                    if connected_at.elapsed() >= SHORT_LIVED {
                        failures = 0;
                    } else {
                        failures = failures.saturating_add(1);
                        let delay = backoff(
                            failures,
                            self.config.backoff_min(),
                            self.config.backoff_max(),
                        );
                        log::warn!(
                            "connection {name}: lived only {:?}; retrying in {delay:?}",
                            connected_at.elapsed()
                        );
                        if self.idle(delay) {
                            break;
                        }
                    }
                }
            }
        }
        self.shared.waiter.close();
        log::info!("connection {name}: closed");
    }

    /// One round: tries each node once, in [`order`](Self::order), and
    /// returns the first connection whose topology could be declared, with
    /// the node's index. `Err` holds the last node's error once all failed,
    /// or a refusal at once (the credentials or vhost, which every node of
    /// a cluster shares). `None` when stopped.
    fn connect_round(
        &mut self,
        last: Option<usize>,
    ) -> Option<Result<(amiquip::Connection, usize)>> {
        let name = self.config.name().to_string();
        let order = self.order(last);
        let mut error = None;
        for (tried, node) in order.iter().copied().enumerate() {
            let address = self.urls[node].address();
            log::info!("connection {name}: connecting to {address}");
            let connected = self.attempt(node)?.and_then(|mut conn| {
                self.declare_all(&mut conn)?;
                Ok(conn)
            });
            match connected {
                Ok(conn) => return Some(Ok((conn, node))),
                Err(e @ Error::Refused { .. }) => return Some(Err(e)),
                Err(e) => {
                    if tried + 1 < order.len() {
                        log::warn!(
                            "connection {name}: {address} failed: {e}; trying the next node"
                        );
                        self.shared.waiter.set_last_error(e.clone());
                    }
                    error = Some(e);
                }
            }
        }
        Some(Err(error.unwrap_or_else(|| {
            Error::invalid("urls", "give at least one broker URL")
        })))
    }

    /// The order of the nodes in a round: from the one after `last`
    /// (wrapping), or shuffled; either way `last` comes last.
    fn order(&self, last: Option<usize>) -> Vec<usize> {
        let n = self.urls.len();
        let mut order: Vec<usize> = match last {
            Some(last) => (last + 1..n).chain(0..=last).collect(),
            None => (0..n).collect(),
        };
        if self.config.shuffle() {
            let shuffled = if last.is_some() { n - 1 } else { n };
            // Fisher-Yates over the first `shuffled` places.
            for k in (1..shuffled).rev() {
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    clippy::cast_precision_loss
                )] // k + 1 is a small count; the product is in [0, k + 1)
                let pick = ((thread::random_fraction() * (k + 1) as f64) as usize).min(k);
                order.swap(k, pick);
            }
        }
        order
    }

    /// One connect attempt, on a thread of its own so that a stop does not
    /// wait for it: the broker holds a refused handshake open for about 3 s,
    /// and a connect to a silent host lasts up to the connect timeout.
    /// `None` when stopped first: the attempt is then aborted (its socket
    /// shut down, which fails the connect or handshake at once) and its
    /// thread joined, so that no thread outlives the connection's close.
    fn attempt(&self, node: usize) -> Option<Result<amiquip::Connection>> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let abort = Arc::new(amqp::Abort::default());
        let (url, name) = (self.urls[node].clone(), self.config.name().to_string());
        let (heartbeat, timeout) = (self.heartbeat, self.config.connect_timeout());
        let tls = self.tls[node].clone();
        let worker = {
            let abort = abort.clone();
            // `rmq-connect:`: Linux shows the first 15 bytes, `syncmq-rmq-conn`
            // like the supervisor's, and so do amiquip's timer threads that
            // this thread starts and that live on with the connection.
            thread::spawn(format!("rmq-connect:{name}"), move || {
                let _ = tx.send(amqp::open(
                    &url,
                    &name,
                    heartbeat,
                    timeout,
                    tls.as_ref(),
                    &abort,
                ));
            })
        };
        let worker = match worker {
            Ok(worker) => worker,
            Err(e) => return Some(Err(e)),
        };
        let result = select! {
            recv(rx) -> result => Some(result.unwrap_or_else(|_| {
                Err(Error::disconnected_reason(
                    "connect attempt",
                    "ended without a result",
                ))
            })),
            recv(self.stop.receiver()) -> _ => {
                abort.abort();
                None
            }
        };
        // Ending by now (it sent its result, or its socket is shut down);
        // the bound leaves the rest of the close deadline to us. A
        // connection it made anyway is dropped (closed) with `rx`.
        let deadline = Instant::now() + self.config.close_timeout() / 2;
        if let Err(e) = worker.join_deadline(deadline) {
            log::error!("connection {}: connect attempt: {e}", self.config.name());
        }
        result
    }

    /// Declares the whole recorded topology on a fresh channel.
    fn declare_all(&mut self, conn: &mut amiquip::Connection) -> Result<()> {
        if self.topology.is_empty() {
            return Ok(());
        }
        let open = |conn: &mut amiquip::Connection| {
            conn.open_channel(None)
                .map_err(|e| broker("open a channel to declare the topology", e))
        };
        let mut channel = open(conn)?;
        let mut refused = Vec::new();
        for (i, declaration) in self.topology.iter().enumerate() {
            match declaration.declare_raw(&channel) {
                Ok(()) => {}
                // Refused (say a queue re-created elsewhere with other
                // arguments): retrying would fail every reconnect, so it
                // is dropped from the record, loudly.
                Err(amiquip::Error::ServerClosedChannel { code, message, .. }) => {
                    log::error!(
                        "connection {}: the broker refused {declaration} ({code}: {message}); \
                         no longer declared on reconnect",
                        self.config.name()
                    );
                    refused.push(i);
                    channel = open(conn)?;
                }
                Err(e) => return Err(broker(&format!("declare {declaration}"), e)),
            }
        }
        for i in refused.into_iter().rev() {
            self.topology.remove(i);
        }
        let _ = channel.close();
        Ok(())
    }

    /// Serves workers while the connection lives.
    fn serve(
        &mut self,
        conn: &mut amiquip::Connection,
        blocked: &Receiver<ConnectionBlockedNotification>,
        generation: Generation,
    ) -> Outcome {
        let name = self.config.name().to_string();
        loop {
            select! {
                recv(self.stop.receiver()) -> _ => return Outcome::Stop,
                recv(blocked) -> note => match note {
                    Ok(ConnectionBlockedNotification::Blocked(reason)) => {
                        log::warn!("connection {name}: the broker blocks publishing: {reason}");
                        self.shared.set_blocked(Some(reason));
                    }
                    Ok(ConnectionBlockedNotification::Unblocked) => {
                        log::info!("connection {name}: the broker unblocked publishing");
                        self.shared.set_blocked(None);
                    }
                    Err(_) => return Outcome::Lost("the connection's I/O thread ended".into()),
                },
                recv(self.commands) -> command => match command {
                    Ok(Command::OpenChannel(reply)) => {
                        let result = conn
                            .open_channel(None)
                            .map(|channel| (channel, generation))
                            .map_err(|e| broker("open a channel", e));
                        // On failure the worker waits for the next connect;
                        // if the connection died, `blocked` says so next.
                        let _ = reply.send(result);
                    }
                    Ok(Command::Declare(declarations, reply)) => {
                        let result = conn
                            .open_channel(None)
                            .map_err(|e| broker("open a channel to declare", e))
                            .and_then(|channel| {
                                for d in &declarations {
                                    d.declare(&channel)?;
                                }
                                let _ = channel.close();
                                Ok(())
                            });
                        if result.is_ok() {
                            self.record(declarations);
                        }
                        let _ = reply.send(result);
                    }
                    Ok(Command::Redeclare(reply)) => {
                        log::info!("connection {name}: declaring the topology again");
                        let _ = reply.send(self.declare_all(conn));
                    }
                    // Unreachable while `Shared` holds the sender; harmless.
                    Err(_) => return Outcome::Stop,
                },
            }
        }
    }

    /// Waits `delay` between attempts while answering workers. True when
    /// stopped.
    fn idle(&mut self, delay: Duration) -> bool {
        let deadline = Instant::now() + delay;
        loop {
            select! {
                recv(self.stop.receiver()) -> _ => return true,
                recv(self.commands) -> command => match command {
                    Ok(Command::OpenChannel(reply)) => {
                        let _ = reply.send(Err(Error::disconnected_reason(
                            format!("connection {}", self.config.name()),
                            "down; reconnecting",
                        )));
                    }
                    Ok(Command::Declare(declarations, reply)) => {
                        self.record(declarations);
                        let _ = reply.send(Ok(()));
                    }
                    Ok(Command::Redeclare(reply)) => {
                        let _ = reply.send(Err(Error::disconnected_reason(
                            format!("connection {}", self.config.name()),
                            "down; reconnecting",
                        )));
                    }
                    Err(_) => return true,
                },
                recv(crossbeam_channel::at(deadline)) -> _ => return false,
            }
        }
    }

    fn record(&mut self, declarations: Vec<Declaration>) {
        for d in declarations {
            if !self.topology.contains(&d) {
                self.topology.push(d);
            }
        }
    }
}
