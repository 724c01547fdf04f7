//! Issue item 4: exchange declaration, equivalence, deletion, the default and `amq.*`
//! exchanges, and routing through direct, fanout, topic and headers exchanges.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

use std::time::Duration;

use lapin::options::{
    BasicPublishOptions, ExchangeBindOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueBindOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};
use warren_e2e::{RawClient, TestBroker, channel, consume, declare, err_code, next, no_delivery};

async fn declare_x(
    ch: &Channel,
    name: &str,
    kind: ExchangeKind,
    opts: ExchangeDeclareOptions,
) -> lapin::Result<()> {
    ch.exchange_declare(name.into(), kind, opts, FieldTable::default())
        .await
}

async fn publish(ch: &Channel, exchange: &str, key: &str, body: &[u8]) {
    ch.basic_publish(
        exchange.into(),
        key.into(),
        BasicPublishOptions::default(),
        body,
        BasicProperties::default(),
    )
    .await
    .unwrap();
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) {
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn predeclared_exchanges_exist_and_are_protected() {
    let broker = TestBroker::start().await;
    let (conn, ch) = channel(&broker).await;
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    for (name, kind) in [
        ("amq.direct", ExchangeKind::Direct),
        ("amq.fanout", ExchangeKind::Fanout),
        ("amq.topic", ExchangeKind::Topic),
        ("amq.headers", ExchangeKind::Headers),
        ("amq.match", ExchangeKind::Headers),
    ] {
        declare_x(&ch, name, kind.clone(), passive).await.unwrap();
        // Redeclaring them as they are (durable) is fine.
        declare_x(
            &ch,
            name,
            kind,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        err_code(declare_x(&ch, "amq.custom", ExchangeKind::Direct, Default::default()).await),
        403
    );
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        err_code(
            ch.exchange_delete("amq.direct".into(), Default::default())
                .await
        ),
        403
    );
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        err_code(declare_x(&ch, "", ExchangeKind::Direct, Default::default()).await),
        403
    );
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        err_code(ch.exchange_delete("".into(), Default::default()).await),
        403
    );
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "q").await;
    assert_eq!(
        err_code(
            ch.queue_bind(
                "q".into(),
                "".into(),
                "k".into(),
                Default::default(),
                Default::default()
            )
            .await
        ),
        403
    );
}

#[tokio::test]
async fn exact_reply_texts_for_exchange_errors() {
    let broker = TestBroker::start().await;
    let mut c = RawClient::open(broker.addr()).await;
    use warren_codec::spec::{AMQPClass, exchange};
    let declare = |name: &str, kind: &str, passive: bool, durable: bool| {
        AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
            exchange: name.into(),
            kind: kind.into(),
            passive,
            durable,
            ..Default::default()
        }))
    };
    let cases = [
        (
            declare("amq.foo", "direct", false, false),
            403,
            "ACCESS_REFUSED - exchange name 'amq.foo' contains reserved prefix 'amq.*'",
        ),
        (
            declare("nope", "direct", true, false),
            404,
            "NOT_FOUND - no exchange 'nope' in vhost '/'",
        ),
        (
            declare("amq.direct", "direct", false, false),
            406,
            "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'amq.direct' in vhost '/': received 'false' but current is 'true'",
        ),
        (
            declare("amq.direct", "fanout", false, true),
            406,
            "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'amq.direct' in vhost '/': received 'fanout' but current is 'direct'",
        ),
        (
            AMQPClass::Exchange(exchange::AMQPMethod::Delete(exchange::Delete {
                exchange: "amq.direct".into(),
                ..Default::default()
            })),
            403,
            "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed",
        ),
    ];
    for (i, (method, code, text)) in cases.into_iter().enumerate() {
        let id = u16::try_from(i + 2).unwrap();
        c.open_channel(id).await;
        c.send_method(id, &method).await;
        let closed = c.expect_channel_close(id).await;
        assert_eq!((closed.code, closed.text.as_str()), (code, text));
        assert_eq!(closed.class_id, 40);
    }
    // RabbitMQ 3.10.8's words: "unknown" for a plugin's type that is not enabled,
    // "invalid" for the empty name.
    for (kind, text) in [
        (
            "x-delayed-message",
            "COMMAND_INVALID - unknown exchange type 'x-delayed-message'",
        ),
        ("", "COMMAND_INVALID - invalid exchange type ''"),
    ] {
        let mut c = RawClient::open(broker.addr()).await;
        c.send_method(1, &declare("x", kind, false, false)).await;
        let closed = c.expect_connection_close().await;
        assert_eq!((closed.code, closed.text.as_str()), (503, text));
        assert_eq!((closed.class_id, closed.method_id), (40, 10));
    }
}

#[tokio::test]
async fn redeclare_must_be_equivalent() {
    let broker = TestBroker::start().await;
    let (conn, ch) = channel(&broker).await;
    declare_x(&ch, "x", ExchangeKind::Direct, Default::default())
        .await
        .unwrap();
    declare_x(&ch, "x", ExchangeKind::Direct, Default::default())
        .await
        .unwrap();
    // Passive ignores the other fields.
    declare_x(
        &ch,
        "x",
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for opts in [
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        ExchangeDeclareOptions {
            internal: true,
            ..Default::default()
        },
    ] {
        let ch = conn.create_channel().await.unwrap();
        assert_eq!(
            err_code(declare_x(&ch, "x", ExchangeKind::Direct, opts).await),
            406
        );
    }
    let ch = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert(
        "alternate-exchange".into(),
        AMQPValue::LongString("ae".into()),
    );
    assert_eq!(
        err_code(
            ch.exchange_declare("x".into(), ExchangeKind::Direct, Default::default(), args)
                .await
        ),
        406
    );
    // Arguments RabbitMQ does not compare are accepted.
    let ch = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert("x-custom".into(), AMQPValue::LongString("v".into()));
    ch.exchange_declare("x".into(), ExchangeKind::Direct, Default::default(), args)
        .await
        .unwrap();
}

#[tokio::test]
async fn delete_if_unused_and_missing() {
    let broker = TestBroker::start().await;
    let (conn, ch) = channel(&broker).await;
    declare_x(&ch, "x", ExchangeKind::Fanout, Default::default())
        .await
        .unwrap();
    declare(&ch, "q").await;
    bind(&ch, "q", "x", "").await;
    assert_eq!(
        err_code(
            ch.exchange_delete(
                "x".into(),
                ExchangeDeleteOptions {
                    if_unused: true,
                    ..Default::default()
                }
            )
            .await
        ),
        406
    );
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_delete("x".into(), Default::default())
        .await
        .unwrap();
    ch.exchange_delete("never-existed".into(), Default::default())
        .await
        .unwrap();
    let err = declare_x(
        &ch,
        "x",
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(err_code(err), 404);
}

#[tokio::test]
async fn auto_delete_exchange_goes_when_its_last_binding_goes() {
    let broker = TestBroker::start().await;
    let (conn, ch) = channel(&broker).await;
    declare_x(
        &ch,
        "ad",
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    declare(&ch, "q1").await;
    bind(&ch, "q1", "ad", "").await;
    ch.queue_unbind("q1".into(), "ad".into(), "".into(), FieldTable::default())
        .await
        .unwrap();
    let err = declare_x(
        &ch,
        "ad",
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(err_code(err), 404);
    drop(conn);
}

#[tokio::test]
async fn internal_exchange_refuses_publishes_but_routes_from_exchanges() {
    let broker = TestBroker::start().await;
    let (conn, ch) = channel(&broker).await;
    declare_x(
        &ch,
        "inner",
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            internal: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    declare(&ch, "q").await;
    bind(&ch, "q", "inner", "").await;
    ch.exchange_bind(
        "inner".into(),
        "amq.fanout".into(),
        "".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut consumer = consume(&ch, "q", "c", true).await;
    publish(&ch, "amq.fanout", "", b"via e2e").await;
    assert_eq!(next(&mut consumer).await.data, b"via e2e");
    let closed = warren_e2e::publish_refusal(
        &broker,
        warren_codec::spec::basic::Publish {
            exchange: "inner".into(),
            routing_key: "".into(),
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
        (1, 403, 60, 40)
    );
    assert_eq!(
        closed.text,
        "ACCESS_REFUSED - cannot publish to internal exchange 'inner' in vhost '/'"
    );
    drop(conn);
}

#[tokio::test]
async fn default_exchange_routes_by_queue_name() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    declare(&ch, "by-name").await;
    let mut consumer = consume(&ch, "by-name", "c", true).await;
    publish(&ch, "", "by-name", b"hello").await;
    let d = next(&mut consumer).await;
    assert_eq!(d.data, b"hello");
    assert_eq!(d.exchange.as_str(), "");
    assert_eq!(d.routing_key.as_str(), "by-name");
}

#[tokio::test]
async fn direct_fanout_topic_and_headers_route() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    for q in ["d1", "d2", "f1", "f2", "t1", "h1"] {
        declare(&ch, q).await;
    }
    bind(&ch, "d1", "amq.direct", "red").await;
    bind(&ch, "d2", "amq.direct", "blue").await;
    bind(&ch, "f1", "amq.fanout", "ignored").await;
    bind(&ch, "f2", "amq.fanout", "").await;
    bind(&ch, "t1", "amq.topic", "stock.*.nyse").await;
    let mut args = FieldTable::default();
    args.insert("x-match".into(), AMQPValue::LongString("all".into()));
    args.insert("format".into(), AMQPValue::LongString("pdf".into()));
    ch.queue_bind(
        "h1".into(),
        "amq.headers".into(),
        "".into(),
        Default::default(),
        args,
    )
    .await
    .unwrap();

    publish(&ch, "amq.direct", "red", b"r").await;
    publish(&ch, "amq.fanout", "x", b"f").await;
    publish(&ch, "amq.topic", "stock.ibm.nyse", b"t").await;
    publish(&ch, "amq.topic", "stock.ibm.nasdaq", b"t-miss").await;
    let mut headers = FieldTable::default();
    headers.insert("format".into(), AMQPValue::LongString("pdf".into()));
    ch.basic_publish(
        "amq.headers".into(),
        "".into(),
        Default::default(),
        b"h",
        BasicProperties::default().with_headers(headers),
    )
    .await
    .unwrap();

    let expect = [
        ("d1", Some(&b"r"[..])),
        ("d2", None),
        ("f1", Some(b"f")),
        ("f2", Some(b"f")),
        ("t1", Some(b"t")),
        ("h1", Some(b"h")),
    ];
    for (q, body) in expect {
        let mut consumer = consume(&ch, q, &format!("c-{q}"), true).await;
        match body {
            Some(b) => {
                assert_eq!(next(&mut consumer).await.data, b, "queue {q}");
                no_delivery(&mut consumer, Duration::from_millis(100)).await;
            }
            None => no_delivery(&mut consumer, Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test]
async fn alternate_exchange_receives_unroutable_messages() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    declare_x(&ch, "ae", ExchangeKind::Fanout, Default::default())
        .await
        .unwrap();
    let mut args = FieldTable::default();
    args.insert(
        "alternate-exchange".into(),
        AMQPValue::LongString("ae".into()),
    );
    ch.exchange_declare(
        "main".into(),
        ExchangeKind::Direct,
        Default::default(),
        args,
    )
    .await
    .unwrap();
    declare(&ch, "routed").await;
    declare(&ch, "unrouted").await;
    bind(&ch, "routed", "main", "k").await;
    bind(&ch, "unrouted", "ae", "").await;
    publish(&ch, "main", "k", b"1").await;
    publish(&ch, "main", "other", b"2").await;
    let mut routed = consume(&ch, "routed", "a", true).await;
    let mut unrouted = consume(&ch, "unrouted", "b", true).await;
    assert_eq!(next(&mut routed).await.data, b"1");
    assert_eq!(next(&mut unrouted).await.data, b"2");
}
