//! [`MemoryOutboxStore`]: every row in a `Mutex`-guarded map, and the
//! [`MemoryTx`] its `add_within_tx` hands out.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::message::Message;
use crate::outbox::record::{millis, now_ms, OutboxRecord};
use crate::outbox::store::{check_batch, OutboxCounts, OutboxStore};
use crate::thread::lock;

/// An outbox store in memory, for tests and for programs whose outbox need
/// not outlive the process.
///
/// Its "transaction" is a [`MemoryTx`]: a scratch set of key/value writes
/// that `add_within_tx` applies to the store's application map together
/// with the outbox row, under one lock, or drops when the closure fails. So
/// the atomicity rule of [`OutboxStore`] can be exercised without a
/// database. Nothing survives the process. As with fjall, one
/// [`Outbox`](crate::outbox::Outbox) dispatches from a store.
///
/// ```
/// use syncmq::outbox::{MemoryOutboxStore, OutboxStore};
/// use syncmq::Message;
///
/// # fn main() -> syncmq::Result<()> {
/// let store = MemoryOutboxStore::new();
/// let (id, ()) = store.add_within_tx(&Message::new(b"order placed".to_vec()), |tx| {
///     tx.put("order:1", b"placed".to_vec());
///     Ok::<_, syncmq::Error>(())
/// })?;
/// assert_eq!(store.app_value("order:1").as_deref(), Some(&b"placed"[..]));
/// assert_eq!(store.pending(10)?[0].id, id);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct MemoryOutboxStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    pending: BTreeMap<u64, OutboxRecord>,
    /// Keyed by (dispatched at, id) so cleanup reads the oldest first.
    dispatched: BTreeMap<(u64, u64), OutboxRecord>,
    dead_letters: BTreeMap<u64, OutboxRecord>,
    app: BTreeMap<String, Vec<u8>>,
}

/// The application's side of a memory transaction: writes to the store's
/// application map, applied only if the whole transaction commits.
#[derive(Debug, Default)]
pub struct MemoryTx {
    writes: Vec<(String, Option<Vec<u8>>)>,
}

impl MemoryTx {
    /// Sets `key` to `value` when the transaction commits.
    pub fn put(&mut self, key: impl Into<String>, value: Vec<u8>) {
        self.writes.push((key.into(), Some(value)));
    }

    /// Removes `key` when the transaction commits.
    pub fn delete(&mut self, key: impl Into<String>) {
        self.writes.push((key.into(), None));
    }
}

impl MemoryOutboxStore {
    /// An empty store; the first id is 1.
    pub fn new() -> Self {
        Self::default()
    }

    /// The application value committed under `key` by `add_within_tx`.
    pub fn app_value(&self, key: &str) -> Option<Vec<u8>> {
        lock(&self.state).app.get(key).cloned()
    }
}

impl State {
    fn insert(&mut self, message: &Message) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.pending.insert(
            id,
            OutboxRecord {
                id,
                message: message.clone(),
                created_at: now_ms(),
                attempts: 0,
                last_error: None,
            },
        );
        id
    }

    fn pending_mut(&mut self, id: u64) -> Result<&mut OutboxRecord> {
        self.pending
            .get_mut(&id)
            .ok_or_else(|| Error::invalid("id", format!("outbox row {id} is not pending")))
    }
}

fn not_a_dead_letter(id: u64) -> Error {
    Error::invalid("id", format!("outbox row {id} is not a dead letter"))
}

impl OutboxStore for MemoryOutboxStore {
    type Tx<'t> = MemoryTx;

    fn add(&self, message: &Message) -> Result<u64> {
        Ok(lock(&self.state).insert(message))
    }

    fn add_within_tx<T, E, F>(&self, message: &Message, f: F) -> Result<(u64, T), E>
    where
        F: for<'t> FnOnce(&mut Self::Tx<'t>) -> Result<T, E>,
        E: From<Error>,
    {
        let mut tx = MemoryTx::default();
        // `f` runs outside the lock, as a database transaction's statements
        // run while other transactions go on; only the commit is atomic.
        let value = f(&mut tx)?;
        let mut state = lock(&self.state);
        for (key, value) in tx.writes {
            match value {
                Some(value) => state.app.insert(key, value),
                None => state.app.remove(&key),
            };
        }
        Ok((state.insert(message), value))
    }

    fn pending(&self, batch: usize) -> Result<Vec<OutboxRecord>> {
        check_batch("batch", batch)?;
        Ok(lock(&self.state)
            .pending
            .values()
            .take(batch)
            .cloned()
            .collect())
    }

    fn mark_dispatched(&self, ids: &[u64]) -> Result<()> {
        let mut state = lock(&self.state);
        let at = millis(SystemTime::now());
        for id in ids {
            if let Some(record) = state.pending.remove(id) {
                state.dispatched.insert((at, *id), record);
            }
        }
        Ok(())
    }

    fn record_failure(&self, id: u64, error: &str) -> Result<u32> {
        let mut state = lock(&self.state);
        let record = state.pending_mut(id)?;
        record.attempts = record.attempts.saturating_add(1);
        record.last_error = Some(error.to_string());
        Ok(record.attempts)
    }

    fn dead_letter(&self, id: u64) -> Result<()> {
        let mut state = lock(&self.state);
        state.pending_mut(id)?;
        if let Some(record) = state.pending.remove(&id) {
            state.dead_letters.insert(id, record);
        }
        Ok(())
    }

    fn remove_dispatched(&self, older_than: SystemTime, batch: usize) -> Result<u64> {
        check_batch("batch", batch)?;
        let mut state = lock(&self.state);
        let before = millis(older_than);
        let old: Vec<(u64, u64)> = state
            .dispatched
            .range(..(before, 0))
            .take(batch)
            .map(|(k, _)| *k)
            .collect();
        for key in &old {
            state.dispatched.remove(key);
        }
        Ok(old.len() as u64)
    }

    fn requeue_dead_letter(&self, id: u64) -> Result<u64> {
        let mut state = lock(&self.state);
        let record = state
            .dead_letters
            .remove(&id)
            .ok_or_else(|| not_a_dead_letter(id))?;
        Ok(state.insert(&record.message))
    }

    fn remove_dead_letter(&self, id: u64) -> Result<()> {
        lock(&self.state)
            .dead_letters
            .remove(&id)
            .map(drop)
            .ok_or_else(|| not_a_dead_letter(id))
    }

    fn dead_letters(&self, limit: usize) -> Result<Vec<OutboxRecord>> {
        Ok(lock(&self.state)
            .dead_letters
            .values()
            .take(limit)
            .cloned()
            .collect())
    }

    fn counts(&self) -> Result<OutboxCounts> {
        let state = lock(&self.state);
        Ok(OutboxCounts {
            pending: state.pending.len() as u64,
            dispatched: state.dispatched.len() as u64,
            dead_letters: state.dead_letters.len() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn msg(body: &str) -> Message {
        Message::new(body.as_bytes().to_vec())
    }

    #[test]
    fn rows_come_out_in_id_order_and_leave_when_dispatched() {
        let store = MemoryOutboxStore::new();
        let ids: Vec<u64> = (0..5)
            .map(|i| store.add(&msg(&i.to_string())).unwrap())
            .collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5]);
        let pending = store.pending(3).unwrap();
        assert_eq!(pending.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2, 3]);
        store.mark_dispatched(&[1, 2]).unwrap();
        assert_eq!(store.pending(10).unwrap()[0].id, 3);
        assert_eq!(
            store.counts().unwrap(),
            OutboxCounts {
                pending: 3,
                dispatched: 2,
                dead_letters: 0
            }
        );
    }

    #[test]
    fn a_failed_closure_writes_nothing() {
        let store = MemoryOutboxStore::new();
        let err = store
            .add_within_tx(&msg("x"), |tx| -> Result<()> {
                tx.put("a", b"1".to_vec());
                Err(Error::invalid("order", "rejected"))
            })
            .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }));
        assert_eq!(store.app_value("a"), None);
        assert_eq!(store.counts().unwrap(), OutboxCounts::default());
    }

    #[test]
    fn failures_count_and_dead_letters_step_aside() {
        let store = MemoryOutboxStore::new();
        let a = store.add(&msg("a")).unwrap();
        let b = store.add(&msg("b")).unwrap();
        assert_eq!(store.record_failure(a, "boom").unwrap(), 1);
        assert_eq!(store.record_failure(a, "boom again").unwrap(), 2);
        store.dead_letter(a).unwrap();
        assert_eq!(store.pending(10).unwrap()[0].id, b);
        let dead_letters = store.dead_letters(10).unwrap();
        assert_eq!(dead_letters[0].attempts, 2);
        assert_eq!(dead_letters[0].last_error.as_deref(), Some("boom again"));
        assert!(store.record_failure(a, "x").is_err());
        assert!(store.dead_letter(a).is_err());
    }

    #[test]
    fn cleanup_removes_only_old_dispatched_rows() {
        let store = MemoryOutboxStore::new();
        let a = store.add(&msg("a")).unwrap();
        store.add(&msg("b")).unwrap();
        store.mark_dispatched(&[a]).unwrap();
        let past = SystemTime::now() - Duration::from_secs(60);
        assert_eq!(store.remove_dispatched(past, 10).unwrap(), 0);
        let future = SystemTime::now() + Duration::from_secs(60);
        assert_eq!(store.remove_dispatched(future, 10).unwrap(), 1);
        assert_eq!(store.counts().unwrap().pending, 1);
        assert!(store.pending(0).is_err());
    }
}
