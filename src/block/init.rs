//! Ordered initialisation ([`init_blocks`]) and its unwinding when a block
//! fails; [`Initialized`], the blocks it made.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::block::config::RuntimeConfig;
use crate::block::init_context::InitContext;
use crate::block::label::{block_error, label};
use crate::block::lifecycle::Block;
use crate::block::registry::Registry;
use crate::error::{Error, Result};
use crate::thread::panicked;

/// One initialised block.
pub(crate) struct Entry {
    pub(crate) name: String,
    pub(crate) responsibility: String,
    pub(crate) block: Arc<dyn Block>,
}

impl Entry {
    pub(crate) fn label(&self) -> String {
        label(&self.name, &self.responsibility)
    }
}

/// Blocks whose `init` succeeded, in configuration order, not yet running.
/// Dropping it finishes them in reverse order.
///
/// It is what [`Runtime::start_initialized`](crate::block::Runtime::start_initialized)
/// starts, and also the memphis Go adapter's "Init/Finish blocks per
/// test": a test initialises just the blocks it needs with
/// [`init_blocks`], uses them, and finishes them in reverse with
/// [`Initialized::finish`] (or by dropping it), without starting a thread.
pub struct Initialized {
    entries: Vec<Entry>,
}

impl fmt::Debug for Initialized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| &e.responsibility))
            .finish()
    }
}

/// Makes and initialises every block of `config`, in order.
///
/// Every block is made from the registry first (so an unknown name fails
/// before any block is touched), then `init` runs on each in configuration
/// order, on the calling thread. When one fails or panics, the blocks
/// initialised before it are finished in reverse order, and the error
/// names the block that failed and the stage.
///
/// # Errors
///
/// [`Error::InvalidArgument`] for a bad configuration or a name without a
/// factory (before any `init` runs); [`Error::Block`] with stage `init` for
/// the first block whose `init` failed or panicked, after the blocks before
/// it were finished in reverse order.
pub fn init_blocks(config: &RuntimeConfig, registry: &Registry) -> Result<Initialized> {
    config.validate()?;
    let mut made = Vec::with_capacity(config.blocks().len());
    for (i, conf) in config.blocks().iter().enumerate() {
        let block = registry
            .make(conf.name(), conf.responsibility())
            .map_err(|e| match e {
                Error::InvalidArgument { reason, .. } => {
                    Error::invalid(format!("blocks[{i}].name"), reason)
                }
                other => other,
            })?;
        made.push(Entry {
            name: conf.name().to_string(),
            responsibility: conf.responsibility().to_string(),
            block,
        });
    }
    let mut done = Initialized {
        entries: Vec::with_capacity(made.len()),
    };
    for (i, entry) in made.into_iter().enumerate() {
        let label = entry.label();
        log::debug!("init block {label}");
        let context = InitContext::new(config, i);
        let result = catch_unwind(AssertUnwindSafe(|| entry.block.init(&context)))
            .unwrap_or_else(|p| Err(panicked(format!("init of block {label}"), p)));
        if let Err(e) = result {
            log::error!("block {label} failed to init: {e}; finishing the blocks before it");
            if let Err(unwind) = done.finish() {
                log::error!("while unwinding: {unwind}");
            }
            return Err(block_error(&label, "init", e));
        }
        done.entries.push(entry);
    }
    Ok(done)
}

impl Initialized {
    /// How many blocks.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The responsibilities, in init order.
    pub fn responsibilities(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.responsibility.as_str())
    }

    /// The block with this responsibility.
    pub fn block(&self, responsibility: &str) -> Option<&Arc<dyn Block>> {
        self.entries
            .iter()
            .find(|e| e.responsibility == responsibility)
            .map(|e| &e.block)
    }

    /// Finishes every block in reverse order, on this thread; the ones after
    /// a failure are finished too.
    ///
    /// # Errors
    ///
    /// The first failure, as [`Error::Block`] with stage `finish`; every
    /// failure is logged.
    pub fn finish(mut self) -> Result<()> {
        self.finish_all()
    }

    fn finish_all(&mut self) -> Result<()> {
        let mut first = None;
        while let Some(entry) = self.entries.pop() {
            let label = entry.label();
            log::debug!("finish block {label}");
            let result = catch_unwind(AssertUnwindSafe(|| entry.block.finish()))
                .unwrap_or_else(|p| Err(panicked(format!("finish of block {label}"), p)));
            if let Err(e) = result {
                let e = block_error(&label, "finish", e);
                log::error!("{e}");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// The blocks, for the runtime to start; nothing is finished on drop
    /// any more.
    pub(crate) fn into_entries(mut self) -> Vec<Entry> {
        std::mem::take(&mut self.entries)
    }
}

impl Drop for Initialized {
    fn drop(&mut self) {
        if let Err(e) = self.finish_all() {
            log::error!("finishing blocks on drop: {e}");
        }
    }
}
