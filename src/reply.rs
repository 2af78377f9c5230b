//! [`Replies`]: one-shot answers from a worker thread to the callers
//! waiting for them, all on one condition variable, and a close that ends
//! every wait at once.
//!
//! A pipelined publish waits for one answer from the thread that does the
//! work (a confirm from the publishing thread). A bounded channel per
//! publish does that, at a cost that shows at tens of thousands of
//! messages a second: a crossbeam channel is several hundred zeroed bytes,
//! and a wait with a timeout makes a timer channel too. Here an answer is
//! one small shared cell, and every caller of one worker waits on the same
//! condition variable, which the worker signals only when somebody waits.
//! The close ([`Replies::close`]) wakes every waiter even if the worker
//! never answers (a thread stuck in a call to a frozen peer).

use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use crate::thread::lock;

/// The waits of one worker's callers.
pub(crate) struct Replies {
    state: Mutex<Waits>,
    changed: Condvar,
}

struct Waits {
    /// Callers blocked in [`Answer::wait_until`] now.
    waiting: usize,
    closed: bool,
}

/// Where one answer goes: held by the worker, given a value by
/// [`send`](Self::send). Dropped without a value, its waiter hears
/// [`Outcome::Dropped`].
pub(crate) struct Reply<T> {
    cell: Arc<Cell<T>>,
    replies: Arc<Replies>,
    /// Given its answer: the drop has nothing to settle (and no waiter to
    /// wake a second time).
    sent: bool,
}

/// Where one answer is waited for: held by the caller.
pub(crate) struct Answer<T> {
    cell: Arc<Cell<T>>,
    replies: Arc<Replies>,
}

type Cell<T> = Mutex<Slot<T>>;

enum Slot<T> {
    Waiting,
    Sent(T),
    Dropped,
    Taken,
}

/// How a wait ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome<T> {
    Answered(T),
    /// The worker dropped the reply without an answer.
    Dropped,
    /// [`Replies::close`] was called before any answer came.
    Closed,
    TimedOut,
}

impl Replies {
    pub(crate) fn new() -> Arc<Replies> {
        Arc::new(Replies {
            state: Mutex::new(Waits {
                waiting: 0,
                closed: false,
            }),
            changed: Condvar::new(),
        })
    }

    /// A new reply and the answer that waits for it.
    pub(crate) fn pair<T>(self: &Arc<Self>) -> (Reply<T>, Answer<T>) {
        let cell = Arc::new(Mutex::new(Slot::Waiting));
        let reply = Reply {
            cell: cell.clone(),
            replies: self.clone(),
            sent: false,
        };
        (
            reply,
            Answer {
                cell,
                replies: self.clone(),
            },
        )
    }

    /// Ends every wait that has no answer yet with [`Outcome::Closed`], now
    /// and later.
    pub(crate) fn close(&self) {
        lock(&self.state).closed = true;
        self.changed.notify_all();
    }

    /// Wakes the waiters, if any, to look at their cells.
    fn wake(&self) {
        // Under the lock: a waiter checks its cell and goes to sleep
        // holding it, so it either saw the new value or is asleep now.
        let state = lock(&self.state);
        if state.waiting > 0 {
            self.changed.notify_all();
        }
    }
}

impl<T> Reply<T> {
    /// Gives the answer to its waiter.
    pub(crate) fn send(mut self, value: T) {
        self.settle(Slot::Sent(value));
        self.sent = true;
    }

    fn settle(&self, slot: Slot<T>) {
        {
            let mut cell = lock(&self.cell);
            if matches!(*cell, Slot::Waiting) {
                *cell = slot;
            }
        }
        self.replies.wake();
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        if !self.sent {
            self.settle(Slot::Dropped);
        }
    }
}

impl<T> Answer<T> {
    /// Waits until the answer comes, the reply is dropped, the replies are
    /// closed, or `deadline` passes (`None`: no deadline). An answer that
    /// came wins over a close.
    pub(crate) fn wait_until(&self, deadline: Option<Instant>) -> Outcome<T> {
        let mut state = lock(&self.replies.state);
        loop {
            {
                let mut cell = lock(&self.cell);
                match std::mem::replace(&mut *cell, Slot::Taken) {
                    Slot::Sent(value) => return Outcome::Answered(value),
                    Slot::Dropped | Slot::Taken => return Outcome::Dropped,
                    Slot::Waiting => *cell = Slot::Waiting,
                }
            }
            if state.closed {
                return Outcome::Closed;
            }
            state.waiting += 1;
            state = match deadline {
                None => match self.replies.changed.wait(state) {
                    Ok(state) => state,
                    Err(poisoned) => poisoned.into_inner(),
                },
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        state.waiting -= 1;
                        return Outcome::TimedOut;
                    }
                    match self.replies.changed.wait_timeout(state, deadline - now) {
                        Ok((state, _)) => state,
                        Err(poisoned) => poisoned.into_inner().0,
                    }
                }
            };
            state.waiting -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    #[test]
    fn an_answer_reaches_a_waiter_on_another_thread() {
        let replies = Replies::new();
        let (reply, answer) = replies.pair::<u32>();
        let waiter = std::thread::spawn(move || answer.wait_until(Some(soon())));
        reply.send(7);
        assert_eq!(waiter.join().unwrap(), Outcome::Answered(7));
    }

    #[test]
    fn an_answer_sent_before_the_wait_is_kept() {
        let replies = Replies::new();
        let (reply, answer) = replies.pair::<&str>();
        reply.send("ok");
        assert_eq!(answer.wait_until(Some(soon())), Outcome::Answered("ok"));
    }

    #[test]
    fn a_dropped_reply_ends_the_wait() {
        let replies = Replies::new();
        let (reply, answer) = replies.pair::<u32>();
        let waiter = std::thread::spawn(move || answer.wait_until(Some(soon())));
        drop(reply);
        assert_eq!(waiter.join().unwrap(), Outcome::Dropped);
    }

    #[test]
    fn close_ends_every_wait_without_an_answer_but_keeps_answers() {
        let replies = Replies::new();
        let (_stuck, first) = replies.pair::<u32>();
        let (_also_stuck, second) = replies.pair::<u32>();
        let (answered, third) = replies.pair::<u32>();
        answered.send(3);
        let waiters: Vec<_> = [first, second]
            .into_iter()
            .map(|a| std::thread::spawn(move || a.wait_until(Some(soon()))))
            .collect();
        replies.close();
        for waiter in waiters {
            assert_eq!(waiter.join().unwrap(), Outcome::Closed);
        }
        assert_eq!(third.wait_until(Some(soon())), Outcome::Answered(3));
    }

    #[test]
    fn a_wait_times_out_at_its_deadline() {
        let replies = Replies::new();
        let (_reply, answer) = replies.pair::<u32>();
        let deadline = Instant::now() + Duration::from_millis(20);
        assert_eq!(answer.wait_until(Some(deadline)), Outcome::TimedOut);
        assert!(Instant::now() >= deadline);
    }

    #[test]
    fn many_answers_from_one_worker_reach_many_waiters() {
        let replies = Replies::new();
        let (replies_out, answers): (Vec<_>, Vec<_>) = (0..200u32).map(|_| replies.pair()).unzip();
        let waiters: Vec<_> = answers
            .into_iter()
            .enumerate()
            .map(|(i, a)| std::thread::spawn(move || (i, a.wait_until(Some(soon())))))
            .collect();
        let worker = std::thread::spawn(move || {
            for (i, reply) in replies_out.into_iter().enumerate() {
                reply.send(u32::try_from(i).unwrap());
            }
        });
        worker.join().unwrap();
        for waiter in waiters {
            let (i, outcome) = waiter.join().unwrap();
            assert_eq!(outcome, Outcome::Answered(u32::try_from(i).unwrap()));
        }
    }
}
