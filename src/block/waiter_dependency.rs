//! [`WaiterDependency`]: a [`Dependency`] that follows a
//! [`ConnectionWaiter`].

use std::sync::Arc;
use std::time::Duration;

use crate::block::dependency::Dependency;
use crate::error::{Error, Result};
use crate::waiter::{ConnectionWaiter, Generation};

/// A [`Dependency`] over a [`ConnectionWaiter`]: the connection is whatever
/// the waiter says, with the waiter's generation.
///
/// Give it the waiter of the RabbitMQ connection supervisor and every block
/// hears when the broker goes and comes back; a connect is seen at once
/// (the monitor waits on the waiter), and a disconnect and reconnect
/// between two heartbeats is still seen, by its generation.
#[derive(Debug, Clone)]
pub struct WaiterDependency {
    name: String,
    waiter: Arc<ConnectionWaiter>,
}

impl WaiterDependency {
    /// A dependency named `name` that follows `waiter`.
    pub fn new(name: impl Into<String>, waiter: Arc<ConnectionWaiter>) -> Self {
        WaiterDependency {
            name: name.into(),
            waiter,
        }
    }
}

impl Dependency for WaiterDependency {
    fn name(&self) -> &str {
        &self.name
    }

    /// The waiter's owner connects; this only reports.
    fn connect(&self) -> Result<Generation> {
        self.connection().ok_or_else(|| {
            Error::disconnected_reason(
                format!("`{}`", self.name),
                "not connected; its supervisor reconnects on its own",
            )
        })
    }

    fn connection(&self) -> Option<Generation> {
        self.waiter.current()
    }

    fn wait_connected(&self, timeout: Duration) -> Result<Generation> {
        self.waiter.wait_connected(timeout)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn a_waiter_dependency_follows_its_waiter() {
        let waiter = Arc::new(ConnectionWaiter::new());
        let dependency = WaiterDependency::new("broker", waiter.clone());
        assert_eq!(dependency.connection(), None);
        assert!(matches!(
            dependency.connect(),
            Err(Error::Disconnected { .. })
        ));
        let first = waiter.set_connected();
        assert_eq!(dependency.connect().unwrap(), first);
        assert_eq!(
            dependency.wait_connected(Duration::from_secs(1)).unwrap(),
            first
        );
        waiter.set_disconnected();
        let second = waiter.set_connected();
        assert_eq!(dependency.connection(), Some(second));
        assert_eq!(second.get(), 2);
    }

    #[test]
    fn a_connect_that_does_not_come_in_time_is_a_timeout() {
        let waiter = Arc::new(ConnectionWaiter::new());
        let dependency = WaiterDependency::new("broker", waiter.clone());
        let timeout = Duration::from_millis(50);
        let started = Instant::now();
        match dependency.wait_connected(timeout) {
            Err(Error::Timeout { after, .. }) => assert_eq!(after, timeout),
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(started.elapsed() >= timeout, "returned before the timeout");
        waiter.close();
        assert!(matches!(
            dependency.wait_connected(timeout),
            Err(Error::Closed(_))
        ));
    }
}
