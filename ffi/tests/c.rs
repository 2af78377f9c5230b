//! Builds the C, C++ and Python programs under `tests/c/` and
//! `tests/python/` against the library this package just built
//! (`libsyncmq.so`, beside this test's own binary) and runs them: each
//! prints what failed and exits non-zero on any failure, and prints
//! "<name>: ok" at the end.
//!
//! The library is built first, once per run of this binary, with
//! `cargo build -p syncmq-ffi`: cargo builds a package's library before its
//! integration tests only when it can link it (an rlib), and this one is
//! a cdylib and a staticlib only, so `cargo test` alone would leave
//! `libsyncmq.so` missing or stale (checked: after a change to the
//! sources, `cargo test -p syncmq-ffi --test c` rebuilt nothing).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::Duration;

/// `target/<profile>/`, where cargo puts `libsyncmq.so`, built and up to
/// date: this binary is `target/<profile>/deps/c-<hash>`.
fn library_dir() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
        let profile = dir.file_name().unwrap().to_string_lossy().into_owned();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "-p", "syncmq-ffi", "--lib"]);
        if profile != "debug" {
            build.args(["--profile", &profile]);
        }
        let status = build.status().unwrap();
        assert!(
            status.success(),
            "cargo build -p syncmq-ffi failed: {status}"
        );
        assert!(
            dir.join("libsyncmq.so").exists(),
            "no libsyncmq.so in {} after the build",
            dir.display()
        );
        dir
    })
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Compiles `source` (under `tests/c/`, or an absolute path) with
/// `compiler` and `flags`, linked with -lsyncmq, into `dir`.
fn compile(compiler: &str, source: &str, flags: &[&str], dir: &Path) -> PathBuf {
    let root = manifest_dir();
    let file_name = Path::new(source).file_name().unwrap().to_string_lossy();
    let exe = dir.join(file_name.replace('.', "_"));
    let output = Command::new(compiler)
        .args(flags)
        .arg("-Wall")
        .arg("-Wextra")
        .arg("-Werror")
        .arg("-g")
        .arg("-I")
        .arg(root.join("include"))
        .arg("-I")
        .arg(root.join("tests/c"))
        .arg(root.join("tests/c").join(source))
        .arg("-o")
        .arg(&exe)
        .arg("-L")
        .arg(library_dir())
        .arg("-lsyncmq")
        .arg("-lpthread")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {compiler}: {e} (install it: scripts/test.sh does)")
        });
    assert!(
        output.status.success(),
        "{compiler} {source} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    exe
}

/// Runs `program` with `args`, the library found through `LD_LIBRARY_PATH`.
fn run(program: &Path, args: &[&Path]) -> Output {
    Command::new(program)
        .args(args)
        .env("LD_LIBRARY_PATH", library_dir())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

/// Asserts that `output` is a success that printed `<name>: ok`.
fn assert_ok(name: &str, output: &Output) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(&format!("{name}: ok")),
        "{name} failed ({}):\n--- stdout\n{stdout}--- stderr\n{stderr}",
        output.status
    );
    print!("{stdout}");
}

/// Compiles `tests/c/<name>.c` and runs it on a fresh queue directory.
fn run_c(name: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let exe = compile(
        "cc",
        &format!("{name}.c"),
        &["-std=c11", "-D_GNU_SOURCE"],
        dir.path(),
    );
    let queue = dir.path().join("queue");
    run(&exe, &[&queue])
}

/// Compiles `tests/c/<name>.c` into `dir`.
fn build_c(name: &str, dir: &Path) -> PathBuf {
    compile(
        "cc",
        &format!("{name}.c"),
        &["-std=c11", "-D_GNU_SOURCE"],
        dir,
    )
}

/// Runs `program` with `args` as [`run`] does, killed (and the test
/// failed) when it has not ended within `limit`: a close that hangs fails
/// the test instead of stalling the suite.
fn run_within(program: &Path, args: &[&Path], limit: Duration) -> Output {
    let child = Command::new(program)
        .args(args)
        .env("LD_LIBRARY_PATH", library_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let pid = child.id();
    let (done, finished) = mpsc::channel();
    let waiter = std::thread::Builder::new()
        .name(format!("wait-{pid}"))
        .spawn(move || {
            // The receiver is gone only when the test already failed.
            let _ = done.send(child.wait_with_output());
        })
        .unwrap();
    let output = finished.recv_timeout(limit);
    if output.is_err() {
        // The program hangs: end it, so that the waiter can be joined.
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    waiter.join().unwrap();
    let output =
        output.unwrap_or_else(|_| panic!("{} did not end within {limit:?}", program.display()));
    output.unwrap()
}

/// Whether a missing tool skips its test (with a notice) or fails it: it
/// fails where the tests must all run (scripts/test.sh sets
/// `SYNCMQ_REQUIRE_BROKER` and installs the tools).
fn tool_missing(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("SYNCMQ_REQUIRE_BROKER").is_none(),
            "{tool} is not installed and SYNCMQ_REQUIRE_BROKER is set (scripts/test.sh installs it)"
        );
        println!("SKIPPED: {tool} is not installed");
    }
    !found
}

#[test]
fn channels_carry_fields_durable_requeues_and_errors_name_the_problem() {
    assert_ok("channels", &run_c("channels"));
}

/// Under a time limit: closing the adapter must stop and join the ready
/// thread, or the program hangs and is killed.
#[test]
fn the_channel_fd_follows_the_output_and_close_stops_its_thread() {
    let dir = tempfile::tempdir().unwrap();
    let exe = build_c("channel_poll", dir.path());
    let output = run_within(&exe, &[], Duration::from_secs(60));
    assert_ok("channel_poll", &output);
}

/// The RabbitMQ adapter and publisher against the test broker
/// (`SYNCMQ_AMQP_URL`, by default the local RabbitMQ). Without a broker it
/// skips with a notice, unless `SYNCMQ_REQUIRE_BROKER` or `CI` is set:
/// then it fails, as the root crate's broker tests do.
#[test]
fn rabbitmq_channel_round_trip_and_confirmed_publish() {
    let url = std::env::var("SYNCMQ_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string());
    let answers = std::net::TcpStream::connect_timeout(
        &"127.0.0.1:5672".parse().unwrap(),
        Duration::from_secs(2),
    )
    .is_ok();
    if !answers {
        let required =
            std::env::var_os("SYNCMQ_REQUIRE_BROKER").is_some() || std::env::var_os("CI").is_some();
        assert!(
            !required,
            "no RabbitMQ answers at 127.0.0.1:5672, and broker tests are required here"
        );
        println!("SKIPPED: no RabbitMQ answers at 127.0.0.1:5672");
        return;
    }
    // A queue no other run uses (the broker keeps it).
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let queue = format!("syncmq-ffi-test-{}-{nanos}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let exe = build_c("rabbitmq", dir.path());
    let output = run_within(
        &exe,
        &[Path::new(&url), Path::new(&queue)],
        Duration::from_secs(120),
    );
    assert_ok("rabbitmq", &output);
}

/// A queue server started here, on 127.0.0.1:0, and the C client against
/// it; afterwards the queue holds nothing for the subscriber: the acks
/// reached the server.
#[test]
fn the_queue_server_client_publishes_subscribes_and_settles() {
    use syncmq::queue::{Queue, QueueConfig, TopicConfig};
    use syncmq::server::{QueueServer, QueueServerConfig};

    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(
        Queue::open(
            dir.path().join("queue"),
            QueueConfig::new().with_topic(TopicConfig::new("orders", ["billing"])),
        )
        .unwrap(),
    );
    let server = QueueServer::start(queue.clone(), QueueServerConfig::new()).unwrap();
    let addr = server.local_addr().to_string();
    let exe = build_c("client", dir.path());
    let output = run_within(&exe, &[Path::new(&addr)], Duration::from_secs(60));
    assert_ok("client", &output);
    server.close().unwrap();
    let sub = queue.subscribe("orders", "billing").unwrap();
    let left = sub.next_batch(10, Some(Duration::ZERO)).unwrap();
    assert!(
        left.is_empty(),
        "{} unsettled after the client closed",
        left.len()
    );
    queue.close().unwrap();
}

#[test]
fn roundtrip() {
    assert_ok("roundtrip", &run_c("roundtrip"));
}

#[test]
fn whole_messages_keep_their_fields_and_a_batch_is_all_or_nothing() {
    assert_ok("messages", &run_c("messages"));
}

#[test]
fn threads_publish_at_once_and_nothing_is_lost_or_duplicated() {
    assert_ok("threads", &run_c("threads"));
}

/// Twice, each time killed at its own random point (the seed is printed).
#[test]
fn a_publish_that_returned_0_survives_kill_9() {
    for _ in 0..2 {
        assert_ok("crash", &run_c("crash"));
    }
}

#[test]
fn errors_return_their_code_and_name_the_problem() {
    assert_ok("errors", &run_c("errors"));
}

#[test]
fn receipts_stats_json_and_dead_letters_replay_from_c() {
    assert_ok("extras", &run_c("extras"));
}

#[test]
fn the_readiness_fd_follows_the_queue() {
    assert_ok("poll", &run_c("poll"));
}

/// The roundtrip linked with the static library, and what
/// `syncmq.pc.in`'s `Libs.private` says it needs.
#[test]
fn roundtrip_with_the_static_library() {
    let pc = std::fs::read_to_string(manifest_dir().join("syncmq.pc.in")).unwrap();
    let private = pc
        .lines()
        .find_map(|l| l.strip_prefix("Libs.private:"))
        .expect("Libs.private in syncmq.pc.in");
    let dir = tempfile::tempdir().unwrap();
    let root = manifest_dir();
    let exe = dir.path().join("roundtrip_static");
    let output = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(root.join("include"))
        .arg("-I")
        .arg(root.join("tests/c"))
        .arg(root.join("tests/c/roundtrip.c"))
        .arg(library_dir().join("libsyncmq.a"))
        .args(private.split_whitespace())
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "linking libsyncmq.a failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // No LD_LIBRARY_PATH: nothing of ours is loaded at run time.
    let output = Command::new(&exe)
        .arg(dir.path().join("queue"))
        .output()
        .unwrap();
    assert_ok("roundtrip", &output);
}

/// The roundtrip under valgrind: definite and indirect leaks and invalid
/// accesses fail; Rust's std keeps some blocks "still reachable" until
/// exit (thread-locals, the stdout buffer), which is no leak.
#[test]
fn roundtrip_under_valgrind() {
    if tool_missing("valgrind") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = compile("cc", "roundtrip.c", &["-std=c11"], dir.path());
    assert_clean_under_valgrind("roundtrip", &exe, &[&dir.path().join("queue")]);
}

/// Channels (simple and durable adapters, deliveries of both sources
/// freed, acked and nacked) and a watched output whose ready thread is
/// stopped at close, under valgrind as the roundtrip.
#[test]
fn channels_under_valgrind() {
    if tool_missing("valgrind") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = build_c("channels", dir.path());
    assert_clean_under_valgrind("channels", &exe, &[&dir.path().join("queue")]);
    let exe = build_c("channel_poll", dir.path());
    assert_clean_under_valgrind("channel_poll", &exe, &[]);
}

/// The extras (receipts, library-allocated JSON strings, dead letters)
/// under valgrind: every receipt and string freed, on every path (about
/// 20 s).
#[test]
fn extras_free_every_receipt_and_string_under_valgrind() {
    if tool_missing("valgrind") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = build_c("extras", dir.path());
    assert_clean_under_valgrind("extras", &exe, &[&dir.path().join("queue")]);
}

/// Runs `exe` with `args` under valgrind; fails on a definite or indirect
/// leak, an invalid access, or the program failing.
fn assert_clean_under_valgrind(name: &str, exe: &Path, args: &[&Path]) {
    let output = Command::new("valgrind")
        .args([
            "--leak-check=full",
            "--show-leak-kinds=definite,indirect",
            "--errors-for-leak-kinds=definite,indirect",
            "--error-exitcode=1",
        ])
        .arg(exe)
        .args(args)
        .env("LD_LIBRARY_PATH", library_dir())
        .output()
        .unwrap();
    assert_ok(name, &output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ERROR SUMMARY: 0 errors"),
        "valgrind found errors:\n{stderr}"
    );
}

/// The header from C++17 with every warning an error, linked and run.
#[test]
fn the_header_compiles_as_cpp() {
    let dir = tempfile::tempdir().unwrap();
    let exe = compile("g++", "header.cpp", &["-std=c++17"], dir.path());
    assert_ok("header.cpp", &run(&exe, &[]));
}

/// The header from strict C99 too (the C programs use C11).
#[test]
fn the_header_compiles_as_c99() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("include.c");
    std::fs::write(
        &source,
        "#include \"syncmq.h\"\nint main(void) { return SYNCMQ_OK; }\n",
    )
    .unwrap();
    let output = Command::new("cc")
        .args([
            "-std=c99",
            "-pedantic",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-fsyntax-only",
            "-I",
        ])
        .arg(manifest_dir().join("include"))
        .arg(&source)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the header is not C99:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn python_ctypes_roundtrip() {
    if tool_missing("python3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new("python3")
        .arg(manifest_dir().join("tests/python/roundtrip.py"))
        .arg(library_dir().join("libsyncmq.so"))
        .arg(dir.path().join("queue"))
        .output()
        .unwrap();
    assert_ok("roundtrip.py", &output);
}

/// The README's complete C program, as printed there, compiles cleanly and
/// does what the README says: publishes "order 42" and prints it back.
#[test]
fn the_readme_c_program_compiles_and_runs() {
    let readme = std::fs::read_to_string(manifest_dir().join("../README.md")).unwrap();
    let after = readme
        .split("A complete program")
        .nth(1)
        .expect("the README's \"A complete program\" paragraph");
    let program = after
        .split("```c\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a ```c block after it");
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue");
    assert!(
        program.contains("/tmp/orders-queue"),
        "the example's queue path changed"
    );
    let program = program.replace("/tmp/orders-queue", queue.to_str().unwrap());
    let source = dir.path().join("readme.c");
    std::fs::write(&source, program).unwrap();
    let exe = compile("cc", source.to_str().unwrap(), &["-std=c11"], dir.path());
    let output = run(&exe, &[]);
    assert!(
        output.status.success() && String::from_utf8_lossy(&output.stdout) == "order 42\n",
        "the README program failed ({}):\n--- stdout\n{}--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
