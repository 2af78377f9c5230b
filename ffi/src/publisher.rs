//! `syncmq_publisher`: a RabbitMQ publisher with confirms on a supervised
//! connection of its own, and the calls that open it, publish (returning
//! once the broker confirmed) and close it.

use std::ffi::{c_char, c_int};

use syncmq::rabbitmq::{Connection, Publisher};
use syncmq::Error;

use crate::args;
use crate::config::{self, PublisherJson};
use crate::guard::call;
use crate::message::syncmq_message;
use crate::receipt::syncmq_receipt;

/// A publisher handle (opaque). Thread-safe: any number of threads may
/// publish on one handle at once; their messages share the confirm window.
#[allow(non_camel_case_types)]
pub struct syncmq_publisher {
    publisher: Publisher,
    /// The publisher's own connection, closed after it.
    connection: Connection,
}

/// Opens a publisher on a connection of its own, configured by
/// `config_json`: `{"urls": ["amqp://guest:guest@127.0.0.1:5672/%2f"]}`
/// and optionally `"shuffle"` (false: take the nodes in the order given),
/// `"window"` (256 unconfirmed messages at most), `"buffer"` (10000
/// messages held while not connected), `"mandatory"` (true: a message no
/// queue takes is refused), `"persistent"` (true), `"nack_retries"` (3),
/// `"confirm_timeout_ms"` (30000) and `"close_timeout_ms"` (10000).
/// Unknown fields are refused. A broker that does not answer is not an
/// error: the connection keeps trying and publishes wait for it, up to the
/// confirm timeout.
///
/// Ownership: on success `*out` is a new handle that the caller owns and
/// frees with `syncmq_publisher_close`; on failure `*out` is NULL.
/// `config_json` is only read during the call. Threads: any.
///
/// Errors: `SYNCMQ_E_INVALID_ARGUMENT` for a NULL `out`, a NULL or
/// non-UTF-8 `config_json`, JSON that does not parse, an unknown or
/// missing field or a bad value (the message names it: `urls`, `window`);
/// `SYNCMQ_E_IO` when the OS refuses a thread.
///
/// # Safety
///
/// `config_json` is NULL or NUL-terminated; `out` is NULL or points to
/// writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn syncmq_publisher_open(
    config_json: *const c_char,
    out: *mut *mut syncmq_publisher,
) -> c_int {
    call(|| {
        // SAFETY: the contract above, for each argument.
        let out = unsafe { args::out(out, "out") }?;
        let json = unsafe { args::optional_text(config_json, "config_json") }?
            .ok_or_else(|| Error::invalid("config_json", "is NULL"))?;
        let config: PublisherJson = config::parse(json, "config_json")?;
        // The publisher's settings are checked before a connection starts.
        let settings = config.publisher();
        settings.validate()?;
        let connection = Connection::with_config(config.connection())?;
        let publisher = Publisher::new(&connection, settings)?;
        *out = Box::into_raw(Box::new(syncmq_publisher {
            publisher,
            connection,
        }));
        Ok(())
    })
}

/// Publishes a copy of `m` to `exchange` with `routing_key` and returns
/// once the broker confirmed it: `SYNCMQ_OK` means the broker has it (on
/// disk for a durable queue and a persistent message). `exchange` `""` is
/// the default exchange, which routes to the queue named `routing_key`.
/// The message is only read; its own routing key is not used (the
/// argument is).
///
/// Ownership: the strings and `m` are only read during the call. Threads:
/// any; concurrent publishes on one handle are pipelined.
///
/// Errors: `SYNCMQ_E_INVALID_ARGUMENT` for a NULL `p` or `m`, a NULL or
/// non-UTF-8 `exchange` or `routing_key` (both may be empty), or a message
/// the broker cannot take (a body over the size limit, a name over 255
/// bytes), refused before anything is sent; `SYNCMQ_E_REFUSED` when the
/// broker refused it (404: no such exchange; 312: mandatory and no queue
/// took it); `SYNCMQ_E_BUSY` when the buffer is full or the broker nacked
/// it past the retries; `SYNCMQ_E_TIMEOUT` when no confirm came within
/// the confirm timeout (it may still be published); `SYNCMQ_E_CLOSED`.
///
/// # Safety
///
/// `p` is NULL or a live publisher handle; `exchange` and `routing_key`
/// are NULL or NUL-terminated; `m` is NULL or a live message no other
/// thread changes.
#[no_mangle]
pub unsafe extern "C" fn syncmq_publisher_publish(
    p: *mut syncmq_publisher,
    exchange: *const c_char,
    routing_key: *const c_char,
    m: *const syncmq_message,
) -> c_int {
    call(|| {
        // SAFETY: the contract above, for each argument.
        let p = unsafe { args::handle(p, "p") }?;
        let (exchange, routing_key) = unsafe { route(exchange, routing_key) }?;
        let m = unsafe { args::handle(m, "m") }?;
        p.publisher
            .publish(exchange, routing_key, m.message.clone())
    })
}

/// Hands a copy of `m` to the publisher for `exchange` with `routing_key`
/// and returns at once with a receipt in `*out`: `syncmq_receipt_wait`
/// returns `SYNCMQ_OK` once the broker confirmed it, or the error
/// `syncmq_publisher_publish` would have returned. Many sends in a row are
/// pipelined in the confirm window (one round trip covers many messages),
/// which is how a single thread reaches the broker's rate.
///
/// Ownership: on success `*out` is a new receipt that the caller owns and
/// ends with `syncmq_receipt_wait` or `syncmq_receipt_free` (freeing it
/// without a wait leaves the message to be published and retried, only
/// unreported); on failure `*out` is NULL and nothing was sent. The strings
/// and `m` are only read. Threads: any.
///
/// Errors: at once, those of `syncmq_publisher_publish` that need no answer
/// from the broker (a bad argument, a full buffer, `SYNCMQ_E_CLOSED`); the
/// rest come from the wait.
///
/// # Safety
///
/// As `syncmq_publisher_publish`; `out` is NULL or points to writable
/// storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn syncmq_publisher_send(
    p: *mut syncmq_publisher,
    exchange: *const c_char,
    routing_key: *const c_char,
    m: *const syncmq_message,
    out: *mut *mut syncmq_receipt,
) -> c_int {
    call(|| {
        // SAFETY: the contract above, for each argument.
        let out = unsafe { args::out(out, "out") }?;
        let p = unsafe { args::handle(p, "p") }?;
        let (exchange, routing_key) = unsafe { route(exchange, routing_key) }?;
        let m = unsafe { args::handle(m, "m") }?;
        let receipt = p.publisher.send(exchange, routing_key, m.message.clone())?;
        *out = Box::into_raw(Box::new(syncmq_receipt { receipt }));
        Ok(())
    })
}

/// The `exchange` and `routing_key` arguments of a publish: either may be
/// empty, neither NULL.
///
/// # Safety
///
/// Each is NULL or NUL-terminated.
unsafe fn route<'a>(
    exchange: *const c_char,
    routing_key: *const c_char,
) -> syncmq::Result<(&'a str, &'a str)> {
    // SAFETY: the contract above.
    let exchange = unsafe { args::optional_text(exchange, "exchange") }?
        .ok_or_else(|| Error::invalid("exchange", "is NULL (\"\" is the default exchange)"))?;
    let routing_key = unsafe { args::optional_text(routing_key, "routing_key") }?
        .ok_or_else(|| Error::invalid("routing_key", "is NULL"))?;
    Ok((exchange, routing_key))
}

/// Closes the publisher (waiting, up to its close timeout, for the
/// confirms of what it holds), then its connection, and frees the handle
/// whatever the result. Closing NULL does nothing and returns `SYNCMQ_OK`.
///
/// Ownership: `p` is freed; using it afterwards, or closing it twice, is
/// undefined behaviour, as with `free()`. Threads: any, once no other
/// thread uses `p`.
///
/// Errors: `SYNCMQ_E_TIMEOUT` when messages were still unconfirmed at the
/// deadline (their publishers got `SYNCMQ_E_CLOSED`); `SYNCMQ_E_REFUSED`
/// naming how many were never published when the connection gave up on a
/// refusal; the connection's close errors. The handle is freed anyway.
///
/// # Safety
///
/// `p` is NULL or a live publisher handle that no other thread uses.
#[no_mangle]
pub unsafe extern "C" fn syncmq_publisher_close(p: *mut syncmq_publisher) -> c_int {
    call(|| {
        if p.is_null() {
            return Ok(());
        }
        // SAFETY: a live handle from Box::into_raw, given back once.
        let p = unsafe { Box::from_raw(p) };
        let published = p.publisher.close();
        published.and(p.connection.close())
    })
}
