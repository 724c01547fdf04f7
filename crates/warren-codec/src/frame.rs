//! Splitting frames off a read buffer.
//!
//! The size check happens as soon as the 7-byte header is in, before any payload is read,
//! so a peer cannot make us buffer more than `frame_max` octets for one frame.

use bytes::{Buf, Bytes, BytesMut};

use crate::{CodecError, FRAME_END, FRAME_HEADER_SIZE, FRAME_OVERHEAD};

/// The four frame types of AMQP 0-9-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameType {
    /// 1: a method.
    Method,
    /// 2: a content header.
    Header,
    /// 3: a piece of content body.
    Body,
    /// 8: a heartbeat.
    Heartbeat,
}

impl FrameType {
    /// The type octet on the wire.
    #[must_use]
    pub fn octet(self) -> u8 {
        match self {
            Self::Method => 1,
            Self::Header => 2,
            Self::Body => 3,
            Self::Heartbeat => 8,
        }
    }

    fn from_octet(octet: u8) -> Option<Self> {
        match octet {
            1 => Some(Self::Method),
            2 => Some(Self::Header),
            3 => Some(Self::Body),
            8 => Some(Self::Heartbeat),
            _ => None,
        }
    }

    /// A short name for error texts.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Method => "method",
            Self::Header => "content header",
            Self::Body => "content body",
            Self::Heartbeat => "heartbeat",
        }
    }
}

/// One frame, its payload a zero-copy slice of the read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the payload holds.
    pub frame_type: FrameType,
    /// The channel the frame belongs to (0 for the connection).
    pub channel: u16,
    /// The payload, without header and end octet.
    pub payload: Bytes,
}

/// The largest payload a frame may carry under `frame_max` (0 means no limit).
///
/// RabbitMQ measures `frame_max` over the whole frame, header and end octet included,
/// and so do we.
#[must_use]
pub fn max_payload(frame_max: u32) -> u32 {
    if frame_max == 0 {
        u32::MAX
    } else {
        frame_max.saturating_sub(FRAME_OVERHEAD as u32)
    }
}

/// Split one complete frame off the front of `buf`.
///
/// Returns `Ok(None)` while the frame is incomplete (the buffer is left untouched, and
/// room for the rest of the frame and the next frame's header is reserved, so that a
/// reader can learn the next frame's size before its payload arrives). Errors leave the
/// connection unusable: the caller closes it with the error's reply code.
pub fn decode_frame(buf: &mut BytesMut, frame_max: u32) -> Result<Option<Frame>, CodecError> {
    let Some(header) = buf.get(..FRAME_HEADER_SIZE) else {
        return Ok(None);
    };
    let type_octet = header[0];
    let channel = u16::from_be_bytes([header[1], header[2]]);
    let size = u32::from_be_bytes([header[3], header[4], header[5], header[6]]);
    if size > max_payload(frame_max) {
        return Err(CodecError::FrameTooLarge {
            size,
            frame_max,
            channel,
        });
    }
    let size = size as usize;
    let total = FRAME_OVERHEAD + size;
    if buf.len() < total {
        buf.reserve(total - buf.len() + FRAME_HEADER_SIZE);
        return Ok(None);
    }
    let end = buf[FRAME_HEADER_SIZE + size];
    if end != FRAME_END {
        return Err(CodecError::BadFrameEnd {
            octet: end,
            channel,
        });
    }
    let Some(frame_type) = FrameType::from_octet(type_octet) else {
        return Err(CodecError::UnknownFrameType {
            octet: type_octet,
            channel,
        });
    };
    let mut frame = buf.split_to(total);
    frame.advance(FRAME_HEADER_SIZE);
    frame.truncate(size);
    Ok(Some(Frame {
        frame_type,
        channel,
        payload: frame.freeze(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(ty: u8, channel: u16, payload: &[u8], end: u8) -> Vec<u8> {
        let mut v = vec![ty];
        v.extend_from_slice(&channel.to_be_bytes());
        v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        v.extend_from_slice(payload);
        v.push(end);
        v
    }

    #[test]
    fn splits_one_frame_and_leaves_the_rest() {
        let mut bytes = raw(1, 3, b"abc", FRAME_END);
        bytes.extend_from_slice(&raw(8, 0, b"", FRAME_END)[..4]);
        let mut buf = BytesMut::from(&bytes[..]);
        let frame = decode_frame(&mut buf, 131_072).unwrap().unwrap();
        assert_eq!(frame.frame_type, FrameType::Method);
        assert_eq!(frame.channel, 3);
        assert_eq!(&frame.payload[..], b"abc");
        assert_eq!(buf.len(), 4);
        assert_eq!(decode_frame(&mut buf, 131_072).unwrap(), None);
    }

    #[test]
    fn every_truncated_prefix_is_incomplete() {
        let bytes = raw(3, 1, &[7u8; 40], FRAME_END);
        for cut in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert_eq!(decode_frame(&mut buf, 131_072).unwrap(), None, "cut {cut}");
            assert_eq!(buf.len(), cut);
        }
    }

    #[test]
    fn oversized_frame_is_refused_from_its_header_alone() {
        let mut buf = BytesMut::from(&[3u8, 0, 1, 0, 0x10, 0, 0][..]);
        assert_eq!(
            decode_frame(&mut buf, 4096),
            Err(CodecError::FrameTooLarge {
                size: 0x0010_0000,
                frame_max: 4096,
                channel: 1
            })
        );
    }

    #[test]
    fn frame_max_counts_header_and_end_octet() {
        let ok = raw(3, 1, &[0u8; 4088], FRAME_END);
        assert!(
            decode_frame(&mut BytesMut::from(&ok[..]), 4096)
                .unwrap()
                .is_some()
        );
        let big = raw(3, 1, &[0u8; 4089], FRAME_END);
        assert!(decode_frame(&mut BytesMut::from(&big[..]), 4096).is_err());
    }

    #[test]
    fn bad_end_octet_and_unknown_type_are_errors() {
        let mut buf = BytesMut::from(&raw(1, 0, b"x", 0xCD)[..]);
        assert_eq!(
            decode_frame(&mut buf, 0),
            Err(CodecError::BadFrameEnd {
                octet: 0xCD,
                channel: 0
            })
        );
        let mut buf = BytesMut::from(&raw(9, 2, b"x", FRAME_END)[..]);
        assert_eq!(
            decode_frame(&mut buf, 0),
            Err(CodecError::UnknownFrameType {
                octet: 9,
                channel: 2
            })
        );
    }
}
