//! Crash tests with a real child process killed by `kill -9`.
//!
//! The child is this test binary run again with `SYNCMQ_CRASH_CHILD` set to
//! a role and a directory: it then runs the `child` test below, which does
//! the role's work and prints a line after each step that returned. The
//! parent kills it (SIGKILL) at a random moment, reopens the queue and
//! checks that every printed step is on disk. Without the variable, `child`
//! does nothing.
#![cfg(feature = "durable")]
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use syncmq::queue::{Durability, Queue, QueueConfig, TopicConfig};
use syncmq::Message;

const ROLE: &str = "SYNCMQ_CRASH_CHILD";
const PATIENCE: Duration = Duration::from_secs(20);

fn config() -> QueueConfig {
    config_with(Durability::Durable)
}

fn config_with(durability: Durability) -> QueueConfig {
    QueueConfig::new()
        .with_durability(durability)
        .with_topic(TopicConfig::new("crash", ["a"]).with_ack_timeout(Duration::ZERO))
}

/// A topic whose messages are dead-lettered after two deliveries.
fn poison_config() -> QueueConfig {
    QueueConfig::new().with_topic(TopicConfig::new("poison", ["a"]).with_max_deliveries(2))
}

/// Not a test of its own: the body of the child process, which the crash
/// tests start with `--ignored` (so a plain run never counts it as a pass).
#[test]
#[ignore = "the child process of the crash tests; they start it themselves"]
fn child() {
    let role = std::env::var(ROLE).expect("run by a crash test");
    let (role, dir) = role.split_once(':').expect("role:dir");
    let durability = match role {
        "buffered" => Durability::Buffered,
        _ => Durability::Durable,
    };
    if role == "poison" {
        // Take the poison message and die holding it (the parent kills us).
        let queue = Queue::open(dir, poison_config()).unwrap();
        let sub = queue.subscribe("poison", "a").unwrap();
        let got = sub
            .recv_timeout(PATIENCE)
            .unwrap()
            .expect("a message in time");
        println!("holding delivery {}", got.deliveries);
        loop {
            std::thread::park();
        }
    }
    let queue = Arc::new(Queue::open(dir, config_with(durability)).unwrap());
    match role {
        "publisher" | "buffered" => {
            // Two publishers, so that kills also land in shared syncs.
            let threads: Vec<_> = (0..2)
                .map(|t| {
                    let queue = queue.clone();
                    std::thread::spawn(move || {
                        for i in 0.. {
                            let id = format!("{t}-{i}");
                            queue
                                .publish("crash", &[Message::new(id.clone().into_bytes())])
                                .unwrap();
                            println!("published {id}");
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
        }
        "pipelined" => {
            // Two producers, each keeping up to WINDOW receipts outstanding
            // and printing an id only once its receipt's wait returned.
            const WINDOW: usize = 16;
            let threads: Vec<_> = (0..2)
                .map(|t| {
                    let queue = queue.clone();
                    std::thread::spawn(move || {
                        let mut outstanding = std::collections::VecDeque::new();
                        for i in 0.. {
                            if outstanding.len() == WINDOW {
                                let (id, receipt): (String, syncmq::Receipt) =
                                    outstanding.pop_front().unwrap();
                                receipt.wait().unwrap();
                                println!("published {id}");
                            }
                            let id = format!("{t}-{i}");
                            let receipt = queue
                                .send("crash", &[Message::new(id.clone().into_bytes())])
                                .unwrap();
                            outstanding.push_back((id, receipt));
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
        }
        "consumer" => {
            let sub = queue.subscribe("crash", "a").unwrap();
            let batch = sub.next_batch(100, Some(PATIENCE)).unwrap();
            // Ack every other one, then hold the rest until killed.
            for r in batch.iter().step_by(2) {
                sub.ack(&[r.id]).unwrap();
                println!("acked {}", String::from_utf8_lossy(r.message.body()));
            }
            println!("holding");
            loop {
                std::thread::park();
            }
        }
        other => panic!("unknown role {other}"),
    }
}

fn spawn_child(role: &str, dir: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, format!("{role}:{}", dir.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// What follows `marker` in a line of the child's output. The test harness
/// may print its own "test child ... " in front of the first line.
fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.find(marker).map(|at| &line[at + marker.len()..])
}

/// A pseudo-random number below `n`, from the clock: the kill moment.
fn random_below(n: usize) -> usize {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as usize;
    nanos.wrapping_mul(2_654_435_761) % n
}

/// Every body the queue holds (subscriber `a`), each taken once.
fn drain(dir: &Path) -> Vec<String> {
    let queue = Queue::open(dir, config()).unwrap();
    let sub = queue.subscribe("crash", "a").unwrap();
    let mut bodies = Vec::new();
    loop {
        let batch = sub.next_batch(1000, Some(Duration::ZERO)).unwrap();
        if batch.is_empty() {
            return bodies;
        }
        for r in &batch {
            bodies.push(String::from_utf8(r.message.body().to_vec()).unwrap());
        }
    }
}

#[test]
fn every_publish_that_returned_survives_kill_9() {
    let _ = kill_publishers("publisher", 10);
}

/// Buffered publishes are in the OS when they return: a crash of the
/// process loses none of them either.
#[test]
fn every_buffered_publish_that_returned_survives_kill_9() {
    let _ = kill_publishers("buffered", 3);
}

/// Pipelined sends: every id printed after its receipt's wait returned is
/// there, and what is there of each producer is a prefix of its sends, in
/// order.
#[test]
fn every_waited_receipt_survives_kill_9() {
    for stored in kill_publishers("pipelined", 5) {
        for t in 0..2 {
            let mine: Vec<usize> = stored
                .iter()
                .filter_map(|s| s.strip_prefix(&format!("{t}-")))
                .map(|i| i.parse().unwrap())
                .collect();
            assert_eq!(
                mine,
                (0..mine.len()).collect::<Vec<_>>(),
                "producer {t}: not a prefix in order"
            );
        }
    }
}

/// Kills `rounds` children playing `role`, checks that every printed id
/// survived, and returns what each round found stored, in queue order.
fn kill_publishers(role: &str, rounds: usize) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for round in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        let mut child = spawn_child(role, dir.path());
        let kill_after = 1 + random_below(200);
        let mut printed = HashSet::new();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        while printed.len() < kill_after {
            let line = lines.next().expect("the child ended early").unwrap();
            if let Some(id) = after(&line, "published ") {
                printed.insert(id.to_string());
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Lines printed after our count but before the kill count too.
        for line in lines.map_while(Result::ok) {
            if let Some(id) = after(&line, "published ") {
                printed.insert(id.to_string());
            }
        }
        let in_order = drain(dir.path());
        let stored: HashSet<String> = in_order.iter().cloned().collect();
        let lost: Vec<_> = printed.difference(&stored).collect();
        assert!(
            lost.is_empty(),
            "round {round}: {} of {} acknowledged publishes lost: {lost:?}",
            lost.len(),
            printed.len()
        );
        found.push(in_order);
    }
    found
}

#[test]
fn a_consumer_killed_mid_batch_gets_its_unacked_messages_back() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    {
        let queue = Queue::open(dir.path(), config()).unwrap();
        let messages: Vec<Message> = ids
            .iter()
            .map(|i| Message::new(i.clone().into_bytes()))
            .collect();
        queue.publish("crash", &messages).unwrap();
    }
    let mut child = spawn_child("consumer", dir.path());
    let mut acked = HashSet::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(id) = after(&line, "acked ") {
            acked.insert(id.to_string());
        }
        if line.ends_with("holding") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(acked.len(), 25);
    let back: HashSet<String> = drain(dir.path()).into_iter().collect();
    for id in &ids {
        // Acks are synced with the next group commit: after a kill an acked
        // message may come back (at-least-once), an unacked one must.
        assert!(
            acked.contains(id) || back.contains(id),
            "unacked {id} was not redelivered"
        );
    }
}

/// Issue 11, item 4: a message whose processing kills the consumer process
/// (kill -9 while holding it) counts a delivery per crash and is
/// dead-lettered at `max_deliveries`, instead of coming back as a first
/// delivery for ever.
#[test]
fn a_poison_message_that_kills_its_consumer_is_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    {
        let queue = Queue::open(dir.path(), poison_config()).unwrap();
        queue
            .publish("poison", &[Message::new(b"poison".to_vec())])
            .unwrap();
    }
    for round in 1..=2 {
        let mut child = spawn_child("poison", dir.path());
        let mut seen = None;
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            if let Some(n) = after(&line.unwrap(), "holding delivery ") {
                seen = Some(n.trim().to_string());
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL, holding the message
        child.wait().unwrap();
        assert_eq!(seen, Some(round.to_string()), "each crash counts");
    }
    let queue = Queue::open(dir.path(), poison_config()).unwrap();
    let sub = queue.subscribe("poison", "a").unwrap();
    assert!(sub.next_batch(1, Some(Duration::ZERO)).unwrap().is_empty());
    let dead = sub.dead_letters(10).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].message.body(), dead[0].deliveries),
        (&b"poison"[..], 2)
    );
}
