//! `syncmq_queue`: the handle on an open queue directory, and the calls
//! that open it, publish to it and close it.

use std::ffi::{c_char, c_int};
use std::time::Duration;

use syncmq::queue::{Queue, QueueConfig};
use syncmq::{Error, Message};

use crate::args;
use crate::guard::call;
use crate::message::{self, syncmq_message};

/// An open queue (opaque). Thread-safe: any number of threads may publish
/// and open subscribers on one handle at once.
#[allow(non_camel_case_types)]
pub struct syncmq_queue {
    pub(crate) queue: Queue,
}

/// Opens (or creates) the queue in directory `path` and declares the topics
/// of `config_json`, a JSON `QueueConfig`, for example
/// `{"durability":"buffered","topics":[{"name":"orders","subscribers":["billing"]}]}`
/// (`"{}"` for the defaults and no topics). Unknown fields are refused.
///
/// Ownership: on success `*out` is a new handle that the caller owns and
/// frees with `syncmq_queue_close`; on failure `*out` is set to NULL.
/// `path` and `config_json` are only read during the call.
/// Threads: any.
///
/// Errors: `SYNCMQ_E_INVALID_ARGUMENT` for a NULL, empty or non-UTF-8
/// `path`, a NULL or non-UTF-8 `config_json`, JSON that does not parse
/// or names an unknown field (the message names the field), a bad value
/// (the message names it, e.g. `topics[0].subscribers`), or a NULL `out`;
/// `SYNCMQ_E_STORAGE` when the directory cannot be opened (another process
/// has it open, say); `SYNCMQ_E_CORRUPT` for unreadable records.
///
/// # Safety
///
/// `path` and `config_json` are NULL or NUL-terminated strings; `out` is
/// NULL or points to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn syncmq_queue_open(
    path: *const c_char,
    config_json: *const c_char,
    out: *mut *mut syncmq_queue,
) -> c_int {
    call(|| {
        // SAFETY: the contract above, for each argument.
        let out = unsafe { args::out(out, "out") }?;
        let path = unsafe { args::text(path, "path") }?;
        let json = unsafe { args::optional_text(config_json, "config_json") }?
            .ok_or_else(|| Error::invalid("config_json", "is NULL"))?;
        let config: QueueConfig =
            serde_json::from_str(json).map_err(|e| Error::invalid("config_json", e.to_string()))?;
        let queue = Queue::open(path, config)?;
        *out = Box::into_raw(Box::new(syncmq_queue { queue }));
        Ok(())
    })
}

/// Publishes one message with body `body` (`len` bytes) to every
/// subscriber of `topic`. When it returns `SYNCMQ_OK` the message is
/// durable: fsynced (or, with `"durability":"buffered"`, handed to the OS,
/// which survives a crash of the process), and never lost. Concurrent
/// publishers share one fsync.
///
/// Ownership: `topic` and `body` are only read during the call.
/// Threads: any; concurrent calls on one handle are fine.
///
/// Errors: `SYNCMQ_E_INVALID_ARGUMENT` for a NULL `q`, a NULL, empty or
/// non-UTF-8 `topic`, a NULL `body` with `len` > 0, a body over the size
/// limit; `SYNCMQ_E_NOT_FOUND` for an unknown topic; `SYNCMQ_E_CLOSED`;
/// `SYNCMQ_E_STORAGE` when the write or sync failed (the message may or
/// may not be stored).
///
/// # Safety
///
/// `q` is NULL or a live queue handle; `topic` is NULL or NUL-terminated;
/// `body` is NULL or points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn syncmq_queue_publish(
    q: *mut syncmq_queue,
    topic: *const c_char,
    body: *const u8,
    len: usize,
) -> c_int {
    call(|| {
        // SAFETY: the contract above, for each argument.
        let q = unsafe { args::handle(q, "q") }?;
        let topic = unsafe { args::text(topic, "topic") }?;
        let body = unsafe { args::bytes(body, len, "body") }?;
        q.queue.publish(topic, &[Message::new(body.to_vec())])
    })
}

/// As `syncmq_queue_publish`, with the message's dedupe `key` (NULL for
/// none), its `priority` (0 the highest; above the topic's levels it goes
/// to the lowest) and a time to live `ttl_ms` (negative for none; a message
/// not delivered within it is dropped).
///
/// Ownership, threads: as `syncmq_queue_publish`.
///
/// Errors: as `syncmq_queue_publish`, and `SYNCMQ_E_INVALID_ARGUMENT` for
/// a non-UTF-8 `key` or one over the length limit.
///
/// # Safety
///
/// As `syncmq_queue_publish`; `key` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn syncmq_queue_publish_message(
    q: *mut syncmq_queue,
    topic: *const c_char,
    body: *const u8,
    len: usize,
    key: *const c_char,
    priority: u8,
    ttl_ms: i64,
) -> c_int {
    call(|| {
        // SAFETY: the contract above, for each argument.
        let q = unsafe { args::handle(q, "q") }?;
        let topic = unsafe { args::text(topic, "topic") }?;
        let body = unsafe { args::bytes(body, len, "body") }?;
        let key = unsafe { args::optional_text(key, "key") }?;
        let mut message = Message::new(body.to_vec()).with_priority(priority);
        if let Some(key) = key {
            message = message.with_key(key);
        }
        if let Ok(ms) = u64::try_from(ttl_ms) {
            message = message.with_ttl(Duration::from_millis(ms));
        }
        q.queue.publish(topic, &[message])
    })
}

/// Publishes `count` messages built with `syncmq_message_new` to `topic`
/// as one batch: one write and one fsync for all of them, in order; when it
/// returns `SYNCMQ_OK` all are durable, and on an error none was stored.
/// The messages are only read (free them as usual).
///
/// Ownership: `topic`, the array and the messages are only read during the
/// call. Threads: any; the messages may be published by several threads at
/// once, but none may be changed meanwhile.
///
/// Errors: as `syncmq_queue_publish`, and `SYNCMQ_E_INVALID_ARGUMENT` for a
/// NULL `messages` with `count` > 0 or a NULL element (named, as
/// `messages[2]`). A `count` of 0 publishes nothing and returns
/// `SYNCMQ_OK`.
///
/// # Safety
///
/// `q` is NULL or a live queue handle; `topic` is NULL or NUL-terminated;
/// `messages` is NULL or points to `count` pointers, each NULL or a live
/// message.
#[no_mangle]
pub unsafe extern "C" fn syncmq_queue_publish_messages(
    q: *mut syncmq_queue,
    topic: *const c_char,
    messages: *const *const syncmq_message,
    count: usize,
) -> c_int {
    call(|| {
        // SAFETY: the contract above, for each argument.
        let q = unsafe { args::handle(q, "q") }?;
        let topic = unsafe { args::text(topic, "topic") }?;
        let messages = unsafe { message::list(messages, count, "messages") }?;
        if messages.is_empty() {
            return Ok(());
        }
        q.queue.publish(topic, &messages)
    })
}

/// Closes the queue: stops accepting publishes, wakes blocked
/// `syncmq_subscriber_next` calls with `SYNCMQ_E_CLOSED`, syncs, stops the
/// library's threads, and frees the handle, whatever the result. Closing
/// NULL does nothing and returns `SYNCMQ_OK`.
///
/// Subscriber and delivery handles stay valid (their calls return
/// `SYNCMQ_E_CLOSED`, but acks and nacks of outstanding deliveries still
/// work); close them as usual. The directory is released when the last of
/// them is closed.
///
/// Ownership: `q` is freed; using it afterwards, or closing it twice, is
/// undefined behaviour, as with `free()`. Threads: any, once no other
/// thread uses `q` (other threads may still use subscribers).
///
/// Errors: `SYNCMQ_E_STORAGE` when the final sync failed; `SYNCMQ_E_TIMEOUT`
/// when a library thread did not stop in time. The handle is freed anyway.
///
/// # Safety
///
/// `q` is NULL or a live queue handle that no other thread uses.
#[no_mangle]
pub unsafe extern "C" fn syncmq_queue_close(q: *mut syncmq_queue) -> c_int {
    call(|| {
        if q.is_null() {
            return Ok(());
        }
        // SAFETY: a live handle from Box::into_raw, given back once.
        let q = unsafe { Box::from_raw(q) };
        q.queue.close()
    })
}
