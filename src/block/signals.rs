//! The signal block: SIGINT and SIGTERM start the ordered shutdown.
//!
//! The Go adapter's `finisher` block. Its `init` registers for both signals with
//! signal-hook (from then on they no longer kill the process), its `run`
//! waits for one and asks the runtime for the ordered shutdown, and its
//! `finish` ends the wait. A second signal while the shutdown runs is the
//! user insisting: the block then lets the signal's default action happen,
//! which ends the process at once.
//!
//! Put it first in the configuration, so that it is initialised before any
//! block that must not be cut short and finished after all of them.
//! Signals are process-wide: run one signal block per process.

use std::sync::{Mutex, PoisonError};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use crate::block::bag::Value;
use crate::block::controller::Controller;
use crate::block::lifecycle::Block;
use crate::error::{Error, Result};

/// The name the signal block is registered under in
/// [`Registry::new`](crate::block::Registry::new): the Go adapter's.
pub const SIGNAL_BLOCK: &str = "finisher";

/// Turns SIGINT and SIGTERM into the ordered shutdown. See the
/// [module docs](self).
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
    fn init(&self, _conf: &Value) -> Result<()> {
        let signals = Signals::new([SIGINT, SIGTERM])
            .map_err(|e| Error::io("register for SIGINT and SIGTERM", e))?;
        *self.handle.lock().unwrap_or_else(PoisonError::into_inner) = Some(signals.handle());
        *self.signals.lock().unwrap_or_else(PoisonError::into_inner) = Some(signals);
        Ok(())
    }

    fn run(&self, ctl: Controller) {
        let taken = self
            .signals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(mut signals) = taken else {
            return;
        };
        let mut seen = 0;
        // Ends when `finish` closes the handle.
        for signal in signals.forever() {
            seen += 1;
            let name = signal_name(signal);
            if seen == 1 {
                log::info!("{name} received: shutting down in order");
                ctl.shutdown();
            } else {
                log::warn!("{name} received again during the shutdown: exiting now");
                if let Err(e) = signal_hook::low_level::emulate_default_handler(signal) {
                    log::error!("could not exit on {name}: {e}");
                }
            }
        }
    }

    fn finish(&self) -> Result<()> {
        if let Some(handle) = self
            .handle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            handle.close();
        }
        // Not taken when `run` never started: dropping unregisters.
        drop(
            self.signals
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        Ok(())
    }
}
