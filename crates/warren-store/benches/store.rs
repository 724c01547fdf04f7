//! Micro-benchmarks of the store's per-message work: the in-memory queue (push, pop,
//! ack) and the segment log (append, delivered and removed records, buffered writes).
//! Syncs are left out: their cost is the disk's, measured in `store_compare`.
//!
//! Run: `cargo bench -p warren-store --bench store`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a measurement program: a panic is the report"
)]

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use warren_store::segment::{DEFAULT_SEGMENT_BYTES, FsStorage, SegmentLog};
use warren_store::{Message, MessageQueue, MessageRef};

fn message(size: usize) -> Message {
    Message {
        exchange: Bytes::new(),
        routing_key: Bytes::from_static(b"orders"),
        properties: Bytes::from_static(&[0x10, 0, 2]),
        body: Bytes::from(vec![b'x'; size]).into(),
        persistent: true,
        priority: 0,
        expiration: None,
    }
}

/// Messages per iteration: enough to amortise the loop, few enough to stay in cache
/// as a consumer keeping up would.
const BATCH: u64 = 100;

fn queue(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue");
    group.throughput(Throughput::Elements(BATCH));
    let m = MessageRef::new(message(16));
    group.bench_function("push+pop no-ack", |b| {
        let mut q = MessageQueue::new();
        b.iter(|| {
            for _ in 0..BATCH {
                q.push(m.clone(), 0, None);
            }
            for _ in 0..BATCH {
                std::hint::black_box(q.pop(false));
            }
        });
    });
    group.bench_function("push+pop+ack", |b| {
        let mut q = MessageQueue::new();
        b.iter(|| {
            for _ in 0..BATCH {
                q.push(m.clone(), 0, None);
            }
            for _ in 0..BATCH {
                let taken = q.pop(true).expect("a ready message");
                std::hint::black_box(q.ack(taken.id));
            }
        });
    });
    group.finish();
}

fn segment_log(c: &mut Criterion) {
    let mut group = c.benchmark_group("segment log");
    group.throughput(Throughput::Elements(BATCH));
    for size in [16, 1024] {
        let m = message(size);
        group.bench_function(format!("append+delivered+removed {size}B"), |b| {
            let dir = tempfile::tempdir().unwrap();
            let (mut log, _) = SegmentLog::open(
                FsStorage::new(dir.path()).unwrap(),
                "bench",
                DEFAULT_SEGMENT_BYTES,
            )
            .unwrap();
            let mut id = 0;
            let mut at = Vec::with_capacity(BATCH as usize);
            b.iter(|| {
                for _ in 0..BATCH {
                    id += 1;
                    at.push((log.append(id, 0, None, &m).unwrap(), id));
                }
                log.flush().unwrap();
                for (location, id) in at.drain(..) {
                    log.delivered(location, id);
                    log.removed(location, id).unwrap();
                }
                log.flush_acks().unwrap();
            });
        });
    }
    group.finish();
}

criterion_group!(benches, queue, segment_log);
criterion_main!(benches);
