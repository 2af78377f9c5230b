//! One running block: its run thread, its event thread, and how they are
//! finished within a deadline.
//!
//! Each block gets two threads of its own:
//!
//! - `syncmq-blk-run-{responsibility}` calls `run` once.
//! - `syncmq-blk-ev-{responsibility}` takes the block's events one at a
//!   time, in the order they were queued, and calls `on_enqueue`,
//!   `on_connect` or `on_disconnect`; so a block's callbacks never overlap.
//!   The last event is `Finish`, on which it calls `finish` and ends.
//!
//! A callback that panics is logged and the next event is delivered: one
//! bad bag does not stop the block. A panicking `run` is logged at once;
//! it and a failing or panicking `finish` are reported by
//! [`Supervised::finish`] as [`Error::Block`] naming the stage.
//!
//! Finishing a block fires its stop signal (its `Controller::finishing`),
//! queues `Finish` behind its pending events, then joins the event thread,
//! the run thread and the block's helper threads, all by one deadline.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Receiver;

use crate::block::controller::Controller;
use crate::block::event::Event;
use crate::block::hub::Hub;
use crate::block::label::{block_error, label};
use crate::block::lifecycle::Block;
use crate::error::{Error, Result};
use crate::thread::{self, join_all, panicked, Worker};

/// A block whose threads run.
pub(crate) struct Supervised {
    index: usize,
    label: String,
    run: Worker<Result<()>>,
    events: Worker<Result<()>>,
}

impl Supervised {
    /// Starts the event thread, then the run thread, of block `index`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the OS refuses a thread; nothing is left
    /// running then. The flag says whether the block was finished already
    /// (its event thread had started, and finished it on the way out).
    pub(crate) fn start(
        block: Arc<dyn Block>,
        hub: &Arc<Hub>,
        index: usize,
        events: Receiver<Event>,
    ) -> std::result::Result<Supervised, (Error, bool)> {
        let slot = &hub.slots[index];
        let label = label(&slot.name, &slot.responsibility);
        let own = Controller::new(hub.clone(), index, Some(index));
        let event_worker = {
            let block = block.clone();
            let own = own.clone();
            let label = label.clone();
            thread::spawn(format!("blk-ev-{}", slot.responsibility), move || {
                event_loop(&*block, &own, &events, &label)
            })
            .map_err(|e| (e, false))?
        };
        let run = {
            let label = label.clone();
            thread::spawn(format!("blk-run-{}", slot.responsibility), move || {
                // Logged the moment it happens, reported again at finish.
                catch_unwind(AssertUnwindSafe(|| block.run(own))).map_err(|payload| {
                    let e = panicked(format!("run of block {label}"), payload);
                    log::error!("{e}");
                    e
                })
            })
        };
        let run = match run {
            Ok(run) => run,
            Err(e) => {
                hub.close_events(index);
                match event_worker.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(fe)) | Err(fe) => log::error!("{}", block_error(&label, "finish", fe)),
                }
                return Err((e, true));
            }
        };
        Ok(Supervised {
            index,
            label,
            run,
            events: event_worker,
        })
    }

    /// Finishes the block: stop signal, queued events, `finish`, the end of
    /// `run` and of its helpers, all by `deadline`. Returns every failure,
    /// each as [`Error::Block`].
    pub(crate) fn finish(self, hub: &Hub, deadline: Instant) -> Vec<Error> {
        log::debug!("finishing block {}", self.label);
        let mut errors = Vec::new();
        hub.signal_finishing(self.index);
        hub.close_events(self.index);
        match self.events.join_deadline(deadline) {
            Ok(Ok(())) => {}
            Ok(Err(e)) | Err(e) => errors.push(block_error(&self.label, "finish", e)),
        }
        match self.run.join_deadline(deadline) {
            Ok(Ok(())) => {}
            Ok(Err(e)) | Err(e) => errors.push(block_error(&self.label, "run", e)),
        }
        if let Err(e) = join_all(hub.take_helpers(self.index), deadline) {
            errors.push(block_error(&self.label, "helper", e));
        }
        for e in &errors {
            log::error!("{e}");
        }
        errors
    }
}

fn event_loop(
    block: &dyn Block,
    ctl: &Controller,
    events: &Receiver<Event>,
    label: &str,
) -> Result<()> {
    // Ends on `Finish`, or when every sender is gone (the runtime was torn
    // down without finishing, say by a panic): finish then too.
    for event in events {
        let (stage, result) = match event {
            Event::Finish => break,
            Event::Enqueue(bag) => (
                "on_enqueue",
                catch_unwind(AssertUnwindSafe(|| block.on_enqueue(ctl, bag))),
            ),
            Event::Connect(dependency) => (
                "on_connect",
                catch_unwind(AssertUnwindSafe(|| block.on_connect(ctl, &dependency))),
            ),
            Event::Disconnect(dependency) => (
                "on_disconnect",
                catch_unwind(AssertUnwindSafe(|| block.on_disconnect(ctl, &dependency))),
            ),
        };
        if let Err(payload) = result {
            let e = panicked(format!("{stage} of block {label}"), payload);
            log::error!("{e}; the block goes on with its next event");
        }
    }
    match catch_unwind(AssertUnwindSafe(|| block.finish())) {
        Ok(result) => result,
        Err(payload) => Err(panicked(format!("finish of block {label}"), payload)),
    }
}
