//! Behaviour of the simple adapter beyond the conformance suite: buffer 0,
//! close with readers that do not read (with one instance and with several
//! taking turns), close with no reader, drop.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::unique;
use crossbeam_channel::TrySendError;
use syncmq::{Adapter, ChannelSpec, Error, Mode, SimpleAdapter};

#[test]
fn buffer_zero_is_a_rendezvous() {
    let adapter = SimpleAdapter::new();
    let name = unique("rendezvous");
    adapter
        .new_channel(ChannelSpec::new(&name, Mode::Both).with_buffer(0))
        .unwrap();
    let input = adapter.input(&name).unwrap();
    let output = adapter.output(&name).unwrap();
    // The one forwarding thread takes one message and then waits for a
    // reader; with no buffer anywhere, the second send cannot complete.
    input.send(b"first".into()).unwrap();
    common::eventually(
        Duration::from_secs(10),
        "the forwarder holds the first message",
        || matches!(input.try_send(b"probe".into()), Err(TrySendError::Full(_))),
    );
    assert_eq!(output.recv().unwrap().body(), b"first");
    input.send(b"second".into()).unwrap();
    assert_eq!(output.recv().unwrap().body(), b"second");
}

#[test]
fn close_times_out_when_readers_do_not_read_and_says_how_much_was_left() {
    let timeout = Duration::from_millis(200);
    let adapter = SimpleAdapter::with_close_timeout(timeout);
    let name = unique("stalled");
    adapter
        .new_channel(ChannelSpec::new(&name, Mode::Both).with_buffer(4))
        .unwrap();
    let input = adapter.input(&name).unwrap();
    let output = adapter.output(&name).unwrap(); // held, never read
    for i in 0..8u8 {
        input.send(vec![i].into()).unwrap(); // 4 in the output, 4 in the input
    }
    let started = Instant::now();
    match adapter.close() {
        Err(Error::Timeout { what, after }) => {
            assert_eq!(after, timeout);
            assert!(what.contains(&name), "{what}");
            assert!(what.contains("4 more messages"), "{what}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(started.elapsed() >= timeout);
    // What did reach the output is still there to read, in order.
    let got: Vec<u8> = output.iter().map(|d| d.body()[0]).collect();
    assert_eq!(got, [0, 1, 2, 3]);
}

#[test]
fn close_stops_instances_waiting_for_their_turn_and_counts_what_they_left() {
    let timeout = Duration::from_millis(200);
    let adapter = SimpleAdapter::with_close_timeout(timeout);
    let name = unique("turns");
    adapter
        .new_channel(
            ChannelSpec::new(&name, Mode::Both)
                .with_buffer(4)
                .with_instances(4),
        )
        .unwrap();
    let input = adapter.input(&name).unwrap();
    let output = adapter.output(&name).unwrap(); // held, never read
                                                 // 4 in the output; the instance whose turn it is holds one, the input
                                                 // the rest, and the other instances wait for the turn.
    for i in 0..8u8 {
        input.send(vec![i].into()).unwrap();
    }
    match adapter.close() {
        Err(Error::Timeout { what, .. }) => {
            assert!(what.contains("4 more messages"), "{what}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(output.iter().count(), 4);
    assert!(input.send(b"late".into()).is_err());
}

#[test]
fn close_without_a_reader_does_not_wait() {
    let adapter = SimpleAdapter::with_close_timeout(Duration::from_secs(60));
    let name = unique("unread");
    adapter
        .new_channel(ChannelSpec::new(&name, Mode::Both).with_buffer(2))
        .unwrap();
    let input = adapter.input(&name).unwrap();
    for i in 0..4u8 {
        input.send(vec![i].into()).unwrap();
    }
    // Nobody took an output receiver: nobody can read these, so close
    // drops them (with a warning) instead of waiting a minute.
    let started = Instant::now();
    adapter.close().unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn dropping_the_adapter_closes_it() {
    let adapter = SimpleAdapter::new();
    let name = unique("dropped");
    adapter
        .new_channel(ChannelSpec::new(&name, Mode::Both))
        .unwrap();
    let input = adapter.input(&name).unwrap();
    let output = adapter.output(&name).unwrap();
    input.send(b"kept".into()).unwrap();
    drop(adapter);
    assert_eq!(output.recv().unwrap().body(), b"kept");
    assert!(output.recv().is_err(), "the output ends after the drop");
    assert!(input.send(b"late".into()).is_err());
}

#[test]
fn acks_are_no_ops_that_succeed() {
    let adapter = SimpleAdapter::new();
    let name = unique("acks");
    adapter
        .new_channel(ChannelSpec::new(&name, Mode::Both))
        .unwrap();
    let input = adapter.input(&name).unwrap();
    let output = adapter.output(&name).unwrap();
    for _ in 0..4 {
        input.send(b"x".into()).unwrap();
    }
    output.recv().unwrap().ack().unwrap();
    output.recv().unwrap().ack_multiple().unwrap();
    output.recv().unwrap().nack(true).unwrap();
    output.recv().unwrap().nack(false).unwrap();
    assert!(
        output.try_recv().is_err(),
        "a nack with requeue does not come back here"
    );
}
