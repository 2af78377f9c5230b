//! `syncmq_last_error()`: the message of the most recent failed call, kept
//! per thread (as `errno` is) so that threads never see each other's
//! errors and no lock is taken.

use std::cell::RefCell;
use std::ffi::{c_char, CString};

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Sets this thread's message. A NUL inside it (from a name the host
/// passed) is written as `\0` so the rest is not cut off.
pub(crate) fn set(message: &str) {
    let text = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|last| *last.borrow_mut() = text);
}

/// Empties this thread's message: each call through the boundary starts
/// with it, so the message always belongs to the most recent call.
pub(crate) fn clear() {
    LAST_ERROR.with(|last| {
        let mut last = last.borrow_mut();
        if !last.is_empty() {
            *last = CString::default();
        }
    });
}

/// The message of the most recent call on this thread that failed, naming
/// what was wrong (the argument, the config field, the topic); "" (never
/// NULL) when the most recent call succeeded or none was made.
///
/// Ownership: the string belongs to the library; it stays valid until the
/// next `syncmq_*` call on this thread (other than `syncmq_last_error` and
/// `syncmq_strerror`). Copy it to keep it. Threads: each thread has its
/// own. Errors: none.
#[no_mangle]
pub extern "C" fn syncmq_last_error() -> *const c_char {
    LAST_ERROR.with(|last| last.borrow().as_ptr())
}
