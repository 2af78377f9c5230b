//! The PostgreSQL outbox store against the real server: the store contract,
//! atomic commits in the application's transaction, claims that keep two
//! dispatchers from sending one row twice, lapsed claims, corrupt rows.
//! Each test uses its own table and drops it at the end.

#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used)]

mod common;
mod outbox_contract;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, postgres_params, unique};
use syncmq::outbox::postgres::{Client, NoTls};
use syncmq::outbox::{Outbox, OutboxConfig};
use syncmq::outbox::{OutboxStore, PostgresOutboxStore, PostgresStoreConfig};
use syncmq::{Error, Message};

const LIMIT: Duration = Duration::from_secs(20);

/// A table of this test's own, dropped (with its application table) when
/// the test ends, pass or fail.
struct Table {
    params: String,
    name: String,
}

impl Table {
    fn new(params: &str) -> Self {
        Table {
            params: params.to_string(),
            name: unique("outbox").replace('-', "_"),
        }
    }

    fn config(&self) -> PostgresStoreConfig {
        PostgresStoreConfig::new(&self.params).with_table(&self.name)
    }

    fn store(&self) -> PostgresOutboxStore {
        PostgresOutboxStore::connect_with(self.config()).unwrap()
    }

    fn client(&self) -> Client {
        Client::connect(&self.params, NoTls).unwrap()
    }

    fn orders(&self) -> String {
        format!("{}_orders", self.name)
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        if let Ok(mut client) = Client::connect(&self.params, NoTls) {
            let _ = client.batch_execute(&format!(
                "DROP TABLE IF EXISTS {0}; DROP TABLE IF EXISTS {0}_orders;",
                self.name
            ));
        }
    }
}

fn msg(body: impl Into<Vec<u8>>) -> Message {
    Message::new(body)
}

/// The body of every message a sink accepted, in order.
type Sent = Arc<Mutex<Vec<Vec<u8>>>>;

/// A sink that records the body of every message it accepts.
fn recorder() -> (
    Sent,
    impl FnMut(&Message) -> syncmq::Result<()> + Send + 'static,
) {
    let sent = Sent::default();
    let seen = sent.clone();
    (sent, move |m: &Message| {
        seen.lock().unwrap().push(m.body().to_vec());
        Ok(())
    })
}

#[test]
fn the_postgres_store_keeps_the_store_contract() {
    let Some(params) = postgres_params() else {
        return;
    };
    let table = Table::new(&params);
    outbox_contract::check_all(&table.store());
}

#[test]
fn app_writes_and_the_row_commit_together_or_not_at_all() {
    let Some(params) = postgres_params() else {
        return;
    };
    let table = Table::new(&params);
    let store = table.store();
    let orders = table.orders();
    let mut client = table.client();
    client
        .batch_execute(&format!(
            "CREATE TABLE {orders} (id BIGINT PRIMARY KEY, state TEXT NOT NULL)"
        ))
        .unwrap();

    // `?` turns the postgres error into ours (`From<postgres::Error>`).
    let (id, inserted) = store
        .add_within_tx(&msg("order 1 placed"), |tx| -> Result<u64, Error> {
            Ok(tx.execute(
                &format!("INSERT INTO {orders} (id, state) VALUES (1, 'placed')"),
                &[],
            )?)
        })
        .unwrap();
    assert_eq!(inserted, 1);
    assert_eq!(store.pending(10).unwrap()[0].id, id);

    let err = store
        .add_within_tx(&msg("order 2 placed"), |tx| -> Result<(), Error> {
            tx.execute(
                &format!("INSERT INTO {orders} (id, state) VALUES (2, 'placed')"),
                &[],
            )?;
            Err(Error::invalid("order", "card declined"))
        })
        .unwrap_err();
    assert!(err.to_string().contains("card declined"));
    // A statement that fails in the database rolls back the same way.
    let err = store
        .add_within_tx(&msg("order 1 again"), |tx| -> Result<u64, Error> {
            Ok(tx.execute(
                &format!("INSERT INTO {orders} (id, state) VALUES (1, 'duplicate')"),
                &[],
            )?)
        })
        .unwrap_err();
    assert!(matches!(err, Error::Storage { .. }), "{err:?}");
    // The unique violation keeps its SQLSTATE and the server's message,
    // and the postgres error itself is the source.
    assert_eq!(err.sqlstate(), Some("23505"), "{err:?}");
    assert!(err.to_string().contains("duplicate key"), "{err}");
    let source = std::error::Error::source(&err).expect("a source");
    assert!(source
        .downcast_ref::<syncmq::outbox::postgres::Error>()
        .is_some());

    let order_ids: Vec<i64> = client
        .query(&format!("SELECT id FROM {orders} ORDER BY id"), &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(order_ids, [1]);
    assert_eq!(store.counts().unwrap().pending, 1);
}

#[test]
fn a_row_added_in_the_callers_own_transaction_is_sent_after_notify() {
    let Some(params) = postgres_params() else {
        return;
    };
    let table = Table::new(&params);
    let (sent, sink) = recorder();
    let config = OutboxConfig::default().with_check_interval(Duration::from_secs(3600));
    let outbox = Outbox::start_with(table.store(), sink, config).unwrap();
    let mut client = table.client();
    let mut tx = client.transaction().unwrap();
    outbox.store().add_in(&mut tx, &msg("mine")).unwrap();
    tx.commit().unwrap();
    outbox.notify();
    eventually(LIMIT, "the row sent", || {
        *sent.lock().unwrap() == [b"mine".to_vec()]
    });
    outbox.close().unwrap();
}

#[test]
fn the_outbox_dispatches_postgres_rows_in_order() {
    let Some(params) = postgres_params() else {
        return;
    };
    let table = Table::new(&params);
    let (sent, sink) = recorder();
    let config = OutboxConfig::default().with_batch_size(8);
    let outbox = Outbox::start_with(table.store(), sink, config).unwrap();
    let added: Vec<Vec<u8>> = (0..100u32).map(|i| i.to_be_bytes().to_vec()).collect();
    for body in &added {
        outbox.add(&msg(body.clone())).unwrap();
    }
    eventually(LIMIT, "100 rows sent", || sent.lock().unwrap().len() == 100);
    assert_eq!(*sent.lock().unwrap(), added);
    eventually(LIMIT, "100 rows marked", || {
        outbox.store().counts().unwrap().dispatched == 100
    });
    outbox.close().unwrap();
}

#[test]
fn two_dispatchers_on_one_table_never_send_a_row_twice() {
    let Some(params) = postgres_params() else {
        return;
    };
    let table = Table::new(&params);
    let writer = table.store();
    let added: Vec<u64> = (0..300u32)
        .map(|i| writer.add(&msg(i.to_be_bytes().to_vec())).unwrap())
        .collect();
    // (dispatcher, id) of every send; the body `i` is the row `added[i]`.
    let sent = Arc::new(Mutex::new(Vec::new()));
    let sink = |who: u8| {
        let (seen, added) = (sent.clone(), added.clone());
        move |m: &Message| {
            // A destination that takes a moment, so both claim batches
            // while the other is still sending.
            std::thread::sleep(Duration::from_millis(2));
            let i = u32::from_be_bytes(m.body().try_into().unwrap());
            seen.lock().unwrap().push((who, added[i as usize]));
            Ok(())
        }
    };
    let config = OutboxConfig::default()
        .with_batch_size(10)
        .with_check_interval(Duration::from_millis(20));
    let a = Outbox::start_with(table.store(), sink(0), config.clone()).unwrap();
    let b = Outbox::start_with(table.store(), sink(1), config).unwrap();
    eventually(LIMIT, "every row dispatched", || {
        let counts = writer.counts().unwrap();
        counts.pending == 0 && counts.dispatched == 300
    });
    a.close().unwrap();
    b.close().unwrap();
    let sent = sent.lock().unwrap();
    let mut per_row: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for (who, id) in sent.iter() {
        per_row.entry(*id).or_default().push(*who);
    }
    let twice: Vec<_> = per_row.iter().filter(|(_, w)| w.len() > 1).collect();
    assert!(twice.is_empty(), "rows sent more than once: {twice:?}");
    assert_eq!(per_row.keys().copied().collect::<Vec<_>>(), added);
    let by_a = sent.iter().filter(|(who, _)| *who == 0).count();
    assert!(
        by_a > 0 && by_a < 300,
        "both dispatchers worked: a sent {by_a}"
    );
    // Each dispatcher kept id order among the rows it sent.
    for who in [0, 1] {
        let ids: Vec<u64> = sent
            .iter()
            .filter(|(w, _)| *w == who)
            .map(|(_, id)| *id)
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{who}: {ids:?}");
    }
}

#[test]
fn a_lapsed_claim_passes_the_rows_to_another_dispatcher() {
    let Some(params) = postgres_params() else {
        return;
    };
    let table = Table::new(&params);
    let crashed =
        PostgresOutboxStore::connect_with(table.config().with_lease(Duration::from_millis(300)))
            .unwrap();
    let other = table.store();
    let ids: Vec<u64> = (0..3)
        .map(|i| crashed.add(&msg(vec![i])).unwrap())
        .collect();
    let claimed: Vec<u64> = crashed.pending(10).unwrap().iter().map(|r| r.id).collect();
    assert_eq!(claimed, ids);
    // Claimed: invisible to the other store, visible again to the claimer.
    assert!(other.pending(10).unwrap().is_empty());
    assert_eq!(crashed.pending(10).unwrap().len(), 3);
    drop(crashed); // it "dies" holding the claim
    eventually(LIMIT, "the claim lapses and the rows pass over", || {
        other.pending(10).unwrap().len() == 3
    });
}

#[test]
fn a_corrupt_row_is_set_aside_and_does_not_block_the_rest() {
    let Some(params) = postgres_params() else {
        return;
    };
    let table = Table::new(&params);
    let store = table.store();
    let mut client = table.client();
    client
        .execute(
            &format!(
                "INSERT INTO {} (message, created_at) VALUES ($1, now())",
                table.name
            ),
            &[&vec![9u8, 9, 9]],
        )
        .unwrap();
    let good = store.add(&msg("good")).unwrap();
    let pending: Vec<u64> = store.pending(10).unwrap().iter().map(|r| r.id).collect();
    assert_eq!(pending, [good]);
    let counts = store.counts().unwrap();
    assert_eq!((counts.pending, counts.dead_letters), (1, 1));
    let reason: Option<String> = client
        .query_one(
            &format!(
                "SELECT last_error FROM {} WHERE dead_at IS NOT NULL",
                table.name
            ),
            &[],
        )
        .unwrap()
        .get(0);
    assert!(reason.unwrap().starts_with("corrupt message"));
}

#[test]
fn bad_configs_and_unreachable_servers_are_clear_errors() {
    for table in [
        "",
        "9lives",
        "Robert'); DROP TABLE students;--",
        &"x".repeat(51),
    ] {
        let err = PostgresOutboxStore::connect_with(
            PostgresStoreConfig::new("host=127.0.0.1").with_table(table),
        )
        .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { ref name, .. } if name == "table"));
    }
    let err = PostgresOutboxStore::connect_with(
        PostgresStoreConfig::new("host=127.0.0.1").with_lease(Duration::ZERO),
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { ref name, .. } if name == "lease"));
    // Nothing listens on port 1.
    let err = PostgresOutboxStore::connect("host=127.0.0.1 port=1 user=postgres connect_timeout=2")
        .unwrap_err();
    assert!(
        matches!(err, Error::Storage { ref what, .. } if what.contains("connect")),
        "{err:?}"
    );
    assert_eq!(err.sqlstate(), None, "{err:?}");
}

/// outboxer runs its dispatcher and its cleanup as separate jobs: here one
/// outbox dispatches with its cleanup off, another (a second process, in
/// real life) only cleans, both on the same table.
#[test]
fn one_outbox_dispatches_and_another_cleans_the_same_table() {
    let Some(params) = postgres_params() else {
        return;
    };
    let table = Table::new(&params);
    let (sent, sink) = recorder();
    let quick = OutboxConfig::new()
        .with_retention(Duration::ZERO)
        .with_cleanup_interval(Duration::from_millis(10));
    let dispatching =
        Outbox::start_with(table.store(), sink, quick.clone().with_cleanup(false)).unwrap();
    for i in 0..5 {
        dispatching.add(&Message::new(format!("row {i}"))).unwrap();
    }
    eventually(LIMIT, "five rows dispatched", || {
        dispatching.store().counts().unwrap().dispatched == 5
    });
    let cleaning = Outbox::start_cleanup(table.store(), quick).unwrap();
    eventually(LIMIT, "the other outbox cleaned them", || {
        cleaning.store().counts().unwrap().dispatched == 0
    });
    assert_eq!(cleaning.stats().unwrap().cleaned, 5);
    assert_eq!(
        dispatching.stats().unwrap().cleaned,
        0,
        "its cleanup is off"
    );
    assert_eq!(sent.lock().unwrap().len(), 5);
    dispatching.close().unwrap();
    cleaning.close().unwrap();
}
