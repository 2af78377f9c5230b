//! A damaged block in a table file of the messages keyspace: reads say
//! which key and file are corrupt (not a bare `ChecksumMismatch`), and the
//! queue sets aside only the entries whose messages were in that block and
//! goes on serving the rest, logging each one lost at ERROR.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use syncmq::queue::{FjallStore, Queue, QueueConfig, Space, Store, TopicConfig};
use syncmq::{Error, Message};

const MESSAGES: usize = 2_000;

fn config() -> QueueConfig {
    QueueConfig::new().with_topic(TopicConfig::new("t", ["s"]))
}

/// Keeps every ERROR record of syncmq (lsm-tree logs its own), to see which
/// entries were reported lost.
struct Errors(Mutex<Vec<String>>);

impl log::Log for Errors {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Error && m.target().starts_with("syncmq")
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            self.0.lock().unwrap().push(r.args().to_string());
        }
    }
    fn flush(&self) {}
}

static ERRORS: Errors = Errors(Mutex::new(Vec::new()));

fn body(i: usize) -> Vec<u8> {
    // Distinct, poorly compressible bodies: many data blocks per table.
    let noise: String =
        (0..24)
            .map(|j| (i * 131 + j * 17) % 251)
            .fold(String::new(), |mut s, b| {
                use std::fmt::Write;
                write!(s, "{b:02x}").unwrap();
                s
            });
    format!("message {i:05} {noise}").into_bytes()
}

/// The table files of fjall keyspace `name` in the (closed) queue `dir`.
fn tables(dir: &Path, name: &str) -> Vec<PathBuf> {
    let db = fjall::Database::builder(dir).open().unwrap();
    let ks = db
        .keyspace(name, fjall::KeyspaceCreateOptions::default)
        .unwrap();
    let path = ks.path().join("tables");
    drop((ks, db));
    std::fs::read_dir(path)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

/// Flips 4 bytes in the middle of a data block halfway through the only
/// table of keyspace `name`; returns that table.
fn damage_a_block(dir: &Path, name: &str) -> PathBuf {
    let found = tables(dir, name);
    assert_eq!(found.len(), 1, "one table after a clean close: {found:?}");
    let table = found[0].clone();
    let mut bytes = std::fs::read(&table).unwrap();
    let blocks = data_blocks(&bytes);
    assert!(blocks.len() >= 10, "{} data blocks", blocks.len());
    let (start, len) = blocks[blocks.len() / 2];
    for b in &mut bytes[start + len / 2..start + len / 2 + 4] {
        *b ^= 0x5A;
    }
    std::fs::write(&table, &bytes).unwrap();
    table
}

/// A queue in `dir` with `MESSAGES` messages, closed cleanly: the close
/// writes the memtables to table files.
fn fill(dir: &Path) {
    let queue = Queue::open(dir, config()).unwrap();
    let messages: Vec<Message> = (0..MESSAGES).map(|i| Message::new(body(i))).collect();
    queue.publish("t", &messages).unwrap();
    queue.close().unwrap();
}

/// Offsets of the data sections of the data blocks in a table file: a
/// block header is `LSM\x03`, the type (0: data), a 16-byte checksum, the
/// on-disk and the uncompressed length (u32 LE) and a 4-byte checksum.
fn data_blocks(bytes: &[u8]) -> Vec<(usize, usize)> {
    const HEADER: usize = 4 + 1 + 16 + 4 + 4 + 4;
    (0..bytes.len().saturating_sub(HEADER))
        .filter(|&i| &bytes[i..i + 4] == b"LSM\x03" && bytes[i + 4] == 0)
        .map(|i| {
            let len = u32::from_le_bytes(bytes[i + 21..i + 25].try_into().unwrap());
            (i + HEADER, len as usize)
        })
        .filter(|&(start, len)| len > 0 && start + len <= bytes.len())
        .collect()
}

#[test]
fn a_corrupt_table_block_is_named_and_the_rest_is_still_served() {
    log::set_logger(&ERRORS).unwrap();
    log::set_max_level(log::LevelFilter::Error);
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path());
    assert!(
        ERRORS.0.lock().unwrap().is_empty(),
        "a normal close logs no ERROR"
    );
    let table = damage_a_block(dir.path(), "messages");
    let file_name = table.to_string_lossy().to_string();

    // The store names the space, the keys and the file.
    {
        let store = FjallStore::open(dir.path()).unwrap();
        let err = store
            .scan(Space::Messages, &[], &[0xFF; 12], usize::MAX)
            .unwrap_err();
        match &err {
            Error::Corrupt { key, reason } => {
                assert!(key.starts_with("messages/"), "{err}");
                assert!(reason.contains(&*table.to_string_lossy()), "{err}");
                assert!(reason.contains("damaged"), "{err}");
            }
            other => panic!("expected Error::Corrupt, got {other:?}"),
        }
    }

    // The queue serves every message outside the damaged block.
    let queue = Queue::open(dir.path(), config()).unwrap();
    let sub = queue.subscribe("t", "s").unwrap();
    let mut got = HashSet::new();
    loop {
        let batch = sub.next_batch(100, Some(Duration::ZERO)).unwrap();
        if batch.is_empty() {
            break;
        }
        let ids: Vec<_> = batch.iter().map(|r| r.id).collect();
        for r in batch {
            assert!(got.insert(r.message.body().to_vec()), "delivered once");
        }
        sub.ack(&ids).unwrap();
    }
    let lost = MESSAGES - got.len();
    assert!(lost > 0, "the damaged block held some messages");
    assert!(lost < 100, "only one block's messages are lost: {lost}");
    assert!(got.iter().all(|b| (0..MESSAGES).any(|i| body(i) == *b)));
    assert_eq!(
        sub.stats().unwrap().depth,
        0,
        "set-aside entries are not ready"
    );

    // Each lost entry was reported at ERROR, with its key and the file.
    // (Only this test's: the other test of this file runs alongside.)
    let ours = |errors: &[String]| -> Vec<String> {
        let dir = dir.path().to_string_lossy();
        errors
            .iter()
            .filter(|e| e.contains(&*dir))
            .cloned()
            .collect()
    };
    let errors = ours(&ERRORS.0.lock().unwrap());
    assert_eq!(errors.len(), lost, "{errors:#?}");
    for e in &errors {
        assert!(e.contains("set aside"), "{e}");
        assert!(e.contains("messages/"), "{e}");
        assert!(e.contains(&file_name), "{e}");
    }
    queue.close().unwrap();
    drop((sub, queue));

    // Nothing was deleted: the entries are met (and reported) again.
    let queue = Queue::open(dir.path(), config()).unwrap();
    assert_eq!(queue.stats("t").unwrap()[0].depth, lost as u64);
    let sub = queue.subscribe("t", "s").unwrap();
    assert!(sub
        .next_batch(100, Some(Duration::ZERO))
        .unwrap()
        .is_empty());
    assert_eq!(ours(&ERRORS.0.lock().unwrap()).len(), 2 * lost);
    queue.close().unwrap();
}

#[test]
fn a_corrupt_block_of_queue_entries_fails_with_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path());
    let table = damage_a_block(dir.path(), "queue");

    let queue = Queue::open(dir.path(), config()).unwrap();
    let sub = queue.subscribe("t", "s").unwrap();
    let mut delivered = 0;
    // Entries before the damaged block come out; the positions after it
    // are unknown, so from there each call fails, saying where and why.
    let err = loop {
        match sub.next_batch(100, Some(Duration::ZERO)) {
            Ok(batch) => {
                assert!(!batch.is_empty(), "ended without meeting the damage");
                delivered += batch.len();
                let ids: Vec<_> = batch.iter().map(|r| r.id).collect();
                sub.ack(&ids).unwrap();
            }
            Err(e) => break e,
        }
    };
    assert!(delivered > 0 && delivered < MESSAGES, "{delivered}");
    match &err {
        Error::Corrupt { key, reason } => {
            assert!(key.starts_with("queue/"), "{err}");
            assert!(reason.contains(&*table.to_string_lossy()), "{err}");
        }
        other => panic!("expected Error::Corrupt, got {other:?}"),
    }
    queue.close().unwrap();
}
