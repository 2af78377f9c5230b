//! [`FjallStore`]: the [`Store`] trait on a fjall 3 database, one keyspace
//! per [`Space`], with what fjall leaves to its user: syncing without
//! blocking writers, refusing a journal damaged before its end, naming a
//! damaged table block, saying that the disk is full, and a close that
//! leaves nothing to replay.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::dir_lock::DirLock;
use super::keys;
use super::store::{Batch, KeyValue, Op, Space, Store};
use crate::error::{Error, Result};
use crate::thread::lock;

/// The memtable size of each keyspace (fjall's default is 64 MiB each):
/// bounds the queue's memory whatever the backlog. A publish writes to
/// three keyspaces (the message, its entries, the counters), each with an
/// active memtable and one being written to a table, so this is most of
/// the engine's memory: 4 MiB kept a 1,000,000-message backlog's fill and
/// drain under 64 MB of peak RSS (16 MiB: 147 MB), at the same rate.
const MEMTABLE_BYTES: u64 = 4 << 20;

/// fjall's block cache (its default is 32 MiB). A queue reads each entry
/// and message about once, soon after it was written, so a large cache
/// buys little; the OS page cache keeps recent tables anyway.
const CACHE_BYTES: u64 = 8 << 20;

/// fjall's journals on disk (its default is 512 MiB): past this it writes
/// the memtables that keep the oldest journal alive to tables, which bounds
/// what an open after a crash replays.
const MAX_JOURNAL_BYTES: u64 = 128 << 20;

/// Written to every keyspace by [`Store::checkpoint`] and hidden from
/// `get` and `scan`. The engine's keys start with a topic or subscriber id,
/// and id `u32::MAX` is never reached.
const CHECKPOINT_KEY: &[u8] = b"\xFF\xFF\xFF\xFFsyncmq checkpoint";

/// How long [`Store::checkpoint`] waits for fjall to write its memtables.
const CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(30);

/// Written (and weakly deleted again) by [`Store::checkpoint`] to take
/// fjall's journal past its rotation point; hidden like [`CHECKPOINT_KEY`].
const PAD_KEY: &[u8] = b"\xFF\xFF\xFF\xFFsyncmq journal padding";

/// Where fjall rotates its journal: at the next memtable flush once the
/// active journal holds more than this many bytes (fjall 3.1's constant).
const FJALL_ROTATES_AT: u64 = 64_000_000;

/// Past fjall's rotation point by this much, whatever the batch headers and
/// lz4's framing add or take away.
const PAD_MARGIN: u64 = 1 << 20;

/// The size of each padding value: what may spill into the fresh journal
/// when fjall rotates during the padding.
const PAD_VALUE_BYTES: usize = 256 << 10;

/// A clean close rotates a journal with at least this much data in it (see
/// "A clean close starts a fresh journal"). Measured on one disk: the
/// replay costs the next open 20 to 30 ms per MB of journal (1.0 s for
/// 54 MB after a million messages, 0.3 s for 9 MB); the rotation costs the
/// close about 60 ms plus 4 ms per MB of padding (0.27 s from 9 MB). Below
/// about 11 MB the close would lose more than the open gains.
const ROTATE_JOURNAL_AT: u64 = 16 << 20;

/// How many bytes written (by [`journal_size`]'s count) the journal found
/// last is trusted for, with only a lookup of the next journal's name per
/// sync: a quarter of the 64,000,000 bytes after which fjall rotates, so
/// that no second rotation (which could have removed that next journal
/// again) can hide in it, even if the count is off by a few times.
const RELIST_BYTES: u64 = 16 << 20;

/// The active journal, as [`FjallStore::sync`] last found it.
struct Journal {
    id: u64,
    file: File,
    /// `FjallStore::journal_bytes` when it was found.
    found_at: u64,
}

/// A [`Store`] on disk, in a fjall 3 database, one keyspace per [`Space`]:
/// the store of [`Queue::open`](super::Queue::open).
///
/// A [`Batch`] becomes one fjall `WriteBatch`, so it is atomic across
/// keyspaces. The database is opened with manual journal persistence:
/// `write` only appends to fjall's journal buffer, `flush` hands it to the
/// OS and `sync` calls `fdatasync`, so the engine decides when to pay for
/// durability (once per group commit).
///
/// # Syncing without blocking writers
///
/// fjall's own `persist(SyncData)` holds the journal's write lock for the
/// whole fsync, so every publisher that arrives meanwhile waits, and a group
/// commit round gathers almost nobody. `sync` therefore flushes the journal
/// buffer to the OS under that lock (`persist(Buffer)`, microseconds) and
/// then calls `fdatasync` on its own handle of the active journal file
/// (`<dir>/<id>.jnl`, the highest id), outside the lock, while writers go
/// on appending. That covers every batch written before the call: they are
/// in that file's page cache, or in an older journal, which fjall synced
/// (`SyncAll`) when it rotated away from it. If no journal file can be
/// found or opened, `sync` falls back to fjall's `persist(SyncData)`.
///
/// Finding the active journal costs one failed lookup per sync: fjall
/// rotates from `<id>.jnl` by syncing it and creating `<id + 1>.jnl`, so
/// while that name does not exist the journal found last is still the
/// active one. A second rotation could remove `<id + 1>.jnl` again, but it
/// needs fjall's 64,000,000 bytes of journal first, so the directory is
/// listed again after every 16 MiB written (`RELIST_BYTES`).
/// Weak deletes are fjall's `remove_weak`.
///
/// # One owner at a time
///
/// One process at a time may open a directory: the store locks
/// `syncmq.lock` in it, and writes its pid there, before it touches any
/// file, and holds the lock until it is dropped. A second open (in another
/// process, or in this one) is an [`Error::DirectoryInUse`] naming the
/// directory and the owner's pid, and changes nothing in the directory.
/// A directory fjall itself reports as locked (a program other than syncmq
/// has it) is the same error without a pid.
///
/// # A corrupt journal is refused, a torn tail is not
///
/// fjall has one recovery mode: at the first journal entry it cannot
/// decode it truncates the file there and opens, which is right for a torn
/// tail (a crash in the middle of a write) and silently loses every later
/// batch when the damage is in the middle. Every batch fjall writes ends
/// in a trailer (end tag, checksum, the magic `FJL\x03`), so before fjall
/// opens, [`FjallStore::open`] finds where the last complete trailer of
/// each journal ends and keeps a copy of the file (`<id>.jnl.syncmq-check`,
/// removed once the open succeeded). If fjall then cut a journal shorter
/// than that, complete batches were behind the damage: the database is
/// closed, the copy put back, and the open fails with [`Error::Corrupt`]
/// naming the file; nothing is lost, nothing is changed. A cut after the
/// last complete trailer is a torn tail (or fjall's preallocated zeros),
/// and the open goes on. The cost is a copy of the journals' data (at most
/// the 128 MiB bound below, usually one active journal) on each open. A
/// torn write that left a stale but whole trailer after a hole
/// (out-of-order writeback of unsynced pages at a power loss) is refused
/// too: visibly, never a silent truncation. When no
/// copy can be made (a full disk), the open goes on without it and a cut is
/// still refused, but the cut bytes are then gone; the error says so.
///
/// # A corrupt table block
///
/// fjall checks every block it reads from a table file against its
/// checksum and answers a damaged one with a bare `ChecksumMismatch`
/// (or a bad header, a failed decompression), naming neither key nor file.
/// `get` and `scan` turn that into an [`Error::Corrupt`] naming the space
/// and key (`messages/<hex>`) or the key range still to be read, and the
/// table files whose key range covers them (fjall does not say which block
/// of which file failed). Nothing is changed on disk. Keys in the file's
/// other blocks are still read, so the engine sets aside only the entries
/// whose messages were in the damaged block (see
/// [`Subscriber::next_batch`](super::Subscriber::next_batch)). Other
/// read failures are an [`Error::Storage`] naming the key.
///
/// # A full disk
///
/// When a write fails (the disk is full, ENOSPC, or any other I/O error),
/// fjall refuses every later write with a bare `Poisoned`, even once space
/// is free: it cannot tell what of the failed write reached the disk. So
/// every error from then on is an [`Error::Storage`] that says what the
/// first failure was ("the disk under ... is full") and that the queue must
/// be closed and opened again, after freeing space; the open recovers from
/// the journal, and every publish that returned `Ok` before is there. When
/// the first failure was in one of fjall's background flushes, which no
/// caller sees, the store writes a small probe file to find out whether
/// the disk is full.
///
/// # A clean close leaves nothing to replay
///
/// fjall does not write its memtables to tables when the database is
/// dropped, so every open would read back and re-apply each journal still
/// on disk: up to 512 MiB of them, whatever is queued, 9 s after a million
/// messages. [`Store::checkpoint`] (called by
/// [`Queue::close`](super::Queue::close)) therefore seals every keyspace's
/// memtable and waits until fjall has written them
/// to tables. An open skips the journal entries of a keyspace up to the
/// newest entry in its tables; a queue whose entries were all acked flushes
/// to no table at all (the weak deletes cancel the puts), which would make
/// the open replay all of it, so the checkpoint first writes a marker key
/// into every keyspace (hidden from `get` and `scan`). fjall then deletes
/// the sealed journals; the active one is kept (see below). After a crash,
/// open replays what was not yet in tables: at most 128 MiB of journal
/// (`MAX_JOURNAL_BYTES`; fjall writes the memtables that pin older
/// journals to tables past that).
///
/// # A clean close starts a fresh journal
///
/// Even when every entry is in tables, fjall reads its whole active journal
/// (up to 64 MB) at each open, with a keyspace lookup per item before it
/// can skip it: about 0.9 s of a 1.0 s reopen after a million messages
/// published and acked. fjall offers no call to start a new journal; it
/// rotates only when a memtable is flushed while the active journal holds
/// more than 64,000,000 bytes. So when the checkpoint finds at least
/// 16 MiB in the active journal (`ROTATE_JOURNAL_AT`), it appends padding
/// up to that point (values written and weakly deleted again, under a key
/// hidden like the marker, so no table keeps them) and flushes the `meta`
/// keyspace, which rotates the journal; fjall deletes the old one, as
/// everything in it is in tables. A last marker then goes into the fresh
/// journal and a table, so the journal carries the newest sequence number
/// (fjall recovers it at open from the keyspaces only when a journal
/// exists). Nothing about crash recovery changes: a crash during the
/// padding leaves padding in the journal, which the open replays and
/// `get` and `scan` never show; the old journal stays until fjall deleted
/// it, and is replayed like any other.
pub struct FjallStore {
    db: Database,
    spaces: Vec<Keyspace>,
    dir: PathBuf,
    /// Our own handle on the active journal file, as last found.
    journal: Mutex<Option<Journal>>,
    /// An upper bound on the bytes `write` put in fjall's journals so far:
    /// see "Syncing without blocking writers".
    journal_bytes: AtomicU64,
    /// The first I/O failure, which fjall answers by refusing every later
    /// write (`Poisoned`): said again in those later errors.
    first_failure: Mutex<Option<String>>,
    /// Held until the store is dropped, after fjall's own files are closed
    /// (fields drop in order): see "One owner at a time".
    _owner: DirLock,
}

impl std::fmt::Debug for FjallStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallStore").finish_non_exhaustive()
    }
}

fn storage(what: &str) -> impl Fn(fjall::Error) -> Error + '_ {
    move |e| Error::storage(format!("fjall: {what}"), e)
}

impl FjallStore {
    /// Opens (or creates) the database in directory `path`.
    ///
    /// # Errors
    ///
    /// [`Error::DirectoryInUse`] when another process (or another open in
    /// this one) has it, with that process's pid when known;
    /// [`Error::Storage`] when fjall cannot open it: the directory is not
    /// writable, the files are damaged;
    /// [`Error::Corrupt`] naming the journal file when it is damaged before
    /// its end (see the type's docs; the files are left as they were).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        // Before anything reads or copies a journal: see "One owner at a
        // time".
        let owner = DirLock::acquire(path)?;
        // See "A corrupt journal is refused, a torn tail is not".
        let journals = guard_journals(path)?;
        let opened = Database::builder(path)
            .cache_size(CACHE_BYTES)
            .manual_journal_persist(true)
            .max_journaling_size(MAX_JOURNAL_BYTES)
            .worker_threads(crate::fjall_workers::worker_threads())
            .open();
        let cut = journals.iter().find(|j| j.was_cut());
        let db = match opened {
            Ok(db) if cut.is_none() => {
                journals.iter().for_each(Guarded::discard);
                db
            }
            opened => {
                // Close the database before putting back what fjall cut
                // (every arm drops it).
                let error = match (cut, opened) {
                    (Some(j), _) => j.corrupt(),
                    (None, Err(fjall::Error::Locked)) => Error::DirectoryInUse {
                        dir: path.to_path_buf(),
                        pid: None,
                    },
                    (None, Err(e)) => Error::storage(format!("fjall: open {}", path.display()), e),
                    // Not reached: the arm above took an open without a cut.
                    (None, Ok(_)) => Error::storage_reason(
                        format!("fjall: open {}", path.display()),
                        "opened, yet refused",
                    ),
                };
                journals.iter().for_each(Guarded::restore);
                return Err(error);
            }
        };
        let mut spaces = Vec::with_capacity(Space::ALL.len());
        for space in Space::ALL {
            spaces.push(
                db.keyspace(space.name(), || {
                    KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES)
                })
                .map_err(storage("open keyspace"))?,
            );
        }
        Ok(FjallStore {
            db,
            spaces,
            dir: path.to_path_buf(),
            journal: Mutex::new(None),
            journal_bytes: AtomicU64::new(0),
            first_failure: Mutex::new(None),
            _owner: owner,
        })
    }

    /// Writes the checkpoint marker to keyspaces `spaces`, syncs, and waits
    /// until fjall has written their memtables to tables: false when it
    /// gave up waiting (the journal still has it all).
    fn seal_and_flush(&self, spaces: &[Keyspace]) -> Result<bool> {
        let mut wb = self.db.batch();
        for ks in spaces {
            wb.insert(ks, CHECKPOINT_KEY, [1u8]);
        }
        wb.commit()
            .map_err(|e| self.fail("write checkpoint marker", e))?;
        self.sync()?;
        for ks in spaces {
            ks.rotate_memtable()
                .map_err(|e| self.fail("rotate memtable", e))?;
        }
        // fjall has no notice for "flushed"; its flush workers finish in
        // milliseconds, so poll, and give up (the journal still has it all)
        // rather than hang if they cannot.
        let deadline = Instant::now() + CHECKPOINT_TIMEOUT;
        while spaces.iter().any(|ks| ks.sealed_memtable_count() > 0) {
            // A flush that failed poisons the database: this says why.
            self.flush()?;
            if Instant::now() >= deadline {
                log::warn!(
                    "fjall: memtables of {} not written to tables within {CHECKPOINT_TIMEOUT:?}; \
                     the next open replays them from the journal",
                    self.dir.display()
                );
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(true)
    }

    /// Appends about `bytes` of journal that leaves nothing behind: values
    /// that lz4 cannot shrink (fjall compresses large journal items), each
    /// weakly deleted right after, so that a flush writes neither to a
    /// table. One [`PAD_VALUE_BYTES`] value at a time bounds the memory.
    /// Stops early when fjall rotated journal `id` meanwhile: a memtable of
    /// the padding filled up and its flush rotated the journal.
    fn pad_journal(&self, id: u64, bytes: u64) -> Result<()> {
        let meta = self.space(Space::Meta);
        let mut x = 0x9E37_79B9_7F4A_7C15_u64;
        let mut value = vec![0u8; PAD_VALUE_BYTES];
        let mut written = 0u64;
        let next = self.journal_path(id + 1);
        while written < bytes && !next.exists() {
            for chunk in value.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let n = chunk.len();
                chunk.copy_from_slice(&x.to_le_bytes()[..n]);
            }
            // Counted, as `write` does: see "Syncing without blocking
            // writers".
            self.journal_bytes
                .fetch_add(2 * PAD_VALUE_BYTES as u64, Ordering::AcqRel);
            let mut wb = self.db.batch();
            wb.insert(meta, PAD_KEY, value.as_slice());
            wb.commit()
                .map_err(|e| self.fail("write journal padding", e))?;
            let mut wb = self.db.batch();
            wb.remove_weak(meta, PAD_KEY);
            wb.commit()
                .map_err(|e| self.fail("write journal padding", e))?;
            written += PAD_VALUE_BYTES as u64;
        }
        Ok(())
    }

    /// See "A clean close starts a fresh journal": the padding takes
    /// journal `id`, holding `data` bytes, past fjall's rotation point and
    /// the flush of its keyspace rotates it (the other keyspaces have
    /// nothing unflushed, so fjall deletes the old journal); a second flush
    /// leaves a marker with the newest sequence number in the fresh journal
    /// and in a table.
    fn start_fresh_journal(&self, id: u64, data: u64) -> Result<()> {
        self.pad_journal(id, FJALL_ROTATES_AT.saturating_sub(data) + PAD_MARGIN)?;
        let meta = std::slice::from_ref(self.space(Space::Meta));
        if self.seal_and_flush(meta)? {
            self.seal_and_flush(meta)?;
        }
        Ok(())
    }

    /// Bytes in fjall's memtables, not yet written to tables: what an open
    /// after a crash would replay from the journal. Right after
    /// [`open`](Self::open) it is what that open replayed: 0 after a clean
    /// `Queue::close` (see "A clean close leaves nothing to replay").
    pub fn memtable_bytes(&self) -> u64 {
        self.db.write_buffer_size()
    }

    /// The error for fjall's failure `e` of operation `what`. See "A full
    /// disk" in the type's docs.
    fn fail(&self, what: &str, e: fjall::Error) -> Error {
        if let Some(io) = io_error(&e) {
            let cause = self.note_io(io);
            return Error::storage(format!("fjall: {what}: {cause}; {AFTER_FAILURE}"), e);
        }
        if !matches!(e, fjall::Error::Poisoned) {
            return Error::storage(format!("fjall: {what}"), e);
        }
        // fjall says only `Poisoned`; the cause is an earlier failure, which
        // a background flush may have met without any caller seeing it.
        let mut first = lock(&self.first_failure);
        if first.is_none() {
            // Kept, so that later errors still say it once space is free.
            *first = self.probe_disk_full();
        }
        let cause = first
            .clone()
            .unwrap_or_else(|| "an earlier I/O failure (see fjall's log)".to_string());
        Error::storage(
            format!("fjall: {what}: the store refuses writes since {cause}; {AFTER_FAILURE}"),
            e,
        )
    }

    /// The error for an I/O failure of ours on the store's files.
    fn fail_io(&self, what: &str, io: std::io::Error) -> Error {
        let cause = self.note_io(&io);
        Error::storage(format!("fjall: {what}: {cause}; {AFTER_FAILURE}"), io)
    }

    /// What an I/O failure means for the store; the first one is remembered.
    fn note_io(&self, io: &std::io::Error) -> String {
        let cause = if is_disk_full(io) {
            format!("the disk under {} is full ({io})", self.dir.display())
        } else {
            format!("an I/O error under {} ({io})", self.dir.display())
        };
        lock(&self.first_failure).get_or_insert_with(|| cause.clone());
        cause
    }

    /// Writes a small file next to the database to see whether the disk is
    /// full: the cause of a `Poisoned` no caller saw coming.
    fn probe_disk_full(&self) -> Option<String> {
        let path = self.dir.join(".syncmq-space-probe");
        let result = std::fs::write(&path, vec![0u8; 64 << 10]);
        // Nothing to do if the probe cannot be removed: it is 64 KiB, and
        // the next probe overwrites it.
        let _ = std::fs::remove_file(&path);
        match result {
            Err(io) if is_disk_full(&io) => Some(format!(
                "the disk under {} is full ({io})",
                self.dir.display()
            )),
            _ => None,
        }
    }

    fn space(&self, space: Space) -> &Keyspace {
        // `spaces` is built from `Space::ALL`, in the enum's order.
        &self.spaces[space as usize]
    }

    /// The id of the newest journal file, `<id>.jnl`, in the directory.
    fn active_journal_id(&self) -> Option<u64> {
        std::fs::read_dir(&self.dir)
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".jnl")?
                    .parse::<u64>()
                    .ok()
            })
            .max()
    }

    /// `fdatasync` on the active journal through our own handle; false when
    /// it could not be done that way.
    ///
    /// The journal found last is used while `<id + 1>.jnl` does not exist
    /// and fewer than [`RELIST_BYTES`] were written since it was found;
    /// otherwise the directory is listed for the highest id. Neither touches
    /// the journal's inode: a `stat` of the journal while fjall appends to
    /// it made the `fdatasync` after it slower (a lone durable publisher did
    /// 3,100 to 3,300 msgs/s with two `stat`s per sync, 4,100 to 4,400
    /// listing the directory instead).
    fn sync_active_journal(&self) -> Result<bool> {
        let mut cached = lock(&self.journal);
        let written = self.journal_bytes.load(Ordering::Acquire);
        let current = cached.as_ref().is_some_and(|j| {
            written - j.found_at < RELIST_BYTES
                && matches!(self.journal_path(j.id + 1).try_exists(), Ok(false))
        });
        if !current {
            let Some(id) = self.active_journal_id() else {
                return Ok(false);
            };
            match File::open(self.journal_path(id)) {
                Ok(file) => {
                    *cached = Some(Journal {
                        id,
                        file,
                        found_at: written,
                    });
                }
                Err(_) => return Ok(false), // rotated away meanwhile
            }
        }
        if let Some(j) = cached.as_ref() {
            j.file
                .sync_data()
                .map_err(|e| self.fail_io(&format!("sync journal {}.jnl", j.id), e))?;
            return Ok(true);
        }
        Ok(false)
    }

    fn journal_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id}.jnl"))
    }
}

/// An upper bound on the bytes `batch` adds to fjall's journal: what fjall
/// may compress counted as if it did not, and a generous allowance per
/// entry for its framing.
fn journal_size(batch: &Batch) -> u64 {
    const PER_OP: u64 = 64;
    batch
        .ops
        .iter()
        .map(|op| match op {
            Op::Put(_, key, value) => key.len() + value.len(),
            Op::Delete(_, key) | Op::DeleteWeak(_, key) => key.len(),
        })
        .map(|n| n as u64 + PER_OP)
        .sum::<u64>()
        + PER_OP
}

impl FjallStore {
    /// The error for fjall's failure `e` to read the keys `lo..=hi`
    /// (`lo..hi` unless `inclusive`) of `space`: an [`Error::Corrupt`]
    /// naming them and the table files that hold them when the stored bytes
    /// are damaged, an [`Error::Storage`] naming them otherwise. See "A
    /// corrupt table block" in the type's docs.
    fn read_failure(
        &self,
        space: Space,
        lo: &[u8],
        hi: &[u8],
        inclusive: bool,
        e: fjall::Error,
    ) -> Error {
        let what = if inclusive && lo == hi {
            keys::show(space, lo)
        } else {
            let end = if inclusive { "..=" } else { ".." };
            format!("{}{end}{}", keys::show(space, lo), keys::show(space, hi))
        };
        if !is_damage(&e) {
            return Error::storage(format!("fjall: read {what}"), e);
        }
        let tables = self.tables_holding(space, lo, hi, inclusive);
        let files = if tables.is_empty() {
            format!(
                "one of the table files under {}",
                self.space(space).path().join("tables").display()
            )
        } else {
            format!("table file {}", tables.join(" or "))
        };
        Error::Corrupt {
            key: what,
            reason: format!(
                "a block of {files} is damaged ({e}); the file is left as it is, \
                 and keys in its other blocks are still read"
            ),
        }
    }

    /// The paths of the tables of `space` whose key range meets the keys
    /// asked for. fjall's errors do not say which file failed; its trees
    /// are reachable only through `#[doc(hidden)]` fields (stable within
    /// fjall 3.1, pinned by Cargo.lock), so this is a hint for the operator.
    fn tables_holding(&self, space: Space, lo: &[u8], hi: &[u8], inclusive: bool) -> Vec<String> {
        use fjall::AbstractTree;
        let version = self.space(space).tree.current_version();
        version
            .iter_tables()
            .filter(|t| {
                let range = &t.metadata.key_range;
                let below_hi = if inclusive {
                    &**range.min() <= hi
                } else {
                    &**range.min() < hi
                };
                below_hi && &**range.max() >= lo
            })
            .map(|t| t.path.display().to_string())
            .collect()
    }
}

/// True when fjall could not decode stored bytes (a table block that fails
/// its checksum, a bad block header, a truncated file), as opposed to an
/// I/O failure of the disk.
fn is_damage(e: &fjall::Error) -> bool {
    use fjall::LsmError;
    match e {
        fjall::Error::Storage(inner) => match inner {
            LsmError::ChecksumMismatch { .. }
            | LsmError::InvalidHeader(_)
            | LsmError::InvalidTrailer
            | LsmError::InvalidTag(_)
            | LsmError::Decompress(_)
            | LsmError::Utf8(_) => true,
            LsmError::Io(io) => is_truncated(io),
            _ => false,
        },
        fjall::Error::Decompress(_)
        | fjall::Error::InvalidTag(_)
        | fjall::Error::InvalidTrailer => true,
        fjall::Error::Io(io) => is_truncated(io),
        _ => false,
    }
}

/// A block that runs past the end of its file: the file was cut short.
fn is_truncated(io: &std::io::Error) -> bool {
    io.kind() == std::io::ErrorKind::UnexpectedEof
}

/// A journal file as it was before fjall opened it, and a copy of it.
struct Guarded {
    path: PathBuf,
    /// Its length (fjall preallocates, so most of it may be zeros).
    len: u64,
    /// Where its last complete batch ends.
    complete: u64,
    copy: Option<PathBuf>,
    /// Why no copy could be made.
    no_copy: Option<String>,
}

impl Guarded {
    fn len_now(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    /// True when fjall cut off complete batches: not a torn tail.
    fn was_cut(&self) -> bool {
        self.len_now() < self.complete
    }

    fn corrupt(&self) -> Error {
        let kept = match &self.no_copy {
            None => "the files are left as they were".to_string(),
            Some(why) => format!("fjall cut the file there and no copy could be kept ({why})"),
        };
        Error::Corrupt {
            key: format!("file {}", self.path.display()),
            reason: format!(
                "the journal stops decoding at byte {} but complete batches follow up to \
                 byte {}: corruption, not a torn tail; {kept}",
                self.len_now(),
                self.complete
            ),
        }
    }

    fn restore(&self) {
        if let Some(copy) = &self.copy {
            // The copy holds the data; the zeros after it come back with
            // the length.
            let put_back = std::fs::rename(copy, &self.path).and_then(|()| {
                let file = std::fs::OpenOptions::new().write(true).open(&self.path)?;
                file.set_len(self.len)?;
                file.sync_all()
            });
            if let Err(e) = put_back {
                log::warn!("fjall: could not put back {}: {e}", self.path.display());
            }
        }
    }

    fn discard(&self) {
        if let Some(copy) = &self.copy {
            // A copy left behind is put back by the next open, harmlessly.
            let _ = std::fs::remove_file(copy);
        }
    }
}

/// The copy of `<id>.jnl` kept while fjall opens it; fjall reads only
/// files ending in `.jnl`.
fn copy_path(journal: &Path) -> PathBuf {
    let mut name = journal.as_os_str().to_os_string();
    name.push(".syncmq-check");
    PathBuf::from(name)
}

/// Finds every journal in `dir`, where its last complete batch ends, and
/// copies those that have one. A copy left by an open that did not finish
/// is put back first.
fn guard_journals(dir: &Path) -> Result<Vec<Guarded>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new()); // a new queue
    };
    let io =
        |what: &str, p: &Path, e: std::io::Error| Error::io(format!("{what} {}", p.display()), e);
    let mut out = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("jnl") {
            continue;
        }
        let copy = copy_path(&path);
        if copy.exists() {
            std::fs::rename(&copy, &path).map_err(|e| io("put back", &path, e))?;
        }
        let (complete, data_end) = last_batch_end(&path).map_err(|e| io("read", &path, e))?;
        let len = entry.metadata().map_err(|e| io("read", &path, e))?.len();
        let (copy, no_copy) = if complete == 0 {
            (None, None)
        } else {
            match copy_prefix(&path, &copy, data_end) {
                Ok(()) => (Some(copy), None),
                // A full disk, say: open without the copy; a cut is then
                // still refused, only the cut bytes are gone.
                Err(e) => {
                    let _ = std::fs::remove_file(&copy);
                    log::warn!(
                        "fjall: no copy of {} kept for the open: {e}",
                        path.display()
                    );
                    (None, Some(e.to_string()))
                }
            }
        };
        out.push(Guarded {
            path,
            len,
            complete,
            copy,
            no_copy,
        });
    }
    Ok(out)
}

/// fjall ends every batch in its journal with an end tag (3), an 8-byte
/// checksum and the magic `FJL\x03`: where the last of them ends. fjall
/// preallocates journals (64 MiB of zeros), so whole blocks of zeros at the
/// end are skipped with one comparison each.
///
/// Also returns where the data ends: past it there are only zeros.
fn last_batch_end(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    const TRAILER: usize = 1 + 8 + 4;
    const BLOCK: usize = 1 << 20;
    let zeros = vec![0u8; BLOCK];
    let mut file = File::open(path)?;
    let mut end = file.metadata()?.len();
    let mut block = Vec::new();
    let mut data_end = None;
    while end >= TRAILER as u64 {
        let start = end.saturating_sub(BLOCK as u64);
        // At most BLOCK bytes, so it fits in a usize.
        block.resize(usize::try_from(end - start).unwrap_or(BLOCK), 0);
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut block)?;
        if block[..] != zeros[..block.len()] {
            if data_end.is_none() {
                data_end = block
                    .iter()
                    .rposition(|&b| b != 0)
                    .map(|i| start + i as u64 + 1);
            }
            let found = (TRAILER..=block.len())
                .rev()
                .find(|&i| &block[i - 4..i] == b"FJL\x03" && block[i - TRAILER] == 3);
            if let Some(i) = found {
                let complete = start + i as u64;
                return Ok((complete, data_end.unwrap_or(complete)));
            }
        }
        if start == 0 {
            break;
        }
        // Overlap, so that a trailer across two blocks is found.
        end = start + TRAILER as u64 - 1;
    }
    Ok((0, data_end.unwrap_or(0)))
}

/// Copies the first `len` bytes of `from`: its data, not fjall's zeros.
fn copy_prefix(from: &Path, to: &Path, len: u64) -> std::io::Result<()> {
    use std::io::Read;
    let mut out = File::create(to)?;
    std::io::copy(&mut File::open(from)?.take(len), &mut out)?;
    out.sync_all()
}

/// What every error after a write failure says: fjall refuses every later
/// write once one failed (it cannot tell what reached the disk).
const AFTER_FAILURE: &str = "nothing more can be written until the queue is closed and opened \
     again (free space first); every publish that returned Ok before is kept";

/// The I/O error inside a fjall error, if it is one.
fn io_error(e: &fjall::Error) -> Option<&std::io::Error> {
    if let fjall::Error::Io(io) = e {
        return Some(io);
    }
    // lsm-tree's errors (fjall::Error::Storage) carry theirs as the source.
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        source = inner.source();
    }
    None
}

/// ENOSPC, or a quota that ran out.
fn is_disk_full(io: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(io.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded)
}

impl Store for FjallStore {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if key == CHECKPOINT_KEY || key == PAD_KEY {
            return Ok(None);
        }
        Ok(self
            .space(space)
            .get(key)
            .map_err(|e| self.read_failure(space, key, key, true, e))?
            .map(|v| v.to_vec()))
    }

    fn scan(&self, space: Space, from: &[u8], to: &[u8], limit: usize) -> Result<Vec<KeyValue>> {
        if from >= to {
            return Ok(Vec::new());
        }
        let mut out: Vec<KeyValue> = Vec::new();
        for guard in self.space(space).range(from..to) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = guard.into_inner().map_err(|e| {
                // The damage is past the last key read: name only that part.
                let after = out.last().map_or(from, |(k, _)| k.as_slice());
                self.read_failure(space, after, to, false, e)
            })?;
            if &*k != CHECKPOINT_KEY && &*k != PAD_KEY {
                out.push((k.to_vec(), v.to_vec()));
            }
        }
        Ok(out)
    }

    fn write(&self, batch: Batch) -> Result<()> {
        // Counted before the commit, so that the count is never behind the
        // journal (see "Syncing without blocking writers").
        self.journal_bytes
            .fetch_add(journal_size(&batch), Ordering::AcqRel);
        let mut wb = self.db.batch();
        for op in batch.ops {
            match op {
                Op::Put(space, key, value) => wb.insert(self.space(space), key, value),
                Op::Delete(space, key) => wb.remove(self.space(space), key),
                Op::DeleteWeak(space, key) => wb.remove_weak(self.space(space), key),
            }
        }
        wb.commit().map_err(|e| self.fail("write batch", e))
    }

    fn flush(&self) -> Result<()> {
        self.db
            .persist(PersistMode::Buffer)
            .map_err(|e| self.fail("flush journal", e))
    }

    fn checkpoint(&self) -> Result<()> {
        // See "A clean close leaves nothing to replay" in the type's docs.
        if !self.seal_and_flush(&self.spaces)? {
            return Ok(());
        }
        let Some(id) = self.active_journal_id() else {
            return Ok(());
        };
        let data = last_batch_end(&self.journal_path(id)).map_or(0, |(_, end)| end);
        if data < ROTATE_JOURNAL_AT {
            return Ok(());
        }
        // Everything is in tables by now: a fresh journal only spares the
        // next open its replay, so failing to start one (a disk too full
        // for the padding, say) is not the close's failure.
        if let Err(e) = self.start_fresh_journal(id, data) {
            log::warn!(
                "fjall: could not start a fresh journal in {} at close ({e}); the next open \
                 replays the {} MB of the old one",
                self.dir.display(),
                data >> 20
            );
        }
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        // See "Syncing without blocking writers" in the type's docs.
        self.flush()?;
        if self.sync_active_journal()? {
            return Ok(());
        }
        self.db
            .persist(PersistMode::SyncData)
            .map_err(|e| self.fail("sync journal", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_named_in_every_later_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = FjallStore::open(dir.path()).unwrap();
        let enospc = std::io::Error::from_raw_os_error(28);
        let first = store.fail("write batch", fjall::Error::Io(enospc));
        assert!(first.to_string().contains("is full"), "{first}");
        // fjall's later answer is a bare `Poisoned`: ours still says why.
        let later = store.fail("flush journal", fjall::Error::Poisoned);
        let text = later.to_string();
        assert!(text.contains("is full"), "{text}");
        assert!(text.contains("closed and opened again"), "{text}");
    }

    #[test]
    fn sync_finds_the_active_journal_and_follows_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let store = FjallStore::open(dir.path()).unwrap();
        let mut batch = Batch::new();
        batch.put(Space::Queue, b"k".to_vec(), b"v".to_vec());
        store.write(batch).unwrap();
        store.flush().unwrap();
        // If fjall renames its journals, this fails instead of `sync`
        // silently falling back to the slower path.
        assert!(store.sync_active_journal().unwrap());
        let first = store.active_journal_id().unwrap();
        // fjall rotates its journal (at 64 MB) by opening `<id + 1>.jnl`;
        // a stand-in file is enough to see that sync follows the newest.
        let second = first + 1;
        std::fs::write(dir.path().join(format!("{second}.jnl")), b"").unwrap();
        store.sync().unwrap();
        let cached = || store.journal.lock().unwrap().as_ref().map(|j| j.id);
        assert_eq!(cached(), Some(second), "sync follows the new journal");
        // Two rotations may remove the journal between (fjall deletes a
        // journal once its data is in tables), but only after more than
        // `RELIST_BYTES` were written: then the directory is listed again.
        let fourth = second + 2;
        std::fs::write(dir.path().join(format!("{fourth}.jnl")), b"").unwrap();
        store.sync().unwrap();
        assert_eq!(cached(), Some(second), "the next name does not exist");
        store
            .journal_bytes
            .fetch_add(RELIST_BYTES, Ordering::AcqRel);
        store.sync().unwrap();
        assert_eq!(cached(), Some(fourth), "sync lists the directory again");
    }

    #[test]
    fn sync_follows_a_real_rotation() {
        // fjall rotates its journal past 64,000,000 bytes, when it next
        // writes a memtable to a table. Values that lz4 cannot shrink.
        let dir = tempfile::tempdir().unwrap();
        let store = FjallStore::open(dir.path()).unwrap();
        store.sync().unwrap();
        let first = store.active_journal_id().unwrap();
        let mut x = 0x9E37_79B9_7F4A_7C15_u64;
        for i in 0u32..66 {
            let value: Vec<u8> = (0..1 << 20)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x.to_le_bytes()[0]
                })
                .collect();
            let mut batch = Batch::new();
            batch.put(Space::Messages, i.to_be_bytes().to_vec(), value);
            store.write(batch).unwrap();
            store.sync().unwrap();
        }
        // Makes sure fjall wrote a memtable after the 64,000,000th byte.
        store.checkpoint().unwrap();
        let mut batch = Batch::new();
        batch.put(Space::Queue, b"k".to_vec(), b"v".to_vec());
        store.write(batch).unwrap();
        store.sync().unwrap();
        let active = store.active_journal_id().unwrap();
        assert!(active > first, "fjall rotated its journal");
        let cached = store.journal.lock().unwrap().as_ref().map(|j| j.id);
        assert_eq!(cached, Some(active), "sync follows the rotation");
    }

    #[test]
    fn a_clean_close_starts_a_fresh_journal_and_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let key = |i: u32| i.to_be_bytes().to_vec();
        let journals = |dir: &Path| -> Vec<PathBuf> {
            std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("jnl"))
                .collect()
        };
        {
            let store = FjallStore::open(dir.path()).unwrap();
            // About 12 MB of journal, nearly all of it acked again: what a
            // drained queue leaves.
            for round in 0u32..120 {
                let mut batch = Batch::new();
                for i in round * 1000..(round + 1) * 1000 {
                    batch.put(Space::Messages, key(i), vec![7u8; 100]);
                }
                store.write(batch).unwrap();
                let mut batch = Batch::new();
                for i in round * 1000..(round + 1) * 1000 {
                    if i % 10_000 != 0 {
                        batch.delete_weak(Space::Messages, key(i));
                    }
                }
                store.write(batch).unwrap();
            }
            store.sync().unwrap();
            store.checkpoint().unwrap();
            let left = journals(dir.path());
            assert_eq!(left.len(), 1, "the old journal is gone: {left:?}");
            let (_, data) = last_batch_end(&left[0]).unwrap();
            // At most the padding written while fjall rotated, and the marker.
            let most = 2 * PAD_VALUE_BYTES as u64 + 4096;
            assert!(data < most, "the fresh journal holds {data} bytes");
        }
        let kept: Vec<u32> = (0..120_000).step_by(10_000).collect();
        {
            let store = FjallStore::open(dir.path()).unwrap();
            assert_eq!(store.memtable_bytes(), 0, "nothing to replay");
            let all = store
                .scan(Space::Messages, &[], &[0xFF; 8], usize::MAX)
                .unwrap();
            let keys: Vec<Vec<u8>> = all.into_iter().map(|(k, _)| k).collect();
            assert_eq!(keys, kept.iter().map(|&i| key(i)).collect::<Vec<_>>());
            assert_eq!(store.get(Space::Meta, PAD_KEY).unwrap(), None);
            // Written after the reopen and only synced (as before a crash):
            // it must win over the value in a table, written late before
            // the close; it would not if fjall's sequence numbers restarted
            // lower.
            let mut batch = Batch::new();
            batch.put(Space::Messages, key(kept[kept.len() - 1]), b"new".to_vec());
            store.write(batch).unwrap();
            store.sync().unwrap();
        }
        let store = FjallStore::open(dir.path()).unwrap();
        let got = store
            .get(Space::Messages, &key(kept[kept.len() - 1]))
            .unwrap();
        assert_eq!(got.as_deref(), Some(&b"new"[..]));
    }

    #[test]
    fn a_crash_during_the_padding_leaves_nothing_visible() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = FjallStore::open(dir.path()).unwrap();
            let mut batch = Batch::new();
            batch.put(Space::Meta, b"app".to_vec(), b"kept".to_vec());
            store.write(batch).unwrap();
            store.sync().unwrap();
            let id = store.active_journal_id().unwrap();
            store.pad_journal(id, 4 * PAD_VALUE_BYTES as u64).unwrap();
            // Killed between a padding value and its weak delete.
            store
                .space(Space::Meta)
                .insert(PAD_KEY, vec![1u8; 100])
                .unwrap();
            store.sync().unwrap();
            // Dropped without a checkpoint: the open replays all of it.
        }
        let store = FjallStore::open(dir.path()).unwrap();
        assert!(store.memtable_bytes() > 0, "the padding was replayed");
        assert_eq!(store.get(Space::Meta, PAD_KEY).unwrap(), None);
        let all = store
            .scan(Space::Meta, &[], &[0xFF; 64], usize::MAX)
            .unwrap();
        assert_eq!(all, vec![(b"app".to_vec(), b"kept".to_vec())]);
    }
}
