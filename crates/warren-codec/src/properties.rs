//! Content properties (the `basic` class property list).
//!
//! The broker forwards properties exactly as the publisher encoded them, so it never has to
//! decode and re-encode them on the delivery path. [`scan_properties`] walks the raw
//! section once, validating it and noting where the few fields the broker acts on live.

use amq_protocol::frame::WriteContext;
use amq_protocol::protocol::BasicProperties;
use amq_protocol::protocol::basic::{gen_properties, parse_properties};

use crate::CodecError;

/// A range of octets inside a raw property section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// The octets this span covers in `raw` (empty if `raw` is not the scanned section).
    #[must_use]
    pub fn of<'a>(&self, raw: &'a [u8]) -> &'a [u8] {
        raw.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }
}

/// Where the properties the broker acts on sit, found without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PropertiesSummary {
    /// `delivery-mode` (2 = persistent).
    pub delivery_mode: Option<u8>,
    /// `priority`.
    pub priority: Option<u8>,
    /// `headers`: the whole field table, length prefix included.
    pub headers: Option<Span>,
    /// `reply-to`.
    pub reply_to: Option<Span>,
    /// `expiration` (a string of milliseconds).
    pub expiration: Option<Span>,
    /// `user-id`, which RabbitMQ checks against the authenticated user.
    pub user_id: Option<Span>,
}

const SHORT_STR: u8 = 0;
const TABLE: u8 = 1;
const OCTET: u8 = 2;
const TIMESTAMP: u8 = 3;

/// The 14 properties in flag order (bit 15 first) and their wire types.
const LAYOUT: [u8; 14] = [
    SHORT_STR, // content-type
    SHORT_STR, // content-encoding
    TABLE,     // headers
    OCTET,     // delivery-mode
    OCTET,     // priority
    SHORT_STR, // correlation-id
    SHORT_STR, // reply-to
    SHORT_STR, // expiration
    SHORT_STR, // message-id
    TIMESTAMP, // timestamp
    SHORT_STR, // type
    SHORT_STR, // user-id
    SHORT_STR, // app-id
    SHORT_STR, // cluster-id (deprecated)
];

/// Validate a raw property section (flags, then the present fields) and summarise it.
///
/// Like RabbitMQ, the two low flag bits (one unused, one "more flags follow") are ignored:
/// `basic` has only 14 properties.
pub fn scan_properties(raw: &[u8]) -> Result<PropertiesSummary, CodecError> {
    let bad = |what| CodecError::MalformedContentHeader(what);
    let flags = match raw {
        [] => return Ok(PropertiesSummary::default()),
        [hi, lo, ..] => u16::from_be_bytes([*hi, *lo]),
        _ => return Err(bad("property flags truncated")),
    };
    let mut summary = PropertiesSummary::default();
    let mut at = 2usize;
    // Visit only the flags that are set: most messages carry none or a few.
    let mut set = flags & 0xFFFC;
    while set != 0 {
        let index = set.leading_zeros() as usize;
        set &= !(0x8000 >> index);
        let (start, end) = match LAYOUT[index] {
            SHORT_STR => {
                let len = usize::from(*raw.get(at).ok_or_else(|| bad("property truncated"))?);
                (at + 1, at + 1 + len)
            }
            TABLE => {
                let len = raw
                    .get(at..at + 4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
                    .ok_or_else(|| bad("headers length truncated"))?;
                (at, at + 4 + len)
            }
            OCTET => (at, at + 1),
            _ => (at, at + 8),
        };
        if end > raw.len() {
            return Err(bad("property truncated"));
        }
        let span = Span {
            start: start as u32,
            end: end as u32,
        };
        match index {
            2 => summary.headers = Some(span),
            3 => summary.delivery_mode = Some(raw[start]),
            4 => summary.priority = Some(raw[start]),
            6 => summary.reply_to = Some(span),
            7 => summary.expiration = Some(span),
            11 => summary.user_id = Some(span),
            _ => {}
        }
        at = end;
    }
    if at != raw.len() {
        return Err(bad("octets after the last property"));
    }
    Ok(summary)
}

/// Decode a raw property section fully (allocates; for the rare paths that need it).
pub fn decode_properties(raw: &[u8]) -> Result<BasicProperties, CodecError> {
    if raw.is_empty() {
        return Ok(BasicProperties::default());
    }
    match parse_properties(raw) {
        Ok(([], props)) => Ok(props),
        _ => Err(CodecError::MalformedContentHeader("properties")),
    }
}

/// Encode properties into a raw section (flags and fields).
pub fn encode_properties(props: &BasicProperties) -> Result<Vec<u8>, CodecError> {
    Ok(
        gen_properties(props)(WriteContext::from(Vec::with_capacity(32)))
            .map_err(|_| CodecError::Encode("properties"))?
            .into_inner()
            .0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::{AMQPValue, FieldTable, ShortString};

    #[test]
    fn scan_finds_the_fields_the_broker_needs() {
        let mut headers = FieldTable::default();
        headers.insert("k".into(), AMQPValue::LongString("v".into()));
        let props = BasicProperties::default()
            .with_content_type(ShortString::from("text/plain"))
            .with_headers(headers)
            .with_delivery_mode(2)
            .with_priority(7)
            .with_reply_to("amq.rabbitmq.reply-to".into())
            .with_expiration("1500".into())
            .with_timestamp(42)
            .with_user_id("guest".into());
        let raw = encode_properties(&props).unwrap();
        let s = scan_properties(&raw).unwrap();
        assert_eq!(s.delivery_mode, Some(2));
        assert_eq!(s.priority, Some(7));
        assert_eq!(s.expiration.unwrap().of(&raw), b"1500");
        assert_eq!(s.reply_to.unwrap().of(&raw), b"amq.rabbitmq.reply-to");
        assert_eq!(s.user_id.unwrap().of(&raw), b"guest");
        assert!(s.headers.is_some());
        assert_eq!(decode_properties(&raw).unwrap(), props);
    }

    #[test]
    fn truncated_sections_are_refused_never_panic() {
        let props = BasicProperties::default()
            .with_content_type("a".into())
            .with_message_id("id".into())
            .with_timestamp(1);
        let raw = encode_properties(&props).unwrap();
        for cut in 1..raw.len() {
            assert!(scan_properties(&raw[..cut]).is_err(), "cut {cut}");
        }
        assert!(scan_properties(&[]).is_ok());
        assert!(scan_properties(&[0, 0]).is_ok());
        assert!(scan_properties(&[0, 0, 1]).is_err());
    }
}
