//! `bench simple`: the `SimpleAdapter` against raw crossbeam.
//!
//! The baseline is one producer thread sending `messages` payloads of
//! `size` bytes through a crossbeam `bounded(buffer)` channel to one
//! consumer thread. The adapter cases send the same payloads into a
//! channel's input and receive and ack them from its output: the extra hop
//! through the forwarding threads and the `Delivery` wrapper is what the
//! ratio shows.
//!
//! Every adapter run is paired with a raw run right next to it (raw first
//! on even runs, second on odd ones), and the ratio is reported pair by
//! pair: its median and its worst pair. In both, the producer is pinned to
//! one CPU and the consumer to another (see [`crate::affinity`]), so the
//! baseline does not swing between a one-core and a two-core placement;
//! the adapter's forwarding threads keep every CPU of the process.

use std::thread;
use std::time::{Duration, Instant};

use syncmq::{Adapter, ChannelSpec, Mode, SimpleAdapter};

use crate::affinity::{self, pin};
use crate::report::Table;
use crate::Load;

const RAW: &str = "raw crossbeam bounded SPSC";

/// Where the producer and the consumer run.
#[derive(Clone, Copy)]
struct Placement {
    producer: Option<usize>,
    consumer: Option<usize>,
}

pub fn run(load: Load) -> Table {
    let payload = vec![0xA5u8; load.size];
    let cpus = affinity::two_cpus();
    let placement = Placement {
        producer: cpus.map(|(a, _)| a),
        consumer: cpus.map(|(_, b)| b),
    };
    let cases = [
        ("SimpleAdapter, 1 instance", 1),
        ("SimpleAdapter, 4 instances", 4),
    ];
    let mut raw_durations = vec![Vec::new(); cases.len()];
    let mut durations = vec![Vec::new(); cases.len()];
    for run in 0..load.runs.max(1) {
        for (i, (_, instances)) in cases.iter().enumerate() {
            // Raw first on even runs and second on odd ones, so that what
            // one run leaves behind (a cold cache, a core busy elsewhere)
            // weighs on both sides alike.
            if run % 2 == 0 {
                raw_durations[i].push(raw(&payload, load, placement));
                durations[i].push(adapter(&payload, load, *instances, placement));
            } else {
                durations[i].push(adapter(&payload, load, *instances, placement));
                raw_durations[i].push(raw(&payload, load, placement));
            }
        }
    }
    let placed = match cpus {
        Some((a, b)) => format!("producer on CPU {a}, consumer on CPU {b}"),
        None => "threads not pinned".to_string(),
    };
    let mut table = Table::new(format!(
        "bench simple: {} messages of {} bytes, buffer {}, median of {} runs, {placed}",
        load.messages, load.size, load.buffer, load.runs
    ));
    let all_raw: Vec<Duration> = raw_durations.concat();
    table.baseline(RAW, load.messages, load.size, &all_raw);
    for (i, (case, _)) in cases.iter().enumerate() {
        table.paired(
            case,
            RAW,
            load.messages,
            load.size,
            &durations[i],
            &raw_durations[i],
        );
    }
    table
}

fn raw(payload: &[u8], load: Load, placement: Placement) -> Duration {
    let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(load.buffer);
    let _consumer = pin(placement.consumer);
    let started = Instant::now();
    let producer = {
        let payload = payload.to_vec();
        thread::spawn(move || {
            let _pinned = pin(placement.producer);
            for _ in 0..load.messages {
                tx.send(payload.clone()).expect("consumer alive");
            }
        })
    };
    for _ in 0..load.messages {
        drop(rx.recv().expect("producer alive"));
    }
    let took = started.elapsed();
    producer.join().expect("producer");
    took
}

fn adapter(payload: &[u8], load: Load, instances: usize, placement: Placement) -> Duration {
    // Made before the consumer pins itself, so that the forwarding threads
    // it starts keep every CPU.
    let adapter = SimpleAdapter::new();
    adapter
        .new_channel(
            ChannelSpec::new("bench", Mode::Both)
                .with_buffer(load.buffer)
                .with_instances(instances),
        )
        .expect("new_channel");
    let input = adapter.input("bench").expect("input");
    let output = adapter.output("bench").expect("output");
    let consumer = pin(placement.consumer);
    let started = Instant::now();
    let producer = {
        let payload = payload.to_vec();
        thread::spawn(move || {
            let _pinned = pin(placement.producer);
            for _ in 0..load.messages {
                input.send(payload.clone().into()).expect("adapter open");
            }
        })
    };
    for _ in 0..load.messages {
        output.recv().expect("adapter open").ack().expect("ack");
    }
    let took = started.elapsed();
    producer.join().expect("producer");
    drop(consumer);
    adapter.close().expect("close");
    took
}
