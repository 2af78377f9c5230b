//! Strings the library allocates for the host (the JSON of the stats and
//! dead-letter calls): made here from a Rust `String`, handed out as an
//! owned `char *`, and given back to `syncmq_string_free`, the only right
//! way to free them (the host's `free()` uses another allocator).

use std::ffi::{c_char, CString};

use syncmq::{Error, Result};

use crate::guard::call;

/// `text` as a NUL-terminated string the host owns and frees with
/// `syncmq_string_free`.
///
/// # Errors
///
/// `Codec` naming `what` when `text` holds a NUL byte, which would cut the
/// C string short (JSON never does: `serde_json` writes `\u0000`).
pub(crate) fn owned(text: String, what: &str) -> Result<*mut c_char> {
    CString::new(text).map(CString::into_raw).map_err(|e| {
        Error::codec_reason(
            what,
            format!(
                "holds a NUL byte at offset {}, which a C string cannot carry",
                e.nul_position()
            ),
        )
    })
}

/// Frees a string the library allocated (the `char *` of the `_json`
/// calls). NULL does nothing.
///
/// Ownership: `s` is freed; using it afterwards, or freeing it twice, is
/// undefined behaviour, as with `free()`. Only strings from this library
/// may be given: not `syncmq_last_error()` or `syncmq_strerror()` strings,
/// which the library keeps, nor the host's own. Threads: any.
///
/// # Safety
///
/// `s` is NULL or a string this library handed out and has not been freed.
#[no_mangle]
pub unsafe extern "C" fn syncmq_string_free(s: *mut c_char) {
    // Freeing cannot fail; the guard clears the last error, as every call
    // does.
    let _ = call(|| {
        if !s.is_null() {
            // SAFETY: a string from CString::into_raw, given back once.
            drop(unsafe { CString::from_raw(s) });
        }
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_round_trips_and_a_nul_is_refused() {
        let s = owned("{\"a\":1}".into(), "stats").expect("no NUL");
        // SAFETY: just made by `owned`, freed once.
        unsafe { syncmq_string_free(s) };
        let e = owned("a\0b".into(), "stats").expect_err("a NUL inside");
        let text = e.to_string();
        assert!(
            text.contains("stats") && text.contains("offset 1"),
            "{text}"
        );
        // SAFETY: NULL does nothing.
        unsafe { syncmq_string_free(std::ptr::null_mut()) };
    }
}
