//! Encoding frames into a connection's write buffer.
//!
//! Everything appends to a caller-owned `BytesMut`, so a connection batches many frames
//! into one write. The hot frames (`basic.deliver`, content header and body, confirms) are
//! written field by field; other methods are serialised by `amq-protocol`.

use amq_protocol::frame::WriteContext;
use amq_protocol::protocol::{AMQPClass, gen_class};
use bytes::{BufMut, BytesMut};

use crate::dialect::{Dialect, outbound_0_8};
use crate::frame::{FrameType, max_payload};
use crate::{BASIC_CLASS_ID, CodecError, FRAME_END, FRAME_HEADER_SIZE};

/// Append a method frame for any method, serialised by `amq-protocol` (AMQP 0-9-1).
pub fn encode_method(
    buf: &mut BytesMut,
    channel: u16,
    method: &AMQPClass,
) -> Result<(), CodecError> {
    encode_method_in(buf, channel, method, Dialect::Amqp091)
}

/// Append a method frame for any method, as a peer speaking `dialect` reads it.
pub fn encode_method_in(
    buf: &mut BytesMut,
    channel: u16,
    method: &AMQPClass,
    dialect: Dialect,
) -> Result<(), CodecError> {
    let mut payload = gen_class(method)(WriteContext::from(Vec::with_capacity(64)))
        .map_err(|_| CodecError::Encode("method arguments"))?
        .into_inner()
        .0;
    if dialect == Dialect::Amqp08
        && let Some(translated) = outbound_0_8(&payload)
    {
        payload = translated;
    }
    put_frame_header(buf, FrameType::Method, channel, payload.len())?;
    buf.extend_from_slice(&payload);
    buf.put_u8(FRAME_END);
    Ok(())
}

/// Append a heartbeat frame.
pub fn encode_heartbeat(buf: &mut BytesMut) {
    buf.put_slice(&[FrameType::Heartbeat.octet(), 0, 0, 0, 0, 0, 0, FRAME_END]);
}

/// Append `basic.deliver`.
pub fn encode_basic_deliver(
    buf: &mut BytesMut,
    channel: u16,
    consumer_tag: &[u8],
    delivery_tag: u64,
    redelivered: bool,
    exchange: &[u8],
    routing_key: &[u8],
) -> Result<(), CodecError> {
    short_strs_fit(&[consumer_tag, exchange, routing_key])?;
    let len = 4 + 1 + consumer_tag.len() + 8 + 1 + 1 + exchange.len() + 1 + routing_key.len();
    put_frame_header(buf, FrameType::Method, channel, len)?;
    buf.put_u16(60);
    buf.put_u16(60);
    put_short_str(buf, consumer_tag);
    buf.put_u64(delivery_tag);
    buf.put_u8(u8::from(redelivered));
    put_short_str(buf, exchange);
    put_short_str(buf, routing_key);
    buf.put_u8(FRAME_END);
    Ok(())
}

/// Append `basic.get-ok`.
#[allow(
    clippy::too_many_arguments,
    reason = "one argument per field of the method"
)]
pub fn encode_basic_get_ok(
    buf: &mut BytesMut,
    channel: u16,
    delivery_tag: u64,
    redelivered: bool,
    exchange: &[u8],
    routing_key: &[u8],
    message_count: u32,
) -> Result<(), CodecError> {
    short_strs_fit(&[exchange, routing_key])?;
    let len = 4 + 8 + 1 + 1 + exchange.len() + 1 + routing_key.len() + 4;
    put_frame_header(buf, FrameType::Method, channel, len)?;
    buf.put_u16(60);
    buf.put_u16(71);
    buf.put_u64(delivery_tag);
    buf.put_u8(u8::from(redelivered));
    put_short_str(buf, exchange);
    put_short_str(buf, routing_key);
    buf.put_u32(message_count);
    buf.put_u8(FRAME_END);
    Ok(())
}

/// Append `basic.return`.
pub fn encode_basic_return(
    buf: &mut BytesMut,
    channel: u16,
    reply_code: u16,
    reply_text: &[u8],
    exchange: &[u8],
    routing_key: &[u8],
) -> Result<(), CodecError> {
    short_strs_fit(&[reply_text, exchange, routing_key])?;
    let len = 4 + 2 + 1 + reply_text.len() + 1 + exchange.len() + 1 + routing_key.len();
    put_frame_header(buf, FrameType::Method, channel, len)?;
    buf.put_u16(60);
    buf.put_u16(50);
    buf.put_u16(reply_code);
    put_short_str(buf, reply_text);
    put_short_str(buf, exchange);
    put_short_str(buf, routing_key);
    buf.put_u8(FRAME_END);
    Ok(())
}

/// Append a server-sent `basic.ack` (a publisher confirm).
pub fn encode_basic_ack(buf: &mut BytesMut, channel: u16, delivery_tag: u64, multiple: bool) {
    buf.put_slice(&[FrameType::Method.octet()]);
    buf.put_u16(channel);
    buf.put_u32(13);
    buf.put_u16(60);
    buf.put_u16(80);
    buf.put_u64(delivery_tag);
    buf.put_u8(u8::from(multiple));
    buf.put_u8(FRAME_END);
}

/// Append a server-sent `basic.nack` (a negative publisher confirm). Its `requeue` bit
/// means nothing to a publisher; it is set, as RabbitMQ sets it.
pub fn encode_basic_nack(buf: &mut BytesMut, channel: u16, delivery_tag: u64, multiple: bool) {
    buf.put_slice(&[FrameType::Method.octet()]);
    buf.put_u16(channel);
    buf.put_u32(13);
    buf.put_u16(60);
    buf.put_u16(120);
    buf.put_u64(delivery_tag);
    buf.put_u8(u8::from(multiple) | 0b10);
    buf.put_u8(FRAME_END);
}

/// Append a content header frame and the body frames, split to fit `frame_max`.
///
/// `properties` is the raw property section (flags and list) exactly as a publisher sent
/// it, so properties pass through the broker untouched and undecoded.
pub fn encode_content(
    buf: &mut BytesMut,
    channel: u16,
    properties: &[u8],
    body: &[u8],
    frame_max: u32,
) -> Result<(), CodecError> {
    encode_content_header(buf, channel, properties, body.len() as u64)?;
    let chunk = max_payload(frame_max).max(1) as usize;
    buf.reserve(body.len() + body.len().div_ceil(chunk) * 8);
    for piece in body.chunks(chunk) {
        put_frame_header(buf, FrameType::Body, channel, piece.len())?;
        buf.put_slice(piece);
        buf.put_u8(FRAME_END);
    }
    Ok(())
}

/// Append a content header frame for a body of `body_size` octets.
pub fn encode_content_header(
    buf: &mut BytesMut,
    channel: u16,
    properties: &[u8],
    body_size: u64,
) -> Result<(), CodecError> {
    let empty_flags: &[u8] = &[0, 0];
    let properties = if properties.is_empty() {
        empty_flags
    } else {
        properties
    };
    put_frame_header(buf, FrameType::Header, channel, 12 + properties.len())?;
    buf.put_u16(BASIC_CLASS_ID);
    buf.put_u16(0);
    buf.put_u64(body_size);
    buf.put_slice(properties);
    buf.put_u8(FRAME_END);
    Ok(())
}

/// Append the 7-octet header of a body frame carrying `len` octets; the caller sends
/// the payload and then [`FRAME_END`].
pub fn encode_body_frame_header(
    buf: &mut BytesMut,
    channel: u16,
    len: usize,
) -> Result<(), CodecError> {
    put_frame_header(buf, FrameType::Body, channel, len)
}

fn put_frame_header(
    buf: &mut BytesMut,
    frame_type: FrameType,
    channel: u16,
    payload_len: usize,
) -> Result<(), CodecError> {
    let len = u32::try_from(payload_len).map_err(|_| CodecError::Encode("frame payload"))?;
    buf.reserve(FRAME_HEADER_SIZE + payload_len + 1);
    buf.put_u8(frame_type.octet());
    buf.put_u16(channel);
    buf.put_u32(len);
    Ok(())
}

/// Checked before anything is written, so a failed encode never leaves half a frame.
fn short_strs_fit(strs: &[&[u8]]) -> Result<(), CodecError> {
    if strs.iter().all(|s| s.len() <= usize::from(u8::MAX)) {
        Ok(())
    } else {
        Err(CodecError::Encode("short string over 255 octets"))
    }
}

fn put_short_str(buf: &mut BytesMut, s: &[u8]) {
    buf.put_u8(s.len() as u8);
    buf.put_slice(s);
}
