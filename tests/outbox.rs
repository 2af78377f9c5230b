//! The outbox's dispatcher and cleanup threads on the memory store: order,
//! retries, dead rows, no loss, no stall, cleanup, wake-up and stop.
#![allow(clippy::unwrap_used)] // a test or example fails loudly on purpose

mod common;
mod outbox_contract;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::eventually;
use syncmq::outbox::{
    ChannelStream, EventStream, MemoryOutboxStore, OutboxCounts, OutboxRecord, OutboxStore,
};
use syncmq::{
    Adapter, ChannelSpec, Error, Message, Mode, Outbox, OutboxConfig, OutboxEvent, SimpleAdapter,
};

const LIMIT: Duration = Duration::from_secs(10);

fn msg(body: impl Into<Vec<u8>>) -> Message {
    Message::new(body)
}

/// Fast retries, so failure tests take milliseconds.
fn quick() -> OutboxConfig {
    OutboxConfig::default().with_backoff(Duration::from_millis(1), Duration::from_millis(5))
}

/// What a recording stream saw: (id, body) of every accepted send.
type Sent = Arc<Mutex<Vec<(u64, Vec<u8>)>>>;

/// A stream that records (id, body) of every accepted send.
fn recorder() -> (
    Sent,
    impl FnMut(&OutboxRecord) -> syncmq::Result<()> + Send + 'static,
) {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let sink = sent.clone();
    (sent, move |r: &OutboxRecord| {
        sink.lock().unwrap().push((r.id, r.message.body().to_vec()));
        Ok(())
    })
}

fn ids(sent: &Mutex<Vec<(u64, Vec<u8>)>>) -> Vec<u64> {
    sent.lock().unwrap().iter().map(|(id, _)| *id).collect()
}

#[test]
fn the_memory_store_keeps_the_store_contract() {
    outbox_contract::check_all(&MemoryOutboxStore::new());
}

#[test]
fn rows_are_sent_in_order_and_reported() {
    let (sent, stream) = recorder();
    let outbox = Outbox::start(MemoryOutboxStore::new(), stream).unwrap();
    let added: Vec<u64> = (0..200)
        .map(|i| outbox.add(&msg(format!("m{i}"))).unwrap())
        .collect();
    eventually(LIMIT, "200 rows sent", || sent.lock().unwrap().len() == 200);
    assert_eq!(ids(&sent), added);
    let bodies: Vec<Vec<u8>> = sent
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b)| b.clone())
        .collect();
    let expected: Vec<Vec<u8>> = (0..200).map(|i| format!("m{i}").into_bytes()).collect();
    assert_eq!(bodies, expected);
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
    outbox.stop().unwrap();
}

#[test]
fn a_stream_that_fails_is_retried_without_losing_order() {
    // Fails twice as "down" (not counted), twice as a row error (counted),
    // then works.
    let (sent, mut inner) = recorder();
    let mut calls = 0;
    let stream = move |r: &OutboxRecord| {
        calls += 1;
        match calls {
            1 | 2 => Err(Error::disconnected_reason("the stream", "connection reset")),
            3 | 4 => Err(Error::codec_reason("encode for the stream", "refused once")),
            _ => inner(r),
        }
    };
    let outbox = Outbox::start_with(MemoryOutboxStore::new(), stream, quick()).unwrap();
    let added: Vec<u64> = (0..20)
        .map(|i| outbox.add(&msg(vec![i])).unwrap())
        .collect();
    eventually(LIMIT, "20 rows sent", || sent.lock().unwrap().len() == 20);
    assert_eq!(ids(&sent), added);
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
    assert_eq!(outbox.store().counts().unwrap().dead, 0);
    outbox.stop().unwrap();
}

#[test]
fn a_poison_row_goes_dead_and_the_rows_behind_it_are_sent() {
    let (sent, mut inner) = recorder();
    let stream = move |r: &OutboxRecord| {
        if r.message.body() == b"poison" {
            return Err(Error::codec_reason(
                "encode for the stream",
                "cannot encode for the wire",
            ));
        }
        inner(r)
    };
    let config = quick().with_max_attempts(3);
    let outbox = Outbox::start_with(MemoryOutboxStore::new(), stream, config).unwrap();
    let a = outbox.add(&msg("a")).unwrap();
    let poison = outbox.add(&msg("poison")).unwrap();
    let b = outbox.add(&msg("b")).unwrap();
    let c = outbox.add(&msg("c")).unwrap();
    eventually(LIMIT, "a, b and c sent", || sent.lock().unwrap().len() == 3);
    assert_eq!(ids(&sent), vec![a, b, c]);
    let dead = outbox.store().dead(10).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, poison);
    assert_eq!(dead[0].attempts, 3);
    assert!(dead[0]
        .last_error
        .as_deref()
        .unwrap()
        .contains("cannot encode"));
    let events: Vec<OutboxEvent> = outbox.events().try_iter().collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, OutboxEvent::Dead { id } if *id == poison)),
        "{events:?}"
    );
    outbox.stop().unwrap();
}

#[test]
fn a_panicking_stream_is_a_failed_row_not_a_dead_dispatcher() {
    let (sent, mut inner) = recorder();
    let stream = move |r: &OutboxRecord| {
        if r.message.body() == b"boom" {
            panic!("stream bug");
        }
        inner(r)
    };
    let config = quick().with_max_attempts(1);
    let outbox = Outbox::start_with(MemoryOutboxStore::new(), stream, config).unwrap();
    let boom = outbox.add(&msg("boom")).unwrap();
    let fine = outbox.add(&msg("fine")).unwrap();
    eventually(LIMIT, "the row after the panic sent", || {
        ids(&sent) == vec![fine]
    });
    assert_eq!(outbox.store().dead(10).unwrap()[0].id, boom);
    outbox.stop().unwrap();
}

#[test]
fn concurrent_adds_lose_nothing_and_keep_id_order() {
    let (sent, stream) = recorder();
    let outbox = Arc::new(
        Outbox::start_with(
            MemoryOutboxStore::new(),
            stream,
            OutboxConfig::default().with_batch_size(7),
        )
        .unwrap(),
    );
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let outbox = outbox.clone();
            std::thread::spawn(move || {
                (0..250)
                    .map(|i| outbox.add(&msg(format!("{w}-{i}"))).unwrap())
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut added: Vec<u64> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    added.sort_unstable();
    eventually(LIMIT, "1000 rows sent", || {
        sent.lock().unwrap().len() >= 1000
    });
    assert_eq!(ids(&sent), added, "each row once, in id order");
    outbox.stop().unwrap();
}

#[test]
fn nobody_reading_events_does_not_stall_dispatch() {
    let (sent, stream) = recorder();
    let config = OutboxConfig::default().with_events_capacity(4);
    let outbox = Outbox::start_with(MemoryOutboxStore::new(), stream, config).unwrap();
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
    outbox.stop().unwrap();
}

#[test]
fn cleanup_removes_dispatched_rows_and_keeps_pending_and_dead_ones() {
    let (sent, mut inner) = recorder();
    let stream = move |r: &OutboxRecord| match r.message.body() {
        b"poison" => Err(Error::codec_reason("encode for the stream", "bad")),
        // "The stream is down" for this row, for ever: never counted.
        b"stuck" => Err(Error::disconnected_reason(
            "the stream",
            "down for this one",
        )),
        _ => inner(r),
    };
    let config = quick()
        .with_max_attempts(2)
        .with_retention(Duration::ZERO)
        .with_cleanup_interval(Duration::from_millis(5));
    let outbox = Outbox::start_with(MemoryOutboxStore::new(), stream, config).unwrap();
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
                dead: 1,
            }
    });
    assert_eq!(outbox.store().pending(10).unwrap()[0].id, stuck);
    eventually(LIMIT, "a Cleaned event", || {
        outbox
            .events()
            .try_iter()
            .any(|e| matches!(e, OutboxEvent::Cleaned { .. }))
    });
    outbox.stop().unwrap();
}

#[test]
fn an_add_wakes_the_dispatcher_without_waiting_for_the_interval() {
    let (sent, stream) = recorder();
    // With an hour between checks, only the wake-up can send these.
    let config = OutboxConfig::default().with_check_interval(Duration::from_secs(3600));
    let outbox = Outbox::start_with(MemoryOutboxStore::new(), stream, config).unwrap();
    for i in 0..3u8 {
        outbox.add(&msg(vec![i])).unwrap();
        eventually(LIMIT, "the row sent on its add", || {
            sent.lock().unwrap().len() == usize::from(i) + 1
        });
    }
    outbox.stop().unwrap();
}

#[test]
fn rows_written_straight_into_the_store_are_found_on_the_interval_or_a_notify() {
    let (sent, stream) = recorder();
    let config = OutboxConfig::default().with_check_interval(Duration::from_millis(10));
    let outbox = Outbox::start_with(MemoryOutboxStore::new(), stream, config).unwrap();
    let id = outbox.store().add(&msg("from elsewhere")).unwrap();
    eventually(LIMIT, "the row found by the fallback check", || {
        ids(&sent) == vec![id]
    });
    outbox.stop().unwrap();

    let (sent, stream) = recorder();
    let config = OutboxConfig::default().with_check_interval(Duration::from_secs(3600));
    let outbox = Outbox::start_with(MemoryOutboxStore::new(), stream, config).unwrap();
    let id = outbox
        .store()
        .add(&msg("from a caller's own transaction"))
        .unwrap();
    outbox.notify();
    eventually(LIMIT, "the row found after notify", || {
        ids(&sent) == vec![id]
    });
    outbox.stop().unwrap();
}

#[test]
fn add_within_tx_commits_both_or_neither() {
    let (sent, stream) = recorder();
    let outbox = Outbox::start(MemoryOutboxStore::new(), stream).unwrap();
    let (id, value) = outbox
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
    eventually(LIMIT, "the committed row sent", || ids(&sent) == vec![id]);
    eventually(LIMIT, "the committed row marked", || {
        outbox.store().counts().unwrap().pending == 0
    });
    outbox.stop().unwrap();
}

#[test]
fn stop_joins_refuses_adds_and_ends_the_events() {
    let (_sent, stream) = recorder();
    let outbox = Outbox::start(MemoryOutboxStore::new(), stream).unwrap();
    outbox.add(&msg("a")).unwrap();
    outbox.stop().unwrap();
    outbox.stop().unwrap();
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
fn stop_interrupts_a_long_backoff() {
    let stream = |_: &OutboxRecord| Err(Error::disconnected_reason("the stream", "down"));
    let config = OutboxConfig::default()
        .with_backoff(Duration::from_secs(3600), Duration::from_secs(3600))
        .with_stop_timeout(Duration::from_secs(5));
    let outbox = Outbox::start_with(MemoryOutboxStore::new(), stream, config).unwrap();
    outbox.add(&msg("a")).unwrap();
    eventually(LIMIT, "the first failure", || {
        outbox
            .events()
            .try_iter()
            .any(|e| matches!(e, OutboxEvent::Failed { .. }))
    });
    // The dispatcher now sleeps out an hour's backoff; stop must wake it.
    outbox.stop().unwrap();
    assert_eq!(outbox.store().counts().unwrap().pending, 1);
}

#[test]
fn a_bad_config_is_refused_before_any_thread_starts() {
    let (_sent, stream) = recorder();
    let err = Outbox::start_with(
        MemoryOutboxStore::new(),
        stream,
        OutboxConfig::default().with_batch_size(0),
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { ref name, .. } if name == "batch_size"));
}

#[test]
fn a_channel_stream_feeds_a_simple_adapter_in_order() {
    let adapter = SimpleAdapter::new();
    adapter
        .new_channel(ChannelSpec::new("outbox-orders", Mode::Both).with_buffer(8))
        .unwrap();
    let output = adapter.output("outbox-orders").unwrap();
    let stream = ChannelStream::new(&adapter, "outbox-orders").unwrap();
    let outbox = Outbox::start(MemoryOutboxStore::new(), stream).unwrap();
    for i in 0..100u32 {
        outbox.add(&msg(i.to_be_bytes().to_vec())).unwrap();
    }
    // The buffer is smaller than the rows: the stream waits for room.
    for i in 0..100u32 {
        let delivery = output.recv_timeout(LIMIT).unwrap();
        assert_eq!(delivery.body(), i.to_be_bytes());
        delivery.ack().unwrap();
    }
    eventually(LIMIT, "all marked dispatched", || {
        outbox.store().counts().unwrap().dispatched == 100
    });
    outbox.stop().unwrap();
    adapter.close().unwrap();
}

#[test]
fn a_closed_adapter_is_waited_out_not_a_dead_row() {
    let adapter = SimpleAdapter::new();
    adapter
        .new_channel(ChannelSpec::new("outbox-closed", Mode::Both))
        .unwrap();
    let stream = ChannelStream::new(&adapter, "outbox-closed").unwrap();
    adapter.close().unwrap();
    let config = quick().with_max_attempts(1);
    let outbox = Outbox::start_with(MemoryOutboxStore::new(), stream, config).unwrap();
    let id = outbox.add(&msg("kept")).unwrap();
    eventually(LIMIT, "a failed send", || {
        outbox
            .events()
            .try_iter()
            .filter(|e| matches!(e, OutboxEvent::Failed { .. }))
            .count()
            >= 1
    });
    outbox.stop().unwrap();
    let counts = outbox.store().counts().unwrap();
    assert_eq!((counts.pending, counts.dead), (1, 0));
    assert_eq!(outbox.store().pending(1).unwrap()[0].id, id);
}

/// A stream that hands messages on in `send` and confirms them in `flush`,
/// as a publisher with confirms does; its first flush fails.
struct Pipelined {
    handed: Vec<u64>,
    confirmed: Arc<Mutex<Vec<u64>>>,
    flushes: usize,
}

impl EventStream for Pipelined {
    fn send(&mut self, record: &OutboxRecord) -> syncmq::Result<()> {
        self.handed.push(record.id);
        Ok(())
    }

    fn flush(&mut self) -> syncmq::Result<()> {
        self.flushes += 1;
        if self.flushes == 1 {
            self.handed.clear(); // the connection died before the confirms
            return Err(Error::disconnected_reason(
                "the stream",
                "connection lost before the confirms",
            ));
        }
        self.confirmed.lock().unwrap().append(&mut self.handed);
        Ok(())
    }
}

#[test]
fn rows_are_marked_only_after_the_stream_confirms_them() {
    let confirmed = Arc::new(Mutex::new(Vec::new()));
    let stream = Pipelined {
        handed: Vec::new(),
        confirmed: confirmed.clone(),
        flushes: 0,
    };
    let store = MemoryOutboxStore::new();
    let added: Vec<u64> = (0..50u8)
        .map(|i| store.add(&msg(vec![i])).unwrap())
        .collect();
    let outbox = Outbox::start_with(store, stream, quick().with_batch_size(20)).unwrap();
    eventually(LIMIT, "every row confirmed", || {
        confirmed.lock().unwrap().len() == 50
    });
    assert_eq!(*confirmed.lock().unwrap(), added, "each once, in order");
    eventually(LIMIT, "every row marked", || {
        outbox.store().counts().unwrap().dispatched == 50
    });
    // Stopped, the dispatcher has reported everything it did.
    outbox.stop().unwrap();
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
fn a_requeued_dead_row_is_sent_once_the_stream_takes_it() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let fixed = Arc::new(AtomicBool::new(false));
    let (sent, mut inner) = recorder();
    let stream = {
        let fixed = fixed.clone();
        move |r: &OutboxRecord| {
            if !fixed.load(Ordering::SeqCst) {
                return Err(Error::codec_reason(
                    "encode for the stream",
                    "the consumer's schema rejects it",
                ));
            }
            inner(r)
        }
    };
    let outbox = Outbox::start_with(
        MemoryOutboxStore::new(),
        stream,
        quick().with_max_attempts(1),
    )
    .unwrap();
    let id = outbox.add(&msg("v2 event")).unwrap();
    eventually(LIMIT, "the row dead", || {
        outbox.store().counts().unwrap().dead == 1
    });
    fixed.store(true, Ordering::SeqCst); // the consumer was upgraded
    let again = outbox.requeue_dead(id).unwrap();
    assert!(again > id);
    eventually(LIMIT, "the requeued row sent", || ids(&sent) == vec![again]);
    assert!(outbox.store().dead(10).unwrap().is_empty());
    outbox.stop().unwrap();
}
