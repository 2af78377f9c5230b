//! `syncmq_delivery`: one message taken by a consumer, in flight until
//! the host acks, nacks or frees it; and the accessors that read it. One
//! type for every source: a subscriber of the queue engine, a channel's
//! output, a remote subscriber of a queue server.

use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, CString};
use std::sync::{Arc, Mutex, PoisonError};

use syncmq::queue::{Received, Subscriber};
use syncmq::{Delivery, Message};

use crate::args;
use crate::guard::{call, guarded};

/// A delivery (opaque): the message and what settles it. One from a queue
/// subscriber keeps its subscriber's engine handle, so it stays valid, and
/// can be settled, after its `syncmq_subscriber` was closed (and after the
/// queue was closed); one from a channel or a remote subscriber keeps
/// what its adapter or connection settles it with.
/// Its accessors only read it, so any threads may call them at once; none
/// may still be reading it when one thread acks, nacks or frees it.
#[allow(non_camel_case_types)]
pub struct syncmq_delivery {
    source: Source,
    /// The C strings the accessors hand out, made once so that their
    /// pointers live as long as the delivery.
    key: Option<CString>,
    headers: BTreeMap<String, CString>,
}

/// Where a delivery came from, which says how it is read and settled.
enum Source {
    /// The queue engine's: settled through the subscriber by entry id.
    Queue {
        sub: Arc<Subscriber>,
        received: Received,
    },
    /// The crate's `Delivery` (a channel's output, a remote subscriber):
    /// settled through its own acker. Behind a mutex because its acker is
    /// `Send` but not `Sync`, and the accessors may run on several threads
    /// at once; the message never moves while the delivery lives, so the
    /// pointers they hand out stay valid after the lock is released.
    Crate(Mutex<Delivery>),
}

impl syncmq_delivery {
    pub(crate) fn new(sub: Arc<Subscriber>, received: Received) -> Self {
        let (key, headers) = c_strings(&received.message);
        syncmq_delivery {
            source: Source::Queue { sub, received },
            key,
            headers,
        }
    }

    /// A delivery of the crate's (from a channel or a remote subscriber).
    pub(crate) fn from_delivery(delivery: Delivery) -> Self {
        let (key, headers) = c_strings(delivery.message());
        syncmq_delivery {
            source: Source::Crate(Mutex::new(delivery)),
            key,
            headers,
        }
    }

    /// Runs `read` on the message.
    fn read<T>(&self, read: impl FnOnce(&Message, u32) -> T) -> T {
        match &self.source {
            Source::Queue { received, .. } => read(&received.message, received.deliveries),
            Source::Crate(delivery) => {
                let delivery = delivery.lock().unwrap_or_else(PoisonError::into_inner);
                // The crate's deliveries only say whether they came before.
                read(
                    delivery.message(),
                    if delivery.is_redelivered() { 2 } else { 1 },
                )
            }
        }
    }
}

/// The key and header values in their C form. A string holding a NUL byte
/// has no C form: it reads as absent.
fn c_strings(message: &Message) -> (Option<CString>, BTreeMap<String, CString>) {
    let key = message.key().and_then(|k| CString::new(k).ok());
    let headers = message
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.clone(), CString::new(value.as_str()).ok()?)))
        .collect();
    (key, headers)
}

/// The message's body: returns a pointer to its bytes and sets `*len` to
/// their number (a body may be empty: `*len` is 0 then).
///
/// Ownership: the bytes belong to `d` and live until it is acked, nacked or
/// freed. Threads: any.
///
/// Errors: NULL, with `*len` 0 and `syncmq_last_error()` naming the
/// argument, for a NULL `d` or `len`.
///
/// # Safety
///
/// `d` is NULL or a live delivery; `len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn syncmq_delivery_body(
    d: *const syncmq_delivery,
    len: *mut usize,
) -> *const u8 {
    guarded(
        |_| std::ptr::null(),
        || {
            // SAFETY: the contract above, for each argument.
            let len =
                unsafe { len.as_mut() }.ok_or_else(|| syncmq::Error::invalid("len", "is NULL"))?;
            *len = 0;
            let d = unsafe { args::handle(d, "d") }?;
            // The bytes stay where they are until `d` is freed (see
            // `Source::Crate`): the pointer outlives the read.
            let (ptr, n) = d.read(|m, _| (m.body().as_ptr(), m.body().len()));
            *len = n;
            Ok(ptr)
        },
    )
}

/// The message's dedupe key, NULL when it has none (or the key holds a NUL
/// byte).
///
/// Ownership: the string belongs to `d`, as the body. Threads: as the body.
///
/// Errors: NULL with `syncmq_last_error()` naming `d` when `d` is NULL
/// (`syncmq_last_error()` is "" for a key that is only absent).
///
/// # Safety
///
/// `d` is NULL or a live delivery.
#[no_mangle]
pub unsafe extern "C" fn syncmq_delivery_key(d: *const syncmq_delivery) -> *const c_char {
    guarded(
        |_| std::ptr::null(),
        || {
            // SAFETY: the contract above.
            let d = unsafe { args::handle(d, "d") }?;
            Ok(d.key.as_ref().map_or(std::ptr::null(), |k| k.as_ptr()))
        },
    )
}

/// The value of the message's header `name`, NULL when it has none (or the
/// value holds a NUL byte).
///
/// Ownership: the string belongs to `d`, as the body. Threads: as the body.
///
/// Errors: NULL with `syncmq_last_error()` naming the argument for a NULL
/// `d`, or a NULL or non-UTF-8 `name`.
///
/// # Safety
///
/// `d` is NULL or a live delivery; `name` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn syncmq_delivery_header(
    d: *const syncmq_delivery,
    name: *const c_char,
) -> *const c_char {
    guarded(
        |_| std::ptr::null(),
        || {
            // SAFETY: the contract above, for each argument.
            let d = unsafe { args::handle(d, "d") }?;
            let name = unsafe { args::optional_text(name, "name") }?
                .ok_or_else(|| syncmq::Error::invalid("name", "is NULL"))?;
            Ok(d.headers.get(name).map_or(std::ptr::null(), |v| v.as_ptr()))
        },
    )
}

/// The message's priority (0 the highest, up to 255).
///
/// Threads: any. Errors: `SYNCMQ_E_INVALID_ARGUMENT` (negative) for a NULL
/// `d`.
///
/// # Safety
///
/// `d` is NULL or a live delivery.
#[no_mangle]
pub unsafe extern "C" fn syncmq_delivery_priority(d: *const syncmq_delivery) -> c_int {
    guarded(
        |code| code,
        || {
            // SAFETY: the contract above.
            let d = unsafe { args::handle(d, "d") }?;
            Ok(d.read(|m, _| c_int::from(m.priority())))
        },
    )
}

/// How many times this message was delivered, this time included: more
/// than 1 means it came back (nack, ack timeout, a restart while in
/// flight). A delivery from a channel or a remote subscriber only knows
/// whether it came before: it says 1, or 2 for any redelivery.
///
/// Threads: any. Errors: `SYNCMQ_E_INVALID_ARGUMENT` (negative) for a NULL
/// `d`.
///
/// # Safety
///
/// `d` is NULL or a live delivery.
#[no_mangle]
pub unsafe extern "C" fn syncmq_delivery_deliveries(d: *const syncmq_delivery) -> i64 {
    guarded(i64::from, || {
        // SAFETY: the contract above.
        let d = unsafe { args::handle(d, "d") }?;
        Ok(d.read(|_, deliveries| i64::from(deliveries)))
    })
}

/// Acks the delivery (the message is done for this subscriber) and frees
/// `d`, whether or not the ack succeeded.
///
/// Ownership: `d` is freed; using it afterwards is undefined behaviour.
/// Threads: any.
///
/// Errors: `SYNCMQ_E_INVALID_ARGUMENT` for a NULL `d`, or when the delivery
/// is stale (its ack timeout passed and it was delivered again: only the
/// newest delivery settles it); `SYNCMQ_E_STORAGE`.
///
/// # Safety
///
/// `d` is NULL or a live delivery, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn syncmq_delivery_ack(d: *mut syncmq_delivery) -> c_int {
    call(|| {
        // SAFETY: the contract above; the box is given back once.
        let d = unsafe { take(d) }?;
        match d.source {
            Source::Queue { sub, received } => sub.ack(&[received.id]).map(drop),
            Source::Crate(delivery) => delivery
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner)
                .ack(),
        }
    })
}

/// Rejects the delivery and frees `d`, whether or not that succeeded: with
/// `requeue` the message goes back to the front of the queue (or to the
/// dead-letter queue once it reached the topic's `max_deliveries`), without
/// it to the dead-letter queue at once.
///
/// Ownership, threads, errors: as `syncmq_delivery_ack`.
///
/// # Safety
///
/// As `syncmq_delivery_ack`.
#[no_mangle]
pub unsafe extern "C" fn syncmq_delivery_nack(d: *mut syncmq_delivery, requeue: bool) -> c_int {
    call(|| {
        // SAFETY: the contract above; the box is given back once.
        let d = unsafe { take(d) }?;
        match d.source {
            Source::Queue { sub, received } => sub.nack(&[received.id], requeue).map(drop),
            Source::Crate(delivery) => delivery
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner)
                .nack(requeue),
        }
    })
}

/// Frees a delivery without settling it: a queue subscriber's message goes
/// back to the front of the queue at once, not counted as a delivery (as
/// if it had never been taken); one from a channel or a remote subscriber
/// is dropped unsettled, which its source redelivers as it documents (the
/// durable and RabbitMQ adapters and the queue server give it back; the
/// simple adapter, whose acks are no-ops, loses it). Freeing NULL does
/// nothing.
///
/// Ownership: `d` is freed; using it afterwards, or freeing it twice, is
/// undefined behaviour, as with `free()`. Threads: any.
///
/// # Safety
///
/// `d` is NULL or a live delivery, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn syncmq_delivery_free(d: *mut syncmq_delivery) {
    call(|| {
        if d.is_null() {
            return Ok(());
        }
        // SAFETY: the contract above; the box is given back once.
        let d = unsafe { take(d) }?;
        if let Source::Queue { sub, received } = d.source {
            if let Err(e) = sub.release(&[received.id]) {
                // Not lost: an entry that cannot be released now comes back
                // after its ack timeout or at the next open.
                log::debug!("syncmq-ffi: delivery {} not released: {e}", received.id);
            }
        }
        // A crate delivery releases itself as it drops.
        Ok(())
    });
}

/// Takes back the box behind `d`.
///
/// # Safety
///
/// `d` is NULL or a live delivery from `Box::into_raw`, given back once.
unsafe fn take(d: *mut syncmq_delivery) -> syncmq::Result<Box<syncmq_delivery>> {
    if d.is_null() {
        return Err(syncmq::Error::invalid("d", "is NULL"));
    }
    // SAFETY: the contract above.
    Ok(unsafe { Box::from_raw(d) })
}
