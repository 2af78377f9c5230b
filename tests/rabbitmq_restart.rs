//! The broker application restarted mid-stream (`rabbitmqctl stop_app`, then
//! `start_app`): every publish that was confirmed reaches the consumer.
//!
//! This is a test binary of its own on purpose: cargo runs test binaries one
//! after another, so stopping the broker here never disturbs another test's
//! connections. A guard starts the broker again even when the test fails.

#![cfg(feature = "rabbitmq")]
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, VecDeque};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{broker_url, delete_queues, eventually, unique};
use syncmq::rabbitmq::{
    Connection, ConnectionConfig, Consumer, ConsumerOptions, Declaration, Publisher,
    PublisherConfig,
};
use syncmq::Message;

const PATIENCE: Duration = Duration::from_secs(60);

fn rabbitmqctl(args: &[&str]) {
    let status = Command::new("rabbitmqctl")
        .args(args)
        .status()
        .expect("run rabbitmqctl");
    assert!(status.success(), "rabbitmqctl {args:?} failed: {status}");
}

/// Starts the broker application again when dropped, so that a failing
/// assertion between stop and start never leaves the broker down.
struct RestartGuard;

impl Drop for RestartGuard {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["-q", "start_app"])
            .status();
    }
}

#[test]
fn nothing_confirmed_is_lost_when_the_broker_restarts() {
    let Some(url) = broker_url() else { return };
    let _ = env_logger::builder().is_test(true).try_init();
    let queue = unique("restart-q");
    let conn = Connection::with_config(
        ConnectionConfig::new(&url)
            .with_name(unique("restart"))
            .with_backoff(Duration::from_millis(50), Duration::from_millis(500)),
    )
    .unwrap();
    // Durable queue, persistent messages: both outlive the restart.
    conn.declare(vec![Declaration::queue(&queue)]).unwrap();

    let seen: Arc<Mutex<HashMap<u32, u32>>> = Arc::default();
    let record = seen.clone();
    let consumer = Consumer::start(
        &conn,
        ConsumerOptions::new("", "")
            .with_queue(&queue)
            .with_prefetch(256),
        move |m: &Message| -> Result<(), String> {
            let id = u32::from_be_bytes(m.body().try_into().map_err(|_| "bad body")?);
            *record.lock().unwrap().entry(id).or_insert(0) += 1;
            Ok(())
        },
    )
    .unwrap();
    let publisher = Publisher::new(&conn, PublisherConfig::new()).unwrap();
    let waiter = conn.waiter();
    let first = waiter.wait_connected(PATIENCE).unwrap();

    // Publish in the background, pipelined, until told to stop; every
    // confirmation must come back Ok, across the restart.
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
    let producer = {
        let publisher = publisher.clone();
        let queue = queue.clone();
        std::thread::spawn(move || {
            let mut window = VecDeque::new();
            let mut sent = 0u32;
            while stop_rx.try_recv().is_err() {
                let body = sent.to_be_bytes().to_vec();
                window.push_back(publisher.send("", &queue, Message::new(body)).unwrap());
                sent += 1;
                if window.len() >= 256 {
                    window.pop_front().unwrap().wait().unwrap();
                }
                if sent.is_multiple_of(100) {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            for confirmation in window {
                confirmation.wait().unwrap();
            }
            sent
        })
    };

    eventually(PATIENCE, "publishing before the restart", || {
        publisher.stats().confirmed >= 2_000
    });
    let guard = RestartGuard;
    rabbitmqctl(&["-q", "stop_app"]);
    rabbitmqctl(&["-q", "start_app"]);
    drop(guard);
    eventually(PATIENCE, "a reconnect after the restart", || {
        waiter.current().is_some_and(|g| g > first)
    });
    let after = publisher.stats().confirmed;
    eventually(PATIENCE, "publishing after the restart", || {
        publisher.stats().confirmed >= after + 2_000
    });
    stop_tx.send(()).unwrap();
    let total = producer.join().unwrap();

    eventually(PATIENCE, "every confirmed id consumed", || {
        seen.lock().unwrap().len() == total as usize
    });
    let seen = seen.lock().unwrap();
    assert!((0..total).all(|id| seen.contains_key(&id)));
    let duplicates: u32 = seen.values().map(|n| n - 1).sum();
    let stats = publisher.stats();
    eprintln!(
        "restart: {total} confirmed, all consumed; {duplicates} duplicates; publisher resent {}",
        stats.resent
    );
    drop(seen);
    consumer.close().unwrap();
    publisher.close().unwrap();
    conn.close().unwrap();
    delete_queues(&url, &[&queue]);
}
