//! No thread of ours outlives the owner that closed it.
//!
//! This binary holds only these tests, and they take turns (a shared lock),
//! so every `syncmq-` thread in the process belongs to the test that runs.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use common::{eventually, syncmq_threads, unique};
use syncmq::outbox::MemoryOutboxStore;
use syncmq::outbox::Outbox;
use syncmq::{Adapter, ChannelSpec, Message, Mode, SimpleAdapter};

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
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
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
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
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

mod block_runtime {
    use super::*;
    use std::sync::Arc;
    use syncmq::block::{
        Bag, Block, BlockConfig, Controller, InitContext, Registry, Runtime, RuntimeConfig,
        WaiterDependency,
    };
    use syncmq::ConnectionWaiter;

    /// Keeps its run thread and one helper busy until finished, and takes
    /// bags and dependency events.
    struct Busy;

    impl Block for Busy {
        fn init(&self, _: &InitContext<'_>) -> syncmq::Result<()> {
            Ok(())
        }
        fn run(&self, ctl: Controller) {
            let finishing = ctl.finishing().clone();
            ctl.spawn("helper", move || {
                let _ = finishing.recv();
            })
            .unwrap();
            let _ = ctl.finishing().recv();
        }
        fn finish(&self) -> syncmq::Result<()> {
            Ok(())
        }
        fn on_enqueue(&self, _: &Controller, _: Bag) {}
    }

    /// Two blocks (a run, an event and a helper thread each) and the
    /// monitor: seven threads.
    fn start() -> (Runtime, Arc<ConnectionWaiter>) {
        let mut registry = Registry::new();
        registry.register("busy", |_| Busy).unwrap();
        let config = RuntimeConfig::new()
            .with_block(BlockConfig::new("busy").with_responsibility("one"))
            .with_block(BlockConfig::new("busy").with_responsibility("two"));
        let runtime = Runtime::start(&config, &registry).unwrap();
        let waiter = Arc::new(ConnectionWaiter::new());
        runtime
            .monitor(Arc::new(WaiterDependency::new("broker", waiter.clone())))
            .unwrap();
        waiter.set_connected();
        runtime.controller("two").unwrap().enqueue(Bag::new());
        eventually(Duration::from_secs(5), "seven named block threads", || {
            syncmq_threads().len() == 7
        });
        let running = syncmq_threads();
        assert!(
            running.iter().all(|name| name.starts_with("syncmq-blk-")),
            "{running:?}"
        );
        (runtime, waiter)
    }

    #[test]
    fn close_joins_every_block_thread() {
        let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
        no_threads_left();
        let (runtime, _waiter) = start();
        runtime.close().unwrap();
        no_threads_left();
    }

    #[test]
    fn dropping_the_runtime_joins_every_block_thread() {
        let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
        no_threads_left();
        let (runtime, waiter) = start();
        drop(runtime);
        no_threads_left();
        waiter.close();
    }
}

#[cfg(feature = "durable")]
#[test]
fn queue_close_and_drop_join_every_thread() {
    use syncmq::queue::{Queue, QueueConfig, TopicConfig};
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
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
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
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

#[test]
fn outbox_stop_and_drop_join_both_threads() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    no_threads_left();
    let sink = |_: &Message| Ok(());
    let outbox = Outbox::start(MemoryOutboxStore::new(), sink).unwrap();
    outbox.add(&Message::new(b"x".to_vec())).unwrap();
    eventually(
        Duration::from_secs(5),
        "the two named outbox threads",
        || syncmq_threads() == ["syncmq-outbox-c", "syncmq-outbox-s"],
    );
    outbox.close().unwrap();
    no_threads_left();

    let outbox = Outbox::start(MemoryOutboxStore::new(), sink).unwrap();
    eventually(Duration::from_secs(5), "two outbox threads again", || {
        syncmq_threads().len() == 2
    });
    drop(outbox);
    no_threads_left();
}

#[test]
fn an_outbox_runs_the_dispatcher_and_the_cleanup_apart_when_asked() {
    use syncmq::outbox::OutboxConfig;
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    no_threads_left();
    let sink = |_: &Message| Ok(());
    let dispatching = OutboxConfig::new().with_cleanup(false);
    let outbox = Outbox::start_with(MemoryOutboxStore::new(), sink, dispatching).unwrap();
    eventually(Duration::from_secs(5), "the dispatcher alone", || {
        syncmq_threads() == ["syncmq-outbox-s"]
    });
    drop(outbox);
    no_threads_left();
    let outbox = Outbox::start_cleanup(MemoryOutboxStore::new(), OutboxConfig::new()).unwrap();
    eventually(Duration::from_secs(5), "the cleanup alone", || {
        syncmq_threads() == ["syncmq-outbox-c"]
    });
    outbox.close().unwrap();
    no_threads_left();
}

#[cfg(feature = "rabbitmq")]
#[test]
fn rabbitmq_client_and_adapter_close_join_every_thread() {
    use syncmq::rabbitmq::{ConsumerOptions, RabbitClient, RabbitClientConfig};
    use syncmq::{Message, RabbitAdapter};

    let Some(url) = common::broker_url() else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    no_threads_left();
    let service = unique("leak");
    let client = RabbitClient::start(RabbitClientConfig::new(&url, &service)).unwrap();
    client
        .add_consumer(
            ConsumerOptions::new("", "jobs")
                .with_concurrency(2)
                .with_dead_letters(true),
            |_: &Message| -> Result<(), String> { Ok(()) },
        )
        .unwrap();
    let adapter = RabbitAdapter::connect(&url).unwrap();
    let channel = unique("leak-ch");
    adapter
        .new_channel(ChannelSpec::new(&channel, Mode::Both).with_instances(2))
        .unwrap();
    // Client: supervisor, publisher, consumer owner, two handlers.
    // Adapter: supervisor, publisher (which takes from the input itself:
    // no thread per input), two consumer owners.
    // Each connection also has amiquip's I/O thread, which Linux lists
    // under the name of the thread that started it (our supervisor's), so
    // at least nine: and every one of them must go.
    eventually(Duration::from_secs(10), "nine named threads", || {
        let threads = syncmq_threads();
        let ours = |prefix: &str| threads.iter().filter(|n| n.starts_with(prefix)).count();
        ours("syncmq-rmq-conn") >= 2
            && ours("syncmq-rmq-pub") == 2
            && ours("syncmq-rmq-cons") == 1
            && ours("syncmq-rmq-hand") == 2
            && ours("syncmq-rmq-in") == 0
            && ours("syncmq-rmq-out") == 2
    });
    let running = syncmq_threads();
    assert!(
        running.iter().all(|n| n.starts_with("syncmq-rmq-")),
        "{running:?}"
    );
    client.close().unwrap();
    adapter.close().unwrap();
    no_threads_left();

    // Dropping without a close stops them too.
    let adapter = RabbitAdapter::connect(&url).unwrap();
    adapter
        .new_channel(ChannelSpec::new(&channel, Mode::Both))
        .unwrap();
    eventually(Duration::from_secs(10), "three named threads", || {
        syncmq_threads().len() >= 3
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

#[cfg(feature = "durable")]
#[test]
fn server_close_and_drop_join_every_thread() {
    use syncmq::queue::{Queue, QueueConfig, TopicConfig};
    use syncmq::server::{QueueClient, QueueServer, QueueServerConfig};

    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    no_threads_left();
    let queue = std::sync::Arc::new(
        Queue::memory(QueueConfig::new().with_topic(TopicConfig::new("t", ["a", "b"]))).unwrap(),
    );
    for (round, close) in [true, false].into_iter().enumerate() {
        let server = QueueServer::start(queue.clone(), QueueServerConfig::new()).unwrap();
        let clients: Vec<QueueClient> = (0..3)
            .map(|_| QueueClient::connect(server.local_addr()).unwrap())
            .collect();
        clients[0]
            .publish("t", &[Message::new(b"x".to_vec())])
            .unwrap();
        let mut subs = vec![
            clients[1].subscribe("t", "a").unwrap(),
            clients[2].subscribe("t", "b").unwrap(),
        ];
        // Held unacknowledged while the server goes away.
        let held: Vec<_> = subs.iter_mut().map(|s| s.recv().unwrap()).collect();
        let ours = |prefix: &str| {
            syncmq_threads()
                .iter()
                .filter(|n| n.starts_with(prefix))
                .count()
        };
        // Accept + 3 connections + 2 pushers on the server, a reader per
        // client, the queue's two.
        eventually(Duration::from_secs(5), "the server's threads", || {
            ours("syncmq-srv-acc") == 1
                && ours("syncmq-srv-conn") == 3
                && ours("syncmq-srv-push") == 2
                && ours("syncmq-client") == 3
        });
        if close {
            server.close().unwrap();
        } else {
            drop(server);
        }
        eventually(Duration::from_secs(5), "server threads gone", || {
            ours("syncmq-srv") == 0
        });
        // The deliveries held over the close went back to the queue.
        let stats = queue.stats("t").unwrap();
        assert!(
            stats
                .iter()
                .all(|s| s.in_flight == 0 && s.depth == round as u64 + 1),
            "{stats:?}"
        );
        // The clients' readers saw the connection end; dropping them joins.
        drop(held);
        drop(subs);
        drop(clients);
        eventually(Duration::from_secs(5), "client threads gone", || {
            ours("syncmq-client") == 0
        });
    }
    drop(queue);
    no_threads_left();
}

#[cfg(feature = "rabbitmq")]
#[test]
fn a_monitored_rabbit_dependency_leaves_no_thread() {
    use std::sync::Arc;
    use syncmq::block::{
        BlockConfig, Dependency, RabbitDependency, Registry, Runtime, RuntimeConfig,
    };

    let Some(url) = common::broker_url() else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    no_threads_left();
    let config = RuntimeConfig::new()
        .with_block(BlockConfig::new("finisher"))
        .with_heartbeat(Duration::from_millis(10));
    // Closed: the runtime's close stops the monitor, the dependency's
    // close the supervisor.
    let runtime = Runtime::start(&config, &Registry::new()).unwrap();
    let broker = Arc::new(RabbitDependency::new(&url).with_name(unique("leak-blk")));
    runtime.monitor(broker.clone()).unwrap();
    eventually(Duration::from_secs(10), "connected", || {
        broker.is_connected()
    });
    let threads = syncmq_threads();
    assert!(
        threads.iter().any(|n| n.starts_with("syncmq-blk-moni"))
            && threads.iter().any(|n| n.starts_with("syncmq-rmq-conn")),
        "{threads:?}"
    );
    runtime.close().unwrap();
    broker.close().unwrap();
    no_threads_left();

    // Dropped without a close: the supervisor goes with the last handle.
    let runtime = Runtime::start(&config, &Registry::new()).unwrap();
    let broker = Arc::new(RabbitDependency::new(&url).with_name(unique("leak-blk")));
    runtime.monitor(broker.clone()).unwrap();
    eventually(Duration::from_secs(10), "connected", || {
        broker.is_connected()
    });
    drop(runtime);
    drop(broker);
    no_threads_left();
}

#[cfg(feature = "rabbitmq")]
#[test]
fn an_outbox_on_a_rabbit_sink_of_its_own_joins_every_thread() {
    use syncmq::rabbitmq::ConnectionConfig;
    use syncmq::{RabbitRoute, RabbitSink};

    let Some(url) = common::broker_url() else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    no_threads_left();
    let queue = unique("leak-obx");
    for stop in [true, false] {
        let sink = RabbitSink::connect(
            ConnectionConfig::new(&url).with_name(unique("leak-obx-conn")),
            RabbitRoute::Queue(queue.clone()),
        )
        .unwrap();
        let outbox = Outbox::start(MemoryOutboxStore::new(), sink).unwrap();
        outbox.add(&Message::new(b"x".to_vec())).unwrap();
        // The outbox's two threads, the sink's supervisor (and amiquip's
        // I/O thread under its name) and its publisher.
        eventually(
            Duration::from_secs(10),
            "the outbox and stream threads",
            || {
                let threads = syncmq_threads();
                let ours = |prefix: &str| threads.iter().filter(|n| n.starts_with(prefix)).count();
                ours("syncmq-outbox-") == 2
                    && ours("syncmq-rmq-conn") >= 1
                    && ours("syncmq-rmq-pub") == 1
            },
        );
        // The outbox owns the stream: stopping or dropping it closes the
        // publisher and the connection too.
        if stop {
            outbox.close().unwrap();
        } else {
            drop(outbox);
        }
        no_threads_left();
    }
    common::delete_queues(&url, &[&queue]);
}

/// Close during a connect attempt that hangs (a peer that accepts and never
/// answers the AMQP handshake, as RabbitMQ does for about 3 s with a wrong
/// password) returns at once and joins the attempt's thread: none of ours,
/// nor amiquip's I/O thread for that handshake, is left running. The
/// connect timeout is a minute, so an attempt left to finish on its own
/// would still be there.
#[cfg(feature = "rabbitmq")]
#[test]
fn close_during_a_hanging_connect_attempt_joins_the_attempt() {
    use std::net::TcpListener;
    use std::time::Instant;
    use syncmq::rabbitmq::{Connection, ConnectionConfig};

    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    no_threads_left();
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let connection = Connection::with_config(
        ConnectionConfig::new(format!("amqp://guest:guest@127.0.0.1:{port}/%2f"))
            .with_name(unique("hang"))
            .with_connect_timeout(Duration::from_secs(60)),
    )
    .unwrap();
    // Once accepted and amiquip's I/O thread runs, the attempt is in the
    // handshake, waiting for a Connection.Start that never comes.
    let (_peer, _) = silent.accept().unwrap();
    eventually(
        Duration::from_secs(5),
        "the attempt's named thread and its handshake",
        || {
            // The supervisor and the attempt (`syncmq-rmq-connect:`, which
            // Linux cuts to the same 15 bytes).
            let ours = syncmq_threads()
                .iter()
                .filter(|n| n.starts_with("syncmq-rmq-conn"))
                .count();
            ours >= 2 && !common::threads_named("amiquip-io").is_empty()
        },
    );
    let started = Instant::now();
    connection.close().unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "close took {took:?}");
    no_threads_left();
    eventually(Duration::from_secs(5), "amiquip's I/O thread gone", || {
        common::threads_named("amiquip-io").is_empty()
    });
}

/// As above, while the TCP connect itself hangs: a listener whose accept
/// queue is full drops the SYN, like a silent host. Close cuts the connect
/// short and joins the attempt.
#[cfg(feature = "rabbitmq")]
#[test]
fn close_during_a_hanging_tcp_connect_joins_the_attempt() {
    use std::net::{SocketAddr, TcpStream};
    use std::time::Instant;
    use syncmq::rabbitmq::{Connection, ConnectionConfig};

    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    no_threads_left();
    let full = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    full.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    full.listen(0).unwrap();
    let addr = full.local_addr().unwrap().as_socket().unwrap();
    // Fill the accept queue (never accepted) until a connect hangs.
    let mut queued = Vec::new();
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(stream) => queued.push(stream),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break,
            Err(e) => {
                eprintln!("skipped: a connect to a full accept queue failed with {e}");
                return;
            }
        }
        assert!(queued.len() < 100, "the accept queue never filled");
    }
    let connection = Connection::with_config(
        ConnectionConfig::new(format!("amqp://guest:guest@{addr}/%2f"))
            .with_name(unique("syn"))
            .with_connect_timeout(Duration::from_secs(60)),
    )
    .unwrap();
    // The supervisor and the attempt (`syncmq-rmq-connect:`, which Linux
    // cuts to the same 15 bytes).
    eventually(Duration::from_secs(5), "the attempt's named thread", || {
        let ours = syncmq_threads()
            .iter()
            .filter(|n| n.starts_with("syncmq-rmq-conn"))
            .count();
        ours >= 2
    });
    let started = Instant::now();
    connection.close().unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "close took {took:?}");
    no_threads_left();
}
