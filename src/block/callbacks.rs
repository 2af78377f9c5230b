//! [`Callbacks`]: which optional callbacks of the `Block` trait a block
//! implements. Its own file because the controller, the hub and the
//! monitor read it as well as the trait.

use std::ops::BitOr;

/// Which optional callbacks a block implements.
///
/// Rust cannot tell whether a trait method was overridden, so a block says
/// so in [`Block::callbacks`](crate::block::Block::callbacks). A
/// controller's `enqueue` returns `false` for a block without
/// [`Callbacks::ENQUEUE`], and the runtime sends no dependency events to a
/// block without [`Callbacks::CONNECT`] or [`Callbacks::DISCONNECT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Callbacks(u8);

impl Callbacks {
    /// None of the optional callbacks.
    pub const NONE: Callbacks = Callbacks(0);
    /// [`Block::on_enqueue`](crate::block::Block::on_enqueue).
    pub const ENQUEUE: Callbacks = Callbacks(1);
    /// [`Block::on_connect`](crate::block::Block::on_connect).
    pub const CONNECT: Callbacks = Callbacks(2);
    /// [`Block::on_disconnect`](crate::block::Block::on_disconnect).
    pub const DISCONNECT: Callbacks = Callbacks(4);
    /// Both dependency callbacks: `on_connect` and `on_disconnect`.
    pub const DEPENDENCY: Callbacks = Callbacks(2 | 4);
    /// Every optional callback.
    pub const ALL: Callbacks = Callbacks(1 | 2 | 4);

    /// True when every callback in `other` is in `self`.
    pub const fn contains(self, other: Callbacks) -> bool {
        self.0 & other.0 == other.0
    }

    /// The callbacks in either.
    #[must_use]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callbacks_combine() {
        let c = Callbacks::ENQUEUE | Callbacks::CONNECT;
        assert!(c.contains(Callbacks::ENQUEUE));
        assert!(!c.contains(Callbacks::DEPENDENCY));
        assert!(Callbacks::ALL.contains(c));
        assert!(c.contains(Callbacks::NONE));
        assert_eq!(Callbacks::default(), Callbacks::NONE);
    }
}
