//! A PostgreSQL server of the test's own, with TLS on, for the tests of the
//! outbox store over TLS: the system's server on 5432 is never given a
//! certificate, reconfigured or restarted.
//!
//! `TlsPostgres::start` makes a CA, a server certificate it signs (for
//! `localhost` and `127.0.0.1`) and an unrelated CA with `openssl`, runs
//! `initdb` into a temporary directory (as the `postgres` user when the
//! tests run as root: the server refuses to run as root) and starts the
//! server on a free port with `ssl=on` (`shared` lets the tests of one
//! binary use one server). Dropping it stops the server with
//! `pg_ctl stop` (only that server: its own data directory) and removes
//! the directory. Without `initdb`/`openssl` it returns `None` with a
//! notice, or fails the test when tests are required (see `required`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// A running PostgreSQL with TLS, stopped on drop.
pub struct TlsPostgres {
    /// The port it listens on, at 127.0.0.1 (`localhost`).
    pub port: u16,
    /// The CA that signed the server's certificate (PEM file).
    pub ca: PathBuf,
    /// A CA that signed nothing the server uses (PEM file).
    pub other_ca: PathBuf,
    bin: PathBuf,
    data: PathBuf,
    as_postgres: bool,
    _dir: tempfile::TempDir,
}

impl TlsPostgres {
    /// The one the tests of this process running now share, started when
    /// none is running; it stops when the last of them drops it. `None` as
    /// for [`start`](Self::start).
    pub fn shared() -> Option<Arc<Self>> {
        static SHARED: Mutex<Weak<TlsPostgres>> = Mutex::new(Weak::new());
        let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(server) = shared.upgrade() {
            return Some(server);
        }
        let server = Arc::new(Self::start()?);
        *shared = Arc::downgrade(&server);
        Some(server)
    }

    /// Starts one, or `None` (with a notice) when this machine cannot.
    pub fn start() -> Option<Self> {
        match Self::try_start() {
            Ok(server) => Some(server),
            Err(why) => {
                assert!(
                    !super::required(),
                    "cannot start a PostgreSQL with TLS, and database tests are required here: {why}"
                );
                eprintln!("NOTICE: skipping a PostgreSQL TLS test: {why}");
                None
            }
        }
    }

    fn try_start() -> Result<Self, String> {
        let bin = pg_bin().ok_or("no initdb under /usr/lib/postgresql/*/bin (SYNCMQ_PG_BIN)")?;
        if Command::new("openssl").arg("version").output().is_err() {
            return Err("no openssl".into());
        }
        // SAFETY: geteuid has no preconditions.
        let as_postgres = unsafe { libc::geteuid() } == 0;
        let dir = tempfile::Builder::new()
            .prefix("syncmq-pg-tls")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        let root = dir.path().to_path_buf();
        certificates(&root)?;
        let data = root.join("data");
        let server = TlsPostgres {
            port: free_port()?,
            ca: root.join("ca.pem"),
            other_ca: root.join("other-ca.pem"),
            bin,
            data,
            as_postgres,
            _dir: dir,
        };
        if as_postgres {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&root))?;
        }
        run(server
            .pg("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&server.data))?;
        let options = format!(
            "-c port={} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{}' \
             -c ssl=on -c ssl_cert_file='{}' -c ssl_key_file='{}' -c fsync=off",
            server.port,
            root.display(),
            root.join("server.pem").display(),
            root.join("server.key").display(),
        );
        run(server
            .pg("pg_ctl")
            .args(["-w", "-t", "60", "-D"])
            .arg(&server.data)
            .arg("-l")
            .arg(root.join("server.log"))
            .args(["-o", &options, "start"]))
        .map_err(|e| {
            let log = std::fs::read_to_string(root.join("server.log")).unwrap_or_default();
            format!("{e}; server log: {log}")
        })?;
        Ok(server)
    }

    /// A `key=value` connection string to it as `postgres`, with `extra`.
    pub fn params(&self, extra: &str) -> String {
        format!(
            "host=localhost port={} user=postgres dbname=postgres connect_timeout=10 {extra}",
            self.port
        )
    }

    /// A `postgres://` URL to it, with the query `query`.
    pub fn url(&self, query: &str) -> String {
        format!(
            "postgres://postgres@localhost:{}/postgres?connect_timeout=10&{query}",
            self.port
        )
    }

    /// One of the server's programs, as the user that owns the data.
    fn pg(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let stopped = self
            .pg("pg_ctl")
            .args(["-w", "-t", "60", "-m", "fast", "-D"])
            .arg(&self.data)
            .arg("stop")
            .output();
        if !stopped.is_ok_and(|out| out.status.success()) {
            eprintln!(
                "WARNING: pg_ctl stop failed for the test server in {}",
                self.data.display()
            );
        }
    }
}

/// The directory of `initdb` and `pg_ctl`: `SYNCMQ_PG_BIN`, or the newest
/// /usr/lib/postgresql/*/bin that has them.
fn pg_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SYNCMQ_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
        .collect();
    dirs.sort_by_key(|bin| {
        bin.parent()
            .and_then(Path::file_name)
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
    });
    dirs.pop()
}

/// A port nothing listens on now.
fn free_port() -> Result<u16, String> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("free port: {e}"))
}

/// ca.pem, other-ca.pem, and server.pem/.key signed by ca (for localhost
/// and 127.0.0.1, a day long) in `dir`.
fn certificates(dir: &Path) -> Result<(), String> {
    for ca in ["ca", "other-ca"] {
        run(Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", &format!("/CN=syncmq test {ca}")])
            .arg("-keyout")
            .arg(dir.join(format!("{ca}.key")))
            .arg("-out")
            .arg(dir.join(format!("{ca}.pem"))))?;
    }
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints = CA:FALSE\n\
         keyUsage = digitalSignature, keyEncipherment\n\
         extendedKeyUsage = serverAuth\n\
         subjectAltName = DNS:localhost, IP:127.0.0.1\n",
    )
    .map_err(|e| format!("server.ext: {e}"))?;
    run(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(dir.join("server.key"))
        .arg("-out")
        .arg(dir.join("server.csr")))?;
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "1", "-CAcreateserial"])
        .arg("-in")
        .arg(dir.join("server.csr"))
        .arg("-CA")
        .arg(dir.join("ca.pem"))
        .arg("-CAkey")
        .arg(dir.join("ca.key"))
        .arg("-extfile")
        .arg(dir.join("server.ext"))
        .arg("-out")
        .arg(dir.join("server.pem")))?;
    // The server refuses a key others can read.
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .map_err(|e| format!("server.key: {e}"))
}

/// Runs `command`; its stderr in the error when it fails.
fn run(command: &mut Command) -> Result<(), String> {
    let out = command
        .output()
        .map_err(|e| format!("{}: {e}", command.get_program().display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed ({}): {}",
            command.get_program().display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
