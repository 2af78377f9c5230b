//! [`Runtime`]: a process made of blocks, from ordered start to ordered
//! close, and [`CloseHandle`], which asks it to close from elsewhere.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::block::config::RuntimeConfig;
use crate::block::controller::Controller;
use crate::block::dependency::Dependency;
use crate::block::hub::{Control, Hub};
use crate::block::init::{init_blocks, Initialized};
use crate::block::label::{block_error, label};
use crate::block::monitor::Monitor;
use crate::block::registry::Registry;
use crate::block::supervised::Supervised;
use crate::error::{Error, Result};
use crate::thread::lock;

/// A running process of blocks (the design of memphis' Go adapter).
///
/// [`Runtime::start`] initialises every block in configuration order (see
/// [`init_blocks`]), then starts each block's event thread and run thread.
/// [`Runtime::monitor`] adds the dependency monitor. The owner then calls
/// [`Runtime::run_until_closed`], which blocks until someone asks the
/// runtime to close (a block through [`Controller::close_runtime`], the
/// [`SignalBlock`](crate::block::SignalBlock) on SIGINT or SIGTERM, a
/// [`CloseHandle`]) and then finishes every block in reverse order, each
/// within the finish deadline; requests to finish single blocks early
/// ([`Controller::finish`]) are carried out on the same thread as they
/// come. [`Runtime::close`] closes at once, and dropping the runtime closes
/// it too.
///
/// # Guarantees
///
/// - `init` runs in configuration order; `finish` in the reverse, also when
///   an `init` fails part way.
/// - A block's events are delivered in order, one at a time, and every
///   event whose send succeeded is delivered before the block's `finish`.
/// - Every thread (`syncmq-blk-*`) is joined by its block's deadline
///   ([`RuntimeConfig::with_finish_timeout`]); a block that overruns is
///   reported as [`Error::Block`] with an [`Error::Timeout`] inside, left
///   behind, and the others are finished regardless.
///
/// ```
/// use syncmq::block::{Bag, Block, BlockConfig, Controller, InitContext, Registry, Runtime, RuntimeConfig, Value};
///
/// /// Sends one bag to `printer`.
/// struct Greeter;
/// impl Block for Greeter {
///     fn init(&self, _: &InitContext<'_>) -> syncmq::Result<()> { Ok(()) }
///     fn run(&self, ctl: Controller) {
///         ctl.controller("printer").unwrap().enqueue(Bag::new().with("text", "hello"));
///     }
///     fn finish(&self) -> syncmq::Result<()> { Ok(()) }
/// }
///
/// /// Prints what it gets; the first bag closes the runtime.
/// struct Printer;
/// impl Block for Printer {
///     fn init(&self, _: &InitContext<'_>) -> syncmq::Result<()> { Ok(()) }
///     fn run(&self, _: Controller) {}
///     fn finish(&self) -> syncmq::Result<()> { Ok(()) }
///     fn on_enqueue(&self, ctl: &Controller, bag: Bag) {
///         println!("{:?} from {:?}", bag.get("text"), bag.from());
///         ctl.close_runtime();
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
/// Runtime::run(&config, &registry) // start, then run until closed
/// # }
/// ```
pub struct Runtime {
    hub: Arc<Hub>,
    control: Receiver<Control>,
    finish_timeout: Duration,
    heartbeat: Duration,
    state: Mutex<State>,
}

/// What closing changes; behind one lock so that `close` takes `&self`.
struct State {
    /// By configuration index; `None` once finished.
    running: Vec<Option<Supervised>>,
    /// One per monitored dependency, in the order they were added.
    monitors: Vec<Monitor>,
    /// Every failure so far (early finishes included), in order.
    errors: Vec<Error>,
    closed: bool,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
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
            .field(
                "monitoring",
                &state.monitors.iter().map(Monitor::name).collect::<Vec<_>>(),
            )
            .field("closed", &state.closed)
            .finish_non_exhaustive()
    }
}

/// Asks a runtime to close from anywhere: another thread, a test. Cheap to
/// clone; it does not keep the runtime open.
#[derive(Clone)]
pub struct CloseHandle {
    hub: Arc<Hub>,
}

impl fmt::Debug for CloseHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloseHandle").finish_non_exhaustive()
    }
}

impl CloseHandle {
    /// Asks the runtime to close, as [`Controller::close_runtime`] does;
    /// returns at once, and [`Runtime::run_until_closed`] does the work.
    pub fn close_runtime(&self) {
        self.hub
            .request(Control::Close("a close handle".to_string()));
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
    /// [`run_until_closed`](Self::run_until_closed). With the signal block
    /// in `config`, this is a whole process's `main`.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start) and
    /// [`run_until_closed`](Self::run_until_closed).
    pub fn run(config: &RuntimeConfig, registry: &Registry) -> Result<()> {
        Runtime::start(config, registry)?.run_until_closed()
    }

    /// Starts blocks initialised with [`init_blocks`], with the deadlines of
    /// `config` (its block list is not used again).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `config` is not valid (see
    /// [`RuntimeConfig::validate`]); [`Error::Io`] when the OS refuses a
    /// thread. Every block is then finished in reverse order.
    pub fn start_initialized(initialized: Initialized, config: &RuntimeConfig) -> Result<Runtime> {
        config.validate()?;
        let entries = initialized.into_entries();
        let wiring = Hub::wire(
            entries
                .iter()
                .map(|e| (e.name.clone(), e.responsibility.clone()))
                .collect(),
        );
        let runtime = Runtime {
            hub: wiring.hub,
            control: wiring.control,
            finish_timeout: config.finish_timeout(),
            heartbeat: config.heartbeat(),
            state: Mutex::new(State {
                running: Vec::with_capacity(entries.len()),
                monitors: Vec::new(),
                errors: Vec::new(),
                closed: false,
            }),
        };
        let mut entries = entries.into_iter().zip(wiring.events).enumerate();
        while let Some((i, (entry, events))) = entries.next() {
            match Supervised::start(entry.block.clone(), &runtime.hub, i, events) {
                Ok(s) => lock(&runtime.state).running.push(Some(s)),
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
                    // Logged as they happen; the start's own error is the
                    // one to return.
                    let _ = runtime.close();
                    return Err(block_error(&runtime.label(i), "run", e));
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

    /// Starts monitoring `dependency`: on every transition of it, every
    /// block's `on_connect` / `on_disconnect` is called, in configuration
    /// order, with an event that names the dependency. It is checked every
    /// heartbeat (see [`RuntimeConfig::with_heartbeat`]); monitors are
    /// closed first when the runtime closes.
    ///
    /// A process that depends on several servers (RabbitMQ and a database,
    /// say) monitors each: one thread per dependency, each dependency's
    /// events strictly alternating (connect, disconnect, connect ...), and
    /// [`DependencyEvent::name`](crate::block::DependencyEvent::name) says
    /// which one an event is about.
    ///
    /// `dependency` is shared: keep a clone to use it yourself, or pass
    /// `Arc::new(dependency)`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when a dependency with the same name is
    /// already monitored (the events could not be told apart);
    /// [`Error::Closed`] once the runtime closed; [`Error::Io`] when the OS
    /// refuses the thread.
    pub fn monitor(&self, dependency: Arc<dyn Dependency>) -> Result<()> {
        let mut state = lock(&self.state);
        if state.closed {
            return Err(Error::closed("block runtime"));
        }
        if state.monitors.iter().any(|m| m.name() == dependency.name()) {
            return Err(Error::invalid(
                "dependency",
                format!(
                    "a dependency named `{}` is already monitored; give each a name of its own",
                    dependency.name()
                ),
            ));
        }
        let monitor = Monitor::start(dependency, self.hub.clone(), self.heartbeat)?;
        state.monitors.push(monitor);
        Ok(())
    }

    /// A controller for the block with this responsibility, held by the
    /// runtime's owner: bags sent through it arrive with `__from` unset.
    pub fn controller(&self, responsibility: &str) -> Option<Controller> {
        let target = self.hub.index_of(responsibility)?;
        Some(Controller::new(self.hub.clone(), target, None))
    }

    /// A handle that asks the runtime to close from elsewhere.
    pub fn close_handle(&self) -> CloseHandle {
        CloseHandle {
            hub: self.hub.clone(),
        }
    }

    /// Blocks until someone asks the runtime to close, then closes it (see
    /// [`close`](Self::close)). Requests to finish one block early are
    /// carried out as they come.
    ///
    /// # Errors
    ///
    /// As [`close`](Self::close).
    pub fn run_until_closed(self) -> Result<()> {
        while let Ok(control) = self.control.recv() {
            match control {
                Control::Close(who) => {
                    log::info!("close asked by {who}: finishing blocks in reverse order");
                    break;
                }
                Control::Finish(index) => self.finish_one(index),
            }
        }
        self.close()
    }

    /// Closes the runtime now: stops the monitor, then finishes every block
    /// in reverse order, each within the finish deadline. A second call
    /// returns `Ok` at once.
    ///
    /// # Errors
    ///
    /// The first failure of any block (early finishes included), as
    /// [`Error::Block`]; every failure is logged.
    pub fn close(&self) -> Result<()> {
        let mut state = lock(&self.state);
        if state.closed {
            return Ok(());
        }
        state.closed = true;
        self.hub.set_closing();
        let mut monitors = std::mem::take(&mut state.monitors);
        let deadline = Instant::now() + self.finish_timeout;
        for monitor in &mut monitors {
            monitor.stop();
        }
        for monitor in monitors {
            let name = monitor.name().to_string();
            if let Err(e) = monitor.close(deadline) {
                log::error!("monitor of dependency `{name}`: {e}");
                state.errors.push(e);
            }
        }
        let running = std::mem::take(&mut state.running);
        for block in running.into_iter().rev().flatten() {
            let deadline = Instant::now() + self.finish_timeout;
            let errors = block.finish(&self.hub, deadline);
            state.errors.extend(errors);
        }
        log::info!("block runtime closed");
        match state.errors.first() {
            None => Ok(()),
            Some(first) => Err(first.clone()),
        }
    }

    fn finish_one(&self, index: usize) {
        let mut state = lock(&self.state);
        if let Some(block) = state.running.get_mut(index).and_then(Option::take) {
            log::info!("finishing block {} early", self.label(index));
            let deadline = Instant::now() + self.finish_timeout;
            let errors = block.finish(&self.hub, deadline);
            state.errors.extend(errors);
        }
    }

    fn label(&self, index: usize) -> String {
        let slot = &self.hub.slots[index];
        label(&slot.name, &slot.responsibility)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::error!("closing the block runtime on drop: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_and_sync<T: Send + Sync>() {}

    #[test]
    fn handles_cross_threads() {
        send_and_sync::<Runtime>();
        send_and_sync::<Controller>();
        send_and_sync::<CloseHandle>();
        send_and_sync::<crate::block::Bag>();
    }
}
