//! Content assembly: `basic.publish`, then one content header, then body frames until
//! the header's body size is reached.
//!
//! A state enum rather than a bundle of `Option`s, so an out-of-order frame is a match arm
//! that cannot be forgotten.

use bytes::{Buf, Bytes, BytesMut};

use crate::CodecError;

/// A content header frame's payload, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentHeader {
    /// Class the content belongs to (always 60 for valid 0-9-1 traffic).
    pub class_id: u16,
    /// Total body size that the body frames will carry.
    pub body_size: u64,
    /// The raw property section (flags and fields).
    pub properties: Bytes,
}

/// Decode a content header payload (class, weight, body size, properties).
pub fn decode_content_header(mut payload: Bytes) -> Result<ContentHeader, CodecError> {
    if payload.len() < 14 {
        return Err(CodecError::MalformedContentHeader("shorter than 14 octets"));
    }
    let class_id = payload.get_u16();
    // RabbitMQ only recognises a frame as a content header when its weight is 0.
    if payload.get_u16() != 0 {
        return Err(CodecError::UnexpectedFrame {
            expected: "content header",
            got: "content header with a non-zero weight",
        });
    }
    let body_size = payload.get_u64();
    Ok(ContentHeader {
        class_id,
        body_size,
        properties: payload,
    })
}

/// A body's frames, in order: most bodies are one frame, held without allocating.
pub type BodyParts = smallvec::SmallVec<[Bytes; 1]>;

/// A complete message as it came off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content<M> {
    /// The content-bearing method (for Warren: `basic.publish`).
    pub method: M,
    /// Raw property section.
    pub properties: Bytes,
    /// The body, as the payloads of its frames: never joined, so never copied.
    pub body: BodyParts,
}

/// Where a channel is in receiving one message.
#[derive(Debug, Default)]
pub enum ContentAssembly<M> {
    /// No content expected: the next frame must be a method.
    #[default]
    Idle,
    /// A content method arrived; its header must come next.
    AwaitingHeader(M),
    /// Header seen; `remaining` body octets still to come.
    AwaitingBody {
        /// The content-bearing method.
        method: M,
        /// Raw property section from the header.
        properties: Bytes,
        /// Body frames collected so far.
        body: BodyCollector,
        /// Octets still expected.
        remaining: u64,
    },
}

/// Frames at least this large are kept as they came; smaller ones are copied together.
/// A part costs a `Bytes` (32 octets) and pins its read buffer, so a peer sending a
/// large body in one-octet frames must not get one part per octet.
const MIN_PART: usize = 16 * 1024;

/// The most a copied run of small frames reserves before its octets have arrived.
const MAX_RUN_RESERVATION: u64 = 1 << 20;

/// A body being collected: large frames as they are, runs of small ones joined.
#[derive(Debug, Default)]
pub struct BodyCollector {
    parts: BodyParts,
    /// Small frames copied together since the last large one.
    run: BytesMut,
}

impl BodyCollector {
    /// Add a body frame; `expected_total` counts the octets still due including it.
    fn push(&mut self, piece: Bytes, expected_total: u64) {
        let whole =
            self.parts.is_empty() && self.run.is_empty() && piece.len() as u64 == expected_total;
        if whole || piece.len() >= MIN_PART {
            self.end_run();
            self.parts.push(piece);
        } else {
            if self.run.is_empty() {
                self.run
                    .reserve(expected_total.min(MAX_RUN_RESERVATION) as usize);
            }
            self.run.extend_from_slice(&piece);
        }
    }

    fn end_run(&mut self) {
        if !self.run.is_empty() {
            self.parts.push(self.run.split().freeze());
        }
    }

    fn finish(mut self) -> BodyParts {
        self.end_run();
        self.parts
    }
}

impl<M> ContentAssembly<M> {
    /// True when the next frame must be a method.
    #[must_use]
    pub fn is_idle(&self) -> bool {
        matches!(self, Self::Idle)
    }

    /// Fail unless a method frame may arrive now.
    pub fn check_method_allowed(&self) -> Result<(), CodecError> {
        match self {
            Self::Idle => Ok(()),
            Self::AwaitingHeader(_) => Err(CodecError::UnexpectedFrame {
                expected: "content header",
                got: "method",
            }),
            Self::AwaitingBody { .. } => Err(CodecError::UnexpectedFrame {
                expected: "content body",
                got: "method",
            }),
        }
    }

    /// A content-bearing method arrived.
    pub fn begin(&mut self, method: M) -> Result<(), CodecError> {
        self.check_method_allowed()?;
        *self = Self::AwaitingHeader(method);
        Ok(())
    }

    /// A content header frame arrived. Completes the content when the body is empty.
    ///
    /// `max_body_size` bounds what we agree to buffer; a larger announced size is
    /// [`CodecError::BodyTooLarge`].
    pub fn header(
        &mut self,
        payload: Bytes,
        class_id: u16,
        max_body_size: u64,
    ) -> Result<Option<Content<M>>, CodecError> {
        let method = match std::mem::take(self) {
            Self::AwaitingHeader(method) => method,
            other => {
                let expected = other.expecting();
                *self = other;
                return Err(CodecError::UnexpectedFrame {
                    expected,
                    got: "content header",
                });
            }
        };
        let header = decode_content_header(payload)?;
        if header.class_id != class_id {
            return Err(CodecError::HeaderClassMismatch {
                expected: class_id,
                got: header.class_id,
            });
        }
        if header.body_size > max_body_size {
            return Err(CodecError::BodyTooLarge {
                size: header.body_size,
                max: max_body_size,
            });
        }
        if header.body_size == 0 {
            return Ok(Some(Content {
                method,
                properties: header.properties,
                body: BodyParts::new(),
            }));
        }
        *self = Self::AwaitingBody {
            method,
            properties: header.properties,
            body: BodyCollector::default(),
            remaining: header.body_size,
        };
        Ok(None)
    }

    /// A body frame arrived. Completes the content when the last octet is in.
    pub fn body(&mut self, payload: Bytes) -> Result<Option<Content<M>>, CodecError> {
        let Self::AwaitingBody {
            remaining, body, ..
        } = self
        else {
            return Err(CodecError::UnexpectedFrame {
                expected: self.expecting(),
                got: "content body",
            });
        };
        let got = payload.len() as u64;
        if got > *remaining {
            return Err(CodecError::BodyOverrun {
                got: payload.len(),
                remaining: *remaining,
            });
        }
        *remaining -= got;
        let total = *remaining + got;
        body.push(payload, total);
        if *remaining > 0 {
            return Ok(None);
        }
        match std::mem::take(self) {
            Self::AwaitingBody {
                method,
                properties,
                body,
                ..
            } => Ok(Some(Content {
                method,
                properties,
                body: body.finish(),
            })),
            Self::Idle | Self::AwaitingHeader(_) => Ok(None),
        }
    }

    fn expecting(&self) -> &'static str {
        match self {
            Self::Idle => "method",
            Self::AwaitingHeader(_) => "content header",
            Self::AwaitingBody { .. } => "content body",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(body_size: u64) -> Bytes {
        let mut v = vec![0, 60, 0, 0];
        v.extend_from_slice(&body_size.to_be_bytes());
        v.extend_from_slice(&[0, 0]);
        Bytes::from(v)
    }

    #[test]
    fn single_frame_body_is_not_copied() {
        let mut a = ContentAssembly::default();
        a.begin("publish").unwrap();
        assert!(a.header(header(5), 60, 1000).unwrap().is_none());
        let body = Bytes::from_static(b"hello");
        let content = a.body(body.clone()).unwrap().unwrap();
        assert_eq!(content.body.len(), 1);
        assert_eq!(content.body[0].as_ptr(), body.as_ptr());
        assert!(a.is_idle());
    }

    #[test]
    fn small_frames_are_joined_into_one_part() {
        let mut a = ContentAssembly::default();
        a.begin(1u8).unwrap();
        a.header(header(6), 60, 1000).unwrap();
        assert!(a.body(Bytes::from_static(b"ab")).unwrap().is_none());
        assert!(a.body(Bytes::from_static(b"cd")).unwrap().is_none());
        let c = a.body(Bytes::from_static(b"ef")).unwrap().unwrap();
        let parts: Vec<&[u8]> = c.body.iter().map(|b| &b[..]).collect();
        assert_eq!(parts, [&b"abcdef"[..]]);
    }

    #[test]
    fn large_frames_are_kept_without_copying_and_small_runs_between_them_joined() {
        let large = |fill: u8| Bytes::from(vec![fill; MIN_PART]);
        let (first, last) = (large(1), large(2));
        let size = 2 * MIN_PART as u64 + 3;
        let mut a = ContentAssembly::default();
        a.begin(()).unwrap();
        a.header(header(size), 60, u64::MAX).unwrap();
        assert!(a.body(first.clone()).unwrap().is_none());
        assert!(a.body(Bytes::from_static(b"x")).unwrap().is_none());
        assert!(a.body(Bytes::from_static(b"yz")).unwrap().is_none());
        let c = a.body(last.clone()).unwrap().unwrap();
        assert_eq!(c.body.len(), 3);
        assert_eq!(c.body[0].as_ptr(), first.as_ptr());
        assert_eq!(&c.body[1][..], b"xyz");
        assert_eq!(c.body[2].as_ptr(), last.as_ptr());
    }

    #[test]
    fn a_body_in_one_octet_frames_is_one_part() {
        let mut a = ContentAssembly::default();
        a.begin(()).unwrap();
        a.header(header(1000), 60, u64::MAX).unwrap();
        for _ in 0..999 {
            assert!(a.body(Bytes::from_static(b"o")).unwrap().is_none());
        }
        let c = a.body(Bytes::from_static(b"o")).unwrap().unwrap();
        assert_eq!(c.body.len(), 1);
        assert_eq!(c.body[0].len(), 1000);
    }

    #[test]
    fn empty_body_completes_at_the_header() {
        let mut a = ContentAssembly::default();
        a.begin(()).unwrap();
        let c = a.header(header(0), 60, 0).unwrap().unwrap();
        assert!(c.body.is_empty());
        assert!(a.is_idle());
    }

    #[test]
    fn out_of_order_frames_are_errors() {
        let mut a: ContentAssembly<()> = ContentAssembly::default();
        assert!(matches!(
            a.header(header(1), 60, 10),
            Err(CodecError::UnexpectedFrame { .. })
        ));
        assert!(matches!(
            a.body(Bytes::from_static(b"x")),
            Err(CodecError::UnexpectedFrame { .. })
        ));
        a.begin(()).unwrap();
        assert!(a.begin(()).is_err());
        a.header(header(1), 60, 10).unwrap();
        assert!(a.check_method_allowed().is_err());
        assert!(matches!(
            a.body(Bytes::from_static(b"xy")),
            Err(CodecError::BodyOverrun { .. })
        ));
    }

    #[test]
    fn header_checks_class_and_size() {
        let mut a = ContentAssembly::default();
        a.begin(()).unwrap();
        let mut h = header(1).to_vec();
        h[1] = 50;
        assert!(matches!(
            a.header(Bytes::from(h), 60, 10),
            Err(CodecError::HeaderClassMismatch { .. })
        ));
        let mut a = ContentAssembly::default();
        a.begin(()).unwrap();
        assert!(matches!(
            a.header(header(11), 60, 10),
            Err(CodecError::BodyTooLarge { .. })
        ));
    }
}
