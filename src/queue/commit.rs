//! Group commit: one committer thread makes writes durable for every
//! publisher waiting at that moment with a single `sync`.
//!
//! A publisher writes its batch, takes a ticket ([`Committer::written`]
//! returns the number of batches written so far, its own included) and
//! waits until the synced count reaches it. The committer reads the written
//! count, syncs, and publishes that count as synced: every batch written
//! before the sync started is covered. While one sync runs, the next group
//! gathers, so N concurrent publishers pay for about one fsync per round
//! instead of N. The thread blocks on a Condvar while there is nothing to
//! sync and stops within one sync of being told to.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use super::store::Store;
use crate::error::{Error, Result};
use crate::thread::{self, Worker};

#[derive(Debug, Default)]
struct Counts {
    written: u64,
    synced: u64,
    /// The first sync error: every later wait fails with it, because the
    /// store cannot say which writes it lost.
    failed: Option<Error>,
    stop: bool,
}

/// The publishers' side of the committer thread.
#[derive(Debug, Default)]
pub struct Committer {
    counts: Mutex<Counts>,
    /// The committer waits here for writes.
    work: Condvar,
    /// Publishers wait here for syncs.
    done: Condvar,
}

impl Committer {
    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records one more written batch and returns its ticket. Call it right
    /// after the write, in write order.
    pub fn written(&self) -> u64 {
        let mut c = self.lock();
        c.written += 1;
        self.work.notify_one();
        c.written
    }

    /// Blocks until the batch with `ticket` is durable.
    ///
    /// # Errors
    ///
    /// The sync's [`Error::Storage`]; [`Error::Closed`] when the committer
    /// stopped before syncing it.
    pub fn wait(&self, ticket: u64) -> Result<()> {
        let mut c = self.lock();
        loop {
            if let Some(e) = &c.failed {
                return Err(e.clone());
            }
            if c.synced >= ticket {
                return Ok(());
            }
            if c.stop && c.written == c.synced {
                return Err(Error::closed("queue committer"));
            }
            c = self.done.wait(c).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Starts the committer thread for `store`.
    pub fn start(self: &Arc<Self>, store: Arc<dyn Store>) -> Result<Worker<()>> {
        let me = self.clone();
        thread::spawn("queue-commit", move || me.run(&*store))
    }

    /// Tells the thread to sync what is left and end.
    pub fn stop(&self) {
        self.lock().stop = true;
        self.work.notify_all();
    }

    fn run(&self, store: &dyn Store) {
        let mut c = self.lock();
        loop {
            while c.written == c.synced && !c.stop {
                c = self.work.wait(c).unwrap_or_else(PoisonError::into_inner);
            }
            if c.written == c.synced {
                break; // stopped, and nothing left to sync
            }
            let target = c.written;
            drop(c);
            let result = store.sync();
            c = self.lock();
            match result {
                Ok(()) => c.synced = target,
                Err(e) => {
                    log::error!("queue: sync failed, publishes waiting for it fail: {e}");
                    c.failed.get_or_insert(e);
                    c.synced = target;
                }
            }
            self.done.notify_all();
        }
        self.done.notify_all();
    }
}
