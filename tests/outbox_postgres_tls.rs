//! The PostgreSQL outbox store over TLS, against a server of the test's
//! own (`common::postgres_tls`, `ssl=on`, a certificate of a CA made for
//! the test): rows added and dispatched with every connection of the store
//! encrypted, a URL with libpq's `sslmode`/`sslrootcert`, an untrusted CA
//! and a wrong host name refused in words, `verify-ca` not checking the name.

#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::eventually;
use common::postgres_tls::TlsPostgres;
use syncmq::outbox::postgres::{Client, NoTls};
use syncmq::outbox::{Outbox, OutboxConfig, OutboxStore, PostgresOutboxStore, PostgresStoreConfig};
use syncmq::{Error, Message, TlsConfig};

const LIMIT: Duration = Duration::from_secs(20);

/// The (TLS, plain) sessions named `application`, counted from a plain
/// connection of the test's own (the server allows both). The tests share
/// the server, so each names its store's sessions.
fn sessions(server: &TlsPostgres, application: &str) -> (i64, i64) {
    let mut admin = Client::connect(&server.params("sslmode=disable"), NoTls).unwrap();
    let row = admin
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
             FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = $1",
            &[&application],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

fn storage_text(result: syncmq::Result<PostgresOutboxStore>) -> String {
    match result {
        Err(e @ Error::Storage { .. }) => e.to_string(),
        Err(other) => panic!("expected a storage error, got {other:?}"),
        Ok(_) => panic!("expected a refusal, the store connected"),
    }
}

#[test]
fn rows_are_added_and_dispatched_over_tls_on_every_connection() {
    let Some(server) = TlsPostgres::shared() else {
        return;
    };
    let config =
        PostgresStoreConfig::new(server.url("sslmode=verify-full&application_name=tls-dispatch"))
            .with_tls(TlsConfig::new().with_ca_pem_file(&server.ca))
            .with_table("tls_dispatch");
    let store = PostgresOutboxStore::connect_with(config).unwrap();
    // The add's own transaction is on a TLS session.
    let (_, ssl) = store
        .add_within_tx(&Message::new(b"first".to_vec()), |tx| {
            let row = tx.query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )?;
            Ok::<bool, Error>(row.get(0))
        })
        .unwrap();
    assert!(ssl, "the store's add ran on a plain connection");

    let sent = Arc::new(Mutex::new(Vec::new()));
    let seen = sent.clone();
    let sink = move |m: &Message| {
        seen.lock().unwrap().push(m.body().to_vec());
        Ok(())
    };
    let outbox = Outbox::start_with(store, sink, OutboxConfig::default()).unwrap();
    outbox.add(&Message::new(b"second".to_vec())).unwrap();
    eventually(LIMIT, "both rows sent", || sent.lock().unwrap().len() == 2);
    assert_eq!(
        *sent.lock().unwrap(),
        vec![b"first".to_vec(), b"second".to_vec()]
    );
    eventually(LIMIT, "both rows marked", || {
        outbox.store().counts().unwrap().dispatched == 2
    });
    // The adds' pool and the dispatcher's own connections: all TLS.
    let (tls, plain) = sessions(&server, "tls-dispatch");
    assert_eq!(plain, 0, "the store opened a plain connection");
    assert!(
        tls >= 2,
        "expected the adds' and the dispatcher's connections, saw {tls}"
    );
    outbox.close().unwrap();
}

#[test]
fn a_url_with_sslrootcert_checks_the_server_without_with_tls() {
    let Some(server) = TlsPostgres::shared() else {
        return;
    };
    let url = server.url(&format!(
        "sslmode=verify-full&application_name=tls-url&sslrootcert={}",
        server.ca.display()
    ));
    let store =
        PostgresOutboxStore::connect_with(PostgresStoreConfig::new(url).with_table("tls_url"))
            .unwrap();
    let id = store.add(&Message::new(b"over a URL".to_vec())).unwrap();
    let pending = store.pending(10).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, id);
    let (tls, plain) = sessions(&server, "tls-url");
    assert!(
        tls >= 1 && plain == 0,
        "{tls} TLS and {plain} plain sessions"
    );
}

#[test]
fn a_server_whose_ca_is_not_trusted_is_refused_in_words() {
    let Some(server) = TlsPostgres::shared() else {
        return;
    };
    let text = storage_text(PostgresOutboxStore::connect_with(
        PostgresStoreConfig::new(server.params("sslmode=verify-full"))
            .with_tls(TlsConfig::new().with_ca_pem_file(&server.other_ca)),
    ));
    assert!(
        text.contains(&format!(
            "TLS handshake with localhost:{} failed: unknown CA: the server's certificate is not signed by a trusted CA",
            server.port
        )),
        "{text}"
    );
    // The system's CAs do not know the test's CA either.
    let text = storage_text(PostgresOutboxStore::connect(
        &server.params("sslmode=verify-full"),
    ));
    assert!(text.contains("unknown CA"), "{text}");
}

#[test]
fn verify_full_checks_the_host_name_and_verify_ca_does_not() {
    let Some(server) = TlsPostgres::shared() else {
        return;
    };
    let wrong_name = || {
        TlsConfig::new()
            .with_ca_pem_file(&server.ca)
            .with_server_name("db.invalid")
    };
    let text = storage_text(PostgresOutboxStore::connect_with(
        PostgresStoreConfig::new(server.params("sslmode=verify-full")).with_tls(wrong_name()),
    ));
    assert!(
        text.contains("name mismatch: the server's certificate is not valid for `db.invalid`"),
        "{text}"
    );
    // The right CA and any name: verify-ca, and require with a CA, connect.
    for mode in ["verify-ca", "require"] {
        let store = PostgresOutboxStore::connect_with(
            PostgresStoreConfig::new(server.params(&format!("sslmode={mode}")))
                .with_tls(wrong_name())
                .with_table("tls_any_name"),
        )
        .unwrap();
        assert_eq!(store.counts().unwrap().pending, 0, "{mode}");
    }
}

#[test]
fn require_without_a_ca_encrypts_without_checking() {
    let Some(server) = TlsPostgres::shared() else {
        return;
    };
    // libpq's sslmode=require: encrypted, the certificate not checked
    // (the test's CA is unknown to the system, yet this connects).
    let store = PostgresOutboxStore::connect_with(
        PostgresStoreConfig::new(server.params("sslmode=require application_name=tls-require"))
            .with_table("tls_require"),
    )
    .unwrap();
    store.add(&Message::new(b"encrypted".to_vec())).unwrap();
    let (tls, plain) = sessions(&server, "tls-require");
    assert!(
        tls >= 1 && plain == 0,
        "{tls} TLS and {plain} plain sessions"
    );
}
