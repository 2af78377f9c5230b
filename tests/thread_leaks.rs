//! No thread of ours outlives the owner that closed it.
//!
//! This binary holds only these tests, and they take turns (a shared lock),
//! so every `syncmq-` thread in the process belongs to the test that runs.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::{eventually, syncmq_threads, unique};
use syncmq::{Adapter, ChannelSpec, Mode, SimpleAdapter};

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

#[cfg(feature = "durable")]
#[test]
fn queue_close_and_drop_join_every_thread() {
    use syncmq::queue::{Queue, QueueConfig, TopicConfig};
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    no_threads_left();
    let dir = tempfile::tempdir().unwrap();
    let config = QueueConfig::new().with_topic(TopicConfig::new("t", ["a"]));
    let queue = Queue::open(dir.path(), config.clone()).unwrap();
    eventually(Duration::from_secs(5), "the sweeper", || {
        syncmq_threads() == ["syncmq-queue-sw"]
    });
    // A consumer blocked in recv is woken by close, not left behind.
    let sub = queue.subscribe("t", "a").unwrap();
    let consumer = std::thread::spawn(move || sub.recv());
    queue.close().unwrap();
    assert!(consumer.join().unwrap().is_err());
    no_threads_left();
    drop(queue);
    let queue = Queue::open(dir.path(), config).unwrap();
    eventually(Duration::from_secs(5), "the sweeper again", || {
        syncmq_threads().len() == 1
    });
    drop(queue);
    no_threads_left();
}

#[cfg(feature = "durable")]
#[test]
fn durable_adapter_close_and_drop_join_every_thread() {
    use syncmq::DurableAdapter;
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    no_threads_left();
    let dir = tempfile::tempdir().unwrap();
    let adapter = DurableAdapter::open(dir.path()).unwrap();
    adapter
        .new_channel(ChannelSpec::new(unique("t"), Mode::Both).with_instances(2))
        .unwrap();
    adapter
        .new_channel(ChannelSpec::new(unique("i"), Mode::Input))
        .unwrap();
    // The sweeper, 2 + 2 for the first channel, 1 for the second.
    eventually(Duration::from_secs(5), "six named threads", || {
        syncmq_threads().len() == 6
    });
    adapter.close().unwrap();
    no_threads_left();
    drop(adapter);
    // Restored channels start their threads; dropping stops them.
    let adapter = DurableAdapter::open(dir.path()).unwrap();
    eventually(Duration::from_secs(5), "six threads again", || {
        syncmq_threads().len() == 6
    });
    drop(adapter);
    no_threads_left();
}
