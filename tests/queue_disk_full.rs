//! The durable queue on a full disk: the error says the disk is full and
//! that the queue must be closed and reopened, and after that (with space
//! freed) every publish that returned `Ok` is there.
//!
//! Runs on a 6 MiB tmpfs of its own, so it needs root (`mount`); without
//! it the test says so and passes without running, except under the test
//! script and in CI, where it fails.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use syncmq::queue::{Queue, QueueConfig, TopicConfig};
use syncmq::{Error, Message};

mod common;

/// A small tmpfs, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(bytes: usize) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}")])
            .arg("tmpfs")
            .arg(dir.path())
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then_some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn config() -> QueueConfig {
    QueueConfig::new().with_topic(TopicConfig::new("t", ["s"]))
}

/// The numbers (first four bytes) of the messages waiting in the queue at
/// `dir`, reopened, read without acks (the disk may be nearly full again).
fn numbers_in(dir: &Path) -> BTreeSet<u32> {
    let queue = Queue::open(dir, config()).unwrap();
    let sub = queue.subscribe("t", "s").unwrap();
    let mut got = BTreeSet::new();
    loop {
        let batch = sub.next_batch(100, Some(Duration::ZERO)).unwrap();
        if batch.is_empty() {
            return got;
        }
        for r in &batch {
            let b = r.message.body();
            got.insert(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        }
    }
}

fn says_disk_full(e: &Error) -> bool {
    let text = e.to_string();
    matches!(e, Error::Storage { .. })
        && text.contains("is full")
        && text.contains("closed and opened again")
}

#[test]
fn a_full_disk_says_so_and_loses_nothing_published() {
    let Some(disk) = SmallDisk::mount(6 << 20) else {
        // CI runs as root: there a skip would hide the test, so it fails.
        assert!(
            !common::required(),
            "cannot mount a tmpfs (the test script runs as root)"
        );
        eprintln!("skipped: cannot mount a tmpfs (needs root)");
        return;
    };
    // Room to free once the disk is full, so that the reopen can work.
    let spare: PathBuf = disk.path().join("spare");
    std::fs::write(&spare, vec![0u8; 2 << 20]).unwrap();
    let dir = disk.path().join("queue");
    let mut published = BTreeSet::new();
    {
        let queue = Queue::open(&dir, config()).unwrap();
        let body = vec![0x5Au8; 4 << 10];
        let mut failure = None;
        for i in 0..10_000u32 {
            let mut b = i.to_be_bytes().to_vec();
            b.extend_from_slice(&body);
            match queue.publish("t", &[Message::new(b)]) {
                Ok(()) => {
                    published.insert(i);
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let failure = failure.expect("a 6 MiB disk fills up");
        eprintln!("first error: {failure}");
        assert!(says_disk_full(&failure), "first error: {failure}");
        // Every later write says the same, not a bare `Poisoned`, even
        // with space free again.
        std::fs::remove_file(&spare).unwrap();
        let again = queue
            .publish("t", &[Message::new(b"later".to_vec())])
            .unwrap_err();
        eprintln!("later error: {again}");
        assert!(says_disk_full(&again), "later error: {again}");
        // Close returns (its sync may fail the same way).
        let _ = queue.close();
    }
    assert!(!published.is_empty());
    let got = numbers_in(&dir);
    let lost: Vec<_> = published.difference(&got).collect();
    assert!(
        lost.is_empty(),
        "publishes that returned Ok and are gone: {lost:?}"
    );
}

/// Free bytes on the file system holding `path`.
fn free_bytes(path: &Path) -> u64 {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c` is a valid C string and `stat` a plain struct for
    // statvfs to fill.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &raw mut stat) }, 0);
    stat.f_bavail * stat.f_frsize
}

/// A clean close starts a fresh journal (so that the next open has nothing
/// to replay) by padding the old one past fjall's rotation point: tens of
/// MB. With no room for that, the close still succeeds, having lost
/// nothing: the padding is an optimisation, not part of the close.
#[test]
fn a_close_without_room_for_a_fresh_journal_succeeds_and_keeps_everything() {
    let Some(disk) = SmallDisk::mount(96 << 20) else {
        assert!(
            !common::required(),
            "cannot mount a tmpfs (the test script runs as root)"
        );
        eprintln!("skipped: cannot mount a tmpfs (needs root)");
        return;
    };
    let dir = disk.path().join("queue");
    let queue = Queue::open(&dir, config()).unwrap();
    let sub = queue.subscribe("t", "s").unwrap();
    // About 20 MB of journal, all acked but the first message of each
    // batch: past the 16 MiB from which a close starts a fresh journal.
    // The bodies are noise, which fjall's journal cannot compress.
    let mut x = 0x2545_F491_4F6C_DD1D_u64;
    let mut noise = move || {
        (0..4 << 10)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[0]
            })
            .collect::<Vec<u8>>()
    };
    let mut kept = BTreeSet::new();
    for round in 0..50u32 {
        let batch: Vec<Message> = (0..100u32)
            .map(|i| {
                let mut b = (round * 100 + i).to_be_bytes().to_vec();
                b.extend_from_slice(&noise());
                Message::new(b)
            })
            .collect();
        queue.publish("t", &batch).unwrap();
        let got = sub.next_batch(100, Some(Duration::ZERO)).unwrap();
        let ids: Vec<_> = got.iter().skip(1).map(|r| r.id).collect();
        sub.ack(&ids).unwrap();
        let first = got[0].message.body();
        kept.insert(u32::from_be_bytes([first[0], first[1], first[2], first[3]]));
    }
    // Room for the close's flush of the memtables, not for the padding.
    let room = 16u64 << 20;
    let spare = free_bytes(disk.path()).saturating_sub(room);
    let spare = usize::try_from(spare).unwrap();
    std::fs::write(disk.path().join("spare"), vec![0u8; spare]).unwrap();
    drop(sub);
    queue
        .close()
        .expect("the close succeeds without room for the padding");
    drop(queue);
    std::fs::remove_file(disk.path().join("spare")).unwrap();
    assert_eq!(
        numbers_in(&dir),
        kept,
        "the unacked messages after the reopen"
    );
}
