//! Micro-benchmark of the stored message format against bare rmp-serde of
//! the same fields, so the cost of the version byte and the strict decoder
//! is visible. Run with `cargo bench --bench codec`.
#![allow(clippy::unwrap_used)]
#![allow(missing_docs)] // criterion_main! makes a public main // a test or example fails loudly on purpose

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde::{Deserialize, Serialize};
use syncmq::Message;

#[derive(Serialize, Deserialize)]
struct Bare {
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
    key: Option<String>,
}

fn codec(c: &mut Criterion) {
    let body = vec![7u8; 100];
    let msg = Message::new(body.clone()).with_key("order-1");
    let stored = msg.to_bytes().expect("encode");
    let bare = Bare {
        body,
        key: Some("order-1".into()),
    };
    let bare_bytes = rmp_serde::to_vec(&bare).expect("encode");

    let mut group = c.benchmark_group("message-100B");
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw rmp-serde encode", |b| {
        b.iter(|| rmp_serde::to_vec(black_box(&bare)));
    });
    group.bench_function("Message::to_bytes", |b| {
        b.iter(|| black_box(&msg).to_bytes());
    });
    group.bench_function("raw rmp-serde decode", |b| {
        b.iter(|| rmp_serde::from_slice::<Bare>(black_box(&bare_bytes)));
    });
    group.bench_function("Message::from_bytes", |b| {
        b.iter(|| Message::from_bytes(black_box(&stored)));
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
