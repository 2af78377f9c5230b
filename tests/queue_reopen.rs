//! Reopening the durable queue: a clean close leaves nothing for the next
//! open to replay, so open time does not grow with what was ever written.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use syncmq::queue::{FjallStore, Queue, QueueConfig, TopicConfig};
use syncmq::Message;

fn config() -> QueueConfig {
    QueueConfig::new().with_topic(TopicConfig::new("t", ["s"]))
}

/// Publishes, takes and acks `n` messages on the queue in `dir`.
fn churn(queue: &Queue, n: usize) {
    let sub = queue.subscribe("t", "s").unwrap();
    for chunk in 0..n / 100 {
        let messages: Vec<Message> = (0..100)
            .map(|i| Message::new(format!("{chunk}-{i}").into_bytes()))
            .collect();
        queue.publish("t", &messages).unwrap();
        let got = sub.next_batch(100, None).unwrap();
        let ids: Vec<_> = got.iter().map(|r| r.id).collect();
        assert_eq!(sub.ack(&ids).unwrap(), 100);
    }
}

#[test]
fn a_clean_close_leaves_nothing_to_replay() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Arc::new(FjallStore::open(dir.path()).unwrap());
        let queue = Queue::with_store(store.clone(), config()).unwrap();
        churn(&queue, 2_000);
        // Without the close's checkpoint, all of this is replayed by the
        // next open.
        assert!(store.memtable_bytes() > 0);
        // Right after close fjall's write-buffer counter may still lag
        // its flush workers (they free it after the table is in place), so
        // what counts is what the next open replays.
        queue.close().unwrap();
    }
    let store = FjallStore::open(dir.path()).unwrap();
    assert_eq!(
        store.memtable_bytes(),
        0,
        "the open after a clean close replayed nothing from the journal"
    );
    let queue = Queue::with_store(Arc::new(store), config()).unwrap();
    let sub = queue.subscribe("t", "s").unwrap();
    assert!(sub
        .next_batch(1, Some(std::time::Duration::ZERO))
        .unwrap()
        .is_empty());
    assert_eq!(queue.stats("t").unwrap()[0].depth, 0);
}

#[test]
fn what_was_queued_at_a_clean_close_is_there_after_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let queue = Queue::open(dir.path(), config()).unwrap();
        churn(&queue, 1_000);
        queue
            .publish("t", &[Message::new(b"kept".to_vec())])
            .unwrap();
        queue.close().unwrap();
    }
    let queue = Queue::open(dir.path(), config()).unwrap();
    let sub = queue.subscribe("t", "s").unwrap();
    let got = sub.next_batch(10, Some(std::time::Duration::ZERO)).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message.body(), b"kept");
}

#[test]
fn an_ack_after_the_close_survives_the_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let queue = Queue::open(dir.path(), config()).unwrap();
        queue
            .publish("t", &[Message::new(b"late ack".to_vec())])
            .unwrap();
        let sub = queue.subscribe("t", "s").unwrap();
        let got = sub.next_batch(1, None).unwrap();
        queue.close().unwrap();
        // The handle outlives the close and its ack is written after the
        // close's checkpoint: only the journal has it.
        assert_eq!(sub.ack(&[got[0].id]).unwrap(), 1);
    }
    let queue = Queue::open(dir.path(), config()).unwrap();
    let sub = queue.subscribe("t", "s").unwrap();
    assert!(
        sub.next_batch(1, Some(std::time::Duration::ZERO))
            .unwrap()
            .is_empty(),
        "the ack written after the close was replayed"
    );
}
