//! The one wrapper every exported function body runs in: it clears the
//! thread's last error, catches a Rust panic (which must never unwind into
//! C), and turns an error into its code and `syncmq_last_error()` message.

use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::codes::{code_of, SYNCMQ_E_PANIC, SYNCMQ_OK};
use crate::last_error;

/// Runs `body`; on an error or a panic sets the last error and returns
/// `fail(code)` instead. For functions whose result is not an int code
/// (pointers, counts), `fail` gives their error value (NULL, the code).
pub(crate) fn guarded<T>(
    fail: impl FnOnce(c_int) -> T,
    body: impl FnOnce() -> syncmq::Result<T>,
) -> T {
    last_error::clear();
    // Unwind safety: a handle's state lives behind the queue's mutex, which
    // leaves it consistent before anything can fail (see the root crate's
    // `queue::state`); nothing here is half-updated by a panic.
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => {
            last_error::set(&e.to_string());
            fail(code_of(&e))
        }
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(ToString::to_string)
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            log::error!("syncmq-ffi: panic caught at the C boundary: {message}");
            last_error::set(&format!("panic in syncmq: {message}"));
            fail(SYNCMQ_E_PANIC)
        }
    }
}

/// [`guarded`] for the functions that return an int code: `SYNCMQ_OK` or
/// the error's code.
pub(crate) fn call(body: impl FnOnce() -> syncmq::Result<()>) -> c_int {
    guarded(|code| code, || body().map(|()| SYNCMQ_OK))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::SYNCMQ_E_INVALID_ARGUMENT;
    use std::ffi::CStr;

    fn last() -> String {
        // SAFETY: syncmq_last_error never returns NULL and the string lives
        // until the next call on this thread.
        unsafe { CStr::from_ptr(last_error::syncmq_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_panic_is_a_code_and_a_message() {
        let code = call(|| panic!("boom {}", 7));
        assert_eq!(code, SYNCMQ_E_PANIC);
        assert_eq!(last(), "panic in syncmq: boom 7");
        assert_eq!(call(|| Ok(())), SYNCMQ_OK);
        assert_eq!(last(), "", "a call that succeeds clears the message");
    }

    #[test]
    fn an_error_is_its_code_and_display() {
        let code = call(|| Err(syncmq::Error::invalid("topic", "is NULL")));
        assert_eq!(code, SYNCMQ_E_INVALID_ARGUMENT);
        assert!(last().contains("topic"), "{}", last());
    }
}
