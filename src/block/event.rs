//! The events a block's event thread receives: [`DependencyEvent`], what
//! `on_connect` and `on_disconnect` get, and the crate's own [`Event`] that
//! carries it with the bags. In a file of their own because the hub, the
//! controller, the monitor, the event loop and the `Block` trait all use
//! them.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::block::bag::Bag;
use crate::block::dependency::Dependency;
use crate::waiter::Generation;

/// What `on_connect` and `on_disconnect` receive: which dependency, which
/// connection.
#[derive(Clone)]
pub struct DependencyEvent {
    name: Arc<str>,
    generation: Generation,
    dependency: Option<Arc<dyn Dependency>>,
}

impl fmt::Debug for DependencyEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DependencyEvent")
            .field("name", &self.name)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl DependencyEvent {
    /// An event for a dependency named `name`, connection `generation`; for
    /// blocks that drive
    /// [`Controller::dependency_connected`](crate::block::Controller::dependency_connected)
    /// themselves.
    pub fn new(name: impl Into<String>, generation: Generation) -> Self {
        DependencyEvent {
            name: Arc::from(name.into()),
            generation,
            dependency: None,
        }
    }

    /// The event the monitor sends for `dependency`.
    pub(crate) fn of(dependency: &Arc<dyn Dependency>, generation: Generation) -> Self {
        DependencyEvent {
            name: Arc::from(dependency.name()),
            generation,
            dependency: Some(dependency.clone()),
        }
    }

    /// The dependency's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which connection: raised on every new one.
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// The dependency itself, when the monitor sent the event.
    pub fn dependency(&self) -> Option<&Arc<dyn Dependency>> {
        self.dependency.as_ref()
    }

    /// The dependency with its own type, when the monitor sent the event
    /// and the dependency is a `D`: the Go adapter's type assertion on the
    /// server connection its `OnServerConnect` gets. A block whose monitor
    /// is the RabbitMQ supervisor takes its handle here to start a
    /// publisher or a consumer on the connection that just came up, with
    /// no global and no side channel:
    ///
    /// ```no_run
    /// # use syncmq::block::{Controller, DependencyEvent};
    /// use syncmq::block::RabbitDependency;
    /// # fn on_connect(ctl: &Controller, event: &DependencyEvent) -> syncmq::Result<()> {
    /// if let Some(broker) = event.dependency_as::<RabbitDependency>() {
    ///     let connection = broker.supervisor()?; // Arc<syncmq::rabbitmq::Connection>
    ///     log::info!("{} up, connection {}", event.name(), event.generation());
    ///     # drop(connection);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn dependency_as<D: Dependency>(&self) -> Option<&D> {
        let any: &dyn Any = self.dependency.as_deref()?;
        any.downcast_ref::<D>()
    }
}

/// What a block's event thread receives.
pub(crate) enum Event {
    Enqueue(Bag),
    Connect(DependencyEvent),
    Disconnect(DependencyEvent),
    /// The last event: call `finish` and end.
    Finish,
}
