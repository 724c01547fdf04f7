//! Issue item 7: publisher confirms and transactions.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};
use warren_codec::method::Method;
use warren_codec::spec::{AMQPClass, basic, confirm, queue, tx};
use warren_e2e::{RawClient, TestBroker, channel, code, declare, err_code, raw};

async fn count(ch: &Channel, q: &str) -> u32 {
    ch.queue_declare(
        q.into(),
        lapin::options::QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap()
    .message_count()
}

#[tokio::test]
async fn every_publish_is_confirmed() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    declare(&ch, "c").await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    for i in 0..100u8 {
        let confirm = ch
            .basic_publish(
                "".into(),
                "c".into(),
                Default::default(),
                &[i],
                BasicProperties::default(),
            )
            .await
            .unwrap();
        if i % 10 == 0 {
            assert!(confirm.await.unwrap().is_ack());
        }
    }
    assert!(ch.wait_for_confirms().await.unwrap().is_empty());
    // Unroutable messages are confirmed too, after their return when mandatory.
    let confirm = ch
        .basic_publish(
            "amq.direct".into(),
            "nobody".into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"lost",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());
    let returned = confirm.take_message().expect("the message came back");
    assert_eq!(returned.data, b"lost");
    assert_eq!(returned.reply_code, 312);
    assert_eq!(count(&ch, "c").await, 100);
}

#[tokio::test]
async fn confirms_are_coalesced_and_follow_returns() {
    let broker = TestBroker::start().await;
    let mut c = RawClient::open(broker.addr()).await;
    c.send_method(
        1,
        &AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: "q".into(),
            ..Default::default()
        })),
    )
    .await;
    c.read_method().await.unwrap();
    c.send_method(
        1,
        &AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
            nowait: false,
        })),
    )
    .await;
    let (_, m) = c.read_method().await.unwrap();
    assert!(matches!(
        m,
        Method::Other(AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_)))
    ));
    let mut batch = Vec::new();
    for _ in 0..5 {
        batch.extend(raw::publish_frames(1, "", "q", &[], b"x"));
    }
    c.send(&batch).await;
    let mut acked = 0;
    while acked < 5 {
        let (_, m) = c.read_method().await.unwrap();
        let Method::BasicAck(ack) = m else {
            panic!("expected basic.ack, got {m:?}")
        };
        assert!(ack.delivery_tag > acked);
        if ack.delivery_tag > acked + 1 {
            assert!(
                ack.multiple,
                "a confirm covering several publishes must be multiple"
            );
        }
        acked = ack.delivery_tag;
    }
    // Mandatory and unroutable: basic.return comes before the ack.
    let publish = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: "amq.direct".into(),
        routing_key: "nobody".into(),
        mandatory: true,
        immediate: false,
    }));
    let mut frames = raw::method_frame(1, &publish);
    frames.extend(raw::content_frames(1, &[], b"r"));
    c.send(&frames).await;
    let (_, m) = c.read_method().await.unwrap();
    assert!(
        matches!(
            m,
            Method::Other(AMQPClass::Basic(basic::AMQPMethod::Return(_)))
        ),
        "{m:?}"
    );
    let (_, m) = c.read_method().await.unwrap();
    let Method::BasicAck(ack) = m else {
        panic!("expected basic.ack, got {m:?}")
    };
    assert_eq!((ack.delivery_tag, ack.multiple), (6, false));
}

#[tokio::test]
async fn transactions_apply_publishes_and_acks_at_commit() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    let (_conn2, observer) = channel(&broker).await;
    declare(&ch, "tx").await;
    ch.tx_select().await.unwrap();
    ch.basic_publish(
        "".into(),
        "tx".into(),
        Default::default(),
        b"1",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    ch.basic_publish(
        "".into(),
        "tx".into(),
        Default::default(),
        b"2",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    assert_eq!(count(&observer, "tx").await, 0);
    ch.tx_commit().await.unwrap();
    assert_eq!(count(&observer, "tx").await, 2);
    ch.basic_publish(
        "".into(),
        "tx".into(),
        Default::default(),
        b"3",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    ch.tx_rollback().await.unwrap();
    assert_eq!(count(&observer, "tx").await, 2);
    // An ack inside a transaction waits for commit; rollback makes it outstanding again.
    let m = ch
        .basic_get("tx".into(), Default::default())
        .await
        .unwrap()
        .unwrap();
    ch.tx_commit().await.unwrap();
    m.delivery.ack(Default::default()).await.unwrap();
    ch.tx_rollback().await.unwrap();
    m.delivery.ack(Default::default()).await.unwrap();
    ch.tx_commit().await.unwrap();
    assert_eq!(count(&observer, "tx").await, 1);
}

#[tokio::test]
async fn tx_and_confirm_do_not_mix() {
    let broker = TestBroker::start().await;
    let (conn, ch) = channel(&broker).await;
    ch.tx_select().await.unwrap();
    assert_eq!(err_code(ch.confirm_select(Default::default()).await), 406);
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    assert_eq!(err_code(ch.tx_select().await), 406);
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(err_code(ch.tx_commit().await), 406);
    let ch = conn.create_channel().await.unwrap();
    let err = ch.tx_rollback().await.unwrap_err();
    assert_eq!(code(&err), Some(406));
}

/// `tx.select` on channel 1, and its select-ok.
async fn tx_select(c: &mut RawClient) {
    c.send_method(1, &AMQPClass::Tx(tx::AMQPMethod::Select(tx::Select {})))
        .await;
    c.read_method().await.unwrap();
}

/// A mandatory publish on channel 1, with its content.
fn mandatory_publish(exchange: &str, routing_key: &str, body: &[u8]) -> Vec<u8> {
    let publish = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: exchange.into(),
        routing_key: routing_key.into(),
        mandatory: true,
        immediate: false,
    }));
    let mut frames = raw::method_frame(1, &publish);
    frames.extend(raw::content_frames(1, &[], body));
    frames
}

#[tokio::test]
async fn tx_mandatory_return_comes_at_commit() {
    let broker = TestBroker::start().await;
    let mut c = RawClient::open(broker.addr()).await;
    tx_select(&mut c).await;
    let mut frames = mandatory_publish("amq.direct", "nobody", b"r");
    frames.extend(raw::method_frame(
        1,
        &AMQPClass::Tx(tx::AMQPMethod::Commit(tx::Commit {})),
    ));
    c.send(&frames).await;
    let (_, m) = c.read_method().await.unwrap();
    assert!(
        matches!(
            m,
            Method::Other(AMQPClass::Basic(basic::AMQPMethod::Return(_)))
        ),
        "{m:?}"
    );
    let (_, m) = c.read_method().await.unwrap();
    assert!(
        matches!(m, Method::Other(AMQPClass::Tx(tx::AMQPMethod::CommitOk(_)))),
        "{m:?}"
    );
}

/// A transaction's publish to `txq` on channel 1 (mandatory), then `between` on channel
/// 2 (each method answered), then the commit: what the commit drew, in order.
async fn commit_after(between: &[AMQPClass]) -> (TestBroker, RawClient, Vec<Method>) {
    let broker = TestBroker::start().await;
    let mut c = RawClient::open(broker.addr()).await;
    c.open_channel(2).await;
    c.send(&raw::queue_declare_frame(1, "txq", false)).await;
    c.read_method().await.unwrap();
    tx_select(&mut c).await;
    c.send(&mandatory_publish("", "txq", b"held")).await;
    for method in between {
        c.send_method(2, method).await;
        c.read_method().await.unwrap();
    }
    c.send_method(1, &AMQPClass::Tx(tx::AMQPMethod::Commit(tx::Commit {})))
        .await;
    let mut drawn = Vec::new();
    loop {
        let (_, m) = c.read_method().await.unwrap();
        let done = matches!(m, Method::Other(AMQPClass::Tx(tx::AMQPMethod::CommitOk(_))));
        drawn.push(m);
        if done {
            return (broker, c, drawn);
        }
    }
}

fn delete_txq() -> AMQPClass {
    AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
        queue: "txq".into(),
        if_unused: false,
        if_empty: false,
        nowait: false,
    }))
}

/// RabbitMQ routes a transactional publish when it arrives and looks the queues up again
/// at commit: one deleted meanwhile is skipped, and a mandatory message left with none
/// comes back (RabbitMQ 3.10.8 answers so; found by the storm in AMQP 0-8).
#[tokio::test]
async fn a_queue_deleted_before_commit_returns_a_mandatory_publish() {
    let (_broker, _, drawn) = commit_after(&[delete_txq()]).await;
    assert!(
        matches!(
            &drawn[..],
            [
                Method::Other(AMQPClass::Basic(basic::AMQPMethod::Return(r))),
                Method::Other(AMQPClass::Tx(tx::AMQPMethod::CommitOk(_))),
            ] if r.reply_code == 312 && r.routing_key.as_str() == "txq"
        ),
        "{drawn:?}"
    );
}

/// ... and a queue declared again under the same name gets the message.
#[tokio::test]
async fn a_queue_declared_again_before_commit_gets_the_publish() {
    let declare_txq = AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
        queue: "txq".into(),
        ..Default::default()
    }));
    let (_broker, mut c, drawn) = commit_after(&[delete_txq(), declare_txq]).await;
    assert_eq!(drawn.len(), 1, "only commit-ok: {drawn:?}");
    c.send(&raw::queue_declare_frame(2, "txq", true)).await;
    let (_, m) = c.read_method().await.unwrap();
    let Method::Other(AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok))) = m else {
        panic!("expected declare-ok, got {m:?}");
    };
    assert_eq!(ok.message_count, 1);
}
