//! The [`Runtime`]: a process made of blocks, from ordered start to ordered
//! shutdown.
//!
//! [`Runtime::start`] initialises every block in configuration order (see
//! [`init_blocks`]), then starts each block's event thread and run thread.
//! [`Runtime::monitor`] adds the server monitor. The owner then calls
//! [`Runtime::run_until_shutdown`], which blocks until someone asks for the
//! shutdown (a block through its controller, the signal block on SIGINT or
//! SIGTERM, a [`ShutdownHandle`]) and then finishes every block in reverse
//! order, each within the finish deadline; requests to finish single blocks
//! early are carried out on the same thread as they come.
//!
//! # Guarantees
//!
//! - `init` runs in configuration order; `finish` in the reverse, also when
//!   an `init` fails part way.
//! - A block's events are delivered in order, one at a time, and every
//!   event whose send succeeded is delivered before the block's `finish`.
//! - Every thread (`syncmq-blk-*`) is joined by its block's deadline; a
//!   block that overruns is reported as [`Error::Block`] with a
//!   [`Error::Timeout`] inside, left behind, and the others are finished
//!   regardless. Dropping the runtime shuts it down the same way.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::block::config::RuntimeConfig;
use crate::block::controller::Controller;
use crate::block::hub::{Control, Hub};
use crate::block::init::{init_blocks, Initialized};
use crate::block::registry::Registry;
use crate::block::server::{Monitor, Server};
use crate::block::supervised::{block_error, label, Supervised};
use crate::error::{Error, Result};

/// A running process of blocks. See the [module docs](self).
///
/// ```
/// use syncmq::block::{Bag, Block, BlockConfig, Callbacks, Controller, Registry, Runtime, RuntimeConfig, Value};
///
/// /// Sends one bag to `printer`, then asks for the shutdown.
/// struct Greeter;
/// impl Block for Greeter {
///     fn init(&self, _: &Value) -> syncmq::Result<()> { Ok(()) }
///     fn run(&self, ctl: Controller) {
///         ctl.controller("printer").unwrap().enqueue(Bag::new().with("text", "hello"));
///     }
///     fn finish(&self) -> syncmq::Result<()> { Ok(()) }
/// }
///
/// /// Prints what it gets; the first bag ends the process.
/// struct Printer;
/// impl Block for Printer {
///     fn init(&self, _: &Value) -> syncmq::Result<()> { Ok(()) }
///     fn run(&self, _: Controller) {}
///     fn finish(&self) -> syncmq::Result<()> { Ok(()) }
///     fn callbacks(&self) -> Callbacks { Callbacks::ENQUEUE }
///     fn on_enqueue(&self, ctl: &Controller, bag: Bag) {
///         println!("{:?} from {:?}", bag.get("text"), bag.from());
///         ctl.shutdown();
///     }
/// }
///
/// # fn main() -> syncmq::Result<()> {
/// let mut registry = Registry::new();
/// registry.register("printer", |_| Printer)?;
/// registry.register("greeter", |_| Greeter)?;
/// let config = RuntimeConfig::new()
///     .with_block(BlockConfig::new("printer"))
///     .with_block(BlockConfig::new("greeter"));
/// Runtime::run(&config, &registry) // start, then run until the shutdown
/// # }
/// ```
pub struct Runtime {
    hub: Arc<Hub>,
    control: Receiver<Control>,
    /// By configuration index; `None` once finished.
    running: Vec<Option<Supervised>>,
    monitor: Option<Monitor>,
    finish_timeout: Duration,
    heartbeat: Duration,
    errors: Vec<Error>,
    shut_down: bool,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field(
                "blocks",
                &self
                    .hub
                    .slots
                    .iter()
                    .map(|s| &s.responsibility)
                    .collect::<Vec<_>>(),
            )
            .field("monitoring", &self.monitor.is_some())
            .finish()
    }
}

/// Asks a runtime for its ordered shutdown from anywhere: another thread,
/// a test. Cheap to clone.
#[derive(Clone)]
pub struct ShutdownHandle {
    hub: Arc<Hub>,
}

impl fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownHandle").finish_non_exhaustive()
    }
}

impl ShutdownHandle {
    /// Asks for the ordered shutdown; returns at once.
    pub fn shutdown(&self) {
        self.hub
            .request(Control::Shutdown("a shutdown handle".to_string()));
    }
}

impl Runtime {
    /// Initialises every block of `config` in order and starts them.
    ///
    /// # Errors
    ///
    /// As [`init_blocks`]; [`Error::Io`] when the OS refuses a thread
    /// (the blocks are then finished in reverse order).
    pub fn start(config: &RuntimeConfig, registry: &Registry) -> Result<Runtime> {
        let initialized = init_blocks(config, registry)?;
        Runtime::start_initialized(initialized, config)
    }

    /// The common call in one line: [`start`](Self::start), then
    /// [`run_until_shutdown`](Self::run_until_shutdown). With the signal
    /// block in `config`, this is a whole process's `main`.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start) and
    /// [`run_until_shutdown`](Self::run_until_shutdown).
    pub fn run(config: &RuntimeConfig, registry: &Registry) -> Result<()> {
        Runtime::start(config, registry)?.run_until_shutdown()
    }

    /// Starts blocks initialised with [`init_blocks`], with the deadlines of
    /// `config` (its block list is not used again).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the OS refuses a thread; every block is then
    /// finished in reverse order.
    pub fn start_initialized(initialized: Initialized, config: &RuntimeConfig) -> Result<Runtime> {
        let entries = initialized.into_entries();
        let wiring = Hub::wire(
            entries
                .iter()
                .map(|e| {
                    (
                        e.name.clone(),
                        e.responsibility.clone(),
                        e.block.callbacks(),
                    )
                })
                .collect(),
        );
        let mut runtime = Runtime {
            hub: wiring.hub,
            control: wiring.control,
            running: Vec::with_capacity(entries.len()),
            monitor: None,
            finish_timeout: config.finish_timeout(),
            heartbeat: config.heartbeat(),
            errors: Vec::new(),
            shut_down: false,
        };
        let mut entries = entries.into_iter().zip(wiring.events).enumerate();
        while let Some((i, (entry, events))) = entries.next() {
            match Supervised::start(entry.block.clone(), &runtime.hub, i, events) {
                Ok(s) => runtime.running.push(Some(s)),
                Err((e, finished)) => {
                    log::error!("could not start block {}: {e}", entry.label());
                    // This block (unless its event thread finished it) and
                    // the ones after it never ran: finish them in reverse,
                    // then the running ones.
                    let rest: Vec<_> = std::iter::once(entry)
                        .filter(|_| !finished)
                        .chain(entries.by_ref().map(|(_, (entry, _))| entry))
                        .collect();
                    for entry in rest.into_iter().rev() {
                        if let Err(fe) = entry.block.finish() {
                            log::error!("{}", block_error(&entry.label(), "finish", fe));
                        }
                    }
                    let _ = runtime.shutdown_all();
                    return Err(block_error(&entry_label(&runtime, i), "run", e));
                }
            }
        }
        log::info!(
            "block runtime started: {}",
            runtime
                .hub
                .slots
                .iter()
                .map(|s| s.responsibility.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(runtime)
    }

    /// Starts the server monitor: on every transition of `server`, each
    /// block with `on_connect` / `on_disconnect` is told, in configuration
    /// order. It checks every heartbeat (see
    /// [`RuntimeConfig::with_heartbeat`]) and is stopped first at shutdown.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when a monitor already runs;
    /// [`Error::Io`] when the OS refuses the thread.
    pub fn monitor<S: Server>(&mut self, server: S) -> Result<()> {
        self.monitor_shared(Arc::new(server))
    }

    /// As [`monitor`](Self::monitor), for a server that is shared.
    ///
    /// # Errors
    ///
    /// As [`monitor`](Self::monitor).
    pub fn monitor_shared(&mut self, server: Arc<dyn Server>) -> Result<()> {
        if self.monitor.is_some() {
            return Err(Error::invalid(
                "server",
                "this runtime already monitors a server",
            ));
        }
        self.monitor = Some(Monitor::start(server, self.hub.clone(), self.heartbeat)?);
        Ok(())
    }

    /// A controller for the block with this responsibility, held by the
    /// runtime's owner: bags sent through it arrive with `__from` unset.
    pub fn controller(&self, responsibility: &str) -> Option<Controller> {
        let target = self.hub.index_of(responsibility)?;
        Some(Controller::new(self.hub.clone(), target, None))
    }

    /// A handle that asks for the shutdown from elsewhere.
    pub fn handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            hub: self.hub.clone(),
        }
    }

    /// Blocks until someone asks for the shutdown, then finishes every
    /// block in reverse order. Requests to finish one block early are
    /// carried out as they come.
    ///
    /// # Errors
    ///
    /// The first failure of any block (early finishes included), as
    /// [`Error::Block`]; every failure is logged.
    pub fn run_until_shutdown(mut self) -> Result<()> {
        while let Ok(control) = self.control.recv() {
            match control {
                Control::Shutdown(who) => {
                    log::info!("shutdown asked by {who}: finishing blocks in reverse order");
                    break;
                }
                Control::Finish(index) => self.finish_one(index),
            }
        }
        self.shutdown_all()
    }

    /// Finishes every block in reverse order now.
    ///
    /// # Errors
    ///
    /// As [`run_until_shutdown`](Self::run_until_shutdown).
    pub fn shutdown(mut self) -> Result<()> {
        self.shutdown_all()
    }

    fn finish_one(&mut self, index: usize) {
        if let Some(block) = self.running.get_mut(index).and_then(Option::take) {
            log::info!("finishing block {} early", entry_label(self, index));
            let deadline = Instant::now() + self.finish_timeout;
            let errors = block.finish(&self.hub, deadline);
            self.errors.extend(errors);
        }
    }

    fn shutdown_all(&mut self) -> Result<()> {
        if self.shut_down {
            return Ok(());
        }
        self.shut_down = true;
        if let Some(monitor) = self.monitor.take() {
            if let Err(e) = monitor.stop(Instant::now() + self.finish_timeout) {
                log::error!("server monitor: {e}");
                self.errors.push(e);
            }
        }
        for slot in self.running.iter_mut().rev() {
            if let Some(block) = slot.take() {
                let deadline = Instant::now() + self.finish_timeout;
                debug_assert!(block.index() < self.hub.slots.len());
                self.errors.extend(block.finish(&self.hub, deadline));
            }
        }
        log::info!("block runtime stopped");
        match self.errors.first() {
            None => Ok(()),
            Some(first) => Err(first.clone()),
        }
    }
}

fn entry_label(runtime: &Runtime, index: usize) -> String {
    let slot = &runtime.hub.slots[index];
    label(&slot.name, &slot.responsibility)
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if !self.shut_down {
            if let Err(e) = self.shutdown_all() {
                log::error!("shutting the block runtime down on drop: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_and_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}

    #[test]
    fn handles_cross_threads() {
        send::<Runtime>();
        send_and_sync::<Controller>();
        send_and_sync::<ShutdownHandle>();
        send_and_sync::<crate::block::Bag>();
    }
}
