//! One conformance suite for every adapter: send, receive, ack, nack, modes,
//! close, and what a message keeps on the way. Each adapter is a
//! [`Subject`]; the `conformance!` macro at the end instantiates every case
//! for each subject, so the adapters stay interchangeable. An adapter added
//! to the crate adds one subject here.
//!
//! What each adapter carries, as these cases check it:
//!
//! | | key | routing key | headers | priority value | priority order | expiry |
//! |---|---|---|---|---|---|---|
//! | simple | kept | kept | kept | kept | no (one FIFO: `with_priorities` is refused) | dropped once passed |
//! | durable | kept | kept | kept | kept | by the topic's levels | dropped once passed |
//! | rabbitmq | kept (`message_id`) | not carried (the queue name routes) | kept | kept (0 to 9) | by `x-max-priority` | dropped once passed |
//!
//! Acks are no-ops on the simple adapter. The topic settings an adapter
//! cannot do are refused by `new_channel` ([`Subject::settings`] lists the
//! ones it takes).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, UNIX_EPOCH};

use common::{eventually, unique};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use syncmq::{Adapter, ChannelSpec, ChannelStats, Delivery, Error, Message, Mode, ObjectKind};

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

    /// An adapter over the same storage as the last `open`, with none of
    /// its channels declared in this session, as a program started after
    /// another one would have (`None` for adapters whose messages do not
    /// outlive a close).
    fn fresh(&mut self) -> Option<Box<dyn Adapter>>;

    /// True when messages outlive a close: `reopen` and `fresh` are `Some`.
    fn keeps_messages(&self) -> bool;

    /// True when a nack with requeue, or a dropped delivery, is delivered
    /// again.
    fn redelivers(&self) -> bool;

    /// True when a message's routing key reaches the output.
    fn carries_routing_key(&self) -> bool;

    /// The topic settings `new_channel` takes beyond the defaults; it
    /// refuses the others.
    fn settings(&self) -> &'static [Setting];

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
    fn fresh(&mut self) -> Option<Box<dyn Adapter>> {
        None
    }
    fn keeps_messages(&self) -> bool {
        false
    }
    fn redelivers(&self) -> bool {
        false
    }
    fn carries_routing_key(&self) -> bool {
        true
    }
    fn settings(&self) -> &'static [Setting] {
        &[]
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
    fn fresh(&mut self) -> Option<Box<dyn Adapter>> {
        Some(self.open())
    }
    fn keeps_messages(&self) -> bool {
        true
    }
    fn redelivers(&self) -> bool {
        true
    }
    fn carries_routing_key(&self) -> bool {
        true
    }
    fn settings(&self) -> &'static [Setting] {
        &Setting::ALL
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
) -> (crossbeam_channel::Sender<Message>, Receiver<Delivery>) {
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
        input.send(i.to_be_bytes().to_vec().into()).unwrap();
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
            input.send(i.to_be_bytes().to_vec().into()).unwrap();
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
        input.send(body.into()).unwrap();
    }
    recv(&output).ack().unwrap();
    recv(&output).ack_multiple().unwrap();
    recv(&output).nack(false).unwrap();
    // Settled without requeue: none of the three comes back.
    assert_nothing_arrives(&output);
    adapter.close().unwrap();
}

fn stats_count_a_round_trip(subject: &mut dyn Subject) {
    let adapter = subject.open();
    let name = unique("stats");
    let (input, output) = both(&*adapter, ChannelSpec::new(name.clone(), Mode::Both));
    assert_eq!(
        adapter.stats().unwrap().channel(&name),
        Some(&ChannelStats {
            name: name.clone(),
            ..ChannelStats::default()
        })
    );
    for body in [b"a", b"b", b"c"] {
        input.send(body.into()).unwrap();
    }
    recv(&output).ack().unwrap();
    recv(&output).nack(false).unwrap();
    recv(&output).ack().unwrap();
    // The simple adapter's acks are no-ops: it counts none.
    let settles = subject.redelivers();
    let expected = ChannelStats {
        name: name.clone(),
        published: 3,
        delivered: 3,
        acked: if settles { 2 } else { 0 },
        nacked: u64::from(settles),
        buffered: 0,
    };
    // The adapter's threads count (a pump once the queue returned, which
    // may be after the consumer took the message; a RabbitMQ ack once the
    // consumer's thread sent it): wait for all of it.
    eventually(PATIENCE, &format!("stats {expected:?}"), || {
        adapter.stats().unwrap().channel(&name) == Some(&expected)
    });
    adapter.close().unwrap();
    assert!(matches!(adapter.stats(), Err(Error::Closed(_))));
}

/// A delivery a consumer has in hand is already counted as delivered: the
/// adapters count before they hand a delivery over, so a reader of the
/// stats never sees fewer deliveries than it received.
fn a_delivery_in_hand_is_counted(subject: &mut dyn Subject) {
    let adapter = subject.open();
    let name = unique("counted");
    let (input, output) = both(&*adapter, ChannelSpec::new(name.clone(), Mode::Both));
    for received in 1..=2000u64 {
        input.send(b"x".into()).unwrap();
        let delivery = recv(&output);
        let delivered = adapter.stats().unwrap().channel(&name).map(|c| c.delivered);
        assert!(
            delivered >= Some(received),
            "{delivered:?} counted with {received} received"
        );
        delivery.ack().unwrap();
    }
    adapter.close().unwrap();
}

fn nack_with_requeue_and_drop(subject: &mut dyn Subject) {
    let adapter = subject.open();
    let (input, output) = both(&*adapter, ChannelSpec::new(unique("requeue"), Mode::Both));
    input.send("again".into()).unwrap();
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
        input.send(i.to_be_bytes().to_vec().into()).unwrap();
    }
    // Read concurrently, as a consumer thread would while the program shuts
    // down; the output ends once close has handed everything on.
    let reader = std::thread::spawn(move || {
        let mut ids = HashSet::new();
        for d in &output {
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
    let err = input.send("late".into()).unwrap_err();
    assert_eq!(err.into_inner().body(), b"late");
    // The output has ended.
    assert!(matches!(
        output.recv_timeout(PATIENCE),
        Err(RecvTimeoutError::Disconnected)
    ));
}

/// A topic setting beyond the defaults, and a spec that asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setting {
    Priorities,
    Dedupe,
    AckTimeout,
    MaxDeliveries,
}

impl Setting {
    const ALL: [Setting; 4] = [
        Setting::Priorities,
        Setting::Dedupe,
        Setting::AckTimeout,
        Setting::MaxDeliveries,
    ];

    /// The field an `InvalidArgument` names.
    fn field(self) -> &'static str {
        match self {
            Setting::Priorities => "priorities",
            Setting::Dedupe => "dedupe",
            Setting::AckTimeout => "ack_timeout",
            Setting::MaxDeliveries => "max_deliveries",
        }
    }

    fn apply(self, spec: ChannelSpec) -> ChannelSpec {
        match self {
            Setting::Priorities => spec.with_priorities(3),
            Setting::Dedupe => spec.with_dedupe(true),
            Setting::AckTimeout => spec.with_ack_timeout(Duration::from_secs(60)),
            Setting::MaxDeliveries => spec.with_max_deliveries(3),
        }
    }
}

/// A message with every field set; the expiry is an hour away, kept to the
/// millisecond.
fn full_message(body: &str, priority: u8) -> Message {
    let hour_from_now = std::time::SystemTime::now() + Duration::from_secs(3600);
    let ms = hour_from_now
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    Message::new(body.as_bytes())
        .with_key(format!("key-{body}"))
        .with_routing_key(format!("route.{body}"))
        .with_header("content-type", "text/plain")
        .with_header("trace", body)
        .with_priority(priority)
        .with_expiry(UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap()))
}

/// Sends `messages` into a channel made from `spec`, then receives `n`
/// deliveries, with the adapter they came from (keep it to settle them).
/// Where messages outlive a close, they are all sent and the
/// sending adapter closed before a fresh one reads them, so that the
/// receiving side sees them all queued at once (which is where priorities
/// and expiry show); elsewhere one adapter does both.
fn send_then_receive(
    subject: &mut dyn Subject,
    spec: impl Fn(Mode) -> ChannelSpec,
    messages: Vec<Message>,
    n: usize,
) -> (Box<dyn Adapter>, Vec<Delivery>) {
    let adapter = subject.open();
    let name = spec(Mode::Both).name().to_string();
    let mode = if subject.keeps_messages() {
        Mode::Input
    } else {
        Mode::Both
    };
    adapter.new_channel(spec(mode)).expect("new_channel");
    let input = adapter.input(&name).expect("input");
    for m in messages {
        input.send(m).unwrap();
    }
    drop(input);
    if mode == Mode::Both {
        let output = adapter.output(&name).expect("output");
        let got: Vec<Delivery> = (0..n).map(|_| recv(&output)).collect();
        assert_nothing_arrives(&output);
        return (adapter, got);
    }
    adapter.close().expect("close hands everything on");
    let reader = subject.fresh().expect("a fresh adapter");
    reader.new_channel(spec(Mode::Output)).expect("new_channel");
    let output = reader.output(&name).expect("output");
    let got: Vec<Delivery> = (0..n).map(|_| recv(&output)).collect();
    assert_nothing_arrives(&output);
    (reader, got)
}

fn every_field_of_a_message_arrives(subject: &mut dyn Subject) {
    let name = unique("fields");
    let carries_routing_key = subject.carries_routing_key();
    let sent = vec![full_message("one", 3), full_message("two", 0)];
    let (adapter, got) = send_then_receive(
        subject,
        |mode| ChannelSpec::new(&name, mode),
        sent.clone(),
        2,
    );
    for (sent, d) in sent.iter().zip(got) {
        let m = d.message();
        assert_eq!(m.body(), sent.body());
        assert_eq!(m.key(), sent.key(), "key of {:?}", sent.body());
        let routing_key = carries_routing_key.then(|| sent.routing_key()).flatten();
        assert_eq!(
            m.routing_key(),
            routing_key,
            "routing key of {:?}",
            sent.body()
        );
        assert_eq!(m.headers(), sent.headers(), "headers of {:?}", sent.body());
        assert_eq!(
            m.priority(),
            sent.priority(),
            "priority of {:?}",
            sent.body()
        );
        assert_eq!(
            m.expires_at(),
            sent.expires_at(),
            "expiry of {:?}",
            sent.body()
        );
        d.ack().unwrap();
    }
    adapter.close().unwrap();
}

fn an_expired_message_is_dropped(subject: &mut dyn Subject) {
    let name = unique("expiry");
    let expired = Message::new(b"stale".to_vec()).with_expiry(UNIX_EPOCH + Duration::from_secs(1));
    let (adapter, got) = send_then_receive(
        subject,
        |mode| ChannelSpec::new(&name, mode),
        vec![expired, Message::from("fresh")],
        1,
    );
    assert_eq!(got[0].body(), b"fresh");
    drop(got);
    adapter.close().unwrap();
}

fn priorities_order_deliveries(subject: &mut dyn Subject) {
    if !subject.settings().contains(&Setting::Priorities) {
        return; // refused: see unsupported_settings_are_refused
    }
    let name = unique("priority");
    // Sent lowest first; 7 is beyond the last of the 3 levels.
    let sent = [("low", 2), ("beyond", 7), ("mid", 1), ("high", 0)];
    let (adapter, got) = send_then_receive(
        subject,
        |mode| ChannelSpec::new(&name, mode).with_priorities(3),
        sent.iter()
            .map(|(body, p)| Message::from(*body).with_priority(*p))
            .collect(),
        sent.len(),
    );
    let order: Vec<(String, u8)> = got
        .into_iter()
        .map(|d| {
            let item = (
                String::from_utf8_lossy(d.body()).into_owned(),
                d.message().priority(),
            );
            d.ack().unwrap();
            item
        })
        .collect();
    let expected: Vec<(String, u8)> = [("high", 0), ("mid", 1), ("low", 2), ("beyond", 7)]
        .iter()
        .map(|(b, p)| ((*b).to_string(), *p))
        .collect();
    assert_eq!(order, expected);
    adapter.close().unwrap();
}

fn unsupported_settings_are_refused(subject: &mut dyn Subject) {
    let adapter = subject.open();
    for setting in Setting::ALL {
        let spec = setting.apply(ChannelSpec::new(unique("setting"), Mode::Both));
        let result = adapter.new_channel(spec);
        if subject.settings().contains(&setting) {
            result.unwrap_or_else(|e| panic!("{setting:?} refused: {e}"));
        } else {
            match result {
                Err(Error::InvalidArgument { name, .. }) => assert_eq!(name, setting.field()),
                other => panic!("{setting:?}: expected InvalidArgument, got {other:?}"),
            }
        }
    }
    adapter.close().unwrap();
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
            fn stats_count_a_round_trip() {
                let mut subject = $subject;
                if subject.available() {
                    super::stats_count_a_round_trip(&mut subject);
                }
            }
            #[test]
            fn a_delivery_in_hand_is_counted() {
                let mut subject = $subject;
                if subject.available() {
                    super::a_delivery_in_hand_is_counted(&mut subject);
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
            #[test]
            fn every_field_of_a_message_arrives() {
                let mut subject = $subject;
                if subject.available() {
                    super::every_field_of_a_message_arrives(&mut subject);
                }
            }
            #[test]
            fn an_expired_message_is_dropped() {
                let mut subject = $subject;
                if subject.available() {
                    super::an_expired_message_is_dropped(&mut subject);
                }
            }
            #[test]
            fn priorities_order_deliveries() {
                let mut subject = $subject;
                if subject.available() {
                    super::priorities_order_deliveries(&mut subject);
                }
            }
            #[test]
            fn unsupported_settings_are_refused() {
                let mut subject = $subject;
                if subject.available() {
                    super::unsupported_settings_are_refused(&mut subject);
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
    use std::sync::{Arc, Mutex, PoisonError};

    use crossbeam_channel::{Receiver, Sender};
    use syncmq::{
        Adapter, AdapterStats, ChannelSpec, Delivery, Message, Mode, RabbitAdapter, Result,
    };

    use super::common::{broker_url, delete_queues};
    use super::{Setting, Subject};

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
        fn input(&self, name: &str) -> Result<Sender<Message>> {
            self.inner.input(name)
        }
        fn output(&self, name: &str) -> Result<Receiver<Delivery>> {
            self.inner.output(name)
        }
        fn mode(&self, name: &str) -> Result<Mode> {
            self.inner.mode(name)
        }
        fn stats(&self) -> Result<AdapterStats> {
            self.inner.stats()
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
        fn fresh(&mut self) -> Option<Box<dyn Adapter>> {
            Some(self.open())
        }
        fn keeps_messages(&self) -> bool {
            true
        }
        fn redelivers(&self) -> bool {
            true
        }
        fn carries_routing_key(&self) -> bool {
            false
        }
        fn settings(&self) -> &'static [Setting] {
            &[Setting::Priorities]
        }
        fn available(&self) -> bool {
            self.url.is_some()
        }
    }

    impl Drop for Rabbit {
        fn drop(&mut self) {
            if let Some(url) = &self.url {
                let specs = self.specs.lock().unwrap_or_else(PoisonError::into_inner);
                let names: Vec<&str> = specs.iter().map(ChannelSpec::name).collect();
                delete_queues(url, &names);
            }
        }
    }
}
