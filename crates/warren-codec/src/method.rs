//! Decoding method frames.
//!
//! The methods every message passes through (`basic.publish`, `basic.ack`, `basic.nack`,
//! `basic.reject`) are decoded by hand into structs whose strings are slices of the frame
//! payload: no allocation per message. Every other method goes through `amq-protocol`'s
//! generated parser; those are rare (declarations, consumer setup) and clarity wins.

use amq_protocol::protocol::{AMQPClass, parse_class};
use bytes::{Buf, Bytes};

use crate::CodecError;
use crate::dialect::{Dialect, inbound_0_8, read_id};

/// A decoded method.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// `basic.publish`, decoded without allocating.
    BasicPublish(BasicPublish),
    /// `basic.ack`.
    BasicAck(BasicAck),
    /// `basic.nack`.
    BasicNack(BasicNack),
    /// `basic.reject`.
    BasicReject(BasicReject),
    /// Any other method, as `amq-protocol` models it.
    Other(AMQPClass),
}

impl Method {
    /// The (class id, method id) pair of this method.
    #[must_use]
    pub fn id(&self) -> MethodId {
        match self {
            Self::BasicPublish(_) => MethodId::new(60, 40),
            Self::BasicAck(_) => MethodId::new(60, 80),
            Self::BasicNack(_) => MethodId::new(60, 120),
            Self::BasicReject(_) => MethodId::new(60, 90),
            Self::Other(class) => {
                MethodId::new(class.get_amqp_class_id(), class.get_amqp_method_id())
            }
        }
    }
}

/// A class id and method id, as carried by exceptions (`close.class-id`, `close.method-id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MethodId {
    /// Class id.
    pub class_id: u16,
    /// Method id.
    pub method_id: u16,
}

impl MethodId {
    /// A method id from its two numbers.
    #[must_use]
    pub const fn new(class_id: u16, method_id: u16) -> Self {
        Self {
            class_id,
            method_id,
        }
    }

    /// The spec's name for the method, e.g. `queue.declare`, if it has one.
    #[must_use]
    pub fn name(self) -> Option<&'static str> {
        method_name(self.class_id, self.method_id)
    }
}

/// `basic.publish` with its strings borrowed from the frame.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BasicPublish {
    /// Exchange name (raw octets; the broker checks UTF-8 when it looks the name up).
    pub exchange: Bytes,
    /// Routing key.
    pub routing_key: Bytes,
    /// Return the message if it cannot be routed.
    pub mandatory: bool,
    /// Return the message if no consumer can take it now (RabbitMQ refuses this).
    pub immediate: bool,
}

/// `basic.ack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BasicAck {
    /// Delivery tag (or publish sequence number when the server sends it).
    pub delivery_tag: u64,
    /// Acknowledge every tag up to and including this one.
    pub multiple: bool,
}

/// `basic.nack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BasicNack {
    /// Delivery tag.
    pub delivery_tag: u64,
    /// Reject every tag up to and including this one.
    pub multiple: bool,
    /// Put the messages back in their queue instead of dead-lettering or dropping them.
    pub requeue: bool,
}

/// `basic.reject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BasicReject {
    /// Delivery tag.
    pub delivery_tag: u64,
    /// Put the message back in its queue.
    pub requeue: bool,
}

/// Decode a method frame's payload (AMQP 0-9-1).
pub fn decode_method(payload: &Bytes) -> Result<Method, CodecError> {
    decode_method_in(payload, Dialect::Amqp091)
}

/// Decode a method frame's payload sent in `dialect`, into 0-9-1 terms.
pub fn decode_method_in(payload: &Bytes, dialect: Dialect) -> Result<Method, CodecError> {
    let Some(wire) = read_id(payload) else {
        return Err(CodecError::ShortMethodFrame(payload.len()));
    };
    if dialect == Dialect::Amqp08
        && let Some(translated) = inbound_0_8(payload, wire)?
    {
        return decode_0_9_1(&translated);
    }
    decode_0_9_1(payload)
}

fn decode_0_9_1(payload: &Bytes) -> Result<Method, CodecError> {
    let Some(id) = read_id(payload) else {
        return Err(CodecError::ShortMethodFrame(payload.len()));
    };
    let Some(name) = id.name() else {
        return Err(if class_name(id.class_id).is_some() {
            CodecError::UnknownMethod {
                class_id: id.class_id,
                method_id: id.method_id,
            }
        } else {
            CodecError::UnknownClass {
                class_id: id.class_id,
                method_id: id.method_id,
            }
        });
    };
    let malformed = || CodecError::MalformedArguments {
        class_id: id.class_id,
        method_id: id.method_id,
        name,
    };
    let mut args = payload.slice(4..);
    let method = match (id.class_id, id.method_id) {
        (60, 40) => Method::BasicPublish(decode_publish(&mut args).ok_or_else(malformed)?),
        (60, 80) => {
            let (delivery_tag, bits) = tag_and_bits(&mut args).ok_or_else(malformed)?;
            Method::BasicAck(BasicAck {
                delivery_tag,
                multiple: bits & 1 != 0,
            })
        }
        (60, 90) => {
            let (delivery_tag, bits) = tag_and_bits(&mut args).ok_or_else(malformed)?;
            Method::BasicReject(BasicReject {
                delivery_tag,
                requeue: bits & 1 != 0,
            })
        }
        (60, 120) => {
            let (delivery_tag, bits) = tag_and_bits(&mut args).ok_or_else(malformed)?;
            Method::BasicNack(BasicNack {
                delivery_tag,
                multiple: bits & 1 != 0,
                requeue: bits & 2 != 0,
            })
        }
        _ => {
            let (rest, class) = parse_class(&payload[..]).map_err(|_| malformed())?;
            if !rest.is_empty() {
                return Err(malformed());
            }
            args.clear();
            Method::Other(class)
        }
    };
    if args.has_remaining() {
        return Err(malformed());
    }
    Ok(method)
}

fn decode_publish(args: &mut Bytes) -> Option<BasicPublish> {
    if args.remaining() < 2 {
        return None;
    }
    args.advance(2); // reserved-1 (ticket)
    let exchange = short_str(args)?;
    let routing_key = short_str(args)?;
    let bits = u8_of(args)?;
    Some(BasicPublish {
        exchange,
        routing_key,
        mandatory: bits & 1 != 0,
        immediate: bits & 2 != 0,
    })
}

fn tag_and_bits(args: &mut Bytes) -> Option<(u64, u8)> {
    if args.remaining() < 9 {
        return None;
    }
    let tag = args.get_u64();
    Some((tag, args.get_u8()))
}

fn u8_of(args: &mut Bytes) -> Option<u8> {
    args.has_remaining().then(|| args.get_u8())
}

/// Take a short string (length octet, then that many octets) off the front of `args`.
pub(crate) fn short_str(args: &mut Bytes) -> Option<Bytes> {
    let len = usize::from(u8_of(args)?);
    (args.remaining() >= len).then(|| args.split_to(len))
}

/// The spec name of a class, e.g. `queue`.
#[must_use]
pub fn class_name(class_id: u16) -> Option<&'static str> {
    Some(match class_id {
        10 => "connection",
        20 => "channel",
        30 => "access",
        40 => "exchange",
        50 => "queue",
        60 => "basic",
        85 => "confirm",
        90 => "tx",
        _ => return None,
    })
}

/// The spec name of a method, e.g. `queue.declare`.
#[must_use]
pub fn method_name(class_id: u16, method_id: u16) -> Option<&'static str> {
    Some(match (class_id, method_id) {
        (10, 10) => "connection.start",
        (10, 11) => "connection.start-ok",
        (10, 20) => "connection.secure",
        (10, 21) => "connection.secure-ok",
        (10, 30) => "connection.tune",
        (10, 31) => "connection.tune-ok",
        (10, 40) => "connection.open",
        (10, 41) => "connection.open-ok",
        (10, 50) => "connection.close",
        (10, 51) => "connection.close-ok",
        (10, 60) => "connection.blocked",
        (10, 61) => "connection.unblocked",
        (10, 70) => "connection.update-secret",
        (10, 71) => "connection.update-secret-ok",
        (20, 10) => "channel.open",
        (20, 11) => "channel.open-ok",
        (20, 20) => "channel.flow",
        (20, 21) => "channel.flow-ok",
        (20, 40) => "channel.close",
        (20, 41) => "channel.close-ok",
        (30, 10) => "access.request",
        (30, 11) => "access.request-ok",
        (40, 10) => "exchange.declare",
        (40, 11) => "exchange.declare-ok",
        (40, 20) => "exchange.delete",
        (40, 21) => "exchange.delete-ok",
        (40, 30) => "exchange.bind",
        (40, 31) => "exchange.bind-ok",
        (40, 40) => "exchange.unbind",
        (40, 51) => "exchange.unbind-ok",
        (50, 10) => "queue.declare",
        (50, 11) => "queue.declare-ok",
        (50, 20) => "queue.bind",
        (50, 21) => "queue.bind-ok",
        (50, 30) => "queue.purge",
        (50, 31) => "queue.purge-ok",
        (50, 40) => "queue.delete",
        (50, 41) => "queue.delete-ok",
        (50, 50) => "queue.unbind",
        (50, 51) => "queue.unbind-ok",
        (60, 10) => "basic.qos",
        (60, 11) => "basic.qos-ok",
        (60, 20) => "basic.consume",
        (60, 21) => "basic.consume-ok",
        (60, 30) => "basic.cancel",
        (60, 31) => "basic.cancel-ok",
        (60, 40) => "basic.publish",
        (60, 50) => "basic.return",
        (60, 60) => "basic.deliver",
        (60, 70) => "basic.get",
        (60, 71) => "basic.get-ok",
        (60, 72) => "basic.get-empty",
        (60, 80) => "basic.ack",
        (60, 90) => "basic.reject",
        (60, 100) => "basic.recover-async",
        (60, 110) => "basic.recover",
        (60, 111) => "basic.recover-ok",
        (60, 120) => "basic.nack",
        (85, 10) => "confirm.select",
        (85, 11) => "confirm.select-ok",
        (90, 10) => "tx.select",
        (90, 11) => "tx.select-ok",
        (90, 20) => "tx.commit",
        (90, 21) => "tx.commit-ok",
        (90, 30) => "tx.rollback",
        (90, 31) => "tx.rollback-ok",
        _ => return None,
    })
}

/// Every method of AMQP 0-9-1 as (class id, method id).
pub const ALL_METHODS: [(u16, u16); 66] = [
    (10, 10),
    (10, 11),
    (10, 20),
    (10, 21),
    (10, 30),
    (10, 31),
    (10, 40),
    (10, 41),
    (10, 50),
    (10, 51),
    (10, 60),
    (10, 61),
    (10, 70),
    (10, 71),
    (20, 10),
    (20, 11),
    (20, 20),
    (20, 21),
    (20, 40),
    (20, 41),
    (30, 10),
    (30, 11),
    (40, 10),
    (40, 11),
    (40, 20),
    (40, 21),
    (40, 30),
    (40, 31),
    (40, 40),
    (40, 51),
    (50, 10),
    (50, 11),
    (50, 20),
    (50, 21),
    (50, 30),
    (50, 31),
    (50, 40),
    (50, 41),
    (50, 50),
    (50, 51),
    (60, 10),
    (60, 11),
    (60, 20),
    (60, 21),
    (60, 30),
    (60, 31),
    (60, 40),
    (60, 50),
    (60, 60),
    (60, 70),
    (60, 71),
    (60, 72),
    (60, 80),
    (60, 90),
    (60, 100),
    (60, 110),
    (60, 111),
    (60, 120),
    (85, 10),
    (85, 11),
    (90, 10),
    (90, 11),
    (90, 20),
    (90, 21),
    (90, 30),
    (90, 31),
];
