use thiserror::Error;

/// What was wrong with the bytes a peer sent.
///
/// Every variant is a protocol violation by the peer; none is a bug of ours. The broker
/// maps each to a reply code and closes the channel or connection.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// A frame header announced more payload than `frame_max` allows.
    #[error("frame of {size} payload octets on channel {channel} exceeds frame_max {frame_max}")]
    FrameTooLarge {
        /// Announced payload size.
        size: u32,
        /// Negotiated frame_max.
        frame_max: u32,
        /// Channel of the frame.
        channel: u16,
    },
    /// A frame did not end with 0xCE.
    #[error("invalid frame end marker {octet:#04x} on channel {channel}")]
    BadFrameEnd {
        /// The octet found instead.
        octet: u8,
        /// Channel of the frame.
        channel: u16,
    },
    /// The frame type octet is none of 1, 2, 3, 8.
    #[error("unknown frame type {octet} on channel {channel}")]
    UnknownFrameType {
        /// The type octet.
        octet: u8,
        /// Channel of the frame.
        channel: u16,
    },
    /// A method frame too short to hold a class and method id.
    #[error("method frame of {0} octets is too short for class and method ids")]
    ShortMethodFrame(usize),
    /// The class id is not one of 0-9-1's.
    #[error("unknown class {class_id}")]
    UnknownClass {
        /// Class id.
        class_id: u16,
        /// Method id.
        method_id: u16,
    },
    /// The class is known but not the method id.
    #[error("unknown method {method_id} of class {class_id}")]
    UnknownMethod {
        /// Class id.
        class_id: u16,
        /// Method id.
        method_id: u16,
    },
    /// A method of AMQP 0-8 that the broker does not implement (RabbitMQ implements none
    /// of the `file`, `stream`, `dtx`, `tunnel` and `test` classes).
    #[error("unimplemented method")]
    Unimplemented {
        /// Class id.
        class_id: u16,
        /// Method id.
        method_id: u16,
    },
    /// The method's arguments are truncated, garbled, or followed by extra octets.
    #[error("cannot decode the arguments of {name}")]
    MalformedArguments {
        /// Class id.
        class_id: u16,
        /// Method id.
        method_id: u16,
        /// The method's spec name, e.g. `queue.declare`.
        name: &'static str,
    },
    /// A content header frame too short, or with garbled properties.
    #[error("malformed content header: {0}")]
    MalformedContentHeader(&'static str),
    /// A content header for a class other than the method's.
    #[error("expected content header for class {expected}, got one for class {got} instead")]
    HeaderClassMismatch {
        /// Class of the content-bearing method.
        expected: u16,
        /// Class named in the header.
        got: u16,
    },
    /// A frame arrived that the content state machine did not expect.
    #[error("expected {expected}, got {got} instead")]
    UnexpectedFrame {
        /// What the state machine waited for.
        expected: &'static str,
        /// What arrived.
        got: &'static str,
    },
    /// A body frame carried more octets than the header said were left.
    #[error("content body frame of {got} octets exceeds the {remaining} octets still expected")]
    BodyOverrun {
        /// Octets in the body frame.
        got: usize,
        /// Octets the header said were still to come.
        remaining: u64,
    },
    /// A content header announced a body larger than the broker accepts.
    #[error("message size {size} is larger than configured max size {max}")]
    BodyTooLarge {
        /// Announced body size.
        size: u64,
        /// The configured maximum.
        max: u64,
    },
    /// A value could not be encoded (a short string over 255 octets, say).
    #[error("cannot encode {0}")]
    Encode(&'static str),
}
