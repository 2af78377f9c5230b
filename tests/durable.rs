//! The durable adapter beyond the conformance suite: restarts, dead
//! letters, redelivery flags, ack timeouts.
#![cfg(feature = "durable")]

mod common;

use std::time::Duration;

use syncmq::channel::OUTPUT_SUBSCRIBER;
use syncmq::{Adapter, ChannelSpec, DurableAdapter, DurableConfig, Error, Mode, ObjectKind};

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
        input.send(i.to_be_bytes().to_vec()).unwrap();
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
    adapter
        .input("jobs")
        .unwrap()
        .send(b"bad".to_vec())
        .unwrap();
    let output = adapter.output("jobs").unwrap();
    output.recv_timeout(PATIENCE).unwrap().nack(false).unwrap();
    let queue = adapter.queue().unwrap();
    let sub = queue.subscribe("jobs", OUTPUT_SUBSCRIBER).unwrap();
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
    let config = DurableConfig::new()
        .with_ack_timeout(Duration::from_millis(50))
        .with_max_deliveries(2);
    let adapter = DurableAdapter::open_with(dir.path(), config).unwrap();
    adapter
        .new_channel(ChannelSpec::new("jobs", Mode::Both))
        .unwrap();
    adapter
        .input("jobs")
        .unwrap()
        .send(b"slow".to_vec())
        .unwrap();
    let output = adapter.output("jobs").unwrap();
    let first = output.recv_timeout(PATIENCE).unwrap();
    // Held past its deadline: delivered again, flagged.
    let second = output.recv_timeout(PATIENCE).unwrap();
    assert!(second.is_redelivered());
    // The second delivery also times out: that was the last one allowed.
    let queue = adapter.queue().unwrap();
    common::eventually(PATIENCE, "the message is dead-lettered", || {
        queue.stats("jobs").unwrap()[0].dead_lettered == 1
    });
    // Settling a delivery that already timed out is refused, not applied
    // to whatever became of the message.
    assert!(matches!(first.ack(), Err(Error::InvalidArgument { .. })));
    assert!(matches!(second.ack(), Err(Error::InvalidArgument { .. })));
    assert_eq!(queue.stats("jobs").unwrap()[0].dead_lettered, 1);
    adapter.close().unwrap();
}

#[test]
fn a_second_adapter_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = DurableAdapter::open(dir.path()).unwrap();
    assert!(matches!(
        DurableAdapter::open(dir.path()),
        Err(Error::Storage { .. })
    ));
}
