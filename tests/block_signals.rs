//! SIGTERM and SIGINT to a child process running blocks: the close is
//! ordered, the exit code is 0, and the satellite keeps every line it
//! acknowledged: in its durable queue (read out after the exit) and, with
//! `--amqp`, on the real broker, across a broker-side close of its
//! connection.
//!
//! Signals are process-wide, so each case runs in a child: this binary
//! started again with `SYNCMQ_BLOCK_CHILD` set, as either a small block
//! process (`ordered`) or the satellite example (`satellite`, whose source
//! is compiled in from `examples/satellite.rs`). It has its own `main`
//! (`harness = false`): a test that is not a child runs the cases.
#![allow(clippy::unwrap_used)]

mod common;

#[allow(dead_code)]
#[path = "../examples/satellite.rs"]
mod satellite;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::panic::catch_unwind;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use syncmq::block::{BlockConfig, Registry, Runtime, RuntimeConfig, SignalBlock, SIGNAL_BLOCK};

const CHILD: &str = "SYNCMQ_BLOCK_CHILD";
const CHILD_ARGS: &str = "SYNCMQ_BLOCK_CHILD_ARGS";
const LIMIT: Duration = Duration::from_secs(30);

fn main() {
    match std::env::var(CHILD).as_deref() {
        Ok("ordered") => std::process::exit(ordered_child(false)),
        Ok("stuck") => std::process::exit(ordered_child(true)),
        Ok("satellite") => {
            let _ =
                env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
                    .try_init();
            let args = std::env::var(CHILD_ARGS).unwrap_or_default();
            let args = args.split('\u{1f}').map(String::from).collect();
            std::process::exit(satellite::run(args))
        }
        _ => run_cases(),
    }
}

type Case = (&'static str, fn());

fn run_cases() {
    let cases: [Case; 6] = [
        ("sigterm_finishes_blocks_in_reverse_order", || {
            ordered_close_on("TERM");
        }),
        ("sigint_finishes_blocks_in_reverse_order", || {
            ordered_close_on("INT");
        }),
        (
            "a_second_signal_during_the_close_exits_at_once",
            a_second_signal_during_the_close_exits_at_once,
        ),
        (
            "satellite_sigterm_keeps_every_acknowledged_line",
            satellite_sigterm_keeps_every_acknowledged_line,
        ),
        (
            "satellite_logs_a_dependency_that_goes_away_and_comes_back",
            satellite_logs_a_dependency_that_goes_away_and_comes_back,
        ),
        (
            "satellite_amqp_survives_a_broker_close_and_keeps_every_acknowledged_line",
            satellite_amqp_survives_a_broker_close_and_keeps_every_acknowledged_line,
        ),
    ];
    // `cargo test -- NAME` filters and `--list` lists, as with libtest;
    // other flags are ignored.
    if std::env::args().any(|a| a == "--list") {
        for (name, _) in cases {
            println!("{name}: test");
        }
        return;
    }
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, case) in cases {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        ran += 1;
        let ok = catch_unwind(case).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if !ok {
            failed.push(name);
        }
    }
    println!(
        "test result: {}. {} passed; {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        ran - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        std::process::exit(1);
    }
}

/// The `ordered` child: the signal block and three blocks, each printing
/// its steps; `ready` once running. With `stuck`, block `c` hangs in its
/// `finish` (for a minute) after printing `step hanging c`.
fn ordered_child(stuck: bool) -> i32 {
    let mut registry = Registry::empty();
    registry
        .register(SIGNAL_BLOCK, |resp| {
            satellite::Traced::new(resp, SignalBlock::new())
        })
        .unwrap();
    registry
        .register("idle", move |resp| {
            satellite::Traced::new(
                resp,
                Idle {
                    hang: stuck && resp == "c",
                },
            )
        })
        .unwrap();
    let config = ["a", "b", "c"].iter().fold(
        RuntimeConfig::new()
            .with_block(BlockConfig::new(SIGNAL_BLOCK))
            .with_finish_timeout(Duration::from_secs(60)),
        |c, r| c.with_block(BlockConfig::new("idle").with_responsibility(*r)),
    );
    let runtime = match Runtime::start(&config, &registry) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    satellite::step("ready", "all");
    match runtime.run_until_closed() {
        Ok(()) => {
            satellite::step("closed", "all");
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// Runs until finished, as a block whose `run` loops would.
struct Idle {
    hang: bool,
}

impl syncmq::block::Block for Idle {
    fn init(&self, _: &syncmq::block::InitContext<'_>) -> syncmq::Result<()> {
        Ok(())
    }
    fn run(&self, ctl: syncmq::block::Controller) {
        let _ = ctl.finishing().recv();
    }
    fn finish(&self) -> syncmq::Result<()> {
        if self.hang {
            satellite::step("hanging", "c");
            std::thread::sleep(Duration::from_secs(60));
        }
        Ok(())
    }
}

/// A child process and its stdout, line by line.
struct Spawned {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

fn spawn_child(mode: &str, args: &[&str]) -> Spawned {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, mode)
        .env(CHILD_ARGS, args.join("\u{1f}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = crossbeam_channel::unbounded();
    std::thread::Builder::new()
        .name("child-stdout".into())
        .spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        })
        .unwrap();
    Spawned {
        child,
        lines,
        seen: Vec::new(),
    }
}

impl Spawned {
    /// Reads lines until one satisfies `want`, and returns it.
    fn wait_for(&mut self, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + LIMIT;
        loop {
            match self.lines.recv_deadline(deadline) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if want(&line) {
                        return line;
                    }
                }
                Err(e) => panic!("child never printed the line ({e}); saw {:?}", self.seen),
            }
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the exit; returns the exit code and every line printed.
    fn wait_exit(self) -> (Option<i32>, Vec<String>) {
        let (status, lines) = self.wait_status();
        (status.code(), lines)
    }

    /// Waits for the exit; returns its status and every line printed.
    fn wait_status(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let deadline = Instant::now() + LIMIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "the child did not exit within {LIMIT:?}; saw {:?}",
                    self.seen
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        // The pipe ends with the process: collect the rest.
        self.seen.extend(self.lines.iter());
        (status, self.seen)
    }
}

/// The steps among `lines`, in order, without the `step ` prefix.
fn steps(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("step "))
        .collect()
}

fn ordered_close_on(signal: &str) {
    let mut child = spawn_child("ordered", &[]);
    child.wait_for(|l| l == "step ready all");
    child.signal(signal);
    let (code, lines) = child.wait_exit();
    assert_eq!(
        code,
        Some(0),
        "exit code after SIG{signal}; printed {lines:?}"
    );
    assert_eq!(
        steps(&lines),
        [
            "init finisher",
            "init a",
            "init b",
            "init c",
            "ready all",
            "finished c",
            "finished b",
            "finished a",
            "finished finisher",
            "closed all",
        ],
        "after SIG{signal}"
    );
}

fn a_second_signal_during_the_close_exits_at_once() {
    use std::os::unix::process::ExitStatusExt;
    let mut child = spawn_child("stuck", &[]);
    child.wait_for(|l| l == "step ready all");
    child.signal("TERM");
    child.wait_for(|l| l == "step hanging c");
    let started = Instant::now();
    child.signal("INT");
    let (status, lines) = child.wait_status();
    // Ended by the second signal's default action, long before the stuck
    // block's minute is up, and without finishing the others.
    assert_eq!(status.signal(), Some(2), "{status:?}; printed {lines:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(!lines.iter().any(|l| l == "step finished b"), "{lines:?}");
}

/// A TCP client of the satellite: sends lines `line-<n>` and collects the
/// `ok <n>` answers (an `err <n>` answer is not an acknowledgement).
struct LineClient {
    writer: TcpStream,
    acks: Receiver<u64>,
    answers: std::thread::JoinHandle<()>,
    acked: HashSet<u64>,
    sent: u64,
}

impl LineClient {
    fn connect(addr: &str) -> LineClient {
        let stream = TcpStream::connect(addr).unwrap();
        let writer = stream.try_clone().unwrap();
        let (acks_tx, acks) = crossbeam_channel::unbounded::<u64>();
        let answers = std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if let Some(seq) = line.strip_prefix("ok ") {
                    acks_tx.send(seq.parse().unwrap()).unwrap();
                } else {
                    assert!(line.starts_with("err "), "unexpected answer {line:?}");
                }
            }
        });
        LineClient {
            writer,
            acks,
            answers,
            acked: HashSet::new(),
            sent: 0,
        }
    }

    /// Sends `n` more lines and waits until each is acknowledged.
    fn send_acked(&mut self, n: u64) {
        for _ in 0..n {
            self.sent += 1;
            writeln!(self.writer, "line-{}", self.sent).unwrap();
        }
        while (self.sent - n + 1..=self.sent).any(|s| !self.acked.contains(&s)) {
            self.acked
                .insert(self.acks.recv_timeout(LIMIT).expect("an ack"));
        }
    }

    /// Keeps sending until the satellite closes the socket; once `more`
    /// of those lines are acknowledged, calls `then` (the signal lands
    /// mid-stream). Returns how many lines were sent in all.
    fn stream_until_closed(mut self, more: usize, then: impl FnOnce()) -> (u64, HashSet<u64>) {
        let mut writer = self.writer.try_clone().unwrap();
        let first = self.sent;
        let streamer = std::thread::spawn(move || {
            let mut sent = first;
            while sent < 50_000_000 && writeln!(writer, "line-{}", sent + 1).is_ok() {
                sent += 1;
            }
            sent
        });
        let target = self.acked.len() + more;
        while self.acked.len() < target {
            self.acked
                .insert(self.acks.recv_timeout(LIMIT).expect("an ack"));
        }
        then();
        let sent = streamer.join().unwrap();
        drop(self.writer);
        self.answers.join().unwrap();
        self.acked.extend(self.acks.try_iter());
        (sent, self.acked)
    }
}

/// The finish steps among `lines`: the satellite's blocks in reverse.
fn assert_ordered_finish(lines: &[String]) {
    let finished: Vec<&str> = steps(lines)
        .into_iter()
        .filter(|s| s.starts_with("finished "))
        .collect();
    assert_eq!(
        finished,
        [
            "finished reader",
            "finished publisher",
            "finished store",
            "finished finisher"
        ],
        "printed {lines:?}"
    );
    assert_eq!(steps(lines).last(), Some(&"closed all"), "{lines:?}");
}

/// Every line the satellite's queue directory holds, in queue order.
fn read_queue(dir: &std::path::Path) -> Vec<String> {
    let queue = syncmq::queue::Queue::open(dir, satellite::queue_config()).unwrap();
    let sub = queue
        .subscribe(satellite::TOPIC, satellite::SUBSCRIBER)
        .unwrap();
    let mut lines = Vec::new();
    loop {
        let batch = sub.next_batch(4096, Some(Duration::ZERO)).unwrap();
        if batch.is_empty() {
            break;
        }
        for r in batch {
            lines.push(String::from_utf8(r.message.body().to_vec()).unwrap());
        }
    }
    drop(sub);
    queue.close().unwrap();
    lines
}

fn satellite_sigterm_keeps_every_acknowledged_line() {
    let dir = std::env::temp_dir().join(common::unique("satellite"));
    let mut child = spawn_child(
        "satellite",
        &["--listen", "127.0.0.1:0", "--queue", dir.to_str().unwrap()],
    );
    let listening = child.wait_for(|l| l.starts_with("listening on "));
    let addr = listening.trim_start_matches("listening on ").to_string();
    child.wait_for(|l| l == "step running all");

    let mut client = LineClient::connect(&addr);
    client.send_acked(200);
    // A second stream that runs until the satellite closes the socket;
    // SIGTERM once 100 of it are acknowledged.
    let (sent, acked) = client.stream_until_closed(100, || child.signal("TERM"));
    let (code, lines) = child.wait_exit();
    assert_eq!(code, Some(0), "exit code after SIGTERM; printed {lines:?}");
    assert_ordered_finish(&lines);

    // The queue, opened again after the exit: every acknowledged line, in
    // the order sent, with nothing missing in between.
    let stored = read_queue(&dir);
    let want: Vec<String> = (1..=stored.len()).map(|i| format!("line-{i}")).collect();
    assert_eq!(stored, want, "stored lines are a prefix of those sent");
    let max_acked = acked.iter().copied().max().unwrap();
    assert!(acked.len() >= 300);
    assert!(
        stored.len() as u64 >= max_acked,
        "acknowledged up to line-{max_acked} but only {} stored",
        stored.len()
    );
    println!(
        "satellite: {sent} lines sent, {} acknowledged, {} stored",
        acked.len(),
        stored.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn satellite_logs_a_dependency_that_goes_away_and_comes_back() {
    let dir = std::env::temp_dir().join(common::unique("satellite-server"));
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let mut child = spawn_child(
        "satellite",
        &[
            "--listen",
            "127.0.0.1:0",
            "--queue",
            dir.to_str().unwrap(),
            "--server",
            &addr,
        ],
    );
    // The satellite dials the server: accept, and it reports a connect.
    let (peer, _) = server.accept().unwrap();
    child.wait_for(|l| l == "step dependency-connected reader");
    // The server goes away...
    drop(peer);
    drop(server);
    child.wait_for(|l| l == "step dependency-disconnected reader");
    // ...and comes back on the same address.
    let server = std::net::TcpListener::bind(&addr).unwrap();
    let (_peer, _) = server.accept().unwrap();
    child.wait_for(|l| l == "step dependency-connected reader");
    child.signal("TERM");
    let (code, lines) = child.wait_exit();
    assert_eq!(code, Some(0), "printed {lines:?}");
    let dependency_steps: Vec<&str> = steps(&lines)
        .into_iter()
        .filter(|s| s.starts_with("dependency-"))
        .collect();
    assert_eq!(
        dependency_steps,
        [
            "dependency-connected reader",
            "dependency-disconnected reader",
            "dependency-connected reader"
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every message in the broker queue `queue`, read without acking, then
/// the queue is deleted.
fn drain_broker_queue(url: &str, queue: &str) -> Vec<String> {
    let mut conn = amiquip::Connection::insecure_open(url).unwrap();
    let channel = conn.open_channel(None).unwrap();
    let mut bodies = Vec::new();
    while let Some(got) = channel.basic_get(queue, true).unwrap() {
        bodies.push(String::from_utf8(got.delivery.body).unwrap());
    }
    let _ = channel.queue_delete(queue, amiquip::QueueDeleteOptions::default());
    let _ = conn.close();
    bodies
}

fn satellite_amqp_survives_a_broker_close_and_keeps_every_acknowledged_line() {
    // Deletes the broker queue whatever the outcome.
    struct Cleanup<'a>(&'a str, &'a str);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            common::delete_queues(self.0, &[self.1]);
        }
    }
    let Some(url) = common::broker_url() else {
        return;
    };
    let queue = common::unique("satellite-lines");
    let name = common::unique("satellite-conn");
    let mut child = spawn_child(
        "satellite",
        &[
            "--listen",
            "127.0.0.1:0",
            "--amqp",
            &url,
            "--amqp-queue",
            &queue,
            "--name",
            &name,
        ],
    );
    let cleanup = Cleanup(&url, &queue);
    let listening = child.wait_for(|l| l.starts_with("listening on "));
    let addr = listening.trim_start_matches("listening on ").to_string();
    child.wait_for(|l| l == "step dependency-connected reader");

    let mut client = LineClient::connect(&addr);
    client.send_acked(100);
    // The broker closes the satellite's connection: the reader hears the
    // disconnect and the supervisor's reconnect, and publishing goes on.
    let deadline = Instant::now() + LIMIT;
    while common::force_close_connection(&name) == 0 {
        assert!(Instant::now() < deadline, "connection {name} never listed");
    }
    child.wait_for(|l| l == "step dependency-disconnected reader");
    child.wait_for(|l| l == "step dependency-connected reader");
    client.send_acked(100);
    let (sent, acked) = client.stream_until_closed(100, || child.signal("TERM"));
    let (code, lines) = child.wait_exit();
    assert_eq!(code, Some(0), "exit code after SIGTERM; printed {lines:?}");
    assert_ordered_finish(&lines);

    let stored: HashSet<String> = drain_broker_queue(&url, &queue).into_iter().collect();
    drop(cleanup);
    let lost: Vec<u64> = acked
        .iter()
        .copied()
        .filter(|seq| !stored.contains(&format!("line-{seq}")))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged but not on the broker: {lost:?}"
    );
    assert!(acked.len() >= 300);
    println!(
        "satellite --amqp: {sent} lines sent, {} acknowledged, {} on the broker",
        acked.len(),
        stored.len()
    );
}
