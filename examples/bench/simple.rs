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
//! pair: its median and its worst pair. Each pair runs in each of two
//! placements (see [`crate::affinity`]), the same for raw and adapter:
//!
//! - **one CPU**: every thread of the case on one CPU, the forwarding
//!   threads too. Raw SPSC is at its fastest there (the two threads take
//!   turns filling and emptying the buffer, no cache line crosses CPUs),
//!   and the adapter's extra hop costs its full CPU time.
//! - **two CPUs**: the producer on one CPU and the consumer on the other;
//!   the forwarding threads may run on either. Raw SPSC is at its slowest
//!   there (every slot's cache line crosses CPUs).
//!
//! Left to the scheduler, raw SPSC lands in one placement or the other from
//! run to run, which made its figure swing several times over.

use std::thread;
use std::time::{Duration, Instant};

use syncmq::{Adapter, ChannelSpec, Mode, SimpleAdapter};

use crate::affinity::{self, pin};
use crate::report::Table;
use crate::Load;

/// Where the threads of a case run.
#[derive(Clone, Copy)]
enum Placement {
    /// Every thread on this CPU, the adapter's forwarders too.
    OneCpu(usize),
    /// The producer on the first CPU, the consumer on the second.
    TwoCpus(usize, usize),
    /// Where the scheduler puts them: the process has fewer than two CPUs.
    Unpinned,
}

impl Placement {
    fn name(self) -> &'static str {
        match self {
            Placement::OneCpu(_) => "one CPU",
            Placement::TwoCpus(..) => "two CPUs",
            Placement::Unpinned => "unpinned",
        }
    }

    fn producer(self) -> Option<usize> {
        match self {
            Placement::OneCpu(cpu) | Placement::TwoCpus(cpu, _) => Some(cpu),
            Placement::Unpinned => None,
        }
    }

    fn consumer(self) -> Option<usize> {
        match self {
            Placement::OneCpu(cpu) | Placement::TwoCpus(_, cpu) => Some(cpu),
            Placement::Unpinned => None,
        }
    }

    /// The CPU the adapter is made on: its forwarding threads keep the
    /// affinity of the thread that starts them.
    fn forwarders(self) -> Option<usize> {
        match self {
            Placement::OneCpu(cpu) => Some(cpu),
            Placement::TwoCpus(..) | Placement::Unpinned => None,
        }
    }
}

pub fn run(load: Load) -> Table {
    let payload = vec![0xA5u8; load.size];
    let placements = match affinity::two_cpus() {
        Some((a, b)) => vec![Placement::OneCpu(a), Placement::TwoCpus(a, b)],
        None => vec![Placement::Unpinned],
    };
    let instances = [1, 4];
    // Per placement and instances: the raw runs and the adapter runs.
    let mut raw_durations = vec![vec![Vec::new(); instances.len()]; placements.len()];
    let mut durations = raw_durations.clone();
    for run in 0..load.runs.max(1) {
        for (p, &placement) in placements.iter().enumerate() {
            for (i, &n) in instances.iter().enumerate() {
                // Raw first on even runs and second on odd ones, so that
                // what one run leaves behind (a cold cache, a CPU busy
                // elsewhere) weighs on both sides alike.
                if run % 2 == 0 {
                    raw_durations[p][i].push(raw(&payload, load, placement));
                    durations[p][i].push(adapter(&payload, load, n, placement));
                } else {
                    durations[p][i].push(adapter(&payload, load, n, placement));
                    raw_durations[p][i].push(raw(&payload, load, placement));
                }
            }
        }
    }
    let mut table = Table::new(format!(
        "bench simple: {} messages of {} bytes, buffer {}, median of {} runs",
        load.messages, load.size, load.buffer, load.runs
    ));
    for (p, placement) in placements.iter().enumerate() {
        let raw_case = format!("raw crossbeam bounded SPSC, {}", placement.name());
        let all_raw: Vec<Duration> = raw_durations[p].concat();
        table.baseline(&raw_case, load.messages, load.size, &all_raw);
        for (i, n) in instances.iter().enumerate() {
            let case = format!(
                "SimpleAdapter, {n} instance{}, {}",
                if *n == 1 { "" } else { "s" },
                placement.name()
            );
            table.paired(
                &case,
                &raw_case,
                load.messages,
                load.size,
                &durations[p][i],
                &raw_durations[p][i],
            );
        }
    }
    table
}

fn raw(payload: &[u8], load: Load, placement: Placement) -> Duration {
    let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(load.buffer);
    let _consumer = pin(placement.consumer());
    let started = Instant::now();
    let producer = {
        let payload = payload.to_vec();
        thread::spawn(move || {
            let _pinned = pin(placement.producer());
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
    let adapter = {
        let _forwarders = pin(placement.forwarders());
        let adapter = SimpleAdapter::new();
        adapter
            .new_channel(
                ChannelSpec::new("bench", Mode::Both)
                    .with_buffer(load.buffer)
                    .with_instances(instances),
            )
            .expect("new_channel");
        adapter
    };
    let input = adapter.input("bench").expect("input");
    let output = adapter.output("bench").expect("output");
    let consumer = pin(placement.consumer());
    let started = Instant::now();
    let producer = {
        let payload = payload.to_vec();
        thread::spawn(move || {
            let _pinned = pin(placement.producer());
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
