//! [`OutboxRecord`]: one row of the outbox, and the millisecond clock every
//! store stamps rows with.

use std::time::{Duration, SystemTime};

use crate::message::Message;

/// One row of the outbox: a message and what has happened to it so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRecord {
    /// The row's id: assigned by the store, unique and increasing in the
    /// order rows were added. Stable across restarts.
    pub id: u64,
    /// The message to send.
    pub message: Message,
    /// When the row was added (the adding process's clock, to the
    /// millisecond).
    pub created_at: SystemTime,
    /// How many sends of this row failed for a reason of the row's own.
    pub attempts: u32,
    /// The error of the last failed send, if any.
    pub last_error: Option<String>,
}

/// Milliseconds since the Unix epoch, 0 for times before it.
pub(crate) fn millis(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, crate::millis::to_ms)
}

/// The time `ms` milliseconds after the Unix epoch.
pub(crate) fn from_millis(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

/// The current time truncated to milliseconds, so a time compares equal
/// after a round trip through any store.
pub(crate) fn now_ms() -> SystemTime {
    from_millis(millis(SystemTime::now()))
}
