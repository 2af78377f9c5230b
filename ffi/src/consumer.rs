//! `syncmq_consumer`: a RabbitMQ consumer the host polls. The crate's
//! `Consumer` runs a handler on threads of ours, and a C host must never be
//! called on them; so here the handler hands each delivery to the host
//! through a channel and waits for the host's verdict (ack or nack) before
//! it returns, and the consumer acks, retries or dead-letters the message
//! by that verdict, exactly as for a Rust handler. The host takes
//! deliveries with `syncmq_consumer_next` (blocking, with a limit, or not
//! at all) or waits on `syncmq_consumer_fd` in its own event loop.

use std::ffi::{c_char, c_int};
use std::time::{Duration, Instant};

use serde::Deserialize;
use syncmq::crossbeam_channel::{self, select, Receiver, Sender};
use syncmq::rabbitmq::{Connection, ConnectionConfig, Consumer, ConsumerOptions, QueueType};
use syncmq::{Acker, Delivery, Error, Message, Result};

use crate::args;
use crate::channel::Ends;
use crate::config;
use crate::delivery::syncmq_delivery;
use crate::guard::{call, guarded};

/// A RabbitMQ consumer (opaque) with a connection of its own.
/// Thread-safe: several threads may take deliveries from one handle.
#[allow(non_camel_case_types)]
pub struct syncmq_consumer {
    /// The deliveries the handler threads hand over, as a channel output.
    ends: Ends,
    /// Dropped first at close: wakes the handler threads waiting for the
    /// host (their messages are then retried, not lost).
    closing: Option<Sender<()>>,
    consumer: Consumer,
    connection: Connection,
}

/// `{"urls": ["amqp://..."], "exchange": "orders", "routing_key": "order.*"}`
/// and, optionally, what maps to `ConsumerOptions`: `shuffle`, `queue`,
/// `queue_type` (`"classic"`, `"quorum"`, `"stream"`), `prefetch`,
/// `concurrency`, `max_attempts`, `dead_letters`, `close_timeout_ms`, and
/// `connect_timeout_ms`: how long the open waits for the broker (absent:
/// it does not wait).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsumerJson {
    urls: Vec<String>,
    #[serde(default)]
    shuffle: bool,
    exchange: String,
    routing_key: String,
    queue: Option<String>,
    queue_type: Option<String>,
    prefetch: Option<u16>,
    concurrency: Option<usize>,
    max_attempts: Option<u32>,
    dead_letters: Option<bool>,
    close_timeout_ms: Option<u64>,
    connect_timeout_ms: Option<u64>,
}

impl ConsumerJson {
    fn connection(&self) -> ConnectionConfig {
        ConnectionConfig::cluster(self.urls.iter().cloned()).with_shuffle(self.shuffle)
    }

    /// The consumer's options, the defaults where a field is absent.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` naming `queue_type` for an unknown type.
    fn options(&self) -> Result<ConsumerOptions> {
        let mut options = ConsumerOptions::new(self.exchange.clone(), self.routing_key.clone());
        if let Some(queue) = &self.queue {
            options = options.with_queue(queue.clone());
        }
        if let Some(kind) = &self.queue_type {
            let queue_type = match kind.as_str() {
                "classic" => QueueType::Classic,
                "quorum" => QueueType::Quorum,
                "stream" => QueueType::Stream,
                other => {
                    return Err(Error::invalid(
                        "queue_type",
                        format!("is `{other}`: one of \"classic\", \"quorum\", \"stream\""),
                    ))
                }
            };
            options = options.with_queue_type(queue_type);
        }
        if let Some(prefetch) = self.prefetch {
            options = options.with_prefetch(prefetch);
        }
        if let Some(concurrency) = self.concurrency {
            options = options.with_concurrency(concurrency);
        }
        if let Some(attempts) = self.max_attempts {
            options = options.with_max_attempts(attempts);
        }
        if let Some(on) = self.dead_letters {
            options = options.with_dead_letters(on);
        }
        if let Some(ms) = self.close_timeout_ms {
            options = options.with_close_timeout(Duration::from_millis(ms));
        }
        Ok(options)
    }
}

/// The host's verdict on one delivery, sent back to the handler thread
/// that waits for it: `Ok` acks, `Err` is a failed handling (the
/// consumer's retry policy decides what follows).
struct Verdict(Sender<std::result::Result<(), String>>);

impl Acker for Verdict {
    fn ack(self: Box<Self>, _multiple: bool) -> Result<()> {
        // The handler is gone only when the consumer closed; the message
        // then comes again (it was never acked).
        let _ = self.0.send(Ok(()));
        Ok(())
    }

    fn nack(self: Box<Self>, requeue: bool) -> Result<()> {
        let why = if requeue {
            "nacked by the host"
        } else {
            "nacked by the host without requeue"
        };
        let _ = self.0.send(Err(why.to_string()));
        Ok(())
    }
}

/// The handler the crate's consumer runs: hands `message` to the host and
/// waits for its verdict, or for the close.
fn hand_over(
    message: &Message,
    redelivered: bool,
    output: &Sender<Delivery>,
    closing: &Receiver<()>,
) -> std::result::Result<(), String> {
    let (verdict, answer) = crossbeam_channel::bounded(1);
    let delivery =
        Delivery::new(message.clone(), Box::new(Verdict(verdict))).with_redelivered(redelivered);
    let closed = || "the consumer closed before the host settled the delivery".to_string();
    select! {
        send(output, delivery) -> sent => sent.map_err(|_| closed())?,
        recv(closing) -> _ => return Err(closed()),
    }
    select! {
        recv(answer) -> verdict => verdict.unwrap_or_else(|_| Err("freed unsettled by the host".into())),
        recv(closing) -> _ => Err(closed()),
    }
}

/// Connects to the brokers of `config_json`, declares the consumer's
/// exchange, queue and binding, and starts consuming. Deliveries wait for
/// the host in `syncmq_consumer_next`; each one is acked when the host
/// acks it, and a nack (or a free) is a failed handling: the message is
/// tried again up to `max_attempts` (3 by default), then dead-lettered
/// (`dead_letters`, on by default) or dropped with an ERROR log. At most
/// `concurrency` (default 1) deliveries are with the host at once, out of
/// `prefetch` the broker sends ahead.
///
/// With `connect_timeout_ms`, the open waits that long for the broker, so
/// that once it returns `SYNCMQ_OK` the queue and its binding exist (a
/// publish right after it is routed), and fails with `SYNCMQ_E_TIMEOUT`
/// naming the last connection error otherwise. Without it, a broker that
/// does not answer yet is not an error: the connection keeps trying, and
/// declaring and consuming start once it is up.
///
/// Ownership: on success `*out` is a new handle the caller owns and frees
/// with `syncmq_consumer_close`; on failure `*out` is NULL. Threads: any.
///
/// Errors: `SYNCMQ_E_INVALID_ARGUMENT` for a NULL `config_json` or `out`,
/// JSON that does not parse, an unknown or missing field (named), a bad
/// value (named: `urls`, `queue_type`, `prefetch`); `SYNCMQ_E_TIMEOUT`
/// when `connect_timeout_ms` ran out; `SYNCMQ_E_REFUSED` when the broker
/// refused a declaration or the credentials; `SYNCMQ_E_IO`.
///
/// # Safety
///
/// `config_json` is NULL or NUL-terminated; `out` is NULL or points to
/// writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn syncmq_consumer_open(
    config_json: *const c_char,
    out: *mut *mut syncmq_consumer,
) -> c_int {
    call(|| {
        // SAFETY: the contract above, for each argument.
        let out = unsafe { args::out(out, "out") }?;
        let json = unsafe { args::optional_text(config_json, "config_json") }?
            .ok_or_else(|| Error::invalid("config_json", "is NULL"))?;
        let config: ConsumerJson = config::parse(json, "config_json")?;
        let options = config.options()?;
        options.validate()?;
        let concurrency = options.concurrency();
        let connection = Connection::with_config(config.connection())?;
        if let Some(ms) = config.connect_timeout_ms {
            if let Err(e) = connection
                .waiter()
                .wait_connected(Duration::from_millis(ms))
            {
                let _ = connection.close();
                return Err(e);
            }
        }
        let (output, deliveries) = crossbeam_channel::bounded(concurrency);
        let (closing, closed) = crossbeam_channel::bounded::<()>(0);
        let consumer = Consumer::start_with_info(&connection, options, move |message, info| {
            // A retried message was handled before: a redelivery to the
            // host (`syncmq_delivery_deliveries` says 2), though AMQP only
            // flags the broker's own redeliveries.
            let again = info.is_redelivered() || info.attempt() > 1;
            hand_over(message, again, &output, &closed)
        });
        let consumer = match consumer {
            Ok(consumer) => consumer,
            Err(e) => {
                let _ = connection.close();
                return Err(e);
            }
        };
        let ends = Ends::output_only(consumer.queue(), deliveries);
        *out = Box::into_raw(Box::new(syncmq_consumer {
            ends,
            closing: Some(closing),
            consumer,
            connection,
        }));
        Ok(())
    })
}

/// The next delivery: waits up to `timeout_ms` milliseconds (0: not at all,
/// negative: without limit). Settle it with `syncmq_delivery_ack` or
/// `syncmq_delivery_nack` as any other (until then, its handler thread
/// waits, and no ack reaches the broker).
///
/// Ownership: on success `*out` is a delivery the caller owns. Threads:
/// any; several threads may take deliveries from one consumer.
///
/// Errors: `SYNCMQ_E_TIMEOUT` when none came in time;
/// `SYNCMQ_E_INVALID_ARGUMENT` for a NULL `c` or `out`.
///
/// # Safety
///
/// `c` is NULL or a live consumer handle; `out` is NULL or points to
/// writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn syncmq_consumer_next(
    c: *mut syncmq_consumer,
    timeout_ms: i64,
    out: *mut *mut syncmq_delivery,
) -> c_int {
    call(|| {
        // SAFETY: the contract above, for each argument.
        let out = unsafe { args::out(out, "out") }?;
        let c = unsafe { args::handle(c, "c") }?;
        let timeout = args::timeout(timeout_ms);
        let delivery = c.ends.receive(timeout)?;
        *out = Box::into_raw(Box::new(syncmq_delivery::from_delivery(delivery)));
        Ok(())
    })
}

/// A file descriptor that is readable while a delivery may be ready, for
/// the host's own `poll`/`epoll` loop; then call `syncmq_consumer_next(c,
/// 0, &d)` until it returns `SYNCMQ_E_TIMEOUT`. The first call starts one
/// thread of ours that holds one delivery ahead (it never calls the
/// host). The fd belongs to the consumer; returns a negative code on error.
///
/// # Safety
///
/// `c` is NULL or a live consumer handle.
#[no_mangle]
pub unsafe extern "C" fn syncmq_consumer_fd(c: *mut syncmq_consumer) -> c_int {
    guarded(
        |code| code,
        || {
            // SAFETY: the contract above.
            let c = unsafe { args::handle(c, "c") }?;
            c.ends.fd()
        },
    )
}

/// Stops consuming and frees the handle, whatever the result: deliveries
/// the host still holds are given back (retried, counting an attempt,
/// never lost); those already settled are acked first. Then the
/// connection closes. Closing NULL does nothing and returns `SYNCMQ_OK`.
///
/// Ownership: `c` is freed; deliveries taken from it stay valid but
/// settling them no longer reaches the broker. Using `c` afterwards, or
/// closing it twice, is undefined behaviour, as with `free()`. Threads:
/// any, once no other thread uses `c`.
///
/// Errors: `SYNCMQ_E_TIMEOUT` when a thread of the consumer did not stop
/// within its close timeout. The handle is freed anyway.
///
/// # Safety
///
/// `c` is NULL or a live consumer handle that no other thread uses.
#[no_mangle]
pub unsafe extern "C" fn syncmq_consumer_close(c: *mut syncmq_consumer) -> c_int {
    call(|| {
        if c.is_null() {
            return Ok(());
        }
        // SAFETY: a live handle from Box::into_raw, given back once.
        let mut c = unsafe { Box::from_raw(c) };
        let deadline = Instant::now() + c.consumer.options().close_timeout();
        let watched = c.ends.stop(deadline);
        drop(c.closing.take());
        let consumed = c.consumer.close();
        let connected = c.connection.close();
        watched.and(consumed).and(connected)
    })
}
