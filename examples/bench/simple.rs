//! `bench simple`: the `SimpleAdapter` against raw crossbeam.
//!
//! The baseline is one producer thread sending `messages` payloads of
//! `size` bytes through a crossbeam `bounded(buffer)` channel to one
//! consumer thread. The adapter cases send the same payloads into a
//! channel's input and receive and ack them from its output: the extra hop
//! through the forwarding threads and the `Delivery` wrapper is what the
//! ratio shows.

use std::thread;
use std::time::{Duration, Instant};

use syncmq::{Adapter, ChannelSpec, Mode, SimpleAdapter};

use crate::report::Table;
use crate::Load;

const RAW: &str = "raw crossbeam bounded SPSC";

pub fn run(load: Load) -> Table {
    let payload = vec![0xA5u8; load.size];
    let cases = [
        (RAW, 0),
        ("SimpleAdapter, 1 instance", 1),
        ("SimpleAdapter, 4 instances", 4),
    ];
    let mut durations = vec![Vec::new(); cases.len()];
    for _ in 0..load.runs.max(1) {
        for (i, (_, instances)) in cases.iter().enumerate() {
            let took = match instances {
                0 => raw(&payload, load),
                n => adapter(&payload, load, *n),
            };
            durations[i].push(took);
        }
    }
    let mut table = Table::new(format!(
        "bench simple: {} messages of {} bytes, buffer {}, median of {} runs",
        load.messages, load.size, load.buffer, load.runs
    ));
    table.baseline(RAW, load.messages, load.size, &durations[0]);
    for (i, (case, _)) in cases.iter().enumerate().skip(1) {
        table.compared(case, RAW, load.messages, load.size, &durations[i]);
    }
    table
}

fn raw(payload: &[u8], load: Load) -> Duration {
    let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(load.buffer);
    let started = Instant::now();
    let producer = {
        let payload = payload.to_vec();
        thread::spawn(move || {
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

fn adapter(payload: &[u8], load: Load, instances: usize) -> Duration {
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
    let started = Instant::now();
    let producer = {
        let payload = payload.to_vec();
        thread::spawn(move || {
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
    adapter.close().expect("close");
    took
}
