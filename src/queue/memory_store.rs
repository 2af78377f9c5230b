//! [`MemoryStore`]: the [`Store`] trait on `BTreeMap`s, for tests and for
//! queues that need not outlive the process.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::store::{Batch, KeyValue, Op, Space, Store};
use crate::error::Result;
use crate::thread::lock;

type Maps = BTreeMap<Space, BTreeMap<Vec<u8>, Vec<u8>>>;

/// An in-memory [`Store`], for tests and for queues that need not outlive
/// the process.
///
/// Batches are applied under one lock, so they are atomic; `flush` and
/// `sync` do nothing, because there is nothing to make durable. A clone
/// shares the maps, which lets a test "reopen" a queue on the same data.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    maps: Arc<Mutex<Maps>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// Overwrites the raw bytes under `key`, bypassing the engine: for
    /// tests that need corrupt data.
    pub fn put_raw(&self, space: Space, key: &[u8], value: &[u8]) {
        lock(&self.maps)
            .entry(space)
            .or_default()
            .insert(key.to_vec(), value.to_vec());
    }

    /// Every key in `space`, for tests that inspect the layout.
    pub fn keys(&self, space: Space) -> Vec<Vec<u8>> {
        lock(&self.maps)
            .get(&space)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }
}

impl Store for MemoryStore {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(lock(&self.maps)
            .get(&space)
            .and_then(|m| m.get(key).cloned()))
    }

    fn scan(&self, space: Space, from: &[u8], to: &[u8], limit: usize) -> Result<Vec<KeyValue>> {
        if from >= to {
            return Ok(Vec::new());
        }
        Ok(lock(&self.maps)
            .get(&space)
            .map(|m| {
                m.range(from.to_vec()..to.to_vec())
                    .take(limit)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }

    fn write(&self, batch: Batch) -> Result<()> {
        let mut maps = lock(&self.maps);
        for op in batch.ops {
            match op {
                Op::Put(space, key, value) => {
                    maps.entry(space).or_default().insert(key, value);
                }
                Op::Delete(space, key) | Op::DeleteWeak(space, key) => {
                    if let Some(m) = maps.get_mut(&space) {
                        m.remove(&key);
                    }
                }
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }
}
