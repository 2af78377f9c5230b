//! The block runtime: ordered init and finish, bags, callbacks, deadlines.
#![allow(clippy::unwrap_used)]

mod block_support;
mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use block_support::{config, fixture, flag, Log, LIMIT};
use common::eventually;
use syncmq::block::{
    init_blocks, Bag, Block, BlockConfig, Controller, InitContext, Registry, Runtime,
    RuntimeConfig, Value,
};
use syncmq::Error;

#[test]
fn init_runs_in_order_and_finish_in_reverse() {
    let f = fixture();
    let config = config(&[("plain", "a"), ("listener", "b"), ("plain", "c")]);
    let runtime = Runtime::start(&config, &f.registry).unwrap();
    assert_eq!(f.log.with_prefix("init:"), ["a", "b", "c"]);
    eventually(LIMIT, "every block runs", || {
        f.log.with_prefix("run:").len() == 3
    });
    runtime.close_handle().close_runtime();
    runtime.run_until_closed().unwrap();
    assert_eq!(f.log.with_prefix("finish:"), ["c", "b", "a"]);
    // Nothing was initialised after anything ran, nor finished before.
    let entries = f.log.entries();
    let last_init = entries
        .iter()
        .rposition(|e| e.starts_with("init:"))
        .unwrap();
    let first_run = entries.iter().position(|e| e.starts_with("run:")).unwrap();
    assert!(last_init < first_run, "{entries:?}");
}

#[test]
fn close_is_idempotent_and_says_so_to_the_blocks() {
    let f = fixture();
    let runtime = Runtime::start(&config(&[("plain", "a"), ("plain", "b")]), &f.registry).unwrap();
    let ctl = runtime.controller("a").unwrap();
    assert!(!ctl.is_closing());
    // `close` takes `&self`: another thread may close a shared runtime.
    std::thread::scope(|s| {
        s.spawn(|| runtime.close().unwrap());
    });
    assert!(ctl.is_closing());
    assert!(ctl.is_finishing());
    assert_eq!(f.log.with_prefix("finish:"), ["b", "a"]);
    runtime.close().unwrap();
    drop(runtime);
    assert_eq!(f.log.with_prefix("finish:"), ["b", "a"], "finished once");
}

#[test]
fn a_close_handle_or_a_block_asks_and_run_until_closed_closes() {
    let f = fixture();
    let runtime = Runtime::start(&config(&[("listener", "l")]), &f.registry).unwrap();
    let ctl = runtime.controller("l").unwrap();
    ctl.close_runtime();
    assert!(ctl.is_closing(), "asking is seen at once");
    assert!(!ctl.is_finishing(), "the work is run_until_closed's");
    runtime.run_until_closed().unwrap();
    assert!(ctl.is_finishing());
    assert_eq!(f.log.with_prefix("finish:"), ["l"]);
}

#[test]
fn a_failing_init_unwinds_the_blocks_before_it_and_names_the_block() {
    for failure in ["fail_init", "panic_init"] {
        let f = fixture();
        let config = RuntimeConfig::new()
            .with_block(BlockConfig::new("plain").with_responsibility("a"))
            .with_block(BlockConfig::new("listener").with_responsibility("b"))
            .with_block(
                BlockConfig::new("plain")
                    .with_responsibility("c")
                    .with_config(flag(failure)),
            )
            .with_block(BlockConfig::new("plain").with_responsibility("d"));
        let err = Runtime::start(&config, &f.registry).unwrap_err();
        match &err {
            Error::Block {
                block,
                stage,
                error,
            } => {
                assert_eq!(block, "`c` (plain)");
                assert_eq!(*stage, "init");
                match (failure, &**error) {
                    ("fail_init", Error::InvalidArgument { name, .. }) => assert_eq!(name, "port"),
                    ("panic_init", Error::Panicked { message, .. }) => {
                        assert_eq!(message, "init of c panics");
                    }
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("expected Error::Block, got {other:?}"),
        }
        assert!(err.to_string().contains("`c`"), "{err}");
        assert_eq!(
            f.log.entries(),
            ["init:a", "init:b", "init:c", "finish:b", "finish:a"],
            "{failure}"
        );
    }
}

#[test]
fn an_unknown_block_name_fails_before_any_init() {
    let f = fixture();
    let err = Runtime::start(&config(&[("plain", "a"), ("nope", "b")]), &f.registry).unwrap_err();
    match err {
        Error::InvalidArgument { name, reason } => {
            assert_eq!(name, "blocks[1].name");
            assert!(
                reason.contains("`nope`") && reason.contains("listener"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(f.log.entries().is_empty());
}

#[test]
fn chosen_blocks_init_and_finish_per_test_without_threads() {
    let f = fixture();
    let init = init_blocks(&config(&[("plain", "x"), ("plain", "y")]), &f.registry).unwrap();
    assert_eq!(init.responsibilities().collect::<Vec<_>>(), ["x", "y"]);
    assert!(init.block("y").is_some());
    init.finish().unwrap();
    assert_eq!(
        f.log.entries(),
        ["init:x", "init:y", "finish:y", "finish:x"]
    );

    // Dropping finishes too.
    let f = fixture();
    drop(init_blocks(&config(&[("plain", "p"), ("plain", "q")]), &f.registry).unwrap());
    assert_eq!(f.log.with_prefix("finish:"), ["q", "p"]);
}

/// Sends `count` numbered bags to `to` from its run thread.
struct Numbered {
    to: String,
    count: i64,
}

impl Block for Numbered {
    fn init(&self, _: &InitContext<'_>) -> syncmq::Result<()> {
        Ok(())
    }
    fn run(&self, ctl: Controller) {
        let target = ctl.controller(&self.to).expect("target exists");
        for seq in 0..self.count {
            assert!(target.enqueue(Bag::new().with("seq", seq)));
        }
    }
    fn finish(&self) -> syncmq::Result<()> {
        Ok(())
    }
}

#[test]
fn bags_arrive_in_order_with_the_sender_and_never_overlap() {
    let mut f = fixture();
    f.registry
        .register("sender", |resp: &str| Numbered {
            to: "sink".into(),
            count: if resp == "s1" { 300 } else { 200 },
        })
        .unwrap();
    let config = config(&[
        ("listener", "sink"),
        ("sender", "s1"),
        ("sender", "s2"),
        ("sender", "s3"),
    ]);
    let runtime = Runtime::start(&config, &f.registry).unwrap();
    eventually(LIMIT, "700 bags", || {
        f.log.with_prefix("bag:sink:").len() == 700
    });
    runtime.close().unwrap();
    let bags = f.log.with_prefix("bag:sink:");
    for sender in ["s1", "s2", "s3"] {
        let seqs: Vec<i64> = bags
            .iter()
            .filter_map(|b| b.strip_prefix(&format!("{sender}:")))
            .map(|s| s.parse().unwrap())
            .collect();
        let want = if sender == "s1" { 300 } else { 200 };
        assert_eq!(seqs, (0..want).collect::<Vec<_>>(), "{sender}");
    }
    assert_eq!(f.overlaps.load(Ordering::SeqCst), 0);
}

#[test]
fn enqueue_says_when_a_bag_cannot_go() {
    let f = fixture();
    let runtime =
        Runtime::start(&config(&[("plain", "p"), ("listener", "l")]), &f.registry).unwrap();
    let to_plain = runtime.controller("p").unwrap();
    assert_eq!(to_plain.name(), "plain");
    // Queued: the trait's default `on_enqueue` drops it with a warning.
    assert!(to_plain.enqueue(Bag::new()));
    let to_listener = runtime.controller("l").unwrap();
    match to_listener.try_enqueue(Bag::new().with("__from", "forged")) {
        Err(Error::InvalidArgument { name, .. }) => assert_eq!(name, "__from"),
        other => panic!("{other:?}"),
    }
    assert!(runtime.controller("missing").is_none());
    assert!(to_listener.controller("p").is_some());
    // From outside the blocks, `__from` is unset.
    assert!(to_listener.enqueue(Bag::new().with("seq", 1)));
    eventually(LIMIT, "the bag", || f.log.with_prefix("bag:l:") == ["-:1"]);
    runtime.close().unwrap();
    assert!(
        !to_listener.enqueue(Bag::new()),
        "finished blocks take nothing"
    );
    assert!(matches!(
        to_listener.try_enqueue(Bag::new()),
        Err(Error::Closed(_))
    ));
}

/// Sends a bag to itself from `run`, and another from its own callback.
struct Echo {
    log: Log,
}

impl Block for Echo {
    fn init(&self, _: &InitContext<'_>) -> syncmq::Result<()> {
        Ok(())
    }
    fn run(&self, ctl: Controller) {
        assert!(ctl.enqueue(Bag::new().with("hop", 1)));
    }
    fn finish(&self) -> syncmq::Result<()> {
        Ok(())
    }
    fn on_enqueue(&self, ctl: &Controller, bag: Bag) {
        let hop = bag.get("hop").and_then(Value::as_i64).unwrap();
        self.log.push(format!("{}:{hop}", bag.from().unwrap()));
        if hop < 3 {
            assert!(ctl.enqueue(Bag::new().with("hop", hop + 1)));
        }
    }
}

#[test]
fn a_block_may_enqueue_to_itself_even_from_its_callback() {
    let log = Log::default();
    let mut registry = Registry::new();
    let l = log.clone();
    registry
        .register("echo", move |_| Echo { log: l.clone() })
        .unwrap();
    let runtime = Runtime::start(&config(&[("echo", "me")]), &registry).unwrap();
    eventually(LIMIT, "three hops", || log.entries().len() == 3);
    runtime.close().unwrap();
    assert_eq!(log.entries(), ["me:1", "me:2", "me:3"]);
}

#[test]
fn every_bag_queued_before_the_close_is_delivered_before_finish() {
    let f = fixture();
    let runtime = Runtime::start(&config(&[("listener", "l")]), &f.registry).unwrap();
    let ctl = runtime.controller("l").unwrap();
    for seq in 0..500 {
        assert!(ctl.enqueue(Bag::new().with("seq", seq)));
    }
    assert!(ctl.queued() <= 500);
    runtime.close().unwrap();
    assert_eq!(ctl.queued(), 0);
    let entries = f.log.entries();
    assert_eq!(entries.last().map(String::as_str), Some("finish:l"));
    assert_eq!(f.log.with_prefix("bag:l:").len(), 500);
}

#[test]
fn a_block_that_overruns_its_deadline_is_reported_and_the_others_finish() {
    let mut f = fixture();
    let config = RuntimeConfig::new()
        .with_block(BlockConfig::new("plain").with_responsibility("first"))
        .with_block(
            BlockConfig::new("plain")
                .with_responsibility("stuck")
                .with_config(flag("hang_finish")),
        )
        .with_block(
            BlockConfig::new("plain")
                .with_responsibility("broken")
                .with_config(flag("fail_finish")),
        )
        .with_finish_timeout(Duration::from_millis(200));
    let runtime = Runtime::start(&config, &f.registry).unwrap();
    let started = Instant::now();
    let err = runtime.close().unwrap_err();
    assert!(started.elapsed() < LIMIT);
    // The first failure in finishing order: `broken` finishes first.
    match &err {
        Error::Block {
            block,
            stage,
            error,
        } => {
            assert_eq!((block.as_str(), *stage), ("`broken` (plain)", "finish"));
            assert!(matches!(**error, Error::Storage { .. }));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(f.log.with_prefix("finish:"), ["broken", "stuck", "first"]);
    drop(f.release.take()); // lets the stuck block's thread end
}

#[test]
fn a_stuck_finish_is_a_timeout_naming_the_block() {
    let mut f = fixture();
    let config = RuntimeConfig::new()
        .with_block(
            BlockConfig::new("plain")
                .with_responsibility("stuck")
                .with_config(flag("hang_finish")),
        )
        .with_finish_timeout(Duration::from_millis(100));
    let runtime = Runtime::start(&config, &f.registry).unwrap();
    match runtime.close().unwrap_err() {
        Error::Block {
            block,
            stage,
            error,
        } => {
            assert_eq!((block.as_str(), stage), ("`stuck` (plain)", "finish"));
            assert!(matches!(*error, Error::Timeout { .. }), "{error:?}");
        }
        other => panic!("{other:?}"),
    }
    drop(f.release.take());
}

#[test]
fn a_panicking_run_is_reported_at_close() {
    let f = fixture();
    let config = RuntimeConfig::new().with_block(
        BlockConfig::new("plain")
            .with_responsibility("p")
            .with_config(flag("panic_run")),
    );
    let runtime = Runtime::start(&config, &f.registry).unwrap();
    match runtime.close().unwrap_err() {
        Error::Block { stage, error, .. } => {
            assert_eq!(stage, "run");
            assert!(matches!(*error, Error::Panicked { .. }));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(f.log.with_prefix("finish:"), ["p"], "finished anyway");
    assert!(
        runtime.close().is_ok(),
        "a second close reports nothing again"
    );
}

/// Finishes the block `target` early from its run, then asks the runtime
/// to close once it saw that block finish.
struct Finisher {
    log: Log,
}

impl Block for Finisher {
    fn init(&self, _: &InitContext<'_>) -> syncmq::Result<()> {
        Ok(())
    }
    fn run(&self, ctl: Controller) {
        let target = ctl.controller("early").unwrap();
        target.finish();
        let deadline = Instant::now() + LIMIT;
        while !self.log.entries().contains(&"finish:early".to_string()) {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(target.is_finishing());
        ctl.close_runtime();
    }
    fn finish(&self) -> syncmq::Result<()> {
        self.log.push("finish:boss");
        Ok(())
    }
}

#[test]
fn a_block_finished_early_is_finished_once() {
    let mut f = fixture();
    let log = f.log.clone();
    f.registry
        .register("boss", move |_| Finisher { log: log.clone() })
        .unwrap();
    let config = config(&[
        ("listener", "early"),
        ("listener", "late"),
        ("boss", "boss"),
    ]);
    let runtime = Runtime::start(&config, &f.registry).unwrap();
    runtime.run_until_closed().unwrap();
    assert_eq!(f.log.with_prefix("finish:"), ["early", "boss", "late"]);
}

/// Starts a helper thread that waits for the block's finishing signal.
struct WithHelper {
    log: Log,
}

impl Block for WithHelper {
    fn init(&self, _: &InitContext<'_>) -> syncmq::Result<()> {
        Ok(())
    }
    fn run(&self, ctl: Controller) {
        let log = self.log.clone();
        let finishing = ctl.finishing().clone();
        ctl.spawn("waiter", move || {
            let _ = finishing.recv();
            log.push("helper:done");
        })
        .unwrap();
        self.log.push("run:started helper");
    }
    fn finish(&self) -> syncmq::Result<()> {
        Ok(())
    }
}

#[test]
fn helper_threads_are_named_and_joined_when_their_block_finishes() {
    let log = Log::default();
    let mut registry = Registry::new();
    let l = log.clone();
    registry
        .register("h", move |_| WithHelper { log: l.clone() })
        .unwrap();
    let runtime = Runtime::start(&config(&[("h", "h")]), &registry).unwrap();
    eventually(LIMIT, "helper started", || log.entries().len() == 1);
    eventually(LIMIT, "helper named", || {
        common::syncmq_threads()
            .iter()
            .any(|t| t.starts_with("syncmq-blk-h-w"))
    });
    let ctl = runtime.controller("h").unwrap();
    runtime.close().unwrap();
    assert_eq!(log.entries(), ["run:started helper", "helper:done"]);
    assert!(
        ctl.spawn("late", || {}).is_err(),
        "a finished block starts nothing"
    );
}

#[test]
fn block_configurations_reach_init_from_json() {
    let f = fixture();
    let config: RuntimeConfig = serde_json::from_str(
        r#"{"blocks": [
            {"name": "plain", "responsibility": "ok"},
            {"name": "plain", "responsibility": "bad", "config": {"fail_init": true}}
        ], "finish_timeout_ms": 1000}"#,
    )
    .unwrap();
    assert_eq!(config.finish_timeout(), Duration::from_secs(1));
    let err = Runtime::start(&config, &f.registry).unwrap_err();
    assert!(matches!(err, Error::Block { ref block, .. } if block.contains("bad")));
    assert_eq!(f.log.entries(), ["init:ok", "init:bad", "finish:ok"]);
}

#[test]
fn a_panicking_callback_is_logged_and_the_next_event_delivered() {
    let f = fixture();
    let runtime = Runtime::start(&config(&[("listener", "l")]), &f.registry).unwrap();
    let ctl = runtime.controller("l").unwrap();
    assert!(ctl.enqueue(Bag::new().with("seq", 1)));
    assert!(ctl.enqueue(Bag::new().with("seq", 2).with("panic", true)));
    assert!(ctl.enqueue(Bag::new().with("seq", 3)));
    runtime.close().unwrap();
    assert_eq!(f.log.with_prefix("bag:l:"), ["-:1", "-:3"]);
    assert_eq!(f.log.with_prefix("finish:"), ["l"]);
}

/// Records what its `init` saw: its own part, the process's, which block.
struct Configured {
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Block for Configured {
    fn init(&self, init: &InitContext<'_>) -> syncmq::Result<()> {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("-").to_string();
        self.seen.lock().unwrap().push(format!(
            "{}/{}: own {} process {} of {} blocks",
            init.name(),
            init.responsibility(),
            text(init.conf().get("port")),
            text(init.process().get("site")),
            init.runtime().blocks().len(),
        ));
        Ok(())
    }
    fn run(&self, _: Controller) {}
    fn finish(&self) -> syncmq::Result<()> {
        Ok(())
    }
}

#[test]
fn init_sees_its_own_configuration_and_the_process_configuration() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut registry = Registry::new();
    let log = seen.clone();
    registry
        .register("reader", move |_| Configured { seen: log.clone() })
        .unwrap();
    // From a file, as a daemon would load it.
    let config: RuntimeConfig = serde_json::from_str(
        r#"{"process": {"site": "eu-1"},
            "blocks": [{"name": "reader", "responsibility": "r1", "config": {"port": "7001"}},
                       {"name": "reader", "responsibility": "r2"}]}"#,
    )
    .unwrap();
    assert_eq!(
        config.process().get("site").and_then(Value::as_str),
        Some("eu-1")
    );
    init_blocks(&config, &registry).unwrap().finish().unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "reader/r1: own 7001 process eu-1 of 2 blocks",
            "reader/r2: own - process eu-1 of 2 blocks"
        ]
    );
}

/// Implements `on_enqueue` and nothing else optional: no declaration.
struct Taker {
    got: crossbeam_channel::Sender<i64>,
}

impl Block for Taker {
    fn init(&self, _: &InitContext<'_>) -> syncmq::Result<()> {
        Ok(())
    }
    fn run(&self, _: Controller) {}
    fn finish(&self) -> syncmq::Result<()> {
        Ok(())
    }
    fn on_enqueue(&self, _: &Controller, bag: Bag) {
        let _ = self
            .got
            .send(bag.get("n").and_then(Value::as_i64).unwrap_or(-1));
    }
}

#[test]
fn implementing_on_enqueue_is_all_a_block_needs_to_get_bags() {
    let (tx, got) = crossbeam_channel::unbounded();
    let mut registry = Registry::new();
    registry
        .register("taker", move |_| Taker { got: tx.clone() })
        .unwrap();
    let runtime = Runtime::start(
        &RuntimeConfig::new().with_block(BlockConfig::new("taker")),
        &registry,
    )
    .unwrap();
    let ctl = runtime.controller("taker").unwrap();
    assert!(ctl.enqueue(Bag::new().with("n", 1)));
    assert!(ctl.enqueue(Bag::new().with("n", 2)));
    let first = got.recv_timeout(LIMIT).unwrap();
    let second = got.recv_timeout(LIMIT).unwrap();
    assert_eq!((first, second), (1, 2));
    runtime.close().unwrap();
}
