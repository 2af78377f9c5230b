//! A damaged journal: corruption in the middle is an `Error::Corrupt`
//! naming the file, with the files left as they were; a torn tail (a
//! crash in the middle of a write) still opens.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use syncmq::queue::{Batch, FjallStore, Space, Store};
use syncmq::Error;

/// Writes `n` batches, each synced, and drops the store without a
/// checkpoint, as a crash would leave it: everything is in the journal.
fn write_batches(dir: &Path, n: u32) {
    let store = FjallStore::open(dir).unwrap();
    for i in 0..n {
        let mut batch = Batch::new();
        batch.put(Space::Queue, i.to_be_bytes().to_vec(), vec![0x42; 200]);
        store.write(batch).unwrap();
        store.sync().unwrap();
    }
}

fn journal(dir: &Path) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jnl"))
        .collect();
    found.sort();
    found.pop().expect("a journal file")
}

/// Offsets just past each batch trailer (end tag, checksum, `FJL\x03`).
fn batch_ends(bytes: &[u8]) -> Vec<usize> {
    (13..=bytes.len())
        .filter(|&i| &bytes[i - 4..i] == b"FJL\x03" && bytes[i - 13] == 3)
        .collect()
}

fn count(store: &FjallStore) -> usize {
    store
        .scan(Space::Queue, &[], &[0xFF; 8], usize::MAX)
        .unwrap()
        .len()
}

#[test]
fn a_corrupt_byte_mid_journal_is_refused_and_the_files_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    write_batches(dir.path(), 200);
    let path = journal(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let ends = batch_ends(&bytes);
    assert!(ends.len() >= 200, "found {} batches", ends.len());
    // The tag of a batch in the middle: 0xEE is no tag at all.
    let at = ends[ends.len() / 2];
    bytes[at] = 0xEE;
    std::fs::write(&path, &bytes).unwrap();

    let err = FjallStore::open(dir.path()).unwrap_err();
    match &err {
        Error::Corrupt { key, .. } => assert!(key.contains(".jnl"), "{err}"),
        other => panic!("expected Error::Corrupt, got {other}"),
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the journal is as it was"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains("syncmq-check"))
        .collect();
    assert!(leftovers.is_empty(), "copies left: {leftovers:?}");
    // Refused again, not silently opened the second time.
    assert!(matches!(
        FjallStore::open(dir.path()),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn a_torn_tail_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    write_batches(dir.path(), 50);
    let path = journal(dir.path());
    let ends = batch_ends(&std::fs::read(&path).unwrap());
    let last = *ends.last().unwrap() as u64;
    // A crash in the middle of the last batch's write.
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(last - 20).unwrap();
    drop(file);
    let store = FjallStore::open(dir.path()).unwrap();
    assert_eq!(count(&store), 49, "every batch but the torn one");
}

#[test]
fn an_intact_journal_opens_with_everything() {
    let dir = tempfile::tempdir().unwrap();
    write_batches(dir.path(), 50);
    let store = FjallStore::open(dir.path()).unwrap();
    assert_eq!(count(&store), 50);
}
