//! One conformance suite for every adapter: send, receive, ack, nack, modes,
//! close. Each adapter is a [`Subject`]; the `conformance!` macro at the end
//! instantiates every case for each subject, so the adapters stay
//! interchangeable. An adapter added to the crate adds one subject here.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::unique;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use syncmq::{Adapter, ChannelSpec, Delivery, Error, Mode, ObjectKind};

/// Long enough for any adapter on a loaded CI machine; a passing test never
/// waits this long.
const PATIENCE: Duration = Duration::from_secs(20);

/// How long a case waits to be sure that something does *not* arrive.
/// Only used where an adapter promises that nothing will come, so a
/// longer wait can only make the test slower, never make it pass wrongly.
const QUIET: Duration = Duration::from_millis(300);

/// An adapter under test.
trait Subject {
    /// An adapter with no channels. Called once per test case.
    fn open(&mut self) -> Box<dyn Adapter>;

    /// An adapter over the same storage as the last `open`, for adapters
    /// whose messages outlive a close (`None` for the others).
    fn reopen(&mut self) -> Option<Box<dyn Adapter>>;

    /// True when a nack with requeue, or a dropped delivery, is delivered
    /// again.
    fn redelivers(&self) -> bool;

    /// False when what the adapter needs is missing here (a broker outside
    /// CI): the cases then skip.
    fn available(&self) -> bool {
        true
    }
}

struct Simple;

impl Subject for Simple {
    fn open(&mut self) -> Box<dyn Adapter> {
        Box::new(syncmq::SimpleAdapter::new())
    }
    fn reopen(&mut self) -> Option<Box<dyn Adapter>> {
        None
    }
    fn redelivers(&self) -> bool {
        false
    }
}

/// The durable adapter, each case in its own directory.
#[cfg(feature = "durable")]
struct Durable {
    dir: tempfile::TempDir,
}

#[cfg(feature = "durable")]
impl Durable {
    fn new() -> Self {
        Durable {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }
}

#[cfg(feature = "durable")]
impl Subject for Durable {
    fn open(&mut self) -> Box<dyn Adapter> {
        Box::new(syncmq::DurableAdapter::open(self.dir.path()).expect("open"))
    }
    fn reopen(&mut self) -> Option<Box<dyn Adapter>> {
        Some(self.open())
    }
    fn redelivers(&self) -> bool {
        true
    }
}

fn recv(output: &Receiver<Delivery>) -> Delivery {
    output
        .recv_timeout(PATIENCE)
        .expect("a delivery within the patience limit")
}

fn assert_nothing_arrives(output: &Receiver<Delivery>) {
    match output.recv_timeout(QUIET) {
        Err(RecvTimeoutError::Timeout) => {}
        Ok(d) => panic!("unexpected delivery {d:?}"),
        Err(RecvTimeoutError::Disconnected) => panic!("output ended"),
    }
}

fn both(
    adapter: &dyn Adapter,
    spec: ChannelSpec,
) -> (crossbeam_channel::Sender<Vec<u8>>, Receiver<Delivery>) {
    let name = spec.name().to_string();
    adapter.new_channel(spec).expect("new_channel");
    (
        adapter.input(&name).expect("input"),
        adapter.output(&name).expect("output"),
    )
}

fn send_and_receive_in_order(subject: &mut dyn Subject) {
    let adapter = subject.open();
    let (input, output) = both(&*adapter, ChannelSpec::new(unique("order"), Mode::Both));
    for i in 0..200u32 {
        input.send(i.to_be_bytes().to_vec()).unwrap();
    }
    for i in 0..200u32 {
        let d = recv(&output);
        assert_eq!(d.body(), i.to_be_bytes(), "message {i} out of order");
        d.ack().unwrap();
    }
    adapter.close().unwrap();
}

fn many_instances_lose_and_duplicate_nothing(subject: &mut dyn Subject) {
    let adapter = subject.open();
    let spec = ChannelSpec::new(unique("fanout"), Mode::Both).with_instances(4);
    let (input, output) = both(&*adapter, spec);
    let total = 2_000u32;
    let sender = std::thread::spawn(move || {
        for i in 0..total {
            input.send(i.to_be_bytes().to_vec()).unwrap();
        }
    });
    let mut seen = HashSet::new();
    for _ in 0..total {
        let d = recv(&output);
        let id = u32::from_be_bytes(d.body().try_into().unwrap());
        assert!(seen.insert(id), "message {id} delivered twice");
        d.ack().unwrap();
    }
    sender.join().unwrap();
    assert_eq!(seen.len(), total as usize);
    assert_nothing_arrives(&output);
    adapter.close().unwrap();
}

fn acks_and_nacks_settle(subject: &mut dyn Subject) {
    let adapter = subject.open();
    let (input, output) = both(&*adapter, ChannelSpec::new(unique("settle"), Mode::Both));
    for body in [b"a", b"b", b"c"] {
        input.send(body.to_vec()).unwrap();
    }
    recv(&output).ack().unwrap();
    recv(&output).ack_multiple().unwrap();
    recv(&output).nack(false).unwrap();
    // Settled without requeue: none of the three comes back.
    assert_nothing_arrives(&output);
    adapter.close().unwrap();
}

fn nack_with_requeue_and_drop(subject: &mut dyn Subject) {
    let adapter = subject.open();
    let (input, output) = both(&*adapter, ChannelSpec::new(unique("requeue"), Mode::Both));
    input.send(b"again".to_vec()).unwrap();
    let first = recv(&output);
    assert!(!first.is_redelivered());
    first.nack(true).unwrap();
    if subject.redelivers() {
        let second = recv(&output);
        assert_eq!(second.body(), b"again");
        assert!(second.is_redelivered());
        drop(second); // unsettled: comes back once more
        let third = recv(&output);
        assert_eq!(third.body(), b"again");
        third.ack().unwrap();
    }
    assert_nothing_arrives(&output);
    adapter.close().unwrap();
}

fn modes_are_enforced(subject: &mut dyn Subject) {
    let adapter = subject.open();
    let (inp, out, both_name) = (unique("in"), unique("out"), unique("both"));
    adapter
        .new_channel(ChannelSpec::new(&inp, Mode::Input))
        .unwrap();
    adapter
        .new_channel(ChannelSpec::new(&out, Mode::Output))
        .unwrap();
    adapter
        .new_channel(ChannelSpec::new(&both_name, Mode::Both))
        .unwrap();
    assert_eq!(adapter.mode(&inp).unwrap(), Mode::Input);
    assert_eq!(adapter.mode(&out).unwrap(), Mode::Output);
    assert_eq!(adapter.mode(&both_name).unwrap(), Mode::Both);

    assert!(adapter.input(&inp).is_ok());
    assert!(adapter.output(&out).is_ok());
    assert!(adapter.input(&both_name).is_ok() && adapter.output(&both_name).is_ok());
    match adapter.output(&inp) {
        Err(Error::WrongMode {
            channel, operation, ..
        }) => {
            assert_eq!((channel.as_str(), operation), (inp.as_str(), "output"));
        }
        other => panic!("expected WrongMode, got {other:?}"),
    }
    match adapter.input(&out) {
        Err(Error::WrongMode {
            channel, operation, ..
        }) => {
            assert_eq!((channel.as_str(), operation), (out.as_str(), "input"));
        }
        other => panic!("expected WrongMode, got {other:?}"),
    }
    adapter.close().unwrap();
}

fn bad_names_and_specs_are_errors(subject: &mut dyn Subject) {
    let adapter = subject.open();
    let name = unique("known");
    let missing = unique("missing");
    adapter
        .new_channel(ChannelSpec::new(&name, Mode::Both))
        .unwrap();
    let exists = adapter
        .new_channel(ChannelSpec::new(&name, Mode::Both))
        .unwrap_err();
    assert!(
        matches!(&exists, Error::AlreadyExists { kind: ObjectKind::Channel, name: n } if *n == name),
        "{exists:?}"
    );
    let is_missing = |e: Error| {
        assert!(
            matches!(&e, Error::NotFound { kind: ObjectKind::Channel, name } if *name == missing),
            "{e:?}"
        );
    };
    is_missing(adapter.input(&missing).unwrap_err());
    is_missing(adapter.output(&missing).unwrap_err());
    is_missing(adapter.mode(&missing).unwrap_err());
    for (spec, field) in [
        (ChannelSpec::new("", Mode::Both), "name"),
        (ChannelSpec::new("bad\nname", Mode::Both), "name"),
        (ChannelSpec::new("x".repeat(256), Mode::Both), "name"),
        (
            ChannelSpec::new(unique("zero"), Mode::Both).with_instances(0),
            "instances",
        ),
        (
            ChannelSpec::new(unique("huge"), Mode::Both).with_buffer(usize::MAX),
            "buffer",
        ),
    ] {
        match adapter.new_channel(spec) {
            Err(Error::InvalidArgument { name, .. }) => assert_eq!(name, field),
            other => panic!("expected InvalidArgument({field}), got {other:?}"),
        }
    }
    adapter.close().unwrap();
}

fn close_hands_on_what_was_sent(subject: &mut dyn Subject) {
    let adapter = subject.open();
    let name = unique("drain");
    let (input, output) = both(
        &*adapter,
        ChannelSpec::new(&name, Mode::Both).with_instances(2),
    );
    let total = 500u32;
    for i in 0..total {
        input.send(i.to_be_bytes().to_vec()).unwrap();
    }
    // Read concurrently, as a consumer thread would while the program shuts
    // down; the output ends once close has handed everything on.
    let reader = std::thread::spawn(move || {
        let mut ids = HashSet::new();
        for d in output.iter() {
            ids.insert(u32::from_be_bytes(d.body().try_into().unwrap()));
            d.ack().unwrap();
        }
        ids
    });
    adapter.close().unwrap();
    let mut ids = reader.join().unwrap();
    if let Some(reopened) = subject.reopen() {
        let output = reopened
            .output(&name)
            .expect("the channel is still there after reopen");
        while ids.len() < total as usize {
            let d = recv(&output);
            ids.insert(u32::from_be_bytes(d.body().try_into().unwrap()));
            d.ack().unwrap();
        }
        reopened.close().unwrap();
    }
    assert_eq!(ids.len(), total as usize, "messages lost at close");
}

fn calls_after_close_fail(subject: &mut dyn Subject) {
    let adapter = subject.open();
    let name = unique("closed");
    let (input, output) = both(&*adapter, ChannelSpec::new(&name, Mode::Both));
    adapter.close().unwrap();
    adapter.close().expect("a second close is harmless");
    assert!(matches!(
        adapter.new_channel(ChannelSpec::new(unique("late"), Mode::Both)),
        Err(Error::Closed(_))
    ));
    assert!(matches!(adapter.input(&name), Err(Error::Closed(_))));
    assert!(matches!(adapter.output(&name), Err(Error::Closed(_))));
    assert!(matches!(adapter.mode(&name), Err(Error::Closed(_))));
    // The bytes of a send after close come back to the caller.
    let err = input.send(b"late".to_vec()).unwrap_err();
    assert_eq!(err.into_inner(), b"late");
    // The output has ended.
    assert!(matches!(
        output.recv_timeout(PATIENCE),
        Err(RecvTimeoutError::Disconnected)
    ));
}

macro_rules! conformance {
    ($module:ident, $subject:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn send_and_receive_in_order() {
                let mut subject = $subject;
                if subject.available() {
                    super::send_and_receive_in_order(&mut subject);
                }
            }
            #[test]
            fn many_instances_lose_and_duplicate_nothing() {
                let mut subject = $subject;
                if subject.available() {
                    super::many_instances_lose_and_duplicate_nothing(&mut subject);
                }
            }
            #[test]
            fn acks_and_nacks_settle() {
                let mut subject = $subject;
                if subject.available() {
                    super::acks_and_nacks_settle(&mut subject);
                }
            }
            #[test]
            fn nack_with_requeue_and_drop() {
                let mut subject = $subject;
                if subject.available() {
                    super::nack_with_requeue_and_drop(&mut subject);
                }
            }
            #[test]
            fn modes_are_enforced() {
                let mut subject = $subject;
                if subject.available() {
                    super::modes_are_enforced(&mut subject);
                }
            }
            #[test]
            fn bad_names_and_specs_are_errors() {
                let mut subject = $subject;
                if subject.available() {
                    super::bad_names_and_specs_are_errors(&mut subject);
                }
            }
            #[test]
            fn close_hands_on_what_was_sent() {
                let mut subject = $subject;
                if subject.available() {
                    super::close_hands_on_what_was_sent(&mut subject);
                }
            }
            #[test]
            fn calls_after_close_fail() {
                let mut subject = $subject;
                if subject.available() {
                    super::calls_after_close_fail(&mut subject);
                }
            }
        }
    };
}

conformance!(simple, Simple);
#[cfg(feature = "durable")]
conformance!(durable, Durable::new());
#[cfg(feature = "rabbitmq")]
conformance!(rabbitmq, rabbit::Rabbit::new());

/// The RabbitMQ subject. Its adapters record the channels they make, so
/// that `reopen` can open them again on a fresh adapter (as a restarted
/// program would) and the test's queues can be deleted at the end.
#[cfg(feature = "rabbitmq")]
mod rabbit {
    use std::sync::{Arc, Mutex};

    use crossbeam_channel::{Receiver, Sender};
    use syncmq::{Adapter, ChannelSpec, Delivery, Mode, RabbitAdapter, Result};

    use super::common::{broker_url, delete_queues};
    use super::Subject;

    pub struct Rabbit {
        url: Option<String>,
        specs: Arc<Mutex<Vec<ChannelSpec>>>,
    }

    impl Rabbit {
        pub fn new() -> Self {
            Rabbit {
                url: broker_url(),
                specs: Arc::default(),
            }
        }

        fn adapter(&self) -> RabbitAdapter {
            RabbitAdapter::connect(self.url.as_deref().expect("a broker")).unwrap()
        }
    }

    struct Recording {
        inner: RabbitAdapter,
        specs: Arc<Mutex<Vec<ChannelSpec>>>,
    }

    impl Adapter for Recording {
        fn new_channel(&self, spec: ChannelSpec) -> Result<()> {
            self.inner.new_channel(spec.clone())?;
            self.specs.lock().unwrap().push(spec);
            Ok(())
        }
        fn input(&self, name: &str) -> Result<Sender<Vec<u8>>> {
            self.inner.input(name)
        }
        fn output(&self, name: &str) -> Result<Receiver<Delivery>> {
            self.inner.output(name)
        }
        fn mode(&self, name: &str) -> Result<Mode> {
            self.inner.mode(name)
        }
        fn close(&self) -> Result<()> {
            self.inner.close()
        }
    }

    impl Subject for Rabbit {
        fn open(&mut self) -> Box<dyn Adapter> {
            Box::new(Recording {
                inner: self.adapter(),
                specs: self.specs.clone(),
            })
        }
        fn reopen(&mut self) -> Option<Box<dyn Adapter>> {
            let adapter = self.adapter();
            for spec in self.specs.lock().unwrap().iter() {
                adapter.new_channel(spec.clone()).unwrap();
            }
            Some(Box::new(adapter))
        }
        fn redelivers(&self) -> bool {
            true
        }
        fn available(&self) -> bool {
            self.url.is_some()
        }
    }

    impl Drop for Rabbit {
        fn drop(&mut self) {
            if let Some(url) = &self.url {
                let specs = self.specs.lock().unwrap_or_else(|e| e.into_inner());
                let names: Vec<&str> = specs.iter().map(|s| s.name()).collect();
                delete_queues(url, &names);
            }
        }
    }
}
