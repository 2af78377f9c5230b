//! Random sequences of publishes, takes, acks, nacks, resets and restarts
//! on the memory store, checked against a model: nothing is lost, nothing
//! acked comes back, the counters match, and once everything is acked and
//! purged the store holds no message, entry or side record.
#![cfg(feature = "durable")]
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use syncmq::queue::{EntryId, MemoryStore, Queue, QueueConfig, Space, TopicConfig};
use syncmq::Message;

const SUBS: [&str; 2] = ["a", "b"];

#[derive(Debug, Clone)]
enum Op {
    Publish {
        count: u8,
        priority: u8,
    },
    Take {
        sub: usize,
        max: u8,
    },
    Ack {
        sub: usize,
        pick: usize,
    },
    Nack {
        sub: usize,
        pick: usize,
        requeue: bool,
    },
    Reset {
        sub: usize,
    },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u8..4, 0u8..4).prop_map(|(count, priority)| Op::Publish { count, priority }),
        (0usize..2, 1u8..5).prop_map(|(sub, max)| Op::Take { sub, max }),
        (0usize..2, any::<usize>()).prop_map(|(sub, pick)| Op::Ack { sub, pick }),
        (0usize..2, any::<usize>(), any::<bool>()).prop_map(|(sub, pick, requeue)| Op::Nack {
            sub,
            pick,
            requeue
        }),
        (0usize..2).prop_map(|sub| Op::Reset { sub }),
        Just(Op::Restart),
    ]
}

fn config() -> QueueConfig {
    QueueConfig::new().with_topic(
        TopicConfig::new("t", SUBS)
            .with_priorities(2)
            .with_ack_timeout(Duration::ZERO)
            .with_max_deliveries(3),
    )
}

/// Per subscriber: what it acked, what is in flight (id -> body).
#[derive(Default)]
struct Model {
    acked: BTreeSet<u32>,
    in_flight: BTreeMap<EntryId, u32>,
}

fn id_of(message: &Message) -> u32 {
    u32::from_be_bytes(message.body().try_into().unwrap())
}

fn run(ops: Vec<Op>) {
    let store = MemoryStore::new();
    let open = || Queue::with_store(Arc::new(store.clone()), config()).unwrap();
    let mut queue = open();
    let mut subs: Vec<_> = SUBS
        .iter()
        .map(|s| queue.subscribe("t", s).unwrap())
        .collect();
    let mut models: Vec<Model> = SUBS.iter().map(|_| Model::default()).collect();
    let mut next = 0u32;
    for op in ops {
        match op {
            Op::Publish { count, priority } => {
                let messages: Vec<Message> = (0..count)
                    .map(|i| {
                        Message::new((next + u32::from(i)).to_be_bytes().to_vec())
                            .with_priority(priority)
                    })
                    .collect();
                next += u32::from(count);
                queue.publish("t", &messages).unwrap();
            }
            Op::Take { sub, max } => {
                for r in subs[sub]
                    .next_batch(usize::from(max), Some(Duration::ZERO))
                    .unwrap()
                {
                    let id = id_of(&r.message);
                    assert!(!models[sub].acked.contains(&id), "acked {id} came back");
                    assert!(
                        models[sub].in_flight.insert(r.id, id).is_none(),
                        "taken twice"
                    );
                }
            }
            Op::Ack { sub, pick } => {
                let m = &mut models[sub];
                if let Some(&eid) = m.in_flight.keys().nth(pick % m.in_flight.len().max(1)) {
                    assert_eq!(subs[sub].ack(&[eid]).unwrap(), 1);
                    let id = m.in_flight.remove(&eid).unwrap();
                    m.acked.insert(id);
                }
            }
            Op::Nack { sub, pick, requeue } => {
                let m = &mut models[sub];
                if let Some(&eid) = m.in_flight.keys().nth(pick % m.in_flight.len().max(1)) {
                    assert_eq!(subs[sub].nack(&[eid], requeue).unwrap(), 1);
                    m.in_flight.remove(&eid);
                }
            }
            Op::Reset { sub } => {
                assert_eq!(subs[sub].reset().unwrap(), models[sub].in_flight.len());
                models[sub].in_flight.clear();
            }
            Op::Restart => {
                drop(subs);
                queue.close().unwrap();
                drop(queue);
                queue = open();
                subs = SUBS
                    .iter()
                    .map(|s| queue.subscribe("t", s).unwrap())
                    .collect();
                for m in &mut models {
                    m.in_flight.clear();
                }
            }
        }
        for (i, stats) in queue.stats("t").unwrap().iter().enumerate() {
            let m = &models[i];
            assert_eq!(stats.in_flight, m.in_flight.len() as u64);
            assert_eq!(
                stats.depth + stats.in_flight + stats.dead_lettered + m.acked.len() as u64,
                u64::from(next),
                "subscriber {} lost or invented entries",
                SUBS[i]
            );
        }
    }
    // Everything not acked is still there: taken again or dead-lettered.
    for (i, sub) in subs.iter().enumerate() {
        sub.reset().unwrap();
        let mut seen = models[i].acked.clone();
        loop {
            let batch = sub.next_batch(100, Some(Duration::ZERO)).unwrap();
            if batch.is_empty() {
                break;
            }
            for r in &batch {
                assert!(
                    seen.insert(id_of(&r.message)),
                    "duplicate {}",
                    id_of(&r.message)
                );
            }
            sub.ack(&batch.iter().map(|r| r.id).collect::<Vec<_>>())
                .unwrap();
        }
        for d in sub.dead_letters(usize::MAX).unwrap() {
            assert!(seen.insert(id_of(&d.message)), "dead and alive");
        }
        assert_eq!(
            seen,
            (0..next).collect(),
            "subscriber {} lost messages",
            SUBS[i]
        );
        sub.purge_dead_letters().unwrap();
    }
    for space in [
        Space::Messages,
        Space::Queue,
        Space::DeadLetters,
        Space::Attempts,
        Space::Refs,
    ] {
        assert!(
            store.keys(space).is_empty(),
            "{space:?} not empty at the end"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn the_engine_matches_its_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops);
    }
}
