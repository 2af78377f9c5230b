//! A subscriber's dead-letter queue from C: list it as JSON, replay it
//! (every dead letter back to the end of its queue) or purge it. A message
//! is dead-lettered once it was delivered `max_deliveries` times (a topic
//! setting) without an ack.

use std::ffi::{c_char, c_int};
use std::fmt::Write as _;

use serde_json::{json, Value};
use syncmq::queue::DeadLetter;

use crate::args;
use crate::guard::call;
use crate::stats::json;
use crate::string;
use crate::subscriber::syncmq_subscriber;

/// Up to `limit` dead letters of the subscriber behind `s`, oldest first,
/// as a JSON array of objects:
/// `{"position":0,"deliveries":1,"priority":0,"key":null,"routing_key":null,"headers":{},"body_utf8":"..."}`.
/// `position` is the letter's place in the dead-letter queue, `deliveries`
/// how many times it was delivered before it was dead-lettered. The body is
/// `"body_utf8"` (a string) when it is valid UTF-8, else `"body_hex"`
/// (lowercase hex, two digits a byte); never both. Later versions may add
/// fields.
///
/// Ownership: on success `*out` is a new string the caller owns and frees
/// with `syncmq_string_free`; on failure `*out` is NULL. Threads: any.
///
/// Errors: `SYNCMQ_E_INVALID_ARGUMENT` for a NULL `s` or `out`;
/// `SYNCMQ_E_CLOSED` once the queue is closed; `SYNCMQ_E_CORRUPT` naming
/// the key of an unreadable entry; `SYNCMQ_E_STORAGE`.
///
/// # Safety
///
/// `s` is NULL or a live subscriber handle; `out` is NULL or points to
/// writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn syncmq_subscriber_dead_letters_json(
    s: *mut syncmq_subscriber,
    limit: usize,
    out: *mut *mut c_char,
) -> c_int {
    call(|| {
        // SAFETY: the contract above, for each argument.
        let out = unsafe { args::out(out, "out") }?;
        let s = unsafe { args::handle(s, "s") }?;
        let letters: Vec<Value> = s.engine().dead_letters(limit)?.iter().map(letter).collect();
        *out = string::owned(json(&letters)?, "dead letters JSON")?;
        Ok(())
    })
}

/// Moves every dead letter of the subscriber behind `s` back to the end of
/// its queue, with a fresh delivery count, and sets `*count` (when `count`
/// is not NULL) to how many.
///
/// Threads: any. Errors: `SYNCMQ_E_INVALID_ARGUMENT` for a NULL `s`;
/// otherwise as `syncmq_subscriber_dead_letters_json`. On an error `*count`
/// is 0.
///
/// # Safety
///
/// `s` is NULL or a live subscriber handle; `count` is NULL or points to
/// writable storage for a `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn syncmq_subscriber_replay_dead_letters(
    s: *mut syncmq_subscriber,
    count: *mut u64,
) -> c_int {
    // SAFETY: the contract above.
    unsafe { drain(s, count, true) }
}

/// Deletes every dead letter of the subscriber behind `s`, and sets
/// `*count` (when `count` is not NULL) to how many.
///
/// Threads: any. Errors: as `syncmq_subscriber_replay_dead_letters`.
///
/// # Safety
///
/// As `syncmq_subscriber_replay_dead_letters`.
#[no_mangle]
pub unsafe extern "C" fn syncmq_subscriber_purge_dead_letters(
    s: *mut syncmq_subscriber,
    count: *mut u64,
) -> c_int {
    // SAFETY: the contract above.
    unsafe { drain(s, count, false) }
}

/// Replays (`replay`) or purges every dead letter, writing how many to
/// `count` when it is not NULL.
///
/// # Safety
///
/// As `syncmq_subscriber_replay_dead_letters`.
unsafe fn drain(s: *mut syncmq_subscriber, count: *mut u64, replay: bool) -> c_int {
    call(|| {
        // SAFETY: writable or NULL by the caller's contract; zeroed first
        // so that a failure never leaves a stale count.
        let mut count = unsafe { count.as_mut() };
        if let Some(c) = count.as_deref_mut() {
            *c = 0;
        }
        // SAFETY: the caller's contract.
        let s = unsafe { args::handle(s, "s") }?;
        let sub = s.engine();
        let drained = if replay {
            sub.replay_dead_letters()?
        } else {
            sub.purge_dead_letters()?
        };
        if let Some(c) = count {
            *c = u64::try_from(drained).unwrap_or(u64::MAX);
        }
        Ok(())
    })
}

/// One dead letter as the JSON object `syncmq_subscriber_dead_letters_json`
/// documents.
fn letter(d: &DeadLetter) -> Value {
    let m = &d.message;
    let mut object = json!({
        "position": d.position,
        "deliveries": d.deliveries,
        "priority": m.priority(),
        "key": m.key(),
        "routing_key": m.routing_key(),
        "headers": m.headers(),
    });
    let body = match std::str::from_utf8(m.body()) {
        Ok(text) => ("body_utf8", Value::from(text)),
        Err(_) => ("body_hex", Value::from(hex(m.body()))),
    };
    if let Value::Object(fields) = &mut object {
        fields.insert(body.0.into(), body.1);
    }
    object
}

/// `bytes` as lowercase hex, two digits a byte.
fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(text, "{b:02x}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncmq::Message;

    #[test]
    fn a_body_is_utf8_or_hex_never_both() {
        let text = letter(&DeadLetter {
            position: 3,
            message: Message::new(b"hello".to_vec()).with_key("k"),
            deliveries: 2,
        });
        assert_eq!(text["body_utf8"], "hello");
        assert!(text.get("body_hex").is_none());
        assert_eq!(text["position"], 3);
        assert_eq!(text["deliveries"], 2);
        assert_eq!(text["key"], "k");
        let binary = letter(&DeadLetter {
            position: 0,
            message: Message::new(vec![0xff, 0x00, 0x1a]),
            deliveries: 1,
        });
        assert_eq!(binary["body_hex"], "ff001a");
        assert!(binary.get("body_utf8").is_none());
        assert_eq!(binary["key"], Value::Null);
    }
}
