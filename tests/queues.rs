//! Issue item 5: queue declaration (names, passive, durable, exclusive, auto-delete,
//! equivalence, counts), bind/unbind, purge and delete.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

use std::time::Duration;

use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use warren_e2e::{RawClient, TestBroker, WAIT, channel, connect, consume, declare, err_code, next};

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

fn passive() -> QueueDeclareOptions {
    QueueDeclareOptions {
        passive: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn server_generated_names() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let name = q.name().as_str();
    assert!(name.starts_with("amq.gen-") && name.len() == 30, "{name}");
    let again = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_ne!(again.name().as_str(), name);
}

#[tokio::test]
async fn passive_declare_reports_counts_or_404() {
    let broker = TestBroker::start().await;
    let (conn, ch) = channel(&broker).await;
    assert_eq!(
        err_code(
            ch.queue_declare("missing".into(), passive(), FieldTable::default())
                .await
        ),
        404
    );
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "counted").await;
    for i in 0..4 {
        publish(&ch, "counted", &[i]).await;
    }
    let q = ch
        .queue_declare("counted".into(), passive(), FieldTable::default())
        .await
        .unwrap();
    assert_eq!((q.message_count(), q.consumer_count()), (4, 0));
    let consumer_ch = conn.create_channel().await.unwrap();
    consumer_ch.basic_qos(1, Default::default()).await.unwrap();
    let mut c = consume(&consumer_ch, "counted", "c", false).await;
    next(&mut c).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let q = declare(&ch, "counted").await;
    assert_eq!((q.message_count(), q.consumer_count()), (3, 1));
}

#[tokio::test]
async fn reserved_prefix_and_texts() {
    let broker = TestBroker::start().await;
    let mut c = RawClient::open(broker.addr()).await;
    use warren_codec::spec::{AMQPClass, queue};
    c.send_method(
        1,
        &AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: "amq.q".into(),
            ..Default::default()
        })),
    )
    .await;
    let closed = c.expect_channel_close(1).await;
    assert_eq!(closed.code, 403);
    assert_eq!(
        closed.text,
        "ACCESS_REFUSED - queue name 'amq.q' contains reserved prefix 'amq.*'"
    );
    c.open_channel(1).await;
    c.send_method(
        1,
        &AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: "nope".into(),
            passive: true,
            ..Default::default()
        })),
    )
    .await;
    let closed = c.expect_channel_close(1).await;
    assert_eq!(
        (closed.code, closed.text.as_str()),
        (404, "NOT_FOUND - no queue 'nope' in vhost '/'")
    );
    assert_eq!((closed.class_id, closed.method_id), (50, 10));
}

#[tokio::test]
async fn redeclare_must_be_equivalent() {
    let broker = TestBroker::start().await;
    let (conn, ch) = channel(&broker).await;
    declare(&ch, "eq").await;
    for opts in [
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
    ] {
        let ch = conn.create_channel().await.unwrap();
        assert_eq!(
            err_code(
                ch.queue_declare("eq".into(), opts, FieldTable::default())
                    .await
            ),
            406
        );
    }
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        err_code(
            ch.queue_declare(
                "eq".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..Default::default()
                },
                FieldTable::default()
            )
            .await
        ),
        405
    );
    let ch = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert("x-queue-mode".into(), AMQPValue::LongString("lazy".into()));
    assert_eq!(
        err_code(
            ch.queue_declare("eq".into(), Default::default(), args)
                .await
        ),
        406
    );
    // A queue is classic whether it says so or not; the queue version is compared
    // (both as RabbitMQ 3.10.8 answered).
    let ch = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("classic".into()),
    );
    ch.queue_declare("eq".into(), Default::default(), args)
        .await
        .unwrap();
    let mut args = FieldTable::default();
    args.insert("x-queue-version".into(), AMQPValue::LongInt(2));
    assert_eq!(
        err_code(
            ch.queue_declare("eq".into(), Default::default(), args)
                .await
        ),
        406
    );
    // Arguments RabbitMQ does not compare are fine; passive ignores everything.
    let ch = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert("x-anything".into(), AMQPValue::LongString("v".into()));
    ch.queue_declare("eq".into(), Default::default(), args)
        .await
        .unwrap();
    ch.queue_declare(
        "eq".into(),
        QueueDeclareOptions {
            passive: true,
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn invalid_and_unsupported_arguments_are_refused() {
    let broker = TestBroker::start().await;
    let (conn, ch) = channel(&broker).await;
    let mut args = FieldTable::default();
    args.insert("x-max-priority".into(), AMQPValue::LongInt(300));
    assert_eq!(
        err_code(ch.queue_declare("a".into(), Default::default(), args).await),
        406
    );
    let ch = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString("bogus".into()));
    assert_eq!(
        err_code(ch.queue_declare("a".into(), Default::default(), args).await),
        406
    );
    // Quorum and stream queues are refused with 540 on the connection, not ignored.
    let conn2 = connect(&broker).await;
    let ch = conn2.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("stream".into()),
    );
    assert_eq!(
        err_code(ch.queue_declare("a".into(), Default::default(), args).await),
        540
    );
    let ch = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("classic".into()),
    );
    ch.queue_declare("classic".into(), Default::default(), args)
        .await
        .unwrap();
}

/// One operation on a queue, run on a fresh channel.
type Attempt = Box<dyn Fn(Channel) -> futures_lite::future::Boxed<lapin::Result<()>>>;

#[tokio::test]
async fn exclusive_queue_belongs_to_its_connection_and_dies_with_it() {
    let broker = TestBroker::start().await;
    let (owner, ch) = channel(&broker).await;
    ch.queue_declare(
        "mine".into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let (other, _) = channel(&broker).await;
    let attempts: Vec<Attempt> = vec![
        Box::new(|c: Channel| {
            Box::pin(async move {
                c.queue_declare("mine".into(), passive(), FieldTable::default())
                    .await
                    .map(|_| ())
            })
        }),
        Box::new(|c: Channel| {
            Box::pin(async move {
                c.queue_declare("mine".into(), Default::default(), FieldTable::default())
                    .await
                    .map(|_| ())
            })
        }),
        Box::new(|c: Channel| {
            Box::pin(async move {
                c.basic_consume(
                    "mine".into(),
                    "x".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map(|_| ())
            })
        }),
        Box::new(|c: Channel| {
            Box::pin(async move {
                c.basic_get("mine".into(), BasicGetOptions::default())
                    .await
                    .map(|_| ())
            })
        }),
        Box::new(|c: Channel| {
            Box::pin(async move {
                c.queue_purge("mine".into(), Default::default())
                    .await
                    .map(|_| ())
            })
        }),
        Box::new(|c: Channel| {
            Box::pin(async move {
                c.queue_delete("mine".into(), Default::default())
                    .await
                    .map(|_| ())
            })
        }),
        Box::new(|c: Channel| {
            Box::pin(async move {
                c.queue_bind(
                    "mine".into(),
                    "amq.direct".into(),
                    "k".into(),
                    Default::default(),
                    FieldTable::default(),
                )
                .await
            })
        }),
    ];
    for attempt in attempts {
        let ch = other.create_channel().await.unwrap();
        assert_eq!(err_code(attempt(ch).await), 405);
    }
    // Others may still publish to it.
    let ch = other.create_channel().await.unwrap();
    publish(&ch, "mine", b"from elsewhere").await;
    owner.close(200, "bye".into()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ch = other.create_channel().await.unwrap();
    assert_eq!(
        err_code(
            ch.queue_declare("mine".into(), passive(), FieldTable::default())
                .await
        ),
        404
    );
}

#[tokio::test]
async fn auto_delete_queue_goes_with_its_last_consumer() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    ch.queue_declare(
        "ad".into(),
        QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let _a = consume(&ch, "ad", "a", true).await;
    let _b = consume(&ch, "ad", "b", true).await;
    ch.basic_cancel("a".into(), Default::default())
        .await
        .unwrap();
    ch.queue_declare("ad".into(), passive(), FieldTable::default())
        .await
        .unwrap();
    ch.basic_cancel("b".into(), Default::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        err_code(
            ch.queue_declare("ad".into(), passive(), FieldTable::default())
                .await
        ),
        404
    );
}

#[tokio::test]
async fn bind_and_unbind_change_routing() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    declare(&ch, "b").await;
    ch.queue_bind(
        "b".into(),
        "amq.direct".into(),
        "k".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.basic_publish(
        "amq.direct".into(),
        "k".into(),
        Default::default(),
        b"1",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    ch.queue_unbind(
        "b".into(),
        "amq.direct".into(),
        "k".into(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.basic_publish(
        "amq.direct".into(),
        "k".into(),
        Default::default(),
        b"2",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    let q = ch
        .queue_declare("b".into(), passive(), FieldTable::default())
        .await
        .unwrap();
    assert_eq!(q.message_count(), 1);
    // Unbinding what is not bound, or from a missing queue or exchange, succeeds.
    ch.queue_unbind(
        "b".into(),
        "amq.direct".into(),
        "never".into(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_unbind(
        "nope".into(),
        "amq.direct".into(),
        "k".into(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_unbind("b".into(), "nope".into(), "k".into(), FieldTable::default())
        .await
        .unwrap();
    assert_eq!(
        err_code(
            ch.queue_bind(
                "b".into(),
                "nope".into(),
                "k".into(),
                Default::default(),
                FieldTable::default()
            )
            .await
        ),
        404
    );
}

#[tokio::test]
async fn purge_and_delete_report_counts() {
    let broker = TestBroker::start().await;
    let (conn, ch) = channel(&broker).await;
    declare(&ch, "p").await;
    for _ in 0..3 {
        publish(&ch, "p", b"x").await;
    }
    assert_eq!(
        ch.queue_purge("p".into(), Default::default())
            .await
            .unwrap(),
        3
    );
    publish(&ch, "p", b"x").await;
    publish(&ch, "p", b"x").await;
    assert_eq!(
        err_code(
            ch.queue_delete(
                "p".into(),
                QueueDeleteOptions {
                    if_empty: true,
                    ..Default::default()
                }
            )
            .await
        ),
        406
    );
    let ch = conn.create_channel().await.unwrap();
    let mut c = consume(&ch, "p", "c", false).await;
    let first = next(&mut c).await;
    next(&mut c).await;
    let ch2 = conn.create_channel().await.unwrap();
    assert_eq!(
        err_code(
            ch2.queue_delete(
                "p".into(),
                QueueDeleteOptions {
                    if_unused: true,
                    ..Default::default()
                }
            )
            .await
        ),
        406
    );
    let ch3 = conn.create_channel().await.unwrap();
    ch.basic_cancel("c".into(), Default::default())
        .await
        .unwrap();
    // As in RabbitMQ, a cancelled consumer's deliveries stay outstanding (and ackable)
    // until its channel closes, so nothing is ready when the queue is deleted.
    first.ack(Default::default()).await.unwrap();
    assert_eq!(
        ch3.queue_delete("p".into(), Default::default())
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        ch3.queue_delete("p".into(), Default::default())
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn empty_queue_name_means_the_last_declared_queue() {
    let broker = TestBroker::start().await;
    let mut c = RawClient::open(broker.addr()).await;
    use warren_codec::method::Method;
    use warren_codec::spec::{AMQPClass, basic, queue};
    c.send_method(
        1,
        &AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
            queue: "".into(),
            no_ack: true,
        })),
    )
    .await;
    let closed = c.expect_channel_close(1).await;
    assert_eq!(
        (closed.code, closed.text.as_str()),
        (404, "NOT_FOUND - no previously declared queue")
    );
    c.open_channel(1).await;
    c.send_method(
        1,
        &AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: "last".into(),
            ..Default::default()
        })),
    )
    .await;
    c.read_method().await.unwrap();
    // Bind with queue "" and key "": the key becomes the queue's name.
    c.send_method(
        1,
        &AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
            queue: "".into(),
            exchange: "amq.direct".into(),
            ..Default::default()
        })),
    )
    .await;
    let (_, m) = c.read_method().await.unwrap();
    assert!(matches!(
        m,
        Method::Other(AMQPClass::Queue(queue::AMQPMethod::BindOk(_)))
    ));
    let (_conn, ch) = channel(&broker).await;
    ch.basic_publish(
        "amq.direct".into(),
        "last".into(),
        Default::default(),
        b"m",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    tokio::time::timeout(WAIT, async {
        loop {
            let q = ch
                .queue_declare("last".into(), passive(), FieldTable::default())
                .await
                .unwrap();
            if q.message_count() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
}

/// Publishes without confirms are handed to queues in batches; a method that follows
/// them in the same burst of input must still see every one of them, for each queue.
#[tokio::test]
async fn methods_after_a_burst_of_publishes_see_all_of_them_in_order() {
    burst_then_methods(TestBroker::start().await).await;
}

/// The same with inboxes so small that most batches wait for room (parked).
#[tokio::test]
async fn methods_after_a_burst_of_parked_publishes_see_all_of_them_in_order() {
    burst_then_methods(TestBroker::start_with(|c| c.queue_command_capacity = 4).await).await;
}

async fn burst_then_methods(broker: TestBroker) {
    use warren_codec::method::Method;
    use warren_codec::spec::{AMQPClass, basic, queue};
    use warren_e2e::raw::{method_frame, publish_frames, queue_declare_frame};

    let mut c = RawClient::open(broker.addr()).await;
    let declare = |name: &str, passive: bool| queue_declare_frame(1, name, passive);
    for name in ["burst-a", "burst-b"] {
        c.send(&declare(name, false)).await;
        c.read_method().await.unwrap();
    }
    // One write: 300 publishes alternating between the queues (more per queue than
    // one batch holds), then a passive declare of the one and a get from the other.
    let mut burst = Vec::new();
    for i in 0..150 {
        burst.extend(publish_frames(
            1,
            "",
            "burst-a",
            &[],
            format!("a-{i}").as_bytes(),
        ));
        burst.extend(publish_frames(
            1,
            "",
            "burst-b",
            &[],
            format!("b-{i}").as_bytes(),
        ));
    }
    burst.extend(declare("burst-a", true));
    burst.extend(method_frame(
        1,
        &AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
            queue: "burst-b".into(),
            no_ack: true,
        })),
    ));
    c.send(&burst).await;
    let (_, declared) = c.read_method().await.unwrap();
    let Method::Other(AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok))) = declared else {
        panic!("expected declare-ok, got {declared:?}");
    };
    assert_eq!(ok.message_count, 150);
    let (_, got) = c.read_method().await.unwrap();
    let Method::Other(AMQPClass::Basic(basic::AMQPMethod::GetOk(ok))) = got else {
        panic!("expected get-ok, got {got:?}");
    };
    assert_eq!(ok.message_count, 149);
    let _header = c.read_frame().await.unwrap();
    let body = c.read_frame().await.unwrap();
    assert_eq!(&body.payload[..], b"b-0");
}
