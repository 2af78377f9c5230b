//! Reading the host's arguments: C strings, byte buffers, handle and out
//! pointers. Each check gives an `InvalidArgument` error naming the
//! argument, so that a NULL, a non-UTF-8 name or an empty topic is a clear
//! error and never undefined behaviour.

use std::ffi::{c_char, CStr};
use std::time::Duration;

use syncmq::{Error, Result};

/// A required, non-empty UTF-8 string argument.
///
/// # Safety
///
/// `ptr` is NULL or points to a NUL-terminated string that outlives `'a`.
///
/// # Errors
///
/// `InvalidArgument` naming `name` when `ptr` is NULL, the string is empty
/// or it is not UTF-8.
pub(crate) unsafe fn text<'a>(ptr: *const c_char, name: &str) -> Result<&'a str> {
    let s = optional_text(ptr, name)?.ok_or_else(|| Error::invalid(name, "is NULL"))?;
    if s.is_empty() {
        return Err(Error::invalid(name, "is empty"));
    }
    Ok(s)
}

/// An optional UTF-8 string argument: NULL is `None`, "" is `Some("")`.
///
/// # Safety
///
/// As [`text`].
///
/// # Errors
///
/// `InvalidArgument` naming `name` when the string is not UTF-8.
pub(crate) unsafe fn optional_text<'a>(ptr: *const c_char, name: &str) -> Result<Option<&'a str>> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL, and NUL-terminated by the caller's contract.
    let bytes = unsafe { CStr::from_ptr(ptr) };
    bytes.to_str().map(Some).map_err(|e| {
        Error::invalid(
            name,
            format!(
                "is not valid UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )
    })
}

/// A byte buffer argument: `ptr` may be NULL only when `len` is 0.
///
/// # Safety
///
/// `ptr` is NULL or points to `len` readable bytes that outlive `'a`.
///
/// # Errors
///
/// `InvalidArgument` naming `name` when `ptr` is NULL and `len` is not 0.
pub(crate) unsafe fn bytes<'a>(ptr: *const u8, len: usize, name: &str) -> Result<&'a [u8]> {
    // SAFETY: the same contract.
    unsafe { slice(ptr, len, name, "length") }
}

/// The handle behind a required handle argument.
///
/// # Safety
///
/// `ptr` is NULL or a live handle of type `T` from this library.
///
/// # Errors
///
/// `InvalidArgument` naming `name` when `ptr` is NULL.
pub(crate) unsafe fn handle<'a, T>(ptr: *const T, name: &str) -> Result<&'a T> {
    // SAFETY: a live handle by the caller's contract.
    unsafe { ptr.as_ref() }.ok_or_else(|| Error::invalid(name, "is NULL"))
}

/// The handle behind a required handle argument the call changes.
///
/// # Safety
///
/// `ptr` is NULL or a live handle of type `T` from this library that no
/// other thread uses during the call.
///
/// # Errors
///
/// `InvalidArgument` naming `name` when `ptr` is NULL.
pub(crate) unsafe fn handle_mut<'a, T>(ptr: *mut T, name: &str) -> Result<&'a mut T> {
    // SAFETY: a live handle, used by this thread alone, by the caller's
    // contract.
    unsafe { ptr.as_mut() }.ok_or_else(|| Error::invalid(name, "is NULL"))
}

/// An array argument of `count` elements: `ptr` may be NULL only when
/// `count` is 0.
///
/// # Safety
///
/// `ptr` is NULL or points to `count` readable elements that outlive `'a`.
///
/// # Errors
///
/// `InvalidArgument` naming `name` when `ptr` is NULL and `count` is not 0.
pub(crate) unsafe fn array<'a, T>(ptr: *const T, count: usize, name: &str) -> Result<&'a [T]> {
    // SAFETY: the same contract.
    unsafe { slice(ptr, count, name, "count") }
}

/// [`bytes`] and [`array`]: `len` elements at `ptr`, which may be NULL
/// only when `len` is 0 (`word` names the length in the error).
///
/// # Safety
///
/// As [`array`].
unsafe fn slice<'a, T>(ptr: *const T, len: usize, name: &str, word: &str) -> Result<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Error::invalid(
            name,
            format!("is NULL with a {word} of {len}"),
        ));
    }
    // SAFETY: non-NULL with `len` readable elements by the caller's
    // contract.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// A `timeout_ms` argument: `Some` limit for 0 or more milliseconds (0:
/// do not wait), `None` (no limit) for a negative one.
pub(crate) fn timeout(ms: i64) -> Option<Duration> {
    u64::try_from(ms).ok().map(Duration::from_millis)
}

/// A required out pointer, set to NULL at once so that the host never
/// reads a stale value after a failure.
///
/// # Safety
///
/// `ptr` is NULL or points to writable storage for one pointer.
///
/// # Errors
///
/// `InvalidArgument` naming `name` when `ptr` is NULL.
pub(crate) unsafe fn out<'a, T>(ptr: *mut *mut T, name: &str) -> Result<&'a mut *mut T> {
    // SAFETY: writable by the caller's contract.
    let slot = unsafe { ptr.as_mut() }.ok_or_else(|| Error::invalid(name, "is NULL"))?;
    *slot = std::ptr::null_mut();
    Ok(slot)
}
