//! The engine's key layout. Every integer is big-endian, so byte order is
//! numeric order and a range scan of a queue returns it in queue order.
//!
//! ```text
//! messages  topic:u32 seq:u64                 -> Message::to_bytes
//! queue     sub:u32 priority:u8 position:u64  -> seq:u64
//! dead      sub:u32 position:u64              -> seq:u64 deliveries:u32
//!           (the dead letters)
//! attempts  sub:u32 priority:u8 position:u64  -> deliveries:u32 (of an
//!                                              entry taken and not yet acked
//!                                              whose count is not what
//!                                              meta/taken says)
//! refs      topic:u32 seq:u64                 -> subscribers left:u32
//! dedupe    topic:u32 key bytes               -> seq:u64
//! stats     sub:u32                           -> entries, dead letters,
//!                                              expired: u64 each
//! meta      "topic/" name                     -> TopicRecord (MessagePack)
//!           "ids"                             -> next topic id, next subscriber id
//!           "seq/" topic:u32                  -> reserved sequence high-water mark
//!           "app/" key                        -> application metadata
//!           "taken/" sub:u32                  -> per priority, the position
//!                                              below which every entry was
//!                                              delivered at least once: u64 each
//! ```
//!
//! Positions and message sequences come from one counter per topic, which
//! is never reused (see `Topic::alloc_seq`), so a key deleted with a
//! weak delete is never written again.

use super::entry::EntryId;
use super::store::Space;
use crate::error::{Error, Result};

/// The longest key fjall stores (lsm-tree panics on a longer one).
pub const MAX_STORED_KEY: usize = u16::MAX as usize;

/// The longest dedupe key (`Message::with_key`) a queue accepts: the stored
/// dedupe key is the topic id (4 bytes) and then the key.
pub const MAX_MESSAGE_KEY: usize = MAX_STORED_KEY - 4;

/// The longest application metadata key (`Queue::set_meta`): stored after
/// the 4-byte `app/` prefix.
pub const MAX_META_KEY: usize = MAX_STORED_KEY - 4;

/// Refuses a string that would make a stored key longer than fjall allows,
/// before anything is written: fjall panics on such a key instead of
/// returning an error.
pub fn check_len(field: impl Into<String>, what: &str, value: &str, max: usize) -> Result<()> {
    if value.len() > max {
        return Err(Error::invalid(
            field,
            format!(
                "the {what} is {} bytes; the most the queue stores is {max}",
                value.len()
            ),
        ));
    }
    Ok(())
}

pub fn message(topic: u32, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(12);
    k.extend_from_slice(&topic.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub fn queue(sub: u32, priority: u8, position: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(13);
    k.extend_from_slice(&sub.to_be_bytes());
    k.push(priority);
    k.extend_from_slice(&position.to_be_bytes());
    k
}

/// The entry a queue key names (with no delivery), `None` when `key` is
/// not one.
pub fn entry_id(key: &[u8]) -> Option<EntryId> {
    let (&priority, position) = key.get(4..)?.split_first()?;
    Some(EntryId {
        priority,
        position: u64::from_be_bytes(position.try_into().ok()?),
        delivery: 0,
    })
}

/// The first key after every queue key of `(sub, priority)`.
pub fn queue_end(sub: u32, priority: u8) -> Vec<u8> {
    match priority.checked_add(1) {
        Some(p) => queue(sub, p, 0),
        None => sub_end(sub),
    }
}

pub fn dead_letter(sub: u32, position: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(12);
    k.extend_from_slice(&sub.to_be_bytes());
    k.extend_from_slice(&position.to_be_bytes());
    k
}

/// The first key of subscriber `sub` in a space keyed by subscriber.
pub fn sub_start(sub: u32) -> Vec<u8> {
    sub.to_be_bytes().to_vec()
}

/// The first key after every key of subscriber `sub`.
pub fn sub_end(sub: u32) -> Vec<u8> {
    let mut k = sub.to_be_bytes().to_vec();
    k.extend_from_slice(&[0xFF; 16]);
    k
}

pub fn dedupe(topic: u32, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + key.len());
    k.extend_from_slice(&topic.to_be_bytes());
    k.extend_from_slice(key.as_bytes());
    k
}

pub fn stats(sub: u32) -> Vec<u8> {
    sub.to_be_bytes().to_vec()
}

pub fn meta_topic(name: &str) -> Vec<u8> {
    [b"topic/".as_slice(), name.as_bytes()].concat()
}

pub const META_TOPIC_PREFIX: &[u8] = b"topic/";
pub const META_TOPIC_END: &[u8] = b"topic0"; // '0' follows '/'
pub const META_IDS: &[u8] = b"ids";

pub fn meta_seq(topic: u32) -> Vec<u8> {
    [b"seq/".as_slice(), &topic.to_be_bytes()].concat()
}

pub fn meta_taken(sub: u32) -> Vec<u8> {
    [b"taken/".as_slice(), &sub.to_be_bytes()].concat()
}

pub fn meta_app(key: &str) -> Vec<u8> {
    [b"app/".as_slice(), key.as_bytes()].concat()
}

/// Prints a key readably for errors: the space and the bytes in hex.
pub fn show(space: Space, key: &[u8]) -> String {
    use std::fmt::Write;
    let mut shown = format!("{}/", space.name());
    for b in key {
        // Writing to a String cannot fail.
        let _ = write!(shown, "{b:02x}");
    }
    shown
}

/// Reads a big-endian `u64` at `at` in `bytes`, or says which key is corrupt.
pub fn read_u64(bytes: &[u8], at: usize, space: Space, key: &[u8]) -> Result<u64> {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| {
            corrupt(
                space,
                key,
                format!(
                    "expected 8 bytes at offset {at}, the value has {}",
                    bytes.len()
                ),
            )
        })
}

/// Reads a big-endian `u32` at `at` in `bytes`, or says which key is corrupt.
pub fn read_u32(bytes: &[u8], at: usize, space: Space, key: &[u8]) -> Result<u32> {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| {
            corrupt(
                space,
                key,
                format!(
                    "expected 4 bytes at offset {at}, the value has {}",
                    bytes.len()
                ),
            )
        })
}

pub fn corrupt(space: Space, key: &[u8], reason: impl Into<String>) -> Error {
    Error::Corrupt {
        key: show(space, key),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_endian_keys_sort_numerically() {
        assert!(queue(1, 0, 255) < queue(1, 0, 256));
        assert!(queue(1, 0, u64::MAX) < queue(1, 1, 0));
        assert!(queue(1, 0, 7) < queue_end(1, 0));
        assert!(queue(1, 255, u64::MAX) < queue_end(1, 255));
        assert!(queue_end(1, 255) < queue(2, 0, 0));
        assert!(message(1, 9) < message(1, 10));
        assert!(dead_letter(3, u64::MAX) < sub_end(3));
        assert!(sub_end(3) < sub_start(4));
    }

    #[test]
    fn a_queue_key_names_its_entry() {
        let id = entry_id(&queue(7, 2, 300)).unwrap();
        assert_eq!((id.priority, id.position, id.delivery), (2, 300, 0));
        assert!(entry_id(&queue(7, 2, 300)[..12]).is_none());
        assert!(entry_id(&[queue(7, 2, 300), vec![0]].concat()).is_none());
    }
}
