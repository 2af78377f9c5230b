//! The monitor: one thread per monitored [`Dependency`],
//! `syncmq-blk-monitor-{name}`, that watches it and queues `on_connect` /
//! `on_disconnect` on every block.
//!
//! On each heartbeat it asks the dependency for its state (and tries to
//! connect when there is none) and, on every transition, queues
//! `on_disconnect` and/or `on_connect` on every block that has them, in
//! configuration order. A block thus sees strictly alternating connects and
//! disconnects, starting with a connect. While disconnected it blocks in
//! [`Dependency::wait_connected`] between checks, so a dependency that can
//! be woken is seen connecting at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::block::dependency::Dependency;
use crate::block::event::{DependencyEvent, Event};
use crate::block::hub::Hub;
use crate::error::Result;
use crate::thread::{self, stop_signal, StopToken, Stopper, Worker};
use crate::waiter::Generation;

/// The monitor thread of one dependency and its stop signal.
pub(crate) struct Monitor {
    name: String,
    stopper: Stopper,
    worker: Worker<()>,
}

impl Monitor {
    /// Starts watching `dependency` every `heartbeat`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) when the OS refuses the thread.
    pub(crate) fn start(
        dependency: Arc<dyn Dependency>,
        hub: Arc<Hub>,
        heartbeat: Duration,
    ) -> Result<Monitor> {
        let (stopper, token) = stop_signal();
        let name = dependency.name().to_string();
        let worker = thread::spawn(format!("blk-monitor-{name}"), move || {
            watch(&dependency, &hub, heartbeat, &token);
        })?;
        Ok(Monitor {
            name,
            stopper,
            worker,
        })
    }

    /// The monitored dependency's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Asks the thread to stop, without waiting; so that several monitors
    /// stop together.
    pub(crate) fn stop(&mut self) {
        self.stopper.stop();
    }

    /// Stops the thread and joins it by `deadline`.
    pub(crate) fn close(mut self, deadline: Instant) -> Result<()> {
        self.stopper.stop();
        self.worker.join_deadline(deadline)
    }
}

/// How long the monitor blocks in `wait_connected` at a time, so that a
/// close is seen this quickly even while it waits for a connection.
const WAIT_SLICE: Duration = Duration::from_millis(50);

fn watch(dependency: &Arc<dyn Dependency>, hub: &Hub, heartbeat: Duration, token: &StopToken) {
    let mut current: Option<Generation> = None;
    let mut next_dial = Instant::now();
    let mut last_error: Option<String> = None;
    while !token.is_stopped() {
        let mut now = dependency.connection();
        if now.is_none() && Instant::now() >= next_dial {
            next_dial = Instant::now() + heartbeat;
            match dependency.connect() {
                Ok(generation) => {
                    now = Some(generation);
                    last_error = None;
                }
                Err(e) => {
                    let text = e.to_string();
                    // Once per distinct error, not once per heartbeat.
                    if last_error.as_deref() != Some(text.as_str()) {
                        log::warn!(
                            "dependency `{}` is not reachable: {text}",
                            dependency.name()
                        );
                        last_error = Some(text);
                    }
                }
            }
        }
        transition(dependency, hub, current, now);
        current = now;
        if current.is_some() {
            if token.sleep(heartbeat) {
                break;
            }
        } else {
            let slice = heartbeat.min(WAIT_SLICE);
            let started = Instant::now();
            if dependency.wait_connected(slice).is_err()
                && token.sleep(slice.saturating_sub(started.elapsed()))
            {
                break;
            }
        }
    }
}

fn transition(
    dependency: &Arc<dyn Dependency>,
    hub: &Hub,
    before: Option<Generation>,
    after: Option<Generation>,
) {
    match (before, after) {
        (None, Some(generation)) => connected(dependency, hub, generation),
        (Some(generation), None) => disconnected(dependency, hub, generation),
        (Some(old), Some(new)) if old != new => {
            disconnected(dependency, hub, old);
            connected(dependency, hub, new);
        }
        _ => {}
    }
}

fn connected(dependency: &Arc<dyn Dependency>, hub: &Hub, generation: Generation) {
    log::info!(
        "dependency `{}` connected ({generation})",
        dependency.name()
    );
    let event = DependencyEvent::of(dependency, generation);
    notify(hub, || Event::Connect(event.clone()));
}

fn disconnected(dependency: &Arc<dyn Dependency>, hub: &Hub, generation: Generation) {
    log::warn!(
        "dependency `{}` disconnected ({generation})",
        dependency.name()
    );
    let event = DependencyEvent::of(dependency, generation);
    notify(hub, || Event::Disconnect(event.clone()));
}

fn notify(hub: &Hub, event: impl Fn() -> Event) {
    for i in 0..hub.slots.len() {
        // A block that is finishing no longer takes events; that is
        // expected while the runtime closes.
        let _ = hub.send(i, event());
    }
}
