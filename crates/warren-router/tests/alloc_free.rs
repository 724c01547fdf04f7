//! The common routes allocate nothing: a direct route and a single-match topic route
//! into a caller-provided inline buffer.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

use std::sync::Arc;

use bytes::Bytes;
use smallvec::SmallVec;
use warren_router::{Dest, ExchangeFlags, ExchangeKind, FieldTable, RouteInput, Topology};

fn allocations_during(f: impl FnOnce()) -> u64 {
    allocation_counter::measure(f).count_total
}

#[test]
fn direct_and_single_match_topic_routes_do_not_allocate() {
    let mut t: Topology<u32> = Topology::new();
    for (name, kind) in [("d", ExchangeKind::Direct), ("t", ExchangeKind::Topic)] {
        t.declare_exchange(
            Arc::from(name),
            kind,
            ExchangeFlags::default(),
            FieldTable::default(),
        )
        .unwrap();
    }
    for i in 0..1000u32 {
        t.add_queue(Arc::from(format!("q{i}")), i).unwrap();
        t.bind(
            "d",
            Dest::Queue(i),
            Bytes::from(format!("key.{i}")),
            FieldTable::default(),
        )
        .unwrap();
        t.bind(
            "t",
            Dest::Queue(i),
            Bytes::from(format!("stock.{i}.*")),
            FieldTable::default(),
        )
        .unwrap();
    }
    let none: Option<FieldTable> = None;
    let mut out: SmallVec<[u32; 4]> = SmallVec::new();
    for (exchange, key) in [
        ("d", &b"key.500"[..]),
        ("t", b"stock.500.nyse"),
        ("", b"q7"),
    ] {
        let input = RouteInput {
            exchange,
            routing_key: key,
            extra_keys: &[],
            message: &none,
        };
        out.clear();
        let n = allocations_during(|| {
            t.route(&input, &mut out).unwrap();
        });
        assert_eq!(out.len(), 1, "{exchange}");
        assert_eq!(n, 0, "routing through {exchange:?} allocated {n} times");
    }
}
