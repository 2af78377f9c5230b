//! The ready thread of a watched channel output. A crossbeam `Receiver`
//! has no hook to call when a delivery arrives, so the readiness fd of a
//! channel output is fed by one named thread (`syncmq-ffi-ready:<channel>`)
//! that blocks on the output, moves one delivery at a time into a one-slot
//! buffer shared with `syncmq_channel_receive`, and signals the fd. The
//! thread calls nothing of the host's: it only moves deliveries and writes
//! a byte.
//!
//! Watching an output therefore holds one delivery ahead of the host (a
//! prefetch of 1): while it waits in the slot no other receiver of the
//! output can take it. The adapter handle owns the thread, and stops and
//! joins it when it closes; a delivery still in the slot then is dropped
//! unsettled (its adapter redelivers it as it documents).

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use syncmq::crossbeam_channel::{self, select, Receiver, RecvTimeoutError, Sender};
use syncmq::{Delivery, Error, Result};

use crate::readiness::Readiness;

/// A watched output: its ready thread, the slot it fills and the fd it
/// signals.
pub(crate) struct Watch {
    channel: String,
    slot: Arc<Slot>,
    readiness: Readiness,
    /// Dropped to stop the thread: its `select!` then wakes. (Mutexes
    /// here and below so that a watch shared with receivers can be
    /// stopped through a shared reference.)
    stop: Mutex<Option<Sender<()>>>,
    /// Disconnected when the thread ends (it holds the sender), so that a
    /// stop can wait for it with a deadline, which `join` cannot.
    done: Receiver<()>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

/// The one-slot buffer between the ready thread and the receivers.
struct Slot {
    state: Mutex<SlotState>,
    /// Notified when the slot is filled or emptied, the output ended or a
    /// stop began.
    changed: Condvar,
}

#[derive(Default)]
struct SlotState {
    item: Option<Delivery>,
    /// The output disconnected: nothing more will come.
    ended: bool,
    /// The handle is closing: the thread must not wait for room.
    stopping: bool,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        // A receiver or the thread panicking never leaves the state half
        // changed (each change is one assignment).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a receive would not wait: a delivery is in the slot, or
    /// the output ended.
    fn ready(&self) -> bool {
        let state = self.lock();
        state.item.is_some() || state.ended
    }
}

impl Watch {
    /// Starts the ready thread of `channel`'s `output`.
    ///
    /// # Errors
    ///
    /// `Io` when the OS refuses the socket pair or the thread.
    pub(crate) fn start(channel: &str, output: Receiver<Delivery>) -> Result<Watch> {
        let readiness = Readiness::new()?;
        let slot = Arc::new(Slot {
            state: Mutex::default(),
            changed: Condvar::new(),
        });
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let (finished, done) = crossbeam_channel::bounded::<()>(0);
        let signal = readiness.watcher();
        let filled = slot.clone();
        let worker = std::thread::Builder::new()
            .name(format!("syncmq-ffi-ready:{channel}"))
            .spawn(move || {
                // Held until the thread ends: its drop tells `stop`.
                let _finished = finished;
                run(&output, &stopped, &filled, &*signal);
            })
            .map_err(|e| Error::io(format!("start the ready thread of channel `{channel}`"), e))?;
        Ok(Watch {
            channel: channel.to_string(),
            slot,
            readiness,
            stop: Mutex::new(Some(stop)),
            done,
            worker: Mutex::new(Some(worker)),
        })
    }

    /// The fd the host polls.
    pub(crate) fn fd(&self) -> std::os::fd::RawFd {
        self.readiness.fd()
    }

    /// Takes the delivery in the slot, waiting up to `timeout` (`None`:
    /// without limit) for the thread to bring one; `Ok(None)` when none
    /// came in time. Brings the fd up to date before it returns.
    ///
    /// # Errors
    ///
    /// `Closed` once the output ended and the slot is empty.
    pub(crate) fn receive(&self, timeout: Option<Duration>) -> Result<Option<Delivery>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = self.slot.lock();
        let got = loop {
            if let Some(delivery) = state.item.take() {
                break Ok(Some(delivery));
            }
            if state.ended {
                break Err(Error::closed(format!(
                    "the output of channel `{}`",
                    self.channel
                )));
            }
            match deadline {
                None => {
                    state = self
                        .slot
                        .changed
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break Ok(None);
                    }
                    state = self
                        .slot
                        .changed
                        .wait_timeout(state, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        };
        drop(state);
        // The thread may be waiting for room.
        self.slot.changed.notify_all();
        self.readiness.rearm_with(|| self.slot.ready());
        got
    }

    /// Stops the thread and joins it, waiting until `deadline`.
    ///
    /// # Errors
    ///
    /// `Timeout` when it did not stop in time (it is left to end on its
    /// own: it only waits on the output and the slot, both of which the
    /// stop woke).
    pub(crate) fn stop(&self, deadline: Instant) -> Result<()> {
        let Some(worker) = self
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return Ok(());
        };
        self.slot.lock().stopping = true;
        self.slot.changed.notify_all();
        drop(
            self.stop
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        match self.done.recv_deadline(deadline) {
            Err(RecvTimeoutError::Timeout) => Err(Error::timeout(
                format!("the ready thread of channel `{}` to stop", self.channel),
                deadline.saturating_duration_since(Instant::now()),
            )),
            // Disconnected: the thread is ending (`Ok` cannot come: nothing
            // is sent).
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                if worker.join().is_err() {
                    log::error!(
                        "syncmq-ffi: the ready thread of channel `{}` panicked",
                        self.channel
                    );
                }
                Ok(())
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Err(e) = self.stop(Instant::now() + STOP_TIMEOUT) {
            log::warn!("syncmq-ffi: {e}");
        }
    }
}

/// How long a stop waits for a ready thread: `syncmq_adapter_close` for
/// all of them together, a watch dropped without a stop for its own.
pub(crate) const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The ready thread: one delivery at a time from `output` into the slot,
/// a byte to the fd for each, until told to stop or the output ends.
fn run(output: &Receiver<Delivery>, stop: &Receiver<()>, slot: &Slot, signal: &dyn Fn()) {
    loop {
        let next = select! {
            recv(output) -> delivery => delivery.ok(),
            recv(stop) -> _ => return,
        };
        let mut state = slot.lock();
        let Some(delivery) = next else {
            state.ended = true;
            drop(state);
            slot.changed.notify_all();
            // Readable for good: the next receive says the output ended.
            signal();
            return;
        };
        while state.item.is_some() && !state.stopping {
            state = slot
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.stopping {
            drop(state);
            // Dropped unsettled, outside the lock: its adapter gives it
            // back as it documents.
            drop(delivery);
            return;
        }
        state.item = Some(delivery);
        drop(state);
        slot.changed.notify_all();
        signal();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use syncmq::{Acker, Message};

    /// Counts the deliveries dropped unsettled.
    struct Counting(Arc<AtomicUsize>);

    impl Acker for Counting {
        fn ack(self: Box<Self>, _multiple: bool) -> Result<()> {
            Ok(())
        }
        fn nack(self: Box<Self>, _requeue: bool) -> Result<()> {
            Ok(())
        }
        fn release(self: Box<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn delivery(body: &str, released: &Arc<AtomicUsize>) -> Delivery {
        Delivery::new(Message::from(body), Box::new(Counting(released.clone())))
    }

    #[test]
    fn one_is_held_ahead_and_a_stop_drops_what_the_thread_holds() {
        let released = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = crossbeam_channel::unbounded();
        let watch = Watch::start("t", rx.clone()).unwrap();
        for body in ["a", "b", "c"] {
            tx.send(delivery(body, &released)).unwrap();
        }
        let first = watch.receive(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(first.unwrap().body(), b"a");
        // Now "b" goes to the slot and the thread takes "c", then waits for
        // room: the output empties.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !rx.is_empty() {
            assert!(Instant::now() < deadline, "the thread never took `c`");
            std::thread::yield_now();
        }
        assert_eq!(
            released.load(Ordering::SeqCst),
            1,
            "`a` was dropped unsettled"
        );
        watch.stop(Instant::now() + Duration::from_secs(5)).unwrap();
        drop(watch);
        assert_eq!(
            released.load(Ordering::SeqCst),
            3,
            "`b` (in the slot) and `c` (waiting for room) are dropped by the stop"
        );
        drop(tx);
    }

    #[test]
    fn an_ended_output_is_closed_after_the_slot_is_emptied() {
        let released = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = crossbeam_channel::unbounded();
        let watch = Watch::start("t", rx).unwrap();
        tx.send(delivery("last", &released)).unwrap();
        drop(tx);
        let last = watch.receive(None).unwrap().unwrap();
        assert_eq!(last.body(), b"last");
        last.ack().unwrap();
        // The thread sees the end after it handed "last" on: a receive
        // that waits for it gets `Closed` as soon as it does (the wait is
        // woken by the change, the limit only bounds a broken thread).
        assert!(matches!(
            watch.receive(Some(Duration::from_secs(10))),
            Err(Error::Closed(_))
        ));
        assert_eq!(released.load(Ordering::SeqCst), 0);
    }
}
