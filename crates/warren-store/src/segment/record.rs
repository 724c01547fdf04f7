//! Record layouts. Every record carries a CRC32C, so a torn or corrupted record is
//! recognised and never mistaken for data.
//!
//! Message record (in `NNNNNNNNNN.msg` files):
//! `len:u32 | crc:u32 | id:u64 | priority:u8 | flags:u8 | expires_unix_ms:u64 |
//!  exchange:u8+octets | routing_key:u8+octets | properties:u32+octets | body:u32+octets`,
//! where `len` counts the octets after itself and `crc` covers those after itself.
//!
//! Ack-file record (in `NNNNNNNNNN.ack` files): `kind:u8 | id:u64 | crc:u32`, kind 1 for
//! "removed" (acked, expired, dead-lettered) and 2 for "delivered".

use bytes::{Buf, BufMut, Bytes};

use crate::Message;

/// Octets before the CRC-covered part of a message record.
const HEADER: usize = 8;
/// The fixed part of the CRC-covered message record.
const FIXED: usize = 8 + 1 + 1 + 8;
/// The size of an ack-file record.
pub(crate) const ACK_RECORD: usize = 13;

/// An ack-file record kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckKind {
    Removed = 1,
    Delivered = 2,
}

/// A message as read back from a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// The queue's id for it.
    pub id: u64,
    /// Its priority lane.
    pub priority: u8,
    /// When it expires, in Unix milliseconds.
    pub expires_unix_ms: Option<u64>,
    /// The message.
    pub message: Message,
}

/// Append a message record to `out`.
pub(crate) fn encode_message(
    out: &mut Vec<u8>,
    id: u64,
    priority: u8,
    expires_unix_ms: Option<u64>,
    m: &Message,
) {
    let exchange = &m.exchange[..m.exchange.len().min(255)];
    let routing_key = &m.routing_key[..m.routing_key.len().min(255)];
    let covered = FIXED
        + 1
        + exchange.len()
        + 1
        + routing_key.len()
        + 4
        + m.properties.len()
        + 4
        + m.body.len();
    out.reserve(HEADER + covered);
    let start = out.len();
    out.put_u32(u32::try_from(covered + 4).unwrap_or(u32::MAX));
    out.put_u32(0); // CRC, filled in below
    out.put_u64(id);
    out.put_u8(priority);
    out.put_u8(u8::from(m.persistent));
    out.put_u64(expires_unix_ms.unwrap_or(0));
    out.put_u8(exchange.len() as u8);
    out.put_slice(exchange);
    out.put_u8(routing_key.len() as u8);
    out.put_slice(routing_key);
    out.put_u32(u32::try_from(m.properties.len()).unwrap_or(u32::MAX));
    out.put_slice(&m.properties);
    out.put_u32(u32::try_from(m.body.len()).unwrap_or(u32::MAX));
    for part in m.body.parts() {
        out.put_slice(part);
    }
    let crc = crc32c::crc32c(&out[start + HEADER..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
}

/// Why reading stopped before the end of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The last record is incomplete: a write torn by a crash.
    Torn,
    /// A record's checksum or layout is wrong.
    Corrupt,
}

/// What recovery needs to know of a record without copying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordInfo {
    pub id: u64,
    pub persistent: bool,
    pub body_len: u64,
}

/// Check the record at the start of `buf`: its total size and CRC-covered part, or why
/// it is unusable; `Ok(None)` at the end.
fn frame(buf: &[u8]) -> Result<Option<(&[u8], usize)>, Stop> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf.len() < HEADER {
        return Err(Stop::Torn);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len < FIXED + 4 {
        // Zeroed space (a hole left by a lost write) or garbage.
        return Err(Stop::Corrupt);
    }
    let total = 4 + len;
    if buf.len() < total {
        return Err(Stop::Torn);
    }
    let crc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let covered = &buf[HEADER..total];
    if crc32c::crc32c(covered) != crc {
        return Err(Stop::Corrupt);
    }
    Ok(Some((covered, total)))
}

/// The size a record at the start of `buf` claims, from its first four octets.
pub(crate) fn claimed_size(buf: &[u8]) -> Option<usize> {
    let len: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    Some(4 + u32::from_be_bytes(len) as usize)
}

/// Decode one message record at the start of `buf`; `Err` when it is torn or corrupt,
/// `Ok(None)` at the end. Returns the record and its total size. The message's fields
/// share `buf`'s memory.
pub(crate) fn decode_message(buf: &Bytes) -> Result<Option<(StoredMessage, usize)>, Stop> {
    let Some((covered, total)) = frame(buf)? else {
        return Ok(None);
    };
    let start = HEADER;
    parse_covered(&buf.slice(start..start + covered.len()))
        .map(|m| Some((m, total)))
        .ok_or(Stop::Corrupt)
}

/// Check one record and read its id, persistence and body size, copying nothing.
pub(crate) fn scan_message(buf: &[u8]) -> Result<Option<(RecordInfo, usize)>, Stop> {
    let Some((mut b, total)) = frame(buf)? else {
        return Ok(None);
    };
    let id = b.get_u64();
    b.advance(1);
    let persistent = b.get_u8() & 1 != 0;
    b.advance(8);
    for _ in 0..2 {
        let n = usize::from(*b.first().ok_or(Stop::Corrupt)?);
        b = b.get(1 + n..).ok_or(Stop::Corrupt)?;
    }
    if b.len() < 4 {
        return Err(Stop::Corrupt);
    }
    let props = b.get_u32() as usize;
    b = b.get(props..).ok_or(Stop::Corrupt)?;
    if b.len() < 4 {
        return Err(Stop::Corrupt);
    }
    let body_len = u64::from(b.get_u32());
    if b.len() as u64 != body_len {
        return Err(Stop::Corrupt);
    }
    Ok(Some((
        RecordInfo {
            id,
            persistent,
            body_len,
        },
        total,
    )))
}

fn parse_covered(covered: &Bytes) -> Option<StoredMessage> {
    let mut b = covered.clone();
    let short = |b: &mut Bytes| -> Option<Bytes> {
        let n = usize::from(*b.first()?);
        b.advance(1);
        if b.len() < n {
            return None;
        }
        Some(b.split_to(n))
    };
    let long = |b: &mut Bytes| -> Option<Bytes> {
        if b.len() < 4 {
            return None;
        }
        let n = b.get_u32() as usize;
        if b.len() < n {
            return None;
        }
        Some(b.split_to(n))
    };
    if b.len() < FIXED {
        return None;
    }
    let id = b.get_u64();
    let priority = b.get_u8();
    let flags = b.get_u8();
    let expires = b.get_u64();
    let exchange = short(&mut b)?;
    let routing_key = short(&mut b)?;
    let properties = long(&mut b)?;
    let body = long(&mut b)?;
    if !b.is_empty() {
        return None;
    }
    Some(StoredMessage {
        id,
        priority,
        expires_unix_ms: (expires != 0).then_some(expires),
        message: Message {
            exchange,
            routing_key,
            properties,
            body: body.into(),
            persistent: flags & 1 != 0,
            priority,
            expiration: None,
        },
    })
}

/// Append an ack-file record.
pub(crate) fn encode_ack(out: &mut Vec<u8>, kind: AckKind, id: u64) {
    let start = out.len();
    out.put_u8(kind as u8);
    out.put_u64(id);
    let crc = crc32c::crc32c(&out[start..]);
    out.put_u32(crc);
}

/// Decode the ack records at the start of `buf`; stops at the first bad one.
pub(crate) fn decode_acks(buf: &[u8]) -> (Vec<(AckKind, u64)>, Option<Stop>) {
    let mut out = Vec::with_capacity(buf.len() / ACK_RECORD);
    for chunk in buf.chunks(ACK_RECORD) {
        if chunk.len() < ACK_RECORD {
            return (out, Some(Stop::Torn));
        }
        let crc = u32::from_be_bytes([chunk[9], chunk[10], chunk[11], chunk[12]]);
        if crc32c::crc32c(&chunk[..9]) != crc {
            return (out, Some(Stop::Corrupt));
        }
        let kind = match chunk[0] {
            1 => AckKind::Removed,
            2 => AckKind::Delivered,
            _ => return (out, Some(Stop::Corrupt)),
        };
        let id = u64::from_be_bytes(chunk[1..9].try_into().unwrap_or_default());
        out.push((kind, id));
    }
    (out, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &[u8]) -> Message {
        Message {
            exchange: Bytes::from_static(b"x"),
            routing_key: Bytes::from_static(b"rk"),
            properties: Bytes::from_static(&[0x10, 0, 2]),
            body: Bytes::copy_from_slice(body).into(),
            persistent: true,
            priority: 3,
            expiration: None,
        }
    }

    #[test]
    fn messages_round_trip_and_damage_is_detected() {
        let mut buf = Vec::new();
        encode_message(&mut buf, 7, 3, Some(123), &message(b"hello"));
        let buf = Bytes::from(buf);
        let (m, size) = decode_message(&buf).unwrap().unwrap();
        assert_eq!(
            scan_message(&buf).unwrap().unwrap(),
            (
                RecordInfo {
                    id: 7,
                    persistent: true,
                    body_len: 5
                },
                size
            )
        );
        assert_eq!(size, buf.len());
        assert_eq!((m.id, m.priority, m.expires_unix_ms), (7, 3, Some(123)));
        assert_eq!(&m.message.body.to_bytes()[..], b"hello");
        for cut in 1..buf.len() {
            assert_eq!(
                decode_message(&buf.slice(..cut)),
                Err(Stop::Torn),
                "cut {cut}"
            );
            assert_eq!(scan_message(&buf[..cut]), Err(Stop::Torn), "cut {cut}");
        }
        for i in 0..buf.len() {
            let mut bad = buf.to_vec();
            bad[i] ^= 0x55;
            assert!(
                decode_message(&Bytes::from(bad.clone())).is_err() || i < 4,
                "flip {i}"
            );
            assert!(scan_message(&bad).is_err() || i < 4, "flip {i}");
        }
        assert_eq!(
            decode_message(&Bytes::from_static(&[0u8; 64])),
            Err(Stop::Corrupt)
        );
    }

    #[test]
    fn acks_round_trip_and_stop_at_damage() {
        let mut buf = Vec::new();
        encode_ack(&mut buf, AckKind::Removed, 1);
        encode_ack(&mut buf, AckKind::Delivered, 2);
        assert_eq!(
            decode_acks(&buf),
            (vec![(AckKind::Removed, 1), (AckKind::Delivered, 2)], None)
        );
        assert_eq!(decode_acks(&buf[..20]).1, Some(Stop::Torn));
        buf[14] ^= 1;
        assert_eq!(
            decode_acks(&buf),
            (vec![(AckKind::Removed, 1)], Some(Stop::Corrupt))
        );
    }
}
