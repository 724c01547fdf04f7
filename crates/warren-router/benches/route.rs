//! `route()` cost per exchange type and binding count.

#![allow(
    clippy::unwrap_used,
    reason = "bench setup: a panic is the failure report"
)]

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use smallvec::SmallVec;
use warren_router::{
    AMQPValue, Dest, ExchangeFlags, ExchangeKind, FieldTable, RouteInput, Topology,
};

const SIZES: [usize; 3] = [10, 1_000, 100_000];

fn topology(kind: ExchangeKind, n: usize) -> Topology<u32> {
    let mut t = Topology::new();
    t.declare_exchange(
        Arc::from("x"),
        kind,
        ExchangeFlags::default(),
        FieldTable::default(),
    )
    .unwrap();
    for i in 0..n as u32 {
        t.add_queue(Arc::from(format!("q{i}")), i).unwrap();
        let (key, args) = match kind {
            ExchangeKind::Topic => (format!("stock.{}.{}.*", i % 100, i), FieldTable::default()),
            ExchangeKind::Headers => {
                let mut a = FieldTable::default();
                a.insert("id".into(), AMQPValue::LongInt(i as i32));
                (String::new(), a)
            }
            _ => (format!("key.{i}"), FieldTable::default()),
        };
        t.bind("x", Dest::Queue(i), Bytes::from(key), args).unwrap();
    }
    t
}

fn route(c: &mut Criterion) {
    let mut group = c.benchmark_group("route");
    for kind in [
        ExchangeKind::Direct,
        ExchangeKind::Topic,
        ExchangeKind::Headers,
        ExchangeKind::Fanout,
    ] {
        for n in SIZES {
            if kind == ExchangeKind::Fanout && n > 1_000 {
                continue;
            }
            let t = topology(kind, n);
            let probe = n as u32 / 2;
            let key = match kind {
                ExchangeKind::Topic => format!("stock.{}.{}.nyse", probe % 100, probe),
                _ => format!("key.{probe}"),
            };
            let mut headers = FieldTable::default();
            headers.insert("id".into(), AMQPValue::LongInt(probe as i32));
            let headers = Some(headers);
            group.bench_with_input(BenchmarkId::new(kind.name(), n), &n, |b, _| {
                let mut out: SmallVec<[u32; 4]> = SmallVec::new();
                b.iter(|| {
                    out.clear();
                    let input = RouteInput {
                        exchange: "x",
                        routing_key: key.as_bytes(),
                        extra_keys: &[],
                        message: &headers,
                    };
                    t.route(&input, &mut out).unwrap();
                    black_box(out.len())
                });
            });
        }
    }
    group.finish();
}

fn bind_unbind(c: &mut Criterion) {
    let mut group = c.benchmark_group("bind+unbind");
    for n in SIZES {
        let mut t = topology(ExchangeKind::Topic, n);
        t.add_queue(Arc::from("extra"), u32::MAX).unwrap();
        group.bench_with_input(BenchmarkId::new("topic", n), &n, |b, _| {
            let key = Bytes::from_static(b"stock.extra.#");
            let args = FieldTable::default();
            b.iter(|| {
                t.bind("x", Dest::Queue(u32::MAX), key.clone(), args.clone())
                    .unwrap();
                t.unbind("x", &Dest::Queue(u32::MAX), &key, &args).unwrap();
            });
        });
    }
    group.finish();
}

criterion_group!(benches, route, bind_unbind);
criterion_main!(benches);
