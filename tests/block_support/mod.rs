//! The test blocks shared by `tests/block.rs` and `tests/block_dependency.rs`:
//! a [`Recorder`] that logs its life cycle and callbacks, and a fixture
//! registry with two kinds of it.
#![allow(dead_code)] // each test binary uses a different part

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use syncmq::block::{
    Bag, Block, BlockConfig, Controller, DependencyEvent, InitContext, Registry, RuntimeConfig,
    Value,
};
use syncmq::Error;

pub const LIMIT: Duration = Duration::from_secs(10);

/// What every test block writes, in order, from whatever thread.
#[derive(Clone, Default)]
pub struct Log(pub Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn push(&self, entry: impl Into<String>) {
        self.0.lock().unwrap().push(entry.into());
    }
    pub fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    /// The `connect:` and `disconnect:` entries, in order.
    pub fn dependency_events(&self) -> Vec<String> {
        self.entries()
            .into_iter()
            .filter(|e| e.contains("connect:"))
            .collect()
    }
    /// The entries starting with `prefix`, without it.
    pub fn with_prefix(&self, prefix: &str) -> Vec<String> {
        self.entries()
            .iter()
            .filter_map(|e| e.strip_prefix(prefix).map(String::from))
            .collect()
    }
}

/// A block that records its life cycle and does what its configuration
/// says: `fail_init`, `panic_init`, `panic_run`, `hang_finish` (until the
/// test drops the release sender). Registered as `listener`, which records
/// every callback too; `plain` is the same without the optional callbacks.
pub struct Recorder {
    resp: String,
    log: Log,
    conf: Mutex<Value>,
    release: Receiver<()>,
    inside: AtomicBool,
    overlaps: Arc<AtomicUsize>,
}

impl Recorder {
    fn flag(&self, key: &str) -> bool {
        self.conf.lock().unwrap().get(key).and_then(Value::as_bool) == Some(true)
    }

    /// Records `entry` from inside a callback, noting any other callback
    /// of this block running at the same time.
    fn callback(&self, entry: String) {
        if self.inside.swap(true, Ordering::SeqCst) {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        let name = std::thread::current().name().unwrap_or("").to_string();
        assert_eq!(name, format!("syncmq-blk-ev-{}", self.resp));
        // Give another delivery every chance to overlap.
        std::thread::yield_now();
        self.log.push(entry);
        self.inside.store(false, Ordering::SeqCst);
    }
}

impl Block for Recorder {
    fn init(&self, init: &InitContext<'_>) -> syncmq::Result<()> {
        *self.conf.lock().unwrap() = init.conf().clone();
        self.log.push(format!("init:{}", self.resp));
        assert!(!self.flag("panic_init"), "init of {} panics", self.resp);
        if self.flag("fail_init") {
            return Err(Error::invalid("port", "is taken"));
        }
        Ok(())
    }

    fn run(&self, ctl: Controller) {
        self.log.push(format!("run:{}", self.resp));
        assert_eq!(ctl.responsibility(), self.resp);
        assert!(!self.flag("panic_run"), "run of {} panics", self.resp);
    }

    fn finish(&self) -> syncmq::Result<()> {
        self.log.push(format!("finish:{}", self.resp));
        if self.flag("hang_finish") {
            let _ = self.release.recv();
        }
        if self.flag("fail_finish") {
            return Err(Error::storage_reason("test store", "disk gone"));
        }
        Ok(())
    }

    fn on_enqueue(&self, _ctl: &Controller, bag: Bag) {
        let seq = bag.get("seq").and_then(Value::as_i64).unwrap_or(-1);
        assert!(bag.get("panic").is_none(), "bad bag {seq}");
        self.callback(format!(
            "bag:{}:{}:{seq}",
            self.resp,
            bag.from().unwrap_or("-")
        ));
    }

    fn on_connect(&self, _ctl: &Controller, event: &DependencyEvent) {
        let generation = event.generation().get();
        self.callback(format!("connect:{}:{generation}", self.resp));
    }

    fn on_disconnect(&self, _ctl: &Controller, event: &DependencyEvent) {
        let generation = event.generation().get();
        self.callback(format!("disconnect:{}:{generation}", self.resp));
    }
}

/// A [`Recorder`] without the optional callbacks: bags and dependency
/// events sent to it reach the trait's defaults.
pub struct Plain(Recorder);

impl Block for Plain {
    fn init(&self, init: &InitContext<'_>) -> syncmq::Result<()> {
        self.0.init(init)
    }

    fn run(&self, ctl: Controller) {
        self.0.run(ctl);
    }

    fn finish(&self) -> syncmq::Result<()> {
        self.0.finish()
    }
}

pub struct Fixture {
    pub log: Log,
    pub registry: Registry,
    pub overlaps: Arc<AtomicUsize>,
    /// Dropping it releases every `hang_finish` block.
    pub release: Option<Sender<()>>,
}

pub fn fixture() -> Fixture {
    let log = Log::default();
    let overlaps = Arc::new(AtomicUsize::new(0));
    let (release_tx, release_rx) = crossbeam_channel::bounded(0);
    let mut registry = Registry::new();
    let recorder = {
        let (log, overlaps) = (log.clone(), overlaps.clone());
        move |resp: &str| Recorder {
            resp: resp.to_string(),
            log: log.clone(),
            conf: Mutex::new(Value::Null),
            release: release_rx.clone(),
            inside: AtomicBool::new(false),
            overlaps: overlaps.clone(),
        }
    };
    let plain = recorder.clone();
    registry
        .register("plain", move |resp| Plain(plain(resp)))
        .unwrap();
    registry.register("listener", recorder).unwrap();
    Fixture {
        log,
        registry,
        overlaps,
        release: Some(release_tx),
    }
}

pub fn flag(key: &str) -> Value {
    Value::Map([(key.to_string(), Value::Bool(true))].into_iter().collect())
}

pub fn config(blocks: &[(&str, &str)]) -> RuntimeConfig {
    blocks.iter().fold(RuntimeConfig::new(), |c, (name, resp)| {
        c.with_block(BlockConfig::new(*name).with_responsibility(*resp))
    })
}
