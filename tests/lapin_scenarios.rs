//! Interop catalogue scenarios (`interop/SCENARIOS.md`) through lapin that the other
//! lapin tests do not cover: rpc, cancel_notify, heartbeat, and auto_recovery (lapin's
//! `ConnectionProperties::enable_auto_recover`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

use std::net::SocketAddr;

use std::time::Duration;

use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use warren_e2e::TestBroker;

/// Upper bound for every single wait in these scenarios.
const T: Duration = Duration::from_secs(5);

/// A name no other scenario (or earlier run) uses.
fn unique(what: &str) -> String {
    warren_e2e::unique_name("lapin", what)
}

async fn connect(url: &str, props: ConnectionProperties) -> (Connection, Channel) {
    let conn = tokio::time::timeout(T, Connection::connect(url, props))
        .await
        .expect("connection opened in time")
        .expect("lapin connects");
    let ch = tokio::time::timeout(T, conn.create_channel())
        .await
        .expect("channel opened in time")
        .expect("channel opens");
    (conn, ch)
}

async fn declare(ch: &Channel, name: &str, options: QueueDeclareOptions) -> String {
    tokio::time::timeout(
        T,
        ch.queue_declare(name.into(), options, FieldTable::default()),
    )
    .await
    .expect("queue.declare answered in time")
    .expect("queue declared")
    .name()
    .to_string()
}

async fn consume(ch: &Channel, queue: &str, no_ack: bool) -> Consumer {
    tokio::time::timeout(
        T,
        ch.basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions {
                no_ack,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .expect("basic.consume answered in time")
    .expect("consumer starts")
}

async fn next(consumer: &mut Consumer, step: &str) -> Delivery {
    tokio::time::timeout(T, consumer.next())
        .await
        .unwrap_or_else(|_| panic!("{step}: no delivery within {T:?}"))
        .unwrap_or_else(|| panic!("{step}: the consumer ended"))
        .unwrap_or_else(|e| panic!("{step}: consumer error {e}"))
}

async fn publish(ch: &Channel, routing_key: &str, body: &[u8], props: BasicProperties) {
    tokio::time::timeout(
        T,
        ch.basic_publish(
            "".into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            body,
            props,
        ),
    )
    .await
    .expect("basic.publish handed over in time")
    .expect("basic.publish sent");
}

async fn delete(ch: &Channel, queue: &str) {
    tokio::time::timeout(
        T,
        ch.queue_delete(queue.into(), QueueDeleteOptions::default()),
    )
    .await
    .expect("queue.delete answered in time")
    .expect("queue deleted");
}

async fn close(conn: &Connection) {
    tokio::time::timeout(T, conn.close(200, "bye".into()))
        .await
        .expect("connection.close answered in time")
        .expect("connection closes cleanly");
}

#[tokio::test]
async fn lapin_rpc() {
    let broker = TestBroker::start().await;
    let url = broker.url();
    // The server: answers each request to its reply_to with its correlation_id.
    let (server_conn, server) = connect(&url, ConnectionProperties::default()).await;
    let requests = declare(
        &server,
        &unique("rpc.requests"),
        QueueDeclareOptions {
            auto_delete: true,
            ..QueueDeclareOptions::default()
        },
    )
    .await;
    let mut incoming = consume(&server, &requests, false).await;
    let responder = server.clone();
    let serving = tokio::spawn(async move {
        while let Some(Ok(req)) = incoming.next().await {
            let Some(reply_to) = req.properties.reply_to().clone() else {
                continue;
            };
            let mut answer = BasicProperties::default();
            if let Some(id) = req.properties.correlation_id().clone() {
                answer = answer.with_correlation_id(id);
            }
            let mut body = b"reply:".to_vec();
            body.extend_from_slice(&req.data);
            if responder
                .basic_publish(
                    "".into(),
                    reply_to,
                    BasicPublishOptions::default(),
                    &body,
                    answer,
                )
                .await
                .is_err()
                || req.ack(BasicAckOptions::default()).await.is_err()
            {
                return;
            }
        }
    });
    // The caller: a server-named exclusive reply queue.
    let (conn, ch) = connect(&url, ConnectionProperties::default()).await;
    let reply_queue = declare(
        &ch,
        "",
        QueueDeclareOptions {
            exclusive: true,
            ..QueueDeclareOptions::default()
        },
    )
    .await;
    assert!(
        reply_queue.starts_with("amq.gen-"),
        "server-named queue: {reply_queue}"
    );
    let mut replies = consume(&ch, &reply_queue, true).await;
    for (id, body) in [("corr-1", "first"), ("corr-2", "second")] {
        publish(
            &ch,
            &requests,
            body.as_bytes(),
            BasicProperties::default()
                .with_reply_to(reply_queue.as_str().into())
                .with_correlation_id(id.into()),
        )
        .await;
    }
    let mut answers = Vec::new();
    for _ in 0..2 {
        let reply = next(&mut replies, "rpc reply").await;
        let id = reply
            .properties
            .correlation_id()
            .clone()
            .expect("the reply carries the correlation id");
        answers.push((
            id.to_string(),
            String::from_utf8(reply.data).expect("utf-8 reply"),
        ));
    }
    answers.sort();
    assert_eq!(
        answers,
        [
            ("corr-1".to_owned(), "reply:first".to_owned()),
            ("corr-2".to_owned(), "reply:second".to_owned())
        ]
    );
    close(&conn).await;
    delete(&server, &requests).await;
    close(&server_conn).await;
    tokio::time::timeout(T, serving)
        .await
        .expect("the server task ends with its connection")
        .expect("the server task did not panic");
}

#[tokio::test]
async fn lapin_cancel_notify() {
    let broker = TestBroker::start().await;
    let (conn, ch) = connect(&broker.url(), ConnectionProperties::default()).await;
    let q = declare(&ch, &unique("cancel"), QueueDeclareOptions::default()).await;
    let mut consumer = consume(&ch, &q, false).await;
    // Another channel deletes the queue under the consumer.
    let other = tokio::time::timeout(T, conn.create_channel())
        .await
        .expect("second channel opened in time")
        .expect("second channel opens");
    delete(&other, &q).await;
    // lapin ends the consumer's stream on the broker's basic.cancel.
    match tokio::time::timeout(T, consumer.next()).await {
        Ok(None) => {}
        Ok(Some(other)) => panic!("expected the consumer to end, got {other:?}"),
        Err(_) => panic!("the consumer did not end within {T:?} after its queue was deleted"),
    }
    assert!(
        ch.status().connected(),
        "the consumer's channel stays open: {:?}",
        ch.status()
    );
    // The channel is still usable.
    let again = declare(
        &ch,
        &unique("cancel.after"),
        QueueDeclareOptions {
            auto_delete: true,
            ..QueueDeclareOptions::default()
        },
    )
    .await;
    delete(&ch, &again).await;
    close(&conn).await;
}

#[tokio::test]
async fn lapin_heartbeat() {
    let broker = TestBroker::start().await;
    let url = format!("{}?heartbeat=1", broker.url());
    let (conn, ch) = connect(&url, ConnectionProperties::default()).await;
    assert_eq!(conn.configuration().heartbeat(), 1, "negotiated heartbeat");
    let q = declare(
        &ch,
        &unique("heartbeat"),
        QueueDeclareOptions {
            auto_delete: true,
            ..QueueDeclareOptions::default()
        },
    )
    .await;
    // Idle for more than two heartbeat intervals: only heartbeats keep it alive.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(
        conn.status().connected(),
        "still connected after idling: {:?}",
        conn.status()
    );
    publish(&ch, &q, b"alive", BasicProperties::default()).await;
    let got = tokio::time::timeout(
        T,
        ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true }),
    )
    .await
    .expect("basic.get answered in time")
    .expect("basic.get succeeds")
    .expect("the message published after idling");
    assert_eq!(got.delivery.data, b"alive");
    delete(&ch, &q).await;
    close(&conn).await;
}

/// A stable address in front of a [`TestBroker`], which comes back on a new port after
/// a restart: like a broker restarted on its usual port, the front refuses connections
/// while paused and forwards to the current broker otherwise.
struct Front {
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

impl Front {
    async fn start(backend: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the front address");
        let addr = listener.local_addr().expect("front address");
        Self {
            addr,
            accept: Some(Self::serve(listener, backend)),
        }
    }

    fn serve(listener: TcpListener, backend: SocketAddr) -> JoinHandle<()> {
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(backend).await {
                        // Ends when either side closes; errors are just the end of it.
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        })
    }

    /// Stop accepting (connections are refused); established ones go on.
    async fn pause(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
            // Once the task is gone, so is its listener.
            let _ = accept.await;
        }
    }

    /// Accept again on the same address, forwarding to `backend`.
    async fn resume(&mut self, backend: SocketAddr) {
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("re-bind the front address");
        self.accept = Some(Self::serve(listener, backend));
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }
}

/// Publish with confirms, riding out a recovery: lapin reports operations on a
/// recovering channel as errors that [`Channel::wait_for_recovery`] waits out.
async fn publish_confirmed_through_recovery(ch: &Channel, queue: &str, body: &[u8]) {
    let deadline = tokio::time::Instant::now() + 2 * T;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "publishing {body:?} never got confirmed"
        );
        let attempt = async {
            ch.basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await?
            .await
        };
        match tokio::time::timeout(T, attempt).await {
            Ok(Ok(confirmation)) => {
                assert!(
                    confirmation.is_ack(),
                    "publish {body:?} confirmed with {confirmation:?}"
                );
                return;
            }
            Ok(Err(e)) => {
                tokio::time::timeout(2 * T, ch.wait_for_recovery(e.clone()))
                    .await
                    .unwrap_or_else(|_| panic!("no recovery within {:?} after {e}", 2 * T))
                    .unwrap_or_else(|e| panic!("publish failed, not recoverable: {e}"));
            }
            Err(_) => panic!("publish {body:?}: no confirm within {T:?}"),
        }
    }
}

#[tokio::test]
async fn lapin_auto_recovery() {
    let broker = TestBroker::start().await;
    let mut front = Front::start(broker.addr()).await;
    let props = ConnectionProperties::default()
        // Retry quickly rather than lapin's default 1 s, 2 s, 4 s ... steps.
        .configure_backoff(|b| {
            b.with_min_delay(Duration::from_millis(50))
                .with_max_times(40)
        })
        .enable_auto_recover();
    let (conn, ch) = connect(&front.url(), props).await;
    tokio::time::timeout(T, ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect("confirm.select answered in time")
        .expect("confirm mode");
    let q = declare(
        &ch,
        &unique("recovery"),
        QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        },
    )
    .await;
    let mut consumer = consume(&ch, &q, false).await;
    publish_confirmed_through_recovery(&ch, &q, b"before").await;
    let before = next(&mut consumer, "the message before the restart").await;
    assert_eq!(before.data, b"before");
    before
        .ack(BasicAckOptions::default())
        .await
        .expect("ack before the restart");

    // Restart the broker "on the same address".
    let mut events = conn.events_listener();
    front.pause().await;
    let broker = broker.restart().await;
    front.resume(broker.addr()).await;

    // lapin reconnects, reopens the channel, redeclares the queue and the consumer.
    publish_confirmed_through_recovery(&ch, &q, b"after").await;
    let deadline = tokio::time::Instant::now() + 2 * T;
    let after = loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, consumer.next()).await {
            Err(_) => panic!("the recovered consumer got nothing within {:?}", 2 * T),
            Ok(None) => panic!("the consumer ended instead of being recovered"),
            Ok(Some(Err(e))) => {
                tokio::time::timeout(2 * T, ch.wait_for_recovery(e.clone()))
                    .await
                    .unwrap_or_else(|_| panic!("no recovery within {:?} after {e}", 2 * T))
                    .unwrap_or_else(|e| panic!("consumer failed, not recoverable: {e}"));
            }
            Ok(Some(Ok(delivery))) => break delivery,
        }
    };
    assert_eq!(
        after.data, b"after",
        "the message published after the restart"
    );
    // That was a new connection, not the old one somehow surviving.
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout(T, events.next()).await {
            Ok(Some(lapin::Event::Connected)) => break,
            Ok(Some(other)) => seen.push(other),
            Ok(None) | Err(_) => panic!("lapin never reported reconnecting; events: {seen:?}"),
        }
    }
    after
        .ack(BasicAckOptions::default())
        .await
        .expect("ack after the restart");
    delete(&ch, &q).await;
    close(&conn).await;
}

/// lapin announces `connection.blocked`: it hears the memory alarm block and unblock
/// its connection, and what it published meanwhile arrives once unblocked.
#[tokio::test]
async fn lapin_hears_connection_blocked_and_unblocked() {
    let broker = TestBroker::start().await;
    let url = broker.url();
    let (conn, ch) = connect(&url, ConnectionProperties::default()).await;
    let mut events = conn.events_listener();
    let queue = declare(&ch, &unique("blocked"), QueueDeclareOptions::default()).await;
    let mut consumer = consume(&ch, &queue, true).await;

    broker.broker().set_memory_alarm(true);
    publish(&ch, &queue, b"held", BasicProperties::default()).await;
    let blocked = tokio::time::timeout(T, async {
        loop {
            match events.next().await {
                Some(lapin::Event::ConnectionBlocked(reason)) => break reason,
                Some(_) => {}
                None => panic!("events ended"),
            }
        }
    })
    .await
    .expect("connection.blocked in time");
    assert_eq!(blocked, "low on memory");
    assert!(conn.status().blocked());

    broker.broker().set_memory_alarm(false);
    // The held message arrives, and the connection is told it is unblocked.
    assert_eq!(next(&mut consumer, "after the alarm").await.data, b"held");
    tokio::time::timeout(T, async {
        loop {
            match events.next().await {
                Some(lapin::Event::ConnectionUnblocked) => break,
                Some(_) => {}
                None => panic!("events ended"),
            }
        }
    })
    .await
    .expect("connection.unblocked in time");
    close(&conn).await;
}
