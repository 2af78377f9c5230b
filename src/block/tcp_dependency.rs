//! [`TcpDependency`]: a [`Dependency`] that is a TCP endpoint.

use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::Duration;

use crate::block::dependency::Dependency;
use crate::block::value::Value;
use crate::error::{Error, Result};
use crate::thread::lock;
use crate::waiter::Generation;

/// A [`Dependency`] that is a TCP endpoint: `connect` dials it, and the
/// connection is alive while the peer has not closed it. It cannot be
/// waited on, so the monitor sees a connect or a close at its next
/// heartbeat.
#[derive(Debug)]
pub struct TcpDependency {
    name: String,
    addr: SocketAddr,
    connect_timeout: Duration,
    state: Mutex<TcpState>,
}

#[derive(Debug, Default)]
struct TcpState {
    stream: Option<TcpStream>,
    /// How many connections were made; the live one's generation.
    connects: u64,
}

impl TcpDependency {
    /// A dependency at `addr`, dialled with a 1 s timeout.
    pub fn new(name: impl Into<String>, addr: SocketAddr) -> Self {
        TcpDependency {
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

    /// How long one dial may take.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
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

impl Dependency for TcpDependency {
    fn name(&self) -> &str {
        &self.name
    }

    fn configuration(&self) -> Value {
        Value::Str(self.addr.to_string())
    }

    fn connect(&self) -> Result<Generation> {
        if let Some(generation) = self.connection() {
            return Ok(generation);
        }
        let stream = TcpStream::connect_timeout(&self.addr, self.connect_timeout).map_err(|e| {
            Error::disconnected(format!("connect `{}` at {}", self.name, self.addr), e)
        })?;
        let mut state = lock(&self.state);
        state.connects += 1;
        state.stream = Some(stream);
        Ok(Generation::new(state.connects))
    }

    fn connection(&self) -> Option<Generation> {
        let mut state = lock(&self.state);
        let live = state.stream.as_ref().is_some_and(alive);
        if !live {
            state.stream = None;
        }
        live.then_some(Generation::new(state.connects))
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::time::Instant;

    use super::*;

    #[test]
    fn a_tcp_dependency_sees_the_peer_close() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let dependency = TcpDependency::new("tcp", listener.local_addr().unwrap());
        assert_eq!(dependency.connection(), None);
        assert_eq!(dependency.connect().unwrap(), Generation::new(1));
        let (peer, _) = listener.accept().unwrap();
        assert_eq!(dependency.connection(), Some(Generation::new(1)));
        assert_eq!(
            dependency.connect().unwrap(),
            Generation::new(1),
            "connect on a live connection"
        );
        drop(peer);
        let deadline = Instant::now() + Duration::from_secs(5);
        while dependency.connection().is_some() {
            assert!(Instant::now() < deadline, "close never seen");
            std::thread::yield_now();
        }
        assert_eq!(dependency.connect().unwrap(), Generation::new(2));
        assert_eq!(
            dependency.configuration(),
            Value::Str(listener.local_addr().unwrap().to_string())
        );
    }

    #[test]
    fn a_dependency_that_cannot_be_waited_on_says_so_at_once() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = TcpDependency::new("tcp", listener.local_addr().unwrap());
        match tcp.wait_connected(Duration::from_secs(60)) {
            Err(Error::Timeout { what, after }) => {
                assert_eq!(after, Duration::ZERO);
                assert!(what.contains("`tcp`"), "{what}");
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert_eq!(tcp.connect().unwrap(), Generation::new(1));
        assert_eq!(
            tcp.wait_connected(Duration::ZERO).unwrap(),
            Generation::new(1)
        );
    }
}
