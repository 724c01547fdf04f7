//! Issue item 8: malformed input gets RabbitMQ's reply code, scope and failing method,
//! then a clean close — while a healthy connection beside it keeps working.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use warren_codec::spec::{AMQPClass, basic, connection, queue};
use warren_e2e::raw::{content_frames, frame, method_frame};
use warren_e2e::{RawClient, TestBroker, WAIT, channel, consume, declare, next};

/// What a case expects: reply code, failing (class, method), and text when exact.
struct Expect {
    code: u16,
    method: (u16, u16),
    text: Option<&'static str>,
}

fn expect(code: u16, method: (u16, u16), text: Option<&'static str>) -> Expect {
    Expect { code, method, text }
}

fn publish_method(channel: u16) -> Vec<u8> {
    method_frame(
        channel,
        &AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "".into(),
            routing_key: "nowhere".into(),
            mandatory: false,
            immediate: false,
        })),
    )
}

fn header(class: u16, body_size: u64) -> Vec<u8> {
    let mut h = BytesMut::new();
    h.put_u16(class);
    h.put_u16(0);
    h.put_u64(body_size);
    h.put_u16(0);
    frame(2, 1, &h)
}

fn qos() -> Vec<u8> {
    method_frame(
        1,
        &AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
            prefetch_count: 5,
            global: false,
        })),
    )
}

fn cases() -> Vec<(&'static str, Vec<u8>, Expect)> {
    let mut bad_end = qos();
    *bad_end.last_mut().unwrap() = 0x00;
    let mut qos_payload = qos()[7..].to_vec();
    qos_payload.pop();
    let mut trailing = qos_payload.clone();
    trailing.extend_from_slice(&[1, 2, 3]);
    let truncated_declare = {
        let mut p = vec![0, 50, 0, 10, 0, 0, 1, b'q'];
        p.truncate(8);
        p
    };
    let shortstr_overrun = vec![0, 50, 0, 10, 0, 0, 200, b'a', b'b', b'c'];
    let unknown_table_type = {
        let mut p = vec![0, 50, 0, 10, 0, 0, 1, b'q', 0];
        let entry = [5, b'x', b'-', b'f', b'o', b'o', b'Z', 1];
        p.extend_from_slice(&(entry.len() as u32).to_be_bytes());
        p.extend_from_slice(&entry);
        p
    };
    let deliver = method_frame(
        1,
        &AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
            consumer_tag: "x".into(),
            delivery_tag: 1,
            redelivered: false,
            exchange: "".into(),
            routing_key: "q".into(),
        })),
    );
    let close_on_1 = method_frame(
        1,
        &AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: 200,
            reply_text: "bye".into(),
            class_id: 0,
            method_id: 0,
        })),
    );
    let declare_on_5 = method_frame(
        5,
        &AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: "q".into(),
            ..Default::default()
        })),
    );
    let declare_on_0 = method_frame(
        0,
        &AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: "q".into(),
            ..Default::default()
        })),
    );
    let reopen = method_frame(
        1,
        &AMQPClass::Channel(warren_codec::spec::channel::AMQPMethod::Open(
            Default::default(),
        )),
    );
    let mid_content = [publish_method(1), header(60, 10), qos()].concat();
    let overrun = [publish_method(1), header(60, 5), frame(3, 1, b"0123456789")].concat();
    vec![
        ("bad frame end", bad_end, expect(501, (0, 0), None)),
        (
            "unknown frame type",
            frame(9, 1, &qos_payload),
            expect(501, (0, 0), None),
        ),
        (
            "frame over frame_max, header only",
            vec![1, 0, 1, 0, 0x0F, 0x42, 0x40],
            expect(501, (0, 0), None),
        ),
        (
            "empty method frame",
            frame(1, 1, &[]),
            expect(501, (0, 0), None),
        ),
        (
            "content header without publish",
            header(60, 3),
            expect(
                505,
                (0, 0),
                Some("UNEXPECTED_FRAME - expected method frame, got non method frame instead"),
            ),
        ),
        (
            "body without header",
            frame(3, 1, b"abc"),
            expect(
                505,
                (0, 0),
                Some("UNEXPECTED_FRAME - expected method frame, got non method frame instead"),
            ),
        ),
        (
            "publish then body",
            [publish_method(1), frame(3, 1, b"abc")].concat(),
            expect(
                505,
                (60, 40),
                Some(
                    "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead",
                ),
            ),
        ),
        (
            "method in the middle of content",
            mid_content,
            expect(
                505,
                (60, 40),
                Some(
                    "UNEXPECTED_FRAME - expected content body, got non content body frame instead",
                ),
            ),
        ),
        (
            "header for another class",
            [publish_method(1), header(50, 3)].concat(),
            expect(
                505,
                (60, 40),
                Some(
                    "UNEXPECTED_FRAME - expected content header for class 60, got one for class 50 instead",
                ),
            ),
        ),
        (
            "body longer than the header said",
            overrun,
            expect(505, (60, 40), None),
        ),
        (
            "unknown class",
            frame(1, 1, &[0, 99, 0, 10]),
            expect(540, (99, 10), None),
        ),
        (
            "unknown method",
            frame(1, 1, &[0, 60, 0, 99]),
            expect(540, (60, 99), None),
        ),
        (
            "truncated arguments",
            frame(1, 1, &truncated_declare),
            expect(
                501,
                (50, 10),
                Some("FRAME_ERROR - cannot decode queue.declare arguments"),
            ),
        ),
        (
            "short string overrun",
            frame(1, 1, &shortstr_overrun),
            expect(501, (50, 10), None),
        ),
        (
            "trailing octets",
            frame(1, 1, &trailing),
            expect(501, (60, 10), None),
        ),
        (
            "unknown field-table type",
            frame(1, 1, &unknown_table_type),
            expect(501, (50, 10), None),
        ),
        (
            "heartbeat on a channel",
            frame(8, 1, &[]),
            expect(
                505,
                (0, 0),
                Some("UNEXPECTED_FRAME - type 8, all octets = <<>>"),
            ),
        ),
        (
            "heartbeat with payload",
            frame(8, 0, &[0]),
            expect(501, (0, 0), None),
        ),
        (
            "method on an unopened channel",
            declare_on_5,
            expect(
                504,
                (50, 10),
                Some("CHANNEL_ERROR - expected 'channel.open'"),
            ),
        ),
        (
            "channel method on channel 0",
            declare_on_0,
            expect(
                504,
                (50, 10),
                Some("CHANNEL_ERROR - unexpected method in connection state running"),
            ),
        ),
        (
            "connection method on a channel",
            close_on_1,
            expect(
                503,
                (10, 50),
                Some("COMMAND_INVALID - unimplemented method"),
            ),
        ),
        (
            "server-only method from a client",
            deliver,
            expect(
                503,
                (60, 60),
                Some("COMMAND_INVALID - unimplemented method"),
            ),
        ),
        (
            "second channel.open",
            reopen,
            expect(
                504,
                (20, 10),
                Some("CHANNEL_ERROR - second 'channel.open' seen"),
            ),
        ),
        (
            "content header on channel 0",
            frame(2, 0, &[0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0]),
            expect(
                505,
                (0, 0),
                Some("UNEXPECTED_FRAME - type 2, all octets = <<0,60,0,0,0,0,0,0,0,0,0,3,0,0>>"),
            ),
        ),
    ]
}

/// Publishes and consumes in a loop on its own connection until stopped; counts round
/// trips and panics on any error.
async fn healthy_neighbor(broker: &TestBroker, stop: Arc<AtomicBool>, done: Arc<AtomicU64>) {
    let (_conn, ch) = channel(broker).await;
    declare(&ch, "healthy").await;
    let mut consumer = consume(&ch, "healthy", "h", true).await;
    while !stop.load(Ordering::SeqCst) {
        ch.basic_publish(
            "".into(),
            "healthy".into(),
            Default::default(),
            b"ping",
            Default::default(),
        )
        .await
        .expect("the healthy connection can publish");
        assert_eq!(next(&mut consumer).await.data, b"ping");
        done.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn malformed_input_gets_the_right_close_and_spares_other_connections() {
    let broker = TestBroker::start().await;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let neighbor = healthy_neighbor(&broker, stop.clone(), done.clone());
    let cases_run = async {
        for (name, bytes, want) in cases() {
            let mut c = RawClient::open(broker.addr()).await;
            c.send(&bytes).await;
            let closed = tokio::time::timeout(WAIT, c.expect_connection_close())
                .await
                .unwrap_or_else(|_| panic!("{name}: no close"));
            assert_eq!(closed.code, want.code, "{name}: {closed:?}");
            assert_eq!(closed.channel, 0, "{name}");
            assert_eq!(
                (closed.class_id, closed.method_id),
                want.method,
                "{name}: {closed:?}"
            );
            if let Some(text) = want.text {
                assert_eq!(closed.text, text, "{name}");
            }
            assert!(
                closed.text.starts_with(code_name(want.code)),
                "{name}: {}",
                closed.text
            );
            c.expect_eof().await;
        }
        stop.store(true, Ordering::SeqCst);
    };
    tokio::join!(neighbor, cases_run);
    assert!(
        done.load(Ordering::SeqCst) > 5,
        "the healthy connection stalled"
    );
}

fn code_name(code: u16) -> &'static str {
    warren_codec::ReplyCode::from_code(code)
        .map(warren_codec::ReplyCode::name)
        .unwrap_or("?")
}

#[tokio::test]
async fn an_oversized_frame_is_refused_before_its_payload_arrives() {
    let broker = TestBroker::start().await;
    let mut c = RawClient::open(broker.addr()).await;
    // Announce 1 MB and send nothing more: the answer must not wait for the payload.
    c.send(&[3, 0, 1, 0, 0x10, 0, 0]).await;
    let closed = c.expect_connection_close().await;
    assert_eq!(closed.code, 501);
}

#[tokio::test]
async fn channel_errors_close_only_the_channel() {
    let broker = TestBroker::start().await;
    let mut c = RawClient::open(broker.addr()).await;
    c.open_channel(2).await;
    c.send(&[publish_method(1), content_frames(1, &[], b"")].concat())
        .await;
    c.send_method(
        2,
        &AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
            delivery_tag: 7,
            multiple: false,
        })),
    )
    .await;
    let closed = c.expect_channel_close(2).await;
    assert_eq!(
        (closed.code, closed.text.as_str()),
        (406, "PRECONDITION_FAILED - unknown delivery tag 7")
    );
    assert_eq!((closed.class_id, closed.method_id), (60, 80));
    // Channel 1 still works.
    c.send(&qos()).await;
    let (ch, m) = c.read_method().await.unwrap();
    assert_eq!(ch, 1);
    assert!(matches!(
        m,
        warren_codec::method::Method::Other(AMQPClass::Basic(basic::AMQPMethod::QosOk(_)))
    ));
}

#[tokio::test]
async fn a_flood_of_garbage_never_panics_the_broker() {
    let broker = TestBroker::start().await;
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..200 {
        let mut c = RawClient::open(broker.addr()).await;
        let mut junk = Vec::new();
        for _ in 0..(round % 64 + 8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            junk.push((seed & 0xFF) as u8);
        }
        // Frame the junk sometimes, so it reaches the method decoder.
        if round % 2 == 0 {
            junk = frame(1, 1, &junk);
        }
        c.send(&junk).await;
        drop(c);
    }
    let (_conn, ch) = channel(&broker).await;
    declare(&ch, "alive").await;
}
