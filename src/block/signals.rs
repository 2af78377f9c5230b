//! [`SignalBlock`]: SIGINT and SIGTERM close the runtime in order.

use std::sync::Mutex;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use crate::block::controller::Controller;
use crate::block::init_context::InitContext;
use crate::block::lifecycle::Block;
use crate::error::{Error, Result};
use crate::thread::lock;

/// The name the signal block is registered under in
/// [`Registry::new`](crate::block::Registry::new): the Go adapter's.
pub const SIGNAL_BLOCK: &str = "finisher";

/// Turns SIGINT and SIGTERM into the runtime's ordered close: the memphis
/// Go adapter's `finisher` block.
///
/// Its `init` registers for both signals with signal-hook (from then on
/// they no longer kill the process), its `run` waits for one and asks the
/// runtime to close ([`Controller::close_runtime`]), and its `finish` ends
/// the wait. A second signal while the runtime closes is the user
/// insisting: the block then lets the signal's default action happen, which
/// ends the process at once.
///
/// Put it first in the configuration, so that it is initialised before any
/// block that must not be cut short and finished after all of them.
/// Signals are process-wide: run one signal block per process.
///
/// # The Go adapter's initiator
///
/// In the Go adapter the `finisher` calls `Finish()` on the `initiator`
/// block, the adapter's own block that started the process and finishes
/// the others. Here the runtime's owner plays that role: the thread in
/// [`Runtime::run_until_closed`](crate::block::Runtime::run_until_closed)
/// (or [`Runtime::run`](crate::block::Runtime::run)) started every block
/// and, when any block asks with [`Controller::close_runtime`], finishes
/// them all in reverse order. There is no `initiator` block to configure.
#[derive(Debug, Default)]
pub struct SignalBlock {
    signals: Mutex<Option<Signals>>,
    handle: Mutex<Option<Handle>>,
}

impl SignalBlock {
    /// A signal block; it registers for the signals in `init`.
    pub fn new() -> Self {
        SignalBlock::default()
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

impl Block for SignalBlock {
    fn init(&self, _init: &InitContext<'_>) -> Result<()> {
        let signals = Signals::new([SIGINT, SIGTERM])
            .map_err(|e| Error::io("register for SIGINT and SIGTERM", e))?;
        *lock(&self.handle) = Some(signals.handle());
        *lock(&self.signals) = Some(signals);
        Ok(())
    }

    fn run(&self, ctl: Controller) {
        let taken = lock(&self.signals).take();
        let Some(mut signals) = taken else {
            return;
        };
        let mut seen = 0;
        // Ends when `finish` closes the handle.
        for signal in signals.forever() {
            seen += 1;
            let name = signal_name(signal);
            if seen == 1 {
                log::info!("{name} received: closing the blocks in order");
                ctl.close_runtime();
            } else {
                log::warn!("{name} received again while closing: exiting now");
                if let Err(e) = signal_hook::low_level::emulate_default_handler(signal) {
                    log::error!("could not exit on {name}: {e}");
                }
            }
        }
    }

    fn finish(&self) -> Result<()> {
        if let Some(handle) = lock(&self.handle).take() {
            handle.close();
        }
        // Not taken when `run` never started: dropping unregisters.
        drop(lock(&self.signals).take());
        Ok(())
    }
}
