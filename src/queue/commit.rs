//! Group commit: concurrent publishers share one `sync` (fsync).
//!
//! A publisher writes its batch, takes a ticket ([`Committer::written`]
//! returns the number of batches written so far, its own included) and
//! waits until the synced count reaches it. The first waiter that finds no
//! sync running becomes the leader of the next round: it reads the written
//! count, syncs, and publishes that count as synced, which covers every
//! batch written before the sync started; the others sleep on a Condvar
//! meanwhile, and whoever is not covered leads the next round. While one
//! sync runs the next group gathers, so N concurrent publishers pay for
//! about one fsync per round instead of N, and a lone publisher syncs on its
//! own thread with no hand-off to another one (a committer thread costs two
//! wake-ups per publish, about 8% of a fast fsync).
//! A pipelined publisher (`Queue::send`, whose `crate::Receipt` holds a
//! [`CommitTicket`](super::commit_ticket::CommitTicket)) takes its ticket at
//! `send` and waits later, so one round can cover many of its batches.
//! With [`Durability::Buffered`] there are no rounds: a wait hands the
//! written batches to the OS and returns.
//!
//! Before syncing, a leader waits up to half the last sync's duration (at
//! most 1 ms) for as many batches as the last round had, so that N
//! publishers keep sharing rounds instead of splitting into alternating
//! large and small ones. A lone publisher never waits there.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::config::Durability;
use super::store::Store;
use crate::error::{Error, Result};
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
    /// A leader is gathering or syncing.
    syncing: bool,
    /// A leader waits on `work` for more writes.
    gathering: bool,
    /// Publishers waiting on `done`. Notifying a Condvar is a system call
    /// even with nobody waiting, so it is skipped then.
    waiting: u32,
    /// How many batches the last round covered and how long its sync took.
    last_group: u64,
    last_sync: Duration,
    rounds: u64,
}

/// Makes written batches durable, one sync per group of waiting publishers.
pub struct Committer {
    store: Arc<dyn Store>,
    durability: Durability,
    counts: Mutex<Counts>,
    /// A gathering leader waits here for more writes.
    work: Condvar,
    /// Publishers wait here for the round that covers them.
    done: Condvar,
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
    target: u64,
    result: Option<Result<()>>,
    started: Instant,
}

impl Drop for Round<'_> {
    fn drop(&mut self) {
        let mut c = lock(&self.committer.counts);
        c.last_sync = self.started.elapsed();
        match self.result.take() {
            Some(Ok(())) => c.synced = c.synced.max(self.target),
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
        if c.waiting > 0 {
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
                last_group: 1,
                ..Counts::default()
            }),
            work: Condvar::new(),
            done: Condvar::new(),
        }
    }

    /// Records one more written batch and returns its ticket. Call it right
    /// after the write, in write order.
    pub fn written(&self) -> u64 {
        let mut c = lock(&self.counts);
        c.written += 1;
        if c.gathering {
            self.work.notify_one();
        }
        c.written
    }

    /// Blocks until the batch with `ticket` is durable, leading the round
    /// that syncs it when no other publisher is; with
    /// [`Durability::Buffered`], hands the written batches to the OS.
    ///
    /// With a `deadline`, a wait that follows another publisher's round
    /// gives up at the deadline; a wait that leads a round gathers no
    /// longer than the deadline, and then lets its sync (which cannot be
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
            let left = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => {
                        return Err(Error::timeout(
                            format!("queue: the sync of send {ticket}"),
                            started.elapsed(),
                        ))
                    }
                },
            };
            if c.syncing {
                c.waiting += 1;
                c = wait(&self.done, c, left);
                c.waiting -= 1;
                continue;
            }
            c.syncing = true;
            let gather = Instant::now() + (c.last_sync / 2).min(MAX_GATHER);
            let until = deadline.map_or(gather, |d| d.min(gather));
            while c.written - c.synced < c.last_group {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                c.gathering = true;
                c = wait(&self.work, c, Some(until - now));
                c.gathering = false;
            }
            let target = c.written;
            c.last_group = target - c.synced;
            c.rounds += 1;
            drop(c);
            let mut round = Round {
                committer: self,
                target,
                result: None,
                started: Instant::now(),
            };
            round.result = Some(self.store.sync());
            drop(round);
            c = lock(&self.counts);
        }
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

    /// How many syncs covered how many batches so far, for the log.
    pub fn summary(&self) -> (u64, u64) {
        let c = lock(&self.counts);
        (c.rounds, c.written)
    }
}
