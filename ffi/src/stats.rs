//! The counters of subscribers as JSON: `syncmq_queue_stats_json` for a
//! topic or the whole queue, `syncmq_subscriber_stats_json` for one handle.
//! JSON because the counters grow with the library: a host parses the
//! fields it knows, and a new one breaks no ABI.

use std::ffi::{c_char, c_int};

use syncmq::Error;

use crate::args;
use crate::guard::call;
use crate::queue::syncmq_queue;
use crate::string;
use crate::subscriber::syncmq_subscriber;

/// The counters of every subscriber of `topic` (NULL: of every topic, in
/// topic name order), as a JSON array of objects
/// `{"topic":"orders","subscriber":"billing","depth":3,"in_flight":1,"dead_lettered":0,"expired":0,`
/// `"published":4,"delivered":1,"redelivered":0,"acked":0,"nacked":0}`:
/// `depth` the entries waiting to be delivered, `in_flight` those delivered
/// and not acked, `dead_lettered` those in the dead-letter queue, `expired`
/// the messages dropped unread, ever; `published`, `delivered`,
/// `redelivered`, `acked` and `nacked` count what went through the
/// subscriber since the queue was opened (the fields of the Rust
/// `SubscriberStats`). Later versions may add fields.
///
/// Ownership: on success `*out` is a new string the caller owns and frees
/// with `syncmq_string_free`; on failure `*out` is NULL. `topic` is only
/// read during the call. Threads: any.
///
/// Errors: `SYNCMQ_E_INVALID_ARGUMENT` for a NULL `q` or `out`, an empty or
/// non-UTF-8 `topic`; `SYNCMQ_E_NOT_FOUND` for an unknown topic;
/// `SYNCMQ_E_STORAGE` when a subscriber's state is missing.
///
/// # Safety
///
/// `q` is NULL or a live queue handle; `topic` is NULL or NUL-terminated;
/// `out` is NULL or points to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn syncmq_queue_stats_json(
    q: *mut syncmq_queue,
    topic: *const c_char,
    out: *mut *mut c_char,
) -> c_int {
    call(|| {
        // SAFETY: the contract above, for each argument.
        let out = unsafe { args::out(out, "out") }?;
        let q = unsafe { args::handle(q, "q") }?;
        let topic = unsafe { args::optional_text(topic, "topic") }?;
        let stats = match topic {
            Some("") => return Err(Error::invalid("topic", "is empty")),
            Some(topic) => q.queue.stats(topic)?,
            None => {
                let mut all = Vec::new();
                for topic in q.queue.topics() {
                    all.extend(q.queue.stats(topic.name())?);
                }
                all
            }
        };
        *out = string::owned(json(&stats)?, "stats JSON")?;
        Ok(())
    })
}

/// The counters of the subscriber behind `s`, as one JSON object of the
/// fields `syncmq_queue_stats_json` lists.
///
/// Ownership: on success `*out` is a new string the caller owns and frees
/// with `syncmq_string_free`; on failure `*out` is NULL. Threads: any.
///
/// Errors: `SYNCMQ_E_INVALID_ARGUMENT` for a NULL `s` or `out`;
/// `SYNCMQ_E_STORAGE` when the subscriber's state is missing.
///
/// # Safety
///
/// `s` is NULL or a live subscriber handle; `out` is NULL or points to
/// writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn syncmq_subscriber_stats_json(
    s: *mut syncmq_subscriber,
    out: *mut *mut c_char,
) -> c_int {
    call(|| {
        // SAFETY: the contract above, for each argument.
        let out = unsafe { args::out(out, "out") }?;
        let s = unsafe { args::handle(s, "s") }?;
        let stats = s.engine().stats()?;
        *out = string::owned(json(&stats)?, "stats JSON")?;
        Ok(())
    })
}

/// `value` as JSON text.
///
/// # Errors
///
/// `Codec` if `serde_json` refuses it (the stats are plain numbers and
/// strings, so it does not).
pub(crate) fn json(value: &impl serde::Serialize) -> syncmq::Result<String> {
    serde_json::to_string(value).map_err(|e| Error::codec("JSON", e))
}
