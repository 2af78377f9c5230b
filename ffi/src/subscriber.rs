//! `syncmq_subscriber`: a consumer's handle on one subscriber of one topic,
//! with blocking or non-blocking receives and a pollable readiness fd.

use std::ffi::{c_char, c_int};
use std::sync::Arc;

use syncmq::queue::Subscriber;
use syncmq::Error;

use crate::args;
use crate::delivery::syncmq_delivery;
use crate::guard::{call, guarded};
use crate::queue::syncmq_queue;
use crate::readiness::Readiness;

/// A subscriber handle (opaque). Thread-safe: several threads may call
/// `syncmq_subscriber_next` on one handle at once (each delivery goes to
/// one of them), and its deliveries may be settled on any thread.
#[allow(non_camel_case_types)]
pub struct syncmq_subscriber {
    /// Shared with every delivery it handed out, which settles through it
    /// after the handle is closed.
    sub: Arc<Subscriber>,
    readiness: Readiness,
}

impl syncmq_subscriber {
    /// The engine's subscriber, for the calls that live in other files
    /// (stats, dead letters).
    pub(crate) fn engine(&self) -> &Subscriber {
        &self.sub
    }
}

/// Opens a handle on subscriber `name` of `topic`. Several handles of one
/// subscriber compete for its messages, each message going to one of them.
///
/// Ownership: on success `*out` is a new handle that the caller owns and
/// frees with `syncmq_subscriber_close`; on failure `*out` is NULL. It
/// stays valid after `syncmq_queue_close` (its calls then return
/// `SYNCMQ_E_CLOSED`). Threads: any.
///
/// Errors: `SYNCMQ_E_INVALID_ARGUMENT` for a NULL `q` or `out`, or a NULL,
/// empty or non-UTF-8 `topic` or `name`; `SYNCMQ_E_NOT_FOUND` for an
/// unknown topic or subscriber; `SYNCMQ_E_CLOSED`; `SYNCMQ_E_IO` when the
/// readiness socket cannot be created.
///
/// # Safety
///
/// `q` is NULL or a live queue handle; `topic` and `name` are NULL or
/// NUL-terminated; `out` is NULL or points to writable storage for a
/// pointer.
#[no_mangle]
pub unsafe extern "C" fn syncmq_subscriber_open(
    q: *mut syncmq_queue,
    topic: *const c_char,
    name: *const c_char,
    out: *mut *mut syncmq_subscriber,
) -> c_int {
    call(|| {
        // SAFETY: the contract above, for each argument.
        let out = unsafe { args::out(out, "out") }?;
        let q = unsafe { args::handle(q, "q") }?;
        let topic = unsafe { args::text(topic, "topic") }?;
        let name = unsafe { args::text(name, "name") }?;
        let sub = Arc::new(q.queue.subscribe(topic, name)?);
        let readiness = Readiness::new()?;
        sub.on_ready(readiness.watcher());
        // Messages queued before the watcher existed.
        readiness.rearm(&sub);
        *out = Box::into_raw(Box::new(syncmq_subscriber { sub, readiness }));
        Ok(())
    })
}

/// Takes the next delivery: waits up to `timeout_ms` milliseconds for one
/// (0: do not wait; negative: wait without limit). Redeliveries come first,
/// then priority 0 first, FIFO within a priority.
///
/// Ownership: on `SYNCMQ_OK`, `*out` is a new delivery that the caller
/// owns and ends with exactly one of `syncmq_delivery_ack`,
/// `syncmq_delivery_nack` or `syncmq_delivery_free`; otherwise `*out` is
/// NULL. Threads: any; concurrent calls on one handle each get their own
/// deliveries. The readiness fd is brought up to date before it returns.
///
/// Errors: `SYNCMQ_E_TIMEOUT` when none came in time (no message is lost);
/// `SYNCMQ_E_INVALID_ARGUMENT` for a NULL `s` or `out`; `SYNCMQ_E_CLOSED`
/// once the queue is closed; `SYNCMQ_E_CORRUPT` naming the key of an
/// unreadable queue entry; `SYNCMQ_E_STORAGE`.
///
/// # Safety
///
/// `s` is NULL or a live subscriber handle; `out` is NULL or points to
/// writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn syncmq_subscriber_next(
    s: *mut syncmq_subscriber,
    timeout_ms: i64,
    out: *mut *mut syncmq_delivery,
) -> c_int {
    call(|| {
        // SAFETY: the contract above, for each argument.
        let out = unsafe { args::out(out, "out") }?;
        let s = unsafe { args::handle(s, "s") }?;
        let timeout = args::timeout(timeout_ms);
        let got = s.sub.next_batch(1, timeout);
        s.readiness.rearm(&s.sub);
        // Only a receive with a limit comes back empty.
        let received = got?.pop().ok_or_else(|| {
            Error::timeout(
                format!("a delivery for subscriber `{}`", s.sub.name()),
                timeout.unwrap_or_default(),
            )
        })?;
        *out = Box::into_raw(Box::new(syncmq_delivery::new(s.sub.clone(), received)));
        Ok(())
    })
}

/// The subscriber's readiness fd: readable while a delivery may be ready
/// (or the queue closed), for `poll()`, `select()` or `epoll`. Wait for it
/// to be readable, then call `syncmq_subscriber_next` with a timeout of 0
/// until it returns `SYNCMQ_E_TIMEOUT`; each call brings the fd up to date,
/// so never read from it yourself. Readable does not promise a delivery
/// (another handle may have taken it): `SYNCMQ_E_TIMEOUT` then is normal.
///
/// Ownership: the fd belongs to the subscriber handle and is closed by
/// `syncmq_subscriber_close`; do not close, read or write it. Threads: any.
///
/// Errors: returns the fd (>= 0), or `SYNCMQ_E_INVALID_ARGUMENT` for a
/// NULL `s`.
///
/// # Safety
///
/// `s` is NULL or a live subscriber handle.
#[no_mangle]
pub unsafe extern "C" fn syncmq_subscriber_fd(s: *mut syncmq_subscriber) -> c_int {
    guarded(
        |code| code,
        || {
            // SAFETY: the contract above.
            let s = unsafe { args::handle(s, "s") }?;
            Ok(s.readiness.fd())
        },
    )
}

/// Closes and frees a subscriber handle, and its readiness fd. Its
/// outstanding deliveries stay valid and can still be settled. Closing
/// NULL does nothing.
///
/// Ownership: `s` is freed; using it afterwards, or closing it twice, is
/// undefined behaviour, as with `free()`. Threads: any, once no other
/// thread uses `s` (a `syncmq_subscriber_next` blocked on it must have
/// returned: close the queue first to wake it).
///
/// # Safety
///
/// `s` is NULL or a live subscriber handle that no other thread uses.
#[no_mangle]
pub unsafe extern "C" fn syncmq_subscriber_close(s: *mut syncmq_subscriber) {
    call(|| {
        if s.is_null() {
            return Ok(());
        }
        // SAFETY: a live handle from Box::into_raw, given back once.
        let s = unsafe { Box::from_raw(s) };
        // Deliveries may keep the engine's handle (and so its watcher)
        // alive: replace the watcher before the socket closes, so that
        // later publishes do not write to a socket whose peer is gone (std
        // sends with MSG_NOSIGNAL, so that would be no SIGPIPE, but an
        // EPIPE and a warning for every publish).
        s.sub.on_ready(Arc::new(|| {}));
        drop(s);
        Ok(())
    });
}
