//! The C ABI of syncmq's durable queue (`libsyncmq.so` / `libsyncmq.a`,
//! header `include/syncmq.h`), for C, C++ and Python (ctypes) hosts, in the
//! style of librdkafka: opaque thread-safe handles, int error codes, the
//! configuration as a string, and no callback ever run on a thread the host
//! did not choose.
//!
//! # Handles and ownership
//!
//! - `syncmq_queue`: from `syncmq_queue_open(path, config_json, &q)`,
//!   freed by `syncmq_queue_close(q)`, which also syncs and stops the
//!   library's threads.
//! - `syncmq_subscriber`: from `syncmq_subscriber_open(q, topic, name,
//!   &s)`, freed by `syncmq_subscriber_close(s)`. It stays valid after its
//!   queue is closed (its calls then return `SYNCMQ_E_CLOSED`).
//! - `syncmq_delivery`: from `syncmq_subscriber_next(s, timeout_ms, &d)`,
//!   freed by exactly one of `syncmq_delivery_ack`, `syncmq_delivery_nack`
//!   (both settle it) or `syncmq_delivery_free` (which gives the message
//!   back to the queue unsettled, uncounted). A delivery stays valid, and
//!   can be settled, after its subscriber and its queue were closed.
//! - Strings and bytes a delivery hands out (body, key, headers) belong to
//!   it and live until it is freed. `syncmq_strerror` strings are static.
//!   Strings and buffers the host passes are only read during the call.
//! - A handle must not be used after it was freed: closing or freeing one
//!   twice is undefined behaviour, as with `free()`. Closing or freeing
//!   NULL does nothing (and returns `SYNCMQ_OK` where it returns a code).
//! - On failure an out pointer is set to NULL.
//!
//! # Threads
//!
//! Queue and subscriber handles may be used from any number of threads at
//! once (publishers share each fsync; several `syncmq_subscriber_next`
//! calls on one handle each get their own messages). A delivery may be
//! settled on any thread, but is used by one thread at a time. Closing a
//! handle must wait until no other thread uses it: close the queue first
//! to wake a blocked `syncmq_subscriber_next` with `SYNCMQ_E_CLOSED`, join
//! that thread, then close the subscriber. The library runs one thread of
//! its own per queue (`syncmq-queue-sweep`, for ack timeouts) and calls
//! nothing of the host's on it.
//!
//! # Errors
//!
//! Every call that can fail returns `SYNCMQ_OK` (0) or a negative
//! `SYNCMQ_E_*` code (one per kind of error, `SYNCMQ_E_PANIC` for a Rust
//! panic caught at the boundary); calls returning a pointer return NULL,
//! and those returning a count a negative code. Then `syncmq_last_error()`
//! is a message naming what was wrong (the argument, the config field, the
//! topic), kept per thread until the next call on that thread; "" when the
//! most recent call succeeded. `syncmq_strerror(code)` describes a code. A
//! NULL where a pointer is required, a name or path that is empty or not
//! UTF-8, are `SYNCMQ_E_INVALID_ARGUMENT` naming the argument, never
//! undefined behaviour; a body may be NULL only when its length is 0.
//!
//! # Waiting in the host's own loop
//!
//! `syncmq_subscriber_fd(s)` is a file descriptor, readable while a
//! delivery may be ready (or the queue closed). Poll it, then call
//! `syncmq_subscriber_next(s, 0, &d)` until it returns `SYNCMQ_E_TIMEOUT`:
//! each call brings the fd up to date, so the host never reads it itself.
//! The fd belongs to the subscriber and is closed with it.
//!
//! ```c
//! struct pollfd p = { .fd = syncmq_subscriber_fd(s), .events = POLLIN };
//! while (poll(&p, 1, -1) > 0) {
//!     syncmq_delivery *d;
//!     while (syncmq_subscriber_next(s, 0, &d) == SYNCMQ_OK) {
//!         size_t len;
//!         const uint8_t *body = syncmq_delivery_body(d, &len);
//!         handle(body, len);
//!         syncmq_delivery_ack(d);
//!     }
//! }
//! ```

mod args;
mod codes;
mod delivery;
mod guard;
mod last_error;
mod queue;
mod readiness;
mod subscriber;

pub use codes::*;
pub use delivery::*;
pub use last_error::syncmq_last_error;
pub use queue::*;
pub use subscriber::*;

/// The handles are used from any thread at once: the engine's types must
/// stay `Send + Sync`, or this stops compiling.
const _: () = {
    const fn thread_safe<T: Send + Sync>() {}
    thread_safe::<syncmq::queue::Queue>();
    thread_safe::<syncmq::queue::Subscriber>();
    thread_safe::<queue::syncmq_queue>();
    thread_safe::<subscriber::syncmq_subscriber>();
    thread_safe::<delivery::syncmq_delivery>();
};
