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

#[cfg(feature = "rabbitmq")]
#[test]
fn rabbitmq_client_and_adapter_close_join_every_thread() {
    use syncmq::rabbitmq::{Client, ClientConfig, ConsumerOptions};
    use syncmq::{Message, RabbitAdapter};

    let Some(url) = common::broker_url() else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    no_threads_left();
    let service = unique("leak");
    let client = Client::start(ClientConfig::new(&url, &service)).unwrap();
    client
        .add_consumer(
            ConsumerOptions::new("", "jobs")
                .with_concurrency(2)
                .with_dlq(true),
            |_: &Message| -> Result<(), String> { Ok(()) },
        )
        .unwrap();
    let adapter = RabbitAdapter::connect(&url).unwrap();
    let channel = unique("leak-ch");
    adapter
        .new_channel(ChannelSpec::new(&channel, Mode::Both).with_instances(2))
        .unwrap();
    // Client: supervisor, publisher, consumer owner, two handlers.
    // Adapter: supervisor, publisher, forwarder, two consumer owners.
    // Each connection also has amiquip's I/O thread, which Linux lists
    // under the name of the thread that started it (our supervisor's), so
    // at least ten: and every one of them must go.
    eventually(Duration::from_secs(10), "ten named threads", || {
        let threads = syncmq_threads();
        let ours = |prefix: &str| threads.iter().filter(|n| n.starts_with(prefix)).count();
        ours("syncmq-rmq-conn") >= 2
            && ours("syncmq-rmq-pub") == 2
            && ours("syncmq-rmq-cons") == 1
            && ours("syncmq-rmq-hand") == 2
            && ours("syncmq-rmq-in") == 1
            && ours("syncmq-rmq-out") == 2
    });
    let running = syncmq_threads();
    assert!(
        running.iter().all(|n| n.starts_with("syncmq-rmq-")),
        "{running:?}"
    );
    client.stop().unwrap();
    adapter.close().unwrap();
    no_threads_left();

    // Dropping without a close stops them too.
    let adapter = RabbitAdapter::connect(&url).unwrap();
    adapter
        .new_channel(ChannelSpec::new(&channel, Mode::Both))
        .unwrap();
    eventually(Duration::from_secs(10), "four named threads", || {
        syncmq_threads().len() >= 4
    });
    drop(adapter);
    no_threads_left();
    common::delete_queues(
        &url,
        &[
            &channel,
            &format!("{service}:jobs:queue"),
            &format!("{service}:jobs:dlq"),
        ],
    );
}
