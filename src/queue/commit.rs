//! Group commit: concurrent publishers share one `sync` (fsync).
//!
//! A publisher writes its batch, takes a ticket ([`Committer::written`]
//! returns the number of batches written so far, its own included) and
//! waits until the synced count reaches it. There is no committer thread:
//! the publisher whose wait finds no sync running and a full group of
//! batches written (as many as the last round had, or as many publishers
//! as took part in it) leads the next round on its own thread: it reads the
//! written count, syncs, and publishes that count as synced, which covers
//! every batch written before the sync started. The others sleep on a
//! Condvar meanwhile, and whoever is not covered waits for a later round.
//! While one sync runs the next group gathers, so N concurrent publishers
//! pay for about one fsync per round instead of N.
//!
//! A round costs one wake-up per waiting publisher, when it ends, and no
//! other: the publisher that completes a group syncs it itself instead of
//! waking a leader that was waiting for it (on two cores each wake-up is a
//! sizeable part of a fast fsync), and a lone publisher syncs on its own
//! thread with no hand-off at all. When a group does not fill, the first
//! of its waiters to reach the gathering deadline (half the last sync's
//! duration, at most 1 ms) syncs what there is.
//!
//! A pipelined publisher (`Queue::send`, whose `crate::Receipt` holds a
//! [`CommitTicket`](super::commit_ticket::CommitTicket)) takes its ticket at
//! `send` and waits later, so one round can cover many of its batches; a
//! send that completes a group wakes a waiter to sync it
//! ([`Committer::sent`]), since no wait follows it.
//! With [`Durability::Buffered`] there are no rounds: a wait hands the
//! written batches to the OS and returns.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::config::Durability;
use super::store::Store;
use crate::error::{Error, Result};
use crate::metrics::{name, Histogram};
use crate::thread::{lock, wait};

/// The longest a round waits for more publishers to join it.
const MAX_GATHER: Duration = Duration::from_millis(1);

#[derive(Debug, Default)]
struct Counts {
    written: u64,
    synced: u64,
    /// The first sync error: every later wait fails with it, because the
    /// store cannot say which writes it lost.
    failed: Option<Error>,
    /// A leader is syncing.
    syncing: bool,
    /// Publishers waiting on `done`. Notifying a Condvar is a system call
    /// even with nobody waiting, so it is skipped then.
    waiting: u32,
    /// How many written batches make a full group: the next round syncs as
    /// soon as that many are waiting to be synced.
    group: u64,
    /// When the round being gathered syncs even if its group is not full;
    /// set by its first waiter.
    gather_until: Option<Instant>,
    /// How long the last sync took.
    last_sync: Duration,
    rounds: u64,
    /// Time spent in syncs, for the summary.
    sync_time: Duration,
}

impl Counts {
    /// Written batches that no sync has covered yet.
    fn pending(&self) -> u64 {
        self.written - self.synced
    }
}

/// Makes written batches durable, one sync per group of waiting publishers.
pub struct Committer {
    store: Arc<dyn Store>,
    durability: Durability,
    counts: Mutex<Counts>,
    /// Publishers wait here for the round that covers them, or for their
    /// group to fill.
    done: Condvar,
    fsync_seconds: Histogram,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer").finish_non_exhaustive()
    }
}

/// Ends a round even if the store's `sync` panics, so that the other
/// publishers are not left waiting for a leader that is gone.
struct Round<'a> {
    committer: &'a Committer,
    /// The written count when the sync started: what it covers.
    target: u64,
    result: Option<Result<()>>,
    started: Instant,
}

impl Drop for Round<'_> {
    fn drop(&mut self) {
        let mut c = lock(&self.committer.counts);
        let took = self.started.elapsed();
        self.committer.fsync_seconds.record(took);
        c.last_sync = took;
        c.sync_time += took;
        match self.result.take() {
            Some(Ok(())) => {
                // The next group: as many batches as this round covered, or
                // one from each publisher that took part in it (the waiters
                // and this leader), so that a publisher left over to the
                // next round does not split the publishers into rounds
                // that each leave one over.
                let covered = self.target - c.synced;
                c.group = covered.max(u64::from(c.waiting) + 1);
                c.synced = c.synced.max(self.target);
            }
            Some(Err(e)) => {
                log::error!("queue: sync failed, publishes waiting for it fail: {e}");
                c.failed.get_or_insert(e);
            }
            None => {
                c.failed.get_or_insert(Error::storage_reason(
                    "queue: sync",
                    "the store's sync panicked",
                ));
            }
        }
        c.syncing = false;
        // Woken after the unlock, so that the waiters do not wake only to
        // block on the lock this still holds.
        let wake = c.waiting > 0;
        drop(c);
        if wake {
            self.committer.done.notify_all();
        }
    }
}

impl Committer {
    /// A committer for `store`, making batches as durable as `durability`
    /// says.
    pub fn new(store: Arc<dyn Store>, durability: Durability) -> Self {
        Committer {
            store,
            durability,
            counts: Mutex::new(Counts {
                group: 1,
                ..Counts::default()
            }),
            done: Condvar::new(),
            fsync_seconds: Histogram::new(name::QUEUE_FSYNC_SECONDS, &[]),
        }
    }

    /// Records one more written batch, whose publisher waits for it next,
    /// and returns its ticket. Call it right after the write, in write
    /// order.
    pub fn written(&self) -> u64 {
        let mut c = lock(&self.counts);
        c.written += 1;
        c.written
    }

    /// As [`written`](Self::written), for a batch whose publisher waits
    /// later (`Queue::send`): when it completes the group of a round that
    /// is gathering, one of that round's waiters is woken to sync it.
    pub fn sent(&self) -> u64 {
        let mut c = lock(&self.counts);
        c.written += 1;
        let ticket = c.written;
        let wake = !c.syncing && c.waiting > 0 && c.pending() == c.group;
        drop(c);
        if wake {
            self.done.notify_one();
        }
        ticket
    }

    /// Blocks until the batch with `ticket` is durable, leading the round
    /// that syncs it when its group is full or its gathering time is up;
    /// with [`Durability::Buffered`], hands the written batches to the OS.
    ///
    /// With a `deadline`, a wait that follows another publisher's round
    /// gives up at the deadline; a wait for a round still gathering leads
    /// it at the deadline, and then lets its sync (which cannot be
    /// interrupted) run to its end, so that the publishers following it
    /// are not left without a leader.
    ///
    /// # Errors
    ///
    /// The sync's [`Error::Storage`], for this and every later wait;
    /// [`Error::Timeout`] when the deadline passed before the batch was
    /// durable (it may still become durable later).
    pub fn wait(&self, ticket: u64, deadline: Option<Instant>) -> Result<()> {
        if self.durability == Durability::Buffered {
            return self.store.flush();
        }
        let started = Instant::now();
        let mut c = lock(&self.counts);
        loop {
            if let Some(e) = &c.failed {
                return Err(e.clone());
            }
            if c.synced >= ticket {
                return Ok(());
            }
            let now = Instant::now();
            let timeout = if c.syncing {
                match deadline {
                    Some(d) if now >= d => {
                        return Err(Error::timeout(
                            format!("queue: the sync of send {ticket}"),
                            started.elapsed(),
                        ))
                    }
                    d => d.map(|d| d - now),
                }
            } else {
                let gather = (c.last_sync / 2).min(MAX_GATHER);
                let until = *c.gather_until.get_or_insert(now + gather);
                let until = deadline.map_or(until, |d| d.min(until));
                if c.pending() >= c.group || now >= until {
                    c = self.lead(c);
                    continue;
                }
                Some(until - now)
            };
            c.waiting += 1;
            c = wait(&self.done, c, timeout);
            c.waiting -= 1;
        }
    }

    /// Syncs every batch written so far, with `c` locked on entry and on
    /// return (not during the sync).
    fn lead<'a>(&'a self, mut c: MutexGuard<'a, Counts>) -> MutexGuard<'a, Counts> {
        c.syncing = true;
        c.gather_until = None;
        c.rounds += 1;
        let target = c.written;
        drop(c);
        let mut round = Round {
            committer: self,
            target,
            result: None,
            started: Instant::now(),
        };
        round.result = Some(self.store.sync());
        drop(round);
        lock(&self.counts)
    }

    /// Settles every batch written so far with `result`, the outcome of a
    /// sync that started after the last write (the queue's final sync at
    /// close): waits return `Ok` without syncing again, or that error.
    pub fn settle_all(&self, result: &Result<()>) {
        let mut c = lock(&self.counts);
        match result {
            Ok(()) => c.synced = c.synced.max(c.written),
            Err(e) => {
                c.failed.get_or_insert_with(|| e.clone());
            }
        }
        if c.waiting > 0 {
            self.done.notify_all();
        }
    }

    /// How many syncs covered how many batches so far, and the time spent
    /// in them, for the log.
    pub fn summary(&self) -> (u64, u64, Duration) {
        let c = lock(&self.counts);
        (c.rounds, c.written, c.sync_time)
    }
}
