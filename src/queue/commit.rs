//! Group commit: one committer thread makes writes durable for every
//! publisher waiting at that moment with a single `sync`.
//!
//! A publisher writes its batch, takes a ticket ([`Committer::written`]
//! returns the number of batches written so far, its own included) and
//! waits until the synced count reaches it. The committer reads the written
//! count, syncs, and publishes that count as synced: every batch written
//! before the sync started is covered. While one sync runs, the next group
//! gathers, so N concurrent publishers pay for about one fsync per round
//! instead of N. Before a round, the committer waits up to half a sync
//! (at most 1 ms) for as many publishers as the last round had, so they do
//! not split into alternating large and small rounds. The thread blocks on a
//! Condvar while there is nothing to sync and stops within one sync of being
//! told to.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::store::Store;
use crate::error::{Error, Result};
use crate::thread::{self, Worker};

/// The longest a round waits for more publishers to join it.
const MAX_GATHER: Duration = Duration::from_millis(1);

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
        // How many batches the last round covered, and how long its sync
        // took: the next round waits (briefly) for as many.
        let mut last_group = 1;
        let mut last_sync = Duration::ZERO;
        let mut rounds = 0u64;
        let mut c = self.lock();
        loop {
            while c.written == c.synced && !c.stop {
                c = self.work.wait(c).unwrap_or_else(PoisonError::into_inner);
            }
            if c.written == c.synced {
                break; // stopped, and nothing left to sync
            }
            // The publishers the last sync released are writing again: give
            // them a fraction of a sync to join this round, so that N
            // publishers keep sharing one sync instead of splitting into a
            // large and a small round. One publisher never waits here.
            let until = Instant::now() + (last_sync / 2).min(MAX_GATHER);
            while !c.stop && c.written - c.synced < last_group {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                c = self
                    .work
                    .wait_timeout(c, until - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            let target = c.written;
            last_group = target - c.synced;
            rounds += 1;
            drop(c);
            let started = Instant::now();
            let result = store.sync();
            last_sync = started.elapsed();
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
        log::debug!("queue committer: {rounds} syncs for {} batches", c.written);
        self.done.notify_all();
    }
}
