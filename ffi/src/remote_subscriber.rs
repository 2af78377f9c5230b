//! `syncmq_remote_subscriber`: a subscription on a queue server, from
//! `syncmq_client_subscribe`, and the calls that take its deliveries and
//! close it.

use std::ffi::c_int;
use std::sync::{Mutex, PoisonError};

use syncmq::server::RemoteSubscriber;
use syncmq::Error;

use crate::args;
use crate::delivery::syncmq_delivery;
use crate::guard::call;

/// A remote subscriber handle (opaque). Thread-safe, but one receive at a
/// time: concurrent `syncmq_remote_subscriber_next` calls on one handle
/// take turns (the subscription keeps the deliveries the server pushed in
/// one buffer). Its deliveries may be settled on any thread.
#[allow(non_camel_case_types)]
pub struct syncmq_remote_subscriber {
    /// A receive changes the subscription's buffer.
    pub(crate) sub: Mutex<RemoteSubscriber>,
}

/// Takes the next delivery: waits up to `timeout_ms` milliseconds for one
/// (0: do not wait; negative: wait without limit). One receive at a time
/// per handle: a second waits for the first to return.
///
/// Ownership: on `SYNCMQ_OK`, `*out` is a new delivery that the caller
/// owns and ends with exactly one of `syncmq_delivery_ack`,
/// `syncmq_delivery_nack` (requeue: the server delivers it again) or
/// `syncmq_delivery_free` (unsettled: the server delivers it again);
/// otherwise `*out` is NULL. Threads: any.
///
/// Errors: `SYNCMQ_E_TIMEOUT` when none came in time;
/// `SYNCMQ_E_INVALID_ARGUMENT` for a NULL `s` or `out`;
/// `SYNCMQ_E_DISCONNECTED` (or the server's error) when the connection
/// ended.
///
/// # Safety
///
/// `s` is NULL or a live remote subscriber handle; `out` is NULL or points
/// to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn syncmq_remote_subscriber_next(
    s: *mut syncmq_remote_subscriber,
    timeout_ms: i64,
    out: *mut *mut syncmq_delivery,
) -> c_int {
    call(|| {
        // SAFETY: the contract above, for each argument.
        let out = unsafe { args::out(out, "out") }?;
        let s = unsafe { args::handle(s, "s") }?;
        let timeout = args::timeout(timeout_ms);
        // A receive that panicked left the buffer whole (each change is
        // one push or pop).
        let mut sub = s.sub.lock().unwrap_or_else(PoisonError::into_inner);
        let delivery = match timeout {
            None => sub.recv()?,
            Some(timeout) => sub
                .recv_timeout(timeout)?
                .ok_or_else(|| Error::timeout("a delivery from the queue server", timeout))?,
        };
        drop(sub);
        *out = Box::into_raw(Box::new(syncmq_delivery::from_delivery(delivery)));
        Ok(())
    })
}

/// Closes the subscription (the server gives back what it pushed and was
/// not settled) and frees the handle. Its outstanding deliveries stay valid
/// while the client's connection lasts. Closing NULL does nothing.
///
/// Ownership: `s` is freed; using it afterwards, or closing it twice, is
/// undefined behaviour, as with `free()`. Threads: any, once no other
/// thread uses `s`.
///
/// # Safety
///
/// `s` is NULL or a live remote subscriber handle that no other thread
/// uses.
#[no_mangle]
pub unsafe extern "C" fn syncmq_remote_subscriber_close(s: *mut syncmq_remote_subscriber) {
    call(|| {
        if !s.is_null() {
            // SAFETY: a live handle from Box::into_raw, given back once.
            drop(unsafe { Box::from_raw(s) });
        }
        Ok(())
    });
}
