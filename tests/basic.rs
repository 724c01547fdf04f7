//! Issue item 6: publish, return, consume, cancel, deliver, get, ack/nack/reject/recover,
//! prefetch, round-robin, redelivery and requeue order.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

use std::time::Duration;

use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, BasicRecoverOptions, BasicRejectOptions,
};
use lapin::types::{AMQPValue, FieldArray, FieldTable};
use lapin::{BasicProperties, Channel};
use warren_codec::frame::FrameType;
use warren_codec::method::Method;
use warren_codec::spec::{AMQPClass, basic};
use warren_e2e::{
    RawClient, TestBroker, channel, connect, consume, declare, err_code, next, no_delivery, raw,
};

async fn publish(ch: &Channel, queue: &str, body: &[u8]) {
    ch.basic_publish(
        "".into(),
        queue.into(),
        BasicPublishOptions::default(),
        body,
        BasicProperties::default(),
    )
    .await
    .unwrap();
}

async fn get(ch: &Channel, queue: &str, no_ack: bool) -> Option<lapin::message::BasicGetMessage> {
    ch.basic_get(queue.into(), BasicGetOptions { no_ack })
        .await
        .unwrap()
}

#[tokio::test]
async fn publish_to_a_missing_exchange_closes_the_channel_with_404() {
    let broker = TestBroker::start().await;
    // An empty body completes the message at its header: the failing method is still
    // basic.publish (RabbitMQ 3.10 says 60/40 either way).
    for body in [&b"body"[..], b""] {
        let closed = warren_e2e::publish_refusal_of(
            &broker,
            basic::Publish {
                exchange: "nope".into(),
                routing_key: "k".into(),
                ..Default::default()
            },
            &[],
            body,
        )
        .await;
        assert_eq!(
            (
                closed.channel,
                closed.code,
                closed.class_id,
                closed.method_id
            ),
            (1, 404, 60, 40),
            "body {body:?}"
        );
        assert_eq!(closed.text, "NOT_FOUND - no exchange 'nope' in vhost '/'");
    }
    // Other connections are untouched.
    let (_conn, ch) = channel(&broker).await;
    declare(&ch, "ok").await;
}

/// What RabbitMQ 3.10.8 answered, checked with the differential storm
/// (`tests/method_storm.rs`): an unknown delivery mode is refused, and a publish
/// wrong in several ways is refused for its exchange first, then its reply-to, its
/// user-id, its expiration, its CC/BCC headers, and last its delivery mode.
#[tokio::test]
async fn a_refused_publish_names_the_first_fault_rabbitmq_would_name() {
    let broker = TestBroker::start().await;
    let refusal = |exchange: &'static str, props: BasicProperties| {
        let broker = &broker;
        async move {
            let props = warren_codec::properties::encode_properties(&props).unwrap();
            let closed = warren_e2e::publish_refusal(
                broker,
                basic::Publish {
                    exchange: exchange.into(),
                    routing_key: "k".into(),
                    ..Default::default()
                },
                &props,
            )
            .await;
            assert_eq!((closed.class_id, closed.method_id), (60, 40));
            (closed.code, closed.text)
        }
    };
    for mode in [0, 3, 255] {
        assert_eq!(
            refusal("", BasicProperties::default().with_delivery_mode(mode)).await,
            (
                406,
                format!("PRECONDITION_FAILED - invalid message: {{delivery_mode_unknown,{mode}}}")
            )
        );
    }
    let all_wrong = BasicProperties::default()
        .with_delivery_mode(0)
        .with_expiration("abc".into())
        .with_user_id("mallory".into())
        .with_reply_to("amq.rabbitmq.reply-to".into());
    assert_eq!(
        refusal("nope", all_wrong.clone()).await,
        (
            404,
            "NOT_FOUND - no exchange 'nope' in vhost '/'".to_owned()
        )
    );
    assert_eq!(
        refusal("", all_wrong.clone()).await,
        (
            406,
            "PRECONDITION_FAILED - fast reply consumer does not exist".to_owned()
        )
    );
    assert_eq!(
        refusal("", all_wrong.clone().with_reply_to("r".into())).await,
        (
            406,
            "PRECONDITION_FAILED - user_id property set to 'mallory' but authenticated user was 'guest'"
                .to_owned()
        )
    );
    let all_wrong = all_wrong
        .with_reply_to("r".into())
        .with_user_id("guest".into());
    assert_eq!(
        refusal("", all_wrong.clone()).await,
        (
            406,
            "PRECONDITION_FAILED - invalid expiration 'abc': no_integer".to_owned()
        )
    );
    let mut cc = FieldTable::default();
    cc.insert("CC".into(), AMQPValue::LongString("notarray".into()));
    assert_eq!(
        refusal("", all_wrong.with_expiration("1".into()).with_headers(cc)).await,
        (
            406,
            "PRECONDITION_FAILED - invalid message: {unacceptable_type_in_header,\"CC\",longstr}"
                .to_owned()
        )
    );
}

#[tokio::test]
async fn mandatory_unroutable_is_returned_with_its_content() {
    let broker = TestBroker::start().await;
    let mut c = RawClient::open(broker.addr()).await;
    let props = warren_codec::properties::encode_properties(
        &BasicProperties::default()
            .with_content_type("text/plain".into())
            .with_message_id("m-1".into()),
    )
    .unwrap();
    let publish = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: "amq.direct".into(),
        routing_key: "nobody".into(),
        mandatory: true,
        immediate: false,
    }));
    let mut frames = raw::method_frame(1, &publish);
    frames.extend(raw::content_frames(1, &props, b"returned-body"));
    c.send(&frames).await;
    let (ch, m) = c.read_method().await.unwrap();
    assert_eq!(ch, 1);
    let Method::Other(AMQPClass::Basic(basic::AMQPMethod::Return(r))) = m else {
        panic!("expected basic.return, got {m:?}");
    };
    assert_eq!((r.reply_code, r.reply_text.as_str()), (312, "NO_ROUTE"));
    assert_eq!(
        (r.exchange.as_str(), r.routing_key.as_str()),
        ("amq.direct", "nobody")
    );
    let header = c.read_frame().await.unwrap();
    assert_eq!(header.frame_type, FrameType::Header);
    assert_eq!(&header.payload[12..], &props[..]);
    let body = c.read_frame().await.unwrap();
    assert_eq!(&body.payload[..], b"returned-body");
}

#[tokio::test]
async fn large_and_empty_bodies_round_trip() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    declare(&ch, "sizes").await;
    let big: Vec<u8> = (0..5 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    publish(&ch, "sizes", &big).await;
    publish(&ch, "sizes", b"").await;
    let m = get(&ch, "sizes", true).await.unwrap();
    assert_eq!(m.delivery.data.len(), big.len());
    assert!(m.delivery.data == big);
    assert_eq!(m.message_count, 1);
    let m = get(&ch, "sizes", true).await.unwrap();
    assert!(m.delivery.data.is_empty());
    assert!(get(&ch, "sizes", true).await.is_none());
}

/// Bodies in large frames are kept as those frames, small frames are joined; either
/// way a consumer whose frame_max differs from the publisher's must get them whole and
/// in order, in frames that fit its own limit.
#[tokio::test]
async fn bodies_cross_between_connections_with_different_frame_sizes() {
    let broker = TestBroker::start().await;
    let small_url = format!("{}?frame_max=4096", broker.url());
    let small = lapin::Connection::connect(&small_url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let small_ch = small.create_channel().await.unwrap();
    let (_conn, big_ch) = channel(&broker).await;
    declare(&big_ch, "to-big").await;
    declare(&big_ch, "to-small").await;
    let bodies: Vec<Vec<u8>> = [100, 4089, 4090, 40_000, 300_001]
        .iter()
        .map(|&n| (0..n).map(|i| (i % 253) as u8).collect())
        .collect();
    for body in &bodies {
        publish(&small_ch, "to-big", body).await;
        publish(&big_ch, "to-small", body).await;
    }
    let mut to_big = consume(&big_ch, "to-big", "c", true).await;
    for body in &bodies {
        let d = next(&mut to_big).await;
        assert_eq!(d.data.len(), body.len());
        assert!(d.data == *body, "{} octets from 4 KiB frames", body.len());
    }
    for body in &bodies {
        let m = get(&small_ch, "to-small", true).await.unwrap();
        assert!(
            m.delivery.data == *body,
            "{} octets into 4 KiB frames",
            body.len()
        );
    }
}

#[tokio::test]
async fn every_property_and_header_type_passes_through_untouched() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    declare(&ch, "props").await;
    let mut headers = FieldTable::default();
    headers.insert("bool".into(), AMQPValue::Boolean(true));
    headers.insert("i8".into(), AMQPValue::ShortShortInt(-5));
    headers.insert("i16".into(), AMQPValue::ShortInt(-300));
    headers.insert("i32".into(), AMQPValue::LongInt(-70_000));
    headers.insert("i64".into(), AMQPValue::LongLongInt(-5_000_000_000));
    headers.insert("f32".into(), AMQPValue::Float(1.5));
    headers.insert("f64".into(), AMQPValue::Double(2.25));
    headers.insert("str".into(), AMQPValue::LongString("text".into()));
    headers.insert("ts".into(), AMQPValue::Timestamp(1_700_000_000));
    headers.insert("void".into(), AMQPValue::Void);
    headers.insert("bytes".into(), AMQPValue::ByteArray(vec![1, 2, 3].into()));
    let mut inner = FieldTable::default();
    inner.insert("k".into(), AMQPValue::LongString("v".into()));
    headers.insert("table".into(), AMQPValue::FieldTable(inner));
    headers.insert(
        "array".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![
            AMQPValue::LongInt(1),
            AMQPValue::LongString("two".into()),
        ])),
    );
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("gzip".into())
        .with_headers(headers)
        .with_delivery_mode(2)
        .with_priority(5)
        .with_correlation_id("corr".into())
        .with_reply_to("replies".into())
        .with_message_id("id-1".into())
        .with_timestamp(1_700_000_001)
        .with_type("kind".into())
        .with_user_id("guest".into())
        .with_app_id("app".into())
        .with_cluster_id("cluster".into());
    ch.basic_publish(
        "".into(),
        "props".into(),
        Default::default(),
        b"body",
        props.clone(),
    )
    .await
    .unwrap();
    let m = get(&ch, "props", true).await.unwrap();
    assert_eq!(m.delivery.properties, props);
}

#[tokio::test]
async fn user_id_must_match_the_login_and_immediate_is_refused() {
    let broker = TestBroker::start().await;
    let props = warren_codec::properties::encode_properties(
        &BasicProperties::default().with_user_id("mallory".into()),
    )
    .unwrap();
    let closed = warren_e2e::publish_refusal(
        &broker,
        basic::Publish {
            exchange: "".into(),
            routing_key: "q".into(),
            ..Default::default()
        },
        &props,
    )
    .await;
    assert_eq!(
        (
            closed.channel,
            closed.code,
            closed.class_id,
            closed.method_id
        ),
        (1, 406, 60, 40)
    );
    assert_eq!(
        closed.text,
        "PRECONDITION_FAILED - user_id property set to 'mallory' but authenticated user was 'guest'"
    );
    let closed = warren_e2e::publish_refusal(
        &broker,
        basic::Publish {
            exchange: "".into(),
            routing_key: "q".into(),
            immediate: true,
            ..Default::default()
        },
        &[],
    )
    .await;
    assert_eq!(
        (
            closed.channel,
            closed.code,
            closed.class_id,
            closed.method_id
        ),
        (0, 540, 60, 40)
    );
    assert_eq!(closed.text, "NOT_IMPLEMENTED - immediate=true");
}

#[tokio::test]
async fn consume_with_server_tag_then_cancel() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    declare(&ch, "c").await;
    let mut consumer = ch
        .basic_consume(
            "c".into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let tag = consumer.tag().to_string();
    assert!(tag.starts_with("amq.ctag-") && tag.len() == 31, "{tag}");
    publish(&ch, "c", b"1").await;
    let d = next(&mut consumer).await;
    assert_eq!(d.data, b"1");
    assert!(!d.redelivered);
    ch.basic_cancel(tag.as_str().into(), Default::default())
        .await
        .unwrap();
    publish(&ch, "c", b"2").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(get(&ch, "c", true).await.unwrap().delivery.data, b"2");
}

#[tokio::test]
async fn exclusive_consumers_shut_others_out() {
    let broker = TestBroker::start().await;
    let (conn, ch) = channel(&broker).await;
    declare(&ch, "ex").await;
    let _first = ch
        .basic_consume(
            "ex".into(),
            "first".into(),
            BasicConsumeOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let other = conn.create_channel().await.unwrap();
    let err = other
        .basic_consume(
            "ex".into(),
            "second".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await;
    assert_eq!(err_code(err.map(|_| ())), 403);
    let ch2 = conn.create_channel().await.unwrap();
    declare(&ch2, "shared").await;
    let _c = consume(&ch2, "shared", "plain", false).await;
    let ch3 = conn.create_channel().await.unwrap();
    let err = ch3
        .basic_consume(
            "shared".into(),
            "greedy".into(),
            BasicConsumeOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    assert_eq!(err_code(err.map(|_| ())), 403);
}

#[tokio::test]
async fn duplicate_consumer_tag_is_a_connection_error() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    declare(&ch, "dup").await;
    let _a = consume(&ch, "dup", "same", true).await;
    let err = ch
        .basic_consume(
            "dup".into(),
            "same".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await;
    assert_eq!(err_code(err.map(|_| ())), 530);
}

#[tokio::test]
async fn get_reports_remaining_count_and_empty() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    declare(&ch, "g").await;
    assert!(get(&ch, "g", false).await.is_none());
    for i in 0..3u8 {
        publish(&ch, "g", &[i]).await;
    }
    let m = get(&ch, "g", false).await.unwrap();
    assert_eq!(
        (m.message_count, m.delivery.data.as_slice()),
        (2, &[0u8][..])
    );
    m.delivery.ack(Default::default()).await.unwrap();
}

#[tokio::test]
async fn round_robin_across_consumers() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    declare(&ch, "rr").await;
    let mut a = consume(&ch, "rr", "a", true).await;
    let mut b = consume(&ch, "rr", "b", true).await;
    for i in 0..6u8 {
        publish(&ch, "rr", &[i]).await;
    }
    let mut got_a = Vec::new();
    let mut got_b = Vec::new();
    for _ in 0..3 {
        got_a.push(next(&mut a).await.data[0]);
        got_b.push(next(&mut b).await.data[0]);
    }
    assert_eq!(got_a, vec![0, 2, 4]);
    assert_eq!(got_b, vec![1, 3, 5]);
}

#[tokio::test]
async fn prefetch_per_consumer_and_per_channel() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    declare(&ch, "pf").await;
    for i in 0..10u8 {
        publish(&ch, "pf", &[i]).await;
    }
    ch.basic_qos(2, BasicQosOptions { global: false })
        .await
        .unwrap();
    let mut c = consume(&ch, "pf", "c", false).await;
    let first = next(&mut c).await;
    next(&mut c).await;
    no_delivery(&mut c, Duration::from_millis(200)).await;
    first.ack(Default::default()).await.unwrap();
    next(&mut c).await;
    no_delivery(&mut c, Duration::from_millis(200)).await;

    // global=true: two consumers on one channel share a limit of 3.
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    declare(&ch, "g1").await;
    declare(&ch, "g2").await;
    for i in 0..5u8 {
        publish(&ch, "g1", &[i]).await;
        publish(&ch, "g2", &[i]).await;
    }
    ch.basic_qos(3, BasicQosOptions { global: true })
        .await
        .unwrap();
    let mut c1 = consume(&ch, "g1", "c1", false).await;
    let mut c2 = consume(&ch, "g2", "c2", false).await;
    let mut seen = 0;
    let mut held = Vec::new();
    while let Ok(Some(Ok(d))) = tokio::time::timeout(
        Duration::from_millis(300),
        futures_lite::StreamExt::next(&mut c1),
    )
    .await
    {
        seen += 1;
        held.push(d);
    }
    while let Ok(Some(Ok(d))) = tokio::time::timeout(
        Duration::from_millis(300),
        futures_lite::StreamExt::next(&mut c2),
    )
    .await
    {
        seen += 1;
        held.push(d);
    }
    assert_eq!(seen, 3);
    held.pop().unwrap().ack(Default::default()).await.unwrap();
    let more = tokio::select! {
        d = futures_lite::StreamExt::next(&mut c1) => d,
        d = futures_lite::StreamExt::next(&mut c2) => d,
    };
    assert!(more.is_some());
}

#[tokio::test]
async fn nack_reject_and_recover_requeue_with_redelivered() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    declare(&ch, "n").await;
    for i in 0..3u8 {
        publish(&ch, "n", &[i]).await;
    }
    let mut c = consume(&ch, "n", "c", false).await;
    let d0 = next(&mut c).await;
    let _d1 = next(&mut c).await;
    let d2 = next(&mut c).await;
    // nack(multiple) of the second requeues the first two, in their original order.
    ch.basic_nack(
        d2.delivery_tag - 1,
        BasicNackOptions {
            multiple: true,
            requeue: true,
        },
    )
    .await
    .unwrap();
    let r0 = next(&mut c).await;
    let r1 = next(&mut c).await;
    assert_eq!((r0.data[0], r0.redelivered), (0, true));
    assert_eq!((r1.data[0], r1.redelivered), (1, true));
    assert!(d0.delivery_tag < r0.delivery_tag);
    // reject without requeue drops it.
    ch.basic_reject(r0.delivery_tag, BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    // recover requeues everything outstanding.
    ch.basic_recover(BasicRecoverOptions { requeue: true })
        .await
        .unwrap();
    let mut again = [next(&mut c).await, next(&mut c).await];
    again.sort_by_key(|d| d.data[0]);
    assert_eq!(
        again.iter().map(|d| d.data[0]).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(again.iter().all(|d| d.redelivered));
    ch.basic_ack(0, BasicAckOptions { multiple: true })
        .await
        .unwrap();
    no_delivery(&mut c, Duration::from_millis(200)).await;
}

#[tokio::test]
async fn unknown_or_settled_delivery_tag_is_406() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    declare(&ch, "t").await;
    publish(&ch, "t", b"x").await;
    // lapin refuses to send a double ack itself, so speak raw AMQP here.
    let mut c = RawClient::open(broker.addr()).await;
    c.send_method(
        1,
        &AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
            queue: "t".into(),
            no_ack: false,
        })),
    )
    .await;
    let (_, m) = c.read_method().await.unwrap();
    let Method::Other(AMQPClass::Basic(basic::AMQPMethod::GetOk(ok))) = m else {
        panic!("{m:?}")
    };
    let ack = AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
        delivery_tag: ok.delivery_tag,
        multiple: false,
    }));
    c.send_method(1, &ack).await;
    c.send_method(1, &ack).await;
    let closed = c.expect_channel_close(1).await;
    assert_eq!(
        (closed.code, closed.text.as_str()),
        (406, "PRECONDITION_FAILED - unknown delivery tag 1")
    );
    c.open_channel(1).await;
    c.send_method(
        1,
        &AMQPClass::Basic(basic::AMQPMethod::Reject(basic::Reject {
            delivery_tag: 99,
            requeue: true,
        })),
    )
    .await;
    let closed = c.expect_channel_close(1).await;
    assert_eq!(
        (closed.code, closed.class_id, closed.method_id),
        (406, 60, 90)
    );
    // ack(multiple) with tag 0 and nothing outstanding is fine, as in RabbitMQ.
    c.open_channel(1).await;
    c.send_method(
        1,
        &AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
            delivery_tag: 0,
            multiple: true,
        })),
    )
    .await;
    c.send_method(
        1,
        &AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
            prefetch_count: 1,
            global: false,
        })),
    )
    .await;
    let (_, m) = c.read_method().await.unwrap();
    assert!(
        matches!(
            m,
            Method::Other(AMQPClass::Basic(basic::AMQPMethod::QosOk(_)))
        ),
        "{m:?}"
    );
}

#[tokio::test]
async fn unacked_messages_return_in_order_when_channel_or_connection_goes() {
    let broker = TestBroker::start().await;
    let (_conn, setup) = channel(&broker).await;
    declare(&setup, "back").await;
    for i in 0..5u8 {
        publish(&setup, "back", &[i]).await;
    }
    // A channel closes with 3 unacked.
    let conn = connect(&broker).await;
    let ch = conn.create_channel().await.unwrap();
    ch.basic_qos(3, Default::default()).await.unwrap();
    let mut c = consume(&ch, "back", "c", false).await;
    for _ in 0..3 {
        next(&mut c).await;
    }
    ch.close(200, "bye".into()).await.unwrap();
    // A connection drops with the next ones unacked.
    let conn2 = connect(&broker).await;
    let ch2 = conn2.create_channel().await.unwrap();
    ch2.basic_qos(1, Default::default()).await.unwrap();
    let mut c2 = consume(&ch2, "back", "c2", false).await;
    let d = next(&mut c2).await;
    assert_eq!((d.data[0], d.redelivered), (0, true));
    drop(c2);
    conn2.close(200, "bye".into()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut order = Vec::new();
    while let Some(m) = get(&setup, "back", true).await {
        order.push((m.delivery.data[0], m.delivery.redelivered));
    }
    assert_eq!(
        order,
        vec![(0, true), (1, true), (2, true), (3, false), (4, false)]
    );
}

#[tokio::test]
async fn consumer_cancel_notification_when_the_queue_is_deleted() {
    let broker = TestBroker::start().await;
    let mut watcher = RawClient::open(broker.addr()).await;
    watcher
        .send_method(
            1,
            &AMQPClass::Queue(warren_codec::spec::queue::AMQPMethod::Declare(
                warren_codec::spec::queue::Declare {
                    queue: "doomed".into(),
                    ..Default::default()
                },
            )),
        )
        .await;
    watcher.read_method().await.unwrap();
    watcher
        .send_method(
            1,
            &AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                queue: "doomed".into(),
                consumer_tag: "victim".into(),
                ..Default::default()
            })),
        )
        .await;
    watcher.read_method().await.unwrap();
    let (_conn, ch) = channel(&broker).await;
    ch.queue_delete("doomed".into(), Default::default())
        .await
        .unwrap();
    let (chan, m) = watcher.read_method().await.unwrap();
    assert_eq!(chan, 1);
    let Method::Other(AMQPClass::Basic(basic::AMQPMethod::Cancel(cancel))) = m else {
        panic!("expected basic.cancel, got {m:?}");
    };
    assert_eq!(
        (cancel.consumer_tag.as_str(), cancel.nowait),
        ("victim", true)
    );
}

/// `channel.close` and `channel.open` of one channel, for a client that pipelines
/// them without waiting for `close-ok`.
fn close_and_reopen(channel: u16) -> Vec<u8> {
    use warren_codec::spec::channel as ch_spec;
    let mut frames = raw::method_frame(
        channel,
        &AMQPClass::Channel(ch_spec::AMQPMethod::Close(ch_spec::Close {
            reply_code: 200,
            reply_text: "again".into(),
            class_id: 0,
            method_id: 0,
        })),
    );
    frames.extend(raw::method_frame(
        channel,
        &AMQPClass::Channel(ch_spec::AMQPMethod::Open(ch_spec::Open {})),
    ));
    frames
}

/// `basic.qos` with a prefetch the channel's consumers share.
fn global_qos(prefetch_count: u16) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
        prefetch_count,
        global: true,
    }))
}

/// `basic.consume` of "big" on channel 1 with this tag (acknowledged).
fn consume_big(tag: &str) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
        queue: "big".into(),
        consumer_tag: tag.into(),
        ..Default::default()
    }))
}

/// A raw client consuming "big" on channel 1 as "first", with a global prefetch of
/// `count`, while `count` 1 MiB messages are published one at a time. They reach its
/// connection one at a time; the client does not read, so the broker's output fills
/// and the later ones wait on their way, taken from the queue but not yet encoded.
async fn consumer_with_deliveries_in_flight(broker: &TestBroker, count: u16) -> RawClient {
    let (_conn, setup) = channel(broker).await;
    declare(&setup, "big").await;
    let mut c = RawClient::open(broker.addr()).await;
    c.send_method(1, &global_qos(count)).await;
    c.send_method(1, &consume_big("first")).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let body = vec![7u8; 1024 * 1024];
    for _ in 0..count {
        publish(&setup, "big", &body).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    c
}

/// A consumer cancelled while deliveries are on their way to it: those come back to the
/// queue, and the channel's shared prefetch (global qos) they took comes back too, so
/// the channel's next consumer gets every one of them.
#[tokio::test]
async fn cancelling_with_deliveries_in_flight_returns_the_channels_prefetch() {
    const COUNT: u16 = 40;
    let broker = TestBroker::start().await;
    let mut c = consumer_with_deliveries_in_flight(&broker, COUNT).await;
    c.send_method(
        1,
        &AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
            consumer_tag: "first".into(),
            nowait: false,
        })),
    )
    .await;
    let mut received = 0u16;
    let mut last_tag = 0;
    loop {
        match c.read_method().await.unwrap().1 {
            Method::Other(AMQPClass::Basic(basic::AMQPMethod::Deliver(d))) => {
                received += 1;
                last_tag = d.delivery_tag;
            }
            Method::Other(AMQPClass::Basic(basic::AMQPMethod::CancelOk(_))) => break,
            _ => {}
        }
    }
    assert!(
        received < COUNT,
        "every delivery reached the client before the cancel: nothing was in flight"
    );
    c.send_method(
        1,
        &AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
            delivery_tag: last_tag,
            multiple: true,
        })),
    )
    .await;
    c.send_method(1, &consume_big("second")).await;
    let mut again = 0u16;
    while again < COUNT - received {
        if let Method::Other(AMQPClass::Basic(basic::AMQPMethod::Deliver(_))) =
            c.read_method().await.unwrap().1
        {
            again += 1;
        }
    }
}

/// A channel closed while deliveries are on their way to it, and opened again under
/// the same number: the deliveries bounce, and give back the old channel's prefetch,
/// not the new one's, which must still hold its consumer to its limit.
#[tokio::test]
async fn deliveries_bounced_after_a_channel_reopened_leave_its_new_prefetch_alone() {
    let broker = TestBroker::start().await;
    let mut c = consumer_with_deliveries_in_flight(&broker, 40).await;
    let mut again = close_and_reopen(1);
    again.extend(raw::method_frame(1, &global_qos(1)));
    again.extend(raw::method_frame(1, &consume_big("second")));
    c.send(&again).await;
    let mut second = 0;
    let mut consuming = false;
    let quiet = tokio::time::Instant::now() + Duration::from_secs(1);
    while let Ok(Some((_, m))) = tokio::time::timeout_at(quiet, c.read_method()).await {
        match m {
            Method::Other(AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_))) => consuming = true,
            Method::Other(AMQPClass::Basic(basic::AMQPMethod::Deliver(d)))
                if d.consumer_tag.as_str() == "second" =>
            {
                second += 1;
            }
            _ => {}
        }
    }
    assert!(consuming);
    assert_eq!(
        second, 1,
        "a global prefetch of 1 let more deliveries through"
    );
}

/// A channel's close cancels its consumers without waiting for room in their queues'
/// inboxes, yet in order with what the connection sends the queue next: the consume of
/// the channel reopened must find the exclusive consumer gone, however full the inbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_channels_exclusive_consumer_is_gone_before_the_next_consume() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use warren_codec::spec::channel as ch_spec;

    let broker = TestBroker::start_with(|c| c.queue_command_capacity = 1).await;
    let (_conn, setup) = channel(&broker).await;
    declare(&setup, "busy").await;
    let stop = Arc::new(AtomicBool::new(false));
    let flood = tokio::spawn({
        let stop = stop.clone();
        async move {
            while !stop.load(Ordering::Relaxed) {
                publish(&setup, "busy", b"x").await;
            }
        }
    });
    let mut c = RawClient::open(broker.addr()).await;
    let consume = AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
        queue: "busy".into(),
        consumer_tag: "only".into(),
        no_ack: true,
        exclusive: true,
        ..Default::default()
    }));
    c.send_method(1, &consume).await;
    for round in 0..300 {
        loop {
            match c.read_method().await.unwrap().1 {
                Method::Other(AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_))) => break,
                Method::Other(AMQPClass::Channel(ch_spec::AMQPMethod::Close(close))) => {
                    panic!("round {round}: {close:?}")
                }
                _ => {}
            }
        }
        // Close, reopen and consume again in one write, as a client may pipeline them.
        let mut again = close_and_reopen(1);
        again.extend(raw::method_frame(1, &consume));
        c.send(&again).await;
    }
    stop.store(true, Ordering::Relaxed);
    flood.await.unwrap();
}
