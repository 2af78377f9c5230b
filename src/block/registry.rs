//! [`Registry`]: block factories by name.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::block::lifecycle::Block;
use crate::block::signals::{SignalBlock, SIGNAL_BLOCK};
use crate::error::{Error, Result};

type Factory = dyn Fn(&str) -> Arc<dyn Block> + Send + Sync;

/// Block factories by name: the memphis Go adapter's
/// `RegisterBlockFactory`, without the global.
///
/// A registry maps a block's name (its kind) to a factory that makes a new
/// block for a responsibility; the runtime asks it for every block the
/// configuration lists. It is a value, not a process-wide table, so tests
/// build their own and never see each other's blocks. [`Registry::new`]
/// comes with the runtime's own blocks: the signal block, under
/// [`SIGNAL_BLOCK`] (`"finisher"`, the Go adapter's name for it).
///
/// ```
/// use syncmq::block::{Block, Controller, InitContext, Registry};
///
/// struct Idle;
/// impl Block for Idle {
///     fn init(&self, _: &InitContext<'_>) -> syncmq::Result<()> { Ok(()) }
///     fn run(&self, _: Controller) {}
///     fn finish(&self) -> syncmq::Result<()> { Ok(()) }
/// }
///
/// let mut registry = Registry::new();
/// registry.register("idle", |_responsibility| Idle).unwrap();
/// assert!(registry.contains("idle"));
/// assert!(registry.contains("finisher")); // the signal block comes built in
/// ```
#[derive(Clone)]
pub struct Registry {
    factories: BTreeMap<String, Arc<Factory>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("names", &self.factories.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// A registry holding the runtime's own blocks (the signal block).
    pub fn new() -> Self {
        let mut registry = Registry::empty();
        registry.insert(SIGNAL_BLOCK, |_| SignalBlock::new());
        registry
    }

    /// A registry holding nothing at all.
    pub fn empty() -> Self {
        Registry {
            factories: BTreeMap::new(),
        }
    }

    /// Registers `factory` under `name`. The factory gets the
    /// responsibility of the block it makes.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `name` is empty or already taken.
    pub fn register<B, F>(&mut self, name: impl Into<String>, factory: F) -> Result<()>
    where
        B: Block,
        F: Fn(&str) -> B + Send + Sync + 'static,
    {
        let name = name.into();
        if name.is_empty() {
            return Err(Error::invalid("name", "a block name must not be empty"));
        }
        if self.factories.contains_key(&name) {
            return Err(Error::invalid(
                "name",
                format!("a block factory is already registered under `{name}`"),
            ));
        }
        self.insert(&name, factory);
        Ok(())
    }

    fn insert<B, F>(&mut self, name: &str, factory: F)
    where
        B: Block,
        F: Fn(&str) -> B + Send + Sync + 'static,
    {
        let factory: Arc<Factory> =
            Arc::new(move |resp: &str| -> Arc<dyn Block> { Arc::new(factory(resp)) });
        self.factories.insert(name.to_string(), factory);
    }

    /// True when a factory is registered under `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.factories.contains_key(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.factories.keys().map(String::as_str)
    }

    /// A new block of kind `name` for `responsibility`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when no factory is registered under
    /// `name`; the message lists the names that are.
    pub fn make(&self, name: &str, responsibility: &str) -> Result<Arc<dyn Block>> {
        match self.factories.get(name) {
            Some(factory) => Ok(factory(responsibility)),
            None => Err(Error::invalid(
                "name",
                format!(
                    "no block factory is registered under `{name}` (for `{responsibility}`); registered: {}",
                    self.names().collect::<Vec<_>>().join(", ")
                ),
            )),
        }
    }
}
