//! The durable adapter beyond the conformance suite: restarts, dead
//! letters, redelivery flags, ack timeouts.

#![cfg(feature = "durable")]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use syncmq::queue::ManualClock;
use syncmq::{
    Adapter, ChannelSpec, DurableAdapter, DurableConfig, Error, Message, Mode, ObjectKind,
};

const PATIENCE: Duration = Duration::from_secs(20);

#[test]
fn messages_and_channels_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let adapter = DurableAdapter::open(dir.path()).unwrap();
    adapter
        .new_channel(ChannelSpec::new("jobs", Mode::Both))
        .unwrap();
    adapter
        .new_channel(ChannelSpec::new("sink", Mode::Input))
        .unwrap();
    let input = adapter.input("jobs").unwrap();
    for i in 0..100u32 {
        input.send(i.to_be_bytes().to_vec().into()).unwrap();
    }
    // Take some without settling: they come back after the restart.
    let output = adapter.output("jobs").unwrap();
    let held: Vec<_> = (0..3)
        .map(|_| output.recv_timeout(PATIENCE).unwrap())
        .collect();
    adapter.close().unwrap();
    drop(held);
    drop(adapter);

    let adapter = DurableAdapter::open(dir.path()).unwrap();
    assert_eq!(adapter.mode("sink").unwrap(), Mode::Input);
    // Declaring a restored channel again is allowed once per session.
    adapter
        .new_channel(ChannelSpec::new("jobs", Mode::Both))
        .unwrap();
    let err = adapter
        .new_channel(ChannelSpec::new("jobs", Mode::Both))
        .unwrap_err();
    assert!(
        matches!(&err, Error::AlreadyExists { kind: ObjectKind::Channel, name } if name == "jobs"),
        "{err:?}"
    );
    let output = adapter.output("jobs").unwrap();
    for i in 0..100u32 {
        let d = output.recv_timeout(PATIENCE).unwrap();
        assert_eq!(d.body(), i.to_be_bytes(), "order kept across the restart");
        if i < 3 {
            assert!(d.is_redelivered(), "message {i} was delivered before");
        }
        d.ack().unwrap();
    }
    adapter.close().unwrap();
}

#[test]
fn a_nack_without_requeue_is_a_dead_letter_that_can_be_replayed() {
    let adapter = DurableAdapter::memory().unwrap();
    adapter
        .new_channel(ChannelSpec::new("jobs", Mode::Both))
        .unwrap();
    adapter.input("jobs").unwrap().send(b"bad".into()).unwrap();
    let output = adapter.output("jobs").unwrap();
    output.recv_timeout(PATIENCE).unwrap().nack(false).unwrap();
    let queue = adapter.queue().unwrap();
    let sub = queue
        .subscribe("jobs", DurableAdapter::OUTPUT_SUBSCRIBER)
        .unwrap();
    let dead = sub.dead_letters(10).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].message.body(), b"bad");
    assert_eq!(sub.replay_dead_letters().unwrap(), 1);
    let again = output.recv_timeout(PATIENCE).unwrap();
    assert_eq!(again.body(), b"bad");
    again.ack().unwrap();
}

#[test]
fn ack_timeout_and_max_deliveries_apply_to_channels() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new());
    let adapter =
        DurableAdapter::open_with(dir.path(), DurableConfig::new().with_clock(clock.clone()))
            .unwrap();
    let timeout = Duration::from_secs(30);
    adapter
        .new_channel(
            ChannelSpec::new("jobs", Mode::Both)
                .with_ack_timeout(timeout)
                .with_max_deliveries(2),
        )
        .unwrap();
    adapter.input("jobs").unwrap().send(b"slow".into()).unwrap();
    let output = adapter.output("jobs").unwrap();
    let first = output.recv_timeout(PATIENCE).unwrap();
    assert!(!first.is_redelivered());
    // Held past its deadline: delivered again (by the channel's consuming
    // thread, hence a receive with a deadline), flagged.
    clock.advance(timeout + Duration::from_secs(1)).unwrap();
    let second = output.recv_timeout(PATIENCE).unwrap();
    assert!(second.is_redelivered());
    // The second delivery also times out: that was the last one allowed,
    // and it is dead-lettered before `advance` returns.
    let queue = adapter.queue().unwrap();
    clock.advance(timeout + Duration::from_secs(1)).unwrap();
    assert_eq!(queue.stats("jobs").unwrap()[0].dead_lettered, 1);
    // Settling a delivery that already timed out is refused, not applied
    // to whatever became of the message.
    assert!(matches!(first.ack(), Err(Error::InvalidArgument { .. })));
    assert!(matches!(second.ack(), Err(Error::InvalidArgument { .. })));
    assert_eq!(queue.stats("jobs").unwrap()[0].dead_lettered, 1);
    adapter.close().unwrap();
}

#[test]
fn each_topic_setting_is_its_own_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let adapter = DurableAdapter::open(dir.path()).unwrap();
    // Priorities alone: the ack timeout stays off, the limit stays 0.
    adapter
        .new_channel(ChannelSpec::new("ranked", Mode::Both).with_priorities(4))
        .unwrap();
    adapter
        .new_channel(ChannelSpec::new("timed", Mode::Both).with_ack_timeout(Duration::from_secs(7)))
        .unwrap();
    let check = |adapter: &DurableAdapter| {
        let topics = adapter.queue().unwrap().topics();
        let ranked = topics.iter().find(|t| t.name() == "ranked").unwrap();
        assert_eq!(ranked.priorities(), 4);
        assert_eq!(
            ranked.ack_timeout(),
            None,
            "priorities turned the ack timeout on"
        );
        assert_eq!((ranked.dedupe(), ranked.max_deliveries()), (false, 0));
        let timed = topics.iter().find(|t| t.name() == "timed").unwrap();
        assert_eq!(timed.ack_timeout(), Some(Duration::from_secs(7)));
        assert_eq!(timed.priorities(), 1);
    };
    check(&adapter);
    adapter.close().unwrap();
    drop(adapter);
    // Restored from the stored specs, not from the queue's defaults.
    check(&DurableAdapter::open(dir.path()).unwrap());
}

#[test]
fn a_channel_with_dedupe_keeps_the_latest_message_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let adapter = DurableAdapter::open(dir.path()).unwrap();
    let spec = |mode| ChannelSpec::new("prices", mode).with_dedupe(true);
    adapter.new_channel(spec(Mode::Input)).unwrap();
    let input = adapter.input("prices").unwrap();
    for (key, body) in [("tea", "1.00"), ("milk", "0.80"), ("tea", "1.20")] {
        input.send(Message::from(body).with_key(key)).unwrap();
    }
    // Stored before anyone reads, so the second tea replaces the first.
    adapter.close().unwrap();
    drop(adapter);
    let adapter = DurableAdapter::open(dir.path()).unwrap();
    adapter.new_channel(spec(Mode::Output)).unwrap();
    let output = adapter.output("prices").unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        let d = output.recv_timeout(PATIENCE).unwrap();
        got.push((
            d.message().key().unwrap().to_string(),
            String::from_utf8_lossy(d.body()).into_owned(),
        ));
        d.ack().unwrap();
    }
    got.sort();
    assert_eq!(
        got,
        [
            ("milk".to_string(), "0.80".to_string()),
            ("tea".to_string(), "1.20".to_string())
        ]
    );
    assert!(output.recv_timeout(Duration::from_millis(300)).is_err());
    adapter.close().unwrap();
}

#[test]
fn a_second_adapter_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = DurableAdapter::open(dir.path()).unwrap();
    // Named, with the owner's pid (this process).
    match DurableAdapter::open(dir.path()) {
        Err(Error::DirectoryInUse { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
        other => panic!("expected DirectoryInUse, got {other:?}"),
    }
}
