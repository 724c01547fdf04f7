//! Codec micro-benchmarks: the per-message work on the publish and deliver paths.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

use std::hint::black_box;

use bytes::{BufMut, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use warren_codec::content::ContentAssembly;
use warren_codec::encode::{encode_basic_deliver, encode_content};
use warren_codec::frame::decode_frame;
use warren_codec::method::{Method, decode_method};

fn publish_frames(body: &[u8]) -> Vec<u8> {
    let mut method = vec![0, 60, 0, 40, 0, 0, 8];
    method.extend_from_slice(b"exchange");
    method.push(11);
    method.extend_from_slice(b"routing.key");
    method.push(0);
    let mut out = BytesMut::new();
    out.put_u8(1);
    out.put_u16(1);
    out.put_u32(method.len() as u32);
    out.put_slice(&method);
    out.put_u8(0xCE);
    encode_content(&mut out, 1, &[0x10, 0, 1], body, 131_072).unwrap();
    out.to_vec()
}

fn decode_publish(c: &mut Criterion) {
    let wire = publish_frames(&[7u8; 16]);
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(1));
    group.bench_function("publish+header+body 16B", |b| {
        let mut assembly = ContentAssembly::default();
        b.iter(|| {
            let mut buf = BytesMut::from(&wire[..]);
            let m = decode_frame(&mut buf, 131_072).unwrap().unwrap();
            let Method::BasicPublish(p) = decode_method(&m.payload).unwrap() else {
                unreachable!()
            };
            assembly.begin(p).unwrap();
            let h = decode_frame(&mut buf, 131_072).unwrap().unwrap();
            assembly.header(h.payload, 60, 1 << 27).unwrap();
            let body = decode_frame(&mut buf, 131_072).unwrap().unwrap();
            black_box(assembly.body(body.payload).unwrap())
        });
    });
    group.finish();
}

fn encode_deliver(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1));
    let body = [7u8; 16];
    let mut buf = BytesMut::with_capacity(1 << 16);
    group.bench_function("deliver+header+body 16B", |b| {
        b.iter(|| {
            buf.clear();
            encode_basic_deliver(
                &mut buf,
                1,
                b"amq.ctag-abc",
                42,
                false,
                b"exchange",
                b"routing.key",
            )
            .unwrap();
            encode_content(&mut buf, 1, &[0x10, 0, 1], black_box(&body), 131_072).unwrap();
            black_box(buf.len())
        });
    });
    group.finish();
}

criterion_group!(benches, decode_publish, encode_deliver);
criterion_main!(benches);
