//! Round trips, truncation and exact bytes for every method Warren sends or receives.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

use amq_protocol::protocol::{
    AMQPClass, access, basic, channel, confirm, connection, exchange, queue, tx,
};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use bytes::{Bytes, BytesMut};
use warren_codec::encode::{
    encode_basic_ack, encode_basic_deliver, encode_basic_get_ok, encode_basic_nack,
    encode_basic_return, encode_heartbeat, encode_method,
};
use warren_codec::frame::{FrameType, decode_frame};
use warren_codec::method::{ALL_METHODS, Method, MethodId, decode_method, method_name};

fn table() -> FieldTable {
    let mut t = FieldTable::default();
    t.insert("x-message-ttl".into(), AMQPValue::LongInt(1000));
    t.insert("flag".into(), AMQPValue::Boolean(true));
    t.insert("s".into(), AMQPValue::LongString(LongString::from("v")));
    t
}

/// One instance of every method with non-default arguments.
fn every_method() -> Vec<AMQPClass> {
    use AMQPClass as C;
    vec![
        C::Connection(connection::AMQPMethod::Start(connection::Start {
            version_major: 0,
            version_minor: 9,
            server_properties: table(),
            mechanisms: "PLAIN AMQPLAIN".into(),
            locales: "en_US".into(),
        })),
        C::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
            client_properties: table(),
            mechanism: "PLAIN".into(),
            response: "\0guest\0guest".into(),
            locale: "en_US".into(),
        })),
        C::Connection(connection::AMQPMethod::Secure(connection::Secure {
            challenge: "c".into(),
        })),
        C::Connection(connection::AMQPMethod::SecureOk(connection::SecureOk {
            response: "r".into(),
        })),
        C::Connection(connection::AMQPMethod::Tune(connection::Tune {
            channel_max: 2047,
            frame_max: 131_072,
            heartbeat: 60,
        })),
        C::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
            channel_max: 10,
            frame_max: 4096,
            heartbeat: 5,
        })),
        C::Connection(connection::AMQPMethod::Open(connection::Open {
            virtual_host: "/".into(),
        })),
        C::Connection(connection::AMQPMethod::OpenOk(connection::OpenOk {})),
        C::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: 320,
            reply_text: "CONNECTION_FORCED - shutdown".into(),
            class_id: 0,
            method_id: 0,
        })),
        C::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
        C::Connection(connection::AMQPMethod::Blocked(connection::Blocked {
            reason: "low memory".into(),
        })),
        C::Connection(connection::AMQPMethod::Unblocked(connection::Unblocked {})),
        C::Connection(connection::AMQPMethod::UpdateSecret(
            connection::UpdateSecret {
                new_secret: "s".into(),
                reason: "r".into(),
            },
        )),
        C::Connection(connection::AMQPMethod::UpdateSecretOk(
            connection::UpdateSecretOk {},
        )),
        C::Channel(channel::AMQPMethod::Open(channel::Open {})),
        C::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {})),
        C::Channel(channel::AMQPMethod::Flow(channel::Flow { active: true })),
        C::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk {
            active: false,
        })),
        C::Channel(channel::AMQPMethod::Close(channel::Close {
            reply_code: 404,
            reply_text: "NOT_FOUND - no queue 'q' in vhost '/'".into(),
            class_id: 50,
            method_id: 10,
        })),
        C::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
        C::Access(access::AMQPMethod::Request(access::Request {
            realm: "/data".into(),
            exclusive: false,
            passive: true,
            active: true,
            write: true,
            read: true,
        })),
        C::Access(access::AMQPMethod::RequestOk(access::RequestOk {})),
        C::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
            exchange: "logs".into(),
            kind: "topic".into(),
            passive: false,
            durable: true,
            auto_delete: false,
            internal: true,
            nowait: false,
            arguments: table(),
        })),
        C::Exchange(exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {})),
        C::Exchange(exchange::AMQPMethod::Delete(exchange::Delete {
            exchange: "logs".into(),
            if_unused: true,
            nowait: false,
        })),
        C::Exchange(exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {})),
        C::Exchange(exchange::AMQPMethod::Bind(exchange::Bind {
            destination: "d".into(),
            source: "s".into(),
            routing_key: "k".into(),
            nowait: true,
            arguments: table(),
        })),
        C::Exchange(exchange::AMQPMethod::BindOk(exchange::BindOk {})),
        C::Exchange(exchange::AMQPMethod::Unbind(exchange::Unbind {
            destination: "d".into(),
            source: "s".into(),
            routing_key: "k".into(),
            nowait: false,
            arguments: FieldTable::default(),
        })),
        C::Exchange(exchange::AMQPMethod::UnbindOk(exchange::UnbindOk {})),
        C::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: "orders".into(),
            passive: false,
            durable: true,
            exclusive: false,
            auto_delete: true,
            nowait: false,
            arguments: table(),
        })),
        C::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
            queue: "orders".into(),
            message_count: 7,
            consumer_count: 2,
        })),
        C::Queue(queue::AMQPMethod::Bind(queue::Bind {
            queue: "q".into(),
            exchange: "x".into(),
            routing_key: "rk".into(),
            nowait: false,
            arguments: table(),
        })),
        C::Queue(queue::AMQPMethod::BindOk(queue::BindOk {})),
        C::Queue(queue::AMQPMethod::Purge(queue::Purge {
            queue: "q".into(),
            nowait: false,
        })),
        C::Queue(queue::AMQPMethod::PurgeOk(queue::PurgeOk {
            message_count: 3,
        })),
        C::Queue(queue::AMQPMethod::Delete(queue::Delete {
            queue: "q".into(),
            if_unused: true,
            if_empty: true,
            nowait: false,
        })),
        C::Queue(queue::AMQPMethod::DeleteOk(queue::DeleteOk {
            message_count: 9,
        })),
        C::Queue(queue::AMQPMethod::Unbind(queue::Unbind {
            queue: "q".into(),
            exchange: "x".into(),
            routing_key: "rk".into(),
            arguments: FieldTable::default(),
        })),
        C::Queue(queue::AMQPMethod::UnbindOk(queue::UnbindOk {})),
        C::Basic(basic::AMQPMethod::Qos(basic::Qos {
            prefetch_count: 100,
            global: true,
        })),
        C::Basic(basic::AMQPMethod::QosOk(basic::QosOk {})),
        C::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: "q".into(),
            consumer_tag: "c".into(),
            no_local: false,
            no_ack: true,
            exclusive: true,
            nowait: false,
            arguments: table(),
        })),
        C::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
            consumer_tag: "c".into(),
        })),
        C::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
            consumer_tag: "c".into(),
            nowait: true,
        })),
        C::Basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
            consumer_tag: "c".into(),
        })),
        C::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "x".into(),
            routing_key: "rk".into(),
            mandatory: true,
            immediate: false,
        })),
        C::Basic(basic::AMQPMethod::Return(basic::Return {
            reply_code: 312,
            reply_text: "NO_ROUTE".into(),
            exchange: "x".into(),
            routing_key: "rk".into(),
        })),
        C::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
            consumer_tag: "c".into(),
            delivery_tag: 5,
            redelivered: true,
            exchange: "x".into(),
            routing_key: "rk".into(),
        })),
        C::Basic(basic::AMQPMethod::Get(basic::Get {
            queue: "q".into(),
            no_ack: true,
        })),
        C::Basic(basic::AMQPMethod::GetOk(basic::GetOk {
            delivery_tag: 1,
            redelivered: false,
            exchange: "".into(),
            routing_key: "q".into(),
            message_count: 4,
        })),
        C::Basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {})),
        C::Basic(basic::AMQPMethod::Ack(basic::Ack {
            delivery_tag: 77,
            multiple: true,
        })),
        C::Basic(basic::AMQPMethod::Reject(basic::Reject {
            delivery_tag: 78,
            requeue: true,
        })),
        C::Basic(basic::AMQPMethod::RecoverAsync(basic::RecoverAsync {
            requeue: true,
        })),
        C::Basic(basic::AMQPMethod::Recover(basic::Recover { requeue: true })),
        C::Basic(basic::AMQPMethod::RecoverOk(basic::RecoverOk {})),
        C::Basic(basic::AMQPMethod::Nack(basic::Nack {
            delivery_tag: 79,
            multiple: false,
            requeue: true,
        })),
        C::Confirm(confirm::AMQPMethod::Select(confirm::Select {
            nowait: false,
        })),
        C::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {})),
        C::Tx(tx::AMQPMethod::Select(tx::Select {})),
        C::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {})),
        C::Tx(tx::AMQPMethod::Commit(tx::Commit {})),
        C::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})),
        C::Tx(tx::AMQPMethod::Rollback(tx::Rollback {})),
        C::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {})),
    ]
}

fn frame_of(method: &AMQPClass) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode_method(&mut buf, 7, method).unwrap();
    buf.to_vec()
}

/// The hot methods decode into Warren's own structs; compare them field by field.
fn same(decoded: &Method, original: &AMQPClass) -> bool {
    use basic::AMQPMethod as B;
    match (decoded, original) {
        (Method::Other(m), o) => m == o,
        (Method::BasicPublish(p), AMQPClass::Basic(B::Publish(o))) => {
            p.exchange == o.exchange.as_str().as_bytes()
                && p.routing_key == o.routing_key.as_str().as_bytes()
                && p.mandatory == o.mandatory
                && p.immediate == o.immediate
        }
        (Method::BasicAck(a), AMQPClass::Basic(B::Ack(o))) => {
            a.delivery_tag == o.delivery_tag && a.multiple == o.multiple
        }
        (Method::BasicReject(r), AMQPClass::Basic(B::Reject(o))) => {
            r.delivery_tag == o.delivery_tag && r.requeue == o.requeue
        }
        (Method::BasicNack(n), AMQPClass::Basic(B::Nack(o))) => {
            n.delivery_tag == o.delivery_tag && n.multiple == o.multiple && n.requeue == o.requeue
        }
        _ => false,
    }
}

#[test]
fn the_method_list_covers_the_whole_spec() {
    let mut ids: Vec<(u16, u16)> = every_method()
        .iter()
        .map(|m| (m.get_amqp_class_id(), m.get_amqp_method_id()))
        .collect();
    ids.sort_unstable();
    let mut all = ALL_METHODS.to_vec();
    all.sort_unstable();
    assert_eq!(ids, all);
    for (c, m) in ALL_METHODS {
        assert!(method_name(c, m).is_some());
    }
}

#[test]
fn every_method_round_trips() {
    for method in every_method() {
        let wire = frame_of(&method);
        let mut buf = BytesMut::from(&wire[..]);
        let frame = decode_frame(&mut buf, 131_072).unwrap().unwrap();
        assert!(buf.is_empty());
        assert_eq!(frame.frame_type, FrameType::Method);
        assert_eq!(frame.channel, 7);
        let decoded = decode_method(&frame.payload).unwrap();
        assert!(same(&decoded, &method), "{method:?} decoded as {decoded:?}");
        assert_eq!(
            decoded.id(),
            MethodId::new(method.get_amqp_class_id(), method.get_amqp_method_id())
        );
    }
}

#[test]
fn every_truncated_frame_is_incomplete_and_every_truncated_payload_an_error() {
    for method in every_method() {
        let wire = frame_of(&method);
        for cut in 0..wire.len() {
            let mut buf = BytesMut::from(&wire[..cut]);
            assert_eq!(
                decode_frame(&mut buf, 131_072).unwrap(),
                None,
                "{method:?} cut {cut}"
            );
        }
        let payload = Bytes::copy_from_slice(&wire[7..wire.len() - 1]);
        for cut in 0..payload.len() {
            assert!(
                decode_method(&payload.slice(..cut)).is_err(),
                "{method:?} payload cut at {cut} decoded"
            );
        }
    }
}

#[test]
fn trailing_octets_after_arguments_are_refused() {
    for method in every_method() {
        let wire = frame_of(&method);
        let mut payload = wire[7..wire.len() - 1].to_vec();
        payload.push(0);
        assert!(decode_method(&Bytes::from(payload)).is_err(), "{method:?}");
    }
}

#[test]
fn unknown_classes_and_methods_are_told_apart() {
    use warren_codec::CodecError;
    assert!(matches!(
        decode_method(&Bytes::from_static(&[0, 99, 0, 10])),
        Err(CodecError::UnknownClass { class_id: 99, .. })
    ));
    assert!(matches!(
        decode_method(&Bytes::from_static(&[0, 60, 0, 99])),
        Err(CodecError::UnknownMethod {
            class_id: 60,
            method_id: 99
        })
    ));
    assert!(matches!(
        decode_method(&Bytes::from_static(&[0, 60])),
        Err(CodecError::ShortMethodFrame(2))
    ));
}

#[test]
fn hand_written_encoders_agree_with_amq_protocol() {
    let mut ours = BytesMut::new();
    encode_basic_deliver(&mut ours, 7, b"c", 5, true, b"x", b"rk").unwrap();
    encode_basic_get_ok(&mut ours, 7, 1, false, b"", b"q", 4).unwrap();
    encode_basic_return(&mut ours, 7, 312, b"NO_ROUTE", b"x", b"rk").unwrap();
    encode_basic_ack(&mut ours, 7, 77, true);
    encode_basic_nack(&mut ours, 7, 79, false);
    let mut theirs = BytesMut::new();
    for m in [
        AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
            consumer_tag: "c".into(),
            delivery_tag: 5,
            redelivered: true,
            exchange: "x".into(),
            routing_key: "rk".into(),
        })),
        AMQPClass::Basic(basic::AMQPMethod::GetOk(basic::GetOk {
            delivery_tag: 1,
            redelivered: false,
            exchange: "".into(),
            routing_key: "q".into(),
            message_count: 4,
        })),
        AMQPClass::Basic(basic::AMQPMethod::Return(basic::Return {
            reply_code: 312,
            reply_text: "NO_ROUTE".into(),
            exchange: "x".into(),
            routing_key: "rk".into(),
        })),
        AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
            delivery_tag: 77,
            multiple: true,
        })),
        AMQPClass::Basic(basic::AMQPMethod::Nack(basic::Nack {
            delivery_tag: 79,
            multiple: false,
            requeue: true,
        })),
    ] {
        encode_method(&mut theirs, 7, &m).unwrap();
    }
    assert_eq!(ours, theirs);
}

#[test]
fn exact_bytes_of_a_few_frames() {
    let mut buf = BytesMut::new();
    encode_heartbeat(&mut buf);
    assert_eq!(&buf[..], &[8, 0, 0, 0, 0, 0, 0, 0xCE]);

    let mut buf = BytesMut::new();
    encode_basic_ack(&mut buf, 1, 2, true);
    assert_eq!(
        &buf[..],
        &[
            1, 0, 1, 0, 0, 0, 13, 0, 60, 0, 80, 0, 0, 0, 0, 0, 0, 0, 2, 1, 0xCE
        ]
    );

    let tune = AMQPClass::Connection(connection::AMQPMethod::Tune(connection::Tune {
        channel_max: 2047,
        frame_max: 131_072,
        heartbeat: 60,
    }));
    assert_eq!(
        frame_of(&tune),
        [
            1, 0, 7, 0, 0, 0, 12, 0, 10, 0, 30, 0x07, 0xFF, 0, 2, 0, 0, 0, 60, 0xCE
        ]
    );

    let mut buf = BytesMut::new();
    warren_codec::encode::encode_content(&mut buf, 1, &[0x10, 0, 2], b"hello world", 16).unwrap();
    let expected: &[u8] = &[
        2, 0, 1, 0, 0, 0, 15, 0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 11, 0x10, 0, 2,
        0xCE, // header
        3, 0, 1, 0, 0, 0, 8, b'h', b'e', b'l', b'l', b'o', b' ', b'w', b'o', 0xCE, // body 1
        3, 0, 1, 0, 0, 0, 3, b'r', b'l', b'd', 0xCE, // body 2
    ];
    assert_eq!(&buf[..], expected);
}
