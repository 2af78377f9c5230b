//! [`Secret`]: bytes that must not leak, the server's token and its TLS
//! key: `Debug` prints only their length, and comparing them takes the
//! same time wherever the first difference is, so a client that guesses a
//! token learns nothing from how fast it is refused.

use std::fmt;

/// Bytes that are never printed and are compared in constant time.
#[derive(Clone)]
pub(super) struct Secret(Vec<u8>);

impl Secret {
    pub(super) fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }

    /// The bytes, for the one place that needs them (the TLS identity, the
    /// client's hello).
    pub(super) fn expose(&self) -> &[u8] {
        &self.0
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `given` is this secret, in time that depends only on the
    /// lengths.
    pub(super) fn matches(&self, given: &[u8]) -> bool {
        constant_time_eq(&self.0, given)
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.matches(&other.0)
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<secret of {} bytes>", self.0.len())
    }
}

/// `a == b` without an early exit: every byte of the longer one is looked
/// at, and the differences are folded together before the one branch at
/// the end. `black_box` keeps the optimiser from turning the loop back
/// into a comparison that stops at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let len = a.len().max(b.len());
    // A length difference is a difference too (and is all that leaks).
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..len {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= std::hint::black_box(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_when_every_byte_and_the_length_match() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
        assert!(!constant_time_eq(b"s3cre", b"s3cret"));
        // Padding with zeros must not make a prefix equal.
        assert!(!constant_time_eq(b"ab", b"ab\0"));
        assert!(!constant_time_eq(b"", b"\0"));
    }

    #[test]
    fn debug_shows_the_length_only() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "<secret of 7 bytes>");
        assert!(secret.matches(b"hunter2"));
        assert!(!secret.matches(b"hunter3"));
    }
}
