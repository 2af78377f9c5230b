//! Config files through the library: `QueueConfig::from_path` and
//! `QueueServerConfig::from_path` read JSON, TOML and YAML alike, and every
//! mistake is an error naming the file and what is wrong with it.

#![cfg(all(feature = "config", feature = "durable"))]
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use syncmq::queue::{Durability, QueueConfig, TopicConfig};
use syncmq::server::QueueServerConfig;
use syncmq::Error;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const QUEUE_JSON: &str = r#"{"durability": "buffered", "close_timeout_ms": 2500,
  "topics": [{"name": "orders", "subscribers": ["billing", "shipping"], "priorities": 2,
              "ack_timeout_ms": 5000, "max_deliveries": 3}]}"#;

const QUEUE_TOML: &str = r#"durability = "buffered"
close_timeout_ms = 2500

[[topics]]
name = "orders"
subscribers = ["billing", "shipping"]
priorities = 2
ack_timeout_ms = 5000
max_deliveries = 3
"#;

const QUEUE_YAML: &str = "durability: buffered
close_timeout_ms: 2500
topics:
  - name: orders
    subscribers: [billing, shipping]
    priorities: 2
    ack_timeout_ms: 5000
    max_deliveries: 3
";

#[test]
fn a_queue_config_reads_the_same_from_json_toml_and_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let want = QueueConfig::new()
        .with_durability(Durability::Buffered)
        .with_close_timeout(Duration::from_millis(2500))
        .with_topic(
            TopicConfig::new("orders", ["billing", "shipping"])
                .with_priorities(2)
                .with_ack_timeout(Duration::from_secs(5))
                .with_max_deliveries(3),
        );
    for (name, text) in [
        ("q.json", QUEUE_JSON),
        ("q.toml", QUEUE_TOML),
        ("q.yaml", QUEUE_YAML),
        ("q.yml", QUEUE_YAML),
    ] {
        let path = write(dir.path(), name, text);
        assert_eq!(QueueConfig::from_path(&path).unwrap(), want, "{name}");
    }
}

#[test]
fn a_server_config_reads_the_same_from_json_toml_and_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let want = QueueServerConfig::new()
        .with_addr("127.0.0.1:7450")
        .with_max_connections(16)
        .with_max_subscriptions(8)
        .without_idle_timeout()
        .with_write_timeout(Duration::from_secs(5));
    for (name, text) in [
        (
            "s.json",
            r#"{"addr": "127.0.0.1:7450", "max_connections": 16, "max_subscriptions": 8,
                "idle_timeout_ms": 0, "write_timeout_ms": 5000}"#,
        ),
        (
            "s.toml",
            "addr = \"127.0.0.1:7450\"\nmax_connections = 16\nmax_subscriptions = 8\n\
             idle_timeout_ms = 0\nwrite_timeout_ms = 5000\n",
        ),
        (
            "s.yaml",
            "addr: 127.0.0.1:7450\nmax_connections: 16\nmax_subscriptions: 8\n\
             idle_timeout_ms: 0\nwrite_timeout_ms: 5000\n",
        ),
    ] {
        let path = write(dir.path(), name, text);
        assert_eq!(QueueServerConfig::from_path(&path).unwrap(), want, "{name}");
    }
    // A Unix socket and its mode (decimal: JSON has no octal).
    let unix = write(
        dir.path(),
        "unix.json",
        r#"{"unix_socket": "/run/syncmq.sock", "unix_socket_mode": 432}"#,
    );
    assert_eq!(
        QueueServerConfig::from_path(&unix).unwrap(),
        QueueServerConfig::new()
            .with_unix_socket("/run/syncmq.sock")
            .with_unix_socket_mode(0o660)
    );
    // Every field may be left out: an empty file is the defaults.
    let empty = write(dir.path(), "empty.json", "{}");
    assert_eq!(
        QueueServerConfig::from_path(&empty).unwrap(),
        QueueServerConfig::new()
    );
}

/// The error `from_path` gives for `name` holding `text`, as text.
fn queue_error(dir: &Path, name: &str, text: &str) -> String {
    let path = write(dir, name, text);
    let err = QueueConfig::from_path(&path).unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument { .. }),
        "{name}: {err:?}"
    );
    let text = err.to_string();
    assert!(!text.contains('\n'), "one line: {text}");
    text
}

#[test]
fn bad_files_are_errors_naming_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    // An unknown extension names itself and the accepted ones.
    let err = queue_error(dir.path(), "topics.ini", "[topics]");
    assert!(err.contains("topics.ini"), "{err}");
    assert!(err.contains("not .ini"), "{err}");
    assert!(err.contains(".json, .toml, .yaml or .yml"), "{err}");

    // An unknown field is named, in every format.
    for (name, text) in [
        (
            "typo.json",
            r#"{"topics":[{"name":"a","subscriberz":["x"]}]}"#,
        ),
        (
            "typo.toml",
            "[[topics]]\nname = \"a\"\nsubscriberz = [\"x\"]\n",
        ),
        ("typo.yaml", "topics:\n  - name: a\n    subscriberz: [x]\n"),
    ] {
        let err = queue_error(dir.path(), name, text);
        assert!(err.contains(name), "{err}");
        assert!(err.contains("subscriberz"), "{err}");
    }
    let path = write(dir.path(), "srv.yaml", "adr: 127.0.0.1:1\n");
    let err = QueueServerConfig::from_path(&path).unwrap_err().to_string();
    assert!(err.contains("adr"), "{err}");
    // Secrets are never read from a file (set them in code or by flags).
    let path = write(dir.path(), "secret.json", r#"{"token": "hunter2"}"#);
    let err = QueueServerConfig::from_path(&path).unwrap_err().to_string();
    assert!(err.contains("unknown field `token`"), "{err}");

    // A file that parses but does not validate names the field.
    let err = queue_error(
        dir.path(),
        "invalid.toml",
        "[[topics]]\nname = \"a\"\nsubscribers = []\n",
    );
    assert!(err.contains("topics[0].subscribers"), "{err}");
    let path = write(dir.path(), "zero.json", r#"{"max_connections": 0}"#);
    match QueueServerConfig::from_path(&path) {
        Err(Error::InvalidArgument { name, .. }) => assert_eq!(name, "max_connections"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }

    // A broken file says which format it was read as.
    let err = queue_error(dir.path(), "broken.yaml", "topics: [\n");
    assert!(err.contains("not a valid YAML config"), "{err}");

    // A missing file is an I/O error naming it.
    match QueueConfig::from_path(dir.path().join("missing.json")) {
        Err(e @ Error::Io { .. }) => assert!(e.to_string().contains("missing.json"), "{e}"),
        other => panic!("expected Io, got {other:?}"),
    }
}
