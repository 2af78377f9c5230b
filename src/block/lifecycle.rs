//! The [`Block`] trait: the life cycle every block goes through.
//!
//! ```text
//! init        on the caller of Runtime::start, in configuration order
//! run         on the block's own run thread, once every block is initialised
//! on_connect  ┐
//! on_enqueue  ├ on the block's own event thread, one at a time, in the order sent
//! on_disconnect┘
//! finish      on the event thread, after the events queued before it;
//!             blocks are finished in reverse configuration order
//! ```
//!
//! After `run` starts, the order of the callbacks across blocks is whatever
//! the blocks and the server make it, as in the Go adapter. Within one block the
//! callbacks never overlap; they may run at the same time as that block's
//! own `run`, so a block keeps its state behind a `Mutex` or atomics
//! (`Block` methods take `&self`).

use std::ops::BitOr;

use crate::block::bag::{Bag, Value};
use crate::block::controller::Controller;
use crate::block::server::ServerEvent;
use crate::error::Result;

/// Which optional callbacks a block implements.
///
/// Rust cannot tell whether a trait method was overridden, so a block says
/// so in [`Block::callbacks`]. A controller's `enqueue` returns `false` for a
/// block without [`Callbacks::ENQUEUE`], and the runtime sends no server
/// events to a block without [`Callbacks::CONNECT`] or
/// [`Callbacks::DISCONNECT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Callbacks(u8);

impl Callbacks {
    /// None of the optional callbacks.
    pub const NONE: Callbacks = Callbacks(0);
    /// [`Block::on_enqueue`].
    pub const ENQUEUE: Callbacks = Callbacks(1);
    /// [`Block::on_connect`].
    pub const CONNECT: Callbacks = Callbacks(2);
    /// [`Block::on_disconnect`].
    pub const DISCONNECT: Callbacks = Callbacks(4);
    /// Both server callbacks.
    pub const SERVER: Callbacks = Callbacks(2 | 4);
    /// Every optional callback.
    pub const ALL: Callbacks = Callbacks(1 | 2 | 4);

    /// True when every callback in `other` is in `self`.
    pub const fn contains(self, other: Callbacks) -> bool {
        self.0 & other.0 == other.0
    }

    /// The callbacks in either.
    pub const fn union(self, other: Callbacks) -> Callbacks {
        Callbacks(self.0 | other.0)
    }
}

impl BitOr for Callbacks {
    type Output = Callbacks;

    fn bitor(self, rhs: Callbacks) -> Callbacks {
        self.union(rhs)
    }
}

/// One block of a process: the Go adapter's `Block` with its callbacks as
/// methods.
///
/// A block's *name* (its kind, the key of its factory in the
/// [`Registry`](crate::block::Registry)) and *responsibility* (this
/// instance) come from the configuration and are on the [`Controller`], so
/// two blocks of one kind run side by side under different
/// responsibilities.
///
/// ```
/// use std::sync::Mutex;
/// use syncmq::block::{Bag, Block, Callbacks, Controller, Value};
///
/// /// Counts the bags it receives.
/// #[derive(Default)]
/// struct Counter { seen: Mutex<u64> }
///
/// impl Block for Counter {
///     fn init(&self, _conf: &Value) -> syncmq::Result<()> { Ok(()) }
///     fn run(&self, _ctl: Controller) {}
///     fn finish(&self) -> syncmq::Result<()> { Ok(()) }
///     fn callbacks(&self) -> Callbacks { Callbacks::ENQUEUE }
///     fn on_enqueue(&self, _ctl: &Controller, _bag: Bag) {
///         *self.seen.lock().unwrap() += 1;
///     }
/// }
/// ```
pub trait Block: Send + Sync + 'static {
    /// Prepares the block with its own configuration (`Value::Null` when
    /// the configuration gives none). Runs once, on the thread that starts
    /// the runtime, in configuration order. Keep it short and do not use the
    /// server yet: that is for after `on_connect`.
    ///
    /// # Errors
    ///
    /// Any error stops the start: the blocks initialised before this one
    /// are finished in reverse order and the caller gets
    /// [`Error::Block`](crate::Error::Block) naming this block and `init`.
    fn init(&self, conf: &Value) -> Result<()>;

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

    /// The optional callbacks this block implements; none by default.
    fn callbacks(&self) -> Callbacks {
        Callbacks::NONE
    }

    /// A bag sent to this block, with `__from` set by the runtime. Called
    /// only when [`callbacks`](Self::callbacks) has [`Callbacks::ENQUEUE`].
    fn on_enqueue(&self, ctl: &Controller, bag: Bag) {
        let _ = (ctl, bag);
    }

    /// The server connected (again: `server.epoch()` tells connections
    /// apart). Called only with [`Callbacks::CONNECT`].
    fn on_connect(&self, ctl: &Controller, server: &ServerEvent) {
        let _ = (ctl, server);
    }

    /// A server that was connected went away. Called only with
    /// [`Callbacks::DISCONNECT`].
    fn on_disconnect(&self, ctl: &Controller, server: &ServerEvent) {
        let _ = (ctl, server);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callbacks_combine() {
        let c = Callbacks::ENQUEUE | Callbacks::CONNECT;
        assert!(c.contains(Callbacks::ENQUEUE));
        assert!(!c.contains(Callbacks::SERVER));
        assert!(Callbacks::ALL.contains(c));
        assert!(c.contains(Callbacks::NONE));
        assert_eq!(Callbacks::default(), Callbacks::NONE);
    }
}
