//! [`Controller`]: how a block reaches another block (or itself), and
//! asks the runtime to finish one or to close.

use std::fmt;
use std::sync::Arc;

use crossbeam_channel::Receiver;

use crate::block::bag::Bag;
use crate::block::event::{DependencyEvent, Event};
use crate::block::hub::{Control, Hub};
use crate::error::{Error, Result};

/// A handle on one block, held by a block or by the runtime's owner.
///
/// A controller points at one block, its *target*, and remembers who holds
/// it, its *sender*: `run` gets the block's own controller (target and
/// sender are the block itself), and
/// [`controller(responsibility)`](Controller::controller) gives one for
/// another target with the same sender. Every bag sent through it arrives
/// with `__from` set to the sender's responsibility.
///
/// Every call is asynchronous, as in the memphis Go adapter: it queues an
/// event on the target's event thread and returns. Sends never block (the
/// queues are unbounded), so a block may enqueue to itself from inside its
/// own callback. A send to a block that is finishing or finished fails.
///
/// Cheap to clone and `Send + Sync`: keep it in the block, pass it to
/// helper threads.
#[derive(Clone)]
pub struct Controller {
    hub: Arc<Hub>,
    target: usize,
    /// The block holding this controller; `None` outside the blocks.
    sender: Option<usize>,
}

impl fmt::Debug for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Controller")
            .field("target", &self.responsibility())
            .field(
                "sender",
                &self.sender.map(|s| &self.hub.slots[s].responsibility),
            )
            .finish()
    }
}

impl Controller {
    pub(crate) fn new(hub: Arc<Hub>, target: usize, sender: Option<usize>) -> Self {
        Controller {
            hub,
            target,
            sender,
        }
    }

    /// The target's name: its kind.
    pub fn name(&self) -> &str {
        &self.hub.slots[self.target].name
    }

    /// The target's responsibility: its instance.
    pub fn responsibility(&self) -> &str {
        &self.hub.slots[self.target].responsibility
    }

    /// A controller for the block with this responsibility, held by the
    /// same sender; `None` when no block has it.
    pub fn controller(&self, responsibility: &str) -> Option<Controller> {
        let target = self.hub.index_of(responsibility)?;
        Some(Controller::new(self.hub.clone(), target, self.sender))
    }

    /// The responsibilities of every block, in configuration order.
    pub fn responsibilities(&self) -> impl Iterator<Item = &str> {
        self.hub.slots.iter().map(|s| s.responsibility.as_str())
    }

    /// Sends `bag` to the target, which gets it in its `on_enqueue` after
    /// everything sent to it before. True when it was queued; false when the
    /// target is finishing or the bag carries a key starting with `__` (see
    /// [`try_enqueue`](Self::try_enqueue) for which).
    pub fn enqueue(&self, bag: Bag) -> bool {
        match self.try_enqueue(bag) {
            Ok(()) => true,
            Err(e) => {
                log::debug!("enqueue to `{}` refused: {e}", self.responsibility());
                false
            }
        }
    }

    /// As [`enqueue`](Self::enqueue), saying why a bag was refused.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming a key that starts with `__`;
    /// [`Error::Closed`] when the target is finishing or finished.
    pub fn try_enqueue(&self, mut bag: Bag) -> Result<()> {
        if let Some(key) = bag.reserved_key() {
            return Err(Error::invalid(
                key.to_string(),
                "keys starting with `__` are the block runtime's",
            ));
        }
        let from = self
            .sender
            .map(|s| self.hub.slots[s].responsibility.as_str());
        bag.set_from(from);
        self.hub.send(self.target, Event::Enqueue(bag))
    }

    /// Tells the target a dependency connected: its `on_connect` runs on
    /// its event thread. True when queued; false when the target is
    /// finishing.
    pub fn dependency_connected(&self, event: &DependencyEvent) -> bool {
        self.hub
            .send(self.target, Event::Connect(event.clone()))
            .is_ok()
    }

    /// Tells the target a dependency went away: its `on_disconnect` runs on
    /// its event thread. True when queued; false when the target is
    /// finishing.
    pub fn dependency_disconnected(&self, event: &DependencyEvent) -> bool {
        self.hub
            .send(self.target, Event::Disconnect(event.clone()))
            .is_ok()
    }

    /// Asks the runtime to finish the target now, out of order: its queued
    /// events, then its `finish`, then the end of its `run`. Returns at
    /// once; the runtime's owner thread (in
    /// [`Runtime::run_until_closed`](crate::block::Runtime::run_until_closed))
    /// does the work.
    pub fn finish(&self) {
        self.hub.request(Control::Finish(self.target));
    }

    /// Asks the runtime to close: to finish every block in reverse order
    /// (the Go adapter's `Controller(InitiatorBlock).Finish()`). Returns at
    /// once; [`Runtime::run_until_closed`](crate::block::Runtime::run_until_closed)
    /// does the work.
    pub fn close_runtime(&self) {
        let who = match self.sender {
            Some(s) => format!("block `{}`", self.hub.slots[s].responsibility),
            None => "the runtime's owner".to_string(),
        };
        self.hub.request(Control::Close(who));
    }

    /// How many events (bags, dependency events) wait in the target's queue.
    /// The queues are unbounded so that no send ever blocks; a sender that
    /// can outrun its target watches this, or better, waits for replies as
    /// the satellite example's reader does.
    pub fn queued(&self) -> usize {
        self.hub.queued(self.target)
    }

    /// True once the runtime started finishing the target.
    pub fn is_finishing(&self) -> bool {
        self.hub.token(self.target).is_stopped()
    }

    /// True once anyone asked the runtime to close, or it is closing.
    pub fn is_closing(&self) -> bool {
        self.hub.is_closing()
    }

    /// A receiver that becomes ready (disconnected) when the runtime starts
    /// finishing the target: put it in a `select!` next to the channel the
    /// block's `run` blocks on.
    pub fn finishing(&self) -> &Receiver<()> {
        self.hub.token(self.target).receiver()
    }

    /// Starts a helper thread for the target, named
    /// `syncmq-blk-{responsibility}-{name}`. The runtime joins it, within
    /// the target's finish deadline, after the target's `finish` and `run`:
    /// `f` must return once [`finishing`](Self::finishing) is ready or
    /// `finish` released what it blocks on.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] when the target already finished (the thread is
    /// then not started); [`Error::Io`] when the OS refuses a thread.
    pub fn spawn<F>(&self, name: &str, f: F) -> Result<()>
    where
        F: FnOnce() + Send + 'static,
    {
        if !self.hub.is_open(self.target) {
            return Err(Error::closed(format!(
                "block `{}` (finishing or finished)",
                self.responsibility()
            )));
        }
        let name = format!("blk-{}-{name}", self.responsibility());
        self.hub.spawn_helper(self.target, name, f)
    }
}
