//! `bench ffi`: the C ABI (`libsyncmq.so`) against the engine it wraps.
//!
//! The baseline is Rust calling [`Queue::publish`] with one message of
//! `size` bytes at a time, `messages` times, on a queue opened with
//! buffered durability (so the figure is the call path, not the disk). The
//! case is the same publishes from a C program through
//! `syncmq_queue_publish`: the bench builds the library
//! (`cargo build --release -p syncmq-ffi`), compiles `ffi/bench/publish.c`
//! against it and runs it as a process, since the root crate cannot depend
//! on the ffi crate (that would be a cycle). The C program times its own
//! loop with `clock_gettime`, then the cost of single calls across the
//! boundary, printed under the table in ns per call.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Args;
use syncmq::queue::{Durability, Queue, QueueConfig, TopicConfig};
use syncmq::Message;

use crate::report::Table;

const TOPIC: &str = "bench";
const RUST: &str = "Rust Queue::publish, 1 message per call";
const C: &str = "C syncmq_queue_publish, 1 message per call";

/// The load of `bench ffi`.
#[derive(Args, Clone, Copy)]
pub struct FfiLoad {
    /// Messages per run.
    #[arg(long, default_value_t = 200_000)]
    pub messages: usize,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Calls per run of each per-call cost loop.
    #[arg(long, default_value_t = 1_000_000)]
    pub calls: usize,
    /// Runs per case; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

/// What one run of the C program printed.
struct CRun {
    publish: Duration,
    /// `syncmq_strerror`: a plain call, no guard.
    strerror_ns: f64,
    /// `syncmq_subscriber_fd`: a guarded call that succeeds.
    guarded_ok_ns: f64,
    /// `syncmq_queue_publish` with a NULL topic: a guarded call that fails.
    guarded_error_ns: f64,
}

pub fn run(load: FfiLoad) -> Table {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let program = build(root);
    let body = vec![0xA5u8; load.size];
    let mut rust_runs = Vec::new();
    let mut c_runs = Vec::new();
    for _ in 0..load.runs.max(1) {
        rust_runs.push(rust(&body, load.messages));
        c_runs.push(c(&program, load));
    }
    let mut table = Table::new(format!(
        "bench ffi: {} publishes of {} bytes, one at a time, buffered, median of {} runs",
        load.messages, load.size, load.runs
    ));
    table.baseline(RUST, load.messages, load.size, &rust_runs);
    let c_durations: Vec<_> = c_runs.iter().map(|r| r.publish).collect();
    table.compared(C, RUST, load.messages, load.size, &c_durations);
    let median = |f: fn(&CRun) -> f64| {
        let mut values: Vec<f64> = c_runs.iter().map(f).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    table.cost(
        "syncmq_strerror (plain call, no guard)",
        median(|r| r.strerror_ns),
    );
    table.cost(
        "syncmq_subscriber_fd (guarded, ok)",
        median(|r| r.guarded_ok_ns),
    );
    table.cost(
        "publish with NULL topic (guarded, error)",
        median(|r| r.guarded_error_ns),
    );
    table
}

fn rust(body: &[u8], messages: usize) -> Duration {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let queue = Queue::open(
        dir.path(),
        QueueConfig::new()
            .with_durability(Durability::Buffered)
            .with_topic(TopicConfig::new(TOPIC, ["consumer"])),
    )
    .expect("open the queue");
    let started = Instant::now();
    for _ in 0..messages {
        queue
            .publish(TOPIC, &[Message::new(body.to_vec())])
            .expect("publish");
    }
    let took = started.elapsed();
    queue.close().expect("close");
    took
}

/// The compiled C program, in a directory that lives as long as it.
struct Program {
    _dir: tempfile::TempDir,
    exe: PathBuf,
    lib_dir: PathBuf,
}

/// Builds `libsyncmq.so` (release) and compiles `ffi/bench/publish.c`
/// against it.
fn build(root: &Path) -> Program {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let status = Command::new(&cargo)
        .args(["build", "--release", "-p", "syncmq-ffi"])
        .current_dir(root)
        .status()
        .expect("run cargo");
    assert!(
        status.success(),
        "cargo build -p syncmq-ffi failed: {status}"
    );
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let lib_dir = root.join(target).join("release");
    assert!(
        lib_dir.join("libsyncmq.so").exists(),
        "no libsyncmq.so in {}",
        lib_dir.display()
    );
    let dir = tempfile::tempdir().expect("a temporary directory");
    let exe = dir.path().join("publish");
    let output = Command::new("cc")
        .args(["-O2", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(root.join("ffi/include"))
        .arg(root.join("ffi/bench/publish.c"))
        .arg("-o")
        .arg(&exe)
        .arg("-L")
        .arg(&lib_dir)
        .arg("-lsyncmq")
        .output()
        .expect("run cc");
    assert!(
        output.status.success(),
        "cc ffi/bench/publish.c failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Program {
        _dir: dir,
        exe,
        lib_dir,
    }
}

/// Runs the C program once on a fresh queue directory.
fn c(program: &Program, load: FfiLoad) -> CRun {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let output = Command::new(&program.exe)
        .arg(dir.path().join("queue"))
        .arg(load.messages.to_string())
        .arg(load.size.to_string())
        .arg(load.calls.max(1).to_string())
        .env("LD_LIBRARY_PATH", &program.lib_dir)
        .output()
        .expect("run the C program");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the C program failed ({}):\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let value = |name: &str| -> f64 {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `{name}` line in the C program's output:\n{stdout}"))
    };
    CRun {
        publish: Duration::from_secs_f64(value("publish_ns") / 1e9),
        strerror_ns: value("strerror_ns"),
        guarded_ok_ns: value("guarded_ok_ns"),
        guarded_error_ns: value("guarded_error_ns"),
    }
}
