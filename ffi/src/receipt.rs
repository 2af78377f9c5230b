//! `syncmq_receipt`: the pipelined publish of the C ABI. `syncmq_queue_send`
//! writes a message and returns at once with a receipt; waiting on the
//! receipt later says when the message is durable. Keeping many receipts
//! outstanding lets one fsync cover many messages, as the root crate's
//! `Queue::send` does for Rust callers.

use std::ffi::{c_char, c_int};

use syncmq::Receipt;

use crate::args;
use crate::guard::{call, guarded};
use crate::message::syncmq_message;
use crate::queue::syncmq_queue;

/// The receipt of one pipelined publish (opaque). Freed by exactly one of
/// `syncmq_receipt_wait` (which reports durability) or
/// `syncmq_receipt_free` (which does not). Not shared: one thread at a time
/// uses it, though that may be another thread than the one that sent.
#[allow(non_camel_case_types)]
pub struct syncmq_receipt {
    pub(crate) receipt: Receipt,
}

/// Publishes message `m` to every subscriber of `topic` without waiting for
/// the sync: the message is written (and visible to subscribers) when this
/// returns, and `*out` is a receipt whose `syncmq_receipt_wait` returns
/// `SYNCMQ_OK` once it is durable. A sync covers everything written before
/// it, so a receipt waited `SYNCMQ_OK` also proves every earlier send
/// durable. Nothing sent is durable before its wait (or a later send's)
/// returned `SYNCMQ_OK`: after a crash it may be lost.
///
/// Ownership: on success `*out` is a new receipt that the caller owns and
/// ends with `syncmq_receipt_wait` or `syncmq_receipt_free`; on failure
/// `*out` is NULL and nothing was published. `topic` and `m` are only read
/// during the call (free `m` as usual). A receipt keeps the queue's files
/// open until it is freed, and stays valid after `syncmq_queue_close`
/// (close syncs everything sent, so the wait then returns at once).
/// Threads: any; concurrent sends on one handle are fine.
///
/// Errors: `SYNCMQ_E_INVALID_ARGUMENT` for a NULL `q`, `m` or `out`, a
/// NULL, empty or non-UTF-8 `topic`, a message over the size limit;
/// `SYNCMQ_E_NOT_FOUND` for an unknown topic; `SYNCMQ_E_CLOSED`;
/// `SYNCMQ_E_STORAGE` when the write failed.
///
/// # Safety
///
/// `q` is NULL or a live queue handle; `topic` is NULL or NUL-terminated;
/// `m` is NULL or a live message no other thread changes; `out` is NULL or
/// points to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn syncmq_queue_send(
    q: *mut syncmq_queue,
    topic: *const c_char,
    m: *const syncmq_message,
    out: *mut *mut syncmq_receipt,
) -> c_int {
    call(|| {
        // SAFETY: the contract above, for each argument.
        let out = unsafe { args::out(out, "out") }?;
        let q = unsafe { args::handle(q, "q") }?;
        let topic = unsafe { args::text(topic, "topic") }?;
        let m = unsafe { args::handle(m, "m") }?;
        let receipt = q.queue.send(topic, std::slice::from_ref(&m.message))?;
        *out = Box::into_raw(Box::new(syncmq_receipt { receipt }));
        Ok(())
    })
}

/// Waits until the receipt's message is durable, at most `timeout_ms`
/// milliseconds (negative: the receipt's own wait, which lasts as long as
/// the sync takes), and frees the receipt, whatever the result.
///
/// Ownership: `r` is freed; using it afterwards, or freeing it twice, is
/// undefined behaviour, as with `free()`. Threads: any, one at a time.
///
/// Errors: `SYNCMQ_OK` once the message is durable;
/// `SYNCMQ_E_INVALID_ARGUMENT` for a NULL `r`; `SYNCMQ_E_TIMEOUT` when
/// `timeout_ms` ran out while another publisher's sync was under way (the
/// message may still become durable, but this receipt is gone: wait on a
/// later one); `SYNCMQ_E_STORAGE` when the sync failed (the message may or
/// may not be stored); `SYNCMQ_E_PANICKED` when the storage engine
/// panicked.
///
/// # Safety
///
/// `r` is NULL or a live receipt that no other thread uses.
#[no_mangle]
pub unsafe extern "C" fn syncmq_receipt_wait(r: *mut syncmq_receipt, timeout_ms: i64) -> c_int {
    call(|| {
        if r.is_null() {
            return Err(syncmq::Error::invalid("r", "is NULL"));
        }
        // SAFETY: a live receipt from Box::into_raw, given back once.
        let r = unsafe { Box::from_raw(r) };
        match args::timeout(timeout_ms) {
            Some(limit) => r.receipt.wait_timeout(limit),
            None => r.receipt.wait(),
        }
    })
}

/// The send's place in the queue's write order, counted from 1 since the
/// queue was opened: a larger ticket was written later. 0 for a NULL `r`
/// (no send has ticket 0).
///
/// Threads: any, one at a time with the receipt's other calls. Errors: a
/// NULL `r` returns 0 and sets `syncmq_last_error()`.
///
/// # Safety
///
/// `r` is NULL or a live receipt.
#[no_mangle]
pub unsafe extern "C" fn syncmq_receipt_ticket(r: *const syncmq_receipt) -> u64 {
    guarded(
        |_| 0,
        || {
            // SAFETY: the contract above.
            let r = unsafe { args::handle(r, "r") }?;
            Ok(r.receipt.ticket())
        },
    )
}

/// Frees a receipt without waiting: the message is still published (and
/// becomes durable with the next sync), only its durability is not
/// reported. NULL does nothing.
///
/// Ownership: `r` is freed; using it afterwards, or freeing it twice, is
/// undefined behaviour, as with `free()`. Threads: any, once no other
/// thread uses `r`.
///
/// # Safety
///
/// `r` is NULL or a live receipt that no other thread uses.
#[no_mangle]
pub unsafe extern "C" fn syncmq_receipt_free(r: *mut syncmq_receipt) {
    // Dropping a receipt cannot fail; the guard clears the last error, as
    // every call does.
    let _ = call(|| {
        if !r.is_null() {
            // SAFETY: a live receipt from Box::into_raw, given back once.
            drop(unsafe { Box::from_raw(r) });
        }
        Ok(())
    });
}
