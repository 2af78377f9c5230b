//! The error codes of the C ABI: `SYNCMQ_OK`, one negative code per
//! [`syncmq::Error`] variant, `SYNCMQ_E_PANIC` for a panic caught at the
//! boundary, and `syncmq_strerror`. Codes are part of the ABI: a value is
//! never reused for another meaning.

use std::ffi::{c_char, c_int, CStr};

use syncmq::Error;

// cbindgen writes the negative values without parentheses
// (`#define SYNCMQ_E_CLOSED -5`): a misuse such as `x-SYNCMQ_E_CLOSED`
// reads as `x--5`, which C refuses to compile, so nothing goes silently
// wrong.

/// Success.
pub const SYNCMQ_OK: c_int = 0;
/// An argument or configuration field was NULL, empty, not UTF-8, out of
/// range or malformed; `syncmq_last_error()` names it.
pub const SYNCMQ_E_INVALID_ARGUMENT: c_int = -1;
/// No topic or subscriber of that name.
pub const SYNCMQ_E_NOT_FOUND: c_int = -2;
/// An object of that name already exists.
pub const SYNCMQ_E_ALREADY_EXISTS: c_int = -3;
/// The object's mode does not allow the operation.
pub const SYNCMQ_E_WRONG_MODE: c_int = -4;
/// The queue was closed (or the subscriber interrupted).
pub const SYNCMQ_E_CLOSED: c_int = -5;
/// Nothing came in time: `syncmq_subscriber_next` found no delivery.
pub const SYNCMQ_E_TIMEOUT: c_int = -6;
/// Bytes could not be encoded or decoded.
pub const SYNCMQ_E_CODEC: c_int = -7;
/// Stored bytes are corrupt; the message names the key or file.
pub const SYNCMQ_E_CORRUPT: c_int = -8;
/// The operating system refused (a file, a socket, a thread).
pub const SYNCMQ_E_IO: c_int = -9;
/// The storage engine failed (a full disk, the directory locked by another
/// process).
pub const SYNCMQ_E_STORAGE: c_int = -10;
/// A peer went away (not returned by the queue; kept for the whole error
/// set).
pub const SYNCMQ_E_DISCONNECTED: c_int = -11;
/// A bounded buffer is full; retry later.
pub const SYNCMQ_E_BUSY: c_int = -12;
/// A peer refused.
pub const SYNCMQ_E_REFUSED: c_int = -13;
/// A settlement of a delivery its connection no longer carries.
pub const SYNCMQ_E_STALE_DELIVERY: c_int = -14;
/// Publishes were refused by a broker.
pub const SYNCMQ_E_REJECTED: c_int = -15;
/// A thread of the library, or a handler it ran, panicked (reported by the
/// library itself, not caught at the boundary).
pub const SYNCMQ_E_PANICKED: c_int = -16;
/// A block of the block runtime failed.
pub const SYNCMQ_E_BLOCK: c_int = -17;
/// A Rust panic was caught at the C boundary; `syncmq_last_error()` has
/// its message. The handle stays usable.
pub const SYNCMQ_E_PANIC: c_int = -18;
/// An error of a kind this build of the C ABI has no code for (a newer
/// library); `syncmq_last_error()` says what it was.
pub const SYNCMQ_E_UNKNOWN: c_int = -99;

/// The code of `e`.
pub(crate) fn code_of(e: &Error) -> c_int {
    match e {
        Error::InvalidArgument { .. } => SYNCMQ_E_INVALID_ARGUMENT,
        Error::NotFound { .. } => SYNCMQ_E_NOT_FOUND,
        Error::AlreadyExists { .. } => SYNCMQ_E_ALREADY_EXISTS,
        Error::WrongMode { .. } => SYNCMQ_E_WRONG_MODE,
        Error::Closed(_) => SYNCMQ_E_CLOSED,
        Error::Timeout { .. } => SYNCMQ_E_TIMEOUT,
        Error::Codec { .. } => SYNCMQ_E_CODEC,
        Error::Corrupt { .. } => SYNCMQ_E_CORRUPT,
        Error::Io { .. } | Error::AddrInUse { .. } => SYNCMQ_E_IO,
        // A directory another process owns was a storage error before it
        // had a variant of its own; C callers keep the code.
        Error::Storage { .. } | Error::DirectoryInUse { .. } => SYNCMQ_E_STORAGE,
        // A server that does not answer was `Disconnected` before.
        Error::Disconnected { .. } | Error::Unreachable { .. } => SYNCMQ_E_DISCONNECTED,
        Error::Busy { .. } => SYNCMQ_E_BUSY,
        Error::Refused { .. } => SYNCMQ_E_REFUSED,
        Error::StaleDelivery { .. } => SYNCMQ_E_STALE_DELIVERY,
        Error::Rejected { .. } => SYNCMQ_E_REJECTED,
        Error::Panicked { .. } => SYNCMQ_E_PANICKED,
        Error::Block { .. } => SYNCMQ_E_BLOCK,
        // `Error` is #[non_exhaustive]: a variant added later still maps.
        _ => SYNCMQ_E_UNKNOWN,
    }
}

/// The static description of `code`.
fn describe(code: c_int) -> &'static CStr {
    match code {
        SYNCMQ_OK => c"success",
        SYNCMQ_E_INVALID_ARGUMENT => c"invalid argument",
        SYNCMQ_E_NOT_FOUND => c"not found",
        SYNCMQ_E_ALREADY_EXISTS => c"already exists",
        SYNCMQ_E_WRONG_MODE => c"wrong mode",
        SYNCMQ_E_CLOSED => c"closed",
        SYNCMQ_E_TIMEOUT => c"timed out",
        SYNCMQ_E_CODEC => c"encoding or decoding failed",
        SYNCMQ_E_CORRUPT => c"stored data is corrupt",
        SYNCMQ_E_IO => c"operating system error",
        SYNCMQ_E_STORAGE => c"storage engine error",
        SYNCMQ_E_DISCONNECTED => c"disconnected",
        SYNCMQ_E_BUSY => c"busy",
        SYNCMQ_E_REFUSED => c"refused",
        SYNCMQ_E_STALE_DELIVERY => c"stale delivery",
        SYNCMQ_E_REJECTED => c"rejected",
        SYNCMQ_E_PANICKED => c"a library thread or handler panicked",
        SYNCMQ_E_BLOCK => c"a block failed",
        SYNCMQ_E_PANIC => c"panic caught at the C boundary",
        SYNCMQ_E_UNKNOWN => c"an error without a code in this build",
        _ => c"unknown error code",
    }
}

/// A static, NUL-terminated description of `code` (a `SYNCMQ_*` value);
/// "unknown error code" for any other value. Never NULL; never freed.
///
/// Threads: any. Errors: none (it does not touch `syncmq_last_error()`).
#[no_mangle]
pub extern "C" fn syncmq_strerror(code: c_int) -> *const c_char {
    describe(code).as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_own_description() {
        let codes = (-100..=0).filter(|c| describe(*c) != c"unknown error code");
        let texts: std::collections::HashSet<_> = codes.clone().map(describe).collect();
        assert_eq!(codes.count(), 20);
        assert_eq!(texts.len(), 20);
        assert_eq!(describe(1), c"unknown error code");
    }

    #[test]
    fn errors_map_to_their_codes() {
        assert_eq!(
            code_of(&Error::invalid("x", "y")),
            SYNCMQ_E_INVALID_ARGUMENT
        );
        assert_eq!(code_of(&Error::closed("q")), SYNCMQ_E_CLOSED);
        assert_eq!(
            code_of(&Error::not_found(syncmq::ObjectKind::Topic, "t")),
            SYNCMQ_E_NOT_FOUND
        );
    }
}
