//! The server a process depends on, and the monitor that tells every block
//! when it comes and goes.
//!
//! [`Server`] is the Go adapter's interface (configuration, connect,
//! is-connected), with one addition: an *epoch* that is raised on every new
//! connection, so a disconnect and reconnect between two heartbeats is still
//! seen. Two implementations come with the runtime:
//!
//! 1. [`WaiterServer`]: any [`ConnectionWaiter`], such as the one the
//!    RabbitMQ connection supervisor keeps. Its generation is the epoch, a
//!    connect wakes the monitor at once, and `connect` never dials (the
//!    supervisor does that).
//! 2. [`TcpServer`]: a plain TCP endpoint. `connect` dials; the heartbeat
//!    checks that the connection is still open.
//!
//! The monitor is one thread, `syncmq-blk-monitor`, started by
//! [`Runtime::monitor`](crate::block::Runtime::monitor) after every block
//! runs. On each heartbeat it asks the server for its state (and tries to
//! connect when there is none) and, on every transition, queues
//! `on_disconnect` and/or `on_connect` on every block that has them, in
//! configuration order. A block thus sees strictly alternating connects and
//! disconnects, starting with a connect.

use std::fmt;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::block::bag::Value;
use crate::block::hub::{Event, Hub};
use crate::block::lifecycle::Callbacks;
use crate::error::{Error, Result};
use crate::thread::{self, stop_signal, StopToken, Stopper, Worker};
use crate::waiter::ConnectionWaiter;

/// The server a process depends on (the Go adapter's `Server` and
/// `Configurator`).
pub trait Server: Send + Sync + 'static {
    /// A name for logs and callbacks.
    fn name(&self) -> &str;

    /// The server's configuration, as the process sees it; `Null` by
    /// default.
    fn configuration(&self) -> Value {
        Value::Null
    }

    /// Connects, or returns the live connection's epoch when already
    /// connected. Epochs grow with every new connection.
    ///
    /// # Errors
    ///
    /// Why there is no connection (typically [`Error::Disconnected`]).
    fn connect(&self) -> Result<u64>;

    /// The live connection's epoch, or `None` when there is none (never
    /// connected, or the connection broke).
    fn connection(&self) -> Option<u64>;

    /// True while connected and the connection is alive.
    fn is_connected(&self) -> bool {
        self.connection().is_some()
    }

    /// Blocks up to `timeout` for a connection and returns its epoch. The
    /// default answers from [`connection`](Self::connection) at once; a
    /// server that can be woken (a [`WaiterServer`]) overrides it, so the
    /// monitor sees a connect the moment it happens.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when no connection came within `timeout` (a
    /// connect is an action that must complete: see the crate docs on
    /// timeouts); the default, which cannot wait, says so at once with
    /// `after` zero. A server may also return why it will not connect (a
    /// [`WaiterServer`] passes on its waiter's [`Error::Closed`] or
    /// failure).
    fn wait_connected(&self, timeout: Duration) -> Result<u64> {
        let _ = timeout;
        self.connection().ok_or_else(|| {
            Error::timeout(
                format!("`{}` to connect (it cannot be waited on)", self.name()),
                Duration::ZERO,
            )
        })
    }
}

/// What `on_connect` and `on_disconnect` receive: which server, which
/// connection.
#[derive(Clone)]
pub struct ServerEvent {
    name: Arc<str>,
    epoch: u64,
    server: Option<Arc<dyn Server>>,
}

impl fmt::Debug for ServerEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerEvent")
            .field("name", &self.name)
            .field("epoch", &self.epoch)
            .finish()
    }
}

impl ServerEvent {
    /// An event for a server named `name`, connection `epoch`; for blocks
    /// that drive [`Controller::server_connected`](crate::block::Controller::server_connected)
    /// themselves.
    pub fn new(name: impl Into<String>, epoch: u64) -> Self {
        ServerEvent {
            name: Arc::from(name.into()),
            epoch,
            server: None,
        }
    }

    fn of(server: &Arc<dyn Server>, epoch: u64) -> Self {
        ServerEvent {
            name: Arc::from(server.name()),
            epoch,
            server: Some(server.clone()),
        }
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which connection: raised on every new one.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The server itself, when the monitor sent the event.
    pub fn server(&self) -> Option<&Arc<dyn Server>> {
        self.server.as_ref()
    }
}

/// A [`Server`] over a [`ConnectionWaiter`]: the connection is whatever the
/// waiter says, and its generation is the epoch.
///
/// Give it the waiter of the RabbitMQ connection supervisor and every block
/// hears when the broker goes and comes back.
#[derive(Debug, Clone)]
pub struct WaiterServer {
    name: String,
    waiter: Arc<ConnectionWaiter>,
}

impl WaiterServer {
    /// A server named `name` that follows `waiter`.
    pub fn new(name: impl Into<String>, waiter: Arc<ConnectionWaiter>) -> Self {
        WaiterServer {
            name: name.into(),
            waiter,
        }
    }
}

impl Server for WaiterServer {
    fn name(&self) -> &str {
        &self.name
    }

    /// The waiter's owner connects; this only reports.
    fn connect(&self) -> Result<u64> {
        self.connection().ok_or_else(|| {
            Error::disconnected_reason(
                format!("`{}`", self.name),
                "not connected; its supervisor reconnects on its own",
            )
        })
    }

    fn connection(&self) -> Option<u64> {
        self.waiter.current().map(|g| g.get())
    }

    fn wait_connected(&self, timeout: Duration) -> Result<u64> {
        self.waiter.wait_connected(timeout).map(|g| g.get())
    }
}

/// A [`Server`] that is a TCP endpoint: `connect` dials it, and the
/// connection is alive while the peer has not closed it.
#[derive(Debug)]
pub struct TcpServer {
    name: String,
    addr: SocketAddr,
    connect_timeout: Duration,
    state: Mutex<TcpState>,
}

#[derive(Debug, Default)]
struct TcpState {
    stream: Option<TcpStream>,
    epoch: u64,
}

impl TcpServer {
    /// A server at `addr`, dialled with a 1 s timeout.
    pub fn new(name: impl Into<String>, addr: SocketAddr) -> Self {
        TcpServer {
            name: name.into(),
            addr,
            connect_timeout: Duration::from_secs(1),
            state: Mutex::new(TcpState::default()),
        }
    }

    /// Sets how long one dial may take.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}

/// True while the peer has not closed `stream`: a non-blocking peek sees
/// pending bytes or nothing yet, never the end of the stream or an error.
fn alive(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let mut byte = [0u8; 1];
    let alive = match stream.peek(&mut byte) {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
    };
    let _ = stream.set_nonblocking(false);
    alive
}

impl Server for TcpServer {
    fn name(&self) -> &str {
        &self.name
    }

    fn configuration(&self) -> Value {
        Value::Str(self.addr.to_string())
    }

    fn connect(&self) -> Result<u64> {
        if let Some(epoch) = self.connection() {
            return Ok(epoch);
        }
        let stream = TcpStream::connect_timeout(&self.addr, self.connect_timeout).map_err(|e| {
            Error::disconnected(format!("connect `{}` at {}", self.name, self.addr), e)
        })?;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.epoch += 1;
        state.stream = Some(stream);
        Ok(state.epoch)
    }

    fn connection(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let live = state.stream.as_ref().is_some_and(alive);
        if !live {
            state.stream = None;
        }
        live.then_some(state.epoch)
    }
}

/// The monitor thread and its stop signal.
pub(crate) struct Monitor {
    stopper: Stopper,
    worker: Worker<()>,
}

impl Monitor {
    pub(crate) fn start(
        server: Arc<dyn Server>,
        hub: Arc<Hub>,
        heartbeat: Duration,
    ) -> Result<Monitor> {
        let (stopper, token) = stop_signal();
        let worker = thread::spawn("blk-monitor", move || {
            watch(&server, &hub, heartbeat, &token)
        })?;
        Ok(Monitor { stopper, worker })
    }

    /// Stops the thread and joins it by `deadline`.
    pub(crate) fn stop(mut self, deadline: Instant) -> Result<()> {
        self.stopper.stop();
        self.worker.join_deadline(deadline)
    }
}

/// How long the monitor blocks in `wait_connected` at a time, so that a
/// stop is seen this quickly even while it waits for a connection.
const WAIT_SLICE: Duration = Duration::from_millis(50);

fn watch(server: &Arc<dyn Server>, hub: &Hub, heartbeat: Duration, token: &StopToken) {
    let mut current: Option<u64> = None;
    let mut next_dial = Instant::now();
    let mut last_error: Option<String> = None;
    while !token.is_stopped() {
        let mut now = server.connection();
        if now.is_none() && Instant::now() >= next_dial {
            next_dial = Instant::now() + heartbeat;
            match server.connect() {
                Ok(epoch) => {
                    now = Some(epoch);
                    last_error = None;
                }
                Err(e) => {
                    let text = e.to_string();
                    // Once per distinct error, not once per heartbeat.
                    if last_error.as_deref() != Some(text.as_str()) {
                        log::warn!("server `{}` is not reachable: {text}", server.name());
                        last_error = Some(text);
                    }
                }
            }
        }
        transition(server, hub, current, now);
        current = now;
        if current.is_some() {
            if token.sleep(heartbeat) {
                break;
            }
        } else {
            let slice = heartbeat.min(WAIT_SLICE);
            let started = Instant::now();
            if server.wait_connected(slice).is_err()
                && token.sleep(slice.saturating_sub(started.elapsed()))
            {
                break;
            }
        }
    }
}

fn transition(server: &Arc<dyn Server>, hub: &Hub, before: Option<u64>, after: Option<u64>) {
    match (before, after) {
        (None, Some(epoch)) => connected(server, hub, epoch),
        (Some(epoch), None) => disconnected(server, hub, epoch),
        (Some(old), Some(new)) if old != new => {
            disconnected(server, hub, old);
            connected(server, hub, new);
        }
        _ => {}
    }
}

fn connected(server: &Arc<dyn Server>, hub: &Hub, epoch: u64) {
    log::info!("server `{}` connected (epoch {epoch})", server.name());
    let event = ServerEvent::of(server, epoch);
    notify(hub, Callbacks::CONNECT, || Event::Connect(event.clone()));
}

fn disconnected(server: &Arc<dyn Server>, hub: &Hub, epoch: u64) {
    log::warn!("server `{}` disconnected (epoch {epoch})", server.name());
    let event = ServerEvent::of(server, epoch);
    notify(hub, Callbacks::DISCONNECT, || {
        Event::Disconnect(event.clone())
    });
}

fn notify(hub: &Hub, wanted: Callbacks, event: impl Fn() -> Event) {
    for (i, slot) in hub.slots.iter().enumerate() {
        if slot.callbacks.contains(wanted) {
            // A block that is finishing no longer takes events; that is
            // expected during shutdown.
            let _ = hub.send(i, event());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_waiter_server_follows_its_waiter() {
        let waiter = Arc::new(ConnectionWaiter::new());
        let server = WaiterServer::new("broker", waiter.clone());
        assert_eq!(server.connection(), None);
        assert!(matches!(server.connect(), Err(Error::Disconnected { .. })));
        waiter.set_connected();
        assert_eq!(server.connect().unwrap(), 1);
        assert_eq!(server.wait_connected(Duration::from_secs(1)).unwrap(), 1);
        waiter.set_disconnected();
        waiter.set_connected();
        assert_eq!(server.connection(), Some(2));
    }

    #[test]
    fn a_connect_that_does_not_come_in_time_is_a_timeout() {
        let waiter = Arc::new(ConnectionWaiter::new());
        let server = WaiterServer::new("broker", waiter.clone());
        let timeout = Duration::from_millis(50);
        let started = Instant::now();
        match server.wait_connected(timeout) {
            Err(Error::Timeout { after, .. }) => assert_eq!(after, timeout),
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(started.elapsed() >= timeout, "returned before the timeout");
        waiter.close();
        assert!(matches!(
            server.wait_connected(timeout),
            Err(Error::Closed(_))
        ));

        // A server that cannot be waited on says so at once.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = TcpServer::new("tcp", listener.local_addr().unwrap());
        match tcp.wait_connected(Duration::from_secs(60)) {
            Err(Error::Timeout { what, after }) => {
                assert_eq!(after, Duration::ZERO);
                assert!(what.contains("`tcp`"), "{what}");
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert_eq!(tcp.connect().unwrap(), 1);
        assert_eq!(tcp.wait_connected(Duration::ZERO).unwrap(), 1);
    }

    #[test]
    fn a_tcp_server_sees_the_peer_close() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = TcpServer::new("tcp", listener.local_addr().unwrap());
        assert_eq!(server.connection(), None);
        assert_eq!(server.connect().unwrap(), 1);
        let (peer, _) = listener.accept().unwrap();
        assert_eq!(server.connection(), Some(1));
        assert_eq!(server.connect().unwrap(), 1, "connect on a live connection");
        drop(peer);
        let deadline = Instant::now() + Duration::from_secs(5);
        while server.connection().is_some() {
            assert!(Instant::now() < deadline, "close never seen");
            std::thread::yield_now();
        }
        assert_eq!(server.connect().unwrap(), 2);
        assert_eq!(
            server.configuration(),
            Value::Str(listener.local_addr().unwrap().to_string())
        );
    }
}
