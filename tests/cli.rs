//! The `syncmq` binary, run as a user would: serve, publish, consume,
//! stats, dlq, errors, a consumer process killed mid-batch, and SIGTERM.

#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use syncmq::server::QueueClient;

const BIN: &str = env!("CARGO_BIN_EXE_syncmq");

struct Served {
    child: Child,
    addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &std::path::Path) -> Served {
    let config = dir.join("topics.json");
    std::fs::write(
        &config,
        r#"{"topics":[{"name":"orders","subscribers":["billing","shipping"],"max_deliveries":2}]}"#,
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .strip_prefix("listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Served { child, addr }
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
