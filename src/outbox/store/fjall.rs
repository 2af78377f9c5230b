//! [`FjallOutboxStore`]: the outbox in the application's own fjall
//! database.

use std::collections::{BTreeSet, HashMap};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use fjall::{
    KeyspaceCreateOptions, PersistMode, Readable, SingleWriterTxDatabase, SingleWriterTxKeyspace,
    SingleWriterWriteTx, Slice,
};

use crate::error::{Error, Result};
use crate::message::Message;
use crate::outbox::record::{millis, now_ms, OutboxRecord};
use crate::outbox::store::fjall_row::{self, id_key, key_id};
use crate::outbox::store::{check_batch, OutboxCounts, OutboxStore};
use crate::thread::lock;

const LAST_ID: &[u8] = b"last_id";

/// An outbox in a fjall database shared with the application: one write
/// transaction commits the application's writes and the outbox row.
///
/// The database is a `SingleWriterTxDatabase` (fjall's serialized write
/// transactions). `add_within_tx` opens a write transaction, hands it to the
/// caller's closure for the application's writes, adds the outbox row and
/// commits everything with one journal write, synced to disk
/// (`PersistMode::SyncData` by default): a row whose add returned `Ok`
/// survives `kill -9` and power loss, and a row whose transaction did not
/// commit never appears, nor do the application's writes. Ids are taken
/// under the transaction lock, so they increase in commit order.
///
/// Keyspaces, each named `{prefix}.{part}` (prefix `outbox` by default):
///
/// - `pending`: id (big-endian) → row. Written once, removed once with
///   `remove_weak`, so a drained outbox leaves no tombstones in front of
///   the next pending row.
/// - `attempts`: id → failed attempts and the last error, only for rows that
///   failed.
/// - `dispatched`: dispatched-at millis ++ id → row, oldest first, for
///   cleanup by age.
/// - `dead`: id → dead letter (the row with its attempts), kept until the
///   application removes it.
/// - `meta`: an id at least as high as every row that left `pending` and
///   `dead` for good, written by the commits that take rows out (once per
///   batch, not once per add); with the last pending row and dead letter it
///   bounds every id given out, so ids never repeat after a restart.
///
/// One [`Outbox`](crate::outbox::Outbox) dispatches from a fjall store:
/// fjall lets one process open a database, and this store does not claim
/// rows (there is nobody to claim them from), so two outboxes on one store
/// would send every row twice.
///
/// Marking rows dispatched is written without a sync: if the machine loses
/// it, the rows are sent again after the restart (at least once). A pending
/// row whose bytes are corrupt is dead-lettered unchanged, logged, and
/// skipped, so it cannot block the rows behind it.
///
/// ```
/// use syncmq::outbox::fjall::KeyspaceCreateOptions;
/// use syncmq::outbox::{FjallOutboxStore, OutboxStore};
/// use syncmq::Message;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// let store = FjallOutboxStore::open(dir.path())?;
/// let orders = store.database().keyspace("orders", KeyspaceCreateOptions::default)?;
/// let (id, ()) = store.add_within_tx(&Message::new(b"order 1 placed".to_vec()), |tx| {
///     tx.insert(&orders, "order:1", "placed");
///     Ok::<_, syncmq::Error>(())
/// })?;
/// assert_eq!(store.pending(10)?[0].id, id);
/// assert!(orders.get("order:1")?.is_some());
/// # Ok(())
/// # }
/// ```
pub struct FjallOutboxStore {
    db: SingleWriterTxDatabase,
    pending: SingleWriterTxKeyspace,
    attempts: SingleWriterTxKeyspace,
    dispatched: SingleWriterTxKeyspace,
    dead_letters: SingleWriterTxKeyspace,
    meta: SingleWriterTxKeyspace,
    last_id: AtomicU64,
    /// No row below this id is pending: `pending` starts its scan here, so
    /// it does not walk over the removed rows in front of the queue.
    scan_from: AtomicU64,
    /// The ids that have a record in `attempts`, so the common row (never
    /// failed) costs no lookup there. Changed only under the `handed_out`
    /// lock, by writes that hold it until they committed.
    failing: Mutex<BTreeSet<u64>>,
    /// The rows the last `pending` read returned, so that marking them
    /// dispatched does not read each one back (a point lookup per row was
    /// a fifth of a dispatched row's cost); its lock keeps apart the writes
    /// that take rows out of `pending` or count failures against them.
    handed_out: Mutex<HandedOut>,
    durability: PersistMode,
}

/// The stored rows the last [`pending`](OutboxStore::pending) returned that
/// are still pending.
///
/// Every write that takes rows out of `pending` (or counts a failure
/// against one) takes this lock before it reads anything and holds it until
/// after its commit, then bumps `generation`. So those writes run one at a
/// time and each sees the ones before it, which lets `mark_dispatched`
/// commit a plain batch instead of a write transaction: fjall's writer lock
/// stays free for adds while the dispatcher moves a batch (held for a
/// batch, it stalled the adds). A `pending` read that saw the generation
/// change while it scanned may have seen rows that are gone, and is not
/// kept.
#[derive(Default)]
struct HandedOut {
    generation: u64,
    rows: HashMap<u64, Slice>,
}

impl std::fmt::Debug for FjallOutboxStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallOutboxStore")
            .field("last_id", &self.last_id.load(Ordering::Relaxed))
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

/// A fjall error as ours, saying what we were doing.
fn storage(doing: &str) -> impl FnOnce(fjall::Error) -> Error + '_ {
    move |e| Error::storage(format!("fjall outbox: {doing}"), e)
}

impl FjallOutboxStore {
    /// The keyspace prefix [`open`](Self::open) uses.
    pub const DEFAULT_PREFIX: &'static str = "outbox";

    /// Opens (or creates) a fjall database at `path` with the outbox in it.
    /// The application makes its own keyspaces in
    /// [`database`](Self::database).
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] when the database cannot be opened (another
    /// process has it open, the disk fails) or its outbox cannot be read.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let db = SingleWriterTxDatabase::builder(path.as_ref())
            .worker_threads(crate::fjall_workers::worker_threads())
            .open()
            .map_err(storage("opening the database"))?;
        Self::from_database(db, Self::DEFAULT_PREFIX)
    }

    /// The outbox in a database the application already opened, in
    /// keyspaces named `{prefix}.pending` and so on.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a prefix that is empty, longer than
    /// 200 bytes or not made of ASCII letters, digits, `_`, `-` and `.`;
    /// [`Error::Storage`] when the keyspaces cannot be opened or read.
    pub fn from_database(db: SingleWriterTxDatabase, prefix: &str) -> Result<Self> {
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if prefix.is_empty() || prefix.len() > 200 || !prefix.chars().all(valid) {
            return Err(Error::invalid(
                "prefix",
                format!(
                    "{prefix:?}: a keyspace prefix is 1 to 200 ASCII letters, digits, `_`, `-` or `.`"
                ),
            ));
        }
        let keyspace = |part: &str| {
            db.keyspace(&format!("{prefix}.{part}"), KeyspaceCreateOptions::default)
                .map_err(storage("opening a keyspace"))
        };
        let store = FjallOutboxStore {
            pending: keyspace("pending")?,
            attempts: keyspace("attempts")?,
            dispatched: keyspace("dispatched")?,
            // "dead" on disk: the name is data, kept as written.
            dead_letters: keyspace("dead")?,
            meta: keyspace("meta")?,
            db,
            last_id: AtomicU64::new(0),
            scan_from: AtomicU64::new(0),
            failing: Mutex::new(BTreeSet::new()),
            handed_out: Mutex::new(HandedOut::default()),
            durability: PersistMode::SyncData,
        };
        store
            .last_id
            .store(store.recover_last_id()?, Ordering::SeqCst);
        let mut failing = BTreeSet::new();
        for guard in store.attempts.inner().iter() {
            failing.insert(key_id(&guard.key().map_err(storage("reading attempts"))?)?);
        }
        *lock(&store.failing) = failing;
        Ok(store)
    }

    /// How adds are made durable. Default [`PersistMode::SyncData`]: a
    /// committed row survives power loss. [`PersistMode::Buffer`] survives a
    /// crash of the process only, and is much faster.
    #[must_use]
    pub fn with_durability(mut self, mode: PersistMode) -> Self {
        self.durability = mode;
        self
    }

    /// The database, for the application's own keyspaces and reads.
    pub fn database(&self) -> &SingleWriterTxDatabase {
        &self.db
    }

    /// The highest id in use: the meta record (written when rows leave), or
    /// the last pending row or dead letter (ids are never reused).
    fn recover_last_id(&self) -> Result<u64> {
        let mut last = match self.meta.get(LAST_ID).map_err(storage("reading meta"))? {
            Some(bytes) => {
                u64::from_be_bytes(<[u8; 8]>::try_from(&bytes[..]).map_err(|_| Error::Corrupt {
                    key: "outbox meta last_id".into(),
                    reason: format!("{} bytes, expected 8", bytes.len()),
                })?)
            }
            None => 0,
        };
        for keyspace in [&self.pending, &self.dead_letters] {
            if let Some(guard) = keyspace.last_key_value() {
                let key = guard.key().map_err(storage("reading the last row"))?;
                last = last.max(key_id(&key)?);
            }
        }
        Ok(last)
    }

    /// Writes the row into `tx` with a new id.
    fn insert(&self, tx: &mut SingleWriterWriteTx<'_>, message: &Message) -> Result<u64> {
        // The write transaction holds fjall's single-writer lock, so ids
        // are taken in commit order. An id of a transaction that does not
        // commit is skipped, never reused.
        let id = self.last_id.fetch_add(1, Ordering::SeqCst) + 1;
        let row = fjall_row::encode(&OutboxRecord {
            id,
            message: message.clone(),
            created_at: now_ms(),
            attempts: 0,
            last_error: None,
        })?;
        tx.insert(&self.pending, id_key(id), row);
        Ok(id)
    }

    /// The meta record a write that takes rows out of the outbox for good
    /// stores under `LAST_ID`: an id as high as any given out. Once the
    /// rows are gone, it is what keeps their ids from being given out again
    /// after a restart.
    fn last_id_record(&self) -> [u8; 8] {
        self.last_id.load(Ordering::SeqCst).to_be_bytes()
    }

    /// The attempts and last error recorded for `id`.
    fn failures(&self, id: u64) -> Result<(u32, Option<String>)> {
        if !lock(&self.failing).contains(&id) {
            return Ok((0, None));
        }
        match self
            .attempts
            .get(id_key(id))
            .map_err(storage("reading attempts"))?
        {
            None => Ok((0, None)),
            Some(bytes) => decode_failures(id, &bytes),
        }
    }

    /// Dead-letters a pending row whose bytes cannot be read, as it is.
    fn set_aside_corrupt(&self, key: &[u8], bytes: &[u8], error: &Error) -> Result<()> {
        log::error!("outbox: dead-lettering a corrupt pending row: {error}");
        let mut handed_out = lock(&self.handed_out);
        let mut tx = self.db.write_tx().durability(Some(PersistMode::Buffer));
        tx.remove_weak(&self.pending, key.to_vec());
        tx.insert(&self.dead_letters, key.to_vec(), bytes.to_vec());
        let committed = tx.commit();
        handed_out.generation += 1;
        committed.map_err(storage("setting a corrupt row aside"))
    }
}

fn not_a_dead_letter(id: u64) -> Error {
    Error::invalid("id", format!("outbox row {id} is not a dead letter"))
}

fn encode_failures(attempts: u32, error: &str) -> Vec<u8> {
    let mut out = attempts.to_be_bytes().to_vec();
    out.extend_from_slice(error.as_bytes());
    out
}

fn decode_failures(id: u64, bytes: &[u8]) -> Result<(u32, Option<String>)> {
    let corrupt = || Error::Corrupt {
        key: format!("outbox attempts of row {id}"),
        reason: "expected 4 bytes of count and UTF-8 text".into(),
    };
    let count = bytes
        .get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .ok_or_else(corrupt)?;
    let text = std::str::from_utf8(&bytes[4..]).map_err(|_| corrupt())?;
    Ok((u32::from_be_bytes(count), Some(text.to_string())))
}

fn dispatched_key(at_ms: u64, id: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&at_ms.to_be_bytes());
    key[8..].copy_from_slice(&id.to_be_bytes());
    key
}

impl OutboxStore for FjallOutboxStore {
    type Tx<'t> = SingleWriterWriteTx<'t>;

    fn add(&self, message: &Message) -> Result<u64> {
        self.add_within_tx(message, |_| Ok::<_, Error>(()))
            .map(|(id, ())| id)
    }

    fn add_within_tx<T, E, F>(&self, message: &Message, f: F) -> Result<(u64, T), E>
    where
        F: for<'t> FnOnce(&mut Self::Tx<'t>) -> Result<T, E>,
        E: From<Error>,
    {
        let mut tx = self.db.write_tx().durability(Some(self.durability));
        // On an error the transaction is dropped: fjall rolls it back. A
        // panic in `f` must not drop it while unwinding, which would poison
        // fjall's writer lock and fail every later transaction: drop it
        // first, then let the panic go on.
        let value = match catch_unwind(AssertUnwindSafe(|| f(&mut tx))) {
            Ok(value) => value?,
            Err(panic) => {
                drop(tx);
                resume_unwind(panic);
            }
        };
        let id = self.insert(&mut tx, message)?;
        tx.commit().map_err(storage("committing an add"))?;
        Ok((id, value))
    }

    fn pending(&self, batch: usize) -> Result<Vec<OutboxRecord>> {
        check_batch("batch", batch)?;
        let mut rows = Vec::with_capacity(batch.min(1024));
        let generation = lock(&self.handed_out).generation;
        let mut handed = HashMap::with_capacity(batch.min(1024));
        let from = self.scan_from.load(Ordering::SeqCst);
        let mut first = None;
        for guard in self.pending.inner().range(id_key(from)..) {
            if rows.len() == batch {
                break;
            }
            let (key, value) = guard
                .into_inner()
                .map_err(storage("reading pending rows"))?;
            let id = key_id(&key)?;
            first.get_or_insert(id);
            match fjall_row::decode(id, &value) {
                Ok(mut row) => {
                    (row.attempts, row.last_error) = self.failures(id)?;
                    rows.push(row);
                    handed.insert(id, value);
                }
                Err(error) => self.set_aside_corrupt(&key, &value, &error)?,
            }
        }
        // Ids are taken and committed under one lock, in order: when row
        // `first` is visible, every row below it committed before it, so
        // none of them is pending now or later.
        if let Some(first) = first {
            self.scan_from.fetch_max(first, Ordering::SeqCst);
        }
        let mut handed_out = lock(&self.handed_out);
        if handed_out.generation == generation {
            handed_out.rows = handed;
        } else {
            handed_out.rows.clear();
        }
        Ok(rows)
    }

    fn mark_dispatched(&self, ids: &[u64]) -> Result<()> {
        let at = millis(SystemTime::now());
        // A plain batch, kept apart from the other moves by this lock (see
        // `HandedOut`), not a write transaction, so adds go on meanwhile.
        let mut handed_out = lock(&self.handed_out);
        // A failed commit leaves ids out of the set whose attempts are
        // still stored; those rows read as never failed, which only gives
        // them more attempts.
        let mut failing = lock(&self.failing);
        let mut batch = self
            .db
            .inner()
            .batch()
            .durability(Some(PersistMode::Buffer));
        batch.insert(self.meta.inner(), LAST_ID, self.last_id_record());
        for &id in ids {
            let key = id_key(id);
            // A row `pending` handed out is pending (see `HandedOut`);
            // any other id is read to find out.
            let row = match handed_out.rows.remove(&id) {
                Some(row) => row,
                None => match self
                    .pending
                    .get(key)
                    .map_err(storage("reading a pending row"))?
                {
                    Some(row) => row,
                    None => continue,
                },
            };
            batch.insert(self.dispatched.inner(), dispatched_key(at, id), row);
            batch.remove_weak(self.pending.inner(), key);
            if failing.remove(&id) {
                batch.remove(self.attempts.inner(), key);
            }
        }
        let committed = batch.commit();
        handed_out.generation += 1;
        committed.map_err(storage("marking rows dispatched"))
    }

    fn record_failure(&self, id: u64, error: &str) -> Result<u32> {
        let key = id_key(id);
        // Not while a move out of `pending` is under way (see `HandedOut`).
        let _moves = lock(&self.handed_out);
        let mut tx = self.db.write_tx().durability(Some(PersistMode::Buffer));
        if !tx
            .contains_key(&self.pending, key)
            .map_err(storage("reading a pending row"))?
        {
            return Err(Error::invalid(
                "id",
                format!("outbox row {id} is not pending"),
            ));
        }
        let previous = match tx
            .get(&self.attempts, key)
            .map_err(storage("reading attempts"))?
        {
            Some(bytes) => decode_failures(id, &bytes)?.0,
            None => 0,
        };
        let attempts = previous.saturating_add(1);
        tx.insert(&self.attempts, key, encode_failures(attempts, error));
        let mut failing = lock(&self.failing);
        tx.commit().map_err(storage("recording a failure"))?;
        failing.insert(id);
        Ok(attempts)
    }

    fn dead_letter(&self, id: u64) -> Result<()> {
        let key = id_key(id);
        let mut handed_out = lock(&self.handed_out);
        let mut tx = self.db.write_tx().durability(Some(PersistMode::Buffer));
        let Some(bytes) = tx
            .get(&self.pending, key)
            .map_err(storage("reading a pending row"))?
        else {
            return Err(Error::invalid(
                "id",
                format!("outbox row {id} is not pending"),
            ));
        };
        let mut row = fjall_row::decode(id, &bytes)?;
        let mut failing = lock(&self.failing);
        handed_out.rows.remove(&id);
        failing.remove(&id);
        if let Some(failures) = tx
            .get(&self.attempts, key)
            .map_err(storage("reading attempts"))?
        {
            (row.attempts, row.last_error) = decode_failures(id, &failures)?;
            tx.remove(&self.attempts, key);
        }
        tx.insert(&self.dead_letters, key, fjall_row::encode(&row)?);
        tx.remove_weak(&self.pending, key);
        let committed = tx.commit();
        handed_out.generation += 1;
        committed.map_err(storage("dead-lettering a row"))
    }

    fn remove_dispatched(&self, older_than: SystemTime, batch: usize) -> Result<u64> {
        check_batch("batch", batch)?;
        let end = dispatched_key(millis(older_than), 0);
        let mut keys = Vec::new();
        for guard in self.dispatched.inner().range(..end.as_slice()).take(batch) {
            keys.push(guard.key().map_err(storage("reading dispatched rows"))?);
        }
        if keys.is_empty() {
            return Ok(0);
        }
        let mut tx = self.db.write_tx().durability(Some(PersistMode::Buffer));
        for key in &keys {
            tx.remove_weak(&self.dispatched, key.clone());
        }
        tx.commit().map_err(storage("removing dispatched rows"))?;
        Ok(keys.len() as u64)
    }

    fn requeue_dead_letter(&self, id: u64) -> Result<u64> {
        let key = id_key(id);
        let mut tx = self.db.write_tx().durability(Some(self.durability));
        let Some(bytes) = tx
            .get(&self.dead_letters, key)
            .map_err(storage("reading a dead letter"))?
        else {
            return Err(not_a_dead_letter(id));
        };
        let row = fjall_row::decode(id, &bytes)?;
        tx.remove_weak(&self.dead_letters, key);
        let new_id = self.insert(&mut tx, &row.message)?;
        tx.commit().map_err(storage("requeueing a dead letter"))?;
        Ok(new_id)
    }

    fn remove_dead_letter(&self, id: u64) -> Result<()> {
        let key = id_key(id);
        let mut tx = self.db.write_tx().durability(Some(PersistMode::Buffer));
        if !tx
            .contains_key(&self.dead_letters, key)
            .map_err(storage("reading a dead letter"))?
        {
            return Err(not_a_dead_letter(id));
        }
        tx.remove_weak(&self.dead_letters, key);
        tx.insert(&self.meta, LAST_ID, self.last_id_record());
        tx.commit().map_err(storage("removing a dead letter"))
    }

    fn dead_letters(&self, limit: usize) -> Result<Vec<OutboxRecord>> {
        let mut rows = Vec::new();
        for guard in self.dead_letters.inner().iter().take(limit) {
            let (key, value) = guard
                .into_inner()
                .map_err(storage("reading dead letters"))?;
            let id = key_id(&key)?;
            match fjall_row::decode(id, &value) {
                Ok(row) => rows.push(row),
                // Kept in the store as it is, for inspection.
                Err(e) => log::error!("outbox: skipping a corrupt dead letter: {e}"),
            }
        }
        Ok(rows)
    }

    fn counts(&self) -> Result<OutboxCounts> {
        let count = |keyspace: &SingleWriterTxKeyspace| {
            keyspace
                .inner()
                .len()
                .map(|n| n as u64)
                .map_err(storage("counting rows"))
        };
        Ok(OutboxCounts {
            pending: count(&self.pending)?,
            dispatched: count(&self.dispatched)?,
            dead_letters: count(&self.dead_letters)?,
        })
    }
}
