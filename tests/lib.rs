//! Helpers shared by the end-to-end tests.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::time::Duration;

use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, Consumer};
pub use warren_testkit::TestBroker;
pub use warren_testkit::raw::{self, RawClient};

/// A broker object name no other test (or earlier run) uses: `<client>.<what>.<pid>.<nanos>.<n>`.
pub fn unique_name(client: &str, what: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{client}.{what}.{}.{nanos:x}.{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Upper bound for anything a test waits on.
pub const WAIT: Duration = Duration::from_secs(10);

/// A lapin connection to the test broker.
pub async fn connect(broker: &TestBroker) -> Connection {
    Connection::connect(&broker.url(), ConnectionProperties::default())
        .await
        .expect("lapin connects")
}

/// A connection and one channel.
pub async fn channel(broker: &TestBroker) -> (Connection, Channel) {
    let conn = connect(broker).await;
    let ch = conn.create_channel().await.expect("channel opens");
    (conn, ch)
}

/// An amqprs connection to the test broker and one channel on it.
pub async fn amqprs_open(
    broker: &TestBroker,
) -> (amqprs::connection::Connection, amqprs::channel::Channel) {
    let addr = broker.addr();
    let conn =
        amqprs::connection::Connection::open(&amqprs::connection::OpenConnectionArguments::new(
            &addr.ip().to_string(),
            addr.port(),
            "guest",
            "guest",
        ))
        .await
        .expect("amqprs connects");
    let ch = conn.open_channel(None).await.expect("amqprs channel opens");
    (conn, ch)
}

/// The AMQP reply code carried by a lapin error, if it is a broker exception.
#[must_use]
pub fn code(e: &lapin::Error) -> Option<u16> {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(err) => Some(err.get_id()),
        _ => None,
    }
}

/// The reply code of a failed lapin operation; panics if it succeeded.
pub fn err_code<T: std::fmt::Debug>(r: lapin::Result<T>) -> u16 {
    let e = r.expect_err("the broker refused the operation");
    code(&e).unwrap_or_else(|| panic!("not a protocol error: {e}"))
}

/// Declare a non-durable queue with default flags.
pub async fn declare(ch: &Channel, name: &str) -> lapin::Queue {
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("queue declared")
}

/// Start a consumer.
pub async fn consume(ch: &Channel, queue: &str, tag: &str, no_ack: bool) -> Consumer {
    ch.basic_consume(
        queue.into(),
        tag.into(),
        BasicConsumeOptions {
            no_ack,
            ..BasicConsumeOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("consumer starts")
}

/// The next delivery, within [`WAIT`].
pub async fn next(consumer: &mut Consumer) -> Delivery {
    tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("a delivery arrives in time")
        .expect("the consumer is still open")
        .expect("the delivery is valid")
}

/// Assert that no delivery arrives within `quiet`.
pub async fn no_delivery(consumer: &mut Consumer, quiet: Duration) {
    if let Ok(Some(d)) = tokio::time::timeout(quiet, consumer.next()).await {
        panic!("unexpected delivery: {d:?}");
    }
}

/// Publish one message on a raw connection's channel 1 and return how the broker closed
/// the channel (or the connection) in response. Raw, because a client library may
/// notice the close before it can report it as a protocol error.
pub async fn publish_refusal(
    broker: &TestBroker,
    publish: warren_codec::spec::basic::Publish,
    properties: &[u8],
) -> raw::Closed {
    publish_refusal_of(broker, publish, properties, b"body").await
}

/// [`publish_refusal`] with a chosen body; an empty one ends the content at its header.
pub async fn publish_refusal_of(
    broker: &TestBroker,
    publish: warren_codec::spec::basic::Publish,
    properties: &[u8],
    body: &[u8],
) -> raw::Closed {
    use warren_codec::method::Method;
    use warren_codec::spec::{AMQPClass, basic, channel, connection};
    let mut c = RawClient::open(broker.addr()).await;
    let mut frames = raw::method_frame(1, &AMQPClass::Basic(basic::AMQPMethod::Publish(publish)));
    frames.extend(raw::content_frames(1, properties, body));
    c.send(&frames).await;
    loop {
        let (ch, m) = c.read_method().await.expect("the broker answers");
        match m {
            Method::Other(AMQPClass::Channel(channel::AMQPMethod::Close(close))) => {
                return raw::Closed {
                    channel: ch,
                    code: close.reply_code,
                    text: close.reply_text.to_string(),
                    class_id: close.class_id,
                    method_id: close.method_id,
                };
            }
            Method::Other(AMQPClass::Connection(connection::AMQPMethod::Close(close))) => {
                return raw::Closed {
                    channel: ch,
                    code: close.reply_code,
                    text: close.reply_text.to_string(),
                    class_id: close.class_id,
                    method_id: close.method_id,
                };
            }
            _ => {}
        }
    }
}
