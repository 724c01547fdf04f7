//! The interop scenario catalogue (`interop/SCENARIOS.md`) through amqprs, written the
//! way amqprs users write code: `basic_consume_rx` consumers, and a `ChannelCallback`
//! for everything the broker sends unasked (confirms, returns, cancels, closes).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

use std::time::Duration;

use amqprs::callbacks::ChannelCallback;
use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicGetArguments, BasicNackArguments,
    BasicPublishArguments, BasicQosArguments, BasicRejectArguments, Channel,
    ConfirmSelectArguments, ConsumerMessage, ExchangeDeclareArguments, ExchangeDeleteArguments,
    QueueBindArguments, QueueDeclareArguments, QueueDeleteArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::error::Error as AmqprsError;
use amqprs::{
    Ack, BasicProperties, ByteArray, Cancel, CloseChannel, DecimalValue, Deliver, FieldArray,
    FieldName, FieldTable, FieldValue, Nack, Return,
};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use warren_e2e::TestBroker;

/// Upper bound for every single wait in these scenarios.
const T: Duration = Duration::from_secs(5);
/// How long "nothing more arrives" is watched for.
const QUIET: Duration = Duration::from_millis(300);

/// A name no other scenario (or earlier run) uses.
fn unique(what: &str) -> String {
    warren_e2e::unique_name("amqprs", what)
}

fn key(name: &str) -> FieldName {
    name.try_into().expect("a short field name")
}

fn text(value: &str) -> FieldValue {
    FieldValue::S(value.try_into().expect("a long string"))
}

fn table(entries: &[(&str, FieldValue)]) -> FieldTable {
    let mut t = FieldTable::new();
    for (k, v) in entries {
        t.insert(key(k), v.clone());
    }
    t
}

async fn open(broker: &TestBroker) -> (Connection, Channel) {
    warren_e2e::amqprs_open(broker).await
}

async fn declare(ch: &Channel, args: QueueDeclareArguments) -> String {
    let (name, _, _) = tokio::time::timeout(T, ch.queue_declare(args))
        .await
        .expect("queue.declare answered in time")
        .expect("queue declared")
        .expect("declare-ok (not no-wait)");
    name
}

/// Messages ready in `queue`, by a passive declare (a round trip on `ch`, so every
/// earlier publish on `ch` has been taken by then).
async fn ready(ch: &Channel, queue: &str) -> u32 {
    let (_, messages, _) = tokio::time::timeout(
        T,
        ch.queue_declare(QueueDeclareArguments::new(queue).passive(true).finish()),
    )
    .await
    .expect("passive declare answered in time")
    .expect("queue exists")
    .expect("declare-ok");
    messages
}

/// Poll until `queue` holds `n` ready messages.
async fn wait_ready(ch: &Channel, queue: &str, n: u32) {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let now = ready(ch, queue).await;
        if now == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{queue}: expected {n} ready messages within {T:?}, still {now}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn publish(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    props: BasicProperties,
) {
    ch.basic_publish(
        props,
        body.to_vec(),
        BasicPublishArguments::new(exchange, routing_key),
    )
    .await
    .expect("basic.publish sent");
}

async fn consume(
    ch: &Channel,
    args: BasicConsumeArguments,
) -> (String, UnboundedReceiver<ConsumerMessage>) {
    tokio::time::timeout(T, ch.basic_consume_rx(args))
        .await
        .expect("basic.consume answered in time")
        .expect("consumer starts")
}

/// The next delivery within [`T`].
async fn recv(
    rx: &mut UnboundedReceiver<ConsumerMessage>,
    step: &str,
) -> (Deliver, BasicProperties, Vec<u8>) {
    let msg = tokio::time::timeout(T, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("{step}: no delivery within {T:?}"))
        .unwrap_or_else(|| panic!("{step}: the consumer was closed"));
    (
        msg.deliver.expect("a delivery carries basic.deliver"),
        msg.basic_properties.expect("a delivery carries properties"),
        msg.content.expect("a delivery carries content"),
    )
}

/// Assert nothing is delivered within [`QUIET`].
async fn no_delivery(rx: &mut UnboundedReceiver<ConsumerMessage>, step: &str) {
    if let Ok(Some(msg)) = tokio::time::timeout(QUIET, rx.recv()).await {
        panic!(
            "{step}: unexpected delivery {:?} with body {:?}",
            msg.deliver, msg.content
        );
    }
}

async fn get(
    ch: &Channel,
    queue: &str,
    no_ack: bool,
) -> Option<(amqprs::GetOk, BasicProperties, Vec<u8>)> {
    tokio::time::timeout(
        T,
        ch.basic_get(BasicGetArguments::new(queue).no_ack(no_ack).finish()),
    )
    .await
    .expect("basic.get answered in time")
    .expect("basic.get succeeds")
}

async fn delete(ch: &Channel, queue: &str) {
    tokio::time::timeout(T, ch.queue_delete(QueueDeleteArguments::new(queue)))
        .await
        .expect("queue.delete answered in time")
        .expect("queue deleted");
}

async fn close(conn: Connection, ch: Channel) {
    tokio::time::timeout(T, ch.close())
        .await
        .expect("channel.close answered in time")
        .expect("channel closes cleanly");
    tokio::time::timeout(T, conn.close())
        .await
        .expect("connection.close answered in time")
        .expect("connection closes cleanly");
}

/// What the broker sent a channel unasked, as the [`Events`] callback saw it.
#[derive(Debug)]
enum Event {
    Ack {
        tag: u64,
        multiple: bool,
    },
    Nack {
        tag: u64,
        multiple: bool,
    },
    Return {
        code: u16,
        text: String,
        exchange: String,
        routing_key: String,
        properties: Box<BasicProperties>,
        body: Vec<u8>,
    },
    Cancel {
        consumer_tag: String,
    },
    Close {
        code: u16,
        text: String,
    },
}

/// A `ChannelCallback` forwarding every event to a queue the test reads.
///
/// The trait is declared with `#[async_trait]`; without that macro in this crate's
/// dependencies the methods are written out the way it expands them.
struct Events(UnboundedSender<Event>);

type CallbackFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl Events {
    fn forward(&self, event: Event) {
        // The test may have stopped listening; events after that are of no interest.
        let _ = self.0.send(event);
    }
}

impl ChannelCallback for Events {
    fn close<'a, 'b, 'f>(
        &'a mut self,
        _channel: &'b Channel,
        close: CloseChannel,
    ) -> CallbackFuture<'f, Result<(), AmqprsError>>
    where
        'a: 'f,
        'b: 'f,
        Self: 'f,
    {
        self.forward(Event::Close {
            code: close.reply_code(),
            text: close.reply_text().clone(),
        });
        Box::pin(std::future::ready(Ok(())))
    }

    fn cancel<'a, 'b, 'f>(
        &'a mut self,
        _channel: &'b Channel,
        cancel: Cancel,
    ) -> CallbackFuture<'f, Result<(), AmqprsError>>
    where
        'a: 'f,
        'b: 'f,
        Self: 'f,
    {
        self.forward(Event::Cancel {
            consumer_tag: cancel.consumer_tag().clone(),
        });
        Box::pin(std::future::ready(Ok(())))
    }

    fn flow<'a, 'b, 'f>(
        &'a mut self,
        _channel: &'b Channel,
        active: bool,
    ) -> CallbackFuture<'f, Result<bool, AmqprsError>>
    where
        'a: 'f,
        'b: 'f,
        Self: 'f,
    {
        Box::pin(std::future::ready(Ok(active)))
    }

    fn publish_ack<'a, 'b, 'f>(
        &'a mut self,
        _channel: &'b Channel,
        ack: Ack,
    ) -> CallbackFuture<'f, ()>
    where
        'a: 'f,
        'b: 'f,
        Self: 'f,
    {
        self.forward(Event::Ack {
            tag: ack.delivery_tag(),
            multiple: ack.mutiple(),
        });
        Box::pin(std::future::ready(()))
    }

    fn publish_nack<'a, 'b, 'f>(
        &'a mut self,
        _channel: &'b Channel,
        nack: Nack,
    ) -> CallbackFuture<'f, ()>
    where
        'a: 'f,
        'b: 'f,
        Self: 'f,
    {
        self.forward(Event::Nack {
            tag: nack.delivery_tag(),
            multiple: nack.multiple(),
        });
        Box::pin(std::future::ready(()))
    }

    fn publish_return<'a, 'b, 'f>(
        &'a mut self,
        _channel: &'b Channel,
        ret: Return,
        basic_properties: BasicProperties,
        content: Vec<u8>,
    ) -> CallbackFuture<'f, ()>
    where
        'a: 'f,
        'b: 'f,
        Self: 'f,
    {
        self.forward(Event::Return {
            code: ret.reply_code(),
            text: ret.reply_text().clone(),
            exchange: ret.exchange().clone(),
            routing_key: ret.routing_key().clone(),
            properties: Box::new(basic_properties),
            body: content,
        });
        Box::pin(std::future::ready(()))
    }
}

/// Register an [`Events`] callback on `ch` and return its event queue.
async fn events(ch: &Channel) -> UnboundedReceiver<Event> {
    let (tx, rx) = unbounded_channel();
    ch.register_callback(Events(tx))
        .await
        .expect("callback registered");
    rx
}

async fn next_event(rx: &mut UnboundedReceiver<Event>, step: &str) -> Event {
    tokio::time::timeout(T, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("{step}: no channel event within {T:?}"))
        .unwrap_or_else(|| panic!("{step}: the channel callback is gone"))
}

#[tokio::test]
async fn amqprs_connect() {
    let broker = TestBroker::start().await;
    let (conn, ch) = open(&broker).await;
    let server = conn.server_properties();
    assert_eq!(server.product(), "Warren", "server property 'product'");
    let caps = server.capabilities();
    assert!(caps.publisher_confirms(), "capability publisher_confirms");
    assert!(caps.basic_nack(), "capability basic.nack");
    assert!(
        caps.consumer_cancel_notify(),
        "capability consumer_cancel_notify"
    );
    assert!(
        caps.exchange_exchange_bindings(),
        "capability exchange_exchange_bindings"
    );
    assert!(conn.is_open() && ch.is_open());
    close(conn, ch).await;
}

#[tokio::test]
async fn amqprs_prefetch() {
    let broker = TestBroker::start().await;
    let (conn, ch) = open(&broker).await;
    let q = declare(
        &ch,
        QueueDeclareArguments::transient_autodelete(&unique("prefetch")),
    )
    .await;
    for i in 0..20u8 {
        publish(&ch, "", &q, &[i], BasicProperties::default()).await;
    }
    assert_eq!(
        ready(&ch, &q).await,
        20,
        "all 20 published before consuming"
    );
    ch.basic_qos(BasicQosArguments::new(0, 5, false))
        .await
        .expect("basic.qos");
    let (_, mut rx) = consume(
        &ch,
        BasicConsumeArguments::new(&q, "").manual_ack(true).finish(),
    )
    .await;
    let mut tags = Vec::new();
    for i in 0..5u8 {
        let (deliver, _, body) = recv(&mut rx, "delivery within the prefetch window").await;
        assert_eq!(body, vec![i], "delivery {i} in order");
        tags.push(deliver.delivery_tag());
    }
    no_delivery(&mut rx, "a sixth delivery with 5 unacked").await;
    ch.basic_ack(BasicAckArguments::new(tags[0], false))
        .await
        .expect("basic.ack");
    let (_, _, body) = recv(&mut rx, "the delivery an ack lets through").await;
    assert_eq!(body, vec![5]);
    no_delivery(&mut rx, "a second delivery after one ack").await;
    delete(&ch, &q).await;
    close(conn, ch).await;
}

#[tokio::test]
async fn amqprs_publisher_confirms() {
    let broker = TestBroker::start().await;
    let (conn, ch) = open(&broker).await;
    let mut ev = events(&ch).await;
    let q = declare(
        &ch,
        QueueDeclareArguments::transient_autodelete(&unique("confirms")),
    )
    .await;
    ch.confirm_select(ConfirmSelectArguments::new(false))
        .await
        .expect("confirm.select");
    for i in 0..100u32 {
        publish(&ch, "", &q, &i.to_be_bytes(), BasicProperties::default()).await;
    }
    let mut acked = BTreeSet::new();
    while acked.len() < 100 {
        match next_event(
            &mut ev,
            &format!("confirms ({} of 100 so far)", acked.len()),
        )
        .await
        {
            Event::Ack { tag, multiple } => {
                assert!((1..=100).contains(&tag), "ack for unknown tag {tag}");
                if multiple {
                    acked.extend(1..=tag);
                } else {
                    assert!(acked.insert(tag), "tag {tag} acked twice");
                }
            }
            Event::Nack { tag, multiple } => {
                panic!("broker nacked tag {tag} (multiple = {multiple}), expected only acks")
            }
            other => panic!("expected only acks, got {other:?}"),
        }
    }
    assert_eq!(ready(&ch, &q).await, 100);
    delete(&ch, &q).await;
    close(conn, ch).await;
}

#[tokio::test]
async fn amqprs_mandatory_return() {
    let broker = TestBroker::start().await;
    let (conn, ch) = open(&broker).await;
    let mut ev = events(&ch).await;
    let nowhere = unique("unbound");
    ch.basic_publish(
        BasicProperties::default()
            .with_content_type("text/plain")
            .with_message_id("m-1")
            .finish(),
        b"lost".to_vec(),
        BasicPublishArguments::new("amq.direct", &nowhere)
            .mandatory(true)
            .finish(),
    )
    .await
    .expect("basic.publish sent");
    match next_event(&mut ev, "basic.return").await {
        Event::Return {
            code,
            text,
            exchange,
            routing_key,
            properties,
            body,
        } => {
            assert_eq!((code, text.as_str()), (312, "NO_ROUTE"));
            assert_eq!(
                (exchange.as_str(), routing_key.as_str()),
                ("amq.direct", nowhere.as_str())
            );
            assert_eq!(body, b"lost");
            assert_eq!(
                properties.content_type().map(String::as_str),
                Some("text/plain")
            );
            assert_eq!(properties.message_id().map(String::as_str), Some("m-1"));
        }
        other => panic!("expected basic.return, got {other:?}"),
    }
    close(conn, ch).await;
}

/// Answer every request on `queue` (auto-ack) with `reply:<body>` to its `reply_to`,
/// carrying its `correlation_id`.
async fn rpc_server(broker: &TestBroker, queue: &str) -> (Connection, Channel) {
    let (conn, ch) = open(broker).await;
    declare(&ch, QueueDeclareArguments::transient_autodelete(queue)).await;
    let (_, mut rx) = consume(
        &ch,
        BasicConsumeArguments::new(queue, "")
            .auto_ack(true)
            .finish(),
    )
    .await;
    let server = ch.clone();
    tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            let (Some(props), Some(body)) = (msg.basic_properties, msg.content) else {
                continue;
            };
            let Some(reply_to) = props.reply_to() else {
                continue;
            };
            let mut answer = BasicProperties::default();
            if let Some(id) = props.correlation_id() {
                answer.with_correlation_id(id);
            }
            let mut reply = b"reply:".to_vec();
            reply.extend_from_slice(&body);
            if server
                .basic_publish(answer, reply, BasicPublishArguments::new("", reply_to))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    (conn, ch)
}

#[tokio::test]
async fn amqprs_rpc() {
    let broker = TestBroker::start().await;
    let requests = unique("rpc.requests");
    let (server_conn, server_ch) = rpc_server(&broker, &requests).await;
    let (conn, ch) = open(&broker).await;
    let reply_queue = declare(&ch, QueueDeclareArguments::exclusive_server_named()).await;
    assert!(
        reply_queue.starts_with("amq.gen-"),
        "server-named queue: {reply_queue}"
    );
    let (_, mut replies) = consume(
        &ch,
        BasicConsumeArguments::new(&reply_queue, "")
            .auto_ack(true)
            .finish(),
    )
    .await;
    for (id, body) in [("corr-1", "first"), ("corr-2", "second")] {
        publish(
            &ch,
            "",
            &requests,
            body.as_bytes(),
            BasicProperties::default()
                .with_reply_to(&reply_queue)
                .with_correlation_id(id)
                .finish(),
        )
        .await;
    }
    let mut answers = Vec::new();
    for _ in 0..2 {
        let (_, props, body) = recv(&mut replies, "rpc reply").await;
        let id = props
            .correlation_id()
            .cloned()
            .expect("the reply carries the correlation id");
        answers.push((id, String::from_utf8(body).expect("utf-8 reply")));
    }
    answers.sort();
    assert_eq!(
        answers,
        [
            ("corr-1".to_owned(), "reply:first".to_owned()),
            ("corr-2".to_owned(), "reply:second".to_owned())
        ]
    );
    close(conn, ch).await;
    delete(&server_ch, &requests).await;
    close(server_conn, server_ch).await;
}

#[tokio::test]
async fn amqprs_direct_reply_to() {
    let broker = TestBroker::start().await;
    let requests = unique("drt.requests");
    let (server_conn, server_ch) = rpc_server(&broker, &requests).await;
    let (conn, ch) = open(&broker).await;
    // RabbitMQ requires the no-ack consumer on the pseudo-queue before publishing.
    let (_, mut replies) = consume(
        &ch,
        BasicConsumeArguments::new("amq.rabbitmq.reply-to", "")
            .auto_ack(true)
            .finish(),
    )
    .await;
    publish(
        &ch,
        "",
        &requests,
        b"ping",
        BasicProperties::default()
            .with_reply_to("amq.rabbitmq.reply-to")
            .with_correlation_id("drt-1")
            .finish(),
    )
    .await;
    let (deliver, props, body) = recv(&mut replies, "direct reply-to answer").await;
    assert_eq!(body, b"reply:ping");
    assert_eq!(props.correlation_id().map(String::as_str), Some("drt-1"));
    assert!(
        deliver.routing_key().starts_with("amq.rabbitmq.reply-to."),
        "routed to the caller's reply-to name: {}",
        deliver.routing_key()
    );
    close(conn, ch).await;
    delete(&server_ch, &requests).await;
    close(server_conn, server_ch).await;
}

#[tokio::test]
async fn amqprs_nack_requeue() {
    let broker = TestBroker::start().await;
    let (conn, ch) = open(&broker).await;
    let q = declare(
        &ch,
        QueueDeclareArguments::transient_autodelete(&unique("nack")),
    )
    .await;
    publish(&ch, "", &q, b"again", BasicProperties::default()).await;
    let (_, mut rx) = consume(
        &ch,
        BasicConsumeArguments::new(&q, "").manual_ack(true).finish(),
    )
    .await;
    let (first, _, body) = recv(&mut rx, "first delivery").await;
    assert_eq!(
        (body.as_slice(), first.redelivered()),
        (&b"again"[..], false)
    );
    ch.basic_nack(BasicNackArguments::new(first.delivery_tag(), false, true))
        .await
        .expect("basic.nack requeue");
    let (second, _, body) = recv(&mut rx, "redelivery after nack with requeue").await;
    assert_eq!(
        (body.as_slice(), second.redelivered()),
        (&b"again"[..], true)
    );
    ch.basic_nack(BasicNackArguments::new(second.delivery_tag(), false, false))
        .await
        .expect("basic.nack without requeue");
    no_delivery(&mut rx, "a delivery after nack without requeue").await;
    assert_eq!(ready(&ch, &q).await, 0, "the nacked message is gone");
    delete(&ch, &q).await;
    close(conn, ch).await;
}

fn deaths(props: &BasicProperties) -> Vec<FieldTable> {
    let headers = props.headers().expect("dead-lettered message has headers");
    match headers.get(&key("x-death")) {
        Some(FieldValue::A(entries)) => Vec::<FieldValue>::from(entries.clone())
            .into_iter()
            .map(|v| match v {
                FieldValue::F(t) => t,
                other => panic!("x-death entry is not a table: {other:?}"),
            })
            .collect(),
        other => panic!("x-death header missing or not an array: {other:?}"),
    }
}

fn death_text(entry: &FieldTable, field: &str) -> String {
    match entry.get(&key(field)) {
        Some(FieldValue::S(s)) => s.as_ref().clone(),
        other => panic!("x-death entry field {field}: {other:?}"),
    }
}

fn death_count(entry: &FieldTable) -> i64 {
    match entry.get(&key("count")) {
        Some(FieldValue::l(n)) => *n,
        other => panic!("x-death entry field count (a long): {other:?}"),
    }
}

#[tokio::test]
async fn amqprs_dead_letter() {
    let broker = TestBroker::start().await;
    let (conn, ch) = open(&broker).await;
    let dlx = unique("dlx");
    ch.exchange_declare(ExchangeDeclareArguments::new(&dlx, "direct"))
        .await
        .expect("dead-letter exchange declared");
    let dlq = declare(&ch, QueueDeclareArguments::new(&unique("dlq"))).await;
    ch.queue_bind(QueueBindArguments::new(&dlq, &dlx, "dead"))
        .await
        .expect("dead-letter queue bound");
    let source = unique("source");
    declare(
        &ch,
        QueueDeclareArguments::new(&source)
            .arguments(table(&[
                ("x-dead-letter-exchange", text(&dlx)),
                ("x-dead-letter-routing-key", text("dead")),
            ]))
            .finish(),
    )
    .await;
    publish(&ch, "", &source, b"doomed", BasicProperties::default()).await;
    let (get_ok, _, body) = get(&ch, &source, false)
        .await
        .expect("the message is in the source queue");
    assert_eq!(body, b"doomed");
    ch.basic_reject(BasicRejectArguments::new(get_ok.delivery_tag(), false))
        .await
        .expect("basic.reject without requeue");
    wait_ready(&ch, &dlq, 1).await;
    assert_eq!(ready(&ch, &source).await, 0, "the source queue is empty");
    let (dead, props, body) = get(&ch, &dlq, true).await.expect("the dead letter");
    assert_eq!(body, b"doomed");
    assert_eq!(
        (dead.exchange().as_str(), dead.routing_key().as_str()),
        (dlx.as_str(), "dead")
    );
    let d = deaths(&props);
    assert_eq!(d.len(), 1, "one x-death entry: {d:?}");
    assert_eq!(death_count(&d[0]), 1);
    assert_eq!(death_text(&d[0], "reason"), "rejected");
    assert_eq!(death_text(&d[0], "queue"), source);
    assert_eq!(death_text(&d[0], "exchange"), "");
    delete(&ch, &source).await;
    delete(&ch, &dlq).await;
    ch.exchange_delete(ExchangeDeleteArguments::new(&dlx))
        .await
        .expect("exchange deleted");
    close(conn, ch).await;
}

#[tokio::test]
async fn amqprs_ttl() {
    let broker = TestBroker::start().await;
    let (conn, ch) = open(&broker).await;
    // Queue TTL.
    let ttl_q = declare(
        &ch,
        QueueDeclareArguments::new(&unique("ttl.queue"))
            .arguments(table(&[("x-message-ttl", FieldValue::I(200))]))
            .finish(),
    )
    .await;
    publish(&ch, "", &ttl_q, b"short-lived", BasicProperties::default()).await;
    wait_ready(&ch, &ttl_q, 0).await;
    assert!(
        get(&ch, &ttl_q, true).await.is_none(),
        "expired by the queue TTL"
    );
    // Per-message TTL, dead-lettered through the default exchange.
    let dlq = declare(&ch, QueueDeclareArguments::new(&unique("ttl.dlq"))).await;
    let exp_q = declare(
        &ch,
        QueueDeclareArguments::new(&unique("ttl.message"))
            .arguments(table(&[
                ("x-dead-letter-exchange", text("")),
                ("x-dead-letter-routing-key", text(&dlq)),
            ]))
            .finish(),
    )
    .await;
    publish(
        &ch,
        "",
        &exp_q,
        b"expiring",
        BasicProperties::default().with_expiration("200").finish(),
    )
    .await;
    wait_ready(&ch, &dlq, 1).await;
    assert_eq!(ready(&ch, &exp_q).await, 0, "expired by its expiration");
    let (_, props, body) = get(&ch, &dlq, true).await.expect("the expired message");
    assert_eq!(body, b"expiring");
    assert_eq!(
        props.expiration(),
        None,
        "dead-lettering removes the expiration"
    );
    let d = deaths(&props);
    assert_eq!(d.len(), 1, "one x-death entry: {d:?}");
    assert_eq!(death_text(&d[0], "reason"), "expired");
    assert_eq!(death_text(&d[0], "queue"), exp_q);
    assert_eq!(death_text(&d[0], "original-expiration"), "200");
    assert_eq!(death_count(&d[0]), 1);
    for q in [&ttl_q, &exp_q, &dlq] {
        delete(&ch, q).await;
    }
    close(conn, ch).await;
}

#[tokio::test]
async fn amqprs_priority() {
    let broker = TestBroker::start().await;
    let (conn, ch) = open(&broker).await;
    let q = declare(
        &ch,
        QueueDeclareArguments::transient_autodelete(&unique("priority"))
            .arguments(table(&[("x-max-priority", FieldValue::I(10))]))
            .finish(),
    )
    .await;
    for p in [1u8, 5, 9] {
        publish(
            &ch,
            "",
            &q,
            format!("p{p}").as_bytes(),
            BasicProperties::default().with_priority(p).finish(),
        )
        .await;
    }
    assert_eq!(ready(&ch, &q).await, 3, "all published before consuming");
    let (_, mut rx) = consume(
        &ch,
        BasicConsumeArguments::new(&q, "").manual_ack(true).finish(),
    )
    .await;
    let mut order = Vec::new();
    for _ in 0..3 {
        let (deliver, props, body) = recv(&mut rx, "priority delivery").await;
        order.push((String::from_utf8(body).expect("utf-8"), props.priority()));
        ch.basic_ack(BasicAckArguments::new(deliver.delivery_tag(), false))
            .await
            .expect("basic.ack");
    }
    assert_eq!(
        order,
        [
            ("p9".to_owned(), Some(9)),
            ("p5".to_owned(), Some(5)),
            ("p1".to_owned(), Some(1))
        ]
    );
    delete(&ch, &q).await;
    close(conn, ch).await;
}

#[tokio::test]
async fn amqprs_large_message() {
    let broker = TestBroker::start().await;
    let (conn, ch) = open(&broker).await;
    let q = declare(
        &ch,
        QueueDeclareArguments::transient_autodelete(&unique("large")),
    )
    .await;
    let body: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    publish(&ch, "", &q, &body, BasicProperties::default()).await;
    let (_, mut rx) = consume(
        &ch,
        BasicConsumeArguments::new(&q, "").auto_ack(true).finish(),
    )
    .await;
    let (_, _, got) = recv(&mut rx, "the 5 MiB message").await;
    assert_eq!(got.len(), body.len(), "body length");
    assert!(got == body, "the 5 MiB body round-trips byte for byte");
    delete(&ch, &q).await;
    close(conn, ch).await;
}

fn assert_empty_props(got: &BasicProperties, via: &str) {
    assert_eq!(
        got.content_type().map(String::as_str),
        Some("application/octet-stream"),
        "content type {via}"
    );
    assert_eq!(
        got.message_id().map(String::as_str),
        Some("empty-1"),
        "message id {via}"
    );
    assert_eq!(
        got.headers().and_then(|h| h.get(&key("kind"))),
        Some(&text("nothing")),
        "headers {via}"
    );
    assert_eq!(got.delivery_mode(), None, "no delivery mode {via}");
}

#[tokio::test]
async fn amqprs_empty_message() {
    let broker = TestBroker::start().await;
    let (conn, ch) = open(&broker).await;
    let q = declare(
        &ch,
        QueueDeclareArguments::transient_autodelete(&unique("empty")),
    )
    .await;
    let props = BasicProperties::default()
        .with_content_type("application/octet-stream")
        .with_message_id("empty-1")
        .with_headers(table(&[("kind", text("nothing"))]))
        .finish();
    publish(&ch, "", &q, b"", props.clone()).await;
    publish(&ch, "", &q, b"", props.clone()).await;
    // Through basic.get ...
    let (_, got_props, body) = get(&ch, &q, true).await.expect("the empty message (get)");
    assert!(body.is_empty(), "empty body via basic.get: {body:?}");
    assert_empty_props(&got_props, "via basic.get");
    // ... and through a consumer.
    let (_, mut rx) = consume(
        &ch,
        BasicConsumeArguments::new(&q, "").auto_ack(true).finish(),
    )
    .await;
    let (_, got_props, body) = recv(&mut rx, "the empty message (consume)").await;
    assert!(body.is_empty(), "empty body via consumer: {body:?}");
    assert_empty_props(&got_props, "via consumer");
    delete(&ch, &q).await;
    close(conn, ch).await;
}

#[tokio::test]
async fn amqprs_properties() {
    let broker = TestBroker::start().await;
    let (conn, ch) = open(&broker).await;
    let q = declare(
        &ch,
        QueueDeclareArguments::transient_autodelete(&unique("props")),
    )
    .await;
    let array: FieldArray = vec![text("one"), FieldValue::I(2), FieldValue::t(true)]
        .try_into()
        .expect("a field array");
    let bytes: ByteArray = vec![0u8, 1, 0xfe, 0xff].try_into().expect("a byte array");
    let values = [
        ("bool-true", FieldValue::t(true)),
        ("bool-false", FieldValue::t(false)),
        ("i8", FieldValue::b(-5)),
        ("u8", FieldValue::B(200)),
        ("i16", FieldValue::s(-30_000)),
        ("u16", FieldValue::u(60_000)),
        ("i32", FieldValue::I(-2_000_000_000)),
        ("u32", FieldValue::i(4_000_000_000)),
        ("i64", FieldValue::l(-9_000_000_000_000)),
        ("f32", FieldValue::f(1.5)),
        ("f64", FieldValue::d(-2.25e100)),
        ("decimal", FieldValue::D(DecimalValue::new(2, -12_345))),
        ("string", text("héllo wörld")),
        ("array", FieldValue::A(array)),
        ("timestamp", FieldValue::T(1_700_000_000)),
        (
            "table",
            FieldValue::F(table(&[("inner", text("value")), ("n", FieldValue::I(7))])),
        ),
        ("void", FieldValue::V),
        ("bytes", FieldValue::x(bytes)),
    ];
    let headers = table(&values);
    let props = BasicProperties::default()
        .with_content_type("application/json")
        .with_content_encoding("gzip")
        .with_headers(headers)
        .with_delivery_mode(2)
        .with_priority(7)
        .with_correlation_id("corr-42")
        .with_reply_to("replies")
        .with_expiration("600000")
        .with_message_id("msg-42")
        .with_timestamp(1_700_000_123)
        .with_message_type("scenario.properties")
        .with_user_id("guest")
        .with_app_id("warren-e2e")
        .finish();
    publish(&ch, "", &q, b"{}", props.clone()).await;
    let (_, mut rx) = consume(
        &ch,
        BasicConsumeArguments::new(&q, "").auto_ack(true).finish(),
    )
    .await;
    let (_, got, body) = recv(&mut rx, "the message with every property").await;
    assert_eq!(body, b"{}");
    assert_eq!(
        got.content_type().map(String::as_str),
        Some("application/json")
    );
    assert_eq!(got.content_encoding().map(String::as_str), Some("gzip"));
    assert_eq!(got.delivery_mode(), Some(2));
    assert_eq!(got.priority(), Some(7));
    assert_eq!(got.correlation_id().map(String::as_str), Some("corr-42"));
    assert_eq!(got.reply_to().map(String::as_str), Some("replies"));
    assert_eq!(got.expiration().map(String::as_str), Some("600000"));
    assert_eq!(got.message_id().map(String::as_str), Some("msg-42"));
    assert_eq!(got.timestamp(), Some(1_700_000_123));
    assert_eq!(
        got.message_type().map(String::as_str),
        Some("scenario.properties")
    );
    assert_eq!(got.user_id().map(String::as_str), Some("guest"));
    assert_eq!(got.app_id().map(String::as_str), Some("warren-e2e"));
    let got_headers = got.headers().expect("headers came back");
    for (name, value) in &values {
        assert_eq!(
            got_headers.get(&key(name)),
            Some(value),
            "header {name} (value and type)"
        );
    }
    assert_eq!(
        got_headers.as_ref().len(),
        values.len(),
        "no header added or lost: {got_headers}"
    );
    delete(&ch, &q).await;
    close(conn, ch).await;
}

#[tokio::test]
async fn amqprs_cancel_notify() {
    let broker = TestBroker::start().await;
    let (conn, ch) = open(&broker).await;
    let mut ev = events(&ch).await;
    let q = declare(&ch, QueueDeclareArguments::new(&unique("cancel"))).await;
    let (tag, mut rx) = consume(
        &ch,
        BasicConsumeArguments::new(&q, "").manual_ack(true).finish(),
    )
    .await;
    // Another channel deletes the queue under the consumer.
    let other = conn.open_channel(None).await.expect("second channel");
    delete(&other, &q).await;
    match next_event(&mut ev, "basic.cancel from the broker").await {
        Event::Cancel { consumer_tag } => assert_eq!(consumer_tag, tag),
        Event::Close { code, text } => {
            panic!("expected basic.cancel, the broker closed the channel: {code} {text}")
        }
        other => panic!("expected basic.cancel, got {other:?}"),
    }
    // amqprs then drops the consumer: its receiver ends.
    let end = tokio::time::timeout(T, rx.recv())
        .await
        .expect("the cancelled consumer's receiver ends in time");
    assert!(
        end.is_none(),
        "no delivery after cancel: {:?}",
        end.map(|m| m.deliver)
    );
    assert!(ch.is_open(), "the consumer's channel stays open");
    tokio::time::timeout(T, other.close())
        .await
        .expect("channel.close answered in time")
        .expect("second channel closes");
    close(conn, ch).await;
}

#[tokio::test]
async fn amqprs_heartbeat() {
    let broker = TestBroker::start().await;
    let addr = broker.addr();
    let conn = Connection::open(
        &OpenConnectionArguments::new(&addr.ip().to_string(), addr.port(), "guest", "guest")
            .heartbeat(1)
            .finish(),
    )
    .await
    .expect("amqprs connects");
    assert_eq!(conn.heartbeat(), 1, "negotiated heartbeat");
    let ch = conn.open_channel(None).await.expect("channel opens");
    let mut ev = events(&ch).await;
    let q = declare(
        &ch,
        QueueDeclareArguments::transient_autodelete(&unique("heartbeat")),
    )
    .await;
    // Idle for more than two heartbeat intervals: only heartbeats keep it alive.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(conn.is_open() && ch.is_open(), "still open after idling");
    publish(&ch, "", &q, b"alive", BasicProperties::default()).await;
    let (_, _, body) = get(&ch, &q, true)
        .await
        .expect("the message published after idling");
    assert_eq!(body, b"alive");
    assert!(ev.try_recv().is_err(), "no channel event while idle");
    delete(&ch, &q).await;
    close(conn, ch).await;
}

/// What the connection callback saw.
#[derive(Debug, PartialEq)]
enum ConnectionEvent {
    Blocked(String),
    Unblocked,
}

struct ConnectionEvents(UnboundedSender<ConnectionEvent>);

impl amqprs::callbacks::ConnectionCallback for ConnectionEvents {
    fn close<'a, 'b, 'f>(
        &'a mut self,
        _connection: &'b Connection,
        _close: amqprs::Close,
    ) -> CallbackFuture<'f, Result<(), AmqprsError>>
    where
        'a: 'f,
        'b: 'f,
        Self: 'f,
    {
        Box::pin(std::future::ready(Ok(())))
    }

    fn blocked<'a, 'b, 'f>(
        &'a mut self,
        _connection: &'b Connection,
        reason: String,
    ) -> CallbackFuture<'f, ()>
    where
        'a: 'f,
        'b: 'f,
        Self: 'f,
    {
        let _ = self.0.send(ConnectionEvent::Blocked(reason));
        Box::pin(std::future::ready(()))
    }

    fn unblocked<'a, 'b, 'f>(&'a mut self, _connection: &'b Connection) -> CallbackFuture<'f, ()>
    where
        'a: 'f,
        'b: 'f,
        Self: 'f,
    {
        let _ = self.0.send(ConnectionEvent::Unblocked);
        Box::pin(std::future::ready(()))
    }

    fn secret_updated<'a, 'b, 'f>(
        &'a mut self,
        _connection: &'b Connection,
    ) -> CallbackFuture<'f, ()>
    where
        'a: 'f,
        'b: 'f,
        Self: 'f,
    {
        Box::pin(std::future::ready(()))
    }
}

/// amqprs does not announce the `connection.blocked` capability, so, as RabbitMQ does,
/// the broker holds its publishes back during the alarm without telling it.
#[tokio::test]
async fn amqprs_is_held_back_by_the_memory_alarm_without_being_told() {
    let broker = TestBroker::start().await;
    let (conn, ch) = open(&broker).await;
    assert!(
        conn.server_properties().capabilities().connection_blocked(),
        "capability connection.blocked"
    );
    let (tx, mut rx) = unbounded_channel();
    conn.register_callback(ConnectionEvents(tx)).await.unwrap();
    let queue = declare(&ch, QueueDeclareArguments::new(&unique("blocked"))).await;

    broker.broker().set_memory_alarm(true);
    ch.basic_publish(
        BasicProperties::default(),
        b"held".to_vec(),
        BasicPublishArguments::new("", &queue),
    )
    .await
    .unwrap();
    let (_other, other_ch) = open(&broker).await;
    tokio::time::sleep(QUIET).await;
    let (_, count, _) = other_ch
        .queue_declare(QueueDeclareArguments::new(&queue).passive(true).finish())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(count, 0, "a publish taken during the alarm");

    broker.broker().set_memory_alarm(false);
    let (_, count, _) = ch
        .queue_declare(QueueDeclareArguments::new(&queue).passive(true).finish())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(count, 1);
    assert!(rx.try_recv().is_err(), "told although it did not ask");
}
