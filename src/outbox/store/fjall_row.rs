//! The stored form of an outbox row in the fjall store, which keeps rows as
//! bytes.
//!
//! One version byte, then the MessagePack of the row's fields, with the
//! message in its own stored form ([`Message::to_bytes`], itself versioned).
//! The id is not in the value: it is the key. Decoding checks the version
//! and rejects random, truncated or trailing bytes with [`Error::Corrupt`]
//! naming the row, never a panic.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::message::Message;
use crate::outbox::record::{from_millis, millis, OutboxRecord};

/// The version byte of rows written by this build.
const ROW_FORMAT_VERSION: u8 = 1;

#[derive(Serialize, Deserialize)]
struct StoredRow {
    #[serde(with = "serde_bytes")]
    message: Vec<u8>,
    created_at_ms: u64,
    attempts: u32,
    last_error: Option<String>,
}

/// The stored form of `record` (without its id).
pub(crate) fn encode(record: &OutboxRecord) -> Result<Vec<u8>> {
    let row = StoredRow {
        message: record.message.to_bytes()?,
        created_at_ms: millis(record.created_at),
        attempts: record.attempts,
        last_error: record.last_error.clone(),
    };
    let mut out = vec![ROW_FORMAT_VERSION];
    rmp_serde::encode::write(&mut out, &row)?;
    Ok(out)
}

/// Reads a row written by [`encode`]; `id` is the row's key.
pub(crate) fn decode(id: u64, bytes: &[u8]) -> Result<OutboxRecord> {
    let corrupt = |reason: String| Error::Corrupt {
        key: format!("outbox row {id}"),
        reason,
    };
    let (&version, rest) = bytes
        .split_first()
        .ok_or_else(|| corrupt("the stored row is empty".into()))?;
    if version != ROW_FORMAT_VERSION {
        return Err(corrupt(format!(
            "row format version {version} is not one this build reads ({ROW_FORMAT_VERSION})"
        )));
    }
    let mut cursor = std::io::Cursor::new(rest);
    let row: StoredRow =
        rmp_serde::decode::from_read(&mut cursor).map_err(|e| corrupt(e.to_string()))?;
    if usize::try_from(cursor.position()).ok() != Some(rest.len()) {
        return Err(corrupt("trailing bytes after the row".into()));
    }
    let message = Message::from_bytes(&row.message).map_err(|e| corrupt(e.to_string()))?;
    Ok(OutboxRecord {
        id,
        message,
        created_at: from_millis(row.created_at_ms),
        attempts: row.attempts,
        last_error: row.last_error,
    })
}

/// The big-endian key of an id, so the store's key order is id order.
pub(crate) fn id_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// The id in a key written by [`id_key`] (the last 8 bytes of longer keys).
pub(crate) fn key_id(key: &[u8]) -> Result<u64> {
    key.len()
        .checked_sub(8)
        .and_then(|start| key.get(start..))
        .and_then(|tail| <[u8; 8]>::try_from(tail).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| Error::Corrupt {
            key: format!("{key:02x?}"),
            reason: "an outbox key is at least 8 bytes".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::record::now_ms;

    fn record() -> OutboxRecord {
        OutboxRecord {
            id: 7,
            message: Message::new(b"hello".to_vec()).with_key("k"),
            created_at: now_ms(),
            attempts: 2,
            last_error: Some("nope".into()),
        }
    }

    #[test]
    fn a_row_survives_the_round_trip() {
        let r = record();
        assert_eq!(decode(7, &encode(&r).unwrap()).unwrap(), r);
    }

    #[test]
    fn damaged_rows_are_corrupt_not_panics() {
        let bytes = encode(&record()).unwrap();
        for bad in [
            Vec::new(),
            vec![99],
            bytes[..bytes.len() - 1].to_vec(),
            [bytes.as_slice(), &[0]].concat(),
        ] {
            match decode(7, &bad) {
                Err(Error::Corrupt { key, .. }) => assert_eq!(key, "outbox row 7"),
                other => panic!("expected Corrupt for {bad:?}, got {other:?}"),
            }
        }
    }

    #[test]
    fn keys_sort_as_ids() {
        assert!(id_key(255) < id_key(256));
        assert_eq!(key_id(&id_key(42)).unwrap(), 42);
        assert_eq!(key_id(&[[0u8; 8], id_key(9)].concat()).unwrap(), 9);
        assert!(key_id(&[1, 2]).is_err());
    }
}
