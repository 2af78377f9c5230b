//! The `syncmq` binary, run as a user would: serve, publish, consume,
//! peek, reset, stats (and --watch), dlq, completions, progress bars,
//! errors a person reads, a consumer process killed mid-batch, and
//! SIGTERM.

#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use common::served::{self, Served, BIN};
use syncmq::server::QueueClient;

/// `syncmq serve` on an ephemeral port with the orders topic.
fn serve(dir: &std::path::Path) -> Served {
    serve_with(
        dir,
        "topics.json",
        r#"{"topics":[{"name":"orders","subscribers":["billing","shipping"],"max_deliveries":2}]}"#,
    )
}

/// Serves `dir/data` with the config file `name` holding `config`.
fn serve_with(dir: &std::path::Path, name: &str, config: &str) -> Served {
    served::serve(
        dir,
        name,
        config,
        &["--listen".as_ref(), "127.0.0.1:0".as_ref()],
    )
}

fn syncmq(addr: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--addr")
        .arg(addr)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// The one-line error of a failed run (exit status 1).
fn error_line(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8(o.stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    err.strip_prefix("syncmq: error: ")
        .unwrap_or_else(|| panic!("not an error line: {err}"))
        .trim_end()
        .to_string()
}

/// Runs `shell` under `script`, so that the command's stdout and stderr
/// are a terminal, and returns everything it wrote there.
fn on_a_terminal(shell: &str) -> String {
    let o = Command::new("script")
        .args(["-qec", shell, "/dev/null"])
        // CI may have no TERM at all; a person's terminal has one.
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{shell}: {o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_cli_serves_publishes_consumes_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = serve(dir.path());
    let addr = served.addr.clone();

    let out = stdout(&syncmq(&addr, &["publish", "orders", "a", "b", "c"]));
    assert!(out.starts_with("published 3 messages"), "{out}");

    let stats = json_lines(&syncmq(&addr, &["stats", "--json"]));
    let rows = stats[0].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["depth"] == 3), "{rows:?}");

    let got = json_lines(&syncmq(
        &addr,
        &["consume", "orders", "billing", "--count", "3", "--json"],
    ));
    let bodies: Vec<&str> = got.iter().map(|v| v["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["a", "b", "c"]);
    assert!(got.iter().all(|v| v["redelivered"] == false));

    // Text output for people.
    let table = stdout(&syncmq(&addr, &["stats", "orders"]));
    assert!(
        table.lines().next().unwrap().starts_with("topic"),
        "{table}"
    );
    assert_eq!(table.lines().count(), 3, "{table}");

    // Dead letters: two deliveries without an ack (max_deliveries 2).
    for _ in 0..2 {
        stdout(&syncmq(
            &addr,
            &["consume", "orders", "shipping", "--count", "1", "--requeue"],
        ));
    }
    let dead = json_lines(&syncmq(
        &addr,
        &["dlq", "list", "orders", "shipping", "--json"],
    ));
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["body"], "a");
    let replayed = json_lines(&syncmq(
        &addr,
        &["dlq", "replay", "orders", "shipping", "--json"],
    ));
    assert_eq!(replayed[0]["replayed"], 1);

    // Errors: one line, non-zero exit.
    for args in [
        &["publish", "nope", "x"][..],
        &["consume", "orders", "nobody", "--count", "1"][..],
    ] {
        let o = syncmq(&addr, args);
        assert!(!o.status.success(), "{args:?}");
        let err = String::from_utf8(o.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("syncmq: error: "), "{err}");
    }
    let o = syncmq("127.0.0.1:1", &["stats"]);
    assert!(!o.status.success());
    let o = Command::new(BIN)
        .args(["serve", "--data"])
        .arg(dir.path().join("other"))
        .arg("--config")
        .arg(dir.path().join("missing.json"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8(o.stderr)
        .unwrap()
        .contains("missing.json"));

    // The bench publishes and consumes against the running server.
    let rows = json_lines(&syncmq(
        &addr,
        &[
            "bench",
            "--topic",
            "orders",
            "--subscriber",
            "billing",
            "--messages",
            "40",
            "--connections",
            "2",
            "--json",
        ],
    ));
    let cases: Vec<&str> = rows.iter().map(|r| r["case"].as_str().unwrap()).collect();
    assert_eq!(cases, ["publish", "consume"]);
    assert!(rows.iter().all(|r| r["msgs_per_s"].as_f64().unwrap() > 0.0));

    // SIGTERM stops the server cleanly.
    let status = Command::new("kill")
        .args(["-TERM", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = served.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_consumer_process_killed_mid_batch_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path());
    let addr = served.addr.clone();
    let all: BTreeSet<String> = (0..200).map(|i| format!("m{i:03}")).collect();
    let mut publisher = Command::new(BIN)
        .args(["--addr", &addr, "publish", "orders", "--batch", "50"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    {
        let mut stdin = publisher.stdin.take().unwrap();
        for m in &all {
            writeln!(stdin, "{m}").unwrap();
        }
    }
    assert!(publisher.wait().unwrap().success());

    let mut doomed = Command::new(BIN)
        .args([
            "--addr", &addr, "consume", "orders", "billing", "--batch", "50",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(doomed.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    doomed.kill().unwrap(); // SIGKILL, mid-batch
    doomed.wait().unwrap();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    seen.insert(first.trim().to_string());
    for line in reader.lines() {
        seen.insert(line.unwrap());
    }

    let client = QueueClient::connect(addr.as_str()).unwrap();
    common::eventually(
        Duration::from_secs(10),
        "the dead consumer's batch back",
        || client.stats(Some("orders")).unwrap()[0].in_flight == 0,
    );
    let next = syncmq(
        &addr,
        &["consume", "orders", "billing", "--idle-ms", "500", "--json"],
    );
    for v in json_lines(&next) {
        seen.insert(v["body"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, all);
}

#[test]
fn peek_shows_the_next_messages_and_the_consumer_then_gets_them_first() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path());
    let addr = served.addr.clone();
    stdout(&syncmq(&addr, &["publish", "orders", "a", "b", "c"]));

    let peeked = json_lines(&syncmq(
        &addr,
        &[
            "peek", "orders", "billing", "--count", "2", "--format", "json",
        ],
    ));
    let bodies: Vec<&str> = peeked.iter().map(|v| v["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["a", "b"]);
    assert!(peeked.iter().all(|v| v["deliveries"] == 0), "{peeked:?}");
    // For people: a table, and nothing was taken.
    let table = stdout(&syncmq(&addr, &["peek", "orders", "billing"]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[0].contains("deliveries"), "{table}");
    assert!(lines[1].ends_with("  a"), "{table}");
    let stats = json_lines(&syncmq(&addr, &["stats", "orders", "--json"]));
    let billing = &stats[0].as_array().unwrap()[0];
    assert_eq!(
        (&billing["depth"], &billing["in_flight"]),
        (&3.into(), &0.into())
    );

    let got = json_lines(&syncmq(
        &addr,
        &["consume", "orders", "billing", "--count", "1", "--json"],
    ));
    assert_eq!(got[0]["body"], "a");
    assert_eq!(got[0]["redelivered"], false, "a peek is no delivery");

    // Out of range is clap's error, before anything is sent.
    let o = syncmq(&addr, &["peek", "orders", "billing", "--count", "0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--count"));
}

#[test]
fn reset_puts_in_flight_messages_back_and_says_so() {
    let help = stdout(&syncmq("127.0.0.1:1", &["reset", "--help"]));
    assert!(help.contains("back at the front"), "{help}");
    assert!(help.contains("delivered again"), "{help}");

    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path());
    let addr = served.addr.clone();
    stdout(&syncmq(&addr, &["publish", "orders", "held"]));
    let client = QueueClient::connect(addr.as_str()).unwrap();
    let mut sub = client.subscribe_with("orders", "billing", 1).unwrap();
    let held = sub.recv().unwrap();
    assert_eq!(held.body(), b"held");

    let out = json_lines(&syncmq(&addr, &["reset", "orders", "billing", "--json"]));
    assert_eq!(out[0]["reset"], 1);
    // Back at the front: the next consumer gets it, as a redelivery.
    let got = json_lines(&syncmq(
        &addr,
        &["consume", "orders", "billing", "--count", "1", "--json"],
    ));
    assert_eq!(got[0]["body"], "held");
    assert_eq!(got[0]["redelivered"], true);
    let text = stdout(&syncmq(&addr, &["reset", "orders", "billing"]));
    assert!(
        text.starts_with("0 in-flight messages of orders/billing"),
        "{text}"
    );
    drop((held, sub));
}

#[test]
fn publish_ttl_takes_milliseconds_or_a_unit() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path());
    let addr = served.addr.clone();
    let client = QueueClient::connect(addr.as_str()).unwrap();

    let before = SystemTime::now();
    stdout(&syncmq(
        &addr,
        &["publish", "orders", "hour", "--ttl", "1h"],
    ));
    let peeked = client.peek("orders", "billing").unwrap().unwrap();
    let expires = peeked.message.expires_at().unwrap();
    let ttl = expires.duration_since(before).unwrap();
    assert!(
        ttl >= Duration::from_secs(3599) && ttl <= Duration::from_secs(3660),
        "{ttl:?}"
    );

    // 1 ms: gone before anyone takes it; the one without a TTL stays.
    stdout(&syncmq(
        &addr,
        &["publish", "orders", "brief", "--ttl", "1"],
    ));
    stdout(&syncmq(&addr, &["publish", "orders", "kept"]));
    common::eventually(Duration::from_secs(10), "the 1 ms TTL passes", || {
        let bodies: Vec<Vec<u8>> = client
            .peek_batch("orders", "billing", 10)
            .unwrap()
            .into_iter()
            .map(|p| p.message.into_body())
            .collect();
        bodies == [b"hour".to_vec(), b"kept".to_vec()]
    });

    let o = syncmq(&addr, &["publish", "orders", "x", "--ttl", "10y"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--ttl") && err.contains("30s"), "{err}");
}

#[test]
fn format_json_and_its_short_form_agree_and_table_is_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path());
    let addr = served.addr.clone();
    stdout(&syncmq(&addr, &["publish", "orders", "a"]));
    let long = json_lines(&syncmq(&addr, &["stats", "--format", "json"]));
    let short = json_lines(&syncmq(&addr, &["--json", "stats"]));
    assert_eq!(long, short);
    assert_eq!(long[0].as_array().unwrap().len(), 2);
    // Every counter of SubscriberStats, under its field names.
    let row = &long[0][0];
    assert_eq!(row["published"], 1, "{row}");
    for field in ["depth", "in_flight", "delivered", "acked", "nacked"] {
        assert!(row.get(field).is_some(), "{field} missing: {row}");
    }
    let table = stdout(&syncmq(&addr, &["stats", "--format", "table"]));
    assert_eq!(table, stdout(&syncmq(&addr, &["stats"])));
    assert!(table.starts_with("topic"), "{table}");
    for bad in [
        &["stats", "--format", "yaml"][..],
        &["stats", "--json", "--format", "table"],
    ] {
        let o = syncmq(&addr, bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
    }
}

#[test]
fn stats_watch_repeats_until_interrupted_and_clears_only_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path());
    let addr = served.addr.clone();
    stdout(&syncmq(&addr, &["publish", "orders", "a"]));

    // Into a pipe: each refresh after the last, no escape codes; SIGINT
    // ends it with status 0.
    let mut watch = Command::new(BIN)
        .args([
            "--addr",
            &addr,
            "stats",
            "--watch",
            "--interval-ms",
            "20",
            "--json",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    for _ in 0..3 {
        let line = lines.next().unwrap().unwrap();
        let rows: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(rows.as_array().unwrap().len(), 2, "{line}");
    }
    let status = Command::new("kill")
        .args(["-INT", &watch.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = watch.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(rest.iter().all(|l| !l.contains('\x1b')), "{rest:?}");

    // Text into a pipe: the table again and again.
    let mut watch = Command::new(BIN)
        .args(["--addr", &addr, "stats", "--watch", "--interval-ms", "20"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let mut headers = 0;
    while headers < 2 {
        let line = lines.next().unwrap().unwrap();
        assert!(!line.contains('\x1b'), "{line:?}");
        headers += usize::from(line.starts_with("topic"));
    }
    Command::new("kill")
        .args(["-TERM", &watch.id().to_string()])
        .status()
        .unwrap();
    assert!(watch.wait().unwrap().success());

    // On a terminal: clear and home before each table. `timeout` sends
    // SIGINT, which the watch ends on cleanly (status 0, preserved).
    let screen = on_a_terminal(&format!(
        "timeout --preserve-status -s INT 1 {BIN} --addr {addr} stats --watch --interval-ms 20"
    ));
    assert!(screen.contains("\x1b[2J\x1b[H"), "{screen:?}");
    assert!(screen.contains("Ctrl-C to stop"), "{screen:?}");
    assert!(screen.contains("billing"), "{screen:?}");
}

#[test]
fn progress_bars_show_on_a_terminal_only_and_never_with_json() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path());
    let addr = served.addr.clone();
    let publish = format!("seq 1 300 | {BIN} --addr {addr} publish orders --batch 10");

    // Into pipes: no bar, no escape codes, only the summary.
    let o = Command::new("sh").args(["-c", &publish]).output().unwrap();
    assert!(o.status.success(), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !err.contains("published,") && !err.contains('\x1b'),
        "{err:?}"
    );

    // On a terminal: the bar counts what went out, then makes way for
    // the summary.
    let screen = on_a_terminal(&publish);
    assert!(screen.contains(" published, "), "{screen:?}");
    assert!(screen.contains("published 300 messages"), "{screen:?}");
    let screen = on_a_terminal(&format!(
        "{BIN} --addr {addr} consume orders billing --count 600 > /dev/null"
    ));
    assert!(screen.contains("600 consumed"), "{screen:?}");
    // JSON is for programs: no bar even on a terminal.
    let screen = on_a_terminal(&format!(
        "{BIN} --addr {addr} consume orders shipping --count 600 --json > /dev/null; \
         seq 1 10 | {BIN} --addr {addr} publish orders --json"
    ));
    assert!(
        !screen.contains("consumed,") && !screen.contains("published,"),
        "{screen:?}"
    );
    assert!(screen.contains("\"published\":10"), "{screen:?}");
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout(&syncmq("127.0.0.1:1", &["completions", shell]));
        assert!(script.contains("syncmq"), "{shell}");
        for command in ["peek", "reset", "completions"] {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
    }
    let o = syncmq("127.0.0.1:1", &["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn errors_name_the_address_the_directory_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path());

    assert_eq!(
        error_line(&syncmq("127.0.0.1:1", &["stats"])),
        "cannot reach the queue server at 127.0.0.1:1: connection refused"
    );
    // Another server on the same port.
    let other = tempfile::tempdir().unwrap();
    let config = other.path().join("t.json");
    std::fs::write(&config, r#"{"topics":[]}"#).unwrap();
    let o = Command::new(BIN)
        .args(["serve", "--listen", &served.addr, "--data"])
        .arg(other.path().join("data"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(
        error_line(&o),
        format!("address {} is already in use", served.addr)
    );
    // Another server on the same data directory: named, with the pid of
    // the one that has it.
    let data = dir.path().join("data");
    let o = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(
        error_line(&o),
        format!(
            "data directory {} is in use by another process (pid {})",
            data.display(),
            served.child.id()
        )
    );
    // A config file of no known format names its extension and the
    // accepted ones.
    let ini = other.path().join("topics.ini");
    std::fs::write(&ini, "[topics]").unwrap();
    let o = Command::new(BIN)
        .args(["serve", "--data"])
        .arg(other.path().join("data"))
        .arg("--config")
        .arg(&ini)
        .output()
        .unwrap();
    let err = error_line(&o);
    assert!(
        err.contains("topics.ini") && err.contains("not .ini"),
        "{err}"
    );
    assert!(err.contains(".json, .toml, .yaml or .yml"), "{err}");
}

#[test]
fn serve_reads_a_yaml_config() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve_with(
        dir.path(),
        "topics.yml",
        "topics:\n  - name: events\n    subscribers: [audit]\n    priorities: 2\n",
    );
    let stats = json_lines(&syncmq(&served.addr, &["stats", "--json"]));
    let rows = stats[0].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (&rows[0]["topic"], &rows[0]["subscriber"]),
        (&"events".into(), &"audit".into())
    );
}
