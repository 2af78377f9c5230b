//! `syncmq_client`: a client of a syncmq queue server (`syncmq serve`),
//! over TCP, and the calls that connect it, publish through it, subscribe
//! through it and close it. The subscriptions are in `remote_subscriber.rs`.

use std::ffi::{c_char, c_int};
use std::sync::Mutex;

use syncmq::server::QueueClient;

use crate::args;
use crate::guard::call;
use crate::message::{self, syncmq_message};
use crate::remote_subscriber::syncmq_remote_subscriber;

/// A queue server client (opaque): one connection. Thread-safe: any number
/// of threads may publish and subscribe on one handle at once (requests
/// are answered in order on the one connection).
#[allow(non_camel_case_types)]
pub struct syncmq_client {
    client: QueueClient,
}

/// Connects to the queue server at `addr` (`"host:port"`), with the
/// default timeouts (5 s to connect).
///
/// Ownership: on success `*out` is a new handle that the caller owns and
/// frees with `syncmq_client_close`; on failure `*out` is NULL. `addr` is
/// only read during the call. Threads: any.
///
/// Errors: `SYNCMQ_E_INVALID_ARGUMENT` for a NULL `out`, or a NULL, empty,
/// non-UTF-8 `addr` or one that resolves to no address;
/// `SYNCMQ_E_DISCONNECTED` when nothing answers or the handshake fails
/// (the message names the address); `SYNCMQ_E_CODEC` for a server of
/// another protocol version; `SYNCMQ_E_BUSY` when the server has all the
/// connections it allows.
///
/// # Safety
///
/// `addr` is NULL or NUL-terminated; `out` is NULL or points to writable
/// storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn syncmq_client_connect(
    addr: *const c_char,
    out: *mut *mut syncmq_client,
) -> c_int {
    call(|| {
        // SAFETY: the contract above, for each argument.
        let out = unsafe { args::out(out, "out") }?;
        let addr = unsafe { args::text(addr, "addr") }?;
        let client = QueueClient::connect(addr)?;
        *out = Box::into_raw(Box::new(syncmq_client { client }));
        Ok(())
    })
}

/// Publishes `count` messages to `topic` as one atomic batch and returns
/// once the server says they are durable. The messages are only read (free
/// them as usual). A `count` of 0 publishes nothing and returns
/// `SYNCMQ_OK`.
///
/// Ownership: `topic`, the array and the messages are only read during the
/// call. Threads: any.
///
/// Errors: `SYNCMQ_E_INVALID_ARGUMENT` for a NULL `c`, a NULL, empty or
/// non-UTF-8 `topic`, a NULL `messages` with `count` > 0 or a NULL element
/// (named, as `messages[2]`), a message over the server's size limit;
/// `SYNCMQ_E_NOT_FOUND` for an unknown topic (nothing was stored);
/// `SYNCMQ_E_CODEC` for a batch over the frame limit (split it);
/// `SYNCMQ_E_DISCONNECTED` when the connection failed and
/// `SYNCMQ_E_TIMEOUT` when no reply came in time (then the messages may or
/// may not be stored).
///
/// # Safety
///
/// `c` is NULL or a live client handle; `topic` is NULL or NUL-terminated;
/// `messages` is NULL or points to `count` pointers, each NULL or a live
/// message.
#[no_mangle]
pub unsafe extern "C" fn syncmq_client_publish(
    c: *mut syncmq_client,
    topic: *const c_char,
    messages: *const *const syncmq_message,
    count: usize,
) -> c_int {
    call(|| {
        // SAFETY: the contract above, for each argument.
        let c = unsafe { args::handle(c, "c") }?;
        let topic = unsafe { args::text(topic, "topic") }?;
        let messages = unsafe { message::list(messages, count, "messages") }?;
        c.client.publish(topic, &messages)
    })
}

/// Subscribes as `subscriber` of `topic`: the server pushes deliveries,
/// up to its batch unacknowledged at a time, which
/// `syncmq_remote_subscriber_next` takes.
///
/// Ownership: on success `*out` is a new handle that the caller owns and
/// frees with `syncmq_remote_subscriber_close`; on failure `*out` is NULL.
/// It may outlive `c` (its receives then say the connection ended).
/// Threads: any.
///
/// Errors: `SYNCMQ_E_INVALID_ARGUMENT` for a NULL `c` or `out`, a NULL,
/// empty or non-UTF-8 `topic` or `subscriber`, or when the connection
/// holds as many subscriptions as the server allows; `SYNCMQ_E_NOT_FOUND`
/// for an unknown topic or subscriber; `SYNCMQ_E_DISCONNECTED`.
///
/// # Safety
///
/// `c` is NULL or a live client handle; `topic` and `subscriber` are NULL
/// or NUL-terminated; `out` is NULL or points to writable storage for a
/// pointer.
#[no_mangle]
pub unsafe extern "C" fn syncmq_client_subscribe(
    c: *mut syncmq_client,
    topic: *const c_char,
    subscriber: *const c_char,
    out: *mut *mut syncmq_remote_subscriber,
) -> c_int {
    call(|| {
        // SAFETY: the contract above, for each argument.
        let out = unsafe { args::out(out, "out") }?;
        let c = unsafe { args::handle(c, "c") }?;
        let topic = unsafe { args::text(topic, "topic") }?;
        let subscriber = unsafe { args::text(subscriber, "subscriber") }?;
        let sub = c.client.subscribe(topic, subscriber)?;
        *out = Box::into_raw(Box::new(syncmq_remote_subscriber {
            sub: Mutex::new(sub),
        }));
        Ok(())
    })
}

/// Closes the client: waits until the server has read every ack sent
/// before, closes the connection, joins the client's reader thread, and
/// frees the handle whatever the result. Deliveries not settled are
/// redelivered by the server. Closing NULL does nothing and returns
/// `SYNCMQ_OK`.
///
/// Ownership: `c` is freed; using it afterwards, or closing it twice, is
/// undefined behaviour, as with `free()`. Threads: any, once no other
/// thread uses `c` (remote subscribers may still be in use: their receives
/// then say the connection ended).
///
/// Errors: `SYNCMQ_E_TIMEOUT` when the reader thread did not stop in time.
/// The handle is freed anyway.
///
/// # Safety
///
/// `c` is NULL or a live client handle that no other thread uses.
#[no_mangle]
pub unsafe extern "C" fn syncmq_client_close(c: *mut syncmq_client) -> c_int {
    call(|| {
        if c.is_null() {
            return Ok(());
        }
        // SAFETY: a live handle from Box::into_raw, given back once.
        let c = unsafe { Box::from_raw(c) };
        c.client.close()
    })
}
