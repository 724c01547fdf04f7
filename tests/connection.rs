//! Issue item 1-3 through real sockets: handshake, login, tuning, vhosts, heartbeats,
//! connection and channel lifecycle.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

use std::time::{Duration, Instant};

use warren_codec::frame::FrameType;
use warren_codec::method::Method;
use warren_codec::protocol_header::PROTOCOL_HEADER;
use warren_codec::spec::{AMQPClass, access, basic, channel, connection, queue};
use warren_codec::types::AMQPValue;
use warren_e2e::{RawClient, TestBroker, WAIT, channel, code, connect, raw};

#[tokio::test]
async fn lapin_connects_opens_channels_and_closes() {
    let broker = TestBroker::start().await;
    let conn = connect(&broker).await;
    let a = conn.create_channel().await.unwrap();
    let b = conn.create_channel().await.unwrap();
    assert_ne!(a.id(), b.id());
    a.close(200, "bye".into()).await.unwrap();
    let c = conn.create_channel().await.unwrap();
    c.basic_qos(10, Default::default()).await.unwrap();
    conn.close(200, "bye".into()).await.unwrap();
}

#[tokio::test]
async fn connection_start_advertises_only_what_works() {
    let broker = TestBroker::start().await;
    let mut c = RawClient::connect(broker.addr()).await;
    c.send(&PROTOCOL_HEADER).await;
    let (ch, m) = c.read_method().await.unwrap();
    assert_eq!(ch, 0);
    let Method::Other(AMQPClass::Connection(connection::AMQPMethod::Start(start))) = m else {
        panic!("expected connection.start, got {m:?}");
    };
    assert_eq!((start.version_major, start.version_minor), (0, 9));
    assert_eq!(start.mechanisms.to_string(), "AMQPLAIN PLAIN");
    assert_eq!(start.locales.to_string(), "en_US");
    let props = start.server_properties.inner();
    for key in ["product", "version", "platform", "copyright", "information"] {
        assert!(
            matches!(props.get(key), Some(AMQPValue::LongString(_))),
            "{key}"
        );
    }
    let Some(AMQPValue::FieldTable(caps)) = props.get("capabilities") else {
        panic!("no capabilities table");
    };
    let mut advertised: Vec<&str> = caps.inner().keys().map(|k| k.as_str()).collect();
    advertised.sort_unstable();
    assert_eq!(
        advertised,
        [
            "authentication_failure_close",
            "basic.nack",
            "connection.blocked",
            "consumer_cancel_notify",
            "exchange_exchange_bindings",
            "per_consumer_qos",
            "publisher_confirms",
        ]
    );
}

#[tokio::test]
async fn wrong_protocol_header_gets_ours_back_then_close() {
    let broker = TestBroker::start().await;
    for header in [
        &b"AMQP\x00\x00\x08\x00"[..],
        b"HTTP/1.1",
        b"AMQP\x00\x00\x09\x02",
        b"AMQP\x01\x01\x00\x0a",
    ] {
        let mut c = RawClient::connect(broker.addr()).await;
        c.send(header).await;
        let back = c.read_raw(WAIT).await;
        assert_eq!(back, PROTOCOL_HEADER, "for {header:?}");
    }
}

#[tokio::test]
async fn tune_is_rabbitmq_s_defaults() {
    let broker = TestBroker::start().await;
    let mut c = RawClient::connect(broker.addr()).await;
    c.send(&PROTOCOL_HEADER).await;
    c.read_method().await.unwrap();
    c.send_method(
        0,
        &AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
            client_properties: Default::default(),
            mechanism: "PLAIN".into(),
            response: "\0guest\0guest".into(),
            locale: "en_US".into(),
        })),
    )
    .await;
    let (_, m) = c.read_method().await.unwrap();
    let Method::Other(AMQPClass::Connection(connection::AMQPMethod::Tune(t))) = m else {
        panic!("expected tune, got {m:?}");
    };
    assert_eq!(
        (t.channel_max, t.frame_max, t.heartbeat),
        (2047, 131_072, 60)
    );
}

#[tokio::test]
async fn amqplain_login_works() {
    let broker = TestBroker::start().await;
    let mut c = RawClient::connect(broker.addr()).await;
    c.handshake_with(
        true,
        b"\x05LOGINS\x00\x00\x00\x05guest\x08PASSWORDS\x00\x00\x00\x05guest",
        "AMQPLAIN",
        None,
    )
    .await;
    c.open_connection("/").await;
    c.open_channel(1).await;
}

#[tokio::test]
async fn bad_password_is_refused_with_403_after_a_delay() {
    let broker =
        TestBroker::start_with(|c| c.auth_failure_delay = Duration::from_millis(300)).await;
    let started = Instant::now();
    let mut c = RawClient::connect(broker.addr()).await;
    c.handshake_with(true, b"\0guest\0wrong", "PLAIN", None)
        .await;
    let closed = c.expect_connection_close().await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(closed.code, 403);
    assert_eq!(
        closed.text,
        "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile."
    );
    assert_eq!((closed.class_id, closed.method_id), (0, 0));
    // lapin advertises authentication_failure_close and reports the refusal.
    let url = format!("amqp://guest:nope@{}/%2f", broker.addr());
    let err = lapin::Connection::connect(&url, Default::default())
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(403), "{err}");
}

#[tokio::test]
async fn bad_password_without_the_capability_just_closes() {
    let broker = TestBroker::start().await;
    let mut c = RawClient::connect(broker.addr()).await;
    c.handshake_with(false, b"\0guest\0wrong", "PLAIN", None)
        .await;
    assert!(c.expect_eof().await.is_empty());
}

#[tokio::test]
async fn tune_ok_beyond_the_server_s_limits_gets_530() {
    let broker = TestBroker::start().await;
    for (tune, text) in [
        (
            (2047, 200_000, 60),
            "NOT_ALLOWED - negotiated frame_max = 200000 is higher than the maximum allowed value (131072)",
        ),
        (
            (2047, 4095, 60),
            "NOT_ALLOWED - negotiated frame_max = 4095 is lower than the minimum allowed value (4096)",
        ),
        (
            (2047, 0, 60),
            "NOT_ALLOWED - negotiated frame_max = 0 is higher than the maximum allowed value (131072)",
        ),
        (
            (2048, 131_072, 60),
            "NOT_ALLOWED - negotiated channel_max = 2048 is higher than the maximum allowed value (2047)",
        ),
        (
            (0, 131_072, 60),
            "NOT_ALLOWED - negotiated channel_max = 0 (no limit) is higher than the maximum allowed value (2047)",
        ),
    ] {
        let mut c = RawClient::connect(broker.addr()).await;
        c.handshake_with(true, b"\0guest\0guest", "PLAIN", Some(tune))
            .await;
        let closed = c.expect_connection_close().await;
        assert_eq!(closed.code, 530);
        assert_eq!(closed.text, text);
        assert_eq!((closed.class_id, closed.method_id), (10, 30));
    }
}

#[tokio::test]
async fn lower_limits_from_the_client_are_honoured() {
    let broker = TestBroker::start().await;
    let mut c = RawClient::connect(broker.addr()).await;
    c.handshake_with(true, b"\0guest\0guest", "PLAIN", Some((2047, 4096, 0)))
        .await;
    c.open_connection("/").await;
    c.open_channel(1).await;
    // A 10000-octet body (published elsewhere) comes back split into frames of at most
    // 4096 octets.
    let (_conn, ch) = channel(&broker).await;
    warren_e2e::declare(&ch, "fm").await;
    ch.basic_publish(
        "".into(),
        "fm".into(),
        Default::default(),
        &[b'x'; 10_000],
        Default::default(),
    )
    .await
    .unwrap();
    c.send_method(
        1,
        &AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
            queue: "fm".into(),
            no_ack: true,
        })),
    )
    .await;
    let mut body_frames = Vec::new();
    loop {
        let f = c.read_frame().await.unwrap();
        if f.frame_type == FrameType::Body {
            assert!(f.payload.len() + 8 <= 4096);
            body_frames.push(f.payload.len());
            if body_frames.iter().sum::<usize>() == 10_000 {
                break;
            }
        }
    }
    assert_eq!(body_frames, vec![4088, 4088, 1824]);
}

#[tokio::test]
async fn unknown_vhost_gets_530() {
    let broker = TestBroker::start().await;
    let mut c = RawClient::connect(broker.addr()).await;
    c.handshake_with(true, b"\0guest\0guest", "PLAIN", None)
        .await;
    c.send_method(
        0,
        &AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
            virtual_host: "nope".into(),
        })),
    )
    .await;
    let closed = c.expect_connection_close().await;
    assert_eq!(closed.code, 530);
    assert_eq!(closed.text, "NOT_ALLOWED - vhost nope not found");
    assert_eq!((closed.class_id, closed.method_id), (10, 40));
}

#[tokio::test]
async fn heartbeats_are_sent_and_a_silent_peer_is_dropped() {
    let broker = TestBroker::start().await;
    let mut c = RawClient::connect(broker.addr()).await;
    c.handshake_with(true, b"\0guest\0guest", "PLAIN", Some((2047, 131_072, 1)))
        .await;
    c.open_connection("/").await;
    let started = Instant::now();
    let frames = c.expect_eof().await;
    let elapsed = started.elapsed();
    let heartbeats = frames
        .iter()
        .filter(|f| f.frame_type == FrameType::Heartbeat)
        .count();
    assert!(heartbeats >= 2, "only {heartbeats} heartbeats");
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn a_peer_that_keeps_sending_heartbeats_stays() {
    let broker = TestBroker::start().await;
    let mut c = RawClient::connect(broker.addr()).await;
    c.handshake_with(true, b"\0guest\0guest", "PLAIN", Some((2047, 131_072, 1)))
        .await;
    c.open_connection("/").await;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        c.send(&raw::frame(8, 0, &[])).await;
    }
    c.open_channel(1).await;
}

#[tokio::test]
async fn an_unfinished_handshake_is_dropped() {
    let broker = TestBroker::start_with(|c| c.handshake_timeout = Duration::from_millis(500)).await;
    let started = Instant::now();
    let mut idle = RawClient::connect(broker.addr()).await;
    assert!(idle.expect_eof().await.is_empty());
    let mut after_start = RawClient::connect(broker.addr()).await;
    after_start.send(&PROTOCOL_HEADER).await;
    assert_eq!(after_start.expect_eof().await.len(), 1);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn client_close_gets_close_ok() {
    let broker = TestBroker::start().await;
    let mut c = RawClient::open(broker.addr()).await;
    c.send_method(
        0,
        &AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: 200,
            reply_text: "bye".into(),
            class_id: 0,
            method_id: 0,
        })),
    )
    .await;
    let (_, m) = c.read_method().await.unwrap();
    assert!(matches!(
        m,
        Method::Other(AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)))
    ));
    assert!(c.expect_eof().await.is_empty());
}

#[tokio::test]
async fn shutdown_closes_connections_with_320() {
    let broker = TestBroker::start().await;
    let mut c = RawClient::open(broker.addr()).await;
    let addr = broker.addr();
    let stopping = tokio::spawn(broker.shutdown());
    let closed = c.expect_connection_close().await;
    assert_eq!(closed.code, 320);
    assert_eq!(
        closed.text,
        "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"
    );
    tokio::time::timeout(WAIT, stopping).await.unwrap().unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn access_request_is_answered_for_old_clients() {
    let broker = TestBroker::start().await;
    let mut c = RawClient::open(broker.addr()).await;
    c.send_method(
        1,
        &AMQPClass::Access(access::AMQPMethod::Request(access::Request {
            realm: "/data".into(),
            active: true,
            read: true,
            ..Default::default()
        })),
    )
    .await;
    let (ch, m) = c.read_method().await.unwrap();
    assert_eq!(ch, 1);
    assert!(matches!(
        m,
        Method::Other(AMQPClass::Access(access::AMQPMethod::RequestOk(_)))
    ));
}

#[tokio::test]
async fn channel_flow_false_is_refused_true_is_acknowledged() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    assert!(
        ch.channel_flow(lapin::options::ChannelFlowOptions { active: true })
            .await
            .unwrap()
    );
    let mut c = RawClient::open(broker.addr()).await;
    c.send_method(
        1,
        &AMQPClass::Channel(channel::AMQPMethod::Flow(channel::Flow { active: false })),
    )
    .await;
    let closed = c.expect_connection_close().await;
    assert_eq!(
        (closed.code, closed.text.as_str()),
        (540, "NOT_IMPLEMENTED - active=false")
    );
    assert_eq!((closed.class_id, closed.method_id), (20, 20));
}

#[tokio::test]
async fn channel_max_limits_how_many_channels_are_open() {
    let broker = TestBroker::start().await;
    let mut c = RawClient::connect(broker.addr()).await;
    c.handshake_with(true, b"\0guest\0guest", "PLAIN", Some((2, 131_072, 0)))
        .await;
    c.open_connection("/").await;
    c.open_channel(1).await;
    c.open_channel(7).await;
    c.send_method(
        3,
        &AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
    )
    .await;
    let closed = c.expect_connection_close().await;
    assert_eq!(closed.code, 530);
    assert_eq!(
        closed.text,
        "NOT_ALLOWED - number of channels opened (2) has reached the negotiated channel_max (2)"
    );
}

#[tokio::test]
async fn closed_channels_can_be_reopened() {
    let broker = TestBroker::start().await;
    let mut c = RawClient::open(broker.addr()).await;
    c.send_method(
        1,
        &AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
            reply_code: 200,
            reply_text: "bye".into(),
            class_id: 0,
            method_id: 0,
        })),
    )
    .await;
    let (ch, m) = c.read_method().await.unwrap();
    assert_eq!(ch, 1);
    assert!(matches!(
        m,
        Method::Other(AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)))
    ));
    c.open_channel(1).await;
}

#[tokio::test]
async fn server_closes_a_channel_and_the_rest_of_the_connection_carries_on() {
    let broker = TestBroker::start().await;
    let (conn, bad) = channel(&broker).await;
    let good = conn.create_channel().await.unwrap();
    let err = bad
        .queue_declare(
            "missing".into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(404));
    warren_e2e::declare(&good, "still-fine").await;
    let again = conn.create_channel().await.unwrap();
    warren_e2e::declare(&again, "still-fine").await;
}

#[tokio::test]
async fn the_amqp_0_9_header_is_served_as_0_9_1_like_rabbitmq() {
    let broker = TestBroker::start().await;
    let mut c = RawClient::connect(broker.addr()).await;
    c.send(b"AMQP\x01\x01\x00\x09").await;
    let (_, m) = c.read_method().await.unwrap();
    assert!(matches!(
        m,
        Method::Other(AMQPClass::Connection(connection::AMQPMethod::Start(_)))
    ));
}

fn declare_method(queue: &str, passive: bool) -> Vec<u8> {
    raw::queue_declare_frame(1, queue, passive)
}

/// Messages ready in `queue`, by a passive declare on channel 1 of `c`.
async fn ready(c: &mut RawClient, queue: &str) -> u32 {
    c.send(&declare_method(queue, true)).await;
    match c.read_method().await {
        Some((_, Method::Other(AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok))))) => {
            ok.message_count
        }
        other => panic!("expected declare-ok, got {other:?}"),
    }
}

/// Waits (up to `WAIT`) until `queue` holds `n` ready messages.
async fn until_ready(c: &mut RawClient, queue: &str, n: u32) {
    let started = Instant::now();
    while ready(c, queue).await != n {
        assert!(started.elapsed() < WAIT, "{queue} never held {n}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn is_blocked(m: &Method) -> bool {
    matches!(
        m,
        Method::Other(AMQPClass::Connection(connection::AMQPMethod::Blocked(b)))
            if b.reason.as_str() == "low on memory"
    )
}

fn is_unblocked(m: &Method) -> bool {
    matches!(
        m,
        Method::Other(AMQPClass::Connection(connection::AMQPMethod::Unblocked(_)))
    )
}

#[tokio::test]
async fn the_memory_alarm_blocks_a_publisher_until_it_clears_and_consumers_go_on() {
    let broker = TestBroker::start().await;
    let mut publisher = RawClient::open(broker.addr()).await;
    publisher.send(&declare_method("alarm", false)).await;
    publisher.read_method().await.unwrap();
    publisher
        .send(&raw::publish_frames(1, "", "alarm", &[], b"before"))
        .await;
    // A round trip, so the publish before the alarm is in the queue.
    assert_eq!(ready(&mut publisher, "alarm").await, 1);

    broker.broker().set_memory_alarm(true);
    let during: Vec<u8> = (0..3)
        .flat_map(|i| raw::publish_frames(1, "", "alarm", &[], format!("m{i}").as_bytes()))
        .collect();
    publisher.send(&during).await;
    let (ch, m) = publisher.read_method().await.unwrap();
    assert_eq!(ch, 0);
    assert!(is_blocked(&m), "expected connection.blocked, got {m:?}");

    // Another connection is not blocked: it sees that nothing of the three got in, and
    // takes the message from before the alarm.
    let mut consumer = RawClient::open(broker.addr()).await;
    assert_eq!(ready(&mut consumer, "alarm").await, 1);
    consumer
        .send(&raw::method_frame(
            1,
            &AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
                queue: "alarm".into(),
                no_ack: true,
            })),
        ))
        .await;
    let (_, got) = consumer.read_method().await.unwrap();
    assert!(
        matches!(
            got,
            Method::Other(AMQPClass::Basic(basic::AMQPMethod::GetOk(_)))
        ),
        "{got:?}"
    );
    consumer.read_frame().await.unwrap();
    assert_eq!(&consumer.read_frame().await.unwrap().payload[..], b"before");
    assert_eq!(ready(&mut consumer, "alarm").await, 0);

    broker.broker().set_memory_alarm(false);
    let (ch, m) = publisher.read_method().await.unwrap();
    assert_eq!(ch, 0);
    assert!(is_unblocked(&m), "expected connection.unblocked, got {m:?}");
    // What waited is taken now, all of it.
    until_ready(&mut consumer, "alarm", 3).await;
    assert_eq!(ready(&mut publisher, "alarm").await, 3);
}

#[tokio::test]
async fn a_client_without_the_capability_is_held_back_without_being_told() {
    let broker = TestBroker::start().await;
    let mut publisher = RawClient::connect(broker.addr()).await;
    publisher
        .handshake_with(false, b"\0guest\0guest", "PLAIN", None)
        .await;
    publisher.open_connection("/").await;
    publisher.open_channel(1).await;
    publisher.send(&declare_method("quiet-alarm", false)).await;
    publisher.read_method().await.unwrap();

    broker.broker().set_memory_alarm(true);
    publisher
        .send(&raw::publish_frames(1, "", "quiet-alarm", &[], b"held"))
        .await;
    let mut observer = RawClient::open(broker.addr()).await;
    // The publish is not taken, and nothing is said.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(ready(&mut observer, "quiet-alarm").await, 0);
    broker.broker().set_memory_alarm(false);
    until_ready(&mut observer, "quiet-alarm", 1).await;
    assert_eq!(ready(&mut publisher, "quiet-alarm").await, 1);
}

#[tokio::test]
async fn a_blocked_connection_is_not_closed_for_heartbeats_it_could_not_send() {
    let broker = TestBroker::start().await;
    let mut publisher = RawClient::connect(broker.addr()).await;
    // A one-second heartbeat, and this client never sends one.
    publisher
        .handshake_with(true, b"\0guest\0guest", "PLAIN", Some((2047, 131_072, 1)))
        .await;
    publisher.open_connection("/").await;
    publisher.open_channel(1).await;
    publisher.send(&declare_method("hb-alarm", false)).await;
    publisher.read_method().await.unwrap();
    broker.broker().set_memory_alarm(true);
    publisher
        .send(&raw::publish_frames(1, "", "hb-alarm", &[], b"held"))
        .await;
    let (_, m) = publisher.read_method().await.unwrap();
    assert!(is_blocked(&m), "{m:?}");
    // Well past two heartbeat intervals; the broker's own heartbeats keep coming.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    broker.broker().set_memory_alarm(false);
    let (_, m) = publisher.read_method().await.unwrap();
    assert!(is_unblocked(&m), "{m:?}");
    assert_eq!(ready(&mut publisher, "hb-alarm").await, 1);
}

/// Blocked while any alarm is in effect, with RabbitMQ's reason for the alarms set at
/// the time; clearing one of two does not unblock.
#[tokio::test]
async fn disk_and_memory_alarms_block_together_until_both_clear() {
    let broker = TestBroker::start().await;
    let mut disk_only = RawClient::open(broker.addr()).await;
    disk_only.send(&declare_method("two-alarms", false)).await;
    disk_only.read_method().await.unwrap();

    broker.broker().set_disk_alarm(true);
    disk_only
        .send(&raw::publish_frames(1, "", "two-alarms", &[], b"a"))
        .await;
    let (_, m) = disk_only.read_method().await.unwrap();
    assert!(
        matches!(&m, Method::Other(AMQPClass::Connection(connection::AMQPMethod::Blocked(b)))
            if b.reason.as_str() == "low on disk"),
        "{m:?}"
    );

    broker.broker().set_memory_alarm(true);
    let mut both = RawClient::open(broker.addr()).await;
    both.send(&raw::publish_frames(1, "", "two-alarms", &[], b"b"))
        .await;
    let (_, m) = both.read_method().await.unwrap();
    assert!(
        matches!(&m, Method::Other(AMQPClass::Connection(connection::AMQPMethod::Blocked(b)))
            if b.reason.as_str() == "low on disk & memory"),
        "{m:?}"
    );

    broker.broker().set_disk_alarm(false);
    let mut observer = RawClient::open(broker.addr()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(ready(&mut observer, "two-alarms").await, 0);
    broker.broker().set_memory_alarm(false);
    for c in [&mut disk_only, &mut both] {
        let (_, m) = c.read_method().await.unwrap();
        assert!(is_unblocked(&m), "{m:?}");
    }
    until_ready(&mut observer, "two-alarms", 2).await;
}

/// A blocked connection still reads the `close-ok` to a `connection.close` it was sent:
/// shutdown does not wait out the close timeout for it.
#[tokio::test]
async fn a_blocked_connection_still_hears_close_ok_at_shutdown() {
    // A close timeout far longer than the wait below: only a close-ok ends it sooner.
    let broker = TestBroker::start_with(|c| c.close_timeout = Duration::from_secs(60)).await;
    let mut c = RawClient::open(broker.addr()).await;
    broker.broker().set_memory_alarm(true);
    c.send(&raw::publish_frames(1, "", "anywhere", &[], b"held"))
        .await;
    let (_, m) = c.read_method().await.unwrap();
    assert!(is_blocked(&m), "{m:?}");
    let stopping = tokio::spawn(broker.shutdown());
    // Answers close-ok.
    assert_eq!(c.expect_connection_close().await.code, 320);
    tokio::time::timeout(WAIT, stopping).await.unwrap().unwrap();
}
