//! The hub: the table every controller reads, one slot per block.
//!
//! A slot holds the block's name and responsibility, the sending
//! side of its event queue, its stop signal and its helper threads. The
//! runtime builds the hub once every block is initialised and shares it with
//! every [`Controller`](crate::block::Controller).
//!
//! # Ordering
//!
//! Events to one block go through one unbounded crossbeam channel, so they
//! arrive in the order they were sent and a send never blocks (a block may
//! enqueue to itself from its own callback). Finishing a block takes the
//! sender out of its slot under a write lock and sends `Finish` last: no
//! event can be queued behind `Finish`, so an event whose send succeeded is
//! always delivered before `finish` runs, and every later send fails.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crossbeam_channel::{Receiver, Sender};

use crate::block::event::Event;
use crate::error::{Error, Result};
use crate::thread::{lock, read, stop_signal, write, StopToken, Stopper, Worker};

/// What the runtime's owner thread receives from controllers and handles.
#[derive(Debug)]
pub(crate) enum Control {
    /// Close the runtime: finish every block in reverse order; the text
    /// says who asked.
    Close(String),
    /// Finish this one block now, out of order.
    Finish(usize),
}

pub(crate) struct Slot {
    pub(crate) name: String,
    pub(crate) responsibility: String,
    events: RwLock<Option<Sender<Event>>>,
    token: StopToken,
    stopper: Mutex<Option<Stopper>>,
    helpers: Mutex<Helpers>,
}

#[derive(Default)]
struct Helpers {
    closed: bool,
    workers: Vec<Worker<()>>,
}

pub(crate) struct Hub {
    pub(crate) slots: Vec<Slot>,
    index: HashMap<String, usize>,
    control: Sender<Control>,
    closing: AtomicBool,
}

/// What a new hub hands back to the runtime.
pub(crate) struct Wiring {
    pub(crate) hub: Arc<Hub>,
    pub(crate) events: Vec<Receiver<Event>>,
    pub(crate) control: Receiver<Control>,
}

impl Hub {
    /// A hub for blocks given as (name, responsibility), in
    /// configuration order.
    pub(crate) fn wire(blocks: Vec<(String, String)>) -> Wiring {
        let (control_tx, control_rx) = crossbeam_channel::unbounded();
        let mut slots = Vec::with_capacity(blocks.len());
        let mut events = Vec::with_capacity(blocks.len());
        let mut index = HashMap::new();
        for (i, (name, responsibility)) in blocks.into_iter().enumerate() {
            let (tx, rx) = crossbeam_channel::unbounded();
            let (stopper, token) = stop_signal();
            index.insert(responsibility.clone(), i);
            slots.push(Slot {
                name,
                responsibility,
                events: RwLock::new(Some(tx)),
                token,
                stopper: Mutex::new(Some(stopper)),
                helpers: Mutex::new(Helpers::default()),
            });
            events.push(rx);
        }
        Wiring {
            hub: Arc::new(Hub {
                slots,
                index,
                control: control_tx,
                closing: AtomicBool::new(false),
            }),
            events,
            control: control_rx,
        }
    }

    pub(crate) fn index_of(&self, responsibility: &str) -> Option<usize> {
        self.index.get(responsibility).copied()
    }

    /// Queues `event` for block `target`.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the block is finishing.
    pub(crate) fn send(&self, target: usize, event: Event) -> Result<()> {
        let slot = &self.slots[target];
        let guard = read(&slot.events);
        match guard.as_ref() {
            Some(tx) if tx.send(event).is_ok() => Ok(()),
            _ => Err(Error::closed(format!(
                "block `{}` (finishing or finished)",
                slot.responsibility
            ))),
        }
    }

    /// Queues `Finish` behind everything already queued for `target` and
    /// closes its queue. False when that was done before.
    pub(crate) fn close_events(&self, target: usize) -> bool {
        let slot = &self.slots[target];
        let mut guard = write(&slot.events);
        match guard.take() {
            Some(tx) => {
                // The event thread may be gone (it panicked outside a
                // callback); the join that follows reports that.
                let _ = tx.send(Event::Finish);
                true
            }
            None => false,
        }
    }

    /// Events waiting in `target`'s queue.
    pub(crate) fn queued(&self, target: usize) -> usize {
        read(&self.slots[target].events)
            .as_ref()
            .map_or(0, Sender::len)
    }

    /// True while `target` still takes events.
    pub(crate) fn is_open(&self, target: usize) -> bool {
        read(&self.slots[target].events).is_some()
    }

    pub(crate) fn token(&self, target: usize) -> &StopToken {
        &self.slots[target].token
    }

    /// Fires `target`'s stop signal: its `Controller::finishing` becomes
    /// ready.
    pub(crate) fn signal_finishing(&self, target: usize) {
        if let Some(mut stopper) = lock(&self.slots[target].stopper).take() {
            stopper.stop();
        }
    }

    /// Starts a helper thread owned by `target`'s slot, to be joined when
    /// the block finishes.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the block's helpers were collected (nothing is
    /// started then); [`Error::Io`] when the OS refuses a thread.
    pub(crate) fn spawn_helper<F>(&self, target: usize, name: String, f: F) -> Result<()>
    where
        F: FnOnce() + Send + 'static,
    {
        let slot = &self.slots[target];
        let mut helpers = lock(&slot.helpers);
        if helpers.closed {
            return Err(Error::closed(format!(
                "block `{}` (finished)",
                slot.responsibility
            )));
        }
        // Reap the helpers that ended, so a long-lived block that starts one
        // per connection does not pile them up.
        let (done, running): (Vec<_>, Vec<_>) = std::mem::take(&mut helpers.workers)
            .into_iter()
            .partition(Worker::is_finished);
        helpers.workers = running;
        helpers.workers.push(crate::thread::spawn(name, f)?);
        drop(helpers);
        for w in done {
            if let Err(e) = w.join() {
                log::error!("a helper of block `{}` failed: {e}", slot.responsibility);
            }
        }
        Ok(())
    }

    /// Takes `target`'s helper threads; later `spawn_helper` calls fail.
    pub(crate) fn take_helpers(&self, target: usize) -> Vec<Worker<()>> {
        let mut helpers = lock(&self.slots[target].helpers);
        helpers.closed = true;
        std::mem::take(&mut helpers.workers)
    }

    pub(crate) fn request(&self, control: Control) {
        if let Control::Close(_) = control {
            self.set_closing();
        }
        // The receiver lives as long as the runtime; after it is gone there
        // is nobody left to ask.
        let _ = self.control.send(control);
    }

    /// Marks the runtime as closing, for `Controller::is_closing`.
    pub(crate) fn set_closing(&self) {
        self.closing.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }
}
