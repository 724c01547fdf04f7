//! AMQP 0-8 clients, served as RabbitMQ 3.10 serves them, through a real socket. The
//! frames are written and checked octet by octet, not with Warren's own 0-8 translation,
//! so a mistake there cannot hide itself. The expected octets are what RabbitMQ 3.10.8
//! sent for the same frames (docs/compatibility.md).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use warren_codec::frame::{Frame, FrameType};
use warren_codec::method::{Method, decode_method};
use warren_codec::spec::{AMQPClass, basic, connection};
use warren_codec::types::AMQPValue;
use warren_e2e::raw::{frame, publish_frames, queue_declare_frame};
use warren_e2e::{RawClient, TestBroker};

const HEADER_0_8: &[u8] = b"AMQP\x01\x01\x08\x00";
/// The 0-8 header as the 0-8 document printed it; py-amqplib sent it.
const HEADER_0_8_AS_PRINTED: &[u8] = b"AMQP\x01\x01\x09\x01";

fn method(class_id: u16, method_id: u16, args: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(4 + args.len());
    payload.extend_from_slice(&class_id.to_be_bytes());
    payload.extend_from_slice(&method_id.to_be_bytes());
    payload.extend_from_slice(args);
    payload
}

fn short_str(s: &str) -> Vec<u8> {
    let mut out = vec![u8::try_from(s.len()).unwrap()];
    out.extend_from_slice(s.as_bytes());
    out
}

fn long_str(s: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(s.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(s);
    out
}

async fn send_method(c: &mut RawClient, channel: u16, class_id: u16, method_id: u16, args: &[u8]) {
    c.send(&frame(1, channel, &method(class_id, method_id, args)))
        .await;
}

/// The next method frame: its channel, class and method id, and arguments.
async fn next_method(c: &mut RawClient) -> (u16, u16, u16, Bytes) {
    loop {
        let Frame {
            frame_type,
            channel,
            payload,
        } = c
            .read_frame()
            .await
            .expect("a frame before the socket closed");
        if frame_type == FrameType::Method {
            let class_id = u16::from_be_bytes([payload[0], payload[1]]);
            let method_id = u16::from_be_bytes([payload[2], payload[3]]);
            return (channel, class_id, method_id, payload.slice(4..));
        }
    }
}

/// Open a 0-8 connection with `header` and channel 1; returns connection.start's
/// arguments.
async fn open_0_8(broker: &TestBroker, header: &[u8]) -> (RawClient, Bytes) {
    let mut c = RawClient::connect(broker.addr()).await;
    c.send(header).await;
    let (_, class_id, method_id, start) = next_method(&mut c).await;
    assert_eq!((class_id, method_id), (10, 10), "connection.start");
    let mut start_ok = 0u32.to_be_bytes().to_vec(); // no client properties
    start_ok.extend(short_str("PLAIN"));
    start_ok.extend(long_str(b"\0guest\0guest"));
    start_ok.extend(short_str("en_US"));
    send_method(&mut c, 0, 10, 11, &start_ok).await;
    let (_, class_id, method_id, tune) = next_method(&mut c).await;
    assert_eq!((class_id, method_id), (10, 30), "connection.tune");
    send_method(&mut c, 0, 10, 31, &tune).await;
    let mut open = short_str("/");
    open.extend(short_str("")); // capabilities
    open.push(0); // insist
    send_method(&mut c, 0, 10, 40, &open).await;
    let (_, class_id, method_id, _) = next_method(&mut c).await;
    assert_eq!((class_id, method_id), (10, 41), "connection.open-ok");
    send_method(&mut c, 1, 20, 10, &short_str("")).await;
    let (channel, class_id, method_id, open_ok) = next_method(&mut c).await;
    // 0-8's channel.open-ok has no arguments (0-9-1's carries an empty long string).
    assert_eq!(
        (channel, class_id, method_id, &open_ok[..]),
        (1, 20, 11, &[][..]),
        "channel.open-ok"
    );
    (c, start)
}

/// A `connection.close` numbered as 0-8 numbers it (60); answers with 0-8's close-ok,
/// which the broker must understand: it closes the socket at once, not when it tires of
/// waiting (2 s in tests).
async fn expect_close_0_8(c: &mut RawClient) -> (u16, String, u16, u16) {
    let (channel, class_id, method_id, args) = next_method(c).await;
    assert_eq!(
        (channel, class_id, method_id),
        (0, 10, 60),
        "0-8 connection.close"
    );
    let Method::Other(AMQPClass::Connection(connection::AMQPMethod::Close(close))) =
        decode_method(&Bytes::from(method(10, 50, &args))).unwrap()
    else {
        unreachable!("decoded as connection.close")
    };
    send_method(c, 0, 10, 61, &[]).await;
    let answered = Instant::now();
    assert!(c.read_frame().await.is_none(), "nothing after close-ok");
    assert!(
        answered.elapsed() < Duration::from_secs(1),
        "the broker did not take 0-8's close-ok as one"
    );
    (
        close.reply_code,
        close.reply_text.to_string(),
        close.class_id,
        close.method_id,
    )
}

/// On a fresh 0-8 connection, one method and the `connection.close` it draws.
async fn close_for(
    broker: &TestBroker,
    channel: u16,
    class_id: u16,
    method_id: u16,
    args: &[u8],
) -> (u16, String, u16, u16) {
    let (mut c, _) = open_0_8(broker, HEADER_0_8).await;
    send_method(&mut c, channel, class_id, method_id, args).await;
    expect_close_0_8(&mut c).await
}

#[tokio::test]
async fn connection_start_says_8_0_with_no_capabilities() {
    let broker = TestBroker::start().await;
    for header in [HEADER_0_8, HEADER_0_8_AS_PRINTED] {
        let (_, start) = open_0_8(&broker, header).await;
        let Method::Other(AMQPClass::Connection(connection::AMQPMethod::Start(start))) =
            decode_method(&Bytes::from(method(10, 10, &start))).unwrap()
        else {
            unreachable!("decoded as connection.start")
        };
        assert_eq!((start.version_major, start.version_minor), (8, 0));
        // 0-8 tables have no booleans, and none of the capabilities exists in 0-8.
        assert_eq!(
            start.server_properties.inner().get("capabilities"),
            Some(&AMQPValue::FieldTable(Default::default()))
        );
        assert_eq!(start.mechanisms.to_string(), "AMQPLAIN PLAIN");
    }
}

#[tokio::test]
async fn publish_consume_ack_and_close_in_0_8() {
    let broker = TestBroker::start().await;
    let (mut c, _) = open_0_8(&broker, HEADER_0_8).await;
    c.send(&queue_declare_frame(1, "old-client", false)).await;
    let (_, class_id, method_id, _) = next_method(&mut c).await;
    assert_eq!((class_id, method_id), (50, 11), "queue.declare-ok");
    c.send(&publish_frames(1, "", "old-client", &[], b"hello 0-8"))
        .await;
    // 0-8's basic.consume: ticket, queue, consumer tag, bits; no arguments table.
    let mut consume = vec![0, 0];
    consume.extend(short_str("old-client"));
    consume.extend(short_str("ctag"));
    consume.push(0);
    send_method(&mut c, 1, 60, 20, &consume).await;
    let (_, class_id, method_id, ok) = next_method(&mut c).await;
    assert_eq!((class_id, method_id, &ok[..]), (60, 21, &b"\x04ctag"[..]));
    let deliver = c.read_frame().await.unwrap();
    let Method::Other(AMQPClass::Basic(basic::AMQPMethod::Deliver(deliver))) =
        decode_method(&deliver.payload).unwrap()
    else {
        panic!("expected basic.deliver");
    };
    assert_eq!(deliver.consumer_tag.as_str(), "ctag");
    let header = c.read_frame().await.unwrap();
    assert_eq!(header.frame_type, FrameType::Header);
    let body = c.read_frame().await.unwrap();
    assert_eq!(&body.payload[..], b"hello 0-8");
    let mut ack = deliver.delivery_tag.to_be_bytes().to_vec();
    ack.push(0);
    send_method(&mut c, 1, 60, 80, &ack).await;
    // 0-8's connection.close is method 60, its close-ok 61.
    let mut close = 200u16.to_be_bytes().to_vec();
    close.extend(short_str("bye"));
    close.extend([0, 0, 0, 0]);
    send_method(&mut c, 0, 10, 60, &close).await;
    let (channel, class_id, method_id, args) = next_method(&mut c).await;
    assert_eq!(
        (channel, class_id, method_id, &args[..]),
        (0, 10, 61, &[][..])
    );
    assert!(
        c.read_frame().await.is_none(),
        "socket closed after close-ok"
    );
    // The acknowledged message is gone.
    let (mut d, _) = open_0_8(&broker, HEADER_0_8).await;
    d.send(&queue_declare_frame(1, "old-client", true)).await;
    let (_, _, _, declare_ok) = next_method(&mut d).await;
    assert_eq!(
        &declare_ok[declare_ok.len() - 8..],
        &[0; 8],
        "no messages, no consumers"
    );
}

#[tokio::test]
async fn methods_0_8_lacks_are_not_implemented() {
    let broker = TestBroker::start().await;
    // confirm.select, exchange.bind, basic.nack: 0-9-1's, not 0-8's. RabbitMQ 3.10 drops
    // the socket without a word; Warren says why, as for any unknown method.
    let exchange_bind = {
        let mut a = vec![0, 0];
        for s in ["amq.direct", "amq.fanout", ""] {
            a.extend(short_str(s));
        }
        a.extend([0, 0, 0, 0, 0]);
        a
    };
    let mut nack = 1u64.to_be_bytes().to_vec();
    nack.push(0);
    for (class_id, method_id, args) in [(85, 10, vec![0]), (40, 30, exchange_bind), (60, 120, nack)]
    {
        let (code, _, failed_class, failed_method) =
            close_for(&broker, 1, class_id, method_id, &args).await;
        assert_eq!(
            (code, failed_class, failed_method),
            (540, class_id, method_id),
            "{class_id}.{method_id}"
        );
    }
}

#[tokio::test]
async fn a_0_9_1_consume_table_is_a_frame_error_in_0_8() {
    let broker = TestBroker::start().await;
    let (mut c, _) = open_0_8(&broker, HEADER_0_8).await;
    c.send(&queue_declare_frame(1, "tabled", false)).await;
    next_method(&mut c).await;
    let mut consume = vec![0, 0];
    consume.extend(short_str("tabled"));
    consume.extend(short_str(""));
    consume.extend([0, 0, 0, 0, 0]);
    send_method(&mut c, 1, 60, 20, &consume).await;
    let (code, _, class_id, method_id) = expect_close_0_8(&mut c).await;
    assert_eq!((code, class_id, method_id), (501, 60, 20));
}

#[tokio::test]
async fn unimplemented_0_8_methods_are_command_invalid_as_in_rabbitmq() {
    let broker = TestBroker::start().await;
    // file.qos; channel.alert and connection.redirect, which only servers send.
    let mut alert = 200u16.to_be_bytes().to_vec();
    alert.extend(short_str("x"));
    alert.extend([0, 0, 0, 0]);
    let mut redirect = short_str("elsewhere");
    redirect.extend(short_str(""));
    for (class_id, method_id, args) in [
        (70, 10, vec![0, 0, 0, 0, 0, 0, 0]),
        (20, 30, alert),
        (10, 50, redirect.clone()),
    ] {
        let (code, text, failed_class, failed_method) =
            close_for(&broker, 1, class_id, method_id, &args).await;
        assert_eq!(
            (code, text.as_str(), failed_class, failed_method),
            (
                503,
                "COMMAND_INVALID - unimplemented method",
                class_id,
                method_id
            ),
        );
    }
    // On a channel not open, anything but channel.open is unexpected, as in RabbitMQ.
    let (code, text, class_id, method_id) =
        close_for(&broker, 2, 70, 10, &[0, 0, 0, 0, 0, 0, 0]).await;
    assert_eq!(
        (code, text.as_str(), class_id, method_id),
        (504, "CHANNEL_ERROR - expected 'channel.open'", 70, 10)
    );
    // During the handshake too (where RabbitMQ says nothing and drops the socket after
    // 3 s, Warren answers every out-of-order method with 504).
    let mut c = RawClient::connect(broker.addr()).await;
    c.send(HEADER_0_8).await;
    next_method(&mut c).await;
    send_method(&mut c, 0, 70, 10, &[0, 0, 0, 0, 0, 0, 0]).await;
    let (code, text, class_id, method_id) = expect_close_0_8(&mut c).await;
    assert_eq!(
        (code, text.as_str(), class_id, method_id),
        (
            504,
            "CHANNEL_ERROR - unexpected method in connection state starting",
            70,
            10
        )
    );
    // On channel 0 a redirect is as unexpected as any method but close.
    let (code, text, class_id, method_id) = close_for(&broker, 0, 10, 50, &redirect).await;
    assert_eq!(
        (code, text.as_str(), class_id, method_id),
        (
            504,
            "CHANNEL_ERROR - unexpected method in connection state running",
            10,
            50
        )
    );
}

#[tokio::test]
async fn a_malformed_0_8_close_is_named_by_its_0_8_id() {
    let broker = TestBroker::start().await;
    let (code, text, class_id, method_id) = close_for(&broker, 0, 10, 60, &[0]).await;
    assert_eq!(
        (code, text.as_str(), class_id, method_id),
        (
            501,
            "FRAME_ERROR - cannot decode connection.close arguments",
            10,
            60
        )
    );
}

#[tokio::test]
async fn channel_errors_in_0_8_are_the_same_as_in_0_9_1() {
    let broker = TestBroker::start().await;
    let (mut c, _) = open_0_8(&broker, HEADER_0_8).await;
    c.send(&queue_declare_frame(1, "nowhere", true)).await;
    let (channel, class_id, method_id, args) = next_method(&mut c).await;
    assert_eq!((channel, class_id, method_id), (1, 20, 40));
    let mut expected = 404u16.to_be_bytes().to_vec();
    expected.extend(short_str("NOT_FOUND - no queue 'nowhere' in vhost '/'"));
    expected.extend([0, 50, 0, 10]);
    assert_eq!(&args[..], &expected[..]);
    send_method(&mut c, 1, 20, 41, &[]).await;
    // The connection goes on: the channel opens again.
    send_method(&mut c, 1, 20, 10, &short_str("")).await;
    let (_, class_id, method_id, open_ok) = next_method(&mut c).await;
    assert_eq!((class_id, method_id, &open_ok[..]), (20, 11, &[][..]));
}

#[tokio::test]
async fn shutdown_closes_a_0_8_connection_with_0_8_s_close() {
    let broker = TestBroker::start().await;
    let (mut c, _) = open_0_8(&broker, HEADER_0_8).await;
    let stopping = tokio::spawn(broker.shutdown());
    let (code, text, class_id, method_id) = expect_close_0_8(&mut c).await;
    assert_eq!(
        (code, text.as_str(), class_id, method_id),
        (
            320,
            "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'",
            0,
            0
        )
    );
    stopping.await.unwrap();
}
