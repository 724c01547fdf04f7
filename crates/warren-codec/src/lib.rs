//! Warren's AMQP 0-9-1 wire codec: bytes in, frames and methods out, and back.
//!
//! Owns:
//! - frame splitting off a read buffer, with the `frame_max` check made from the 7-byte
//!   frame header before the payload has arrived ([`frame`]);
//! - the protocol header ([`protocol_header`]), and the translation of AMQP 0-8 methods to
//!   and from 0-9-1 for the clients that open with 0-8's ([`dialect`]);
//! - method decoding and encoding ([`method`], [`encode`]): the hot methods
//!   (`basic.publish`, `basic.ack`/`nack`/`reject`, `basic.deliver`, content frames) are
//!   hand-written so that they neither allocate nor copy bodies; everything else goes
//!   through the generated types of `amq-protocol`;
//! - content assembly, the `method -> header -> body*` state machine ([`content`]);
//! - a non-allocating view over raw content properties ([`properties`]);
//! - the reply-code table ([`ReplyCode`]).
//!
//! Must not know: sockets, tokio, queues, exchanges or any broker state. Everything here
//! is a pure function of its input bytes, so it can be fuzzed and property-tested alone.
//! Errors say *what* was wrong with the bytes; which AMQP reply code and scope that becomes
//! is the broker's decision, made in one place in `warren-broker`.

pub mod content;
pub mod dialect;
pub mod encode;
mod error;
pub mod frame;
pub mod method;
pub mod properties;
pub mod protocol_header;
mod reply_code;
pub mod table;

pub use amq_protocol::protocol as spec;
pub use amq_protocol::types;
pub use error::CodecError;
pub use reply_code::ReplyCode;

/// The octet that must end every frame.
pub const FRAME_END: u8 = 0xCE;
/// Frame header size: type (1), channel (2), payload size (4).
pub const FRAME_HEADER_SIZE: usize = 7;
/// Bytes a frame adds around its payload: the header and the end octet.
pub const FRAME_OVERHEAD: usize = FRAME_HEADER_SIZE + 1;
/// The class id of `basic`, the only class that carries content in 0-9-1.
pub const BASIC_CLASS_ID: u16 = 60;
