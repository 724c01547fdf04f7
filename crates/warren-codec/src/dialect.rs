//! AMQP 0-8 beside 0-9-1: the older protocol RabbitMQ 3.x still serves, and which some
//! clients speak by default (the RabbitMQ .NET client that Mono ships, py-amqplib's 0.x
//! releases).
//!
//! The two share the frame format, the content header and all but a few method layouts,
//! so the broker works in 0-9-1 terms throughout and a 0-8 connection is translated here,
//! at the edge, method by method:
//! - `connection.close` and `close-ok` are methods 60 and 61 in 0-8 (50 and 51 in 0-9-1,
//!   where 60 and 61 are `connection.blocked` and `unblocked`);
//! - `channel.open-ok` carries no arguments;
//! - `basic.consume` has no `arguments` table;
//! - `exchange.bind`/`unbind`, `basic.nack`, `confirm.select` and
//!   `connection.update-secret` do not exist;
//! - the classes `file`, `stream`, `dtx`, `tunnel` and `test` exist but RabbitMQ
//!   implements none of their methods, nor the server-to-client `connection.redirect`
//!   and `channel.alert`: on an open channel each is answered with 503 "unimplemented
//!   method", as RabbitMQ 3.10 answers them (where no method but a few is expected, the
//!   broker calls them unexpected, as any other).
//!
//! What the broker must not send to a 0-8 peer (`connection.blocked`, `basic.nack`,
//! boolean values in `connection.start`'s capabilities) it does not send; this module
//! only renumbers and reshapes.

use bytes::{BufMut, Bytes, BytesMut};

use crate::CodecError;
use crate::method::MethodId;

/// The protocol a connection speaks, fixed by the header it opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// AMQP 0-9-1 (and 0-9, the same on the wire for what its clients send).
    #[default]
    Amqp091,
    /// AMQP 0-8.
    Amqp08,
}

impl Dialect {
    /// The `version-major` and `version-minor` of `connection.start`.
    #[must_use]
    pub const fn version(self) -> (u8, u8) {
        match self {
            Self::Amqp091 => (0, 9),
            Self::Amqp08 => (8, 0),
        }
    }

    /// A method id renumbered between the wire and the broker, which numbers every
    /// method as 0-9-1 does. 0-8 numbers `connection.close` and `close-ok` 60 and 61,
    /// and 50 is its `connection.redirect`; 0-9-1 numbers them 50 and 51, and 60 and 61
    /// are its `connection.blocked` and `unblocked`, which 0-8 lacks. So the renumbering
    /// is a swap, the same in both directions, and ids stay distinct: a `close` that
    /// names the method that failed names it as the peer numbers it.
    #[must_use]
    pub const fn renumber(self, id: MethodId) -> MethodId {
        match (self, id.class_id, id.method_id) {
            (Self::Amqp08, 10, 50) => MethodId::new(10, 60),
            (Self::Amqp08, 10, 51) => MethodId::new(10, 61),
            (Self::Amqp08, 10, 60) => MethodId::new(10, 50),
            (Self::Amqp08, 10, 61) => MethodId::new(10, 51),
            _ => id,
        }
    }
}

/// Methods 0-8 defines that RabbitMQ implements none of: the server-to-client
/// `connection.redirect` and `channel.alert`, and the `file`, `stream`, `dtx`, `tunnel`
/// and `test` classes.
fn unimplemented_in_0_8(id: MethodId) -> bool {
    match id.class_id {
        10 => id.method_id == 50,
        20 => id.method_id == 30,
        70 => matches!(
            id.method_id,
            10 | 11 | 20 | 21 | 30 | 31 | 40 | 41 | 50 | 60 | 70 | 80 | 90 | 100
        ),
        80 => matches!(id.method_id, 10 | 11 | 20 | 21 | 30 | 31 | 40 | 50 | 60),
        100 => matches!(id.method_id, 10 | 11 | 20 | 21),
        110 => id.method_id == 10,
        120 => matches!(id.method_id, 10 | 11 | 20 | 21 | 30 | 31 | 40 | 41),
        _ => false,
    }
}

/// Methods 0-9-1 has and 0-8 does not (beside `connection.blocked` and `unblocked`, whose
/// ids 0-8 gives to other methods).
fn absent_from_0_8(id: MethodId) -> bool {
    matches!(
        (id.class_id, id.method_id),
        (10, 70 | 71) | (40, 30 | 31 | 40 | 51) | (60, 120) | (85, _)
    )
}

/// A 0-8 method payload in 0-9-1 terms: `None` when it reads the same in both, or the
/// payload rewritten. `wire` is the class and method id the frame carried. Errors name
/// methods by their 0-9-1 ids, as everything inside the broker does.
pub(crate) fn inbound_0_8(payload: &Bytes, wire: MethodId) -> Result<Option<Bytes>, CodecError> {
    if unimplemented_in_0_8(wire) {
        let id = Dialect::Amqp08.renumber(wire);
        return Err(CodecError::Unimplemented {
            class_id: id.class_id,
            method_id: id.method_id,
        });
    }
    if absent_from_0_8(wire) {
        return Err(CodecError::UnknownMethod {
            class_id: wire.class_id,
            method_id: wire.method_id,
        });
    }
    let args = payload.get(4..).unwrap_or_default();
    Ok(match (wire.class_id, wire.method_id) {
        (10, 60) | (20, 40) => renumber_close(payload).map(Bytes::from),
        // `close-ok`, and 51, which 0-8 lacks: read as 0-9-1's `unblocked`, a method only
        // servers send, it is refused as any such method is.
        (10, 51 | 61) => Some(with_id(Dialect::Amqp08.renumber(wire), args, &[])),
        // An empty `reserved-1` long string.
        (20, 11) => Some(with_id(wire, args, &[0, 0, 0, 0])),
        // An empty `arguments` table.
        (60, 20) => Some(with_id(wire, args, &[0, 0, 0, 0])),
        _ => None,
    })
}

/// A 0-9-1 method payload (class and method ids, then arguments) as a 0-8 peer reads it;
/// `None` when it reads the same.
pub(crate) fn outbound_0_8(payload: &[u8]) -> Option<Vec<u8>> {
    let id = read_id(payload)?;
    // 0-8 would read `connection.blocked` and `unblocked` as `close` and `close-ok`.
    debug_assert!(
        !absent_from_0_8(id) && !matches!((id.class_id, id.method_id), (10, 60 | 61)),
        "{id:?} sent to an AMQP 0-8 peer"
    );
    match (id.class_id, id.method_id) {
        (10, 50) | (20, 40) => renumber_close(payload),
        (10, 51) => Some(id_octets(Dialect::Amqp08.renumber(id)).to_vec()),
        (20, 11) => Some(id_octets(id).to_vec()),
        _ => None,
    }
}

/// A `connection.close`, `close-ok` or `channel.close` payload renumbered between 0-8 and
/// 0-9-1 (the same either way): its own id, and the id of the method that failed, in its
/// last four octets (unless too short to hold one: the decoder then reports it). Public
/// for test clients that speak 0-8.
#[must_use]
pub fn renumber_close(payload: &[u8]) -> Option<Vec<u8>> {
    let mut out = payload.to_vec();
    let own = Dialect::Amqp08.renumber(read_id(&out)?);
    out[..4].copy_from_slice(&id_octets(own));
    if let Some(at) = out.len().checked_sub(4).filter(|&at| at >= 4) {
        let failed = Dialect::Amqp08.renumber(read_id(&out[at..])?);
        out[at..].copy_from_slice(&id_octets(failed));
    }
    Some(out)
}

/// The class and method id a method payload opens with.
pub(crate) fn read_id(payload: &[u8]) -> Option<MethodId> {
    let id: [u8; 4] = payload.get(..4)?.try_into().ok()?;
    Some(MethodId::new(
        u16::from_be_bytes([id[0], id[1]]),
        u16::from_be_bytes([id[2], id[3]]),
    ))
}

fn id_octets(id: MethodId) -> [u8; 4] {
    let [c0, c1] = id.class_id.to_be_bytes();
    let [m0, m1] = id.method_id.to_be_bytes();
    [c0, c1, m0, m1]
}

fn with_id(id: MethodId, args: &[u8], append: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(4 + args.len() + append.len());
    out.put_slice(&id_octets(id));
    out.put_slice(args);
    out.put_slice(append);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::{Method, decode_method_in};
    use amq_protocol::protocol::{AMQPClass, basic, connection};

    #[test]
    fn renumbering_is_its_own_inverse() {
        for class_id in [10, 20, 60] {
            for method_id in 0..200 {
                let id = MethodId::new(class_id, method_id);
                let d = Dialect::Amqp08;
                assert_eq!(d.renumber(d.renumber(id)), id);
                assert_eq!(Dialect::Amqp091.renumber(id), id);
            }
        }
    }

    #[test]
    fn a_0_8_consume_reads_as_one_with_no_arguments() {
        let mut payload = vec![0, 60, 0, 20, 0, 0, 1, b'q', 1, b't', 0b0110];
        let Method::Other(AMQPClass::Basic(basic::AMQPMethod::Consume(c))) =
            decode_method_in(&Bytes::from(payload.clone()), Dialect::Amqp08).unwrap()
        else {
            panic!("not a consume");
        };
        assert_eq!((c.queue.as_str(), c.consumer_tag.as_str()), ("q", "t"));
        assert!(c.no_ack && c.exclusive && !c.no_local && !c.nowait);
        assert!(c.arguments.inner().is_empty());
        // With 0-9-1's table it is malformed in 0-8.
        payload.extend([0, 0, 0, 0]);
        assert!(matches!(
            decode_method_in(&Bytes::from(payload), Dialect::Amqp08),
            Err(CodecError::MalformedArguments {
                class_id: 60,
                method_id: 20,
                ..
            })
        ));
    }

    #[test]
    fn what_0_8_lacks_or_rabbitmq_never_implemented_is_refused() {
        let refuse = |c: u16, m: u16| {
            let mut p = c.to_be_bytes().to_vec();
            p.extend(m.to_be_bytes());
            decode_method_in(&Bytes::from(p), Dialect::Amqp08).unwrap_err()
        };
        assert!(matches!(refuse(85, 10), CodecError::UnknownMethod { .. }));
        assert!(matches!(refuse(60, 120), CodecError::UnknownMethod { .. }));
        assert!(matches!(
            refuse(70, 10),
            CodecError::Unimplemented {
                class_id: 70,
                method_id: 10
            }
        ));
        // connection.redirect carries 0-9-1's number for the same slot.
        assert!(matches!(
            refuse(10, 50),
            CodecError::Unimplemented {
                class_id: 10,
                method_id: 60
            }
        ));
    }

    #[test]
    fn a_0_8_close_ok_reads_as_close_ok() {
        assert_eq!(
            decode_method_in(&Bytes::from_static(&[0, 10, 0, 61]), Dialect::Amqp08).unwrap(),
            Method::Other(AMQPClass::Connection(connection::AMQPMethod::CloseOk(
                connection::CloseOk {}
            )))
        );
    }

    #[test]
    fn open_ok_and_close_ok_go_out_bare() {
        assert_eq!(
            outbound_0_8(&[0, 20, 0, 11, 0, 0, 0, 0]),
            Some(vec![0, 20, 0, 11])
        );
        assert_eq!(outbound_0_8(&[0, 10, 0, 51]), Some(vec![0, 10, 0, 61]));
        assert_eq!(outbound_0_8(&[0, 60, 0, 21, 1, b't']), None);
    }
}
