//! Whom the queue server lets in: the token in the hello, the Unix domain
//! socket and its file mode, and TLS on the TCP listener, each over real
//! sockets (TLS with a certificate `openssl` makes for the test).

#![cfg(feature = "durable")]
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use syncmq::queue::{Queue, QueueConfig, TopicConfig};
use syncmq::server::protocol::{
    Request, Response, WireMessage, MAGIC, PROTOCOL_VERSION, UNAUTHORIZED,
};
use syncmq::server::{QueueClient, QueueClientConfig, QueueServer, QueueServerConfig, ServerAddr};
use syncmq::{Error, Message};

const TOKEN: &str = "s3cret-token-for-the-test";

fn memory_queue() -> Arc<Queue> {
    Arc::new(
        Queue::memory(QueueConfig::new().with_topic(TopicConfig::new("orders", ["billing"])))
            .unwrap(),
    )
}

fn depth(queue: &Queue) -> u64 {
    queue.stats("orders").unwrap()[0].depth
}

/// Publishes one message through `client` and reads it back.
fn round_trip(client: &QueueClient, body: &[u8]) {
    client
        .publish("orders", &[Message::new(body.to_vec())])
        .unwrap();
    let mut billing = client.subscribe("orders", "billing").unwrap();
    let delivery = billing.recv().unwrap();
    assert_eq!(delivery.body(), body);
    delivery.ack().unwrap();
    drop(billing);
    assert_eq!(client.stats(Some("orders")).unwrap()[0].depth, 0);
}

/// The log lines of this test binary, for what the server logs (and what
/// it must not).
fn logged() -> &'static Mutex<Vec<String>> {
    struct Capture;
    impl log::Log for Capture {
        fn enabled(&self, m: &log::Metadata) -> bool {
            m.level() <= log::Level::Warn
        }
        fn log(&self, r: &log::Record) {
            if self.enabled(r.metadata()) {
                let line = format!("{} {}", r.level(), r.args());
                LINES.get_or_init(Mutex::default).lock().unwrap().push(line);
            }
        }
        fn flush(&self) {}
    }
    static LINES: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        log::set_boxed_logger(Box::new(Capture)).unwrap();
        log::set_max_level(log::LevelFilter::Warn);
    });
    LINES.get_or_init(Mutex::default)
}

fn refusal(result: syncmq::Result<QueueClient>) -> (u16, String) {
    match result {
        Err(Error::Refused { code, text }) => (code, text),
        Err(other) => panic!("expected a refusal, got {other:?}"),
        Ok(_) => panic!("expected a refusal, got a connection"),
    }
}

#[test]
fn a_client_without_the_token_is_refused_and_the_warning_names_the_peer_not_the_token() {
    let lines = logged();
    let queue = memory_queue();
    let server =
        QueueServer::start(queue.clone(), QueueServerConfig::new().with_token(TOKEN)).unwrap();

    let (code, text) = refusal(QueueClient::connect(server.local_addr()));
    assert_eq!(code, UNAUTHORIZED);
    assert!(text.contains("requires a token"), "{text}");

    let (code, text) = refusal(QueueClient::connect_with(
        server.local_addr(),
        QueueClientConfig::new().with_token("not-the-token"),
    ));
    assert_eq!(code, UNAUTHORIZED);
    assert!(text.contains("token is wrong"), "{text}");
    assert!(!text.contains("not-the-token"), "{text}");

    let warnings: Vec<String> = lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("server: refusing"))
        .cloned()
        .collect();
    assert!(
        warnings
            .iter()
            .any(|l| l.starts_with("WARN") && l.contains("127.0.0.1:") && l.contains("has none")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|l| l.contains("token is wrong")),
        "{warnings:?}"
    );
    for l in lines.lock().unwrap().iter() {
        assert!(
            !l.contains(TOKEN) && !l.contains("not-the-token"),
            "a token in the log: {l}"
        );
    }
    // The refused clients hold no connection slot.
    common::eventually(Duration::from_secs(10), "refused connections end", || {
        server.connections() == 0
    });
    server.close().unwrap();
}

#[test]
fn a_wrong_token_is_refused_with_one_frame_and_nothing_sent_after_it_is_published() {
    let queue = memory_queue();
    let server =
        QueueServer::start(queue.clone(), QueueServerConfig::new().with_token(TOKEN)).unwrap();
    // The hello and a publish in one write: the server must not apply the
    // publish of a client it refused.
    let mut stream = TcpStream::connect(server.local_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut bytes = frame(&Request::Hello {
        magic: MAGIC.into(),
        version: PROTOCOL_VERSION,
        token: Some("guess".into()),
    });
    bytes.extend(frame(&Request::Publish {
        id: 1,
        topic: "orders".into(),
        messages: vec![WireMessage::from(&Message::new(b"sneaked in".to_vec()))],
    }));
    stream.write_all(&bytes).unwrap();
    let got = until_closed(&mut stream);
    assert_eq!(got.len(), 1, "one error frame, then the close: {got:?}");
    match &got[0] {
        Response::Error {
            id: 0,
            kind,
            message,
            ..
        } => {
            assert_eq!(kind, "unauthorized");
            assert!(!message.contains("guess"), "{message}");
        }
        other => panic!("expected an unauthorized error, got {other:?}"),
    }
    assert_eq!(depth(&queue), 0, "the refused client's publish was applied");
    server.close().unwrap();
}

#[test]
fn the_right_token_works_and_a_server_without_one_ignores_it() {
    let queue = memory_queue();
    let server =
        QueueServer::start(queue.clone(), QueueServerConfig::new().with_token(TOKEN)).unwrap();
    let client = QueueClient::connect_with(
        server.local_addr(),
        QueueClientConfig::new().with_token(TOKEN),
    )
    .unwrap();
    round_trip(&client, b"with the token");
    client.close().unwrap();
    server.close().unwrap();

    let open = QueueServer::start(queue, QueueServerConfig::new()).unwrap();
    let client = QueueClient::connect_with(
        open.local_addr(),
        QueueClientConfig::new().with_token(TOKEN),
    )
    .unwrap();
    round_trip(&client, b"token not needed");
    client.close().unwrap();
    open.close().unwrap();
}

#[test]
fn an_empty_token_is_refused_by_both_configs() {
    let err = QueueServerConfig::new()
        .with_token("")
        .validate()
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument { ref name, .. } if name == "token"),
        "{err:?}"
    );
    let err = QueueClientConfig::new()
        .with_token("")
        .validate()
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument { ref name, .. } if name == "token"),
        "{err:?}"
    );
    // Debug shows neither.
    let shown = format!(
        "{:?} {:?}",
        QueueServerConfig::new().with_token(TOKEN),
        QueueClientConfig::new().with_token(TOKEN)
    );
    assert!(!shown.contains(TOKEN), "{shown}");
}

#[test]
fn a_unix_socket_round_trip_with_mode_0600_and_the_file_goes_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("syncmq.sock");
    let queue = memory_queue();
    let server = QueueServer::start(
        queue,
        QueueServerConfig::new()
            .with_unix_socket(&path)
            .with_token(TOKEN),
    )
    .unwrap();
    assert_eq!(server.addr(), &ServerAddr::Unix(path.clone()));
    assert_eq!(
        server.addr().to_string(),
        format!("unix:{}", path.display())
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    // Nothing but the socket is left in the directory (no temporary name).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let client =
        QueueClient::connect_unix(&path, QueueClientConfig::new().with_token(TOKEN)).unwrap();
    round_trip(&client, b"over a unix socket");
    client.close().unwrap();
    // The token holds on a Unix socket too.
    let (code, _) = refusal(QueueClient::connect_unix(&path, QueueClientConfig::new()));
    assert_eq!(code, UNAUTHORIZED);
    let parsed = ServerAddr::parse(&server.addr().to_string()).unwrap();
    let again =
        QueueClient::connect_to(&parsed, QueueClientConfig::new().with_token(TOKEN)).unwrap();
    again.close().unwrap();

    server.close().unwrap();
    assert!(!path.exists(), "the socket file outlived the server");
}

#[test]
fn the_unix_socket_mode_is_configurable_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("group.sock");
    let server = QueueServer::start(
        memory_queue(),
        QueueServerConfig::new()
            .with_unix_socket(&path)
            .with_unix_socket_mode(0o660),
    )
    .unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660, "mode {mode:o}");
    server.close().unwrap();
    for bad in [0o400, 0o1777, 0o060] {
        let err = QueueServerConfig::new()
            .with_unix_socket(&path)
            .with_unix_socket_mode(bad)
            .validate()
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument { ref name, .. } if name == "unix_socket_mode"),
            "{bad:o}: {err:?}"
        );
    }
}

#[test]
fn a_stale_socket_is_replaced_a_live_one_or_a_file_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stale.sock");
    // A socket file whose server is gone: bound, then dropped.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let config = QueueServerConfig::new().with_unix_socket(&path);
    let server = QueueServer::start(memory_queue(), config.clone()).unwrap();
    QueueClient::connect_unix(&path, QueueClientConfig::new())
        .unwrap()
        .close()
        .unwrap();

    // A live server keeps its socket.
    let err = QueueServer::start(memory_queue(), config.clone()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::AddrInUse { .. }), "{err:?}");
    assert_eq!(
        text,
        format!("address unix:{} is already in use", path.display())
    );
    // ... and goes on serving.
    QueueClient::connect_unix(&path, QueueClientConfig::new())
        .unwrap()
        .close()
        .unwrap();
    server.close().unwrap();

    // A path that is not a socket is never replaced.
    let file = dir.path().join("data.txt");
    std::fs::write(&file, b"keep me").unwrap();
    let err = QueueServer::start(
        memory_queue(),
        QueueServerConfig::new().with_unix_socket(&file),
    )
    .unwrap_err();
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
}

#[test]
fn the_default_listener_is_tcp_on_loopback() {
    let config = QueueServerConfig::new();
    assert_eq!(config.addr(), "127.0.0.1:0");
    assert!(config.unix_socket().is_none());
    let server = QueueServer::start(memory_queue(), config).unwrap();
    match server.addr() {
        ServerAddr::Tcp(addr) => assert!(addr.ip().is_loopback(), "{addr}"),
        other @ ServerAddr::Unix(_) => panic!("{other:?}"),
    }
    server.close().unwrap();
}

fn frame(request: &Request) -> Vec<u8> {
    let body = rmp_serde::to_vec_named(request).unwrap();
    let mut out = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// Every frame until the server closes the connection.
fn until_closed(stream: &mut TcpStream) -> Vec<Response> {
    let mut got = Vec::new();
    loop {
        let mut len = [0u8; 4];
        if stream.read_exact(&mut len).is_err() {
            return got;
        }
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        stream.read_exact(&mut body).unwrap();
        got.push(rmp_serde::from_slice(&body).unwrap());
    }
}

#[cfg(feature = "tls")]
mod tls {
    use super::*;
    use syncmq::TlsConfig;

    /// A self-signed certificate for `localhost` and 127.0.0.1 and its
    /// PKCS#8 key, made by `openssl` in `dir`.
    fn certificate(dir: &Path, name: &str) -> (Vec<u8>, Vec<u8>) {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        let out = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-nodes", "-days", "1", "-subj", &format!("/CN={name}")])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (std::fs::read(cert).unwrap(), std::fs::read(key).unwrap())
    }

    fn tls_server(dir: &Path, queue: Arc<Queue>) -> (QueueServer, Vec<u8>) {
        let (cert, key) = certificate(dir, "server");
        let server = QueueServer::start(
            queue,
            QueueServerConfig::new()
                .with_tls_identity_pem(cert.clone(), key)
                .with_token(TOKEN),
        )
        .unwrap();
        (server, cert)
    }

    fn trusting(ca: &[u8]) -> QueueClientConfig {
        QueueClientConfig::new().with_token(TOKEN).with_tls(
            TlsConfig::new()
                .with_ca_pem(ca.to_vec())
                .with_server_name("localhost"),
        )
    }

    #[test]
    fn a_tls_client_round_trip_and_a_clean_close() {
        let lines = logged();
        let dir = tempfile::tempdir().unwrap();
        let queue = memory_queue();
        let (server, ca) = tls_server(dir.path(), queue.clone());
        let client = QueueClient::connect_with(server.local_addr(), trusting(&ca)).unwrap();
        round_trip(&client, b"over TLS");
        // A batch larger than one TLS record crosses whole.
        let big = vec![7u8; 300 << 10];
        client
            .publish("orders", &[Message::new(big.clone())])
            .unwrap();
        let mut billing = client.subscribe("orders", "billing").unwrap();
        let delivery = billing.recv().unwrap();
        assert_eq!(delivery.body(), &big[..]);
        delivery.ack().unwrap();
        drop(billing);
        client.close().unwrap();
        assert_eq!(depth(&queue), 0);
        // The server's certificate is valid for the IP address too, the
        // name the client checks without with_server_name.
        let by_ip = QueueClient::connect_with(
            server.local_addr(),
            QueueClientConfig::new()
                .with_token(TOKEN)
                .with_tls(TlsConfig::new().with_ca_pem(ca.clone())),
        )
        .unwrap();
        by_ip.close().unwrap();
        server.close().unwrap();
        // A normal run and close logs no error (nor does any test here).
        let errors: Vec<String> = lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("ERROR"))
            .cloned()
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
    }

    /// The bridge's reason to exist: one TLS connection read and written
    /// at once (publishes going out while deliveries and acks cross them),
    /// and a server that closes under a connected TLS client.
    #[test]
    fn one_tls_connection_publishes_and_consumes_at_once_and_the_server_closes_under_it() {
        let dir = tempfile::tempdir().unwrap();
        let queue = memory_queue();
        let (server, ca) = tls_server(dir.path(), queue.clone());
        let client =
            Arc::new(QueueClient::connect_with(server.local_addr(), trusting(&ca)).unwrap());
        let mut billing = client.subscribe_with("orders", "billing", 50).unwrap();
        let publishing = client.clone();
        let publisher = std::thread::spawn(move || {
            for batch in 0..40 {
                let messages: Vec<Message> = (0..50)
                    .map(|i| Message::new(format!("{batch}-{i}-{}", "x".repeat(2000)).into_bytes()))
                    .collect();
                publishing.publish("orders", &messages).unwrap();
            }
        });
        for n in 0..2000 {
            let delivery = billing.recv().unwrap();
            let (batch, i) = (n / 50, n % 50);
            assert!(delivery
                .body()
                .starts_with(format!("{batch}-{i}-").as_bytes()));
            delivery.ack().unwrap();
        }
        publisher.join().unwrap();
        drop(billing);
        assert_eq!(client.stats(Some("orders")).unwrap()[0].depth, 0);

        // The server closes (and joins its bridge threads) with the client
        // still connected; the client then sees the connection gone.
        server.close().unwrap();
        common::eventually(Duration::from_secs(10), "the client sees the close", || {
            matches!(client.stats(None), Err(Error::Disconnected { .. }))
        });
        assert_eq!(depth(&queue), 0);
    }

    #[test]
    fn a_client_that_does_not_trust_the_ca_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let queue = memory_queue();
        let (server, ca) = tls_server(dir.path(), queue.clone());
        let (other_ca, _) = certificate(dir.path(), "other");
        let (code, text) = refusal(QueueClient::connect_with(
            server.local_addr(),
            trusting(&other_ca),
        ));
        assert_eq!(code, 0);
        assert!(text.contains("unknown CA"), "{text}");
        // The system's CAs do not know the test's either.
        let system =
            QueueClientConfig::new().with_tls(TlsConfig::new().with_server_name("localhost"));
        let (_, text) = refusal(QueueClient::connect_with(server.local_addr(), system));
        assert!(text.contains("TLS handshake"), "{text}");
        // A client in the clear gets nowhere either, and does not hang
        // (the server waits for the rest of what it takes for a TLS
        // record; the client gives up at its connect timeout).
        let plain = QueueClient::connect_with(
            server.local_addr(),
            QueueClientConfig::new().with_connect_timeout(Duration::from_secs(1)),
        );
        assert!(plain.is_err(), "a plain client was let in");
        // The server goes on serving the clients that trust it.
        let client = QueueClient::connect_with(server.local_addr(), trusting(&ca)).unwrap();
        round_trip(&client, b"still serving");
        client.close().unwrap();
        server.close().unwrap();
    }

    #[test]
    fn a_tls_client_over_the_connection_limit_is_closed_as_a_transient_error() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = certificate(dir.path(), "server");
        let server = QueueServer::start(
            memory_queue(),
            QueueServerConfig::new()
                .with_tls_identity_pem(cert.clone(), key)
                .with_max_connections(1),
        )
        .unwrap();
        let config = QueueClientConfig::new().with_tls(
            TlsConfig::new()
                .with_ca_pem(cert)
                .with_server_name("localhost"),
        );
        let first = QueueClient::connect_with(server.local_addr(), config.clone()).unwrap();
        let err = QueueClient::connect_with(server.local_addr(), config.clone()).unwrap_err();
        assert!(
            matches!(err, Error::Disconnected { .. }) && err.is_transient(),
            "{err:?}"
        );
        first.close().unwrap();
        common::eventually(Duration::from_secs(10), "the slot frees", || {
            server.connections() == 0
        });
        QueueClient::connect_with(server.local_addr(), config)
            .unwrap()
            .close()
            .unwrap();
        server.close().unwrap();
    }

    #[test]
    fn tls_settings_are_checked_before_anything_listens() {
        let err = QueueServerConfig::new()
            .with_tls_identity_pem("not a certificate", "not a key")
            .validate()
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument { ref name, .. } if name == "tls_identity_pem"),
            "{err:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = certificate(dir.path(), "server");
        let err = QueueServerConfig::new()
            .with_tls_identity_pem(cert, key.clone())
            .with_unix_socket(dir.path().join("s.sock"))
            .validate()
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument { ref name, .. } if name == "tls"),
            "{err:?}"
        );
        let shown = format!(
            "{:?}",
            QueueServerConfig::new().with_tls_identity_pem("c", key.clone())
        );
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        let err = QueueClient::connect_unix(
            dir.path().join("s.sock"),
            QueueClientConfig::new().with_tls(TlsConfig::new()),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidArgument { .. } | Error::Unreachable { .. }
            ),
            "{err:?}"
        );
    }
}

/// The `syncmq` binary's flags for all three: `--token`/`--token-file`/
/// `SYNCMQ_TOKEN`, `--unix` and `--addr unix:`, `--tls-cert`/`--tls-key`
/// and `--tls-ca`.
#[cfg(feature = "cli")]
mod cli {
    use std::process::{Command, Output};

    use super::*;

    use common::served::{self, Served, BIN};

    /// `syncmq serve` with the orders topic and `flags`.
    fn serve(dir: &Path, flags: &[&std::ffi::OsStr]) -> Served {
        let config = r#"{"topics":[{"name":"orders","subscribers":["billing"]}]}"#;
        served::serve(dir, "topics.json", config, flags)
    }

    fn syncmq(args: &[&str], token_env: Option<&str>) -> Output {
        let mut command = Command::new(BIN);
        command.args(args).env_remove("SYNCMQ_TOKEN");
        if let Some(token) = token_env {
            command.env("SYNCMQ_TOKEN", token);
        }
        command.output().unwrap()
    }

    fn succeeded(o: &Output) -> String {
        assert!(
            o.status.success(),
            "failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout.clone()).unwrap()
    }

    #[test]
    fn serve_on_a_unix_socket_with_a_token_file_and_clients_with_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("cli.sock");
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        let served = serve(
            dir.path(),
            &[
                "--unix".as_ref(),
                socket.as_os_str(),
                "--token-file".as_ref(),
                token_file.as_os_str(),
            ],
        );
        assert_eq!(served.addr, format!("unix:{}", socket.display()));
        let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
        let addr = served.addr.as_str();

        succeeded(&syncmq(
            &["--addr", addr, "--token", TOKEN, "publish", "orders", "one"],
            None,
        ));
        // The token from the environment.
        succeeded(&syncmq(
            &["--addr", addr, "publish", "orders", "two"],
            Some(TOKEN),
        ));
        let refused = syncmq(&["--addr", addr, "publish", "orders", "three"], None);
        assert!(!refused.status.success());
        let err = String::from_utf8_lossy(&refused.stderr);
        assert!(
            err.contains("refused (403)") && err.contains("requires a token"),
            "{err}"
        );
        let stats = succeeded(&syncmq(
            &["--addr", addr, "--json", "stats", "orders"],
            Some(TOKEN),
        ));
        assert!(stats.contains("\"depth\":2"), "{stats}");
    }

    #[cfg(feature = "tls")]
    #[test]
    fn serve_with_tls_and_a_client_that_trusts_its_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cli.pem");
        let key = dir.path().join("cli.key");
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let served = serve(
            dir.path(),
            &[
                "--listen".as_ref(),
                "127.0.0.1:0".as_ref(),
                "--tls-cert".as_ref(),
                cert.as_os_str(),
                "--tls-key".as_ref(),
                key.as_os_str(),
            ],
        );
        let addr = served.addr.as_str();
        let ca = cert.to_str().unwrap();
        succeeded(&syncmq(
            &[
                "--addr", addr, "--tls-ca", ca, "publish", "orders", "secure",
            ],
            None,
        ));
        let consumed = succeeded(&syncmq(
            &[
                "--addr", addr, "--tls-ca", ca, "consume", "orders", "billing", "--count", "1",
            ],
            None,
        ));
        assert!(consumed.contains("secure"), "{consumed}");
    }
}
