//! `syncmq_message`: a message built field by field (body, dedupe key,
//! routing key, headers, priority, time to live) for the publish calls that
//! take whole messages, the batch publish among them. The one-call
//! publishes (`syncmq_queue_publish`, `syncmq_queue_publish_message`) need
//! none.

use std::ffi::{c_char, c_int};
use std::time::Duration;

use syncmq::{Error, Message};

use crate::args;
use crate::guard::call;

/// A message being built (opaque). Publishing reads it and leaves it as it
/// is, so one message may be published several times; the caller frees it
/// with `syncmq_message_free`. Not thread-safe while it is changed: one
/// thread builds it; once built, any threads may publish it at once.
#[allow(non_camel_case_types)]
pub struct syncmq_message {
    pub(crate) message: Message,
}

impl syncmq_message {
    /// Applies `change` to the message (`Message`'s builders take it by
    /// value).
    fn change(&mut self, change: impl FnOnce(Message) -> Message) {
        let message = std::mem::replace(&mut self.message, Message::new(Vec::new()));
        self.message = change(message);
    }
}

/// A new message with body `body` (`len` bytes, copied), no key, no
/// headers, priority 0 (the highest) and no time to live.
///
/// Ownership: on success `*out` is a new message the caller owns and frees
/// with `syncmq_message_free`; on failure `*out` is NULL. `body` is only
/// read during the call. Threads: any.
///
/// Errors: `SYNCMQ_E_INVALID_ARGUMENT` for a NULL `out`, or a NULL `body`
/// with `len` > 0.
///
/// # Safety
///
/// `body` is NULL or points to `len` readable bytes; `out` is NULL or
/// points to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn syncmq_message_new(
    body: *const u8,
    len: usize,
    out: *mut *mut syncmq_message,
) -> c_int {
    call(|| {
        // SAFETY: the contract above, for each argument.
        let out = unsafe { args::out(out, "out") }?;
        let body = unsafe { args::bytes(body, len, "body") }?;
        let message = Message::new(body.to_vec());
        *out = Box::into_raw(Box::new(syncmq_message { message }));
        Ok(())
    })
}

/// Sets the message's dedupe key (a topic with dedupe on keeps one
/// undelivered message per key).
///
/// Errors: `SYNCMQ_E_INVALID_ARGUMENT` for a NULL `m`, or a `key` that is
/// NULL, empty or not UTF-8.
///
/// # Safety
///
/// `m` is NULL or a live message no other thread uses; `key` is NULL or
/// NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn syncmq_message_set_key(
    m: *mut syncmq_message,
    key: *const c_char,
) -> c_int {
    call(|| {
        // SAFETY: the contract above, for each argument.
        let m = unsafe { args::handle_mut(m, "m") }?;
        let key = unsafe { args::text(key, "key") }?;
        m.change(|message| message.with_key(key));
        Ok(())
    })
}

/// Sets the routing key the message is published with on RabbitMQ (the
/// queue engine carries it along unread).
///
/// Errors: `SYNCMQ_E_INVALID_ARGUMENT` for a NULL `m`, or a `routing_key`
/// that is NULL, empty or not UTF-8.
///
/// # Safety
///
/// As `syncmq_message_set_key`.
#[no_mangle]
pub unsafe extern "C" fn syncmq_message_set_routing_key(
    m: *mut syncmq_message,
    routing_key: *const c_char,
) -> c_int {
    call(|| {
        // SAFETY: the contract above, for each argument.
        let m = unsafe { args::handle_mut(m, "m") }?;
        let routing_key = unsafe { args::text(routing_key, "routing_key") }?;
        m.change(|message| message.with_routing_key(routing_key));
        Ok(())
    })
}

/// Sets header `name` to `value` (replacing an earlier value of `name`).
///
/// Errors: `SYNCMQ_E_INVALID_ARGUMENT` for a NULL `m`, a NULL, empty or
/// non-UTF-8 `name`, or a NULL or non-UTF-8 `value`.
///
/// # Safety
///
/// `m` is NULL or a live message no other thread uses; `name` and `value`
/// are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn syncmq_message_set_header(
    m: *mut syncmq_message,
    name: *const c_char,
    value: *const c_char,
) -> c_int {
    call(|| {
        // SAFETY: the contract above, for each argument.
        let m = unsafe { args::handle_mut(m, "m") }?;
        let name = unsafe { args::text(name, "name") }?;
        let value = unsafe { args::optional_text(value, "value") }?
            .ok_or_else(|| Error::invalid("value", "is NULL"))?;
        m.change(|message| message.with_header(name, value));
        Ok(())
    })
}

/// Sets the message's priority: 0 is the highest; a priority at or beyond
/// the topic's levels goes to its lowest level.
///
/// Errors: `SYNCMQ_E_INVALID_ARGUMENT` for a NULL `m`.
///
/// # Safety
///
/// `m` is NULL or a live message no other thread uses.
#[no_mangle]
pub unsafe extern "C" fn syncmq_message_set_priority(
    m: *mut syncmq_message,
    priority: u8,
) -> c_int {
    call(|| {
        // SAFETY: the contract above.
        let m = unsafe { args::handle_mut(m, "m") }?;
        m.change(|message| message.with_priority(priority));
        Ok(())
    })
}

/// Gives the message a time to live of `ttl_ms` milliseconds from now: a
/// message not delivered by then is dropped.
///
/// Errors: `SYNCMQ_E_INVALID_ARGUMENT` for a NULL `m` or a negative
/// `ttl_ms`.
///
/// # Safety
///
/// `m` is NULL or a live message no other thread uses.
#[no_mangle]
pub unsafe extern "C" fn syncmq_message_set_ttl_ms(m: *mut syncmq_message, ttl_ms: i64) -> c_int {
    call(|| {
        // SAFETY: the contract above.
        let m = unsafe { args::handle_mut(m, "m") }?;
        let ms = u64::try_from(ttl_ms)
            .map_err(|_| Error::invalid("ttl_ms", format!("is negative ({ttl_ms})")))?;
        m.change(|message| message.with_ttl(Duration::from_millis(ms)));
        Ok(())
    })
}

/// Frees a message. NULL does nothing.
///
/// Ownership: `m` is freed; using it afterwards, or freeing it twice, is
/// undefined behaviour, as with `free()`. Threads: any, once no other
/// thread uses `m`.
///
/// # Safety
///
/// `m` is NULL or a live message that no other thread uses.
#[no_mangle]
pub unsafe extern "C" fn syncmq_message_free(m: *mut syncmq_message) {
    // Dropping a message cannot fail or panic; the guard is for symmetry
    // with every other call (it also clears the last error).
    let _ = call(|| {
        if !m.is_null() {
            // SAFETY: a live message from Box::into_raw, given back once.
            drop(unsafe { Box::from_raw(m) });
        }
        Ok(())
    });
}

/// The messages of a `const syncmq_message *const *` array argument.
///
/// # Safety
///
/// `messages` is NULL or points to `count` pointers, each NULL or a live
/// message.
///
/// # Errors
///
/// `InvalidArgument` naming `name` for a NULL array with `count` > 0, or
/// naming the element (`messages[3]`) for a NULL element.
pub(crate) unsafe fn list(
    messages: *const *const syncmq_message,
    count: usize,
    name: &str,
) -> syncmq::Result<Vec<Message>> {
    // SAFETY: the contract above.
    let pointers = unsafe { args::array(messages, count, name) }?;
    pointers
        .iter()
        .enumerate()
        .map(|(i, &m)| {
            // SAFETY: each element is NULL or a live message.
            let m = unsafe { args::handle(m, &format!("{name}[{i}]")) }?;
            Ok(m.message.clone())
        })
        .collect()
}
