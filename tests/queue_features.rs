//! Issue 4 end to end: TTLs, queue expiry, length limits, dead-lettering, delivery
//! limits, priorities, consumer priorities and single active consumer, consumer
//! timeouts, direct reply-to, and argument validation. Short real TTLs: the broker runs
//! in-process but over real sockets, so its clock is the real one.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

use std::time::Duration;

use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString};
use lapin::{BasicProperties, Channel};
use warren_e2e::{TestBroker, channel, consume, declare, err_code, next, no_delivery};

fn s(v: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(v))
}

fn args(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert((*k).into(), v.clone());
    }
    t
}

async fn declare_with(ch: &Channel, name: &str, a: FieldTable) {
    ch.queue_declare(name.into(), QueueDeclareOptions::default(), a)
        .await
        .unwrap();
}

async fn publish(ch: &Channel, queue: &str, body: &[u8], props: BasicProperties) {
    ch.basic_publish(
        "".into(),
        queue.into(),
        BasicPublishOptions::default(),
        body,
        props,
    )
    .await
    .unwrap();
}

async fn get(ch: &Channel, queue: &str) -> Option<lapin::message::BasicGetMessage> {
    ch.basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
}

async fn count(ch: &Channel, queue: &str) -> u32 {
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap()
    .message_count()
}

/// Wait until `queue` holds `n` messages (or fail after a few seconds).
async fn wait_count(ch: &Channel, queue: &str, n: u32) {
    for _ in 0..200 {
        if count(ch, queue).await == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "{queue} never held {n} messages (holds {})",
        count(ch, queue).await
    );
}

fn headers(m: &lapin::message::BasicGetMessage) -> FieldTable {
    m.delivery.properties.headers().clone().unwrap_or_default()
}

fn deaths(h: &FieldTable) -> Vec<FieldTable> {
    match h.inner().get("x-death") {
        Some(AMQPValue::FieldArray(a)) => a
            .as_slice()
            .iter()
            .map(|v| match v {
                AMQPValue::FieldTable(t) => t.clone(),
                other => panic!("x-death entry {other:?}"),
            })
            .collect(),
        other => panic!("no x-death: {other:?}"),
    }
}

fn text_of(t: &FieldTable, key: &str) -> String {
    match t.inner().get(key) {
        Some(AMQPValue::LongString(v)) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
        other => panic!("{key}: {other:?}"),
    }
}

fn count_of(t: &FieldTable) -> i64 {
    match t.inner().get("count") {
        Some(AMQPValue::LongLongInt(n)) => *n,
        other => panic!("count: {other:?}"),
    }
}

/// A queue `name` dead-lettering into queue `dl` through the default exchange.
async fn with_dlx(ch: &Channel, name: &str, dl: &str, mut extra: FieldTable) {
    declare(ch, dl).await;
    extra.insert("x-dead-letter-exchange".into(), s(""));
    extra.insert("x-dead-letter-routing-key".into(), s(dl));
    declare_with(ch, name, extra).await;
}

#[tokio::test]
async fn message_ttl_expires_and_dead_letters_with_reason_expired() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    with_dlx(
        &ch,
        "ttl",
        "ttl.dl",
        args(&[("x-message-ttl", AMQPValue::LongInt(50))]),
    )
    .await;
    publish(
        &ch,
        "ttl",
        b"old",
        BasicProperties::default().with_expiration("60000".into()),
    )
    .await;
    wait_count(&ch, "ttl.dl", 1).await;
    assert_eq!(count(&ch, "ttl").await, 0);
    let m = get(&ch, "ttl.dl").await.unwrap();
    assert!(
        m.delivery.properties.expiration().is_none(),
        "expiration is removed"
    );
    let h = headers(&m);
    let d = deaths(&h);
    assert_eq!(d.len(), 1);
    assert_eq!(text_of(&d[0], "reason"), "expired");
    assert_eq!(text_of(&d[0], "queue"), "ttl");
    assert_eq!(text_of(&d[0], "original-expiration"), "60000");
    assert_eq!(count_of(&d[0]), 1);
    assert!(matches!(
        d[0].inner().get("time"),
        Some(AMQPValue::Timestamp(_))
    ));
    assert_eq!(text_of(&h, "x-first-death-reason"), "expired");
}

#[tokio::test]
async fn per_message_ttl_expires_behind_the_head() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    with_dlx(&ch, "mixed", "mixed.dl", FieldTable::default()).await;
    publish(
        &ch,
        "mixed",
        b"long",
        BasicProperties::default().with_expiration("60000".into()),
    )
    .await;
    publish(
        &ch,
        "mixed",
        b"short",
        BasicProperties::default().with_expiration("50".into()),
    )
    .await;
    publish(&ch, "mixed", b"forever", BasicProperties::default()).await;
    wait_count(&ch, "mixed.dl", 1).await;
    assert_eq!(get(&ch, "mixed.dl").await.unwrap().delivery.data, b"short");
    assert_eq!(get(&ch, "mixed").await.unwrap().delivery.data, b"long");
    assert_eq!(get(&ch, "mixed").await.unwrap().delivery.data, b"forever");
}

#[tokio::test]
async fn ttl_zero_means_deliver_now_or_expire() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    with_dlx(
        &ch,
        "now",
        "now.dl",
        args(&[("x-message-ttl", AMQPValue::LongInt(0))]),
    )
    .await;
    publish(&ch, "now", b"nobody-waiting", BasicProperties::default()).await;
    assert!(get(&ch, "now").await.is_none());
    wait_count(&ch, "now.dl", 1).await;
    let mut c = consume(&ch, "now", "c", true).await;
    publish(&ch, "now", b"someone-waiting", BasicProperties::default()).await;
    assert_eq!(next(&mut c).await.data, b"someone-waiting");
    assert_eq!(count(&ch, "now.dl").await, 1);
}

#[tokio::test]
async fn invalid_expiration_is_406_on_publish() {
    let broker = TestBroker::start().await;
    let props = warren_codec::properties::encode_properties(
        &BasicProperties::default().with_expiration("1.5".into()),
    )
    .unwrap();
    let closed = warren_e2e::publish_refusal(
        &broker,
        warren_codec::spec::basic::Publish {
            exchange: "".into(),
            routing_key: "q".into(),
            ..Default::default()
        },
        &props,
    )
    .await;
    assert_eq!(
        (closed.code, closed.class_id, closed.method_id),
        (406, 60, 40)
    );
    assert_eq!(
        closed.text,
        "PRECONDITION_FAILED - invalid expiration '1.5': {leftover_string,\".5\"}"
    );
}

#[tokio::test]
async fn unused_queue_expires_but_a_consumer_keeps_it() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    declare_with(&ch, "idle", args(&[("x-expires", AMQPValue::LongInt(200))])).await;
    declare_with(&ch, "busy", args(&[("x-expires", AMQPValue::LongInt(200))])).await;
    let _c = consume(&ch, "busy", "c", true).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    ch.queue_declare("busy".into(), passive, FieldTable::default())
        .await
        .unwrap();
    assert_eq!(
        err_code(
            ch.queue_declare("idle".into(), passive, FieldTable::default())
                .await
        ),
        404
    );
}

#[tokio::test]
async fn drop_head_dead_letters_the_oldest_with_reason_maxlen() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    with_dlx(
        &ch,
        "short",
        "short.dl",
        args(&[("x-max-length", AMQPValue::LongInt(2))]),
    )
    .await;
    for b in [b"1", b"2", b"3"] {
        publish(&ch, "short", b, BasicProperties::default()).await;
    }
    wait_count(&ch, "short.dl", 1).await;
    let dropped = get(&ch, "short.dl").await.unwrap();
    assert_eq!(dropped.delivery.data, b"1");
    assert_eq!(text_of(&deaths(&headers(&dropped))[0], "reason"), "maxlen");
    assert_eq!(count(&ch, "short").await, 2);
    // x-max-length-bytes counts body octets.
    declare_with(
        &ch,
        "bytes",
        args(&[("x-max-length-bytes", AMQPValue::LongInt(10))]),
    )
    .await;
    for b in [&b"666666"[..], b"4444", b"1"] {
        publish(&ch, "bytes", b, BasicProperties::default()).await;
    }
    wait_count(&ch, "bytes", 2).await;
    assert_eq!(get(&ch, "bytes").await.unwrap().delivery.data, b"4444");
}

#[tokio::test]
async fn reject_publish_nacks_and_reject_publish_dlx_also_dead_letters() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    declare_with(
        &ch,
        "full",
        args(&[
            ("x-max-length", AMQPValue::LongInt(1)),
            ("x-overflow", s("reject-publish")),
        ]),
    )
    .await;
    with_dlx(
        &ch,
        "full-dlx",
        "full-dlx.dl",
        args(&[
            ("x-max-length", AMQPValue::LongInt(1)),
            ("x-overflow", s("reject-publish-dlx")),
        ]),
    )
    .await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    for q in ["full", "full-dlx"] {
        let first = ch
            .basic_publish(
                "".into(),
                q.into(),
                Default::default(),
                b"in",
                BasicProperties::default(),
            )
            .await
            .unwrap();
        let second = ch
            .basic_publish(
                "".into(),
                q.into(),
                Default::default(),
                b"out",
                BasicProperties::default(),
            )
            .await
            .unwrap();
        assert!(first.await.unwrap().is_ack(), "{q}");
        assert!(second.await.unwrap().is_nack(), "{q}");
    }
    assert_eq!(count(&ch, "full").await, 1);
    wait_count(&ch, "full-dlx.dl", 1).await;
    let dl = get(&ch, "full-dlx.dl").await.unwrap();
    assert_eq!(dl.delivery.data, b"out");
    assert_eq!(text_of(&deaths(&headers(&dl))[0], "reason"), "maxlen");
    // Messages held by a consumer do not count against the limit.
    let (_conn2, ch2) = channel(&broker).await;
    ch2.basic_qos(10, BasicQosOptions::default()).await.unwrap();
    let mut c = consume(&ch2, "full", "c", false).await;
    next(&mut c).await;
    let ok = ch
        .basic_publish(
            "".into(),
            "full".into(),
            Default::default(),
            b"fits",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    assert!(ok.await.unwrap().is_ack());
}

#[tokio::test]
async fn rejected_messages_dead_letter_with_keys_and_missing_dlx_drops() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    ch.exchange_declare(
        "dlx".into(),
        lapin::ExchangeKind::Direct,
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    declare(&ch, "by-key").await;
    ch.queue_bind(
        "by-key".into(),
        "dlx".into(),
        "orig".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    declare_with(&ch, "work", args(&[("x-dead-letter-exchange", s("dlx"))])).await;
    declare_with(
        &ch,
        "nowhere",
        args(&[("x-dead-letter-exchange", s("does-not-exist"))]),
    )
    .await;
    ch.queue_bind(
        "work".into(),
        "amq.direct".into(),
        "orig".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.basic_publish(
        "amq.direct".into(),
        "orig".into(),
        Default::default(),
        b"r",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    publish(&ch, "nowhere", b"lost", BasicProperties::default()).await;
    for q in ["work", "nowhere"] {
        let m = ch
            .basic_get(q.into(), BasicGetOptions { no_ack: false })
            .await
            .unwrap()
            .unwrap();
        m.delivery
            .nack(BasicNackOptions {
                requeue: false,
                multiple: false,
            })
            .await
            .unwrap();
    }
    wait_count(&ch, "by-key", 1).await;
    let m = get(&ch, "by-key").await.unwrap();
    assert_eq!(
        (
            m.delivery.exchange.as_str(),
            m.delivery.routing_key.as_str()
        ),
        ("dlx", "orig")
    );
    let d = deaths(&headers(&m));
    assert_eq!(text_of(&d[0], "reason"), "rejected");
    assert_eq!(text_of(&d[0], "exchange"), "amq.direct");
    assert!(
        matches!(d[0].inner().get("routing-keys"), Some(AMQPValue::FieldArray(a)) if a.as_slice() == [s("orig")])
    );
    assert_eq!(count(&ch, "nowhere").await, 0, "dropped, not an error");
    ch.basic_qos(1, Default::default()).await.unwrap();
}

#[tokio::test]
async fn expiry_cycles_are_dropped_but_rejection_cycles_continue() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    // A queue whose expired messages come straight back to itself.
    declare_with(
        &ch,
        "loop",
        args(&[
            ("x-message-ttl", AMQPValue::LongInt(30)),
            ("x-dead-letter-exchange", s("")),
            ("x-dead-letter-routing-key", s("loop")),
        ]),
    )
    .await;
    publish(&ch, "loop", b"x", BasicProperties::default()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&ch, "loop").await, 0, "the cycle was cut");
    // Rejections may cycle forever; each one is counted.
    declare_with(
        &ch,
        "again",
        args(&[
            ("x-dead-letter-exchange", s("")),
            ("x-dead-letter-routing-key", s("again")),
        ]),
    )
    .await;
    publish(&ch, "again", b"y", BasicProperties::default()).await;
    for round in 1..=3 {
        wait_count(&ch, "again", 1).await;
        let m = ch
            .basic_get("again".into(), BasicGetOptions { no_ack: false })
            .await
            .unwrap()
            .unwrap();
        if round > 1 {
            assert_eq!(count_of(&deaths(&headers(&m))[0]), round - 1);
        }
        m.delivery
            .reject(lapin::options::BasicRejectOptions { requeue: false })
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn retry_pipeline_counts_deaths_and_parks_poison_messages() {
    // work --reject--> wait (TTL) --expire--> work ... with a delivery limit to parking.
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    declare(&ch, "parking").await;
    ch.exchange_declare(
        "retry".into(),
        lapin::ExchangeKind::Direct,
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.exchange_declare(
        "back".into(),
        lapin::ExchangeKind::Direct,
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    declare_with(&ch, "work", args(&[("x-dead-letter-exchange", s("retry"))])).await;
    declare_with(
        &ch,
        "wait",
        args(&[
            ("x-message-ttl", AMQPValue::LongInt(50)),
            ("x-dead-letter-exchange", s("back")),
        ]),
    )
    .await;
    ch.queue_bind(
        "wait".into(),
        "retry".into(),
        "job".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        "work".into(),
        "back".into(),
        "job".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        "work".into(),
        "amq.direct".into(),
        "job".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.basic_publish(
        "amq.direct".into(),
        "job".into(),
        Default::default(),
        b"task",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    for round in 1..=3i64 {
        wait_count(&ch, "work", 1).await;
        let m = ch
            .basic_get("work".into(), BasicGetOptions { no_ack: false })
            .await
            .unwrap()
            .unwrap();
        if round > 1 {
            let d = deaths(&headers(&m));
            // Most recent first: the expiry in "wait", then the rejection in "work".
            assert_eq!(
                (text_of(&d[0], "queue"), text_of(&d[0], "reason")),
                ("wait".into(), "expired".into())
            );
            assert_eq!(
                (text_of(&d[1], "queue"), text_of(&d[1], "reason")),
                ("work".into(), "rejected".into())
            );
            assert_eq!(count_of(&d[0]), round - 1);
            assert_eq!(count_of(&d[1]), round - 1);
            assert_eq!(text_of(&headers(&m), "x-first-death-queue"), "work");
        }
        m.delivery
            .nack(BasicNackOptions {
                requeue: false,
                multiple: false,
            })
            .await
            .unwrap();
    }
    // A delivery limit sends a poison message to the parking queue instead.
    with_dlx(
        &ch,
        "poison",
        "poison.park",
        args(&[("x-delivery-limit", AMQPValue::LongInt(2))]),
    )
    .await;
    publish(&ch, "poison", b"bad", BasicProperties::default()).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let m = ch
            .basic_get("poison".into(), BasicGetOptions { no_ack: false })
            .await
            .unwrap()
            .unwrap();
        seen.push(headers(&m).inner().get("x-delivery-count").cloned());
        m.delivery
            .nack(BasicNackOptions {
                requeue: true,
                multiple: false,
            })
            .await
            .unwrap();
    }
    assert_eq!(
        seen,
        vec![
            Some(AMQPValue::LongLongInt(0)),
            Some(AMQPValue::LongLongInt(1)),
            Some(AMQPValue::LongLongInt(2))
        ]
    );
    wait_count(&ch, "poison.park", 1).await;
    let parked = get(&ch, "poison.park").await.unwrap();
    assert_eq!(
        text_of(&deaths(&headers(&parked))[0], "reason"),
        "delivery_limit"
    );
    assert_eq!(count(&ch, "poison").await, 0);
}

#[tokio::test]
async fn priorities_higher_first_fifo_within_requeue_keeps_priority() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    declare_with(
        &ch,
        "prio",
        args(&[("x-max-priority", AMQPValue::LongInt(10))]),
    )
    .await;
    for (body, p) in [
        ("none", None),
        ("p1", Some(1)),
        ("p9", Some(9)),
        ("p200", Some(200)),
        ("p9b", Some(9)),
        ("p5", Some(5)),
    ] {
        let props = p.map_or_else(BasicProperties::default, |p| {
            BasicProperties::default().with_priority(p)
        });
        publish(&ch, "prio", body.as_bytes(), props).await;
    }
    let first = ch
        .basic_get("prio".into(), BasicGetOptions { no_ack: false })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first.delivery.data, b"p200",
        "above the maximum counts as the maximum"
    );
    first
        .delivery
        .nack(BasicNackOptions {
            requeue: true,
            multiple: false,
        })
        .await
        .unwrap();
    let mut order = Vec::new();
    while let Some(m) = get(&ch, "prio").await {
        order.push(String::from_utf8(m.delivery.data.clone()).unwrap());
    }
    assert_eq!(order, ["p200", "p9", "p9b", "p5", "p1", "none"]);
}

#[tokio::test]
async fn consumer_priorities_and_single_active_consumer() {
    let broker = TestBroker::start().await;
    let (conn, ch) = channel(&broker).await;
    declare(&ch, "cp").await;
    let hi_ch = conn.create_channel().await.unwrap();
    hi_ch.basic_qos(2, Default::default()).await.unwrap();
    let mut hi = hi_ch
        .basic_consume(
            "cp".into(),
            "hi".into(),
            BasicConsumeOptions::default(),
            args(&[("x-priority", AMQPValue::LongInt(10))]),
        )
        .await
        .unwrap();
    let mut lo = consume(&ch, "cp", "lo", true).await;
    for i in 0..4u8 {
        publish(&ch, "cp", &[i], BasicProperties::default()).await;
    }
    assert_eq!(next(&mut hi).await.data, [0]);
    assert_eq!(next(&mut hi).await.data, [1]);
    assert_eq!(next(&mut lo).await.data, [2]);
    assert_eq!(next(&mut lo).await.data, [3]);
    let bad = conn.create_channel().await.unwrap();
    let err = bad
        .basic_consume(
            "cp".into(),
            "bad".into(),
            Default::default(),
            args(&[("x-priority", s("high"))]),
        )
        .await;
    assert_eq!(err_code(err.map(|_| ())), 406);
    // A missing queue is named before a bad argument, as RabbitMQ 3.10 does.
    let bad = conn.create_channel().await.unwrap();
    let err = bad
        .basic_consume(
            "no-such-queue".into(),
            "bad".into(),
            Default::default(),
            args(&[("x-priority", s("high"))]),
        )
        .await;
    assert_eq!(err_code(err.map(|_| ())), 404);

    declare_with(
        &ch,
        "sac",
        args(&[("x-single-active-consumer", AMQPValue::Boolean(true))]),
    )
    .await;
    let mut first = consume(&ch, "sac", "first", true).await;
    let mut second = consume(&ch, "sac", "second", true).await;
    publish(&ch, "sac", b"a", BasicProperties::default()).await;
    publish(&ch, "sac", b"b", BasicProperties::default()).await;
    assert_eq!(next(&mut first).await.data, b"a");
    assert_eq!(next(&mut first).await.data, b"b");
    no_delivery(&mut second, Duration::from_millis(100)).await;
    ch.basic_cancel("first".into(), Default::default())
        .await
        .unwrap();
    publish(&ch, "sac", b"c", BasicProperties::default()).await;
    assert_eq!(next(&mut second).await.data, b"c");
    let q = ch
        .queue_declare(
            "sac".into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(q.consumer_count(), 1);
}

#[tokio::test]
async fn unacked_past_the_consumer_timeout_closes_the_channel_and_requeues() {
    use warren_codec::spec::{AMQPClass, basic};
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    declare_with(
        &ch,
        "slow",
        args(&[("x-consumer-timeout", AMQPValue::LongInt(200))]),
    )
    .await;
    publish(&ch, "slow", b"m", BasicProperties::default()).await;
    let mut worker = warren_e2e::RawClient::open(broker.addr()).await;
    worker
        .send_method(
            1,
            &AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                queue: "slow".into(),
                consumer_tag: "w".into(),
                ..Default::default()
            })),
        )
        .await;
    let started = std::time::Instant::now();
    let closed = worker.expect_channel_close(1).await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(closed.code, 406);
    assert_eq!(
        closed.text,
        "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. Timeout value used: 200 ms. \
         This timeout value can be configured, see consumers doc guide to learn more"
    );
    wait_count(&ch, "slow", 1).await;
    let again = ch
        .basic_get("slow".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .unwrap();
    assert!(again.delivery.redelivered);
}

#[tokio::test]
async fn direct_reply_to_rpc() {
    let broker = TestBroker::start().await;
    let (_conn, client) = channel(&broker).await;
    let (_conn2, server) = channel(&broker).await;
    declare(&server, "rpc").await;
    let mut requests = consume(&server, "rpc", "srv", true).await;
    let mut replies = client
        .basic_consume(
            "amq.rabbitmq.reply-to".into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    client
        .basic_publish(
            "".into(),
            "rpc".into(),
            Default::default(),
            b"ping",
            BasicProperties::default()
                .with_reply_to("amq.rabbitmq.reply-to".into())
                .with_correlation_id("c1".into()),
        )
        .await
        .unwrap();
    let req = next(&mut requests).await;
    let reply_to = req.properties.reply_to().clone().unwrap();
    assert!(
        reply_to.as_str().starts_with("amq.rabbitmq.reply-to."),
        "{reply_to}"
    );
    server
        .basic_publish(
            "".into(),
            reply_to,
            Default::default(),
            b"pong",
            BasicProperties::default().with_correlation_id("c1".into()),
        )
        .await
        .unwrap();
    let reply = next(&mut replies).await;
    assert_eq!(reply.data, b"pong");
    assert_eq!(
        reply.properties.correlation_id().as_ref().unwrap().as_str(),
        "c1"
    );
    // The pseudo-queue "exists" for declarations.
    let q = client
        .queue_declare(
            "amq.rabbitmq.reply-to".into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(q.consumer_count(), 1);
}

#[tokio::test]
async fn direct_reply_to_misuse_errors() {
    let broker = TestBroker::start().await;
    let (conn, ch) = channel(&broker).await;
    // Declaring the pseudo-queue makes it the channel's last queue: an empty name then
    // means it (RabbitMQ 3.10 answers this consume with the same 406).
    let mut c = warren_e2e::RawClient::open(broker.addr()).await;
    c.send(&warren_e2e::raw::queue_declare_frame(
        1,
        "amq.rabbitmq.reply-to",
        false,
    ))
    .await;
    c.read_method().await.unwrap();
    c.send_method(
        1,
        &warren_codec::spec::AMQPClass::Basic(warren_codec::spec::basic::AMQPMethod::Consume(
            warren_codec::spec::basic::Consume {
                queue: "".into(),
                ..Default::default()
            },
        )),
    )
    .await;
    let closed = c.expect_channel_close(1).await;
    assert_eq!(
        (closed.code, closed.text.as_str(), closed.method_id),
        (
            406,
            "PRECONDITION_FAILED - reply consumer cannot acknowledge",
            20
        )
    );
    // The reply consumer's tag is not a queue consumer's: taking it again is refused
    // for what the new consumer is, and a queue consumer may have it (all as
    // RabbitMQ 3.10.8 answered).
    let consume = |queue: &str, no_ack: bool| {
        warren_codec::spec::AMQPClass::Basic(warren_codec::spec::basic::AMQPMethod::Consume(
            warren_codec::spec::basic::Consume {
                queue: queue.into(),
                consumer_tag: "c1".into(),
                no_ack,
                ..Default::default()
            },
        ))
    };
    let mut c = warren_e2e::RawClient::open(broker.addr()).await;
    c.send(&warren_e2e::raw::queue_declare_frame(1, "rq", false))
        .await;
    c.read_method().await.unwrap();
    for (id, (second, text)) in [
        (
            consume("amq.rabbitmq.reply-to", false),
            Some("PRECONDITION_FAILED - reply consumer cannot acknowledge"),
        ),
        (
            consume("amq.rabbitmq.reply-to", true),
            Some("PRECONDITION_FAILED - reply consumer already set"),
        ),
        (consume("rq", true), None),
    ]
    .into_iter()
    .enumerate()
    {
        let id = u16::try_from(id + 2).unwrap();
        c.open_channel(id).await;
        c.send_method(id, &consume("amq.rabbitmq.reply-to", true))
            .await;
        c.send_method(id, &second).await;
        match text {
            Some(text) => {
                let closed = c.expect_channel_close(id).await;
                assert_eq!((closed.code, closed.text.as_str()), (406, text));
            }
            None => {
                for _ in 0..2 {
                    let (on, m) = c.read_method().await.unwrap();
                    assert_eq!(on, id);
                    assert_eq!(m.id(), warren_codec::method::MethodId::new(60, 21), "{m:?}");
                }
            }
        }
    }
    let err = ch
        .basic_consume(
            "amq.rabbitmq.reply-to".into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert_eq!(err_code(err.map(|_| ())), 406);
    let props = warren_codec::properties::encode_properties(
        &BasicProperties::default().with_reply_to("amq.rabbitmq.reply-to".into()),
    )
    .unwrap();
    let closed = warren_e2e::publish_refusal(
        &broker,
        warren_codec::spec::basic::Publish {
            exchange: "".into(),
            routing_key: "x".into(),
            ..Default::default()
        },
        &props,
    )
    .await;
    assert_eq!(
        (closed.code, closed.text.as_str()),
        (
            406,
            "PRECONDITION_FAILED - fast reply consumer does not exist"
        )
    );
    let ch = conn.create_channel().await.unwrap();
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    ch.basic_consume(
        "amq.rabbitmq.reply-to".into(),
        "a".into(),
        no_ack,
        FieldTable::default(),
    )
    .await
    .unwrap();
    let err = ch
        .basic_consume(
            "amq.rabbitmq.reply-to".into(),
            "b".into(),
            no_ack,
            FieldTable::default(),
        )
        .await;
    assert_eq!(err_code(err.map(|_| ())), 406);
}

#[tokio::test]
async fn argument_validation_uses_rabbitmq_texts() {
    let broker = TestBroker::start().await;
    let mut c = warren_e2e::RawClient::open(broker.addr()).await;
    use warren_codec::spec::{AMQPClass, queue};
    let cases: [(&str, AMQPValue, &str); 5] = [
        ("x-expires", AMQPValue::LongInt(0), "{value_zero,0}"),
        (
            "x-max-length",
            AMQPValue::LongString("x".into()),
            "\"expected integer, got longstr\"",
        ),
        (
            "x-overflow",
            AMQPValue::LongString("bogus".into()),
            "invalid_overflow",
        ),
        (
            "x-single-active-consumer",
            AMQPValue::LongString("yes".into()),
            "{unacceptable_type,longstr}",
        ),
        (
            "x-message-ttl",
            AMQPValue::LongLongInt(315_360_000_001),
            "{value_too_large,315360000001}",
        ),
    ];
    for (i, (key, value, reason)) in cases.into_iter().enumerate() {
        let id = u16::try_from(i + 2).unwrap();
        c.open_channel(id).await;
        c.send_method(
            id,
            &AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                queue: "v".into(),
                arguments: args(&[(key, value)]),
                ..Default::default()
            })),
        )
        .await;
        let closed = c.expect_channel_close(id).await;
        assert_eq!(closed.code, 406);
        assert_eq!(
            closed.text,
            format!(
                "PRECONDITION_FAILED - invalid arg '{key}' for queue 'v' in vhost '/': {reason}"
            )
        );
    }
    let _ = FieldArray::from(Vec::<AMQPValue>::new());
}

/// What RabbitMQ 3.10.8 answered (probed with pika): arguments are checked in its
/// `declare_args` order, not the table's, and an argument of another queue type is
/// refused on a classic queue instead of being ignored.
#[tokio::test]
async fn classic_queues_refuse_other_types_arguments_and_check_in_rabbitmq_order() {
    let broker = TestBroker::start().await;
    let mut c = warren_e2e::RawClient::open(broker.addr()).await;
    use warren_codec::spec::{AMQPClass, queue};
    let of_type = |key: &str| {
        format!(
            "PRECONDITION_FAILED - invalid arg '{key}' for queue 'v' in vhost '/' of queue type rabbit_classic_queue"
        )
    };
    let cases: Vec<(Vec<(&str, AMQPValue)>, String)> = vec![
        (
            vec![
                ("x-max-priority", AMQPValue::LongInt(-1)),
                ("x-message-ttl", AMQPValue::LongInt(-1)),
            ],
            "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue 'v' in vhost '/': {value_negative,-1}".into(),
        ),
        (
            vec![("x-queue-version", AMQPValue::LongInt(-1))],
            "PRECONDITION_FAILED - invalid arg 'x-queue-version' for queue 'v' in vhost '/': {value_negative,-1}".into(),
        ),
        (
            vec![("x-queue-version", AMQPValue::LongInt(3))],
            "PRECONDITION_FAILED - invalid arg 'x-queue-version' for queue 'v' in vhost '/': \"unsupported queue version '3'\"".into(),
        ),
        (
            vec![
                ("x-max-age", s("1D")),
                ("x-overflow", s("bogus")),
            ],
            "PRECONDITION_FAILED - invalid arg 'x-overflow' for queue 'v' in vhost '/': invalid_overflow".into(),
        ),
        (vec![("x-max-age", s("1D"))], of_type("x-max-age")),
        (
            vec![("x-max-in-memory-length", AMQPValue::LongInt(5))],
            of_type("x-max-in-memory-length"),
        ),
        (
            vec![("x-dead-letter-strategy", s("at-least-once"))],
            of_type("x-dead-letter-strategy"),
        ),
        (
            vec![("x-stream-max-segment-size-bytes", AMQPValue::LongInt(-1))],
            of_type("x-stream-max-segment-size-bytes"),
        ),
    ];
    for (i, (arguments, expected)) in cases.into_iter().enumerate() {
        let id = u16::try_from(i + 2).unwrap();
        c.open_channel(id).await;
        c.send_method(
            id,
            &AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                queue: "v".into(),
                arguments: args(&arguments),
                ..Default::default()
            })),
        )
        .await;
        let closed = c.expect_channel_close(id).await;
        assert_eq!((closed.code, closed.text), (406, expected));
    }
    // Accepted: both queue versions, and keys no queue type knows.
    let (_conn, ch) = channel(&broker).await;
    for (name, arguments) in [
        ("v1", args(&[("x-queue-version", AMQPValue::LongInt(1))])),
        ("v2", args(&[("x-queue-version", AMQPValue::LongInt(2))])),
        ("other", args(&[("x-storm", AMQPValue::LongInt(1))])),
    ] {
        ch.queue_declare(name.into(), QueueDeclareOptions::default(), arguments)
            .await
            .unwrap();
    }
}

/// RabbitMQ 3.10.8's answers (probed with pika): in a priority queue, drop-head drops
/// the message a consumer would get next, highest priority first, even the one just
/// published.
#[tokio::test]
async fn drop_head_in_a_priority_queue_drops_the_next_delivery() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    let length = |n| ("x-max-length", AMQPValue::LongInt(n));
    let bytes = |n| ("x-max-length-bytes", AMQPValue::LongInt(n));
    // (limit, messages published with their priorities, what is left in get order)
    type Case<'a> = (&'a [(&'a [u8], u8)], &'a [&'a [u8]]);
    let cases: [((&str, AMQPValue), Case<'_>); 4] = [
        (
            length(2),
            (&[(b"A", 0), (b"B", 2), (b"C", 0)], &[b"A", b"C"]),
        ),
        (
            length(2),
            (&[(b"A", 2), (b"B", 0), (b"C", 1)], &[b"C", b"B"]),
        ),
        (bytes(3), (&[(b"a", 0), (&[b'B'; 300], 2)], &[b"a"])),
        (bytes(3), (&[(b"a", 2), (&[b'B'; 300], 0)], &[])),
    ];
    for (i, (limit, (published, left))) in cases.into_iter().enumerate() {
        let name = format!("dh{i}");
        declare_with(
            &ch,
            &name,
            args(&[("x-max-priority", AMQPValue::LongInt(2)), limit]),
        )
        .await;
        for (body, priority) in published {
            publish(
                &ch,
                &name,
                body,
                BasicProperties::default().with_priority(*priority),
            )
            .await;
        }
        let mut got = Vec::new();
        while let Some(m) = get(&ch, &name).await {
            got.push(m.delivery.data);
        }
        let want: Vec<Vec<u8>> = left.iter().map(|b| b.to_vec()).collect();
        assert_eq!(got, want, "case {i}");
    }
}
