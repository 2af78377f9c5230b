//! One RabbitMQ client for the whole process, the idiom that replaces
//! gormq's `Init` / `GetClient` / `DefaultClient`.
//!
//! Rust has no blessed global, and syncmq does not keep one: a library
//! global would hide who starts the client, with which configuration, and
//! who closes it. The usual shape is one `RabbitClient` made in `main` and
//! passed by reference (or in an `Arc`) to what needs it. When threading a
//! handle through is not practical (a callback registered with C code, a
//! logging hook), the application keeps its own `OnceLock`, as below: `init`
//! once at start, `client()` anywhere, and an explicit `close` before
//! `main` returns, because a static is never dropped.
//!
//! ```text
//! RUST_LOG=info cargo run --example process_client
//! ```

use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use syncmq::rabbitmq::{ConsumerOptions, RabbitClient, RabbitClientConfig, Routed};
use syncmq::Message;

/// The process's client: gormq's `DefaultClient`, owned by the application.
static CLIENT: OnceLock<RabbitClient> = OnceLock::new();

/// gormq's `Init`: starts the client once. A second call is an error
/// rather than a second connection.
pub fn init(url: &str) -> syncmq::Result<&'static RabbitClient> {
    let twice = || syncmq::Error::invalid("client", "init was called twice");
    if CLIENT.get().is_some() {
        return Err(twice());
    }
    let started = RabbitClient::start(RabbitClientConfig::new(url, "process-client"))?;
    match CLIENT.set(started) {
        Ok(()) => client(),
        // Another thread's init won the race: keep one connection.
        Err(extra) => {
            extra.close()?;
            Err(twice())
        }
    }
}

/// gormq's `GetClient`: the client `init` started.
pub fn client() -> syncmq::Result<&'static RabbitClient> {
    CLIENT
        .get()
        .ok_or_else(|| syncmq::Error::invalid("client", "call init first"))
}

/// Starts the client, publishes from two threads through it, waits for
/// both jobs to be handled, closes it.
pub fn main() -> syncmq::Result<()> {
    let _ = env_logger::try_init();
    let url = std::env::var("SYNCMQ_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string());
    init(&url)?
        .waiter()
        .wait_connected(Duration::from_secs(10))?;
    // Where the workers' jobs go: a topic exchange, a queue bound to it.
    let (done, handled) = crossbeam_channel::unbounded();
    client()?.add_consumer(
        ConsumerOptions::new("process-client-events", "job.created"),
        move |message: &Message| -> Result<(), String> {
            log::info!("handled {}", String::from_utf8_lossy(message.body()));
            done.send(()).map_err(|e| e.to_string())
        },
    )?;

    // Any thread reaches the same client, without a handle passed to it.
    let workers: Vec<_> = (0..2)
        .map(|n| {
            thread::Builder::new()
                .name(format!("example-worker-{n}"))
                .spawn(move || -> syncmq::Result<()> {
                    let routed = Routed::new(
                        "process-client-events",
                        "job.created",
                        format!("job from worker {n}"),
                    );
                    client()?.publish_routed_nowait(routed)
                })
                .map_err(|e| syncmq::Error::io("spawn a worker", e))
        })
        .collect::<syncmq::Result<_>>()?;
    for worker in workers {
        worker
            .join()
            .map_err(|_| syncmq::Error::invalid("worker", "panicked"))??;
    }

    for _ in 0..2 {
        handled
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| syncmq::Error::timeout("the two jobs", Duration::from_secs(10)))?;
    }
    // A static is never dropped: close it, so that what is buffered is
    // confirmed and the consumer stopped before the process ends.
    client()?.close()
}
