//! The [`Block`] trait: the life cycle every block goes through (a file
//! named `block.rs` inside the `block` module would repeat the module's
//! name).

use crate::block::bag::Bag;
use crate::block::controller::Controller;
use crate::block::event::DependencyEvent;
use crate::block::init_context::InitContext;
use crate::error::Result;

/// One block of a process: the memphis Go adapter's `Block`, with its
/// callbacks as methods.
///
/// `init`, `run` and `finish` are required; `on_enqueue`, `on_connect` and
/// `on_disconnect` are optional, and implementing one is all it takes for
/// the runtime to call it (the Go adapter's nil-or-set callback fields).
/// A bag sent to a block that does not implement `on_enqueue` is dropped
/// with a warning naming both blocks.
///
/// A block's *name* (its kind, the key of its factory in the
/// [`Registry`](crate::block::Registry)) and *responsibility* (this
/// instance) come from the configuration and are on the [`Controller`], so
/// two blocks of one kind run side by side under different
/// responsibilities.
///
/// # Life cycle
///
/// ```text
/// init          on the caller of Runtime::start, in configuration order
/// run           on the block's own run thread, once every block is initialised
/// on_connect    ┐
/// on_enqueue    ├ on the block's own event thread, one at a time, in the order sent
/// on_disconnect ┘
/// finish        on the event thread, after the events queued before it;
///               blocks are finished in reverse configuration order
/// ```
///
/// After `run` starts, the order of the callbacks across blocks is whatever
/// the blocks and the dependency make it, as in the Go adapter. Within one
/// block the callbacks never overlap; they may run at the same time as that
/// block's own `run`, so a block keeps its state behind a `Mutex` or
/// atomics (`Block` methods take `&self`).
///
/// ```
/// use std::sync::Mutex;
/// use syncmq::block::{Bag, Block, Controller, InitContext};
///
/// /// Counts the bags it receives.
/// #[derive(Default)]
/// struct Counter { seen: Mutex<u64> }
///
/// impl Block for Counter {
///     fn init(&self, _init: &InitContext<'_>) -> syncmq::Result<()> { Ok(()) }
///     fn run(&self, _ctl: Controller) {}
///     fn finish(&self) -> syncmq::Result<()> { Ok(()) }
///     fn on_enqueue(&self, _ctl: &Controller, _bag: Bag) {
///         *self.seen.lock().unwrap() += 1;
///     }
/// }
/// ```
pub trait Block: Send + Sync + 'static {
    /// Prepares the block: `init` holds its own configuration
    /// ([`InitContext::conf`], `Value::Null` when the configuration gives
    /// none) and the process's ([`InitContext::process`]). Runs once, on
    /// the thread that starts the runtime, in configuration order. Keep it
    /// short and do not use the dependency yet: that is for after
    /// `on_connect`.
    ///
    /// # Errors
    ///
    /// Any error stops the start: the blocks initialised before this one
    /// are finished in reverse order and the caller gets
    /// [`Error::Block`](crate::Error::Block) naming this block and `init`.
    fn init(&self, init: &InitContext<'_>) -> Result<()>;

    /// The block's own work, on its own thread, started once every block is
    /// initialised. `ctl` is the block's own controller: through it the
    /// block reaches the others. `run` may return at once (a block that only
    /// reacts to callbacks) or loop until the runtime finishes the block:
    /// [`Controller::finishing`] becomes ready then, and `finish` is called.
    fn run(&self, ctl: Controller);

    /// Releases what `init` and `run` took. Runs once, on the block's event
    /// thread after the events queued before it, while `run` may still be
    /// winding down; the runtime then joins `run` within the same deadline.
    ///
    /// # Errors
    ///
    /// Reported by the runtime as [`Error::Block`](crate::Error::Block)
    /// with stage `finish`; the other blocks are finished regardless.
    fn finish(&self) -> Result<()>;

    /// A bag sent to this block, with `__from` set by the runtime. `ctl`
    /// is the block's own controller. Without an implementation the bag is
    /// dropped and a warning names the sender and this block: a bag sent to
    /// a block that was not written to take bags is a wiring mistake.
    fn on_enqueue(&self, ctl: &Controller, bag: Bag) {
        log::warn!(
            "block `{}` (kind `{}`) does not implement on_enqueue: a bag from {} was dropped",
            ctl.responsibility(),
            ctl.name(),
            bag.from()
                .map_or_else(|| "the runtime's owner".to_string(), |f| format!("`{f}`"))
        );
    }

    /// A monitored dependency connected (again: `event.generation()` tells
    /// connections apart, `event.name()` which dependency, and
    /// [`event.dependency_as`](DependencyEvent::dependency_as) gives the
    /// dependency itself, typed). Nothing by default.
    fn on_connect(&self, ctl: &Controller, event: &DependencyEvent) {
        let _ = (ctl, event);
    }

    /// A monitored dependency that was connected went away. Nothing by
    /// default.
    fn on_disconnect(&self, ctl: &Controller, event: &DependencyEvent) {
        let _ = (ctl, event);
    }
}
