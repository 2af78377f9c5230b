//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different part

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub mod postgres_tls;
#[cfg(feature = "cli")]
pub mod served;

/// A name no other test, process or earlier run uses, for resources that
/// outlive a test (broker queues) or that tests share (thread names).
pub fn unique(base: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{base}-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The names of this process's threads that syncmq started, as the kernel
/// shows them (the first 15 bytes of the name).
pub fn syncmq_threads() -> Vec<String> {
    threads_named("syncmq-")
}

/// The names of this process's threads whose name starts with `prefix`, as
/// the kernel shows them (the first 15 bytes of the name).
pub fn threads_named(prefix: &str) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task").expect("read /proc/self/task") {
        let Ok(entry) = entry else { continue };
        // A thread that just ended may vanish between the listing and the read.
        if let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) {
            let comm = comm.trim_end().to_string();
            if comm.starts_with(prefix) {
                names.push(comm);
            }
        }
    }
    names.sort();
    names
}

/// Waits until `condition` holds, checking it as fast as the scheduler
/// allows, and fails the test with `what` if it does not within `limit`.
/// For conditions that are reached by other threads shortly after the call
/// that causes them returns (a joined thread leaving /proc, say).
pub fn eventually(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether a test that cannot run here must fail rather than skip: under
/// the test script (`SYNCMQ_REQUIRE_BROKER`) and in CI (`CI`).
pub fn required() -> bool {
    std::env::var_os("SYNCMQ_REQUIRE_BROKER").is_some() || std::env::var_os("CI").is_some()
}

/// The AMQP URL of the test broker (`SYNCMQ_AMQP_URL`, by default the local
/// RabbitMQ), or `None` when no broker answers there.
///
/// Without a broker a test may skip, with a notice on stderr, but only
/// outside CI: when `SYNCMQ_REQUIRE_BROKER` or `CI` is set (the test script
/// sets the first), a missing broker fails the test instead.
pub fn broker_url() -> Option<String> {
    let url = std::env::var("SYNCMQ_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string());
    let answers = std::net::TcpStream::connect_timeout(
        &"127.0.0.1:5672".parse().expect("a socket address"),
        Duration::from_secs(2),
    )
    .is_ok();
    if answers {
        return Some(url);
    }
    assert!(
        !required(),
        "no RabbitMQ answers at 127.0.0.1:5672, and broker tests are required here"
    );
    eprintln!("NOTICE: skipping a broker test: no RabbitMQ answers at 127.0.0.1:5672");
    None
}

/// The connection string of the test PostgreSQL (`SYNCMQ_POSTGRES`, by
/// default the local server, database `test`, user `postgres`), or `None`
/// when nothing answers on 127.0.0.1:5432. As with [`broker_url`], a
/// missing server skips the test with a notice outside CI only.
pub fn postgres_params() -> Option<String> {
    let params = std::env::var("SYNCMQ_POSTGRES").unwrap_or_else(|_| {
        "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=5".to_string()
    });
    let answers = std::net::TcpStream::connect_timeout(
        &"127.0.0.1:5432".parse().expect("a socket address"),
        Duration::from_secs(2),
    )
    .is_ok();
    if answers {
        return Some(params);
    }
    assert!(
        !required(),
        "no PostgreSQL answers at 127.0.0.1:5432, and database tests are required here"
    );
    eprintln!("NOTICE: skipping a PostgreSQL test: nothing answers at 127.0.0.1:5432");
    None
}

/// Force-closes, from the broker's side, every open connection whose
/// `information` client property is exactly `name` (syncmq sends the
/// connection name there), the way an operator or a broker failover would.
/// Returns how many were closed. Other tests' connections are never touched.
pub fn force_close_connection(name: &str) -> usize {
    force_close_connection_on("rabbit@localhost", name)
}

/// As [`force_close_connection`], on the RabbitMQ node `node` (one of the
/// test's own, say `syncmq-c1@localhost`).
pub fn force_close_connection_on(node: &str, name: &str) -> usize {
    let listing = rabbitmqctl_on(node, &["list_connections", "pid", "client_properties"]);
    let needle = format!("{{\"information\",\"{name}\"}}");
    let mut closed = 0;
    for line in listing.lines() {
        if !line.contains(&needle) {
            continue;
        }
        let Some(pid) = line.split('\t').next() else {
            continue;
        };
        let status = std::process::Command::new("rabbitmqctl")
            .args([
                "-q",
                "-n",
                node,
                "close_connection",
                pid,
                "syncmq test: forced close",
            ])
            .status()
            .expect("run rabbitmqctl close_connection");
        if status.success() {
            closed += 1;
        }
    }
    closed
}

/// Deletes broker queues a test made, over a connection of its own.
#[cfg(feature = "rabbitmq")]
pub fn delete_queues(url: &str, names: &[&str]) {
    let mut conn = amiquip::Connection::insecure_open(url).expect("a cleanup connection");
    let channel = conn.open_channel(None).expect("a cleanup channel");
    for name in names {
        let _ = channel.queue_delete(*name, amiquip::QueueDeleteOptions::default());
    }
    let _ = conn.close();
}

/// Ready messages in `queue`, from a passive declare.
#[cfg(feature = "rabbitmq")]
pub fn queue_depth(url: &str, queue: &str) -> u32 {
    let mut conn = amiquip::Connection::insecure_open(url).expect("a probe connection");
    let channel = conn.open_channel(None).expect("a probe channel");
    let depth = channel
        .queue_declare_passive(queue)
        .expect("the queue exists")
        .declared_message_count()
        .expect("a passive declare reports the count");
    let _ = conn.close();
    depth
}

/// True when the broker has a queue of this name.
#[cfg(feature = "rabbitmq")]
pub fn queue_exists(url: &str, name: &str) -> bool {
    let mut conn = amiquip::Connection::insecure_open(url).expect("a probe connection");
    let channel = conn.open_channel(None).expect("a probe channel");
    let exists = channel.queue_declare_passive(name).is_ok();
    let _ = conn.close();
    exists
}

/// `rabbitmqctl -q <args>` on the default node; its standard output.
pub fn rabbitmqctl(args: &[&str]) -> String {
    run_rabbitmqctl(None, args)
}

/// `rabbitmqctl -q -n <node> <args>` (one of the test's own nodes, say
/// `syncmq-tls@localhost`); its standard output.
pub fn rabbitmqctl_on(node: &str, args: &[&str]) -> String {
    run_rabbitmqctl(Some(node), args)
}

/// `rabbitmqctl -q` on `node` (the default node when `None`); its standard
/// output. A failure fails the test, naming the command.
fn run_rabbitmqctl(node: Option<&str>, args: &[&str]) -> String {
    let mut command = std::process::Command::new("rabbitmqctl");
    command.arg("-q");
    if let Some(node) = node {
        command.args(["-n", node]);
    }
    let out = command.args(args).output().expect("run rabbitmqctl");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A vhost of the test's own, deleted on drop: a test can refuse new
/// connections to it (a broker outage for this test only, with every other
/// test's connections untouched) and accept them again.
pub struct TestVhost {
    /// The vhost's name.
    pub name: String,
}

impl TestVhost {
    /// Creates a fresh vhost that guest may use.
    pub fn new(base: &str) -> Self {
        let name = unique(base);
        rabbitmqctl(&["add_vhost", &name]);
        rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        TestVhost { name }
    }

    /// A fresh vhost whose queues declared without `x-queue-type` are of
    /// type `queue_type` (`quorum`, `classic`, `stream`).
    pub fn with_default_queue_type(base: &str, queue_type: &str) -> Self {
        let name = unique(base);
        rabbitmqctl(&["add_vhost", &name, "--default-queue-type", queue_type]);
        rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        TestVhost { name }
    }

    /// The URL of the vhost on the test broker.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:5672/{}", self.name)
    }

    /// New connections to the vhost are refused until `accept_connections`.
    pub fn refuse_connections(&self) {
        rabbitmqctl(&[
            "set_vhost_limits",
            "-p",
            &self.name,
            r#"{"max-connections": 0}"#,
        ]);
    }

    /// New connections are accepted again.
    pub fn accept_connections(&self) {
        rabbitmqctl(&[
            "set_vhost_limits",
            "-p",
            &self.name,
            r#"{"max-connections": -1}"#,
        ]);
    }
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["-q", "delete_vhost", &self.name])
            .output();
    }
}

/// A TCP proxy in front of the broker that can make the connections
/// through it go silent: bytes are read and dropped both ways, nothing is
/// closed, as on a network partition. Connections made after that go
/// through normally. Its threads end when their sockets close.
pub struct SilentProxy {
    /// The local port to connect to instead of 5672.
    pub port: u16,
    /// Raised by `silence_existing`; each connection remembers the value it
    /// started with and goes silent once it changes.
    epoch: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl SilentProxy {
    /// Starts a proxy to 127.0.0.1:5672.
    pub fn start() -> Self {
        use std::net::{TcpListener, TcpStream};
        use std::sync::atomic::AtomicUsize;
        use std::sync::Arc;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let epoch = Arc::new(AtomicUsize::new(0));
        let shared = epoch.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(broker) = TcpStream::connect("127.0.0.1:5672") else {
                    continue;
                };
                let born = shared.load(Ordering::SeqCst);
                for (from, to) in [
                    (client.try_clone().unwrap(), broker.try_clone().unwrap()),
                    (broker, client),
                ] {
                    let epoch = shared.clone();
                    std::thread::spawn(move || copy(from, to, &epoch, born));
                }
            }
        });
        SilentProxy { port, epoch }
    }

    /// The broker's URL through the proxy.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Every connection open now goes silent for good.
    pub fn silence_existing(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }
}

fn copy(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    epoch: &AtomicUsize,
    born: usize,
) {
    use std::io::{Read, Write};
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => {
                if epoch.load(Ordering::SeqCst) != born {
                    // Partitioned: the other side must not learn of the
                    // close either. Hold its socket open a while.
                    std::thread::sleep(std::time::Duration::from_secs(30));
                }
                break;
            }
            Ok(n) => n,
        };
        if epoch.load(Ordering::SeqCst) != born {
            continue; // partitioned: the bytes go nowhere
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}
