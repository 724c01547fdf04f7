//! `x-delivery-count`: how often a message was returned, shown to consumers of queues
//! with a delivery limit.

use bytes::Bytes;
use warren_codec::properties::{decode_properties, encode_properties};
use warren_codec::types::AMQPValue;
use warren_store::{Message, MessageRef};

/// A copy of `message` whose headers carry `x-delivery-count`.
pub(crate) fn with_delivery_count(message: &MessageRef, count: u32) -> MessageRef {
    let Ok(props) = decode_properties(&message.properties) else {
        return message.clone();
    };
    let mut headers = props.headers().clone().unwrap_or_default();
    headers.insert(
        "x-delivery-count".into(),
        AMQPValue::LongLongInt(count.into()),
    );
    let Ok(raw) = encode_properties(&props.with_headers(headers)) else {
        return message.clone();
    };
    MessageRef::new(Message {
        properties: Bytes::from(raw),
        ..Message::clone(message)
    })
}
