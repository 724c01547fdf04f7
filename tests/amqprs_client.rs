//! The same core scenarios through amqprs, a second, independent Rust client.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicGetArguments, BasicNackArguments,
    BasicPublishArguments, BasicQosArguments, Channel, ConfirmSelectArguments,
    ExchangeBindArguments, ExchangeDeclareArguments, QueueBindArguments, QueueDeclareArguments,
    QueueDeleteArguments, QueuePurgeArguments,
};
use amqprs::connection::Connection;
use amqprs::{BasicProperties, FieldTable};
use warren_e2e::{TestBroker, WAIT};

async fn open(broker: &TestBroker) -> (Connection, Channel) {
    warren_e2e::amqprs_open(broker).await
}

async fn publish(ch: &Channel, exchange: &str, key: &str, body: &[u8]) {
    ch.basic_publish(
        BasicProperties::default(),
        body.to_vec(),
        BasicPublishArguments::new(exchange, key),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn amqprs_declares_publishes_consumes_and_acks() {
    let broker = TestBroker::start().await;
    let (conn, ch) = open(&broker).await;
    let (name, messages, consumers) = ch
        .queue_declare(QueueDeclareArguments::new("work"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((name.as_str(), messages, consumers), ("work", 0, 0));
    ch.basic_qos(BasicQosArguments::new(0, 5, false))
        .await
        .unwrap();
    for i in 0..10u8 {
        publish(&ch, "", "work", &[i]).await;
    }
    let (_tag, mut rx) = ch
        .basic_consume_rx(
            BasicConsumeArguments::new("work", "amqprs")
                .manual_ack(true)
                .finish(),
        )
        .await
        .unwrap();
    for i in 0..10u8 {
        let msg = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(msg.content.unwrap(), vec![i]);
        let tag = msg.deliver.unwrap().delivery_tag();
        ch.basic_ack(BasicAckArguments::new(tag, false))
            .await
            .unwrap();
    }
    let (_, left, _) = ch
        .queue_declare(QueueDeclareArguments::new("work").passive(true).finish())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(left, 0);
    ch.close().await.unwrap();
    conn.close().await.unwrap();
}

#[tokio::test]
async fn amqprs_get_nack_requeue_purge_delete() {
    let broker = TestBroker::start().await;
    let (conn, ch) = open(&broker).await;
    ch.queue_declare(QueueDeclareArguments::new("g"))
        .await
        .unwrap();
    publish(&ch, "", "g", b"one").await;
    publish(&ch, "", "g", b"two").await;
    let (get_ok, _props, body) = ch
        .basic_get(BasicGetArguments::new("g"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            body.as_slice(),
            get_ok.message_count(),
            get_ok.redelivered()
        ),
        (&b"one"[..], 1, false)
    );
    ch.basic_nack(BasicNackArguments::new(get_ok.delivery_tag(), false, true))
        .await
        .unwrap();
    let (again, _, body) = ch
        .basic_get(BasicGetArguments::new("g"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((body.as_slice(), again.redelivered()), (&b"one"[..], true));
    ch.basic_ack(BasicAckArguments::new(again.delivery_tag(), false))
        .await
        .unwrap();
    assert_eq!(
        ch.queue_purge(QueuePurgeArguments::new("g")).await.unwrap(),
        Some(1)
    );
    publish(&ch, "", "g", b"three").await;
    assert_eq!(
        ch.queue_delete(QueueDeleteArguments::new("g"))
            .await
            .unwrap(),
        Some(1)
    );
    conn.close().await.unwrap();
}

#[tokio::test]
async fn amqprs_exchanges_confirms_and_transactions() {
    let broker = TestBroker::start().await;
    let (conn, ch) = open(&broker).await;
    ch.exchange_declare(ExchangeDeclareArguments::new("logs", "topic"))
        .await
        .unwrap();
    ch.exchange_declare(ExchangeDeclareArguments::new("fan", "fanout"))
        .await
        .unwrap();
    ch.exchange_bind(ExchangeBindArguments::new("fan", "logs", "app.#"))
        .await
        .unwrap();
    ch.queue_declare(QueueDeclareArguments::new("all"))
        .await
        .unwrap();
    ch.queue_bind(QueueBindArguments::new("all", "fan", ""))
        .await
        .unwrap();
    ch.confirm_select(ConfirmSelectArguments::new(false))
        .await
        .unwrap();
    publish(&ch, "logs", "app.web.error", b"e2e").await;
    publish(&ch, "logs", "db.error", b"dropped").await;
    let tx = conn.open_channel(None).await.unwrap();
    tx.tx_select().await.unwrap();
    publish(&tx, "", "all", b"in tx").await;
    tx.tx_rollback().await.unwrap();
    publish(&tx, "", "all", b"committed").await;
    tx.tx_commit().await.unwrap();
    let mut bodies = Vec::new();
    while let Some((_, _, body)) = ch
        .basic_get(BasicGetArguments::new("all").no_ack(true).finish())
        .await
        .unwrap()
    {
        bodies.push(body);
    }
    assert_eq!(bodies, vec![b"e2e".to_vec(), b"committed".to_vec()]);
    let _ = FieldTable::new();
    conn.close().await.unwrap();
}
