//! [`PostgresOutboxStore`]: the outbox as a table in the application's
//! PostgreSQL database.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use postgres::types::{ToSql, Type};
use postgres::{Client, GenericClient, Row, Statement, Transaction};

use crate::error::{Error, Result};
use crate::message::Message;
use crate::outbox::record::{now_ms, OutboxRecord};
use crate::outbox::store::postgres_config::PostgresStoreConfig;
use crate::outbox::store::postgres_connect::PgConnector;
use crate::outbox::store::{check_batch, OutboxCounts, OutboxStore};
use crate::thread::lock;

/// An outbox table in PostgreSQL, next to the application's, written in the
/// application's own transaction.
///
/// `add_within_tx` begins a transaction, hands the `postgres::Transaction`
/// to the caller's closure for its own statements, inserts the outbox row
/// and commits: both or neither. A caller that runs its transactions itself
/// inserts the row with [`PostgresOutboxStore::add_in`] and then calls
/// [`Outbox::notify`](crate::outbox::Outbox::notify).
///
/// # Schema
///
/// Created when missing (table `syncmq_outbox` unless configured):
///
/// ```sql
/// CREATE TABLE IF NOT EXISTS syncmq_outbox (
///     id            BIGSERIAL PRIMARY KEY,
///     message       BYTEA NOT NULL,        -- Message::to_bytes
///     created_at    TIMESTAMPTZ NOT NULL,
///     attempts      INTEGER NOT NULL DEFAULT 0,
///     last_error    TEXT,
///     claimed_by    TEXT,                  -- the dispatcher holding the row
///     claimed_until TIMESTAMPTZ,           -- until its claim lapses
///     dispatched_at TIMESTAMPTZ,
///     dead_at       TIMESTAMPTZ
/// ) WITH (fillfactor = 60);
/// CREATE INDEX IF NOT EXISTS syncmq_outbox_pending ON syncmq_outbox (id)
///     WHERE dispatched_at IS NULL AND dead_at IS NULL;
/// CREATE INDEX IF NOT EXISTS syncmq_outbox_dispatched ON syncmq_outbox (dispatched_at)
///     WHERE dispatched_at IS NOT NULL;
/// ```
///
/// Every row is updated twice (claimed, then marked dispatched): the room
/// that `fillfactor = 60` leaves in each page lets the claim, which changes
/// no indexed column, be a heap-only update (no new index entries), which
/// halved the server's work per dispatched row. A table created before
/// takes it with `ALTER TABLE syncmq_outbox SET (fillfactor = 60)` (for
/// pages written from then on).
///
/// # Several dispatchers
///
/// `pending` claims the rows it returns: it picks them `ORDER BY id ... FOR
/// UPDATE SKIP LOCKED` and stamps them with this store's claim (unique per
/// store value) for the lease (60 s by default). Dispatchers in other
/// processes skip rows under another's live claim, so no two send one row
/// at the same time. A dispatcher that dies leaves its claims to lapse;
/// then another takes the rows over (and sends them again if the one that died
/// had sent them: at least once). Keep the lease well above the time a
/// batch takes to send.
///
/// The dispatcher's own writes (claims, marks, attempts, cleanup) run on
/// connections of their own, set to `synchronous_commit` off, one statement
/// per transaction (one round trip each): they do not wait for a WAL flush,
/// and a database crash may lose the last of them, which only sends rows
/// again. Adds always commit as the server is configured.
///
/// Ids come from a sequence, which hands them out when rows are inserted,
/// not when they commit; so with concurrent writers a row can become
/// visible after one with a higher id was already sent. Order is id order
/// among the rows committed at the time of each read.
///
/// ```no_run
/// use syncmq::outbox::{OutboxStore, PostgresOutboxStore};
/// use syncmq::Message;
///
/// # fn main() -> syncmq::Result<()> {
/// let store = PostgresOutboxStore::connect("host=127.0.0.1 user=postgres dbname=app")?;
/// store.add_within_tx(&Message::new(b"order 1 placed".to_vec()), |tx| {
///     // `?` turns the postgres error into `Error::Storage`.
///     tx.execute("INSERT INTO orders (id, state) VALUES (1, 'placed')", &[])?;
///     Ok::<_, syncmq::Error>(())
/// })?;
/// # Ok(())
/// # }
/// ```
pub struct PostgresOutboxStore {
    config: PostgresStoreConfig,
    /// Opens every connection of both pools, with the same TLS.
    connector: PgConnector,
    /// Idle connections for adds and reads.
    idle: Mutex<Vec<Conn>>,
    /// Idle connections for the dispatcher's own writes, with
    /// `synchronous_commit` off for the session.
    relaxed_idle: Mutex<Vec<Conn>>,
    /// This store's claim on the rows it dispatches.
    claim: String,
    sql: Sql,
}

impl std::fmt::Debug for PostgresOutboxStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOutboxStore")
            .field("table", &self.config.table())
            .field("claim", &self.claim)
            .field("tls", &self.connector.uses_tls())
            .finish_non_exhaustive()
    }
}

/// The statements, with the table name in them.
struct Sql {
    insert: String,
    claim: String,
    mark_dispatched: String,
    record_failure: String,
    dead_letter: String,
    remove_dispatched: String,
    dead_letters: String,
    take_dead_letter: String,
    insert_bytes: String,
    counts: String,
}

impl Sql {
    fn new(t: &str) -> Self {
        let columns = "id, message, created_at, attempts, last_error";
        let pending = "dispatched_at IS NULL AND dead_at IS NULL";
        Sql {
            insert: format!("INSERT INTO {t} (message, created_at) VALUES ($1, $2) RETURNING id"),
            claim: format!(
                "UPDATE {t} SET claimed_by = $1, claimed_until = now() + make_interval(secs => $2) \
                 WHERE id IN (SELECT id FROM {t} WHERE {pending} \
                   AND (claimed_until IS NULL OR claimed_until < now() OR claimed_by = $1) \
                   ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 RETURNING {columns}"
            ),
            mark_dispatched: format!(
                "UPDATE {t} SET dispatched_at = $2, claimed_by = NULL, claimed_until = NULL \
                 WHERE id = ANY($1) AND {pending}"
            ),
            record_failure: format!(
                "UPDATE {t} SET attempts = attempts + 1, last_error = $2 \
                 WHERE id = $1 AND {pending} RETURNING attempts"
            ),
            dead_letter: format!(
                "UPDATE {t} SET dead_at = now(), claimed_by = NULL, claimed_until = NULL, \
                   last_error = COALESCE($2, last_error) \
                 WHERE id = $1 AND {pending} RETURNING id"
            ),
            remove_dispatched: format!(
                "DELETE FROM {t} WHERE id IN (SELECT id FROM {t} WHERE dispatched_at < $1 \
                   ORDER BY dispatched_at LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING id"
            ),
            take_dead_letter: format!(
                "DELETE FROM {t} WHERE id = $1 AND dead_at IS NOT NULL RETURNING message"
            ),
            insert_bytes: format!(
                "INSERT INTO {t} (message, created_at) VALUES ($1, $2) RETURNING id"
            ),
            dead_letters: format!(
                "SELECT {columns} FROM {t} WHERE dead_at IS NOT NULL ORDER BY id LIMIT $1"
            ),
            counts: format!(
                "SELECT count(*) FILTER (WHERE {pending}), \
                   count(*) FILTER (WHERE dispatched_at IS NOT NULL), \
                   count(*) FILTER (WHERE dead_at IS NOT NULL) FROM {t}"
            ),
        }
    }

    fn create(t: &str) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {t} (
                id            BIGSERIAL PRIMARY KEY,
                message       BYTEA NOT NULL,
                created_at    TIMESTAMPTZ NOT NULL,
                attempts      INTEGER NOT NULL DEFAULT 0,
                last_error    TEXT,
                claimed_by    TEXT,
                claimed_until TIMESTAMPTZ,
                dispatched_at TIMESTAMPTZ,
                dead_at       TIMESTAMPTZ
            ) WITH (fillfactor = 60);
            CREATE INDEX IF NOT EXISTS {t}_pending ON {t} (id)
                WHERE dispatched_at IS NULL AND dead_at IS NULL;
            CREATE INDEX IF NOT EXISTS {t}_dispatched ON {t} (dispatched_at)
                WHERE dispatched_at IS NOT NULL;"
        )
    }
}

/// A postgres error as ours, saying what we were doing. The error is kept
/// as the source: `Display` prints the server's message, and
/// [`Error::sqlstate`] its code.
fn pg(doing: &str) -> impl FnOnce(postgres::Error) -> Error + '_ {
    move |e| Error::storage(format!("postgres outbox: {doing}"), e)
}

/// A connection and the statements prepared on it so far.
struct Conn {
    client: Client,
    prepared: HashMap<String, Statement>,
}

impl Conn {
    /// Runs `sql`, prepared on this connection the first time it runs
    /// here: the server parses it once and can keep its plan, instead of
    /// planning it on every batch (the claim's planning cost as much as
    /// its execution).
    fn query(
        &mut self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> std::result::Result<Vec<Row>, postgres::Error> {
        let statement = if let Some(statement) = self.prepared.get(sql) {
            statement.clone()
        } else {
            let types: Vec<Type> = params.iter().map(|(_, t)| t.clone()).collect();
            let statement = self.client.prepare_typed(sql, &types)?;
            self.prepared.insert(sql.to_string(), statement.clone());
            statement
        };
        let values: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(v, _)| *v).collect();
        self.client.query(&statement, &values)
    }
}

/// A connection taken from one of the store's pools; it goes back when
/// dropped, unless it broke.
struct Pooled<'a> {
    pool: &'a Mutex<Vec<Conn>>,
    max_idle: usize,
    conn: Option<Conn>,
}

impl Pooled<'_> {
    fn conn(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("present until drop")
    }
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.conn.as_ref().expect("present until drop").client
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.conn().client
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut idle = lock(self.pool);
            if !conn.client.is_closed() && idle.len() < self.max_idle {
                idle.push(conn);
            }
        }
    }
}

impl PostgresOutboxStore {
    /// Connects with the connection string `params` and creates the table
    /// `syncmq_outbox` when it is missing.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] when the server cannot be reached or refuses.
    pub fn connect(params: &str) -> Result<Self> {
        Self::connect_with(PostgresStoreConfig::new(params))
    }

    /// Connects as `config` says and creates its table when it is missing.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a bad config, [`Error::Storage`] when
    /// the server cannot be reached or refuses.
    pub fn connect_with(config: PostgresStoreConfig) -> Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let connector = config.connector()?;
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let claim = format!(
            "{}-{nanos}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let store = PostgresOutboxStore {
            sql: Sql::new(config.table()),
            config,
            connector,
            idle: Mutex::new(Vec::new()),
            relaxed_idle: Mutex::new(Vec::new()),
            claim,
        };
        store
            .client()?
            .batch_execute(&Sql::create(store.config.table()))
            .map_err(pg("creating the outbox table"))?;
        Ok(store)
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        self.config.table()
    }

    /// Inserts a row with the caller's client or transaction, which the
    /// caller commits. Call [`Outbox::notify`](crate::outbox::Outbox::notify)
    /// after the commit, or the row waits for the next check interval.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] when the insert fails, [`Error::Codec`] for a
    /// message too large to encode.
    pub fn add_in(&self, client: &mut impl GenericClient, message: &Message) -> Result<u64> {
        let bytes = message.to_bytes()?;
        let created_at = now_ms();
        let row = client
            .query_typed_one(
                &self.sql.insert,
                &[(&bytes, Type::BYTEA), (&created_at, Type::TIMESTAMPTZ)],
            )
            .map_err(pg("inserting a row"))?;
        id_of(&row)
    }

    /// A connection for adds and reads.
    fn client(&self) -> Result<Pooled<'_>> {
        self.take(&self.idle, false)
    }

    /// An idle connection of `pool`, or a new one; a new `relaxed` one gets
    /// `synchronous_commit` off for its session.
    fn take<'a>(&'a self, pool: &'a Mutex<Vec<Conn>>, relaxed: bool) -> Result<Pooled<'a>> {
        let reused = lock(pool).pop();
        let conn = if let Some(conn) = reused {
            conn
        } else {
            let mut client = self.connector.connect()?;
            if relaxed {
                client
                    .batch_execute("SET synchronous_commit TO OFF")
                    .map_err(pg("relaxing the commit"))?;
            }
            Conn {
                client,
                prepared: HashMap::new(),
            }
        };
        Ok(Pooled {
            pool,
            max_idle: self.config.max_idle(),
            conn: Some(conn),
        })
    }

    fn query(&self, sql: &str, params: &[(&(dyn ToSql + Sync), Type)]) -> Result<Vec<Row>> {
        self.client()?
            .query_typed(sql, params)
            .map_err(pg("querying the outbox"))
    }

    /// Runs one of the dispatcher's own statements, a transaction of its
    /// own that commits without waiting for the WAL flush (on a connection
    /// with `synchronous_commit` off), prepared once per connection: one
    /// round trip. After a database crash its effect may be lost, which
    /// only sends rows again; adds never go this way.
    fn relaxed(&self, sql: &str, params: &[(&(dyn ToSql + Sync), Type)]) -> Result<Vec<Row>> {
        self.take(&self.relaxed_idle, true)?
            .conn()
            .query(sql, params)
            .map_err(pg("updating the outbox"))
    }

    /// Decodes a claimed row; a row whose message cannot be read is
    /// dead-lettered with the reason, so it cannot block the rest.
    fn decode_pending(&self, row: &Row) -> Result<Option<OutboxRecord>> {
        match parse(row)? {
            Ok(record) => Ok(Some(record)),
            Err((id, e)) => {
                log::error!("postgres outbox: row {id} is corrupt, setting it aside: {e}");
                let reason = Some(format!("corrupt message: {e}"));
                let id = db_id(id)?;
                self.relaxed(
                    &self.sql.dead_letter,
                    &[(&id, Type::INT8), (&reason, Type::TEXT)],
                )?;
                Ok(None)
            }
        }
    }
}

/// A row of `id, message, created_at, attempts, last_error`: the record, or
/// its id and why its message cannot be read.
fn parse(row: &Row) -> Result<Result<OutboxRecord, (u64, Error)>> {
    let id = id_of(row)?;
    let bytes: Vec<u8> = row.try_get(1).map_err(pg("reading a row"))?;
    let message = match Message::from_bytes(&bytes) {
        Ok(message) => message,
        Err(e) => return Ok(Err((id, e))),
    };
    let attempts: i32 = row.try_get(3).map_err(pg("reading a row"))?;
    Ok(Ok(OutboxRecord {
        id,
        message,
        created_at: row.try_get(2).map_err(pg("reading a row"))?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        last_error: row.try_get(4).map_err(pg("reading a row"))?,
    }))
}

fn id_of(row: &Row) -> Result<u64> {
    let id: i64 = row.try_get(0).map_err(pg("reading an id"))?;
    u64::try_from(id).map_err(|_| Error::Corrupt {
        key: format!("outbox row {id}"),
        reason: "a negative id".into(),
    })
}

fn not_a_dead_letter(id: u64) -> Error {
    Error::invalid("id", format!("outbox row {id} is not a dead letter"))
}

fn db_id(id: u64) -> Result<i64> {
    i64::try_from(id).map_err(|_| Error::invalid("id", format!("outbox row {id} is not pending")))
}

impl OutboxStore for PostgresOutboxStore {
    type Tx<'t> = Transaction<'t>;

    fn add(&self, message: &Message) -> Result<u64> {
        self.add_in(&mut *self.client()?, message)
    }

    fn add_within_tx<T, E, F>(&self, message: &Message, f: F) -> Result<(u64, T), E>
    where
        F: for<'t> FnOnce(&mut Self::Tx<'t>) -> Result<T, E>,
        E: From<Error>,
    {
        let mut client = self.client()?;
        let mut tx = client
            .transaction()
            .map_err(pg("beginning a transaction"))?;
        // On an error the transaction is dropped, which rolls it back.
        let value = f(&mut tx)?;
        let id = self.add_in(&mut tx, message)?;
        tx.commit().map_err(pg("committing an add"))?;
        Ok((id, value))
    }

    fn pending(&self, batch: usize) -> Result<Vec<OutboxRecord>> {
        check_batch("batch", batch)?;
        let lease = self.config.lease().as_secs_f64();
        let limit = i64::try_from(batch).unwrap_or(i64::MAX);
        let rows = self.relaxed(
            &self.sql.claim,
            &[
                (&self.claim, Type::TEXT),
                (&lease, Type::FLOAT8),
                (&limit, Type::INT8),
            ],
        )?;
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(record) = self.decode_pending(row)? {
                records.push(record);
            }
        }
        // RETURNING does not keep the subquery's order.
        records.sort_by_key(|r| r.id);
        Ok(records)
    }

    fn mark_dispatched(&self, ids: &[u64]) -> Result<()> {
        let ids: Vec<i64> = ids
            .iter()
            .filter_map(|&id| i64::try_from(id).ok())
            .collect();
        let now = SystemTime::now();
        self.relaxed(
            &self.sql.mark_dispatched,
            &[(&ids, Type::INT8_ARRAY), (&now, Type::TIMESTAMPTZ)],
        )?;
        Ok(())
    }

    fn record_failure(&self, id: u64, error: &str) -> Result<u32> {
        let db_id = db_id(id)?;
        let rows = self.relaxed(
            &self.sql.record_failure,
            &[(&db_id, Type::INT8), (&error, Type::TEXT)],
        )?;
        let row = rows
            .first()
            .ok_or_else(|| Error::invalid("id", format!("outbox row {id} is not pending")))?;
        let attempts: i32 = row.try_get(0).map_err(pg("reading attempts"))?;
        Ok(u32::try_from(attempts).unwrap_or(0))
    }

    fn dead_letter(&self, id: u64) -> Result<()> {
        let db_id = db_id(id)?;
        let no_reason: Option<String> = None;
        let changed = self.relaxed(
            &self.sql.dead_letter,
            &[(&db_id, Type::INT8), (&no_reason, Type::TEXT)],
        )?;
        if changed.is_empty() {
            return Err(Error::invalid(
                "id",
                format!("outbox row {id} is not pending"),
            ));
        }
        Ok(())
    }

    fn remove_dispatched(&self, older_than: SystemTime, batch: usize) -> Result<u64> {
        check_batch("batch", batch)?;
        let limit = i64::try_from(batch).unwrap_or(i64::MAX);
        let removed = self.relaxed(
            &self.sql.remove_dispatched,
            &[(&older_than, Type::TIMESTAMPTZ), (&limit, Type::INT8)],
        )?;
        Ok(removed.len() as u64)
    }

    fn requeue_dead_letter(&self, id: u64) -> Result<u64> {
        let db_id = db_id(id)?;
        let mut client = self.client()?;
        let mut tx = client
            .transaction()
            .map_err(pg("beginning a transaction"))?;
        let taken = tx
            .query_typed(&self.sql.take_dead_letter, &[(&db_id, Type::INT8)])
            .map_err(pg("taking a dead letter"))?;
        let row = taken.first().ok_or_else(|| not_a_dead_letter(id))?;
        let bytes: Vec<u8> = row.try_get(0).map_err(pg("reading a dead letter"))?;
        let created_at = now_ms();
        let inserted = tx
            .query_typed_one(
                &self.sql.insert_bytes,
                &[(&bytes, Type::BYTEA), (&created_at, Type::TIMESTAMPTZ)],
            )
            .map_err(pg("requeueing a dead letter"))?;
        let new_id = id_of(&inserted)?;
        tx.commit().map_err(pg("committing a requeue"))?;
        Ok(new_id)
    }

    fn remove_dead_letter(&self, id: u64) -> Result<()> {
        let db_id = db_id(id)?;
        let taken = self.query(&self.sql.take_dead_letter, &[(&db_id, Type::INT8)])?;
        if taken.is_empty() {
            return Err(not_a_dead_letter(id));
        }
        Ok(())
    }

    fn dead_letters(&self, limit: usize) -> Result<Vec<OutboxRecord>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.query(&self.sql.dead_letters, &[(&limit, Type::INT8)])?;
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            match parse(row)? {
                Ok(record) => records.push(record),
                // Kept in the table as it is, for inspection.
                Err((id, e)) => {
                    log::error!("postgres outbox: skipping corrupt dead letter {id}: {e}");
                }
            }
        }
        Ok(records)
    }

    fn counts(&self) -> Result<OutboxCounts> {
        let rows = self.query(&self.sql.counts, &[])?;
        let row = rows.first().ok_or_else(|| {
            Error::storage_reason("postgres outbox: count rows", "no row returned")
        })?;
        let get = |i: usize| -> Result<u64> {
            let n: i64 = row.try_get(i).map_err(pg("reading counts"))?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        Ok(OutboxCounts {
            pending: get(0)?,
            dispatched: get(1)?,
            dead_letters: get(2)?,
        })
    }
}
