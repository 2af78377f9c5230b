//! The outbox's dispatcher and cleanup threads on the memory store: order,
//! retries, dead letters, no loss, no stall, cleanup, wake-up and close.
#![allow(clippy::unwrap_used)]

mod common;
mod outbox_contract;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::eventually;
use syncmq::outbox::{MemoryOutboxStore, OutboxCounts, OutboxStore};
use syncmq::outbox::{Outbox, OutboxConfig, OutboxEvent, OutboxStats};
use syncmq::{Adapter, ChannelSink, ChannelSpec, Error, Message, Mode, SimpleAdapter, Sink};

const LIMIT: Duration = Duration::from_secs(10);

fn msg(body: impl Into<Vec<u8>>) -> Message {
    Message::new(body)
}

/// Fast retries, so failure tests take milliseconds.
fn quick() -> OutboxConfig {
    OutboxConfig::default().with_backoff(Duration::from_millis(1), Duration::from_millis(5))
}

/// What a recording sink saw: the body of every accepted send. Every test
/// gives its rows distinct bodies, so the bodies say which rows went.
type Sent = Arc<Mutex<Vec<Vec<u8>>>>;

/// A sink that records the body of every accepted send.
fn recorder() -> (
    Sent,
    impl FnMut(&Message) -> syncmq::Result<()> + Send + 'static,
) {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let seen = sent.clone();
    (sent, move |m: &Message| {
        seen.lock().unwrap().push(m.body().to_vec());
        Ok(())
    })
}

fn bodies(sent: &Mutex<Vec<Vec<u8>>>) -> Vec<Vec<u8>> {
    sent.lock().unwrap().clone()
}

fn strings(bodies: &[&str]) -> Vec<Vec<u8>> {
    bodies.iter().map(|b| b.as_bytes().to_vec()).collect()
}

#[test]
fn the_memory_store_keeps_the_store_contract() {
    outbox_contract::check_all(&MemoryOutboxStore::new());
}

#[test]
fn rows_are_sent_in_order_and_reported() {
    let (sent, sink) = recorder();
    let outbox = Outbox::start(MemoryOutboxStore::new(), sink).unwrap();
    let added: Vec<u64> = (0..200)
        .map(|i| outbox.add(&msg(format!("m{i}"))).unwrap())
        .collect();
    eventually(LIMIT, "200 rows sent", || sent.lock().unwrap().len() == 200);
    let expected: Vec<Vec<u8>> = (0..200).map(|i| format!("m{i}").into_bytes()).collect();
    assert_eq!(bodies(&sent), expected);
    let reported: Vec<u64> = outbox
        .events()
        .iter()
        .take(200)
        .map(|e| match e {
            OutboxEvent::Dispatched { id } => id,
            other => panic!("unexpected event {other:?}"),
        })
        .collect();
    assert_eq!(reported, added);
    eventually(LIMIT, "every row marked dispatched", || {
        outbox.store().counts().unwrap().dispatched == 200
    });
    outbox.close().unwrap();
}

#[test]
fn a_stream_that_fails_is_retried_without_losing_order() {
    // Fails twice as "down" (not counted), twice as a row error (counted),
    // then works.
    let (sent, mut inner) = recorder();
    let mut calls = 0;
    let sink = move |m: &Message| {
        calls += 1;
        match calls {
            1 | 2 => Err(Error::disconnected_reason("the sink", "connection reset")),
            3 | 4 => Err(Error::codec_reason("encode for the sink", "refused once")),
            _ => inner(m),
        }
    };
    let outbox = Outbox::start_with(MemoryOutboxStore::new(), sink, quick()).unwrap();
    let added: Vec<u64> = (0..20)
        .map(|i| outbox.add(&msg(vec![i])).unwrap())
        .collect();
    eventually(LIMIT, "20 rows sent", || sent.lock().unwrap().len() == 20);
    assert_eq!(bodies(&sent), (0..20).map(|i| vec![i]).collect::<Vec<_>>());
    let failures: Vec<(u64, u32)> = outbox
        .events()
        .try_iter()
        .filter_map(|e| match e {
            OutboxEvent::Failed { id, attempts, .. } => Some((id, attempts)),
            _ => None,
        })
        .collect();
    // Only the row errors count: the first row's attempts end at 2.
    assert_eq!(
        failures,
        vec![(added[0], 0), (added[0], 0), (added[0], 1), (added[0], 2)]
    );
    assert_eq!(outbox.store().counts().unwrap().dead_letters, 0);
    outbox.close().unwrap();
}

#[test]
fn a_poison_row_is_dead_lettered_and_the_rows_behind_it_are_sent() {
    let (sent, mut inner) = recorder();
    let sink = move |m: &Message| {
        if m.body() == b"poison" {
            return Err(Error::codec_reason(
                "encode for the sink",
                "cannot encode for the wire",
            ));
        }
        inner(m)
    };
    let config = quick().with_max_attempts(3);
    let outbox = Outbox::start_with(MemoryOutboxStore::new(), sink, config).unwrap();
    outbox.add(&msg("a")).unwrap();
    let poison = outbox.add(&msg("poison")).unwrap();
    outbox.add(&msg("b")).unwrap();
    outbox.add(&msg("c")).unwrap();
    eventually(LIMIT, "a, b and c sent", || sent.lock().unwrap().len() == 3);
    assert_eq!(bodies(&sent), strings(&["a", "b", "c"]));
    let dead_letters = outbox.store().dead_letters(10).unwrap();
    assert_eq!(dead_letters.len(), 1);
    assert_eq!(dead_letters[0].id, poison);
    assert_eq!(dead_letters[0].attempts, 3);
    assert!(dead_letters[0]
        .last_error
        .as_deref()
        .unwrap()
        .contains("cannot encode"));
    let events: Vec<OutboxEvent> = outbox.events().try_iter().collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, OutboxEvent::DeadLettered { id } if *id == poison)),
        "{events:?}"
    );
    outbox.close().unwrap();
}

#[test]
fn stats_count_rows_deliveries_retries_and_dead_letters() {
    // "bad" fails for good (a row error), "flaky" once.
    let (sent, mut inner) = recorder();
    let mut flaky_failed = false;
    let sink = move |m: &Message| match m.body() {
        b"bad" => Err(Error::codec_reason("encode for the sink", "never")),
        b"flaky" if !flaky_failed => {
            flaky_failed = true;
            Err(Error::codec_reason("encode for the sink", "once"))
        }
        _ => inner(m),
    };
    let config = quick().with_max_attempts(2);
    let outbox = Outbox::start_with(MemoryOutboxStore::new(), sink, config).unwrap();
    assert_eq!(outbox.stats().unwrap(), OutboxStats::default());
    for body in ["a", "bad", "flaky", "b"] {
        outbox.add(&msg(body)).unwrap();
    }
    eventually(LIMIT, "a, flaky and b sent", || {
        sent.lock().unwrap().len() == 3
    });
    eventually(LIMIT, "every row settled", || {
        let stats = outbox.stats().unwrap();
        stats.pending == 0 && stats.delivered == 3
    });
    let stats = outbox.stats().unwrap();
    assert_eq!(
        (
            stats.pending,
            stats.dispatched,
            stats.dead_lettered,
            stats.delivered,
            stats.retries,
            stats.cleaned
        ),
        // bad: two failed attempts, then dead-lettered; flaky: one.
        (0, 3, 1, 3, 3, 0),
        "{stats:?}"
    );
    let json = serde_json::to_string(&stats).unwrap();
    assert_eq!(serde_json::from_str::<OutboxStats>(&json).unwrap(), stats);
    outbox.close().unwrap();
}

#[test]
fn a_panicking_sink_is_a_failed_row_not_a_dead_dispatcher() {
    let (sent, mut inner) = recorder();
    let sink = move |m: &Message| {
        assert!(m.body() != b"boom", "sink bug");
        inner(m)
    };
    let config = quick().with_max_attempts(1);
    let outbox = Outbox::start_with(MemoryOutboxStore::new(), sink, config).unwrap();
    let boom = outbox.add(&msg("boom")).unwrap();
    outbox.add(&msg("fine")).unwrap();
    eventually(LIMIT, "the row after the panic sent", || {
        bodies(&sent) == strings(&["fine"])
    });
    assert_eq!(outbox.store().dead_letters(10).unwrap()[0].id, boom);
    outbox.close().unwrap();
}

#[test]
fn concurrent_adds_lose_nothing_and_keep_id_order() {
    let (sent, sink) = recorder();
    let outbox = Arc::new(
        Outbox::start_with(
            MemoryOutboxStore::new(),
            sink,
            OutboxConfig::default().with_batch_size(7),
        )
        .unwrap(),
    );
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let outbox = outbox.clone();
            std::thread::spawn(move || {
                (0..250)
                    .map(|i| {
                        let body = format!("{w}-{i}");
                        (outbox.add(&msg(body.clone())).unwrap(), body.into_bytes())
                    })
                    .collect::<Vec<(u64, Vec<u8>)>>()
            })
        })
        .collect();
    let mut added: Vec<(u64, Vec<u8>)> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    added.sort_unstable();
    eventually(LIMIT, "1000 rows sent", || {
        sent.lock().unwrap().len() >= 1000
    });
    let in_id_order: Vec<Vec<u8>> = added.into_iter().map(|(_, body)| body).collect();
    assert_eq!(bodies(&sent), in_id_order, "each row once, in id order");
    outbox.close().unwrap();
}

#[test]
fn nobody_reading_events_does_not_stall_dispatch() {
    let (sent, sink) = recorder();
    let config = OutboxConfig::default().with_events_capacity(4);
    let outbox = Outbox::start_with(MemoryOutboxStore::new(), sink, config).unwrap();
    for i in 0..500u32 {
        outbox.add(&msg(i.to_be_bytes().to_vec())).unwrap();
    }
    eventually(LIMIT, "500 rows sent with nobody reading", || {
        sent.lock().unwrap().len() == 500
    });
    eventually(LIMIT, "500 rows marked", || {
        outbox.store().counts().unwrap().dispatched == 500
    });
    // Rows are reported after they are marked: wait for the last report.
    eventually(LIMIT, "496 events dropped", || {
        outbox.dropped_events() == 496
    });
    assert_eq!(outbox.events().len(), 4);
    outbox.close().unwrap();
}

#[test]
fn cleanup_removes_dispatched_rows_and_keeps_pending_ones_and_dead_letters() {
    let (sent, mut inner) = recorder();
    let sink = move |m: &Message| match m.body() {
        b"poison" => Err(Error::codec_reason("encode for the sink", "bad")),
        // "The sink is down" for this row, for ever: never counted.
        b"stuck" => Err(Error::disconnected_reason("the sink", "down for this one")),
        _ => inner(m),
    };
    let config = quick()
        .with_max_attempts(2)
        .with_retention(Duration::ZERO)
        .with_cleanup_interval(Duration::from_millis(5));
    let outbox = Outbox::start_with(MemoryOutboxStore::new(), sink, config).unwrap();
    outbox.add(&msg("a")).unwrap();
    outbox.add(&msg("b")).unwrap();
    outbox.add(&msg("poison")).unwrap();
    eventually(LIMIT, "a and b sent", || sent.lock().unwrap().len() == 2);
    // Now the stuck row: it must survive cleanup as pending.
    let stuck = outbox.add(&msg("stuck")).unwrap();
    eventually(LIMIT, "dispatched rows cleaned, the others kept", || {
        outbox.store().counts().unwrap()
            == OutboxCounts {
                pending: 1,
                dispatched: 0,
                dead_letters: 1,
            }
    });
    assert_eq!(outbox.store().pending(10).unwrap()[0].id, stuck);
    eventually(LIMIT, "a Cleaned event", || {
        outbox
            .events()
            .try_iter()
            .any(|e| matches!(e, OutboxEvent::Cleaned { .. }))
    });
    outbox.close().unwrap();
}

#[test]
fn an_add_wakes_the_dispatcher_without_waiting_for_the_interval() {
    let (sent, sink) = recorder();
    // With an hour between checks, only the wake-up can send these.
    let config = OutboxConfig::default().with_check_interval(Duration::from_secs(3600));
    let outbox = Outbox::start_with(MemoryOutboxStore::new(), sink, config).unwrap();
    for i in 0..3u8 {
        outbox.add(&msg(vec![i])).unwrap();
        eventually(LIMIT, "the row sent on its add", || {
            sent.lock().unwrap().len() == usize::from(i) + 1
        });
    }
    outbox.close().unwrap();
}

#[test]
fn rows_written_straight_into_the_store_are_found_on_the_interval_or_a_notify() {
    let (sent, sink) = recorder();
    let config = OutboxConfig::default().with_check_interval(Duration::from_millis(10));
    let outbox = Outbox::start_with(MemoryOutboxStore::new(), sink, config).unwrap();
    outbox.store().add(&msg("from elsewhere")).unwrap();
    eventually(LIMIT, "the row found by the fallback check", || {
        bodies(&sent) == strings(&["from elsewhere"])
    });
    outbox.close().unwrap();

    let (sent, sink) = recorder();
    let config = OutboxConfig::default().with_check_interval(Duration::from_secs(3600));
    let outbox = Outbox::start_with(MemoryOutboxStore::new(), sink, config).unwrap();
    outbox
        .store()
        .add(&msg("from a caller's own transaction"))
        .unwrap();
    outbox.notify();
    eventually(LIMIT, "the row found after notify", || {
        bodies(&sent) == strings(&["from a caller's own transaction"])
    });
    outbox.close().unwrap();
}

#[test]
fn add_within_tx_commits_both_or_neither() {
    let (sent, sink) = recorder();
    let outbox = Outbox::start(MemoryOutboxStore::new(), sink).unwrap();
    let (_, value) = outbox
        .add_within_tx(&msg("order 1 placed"), |tx| {
            tx.put("order:1", b"placed".to_vec());
            Ok::<_, Error>(41 + 1)
        })
        .unwrap();
    assert_eq!(value, 42);
    assert_eq!(outbox.store().app_value("order:1").unwrap(), b"placed");
    let err = outbox
        .add_within_tx(&msg("order 2 placed"), |tx| -> Result<(), Error> {
            tx.put("order:2", b"placed".to_vec());
            Err(Error::invalid("order", "out of stock"))
        })
        .unwrap_err();
    assert!(err.to_string().contains("out of stock"));
    assert_eq!(outbox.store().app_value("order:2"), None);
    eventually(LIMIT, "the committed row sent", || {
        bodies(&sent) == strings(&["order 1 placed"])
    });
    eventually(LIMIT, "the committed row marked", || {
        outbox.store().counts().unwrap().pending == 0
    });
    outbox.close().unwrap();
}

#[test]
fn close_joins_refuses_adds_and_ends_the_events() {
    let (_sent, sink) = recorder();
    let outbox = Outbox::start(MemoryOutboxStore::new(), sink).unwrap();
    outbox.add(&msg("a")).unwrap();
    outbox.close().unwrap();
    outbox.close().unwrap();
    assert!(matches!(outbox.add(&msg("b")), Err(Error::Closed(_))));
    // The threads are gone, and with them the events' senders.
    let events: Vec<OutboxEvent> = outbox.events().iter().collect();
    assert!(events.len() <= 1);
    assert_eq!(
        outbox.store().counts().unwrap().pending + events.len() as u64,
        1
    );
}

#[test]
fn close_interrupts_a_long_backoff() {
    let sink = |_: &Message| Err(Error::disconnected_reason("the sink", "down"));
    let config = OutboxConfig::default()
        .with_backoff(Duration::from_secs(3600), Duration::from_secs(3600))
        .with_close_timeout(Duration::from_secs(5));
    let outbox = Outbox::start_with(MemoryOutboxStore::new(), sink, config).unwrap();
    outbox.add(&msg("a")).unwrap();
    eventually(LIMIT, "the first failure", || {
        outbox
            .events()
            .try_iter()
            .any(|e| matches!(e, OutboxEvent::Failed { .. }))
    });
    // The dispatcher now sleeps out an hour's backoff; close must wake it.
    outbox.close().unwrap();
    assert_eq!(outbox.store().counts().unwrap().pending, 1);
}

#[test]
fn a_bad_config_is_refused_before_any_thread_starts() {
    let (_sent, sink) = recorder();
    let err = Outbox::start_with(
        MemoryOutboxStore::new(),
        sink,
        OutboxConfig::default().with_batch_size(0),
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { ref name, .. } if name == "batch_size"));
}

#[test]
fn a_channel_sink_feeds_a_simple_adapter_in_order() {
    let adapter = SimpleAdapter::new();
    adapter
        .new_channel(ChannelSpec::new("outbox-orders", Mode::Both).with_buffer(8))
        .unwrap();
    let output = adapter.output("outbox-orders").unwrap();
    let sink = ChannelSink::new(&adapter, "outbox-orders").unwrap();
    let outbox = Outbox::start(MemoryOutboxStore::new(), sink).unwrap();
    for i in 0..100u32 {
        outbox.add(&msg(i.to_be_bytes().to_vec())).unwrap();
    }
    // The buffer is smaller than the rows: the sink waits for room.
    for i in 0..100u32 {
        let delivery = output.recv_timeout(LIMIT).unwrap();
        assert_eq!(delivery.body(), i.to_be_bytes());
        delivery.ack().unwrap();
    }
    eventually(LIMIT, "all marked dispatched", || {
        outbox.store().counts().unwrap().dispatched == 100
    });
    outbox.close().unwrap();
    adapter.close().unwrap();
}

#[test]
fn a_closed_adapter_is_waited_out_not_a_dead_letter() {
    let adapter = SimpleAdapter::new();
    adapter
        .new_channel(ChannelSpec::new("outbox-closed", Mode::Both))
        .unwrap();
    let sink = ChannelSink::new(&adapter, "outbox-closed").unwrap();
    adapter.close().unwrap();
    let config = quick().with_max_attempts(1);
    let outbox = Outbox::start_with(MemoryOutboxStore::new(), sink, config).unwrap();
    let id = outbox.add(&msg("kept")).unwrap();
    eventually(LIMIT, "a failed send", || {
        outbox
            .events()
            .try_iter()
            .filter(|e| matches!(e, OutboxEvent::Failed { .. }))
            .count()
            >= 1
    });
    outbox.close().unwrap();
    let counts = outbox.store().counts().unwrap();
    assert_eq!((counts.pending, counts.dead_letters), (1, 0));
    assert_eq!(outbox.store().pending(1).unwrap()[0].id, id);
}

/// A sink that hands messages on in `send` and confirms them in `flush`,
/// as a publisher with confirms does; its first flush fails.
struct Pipelined {
    handed: Vec<Vec<u8>>,
    confirmed: Arc<Mutex<Vec<Vec<u8>>>>,
    flushes: usize,
}

impl Sink for Pipelined {
    fn send(&mut self, message: &Message) -> syncmq::Result<()> {
        self.handed.push(message.body().to_vec());
        Ok(())
    }

    fn flush(&mut self) -> syncmq::Result<()> {
        self.flushes += 1;
        if self.flushes == 1 {
            self.handed.clear(); // the connection died before the confirms
            return Err(Error::disconnected_reason(
                "the sink",
                "connection lost before the confirms",
            ));
        }
        self.confirmed.lock().unwrap().append(&mut self.handed);
        Ok(())
    }
}

#[test]
fn rows_are_marked_only_after_the_sink_confirms_them() {
    let confirmed = Arc::new(Mutex::new(Vec::new()));
    let sink = Pipelined {
        handed: Vec::new(),
        confirmed: confirmed.clone(),
        flushes: 0,
    };
    let store = MemoryOutboxStore::new();
    let added: Vec<u64> = (0..50u8)
        .map(|i| store.add(&msg(vec![i])).unwrap())
        .collect();
    let outbox = Outbox::start_with(store, sink, quick().with_batch_size(20)).unwrap();
    eventually(LIMIT, "every row confirmed", || {
        confirmed.lock().unwrap().len() == 50
    });
    assert_eq!(
        *confirmed.lock().unwrap(),
        (0..50u8).map(|i| vec![i]).collect::<Vec<_>>(),
        "each once, in order"
    );
    eventually(LIMIT, "every row marked", || {
        outbox.store().counts().unwrap().dispatched == 50
    });
    // Stopped, the dispatcher has reported everything it did.
    outbox.close().unwrap();
    let events: Vec<OutboxEvent> = outbox.events().try_iter().collect();
    let first_batch = added[..20].to_vec();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, OutboxEvent::FlushFailed { ids, .. } if *ids == first_batch)),
        "{events:?}"
    );
    // The unconfirmed rows were not reported dispatched before they were.
    let dispatched: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            OutboxEvent::Dispatched { id } => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(dispatched, added);
}

#[test]
fn a_requeued_dead_letter_is_sent_once_the_sink_takes_it() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let fixed = Arc::new(AtomicBool::new(false));
    let (sent, mut inner) = recorder();
    let sink = {
        let fixed = fixed.clone();
        move |m: &Message| {
            if !fixed.load(Ordering::SeqCst) {
                return Err(Error::codec_reason(
                    "encode for the sink",
                    "the consumer's schema rejects it",
                ));
            }
            inner(m)
        }
    };
    let outbox =
        Outbox::start_with(MemoryOutboxStore::new(), sink, quick().with_max_attempts(1)).unwrap();
    let id = outbox.add(&msg("v2 event")).unwrap();
    eventually(LIMIT, "the row dead-lettered", || {
        outbox.store().counts().unwrap().dead_letters == 1
    });
    fixed.store(true, Ordering::SeqCst); // the consumer was upgraded
    let again = outbox.requeue_dead_letter(id).unwrap();
    assert!(again > id);
    eventually(LIMIT, "the requeued row sent", || {
        bodies(&sent) == strings(&["v2 event"])
    });
    assert!(outbox.store().dead_letters(10).unwrap().is_empty());
    outbox.close().unwrap();
}

/// A sink that stores a batch at each flush, all of it or none: a flush
/// holding a `poison` message fails as that message's own fault, without
/// saying which message it was (as a queue publish of a too-large message
/// does).
struct AllOrNothing {
    batch: Vec<Vec<u8>>,
    stored: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Sink for AllOrNothing {
    fn send(&mut self, message: &Message) -> syncmq::Result<()> {
        self.batch.push(message.body().to_vec());
        Ok(())
    }

    fn flush(&mut self) -> syncmq::Result<()> {
        let batch = std::mem::take(&mut self.batch);
        if batch.iter().any(|b| b == b"poison") {
            return Err(Error::invalid("message", "one of the batch is too large"));
        }
        self.stored.lock().unwrap().extend(batch);
        Ok(())
    }
}

#[test]
fn a_flush_failing_for_one_message_finds_it_and_dead_letters_it_alone() {
    let stored = Arc::new(Mutex::new(Vec::new()));
    let all_or_nothing = AllOrNothing {
        batch: Vec::new(),
        stored: stored.clone(),
    };
    // Written before the start: the first pass holds them all.
    let store = MemoryOutboxStore::new();
    let ids: Vec<u64> = ["a", "b", "poison", "c", "d"]
        .iter()
        .map(|b| store.add(&msg(*b)).unwrap())
        .collect();
    let outbox = Outbox::start_with(store, all_or_nothing, quick().with_max_attempts(2)).unwrap();
    eventually(LIMIT, "four rows dispatched, one dead-lettered", || {
        outbox.store().counts().unwrap()
            == OutboxCounts {
                pending: 0,
                dispatched: 4,
                dead_letters: 1,
            }
    });
    // Each good row stored once and in order; the flush failures that did
    // not know which row was at fault were not counted against any row.
    assert_eq!(*stored.lock().unwrap(), strings(&["a", "b", "c", "d"]));
    let dead_letters = outbox.store().dead_letters(10).unwrap();
    assert_eq!((dead_letters[0].id, dead_letters[0].attempts), (ids[2], 2));
    outbox.close().unwrap();
    let events: Vec<OutboxEvent> = outbox.events().try_iter().collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, OutboxEvent::FlushFailed { ids: failed, .. } if *failed == ids)),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, OutboxEvent::DeadLettered { id } if *id == ids[2])),
        "{events:?}"
    );
}

#[test]
fn events_that_wait_for_their_reader_lose_none_even_through_a_one_slot_channel() {
    use syncmq::outbox::WhenFull;
    let (sent, sink) = recorder();
    let config = quick()
        .with_events_capacity(1)
        .with_events_when_full(WhenFull::Wait);
    let outbox = Outbox::start_with(MemoryOutboxStore::new(), sink, config).unwrap();
    let ids: Vec<u64> = (0..50)
        .map(|i| outbox.add(&msg(format!("row {i}"))).unwrap())
        .collect();
    // The dispatcher waits for this reader: every outcome, in order.
    let mut seen = Vec::new();
    while seen.len() < ids.len() {
        match outbox.events().recv_timeout(LIMIT).unwrap() {
            OutboxEvent::Dispatched { id } => seen.push(id),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen, ids);
    assert_eq!(sent.lock().unwrap().len(), 50);
    assert_eq!(outbox.dropped_events(), 0);
    outbox.close().unwrap();
}

#[test]
fn a_dispatcher_waiting_for_a_reader_still_closes_in_time() {
    use syncmq::outbox::WhenFull;
    let (_sent, sink) = recorder();
    let config = quick()
        .with_events_capacity(1)
        .with_events_when_full(WhenFull::Wait)
        .with_close_timeout(Duration::from_secs(5));
    let outbox = Outbox::start_with(MemoryOutboxStore::new(), sink, config).unwrap();
    for i in 0..3 {
        outbox.add(&msg(format!("row {i}"))).unwrap();
    }
    // Nobody reads: the first event fills the channel, the dispatcher waits
    // with the second.
    eventually(LIMIT, "two rows dispatched", || {
        outbox.stats().unwrap().dispatched >= 2
    });
    outbox.close().unwrap();
    // What the reader never took: one event in the channel, the rest
    // dropped and counted once the close ended the wait.
    assert_eq!(outbox.dropped_events() + outbox.events().len() as u64, 3);
}

#[test]
fn events_nobody_reads_are_dropped_and_counted_by_default() {
    let (_sent, sink) = recorder();
    let config = quick().with_events_capacity(1);
    let outbox = Outbox::start_with(MemoryOutboxStore::new(), sink, config).unwrap();
    for i in 0..20 {
        outbox.add(&msg(format!("row {i}"))).unwrap();
    }
    eventually(LIMIT, "every row dispatched", || {
        outbox.stats().unwrap().dispatched == 20
    });
    assert_eq!(outbox.dropped_events(), 19);
    outbox.close().unwrap();
}

#[test]
fn an_outbox_that_only_cleans_refuses_a_config_with_cleanup_off() {
    match Outbox::start_cleanup(
        MemoryOutboxStore::new(),
        OutboxConfig::new().with_cleanup(false),
    ) {
        Err(Error::InvalidArgument { name, .. }) => assert_eq!(name, "cleanup"),
        other => panic!("{other:?}"),
    }
}

/// The memory store, counting the calls to `counts` (a scan of every row
/// on a real store).
#[cfg(feature = "metrics")]
#[derive(Default)]
struct CountingStore {
    inner: MemoryOutboxStore,
    counted: std::sync::atomic::AtomicUsize,
}

#[cfg(feature = "metrics")]
impl OutboxStore for CountingStore {
    type Tx<'t> = syncmq::outbox::MemoryTx;

    fn add(&self, message: &Message) -> syncmq::Result<u64> {
        self.inner.add(message)
    }
    fn add_within_tx<T, E, F>(&self, message: &Message, f: F) -> Result<(u64, T), E>
    where
        F: for<'t> FnOnce(&mut Self::Tx<'t>) -> Result<T, E>,
        E: From<Error>,
    {
        self.inner.add_within_tx(message, f)
    }
    fn pending(&self, batch: usize) -> syncmq::Result<Vec<syncmq::outbox::OutboxRecord>> {
        self.inner.pending(batch)
    }
    fn mark_dispatched(&self, ids: &[u64]) -> syncmq::Result<()> {
        self.inner.mark_dispatched(ids)
    }
    fn record_failure(&self, id: u64, error: &str) -> syncmq::Result<u32> {
        self.inner.record_failure(id, error)
    }
    fn dead_letter(&self, id: u64) -> syncmq::Result<()> {
        self.inner.dead_letter(id)
    }
    fn remove_dispatched(
        &self,
        older_than: std::time::SystemTime,
        batch: usize,
    ) -> syncmq::Result<u64> {
        self.inner.remove_dispatched(older_than, batch)
    }
    fn requeue_dead_letter(&self, id: u64) -> syncmq::Result<u64> {
        self.inner.requeue_dead_letter(id)
    }
    fn remove_dead_letter(&self, id: u64) -> syncmq::Result<()> {
        self.inner.remove_dead_letter(id)
    }
    fn dead_letters(&self, limit: usize) -> syncmq::Result<Vec<syncmq::outbox::OutboxRecord>> {
        self.inner.dead_letters(limit)
    }
    fn counts(&self) -> syncmq::Result<OutboxCounts> {
        self.counted
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.counts()
    }
}

/// With the metrics on, the dispatcher sets its row gauges from the store's
/// counts; counting once a pass made a dispatch quadratic (a count reads
/// every row), so it counts at most once a second however many passes.
#[cfg(feature = "metrics")]
#[test]
fn the_dispatcher_counts_the_rows_for_its_gauges_at_most_once_a_second() {
    let store = CountingStore::default();
    for i in 0..1000 {
        store.add(&msg(format!("row {i}"))).unwrap();
    }
    let (sent, sink) = recorder();
    let started = std::time::Instant::now();
    let outbox = Outbox::start_with(store, sink, quick().with_batch_size(10)).unwrap();
    eventually(LIMIT, "every row sent", || {
        sent.lock().unwrap().len() == 1000
    });
    outbox.close().unwrap();
    // 100 passes at least; one count, plus one per second it took.
    let seconds = started.elapsed().as_secs();
    let counted = outbox
        .store()
        .counted
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        counted as u64 <= seconds + 1,
        "{counted} counts in {seconds} s"
    );
}
