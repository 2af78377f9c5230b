//! The dependency monitor: `on_connect` / `on_disconnect` driven by a
//! `ConnectionWaiter` (as the RabbitMQ supervisor keeps), by a TCP
//! endpoint and by the RabbitMQ supervisor itself.
#![allow(clippy::unwrap_used)]

mod block_support;
mod common;

use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use block_support::{config, fixture, LIMIT};
use common::eventually;
use syncmq::block::{
    Block, BlockConfig, Controller, DependencyEvent, InitContext, Registry, Runtime, RuntimeConfig,
    TcpDependency, WaiterDependency,
};
use syncmq::{ConnectionWaiter, Error, Generation};

/// Records every dependency event as `connect:{dependency}:{generation}`
/// (or `disconnect:...`), and on a connect what the typed look-up gave:
/// `typed:{dependency}:{kind}` where the kind is the dependency's own type.
#[derive(Clone, Default)]
struct Watcher {
    seen: Arc<Mutex<Vec<String>>>,
}

impl Watcher {
    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    fn push(&self, entry: String) {
        self.seen.lock().unwrap().push(entry);
    }
}

impl Block for Watcher {
    fn init(&self, _: &InitContext<'_>) -> syncmq::Result<()> {
        Ok(())
    }
    fn run(&self, _: Controller) {}
    fn finish(&self) -> syncmq::Result<()> {
        Ok(())
    }

    fn on_connect(&self, _: &Controller, event: &DependencyEvent) {
        self.push(format!(
            "connect:{}:{}",
            event.name(),
            event.generation().get()
        ));
        let kind = if event.dependency_as::<WaiterDependency>().is_some() {
            "waiter"
        } else if event.dependency_as::<TcpDependency>().is_some() {
            "tcp"
        } else {
            #[cfg(feature = "rabbitmq")]
            if let Some(broker) = event.dependency_as::<syncmq::block::RabbitDependency>() {
                // The supervisor's own handle: what a block starts a
                // publisher or consumer on.
                let connected = broker
                    .supervisor()
                    .is_ok_and(|c| c.waiter().current() == Some(event.generation()));
                self.push(format!("typed:{}:rabbit:{connected}", event.name()));
                return;
            }
            "unknown"
        };
        self.push(format!("typed:{}:{kind}", event.name()));
    }

    fn on_disconnect(&self, _: &Controller, event: &DependencyEvent) {
        self.push(format!(
            "disconnect:{}:{}",
            event.name(),
            event.generation().get()
        ));
    }
}

/// A runtime of one [`Watcher`] block, with a short heartbeat.
fn watched() -> (Runtime, Watcher) {
    let watcher = Watcher::default();
    let mut registry = Registry::new();
    let block = watcher.clone();
    registry
        .register("watcher", move |_| block.clone())
        .unwrap();
    let config = RuntimeConfig::new()
        .with_block(BlockConfig::new("watcher"))
        .with_heartbeat(Duration::from_millis(5));
    (Runtime::start(&config, &registry).unwrap(), watcher)
}

#[test]
fn two_dependencies_are_monitored_and_each_event_names_its_own() {
    let (runtime, watcher) = watched();
    let rabbit = Arc::new(ConnectionWaiter::new());
    let database = Arc::new(ConnectionWaiter::new());
    runtime
        .monitor(Arc::new(WaiterDependency::new("rabbit", rabbit.clone())))
        .unwrap();
    runtime
        .monitor(Arc::new(WaiterDependency::new(
            "database",
            database.clone(),
        )))
        .unwrap();
    database.set_connected();
    eventually(LIMIT, "the database's connect", || {
        watcher.seen().contains(&"connect:database:1".into())
    });
    rabbit.set_connected();
    eventually(LIMIT, "rabbit's connect", || {
        watcher.seen().contains(&"connect:rabbit:1".into())
    });
    database.set_disconnected();
    eventually(LIMIT, "the database's disconnect", || {
        watcher.seen().contains(&"disconnect:database:1".into())
    });
    database.set_connected();
    eventually(LIMIT, "the database's reconnect", || {
        watcher.seen().contains(&"connect:database:2".into())
    });
    runtime.close().unwrap();
    let of = |name: &str| -> Vec<String> {
        watcher
            .seen()
            .into_iter()
            .filter(|e| e.starts_with("connect:") || e.starts_with("disconnect:"))
            .filter(|e| e.contains(&format!(":{name}:")))
            .collect()
    };
    assert_eq!(
        of("rabbit"),
        ["connect:rabbit:1"],
        "untouched by the database's flap"
    );
    assert_eq!(
        of("database"),
        [
            "connect:database:1",
            "disconnect:database:1",
            "connect:database:2"
        ]
    );
}

#[test]
fn a_callback_gets_the_dependency_back_with_its_own_type() {
    let (runtime, watcher) = watched();
    let waiter = Arc::new(ConnectionWaiter::new());
    runtime
        .monitor(Arc::new(WaiterDependency::new("waited", waiter.clone())))
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    runtime
        .monitor(Arc::new(TcpDependency::new(
            "dialled",
            listener.local_addr().unwrap(),
        )))
        .unwrap();
    let _peer = listener.accept().unwrap();
    waiter.set_connected();
    eventually(LIMIT, "both connects", || {
        let seen = watcher.seen();
        seen.contains(&"typed:waited:waiter".into()) && seen.contains(&"typed:dialled:tcp".into())
    });
    runtime.close().unwrap();
    // An event a block made itself carries no dependency to look up.
    let made = DependencyEvent::new("made", Generation::new(1));
    assert!(made.dependency_as::<WaiterDependency>().is_none());
}

#[test]
fn a_flapping_dependency_drives_connect_and_disconnect_in_order() {
    let f = fixture();
    let config = config(&[("listener", "one"), ("plain", "deaf"), ("listener", "two")])
        .with_heartbeat(Duration::from_millis(5));
    let runtime = Runtime::start(&config, &f.registry).unwrap();
    let waiter = Arc::new(ConnectionWaiter::new());
    runtime
        .monitor(Arc::new(WaiterDependency::new("broker", waiter.clone())))
        .unwrap();
    match runtime.monitor(Arc::new(WaiterDependency::new("broker", waiter.clone()))) {
        Err(Error::InvalidArgument { reason, .. }) => {
            assert!(reason.contains("`broker` is already monitored"), "{reason}");
        }
        other => panic!("a second dependency named `broker`: {other:?}"),
    }
    let events = |resp: &str| -> Vec<String> {
        f.log
            .entries()
            .into_iter()
            .filter(|e| !e.starts_with("bag:") && e.contains(&format!(":{resp}:")))
            .collect()
    };
    // Each step waits for the callbacks before the next flip.
    for round in 1..=3u64 {
        waiter.set_connected();
        eventually(LIMIT, "connect seen", || {
            events("two").last() == Some(&format!("connect:two:{round}"))
        });
        waiter.set_disconnected();
        eventually(LIMIT, "disconnect seen", || {
            events("two").last() == Some(&format!("disconnect:two:{round}"))
        });
    }
    let want: Vec<String> = (1..=3)
        .flat_map(|r| [format!("connect:one:{r}"), format!("disconnect:one:{r}")])
        .collect();
    assert_eq!(events("one"), want);
    runtime.close().unwrap();
    assert_eq!(f.overlaps.load(Ordering::SeqCst), 0);
    assert!(
        matches!(
            runtime.monitor(Arc::new(WaiterDependency::new("late", waiter))),
            Err(Error::Closed(_))
        ),
        "a closed runtime monitors nothing"
    );
}

#[test]
fn a_flap_between_heartbeats_is_still_a_disconnect_and_a_connect() {
    let f = fixture();
    // A long heartbeat: the monitor sees the first connect at once (it waits
    // on the waiter), then checks again only after the flaps.
    let config = config(&[("listener", "l")]).with_heartbeat(Duration::from_millis(300));
    let runtime = Runtime::start(&config, &f.registry).unwrap();
    let waiter = Arc::new(ConnectionWaiter::new());
    runtime
        .monitor(Arc::new(WaiterDependency::new("broker", waiter.clone())))
        .unwrap();
    waiter.set_connected();
    eventually(LIMIT, "first connect", || {
        f.log.entries().contains(&"connect:l:1".into())
    });
    for _ in 0..5 {
        waiter.set_disconnected();
        waiter.set_connected();
    }
    eventually(LIMIT, "the last connect", || {
        f.log.entries().contains(&"connect:l:6".into())
    });
    runtime.close().unwrap();
    let events = f.log.dependency_events();
    // Strictly alternating, starting with a connect, and the generations
    // rise.
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.starts_with("connect:"), i % 2 == 0, "{events:?}");
    }
    assert_eq!(events.last().map(String::as_str), Some("connect:l:6"));
}

#[test]
fn a_tcp_dependency_that_goes_away_and_comes_back_is_seen() {
    let f = fixture();
    let config = config(&[("listener", "l")]).with_heartbeat(Duration::from_millis(10));
    let runtime = Runtime::start(&config, &f.registry).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    runtime
        .monitor(Arc::new(TcpDependency::new("tcp", addr)))
        .unwrap();
    let (peer, _) = listener.accept().unwrap();
    eventually(LIMIT, "connect", || {
        f.log.entries().contains(&"connect:l:1".into())
    });
    drop(peer);
    drop(listener);
    eventually(LIMIT, "disconnect", || {
        f.log.entries().contains(&"disconnect:l:1".into())
    });
    let listener = TcpListener::bind(addr).unwrap();
    let _peer = listener.accept().unwrap();
    eventually(LIMIT, "reconnect", || {
        f.log.entries().contains(&"connect:l:2".into())
    });
    runtime.close().unwrap();
}

#[test]
fn a_block_can_drive_dependency_callbacks_itself() {
    let f = fixture();
    let runtime =
        Runtime::start(&config(&[("listener", "l"), ("plain", "p")]), &f.registry).unwrap();
    let event = DependencyEvent::new("memphis", Generation::new(7));
    assert_eq!(event.name(), "memphis");
    assert!(event.dependency().is_none(), "not sent by the monitor");
    let to_listener = runtime.controller("l").unwrap();
    assert!(to_listener.dependency_connected(&event));
    assert!(to_listener.dependency_disconnected(&event));
    // Queued too: the trait's defaults do nothing with them.
    let to_plain = runtime.controller("p").unwrap();
    assert!(to_plain.dependency_connected(&event));
    assert!(to_plain.dependency_disconnected(&event));
    runtime.close().unwrap();
    assert!(!to_listener.dependency_connected(&event), "finished");
    let events = f.log.dependency_events();
    assert_eq!(events, ["connect:l:7", "disconnect:l:7"]);
}

/// The RabbitMQ supervisor as the dependency: a connection the broker
/// closes is a disconnect, and the supervisor's reconnect is a connect with
/// the next generation.
#[cfg(feature = "rabbitmq")]
#[test]
fn a_rabbit_connection_closed_by_the_broker_is_a_disconnect_then_a_connect() {
    use syncmq::block::{Dependency, RabbitDependency, Value};
    let Some(url) = common::broker_url() else {
        return;
    };
    let f = fixture();
    let config = config(&[("listener", "l")]).with_heartbeat(Duration::from_millis(10));
    let runtime = Runtime::start(&config, &f.registry).unwrap();
    let (typed, watcher) = watched();
    let name = common::unique("blk-rabbit");
    let broker = Arc::new(
        RabbitDependency::new(&url)
            .with_name(&name)
            .configure(|c| c.with_backoff(Duration::from_millis(20), Duration::from_millis(200))),
    );
    assert_eq!(
        broker.configuration().get("url").and_then(Value::as_str),
        Some(url.replacen(":guest@", "@", 1).as_str()),
        "the password is not shown"
    );
    assert!(!broker.is_connected(), "lazy: nothing started yet");
    runtime.monitor(broker.clone()).unwrap();
    typed.monitor(broker.clone()).unwrap();
    eventually(LIMIT, "first connect", || {
        f.log.entries().contains(&"connect:l:1".into())
    });
    // The block got the supervisor's own handle, on the generation the
    // event names.
    eventually(LIMIT, "the typed look-up", || {
        watcher
            .seen()
            .contains(&format!("typed:{name}:rabbit:true"))
    });
    typed.close().unwrap();
    assert!(broker.is_connected());
    // rabbitmqctl may list a new connection a moment late.
    eventually(LIMIT, "the broker closed our connection", || {
        common::force_close_connection(&name) > 0
    });
    eventually(LIMIT, "reconnect", || {
        f.log.entries().contains(&"connect:l:2".into())
    });
    let events = f.log.dependency_events();
    assert_eq!(events, ["connect:l:1", "disconnect:l:1", "connect:l:2"]);
    runtime.close().unwrap();
    broker.close().unwrap();
    assert!(!broker.is_connected());
}
