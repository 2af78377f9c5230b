//! A `syncmq serve` child process for the tests that drive the binary
//! (`tests/cli.rs`, the CLI part of `tests/server_security.rs`): started
//! with a config file of the test's, its address read from its first line,
//! killed and reaped on drop.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_syncmq");

/// A running `syncmq serve`.
pub struct Served {
    pub child: Child,
    /// What its first line says it listens on.
    pub addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves `dir/data` with the config file `dir/name` holding `config`, and
/// `flags` after (`--listen`, `--unix`, `--token-file` ...). A
/// `SYNCMQ_TOKEN` of the test's environment is not passed on.
pub fn serve(dir: &Path, name: &str, config: &str, flags: &[&OsStr]) -> Served {
    let path = dir.join(name);
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--data")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&path)
        .args(flags)
        .env_remove("SYNCMQ_TOKEN")
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
