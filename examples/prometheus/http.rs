//! The HTTP half of the prometheus example, which `tests/metrics.rs`
//! shares: `GET /metrics` answered with the Prometheus recorder's text, on
//! one named thread of a synchronous `tiny_http` server, stopped and
//! joined on drop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use metrics_exporter_prometheus::PrometheusHandle;

/// The content type of Prometheus' text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4";

/// An HTTP server answering `GET /metrics` with `handle`'s rendering.
pub struct MetricsServer {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Listens on `addr` (port 0: any free port) and serves on a thread
    /// named `metrics-http`.
    ///
    /// # Errors
    ///
    /// The address cannot be bound, or the thread cannot start.
    pub fn start(
        addr: &str,
        handle: PrometheusHandle,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let server = Arc::new(tiny_http::Server::http(addr)?);
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or("the metrics server listens on no IP address")?;
        let serving = server.clone();
        let thread = std::thread::Builder::new()
            .name("metrics-http".into())
            .spawn(move || serve(&serving, &handle))?;
        Ok(MetricsServer {
            server,
            addr,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        // Ends the thread's wait for the next request.
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                log::error!("the metrics server's thread panicked");
            }
        }
    }
}

/// Answers requests until the server is unblocked.
fn serve(server: &tiny_http::Server, handle: &PrometheusHandle) {
    for request in server.incoming_requests() {
        let found = *request.method() == tiny_http::Method::Get
            && request.url().split('?').next() == Some("/metrics");
        let answered = if found {
            let header =
                tiny_http::Header::from_bytes("Content-Type", TEXT_FORMAT).expect("a valid header");
            request.respond(tiny_http::Response::from_string(handle.render()).with_header(header))
        } else {
            request.respond(tiny_http::Response::from_string("not found").with_status_code(404))
        };
        if let Err(e) = answered {
            log::warn!("metrics server: answering a request: {e}");
        }
    }
}
