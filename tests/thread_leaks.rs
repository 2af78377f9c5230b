//! No thread of ours outlives the owner that closed it.
//!
//! This binary holds only these tests, and they take turns (a shared lock),
//! so every `syncmq-` thread in the process belongs to the test that runs.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::{eventually, syncmq_threads, unique};
use syncmq::outbox::{MemoryOutboxStore, OutboxRecord};
use syncmq::{Adapter, ChannelSpec, Message, Mode, Outbox, SimpleAdapter};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn no_threads_left() {
    // A joined thread can stay listed in /proc for a moment after `join`
    // returns, while the kernel finishes tearing it down.
    eventually(Duration::from_secs(5), "every syncmq thread gone", || {
        syncmq_threads().is_empty()
    });
}

#[test]
fn simple_adapter_close_joins_every_thread() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    no_threads_left();
    let adapter = SimpleAdapter::new();
    for instances in [1, 4] {
        adapter
            .new_channel(ChannelSpec::new(unique("t"), Mode::Both).with_instances(instances))
            .unwrap();
    }
    // A new thread names itself as it starts, a moment after spawn returns.
    eventually(Duration::from_secs(5), "five named forwarders", || {
        syncmq_threads().len() == 5
    });
    let running = syncmq_threads();
    assert!(
        running
            .iter()
            .all(|name| name.starts_with("syncmq-simple-")),
        "{running:?}"
    );
    adapter.close().unwrap();
    no_threads_left();
}

#[test]
fn simple_adapter_drop_joins_every_thread() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    no_threads_left();
    let adapter = SimpleAdapter::new();
    adapter
        .new_channel(ChannelSpec::new(unique("d"), Mode::Both).with_instances(3))
        .unwrap();
    eventually(Duration::from_secs(5), "three named forwarders", || {
        syncmq_threads().len() == 3
    });
    drop(adapter);
    no_threads_left();
}

#[test]
fn outbox_stop_and_drop_join_both_threads() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    no_threads_left();
    let stream = |_: &OutboxRecord| Ok(());
    let outbox = Outbox::start(MemoryOutboxStore::new(), stream).unwrap();
    outbox.add(&Message::new(b"x".to_vec())).unwrap();
    eventually(
        Duration::from_secs(5),
        "the two named outbox threads",
        || syncmq_threads() == ["syncmq-outbox-c", "syncmq-outbox-s"],
    );
    outbox.stop().unwrap();
    no_threads_left();

    let outbox = Outbox::start(MemoryOutboxStore::new(), stream).unwrap();
    eventually(Duration::from_secs(5), "two outbox threads again", || {
        syncmq_threads().len() == 2
    });
    drop(outbox);
    no_threads_left();
}
